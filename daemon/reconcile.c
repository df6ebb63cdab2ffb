/* SPDX-License-Identifier: MIT */
/*
 * Reconciliation: the hypervisor is the truth (DESIGN.md invariants 5 and 7).
 *
 * At start-up, for every grant in the store:
 *   - its domain no longer exists, or its domid now belongs to a domain with
 *     another UUID: the grant is released (audit "domain-gone");
 *   - the hypervisor no longer shows the device assigned to the grant's domid
 *     (a crash between the deassign and the commit of a release): the grant is
 *     dropped (audit "reconcile");
 *   - otherwise it is kept. A dying domain counts as gone: Xen releases its
 *     devices while it dies, and @releaseDomain fires only once, then.
 * Then, for every device the hypervisor shows assigned to a guest with no
 * matching grant (an "unmanaged" assignment, always audited as a warning):
 *   - the device is one passguard prepared (it is in the store's prepared
 *     list) and its domain is alive: the assignment is rolled back, i.e.
 *     deassigned, which puts the device back into quarantine. Only passguardd
 *     assigns prepared devices, and it acknowledges an assignment only after
 *     committing its grant (invariant 4), so such an assignment is one it made
 *     just before a crash and that no client was ever told was granted. This
 *     is what keeps "no orphaned assignment" true across a crash at any step
 *     of assign or release: after a restart, every grant is assigned in the
 *     hypervisor and every hypervisor assignment of a prepared device has a
 *     grant;
 *   - otherwise it is only reported, unless --enforce asks to deassign it.
 * The store is committed once, if anything changed.
 *
 * On every domain event (pgd_reconcile_domains) the grants of domains that
 * are gone or dying, or whose domid now names another UUID, are released: Xen has
 * already moved their devices into quarantine. The device is reset (best
 * effort) and the release audited.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "grants.h"
#include "log.h"
#include "reconcile.h"

struct host_view {
        struct hv_domain *doms;
        size_t n_doms;
        struct hv_assignment *asg;
        size_t n_asg;
};

static void host_view_clear(struct host_view *v)
{
        v->doms = pg_free(v->doms);
        v->asg = pg_free(v->asg);
        v->n_doms = v->n_asg = 0;
}

static int host_view_load(struct pgd_daemon *d, bool assignments, struct host_view *ret)
{
        struct host_view v = {};
        int r;

        r = d->hv_ops->domain_list(d->hv, &v.doms, &v.n_doms);
        if (r < 0)
                return log_error_errno(r, "Failed to list domains: %m");
        if (assignments) {
                r = d->hv_ops->assignments(d->hv, &v.asg, &v.n_asg);
                if (r < 0) {
                        host_view_clear(&v);
                        return log_error_errno(r, "Failed to list device assignments: %m");
                }
        }
        *ret = v;
        return 0;
}

static const struct hv_domain *find_domain(const struct host_view *v, uint32_t domid)
{
        for (size_t i = 0; i < v->n_doms; i++)
                if (v->doms[i].domid == domid)
                        return &v->doms[i];
        return NULL;
}

/* The device's owner in the hypervisor: a guest, HV_DOMID_IO, or dom0 when not listed. */
static struct hv_assignment *find_assignment(struct host_view *v, uint32_t sbdf)
{
        for (size_t i = 0; i < v->n_asg; i++)
                if (v->asg[i].sbdf == sbdf)
                        return &v->asg[i];
        return NULL;
}

static uint32_t owner_of(struct host_view *v, uint32_t sbdf)
{
        const struct hv_assignment *a = find_assignment(v, sbdf);

        return a ? a->domid : HV_DOMID_DOM0;
}

static bool is_guest(uint32_t domid)
{
        return domid != HV_DOMID_DOM0 && domid < 0x7FF0U;
}

static const char *owner_name(uint32_t domid, char buf[static 16])
{
        if (domid == HV_DOMID_DOM0)
                return "dom0";
        if (domid == HV_DOMID_IO)
                return "quarantine";
        snprintf(buf, 16, "d%" PRIu32, domid);
        return buf;
}

/* The client who was granted the device, for audit records about the grant. */
static void grant_peer(struct pgd_grant *gr, struct pgd_peer *ret)
{
        *ret = (struct pgd_peer){
                .uid = gr->client_uid,
                .pid = gr->client_pid,
                .unit = gr->client_unit[0] ? gr->client_unit : NULL,
        };
}

/* An audit record about a device and the domain dom (NULL: unknown), on no client's behalf. */
static void audit_device(struct pgd_daemon *d, enum pgd_audit_kind kind, const char *op,
                         uint32_t sbdf, uint32_t domid, const struct hv_domain *dom,
                         const char *decision, int error, const char *msg)
{
        pgd_audit(d, &(struct pgd_audit_record){
                             .kind = kind,
                             .op = op,
                             .sbdf = sbdf,
                             .domid = domid == HV_DOMID_IO ? -1 : (int64_t)domid,
                             .domain_uuid = dom ? dom->uuid : NULL,
                             .domain_name = dom ? dom->name : NULL,
                             .decision = decision,
                             .error = error,
                             .message = msg,
                     });
}

static void audit_grant(struct pgd_daemon *d, enum pgd_audit_kind kind, const char *op,
                        struct pgd_grant *gr, const char *decision, int error, const char *msg)
{
        struct pgd_peer peer;

        grant_peer(gr, &peer);
        pgd_audit(d, &(struct pgd_audit_record){
                             .kind = kind,
                             .op = op,
                             .sbdf = gr->sbdf,
                             .domid = gr->domid,
                             .domain_uuid = gr->domain_uuid,
                             .domain_name = gr->domain_name,
                             .peer = &peer,
                             .rule = gr->rule,
                             .decision = decision,
                             .error = error,
                             .message = msg,
                     });
}

/*
 * Whether a device released by domain death is reset. The rule is looked up
 * by name, nothing is evaluated. pg_policy gives no per-rule reset setting by
 * name, so every rule gets the policy default, "required", which after domain
 * death is best effort: the device sits in quarantine and a failed reset is
 * logged. (A failed reset cannot undo a release; the next assign resets it
 * again when its rule asks.)
 */
/*
 * Whether the grant's rule asks for a reset of this device now: "required"
 * always (a failure is logged), "if-available" when the device has a reset,
 * "never" not. A rule that a reload removed resets when the device can.
 */
static bool rule_wants_reset(const struct pgd_daemon *d, const char *rule, uint32_t sbdf)
{
        enum pg_policy_reset reset = PG_POLICY_RESET_IF_AVAILABLE;
        struct hv_pci_info info;

        (void)pg_policy_rule_reset(d->policy, rule, &reset);
        if (reset == PG_POLICY_RESET_NEVER)
                return false;
        if (reset == PG_POLICY_RESET_REQUIRED)
                return true;
        return d->hv_ops->pci_info(d->hv, sbdf, &info) >= 0 && info.has_reset;
}

/* ---- domain events ---- */

int pgd_reconcile_domains(struct pgd_daemon *d)
{
        _cleanup_(freep) struct pgd_grant *gone = NULL;
        struct host_view v = {};
        size_t n_gone = 0, n = pgd_grants_count(d->grants);
        int r, commit_r;

        if (n == 0)
                return 0; /* nothing to release: no hypervisor call at all */

        r = host_view_load(d, false, &v);
        if (r < 0)
                return r;
        gone = calloc(n, sizeof(*gone));
        if (!gone) {
                host_view_clear(&v);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                const struct pgd_grant *gr = pgd_grants_get(d->grants, i);
                const struct hv_domain *dom = find_domain(&v, gr->domid);
                /*
                 * Xen fires @releaseDomain once, when the domain starts dying,
                 * and releases its devices into quarantine then: dying is gone.
                 */
                if (!dom || dom->dying || !streq(dom->uuid, gr->domain_uuid))
                        gone[n_gone++] = *gr;
        }
        host_view_clear(&v);
        if (n_gone == 0)
                return 0;

        for (size_t i = 0; i < n_gone; i++)
                (void)pgd_grants_remove(d->grants, gone[i].sbdf);
        /*
         * Xen already moved these devices into quarantine: the grants are gone
         * whatever the disk says. If the commit fails, the next start-up drops
         * them again from the file; the error is still reported.
         */
        commit_r = pgd_grants_commit(d->grants);
        if (commit_r < 0) {
                /* The file disagrees with memory: changes wait until it is written (ops.c). */
                d->state_broken = true;
                d->state_error = commit_r;
                log_error_errno(commit_r, "Failed to write %s: %m", pgd_grants_path(d->grants));
        } else {
                d->state_broken = false;
                d->state_error = 0;
        }

        for (size_t i = 0; i < n_gone; i++) {
                struct pgd_grant *gr = &gone[i];
                char bdf[PG_BDF_MAX], msg[256];
                const char *reset = "not reset";

                pg_bdf_format(gr->sbdf, bdf);
                if (rule_wants_reset(d, gr->rule, gr->sbdf)) {
                        r = d->hv_ops->pci_reset(d->hv, gr->sbdf);
                        if (r < 0) {
                                log_warning_errno(
                                        r, "Failed to reset %s after d%" PRIu32 " went away: %m",
                                        bdf, gr->domid);
                                reset = "reset failed";
                        } else
                                reset = "reset";
                }
                snprintf(msg, sizeof(msg), "domain %s (%s) is gone; device back in quarantine, %s",
                         gr->domain_name[0] ? gr->domain_name : "-", gr->domain_uuid, reset);
                audit_grant(d, PGD_AUDIT_DOMAIN_GONE, "domain-death", gr, "released",
                            commit_r < 0 ? PG_ERR_STATE_ERROR : 0, msg);
        }
        log_info("released %zu grant(s) of domains that are gone", n_gone);
        return commit_r < 0 ? commit_r : (int)n_gone;
}

/* ---- start-up ---- */

static int deassign(struct pgd_daemon *d, struct host_view *v, uint32_t domid, uint32_t sbdf)
{
        int r = d->hv_ops->deassign(d->hv, domid, sbdf);
        if (r < 0)
                return r;
        /* With quarantine on (Xen 4.17's default) a deassigned device goes to DOMID_IO. */
        struct hv_assignment *a = find_assignment(v, sbdf);
        if (a)
                a->domid = HV_DOMID_IO;
        return 0;
}

int pgd_reconcile_startup(struct pgd_daemon *d)
{
        struct pgd_grants *g = d->grants;
        struct host_view v = {};
        size_t kept = 0, released = 0, unmanaged = 0, deassigned = 0;
        bool store_changed = false;
        char bdf[PG_BDF_MAX], obuf[16], msg[256];
        int r;

        r = host_view_load(d, true, &v);
        if (r < 0)
                return r;

        for (size_t i = 0; i < pgd_grants_count(g);) {
                struct pgd_grant gr = *pgd_grants_get(g, i);
                const struct hv_domain *dom = find_domain(&v, gr.domid);
                uint32_t owner = owner_of(&v, gr.sbdf);

                pg_bdf_format(gr.sbdf, bdf);
                if (!dom || dom->dying) {
                        /* Gone: Xen quarantines its devices; clean up if it did not. */
                        if (owner == gr.domid) {
                                r = deassign(d, &v, gr.domid, gr.sbdf);
                                if (r < 0)
                                        log_warning_errno(
                                                r, "Failed to deassign %s from d%" PRIu32 ": %m",
                                                bdf, gr.domid);
                        }
                        snprintf(msg, sizeof(msg), "domain d%" PRIu32 " (%s) %s", gr.domid,
                                 gr.domain_uuid, dom ? "is dying" : "no longer exists");
                } else if (!streq(dom->uuid, gr.domain_uuid)) {
                        /*
                         * The domid was reused. Whatever the new domain holds, it
                         * was not granted by this grant: the assignment pass below
                         * treats it as unmanaged.
                         */
                        snprintf(msg, sizeof(msg),
                                 "domid %" PRIu32 " now belongs to %s (%s), not %s", gr.domid,
                                 dom->name[0] ? dom->name : "-", dom->uuid, gr.domain_uuid);
                } else if (owner != gr.domid) {
                        snprintf(msg, sizeof(msg),
                                 "the hypervisor shows the device owned by %s, not d%" PRIu32,
                                 owner_name(owner, obuf), gr.domid);
                        (void)pgd_grants_remove(g, gr.sbdf);
                        audit_grant(d, PGD_AUDIT_RECONCILE, "reconcile", &gr, "dropped", 0, msg);
                        log_notice("Dropped grant of %s to d%" PRIu32 ": %s", bdf, gr.domid, msg);
                        store_changed = true;
                        released++;
                        continue;
                } else {
                        kept++;
                        i++;
                        continue;
                }
                (void)pgd_grants_remove(g, gr.sbdf);
                audit_grant(d, PGD_AUDIT_DOMAIN_GONE, "reconcile", &gr, "released", 0, msg);
                log_notice("Released grant of %s to d%" PRIu32 ": %s", bdf, gr.domid, msg);
                store_changed = true;
                released++;
        }

        for (size_t i = 0; i < v.n_asg; i++) {
                struct hv_assignment a = v.asg[i];
                const struct pgd_grant *gr = pgd_grants_find(g, a.sbdf);
                const struct hv_domain *dom;
                const char *decision = "unmanaged";
                int error = 0;
                bool prepared, alive;

                if (!is_guest(a.domid) || (gr && gr->domid == a.domid))
                        continue;
                dom = find_domain(&v, a.domid);
                prepared = pgd_grants_prepared_driver(g, a.sbdf) != NULL;
                alive = dom && !dom->dying;
                pg_bdf_format(a.sbdf, bdf);
                unmanaged++;

                if (alive && (prepared || d->cfg.enforce)) {
                        r = deassign(d, &v, a.domid, a.sbdf);
                        if (r < 0) {
                                log_warning_errno(r, "Failed to deassign %s from d%" PRIu32 ": %m",
                                                  bdf, a.domid);
                                error = PG_ERR_HYPERVISOR_ERROR;
                                snprintf(msg, sizeof(msg),
                                         "assigned without a grant; deassign failed: %s",
                                         strerror(-r));
                        } else {
                                deassigned++;
                                decision = prepared ? "rolled-back" : "deassigned";
                                snprintf(msg, sizeof(msg), "%s",
                                         prepared ? "assigned without a grant (interrupted "
                                                    "assign); rolled back into quarantine"
                                                  : "assigned without a grant; deassigned "
                                                    "(enforce)");
                        }
                } else
                        snprintf(msg, sizeof(msg), "assigned without a grant%s",
                                 dom ? (dom->dying ? " (domain dying)" : "") : " (no such domain)");

                log_warning("Unmanaged assignment of %s to d%" PRIu32 ": %s", bdf, a.domid, msg);
                audit_device(d, PGD_AUDIT_UNMANAGED, "reconcile", a.sbdf, a.domid, dom, decision,
                             error, msg);
        }
        host_view_clear(&v);

        if (store_changed) {
                r = pgd_grants_commit(g);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", pgd_grants_path(g));
        }
        log_info("reconciled: %zu grants kept, %zu released, %zu unmanaged", kept, released,
                 unmanaged);
        return (int)(released + deassigned);
}

/* ---- --rebuild-state ---- */

/*
 * --rebuild-state replaces a store that cannot be read. A store that parses
 * is refused: rebuilding it would drop what the hypervisor cannot tell (the
 * granting clients, the rules, the drivers to give prepared devices back to).
 */
static int refuse_valid_store(struct pgd_daemon *d)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *old = NULL;
        const char *path = pgd_grants_path(d->grants);
        struct stat st;
        int r;

        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0; /* nothing to replace */
                return log_error_errno(-errno, "Failed to look at %s: %m", path);
        }
        r = pgd_grants_open(d->cfg.state_dir, &old, NULL);
        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                return 0; /* what --rebuild-state is for */
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        return log_error_errno(-EEXIST,
                               "%s is valid; refusing to replace it: move it away first to "
                               "rebuild",
                               path);
}

/*
 * A device the hypervisor shows in quarantine and that pciback holds is taken
 * as prepared. Its original dom0 driver is unknown (""), so `unprepare` leaves
 * it unbound.
 */
static int rebuild_prepared(struct pgd_daemon *d, uint32_t sbdf, bool *ret_added)
{
        struct hv_pci_info info;
        char bdf[PG_BDF_MAX];
        int r;

        *ret_added = false;
        pg_bdf_format(sbdf, bdf);
        r = d->hv_ops->pci_info(d->hv, sbdf, &info);
        if (r < 0) {
                log_warning_errno(r, "Failed to read PCI device %s: %m", bdf);
                return 0;
        }
        if (!streq(info.driver, "pciback")) {
                printf("quarantined: %s (bound to %s, not recorded as prepared)\n", bdf,
                       info.driver[0] ? info.driver : "no driver");
                return 0;
        }
        r = pgd_grants_set_prepared(d->grants, sbdf, "");
        if (r < 0)
                return log_error_errno(r, "Failed to record %s as prepared: %m", bdf);
        printf("prepared: %s (quarantined, pciback; original driver unknown)\n", bdf);
        audit_device(d, PGD_AUDIT_RECONCILE, "rebuild", sbdf, HV_DOMID_IO, NULL, "prepared", 0,
                     "recorded as prepared from the hypervisor's quarantine");
        *ret_added = true;
        return 0;
}

int pgd_reconcile_rebuild(struct pgd_daemon *d)
{
        struct pgd_grants *g = d->grants;
        struct host_view v = {};
        size_t n = 0, quarantined = 0, prepared = 0;
        char bdf[PG_BDF_MAX];
        int r;

        r = refuse_valid_store(d);
        if (r < 0)
                return r;
        r = host_view_load(d, true, &v);
        if (r < 0)
                return r;

        for (size_t i = 0; i < v.n_asg; i++) {
                const struct hv_assignment *a = &v.asg[i];
                const struct hv_domain *dom = find_domain(&v, a->domid);
                struct pgd_grant gr = {
                        .sbdf = a->sbdf,
                        .domid = a->domid,
                        .rdm_policy = PG_POLICY_RDM_STRICT,
                        .time = (int64_t)time(NULL),
                };

                pg_bdf_format(a->sbdf, bdf);
                if (a->domid == HV_DOMID_IO) {
                        bool added;
                        quarantined++;
                        r = rebuild_prepared(d, a->sbdf, &added);
                        if (r < 0) {
                                host_view_clear(&v);
                                return r;
                        }
                        prepared += added;
                        continue;
                }
                if (!is_guest(a->domid))
                        continue;
                if (!dom || dom->dying) {
                        printf("skipped: %s -> d%" PRIu32 " (domain %s)\n", bdf, a->domid,
                               dom ? "dying" : "gone");
                        continue;
                }
                /*
                 * Who asked for it is lost: client uid 0 and rule "rebuilt",
                 * so only an admin (or a uid-0 client) may release it.
                 */
                snprintf(gr.domain_uuid, sizeof(gr.domain_uuid), "%s", dom->uuid);
                snprintf(gr.domain_name, sizeof(gr.domain_name), "%s", dom->name);
                snprintf(gr.rule, sizeof(gr.rule), "rebuilt");
                r = pgd_grants_add(g, &gr);
                if (r < 0) {
                        host_view_clear(&v);
                        return log_error_errno(r, "Failed to record %s: %m", bdf);
                }
                printf("rebuilt: %s -> d%" PRIu32 " %s (%s)\n", bdf, a->domid,
                       dom->name[0] ? dom->name : "-", dom->uuid);
                audit_grant(d, PGD_AUDIT_RECONCILE, "rebuild", &gr, "rebuilt", 0,
                            "grant rebuilt from the hypervisor's assignment");
                n++;
        }
        host_view_clear(&v);
        printf("rebuilt %zu grant(s); %zu device(s) in quarantine, %zu recorded as prepared\n", n,
               quarantined, prepared);
        fflush(stdout);

        r = pgd_grants_commit(g);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", pgd_grants_path(g));
        log_info("rebuilt %s from the hypervisor: %zu grant(s), %zu prepared device(s)",
                 pgd_grants_path(g), n, prepared);
        return (int)n;
}
