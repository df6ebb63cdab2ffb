/* SPDX-License-Identifier: MIT */
/*
 * The event loop: sd-event alone, no threads. Everything that happens is an
 * event source on one loop: the listening socket, each connection, its idle
 * timer, the host's watch fd, SIGTERM/SIGINT/SIGHUP and the watchdog.
 *
 * A connection never blocks the loop: sockets are non-blocking, edge-triggered
 * (a wake-up reads until the socket is empty or the buffer, one message, is
 * full; epoll then need not look at the sockets already read on every turn),
 * and a turn handles at most REQUESTS_PER_TURN requests of one client; the
 * rest wait for later turns, taken round-robin with the other clients.
 * Replies are queued and sent when the socket is writable; a client is not
 * read from while it has replies unsent or requests unhandled, so one that
 * does not read its replies stalls only itself. A client that sends a line
 * too long, reads too little or says nothing for too long is disconnected.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-login.h>

#include "audit.h"
#include "commit.h"
#include "grants.h"
#include "log.h"
#include "pgd.h"
#include "reconcile.h"
#include "server.h"

#define SOCKET_GROUP "passguard"
#define ACCEPT_RETRY_USEC (100 * 1000ULL)
#define HOST_RESCAN_USEC (500 * 1000ULL) /* fallback without a watch fd */
/*
 * Requests handled for one client per turn of the loop. The rest of its
 * complete lines wait in its input buffer for the next turn (round-robin
 * over the clients), so that no client holds the loop for long.
 */
#define REQUESTS_PER_TURN 4
/* After its last reply, a connection we close is read (and discarded) this long at most. */
#define LINGER_USEC (1000 * 1000ULL)
/*
 * A connection's input buffer starts this small (requests are short) and
 * grows, for a line that needs it, up to one message; replies' buffers go
 * back to nothing once sent when they grew past OUT_KEEP.
 */
#define IN_MIN 4096U
#define OUT_KEEP (16U * 1024)
/* Below the connections' I/O: a burst of I/O is read before the queued requests run. */
#define WORK_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 10)
/*
 * Below the requests: the journal is synced once the requests at hand have
 * made their changes, so that they share the sync (group commit). A client
 * whose request waits reads nothing more, so the loop reaches this soon; the
 * guard timer makes sure it does within COMMIT_GUARD_USEC whatever else
 * keeps the loop busy.
 */
#define COMMIT_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 20)
#define COMMIT_GUARD_USEC (2 * 1000ULL)
/* The host's bookkeeping held back (hv_ops.hold) is made visible this soon. */
#define HOST_FLUSH_USEC (5 * 1000ULL)
/* A rollback the hypervisor refused is tried again this often. */
#define ROLLBACK_RETRY_USEC (1000 * 1000ULL)

struct client {
        struct pgd_server *server;
        struct client *prev, *next;
        int fd;
        sd_event_source *io;
        sd_event_source *idle;
        struct pgd_peer peer;
        /* Unhandled input: IN_MIN bytes, grown to PG_WIRE_MAX_MESSAGE for a line that needs it. */
        char *in;
        size_t in_len, in_cap;
        char *out; /* unsent replies: out[out_off .. out_len) */
        size_t out_off, out_len, out_alloc;
        struct pgd_ctx *pending; /* its request waits for the grant journal */
        /*
         * A known client's idle deadline, moved by every request it makes;
         * the timer is not moved each time: when it fires before the
         * deadline, it waits on until it.
         */
        uint64_t idle_until;
        bool known;    /* a client of the policy at accept: counts against max_connections */
        bool queued;   /* has complete lines waiting for a turn (the server's work source) */
        bool eof;      /* the client will send no more */
        bool closing;  /* handle nothing more; close once the output is flushed */
        bool draining; /* output flushed and shut down: discard input until EOF or the linger time */
        bool unread;   /* input was left in the socket (buffer full): no edge will say so again */
        bool dead;     /* close now */
        uint32_t io_events; /* what epoll watches for (EPOLLET aside) */
};

struct pgd_server {
        struct pgd_daemon *d;
        sd_event *event;
        int listen_fd;
        char *socket_path; /* set when the socket file is ours to remove */
        sd_event_source *listen_source;
        sd_event_source *listen_retry;
        sd_event_source *host_source;
        sd_event_source *work; /* defer: serves the queued clients, a few requests each */
        sd_event_source *commit;       /* defer: syncs the journal for the waiting changes */
        sd_event_source *commit_guard; /* time: ... at the latest COMMIT_GUARD_USEC later */
        sd_event_source *host_flush;   /* time: ends the backend's hold */
        sd_event_source *retry;        /* time: retries failed rollbacks */
        bool host_held;
        struct client *clients;
        unsigned n_clients;
        unsigned n_known, n_unknown; /* by their class at accept */
        unsigned n_queued;
};

static uint64_t now_usec(clockid_t clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* ---- reload ---- */

static void diag_format(const struct pg_policy_diag *g, char *buf, size_t size)
{
        if (g->line > 0)
                snprintf(buf, size, "%s:%d: %s", g->file, g->line, g->message);
        else
                snprintf(buf, size, "%s: %s", g->file, g->message);
}

void pgd_server_notify_ready(const struct pgd_daemon *d)
{
        sd_notifyf(false, "READY=1\nSTATUS=Serving %zu grant(s); policy %s, %zu rule(s)",
                   d->grants ? pgd_grants_count(d->grants) : 0, d->cfg.policy_path,
                   d->policy ? pg_policy_n_rules(d->policy) : 0);
}

int pgd_daemon_reload(struct pgd_daemon *d, struct pgd_error *err)
{
        _cleanup_(pg_policy_diags_clear) struct pg_policy_diags diags = {};
        struct pg_policy *p = NULL;
        int r;

        sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec(CLOCK_MONOTONIC));
        log_info("Reloading the policy from %s", d->cfg.policy_path);

        r = pg_policy_load(d->cfg.policy_path, &p, &diags);
        if (r < 0) {
                /* Keep the old policy; say everything that is wrong, as far as it fits. */
                size_t used = 0;
                char line[512];

                err->code = PG_ERR_POLICY_INVALID;
                err->check = NULL;
                err->message[0] = '\0';
                for (size_t i = 0; i < diags.n; i++) {
                        diag_format(&diags.v[i], line, sizeof(line));
                        log_error("%s", line);
                        size_t len = strlen(line), sep = used ? 2 : 0;
                        if (used + sep + len < sizeof(err->message)) {
                                memcpy(err->message + used, "; ", sep);
                                memcpy(err->message + used + sep, line, len + 1);
                                used += sep + len;
                        }
                }
                if (!used)
                        snprintf(err->message, sizeof(err->message), "%s: %s", d->cfg.policy_path,
                                 strerror(-r));
                log_error("The policy in %s is invalid; the old policy stays in force",
                          d->cfg.policy_path);
                pgd_audit(d, &(struct pgd_audit_record){
                                     .kind = PGD_AUDIT_RELOAD,
                                     .op = "reload",
                                     .sbdf = UINT32_MAX,
                                     .domid = -1,
                                     .decision = "refused",
                                     .error = PG_ERR_POLICY_INVALID,
                                     .message = err->message,
                             });
                pgd_server_notify_ready(d);
                return PG_ERR_POLICY_INVALID;
        }

        pg_policy_free(d->policy);
        d->policy = p;
        d->policy_loaded = time(NULL);
        /* Two policies' parse trees are gone: give their memory back. */
        malloc_trim(0);
        log_info("Policy reloaded from %s: %zu rule(s)", d->cfg.policy_path, pg_policy_n_rules(p));
        pgd_audit(d, &(struct pgd_audit_record){
                             .kind = PGD_AUDIT_RELOAD,
                             .op = "reload",
                             .sbdf = UINT32_MAX,
                             .domid = -1,
                             .decision = "reloaded",
                             .message = d->cfg.policy_path,
                     });
        pgd_server_notify_ready(d);
        return 0;
}

/* ---- connections ---- */

static struct client *client_free(struct client *c)
{
        if (!c)
                return NULL;
        if (c->server) {
                if (c->prev)
                        c->prev->next = c->next;
                else
                        c->server->clients = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                c->server->n_clients--;
                if (c->known)
                        c->server->n_known--;
                else
                        c->server->n_unknown--;
                if (c->queued)
                        c->server->n_queued--;
        }
        if (c->pending)
                pgd_request_detach(c->pending); /* its change goes on; the reply goes nowhere */
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->idle);
        safe_close(c->fd);
        pgd_peer_clear(&c->peer);
        free(c->in);
        free(c->out);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct client *, client_free);

/*
 * The systemd unit of a peer, as far as the kernel vouches for it. SO_PEERCRED
 * gives the pid the peer had when it connected; a pid can be reused once
 * that process is gone, and a lookup by pid alone could then name another
 * process's unit. So the process is pinned with a pidfd (SO_PEERPIDFD, where
 * the kernel and libc have it, names the peer itself; else pidfd_open() on
 * the pid), its unit and real uid are read, and the pidfd must still show
 * the process alive afterwards: while it lives, its pid names no other
 * process, so both reads were of the process the pidfd holds. With
 * sd_pidfd_get_unit() (systemd >= 253) the unit is read through the pidfd.
 *
 * The residual race, without SO_PEERPIDFD: the peer exits and its pid is
 * reused by a process of the same uid between accept() and pidfd_open().
 * That process's unit is then taken for the peer's. The uid check confines
 * the race to processes of the peer's own uid.
 *
 * Any failure fails closed: no unit, so rules that name a unit do not match.
 */
static int pidfd_alive(int pidfd)
{
        struct pollfd p = {.fd = pidfd, .events = POLLIN};

        /* A pidfd turns readable when its process exits. */
        if (poll(&p, 1, 0) < 0)
                return -errno;
        if (p.revents != 0)
                return -ESRCH;
#ifdef SYS_pidfd_send_signal
        /* Signal 0 checks existence; EPERM only says we may not signal it (no CAP_KILL). */
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 && errno != EPERM)
                return -errno;
#endif
        return 0;
}

/* The real uid of pid, from the "Uid:" line of /proc/PID/status. */
static int proc_real_uid(pid_t pid, uid_t *ret)
{
        _cleanup_(fclosep) FILE *f = NULL;
        char path[64], line[256];

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                unsigned long uid;
                if (sscanf(line, "Uid: %lu", &uid) == 1) {
                        *ret = (uid_t)uid;
                        return 0;
                }
        }
        return -ENODATA;
}

int pgd_peer_unit(int sock_fd, pid_t pid, uid_t uid, char **ret_unit)
{
        _cleanup_(closep) int pidfd = -1;
        _cleanup_(freep) char *unit = NULL;
        uid_t real_uid;
        int r;

        if (pid <= 0)
                return -ESRCH;
#if HAVE_SO_PEERPIDFD
        if (sock_fd >= 0) {
                socklen_t len = sizeof(pidfd);
                if (getsockopt(sock_fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
                        pidfd = -1; /* a kernel before 6.5: pidfd_open() below */
        }
#endif
        if (pidfd < 0) {
#ifdef SYS_pidfd_open
                pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
                if (pidfd < 0)
                        return -errno;
#else
                return -EOPNOTSUPP;
#endif
        }

#if HAVE_SD_PIDFD_GET_UNIT
        r = sd_pidfd_get_unit(pidfd, &unit);
#else
        r = sd_pid_get_unit(pid, &unit);
#endif
        if (r < 0)
                return r;
        r = pidfd_alive(pidfd);
        if (r < 0)
                return r;
        r = proc_real_uid(pid, &real_uid);
        if (r < 0)
                return r;
        if (real_uid != uid)
                return -ESRCH; /* another process has the pid now */
        r = pidfd_alive(pidfd); /* and the reads above were of the pinned process */
        if (r < 0)
                return r;
        *ret_unit = TAKE_PTR(unit);
        return 0;
}

/* Ask the kernel who is on the other end: SO_PEERCRED, SO_PEERGROUPS, the unit. */
static int peer_read(int fd, struct pgd_peer *ret)
{
        _cleanup_(freep) gid_t *groups = NULL;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        size_t n_groups = 0;
        char *unit = NULL;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;

        len = 0;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno != ERANGE &&
            errno != ENOPROTOOPT)
                return -errno;
        if (len > 0) {
                groups = malloc(len);
                if (!groups)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                        return -errno;
                n_groups = len / sizeof(gid_t);
        }

        if (pgd_peer_unit(fd, cred.pid, cred.uid, &unit) < 0)
                unit = NULL; /* none we can vouch for: the policy matches it by uid/gid only */

        *ret = (struct pgd_peer){
                .uid = cred.uid,
                .gid = cred.gid,
                .pid = cred.pid,
                .groups = TAKE_PTR(groups),
                .n_groups = n_groups,
                .unit = unit,
        };
        return 0;
}

/* Whether the policy in force knows the peer. */
static bool peer_is_client(const struct pgd_daemon *d, const struct pgd_peer *peer)
{
        struct pg_policy_identity id;

        if (!d->policy)
                return false;
        pgd_peer_identity(peer, &id);
        return pg_policy_is_client(d->policy, &id);
}

static bool output_pending(const struct client *c)
{
        return c->out_off < c->out_len;
}

static bool has_line(const struct client *c)
{
        return memchr(c->in, '\n', c->in_len) != NULL;
}

static void client_set_timer(struct client *c, uint64_t usec)
{
        if (sd_event_source_set_time_relative(c->idle, usec) < 0 ||
            sd_event_source_set_enabled(c->idle, SD_EVENT_ONESHOT) < 0)
                c->dead = true;
}

/*
 * After anything happened on a connection: what to wait for next. A client
 * with unsent output or complete lines not yet handled is not read from, so
 * that a client that sends faster than it reads is pushed back by the
 * kernel's socket buffers instead of growing ours.
 */
static void client_update(struct client *c)
{
        struct pgd_server *s = c->server;
        uint32_t events = 0;
        bool queue;

        if (c->dead)
                return;

        if (c->closing && !c->draining && !output_pending(c)) {
                /* The last reply is out: say so, then read what is still coming
                 * and drop it, so that closing does not reset the connection
                 * before the client read the reply. */
                if (shutdown(c->fd, SHUT_WR) < 0) {
                        c->dead = true;
                        return;
                }
                c->draining = true;
                client_set_timer(c, LINGER_USEC);
                if (c->dead)
                        return;
        }

        queue = !c->closing && !output_pending(c) && !c->pending && has_line(c);
        if (queue != c->queued) {
                c->queued = queue;
                if (queue)
                        s->n_queued++;
                else
                        s->n_queued--;
        }
        if (queue && sd_event_source_set_enabled(s->work, SD_EVENT_ONESHOT) < 0)
                c->dead = true;

        if (c->draining)
                events |= EPOLLIN;
        else if (!c->closing && !c->eof && !queue && !output_pending(c) &&
                 c->in_len < PG_WIRE_MAX_MESSAGE)
                events |= EPOLLIN; /* also while a request waits: its next lines only queue */
        if (output_pending(c))
                events |= EPOLLOUT;
        if (!events && !queue && !c->pending) {
                /* Nothing more to read, write or handle: done. */
                c->dead = true;
                return;
        }
        /* sd-event changes an edge-triggered source even when nothing changed: not here. */
        if (events & EPOLLIN)
                events |= EPOLLRDHUP; /* so that a short read can tell "empty" from "shut down" */
        if (events && events != c->io_events) {
                if (sd_event_source_set_io_events(c->io, events | EPOLLET) < 0)
                        c->dead = true;
                c->io_events = events;
        }
        if ((events & EPOLLIN) && c->unread) {
                /* Input waits in the socket and no edge will come: add it to epoll again. */
                c->unread = false;
                if (sd_event_source_set_enabled(c->io, SD_EVENT_OFF) < 0)
                        c->dead = true;
        }
        if (sd_event_source_set_enabled(c->io, events ? SD_EVENT_ON : SD_EVENT_OFF) < 0)
                c->dead = true;
}

static void client_flush(struct client *c)
{
        while (c->out_off < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        log_debug_errno(-errno, "uid %u: write failed, disconnecting: %m",
                                        (unsigned)c->peer.uid);
                        c->dead = true;
                        return;
                }
                c->out_off += (size_t)n;
        }
        if (c->out_off == c->out_len) {
                c->out_off = c->out_len = 0;
                if (c->out_alloc > OUT_KEEP) {
                        c->out = pg_free(c->out);
                        c->out_alloc = 0;
                }
        }
}

/* Queue a reply (consumes it) and try to send it at once. */
static void client_send(struct client *c, json_t *reply)
{
        char *buf = NULL;
        size_t len;
        int r;

        r = pgd_request_reply_dump(reply, &buf, &len);
        json_decref(reply);
        if (r < 0) {
                log_error_errno(r, "Failed to serialise a reply: %m");
                c->dead = true;
                return;
        }
        if (c->out_len - c->out_off + len > PGD_OUTPUT_MAX) {
                log_warning("uid %u pid %d does not read its replies; disconnecting",
                            (unsigned)c->peer.uid, (int)c->peer.pid);
                free(buf);
                c->dead = true;
                return;
        }
        if (c->out_len + len > c->out_alloc) {
                size_t want = c->out_len + len;
                char *p = realloc(c->out, want);
                if (!p) {
                        free(buf);
                        c->dead = true;
                        return;
                }
                c->out = p;
                c->out_alloc = want;
        }
        memcpy(c->out + c->out_len, buf, len);
        c->out_len += len;
        free(buf);
        client_flush(c);
}

static void client_process(struct client *c, unsigned budget);

/* A reply is out: the idle clock starts again, or a stranger's refusal ends its connection. */
static void client_replied(struct client *c, json_t *reply)
{
        const struct pgd_config *cfg = &c->server->d->cfg;
        bool refused = !json_is_true(json_object_get(reply, "ok"));

        client_send(c, reply);
        if (c->dead)
                return;
        if (peer_is_client(c->server->d, &c->peer)) {
                /* A complete request: the idle clock starts again. */
                uint64_t now = 0;
                if (sd_event_now(c->server->event, CLOCK_MONOTONIC, &now) < 0)
                        client_set_timer(c, cfg->idle_timeout_sec * 1000000ULL);
                else
                        c->idle_until = now + cfg->idle_timeout_sec * 1000000ULL;
                return;
        }
        /* A peer the policy does not know keeps its slot only until its idle
         * time is up (requests do not extend it), and not past a refusal. */
        if (refused) {
                log_debug("uid %u pid %d is not a client; closing after the refusal",
                          (unsigned)c->peer.uid, (int)c->peer.pid);
                c->closing = true;
        }
}

/* The reply of a request that waited for the grant journal. */
static void client_on_reply(void *userdata, json_t *reply)
{
        struct client *c = userdata;

        c->pending = NULL;
        if (!reply)
                c->dead = true;
        else
                client_replied(c, reply);
        client_process(c, REQUESTS_PER_TURN);
        client_update(c);
        if (c->dead)
                client_free(c);
}

static void client_handle_line(struct client *c, const char *line, size_t len)
{
        struct pgd_daemon *d = c->server->d;
        json_t *reply = NULL;
        int r;

        pgd_server_hold_host(d);
        r = pgd_request_handle(d, &c->peer, line, len, client_on_reply, c, &c->pending, &reply);
        if (r < 0) {
                log_error_errno(r, "Failed to handle a request: %m");
                c->dead = true;
                return;
        }
        if (reply)
                client_replied(c, reply);
        /* else: the reply comes with client_on_reply() once the change is durable */
}

/* Handle up to budget complete lines, while the output is flushed. */
static void client_process(struct client *c, unsigned budget)
{
        size_t start = 0;

        for (unsigned i = 0; i < budget; i++) {
                if (c->dead || c->closing || c->pending || output_pending(c))
                        break;
                char *nl = memchr(c->in + start, '\n', c->in_len - start);
                if (!nl)
                        break;
                size_t len = (size_t)(nl - (c->in + start));
                client_handle_line(c, c->in + start, len);
                start += len + 1;
        }
        if (c->dead)
                return;
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if (c->in_len < IN_MIN && c->in_cap > IN_MIN) {
                char *p = realloc(c->in, IN_MIN);
                if (p) {
                        c->in = p;
                        c->in_cap = IN_MIN;
                }
        }

        if (!c->closing && c->in_len == PG_WIRE_MAX_MESSAGE && !has_line(c)) {
                log_warning("uid %u pid %d sent a line over %d bytes; disconnecting",
                            (unsigned)c->peer.uid, (int)c->peer.pid, PG_WIRE_MAX_MESSAGE);
                client_send(c, pgd_request_error_reply(false, 0, PG_ERR_BAD_REQUEST,
                                                       "message too long"));
                c->closing = true;
        }
}

/* Input after the last reply: read and dropped, until EOF or the linger time is up. */
static void client_drain(struct client *c)
{
        char buf[4096];

        for (int i = 0; i < 16; i++) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                c->dead = true;
                        return;
                }
                if (n == 0) {
                        c->dead = true;
                        return;
                }
        }
        c->unread = true; /* more next turn */
}

/* Read until the socket is empty (its edge is consumed) or the buffer holds one message. */
static void client_read(struct client *c, bool shut_down)
{
        for (;;) {
                if (c->in_len == c->in_cap && c->in_cap < PG_WIRE_MAX_MESSAGE) {
                        /* Room for more: up to one message, for a line that needs it. */
                        size_t cap = c->in_cap * 2 < PG_WIRE_MAX_MESSAGE ? c->in_cap * 2
                                                                         : PG_WIRE_MAX_MESSAGE;
                        char *p = realloc(c->in, cap);
                        if (!p) {
                                c->dead = true;
                                return;
                        }
                        c->in = p;
                        c->in_cap = cap;
                }
                if (c->in_len == c->in_cap) {
                        c->unread = true; /* the rest stays in the socket */
                        break;
                }
                size_t want = c->in_cap - c->in_len;
                ssize_t n = recv(c->fd, c->in + c->in_len, want, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                c->dead = true;
                        break;
                }
                if (n == 0) {
                        c->eof = true;
                        break;
                }
                c->in_len += (size_t)n;
                /*
                 * Less than asked for: the socket was empty (a stream socket
                 * gives what it holds), and what arrives later is a new edge;
                 * unless the peer shut down, whose EOF is no new edge.
                 */
                if ((size_t)n < want && !shut_down)
                        break;
        }
        if (c->dead)
                return;
        /* A few requests now; the rest on later turns of the loop. */
        client_process(c, REQUESTS_PER_TURN);
}

static int on_client_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        struct client *c = userdata;

        if (revents & EPOLLIN) {
                if (c->draining)
                        client_drain(c);
                else if (!c->closing && !c->eof)
                        client_read(c, revents & EPOLLRDHUP);
        }
        if (!c->dead && (revents & EPOLLOUT)) {
                client_flush(c);
                /* The output is out: the lines waiting for it may go on now. */
                if (!c->dead && !output_pending(c))
                        client_process(c, REQUESTS_PER_TURN);
        }
        if (!c->dead && (revents & EPOLLERR))
                c->dead = true;
        if (!c->dead && (revents & EPOLLHUP) && !(revents & EPOLLIN))
                c->dead = true; /* the peer is gone: its replies have nowhere to go */
        client_update(c);
        if (c->dead)
                client_free(c);
        return 0;
}

/* One turn for every client with requests waiting: a few requests each, round-robin. */
static int on_work(sd_event_source *source, void *userdata)
{
        struct pgd_server *s = userdata;
        struct client *next;

        for (struct client *c = s->clients; c; c = next) {
                next = c->next;
                if (!c->queued)
                        continue;
                client_process(c, REQUESTS_PER_TURN);
                client_update(c);
                if (c->dead)
                        client_free(c);
        }
        return 0;
}

static int on_client_idle(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct client *c = userdata;

        if (!c->draining && !c->closing && c->idle_until > usec) {
                /* It made requests since the timer was set: wait until its deadline. */
                if (sd_event_source_set_time(source, c->idle_until) >= 0 &&
                    sd_event_source_set_enabled(source, SD_EVENT_ONESHOT) >= 0)
                        return 0;
        }
        if (!c->draining)
                log_debug("uid %u pid %d idle for too long; disconnecting", (unsigned)c->peer.uid,
                          (int)c->peer.pid);
        client_free(c);
        return 0;
}

/* Takes ownership of fd. */
static int client_new(struct pgd_server *s, int fd, struct pgd_peer *peer, bool known)
{
        _cleanup_(client_freep) struct client *c = NULL;
        const struct pgd_config *cfg = &s->d->cfg;
        unsigned idle_sec = cfg->idle_timeout_sec;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        c->peer = *peer;
        c->known = known;
        *peer = (struct pgd_peer){0};
        c->in = malloc(IN_MIN);
        if (!c->in)
                return -ENOMEM;
        c->in_cap = IN_MIN;

        if (!known && idle_sec > PGD_UNKNOWN_IDLE_TIMEOUT_SEC)
                idle_sec = PGD_UNKNOWN_IDLE_TIMEOUT_SEC;
        c->io_events = EPOLLIN | EPOLLRDHUP;
        r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN | EPOLLRDHUP | EPOLLET, on_client_io, c);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(s->event, &c->idle, CLOCK_MONOTONIC,
                                       idle_sec * 1000000ULL, 0, on_client_idle, c);
        if (r < 0)
                return r;

        c->server = s;
        c->next = s->clients;
        if (s->clients)
                s->clients->prev = c;
        s->clients = c;
        s->n_clients++;
        if (known)
                s->n_known++;
        else
                s->n_unknown++;
        TAKE_PTR(c);
        return 0;
}

/* One error line to a connection we will not serve, then close it (takes fd). */
static void refuse_connection(int fd, const char *message)
{
        json_t *reply = pgd_request_error_reply(false, 0, PG_ERR_LIMIT_REACHED, message);
        char *buf = NULL;
        size_t len;

        if (reply && pg_wire_dump(reply, &buf, &len) >= 0)
                (void)!send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        free(buf);
        json_decref(reply);
        safe_close(fd);
}

/* Connections of clients the policy knows, from uid. */
static unsigned known_clients_of_uid(const struct pgd_server *s, uid_t uid)
{
        unsigned n = 0;

        for (const struct client *c = s->clients; c; c = c->next)
                if (c->known && c->peer.uid == uid)
                        n++;
        return n;
}

static int on_accept_retry(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct pgd_server *s = userdata;

        s->listen_retry = sd_event_source_disable_unref(s->listen_retry);
        sd_event_source_set_enabled(s->listen_source, SD_EVENT_ON);
        return 0;
}

/*
 * Whether a new connection fits. Clients the policy knows and peers it does
 * not know have separate pools, so that strangers, however many, never take
 * a known client's slot: unknown peers share max_unknown_connections, known
 * clients max_connections and max_connections_per_uid. Fills message when not.
 */
static bool connection_fits(const struct pgd_server *s, const struct pgd_peer *peer, bool known,
                            char *message, size_t size)
{
        const struct pgd_config *cfg = &s->d->cfg;

        if (!known) {
                if (s->n_unknown < cfg->max_unknown_connections)
                        return true;
                log_warning("Refusing a connection from uid %u, not a client of the policy: "
                            "%u such connections already",
                            (unsigned)peer->uid, s->n_unknown);
                snprintf(message, size,
                         "too many connections from peers the policy does not know (limit %u)",
                         cfg->max_unknown_connections);
                return false;
        }
        if (s->n_known >= cfg->max_connections) {
                log_warning("Refusing a connection from uid %u: %u connections already",
                            (unsigned)peer->uid, s->n_known);
                snprintf(message, size, "too many connections (limit %u)", cfg->max_connections);
                return false;
        }
        if (known_clients_of_uid(s, peer->uid) >= cfg->max_connections_per_uid) {
                log_warning("Refusing a connection from uid %u: its limit of %u reached",
                            (unsigned)peer->uid, cfg->max_connections_per_uid);
                snprintf(message, size, "too many connections from uid %u (limit %u)",
                         (unsigned)peer->uid, cfg->max_connections_per_uid);
                return false;
        }
        return true;
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        struct pgd_server *s = userdata;
        struct pgd_peer peer = {};
        char message[128];
        bool known;
        int cfd, r;

        cfd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                r = -errno;
                if (r == -EAGAIN || r == -EINTR || r == -ECONNABORTED)
                        return 0;
                log_warning_errno(r, "Failed to accept a connection: %m");
                /* Out of fds or memory: pause accepting briefly rather than spin. */
                if (!s->listen_retry &&
                    sd_event_add_time_relative(s->event, &s->listen_retry, CLOCK_MONOTONIC,
                                               ACCEPT_RETRY_USEC, 0, on_accept_retry, s) >= 0)
                        sd_event_source_set_enabled(s->listen_source, SD_EVENT_OFF);
                return 0;
        }

        r = peer_read(cfd, &peer);
        if (r < 0) {
                log_warning_errno(r, "Failed to identify a client, closing: %m");
                safe_close(cfd);
                return 0;
        }

        known = peer_is_client(s->d, &peer);
        if (!connection_fits(s, &peer, known, message, sizeof(message))) {
                refuse_connection(cfd, message);
                pgd_peer_clear(&peer);
                return 0;
        }

        log_debug("Connection from uid %u gid %u pid %d unit %s%s", (unsigned)peer.uid,
                  (unsigned)peer.gid, (int)peer.pid, peer.unit ?: "-",
                  known ? "" : " (not a client of the policy)");
        r = client_new(s, cfd, &peer, known);
        pgd_peer_clear(&peer);
        if (r < 0)
                log_warning_errno(r, "Failed to set up a connection: %m");
        return 0;
}

/* ---- the listening socket ---- */

static int mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_(freep) char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *slash = '/';
        }
        return 0;
}

/* Remove a socket file left by a daemon that died; never one still listening. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa)
{
        _cleanup_(closep) int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return log_error_errno(-EEXIST, "%s exists and is not a socket; not replacing it",
                                       path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
                return log_error_errno(-EADDRINUSE, "Another daemon is listening on %s", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(-errno, "Failed to remove the stale socket %s: %m", path);
        return 0;
}

static int socket_create(const char *path, int *ret_fd)
{
        _cleanup_(closep) int fd = -1;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct group grp, *g = NULL;
        char buf[1024];
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "Socket path %s is too long", path);
        strcpy(sa.sun_path, path);

        r = mkdir_parents(path, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory of %s: %m", path);
        r = remove_stale_socket(path, &sa);
        if (r < 0)
                return r;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to create a socket: %m");
        /* Born 0600, then opened to the group: never briefly world-accessible. */
        mode_t old = umask(0177);
        r = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
        if (r < 0)
                r = -errno;
        umask(old);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", path);

        if (getgrnam_r(SOCKET_GROUP, &grp, buf, sizeof(buf), &g) == 0 && g &&
            chown(path, (uid_t)-1, g->gr_gid) < 0)
                log_warning_errno(-errno, "Failed to give %s to group %s: %m", path, SOCKET_GROUP);
        if (chmod(path, 0660) < 0)
                return log_error_errno(-errno, "Failed to chmod %s: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(-errno, "Failed to listen on %s: %m", path);

        *ret_fd = TAKE_FD(fd);
        return 0;
}

int pgd_server_listen(struct pgd_server *s)
{
        const char *path = s->d->cfg.socket_path ?: PG_DEFAULT_SOCKET;
        int fd = -1, n, r;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Failed to get the sockets from systemd: %m");
        if (n > 1)
                return log_error_errno(-EINVAL, "systemd passed %d sockets; expected one", n);
        if (n == 1) {
                fd = SD_LISTEN_FDS_START;
                r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
                if (r < 0)
                        return log_error_errno(r, "Failed to check the socket from systemd: %m");
                if (r == 0)
                        return log_error_errno(-EINVAL, "The socket from systemd is not a "
                                                        "listening AF_UNIX stream socket");
                if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                        return log_error_errno(-errno, "Failed to make the socket "
                                                       "non-blocking: %m");
                log_info("Listening on the socket passed by systemd");
        } else {
                r = socket_create(path, &fd);
                if (r < 0)
                        return r;
                s->socket_path = strdup(path);
                if (!s->socket_path) {
                        safe_close(fd);
                        return -ENOMEM;
                }
                log_info("Listening on %s", path);
        }
        s->listen_fd = fd;

        r = sd_event_add_io(s->event, &s->listen_source, fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the listening socket: %m");
        return 0;
}

const char *pgd_server_socket_path(const struct pgd_server *s)
{
        return s->socket_path;
}

/* ---- the host ---- */

static void host_changed(struct pgd_server *s)
{
        int r;

        pgd_server_hold_host(s->d);
        r = pgd_reconcile_domains(s->d);
        if (r < 0)
                log_warning_errno(r, "Failed to rescan the domains: %m");
}

static int on_host_event(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        struct pgd_server *s = userdata;
        int r = s->d->hv_ops->watch_drain(s->d->hv);

        if (r < 0)
                log_warning_errno(r, "Failed to read the host's events: %m");
        /* 0: only the backend's own writes; a failure may have hidden a change. */
        if (r != 0)
                host_changed(s);
        return 0;
}

static int on_host_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct pgd_server *s = userdata;

        host_changed(s);
        sd_event_source_set_time(source, usec + HOST_RESCAN_USEC);
        return 0;
}

int pgd_server_watch_host(struct pgd_server *s)
{
        const struct pgd_daemon *d = s->d;
        int fd = -ENOTSUP, r;

        if (d->hv_ops->watch_fd)
                fd = d->hv_ops->watch_fd(d->hv);
        if (fd >= 0) {
                r = sd_event_add_io(s->event, &s->host_source, fd, EPOLLIN, on_host_event, s);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch the host: %m");
                return 0;
        }

        /* No events from this host: poll, so that dead domains still free their devices. */
        log_warning_errno(fd, "The host gives no domain events (%m); rescanning every %llu ms",
                          HOST_RESCAN_USEC / 1000);
        r = sd_event_add_time_relative(s->event, &s->host_source, CLOCK_MONOTONIC, HOST_RESCAN_USEC,
                                       0, on_host_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the host rescan timer: %m");
        return sd_event_source_set_enabled(s->host_source, SD_EVENT_ON);
}

/* ---- the backend's hold, the journal's sync, rollbacks ---- */

static int on_host_flush(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct pgd_server *s = userdata;
        int r;

        s->host_held = false;
        r = s->d->hv_ops->flush(s->d->hv);
        if (r < 0)
                log_warning_errno(r, "Failed to write the host's bookkeeping: %m");
        return 0;
}

void pgd_server_hold_host(struct pgd_daemon *d)
{
        struct pgd_server *s = d->server;
        int r;

        if (!s || s->host_held || !d->hv_ops || !d->hv_ops->hold || !d->hv_ops->flush)
                return;
        r = d->hv_ops->hold(d->hv);
        if (r < 0) {
                log_debug_errno(r, "Failed to hold the host (every call writes through): %m");
                return;
        }
        s->host_held = true;
        r = sd_event_source_set_time_relative(s->host_flush, HOST_FLUSH_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->host_flush, SD_EVENT_ONESHOT);
        if (r < 0) {
                /* Never hold without a timer to end it. */
                (void)on_host_flush(NULL, 0, s);
        }
}

static int on_commit(sd_event_source *source, void *userdata)
{
        struct pgd_server *s = userdata;

        /* The guard stays armed: when it fires with nothing waiting, it does nothing. */
        pgd_commit_run(s->d);
        return 0;
}

static int on_commit_guard(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct pgd_server *s = userdata;

        (void)sd_event_source_set_enabled(s->commit, SD_EVENT_OFF);
        pgd_commit_run(s->d);
        return 0;
}

void pgd_server_commit_soon(struct pgd_daemon *d)
{
        struct pgd_server *s = d->server;
        int enabled = SD_EVENT_OFF;

        if (!s)
                return;
        if (sd_event_source_set_enabled(s->commit, SD_EVENT_ONESHOT) < 0)
                log_warning("Failed to schedule the journal's sync");
        if (sd_event_source_get_enabled(s->commit_guard, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        if (sd_event_source_set_time_relative(s->commit_guard, COMMIT_GUARD_USEC) < 0 ||
            sd_event_source_set_enabled(s->commit_guard, SD_EVENT_ONESHOT) < 0)
                log_warning("Failed to arm the journal's sync timer");
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct pgd_server *s = userdata;

        if (pgd_commit_retry_rollbacks(s->d) > 0)
                pgd_server_retry_later(s->d);
        return 0;
}

void pgd_server_retry_later(struct pgd_daemon *d)
{
        struct pgd_server *s = d->server;
        int enabled = SD_EVENT_OFF;

        if (!s)
                return;
        if (sd_event_source_get_enabled(s->retry, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        if (sd_event_source_set_time_relative(s->retry, ROLLBACK_RETRY_USEC) < 0 ||
            sd_event_source_set_enabled(s->retry, SD_EVENT_ONESHOT) < 0)
                log_warning("Failed to arm the rollback retry timer");
}

/* ---- signals and the loop ---- */

static int on_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata)
{
        struct pgd_server *s = userdata;
        struct pgd_error err = {};

        if (si->ssi_signo == SIGHUP) {
                (void)pgd_daemon_reload(s->d, &err);
                return 0;
        }
        log_info("Received %s, exiting", strsignal((int)si->ssi_signo));
        sd_notify(false, "STOPPING=1");
        return sd_event_exit(s->event, 0);
}

int pgd_server_new(struct pgd_daemon *d, struct pgd_server **ret)
{
        _cleanup_(pgd_server_freep) struct pgd_server *s = NULL;
        static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
        sigset_t mask;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->listen_fd = -1;
        s->d = d;

        r = sd_event_new(&s->event);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %m");

        /* Replies go with MSG_NOSIGNAL; a stray SIGPIPE must not kill us either. */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                sigaddset(&mask, signals[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "Failed to block signals: %m");
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_event_add_signal(s->event, NULL, signals[i], on_signal, s);
                if (r < 0)
                        return log_error_errno(r, "Failed to handle signal %d: %m", signals[i]);
        }

        r = sd_event_add_defer(s->event, &s->work, on_work, s);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the request queue: %m");
        r = sd_event_source_set_priority(s->work, WORK_PRIORITY);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->work, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the request queue: %m");

        r = sd_event_add_defer(s->event, &s->commit, on_commit, s);
        if (r >= 0)
                r = sd_event_source_set_priority(s->commit, COMMIT_PRIORITY);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->commit, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &s->commit_guard, CLOCK_MONOTONIC,
                                               COMMIT_GUARD_USEC, 100, on_commit_guard, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->commit_guard, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the journal's sync: %m");
        r = sd_event_add_time_relative(s->event, &s->host_flush, CLOCK_MONOTONIC, HOST_FLUSH_USEC,
                                       100, on_host_flush, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->host_flush, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &s->retry, CLOCK_MONOTONIC,
                                               ROLLBACK_RETRY_USEC, 1000, on_retry, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->retry, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the host's timers: %m");

        /* Pings the watchdog from the loop itself, if systemd asked for one. */
        r = sd_event_set_watchdog(s->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        d->event = s->event;
        d->server = s;
        *ret = TAKE_PTR(s);
        return 0;
}

struct pgd_server *pgd_server_free(struct pgd_server *s)
{
        if (!s)
                return NULL;
        while (s->clients)
                client_free(s->clients);
        if (s->host_held && s->d)
                (void)on_host_flush(NULL, 0, s);
        sd_event_source_disable_unref(s->work);
        sd_event_source_disable_unref(s->commit);
        sd_event_source_disable_unref(s->commit_guard);
        sd_event_source_disable_unref(s->host_flush);
        sd_event_source_disable_unref(s->retry);
        sd_event_source_disable_unref(s->listen_source);
        sd_event_source_disable_unref(s->listen_retry);
        sd_event_source_disable_unref(s->host_source);
        safe_close(s->listen_fd);
        if (s->socket_path) {
                unlink(s->socket_path);
                free(s->socket_path);
        }
        if (s->d && s->d->server == s) {
                s->d->server = NULL;
                s->d->event = NULL;
        }
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

int pgd_server_run(struct pgd_server *s)
{
        int r = sd_event_loop(s->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}
