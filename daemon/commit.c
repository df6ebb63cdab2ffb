/* SPDX-License-Identifier: MIT */
/*
 * State changes (DESIGN.md invariants 1, 4 and 5). Each kind of change runs
 * the same steps:
 *
 *   intent      assign and prepare: an intent record, durable before the call,
 *               so that a crash after the call is rolled back at start-up
 *               whoever quarantined the device (reconcile.c)
 *   call        the hypervisor (or sysfs) call; a refusal is the final word,
 *               and an intent is then closed with an abort record
 *   outcome     the record of what happened, applied to memory at once
 *   durable     the journal's sync; changes that wait together share it
 *   reply       only now, and the one audit record of the decision
 *
 * When the outcome cannot be made durable, memory and the hypervisor are
 * put back as they were, the store is marked broken (the next change
 * compacts it first), and the request is refused state-error. A rollback the
 * hypervisor refuses is retried until it succeeds (the server's timer), and
 * `status` counts it in pending_rollbacks; an assign's intent stays open
 * meanwhile, so that a restart rolls it back too.
 *
 * With an event loop (d->server) a change waits for the sync, which the
 * server runs once per turn for every change waiting (group commit); the
 * loop serves other requests in between. Without one (tests) the sync
 * happens at once and the change completes before pgd_commit_change returns.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "checks.h"
#include "commit.h"
#include "log.h"

/* Where a change stands; before both, its intent (pgd_commit_change()). */
enum stage {
        STAGE_CALL,
        STAGE_OUTCOME,
};

struct pgd_change {
        struct pgd_daemon *d;
        struct pgd_ctx *ctx; /* NULL: no client waits (domain death) */
        struct pgd_change_args a;
        enum stage stage;
        int sync_r;      /* the result of the sync it waited for */
        int code;        /* once ended: 0 or PG_ERR_* */
        uint64_t intent; /* the open intent record, 0: none */
        struct pgd_intent intent_copy;
        const char *message; /* of the audit record */
        bool undo_pending;   /* the rollback failed: retried later */
        size_t n_assigned;   /* ASSIGN_GROUP: how many of its grants the hypervisor holds */
        size_t failed;       /* ASSIGN_GROUP: the grant whose assign the hypervisor refused */
        const char *reset_done; /* RELEASE, DOMAIN_GONE: "reset", "not reset", ... once tried */
        struct pgd_taint taint; /* RELEASE, DOMAIN_GONE: the reset after it failed */
        bool tainted;
        struct pgd_change *next;
};

struct kind {
        const char *point; /* crash points "POINT:before-hv" ..., or NULL */
        bool intent;       /* an intent record before the call */
        enum pgd_record_op intent_op, outcome_op;
        const char *decision; /* of the audit record */
        const char *what;     /* "cannot record the WHAT of ..." */
};

static const struct kind kinds[] = {
        [PGD_CHANGE_ASSIGN] = {"assign", true, PGD_RECORD_INTENT_ASSIGN, PGD_RECORD_GRANT,
                               "granted", "grant"},
        [PGD_CHANGE_RELEASE] = {"release", false, 0, PGD_RECORD_RELEASE, "released", "release"},
        [PGD_CHANGE_PREPARE] = {NULL, true, PGD_RECORD_INTENT_PREPARE, PGD_RECORD_PREPARED,
                                "prepared", "prepare"},
        [PGD_CHANGE_UNPREPARE] = {NULL, false, 0, PGD_RECORD_UNPREPARED, "unprepared", "unprepare"},
        [PGD_CHANGE_DOMAIN_GONE] = {NULL, false, 0, PGD_RECORD_RELEASE, "released", "release"},
        [PGD_CHANGE_ASSIGN_GROUP] = {"assign-group", true, PGD_RECORD_INTENT_ASSIGN_GROUP,
                                     PGD_RECORD_GRANT_GROUP, "granted", "grants"},
        [PGD_CHANGE_TAINT] = {NULL, false, 0, PGD_RECORD_TAINT, "tainted", "taint"},
        [PGD_CHANGE_UNTAINT] = {NULL, false, 0, PGD_RECORD_UNTAINT, "untainted", "untaint"},
};

static const struct kind *kind_of(const struct pgd_change *c)
{
        return &kinds[c->a.kind];
}

static uint32_t change_sbdf(const struct pgd_change *c)
{
        bool grant = c->a.kind == PGD_CHANGE_ASSIGN || c->a.kind == PGD_CHANGE_RELEASE ||
                     c->a.kind == PGD_CHANGE_DOMAIN_GONE;

        if (c->a.kind == PGD_CHANGE_ASSIGN_GROUP)
                return c->a.grants[0].sbdf;
        return grant ? c->a.grant.sbdf : c->a.sbdf;
}

static void crash_point(const struct pgd_change *c, const char *where)
{
        char name[64];

        if (!kind_of(c)->point)
                return;
        snprintf(name, sizeof(name), "%s:%s", kind_of(c)->point, where);
        if (c->d->hv_ops->crash_point)
                c->d->hv_ops->crash_point(c->d->hv, name);
}

/* ---- the grant store's health ---- */

/*
 * The one place that says whether the grant store can be written: r < 0 is
 * a failure to write it (logged once, when the store breaks), r >= 0 a
 * success. Returns r.
 */
int pgd_commit_store_result(struct pgd_daemon *d, int r, const char *what)
{
        if (r >= 0) {
                if (d->state_broken)
                        log_notice("%s written again: changes are accepted again",
                                   pgd_grants_path(d->grants));
                d->state_broken = false;
                d->state_error = 0;
                return r;
        }
        if (!d->state_broken)
                log_error_errno(r, "Failed to %s %s: %m", what, pgd_grants_path(d->grants));
        d->state_broken = true;
        d->state_error = r;
        return r;
}

static int sync_now(struct pgd_daemon *d)
{
        int r = pgd_grants_sync(d->grants);

        return r < 0 ? pgd_commit_store_result(d, r, "make durable the journal of") : r;
}

int pgd_commit_usable(struct pgd_daemon *d, struct pgd_error *err)
{
        int r;

        if (!d->state_broken && !pgd_grants_needs_commit(d->grants))
                return 0;
        r = pgd_commit_store_result(d, pgd_grants_commit(d->grants), "write");
        if (r >= 0)
                return 0;
        return pgd_error_set(err, PG_ERR_STATE_ERROR, "the grant store cannot be written: %s: %s",
                             pgd_grants_path(d->grants), strerror(-r));
}

/* ---- the steps ---- */

static int record(struct pgd_change *c, enum pgd_record_op op, uint64_t intent)
{
        struct pgd_record rec = {.op = op, .intent = intent, .sbdf = change_sbdf(c)};
        int r;

        if (op == PGD_RECORD_INTENT_ASSIGN || op == PGD_RECORD_GRANT)
                rec.grant = c->a.grant;
        if (op == PGD_RECORD_INTENT_ASSIGN_GROUP || op == PGD_RECORD_GRANT_GROUP) {
                rec.n_grants = c->a.n_grants;
                memcpy(rec.grants, c->a.grants, c->a.n_grants * sizeof(*rec.grants));
        }
        if (op == PGD_RECORD_TAINT) {
                rec.taint = c->tainted ? c->taint : c->a.taint;
                rec.sbdf = rec.taint.sbdf;
        }
        if (op == PGD_RECORD_INTENT_PREPARE || op == PGD_RECORD_PREPARED)
                rec.identity = c->a.identity;
        memcpy(rec.driver, c->a.driver, sizeof(rec.driver));
        r = pgd_grants_record(c->d->grants, &rec);
        if (r < 0)
                return pgd_commit_store_result(c->d, r, "append to the journal of");
        if (op == PGD_RECORD_INTENT_ASSIGN || op == PGD_RECORD_INTENT_PREPARE ||
            op == PGD_RECORD_INTENT_ASSIGN_GROUP) {
                c->intent = rec.seq;
                c->intent_copy = *pgd_grants_find_intent(c->d->grants, rec.seq);
        }
        return 0;
}

/* Wait for the journal's next sync; false when it happened at once (no event loop). */
static bool wait_for_sync(struct pgd_change *c)
{
        struct pgd_daemon *d = c->d;

        if (!d->server) {
                c->sync_r = sync_now(d);
                pgd_grants_journal_idle(d->grants);
                return false;
        }
        if (!d->waiting_tail)
                d->waiting_tail = &d->waiting;
        c->next = NULL;
        *d->waiting_tail = c;
        d->waiting_tail = &c->next;
        if (c->ctx)
                c->ctx->waiting = true;
        pgd_server_commit_soon(d);
        return true;
}

static int hv_call(struct pgd_change *c)
{
        struct pgd_daemon *d = c->d;
        const struct pgd_grant *g = &c->a.grant;
        char bdf[PG_BDF_MAX];
        int r;

        switch (c->a.kind) {
        case PGD_CHANGE_ASSIGN:
                return d->hv_ops->assign(d->hv, g->domid, g->sbdf, c->a.rdm_relaxed);
        case PGD_CHANGE_RELEASE:
                r = d->hv_ops->deassign(d->hv, g->domid, g->sbdf);
                if (r != -ENODEV && r != -ESRCH)
                        return r;
                /* Not assigned to it any more, or the domain is gone (Xen quarantined it). */
                log_notice("%s was already gone from domid %u in the hypervisor",
                           pg_bdf_format(g->sbdf, bdf), g->domid);
                c->message = "released (the hypervisor had already deassigned it)";
                return 0;
        case PGD_CHANGE_PREPARE:
                return d->hv_ops->pci_prepare(d->hv, c->a.sbdf, c->a.driver);
        case PGD_CHANGE_UNPREPARE:
                return d->hv_ops->pci_unprepare(d->hv, c->a.sbdf, c->a.driver);
        case PGD_CHANGE_DOMAIN_GONE:
                return 0; /* Xen moved the device into quarantine itself */
        case PGD_CHANGE_ASSIGN_GROUP:
                /* In the request's order; the first refusal stops it, and undo() takes back the rest. */
                for (c->n_assigned = 0; c->n_assigned < c->a.n_grants; c->n_assigned++) {
                        g = &c->a.grants[c->n_assigned];
                        if (c->n_assigned == 1)
                                crash_point(c, "between-hv");
                        r = d->hv_ops->assign(d->hv, g->domid, g->sbdf, c->a.rdm_relaxed);
                        if (r < 0) {
                                c->failed = c->n_assigned;
                                return r;
                        }
                }
                return 0;
        case PGD_CHANGE_TAINT:
        case PGD_CHANGE_UNTAINT:
                return 0; /* the store's alone */
        }
        return -EINVAL;
}

/* The call's opposite. 0 when done, or when there is nothing left to undo. */
static int hv_undo(struct pgd_change *c)
{
        struct pgd_daemon *d = c->d;
        const struct pgd_grant *g = &c->a.grant;
        char again[HV_DRIVER_MAX];
        int r;

        switch (c->a.kind) {
        case PGD_CHANGE_ASSIGN:
                r = d->hv_ops->deassign(d->hv, g->domid, g->sbdf);
                /* Not assigned to it, or its domain is gone and Xen quarantined it. */
                return r == -ENODEV || r == -ESRCH ? 0 : r;
        case PGD_CHANGE_RELEASE:
                r = d->hv_ops->assign(d->hv, g->domid, g->sbdf,
                                      g->rdm_policy == PG_POLICY_RDM_RELAXED);
                return r == -ESRCH ? 0 : r; /* the domain is gone: nothing to give back */
        case PGD_CHANGE_PREPARE:
                return d->hv_ops->pci_unprepare(d->hv, c->a.sbdf, c->a.driver);
        case PGD_CHANGE_UNPREPARE:
                return d->hv_ops->pci_prepare(d->hv, c->a.sbdf, again);
        case PGD_CHANGE_DOMAIN_GONE:
        case PGD_CHANGE_TAINT:
        case PGD_CHANGE_UNTAINT:
                return 0;
        case PGD_CHANGE_ASSIGN_GROUP:
                /* Every one the hypervisor holds goes back into quarantine; all are tried. */
                r = 0;
                for (size_t i = 0; i < c->n_assigned; i++) {
                        int k = d->hv_ops->deassign(d->hv, c->a.grants[i].domid,
                                                    c->a.grants[i].sbdf);
                        if (k < 0 && k != -ENODEV && k != -ESRCH && r == 0)
                                r = k;
                }
                return r;
        }
        return -EINVAL;
}

/* Memory as it was before the outcome record was applied. */
static void memory_undo(struct pgd_change *c)
{
        struct pgd_grants *g = c->d->grants;

        switch (c->a.kind) {
        case PGD_CHANGE_ASSIGN:
                (void)pgd_grants_remove(g, c->a.grant.sbdf);
                break;
        case PGD_CHANGE_RELEASE:
                (void)pgd_grants_add(g, &c->a.grant);
                break;
        case PGD_CHANGE_PREPARE:
                (void)pgd_grants_clear_prepared(g, c->a.sbdf);
                break;
        case PGD_CHANGE_UNPREPARE:
                (void)pgd_grants_set_prepared(g, c->a.sbdf, c->a.driver);
                break;
        case PGD_CHANGE_DOMAIN_GONE:
                break; /* the grant is gone, whatever the disk says */
        case PGD_CHANGE_ASSIGN_GROUP:
                for (size_t i = 0; i < c->a.n_grants; i++)
                        (void)pgd_grants_remove(g, c->a.grants[i].sbdf);
                break;
        case PGD_CHANGE_TAINT:
                break; /* fail closed: the taint stays in memory */
        case PGD_CHANGE_UNTAINT:
                (void)pgd_grants_set_taint(g, &c->a.taint);
                break;
        }
}

/* An intent whose call was undone, or never made: closed (in memory when the journal is broken). */
static void intent_close(struct pgd_change *c)
{
        if (!c->intent)
                return;
        if (!pgd_grants_find_intent(c->d->grants, c->intent) ||
            record(c, PGD_RECORD_ABORT, c->intent) < 0)
                (void)pgd_grants_drop_intent(c->d->grants, c->intent);
        c->intent = 0;
}

/*
 * Undo the call. When the hypervisor refuses, the change is kept for the
 * server to retry, and an assign's intent stays open for start-up.
 */
static bool undo(struct pgd_change *c)
{
        char bdf[PG_BDF_MAX];
        int r = hv_undo(c);

        pg_bdf_format(change_sbdf(c), bdf);
        if (r >= 0) {
                intent_close(c);
                return true;
        }
        log_error_errno(r, "Failed to roll back the %s of %s (retried until it succeeds): %m",
                        kind_of(c)->what, bdf);
        if (c->intent)
                (void)pgd_grants_restore_intent(c->d->grants, &c->intent_copy);
        c->undo_pending = true;
        return false;
}

/* The request is refused: err has the code and the message (request.c audits it). */
static bool refuse(struct pgd_change *c)
{
        c->code = c->ctx ? c->ctx->err.code : PG_ERR_STATE_ERROR;
        return false;
}

static bool succeed(struct pgd_change *c);

/* The store cannot take the change: refused state-error (what undone says how far it went). */
static bool refuse_state(struct pgd_change *c, int r, const char *undone)
{
        char bdf[PG_BDF_MAX];

        pg_bdf_format(change_sbdf(c), bdf);
        log_error_errno(r, "Failed to record the %s of %s in %s: %m", kind_of(c)->what, bdf,
                        pgd_grants_path(c->d->grants));
        if (!c->ctx) {
                /* Domain death: the grant is gone anyway; audited with the error. */
                (void)pgd_grants_remove(c->d->grants, c->a.grant.sbdf);
                c->sync_r = r;
                succeed(c);
                c->code = PG_ERR_STATE_ERROR;
                return false;
        }
        if (c->a.kind == PGD_CHANGE_ASSIGN || c->a.kind == PGD_CHANGE_ASSIGN_GROUP)
                pgd_error_set(&c->ctx->err, PG_ERR_STATE_ERROR,
                              "cannot record the grant of %s%s: %s; the assignment was %s", bdf,
                              c->a.kind == PGD_CHANGE_ASSIGN_GROUP ? " and its group" : "",
                              strerror(-r), undone);
        else
                pgd_error_set(&c->ctx->err, PG_ERR_STATE_ERROR, "cannot record the %s of %s: %s",
                              kind_of(c)->what, bdf, strerror(-r));
        c->ctx->err.check = NULL;
        return refuse(c);
}

/* The hypervisor refused the call: its answer is the final word. */
static bool refuse_hv(struct pgd_change *c, int r)
{
        struct pgd_error *err = &c->ctx->err;
        const struct pgd_grant *g = &c->a.grant;
        const char *en = pg_errno_name(-r) ?: strerror(-r);
        char bdf[PG_BDF_MAX];

        pg_bdf_format(change_sbdf(c), bdf);
        switch (c->a.kind) {
        case PGD_CHANGE_ASSIGN_GROUP:
                g = &c->a.grants[c->failed];
                pg_bdf_format(g->sbdf, bdf);
                err->has_device = true;
                err->device = g->sbdf;
                _fallthrough_;
        case PGD_CHANGE_ASSIGN:
                /* Xen says EPERM for a device whose reserved region another device shares. */
                pgd_error_set(err, pgd_checks_hv_code("assign", r),
                              "the hypervisor refused to assign %s to domid %u: %s%s%s", bdf,
                              g->domid, en,
                              r == -EPERM ? ": reserved memory region shared with another "
                                            "device; see rdm_policy (or an XSM policy "
                                            "refusing it)"
                                          : "",
                              c->a.kind != PGD_CHANGE_ASSIGN_GROUP || c->failed == 0 ? ""
                              : c->undo_pending
                                      ? "; the devices assigned before it could not be taken "
                                        "back yet: the rollback is retried until it succeeds "
                                        "(status: pending_rollbacks), and they are granted to "
                                        "no one meanwhile"
                                      : "; the devices assigned before it are back in quarantine");
                break;
        case PGD_CHANGE_RELEASE:
                pgd_error_set(err, pgd_checks_hv_code("deassign", r),
                              "the hypervisor refused to deassign %s from domid %u: %s", bdf,
                              g->domid, en);
                break;
        case PGD_CHANGE_PREPARE:
                pgd_error_set(err, pgd_checks_hv_code("prepare", r), "cannot prepare %s: %s", bdf,
                              en);
                break;
        default:
                pgd_error_set(err, pgd_checks_hv_code("unprepare", r), "cannot unprepare %s: %s",
                              bdf, en);
                break;
        }
        err->hv_errno = -r;
        return refuse(c);
}

/*
 * The reset after a release follows the grant's rule; a rule that a reload
 * removed resets when the device can, the safe side for the next guest.
 */
static enum pg_policy_reset rule_reset(const struct pgd_daemon *d, const char *rule)
{
        enum pg_policy_reset reset;

        if (pg_policy_rule_reset(d->policy, rule, &reset) < 0)
                return PG_POLICY_RESET_IF_AVAILABLE;
        return reset;
}

/*
 * The one rule for a device whose grant ended, after a client's release,
 * its domain's death or start-up: once it is back in quarantine, it is reset
 * when the grant's rule asks for a reset and the device offers one; under
 * "required" a reset is tried even when the device offers none, so that a
 * required reset that could not happen is logged and audited. Best effort:
 * the release is done either way. Returns "reset", "not reset" or
 * "reset failed".
 */
static const char *reset_after_release(struct pgd_change *c)
{
        struct pgd_daemon *d = c->d;
        const struct pgd_grant *g = &c->a.grant;
        bool quarantined = c->a.kind == PGD_CHANGE_DOMAIN_GONE ? c->a.quarantined : true;
        enum pg_policy_reset reset = rule_reset(d, g->rule);
        struct hv_pci_info info = {.sbdf = g->sbdf};
        char bdf[PG_BDF_MAX], why[160];
        bool has_reset;
        int r;

        if (!quarantined || reset == PG_POLICY_RESET_NEVER)
                return "not reset";
        has_reset = d->hv_ops->pci_info(d->hv, g->sbdf, &info) >= 0 && info.has_reset;
        if (!has_reset && reset != PG_POLICY_RESET_REQUIRED)
                return "not reset";
        r = d->hv_ops->pci_reset(d->hv, g->sbdf);
        if (r < 0) {
                log_warning_errno(r, "Failed to reset %s after its grant to d%" PRIu32 " ended: %m",
                                  pg_bdf_format(g->sbdf, bdf), g->domid);
                /* Its data may still be in it: it goes to no other domain (commit.c's step()). */
                pgd_checks_reset_why(d, &info, why, sizeof(why));
                c->taint = (struct pgd_taint){.sbdf = g->sbdf, .time = (int64_t)time(NULL)};
                snprintf(c->taint.domain_uuid, sizeof(c->taint.domain_uuid), "%s",
                         g->domain_uuid);
                snprintf(c->taint.reason, sizeof(c->taint.reason),
                         "its reset after domid %" PRIu32 "'s grant ended failed: %.48s (%.150s)",
                         g->domid, strerror(-r), why);
                c->tainted = true;
                return "reset failed";
        }
        return "reset";
}

/* The grant ended: the reset, and, for a grant the hypervisor ended, its audit record. */
static void after_release(struct pgd_change *c, const char *done)
{
        struct pgd_daemon *d = c->d;
        const struct pgd_grant *g = &c->a.grant;
        bool gone = c->a.kind == PGD_CHANGE_DOMAIN_GONE;
        char msg[320];

        if (!gone) {
                if (c->tainted)
                        c->message = "released; the reset failed";
                return;
        }
        snprintf(msg, sizeof(msg), "%s, %s", c->a.why, done ?: "not reset");
        /* The hypervisor ended it: the grant is gone whatever the disk says. */
        pgd_audit_grant(d, c->a.dropped ? PGD_AUDIT_RECONCILE : PGD_AUDIT_DOMAIN_GONE,
                        c->a.audit_op ?: "domain-death", NULL, g,
                        c->a.dropped ? "dropped" : "released",
                        c->sync_r < 0 ? PG_ERR_STATE_ERROR : 0, msg);
}

static bool releases(const struct pgd_change *c)
{
        return c->a.kind == PGD_CHANGE_RELEASE || c->a.kind == PGD_CHANGE_DOMAIN_GONE;
}

/*
 * The reset after a release, once, before the release's record (step()). A
 * failure taints the device: its record is appended (true: it shares the
 * release's sync), or, when the store takes no record, the taint is kept in
 * memory.
 */
static bool release_reset(struct pgd_change *c)
{
        if (c->reset_done)
                return false;
        c->reset_done = reset_after_release(c);
        if (!c->tainted)
                return false;
        if (record(c, PGD_RECORD_TAINT, 0) >= 0)
                return true;
        (void)pgd_grants_set_taint(c->d->grants, &c->taint);
        return false;
}

/* A taint made durable: its audit record (a taint is a decision of its own). */
static void audit_taint(struct pgd_change *c, const struct pgd_taint *t)
{
        pgd_audit(c->d, &(struct pgd_audit_record){
                                .kind = PGD_AUDIT_TAINT,
                                .op = "taint",
                                .sbdf = t->sbdf,
                                .domid = -1,
                                .domain_uuid = t->domain_uuid,
                                .decision = "tainted",
                                .error = c->sync_r < 0 ? PG_ERR_STATE_ERROR : 0,
                                .message = t->reason,
                        });
}

/* The outcome is durable: the aftermath, what the audit record says, the reply. */
static bool succeed(struct pgd_change *c)
{
        struct pgd_ctx *ctx = c->ctx;
        int r;

        if (releases(c))
                after_release(c, c->reset_done);
        if (c->tainted)
                audit_taint(c, &c->taint);
        c->code = 0;
        if (c->a.kind == PGD_CHANGE_TAINT) {
                /* The assign is refused, as its checks said; the taint is on disk first. */
                audit_taint(c, &c->a.taint);
                c->code = c->a.refuse;
                return false;
        }
        if (!ctx)
                return false;
        /* What the request's audit record says (request.c writes it). */
        ctx->outcome.decision = kind_of(c)->decision;
        ctx->outcome.message = c->message;
        if (c->a.kind == PGD_CHANGE_ASSIGN_GROUP) {
                ctx->outcome.grants = calloc(c->a.n_grants, sizeof(*ctx->outcome.grants));
                if (!ctx->outcome.grants) {
                        c->code = -ENOMEM;
                        return false;
                }
                memcpy(ctx->outcome.grants, c->a.grants, c->a.n_grants * sizeof(*c->a.grants));
                ctx->outcome.n_grants = c->a.n_grants;
        } else if (c->a.kind == PGD_CHANGE_UNTAINT) {
                ctx->outcome.have_grant = false;
        } else if (c->a.kind != PGD_CHANGE_PREPARE && c->a.kind != PGD_CHANGE_UNPREPARE) {
                ctx->outcome.have_grant = true;
                ctx->outcome.grant = c->a.grant;
        }
        if (c->a.reply) {
                r = c->a.reply(ctx, &c->a);
                if (r < 0)
                        c->code = r;
        }
        return false;
}

/*
 * Run the change from where it stands until it waits for the journal (true)
 * or ends (false, c->code final).
 */
static bool step(struct pgd_change *c)
{
        const struct kind *k = kind_of(c);
        int r;

        switch (c->stage) {
        case STAGE_CALL:
                if (c->intent && c->sync_r < 0) {
                        /* The intent may not be on disk: the call is not made. */
                        (void)pgd_grants_drop_intent(c->d->grants, c->intent);
                        c->intent = 0;
                        return refuse_state(c, c->sync_r, "not made");
                }
                crash_point(c, "before-hv");
                r = hv_call(c);
                if (r < 0) {
                        /* A group's devices assigned before the refusal go back into quarantine. */
                        if (c->a.kind == PGD_CHANGE_ASSIGN_GROUP && c->n_assigned > 0)
                                (void)undo(c);
                        else
                                intent_close(c);
                        return refuse_hv(c, r);
                }
                crash_point(c, "after-hv");
                /*
                 * A release's reset comes before its record, so that both are
                 * durable in one sync: a failed reset's taint is on disk with
                 * the release, and a crash before them leaves the grant on
                 * record, released (and reset) again at start-up.
                 */
                if (releases(c))
                        (void)release_reset(c);
                r = record(c, k->outcome_op, c->intent);
                if (r < 0)
                        return refuse_state(c, r, undo(c) ? "rolled back" : "NOT rolled back");
                c->intent = 0; /* closed by the outcome */
                c->stage = STAGE_OUTCOME;
                if (wait_for_sync(c))
                        return true;
                _fallthrough_;
        case STAGE_OUTCOME:
                if (c->sync_r < 0 && c->a.kind == PGD_CHANGE_DOMAIN_GONE)
                        return refuse_state(c, c->sync_r, NULL);
                if (c->sync_r < 0) {
                        memory_undo(c);
                        c->intent = c->intent_copy.seq; /* open again, until undone */
                        return refuse_state(c, c->sync_r,
                                            undo(c) ? "rolled back" : "NOT rolled back");
                }
                crash_point(c, "after-commit");
                return succeed(c);
        }
        return false;
}

static void change_free(struct pgd_change *c)
{
        free(c);
}

/* The change ended: its rollback waits for a retry, or it is gone. */
static void change_end(struct pgd_change *c)
{
        struct pgd_daemon *d = c->d;

        c->ctx = NULL;
        if (c->undo_pending) {
                c->next = d->rollbacks;
                d->rollbacks = c;
                d->n_rollbacks++;
                pgd_server_retry_later(d);
                return;
        }
        change_free(c);
}

int pgd_commit_change(struct pgd_daemon *d, struct pgd_ctx *ctx, const struct pgd_change_args *args)
{
        struct pgd_change *c;
        bool waits;
        int code, r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->d = d;
        c->ctx = ctx;
        c->a = *args;
        c->message = args->message;
        c->stage = STAGE_CALL;
        pgd_server_hold_host(d);
        /*
         * An assign or a prepare records its intent first: the call waits
         * until it is durable (pgd_commit_run() makes it, in a batch). Other
         * changes make their call at once, so that the requests after them
         * see the host and the store as they leave them.
         */
        if (!kind_of(c)->intent)
                waits = step(c);
        else if ((r = record(c, kind_of(c)->intent_op, 0)) < 0)
                waits = refuse_state(c, r, "not made");
        else
                waits = wait_for_sync(c) || step(c);
        if (waits)
                return 0; /* ctx->waiting: pgd_commit_run() goes on with it */
        code = c->code;
        change_end(c);
        return code;
}

void pgd_commit_run(struct pgd_daemon *d)
{
        struct pgd_change *list = d->waiting, *ended = NULL, **ended_tail = &ended;
        int r;

        d->waiting = NULL;
        d->waiting_tail = &d->waiting;
        if (!list)
                return;
        pgd_server_hold_host(d);
        r = sync_now(d);
        /*
         * The batch's calls first, then their records: the simulated host
         * writes its file once for all of the calls (hv_ops.defer), before
         * the journal gets the batch's records in one write.
         */
        if (d->hv_ops->defer)
                (void)d->hv_ops->defer(d->hv, true);
        (void)pgd_grants_batch(d->grants, true);
        while (list) {
                struct pgd_change *c = list;

                list = c->next;
                c->sync_r = r;
                if (step(c))
                        continue; /* waits for the next sync */
                c->next = NULL;
                *ended_tail = c;
                ended_tail = &c->next;
        }
        /*
         * The host's file first: when it cannot be written, the batch's calls
         * did not happen, and their records must not be written either. Either
         * failure breaks the store: the changes that wait then see their sync
         * fail, and are undone.
         */
        if (d->hv_ops->defer && (r = d->hv_ops->defer(d->hv, false)) < 0) {
                log_error_errno(r, "Failed to write the host's changes: %m");
                pgd_grants_batch_drop(d->grants);
                (void)pgd_commit_store_result(d, r, "write the records of the host's changes in");
        } else if ((r = pgd_grants_batch(d->grants, false)) < 0) {
                (void)pgd_commit_store_result(d, r, "append to the journal of");
        }
        /*
         * The journal is closed before the replies go out when nothing else
         * waits: a client that got its answer finds no file of the state
         * directory open for writing.
         */
        if (!d->waiting)
                pgd_grants_journal_idle(d->grants);
        while (ended) {
                struct pgd_change *c = ended;

                ended = c->next;
                if (c->ctx)
                        pgd_request_finish(c->ctx, c->code);
                change_end(c);
        }
}

size_t pgd_commit_retry_rollbacks(struct pgd_daemon *d)
{
        struct pgd_change **p = &d->rollbacks;
        char bdf[PG_BDF_MAX];

        pgd_server_hold_host(d);
        while (*p) {
                struct pgd_change *c = *p;
                int r = hv_undo(c);

                if (r < 0) {
                        log_debug_errno(r, "Rollback of the %s of %s failed again: %m",
                                        kind_of(c)->what, pg_bdf_format(change_sbdf(c), bdf));
                        p = &c->next;
                        continue;
                }
                log_notice("Rolled back the %s of %s", kind_of(c)->what,
                           pg_bdf_format(change_sbdf(c), bdf));
                intent_close(c);
                *p = c->next;
                d->n_rollbacks--;
                change_free(c);
        }
        return d->n_rollbacks;
}

int pgd_commit_rollback_later(struct pgd_daemon *d, const struct pgd_intent *in)
{
        struct pgd_change *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->d = d;
        c->a.kind = PGD_CHANGE_ASSIGN;
        c->a.grant = in->grant;
        if (in->op == PGD_RECORD_INTENT_ASSIGN_GROUP) {
                c->a.kind = PGD_CHANGE_ASSIGN_GROUP;
                c->a.n_grants = in->n_grants;
                memcpy(c->a.grants, in->grants, in->n_grants * sizeof(*in->grants));
                c->n_assigned = in->n_grants; /* the undo tries them all */
        }
        c->intent = in->seq;
        c->intent_copy = *in;
        c->undo_pending = true;
        change_end(c);
        return 0;
}

void pgd_commit_free_all(struct pgd_daemon *d)
{
        while (d->waiting) {
                struct pgd_change *c = d->waiting;
                d->waiting = c->next;
                if (c->ctx)
                        pgd_request_finish(c->ctx, -ECANCELED);
                change_free(c);
        }
        d->waiting_tail = &d->waiting;
        while (d->rollbacks) {
                struct pgd_change *c = d->rollbacks;
                d->rollbacks = c->next;
                change_free(c);
        }
        d->n_rollbacks = 0;
}
