/* SPDX-License-Identifier: MIT */
/*
 * The ordered checks of DESIGN.md invariant 3, shared by `assign` and
 * `explain`. Both run pgd_checks_run(); explain stops before anything
 * changes (no reset), assign performs the reset, and commit.c then makes the
 * assign call. One code path, so the two can never disagree.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "hv.h"
#include "pgd.h"
#include "policy.h"

#define PGD_CHECKS_MAX 16

enum pgd_check_result {
        PGD_CHECK_PASS,
        PGD_CHECK_FAIL,
        PGD_CHECK_SKIP,
};

struct pgd_check {
        const char *name; /* "request", "client", ... (static) */
        enum pgd_check_result result;
        char detail[256];
};

enum pgd_checks_mode {
        PGD_CHECKS_EXPLAIN, /* change nothing: report "would reset" */
        PGD_CHECKS_ASSIGN,  /* perform the reset the policy asks for */
};

/* What the pipeline found: every check that ran, and the facts assign needs next. */
struct pgd_checks {
        struct pgd_check v[PGD_CHECKS_MAX];
        size_t n;
        bool allow; /* every check passed */
        int code;   /* PG_ERR_* of the failed check, 0 when allowed */

        bool have_domain;
        struct hv_domain domain; /* valid when have_domain */
        bool have_pci;
        struct hv_pci_info pci; /* valid when have_pci */

        bool policy_ran;
        char rule[128];                /* the deciding rule, or "default" */
        enum pg_policy_rdm rdm_policy; /* the rule's */
        enum pg_policy_reset reset;
        unsigned max_devices_per_domain;
        bool reset_done; /* assign mode: the device was reset */
        /* assign mode: the reset failed; the device is to be tainted for this reason */
        bool reset_failed;
        char taint_reason[200];
};

/*
 * Run the checks in order, stopping at the first failure; they read the
 * request's snapshot of the host (request.c). Returns 0 when every check
 * passed, a PG_ERR_* code (> 0) with ctx->err filled (err.check names the
 * failed check, err.rule the rule where one was involved) when one failed,
 * or -errno on an internal failure. ret is always filled as far as the
 * checks went, so explain can show it.
 */
int pgd_checks_run(struct pgd_ctx *ctx, enum pgd_checks_mode mode, struct pgd_checks *ret);

/*
 * The checks of a multi-device request ("devices"): every check for every
 * device, in the request's order, stopping at the first failure (err.device
 * names the device); then, in assign mode and only when every device passed,
 * each device's reset. c[i] is devices[i]'s (an array of req.n_devices);
 * *ret_n how many devices the checks reached. Returns as pgd_checks_run().
 */
int pgd_checks_run_many(struct pgd_ctx *ctx, enum pgd_checks_mode mode, struct pgd_checks *c,
                        size_t *ret_n);

/* {"check", "result", "detail"} objects in the order they ran. NULL on ENOMEM. */
json_t *pgd_checks_to_json(const struct pgd_checks *c);

/* The policy's view of a device's sysfs facts. */
void pgd_checks_policy_device(const struct hv_pci_info *pci, struct pg_policy_device *ret);

/*
 * Whether a device is protected: by a protected entry of the policy, or
 * because it holds dom0's root file system (unless protect_root_device =
 * false). *ret_why says which (pointing into the policy or a static).
 */
bool pgd_checks_protected(const struct pgd_daemon *d, const struct hv_pci_info *pci,
                          const char **ret_why);

/*
 * The reset methods of a device as a refusal names them, and the other
 * functions on its bus, which keep the kernel from resetting the bus for
 * it: "methods flr bus" or "no reset method", then "; a bus reset is
 * blocked by 0000:07:00.1 (on the same bus)" when there are such. Into buf.
 */
void pgd_checks_reset_why(struct pgd_daemon *d, const struct hv_pci_info *pci, char *buf,
                          size_t size);

const char *pgd_check_result_name(enum pgd_check_result r);

/*
 * The one place where a hypervisor errno becomes a wire error code. step is
 * the check or call that got the answer ("iommu", "group", "free",
 * "domain-iommu", "assign", "deassign", "prepare", ...); r is the negative
 * errno it returned.
 */
int pgd_checks_hv_code(const char *step, int r);
