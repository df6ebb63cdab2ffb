/* SPDX-License-Identifier: MIT */
/*
 * Invariant 4, durable before acknowledged, failing closed: when the state
 * directory is full (a small tmpfs, filled up) or read-only (a bind mount
 * remounted read-only), an assign is refused state-error and the hypervisor
 * is rolled back (the device is back in quarantine) or never asked, the
 * grant store (grants.json and its journal) is unchanged, and once the
 * directory is writable again everything works. A daemon started on a
 * read-only state directory says state_ok false from the start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "itest.h"

static int fill(const char *dir)
{
        char path[PATH_MAX + 16], block[4096];
        int fd;

        snprintf(path, sizeof(path), "%s/filler", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        memset(block, 'x', sizeof(block));
        for (;;) {
                ssize_t n = write(fd, block, sizeof(block));
                if (n < 0 && errno == ENOSPC)
                        break;
                if (n <= 0) {
                        close(fd);
                        return -EIO;
                }
        }
        /* the last partial page too */
        while (write(fd, block, 1) == 1)
                ;
        close(fd);
        return 0;
}

static void unfill(const char *dir)
{
        char path[PATH_MAX + 16];

        snprintf(path, sizeof(path), "%s/filler", dir);
        unlink(path);
}

/* The check common to both ways of breaking the store; break_it/fix_it do the breaking. */
static void run(const char *what, struct itest *t, int (*break_it)(struct itest *),
                int (*fix_it)(struct itest *))
{
        char buf[32];

        int s = itest_start(t, NULL, NULL);
        CHECK_MSG(s == 0, "%s: passguardd did not start: %d", what, s);
        if (s < 0)
                return;
        json_t *r = itest_target(t, "assign", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "%s: first assign: %s", what, itest_error(r));
        json_decref(r);
        char *before = itest_store_text(t);
        CHECK(before);

        CHECK_INTEQ(break_it(t), 0);
        json_int_t assigns = itest_calls(t, "assign");
        json_int_t deassigns = itest_calls(t, "deassign");
        size_t log_off = itest_log_size(t);
        r = itest_target(t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_MSG(streq(itest_error(r), "state-error"), "%s: assign gave \"%s\", not state-error",
                  what, itest_error(r));
        json_decref(r);
        /* the hypervisor was asked, then rolled back: the device is in quarantine again */
        CHECK_STREQ(itest_owner(t, DEV_NIC, buf), "io");
        CHECK_MSG(itest_calls(t, "deassign") == deassigns + 1 ||
                          itest_calls(t, "assign") == assigns,
                  "%s: the assign was made but never rolled back", what);
        char *after = itest_store_text(t);
        CHECK_MSG(before && after && streq(before, after), "%s: the grant store changed", what);
        free(after);
        CHECK(ITEST_LOG_HAS(t, log_off, "kind=refuse", "device=" DEV_NIC, "state-error"));

        /* a release cannot be made durable either: refused, and still consistent */
        r = itest_target(t, "release", "render-1", 0, DEV_GPU);
        CHECK_MSG(streq(itest_error(r), "state-error"), "%s: release gave \"%s\"", what,
                  itest_error(r));
        json_decref(r);
        CHECK_INTEQ(itest_consistent(t, NULL), 0);
        CHECK_STREQ(itest_owner(t, DEV_GPU, buf), "5");
        after = itest_store_text(t);
        CHECK_MSG(before && after && streq(before, after), "%s: the grant store changed", what);
        free(after);
        free(before);

        /* writable again: everything works */
        CHECK_INTEQ(fix_it(t), 0);
        r = itest_target(t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "%s: assign once writable: %s", what, itest_error(r));
        json_decref(r);
        r = itest_target(t, "release", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "%s: release once writable: %s", what, itest_error(r));
        json_decref(r);
        CHECK_STREQ(itest_owner(t, DEV_NIC, buf), "7");
        CHECK_STREQ(itest_owner(t, DEV_GPU, buf), "io");
        CHECK_INTEQ(itest_consistent(t, NULL), 0);
        CHECK(itest_alive(t));
        itest_stop(t);
}

static int tmpfs_fill(struct itest *t)
{
        return fill(t->state);
}

static int tmpfs_unfill(struct itest *t)
{
        unfill(t->state);
        return 0;
}

static int remount_ro(struct itest *t)
{
        if (mount(NULL, t->state, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
                return -errno;
        return 0;
}

static int remount_rw(struct itest *t)
{
        if (mount(NULL, t->state, NULL, MS_REMOUNT | MS_BIND, NULL) < 0)
                return -errno;
        return 0;
}

/*
 * A daemon started on a state directory it cannot write (a bind mount,
 * read-only before the start) says so at once: status has state_ok false,
 * an assign is refused state-error before the hypervisor is asked, and once
 * the directory is writable again the next change goes through and status
 * says state_ok true.
 */
static void run_read_only_at_start(struct itest *t)
{
        char buf[32];
        json_t *r;

        CHECK_INTEQ(remount_ro(t), 0);
        int s = itest_start(t, NULL, NULL);
        CHECK_MSG(s == 0, "read-only at start: passguardd did not start: %d", s);
        if (s < 0)
                return;
        r = itest_call(t, json_pack("{s:s}", "op", "status"));
        CHECK_MSG(itest_ok(r), "status: %s", itest_error(r));
        CHECK_MSG(json_is_false(json_object_get(r, "state_ok")),
                  "a read-only state directory: status says state_ok %s",
                  json_is_true(json_object_get(r, "state_ok")) ? "true" : "(missing)");
        json_decref(r);

        json_int_t assigns = itest_calls(t, "assign");
        r = itest_target(t, "assign", "render-1", 0, DEV_GPU);
        CHECK_MSG(streq(itest_error(r), "state-error"), "assign gave \"%s\", not state-error",
                  itest_error(r));
        json_decref(r);
        CHECK_INTEQ(itest_calls(t, "assign"), assigns); /* the hypervisor was never asked */
        CHECK_STREQ(itest_owner(t, DEV_GPU, buf), "io");

        CHECK_INTEQ(remount_rw(t), 0);
        r = itest_target(t, "assign", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "assign once writable: %s", itest_error(r));
        json_decref(r);
        r = itest_call(t, json_pack("{s:s}", "op", "status"));
        CHECK(json_is_true(json_object_get(r, "state_ok")));
        json_decref(r);
        CHECK_STREQ(itest_owner(t, DEV_GPU, buf), "5");
        CHECK_INTEQ(itest_consistent(t, NULL), 0);
        CHECK(itest_alive(t));
        itest_stop(t);
}

int main(void)
{
        struct itest t;
        int f0, ran = 0;

        /*
         * Each part needs a mount; a part that cannot have one is skipped,
         * and says so. The test is skipped only when no part ran: a part
         * that ran and failed is never hidden by another's skip.
         */

        /* a full file system: a 256 KiB tmpfs, filled once the first grant is on it */
        itest_init(&t, "state-full", true);
        if (mount("tmpfs", t.state, "tmpfs", 0, "size=256k,mode=0700") < 0)
                printf("# cannot mount a tmpfs here (%m); skipping the full file system\n");
        else {
                ran++;
                f0 = harness_failures;
                run("full tmpfs", &t, tmpfs_fill, tmpfs_unfill);
                if (harness_failures > f0)
                        itest_log_dump(&t);
        }
        itest_finish(&t);

        /* a read-only file system: the state dir is a bind mount, remounted read-only */
        itest_init(&t, "state-ro", true);
        if (mount(t.state, t.state, NULL, MS_BIND, NULL) < 0)
                printf("# cannot bind-mount here (%m); skipping the read-only file system\n");
        else {
                ran++;
                f0 = harness_failures;
                run("read-only bind mount", &t, remount_ro, remount_rw);
                if (harness_failures > f0)
                        itest_log_dump(&t);
        }
        itest_finish(&t);

        /* read-only before the daemon starts */
        itest_init(&t, "state-ro-start", true);
        if (mount(t.state, t.state, NULL, MS_BIND, NULL) < 0)
                printf("# cannot bind-mount here (%m); skipping the read-only start\n");
        else {
                ran++;
                f0 = harness_failures;
                run_read_only_at_start(&t);
                if (harness_failures > f0)
                        itest_log_dump(&t);
        }
        itest_finish(&t);

        if (ran == 0) {
                printf("# no part could run here\n");
                return ITEST_SKIP;
        }
        return harness_exit();
}
