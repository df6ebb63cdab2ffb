/* SPDX-License-Identifier: MIT */
/*
 * Make one libxenctrl call, as libxl would, and print its result:
 *   xc-driver CALL DOMID ARGS...     -> "rc=R errno=NAME"
 * CALL: test_assign DOMID SBDF | assign DOMID SBDF FLAG | deassign DOMID SBDF |
 *       iomem DOMID MFN NR ALLOW | ioport DOMID PORT NR ALLOW |
 *       irq DOMID PIRQ ALLOW | map_pirq DOMID INDEX
 * Numbers in any base strtoul takes; SBDF as "ssss:bb:dd.f". Linked against
 * fake-xenctrl, so that a preloaded libpassguard-xc.so sits in between.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xc-protos.h"

static unsigned long num(const char *s)
{
        return strtoul(s, NULL, 0);
}

static uint32_t sbdf(const char *s)
{
        unsigned seg, bus, dev, fn;

        if (sscanf(s, "%x:%x:%x.%u", &seg, &bus, &dev, &fn) != 4) {
                fprintf(stderr, "bad BDF %s\n", s);
                exit(2);
        }
        return seg << 16 | bus << 8 | dev << 3 | fn;
}

int main(int argc, char **argv)
{
        const char *call = argc > 2 ? argv[1] : "";
        uint32_t domid = argc > 2 ? (uint32_t)num(argv[2]) : 0;
        int rc, pirq = -1;

        errno = 0;
        if (strcmp(call, "test_assign") == 0 && argc == 4)
                rc = xc_test_assign_device(NULL, domid, sbdf(argv[3]));
        else if (strcmp(call, "assign") == 0 && argc == 5)
                rc = xc_assign_device(NULL, domid, sbdf(argv[3]), (uint32_t)num(argv[4]));
        else if (strcmp(call, "deassign") == 0 && argc == 4)
                rc = xc_deassign_device(NULL, domid, sbdf(argv[3]));
        else if (strcmp(call, "iomem") == 0 && argc == 6)
                rc = xc_domain_iomem_permission(NULL, domid, num(argv[3]), num(argv[4]),
                                                (uint8_t)num(argv[5]));
        else if (strcmp(call, "ioport") == 0 && argc == 6)
                rc = xc_domain_ioport_permission(NULL, domid, (uint32_t)num(argv[3]),
                                                 (uint32_t)num(argv[4]), (uint32_t)num(argv[5]));
        else if (strcmp(call, "irq") == 0 && argc == 5)
                rc = xc_domain_irq_permission(NULL, domid, (uint32_t)num(argv[3]),
                                              num(argv[4]) != 0);
        else if (strcmp(call, "map_pirq") == 0 && argc == 4)
                rc = xc_physdev_map_pirq(NULL, domid, (int)num(argv[3]), &pirq);
        else {
                fprintf(stderr, "usage: xc-driver CALL DOMID ARGS...\n");
                return 2;
        }
        printf("rc=%d errno=%s\n", rc, rc < 0 ? strerrorname_np(errno) : "0");
        return 0;
}
