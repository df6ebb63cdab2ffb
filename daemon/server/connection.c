/* SPDX-License-Identifier: MIT */
/*
 * One connection (server-internal.h): its buffers, its state, its requests.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "request.h"
#include "server-internal.h"

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
/* Room kept in a watcher's queue for its last line, the "dropped" event. */
#define WATCH_DROP_RESERVE 512U

/* A connection only moves forward in its life (enum client_state). */
static void client_enter(struct client *c, enum client_state state)
{
        if (state > c->state)
                c->state = state;
}

/* ---- connections ---- */

struct client *pgd_client_free(struct client *c)
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
                if (c->watching)
                        c->server->n_watchers--;
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
                client_enter(c, CLIENT_DEAD);
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

        if (c->state == CLIENT_DEAD)
                return;

        if (c->state == CLIENT_CLOSING && !output_pending(c)) {
                /* The last reply is out: say so, then read what is still coming
                 * and drop it, so that closing does not reset the connection
                 * before the client read the reply. */
                if (shutdown(c->fd, SHUT_WR) < 0) {
                        client_enter(c, CLIENT_DEAD);
                        return;
                }
                client_enter(c, CLIENT_DRAINING);
                client_set_timer(c, LINGER_USEC);
                if (c->state == CLIENT_DEAD)
                        return;
        }

        queue = c->state < CLIENT_CLOSING && !c->watching && !output_pending(c) && !c->pending &&
                has_line(c);
        c->queued = queue;
        if (queue && sd_event_source_set_enabled(s->work, SD_EVENT_ONESHOT) < 0)
                client_enter(c, CLIENT_DEAD);

        if (c->state == CLIENT_DRAINING || (c->watching && c->state == CLIENT_OPEN))
                events |= EPOLLIN; /* a watcher's input is read and dropped: EOF ends it */
        else if (c->state == CLIENT_OPEN && !queue && !output_pending(c) &&
                 c->in_len < PG_WIRE_MAX_MESSAGE)
                events |= EPOLLIN; /* also while a request waits: its next lines only queue */
        if (output_pending(c))
                events |= EPOLLOUT;
        if (!events && !queue && !c->pending) {
                /* Nothing more to read, write or handle: done. */
                client_enter(c, CLIENT_DEAD);
                return;
        }
        /* sd-event changes an edge-triggered source even when nothing changed: not here. */
        if (events & EPOLLIN)
                events |= EPOLLRDHUP; /* so that a short read can tell "empty" from "shut down" */
        if (events && events != c->io_events) {
                if (sd_event_source_set_io_events(c->io, events | EPOLLET) < 0)
                        client_enter(c, CLIENT_DEAD);
                c->io_events = events;
        }
        if ((events & EPOLLIN) && c->unread) {
                /* Input waits in the socket and no edge will come: add it to epoll again. */
                c->unread = false;
                if (sd_event_source_set_enabled(c->io, SD_EVENT_OFF) < 0)
                        client_enter(c, CLIENT_DEAD);
        }
        if (sd_event_source_set_enabled(c->io, events ? SD_EVENT_ON : SD_EVENT_OFF) < 0)
                client_enter(c, CLIENT_DEAD);
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
                        client_enter(c, CLIENT_DEAD);
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
                client_enter(c, CLIENT_DEAD);
                return;
        }
        if (c->out_len - c->out_off + len > PGD_OUTPUT_MAX) {
                log_warning("uid %u pid %d does not read its replies; disconnecting",
                            (unsigned)c->peer.uid, (int)c->peer.pid);
                free(buf);
                client_enter(c, CLIENT_DEAD);
                return;
        }
        if (c->out_len + len > c->out_alloc) {
                size_t want = c->out_len + len;
                char *p = realloc(c->out, want);
                if (!p) {
                        free(buf);
                        client_enter(c, CLIENT_DEAD);
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

/*
 * From its watch's reply on, a connection carries events (pgd_clients_broadcast())
 * and takes no more requests: what it sends is read and dropped, and its
 * end of the connection ends the stream. It is never idle.
 */
static void client_start_watching(struct client *c)
{
        c->watching = true;
        c->server->n_watchers++;
        c->in_len = 0;
        (void)sd_event_source_set_enabled(c->idle, SD_EVENT_OFF);
}

/* A reply is out: the idle clock starts again, or a stranger's refusal ends its connection. */
static void client_replied(struct client *c, json_t *reply, bool watch)
{
        const struct pgd_config *cfg = &c->server->d->cfg;
        bool refused = !json_is_true(json_object_get(reply, "ok"));

        client_send(c, reply);
        if (c->state == CLIENT_DEAD)
                return;
        if (watch && !refused) {
                client_start_watching(c);
                return;
        }
        if (pgd_peer_is_client(c->server->d, &c->peer)) {
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
                client_enter(c, CLIENT_CLOSING);
        }
}

/* The reply of a request that waited for the grant journal. */
static void client_on_reply(void *userdata, json_t *reply)
{
        struct client *c = userdata;

        c->pending = NULL;
        if (!reply)
                client_enter(c, CLIENT_DEAD);
        else
                client_replied(c, reply, false);
        client_process(c, REQUESTS_PER_TURN);
        client_update(c);
        if (c->state == CLIENT_DEAD)
                pgd_client_free(c);
}

/*
 * Handle up to budget complete lines, while the output is flushed: each line
 * goes to request.c whole, and its reply comes back now, or once its change
 * is durable (client_on_reply()).
 */
static void client_process(struct client *c, unsigned budget)
{
        size_t start = 0;

        for (unsigned i = 0; i < budget; i++) {
                bool watch = false;

                if (c->state >= CLIENT_CLOSING || c->pending || output_pending(c) || c->watching)
                        break;
                char *nl = memchr(c->in + start, '\n', c->in_len - start);
                if (!nl)
                        break;
                size_t len = (size_t)(nl - (c->in + start));
                json_t *reply = NULL;
                int r;

                pgd_server_hold_host(c->server->d);
                r = pgd_request_handle(c->server->d, &c->peer, c->in + start, len, client_on_reply,
                                       c, &c->pending, &reply, &watch);
                start += len + 1;
                if (r < 0) {
                        log_error_errno(r, "Failed to handle a request: %m");
                        client_enter(c, CLIENT_DEAD);
                        break;
                }
                if (reply)
                        client_replied(c, reply, watch);
                if (c->watching)
                        return; /* what follows the watch is dropped (client_start_watching()) */
                /* else: the reply comes with client_on_reply() once the change is durable */
        }
        if (c->state == CLIENT_DEAD)
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

        if (c->state < CLIENT_CLOSING && c->in_len == PG_WIRE_MAX_MESSAGE && !has_line(c)) {
                log_warning("uid %u pid %d sent a line over %d bytes; disconnecting",
                            (unsigned)c->peer.uid, (int)c->peer.pid, PG_WIRE_MAX_MESSAGE);
                client_send(c, pgd_request_error_reply(false, 0, PG_ERR_BAD_REQUEST,
                                                       "message too long"));
                client_enter(c, CLIENT_CLOSING);
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
                                client_enter(c, CLIENT_DEAD);
                        return;
                }
                if (n == 0) {
                        client_enter(c, CLIENT_DEAD);
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
                                client_enter(c, CLIENT_DEAD);
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
                                client_enter(c, CLIENT_DEAD);
                        break;
                }
                if (n == 0) {
                        client_enter(c, CLIENT_EOF);
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
}

static int on_client_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        struct client *c = userdata;

        if (revents & EPOLLIN) {
                if (c->state == CLIENT_DRAINING || (c->watching && c->state == CLIENT_OPEN))
                        client_drain(c);
                else if (c->state == CLIENT_OPEN) {
                        client_read(c, revents & EPOLLRDHUP);
                        /* A few requests now; the rest on later turns of the loop. */
                        if (c->state != CLIENT_DEAD)
                                client_process(c, REQUESTS_PER_TURN);
                }
        }
        if (c->state != CLIENT_DEAD && (revents & EPOLLOUT)) {
                client_flush(c);
                /* The output is out: the lines waiting for it may go on now. */
                if (c->state != CLIENT_DEAD && !output_pending(c))
                        client_process(c, REQUESTS_PER_TURN);
        }
        if (c->state != CLIENT_DEAD && (revents & EPOLLERR))
                client_enter(c, CLIENT_DEAD);
        if (c->state != CLIENT_DEAD && (revents & EPOLLHUP) && !(revents & EPOLLIN))
                client_enter(c, CLIENT_DEAD); /* the peer is gone: its replies have nowhere to go */
        client_update(c);
        if (c->state == CLIENT_DEAD)
                pgd_client_free(c);
        return 0;
}

/* One turn for every client with requests waiting: a few requests each, round-robin. */
int pgd_clients_work(sd_event_source *source, void *userdata)
{
        struct pgd_server *s = userdata;
        struct client *next;

        for (struct client *c = s->clients; c; c = next) {
                next = c->next;
                if (!c->queued)
                        continue;
                client_process(c, REQUESTS_PER_TURN);
                client_update(c);
                if (c->state == CLIENT_DEAD)
                        pgd_client_free(c);
        }
        return 0;
}

static int on_client_idle(sd_event_source *source, uint64_t usec, void *userdata)
{
        struct client *c = userdata;

        if (c->state < CLIENT_CLOSING && c->idle_until > usec) {
                /* It made requests since the timer was set: wait until its deadline. */
                if (sd_event_source_set_time(source, c->idle_until) >= 0 &&
                    sd_event_source_set_enabled(source, SD_EVENT_ONESHOT) >= 0)
                        return 0;
        }
        if (c->state != CLIENT_DRAINING)
                log_debug("uid %u pid %d idle for too long; disconnecting", (unsigned)c->peer.uid,
                          (int)c->peer.pid);
        pgd_client_free(c);
        return 0;
}

/* ---- watchers ---- */

/* A connection the broadcast ended is freed from the loop, never while a caller may hold it. */
static void client_end_soon(struct client *c, uint64_t usec)
{
        client_set_timer(c, usec);
}

/* Append to the output queue: 0, or -ENOMEM. */
static int out_append(struct client *c, const char *data, size_t len)
{
        if (c->out_len + len > c->out_alloc) {
                char *p = realloc(c->out, c->out_len + len);
                if (!p)
                        return -ENOMEM;
                c->out = p;
                c->out_alloc = c->out_len + len;
        }
        memcpy(c->out + c->out_len, data, len);
        c->out_len += len;
        return 0;
}

/*
 * Too slow: the events it has not taken are dropped (but the one it is in
 * the middle of, so that no line is torn), a last "dropped" event takes their
 * place, and the connection is closed once that is out, or after
 * PGD_WATCH_DROP_LINGER_SEC, read or not.
 */
static void watcher_drop(struct client *c, size_t queued)
{
        _cleanup_(json_decrefp) json_t *e = NULL;
        _cleanup_(freep) char *line = NULL;
        const char *nl;
        size_t len;

        log_warning("uid %u pid %d does not read its events (%zu bytes queued); dropping it",
                    (unsigned)c->peer.uid, (int)c->peer.pid, queued);
        /* Only the rest of a line the kernel has taken the start of stays queued. */
        nl = c->out_off > 0 && c->out[c->out_off - 1] != '\n'
                     ? memchr(c->out + c->out_off, '\n', c->out_len - c->out_off)
                     : NULL;
        c->out_len = nl ? (size_t)(nl - c->out) + 1 : c->out_off;
        e = json_pack("{s:s, s:I, s:s}", "event", "dropped", "time", (json_int_t)time(NULL),
                      "message",
                      "this watcher read its events too slowly and was dropped; watch again to "
                      "go on");
        if (e && pg_wire_dump(e, &line, &len) >= 0 &&
            c->out_len - c->out_off + len <= PGD_WATCH_QUEUE_MAX && out_append(c, line, len) >= 0)
                client_flush(c);
        client_enter(c, CLIENT_CLOSING);
        client_update(c);
        client_end_soon(c, PGD_WATCH_DROP_LINGER_SEC * 1000000ULL);
}

/* Queue line on one watcher without waiting for it. */
static void watcher_send(struct client *c, const char *line, size_t len)
{
        size_t queued;

        client_flush(c); /* what the kernel takes now is no longer ours to hold */
        if (c->state == CLIENT_DEAD) {
                client_end_soon(c, 1);
                return;
        }
        queued = c->out_len - c->out_off;
        if (queued + len > PGD_WATCH_QUEUE_MAX - WATCH_DROP_RESERVE ||
            out_append(c, line, len) < 0) {
                watcher_drop(c, queued);
                return;
        }
        client_flush(c);
        client_update(c);
        if (c->state == CLIENT_DEAD)
                client_end_soon(c, 1);
}

void pgd_clients_broadcast(struct pgd_server *s, const char *line, size_t len)
{
        for (struct client *c = s->clients; c; c = c->next)
                if (c->watching && c->state < CLIENT_CLOSING)
                        watcher_send(c, line, len);
}

void pgd_clients_recheck_watchers(struct pgd_server *s)
{
        struct pg_policy_identity id;

        for (struct client *c = s->clients; c; c = c->next) {
                if (!c->watching || c->state >= CLIENT_CLOSING)
                        continue;
                pgd_peer_identity(&c->peer, &id);
                if (pg_policy_is_watcher(s->d->policy, &id))
                        continue;
                log_info("uid %u pid %d may no longer watch: closing its event stream",
                         (unsigned)c->peer.uid, (int)c->peer.pid);
                client_enter(c, CLIENT_CLOSING);
                client_update(c);
                client_end_soon(c, LINGER_USEC);
        }
}

/* Takes ownership of fd. */
int pgd_client_new(struct pgd_server *s, int fd, struct pgd_peer *peer, bool known)
{
        _cleanup_(pgd_client_freep) struct client *c = NULL;
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
        r = sd_event_add_time_relative(s->event, &c->idle, CLOCK_MONOTONIC, idle_sec * 1000000ULL,
                                       0, on_client_idle, c);
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