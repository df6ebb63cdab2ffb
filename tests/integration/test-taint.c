/* SPDX-License-Identifier: MIT */
/*
 * Refusals that say why, on the simulated host: reset-failed and a reset =
 * "required" refusal name the reset methods the device has and, for a bus
 * reset, the other devices on the bus that block it; a failed reset taints
 * the device (durably: across a restart), which then goes to no other domain
 * (it may go back to the one that had it) until an admin untaints it
 * (audited; owner, list and the CLI show the taint) - a failed reset before
 * an assign, after a release, and after a domain's death.
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static struct itest t;

static const char *str(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key)) ?: "";
}

static void start(void)
{
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                exit(harness_exit());
        }
}

static void ok(json_t *r, const char *what)
{
        CHECK_MSG(itest_ok(r), "%s: %s %s", what, itest_error(r), str(r, "message"));
        json_decref(r);
}

static bool tainted(const char *bdf)
{
        json_t *r = itest_call(&t, json_pack("{s:s, s:s}", "op", "owner", "device", bdf));
        bool v = json_is_true(json_object_get(r, "tainted"));
        json_decref(r);
        return v;
}

static bool listed_tainted(const char *bdf)
{
        json_t *r = itest_call(&t, json_pack("{s:s}", "op", "list")), *e;
        bool found = false;
        size_t i;

        json_array_foreach(json_object_get(r, "tainted"), i, e) found |=
                streq(str(e, "device"), bdf);
        json_decref(r);
        return found;
}

static json_t *untaint(const char *bdf)
{
        return itest_call(&t, json_pack("{s:s, s:s}", "op", "untaint", "device", bdf));
}

static void test_required(void)
{
        json_t *r = itest_target(&t, "assign", "net-pv", 0, DEV_NORESET);

        CHECK_STREQ(itest_error(r), "reset-failed");
        CHECK_MSG(strstr(str(r, "message"), "has none (no reset method)"), "%s",
                  str(r, "message"));
        json_decref(r);
        CHECK(!tainted(DEV_NORESET)); /* no reset was tried */
}

static void test_before_assign(void)
{
        size_t off = itest_log_size(&t);
        char *out = NULL, *err = NULL;
        json_t *r;

        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_GPU, "EIO"), 0);
        r = itest_target(&t, "assign", "render-1", 0, DEV_GPU);
        CHECK_STREQ(itest_error(r), "reset-failed");
        CHECK_STREQ(str(r, "check"), "reset");
        CHECK_MSG(strstr(str(r, "message"), "reset methods: flr") &&
                          strstr(str(r, "message"), "tainted"),
                  "%s", str(r, "message"));
        json_decref(r);
        CHECK(tainted(DEV_GPU));
        CHECK(listed_tainted(DEV_GPU));
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "kind=taint", "device=" DEV_GPU, "decision=tainted"),
                  "no taint audit record");
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_GPU, NULL), 0);

        /* Durable: after a restart, still refused, for any domain (the previous one is unknown). */
        itest_stop(&t);
        start();
        CHECK(tainted(DEV_GPU));
        json_int_t assigns = itest_calls(&t, "assign");
        r = itest_target(&t, "assign", "render-2", 0, DEV_GPU);
        CHECK_STREQ(itest_error(r), "reset-failed");
        CHECK_MSG(strstr(str(r, "message"), "is tainted") &&
                          strstr(str(r, "message"), "passguard untaint " DEV_GPU),
                  "%s", str(r, "message"));
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);

        /* The CLI shows it; an admin clears it, audited. */
        CHECK_INTEQ(ITEST_CLI(&t, &out, &err, "owner", DEV_GPU), 0);
        CHECK_MSG(out && strstr(out, "tainted: yes, the reset before an assign failed"), "%s",
                  out ?: "");
        free(out);
        free(err);
        out = err = NULL;
        CHECK_INTEQ(ITEST_CLI(&t, &out, &err, "list"), 0);
        CHECK_MSG(out && strstr(out, "tainted devices"), "%s", out ?: "");
        free(out);
        free(err);
        out = err = NULL;
        off = itest_log_size(&t);
        CHECK_INTEQ(ITEST_CLI(&t, &out, &err, "untaint", DEV_GPU), 0);
        CHECK_MSG(out && strstr(out, DEV_GPU " is no longer tainted"), "%s", out ?: "");
        free(out);
        free(err);
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "kind=taint", "op=untaint", "device=" DEV_GPU,
                                "decision=untainted"),
                  "no untaint audit record");
        CHECK(!tainted(DEV_GPU));
        r = untaint(DEV_GPU);
        CHECK(itest_ok(r) && json_is_false(json_object_get(r, "was_tainted")));
        json_decref(r);
        ok(itest_target(&t, "assign", "render-2", 0, DEV_GPU), "assign after untaint");
        ok(itest_target(&t, "release", "render-2", 0, DEV_GPU), "release");
}

static void test_after_release(void)
{
        json_t *r;

        ok(itest_target(&t, "assign", "net-pv", 0, DEV_NIC), "assign");
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, "EIO"), 0);
        r = itest_target(&t, "release", "net-pv", 0, DEV_NIC);
        CHECK(itest_ok(r)); /* the release is done either way */
        json_decref(r);
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, NULL), 0);
        CHECK(tainted(DEV_NIC));
        /* Back to the domain that had it: fine; to another: refused. */
        r = itest_target(&t, "explain", "net-pv", 0, DEV_NIC);
        CHECK_STREQ(str(r, "decision"), "allow");
        json_decref(r);
        /* Its reset fails again on the way back: it is still that domain's to get back. */
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, "EIO"), 0);
        r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_STREQ(itest_error(r), "reset-failed");
        json_decref(r);
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, NULL), 0);
        r = itest_target(&t, "explain", "net-pv", 0, DEV_NIC);
        CHECK_MSG(streq(str(r, "decision"), "allow"), "the domain that had it lost it: %s",
                  str(r, "message"));
        json_decref(r);
        r = itest_target(&t, "assign", "net-pvh", 0, DEV_NIC);
        CHECK_STREQ(itest_error(r), "reset-failed");
        CHECK_MSG(strstr(str(r, "message"), "its reset after domid 7's grant ended failed"), "%s",
                  str(r, "message"));
        json_decref(r);
        ok(untaint(DEV_NIC), "untaint");
        ok(itest_target(&t, "assign", "net-pvh", 0, DEV_NIC), "assign after untaint");
}

static void test_domain_death(void)
{
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, "EIO"), 0);
        CHECK_INTEQ(itest_destroy_domain(&t, DOM_NETPVH), 0);
        CHECK_MSG(ITEST_WAIT_FOR(tainted(DEV_NIC), 3000), "no taint after the domain's death");
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, NULL), 0);
        json_t *r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_STREQ(itest_error(r), "reset-failed");
        json_decref(r);
        ok(untaint(DEV_NIC), "untaint");
}

/* A bus reset that fails names the devices on the same bus. */
static void test_bus(void)
{
        json_t *r;

        CHECK_INTEQ(itest_set_device(&t, DEV_SLOT0, "reset", json_string("bus")), 0);
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_SLOT0, "EIO"), 0);
        r = itest_call(&t, json_pack("{s:s, s:s, s:[s, s]}", "op", "assign", "domain", "net-pv",
                                     "devices", DEV_SLOT0, DEV_SLOT1));
        CHECK_STREQ(itest_error(r), "reset-failed");
        CHECK_STREQ(str(r, "device"), DEV_SLOT0);
        CHECK_MSG(strstr(str(r, "message"), "reset methods: bus; a bus reset is blocked by " DEV_SLOT1
                                            " (on the same bus)"),
                  "%s", str(r, "message"));
        json_decref(r);
        CHECK(tainted(DEV_SLOT0));
        CHECK(!tainted(DEV_SLOT1));
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_SLOT0, NULL), 0);
        ok(untaint(DEV_SLOT0), "untaint");
}

/*
 * A crash around a release whose reset fails: the taint is never lost. After
 * the release's record (with the taint's, in one sync) the restarted daemon
 * has both; before it, the grant is still on record and the start-up release
 * resets the device again, which fails again and taints it.
 */
static void test_crash(const char *point)
{
        char env[128], buf[32];

        ok(itest_target(&t, "assign", "net-pv", 0, DEV_NIC), "assign");
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, "EIO"), 0);
        snprintf(env, sizeof(env), "PASSGUARD_TEST_CRASH=%s", point);
        itest_stop(&t);
        if (itest_start(&t, NULL, (const char *const[]){env, NULL}) < 0) {
                CHECK_MSG(false, "%s: passguardd did not start", point);
                return;
        }
        json_decref(itest_target(&t, "release", "net-pv", 0, DEV_NIC));
        CHECK_MSG(itest_wait_exit(&t, 5000) == 0, "%s: the daemon did not die", point);
        start();
        CHECK_MSG(tainted(DEV_NIC), "%s: the taint was lost", point);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "io");
        json_t *r = itest_target(&t, "assign", "net-hvm", 0, DEV_NIC);
        CHECK_MSG(streq(itest_error(r), "reset-failed"), "%s: %s", point, itest_error(r));
        json_decref(r);
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, NULL), 0);
        ok(untaint(DEV_NIC), "untaint");
}

/* Only an admin may untaint. */
static void test_untaint_admin(void)
{
        json_t *r;

        ok(itest_target(&t, "assign", "net-pv", 0, DEV_NIC), "assign");
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, "EIO"), 0);
        json_decref(itest_target(&t, "release", "net-pv", 0, DEV_NIC));
        CHECK_INTEQ(itest_set_fault(&t, "reset", DEV_NIC, NULL), 0);
        CHECK(tainted(DEV_NIC));
        CHECK_INTEQ(itest_write_file(t.policy,
                                     "version = 1;\nclients = ( { name = \"root\"; uid = 0; } );\n"
                                     "rules = ( { name = \"all\"; action = \"allow\"; } );\n"),
                    0);
        ok(itest_call(&t, json_pack("{s:s}", "op", "reload")), "reload (no admins)");
        r = untaint(DEV_NIC);
        CHECK_STREQ(itest_error(r), "not-authorized");
        json_decref(r);
        CHECK(tainted(DEV_NIC));
        /* Back to the default policy: a restart, since reload is an admin's too. */
        CHECK_INTEQ(itest_write_file(t.policy, itest_default_policy), 0);
        itest_stop(&t);
        start();
        ok(untaint(DEV_NIC), "untaint by an admin");
        CHECK(!tainted(DEV_NIC));
}

int main(void)
{
        itest_init(&t, "taint", false);
        start();
        test_required();
        test_before_assign();
        test_after_release();
        test_domain_death();
        test_bus();
        test_crash("release:after-hv");
        test_crash("release:after-commit");
        test_untaint_admin();
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
