/* SPDX-License-Identifier: MIT */
/*
 * passguardd's configuration: built-in defaults, then the config file
 * (libconfig, passguardd(8)), then the command line, which wins. Pure code:
 * no logging; problems are collected as "file:line: message" diagnostics.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pgd.h"

#define PGD_DEFAULT_MAX_CONNECTIONS 64U
#define PGD_DEFAULT_MAX_CONNECTIONS_PER_UID 16U
#define PGD_DEFAULT_MAX_UNKNOWN_CONNECTIONS 4U
#define PGD_DEFAULT_IDLE_TIMEOUT_SEC 30U
#define PGD_DEFAULT_SYSFS_ROOT "/sys"
#define PGD_DEFAULT_BACKEND "xen"

/* Messages, each "file:line: message" or a plain sentence, in the order found. */
struct pgd_diags {
        char **v;
        size_t n;
};

_printf_(2, 3) int pgd_diags_add(struct pgd_diags *d, const char *fmt, ...);
void pgd_diags_clear(struct pgd_diags *d);
/* One message per line. */
void pgd_diags_print(const struct pgd_diags *d, FILE *f);

/* What the command line asks for besides running. */
enum pgd_action {
        PGD_ACTION_RUN,
        PGD_ACTION_HELP,
        PGD_ACTION_VERSION,
};

/* The built-in defaults (the strings owned by cfg). */
int pgd_config_init(struct pgd_config *cfg);
void pgd_config_clear(struct pgd_config *cfg);

/*
 * Read a daemon config file over cfg. Every unknown key, wrong type and
 * impossible value is added to diags as "file:line: message"; returns
 * -EINVAL when there was any, -ENOENT (with a diag) when the file does not
 * exist, another -errno when it cannot be read.
 */
int pgd_config_load_file(struct pgd_config *cfg, const char *path, struct pgd_diags *diags);

/* Consistency of the result: a known backend, --sim-host with sim, ... */
int pgd_config_validate(const struct pgd_config *cfg, struct pgd_diags *diags);

/*
 * The whole sequence for main(): defaults, the command line (getopt_long),
 * the config file it names (or the default one, which may be missing), the
 * flags over it, validation. On -EINVAL diags says why. *ret_action tells
 * whether to run or just print --help/--version (then cfg is only partly set).
 */
int pgd_config_from_args(int argc, char *argv[], struct pgd_config *cfg,
                         enum pgd_action *ret_action, struct pgd_diags *diags);

void pgd_config_usage(FILE *f);
