/* SPDX-License-Identifier: MIT */
/*
 * Arbitrary bytes through the grant store's parser (STATE_DIR/grants.json).
 * Whatever it accepts must serialise and parse back to the very same text:
 * a store the daemon loaded is a store it can write and load again.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *h = NULL;
        _cleanup_(freep) char *text = NULL, *again = NULL;
        _cleanup_(freep) char *why = NULL;
        size_t len = 0, len2 = 0;
        int r;

        if (pgd_grants_new_empty("/nonexistent", &g) < 0)
                abort();
        r = pgd_grants_parse((const char *)data, size, g, &why);
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                /* A refusal always says why, and leaves the store empty. */
                if (!why || !*why || pgd_grants_count(g) != 0)
                        abort();
                return 0;
        }
        if (pgd_grants_format(g, &text, &len) < 0)
                abort();
        if (pgd_grants_new_empty("/nonexistent", &h) < 0)
                abort();
        if (pgd_grants_parse(text, len, h, &why) < 0)
                abort();
        if (pgd_grants_count(h) != pgd_grants_count(g))
                abort();
        if (pgd_grants_format(h, &again, &len2) < 0 || len2 != len || memcmp(text, again, len))
                abort();
        return 0;
}
