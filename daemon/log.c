/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static bool debug_enabled;

void pgd_log_set_debug(bool on)
{
        debug_enabled = on;
}

int pgd_log_full(int priority, int error, const char *fmt, ...)
{
        va_list ap;

        if (priority >= LOG_DEBUG && !debug_enabled)
                return error;
        /* %m in fmt expands to strerror(errno): make it the error we were given. */
        int saved = errno;
        if (error < 0)
                errno = -error;
        fprintf(stderr, "<%d>passguardd: ", priority);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        errno = saved;
        return error;
}
