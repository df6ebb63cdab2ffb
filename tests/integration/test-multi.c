/* SPDX-License-Identifier: MIT */
/*
 * All-or-nothing multi-device assign ("devices"), on the simulated host:
 * every check runs for every device before any assign call; whole groups
 * only (group-conflict names the missing members), while a single-device
 * request keeps today's rule; a hypervisor refusal of the second device
 * rolls the first back into quarantine, with the refusal naming the device;
 * the group is one journal transaction, rolled back at start-up after a crash
 * between its assign calls or before its outcome record, kept after one
 * after it; explain takes several devices; EPERM from the assign call says
 * what it means; the CLI's `assign DOMAIN BDF...`.
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static struct itest t;

static json_t *devices_request(const char *op, const char *domain, const char *a, const char *b)
{
        json_t *req = json_pack("{s:s, s:s, s:[s]}", "op", op, "domain", domain, "devices", a);

        if (b)
                json_array_append_new(json_object_get(req, "devices"), json_string(b));
        return req;
}

static bool has_grant(const char *bdf)
{
        json_t *store = itest_grants_load(&t);
        bool r = store && itest_grants_find(store, bdf);
        json_decref(store);
        return r;
}

static const char *str(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key)) ?: "";
}

/* What status says of the rollbacks the daemon still has to retry. */
static json_int_t pending_rollbacks(void)
{
        json_t *r = itest_call(&t, json_pack("{s:s}", "op", "status"));
        json_int_t n = json_integer_value(json_object_get(r, "pending_rollbacks"));

        json_decref(r);
        return n;
}

/* The detail of explain's "device" check for net-pv and bdf (a static buffer). */
static const char *device_detail(const char *bdf)
{
        static char buf[512];
        json_t *r = itest_target(&t, "explain", "net-pv", 0, bdf), *c;
        size_t i;

        snprintf(buf, sizeof(buf), "(no device check)");
        json_array_foreach(json_object_get(r, "checks"), i, c) if (streq(str(c, "check"), "device"))
                snprintf(buf, sizeof(buf), "%s", str(c, "detail"));
        json_decref(r);
        return buf;
}

static void start(const char *const *env)
{
        if (itest_start(&t, NULL, env) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                exit(harness_exit());
        }
}

static void test_whole_groups(void)
{
        char buf[32];
        json_t *r;

        /* One device named in "devices": its group-mate must be named too. */
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_SLOT0, NULL));
        CHECK_STREQ(itest_error(r), "group-conflict");
        CHECK_STREQ(str(r, "check"), "group");
        CHECK_STREQ(str(r, "device"), DEV_SLOT0);
        CHECK_MSG(strstr(str(r, "message"), DEV_SLOT1) != NULL, "missing member not named: %s",
                  str(r, "message"));
        json_decref(r);

        /* A single-device request keeps today's rule: a quarantined group-mate is fine. */
        r = itest_target(&t, "assign", "net-pv", 0, DEV_SLOT0);
        CHECK_MSG(itest_ok(r), "single assign: %s", itest_error(r));
        CHECK(json_object_get(r, "grant") && !json_object_get(r, "grants"));
        json_decref(r);
        r = itest_target(&t, "release", "net-pv", 0, DEV_SLOT0);
        CHECK(itest_ok(r));
        json_decref(r);

        /* The whole group: granted together, one grant each, in the request's order. */
        json_int_t assigns = itest_calls(&t, "assign");
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_SLOT1, DEV_SLOT0));
        CHECK_MSG(itest_ok(r), "multi assign: %s %s", itest_error(r), str(r, "message"));
        json_t *grants = json_object_get(r, "grants");
        CHECK_INTEQ(json_array_size(grants), 2);
        CHECK_STREQ(str(json_array_get(grants, 0), "device"), DEV_SLOT1);
        CHECK_STREQ(str(json_array_get(grants, 1), "device"), DEV_SLOT0);
        CHECK(!json_object_get(r, "grant"));
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns + 2);
        CHECK_STREQ(itest_owner(&t, DEV_SLOT0, buf), "7");
        CHECK_STREQ(itest_owner(&t, DEV_SLOT1, buf), "7");
        CHECK(has_grant(DEV_SLOT0) && has_grant(DEV_SLOT1));
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        for (const char *const *b = (const char *const[]){DEV_SLOT0, DEV_SLOT1, NULL}; *b; b++) {
                r = itest_target(&t, "release", "net-pv", 0, *b);
                CHECK(itest_ok(r));
                json_decref(r);
        }
}

static void test_checks_first(void)
{
        json_int_t assigns = itest_calls(&t, "assign"), resets = itest_calls(&t, "reset");
        json_t *r;

        /* The second device fails a check: no assign call, no reset, for either. */
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_NIC, DEV_SATA));
        CHECK_STREQ(itest_error(r), "protected-device");
        CHECK_STREQ(str(r, "device"), DEV_SATA);
        CHECK_STREQ(str(r, "check"), "protected");
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
        CHECK_INTEQ(itest_calls(&t, "reset"), resets);
        CHECK(!has_grant(DEV_NIC));

        /* The first one fails: the refusal names it, and the policy's rule. */
        r = itest_call(&t, devices_request("assign", "render-1", DEV_SLOT0, DEV_SLOT1));
        CHECK_STREQ(itest_error(r), "denied");
        CHECK_STREQ(str(r, "device"), DEV_SLOT0);
        CHECK_STREQ(str(r, "rule"), "no-nics-for-render");
        json_decref(r);

        /* A rule's limit counts the devices of the request before this one. */
        r = itest_call(&t, devices_request("assign", "render-1", DEV_GPU, DEV_GPU2));
        CHECK_STREQ(itest_error(r), "limit-reached");
        CHECK_STREQ(str(r, "device"), DEV_GPU2);
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);

        /* Malformed: both forms, an empty list, a device twice. */
        r = itest_call(&t, json_pack("{s:s, s:s, s:s, s:[s]}", "op", "assign", "domain", "net-pv",
                                     "device", DEV_NIC, "devices", DEV_SPARE));
        CHECK_STREQ(itest_error(r), "bad-request");
        json_decref(r);
        r = itest_call(&t, json_pack("{s:s, s:s, s:[]}", "op", "assign", "domain", "net-pv",
                                     "devices"));
        CHECK_STREQ(itest_error(r), "bad-request");
        json_decref(r);
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_NIC, "04:00.0"));
        CHECK_STREQ(itest_error(r), "bad-request");
        json_decref(r);
}

static void test_rollback(void)
{
        json_int_t assigns = itest_calls(&t, "assign"), deassigns = itest_calls(&t, "deassign");
        size_t off = itest_log_size(&t);
        char buf[32];
        json_t *r;

        /* The hypervisor refuses the second: the first goes back into quarantine. */
        CHECK_INTEQ(itest_set_fault(&t, "assign", DEV_SPARE, "EIO"), 0);
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_NIC, DEV_SPARE));
        CHECK_STREQ(itest_error(r), "hypervisor-error");
        CHECK_STREQ(str(r, "device"), DEV_SPARE);
        CHECK_STREQ(str(r, "errno"), "EIO");
        CHECK_MSG(strstr(str(r, "message"), "back in quarantine") != NULL, "%s",
                  str(r, "message"));
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns + 2);
        CHECK_INTEQ(itest_calls(&t, "deassign"), deassigns + 1);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "io");
        CHECK_STREQ(itest_owner(&t, DEV_SPARE, buf), "io");
        CHECK(!has_grant(DEV_NIC) && !has_grant(DEV_SPARE));
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "kind=refuse", "device=" DEV_SPARE, "hypervisor-error"),
                  "the refusal's audit record names the device that failed");
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);

        /* EPERM: a reserved memory region shared with another device. */
        CHECK_INTEQ(itest_set_fault(&t, "assign", DEV_SPARE, "EPERM"), 0);
        r = itest_target(&t, "assign", "net-pv", 0, DEV_SPARE);
        CHECK_STREQ(itest_error(r), "hypervisor-error");
        CHECK_STREQ(str(r, "errno"), "EPERM");
        CHECK_MSG(strstr(str(r, "message"),
                         "reserved memory region shared with another device; see rdm_policy"),
                  "EPERM detail: %s", str(r, "message"));
        json_decref(r);
        CHECK_INTEQ(itest_set_fault(&t, "assign", DEV_SPARE, NULL), 0);

        /* The device facts say how many reserved regions the host holds for it, when it says. */
        CHECK_MSG(strstr(device_detail(DEV_SPARE), "reserved memory regions") == NULL,
                  "a host that does not say: %s", device_detail(DEV_SPARE));
        CHECK_INTEQ(itest_set_device(&t, DEV_SPARE, "rdm_regions", json_integer(2)), 0);
        CHECK_MSG(strstr(device_detail(DEV_SPARE), ", reserved memory regions: 2") != NULL, "%s",
                  device_detail(DEV_SPARE));
        CHECK_INTEQ(itest_set_device(&t, DEV_SPARE, "rdm_regions", json_integer(0)), 0);
        CHECK_MSG(strstr(device_detail(DEV_SPARE), ", reserved memory regions: 0") != NULL, "%s",
                  device_detail(DEV_SPARE));
        CHECK_INTEQ(itest_set_device(&t, DEV_SPARE, "rdm_regions", NULL), 0);

        /* The rollback refused too: said so, retried until it succeeds, granted to no one meanwhile. */
        CHECK_INTEQ(itest_set_fault(&t, "assign", DEV_SPARE, "EIO"), 0);
        CHECK_INTEQ(itest_set_fault(&t, "deassign", DEV_NIC, "EBUSY"), 0);
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_NIC, DEV_SPARE));
        CHECK_STREQ(itest_error(r), "hypervisor-error");
        CHECK_MSG(strstr(str(r, "message"), "could not be taken back yet") &&
                          !strstr(str(r, "message"), "are back in quarantine"),
                  "a failed rollback reported: %s", str(r, "message"));
        json_decref(r);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "7");
        CHECK_INTEQ(pending_rollbacks(), 1);
        r = itest_target(&t, "assign", "net-pvh", 0, DEV_NIC);
        CHECK_MSG(!itest_ok(r), "a device whose rollback is pending was granted");
        json_decref(r);
        CHECK_INTEQ(itest_set_fault(&t, "deassign", DEV_NIC, NULL), 0);
        CHECK_INTEQ(itest_set_fault(&t, "assign", DEV_SPARE, NULL), 0);
        CHECK_MSG(ITEST_WAIT_FOR(streq(itest_owner(&t, DEV_NIC, buf), "io"), 10000),
                  "the rollback was not retried: %s", buf);
        CHECK_MSG(ITEST_WAIT_FOR(pending_rollbacks() == 0, 5000),
                  "pending_rollbacks did not go back to 0");
        CHECK(!has_grant(DEV_NIC) && !has_grant(DEV_SPARE));

        /* With the fault gone, the same request goes through. */
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_NIC, DEV_SPARE));
        CHECK_MSG(itest_ok(r), "%s", itest_error(r));
        json_decref(r);
        for (const char *const *b = (const char *const[]){DEV_NIC, DEV_SPARE, NULL}; *b; b++) {
                r = itest_target(&t, "release", "net-pv", 0, *b);
                CHECK(itest_ok(r));
                json_decref(r);
        }
}

/* A crash at point of a group assign: after a restart, the group is whole or gone. */
static void test_crash(const char *point, bool kept)
{
        char env[128], buf[32];
        json_t *r;

        snprintf(env, sizeof(env), "PASSGUARD_TEST_CRASH=%s", point);
        itest_stop(&t);
        start((const char *const[]){env, NULL});
        r = itest_call(&t, devices_request("assign", "net-pv", DEV_SLOT0, DEV_SLOT1));
        json_decref(r);
        CHECK_MSG(itest_wait_exit(&t, 5000) == 0, "%s: the daemon did not die", point);
        size_t off = itest_log_size(&t);
        start(NULL);
        if (kept) {
                CHECK_MSG(has_grant(DEV_SLOT0) && has_grant(DEV_SLOT1), "%s: grants lost", point);
                CHECK_STREQ(itest_owner(&t, DEV_SLOT0, buf), "7");
                CHECK_STREQ(itest_owner(&t, DEV_SLOT1, buf), "7");
                for (const char *const *b = (const char *const[]){DEV_SLOT0, DEV_SLOT1, NULL}; *b;
                     b++) {
                        r = itest_target(&t, "release", "net-pv", 0, *b);
                        CHECK(itest_ok(r));
                        json_decref(r);
                }
        } else {
                CHECK_MSG(!has_grant(DEV_SLOT0) && !has_grant(DEV_SLOT1), "%s: a grant survived",
                          point);
                CHECK_MSG(streq(itest_owner(&t, DEV_SLOT0, buf), "io"), "%s: %s left with %s",
                          point, DEV_SLOT0, buf);
                CHECK_MSG(streq(itest_owner(&t, DEV_SLOT1, buf), "io"), "%s: %s left with %s",
                          point, DEV_SLOT1, buf);
                CHECK_MSG(ITEST_LOG_HAS(&t, off, "kind=unmanaged", "device=" DEV_SLOT0,
                                        "decision=rolled-back", "multi-device"),
                          "%s: no audit record of the rollback", point);
        }
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
}

static void test_explain(void)
{
        json_int_t assigns = itest_calls(&t, "assign");
        json_t *r, *devices;

        r = itest_call(&t, devices_request("explain", "net-pv", DEV_SLOT0, DEV_SLOT1));
        CHECK(itest_ok(r));
        CHECK_STREQ(str(r, "decision"), "allow");
        devices = json_object_get(r, "devices");
        CHECK_INTEQ(json_array_size(devices), 2);
        CHECK_STREQ(str(json_array_get(devices, 1), "device"), DEV_SLOT1);
        CHECK_STREQ(str(json_array_get(devices, 1), "decision"), "allow");
        CHECK(json_array_size(json_object_get(json_array_get(devices, 0), "checks")) == 15);
        json_decref(r);

        r = itest_call(&t, devices_request("explain", "net-pv", DEV_NIC, DEV_SATA));
        CHECK(itest_ok(r));
        CHECK_STREQ(str(r, "decision"), "deny");
        CHECK_STREQ(str(r, "device"), DEV_SATA);
        CHECK_STREQ(str(r, "error"), "protected-device");
        CHECK_STREQ(str(r, "check"), "protected");
        devices = json_object_get(r, "devices");
        CHECK_INTEQ(json_array_size(devices), 2);
        CHECK_STREQ(str(json_array_get(devices, 0), "decision"), "allow");
        CHECK_STREQ(str(json_array_get(devices, 1), "decision"), "deny");
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
}

static void test_cli(void)
{
        char *out = NULL, *err = NULL;
        int rc;

        rc = ITEST_CLI(&t, &out, &err, "assign", "net-pv", "07:00.0", DEV_SLOT1);
        CHECK_INTEQ(rc, 0);
        CHECK_MSG(out && strstr(out, "granted " DEV_SLOT0 " to domain 7 (net-pv)") &&
                          strstr(out, "granted " DEV_SLOT1 " to domain 7 (net-pv)"),
                  "%s", out ?: "");
        free(out);
        free(err);
        out = err = NULL;
        rc = ITEST_CLI(&t, &out, &err, "assign", "net-pvh", DEV_NIC, DEV_SATA);
        CHECK_INTEQ(rc, 1);
        CHECK_MSG(err && strstr(err, "refused: protected-device") &&
                          strstr(err, "(device: " DEV_SATA ", check: protected)"),
                  "%s", err ?: "");
        free(out);
        free(err);
        out = err = NULL;
        rc = ITEST_CLI(&t, &out, &err, "explain", "net-pvh", DEV_NIC, DEV_SATA);
        CHECK_INTEQ(rc, 1);
        CHECK_MSG(out && strstr(out, "device: " DEV_SATA) && strstr(out, DEV_NIC ": allow"),
                  "%s", out ?: "");
        free(out);
        free(err);
        for (const char *const *b = (const char *const[]){DEV_SLOT0, DEV_SLOT1, NULL}; *b; b++) {
                json_t *r = itest_target(&t, "release", "net-pv", 0, *b);
                CHECK(itest_ok(r));
                json_decref(r);
        }
}

/* Several devices share one rdm policy, in explain as in assign: relaxed only where every rule allows it. */
static void test_rdm_group(void)
{
        static const char policy[] =
                "version = 1;\n"
                "clients = ( { name = \"root\"; uid = 0; } );\n"
                "admins = [ \"root\" ];\n"
                "rules = (\n"
                "  { name = \"nic-relaxed\"; action = \"allow\"; rdm_policy = \"relaxed\";\n"
                "    devices = ( { bdf = \"" DEV_NIC "\"; } ); domains = ( { name = \"net-*\"; } ); },\n"
                "  { name = \"spare-strict\"; action = \"allow\";\n"
                "    devices = ( { bdf = \"" DEV_SPARE "\"; } ); domains = ( { name = \"net-*\"; } ); }\n"
                ");\n";
        json_t *req, *r, *devices, *grants;

        CHECK_INTEQ(itest_write_file(t.policy, policy), 0);
        r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        CHECK_MSG(itest_ok(r), "reload: %s", itest_error(r));
        json_decref(r);

        /* Alone, the NIC's rule allows relaxed. */
        req = devices_request("explain", "net-pv", DEV_NIC, NULL);
        json_object_set_new(req, "rdm_policy", json_string("relaxed"));
        r = itest_call(&t, req);
        devices = json_object_get(r, "devices");
        CHECK_STREQ(str(json_array_get(devices, 0), "rdm_policy"), "relaxed");
        json_decref(r);

        /* With the spare, whose rule does not: both strict, in explain and in the grants. */
        req = devices_request("explain", "net-pv", DEV_NIC, DEV_SPARE);
        json_object_set_new(req, "rdm_policy", json_string("relaxed"));
        r = itest_call(&t, req);
        devices = json_object_get(r, "devices");
        CHECK_STREQ(str(r, "decision"), "allow");
        CHECK_STREQ(str(json_array_get(devices, 0), "rdm_policy"), "strict");
        CHECK_STREQ(str(json_array_get(devices, 1), "rdm_policy"), "strict");
        json_decref(r);
        req = devices_request("assign", "net-pv", DEV_NIC, DEV_SPARE);
        json_object_set_new(req, "rdm_policy", json_string("relaxed"));
        r = itest_call(&t, req);
        CHECK_MSG(itest_ok(r), "%s", itest_error(r));
        grants = json_object_get(r, "grants");
        CHECK_STREQ(str(json_array_get(grants, 0), "rdm_policy"), "strict");
        CHECK_STREQ(str(json_array_get(grants, 1), "rdm_policy"), "strict");
        json_decref(r);
        for (const char *const *b = (const char *const[]){DEV_NIC, DEV_SPARE, NULL}; *b; b++) {
                r = itest_target(&t, "release", "net-pv", 0, *b);
                CHECK(itest_ok(r));
                json_decref(r);
        }
        CHECK_INTEQ(itest_write_file(t.policy, itest_default_policy), 0);
        r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        CHECK(itest_ok(r));
        json_decref(r);
}

int main(void)
{
        itest_init(&t, "multi", false);
        start(NULL);
        test_whole_groups();
        test_checks_first();
        test_rollback();
        test_explain();
        test_cli();
        test_rdm_group();
        test_crash("assign-group:between-hv", false);
        test_crash("assign-group:after-hv", false);
        test_crash("assign-group:after-commit", true);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
