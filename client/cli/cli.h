/* SPDX-License-Identifier: MIT */
/*
 * The passguard CLI: verbs that ask passguardd (passguard.c) and the offline
 * policy verbs (policy.c). Each verb returns its exit status.
 */
#pragma once

#include <stdbool.h>

enum {
        EXIT_DONE = 0,
        EXIT_REFUSED = 1,
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,
};

struct cli {
        bool json;          /* --json: print the raw reply */
        const char *socket; /* --socket, or NULL for the library's default */
};

/* argv[0] is "policy"; argv[1] the policy verb. */
int cli_policy(const struct cli *c, int argc, char **argv);
/* policy generate: argv[0] is "generate" (generate.c). */
int cli_policy_generate(int argc, char **argv);
