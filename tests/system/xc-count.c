/* SPDX-License-Identifier: MIT */
/*
 * xc-count: an LD_PRELOAD shim for the system suite that records every
 * assign/deassign/test-assign call a process makes into libxenctrl, one line
 * per call in $XC_COUNT_FILE ("assign DOMID SBDF RC"), then makes the real
 * call. It is how the no-IOMMU test proves that no assign call was made: Xen
 * itself logs nothing for a refused assign.
 *
 * The prototypes mirror libxenctrl's; the handle stays opaque here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int xc_assign_device(void *xch, uint32_t domid, uint32_t sbdf, uint32_t flag);
int xc_deassign_device(void *xch, uint32_t domid, uint32_t sbdf);
int xc_test_assign_device(void *xch, uint32_t domid, uint32_t sbdf);

static void record(const char *what, uint32_t domid, uint32_t sbdf, int rc, int err)
{
        const char *path = getenv("XC_COUNT_FILE");
        char line[128];
        int fd, n;

        if (!path)
                return;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        n = snprintf(line, sizeof(line), "%s %u 0x%08x rc=%d errno=%d\n", what, domid, sbdf, rc,
                     rc < 0 ? err : 0);
        if (write(fd, line, (size_t)n) < 0)
                n = 0;
        close(fd);
}

typedef int assign_fn(void *, uint32_t, uint32_t, uint32_t);
typedef int dev_fn(void *, uint32_t, uint32_t);

static void *real(const char *name)
{
        void *f = dlsym(RTLD_NEXT, name);

        if (!f) {
                fprintf(stderr, "xc-count: no %s\n", name);
                abort();
        }
        return f;
}

int xc_assign_device(void *xch, uint32_t domid, uint32_t sbdf, uint32_t flag)
{
        assign_fn *f = (assign_fn *)real("xc_assign_device");
        int rc = f(xch, domid, sbdf, flag), err = errno;

        record("assign", domid, sbdf, rc, err);
        errno = err;
        return rc;
}

int xc_deassign_device(void *xch, uint32_t domid, uint32_t sbdf)
{
        dev_fn *f = (dev_fn *)real("xc_deassign_device");
        int rc = f(xch, domid, sbdf), err = errno;

        record("deassign", domid, sbdf, rc, err);
        errno = err;
        return rc;
}

int xc_test_assign_device(void *xch, uint32_t domid, uint32_t sbdf)
{
        dev_fn *f = (dev_fn *)real("xc_test_assign_device");
        int rc = f(xch, domid, sbdf), err = errno;

        record("test_assign", domid, sbdf, rc, err);
        errno = err;
        return rc;
}
