/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor is the truth (DESIGN.md invariants 5 and 7). At start-up the
 * grant store is reconciled with the hypervisor; afterwards every domain
 * event triggers a rescan that releases the grants of dead domains.
 */
#pragma once

#include "pgd.h"

/* Start-up. Commits the store if it changed. Returns the number of changes or -errno. */
int pgd_reconcile_startup(struct pgd_daemon *d);
/* --rebuild-state: build the store from the hypervisor's assignments; prints what it found. */
int pgd_reconcile_rebuild(struct pgd_daemon *d);
/* A domain came or went: release grants whose domain is gone or whose UUID changed. */
int pgd_reconcile_domains(struct pgd_daemon *d);
