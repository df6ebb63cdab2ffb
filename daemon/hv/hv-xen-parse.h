/* SPDX-License-Identifier: MIT */
/*
 * The parts of the Xen backend that need no hypervisor (hv-xen-parse.c):
 * sysfs under a given root, and the parsers for text that Xen prints into its
 * console ring. No Xen header: built and unit-tested on any machine.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hv.h"

/*
 * The Device Serial Number in a function's config space, as sysfs's config
 * file gives it (len bytes from offset 0): the extended capability 0x0003
 * of the list that starts at 0x100. 1 and *ret when found; 0 when the
 * device has none (a conventional function: 256 bytes, or no such
 * capability); -ENODATA when the extended space is not there to read (the
 * kernel shows only 64 bytes to a reader without CAP_SYS_ADMIN), or reads
 * all ones (a device that does not answer: powered off, gone); -EBADMSG
 * for a capability list that loops or leaves the space.
 */
int pgd_xen_parse_dsn(const uint8_t *config, size_t len, uint64_t *ret);
/*
 * The same walk over a config space of len bytes (sysfs's file size) read a
 * dword at a time by read32 (0, or -errno: -ENODATA for one it cannot read).
 */
int pgd_xen_walk_dsn(size_t len, int (*read32)(void *userdata, size_t at, uint32_t *ret),
                     void *userdata, uint64_t *ret);
/* A serial number as lspci prints it: "00-1b-21-ff-ff-a1-b2-c3", most significant byte first. */
void pgd_xen_format_serial(uint64_t dsn, char ret[static HV_SERIAL_MAX]);
/*
 * The PCI path of a function from the target of its sysfs link
 * (".../devices/pci0000:00/0000:00:01.0/0000:01:00.0"): the chain above it,
 * "pci0000:00/0000:00:01.0". "" when the target has no devices/pci part.
 */
void pgd_xen_parse_pci_path(const char *target, char *ret, size_t size);

/* Facts about SSSS:BB:DD.F from ROOT/bus/pci/devices/; -ENODEV when absent. */
int pgd_xen_sysfs_pci_info(const char *root, uint32_t sbdf, struct hv_pci_info *ret);
/* Every function in ROOT/bus/pci/devices/, sorted; *ret freed with free(). */
int pgd_xen_sysfs_pci_list(const char *root, uint32_t **ret, size_t *ret_n);
/* Write "1" to the function's reset file; -ENOTTY when it has none. */
int pgd_xen_sysfs_pci_reset(const char *root, uint32_t sbdf);
/*
 * Unbind the dom0 driver (its name in ret_driver, "" for none or when it is
 * pciback already) and bind pciback (new_slot, bind), as xl pci-assignable-add.
 */
int pgd_xen_sysfs_bind_pciback(const char *root, uint32_t sbdf, char ret_driver[HV_DRIVER_MAX]);
/* Unbind pciback (unbind, remove_slot); then bind DRIVER when not NULL or "". */
int pgd_xen_sysfs_unbind_pciback(const char *root, uint32_t sbdf, const char *driver);

/*
 * The owner of every device in the LAST 'Q' (dump PCI devices) output found in
 * TEXT, console-ring lines such as (Xen 4.17)
 *     (XEN) ==== PCI devices ====
 *     (XEN) ==== segment 0000 ====
 *     (XEN) 0000:00:02.0 - DomIO:8001 - node -1
 *     (XEN) 0000:00:01.0 - d0 - node -1
 * "d0" is dom0, "DomIO:<pseudo-domid>" or "d[IO]" quarantine (HV_DOMID_IO),
 * "dN" a guest, "d[XEN]" Xen's own (PG_DOMID_XEN). -ENOENT when
 * TEXT holds no complete dump. *ret (all devices, dom0's included) freed with free().
 */
int pgd_xen_parse_pci_dump(const char *text, size_t len, struct hv_assignment **ret, size_t *ret_n);
/*
 * What Xen's boot messages in TEXT say about interrupt remapping: 1 enabled,
 * 0 disabled (or no IOMMU at all), -1 when they do not say.
 */
int pgd_xen_parse_intremap(const char *text, size_t len);
