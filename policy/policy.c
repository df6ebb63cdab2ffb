/* SPDX-License-Identifier: MIT */
/*
 * Loading a policy: libconfig text in, an immutable validated struct
 * pg_policy out. Every problem is collected as "file:line: message"; the
 * policy is returned only when there is none.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "pg-util.h"
#include "pg-wire.h"
#include "policy-internal.h"

/* A policy file larger than this is refused before parsing. */
#define POLICY_MAX_SIZE (16u * 1024 * 1024)
/* After this many problems, one more says so and the rest are dropped. */
#define MAX_DIAGS 1000


struct loader {
        const char *file;
        struct pg_policy_diags *diags;
        size_t first_diag; /* the diags this load added start here */
        size_t n_errors;
        bool oom;
        struct pg_policy *p;
};

/* ---- diagnostics ---- */

void pg_policy_diags_clear(struct pg_policy_diags *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                free(d->v[i].file);
                free(d->v[i].message);
        }
        free(d->v);
        d->v = NULL;
        d->n = 0;
}

void pg_policy_diags_print(const struct pg_policy_diags *d, void *file)
{
        FILE *f = file;

        if (!d || !f)
                return;
        for (size_t i = 0; i < d->n; i++) {
                const struct pg_policy_diag *g = &d->v[i];
                if (g->line > 0)
                        fprintf(f, "%s:%d: %s\n", g->file, g->line, g->message);
                else
                        fprintf(f, "%s: %s\n", g->file, g->message);
        }
}

static int diag_append(struct pg_policy_diags *d, const char *file, int line, char *message)
{
        _cleanup_(freep) char *m = message;
        _cleanup_(freep) char *f = strdup(file);
        if (!f)
                return -ENOMEM;
        struct pg_policy_diag *v = realloc(d->v, (d->n + 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        d->v = v;
        d->v[d->n++] = (struct pg_policy_diag){
                .file = TAKE_PTR(f),
                .line = line,
                .message = TAKE_PTR(m),
        };
        return 0;
}

_printf_(3, 4) static void diag(struct loader *l, int line, const char *fmt, ...)
{
        char *m = NULL;
        va_list ap;

        l->n_errors++;
        if (l->n_errors > MAX_DIAGS + 1)
                return;
        if (l->n_errors == MAX_DIAGS + 1) {
                line = 0;
                fmt = "too many problems; the rest are not shown";
        }
        va_start(ap, fmt);
        int r = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (r < 0) {
                l->oom = true;
                return;
        }
        if (diag_append(l->diags, l->file, line < 0 ? 0 : line, m) < 0)
                l->oom = true;
}

/* Stable sort of this load's diags by line (insertion sort keeps ties in order). */
static void diags_sort(struct loader *l)
{
        struct pg_policy_diag *v = l->diags->v + l->first_diag;
        size_t n = l->diags->n - l->first_diag;

        for (size_t i = 1; i < n; i++) {
                struct pg_policy_diag t = v[i];
                size_t j = i;
                while (j > 0 && v[j - 1].line > t.line) {
                        v[j] = v[j - 1];
                        j--;
                }
                v[j] = t;
        }
}

/* ---- freeing ---- */

static void dev_matcher_done(struct dev_matcher *m)
{
        free(m->text);
}

static void dom_matcher_done(struct dom_matcher *m)
{
        free(m->name);
        free(m->uuid);
        free(m->type);
}

static void rule_done(struct rule *r)
{
        free(r->name);
        free(r->clients);
        for (size_t i = 0; i < r->n_devices; i++)
                dev_matcher_done(&r->devices[i]);
        free(r->devices);
        for (size_t i = 0; i < r->n_domains; i++)
                dom_matcher_done(&r->domains[i]);
        free(r->domains);
}

struct pg_policy *pg_policy_free(struct pg_policy *p)
{
        if (!p)
                return NULL;
        free(p->path);
        for (size_t i = 0; i < p->n_clients; i++) {
                free(p->clients[i].name);
                free(p->clients[i].group);
                free(p->clients[i].unit);
        }
        free(p->clients);
        free(p->admins);
        for (size_t i = 0; i < p->n_protected; i++)
                dev_matcher_done(&p->protected[i]);
        free(p->protected);
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        pg_policy_index_free(&p->index);
        free(p->clients_by_name);
        free(p->rules_by_name);
        free(p);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg_policy *, pg_policy_free);

/* ---- accessors ---- */

static ssize_t rule_find(const struct pg_policy *p, const char *name);

const char *pg_policy_path(const struct pg_policy *p)
{
        return p ? p->path : NULL;
}

size_t pg_policy_n_rules(const struct pg_policy *p)
{
        return p ? p->n_rules : 0;
}

const char *pg_policy_rule_name(const struct pg_policy *p, size_t i)
{
        if (!p || i >= p->n_rules)
                return NULL;
        return p->rules[i].name;
}

int pg_policy_rule_reset(const struct pg_policy *p, const char *name, enum pg_policy_reset *ret)
{
        ssize_t i;

        if (!p || !name)
                return -EINVAL;
        i = rule_find(p, name);
        if (i < 0)
                return -ENOENT;
        *ret = p->rules[i].reset;
        return 0;
}

bool pg_policy_require_interrupt_remapping(const struct pg_policy *p)
{
        return p ? p->require_interrupt_remapping : true;
}

const char *pg_policy_reset_name(enum pg_policy_reset r)
{
        switch (r) {
        case PG_POLICY_RESET_REQUIRED:
                return "required";
        case PG_POLICY_RESET_IF_AVAILABLE:
                return "if-available";
        case PG_POLICY_RESET_NEVER:
                return "never";
        }
        return NULL;
}

const char *pg_policy_rdm_name(enum pg_policy_rdm r)
{
        switch (r) {
        case PG_POLICY_RDM_STRICT:
                return "strict";
        case PG_POLICY_RDM_RELAXED:
                return "relaxed";
        }
        return NULL;
}

/* ---- the raw text: what libconfig 1.5 would get wrong silently ---- */

static bool is_name_char(int c)
{
        return isalnum(c) || c == '_' || c == '-' || c == '*';
}

/*
 * libconfig 1.5 wraps integer literals that do not fit 32 bits (64 bits with
 * an L suffix) without a word, so "uid = 4294967296;" would read as uid 0.
 * It also reads any file an @include names. Walk the text the way its scanner
 * does (strings and comments skipped) and report both. Returns whether an
 * @include was seen: libconfig is then not run at all.
 */
static bool prescan(struct loader *l, const char *text)
{
        bool include = false, line_start = true;
        int line = 1;

        for (const char *p = text; *p;) {
                unsigned char c = (unsigned char)*p;

                if (c == '\n') {
                        line++;
                        line_start = true;
                        p++;
                        continue;
                }
                if (c == ' ' || c == '\t' || c == '\r') {
                        p++;
                        continue;
                }
                bool at_start = line_start;
                line_start = false;

                if (c == '#' || (c == '/' && p[1] == '/')) {
                        while (*p && *p != '\n')
                                p++;
                } else if (c == '/' && p[1] == '*') {
                        for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
                                if (*p == '\n')
                                        line++;
                        if (*p)
                                p += 2;
                } else if (c == '"') {
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (*p == '\n')
                                        line++;
                        }
                        if (*p)
                                p++;
                } else if (c == '@') {
                        if (strncmp(p, "@include", 8) == 0) {
                                diag(l, line, "@include is not supported in a policy%s",
                                     at_start ? "" : " (and must start a line)");
                                include = true;
                        }
                        p++;
                } else if (isalpha(c) || c == '_' || c == '*') {
                        while (is_name_char((unsigned char)*p))
                                p++;
                } else if (isdigit(c) || ((c == '-' || c == '+') && isdigit((unsigned char)p[1]))) {
                        const char *start = p;
                        if (c == '-' || c == '+')
                                p++;
                        bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
                        const char *digits = hex ? p + 2 : p;
                        p = digits;
                        while (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p))
                                p++;
                        if (!hex && (*p == '.' || *p == 'e' || *p == 'E')) {
                                /* a float: skip it */
                                while (isalnum((unsigned char)*p) || *p == '.' ||
                                       ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')))
                                        p++;
                                continue;
                        }
                        size_t nd = (size_t)(p - digits);
                        bool wide = *p == 'L';
                        if (wide)
                                p++;
                        errno = 0;
                        unsigned long long v = strtoull(digits, NULL, hex ? 16 : 10);
                        bool overflow = errno == ERANGE || nd > 20;
                        uint64_t limit = wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
                        if (hex && !wide)
                                limit = UINT32_MAX; /* read as 32 bits, two's complement */
                        if (nd > 0 && (overflow || v > limit))
                                diag(l, line, "integer %.*s does not fit %s bits", (int)(p - start),
                                     start, wide ? "64" : "32");
                } else
                        p++;
        }
        return include;
}

/* ---- typed access to settings ---- */

static int line_of(const config_setting_t *s)
{
        while (s) {
                int line = config_setting_source_line(s);
                if (line > 0)
                        return line;
                s = config_setting_parent(s);
        }
        return 0;
}

static const char *name_of(const config_setting_t *s)
{
        const char *n = config_setting_name(s);
        return n ? n : "entry";
}

static bool check_keys(struct loader *l, const config_setting_t *group, const char *const *allowed,
                       const char *what)
{
        bool ok = true;
        int n = config_setting_length(group);

        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
                const char *name = config_setting_name(s);
                bool known = false;
                for (const char *const *a = allowed; *a; a++)
                        if (name && streq(name, *a)) {
                                known = true;
                                break;
                        }
                if (!known) {
                        diag(l, line_of(s), "unknown setting '%s' in %s", name ? name : "?", what);
                        ok = false;
                }
        }
        return ok;
}

const char *pg_policy_config_type_name(int type)
{
        switch (type) {
        case CONFIG_TYPE_GROUP:
                return "a group";
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
                return "an integer";
        case CONFIG_TYPE_FLOAT:
                return "a float";
        case CONFIG_TYPE_STRING:
                return "a string";
        case CONFIG_TYPE_BOOL:
                return "a boolean";
        case CONFIG_TYPE_ARRAY:
                return "an array";
        case CONFIG_TYPE_LIST:
                return "a list";
        }
        return "an unknown type";
}

static void wrong_type(struct loader *l, const config_setting_t *s, const char *expected)
{
        diag(l, line_of(s), "'%s' must be %s, not %s", name_of(s), expected,
             pg_policy_config_type_name(config_setting_type(s)));
}

/* An integer in [min, max]. Returns false (and reports) otherwise. */
static bool get_int(struct loader *l, const config_setting_t *s, int64_t min, int64_t max, bool hex,
                    int64_t *ret)
{
        int t = config_setting_type(s);
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
                wrong_type(l, s, "an integer");
                return false;
        }
        int64_t v = config_setting_get_int64(s);
        if (v < min || v > max) {
                if (hex && v >= 0)
                        diag(l, line_of(s),
                             "'%s' value 0x%" PRIx64 " is out of range (0x%" PRIx64 "..0x%" PRIx64
                             ")",
                             name_of(s), (uint64_t)v, (uint64_t)min, (uint64_t)max);
                else
                        diag(l, line_of(s),
                             "'%s' value %" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")",
                             name_of(s), v, min, max);
                return false;
        }
        *ret = v;
        return true;
}

static bool get_string(struct loader *l, const config_setting_t *s, const char **ret)
{
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
                wrong_type(l, s, "a string");
                return false;
        }
        const char *v = config_setting_get_string(s);
        if (!v || !*v) {
                diag(l, line_of(s), "'%s' must not be empty", name_of(s));
                return false;
        }
        *ret = v;
        return true;
}

static bool get_bool(struct loader *l, const config_setting_t *s, bool *ret)
{
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
                wrong_type(l, s, "a boolean (true or false)");
                return false;
        }
        *ret = config_setting_get_bool(s);
        return true;
}

/* A list of groups; an empty array is taken as an empty list. */
static bool is_group_list(struct loader *l, const config_setting_t *s)
{
        int t = config_setting_type(s);
        if (t == CONFIG_TYPE_LIST || (t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
                return true;
        diag(l, line_of(s), "'%s' must be a list of groups: ( { ... }, { ... } )", name_of(s));
        return false;
}

static bool is_string_list(struct loader *l, const config_setting_t *s)
{
        int t = config_setting_type(s);
        if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
                diag(l, line_of(s), "'%s' must be a list of names: [ \"a\", \"b\" ]", name_of(s));
                return false;
        }
        return true;
}

static char *xstrdup(struct loader *l, const char *s)
{
        char *d = strdup(s);
        if (!d)
                l->oom = true;
        return d;
}

/* ---- name lookups ---- */

static int lookup_group(const char *name, gid_t *ret)
{
        size_t size = 4096;

        for (;;) {
                _cleanup_(freep) char *buf = malloc(size);
                struct group grp, *res = NULL;
                if (!buf)
                        return -ENOMEM;
                int r = getgrnam_r(name, &grp, buf, size, &res);
                if (r == ERANGE && size < (1u << 20)) {
                        size *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                if (!res)
                        return -ENOENT;
                *ret = res->gr_gid;
                return 0;
        }
}

static int lookup_user(const char *name, uid_t *ret)
{
        size_t size = 4096;

        for (;;) {
                _cleanup_(freep) char *buf = malloc(size);
                struct passwd pw, *res = NULL;
                if (!buf)
                        return -ENOMEM;
                int r = getpwnam_r(name, &pw, buf, size, &res);
                if (r == ERANGE && size < (1u << 20)) {
                        size *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                if (!res)
                        return -ENOENT;
                *ret = res->pw_uid;
                return 0;
        }
}

/*
 * Lookups by name: the named clients and rules are indexed by name once they
 * are all parsed (sorted by name, then by position), so that duplicates are
 * found and names resolved in O(n log n) however many rules there are.
 */
struct by_name_ctx {
        const char *(*name)(const struct pg_policy *p, size_t i);
        const struct pg_policy *p;
};

static const char *client_name(const struct pg_policy *p, size_t i)
{
        return p->clients[i].name;
}

static const char *rule_name(const struct pg_policy *p, size_t i)
{
        return p->rules[i].name;
}

static int by_name_compare(const void *a, const void *b, void *userdata)
{
        const struct by_name_ctx *ctx = userdata;
        size_t x = *(const size_t *)a, y = *(const size_t *)b;
        int r = strcmp(ctx->name(ctx->p, x), ctx->name(ctx->p, y));

        if (r != 0)
                return r;
        return (x > y) - (x < y);
}

/* The indices in [0, n) whose name is set, sorted by name then index. */
static int by_name_build(const struct pg_policy *p, size_t n,
                         const char *(*name)(const struct pg_policy *p, size_t i), size_t **ret,
                         size_t *ret_n)
{
        struct by_name_ctx ctx = {.name = name, .p = p};
        size_t *v = calloc(n ? n : 1, sizeof(*v)), k = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (name(p, i))
                        v[k++] = i;
        qsort_r(v, k, sizeof(*v), by_name_compare, &ctx);
        free(*ret);
        *ret = v;
        *ret_n = k;
        return 0;
}

/* The first of the entries named name in a by-name index, or -1. */
static ssize_t by_name_find(const struct pg_policy *p, const size_t *v, size_t n,
                            const char *(*name)(const struct pg_policy *p, size_t i),
                            const char *key)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(name(p, v[mid]), key) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < n && streq(name(p, v[lo]), key) ? (ssize_t)v[lo] : -1;
}

static ssize_t client_find(const struct pg_policy *p, const char *name)
{
        return by_name_find(p, p->clients_by_name, p->n_clients_by_name, client_name, name);
}

static ssize_t rule_find(const struct pg_policy *p, const char *name)
{
        return by_name_find(p, p->rules_by_name, p->n_rules_by_name, rule_name, name);
}

/*
 * Index the names and report every one given twice, naming the line of the
 * first. Duplicates are errors, so the index of a policy that loads maps each
 * name to exactly one entry.
 */
static void index_names(struct loader *l, const char *what, size_t n,
                        const char *(*name)(const struct pg_policy *p, size_t i),
                        int (*line)(const struct pg_policy *p, size_t i), size_t **ret,
                        size_t *ret_n)
{
        const struct pg_policy *p = l->p;

        if (by_name_build(p, n, name, ret, ret_n) < 0) {
                l->oom = true;
                return;
        }
        for (size_t k = 1, first = 0; k < *ret_n; k++) {
                const char *a = name(p, (*ret)[first]), *b = name(p, (*ret)[k]);
                if (!streq(a, b)) {
                        first = k;
                        continue;
                }
                diag(l, line(p, (*ret)[k]), "duplicate %s name '%s' (first on line %d)", what, b,
                     line(p, (*ret)[first]));
        }
}

static int client_name_line(const struct pg_policy *p, size_t i)
{
        return p->clients[i].name_line;
}

static int rule_name_line(const struct pg_policy *p, size_t i)
{
        return p->rules[i].name_line;
}

/* ---- clients ---- */

static void parse_client(struct loader *l, const config_setting_t *g, struct client *c)
{
        static const char *const keys[] = {"name", "uid", "gid", "group", "unit", NULL};
        const config_setting_t *s;
        const char *str;
        int64_t v;

        c->line = line_of(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                diag(l, c->line, "a client must be a group { name = ...; uid = ...; }");
                return;
        }
        check_keys(l, g, keys, "client");

        s = config_setting_get_member(g, "name");
        if (!s)
                diag(l, c->line, "client without a 'name'");
        else if (get_string(l, s, &str)) {
                c->name = xstrdup(l, str); /* duplicates: index_names() */
                c->name_line = line_of(s);
        }

        s = config_setting_get_member(g, "uid");
        if (s) {
                if (config_setting_type(s) == CONFIG_TYPE_STRING) {
                        str = config_setting_get_string(s);
                        int r = lookup_user(str, &c->uid);
                        if (r == -ENOENT)
                                diag(l, line_of(s), "user '%s' does not exist", str);
                        else if (r < 0)
                                diag(l, line_of(s), "cannot look up user '%s': %s", str,
                                     strerror(-r));
                        else
                                c->has_uid = true;
                } else if (get_int(l, s, 0, UINT32_MAX - 1, false, &v)) {
                        c->uid = (uid_t)v;
                        c->has_uid = true;
                }
        }

        s = config_setting_get_member(g, "gid");
        if (s && get_int(l, s, 0, UINT32_MAX - 1, false, &v)) {
                c->gid = (gid_t)v;
                c->has_gid = true;
        }

        s = config_setting_get_member(g, "group");
        if (s) {
                if (config_setting_type(s) != CONFIG_TYPE_STRING)
                        diag(l, line_of(s),
                             "'group' must be a group name (a string); use 'gid' "
                             "for a number");
                else if (get_string(l, s, &str)) {
                        int r = lookup_group(str, &c->group_gid);
                        if (r == -ENOENT)
                                diag(l, line_of(s), "group '%s' does not exist", str);
                        else if (r < 0)
                                diag(l, line_of(s), "cannot look up group '%s': %s", str,
                                     strerror(-r));
                        else {
                                c->has_group = true;
                                c->group = xstrdup(l, str);
                        }
                }
        }

        s = config_setting_get_member(g, "unit");
        if (s && get_string(l, s, &str)) {
                const char *dot = strrchr(str, '.');
                if (!dot || dot == str || !dot[1] || strchr(str, '/') || strlen(str) > 255)
                        diag(l, line_of(s),
                             "invalid unit name '%s' (expected e.g. "
                             "\"libvirtd.service\")",
                             str);
                else
                        c->unit = xstrdup(l, str);
        }

        if (!config_setting_get_member(g, "uid") && !config_setting_get_member(g, "gid") &&
            !config_setting_get_member(g, "group") && !config_setting_get_member(g, "unit"))
                diag(l, c->line,
                     "client '%s' gives none of uid, gid, group or unit, so it "
                     "would match everyone",
                     c->name ? c->name : "?");
}

/* ---- device matchers ---- */

static int hex_value(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c = tolower(c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* n hex digits or "*" (-1); advances *p. */
static int bdf_field(const char **p, int n, int *ret)
{
        if (**p == '*') {
                (*p)++;
                *ret = BDF_ANY;
                return 0;
        }
        int v = 0;
        for (int i = 0; i < n; i++) {
                int d = hex_value((unsigned char)(*p)[i]);
                if (d < 0)
                        return -EINVAL;
                v = v * 16 + d;
        }
        *p += n;
        *ret = v;
        return 0;
}

static int parse_bdf_pattern(const char *s, struct dev_matcher *m)
{
        const char *p = s;
        int seg = 0;

        /* The segment is there when the text has two colons. */
        const char *c1 = strchr(s, ':');
        if (c1 && strchr(c1 + 1, ':')) {
                if (bdf_field(&p, 4, &seg) < 0 || seg == BDF_ANY || *p++ != ':')
                        return -EINVAL;
        }
        if (bdf_field(&p, 2, &m->bus) < 0 || *p++ != ':')
                return -EINVAL;
        if (bdf_field(&p, 2, &m->slot) < 0 || *p++ != '.')
                return -EINVAL;
        if (bdf_field(&p, 1, &m->fn) < 0 || *p != '\0')
                return -EINVAL;
        if (m->slot > 0x1f || m->fn > 7)
                return -EINVAL;
        m->seg = (uint16_t)seg;
        return 0;
}

static int parse_class(const char *s, struct dev_matcher *m)
{
        const char *p = s;
        uint32_t v = 0;

        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
                p += 2;
        size_t n = strlen(p);
        if (n != 2 && n != 4 && n != 6)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int d = hex_value((unsigned char)p[i]);
                if (d < 0)
                        return -EINVAL;
                v = v * 16 + (uint32_t)d;
        }
        m->class_value = v;
        m->class_digits = (int)n;
        return 0;
}

static void bdf_field_text(char *buf, size_t size, int v, int width)
{
        if (v == BDF_ANY)
                snprintf(buf, size, "*");
        else
                snprintf(buf, size, "%0*x", width, v);
}

/* "bdf 0000:00:1f.*, vendor 0x8086, class 0x0106" */
static char *dev_matcher_text(const struct dev_matcher *m)
{
        char buf[256] = "", bus[4], slot[4], fn[4];
        size_t n = 0;

#define APPEND(...)                                                                                \
        n += (size_t)snprintf(buf + n, n < sizeof(buf) ? sizeof(buf) - n : 0, __VA_ARGS__)
        if (m->keys & DEV_BDF) {
                bdf_field_text(bus, sizeof(bus), m->bus, 2);
                bdf_field_text(slot, sizeof(slot), m->slot, 2);
                bdf_field_text(fn, sizeof(fn), m->fn, 1);
                APPEND("%sbdf %04x:%s:%s.%s", n ? ", " : "", m->seg, bus, slot, fn);
        }
        if (m->keys & DEV_VENDOR)
                APPEND("%svendor 0x%04x", n ? ", " : "", (unsigned)m->vendor);
        if (m->keys & DEV_DEVICE)
                APPEND("%sdevice 0x%04x", n ? ", " : "", (unsigned)m->device);
        if (m->keys & DEV_SUBSYS_VENDOR)
                APPEND("%ssubsystem_vendor 0x%04x", n ? ", " : "", (unsigned)m->subsystem_vendor);
        if (m->keys & DEV_SUBSYS_DEVICE)
                APPEND("%ssubsystem_device 0x%04x", n ? ", " : "", (unsigned)m->subsystem_device);
        if (m->keys & DEV_CLASS)
                APPEND("%sclass 0x%0*x", n ? ", " : "", m->class_digits, m->class_value);
#undef APPEND
        return strdup(buf);
}

static void parse_dev_matcher(struct loader *l, const config_setting_t *g, const char *what,
                              struct dev_matcher *m)
{
        static const char *const keys[] = {
                "bdf", "vendor", "device", "class", "subsystem_vendor", "subsystem_device", NULL};
        static const struct {
                const char *key;
                unsigned bit;
                size_t offset;
        } ids[] = {
                {"vendor", DEV_VENDOR, offsetof(struct dev_matcher, vendor)},
                {"device", DEV_DEVICE, offsetof(struct dev_matcher, device)},
                {"subsystem_vendor", DEV_SUBSYS_VENDOR,
                 offsetof(struct dev_matcher, subsystem_vendor)},
                {"subsystem_device", DEV_SUBSYS_DEVICE,
                 offsetof(struct dev_matcher, subsystem_device)},
        };
        const config_setting_t *s;
        const char *str;
        int64_t v;

        m->line = line_of(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                diag(l, m->line, "a %s must be a group { vendor = ...; class = ...; }", what);
                return;
        }
        check_keys(l, g, keys, what);
        if (config_setting_length(g) == 0)
                diag(l, m->line, "empty %s would match every device; %s", what,
                     strstr(what, "protected") ? "name the devices to protect"
                                               : "leave out 'devices' to match any device");

        s = config_setting_get_member(g, "bdf");
        if (s && get_string(l, s, &str)) {
                if (parse_bdf_pattern(str, m) < 0)
                        diag(l, line_of(s),
                             "invalid bdf '%s' (expected SSSS:BB:DD.F or "
                             "BB:DD.F; bus, slot and function may be '*')",
                             str);
                else
                        m->keys |= DEV_BDF;
        }
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                s = config_setting_get_member(g, ids[i].key);
                if (s && get_int(l, s, 0, 0xffff, true, &v)) {
                        *(int32_t *)((char *)m + ids[i].offset) = (int32_t)v;
                        m->keys |= ids[i].bit;
                }
        }
        s = config_setting_get_member(g, "class");
        if (s) {
                if (config_setting_type(s) != CONFIG_TYPE_STRING)
                        diag(l, line_of(s),
                             "'class' must be a string of 2, 4 or 6 hex digits, "
                             "e.g. \"0x03\" or \"0x030000\"");
                else if (get_string(l, s, &str)) {
                        if (parse_class(str, m) < 0)
                                diag(l, line_of(s),
                                     "invalid class '%s' (expected 2, 4 or 6 hex "
                                     "digits, e.g. \"0x03\", \"0x0302\" or \"0x030200\")",
                                     str);
                        else
                                m->keys |= DEV_CLASS;
                }
        }
        m->text = dev_matcher_text(m);
        if (!m->text)
                l->oom = true;
}

/* ---- domain matchers ---- */

static void parse_dom_matcher(struct loader *l, const config_setting_t *g, struct dom_matcher *m)
{
        static const char *const keys[] = {"name", "domid", "uuid", "type", NULL};
        const config_setting_t *s;
        const char *str;
        int64_t v;

        m->line = line_of(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                diag(l, m->line, "a domain matcher must be a group { name = ...; type = ...; }");
                return;
        }
        check_keys(l, g, keys, "domain matcher");
        if (config_setting_length(g) == 0)
                diag(l, m->line,
                     "empty domain matcher would match every domain; leave out "
                     "'domains' to match any domain");

        s = config_setting_get_member(g, "name");
        if (s && get_string(l, s, &str)) {
                m->name = xstrdup(l, str);
                m->keys |= DOM_NAME;
        }
        s = config_setting_get_member(g, "domid");
        if (s && get_int(l, s, 0, PG_DOMID_GUEST_MAX, false, &v)) {
                m->domid = (uint32_t)v;
                m->keys |= DOM_DOMID;
        }
        s = config_setting_get_member(g, "uuid");
        if (s && get_string(l, s, &str)) {
                char uuid[PG_UUID_MAX];
                if (pg_uuid_normalize(str, uuid) < 0)
                        diag(l, line_of(s),
                             "invalid uuid '%s' (expected "
                             "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                             str);
                else {
                        m->uuid = xstrdup(l, uuid);
                        m->keys |= DOM_UUID;
                }
        }
        s = config_setting_get_member(g, "type");
        if (s && get_string(l, s, &str)) {
                enum pg_domain_type type;
                if (pg_domain_type_parse(str, &type) < 0)
                        diag(l, line_of(s), "unknown domain type '%s' (expected hvm, pvh or pv)",
                             str);
                else {
                        m->type = xstrdup(l, str);
                        m->keys |= DOM_TYPE;
                }
        }
}

/* ---- rules ---- */

static bool parse_client_refs(struct loader *l, const config_setting_t *s, const char *where,
                              size_t **ret, size_t *ret_n)
{
        if (!is_string_list(l, s))
                return false;
        int n = config_setting_length(s);
        size_t *v = calloc(n > 0 ? (size_t)n : 1, sizeof(*v));
        size_t k = 0;
        if (!v) {
                l->oom = true;
                return false;
        }
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
                if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                        diag(l, line_of(e), "%s must name clients (strings), not %s", where,
                             pg_policy_config_type_name(config_setting_type(e)));
                        continue;
                }
                const char *name = config_setting_get_string(e);
                ssize_t c = client_find(l->p, name);
                if (c < 0) {
                        diag(l, line_of(e), "unknown client '%s' in %s", name, where);
                        continue;
                }
                bool dup = false;
                for (size_t j = 0; j < k; j++)
                        dup = dup || v[j] == (size_t)c;
                if (dup)
                        diag(l, line_of(e), "client '%s' named twice in %s", name, where);
                else
                        v[k++] = (size_t)c;
        }
        *ret = v;
        *ret_n = k;
        return true;
}

static void parse_rule(struct loader *l, const config_setting_t *g, struct rule *r)
{
        static const char *const keys[] = {
                "name",    "action",     "clients", "devices",
                "domains", "rdm_policy", "reset",   "max_devices_per_domain",
                "managed", NULL};
        const config_setting_t *s;
        const char *str;
        int64_t v;
        char where[300];

        r->line = line_of(g);
        r->any_client = true;
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                diag(l, r->line, "a rule must be a group { name = ...; action = ...; }");
                return;
        }
        check_keys(l, g, keys, "rule");

        const char *label = "?";
        s = config_setting_get_member(g, "name");
        if (!s)
                diag(l, r->line, "rule without a 'name'");
        else if (get_string(l, s, &str)) {
                label = str;
                if (streq(str, "default"))
                        diag(l, line_of(s),
                             "rule name 'default' is reserved for the implicit "
                             "deny");
                else {
                        r->name = xstrdup(l, str); /* duplicates: index_names() */
                        r->name_line = line_of(s);
                }
        }
        snprintf(where, sizeof(where), "rule '%.256s'", label);

        s = config_setting_get_member(g, "action");
        if (!s)
                diag(l, r->line, "%s has no 'action' (allow or deny)", where);
        else if (get_string(l, s, &str)) {
                if (streq(str, "allow"))
                        r->allow = true;
                else if (!streq(str, "deny"))
                        diag(l, line_of(s), "unknown action '%s' (expected allow or deny)", str);
        }

        s = config_setting_get_member(g, "clients");
        if (s && parse_client_refs(l, s, where, &r->clients, &r->n_clients)) {
                r->any_client = false;
                if (config_setting_length(s) == 0)
                        diag(l, line_of(s),
                             "empty 'clients' in %s matches no one; leave it out "
                             "to match any client",
                             where);
        }

        s = config_setting_get_member(g, "devices");
        if (s && is_group_list(l, s)) {
                int n = config_setting_length(s);
                if (n == 0)
                        diag(l, line_of(s),
                             "empty 'devices' in %s matches nothing; leave it "
                             "out to match any device",
                             where);
                r->devices = calloc(n > 0 ? (size_t)n : 1, sizeof(*r->devices));
                if (!r->devices)
                        l->oom = true;
                else
                        for (int i = 0; i < n; i++) {
                                parse_dev_matcher(l, config_setting_get_elem(s, (unsigned)i),
                                                  "device matcher", &r->devices[i]);
                                r->n_devices++;
                        }
        }

        s = config_setting_get_member(g, "domains");
        if (s && is_group_list(l, s)) {
                int n = config_setting_length(s);
                if (n == 0)
                        diag(l, line_of(s),
                             "empty 'domains' in %s matches nothing; leave it "
                             "out to match any domain",
                             where);
                r->domains = calloc(n > 0 ? (size_t)n : 1, sizeof(*r->domains));
                if (!r->domains)
                        l->oom = true;
                else
                        for (int i = 0; i < n; i++) {
                                parse_dom_matcher(l, config_setting_get_elem(s, (unsigned)i),
                                                  &r->domains[i]);
                                r->n_domains++;
                        }
        }

        s = config_setting_get_member(g, "rdm_policy");
        if (s && get_string(l, s, &str)) {
                if (streq(str, "strict"))
                        r->rdm = PG_POLICY_RDM_STRICT;
                else if (streq(str, "relaxed"))
                        r->rdm = PG_POLICY_RDM_RELAXED;
                else
                        diag(l, line_of(s),
                             "unknown rdm_policy '%s' (expected strict or "
                             "relaxed)",
                             str);
        }

        s = config_setting_get_member(g, "reset");
        if (s && get_string(l, s, &str)) {
                if (streq(str, "required"))
                        r->reset = PG_POLICY_RESET_REQUIRED;
                else if (streq(str, "if-available"))
                        r->reset = PG_POLICY_RESET_IF_AVAILABLE;
                else if (streq(str, "never"))
                        r->reset = PG_POLICY_RESET_NEVER;
                else
                        diag(l, line_of(s),
                             "unknown reset '%s' (expected required, "
                             "if-available or never)",
                             str);
        }

        s = config_setting_get_member(g, "max_devices_per_domain");
        if (s && get_int(l, s, 1, INT32_MAX, false, &v))
                r->max_devices_per_domain = (unsigned)v;

        s = config_setting_get_member(g, "managed");
        if (s)
                get_bool(l, s, &r->managed);
}

/* ---- the whole file ---- */

static void parse_root(struct loader *l, const config_setting_t *root)
{
        static const char *const keys[] = {
                "version", "require_interrupt_remapping", "clients", "admins", "protected", "rules",
                NULL};
        struct pg_policy *p = l->p;
        const config_setting_t *s;
        int64_t v;

        if (config_setting_length(root) == 0) {
                diag(l, 0, "the policy is empty (it needs at least 'version = 1;')");
                return;
        }
        check_keys(l, root, keys, "policy");

        s = config_setting_get_member(root, "version");
        if (!s)
                diag(l, 0, "missing required setting 'version' (version = 1;)");
        else if (get_int(l, s, INT64_MIN, INT64_MAX, false, &v) && v != 1)
                diag(l, line_of(s), "unsupported policy version %" PRId64 " (only 1 exists)", v);

        p->require_interrupt_remapping = true;
        s = config_setting_get_member(root, "require_interrupt_remapping");
        if (s)
                get_bool(l, s, &p->require_interrupt_remapping);

        s = config_setting_get_member(root, "clients");
        if (s && is_group_list(l, s)) {
                int n = config_setting_length(s);
                p->clients = calloc(n > 0 ? (size_t)n : 1, sizeof(*p->clients));
                if (!p->clients) {
                        l->oom = true;
                        return;
                }
                for (int i = 0; i < n; i++) {
                        parse_client(l, config_setting_get_elem(s, (unsigned)i), &p->clients[i]);
                        p->n_clients++;
                }
        }
        /* Before anything names a client: admins and rules resolve names through it. */
        index_names(l, "client", p->n_clients, client_name, client_name_line, &p->clients_by_name,
                    &p->n_clients_by_name);

        s = config_setting_get_member(root, "admins");
        if (s)
                parse_client_refs(l, s, "admins", &p->admins, &p->n_admins);

        s = config_setting_get_member(root, "protected");
        if (s && is_group_list(l, s)) {
                int n = config_setting_length(s);
                p->protected = calloc(n > 0 ? (size_t)n : 1, sizeof(*p->protected));
                if (!p->protected) {
                        l->oom = true;
                        return;
                }
                for (int i = 0; i < n; i++) {
                        parse_dev_matcher(l, config_setting_get_elem(s, (unsigned)i),
                                          "protected device matcher", &p->protected[i]);
                        p->n_protected++;
                }
        }

        s = config_setting_get_member(root, "rules");
        if (s && is_group_list(l, s)) {
                int n = config_setting_length(s);
                p->rules = calloc(n > 0 ? (size_t)n : 1, sizeof(*p->rules));
                if (!p->rules) {
                        l->oom = true;
                        return;
                }
                for (int i = 0; i < n; i++) {
                        parse_rule(l, config_setting_get_elem(s, (unsigned)i), &p->rules[i]);
                        p->n_rules++;
                }
        }
        index_names(l, "rule", p->n_rules, rule_name, rule_name_line, &p->rules_by_name,
                    &p->n_rules_by_name);
}

static void config_destroyp(config_t *c)
{
        config_destroy(c);
}

static int load_text(const char *text, const char *filename, struct pg_policy **ret,
                     struct pg_policy_diags *diags)
{
        _cleanup_(pg_policy_freep) struct pg_policy *p = calloc(1, sizeof(*p));
        struct loader l = {
                .file = filename,
                .diags = diags,
                .first_diag = diags->n,
                .p = p,
        };
        if (!p)
                return -ENOMEM;
        p->path = strdup(filename);
        if (!p->path)
                return -ENOMEM;

        if (!prescan(&l, text)) {
                _cleanup_(config_destroyp) config_t cfg;
                config_init(&cfg);
                if (!config_read_string(&cfg, text)) {
                        const char *what = config_error_text(&cfg);
                        diag(&l, config_error_line(&cfg), "%s", what ? what : "syntax error");
                } else
                        parse_root(&l, config_root_setting(&cfg));
        }

        if (l.oom)
                return -ENOMEM;
        if (l.n_errors > 0) {
                diags_sort(&l);
                return -EINVAL;
        }
        int r = pg_policy_index_build(p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

int pg_policy_load_string(const char *text, const char *filename, struct pg_policy **ret,
                          struct pg_policy_diags *diags)
{
        struct pg_policy_diags local = {};
        struct pg_policy_diags *d = diags ? diags : &local;

        if (!text || !ret)
                return -EINVAL;
        int r = load_text(text, filename ? filename : "<string>", ret, d);
        pg_policy_diags_clear(&local);
        return r;
}

static int read_file(const char *path, char **ret, struct loader *l)
{
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode)) {
                diag(l, 0, "not a regular file");
                return -EINVAL;
        }
        if ((uint64_t)st.st_size > POLICY_MAX_SIZE) {
                diag(l, 0, "file is larger than %u bytes", POLICY_MAX_SIZE);
                return -EFBIG;
        }
        size_t size = (size_t)st.st_size, n = 0;
        _cleanup_(freep) char *buf = malloc(size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < size) {
                ssize_t k = read(fd, buf + n, size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break; /* shrank under us: parse what is there */
                n += (size_t)k;
        }
        buf[n] = '\0';
        if (memchr(buf, '\0', n)) {
                int line = 1;
                for (const char *c = buf; *c; c++)
                        line += *c == '\n';
                diag(l, line, "file contains a NUL byte");
                return -EINVAL;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

int pg_policy_load(const char *path, struct pg_policy **ret, struct pg_policy_diags *diags)
{
        struct pg_policy_diags local = {};
        struct pg_policy_diags *d = diags ? diags : &local;
        _cleanup_(freep) char *text = NULL;

        if (!path || !ret)
                return -EINVAL;
        struct loader l = {.file = path, .diags = d, .first_diag = d->n};
        int r = read_file(path, &text, &l);
        if (r < 0) {
                if (l.n_errors == 0)
                        diag(&l, 0, "%s", strerror(-r));
        } else
                r = load_text(text, path, ret, d);
        pg_policy_diags_clear(&local);
        return r;
}
