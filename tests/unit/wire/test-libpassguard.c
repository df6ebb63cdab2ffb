/* SPDX-License-Identifier: MIT */
/*
 * libpassguard's transport over a real listening AF_UNIX socket. A responder
 * thread answers each request with a scripted line, to drive the edge cases
 * a real daemon will not produce on demand: a wrong id, an oversized or
 * malformed reply, a closed connection, a refusal. The real daemon is
 * exercised by the integration suite.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "passguard.h"

#define MAX_STEPS 8

/*
 * One reply per request. "%I" in a reply is replaced by the request's id.
 * "CLOSE" closes the connection instead; "BIG" sends more than 64 KiB with no
 * newline.
 */
struct script {
        const char *replies[MAX_STEPS];
        char *requests[MAX_STEPS]; /* what the client sent, without '\n' */
        int listen_fd;
};

static char sock_path[108];

static ssize_t read_line(int fd, char *buf, size_t size)
{
        size_t n = 0;
        while (n + 1 < size) {
                ssize_t k = read(fd, buf + n, 1);
                if (k <= 0)
                        return -1;
                if (buf[n] == '\n') {
                        buf[n] = '\0';
                        return (ssize_t)n;
                }
                n++;
        }
        return -1;
}

static void send_str(int fd, const char *s)
{
        size_t len = strlen(s);
        while (len > 0) {
                ssize_t k = send(fd, s, len, MSG_NOSIGNAL);
                if (k <= 0)
                        return;
                s += k;
                len -= (size_t)k;
        }
}

static void *responder(void *arg)
{
        struct script *sc = arg;
        static char line[70000];
        int fd = accept(sc->listen_fd, NULL, NULL);
        if (fd < 0)
                return NULL;

        for (int i = 0; i < MAX_STEPS && sc->replies[i]; i++) {
                if (read_line(fd, line, sizeof(line)) < 0)
                        break;
                sc->requests[i] = strdup(line);
                const char *r = sc->replies[i];
                if (strcmp(r, "CLOSE") == 0)
                        break;
                if (strcmp(r, "BIG") == 0) {
                        char *big = malloc(70000 + 1);
                        memset(big, 'x', 70000);
                        big[70000] = '\0';
                        send_str(fd, big);
                        free(big);
                        /* Wait for the client to give up. */
                        while (read(fd, line, sizeof(line)) > 0)
                                ;
                        break;
                }
                json_t *req = json_loads(line, 0, NULL);
                long long id = req ? json_integer_value(json_object_get(req, "id")) : -1;
                json_decref(req);
                char out[1024], *o = out;
                for (const char *p = r; *p && o < out + sizeof(out) - 32; p++) {
                        if (p[0] == '%' && p[1] == 'I') {
                                o += snprintf(o, 32, "%lld", id);
                                p++;
                        } else
                                *o++ = *p;
                }
                *o++ = '\n';
                *o = '\0';
                send_str(fd, out);
        }
        close(fd);
        return NULL;
}

static const char hello_ok[] = "{\"id\":%I,\"ok\":true,\"version\":1,\"daemon\":\"passguardd t\"}";

/* Start a responder on a fresh socket; returns the thread. */
static pthread_t serve(struct script *sc)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        pthread_t t;

        unlink(sock_path);
        sc->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        if (sc->listen_fd < 0 || bind(sc->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(sc->listen_fd, 4) < 0) {
                perror("listen");
                exit(1);
        }
        pthread_create(&t, NULL, responder, sc);
        return t;
}

static void free_requests(struct script *sc)
{
        for (int i = 0; i < MAX_STEPS; i++)
                free(sc->requests[i]);
}

/* Wait for the responder; the requests it recorded stay readable until free_requests(). */
static void join(pthread_t t, struct script *sc)
{
        pthread_join(t, NULL);
        close(sc->listen_fd);
}

static void finish(pthread_t t, struct script *sc)
{
        join(t, sc);
        free_requests(sc);
}

static json_t *request_json(const struct script *sc, int i)
{
        return sc->requests[i] ? json_loads(sc->requests[i], JSON_REJECT_DUPLICATES, NULL) : NULL;
}

static void test_success(void)
{
        struct script sc = { .replies = {
                hello_ok,
                "{\"id\":%I,\"ok\":true,\"grant\":{\"device\":\"0000:03:00.0\",\"domid\":5,"
                "\"domain\":\"render-1\",\"domain_uuid\":\"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\","
                "\"rule\":\"gpus\",\"rdm_policy\":\"relaxed\",\"client_uid\":0,\"time\":1}}",
                "{\"id\":%I,\"ok\":true,\"backend\":\"sim\",\"grants\":1}",
                "{\"id\":%I,\"ok\":true,\"device\":\"0000:03:00.0\",\"assigned\":true,"
                "\"domid\":5,\"granted\":true}",
                "{\"id\":%I,\"ok\":true}",
        } };
        pthread_t t = serve(&sc);
        struct pg *pg = NULL;
        struct pg_grant *g = NULL;
        char *json = NULL;

        CHECK_INTEQ(pg_connect(sock_path, &pg), 0);
        CHECK_INTEQ(pg_assign(pg, "render-1", 0, "03:00.0", PG_ASSIGN_RDM_RELAXED, &g), 0);
        CHECK_STREQ(pg_grant_device(g), "0000:03:00.0");
        CHECK_INTEQ(pg_grant_domid(g), 5);
        CHECK_STREQ(pg_grant_domain_name(g), "render-1");
        CHECK_STREQ(pg_grant_domain_uuid(g), "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f");
        CHECK_STREQ(pg_grant_rule(g), "gpus");
        CHECK_STREQ(pg_grant_rdm_policy(g), "relaxed");
        CHECK(pg_grant_free(g) == NULL);

        CHECK_INTEQ(pg_status(pg, &json), 0);
        json_t *st = json ? json_loads(json, 0, NULL) : NULL;
        CHECK_STREQ(json_string_value(json_object_get(st, "backend")), "sim");
        json_decref(st);
        free(json);

        int assigned = -1, granted = -1;
        uint32_t domid = 0;
        CHECK_INTEQ(pg_owner(pg, "0000:03:00.0", &assigned, &domid, &granted), 0);
        CHECK_INTEQ(assigned, 1);
        CHECK_INTEQ(domid, 5);
        CHECK_INTEQ(granted, 1);

        CHECK_INTEQ(pg_release(pg, NULL, 5, "0000:03:00.0"), 0);
        pg_close(pg);
        join(t, &sc);

        /* What went over the wire: hello with version 1, then the requests in order. */
        json_t *r = request_json(&sc, 0);
        CHECK_STREQ(json_string_value(json_object_get(r, "op")), "hello");
        CHECK_INTEQ(json_integer_value(json_object_get(r, "version")), 1);
        json_t *id0 = json_object_get(r, "id");
        CHECK(json_is_integer(id0));
        json_int_t first = json_integer_value(id0);
        json_decref(r);

        r = request_json(&sc, 1);
        CHECK_STREQ(json_string_value(json_object_get(r, "op")), "assign");
        CHECK_STREQ(json_string_value(json_object_get(r, "domain")), "render-1");
        CHECK(json_object_get(r, "domid") == NULL);
        CHECK_STREQ(json_string_value(json_object_get(r, "device")), "03:00.0");
        CHECK_STREQ(json_string_value(json_object_get(r, "rdm_policy")), "relaxed");
        CHECK(json_integer_value(json_object_get(r, "id")) != first); /* ids are not reused */
        json_decref(r);

        r = request_json(&sc, 4);
        CHECK_STREQ(json_string_value(json_object_get(r, "op")), "release");
        CHECK_INTEQ(json_integer_value(json_object_get(r, "domid")), 5);
        CHECK(json_object_get(r, "domain") == NULL);
        CHECK(json_object_get(r, "rdm_policy") == NULL);
        json_decref(r);
        free_requests(&sc);
}

static void test_refusal(void)
{
        struct script sc = { .replies = {
                hello_ok,
                "{\"id\":%I,\"ok\":false,\"error\":\"busy\",\"message\":\"device 0000:03:00.0 "
                "is already assigned to domain 7\",\"check\":\"free\",\"rule\":\"gpus\","
                "\"errno\":\"EBUSY\"}",
                "{\"id\":%I,\"ok\":false,\"error\":\"something-new\",\"message\":\"m\"}",
                "{\"id\":%I,\"ok\":false,\"error\":\"denied\"}",
                "{\"id\":%I,\"ok\":false,\"error\":\"not-authorized\",\"message\":\"admins only\"}",
        } };
        pthread_t t = serve(&sc);
        struct pg *pg = NULL;
        struct pg_grant *g = NULL;
        char *reply = NULL;

        CHECK_INTEQ(pg_connect(sock_path, &pg), 0);
        CHECK_INTEQ(pg_assign(pg, "render-1", 0, "0000:03:00.0", 0, &g), PG_ERR_BUSY);
        CHECK(g == NULL);
        CHECK_STREQ(pg_last_message(pg), "device 0000:03:00.0 is already assigned to domain 7");
        CHECK_STREQ(pg_last_check(pg), "free");
        CHECK_STREQ(pg_last_rule(pg), "gpus");
        CHECK_STREQ(pg_strerror(PG_ERR_BUSY), "busy");

        /* An unknown error name is "internal": never mistaken for success. */
        CHECK_INTEQ(pg_prepare(pg, "0000:03:00.0"), PG_ERR_INTERNAL);
        CHECK_STREQ(pg_last_message(pg), "m");
        CHECK(pg_last_check(pg) == NULL);
        CHECK(pg_last_rule(pg) == NULL);

        /* Without a message, the code's description. */
        CHECK_INTEQ(pg_release(pg, "x", 0, "0000:03:00.0"), PG_ERR_DENIED);
        CHECK_STREQ(pg_last_message(pg), "the policy denies it");

        /* pg_call_json hands the refusal back too. */
        CHECK_INTEQ(pg_call_json(pg, "{\"op\":\"reload\"}", &reply), PG_ERR_NOT_AUTHORIZED);
        CHECK(reply && strstr(reply, "\"not-authorized\""));
        CHECK_STREQ(pg_last_message(pg), "admins only");
        free(reply);

        /* A request that already carries an id is refused locally. */
        CHECK_INTEQ(pg_call_json(pg, "{\"op\":\"status\",\"id\":3}", &reply), -EINVAL);
        CHECK_INTEQ(pg_call_json(pg, "{\"op\":\"status\",\"op\":\"list\"}", &reply), -EINVAL);
        pg_close(pg);
        finish(t, &sc);
}

static void test_id_mismatch(void)
{
        struct script sc = { .replies = { hello_ok, "{\"id\":999999,\"ok\":true}" } };
        pthread_t t = serve(&sc);
        struct pg *pg = NULL;
        char *json = NULL;

        CHECK_INTEQ(pg_connect(sock_path, &pg), 0);
        CHECK_INTEQ(pg_status(pg, &json), -EPROTO);
        CHECK(json == NULL);
        CHECK(strstr(pg_last_message(pg), "999999") != NULL);
        /* The stream is out of step: the handle refuses further calls. */
        CHECK_INTEQ(pg_status(pg, &json), -ENOTCONN);
        pg_close(pg);
        finish(t, &sc);
}

static void test_oversized(void)
{
        struct script sc = { .replies = { hello_ok, "BIG" } };
        pthread_t t = serve(&sc);
        struct pg *pg = NULL;
        char *json = NULL;

        CHECK_INTEQ(pg_connect(sock_path, &pg), 0);
        CHECK_INTEQ(pg_list(pg, &json), -EMSGSIZE);
        CHECK(json == NULL);
        CHECK(strlen(pg_last_message(pg)) > 0);
        pg_close(pg); /* lets the responder's read end */
        finish(t, &sc);
}

static void test_malformed(void)
{
        static const char *const replies[] = {
                "not json at all",
                "[1]",
                "{\"id\":%I,\"ok\":true,\"ok\":false}",
                "{\"id\":%I}",
                "{\"id\":%I,\"ok\":false}",
        };
        for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
                struct script sc = { .replies = { hello_ok, replies[i] } };
                pthread_t t = serve(&sc);
                struct pg *pg = NULL;

                CHECK_INTEQ(pg_connect(sock_path, &pg), 0);
                CHECK_MSG(pg_reload(pg) == -EPROTO, "reply %s", replies[i]);
                CHECK(strstr(pg_last_message(pg), "malformed") != NULL);
                pg_close(pg);
                finish(t, &sc);
        }
}

static void test_closed(void)
{
        struct script sc = { .replies = { hello_ok, "CLOSE" } };
        pthread_t t = serve(&sc);
        struct pg *pg = NULL;

        CHECK_INTEQ(pg_connect(sock_path, &pg), 0);
        int r = pg_unprepare(pg, "0000:03:00.0");
        CHECK_MSG(r == -ECONNRESET || r == -EPIPE, "r = %d", r);
        CHECK(strlen(pg_last_message(pg)) > 0);
        CHECK_INTEQ(pg_reload(pg), -ENOTCONN);
        pg_close(pg);
        finish(t, &sc);

        /* Closed right after connecting: pg_connect fails and hands nothing back. */
        struct script sc2 = { .replies = { "CLOSE" } };
        t = serve(&sc2);
        pg = NULL;
        r = pg_connect(sock_path, &pg);
        CHECK_MSG(r == -ECONNRESET || r == -EPIPE, "r = %d", r);
        CHECK(pg == NULL);
        finish(t, &sc2);
}

static void test_hello_refused(void)
{
        struct script sc = { .replies = {
                "{\"id\":%I,\"ok\":false,\"error\":\"unsupported-version\",\"message\":\"v1\"}",
        } };
        pthread_t t = serve(&sc);
        struct pg *pg = NULL;

        CHECK_INTEQ(pg_connect(sock_path, &pg), PG_ERR_UNSUPPORTED_VERSION);
        CHECK(pg == NULL);
        finish(t, &sc);
}

static void test_unreachable(void)
{
        struct pg *pg = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        unlink(sock_path);
        CHECK_INTEQ(pg_connect(sock_path, &pg), -ENOENT);
        CHECK(pg == NULL);

        /* A socket file nobody listens on. */
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        CHECK_INTEQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd);
        CHECK_INTEQ(pg_connect(sock_path, &pg), -ECONNREFUSED);
        unlink(sock_path);

        /* NULL path: $PASSGUARD_SOCKET. */
        setenv("PASSGUARD_SOCKET", sock_path, 1);
        CHECK_INTEQ(pg_connect(NULL, &pg), -ENOENT);
        struct script sc = { .replies = { hello_ok } };
        pthread_t t = serve(&sc);
        CHECK_INTEQ(pg_connect(NULL, &pg), 0);
        CHECK(pg != NULL);
        pg_close(pg);
        finish(t, &sc);
        unsetenv("PASSGUARD_SOCKET");

        char longpath[200];
        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[sizeof(longpath) - 1] = '\0';
        CHECK_INTEQ(pg_connect(longpath, &pg), -ENAMETOOLONG);
}

static void test_strerror(void)
{
        CHECK_STREQ(pg_strerror(PG_ERR_NO_IOMMU), "no-iommu");
        CHECK_STREQ(pg_strerror(PG_ERR_INTERNAL), "internal");
        CHECK_STREQ(pg_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
        CHECK_INTEQ(pg_error_from_name("group-conflict"), PG_ERR_GROUP_CONFLICT);
        CHECK_INTEQ(pg_error_from_name("nope"), -EINVAL);
        CHECK(pg_close(NULL) == NULL);
        CHECK_STREQ(pg_last_message(NULL), "");
}

int main(void)
{
        char dir[] = "/tmp/pg-test-XXXXXX";

        if (!mkdtemp(dir))
                return 1;
        snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
        /* SIGPIPE stays at its default: the library must not die of it. */
        signal(SIGPIPE, SIG_DFL);

        test_success();
        test_refusal();
        test_id_mismatch();
        test_oversized();
        test_malformed();
        test_closed();
        test_hello_refused();
        test_unreachable();
        test_strerror();

        unlink(sock_path);
        rmdir(dir);
        return harness_exit();
}
