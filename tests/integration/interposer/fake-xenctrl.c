/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for the libxenctrl functions libpassguard-xc.so replaces, for the
 * interposer's integration test on the simulated host: each call appends
 * "NAME DOMID ARGS" to $FAKE_XC_LOG and succeeds. On real Xen the system suite
 * runs the interposer against the real libxenctrl.
 */
#include <stdio.h>
#include <stdlib.h>

#include "xc-protos.h"

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stdarg.h>
static void record(const char *fmt, ...)
{
        const char *path = getenv("FAKE_XC_LOG");
        va_list ap;
        FILE *f;

        if (!path || !(f = fopen(path, "ae")))
                return;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
        fclose(f);
}

int xc_test_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf)
{
        record("test_assign %u 0x%x", domid, machine_sbdf);
        return 0;
}

int xc_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf, uint32_t flag)
{
        record("assign %u 0x%x %u", domid, machine_sbdf, flag);
        return 0;
}

int xc_deassign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf)
{
        record("deassign %u 0x%x", domid, machine_sbdf);
        return 0;
}

int xc_domain_iomem_permission(xc_interface *xch, uint32_t domid, unsigned long first_mfn,
                               unsigned long nr_mfns, uint8_t allow_access)
{
        record("iomem %u 0x%lx %lu %u", domid, first_mfn, nr_mfns, allow_access);
        return 0;
}

int xc_domain_ioport_permission(xc_interface *xch, uint32_t domid, uint32_t first_port,
                                uint32_t nr_ports, uint32_t allow_access)
{
        record("ioport %u 0x%x %u %u", domid, first_port, nr_ports, allow_access);
        return 0;
}

int xc_domain_irq_permission(xc_interface *xch, uint32_t domid, uint32_t pirq, bool allow_access)
{
        record("irq %u %u %d", domid, pirq, allow_access);
        return 0;
}

int xc_physdev_map_pirq(xc_interface *xch, uint32_t domid, int index, int *pirq)
{
        record("map_pirq %u %d", domid, index);
        *pirq = index;
        return 0;
}
