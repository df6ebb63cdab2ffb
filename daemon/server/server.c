/* SPDX-License-Identifier: MIT */
/*
 * The event loop: sd-event alone, no threads. Everything that happens is an
 * event source on one loop: the listening socket (listen.c), each
 * connection and its idle timer (connection.c), the host's watch fd,
 * SIGTERM/SIGINT/SIGHUP, the watchdog, and the timers of the state changes:
 * the journal's sync (group commit), the backend's hold, failed rollbacks.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "commit.h"
#include "log.h"
#include "reconcile.h"
#include "reload.h"
#include "server-internal.h"

#define HOST_RESCAN_USEC (500 * 1000ULL) /* fallback without a watch fd */
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

/* ---- watchers ---- */

bool pgd_server_has_watchers(const struct pgd_daemon *d)
{
        return d->server && d->server->n_watchers > 0;
}

void pgd_server_broadcast(const struct pgd_daemon *d, const char *line, size_t len)
{
        if (d->server)
                pgd_clients_broadcast(d->server, line, len);
}

void pgd_server_recheck_watchers(const struct pgd_daemon *d)
{
        if (d->server && d->server->n_watchers > 0)
                pgd_clients_recheck_watchers(d->server);
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

        r = sd_event_add_defer(s->event, &s->work, pgd_clients_work, s);
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
                pgd_client_free(s->clients);
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
