/* SPDX-License-Identifier: MIT */
/*
 * The grant store in memory (grants.h, store-internal.h): the grants and the
 * prepared devices, sorted by device; the open intents, by number; and a
 * journal record applied to them, as appending and replaying both do.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "store-internal.h"

int pgd_grants_bad(char why[static WHY_MAX], const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, WHY_MAX, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

int pgd_grants_give_why(int r, const char *why, char **ret_why)
{
        if (!ret_why)
                return r;
        *ret_why = strdup(why);
        return *ret_why ? r : -ENOMEM;
}

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
#define taint_lower_bound(v, n, key)                                                               \
        lower_bound((v), (n), sizeof(struct pgd_taint), offsetof(struct pgd_taint, sbdf), (key))

int pgd_grants_grow(void **v, size_t *cap, size_t need, size_t size)
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

int pgd_grants_insert(struct pgd_grant **v, size_t *n, size_t *cap, const struct pgd_grant *gr)
{
        size_t i = grant_lower_bound(*v, *n, gr->sbdf);
        int r;

        if (i < *n && (*v)[i].sbdf == gr->sbdf)
                return -EEXIST;
        r = pgd_grants_grow((void **)v, cap, *n + 1, sizeof(**v));
        if (r < 0)
                return r;
        memmove(*v + i + 1, *v + i, (*n - i) * sizeof(**v));
        (*v)[i] = *gr;
        (*n)++;
        return 0;
}

int pgd_grants_insert_prepared(struct prepared **v, size_t *n, size_t *cap, uint32_t sbdf,
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
        r = pgd_grants_grow((void **)v, cap, *n + 1, sizeof(**v));
        if (r < 0)
                return r;
        memmove(*v + i + 1, *v + i, (*n - i) * sizeof(**v));
        (*v)[i] = (struct prepared){.sbdf = sbdf};
        snprintf((*v)[i].driver, sizeof((*v)[i].driver), "%s", driver);
        (*n)++;
        return 0;
}

int pgd_grants_insert_taint(struct pgd_taint **v, size_t *n, size_t *cap,
                            const struct pgd_taint *t, bool replace)
{
        size_t i = taint_lower_bound(*v, *n, t->sbdf);
        int r;

        if (i < *n && (*v)[i].sbdf == t->sbdf) {
                if (!replace)
                        return -EEXIST;
                (*v)[i] = *t;
                return 0;
        }
        r = pgd_grants_grow((void **)v, cap, *n + 1, sizeof(**v));
        if (r < 0)
                return r;
        memmove(*v + i + 1, *v + i, (*n - i) * sizeof(**v));
        (*v)[i] = *t;
        (*n)++;
        return 0;
}

int pgd_grants_store_new(const char *state_dir, struct pgd_grants **ret)
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
        free(g->batch);
        free(g->state_dir);
        free(g->path);
        free(g->journal_path);
        free(g->grants);
        free(g->prepared);
        free(g->intents);
        free(g->taints);
        free(g);
        return NULL;
}

int pgd_grants_new_empty(const char *state_dir, struct pgd_grants **ret)
{
        return pgd_grants_store_new(state_dir, ret);
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
        return pgd_grants_insert(&g->grants, &g->n_grants, &g->cap_grants, grant);
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
        return pgd_grants_insert_prepared(&g->prepared, &g->n_prepared, &g->cap_prepared, sbdf,
                                          driver ? driver : "", true);
}

const char *pgd_grants_prepared_driver(const struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = prepared_lower_bound(g->prepared, g->n_prepared, sbdf);

        return i < g->n_prepared && g->prepared[i].sbdf == sbdf ? g->prepared[i].driver : NULL;
}

int pgd_grants_set_prepared_identity(struct pgd_grants *g, uint32_t sbdf,
                                     const struct pgd_identity *id)
{
        size_t i = prepared_lower_bound(g->prepared, g->n_prepared, sbdf);

        if (i >= g->n_prepared || g->prepared[i].sbdf != sbdf)
                return -ENOENT;
        g->prepared[i].identity = id ? *id : (struct pgd_identity){};
        return 0;
}

const struct pgd_identity *pgd_grants_prepared_identity(const struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = prepared_lower_bound(g->prepared, g->n_prepared, sbdf);

        if (i >= g->n_prepared || g->prepared[i].sbdf != sbdf || !g->prepared[i].identity.known)
                return NULL;
        return &g->prepared[i].identity;
}

size_t pgd_grants_n_prepared(const struct pgd_grants *g)
{
        return g->n_prepared;
}

int pgd_grants_prepared(const struct pgd_grants *g, size_t i, uint32_t *ret_sbdf,
                        const struct pgd_identity **ret_identity)
{
        if (i >= g->n_prepared)
                return -ENOENT;
        *ret_sbdf = g->prepared[i].sbdf;
        *ret_identity = g->prepared[i].identity.known ? &g->prepared[i].identity : NULL;
        return 0;
}

/* ---- tainted devices ---- */

int pgd_grants_set_taint(struct pgd_grants *g, const struct pgd_taint *t)
{
        return pgd_grants_insert_taint(&g->taints, &g->n_taints, &g->cap_taints, t, true);
}

const struct pgd_taint *pgd_grants_find_taint(const struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = taint_lower_bound(g->taints, g->n_taints, sbdf);

        return i < g->n_taints && g->taints[i].sbdf == sbdf ? &g->taints[i] : NULL;
}

int pgd_grants_clear_taint(struct pgd_grants *g, uint32_t sbdf)
{
        size_t i = taint_lower_bound(g->taints, g->n_taints, sbdf);

        if (i >= g->n_taints || g->taints[i].sbdf != sbdf)
                return -ENOENT;
        memmove(g->taints + i, g->taints + i + 1, (g->n_taints - i - 1) * sizeof(*g->taints));
        g->n_taints--;
        return 0;
}

size_t pgd_grants_n_taints(const struct pgd_grants *g)
{
        return g->n_taints;
}

const struct pgd_taint *pgd_grants_taint(const struct pgd_grants *g, size_t i)
{
        return i < g->n_taints ? &g->taints[i] : NULL;
}

json_t *pgd_grants_identity_json(const struct pgd_identity *id)
{
        return pgd_grants_identity_to_json(id);
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
        k = pgd_grants_grow((void **)&g->intents, &g->cap_intents, g->n_intents + 1, sizeof(*g->intents));
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
        k = pgd_grants_grow((void **)&g->intents, &g->cap_intents, g->n_intents + 1, sizeof(*g->intents));
        if (k < 0)
                return k;
        struct pgd_intent *in = &g->intents[g->n_intents++];
        *in = (struct pgd_intent){
                .seq = r->seq,
                .op = r->op,
                .sbdf = r->sbdf,
                .grant = r->grant,
                .identity = r->identity,
                .n_grants = r->n_grants,
        };
        memcpy(in->driver, r->driver, sizeof(r->driver));
        memcpy(in->grants, r->grants, r->n_grants * sizeof(*r->grants));
        return 0;
}

const struct pgd_grant *pgd_intent_assigns(const struct pgd_intent *in, uint32_t sbdf)
{
        if (in->op == PGD_RECORD_INTENT_ASSIGN)
                return in->sbdf == sbdf ? &in->grant : NULL;
        if (in->op == PGD_RECORD_INTENT_ASSIGN_GROUP)
                for (size_t i = 0; i < in->n_grants; i++)
                        if (in->grants[i].sbdf == sbdf)
                                return &in->grants[i];
        return NULL;
}

/*
 * A record's effect on memory: the same for a change made now and for one
 * replayed at start-up. -ENOENT when it resolves an intent that is not open.
 */
int pgd_grants_apply(struct pgd_grants *g, const struct pgd_record *r)
{
        int k;

        switch (r->op) {
        case PGD_RECORD_INTENT_ASSIGN:
        case PGD_RECORD_INTENT_PREPARE:
        case PGD_RECORD_INTENT_ASSIGN_GROUP:
                return intent_open(g, r);
        case PGD_RECORD_GRANT_GROUP:
                if (intent_index(g, r->intent) < 0)
                        return -ENOENT;
                for (size_t i = 0; i < r->n_grants; i++) {
                        (void)pgd_grants_remove(g, r->grants[i].sbdf);
                        k = pgd_grants_add(g, &r->grants[i]);
                        if (k < 0)
                                return k;
                }
                return pgd_grants_drop_intent(g, r->intent);
        case PGD_RECORD_TAINT:
                return pgd_grants_set_taint(g, &r->taint);
        case PGD_RECORD_UNTAINT:
                (void)pgd_grants_clear_taint(g, r->sbdf);
                return 0;
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
                (void)pgd_grants_set_prepared_identity(g, r->sbdf, &r->identity);
                if (r->intent)
                        (void)pgd_grants_drop_intent(g, r->intent);
                return 0;
        case PGD_RECORD_UNPREPARED:
                (void)pgd_grants_clear_prepared(g, r->sbdf);
                return 0;
        }
        return -EINVAL;
}
