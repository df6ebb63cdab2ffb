/* SPDX-License-Identifier: MIT */
/*
 * Invariant 3, check 2: the client is who the kernel says (SO_PEERCRED), and
 * a uid the policy does not know is refused not-authorized, whatever it asks,
 * before anything reaches the hypervisor. A known client that is not an admin
 * cannot reload, prepare, unprepare, or release another client's grant.
 * The CLI runs as uid 65534 under `setpriv --reuid=65534 --regid=65534
 * --clear-groups`.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Become uid (and gid uid, no other groups): the kernel then says so to the daemon. */
static void become(uid_t uid)
{
        if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
                _exit(90);
}

/*
 * A child of uid that opens n connections and says hello on each, tells the
 * parent on report how many were answered, then keeps saying hello on them
 * (as if to keep them) until killed.
 */
static pid_t hold_connections(uid_t uid, int n, int report)
{
        fflush(NULL);
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        become(uid);
        struct itest_conn **c = calloc((size_t)n, sizeof(*c));
        int ok = 0;
        for (int i = 0; i < n; i++) {
                c[i] = itest_connect(&t);
                json_t *r = c[i] ? itest_conn_call(c[i], json_pack("{s:s, s:i}", "op", "hello",
                                                                   "version", 1))
                                 : NULL;
                if (itest_ok(r))
                        ok++;
                json_decref(r);
        }
        (void)!write(report, &ok, sizeof(ok));
        for (;;) {
                itest_sleep_ms(300);
                for (int i = 0; i < n; i++)
                        if (c[i])
                                json_decref(itest_conn_call(
                                        c[i], json_pack("{s:s, s:i}", "op", "hello", "version", 1)));
        }
}

/* Peers the policy does not know cannot take the slots of those it knows. */
static void unknown_peers_hold_connections(void)
{
        enum { UIDS = 4, PER_UID = 16 };
        pid_t kids[UIDS];
        int pipefd[2], answered = 0;

        CHECK_INTEQ(pipe(pipefd), 0);
        for (int i = 0; i < UIDS; i++)
                kids[i] = hold_connections(NOBODY - (uid_t)i, PER_UID, pipefd[1]);
        close(pipefd[1]);
        for (int i = 0; i < UIDS; i++) {
                int ok = 0;
                CHECK(read(pipefd[0], &ok, sizeof(ok)) == (ssize_t)sizeof(ok));
                answered += ok;
        }
        close(pipefd[0]);
        printf("# %d of %d connections of unknown uids answered hello\n", answered,
               UIDS * PER_UID);
        CHECK_MSG(answered <= 4, "unknown peers got %d connections, beyond their pool of 4",
                  answered);

        /* While they hold on, root is served. */
        for (int i = 0; i < 3; i++) {
                char *err = NULL;
                int x = ITEST_CLI(&t, NULL, &err, "status");
                CHECK_MSG(x == 0, "root: passguard status: exit %d: %s", x, err ? err : "");
                free(err);
        }
        for (int i = 0; i < UIDS; i++) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
        }
}

/* An unknown peer's request is refused, and its connection ends right after the reply. */
static void unknown_peer_closed_after_refusal(void)
{
        int status = -1;

        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
                become(NOBODY);
                struct itest_conn *c = itest_connect(&t);
                char *line = NULL;
                static const char two[] = "{\"op\":\"status\",\"id\":1}\n{\"op\":\"list\",\"id\":2}\n";
                if (!c || itest_send_raw(c, two, sizeof(two) - 1) < 0)
                        _exit(2);
                if (itest_recv_line(c, 2000, &line) < 0 || !strstr(line, "not-authorized"))
                        _exit(3);
                free(line);
                line = NULL;
                int r = itest_recv_line(c, 2000, &line);
                _exit(r == -ECONNRESET ? 0 : 4); /* closed, the second request unanswered */
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "unknown peer: refused and closed? status %d", status);
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
        unknown_peer_closed_after_refusal();
        unknown_peers_hold_connections();

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
