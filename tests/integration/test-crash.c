/* SPDX-License-Identifier: MIT */
/*
 * Invariants 4 and 5 under a crash at every step of assign and release: the
 * daemon SIGKILLs itself at a test-only crash point, is restarted, and then
 * grants.json and the (simulated) hypervisor agree: every grant is assigned,
 * every assignment of a passguard-prepared device has a grant. Nothing was
 * acknowledged, so nothing may be half-done, and the device stays usable.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "itest.h"

static const char *const managed[] = {DEV_E1000, NULL};

static json_t *req_target(const char *op)
{
        return json_pack("{s:s, s:s, s:s}", "op", op, "device", DEV_E1000, "domain", "net-pv");
}

static bool granted_in_store(struct itest *t)
{
        json_t *store = itest_grants_load(t);
        bool r = store && itest_grants_find(store, DEV_E1000);
        json_decref(store);
        return r;
}

/* Send op on a connection and expect the daemon to die by SIGKILL instead of answering. */
static void crash_on(struct itest *t, const char *op, const char *point)
{
        struct itest_conn *c = itest_connect(t);
        CHECK(c);
        if (!c)
                return;
        json_t *reply = itest_conn_call(c, req_target(op));
        CHECK_MSG(!reply, "%s: the daemon answered %s instead of crashing", point,
                  reply ? itest_error(reply) : "");
        json_decref(reply);
        itest_conn_close(c);
        CHECK_INTEQ(itest_wait_exit(t, 5000), 0);
        CHECK_MSG(WIFSIGNALED(t->last_status) && WTERMSIG(t->last_status) == SIGKILL,
                  "%s: the daemon did not die by SIGKILL (status 0x%x)", point, t->last_status);
}

static void assign_point(const char *point)
{
        struct itest t;
        char env[128], buf[32];

        itest_init(&t, "crash", false);
        snprintf(env, sizeof(env), "PASSGUARD_TEST_CRASH=%s", point);
        CHECK_INTEQ(itest_start(&t, NULL, (const char *const[]){env, NULL}), 0);
        json_t *r = itest_call(&t, json_pack("{s:s, s:s}", "op", "prepare", "device", DEV_E1000));
        CHECK_MSG(itest_ok(r), "prepare: %s", itest_error(r));
        json_decref(r);
        json_int_t assigns = itest_calls(&t, "assign");

        crash_on(&t, "assign", point);
        const char *owner_at_crash = itest_owner(&t, DEV_E1000, buf);
        printf("# %s: after the crash the host says %s, grants.json %s the grant\n", point,
               owner_at_crash, granted_in_store(&t) ? "has" : "lacks");

        int s = itest_start(&t, NULL, NULL);
        CHECK_MSG(s == 0, "%s: passguardd does not restart after the crash: %d", point, s);
        CHECK_MSG(itest_consistent(&t, managed) == 0, "%s: grants.json and the host disagree",
                  point);

        if (streq(point, "assign:before-hv")) {
                CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
                CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "io");
                CHECK(!granted_in_store(&t));
        } else if (streq(point, "assign:after-hv")) {
                /* assigned but never acknowledged nor recorded: rolled back */
                CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "io");
                CHECK(!granted_in_store(&t));
        }

        /* the device is still usable, and the daemon's view matches the store */
        if (granted_in_store(&t)) {
                CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "7");
                r = itest_call(&t, req_target("release"));
        } else {
                r = itest_call(&t, req_target("assign"));
                CHECK_MSG(itest_ok(r), "%s: assign after the restart: %s", point, itest_error(r));
                CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "7");
                json_decref(r);
                r = itest_call(&t, req_target("release"));
        }
        CHECK_MSG(itest_ok(r), "%s: release after the restart: %s", point, itest_error(r));
        json_decref(r);
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "io");
        CHECK_INTEQ(itest_consistent(&t, managed), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
}

static void release_point(const char *point)
{
        struct itest t;
        char env[128], buf[32];

        itest_init(&t, "crash", false);
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        json_t *r = itest_call(&t, json_pack("{s:s, s:s}", "op", "prepare", "device", DEV_E1000));
        CHECK_MSG(itest_ok(r), "prepare: %s", itest_error(r));
        json_decref(r);
        r = itest_call(&t, req_target("assign"));
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        CHECK(granted_in_store(&t));
        itest_stop(&t);

        snprintf(env, sizeof(env), "PASSGUARD_TEST_CRASH=%s", point);
        CHECK_INTEQ(itest_start(&t, NULL, (const char *const[]){env, NULL}), 0);
        json_int_t deassigns = itest_calls(&t, "deassign");
        crash_on(&t, "release", point);
        printf("# %s: after the crash the host says %s, grants.json %s the grant\n", point,
               itest_owner(&t, DEV_E1000, buf), granted_in_store(&t) ? "has" : "lacks");

        int s = itest_start(&t, NULL, NULL);
        CHECK_MSG(s == 0, "%s: passguardd does not restart after the crash: %d", point, s);
        CHECK_MSG(itest_consistent(&t, managed) == 0, "%s: grants.json and the host disagree",
                  point);

        if (streq(point, "release:before-hv")) {
                CHECK_INTEQ(itest_calls(&t, "deassign"), deassigns);
                CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "7");
                CHECK(granted_in_store(&t));
        } else {
                /* the hypervisor already let go: the grant cannot survive */
                CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "io");
                CHECK(!granted_in_store(&t));
        }

        if (granted_in_store(&t)) {
                r = itest_call(&t, req_target("release"));
                CHECK_MSG(itest_ok(r), "%s: release after the restart: %s", point, itest_error(r));
                json_decref(r);
        }
        r = itest_call(&t, req_target("assign"));
        CHECK_MSG(itest_ok(r), "%s: assign after the restart: %s", point, itest_error(r));
        json_decref(r);
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "7");
        CHECK_INTEQ(itest_consistent(&t, managed), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
}

int main(void)
{
        assign_point("assign:before-hv");
        assign_point("assign:after-hv");
        assign_point("assign:after-commit");
        release_point("release:before-hv");
        release_point("release:after-hv");
        release_point("release:after-commit");
        return harness_exit();
}
