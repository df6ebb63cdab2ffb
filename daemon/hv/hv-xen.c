/* SPDX-License-Identifier: MIT */
/*
 * The real host: libxenctrl for the hypervisor, libxenstore for domain names,
 * types and the domain watches, sysfs for PCI facts and the pciback binding.
 * This is the only file in passguard that includes a Xen header; what needs
 * no hypervisor (sysfs, and the parsers of what Xen prints into its console
 * ring) is in hv-xen-parse.c, built and tested on any machine.
 *
 * Xen has no "who owns this device" call, and test-assign answers 0 both for a
 * device dom0 owns and for a quarantined one. The 'Q' debug key makes Xen print
 * every PCI device with its owner into its console ring, so the owner is read
 * from a 'Q' dump (see pci_dump()). Xen 4.17 prints "d0" for dom0, "dN"
 * for a guest and "DomIO:<pseudo-domid>" for a quarantined device (older and
 * newer releases print "d[IO]").
 *
 * A dump floods the hypervisor console, so one is taken only when the owners
 * may have changed: the last dump is kept until a domain comes or goes (the
 * xenstore watch: Xen moves a dying domain's devices into quarantine) or this
 * backend changes an assignment. An assign that succeeded is recorded in the
 * kept dump, and so is a guest's deassign once a dump has shown where Xen puts
 * a deassigned device (quarantine or dom0: fixed when Xen booted, so learnt
 * once); anything else that moves a device (unprepare, an answer that
 * contradicts the dump) drops it. Without a watch (a tool that
 * never asked for one) nothing is kept. The dump is complete when the debug
 * key's sysctl returns (Xen runs the handler in the sysctl itself), so it is
 * read with one console-ring read and no waiting; tests/system asserts both
 * on real Xen. The host capabilities cannot change while Xen runs: they are
 * read once.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenstore.h>

#include "hv-xen-parse.h"
#include "hv.h"
#include "pg-rootdev.h"
#include "pg-util.h"
#include "pg-wire.h"

#define CONRING_READ_MAX (64U << 20)

struct hv {
        xc_interface *xch;
        struct xs_handle *xs;       /* reads */
        struct xs_handle *xs_watch; /* the domain watches; its fd is watch_fd() */
        char *sysfs_root;
        uint32_t conring_index; /* how far the console ring has been read */
        bool conring_index_valid;
        bool caps_valid; /* caps read (interrupt remapping: from the ring) */
        bool intremap_valid;
        struct hv_caps caps;
        struct hv_assignment *owners; /* every device's owner, from the last 'Q' dump */
        size_t n_owners;
        bool owners_valid;
        /*
         * Where a guest's deassign puts a device: HV_DOMID_IO with quarantine
         * (Xen 4.17's default), HV_DOMID_DOM0 without; UINT32_MAX until a dump
         * after one showed it (learn_sbdf, when learning).
         */
        uint32_t deassigned_to;
        uint32_t learn_sbdf;
        bool learning;
        /*
         * The domains as the last scan of xenstore named them, each by domid
         * and UUID (a domid reused is another domain): a name lookup asks
         * xenstore only for the name it found there, to confirm it, and the
         * type libxl recorded, which a domain never changes, is not asked
         * again. Names are always read fresh before they are answered.
         */
        struct hv_domain *known;
        size_t n_known;
};

/* ---- the hypervisor ---- */

static int xen_errno(int rc)
{
        /* libxenctrl returns -1 and sets errno; keep Xen's errno unchanged. */
        if (rc >= 0)
                return 0;
        return errno > 0 ? -errno : -EIO;
}

static struct hv *xen_close(struct hv *hv)
{
        if (!hv)
                return NULL;
        if (hv->xs_watch)
                xs_close(hv->xs_watch);
        if (hv->xs)
                xs_close(hv->xs);
        if (hv->xch)
                xc_interface_close(hv->xch);
        free(hv->owners);
        free(hv->known);
        free(hv->sysfs_root);
        free(hv);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct hv *, xen_close)

static int xen_open(const struct hv_config *cfg, struct hv **ret)
{
        _cleanup_(xen_closep) struct hv *hv = NULL;
        const char *root = cfg && cfg->sysfs_root ? cfg->sysfs_root : "/sys";

        /* No hypervisor here: say so plainly rather than through libxenctrl's log. */
        if (access("/dev/xen/privcmd", F_OK) < 0 && access("/proc/xen/privcmd", F_OK) < 0)
                return errno == ENOENT ? -ENODEV : -errno;

        hv = calloc(1, sizeof(*hv));
        if (!hv)
                return -ENOMEM;
        hv->deassigned_to = UINT32_MAX;
        hv->sysfs_root = strdup(root);
        if (!hv->sysfs_root)
                return -ENOMEM;
        hv->xch = xc_interface_open(NULL, NULL, 0);
        if (!hv->xch)
                return errno > 0 ? -errno : -ENODEV;
        hv->xs = xs_open(0);
        if (!hv->xs)
                return errno > 0 ? -errno : -ENOTCONN;
        *ret = TAKE_PTR(hv);
        return 0;
}

/*
 * Console-ring text written since the last call (the whole ring the first
 * time). The ring index lets a caller see only what a debug key just printed.
 */
static int conring_read(struct hv *hv, bool from_start, char **ret, size_t *ret_len)
{
        _cleanup_(freep) char *text = NULL;
        size_t size = 64 * 1024, len = 0;
        uint32_t index = from_start || !hv->conring_index_valid ? 0 : hv->conring_index;

        for (;;) {
                unsigned int nr;
                char *p;

                if (size - len < 16 * 1024) {
                        if (size >= CONRING_READ_MAX)
                                break;
                        p = realloc(text, size * 2);
                        if (!p)
                                return -ENOMEM;
                        text = p;
                        size *= 2;
                } else if (!text) {
                        text = malloc(size);
                        if (!text)
                                return -ENOMEM;
                }
                unsigned int want = (unsigned int)(size - len - 1);
                nr = want;
                if (xc_readconsolering(hv->xch, text + len, &nr, 0, 1, &index) < 0)
                        return xen_errno(-1);
                len += nr;
                if (nr < want)
                        break; /* the ring had no more */
        }
        text[len] = '\0';
        hv->conring_index = index;
        hv->conring_index_valid = true;
        *ret = TAKE_PTR(text);
        *ret_len = len;
        return 0;
}

static int xen_host_caps(struct hv *hv, struct hv_caps *ret)
{
        _cleanup_(freep) char *text = NULL;
        xc_physinfo_t info = {0};
        size_t len;

        if (!hv->caps_valid) {
                if (xc_physinfo(hv->xch, &info) < 0)
                        return xen_errno(-1);
                hv->caps.iommu = (info.capabilities & XEN_SYSCTL_PHYSCAP_directio) != 0;
                hv->caps.interrupt_remapping = -1;
                hv->caps_valid = true;
        }
        /* The boot messages say it; an unreadable ring leaves it unknown, and asked again. */
        if (!hv->intremap_valid && conring_read(hv, true, &text, &len) >= 0) {
                hv->caps.interrupt_remapping = pgd_xen_parse_intremap(text, len);
                hv->intremap_valid = true;
        }
        *ret = hv->caps;
        return 0;
}

static void format_uuid(const xen_domain_handle_t h, char buf[HV_UUID_MAX])
{
        snprintf(buf, HV_UUID_MAX,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
                 h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
                 h[15]);
}

/* /local/domain/<domid>/name, /libxl/<domid>/type: NULL when absent. */
static char *xs_read_domain(struct hv *hv, const char *top, uint32_t domid, const char *leaf)
{
        char path[96];
        unsigned int len;

        snprintf(path, sizeof(path), "%s/%u/%s", top, domid, leaf);
        return xs_read(hv->xs, XBT_NULL, path, &len);
}

static const struct hv_domain *known_find(const struct hv *hv, uint32_t domid, const char *uuid)
{
        for (size_t i = 0; i < hv->n_known; i++)
                if (hv->known[i].domid == domid && streq(hv->known[i].uuid, uuid))
                        return &hv->known[i];
        return NULL;
}

/* Remember d (best effort: a lookup without it asks xenstore again). */
static void known_put(struct hv *hv, const struct hv_domain *d)
{
        struct hv_domain *p;

        for (size_t i = 0; i < hv->n_known; i++)
                if (hv->known[i].domid == d->domid) {
                        hv->known[i] = *d;
                        return;
                }
        if (hv->n_known >= 4096) /* domids churn: start again rather than grow */
                hv->n_known = 0;
        p = reallocarray(hv->known, hv->n_known + 1, sizeof(*p));
        if (!p)
                return;
        hv->known = p;
        hv->known[hv->n_known++] = *d;
}

/*
 * A domain from its info: the name always read from xenstore, the type
 * libxl recorded from there too unless this domain (domid and UUID) is known.
 */
static void fill_domain(struct hv *hv, const xc_domaininfo_t *info, struct hv_domain *ret)
{
        _cleanup_(freep) char *name = NULL, *type = NULL;
        struct hv_domain d = {.domid = info->domain};
        const struct hv_domain *was;

        format_uuid(info->handle, d.uuid);
        d.dying = (info->flags & XEN_DOMINF_dying) != 0;
        name = xs_read_domain(hv, "/local/domain", info->domain, "name");
        if (name)
                snprintf(d.name, sizeof(d.name), "%s", name);
        was = known_find(hv, d.domid, d.uuid);
        if (was) {
                d.type = was->type;
        } else {
                /* libxl records the type it built; Xen itself only knows HVM-container or not. */
                type = xs_read_domain(hv, "/libxl", info->domain, "type");
                if (pg_domain_type_parse(type, &d.type) < 0)
                        d.type = (info->flags & XEN_DOMINF_hvm_guest) ? PG_DOMAIN_HVM
                                                                      : PG_DOMAIN_PV;
        }
        known_put(hv, &d);
        *ret = d;
}

static int xen_domain_get(struct hv *hv, uint32_t domid, struct hv_domain *ret)
{
        xc_domaininfo_t info;
        int n;

        if (domid >= PG_DOMID_FIRST_RESERVED)
                return -ESRCH;
        n = xc_domain_getinfolist(hv->xch, domid, 1, &info);
        if (n < 0)
                return xen_errno(n);
        /* The call answers with the next domain when domid does not exist. */
        if (n == 0 || info.domain != domid)
                return -ESRCH;
        fill_domain(hv, &info, ret);
        return 0;
}

/* Every domain's info, in domid order: one hypercall per 64 domains. */
static int domain_infos(struct hv *hv, xc_domaininfo_t **ret, size_t *ret_n)
{
        _cleanup_(freep) xc_domaininfo_t *all = NULL;
        size_t n = 0;
        uint32_t next = 0;

        for (;;) {
                xc_domaininfo_t *p = reallocarray(all, n + 64, sizeof(*all));
                int got;

                if (!p)
                        return -ENOMEM;
                all = p;
                got = xc_domain_getinfolist(hv->xch, next, 64, all + n);
                if (got < 0)
                        return xen_errno(got);
                n += (size_t)got;
                if (got == 0)
                        break;
                next = all[n - 1].domain + 1;
                if (got < 64 || next >= PG_DOMID_FIRST_RESERVED)
                        break;
        }
        *ret = TAKE_PTR(all);
        *ret_n = n;
        return 0;
}

static int xen_domain_list(struct hv *hv, struct hv_domain **ret, size_t *ret_n)
{
        _cleanup_(freep) xc_domaininfo_t *info = NULL;
        _cleanup_(freep) struct hv_domain *list = NULL;
        size_t n;
        int r;

        r = domain_infos(hv, &info, &n);
        if (r < 0)
                return r;
        list = calloc(n + 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        /* What is known is what this scan finds: a domain gone is forgotten. */
        hv->known = pg_free(hv->known);
        hv->n_known = 0;
        for (size_t i = 0; i < n; i++)
                fill_domain(hv, &info[i], &list[i]);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

/*
 * A domain by name: the domain the last scan knew by that name, when
 * xenstore still names it so (one read), else a scan of every domain's name.
 * xl keeps names unique.
 */
static int xen_domain_by_name(struct hv *hv, const char *name, struct hv_domain *ret)
{
        _cleanup_(freep) xc_domaininfo_t *info = NULL;
        _cleanup_(freep) struct hv_domain *list = NULL;
        size_t n;
        int r;

        r = domain_infos(hv, &info, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const struct hv_domain *was;
                char uuid[HV_UUID_MAX];

                format_uuid(info[i].handle, uuid);
                was = known_find(hv, info[i].domain, uuid);
                if (!was || !streq(was->name, name))
                        continue;
                fill_domain(hv, &info[i], ret);
                if (streq(ret->name, name))
                        return 0;
                break; /* renamed: ask every domain */
        }
        r = xen_domain_list(hv, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (streq(list[i].name, name)) {
                        *ret = list[i];
                        return 0;
                }
        return -ESRCH;
}

/* ---- the owners, from the kept 'Q' dump ---- */

static void owners_forget(struct hv *hv)
{
        hv->owners = pg_free(hv->owners);
        hv->n_owners = 0;
        hv->owners_valid = false;
}

/* Whether the domain watch has events nobody read yet: a domain came or went. */
static bool watch_pending(struct hv *hv)
{
        struct pollfd p = {.fd = xs_fileno(hv->xs_watch), .events = POLLIN};

        return poll(&p, 1, 0) != 0;
}

/* An assign that Xen accepted: the device is domid's now. */
static void owners_note(struct hv *hv, uint32_t sbdf, uint32_t domid)
{
        struct hv_assignment *p;

        if (!hv->owners_valid)
                return;
        for (size_t i = 0; i < hv->n_owners; i++)
                if (hv->owners[i].sbdf == sbdf) {
                        hv->owners[i].domid = domid;
                        return;
                }
        p = reallocarray(hv->owners, hv->n_owners + 1, sizeof(*p));
        if (!p) {
                owners_forget(hv);
                return;
        }
        hv->owners = p;
        hv->owners[hv->n_owners++] = (struct hv_assignment){.sbdf = sbdf, .domid = domid};
}

static int pci_dump(struct hv *hv, struct hv_assignment **ret, size_t *ret_n);

/* Every device's owner: the kept dump while nothing can have changed, else a new one. */
static int owners_current(struct hv *hv)
{
        struct hv_assignment *list = NULL;
        size_t n = 0;
        int r;

        if (hv->owners_valid && hv->xs_watch && !watch_pending(hv))
                return 0;
        owners_forget(hv);
        r = pci_dump(hv, &list, &n);
        if (r < 0)
                return r;
        hv->owners = list;
        hv->n_owners = n;
        /* Kept only while a watch tells when domains come and go. */
        hv->owners_valid = hv->xs_watch != NULL;
        if (hv->learning) {
                for (size_t i = 0; i < n; i++)
                        if (list[i].sbdf == hv->learn_sbdf &&
                            (list[i].domid == HV_DOMID_IO || list[i].domid == HV_DOMID_DOM0))
                                hv->deassigned_to = list[i].domid;
                hv->learning = false;
        }
        return 0;
}

static int xen_test_assign(struct hv *hv, uint32_t domid, uint32_t sbdf)
{
        int r = xen_errno(xc_test_assign_device(hv->xch, domid, sbdf));

        /* "assigned, or no such device": the kept dump may say otherwise. */
        if (r == -EINVAL && domid != HV_DOMID_DOM0)
                owners_forget(hv);
        return r;
}

static int xen_assign(struct hv *hv, uint32_t domid, uint32_t sbdf, bool rdm_relaxed)
{
        int r = xen_errno(xc_assign_device(hv->xch, domid, sbdf,
                                           rdm_relaxed ? XEN_DOMCTL_DEV_RDM_RELAXED : 0));

        if (r >= 0)
                owners_note(hv, sbdf, domid);
        else if (r == -EBUSY || r == -ENODEV)
                owners_forget(hv);
        return r;
}

static int xen_deassign(struct hv *hv, uint32_t domid, uint32_t sbdf)
{
        int r = xen_errno(xc_deassign_device(hv->xch, domid, sbdf));

        /* A guest's device goes to quarantine or to dom0, as Xen was booted. */
        if (r >= 0 && domid != HV_DOMID_IO && hv->deassigned_to != UINT32_MAX) {
                owners_note(hv, sbdf, hv->deassigned_to);
                return r;
        }
        /* Not known yet (or unprepare, or a failure): the next question takes a dump. */
        owners_forget(hv);
        if (r >= 0 && domid != HV_DOMID_IO) {
                hv->learn_sbdf = sbdf;
                hv->learning = true;
        }
        return r;
}

static int xen_device_group(struct hv *hv, uint32_t sbdf, uint32_t **ret, size_t *ret_n)
{
        _cleanup_(freep) uint32_t *raw = NULL, *out = NULL;
        uint32_t max = 256, num = 0;
        size_t n = 0;

        raw = calloc(max, sizeof(*raw));
        if (!raw)
                return -ENOMEM;
        if (xc_get_device_group(hv->xch, 0, sbdf, max, &num, raw) < 0)
                return xen_errno(-1);
        if (num > max)
                num = max;
        out = calloc(num ? num : 1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        for (uint32_t i = 0; i < num; i++) {
                /* Xen answers bus << 16 | devfn << 8, in the queried segment. */
                uint32_t m = (PG_SBDF_SEG(sbdf) << 16) | (((raw[i] >> 16) & 0xff) << 8) |
                             ((raw[i] >> 8) & 0xff);

                if (m != sbdf)
                        out[n++] = m;
        }
        *ret = TAKE_PTR(out);
        *ret_n = n;
        return 0;
}

/*
 * Every device with its owner, from a new 'Q' dump: the key, then one read of
 * the ring from where the last read stopped. Xen runs the key's handler within
 * the sysctl, so the dump is complete when xc_send_debug_keys() returns; the
 * last dump in what was read is this one.
 */
static int pci_dump(struct hv *hv, struct hv_assignment **ret, size_t *ret_n)
{
        _cleanup_(freep) char *text = NULL;
        size_t len;
        int r;

        if (xc_send_debug_keys(hv->xch, "Q") < 0)
                return xen_errno(-1);
        r = conring_read(hv, false, &text, &len);
        if (r < 0)
                return r;
        r = pgd_xen_parse_pci_dump(text, len, ret, ret_n);
        /* No dump in the ring after the key: not what Xen 4.17 does. Fail closed. */
        return r == -ENOENT ? -EIO : r;
}

static int xen_device_owner(struct hv *hv, uint32_t sbdf, uint32_t *ret_domid)
{
        int r = owners_current(hv);

        if (r < 0)
                return r;
        for (size_t i = 0; i < hv->n_owners; i++)
                if (hv->owners[i].sbdf == sbdf) {
                        *ret_domid = hv->owners[i].domid;
                        return 0;
                }
        return -ENODEV;
}

static int xen_assignments(struct hv *hv, struct hv_assignment **ret, size_t *ret_n)
{
        _cleanup_(freep) struct hv_assignment *list = NULL;
        size_t m = 0;
        int r;

        r = owners_current(hv);
        if (r < 0)
                return r;
        list = calloc(hv->n_owners ? hv->n_owners : 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        /* dom0's devices and Xen's own (d[XEN]: IOMMUs, its serial port) are not assignments. */
        for (size_t i = 0; i < hv->n_owners; i++)
                if (hv->owners[i].domid != HV_DOMID_DOM0 && hv->owners[i].domid != PG_DOMID_XEN)
                        list[m++] = hv->owners[i];
        *ret = TAKE_PTR(list);
        *ret_n = m;
        return 0;
}

static int xen_watch_fd(struct hv *hv)
{
        if (!hv->xs_watch) {
                struct xs_handle *xs = xs_open(0);

                if (!xs)
                        return errno > 0 ? -errno : -ENOTCONN;
                if (!xs_watch(xs, "@releaseDomain", "pg-release") ||
                    !xs_watch(xs, "@introduceDomain", "pg-introduce")) {
                        int r = errno > 0 ? -errno : -EIO;

                        xs_close(xs);
                        return r;
                }
                hv->xs_watch = xs;
        }
        return xs_fileno(hv->xs_watch);
}

static int xen_watch_drain(struct hv *hv)
{
        char **ev;
        int n = 0;

        if (!hv->xs_watch)
                return 0;
        while ((ev = xs_check_watch(hv->xs_watch))) {
                free(ev);
                n++;
        }
        if (n > 0)
                owners_forget(hv); /* a dying domain's devices went to quarantine */
        if (errno != EAGAIN)
                return errno > 0 ? -errno : -EIO;
        return n;
}

/*
 * How many reserved memory regions Xen holds for sbdf (RMRRs, IVMD unity
 * maps): Xen answers for one device when flags has no XENMEM_RDM_ALL, and
 * ERANGE with the count when the buffer is too small. -1 when it does not say.
 */
static int xen_rdm_regions(struct hv *hv, uint32_t sbdf)
{
        struct xen_reserved_device_memory entries[4];
        uint32_t n = sizeof(entries) / sizeof(entries[0]);

        if (xc_reserved_device_memory_map(hv->xch, 0, (uint16_t)(sbdf >> 16),
                                          (uint8_t)(sbdf >> 8), (uint8_t)sbdf, entries, &n) == 0)
                return (int)n;
        return errno == ERANGE && n <= INT_MAX ? (int)n : -1;
}

static int xen_pci_info(struct hv *hv, uint32_t sbdf, struct hv_pci_info *ret)
{
        int r = pgd_xen_sysfs_pci_info(hv->sysfs_root, sbdf, ret);

        if (r >= 0)
                ret->rdm_regions = xen_rdm_regions(hv, sbdf);
        return r;
}

static int xen_pci_list(struct hv *hv, uint32_t **ret, size_t *ret_n)
{
        return pgd_xen_sysfs_pci_list(hv->sysfs_root, ret, ret_n);
}

static int xen_pci_reset(struct hv *hv, uint32_t sbdf)
{
        return pgd_xen_sysfs_pci_reset(hv->sysfs_root, sbdf);
}

static int xen_pci_prepare(struct hv *hv, uint32_t sbdf, char ret_driver[HV_DRIVER_MAX])
{
        char driver[HV_DRIVER_MAX];
        uint32_t owner;
        int r;

        r = pgd_xen_sysfs_bind_pciback(hv->sysfs_root, sbdf, driver);
        if (r < 0)
                return r;
        owners_forget(hv);
        /*
         * Quarantine, as libxl does: DOMID_IO has no mappings, so the assignment
         * is always RDM-relaxed. A device that is in quarantine already is fine.
         */
        r = xen_assign(hv, HV_DOMID_IO, sbdf, true);
        if (r < 0 && !(xen_device_owner(hv, sbdf, &owner) >= 0 && owner == HV_DOMID_IO)) {
                (void)pgd_xen_sysfs_unbind_pciback(hv->sysfs_root, sbdf, driver);
                return r;
        }
        memcpy(ret_driver, driver, HV_DRIVER_MAX);
        return 0;
}

static int xen_pci_unprepare(struct hv *hv, uint32_t sbdf, const char *driver)
{
        int r;

        r = xen_deassign(hv, HV_DOMID_IO, sbdf);
        if (r < 0)
                return r;
        return pgd_xen_sysfs_unbind_pciback(hv->sysfs_root, sbdf, driver);
}

static int xen_root_devices(struct hv *hv, uint32_t **ret, size_t *ret_n)
{
        return pg_rootdev_pci(hv->sysfs_root, ret, ret_n);
}

const struct hv_ops hv_xen_ops = {
        .name = "xen",
        .open = xen_open,
        .close = xen_close,
        .host_caps = xen_host_caps,
        .domain_get = xen_domain_get,
        .domain_by_name = xen_domain_by_name,
        .domain_list = xen_domain_list,
        .test_assign = xen_test_assign,
        .assign = xen_assign,
        .deassign = xen_deassign,
        .device_group = xen_device_group,
        .device_owner = xen_device_owner,
        .assignments = xen_assignments,
        .watch_fd = xen_watch_fd,
        .watch_drain = xen_watch_drain,
        .pci_info = xen_pci_info,
        .pci_list = xen_pci_list,
        .pci_reset = xen_pci_reset,
        .pci_prepare = xen_pci_prepare,
        .pci_unprepare = xen_pci_unprepare,
        .root_devices = xen_root_devices,
};
