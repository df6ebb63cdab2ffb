/* SPDX-License-Identifier: MIT */
/*
 * The op handlers. request.c has validated the request against its op table,
 * checked the caller's permission and built its context before any of these
 * runs. assign and explain share the ordered checks of checks.c; a change of
 * state (assign, release, prepare, unprepare) is then made by commit.c, which
 * makes it durable before the reply (DESIGN.md invariants 1-4).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "checks.h"
#include "commit.h"
#include "grants.h"
#include "log.h"
#include "pgd.h"

static const char *empty_to_null(const char *s)
{
        return s && s[0] ? s : NULL;
}

/* Add key to obj, taking the reference of value even on failure. */
static int set_new(json_t *obj, const char *key, json_t *value)
{
        if (!value)
                return -ENOMEM;
        if (json_object_set_new(obj, key, value) < 0)
                return -ENOMEM;
        return 0;
}

static json_t *grant_to_json(const struct pgd_grant *g)
{
        char bdf[PG_BDF_MAX];

        return json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:s?, s:s, s:s, s:I}", "device",
                         pg_bdf_format(g->sbdf, bdf), "domid", (json_int_t)g->domid, "domain",
                         g->domain_name, "domain_uuid", g->domain_uuid, "client_uid",
                         (json_int_t)g->client_uid, "client_pid", (json_int_t)g->client_pid,
                         "client_unit", empty_to_null(g->client_unit), "rule", g->rule,
                         "rdm_policy", pg_policy_rdm_name(g->rdm_policy), "time",
                         (json_int_t)g->time);
}

/* The domain the request named, for its audit record (request.c writes it). */
static void outcome_domain(struct pgd_ctx *ctx, const struct hv_domain *dom)
{
        ctx->outcome.have_dom = true;
        ctx->outcome.dom = *dom;
}

/* The sysfs facts of the request's device: 0, a refusal (no such device), or -ENOMEM. */
static int request_device(struct pgd_ctx *ctx, const struct hv_pci_info **ret)
{
        const struct pgd_request *req = &ctx->req;
        int r = pgd_host_pci(ctx, req->sbdf, ret);

        if (r == -ENOMEM || r >= 0)
                return r;
        if (r == -ENODEV)
                return pgd_error_set(&ctx->err, PG_ERR_NO_SUCH_DEVICE, "no PCI device %s",
                                     req->bdf);
        return pgd_error_set(&ctx->err, PG_ERR_HYPERVISOR_ERROR, "cannot read PCI device %s: %s",
                             req->bdf, strerror(-r));
}

/* ---- status, list, owner ---- */

int pgd_op_status(struct pgd_ctx *ctx)
{
        struct pgd_daemon *d = ctx->d;
        const struct hv_caps *caps;
        json_t *reply = ctx->reply, *ir;
        int r;

        r = pgd_host_caps(ctx, &caps);
        if (r < 0) {
                pgd_error_set(&ctx->err, PG_ERR_HYPERVISOR_ERROR,
                              "cannot read the host capabilities: %s", strerror(-r));
                ctx->err.hv_errno = -r;
                return PG_ERR_HYPERVISOR_ERROR;
        }
        ir = caps->interrupt_remapping < 0 ? json_null() : json_boolean(caps->interrupt_remapping);

        if (set_new(reply, "backend", json_string(d->hv_ops->name)) < 0 ||
            set_new(reply, "iommu", json_boolean(caps->iommu)) < 0 ||
            set_new(reply, "interrupt_remapping", ir) < 0 ||
            set_new(reply, "grants", json_integer((json_int_t)pgd_grants_count(d->grants))) < 0 ||
            set_new(reply, "policy", json_string(pg_policy_path(d->policy) ?: "")) < 0 ||
            set_new(reply, "rules", json_integer((json_int_t)pg_policy_n_rules(d->policy))) < 0 ||
            set_new(reply, "policy_loaded", json_integer((json_int_t)d->policy_loaded)) < 0 ||
            set_new(reply, "version", json_string(PG_VERSION)) < 0 ||
            set_new(reply, "enforce", json_boolean(d->cfg.enforce)) < 0 ||
            set_new(reply, "state_ok", json_boolean(!d->state_broken)) < 0 ||
            set_new(reply, "pending_rollbacks", json_integer((json_int_t)d->n_rollbacks)) < 0)
                return -ENOMEM;
        return 0;
}

static int compare_assignment(const void *a, const void *b)
{
        uint32_t x = ((const struct hv_assignment *)a)->sbdf;
        uint32_t y = ((const struct hv_assignment *)b)->sbdf;

        return x < y ? -1 : x > y;
}

/* The hypervisor owner of sbdf from one sorted assignments() listing: dom0 when absent. */
static uint32_t owner_in(const struct hv_assignment *asg, size_t n_asg, uint32_t sbdf)
{
        const struct hv_assignment key = {.sbdf = sbdf}, *a;

        a = bsearch(&key, asg, n_asg, sizeof(*asg), compare_assignment);
        return a ? a->domid : HV_DOMID_DOM0;
}

static bool is_assignable(struct pgd_daemon *d, uint32_t sbdf, const struct hv_pci_info *info,
                          uint32_t owner)
{
        const char *why = NULL;

        if (!streq(info->driver, "pciback") || owner != HV_DOMID_IO)
                return false;
        if (pgd_grants_find(d->grants, sbdf) || pgd_grants_find_taint(d->grants, sbdf))
                return false;
        return !pgd_checks_protected(d, info, &why);
}

static json_t *taint_to_json(const struct pgd_taint *t)
{
        char bdf[PG_BDF_MAX];

        return json_pack("{s:s, s:s?, s:s, s:I}", "device", pg_bdf_format(t->sbdf, bdf),
                         "domain_uuid", empty_to_null(t->domain_uuid), "reason", t->reason, "time",
                         (json_int_t)t->time);
}

/*
 * A reply must fit one wire message (PG_WIRE_MAX_MESSAGE). The arrays of a
 * list reply get this much of it; the rest is ample for "id", "ok", the keys
 * and the counts.
 */
#define LIST_BUDGET (60u * 1024)

/* The bytes o adds to an array on the wire: its text (as the reply will hold it) and a comma. */
static size_t wire_size(const json_t *o)
{
        _cleanup_(freep) char *text = NULL;
        size_t n = 0;

        if (pg_wire_dump(o, &text, &n) < 0)
                return SIZE_MAX;
        return n; /* its newline stands for the comma */
}

/*
 * Append o (consumed) to array while it fits in *budget; once one does not,
 * *truncated is set and nothing more is appended (nor built: callers check
 * *truncated first). Returns 0 or -ENOMEM.
 */
static int append_fitting(json_t *array, json_t *o, size_t *budget, bool *truncated)
{
        size_t n;

        if (!o)
                return -ENOMEM;
        n = wire_size(o);
        if (n > *budget) {
                *truncated = true;
                json_decref(o);
                return 0;
        }
        *budget -= n;
        return json_array_append_new(array, o) < 0 ? -ENOMEM : 0;
}

static json_t *device_to_json(uint32_t sbdf, const struct hv_pci_info *info)
{
        char bdf[PG_BDF_MAX], vendor[8], device[8], class[10];

        snprintf(vendor, sizeof(vendor), "0x%04x", info->vendor);
        snprintf(device, sizeof(device), "0x%04x", info->device);
        snprintf(class, sizeof(class), "0x%06x", info->class & 0xffffffU);
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "device", pg_bdf_format(sbdf, bdf), "vendor",
                         vendor, "device_id", device, "class", class, "driver", info->driver);
}

/*
 * One listing of the hypervisor's assignments serves every device. Every
 * assignable device is counted; only those that fit are put in the reply.
 */
static int list_assignable(struct pgd_daemon *d, json_t *array, size_t *budget, bool *truncated,
                           size_t *ret_count)
{
        _cleanup_(freep) uint32_t *all = NULL;
        _cleanup_(freep) struct hv_assignment *asg = NULL;
        size_t n = 0, n_asg = 0, count = 0;
        int r;

        r = d->hv_ops->pci_list(d->hv, &all, &n);
        if (r < 0)
                return r;
        r = d->hv_ops->assignments(d->hv, &asg, &n_asg);
        if (r < 0)
                return r;
        qsort(asg, n_asg, sizeof(*asg), compare_assignment);
        for (size_t i = 0; i < n; i++) {
                struct hv_pci_info info;

                if (d->hv_ops->pci_info(d->hv, all[i], &info) < 0)
                        continue; /* gone since the listing */
                if (!is_assignable(d, all[i], &info, owner_in(asg, n_asg, all[i])))
                        continue;
                count++;
                if (*truncated)
                        continue;
                r = append_fitting(array, device_to_json(all[i], &info), budget, truncated);
                if (r < 0)
                        return r;
        }
        *ret_count = count;
        return 0;
}

/*
 * Grants first, then assignable devices, as many as fit one wire message:
 * "truncated" says whether some were left out, and "grant_count" and
 * "assignable_count" give the totals. A device never comes before a grant
 * that was left out.
 */
int pgd_op_list(struct pgd_ctx *ctx)
{
        _cleanup_(json_decrefp) json_t *grants = json_array(), *assignable = json_array();
        struct pgd_daemon *d = ctx->d;
        size_t budget = LIST_BUDGET, n_grants = pgd_grants_count(d->grants), n_assignable = 0;
        bool truncated = false;
        int r;

        _cleanup_(json_decrefp) json_t *tainted = json_array();

        if (!grants || !assignable || !tainted)
                return -ENOMEM;
        for (size_t i = 0; i < n_grants && !truncated; i++) {
                r = append_fitting(grants, grant_to_json(pgd_grants_get(d->grants, i)), &budget,
                                   &truncated);
                if (r < 0)
                        return r;
        }
        /* The few devices whose reset failed: before the assignable ones, which they are not. */
        for (size_t i = 0; i < pgd_grants_n_taints(d->grants) && !truncated; i++) {
                r = append_fitting(tainted, taint_to_json(pgd_grants_taint(d->grants, i)), &budget,
                                   &truncated);
                if (r < 0)
                        return r;
        }
        r = list_assignable(d, assignable, &budget, &truncated, &n_assignable);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                pgd_error_set(&ctx->err, PG_ERR_HYPERVISOR_ERROR, "cannot list PCI devices: %s",
                              strerror(-r));
                return PG_ERR_HYPERVISOR_ERROR;
        }

        if (set_new(ctx->reply, "grants", TAKE_PTR(grants)) < 0 ||
            set_new(ctx->reply, "assignable", TAKE_PTR(assignable)) < 0 ||
            set_new(ctx->reply, "tainted", TAKE_PTR(tainted)) < 0 ||
            set_new(ctx->reply, "grant_count", json_integer((json_int_t)n_grants)) < 0 ||
            set_new(ctx->reply, "assignable_count", json_integer((json_int_t)n_assignable)) < 0 ||
            set_new(ctx->reply, "truncated", json_boolean(truncated)) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_owner(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_daemon *d = ctx->d;
        const struct hv_pci_info *info;
        const struct pgd_grant *g;
        struct pgd_error *err = &ctx->err;
        json_t *reply = ctx->reply;
        struct hv_domain dom;
        uint32_t owner;
        bool known;
        int r;

        r = request_device(ctx, &info);
        if (r != 0)
                return r;
        r = pgd_host_owner(ctx, req->sbdf, &owner);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENODEV) {
                pgd_error_set(err, pgd_checks_hv_code("owner", r),
                              "cannot read the owner of %s: %s", req->bdf, strerror(-r));
                err->hv_errno = -r;
                return err->code;
        }
        known = r >= 0;
        g = pgd_grants_find(d->grants, req->sbdf);

        if (set_new(reply, "device", json_string(req->bdf)) < 0 ||
            set_new(reply, "assigned", json_boolean(known && pg_domid_is_guest(owner))) < 0 ||
            set_new(reply, "granted", json_boolean(g != NULL)) < 0 ||
            set_new(reply, "quarantined", json_boolean(known && owner == HV_DOMID_IO)) < 0 ||
            set_new(reply, "driver", info->driver[0] ? json_string(info->driver) : json_null()) < 0)
                return -ENOMEM;
        if (known && pg_domid_is_guest(owner)) {
                if (set_new(reply, "domid", json_integer(owner)) < 0)
                        return -ENOMEM;
                if (d->hv_ops->domain_get(d->hv, owner, &dom) >= 0 && dom.name[0] &&
                    set_new(reply, "domain", json_string(dom.name)) < 0)
                        return -ENOMEM;
        }
        if (g && set_new(reply, "grant", grant_to_json(g)) < 0)
                return -ENOMEM;
        /* What passguard recorded the device to be, and whether its reset failed. */
        const struct pgd_identity *id =
                g && g->identity.known ? &g->identity
                                       : pgd_grants_prepared_identity(d->grants, req->sbdf);
        const struct pgd_taint *t = pgd_grants_find_taint(d->grants, req->sbdf);
        if (id && set_new(reply, "identity", pgd_grants_identity_json(id)) < 0)
                return -ENOMEM;
        if (set_new(reply, "tainted", json_boolean(t != NULL)) < 0 ||
            (t && set_new(reply, "taint", taint_to_json(t)) < 0))
                return -ENOMEM;
        return 0;
}

/* ---- assign and explain ---- */

/* A refusal's fields, as explain reports a deny, into obj. */
static int explain_refusal(json_t *obj, const struct pgd_error *refusal)
{
        if (set_new(obj, "error", json_string(pg_error_name(refusal->code))) < 0 ||
            set_new(obj, "check", json_string(refusal->check ?: "")) < 0 ||
            set_new(obj, "message", json_string(refusal->message)) < 0)
                return -ENOMEM;
        if (refusal->hv_errno > 0 && pg_errno_name(refusal->hv_errno) &&
            set_new(obj, "errno", json_string(pg_errno_name(refusal->hv_errno))) < 0)
                return -ENOMEM;
        return 0;
}

static const char *grant_rdm(const struct pgd_request *req, const struct pgd_checks *c)
{
        bool relaxed = c->rdm_policy == PG_POLICY_RDM_RELAXED && req->rdm_relaxed != 0;

        return pg_policy_rdm_name(relaxed ? PG_POLICY_RDM_RELAXED : PG_POLICY_RDM_STRICT);
}

/* Several devices share one rdm policy: the request's "relaxed" only where every rule allows it. */
static bool group_relaxed(const struct pgd_request *req, const struct pgd_checks *c, size_t n)
{
        bool relaxed = req->rdm_relaxed != 0;

        for (size_t i = 0; i < n; i++)
                relaxed = relaxed && c[i].rdm_policy == PG_POLICY_RDM_RELAXED;
        return relaxed;
}

/*
 * explain with "devices": every device's checks in order, as far as they
 * went ("devices": [{"device", "decision", "checks", "rule", ...}]), and, for
 * a deny, the device that failed with its error, check and message.
 */
static int explain_many(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        _cleanup_(freep) struct pgd_checks *c = calloc(req->n_devices, sizeof(*c));
        _cleanup_(json_decrefp) json_t *devices = json_array();
        json_t *reply = ctx->reply;
        char message[256], bdf[PG_BDF_MAX];
        const char *rdm;
        size_t n = 0;
        int r;

        if (!c || !devices)
                return -ENOMEM;
        r = pgd_checks_run_many(ctx, PGD_CHECKS_EXPLAIN, c, &n);
        if (r < 0)
                return r;
        /* What assign would grant: one rdm policy for all of them. */
        rdm = pg_policy_rdm_name(group_relaxed(req, c, n) ? PG_POLICY_RDM_RELAXED
                                                          : PG_POLICY_RDM_STRICT);
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_pack("{s:s, s:s}", "device", pg_bdf_format(req->devices[i], bdf),
                                      "decision", c[i].allow ? "allow" : "deny");
                if (set_new(o, "checks", pgd_checks_to_json(&c[i])) < 0 ||
                    json_array_append_new(devices, o) < 0)
                        return -ENOMEM;
                if (c[i].policy_ran && set_new(o, "rule", json_string(c[i].rule)) < 0)
                        return -ENOMEM;
                if (c[i].allow && set_new(o, "rdm_policy", json_string(rdm)) < 0)
                        return -ENOMEM;
                if (!c[i].allow && explain_refusal(o, &ctx->err) < 0)
                        return -ENOMEM;
        }
        if (set_new(reply, "decision", json_string(r == 0 ? "allow" : "deny")) < 0 ||
            set_new(reply, "devices", TAKE_PTR(devices)) < 0)
                return -ENOMEM;
        if (r == 0) {
                snprintf(message, sizeof(message), "assign %zu devices to domid %u: allowed",
                         req->n_devices, c[0].domain.domid);
                return set_new(reply, "message", json_string(message));
        }
        if (set_new(reply, "device", json_string(pg_bdf_format(ctx->err.device, bdf))) < 0 ||
            (c[n - 1].policy_ran && set_new(reply, "rule", json_string(c[n - 1].rule)) < 0) ||
            explain_refusal(reply, &ctx->err) < 0)
                return -ENOMEM;
        ctx->err = (struct pgd_error){}; /* explain answers; it refuses nothing */
        return 0;
}

int pgd_op_explain(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_error *refusal = &ctx->err;
        json_t *reply = ctx->reply;
        struct pgd_checks c;
        char message[256];
        int r;

        if (req->n_devices > 0)
                return explain_many(ctx);
        r = pgd_checks_run(ctx, PGD_CHECKS_EXPLAIN, &c);
        if (r < 0)
                return r;

        if (set_new(reply, "decision", json_string(c.allow ? "allow" : "deny")) < 0 ||
            set_new(reply, "checks", pgd_checks_to_json(&c)) < 0)
                return -ENOMEM;
        if (c.policy_ran && set_new(reply, "rule", json_string(c.rule)) < 0)
                return -ENOMEM;
        if (c.allow) {
                snprintf(message, sizeof(message), "assign %s to domid %u: allowed by rule %s",
                         req->bdf, c.domain.domid, c.rule);
                if (set_new(reply, "message", json_string(message)) < 0 ||
                    set_new(reply, "rdm_policy", json_string(grant_rdm(req, &c))) < 0)
                        return -ENOMEM;
                return 0;
        }
        if (explain_refusal(reply, refusal) < 0)
                return -ENOMEM;
        *refusal = (struct pgd_error){}; /* explain answers; it refuses nothing */
        return 0;
}

static int assign_reply(struct pgd_ctx *ctx, const struct pgd_change_args *done)
{
        return set_new(ctx->reply, "grant", grant_to_json(&done->grant));
}

static int assign_many_reply(struct pgd_ctx *ctx, const struct pgd_change_args *done)
{
        json_t *grants = json_array();

        if (set_new(ctx->reply, "grants", grants) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < done->n_grants; i++)
                if (json_array_append_new(grants, grant_to_json(&done->grants[i])) < 0)
                        return -ENOMEM;
        return 0;
}

/*
 * A reset before the assign failed: the request is refused (ctx->err says
 * why), and the device is tainted first, durably, so that it goes to no
 * other domain until an admin clears it.
 */
static int refuse_tainted(struct pgd_ctx *ctx, const struct pgd_checks *c, uint32_t sbdf, int code)
{
        struct pgd_change_args a = {.kind = PGD_CHANGE_TAINT, .sbdf = sbdf, .refuse = code};
        const struct pgd_taint *was = pgd_grants_find_taint(ctx->d->grants, sbdf);

        a.taint = (struct pgd_taint){.sbdf = sbdf, .time = (int64_t)time(NULL)};
        snprintf(a.taint.reason, sizeof(a.taint.reason), "%s", c->taint_reason);
        /*
         * Tainted already (its reset failed when a grant ended, and it went
         * back to that domain's request): whose data it may hold is still so.
         */
        if (was && was->domain_uuid[0]) {
                snprintf(a.taint.domain_uuid, sizeof(a.taint.domain_uuid), "%s",
                         was->domain_uuid);
                snprintf(a.taint.reason, sizeof(a.taint.reason), "%.140s; then %.100s",
                         was->reason, c->taint_reason);
        }
        return pgd_commit_change(ctx->d, ctx, &a);
}

/* The grant the checks allowed: for this device, this domain, this client, by this rule. */
static void grant_fill(struct pgd_ctx *ctx, const struct pgd_checks *c, uint32_t sbdf,
                       bool rdm_relaxed, struct pgd_grant *g)
{
        *g = (struct pgd_grant){.sbdf = sbdf, .domid = c->domain.domid};
        snprintf(g->domain_uuid, sizeof(g->domain_uuid), "%s", c->domain.uuid);
        snprintf(g->domain_name, sizeof(g->domain_name), "%s", c->domain.name);
        g->client_uid = ctx->peer.uid;
        g->client_pid = ctx->peer.pid;
        snprintf(g->client_unit, sizeof(g->client_unit), "%s", ctx->peer.unit ?: "");
        snprintf(g->rule, sizeof(g->rule), "%s", c->rule);
        g->rdm_policy = rdm_relaxed ? PG_POLICY_RDM_RELAXED : PG_POLICY_RDM_STRICT;
        g->time = (int64_t)time(NULL);
        pgd_identity_from_pci(&c->pci, &g->identity);
}

/*
 * assign with "devices": every check for every device first, then each
 * device's reset, then the group's one change (commit.c): an intent naming
 * every grant, the assign calls in order, and one outcome record. A refusal
 * of any assign call rolls back the ones before it, into quarantine.
 */
static int assign_many(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        _cleanup_(freep) struct pgd_checks *c = calloc(req->n_devices, sizeof(*c));
        _cleanup_(freep) struct pgd_change_args *a = calloc(1, sizeof(*a));
        bool relaxed;
        size_t n = 0;
        int r;

        if (!c || !a)
                return -ENOMEM;
        r = pgd_checks_run_many(ctx, PGD_CHECKS_ASSIGN, c, &n);
        if (n > 0 && c[n - 1].have_domain)
                outcome_domain(ctx, &c[n - 1].domain);
        if (r > 0 && c[n - 1].reset_failed)
                return refuse_tainted(ctx, &c[n - 1], req->devices[n - 1], r);
        if (r != 0)
                return r;

        relaxed = group_relaxed(req, c, req->n_devices);
        *a = (struct pgd_change_args){
                .kind = PGD_CHANGE_ASSIGN_GROUP,
                .rdm_relaxed = relaxed,
                .n_grants = req->n_devices,
                .message = "granted with its group",
                .reply = assign_many_reply,
        };
        for (size_t i = 0; i < req->n_devices; i++)
                grant_fill(ctx, &c[i], req->devices[i], relaxed, &a->grants[i]);
        return pgd_commit_change(ctx->d, ctx, a);
}

int pgd_op_assign(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_change_args a = {.kind = PGD_CHANGE_ASSIGN, .reply = assign_reply};
        struct pgd_checks c;
        int r;

        if (req->n_devices > 0)
                return assign_many(ctx);
        r = pgd_checks_run(ctx, PGD_CHECKS_ASSIGN, &c);
        if (c.have_domain)
                outcome_domain(ctx, &c.domain);
        if (r > 0 && c.reset_failed)
                return refuse_tainted(ctx, &c, req->sbdf, r);
        if (r != 0)
                return r;

        /*
         * RDM: the rule says how lax it may be, and the request may only make
         * it stricter. A request for "relaxed" under a strict rule gets strict,
         * and the grant says so.
         */
        a.rdm_relaxed = c.rdm_policy == PG_POLICY_RDM_RELAXED && req->rdm_relaxed != 0;
        grant_fill(ctx, &c, req->sbdf, a.rdm_relaxed, &a.grant);
        a.message = c.reset_done ? "granted after reset" : "granted";
        return pgd_commit_change(ctx->d, ctx, &a);
}

/* ---- release ---- */

/*
 * Whether the request names the grant's domain. A live domain must match by
 * domid and UUID (a reused domid never inherits a grant); a domain that is
 * gone matches by the domid or name the grant recorded.
 */
static int request_names_grant_domain(struct pgd_ctx *ctx, const struct pgd_grant *g,
                                      bool *ret_match, struct hv_domain *ret_dom, bool *ret_alive)
{
        const struct pgd_request *req = &ctx->req;
        const struct hv_domain *dom;
        int r;

        r = pgd_host_domain(ctx, &dom);
        if (r == -ESRCH) {
                *ret_alive = false;
                *ret_match = req->has_domid ? req->domid == g->domid
                                            : streq_ptr(req->domain, g->domain_name);
                return 0;
        }
        if (r < 0)
                return r;
        *ret_alive = true;
        *ret_match = dom->domid == g->domid && streq(dom->uuid, g->domain_uuid);
        *ret_dom = *dom;
        return 0;
}

static int release_reply(struct pgd_ctx *ctx, const struct pgd_change_args *done)
{
        if (set_new(ctx->reply, "device", json_string(ctx->req.bdf)) < 0 ||
            set_new(ctx->reply, "domid", json_integer(done->grant.domid)) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_release(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_change_args a = {
                .kind = PGD_CHANGE_RELEASE, .message = "released", .reply = release_reply};
        const struct pgd_grant *found;
        struct pgd_error *err = &ctx->err;
        struct hv_domain dom;
        bool match = false, alive = false;
        int r;

        /*
         * Who may release comes first, before anything about the grant is
         * said: a client that may not release this device learns neither
         * the domain nor the client that holds it, whatever domain it names.
         */
        found = pgd_grants_find(ctx->d->grants, req->sbdf);
        if (found && ctx->peer.uid != found->client_uid && !ctx->admin) {
                return pgd_error_set(
                        err, PG_ERR_NOT_AUTHORIZED,
                        "only the client that was granted %s, or an admin, may release it",
                        req->bdf);
        }
        if (!found)
                return pgd_error_set(err, PG_ERR_NOT_ASSIGNED, "%s is not granted", req->bdf);
        a.grant = *found; /* the store's copy goes away on release */

        r = request_names_grant_domain(ctx, &a.grant, &match, &dom, &alive);
        if (r < 0) {
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot look up the domain: %s",
                              strerror(-r));
                err->hv_errno = -r;
                return err->code;
        }
        if (alive)
                outcome_domain(ctx, &dom);
        if (!match)
                return pgd_error_set(err, PG_ERR_NOT_ASSIGNED,
                                     "%s is granted to domid %u (%s), not to the domain named",
                                     req->bdf, a.grant.domid, a.grant.domain_name);
        return pgd_commit_change(ctx->d, ctx, &a);
}

/* ---- prepare and unprepare ---- */

/*
 * For prepare and unprepare: the hypervisor owner of the device, HV_DOMID_DOM0
 * when the hypervisor does not know it. Refuses (returns a PG_ERR_* code, err
 * filled) when the owner cannot be read, since a device must never be moved
 * between drivers blind, and when a guest holds it.
 */
static int owner_not_guest(struct pgd_ctx *ctx, uint32_t *ret_owner)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_error *err = &ctx->err;
        uint32_t owner = HV_DOMID_DOM0;
        int r;

        r = pgd_host_owner(ctx, req->sbdf, &owner);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENODEV) {
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot read the owner of %s: %s",
                              req->bdf, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                return PG_ERR_HYPERVISOR_ERROR;
        }
        if (r < 0)
                owner = HV_DOMID_DOM0;
        /* A guest's, or Xen's own: only dom0's and quarantined devices move between drivers. */
        if (owner != HV_DOMID_DOM0 && owner != HV_DOMID_IO)
                return pgd_error_set(err, PG_ERR_BUSY, "%s is assigned to domid %u", req->bdf,
                                     owner);
        *ret_owner = owner;
        return 0;
}

static int prepare_reply_fields(struct pgd_ctx *ctx, bool already, const char *previous)
{
        json_t *reply = ctx->reply;

        if (set_new(reply, "device", json_string(ctx->req.bdf)) < 0 ||
            set_new(reply, "driver", json_string("pciback")) < 0 ||
            set_new(reply, "quarantined", json_true()) < 0 ||
            set_new(reply, "already_prepared", json_boolean(already)) < 0 ||
            set_new(reply, "previous_driver",
                    previous && previous[0] ? json_string(previous) : json_null()) < 0)
                return -ENOMEM;
        return 0;
}

static int prepare_reply(struct pgd_ctx *ctx, const struct pgd_change_args *done)
{
        return prepare_reply_fields(ctx, false, done->driver);
}

int pgd_op_prepare(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_daemon *d = ctx->d;
        struct pgd_error *err = &ctx->err;
        struct pgd_change_args a = {
                .kind = PGD_CHANGE_PREPARE,
                .sbdf = req->sbdf,
                .message = "bound to pciback and quarantined",
                .reply = prepare_reply,
        };
        const struct hv_pci_info *info;
        const struct hv_caps *caps;
        struct pg_policy_device dev;
        const char *why = NULL, *recorded;
        char driver[HV_DRIVER_MAX] = "";
        uint32_t owner;
        int r;

        r = request_device(ctx, &info);
        if (r != 0)
                return r;

        pgd_checks_policy_device(info, &dev);
        if (!ctx->admin && !pg_policy_may_prepare(d->policy, &ctx->id, &dev)) {
                pgd_error_set(err, PG_ERR_NOT_AUTHORIZED,
                              "only an admin, or a client of a rule with managed = true, may "
                              "prepare %s",
                              req->bdf);
                return err->code;
        }
        if (pgd_checks_protected(d, info, &why)) {
                pgd_error_set(err, PG_ERR_PROTECTED_DEVICE, "%s is protected by policy (%s)",
                              req->bdf, why ?: "protected");
                return err->code;
        }
        r = pgd_host_caps(ctx, &caps);
        if (r < 0 || !caps->iommu) {
                /* Quarantine is an IOMMU assignment to DOMID_IO: no IOMMU, no quarantine. */
                pgd_error_set(err, r < 0 ? PG_ERR_HYPERVISOR_ERROR : PG_ERR_NO_IOMMU,
                              "cannot quarantine %s: %s", req->bdf,
                              r < 0 ? strerror(-r) : "the host has no IOMMU");
                return err->code;
        }
        r = owner_not_guest(ctx, &owner);
        if (r != 0)
                return r;
        recorded = pgd_grants_prepared_driver(d->grants, req->sbdf);

        if (owner == HV_DOMID_IO && streq(info->driver, "pciback"))
                return prepare_reply_fields(ctx, true, recorded);

        if (!recorded) {
                /* The intent names the driver bound now: a crash cannot lose it. */
                snprintf(a.driver, sizeof(a.driver), "%s",
                         streq(info->driver, "pciback") ? "" : info->driver);
                /* And what the device is: an assign refuses another one at its address. */
                pgd_identity_from_pci(info, &a.identity);
                return pgd_commit_change(d, ctx, &a);
        }

        /* Recorded already, from an earlier prepare: keep that driver, record nothing. */
        r = d->hv_ops->pci_prepare(d->hv, req->sbdf, driver);
        if (r < 0) {
                pgd_error_set(err, pgd_checks_hv_code("prepare", r), "cannot prepare %s: %s",
                              req->bdf, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                return err->code;
        }
        ctx->outcome.decision = "prepared";
        ctx->outcome.message = a.message;
        return prepare_reply_fields(ctx, false, recorded);
}

static int unprepare_reply(struct pgd_ctx *ctx, const struct pgd_change_args *done)
{
        if (set_new(ctx->reply, "device", json_string(ctx->req.bdf)) < 0 ||
            set_new(ctx->reply, "driver",
                    done->driver[0] ? json_string(done->driver) : json_null()) < 0 ||
            set_new(ctx->reply, "quarantined", json_false()) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_unprepare(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_daemon *d = ctx->d;
        struct pgd_error *err = &ctx->err;
        struct pgd_change_args a = {
                .kind = PGD_CHANGE_UNPREPARE, .sbdf = req->sbdf, .reply = unprepare_reply};
        const struct hv_pci_info *info;
        const char *recorded;
        uint32_t owner;
        int r;

        r = request_device(ctx, &info);
        if (r != 0)
                return r;

        if (pgd_grants_find(d->grants, req->sbdf)) {
                pgd_error_set(err, PG_ERR_BUSY, "%s is granted: release it first", req->bdf);
                return err->code;
        }
        r = owner_not_guest(ctx, &owner);
        if (r != 0)
                return r;

        recorded = pgd_grants_prepared_driver(d->grants, req->sbdf);
        snprintf(a.driver, sizeof(a.driver), "%s", recorded ?: "");
        a.message = a.driver[0] ? "given back to its dom0 driver" : "unbound from pciback";
        if (recorded)
                return pgd_commit_change(d, ctx, &a);

        /* Not prepared by passguard: nothing to record. */
        r = d->hv_ops->pci_unprepare(d->hv, req->sbdf, a.driver);
        if (r < 0) {
                pgd_error_set(err, pgd_checks_hv_code("unprepare", r), "cannot unprepare %s: %s",
                              req->bdf, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                return err->code;
        }
        ctx->outcome.decision = "unprepared";
        ctx->outcome.message = a.message;
        return unprepare_reply(ctx, &a);
}

/* ---- untaint, watch ---- */

static int untaint_reply(struct pgd_ctx *ctx, const struct pgd_change_args *done)
{
        if (set_new(ctx->reply, "device", json_string(ctx->req.bdf)) < 0 ||
            set_new(ctx->reply, "was_tainted", json_true()) < 0 ||
            set_new(ctx->reply, "reason", json_string(done->taint.reason)) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_untaint(struct pgd_ctx *ctx)
{
        const struct pgd_request *req = &ctx->req;
        const struct pgd_taint *t = pgd_grants_find_taint(ctx->d->grants, req->sbdf);
        struct pgd_change_args a = {
                .kind = PGD_CHANGE_UNTAINT,
                .sbdf = req->sbdf,
                .message = "an admin cleared the taint; the device may go to any domain again",
                .reply = untaint_reply,
        };

        if (!t) {
                /* Nothing to clear: nothing recorded, nothing audited. */
                if (set_new(ctx->reply, "device", json_string(req->bdf)) < 0 ||
                    set_new(ctx->reply, "was_tainted", json_false()) < 0)
                        return -ENOMEM;
                return 0;
        }
        a.taint = *t;
        return pgd_commit_change(ctx->d, ctx, &a);
}

int pgd_op_watch(struct pgd_ctx *ctx)
{
        if (!ctx->admin && !pg_policy_is_watcher(ctx->d->policy, &ctx->id)) {
                ctx->err.check = "client";
                return pgd_error_set(&ctx->err, PG_ERR_NOT_AUTHORIZED,
                                     "uid %u may not watch: only admins and the policy's "
                                     "watchers may",
                                     (unsigned)ctx->peer.uid);
        }
        ctx->watch = true;
        return set_new(ctx->reply, "watching", json_true());
}
