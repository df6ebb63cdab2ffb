/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "hv.h"
#include "pgd.h"

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

const char *pgd_hv_domain_type_name(enum hv_domain_type t)
{
        switch (t) {
        case HV_DOMAIN_PV:
                return "pv";
        case HV_DOMAIN_PVH:
                return "pvh";
        case HV_DOMAIN_HVM:
                return "hvm";
        }
        return "pv";
}

int pgd_hv_domain_type_parse(const char *s, enum hv_domain_type *ret)
{
        if (!s)
                return -EINVAL;
        if (streq(s, "pv"))
                *ret = HV_DOMAIN_PV;
        else if (streq(s, "pvh"))
                *ret = HV_DOMAIN_PVH;
        else if (streq(s, "hvm"))
                *ret = HV_DOMAIN_HVM;
        else
                return -EINVAL;
        return 0;
}

int pgd_error_set(struct pgd_error *e, int code, const char *fmt, ...)
{
        va_list ap;

        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return code;
}
