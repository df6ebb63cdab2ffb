/* SPDX-License-Identifier: MIT */
/* Domains as every part of passguard names them: UUIDs and types (pg-wire.h). */
#include <ctype.h>
#include <errno.h>

#include "pg-util.h"
#include "pg-wire.h"

int pg_uuid_normalize(const char *s, char ret[static PG_UUID_MAX])
{
        char buf[PG_UUID_MAX];

        if (!s || strlen(s) != PG_UUID_MAX - 1)
                return -EINVAL;
        for (size_t i = 0; i < PG_UUID_MAX - 1; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
                        return -EINVAL;
                buf[i] = (char)tolower((unsigned char)s[i]);
        }
        buf[PG_UUID_MAX - 1] = '\0';
        memcpy(ret, buf, sizeof(buf));
        return 0;
}

static const char *const type_names[] = {
        [PG_DOMAIN_PV] = "pv",
        [PG_DOMAIN_PVH] = "pvh",
        [PG_DOMAIN_HVM] = "hvm",
};

int pg_domain_type_parse(const char *s, enum pg_domain_type *ret)
{
        for (size_t i = 0; s && i < ELEMENTSOF(type_names); i++)
                if (streq(s, type_names[i])) {
                        *ret = (enum pg_domain_type)i;
                        return 0;
                }
        return -EINVAL;
}

const char *pg_domain_type_name(enum pg_domain_type t)
{
        return (unsigned)t < ELEMENTSOF(type_names) ? type_names[t] : "pv";
}
