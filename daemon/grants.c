/* SPDX-License-Identifier: MIT */
/*
 * The grant store (DESIGN.md "Grant store", invariant 4).
 *
 * STATE_DIR/grants.json, the snapshot:
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
 * STATE_DIR/grants.journal, the changes since the snapshot, one JSON object
 * per line, each with its own checksum (as above, over the line's object
 * without "checksum"):
 *   {"op":"base","seq":S,"snapshot":"sha256:...","carried":[...]}
 *                    the snapshot it follows (null: no grants.json), the last
 *                    sequence number before it, and the intents still open
 *                    at the compaction that started it
 *   {"op":"intent-assign","seq":1,"device":D,"grant":{...}}
 *   {"op":"grant","seq":2,"device":D,"intent":1,"grant":{...}}
 *   {"op":"abort","seq":3,"device":D,"intent":1}
 *   {"op":"release","seq":4,"device":D}
 *   {"op":"intent-prepare","seq":5,"device":D,"driver":"e1000"}
 *   {"op":"prepared","seq":6,"device":D,"intent":5,"driver":"e1000"}
 *   {"op":"unprepared","seq":7,"device":D}
 * The carried intents come first, again, with their own sequence numbers, in
 * the order the base line lists them; then the records, numbered on from
 * S + 1 without a gap (an intent keeps its number across compactions, so an
 * outcome can always name it). Loading replays the journal whose base
 * is the snapshot's checksum; a journal with another base is older than the
 * snapshot (a compaction was interrupted after the snapshot's rename) and is
 * ignored. Invalid text after the last valid record is a torn append (a crash
 * while records were written, before their sync: never acknowledged) and is
 * ignored; an invalid record followed by a valid one is corruption.
 *
 * Appending writes the line (O_APPEND); syncing is one fdatasync for every
 * record appended since the last one (and a directory fsync when the file
 * was created). The journal is open only while records are written and
 * synced (pgd_grants_journal_idle()), so that no file of the state
 * directory stays open for writing when the daemon is idle. A failed
 * write is cut off again (ftruncate); after a failed write or sync the
 * journal takes no record until a compaction succeeded (what reached the
 * disk is unknown). A file system with less than JOURNAL_RESERVE bytes free
 * takes no record: the journal could not be compacted there.
 *
 * Compaction writes grants.json.tmp, fsyncs it, writes grants.journal.tmp
 * (the base line and the intents still open, carried), fsyncs it, renames the snapshot
 * into place, fsyncs the directory, renames the journal into place and fsyncs
 * the directory again. A crash between the two renames leaves the new
 * snapshot with the old journal (ignored: another base) and the new journal
 * as grants.journal.tmp, which loading then puts in place. When the snapshot
 * would not change, only the journal is replaced.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <jansson.h>

#include "grants.h"
#include "pg-file.h"
#include "pg-util.h"
#include "pg-wire.h"

#define GRANTS_TMP_FILE PGD_GRANTS_FILE ".tmp"
#define JOURNAL_TMP_FILE PGD_GRANTS_JOURNAL ".tmp"
#define GRANTS_MAX_FILE_SIZE (16u * 1024 * 1024)
/* A journal longer than this (and than twice its snapshot) is compacted at its next sync. */
#define JOURNAL_COMPACT_SIZE (256u * 1024)
/* Free space below which the journal takes no record. */
#define JOURNAL_RESERVE (64u * 1024)
#define CHECKSUM_PREFIX "sha256:"

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
        struct pgd_intent *intents; /* open intents, by seq */
        size_t n_intents, cap_intents;

        char snapshot_sum[PGD_GRANTS_CHECKSUM_MAX]; /* of grants.json on disk, "" for none */
        size_t snapshot_size;
        char *journal_path;
        int journal_fd;       /* open for appending while records wait for their sync */
        bool journal_exists;  /* the file is on disk, with its base line */
        bool journal_created; /* created since the directory was last synced */
        bool journal_broken;  /* a write or sync failed: compact before the next record */
        size_t journal_size;  /* bytes of whole records (base line included) */
        uint64_t next_seq;
        size_t unsynced;
};

/* Why a file does not load: filled by bad(why, ), handed to the caller as a copy. */
#define WHY_MAX 256

_printf_(2, 3) static int bad(char why[static WHY_MAX], const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, WHY_MAX, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* Hand why to the caller (ret_why may be NULL); -ENOMEM replaces r when it cannot. */
static int give_why(int r, const char *why, char **ret_why)
{
        if (!ret_why)
                return r;
        *ret_why = strdup(why);
        return *ret_why ? r : -ENOMEM;
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
        g->journal_fd = -1;
        g->next_seq = 1;
        g->state_dir = strdup(state_dir);
        if (!g->state_dir || asprintf(&g->path, "%s/%s", state_dir, PGD_GRANTS_FILE) < 0) {
                g->path = NULL;
                return -ENOMEM;
        }
        if (asprintf(&g->journal_path, "%s/%s", state_dir, PGD_GRANTS_JOURNAL) < 0) {
                g->journal_path = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(g);
        return 0;
}

struct pgd_grants *pgd_grants_free(struct pgd_grants *g)
{
        if (!g)
                return NULL;
        safe_close(g->journal_fd);
        free(g->state_dir);
        free(g->path);
        free(g->journal_path);
        free(g->grants);
        free(g->prepared);
        free(g->intents);
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

/* ---- open intents ---- */

static ssize_t intent_index(const struct pgd_grants *g, uint64_t seq)
{
        size_t lo = 0, hi = g->n_intents;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (g->intents[mid].seq < seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < g->n_intents && g->intents[lo].seq == seq ? (ssize_t)lo : -1;
}

size_t pgd_grants_n_intents(const struct pgd_grants *g)
{
        return g->n_intents;
}

const struct pgd_intent *pgd_grants_intent(const struct pgd_grants *g, size_t i)
{
        return i < g->n_intents ? &g->intents[i] : NULL;
}

const struct pgd_intent *pgd_grants_find_intent(const struct pgd_grants *g, uint64_t seq)
{
        ssize_t i = intent_index(g, seq);

        return i >= 0 ? &g->intents[i] : NULL;
}

int pgd_grants_drop_intent(struct pgd_grants *g, uint64_t seq)
{
        ssize_t i = intent_index(g, seq);

        if (i < 0)
                return -ENOENT;
        memmove(g->intents + i, g->intents + i + 1,
                (g->n_intents - (size_t)i - 1) * sizeof(*g->intents));
        g->n_intents--;
        return 0;
}

int pgd_grants_restore_intent(struct pgd_grants *g, const struct pgd_intent *in)
{
        size_t i = 0;
        int k;

        if (intent_index(g, in->seq) >= 0)
                return 0;
        k = grow((void **)&g->intents, &g->cap_intents, g->n_intents + 1, sizeof(*g->intents));
        if (k < 0)
                return k;
        while (i < g->n_intents && g->intents[i].seq < in->seq)
                i++;
        memmove(g->intents + i + 1, g->intents + i, (g->n_intents - i) * sizeof(*g->intents));
        g->intents[i] = *in;
        g->n_intents++;
        return 0;
}

/* Intents are opened in seq order: appending keeps the array sorted. */
static int intent_open(struct pgd_grants *g, const struct pgd_record *r)
{
        int k;

        if (g->n_intents > 0 && g->intents[g->n_intents - 1].seq >= r->seq)
                return -EINVAL;
        k = grow((void **)&g->intents, &g->cap_intents, g->n_intents + 1, sizeof(*g->intents));
        if (k < 0)
                return k;
        g->intents[g->n_intents++] = (struct pgd_intent){
                .seq = r->seq,
                .op = r->op,
                .sbdf = r->sbdf,
                .grant = r->grant,
        };
        memcpy(g->intents[g->n_intents - 1].driver, r->driver, sizeof(r->driver));
        return 0;
}

/*
 * A record's effect on memory: the same for a change made now and for one
 * replayed at start-up. -ENOENT when it resolves an intent that is not open.
 */
static int apply_record(struct pgd_grants *g, const struct pgd_record *r)
{
        int k;

        switch (r->op) {
        case PGD_RECORD_INTENT_ASSIGN:
        case PGD_RECORD_INTENT_PREPARE:
                return intent_open(g, r);
        case PGD_RECORD_GRANT:
                if (r->intent && intent_index(g, r->intent) < 0)
                        return -ENOENT;
                (void)pgd_grants_remove(g, r->sbdf);
                k = pgd_grants_add(g, &r->grant);
                if (k < 0)
                        return k;
                if (r->intent)
                        (void)pgd_grants_drop_intent(g, r->intent);
                return 0;
        case PGD_RECORD_ABORT:
                return pgd_grants_drop_intent(g, r->intent);
        case PGD_RECORD_RELEASE:
                (void)pgd_grants_remove(g, r->sbdf);
                return 0;
        case PGD_RECORD_PREPARED:
                if (r->intent && intent_index(g, r->intent) < 0)
                        return -ENOENT;
                k = pgd_grants_set_prepared(g, r->sbdf, r->driver);
                if (k < 0)
                        return k;
                if (r->intent)
                        (void)pgd_grants_drop_intent(g, r->intent);
                return 0;
        case PGD_RECORD_UNPREPARED:
                (void)pgd_grants_clear_prepared(g, r->sbdf);
                return 0;
        }
        return -EINVAL;
}

/* ---- parsing ---- */

static const char *json_type_name(const json_t *j)
{
        if (!j)
                return "missing";
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
static int check_members(char *why, const json_t *obj, const char *what,
                         const char *const *allowed)
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
                        return bad(why, "%sunknown key '%s'", what, key);
        }
        for (const char *const *a = allowed; *a; a++)
                if (!json_object_get(obj, *a))
                        return bad(why, "%smissing key '%s'", what, *a);
        return 0;
}

static int get_string(char *why, const json_t *obj, const char *what, const char *key, size_t max,
                      bool nonempty, const char **ret)
{
        const json_t *v = json_object_get(obj, key);

        if (!json_is_string(v))
                return bad(why, "%s'%s' must be a string, not %s", what, key, json_type_name(v));
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (strlen(s) != n)
                return bad(why, "%s'%s' contains a NUL byte", what, key);
        if (n >= max)
                return bad(why, "%s'%s' is too long (%zu bytes, at most %zu)", what, key, n, max - 1);
        if (nonempty && n == 0)
                return bad(why, "%s'%s' is empty", what, key);
        *ret = s;
        return 0;
}

static int get_int(char *why, const json_t *obj, const char *what, const char *key, json_int_t min,
                   json_int_t max, json_int_t *ret)
{
        const json_t *v = json_object_get(obj, key);

        if (!json_is_integer(v))
                return bad(why, "%s'%s' must be an integer, not %s", what, key, json_type_name(v));
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
                return bad(why, "%s'%s' is out of range (%" JSON_INTEGER_FORMAT ")", what, key, i);
        *ret = i;
        return 0;
}

static int get_device(char *why, const json_t *obj, const char *what, uint32_t *ret)
{
        char canon[PG_BDF_MAX];
        const char *s = NULL;
        uint32_t sbdf;
        int r;

        r = get_string(why, obj, what, "device", PG_BDF_MAX, true, &s);
        if (r < 0)
                return r;
        if (pg_bdf_parse(s, &sbdf) < 0 || !streq(pg_bdf_format(sbdf, canon), s))
                return bad(why, "%s'device' is not a PCI address of the form ssss:bb:dd.f: '%s'", what,
                           s);
        *ret = sbdf;
        return 0;
}

/* A UUID as the store writes it: canonical, lowercase. */
static bool uuid_valid(const char *s)
{
        char norm[PG_UUID_MAX];

        return pg_uuid_normalize(s, norm) >= 0 && streq(norm, s);
}

static int parse_grant(char *why, const json_t *obj, size_t idx, struct pgd_grant *ret)
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
                return bad(why, "grant %zu: must be an object, not %s", idx, json_type_name(obj));
        r = check_members(why, obj, what, keys);
        if (r < 0)
                return r;
        r = get_device(why, obj, what, &gr.sbdf);
        if (r < 0)
                return r;
        r = get_int(why, obj, what, "domid", 1, PG_DOMID_GUEST_MAX, &i);
        if (r < 0)
                return r;
        gr.domid = (uint32_t)i;
        r = get_string(why, obj, what, "domain_uuid", sizeof(gr.domain_uuid), true, &s);
        if (r < 0)
                return r;
        if (!uuid_valid(s))
                return bad(why, "%s'domain_uuid' is not a lowercase UUID: '%s'", what, s);
        strcpy(gr.domain_uuid, s);
        r = get_string(why, obj, what, "domain_name", sizeof(gr.domain_name), false, &s);
        if (r < 0)
                return r;
        strcpy(gr.domain_name, s);
        r = get_int(why, obj, what, "client_uid", 0, (json_int_t)UINT32_MAX - 1, &i);
        if (r < 0)
                return r;
        gr.client_uid = (uid_t)i;
        r = get_int(why, obj, what, "client_pid", 0, INT32_MAX, &i);
        if (r < 0)
                return r;
        gr.client_pid = (pid_t)i;
        r = get_string(why, obj, what, "client_unit", sizeof(gr.client_unit), false, &s);
        if (r < 0)
                return r;
        strcpy(gr.client_unit, s);
        r = get_string(why, obj, what, "rule", sizeof(gr.rule), true, &s);
        if (r < 0)
                return r;
        strcpy(gr.rule, s);
        r = get_string(why, obj, what, "rdm_policy", 16, true, &s);
        if (r < 0)
                return r;
        if (streq(s, pg_policy_rdm_name(PG_POLICY_RDM_STRICT)))
                gr.rdm_policy = PG_POLICY_RDM_STRICT;
        else if (streq(s, pg_policy_rdm_name(PG_POLICY_RDM_RELAXED)))
                gr.rdm_policy = PG_POLICY_RDM_RELAXED;
        else
                return bad(why, "%s'rdm_policy' must be \"strict\" or \"relaxed\", not '%s'", what, s);
        r = get_int(why, obj, what, "time", 0, INT64_MAX, &i);
        if (r < 0)
                return r;
        gr.time = i;
        *ret = gr;
        return 0;
}

static int snapshot_parse(char *why, const char *text, size_t len, struct pgd_grants *g);

int pgd_grants_parse(const char *text, size_t len, struct pgd_grants *g, char **ret_why)
{
        char why[WHY_MAX] = "";
        int r = snapshot_parse(why, text, len, g);

        return r < 0 ? give_why(r, why, ret_why) : r;
}

/* The snapshot's text into g (empty), or -EBADMSG / -EPROTONOSUPPORT and why. */
static int snapshot_parse(char *why, const char *text, size_t len, struct pgd_grants *g)
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

        if (len > GRANTS_MAX_FILE_SIZE)
                r = bad(why, "file too large (%zu bytes)", len);
        else if (memchr(text, '\0', len))
                r = bad(why, "file contains a NUL byte");
        else {
                root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
                r = root ? 0 : bad(why, "line %d: %s", jerr.line, jerr.text);
        }
        if (r >= 0 && !json_is_object(root))
                r = bad(why, "top level must be an object, not %s", json_type_name(root));

        /* The format first: a future format may checksum differently. */
        if (r >= 0) {
                v = json_object_get(root, "format");
                if (!v)
                        r = bad(why, "missing key 'format'");
                else if (!json_is_integer(v))
                        r = bad(why, "'format' must be an integer, not %s", json_type_name(v));
                else if (json_integer_value(v) != PGD_GRANTS_FORMAT) {
                        snprintf(why, WHY_MAX,
                                 "unsupported format %" JSON_INTEGER_FORMAT
                                 " (this passguardd reads format %d)",
                                 json_integer_value(v), PGD_GRANTS_FORMAT);
                        r = -EPROTONOSUPPORT;
                }
        }
        if (r >= 0)
                r = check_members(why, root, "", top_keys);

        /* Then the checksum, before trusting anything else in the file. */
        if (r >= 0)
                r = get_string(why, root, "", "checksum", CHECKSUM_MAX, true, &s);
        if (r >= 0) {
                _cleanup_(freep) char *have = strdup(s);
                if (!have)
                        return -ENOMEM;
                json_object_del(root, "checksum");
                r = pgd_grants_checksum(root, want);
                if (r < 0)
                        return r;
                if (!streq(have, want))
                        r = bad(why, "checksum mismatch");
        }

        if (r >= 0) {
                v = json_object_get(root, "grants");
                if (!json_is_array(v))
                        r = bad(why, "'grants' must be an array, not %s", json_type_name(v));
        }
        if (r >= 0) {
                const json_t *e;
                json_array_foreach(json_object_get(root, "grants"), idx, e)
                {
                        struct pgd_grant gr;
                        char bdf[PG_BDF_MAX];
                        r = parse_grant(why, e, idx, &gr);
                        if (r < 0)
                                break;
                        r = grants_insert(&grants, &n_grants, &cap_grants, &gr);
                        if (r == -EEXIST)
                                r = bad(why, "grant %zu: device %s is granted twice", idx,
                                        pg_bdf_format(gr.sbdf, bdf));
                        if (r < 0)
                                break;
                }
        }

        if (r >= 0) {
                v = json_object_get(root, "prepared");
                if (!json_is_array(v))
                        r = bad(why, "'prepared' must be an array, not %s", json_type_name(v));
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
                                r = bad(why, "prepared %zu: must be an object, not %s", idx,
                                        json_type_name(e));
                                break;
                        }
                        r = check_members(why, e, what, keys);
                        if (r >= 0)
                                r = get_device(why, e, what, &sbdf);
                        if (r >= 0)
                                r = get_string(why, e, what, "driver", HV_DRIVER_MAX, false, &s);
                        if (r >= 0)
                                r = prepared_insert(&prepared, &n_prepared, &cap_prepared, sbdf, s,
                                                    false);
                        if (r == -EEXIST)
                                r = bad(why, "prepared %zu: device %s is listed twice", idx,
                                        pg_bdf_format(sbdf, bdf));
                        if (r < 0)
                                break;
                }
        }

        if (r < 0)
                return r;

        free(g->grants);
        g->grants = TAKE_PTR(grants);
        g->n_grants = n_grants;
        g->cap_grants = cap_grants;
        free(g->prepared);
        g->prepared = TAKE_PTR(prepared);
        g->n_prepared = n_prepared;
        g->cap_prepared = cap_prepared;
        memcpy(g->snapshot_sum, want, sizeof(want));
        g->snapshot_size = len;
        return 0;
}

/* ---- journal records ---- */

static const char *const record_op_names[] = {
        [PGD_RECORD_INTENT_ASSIGN] = "intent-assign",
        [PGD_RECORD_GRANT] = "grant",
        [PGD_RECORD_ABORT] = "abort",
        [PGD_RECORD_RELEASE] = "release",
        [PGD_RECORD_INTENT_PREPARE] = "intent-prepare",
        [PGD_RECORD_PREPARED] = "prepared",
        [PGD_RECORD_UNPREPARED] = "unprepared",
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

/* "intent": required, optional (0 may be left out) or absent. */
enum { INTENT_NONE, INTENT_OPTIONAL, INTENT_REQUIRED };

static int record_intent_key(enum pgd_record_op op)
{
        switch (op) {
        case PGD_RECORD_ABORT:
                return INTENT_REQUIRED;
        case PGD_RECORD_GRANT:
        case PGD_RECORD_PREPARED:
                return INTENT_OPTIONAL;
        default:
                return INTENT_NONE;
        }
}

static json_t *grant_to_json(const struct pgd_grant *gr);

/* One line: the object, its checksum, '\n'. */
static int line_format(json_t *obj, char **ret, size_t *ret_len)
{
        char sum[CHECKSUM_MAX];
        int r;

        r = pgd_grants_checksum(obj, sum);
        if (r < 0)
                return r;
        if (json_object_set_new(obj, "checksum", json_string(sum)) < 0)
                return -ENOMEM;
        char *text = json_dumps(obj, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        char *p = realloc(text, len + 2);
        if (!p) {
                free(text);
                return -ENOMEM;
        }
        p[len++] = '\n';
        p[len] = '\0';
        *ret = p;
        *ret_len = len;
        return 0;
}

/* A journal's base line: the snapshot's sum, the seq before its records, the carried intents. */
static int base_format(const char *snapshot_sum, uint64_t seq, const struct pgd_intent *carried,
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
        canon_key(c, "rdm_policy", &first);
        canon_string(c, pg_policy_rdm_name(g->rdm_policy));
        canon_key(c, "rule", &first);
        canon_string(c, g->rule);
        canon_key(c, "time", &first);
        canon_int(c, g->time);
        canon_puts(c, "}");
}

static int record_format(const struct pgd_record *r, char **ret, size_t *ret_len)
{
        const char *name = pgd_grants_record_op_name(r->op);
        struct canon c = {};
        struct sha256 sh;
        char bdf[PG_BDF_MAX];
        uint8_t md[32];
        bool first = true;

        if (!name)
                return -EINVAL;
        /* The keys in order: device, driver, grant, intent, op, seq. */
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
        if (record_intent_key(r->op) == INTENT_REQUIRED ||
            (record_intent_key(r->op) == INTENT_OPTIONAL && r->intent)) {
                canon_key(&c, "intent", &first);
                canon_int(&c, (int64_t)r->intent);
        }
        canon_key(&c, "op", &first);
        canon_string(&c, name);
        canon_key(&c, "seq", &first);
        canon_int(&c, (int64_t)r->seq);
        canon_puts(&c, "}");
        if (c.error) {
                free(c.buf);
                return c.error;
        }

        sha256_init(&sh);
        sha256_update(&sh, c.buf, c.len);
        sha256_final(&sh, md);
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
                return bad(why, "contains a NUL byte");
        obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj)
                return bad(why, "%s", jerr.text);
        if (!json_is_object(obj))
                return bad(why, "not an object but %s", json_type_name(obj));
        r = get_string(why, obj, "", "checksum", CHECKSUM_MAX, true, &s);
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
                return bad(why, "checksum mismatch");
        *ret_obj = TAKE_PTR(obj);
        return 0;
}

struct base {
        char sum[CHECKSUM_MAX]; /* "" for none */
        uint64_t seq;           /* the records continue at seq + 1 */
        uint64_t *carried;      /* the intents that come first, in order */
        size_t n_carried;
};

static void base_clear(struct base *b)
{
        b->carried = pg_free(b->carried);
        b->n_carried = 0;
}

static int base_parse(char *why, const char *text, size_t len, struct base *ret)
{
        static const char *const keys[] = {"op", "seq", "snapshot", "carried", NULL};
        _cleanup_(json_decrefp) json_t *obj = NULL;
        struct base b = {};
        const json_t *v, *e;
        json_int_t seq;
        const char *s;
        size_t i;
        int r;

        r = line_parse(why, text, len, &obj);
        if (r < 0)
                return r;
        r = check_members(why, obj, "", keys);
        if (r < 0)
                return r;
        r = get_string(why, obj, "", "op", 16, true, &s);
        if (r >= 0 && !streq(s, "base"))
                r = bad(why, "the first line is a '%s' record, not the base", s);
        if (r >= 0)
                r = get_int(why, obj, "", "seq", 0, INT64_MAX - 1, &seq);
        if (r < 0)
                return r;
        b.seq = (uint64_t)seq;
        v = json_object_get(obj, "snapshot");
        if (!json_is_null(v)) {
                r = get_string(why, obj, "", "snapshot", CHECKSUM_MAX, true, &s);
                if (r < 0)
                        return r;
                if (strncmp(s, CHECKSUM_PREFIX, strlen(CHECKSUM_PREFIX)) != 0 ||
                    strlen(s) != CHECKSUM_MAX - 1)
                        return bad(why, "'snapshot' is not a checksum: '%s'", s);
                strcpy(b.sum, s);
        }
        v = json_object_get(obj, "carried");
        if (!json_is_array(v))
                return bad(why, "'carried' must be an array, not %s", json_type_name(v));
        b.carried = calloc(json_array_size(v) + 1, sizeof(*b.carried));
        if (!b.carried)
                return -ENOMEM;
        json_array_foreach(v, i, e)
        {
                json_int_t x = json_integer_value(e);
                if (!json_is_integer(e) || x < 1 || (uint64_t)x > b.seq ||
                    (i > 0 && (uint64_t)x <= b.carried[i - 1])) {
                        base_clear(&b);
                        return bad(why, "'carried' must list increasing sequence numbers up to %" PRIu64,
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
        const char *keys[8], *s = NULL;
        json_int_t i;
        size_t n = 0;
        int r, op = -1;

        r = line_parse(why, text, len, &obj);
        if (r < 0)
                return r;
        r = get_string(why, obj, "", "op", 32, true, &s);
        if (r < 0)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(record_op_names); k++)
                if (streq(s, record_op_names[k]))
                        op = (int)k;
        if (op < 0)
                return bad(why, "unknown op '%s'", s);
        rec.op = (enum pgd_record_op)op;

        keys[n++] = "op";
        keys[n++] = "seq";
        keys[n++] = "device";
        if (record_intent_key(rec.op) == INTENT_REQUIRED ||
            (record_intent_key(rec.op) == INTENT_OPTIONAL && json_object_get(obj, "intent")))
                keys[n++] = "intent";
        if (record_has_grant(rec.op))
                keys[n++] = "grant";
        if (record_has_driver(rec.op))
                keys[n++] = "driver";
        keys[n] = NULL;
        r = check_members(why, obj, "", keys);
        if (r < 0)
                return r;

        r = get_int(why, obj, "", "seq", 1, INT64_MAX, &i);
        if (r < 0)
                return r;
        rec.seq = (uint64_t)i;
        r = get_device(why, obj, "", &rec.sbdf);
        if (r < 0)
                return r;
        if (json_object_get(obj, "intent")) {
                r = get_int(why, obj, "", "intent", 1, (json_int_t)rec.seq - 1, &i);
                if (r < 0)
                        return r;
                rec.intent = (uint64_t)i;
        }
        if (record_has_grant(rec.op)) {
                r = parse_grant(why, json_object_get(obj, "grant"), 0, &rec.grant);
                if (r < 0)
                        return r;
                if (rec.grant.sbdf != rec.sbdf)
                        return bad(why, "the grant is for another device than the record");
        }
        if (record_has_driver(rec.op)) {
                r = get_string(why, obj, "", "driver", HV_DRIVER_MAX, false, &s);
                if (r < 0)
                        return r;
                strcpy(rec.driver, s);
        }
        *ret = rec;
        return 0;
}

/* The next line of text at *pos: [*ret_line, +*ret_len), complete when it ended in '\n'. */
static bool next_line(const char *text, size_t len, size_t *pos, const char **ret_line,
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
static int replay_records(char *why, struct pgd_grants *g, const struct base *b, const char *text,
                          size_t len,
                          size_t pos, size_t *ret_size, uint64_t *ret_next)
{
        uint64_t next = b->seq + 1;
        size_t valid = pos, carried = 0;
        const char *line;
        size_t line_len;
        bool complete;
        int r;

        while (next_line(text, len, &pos, &line, &line_len, &complete)) {
                struct pgd_record rec;
                char reason[WHY_MAX];
                uint64_t due = carried < b->n_carried ? b->carried[carried] : next;

                r = complete ? record_parse(why, line, line_len, &rec) : bad(why, "incomplete line");
                if (r >= 0 && rec.seq != due)
                        r = bad(why, "record %" PRIu64 " where %" PRIu64 " was due", rec.seq, due);
                if (r >= 0 && carried < b->n_carried && rec.op != PGD_RECORD_INTENT_ASSIGN &&
                    rec.op != PGD_RECORD_INTENT_PREPARE)
                        r = bad(why, "record %" PRIu64 " is carried but is no intent", rec.seq);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        /* Torn, unless a valid record comes after it. */
                        snprintf(reason, sizeof(reason), "%s", why);
                        size_t at = pos;
                        while (next_line(text, len, &at, &line, &line_len, &complete)) {
                                struct pgd_record later;
                                if (complete && record_parse(why, line, line_len, &later) >= 0)
                                        return bad(why, "record %" PRIu64 ": %s", due, reason);
                        }
                        break;
                }
                r = apply_record(g, &rec);
                if (r == -ENOENT)
                        return bad(why, "record %" PRIu64 ": intent %" PRIu64 " is not open", rec.seq,
                                   rec.intent);
                if (r == -EINVAL)
                        return bad(why, "record %" PRIu64 ": out of order", rec.seq);
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
                return bad(why, "intent %" PRIu64 " was carried and is missing", b->carried[carried]);
        *ret_size = valid;
        *ret_next = next;
        return 0;
}

int pgd_grants_replay(struct pgd_grants *g, const char *text, size_t len, char **ret_why)
{
        char why[WHY_MAX] = "";
        struct base b = {};
        const char *line;
        size_t pos = 0, line_len, size;
        uint64_t next;
        bool complete;
        int r;

        if (!next_line(text, len, &pos, &line, &line_len, &complete))
                r = bad(why, "empty journal");
        else if (!complete)
                r = bad(why, "incomplete base line");
        else
                r = base_parse(why, line, line_len, &b);
        if (r >= 0)
                r = replay_records(why, g, &b, text, len, pos, &size, &next);
        base_clear(&b);
        if (r < 0)
                return give_why(r, why, ret_why);
        g->journal_size = size;
        g->next_seq = next;
        return 0;
}

/* ---- loading ---- */

/* Read path whole; -ENOENT when it does not exist. why says what failed. */
static int read_path(char *why, const char *path, char **ret, size_t *ret_len)
{
        _cleanup_(closep) int fd = -1;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                snprintf(why, WHY_MAX, "cannot open: %s", strerror(-r));
                return r;
        }
        r = pg_read_all(fd, GRANTS_MAX_FILE_SIZE, ret, ret_len);
        if (r == -EFBIG)
                return bad(why, "file too large");
        if (r < 0)
                snprintf(why, WHY_MAX, "cannot read: %s", strerror(-r));
        return r;
}

static int read_path_at(int dirfd, const char *name, char **ret, size_t *ret_len)
{
        _cleanup_(closep) int fd =
                openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);

        if (fd < 0)
                return -errno;
        return pg_read_all(fd, GRANTS_MAX_FILE_SIZE, ret, ret_len);
}

/*
 * grants.journal.tmp is the journal of a compaction interrupted after the
 * snapshot's rename when its base is the snapshot now in place: put it in
 * place. Anything else there is a compaction that never happened: remove it.
 */
static void journal_tmp_recover(struct pgd_grants *g, int dirfd)
{
        _cleanup_(freep) char *text = NULL;
        char why[WHY_MAX]; /* unused: whatever is wrong with it, it goes */
        struct base b = {};
        const char *line;
        size_t len = 0, pos = 0, line_len;
        bool complete, mine;

        if (read_path_at(dirfd, JOURNAL_TMP_FILE, &text, &len) < 0)
                return;
        mine = next_line(text, len, &pos, &line, &line_len, &complete) && complete &&
               base_parse(why, line, line_len, &b) >= 0 && streq(b.sum, g->snapshot_sum);
        base_clear(&b);
        if (mine)
                (void)pg_durable_rename(dirfd, JOURNAL_TMP_FILE, PGD_GRANTS_JOURNAL);
        else
                (void)unlinkat(dirfd, JOURNAL_TMP_FILE, 0);
}

int pgd_grants_load(const char *state_dir, struct pgd_grants **ret, char **ret_why, char **ret_file)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        char why[WHY_MAX] = "";
        const char *file;
        _cleanup_(freep) char *text = NULL;
        _cleanup_(closep) int dirfd = -1;
        struct base base = {};
        const char *line;
        size_t len = 0, pos = 0, line_len;
        bool complete;
        int r;

        r = store_new(state_dir, &g);
        if (r < 0)
                return r;
        file = g->path;

        r = read_path(why, g->path, &text, &len);
        if (r == -ENOENT)
                r = 0; /* no snapshot: an empty store */
        else if (r >= 0)
                r = snapshot_parse(why, text, len, g);
        if (r < 0)
                goto fail;
        text = pg_free(text);

        /* Leftover temporary files: the renames are the commit points. */
        dirfd = open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd >= 0) {
                (void)unlinkat(dirfd, GRANTS_TMP_FILE, 0);
                journal_tmp_recover(g, dirfd);
        }

        file = g->journal_path;
        r = read_path(why, g->journal_path, &text, &len);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(g);
                return 0;
        }
        if (r >= 0) {
                if (!next_line(text, len, &pos, &line, &line_len, &complete) || !complete)
                        r = 1; /* torn while the journal was created: nothing in it */
                else
                        r = base_parse(why, line, line_len, &base);
        }
        if (r == 0 && !streq(base.sum, g->snapshot_sum))
                r = 1; /* older than the snapshot: all of it is in the snapshot */
        if (r == 0) {
                r = replay_records(why, g, &base, text, len, pos, &g->journal_size, &g->next_seq);
                if (r >= 0)
                        g->journal_exists = true;
        }
        base_clear(&base);
        if (r < 0)
                goto fail;
        /*
         * A journal that is not this snapshot's is kept on disk until the
         * next compaction replaces it; new records must not follow it.
         */
        if (r > 0)
                g->journal_broken = true;
        *ret = TAKE_PTR(g);
        return 0;

fail:
        if (ret_file) {
                *ret_file = strdup(file);
                if (!*ret_file)
                        return -ENOMEM;
        }
        return give_why(r, why, ret_why);
}

int pgd_grants_open(const char *state_dir, struct pgd_grants **ret, char **ret_why)
{
        return pgd_grants_load(state_dir, ret, ret_why, NULL);
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

/* The snapshot's text and its checksum. */
static int snapshot_format(const struct pgd_grants *g, char **ret_text, size_t *ret_len,
                           char sum[static CHECKSUM_MAX])
{
        _cleanup_(json_decrefp) json_t *root = NULL, *grants = NULL, *prepared = NULL;
        char bdf[PG_BDF_MAX];
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

int pgd_grants_format(const struct pgd_grants *g, char **ret_text, size_t *ret_len)
{
        char sum[CHECKSUM_MAX];

        return snapshot_format(g, ret_text, ret_len, sum);
}

static void journal_close(struct pgd_grants *g)
{
        g->journal_fd = safe_close(g->journal_fd);
}

/* The new journal's text: the base line, then each open intent again, with its own number. */
static int journal_fresh_text(const struct pgd_grants *g, const char *base_sum, char **ret,
                              size_t *ret_len)
{
        _cleanup_(freep) char *text = NULL;
        size_t len = 0;
        int r;

        r = base_format(base_sum, g->next_seq - 1, g->intents, g->n_intents, &text, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_intents; i++) {
                const struct pgd_intent *in = &g->intents[i];
                struct pgd_record rec = {
                        .op = in->op, .seq = in->seq, .sbdf = in->sbdf, .grant = in->grant};
                _cleanup_(freep) char *line = NULL;
                size_t n;

                memcpy(rec.driver, in->driver, sizeof(rec.driver));
                r = record_format(&rec, &line, &n);
                if (r < 0)
                        return r;
                char *p = realloc(text, len + n + 1);
                if (!p)
                        return -ENOMEM;
                text = p;
                memcpy(text + len, line, n + 1);
                len += n;
        }
        *ret = TAKE_PTR(text);
        *ret_len = len;
        return 0;
}

int pgd_grants_commit(struct pgd_grants *g)
{
        _cleanup_(freep) char *text = NULL, *journal = NULL;
        _cleanup_(closep) int dirfd = -1;
        char sum[CHECKSUM_MAX];
        size_t len, jlen = 0;
        bool snapshot_changes;
        int r;

        journal_close(g);
        r = snapshot_format(g, &text, &len, sum);
        if (r < 0)
                return r;
        if (g->n_intents > 0) {
                r = journal_fresh_text(g, sum, &journal, &jlen);
                if (r < 0)
                        return r;
        }
        snapshot_changes = !streq(sum, g->snapshot_sum);

        /* Opened first: a missing state directory fails before anything is written. */
        dirfd = open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;

        /*
         * Any failure from here on: the files still load as the store before
         * or as this one, but the journal must not take records before a
         * compaction succeeds.
         */
        g->journal_broken = true;
        if (snapshot_changes) {
                r = pg_durable_write(dirfd, GRANTS_TMP_FILE, text, len, 0600, NULL);
                if (r < 0)
                        return r;
        }
        if (journal) {
                r = pg_durable_write(dirfd, JOURNAL_TMP_FILE, journal, jlen, 0600, NULL);
                if (r < 0) {
                        (void)unlinkat(dirfd, GRANTS_TMP_FILE, 0);
                        return r;
                }
        }
        if (snapshot_changes) {
                r = pg_durable_rename(dirfd, GRANTS_TMP_FILE, PGD_GRANTS_FILE);
                if (r < 0) {
                        /*
                         * Whether the new snapshot is in place is unknown: the
                         * next compaction writes it again whatever it finds.
                         */
                        g->snapshot_sum[0] = '\0';
                        (void)unlinkat(dirfd, JOURNAL_TMP_FILE, 0);
                        return r;
                }
                /* The new snapshot is in place: the old journal no longer applies to it. */
                memcpy(g->snapshot_sum, sum, sizeof(sum));
                g->snapshot_size = len;
        }
        if (journal)
                r = pg_durable_rename(dirfd, JOURNAL_TMP_FILE, PGD_GRANTS_JOURNAL);
        else if (unlinkat(dirfd, PGD_GRANTS_JOURNAL, 0) < 0 && errno != ENOENT)
                r = -errno;
        else if (fsync(dirfd) < 0)
                r = -errno;
        if (r < 0)
                return r;

        /* Numbers go on: an open intent keeps its own, and no number is used twice. */
        g->journal_exists = journal != NULL;
        g->journal_created = false;
        g->journal_size = jlen;
        g->journal_broken = false;
        g->unsynced = 0;
        return 0;
}

/* ---- the journal ---- */

size_t pgd_grants_unsynced(const struct pgd_grants *g)
{
        return g->unsynced;
}

bool pgd_grants_needs_commit(const struct pgd_grants *g)
{
        return g->journal_broken;
}

size_t pgd_grants_journal_size(const struct pgd_grants *g)
{
        return g->journal_size;
}

/* Open the journal for a batch of records; create it, with its base line, when missing. */
static int journal_open(struct pgd_grants *g)
{
        _cleanup_(closep) int fd = -1;
        struct statvfs vfs;
        int r;

        if (g->journal_fd >= 0)
                return 0;
        fd = open(g->journal_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (fstatvfs(fd, &vfs) < 0)
                return -errno;
        if ((uint64_t)vfs.f_bavail * vfs.f_frsize < JOURNAL_RESERVE)
                return -ENOSPC;
        if (!g->journal_exists) {
                _cleanup_(freep) char *base = NULL;
                size_t len = 0;

                /* Open intents live in a journal only a compaction writes. */
                if (g->n_intents > 0)
                        return -EIO;

                /* Whatever a torn creation left there is no record: start over. */
                if (ftruncate(fd, 0) < 0)
                        return -errno;
                r = base_format(g->snapshot_sum, g->next_seq - 1, NULL, 0, &base, &len);
                if (r >= 0)
                        r = pg_write_all(fd, base, len);
                if (r < 0) {
                        if (ftruncate(fd, 0) < 0)
                                g->journal_broken = true;
                        return r;
                }
                g->journal_exists = true;
                g->journal_created = true;
                g->journal_size = len;
        }
        g->journal_fd = TAKE_FD(fd);
        return 0;
}

int pgd_grants_record(struct pgd_grants *g, struct pgd_record *r)
{
        _cleanup_(freep) char *line = NULL;
        size_t len;
        int k;

        if (g->journal_broken)
                return -EIO;
        r->seq = g->next_seq;
        if ((r->op == PGD_RECORD_ABORT || r->intent) && intent_index(g, r->intent) < 0)
                return -ENOENT;
        k = record_format(r, &line, &len);
        if (k < 0)
                return k;
        k = journal_open(g);
        if (k < 0) {
                journal_close(g);
                return k;
        }
        k = pg_write_all(g->journal_fd, line, len);
        if (k < 0) {
                /* Cut a partial record off; if even that fails, compact first. */
                if (ftruncate(g->journal_fd, (off_t)g->journal_size) < 0)
                        g->journal_broken = true;
                journal_close(g);
                return k;
        }
        k = apply_record(g, r);
        if (k < 0) {
                /* The file has a record that memory lacks: only a compaction agrees again. */
                g->journal_broken = true;
                return k;
        }
        g->journal_size += len;
        g->next_seq++;
        g->unsynced++;
        return 0;
}

int pgd_grants_sync(struct pgd_grants *g)
{
        int r = 0;

        if (g->journal_broken)
                return -EIO;
        if (g->unsynced == 0)
                return 0;
        if (g->journal_size > JOURNAL_COMPACT_SIZE && g->journal_size > 2 * g->snapshot_size)
                return pgd_grants_commit(g);
        if (fdatasync(g->journal_fd) < 0)
                r = -errno;
        if (r >= 0 && g->journal_created) {
                _cleanup_(closep) int dirfd =
                        open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0 || fsync(dirfd) < 0)
                        r = -errno;
                else
                        g->journal_created = false;
        }
        if (r < 0) {
                journal_close(g);
                /* What reached the disk is unknown (and a second fsync might not say). */
                g->journal_broken = true;
                return r;
        }
        g->unsynced = 0;
        return 0;
}

void pgd_grants_journal_idle(struct pgd_grants *g)
{
        if (g->unsynced == 0)
                journal_close(g);
}
