/* SPDX-License-Identifier: MIT */
/*
 * The journal's lines (grants.h): the base line and the records, formatted
 * in one pass in the canonical form their checksum covers, parsed strictly,
 * and replayed over a store.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg-wire.h"
#include "sha256.h"
#include "store-internal.h"

static const char *const record_op_names[] = {
        [PGD_RECORD_INTENT_ASSIGN] = "intent-assign",
        [PGD_RECORD_GRANT] = "grant",
        [PGD_RECORD_ABORT] = "abort",
        [PGD_RECORD_RELEASE] = "release",
        [PGD_RECORD_INTENT_PREPARE] = "intent-prepare",
        [PGD_RECORD_PREPARED] = "prepared",
        [PGD_RECORD_UNPREPARED] = "unprepared",
        [PGD_RECORD_INTENT_ASSIGN_GROUP] = "intent-assign-group",
        [PGD_RECORD_GRANT_GROUP] = "grant-group",
        [PGD_RECORD_TAINT] = "taint",
        [PGD_RECORD_UNTAINT] = "untaint",
};

const char *pgd_grants_record_op_name(enum pgd_record_op op)
{
        return (size_t)op < ELEMENTSOF(record_op_names) ? record_op_names[op] : NULL;
}

static bool record_has_grant(enum pgd_record_op op)
{
        return op == PGD_RECORD_INTENT_ASSIGN || op == PGD_RECORD_GRANT;
}

static bool record_has_driver(enum pgd_record_op op)
{
        return op == PGD_RECORD_INTENT_PREPARE || op == PGD_RECORD_PREPARED;
}

static bool record_has_group(enum pgd_record_op op)
{
        return op == PGD_RECORD_INTENT_ASSIGN_GROUP || op == PGD_RECORD_GRANT_GROUP;
}

/* "intent": required, optional (0 may be left out) or absent. */
enum { INTENT_NONE, INTENT_OPTIONAL, INTENT_REQUIRED };

static int record_intent_key(enum pgd_record_op op)
{
        switch (op) {
        case PGD_RECORD_ABORT:
        case PGD_RECORD_GRANT_GROUP:
                return INTENT_REQUIRED;
        case PGD_RECORD_GRANT:
        case PGD_RECORD_PREPARED:
                return INTENT_OPTIONAL;
        default:
                return INTENT_NONE;
        }
}

/* One line: the object, its checksum, '\n'. */
static int line_format(json_t *obj, char **ret, size_t *ret_len)
{
        char sum[CHECKSUM_MAX];

        return pgd_grants_seal(obj, JSON_COMPACT, sum, ret, ret_len);
}

/* A journal's base line: the snapshot's sum, the seq before its records, the carried intents. */
int pgd_grants_base_format(const char *snapshot_sum, uint64_t seq, const struct pgd_intent *carried,
                           size_t n_carried, char **ret, size_t *ret_len)
{
        _cleanup_(json_decrefp) json_t *obj = NULL, *list = json_array();

        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n_carried; i++)
                if (json_array_append_new(list, json_integer((json_int_t)carried[i].seq)) < 0)
                        return -ENOMEM;
        obj = json_pack("{s:s, s:I, s:o, s:O}", "op", "base", "seq", (json_int_t)seq, "snapshot",
                        snapshot_sum[0] ? json_string(snapshot_sum) : json_null(), "carried", list);
        if (!obj)
                return -ENOMEM;
        return line_format(obj, ret, ret_len);
}

/*
 * A record's line is written straight from the struct, in the canonical form
 * the checksum covers (jansson's JSON_COMPACT | JSON_SORT_KEYS: keys in
 * order, strings as jansson escapes them), then the checksum: one pass, no
 * JSON tree (records are written on every change). Loading parses the line
 * with jansson and checks the checksum over jansson's own canonical form, so
 * any difference would be caught there; tests/unit/grants writes names that
 * need every kind of escape.
 */
struct canon {
        char *buf;
        size_t len, cap;
        int error;
};

static void canon_put(struct canon *c, const char *s, size_t n)
{
        if (c->error)
                return;
        if (c->len + n + 1 > c->cap) {
                size_t cap = c->cap ? c->cap : 512;
                while (cap < c->len + n + 1)
                        cap *= 2;
                char *p = realloc(c->buf, cap);
                if (!p) {
                        c->error = -ENOMEM;
                        return;
                }
                c->buf = p;
                c->cap = cap;
        }
        memcpy(c->buf + c->len, s, n);
        c->len += n;
        c->buf[c->len] = '\0';
}

static void canon_puts(struct canon *c, const char *s)
{
        canon_put(c, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
        size_t k = p[0] < 0x80             ? 1
                   : (p[0] & 0xe0) == 0xc0 ? 2
                   : (p[0] & 0xf0) == 0xe0 ? 3
                   : (p[0] & 0xf8) == 0xf0 ? 4
                                           : 0;
        uint32_t cp;

        if (k == 0 || k > n)
                return 0;
        cp = k == 1 ? p[0] : p[0] & (0x7f >> k);
        for (size_t i = 1; i < k; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates, beyond Unicode: what jansson refuses */
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return 0;
        return k;
}

/* A JSON string as jansson writes it without JSON_ENSURE_ASCII; -EINVAL unless valid UTF-8. */
static void canon_string(struct canon *c, const char *s)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s);

        canon_put(c, "\"", 1);
        while (n > 0 && !c->error) {
                const unsigned char *run = p;
                while (n > 0 && *p >= 0x20 && *p != '"' && *p != '\\') {
                        size_t k = utf8_len(p, n);
                        if (k == 0) {
                                c->error = -EINVAL;
                                return;
                        }
                        p += k;
                        n -= k;
                }
                canon_put(c, (const char *)run, (size_t)(p - run));
                if (n == 0)
                        break;
                char e[8];
                switch (*p) {
                case '"':
                        canon_put(c, "\\\"", 2);
                        break;
                case '\\':
                        canon_put(c, "\\\\", 2);
                        break;
                case '\b':
                        canon_put(c, "\\b", 2);
                        break;
                case '\f':
                        canon_put(c, "\\f", 2);
                        break;
                case '\n':
                        canon_put(c, "\\n", 2);
                        break;
                case '\r':
                        canon_put(c, "\\r", 2);
                        break;
                case '\t':
                        canon_put(c, "\\t", 2);
                        break;
                default:
                        snprintf(e, sizeof(e), "\\u%04X", *p);
                        canon_put(c, e, 6);
                        break;
                }
                p++;
                n--;
        }
        canon_put(c, "\"", 1);
}

static void canon_int(struct canon *c, int64_t v)
{
        char num[24], *p = num + sizeof(num);
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

        do
                *--p = (char)('0' + u % 10);
        while (u /= 10);
        if (v < 0)
                *--p = '-';
        canon_put(c, p, (size_t)(num + sizeof(num) - p));
}

/* "key": first, then ",key": */
static void canon_key(struct canon *c, const char *key, bool *first)
{
        canon_puts(c, *first ? "{\"" : ",\"");
        canon_puts(c, key);
        canon_puts(c, "\":");
        *first = false;
}

/* The identity object, keys in order: class, device, path, serial, subsystem_*, vendor. */
static void canon_identity(struct canon *c, const struct pgd_identity *id)
{
        char hex[12];
        bool first = true;

        canon_key(c, "class", &first);
        snprintf(hex, sizeof(hex), "0x%06x", id->class & 0xffffffU);
        canon_string(c, hex);
        canon_key(c, "device", &first);
        snprintf(hex, sizeof(hex), "0x%04x", id->device);
        canon_string(c, hex);
        canon_key(c, "path", &first);
        canon_string(c, id->path);
        canon_key(c, "serial", &first);
        if (id->serial_unknown)
                canon_puts(c, "null");
        else
                canon_string(c, id->serial);
        canon_key(c, "subsystem_device", &first);
        snprintf(hex, sizeof(hex), "0x%04x", id->subsystem_device);
        canon_string(c, hex);
        canon_key(c, "subsystem_vendor", &first);
        snprintf(hex, sizeof(hex), "0x%04x", id->subsystem_vendor);
        canon_string(c, hex);
        canon_key(c, "vendor", &first);
        snprintf(hex, sizeof(hex), "0x%04x", id->vendor);
        canon_string(c, hex);
        canon_puts(c, "}");
}

static void canon_grant(struct canon *c, const struct pgd_grant *g)
{
        char bdf[PG_BDF_MAX];
        bool first = true;

        canon_key(c, "client_pid", &first);
        canon_int(c, g->client_pid);
        canon_key(c, "client_uid", &first);
        canon_int(c, g->client_uid);
        canon_key(c, "client_unit", &first);
        canon_string(c, g->client_unit);
        canon_key(c, "device", &first);
        canon_string(c, pg_bdf_format(g->sbdf, bdf));
        canon_key(c, "domain_name", &first);
        canon_string(c, g->domain_name);
        canon_key(c, "domain_uuid", &first);
        canon_string(c, g->domain_uuid);
        canon_key(c, "domid", &first);
        canon_int(c, g->domid);
        if (g->identity.known) {
                canon_key(c, "identity", &first);
                canon_identity(c, &g->identity);
        }
        canon_key(c, "rdm_policy", &first);
        canon_string(c, pg_policy_rdm_name(g->rdm_policy));
        canon_key(c, "rule", &first);
        canon_string(c, g->rule);
        canon_key(c, "time", &first);
        canon_int(c, g->time);
        canon_puts(c, "}");
}

int pgd_grants_record_format(const struct pgd_record *r, char **ret, size_t *ret_len)
{
        const char *name = pgd_grants_record_op_name(r->op);
        struct canon c = {};
        struct pgd_sha256 sh;
        char bdf[PG_BDF_MAX];
        uint8_t md[32];
        bool first = true;

        if (!name)
                return -EINVAL;
        if (record_has_group(r->op) && (r->n_grants == 0 || r->n_grants > PGD_GROUP_MAX ||
                                        r->grants[0].sbdf != r->sbdf))
                return -EINVAL;
        /* The keys in order: device, driver, grant, grants, identity, intent, op, seq, taint. */
        canon_key(&c, "device", &first);
        canon_string(&c, pg_bdf_format(r->sbdf, bdf));
        if (record_has_driver(r->op)) {
                canon_key(&c, "driver", &first);
                canon_string(&c, r->driver);
        }
        if (record_has_grant(r->op)) {
                canon_key(&c, "grant", &first);
                canon_grant(&c, &r->grant);
        }
        if (record_has_group(r->op)) {
                canon_key(&c, "grants", &first);
                for (size_t i = 0; i < r->n_grants; i++) {
                        canon_puts(&c, i ? "," : "[");
                        canon_grant(&c, &r->grants[i]);
                }
                canon_puts(&c, "]");
        }
        if (record_has_driver(r->op) && r->identity.known) {
                canon_key(&c, "identity", &first);
                canon_identity(&c, &r->identity);
        }
        if (record_intent_key(r->op) == INTENT_REQUIRED ||
            (record_intent_key(r->op) == INTENT_OPTIONAL && r->intent)) {
                canon_key(&c, "intent", &first);
                canon_int(&c, (int64_t)r->intent);
        }
        canon_key(&c, "op", &first);
        canon_string(&c, name);
        canon_key(&c, "seq", &first);
        canon_int(&c, (int64_t)r->seq);
        if (r->op == PGD_RECORD_TAINT) {
                bool tf = true;
                canon_key(&c, "taint", &first);
                canon_key(&c, "domain_uuid", &tf);
                canon_string(&c, r->taint.domain_uuid);
                canon_key(&c, "reason", &tf);
                canon_string(&c, r->taint.reason);
                canon_key(&c, "time", &tf);
                canon_int(&c, r->taint.time);
                canon_puts(&c, "}");
        }
        canon_puts(&c, "}");
        if (c.error) {
                free(c.buf);
                return c.error;
        }

        pgd_sha256_init(&sh);
        pgd_sha256_update(&sh, c.buf, c.len);
        pgd_sha256_final(&sh, md);
        /* The line: the same object with its checksum, and a newline. */
        c.len--; /* the closing brace */
        canon_puts(&c, ",\"checksum\":\"" CHECKSUM_PREFIX);
        for (int i = 0; i < 32; i++) {
                static const char digits[] = "0123456789abcdef";
                char hex[2] = {digits[md[i] >> 4], digits[md[i] & 15]};
                canon_put(&c, hex, 2);
        }
        canon_puts(&c, "\"}\n");
        if (c.error) {
                free(c.buf);
                return c.error;
        }
        *ret = c.buf;
        *ret_len = c.len;
        return 0;
}

/* Parse one line (without '\n') and check its checksum; *ret_obj is the object. */
static int line_parse(char *why, const char *text, size_t len, json_t **ret_obj)
{
        _cleanup_(json_decrefp) json_t *obj = NULL;
        _cleanup_(freep) char *have = NULL;
        char want[CHECKSUM_MAX];
        json_error_t jerr;
        const char *s;
        int r;

        if (memchr(text, '\0', len))
                return pgd_grants_bad(why, "contains a NUL byte");
        obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj)
                return pgd_grants_bad(why, "%s", jerr.text);
        if (!json_is_object(obj))
                return pgd_grants_bad(why, "not an object but %s", pgd_grants_type_name(obj));
        r = pgd_grants_get_string(why, obj, "", "checksum", CHECKSUM_MAX, true, &s);
        if (r < 0)
                return r;
        have = strdup(s);
        if (!have)
                return -ENOMEM;
        json_object_del(obj, "checksum");
        r = pgd_grants_checksum(obj, want);
        if (r < 0)
                return r;
        if (!streq(have, want))
                return pgd_grants_bad(why, "checksum mismatch");
        *ret_obj = TAKE_PTR(obj);
        return 0;
}

void pgd_grants_base_clear(struct pgd_journal_base *b)
{
        b->carried = pg_free(b->carried);
        b->n_carried = 0;
}

int pgd_grants_base_parse(char *why, const char *text, size_t len, struct pgd_journal_base *ret)
{
        static const char *const keys[] = {"op", "seq", "snapshot", "carried", NULL};
        _cleanup_(json_decrefp) json_t *obj = NULL;
        struct pgd_journal_base b = {};
        const json_t *v, *e;
        json_int_t seq;
        const char *s;
        size_t i;
        int r;

        r = line_parse(why, text, len, &obj);
        if (r < 0)
                return r;
        r = pgd_grants_check_members(why, obj, "", keys);
        if (r < 0)
                return r;
        r = pgd_grants_get_string(why, obj, "", "op", 16, true, &s);
        if (r >= 0 && !streq(s, "base"))
                r = pgd_grants_bad(why, "the first line is a '%s' record, not the base", s);
        if (r >= 0)
                r = pgd_grants_get_int(why, obj, "", "seq", 0, INT64_MAX - 1, &seq);
        if (r < 0)
                return r;
        b.seq = (uint64_t)seq;
        v = json_object_get(obj, "snapshot");
        if (!json_is_null(v)) {
                r = pgd_grants_get_string(why, obj, "", "snapshot", CHECKSUM_MAX, true, &s);
                if (r < 0)
                        return r;
                if (strncmp(s, CHECKSUM_PREFIX, strlen(CHECKSUM_PREFIX)) != 0 ||
                    strlen(s) != CHECKSUM_MAX - 1)
                        return pgd_grants_bad(why, "'snapshot' is not a checksum: '%s'", s);
                strcpy(b.sum, s);
        }
        v = json_object_get(obj, "carried");
        if (!json_is_array(v))
                return pgd_grants_bad(why, "'carried' must be an array, not %s",
                                      pgd_grants_type_name(v));
        b.carried = calloc(json_array_size(v) + 1, sizeof(*b.carried));
        if (!b.carried)
                return -ENOMEM;
        json_array_foreach(v, i, e)
        {
                json_int_t x = json_integer_value(e);
                if (!json_is_integer(e) || x < 1 || (uint64_t)x > b.seq ||
                    (i > 0 && (uint64_t)x <= b.carried[i - 1])) {
                        pgd_grants_base_clear(&b);
                        return pgd_grants_bad(
                                why,
                                "'carried' must list increasing sequence numbers up to %" PRIu64,
                                b.seq);
                }
                b.carried[b.n_carried++] = (uint64_t)x;
        }
        *ret = b;
        return 0;
}

static int record_parse(char *why, const char *text, size_t len, struct pgd_record *ret)
{
        _cleanup_(json_decrefp) json_t *obj = NULL;
        struct pgd_record rec = {};
        const char *keys[12], *s = NULL;
        json_int_t i;
        size_t n = 0;
        int r, op = -1;

        r = line_parse(why, text, len, &obj);
        if (r < 0)
                return r;
        r = pgd_grants_get_string(why, obj, "", "op", 32, true, &s);
        if (r < 0)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(record_op_names); k++)
                if (streq(s, record_op_names[k]))
                        op = (int)k;
        if (op < 0)
                return pgd_grants_bad(why, "unknown op '%s'", s);
        rec.op = (enum pgd_record_op)op;

        keys[n++] = "op";
        keys[n++] = "seq";
        keys[n++] = "device";
        if (record_intent_key(rec.op) == INTENT_REQUIRED ||
            (record_intent_key(rec.op) == INTENT_OPTIONAL && json_object_get(obj, "intent")))
                keys[n++] = "intent";
        if (record_has_grant(rec.op))
                keys[n++] = "grant";
        if (record_has_driver(rec.op)) {
                keys[n++] = "driver";
                if (json_object_get(obj, "identity"))
                        keys[n++] = "identity";
        }
        if (record_has_group(rec.op))
                keys[n++] = "grants";
        if (rec.op == PGD_RECORD_TAINT)
                keys[n++] = "taint";
        keys[n] = NULL;
        r = pgd_grants_check_members(why, obj, "", keys);
        if (r < 0)
                return r;

        r = pgd_grants_get_int(why, obj, "", "seq", 1, INT64_MAX, &i);
        if (r < 0)
                return r;
        rec.seq = (uint64_t)i;
        r = pgd_grants_get_device(why, obj, "", &rec.sbdf);
        if (r < 0)
                return r;
        if (json_object_get(obj, "intent")) {
                r = pgd_grants_get_int(why, obj, "", "intent", 1, (json_int_t)rec.seq - 1, &i);
                if (r < 0)
                        return r;
                rec.intent = (uint64_t)i;
        }
        if (record_has_grant(rec.op)) {
                r = pgd_grants_parse_grant(why, json_object_get(obj, "grant"), 0, &rec.grant);
                if (r < 0)
                        return r;
                if (rec.grant.sbdf != rec.sbdf)
                        return pgd_grants_bad(why,
                                              "the grant is for another device than the record");
        }
        if (record_has_driver(rec.op)) {
                r = pgd_grants_get_string(why, obj, "", "driver", HV_DRIVER_MAX, false, &s);
                if (r < 0)
                        return r;
                strcpy(rec.driver, s);
                if (json_object_get(obj, "identity")) {
                        r = pgd_grants_parse_identity(why, json_object_get(obj, "identity"), "",
                                                      &rec.identity);
                        if (r < 0)
                                return r;
                }
        }
        if (record_has_group(rec.op)) {
                const json_t *list = json_object_get(obj, "grants"), *e;
                size_t k;

                if (!json_is_array(list) || json_array_size(list) == 0 ||
                    json_array_size(list) > PGD_GROUP_MAX)
                        return pgd_grants_bad(why, "'grants' must be an array of 1 to %d grants",
                                              PGD_GROUP_MAX);
                json_array_foreach(list, k, e)
                {
                        r = pgd_grants_parse_grant(why, e, k, &rec.grants[k]);
                        if (r < 0)
                                return r;
                        for (size_t j = 0; j < k; j++)
                                if (rec.grants[j].sbdf == rec.grants[k].sbdf)
                                        return pgd_grants_bad(why, "grant %zu: a device named twice",
                                                              k);
                        if (k > 0 && (rec.grants[k].domid != rec.grants[0].domid ||
                                      !streq(rec.grants[k].domain_uuid, rec.grants[0].domain_uuid)))
                                return pgd_grants_bad(why, "grant %zu: another domain than grant 0",
                                                      k);
                }
                rec.n_grants = json_array_size(list);
                if (rec.grants[0].sbdf != rec.sbdf)
                        return pgd_grants_bad(why,
                                              "the first grant is for another device than the record");
        }
        if (rec.op == PGD_RECORD_TAINT) {
                r = pgd_grants_parse_taint(why, json_object_get(obj, "taint"), "taint: ",
                                           &rec.taint);
                if (r < 0)
                        return r;
                rec.taint.sbdf = rec.sbdf;
        }
        *ret = rec;
        return 0;
}

/* The next line of text at *pos: [*ret_line, +*ret_len), complete when it ended in '\n'. */
bool pgd_grants_next_line(const char *text, size_t len, size_t *pos, const char **ret_line,
                          size_t *ret_len, bool *ret_complete)
{
        const char *p, *nl;

        if (*pos >= len)
                return false;
        p = text + *pos;
        nl = memchr(p, '\n', len - *pos);
        *ret_line = p;
        *ret_len = nl ? (size_t)(nl - p) : len - *pos;
        *ret_complete = nl != NULL;
        *pos += *ret_len + (nl ? 1 : 0);
        return true;
}

/*
 * Replay records over g, from the line after the base: first the carried
 * intents the base lists, then records numbered on from base->seq + 1. Stops
 * at a torn tail (invalid text with no valid record after it). *ret_size is
 * the length of the valid prefix, *ret_next the seq that follows.
 */
int pgd_grants_replay_records(char *why, struct pgd_grants *g, const struct pgd_journal_base *b,
                              const char *text, size_t len, size_t pos, size_t *ret_size,
                              uint64_t *ret_next)
{
        uint64_t next = b->seq + 1;
        size_t valid = pos, carried = 0;
        const char *line;
        size_t line_len;
        bool complete;
        int r;

        while (pgd_grants_next_line(text, len, &pos, &line, &line_len, &complete)) {
                struct pgd_record rec;
                char reason[WHY_MAX];
                uint64_t due = carried < b->n_carried ? b->carried[carried] : next;

                r = complete ? record_parse(why, line, line_len, &rec)
                             : pgd_grants_bad(why, "incomplete line");
                if (r >= 0 && rec.seq != due)
                        r = pgd_grants_bad(why, "record %" PRIu64 " where %" PRIu64 " was due",
                                           rec.seq, due);
                if (r >= 0 && carried < b->n_carried && rec.op != PGD_RECORD_INTENT_ASSIGN &&
                    rec.op != PGD_RECORD_INTENT_PREPARE && rec.op != PGD_RECORD_INTENT_ASSIGN_GROUP)
                        r = pgd_grants_bad(why, "record %" PRIu64 " is carried but is no intent",
                                           rec.seq);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        /* Torn, unless a valid record comes after it. */
                        snprintf(reason, sizeof(reason), "%s", why);
                        size_t at = pos;
                        while (pgd_grants_next_line(text, len, &at, &line, &line_len, &complete)) {
                                struct pgd_record later;
                                if (complete && record_parse(why, line, line_len, &later) >= 0)
                                        return pgd_grants_bad(why, "record %" PRIu64 ": %s", due,
                                                              reason);
                        }
                        break;
                }
                r = pgd_grants_apply(g, &rec);
                if (r == -ENOENT)
                        return pgd_grants_bad(why,
                                              "record %" PRIu64 ": intent %" PRIu64 " is not open",
                                              rec.seq, rec.intent);
                if (r == -EINVAL)
                        return pgd_grants_bad(why, "record %" PRIu64 ": out of order", rec.seq);
                if (r < 0)
                        return r;
                if (carried < b->n_carried)
                        carried++;
                else
                        next++;
                valid = pos;
        }
        /* The carried intents are the compaction's: missing ones make the file corrupt. */
        if (carried < b->n_carried)
                return pgd_grants_bad(why, "intent %" PRIu64 " was carried and is missing",
                                      b->carried[carried]);
        *ret_size = valid;
        *ret_next = next;
        return 0;
}

int pgd_grants_replay(struct pgd_grants *g, const char *text, size_t len, char **ret_why)
{
        char why[WHY_MAX] = "";
        struct pgd_journal_base b = {};
        const char *line;
        size_t pos = 0, line_len, size;
        uint64_t next;
        bool complete;
        int r;

        if (!pgd_grants_next_line(text, len, &pos, &line, &line_len, &complete))
                r = pgd_grants_bad(why, "empty journal");
        else if (!complete)
                r = pgd_grants_bad(why, "incomplete base line");
        else
                r = pgd_grants_base_parse(why, line, line_len, &b);
        if (r >= 0)
                r = pgd_grants_replay_records(why, g, &b, text, len, pos, &size, &next);
        pgd_grants_base_clear(&b);
        if (r < 0)
                return pgd_grants_give_why(r, why, ret_why);
        g->journal_size = size;
        g->next_seq = next;
        return 0;
}
