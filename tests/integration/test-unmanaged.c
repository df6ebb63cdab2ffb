/* SPDX-License-Identifier: MIT */
/*
 * Unmanaged assignments are found at every domain event, not only at
 * start-up: a device assigned behind passguard's back while it runs (the
 * simulated host's file edited; its inotify watch is the domain event) is
 * reported once (audit "unmanaged"), not again at the next event while it
 * stays, and again if it comes back; under --enforce it is deassigned, into
 * quarantine, and the record says so. An assignment passguard granted is
 * never reported.
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static struct itest t;

static void start(const char *const *args)
{
        if (itest_start(&t, args, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                exit(harness_exit());
        }
}

static void test_report(void)
{
        const char *const spare[] = {"kind=unmanaged", "op=domain-event",    "device=" DEV_SPARE,
                                     "domid=8",        "decision=unmanaged", NULL};
        size_t off = itest_log_size(&t);
        char buf[32];
        json_t *r;

        /* A grant of passguard's own is not an unmanaged assignment. */
        r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK(itest_ok(r));
        json_decref(r);
        r = itest_target(&t, "assign", "render-1", 0, DEV_GPU);
        CHECK(itest_ok(r));
        json_decref(r);

        CHECK_INTEQ(itest_set_owner(&t, DEV_SPARE, "8"), 0);
        CHECK_MSG(itest_log_wait(&t, off, spare, 3000), "no unmanaged record at the host event");
        CHECK_STREQ(itest_owner(&t, DEV_SPARE, buf), "8"); /* reported, not deassigned */

        /*
         * Another event: not said again while it stays. The domain-gone record
         * of the destroyed domain's grant shows the daemon has seen the event.
         */
        CHECK_INTEQ(itest_destroy_domain(&t, DOM_RENDER1), 0);
        CHECK_MSG(itest_log_wait(&t, off,
                                 (const char *const[]){"kind=domain-gone", "device=" DEV_GPU, NULL},
                                 3000),
                  "no domain-gone record for " DEV_GPU);
        CHECK_INTEQ(itest_log_count(&t, off, spare), 1);
        CHECK_INTEQ(
                itest_log_count(&t, off, (const char *const[]){"kind=unmanaged", DEV_NIC, NULL}),
                0);
        CHECK_INTEQ(
                itest_log_count(&t, off, (const char *const[]){"kind=unmanaged", DEV_GPU, NULL}),
                0);

        /*
         * Gone, then back: said again. The host file says both "gone" and
         * another domain's death; the daemon has seen "gone" once it reports
         * that death.
         */
        CHECK_INTEQ(itest_set_owner(&t, DEV_SPARE, "io"), 0);
        CHECK_INTEQ(itest_destroy_domain(&t, DOM_NETPV), 0);
        CHECK_MSG(itest_log_wait(&t, off,
                                 (const char *const[]){"kind=domain-gone", "device=" DEV_NIC, NULL},
                                 3000),
                  "no domain-gone record for " DEV_NIC);
        CHECK_INTEQ(itest_set_owner(&t, DEV_SPARE, "8"), 0);
        CHECK_MSG(ITEST_WAIT_FOR(itest_log_count(&t, off, spare) == 2, 3000),
                  "not reported again after it came back");
        CHECK_INTEQ(itest_set_owner(&t, DEV_SPARE, "io"), 0);
}

static void test_enforce(void)
{
        size_t off;
        char buf[32];

        itest_stop(&t);
        start((const char *const[]){"--enforce", NULL});
        off = itest_log_size(&t);
        json_int_t deassigns = itest_calls(&t, "deassign");
        CHECK_INTEQ(itest_set_owner(&t, DEV_SPARE, "12"), 0);
        CHECK_MSG(
                itest_log_wait(&t, off,
                               (const char *const[]){"kind=unmanaged", "device=" DEV_SPARE,
                                                     "decision=deassigned",
                                                     "deassigned into quarantine (enforce)", NULL},
                               3000),
                "no deassigned record under --enforce");
        CHECK_MSG(ITEST_WAIT_FOR(streq(itest_owner(&t, DEV_SPARE, buf), "io"), 3000),
                  "the device was not put back into quarantine: %s", buf);
        CHECK_INTEQ(itest_calls(&t, "deassign"), deassigns + 1);
}

int main(void)
{
        itest_init(&t, "unmanaged", false);
        start(NULL);
        test_report();
        test_enforce();
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
