/* SPDX-License-Identifier: MIT */
/*
 * hv-sim: a simulated host kept in one JSON file (DESIGN.md "Simulated host
 * file"). The file is the whole hypervisor: every change is in the file
 * before the call returns, so the simulated host survives a daemon crash
 * exactly as a real hypervisor would, and tests can change it from outside.
 *
 * Locking protocol, shared with anyone who edits the file:
 *   readers take a shared flock on FILE.lock, read FILE, unlock;
 *   writers take an exclusive flock on FILE.lock, re-read FILE, write
 *   FILE.tmp, fsync it, rename it over FILE, fsync the directory, unlock
 *   (the daemon, while it holds the lock, exchanges FILE.tmp with FILE
 *   instead: also one atomic rename; see host_save()).
 *
 * The backend keeps the host it last read or wrote in memory, with the
 * identity of that file (inode, size, times; the file is kept open, so its
 * inode number cannot be reused meanwhile). A call takes the lock as the
 * protocol says and compares the file's identity with it: the file is read
 * and parsed again only when someone else replaced it. A write serialises
 * only what changed (each device's text is kept until the device changes).
 *
 * hold() takes the exclusive lock and keeps it until flush(): meanwhile no
 * one else may write, so the host in memory is the host, calls that only
 * count themselves ("calls") are counted in memory, the writes reuse two open
 * files (host_save_held()) and the directory is not watched (it would only
 * report this backend's own renames); flush() writes the counts (if any),
 * watches again and unlocks. The daemon holds around its requests and flushes
 * within 5 ms (HOST_FLUSH_USEC, server.c), so a request costs at most one
 * write of the file for its change, the counts of many requests share one,
 * and anyone who reads the file under the lock sees every call counted.
 * A change to the host itself (assign, deassign, prepare, unprepare) is
 * written before its call returns, held or not.
 *
 * Parsing is strict (-EBADMSG for anything else): duplicate or unknown keys,
 * wrong types, bad BDFs, ids or UUIDs. Required are "iommu"; for a device
 * bdf, vendor, device, class and group; for a domain domid, name (may be ""
 * when the domain has no name in xenstore), uuid and type. Everything else
 * defaults: driver, reset and assigned_to null, no faults, counters 0.
 *
 * Answers follow real Xen 4.17 (shared/xenlab/README.md, and
 * tests/scenarios/hv-calls.txt, which the system suite runs on real Xen):
 *   - a domain that does not exist: -ESRCH, before anything else (the domctl
 *     looks the domain up first), with or without an IOMMU;
 *   - no IOMMU on the host: test_assign, assign, deassign and device_group
 *     return -EOPNOTSUPP;
 *   - test_assign: domid 0 -EINVAL (self-assignment), unknown domain -ESRCH,
 *     domain without IOMMU context -EOPNOTSUPP, device unknown or assigned to a
 *     guest -EINVAL, otherwise 0 (dom0-owned or quarantined; the dom0 driver
 *     is not looked at);
 *   - assign: -ESRCH, -EOPNOTSUPP (domain without IOMMU), -EINVAL (dying
 *     domain), -ENODEV (no such device), -EBUSY (assigned to any guest);
 *   - deassign: -ENODEV when the device is not assigned to that domain; a
 *     guest's device goes to quarantine ("io"), a quarantined device
 *     deassigned from DOMID_IO goes back to dom0 (null);
 *   - device_group on an unknown device: an empty group, as Xen answers;
 *   - a device assigned to a domain that is no longer in "domains" (destroyed)
 *     or that is dying is quarantined, as Xen does; this is applied on every
 *     read and persisted on the next write.
 *
 * sysfs side: pci_reset of a device without a reset method is -ENOTTY (what the
 * kernel's sysfs "reset" attribute gives when no method exists); pci_prepare
 * quarantines the device and counts calls.quarantine, not calls.assign, so
 * that "calls.assign == 0" still proves no guest assignment was tried;
 * pci_unprepare counts calls.unquarantine.
 *
 * Fault injection: faults.OP.BDF = "EIO" (any errno name) makes OP fail with
 * that errno for that device, after the call was counted and before anything
 * else is looked at. OP is test_assign, assign, deassign, device_group, reset,
 * prepare or unprepare.
 *
 * Test-only: $PASSGUARD_SIM_XEN_PROBE_ROOT is prepended to /proc/xen and
 * /dev/xen/privcmd when probing for a real Xen host, so that the refusal to
 * run on one can itself be tested. Production never sets it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "hv.h"
#include "pg-file.h"
#include "pg-util.h"
#include "pg-wire.h"

#define SIM_FILE_MAX (8 * 1024 * 1024)

struct sim_host;

struct hv {
        char *path;      /* the host file, absolute */
        char *lock_path; /* FILE.lock */
        char *tmp_path;  /* FILE.tmp */
        char *dir;       /* its directory (watched) */
        char *base;      /* its name in dir */
        int lock_fd;     /* FILE.lock, read-only, open for the backend's lifetime */
        int inotify_fd;
        int watch_wd;      /* the directory's watch, -1 while held (see sim_hold()) */
        ino_t written_ino; /* the inode of the last file this backend renamed into place */
        /*
         * The host as the file last read or written had it (NULL when the
         * file could not be read), that file kept open, and its identity.
         */
        struct sim_host *host;
        int host_fd;
        bool host_fd_writable; /* host_fd is a file this backend wrote (see host_save()) */
        struct stat host_st;
        bool stale;       /* someone else changed the file: read it again */
        bool held;        /* hold(): the exclusive lock is ours until flush() */
        bool pin_pending; /* written while held: pin the new file at flush() */
        /*
         * While held: the file this backend exchanged into place last, and the
         * one at FILE.tmp that the next write goes into, both open for writing
         * (-1: none yet), and their sizes.
         */
        int cur_fd, spare_fd;
        off_t cur_size, spare_size;
        ino_t cur_ino, spare_ino;
        bool no_exchange; /* the file system cannot exchange: write as without a hold */
        int dir_fd;       /* the directory, for its fsync */
        /*
         * The watch's events: renames of ours not yet drained (their
         * IN_MOVED_TO need no look at the file), and a change by someone
         * else that a call found first (the file was not ours any more).
         */
        unsigned own_renames;
        bool outside_change;
};

struct sim_device {
        /*
         * The device as one line of JSON: the file's text of it. A host of
         * thousands of devices keeps these lines, not their parse trees.
         */
        char *text;
        uint32_t sbdf;
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class;
        char driver[HV_DRIVER_MAX];   /* "" for none */
        json_int_t group;
        char reset[8];                /* "flr", "bus" or "" */
        uint32_t owner;               /* HV_DOMID_DOM0, HV_DOMID_IO or a guest */
};

struct sim_domain {
        struct hv_domain info;
        bool iommu;
        char *text; /* serialised, NULL until needed (the daemon never changes a domain) */
};

struct sim_host {
        json_t *root;
        bool iommu;
        int interrupt_remapping;
        struct sim_device *devices; /* in file order */
        size_t n_devices;
        size_t *by_sbdf; /* indices into devices, by sbdf */
        struct sim_domain *domains;
        size_t n_domains;
        json_t *faults;  /* borrowed, or NULL */
        json_t *calls;   /* borrowed, always set */
        bool changed;    /* the host changed: written before the call returns */
        bool dirty;      /* counters (or a derived quarantine) not in the file yet */
};

static const char *const fault_ops[] = {
        "test_assign", "assign", "deassign", "device_group", "reset", "prepare", "unprepare", NULL,
};
static const char *const call_names[] = {
        "test_assign", "assign",  "deassign",     "device_group",
        "reset",       "quarantine", "unquarantine", NULL,
};

static struct sim_host *sim_host_free(struct sim_host *h)
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
        free(h->domains);
        free(h);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct sim_host *, sim_host_free);

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
        struct sim_domain d = { .iommu = true };
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
                "bdf",    "vendor", "device", "class",       "subsystem_vendor", "subsystem_device",
                "driver", "group",  "reset",  "assigned_to", NULL,
        };
        struct sim_device d = {.owner = HV_DOMID_DOM0};
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
        json_object_foreach((json_t *)faults, op, per_op) {
                const char *bdf;
                json_t *name;

                if (!in_list(fault_ops, op) || !json_is_object(per_op))
                        return -EBADMSG;
                json_object_foreach(per_op, bdf, name) {
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
        json_object_foreach((json_t *)calls, name, count)
                if (!in_list(call_names, name) || !json_is_integer(count) ||
                    json_integer_value(count) < 0)
                        return -EBADMSG;
        return 0;
}

static struct sim_domain *find_domain(struct sim_host *h, uint32_t domid)
{
        for (size_t i = 0; i < h->n_domains; i++)
                if (h->domains[i].info.domid == domid)
                        return &h->domains[i];
        return NULL;
}

static struct sim_device *find_device(struct sim_host *h, uint32_t sbdf)
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
 * (host_parse() refuses others), so the key cannot appear inside a string:
 * there every quote is escaped. Without the key, the text is parsed.
 */
static int set_owner(struct sim_device *dev, uint32_t owner)
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

static int set_driver(struct sim_device *dev, const char *driver)
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
static int host_parse(const char *text, size_t len, struct sim_host **ret)
{
        static const char *const keys[] = {
                "iommu", "interrupt_remapping", "devices", "domains", "faults", "calls", NULL,
        };
        _cleanup_(sim_host_freep) struct sim_host *h = NULL;
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
                const struct sim_domain *dom = find_domain(h, owner);

                if (owner != HV_DOMID_DOM0 && owner != HV_DOMID_IO && (!dom || dom->info.dying)) {
                        r = set_owner(&h->devices[i], HV_DOMID_IO);
                        if (r < 0)
                                return r;
                        h->dirty = true;
                }
        }

        *ret = TAKE_PTR(h);
        return 0;
}

/* ---- the file and its lock ---- */

static int lock_fd(int fd, int op)
{
        while (flock(fd, op) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

/* Take the lock as the protocol says, unless hold() has it already. */
static int host_lock(struct hv *hv, int op)
{
        return hv->held ? 0 : lock_fd(hv->lock_fd, op);
}

static void host_unlock(struct hv *hv)
{
        if (!hv->held)
                (void)flock(hv->lock_fd, LOCK_UN);
}

static void host_forget(struct hv *hv)
{
        hv->host = sim_host_free(hv->host);
        hv->host_fd = safe_close(hv->host_fd);
        hv->host_fd_writable = false;
        hv->stale = false;
        hv->pin_pending = false;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * With the lock taken: make hv->host the host the file holds now. The file is
 * read again only when it is not the one in memory (or someone else changed
 * it, as the watch said); while held, the host in memory is the host.
 */
static int host_refresh(struct hv *hv, struct sim_host **ret)
{
        _cleanup_(freep) char *text = NULL;
        _cleanup_(closep) int fd = -1;
        struct sim_host *h = NULL;
        struct stat st;
        size_t len = 0;
        int r;

        if (hv->host && !hv->stale) {
                if (hv->held) {
                        *ret = hv->host;
                        return 0;
                }
                if (stat(hv->path, &st) < 0) {
                        r = -errno;
                        host_forget(hv);
                        return r;
                }
                if (same_file(&st, &hv->host_st)) {
                        *ret = hv->host;
                        return 0;
                }
        }
        if (hv->host && !hv->stale)
                hv->outside_change = true; /* found before the watch said so */

        host_forget(hv);
        fd = open(hv->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        r = pg_read_all(fd, SIM_FILE_MAX, &text, &len);
        if (r < 0)
                return r == -EFBIG ? -EBADMSG : r;
        r = host_parse(text, len, &h);
        if (r < 0)
                return r;
        hv->host = h;
        hv->host_fd = TAKE_FD(fd);
        hv->host_fd_writable = false;
        hv->host_st = st;
        *ret = h;
        return 0;
}

/* A read: the host in memory, checked against the file under a shared lock. */
static int host_read(struct hv *hv, struct sim_host **ret)
{
        int r = host_lock(hv, LOCK_SH);

        if (r < 0)
                return r;
        r = host_refresh(hv, ret);
        host_unlock(hv);
        return r;
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
static int host_format(struct sim_host *h, char **ret, size_t *ret_len)
{
        struct text t = {};
        const char *key;
        json_t *value;
        bool first = true;

        text_puts(&t, "{");
        json_object_foreach(h->root, key, value)
        {
                text_puts(&t, first ? "\n  \"" : ",\n  \"");
                text_puts(&t, key); /* one of the keys host_parse() allows */
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
        return 0;
}

/*
 * Keep the file now in place open (read-only: closing it is no write) as the
 * one in memory, with its identity: while it is open, its inode number cannot
 * name another file.
 */
static int host_pin(struct hv *hv)
{
        _cleanup_(closep) int fd = -1;
        bool writable = hv->cur_fd >= 0;
        struct stat st;

        hv->pin_pending = false;
        /* Written under the hold: the file is open already (for writing: see host_save()). */
        fd = writable ? TAKE_FD(hv->cur_fd) : open(hv->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_ino != hv->written_ino) {
                host_forget(hv); /* the next call reads the file */
                return 0;
        }
        safe_close(hv->host_fd);
        hv->host_fd = TAKE_FD(fd);
        hv->host_fd_writable = writable;
        hv->host_st = st;
        return 0;
}

static int write_at_start(int fd, const char *text, size_t len)
{
        size_t off = 0;

        while (off < len) {
                ssize_t n = pwrite(fd, text + off, len - off, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t)n;
        }
        return 0;
}

/* The write is done: the rename is the commit point. */
static void host_saved(struct hv *hv, struct sim_host *h, ino_t ino)
{
        h->changed = h->dirty = false;
        hv->written_ino = ino;
        if (hv->watch_wd >= 0)
                hv->own_renames++; /* its event is to come */
        /*
         * From here on the call has happened, as a hypercall that returned
         * would have. Syncing the directory is best effort, so that the caller
         * never believes the opposite.
         */
        if (hv->dir_fd >= 0)
                (void)fsync(hv->dir_fd);
}

/*
 * While held, FILE.tmp is not a new file each time: the file that is there
 * (the host before the last write) is written over, synced and exchanged with
 * FILE (renameat2 RENAME_EXCHANGE, an atomic rename as the protocol asks).
 * Both files stay open for writing until flush(), so that a write costs no
 * open, no close and no new inode; the one in place then stays open as the
 * pinned file, and FILE.tmp is removed. Returns 1 when the file system cannot
 * exchange (nothing was renamed: write as without a hold).
 */
static int host_save_held(struct hv *hv, struct sim_host *h, const char *text, size_t len)
{
        struct stat st;
        ino_t ino;
        int fd, r;

        if (hv->spare_fd < 0) {
                hv->spare_fd = open(hv->tmp_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
                if (hv->spare_fd < 0)
                        return -errno;
                if (fstat(hv->spare_fd, &st) < 0)
                        return -errno;
                hv->spare_size = st.st_size;
                hv->spare_ino = st.st_ino;
        }
        fd = hv->spare_fd;
        r = write_at_start(fd, text, len);
        if (r >= 0 && hv->spare_size > (off_t)len && ftruncate(fd, (off_t)len) < 0)
                r = -errno;
        if (r >= 0)
                hv->spare_size = (off_t)len;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                return r;
        ino = hv->spare_ino;
        if (renameat2(AT_FDCWD, hv->tmp_path, AT_FDCWD, hv->path, RENAME_EXCHANGE) < 0) {
                if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
                        hv->no_exchange = true;
                        hv->spare_fd = safe_close(hv->spare_fd);
                        return 1;
                }
                return -errno;
        }
        /* The file written is in place; the one it replaced is FILE.tmp now. */
        hv->spare_fd = hv->cur_fd;
        hv->spare_size = hv->cur_size;
        hv->spare_ino = hv->cur_ino;
        hv->cur_fd = fd;
        hv->cur_size = (off_t)len;
        hv->cur_ino = ino;
        if (hv->spare_fd < 0 && hv->host_fd_writable && hv->host_st.st_ino != ino) {
                /* The first write of this hold moved the pinned file, one of ours, away. */
                hv->spare_fd = TAKE_FD(hv->host_fd);
                hv->spare_size = hv->host_st.st_size;
                hv->spare_ino = hv->host_st.st_ino;
                hv->host_fd_writable = false;
        }
        hv->pin_pending = true;
        host_saved(hv, h, ino);
        return 0;
}

/*
 * Write the host durably: FILE.tmp, fsync, rename over FILE, fsync the
 * directory (held: see host_save_held()). The new file is pinned at once, or
 * at flush() when held: no one else may replace it before.
 */
static int host_save(struct hv *hv, struct sim_host *h)
{
        _cleanup_(freep) char *text = NULL;
        struct stat st;
        size_t len;
        int r;

        r = host_format(h, &text, &len);
        if (r < 0)
                return r;
        if (hv->held && !hv->no_exchange) {
                r = host_save_held(hv, h, text, len);
                if (r <= 0)
                        return r;
        }

        /* Closed before the rename, so that a watcher never sees a write to FILE itself. */
        r = pg_durable_write(AT_FDCWD, hv->tmp_path, text, len, 0644, &st);
        if (r < 0)
                return r;
        /*
         * The rename is the commit point: from there on the call has
         * happened, as a hypercall that returned would have, so the
         * directory's sync (host_saved()) is best effort and not
         * pg_durable_rename(), which would report it as the call's failure.
         */
        if (rename(hv->tmp_path, hv->path) < 0) {
                r = -errno;
                (void)unlink(hv->tmp_path);
                return r;
        }
        host_saved(hv, h, st.st_ino);
        if (hv->held) {
                hv->pin_pending = true;
                return 0;
        }
        return host_pin(hv);
}

/* ---- counters and faults ---- */
static int count_call(struct sim_host *h, const char *name)
{
        json_t *v = json_object_get(h->calls, name);
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

        if (n < LLONG_MAX)   /* saturate rather than overflow (json_int_t is long long) */
                n++;
        h->dirty = true;
        if (json_is_integer(v))
                return json_integer_set(v, n) < 0 ? -ENOMEM : 0;
        if (json_object_set_new(h->calls, name, json_integer(n)) < 0)
                return -ENOMEM;
        return 0;
}

/* The injected errno for op on sbdf (negative), or 0. */
static int fault(struct sim_host *h, const char *op, uint32_t sbdf)
{
        json_t *per_op = h->faults ? json_object_get(h->faults, op) : NULL;
        const char *bdf;
        json_t *name;

        if (!per_op)
                return 0;
        json_object_foreach(per_op, bdf, name) {
                uint32_t x;

                if (pg_bdf_parse(bdf, &x) >= 0 && x == sbdf) {
                        int e = pg_errno_lookup(json_string_value(name));
                        return e > 0 ? -e : -EIO;
                }
        }
        return 0;
}

/* ---- open / close / watch ---- */

static int probe_real_xen(void)
{
        static const char *const probes[] = { "/proc/xen", "/dev/xen/privcmd" };
        const char *root = secure_getenv("PASSGUARD_SIM_XEN_PROBE_ROOT");

        for (size_t i = 0; i < ELEMENTSOF(probes); i++) {
                char path[PATH_MAX];
                struct stat st;

                if (snprintf(path, sizeof(path), "%s%s", root ? root : "", probes[i]) >=
                    (int)sizeof(path))
                        return -EPERM;
                if (lstat(path, &st) >= 0)
                        return -EPERM;
                /* Fail closed: anything but "it is not there" counts as Xen. */
                if (errno != ENOENT && errno != ENOTDIR)
                        return -EPERM;
        }
        return 0;
}

static int sim_flush(struct hv *hv);

/* Watch the directory: renames into FILE, and anything else done to it. */
static int watch_dir(struct hv *hv)
{
        hv->watch_wd = inotify_add_watch(hv->inotify_fd, hv->dir,
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
        return hv->watch_wd < 0 ? -errno : 0;
}

static struct hv *sim_close(struct hv *hv)
{
        if (!hv)
                return NULL;
        (void)sim_flush(hv);
        host_forget(hv);
        safe_close(hv->lock_fd);
        safe_close(hv->inotify_fd);
        safe_close(hv->dir_fd);
        free(hv->path);
        free(hv->lock_path);
        free(hv->tmp_path);
        free(hv->dir);
        free(hv->base);
        free(hv);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct hv *, sim_close);

/*
 * -EINVAL without cfg->sim_host, -EPERM on a real Xen host, -ENOENT when the
 * file is missing, -EBADMSG when it is not a valid host file.
 */
static int sim_open(const struct hv_config *cfg, struct hv **ret)
{
        _cleanup_(sim_closep) struct hv *hv = NULL;
        struct sim_host *h;
        char *slash;
        int r;

        if (!cfg || !cfg->sim_host || !cfg->sim_host[0])
                return -EINVAL;
        r = probe_real_xen();
        if (r < 0)
                return r;

        hv = calloc(1, sizeof(*hv));
        if (!hv)
                return -ENOMEM;
        hv->lock_fd = -1;
        hv->inotify_fd = -1;
        hv->watch_wd = -1;
        hv->host_fd = -1;
        hv->cur_fd = -1;
        hv->spare_fd = -1;
        hv->dir_fd = -1;
        hv->path = realpath(cfg->sim_host, NULL);
        if (!hv->path)
                return -errno;
        if (asprintf(&hv->lock_path, "%s.lock", hv->path) < 0) {
                hv->lock_path = NULL;
                return -ENOMEM;
        }
        if (asprintf(&hv->tmp_path, "%s.tmp", hv->path) < 0) {
                hv->tmp_path = NULL;
                return -ENOMEM;
        }
        hv->dir = strdup(hv->path);
        if (!hv->dir)
                return -ENOMEM;
        slash = strrchr(hv->dir, '/');
        hv->base = strdup(slash + 1);
        if (!hv->base)
                return -ENOMEM;
        if (slash == hv->dir)
                slash[1] = '\0';
        else
                slash[0] = '\0';

        /* Read-only, so that closing it never looks like a write to a watcher. */
        hv->lock_fd = open(hv->lock_path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
        if (hv->lock_fd < 0)
                return -errno;
        hv->dir_fd = open(hv->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (hv->dir_fd < 0)
                return -errno;

        hv->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (hv->inotify_fd < 0)
                return -errno;
        r = watch_dir(hv);
        if (r < 0)
                return r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(hv);
        return 0;
}

static int sim_watch_fd(struct hv *hv)
{
        return hv->inotify_fd;
}

/*
 * Consume every pending event. Returns 1 when the host file was changed by
 * someone else (or deleted), 0 when the events were only this backend's own
 * writes or concerned other files of the directory.
 */
static int sim_watch_drain(struct hv *hv)
{
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool changed = false;

        for (;;) {
                ssize_t n = read(hv->inotify_fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                if (n == 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;

                        p += sizeof(*ev) + ev->len;
                        if (ev->mask & IN_Q_OVERFLOW) {
                                changed = true;
                                continue;
                        }
                        if (ev->len == 0 || !streq(ev->name, hv->base))
                                continue;
                        if (ev->mask & IN_MOVED_TO) {
                                struct stat st;

                                /*
                                 * Ours, while renames of ours are still to come: they
                                 * were made under the lock, and a change by someone
                                 * else before them was found when the lock was taken.
                                 */
                                if (hv->own_renames > 0)
                                        hv->own_renames--;
                                else if (stat(hv->path, &st) < 0 || st.st_ino != hv->written_ino)
                                        changed = true;
                        } else {
                                changed = true;
                        }
                }
        }
        if (hv->outside_change) {
                hv->outside_change = false;
                changed = true;
        }
        if (changed)
                hv->stale = true; /* even a change in place, which keeps the inode */
        return changed ? 1 : 0;
}

/* ---- holding the lock across calls ---- */

static int sim_hold(struct hv *hv)
{
        struct sim_host *h;
        int r;

        if (hv->held)
                return 0;
        r = lock_fd(hv->lock_fd, LOCK_EX);
        if (r < 0)
                return r;
        /* Checked once now; until flush() no one else may change the file. */
        (void)host_refresh(hv, &h);
        hv->held = true;
        /*
         * Nor need anyone be watched meanwhile: the watch would only report
         * this backend's own renames. What changed before is known already
         * (its events are queued, or host_refresh() found it).
         */
        if (hv->watch_wd >= 0 && inotify_rm_watch(hv->inotify_fd, hv->watch_wd) >= 0)
                hv->watch_wd = -1;
        return 0;
}

static int sim_flush(struct hv *hv)
{
        int r = 0;

        if (!hv->held)
                return 0;
        if (hv->host && (hv->host->dirty || hv->host->changed))
                r = host_save(hv, hv->host);
        hv->held = false;
        if (hv->pin_pending && hv->host)
                (void)host_pin(hv);
        hv->cur_fd = safe_close(hv->cur_fd);
        /* The host before the last write under the hold, exchanged with FILE. */
        hv->spare_fd = safe_close(hv->spare_fd);
        (void)unlink(hv->tmp_path);
        /* Watched again before anyone else may write. */
        if (hv->watch_wd < 0) {
                int k = watch_dir(hv);
                if (k < 0 && r >= 0)
                        r = k;
        }
        (void)flock(hv->lock_fd, LOCK_UN);
        return r;
}

/* ---- reads ---- */

static int sim_host_caps(struct hv *hv, struct hv_caps *ret)
{
        struct sim_host *h;
        int r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;
        *ret = (struct hv_caps){ .iommu = h->iommu, .interrupt_remapping = h->interrupt_remapping };
        return 0;
}

static int sim_domain_get(struct hv *hv, uint32_t domid, struct hv_domain *ret)
{
        struct sim_host *h;
        struct sim_domain *d;
        int r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;
        d = find_domain(h, domid);
        if (!d)
                return -ESRCH;
        *ret = d->info;
        return 0;
}

static int sim_domain_by_name(struct hv *hv, const char *name, struct hv_domain *ret)
{
        struct sim_host *h;
        int r;

        if (!name)
                return -EINVAL;
        if (!name[0])
                return -ESRCH;   /* nameless domains are found by domid only */
        r = host_read(hv, &h);
        if (r < 0)
                return r;
        for (size_t i = 0; i < h->n_domains; i++)
                if (streq(h->domains[i].info.name, name)) {
                        *ret = h->domains[i].info;
                        return 0;
                }
        return -ESRCH;
}

static int sim_domain_list(struct hv *hv, struct hv_domain **ret, size_t *ret_n)
{
        _cleanup_(freep) struct hv_domain *list = NULL;
        struct sim_host *h;
        int r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;
        list = calloc(h->n_domains ? h->n_domains : 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_domains; i++)
                list[i] = h->domains[i].info;
        *ret = TAKE_PTR(list);
        *ret_n = h->n_domains;
        return 0;
}

static int sim_device_owner(struct hv *hv, uint32_t sbdf, uint32_t *ret_domid)
{
        struct sim_host *h;
        struct sim_device *dev;
        int r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;
        dev = find_device(h, sbdf);
        if (!dev)
                return -ENODEV;
        *ret_domid = dev->owner;
        return 0;
}

static int sim_assignments(struct hv *hv, struct hv_assignment **ret, size_t *ret_n)
{
        _cleanup_(freep) struct hv_assignment *list = NULL;
        struct sim_host *h;
        size_t n = 0;
        int r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;
        list = calloc(h->n_devices ? h->n_devices : 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].owner != HV_DOMID_DOM0)
                        list[n++] = (struct hv_assignment){ .sbdf = h->devices[i].sbdf,
                                                            .domid = h->devices[i].owner };
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

static int sim_pci_info(struct hv *hv, uint32_t sbdf, struct hv_pci_info *ret)
{
        struct sim_host *h;
        struct sim_device *dev;
        struct hv_pci_info info = {};
        int r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;
        dev = find_device(h, sbdf);
        if (!dev)
                return -ENODEV;
        info.sbdf = dev->sbdf;
        info.vendor = dev->vendor;
        info.device = dev->device;
        info.subsystem_vendor = dev->subsystem_vendor;
        info.subsystem_device = dev->subsystem_device;
        info.class = dev->class;
        memcpy(info.driver, dev->driver, sizeof(info.driver));
        info.has_reset = dev->reset[0] != '\0';
        memcpy(info.reset_method, dev->reset, sizeof(dev->reset));
        *ret = info;
        return 0;
}

static int sim_pci_list(struct hv *hv, uint32_t **ret, size_t *ret_n)
{
        _cleanup_(freep) uint32_t *list = NULL;
        struct sim_host *h;
        int r;

        r = host_read(hv, &h);
        if (r < 0)
                return r;
        list = calloc(h->n_devices ? h->n_devices : 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++)
                list[i] = h->devices[i].sbdf;
        *ret = TAKE_PTR(list);
        *ret_n = h->n_devices;
        return 0;
}

/* ---- calls that count themselves or change the host ---- */

struct sim_args {
        uint32_t domid;
        uint32_t sbdf;
        const char *driver;           /* unprepare */
        char *ret_driver;             /* prepare, HV_DRIVER_MAX bytes */
        uint32_t *group;              /* device_group: allocated by the op, owned by the caller */
        size_t n_group;
};

/* The domain checks Xen's domctl makes: -ESRCH, then -EOPNOTSUPP without IOMMU context. */
static int check_domain(struct sim_host *h, uint32_t domid)
{
        struct sim_domain *d;

        if (domid == HV_DOMID_IO)
                return 0;
        d = find_domain(h, domid);
        if (!d)
                return -ESRCH;
        if (!d->iommu)
                return -EOPNOTSUPP;
        return 0;
}

static int do_test_assign(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev;
        int r;

        if (a->domid != HV_DOMID_INVALID && a->domid != HV_DOMID_DOM0 &&
            a->domid != HV_DOMID_IO && !find_domain(h, a->domid))
                return -ESRCH; /* the domctl looks the domain up first */
        if (!h->iommu)
                return -EOPNOTSUPP;
        if (a->domid == HV_DOMID_DOM0)
                return -EINVAL;
        if (a->domid != HV_DOMID_INVALID) {
                r = check_domain(h, a->domid);
                if (r < 0)
                        return r;
        }
        dev = find_device(h, a->sbdf);
        if (!dev || (dev->owner != HV_DOMID_DOM0 && dev->owner != HV_DOMID_IO))
                return -EINVAL;
        return 0;
}

static int do_assign(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev;
        int r;

        if (a->domid == HV_DOMID_INVALID ||
            (a->domid != HV_DOMID_DOM0 && a->domid != HV_DOMID_IO && !find_domain(h, a->domid)))
                return -ESRCH; /* the domctl looks the domain up first */
        if (!h->iommu)
                return -EOPNOTSUPP;
        if (a->domid == HV_DOMID_DOM0)
                return -EINVAL;
        r = check_domain(h, a->domid);
        if (r < 0)
                return r;
        if (a->domid != HV_DOMID_IO && find_domain(h, a->domid)->info.dying)
                return -EINVAL;
        dev = find_device(h, a->sbdf);
        if (!dev)
                return -ENODEV;
        if (dev->owner != HV_DOMID_DOM0 && dev->owner != HV_DOMID_IO)
                return -EBUSY;
        h->changed = true;
        return set_owner(dev, a->domid);
}

static int do_deassign(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev;
        int r;

        if (a->domid == HV_DOMID_INVALID ||
            (a->domid != HV_DOMID_DOM0 && a->domid != HV_DOMID_IO && !find_domain(h, a->domid)))
                return -ESRCH; /* the domctl looks the domain up first */
        if (!h->iommu)
                return -EOPNOTSUPP;
        if (a->domid == HV_DOMID_DOM0)
                return -EINVAL;
        r = check_domain(h, a->domid);
        if (r < 0)
                return r;
        dev = find_device(h, a->sbdf);
        if (!dev || dev->owner != a->domid)
                return -ENODEV;
        h->changed = true;
        return set_owner(dev, a->domid == HV_DOMID_IO ? HV_DOMID_DOM0 : HV_DOMID_IO);
}

static int do_device_group(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev;

        if (!h->iommu)
                return -EOPNOTSUPP;
        a->group = calloc(h->n_devices + 1, sizeof(uint32_t));
        if (!a->group)
                return -ENOMEM;
        a->n_group = 0;
        dev = find_device(h, a->sbdf);
        if (!dev)
                return 0; /* Xen answers an empty group for a device it does not know */
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].group == dev->group && h->devices[i].sbdf != dev->sbdf)
                        a->group[a->n_group++] = h->devices[i].sbdf;
        return 0;
}

static int do_reset(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev = find_device(h, a->sbdf);

        if (!dev)
                return -ENODEV;
        if (!dev->reset[0])
                return -ENOTTY;
        return 0;
}

static int do_prepare(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev = find_device(h, a->sbdf);
        char old[HV_DRIVER_MAX];
        int r;

        if (!dev)
                return -ENODEV;
        if (!h->iommu)
                return -EOPNOTSUPP;
        if (dev->owner != HV_DOMID_DOM0 && dev->owner != HV_DOMID_IO)
                return -EBUSY;
        /* Already bound to pciback: nothing was unbound. */
        snprintf(old, sizeof(old), "%s", streq(dev->driver, "pciback") ? "" : dev->driver);
        h->changed = true;
        r = set_driver(dev, "pciback");
        if (r < 0)
                return r;
        r = set_owner(dev, HV_DOMID_IO);
        if (r < 0)
                return r;
        memcpy(a->ret_driver, old, sizeof(old));
        return 0;
}

static int do_unprepare(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev = find_device(h, a->sbdf);
        int r;

        if (!dev)
                return -ENODEV;
        if (strlen(a->driver) >= HV_DRIVER_MAX)
                return -EINVAL;
        if (dev->owner != HV_DOMID_DOM0 && dev->owner != HV_DOMID_IO)
                return -EBUSY;
        if (dev->owner == HV_DOMID_IO && !h->iommu)
                return -EOPNOTSUPP;
        h->changed = true;
        r = set_owner(dev, HV_DOMID_DOM0);
        if (r < 0)
                return r;
        return set_driver(dev, a->driver);
}

/*
 * One transaction: lock exclusively, re-read if someone else changed the
 * file, count the call, apply an injected fault or the operation, write back
 * (a change always; a count only when not held), unlock. The counter is
 * written even when the operation fails. Returns the operation's result, or
 * the error of the transaction itself.
 */
static int transact(struct hv *hv, const char *call, const char *fault_op,
                    int (*op)(struct sim_host *h, struct sim_args *a), struct sim_args *a)
{
        struct sim_host *h;
        int r, result;

        r = host_lock(hv, LOCK_EX);
        if (r < 0)
                return r;
        r = host_refresh(hv, &h);
        if (r >= 0)
                r = count_call(h, call);
        if (r < 0) {
                host_unlock(hv);
                return r;
        }
        result = fault(h, fault_op, a->sbdf);
        if (result == 0)
                result = op(h, a);
        if (result == -ENOMEM) {
                /* The host in memory may be half-changed: forget it, write nothing. */
                host_forget(hv);
                host_unlock(hv);
                return result;
        }
        if (h->changed || !hv->held)
                r = host_save(hv, h);
        host_unlock(hv);
        if (r < 0) {
                host_forget(hv); /* what the file has is not what memory has */
                return r;
        }
        return result;
}

static int sim_test_assign(struct hv *hv, uint32_t domid, uint32_t sbdf)
{
        struct sim_args a = { .domid = domid, .sbdf = sbdf };

        return transact(hv, "test_assign", "test_assign", do_test_assign, &a);
}

static int sim_assign(struct hv *hv, uint32_t domid, uint32_t sbdf, bool rdm_relaxed)
{
        struct sim_args a = { .domid = domid, .sbdf = sbdf };

        return transact(hv, "assign", "assign", do_assign, &a);
}

static int sim_deassign(struct hv *hv, uint32_t domid, uint32_t sbdf)
{
        struct sim_args a = { .domid = domid, .sbdf = sbdf };

        return transact(hv, "deassign", "deassign", do_deassign, &a);
}

static int sim_device_group(struct hv *hv, uint32_t sbdf, uint32_t **ret, size_t *ret_n)
{
        struct sim_args a = { .sbdf = sbdf };
        int r;

        r = transact(hv, "device_group", "device_group", do_device_group, &a);
        if (r < 0) {
                free(a.group);
                return r;
        }
        *ret = a.group;
        *ret_n = a.n_group;
        return 0;
}

static int sim_pci_reset(struct hv *hv, uint32_t sbdf)
{
        struct sim_args a = { .sbdf = sbdf };

        return transact(hv, "reset", "reset", do_reset, &a);
}

static int sim_pci_prepare(struct hv *hv, uint32_t sbdf, char ret_driver[HV_DRIVER_MAX])
{
        char driver[HV_DRIVER_MAX];
        struct sim_args a = { .sbdf = sbdf, .ret_driver = driver };
        int r;

        r = transact(hv, "quarantine", "prepare", do_prepare, &a);
        if (r < 0)
                return r;
        memcpy(ret_driver, driver, sizeof(driver));
        return 0;
}

static int sim_pci_unprepare(struct hv *hv, uint32_t sbdf, const char *driver)
{
        struct sim_args a = { .sbdf = sbdf, .driver = driver ? driver : "" };

        return transact(hv, "unquarantine", "unprepare", do_unprepare, &a);
}

const struct hv_ops hv_sim_ops = {
        .name = "sim",
        .open = sim_open,
        .close = sim_close,
        .host_caps = sim_host_caps,
        .domain_get = sim_domain_get,
        .domain_by_name = sim_domain_by_name,
        .domain_list = sim_domain_list,
        .test_assign = sim_test_assign,
        .assign = sim_assign,
        .deassign = sim_deassign,
        .device_group = sim_device_group,
        .device_owner = sim_device_owner,
        .assignments = sim_assignments,
        .watch_fd = sim_watch_fd,
        .watch_drain = sim_watch_drain,
        .pci_info = sim_pci_info,
        .pci_list = sim_pci_list,
        .pci_reset = sim_pci_reset,
        .pci_prepare = sim_pci_prepare,
        .pci_unprepare = sim_pci_unprepare,
        .hold = sim_hold,
        .flush = sim_flush,
};
