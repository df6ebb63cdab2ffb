/* SPDX-License-Identifier: MIT */
/*
 * Print the integration suite's fixtures, so that tests written in another
 * language run on the very host and policy of itest.c:
 *   itest-fixture host     the default simulated host, as JSON
 *   itest-fixture policy   the default policy
 */
#include <stdio.h>
#include <string.h>

#include "itest.h"

int main(int argc, char **argv)
{
        if (argc == 2 && streq(argv[1], "host")) {
                json_t *host = itest_default_host();
                int r = host ? json_dumpf(host, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) : -1;
                json_decref(host);
                if (r < 0)
                        return 1;
                putchar('\n');
                return 0;
        }
        if (argc == 2 && streq(argv[1], "policy")) {
                fputs(itest_default_policy, stdout);
                return 0;
        }
        fprintf(stderr, "usage: %s host|policy\n", argv[0]);
        return 2;
}
