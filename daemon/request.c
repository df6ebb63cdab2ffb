/* SPDX-License-Identifier: MIT */
/*
 * The trust boundary (STYLE.md habit 2, after OpenSSH's mon_table): every
 * request is checked against one static table before any handler sees it.
 * Order: size, strict parse, id, op, keys and types, permission, handler.
 *
 * Each request gets one context (struct pgd_ctx), built here once and passed
 * down (STYLE.md habit 9): the op, the caller's identity, the names of the
 * clients it is and whether it is an admin, and one snapshot of the host
 * that the checks read (host.c). Each fact of the host is asked of the
 * backend when a check first needs it, and never again for the same request;
 * the checks therefore still run in order, and a refused request asks
 * nothing a later check would have asked. A change (commit.c) may keep the context until its
 * record is durable; its reply is then sent by pgd_request_finish(). The
 * request's one audit record is written here too, from its outcome.
 *
 * The path of `passguard assign DOMAIN BDF`, from the CLI's main() to the
 * backend's assign call, 12 hops in 8 files (the daemon's side is 8):
 *
 *   client/cli/passguard.c  main() -> verb_target()              the verb table
 *                           verb_target() -> pg_assign()
 *   client/libpassguard.c   pg_assign() -> call()                JSON built once
 *                           call() -> send_all()                 one line on the socket
 *   daemon/server/connection.c
 *                           on_client_io() -> client_process()   a complete line
 *                           client_process() -> pgd_request_handle()
 *   daemon/request.c        pgd_request_handle() -> pgd_op_assign()
 *                                                 parse, op table, permission, context
 *   daemon/ops.c            pgd_op_assign() -> pgd_commit_change()
 *                                                 the ordered checks (checks.c), the grant
 *   daemon/commit.c         the intent is recorded; the change waits for the journal's
 *                           sync, which the loop runs once per turn for all waiting:
 *   daemon/server/server.c  on_commit() -> pgd_commit_run()
 *   daemon/commit.c         pgd_commit_run() -> step() -> hv_call() -> hv_ops->assign()
 *   daemon/hv/hv-xen.c      xen_assign(): xc_assign_device() (hv-sim.c: sim_assign())
 *
 * On the way, without hops of their own on this path: the CLI checks the BDF
 * for a usage error (exit 2) before it connects; the daemon parses the line
 * (pg_wire_parse_why), checks it against the op table (pgd_request_parse),
 * the caller's permission (authorize) and the store's writability
 * (pgd_commit_usable), then runs the checks (pgd_checks_run).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit.h"
#include "commit.h"
#include "log.h"
#include "pgd.h"
#include "reload.h"
#include "request.h"

/* The arguments an op takes, besides "id" and "op". */
enum {
        ARG_DEVICE = 1 << 0,  /* "device": a BDF */
        ARG_TARGET = 1 << 1,  /* exactly one of "domain" (name) and "domid" */
        ARG_RDM = 1 << 2,     /* "rdm_policy": "strict" | "relaxed" */
        ARG_VERSION = 1 << 3, /* "version": integer */
        ARG_DEVICES = 1 << 4, /* exactly one of "device" and "devices" (an array of BDFs) */
};

/*
 * The op table: who may call an op, its handler, its arguments; whether it
 * changes state (the grant store must be writable first: run_op()), and
 * whether its outcome is a decision with an audit record of that kind
 * (audit_outcome()).
 */
struct pgd_op {
        const char *name;
        enum pgd_perm perm;
        pgd_op_handler handler;
        unsigned required; /* ARG_* that must be given */
        unsigned optional; /* ARG_* that may be given */
        bool changes;
        bool audited;
        enum pgd_audit_kind audit; /* of a success; a refusal is PGD_AUDIT_REFUSE */
};

#define C true /* changes state */
#define A true /* audited */
static const struct pgd_op op_table[] = {
        {"hello", PGD_PERM_ANYONE, pgd_op_hello, ARG_VERSION, 0},
        {"status", PGD_PERM_CLIENT, pgd_op_status, 0, 0},
        {"list", PGD_PERM_CLIENT, pgd_op_list, 0, 0},
        {"assign", PGD_PERM_CLIENT, pgd_op_assign, ARG_DEVICES | ARG_TARGET, ARG_RDM, C, A,
         PGD_AUDIT_GRANT},
        {"release", PGD_PERM_CLIENT, pgd_op_release, ARG_DEVICE | ARG_TARGET, 0, C, A,
         PGD_AUDIT_RELEASE},
        {"explain", PGD_PERM_CLIENT, pgd_op_explain, ARG_DEVICES | ARG_TARGET, ARG_RDM},
        {"owner", PGD_PERM_CLIENT, pgd_op_owner, ARG_DEVICE, 0},
        /* prepare also lets a managed rule's clients in: its handler checks. */
        {"prepare", PGD_PERM_CLIENT, pgd_op_prepare, ARG_DEVICE, 0, C, A, PGD_AUDIT_PREPARE},
        {"unprepare", PGD_PERM_ADMIN, pgd_op_unprepare, ARG_DEVICE, 0, C, A, PGD_AUDIT_PREPARE},
        {"reload", PGD_PERM_ADMIN, pgd_op_reload, 0, 0},
        {"untaint", PGD_PERM_ADMIN, pgd_op_untaint, ARG_DEVICE, 0, C, A, PGD_AUDIT_TAINT},
        /* watch also lets the policy's watchers in: its handler checks. */
        {"watch", PGD_PERM_CLIENT, pgd_op_watch, 0, 0},
};
#undef C
#undef A

static const struct pgd_op *op_lookup(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(op_table); i++)
                if (streq(op_table[i].name, name))
                        return &op_table[i];
        return NULL;
}

/* The keys of an op, "id" and "op" included, NULL-terminated. */
static void op_keys(const struct pgd_op *op, const char *keys[static 10])
{
        unsigned args = op->required | op->optional;
        size_t n = 0;

        keys[n++] = "id";
        keys[n++] = "op";
        if (args & (ARG_DEVICE | ARG_DEVICES))
                keys[n++] = "device";
        if (args & ARG_DEVICES)
                keys[n++] = "devices";
        if (args & ARG_TARGET) {
                keys[n++] = "domain";
                keys[n++] = "domid";
        }
        if (args & ARG_RDM)
                keys[n++] = "rdm_policy";
        if (args & ARG_VERSION)
                keys[n++] = "version";
        keys[n] = NULL;
}

int pgd_error_set(struct pgd_error *e, int code, const char *fmt, ...)
{
        va_list ap;

        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return code;
}

/* Enough of a client's string to name it in a message, without flooding it. */
#define QUOTE_MAX 64

static int bad_request(struct pgd_error *err, const char *fmt, ...) _printf_(2, 3);
static int bad_request(struct pgd_error *err, const char *fmt, ...)
{
        va_list ap;

        err->code = PG_ERR_BAD_REQUEST;
        err->check = "request";
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return PG_ERR_BAD_REQUEST;
}

static bool valid_domain_name(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > PGD_DOMAIN_NAME_MAX)
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* "devices": 1 to PGD_GROUP_MAX BDFs, none twice. */
static int parse_devices(const struct pgd_op *op, const json_t *v, struct pgd_request *req,
                         struct pgd_error *err)
{
        const json_t *e;
        size_t i;

        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > PGD_GROUP_MAX)
                return bad_request(err, "'devices' must be an array of 1 to %d PCI addresses",
                                   PGD_GROUP_MAX);
        json_array_foreach(v, i, e)
        {
                if (!json_is_string(e))
                        return bad_request(err, "'devices' must hold strings");
                if (pg_bdf_parse(json_string_value(e), &req->devices[i]) < 0)
                        return bad_request(err, "invalid device '%.*s': expected SSSS:BB:DD.F",
                                           QUOTE_MAX, json_string_value(e));
                for (size_t j = 0; j < i; j++)
                        if (req->devices[j] == req->devices[i])
                                return bad_request(err, "'devices' names %s twice",
                                                   pg_bdf_format(req->devices[i], req->bdf));
        }
        req->n_devices = json_array_size(v);
        req->sbdf = req->devices[0];
        pg_bdf_format(req->sbdf, req->bdf);
        req->has_device = true;
        (void)op;
        return 0;
}

static int parse_args(const struct pgd_op *op, const json_t *msg, struct pgd_request *req,
                      struct pgd_error *err)
{
        unsigned args = op->required | op->optional;
        const json_t *v;
        int r;

        if (args & ARG_DEVICES) {
                v = json_object_get(msg, "devices");
                if (v && json_object_get(msg, "device"))
                        return bad_request(err, "give either 'device' or 'devices', not both");
                if (v) {
                        r = parse_devices(op, v, req, err);
                        if (r != 0)
                                return r;
                }
        }
        if ((args & ARG_DEVICE) || ((args & ARG_DEVICES) && req->n_devices == 0)) {
                v = json_object_get(msg, "device");
                if (!v)
                        return bad_request(err, "op '%s' needs 'device'%s", op->name,
                                           args & ARG_DEVICES ? " or 'devices'" : "");
                if (!json_is_string(v))
                        return bad_request(err, "'device' must be a string");
                if (pg_bdf_parse(json_string_value(v), &req->sbdf) < 0)
                        return bad_request(err, "invalid device '%.*s': expected SSSS:BB:DD.F",
                                           QUOTE_MAX, json_string_value(v));
                pg_bdf_format(req->sbdf, req->bdf);
                req->has_device = true;
        }

        if (args & ARG_TARGET) {
                const json_t *name = json_object_get(msg, "domain");
                const json_t *domid = json_object_get(msg, "domid");

                if (name && domid)
                        return bad_request(err, "give either 'domain' or 'domid', not both");
                if (!name && !domid)
                        return bad_request(err, "op '%s' needs 'domain' (a name) or 'domid'",
                                           op->name);
                if (name) {
                        if (!json_is_string(name))
                                return bad_request(err, "'domain' must be a string");
                        if (!valid_domain_name(json_string_value(name)))
                                return bad_request(err,
                                                   "'domain' must be a name of 1 to %d "
                                                   "printable bytes",
                                                   PGD_DOMAIN_NAME_MAX);
                        req->domain = json_string_value(name);
                } else {
                        if (!json_is_integer(domid))
                                return bad_request(err, "'domid' must be an integer");
                        json_int_t n = json_integer_value(domid);
                        if (n < 0 || n > PG_DOMID_WIRE_MAX)
                                return bad_request(err, "'domid' must be between 0 and %u",
                                                   PG_DOMID_WIRE_MAX);
                        req->domid = (uint32_t)n;
                        req->has_domid = true;
                }
        }

        if (args & ARG_RDM) {
                v = json_object_get(msg, "rdm_policy");
                if (v) {
                        const char *s = json_string_value(v);
                        if (s && streq(s, "strict"))
                                req->rdm_relaxed = 0;
                        else if (s && streq(s, "relaxed"))
                                req->rdm_relaxed = 1;
                        else
                                return bad_request(err, "'rdm_policy' must be \"strict\" or "
                                                        "\"relaxed\"");
                }
        }

        if (args & ARG_VERSION) {
                v = json_object_get(msg, "version");
                if (!v)
                        return bad_request(err, "op '%s' needs 'version'", op->name);
                if (!json_is_integer(v))
                        return bad_request(err, "'version' must be an integer");
                req->version = json_integer_value(v);
                req->has_version = true;
        }
        return 0;
}

int pgd_request_parse(const json_t *msg, struct pgd_request *ret, enum pgd_perm *ret_perm,
                      bool *ret_has_id, struct pgd_error *err)
{
        struct pgd_request req = {.id = -1, .rdm_relaxed = -1};
        const char *keys[10], *bad_key = NULL;
        const json_t *id, *opname;
        const struct pgd_op *op;
        int r;

        *ret_has_id = false;
        ret->id = -1;
        if (!json_is_object(msg))
                return bad_request(err, "message is not a JSON object");

        id = json_object_get(msg, "id");
        if (!id)
                return bad_request(err, "missing 'id'");
        if (!json_is_integer(id))
                return bad_request(err, "'id' must be an integer");
        req.id = json_integer_value(id);
        ret->id = req.id;
        *ret_has_id = true;

        opname = json_object_get(msg, "op");
        if (!opname)
                return bad_request(err, "missing 'op'");
        if (!json_is_string(opname))
                return bad_request(err, "'op' must be a string");
        op = op_lookup(json_string_value(opname));
        if (!op)
                return bad_request(err, "unknown op '%.*s'", QUOTE_MAX, json_string_value(opname));
        req.op = op->name;

        op_keys(op, keys);
        if (pg_wire_check_keys(msg, keys, &bad_key) < 0)
                return bad_request(err, "unknown key '%.*s' for op '%s'", QUOTE_MAX, bad_key,
                                   op->name);

        r = parse_args(op, msg, &req, err);
        if (r != 0)
                return r;

        *ret = req;
        *ret_perm = op->perm;
        return 0;
}

/* ---- the context of one request ---- */

static int peer_copy(const struct pgd_peer *from, struct pgd_peer *to)
{
        *to = *from;
        to->groups = NULL;
        to->unit = NULL;
        if (from->n_groups > 0) {
                to->groups = calloc(from->n_groups, sizeof(*to->groups));
                if (!to->groups)
                        return -ENOMEM;
                memcpy(to->groups, from->groups, from->n_groups * sizeof(*to->groups));
        }
        if (from->unit) {
                to->unit = strdup(from->unit);
                if (!to->unit)
                        return -ENOMEM;
        }
        return 0;
}

static struct pgd_ctx *ctx_free(struct pgd_ctx *ctx)
{
        if (!ctx)
                return NULL;
        json_decref(ctx->msg);
        json_decref(ctx->reply);
        free(ctx->outcome.grants);
        pgd_peer_clear(&ctx->peer);
        pgd_host_clear(&ctx->host);
        free(ctx);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pgd_ctx *, ctx_free);

/*
 * The caller as the policy in force sees it, once: its identity, the names
 * of the clients it is, whether it is an admin.
 */
static int ctx_new(struct pgd_daemon *d, const struct pgd_peer *peer, struct pgd_ctx **ret)
{
        _cleanup_(ctx_freep) struct pgd_ctx *ctx = calloc(1, sizeof(*ctx));
        int r;

        if (!ctx)
                return -ENOMEM;
        ctx->d = d;
        ctx->req = (struct pgd_request){.id = -1, .rdm_relaxed = -1};
        r = peer_copy(peer, &ctx->peer);
        if (r < 0)
                return r;
        pgd_peer_identity(&ctx->peer, &ctx->id);
        if (d->policy) {
                ctx->n_clients = pg_policy_clients(d->policy, &ctx->id, ctx->clients,
                                                   ELEMENTSOF(ctx->clients));
                ctx->admin = pg_policy_is_admin(d->policy, &ctx->id);
        }
        *ret = TAKE_PTR(ctx);
        return 0;
}

/* The permission column of the table: the policy in force decides. */
static int authorize(const struct pgd_ctx *ctx, enum pgd_perm perm, struct pgd_error *err)
{
        const struct pgd_peer *peer = &ctx->peer;

        if (perm == PGD_PERM_ANYONE)
                return 0;
        err->check = "client";
        if (!ctx->d->policy)
                return pgd_error_set(err, PG_ERR_NOT_AUTHORIZED, "no policy is loaded");
        if (ctx->n_clients == 0)
                return pgd_error_set(err, PG_ERR_NOT_AUTHORIZED,
                                     "uid %u (gid %u, pid %d) is not a client the policy knows",
                                     (unsigned)peer->uid, (unsigned)peer->gid, (int)peer->pid);
        if (perm == PGD_PERM_ADMIN && !ctx->admin)
                return pgd_error_set(err, PG_ERR_NOT_AUTHORIZED,
                                     "uid %u is not an admin; op '%s' needs an admin client",
                                     (unsigned)peer->uid, ctx->req.op);
        err->check = NULL;
        return 0;
}

/* ---- replies and the audit record ---- */

json_t *pgd_request_error_reply(bool has_id, json_int_t id, int code, const char *message)
{
        json_t *reply = pg_wire_error_reply(has_id ? id : 0, code, message, 0, NULL,
                                            code == PG_ERR_BAD_REQUEST ? "request" : NULL);
        if (reply && !has_id && json_object_set_new(reply, "id", json_null()) < 0) {
                json_decref(reply);
                return NULL;
        }
        return reply;
}

static json_t *refusal(json_int_t id, int code, const struct pgd_error *err)
{
        json_t *reply = pg_wire_error_reply(id, code, err->message[0] ? err->message : NULL,
                                            err->hv_errno, err->rule[0] ? err->rule : NULL,
                                            err->check);
        char bdf[PG_BDF_MAX];

        /* A multi-device request: the device that was refused. */
        if (reply && err->has_device &&
            json_object_set_new(reply, "device", json_string(pg_bdf_format(err->device, bdf))) <
                    0) {
                json_decref(reply);
                return NULL;
        }
        return reply;
}

/*
 * The one audit record of a request's outcome: every refusal of an op the
 * table audits (and every refusal at the permission check, whatever the op),
 * and the change an audited op made.
 */
static void audit_outcome(const struct pgd_ctx *ctx, int code, bool at_door)
{
        const struct pgd_outcome *o = &ctx->outcome;

        if (!at_door && (!ctx->op || !ctx->op->audited))
                return;
        if (code != 0) {
                pgd_audit_refusal(ctx->d, &ctx->peer, &ctx->req, o->have_dom ? &o->dom : NULL,
                                  &ctx->err);
                return;
        }
        if (!o->decision)
                return; /* nothing changed: nothing to record */
        for (size_t i = 0; i < o->n_grants; i++)
                pgd_audit_grant(ctx->d, ctx->op->audit, ctx->req.op, &ctx->peer, &o->grants[i],
                                o->decision, 0, o->message);
        if (o->n_grants > 0)
                return;
        if (o->have_grant)
                pgd_audit_grant(ctx->d, ctx->op->audit, ctx->req.op, &ctx->peer, &o->grant,
                                o->decision, 0, o->message);
        else
                pgd_audit(ctx->d, &(struct pgd_audit_record){
                                          .kind = ctx->op->audit,
                                          .op = ctx->req.op,
                                          .sbdf = ctx->req.sbdf,
                                          .domid = -1,
                                          .peer = &ctx->peer,
                                          .decision = o->decision,
                                          .message = o->message,
                                  });
}

/* The end of a request: its audit record, and its reply (NULL on ENOMEM). */
static json_t *request_end(struct pgd_ctx *ctx, int r)
{
        if (r < 0) {
                log_error_errno(r, "Op '%s' failed: %m", ctx->req.op);
                pgd_error_set(&ctx->err, PG_ERR_INTERNAL, "internal error: %s", strerror(-r));
                r = PG_ERR_INTERNAL;
        }
        audit_outcome(ctx, r, false);
        if (r == 0)
                return TAKE_PTR(ctx->reply);
        return refusal(ctx->req.id, r, &ctx->err);
}

void pgd_request_finish(struct pgd_ctx *ctx, int code)
{
        json_t *reply = request_end(ctx, code);

        if (!reply)
                log_error("Failed to build the reply to request %" JSON_INTEGER_FORMAT
                          ": out of memory",
                          ctx->req.id);
        if (ctx->done)
                ctx->done(ctx->userdata, reply);
        else
                json_decref(reply);
        ctx_free(ctx);
}

void pgd_request_detach(struct pgd_ctx *ctx)
{
        ctx->done = NULL;
        ctx->userdata = NULL;
}

/*
 * The whole trust boundary for one line: size limit, strict parse, op table,
 * permission, handler. Returns the reply to send now, or NULL with ctx
 * handed over when a change waits (*ret_ctx).
 */
int pgd_request_handle(struct pgd_daemon *d, const struct pgd_peer *peer, const char *line,
                       size_t len, pgd_reply_fn done, void *userdata, struct pgd_ctx **ret_ctx,
                       json_t **ret_reply, bool *ret_watch)
{
        _cleanup_(ctx_freep) struct pgd_ctx *ctx = NULL;
        json_t *reply = NULL;
        enum pgd_perm perm;
        char why[PG_WIRE_WHY_MAX];
        bool has_id = false;
        int r;

        if (ret_ctx)
                *ret_ctx = NULL;
        if (ret_watch)
                *ret_watch = false;
        r = ctx_new(d, peer, &ctx);
        if (r < 0)
                return r;

        r = pg_wire_parse_why(line, len, &ctx->msg, why, sizeof(why));
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_debug("uid %u: refused a request: %s", (unsigned)peer->uid, why);
                reply = pgd_request_error_reply(false, 0, PG_ERR_BAD_REQUEST, why);
                goto done;
        }

        r = pgd_request_parse(ctx->msg, &ctx->req, &perm, &has_id, &ctx->err);
        if (r != 0) {
                log_debug("uid %u: refused a request: %s", (unsigned)peer->uid, ctx->err.message);
                reply = has_id ? refusal(ctx->req.id, r, &ctx->err)
                               : pgd_request_error_reply(false, 0, r, ctx->err.message);
                goto done;
        }
        ctx->op = op_lookup(ctx->req.op);

        r = authorize(ctx, perm, &ctx->err);
        if (r != 0) {
                audit_outcome(ctx, r, true);
                reply = refusal(ctx->req.id, r, &ctx->err);
                goto done;
        }

        ctx->reply = json_pack("{s:I, s:b}", "id", ctx->req.id, "ok", 1);
        if (!ctx->reply)
                return -ENOMEM;
        ctx->done = done;
        ctx->userdata = userdata;
        /* A change first needs a grant store it can write (written again), or is refused. */
        r = ctx->op->changes ? pgd_commit_usable(d, &ctx->err) : 0;
        if (r == 0)
                r = ctx->op->handler(ctx);
        if (ctx->waiting) {
                if (!ret_ctx) {
                        /* Cannot happen: without an event loop changes never wait. */
                        log_error("Request %" JSON_INTEGER_FORMAT " waits with no loop to end it",
                                  ctx->req.id);
                        pgd_request_detach(ctx);
                        TAKE_PTR(ctx);
                        return -EDEADLK;
                }
                *ret_ctx = TAKE_PTR(ctx);
                *ret_reply = NULL;
                return 0;
        }
        if (ret_watch)
                *ret_watch = r == 0 && ctx->watch;
        reply = request_end(ctx, r);

done:
        if (!reply)
                return -ENOMEM;
        *ret_reply = reply;
        return 0;
}

int pgd_request_run(struct pgd_daemon *d, const struct pgd_peer *peer,
                    const struct pgd_request *req, pgd_op_handler handler, json_t *reply,
                    struct pgd_error *err)
{
        _cleanup_(ctx_freep) struct pgd_ctx *ctx = NULL;
        _cleanup_(json_decrefp) json_t *end = NULL;
        int r;

        r = ctx_new(d, peer, &ctx);
        if (r < 0)
                return r;
        ctx->req = *req;
        ctx->reply = json_incref(reply);
        for (size_t i = 0; i < ELEMENTSOF(op_table) && !ctx->op; i++)
                if (op_table[i].handler == handler)
                        ctx->op = &op_table[i];
        if (!ctx->op)
                return -EINVAL;
        /* As pgd_request_handle() does it. */
        r = ctx->op->changes ? pgd_commit_usable(d, &ctx->err) : 0;
        if (r == 0)
                r = handler(ctx);
        if (ctx->waiting) {
                /* Cannot happen without an event loop: changes never wait there. */
                pgd_request_detach(ctx);
                TAKE_PTR(ctx);
                return -EDEADLK;
        }
        *err = ctx->err;
        end = request_end(ctx, r); /* the audit record; the reply is the caller's json */
        return r;
}

int pgd_request_reply_dump(const json_t *reply, char **ret, size_t *ret_len)
{
        _cleanup_(json_decrefp) json_t *refusal_reply = NULL;
        const json_t *id;
        int r;

        r = pg_wire_dump(reply, ret, ret_len);
        if (r != -EMSGSIZE)
                return r;

        /* The request was fine; its answer does not fit on the wire. Say so. */
        id = json_object_get(reply, "id");
        log_warning("A reply to request %" JSON_INTEGER_FORMAT " exceeds %d bytes; "
                    "refusing it as internal",
                    json_is_integer(id) ? json_integer_value(id) : (json_int_t)-1,
                    PG_WIRE_MAX_MESSAGE);
        refusal_reply = pgd_request_error_reply(
                json_is_integer(id), json_integer_value(id), PG_ERR_INTERNAL,
                "the reply would exceed 64 KiB, the protocol's limit for one message");
        if (!refusal_reply)
                return -ENOMEM;
        r = pg_wire_dump(refusal_reply, ret, ret_len);
        return r == -EMSGSIZE ? -ENOMEM : r;
}

/* ---- the two ops that belong to the front door ---- */

int pgd_op_hello(struct pgd_ctx *ctx)
{
        if (ctx->req.version != 1)
                return pgd_error_set(&ctx->err, PG_ERR_UNSUPPORTED_VERSION,
                                     "protocol version %" JSON_INTEGER_FORMAT
                                     " is not supported; this daemon speaks version 1",
                                     ctx->req.version);
        if (json_object_set_new(ctx->reply, "version", json_integer(1)) < 0 ||
            json_object_set_new(ctx->reply, "daemon", json_string("passguardd " PG_VERSION)) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_reload(struct pgd_ctx *ctx)
{
        struct pgd_daemon *d = ctx->d;
        int r = pgd_daemon_reload(d, &ctx->err);

        /* The names of the caller's clients pointed into the old policy. */
        ctx->n_clients = 0;
        if (r != 0)
                return r;
        if (json_object_set_new(ctx->reply, "policy", json_string(pg_policy_path(d->policy))) < 0 ||
            json_object_set_new(ctx->reply, "rules",
                                json_integer((json_int_t)pg_policy_n_rules(d->policy))) < 0)
                return -ENOMEM;
        return 0;
}
