/* SPDX-License-Identifier: MIT */
/*
 * The op handlers. The server has validated the request against its op table
 * (and the peer's permission) before any of these runs. assign and explain
 * share the ordered checks of checks.c; assign then calls the hypervisor and
 * makes the grant durable before it answers (DESIGN.md invariants 1-4).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "checks.h"
#include "grants.h"
#include "log.h"
#include "pgd.h"

static bool is_guest(uint32_t domid)
{
        return domid != HV_DOMID_DOM0 && domid != HV_DOMID_IO;
}

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

/* One audit record for a refused request. */
static void audit_refusal(const struct pgd_daemon *d, const struct pgd_peer *peer,
                          const struct pgd_request *req, const struct hv_domain *dom,
                          const struct pgd_error *err)
{
        struct pgd_audit_record rec = {
                .kind = PGD_AUDIT_REFUSE,
                .op = req->op,
                .sbdf = req->has_device ? req->sbdf : UINT32_MAX,
                .domid = dom              ? (int64_t)dom->domid
                         : req->has_domid ? (int64_t)req->domid
                                          : -1,
                .domain_uuid = dom ? dom->uuid : NULL,
                .domain_name = dom ? dom->name : req->domain,
                .peer = peer,
                .rule = empty_to_null(err->rule),
                .decision = "refused",
                .error = err->code,
                .message = err->message,
        };

        pgd_audit(d, &rec);
}

/* An internal failure of a handler that makes a decision: audited too. */
static int internal_failure(const struct pgd_daemon *d, const struct pgd_peer *peer,
                            const struct pgd_request *req, const struct hv_domain *dom,
                            struct pgd_error *err, int r)
{
        pgd_error_set(err, PG_ERR_INTERNAL, "%s failed: %s", req->op, strerror(-r));
        audit_refusal(d, peer, req, dom, err);
        return r;
}

/* One audit record about a grant: the granted device, its domain and its rule. */
static void audit_grant(const struct pgd_daemon *d, enum pgd_audit_kind kind,
                        const struct pgd_peer *peer, const struct pgd_request *req,
                        const struct pgd_grant *g, const char *decision, const char *message)
{
        struct pgd_audit_record rec = {
                .kind = kind,
                .op = req->op,
                .sbdf = g->sbdf,
                .domid = g->domid,
                .domain_uuid = g->domain_uuid,
                .domain_name = g->domain_name,
                .peer = peer,
                .rule = g->rule,
                .decision = decision,
                .error = 0,
                .message = message,
        };

        pgd_audit(d, &rec);
}

/* ---- the grant store's health ---- */

/* Commit the store as it is in memory; remember whether the file now matches it. */
static int state_commit(struct pgd_daemon *d)
{
        int r = pgd_grants_commit(d->grants);

        if (r < 0) {
                d->state_error = r;
                return r;
        }
        if (d->state_broken)
                log_notice("%s written again: changes are accepted again",
                           pgd_grants_path(d->grants));
        d->state_broken = false;
        d->state_error = 0;
        return 0;
}

/*
 * A commit failed and the change was undone in memory and in the hypervisor.
 * The failure may have come after the rename (the directory fsync), so the
 * file may hold the undone change: write memory again. If that fails too,
 * the file may disagree with memory and the hypervisor, and the store is
 * broken until a commit succeeds (state_usable()).
 */
static void state_rewrite_after_rollback(struct pgd_daemon *d)
{
        int r = state_commit(d);

        if (r < 0) {
                d->state_broken = true;
                log_error_errno(r,
                                "Failed to write %s again after a rollback; refusing every "
                                "change until it can be written: %m",
                                pgd_grants_path(d->grants));
        }
}

/*
 * Before anything of a state-changing op: a broken store is written first,
 * and the op refused state-error while it cannot be.
 */
static int state_usable(struct pgd_daemon *d, struct pgd_error *err)
{
        if (!d->state_broken)
                return 0;
        if (state_commit(d) >= 0)
                return 0;
        return pgd_error_set(err, PG_ERR_STATE_ERROR, "the grant store cannot be written: %s: %s",
                             pgd_grants_path(d->grants), strerror(-d->state_error));
}

/* ---- status, list, owner ---- */

int pgd_op_status(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                  json_t *reply, struct pgd_error *err)
{
        struct hv_caps caps;
        json_t *ir;
        int r;

        r = d->hv_ops->host_caps(d->hv, &caps);
        if (r < 0) {
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot read the host capabilities: %s",
                              strerror(-r));
                err->hv_errno = -r;
                return PG_ERR_HYPERVISOR_ERROR;
        }
        ir = caps.interrupt_remapping < 0 ? json_null() : json_boolean(caps.interrupt_remapping);

        if (set_new(reply, "backend", json_string(d->hv_ops->name)) < 0 ||
            set_new(reply, "iommu", json_boolean(caps.iommu)) < 0 ||
            set_new(reply, "interrupt_remapping", ir) < 0 ||
            set_new(reply, "grants", json_integer((json_int_t)pgd_grants_count(d->grants))) < 0 ||
            set_new(reply, "policy", json_string(pg_policy_path(d->policy) ?: "")) < 0 ||
            set_new(reply, "rules", json_integer((json_int_t)pg_policy_n_rules(d->policy))) < 0 ||
            set_new(reply, "policy_loaded", json_integer((json_int_t)d->policy_loaded)) < 0 ||
            set_new(reply, "version", json_string(PG_VERSION)) < 0 ||
            set_new(reply, "enforce", json_boolean(d->cfg.enforce)) < 0 ||
            set_new(reply, "state_ok", json_boolean(!d->state_broken)) < 0)
                return -ENOMEM;
        return 0;
}

/* The hypervisor owner of sbdf from one assignments() listing: dom0 when absent. */
static uint32_t owner_in(const struct hv_assignment *asg, size_t n_asg, uint32_t sbdf)
{
        for (size_t i = 0; i < n_asg; i++)
                if (asg[i].sbdf == sbdf)
                        return asg[i].domid;
        return HV_DOMID_DOM0;
}

static bool is_assignable(struct pgd_daemon *d, uint32_t sbdf, const struct hv_pci_info *info,
                          uint32_t owner)
{
        struct pg_policy_device dev;
        const char *why = NULL;

        if (!streq(info->driver, "pciback") || owner != HV_DOMID_IO)
                return false;
        if (pgd_grants_find(d->grants, sbdf))
                return false;
        pgd_checks_policy_device(info, &dev);
        return !pg_policy_is_protected(d->policy, &dev, &why);
}

/*
 * One listing of the hypervisor's assignments serves every device: asking for
 * each device's owner would cost one hypervisor PCI dump per device on Xen.
 */
static int list_assignable(struct pgd_daemon *d, json_t *array)
{
        _cleanup_(freep) uint32_t *all = NULL;
        _cleanup_(freep) struct hv_assignment *asg = NULL;
        size_t n = 0, n_asg = 0;
        int r;

        r = d->hv_ops->pci_list(d->hv, &all, &n);
        if (r < 0)
                return r;
        r = d->hv_ops->assignments(d->hv, &asg, &n_asg);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                struct hv_pci_info info;
                char bdf[PG_BDF_MAX], vendor[8], device[8], class[10];

                if (d->hv_ops->pci_info(d->hv, all[i], &info) < 0)
                        continue; /* gone since the listing */
                if (!is_assignable(d, all[i], &info, owner_in(asg, n_asg, all[i])))
                        continue;
                snprintf(vendor, sizeof(vendor), "0x%04x", info.vendor);
                snprintf(device, sizeof(device), "0x%04x", info.device);
                snprintf(class, sizeof(class), "0x%06x", info.class & 0xffffffU);
                json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "device",
                                      pg_bdf_format(all[i], bdf), "vendor", vendor, "device_id",
                                      device, "class", class, "driver", info.driver);
                if (!o || json_array_append_new(array, o) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/*
 * A reply must fit one wire message (PG_WIRE_MAX_MESSAGE). The arrays of a
 * list reply get this much of it; the rest is ample for "id", "ok", the keys
 * and the counts.
 */
#define LIST_BUDGET (60u * 1024)

/* The bytes o adds to an array on the wire: its compact text and a comma. */
static size_t wire_size(const json_t *o)
{
        size_t n = json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_ENSURE_ASCII);

        return n == 0 ? SIZE_MAX : n + 1;
}

/* Move the elements of all into ret, in order, while they fit in *budget. */
static int take_fitting(json_t *all, json_t *ret, size_t *budget, bool *truncated)
{
        size_t i;
        json_t *o;

        json_array_foreach(all, i, o)
        {
                size_t n = wire_size(o);
                if (n > *budget) {
                        *truncated = true;
                        break;
                }
                *budget -= n;
                if (json_array_append(ret, o) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/*
 * Grants first, then assignable devices, as many as fit one wire message:
 * "truncated" says whether some were left out, and "grant_count" and
 * "assignable_count" give the totals.
 */
int pgd_op_list(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                json_t *reply, struct pgd_error *err)
{
        _cleanup_(json_decrefp) json_t *all_grants = json_array(), *all_assignable = json_array();
        _cleanup_(json_decrefp) json_t *grants = json_array(), *assignable = json_array();
        size_t budget = LIST_BUDGET;
        bool truncated = false;
        int r;

        if (!all_grants || !all_assignable || !grants || !assignable)
                return -ENOMEM;
        for (size_t i = 0; i < pgd_grants_count(d->grants); i++) {
                json_t *o = grant_to_json(pgd_grants_get(d->grants, i));
                if (!o || json_array_append_new(all_grants, o) < 0)
                        return -ENOMEM;
        }
        r = list_assignable(d, all_assignable);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot list PCI devices: %s",
                              strerror(-r));
                return PG_ERR_HYPERVISOR_ERROR;
        }
        r = take_fitting(all_grants, grants, &budget, &truncated);
        if (r < 0)
                return r;
        if (truncated)
                budget = 0; /* no device may come before a grant that was left out */
        r = take_fitting(all_assignable, assignable, &budget, &truncated);
        if (r < 0)
                return r;

        if (set_new(reply, "grants", TAKE_PTR(grants)) < 0 ||
            set_new(reply, "assignable", TAKE_PTR(assignable)) < 0 ||
            set_new(reply, "grant_count", json_integer((json_int_t)json_array_size(all_grants))) <
                    0 ||
            set_new(reply, "assignable_count",
                    json_integer((json_int_t)json_array_size(all_assignable))) < 0 ||
            set_new(reply, "truncated", json_boolean(truncated)) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_owner(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                 json_t *reply, struct pgd_error *err)
{
        const struct pgd_grant *g;
        struct hv_pci_info info;
        struct hv_domain dom;
        uint32_t owner;
        bool known;
        int r;

        r = d->hv_ops->pci_info(d->hv, req->sbdf, &info);
        if (r == -ENODEV)
                return pgd_error_set(err, PG_ERR_NO_SUCH_DEVICE, "no PCI device %s", req->bdf);
        if (r < 0)
                return pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot read PCI device %s: %s",
                                     req->bdf, strerror(-r));
        r = d->hv_ops->device_owner(d->hv, req->sbdf, &owner);
        if (r < 0 && r != -ENODEV) {
                pgd_error_set(err, pgd_checks_hv_code("owner", r),
                              "cannot read the owner of %s: %s", req->bdf, strerror(-r));
                err->hv_errno = -r;
                return err->code;
        }
        known = r >= 0;
        g = pgd_grants_find(d->grants, req->sbdf);

        if (set_new(reply, "device", json_string(req->bdf)) < 0 ||
            set_new(reply, "assigned", json_boolean(known && is_guest(owner))) < 0 ||
            set_new(reply, "granted", json_boolean(g != NULL)) < 0 ||
            set_new(reply, "quarantined", json_boolean(known && owner == HV_DOMID_IO)) < 0 ||
            set_new(reply, "driver", info.driver[0] ? json_string(info.driver) : json_null()) < 0)
                return -ENOMEM;
        if (known && is_guest(owner)) {
                if (set_new(reply, "domid", json_integer(owner)) < 0)
                        return -ENOMEM;
                if (d->hv_ops->domain_get(d->hv, owner, &dom) >= 0 && dom.name[0] &&
                    set_new(reply, "domain", json_string(dom.name)) < 0)
                        return -ENOMEM;
        }
        if (g && set_new(reply, "grant", grant_to_json(g)) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- assign and explain ---- */

int pgd_op_explain(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                   json_t *reply, struct pgd_error *err)
{
        struct pgd_checks c;
        struct pgd_error refusal = {};
        char message[256];
        int r;

        r = pgd_checks_run(d, peer, req, PGD_CHECKS_EXPLAIN, &c, &refusal);
        if (r < 0)
                return r;

        if (set_new(reply, "decision", json_string(c.allow ? "allow" : "deny")) < 0 ||
            set_new(reply, "checks", pgd_checks_to_json(&c)) < 0)
                return -ENOMEM;
        if (c.policy_ran && set_new(reply, "rule", json_string(c.rule)) < 0)
                return -ENOMEM;
        if (c.allow) {
                bool relaxed = c.rdm_policy == PG_POLICY_RDM_RELAXED && req->rdm_relaxed != 0;

                snprintf(message, sizeof(message), "assign %s to domid %u: allowed by rule %s",
                         req->bdf, c.domain.domid, c.rule);
                if (set_new(reply, "message", json_string(message)) < 0 ||
                    set_new(reply, "rdm_policy",
                            json_string(pg_policy_rdm_name(relaxed ? PG_POLICY_RDM_RELAXED
                                                                   : PG_POLICY_RDM_STRICT))) < 0)
                        return -ENOMEM;
                return 0;
        }
        if (set_new(reply, "error", json_string(pg_error_name(refusal.code))) < 0 ||
            set_new(reply, "check", json_string(refusal.check ?: "")) < 0 ||
            set_new(reply, "message", json_string(refusal.message)) < 0)
                return -ENOMEM;
        if (refusal.hv_errno > 0 && pg_errno_name(refusal.hv_errno) &&
            set_new(reply, "errno", json_string(pg_errno_name(refusal.hv_errno))) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_assign(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                  json_t *reply, struct pgd_error *err)
{
        _cleanup_(json_decrefp) json_t *grant_json = NULL;
        struct pgd_checks c;
        struct pgd_grant g = {};
        bool relaxed, committed = false;
        int code, r;

        r = state_usable(d, err);
        if (r > 0) {
                audit_refusal(d, peer, req, NULL, err);
                return r;
        }
        r = pgd_checks_run(d, peer, req, PGD_CHECKS_ASSIGN, &c, err);
        if (r < 0)
                return internal_failure(d, peer, req, c.have_domain ? &c.domain : NULL, err, r);
        if (r > 0) {
                audit_refusal(d, peer, req, c.have_domain ? &c.domain : NULL, err);
                return r;
        }

        /*
         * RDM: the rule says how lax it may be, and the request may only make
         * it stricter. A request for "relaxed" under a strict rule gets strict,
         * and the grant says so.
         */
        relaxed = c.rdm_policy == PG_POLICY_RDM_RELAXED && req->rdm_relaxed != 0;

        g.sbdf = req->sbdf;
        g.domid = c.domain.domid;
        snprintf(g.domain_uuid, sizeof(g.domain_uuid), "%s", c.domain.uuid);
        snprintf(g.domain_name, sizeof(g.domain_name), "%s", c.domain.name);
        g.client_uid = peer->uid;
        g.client_pid = peer->pid;
        snprintf(g.client_unit, sizeof(g.client_unit), "%s", peer->unit ?: "");
        snprintf(g.rule, sizeof(g.rule), "%s", c.rule);
        g.rdm_policy = relaxed ? PG_POLICY_RDM_RELAXED : PG_POLICY_RDM_STRICT;
        g.time = (int64_t)time(NULL);
        grant_json = grant_to_json(&g);
        if (!grant_json)
                return internal_failure(d, peer, req, &c.domain, err, -ENOMEM);

        pgd_crash_point(d, "assign:before-hv");
        r = d->hv_ops->assign(d->hv, g.domid, g.sbdf, relaxed);
        if (r < 0) {
                /* Xen re-checks under its lock: its answer is the final word. */
                code = pgd_checks_hv_code("assign", r);
                pgd_error_set(err, code, "the hypervisor refused to assign %s to domid %u: %s",
                              req->bdf, g.domid, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                audit_refusal(d, peer, req, &c.domain, err);
                return code;
        }
        pgd_crash_point(d, "assign:after-hv");

        r = pgd_grants_add(d->grants, &g);
        if (r >= 0) {
                committed = true;
                r = state_commit(d);
                if (r < 0)
                        (void)pgd_grants_remove(d->grants, g.sbdf);
        }
        if (r < 0) {
                /* Fail closed: no durable grant, so no assignment either. */
                int q = d->hv_ops->deassign(d->hv, g.domid, g.sbdf);
                if (q < 0)
                        log_error_errno(q,
                                        "Failed to roll back the assignment of %s to domid %u, "
                                        "it stays assigned without a grant: %m",
                                        req->bdf, g.domid);
                log_error_errno(r, "Failed to record the grant of %s in %s: %m", req->bdf,
                                pgd_grants_path(d->grants));
                if (committed)
                        state_rewrite_after_rollback(d);
                pgd_error_set(err, PG_ERR_STATE_ERROR,
                              "cannot record the grant of %s: %s; the assignment was %s", req->bdf,
                              strerror(-r), q < 0 ? "NOT rolled back" : "rolled back");
                audit_refusal(d, peer, req, &c.domain, err);
                return PG_ERR_STATE_ERROR;
        }
        pgd_crash_point(d, "assign:after-commit");

        audit_grant(d, PGD_AUDIT_GRANT, peer, req, &g, "granted",
                    c.reset_done ? "granted after reset" : "granted");

        return set_new(reply, "grant", TAKE_PTR(grant_json));
}

/* ---- release ---- */

/*
 * Whether the request names the grant's domain. A live domain must match by
 * domid and UUID (a reused domid never inherits a grant); a domain that is
 * gone matches by the domid or name the grant recorded.
 */
static int request_names_grant_domain(struct pgd_daemon *d, const struct pgd_request *req,
                                      const struct pgd_grant *g, bool *ret_match,
                                      struct hv_domain *ret_dom, bool *ret_alive)
{
        struct hv_domain dom;
        int r;

        if (req->has_domid)
                r = d->hv_ops->domain_get(d->hv, req->domid, &dom);
        else
                r = d->hv_ops->domain_by_name(d->hv, req->domain ?: "", &dom);
        if (r == -ESRCH) {
                *ret_alive = false;
                *ret_match = req->has_domid ? req->domid == g->domid
                                            : streq_ptr(req->domain, g->domain_name);
                return 0;
        }
        if (r < 0)
                return r;
        *ret_alive = true;
        *ret_match = dom.domid == g->domid && streq(dom.uuid, g->domain_uuid);
        *ret_dom = dom;
        return 0;
}

/*
 * The reset the grant's rule asks for on release; a rule that a reload removed
 * resets when the device can, the safe side for the next guest.
 */
static enum pg_policy_reset release_reset(const struct pgd_daemon *d, const struct pgd_grant *g)
{
        enum pg_policy_reset reset;

        if (pg_policy_rule_reset(d->policy, g->rule, &reset) < 0)
                return PG_POLICY_RESET_IF_AVAILABLE;
        return reset;
}

int pgd_op_release(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                   json_t *reply, struct pgd_error *err)
{
        const struct pgd_grant *found;
        struct pgd_grant g;
        struct pg_policy_identity id;
        struct hv_domain dom = {};
        struct hv_pci_info info;
        bool match = false, alive = false, have_info;
        enum pg_policy_reset reset;
        const char *message = "released";
        bool committed = false;
        int code, r;

        r = state_usable(d, err);
        if (r > 0) {
                audit_refusal(d, peer, req, NULL, err);
                return r;
        }

        /*
         * Who may release comes first, before anything about the grant is
         * said: a client that may not release this device learns neither
         * the domain nor the client that holds it, whatever domain it names.
         */
        pgd_peer_identity(peer, &id);
        found = pgd_grants_find(d->grants, req->sbdf);
        if (found && peer->uid != found->client_uid && !pg_policy_is_admin(d->policy, &id)) {
                pgd_error_set(err, PG_ERR_NOT_AUTHORIZED,
                              "only the client that was granted %s, or an admin, may release it",
                              req->bdf);
                audit_refusal(d, peer, req, NULL, err);
                return PG_ERR_NOT_AUTHORIZED;
        }
        if (!found) {
                pgd_error_set(err, PG_ERR_NOT_ASSIGNED, "%s is not granted", req->bdf);
                audit_refusal(d, peer, req, NULL, err);
                return PG_ERR_NOT_ASSIGNED;
        }
        g = *found; /* the store's copy goes away on remove */

        r = request_names_grant_domain(d, req, &g, &match, &dom, &alive);
        if (r < 0) {
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot look up the domain: %s",
                              strerror(-r));
                err->hv_errno = -r;
                audit_refusal(d, peer, req, NULL, err);
                return PG_ERR_HYPERVISOR_ERROR;
        }
        if (!match) {
                pgd_error_set(err, PG_ERR_NOT_ASSIGNED,
                              "%s is granted to domid %u (%s), not to the domain named", req->bdf,
                              g.domid, g.domain_name);
                audit_refusal(d, peer, req, alive ? &dom : NULL, err);
                return PG_ERR_NOT_ASSIGNED;
        }

        pgd_crash_point(d, "release:before-hv");
        r = d->hv_ops->deassign(d->hv, g.domid, g.sbdf);
        if (r == -ENODEV || r == -ESRCH) {
                /* Not assigned to it any more, or the domain is gone (Xen quarantined it). */
                log_notice("%s was already gone from domid %u in the hypervisor", req->bdf,
                           g.domid);
                message = "released (the hypervisor had already deassigned it)";
        } else if (r < 0) {
                code = pgd_checks_hv_code("deassign", r);
                pgd_error_set(err, code, "the hypervisor refused to deassign %s from domid %u: %s",
                              req->bdf, g.domid, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                audit_refusal(d, peer, req, alive ? &dom : NULL, err);
                return code;
        }
        pgd_crash_point(d, "release:after-hv");

        r = pgd_grants_remove(d->grants, g.sbdf);
        if (r >= 0) {
                committed = true;
                r = state_commit(d);
                if (r < 0)
                        (void)pgd_grants_add(d->grants, &g);
        }
        if (r < 0) {
                /* The grant is still on disk: give the device back to its domain. */
                int q = d->hv_ops->assign(d->hv, g.domid, g.sbdf,
                                          g.rdm_policy == PG_POLICY_RDM_RELAXED);
                if (q < 0)
                        log_error_errno(q,
                                        "Failed to re-assign %s to domid %u after a failed "
                                        "release: %m",
                                        req->bdf, g.domid);
                log_error_errno(r, "Failed to record the release of %s in %s: %m", req->bdf,
                                pgd_grants_path(d->grants));
                if (committed)
                        state_rewrite_after_rollback(d);
                pgd_error_set(err, PG_ERR_STATE_ERROR, "cannot record the release of %s: %s",
                              req->bdf, strerror(-r));
                audit_refusal(d, peer, req, alive ? &dom : NULL, err);
                return PG_ERR_STATE_ERROR;
        }
        pgd_crash_point(d, "release:after-commit");

        /* Back in quarantine now. A reset is best effort: the release is done. */
        have_info = d->hv_ops->pci_info(d->hv, g.sbdf, &info) >= 0;
        if (have_info) {
                reset = release_reset(d, &g);
                if (reset != PG_POLICY_RESET_NEVER && info.has_reset) {
                        r = d->hv_ops->pci_reset(d->hv, g.sbdf);
                        if (r < 0) {
                                log_warning_errno(r, "Failed to reset %s after release: %m",
                                                  req->bdf);
                                message = "released; the reset failed";
                        }
                }
        }

        audit_grant(d, PGD_AUDIT_RELEASE, peer, req, &g, "released", message);

        if (set_new(reply, "device", json_string(req->bdf)) < 0 ||
            set_new(reply, "domid", json_integer(g.domid)) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- prepare and unprepare ---- */

static void audit_prepare(const struct pgd_daemon *d, const struct pgd_peer *peer,
                          const struct pgd_request *req, const char *decision, const char *message)
{
        struct pgd_audit_record rec = {
                .kind = PGD_AUDIT_PREPARE,
                .op = req->op,
                .sbdf = req->sbdf,
                .domid = -1,
                .peer = peer,
                .decision = decision,
                .error = 0,
                .message = message,
        };

        pgd_audit(d, &rec);
}

/* Audit the refusal in err and return its code. */
static int refused(const struct pgd_daemon *d, const struct pgd_peer *peer,
                   const struct pgd_request *req, const struct pgd_error *err)
{
        audit_refusal(d, peer, req, NULL, err);
        return err->code;
}

/*
 * For prepare and unprepare: the hypervisor owner of the device, HV_DOMID_DOM0
 * when the hypervisor does not know it. Refuses (returns a PG_ERR_* code, err
 * filled) when the owner cannot be read, since a device must never be moved
 * between drivers blind, and when a guest holds it.
 */
static int owner_not_guest(struct pgd_daemon *d, const struct pgd_request *req,
                           uint32_t *ret_owner, struct pgd_error *err)
{
        uint32_t owner = HV_DOMID_DOM0;
        int r;

        r = d->hv_ops->device_owner(d->hv, req->sbdf, &owner);
        if (r < 0 && r != -ENODEV) {
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot read the owner of %s: %s",
                              req->bdf, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                return PG_ERR_HYPERVISOR_ERROR;
        }
        if (r < 0)
                owner = HV_DOMID_DOM0;
        if (is_guest(owner))
                return pgd_error_set(err, PG_ERR_BUSY, "%s is assigned to domid %u", req->bdf,
                                     owner);
        *ret_owner = owner;
        return 0;
}

int pgd_op_prepare(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                   json_t *reply, struct pgd_error *err)
{
        struct pg_policy_identity id;
        struct pg_policy_device dev;
        struct hv_pci_info info;
        struct hv_caps caps;
        const char *why = NULL, *recorded;
        char driver[HV_DRIVER_MAX] = "";
        uint32_t owner;
        bool committed = false;
        int r;

        r = state_usable(d, err);
        if (r > 0)
                return refused(d, peer, req, err);
        pgd_peer_identity(peer, &id);
        r = d->hv_ops->pci_info(d->hv, req->sbdf, &info);
        if (r == -ENODEV)
                pgd_error_set(err, PG_ERR_NO_SUCH_DEVICE, "no PCI device %s", req->bdf);
        else if (r < 0)
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot read PCI device %s: %s",
                              req->bdf, strerror(-r));
        if (r < 0)
                return refused(d, peer, req, err);

        pgd_checks_policy_device(&info, &dev);
        if (!pg_policy_is_admin(d->policy, &id) && !pg_policy_may_prepare(d->policy, &id, &dev)) {
                pgd_error_set(err, PG_ERR_NOT_AUTHORIZED,
                              "only an admin, or a client of a rule with managed = true, may "
                              "prepare %s",
                              req->bdf);
                return refused(d, peer, req, err);
        }
        if (pg_policy_is_protected(d->policy, &dev, &why)) {
                pgd_error_set(err, PG_ERR_PROTECTED_DEVICE, "%s is protected by policy (%s)",
                              req->bdf, why ?: "protected");
                return refused(d, peer, req, err);
        }
        r = d->hv_ops->host_caps(d->hv, &caps);
        if (r < 0 || !caps.iommu) {
                /* Quarantine is an IOMMU assignment to DOMID_IO: no IOMMU, no quarantine. */
                pgd_error_set(err, r < 0 ? PG_ERR_HYPERVISOR_ERROR : PG_ERR_NO_IOMMU,
                              "cannot quarantine %s: %s", req->bdf,
                              r < 0 ? strerror(-r) : "the host has no IOMMU");
                return refused(d, peer, req, err);
        }
        if (owner_not_guest(d, req, &owner, err) > 0)
                return refused(d, peer, req, err);
        recorded = pgd_grants_prepared_driver(d->grants, req->sbdf);

        if (owner == HV_DOMID_IO && streq(info.driver, "pciback")) {
                if (set_new(reply, "device", json_string(req->bdf)) < 0 ||
                    set_new(reply, "driver", json_string("pciback")) < 0 ||
                    set_new(reply, "quarantined", json_true()) < 0 ||
                    set_new(reply, "already_prepared", json_true()) < 0 ||
                    set_new(reply, "previous_driver",
                            recorded && recorded[0] ? json_string(recorded) : json_null()) < 0)
                        return -ENOMEM;
                return 0;
        }

        r = d->hv_ops->pci_prepare(d->hv, req->sbdf, driver);
        if (r < 0) {
                pgd_error_set(err, pgd_checks_hv_code("prepare", r), "cannot prepare %s: %s",
                              req->bdf, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                return refused(d, peer, req, err);
        }

        /* Keep the first recorded driver: that is the one to give it back to. */
        if (!recorded) {
                r = pgd_grants_set_prepared(d->grants, req->sbdf, driver);
                if (r >= 0) {
                        committed = true;
                        r = state_commit(d);
                        if (r < 0)
                                (void)pgd_grants_clear_prepared(d->grants, req->sbdf);
                }
                if (r < 0) {
                        int q = d->hv_ops->pci_unprepare(d->hv, req->sbdf, driver);
                        if (q < 0)
                                log_error_errno(q, "Failed to roll back the prepare of %s: %m",
                                                req->bdf);
                        if (committed)
                                state_rewrite_after_rollback(d);
                        pgd_error_set(err, PG_ERR_STATE_ERROR,
                                      "cannot record the prepare of %s: %s", req->bdf,
                                      strerror(-r));
                        return refused(d, peer, req, err);
                }
                recorded = driver;
        }
        audit_prepare(d, peer, req, "prepared", "bound to pciback and quarantined");

        if (set_new(reply, "device", json_string(req->bdf)) < 0 ||
            set_new(reply, "driver", json_string("pciback")) < 0 ||
            set_new(reply, "quarantined", json_true()) < 0 ||
            set_new(reply, "already_prepared", json_false()) < 0 ||
            set_new(reply, "previous_driver", recorded[0] ? json_string(recorded) : json_null()) <
                    0)
                return -ENOMEM;
        return 0;
}

int pgd_op_unprepare(struct pgd_daemon *d, const struct pgd_peer *peer,
                     const struct pgd_request *req, json_t *reply, struct pgd_error *err)
{
        struct hv_pci_info info;
        const char *recorded;
        char driver[HV_DRIVER_MAX], again[HV_DRIVER_MAX];
        uint32_t owner;
        bool committed = false;
        int r;

        r = state_usable(d, err);
        if (r > 0)
                return refused(d, peer, req, err);
        r = d->hv_ops->pci_info(d->hv, req->sbdf, &info);
        if (r == -ENODEV)
                pgd_error_set(err, PG_ERR_NO_SUCH_DEVICE, "no PCI device %s", req->bdf);
        else if (r < 0)
                pgd_error_set(err, PG_ERR_HYPERVISOR_ERROR, "cannot read PCI device %s: %s",
                              req->bdf, strerror(-r));
        if (r < 0)
                return refused(d, peer, req, err);

        if (pgd_grants_find(d->grants, req->sbdf)) {
                pgd_error_set(err, PG_ERR_BUSY, "%s is granted: release it first", req->bdf);
                return refused(d, peer, req, err);
        }
        if (owner_not_guest(d, req, &owner, err) > 0)
                return refused(d, peer, req, err);

        recorded = pgd_grants_prepared_driver(d->grants, req->sbdf);
        snprintf(driver, sizeof(driver), "%s", recorded ?: "");
        r = d->hv_ops->pci_unprepare(d->hv, req->sbdf, driver);
        if (r < 0) {
                pgd_error_set(err, pgd_checks_hv_code("unprepare", r), "cannot unprepare %s: %s",
                              req->bdf, pg_errno_name(-r) ?: strerror(-r));
                err->hv_errno = -r;
                return refused(d, peer, req, err);
        }

        if (recorded) {
                r = pgd_grants_clear_prepared(d->grants, req->sbdf);
                if (r >= 0) {
                        committed = true;
                        r = state_commit(d);
                        if (r < 0)
                                (void)pgd_grants_set_prepared(d->grants, req->sbdf, driver);
                }
                if (r < 0) {
                        int q = d->hv_ops->pci_prepare(d->hv, req->sbdf, again);
                        if (q < 0)
                                log_error_errno(q, "Failed to roll back the unprepare of %s: %m",
                                                req->bdf);
                        if (committed)
                                state_rewrite_after_rollback(d);
                        pgd_error_set(err, PG_ERR_STATE_ERROR,
                                      "cannot record the unprepare of %s: %s", req->bdf,
                                      strerror(-r));
                        return refused(d, peer, req, err);
                }
        }
        audit_prepare(d, peer, req, "unprepared",
                      driver[0] ? "given back to its dom0 driver" : "unbound from pciback");

        if (set_new(reply, "device", json_string(req->bdf)) < 0 ||
            set_new(reply, "driver", driver[0] ? json_string(driver) : json_null()) < 0 ||
            set_new(reply, "quarantined", json_false()) < 0)
                return -ENOMEM;
        return 0;
}
