/* SPDX-License-Identifier: MIT */
/*
 * Daemon logging: only passguardd logs. Lines go to stderr, which systemd
 * hands to the journal; with a priority prefix understood by journald.
 * log_*_errno() return their (negative) error argument so a failure is
 * logged and returned in one expression, with %m standing for it:
 *     return log_error_errno(r, "Failed to open %s: %m", path);
 */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "pg-util.h"

void pgd_log_set_debug(bool on);
/* error < 0 is used for %m; returns error. */
_printf_(3, 4) int pgd_log_full(int priority, int error, const char *fmt, ...);

#define log_debug(...) pgd_log_full(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) pgd_log_full(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) pgd_log_full(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) pgd_log_full(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) pgd_log_full(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) pgd_log_full(LOG_DEBUG, (e), __VA_ARGS__)
#define log_notice_errno(e, ...) pgd_log_full(LOG_NOTICE, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) pgd_log_full(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) pgd_log_full(LOG_ERR, (e), __VA_ARGS__)
