/* SPDX-License-Identifier: MIT */
/*
 * The listening socket (server-internal.h): the one systemd passes, or one
 * made at --socket; accept, who the peer is, and the limits on connections.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "request.h"
#include "server-internal.h"

#define SOCKET_GROUP "passguard"
#define ACCEPT_RETRY_USEC (100 * 1000ULL)

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

        r = pgd_peer_read(cfd, &peer);
        if (r < 0) {
                log_warning_errno(r, "Failed to identify a client, closing: %m");
                safe_close(cfd);
                return 0;
        }

        known = pgd_peer_is_client(s->d, &peer);
        if (!connection_fits(s, &peer, known, message, sizeof(message))) {
                refuse_connection(cfd, message);
                pgd_peer_clear(&peer);
                return 0;
        }

        log_debug("Connection from uid %u gid %u pid %d unit %s%s", (unsigned)peer.uid,
                  (unsigned)peer.gid, (int)peer.pid, peer.unit ?: "-",
                  known ? "" : " (not a client of the policy)");
        r = pgd_client_new(s, cfd, &peer, known);
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
