/* SPDX-License-Identifier: MIT */
/*
 * Reconciliation: the hypervisor is the truth (DESIGN.md invariants 5 and 7).
 *
 * At start-up, first every intent the journal left open (a crash between an
 * intent record and its outcome, or a rollback that never succeeded):
 *   - an assign's intent: when the hypervisor shows the device assigned to
 *     the intent's domain and no grant records it, the assign happened and
 *     was never acknowledged: it is rolled back (deassigned, into
 *     quarantine), whoever quarantined the device before. Otherwise it never
 *     happened. No orphaned assignment survives a crash, and no grant that
 *     was acknowledged is lost;
 *   - a prepare's intent: when the device is in quarantine and bound to
 *     pciback, the prepare happened: it is recorded as prepared, with the
 *     driver the intent named (quarantine is the safe side; nothing is
 *     handed back to a dom0 driver on its own).
 * Then, for every grant in the store:
 *   - its domain no longer exists, or its domid now belongs to a domain with
 *     another UUID: the grant is released (audit "domain-gone");
 *   - the hypervisor no longer shows the device assigned to the grant's domid
 *     (a crash between the deassign and the commit of a release): the grant is
 *     dropped (audit "reconcile");
 *   - otherwise it is kept. A dying domain counts as gone: Xen releases its
 *     devices while it dies, and @releaseDomain fires only once, then.
 *   Each release or drop is a change made by commit.c's one helper, as a
 *   domain's death while the daemon runs: recorded, then the device reset
 *   by the grant's rule when it is back in quarantine, and audited.
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
 * Then every grant's and prepared device's recorded identity is compared
 * with the device at its address now: a device that is not the one recorded
 * (or is gone) is reported (audit "identity"); its grant is kept (the
 * hypervisor's assignment is the truth), and an assign of a prepared device
 * that changed is refused identity-changed (checks.c).
 * The store is then compacted (snapshot written, journal emptied) once, when
 * anything changed or the journal held records; a journal that takes no
 * records (not the snapshot's) is compacted before the first change.
 *
 * On every domain event (pgd_reconcile_domains) the grants of domains that
 * are gone or dying, or whose domid now names another UUID, are released: Xen has
 * already moved their devices into quarantine. Each release is a change
 * (commit.c): recorded, then, once durable, the device is reset by the
 * grant's rule (best effort) and the release audited. Then the hypervisor's
 * assignments are read again: an assignment to a live guest that no grant
 * and no change in flight accounts for is unmanaged, reported once (audit
 * "unmanaged"), and under --enforce deassigned, into quarantine. And the
 * recorded identities are compared again, each change reported once.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "commit.h"
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

static const char *owner_name(uint32_t domid, char buf[static 16])
{
        if (domid == HV_DOMID_DOM0)
                return "dom0";
        if (domid == HV_DOMID_IO)
                return "quarantine";
        snprintf(buf, 16, "d%" PRIu32, domid);
        return buf;
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

static int identities_check(struct pgd_daemon *d, const char *op);

/* ---- unmanaged assignments ---- */

/* Whether an open intent (an assign in flight, or one whose rollback is pending) covers sbdf. */
static bool in_flight(const struct pgd_grants *g, uint32_t sbdf)
{
        for (size_t i = 0; i < pgd_grants_n_intents(g); i++)
                if (pgd_intent_assigns(pgd_grants_intent(g, i), sbdf))
                        return true;
        return false;
}

static bool was_reported(const struct pgd_daemon *d, const struct hv_assignment *a)
{
        for (size_t i = 0; i < d->n_unmanaged; i++)
                if (d->unmanaged[i].sbdf == a->sbdf && d->unmanaged[i].domid == a->domid)
                        return true;
        return false;
}

/*
 * Every assignment to a live guest that no grant accounts for: reported
 * once each (d->unmanaged remembers which), deassigned into quarantine under
 * --enforce. Returns how many were deassigned, or -ENOMEM.
 */
static int unmanaged_scan(struct pgd_daemon *d, struct host_view *v)
{
        _cleanup_(freep) struct hv_assignment *now = calloc(v->n_asg + 1, sizeof(*now));
        size_t n_now = 0;
        int deassigned = 0;

        if (!now)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_asg; i++) {
                const struct hv_assignment *a = &v->asg[i];
                const struct pgd_grant *gr = pgd_grants_find(d->grants, a->sbdf);
                const struct hv_domain *dom = find_domain(v, a->domid);
                char bdf[PG_BDF_MAX], msg[256];
                int r;

                if (!pg_domid_is_guest(a->domid) || (gr && gr->domid == a->domid) ||
                    in_flight(d->grants, a->sbdf) || !dom || dom->dying)
                        continue; /* granted, in flight, or Xen takes it back from a dead domain */
                pg_bdf_format(a->sbdf, bdf);
                if (d->cfg.enforce) {
                        r = d->hv_ops->deassign(d->hv, a->domid, a->sbdf);
                        if (r >= 0 || r == -ENODEV || r == -ESRCH) {
                                deassigned++;
                                snprintf(msg, sizeof(msg),
                                         "assigned without a grant; deassigned into quarantine "
                                         "(enforce)");
                                log_warning("Unmanaged assignment of %s to d%" PRIu32 ": %s", bdf,
                                            a->domid, msg);
                                audit_device(d, PGD_AUDIT_UNMANAGED, "domain-event", a->sbdf,
                                             a->domid, dom, "deassigned", 0, msg);
                                continue;
                        }
                        snprintf(msg, sizeof(msg), "assigned without a grant; deassign failed: %s",
                                 strerror(-r));
                } else
                        snprintf(msg, sizeof(msg), "assigned without a grant");
                now[n_now++] = *a;
                if (was_reported(d, a))
                        continue;
                log_warning("Unmanaged assignment of %s to d%" PRIu32 ": %s", bdf, a->domid, msg);
                audit_device(d, PGD_AUDIT_UNMANAGED, "domain-event", a->sbdf, a->domid, dom,
                             "unmanaged", d->cfg.enforce ? PG_ERR_HYPERVISOR_ERROR : 0, msg);
        }
        free(d->unmanaged);
        d->unmanaged = TAKE_PTR(now);
        d->n_unmanaged = n_now;
        return deassigned;
}

/* ---- domain events ---- */

int pgd_reconcile_domains(struct pgd_daemon *d)
{
        _cleanup_(freep) struct pgd_grant *gone = NULL;
        struct host_view v = {};
        size_t n_gone = 0, n = pgd_grants_count(d->grants);
        int r, failed = 0, deassigned;

        r = host_view_load(d, true, &v);
        if (r < 0)
                return r;
        gone = calloc(n + 1, sizeof(*gone));
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

        /*
         * Xen already moved these devices into quarantine: the grants are gone
         * whatever the disk says. If the journal cannot take it, the store is
         * marked broken and the next start-up drops them again.
         */
        for (size_t i = 0; i < n_gone; i++) {
                struct pgd_change_args a = {
                        .kind = PGD_CHANGE_DOMAIN_GONE,
                        .grant = gone[i],
                        .message = "released",
                        .quarantined = true,
                };
                snprintf(a.why, sizeof(a.why), "domain %s (%s) is gone; device back in quarantine",
                         gone[i].domain_name[0] ? gone[i].domain_name : "-", gone[i].domain_uuid);
                r = pgd_commit_change(d, NULL, &a);
                if (r != 0)
                        failed = r;
        }
        if (n_gone > 0)
                log_info("released %zu grant(s) of domains that are gone", n_gone);

        /* An assignment made behind passguard's back shows now, not only at the next start. */
        deassigned = unmanaged_scan(d, &v);
        host_view_clear(&v);
        /* And a device that is not the one recorded at its address (read only). */
        r = identities_check(d, "domain-event");
        if (failed == -ENOMEM || deassigned == -ENOMEM || r == -ENOMEM)
                return -ENOMEM;
        if (failed > 0)
                return d->state_error < 0 ? d->state_error : -EIO;
        return (int)n_gone + deassigned;
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

/*
 * A multi-device assign's intent left open: its outcome never made it to the
 * journal, so no client was told it was granted, and the group is all or
 * nothing: every device of it the hypervisor shows assigned to its domain is
 * rolled back into quarantine. Returns 1 when any was, 0, or -errno.
 */
static int resolve_group(struct pgd_daemon *d, struct host_view *v, const struct pgd_intent *in)
{
        size_t rolled = 0;
        bool later = false;
        char bdf[PG_BDF_MAX], msg[256];
        int r;

        for (size_t i = 0; i < in->n_grants; i++) {
                const struct pgd_grant *want = &in->grants[i];
                const struct pgd_grant *gr = pgd_grants_find(d->grants, want->sbdf);

                if ((gr && gr->domid == want->domid) || owner_of(v, want->sbdf) != want->domid)
                        continue;
                pg_bdf_format(want->sbdf, bdf);
                r = deassign(d, v, want->domid, want->sbdf);
                if (r < 0 && r != -ENODEV && r != -ESRCH) {
                        log_error_errno(r,
                                        "Failed to roll back the interrupted group assign of %s "
                                        "to d%" PRIu32 " (retried until it succeeds): %m",
                                        bdf, want->domid);
                        later = true;
                        continue;
                }
                snprintf(msg, sizeof(msg),
                         "assigned by an interrupted multi-device assign (intent %" PRIu64
                         ", %zu devices, never acknowledged); rolled back into quarantine",
                         in->seq, in->n_grants);
                log_warning("Unmanaged assignment of %s to d%" PRIu32 ": %s", bdf, want->domid,
                            msg);
                audit_device(d, PGD_AUDIT_UNMANAGED, "reconcile", want->sbdf, want->domid,
                             find_domain(v, want->domid), "rolled-back", 0, msg);
                rolled++;
        }
        if (later)
                return pgd_commit_rollback_later(d, in);
        r = pgd_grants_drop_intent(d->grants, in->seq);
        return r < 0 ? r : rolled > 0;
}

/*
 * An intent left open: resolve it by what the hypervisor shows, and close it
 * (in memory: the compaction that follows writes the result). Returns 1 when
 * an assignment was rolled back, 0, or -errno. An assignment the hypervisor
 * will not roll back now keeps its intent (carried into the new journal) and
 * is retried until it succeeds, like any failed rollback (commit.c).
 */
static int resolve_intent(struct pgd_daemon *d, struct host_view *v, const struct pgd_intent *in)
{
        struct pgd_grants *g = d->grants;
        const struct pgd_grant *gr = pgd_grants_find(g, in->sbdf);
        const struct hv_domain *dom;
        char bdf[PG_BDF_MAX], msg[256];
        uint32_t owner = owner_of(v, in->sbdf);
        int r;

        pg_bdf_format(in->sbdf, bdf);
        if (in->op == PGD_RECORD_INTENT_PREPARE) {
                struct hv_pci_info info;
                if (!pgd_grants_prepared_driver(g, in->sbdf) && owner == HV_DOMID_IO &&
                    d->hv_ops->pci_info(d->hv, in->sbdf, &info) >= 0 &&
                    streq(info.driver, "pciback")) {
                        r = pgd_grants_set_prepared(g, in->sbdf, in->driver);
                        if (r < 0)
                                return r;
                        audit_device(d, PGD_AUDIT_RECONCILE, "reconcile", in->sbdf, HV_DOMID_IO,
                                     NULL, "prepared", 0,
                                     "an interrupted prepare is complete: recorded as prepared");
                        log_notice("Recorded %s as prepared (an interrupted prepare, driver %s)",
                                   bdf, in->driver[0] ? in->driver : "none");
                }
                return pgd_grants_drop_intent(g, in->seq);
        }

        if (in->op == PGD_RECORD_INTENT_ASSIGN_GROUP)
                return resolve_group(d, v, in);

        /* An assign: done and recorded, never done, or done and never acknowledged. */
        if ((gr && gr->domid == in->grant.domid) || owner != in->grant.domid)
                return pgd_grants_drop_intent(g, in->seq);
        dom = find_domain(v, in->grant.domid);
        r = deassign(d, v, in->grant.domid, in->sbdf);
        if (r < 0 && r != -ENODEV && r != -ESRCH) {
                log_error_errno(r,
                                "Failed to roll back the interrupted assign of %s to d%" PRIu32
                                " (retried until it succeeds): %m",
                                bdf, in->grant.domid);
                return pgd_commit_rollback_later(d, in);
        }
        snprintf(msg, sizeof(msg),
                 "assigned by an interrupted assign (intent %" PRIu64
                 ", never acknowledged); rolled back into quarantine",
                 in->seq);
        log_warning("Unmanaged assignment of %s to d%" PRIu32 ": %s", bdf, in->grant.domid, msg);
        audit_device(d, PGD_AUDIT_UNMANAGED, "reconcile", in->sbdf, in->grant.domid, dom,
                     "rolled-back", 0, msg);
        r = pgd_grants_drop_intent(g, in->seq);
        return r < 0 ? r : 1;
}

static bool changed_before(const struct pgd_daemon *d, uint32_t sbdf)
{
        for (size_t i = 0; i < d->n_changed; i++)
                if (d->changed[i] == sbdf)
                        return true;
        return false;
}

/*
 * What a recorded identity says of the device at its address now: whether it
 * differs. A difference not reported yet (d->changed) is reported.
 */
static bool identity_report(struct pgd_daemon *d, const char *op, uint32_t sbdf,
                            const struct pgd_identity *was, const struct pgd_grant *gr)
{
        struct hv_pci_info info;
        struct pgd_identity now;
        char bdf[PG_BDF_MAX], what[200], msg[300];
        int r;

        pg_bdf_format(sbdf, bdf);
        r = d->hv_ops->pci_info(d->hv, sbdf, &info);
        if (r == -ENODEV)
                snprintf(what, sizeof(what), "the device is gone");
        else if (r < 0)
                return false; /* cannot tell: the next assign's identity check will */
        else {
                pgd_identity_from_pci(&info, &now);
                if (pgd_identity_diff(was, &now, what, sizeof(what)) == 0)
                        return false;
        }
        if (changed_before(d, sbdf))
                return true;
        snprintf(msg, sizeof(msg), "%s is not the device %s: %s", bdf,
                 gr ? "that was granted" : "that was prepared there", what);
        log_warning("%s", msg);
        if (gr)
                pgd_audit_grant(d, PGD_AUDIT_IDENTITY, op, NULL, gr, "changed", 0, msg);
        else
                audit_device(d, PGD_AUDIT_IDENTITY, op, sbdf, HV_DOMID_IO, NULL, "changed", 0, msg);
        return true;
}

/*
 * Every recorded identity against the device at its address: each change
 * reported once while it lasts (at start-up, and at each event of the
 * host). Returns how many differ, or -ENOMEM.
 */
static int identities_check(struct pgd_daemon *d, const char *op)
{
        struct pgd_grants *g = d->grants;
        size_t n = pgd_grants_count(g) + pgd_grants_n_prepared(g), k = 0;
        _cleanup_(freep) uint32_t *now = calloc(n + 1, sizeof(*now));

        if (!now)
                return -ENOMEM;
        for (size_t i = 0; i < pgd_grants_count(g); i++) {
                const struct pgd_grant *gr = pgd_grants_get(g, i);
                if (gr->identity.known && identity_report(d, op, gr->sbdf, &gr->identity, gr))
                        now[k++] = gr->sbdf;
        }
        for (size_t i = 0; i < pgd_grants_n_prepared(g); i++) {
                const struct pgd_identity *id;
                uint32_t sbdf;
                if (pgd_grants_prepared(g, i, &sbdf, &id) < 0 || !id)
                        continue;
                const struct pgd_grant *gr = pgd_grants_find(g, sbdf);
                if (gr && gr->identity.known)
                        continue; /* said for its grant */
                if (identity_report(d, op, sbdf, id, NULL))
                        now[k++] = sbdf;
        }
        free(d->changed);
        d->changed = TAKE_PTR(now);
        d->n_changed = k;
        return (int)k;
}

void pgd_reconcile_clear(struct pgd_daemon *d)
{
        d->unmanaged = pg_free(d->unmanaged);
        d->n_unmanaged = 0;
        d->changed = pg_free(d->changed);
        d->n_changed = 0;
}

int pgd_reconcile_startup(struct pgd_daemon *d)
{
        struct pgd_grants *g = d->grants;
        struct host_view v = {};
        size_t kept = 0, released = 0, unmanaged = 0, deassigned = 0;
        int changed;
        bool store_changed = false;
        char bdf[PG_BDF_MAX], obuf[16], msg[256];
        int r;

        r = host_view_load(d, true, &v);
        if (r < 0)
                return r;

        /* The journal's open intents: calls that may have happened, never answered. */
        for (size_t i = pgd_grants_n_intents(g); i > 0; i--) {
                const struct pgd_intent in = *pgd_grants_intent(g, i - 1);
                r = resolve_intent(d, &v, &in);
                if (r < 0) {
                        host_view_clear(&v);
                        return r;
                }
                if (r > 0)
                        deassigned++;
                store_changed = true;
        }

        /*
         * A journal that takes no record (not this snapshot's): compacted
         * before any. When the store cannot be written, the changes below
         * are made in memory only, as domain deaths are while the daemon
         * runs (commit.c): the store is broken, and the next start-up makes
         * them again.
         */
        if (pgd_grants_needs_commit(g))
                (void)pgd_commit_store_result(d, pgd_grants_commit(g), "write");

        /*
         * The grants the hypervisor ended while passguardd was down: each a
         * change (commit.c), the same as a domain's death while it runs.
         */
        for (size_t i = 0; i < pgd_grants_count(g);) {
                struct pgd_grant gr = *pgd_grants_get(g, i);
                const struct hv_domain *dom = find_domain(&v, gr.domid);
                uint32_t owner = owner_of(&v, gr.sbdf);
                struct pgd_change_args a = {
                        .kind = PGD_CHANGE_DOMAIN_GONE,
                        .grant = gr,
                        .message = "released",
                        .audit_op = "reconcile",
                };
                char why[256];

                pg_bdf_format(gr.sbdf, bdf);
                if (!dom || dom->dying) {
                        /* Gone: Xen quarantines its devices; clean up if it did not. */
                        if (owner == gr.domid) {
                                r = deassign(d, &v, gr.domid, gr.sbdf);
                                if (r < 0)
                                        log_warning_errno(
                                                r, "Failed to deassign %s from d%" PRIu32 ": %m",
                                                bdf, gr.domid);
                                owner = owner_of(&v, gr.sbdf);
                        }
                        snprintf(why, sizeof(why), "domain d%" PRIu32 " (%s) %s", gr.domid,
                                 gr.domain_uuid, dom ? "is dying" : "no longer exists");
                } else if (!streq(dom->uuid, gr.domain_uuid)) {
                        /*
                         * The domid was reused. Whatever the new domain holds, it
                         * was not granted by this grant: the assignment pass below
                         * treats it as unmanaged.
                         */
                        snprintf(why, sizeof(why),
                                 "domid %" PRIu32 " now belongs to %s (%s), not %s", gr.domid,
                                 dom->name[0] ? dom->name : "-", dom->uuid, gr.domain_uuid);
                } else if (owner != gr.domid) {
                        snprintf(why, sizeof(why),
                                 "the hypervisor shows the device owned by %s, not d%" PRIu32,
                                 owner_name(owner, obuf), gr.domid);
                        a.dropped = true;
                } else {
                        kept++;
                        i++;
                        continue;
                }
                a.quarantined = owner == HV_DOMID_IO;
                snprintf(a.why, sizeof(a.why), "%s%s", why,
                         a.quarantined ? "; device back in quarantine" : "");
                r = pgd_commit_change(d, NULL, &a);
                if (r < 0) {
                        host_view_clear(&v);
                        return r;
                }
                log_notice("%s grant of %s to d%" PRIu32 ": %s", a.dropped ? "Dropped" : "Released",
                           bdf, gr.domid, why);
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

                if (!pg_domid_is_guest(a.domid) || (gr && gr->domid == a.domid))
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
                /* Said once: a domain event does not report it again while it stays. */
                if (alive && !streq(decision, "rolled-back") && !streq(decision, "deassigned")) {
                        struct hv_assignment *p =
                                reallocarray(d->unmanaged, d->n_unmanaged + 1, sizeof(*p));
                        if (p) {
                                d->unmanaged = p;
                                d->unmanaged[d->n_unmanaged++] = a;
                        }
                }
        }
        host_view_clear(&v);

        changed = identities_check(d, "reconcile");
        if (changed < 0)
                return changed;

        /* Start from a snapshot that says it all, and an empty journal (or a broken store). */
        if (store_changed || pgd_grants_journal_size(g) > 0 || pgd_grants_needs_commit(g))
                (void)pgd_commit_store_result(d, pgd_grants_commit(g), "write");
        log_info("reconciled: %zu grants kept, %zu released, %zu unmanaged, %d identity change(s)",
                 kept, released, unmanaged, changed);
        return (int)(released + deassigned);
}

/* ---- --rebuild-state ---- */

/* Whether STATE_DIR/name exists: 1, 0, or -errno. */
static int state_file_exists(struct pgd_daemon *d, const char *name)
{
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", d->cfg.state_dir, name);
        if (stat(path, &st) >= 0)
                return 1;
        if (errno == ENOENT)
                return 0;
        return log_error_errno(-errno, "Failed to look at %s: %m", path);
}

/*
 * --rebuild-state replaces a store that cannot be read: grants.json, or the
 * journal of the changes since. A store that parses is refused: rebuilding
 * it would drop what the hypervisor cannot tell (the granting clients, the
 * rules, the drivers to give prepared devices back to).
 */
static int refuse_valid_store(struct pgd_daemon *d)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *old = NULL;
        const char *path = pgd_grants_path(d->grants);
        int r, snapshot, journal;

        snapshot = state_file_exists(d, PGD_GRANTS_FILE);
        if (snapshot < 0)
                return snapshot;
        journal = state_file_exists(d, PGD_GRANTS_JOURNAL);
        if (journal < 0)
                return journal;
        if (!snapshot && !journal)
                return 0; /* nothing to replace */
        r = pgd_grants_open(d->cfg.state_dir, &old, NULL);
        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                return 0; /* what --rebuild-state is for */
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        if (snapshot)
                return log_error_errno(-EEXIST,
                                       "%s is valid%s; refusing to replace it: move it away "
                                       "first to rebuild",
                                       path, journal ? ", and so is its journal" : "");
        return log_error_errno(-EEXIST,
                               "%s/" PGD_GRANTS_JOURNAL " is valid; refusing to replace it: move "
                               "it away first to rebuild",
                               d->cfg.state_dir);
}

/*
 * A device the hypervisor shows in quarantine and that pciback holds is taken
 * as prepared. Its original dom0 driver is unknown (""), so `unprepare` leaves
 * it unbound.
 */
static int rebuild_prepared(struct pgd_daemon *d, uint32_t sbdf, bool *ret_added)
{
        struct pgd_identity id;
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
        pgd_identity_from_pci(&info, &id);
        (void)pgd_grants_set_prepared_identity(d->grants, sbdf, &id);
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
                if (!pg_domid_is_guest(a->domid))
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
                pgd_audit_grant(d, PGD_AUDIT_RECONCILE, "rebuild", NULL, &gr, "rebuilt", 0,
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
