/* SPDX-License-Identifier: MIT */
/*
 * hv-sim's backend (hv-sim.h): struct hv_ops over the simulated host, with
 * the answers and errnos of real Xen 4.17, and the hold that lets a burst of
 * calls share one lock and one write.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "hv-sim.h"
#include "pg-wire.h"

static int sim_flush(struct hv *hv);

static struct hv *sim_close(struct hv *hv)
{
        if (!hv)
                return NULL;
        (void)sim_flush(hv);
        pgd_sim_host_forget(hv);
        safe_close(hv->lock_fd);
        safe_close(hv->inotify_fd);
        safe_close(hv->dir_fd);
        free(hv->crash_at);
        free(hv->path);
        free(hv->lock_path);
        free(hv->tmp_path);
        free(hv->dir);
        free(hv->base);
        free(hv->tmp_base);
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
        r = pgd_sim_probe_real_xen();
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
        if (secure_getenv("PASSGUARD_TEST_CRASH")) {
                hv->crash_at = strdup(secure_getenv("PASSGUARD_TEST_CRASH"));
                if (!hv->crash_at)
                        return -ENOMEM;
        }
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
        if (!hv->base || asprintf(&hv->tmp_base, "%s.tmp", hv->base) < 0) {
                hv->tmp_base = NULL;
                return -ENOMEM;
        }
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
        r = pgd_sim_watch_dir(hv);
        if (r < 0)
                return r;

        r = pgd_sim_host_read(hv, &h);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(hv);
        return 0;
}

/* ---- holding the lock across calls ---- */

static int sim_hold(struct hv *hv)
{
        struct sim_host *h;
        int r;

        if (hv->held)
                return 0;
        r = pgd_sim_lock(hv->lock_fd, LOCK_EX);
        if (r < 0)
                return r;
        /* Checked once now; until flush() no one else may change the file. */
        (void)pgd_sim_host_refresh(hv, &h);
        hv->held = true;
        /*
         * Nor need anyone be watched meanwhile: the watch would only report
         * this backend's own renames. What changed before is known already
         * (its events are queued, or pgd_sim_host_refresh() found it).
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
                r = pgd_sim_host_save(hv, hv->host);
        hv->held = false;
        hv->deferring = false;
        if (hv->pin_pending && hv->host)
                (void)pgd_sim_host_pin(hv);
        hv->cur_fd = safe_close(hv->cur_fd);
        /* The host before the last write under the hold, exchanged with FILE. */
        hv->spare_fd = safe_close(hv->spare_fd);
        (void)unlink(hv->tmp_path);
        /* Watched again before anyone else may write. */
        if (hv->watch_wd < 0) {
                int k = pgd_sim_watch_dir(hv);
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

        r = pgd_sim_host_read(hv, &h);
        if (r < 0)
                return r;
        *ret = (struct hv_caps){.iommu = h->iommu, .interrupt_remapping = h->interrupt_remapping};
        return 0;
}

static int sim_domain_get(struct hv *hv, uint32_t domid, struct hv_domain *ret)
{
        struct sim_host *h;
        struct sim_domain *d;
        int r;

        r = pgd_sim_host_read(hv, &h);
        if (r < 0)
                return r;
        d = pgd_sim_find_domain(h, domid);
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
                return -ESRCH; /* nameless domains are found by domid only */
        r = pgd_sim_host_read(hv, &h);
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

        r = pgd_sim_host_read(hv, &h);
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

        r = pgd_sim_host_read(hv, &h);
        if (r < 0)
                return r;
        dev = pgd_sim_find_device(h, sbdf);
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

        r = pgd_sim_host_read(hv, &h);
        if (r < 0)
                return r;
        list = calloc(h->n_devices ? h->n_devices : 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].owner != HV_DOMID_DOM0)
                        list[n++] = (struct hv_assignment){.sbdf = h->devices[i].sbdf,
                                                           .domid = h->devices[i].owner};
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

        r = pgd_sim_host_read(hv, &h);
        if (r < 0)
                return r;
        dev = pgd_sim_find_device(h, sbdf);
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
        memcpy(info.reset_methods, dev->reset, sizeof(dev->reset));
        memcpy(info.serial, dev->serial, sizeof(info.serial));
        memcpy(info.path, dev->path, sizeof(info.path));
        info.rdm_regions = dev->rdm_regions;
        *ret = info;
        return 0;
}

static int sim_pci_list(struct hv *hv, uint32_t **ret, size_t *ret_n)
{
        _cleanup_(freep) uint32_t *list = NULL;
        struct sim_host *h;
        int r;

        r = pgd_sim_host_read(hv, &h);
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

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

static int sim_root_devices(struct hv *hv, uint32_t **ret, size_t *ret_n)
{
        _cleanup_(freep) uint32_t *list = NULL;
        struct sim_host *h;
        int r;

        r = pgd_sim_host_read(hv, &h);
        if (r < 0)
                return r;
        list = calloc(h->n_root_devices + 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        if (h->n_root_devices > 0)
                memcpy(list, h->root_devices, h->n_root_devices * sizeof(*list));
        qsort(list, h->n_root_devices, sizeof(*list), cmp_u32);
        *ret = TAKE_PTR(list);
        *ret_n = h->n_root_devices;
        return 0;
}

/* ---- calls that count themselves or change the host ---- */

struct sim_args {
        uint32_t domid;
        uint32_t sbdf;
        const char *driver; /* unprepare */
        char *ret_driver;   /* prepare, HV_DRIVER_MAX bytes */
        uint32_t *group;    /* device_group: allocated by the op, owned by the caller */
        size_t n_group;
};

/* The domain checks Xen's domctl makes: -ESRCH, then -EOPNOTSUPP without IOMMU context. */
static int check_domain(struct sim_host *h, uint32_t domid)
{
        struct sim_domain *d;

        if (domid == HV_DOMID_IO)
                return 0;
        d = pgd_sim_find_domain(h, domid);
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

        if (a->domid != HV_DOMID_INVALID && a->domid != HV_DOMID_DOM0 && a->domid != HV_DOMID_IO &&
            !pgd_sim_find_domain(h, a->domid))
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
        dev = pgd_sim_find_device(h, a->sbdf);
        if (!dev || (dev->owner != HV_DOMID_DOM0 && dev->owner != HV_DOMID_IO))
                return -EINVAL;
        return 0;
}

/*
 * What assign's and deassign's domctl answer before they look at the device:
 * the domain first (-ESRCH), then the IOMMU (-EOPNOTSUPP), dom0 (-EINVAL),
 * and the domain's IOMMU context.
 */
static int domctl_domain(struct sim_host *h, uint32_t domid)
{
        if (domid == HV_DOMID_INVALID ||
            (domid != HV_DOMID_DOM0 && domid != HV_DOMID_IO && !pgd_sim_find_domain(h, domid)))
                return -ESRCH; /* the domctl looks the domain up first */
        if (!h->iommu)
                return -EOPNOTSUPP;
        if (domid == HV_DOMID_DOM0)
                return -EINVAL;
        return check_domain(h, domid);
}

static int do_assign(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev;
        int r;

        r = domctl_domain(h, a->domid);
        if (r < 0)
                return r;
        if (a->domid != HV_DOMID_IO && pgd_sim_find_domain(h, a->domid)->info.dying)
                return -EINVAL;
        dev = pgd_sim_find_device(h, a->sbdf);
        if (!dev)
                return -ENODEV;
        if (dev->owner != HV_DOMID_DOM0 && dev->owner != HV_DOMID_IO)
                return -EBUSY;
        h->changed = true;
        return pgd_sim_set_owner(dev, a->domid);
}

static int do_deassign(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev;
        int r;

        r = domctl_domain(h, a->domid);
        if (r < 0)
                return r;
        dev = pgd_sim_find_device(h, a->sbdf);
        if (!dev || dev->owner != a->domid)
                return -ENODEV;
        h->changed = true;
        return pgd_sim_set_owner(dev, a->domid == HV_DOMID_IO ? HV_DOMID_DOM0 : HV_DOMID_IO);
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
        dev = pgd_sim_find_device(h, a->sbdf);
        if (!dev)
                return 0; /* Xen answers an empty group for a device it does not know */
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].group == dev->group && h->devices[i].sbdf != dev->sbdf)
                        a->group[a->n_group++] = h->devices[i].sbdf;
        return 0;
}

static int do_reset(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev = pgd_sim_find_device(h, a->sbdf);

        if (!dev)
                return -ENODEV;
        if (!dev->reset[0])
                return -ENOTTY;
        return 0;
}

static int do_prepare(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev = pgd_sim_find_device(h, a->sbdf);
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
        r = pgd_sim_set_driver(dev, "pciback");
        if (r < 0)
                return r;
        r = pgd_sim_set_owner(dev, HV_DOMID_IO);
        if (r < 0)
                return r;
        memcpy(a->ret_driver, old, sizeof(old));
        return 0;
}

static int do_unprepare(struct sim_host *h, struct sim_args *a)
{
        struct sim_device *dev = pgd_sim_find_device(h, a->sbdf);
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
        r = pgd_sim_set_owner(dev, HV_DOMID_DOM0);
        if (r < 0)
                return r;
        return pgd_sim_set_driver(dev, a->driver);
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

        r = pgd_sim_host_lock(hv, LOCK_EX);
        if (r < 0)
                return r;
        r = pgd_sim_host_refresh(hv, &h);
        if (r >= 0)
                r = pgd_sim_count_call(h, call);
        if (r < 0) {
                pgd_sim_host_unlock(hv);
                return r;
        }
        result = pgd_sim_fault(h, fault_op, a->sbdf);
        if (result == 0)
                result = op(h, a);
        if (result == -ENOMEM) {
                /* The host in memory may be half-changed: forget it, write nothing. */
                pgd_sim_host_forget(hv);
                pgd_sim_host_unlock(hv);
                return result;
        }
        if ((h->changed && !hv->deferring) || !hv->held)
                r = pgd_sim_host_save(hv, h);
        pgd_sim_host_unlock(hv);
        if (r < 0) {
                pgd_sim_host_forget(hv); /* what the file has is not what memory has */
                return r;
        }
        return result;
}

static int sim_test_assign(struct hv *hv, uint32_t domid, uint32_t sbdf)
{
        struct sim_args a = {.domid = domid, .sbdf = sbdf};

        return transact(hv, "test_assign", "test_assign", do_test_assign, &a);
}

static int sim_assign(struct hv *hv, uint32_t domid, uint32_t sbdf, bool rdm_relaxed)
{
        struct sim_args a = {.domid = domid, .sbdf = sbdf};

        return transact(hv, "assign", "assign", do_assign, &a);
}

static int sim_deassign(struct hv *hv, uint32_t domid, uint32_t sbdf)
{
        struct sim_args a = {.domid = domid, .sbdf = sbdf};

        return transact(hv, "deassign", "deassign", do_deassign, &a);
}

static int sim_device_group(struct hv *hv, uint32_t sbdf, uint32_t **ret, size_t *ret_n)
{
        struct sim_args a = {.sbdf = sbdf};
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
        struct sim_args a = {.sbdf = sbdf};

        return transact(hv, "reset", "reset", do_reset, &a);
}

static int sim_pci_prepare(struct hv *hv, uint32_t sbdf, char ret_driver[HV_DRIVER_MAX])
{
        char driver[HV_DRIVER_MAX];
        struct sim_args a = {.sbdf = sbdf, .ret_driver = driver};
        int r;

        r = transact(hv, "quarantine", "prepare", do_prepare, &a);
        if (r < 0)
                return r;
        memcpy(ret_driver, driver, sizeof(driver));
        return 0;
}

static int sim_pci_unprepare(struct hv *hv, uint32_t sbdf, const char *driver)
{
        struct sim_args a = {.sbdf = sbdf, .driver = driver ? driver : ""};

        return transact(hv, "unquarantine", "unprepare", do_unprepare, &a);
}

/*
 * hv.h's defer: while held, a call that changes the host leaves the file to
 * defer(false), which writes it once for the whole batch.
 */
static int sim_defer(struct hv *hv, bool on)
{
        int r = 0;

        if (on) {
                hv->deferring = hv->held;
                return 0;
        }
        if (!hv->deferring)
                return 0;
        hv->deferring = false;
        if (hv->host && hv->host->changed) {
                r = pgd_sim_host_save(hv, hv->host);
                if (r < 0)
                        pgd_sim_host_forget(hv); /* what the file has is not what memory has */
        }
        return r;
}

/*
 * The test seam of hv.h: die at the step $PASSGUARD_TEST_CRASH names, as a
 * crash would. The calls made so far have happened, as a hypervisor's would
 * have: the file is written first.
 */
static void sim_crash_point(struct hv *hv, const char *name)
{
        if (hv->crash_at && streq(hv->crash_at, name)) {
                (void)sim_defer(hv, false);
                raise(SIGKILL);
        }
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
        .watch_fd = pgd_sim_watch_fd,
        .watch_drain = pgd_sim_watch_drain,
        .pci_info = sim_pci_info,
        .pci_list = sim_pci_list,
        .pci_reset = sim_pci_reset,
        .pci_prepare = sim_pci_prepare,
        .pci_unprepare = sim_pci_unprepare,
        .root_devices = sim_root_devices,
        .hold = sim_hold,
        .flush = sim_flush,
        .crash_point = sim_crash_point,
        .defer = sim_defer,
};
