/* SPDX-License-Identifier: MIT */
/*
 * Arbitrary bytes through the grant journal's replay (STATE_DIR/grants.journal)
 * over an empty store. A refusal always says why and is never -ENOMEM's
 * disguise; whatever replays must leave a store that serialises and parses
 * back to the very same text, and replaying the same bytes again gives the
 * same store (start-up after start-up sees one state).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay(const uint8_t *data, size_t size, struct pgd_grants **ret, char **ret_text,
                  size_t *ret_len)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        _cleanup_(freep) char *why = NULL;
        int r;

        if (pgd_grants_new_empty("/nonexistent", &g) < 0)
                abort();
        r = pgd_grants_replay(g, (const char *)data, size, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (!why || !*why)
                        abort();
                return r;
        }
        if (pgd_grants_format(g, ret_text, ret_len) < 0)
                abort();
        *ret = TAKE_PTR(g);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL, *again = NULL, *h = NULL;
        _cleanup_(freep) char *text = NULL, *text2 = NULL, *text3 = NULL;
        size_t len = 0, len2 = 0, len3 = 0;
        _cleanup_(freep) char *why = NULL;

        if (replay(data, size, &g, &text, &len) < 0)
                return 0;
        /* the same bytes, the same store, the same open intents */
        if (replay(data, size, &again, &text2, &len2) < 0)
                abort();
        if (len2 != len || memcmp(text, text2, len) != 0)
                abort();
        if (pgd_grants_n_intents(again) != pgd_grants_n_intents(g))
                abort();
        for (size_t i = 0; i < pgd_grants_n_intents(g); i++)
                if (pgd_grants_intent(g, i)->seq != pgd_grants_intent(again, i)->seq ||
                    pgd_grants_intent(g, i)->sbdf != pgd_grants_intent(again, i)->sbdf)
                        abort();
        /* what the journal built is a snapshot the daemon can write and load */
        if (pgd_grants_new_empty("/nonexistent", &h) < 0)
                abort();
        if (pgd_grants_parse(text, len, h, &why) < 0)
                abort();
        if (pgd_grants_format(h, &text3, &len3) < 0 || len3 != len || memcmp(text, text3, len))
                abort();
        return 0;
}
