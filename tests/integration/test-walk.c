/* SPDX-License-Identifier: MIT */
/*
 * The README walk through the passguard CLI: status, prepare, explain, assign,
 * list, owner, release, unprepare, with the output a user reads and every exit
 * status (0 done, 1 refused, 2 usage, 3 daemon unreachable).
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define HAS(s, needle) ((s) && strstr((s), (needle)))

static void check_cli(const struct itest *t, int want_exit, const char *want_out,
                      const char *want_err, const char *const *args)
{
        char *out = NULL, *err = NULL;
        int r = itest_cli(t, (uid_t)-1, &out, &err, args);

        CHECK_MSG(r == want_exit, "passguard %s %s: exit %d, expected %d; stderr: %s", args[0],
                  args[1] ? args[1] : "", r, want_exit, err ? err : "");
        if (want_out)
                CHECK_MSG(HAS(out, want_out), "passguard %s: stdout lacks \"%s\": %s", args[0],
                          want_out, out ? out : "");
        if (want_err)
                CHECK_MSG(HAS(err, want_err), "passguard %s: stderr lacks \"%s\": %s", args[0],
                          want_err, err ? err : "");
        free(out);
        free(err);
}

#define CLI(want_exit, want_out, want_err, ...)                                                    \
        check_cli(&t, (want_exit), (want_out), (want_err), (const char *const[]){__VA_ARGS__, NULL})

int main(void)
{
        struct itest t;
        char buf[32], *out = NULL;

        itest_init(&t, "walk", false);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }

        /* status */
        CLI(0, "backend: sim", NULL, "status");
        CLI(0, "grants: 0", NULL, "status");
        CHECK_INTEQ(ITEST_CLI(&t, &out, NULL, "--json", "status"), 0);
        json_t *st = out ? json_loads(out, 0, NULL) : NULL;
        CHECK(itest_ok(st));
        CHECK_STREQ(json_string_value(json_object_get(st, "backend")), "sim");
        CHECK(json_is_true(json_object_get(st, "iommu")));
        CHECK_INTEQ(json_integer_value(json_object_get(st, "grants")), 0);
        CHECK_STREQ(json_string_value(json_object_get(st, "policy")), t.policy);
        json_decref(st);
        free(out);

        /* prepare a device that dom0's e1000e driver still owns */
        CLI(1, NULL, "not-assignable", "assign", "net-pv", DEV_E1000);
        CHECK_INTEQ(itest_calls(&t, "assign"), 0);
        CLI(0, "quarantined", NULL, "prepare", DEV_E1000);
        json_t *host = itest_host_load(&t);
        json_t *dev = itest_host_device(host, DEV_E1000);
        CHECK_STREQ(json_string_value(json_object_get(dev, "driver")), "pciback");
        CHECK_STREQ(itest_host_owner(host, DEV_E1000, buf), "io");
        json_decref(host);
        CLI(0, "quarantined: yes", NULL, "owner", DEV_E1000);

        /* explain, then assign: a short BDF is normalised */
        CLI(0, "decision: allow", NULL, "explain", "net-pv", DEV_E1000);
        CHECK_INTEQ(itest_calls(&t, "assign"), 0);
        CLI(0, "granted 0000:09:00.0 to domain 7", NULL, "assign", "net-pv", "09:00.0");
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "7");
        CHECK_INTEQ(itest_calls(&t, "assign"), 1);
        CLI(0, "rule net", NULL, "assign", "8", DEV_NIC);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "8");

        /* each decision is audited */
        CHECK(ITEST_LOG_HAS(&t, 0, "audit:", "kind=grant", "device=" DEV_E1000, "domid=7",
                            "rule=net", "decision=granted"));
        CHECK(ITEST_LOG_HAS(&t, 0, "audit:", "kind=refuse", "device=" DEV_E1000,
                            "error=not-assignable"));
        CHECK(ITEST_LOG_HAS(&t, 0, "audit:", "kind=prepare", "device=" DEV_E1000));

        /* list and owner */
        CLI(0, DEV_E1000, NULL, "list");
        CLI(0, "net-pvh", NULL, "list");
        CLI(0, "grants: 2", NULL, "status");
        CLI(0, "granted by passguard: yes", NULL, "owner", DEV_E1000);
        CLI(0, "assigned: yes, to domain 7", NULL, "owner", DEV_E1000);
        CLI(0, "granted by passguard: no", NULL, "owner", DEV_GPU);

        /* refusals: exit 1, the error code on stderr */
        CLI(1, NULL, "busy", "assign", "net-pvh", DEV_E1000);
        CLI(1, "decision: deny", NULL, "explain", "render-1", DEV_NIC);
        CLI(1, NULL, "denied", "assign", "render-1", DEV_SLOT0);
        CLI(1, NULL, "protected-device", "assign", "net-pv", DEV_SATA);
        CLI(1, NULL, "no-such-domain", "assign", "nowhere", DEV_GPU);
        CLI(1, NULL, "no-such-device", "assign", "net-pv", DEV_GHOST);
        CHECK_INTEQ(itest_calls(&t, "assign"), 2);

        /* usage errors: exit 2, nothing sent */
        CLI(2, NULL, NULL, "assign", "net-pv");
        CLI(2, NULL, NULL, "assign", "net-pv", "not-a-bdf");
        CLI(2, NULL, NULL, "frobnicate");
        CLI(2, NULL, NULL, "owner");
        CHECK_INTEQ(itest_calls(&t, "assign"), 2);

        /* release: back to quarantine, then not-assigned */
        CLI(0, "released", NULL, "release", "net-pv", DEV_E1000);
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "io");
        CHECK(ITEST_LOG_HAS(&t, 0, "audit:", "kind=release", "device=" DEV_E1000, "domid=7"));
        CLI(1, NULL, "not-assigned", "release", "net-pv", DEV_E1000);
        CLI(0, "released", NULL, "release", "8", DEV_NIC);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "io");
        CLI(0, "(no grants)", NULL, "list");

        /* unprepare gives the device back to e1000e */
        CLI(0, NULL, NULL, "unprepare", DEV_E1000);
        host = itest_host_load(&t);
        dev = itest_host_device(host, DEV_E1000);
        CHECK_STREQ(json_string_value(json_object_get(dev, "driver")), "e1000e");
        CHECK_STREQ(itest_host_owner(host, DEV_E1000, buf), "null");
        json_decref(host);

        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));

        /* daemon unreachable: exit 3 */
        itest_stop(&t);
        CLI(3, NULL, NULL, "status");
        CLI(3, NULL, NULL, "assign", "net-pv", DEV_NIC);

        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
