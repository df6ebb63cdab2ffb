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

int pgd_error_set(struct pgd_error *e, int code, const char *fmt, ...)
{
        va_list ap;

        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return code;
}
