/* SPDX-License-Identifier: MIT */
/*
 * A policy's validation (policy-internal.h): every setting checked against
 * passguard.conf(5) (unknown keys, impossible values, duplicate names, users
 * and groups that do not exist, references to clients that are not there),
 * every problem collected, and the struct built as it goes.
 */
#include <ctype.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg-util.h"
#include "pg-wire.h"
#include "policy-internal.h"

/* ---- name lookups ---- */

/* A group's gid (group) or a user's uid by name: -ENOENT when there is none. */
static int lookup_id(const char *name, bool group, uint32_t *ret)
{
        for (size_t size = 4096;; size *= 2) {
                _cleanup_(freep) char *buf = malloc(size);
                struct group grp, *gr = NULL;
                struct passwd pw, *pwr = NULL;
                int r;

                if (!buf)
                        return -ENOMEM;
                r = group ? getgrnam_r(name, &grp, buf, size, &gr)
                          : getpwnam_r(name, &pw, buf, size, &pwr);
                if (r == ERANGE && size < (1u << 20))
                        continue;
                if (r != 0)
                        return -r;
                if (group ? !gr : !pwr)
                        return -ENOENT;
                *ret = group ? gr->gr_gid : pwr->pw_uid;
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

ssize_t pg_policy_client_find(const struct pg_policy *p, const char *name)
{
        return by_name_find(p, p->clients_by_name, p->n_clients_by_name, client_name, name);
}

ssize_t pg_policy_rule_find(const struct pg_policy *p, const char *name)
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
                pg_policy_diag(l, line(p, (*ret)[k]), "duplicate %s name '%s' (first on line %d)",
                               what, b, line(p, (*ret)[first]));
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

        c->line = pg_policy_line_of(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                pg_policy_diag(l, c->line, "a client must be a group { name = ...; uid = ...; }");
                return;
        }
        pg_policy_check_keys(l, g, keys, "client");

        s = config_setting_get_member(g, "name");
        if (!s)
                pg_policy_diag(l, c->line, "client without a 'name'");
        else if (pg_policy_get_string(l, s, &str)) {
                c->name = pg_policy_strdup(l, str); /* duplicates: index_names() */
                c->name_line = pg_policy_line_of(s);
        }

        s = config_setting_get_member(g, "uid");
        if (s) {
                if (config_setting_type(s) == CONFIG_TYPE_STRING) {
                        str = config_setting_get_string(s);
                        int r = lookup_id(str, false, &c->uid);
                        if (r == -ENOENT)
                                pg_policy_diag(l, pg_policy_line_of(s), "user '%s' does not exist",
                                               str);
                        else if (r < 0)
                                pg_policy_diag(l, pg_policy_line_of(s),
                                               "cannot look up user '%s': %s", str, strerror(-r));
                        else
                                c->has_uid = true;
                } else if (pg_policy_get_int(l, s, 0, UINT32_MAX - 1, false, &v)) {
                        c->uid = (uid_t)v;
                        c->has_uid = true;
                }
        }

        s = config_setting_get_member(g, "gid");
        if (s && pg_policy_get_int(l, s, 0, UINT32_MAX - 1, false, &v)) {
                c->gid = (gid_t)v;
                c->has_gid = true;
        }

        s = config_setting_get_member(g, "group");
        if (s) {
                if (config_setting_type(s) != CONFIG_TYPE_STRING)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "'group' must be a group name (a string); use 'gid' "
                                       "for a number");
                else if (pg_policy_get_string(l, s, &str)) {
                        int r = lookup_id(str, true, &c->group_gid);
                        if (r == -ENOENT)
                                pg_policy_diag(l, pg_policy_line_of(s), "group '%s' does not exist",
                                               str);
                        else if (r < 0)
                                pg_policy_diag(l, pg_policy_line_of(s),
                                               "cannot look up group '%s': %s", str, strerror(-r));
                        else {
                                c->has_group = true;
                                c->group = pg_policy_strdup(l, str);
                        }
                }
        }

        s = config_setting_get_member(g, "unit");
        if (s && pg_policy_get_string(l, s, &str)) {
                const char *dot = strrchr(str, '.');
                if (!dot || dot == str || !dot[1] || strchr(str, '/') || strlen(str) > 255)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "invalid unit name '%s' (expected e.g. "
                                       "\"libvirtd.service\")",
                                       str);
                else
                        c->unit = pg_policy_strdup(l, str);
        }

        if (!config_setting_get_member(g, "uid") && !config_setting_get_member(g, "gid") &&
            !config_setting_get_member(g, "group") && !config_setting_get_member(g, "unit"))
                pg_policy_diag(l, c->line,
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
        if (m->keys & DEV_SERIAL)
                APPEND("%sserial %s", n ? ", " : "", m->serial);
        if (m->keys & DEV_PATH)
                APPEND("%spath %s", n ? ", " : "", m->path);
#undef APPEND
        return strdup(buf);
}

static void parse_dev_matcher(struct loader *l, const config_setting_t *g, const char *what,
                              struct dev_matcher *m)
{
        static const char *const keys[] = {
                "bdf",    "vendor", "device", "class", "subsystem_vendor", "subsystem_device",
                "serial", "path",   NULL};
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

        m->line = pg_policy_line_of(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                pg_policy_diag(l, m->line, "a %s must be a group { vendor = ...; class = ...; }",
                               what);
                return;
        }
        pg_policy_check_keys(l, g, keys, what);
        if (config_setting_length(g) == 0)
                pg_policy_diag(l, m->line, "empty %s would match every device; %s", what,
                               strstr(what, "protected")
                                       ? "name the devices to protect"
                                       : "leave out 'devices' to match any device");

        s = config_setting_get_member(g, "bdf");
        if (s && pg_policy_get_string(l, s, &str)) {
                if (parse_bdf_pattern(str, m) < 0)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "invalid bdf '%s' (expected SSSS:BB:DD.F or "
                                       "BB:DD.F; bus, slot and function may be '*')",
                                       str);
                else
                        m->keys |= DEV_BDF;
        }
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                s = config_setting_get_member(g, ids[i].key);
                if (s && pg_policy_get_int(l, s, 0, 0xffff, true, &v)) {
                        *(int32_t *)((char *)m + ids[i].offset) = (int32_t)v;
                        m->keys |= ids[i].bit;
                }
        }
        s = config_setting_get_member(g, "class");
        if (s) {
                if (config_setting_type(s) != CONFIG_TYPE_STRING)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "'class' must be a string of 2, 4 or 6 hex digits, "
                                       "e.g. \"0x03\" or \"0x030000\"");
                else if (pg_policy_get_string(l, s, &str)) {
                        if (parse_class(str, m) < 0)
                                pg_policy_diag(l, pg_policy_line_of(s),
                                               "invalid class '%s' (expected 2, 4 or 6 hex "
                                               "digits, e.g. \"0x03\", \"0x0302\" or \"0x030200\")",
                                               str);
                        else
                                m->keys |= DEV_CLASS;
                }
        }
        s = config_setting_get_member(g, "serial");
        if (s && pg_policy_get_string(l, s, &str)) {
                /* A glob over "xx-xx-xx-xx-xx-xx-xx-xx": hex digits, '-', '*' and '?'. */
                bool ok = str[0] != '\0';
                for (const char *c = str; *c && ok; c++)
                        ok = isxdigit((unsigned char)*c) || *c == '-' || *c == '*' || *c == '?';
                if (!ok)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "invalid serial '%s' (expected a glob of the PCIe device "
                                       "serial number, e.g. \"00-1b-21-*\")",
                                       str);
                else {
                        m->serial = pg_policy_strdup(l, str);
                        for (char *c = m->serial; c && *c; c++)
                                *c = (char)tolower((unsigned char)*c);
                        m->keys |= DEV_SERIAL;
                }
        }
        s = config_setting_get_member(g, "path");
        if (s && pg_policy_get_string(l, s, &str)) {
                if (!str[0] || strchr(str, ' '))
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "invalid path '%s' (expected a glob of the chain of bridges, "
                                       "e.g. \"pci0000:00/0000:00:1c.*\")",
                                       str);
                else {
                        m->path = pg_policy_strdup(l, str);
                        m->keys |= DEV_PATH;
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

        m->line = pg_policy_line_of(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                pg_policy_diag(l, m->line,
                               "a domain matcher must be a group { name = ...; type = ...; }");
                return;
        }
        pg_policy_check_keys(l, g, keys, "domain matcher");
        if (config_setting_length(g) == 0)
                pg_policy_diag(l, m->line,
                               "empty domain matcher would match every domain; leave out "
                               "'domains' to match any domain");

        s = config_setting_get_member(g, "name");
        if (s && pg_policy_get_string(l, s, &str)) {
                m->name = pg_policy_strdup(l, str);
                m->keys |= DOM_NAME;
        }
        s = config_setting_get_member(g, "domid");
        if (s && pg_policy_get_int(l, s, 0, PG_DOMID_GUEST_MAX, false, &v)) {
                m->domid = (uint32_t)v;
                m->keys |= DOM_DOMID;
        }
        s = config_setting_get_member(g, "uuid");
        if (s && pg_policy_get_string(l, s, &str)) {
                char uuid[PG_UUID_MAX];
                if (pg_uuid_normalize(str, uuid) < 0)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "invalid uuid '%s' (expected "
                                       "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                                       str);
                else {
                        m->uuid = pg_policy_strdup(l, uuid);
                        m->keys |= DOM_UUID;
                }
        }
        s = config_setting_get_member(g, "type");
        if (s && pg_policy_get_string(l, s, &str)) {
                enum pg_domain_type type;
                if (pg_domain_type_parse(str, &type) < 0)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "unknown domain type '%s' (expected hvm, pvh or pv)", str);
                else {
                        m->type = pg_policy_strdup(l, str);
                        m->keys |= DOM_TYPE;
                }
        }
}

/* ---- rules ---- */

static bool parse_client_refs(struct loader *l, const config_setting_t *s, const char *where,
                              size_t **ret, size_t *ret_n)
{
        if (!pg_policy_is_string_list(l, s))
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
                        pg_policy_diag(l, pg_policy_line_of(e),
                                       "%s must name clients (strings), not %s", where,
                                       pg_policy_config_type_name(config_setting_type(e)));
                        continue;
                }
                const char *name = config_setting_get_string(e);
                ssize_t c = pg_policy_client_find(l->p, name);
                if (c < 0) {
                        pg_policy_diag(l, pg_policy_line_of(e), "unknown client '%s' in %s", name,
                                       where);
                        continue;
                }
                bool dup = false;
                for (size_t j = 0; j < k; j++)
                        dup = dup || v[j] == (size_t)c;
                if (dup)
                        pg_policy_diag(l, pg_policy_line_of(e), "client '%s' named twice in %s",
                                       name, where);
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

        r->line = pg_policy_line_of(g);
        r->any_client = true;
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                pg_policy_diag(l, r->line, "a rule must be a group { name = ...; action = ...; }");
                return;
        }
        pg_policy_check_keys(l, g, keys, "rule");

        const char *label = "?";
        s = config_setting_get_member(g, "name");
        if (!s)
                pg_policy_diag(l, r->line, "rule without a 'name'");
        else if (pg_policy_get_string(l, s, &str)) {
                label = str;
                if (streq(str, "default"))
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "rule name 'default' is reserved for the implicit "
                                       "deny");
                else {
                        r->name = pg_policy_strdup(l, str); /* duplicates: index_names() */
                        r->name_line = pg_policy_line_of(s);
                }
        }
        snprintf(where, sizeof(where), "rule '%.256s'", label);

        s = config_setting_get_member(g, "action");
        if (!s)
                pg_policy_diag(l, r->line, "%s has no 'action' (allow or deny)", where);
        else if (pg_policy_get_string(l, s, &str)) {
                if (streq(str, "allow"))
                        r->allow = true;
                else if (!streq(str, "deny"))
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "unknown action '%s' (expected allow or deny)", str);
        }

        s = config_setting_get_member(g, "clients");
        if (s && parse_client_refs(l, s, where, &r->clients, &r->n_clients)) {
                r->any_client = false;
                if (config_setting_length(s) == 0)
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "empty 'clients' in %s matches no one; leave it out "
                                       "to match any client",
                                       where);
        }

        s = config_setting_get_member(g, "devices");
        if (s && pg_policy_is_group_list(l, s)) {
                int n = config_setting_length(s);
                if (n == 0)
                        pg_policy_diag(l, pg_policy_line_of(s),
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
        if (s && pg_policy_is_group_list(l, s)) {
                int n = config_setting_length(s);
                if (n == 0)
                        pg_policy_diag(l, pg_policy_line_of(s),
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
        if (s && pg_policy_get_string(l, s, &str)) {
                if (streq(str, "strict"))
                        r->rdm = PG_POLICY_RDM_STRICT;
                else if (streq(str, "relaxed"))
                        r->rdm = PG_POLICY_RDM_RELAXED;
                else
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "unknown rdm_policy '%s' (expected strict or "
                                       "relaxed)",
                                       str);
        }

        s = config_setting_get_member(g, "reset");
        if (s && pg_policy_get_string(l, s, &str)) {
                if (streq(str, "required"))
                        r->reset = PG_POLICY_RESET_REQUIRED;
                else if (streq(str, "if-available"))
                        r->reset = PG_POLICY_RESET_IF_AVAILABLE;
                else if (streq(str, "never"))
                        r->reset = PG_POLICY_RESET_NEVER;
                else
                        pg_policy_diag(l, pg_policy_line_of(s),
                                       "unknown reset '%s' (expected required, "
                                       "if-available or never)",
                                       str);
        }

        s = config_setting_get_member(g, "max_devices_per_domain");
        if (s && pg_policy_get_int(l, s, 1, INT32_MAX, false, &v))
                r->max_devices_per_domain = (unsigned)v;

        s = config_setting_get_member(g, "managed");
        if (s)
                pg_policy_get_bool(l, s, &r->managed);
}

/* ---- the whole file ---- */

void pg_policy_validate(struct loader *l, const config_setting_t *root)
{
        static const char *const keys[] = {
                "version",   "require_interrupt_remapping", "clients", "admins", "protected", "rules",
                "watchers",  "protect_root_device",        NULL};
        struct pg_policy *p = l->p;
        const config_setting_t *s;
        int64_t v;

        if (config_setting_length(root) == 0) {
                pg_policy_diag(l, 0, "the policy is empty (it needs at least 'version = 1;')");
                return;
        }
        pg_policy_check_keys(l, root, keys, "policy");

        s = config_setting_get_member(root, "version");
        if (!s)
                pg_policy_diag(l, 0, "missing required setting 'version' (version = 1;)");
        else if (pg_policy_get_int(l, s, INT64_MIN, INT64_MAX, false, &v) && v != 1)
                pg_policy_diag(l, pg_policy_line_of(s),
                               "unsupported policy version %" PRId64 " (only 1 exists)", v);

        p->require_interrupt_remapping = true;
        s = config_setting_get_member(root, "require_interrupt_remapping");
        if (s)
                pg_policy_get_bool(l, s, &p->require_interrupt_remapping);

        p->protect_root_device = true;
        s = config_setting_get_member(root, "protect_root_device");
        if (s)
                pg_policy_get_bool(l, s, &p->protect_root_device);

        s = config_setting_get_member(root, "clients");
        if (s && pg_policy_is_group_list(l, s)) {
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
        s = config_setting_get_member(root, "watchers");
        if (s && parse_client_refs(l, s, "watchers", &p->watchers, &p->n_watchers) &&
            config_setting_length(s) == 0)
                pg_policy_diag(l, pg_policy_line_of(s),
                               "empty 'watchers' names no one; leave it out (admins may always "
                               "watch)");

        s = config_setting_get_member(root, "protected");
        if (s && pg_policy_is_group_list(l, s)) {
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
        if (s && pg_policy_is_group_list(l, s)) {
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
