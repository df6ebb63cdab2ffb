/* SPDX-License-Identifier: MIT */
/*
 * Every error code of the wire protocol, reached through a real daemon, with
 * the failing check named and (invariant 3) no assign call made for any
 * refusal that a check decides. state-error has its own test
 * (test-state-error); internal is unreachable on purpose: it stands for a bug.
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static struct itest t;

static bool streq_check(const json_t *reply, const char *check)
{
        const char *c = json_string_value(json_object_get(reply, "check"));
        return c && streq(c, check);
}

/* An assign (or other target op) that must be refused with code by check. */
static void refused(const char *op, const char *name, uint32_t domid, const char *bdf,
                    const char *code, const char *check)
{
        json_int_t before = itest_calls(&t, "assign");
        json_t *r = itest_target(&t, op, name, domid, bdf);
        const char *msg = json_string_value(json_object_get(r, "message"));

        CHECK_MSG(strcmp(itest_error(r), code) == 0, "%s %s/%u %s: got \"%s\", expected %s", op,
                  name ? name : "-", domid, bdf, itest_error(r), code);
        CHECK_MSG(msg && *msg, "%s refusal has no message", code);
        if (check)
                CHECK_MSG(streq_check(r, check), "%s: check is \"%s\", expected %s", code,
                          json_string_value(json_object_get(r, "check")) ?: "(none)", check);
        CHECK_MSG(itest_calls(&t, "assign") == before, "%s: the hypervisor's assign was called",
                  code);
        json_decref(r);
}

static void granted(const char *name, uint32_t domid, const char *bdf)
{
        json_t *r = itest_target(&t, "assign", name, domid, bdf);
        CHECK_MSG(itest_ok(r), "assign %s %s: %s (%s)", name ? name : "-", bdf, itest_error(r),
                  json_string_value(json_object_get(r, "message")) ?: "");
        json_decref(r);
}

static void released(const char *name, uint32_t domid, const char *bdf)
{
        json_t *r = itest_target(&t, "release", name, domid, bdf);
        CHECK_MSG(itest_ok(r), "release %s %s: %s", name ? name : "-", bdf, itest_error(r));
        json_decref(r);
}

static void raw_refused(const char *line, const char *code)
{
        struct itest_conn *c = itest_connect(&t);
        char *reply = NULL;
        json_t *j = NULL;

        CHECK(c);
        if (!c)
                return;
        itest_send_raw(c, line, strlen(line));
        int r = itest_recv_line(c, 5000, &reply);
        CHECK_MSG(r == 0, "no reply to %s", line);
        if (reply)
                j = json_loads(reply, 0, NULL);
        CHECK_MSG(strcmp(itest_error(j), code) == 0, "%s: got %s, expected %s", line,
                  itest_error(j), code);
        json_decref(j);
        free(reply);
        itest_conn_close(c);
}

static void restart(void)
{
        itest_stop(&t);
        int r = itest_start(&t, NULL, NULL);
        CHECK_MSG(r == 0, "passguardd did not restart: %d", r);
}

int main(void)
{
        char buf[32];

        itest_init(&t, "errors", false);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }

        /* bad-request, unsupported-version */
        raw_refused("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\"}\n", "bad-request");
        raw_refused("{\"op\":\"frobnicate\",\"id\":2}\n", "bad-request");
        raw_refused("{\"op\":\"hello\",\"id\":3,\"version\":2}\n", "unsupported-version");

        /* the domain */
        refused("assign", "nowhere", 0, DEV_GPU, "no-such-domain", "domain");
        refused("assign", NULL, 77, DEV_GPU, "no-such-domain", "domain");
        refused("assign", NULL, 0, DEV_SPARE, "no-such-domain", "domain");
        refused("assign", NULL, 0x7FF1, DEV_SPARE, "no-such-domain", "domain"); /* DOMID_IO */
        refused("assign", "dying-1", 0, DEV_SPARE, "domain-dying", "domain");

        /* the device */
        refused("assign", "net-pv", 0, DEV_GHOST, "no-such-device", "device");
        refused("assign", "net-pv", 0, DEV_SATA, "protected-device", "protected");
        refused("assign", "net-pv", 0, DEV_IGB, "not-assignable", "assignable");

        /* group-conflict: the other function of the slot belongs to another domain */
        granted("net-pv", 0, DEV_SLOT0);
        refused("assign", "net-pvh", 0, DEV_SLOT1, "group-conflict", "group");
        granted("net-pv", 0, DEV_SLOT1); /* the same domain may have the whole group */
        released("net-pv", 0, DEV_SLOT1);
        released("net-pv", 0, DEV_SLOT0);

        /* busy: granted by passguard, or assigned behind its back */
        granted("net-pv", 0, DEV_NIC);
        refused("assign", "net-pvh", 0, DEV_NIC, "busy", "free");
        refused("assign", "net-pv", 0, DEV_NIC, "busy", "free");
        released("net-pv", 0, DEV_NIC);
        CHECK_INTEQ(itest_set_owner(&t, DEV_SPARE, "12"), 0);
        refused("assign", "net-pv", 0, DEV_SPARE, "busy", "free");
        CHECK_INTEQ(itest_set_owner(&t, DEV_SPARE, "io"), 0);

        /* domain-no-iommu, denied (by a rule and by default), limit-reached, reset-failed */
        refused("assign", "noiommu-1", 0, DEV_SPARE, "domain-no-iommu", "domain-iommu");
        refused("assign", "render-1", 0, DEV_NIC, "denied", "policy");
        json_t *r = itest_target(&t, "assign", "render-1", 0, DEV_NIC);
        CHECK_STREQ(json_string_value(json_object_get(r, "rule")), "no-nics-for-render");
        json_decref(r);
        refused("assign", "render-pv", 0, DEV_GPU, "denied", "policy");
        granted("render-1", 0, DEV_GPU);
        refused("assign", "render-1", 0, DEV_GPU2, "limit-reached", "limit");
        granted("render-2", 0, DEV_GPU2);
        released("render-1", 0, DEV_GPU);
        released("render-2", 0, DEV_GPU2);
        refused("assign", "net-pv", 0, DEV_NORESET, "reset-failed", "reset");
        CHECK_STREQ(itest_owner(&t, DEV_NORESET, buf), "io");

        /* not-assigned */
        refused("release", "net-pv", 0, DEV_SPARE, "not-assigned", NULL);
        refused("release", "net-pv", 0, DEV_GPU, "not-assigned", NULL);

        /* hypervisor-error: the assign call itself fails */
        CHECK_INTEQ(itest_set_fault(&t, "assign", DEV_SPARE, "EIO"), 0);
        json_int_t before = itest_calls(&t, "assign");
        r = itest_target(&t, "assign", "net-pv", 0, DEV_SPARE);
        CHECK_STREQ(itest_error(r), "hypervisor-error");
        CHECK_STREQ(json_string_value(json_object_get(r, "errno")), "EIO");
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), before + 1);
        CHECK_STREQ(itest_owner(&t, DEV_SPARE, buf), "io");
        json_t *store = itest_grants_load(&t);
        CHECK(store && !itest_grants_find(store, DEV_SPARE));
        json_decref(store);
        CHECK_INTEQ(itest_set_fault(&t, "assign", DEV_SPARE, NULL), 0);
        granted("net-pv", 0, DEV_SPARE);
        released("net-pv", 0, DEV_SPARE);

        /* policy-invalid: a reload of a bad file */
        CHECK_INTEQ(itest_write_file(t.policy, "version = 1;\nclients = ( { name = \"x\"; } );\n"
                                               "bogus = 3;\n"),
                    0);
        r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        CHECK_STREQ(itest_error(r), "policy-invalid");
        json_decref(r);
        CHECK_INTEQ(itest_write_file(t.policy, itest_default_policy), 0);

        /* not-authorized: root is a known client but not an admin */
        CHECK_INTEQ(itest_write_file(t.policy,
                                     "version = 1;\n"
                                     "clients = ( { name = \"root\"; uid = 0; },\n"
                                     "            { name = \"operator\"; uid = 65534; } );\n"
                                     "admins = [ \"operator\" ];\n"
                                     "rules = ( { name = \"net\"; action = \"allow\";\n"
                                     "            domains = ( { name = \"net-*\"; } ); reset = "
                                     "\"never\"; } );\n"),
                    0);
        restart();
        r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        CHECK_STREQ(itest_error(r), "not-authorized");
        json_decref(r);
        refused("unprepare", NULL, ITEST_NO_DOMAIN, DEV_SPARE, "not-authorized", NULL);
        refused("prepare", NULL, ITEST_NO_DOMAIN, DEV_E1000, "not-authorized", NULL);
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "null");
        granted("net-pv", 0, DEV_NIC); /* a client, though */
        released("net-pv", 0, DEV_NIC);
        CHECK_INTEQ(itest_write_file(t.policy, itest_default_policy), 0);

        /* no-iommu and no-interrupt-remapping: host facts, read at start-up at the latest */
        CHECK_INTEQ(itest_set_bool(&t, "interrupt_remapping", false), 0);
        restart();
        refused("assign", "net-pv", 0, DEV_SPARE, "no-interrupt-remapping", "interrupt-remapping");
        CHECK_INTEQ(itest_set_bool(&t, "iommu", false), 0);
        restart();
        refused("assign", "net-pv", 0, DEV_SPARE, "no-iommu", "iommu");
        refused("assign", "render-1", 0, DEV_GPU, "no-iommu", "iommu");
        CHECK_INTEQ(itest_calls(&t, "assign"), before + 3);

        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
