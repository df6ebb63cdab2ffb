/* SPDX-License-Identifier: MIT */
/*
 * The event loop's parts, shared by the files of daemon/server/ alone:
 *   server.c      the loop: signals, the host's watch, the timers that
 *                 end the backend's hold, sync the journal and retry rollbacks
 *   listen.c      the listening socket, accept, the connection limits
 *   connection.c  one connection: its buffers, its state, its requests
 *   peer.c        who the peer is, as the kernel says
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "pgd.h"
#include "server.h"

/*
 * A connection's life, in order: it only ever moves forward
 * (client_enter()). Requests are read while OPEN and handled while OPEN or
 * EOF; from CLOSING nothing more is handled and the output is flushed; then
 * the connection says so (shutdown) and DRAINs the client's input until it
 * closes too or the linger time is up; DEAD is closed at once.
 */
enum client_state {
        CLIENT_OPEN,     /* reading and serving */
        CLIENT_EOF,      /* the client will send no more: serve what it sent */
        CLIENT_CLOSING,  /* handle nothing more; close once the output is flushed */
        CLIENT_DRAINING, /* output flushed and shut down: discard input until EOF or linger */
        CLIENT_DEAD,     /* close now */
};

struct client {
        struct pgd_server *server;
        struct client *prev, *next;
        int fd;
        sd_event_source *io;
        sd_event_source *idle;
        struct pgd_peer peer;
        enum client_state state;
        bool known; /* a client of the policy at accept: counts against max_connections */
        bool watching; /* after its watch: the connection carries events, and takes no request */
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
        /* Bookkeeping, not states: */
        bool queued;        /* complete lines wait for a turn (the server's work source) */
        bool unread;        /* input was left in the socket (buffer full): no edge will say so */
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
        sd_event_source *work;         /* defer: serves the queued clients, a few requests each */
        sd_event_source *commit;       /* defer: syncs the journal for the waiting changes */
        sd_event_source *commit_guard; /* time: ... at the latest COMMIT_GUARD_USEC later */
        sd_event_source *host_flush;   /* time: ends the backend's hold */
        sd_event_source *retry;        /* time: retries failed rollbacks */
        bool host_held;
        struct client *clients;
        unsigned n_clients;
        unsigned n_known, n_unknown; /* by their class at accept */
        unsigned n_watchers;
};

/* ---- connection.c ---- */

/* A new connection of peer (moved into it) on fd (taken, even on failure). */
int pgd_client_new(struct pgd_server *s, int fd, struct pgd_peer *peer, bool known);
struct client *pgd_client_free(struct client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct client *, pgd_client_free);
/* The server's work source: a turn for every client with requests waiting. */
int pgd_clients_work(sd_event_source *source, void *userdata);
/* An event line to every watcher (pgd_server_broadcast()). */
void pgd_clients_broadcast(struct pgd_server *s, const char *line, size_t len);
/* Watchers the policy in force no longer allows are closed. */
void pgd_clients_recheck_watchers(struct pgd_server *s);

/* ---- peer.c ---- */

/* Ask the kernel who is on the other end of fd: SO_PEERCRED, SO_PEERGROUPS, the unit. */
int pgd_peer_read(int fd, struct pgd_peer *ret);
/* Whether the policy in force knows the peer. */
bool pgd_peer_is_client(const struct pgd_daemon *d, const struct pgd_peer *peer);
