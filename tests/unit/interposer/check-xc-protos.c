/* SPDX-License-Identifier: MIT */
/*
 * libpassguard-xc.so declares the libxenctrl calls it replaces itself
 * (integrations/xc-interposer/xc-protos.h), so that no Xen header is needed to
 * build it. Here both are compiled together: a declaration that differs from
 * Xen's is a conflicting-types error, and a constant that differs fails one of
 * the assertions below. It is a build-time check (tests/unit/interposer/
 * meson.build builds it and registers no test: the build is the test).
 */
#include <xenctrl.h>

#include "pg-wire.h"
#include "xc-protos.h"

_Static_assert(XC_DEV_RDM_RELAXED == XEN_DOMCTL_DEV_RDM_RELAXED, "RDM flag");
_Static_assert(XC_DOMID_FIRST_RESERVED == DOMID_FIRST_RESERVED, "DOMID_FIRST_RESERVED");
_Static_assert(XC_DOMID_IO == DOMID_IO, "DOMID_IO");

/* The rest of passguard's one definition of Xen's domain ids (client/pg-wire.h). */
_Static_assert(PG_DOMID_FIRST_RESERVED == DOMID_FIRST_RESERVED, "PG_DOMID_FIRST_RESERVED");
_Static_assert(PG_DOMID_IO == DOMID_IO, "PG_DOMID_IO");
_Static_assert(PG_DOMID_XEN == DOMID_XEN, "PG_DOMID_XEN");
_Static_assert(PG_DOMID_INVALID == DOMID_INVALID, "PG_DOMID_INVALID");
_Static_assert(PG_DOMID_WIRE_MAX == (domid_t)-1, "PG_DOMID_WIRE_MAX");

int main(void)
{
        return 0;
}
