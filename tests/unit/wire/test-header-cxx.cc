// SPDX-License-Identifier: MIT
// passguard.h must compile as C++ and give C linkage, so a C++ toolstack can link libpassguard.
#include <cstring>

#include "passguard.h"

int main()
{
        // Take the address of each function through a C++ function pointer type: a missing
        // extern "C" shows up as an undefined, mangled symbol at link time.
        int (*connect_fn)(const char *, struct pg **) = pg_connect;
        struct pg *(*close_fn)(struct pg *) = pg_close;
        const char *(*strerror_fn)(int) = pg_strerror;
        int (*assign_fn)(struct pg *, const char *, uint32_t, const char *, unsigned,
                         struct pg_grant **) = pg_assign;
        if (!connect_fn || !close_fn || !assign_fn)
                return 1;
        static_assert(PG_ERR_INTERNAL == 21, "error codes are append-only");
        static_assert(PG_ERR_IDENTITY_CHANGED == 22 && PG_ERR_MAX == 22,
                      "error codes are append-only");
        static_assert(PG_PROTOCOL_VERSION == 1, "protocol version 1");
        return std::strcmp(strerror_fn(PG_ERR_BUSY), "busy") == 0 ? 0 : 1;
}
