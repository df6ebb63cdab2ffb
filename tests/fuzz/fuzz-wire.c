/* SPDX-License-Identifier: MIT */
/*
 * Arbitrary bytes through what both ends do with a line off the wire: the
 * strict message parser, then the reply decoder libpassguard uses, then a
 * round trip through the serialiser. Also the PCI address parser on the same
 * bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg-wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *line = (const char *)data;
        struct pg_wire_reply rep;
        const char *why = NULL;
        json_t *msg = NULL;
        char *out = NULL;
        size_t len;

        /* A trailing newline is how messages arrive; the parser sees the line without it. */
        if (size > 0 && data[size - 1] == '\n')
                size--;

        if (size < 32) {
                char bdf[32];
                uint32_t sbdf;
                memcpy(bdf, data, size);
                bdf[size] = '\0';
                if (pg_bdf_parse(bdf, &sbdf) == 0) {
                        char buf[PG_BDF_MAX], again[PG_BDF_MAX];
                        uint32_t sbdf2;
                        pg_bdf_format(sbdf, buf);
                        if (pg_bdf_parse(buf, &sbdf2) != 0 || sbdf2 != sbdf ||
                            strcmp(pg_bdf_format(sbdf2, again), buf) != 0)
                                abort();
                }
        }

        if (pg_wire_parse(line, size, &msg, &why) < 0) {
                if (!why)
                        abort();
                return 0;
        }
        if (!json_is_object(msg))
                abort();

        if (pg_wire_reply_decode(msg, &rep, &why) == 0) {
                if (!rep.ok && (rep.code < 1 || rep.code > PG_ERR_MAX || !rep.error))
                        abort();
                if (rep.ok && rep.code != 0)
                        abort();
        } else if (!why)
                abort();

        /* What parsed must serialise within the limit and parse back to the same value. */
        if (pg_wire_dump(msg, &out, &len) == 0) {
                json_t *back = NULL;
                if (len == 0 || out[len - 1] != '\n' || memchr(out, '\n', len - 1))
                        abort();
                if (pg_wire_parse(out, len - 1, &back, &why) == 0) {
                        if (!json_equal(msg, back))
                                abort();
                        json_decref(back);
                }
                free(out);
        }
        json_decref(msg);
        return 0;
}
