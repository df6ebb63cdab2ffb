/* SPDX-License-Identifier: MIT */
/* Temporary directories, small files and stderr capture for the grant tests. */
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg-util.h"

static inline char *tmpdir_new(void)
{
        char tmpl[] = "/tmp/pg-grants-test.XXXXXX";
        char *d = mkdtemp(tmpl);

        if (!d) {
                perror("mkdtemp");
                abort();
        }
        return strdup(d);
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path) < 0 ? -1 : 0;
}

static inline void tmpdir_freep(char **d)
{
        if (*d) {
                (void)nftw(*d, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
                free(*d);
        }
}

static inline char *path_in(const char *dir, const char *name)
{
        char *p;

        if (asprintf(&p, "%s/%s", dir, name) < 0)
                abort();
        return p;
}

static inline bool file_exists(const char *dir, const char *name)
{
        _cleanup_(freep) char *p = path_in(dir, name);

        return access(p, F_OK) == 0;
}

static inline int mkdir_in(const char *dir, const char *name)
{
        _cleanup_(freep) char *p = path_in(dir, name);

        return mkdir(p, 0700);
}

static inline int rmdir_in(const char *dir, const char *name)
{
        _cleanup_(freep) char *p = path_in(dir, name);

        return rmdir(p);
}

/* The whole file, NUL-terminated; NULL when it cannot be read. */
static inline char *read_path(const char *p, size_t *ret_len)
{
        FILE *f = fopen(p, "rb");
        char *buf = NULL;
        size_t size = 0;

        if (!f)
                return NULL;
        FILE *m = open_memstream(&buf, &size);
        int c;
        while ((c = fgetc(f)) != EOF)
                fputc(c, m);
        fclose(f);
        fclose(m);
        if (ret_len)
                *ret_len = size;
        return buf;
}

static inline char *read_text(const char *dir, const char *name, size_t *ret_len)
{
        _cleanup_(freep) char *p = path_in(dir, name);

        return read_path(p, ret_len);
}

/* Replace dir/name by text, atomically (as any writer of a watched file should). */
static inline void write_text(const char *dir, const char *name, const char *text)
{
        _cleanup_(freep) char *p = path_in(dir, name);
        _cleanup_(freep) char *tmp = NULL;
        FILE *f;

        if (asprintf(&tmp, "%s.test-tmp", p) < 0)
                abort();
        f = fopen(tmp, "wb");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, p) < 0) {
                perror(p);
                abort();
        }
}

/* "sha256:<hex>" of text, computed by coreutils' sha256sum. */
static inline int sha256sum_of(const char *text, char *ret, size_t size)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(freep) char *cmd = NULL;
        char hex[65];
        FILE *p;
        int r = -1;

        write_text(dir, "in", text);
        if (asprintf(&cmd, "sha256sum %s/in", dir) < 0)
                return -1;
        p = popen(cmd, "r");
        if (!p)
                return -1;
        if (fscanf(p, "%64s", hex) == 1 && strlen(hex) == 64) {
                snprintf(ret, size, "sha256:%s", hex);
                r = 0;
        }
        pclose(p);
        return r;
}

/* Capture what the code under test writes to stderr (audit lines under --debug). */
struct capture {
        int saved_fd;
        char path[64];
};

static inline void capture_begin(struct capture *c)
{
        int fd;

        snprintf(c->path, sizeof(c->path), "/tmp/pg-grants-capture.XXXXXX");
        fd = mkstemp(c->path);
        if (fd < 0)
                abort();
        fflush(stderr);
        c->saved_fd = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
}

/* Returns what was captured (and echoes it to the real stderr for the test log). */
static inline char *capture_end(struct capture *c)
{
        char *text;

        fflush(stderr);
        dup2(c->saved_fd, STDERR_FILENO);
        close(c->saved_fd);
        text = read_path(c->path, NULL);
        unlink(c->path);
        if (!text)
                text = strdup("");
        fputs(text, stderr);
        return text;
}
