/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by every part of passguard: cleanup attributes and
 * ownership hand-over. Header-only, no state.
 *
 * The error convention, the one every function of passguard follows
 * (STYLE.md habit 1; the model is dbus-broker's util/error.h):
 *
 *   r >= 0   success (0, or a count, a size, an fd);
 *   r > 0    from a function that can refuse (an op handler, a check, a
 *            state change, a reload, a libpassguard call): a refusal, the
 *            PG_ERR_* code of passguard.h, its reason in the caller's
 *            struct pgd_error or the library's last message. A refusal is
 *            an answer, not a failure;
 *   r < 0    a failure: -errno, converted from libc at the call site
 *            ("return -errno;"). -1 with errno never travels between
 *            passguard functions.
 *
 * Which functions can refuse is said where they are declared; every other
 * function returns 0 or -errno. Nothing else is returned: no sentinels such
 * as "EXIT_DONE + 100", no static message buffers (a reason goes into memory
 * the caller owns). On the wire an error is a stable name from the table in
 * client/errors.c, never a number.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _fallthrough_ __attribute__((fallthrough))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Take ownership out of a cleanup-managed variable. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _p_ = (p);                                                           \
                (p) = NULL;                                                                        \
                _p_;                                                                               \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _fd_ = (fd);                                                                   \
                (fd) = -1;                                                                         \
                _fd_;                                                                              \
        })

/* Define foo_freep() for a foo_free() that accepts NULL and returns NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
        static inline void func##p(type *p)                                                        \
        {                                                                                          \
                if (*p)                                                                            \
                        *p = func(*p);                                                             \
        }

static inline void *pg_free(void *p)
{
        free(p);
        return NULL;
}

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd)
{
        *fd = safe_close(*fd);
}

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

static inline bool streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
