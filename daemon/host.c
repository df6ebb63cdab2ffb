/* SPDX-License-Identifier: MIT */
/*
 * The host as one request sees it (pgd.h): each fact asked of the backend
 * when a check first needs it, kept in the request's context, and never
 * asked again for the same request (STYLE.md habit 9). request.c builds the
 * context; the checks and the op handlers read the host only through these.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pgd.h"

void pgd_host_clear(struct pgd_host *h)
{
        for (size_t i = 0; i < h->n_groups; i++)
                free(h->groups[i].members);
        free(h->groups);
        free(h->tests);
        free(h->list);
        free(h->pci);
        free(h->owners);
        *h = (struct pgd_host){};
}

int pgd_host_caps(struct pgd_ctx *ctx, const struct hv_caps **ret)
{
        struct pgd_host *h = &ctx->host;

        if (!h->have_caps) {
                h->caps_r = ctx->d->hv_ops->host_caps(ctx->d->hv, &h->caps);
                h->have_caps = true;
        }
        if (h->caps_r < 0)
                return h->caps_r;
        *ret = &h->caps;
        return 0;
}

int pgd_host_domain(struct pgd_ctx *ctx, const struct hv_domain **ret)
{
        const struct pgd_request *req = &ctx->req;
        struct pgd_host *h = &ctx->host;
        struct pgd_daemon *d = ctx->d;

        if (!h->have_domain) {
                if (req->has_domid)
                        h->domain_r = d->hv_ops->domain_get(d->hv, req->domid, &h->domain);
                else
                        h->domain_r =
                                d->hv_ops->domain_by_name(d->hv, req->domain ?: "", &h->domain);
                h->have_domain = true;
        }
        if (h->domain_r < 0)
                return h->domain_r;
        *ret = &h->domain;
        return 0;
}

int pgd_host_pci(struct pgd_ctx *ctx, uint32_t sbdf, const struct hv_pci_info **ret)
{
        struct pgd_host *h = &ctx->host;
        struct pgd_host_pci *p;

        for (size_t i = 0; i < h->n_pci; i++)
                if (h->pci[i].sbdf == sbdf) {
                        p = &h->pci[i];
                        goto found;
                }
        p = reallocarray(h->pci, h->n_pci + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        h->pci = p;
        p = &h->pci[h->n_pci++];
        *p = (struct pgd_host_pci){.sbdf = sbdf};
        p->r = ctx->d->hv_ops->pci_info(ctx->d->hv, sbdf, &p->info);
found:
        if (p->r < 0)
                return p->r;
        *ret = &p->info;
        return 0;
}

int pgd_host_owner(struct pgd_ctx *ctx, uint32_t sbdf, uint32_t *ret_domid)
{
        struct pgd_host *h = &ctx->host;
        struct pgd_host_owner *o;

        for (size_t i = 0; i < h->n_owners; i++)
                if (h->owners[i].sbdf == sbdf) {
                        o = &h->owners[i];
                        goto found;
                }
        o = reallocarray(h->owners, h->n_owners + 1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        h->owners = o;
        o = &h->owners[h->n_owners++];
        *o = (struct pgd_host_owner){.sbdf = sbdf};
        o->r = ctx->d->hv_ops->device_owner(ctx->d->hv, sbdf, &o->domid);
found:
        if (o->r < 0)
                return o->r;
        *ret_domid = o->domid;
        return 0;
}

static bool contains(const uint32_t *v, size_t n, uint32_t x)
{
        for (size_t i = 0; i < n; i++)
                if (v[i] == x)
                        return true;
        return false;
}

int pgd_host_pci_list(struct pgd_ctx *ctx, const uint32_t **ret, size_t *ret_n)
{
        struct pgd_host *h = &ctx->host;

        if (!h->have_list) {
                h->list_r = ctx->d->hv_ops->pci_list(ctx->d->hv, &h->list, &h->n_list);
                h->have_list = true;
        }
        if (h->list_r < 0)
                return h->list_r;
        *ret = h->list;
        *ret_n = h->n_list;
        return 0;
}

/* The IOMMU group's other members and the other functions of the same slot. */
static int group_members(struct pgd_ctx *ctx, uint32_t sbdf, uint32_t **ret, size_t *ret_n,
                         bool *ret_hv)
{
        _cleanup_(freep) uint32_t *group = NULL, *v = NULL;
        struct pgd_daemon *d = ctx->d;
        const uint32_t *all = NULL;
        size_t n_group = 0, n_all = 0, n = 0;
        int r;

        r = d->hv_ops->device_group(d->hv, sbdf, &group, &n_group);
        if (r < 0) {
                *ret_hv = true;
                return r;
        }
        r = pgd_host_pci_list(ctx, &all, &n_all);
        if (r < 0) {
                *ret_hv = false;
                return r;
        }
        v = calloc(n_group + n_all + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n_group; i++)
                if (group[i] != sbdf && !contains(v, n, group[i]))
                        v[n++] = group[i];
        for (size_t i = 0; i < n_all; i++)
                if (all[i] != sbdf && (all[i] & ~0x7U) == (sbdf & ~0x7U) && !contains(v, n, all[i]))
                        v[n++] = all[i];
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

int pgd_host_group(struct pgd_ctx *ctx, uint32_t sbdf, const uint32_t **ret, size_t *ret_n,
                   bool *ret_hv)
{
        struct pgd_host *h = &ctx->host;
        struct pgd_host_group *g = NULL;

        for (size_t i = 0; i < h->n_groups && !g; i++)
                if (h->groups[i].sbdf == sbdf)
                        g = &h->groups[i];
        if (!g) {
                g = reallocarray(h->groups, h->n_groups + 1, sizeof(*g));
                if (!g)
                        return -ENOMEM;
                h->groups = g;
                g = &h->groups[h->n_groups++];
                *g = (struct pgd_host_group){.sbdf = sbdf};
                g->r = group_members(ctx, sbdf, &g->members, &g->n, &g->hv);
        }
        *ret_hv = g->hv;
        if (g->r < 0)
                return g->r;
        *ret = g->members;
        *ret_n = g->n;
        return 0;
}

int pgd_host_test_assign(struct pgd_ctx *ctx, uint32_t sbdf, uint32_t domid)
{
        struct pgd_host *h = &ctx->host;
        struct pgd_host_test *t;

        for (size_t i = 0; i < h->n_tests; i++)
                if (h->tests[i].sbdf == sbdf && h->tests[i].domid == domid)
                        return h->tests[i].r;
        t = reallocarray(h->tests, h->n_tests + 1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        h->tests = t;
        t = &h->tests[h->n_tests++];
        *t = (struct pgd_host_test){.sbdf = sbdf, .domid = domid};
        t->r = ctx->d->hv_ops->test_assign(ctx->d->hv, domid, sbdf);
        return t->r;
}
