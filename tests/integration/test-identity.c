/* SPDX-License-Identifier: MIT */
/*
 * Identity-bound devices, on the simulated host: prepare records what the
 * device is (ids, class, serial number, PCI path); editing the device's ids
 * in the host file under the running daemon makes the next assign refuse
 * identity-changed at the check "identity" (after "protected", before
 * "assignable"), naming what changed, with no assign call; the change is
 * reported (audit "identity") when the daemon notices it and at start-up;
 * unprepare and prepare record the new device. A serial number or a path
 * that changed is refused too. Policy matchers on serial and path. And the
 * device holding the root file system: protected at start unless the policy
 * says protect_root_device = false, and explain says why.
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

/* The check names of an explain reply, joined by ' '. */
static void check_names(const json_t *reply, char *buf, size_t size)
{
        size_t i, len = 0;
        json_t *c;

        buf[0] = '\0';
        json_array_foreach(json_object_get(reply, "checks"), i, c) len += (size_t)snprintf(
                buf + len, len < size ? size - len : 0, "%s%s", i ? " " : "", str(c, "check"));
}

static void test_ids(void)
{
        json_int_t assigns;
        size_t off;
        char names[512];
        json_t *r, *id;

        ok(itest_call(&t, json_pack("{s:s, s:s}", "op", "prepare", "device", DEV_E1000)),
           "prepare");
        /* What was recorded, as owner says it. */
        r = itest_call(&t, json_pack("{s:s, s:s}", "op", "owner", "device", DEV_E1000));
        id = json_object_get(r, "identity");
        CHECK_STREQ(str(id, "vendor"), "0x8086");
        CHECK_STREQ(str(id, "device"), "0x15b8");
        CHECK_STREQ(str(id, "class"), "0x020000");
        CHECK_STREQ(str(id, "serial"), "");
        json_decref(r);

        r = itest_target(&t, "explain", "net-pv", 0, DEV_E1000);
        CHECK_STREQ(str(r, "decision"), "allow");
        check_names(r, names, sizeof(names));
        CHECK_MSG(strstr(names, "device protected identity assignable group"), "%s", names);
        json_decref(r);

        /* Another device at the address, the daemon running. */
        off = itest_log_size(&t);
        CHECK_INTEQ(itest_set_device(&t, DEV_E1000, "device", json_string("0x1533")), 0);
        assigns = itest_calls(&t, "assign");
        r = itest_target(&t, "assign", "net-pv", 0, DEV_E1000);
        CHECK_STREQ(itest_error(r), "identity-changed");
        CHECK_STREQ(str(r, "check"), "identity");
        CHECK_MSG(strstr(str(r, "message"), "device id 0x15b8 became 0x1533"), "%s",
                  str(r, "message"));
        json_decref(r);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
        /* The daemon saw the host change and said so once (audit kind identity). */
        CHECK_MSG(itest_log_wait(&t, off,
                                 (const char *const[]){"kind=identity", "op=domain-event",
                                                       "device=" DEV_E1000, "0x15b8 became 0x1533",
                                                       NULL},
                                 2000),
                  "no identity audit record after the change");
        /* Not again at the next event while it lasts: a domain's death, seen by its record. */
        ok(itest_target(&t, "assign", "render-2", 0, DEV_GPU2), "assign render-2");
        CHECK_INTEQ(itest_destroy_domain(&t, DOM_RENDER2), 0);
        CHECK_MSG(
                itest_log_wait(&t, off,
                               (const char *const[]){"kind=domain-gone", "device=" DEV_GPU2, NULL},
                               3000),
                "no domain-gone record for " DEV_GPU2);
        CHECK_INTEQ(
                itest_log_count(&t, off,
                                (const char *const[]){"kind=identity", "device=" DEV_E1000, NULL}),
                1);

        /* At start-up too. */
        itest_stop(&t);
        off = itest_log_size(&t);
        start();
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "kind=identity", "op=reconcile", "device=" DEV_E1000,
                                "decision=changed"),
                  "no identity audit record at start-up");

        /* The admin accepts the new device: unprepare, prepare. */
        ok(itest_call(&t, json_pack("{s:s, s:s}", "op", "unprepare", "device", DEV_E1000)),
           "unprepare");
        ok(itest_call(&t, json_pack("{s:s, s:s}", "op", "prepare", "device", DEV_E1000)),
           "prepare again");
        ok(itest_target(&t, "assign", "net-pv", 0, DEV_E1000), "assign the new device");
        /* A grant records it too; the change of a granted device is reported at start-up. */
        r = itest_call(&t, json_pack("{s:s, s:s}", "op", "owner", "device", DEV_E1000));
        CHECK_STREQ(str(json_object_get(r, "identity"), "device"), "0x1533");
        json_decref(r);
        itest_stop(&t);
        CHECK_INTEQ(itest_set_device(&t, DEV_E1000, "subsystem_vendor", json_string("0x1028")), 0);
        off = itest_log_size(&t);
        start();
        CHECK_MSG(ITEST_LOG_HAS(&t, off, "kind=identity", "device=" DEV_E1000, "domid=7",
                                "subsystem vendor id 0x0000 became 0x1028"),
                  "no identity audit record for the granted device");
        ok(itest_target(&t, "release", "net-pv", 0, DEV_E1000), "release");
}

static void test_serial_path(void)
{
        json_t *r;

        CHECK_INTEQ(itest_set_device(&t, DEV_IGB, "serial", json_string("00-1b-21-ff-ff-a1-b2-c3")),
                    0);
        CHECK_INTEQ(itest_set_device(&t, DEV_IGB, "path", json_string("pci0000:00/0000:00:1c.0")),
                    0);
        ok(itest_call(&t, json_pack("{s:s, s:s}", "op", "prepare", "device", DEV_IGB)), "prepare");
        r = itest_call(&t, json_pack("{s:s, s:s}", "op", "owner", "device", DEV_IGB));
        CHECK_STREQ(str(json_object_get(r, "identity"), "serial"), "00-1b-21-ff-ff-a1-b2-c3");
        CHECK_STREQ(str(json_object_get(r, "identity"), "path"), "pci0000:00/0000:00:1c.0");
        json_decref(r);

        /* The card moved to another slot: the same ids, another path. */
        CHECK_INTEQ(itest_set_device(&t, DEV_IGB, "path", json_string("pci0000:00/0000:00:1d.0")),
                    0);
        r = itest_target(&t, "assign", "net-pv", 0, DEV_IGB);
        CHECK_STREQ(itest_error(r), "identity-changed");
        CHECK_MSG(strstr(str(r, "message"),
                         "path pci0000:00/0000:00:1c.0 became pci0000:00/0000:00:1d.0"),
                  "%s", str(r, "message"));
        json_decref(r);
        /* Another card of the same model: the same ids, another serial number. */
        CHECK_INTEQ(itest_set_device(&t, DEV_IGB, "path", json_string("pci0000:00/0000:00:1c.0")),
                    0);
        CHECK_INTEQ(itest_set_device(&t, DEV_IGB, "serial", json_string("00-1b-21-ff-ff-00-00-01")),
                    0);
        r = itest_target(&t, "explain", "net-pv", 0, DEV_IGB);
        CHECK_STREQ(str(r, "decision"), "deny");
        CHECK_STREQ(str(r, "error"), "identity-changed");
        CHECK_MSG(strstr(str(r, "message"),
                         "serial 00-1b-21-ff-ff-a1-b2-c3 became 00-1b-21-ff-ff-00-00-01"),
                  "%s", str(r, "message"));
        json_decref(r);
        CHECK_INTEQ(itest_set_device(&t, DEV_IGB, "serial", json_string("00-1b-21-ff-ff-a1-b2-c3")),
                    0);

        /* Policy matchers: serial and path (globs). */
        CHECK_INTEQ(itest_write_file(
                            t.policy,
                            "version = 1;\n"
                            "clients = ( { name = \"root\"; uid = 0; } );\n"
                            "admins = [ \"root\" ];\n"
                            "protected = ( { path = \"pci0000:00/0000:00:1d.*\"; } );\n"
                            "rules = (\n"
                            "  { name = \"intel-serials\"; action = \"allow\";\n"
                            "    devices = ( { serial = \"00-1b-21-*\"; } ); reset = \"never\"; }\n"
                            ");\n"),
                    0);
        ok(itest_call(&t, json_pack("{s:s}", "op", "reload")), "reload");
        r = itest_target(&t, "explain", "net-pv", 0, DEV_IGB);
        CHECK_STREQ(str(r, "decision"), "allow");
        CHECK_STREQ(str(r, "rule"), "intel-serials");
        json_decref(r);
        /* A path the host cannot tell satisfies a protected entry (fail closed)... */
        r = itest_target(&t, "explain", "net-pv", 0, DEV_NIC);
        CHECK_STREQ(str(r, "error"), "protected-device");
        json_decref(r);
        /* ...and a device without a serial number matches no serial glob. */
        CHECK_INTEQ(itest_set_device(&t, DEV_NIC, "path", json_string("pci0000:00/0000:00:02.0")),
                    0);
        r = itest_target(&t, "explain", "net-pv", 0, DEV_NIC);
        CHECK_STREQ(str(r, "decision"), "deny");
        CHECK_MSG(strstr(str(r, "message"), "serial (none) does not match 00-1b-21-*"), "%s",
                  str(r, "message"));
        json_decref(r);
        CHECK_INTEQ(itest_set_device(&t, DEV_IGB, "path", json_string("pci0000:00/0000:00:1d.0")),
                    0);
        ok(itest_call(&t, json_pack("{s:s, s:s}", "op", "unprepare", "device", DEV_IGB)),
           "unprepare");
        r = itest_call(&t, json_pack("{s:s, s:s}", "op", "prepare", "device", DEV_IGB));
        CHECK_STREQ(itest_error(r), "protected-device");
        CHECK_MSG(strstr(str(r, "message"), "path pci0000:00/0000:00:1d.*"), "%s",
                  str(r, "message"));
        json_decref(r);
        CHECK_INTEQ(itest_write_file(t.policy, itest_default_policy), 0);
        ok(itest_call(&t, json_pack("{s:s}", "op", "reload")), "reload");
}

static void test_root_device(void)
{
        char names[512];
        json_t *r, *host;
        size_t i;
        json_t *c;

        host = itest_host_load(&t);
        json_object_set_new(host, "root_devices", json_pack("[s]", DEV_SPARE));
        CHECK_INTEQ(itest_host_store(&t, host), 0);
        json_decref(host);
        itest_stop(&t);
        start();
        r = itest_target(&t, "assign", "net-pv", 0, DEV_SPARE);
        CHECK_STREQ(itest_error(r), "protected-device");
        CHECK_STREQ(str(r, "check"), "protected");
        CHECK_MSG(strstr(str(r, "message"), "root file system"), "%s", str(r, "message"));
        json_decref(r);
        r = itest_target(&t, "explain", "net-pv", 0, DEV_SPARE);
        check_names(r, names, sizeof(names));
        CHECK_MSG(streq(names, "request client iommu interrupt-remapping domain device protected"),
                  "%s", names);
        json_array_foreach(json_object_get(r, "checks"), i,
                           c) if (streq(str(c, "check"), "protected"))
                CHECK_MSG(strstr(str(c, "detail"), "protect_root_device = false"), "%s",
                          str(c, "detail"));
        json_decref(r);
        r = itest_call(&t, json_pack("{s:s}", "op", "list"));
        json_array_foreach(json_object_get(r, "assignable"), i, c)
                CHECK(!streq(str(c, "device"), DEV_SPARE));
        json_decref(r);

        /* The policy says otherwise. */
        char *policy = NULL;
        CHECK(asprintf(&policy, "%sprotect_root_device = false;\n", itest_default_policy) > 0);
        CHECK_INTEQ(itest_write_file(t.policy, policy), 0);
        free(policy);
        ok(itest_call(&t, json_pack("{s:s}", "op", "reload")), "reload");
        ok(itest_target(&t, "assign", "net-pv", 0, DEV_SPARE), "assign with protect_root_device "
                                                               "= false");
        ok(itest_target(&t, "release", "net-pv", 0, DEV_SPARE), "release");
        CHECK_INTEQ(itest_write_file(t.policy, itest_default_policy), 0);
        ok(itest_call(&t, json_pack("{s:s}", "op", "reload")), "reload");
}

int main(void)
{
        itest_init(&t, "identity", false);
        start();
        test_ids();
        test_serial_path();
        test_root_device();
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
