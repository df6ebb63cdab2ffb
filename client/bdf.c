/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "pg-util.h"
#include "pg-wire.h"

/* Read exactly ndigits hex digits at *p; advance *p. */
static int hex_field(const char **p, int ndigits, unsigned *ret)
{
        unsigned v = 0;

        for (int i = 0; i < ndigits; i++) {
                int c = (unsigned char)(*p)[i];
                if (!isxdigit(c))
                        return -EINVAL;
                v = v * 16 + (unsigned)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
        }
        *p += ndigits;
        *ret = v;
        return 0;
}

int pg_bdf_parse(const char *s, uint32_t *ret_sbdf)
{
        unsigned seg = 0, bus, dev, fn;
        const char *p = s;

        if (!s)
                return -EINVAL;
        size_t n = strlen(s);
        if (n == 12) {
                if (hex_field(&p, 4, &seg) < 0 || *p++ != ':')
                        return -EINVAL;
        } else if (n != 7)
                return -EINVAL;
        if (hex_field(&p, 2, &bus) < 0 || *p++ != ':')
                return -EINVAL;
        if (hex_field(&p, 2, &dev) < 0 || *p++ != '.')
                return -EINVAL;
        if (hex_field(&p, 1, &fn) < 0 || *p != '\0')
                return -EINVAL;
        if (dev > 0x1f || fn > 7)
                return -EINVAL;
        *ret_sbdf = PG_SBDF(seg, bus, dev, fn);
        return 0;
}

char *pg_bdf_format(uint32_t sbdf, char buf[static PG_BDF_MAX])
{
        snprintf(buf, PG_BDF_MAX, "%04x:%02x:%02x.%x", PG_SBDF_SEG(sbdf), PG_SBDF_BUS(sbdf),
                 PG_SBDF_DEV(sbdf), PG_SBDF_FN(sbdf));
        return buf;
}
