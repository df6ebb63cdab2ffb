/* SPDX-License-Identifier: MIT */
/*
 * passguardd: parse the command line, load the configuration and the policy,
 * open the host, load and reconcile the grant store, listen, tell systemd,
 * loop. Every start-up failure says what and where, and exits 1.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "commit.h"
#include "config.h"
#include "grants.h"
#include "log.h"
#include "pgd.h"
#include "reconcile.h"
#include "reload.h"
#include "server.h"

static void daemon_done(struct pgd_daemon *d)
{
        pgd_server_free(d->server);
        pgd_commit_free_all(d);
        d->grants = pgd_grants_free(d->grants);
        if (d->hv)
                d->hv = d->hv_ops->close(d->hv);
        d->policy = pg_policy_free(d->policy);
        d->root_devices = pg_free(d->root_devices);
        pgd_reconcile_clear(d);
        pgd_config_clear(&d->cfg);
}

/* Load the policy; on failure print every "file:line: message". */
static int load_policy(struct pgd_daemon *d)
{
        _cleanup_(pg_policy_diags_clear) struct pg_policy_diags diags = {};
        int r;

        r = pg_policy_load(d->cfg.policy_path, &d->policy, &diags);
        if (r < 0) {
                pg_policy_diags_print(&diags, stderr);
                if (diags.n == 0)
                        fprintf(stderr, "%s: %s\n", d->cfg.policy_path, strerror(-r));
                return r;
        }
        d->policy_loaded = time(NULL);
        /* The parse tree is gone: give its memory back. */
        malloc_trim(0);
        return 0;
}

static int open_backend(struct pgd_daemon *d)
{
        const struct hv_config hc = {
                .sim_host = d->cfg.sim_host,
                .sysfs_root = d->cfg.sysfs_root,
        };
        int r;

        d->hv_ops = pgd_hv_lookup(d->cfg.backend);
        if (!d->hv_ops)
                return log_error_errno(-EOPNOTSUPP, "Backend '%s' is not built in", d->cfg.backend);
        r = d->hv_ops->open(&hc, &d->hv);
        if (r == -EPERM && streq(d->hv_ops->name, "sim"))
                /* A toolstack would believe in grants that no IOMMU backs. */
                return log_error_errno(r, "The simulated backend refuses to run on a real Xen host "
                                          "(/proc/xen or /dev/xen/privcmd exists): use --backend xen");
        if (r < 0 && streq(d->hv_ops->name, "xen") && (r == -ENOENT || r == -ENODEV))
                return log_error_errno(r, "No Xen here (%m): on a machine without Xen, use "
                                          "--backend sim --sim-host FILE");
        if (r == -EBADMSG)
                return log_error_errno(r, "The host file %s is not valid", d->cfg.sim_host ?: "");
        if (r < 0)
                return log_error_errno(r, "Failed to open the %s backend%s%s: %m", d->cfg.backend,
                                       d->cfg.sim_host ? " on " : "", d->cfg.sim_host ?: "");
        log_info("Using the %s backend", d->hv_ops->name);

        /* What holds dom0's root file system is protected (unless the policy says otherwise). */
        if (d->hv_ops->root_devices) {
                r = d->hv_ops->root_devices(d->hv, &d->root_devices, &d->n_root_devices);
                if (r < 0)
                        log_notice_errno(r, "Cannot tell which PCI device holds the root file "
                                            "system (%m): none is protected for it");
                for (size_t i = 0; i < d->n_root_devices; i++) {
                        char bdf[PG_BDF_MAX];
                        log_info("%s holds the root file system: protected%s",
                                 pg_bdf_format(d->root_devices[i], bdf),
                                 pg_policy_protect_root_device(d->policy)
                                         ? ""
                                         : " only if the policy sets protect_root_device = true");
                }
        }
        return 0;
}

/* The grant store; a corrupt or unknown one stops us unless asked to rebuild it. */
static int open_grants(struct pgd_daemon *d)
{
        _cleanup_(freep) char *why = NULL, *file = NULL;
        int r;

        if (mkdir(d->cfg.state_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Failed to create the state directory %s: %m",
                                       d->cfg.state_dir);

        if (d->cfg.rebuild_state) {
                r = pgd_grants_new_empty(d->cfg.state_dir, &d->grants);
                if (r < 0)
                        return log_error_errno(r, "Failed to create the grant store in %s: %m",
                                               d->cfg.state_dir);
                /* It refuses to replace a store that parses, and commits what it built. */
                r = pgd_reconcile_rebuild(d);
                if (r == -EEXIST)
                        return r; /* it said why */
                if (r < 0)
                        return log_error_errno(r, "Failed to rebuild the grant store: %m");
                return 0;
        }

        r = pgd_grants_load(d->cfg.state_dir, &d->grants, &why, &file);
        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                return log_error_errno(r,
                                       "Refusing to start: %s is %s (%s). The file is left "
                                       "untouched; start once with --rebuild-state to rebuild "
                                       "the grant store from the hypervisor.",
                                       file ?: d->cfg.state_dir,
                                       r == -EBADMSG ? "corrupt" : "of an unknown format",
                                       why ?: "no details");
        if (r < 0)
                return log_error_errno(r, "Failed to load the grant store in %s: %m",
                                       d->cfg.state_dir);
        return 0;
}

static int check_config(struct pgd_daemon *d)
{
        if (load_policy(d) < 0)
                return 1;
        printf("configuration OK\n");
        return 0;
}

static int run(int argc, char *argv[])
{
        _cleanup_(daemon_done) struct pgd_daemon d = {};
        _cleanup_(pgd_diags_clear) struct pgd_diags diags = {};
        enum pgd_action action;
        int r;

        /* 1. the command line and the config file */
        r = pgd_config_from_args(argc, argv, &d.cfg, &action, &diags);
        if (r < 0) {
                pgd_diags_print(&diags, stderr);
                if (d.cfg.check_config && d.cfg.policy_path) {
                        /* Say everything that is wrong, the policy's problems too. */
                        _cleanup_(pg_policy_diags_clear) struct pg_policy_diags pd = {};
                        struct pg_policy *p = NULL;
                        if (pg_policy_load(d.cfg.policy_path, &p, &pd) < 0)
                                pg_policy_diags_print(&pd, stderr);
                        pg_policy_free(p);
                }
                if (r == -ENOMEM)
                        fprintf(stderr, "passguardd: out of memory\n");
                return 1;
        }
        if (action == PGD_ACTION_HELP) {
                pgd_config_usage(stdout);
                return 0;
        }
        if (action == PGD_ACTION_VERSION) {
                printf("passguardd %s\n", PG_VERSION);
                return 0;
        }
        pgd_log_set_debug(d.cfg.debug);

        /* 2. the policy */
        if (d.cfg.check_config)
                return check_config(&d);
        if (load_policy(&d) < 0) {
                log_error("Refusing to start without a valid policy");
                return 1;
        }
        log_info("passguardd %s starting; policy %s (%zu rules)", PG_VERSION, d.cfg.policy_path,
                 pg_policy_n_rules(d.policy));

        /* 3. the host, 4. the grant store, reconciled with the host */
        if (open_backend(&d) < 0 || open_grants(&d) < 0)
                return 1;
        pgd_policy_warn(&d);
        /*
         * A state directory that cannot be written is said now (status:
         * state_ok false; every change refused state-error before the
         * hypervisor is asked), not at the first change.
         */
        (void)pgd_commit_store_result(&d, pgd_grants_probe(d.grants),
                                      "create a file in the directory of");
        r = pgd_reconcile_startup(&d);
        if (r < 0) {
                log_error_errno(r, "Failed to reconcile the grants with the host: %m");
                return 1;
        }
        /* The parse trees of the host and the store are gone: give their memory back. */
        malloc_trim(0);

        /* 5. the event loop and the socket */
        struct pgd_server *s = NULL;
        if (pgd_server_new(&d, &s) < 0 || pgd_server_listen(s) < 0 || pgd_server_watch_host(s) < 0)
                return 1;
        if (d.n_rollbacks > 0)
                pgd_server_retry_later(&d);

        /* 6. ready; 7. loop */
        pgd_daemon_notify_ready(&d);
        log_info("Ready: %zu grant(s)", pgd_grants_count(d.grants));
        r = pgd_server_run(s);

        /* What waits for a sync was never acknowledged; what is durable goes into the snapshot. */
        pgd_commit_free_all(&d);
        if (!d.state_broken && pgd_grants_journal_size(d.grants) > 0) {
                int k = pgd_grants_commit(d.grants);
                if (k < 0)
                        log_warning_errno(k, "Failed to compact %s (its journal stays valid): %m",
                                          pgd_grants_path(d.grants));
        }
        log_info("Stopped");
        return r < 0 ? 1 : 0;
}

int main(int argc, char *argv[])
{
        return run(argc, argv);
}
