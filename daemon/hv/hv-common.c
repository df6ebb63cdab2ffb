/* SPDX-License-Identifier: MIT */
#include "hv.h"
#include "pg-util.h"

const struct hv_ops *pgd_hv_lookup(const char *name)
{
        if (!name)
                return NULL;
#if HAVE_SIM
        if (streq(name, "sim"))
                return &hv_sim_ops;
#endif
#if HAVE_XEN
        if (streq(name, "xen"))
                return &hv_xen_ops;
#endif
        return NULL;
}
