/* SPDX-License-Identifier: MIT */
/*
 * Invariant 6, bad input changes nothing: hostile clients on the raw socket
 * (malformed JSON, oversized lines, wrong types, duplicate and unknown keys,
 * binary garbage, NUL bytes, deep nesting, huge and negative numbers, a line
 * that never ends, a flood of connections). Each gets an error reply or is
 * disconnected, and a bad-request reply names its check, "request", as every
 * refusal names its check; meanwhile another client is served in under a second; the
 * grant store and the host file stay byte-identical; the daemon stays up.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define IDLE_TIMEOUT_S 2
#define MAX_CONNECTIONS 8

struct input {
        const char *name;
        char *data;
        size_t len;
        const char *code; /* the error expected when the daemon replies; NULL: any */
        bool must_close;  /* only a disconnect will do */
};

static struct itest t;

static char *dup_len(const char *s, size_t len)
{
        char *p = malloc(len + 1);
        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
        size_t pl = strlen(prefix), sl = strlen(suffix);
        char *p = malloc(pl + n + sl + 1);
        memcpy(p, prefix, pl);
        memset(p + pl, c, n);
        memcpy(p + pl + n, suffix, sl + 1);
        return p;
}

static char *nested(char open, char close, size_t depth)
{
        char *p = malloc(2 * depth + 2);
        memset(p, open, depth);
        memset(p + depth, close, depth);
        p[2 * depth] = '\n';
        p[2 * depth + 1] = '\0';
        return p;
}

#define LIT(s) dup_len(s, sizeof(s) - 1), sizeof(s) - 1

static size_t build_inputs(struct input *v)
{
        size_t n = 0;
        char *s;

        v[n++] = (struct input){"not JSON", LIT("this is not json\n"), "bad-request", false};
        v[n++] = (struct input){"truncated object", LIT("{\"op\":\"status\",\n"), NULL, false};
        v[n++] = (struct input){"an array", LIT("[\"status\"]\n"), "bad-request", false};
        v[n++] = (struct input){"a string", LIT("\"status\"\n"), "bad-request", false};
        v[n++] = (struct input){"a number", LIT("42\n"), "bad-request", false};
        v[n++] = (struct input){"empty line", LIT("\n"), NULL, false};
        v[n++] = (struct input){"two objects on a line",
                                LIT("{\"op\":\"status\",\"id\":1}{\"op\":\"status\",\"id\":2}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"duplicate op",
                                LIT("{\"op\":\"status\",\"id\":1,\"op\":\"assign\"}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"duplicate device",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:05:00.0\","
                                    "\"domain\":\"render-1\","
                                    "\"device\":\"0000:03:00.0\"}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"unknown op", LIT("{\"op\":\"format-disk\",\"id\":1}\n"),
                                "bad-request", false};
        /* quoted in the refusal, cut at 64 bytes in the middle of a character */
        v[n++] =
                (struct input){"unknown op cut mid-character",
                               LIT("{\"op\":\""
                                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                   "\u00e9\u00e9\",\"id\":1}\n"),
                               "bad-request", false};
        v[n++] = (struct input){"no op", LIT("{\"id\":1}\n"), "bad-request", false};
        v[n++] = (struct input){"unknown key",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\","
                                    "\"domain\":\"render-1\","
                                    "\"force\":true}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"op is a number", LIT("{\"op\":5,\"id\":1}\n"), "bad-request",
                                false};
        v[n++] = (struct input){"id is a string",
                                LIT("{\"op\":\"assign\",\"id\":\"1\",\"device\":\"0000:03:00.0\","
                                    "\"domain\":\"render-1\"}\n"),
                                "bad-request", false};
        v[n++] = (struct input){
                "device is a number",
                LIT("{\"op\":\"assign\",\"id\":1,\"device\":30000,\"domain\":\"render-1\"}\n"),
                "bad-request", false};
        v[n++] = (struct input){"domain is an object",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\","
                                    "\"domain\":{\"name\":\"render-1\"}}\n"),
                                "bad-request", false};
        v[n++] = (struct input){
                "domid is a string",
                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\",\"domid\":\"5\"}\n"),
                "bad-request", false};
        v[n++] = (struct input){
                "negative domid",
                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\",\"domid\":-1}\n"),
                NULL, false};
        v[n++] = (struct input){"domid 2^32 + 5",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\","
                                    "\"domid\":4294967301}\n"),
                                NULL, false};
        v[n++] = (struct input){
                "huge domid",
                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\",\"domid\":"
                    "123456789012345678901234567890}\n"),
                NULL, false};
        v[n++] = (struct input){
                "real domid",
                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\",\"domid\":5.0}\n"),
                "bad-request", false};
        v[n++] = (struct input){
                "domid 1e999",
                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\",\"domid\":1e999}\n"),
                "bad-request", false};
        v[n++] = (struct input){"huge id",
                                LIT("{\"op\":\"status\",\"id\":99999999999999999999999999}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"bad BDF",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0; rm -rf "
                                    "/\",\"domain\":\"render-1\"}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"NUL inside a string (escaped)",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00."
                                    "0\\u0000\",\"domain\":\"render-1\"}\n"),
                                NULL, false};
        v[n++] = (struct input){"raw NUL byte",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\","
                                    "\0\"domain\":\"render-1\"}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"rdm_policy not a policy",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:03:00.0\","
                                    "\"domain\":\"render-1\","
                                    "\"rdm_policy\":\"yolo\"}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"both domain and domid disagree",
                                LIT("{\"op\":\"assign\",\"id\":1,\"device\":\"0000:05:00.0\","
                                    "\"domain\":\"render-1\","
                                    "\"domid\":6}\n"),
                                NULL, false};
        v[n++] = (struct input){"invalid UTF-8",
                                LIT("{\"op\":\"status\",\"id\":1,\"x\":\"\xff\xfe\xc0\"}\n"),
                                "bad-request", false};
        v[n++] = (struct input){"hello with version 99",
                                LIT("{\"op\":\"hello\",\"id\":1,\"version\":99}\n"),
                                "unsupported-version", false};
        v[n++] = (struct input){"hello with a string version",
                                LIT("{\"op\":\"hello\",\"id\":1,\"version\":\"1\"}\n"),
                                "bad-request", false};

        /* binary garbage */
        s = malloc(1025);
        for (int i = 0; i < 1024; i++)
                s[i] = (char)((i * 131 + 7) & 0xff);
        for (int i = 0; i < 1024; i++)
                if (s[i] == '\n')
                        s[i] = 'x';
        s[1023] = '\n';
        s[1024] = '\0';
        v[n++] = (struct input){"binary garbage", s, 1024, NULL, false};

        s = nested('[', ']', 30000);
        v[n++] = (struct input){"deeply nested arrays", s, strlen(s), NULL, false};
        /* {"a":{"a":...}} */
        {
                size_t depth = 5000, len = 0;
                s = malloc(depth * 6 + depth + 16);
                for (size_t i = 0; i < depth; i++) {
                        memcpy(s + len, "{\"a\":", 5);
                        len += 5;
                }
                s[len++] = '1';
                memset(s + len, '}', depth);
                len += depth;
                s[len++] = '\n';
                s[len] = '\0';
                v[n++] = (struct input){"deeply nested objects", s, len, NULL, false};
        }

        s = repeat("{\"op\":\"status\",\"id\":1,\"pad\":\"", 'a', 70 * 1024, "\"}\n");
        v[n++] = (struct input){"a 70 KiB line", s, strlen(s), NULL, false};
        s = repeat("{\"op\":\"status\",\"id\":1,\"pad\":\"", 'a', 300 * 1024, "");
        v[n++] = (struct input){"300 KiB and no end of line", s, strlen(s), NULL, true};
        v[n++] = (struct input){"a line that never ends (idle)", LIT("{\"op\":\"status\""), NULL,
                                true};
        return n;
}

/* A status round trip on a fresh connection, in ms; -1 when it failed. */
static int64_t status_ms(void)
{
        int64_t t0 = itest_now_ms();
        json_t *r = itest_call(&t, json_pack("{s:s}", "op", "status"));
        bool ok = itest_ok(r);

        json_decref(r);
        return ok ? itest_now_ms() - t0 : -1;
}

/* bad-request refusals seen, and those of them that named their check "request". */
static int bad_requests, bad_requests_checked;

/* Every refusal names the check that failed: a bad request's is "request". */
static void judge_check(const char *what, json_t *reply)
{
        const char *check = json_string_value(json_object_get(reply, "check"));

        if (!streq(itest_error(reply), "bad-request"))
                return;
        bad_requests++;
        if (check && streq(check, "request"))
                bad_requests_checked++;
        CHECK_MSG(check && streq(check, "request"), "%s: bad-request with check \"%s\"", what,
                  check ? check : "(none)");
}

/* Judge what a hostile connection got: a refusal or a disconnect. */
static void judge(const struct input *in, struct itest_conn *c, int timeout_ms)
{
        char *line = NULL;
        int r = itest_recv_line(c, timeout_ms, &line);

        if (r == 0) {
                json_t *j = json_loads(line, 0, NULL);
                const char *code = itest_error(j);
                CHECK_MSG(j && !itest_ok(j), "%s: accepted: %s", in->name, line);
                if (in->code)
                        CHECK_MSG(streq(code, in->code), "%s: %s, expected %s", in->name, code,
                                  in->code);
                else
                        CHECK_MSG(itest_known_code(code), "%s: unexpected error %s", in->name,
                                  code);
                if (j)
                        judge_check(in->name, j);
                json_decref(j);
                free(line);
                line = NULL;
                if (in->must_close)
                        r = itest_recv_line(c, timeout_ms, &line);
        }
        if (r != 0 && r != -ECONNRESET && r != -EPIPE)
                CHECK_MSG(false, "%s: neither answered nor disconnected (%s)", in->name,
                          strerror(-r));
        if (r == 0 && in->must_close)
                CHECK_MSG(false, "%s: not disconnected; got %s", in->name, line);
        free(line);
}

static void phase_one_by_one(struct input *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                struct itest_conn *c = itest_connect(&t);
                CHECK_MSG(c, "%s: cannot connect", v[i].name);
                if (!c)
                        continue;
                int r = itest_send_raw(c, v[i].data, v[i].len);
                if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                        CHECK_MSG(false, "%s: send: %s", v[i].name, strerror(-r));
                /* while the hostile connection is open, others are served */
                int64_t ms = status_ms();
                CHECK_MSG(ms >= 0 && ms < 1000, "%s: status took %lld ms", v[i].name,
                          (long long)ms);
                int64_t t0 = itest_now_ms();
                judge(&v[i], c, v[i].must_close ? (IDLE_TIMEOUT_S + 3) * 1000 : 3000);
                if (streq(v[i].name, "a line that never ends (idle)")) {
                        int64_t waited = itest_now_ms() - t0;
                        printf("# idle connection closed after %lld ms\n", (long long)waited);
                        CHECK(waited >= (IDLE_TIMEOUT_S - 1) * 1000);
                }
                itest_conn_close(c);
                CHECK_MSG(itest_alive(&t), "passguardd died after: %s", v[i].name);
                if (!itest_alive(&t))
                        return;
        }
}

static void phase_all_at_once(struct input *v, size_t n)
{
        struct itest_conn **c = calloc(n, sizeof(*c));

        for (size_t i = 0; i < n; i++) {
                c[i] = itest_connect(&t);
                if (c[i])
                        itest_send_raw(c[i], v[i].data, v[i].len);
        }
        int64_t ms = status_ms();
        printf("# status during %zu simultaneous hostile clients: %lld ms\n", n, (long long)ms);
        CHECK_MSG(ms >= 0 && ms < 1000, "status took %lld ms", (long long)ms);
        for (size_t i = 0; i < n; i++) {
                CHECK_MSG(c[i], "%s: cannot connect", v[i].name);
                if (c[i])
                        judge(&v[i], c[i], (IDLE_TIMEOUT_S + 3) * 1000);
                itest_conn_close(c[i]);
        }
        free(c);
        CHECK(itest_alive(&t));
}

static void phase_flood(void)
{
        enum { FLOOD = 40 };
        struct itest_conn *c[FLOOD] = {};
        struct itest_conn *p = itest_connect(&t);
        int served = 0;

        CHECK(p);
        json_t *r =
                p ? itest_conn_call(p, json_pack("{s:s, s:i}", "op", "hello", "version", 1)) : NULL;
        CHECK(itest_ok(r));
        json_decref(r);

        for (int i = 0; i < FLOOD; i++)
                c[i] = itest_connect(&t);
        int64_t t0 = itest_now_ms();
        r = p ? itest_conn_call(p, json_pack("{s:s}", "op", "status")) : NULL;
        int64_t ms = itest_now_ms() - t0;
        printf("# status on an established connection during a flood of %d: %lld ms\n", FLOOD,
               (long long)ms);
        CHECK_MSG(itest_ok(r) && ms < 1000, "established client not served during the flood");
        json_decref(r);

        for (int i = 0; i < FLOOD; i++) {
                char *line = NULL;
                if (!c[i])
                        continue;
                if (itest_send_raw(c[i], "{\"op\":\"status\",\"id\":7}\n", 23) == 0 &&
                    itest_recv_line(c[i], 300, &line) == 0) {
                        json_t *j = json_loads(line, 0, NULL);
                        if (itest_ok(j))
                                served++;
                        json_decref(j);
                }
                free(line);
        }
        printf("# %d of %d flood connections served (max_connections = %d)\n", served, FLOOD,
               MAX_CONNECTIONS);
        CHECK_MSG(served + 1 <= MAX_CONNECTIONS,
                  "%d connections served beyond max_connections = %d", served + 1, MAX_CONNECTIONS);

        /* The CLI over the limit is told so: a refusal (exit 1), not a broken pipe (exit 3). */
        for (int i = 0; i < 5; i++) {
                char *err = NULL;
                int x = ITEST_CLI(&t, NULL, &err, "status");
                CHECK_MSG(x == 1 && err && strstr(err, "limit-reached"),
                          "passguard status during the flood: exit %d: %s", x, err ? err : "");
                free(err);
        }
        for (int i = 0; i < FLOOD; i++)
                itest_conn_close(c[i]);
        itest_conn_close(p);
        /* once the flood is gone, new clients are served again */
        CHECK(ITEST_WAIT_FOR(status_ms() >= 0, 2000));
        CHECK(itest_alive(&t));
}

/* A hello round trip on a fresh connection, in ms; -1 when it failed. */
static int64_t hello_ms(void)
{
        int64_t t0 = itest_now_ms();
        json_t *r = itest_call(&t, json_pack("{s:s, s:i}", "op", "hello", "version", 1));
        bool ok = itest_ok(r);

        json_decref(r);
        return ok ? itest_now_ms() - t0 : -1;
}

/*
 * The flooding client of phase_pipeline: N explain requests, as many as fit
 * sent before reading anything, then the rest while reading. Tells the
 * parent on ready once the first burst is in. Exits 0 when every reply came,
 * in order.
 */
static int flooder(int n, int ready)
{
        struct itest_conn *c = itest_connect(&t);
        size_t cap = (size_t)n * 96, len = 0, sent = 0;
        char *out = malloc(cap);
        int next = 0;
        bool told = false;

        if (!c || !out)
                return 2;
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(out + len, cap - len,
                                        "{\"op\":\"explain\",\"id\":%d,\"device\":\"%s\","
                                        "\"domain\":\"render-1\"}\n",
                                        i, DEV_GPU);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        int64_t end = itest_now_ms() + 120000;
        while (next < n && itest_now_ms() < end) {
                struct pollfd p = {.fd = c->fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
                if (told && poll(&p, 1, 1000) < 0)
                        return 3;
                if (sent < len) {
                        ssize_t k = send(c->fd, out + sent, len - sent, MSG_NOSIGNAL);
                        if (k > 0)
                                sent += (size_t)k;
                        else if (k < 0 && errno != EAGAIN)
                                return 4;
                        if (!told && (k < 0 || sent == len)) {
                                /* The daemon has a backlog now; the others may ask. */
                                (void)!write(ready, "x", 1);
                                told = true;
                        }
                        if (!told)
                                continue;
                }
                ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
                if (k == 0 || (k < 0 && errno != EAGAIN))
                        return 5;
                if (k > 0)
                        c->len += (size_t)k;
                char *line = NULL;
                while (memchr(c->buf, '\n', c->len) && itest_recv_line(c, 0, &line) == 0) {
                        json_t *j = json_loads(line, 0, NULL);
                        json_int_t id = json_integer_value(json_object_get(j, "id"));
                        bool ok = j && itest_ok(j) && id == next;
                        if (!ok)
                                fprintf(stderr, "# flooder: reply %d out of order: %.200s\n", next,
                                        line);
                        json_decref(j);
                        free(line);
                        if (!ok)
                                return 6;
                        next++;
                }
        }
        fprintf(stderr, "# flooder: %d of %d replies\n", next, n);
        return next == n ? 0 : 7;
}

/*
 * One client pipelines thousands of explain requests (each several host
 * calls). The others still get a hello answered at once, and the flooder
 * gets every reply, in order.
 */
static void phase_pipeline(void)
{
        enum { N = 2500 };
        int pipefd[2], status = -1;
        int64_t worst = 0, t0 = itest_now_ms();
        char x;

        CHECK_INTEQ(pipe(pipefd), 0);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
                close(pipefd[0]);
                _exit(flooder(N, pipefd[1]));
        }
        close(pipefd[1]);
        CHECK_MSG(read(pipefd[0], &x, 1) == 1, "the flooder did not start");
        close(pipefd[0]);
        for (int i = 0; i < 8; i++) {
                int64_t ms = hello_ms();
                if (ms < 0 || ms > worst)
                        worst = ms < 0 ? 1000000 : ms;
                itest_sleep_ms(50);
        }
        printf("# hello during a pipeline of %d explain requests: at worst %lld ms\n", N,
               (long long)worst);
        CHECK_MSG(worst < 500, "hello took %lld ms while another client pipelined",
                  (long long)worst);
        CHECK(waitpid(pid, &status, 0) == pid);
        printf("# the flooder's %d replies took %lld ms\n", N, (long long)(itest_now_ms() - t0));
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the flooder did not get its replies in order (status %d)", status);
        CHECK(itest_alive(&t));
}

/* An over-long line: the refusal reaches the client every time, before the close. */
static void phase_too_long(void)
{
        /* Longer than the daemon's buffer and the socket's together: a client
         * that writes all of it before reading still gets to read the answer. */
        char *s = repeat("{\"op\":\"status\",\"id\":1,\"pad\":\"", 'a', 400 * 1024, "\"}\n");
        int got = 0;

        for (int i = 0; i < 20; i++) {
                struct itest_conn *c = itest_connect(&t);
                char *line = NULL;
                if (!c)
                        continue;
                int r = itest_send_raw(c, s, strlen(s));
                CHECK_MSG(r == 0, "over-long line %d: send: %s", i, strerror(-r));
                if (itest_recv_line(c, 3000, &line) == 0) {
                        json_t *j = json_loads(line, 0, NULL);
                        const char *m = json_string_value(json_object_get(j, "message"));
                        if (streq(itest_error(j), "bad-request") && m &&
                            streq(m, "message too long"))
                                got++;
                        if (j)
                                judge_check("over-long line", j);
                        json_decref(j);
                }
                free(line);
                itest_conn_close(c);
        }
        printf("# %d of 20 over-long lines got their refusal\n", got);
        CHECK_INTEQ(got, 20);
        free(s);
}

int main(void)
{
        struct input v[64];
        char config[256];
        size_t hlen, hlen2;

        itest_init(&t, "hostile", false);
        snprintf(config, sizeof(config),
                 "idle_timeout = %d;\nmax_connections = 64;\nmax_connections_per_uid = 64;\n",
                 IDLE_TIMEOUT_S);
        CHECK_INTEQ(itest_write_file(t.config, config), 0);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }
        json_t *r = itest_target(&t, "assign", "net-pv", 0, DEV_NIC);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);
        /* the grant store as the daemon would load it (grants.json and its journal) */
        char *grants = itest_store_text(&t);
        char *host = itest_read_file(t.host, &hlen);
        CHECK(grants && host);

        size_t n = build_inputs(v);
        printf("# %zu hostile inputs\n", n);
        CHECK(n >= 30);
        phase_one_by_one(v, n);
        phase_all_at_once(v, n);
        phase_too_long();
        printf("# %d bad-request refusals, %d of them with \"check\": \"request\"\n", bad_requests,
               bad_requests_checked);
        CHECK(bad_requests > 20);

        char *grants2 = itest_store_text(&t);
        char *host2 = itest_read_file(t.host, &hlen2);
        CHECK_MSG(grants && grants2 && streq(grants, grants2), "the grant store changed");
        CHECK_MSG(itest_files_equal(host, hlen, host2, hlen2), "the host file changed");
        free(grants2);
        free(host2);

        /* a flood of connections, with a low limit */
        itest_stop(&t);
        snprintf(config, sizeof(config),
                 "idle_timeout = %d;\nmax_connections = %d;\nmax_connections_per_uid = %d;\n",
                 IDLE_TIMEOUT_S, MAX_CONNECTIONS, MAX_CONNECTIONS);
        CHECK_INTEQ(itest_write_file(t.config, config), 0);
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        phase_flood();

        grants2 = itest_store_text(&t);
        host2 = itest_read_file(t.host, &hlen2);
        CHECK_MSG(grants && grants2 && streq(grants, grants2), "the grant store changed");
        CHECK_MSG(itest_files_equal(host, hlen, host2, hlen2), "the host file changed");
        free(grants2);
        free(host2);
        free(grants);
        free(host);
        for (size_t i = 0; i < n; i++)
                free(v[i].data);

        /* Last, as explain counts its test-assign calls in the host file. */
        phase_pipeline();
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
