/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <unistd.h>

#include "pg-file.h"
#include "pg-util.h"

int pg_write_all(int fd, const void *data, size_t len)
{
        const char *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int pg_pwrite_all(int fd, const void *data, size_t len, off_t offset)
{
        const char *p = data;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, offset);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
                offset += n;
        }
        return 0;
}

int pg_read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
        _cleanup_(freep) char *buf = NULL;
        size_t len = 0, cap = 0;

        for (;;) {
                if (len == cap) {
                        if (cap >= max + 1)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 4096;
                        if (cap > max + 1)
                                cap = max + 1;
                        char *p = realloc(buf, cap + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > max)
                return -EFBIG;
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int pg_durable_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                     struct stat *ret_st)
{
        _cleanup_(closep) int fd = -1;
        struct stat st;
        int r;

        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
                    mode);
        if (fd < 0)
                return -errno;
        r = pg_write_all(fd, data, len);
        if (r >= 0 && ret_st && fstat(fd, &st) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && close(TAKE_FD(fd)) < 0 && errno != EINTR)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dirfd, name, 0);
                return r;
        }
        if (ret_st)
                *ret_st = st;
        return 0;
}

/* The directory to fsync after a rename to to: dirfd itself, or to's directory. */
static int dir_of(int dirfd, const char *to, int *ret_fd)
{
        _cleanup_(freep) char *copy = NULL;
        int fd;

        if (dirfd != AT_FDCWD) {
                *ret_fd = dirfd;
                return 0;
        }
        copy = strdup(to);
        if (!copy)
                return -ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

int pg_durable_rename(int dirfd, const char *from, const char *to)
{
        int dfd = -1, r;

        r = dir_of(dirfd, to, &dfd);
        if (r < 0) {
                (void)unlinkat(dirfd, from, 0);
                return r;
        }
        if (renameat(dirfd, from, dirfd, to) < 0) {
                r = -errno;
                (void)unlinkat(dirfd, from, 0);
        } else if (fsync(dfd) < 0)
                r = -errno;
        if (dfd != dirfd)
                safe_close(dfd);
        return r;
}
