/* SPDX-License-Identifier: MIT */
/*
 * The policy in force: reloaded on request or SIGHUP, swapped in only when
 * the new one is valid (STYLE.md habit 5), with systemd told RELOADING=1 and
 * READY=1 either way, and one audit record.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "audit.h"
#include "grants.h"
#include "log.h"
#include "reload.h"

static uint64_t now_usec(clockid_t clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* Whether CAP_SYS_ADMIN is in this process's effective set (/proc/self/status). */
static bool have_sys_admin(void)
{
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        unsigned long long eff;

        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "CapEff: %llx", &eff) == 1)
                        return (eff >> 21) & 1; /* CAP_SYS_ADMIN */
        return false;
}

void pgd_policy_warn(const struct pgd_daemon *d)
{
        int line = pg_policy_serial_line(d->policy);

        if (line == 0 || !d->hv_ops || !streq(d->hv_ops->name, "xen") || have_sys_admin())
                return;
        log_warning("%s:%d: serial matchers need the devices' serial numbers, which the kernel "
                    "shows only to a reader with CAP_SYS_ADMIN, and passguardd has none: every "
                    "serial is unknown, so an allow rule with a serial never matches and a "
                    "protected entry or deny rule with one matches every device",
                    d->cfg.policy_path, line);
}

static void diag_format(const struct pg_policy_diag *g, char *buf, size_t size)
{
        if (g->line > 0)
                snprintf(buf, size, "%s:%d: %s", g->file, g->line, g->message);
        else
                snprintf(buf, size, "%s: %s", g->file, g->message);
}

void pgd_daemon_notify_ready(const struct pgd_daemon *d)
{
        sd_notifyf(false, "READY=1\nSTATUS=Serving %zu grant(s); policy %s, %zu rule(s)",
                   d->grants ? pgd_grants_count(d->grants) : 0, d->cfg.policy_path,
                   d->policy ? pg_policy_n_rules(d->policy) : 0);
}

int pgd_daemon_reload(struct pgd_daemon *d, struct pgd_error *err)
{
        _cleanup_(pg_policy_diags_clear) struct pg_policy_diags diags = {};
        struct pg_policy *p = NULL;
        int r;

        sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec(CLOCK_MONOTONIC));
        log_info("Reloading the policy from %s", d->cfg.policy_path);

        r = pg_policy_load(d->cfg.policy_path, &p, &diags);
        if (r < 0) {
                /* Keep the old policy; say everything that is wrong, as far as it fits. */
                size_t used = 0;
                char line[512];

                err->code = PG_ERR_POLICY_INVALID;
                err->check = NULL;
                err->message[0] = '\0';
                for (size_t i = 0; i < diags.n; i++) {
                        diag_format(&diags.v[i], line, sizeof(line));
                        log_error("%s", line);
                        size_t len = strlen(line), sep = used ? 2 : 0;
                        if (used + sep + len < sizeof(err->message)) {
                                memcpy(err->message + used, "; ", sep);
                                memcpy(err->message + used + sep, line, len + 1);
                                used += sep + len;
                        }
                }
                if (!used)
                        snprintf(err->message, sizeof(err->message), "%s: %s", d->cfg.policy_path,
                                 strerror(-r));
                log_error("The policy in %s is invalid; the old policy stays in force",
                          d->cfg.policy_path);
                pgd_audit(d, &(struct pgd_audit_record){
                                     .kind = PGD_AUDIT_RELOAD,
                                     .op = "reload",
                                     .sbdf = UINT32_MAX,
                                     .domid = -1,
                                     .decision = "refused",
                                     .error = PG_ERR_POLICY_INVALID,
                                     .message = err->message,
                             });
                pgd_daemon_notify_ready(d);
                return PG_ERR_POLICY_INVALID;
        }

        pg_policy_free(d->policy);
        d->policy = p;
        d->policy_loaded = time(NULL);
        /* Two policies' parse trees are gone: give their memory back. */
        malloc_trim(0);
        log_info("Policy reloaded from %s: %zu rule(s)", d->cfg.policy_path, pg_policy_n_rules(p));
        pgd_policy_warn(d);
        pgd_audit(d, &(struct pgd_audit_record){
                             .kind = PGD_AUDIT_RELOAD,
                             .op = "reload",
                             .sbdf = UINT32_MAX,
                             .domid = -1,
                             .decision = "reloaded",
                             .message = d->cfg.policy_path,
                     });
        /* After the reload's event: a watcher the new policy does not allow is closed. */
        pgd_server_recheck_watchers(d);
        pgd_daemon_notify_ready(d);
        return 0;
}
