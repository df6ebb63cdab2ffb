/* SPDX-License-Identifier: MIT */
/*
 * The grant store (DESIGN.md "Grant store", invariant 4).
 *
 * STATE_DIR/grants.json:
 *   { "format": 1,
 *     "grants": [ { "device": "0000:03:00.0", "domid": 5, "domain_uuid": "...",
 *                   "domain_name": "render-1", "client_uid": 0, "client_pid": 123,
 *                   "client_unit": "", "rule": "gpus", "rdm_policy": "strict",
 *                   "time": 1700000000 } ],
 *     "prepared": [ { "device": "0000:03:00.0", "driver": "e1000" } ],
 *     "checksum": "sha256:<64 hex digits>" }
 *
 * The checksum is SHA-256 over the canonical serialisation of the object
 * without "checksum": jansson's JSON_COMPACT | JSON_SORT_KEYS. Whitespace and
 * key order in the file therefore do not matter; content does.
 *
 * Parsing is strict: duplicate and unknown keys, wrong types, malformed or
 * non-canonical BDFs and UUIDs, and devices listed twice are all -EBADMSG
 * with a reason; a format other than 1 is -EPROTONOSUPPORT. A file that does
 * not parse is never touched, so nothing is ever silently emptied.
 *
 * Committing writes grants.json.tmp, fsyncs it, renames it over grants.json
 * and fsyncs the directory: one write, two fsyncs. The rename is the commit
 * point; a crash before it leaves the old file, after it the new one.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "grants.h"
#include "pg-util.h"
#include "pg-wire.h"

#define GRANTS_TMP_FILE PGD_GRANTS_FILE ".tmp"
#define GRANTS_MAX_FILE_SIZE (16u * 1024 * 1024)
#define CHECKSUM_PREFIX "sha256:"
/* Xen's first reserved domid (DOMID_FIRST_RESERVED): guests are below it. */
#define DOMID_FIRST_RESERVED 0x7FF0U

struct prepared {
        uint32_t sbdf;
        char driver[HV_DRIVER_MAX];
};

struct pgd_grants {
        char *state_dir;
        char *path;
        struct pgd_grant *grants; /* sorted by sbdf */
        size_t n_grants, cap_grants;
        struct prepared *prepared; /* sorted by sbdf */
        size_t n_prepared, cap_prepared;
};

/* The reason of the last parse failure; the daemon is single-threaded, tests too. */
static char why_buf[256];

_printf_(1, 2) static int bad(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* ---- SHA-256 (FIPS 180-4) ---- */

struct sha256 {
        uint32_t h[8];
        uint64_t len;
        uint8_t buf[64];
        size_t n;
};

static const uint32_t sha256_k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
};

static inline uint32_t ror32(uint32_t x, unsigned n)
{
        return (x >> n) | (x << (32 - n));
}

static void sha256_init(struct sha256 *s)
{
        static const uint32_t h0[8] = {
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
        };
        memcpy(s->h, h0, sizeof(h0));
        s->len = 0;
        s->n = 0;
}

static void sha256_block(struct sha256 *s, const uint8_t p[64])
{
        uint32_t w[64], a, b, c, d, e, f, g, h;

        for (int i = 0; i < 16; i++)
                w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
                       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; i++) {
                uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
                uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
        e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
        for (int i = 0; i < 64; i++) {
                uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) +
                              ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
                uint32_t t2 =
                        (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
                h = g, g = f, f = e, e = d + t1;
                d = c, c = b, b = a, a = t1 + t2;
        }
        s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
        s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len)
{
        const uint8_t *p = data;

        s->len += len;
        while (len > 0) {
                size_t k = 64 - s->n < len ? 64 - s->n : len;
                memcpy(s->buf + s->n, p, k);
                s->n += k, p += k, len -= k;
                if (s->n == 64) {
                        sha256_block(s, s->buf);
                        s->n = 0;
                }
        }
}

static void sha256_final(struct sha256 *s, uint8_t ret[32])
{
        uint64_t bits = s->len * 8;
        uint8_t pad[72] = {0x80};
        size_t npad = (s->n < 56 ? 56 : 120) - s->n;

        for (int i = 0; i < 8; i++)
                pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
        sha256_update(s, pad, npad + 8);
        for (int i = 0; i < 8; i++) {
                ret[4 * i] = (uint8_t)(s->h[i] >> 24);
                ret[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
                ret[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
                ret[4 * i + 3] = (uint8_t)s->h[i];
        }
}

#define CHECKSUM_MAX PGD_GRANTS_CHECKSUM_MAX

int pgd_grants_checksum(const json_t *obj, char ret[static PGD_GRANTS_CHECKSUM_MAX])
{
        _cleanup_(freep) char *canon = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
        struct sha256 s;
        uint8_t md[32];

        if (!canon)
                return -ENOMEM;
        sha256_init(&s);
        sha256_update(&s, canon, strlen(canon));
        sha256_final(&s, md);
        char *p = stpcpy(ret, CHECKSUM_PREFIX);
        for (int i = 0; i < 32; i++)
                p += sprintf(p, "%02x", md[i]);
        return 0;
}

/* ---- in-memory store ---- */

/*
 * Index of the first element with sbdf >= key, in an array of n elements of
 * size bytes sorted by the uint32_t sbdf at offset off.
 */
static size_t lower_bound(const void *base, size_t n, size_t size, size_t off, uint32_t key)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                uint32_t sbdf;
                memcpy(&sbdf, (const char *)base + mid * size + off, sizeof(sbdf));
                if (sbdf < key)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

#define grant_lower_bound(v, n, key)                                                               \
        lower_bound((v), (n), sizeof(struct pgd_grant), offsetof(struct pgd_grant, sbdf), (key))
#define prepared_lower_bound(v, n, key)                                                            \
        lower_bound((v), (n), sizeof(struct prepared), offsetof(struct prepared, sbdf), (key))

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
        if (need <= *cap)
                return 0;
        size_t ncap = *cap ? *cap * 2 : 8;
        while (ncap < need)
                ncap *= 2;
        void *p = reallocarray(*v, ncap, size);
        if (!p)
                return -ENOMEM;
        *v = p;
        *cap = ncap;
        return 0;
}

static int grants_insert(struct pgd_grant **v, size_t *n, size_t *cap, const struct pgd_grant *gr)
{
        size_t i = grant_lower_bound(*v, *n, gr->sbdf);
        int r;

        if (i < *n && (*v)[i].sbdf == gr->sbdf)
                return -EEXIST;
        r = grow((void **)v, cap, *n + 1, sizeof(**v));
        if (r < 0)
                return r;
        memmove(*v + i + 1, *v + i, (*n - i) * sizeof(**v));
        (*v)[i] = *gr;
        (*n)++;
        return 0;
}

static int prepared_insert(struct prepared **v, size_t *n, size_t *cap, uint32_t sbdf,
                           const char *driver, bool replace)
{
        size_t i = prepared_lower_bound(*v, *n, sbdf);
        int r;

        if (strlen(driver) >= HV_DRIVER_MAX)
                return -ENAMETOOLONG;
        if (i < *n && (*v)[i].sbdf == sbdf) {
                if (!replace)
                        return -EEXIST;
                snprintf((*v)[i].driver, sizeof((*v)[i].driver), "%s", driver);
                return 0;
        }
        r = grow((void **)v, cap, *n + 1, sizeof(**v));
        if (r < 0)
                return r;
        memmove(*v + i + 1, *v + i, (*n - i) * sizeof(**v));
        (*v)[i].sbdf = sbdf;
        snprintf((*v)[i].driver, sizeof((*v)[i].driver), "%s", driver);
        (*n)++;
        return 0;
}

static int store_new(const char *state_dir, struct pgd_grants **ret)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;

        if (!state_dir || !*state_dir)
                return -EINVAL;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->state_dir = strdup(state_dir);
        if (!g->state_dir || asprintf(&g->path, "%s/%s", state_dir, PGD_GRANTS_FILE) < 0) {
                g->path = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(g);
        return 0;
}

struct pgd_grants *pgd_grants_free(struct pgd_grants *g)
{
        if (!g)
                return NULL;
        free(g->state_dir);
        free(g->path);
        free(g->grants);
        free(g->prepared);
        free(g);
        return NULL;
}

int pgd_grants_new_empty(const char *state_dir, struct pgd_grants **ret)
{
        return store_new(state_dir, ret);
}

const char *pgd_grants_path(const struct pgd_grants *g)
{
        return g->path;
}

size_t pgd_grants_count(const struct pgd_grants *g)
{
        return g->n_grants;
}

const struct pgd_grant *pgd_grants_get(const struct pgd_grants *g, size_t i)
{
        return i < g->n_grants ? &g->grants[i] : NULL;
}

const struct pgd_grant *pgd_grants_find(const struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = grant_lower_bound(g->grants, g->n_grants, sbdf);

        return i < g->n_grants && g->grants[i].sbdf == sbdf ? &g->grants[i] : NULL;
}

size_t pgd_grants_count_domain(const struct pgd_grants *g, const char *domain_uuid)
{
        size_t n = 0;

        for (size_t i = 0; i < g->n_grants; i++)
                if (streq(g->grants[i].domain_uuid, domain_uuid))
                        n++;
        return n;
}

int pgd_grants_add(struct pgd_grants *g, const struct pgd_grant *grant)
{
        return grants_insert(&g->grants, &g->n_grants, &g->cap_grants, grant);
}

int pgd_grants_remove(struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = grant_lower_bound(g->grants, g->n_grants, sbdf);

        if (i >= g->n_grants || g->grants[i].sbdf != sbdf)
                return -ENOENT;
        memmove(g->grants + i, g->grants + i + 1, (g->n_grants - i - 1) * sizeof(*g->grants));
        g->n_grants--;
        return 0;
}

int pgd_grants_set_prepared(struct pgd_grants *g, uint32_t sbdf, const char *driver)
{
        return prepared_insert(&g->prepared, &g->n_prepared, &g->cap_prepared, sbdf,
                               driver ? driver : "", true);
}

const char *pgd_grants_prepared_driver(const struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = prepared_lower_bound(g->prepared, g->n_prepared, sbdf);

        return i < g->n_prepared && g->prepared[i].sbdf == sbdf ? g->prepared[i].driver : NULL;
}

int pgd_grants_clear_prepared(struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = prepared_lower_bound(g->prepared, g->n_prepared, sbdf);

        if (i >= g->n_prepared || g->prepared[i].sbdf != sbdf)
                return -ENOENT;
        memmove(g->prepared + i, g->prepared + i + 1,
                (g->n_prepared - i - 1) * sizeof(*g->prepared));
        g->n_prepared--;
        return 0;
}

/* ---- parsing ---- */

static const char *json_type_name(const json_t *j)
{
        switch (json_typeof(j)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "unknown";
}

/* Check obj's keys against allowed (all required). what prefixes the reason. */
static int check_members(const json_t *obj, const char *what, const char *const *allowed)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)obj, key, v)
        {
                bool known = false;
                for (const char *const *a = allowed; *a; a++)
                        if (streq(*a, key))
                                known = true;
                if (!known)
                        return bad("%sunknown key '%s'", what, key);
        }
        for (const char *const *a = allowed; *a; a++)
                if (!json_object_get(obj, *a))
                        return bad("%smissing key '%s'", what, *a);
        return 0;
}

static int get_string(const json_t *obj, const char *what, const char *key, size_t max,
                      bool nonempty, const char **ret)
{
        const json_t *v = json_object_get(obj, key);

        if (!json_is_string(v))
                return bad("%s'%s' must be a string, not %s", what, key, json_type_name(v));
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (strlen(s) != n)
                return bad("%s'%s' contains a NUL byte", what, key);
        if (n >= max)
                return bad("%s'%s' is too long (%zu bytes, at most %zu)", what, key, n, max - 1);
        if (nonempty && n == 0)
                return bad("%s'%s' is empty", what, key);
        *ret = s;
        return 0;
}

static int get_int(const json_t *obj, const char *what, const char *key, json_int_t min,
                   json_int_t max, json_int_t *ret)
{
        const json_t *v = json_object_get(obj, key);

        if (!json_is_integer(v))
                return bad("%s'%s' must be an integer, not %s", what, key, json_type_name(v));
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
                return bad("%s'%s' is out of range (%" JSON_INTEGER_FORMAT ")", what, key, i);
        *ret = i;
        return 0;
}

static int get_device(const json_t *obj, const char *what, uint32_t *ret)
{
        char canon[PG_BDF_MAX];
        const char *s = NULL;
        uint32_t sbdf;
        int r;

        r = get_string(obj, what, "device", PG_BDF_MAX, true, &s);
        if (r < 0)
                return r;
        if (pg_bdf_parse(s, &sbdf) < 0 || !streq(pg_bdf_format(sbdf, canon), s))
                return bad("%s'device' is not a PCI address of the form ssss:bb:dd.f: '%s'", what,
                           s);
        *ret = sbdf;
        return 0;
}

static bool uuid_valid(const char *s)
{
        if (strlen(s) != 36)
                return false;
        for (int i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

static int parse_grant(const json_t *obj, size_t idx, struct pgd_grant *ret)
{
        static const char *const keys[] = {
                "device",      "domid", "domain_uuid", "domain_name", "client_uid", "client_pid",
                "client_unit", "rule",  "rdm_policy",  "time",        NULL,
        };
        struct pgd_grant gr = {};
        char what[32];
        const char *s;
        json_int_t i;
        int r;

        snprintf(what, sizeof(what), "grant %zu: ", idx);
        if (!json_is_object(obj))
                return bad("grant %zu: must be an object, not %s", idx, json_type_name(obj));
        r = check_members(obj, what, keys);
        if (r < 0)
                return r;
        r = get_device(obj, what, &gr.sbdf);
        if (r < 0)
                return r;
        r = get_int(obj, what, "domid", 1, DOMID_FIRST_RESERVED - 1, &i);
        if (r < 0)
                return r;
        gr.domid = (uint32_t)i;
        r = get_string(obj, what, "domain_uuid", sizeof(gr.domain_uuid), true, &s);
        if (r < 0)
                return r;
        if (!uuid_valid(s))
                return bad("%s'domain_uuid' is not a lowercase UUID: '%s'", what, s);
        strcpy(gr.domain_uuid, s);
        r = get_string(obj, what, "domain_name", sizeof(gr.domain_name), false, &s);
        if (r < 0)
                return r;
        strcpy(gr.domain_name, s);
        r = get_int(obj, what, "client_uid", 0, (json_int_t)UINT32_MAX - 1, &i);
        if (r < 0)
                return r;
        gr.client_uid = (uid_t)i;
        r = get_int(obj, what, "client_pid", 0, INT32_MAX, &i);
        if (r < 0)
                return r;
        gr.client_pid = (pid_t)i;
        r = get_string(obj, what, "client_unit", sizeof(gr.client_unit), false, &s);
        if (r < 0)
                return r;
        strcpy(gr.client_unit, s);
        r = get_string(obj, what, "rule", sizeof(gr.rule), true, &s);
        if (r < 0)
                return r;
        strcpy(gr.rule, s);
        r = get_string(obj, what, "rdm_policy", 16, true, &s);
        if (r < 0)
                return r;
        if (streq(s, pg_policy_rdm_name(PG_POLICY_RDM_STRICT)))
                gr.rdm_policy = PG_POLICY_RDM_STRICT;
        else if (streq(s, pg_policy_rdm_name(PG_POLICY_RDM_RELAXED)))
                gr.rdm_policy = PG_POLICY_RDM_RELAXED;
        else
                return bad("%s'rdm_policy' must be \"strict\" or \"relaxed\", not '%s'", what, s);
        r = get_int(obj, what, "time", 0, INT64_MAX, &i);
        if (r < 0)
                return r;
        gr.time = i;
        *ret = gr;
        return 0;
}

int pgd_grants_parse(const char *text, size_t len, struct pgd_grants *g, const char **ret_why)
{
        static const char *const top_keys[] = {"format", "grants", "prepared", "checksum", NULL};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(freep) struct pgd_grant *grants = NULL;
        _cleanup_(freep) struct prepared *prepared = NULL;
        size_t n_grants = 0, cap_grants = 0, n_prepared = 0, cap_prepared = 0;
        char want[CHECKSUM_MAX];
        json_error_t jerr;
        const json_t *v;
        const char *s;
        size_t idx;
        int r;

        why_buf[0] = '\0';
        if (len > GRANTS_MAX_FILE_SIZE)
                r = bad("file too large (%zu bytes)", len);
        else if (memchr(text, '\0', len))
                r = bad("file contains a NUL byte");
        else {
                root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
                r = root ? 0 : bad("line %d: %s", jerr.line, jerr.text);
        }
        if (r >= 0 && !json_is_object(root))
                r = bad("top level must be an object, not %s", json_type_name(root));

        /* The format first: a future format may checksum differently. */
        if (r >= 0) {
                v = json_object_get(root, "format");
                if (!v)
                        r = bad("missing key 'format'");
                else if (!json_is_integer(v))
                        r = bad("'format' must be an integer, not %s", json_type_name(v));
                else if (json_integer_value(v) != PGD_GRANTS_FORMAT) {
                        snprintf(why_buf, sizeof(why_buf),
                                 "unsupported format %" JSON_INTEGER_FORMAT
                                 " (this passguardd reads format %d)",
                                 json_integer_value(v), PGD_GRANTS_FORMAT);
                        r = -EPROTONOSUPPORT;
                }
        }
        if (r >= 0)
                r = check_members(root, "", top_keys);

        /* Then the checksum, before trusting anything else in the file. */
        if (r >= 0)
                r = get_string(root, "", "checksum", CHECKSUM_MAX, true, &s);
        if (r >= 0) {
                _cleanup_(freep) char *have = strdup(s);
                if (!have)
                        return -ENOMEM;
                json_object_del(root, "checksum");
                r = pgd_grants_checksum(root, want);
                if (r < 0)
                        return r;
                if (!streq(have, want))
                        r = bad("checksum mismatch");
        }

        if (r >= 0) {
                v = json_object_get(root, "grants");
                if (!json_is_array(v))
                        r = bad("'grants' must be an array, not %s", json_type_name(v));
        }
        if (r >= 0) {
                const json_t *e;
                json_array_foreach(json_object_get(root, "grants"), idx, e)
                {
                        struct pgd_grant gr;
                        char bdf[PG_BDF_MAX];
                        r = parse_grant(e, idx, &gr);
                        if (r < 0)
                                break;
                        r = grants_insert(&grants, &n_grants, &cap_grants, &gr);
                        if (r == -EEXIST)
                                r = bad("grant %zu: device %s is granted twice", idx,
                                        pg_bdf_format(gr.sbdf, bdf));
                        if (r < 0)
                                break;
                }
        }

        if (r >= 0) {
                v = json_object_get(root, "prepared");
                if (!json_is_array(v))
                        r = bad("'prepared' must be an array, not %s", json_type_name(v));
        }
        if (r >= 0) {
                static const char *const keys[] = {"device", "driver", NULL};
                const json_t *e;
                json_array_foreach(json_object_get(root, "prepared"), idx, e)
                {
                        char what[32], bdf[PG_BDF_MAX];
                        uint32_t sbdf = 0;
                        snprintf(what, sizeof(what), "prepared %zu: ", idx);
                        if (!json_is_object(e)) {
                                r = bad("prepared %zu: must be an object, not %s", idx,
                                        json_type_name(e));
                                break;
                        }
                        r = check_members(e, what, keys);
                        if (r >= 0)
                                r = get_device(e, what, &sbdf);
                        if (r >= 0)
                                r = get_string(e, what, "driver", HV_DRIVER_MAX, false, &s);
                        if (r >= 0)
                                r = prepared_insert(&prepared, &n_prepared, &cap_prepared, sbdf, s,
                                                    false);
                        if (r == -EEXIST)
                                r = bad("prepared %zu: device %s is listed twice", idx,
                                        pg_bdf_format(sbdf, bdf));
                        if (r < 0)
                                break;
                }
        }

        if (r < 0) {
                if (ret_why)
                        *ret_why = why_buf;
                return r;
        }

        free(g->grants);
        g->grants = TAKE_PTR(grants);
        g->n_grants = n_grants;
        g->cap_grants = cap_grants;
        free(g->prepared);
        g->prepared = TAKE_PTR(prepared);
        g->n_prepared = n_prepared;
        g->cap_prepared = cap_prepared;
        return 0;
}

/* ---- loading ---- */

static int read_file(int fd, char **ret, size_t *ret_len)
{
        _cleanup_(freep) char *buf = NULL;
        size_t n = 0, cap = 0;

        for (;;) {
                if (n == cap) {
                        if (cap > GRANTS_MAX_FILE_SIZE)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 4096;
                        char *p = realloc(buf, cap + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                ssize_t k = read(fd, buf + n, cap - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

int pgd_grants_open(const char *state_dir, struct pgd_grants **ret, const char **ret_why)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        _cleanup_(freep) char *text = NULL;
        _cleanup_(closep) int fd = -1;
        size_t len = 0;
        int r;

        r = store_new(state_dir, &g);
        if (r < 0)
                return r;

        fd = open(g->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT) {
                        *ret = TAKE_PTR(g);
                        return 0;
                }
                r = -errno;
                snprintf(why_buf, sizeof(why_buf), "cannot open: %s", strerror(-r));
                if (ret_why)
                        *ret_why = why_buf;
                return r;
        }
        r = read_file(fd, &text, &len);
        if (r == -EFBIG)
                r = bad("file too large");
        else if (r < 0)
                snprintf(why_buf, sizeof(why_buf), "cannot read: %s", strerror(-r));
        if (r < 0) {
                if (ret_why)
                        *ret_why = why_buf;
                return r;
        }
        r = pgd_grants_parse(text, len, g, ret_why);
        if (r < 0)
                return r;

        /* A leftover temporary file never holds committed state: the rename is the commit. */
        _cleanup_(freep) char *tmp = NULL;
        if (asprintf(&tmp, "%s/%s", g->state_dir, GRANTS_TMP_FILE) < 0)
                tmp = NULL;
        else
                (void)unlink(tmp);
        *ret = TAKE_PTR(g);
        return 0;
}

/* ---- serialising and committing ---- */

static json_t *grant_to_json(const struct pgd_grant *gr)
{
        char bdf[PG_BDF_MAX];

        return json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I}", "device",
                         pg_bdf_format(gr->sbdf, bdf), "domid", (json_int_t)gr->domid,
                         "domain_uuid", gr->domain_uuid, "domain_name", gr->domain_name,
                         "client_uid", (json_int_t)gr->client_uid, "client_pid",
                         (json_int_t)gr->client_pid, "client_unit", gr->client_unit, "rule",
                         gr->rule, "rdm_policy", pg_policy_rdm_name(gr->rdm_policy), "time",
                         (json_int_t)gr->time);
}

int pgd_grants_format(const struct pgd_grants *g, char **ret_text, size_t *ret_len)
{
        _cleanup_(json_decrefp) json_t *root = NULL, *grants = NULL, *prepared = NULL;
        char sum[CHECKSUM_MAX], bdf[PG_BDF_MAX];
        int r;

        grants = json_array();
        prepared = json_array();
        if (!grants || !prepared)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_grants; i++)
                if (json_array_append_new(grants, grant_to_json(&g->grants[i])) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < g->n_prepared; i++)
                if (json_array_append_new(prepared,
                                          json_pack("{s:s, s:s}", "device",
                                                    pg_bdf_format(g->prepared[i].sbdf, bdf),
                                                    "driver", g->prepared[i].driver)) < 0)
                        return -ENOMEM;
        root = json_pack("{s:i, s:O, s:O}", "format", PGD_GRANTS_FORMAT, "grants", grants,
                         "prepared", prepared);
        if (!root)
                return -ENOMEM;
        r = pgd_grants_checksum(root, sum);
        if (r < 0)
                return r;
        if (json_object_set_new(root, "checksum", json_string(sum)) < 0)
                return -ENOMEM;
        char *text = json_dumps(root, JSON_INDENT(2));
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        /* A text file ends in a newline. */
        char *p = realloc(text, len + 2);
        if (!p) {
                free(text);
                return -ENOMEM;
        }
        p[len++] = '\n';
        p[len] = '\0';
        *ret_text = p;
        if (ret_len)
                *ret_len = len;
        return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

/*
 * Replace STATE_DIR/grants.json by text: write the temporary file, fsync,
 * rename, fsync the directory. dirfd is borrowed. On a failure before the
 * rename the temporary file is removed and the old file is untouched.
 */
static int replace_file(int dirfd, const char *text, size_t len)
{
        _cleanup_(closep) int fd = -1;
        int r;

        fd = openat(dirfd, GRANTS_TMP_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    0600);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0) {
                int k = close(TAKE_FD(fd));
                if (k < 0 && errno != EINTR)
                        r = -errno;
        }
        if (r >= 0 && renameat(dirfd, GRANTS_TMP_FILE, dirfd, PGD_GRANTS_FILE) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dirfd, GRANTS_TMP_FILE, 0);
                return r;
        }
        /*
         * Past the rename the new file is in place; a failing directory fsync
         * (an I/O error) is still reported, so that the caller fails closed.
         */
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

int pgd_grants_commit(struct pgd_grants *g)
{
        _cleanup_(freep) char *text = NULL;
        _cleanup_(closep) int dirfd = -1;
        size_t len;
        int r;

        r = pgd_grants_format(g, &text, &len);
        if (r < 0)
                return r;
        /* Opened first: a missing state directory fails before anything is written. */
        dirfd = open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        return replace_file(dirfd, text, len);
}
