/* SPDX-License-Identifier: MIT */
/*
 * hv-sim: a simulated host kept in one JSON file (DESIGN.md "Simulated host
 * file"), in three files by concern:
 *   hv-sim-host.c  the host in memory: the file's format, parsed and written
 *                  back, its devices, domains, counters and faults
 *   hv-sim-file.c  the file: its lock, reading it again only when someone
 *                  else replaced it, writing it durably, watching it
 *   hv-sim.c       the backend (struct hv_ops): what real Xen answers
 * This header is theirs alone; the daemon sees hv_sim_ops (hv.h).
 * The file is the whole hypervisor: every change is in the file
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
 * Optional additions to DESIGN.md's fields: a device's "serial" (its PCIe
 * Device Serial Number, "xx-xx-xx-xx-xx-xx-xx-xx" lowercase; absent: it has
 * none) and "path" (its chain of bridges, "pci0000:00/0000:00:01.0"; absent:
 * unknown), and the top-level "root_devices" (the BDFs holding dom0's root
 * file system, as hv-xen finds them in sysfs; absent: none).
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
 * Test-only, and only here: $PASSGUARD_SIM_XEN_PROBE_ROOT is prepended to
 * /proc/xen and /dev/xen/privcmd when probing for a real Xen host, so that
 * the refusal to run on one can itself be tested; $PASSGUARD_TEST_CRASH names
 * the step of a change (hv_ops.crash_point) at which the daemon is killed,
 * so that tests prove recovery from a crash at every step. The Xen backend
 * has neither.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "hv.h"
#include "pg-util.h"

#define SIM_FILE_MAX (8 * 1024 * 1024)

struct sim_host;

struct hv {
        char *path;      /* the host file, absolute */
        char *lock_path; /* FILE.lock */
        char *tmp_path;  /* FILE.tmp */
        char *dir;       /* its directory (watched) */
        char *base;      /* its name in dir */
        char *tmp_base;  /* FILE.tmp's name in dir */
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
        bool deferring;   /* defer(): changes wait for defer(false) to be written */
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
        char *crash_at; /* $PASSGUARD_TEST_CRASH: the step of a change to die at, or NULL */
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
        char driver[HV_DRIVER_MAX]; /* "" for none */
        json_int_t group;
        char reset[8];  /* "flr", "bus" or "" */
        uint32_t owner; /* HV_DOMID_DOM0, HV_DOMID_IO or a guest */
        char serial[HV_SERIAL_MAX];  /* "" none */
        char path[HV_PCI_PATH_MAX];  /* "" unknown */
        int rdm_regions;             /* -1: the file does not say */
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
        uint32_t *root_devices; /* "root_devices", sorted */
        size_t n_root_devices;
        json_t *faults; /* borrowed, or NULL */
        json_t *calls;  /* borrowed, always set */
        bool changed;   /* the host changed: written before the call returns (or at defer(false)) */
        bool dirty;     /* counters (or a derived quarantine) not in the file yet */
        size_t text_len; /* the length of the last text made: the next one's first guess */
};

/* ---- the host in memory (hv-sim-host.c) ---- */

struct sim_host *pgd_sim_host_free(struct sim_host *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct sim_host *, pgd_sim_host_free);
/* The file's text, strictly: -EBADMSG for anything but a valid host. */
int pgd_sim_host_parse(const char *text, size_t len, struct sim_host **ret);
/* The file's text for h; a device's or domain's text is made again only when it changed. */
int pgd_sim_host_format(struct sim_host *h, char **ret, size_t *ret_len);
struct sim_domain *pgd_sim_find_domain(struct sim_host *h, uint32_t domid);
struct sim_device *pgd_sim_find_device(struct sim_host *h, uint32_t sbdf);
/* Change a device (its text with it): -ENOMEM. */
int pgd_sim_set_owner(struct sim_device *dev, uint32_t owner);
int pgd_sim_set_driver(struct sim_device *dev, const char *driver);
/* calls.NAME + 1 (in memory: written with the next write). */
int pgd_sim_count_call(struct sim_host *h, const char *name);
/* The injected errno for op on sbdf (negative), or 0. */
int pgd_sim_fault(struct sim_host *h, const char *op, uint32_t sbdf);

/* ---- the file (hv-sim-file.c) ---- */

/* flock(), EINTR retried. */
int pgd_sim_lock(int fd, int op);
/* Take the lock as the protocol says, unless hold() has it already; and give it back. */
int pgd_sim_host_lock(struct hv *hv, int op);
void pgd_sim_host_unlock(struct hv *hv);
/* Forget the host in memory: the next call reads the file. */
void pgd_sim_host_forget(struct hv *hv);
/* Under the lock: the host as the file has it, read again only when someone else replaced it. */
int pgd_sim_host_refresh(struct hv *hv, struct sim_host **ret);
/* The same, taking and giving back a shared lock. */
int pgd_sim_host_read(struct hv *hv, struct sim_host **ret);
/* Keep the file just written open, so that its identity tells a later change. */
int pgd_sim_host_pin(struct hv *hv);
/* Under the exclusive lock: write h durably as the file. */
int pgd_sim_host_save(struct hv *hv, struct sim_host *h);
/* -EPERM on a real Xen host (/proc/xen or /dev/xen/privcmd), 0 otherwise. */
int pgd_sim_probe_real_xen(void);
/* Watch the file's directory (the inotify instance is hv->inotify_fd). */
int pgd_sim_watch_dir(struct hv *hv);
int pgd_sim_watch_fd(struct hv *hv);
int pgd_sim_watch_drain(struct hv *hv);
