/* SPDX-License-Identifier: MIT */
/*
 * libpassguard: one AF_UNIX stream connection per handle, one request at a
 * time, each a JSON object on one line, each answered in order by a reply
 * that echoes its id.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "passguard.h"
#include "pg-util.h"
#include "pg-wire.h"

#define PUBLIC __attribute__((visibility("default")))

struct pg {
        int fd;             /* -1 once the connection is unusable */
        json_int_t next_id;
        char *rbuf;         /* PG_WIRE_MAX_MESSAGE bytes */
        size_t rlen;
        char *message;      /* last error, or NULL for "" */
        char *check;
        char *rule;
        char *device;       /* a multi-device refusal's device, or NULL */
        char *reply;        /* the last reply line as received, or NULL */
        bool watching;      /* pg_watch() succeeded: the stream carries events */
};

struct pg_grant {
        char *device;
        uint32_t domid;
        char *domain_name;
        char *domain_uuid;
        char *rule;
        char *rdm_policy;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg *, pg_close);

static void clear_last(struct pg *pg)
{
        pg->message = pg_free(pg->message);
        pg->check = pg_free(pg->check);
        pg->rule = pg_free(pg->rule);
        pg->device = pg_free(pg->device);
}

/* Record a message for pg_last_message() and return r. */
_printf_(3, 4) static int fail(struct pg *pg, int r, const char *fmt, ...)
{
        va_list ap;
        char *m = NULL;

        clear_last(pg);
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        pg->message = m;
        return r;
}

/* A transport or protocol failure: the stream is out of step, so drop it. */
_printf_(3, 4) static int fail_transport(struct pg *pg, int r, const char *fmt, ...)
{
        va_list ap;
        char *m = NULL;

        clear_last(pg);
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        pg->message = m;
        pg->fd = safe_close(pg->fd);
        return r;
}

/* Returns 0 or -errno; the caller decides what a failure means. */
static int send_all(struct pg *pg, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = send(pg->fd, buf, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/*
 * After a failed send: whether the daemon left a line before it closed (a
 * refusal of the connection, such as limit-reached). Never waits. 0 and the
 * line into rbuf, or -errno.
 */
static int recv_pending_line(struct pg *pg)
{
        for (;;) {
                if (memchr(pg->rbuf, '\n', pg->rlen))
                        return 0;
                if (pg->rlen >= PG_WIRE_MAX_MESSAGE)
                        return -EMSGSIZE;
                ssize_t n = recv(pg->fd, pg->rbuf + pg->rlen, PG_WIRE_MAX_MESSAGE - pg->rlen,
                                 MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                pg->rlen += (size_t)n;
        }
}

/* Read one line (without its '\n') into a NUL-terminated copy. */
static int recv_line(struct pg *pg, char **ret, size_t *ret_len)
{
        for (;;) {
                char *nl = memchr(pg->rbuf, '\n', pg->rlen);
                if (nl) {
                        size_t len = (size_t)(nl - pg->rbuf);
                        char *line = malloc(len + 1);
                        if (!line)
                                return fail(pg, -ENOMEM, "out of memory");
                        memcpy(line, pg->rbuf, len);
                        line[len] = '\0';
                        pg->rlen -= len + 1;
                        memmove(pg->rbuf, nl + 1, pg->rlen);
                        *ret = line;
                        *ret_len = len;
                        return 0;
                }
                if (pg->rlen >= PG_WIRE_MAX_MESSAGE)
                        return fail_transport(pg, -EMSGSIZE,
                                              "reply longer than %d bytes from the daemon",
                                              PG_WIRE_MAX_MESSAGE);
                ssize_t n = recv(pg->fd, pg->rbuf + pg->rlen, PG_WIRE_MAX_MESSAGE - pg->rlen, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        return fail_transport(pg, r, "cannot read reply: %s", strerror(-r));
                }
                if (n == 0)
                        return fail_transport(pg, -ECONNRESET,
                                              "the daemon closed the connection");
                pg->rlen += (size_t)n;
        }
}

/*
 * Send request (an object without "id", consumed; NULL: out of memory
 * building it) and wait for its reply; the raw reply is kept for
 * pg_last_reply(). Returns 0 with the reply for "ok": true in *ret_reply
 * (may be NULL: dropped), a positive PG_ERR_* code for a refusal (the reply
 * is handed back too when keep_refusal is set), or -errno.
 */
static int call(struct pg *pg, json_t *request, bool keep_refusal, json_t **ret_reply)
{
        _cleanup_(json_decrefp) json_t *req = request;
        _cleanup_(freep) char *out = NULL, *line = NULL;
        _cleanup_(json_decrefp) json_t *reply = NULL;
        struct pg_wire_reply rep;
        const char *why;
        bool closing = false;
        size_t len;
        int r;

        if (!pg)
                return -EINVAL;
        if (!req)
                return fail(pg, -ENOMEM, "out of memory");
        if (pg->fd < 0)
                return fail(pg, -ENOTCONN, "the connection is closed after an earlier error");
        if (pg->watching)
                return fail(pg, -EBUSY,
                            "the handle watches events: open another one for requests");

        json_int_t id = pg->next_id++;
        if (json_object_set_new(req, "id", json_integer(id)) < 0)
                return fail(pg, -ENOMEM, "out of memory");
        r = pg_wire_dump(req, &out, &len);
        if (r == -EMSGSIZE)
                return fail(pg, r, "request longer than %d bytes", PG_WIRE_MAX_MESSAGE);
        if (r < 0)
                return fail(pg, r, "cannot encode request: %s", strerror(-r));
        r = send_all(pg, out, len);
        if (r < 0) {
                /* The daemon may have refused the connection and closed it: its
                 * refusal is then waiting to be read, and is the answer. */
                if ((r != -EPIPE && r != -ECONNRESET) || recv_pending_line(pg) < 0)
                        return fail_transport(pg, r, "cannot send request: %s", strerror(-r));
        }

        r = recv_line(pg, &line, &len);
        if (r < 0)
                return r;
        free(pg->reply);
        pg->reply = TAKE_PTR(line);
        r = pg_wire_parse(pg->reply, len, &reply, &why);
        if (r < 0)
                return fail_transport(pg, -EPROTO, "malformed reply from the daemon: %s", why);
        if (json_is_null(json_object_get(reply, "id")) &&
            json_is_false(json_object_get(reply, "ok"))) {
                /* A refusal of no request in particular (limit-reached, a line the
                 * daemon could not read): the daemon closes the connection after it. */
                if (json_object_set_new(reply, "id", json_integer(id)) < 0)
                        return fail_transport(pg, -ENOMEM, "out of memory");
                closing = true;
        }
        r = pg_wire_reply_decode(reply, &rep, &why);
        if (r < 0)
                return fail_transport(pg, -EPROTO, "malformed reply from the daemon: %s", why);
        if (rep.id != id)
                return fail_transport(pg, -EPROTO,
                                      "reply id %" JSON_INTEGER_FORMAT
                                      " does not match request id %" JSON_INTEGER_FORMAT,
                                      rep.id, id);

        clear_last(pg);
        if (closing)
                pg->fd = safe_close(pg->fd);
        if (rep.ok) {
                if (ret_reply)
                        *ret_reply = TAKE_PTR(reply);
                return 0;
        }

        pg->message = strdup(rep.message ?: pg_error_description(rep.code));
        pg->check = rep.check ? strdup(rep.check) : NULL;
        pg->rule = rep.rule ? strdup(rep.rule) : NULL;
        const char *device = json_string_value(json_object_get(reply, "device"));
        pg->device = device ? strdup(device) : NULL;
        if (!pg->message || (rep.check && !pg->check) || (rep.rule && !pg->rule) ||
            (device && !pg->device))
                return fail(pg, -ENOMEM, "out of memory");
        if (keep_refusal && ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return rep.code;
}

static json_t *request_new(const char *op)
{
        return json_pack("{s:s}", "op", op);
}

/* Build {"op", "device", "domain" or "domid", "rdm_policy"?}. */
static int target_request(struct pg *pg, const char *op, const char *domain, uint32_t domid,
                          const char *bdf, unsigned flags, json_t **ret)
{
        _cleanup_(json_decrefp) json_t *req = NULL;

        if (!bdf)
                return fail(pg, -EINVAL, "no device given");
        if (domain)
                req = json_pack("{s:s, s:s, s:s}", "op", op, "device", bdf, "domain", domain);
        else
                req = json_pack("{s:s, s:s, s:I}", "op", op, "device", bdf, "domid",
                                (json_int_t)domid);
        if (!req)
                return fail(pg, -EINVAL, "device or domain is not valid UTF-8");
        if ((flags & PG_ASSIGN_RDM_RELAXED) &&
            json_object_set_new(req, "rdm_policy", json_string("relaxed")) < 0)
                return fail(pg, -ENOMEM, "out of memory");
        *ret = TAKE_PTR(req);
        return 0;
}

PUBLIC int pg_connect(const char *path, struct pg **ret)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct pg *pg;
        int r;

        if (!ret)
                return -EINVAL;
        if (!path)
                path = secure_getenv("PASSGUARD_SOCKET");
        if (!path || !*path)
                path = PG_DEFAULT_SOCKET_PATH;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);

        pg = calloc(1, sizeof(*pg));
        if (!pg)
                return -ENOMEM;
        _cleanup_(pg_closep) struct pg *owned = pg;
        pg->fd = -1;
        pg->next_id = 1;
        pg->rbuf = malloc(PG_WIRE_MAX_MESSAGE);
        if (!pg->rbuf)
                return -ENOMEM;

        pg->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (pg->fd < 0)
                return -errno;
        if (connect(pg->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;

        r = call(pg, json_pack("{s:s, s:i}", "op", "hello", "version", PG_PROTOCOL_VERSION), false,
                 &reply);
        if (r != 0)
                return r;
        json_t *v = json_object_get(reply, "version");
        if (v && (!json_is_integer(v) || json_integer_value(v) != PG_PROTOCOL_VERSION))
                return -EPROTONOSUPPORT;

        clear_last(pg);
        *ret = TAKE_PTR(owned);
        return 0;
}

PUBLIC struct pg *pg_close(struct pg *pg)
{
        if (!pg)
                return NULL;
        safe_close(pg->fd);
        clear_last(pg);
        free(pg->reply);
        free(pg->rbuf);
        free(pg);
        return NULL;
}

PUBLIC const char *pg_last_message(const struct pg *pg)
{
        return pg && pg->message ? pg->message : "";
}

PUBLIC const char *pg_last_check(const struct pg *pg)
{
        return pg ? pg->check : NULL;
}

PUBLIC const char *pg_last_rule(const struct pg *pg)
{
        return pg ? pg->rule : NULL;
}

PUBLIC const char *pg_last_reply(const struct pg *pg)
{
        return pg ? pg->reply : NULL;
}

PUBLIC const char *pg_last_device(const struct pg *pg)
{
        return pg ? pg->device : NULL;
}

PUBLIC const char *pg_strerror(int code)
{
        if (code < 0)
                return strerror(-code);
        if (code == 0)
                return "success";
        return pg_error_name(code) ?: "unknown-error";
}

PUBLIC int pg_error_from_name(const char *name)
{
        return pg_error_lookup(name);
}

static char *dup_member(const json_t *obj, const char *key)
{
        const char *s = json_string_value(json_object_get(obj, key));
        return s ? strdup(s) : NULL;
}

PUBLIC struct pg_grant *pg_grant_free(struct pg_grant *g)
{
        if (!g)
                return NULL;
        free(g->device);
        free(g->domain_name);
        free(g->domain_uuid);
        free(g->rule);
        free(g->rdm_policy);
        free(g);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg_grant *, pg_grant_free);

/* A grant object of a reply into a struct pg_grant (domid when it names none). */
static int grant_from_json(struct pg *pg, const json_t *grant, uint32_t domid,
                           struct pg_grant **ret)
{
        _cleanup_(pg_grant_freep) struct pg_grant *g = calloc(1, sizeof(*g));
        if (!g)
                return fail(pg, -ENOMEM, "out of memory");
        g->device = dup_member(grant, "device");
        g->domain_name = dup_member(grant, "domain");
        g->domain_uuid = dup_member(grant, "domain_uuid");
        g->rule = dup_member(grant, "rule");
        g->rdm_policy = dup_member(grant, "rdm_policy");
        json_t *d = json_object_get(grant, "domid");
        g->domid = json_is_integer(d) ? (uint32_t)json_integer_value(d) : domid;
        *ret = TAKE_PTR(g);
        return 0;
}

PUBLIC int pg_assign(struct pg *pg, const char *domain, uint32_t domid, const char *bdf,
                     unsigned flags, struct pg_grant **ret)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;
        json_t *req = NULL;
        int r;

        if (!pg)
                return -EINVAL;
        r = target_request(pg, "assign", domain, domid, bdf, flags, &req);
        if (r < 0)
                return r;
        r = call(pg, req, false, &reply);
        if (r != 0)
                return r;
        if (!ret)
                return 0;

        json_t *grant = json_object_get(reply, "grant");
        if (!json_is_object(grant))
                return fail(pg, -EPROTO, "assign reply has no \"grant\" object");
        return grant_from_json(pg, grant, domid, ret);
}

PUBLIC int pg_release(struct pg *pg, const char *domain, uint32_t domid, const char *bdf)
{
        json_t *req = NULL;

        if (!pg)
                return -EINVAL;
        int r = target_request(pg, "release", domain, domid, bdf, 0, &req);
        if (r < 0)
                return r;
        return call(pg, req, false, NULL);
}

PUBLIC const char *pg_grant_device(const struct pg_grant *g)
{
        return g ? g->device : NULL;
}

PUBLIC uint32_t pg_grant_domid(const struct pg_grant *g)
{
        return g ? g->domid : 0;
}

PUBLIC const char *pg_grant_domain_name(const struct pg_grant *g)
{
        return g ? g->domain_name : NULL;
}

PUBLIC const char *pg_grant_domain_uuid(const struct pg_grant *g)
{
        return g ? g->domain_uuid : NULL;
}

PUBLIC const char *pg_grant_rule(const struct pg_grant *g)
{
        return g ? g->rule : NULL;
}

PUBLIC const char *pg_grant_rdm_policy(const struct pg_grant *g)
{
        return g ? g->rdm_policy : NULL;
}

/* Serialise a reply for the caller (compact, NUL-terminated, no newline). */
static int reply_to_string(struct pg *pg, const json_t *reply, char **ret)
{
        char *s = json_dumps(reply, JSON_COMPACT);
        if (!s)
                return fail(pg, -ENOMEM, "out of memory");
        *ret = s;
        return 0;
}

/* An explain request (one device or several), and its decision. */
static int explain_call(struct pg *pg, json_t *req, int *ret_allow, char **ret_json)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;
        _cleanup_(freep) char *text = NULL;
        int r;

        r = call(pg, req, false, &reply);
        if (r != 0)
                return r;
        const char *decision = json_string_value(json_object_get(reply, "decision"));
        if (!decision || (!streq(decision, "allow") && !streq(decision, "deny")))
                return fail(pg, -EPROTO, "explain reply has no valid \"decision\"");
        if (ret_json) {
                r = reply_to_string(pg, reply, &text);
                if (r < 0)
                        return r;
                *ret_json = TAKE_PTR(text);
        }
        if (ret_allow)
                *ret_allow = streq(decision, "allow");
        return 0;
}

PUBLIC int pg_explain(struct pg *pg, const char *domain, uint32_t domid, const char *bdf,
                      unsigned flags, int *ret_allow, char **ret_json)
{
        json_t *req = NULL;
        int r;

        if (!pg)
                return -EINVAL;
        r = target_request(pg, "explain", domain, domid, bdf, flags, &req);
        if (r < 0)
                return r;
        return explain_call(pg, req, ret_allow, ret_json);
}

PUBLIC int pg_owner(struct pg *pg, const char *bdf, int *ret_assigned, uint32_t *ret_domid,
                    int *ret_granted)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;
        int r;

        if (!pg)
                return -EINVAL;
        if (!bdf)
                return fail(pg, -EINVAL, "no device given");
        r = call(pg, json_pack("{s:s, s:s}", "op", "owner", "device", bdf), false, &reply);
        if (r != 0)
                return r;
        json_t *assigned = json_object_get(reply, "assigned");
        json_t *granted = json_object_get(reply, "granted");
        json_t *domid = json_object_get(reply, "domid");
        if (!json_is_boolean(assigned))
                return fail(pg, -EPROTO, "owner reply has no boolean \"assigned\"");
        if (ret_assigned)
                *ret_assigned = json_is_true(assigned);
        if (ret_domid)
                *ret_domid = json_is_integer(domid) ? (uint32_t)json_integer_value(domid)
                                                    : UINT32_MAX;
        if (ret_granted)
                *ret_granted = json_is_true(granted);
        return 0;
}

static int call_simple_json(struct pg *pg, const char *op, char **ret_json)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;

        if (!pg)
                return -EINVAL;
        int r = call(pg, request_new(op), false, &reply);
        if (r != 0)
                return r;
        if (!ret_json)
                return 0;
        return reply_to_string(pg, reply, ret_json);
}

PUBLIC int pg_list(struct pg *pg, char **ret_json)
{
        return call_simple_json(pg, "list", ret_json);
}

PUBLIC int pg_status(struct pg *pg, char **ret_json)
{
        return call_simple_json(pg, "status", ret_json);
}

PUBLIC int pg_reload(struct pg *pg)
{
        return call_simple_json(pg, "reload", NULL);
}

static int call_device(struct pg *pg, const char *op, const char *bdf)
{
        if (!pg)
                return -EINVAL;
        if (!bdf)
                return fail(pg, -EINVAL, "no device given");
        return call(pg, json_pack("{s:s, s:s}", "op", op, "device", bdf), false, NULL);
}

PUBLIC int pg_prepare(struct pg *pg, const char *bdf)
{
        return call_device(pg, "prepare", bdf);
}

PUBLIC int pg_unprepare(struct pg *pg, const char *bdf)
{
        return call_device(pg, "unprepare", bdf);
}

PUBLIC int pg_call_json(struct pg *pg, const char *request_json, char **ret_reply_json)
{
        _cleanup_(json_decrefp) json_t *req = NULL, *reply = NULL;
        const char *why;
        int r;

        if (!pg || !request_json)
                return -EINVAL;
        r = pg_wire_parse(request_json, strlen(request_json), &req, &why);
        if (r < 0)
                return fail(pg, r == -EMSGSIZE ? r : -EINVAL, "invalid request: %s", why);
        if (!json_is_string(json_object_get(req, "op")))
                return fail(pg, -EINVAL, "invalid request: no string \"op\"");
        if (json_object_get(req, "id"))
                return fail(pg, -EINVAL, "invalid request: \"id\" is chosen by the library");
        /* The reply would turn this connection into an event stream: pg_watch() does that. */
        if (streq(json_string_value(json_object_get(req, "op")), "watch"))
                return fail(pg, -EINVAL, "invalid request: \"watch\" goes through pg_watch()");

        r = call(pg, TAKE_PTR(req), true, &reply);
        if (r < 0)
                return r;
        if (ret_reply_json) {
                int k = reply_to_string(pg, reply, ret_reply_json);
                if (k < 0)
                        return k;
        }
        return r;
}

/* ---- LIBPASSGUARD_2: several devices at once, untaint, the event stream ---- */

/* {"op", "devices": [...], "domain" or "domid", "rdm_policy"?} */
static int many_request(struct pg *pg, const char *op, const char *domain, uint32_t domid,
                        const char *const *bdfs, size_t n, unsigned flags, json_t **ret)
{
        _cleanup_(json_decrefp) json_t *req = NULL, *devices = json_array();

        if (!bdfs || n == 0)
                return fail(pg, -EINVAL, "no device given");
        if (!devices)
                return fail(pg, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                json_t *s = bdfs[i] ? json_string(bdfs[i]) : NULL;
                if (!s || json_array_append_new(devices, s) < 0)
                        return fail(pg, -EINVAL, "device %zu is missing or not valid UTF-8", i);
        }
        if (domain)
                req = json_pack("{s:s, s:O, s:s}", "op", op, "devices", devices, "domain", domain);
        else
                req = json_pack("{s:s, s:O, s:I}", "op", op, "devices", devices, "domid",
                                (json_int_t)domid);
        if (!req)
                return fail(pg, -EINVAL, "the domain is not valid UTF-8");
        if ((flags & PG_ASSIGN_RDM_RELAXED) &&
            json_object_set_new(req, "rdm_policy", json_string("relaxed")) < 0)
                return fail(pg, -ENOMEM, "out of memory");
        *ret = TAKE_PTR(req);
        return 0;
}

PUBLIC struct pg_grant **pg_grants_free(struct pg_grant **grants)
{
        if (!grants)
                return NULL;
        for (struct pg_grant **g = grants; *g; g++)
                pg_grant_free(*g);
        free(grants);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg_grant **, pg_grants_free);

PUBLIC int pg_assign_many(struct pg *pg, const char *domain, uint32_t domid,
                          const char *const *bdfs, size_t n, unsigned flags,
                          struct pg_grant ***ret_grants)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;
        _cleanup_(pg_grants_freep) struct pg_grant **grants = NULL;
        const json_t *list;
        json_t *req = NULL;
        int r;

        if (!pg)
                return -EINVAL;
        r = many_request(pg, "assign", domain, domid, bdfs, n, flags, &req);
        if (r < 0)
                return r;
        r = call(pg, req, false, &reply);
        if (r != 0)
                return r;
        list = json_object_get(reply, "grants");
        if (!json_is_array(list) || json_array_size(list) != n)
                return fail(pg, -EPROTO, "assign reply has no \"grants\" array of %zu", n);
        if (!ret_grants)
                return 0;
        grants = calloc(n + 1, sizeof(*grants));
        if (!grants)
                return fail(pg, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                const json_t *g = json_array_get(list, i);
                if (!json_is_object(g))
                        return fail(pg, -EPROTO, "assign reply has a grant that is no object");
                r = grant_from_json(pg, g, domid, &grants[i]);
                if (r < 0)
                        return r;
        }
        *ret_grants = TAKE_PTR(grants);
        return 0;
}

PUBLIC int pg_explain_many(struct pg *pg, const char *domain, uint32_t domid,
                           const char *const *bdfs, size_t n, unsigned flags, int *ret_allow,
                           char **ret_json)
{
        json_t *req = NULL;
        int r;

        if (!pg)
                return -EINVAL;
        r = many_request(pg, "explain", domain, domid, bdfs, n, flags, &req);
        if (r < 0)
                return r;
        return explain_call(pg, req, ret_allow, ret_json);
}

PUBLIC int pg_untaint(struct pg *pg, const char *bdf)
{
        return call_device(pg, "untaint", bdf);
}

PUBLIC int pg_watch(struct pg *pg)
{
        int r, flags;

        if (!pg)
                return -EINVAL;
        r = call(pg, request_new("watch"), false, NULL);
        if (r != 0)
                return r;
        /* From here on the socket is read without waiting (pg_watch_next()). */
        flags = fcntl(pg->fd, F_GETFL);
        if (flags < 0 || fcntl(pg->fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return fail_transport(pg, -errno, "cannot watch: %s", strerror(errno));
        pg->watching = true;
        return 0;
}

PUBLIC int pg_watch_fd(const struct pg *pg)
{
        if (!pg)
                return -EINVAL;
        if (!pg->watching || pg->fd < 0)
                return -ENOTCONN;
        return pg->fd;
}

PUBLIC int pg_watch_next(struct pg *pg, char **ret_json)
{
        _cleanup_(json_decrefp) json_t *event = NULL;
        const char *why;
        char *nl, *line;
        size_t len;
        int r;

        if (!pg || !ret_json)
                return -EINVAL;
        if (!pg->watching)
                return fail(pg, -EINVAL, "the handle does not watch: call pg_watch() first");
        if (pg->fd < 0)
                return fail(pg, -ECONNRESET, "the daemon ended the event stream");
        while (!(nl = memchr(pg->rbuf, '\n', pg->rlen))) {
                if (pg->rlen >= PG_WIRE_MAX_MESSAGE)
                        return fail_transport(pg, -EMSGSIZE,
                                              "event longer than %d bytes from the daemon",
                                              PG_WIRE_MAX_MESSAGE);
                ssize_t n = recv(pg->fd, pg->rbuf + pg->rlen, PG_WIRE_MAX_MESSAGE - pg->rlen,
                                 MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return -EAGAIN;
                if (n < 0) {
                        r = -errno;
                        return fail_transport(pg, r, "cannot read an event: %s", strerror(-r));
                }
                if (n == 0)
                        return fail_transport(pg, -ECONNRESET, "the daemon ended the event stream");
                pg->rlen += (size_t)n;
        }
        len = (size_t)(nl - pg->rbuf);
        line = malloc(len + 1);
        if (!line)
                return fail(pg, -ENOMEM, "out of memory");
        memcpy(line, pg->rbuf, len);
        line[len] = '\0';
        pg->rlen -= len + 1;
        memmove(pg->rbuf, nl + 1, pg->rlen);
        r = pg_wire_parse(line, len, &event, &why);
        if (r < 0 || !json_is_string(json_object_get(event, "event"))) {
                free(line);
                return fail_transport(pg, -EPROTO, "malformed event from the daemon: %s",
                                      r < 0 ? why : "no string \"event\"");
        }
        free(pg->reply);
        pg->reply = line;
        *ret_json = strdup(line);
        if (!*ret_json)
                return fail(pg, -ENOMEM, "out of memory");
        return 0;
}
