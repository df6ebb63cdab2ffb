/* SPDX-License-Identifier: MIT */
/*
 * hv-sim's host in memory (hv-sim.h): the simulated host file's format,
 * parsed strictly and written back, and the changes the backend makes to it.
 * No file I/O here.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv-sim.h"
#include "pg-wire.h"

static const char *const fault_ops[] = {
        "test_assign", "assign", "deassign", "device_group", "reset", "prepare", "unprepare", NULL,
};
static const char *const call_names[] = {
        "test_assign", "assign",     "deassign",     "device_group",
        "reset",       "quarantine", "unquarantine", NULL,
};

struct sim_host *pgd_sim_host_free(struct sim_host *h)
{
        if (!h)
                return NULL;
        json_decref(h->root);
        for (size_t i = 0; i < h->n_devices; i++)
                free(h->devices[i].text);
        for (size_t i = 0; i < h->n_domains; i++)
                free(h->domains[i].text);
        free(h->devices);
        free(h->by_sbdf);
        free(h->root_devices);
        free(h->domains);
        free(h);
        return NULL;
}

static bool in_list(const char *const *list, const char *s)
{
        for (; *list; list++)
                if (streq(*list, s))
                        return true;
        return false;
}

/* ---- parsing ---- */

/* "0x" followed by 1..8 hex digits, at most max. */
static int parse_hex(const json_t *v, uint32_t max, uint32_t *ret)
{
        const char *s;
        uint32_t x = 0;
        size_t n;

        if (!json_is_string(v))
                return -EBADMSG;
        s = json_string_value(v);
        if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
                return -EBADMSG;
        s += 2;
        n = strlen(s);
        if (n == 0 || n > 8 || n != json_string_length(v) - 2)
                return -EBADMSG;
        for (; *s; s++) {
                int c = tolower((unsigned char)*s);

                if (!isxdigit(c))
                        return -EBADMSG;
                x = x << 4 | (uint32_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
        }
        if (x > max)
                return -EBADMSG;
        *ret = x;
        return 0;
}

static int parse_domid(const json_t *v, uint32_t *ret)
{
        json_int_t x;

        if (!json_is_integer(v))
                return -EBADMSG;
        x = json_integer_value(v);
        if (x < 0 || x > (json_int_t)PG_DOMID_GUEST_MAX)
                return -EBADMSG;
        *ret = (uint32_t)x;
        return 0;
}

static int parse_uuid(const json_t *v, char ret[static HV_UUID_MAX])
{
        return pg_uuid_normalize(json_string_value(v), ret) < 0 ? -EBADMSG : 0;
}

/* A string of at most size-1 bytes without NUL (and not empty unless may_be_empty). */
static int parse_name(const json_t *v, bool may_be_empty, char *ret, size_t size)
{
        size_t n;

        if (!json_is_string(v))
                return -EBADMSG;
        n = json_string_length(v);
        if ((n == 0 && !may_be_empty) || n >= size || strlen(json_string_value(v)) != n)
                return -EBADMSG;
        memcpy(ret, json_string_value(v), n + 1);
        return 0;
}

static int parse_type(const json_t *v, enum pg_domain_type *ret)
{
        return pg_domain_type_parse(json_string_value(v), ret) < 0 ? -EBADMSG : 0;
}

static int check_keys(const json_t *obj, const char *const *allowed)
{
        const char *key;

        if (!json_is_object(obj))
                return -EBADMSG;
        return pg_wire_check_keys(obj, allowed, &key);
}

static int parse_domain(const json_t *obj, struct sim_domain *ret)
{
        static const char *const keys[] = {
                "domid", "name", "uuid", "type", "dying", "iommu", NULL,
        };
        struct sim_domain d = {.iommu = true};
        const json_t *v;
        int r;

        r = check_keys(obj, keys);
        if (r < 0)
                return r;
        r = parse_domid(json_object_get(obj, "domid"), &d.info.domid);
        if (r < 0)
                return r;
        /* "": a domain with no name in xenstore. */
        r = parse_name(json_object_get(obj, "name"), true, d.info.name, sizeof(d.info.name));
        if (r < 0)
                return r;
        r = parse_uuid(json_object_get(obj, "uuid"), d.info.uuid);
        if (r < 0)
                return r;
        r = parse_type(json_object_get(obj, "type"), &d.info.type);
        if (r < 0)
                return r;
        v = json_object_get(obj, "dying");
        if (v) {
                if (!json_is_boolean(v))
                        return -EBADMSG;
                d.info.dying = json_is_true(v);
        }
        v = json_object_get(obj, "iommu");
        if (v) {
                if (!json_is_boolean(v))
                        return -EBADMSG;
                d.iommu = json_is_true(v);
        }
        *ret = d;
        return 0;
}

static int parse_device(json_t *obj, struct sim_device *ret)
{
        static const char *const keys[] = {
                "bdf",
                "vendor",
                "device",
                "class",
                "subsystem_vendor",
                "subsystem_device",
                "driver",
                "group",
                "reset",
                "assigned_to",
                "serial",
                "path",
                "rdm_regions",
                NULL,
        };
        struct sim_device d = {.owner = HV_DOMID_DOM0, .rdm_regions = -1};
        const json_t *v;
        uint32_t x;
        int r;

        r = check_keys(obj, keys);
        if (r < 0)
                return r;
        v = json_object_get(obj, "bdf");
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            pg_bdf_parse(json_string_value(v), &d.sbdf) < 0)
                return -EBADMSG;
        if (parse_hex(json_object_get(obj, "vendor"), 0xffff, &x) < 0)
                return -EBADMSG;
        d.vendor = (uint16_t)x;
        if (parse_hex(json_object_get(obj, "device"), 0xffff, &x) < 0)
                return -EBADMSG;
        d.device = (uint16_t)x;
        if (parse_hex(json_object_get(obj, "class"), 0xffffff, &d.class) < 0)
                return -EBADMSG;
        v = json_object_get(obj, "subsystem_vendor");
        if (v) {
                if (parse_hex(v, 0xffff, &x) < 0)
                        return -EBADMSG;
                d.subsystem_vendor = (uint16_t)x;
        }
        v = json_object_get(obj, "subsystem_device");
        if (v) {
                if (parse_hex(v, 0xffff, &x) < 0)
                        return -EBADMSG;
                d.subsystem_device = (uint16_t)x;
        }
        v = json_object_get(obj, "driver");
        if (v && !json_is_null(v) && parse_name(v, false, d.driver, sizeof(d.driver)) < 0)
                return -EBADMSG;
        v = json_object_get(obj, "group");
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return -EBADMSG;
        d.group = json_integer_value(v);
        v = json_object_get(obj, "reset");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) ||
                    (!streq(json_string_value(v), "flr") && !streq(json_string_value(v), "bus")))
                        return -EBADMSG;
                snprintf(d.reset, sizeof(d.reset), "%s", json_string_value(v));
        }
        v = json_object_get(obj, "serial");
        if (v) {
                const char *s = json_string_value(v);
                if (!s || strlen(s) != HV_SERIAL_MAX - 1 || json_string_length(v) != HV_SERIAL_MAX - 1)
                        return -EBADMSG;
                for (size_t i = 0; i < HV_SERIAL_MAX - 1; i++)
                        if (i % 3 == 2 ? s[i] != '-'
                                       : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                                return -EBADMSG;
                memcpy(d.serial, s, HV_SERIAL_MAX);
        }
        v = json_object_get(obj, "path");
        if (v && parse_name(v, false, d.path, sizeof(d.path)) < 0)
                return -EBADMSG;
        v = json_object_get(obj, "rdm_regions");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > INT_MAX)
                        return -EBADMSG;
                d.rdm_regions = (int)json_integer_value(v);
        }
        v = json_object_get(obj, "assigned_to");
        if (json_is_string(v)) {
                if (!streq(json_string_value(v), "io"))
                        return -EBADMSG;
                d.owner = HV_DOMID_IO;
        } else if (v && !json_is_null(v)) {
                r = parse_domid(v, &d.owner);
                if (r < 0)
                        return r;
        }
        *ret = d;
        return 0;
}

/* faults: { OP: { BDF: "ENAME" } } */
static int parse_faults(const json_t *faults)
{
        const char *op;
        json_t *per_op;

        if (!json_is_object(faults))
                return -EBADMSG;
        json_object_foreach((json_t *)faults, op, per_op)
        {
                const char *bdf;
                json_t *name;

                if (!in_list(fault_ops, op) || !json_is_object(per_op))
                        return -EBADMSG;
                json_object_foreach(per_op, bdf, name)
                {
                        uint32_t sbdf;

                        if (pg_bdf_parse(bdf, &sbdf) < 0 || !json_is_string(name) ||
                            pg_errno_lookup(json_string_value(name)) < 0)
                                return -EBADMSG;
                }
        }
        return 0;
}

static int parse_calls(const json_t *calls)
{
        const char *name;
        json_t *count;

        if (!json_is_object(calls))
                return -EBADMSG;
        json_object_foreach((json_t *)calls, name,
                            count) if (!in_list(call_names, name) || !json_is_integer(count) ||
                                       json_integer_value(count) < 0) return -EBADMSG;
        return 0;
}

struct sim_domain *pgd_sim_find_domain(struct sim_host *h, uint32_t domid)
{
        for (size_t i = 0; i < h->n_domains; i++)
                if (h->domains[i].info.domid == domid)
                        return &h->domains[i];
        return NULL;
}

struct sim_device *pgd_sim_find_device(struct sim_host *h, uint32_t sbdf)
{
        size_t lo = 0, hi = h->n_devices;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (h->devices[h->by_sbdf[mid]].sbdf < sbdf)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < h->n_devices && h->devices[h->by_sbdf[lo]].sbdf == sbdf)
                return &h->devices[h->by_sbdf[lo]];
        return NULL;
}

/* v as one line of compact JSON (the wire's serialiser: one pass), without its newline. */
static char *compact(const json_t *v)
{
        char *text = NULL;
        size_t len = 0;

        if (pg_wire_dump(v, &text, &len) < 0)
                return NULL;
        text[len - 1] = '\0';
        return text;
}

/* Set one key of a device: its text is parsed, changed and written again. Takes v. */
static int device_set(struct sim_device *dev, const char *key, json_t *v)
{
        _cleanup_(json_decrefp) json_t *o = NULL;
        char *text;

        if (!v)
                return -ENOMEM;
        o = json_loads(dev->text, 0, NULL);
        if (!o || json_object_set_new(o, key, v) < 0) {
                if (!o)
                        json_decref(v);
                return -ENOMEM;
        }
        text = compact(o);
        if (!text)
                return -ENOMEM;
        free(dev->text);
        dev->text = text;
        return 0;
}

/*
 * The owner changes on every assign and deassign: its value is replaced in the
 * device's text, which is compact JSON of a flat object with only known keys
 * (pgd_sim_host_parse() refuses others), so the key cannot appear inside a string:
 * there every quote is escaped. Without the key, the text is parsed.
 */
int pgd_sim_set_owner(struct sim_device *dev, uint32_t owner)
{
        static const char key[] = "\"assigned_to\":";
        char value[16];
        const char *at = strstr(dev->text, key);
        int r;

        if (owner == HV_DOMID_DOM0)
                snprintf(value, sizeof(value), "null");
        else if (owner == HV_DOMID_IO)
                snprintf(value, sizeof(value), "\"io\"");
        else
                snprintf(value, sizeof(value), "%" PRIu32, owner);
        if (at) {
                const char *v = at + strlen(key), *end = v + strcspn(v, ",}");
                char *text = NULL;

                if (asprintf(&text, "%.*s%s%s", (int)(v - dev->text), dev->text, value, end) < 0)
                        return -ENOMEM;
                free(dev->text);
                dev->text = text;
        } else {
                r = device_set(dev, "assigned_to", json_loads(value, JSON_DECODE_ANY, NULL));
                if (r < 0)
                        return r;
        }
        dev->owner = owner;
        return 0;
}

int pgd_sim_set_driver(struct sim_device *dev, const char *driver)
{
        int r = device_set(dev, "driver", driver[0] ? json_string(driver) : json_null());

        if (r < 0)
                return r;
        snprintf(dev->driver, sizeof(dev->driver), "%s", driver);
        return 0;
}

static int compare_sbdf(const void *a, const void *b, void *userdata)
{
        const struct sim_device *v = userdata;
        uint32_t x = v[*(const size_t *)a].sbdf, y = v[*(const size_t *)b].sbdf;

        return x < y ? -1 : x > y;
}

/* Parse and validate a whole host file. Takes no lock: the caller holds it. */
int pgd_sim_host_parse(const char *text, size_t len, struct sim_host **ret)
{
        static const char *const keys[] = {
                "iommu", "interrupt_remapping", "devices", "domains", "faults", "calls",
                "root_devices", NULL,
        };
        _cleanup_(pgd_sim_host_freep) struct sim_host *h = NULL;
        json_error_t error;
        json_t *v;
        size_t i;
        int r;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
        if (!h->root)
                return -EBADMSG;
        r = check_keys(h->root, keys);
        if (r < 0)
                return r;

        v = json_object_get(h->root, "iommu");
        if (!json_is_boolean(v))
                return -EBADMSG;
        h->iommu = json_is_true(v);
        v = json_object_get(h->root, "interrupt_remapping");
        if (!v || json_is_null(v))
                h->interrupt_remapping = -1;
        else if (json_is_boolean(v))
                h->interrupt_remapping = json_is_true(v);
        else
                return -EBADMSG;

        v = json_object_get(h->root, "domains");
        if (v) {
                if (!json_is_array(v))
                        return -EBADMSG;
                h->n_domains = json_array_size(v);
                h->domains = calloc(h->n_domains ? h->n_domains : 1, sizeof(*h->domains));
                if (!h->domains)
                        return -ENOMEM;
                for (i = 0; i < h->n_domains; i++) {
                        r = parse_domain(json_array_get(v, i), &h->domains[i]);
                        if (r < 0)
                                return r;
                        for (size_t j = 0; j < i; j++)
                                if (h->domains[j].info.domid == h->domains[i].info.domid ||
                                    (h->domains[i].info.name[0] &&
                                     streq(h->domains[j].info.name, h->domains[i].info.name)))
                                        return -EBADMSG;
                }
        }

        v = json_object_get(h->root, "devices");
        if (v) {
                if (!json_is_array(v))
                        return -EBADMSG;
                h->n_devices = json_array_size(v);
                h->devices = calloc(h->n_devices ? h->n_devices : 1, sizeof(*h->devices));
                h->by_sbdf = calloc(h->n_devices ? h->n_devices : 1, sizeof(*h->by_sbdf));
                if (!h->devices || !h->by_sbdf)
                        return -ENOMEM;
                for (i = 0; i < h->n_devices; i++) {
                        r = parse_device(json_array_get(v, i), &h->devices[i]);
                        if (r < 0)
                                return r;
                        h->devices[i].text = compact(json_array_get(v, i));
                        if (!h->devices[i].text)
                                return -ENOMEM;
                        h->by_sbdf[i] = i;
                }
                json_array_clear(v); /* the texts are the devices now */
                qsort_r(h->by_sbdf, h->n_devices, sizeof(*h->by_sbdf), compare_sbdf, h->devices);
                for (i = 1; i < h->n_devices; i++)
                        if (h->devices[h->by_sbdf[i - 1]].sbdf == h->devices[h->by_sbdf[i]].sbdf)
                                return -EBADMSG;
        }

        v = json_object_get(h->root, "root_devices");
        if (v) {
                if (!json_is_array(v))
                        return -EBADMSG;
                h->root_devices = calloc(json_array_size(v) + 1, sizeof(*h->root_devices));
                if (!h->root_devices)
                        return -ENOMEM;
                for (i = 0; i < json_array_size(v); i++) {
                        const char *s = json_string_value(json_array_get(v, i));
                        uint32_t sbdf;
                        if (!s || pg_bdf_parse(s, &sbdf) < 0)
                                return -EBADMSG;
                        h->root_devices[h->n_root_devices++] = sbdf;
                }
        }

        h->faults = json_object_get(h->root, "faults");
        if (h->faults) {
                r = parse_faults(h->faults);
                if (r < 0)
                        return r;
        }
        h->calls = json_object_get(h->root, "calls");
        if (h->calls) {
                r = parse_calls(h->calls);
                if (r < 0)
                        return r;
        } else {
                h->calls = json_object();
                if (!h->calls || json_object_set_new(h->root, "calls", h->calls) < 0)
                        return -ENOMEM;
        }

        /*
         * A destroyed or dying domain's devices are quarantined, as Xen does:
         * it releases them while the domain dies, before it is gone. Only in
         * memory: the next write persists it.
         */
        for (i = 0; i < h->n_devices; i++) {
                uint32_t owner = h->devices[i].owner;
                const struct sim_domain *dom = pgd_sim_find_domain(h, owner);

                if (owner != HV_DOMID_DOM0 && owner != HV_DOMID_IO && (!dom || dom->info.dying)) {
                        r = pgd_sim_set_owner(&h->devices[i], HV_DOMID_IO);
                        if (r < 0)
                                return r;
                        h->dirty = true;
                }
        }

        *ret = TAKE_PTR(h);
        return 0;
}

struct text {
        char *buf;
        size_t len, cap;
        bool oom;
};

static void text_put(struct text *t, const char *s, size_t n)
{
        if (t->oom)
                return;
        if (t->len + n + 1 > t->cap) {
                size_t cap = t->cap ? t->cap : 4096;
                while (cap < t->len + n + 1)
                        cap *= 2;
                char *p = realloc(t->buf, cap);
                if (!p) {
                        t->oom = true;
                        return;
                }
                t->buf = p;
                t->cap = cap;
        }
        memcpy(t->buf + t->len, s, n);
        t->len += n;
        t->buf[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
        text_put(t, s, strlen(s));
}

/* "[" one element per line "]", each element's text kept in *cache until it changes. */
static void text_list(struct text *t, size_t n, json_t *(*elem)(struct sim_host *h, size_t i),
                      char **(*cache)(struct sim_host *h, size_t i), struct sim_host *h)
{
        text_puts(t, "[");
        for (size_t i = 0; i < n; i++) {
                char **c = cache(h, i);
                if (!*c)
                        *c = compact(elem(h, i));
                if (!*c) {
                        t->oom = true;
                        return;
                }
                text_puts(t, i ? ",\n    " : "\n    ");
                text_puts(t, *c);
        }
        text_puts(t, n ? "\n  ]" : "]");
}

static json_t *device_elem(struct sim_host *h, size_t i)
{
        return NULL; /* a device always has its text */
}

static char **device_cache(struct sim_host *h, size_t i)
{
        return &h->devices[i].text;
}

static json_t *domain_elem(struct sim_host *h, size_t i)
{
        return json_array_get(json_object_get(h->root, "domains"), i);
}

static char **domain_cache(struct sim_host *h, size_t i)
{
        return &h->domains[i].text;
}

/*
 * The file's text: one line per device and per domain. Their texts are kept
 * until they change, so a write costs little more than the copy.
 */
int pgd_sim_host_format(struct sim_host *h, char **ret, size_t *ret_len)
{
        struct text t = {};
        const char *key;
        json_t *value;
        bool first = true;

        /* Room for what the last text took, and a little: no copies while it grows. */
        if (h->text_len > 0) {
                t.cap = h->text_len + h->text_len / 8 + 256;
                t.buf = malloc(t.cap);
                if (!t.buf)
                        return -ENOMEM;
        }
        text_puts(&t, "{");
        json_object_foreach(h->root, key, value)
        {
                text_puts(&t, first ? "\n  \"" : ",\n  \"");
                text_puts(&t, key); /* one of the keys pgd_sim_host_parse() allows */
                text_puts(&t, "\": ");
                first = false;
                if (streq(key, "devices") && json_is_array(value))
                        text_list(&t, h->n_devices, device_elem, device_cache, h);
                else if (streq(key, "domains") && json_is_array(value))
                        text_list(&t, h->n_domains, domain_elem, domain_cache, h);
                else {
                        _cleanup_(freep) char *v = compact(value);
                        if (!v)
                                t.oom = true;
                        else
                                text_puts(&t, v);
                }
        }
        text_puts(&t, "\n}\n");
        if (t.oom) {
                free(t.buf);
                return -ENOMEM;
        }
        *ret = t.buf;
        *ret_len = t.len;
        h->text_len = t.len;
        return 0;
}

/*
 * Keep the file now in place open (read-only: closing it is no write) as the
 * one in memory, with its identity: while it is open, its inode number cannot
 * name another file.
 */
/* ---- counters and faults ---- */
int pgd_sim_count_call(struct sim_host *h, const char *name)
{
        json_t *v = json_object_get(h->calls, name);
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

        if (n < LLONG_MAX) /* saturate rather than overflow (json_int_t is long long) */
                n++;
        h->dirty = true;
        if (json_is_integer(v))
                return json_integer_set(v, n) < 0 ? -ENOMEM : 0;
        if (json_object_set_new(h->calls, name, json_integer(n)) < 0)
                return -ENOMEM;
        return 0;
}

int pgd_sim_fault(struct sim_host *h, const char *op, uint32_t sbdf)
{
        json_t *per_op = h->faults ? json_object_get(h->faults, op) : NULL;
        const char *bdf;
        json_t *name;

        if (!per_op)
                return 0;
        json_object_foreach(per_op, bdf, name)
        {
                uint32_t x;

                if (pg_bdf_parse(bdf, &x) >= 0 && x == sbdf) {
                        int e = pg_errno_lookup(json_string_value(name));
                        return e > 0 ? -e : -EIO;
                }
        }
        return 0;
}
