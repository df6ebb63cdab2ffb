/* SPDX-License-Identifier: MIT */
/*
 * Invariants 4 and 5 under a crash at every step of assign and release: the
 * daemon SIGKILLs itself at a test-only crash point, is restarted, and then
 * grants.json and the (simulated) hypervisor agree: every grant is assigned,
 * every assignment of a passguard-prepared device has a grant. Nothing was
 * acknowledged, so nothing may be half-done, and the device stays usable.
 *
 * Then the same crash between an assign's intent record and its outcome, on
 * a device quarantined outside passguard (which only the intent can tell
 * start-up about) and on one passguard prepared: the journal holds the open
 * intent at the crash, the hypervisor did (after-hv) or did not (before-hv)
 * assign, and after the restart neither side keeps it: no orphan on the
 * host, no grant in the store. A crash after the outcome keeps both.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "itest.h"

static const char *const managed[] = {DEV_E1000, NULL};

static json_t *req_device(const char *op, const char *bdf)
{
        return json_pack("{s:s, s:s, s:s}", "op", op, "device", bdf, "domain", "net-pv");
}

static json_t *req_target(const char *op)
{
        return req_device(op, DEV_E1000);
}

static bool device_granted(struct itest *t, const char *bdf)
{
        json_t *store = itest_grants_load(t);
        bool r = store && itest_grants_find(store, bdf);
        json_decref(store);
        return r;
}

static bool granted_in_store(struct itest *t)
{
        return device_granted(t, DEV_E1000);
}

/* Send op on bdf on a connection and expect the daemon to die by SIGKILL instead of answering. */
static void crash_on_device(struct itest *t, const char *op, const char *bdf, const char *point)
{
        struct itest_conn *c = itest_connect(t);
        CHECK(c);
        if (!c)
                return;
        json_t *reply = itest_conn_call(c, req_device(op, bdf));
        CHECK_MSG(!reply, "%s: the daemon answered %s instead of crashing", point,
                  reply ? itest_error(reply) : "");
        json_decref(reply);
        itest_conn_close(c);
        CHECK_INTEQ(itest_wait_exit(t, 5000), 0);
        CHECK_MSG(WIFSIGNALED(t->last_status) && WTERMSIG(t->last_status) == SIGKILL,
                  "%s: the daemon did not die by SIGKILL (status 0x%x)", point, t->last_status);
}

static void crash_on(struct itest *t, const char *op, const char *point)
{
        crash_on_device(t, op, DEV_E1000, point);
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

/*
 * The journal's records of bdf, in order, as "op" names separated by spaces
 * (base lines left out); "" when there are none, "(unreadable)" without a file.
 */
static void journal_ops(struct itest *t, const char *bdf, char *buf, size_t size)
{
        char path[PATH_MAX + 32];
        size_t len = 0;

        snprintf(path, sizeof(path), "%s/grants.journal", t->state);
        char *text = itest_read_file(path, NULL);
        buf[0] = 0;
        if (!text) {
                snprintf(buf, size, "(unreadable)");
                return;
        }
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                json_t *rec = json_loads(line, 0, NULL);
                const char *op = json_string_value(json_object_get(rec, "op"));
                const char *dev = json_string_value(json_object_get(rec, "device"));
                if (op && dev && strcasecmp(dev, bdf) == 0 && len < size)
                        len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? " " : "", op);
                json_decref(rec);
        }
        free(text);
}

/*
 * Crash at point while assigning bdf (quarantined, in the store's prepared
 * list when prepared) to net-pv, restart, and check the journal at the crash
 * and both the host and the store after it.
 */
static void intent_point(const char *point, const char *bdf, bool prepared)
{
        struct itest t;
        char env[128], buf[32], ops[256];
        const char *const all[] = {DEV_GPU,   DEV_GPU2,  DEV_NIC,   DEV_IGB,   DEV_NORESET,
                                   DEV_SLOT0, DEV_SLOT1, DEV_SPARE, DEV_E1000, NULL};
        const char *how = prepared ? "prepared by passguard" : "quarantined outside passguard";
        bool outcome = streq(point, "assign:after-commit");

        itest_init(&t, "crash", false);
        snprintf(env, sizeof(env), "PASSGUARD_TEST_CRASH=%s", point);
        CHECK_INTEQ(itest_start(&t, NULL, (const char *const[]){env, NULL}), 0);
        if (prepared) {
                json_t *r = itest_call(&t, json_pack("{s:s, s:s}", "op", "prepare", "device", bdf));
                CHECK_MSG(itest_ok(r), "prepare: %s", itest_error(r));
                json_decref(r);
        }
        CHECK_STREQ(itest_owner(&t, bdf, buf), "io");
        json_int_t assigns = itest_calls(&t, "assign");

        crash_on_device(&t, "assign", bdf, point);
        journal_ops(&t, bdf, ops, sizeof(ops));
        printf("# %s, %s: at the crash the host says %s, the journal has \"%s\"\n", point, how,
               itest_owner(&t, bdf, buf), ops);
        const char *tail = strrchr(ops, ' ') ? strrchr(ops, ' ') + 1 : ops;
        if (outcome) {
                CHECK_STREQ(tail, "grant");
                CHECK_STREQ(itest_owner(&t, bdf, buf), "7");
        } else {
                /* the intent is durable, its outcome is not there */
                CHECK_STREQ(tail, "intent-assign");
                if (streq(point, "assign:before-hv")) {
                        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
                        CHECK_STREQ(itest_owner(&t, bdf, buf), "io");
                } else {
                        /* the orphan the intent is there for */
                        CHECK_INTEQ(itest_calls(&t, "assign"), assigns + 1);
                        CHECK_STREQ(itest_owner(&t, bdf, buf), "7");
                }
        }

        size_t off = itest_log_size(&t);
        int s = itest_start(&t, NULL, NULL);
        CHECK_MSG(s == 0, "%s, %s: passguardd does not restart after the crash: %d", point, how, s);
        /* every device: an orphan would be an assignment with no grant */
        CHECK_MSG(itest_consistent(&t, all) == 0, "%s, %s: the store and the host disagree", point,
                  how);
        if (outcome) {
                CHECK_STREQ(itest_owner(&t, bdf, buf), "7");
                CHECK(device_granted(&t, bdf));
        } else {
                CHECK_STREQ(itest_owner(&t, bdf, buf), "io");
                CHECK(!device_granted(&t, bdf));
                if (streq(point, "assign:after-hv"))
                        CHECK(ITEST_LOG_HAS(&t, off, "interrupted assign", "rolled back"));
                else
                        CHECK(!ITEST_LOG_HAS(&t, off, "interrupted assign"));
        }
        /* compacted at start-up: no intent is left open */
        journal_ops(&t, bdf, ops, sizeof(ops));
        CHECK_MSG(!strstr(ops, "intent"), "%s, %s: after the restart the journal has \"%s\"", point,
                  how, ops);

        /* the device is still usable */
        json_t *r;
        if (!outcome) {
                r = itest_call(&t, req_device("assign", bdf));
                CHECK_MSG(itest_ok(r), "%s, %s: assign after the restart: %s", point, how,
                          itest_error(r));
                json_decref(r);
        }
        CHECK_STREQ(itest_owner(&t, bdf, buf), "7");
        r = itest_call(&t, req_device("release", bdf));
        CHECK_MSG(itest_ok(r), "%s, %s: release after the restart: %s", point, how, itest_error(r));
        json_decref(r);
        CHECK_STREQ(itest_owner(&t, bdf, buf), "io");
        CHECK_INTEQ(itest_consistent(&t, all), 0);
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
        intent_point("assign:before-hv", DEV_NIC, false);
        intent_point("assign:after-hv", DEV_NIC, false);
        intent_point("assign:after-commit", DEV_NIC, false);
        intent_point("assign:before-hv", DEV_E1000, true);
        intent_point("assign:after-hv", DEV_E1000, true);
        return harness_exit();
}
