/* SPDX-License-Identifier: MIT */
/*
 * A tiny test harness: CHECK() records a failure and goes on; the test's
 * main() returns harness_exit(). Output is TAP-like, one line per failure.
 */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int harness_checks, harness_failures;

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                harness_checks++;                                                                  \
                if (!(cond)) {                                                                     \
                        harness_failures++;                                                        \
                        fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
                }                                                                                  \
        } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
        do {                                                                                       \
                harness_checks++;                                                                  \
                if (!(cond)) {                                                                     \
                        harness_failures++;                                                        \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
                        fprintf(stderr, __VA_ARGS__);                                              \
                        fputc('\n', stderr);                                                       \
                }                                                                                  \
        } while (0)

#define CHECK_STREQ(a, b)                                                                          \
        do {                                                                                       \
                const char *_a = (a), *_b = (b);                                                   \
                harness_checks++;                                                                  \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                           \
                        harness_failures++;                                                        \
                        fprintf(stderr, "FAIL %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,      \
                                _a ? _a : "(null)", _b ? _b : "(null)");                           \
                }                                                                                  \
        } while (0)

#define CHECK_INTEQ(a, b)                                                                          \
        do {                                                                                       \
                intmax_t _a = (intmax_t)(a), _b = (intmax_t)(b);                                   \
                harness_checks++;                                                                  \
                if (_a != _b) {                                                                    \
                        harness_failures++;                                                        \
                        fprintf(stderr, "FAIL %s:%d: %s == %jd, expected %jd\n", __FILE__,         \
                                __LINE__, #a, _a, _b);                                             \
                }                                                                                  \
        } while (0)

/* The test's exit status: a failure, or no check at all (a test that checks nothing cannot fail). */
static inline int harness_exit(void)
{
        printf("%d checks, %d failed\n", harness_checks, harness_failures);
        if (harness_checks == 0) {
                fprintf(stderr, "FAIL no check ran\n");
                return 1;
        }
        return harness_failures ? 1 : 0;
}
