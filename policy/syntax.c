/* SPDX-License-Identifier: MIT */
/*
 * A policy's syntax (policy-internal.h): the diagnostics every stage adds
 * to, what libconfig 1.5 would read wrong without a word (prescan), and
 * typed access to the settings libconfig parsed, each wrong type said with
 * file:line.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg-util.h"
#include "pg-wire.h"
#include "policy-internal.h"

/* After this many problems, one more says so and the rest are dropped. */
#define MAX_DIAGS 1000

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

_printf_(3, 4) void pg_policy_diag(struct loader *l, int line, const char *fmt, ...)
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
void pg_policy_diags_sort(struct loader *l)
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
bool pg_policy_prescan(struct loader *l, const char *text)
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
                                pg_policy_diag(l, line, "@include is not supported in a policy%s",
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
                                pg_policy_diag(l, line, "integer %.*s does not fit %s bits",
                                               (int)(p - start), start, wide ? "64" : "32");
                } else
                        p++;
        }
        return include;
}

/* ---- typed access to settings ---- */

int pg_policy_line_of(const config_setting_t *s)
{
        while (s) {
                int line = config_setting_source_line(s);
                if (line > 0)
                        return line;
                s = config_setting_parent(s);
        }
        return 0;
}

const char *pg_policy_name_of(const config_setting_t *s)
{
        const char *n = config_setting_name(s);
        return n ? n : "entry";
}

bool pg_policy_check_keys(struct loader *l, const config_setting_t *group,
                          const char *const *allowed, const char *what)
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
                        pg_policy_diag(l, pg_policy_line_of(s), "unknown setting '%s' in %s",
                                       name ? name : "?", what);
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

void pg_policy_wrong_type(struct loader *l, const config_setting_t *s, const char *expected)
{
        pg_policy_diag(l, pg_policy_line_of(s), "'%s' must be %s, not %s", pg_policy_name_of(s),
                       expected, pg_policy_config_type_name(config_setting_type(s)));
}

/* An integer in [min, max]. Returns false (and reports) otherwise. */
bool pg_policy_get_int(struct loader *l, const config_setting_t *s, int64_t min, int64_t max,
                       bool hex, int64_t *ret)
{
        int t = config_setting_type(s);
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
                pg_policy_wrong_type(l, s, "an integer");
                return false;
        }
        int64_t v = config_setting_get_int64(s);
        if (v < min || v > max) {
                if (hex && v >= 0)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "'%s' value 0x%" PRIx64 " is out of range (0x%" PRIx64
                                       "..0x%" PRIx64 ")",
                                       pg_policy_name_of(s), (uint64_t)v, (uint64_t)min,
                                       (uint64_t)max);
                else
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "'%s' value %" PRId64 " is out of range (%" PRId64
                                       "..%" PRId64 ")",
                                       pg_policy_name_of(s), v, min, max);
                return false;
        }
        *ret = v;
        return true;
}

bool pg_policy_get_string(struct loader *l, const config_setting_t *s, const char **ret)
{
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
                pg_policy_wrong_type(l, s, "a string");
                return false;
        }
        const char *v = config_setting_get_string(s);
        if (!v || !*v) {
                pg_policy_diag(l, pg_policy_line_of(s), "'%s' must not be empty",
                               pg_policy_name_of(s));
                return false;
        }
        *ret = v;
        return true;
}

bool pg_policy_get_bool(struct loader *l, const config_setting_t *s, bool *ret)
{
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
                pg_policy_wrong_type(l, s, "a boolean (true or false)");
                return false;
        }
        *ret = config_setting_get_bool(s);
        return true;
}

/* A list of groups; an empty array is taken as an empty list. */
bool pg_policy_is_group_list(struct loader *l, const config_setting_t *s)
{
        int t = config_setting_type(s);
        if (t == CONFIG_TYPE_LIST || (t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
                return true;
        pg_policy_diag(l, pg_policy_line_of(s),
                       "'%s' must be a list of groups: ( { ... }, { ... } )", pg_policy_name_of(s));
        return false;
}

bool pg_policy_is_string_list(struct loader *l, const config_setting_t *s)
{
        int t = config_setting_type(s);
        if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
                pg_policy_diag(l, pg_policy_line_of(s),
                               "'%s' must be a list of names: [ \"a\", \"b\" ]",
                               pg_policy_name_of(s));
                return false;
        }
        return true;
}

char *pg_policy_strdup(struct loader *l, const char *s)
{
        char *d = strdup(s);
        if (!d)
                l->oom = true;
        return d;
}
