/* SPDX-License-Identifier: MIT */
/*
 * The trust boundary: every request line goes through the op table. Malformed
 * requests are refused bad-request before anything else (even before the
 * client is authorised), unknown clients are refused not-authorized, and
 * reload swaps the policy only when the new one is valid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "pgd.h"
#include "reload.h"
#include "request.h"
#include "server.h"

#define NO_ID (-9999) /* expect "id": null */

static char tmpdir[] = "/tmp/pg-test-request-XXXXXX";
static char policy_path[256];

static const char *policy_text(unsigned admin_uid)
{
        static char text[512];

        snprintf(text, sizeof(text),
                 "version = 1;\n"
                 "clients = ( { name = \"root\"; uid = 0; }, { name = \"ops\"; uid = 1000; } );\n"
                 "admins = [ \"%s\" ];\n"
                 "rules = ( { name = \"all\"; action = \"allow\"; } );\n",
                 admin_uid == 0 ? "root" : "ops");
        return text;
}

static void write_policy(const char *text)
{
        FILE *f = fopen(policy_path, "we");
        if (!f)
                abort();
        fputs(text, f);
        fclose(f);
}

static json_t *ask(struct pgd_daemon *d, const struct pgd_peer *peer, const char *line, size_t len)
{
        json_t *reply = NULL;
        int r = pgd_request_handle(d, peer, line, len, NULL, NULL, NULL, &reply, NULL);
        CHECK_INTEQ(r, 0);
        return reply;
}

/* One request line; the reply must be a refusal with this code, id and message part. */
static void expect_refusal(struct pgd_daemon *d, const struct pgd_peer *peer, const char *line,
                           const char *code, json_int_t id, const char *message_part)
{
        json_t *reply = ask(d, peer, line, strlen(line));
        if (!reply)
                return;
        const char *error = json_string_value(json_object_get(reply, "error"));
        const char *message = json_string_value(json_object_get(reply, "message"));
        json_t *rid = json_object_get(reply, "id");

        CHECK_MSG(json_is_false(json_object_get(reply, "ok")), "%s", line);
        CHECK_MSG(error && streq(error, code), "%s: error %s, expected %s", line, error ?: "(none)",
                  code);
        if (id == NO_ID)
                CHECK_MSG(json_is_null(rid), "%s: id should be null", line);
        else
                CHECK_MSG(json_is_integer(rid) && json_integer_value(rid) == id,
                          "%s: id not echoed", line);
        if (message_part)
                CHECK_MSG(message && strstr(message, message_part), "%s: message '%s' lacks '%s'",
                          line, message ?: "(none)", message_part);
        json_decref(reply);
}

static void test_malformed(struct pgd_daemon *d, const struct pgd_peer *root)
{
        /* Not a request at all. */
        expect_refusal(d, root, "not json", "bad-request", NO_ID, "not valid JSON");
        expect_refusal(d, root, "[1,2]", "bad-request", NO_ID, "not a JSON object");
        expect_refusal(d, root, "\"hello\"", "bad-request", NO_ID, NULL);
        expect_refusal(d, root, "{\"id\":1,\"id\":2,\"op\":\"status\"}", "bad-request", NO_ID,
                       "duplicate object key");
        /* The parser's own words say what is wrong, and where. */
        expect_refusal(d, root, "{\"op\":\"status\",\"id\":1,\"op\":\"assign\"}", "bad-request",
                       NO_ID, "not valid JSON: duplicate object key");
        expect_refusal(d, root, "{\"op\":\"status\" \"id\":1}", "bad-request", NO_ID,
                       "(column ");
        /* ... made printable, whatever bytes the client sent. */
        json_t *bin = ask(d, root, "{\"op\xff\xfe\":1", 9);
        const char *m = json_string_value(json_object_get(bin, "message"));
        CHECK_MSG(m && strstr(m, "not valid JSON: "), "%s", m ?: "(no message)");
        for (const char *p = m; p && *p; p++)
                CHECK_MSG(*p >= 0x20 && *p < 0x7f, "unprintable byte in '%s'", m);
        json_decref(bin);
        expect_refusal(d, root, "{\"op\":\"hello\",\"version\":1,\"op\":\"status\",\"id\":3}",
                       "bad-request", NO_ID, NULL);

        /* The id. */
        expect_refusal(d, root, "{\"op\":\"hello\",\"version\":1}", "bad-request", NO_ID,
                       "missing 'id'");
        expect_refusal(d, root, "{\"id\":\"7\",\"op\":\"hello\",\"version\":1}", "bad-request",
                       NO_ID, "'id' must be an integer");
        expect_refusal(d, root, "{\"id\":1.5,\"op\":\"hello\",\"version\":1}", "bad-request", NO_ID,
                       "'id' must be an integer");
        expect_refusal(d, root, "{\"id\":null,\"op\":\"status\"}", "bad-request", NO_ID, NULL);

        /* The op. */
        expect_refusal(d, root, "{\"id\":7}", "bad-request", 7, "missing 'op'");
        expect_refusal(d, root, "{\"id\":7,\"op\":5}", "bad-request", 7, "'op' must be a string");
        expect_refusal(d, root, "{\"id\":7,\"op\":\"frobnicate\"}", "bad-request", 7,
                       "unknown op 'frobnicate'");
        expect_refusal(d, root, "{\"id\":7,\"op\":\"HELLO\",\"version\":1}", "bad-request", 7,
                       "unknown op 'HELLO'");

        /* Keys an op does not take. */
        expect_refusal(d, root, "{\"id\":8,\"op\":\"status\",\"extra\":1}", "bad-request", 8,
                       "unknown key 'extra' for op 'status'");
        expect_refusal(d, root, "{\"id\":8,\"op\":\"status\",\"version\":1}", "bad-request", 8,
                       "unknown key 'version'");
        expect_refusal(d, root,
                       "{\"id\":8,\"op\":\"release\",\"device\":\"03:00.0\",\"domid\":5,"
                       "\"rdm_policy\":\"strict\"}",
                       "bad-request", 8, "unknown key 'rdm_policy' for op 'release'");
        expect_refusal(d, root,
                       "{\"id\":8,\"op\":\"owner\",\"device\":\"03:00.0\",\"domain\":\"x\"}",
                       "bad-request", 8, "unknown key 'domain'");
        expect_refusal(d, root, "{\"id\":8,\"op\":\"reload\",\"device\":\"03:00.0\"}",
                       "bad-request", 8, "unknown key 'device'");

        /* hello's version. */
        expect_refusal(d, root, "{\"id\":9,\"op\":\"hello\"}", "bad-request", 9, "needs 'version'");
        expect_refusal(d, root, "{\"id\":9,\"op\":\"hello\",\"version\":\"1\"}", "bad-request", 9,
                       "'version' must be an integer");
        expect_refusal(d, root, "{\"id\":9,\"op\":\"hello\",\"version\":2}", "unsupported-version",
                       9, "version 2");

        /* Devices. */
        expect_refusal(d, root, "{\"id\":10,\"op\":\"assign\",\"domid\":5}", "bad-request", 10,
                       "needs 'device'");
        expect_refusal(d, root, "{\"id\":10,\"op\":\"owner\",\"device\":3}", "bad-request", 10,
                       "'device' must be a string");
        expect_refusal(d, root, "{\"id\":10,\"op\":\"owner\",\"device\":\"03:00\"}", "bad-request",
                       10, "invalid device '03:00'");
        expect_refusal(d, root, "{\"id\":10,\"op\":\"owner\",\"device\":\"0000:03:20.0\"}",
                       "bad-request", 10, "invalid device");
        expect_refusal(d, root, "{\"id\":10,\"op\":\"prepare\",\"device\":\"0000:03:00.8\"}",
                       "bad-request", 10, "invalid device");
        expect_refusal(d, root, "{\"id\":10,\"op\":\"unprepare\",\"device\":\"\"}", "bad-request",
                       10, "invalid device");

        /* Domains: exactly one of domain and domid. */
        expect_refusal(d, root, "{\"id\":11,\"op\":\"assign\",\"device\":\"03:00.0\"}",
                       "bad-request", 11, "needs 'domain' (a name) or 'domid'");
        expect_refusal(d, root,
                       "{\"id\":11,\"op\":\"assign\",\"device\":\"03:00.0\",\"domain\":\"a\","
                       "\"domid\":5}",
                       "bad-request", 11, "not both");
        expect_refusal(d, root,
                       "{\"id\":11,\"op\":\"explain\",\"device\":\"03:00.0\",\"domid\":-1}",
                       "bad-request", 11, "'domid' must be between 0 and 65535");
        expect_refusal(d, root,
                       "{\"id\":11,\"op\":\"release\",\"device\":\"03:00.0\",\"domid\":65536}",
                       "bad-request", 11, "'domid' must be between 0 and 65535");
        expect_refusal(d, root,
                       "{\"id\":11,\"op\":\"release\",\"device\":\"03:00.0\",\"domid\":\"5\"}",
                       "bad-request", 11, "'domid' must be an integer");
        expect_refusal(d, root,
                       "{\"id\":11,\"op\":\"assign\",\"device\":\"03:00.0\",\"domain\":\"\"}",
                       "bad-request", 11, "'domain' must be a name");
        expect_refusal(d, root,
                       "{\"id\":11,\"op\":\"assign\",\"device\":\"03:00.0\",\"domain\":"
                       "\"0123456789012345678901234567890123456789012345678901234567890123\"}",
                       "bad-request", 11, "'domain' must be a name of 1 to 63");
        expect_refusal(d, root,
                       "{\"id\":11,\"op\":\"assign\",\"device\":\"03:00.0\",\"domain\":\"a\\nb\"}",
                       "bad-request", 11, "'domain' must be a name");
        expect_refusal(d, root, "{\"id\":11,\"op\":\"assign\",\"device\":\"03:00.0\",\"domain\":7}",
                       "bad-request", 11, "'domain' must be a string");

        /* rdm_policy. */
        expect_refusal(d, root,
                       "{\"id\":12,\"op\":\"assign\",\"device\":\"03:00.0\",\"domid\":5,"
                       "\"rdm_policy\":\"loose\"}",
                       "bad-request", 12, "'rdm_policy' must be");
        expect_refusal(d, root,
                       "{\"id\":12,\"op\":\"assign\",\"device\":\"03:00.0\",\"domid\":5,"
                       "\"rdm_policy\":true}",
                       "bad-request", 12, "'rdm_policy' must be");

        /* A NUL byte, and a line over the limit. */
        static const char nul[] = "{\"id\":13,\"op\":\"status\"}\0x";
        json_t *reply = ask(d, root, nul, sizeof(nul) - 1);
        CHECK_STREQ(json_string_value(json_object_get(reply, "error")), "bad-request");
        json_decref(reply);

        size_t big = PG_WIRE_MAX_MESSAGE + 10;
        char *line = malloc(big);
        memset(line, ' ', big);
        memcpy(line, "{\"id\":14,\"op\":\"status\"}", 23);
        reply = ask(d, root, line, big);
        CHECK_STREQ(json_string_value(json_object_get(reply, "error")), "bad-request");
        CHECK_STREQ(json_string_value(json_object_get(reply, "message")), "message too long");
        json_decref(reply);
        free(line);
}

/* A reply too big for the wire becomes a refusal that says so, with the request's id. */
static void test_reply_too_big(void)
{
        json_t *big = json_pack("{s:I, s:b}", "id", (json_int_t)77, "ok", 1);
        char *pad = malloc(PG_WIRE_MAX_MESSAGE);
        char *buf = NULL;
        size_t len = 0;

        memset(pad, 'x', PG_WIRE_MAX_MESSAGE - 1);
        pad[PG_WIRE_MAX_MESSAGE - 1] = '\0';
        json_object_set_new(big, "pad", json_string(pad));
        free(pad);
        CHECK_INTEQ(pgd_request_reply_dump(big, &buf, &len), 0);
        CHECK(buf && len > 0 && len <= PG_WIRE_MAX_MESSAGE && buf[len - 1] == '\n');
        json_t *r = buf ? json_loadb(buf, len, 0, NULL) : NULL;
        CHECK(r && json_is_false(json_object_get(r, "ok")));
        CHECK(r && json_integer_value(json_object_get(r, "id")) == 77);
        CHECK_STREQ(json_string_value(json_object_get(r, "error")), "internal");
        CHECK(r && strstr(json_string_value(json_object_get(r, "message")), "64 KiB"));
        json_decref(r);
        free(buf);
        json_decref(big);

        /* A reply that fits goes as it is. */
        json_t *small = json_pack("{s:I, s:b, s:s}", "id", (json_int_t)78, "ok", 1, "x", "y");
        buf = NULL;
        CHECK_INTEQ(pgd_request_reply_dump(small, &buf, &len), 0);
        CHECK_STREQ(buf, "{\"id\":78,\"ok\":true,\"x\":\"y\"}\n");
        free(buf);
        json_decref(small);
}

static void test_parse_normalises(void)
{
        struct pgd_error err = {};
        struct pgd_request req;
        enum pgd_perm perm;
        bool has_id;
        json_t *msg = json_loads("{\"id\":42,\"op\":\"assign\",\"device\":\"0A:1f.7\","
                                 "\"domid\":32751,\"rdm_policy\":\"relaxed\"}",
                                 0, NULL);

        CHECK_INTEQ(pgd_request_parse(msg, &req, &perm, &has_id, &err), 0);
        CHECK(has_id);
        CHECK_INTEQ(req.id, 42);
        CHECK_STREQ(req.op, "assign");
        CHECK_INTEQ(perm, PGD_PERM_CLIENT);
        CHECK(req.has_device);
        CHECK_STREQ(req.bdf, "0000:0a:1f.7");
        CHECK_INTEQ(req.sbdf, PG_SBDF(0, 0x0a, 0x1f, 7));
        CHECK(req.has_domid);
        CHECK_INTEQ(req.domid, 32751);
        CHECK(req.domain == NULL);
        CHECK_INTEQ(req.rdm_relaxed, 1);
        json_decref(msg);

        msg = json_loads("{\"op\":\"release\",\"domain\":\"render-1\",\"id\":-3,"
                         "\"device\":\"0001:03:00.0\"}",
                         0, NULL);
        CHECK_INTEQ(pgd_request_parse(msg, &req, &perm, &has_id, &err), 0);
        CHECK_STREQ(req.domain, "render-1");
        CHECK(!req.has_domid);
        CHECK_INTEQ(req.id, -3);
        CHECK_STREQ(req.bdf, "0001:03:00.0");
        CHECK_INTEQ(req.rdm_relaxed, -1);
        json_decref(msg);

        /* The permission column of the table. */
        static const struct {
                const char *line;
                enum pgd_perm perm;
        } perms[] = {
                {"{\"id\":1,\"op\":\"hello\",\"version\":1}", PGD_PERM_ANYONE},
                {"{\"id\":1,\"op\":\"status\"}", PGD_PERM_CLIENT},
                {"{\"id\":1,\"op\":\"list\"}", PGD_PERM_CLIENT},
                {"{\"id\":1,\"op\":\"owner\",\"device\":\"03:00.0\"}", PGD_PERM_CLIENT},
                {"{\"id\":1,\"op\":\"prepare\",\"device\":\"03:00.0\"}", PGD_PERM_CLIENT},
                {"{\"id\":1,\"op\":\"unprepare\",\"device\":\"03:00.0\"}", PGD_PERM_ADMIN},
                {"{\"id\":1,\"op\":\"reload\"}", PGD_PERM_ADMIN},
        };
        for (size_t i = 0; i < ELEMENTSOF(perms); i++) {
                msg = json_loads(perms[i].line, 0, NULL);
                CHECK_INTEQ(pgd_request_parse(msg, &req, &perm, &has_id, &err), 0);
                CHECK_MSG(perm == perms[i].perm, "%s", perms[i].line);
                json_decref(msg);
        }
}

static void test_authorisation(struct pgd_daemon *d, const struct pgd_peer *root)
{
        const struct pgd_peer stranger = {.uid = 4242, .gid = 4242, .pid = 1};
        const struct pgd_peer ops = {.uid = 1000, .gid = 1000, .pid = 1};
        json_t *reply;

        /* Anyone may say hello. */
        static const char hello[] = "{\"id\":1,\"op\":\"hello\",\"version\":1}";
        reply = ask(d, &stranger, hello, strlen(hello));
        CHECK(json_is_true(json_object_get(reply, "ok")));
        CHECK_INTEQ(json_integer_value(json_object_get(reply, "id")), 1);
        CHECK_INTEQ(json_integer_value(json_object_get(reply, "version")), 1);
        CHECK_STREQ(json_string_value(json_object_get(reply, "daemon")), "passguardd " PG_VERSION);
        json_decref(reply);

        /* An unknown client gets nothing else, and is named. */
        expect_refusal(d, &stranger, "{\"id\":2,\"op\":\"status\"}", "not-authorized", 2,
                       "uid 4242");
        expect_refusal(d, &stranger, "{\"id\":2,\"op\":\"list\"}", "not-authorized", 2, NULL);
        expect_refusal(d, &stranger,
                       "{\"id\":2,\"op\":\"assign\",\"device\":\"03:00.0\",\"domid\":5}",
                       "not-authorized", 2, NULL);
        expect_refusal(d, &stranger, "{\"id\":2,\"op\":\"prepare\",\"device\":\"03:00.0\"}",
                       "not-authorized", 2, NULL);

        /* Well-formed before authorised: a stranger's malformed request is bad-request. */
        expect_refusal(d, &stranger, "{\"id\":3,\"op\":\"assign\",\"device\":\"nope\",\"domid\":5}",
                       "bad-request", 3, NULL);
        expect_refusal(d, &stranger, "{\"id\":3,\"op\":\"reload\",\"x\":1}", "bad-request", 3,
                       NULL);

        /* A known client that is not an admin. */
        expect_refusal(d, &ops, "{\"id\":4,\"op\":\"reload\"}", "not-authorized", 4,
                       "not an admin");
        expect_refusal(d, &ops, "{\"id\":4,\"op\":\"unprepare\",\"device\":\"03:00.0\"}",
                       "not-authorized", 4, "not an admin");

        /* The refusal names the check that failed. */
        static const char reload[] = "{\"id\":5,\"op\":\"reload\"}";
        reply = ask(d, &ops, reload, strlen(reload));
        CHECK_STREQ(json_string_value(json_object_get(reply, "check")), "client");
        json_decref(reply);
        (void)root;
}

static void test_reload(struct pgd_daemon *d, const struct pgd_peer *root)
{
        const struct pgd_peer ops = {.uid = 1000, .gid = 1000, .pid = 1};
        static const char reload[] = "{\"id\":20,\"op\":\"reload\"}";
        json_t *reply;

        /* A valid new policy is swapped in: uid 1000 becomes the admin. */
        write_policy(policy_text(1000));
        reply = ask(d, root, reload, strlen(reload));
        CHECK(json_is_true(json_object_get(reply, "ok")));
        CHECK_INTEQ(json_integer_value(json_object_get(reply, "rules")), 1);
        json_decref(reply);
        expect_refusal(d, root, reload, "not-authorized", 20, "not an admin");

        /* An invalid one is refused with file:line and the old one stays. */
        struct pg_policy *before = d->policy;
        write_policy("version = 1;\nclients = ( { name = \"ops\"; uid = 1000; } );\n"
                     "admins = [ \"ops\" ];\nbogus = 3;\n");
        reply = ask(d, &ops, reload, strlen(reload));
        CHECK_STREQ(json_string_value(json_object_get(reply, "error")), "policy-invalid");
        char where[300];
        snprintf(where, sizeof(where), "%s:4:", policy_path);
        const char *message = json_string_value(json_object_get(reply, "message"));
        CHECK_MSG(message && strstr(message, where), "'%s' lacks '%s'", message ?: "", where);
        json_decref(reply);
        CHECK(d->policy == before);
        expect_refusal(d, root, reload, "not-authorized", 20, NULL);

        /* A policy that vanished: refused the same way, still the old one. */
        unlink(policy_path);
        struct pgd_error err = {};
        CHECK_INTEQ(pgd_daemon_reload(d, &err), PG_ERR_POLICY_INVALID);
        CHECK_INTEQ(err.code, PG_ERR_POLICY_INVALID);
        CHECK(strstr(err.message, policy_path) != NULL);
        CHECK(d->policy == before);
}

int main(void)
{
        struct pg_policy_diags diags = {};
        struct pgd_daemon d = {};
        const struct pgd_peer root = {.uid = 0, .gid = 0, .pid = 1};
        int r;

        if (!mkdtemp(tmpdir))
                return 99;
        snprintf(policy_path, sizeof(policy_path), "%s/policy.conf", tmpdir);
        write_policy(policy_text(0));
        r = pg_policy_load(policy_path, &d.policy, &diags);
        if (r < 0) {
                pg_policy_diags_print(&diags, stderr);
                return 99;
        }
        d.cfg.policy_path = policy_path;

        test_malformed(&d, &root);
        test_parse_normalises();
        test_reply_too_big();
        test_authorisation(&d, &root);
        test_reload(&d, &root);

        pg_policy_free(d.policy);
        rmdir(tmpdir);
        return harness_exit();
}
