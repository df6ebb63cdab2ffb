/* SPDX-License-Identifier: MIT */
/*
 * The server over real AF_UNIX sockets, in this process: the test is the
 * client and turns the daemon's event loop by hand. Every hostile client of
 * DESIGN.md invariant 6 (oversized, slow, silent, not reading, too many)
 * gets an error or a disconnect, and the others are served all along.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "harness.h"
#include "pgd.h"
#include "server.h"

static char tmpdir[] = "/tmp/pg-test-server-XXXXXX";
static char sock_path[256];
static sd_event *ev;

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Turn the daemon's loop for ms milliseconds. */
static void pump(unsigned ms)
{
        uint64_t end = now_ms() + ms;
        do
                sd_event_run(ev, 2000);
        while (now_ms() < end);
}

static int connect_client(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        strcpy(sa.sun_path, sock_path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                abort();
        pump(5); /* let the daemon accept it */
        return fd;
}

static void send_all(int fd, const char *s, size_t len)
{
        while (len > 0) {
                ssize_t n = send(fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno != EAGAIN)
                                return;
                        pump(1);
                        continue;
                }
                s += n;
                len -= (size_t)n;
        }
}

/* One reply line, or NULL after timeout_ms or at EOF. Caller frees. */
static json_t *read_reply(int fd, unsigned timeout_ms)
{
        char buf[4096];
        uint64_t end = now_ms() + timeout_ms;

        while (now_ms() < end) {
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_PEEK | MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        return NULL;
                if (n > 0) {
                        char *nl = memchr(buf, '\n', (size_t)n);
                        if (nl) {
                                size_t len = (size_t)(nl - buf) + 1;
                                if (recv(fd, buf, len, 0) != (ssize_t)len)
                                        return NULL;
                                return json_loadb(buf, len - 1, 0, NULL);
                        }
                }
                pump(2);
        }
        return NULL;
}

/* Whether the daemon closed the connection within timeout_ms (pending data discarded). */
static bool closed_by_daemon(int fd, unsigned timeout_ms)
{
        char buf[65536];
        uint64_t end = now_ms() + timeout_ms;

        while (now_ms() < end) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        return true;
                if (n < 0)
                        pump(5);
        }
        return false;
}

static bool hello_ok(int fd, int id)
{
        char line[64];
        snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"hello\",\"version\":1}\n", id);
        send_all(fd, line, strlen(line));
        json_t *reply = read_reply(fd, 2000);
        bool ok = reply && json_is_true(json_object_get(reply, "ok")) &&
                  json_integer_value(json_object_get(reply, "id")) == id;
        json_decref(reply);
        return ok;
}

static const char *error_of(json_t *reply)
{
        return json_string_value(json_object_get(reply, "error"));
}

static void test_basic(void)
{
        int fd = connect_client();
        struct stat st;

        CHECK(stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode));
        CHECK_INTEQ(st.st_mode & 0777, 0660);
        CHECK(hello_ok(fd, 1));

        /* Two requests in one write, a third split over three writes: three replies in order. */
        const char *two = "{\"id\":2,\"op\":\"hello\",\"version\":1}\n{\"id\":3,\"op\":\"nope\"}\n";
        send_all(fd, two, strlen(two));
        send_all(fd, "{\"id\":4,", 8);
        pump(20);
        send_all(fd, "\"op\":\"hello\",", 13);
        pump(20);
        send_all(fd, "\"version\":1}\n", 13);
        json_t *r2 = read_reply(fd, 1000), *r3 = read_reply(fd, 1000), *r4 = read_reply(fd, 1000);
        CHECK(r2 && json_integer_value(json_object_get(r2, "id")) == 2);
        CHECK(r3 && json_integer_value(json_object_get(r3, "id")) == 3);
        CHECK_STREQ(error_of(r3), "bad-request");
        CHECK(r4 && json_integer_value(json_object_get(r4, "id")) == 4 &&
              json_is_true(json_object_get(r4, "ok")));
        json_decref(r2);
        json_decref(r3);
        json_decref(r4);

        /* A request and then EOF: the reply still comes, then the daemon closes. */
        send_all(fd, "{\"id\":5,\"op\":\"hello\",\"version\":1}\n", 35);
        shutdown(fd, SHUT_WR);
        json_t *r5 = read_reply(fd, 1000);
        CHECK(r5 && json_integer_value(json_object_get(r5, "id")) == 5);
        json_decref(r5);
        CHECK(closed_by_daemon(fd, 1000));
        close(fd);
}

static void test_too_long(void)
{
        int fd = connect_client(), other = connect_client();
        size_t n = PG_WIRE_MAX_MESSAGE + 100;
        char *junk = malloc(n);

        memset(junk, 'a', n);
        send_all(fd, junk, n);
        free(junk);
        json_t *reply = read_reply(fd, 2000);
        CHECK_STREQ(error_of(reply), "bad-request");
        CHECK_STREQ(json_string_value(json_object_get(reply, "message")), "message too long");
        CHECK(reply && json_is_null(json_object_get(reply, "id")));
        json_decref(reply);
        CHECK(closed_by_daemon(fd, 1000));
        close(fd);

        /* Exactly at the limit without a newline is already too long; the others are fine. */
        CHECK(hello_ok(other, 6));
        close(other);
}

static void test_slow_and_silent(struct pgd_daemon *d)
{
        d->cfg.idle_timeout_sec = 1;
        int slow = connect_client(), silent = connect_client(), good = connect_client();

        /* A slowloris: half a request, then nothing. The others do not wait for it. */
        send_all(slow, "{\"id\":1,\"op\":", 13);
        uint64_t t0 = now_ms();
        CHECK(hello_ok(good, 7));
        CHECK(now_ms() - t0 < 500);

        /* Both the half-line and the silent one are cut off after the idle timeout. */
        CHECK(closed_by_daemon(slow, 2500));
        CHECK(closed_by_daemon(silent, 500));
        close(slow);
        close(silent);
        close(good);
        d->cfg.idle_timeout_sec = 30;
}

static void test_not_reading(void)
{
        int greedy = connect_client(), good = connect_client();
        char batch[64 * 100];
        size_t off = 0;
        bool closed = false;

        for (int i = 0; i < 100; i++)
                off += (size_t)snprintf(batch + off, sizeof(batch) - off,
                                        "{\"id\":%04d,\"op\":\"hello\",\"version\":1}\n", i);
        /* Requests and more requests, never a read: the daemon gives up on it. */
        for (int round = 0; round < 400 && !closed; round++) {
                ssize_t n = send(greedy, batch, off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno != EAGAIN)
                        closed = true;
                pump(2);
        }
        CHECK(closed || closed_by_daemon(greedy, 1000));
        close(greedy);
        CHECK(hello_ok(good, 8));
        close(good);
}

static void test_limits(struct pgd_daemon *d)
{
        int fds[4];

        /* Overall. */
        d->cfg.max_connections = 2;
        fds[0] = connect_client();
        fds[1] = connect_client();
        fds[2] = connect_client();
        json_t *reply = read_reply(fds[2], 1000);
        CHECK_STREQ(error_of(reply), "limit-reached");
        CHECK(reply && strstr(json_string_value(json_object_get(reply, "message")), "limit 2"));
        json_decref(reply);
        CHECK(closed_by_daemon(fds[2], 1000));
        CHECK(hello_ok(fds[0], 9));
        CHECK(hello_ok(fds[1], 10));
        for (int i = 0; i < 3; i++)
                close(fds[i]);
        pump(20);

        /* Per uid (every connection here is ours). */
        d->cfg.max_connections = 64;
        d->cfg.max_connections_per_uid = 3;
        for (int i = 0; i < 4; i++)
                fds[i] = connect_client();
        reply = read_reply(fds[3], 1000);
        CHECK_STREQ(error_of(reply), "limit-reached");
        CHECK(reply && strstr(json_string_value(json_object_get(reply, "message")), "from uid"));
        json_decref(reply);
        CHECK(hello_ok(fds[0], 11));
        /* A closed connection frees its slot. */
        close(fds[0]);
        pump(20);
        int again = connect_client();
        CHECK(hello_ok(again, 12));
        close(again);
        for (int i = 1; i < 4; i++)
                close(fds[i]);
        pump(20);
        d->cfg.max_connections_per_uid = 16;
}

static void test_listen_paths(struct pgd_daemon *d)
{
        struct pgd_server *s2 = NULL;
        char path[300];

        /* A live daemon's socket is never taken over. */
        CHECK_INTEQ(pgd_server_new(d, &s2), 0);
        CHECK_INTEQ(pgd_server_listen(s2), -EADDRINUSE);
        pgd_server_free(s2);

        /* Something that is not a socket is not replaced. */
        snprintf(path, sizeof(path), "%s/file", tmpdir);
        close(open(path, O_CREAT | O_WRONLY, 0600));
        free(d->cfg.socket_path);
        d->cfg.socket_path = strdup(path);
        CHECK_INTEQ(pgd_server_new(d, &s2), 0);
        CHECK_INTEQ(pgd_server_listen(s2), -EEXIST);
        pgd_server_free(s2);

        /* A stale socket (its daemon died) is; the parent directory is created. */
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(path, sizeof(path), "%s/sub/dir/stale.sock", tmpdir);
        if (strlen(path) >= sizeof(sa.sun_path))
                abort();
        memcpy(sa.sun_path, path, strlen(path) + 1);
        free(d->cfg.socket_path);
        d->cfg.socket_path = strdup(path);
        CHECK_INTEQ(pgd_server_new(d, &s2), 0);
        CHECK_INTEQ(pgd_server_listen(s2), 0); /* creates sub/dir */
        pgd_server_free(s2);
        CHECK(access(path, F_OK) < 0); /* removed on exit */
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        close(fd); /* the file stays: stale */
        CHECK(access(path, F_OK) == 0);
        CHECK_INTEQ(pgd_server_new(d, &s2), 0);
        CHECK_INTEQ(pgd_server_listen(s2), 0);
        pgd_server_free(s2);
}

int main(void)
{
        struct pgd_daemon d = {};
        struct pgd_server *s = NULL;

        if (!mkdtemp(tmpdir))
                return 99;
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        snprintf(sock_path, sizeof(sock_path), "%s/run/pg.sock", tmpdir);
        d.cfg.socket_path = strdup(sock_path);
        d.cfg.max_connections = 64;
        d.cfg.max_connections_per_uid = 16;
        d.cfg.idle_timeout_sec = 30;

        CHECK_INTEQ(pgd_server_new(&d, &s), 0);
        CHECK_INTEQ(pgd_server_listen(s), 0);
        if (!s || !d.event)
                return harness_exit();
        ev = d.event;

        test_basic();
        test_too_long();
        test_slow_and_silent(&d);
        test_not_reading();
        test_limits(&d);

        /* Everything above left the daemon serving. */
        int fd = connect_client();
        CHECK(hello_ok(fd, 99));
        close(fd);

        test_listen_paths(&d);
        pgd_server_free(s);
        free(d.cfg.socket_path);

        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        return harness_exit();
}
