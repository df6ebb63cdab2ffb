/* SPDX-License-Identifier: MIT */
/*
 * Invariant 7, domain death frees its devices: a domain with grants is
 * destroyed in the host file (as Xen does: it vanishes and its devices go to
 * quarantine). Within a second its grants are released in state, with an
 * audit record, the device is reset because the policy asks, it stays in
 * quarantine (never handed back to a dom0 driver) and can be assigned again.
 * A domid reused by a new domain (another UUID) never inherits a grant.
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static bool gone(struct itest *t, const char *bdf)
{
        json_t *store = itest_grants_load(t);
        bool r = store && !itest_grants_find(store, bdf);
        json_decref(store);
        return r;
}

static void new_uuid(json_t *host, void *userdata)
{
        size_t i;
        json_t *d;

        json_array_foreach(json_object_get(host, "domains"), i,
                           d) if (json_integer_value(json_object_get(d, "domid")) == DOM_NETPVH)
                json_object_set_new(d, "uuid", json_string("0badc0de-1111-4222-8333-444455556666"));
        json_array_foreach(json_object_get(host, "devices"), i, d)
        {
                json_t *a = json_object_get(d, "assigned_to");
                if (json_is_integer(a) && json_integer_value(a) == DOM_NETPVH)
                        json_object_set_new(d, "assigned_to", json_string("io"));
        }
}

int main(void)
{
        struct itest t;
        char buf[32];

        itest_init(&t, "domain-death", false);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }
        json_t *r = itest_target(&t, "assign", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        CHECK_STREQ(itest_owner(&t, DEV_GPU, buf), "5");

        /* destroy render-1 */
        json_int_t resets = itest_calls(&t, "reset");
        size_t off = itest_log_size(&t);
        int64_t t0 = itest_now_ms();
        CHECK_INTEQ(itest_destroy_domain(&t, DOM_RENDER1), 0);
        bool released = ITEST_WAIT_FOR(gone(&t, DEV_GPU), 3000);
        int64_t elapsed = itest_now_ms() - t0;
        printf("# grant of a destroyed domain released after %lld ms\n", (long long)elapsed);
        CHECK_MSG(released, "the grant of the destroyed domain was never released");
        CHECK_MSG(elapsed < 1000, "released after %lld ms, more than a second", (long long)elapsed);
        CHECK_MSG(itest_log_wait(&t, off,
                                 (const char *const[]){"audit:", "kind=domain-gone",
                                                       "device=" DEV_GPU, "domid=5", NULL},
                                 1000),
                  "no domain-gone audit record for " DEV_GPU);
        /* the policy (reset = "if-available", an flr device) asks for a reset */
        CHECK_MSG(ITEST_WAIT_FOR(itest_calls(&t, "reset") > resets, 1000),
                  "the device of the destroyed domain was not reset");

        /* the device stays in quarantine, bound to pciback, and is assignable again */
        json_t *host = itest_host_load(&t);
        CHECK_STREQ(itest_host_owner(host, DEV_GPU, buf), "io");
        CHECK_STREQ(json_string_value(json_object_get(itest_host_device(host, DEV_GPU), "driver")),
                    "pciback");
        CHECK_STREQ(itest_host_owner(host, DEV_NIC, buf), "7");
        json_decref(host);
        CHECK(!gone(&t, DEV_NIC));
        r = itest_call(&t, json_pack("{s:s, s:s}", "op", "owner", "device", DEV_GPU));
        CHECK(itest_ok(r));
        CHECK(json_is_false(json_object_get(r, "granted")));
        CHECK(json_is_false(json_object_get(r, "assigned")));
        json_decref(r);
        r = itest_target(&t, "assign", "render-2", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "assign after the domain died: %s", itest_error(r));
        json_decref(r);
        CHECK_STREQ(itest_owner(&t, DEV_GPU, buf), "6");

        /* a reused domid: domain 8 is replaced by a new domain with another UUID */
        r = itest_target(&t, "assign", "net-pvh", 0, DEV_SPARE);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        off = itest_log_size(&t);
        t0 = itest_now_ms();
        CHECK_INTEQ(itest_host_edit(&t, new_uuid, NULL), 0);
        released = ITEST_WAIT_FOR(gone(&t, DEV_SPARE), 3000);
        elapsed = itest_now_ms() - t0;
        CHECK_MSG(released && elapsed < 1000,
                  "the grant survived a domid reuse (released: %d, after %lld ms)", released,
                  (long long)elapsed);
        /* the audit record follows the release (once it is durable): wait for it */
        CHECK(itest_log_wait(&t, off,
                             (const char *const[]){"kind=domain-gone", "device=" DEV_SPARE, NULL},
                             1000));
        r = itest_target(&t, "release", NULL, DOM_NETPVH, DEV_SPARE);
        CHECK_STREQ(itest_error(r), "not-assigned");
        json_decref(r);

        /* a grant of a live domain is untouched by all this */
        r = itest_target(&t, "release", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "release: %s", itest_error(r));
        json_decref(r);
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
