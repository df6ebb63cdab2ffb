/* SPDX-License-Identifier: MIT */
/*
 * passguardd's front door (request.c): the trust boundary. One request line
 * in, one reply out. It parses strictly, looks the op up in a static table
 * of { name, permission, handler, arguments, changes state, audited },
 * checks the arguments, then the client's permission, and only then runs
 * the handler (DESIGN.md invariant 3: well-formed, then authorised). No
 * I/O, so the tests drive it directly.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "pgd.h"

/* The longest domain name a request may give (Xen's limit is 63 bytes + NUL). */
#define PGD_DOMAIN_NAME_MAX 63

enum pgd_perm {
        PGD_PERM_ANYONE, /* hello */
        PGD_PERM_CLIENT, /* a client the policy knows */
        PGD_PERM_ADMIN,  /* an admin client */
};

/*
 * Check a parsed request against the op table: an integer "id", a known
 * "op", only that op's keys, each of the right type. Fills *ret (pointers
 * into msg) and *ret_perm. Returns 0, or PG_ERR_BAD_REQUEST with err filled;
 * ret->id holds the request's id whenever it was an integer (else -1 and
 * *ret_has_id false).
 */
int pgd_request_parse(const json_t *msg, struct pgd_request *ret, enum pgd_perm *ret_perm,
                      bool *ret_has_id, struct pgd_error *err);

/*
 * The whole trust boundary for one line (its '\n' removed): size limit,
 * strict parse, op table, permission, handler. *ret_reply is the reply to
 * send now, or NULL when a change waits for the grant journal (only with an
 * event loop); its reply then goes to done(userdata, reply) (NULL on
 * ENOMEM), and *ret_ctx can be detached when the connection goes first.
 * Without a loop done, userdata and ret_ctx may be NULL. *ret_watch (may be
 * NULL) says that the request was a watch that succeeded: after its reply
 * the connection carries the event stream. Returns 0, or -ENOMEM.
 */
int pgd_request_handle(struct pgd_daemon *d, const struct pgd_peer *peer, const char *line,
                       size_t len, pgd_reply_fn done, void *userdata, struct pgd_ctx **ret_ctx,
                       json_t **ret_reply, bool *ret_watch);

/*
 * Serialise a reply for the wire, '\n' included. A reply over
 * PG_WIRE_MAX_MESSAGE becomes an `internal` refusal with the same id that
 * says so, rather than nothing. Returns 0, or -ENOMEM.
 */
int pgd_request_reply_dump(const json_t *reply, char **ret, size_t *ret_len);

/*
 * A refusal for a request whose id is unknown ("id": null) or known; a
 * bad-request names the check "request", as every refusal names its check.
 */
json_t *pgd_request_error_reply(bool has_id, json_int_t id, int code, const char *message);
