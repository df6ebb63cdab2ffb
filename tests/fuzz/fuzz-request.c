/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as one request line through the daemon's
 * trust boundary, as far as it goes without a caller: the strict line parser
 * (pg_wire_parse_why) and the op table's check of ops, keys and types
 * (pgd_request_parse). A line is either refused bad-request, with a reason,
 * check "request" and the id when it had one, or it becomes a request whose
 * every field holds what the op table promises the handlers. The refusal is
 * a reply that fits the wire.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg-wire.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ops[] = {"hello",   "status", "list",    "assign",    "release",
                                  "explain", "owner",  "prepare", "unprepare", "reload"};

static bool known_op(const char *op)
{
        for (size_t i = 0; i < ELEMENTSOF(ops); i++)
                if (op && streq(op, ops[i]))
                        return true;
        return false;
}

/* A refusal must serialise within the limit, be one line, and say bad-request for check "request".
 */
static void check_refusal(json_t *reply, bool has_id, json_int_t id)
{
        _cleanup_(freep) char *text = NULL;
        const json_t *v;
        size_t len;

        if (!reply)
                abort();
        if (pgd_request_reply_dump(reply, &text, &len) < 0 || len == 0 || text[len - 1] != '\n' ||
            memchr(text, '\n', len - 1))
                abort();
        if (!streq(json_string_value(json_object_get(reply, "error")) ?: "", "bad-request") ||
            !streq(json_string_value(json_object_get(reply, "check")) ?: "", "request") ||
            !json_is_false(json_object_get(reply, "ok")) ||
            !json_string_value(json_object_get(reply, "message")))
                abort();
        v = json_object_get(reply, "id");
        if (has_id ? !json_is_integer(v) || json_integer_value(v) != id : !json_is_null(v))
                abort();
        json_decref(reply);
}

static void check_request(const struct pgd_request *req, enum pgd_perm perm)
{
        char again[PG_BDF_MAX];
        uint32_t sbdf;

        if (!known_op(req->op) || perm > PGD_PERM_ADMIN)
                abort();
        if (req->has_device) {
                /* normalised: the text is the canonical form of the number */
                if (pg_bdf_parse(req->bdf, &sbdf) < 0 || sbdf != req->sbdf ||
                    !streq(pg_bdf_format(sbdf, again), req->bdf))
                        abort();
        }
        if (req->domain && req->has_domid)
                abort();
        if (req->domain && (!req->domain[0] || strlen(req->domain) > PGD_DOMAIN_NAME_MAX))
                abort();
        if (req->has_domid && req->domid > PG_DOMID_WIRE_MAX)
                abort();
        if (req->rdm_relaxed < -1 || req->rdm_relaxed > 1)
                abort();
        /* what a target op needs, it has */
        if ((streq(req->op, "assign") || streq(req->op, "release") || streq(req->op, "explain")) &&
            (!req->has_device || (!req->domain && !req->has_domid)))
                abort();
        if (streq(req->op, "hello") && !req->has_version)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(json_decrefp) json_t *msg = NULL;
        char why[PG_WIRE_WHY_MAX] = "";
        struct pgd_request req;
        struct pgd_error err = {};
        enum pgd_perm perm;
        bool has_id = false;
        int r;

        /* A trailing newline is how messages arrive; the daemon sees the line without it. */
        if (size > 0 && data[size - 1] == '\n')
                size--;
        r = pg_wire_parse_why((const char *)data, size, &msg, why, sizeof(why));
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                if ((r != -EMSGSIZE && r != -EBADMSG) || !why[0])
                        abort();
                check_refusal(pgd_request_error_reply(false, 0, PG_ERR_BAD_REQUEST, why), false, 0);
                return 0;
        }

        r = pgd_request_parse(msg, &req, &perm, &has_id, &err);
        if (r == 0) {
                if (!has_id)
                        abort();
                check_request(&req, perm);
                return 0;
        }
        if (r != PG_ERR_BAD_REQUEST || err.code != PG_ERR_BAD_REQUEST || !err.message[0] ||
            !err.check || !streq(err.check, "request") || (!has_id && req.id != -1))
                abort();
        check_refusal(has_id ? pg_wire_error_reply(req.id, r, err.message, 0, NULL, err.check)
                             : pgd_request_error_reply(false, 0, r, err.message),
                      has_id, req.id);
        return 0;
}
