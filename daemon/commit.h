/* SPDX-License-Identifier: MIT */
/*
 * The one helper that makes a state change (STYLE.md habit 9): the intent
 * record, the hypervisor call, the outcome record, their durability (shared
 * with every change of the same turn of the loop: group commit), the reply,
 * the rollback when the outcome cannot be made durable (retried until it
 * succeeds), and the one audit record of the decision.
 *
 * A change either ends before it returns (refused, or, without an event
 * loop, completed: tests) or waits for the journal's sync: ctx->waiting is
 * set and pgd_request_finish() sends its reply later.
 */
#pragma once

#include <stdbool.h>

#include "grants.h"
#include "hv.h"
#include "pgd.h"

enum pgd_change_kind {
        PGD_CHANGE_ASSIGN,      /* intent, assign, grant */
        PGD_CHANGE_RELEASE,     /* deassign, release */
        PGD_CHANGE_PREPARE,     /* intent, prepare, prepared */
        PGD_CHANGE_UNPREPARE,   /* unprepare, unprepared */
        PGD_CHANGE_DOMAIN_GONE, /* release: the hypervisor ended the grant already */
        PGD_CHANGE_ASSIGN_GROUP, /* intent, assign each (rollback of all on a failure), grants */
        PGD_CHANGE_TAINT,        /* taint: a reset before an assign failed (the assign is refused) */
        PGD_CHANGE_UNTAINT,      /* untaint */
};

/* What an op asks for, and, once it is done, what happened. */
struct pgd_change_args {
        enum pgd_change_kind kind;
        struct pgd_grant grant; /* ASSIGN: to make; RELEASE, DOMAIN_GONE: to end */
        bool rdm_relaxed;       /* ASSIGN, ASSIGN_GROUP (each grant says it too) */
        uint32_t sbdf;          /* PREPARE, UNPREPARE, TAINT, UNTAINT */
        /* ASSIGN_GROUP: the grants to make, in the request's order (all or none) */
        size_t n_grants;
        struct pgd_grant grants[PGD_GROUP_MAX];
        struct pgd_identity identity; /* PREPARE: the device's, recorded with it */
        struct pgd_taint taint;       /* TAINT */
        int refuse;                   /* TAINT: the refusal (ctx->err) the request ends with */
        /* PREPARE: the driver bound now, then the one unbound; UNPREPARE: to rebind */
        char driver[HV_DRIVER_MAX];
        const char *message; /* the audit message when it succeeds (static) */
        /*
         * DOMAIN_GONE: why the grant is gone (the start of its audit record's
         * message), who says so ("domain-death", or "reconcile" at start-up),
         * whether it is audited as dropped (the device is not where the grant
         * put it) rather than released with its domain, and whether the
         * device is back in quarantine, where it may be reset.
         */
        char why[300];
        const char *audit_op;
        bool dropped;
        bool quarantined;
        /* Add the reply's fields once the change is durable. Returns 0 or -ENOMEM. */
        int (*reply)(struct pgd_ctx *ctx, const struct pgd_change_args *done);
};

/*
 * The one place that sets d->state_broken: r < 0, a failure to "what" the
 * store (logged once), breaks it; r >= 0 mends it. Returns r.
 */
int pgd_commit_store_result(struct pgd_daemon *d, int r, const char *what);

/*
 * Before anything of a state-changing op (request.c, for the ops its table
 * marks): a store that could not be written is compacted first. Returns 0, or PG_ERR_STATE_ERROR
 * (err filled) while it cannot be.
 */
int pgd_commit_usable(struct pgd_daemon *d, struct pgd_error *err);

/*
 * Make the change for ctx's request (NULL for domain death). Returns the
 * final code (0 or PG_ERR_*, ctx->err filled, the audit record written) when
 * the change ended, or 0 with ctx->waiting set when it waits for the journal.
 */
int pgd_commit_change(struct pgd_daemon *d, struct pgd_ctx *ctx,
                      const struct pgd_change_args *args);

/*
 * Start-up found an assign's intent whose assignment the hypervisor would not
 * roll back: keep the intent open and retry the rollback until it succeeds.
 */
int pgd_commit_rollback_later(struct pgd_daemon *d, const struct pgd_intent *in);

/* Sync the journal once for every waiting change, and let each go on (server.c). */
void pgd_commit_run(struct pgd_daemon *d);
/* Retry the rollbacks that failed; returns how many are still pending (server.c). */
size_t pgd_commit_retry_rollbacks(struct pgd_daemon *d);
/* At exit: what still waits is dropped (its records were never synced). */
void pgd_commit_free_all(struct pgd_daemon *d);
