/* SPDX-License-Identifier: MIT */
/* The policy in force (reload.c). */
#pragma once

#include "pgd.h"

/*
 * Re-read the policy; swap only on success. Returns 0, or PG_ERR_POLICY_INVALID
 * with err filled with every file:line that is wrong (as far as it fits); the
 * old policy stays in force.
 */
int pgd_daemon_reload(struct pgd_daemon *d, struct pgd_error *err);
/* Tell systemd (if it is listening) that the daemon serves: READY=1 and a STATUS= line. */
void pgd_daemon_notify_ready(const struct pgd_daemon *d);
