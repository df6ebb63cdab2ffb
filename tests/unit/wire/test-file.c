/* SPDX-License-Identifier: MIT */
/*
 * client/file.c: whole reads and writes, and the one durable replacement of
 * a file (a temporary file written and fsynced, renamed over the file, the
 * directory fsynced) that the grant store, the simulated host and policy
 * edit share.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "pg-file.h"
#include "pg-util.h"

static char dir[PATH_MAX];

static char *slurp(const char *name, size_t *ret_len)
{
        char path[PATH_MAX + 64];
        char *text = NULL;
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        if (pg_read_all(fd, 1 << 20, &text, ret_len) < 0)
                text = NULL;
        close(fd);
        return text;
}

static bool exists(const char *name)
{
        char path[PATH_MAX + 64];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return access(path, F_OK) == 0;
}

static void test_read_all(void)
{
        _cleanup_(freep) char *text = NULL;
        _cleanup_(closep) int fd = -1;
        char path[PATH_MAX + 64];
        size_t len = 1;

        snprintf(path, sizeof(path), "%s/empty", dir);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK_INTEQ(pg_read_all(fd, 16, &text, &len), 0);
        CHECK(text && text[0] == '\0');
        CHECK_INTEQ(len, 0);
        text = pg_free(text);

        /* read to its end, NUL-terminated; and no further than max */
        CHECK_INTEQ(pg_write_all(fd, "0123456789abcdef", 16), 0);
        CHECK(lseek(fd, 0, SEEK_SET) == 0);
        CHECK_INTEQ(pg_read_all(fd, 16, &text, &len), 0);
        CHECK_STREQ(text, "0123456789abcdef");
        CHECK_INTEQ(len, 16);
        text = pg_free(text);
        CHECK(lseek(fd, 0, SEEK_SET) == 0);
        CHECK_INTEQ(pg_read_all(fd, 15, &text, &len), -EFBIG);
        CHECK(text == NULL);
}

static void test_durable_replace(void)
{
        _cleanup_(closep) int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_(freep) char *text = NULL;
        struct stat st, on_disk;
        char path[PATH_MAX + 64];
        size_t len;

        CHECK(dfd >= 0);
        CHECK_INTEQ(pg_durable_write(dfd, "a.tmp", "old", 3, 0640, NULL), 0);
        CHECK_INTEQ(pg_durable_rename(dfd, "a.tmp", "a"), 0);
        CHECK(!exists("a.tmp"));
        text = slurp("a", &len);
        CHECK_STREQ(text, "old");
        text = pg_free(text);

        /* over an existing file: one rename, the new inode in place, mode as asked */
        CHECK_INTEQ(pg_durable_write(dfd, "a.tmp", "new text", 8, 0600, &st), 0);
        CHECK_INTEQ(st.st_size, 8);
        CHECK_INTEQ(pg_durable_rename(dfd, "a.tmp", "a"), 0);
        text = slurp("a", &len);
        CHECK_STREQ(text, "new text");
        snprintf(path, sizeof(path), "%s/a", dir);
        CHECK(stat(path, &on_disk) == 0 && on_disk.st_ino == st.st_ino);
        CHECK_INTEQ(on_disk.st_mode & 07777, 0600);

        /* a rename that fails leaves the file as it was and no temporary file behind */
        CHECK_INTEQ(pg_durable_write(dfd, "b.tmp", "lost", 4, 0600, NULL), 0);
        CHECK_INTEQ(pg_durable_rename(dfd, "b.tmp", "no-such-dir/b"), -ENOENT);
        CHECK(!exists("b.tmp"));

        /* a write that cannot be made leaves nothing: here, a name that is a directory */
        CHECK(mkdirat(dfd, "d", 0700) == 0);
        CHECK(pg_durable_write(dfd, "d", "x", 1, 0600, NULL) < 0);
        CHECK(exists("d"));
}

/* By path (AT_FDCWD), as policy edit names its files: the directory of the target is synced. */
static void test_durable_by_path(void)
{
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        _cleanup_(freep) char *text = NULL;
        size_t len;

        snprintf(from, sizeof(from), "%s/c.tmp", dir);
        snprintf(to, sizeof(to), "%s/c", dir);
        CHECK_INTEQ(pg_durable_write(AT_FDCWD, from, "by path", 7, 0644, NULL), 0);
        CHECK_INTEQ(pg_durable_rename(AT_FDCWD, from, to), 0);
        CHECK(!exists("c.tmp"));
        text = slurp("c", &len);
        CHECK_STREQ(text, "by path");
}

int main(void)
{
        char cmd[PATH_MAX + 16];

        snprintf(dir, sizeof(dir), "%s/test-file.XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 2;
        }
        test_read_all();
        test_durable_replace();
        test_durable_by_path();
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", dir);
        return harness_exit();
}
