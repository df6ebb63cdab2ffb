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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>
#include <systemd/sd-login.h>

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

/* A policy whose only client is uid; the daemon's old one is freed. */
static void set_policy(struct pgd_daemon *d, uid_t uid)
{
        _cleanup_(pg_policy_diags_clear) struct pg_policy_diags diags = {};
        char text[256];
        struct pg_policy *p = NULL;

        snprintf(text, sizeof(text),
                 "version = 1;\n"
                 "clients = ( { name = \"c\"; uid = %u; } );\n"
                 "admins = [ \"c\" ];\n"
                 "rules = ( { name = \"all\"; action = \"allow\"; } );\n",
                 (unsigned)uid);
        if (pg_policy_load_string(text, "test.conf", &p, &diags) < 0)
                abort();
        pg_policy_free(d->policy);
        d->policy = p;
}

/* Complete reply lines waiting on fd, without reading them. */
static unsigned lines_waiting(int fd)
{
        static char buf[256 * 1024];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
        unsigned lines = 0;

        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == '\n')
                        lines++;
        return lines;
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
        size_t n = PG_WIRE_MAX_MESSAGE + 100;
        char *junk = malloc(n);
        int other = connect_client();

        memset(junk, 'a', n);
        /* The refusal reaches the client every time: the daemon reads what is
         * still coming before it closes, so the close does not reset the
         * connection under the reply. */
        for (int i = 0; i < 20; i++) {
                int fd = connect_client();
                send_all(fd, junk, n);
                json_t *reply = read_reply(fd, 2000);
                CHECK_MSG(reply, "round %d: no reply", i);
                CHECK_STREQ(error_of(reply), "bad-request");
                CHECK_STREQ(json_string_value(json_object_get(reply, "message")),
                            "message too long");
                CHECK(reply && json_is_null(json_object_get(reply, "id")));
                json_decref(reply);
                CHECK(closed_by_daemon(fd, 2000));
                close(fd);
        }
        free(junk);

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

static void test_not_reading(struct pgd_daemon *d)
{
        d->cfg.idle_timeout_sec = 1;
        int greedy = connect_client(), good = connect_client();
        char batch[64 * 100];
        size_t off = 0;
        bool closed = false;

        for (int i = 0; i < 100; i++)
                off += (size_t)snprintf(batch + off, sizeof(batch) - off,
                                        "{\"id\":%04d,\"op\":\"hello\",\"version\":1}\n", i);
        /* Requests and more requests, never a read: the daemon stops reading it
         * once its replies back up, and the others are served all along. */
        for (int round = 0; round < 400 && !closed; round++) {
                ssize_t n = send(greedy, batch, off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno != EAGAIN)
                        closed = true;
                pump(2);
        }
        uint64_t t0 = now_ms();
        CHECK(hello_ok(good, 8));
        CHECK(now_ms() - t0 < 500);
        /* Stuck on its unread replies, it is cut off after the idle timeout. */
        pump(2500);
        CHECK(closed || closed_by_daemon(greedy, 300));
        close(greedy);
        close(good);
        d->cfg.idle_timeout_sec = 30;
}

/* A client's pipelined requests are handled a few per turn of the loop, in order. */
static void test_turns(void)
{
        int fd = connect_client();
        char batch[64 * 100];
        size_t off = 0;

        for (int i = 0; i < 100; i++)
                off += (size_t)snprintf(batch + off, sizeof(batch) - off,
                                        "{\"id\":%d,\"op\":\"hello\",\"version\":1}\n", i);
        send_all(fd, batch, off);
        /* One wake-up of the loop answers a few, not all 100. */
        for (int i = 0; i < 20 && lines_waiting(fd) == 0; i++)
                sd_event_run(ev, 100);
        unsigned first = lines_waiting(fd);
        printf("# replies after one turn: %u\n", first);
        CHECK(first >= 1 && first <= 4);
        /* The rest follow on later turns, every one, in order. */
        for (int i = 0; i < 100; i++) {
                json_t *r = read_reply(fd, 2000);
                CHECK_MSG(r && json_integer_value(json_object_get(r, "id")) == i, "reply %d", i);
                json_decref(r);
        }
        close(fd);
}

/* Thousands of pipelined requests, read as they come: all answered, in order. */
static void test_pipeline(void)
{
        enum { N = 3000 };
        int fd = connect_client(), other = connect_client();
        static char out[N * 48];
        size_t len = 0, sent = 0;
        int next = 0;
        bool asked = false;

        for (int i = 0; i < N; i++)
                len += (size_t)snprintf(out + len, sizeof(out) - len,
                                        "{\"id\":%d,\"op\":\"hello\",\"version\":1}\n", i);
        uint64_t end = now_ms() + 20000;
        while (next < N && now_ms() < end) {
                if (sent < len) {
                        ssize_t n = send(fd, out + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n > 0)
                                sent += (size_t)n;
                }
                pump(1);
                while (lines_waiting(fd) > 0 && next < N) {
                        json_t *r = read_reply(fd, 100);
                        if (!r || json_integer_value(json_object_get(r, "id")) != next) {
                                json_decref(r);
                                break;
                        }
                        json_decref(r);
                        next++;
                }
                if (next >= N / 2 && !asked) {
                        CHECK(hello_ok(other, 13)); /* another client, midway */
                        asked = true;
                }
        }
        CHECK_INTEQ(next, N);
        close(fd);
        close(other);
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

/* Peers the policy does not know: a small pool of their own, short-lived. */
static void test_unknown_peers(struct pgd_daemon *d)
{
        int u[3], k[2];

        set_policy(d, getuid() + 1); /* we are nobody to it */
        d->cfg.max_unknown_connections = 2;
        d->cfg.max_connections = 2;
        d->cfg.idle_timeout_sec = 1;

        u[0] = connect_client();
        u[1] = connect_client();
        u[2] = connect_client();
        json_t *reply = read_reply(u[2], 1000);
        CHECK_STREQ(error_of(reply), "limit-reached");
        CHECK(reply && strstr(json_string_value(json_object_get(reply, "message")),
                              "does not know"));
        json_decref(reply);
        CHECK(closed_by_daemon(u[2], 1000));

        /* A request is refused not-authorized, and the connection ends right after. */
        send_all(u[0], "{\"id\":1,\"op\":\"status\"}\n{\"id\":2,\"op\":\"status\"}\n", 44);
        reply = read_reply(u[0], 1000);
        CHECK_STREQ(error_of(reply), "not-authorized");
        json_decref(reply);
        CHECK(closed_by_daemon(u[0], 1500));
        /* hello is answered, but does not keep the connection: it ends after
         * the idle time however often it says hello. */
        uint64_t t0 = now_ms();
        bool open = true;
        for (int i = 0; i < 12 && open; i++) {
                open = hello_ok(u[1], 20 + i);
                pump(200);
        }
        CHECK(!open || closed_by_daemon(u[1], 500));
        printf("# an unknown peer saying hello was closed after %llu ms\n",
               (unsigned long long)(now_ms() - t0));
        CHECK(now_ms() - t0 < 2000);

        close(u[0]);
        close(u[1]);
        close(u[2]);
        pump(20);

        /* However many strangers hold connections, a client of the policy gets its own. */
        u[0] = connect_client();
        u[1] = connect_client();
        CHECK(hello_ok(u[0], 40) && hello_ok(u[1], 41));
        set_policy(d, getuid());
        k[0] = connect_client();
        k[1] = connect_client();
        CHECK(hello_ok(k[0], 42));
        CHECK(hello_ok(k[1], 43));
        /* Known ones are counted as known, and they are the ones max_connections limits. */
        int k3 = connect_client();
        reply = read_reply(k3, 1000);
        CHECK_STREQ(error_of(reply), "limit-reached");
        json_decref(reply);
        close(k3);
        for (int i = 0; i < 2; i++) {
                close(u[i]);
                close(k[i]);
        }
        pump(20);
        d->cfg.max_unknown_connections = 4;
        d->cfg.max_connections = 64;
        d->cfg.idle_timeout_sec = 30;
}

/* The unit of a peer is what systemd says of it only while the kernel vouches for the process. */
static void test_peer_unit(void)
{
        char *unit = NULL, *want = NULL;
        int r = pgd_peer_unit(-1, getpid(), getuid(), &unit);
        int rw = sd_pid_get_unit(getpid(), &want);

        printf("# this process's unit: %s\n", rw >= 0 ? want : "(none)");
        if (rw < 0)
                CHECK(r < 0 && !unit);
        else
                CHECK(r == 0 && unit && streq(unit, want));
        free(unit);
        free(want);

        /* Another uid owns the pid now: no unit. */
        unit = NULL;
        CHECK(pgd_peer_unit(-1, getpid(), getuid() + 1, &unit) < 0);
        CHECK(!unit);

        /* The process is gone: no unit. */
        pid_t pid = fork();
        if (pid == 0)
                _exit(0);
        CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid);
        CHECK(pgd_peer_unit(-1, pid, getuid(), &unit) < 0);
        CHECK(!unit);
        CHECK(pgd_peer_unit(-1, 0, getuid(), &unit) < 0);
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
        d.cfg.max_unknown_connections = 4;
        d.cfg.idle_timeout_sec = 30;
        set_policy(&d, getuid()); /* we are a client of the policy, unless a test says not */

        CHECK_INTEQ(pgd_server_new(&d, &s), 0);
        CHECK_INTEQ(pgd_server_listen(s), 0);
        if (!s || !d.event)
                return harness_exit();
        ev = d.event;

        test_basic();
        test_too_long();
        test_slow_and_silent(&d);
        test_not_reading(&d);
        test_turns();
        test_pipeline();
        test_limits(&d);
        test_unknown_peers(&d);
        test_peer_unit();

        /* Everything above left the daemon serving. */
        int fd = connect_client();
        CHECK(hello_ok(fd, 99));
        close(fd);

        test_listen_paths(&d);
        pgd_server_free(s);
        free(d.cfg.socket_path);
        pg_policy_free(d.policy);

        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        return harness_exit();
}
