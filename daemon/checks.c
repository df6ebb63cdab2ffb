/* SPDX-License-Identifier: MIT */
/*
 * The ordered checks of DESIGN.md invariant 3. Each check appends one entry
 * {name, pass|fail|skip, detail}; the first failure stops the pipeline and
 * becomes the refusal, naming the check. assign and explain both run this.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "checks.h"
#include "grants.h"
#include "log.h"

static bool is_no_iommu(int r)
{
        return r == -EOPNOTSUPP || r == -ENOSYS;
}

int pgd_checks_hv_code(const char *step, int r)
{
        bool domain_step =
                streq(step, "domain-iommu") || streq(step, "assign") || streq(step, "deassign");

        if (r >= 0)
                return 0;
        /*
         * No IOMMU: Xen >= 4.13 answers EOPNOTSUPP, older ones ENOSYS. For a
         * call about one domain on a host that has an IOMMU (the iommu check
         * passed before) it means that domain has no IOMMU context.
         */
        if (is_no_iommu(r))
                return domain_step ? PG_ERR_DOMAIN_NO_IOMMU : PG_ERR_NO_IOMMU;
        /* test-assign: "already assigned, or non-existent". */
        if (r == -EINVAL && (streq(step, "free") || streq(step, "domain-iommu")))
                return PG_ERR_BUSY;
        /* The domain went away after the domain check. */
        if (r == -ESRCH && domain_step)
                return PG_ERR_NO_SUCH_DOMAIN;
        /* Only the assign call itself says EBUSY and ENODEV. */
        if (r == -EBUSY)
                return PG_ERR_BUSY;
        if (r == -ENODEV)
                return PG_ERR_NO_SUCH_DEVICE;
        return PG_ERR_HYPERVISOR_ERROR;
}

const char *pgd_check_result_name(enum pgd_check_result r)
{
        switch (r) {
        case PGD_CHECK_PASS:
                return "pass";
        case PGD_CHECK_FAIL:
                return "fail";
        case PGD_CHECK_SKIP:
                return "skip";
        }
        return "fail";
}

_printf_(4, 0) static void record(struct pgd_checks *c, const char *name,
                                  enum pgd_check_result result, const char *fmt, va_list ap)
{
        struct pgd_check *e;

        if (c->n >= ELEMENTSOF(c->v))
                return; /* cannot happen: there are fewer checks than slots */
        e = &c->v[c->n++];
        e->name = name;
        e->result = result;
        vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
}

_printf_(3, 4) static void pass(struct pgd_checks *c, const char *name, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        record(c, name, PGD_CHECK_PASS, fmt, ap);
        va_end(ap);
}

_printf_(3, 4) static void skip(struct pgd_checks *c, const char *name, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        record(c, name, PGD_CHECK_SKIP, fmt, ap);
        va_end(ap);
}

/* Record a failed check and fill the refusal; returns code. */
_printf_(6, 7) static int fail(struct pgd_checks *c, struct pgd_error *err, const char *name,
                               int code, int hv_errno, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        record(c, name, PGD_CHECK_FAIL, fmt, ap);
        va_end(ap);

        c->allow = false;
        c->code = code;
        err->code = code;
        err->hv_errno = hv_errno;
        err->check = name;
        snprintf(err->message, sizeof(err->message), "%s", c->v[c->n - 1].detail);
        return code;
}

/*
 * A failed hypervisor call during check name. The code comes from
 * pgd_checks_hv_code(); the detail says what that answer means.
 */
static int fail_hv(struct pgd_checks *c, struct pgd_error *err, const char *name, const char *call,
                   uint32_t sbdf, int r)
{
        int code = pgd_checks_hv_code(name, r);
        const char *en = pg_errno_name(-r) ?: strerror(-r);
        char bdf[PG_BDF_MAX];

        pg_bdf_format(sbdf, bdf);
        switch (code) {
        case PG_ERR_NO_IOMMU:
                return fail(c, err, name, code, -r, "%s answered %s: the host has no IOMMU", call,
                            en);
        case PG_ERR_DOMAIN_NO_IOMMU:
                return fail(c, err, name, code, -r,
                            "%s answered %s: domid %u was created without an IOMMU context", call,
                            en, c->domain.domid);
        case PG_ERR_BUSY:
                return fail(c, err, name, code, -r,
                            "%s answered %s: the hypervisor has %s assigned already", call, en,
                            bdf);
        case PG_ERR_NO_SUCH_DOMAIN:
                return fail(c, err, name, code, -r, "%s answered %s: domid %u is gone", call, en,
                            c->domain.domid);
        case PG_ERR_NO_SUCH_DEVICE:
                return fail(c, err, name, code, -r,
                            "%s answered %s: the hypervisor does not know %s", call, en, bdf);
        default:
                return fail(c, err, name, code, -r, "%s for %s failed: %s", call, bdf, en);
        }
}

static const char *domain_label(const struct pgd_request *req, char *buf, size_t size)
{
        if (req->domain)
                return req->domain;
        snprintf(buf, size, "domid %u", req->domid);
        return buf;
}

void pgd_checks_policy_device(const struct hv_pci_info *pci, struct pg_policy_device *ret)
{
        *ret = (struct pg_policy_device){
                .sbdf = pci->sbdf,
                .vendor = pci->vendor,
                .device = pci->device,
                .subsystem_vendor = pci->subsystem_vendor,
                .subsystem_device = pci->subsystem_device,
                .class = (int32_t)pci->class,
                .serial = pci->serial_unknown ? NULL : pci->serial,
                .path = pci->path[0] ? pci->path : NULL,
        };
}

bool pgd_checks_protected(const struct pgd_daemon *d, const struct hv_pci_info *pci,
                          const char **ret_why)
{
        struct pg_policy_device dev;

        pgd_checks_policy_device(pci, &dev);
        if (pg_policy_is_protected(d->policy, &dev, ret_why))
                return true;
        if (!pg_policy_protect_root_device(d->policy))
                return false;
        for (size_t i = 0; i < d->n_root_devices; i++)
                if (d->root_devices[i] == pci->sbdf) {
                        *ret_why = "it holds dom0's root file system, protected at start-up; "
                                   "protect_root_device = false in the policy allows it";
                        return true;
                }
        return false;
}

void pgd_checks_reset_why(struct pgd_daemon *d, const struct hv_pci_info *pci, char *buf,
                          size_t size)
{
        _cleanup_(freep) uint32_t *all = NULL;
        size_t n_all = 0, len, shown = 0;

        if (pci->reset_methods[0])
                len = (size_t)snprintf(buf, size, "reset methods: %s", pci->reset_methods);
        else
                len = (size_t)snprintf(buf, size, "%s",
                                       pci->has_reset ? "reset methods: unknown" : "no reset method");
        if (len >= size || d->hv_ops->pci_list(d->hv, &all, &n_all) < 0)
                return;
        /* Linux resets a bus only for a function alone on it (pci_parent_bus_reset()). */
        for (size_t i = 0; i < n_all && len < size; i++) {
                char bdf[PG_BDF_MAX];
                if (all[i] == pci->sbdf || (all[i] >> 8) != (pci->sbdf >> 8))
                        continue;
                if (shown == 8) {
                        len += (size_t)snprintf(buf + len, size - len, ", ...");
                        break;
                }
                len += (size_t)snprintf(buf + len, size - len, "%s%s",
                                        shown ? ", " : "; a bus reset is blocked by ",
                                        pg_bdf_format(all[i], bdf));
                shown++;
        }
        if (shown && len < size)
                snprintf(buf + len, size - len, " (on the same bus)");
}

static int check_client(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_peer *peer = &ctx->peer;
        char buf[200] = "";

        if (ctx->n_clients == 0)
                return fail(c, err, "client", PG_ERR_NOT_AUTHORIZED, 0,
                            "uid %u gid %u%s%s is not a client the policy knows",
                            (unsigned)peer->uid, (unsigned)peer->gid, peer->unit ? " unit " : "",
                            peer->unit ? peer->unit : "");
        for (size_t i = 0, len = 0; i < ctx->n_clients && len < sizeof(buf); i++)
                len += snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? ", " : "",
                                ctx->clients[i]);
        pass(c, "client", "uid %u is client %s", (unsigned)peer->uid, buf);
        return 0;
}

static int check_host(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct hv_caps *caps;
        int r;

        r = pgd_host_caps(ctx, &caps);
        if (r < 0)
                return fail(c, err, "iommu", PG_ERR_HYPERVISOR_ERROR, -r,
                            "cannot read the host capabilities: %s", strerror(-r));
        if (!caps->iommu)
                return fail(c, err, "iommu", PG_ERR_NO_IOMMU, 0,
                            "the host has no IOMMU (no directio capability): no policy can "
                            "override this");
        pass(c, "iommu", "the host has an IOMMU");

        if (!pg_policy_require_interrupt_remapping(ctx->d->policy)) {
                skip(c, "interrupt-remapping", "not required by the policy");
                return 0;
        }
        /* Fail closed: "unknown" is not "yes". */
        if (caps->interrupt_remapping != 1)
                return fail(c, err, "interrupt-remapping", PG_ERR_NO_INTERRUPT_REMAPPING, 0,
                            "the policy requires interrupt remapping and the host %s",
                            caps->interrupt_remapping == 0 ? "has none" : "does not confirm it");
        pass(c, "interrupt-remapping", "the host has interrupt remapping");
        return 0;
}

static int check_domain(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_request *req = &ctx->req;
        const struct hv_domain *found;
        struct hv_domain dom;
        char label[32];
        const char *what = domain_label(req, label, sizeof(label));
        int r;

        if (req->has_domid && !pg_domid_is_guest(req->domid))
                return fail(c, err, "domain", PG_ERR_NO_SUCH_DOMAIN, 0,
                            req->domid == HV_DOMID_DOM0 ? "dom0 is not a guest"
                                                        : "domid %u is not a guest",
                            req->domid);
        r = pgd_host_domain(ctx, &found);
        if (r == -ESRCH)
                return fail(c, err, "domain", PG_ERR_NO_SUCH_DOMAIN, 0, "no domain %s", what);
        if (r < 0)
                return fail(c, err, "domain", PG_ERR_HYPERVISOR_ERROR, -r,
                            "cannot look up domain %s: %s", what, strerror(-r));
        dom = *found;
        if (req->has_domid && req->domain && !streq(req->domain, dom.name))
                return fail(c, err, "domain", PG_ERR_NO_SUCH_DOMAIN, 0,
                            "domid %u is named \"%s\", not \"%s\"", dom.domid, dom.name,
                            req->domain);
        if (!pg_domid_is_guest(dom.domid))
                return fail(c, err, "domain", PG_ERR_NO_SUCH_DOMAIN, 0,
                            dom.domid == HV_DOMID_DOM0 ? "%s is dom0, and dom0 is not a guest"
                                                       : "%s is not a guest",
                            what);
        if (dom.dying)
                return fail(c, err, "domain", PG_ERR_DOMAIN_DYING, 0,
                            "domain %s (domid %u) is dying", what, dom.domid);
        if (dom.uuid[0] == '\0')
                return fail(c, err, "domain", PG_ERR_NO_SUCH_DOMAIN, 0,
                            "domain %s (domid %u) has no UUID recorded", what, dom.domid);

        c->domain = dom;
        c->have_domain = true;
        pass(c, "domain", "%s: domid %u, %s, uuid %s", dom.name[0] ? dom.name : what, dom.domid,
             pg_domain_type_name(dom.type), dom.uuid);
        return 0;
}

static int check_device(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_device_at *at = &ctx->at;
        const struct hv_pci_info *pci;
        const char *why = NULL;
        int r;

        r = pgd_host_pci(ctx, at->sbdf, &pci);
        if (r == -ENODEV)
                return fail(c, err, "device", PG_ERR_NO_SUCH_DEVICE, 0, "no PCI device %s",
                            at->bdf);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(c, err, "device", PG_ERR_HYPERVISOR_ERROR, -r,
                            "cannot read PCI device %s: %s", at->bdf, strerror(-r));
        c->pci = *pci;
        c->have_pci = true;
        if (c->pci.rdm_regions < 0)
                pass(c, "device", "%s: vendor 0x%04x device 0x%04x class 0x%06x", at->bdf,
                     c->pci.vendor, c->pci.device, c->pci.class);
        else
                pass(c, "device",
                     "%s: vendor 0x%04x device 0x%04x class 0x%06x, reserved memory regions: %d",
                     at->bdf, c->pci.vendor, c->pci.device, c->pci.class, c->pci.rdm_regions);

        if (pgd_checks_protected(ctx->d, &c->pci, &why))
                return fail(c, err, "protected", PG_ERR_PROTECTED_DEVICE, 0,
                            "%s is protected by policy (%s)", at->bdf, why ?: "protected");
        pass(c, "protected", "no protected entry matches %s", at->bdf);
        return 0;
}

/*
 * The device at the address is the one passguard prepared there: its ids,
 * class, serial number and path are those recorded then. A device passguard
 * did not prepare has no recorded identity.
 */
static int check_identity(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_device_at *at = &ctx->at;
        const struct pgd_identity *was = pgd_grants_prepared_identity(ctx->d->grants, at->sbdf);
        struct pgd_identity now;
        char what[200];

        if (!was) {
                pass(c, "identity", "no identity recorded for %s (passguard did not prepare it)",
                     at->bdf);
                return 0;
        }
        pgd_identity_from_pci(&c->pci, &now);
        if (pgd_identity_diff(was, &now, what, sizeof(what)) > 0)
                return fail(c, err, "identity", PG_ERR_IDENTITY_CHANGED, 0,
                            "%s is not the device that was prepared there: %s", at->bdf, what);
        pass(c, "identity", "%s is the device prepared there (%04x:%04x, serial %s)", at->bdf,
             now.vendor, now.device,
             now.serial_unknown ? "unknown" : now.serial[0] ? now.serial : "none");
        return 0;
}

static int check_assignable(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_device_at *at = &ctx->at;
        uint32_t owner;
        int r;

        if (!streq(c->pci.driver, "pciback"))
                return fail(c, err, "assignable", PG_ERR_NOT_ASSIGNABLE, 0,
                            "%s is %s%s, not pciback: run `passguard prepare %s`", at->bdf,
                            c->pci.driver[0] ? "bound to " : "bound to no driver", c->pci.driver,
                            at->bdf);
        r = pgd_host_owner(ctx, at->sbdf, &owner);
        if (r == -ENODEV)
                return fail(c, err, "assignable", PG_ERR_NOT_ASSIGNABLE, 0,
                            "the hypervisor does not know %s", at->bdf);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail_hv(c, err, "assignable", "device owner", at->sbdf, r);
        if (owner == HV_DOMID_DOM0)
                return fail(c, err, "assignable", PG_ERR_NOT_ASSIGNABLE, 0,
                            "%s is owned by dom0, not quarantined: run `passguard prepare %s`",
                            at->bdf, at->bdf);
        if (owner == HV_DOMID_IO)
                pass(c, "assignable", "bound to pciback, quarantined");
        else
                pass(c, "assignable", "bound to pciback, owned by domid %u", owner);
        return 0;
}

static bool named_in_request(const struct pgd_request *req, uint32_t sbdf)
{
        for (size_t i = 0; i < req->n_devices; i++)
                if (req->devices[i] == sbdf)
                        return true;
        return false;
}

/*
 * A multi-device request takes whole groups: every other member of a
 * device's group (and slot) must be named in it too, unless the domain has it
 * already. All the missing members are named.
 */
static int check_group_whole(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err,
                             const uint32_t *members, size_t n)
{
        const struct pgd_device_at *at = &ctx->at;
        char missing[200] = "";
        size_t len = 0, n_missing = 0;
        int r;

        for (size_t i = 0; i < n; i++) {
                char bdf[PG_BDF_MAX];
                uint32_t owner;

                if (named_in_request(&ctx->req, members[i]))
                        continue;
                r = pgd_host_owner(ctx, members[i], &owner);
                if (r == -ENODEV)
                        continue; /* not known to the hypervisor: it cannot be anyone's */
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail_hv(c, err, "group", "device owner", members[i], r);
                if (owner == c->domain.domid)
                        continue;
                if (len < sizeof(missing))
                        len += (size_t)snprintf(missing + len, sizeof(missing) - len, "%s%s",
                                                n_missing ? ", " : "",
                                                pg_bdf_format(members[i], bdf));
                n_missing++;
        }
        if (n_missing > 0)
                return fail(c, err, "group", PG_ERR_GROUP_CONFLICT, 0,
                            "%s shares its group with %s, not named in the request: a "
                            "multi-device assign takes whole groups",
                            at->bdf, missing);
        if (n == 0)
                pass(c, "group", "%s is alone in its group", at->bdf);
        else
                pass(c, "group", "%zu other member%s in the request or already domid %u's", n,
                     n == 1 ? "" : "s", c->domain.domid);
        return 0;
}

static int check_group(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_device_at *at = &ctx->at;
        const uint32_t *members = NULL;
        size_t n = 0;
        bool hv = false;
        int r;

        r = pgd_host_group(ctx, at->sbdf, &members, &n, &hv);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && hv)
                return fail_hv(c, err, "group", "get device group", at->sbdf, r);
        if (r < 0)
                return fail(c, err, "group", PG_ERR_HYPERVISOR_ERROR, 0,
                            "cannot list PCI devices: %s", strerror(-r));
        if (ctx->req.n_devices > 0)
                return check_group_whole(ctx, c, err, members, n);

        for (size_t i = 0; i < n; i++) {
                const struct hv_pci_info *info;
                char bdf[PG_BDF_MAX];
                uint32_t owner;

                pg_bdf_format(members[i], bdf);
                r = pgd_host_owner(ctx, members[i], &owner);
                if (r == -ENODEV)
                        continue; /* not known to the hypervisor: it cannot be anyone's */
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail_hv(c, err, "group", "device owner", members[i], r);
                if (owner == HV_DOMID_IO || owner == c->domain.domid)
                        continue;
                if (owner != HV_DOMID_DOM0)
                        return fail(c, err, "group", PG_ERR_GROUP_CONFLICT, 0,
                                    "%s shares the group of %s and belongs to domid %u", bdf,
                                    at->bdf, owner);
                r = pgd_host_pci(ctx, members[i], &info);
                if (r == -ENODEV)
                        continue;
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail(c, err, "group", PG_ERR_HYPERVISOR_ERROR, 0,
                                    "cannot read PCI device %s: %s", bdf, strerror(-r));
                if (!streq(info->driver, "pciback"))
                        return fail(c, err, "group", PG_ERR_GROUP_CONFLICT, 0,
                                    "%s shares the group of %s and belongs to dom0 (driver %s)",
                                    bdf, at->bdf, info->driver[0] ? info->driver : "none");
        }
        if (n == 0)
                pass(c, "group", "%s is alone in its group", at->bdf);
        else
                pass(c, "group", "%zu other member%s free or already domid %u's", n,
                     n == 1 ? "" : "s", c->domain.domid);
        return 0;
}

/*
 * Free: not granted (the store), not assigned to any guest (the snapshot's
 * owner), and the hypervisor's own word. That word is its test-assign with
 * this domain, asked once here and read again by check_domain_iommu():
 * EINVAL says the device is assigned after all. EOPNOTSUPP either means no
 * IOMMU at all or a domain without an IOMMU context; only then is
 * test-assign asked without a domain, to tell which.
 */
static int check_free(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_device_at *at = &ctx->at;
        const struct pgd_grant *g;
        uint32_t owner;
        int r;

        g = pgd_grants_find(ctx->d->grants, at->sbdf);
        if (g && streq(g->domain_uuid, c->domain.uuid))
                return fail(c, err, "free", PG_ERR_BUSY, 0, "%s is already granted to this domain",
                            at->bdf);
        if (g)
                return fail(c, err, "free", PG_ERR_BUSY, 0, "%s is granted to domid %u (%s)",
                            at->bdf, g->domid, g->domain_name);
        /* An assign of the device waiting for its sync, or its hypervisor call, holds it too. */
        for (size_t i = 0; i < pgd_grants_n_intents(ctx->d->grants); i++) {
                const struct pgd_grant *in =
                        pgd_intent_assigns(pgd_grants_intent(ctx->d->grants, i), at->sbdf);

                if (in)
                        return fail(c, err, "free", PG_ERR_BUSY, 0,
                                    "%s is being assigned to domid %u (%s)", at->bdf, in->domid,
                                    in->domain_name);
        }

        r = pgd_host_owner(ctx, at->sbdf, &owner);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENODEV)
                return fail_hv(c, err, "free", "device owner", at->sbdf, r);
        if (r >= 0 && owner != HV_DOMID_IO && owner != HV_DOMID_DOM0)
                return fail(c, err, "free", PG_ERR_BUSY, 0,
                            "the hypervisor has %s assigned to domid %u", at->bdf, owner);

        r = pgd_host_test_assign(ctx, at->sbdf, c->domain.domid);
        if (is_no_iommu(r)) {
                /* The domain's, or the whole host's? */
                int any = ctx->d->hv_ops->test_assign(ctx->d->hv, HV_DOMID_INVALID, at->sbdf);
                if (any < 0)
                        return fail_hv(c, err, "free", "test-assign", at->sbdf, any);
                r = 0; /* this domain has no IOMMU context: check_domain_iommu() says so */
        }
        /* ESRCH: the domain went away since the domain check; check_domain_iommu() says so. */
        if (r < 0 && r != -ESRCH)
                return fail_hv(c, err, "free", "test-assign", at->sbdf, r);
        pass(c, "free", "not granted, not assigned to any guest");
        return 0;
}

static int check_domain_iommu(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        int r;

        /* EOPNOTSUPP here: this domain has no IOMMU context; ESRCH: it is gone. */
        r = pgd_host_test_assign(ctx, ctx->at.sbdf, c->domain.domid);
        if (r < 0)
                return fail_hv(c, err, "domain-iommu", "test-assign", ctx->at.sbdf, r);
        pass(c, "domain-iommu", "test-assign to domid %u succeeded", c->domain.domid);
        return 0;
}

/* Why rules before the deciding one missed, as much as a message shows: "; rule: reason"... */
#define MISSES_SHOWN 40

static int misses_text(struct pgd_ctx *ctx, const struct pg_policy_device *dev,
                       const struct pg_policy_domain *dom, char *buf, size_t size)
{
        _cleanup_(freep) struct pg_policy_miss *misses = NULL;
        size_t n = 0, len = 0;
        int r;

        buf[0] = '\0';
        r = pg_policy_misses(ctx->d->policy, &ctx->id, dev, dom, MISSES_SHOWN, &misses, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && len < size; i++)
                len += snprintf(buf + len, size - len, "; %s: %s", misses[i].rule,
                                misses[i].reason);
        return 0;
}

/*
 * The policy decides with its index (no per-rule text); only a refusal says
 * why earlier rules missed, and only as many of them as its message shows.
 */
static int check_policy(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        struct pg_policy_decision dec = {};
        struct pg_policy_device dev;
        struct pg_policy_domain dom;
        char misses[200];
        bool allow;
        int r;

        pgd_checks_policy_device(&c->pci, &dev);
        dom = (struct pg_policy_domain){
                .name = c->domain.name,
                .domid = c->domain.domid,
                .uuid = c->domain.uuid,
                .type = pg_domain_type_name(c->domain.type),
        };
        r = pg_policy_evaluate(ctx->d->policy, &ctx->id, &dev, &dom, false, &dec);
        if (r < 0)
                return r;

        c->policy_ran = true;
        snprintf(c->rule, sizeof(c->rule), "%s", dec.rule ?: "default");
        c->rdm_policy = dec.rdm_policy;
        c->reset = dec.reset;
        c->max_devices_per_domain = dec.max_devices_per_domain;
        allow = dec.allow;
        pg_policy_decision_clear(&dec);

        snprintf(err->rule, sizeof(err->rule), "%s", c->rule);
        if (!allow) {
                r = misses_text(ctx, &dev, &dom, misses, sizeof(misses));
                if (r < 0)
                        return r;
                if (streq(c->rule, "default"))
                        return fail(c, err, "policy", PG_ERR_DENIED, 0,
                                    "no rule allows it (default deny)%s", misses);
                return fail(c, err, "policy", PG_ERR_DENIED, 0, "denied by rule %s%s", c->rule,
                            misses);
        }
        pass(c, "policy", "rule %s", c->rule);
        return 0;
}

static int check_limit(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        size_t have;

        if (c->max_devices_per_domain == 0) {
                skip(c, "limit", "rule %s sets no limit", c->rule);
                return 0;
        }
        /* The devices of this request before this one count too. */
        have = pgd_grants_count_domain(ctx->d->grants, c->domain.uuid) + ctx->at.index;
        if (have >= c->max_devices_per_domain)
                return fail(c, err, "limit", PG_ERR_LIMIT_REACHED, 0,
                            "domid %u has %zu device%s, rule %s allows %u", c->domain.domid, have,
                            have == 1 ? "" : "s", c->rule, c->max_devices_per_domain);
        pass(c, "limit", "domid %u has %zu of %u devices", c->domain.domid, have,
             c->max_devices_per_domain);
        return 0;
}

/*
 * A tainted device goes to no other domain: its reset failed, so the data of
 * the domain that had it may still be in it. It may go back to that domain.
 */
static int check_taint(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err,
                       bool *ret_same)
{
        const struct pgd_device_at *at = &ctx->at;
        const struct pgd_taint *t = pgd_grants_find_taint(ctx->d->grants, at->sbdf);

        *ret_same = false;
        if (!t)
                return 0;
        if (t->domain_uuid[0] && streq(t->domain_uuid, c->domain.uuid)) {
                *ret_same = true;
                return 0;
        }
        return fail(c, err, "reset", PG_ERR_RESET_FAILED, 0,
                    "%s is tainted: %s; it goes to no other domain until an admin clears it "
                    "(`passguard untaint %s`)",
                    at->bdf, t->reason, at->bdf);
}

/* The reset, once every check passed (assign mode): the entry "would reset" becomes its result. */
static int reset_now(struct pgd_ctx *ctx, struct pgd_checks *c, struct pgd_error *err)
{
        const struct pgd_device_at *at = &ctx->at;
        const char *method = c->pci.reset_method[0] ? c->pci.reset_method : "unknown method";
        char why[200];
        int r;

        if (c->n == 0 || !streq(c->v[c->n - 1].name, "reset") ||
            c->v[c->n - 1].result != PGD_CHECK_PASS)
                return 0; /* skipped: nothing to do */
        c->n--;
        r = ctx->d->hv_ops->pci_reset(ctx->d->hv, at->sbdf);
        /* Also under "if-available": the device offered a reset and it failed. Fail closed. */
        if (r < 0) {
                pgd_checks_reset_why(ctx->d, &c->pci, why, sizeof(why));
                c->reset_failed = true;
                snprintf(c->taint_reason, sizeof(c->taint_reason),
                         "the reset before an assign failed: %s", strerror(-r));
                return fail(c, err, "reset", PG_ERR_RESET_FAILED, 0,
                            "reset of %s (%s) failed: %s (%s); %s is tainted until an admin "
                            "clears it",
                            at->bdf, method, strerror(-r), why, at->bdf);
        }
        c->reset_done = true;
        pass(c, "reset", "reset (%s)", method);
        return 0;
}

static int check_reset(struct pgd_ctx *ctx, enum pgd_checks_mode mode, struct pgd_checks *c,
                       struct pgd_error *err)
{
        const struct pgd_device_at *at = &ctx->at;
        const char *method = c->pci.reset_method[0] ? c->pci.reset_method : "unknown method";
        char why[200];
        bool same;
        int r;

        r = check_taint(ctx, c, err, &same);
        if (r != 0)
                return r;
        if (c->reset == PG_POLICY_RESET_NEVER) {
                skip(c, "reset", "rule %s: reset never%s", c->rule,
                     same ? " (tainted; it goes back to the domain that had it)" : "");
                return 0;
        }
        if (!c->pci.has_reset) {
                if (c->reset == PG_POLICY_RESET_REQUIRED) {
                        pgd_checks_reset_why(ctx->d, &c->pci, why, sizeof(why));
                        return fail(c, err, "reset", PG_ERR_RESET_FAILED, 0,
                                    "rule %s requires a reset and %s has none (%s)", c->rule,
                                    at->bdf, why);
                }
                skip(c, "reset", "%s has no reset", at->bdf);
                return 0;
        }
        pass(c, "reset", "would reset (%s)", method);
        return mode == PGD_CHECKS_ASSIGN ? reset_now(ctx, c, err) : 0;
}

/* The checks of ctx->at, in order, stopping at the first failure; the reset only in assign mode. */
static int run_checks(struct pgd_ctx *ctx, enum pgd_checks_mode mode, struct pgd_checks *ret)
{
        struct pgd_error *err = &ctx->err;
        char label[32];
        int r;

        *ret = (struct pgd_checks){};
        err->code = 0;
        err->hv_errno = 0;
        err->check = NULL;
        err->rule[0] = '\0';
        err->message[0] = '\0';

        if (ctx->req.n_devices > 0)
                pass(ret, "request", "assign %s (%zu of %zu) to %s", ctx->at.bdf,
                     ctx->at.index + 1, ctx->req.n_devices,
                     domain_label(&ctx->req, label, sizeof(label)));
        else
                pass(ret, "request", "assign %s to %s", ctx->at.bdf,
                     domain_label(&ctx->req, label, sizeof(label)));

        r = check_client(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_host(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_domain(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_device(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_identity(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_assignable(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_group(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_free(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_domain_iommu(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_policy(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_limit(ctx, ret, err);
        if (r != 0)
                return r;
        r = check_reset(ctx, mode, ret, err);
        if (r != 0)
                return r;

        ret->allow = true;
        ret->code = 0;
        return 0;
}

static void at_device(struct pgd_ctx *ctx, uint32_t sbdf, size_t index)
{
        ctx->at = (struct pgd_device_at){.sbdf = sbdf, .index = index};
        pg_bdf_format(sbdf, ctx->at.bdf);
}

int pgd_checks_run(struct pgd_ctx *ctx, enum pgd_checks_mode mode, struct pgd_checks *ret)
{
        at_device(ctx, ctx->req.sbdf, 0);
        return run_checks(ctx, mode, ret);
}

int pgd_checks_run_many(struct pgd_ctx *ctx, enum pgd_checks_mode mode, struct pgd_checks *c,
                        size_t *ret_n)
{
        const struct pgd_request *req = &ctx->req;
        int r;

        *ret_n = 0;
        /* Every check for every device first: nothing is reset before all of them passed. */
        for (size_t i = 0; i < req->n_devices; i++) {
                at_device(ctx, req->devices[i], i);
                *ret_n = i + 1;
                r = run_checks(ctx, PGD_CHECKS_EXPLAIN, &c[i]);
                if (r > 0) {
                        ctx->err.has_device = true;
                        ctx->err.device = req->devices[i];
                }
                if (r != 0)
                        return r;
        }
        if (mode != PGD_CHECKS_ASSIGN)
                return 0;
        for (size_t i = 0; i < req->n_devices; i++) {
                at_device(ctx, req->devices[i], i);
                r = reset_now(ctx, &c[i], &ctx->err);
                if (r > 0) {
                        ctx->err.has_device = true;
                        ctx->err.device = req->devices[i];
                        *ret_n = i + 1;
                }
                if (r != 0)
                        return r;
        }
        return 0;
}

/*
 * The JSON strings of the check names and results, made once: every explain
 * reply holds fourteen of each, and they never change.
 */
static json_t *static_string(const char *s)
{
        static struct {
                const char *s;
                json_t *j;
        } cache[32];

        for (size_t i = 0; i < ELEMENTSOF(cache); i++) {
                if (cache[i].s == s)
                        return json_incref(cache[i].j);
                if (!cache[i].s) {
                        cache[i].j = json_string_nocheck(s);
                        if (!cache[i].j)
                                return NULL;
                        cache[i].s = s;
                        return json_incref(cache[i].j);
                }
        }
        return json_string_nocheck(s);
}

json_t *pgd_checks_to_json(const struct pgd_checks *c)
{
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < c->n; i++) {
                /* Names and results are static ASCII; the detail may hold a domain's name. */
                json_t *o = json_object();
                if (!o || json_array_append_new(a, o) < 0 ||
                    json_object_set_new_nocheck(o, "check", static_string(c->v[i].name)) < 0 ||
                    json_object_set_new_nocheck(
                            o, "result", static_string(pgd_check_result_name(c->v[i].result))) <
                            0 ||
                    json_object_set_new_nocheck(o, "detail", json_string(c->v[i].detail)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}
