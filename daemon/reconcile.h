/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor is the truth (DESIGN.md invariants 5 and 7). At start-up the
 * grant store is reconciled with the hypervisor; afterwards every domain
 * event triggers a rescan that releases the grants of dead domains.
 */
#pragma once

#include "pgd.h"

/*
 * Start-up. Compacts the store when it changed; a store that cannot be
 * written is marked broken (status: state_ok false) and the changes stay in
 * memory, to be made again at the next start. Returns the number of changes
 * or -errno.
 */
int pgd_reconcile_startup(struct pgd_daemon *d);
/*
 * --rebuild-state: build d->grants (an empty store) from the hypervisor: a
 * grant (client uid 0, rule "rebuilt") for every assignment to a live guest,
 * and a prepared entry (driver unknown) for every quarantined device bound to
 * pciback. Prints what it found and commits the store: the caller need not
 * commit again. -EEXIST, with a message, when the file on disk parses: a
 * valid store is never replaced. Returns the number of grants or -errno.
 */
int pgd_reconcile_rebuild(struct pgd_daemon *d);
/* A domain came or went: release grants whose domain is gone or whose UUID changed. */
int pgd_reconcile_domains(struct pgd_daemon *d);
/* Free what the passes keep from one to the next (what was reported once). */
void pgd_reconcile_clear(struct pgd_daemon *d);
