/* SPDX-License-Identifier: MIT */
/*
 * xc-trace: an LD_PRELOAD tracer for the system suite. Loaded into xl, the
 * QEMU it starts and passguardd, it puts their PCI passthrough calls on one
 * timeline: every call into libxenctrl around passthrough, every libpassguard
 * request, and every QMP device_add/device_del libxl sends to QEMU, one line
 * each, appended to $XC_TRACE_FILE (default /tmp/xc-trace.log):
 *
 *   XCT <CLOCK_MONOTONIC s> pid=<pid> <comm> <call> <args> rc=<rc> errno=<e>
 *
 * It can also play a second toolstack that wins the race between a check and
 * an assignment: when the file $XC_TRACE_RACE (default /tmp/xc-trace.race)
 * holds a domid N, the next xc_test_assign_device for another guest (not
 * DOMID_INVALID: the last check before an assignment) that passes is followed
 * at once by a real xc_assign_device of the same device to domain N, and the
 * file is removed (one shot).
 *
 * And it can make a call fail without making it, as a toolstack meets a failure
 * after the grant: XC_TRACE_FAIL=NAME (xc_domain_iomem_permission,
 * xc_domain_ioport_permission, xc_domain_irq_permission) fails every call of
 * NAME that gives a permission with EPERM; XC_TRACE_FAIL=xc_assign_device:BDF
 * fails every assignment of that one device to a guest with EIO (one device of
 * a multi-device assign, say).
 *
 * A test tool, not part of passguard. The libxenctrl prototypes are the
 * interposer's (integrations/xc-interposer/xc-protos.h), checked against Xen's.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "passguard.h"
#include "xc-protos.h"

/* Two more libxenctrl calls, QEMU's, as Xen 4.17's xenctrl.h declares them. */
int xc_domain_memory_mapping(xc_interface *xch, uint32_t domid, unsigned long first_gfn,
                             unsigned long first_mfn, unsigned long nr_mfns, uint32_t add_mapping);
int xc_domain_bind_pt_pci_irq(xc_interface *xch, uint32_t domid, uint8_t machine_irq,
                              uint8_t bus, uint8_t device, uint8_t intx);

#define SBDF_FMT "%04x:%02x:%02x.%u"
#define SBDF_ARGS(s) (s) >> 16, ((s) >> 8) & 0xff, ((s) >> 3) & 0x1f, (s) & 7

__attribute__((format(printf, 1, 2))) static void trace(const char *fmt, ...)
{
        const char *path = getenv("XC_TRACE_FILE");
        char line[640];
        struct timespec ts;
        va_list ap;
        int fd, n, m;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        n = snprintf(line, sizeof(line), "XCT %ld.%06ld pid=%d %s ", (long)ts.tv_sec,
                     ts.tv_nsec / 1000, (int)getpid(), program_invocation_short_name);
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        n = m < 0 ? n : n + m;
        if (n > (int)sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        fd = open(path ? path : "/tmp/xc-trace.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                  0644);
        if (fd < 0)
                return;
        /* The raw syscall: write() itself is traced below. */
        (void)!syscall(SYS_write, fd, line, (size_t)n);
        close(fd);
}

static void *next(const char *name)
{
        void *f = dlsym(RTLD_NEXT, name);

        if (!f) {
                trace("dlsym(%s) failed: %s", name, dlerror());
                abort();
        }
        return f;
}

/* Log "rc=R errno=E" for a call that returns -1 and sets errno. */
#define RESULT(rc, e) (rc), (rc) < 0 ? (e) : 0

/* ---- libxenctrl ---- */

/* XC_TRACE_FAIL names this call: fail it, as the hypervisor might. */
static bool inject_fail(const char *name, uint32_t domid, bool allow)
{
        const char *f = getenv("XC_TRACE_FAIL");

        if (!allow || !f || strcmp(f, name) != 0)
                return false;
        trace("INJECT fail %s d%u", name, domid);
        errno = EPERM;
        return true;
}

static int race_domid(void)
{
        const char *path = getenv("XC_TRACE_RACE");
        char buf[16] = "";
        int fd, n;

        path = path ? path : "/tmp/xc-trace.race";
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = (int)read(fd, buf, sizeof(buf) - 1);
        close(fd);
        unlink(path);
        return n > 0 ? atoi(buf) : -1;
}

int xc_test_assign_device(xc_interface *xch, uint32_t domid, uint32_t sbdf)
{
        int (*f)(xc_interface *, uint32_t, uint32_t) = next("xc_test_assign_device");
        int rc = f(xch, domid, sbdf), e = errno, thief;

        trace("xc_test_assign_device d%u " SBDF_FMT " rc=%d errno=%d", domid, SBDF_ARGS(sbdf),
              RESULT(rc, e));
        /* The last check before an assignment is the test-assign for the guest itself. */
        if (rc == 0 && domid < XC_DOMID_FIRST_RESERVED && (thief = race_domid()) >= 0 &&
            (uint32_t)thief != domid) {
                int (*a)(xc_interface *, uint32_t, uint32_t, uint32_t) = next("xc_assign_device");
                int r2 = a(xch, (uint32_t)thief, sbdf, 0);

                trace("INJECT race: a second toolstack assigned " SBDF_FMT
                      " to d%d behind the first one's back rc=%d errno=%d",
                      SBDF_ARGS(sbdf), thief, RESULT(r2, errno));
        }
        errno = e;
        return rc;
}

/* XC_TRACE_FAIL=xc_assign_device:BDF names this guest assignment. */
static bool inject_assign_fail(uint32_t domid, uint32_t sbdf)
{
        const char *f = getenv("XC_TRACE_FAIL");
        char bdf[32];

        if (!f || strncmp(f, "xc_assign_device:", 17) != 0 || domid >= XC_DOMID_FIRST_RESERVED)
                return false;
        snprintf(bdf, sizeof(bdf), SBDF_FMT, SBDF_ARGS(sbdf));
        if (strcmp(f + 17, bdf) != 0)
                return false;
        trace("INJECT fail xc_assign_device d%u %s", domid, bdf);
        errno = EIO;
        return true;
}

int xc_assign_device(xc_interface *xch, uint32_t domid, uint32_t sbdf, uint32_t flag)
{
        int (*f)(xc_interface *, uint32_t, uint32_t, uint32_t) = next("xc_assign_device");

        if (inject_assign_fail(domid, sbdf))
                return -1;
        int rc = f(xch, domid, sbdf, flag), e = errno;

        trace("xc_assign_device d%u " SBDF_FMT " flag=%u rc=%d errno=%d", domid, SBDF_ARGS(sbdf),
              flag, RESULT(rc, e));
        errno = e;
        return rc;
}

int xc_deassign_device(xc_interface *xch, uint32_t domid, uint32_t sbdf)
{
        int (*f)(xc_interface *, uint32_t, uint32_t) = next("xc_deassign_device");
        int rc = f(xch, domid, sbdf), e = errno;

        trace("xc_deassign_device d%u " SBDF_FMT " rc=%d errno=%d", domid, SBDF_ARGS(sbdf),
              RESULT(rc, e));
        errno = e;
        return rc;
}

int xc_domain_iomem_permission(xc_interface *xch, uint32_t domid, unsigned long first_mfn,
                               unsigned long nr_mfns, uint8_t allow)
{
        int (*f)(xc_interface *, uint32_t, unsigned long, unsigned long, uint8_t) =
                next("xc_domain_iomem_permission");

        if (inject_fail("xc_domain_iomem_permission", domid, allow))
                return -1;
        int rc = f(xch, domid, first_mfn, nr_mfns, allow), e = errno;

        trace("xc_domain_iomem_permission d%u mfn=0x%lx nr=%lu allow=%u rc=%d errno=%d", domid,
              first_mfn, nr_mfns, allow, RESULT(rc, e));
        errno = e;
        return rc;
}

int xc_domain_ioport_permission(xc_interface *xch, uint32_t domid, uint32_t first_port, uint32_t nr_ports,
                                uint32_t allow)
{
        int (*f)(xc_interface *, uint32_t, uint32_t, uint32_t, uint32_t) =
                next("xc_domain_ioport_permission");

        if (inject_fail("xc_domain_ioport_permission", domid, allow))
                return -1;
        int rc = f(xch, domid, first_port, nr_ports, allow), e = errno;

        trace("xc_domain_ioport_permission d%u port=0x%x nr=%u allow=%u rc=%d errno=%d", domid,
              first_port, nr_ports, allow, RESULT(rc, e));
        errno = e;
        return rc;
}

int xc_domain_irq_permission(xc_interface *xch, uint32_t domid, uint32_t pirq, bool allow)
{
        int (*f)(xc_interface *, uint32_t, uint32_t, bool) = next("xc_domain_irq_permission");

        if (inject_fail("xc_domain_irq_permission", domid, allow))
                return -1;
        int rc = f(xch, domid, pirq, allow), e = errno;

        trace("xc_domain_irq_permission d%u pirq=%u allow=%d rc=%d errno=%d", domid, pirq, allow,
              RESULT(rc, e));
        errno = e;
        return rc;
}

int xc_physdev_map_pirq(xc_interface *xch, uint32_t domid, int index, int *pirq)
{
        int (*f)(xc_interface *, uint32_t, int, int *) = next("xc_physdev_map_pirq");
        int rc = f(xch, domid, index, pirq), e = errno;

        trace("xc_physdev_map_pirq d%u index=%d pirq=%d rc=%d errno=%d", domid, index,
              pirq ? *pirq : -1, RESULT(rc, e));
        errno = e;
        return rc;
}

int xc_domain_memory_mapping(xc_interface *xch, uint32_t domid, unsigned long first_gfn,
                             unsigned long first_mfn, unsigned long nr_mfns, uint32_t add)
{
        int (*f)(xc_interface *, uint32_t, unsigned long, unsigned long, unsigned long, uint32_t) =
                next("xc_domain_memory_mapping");
        int rc = f(xch, domid, first_gfn, first_mfn, nr_mfns, add), e = errno;

        trace("xc_domain_memory_mapping d%u gfn=0x%lx mfn=0x%lx nr=%lu add=%u rc=%d errno=%d",
              domid, first_gfn, first_mfn, nr_mfns, add, RESULT(rc, e));
        errno = e;
        return rc;
}

int xc_domain_bind_pt_pci_irq(xc_interface *xch, uint32_t domid, uint8_t machine_irq, uint8_t bus,
                              uint8_t device, uint8_t intx)
{
        int (*f)(xc_interface *, uint32_t, uint8_t, uint8_t, uint8_t, uint8_t) =
                next("xc_domain_bind_pt_pci_irq");
        int rc = f(xch, domid, machine_irq, bus, device, intx), e = errno;

        trace("xc_domain_bind_pt_pci_irq d%u irq=%u rc=%d errno=%d", domid, machine_irq,
              RESULT(rc, e));
        errno = e;
        return rc;
}

/* ---- libpassguard ---- */

int pg_assign(struct pg *pg, const char *domain, uint32_t domid, const char *bdf, unsigned flags,
              struct pg_grant **ret)
{
        int (*f)(struct pg *, const char *, uint32_t, const char *, unsigned,
                 struct pg_grant **) = next("pg_assign");
        int rc = f(pg, domain, domid, bdf, flags, ret);

        trace("pg_assign d%u %s rc=%d", domid, bdf, rc);
        return rc;
}

int pg_release(struct pg *pg, const char *domain, uint32_t domid, const char *bdf)
{
        int (*f)(struct pg *, const char *, uint32_t, const char *) = next("pg_release");
        int rc = f(pg, domain, domid, bdf);

        trace("pg_release d%u %s rc=%d", domid, bdf, rc);
        return rc;
}

int pg_prepare(struct pg *pg, const char *bdf)
{
        int (*f)(struct pg *, const char *) = next("pg_prepare");
        int rc = f(pg, bdf);

        trace("pg_prepare %s rc=%d", bdf, rc);
        return rc;
}

int pg_unprepare(struct pg *pg, const char *bdf)
{
        int (*f)(struct pg *, const char *) = next("pg_unprepare");
        int rc = f(pg, bdf);

        trace("pg_unprepare %s rc=%d", bdf, rc);
        return rc;
}

/* ---- QMP: what libxl asks QEMU ---- */

/* The domid of a QMP socket, /var/run/xen/qmp-libxl-<domid>; -1 for other fds. */
static int qmp_domid(int fd)
{
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        const char *p;

        if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX)
                return -1;
        sa.sun_path[sizeof(sa.sun_path) - 1] = '\0';
        p = strstr(sa.sun_path, "qmp-libxl-");
        return p ? atoi(p + strlen("qmp-libxl-")) : -1;
}

static void trace_qmp(int fd, const void *buf, size_t len)
{
        static const char *const commands[] = {"device_add", "device_del"};
        char cmd[32];
        const char *host;

        if (len < 16 || !memmem(buf, len, "\"execute\"", 9))
                return;
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                snprintf(cmd, sizeof(cmd), "\"%s\"", commands[i]);
                if (!memmem(buf, len, cmd, strlen(cmd)))
                        continue;
                host = memmem(buf, len, "\"hostaddr\":\"", 12);
                trace("QMP %s d%d %.12s", commands[i], qmp_domid(fd),
                      host && (size_t)(host + 24 - (const char *)buf) <= len ? host + 12 : "-");
        }
}

ssize_t write(int fd, const void *buf, size_t len)
{
        ssize_t n = syscall(SYS_write, fd, buf, len);
        int e = errno;

        if (n > 0)
                trace_qmp(fd, buf, (size_t)n);
        errno = e;
        return n;
}
