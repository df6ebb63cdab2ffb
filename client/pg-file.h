/* SPDX-License-Identifier: MIT */
/*
 * Files, as every part of passguard reads and replaces them: whole reads,
 * whole writes, and the one way a file is replaced durably (DESIGN.md
 * invariant 4): write a temporary file next to it and fsync it
 * (pg_durable_write), then rename it over the file and fsync the directory
 * (pg_durable_rename). The grant store's snapshot, the simulated host's file
 * and `passguard policy edit` all go through these two.
 *
 * dirfd is a directory's fd (the caller keeps ownership) or AT_FDCWD, names
 * are relative to it. No logging: -errno on failure.
 */
#pragma once

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Write all of data to fd (EINTR retried). */
int pg_write_all(int fd, const void *data, size_t len);
/* Write all of data to fd at offset, whatever fd's own offset (EINTR retried). */
int pg_pwrite_all(int fd, const void *data, size_t len, off_t offset);
/*
 * Read fd to its end into a NUL-terminated buffer (freed with free()).
 * -EFBIG past max bytes.
 */
int pg_read_all(int fd, size_t max, char **ret, size_t *ret_len);

/*
 * Create (or truncate) dirfd/name with mode, write data, fsync and close it.
 * On failure the file is removed. *ret_st (may be NULL) is the file's stat.
 */
int pg_durable_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                     struct stat *ret_st);
/*
 * Rename dirfd/from over dirfd/to, then fsync the directory (with AT_FDCWD,
 * the directory of to). On a failed rename from is removed and to is as it
 * was; on a failed directory sync the rename may or may not survive a crash.
 */
int pg_durable_rename(int dirfd, const char *from, const char *to);
