/* SPDX-License-Identifier: MIT */
/*
 * Invariant 3, check 2: the client is who the kernel says (SO_PEERCRED), and
 * a uid the policy does not know is refused not-authorized, whatever it asks,
 * before anything reaches the hypervisor. A known client that is not an admin
 * cannot reload, prepare, unprepare, or release another client's grant.
 * The CLI runs as uid 65534 (as `setpriv --reuid=65534 --regid=65534
 * --clear-groups` would run it).
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define NOBODY 65534

static struct itest t;

static void as_nobody(int want_exit, const char *want_err, const char *const *args)
{
        char *err = NULL;
        int r = itest_cli(&t, NOBODY, NULL, &err, args);

        CHECK_MSG(r == want_exit, "uid %d: passguard %s: exit %d, expected %d: %s", NOBODY, args[0],
                  r, want_exit, err ? err : "");
        if (want_err)
                CHECK_MSG(err && strstr(err, want_err), "uid %d: passguard %s: stderr lacks %s: %s",
                          NOBODY, args[0], want_err, err ? err : "");
        free(err);
}

#define NOBODY_CLI(want_exit, want_err, ...)                                                       \
        as_nobody((want_exit), (want_err), (const char *const[]){__VA_ARGS__, NULL})

int main(void)
{
        char buf[32];

        itest_init(&t, "uid", true);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }
        CHECK_INTEQ(itest_open_socket(&t), 0);
        json_t *r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        json_int_t tests = itest_calls(&t, "test_assign"), assigns = itest_calls(&t, "assign");
        json_int_t deassigns = itest_calls(&t, "deassign");
        size_t off = itest_log_size(&t);

        /* unknown to the policy: refused, whatever it asks */
        NOBODY_CLI(1, "not-authorized", "status");
        NOBODY_CLI(1, "not-authorized", "list");
        NOBODY_CLI(1, "not-authorized", "assign", "net-pvh", DEV_SPARE);
        NOBODY_CLI(1, "not-authorized", "assign", "8", DEV_GPU);
        NOBODY_CLI(1, "not-authorized", "explain", "net-pvh", DEV_SPARE);
        NOBODY_CLI(1, "not-authorized", "release", "net-pv", DEV_NIC);
        NOBODY_CLI(1, "not-authorized", "owner", DEV_NIC);
        NOBODY_CLI(1, "not-authorized", "prepare", DEV_E1000);
        NOBODY_CLI(1, "not-authorized", "unprepare", DEV_SPARE);
        NOBODY_CLI(1, "not-authorized", "reload");
        CHECK_INTEQ(itest_calls(&t, "test_assign"), tests);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
        CHECK_INTEQ(itest_calls(&t, "deassign"), deassigns);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "7");
        CHECK_STREQ(itest_owner(&t, DEV_SPARE, buf), "io");
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "null");
        json_t *store = itest_grants_load(&t);
        CHECK(store && itest_grants_find(store, DEV_NIC));
        CHECK_INTEQ(json_array_size(json_object_get(store, "grants")), 1);
        json_decref(store);
        /* the refusals are audited with the kernel's uid, not anything claimed */
        CHECK(ITEST_LOG_HAS(&t, off, "audit:", "client_uid=65534", "error=not-authorized"));

        /* a known client that is not an admin, allowed nothing by the rules */
        CHECK_INTEQ(
                itest_write_file(
                        t.policy,
                        "version = 1;\n"
                        "require_interrupt_remapping = true;\n"
                        "clients = ( { name = \"root\"; uid = 0; },\n"
                        "            { name = \"nobody\"; uid = 65534; } );\n"
                        "admins = [ \"root\" ];\n"
                        "rules = ( { name = \"net\"; action = \"allow\"; clients = [ \"root\" ];\n"
                        "            domains = ( { name = \"net-*\"; } ); } );\n"),
                0);
        r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        CHECK_MSG(itest_ok(r), "reload: %s", itest_error(r));
        json_decref(r);
        NOBODY_CLI(0, NULL, "status");
        NOBODY_CLI(1, "denied", "assign", "net-pvh", DEV_SPARE);
        NOBODY_CLI(1, "not-authorized", "release", "net-pv", DEV_NIC);
        NOBODY_CLI(1, "not-authorized", "reload");
        NOBODY_CLI(1, "not-authorized", "prepare", DEV_E1000);
        NOBODY_CLI(1, "not-authorized", "unprepare", DEV_SPARE);
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
        CHECK_INTEQ(itest_calls(&t, "deassign"), deassigns);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "7");
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "null");

        /* root, the admin, still can */
        char *err = NULL;
        CHECK_INTEQ(ITEST_CLI(&t, NULL, &err, "release", "net-pv", DEV_NIC), 0);
        free(err);
        CHECK_STREQ(itest_owner(&t, DEV_NIC, buf), "io");
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
