/* SPDX-License-Identifier: MIT */
/*
 * The grant store: round trips through the real file, strict parsing, and
 * the durability rules of commit (DESIGN.md invariant 4).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "grants.h"
#include "harness.h"
#include "pg-wire.h"
#include "testutil.h"

static struct pgd_grant make_grant(const char *bdf, uint32_t domid, const char *uuid,
                                   const char *name, const char *rule)
{
        struct pgd_grant g = {
                .domid = domid,
                .client_uid = 0,
                .client_pid = 4242,
                .rdm_policy = PG_POLICY_RDM_STRICT,
                .time = 1700000000,
        };
        if (pg_bdf_parse(bdf, &g.sbdf) < 0)
                abort();
        snprintf(g.domain_uuid, sizeof(g.domain_uuid), "%s", uuid);
        snprintf(g.domain_name, sizeof(g.domain_name), "%s", name);
        snprintf(g.rule, sizeof(g.rule), "%s", rule);
        return g;
}

static const char *UUID5 = "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f";
static const char *UUID6 = "6a0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e60";

static void test_missing_file_is_empty(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        _cleanup_(freep) char *why = NULL;

        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK(g && pgd_grants_count(g) == 0);
        /* Opening creates nothing. */
        CHECK(!file_exists(dir, "grants.json"));
}

static void test_round_trip(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        struct pgd_grant b = make_grant("0000:01:00.1", 6, UUID6, "net-1", "nics");
        struct pgd_grant c = make_grant("0001:00:02.0", 5, UUID5, "render-1", "gpus");
        _cleanup_(freep) char *why = NULL;
        struct stat st;

        snprintf(b.client_unit, sizeof(b.client_unit), "libvirtd.service");
        b.rdm_policy = PG_POLICY_RDM_RELAXED;
        b.client_uid = 107;
        b.client_pid = 99;
        b.time = 1712345678;

        CHECK_INTEQ(pgd_grants_new_empty(dir, &g), 0);
        CHECK_INTEQ(pgd_grants_add(g, &a), 0);
        CHECK_INTEQ(pgd_grants_add(g, &c), 0);
        CHECK_INTEQ(pgd_grants_add(g, &b), 0);
        CHECK_INTEQ(pgd_grants_add(g, &a), -EEXIST);
        CHECK_INTEQ(pgd_grants_set_prepared(g, a.sbdf, "nouveau"), 0);
        CHECK_INTEQ(pgd_grants_set_prepared(g, b.sbdf, ""), 0);
        CHECK_INTEQ(pgd_grants_count_domain(g, UUID5), 2);
        CHECK_INTEQ(pgd_grants_commit(g), 0);

        /* Written 0600, and no temporary file is left behind. */
        CHECK(stat(pgd_grants_path(g), &st) == 0 && (st.st_mode & 07777) == 0600);
        CHECK(!file_exists(dir, "grants.json.tmp"));

        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK_INTEQ(pgd_grants_count(h), 3);
        /* Sorted by device, whatever the order of adding. */
        CHECK_INTEQ(pgd_grants_get(h, 0)->sbdf, b.sbdf);
        CHECK_INTEQ(pgd_grants_get(h, 1)->sbdf, a.sbdf);
        CHECK_INTEQ(pgd_grants_get(h, 2)->sbdf, c.sbdf);
        CHECK(pgd_grants_get(h, 3) == NULL);

        const struct pgd_grant *x = pgd_grants_find(h, b.sbdf);
        CHECK(x != NULL);
        if (x) {
                CHECK_INTEQ(x->domid, 6);
                CHECK_STREQ(x->domain_uuid, UUID6);
                CHECK_STREQ(x->domain_name, "net-1");
                CHECK_INTEQ(x->client_uid, 107);
                CHECK_INTEQ(x->client_pid, 99);
                CHECK_STREQ(x->client_unit, "libvirtd.service");
                CHECK_STREQ(x->rule, "nics");
                CHECK_INTEQ(x->rdm_policy, PG_POLICY_RDM_RELAXED);
                CHECK_INTEQ(x->time, 1712345678);
        }
        x = pgd_grants_find(h, a.sbdf);
        CHECK(x && streq(x->client_unit, "") && x->rdm_policy == PG_POLICY_RDM_STRICT);

        CHECK_STREQ(pgd_grants_prepared_driver(h, a.sbdf), "nouveau");
        CHECK_STREQ(pgd_grants_prepared_driver(h, b.sbdf), "");
        CHECK(pgd_grants_prepared_driver(h, c.sbdf) == NULL);

        /* Remove and clear, commit, reopen. */
        CHECK_INTEQ(pgd_grants_remove(h, a.sbdf), 0);
        CHECK_INTEQ(pgd_grants_remove(h, a.sbdf), -ENOENT);
        CHECK_INTEQ(pgd_grants_clear_prepared(h, a.sbdf), 0);
        CHECK_INTEQ(pgd_grants_clear_prepared(h, a.sbdf), -ENOENT);
        CHECK_INTEQ(pgd_grants_commit(h), 0);
        g = pgd_grants_free(g);
        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(pgd_grants_count(g), 2);
        CHECK(pgd_grants_find(g, a.sbdf) == NULL);
        CHECK(pgd_grants_prepared_driver(g, a.sbdf) == NULL);
        CHECK_STREQ(pgd_grants_prepared_driver(g, b.sbdf), "");
        CHECK_INTEQ(pgd_grants_count_domain(g, UUID5), 1);
}

/* The SHA-256 is checked against coreutils, on inputs of one and several blocks. */
static void test_checksum_matches_sha256sum(void)
{
        const char *texts[] = {
                "{}",
                "{\"a\":\"0123456789012345678901234567890123456789012345678901\"}",
                "{\"format\":1,\"grants\":[],\"prepared\":[],\"x\":\"" /* > 128 bytes */
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        };
        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                json_t *j = json_loads(texts[i], 0, NULL);
                char sum[PGD_GRANTS_CHECKSUM_MAX], want[128];
                _cleanup_(freep) char *canon = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

                CHECK(j && canon);
                if (!j || !canon)
                        continue;
                CHECK_INTEQ(pgd_grants_checksum(j, sum), 0);
                CHECK(sha256sum_of(canon, want, sizeof(want)) == 0);
                CHECK_STREQ(sum, want);
                json_decref(j);
        }
}

static void test_corruption_detected(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        _cleanup_(freep) char *before = NULL, *after = NULL;
        _cleanup_(freep) char *why = NULL;
        size_t n_before = 0, n_after = 0;

        CHECK_INTEQ(pgd_grants_new_empty(dir, &g), 0);
        CHECK_INTEQ(pgd_grants_add(g, &a), 0);
        CHECK_INTEQ(pgd_grants_commit(g), 0);

        /* Flip one character of the domain name: still valid JSON, wrong content. */
        before = read_text(dir, "grants.json", &n_before);
        CHECK(before != NULL);
        if (!before)
                return;
        char *p = strstr(before, "render-1");
        CHECK(p != NULL);
        if (!p)
                return;
        p[0] = 'R';
        write_text(dir, "grants.json", before);

        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), -EBADMSG);
        CHECK(h == NULL);
        CHECK_STREQ(why, "checksum mismatch");
        /* Never silently emptied: the file is exactly as it was. */
        after = read_text(dir, "grants.json", &n_after);
        CHECK(after && n_after == n_before && memcmp(after, before, n_before) == 0);

        /* Truncated. */
        before[n_before / 2] = '\0';
        write_text(dir, "grants.json", before);
        why = pg_free(why);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), -EBADMSG);
        CHECK(why && strstr(why, "line") != NULL);

        /* Empty. */
        write_text(dir, "grants.json", "");
        why = pg_free(why);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), -EBADMSG);
}

/* Write obj (a JSON text without "checksum") with a correct checksum added. */
static void write_signed(const char *dir, const char *text)
{
        json_error_t err;
        json_t *j = json_loads(text, 0, &err);
        char sum[PGD_GRANTS_CHECKSUM_MAX];

        if (!j) {
                fprintf(stderr, "bad test JSON: %s\n", err.text);
                abort();
        }
        if (pgd_grants_checksum(j, sum) < 0 || json_object_set_new(j, "checksum", json_string(sum)))
                abort();
        char *s = json_dumps(j, JSON_INDENT(2));
        write_text(dir, "grants.json", s);
        free(s);
        json_decref(j);
}

#define GRANT_OK                                                                                   \
        "{\"device\": \"0000:03:00.0\", \"domid\": 5, \"domain_uuid\": "                           \
        "\"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\", \"domain_name\": \"render-1\", "                \
        "\"client_uid\": 0, \"client_pid\": 123, \"client_unit\": \"\", \"rule\": \"r\", "         \
        "\"rdm_policy\": \"strict\", \"time\": 1700000000"

static void expect_bad(const char *what, const char *text, int want_r, const char *want_why,
                       bool sign)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        _cleanup_(freep) char *before = NULL, *after = NULL;
        size_t nb = 0, na = 0;
        _cleanup_(freep) char *why = NULL;
        int r;

        if (sign)
                write_signed(dir, text);
        else
                write_text(dir, "grants.json", text);
        before = read_text(dir, "grants.json", &nb);
        r = pgd_grants_open(dir, &g, &why);
        CHECK_MSG(r == want_r, "%s: got %d, expected %d (%s)", what, r, want_r, why ? why : "-");
        CHECK_MSG(why && strstr(why, want_why), "%s: reason \"%s\", expected \"%s\"", what,
                  why ? why : "(null)", want_why);
        CHECK(g == NULL);
        after = read_text(dir, "grants.json", &na);
        CHECK(before && after && na == nb && memcmp(before, after, nb) == 0);
}

static void test_strict_parse(void)
{
        /* A signed file that is fine, to show the others fail for their own reason. */
        {
                _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
                _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
                _cleanup_(freep) char *why = NULL;
                write_signed(dir, "{\"format\": 1, \"grants\": [" GRANT_OK "}], \"prepared\": "
                                  "[{\"device\": \"0000:03:00.0\", \"driver\": \"e1000\"}]}");
                CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
                CHECK(g && pgd_grants_count(g) == 1);
                CHECK(g && streq_ptr(pgd_grants_prepared_driver(g, PG_SBDF(0, 3, 0, 0)), "e1000"));
        }
        expect_bad("format 2", "{\"format\": 2, \"grants\": [], \"prepared\": []}",
                   -EPROTONOSUPPORT, "unsupported format 2", true);
        expect_bad("format 2, unsigned", "{\"format\": 2, \"whatever\": true}", -EPROTONOSUPPORT,
                   "unsupported format 2", false);
        expect_bad("format string", "{\"format\": \"1\", \"grants\": [], \"prepared\": []}",
                   -EBADMSG, "'format' must be an integer", true);
        expect_bad("no checksum", "{\"format\": 1, \"grants\": [], \"prepared\": []}", -EBADMSG,
                   "missing key 'checksum'", false);
        expect_bad("top-level unknown key",
                   "{\"format\": 1, \"grants\": [], \"prepared\": [], \"extra\": 1}", -EBADMSG,
                   "unknown key 'extra'", true);
        expect_bad("grant unknown key",
                   "{\"format\": 1, \"grants\": [" GRANT_OK "}, {\"device\": \"0000:04:00.0\", "
                   "\"foo\": 1}], \"prepared\": []}",
                   -EBADMSG, "grant 1: unknown key 'foo'", true);
        expect_bad("grant missing key",
                   "{\"format\": 1, \"grants\": [{\"device\": \"0000:03:00.0\"}], "
                   "\"prepared\": []}",
                   -EBADMSG, "grant 0: missing key 'domid'", true);
        expect_bad("duplicate key",
                   "{\"format\": 1, \"format\": 1, \"grants\": [], \"prepared\": [], "
                   "\"checksum\": \"sha256:00\"}",
                   -EBADMSG, "duplicate object key", false);
        expect_bad("duplicate device",
                   "{\"format\": 1, \"grants\": [" GRANT_OK "}, " GRANT_OK "}], \"prepared\": []}",
                   -EBADMSG, "grant 1: device 0000:03:00.0 is granted twice", true);
        expect_bad("bad BDF",
                   "{\"format\": 1, \"grants\": [{\"device\": \"0000:03:20.0\", \"domid\": 5, "
                   "\"domain_uuid\": \"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\", \"domain_name\": "
                   "\"x\", \"client_uid\": 0, \"client_pid\": 1, \"client_unit\": \"\", \"rule\": "
                   "\"r\", \"rdm_policy\": \"strict\", \"time\": 1}], \"prepared\": []}",
                   -EBADMSG, "grant 0: 'device' is not a PCI address", true);
        expect_bad("BDF without segment",
                   "{\"format\": 1, \"grants\": [], \"prepared\": [{\"device\": \"03:00.0\", "
                   "\"driver\": \"\"}]}",
                   -EBADMSG, "prepared 0: 'device' is not a PCI address", true);
        expect_bad("domid type",
                   "{\"format\": 1, \"grants\": [{\"device\": \"0000:03:00.0\", \"domid\": \"5\", "
                   "\"domain_uuid\": \"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\", \"domain_name\": "
                   "\"x\", \"client_uid\": 0, \"client_pid\": 1, \"client_unit\": \"\", \"rule\": "
                   "\"r\", \"rdm_policy\": \"strict\", \"time\": 1}], \"prepared\": []}",
                   -EBADMSG, "grant 0: 'domid' must be an integer, not a string", true);
        expect_bad("domid 0",
                   "{\"format\": 1, \"grants\": [{\"device\": \"0000:03:00.0\", \"domid\": 0, "
                   "\"domain_uuid\": \"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\", \"domain_name\": "
                   "\"x\", \"client_uid\": 0, \"client_pid\": 1, \"client_unit\": \"\", \"rule\": "
                   "\"r\", \"rdm_policy\": \"strict\", \"time\": 1}], \"prepared\": []}",
                   -EBADMSG, "grant 0: 'domid' is out of range", true);
        expect_bad("bad uuid",
                   "{\"format\": 1, \"grants\": [{\"device\": \"0000:03:00.0\", \"domid\": 5, "
                   "\"domain_uuid\": \"5F0C1D2E-8A4B-4C6D-9E7F-0A1B2C3D4E5F\", \"domain_name\": "
                   "\"x\", \"client_uid\": 0, \"client_pid\": 1, \"client_unit\": \"\", \"rule\": "
                   "\"r\", \"rdm_policy\": \"strict\", \"time\": 1}], \"prepared\": []}",
                   -EBADMSG, "grant 0: 'domain_uuid' is not a lowercase UUID", true);
        expect_bad("bad rdm",
                   "{\"format\": 1, \"grants\": [{\"device\": \"0000:03:00.0\", \"domid\": 5, "
                   "\"domain_uuid\": \"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\", \"domain_name\": "
                   "\"x\", \"client_uid\": 0, \"client_pid\": 1, \"client_unit\": \"\", \"rule\": "
                   "\"r\", \"rdm_policy\": \"loose\", \"time\": 1}], \"prepared\": []}",
                   -EBADMSG, "grant 0: 'rdm_policy' must be \"strict\" or \"relaxed\"", true);
        expect_bad("duplicate prepared",
                   "{\"format\": 1, \"grants\": [], \"prepared\": [{\"device\": \"0000:03:00.0\", "
                   "\"driver\": \"a\"}, {\"device\": \"0000:03:00.0\", \"driver\": \"b\"}]}",
                   -EBADMSG, "prepared 1: device 0000:03:00.0 is listed twice", true);
        expect_bad("grants not an array", "{\"format\": 1, \"grants\": {}, \"prepared\": []}",
                   -EBADMSG, "'grants' must be an array, not an object", true);
        expect_bad("not an object", "[1, 2]", -EBADMSG, "top level must be an object", false);
}

static void test_commit_failures(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        struct pgd_grant b = make_grant("0000:04:00.0", 5, UUID5, "render-1", "gpus");
        _cleanup_(freep) char *missing = NULL, *notdir = NULL, *before = NULL, *after = NULL;
        size_t nb = 0, na = 0;
        _cleanup_(freep) char *why = NULL;

        /* A state directory that does not exist: error, nothing created. */
        CHECK(asprintf(&missing, "%s/nope", dir) > 0);
        CHECK_INTEQ(pgd_grants_new_empty(missing, &g), 0);
        CHECK_INTEQ(pgd_grants_add(g, &a), 0);
        CHECK_INTEQ(pgd_grants_commit(g), -ENOENT);
        CHECK(!file_exists(dir, "nope"));
        g = pgd_grants_free(g);

        /* A state "directory" that is a file. */
        write_text(dir, "plain", "x");
        CHECK(asprintf(&notdir, "%s/plain", dir) > 0);
        CHECK_INTEQ(pgd_grants_new_empty(notdir, &g), 0);
        CHECK_INTEQ(pgd_grants_add(g, &a), 0);
        CHECK_INTEQ(pgd_grants_commit(g), -ENOTDIR);
        g = pgd_grants_free(g);

        /* The temporary file cannot be created: the committed file stays as it was. */
        CHECK_INTEQ(pgd_grants_new_empty(dir, &g), 0);
        CHECK_INTEQ(pgd_grants_add(g, &a), 0);
        CHECK_INTEQ(pgd_grants_commit(g), 0);
        before = read_text(dir, "grants.json", &nb);
        CHECK(mkdir_in(dir, "grants.json.tmp") == 0);
        CHECK_INTEQ(pgd_grants_add(g, &b), 0);
        CHECK_INTEQ(pgd_grants_commit(g), -EISDIR);
        after = read_text(dir, "grants.json", &na);
        CHECK(before && after && na == nb && memcmp(before, after, nb) == 0);
        CHECK(rmdir_in(dir, "grants.json.tmp") == 0);

        /* The rename fails (grants.json is a directory): the temporary file is removed. */
        {
                _cleanup_(tmpdir_freep) char *dir2 = tmpdir_new();
                _cleanup_(pgd_grants_freep) struct pgd_grants *k = NULL;
                _cleanup_(freep) char *sub = path_in(dir2, "grants.json");
                int r;

                CHECK(mkdir(sub, 0700) == 0);
                write_text(sub, "keep", "x");
                CHECK_INTEQ(pgd_grants_new_empty(dir2, &k), 0);
                CHECK_INTEQ(pgd_grants_add(k, &a), 0);
                r = pgd_grants_commit(k);
                CHECK_MSG(r == -EISDIR || r == -ENOTEMPTY, "commit: %d", r);
                CHECK(!file_exists(dir2, "grants.json.tmp"));
                CHECK(file_exists(sub, "keep"));
        }

        /* A stale temporary file (a crash before the rename) is removed on open. */
        write_text(dir, "grants.json.tmp", "half a fi");
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK(h && pgd_grants_count(h) == 1);
        CHECK(!file_exists(dir, "grants.json.tmp"));
}

/* ---- the journal ---- */

static int record(struct pgd_grants *g, enum pgd_record_op op, uint64_t intent,
                  const struct pgd_grant *gr, const char *bdf, const char *driver,
                  uint64_t *ret_seq)
{
        struct pgd_record r = {.op = op, .intent = intent};
        int k;

        if (gr) {
                r.grant = *gr;
                r.sbdf = gr->sbdf;
        } else if (pg_bdf_parse(bdf, &r.sbdf) < 0)
                abort();
        snprintf(r.driver, sizeof(r.driver), "%s", driver ? driver : "");
        k = pgd_grants_record(g, &r);
        if (ret_seq)
                *ret_seq = r.seq;
        return k;
}

static size_t count_lines(const char *text)
{
        size_t n = 0;

        for (const char *p = text; p && *p; p++)
                n += *p == '\n';
        return n;
}

/* Records are replayed over the snapshot; open intents survive a restart. */
static void test_journal_replay(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        _cleanup_(freep) char *text = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        struct pgd_grant b = make_grant("0000:04:00.0", 6, UUID6, "net-1", "nics");
        uint64_t ia = 0, ib = 0, ip = 0;
        _cleanup_(freep) char *why = NULL, *file = NULL;
        size_t n = 0;

        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &ia), 0);
        CHECK_INTEQ(ia, 1);
        CHECK_INTEQ(pgd_grants_n_intents(g), 1);
        CHECK_INTEQ(pgd_grants_count(g), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, ia, &a, NULL, NULL, NULL), 0);
        CHECK_INTEQ(pgd_grants_n_intents(g), 0);
        CHECK_INTEQ(pgd_grants_count(g), 1);
        /* an outcome for an intent that is not open is refused, and changes nothing */
        CHECK_INTEQ(record(g, PGD_RECORD_ABORT, ia, NULL, "0000:03:00.0", NULL, NULL), -ENOENT);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_PREPARE, 0, NULL, "0000:05:00.0", "igb", &ip), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_PREPARED, ip, NULL, "0000:05:00.0", "igb", NULL), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &b, NULL, NULL, &ib), 0);
        CHECK_INTEQ(pgd_grants_unsynced(g), 5);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        CHECK_INTEQ(pgd_grants_unsynced(g), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0); /* nothing to sync */

        /* no snapshot yet: the journal alone, its base line first */
        CHECK(!file_exists(dir, "grants.json"));
        text = read_text(dir, "grants.journal", &n);
        CHECK(text && strncmp(text, "{\"op\":\"base\"", 12) == 0);
        CHECK_INTEQ(count_lines(text), 6);

        CHECK_INTEQ(pgd_grants_load(dir, &h, &why, &file), 0);
        CHECK_INTEQ(pgd_grants_count(h), 1);
        CHECK(pgd_grants_find(h, a.sbdf) && pgd_grants_find(h, a.sbdf)->domid == 5);
        CHECK_STREQ(pgd_grants_prepared_driver(h, PG_SBDF(0, 5, 0, 0)), "igb");
        /* b was about to be assigned: the intent is open, b has no grant */
        CHECK_INTEQ(pgd_grants_n_intents(h), 1);
        const struct pgd_intent *in = pgd_grants_intent(h, 0);
        CHECK(in && in->seq == ib && in->op == PGD_RECORD_INTENT_ASSIGN && in->sbdf == b.sbdf &&
              in->grant.domid == 6);
        CHECK(pgd_grants_find(h, b.sbdf) == NULL);

        /* records go on after a restart, numbered on */
        uint64_t seq = 0;
        CHECK_INTEQ(record(h, PGD_RECORD_ABORT, ib, NULL, "0000:04:00.0", NULL, &seq), 0);
        CHECK_INTEQ(seq, ib + 1);
        CHECK_INTEQ(record(h, PGD_RECORD_RELEASE, 0, NULL, "0000:03:00.0", NULL, NULL), 0);
        CHECK_INTEQ(record(h, PGD_RECORD_UNPREPARED, 0, NULL, "0000:05:00.0", NULL, NULL), 0);
        CHECK_INTEQ(pgd_grants_sync(h), 0);
        g = pgd_grants_free(g);
        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(pgd_grants_count(g), 0);
        CHECK_INTEQ(pgd_grants_n_intents(g), 0);
        CHECK(pgd_grants_prepared_driver(g, PG_SBDF(0, 5, 0, 0)) == NULL);
}

/* A torn last record is ignored; a bad record before a good one is corruption. */
static void test_journal_torn_and_corrupt(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        _cleanup_(freep) char *good = NULL, *path = path_in(dir, "grants.journal");
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        struct pgd_grant b = make_grant("0000:04:00.0", 6, UUID6, "net-1", "nics");
        _cleanup_(freep) char *why = NULL, *file = NULL;
        uint64_t ia = 0, ib = 0;
        size_t n = 0;

        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &ia), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, ia, &a, NULL, NULL, NULL), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &b, NULL, NULL, &ib), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, ib, &b, NULL, NULL, NULL), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        good = read_text(dir, "grants.journal", &n);
        CHECK(good);
        if (!good)
                return;

        /* half a record after the last one: a crash mid-append */
        {
                _cleanup_(freep) char *t = NULL;
                CHECK(asprintf(&t, "%s{\"op\":\"release\",\"seq\":5,\"dev", good) > 0);
                write_text(dir, "grants.journal", t);
                CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
                CHECK_INTEQ(pgd_grants_count(h), 2);
                h = pgd_grants_free(h);
        }
        /* zeros where the last record should be: torn too */
        {
                _cleanup_(freep) char *t = strdup(good);
                char *last = t ? strrchr(t, '{') : NULL;
                CHECK(last);
                if (last)
                        memset(last, 0, strlen(last));
                /* the records as written (the zeros kept ahead of them end the string) */
                size_t len = strlen(good);
                int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
                CHECK(fd >= 0 && write(fd, t, len) == (ssize_t)len);
                close(fd);
                CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
                CHECK_INTEQ(pgd_grants_count(h), 1); /* b's grant was never synced */
                CHECK_INTEQ(pgd_grants_n_intents(h), 1);
                /* the torn part is cut off by the next record */
                CHECK_INTEQ(pgd_grants_needs_commit(h), false);
                h = pgd_grants_free(h);
        }
        /* a flipped byte in the second record, with good ones after it: refused */
        {
                _cleanup_(freep) char *t = strdup(good);
                char *second = t ? strchr(strchr(strchr(t, '\n') + 1, '\n') + 1, '"') : NULL;
                char *digit = second ? strstr(second, "\"domid\":") : NULL;
                CHECK(digit);
                if (digit)
                        digit[8] = digit[8] == '5' ? '6' : '5';
                write_text(dir, "grants.journal", t);
                CHECK_INTEQ(pgd_grants_load(dir, &h, &why, &file), -EBADMSG);
                CHECK(h == NULL);
                CHECK(file && streq(file, path));
                CHECK_MSG(why && strstr(why, "record 2") && strstr(why, "checksum"), "why: %s",
                          why ? why : "(none)");
                /* untouched */
                _cleanup_(freep) char *again = read_text(dir, "grants.journal", &n);
                CHECK(again && streq(again, t));
        }
        /* records out of sequence */
        {
                _cleanup_(freep) char *t = NULL;
                const char *second = strchr(good, '\n') + 1;
                const char *third = strchr(second, '\n') + 1;
                CHECK(asprintf(&t, "%.*s%s", (int)(second - good), good, third) > 0);
                write_text(dir, "grants.journal", t);
                why = pg_free(why);
                CHECK_INTEQ(pgd_grants_open(dir, &h, &why), -EBADMSG);
                CHECK_MSG(why && strstr(why, "record 2"), "why: %s", why ? why : "(none)");
        }
}

/*
 * Compaction: the snapshot takes every change, the journal starts again with
 * the intents still open; an interrupted one loads as before or as after.
 */
/*
 * A batch: records are applied to memory at once and written together when
 * the batch ends; a sync in between writes them first, and a compaction in
 * between takes them into the snapshot (they are not written twice).
 */
static void test_journal_batch(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        struct pgd_grant b = make_grant("0000:04:00.0", 6, UUID6, "net-1", "nics");
        _cleanup_(freep) char *why = NULL;
        uint64_t ia = 0, ib = 0, seq = 0;
        size_t n = 0;

        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &ia), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        size_t before = pgd_grants_journal_size(g);

        CHECK_INTEQ(pgd_grants_batch(g, true), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, ia, &a, NULL, NULL, NULL), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &b, NULL, NULL, &ib), 0);
        /* in memory at once, not in the file yet */
        CHECK_INTEQ(pgd_grants_count(g), 1);
        CHECK_INTEQ(pgd_grants_n_intents(g), 1);
        CHECK_INTEQ(pgd_grants_journal_size(g), before);
        _cleanup_(freep) char *text = read_text(dir, "grants.journal", &n);
        CHECK_INTEQ(count_lines(text), 2);
        /* a refused record changes nothing, in the batch either */
        CHECK_INTEQ(record(g, PGD_RECORD_ABORT, ia, NULL, "0000:03:00.0", NULL, NULL), -ENOENT);
        CHECK_INTEQ(pgd_grants_batch(g, false), 0);
        CHECK(pgd_grants_journal_size(g) > before);
        text = pg_free(text);
        text = read_text(dir, "grants.journal", &n);
        CHECK_INTEQ(count_lines(text), 4);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK_INTEQ(pgd_grants_count(h), 1);
        CHECK(pgd_grants_find_intent(h, ib) != NULL);
        h = pgd_grants_free(h);

        /* a sync in the middle of a batch writes what the batch holds first */
        CHECK_INTEQ(pgd_grants_batch(g, true), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, ib, &b, NULL, NULL, &seq), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0); /* before the batch ends */
        CHECK_INTEQ(pgd_grants_count(h), 2);
        CHECK_INTEQ(pgd_grants_n_intents(h), 0);
        h = pgd_grants_free(h);
        CHECK_INTEQ(pgd_grants_batch(g, false), 0);

        /* a compaction in the middle: the snapshot has the records, the journal gets none twice */
        CHECK_INTEQ(pgd_grants_batch(g, true), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_RELEASE, 0, NULL, "0000:03:00.0", NULL, NULL), 0);
        CHECK_INTEQ(pgd_grants_commit(g), 0);
        CHECK_INTEQ(pgd_grants_batch(g, false), 0);
        CHECK(!file_exists(dir, "grants.journal"));
        uint64_t next = 0;
        CHECK_INTEQ(record(g, PGD_RECORD_RELEASE, 0, NULL, "0000:04:00.0", NULL, &next), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK_INTEQ(pgd_grants_count(h), 0);
        uint64_t after = 0;
        CHECK_INTEQ(record(h, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &after), 0);
        CHECK_INTEQ(after, next + 1);
        CHECK_INTEQ(pgd_grants_sync(h), 0);

        /* a compaction that fails in the middle of a batch: the records are nowhere, the store broken */
        _cleanup_(freep) char *away = NULL;
        CHECK(asprintf(&away, "%s.away", dir) > 0);
        CHECK_INTEQ(pgd_grants_batch(h, true), 0);
        CHECK_INTEQ(record(h, PGD_RECORD_GRANT, after, &a, NULL, NULL, NULL), 0);
        CHECK(rename(dir, away) == 0);
        CHECK(pgd_grants_commit(h) < 0);
        CHECK(rename(away, dir) == 0);
        CHECK(pgd_grants_needs_commit(h));
        CHECK_INTEQ(pgd_grants_batch(h, false), 0); /* nothing left to write */
        CHECK_INTEQ(pgd_grants_sync(h), -EIO);
        CHECK_INTEQ(record(h, PGD_RECORD_RELEASE, 0, NULL, "0000:03:00.0", NULL, NULL), -EIO);
        /* and a compaction that works mends it, from memory */
        CHECK_INTEQ(pgd_grants_commit(h), 0);
        CHECK(!pgd_grants_needs_commit(h));
        g = pgd_grants_free(g);
        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(pgd_grants_count(g), 1);
        CHECK_INTEQ(pgd_grants_n_intents(g), 0);
}

/*
 * The journal is zero-filled 64 KiB ahead of its records: records overwrite
 * zeros, and loading reads the zeros after the last record as no record.
 */
static void test_journal_zero_filled(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        _cleanup_(freep) char *why = NULL, *path = path_in(dir, "grants.journal");
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        const size_t chunk = 64 * 1024;
        struct stat st;
        uint64_t in = 0, seq = 0;
        size_t n = 0, cycles = 0;

        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &in), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        CHECK(stat(path, &st) == 0 && (size_t)st.st_size == chunk);

        /* past the first 64 KiB and on into a third, in batches too: a chunk at a time */
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, in, &a, NULL, NULL, NULL), 0);
        do {
                bool batch = cycles % 2;
                CHECK_INTEQ(pgd_grants_batch(g, batch), 0);
                CHECK_INTEQ(record(g, PGD_RECORD_RELEASE, 0, NULL, "0000:03:00.0", NULL, NULL),
                            0);
                CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &in), 0);
                CHECK_INTEQ(record(g, PGD_RECORD_GRANT, in, &a, NULL, NULL, &seq), 0);
                CHECK_INTEQ(pgd_grants_batch(g, false), 0);
                CHECK_INTEQ(pgd_grants_sync(g), 0);
                cycles++;
        } while (pgd_grants_journal_size(g) < 2 * chunk + 1000 && cycles < 1000);
        CHECK(stat(path, &st) == 0 && (size_t)st.st_size == 3 * chunk);

        /* the records, then nothing but zeros */
        _cleanup_(freep) char *text = read_text(dir, "grants.journal", &n);
        CHECK(text && n == 3 * chunk);
        size_t len = text ? strlen(text) : 0;
        CHECK_INTEQ(len, pgd_grants_journal_size(g));
        CHECK(len > 0 && text[len - 1] == '\n');
        bool zeros = true;
        for (size_t i = len; i < n; i++)
                zeros = zeros && text[i] == 0;
        CHECK_MSG(zeros, "the journal's tail is not all zeros");

        /* loaded again: every record, and the next one goes where the zeros begin */
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK_INTEQ(pgd_grants_count(h), 1);
        CHECK_INTEQ(pgd_grants_n_intents(h), 0);
        CHECK_INTEQ(pgd_grants_journal_size(h), len);
        uint64_t next = 0;
        CHECK_INTEQ(record(h, PGD_RECORD_RELEASE, 0, NULL, "0000:03:00.0", NULL, &next), 0);
        CHECK_INTEQ(next, seq + 1);
        CHECK_INTEQ(pgd_grants_sync(h), 0);
        CHECK(stat(path, &st) == 0 && (size_t)st.st_size == 3 * chunk);
        g = pgd_grants_free(g);
        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(pgd_grants_count(g), 0);
        CHECK(pgd_grants_journal_size(g) > len);
}

static void test_journal_compaction(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        _cleanup_(freep) char *old_journal = NULL, *new_journal = NULL, *snap = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        struct pgd_grant b = make_grant("0000:04:00.0", 6, UUID6, "net-1", "nics");
        struct pgd_grant c = make_grant("0000:06:00.0", 6, UUID6, "net-1", "nics");
        _cleanup_(freep) char *why = NULL;
        uint64_t ia = 0, ib = 0, seq = 0;
        size_t n = 0;

        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &ia), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, ia, &a, NULL, NULL, NULL), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &b, NULL, NULL, &ib), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        old_journal = read_text(dir, "grants.journal", &n);

        /* b's intent is open: it is carried into the new journal, with its number */
        CHECK_INTEQ(pgd_grants_commit(g), 0);
        CHECK(file_exists(dir, "grants.json"));
        CHECK(!file_exists(dir, "grants.json.tmp") && !file_exists(dir, "grants.journal.tmp"));
        new_journal = read_text(dir, "grants.journal", &n);
        CHECK_INTEQ(count_lines(new_journal), 2);
        CHECK(new_journal && strstr(new_journal, "\"carried\":[3]"));
        CHECK_INTEQ(pgd_grants_intent(g, 0)->seq, ib);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK_INTEQ(pgd_grants_count(h), 1);
        CHECK(pgd_grants_find_intent(h, ib) && pgd_grants_find_intent(h, ib)->sbdf == b.sbdf);
        /* numbers go on after the carried intent */
        CHECK_INTEQ(record(h, PGD_RECORD_ABORT, ib, NULL, "0000:04:00.0", NULL, &seq), 0);
        CHECK_INTEQ(seq, ib + 1);
        h = pgd_grants_free(h);

        /* the old journal next to the new snapshot: another base, ignored */
        write_text(dir, "grants.journal", old_journal);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK_INTEQ(pgd_grants_count(h), 1);
        CHECK_INTEQ(pgd_grants_n_intents(h), 0);
        /* ... and nothing is appended to it: the next change compacts first */
        CHECK(pgd_grants_needs_commit(h));
        CHECK_INTEQ(record(h, PGD_RECORD_RELEASE, 0, NULL, "0000:03:00.0", NULL, NULL), -EIO);
        h = pgd_grants_free(h);

        /* interrupted between the renames: the new journal waits as .tmp, and is put in place */
        write_text(dir, "grants.journal.tmp", new_journal);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK(!file_exists(dir, "grants.journal.tmp"));
        CHECK(pgd_grants_find_intent(h, ib) && pgd_grants_find_intent(h, ib)->sbdf == b.sbdf);
        CHECK(!pgd_grants_needs_commit(h));
        CHECK_INTEQ(record(h, PGD_RECORD_ABORT, ib, NULL, "0000:04:00.0", NULL, &seq), 0);
        CHECK_INTEQ(seq, ib + 1);
        CHECK_INTEQ(record(h, PGD_RECORD_INTENT_ASSIGN, 0, &c, NULL, NULL, &seq), 0);
        CHECK_INTEQ(record(h, PGD_RECORD_GRANT, seq, &c, NULL, NULL, NULL), 0);
        CHECK_INTEQ(pgd_grants_sync(h), 0);
        /* a .tmp journal of another snapshot is a compaction that never happened */
        write_text(dir, "grants.journal.tmp", old_journal);
        g = pgd_grants_free(g);
        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK(!file_exists(dir, "grants.journal.tmp"));
        CHECK_INTEQ(pgd_grants_count(g), 2);
        CHECK_INTEQ(pgd_grants_n_intents(g), 0);

        /* nothing open: the journal goes; an unchanged snapshot is not rewritten */
        snap = read_text(dir, "grants.json", &n);
        struct stat st1, st2;
        _cleanup_(freep) char *snap_path = path_in(dir, "grants.json");
        CHECK(stat(snap_path, &st1) == 0);
        CHECK_INTEQ(pgd_grants_commit(g), 0);
        CHECK(!file_exists(dir, "grants.journal"));
        CHECK_INTEQ(pgd_grants_commit(g), 0);
        CHECK(stat(snap_path, &st2) == 0);
        CHECK(st1.st_ino != st2.st_ino); /* c came in */
        CHECK_INTEQ(pgd_grants_commit(g), 0);
        struct stat st3;
        CHECK(stat(snap_path, &st3) == 0);
        CHECK(st2.st_ino == st3.st_ino); /* nothing new */
        h = pgd_grants_free(h);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        CHECK_INTEQ(pgd_grants_count(h), 2);
}

/*
 * Records are written without jansson, in the canonical form their checksum
 * covers; loading checks that with jansson. Names that need every escape
 * must load back unchanged; a name that is not UTF-8 is refused.
 */
static void test_journal_escapes(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5,
                                        "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac "
                                        "\xf0\x9f\x98\x80",
                                        "r\"ule");
        _cleanup_(freep) char *why = NULL;
        uint64_t ia = 0;

        snprintf(a.client_unit, sizeof(a.client_unit), "x\ty.service");
        CHECK_INTEQ(pgd_grants_open(dir, &g, &why), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &ia), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_GRANT, ia, &a, NULL, NULL, NULL), 0);
        CHECK_INTEQ(
                record(g, PGD_RECORD_INTENT_PREPARE, 0, NULL, "0000:04:00.0", "dr\"iver\\", &ia),
                0);
        CHECK_INTEQ(record(g, PGD_RECORD_PREPARED, ia, NULL, "0000:04:00.0", "dr\"iver\\", NULL),
                    0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
        CHECK_INTEQ(pgd_grants_open(dir, &h, &why), 0);
        const struct pgd_grant *x = h ? pgd_grants_find(h, a.sbdf) : NULL;
        CHECK(x && streq(x->domain_name, a.domain_name) && streq(x->rule, a.rule) &&
              streq(x->client_unit, a.client_unit));
        CHECK(h && streq(pgd_grants_prepared_driver(h, PG_SBDF(0, 4, 0, 0)) ?: "", "dr\"iver\\"));

        /* not UTF-8: refused, nothing recorded */
        struct pgd_grant bad = make_grant("0000:05:00.0", 5, UUID5, "a\xc3(b", "gpus");
        CHECK_INTEQ(record(h, PGD_RECORD_INTENT_ASSIGN, 0, &bad, NULL, NULL, NULL), -EINVAL);
        CHECK_INTEQ(pgd_grants_n_intents(h), 0);
        struct pgd_grant overlong = make_grant("0000:05:00.0", 5, UUID5, "\xc0\xaf", "gpus");
        CHECK_INTEQ(record(h, PGD_RECORD_INTENT_ASSIGN, 0, &overlong, NULL, NULL, NULL), -EINVAL);
        CHECK_INTEQ(pgd_grants_sync(h), 0);
}

/* A journal that cannot be written takes nothing, and says so until a compaction. */
static void test_journal_failures(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        _cleanup_(freep) char *state = path_in(dir, "state"), *moved = path_in(dir, "moved");
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "render-1", "gpus");
        _cleanup_(freep) char *why = NULL;
        uint64_t ia = 0;

        CHECK(mkdir(state, 0700) == 0);
        CHECK_INTEQ(pgd_grants_open(state, &g, &why), 0);
        CHECK(rename(state, moved) == 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &ia), -ENOENT);
        CHECK_INTEQ(pgd_grants_n_intents(g), 0);
        CHECK_INTEQ(pgd_grants_commit(g), -ENOENT);
        CHECK(rename(moved, state) == 0);
        CHECK_INTEQ(pgd_grants_commit(g), 0);
        CHECK_INTEQ(record(g, PGD_RECORD_INTENT_ASSIGN, 0, &a, NULL, NULL, &ia), 0);
        CHECK_INTEQ(pgd_grants_sync(g), 0);
}

static void test_format_is_parseable(void)
{
        _cleanup_(tmpdir_freep) char *dir = tmpdir_new();
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        struct pgd_grant a = make_grant("0000:03:00.0", 5, UUID5, "r\xc3\xa9nder \"1\"", "gpus");
        _cleanup_(freep) char *text = NULL, *text2 = NULL;
        size_t len = 0, len2 = 0;
        _cleanup_(freep) char *why = NULL;

        CHECK_INTEQ(pgd_grants_new_empty(dir, &g), 0);
        CHECK_INTEQ(pgd_grants_new_empty(dir, &h), 0);
        CHECK_INTEQ(pgd_grants_add(g, &a), 0);
        CHECK_INTEQ(pgd_grants_format(g, &text, &len), 0);
        CHECK(text && len == strlen(text) && text[len - 1] == '\n');
        CHECK_INTEQ(pgd_grants_parse(text, len, h, &why), 0);
        CHECK(pgd_grants_count(h) == 1 &&
              streq(pgd_grants_get(h, 0)->domain_name, "r\xc3\xa9nder \"1\""));
        /* Serialising is deterministic. */
        CHECK_INTEQ(pgd_grants_format(h, &text2, &len2), 0);
        CHECK(text2 && len2 == len && memcmp(text, text2, len) == 0);
        /* A failed parse leaves the store as it was. */
        CHECK_INTEQ(pgd_grants_parse("{", 1, h, &why), -EBADMSG);
        CHECK_INTEQ(pgd_grants_count(h), 1);
}

/* The fuzz corpus's seeds say what they are: valid-* load, bad-* are refused. */
static void test_corpus(const char *corpus)
{
        static const struct {
                const char *name;
                int r;
                const char *why;
                size_t n_grants;
        } seeds[] = {
                {"valid-empty.json", 0, NULL, 0},
                {"valid-two-grants.json", 0, NULL, 2},
                {"valid-unsorted.json", 0, NULL, 2},
                {"valid-prepared-only.json", 0, NULL, 0},
                {"bad-checksum.json", -EBADMSG, "checksum mismatch", 0},
                {"bad-format-2.json", -EPROTONOSUPPORT, "unsupported format 2", 0},
                {"bad-unknown-key.json", -EBADMSG, "grant 0: unknown key 'foo'", 0},
                {"bad-duplicate-device.json", -EBADMSG, "is granted twice", 0},
                {"bad-bdf.json", -EBADMSG, "'device' is not a PCI address", 0},
                {"bad-duplicate-key.json", -EBADMSG, "duplicate object key", 0},
                {"bad-truncated.json", -EBADMSG, "line", 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(seeds); i++) {
                _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
                _cleanup_(freep) char *text = NULL;
                _cleanup_(freep) char *why = NULL;
                size_t len = 0;
                int r;

                text = read_text(corpus, seeds[i].name, &len);
                CHECK_MSG(text != NULL, "%s missing", seeds[i].name);
                if (!text)
                        continue;
                CHECK_INTEQ(pgd_grants_new_empty("/nonexistent", &g), 0);
                r = pgd_grants_parse(text, len, g, &why);
                CHECK_MSG(r == seeds[i].r, "%s: %d (%s)", seeds[i].name, r, why ? why : "-");
                if (seeds[i].why)
                        CHECK_MSG(why && strstr(why, seeds[i].why), "%s: %s", seeds[i].name,
                                  why ? why : "(null)");
                CHECK_INTEQ(pgd_grants_count(g), seeds[i].n_grants);
        }
}

/* What counts as another device at an address (identity.c). */
static void test_identity_diff(void)
{
        struct hv_pci_info pci = {.vendor = 0x8086, .device = 0x10fb, .class = 0x020000,
                                  .serial = "00-1b-21-ff-ff-a1-b2-c3",
                                  .path = "pci0000:00/0000:00:01.0"};
        struct pgd_identity was, now, unknown;
        char what[200];

        pgd_identity_from_pci(&pci, &was);
        now = was;
        CHECK_INTEQ(pgd_identity_diff(&was, &now, what, sizeof(what)), 0);
        CHECK_STREQ(what, "");
        CHECK_INTEQ(pgd_identity_diff(NULL, &now, what, sizeof(what)), 0);

        now.device = 0x1533;
        snprintf(now.serial, sizeof(now.serial), "%s", "00-1b-21-ff-ff-a1-b2-c4");
        CHECK_INTEQ(pgd_identity_diff(&was, &now, what, sizeof(what)), 1);
        CHECK_STREQ(what, "device id 0x10fb became 0x1533, serial 00-1b-21-ff-ff-a1-b2-c3 became "
                          "00-1b-21-ff-ff-a1-b2-c4");

        /* Recorded known, unreadable now: fail closed. */
        now = was;
        now.serial_unknown = true;
        now.serial[0] = '\0';
        CHECK_INTEQ(pgd_identity_diff(&was, &now, what, sizeof(what)), 1);
        CHECK_STREQ(what, "serial 00-1b-21-ff-ff-a1-b2-c3 became unknown");

        /* Recorded unknown (no CAP_SYS_ADMIN then), readable now: no change. So is a path. */
        pci.serial_unknown = true;
        pci.path[0] = '\0';
        pgd_identity_from_pci(&pci, &unknown);
        CHECK_INTEQ(pgd_identity_diff(&unknown, &was, what, sizeof(what)), 0);
        /* A device that had none and now has one: changed. */
        now = was;
        now.serial[0] = '\0';
        CHECK_INTEQ(pgd_identity_diff(&now, &was, what, sizeof(what)), 1);
        CHECK_STREQ(what, "serial none became 00-1b-21-ff-ff-a1-b2-c3");
        now = was;
        snprintf(now.path, sizeof(now.path), "%s", "pci0000:00/0000:00:1c.0");
        CHECK_INTEQ(pgd_identity_diff(&was, &now, what, sizeof(what)), 1);
        CHECK_STREQ(what, "path pci0000:00/0000:00:01.0 became pci0000:00/0000:00:1c.0");
}

int main(int argc, char **argv)
{
        test_missing_file_is_empty();
        test_round_trip();
        test_checksum_matches_sha256sum();
        test_corruption_detected();
        test_strict_parse();
        test_commit_failures();
        test_format_is_parseable();
        test_journal_replay();
        test_journal_torn_and_corrupt();
        test_journal_batch();
        test_journal_zero_filled();
        test_journal_compaction();
        test_journal_failures();
        test_identity_diff();
        test_journal_escapes();
        if (argc > 1)
                test_corpus(argv[1]);
        return harness_exit();
}
