/* SPDX-License-Identifier: MIT */
/*
 * The libxenctrl calls the interposer replaces, declared exactly as Xen 4.17's
 * xenctrl.h declares them (tests/unit/interposer compiles this header after
 * xenctrl.h, so a mismatch is a build error there). passguard includes no Xen
 * header outside daemon/hv-xen.c; the handle stays opaque.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct xc_interface_core xc_interface;

int xc_test_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf);
int xc_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf, uint32_t flag);
int xc_deassign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf);
int xc_domain_iomem_permission(xc_interface *xch, uint32_t domid, unsigned long first_mfn,
                               unsigned long nr_mfns, uint8_t allow_access);
int xc_domain_ioport_permission(xc_interface *xch, uint32_t domid, uint32_t first_port,
                                uint32_t nr_ports, uint32_t allow_access);
int xc_domain_irq_permission(xc_interface *xch, uint32_t domid, uint32_t pirq, bool allow_access);
int xc_physdev_map_pirq(xc_interface *xch, uint32_t domid, int index, int *pirq);

/* From xen/domctl.h and xen/xen.h. */
#define XC_DEV_RDM_RELAXED 1U          /* XEN_DOMCTL_DEV_RDM_RELAXED */
#define XC_DOMID_FIRST_RESERVED 0x7FF0U /* DOMID_FIRST_RESERVED */
#define XC_DOMID_IO 0x7FF1U             /* DOMID_IO: quarantine */
