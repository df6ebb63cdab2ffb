/* SPDX-License-Identifier: MIT */
/*
 * The event loop (daemon/server/): sd-event, no threads. The listening
 * socket (socket activation or a path), the connections with their buffers,
 * limits and idle timers, signals, the watchdog and the host's watch fd;
 * the seams commit.c uses (pgd.h) are its timers.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "pgd.h"

/* A client whose unread replies exceed this is disconnected. */
#define PGD_OUTPUT_MAX (256 * 1024)
/*
 * A watcher's events not yet taken by the kernel: past this, the watcher is
 * too slow; it gets a last "dropped" event and is closed. The daemon never
 * waits for a watcher.
 */
#define PGD_WATCH_QUEUE_MAX (64 * 1024)
/*
 * A dropped watcher's connection is closed once its last event is out, or
 * this long after it was dropped, whichever comes first.
 */
#define PGD_WATCH_DROP_LINGER_SEC 5U
/*
 * A peer the policy does not know keeps its connection at most this long
 * (or idle_timeout, when shorter), whatever it sends: only hello is answered,
 * and its first refusal closes the connection.
 */
#define PGD_UNKNOWN_IDLE_TIMEOUT_SEC 5U

/*
 * The systemd unit of the process pid, as the kernel vouches for it: pinned
 * with a pidfd (SO_PEERPIDFD on sock_fd where available, else pidfd_open),
 * still alive after the lookup, and still of real uid uid. sock_fd may be -1
 * (not taken). Returns 0 and the unit, or -errno: the peer then has no unit
 * (fail closed).
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
/* Run until SIGTERM/SIGINT. Returns 0 or -errno. */
int pgd_server_run(struct pgd_server *s);
