/* SPDX-License-Identifier: MIT */
/*
 * libpassguard-xc: route an unmodified toolstack's PCI assignments through
 * passguardd. Preloaded into xl or libvirtd (LD_PRELOAD), it replaces the
 * libxenctrl calls libxl makes around PCI passthrough (xc-protos.h):
 *
 *   xc_test_assign_device(guest)   the grant, before anything is exposed:
 *                                  libxl test-assigns an HVM guest's device
 *                                  first of all, before the reset, QMP
 *                                  device_add and every permission
 *   iomem/ioport/irq permission,   for one of a pciback device's BARs or its
 *   xc_physdev_map_pirq (allow)    IRQ: the grant, first (PV guests are
 *                                  never test-assigned)
 *   xc_assign_device(guest)        a no-op for a device passguard granted to
 *                                  that domain, else the grant
 *   xc_deassign_device(guest)      release: back into quarantine
 *   xc_assign_device(DOMID_IO)     prepare   (xl pci-assignable-add)
 *   xc_deassign_device(DOMID_IO)   unprepare (xl pci-assignable-remove)
 *
 * A refusal fails the call with an errno libxl reports (EOPNOTSUPP for no
 * IOMMU, EBUSY, EPERM, ...), and prints passguard's error code, the check that
 * failed and its message on stderr. An unreachable daemon is a refusal too.
 *
 * What it cannot do: it depends on libxl's call order (true of 4.17 and
 * later); it acts only in the processes it is loaded into, so it is no
 * enforcement against other root processes; and it stays passive in a device
 * model (a program whose name holds "qemu-system"), which touches only a
 * device the toolstack added to it after the grant. The libxl patch in
 * integrations/libxl has none of these limits. See passguard-toolstacks(7).
 *
 * Environment: PASSGUARD_SOCKET (libpassguard's), PASSGUARD_XC_SYSFS (the
 * sysfs root, default /sys), PASSGUARD_XC_DEBUG=1 (a line per decision).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "passguard.h"
#include "xc-protos.h"

#define PUBLIC __attribute__((visibility("default")))
#define BDF_MAX sizeof("ssss:bb:dd.f")
#define PAGE_SHIFT 12
#define IORESOURCE_IO 0x100UL  /* the flag of an I/O port BAR in sysfs "resource" */
#define MAX_RESOURCES 7        /* six BARs and the ROM */

static bool passive;  /* loaded into a device model */
static bool debug;

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
        va_list ap;

        fputs("passguard-xc: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

__attribute__((constructor)) static void init(void)
{
        const char *d = getenv("PASSGUARD_XC_DEBUG");

        /* Debian's is xen-qemu-system-i386, upstream's qemu-system-i386. */
        passive = strstr(program_invocation_short_name, "qemu-system") != NULL;
        debug = d && strcmp(d, "1") == 0;
}

/* The next definition of a libxenctrl function: libxenctrl's own. */
static void *next(const char *name)
{
        void *f = dlsym(RTLD_NEXT, name);

        if (!f) {
                say("cannot find %s in libxenctrl: %s", name, dlerror());
                abort();
        }
        return f;
}

static bool is_guest(uint32_t domid)
{
        return domid != 0 && domid < XC_DOMID_FIRST_RESERVED;
}

static char *bdf_of(uint32_t sbdf, char buf[static BDF_MAX])
{
        snprintf(buf, BDF_MAX, "%04x:%02x:%02x.%u", sbdf >> 16, (sbdf >> 8) & 0xff,
                 (sbdf >> 3) & 0x1f, sbdf & 7);
        return buf;
}

/* The errno a refusal becomes: what libxl and its users expect for the case. */
static int refusal_errno(int code)
{
        switch (code) {
        case PG_ERR_NO_IOMMU:
        case PG_ERR_DOMAIN_NO_IOMMU:
                return EOPNOTSUPP;
        case PG_ERR_BUSY:
        case PG_ERR_GROUP_CONFLICT:
                return EBUSY;
        case PG_ERR_NO_SUCH_DEVICE:
                return ENODEV;
        case PG_ERR_NO_SUCH_DOMAIN:
                return ESRCH;
        case PG_ERR_HYPERVISOR_ERROR:
        case PG_ERR_STATE_ERROR:
        case PG_ERR_INTERNAL:
                return EIO;
        default:
                return EPERM;
        }
}

/*
 * Report a failed request and turn it into -1 with errno set. what is the
 * request in words: "assign 0000:03:00.0 to domain 5".
 */
static int failed(const struct pg *pg, int r, const char *what)
{
        if (r > 0) {
                const char *check = pg_last_check(pg), *rule = pg_last_rule(pg);

                say("passguard refused to %s: %s (check: %s%s%s): %s", what, pg_strerror(r),
                    check ? check : "none", rule ? ", rule: " : "", rule ? rule : "",
                    pg_last_message(pg));
                errno = refusal_errno(r);
        } else {
                say("cannot %s: %s", what, pg_last_message(pg));
                errno = -r;
        }
        return -1;
}

static int connect_daemon(struct pg **ret, const char *what)
{
        int r = pg_connect(NULL, ret);

        if (r < 0) {
                const char *path = getenv("PASSGUARD_SOCKET");

                say("cannot %s: passguardd is not reachable at %s: %s", what,
                    path && *path ? path : PG_DEFAULT_SOCKET_PATH, pg_strerror(r));
                errno = -r;
                return -1;
        }
        return 0;
}

/*
 * Make sure domid holds a passguard grant for sbdf: nothing to do when it does,
 * else ask for one. 0 when it holds it, -1 with errno set when not.
 */
static int ensure_granted(uint32_t domid, uint32_t sbdf, bool rdm_relaxed, const char *why)
{
        struct pg_grant *grant = NULL;
        struct pg *pg = NULL;
        char bdf[BDF_MAX], what[64];
        int assigned = 0, granted = 0, r;
        uint32_t owner = 0;

        snprintf(what, sizeof(what), "assign %s to domain %u", bdf_of(sbdf, bdf), domid);
        if (connect_daemon(&pg, what) < 0)
                return -1;
        r = pg_owner(pg, bdf, &assigned, &owner, &granted);
        if (r == 0 && assigned && granted && owner == domid) {
                if (debug)
                        say("%s: %s is granted to domain %u already", why, bdf, domid);
                pg_close(pg);
                return 0;
        }
        r = pg_assign(pg, NULL, domid, bdf, rdm_relaxed ? PG_ASSIGN_RDM_RELAXED : 0, &grant);
        if (r != 0) {
                failed(pg, r, what);
                pg_close(pg);
                return -1;
        }
        if (debug)
                say("%s: passguard granted %s to domain %u (rule %s)", why, bdf, domid,
                    pg_grant_rule(grant));
        pg_grant_free(grant);
        pg_close(pg);
        return 0;
}

/* ---- which pciback device a permission is for ---- */

enum resource {
        RES_MEM, /* a range of page frames */
        RES_IO,  /* a range of I/O ports */
        RES_IRQ, /* an IRQ (first == last) */
};

static const char *sysfs_root(void)
{
        const char *s = getenv("PASSGUARD_XC_SYSFS");

        return s && *s ? s : "/sys";
}

/* The file name/what in the devices directory dfd, opened for reading. */
static FILE *open_at(int dfd, const char *name, const char *what)
{
        char path[NAME_MAX + 16];
        int fd;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", name, what);
        fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        f = fdopen(fd, "r");
        if (!f)
                close(fd);
        return f;
}

static bool bound_to_pciback(int dfd, const char *name)
{
        char link[NAME_MAX + 16], target[PATH_MAX];
        const char *base;
        ssize_t n;

        snprintf(link, sizeof(link), "%s/driver", name);
        n = readlinkat(dfd, link, target, sizeof(target) - 1);
        if (n <= 0)
                return false;
        target[n] = '\0';
        base = strrchr(target, '/');
        return base && strcmp(base + 1, "pciback") == 0;
}

/* Whether device name has a BAR or IRQ that overlaps [first, last]. */
static bool device_uses(int dfd, const char *name, enum resource kind, uint64_t first,
                        uint64_t last)
{
        FILE *f;
        bool hit = false;

        if (kind == RES_IRQ) {
                unsigned irq;

                f = open_at(dfd, name, "irq");
                if (!f)
                        return false;
                hit = fscanf(f, "%u", &irq) == 1 && irq != 0 && irq == first;
                fclose(f);
                return hit;
        }
        f = open_at(dfd, name, "resource");
        if (!f)
                return false;
        for (int i = 0; i < MAX_RESOURCES && !hit; i++) {
                unsigned long long start, end, flags;

                if (fscanf(f, "0x%llx 0x%llx 0x%llx\n", &start, &end, &flags) != 3)
                        break;
                if (start == 0 || !!(flags & IORESOURCE_IO) != (kind == RES_IO))
                        continue;
                if (kind == RES_MEM) {
                        start >>= PAGE_SHIFT;
                        end >>= PAGE_SHIFT;
                }
                hit = start <= last && first <= end;
        }
        fclose(f);
        return hit;
}

static int parse_sbdf(const char *name, uint32_t *ret)
{
        unsigned seg, bus, dev, fn;
        char tail;

        if (sscanf(name, "%4x:%2x:%2x.%1u%c", &seg, &bus, &dev, &fn, &tail) != 4 || dev > 31 ||
            fn > 7)
                return -EINVAL;
        *ret = seg << 16 | bus << 8 | dev << 3 | fn;
        return 0;
}

/*
 * A permission for domid over [first, last] of kind, about to be given: when
 * it touches a pciback device, domid must hold that device's grant first. An
 * IRQ shared by several pciback devices is fine when domid holds one of them,
 * and refused when it holds none (which one would it be?). Permissions that
 * touch no pciback device are none of passguard's business.
 */
static int guard_permission(uint32_t domid, enum resource kind, uint64_t first, uint64_t last,
                            const char *why)
{
        char dir[PATH_MAX], bdf[BDF_MAX], what[64];
        uint32_t hits[8];
        size_t n = 0;
        struct dirent *de;
        DIR *d;

        if (passive || !is_guest(domid))
                return 0;
        snprintf(dir, sizeof(dir), "%s/bus/pci/devices", sysfs_root());
        d = opendir(dir);
        if (!d) {
                say("%s for domain %u: cannot list %s: %m", why, domid, dir);
                errno = EPERM;
                return -1;
        }
        while ((de = readdir(d)) && n < sizeof(hits) / sizeof(hits[0])) {
                uint32_t sbdf;

                if (parse_sbdf(de->d_name, &sbdf) < 0)
                        continue;
                if (bound_to_pciback(dirfd(d), de->d_name) &&
                    device_uses(dirfd(d), de->d_name, kind, first, last))
                        hits[n++] = sbdf;
        }
        closedir(d);

        if (n == 0)
                return 0;
        if (n == 1)
                return ensure_granted(domid, hits[0], false, why);
        for (size_t i = 0; i < n; i++) {
                struct pg *pg = NULL;
                int assigned = 0, granted = 0;
                uint32_t owner = 0;

                snprintf(what, sizeof(what), "look up the owner of %s", bdf_of(hits[i], bdf));
                if (connect_daemon(&pg, what) < 0)
                        return -1;
                if (pg_owner(pg, bdf, &assigned, &owner, &granted) == 0 && assigned && granted &&
                    owner == domid) {
                        pg_close(pg);
                        return 0;
                }
                pg_close(pg);
        }
        say("%s for domain %u: it is shared by %zu pciback devices and the domain holds none of "
            "them: refused",
            why, domid, n);
        errno = EPERM;
        return -1;
}

/* ---- the interposed calls ---- */

PUBLIC int xc_test_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf)
{
        int (*real)(xc_interface *, uint32_t, uint32_t) = next("xc_test_assign_device");

        if (passive || !is_guest(domid))
                return real(xch, domid, machine_sbdf);
        return ensure_granted(domid, machine_sbdf, false, "test-assign");
}

PUBLIC int xc_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf,
                            uint32_t flag)
{
        int (*real)(xc_interface *, uint32_t, uint32_t, uint32_t) = next("xc_assign_device");
        struct pg *pg = NULL;
        char bdf[BDF_MAX], what[32];
        int r;

        if (passive)
                return real(xch, domid, machine_sbdf, flag);
        if (is_guest(domid))
                return ensure_granted(domid, machine_sbdf, flag & XC_DEV_RDM_RELAXED, "assign");
        if (domid != XC_DOMID_IO)
                return real(xch, domid, machine_sbdf, flag); /* dom0: Xen refuses it */

        snprintf(what, sizeof(what), "prepare %s", bdf_of(machine_sbdf, bdf));
        if (connect_daemon(&pg, what) < 0)
                return -1;
        r = pg_prepare(pg, bdf);
        if (r != 0)
                failed(pg, r, what);
        pg_close(pg);
        return r == 0 ? 0 : -1;
}

PUBLIC int xc_deassign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf)
{
        int (*real)(xc_interface *, uint32_t, uint32_t) = next("xc_deassign_device");
        struct pg *pg = NULL;
        char bdf[BDF_MAX], what[64];
        int r;

        if (passive || !(is_guest(domid) || domid == XC_DOMID_IO))
                return real(xch, domid, machine_sbdf);

        bdf_of(machine_sbdf, bdf);
        if (domid == XC_DOMID_IO)
                snprintf(what, sizeof(what), "unprepare %s", bdf);
        else
                snprintf(what, sizeof(what), "release %s from domain %u", bdf, domid);
        if (connect_daemon(&pg, what) < 0)
                return -1;
        if (domid == XC_DOMID_IO) {
                r = pg_unprepare(pg, bdf);
        } else {
                r = pg_release(pg, NULL, domid, bdf);
                if (r == PG_ERR_NOT_ASSIGNED) {
                        /* passguardd released it already: the domain died first. */
                        if (debug)
                                say("%s was released already", bdf);
                        r = 0;
                }
        }
        if (r != 0)
                failed(pg, r, what);
        else if (debug)
                say("%s: done", what);
        pg_close(pg);
        return r == 0 ? 0 : -1;
}

PUBLIC int xc_domain_iomem_permission(xc_interface *xch, uint32_t domid, unsigned long first_mfn,
                                      unsigned long nr_mfns, uint8_t allow_access)
{
        int (*real)(xc_interface *, uint32_t, unsigned long, unsigned long, uint8_t) =
                next("xc_domain_iomem_permission");

        if (allow_access && nr_mfns &&
            guard_permission(domid, RES_MEM, first_mfn, first_mfn + nr_mfns - 1,
                             "I/O memory permission") < 0)
                return -1;
        return real(xch, domid, first_mfn, nr_mfns, allow_access);
}

PUBLIC int xc_domain_ioport_permission(xc_interface *xch, uint32_t domid, uint32_t first_port,
                                       uint32_t nr_ports, uint32_t allow_access)
{
        int (*real)(xc_interface *, uint32_t, uint32_t, uint32_t, uint32_t) =
                next("xc_domain_ioport_permission");

        if (allow_access && nr_ports &&
            guard_permission(domid, RES_IO, first_port, (uint64_t)first_port + nr_ports - 1,
                             "I/O port permission") < 0)
                return -1;
        return real(xch, domid, first_port, nr_ports, allow_access);
}

PUBLIC int xc_domain_irq_permission(xc_interface *xch, uint32_t domid, uint32_t pirq,
                                    bool allow_access)
{
        int (*real)(xc_interface *, uint32_t, uint32_t, bool) = next("xc_domain_irq_permission");

        if (allow_access && guard_permission(domid, RES_IRQ, pirq, pirq, "IRQ permission") < 0)
                return -1;
        return real(xch, domid, pirq, allow_access);
}

/* Mapping a GSI into a domain's pirq space gives the domain access to it. */
PUBLIC int xc_physdev_map_pirq(xc_interface *xch, uint32_t domid, int index, int *pirq)
{
        int (*real)(xc_interface *, uint32_t, int, int *) = next("xc_physdev_map_pirq");

        if (index > 0 &&
            guard_permission(domid, RES_IRQ, (uint64_t)index, (uint64_t)index, "IRQ mapping") < 0)
                return -1;
        return real(xch, domid, index, pirq);
}
