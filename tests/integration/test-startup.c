/* SPDX-License-Identifier: MIT */
/*
 * Start-up: a corrupt or unknown-format grant store makes the daemon refuse to
 * start, naming the file and leaving it untouched; --rebuild-state rebuilds it
 * from the hypervisor. The same for the journal of changes beside it
 * (grants.journal), whose torn last record (a crash mid-append) is not
 * corruption; --rebuild-state never replaces a store that loads. --check-config prints "configuration OK" or
 * file:line: message. The simulated backend refuses to run on a Xen host.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

static struct itest t;

static bool exited_with(int status, int code)
{
        return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static void corrupt_state(void)
{
        size_t len, len2;

        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        json_t *r = itest_target(&t, "assign", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        itest_stop(&t);

        /* flip one byte: the domid of the first grant, 5 -> 6 or 7 -> 6 */
        char *text = itest_read_file(t.grants, &len);
        CHECK(text);
        if (!text)
                return;
        char *p = strstr(text, "\"domid\"");
        CHECK(p);
        while (p && *p && (*p < '0' || *p > '9'))
                p++;
        if (p && *p)
                *p = '6';
        CHECK_INTEQ(itest_write_file(t.grants, text), 0);

        size_t off = itest_log_size(&t);
        int s = itest_start(&t, NULL, NULL);
        CHECK_MSG(s == -ECHILD, "passguardd started with a corrupt grants.json (%d)", s);
        CHECK_MSG(t.last_status != 0, "passguardd exited 0 on a corrupt grants.json");
        CHECK_MSG(ITEST_LOG_HAS(&t, off, t.grants), "the refusal does not name %s", t.grants);
        char *text2 = itest_read_file(t.grants, &len2);
        CHECK_MSG(itest_files_equal(text, len, text2, len2), "the corrupt grants.json was changed");
        free(text2);

        /* an unknown format version is refused the same way */
        json_t *store = json_loads(text, 0, NULL);
        free(text);
        CHECK(store);
        json_object_set_new(store, "format", json_integer(99));
        text = json_dumps(store, JSON_COMPACT);
        json_decref(store);
        CHECK_INTEQ(itest_write_file(t.grants, text), 0);
        off = itest_log_size(&t);
        s = itest_start(&t, NULL, NULL);
        CHECK_MSG(s == -ECHILD, "passguardd started with format 99 (%d)", s);
        CHECK(ITEST_LOG_HAS(&t, off, t.grants));
        text2 = itest_read_file(t.grants, &len2);
        CHECK_MSG(text2 && streq(text, text2), "the unknown-format grants.json was changed");
        free(text2);
        free(text);

        /* --rebuild-state: the grants come back from what the hypervisor shows */
        off = itest_log_size(&t);
        s = itest_start(&t, (const char *const[]){"--rebuild-state", NULL}, NULL);
        CHECK_MSG(s == 0, "passguardd --rebuild-state did not start (%d)", s);
        CHECK_MSG(ITEST_LOG_HAS(&t, off, DEV_GPU), "--rebuild-state does not say what it found");
        store = itest_grants_load(&t);
        CHECK(store);
        json_t *g = itest_grants_find(store, DEV_GPU);
        CHECK(g && json_integer_value(json_object_get(g, "domid")) == DOM_RENDER1);
        g = itest_grants_find(store, DEV_NIC);
        CHECK(g && json_integer_value(json_object_get(g, "domid")) == DOM_NETPV);
        json_decref(store);
        r = itest_call(&t, json_pack("{s:s, s:s}", "op", "owner", "device", DEV_GPU));
        CHECK(json_is_true(json_object_get(r, "granted")));
        json_decref(r);
        r = itest_target(&t, "release", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "release of a rebuilt grant: %s", itest_error(r));
        json_decref(r);
        itest_stop(&t);
        /* and the rebuilt file is valid: a plain start accepts it */
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        itest_stop(&t);
}

/* Kill the daemon, so that its changes stay in the journal (a clean stop compacts). */
static void kill_daemon(void)
{
        CHECK_INTEQ(kill(t.pid, SIGKILL), 0);
        CHECK_INTEQ(itest_wait_exit(&t, 5000), 0);
}

static void corrupt_journal(void)
{
        char journal[PATH_MAX + 32];
        size_t len, len2, glen, glen2;

        snprintf(journal, sizeof(journal), "%s/grants.journal", t.state);
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        json_t *r = itest_target(&t, "assign", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        r = itest_target(&t, "release", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "release: %s", itest_error(r));
        json_decref(r);
        kill_daemon();
        char *text = itest_read_file(journal, &len);
        CHECK_MSG(text && strstr(text, "\"intent-assign\"") && strstr(text, "\"release\""),
                  "the journal lacks the changes: %s", text ? text : "(no file)");
        if (!text)
                return;

        /* a torn last record is no corruption: ignored, and the grant before it kept */
        char *torn = NULL;
        CHECK(asprintf(&torn, "%s{\"device\":\"%s\",\"op\":\"rel", text, DEV_GPU) > 0);
        CHECK_INTEQ(itest_write_file(journal, torn), 0);
        free(torn);
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        json_t *store = itest_grants_load(&t);
        CHECK(store && itest_grants_find(store, DEV_GPU) && !itest_grants_find(store, DEV_NIC));
        json_decref(store);
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        kill_daemon();
        free(text);

        /* --rebuild-state refuses a store that loads, journal and all */
        text = itest_read_file(journal, &len);
        char *snap = itest_read_file(t.grants, &glen);
        size_t off = itest_log_size(&t);
        int s = itest_start(&t, (const char *const[]){"--rebuild-state", NULL}, NULL);
        CHECK_MSG(s == -ECHILD, "--rebuild-state replaced a valid store (%d)", s);
        CHECK(ITEST_LOG_HAS(&t, off, t.grants, "valid"));
        char *text2 = itest_read_file(journal, &len2);
        CHECK(text && itest_files_equal(text, len, text2, len2));
        free(text2);

        /* one changed byte in a record that a valid one follows: corrupt, named, untouched */
        char *p = text ? strstr(text, "\"net-pv\"") : NULL;
        CHECK(p);
        if (!p) {
                free(text);
                free(snap);
                return;
        }
        p[strlen("\"net-")] = 'q';
        /* the records only: the zeros the journal keeps ahead of them end the string */
        CHECK_INTEQ(itest_write_file(journal, text), 0);
        len = strlen(text);
        off = itest_log_size(&t);
        s = itest_start(&t, NULL, NULL);
        CHECK_MSG(s == -ECHILD, "passguardd started with a corrupt journal (%d)", s);
        CHECK_MSG(t.last_status != 0, "passguardd exited 0 on a corrupt journal");
        CHECK_MSG(ITEST_LOG_HAS(&t, off, journal), "the refusal does not name %s", journal);
        text2 = itest_read_file(journal, &len2);
        CHECK_MSG(itest_files_equal(text, len, text2, len2), "the corrupt journal was changed");
        free(text2);
        char *snap2 = itest_read_file(t.grants, &glen2);
        CHECK_MSG(itest_files_equal(snap, glen, snap2, glen2), "grants.json was changed");
        free(snap2);
        free(snap);
        free(text);

        /* --rebuild-state: both grants come back from the hypervisor, the journal goes */
        off = itest_log_size(&t);
        s = itest_start(&t, (const char *const[]){"--rebuild-state", NULL}, NULL);
        CHECK_MSG(s == 0, "passguardd --rebuild-state did not start (%d)", s);
        store = itest_grants_load(&t);
        CHECK(store && itest_grants_find(store, DEV_GPU) && itest_grants_find(store, DEV_NIC));
        json_decref(store);
        text2 = itest_read_file(journal, &len2);
        CHECK_MSG(!text2 || !strstr(text2, "net-qv"), "the corrupt record is still there");
        free(text2);
        itest_stop(&t);
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        CHECK_INTEQ(itest_consistent(&t, NULL), 0);
        itest_stop(&t);
}

static void check_config(void)
{
        char bad_conf[PATH_MAX + 16], missing[PATH_MAX + 16];
        const char *const args[] = {"--check-config", NULL};

        size_t off = itest_log_size(&t);
        int st = itest_run_daemon(&t, args, NULL, true, 5000);
        CHECK_MSG(exited_with(st, 0), "--check-config of a good configuration: status 0x%x", st);
        CHECK(ITEST_LOG_HAS(&t, off, "configuration OK"));
        CHECK(access(t.sock, F_OK) < 0);

        char *good = itest_read_file(t.policy, NULL);
        CHECK_INTEQ(itest_write_file(t.policy,
                                     "version = 1;\n"
                                     "clients = ( { name = \"root\"; uid = 0; } );\n"
                                     "rules = ( { name = \"a\"; action = \"maybe\"; } );\n"),
                    0);
        off = itest_log_size(&t);
        st = itest_run_daemon(&t, args, NULL, true, 5000);
        CHECK_MSG(exited_with(st, 1), "--check-config of a bad policy: status 0x%x", st);
        char where[2 * PATH_MAX];
        snprintf(where, sizeof(where), "%s:3:", t.policy);
        CHECK_MSG(ITEST_LOG_HAS(&t, off, where), "--check-config does not say %s", where);
        CHECK(!ITEST_LOG_HAS(&t, off, "configuration OK"));
        CHECK_INTEQ(itest_write_file(t.policy, good), 0);
        free(good);

        snprintf(bad_conf, sizeof(bad_conf), "%s/bad.conf", t.dir);
        CHECK_INTEQ(itest_write_file(bad_conf, "idle_timeout = 5;\nidle_timeuot = 5;\n"), 0);
        off = itest_log_size(&t);
        st = itest_run_daemon(&t,
                              (const char *const[]){"--backend", "sim", "--sim-host", t.host,
                                                    "--policy", t.policy, "--config", bad_conf,
                                                    "--check-config", NULL},
                              NULL, false, 5000);
        CHECK_MSG(exited_with(st, 1), "--check-config of a bad config: status 0x%x", st);
        snprintf(where, sizeof(where), "%s:2", bad_conf);
        CHECK_MSG(ITEST_LOG_HAS(&t, off, where), "--check-config does not say %s", where);

        snprintf(missing, sizeof(missing), "%s/missing.conf", t.dir);
        st = itest_run_daemon(&t,
                              (const char *const[]){"--backend", "sim", "--sim-host", t.host,
                                                    "--policy", t.policy, "--config", missing,
                                                    "--check-config", NULL},
                              NULL, false, 5000);
        CHECK_MSG(exited_with(st, 1), "a missing --config file is not an error: status 0x%x", st);
}

static void xen_host(void)
{
        char root[PATH_MAX + 16], path[PATH_MAX + 64], env[PATH_MAX + 64];

        snprintf(root, sizeof(root), "%s/fakeroot", t.dir);
        snprintf(env, sizeof(env), "PASSGUARD_SIM_XEN_PROBE_ROOT=%s", root);
        CHECK_INTEQ(mkdir(root, 0755), 0);
        const char *const envv[] = {env, NULL};

        /* an empty root: not Xen, the simulator runs */
        int s = itest_start(&t, NULL, envv);
        CHECK_MSG(s == 0, "the simulator refused an empty probe root (%d)", s);
        itest_stop(&t);

        /* /proc/xen exists: refused */
        snprintf(path, sizeof(path), "%s/proc", root);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/proc/xen", root);
        CHECK_INTEQ(mkdir(path, 0755), 0);
        unlink(t.sock);
        size_t off = itest_log_size(&t);
        s = itest_start(&t, NULL, envv);
        CHECK_MSG(s == -ECHILD, "the simulator ran on a host with /proc/xen (%d)", s);
        CHECK(t.last_status != 0);
        CHECK(ITEST_LOG_HAS(&t, off, "Xen"));
        CHECK(access(t.sock, F_OK) < 0);
        rmdir(path);

        /* /dev/xen/privcmd exists: refused */
        snprintf(path, sizeof(path), "%s/dev", root);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/dev/xen", root);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/dev/xen/privcmd", root);
        CHECK_INTEQ(itest_write_file(path, ""), 0);
        unlink(t.sock);
        s = itest_start(&t, NULL, envv);
        CHECK_MSG(s == -ECHILD, "the simulator ran on a host with /dev/xen/privcmd (%d)", s);
        CHECK(t.last_status != 0);
        CHECK(access(t.sock, F_OK) < 0);
}

int main(void)
{
        itest_init(&t, "startup", false);
        int f0 = harness_failures;
        corrupt_state();
        corrupt_journal();
        check_config();
        xen_host();
        if (harness_failures > f0)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
