/* SPDX-License-Identifier: MIT */
/*
 * Invariant 5, the hypervisor is the truth at start-up: while the daemon was
 * down a domain with a grant vanished, another one was replaced by a new
 * domain under the same domid, and a device was assigned behind passguard's
 * back. At start-up the dead grants are released (audited), the unmanaged
 * assignment is reported (audited) and left alone, and with --enforce it is
 * deassigned back to quarantine. Live grants survive every restart.
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static struct itest t;

static bool has_grant(const char *bdf)
{
        json_t *store = itest_grants_load(&t);
        bool r = store && itest_grants_find(store, bdf);
        json_decref(store);
        return r;
}

static void while_down(json_t *host, void *userdata)
{
        size_t i;
        json_t *d;

        /* render-1 (domid 5) is gone: Xen quarantined its device */
        for (i = 0; i < json_array_size(json_object_get(host, "domains")); i++)
                if (json_integer_value(json_object_get(
                            json_array_get(json_object_get(host, "domains"), i), "domid")) ==
                    DOM_RENDER1) {
                        json_array_remove(json_object_get(host, "domains"), i);
                        break;
                }
        json_object_set_new(itest_host_device(host, DEV_GPU), "assigned_to", json_string("io"));
        /* net-pvh (domid 8) was destroyed and a new domain got domid 8 */
        json_array_foreach(json_object_get(host, "domains"), i,
                           d) if (json_integer_value(json_object_get(d, "domid")) == DOM_NETPVH)
                json_object_set_new(d, "uuid", json_string("0badc0de-1111-4222-8333-444455556666"));
        json_object_set_new(itest_host_device(host, DEV_SLOT0), "assigned_to", json_string("io"));
        /* someone assigned DEV_SPARE to net-hvm without asking passguard */
        json_object_set_new(itest_host_device(host, DEV_SPARE), "assigned_to",
                            json_integer(DOM_NETHVM));
}

int main(void)
{
        char buf[32];

        itest_init(&t, "reconcile", false);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }
        const struct {
                const char *domain, *bdf;
        } grants[] = {{"render-1", DEV_GPU}, {"net-pv", DEV_NIC}, {"net-pvh", DEV_SLOT0}};
        for (size_t i = 0; i < 3; i++) {
                json_t *r = itest_target(&t, "assign", grants[i].domain, 0, grants[i].bdf);
                CHECK_MSG(itest_ok(r), "assign %s: %s", grants[i].bdf, itest_error(r));
                json_decref(r);
        }
        itest_stop(&t);

        CHECK_INTEQ(itest_host_edit(&t, while_down, NULL), 0);
        size_t off = itest_log_size(&t);
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);

        /* dead grants released and audited; the live one kept */
        CHECK(!has_grant(DEV_GPU));
        CHECK(!has_grant(DEV_SLOT0));
        CHECK(has_grant(DEV_NIC));
        CHECK(!has_grant(DEV_SPARE));
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "audit:", "device=" DEV_GPU, "domid=5"),
                  "no audit record for the grant of the vanished domain");
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "audit:", "device=" DEV_SLOT0),
                  "no audit record for the grant of the replaced domain");
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "audit:", "kind=unmanaged", "device=" DEV_SPARE),
                  "no unmanaged audit record for " DEV_SPARE);
        /* not enforcing: the unmanaged assignment is reported, not touched */
        CHECK_STREQ(itest_owner(&t, DEV_SPARE, buf), "12");
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "7");
        json_t *r = itest_call(&t, json_pack("{s:s, s:s}", "op", "owner", "device", DEV_SPARE));
        CHECK(json_is_true(json_object_get(r, "assigned")));
        CHECK(json_is_false(json_object_get(r, "granted")));
        CHECK_INTEQ(json_integer_value(json_object_get(r, "domid")), DOM_NETHVM);
        json_decref(r);
        r = itest_call(&t, json_pack("{s:s}", "op", "list"));
        CHECK_INTEQ(json_array_size(json_object_get(r, "grants")), 1);
        json_decref(r);
        /* and it is busy for everyone else */
        r = itest_target(&t, "assign", "net-pv", 0, DEV_SPARE);
        CHECK_STREQ(itest_error(r), "busy");
        json_decref(r);
        itest_stop(&t);

        /* --enforce deassigns it, back into quarantine */
        off = itest_log_size(&t);
        json_int_t deassigns = itest_calls(&t, "deassign");
        CHECK_INTEQ(itest_start(&t, (const char *const[]){"--enforce", NULL}, NULL), 0);
        CHECK_STREQ(itest_owner(&t, DEV_SPARE, buf), "io");
        CHECK_INTEQ(itest_calls(&t, "deassign"), deassigns + 1);
        CHECK(ITEST_LOG_HAS(&t, off, "audit:", "kind=unmanaged", "device=" DEV_SPARE));
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "7");
        CHECK(has_grant(DEV_NIC));
        json_t *st = itest_call(&t, json_pack("{s:s}", "op", "status"));
        CHECK(json_is_true(json_object_get(st, "enforce")));
        json_decref(st);
        r = itest_target(&t, "assign", "net-pv", 0, DEV_SPARE);
        CHECK_MSG(itest_ok(r), "assign after enforcement: %s", itest_error(r));
        json_decref(r);

        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
