/* SPDX-License-Identifier: MIT */
/*
 * The trust boundary (STYLE.md habit 2, after OpenSSH's mon_table): every
 * request is checked against one static table before any handler sees it.
 * Order: size, strict parse, id, op, keys and types, permission, handler.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit.h"
#include "log.h"
#include "pgd.h"
#include "server.h"

/* The arguments an op takes, besides "id" and "op". */
enum {
        ARG_DEVICE = 1 << 0,  /* "device": a BDF */
        ARG_TARGET = 1 << 1,  /* exactly one of "domain" (name) and "domid" */
        ARG_RDM = 1 << 2,     /* "rdm_policy": "strict" | "relaxed" */
        ARG_VERSION = 1 << 3, /* "version": integer */
};

static const struct op {
        const char *name;
        enum pgd_perm perm;
        pgd_op_handler handler;
        unsigned required; /* ARG_* that must be given */
        unsigned optional; /* ARG_* that may be given */
} op_table[] = {
        {"hello", PGD_PERM_ANYONE, pgd_op_hello, ARG_VERSION, 0},
        {"status", PGD_PERM_CLIENT, pgd_op_status, 0, 0},
        {"list", PGD_PERM_CLIENT, pgd_op_list, 0, 0},
        {"assign", PGD_PERM_CLIENT, pgd_op_assign, ARG_DEVICE | ARG_TARGET, ARG_RDM},
        {"release", PGD_PERM_CLIENT, pgd_op_release, ARG_DEVICE | ARG_TARGET, 0},
        {"explain", PGD_PERM_CLIENT, pgd_op_explain, ARG_DEVICE | ARG_TARGET, ARG_RDM},
        {"owner", PGD_PERM_CLIENT, pgd_op_owner, ARG_DEVICE, 0},
        /* prepare also lets a managed rule's clients in: its handler checks. */
        {"prepare", PGD_PERM_CLIENT, pgd_op_prepare, ARG_DEVICE, 0},
        {"unprepare", PGD_PERM_ADMIN, pgd_op_unprepare, ARG_DEVICE, 0},
        {"reload", PGD_PERM_ADMIN, pgd_op_reload, 0, 0},
};

static const struct op *op_lookup(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(op_table); i++)
                if (streq(op_table[i].name, name))
                        return &op_table[i];
        return NULL;
}

/* The keys of an op, "id" and "op" included, NULL-terminated. */
static void op_keys(const struct op *op, const char *keys[static 8])
{
        unsigned args = op->required | op->optional;
        size_t n = 0;

        keys[n++] = "id";
        keys[n++] = "op";
        if (args & ARG_DEVICE)
                keys[n++] = "device";
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

static int parse_args(const struct op *op, const json_t *msg, struct pgd_request *req,
                      struct pgd_error *err)
{
        unsigned args = op->required | op->optional;
        const json_t *v;

        if (args & ARG_DEVICE) {
                v = json_object_get(msg, "device");
                if (!v)
                        return bad_request(err, "op '%s' needs 'device'", op->name);
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
                        if (n < 0 || n > PGD_DOMID_MAX)
                                return bad_request(err, "'domid' must be between 0 and %d",
                                                   PGD_DOMID_MAX);
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
        const char *keys[8], *bad_key = NULL;
        const json_t *id, *opname;
        const struct op *op;
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

void pgd_peer_identity(const struct pgd_peer *peer, struct pg_policy_identity *ret)
{
        *ret = (struct pg_policy_identity){
                .uid = peer->uid,
                .gid = peer->gid,
                .groups = peer->groups,
                .n_groups = peer->n_groups,
                .unit = peer->unit,
        };
}

void pgd_peer_clear(struct pgd_peer *p)
{
        free(p->groups);
        free(p->unit);
        *p = (struct pgd_peer){0};
}

/* The permission column of the table: the policy in force decides. */
static int authorize(const struct pgd_daemon *d, const struct pgd_peer *peer,
                     const struct pgd_request *req, enum pgd_perm perm, struct pgd_error *err)
{
        struct pg_policy_identity id;

        if (perm == PGD_PERM_ANYONE)
                return 0;
        err->check = "client";
        if (!d->policy)
                return pgd_error_set(err, PG_ERR_NOT_AUTHORIZED, "no policy is loaded");
        pgd_peer_identity(peer, &id);
        if (!pg_policy_is_client(d->policy, &id))
                return pgd_error_set(err, PG_ERR_NOT_AUTHORIZED,
                                     "uid %u (gid %u, pid %d) is not a client the policy knows",
                                     (unsigned)peer->uid, (unsigned)peer->gid, (int)peer->pid);
        if (perm == PGD_PERM_ADMIN && !pg_policy_is_admin(d->policy, &id))
                return pgd_error_set(err, PG_ERR_NOT_AUTHORIZED,
                                     "uid %u is not an admin; op '%s' needs an admin client",
                                     (unsigned)peer->uid, req->op);
        err->check = NULL;
        return 0;
}

json_t *pgd_request_error_reply(bool has_id, json_int_t id, int code, const char *message)
{
        json_t *reply = pg_wire_error_reply(has_id ? id : 0, code, message, 0, NULL, NULL);
        if (reply && !has_id && json_object_set_new(reply, "id", json_null()) < 0) {
                json_decref(reply);
                return NULL;
        }
        return reply;
}

static json_t *refusal(json_int_t id, int code, const struct pgd_error *err)
{
        return pg_wire_error_reply(id, code, err->message[0] ? err->message : NULL, err->hv_errno,
                                   err->rule[0] ? err->rule : NULL, err->check);
}

int pgd_request_handle(struct pgd_daemon *d, const struct pgd_peer *peer, const char *line,
                       size_t len, json_t **ret_reply)
{
        _cleanup_(json_decrefp) json_t *msg = NULL, *reply = NULL;
        struct pgd_error err = {};
        struct pgd_request req;
        enum pgd_perm perm;
        char why[PG_WIRE_WHY_MAX];
        bool has_id = false;
        int r;

        r = pg_wire_parse_why(line, len, &msg, why, sizeof(why));
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_debug("uid %u: refused a request: %s", (unsigned)peer->uid, why);
                reply = pgd_request_error_reply(false, 0, PG_ERR_BAD_REQUEST, why);
                goto done;
        }

        r = pgd_request_parse(msg, &req, &perm, &has_id, &err);
        if (r != 0) {
                log_debug("uid %u: refused a request: %s", (unsigned)peer->uid, err.message);
                reply = has_id ? refusal(req.id, r, &err)
                               : pgd_request_error_reply(false, 0, r, err.message);
                goto done;
        }

        r = authorize(d, peer, &req, perm, &err);
        if (r != 0) {
                pgd_audit(d, &(struct pgd_audit_record){
                                     .kind = PGD_AUDIT_REFUSE,
                                     .op = req.op,
                                     .sbdf = req.has_device ? req.sbdf : UINT32_MAX,
                                     .domid = req.has_domid ? (int64_t)req.domid : -1,
                                     .domain_name = req.domain,
                                     .peer = peer,
                                     .decision = "refused",
                                     .error = r,
                                     .message = err.message,
                             });
                reply = refusal(req.id, r, &err);
                goto done;
        }

        reply = json_pack("{s:I, s:b}", "id", req.id, "ok", 1);
        if (!reply)
                return -ENOMEM;
        r = op_lookup(req.op)->handler(d, peer, &req, reply, &err);
        if (r != 0) {
                json_decref(TAKE_PTR(reply));
                if (r < 0) {
                        log_error_errno(r, "Op '%s' failed: %m", req.op);
                        pgd_error_set(&err, PG_ERR_INTERNAL, "internal error: %s", strerror(-r));
                        r = PG_ERR_INTERNAL;
                }
                reply = refusal(req.id, r, &err);
        }

done:
        if (!reply)
                return -ENOMEM;
        *ret_reply = TAKE_PTR(reply);
        return 0;
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

int pgd_op_hello(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                 json_t *reply, struct pgd_error *err)
{
        if (req->version != 1)
                return pgd_error_set(err, PG_ERR_UNSUPPORTED_VERSION,
                                     "protocol version %" JSON_INTEGER_FORMAT
                                     " is not supported; this daemon speaks version 1",
                                     req->version);
        if (json_object_set_new(reply, "version", json_integer(1)) < 0 ||
            json_object_set_new(reply, "daemon", json_string("passguardd " PG_VERSION)) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_op_reload(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                  json_t *reply, struct pgd_error *err)
{
        int r = pgd_daemon_reload(d, err);
        if (r != 0)
                return r;
        if (json_object_set_new(reply, "policy", json_string(pg_policy_path(d->policy))) < 0 ||
            json_object_set_new(reply, "rules",
                                json_integer((json_int_t)pg_policy_n_rules(d->policy))) < 0)
                return -ENOMEM;
        return 0;
}
