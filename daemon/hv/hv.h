/* SPDX-License-Identifier: MIT */
/*
 * The host backend: everything passguardd knows about a host goes through
 * struct hv_ops. hv-xen.c talks to the real hypervisor (libxenctrl,
 * libxenstore, sysfs); hv-sim.c keeps a simulated host in a JSON file and
 * answers with exactly the errnos real Xen 4.17 gives.
 *
 * Every function returns >= 0 on success or a negative errno. Hypervisor calls
 * return the hypervisor's own errno unchanged (-EOPNOTSUPP, -EINVAL, -EBUSY,
 * -ENODEV, ...): interpreting them is the daemon's business, not the backend's.
 * Output parameters are written only on success.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg-wire.h"

/* The domain ids of pg-wire.h, in the backend's words. */
#define HV_DOMID_DOM0 PG_DOMID_DOM0
#define HV_DOMID_IO PG_DOMID_IO           /* quarantine */
#define HV_DOMID_INVALID PG_DOMID_INVALID /* "any guest" for test-assign */

#define HV_NAME_MAX 64
#define HV_UUID_MAX PG_UUID_MAX
#define HV_DRIVER_MAX 64
/* "xx-xx-xx-xx-xx-xx-xx-xx", as lspci prints a Device Serial Number, and its NUL */
#define HV_SERIAL_MAX 24
#define HV_PCI_PATH_MAX 160
#define HV_RESET_METHODS_MAX 64

struct hv_domain {
        uint32_t domid;
        char name[HV_NAME_MAX]; /* "" when the domain has no name in xenstore */
        char uuid[HV_UUID_MAX]; /* lowercase, always set */
        enum pg_domain_type type;
        bool dying;
};

struct hv_caps {
        bool iommu;              /* XEN_SYSCTL_PHYSCAP_directio */
        int interrupt_remapping; /* 1 yes, 0 no, -1 unknown */
};

/* Facts about one PCI function, from sysfs. */
struct hv_pci_info {
        uint32_t sbdf;
        uint16_t vendor, device;
        uint16_t subsystem_vendor, subsystem_device;
        uint32_t class;             /* 24 bits: base, sub, prog-if */
        char driver[HV_DRIVER_MAX]; /* bound dom0 driver ("pciback"), "" for none */
        bool has_reset;             /* the kernel offers a reset */
        char reset_method[32];      /* "flr", "bus", ... or "" when unknown */
        /* every method the kernel has for it, in its order ("flr pm bus"), "" when unknown */
        char reset_methods[HV_RESET_METHODS_MAX];
        bool has_physfn;            /* an SR-IOV virtual function */
        uint32_t physfn;            /* its physical function */
        /*
         * Its PCIe Device Serial Number (the extended capability of its
         * config space), "" when it has none; serial_unknown when the config
         * space could not be read. Its PCI path: the chain of bridges above
         * it as sysfs has it under devices/, "pci0000:00/0000:00:01.0", ""
         * when unknown.
         */
        char serial[HV_SERIAL_MAX];
        bool serial_unknown;
        char path[HV_PCI_PATH_MAX];
        /*
         * How many reserved memory regions (Intel's RMRRs, AMD's IVMD unity
         * maps) the hypervisor holds for the device, as Xen says
         * (XENMEM_reserved_device_memory_map); -1 when the host does not say.
         */
        int rdm_regions;
};

/* Who owns a device in the hypervisor. */
struct hv_assignment {
        uint32_t sbdf;
        uint32_t domid; /* a guest, or HV_DOMID_IO */
};

struct hv; /* the backend's private state */

struct hv_config {
        const char *sim_host;   /* hv-sim: the host file */
        const char *sysfs_root; /* hv-xen: default "/sys" */
};

struct hv_ops {
        const char *name; /* "xen" or "sim" */

        int (*open)(const struct hv_config *cfg, struct hv **ret);
        struct hv *(*close)(struct hv *hv);

        int (*host_caps)(struct hv *hv, struct hv_caps *ret);

        /* -ESRCH when there is no such domain. */
        int (*domain_get)(struct hv *hv, uint32_t domid, struct hv_domain *ret);
        /* -ESRCH when no domain has that name. */
        int (*domain_by_name)(struct hv *hv, const char *name, struct hv_domain *ret);
        /* Every domain, dom0 included; *ret freed with free(). */
        int (*domain_list)(struct hv *hv, struct hv_domain **ret, size_t *ret_n);

        /* The hypervisor's test-assign; domid HV_DOMID_INVALID means any guest. */
        int (*test_assign)(struct hv *hv, uint32_t domid, uint32_t sbdf);
        int (*assign)(struct hv *hv, uint32_t domid, uint32_t sbdf, bool rdm_relaxed);
        int (*deassign)(struct hv *hv, uint32_t domid, uint32_t sbdf);
        /* The other members of sbdf's IOMMU group (sbdf itself excluded). */
        int (*device_group)(struct hv *hv, uint32_t sbdf, uint32_t **ret, size_t *ret_n);

        /*
         * The owner of a device as the hypervisor sees it: HV_DOMID_DOM0,
         * HV_DOMID_IO (quarantined) or a guest's domid. -ENODEV when the
         * hypervisor does not know the device.
         */
        int (*device_owner)(struct hv *hv, uint32_t sbdf, uint32_t *ret_domid);
        /* Every device not owned by dom0; *ret freed with free(). */
        int (*assignments)(struct hv *hv, struct hv_assignment **ret, size_t *ret_n);

        /*
         * An fd (owned by the backend) that becomes readable when domains come
         * or go, or the host changes; watch_drain() consumes the events and
         * returns > 0 when something may have changed, 0 when the events were
         * the backend's own. The daemon then rescans: an event never says
         * which domain.
         */
        int (*watch_fd)(struct hv *hv);
        int (*watch_drain)(struct hv *hv);

        /* sysfs facts; -ENODEV when the device does not exist. */
        int (*pci_info)(struct hv *hv, uint32_t sbdf, struct hv_pci_info *ret);
        /* Every PCI function the host has; *ret freed with free(). */
        int (*pci_list)(struct hv *hv, uint32_t **ret, size_t *ret_n);
        /* Reset the function through sysfs; the result is checked. */
        int (*pci_reset)(struct hv *hv, uint32_t sbdf);
        /*
         * prepare: unbind the dom0 driver (its name returned in ret_driver, ""
         * for none), bind pciback, quarantine (assign to DOMID_IO).
         */
        int (*pci_prepare)(struct hv *hv, uint32_t sbdf, char ret_driver[HV_DRIVER_MAX]);
        /* unprepare: deassign from DOMID_IO, unbind pciback, rebind driver (may be ""). */
        int (*pci_unprepare)(struct hv *hv, uint32_t sbdf, const char *driver);

        /*
         * The PCI devices that hold dom0's root file system (the disk's
         * controller, or every controller under a device-mapper or md
         * device), sorted; none when it is not on a PCI block device.
         * *ret freed with free().
         */
        int (*root_devices)(struct hv *hv, uint32_t **ret, size_t *ret_n);

        /*
         * Optional (NULL when the backend has nothing to hold back). Between
         * hold() and flush() the daemon asks a burst of questions: the backend
         * may keep bookkeeping that changes nothing of the host (hv-sim's call
         * counters) in memory, and make it visible at flush(), which the
         * daemon calls within about a millisecond. A change of the host is
         * not held back, unless the daemon defers it (defer(), below): it
         * has happened when its call returns.
         */
        int (*hold)(struct hv *hv);
        int (*flush)(struct hv *hv);
        /*
         * Optional (NULL on a real host, whose calls are never held back).
         * While held, between defer(hv, true) and defer(hv, false), the calls
         * that change the host may leave the record of the change (hv-sim's
         * file) to defer(hv, false): one write for a batch of calls. The
         * daemon writes no record of those calls before that (commit.c), so
         * that a crash in between loses the calls and their records together.
         * defer(hv, false) returns -errno when the host could not be
         * written: the batch's calls did not happen, and the daemon drops
         * their records and breaks the store, so that the changes are undone.
         */
        int (*defer)(struct hv *hv, bool on);

        /*
         * Optional, a test seam (hv-sim only; NULL on a real host): the
         * daemon names each step of a change as it passes it ("assign:before-hv",
         * "assign:after-hv", "assign:after-commit", the same for release), and
         * the backend may end the process right there, as a crash would.
         */
        void (*crash_point)(struct hv *hv, const char *name);
};

extern const struct hv_ops hv_sim_ops;
extern const struct hv_ops hv_xen_ops;

/* The backend by name ("xen", "sim"), or NULL when not built in. */
const struct hv_ops *pgd_hv_lookup(const char *name);
