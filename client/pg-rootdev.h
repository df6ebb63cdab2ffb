/* SPDX-License-Identifier: MIT */
/*
 * Which PCI devices hold the root file system (rootdev.c): shared by
 * `passguard policy generate`, which puts them in the policy's protected
 * list, and passguardd, which protects them at start-up unless the policy
 * says protect_root_device = false. No logging: -errno on failure.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * The PCI functions under the block device that holds "/" (its mount's
 * source when that is a /dev node, else the st_dev of "/"), found through
 * SYSFS/dev/block/MAJOR:MINOR: the nearest PCI address in the device's
 * sysfs path, or, for a partition, its disk's; for a device-mapper or md
 * device, those of every slave, recursively. Sorted, without duplicates;
 * *ret (freed with free()) may be empty. -ENODEV when "/" is on no block
 * device (tmpfs, a network file system).
 */
int pg_rootdev_pci(const char *sysfs, uint32_t **ret, size_t *ret_n);
