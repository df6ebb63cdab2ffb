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
/*
 * Say what of the policy this daemon cannot honour as written: serial
 * matchers on a Xen host when it cannot read serial numbers (no
 * CAP_SYS_ADMIN). Logged at start-up and after each reload.
 */
void pgd_policy_warn(const struct pgd_daemon *d);
/* Tell systemd (if it is listening) that the daemon serves: READY=1 and a STATUS= line. */
void pgd_daemon_notify_ready(const struct pgd_daemon *d);
