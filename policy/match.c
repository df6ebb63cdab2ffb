/* SPDX-License-Identifier: MIT */
/*
 * Evaluating a loaded policy: deterministic, no I/O, no allocation on the
 * plain path.
 *
 * The first matching rule decides. So that a decision does not walk thousands
 * of rules, the rules are indexed by what narrows them most: an exact bdf, a
 * vendor id, or a class base. A decision looks up its device's three keys,
 * adds the short list of rules no key narrows, and tests the candidates in
 * rule order by merging the four ascending lists. The first candidate that
 * matches is the first rule that matches, because a rule outside the
 * candidates cannot match this device.
 *
 * A device fact the host could not read (-1) never satisfies an allow rule
 * and always satisfies a deny rule or a protected entry: an unknown fails
 * closed. Such a decision walks every rule in order.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg-util.h"
#include "pg-wire.h"
#include "policy-internal.h"

/* ---- glob ---- */

bool pg_policy_glob_match(const char *pattern, const char *s)
{
        const char *star = NULL, *resume = NULL;

        while (*s) {
                if (*pattern == '*') {
                        star = pattern++;
                        resume = s;
                } else if (*pattern == '?' || *pattern == *s) {
                        pattern++;
                        s++;
                } else if (star) {
                        pattern = star + 1;
                        s = ++resume;
                } else
                        return false;
        }
        while (*pattern == '*')
                pattern++;
        return *pattern == '\0';
}

/* ---- reasons ---- */

/* Write into a fixed buffer; NULL buffers are a no-op (the fast path). */
_printf_(3, 4) static void why(char *buf, size_t size, const char *fmt, ...)
{
        va_list ap;

        if (!buf)
                return;
        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

/* ---- clients ---- */

static bool has_gid(const struct pg_policy_identity *id, gid_t gid)
{
        if (id->gid == gid)
                return true;
        for (size_t i = 0; i < id->n_groups; i++)
                if (id->groups && id->groups[i] == gid)
                        return true;
        return false;
}

static bool client_matches(const struct client *c, const struct pg_policy_identity *id)
{
        if (c->has_uid && id->uid != c->uid)
                return false;
        if (c->has_gid && !has_gid(id, c->gid))
                return false;
        if (c->has_group && !has_gid(id, c->group_gid))
                return false;
        if (c->unit && !streq_ptr(id->unit, c->unit))
                return false;
        return true;
}

size_t pg_policy_clients(const struct pg_policy *p, const struct pg_policy_identity *id,
                         const char **ret, size_t max)
{
        size_t n = 0;

        if (!p || !id)
                return 0;
        for (size_t i = 0; i < p->n_clients; i++) {
                if (!client_matches(&p->clients[i], id))
                        continue;
                if (ret && n < max)
                        ret[n] = p->clients[i].name;
                n++;
        }
        return ret && max > 0 && n > max ? max : n;
}

bool pg_policy_is_client(const struct pg_policy *p, const struct pg_policy_identity *id)
{
        return pg_policy_clients(p, id, NULL, 0) > 0;
}

bool pg_policy_is_admin(const struct pg_policy *p, const struct pg_policy_identity *id)
{
        if (!p || !id)
                return false;
        for (size_t i = 0; i < p->n_admins; i++)
                if (client_matches(&p->clients[p->admins[i]], id))
                        return true;
        return false;
}

bool pg_policy_is_watcher(const struct pg_policy *p, const struct pg_policy_identity *id)
{
        if (!p || !id)
                return false;
        for (size_t i = 0; i < p->n_watchers; i++)
                if (client_matches(&p->clients[p->watchers[i]], id))
                        return true;
        return pg_policy_is_admin(p, id);
}

static bool rule_client_matches(const struct pg_policy *p, const struct rule *r,
                                const struct pg_policy_identity *id, char *buf, size_t size)
{
        if (r->any_client) {
                if (pg_policy_is_client(p, id))
                        return true;
                why(buf, size, "client: not a client the policy knows");
                return false;
        }
        for (size_t i = 0; i < r->n_clients; i++)
                if (client_matches(&p->clients[r->clients[i]], id))
                        return true;
        if (buf) {
                size_t n = (size_t)snprintf(buf, size, "client: not in [");
                for (size_t i = 0; i < r->n_clients && n < size; i++)
                        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "",
                                              p->clients[r->clients[i]].name);
                if (n < size)
                        snprintf(buf + n, size - n, "]");
        }
        return false;
}

/* ---- devices ---- */

static bool bdf_field_matches(int want, unsigned have)
{
        return want == BDF_ANY || (unsigned)want == have;
}

static bool id_matches(const char *key, int32_t want, int32_t have, bool unknown_matches, char *buf,
                       size_t size)
{
        if (have < 0) {
                if (!unknown_matches)
                        why(buf, size, "%s unknown", key);
                return unknown_matches;
        }
        if (have == want)
                return true;
        why(buf, size, "%s 0x%04x != 0x%04x", key, (unsigned)have, (unsigned)want);
        return false;
}

static bool dev_matches(const struct dev_matcher *m, const struct pg_policy_device *dev,
                        bool unknown_matches, char *buf, size_t size)
{
        if (m->keys & DEV_BDF) {
                uint32_t x = dev->sbdf;
                if (PG_SBDF_SEG(x) != m->seg || !bdf_field_matches(m->bus, PG_SBDF_BUS(x)) ||
                    !bdf_field_matches(m->slot, PG_SBDF_DEV(x)) ||
                    !bdf_field_matches(m->fn, PG_SBDF_FN(x))) {
                        if (buf) {
                                char b[PG_BDF_MAX];
                                /* m->text starts with "bdf PATTERN" when a bdf is given */
                                const char *pat = m->text ? m->text + 4 : "?";
                                size_t plen = strcspn(pat, ",");
                                why(buf, size, "bdf %s does not match %.*s", pg_bdf_format(x, b),
                                    (int)plen, pat);
                        }
                        return false;
                }
        }
        if ((m->keys & DEV_VENDOR) &&
            !id_matches("vendor", m->vendor, dev->vendor, unknown_matches, buf, size))
                return false;
        if ((m->keys & DEV_DEVICE) &&
            !id_matches("device", m->device, dev->device, unknown_matches, buf, size))
                return false;
        if ((m->keys & DEV_SUBSYS_VENDOR) &&
            !id_matches("subsystem_vendor", m->subsystem_vendor, dev->subsystem_vendor,
                        unknown_matches, buf, size))
                return false;
        if ((m->keys & DEV_SUBSYS_DEVICE) &&
            !id_matches("subsystem_device", m->subsystem_device, dev->subsystem_device,
                        unknown_matches, buf, size))
                return false;
        if (m->keys & DEV_SERIAL) {
                /* "" is a device without a serial number: known, and matched by no glob. */
                if (!dev->serial) {
                        if (!unknown_matches)
                                why(buf, size, "serial unknown");
                        if (!unknown_matches)
                                return false;
                } else if (!dev->serial[0] || !pg_policy_glob_match(m->serial, dev->serial)) {
                        why(buf, size, "serial %s does not match %s",
                            dev->serial[0] ? dev->serial : "(none)", m->serial);
                        return false;
                }
        }
        if (m->keys & DEV_PATH) {
                if (!dev->path) {
                        if (!unknown_matches)
                                why(buf, size, "path unknown");
                        if (!unknown_matches)
                                return false;
                } else if (!pg_policy_glob_match(m->path, dev->path)) {
                        why(buf, size, "path %s does not match %s", dev->path, m->path);
                        return false;
                }
        }
        if (m->keys & DEV_CLASS) {
                if (dev->class < 0) {
                        if (!unknown_matches)
                                why(buf, size, "class unknown");
                        return unknown_matches;
                }
                unsigned shift = 4u * (unsigned)(6 - m->class_digits);
                if (((uint32_t)dev->class & 0xffffff) >> shift != m->class_value) {
                        why(buf, size, "class 0x%06x is not 0x%0*x", (unsigned)dev->class,
                            m->class_digits, m->class_value);
                        return false;
                }
        }
        return true;
}

bool pg_policy_is_protected(const struct pg_policy *p, const struct pg_policy_device *dev,
                            const char **ret_why)
{
        if (!p || !dev)
                return false;
        for (size_t i = 0; i < p->n_protected; i++)
                if (dev_matches(&p->protected[i], dev, true, NULL, 0)) {
                        if (ret_why)
                                *ret_why = p->protected[i].text;
                        return true;
                }
        return false;
}

/* ---- domains ---- */

static bool dom_matches(const struct dom_matcher *m, const struct pg_policy_domain *dom,
                        bool unknown_matches, char *buf, size_t size)
{
        if (m->keys & DOM_DOMID && dom->domid != m->domid) {
                why(buf, size, "domid %u != %u", dom->domid, m->domid);
                return false;
        }
        if (m->keys & DOM_NAME) {
                if (!dom->name) {
                        if (!unknown_matches)
                                why(buf, size, "name unknown");
                        if (!unknown_matches)
                                return false;
                } else if (!pg_policy_glob_match(m->name, dom->name)) {
                        why(buf, size, "name '%s' does not match '%s'", dom->name, m->name);
                        return false;
                }
        }
        if (m->keys & DOM_UUID) {
                if (!dom->uuid) {
                        if (!unknown_matches)
                                why(buf, size, "uuid unknown");
                        if (!unknown_matches)
                                return false;
                } else if (strcasecmp(dom->uuid, m->uuid) != 0) {
                        why(buf, size, "uuid %s != %s", dom->uuid, m->uuid);
                        return false;
                }
        }
        if (m->keys & DOM_TYPE) {
                if (!dom->type) {
                        if (!unknown_matches)
                                why(buf, size, "type unknown");
                        if (!unknown_matches)
                                return false;
                } else if (!streq(dom->type, m->type)) {
                        why(buf, size, "type %s != %s", dom->type, m->type);
                        return false;
                }
        }
        return true;
}

/* ---- rules ---- */

/*
 * "device: vendor 0x8086 != 0x10de" for one matcher; with several, each
 * matcher's reason joined by "; ".
 */
static bool rule_devices_match(const struct rule *r, const struct pg_policy_device *dev, char *buf,
                               size_t size)
{
        size_t n = 0;

        if (r->n_devices == 0)
                return true;
        if (buf)
                n = (size_t)snprintf(buf, size, "device: ");
        for (size_t i = 0; i < r->n_devices; i++) {
                char *b = buf && n < size ? buf + n : NULL;
                if (dev_matches(&r->devices[i], dev, !r->allow, b, b ? size - n : 0))
                        return true;
                if (b) {
                        n += strlen(b);
                        if (i + 1 < r->n_devices && n < size)
                                n += (size_t)snprintf(buf + n, size - n, "; ");
                }
        }
        return false;
}

static bool rule_domains_match(const struct rule *r, const struct pg_policy_domain *dom, char *buf,
                               size_t size)
{
        size_t n = 0;

        if (r->n_domains == 0)
                return true;
        if (buf)
                n = (size_t)snprintf(buf, size, "domain: ");
        for (size_t i = 0; i < r->n_domains; i++) {
                char *b = buf && n < size ? buf + n : NULL;
                if (dom_matches(&r->domains[i], dom, !r->allow, b, b ? size - n : 0))
                        return true;
                if (b) {
                        n += strlen(b);
                        if (i + 1 < r->n_domains && n < size)
                                n += (size_t)snprintf(buf + n, size - n, "; ");
                }
        }
        return false;
}

static bool rule_matches(const struct pg_policy *p, const struct rule *r,
                         const struct pg_policy_identity *id, const struct pg_policy_device *dev,
                         const struct pg_policy_domain *dom, char *buf, size_t size)
{
        return rule_client_matches(p, r, id, buf, size) && rule_devices_match(r, dev, buf, size) &&
               rule_domains_match(r, dom, buf, size);
}

/* ---- the index ---- */

static int entry_compare(const void *a, const void *b)
{
        const struct index_entry *x = a, *y = b;

        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return (x->rule > y->rule) - (x->rule < y->rule);
}

void pg_policy_index_free(struct rule_index *idx)
{
        free(idx->by_bdf);
        free(idx->by_vendor);
        free(idx->by_class);
        free(idx->wildcard);
        *idx = (struct rule_index){};
}

int pg_policy_index_build(struct pg_policy *p)
{
        struct rule_index idx = {};
        size_t n_matchers = 0;

        for (size_t i = 0; i < p->n_rules; i++)
                n_matchers += p->rules[i].n_devices;
        size_t cap = n_matchers + 1;
        idx.by_bdf = calloc(cap, sizeof(*idx.by_bdf));
        idx.by_vendor = calloc(cap, sizeof(*idx.by_vendor));
        idx.by_class = calloc(cap, sizeof(*idx.by_class));
        idx.wildcard = calloc(p->n_rules + 1, sizeof(*idx.wildcard));
        if (!idx.by_bdf || !idx.by_vendor || !idx.by_class || !idx.wildcard) {
                pg_policy_index_free(&idx);
                return -ENOMEM;
        }

        for (size_t i = 0; i < p->n_rules; i++) {
                const struct rule *r = &p->rules[i];
                bool wild = r->n_devices == 0;
                for (size_t j = 0; j < r->n_devices && !wild; j++) {
                        const struct dev_matcher *m = &r->devices[j];
                        struct index_entry e = {.rule = (uint32_t)i};
                        if ((m->keys & DEV_BDF) && m->bus != BDF_ANY && m->slot != BDF_ANY &&
                            m->fn != BDF_ANY) {
                                e.key = PG_SBDF(m->seg, m->bus, m->slot, m->fn);
                                idx.by_bdf[idx.n_by_bdf++] = e;
                        } else if (m->keys & DEV_VENDOR) {
                                e.key = (uint32_t)m->vendor;
                                idx.by_vendor[idx.n_by_vendor++] = e;
                        } else if (m->keys & DEV_CLASS) {
                                e.key = m->class_value >> (4 * (m->class_digits - 2));
                                idx.by_class[idx.n_by_class++] = e;
                        } else
                                wild = true;
                }
                if (wild)
                        idx.wildcard[idx.n_wildcard++] = (uint32_t)i;
        }
        qsort(idx.by_bdf, idx.n_by_bdf, sizeof(*idx.by_bdf), entry_compare);
        qsort(idx.by_vendor, idx.n_by_vendor, sizeof(*idx.by_vendor), entry_compare);
        qsort(idx.by_class, idx.n_by_class, sizeof(*idx.by_class), entry_compare);
        pg_policy_index_free(&p->index);
        p->index = idx;
        return 0;
}

/* The rules filed under key, as [*ret_begin, end). */
static size_t index_lookup(const struct index_entry *v, size_t n, uint32_t key, size_t *ret_begin)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v[mid].key < key)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_begin = lo;
        while (hi < n && v[hi].key == key)
                hi++;
        return hi;
}

struct cursor {
        const struct index_entry *entries; /* or NULL: plain indices */
        const uint32_t *plain;
        size_t at, end;
};

static bool cursor_peek(const struct cursor *c, uint32_t *ret)
{
        if (c->at >= c->end)
                return false;
        *ret = c->entries ? c->entries[c->at].rule : c->plain[c->at];
        return true;
}

/* The first rule that matches, by the index; n_rules when none does. */
static size_t first_match_indexed(const struct pg_policy *p, const struct pg_policy_identity *id,
                                  const struct pg_policy_device *dev,
                                  const struct pg_policy_domain *dom)
{
        const struct rule_index *idx = &p->index;
        struct cursor c[4] = {};
        size_t begin;

        c[0] = (struct cursor){.entries = idx->by_bdf};
        c[0].end = index_lookup(idx->by_bdf, idx->n_by_bdf, dev->sbdf, &begin);
        c[0].at = begin;
        c[1] = (struct cursor){.entries = idx->by_vendor};
        c[1].end = index_lookup(idx->by_vendor, idx->n_by_vendor, (uint32_t)dev->vendor, &begin);
        c[1].at = begin;
        c[2] = (struct cursor){.entries = idx->by_class};
        c[2].end = index_lookup(idx->by_class, idx->n_by_class, ((uint32_t)dev->class >> 16) & 0xff,
                                &begin);
        c[2].at = begin;
        c[3] = (struct cursor){.plain = idx->wildcard, .end = idx->n_wildcard};

        for (;;) {
                uint32_t best = UINT32_MAX, v;
                for (size_t k = 0; k < ELEMENTSOF(c); k++)
                        if (cursor_peek(&c[k], &v) && v < best)
                                best = v;
                if (best == UINT32_MAX)
                        return p->n_rules;
                /* A rule may sit in several lists: advance past it everywhere. */
                for (size_t k = 0; k < ELEMENTSOF(c); k++)
                        while (cursor_peek(&c[k], &v) && v == best)
                                c[k].at++;
                if (rule_matches(p, &p->rules[best], id, dev, dom, NULL, 0))
                        return best;
        }
}

/* ---- decisions ---- */

void pg_policy_decision_clear(struct pg_policy_decision *d)
{
        if (!d)
                return;
        free(d->misses);
        *d = (struct pg_policy_decision){};
}

/*
 * Why the rules before the deciding one missed, from the first rule on, at
 * most max of them (SIZE_MAX: all). Returns the index of the first rule that
 * matches (n_rules when none does, or when max stopped the walk first).
 */
static int walk_misses(const struct pg_policy *p, const struct pg_policy_identity *id,
                       const struct pg_policy_device *dev, const struct pg_policy_domain *dom,
                       size_t max, struct pg_policy_miss **ret, size_t *ret_n, size_t *ret_match)
{
        _cleanup_(freep) struct pg_policy_miss *misses = NULL;
        size_t n_misses = 0, match, cap = max < p->n_rules ? max : p->n_rules;

        misses = calloc(cap + 1, sizeof(*misses));
        if (!misses)
                return -ENOMEM;
        for (match = 0; match < p->n_rules; match++) {
                const struct rule *r = &p->rules[match];
                struct pg_policy_miss *m = &misses[n_misses];
                if (n_misses >= cap) {
                        match = p->n_rules;
                        break;
                }
                if (rule_matches(p, r, id, dev, dom, m->reason, sizeof(m->reason)))
                        break;
                m->rule = r->name;
                n_misses++;
        }
        *ret = n_misses > 0 ? TAKE_PTR(misses) : NULL;
        *ret_n = n_misses;
        *ret_match = match;
        return 0;
}

int pg_policy_misses(const struct pg_policy *p, const struct pg_policy_identity *id,
                     const struct pg_policy_device *dev, const struct pg_policy_domain *dom,
                     size_t max, struct pg_policy_miss **ret, size_t *ret_n)
{
        size_t match;

        if (!p || !id || !dev || !dom || !ret || !ret_n)
                return -EINVAL;
        return walk_misses(p, id, dev, dom, max, ret, ret_n, &match);
}

int pg_policy_evaluate(const struct pg_policy *p, const struct pg_policy_identity *id,
                       const struct pg_policy_device *dev, const struct pg_policy_domain *dom,
                       bool explain, struct pg_policy_decision *ret)
{
        _cleanup_(freep) struct pg_policy_miss *misses = NULL;
        size_t n_misses = 0, match = 0;
        int r;

        if (!p || !id || !dev || !dom || !ret)
                return -EINVAL;

        if (explain) {
                r = walk_misses(p, id, dev, dom, SIZE_MAX, &misses, &n_misses, &match);
                if (r < 0)
                        return r;
        } else if (dev->vendor < 0 || dev->class < 0) {
                /* An unknown fact may satisfy deny rules filed under any key. */
                for (match = 0; match < p->n_rules; match++)
                        if (rule_matches(p, &p->rules[match], id, dev, dom, NULL, 0))
                                break;
        } else
                match = first_match_indexed(p, id, dev, dom);

        struct pg_policy_decision d = {
                .allow = false,
                .rule = "default",
                .rdm_policy = PG_POLICY_RDM_STRICT,
                .reset = PG_POLICY_RESET_REQUIRED,
        };
        if (match < p->n_rules) {
                const struct rule *rl = &p->rules[match];
                d.allow = rl->allow;
                d.rule = rl->name;
                d.rdm_policy = rl->rdm;
                d.reset = rl->reset;
                d.max_devices_per_domain = rl->max_devices_per_domain;
                d.managed = rl->managed;
        }
        if (explain && n_misses > 0) {
                d.misses = TAKE_PTR(misses);
                d.n_misses = n_misses;
        }
        *ret = d;
        return 0;
}

bool pg_policy_may_prepare(const struct pg_policy *p, const struct pg_policy_identity *id,
                           const struct pg_policy_device *dev)
{
        if (!p || !id || !dev)
                return false;
        /*
         * The first rule that matches the client and the device decides, as
         * for assign: a deny rule before a managed allow rule keeps the
         * device from this client, whatever domains either rule names (an
         * unprepared device is not yet meant for any one domain).
         */
        for (size_t i = 0; i < p->n_rules; i++) {
                const struct rule *r = &p->rules[i];
                if (rule_client_matches(p, r, id, NULL, 0) && rule_devices_match(r, dev, NULL, 0))
                        return r->allow && r->managed;
        }
        return false;
}
