/* SPDX-License-Identifier: MIT */
/*
 * passguardd's front door.
 *
 * request.c is the trust boundary: one request line in, one reply out. It
 * parses strictly, looks the op up in a static table of { name, permission,
 * handler, arguments }, checks the arguments, then the client's permission,
 * and only then runs the handler (DESIGN.md invariant 3: well-formed, then
 * authorised). No I/O there, so the tests drive it directly.
 *
 * server.c is the event loop (sd-event, no threads): the listening socket
 * (socket activation or a path), the connections with their buffers, limits
 * and idle timers, signals, the watchdog and the host's watch fd.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "pgd.h"

/* The longest domain name a request may give (Xen's limit is 63 bytes + NUL). */
#define PGD_DOMAIN_NAME_MAX 63
/* A client whose unread replies exceed this is disconnected. */
#define PGD_OUTPUT_MAX (256 * 1024)
/*
 * A peer the policy does not know keeps its connection at most this long
 * (or idle_timeout, when shorter), whatever it sends: only hello is answered,
 * and its first refusal closes the connection.
 */
#define PGD_UNKNOWN_IDLE_TIMEOUT_SEC 5U

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
 * Without a loop done, userdata and ret_ctx may be NULL. Returns 0, or -ENOMEM.
 */
int pgd_request_handle(struct pgd_daemon *d, const struct pgd_peer *peer, const char *line,
                       size_t len, pgd_reply_fn done, void *userdata, struct pgd_ctx **ret_ctx,
                       json_t **ret_reply);

/*
 * Serialise a reply for the wire, '\n' included. A reply over
 * PG_WIRE_MAX_MESSAGE becomes an `internal` refusal with the same id that
 * says so, rather than nothing. Returns 0, or -ENOMEM.
 */
int pgd_request_reply_dump(const json_t *reply, char **ret, size_t *ret_len);

/* A refusal with "id": null, for a request whose id is unknown. */
json_t *pgd_request_error_reply(bool has_id, json_int_t id, int code, const char *message);

void pgd_peer_clear(struct pgd_peer *p);

/* ---- server.c ---- */

/*
 * The systemd unit of the process pid, as the kernel vouches for it: pinned
 * with a pidfd (SO_PEERPIDFD on sock_fd where available, else pidfd_open),
 * still alive after the lookup, and still of real uid uid. sock_fd may be -1.
 * Returns 0 and the unit, or -errno: the peer then has no unit (fail closed).
 */
int pgd_peer_unit(int sock_fd, pid_t pid, uid_t uid, char **ret_unit);

/* The loop, its signals (SIGTERM, SIGINT, SIGHUP) and the watchdog. d->event is set. */
int pgd_server_new(struct pgd_daemon *d, struct pgd_server **ret);
struct pgd_server *pgd_server_free(struct pgd_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pgd_server *, pgd_server_free);

/* The socket systemd passed, else d->cfg.socket_path, else PG_DEFAULT_SOCKET. */
int pgd_server_listen(struct pgd_server *s);
/* Put the backend's watch fd on the loop: on each event, rescan the domains. */
int pgd_server_watch_host(struct pgd_server *s);
/* The path the server listens on (NULL for a socket from systemd). */
const char *pgd_server_socket_path(const struct pgd_server *s);
/* Tell systemd (if it is listening) that the daemon serves: READY=1 and a STATUS= line. */
void pgd_server_notify_ready(const struct pgd_daemon *d);
/* Run until SIGTERM/SIGINT. Returns 0 or -errno. */
int pgd_server_run(struct pgd_server *s);
