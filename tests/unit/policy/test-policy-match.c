/* SPDX-License-Identifier: MIT */
/*
 * Evaluating policies: who is a client or an admin, what is protected, which
 * rule decides, why earlier rules missed, and that the rule index never
 * changes an answer.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

static const char policy_text[] =
        "version = 1;\n"
        "require_interrupt_remapping = false;\n"
        "clients = (\n"
        "  { name = \"xl\"; uid = 0; },\n"
        "  { name = \"libvirt\"; group = \"adm\"; unit = \"libvirtd.service\"; },\n"
        "  { name = \"ops\"; gid = 4242; },\n"
        "  { name = \"daemonish\"; group = \"daemon\"; },\n"
        "  { name = \"kvm\"; uid = 1000; gid = 1000; }\n"
        ");\n"
        "admins = [ \"xl\" ];\n"
        "protected = (\n"
        "  { bdf = \"0000:00:1f.*\"; },\n"
        "  { class = \"0x0106\"; }\n"
        ");\n"
        "rules = (\n"
        "  { name = \"deny-bad-gpu\"; action = \"deny\";\n"
        "    devices = ( { vendor = 0x10de; device = 0xdead; } ); },\n"
        "  { name = \"gpus-to-render\"; action = \"allow\"; clients = [ \"libvirt\" ];\n"
        "    devices = ( { vendor = 0x10de; class = \"0x03\"; } );\n"
        "    domains = ( { name = \"render-*\"; type = \"hvm\"; } );\n"
        "    max_devices_per_domain = 2; reset = \"if-available\"; rdm_policy = \"relaxed\"; },\n"
        "  { name = \"nic-slot\"; action = \"allow\"; devices = ( { bdf = \"05:*.*\"; } );\n"
        "    domains = ( { name = \"net-?\"; } ); managed = true; },\n"
        "  { name = \"exact\"; action = \"allow\"; clients = [ \"ops\" ];\n"
        "    devices = ( { bdf = \"0001:02:03.4\"; } ); domains = ( { domid = 7; } );\n"
        "    reset = \"never\"; },\n"
        "  { name = \"by-uuid\"; action = \"allow\"; clients = [ \"daemonish\" ];\n"
        "    devices = ( { class = \"0x0200\"; } );\n"
        "    domains = ( { uuid = \"5F0C1D2E-8A4B-4C6D-9E7F-0A1B2C3D4E5F\"; } ); },\n"
        "  { name = \"full-class\"; action = \"allow\"; clients = [ \"kvm\" ];\n"
        "    devices = ( { class = \"0x0c0330\"; },\n"
        "                { subsystem_vendor = 0x1af4; subsystem_device = 0x1100; } );\n"
        "    domains = ( { type = \"pvh\"; }, { type = \"pv\"; } ); },\n"
        "  { name = \"deny-xl-web\"; action = \"deny\"; clients = [ \"xl\" ];\n"
        "    domains = ( { name = \"web-*\"; } ); },\n"
        "  { name = \"xl-anything\"; action = \"allow\"; clients = [ \"xl\" ]; managed = true; }\n"
        ");\n";

static gid_t gid_adm, gid_daemon;
static const gid_t groups_4242[] = {27, 4242};

/* Identities */
enum {
        ROOT,
        LIBVIRT,
        LIBVIRT_NO_UNIT,
        LIBVIRT_PRIMARY,
        OPS,
        OPS_SUPP,
        DAEMONISH,
        KVM,
        KVM_BAD_GID,
        STRANGER,
        N_IDS
};
static struct pg_policy_identity ids[N_IDS];
static gid_t groups_adm[1];

static void setup_identities(void)
{
        struct group *g = getgrnam("adm");
        gid_adm = g ? g->gr_gid : 4;
        g = getgrnam("daemon");
        gid_daemon = g ? g->gr_gid : 1;
        groups_adm[0] = gid_adm;

        ids[ROOT] = (struct pg_policy_identity){.uid = 0, .gid = 0};
        ids[LIBVIRT] = (struct pg_policy_identity){.uid = 500,
                                                   .gid = 500,
                                                   .groups = groups_adm,
                                                   .n_groups = 1,
                                                   .unit = "libvirtd.service"};
        ids[LIBVIRT_NO_UNIT] = (struct pg_policy_identity){
                .uid = 500, .gid = 500, .groups = groups_adm, .n_groups = 1};
        ids[LIBVIRT_PRIMARY] =
                (struct pg_policy_identity){.uid = 501, .gid = gid_adm, .unit = "libvirtd.service"};
        ids[OPS] = (struct pg_policy_identity){.uid = 600, .gid = 4242};
        ids[OPS_SUPP] = (struct pg_policy_identity){
                .uid = 601, .gid = 601, .groups = groups_4242, .n_groups = 2};
        ids[DAEMONISH] = (struct pg_policy_identity){.uid = 700, .gid = gid_daemon};
        ids[KVM] = (struct pg_policy_identity){.uid = 1000, .gid = 1000};
        ids[KVM_BAD_GID] = (struct pg_policy_identity){.uid = 1000, .gid = 5};
        ids[STRANGER] = (struct pg_policy_identity){.uid = 1234, .gid = 1234};
}

#define DEV(s, b, d, f, ven, dev, cls)                                                             \
        ((struct pg_policy_device){.sbdf = PG_SBDF(s, b, d, f),                                    \
                                   .vendor = (ven),                                                \
                                   .device = (dev),                                                \
                                   .subsystem_vendor = -1,                                         \
                                   .subsystem_device = -1,                                         \
                                   .class = (cls)})

static const struct pg_policy_device gpu = DEV(0, 3, 0, 0, 0x10de, 0x1eb8, 0x030200);
static const struct pg_policy_device bad_gpu = DEV(0, 3, 0, 0, 0x10de, 0xdead, 0x030000);
static const struct pg_policy_device gpu_audio = DEV(0, 3, 0, 1, 0x10de, 0x10f8, 0x040300);
static const struct pg_policy_device gpu_no_class = DEV(0, 3, 0, 0, 0x10de, 0x1eb8, -1);
static const struct pg_policy_device unknown_dev = DEV(0, 9, 0, 0, -1, -1, -1);
static const struct pg_policy_device nic5 = DEV(0, 5, 0, 1, 0x8086, 0x1533, 0x020000);
static const struct pg_policy_device nic5_seg1 = DEV(1, 5, 0, 1, 0x8086, 0x1533, 0x020000);
static const struct pg_policy_device exact_dev = DEV(1, 2, 3, 4, 0x15b3, 0x1017, 0x020000);
static const struct pg_policy_device exact_next = DEV(1, 2, 3, 5, 0x15b3, 0x1017, 0x020000);
static const struct pg_policy_device nic6 = DEV(0, 6, 0, 0, 0x14e4, 0x1657, 0x020000);
static const struct pg_policy_device other_net = DEV(0, 6, 0, 1, 0x14e4, 0x1657, 0x028000);
static const struct pg_policy_device xhci = DEV(0, 0, 0x14, 0, 0x8086, 0xa36d, 0x0c0330);
static const struct pg_policy_device ehci = DEV(0, 0, 0x1a, 0, 0x8086, 0xa36e, 0x0c0320);
static const struct pg_policy_device virtio = {
        .sbdf = PG_SBDF(0, 0, 4, 0),
        .vendor = 0x1af4,
        .device = 0x1041,
        .subsystem_vendor = 0x1af4,
        .subsystem_device = 0x1100,
        .class = 0x020000,
};
static const struct pg_policy_device nic5_other = DEV(0, 5, 3, 7, 0x8086, 0x1533, 0x020000);
static const struct pg_policy_device gpu_3d = DEV(0, 3, 0, 0, 0x10de, 0x20b0, 0x030200);
static const struct pg_policy_device gpu_vga = DEV(0, 3, 0, 0, 0x10de, 0x2204, 0x030000);
static const struct pg_policy_device intel_gpu = DEV(0, 0, 2, 0, 0x8086, 0x9a49, 0x030000);
static const struct pg_policy_device nic_progif = DEV(0, 6, 0, 0, 0x14e4, 0x1657, 0x020001);
static const struct pg_policy_device sata = DEV(0, 0, 0x17, 0, 0x8086, 0xa352, 0x010601);
static const struct pg_policy_device lpc = DEV(0, 0, 0x1f, 3, 0x8086, 0xa348, 0x040300);
static const struct pg_policy_device lpc_seg1 = DEV(1, 0, 0x1f, 3, 0x8086, 0xa348, 0x040300);

#define UUID_A "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f"
#define UUID_B "00000000-8a4b-4c6d-9e7f-0a1b2c3d4e5f"

#define DOM(n, id, u, t)                                                                           \
        ((struct pg_policy_domain){.name = (n), .domid = (id), .uuid = (u), .type = (t)})

struct match_case {
        const char *name;
        int id;
        const struct pg_policy_device *dev;
        struct pg_policy_domain dom;
        bool allow;
        const char *rule;
};

static const struct match_case match_cases[] = {
        {"libvirt gpu to render hvm", LIBVIRT, &gpu, DOM("render-1", 5, UUID_A, "hvm"), true,
         "gpus-to-render"},
        {"star matches the empty string", LIBVIRT, &gpu, DOM("render-", 5, UUID_A, "hvm"), true,
         "gpus-to-render"},
        {"type pv is not hvm", LIBVIRT, &gpu, DOM("render-2", 6, UUID_A, "pv"), false, "default"},
        {"name does not match the glob", LIBVIRT, &gpu, DOM("web-render-1", 6, UUID_A, "hvm"),
         false, "default"},
        {"an earlier deny wins", LIBVIRT, &bad_gpu, DOM("render-1", 5, UUID_A, "hvm"), false,
         "deny-bad-gpu"},
        {"unit must match too", LIBVIRT_NO_UNIT, &gpu, DOM("render-1", 5, UUID_A, "hvm"), false,
         "default"},
        {"group as the primary gid", LIBVIRT_PRIMARY, &gpu, DOM("render-1", 5, UUID_A, "hvm"), true,
         "gpus-to-render"},
        {"stranger is denied", STRANGER, &gpu, DOM("render-1", 5, UUID_A, "hvm"), false, "default"},
        {"class 0x03 does not take 0x04", LIBVIRT, &gpu_audio, DOM("render-1", 5, UUID_A, "hvm"),
         false, "default"},
        {"unknown class never satisfies an allow", LIBVIRT, &gpu_no_class,
         DOM("render-1", 5, UUID_A, "hvm"), false, "default"},
        {"unknown facts satisfy a deny", ROOT, &unknown_dev, DOM("render-1", 5, UUID_A, "hvm"),
         false, "deny-bad-gpu"},
        {"bdf without segment, wildcards", OPS, &nic5, DOM("net-1", 8, UUID_B, "pv"), true,
         "nic-slot"},
        {"? is exactly one character", OPS, &nic5, DOM("net-12", 8, UUID_B, "pv"), false,
         "default"},
        {"? needs a character", OPS, &nic5, DOM("net-", 8, UUID_B, "pv"), false, "default"},
        {"bdf without segment is segment 0", OPS, &nic5_seg1, DOM("net-1", 8, UUID_B, "pv"), false,
         "default"},
        {"exact bdf with segment and domid", OPS, &exact_dev, DOM("x", 7, UUID_B, "hvm"), true,
         "exact"},
        {"gid via supplementary groups", OPS_SUPP, &exact_dev, DOM("x", 7, UUID_B, "hvm"), true,
         "exact"},
        {"exact bdf, other function", OPS, &exact_next, DOM("x", 7, UUID_B, "hvm"), false,
         "default"},
        {"exact bdf, other domid", OPS, &exact_dev, DOM("x", 8, UUID_B, "hvm"), false, "default"},
        {"uuid matches case-insensitively", DAEMONISH, &nic6, DOM("x", 9, UUID_A, "hvm"), true,
         "by-uuid"},
        {"uuid differs", DAEMONISH, &nic6, DOM("x", 9, UUID_B, "hvm"), false, "default"},
        {"4-digit class prefix", DAEMONISH, &other_net, DOM("x", 9, UUID_A, "hvm"), false,
         "default"},
        {"6-digit class", KVM, &xhci, DOM("vm", 10, UUID_B, "pvh"), true, "full-class"},
        {"6-digit class, other prog-if", KVM, &ehci, DOM("vm", 10, UUID_B, "pvh"), false,
         "default"},
        {"second device and domain matcher", KVM, &virtio, DOM("vm", 10, UUID_B, "pv"), true,
         "full-class"},
        {"no domain matcher takes hvm", KVM, &virtio, DOM("vm", 10, UUID_B, "hvm"), false,
         "default"},
        {"uid and gid must both match", KVM_BAD_GID, &xhci, DOM("vm", 10, UUID_B, "pvh"), false,
         "default"},
        {"root to web is denied", ROOT, &gpu, DOM("web-1", 11, UUID_B, "hvm"), false,
         "deny-xl-web"},
        {"root falls through to its own allow", ROOT, &gpu, DOM("render-1", 5, UUID_A, "hvm"), true,
         "xl-anything"},
        {"rule without clients takes any client", ROOT, &nic5, DOM("net-3", 8, UUID_B, "hvm"), true,
         "nic-slot"},
        {"rule without clients takes no stranger", STRANGER, &nic5, DOM("net-3", 8, UUID_B, "hvm"),
         false, "default"},
        {"unknown domain name fails an allow", ROOT, &nic5, DOM(NULL, 8, UUID_B, "hvm"), false,
         "deny-xl-web"},
        {"bus wildcard with slot and function wildcards", OPS, &nic5_other,
         DOM("net-1", 8, UUID_B, "pv"), true, "nic-slot"},
        {"bdf wildcard does not take another bus", OPS, &nic6, DOM("net-1", 8, UUID_B, "pv"),
         false, "default"},
        {"2-digit class takes 3D controllers", LIBVIRT, &gpu_3d, DOM("render-9", 9, UUID_A, "hvm"),
         true, "gpus-to-render"},
        {"2-digit class takes VGA controllers", LIBVIRT, &gpu_vga, DOM("render-9", 9, UUID_A, "hvm"),
         true, "gpus-to-render"},
        {"class matches but vendor differs", LIBVIRT, &intel_gpu, DOM("render-1", 5, UUID_A, "hvm"),
         false, "default"},
        {"4-digit class takes any prog-if", DAEMONISH, &nic_progif, DOM("x", 9, UUID_A, "hvm"), true,
         "by-uuid"},
        {"uuid right but class wrong", DAEMONISH, &xhci, DOM("x", 9, UUID_A, "hvm"), false,
         "default"},
        {"type pvh is not hvm", LIBVIRT, &gpu, DOM("render-1", 5, UUID_A, "pvh"), false, "default"},
        {"? matches a letter", OPS, &nic5, DOM("net-a", 8, UUID_B, "hvm"), true, "nic-slot"},
        {"domid-only matcher ignores an unknown name", OPS, &exact_dev, DOM(NULL, 7, UUID_B, "hvm"),
         true, "exact"},
        {"stranger never reaches an exact rule", STRANGER, &exact_dev, DOM("x", 7, UUID_B, "hvm"),
         false, "default"},
        {"pvh matcher does not take hvm for usb", KVM, &xhci, DOM("vm", 10, UUID_B, "hvm"), false,
         "default"},
};

static void test_matching(const struct pg_policy *p)
{
        for (size_t i = 0; i < ELEMENTSOF(match_cases); i++) {
                const struct match_case *c = &match_cases[i];
                struct pg_policy_decision d = {}, e = {};

                CHECK_INTEQ(pg_policy_evaluate(p, &ids[c->id], c->dev, &c->dom, false, &d), 0);
                CHECK_MSG(d.allow == c->allow && streq(d.rule, c->rule), "%s: got %s by '%s'",
                          c->name, d.allow ? "allow" : "deny", d.rule);
                CHECK(d.n_misses == 0 && !d.misses);

                /* explain walks every rule; it must reach the same decision */
                CHECK_INTEQ(pg_policy_evaluate(p, &ids[c->id], c->dev, &c->dom, true, &e), 0);
                CHECK_MSG(e.allow == d.allow && streq(e.rule, d.rule), "%s: explain says '%s'",
                          c->name, e.rule);
                pg_policy_decision_clear(&d);
                pg_policy_decision_clear(&e);
        }
}

static void test_decision_fields(const struct pg_policy *p)
{
        struct pg_policy_decision d = {};
        struct pg_policy_domain dom = DOM("render-1", 5, UUID_A, "hvm");

        pg_policy_evaluate(p, &ids[LIBVIRT], &gpu, &dom, false, &d);
        CHECK(d.allow);
        CHECK_INTEQ(d.max_devices_per_domain, 2);
        CHECK_INTEQ(d.reset, PG_POLICY_RESET_IF_AVAILABLE);
        CHECK_INTEQ(d.rdm_policy, PG_POLICY_RDM_RELAXED);
        CHECK(!d.managed);

        dom = DOM("x", 7, UUID_B, "hvm");
        pg_policy_evaluate(p, &ids[OPS], &exact_dev, &dom, false, &d);
        CHECK_STREQ(d.rule, "exact");
        CHECK_INTEQ(d.reset, PG_POLICY_RESET_NEVER);
        CHECK_INTEQ(d.rdm_policy, PG_POLICY_RDM_STRICT);
        CHECK_INTEQ(d.max_devices_per_domain, 0);

        pg_policy_evaluate(p, &ids[STRANGER], &exact_dev, &dom, false, &d);
        CHECK_STREQ(d.rule, "default");
        CHECK(!d.allow);
        CHECK_INTEQ(d.reset, PG_POLICY_RESET_REQUIRED);
        CHECK_INTEQ(d.rdm_policy, PG_POLICY_RDM_STRICT);
        CHECK(!pg_policy_require_interrupt_remapping(p));
}

static void test_explain(const struct pg_policy *p)
{
        struct pg_policy_decision d = {};
        struct pg_policy_domain dom = DOM("render-2", 6, UUID_A, "pv");

        CHECK_INTEQ(pg_policy_evaluate(p, &ids[LIBVIRT], &gpu, &dom, true, &d), 0);
        CHECK_STREQ(d.rule, "default");
        CHECK_INTEQ(d.n_misses, pg_policy_n_rules(p));
        if (d.n_misses == 8) {
                CHECK_STREQ(d.misses[0].rule, "deny-bad-gpu");
                CHECK_STREQ(d.misses[0].reason, "device: device 0x1eb8 != 0xdead");
                CHECK_STREQ(d.misses[1].rule, "gpus-to-render");
                CHECK_STREQ(d.misses[1].reason, "domain: type pv != hvm");
                CHECK_STREQ(d.misses[2].reason,
                            "device: bdf 0000:03:00.0 does not match 0000:05:*.*");
                CHECK_STREQ(d.misses[3].reason, "client: not in [ops]");
                CHECK_STREQ(d.misses[4].reason, "client: not in [daemonish]");
                CHECK_STREQ(d.misses[7].rule, "xl-anything");
        }
        pg_policy_decision_clear(&d);
        CHECK(!d.misses && d.n_misses == 0);

        dom = DOM("web-1", 6, UUID_A, "hvm");
        CHECK_INTEQ(pg_policy_evaluate(p, &ids[LIBVIRT], &gpu, &dom, true, &d), 0);
        CHECK_INTEQ(d.n_misses, 8);
        if (d.n_misses == 8)
                CHECK_STREQ(d.misses[1].reason, "domain: name 'web-1' does not match 'render-*'");
        pg_policy_decision_clear(&d);

        /* Two device matchers: both reasons. */
        dom = DOM("vm", 10, UUID_B, "pv");
        CHECK_INTEQ(pg_policy_evaluate(p, &ids[KVM], &ehci, &dom, true, &d), 0);
        if (d.n_misses == 8)
                CHECK_STREQ(d.misses[5].reason, "device: class 0x0c0320 is not 0x0c0330; "
                                                "subsystem_vendor unknown");
        pg_policy_decision_clear(&d);

        /* Stops at the match: only the rules before it. */
        dom = DOM("render-1", 5, UUID_A, "hvm");
        CHECK_INTEQ(pg_policy_evaluate(p, &ids[LIBVIRT], &gpu, &dom, true, &d), 0);
        CHECK_STREQ(d.rule, "gpus-to-render");
        CHECK_INTEQ(d.n_misses, 1);
        pg_policy_decision_clear(&d);

        dom = DOM("render-1", 5, UUID_A, "hvm");
        CHECK_INTEQ(pg_policy_evaluate(p, &ids[ROOT], &bad_gpu, &dom, true, &d), 0);
        CHECK_STREQ(d.rule, "deny-bad-gpu");
        CHECK_INTEQ(d.n_misses, 0);
        CHECK(!d.misses);
        pg_policy_decision_clear(&d);
}

static void test_clients(const struct pg_policy *p)
{
        const char *names[4];

        CHECK(pg_policy_is_client(p, &ids[ROOT]));
        CHECK(pg_policy_is_client(p, &ids[LIBVIRT]));
        CHECK(!pg_policy_is_client(p, &ids[LIBVIRT_NO_UNIT]));
        CHECK(!pg_policy_is_client(p, &ids[STRANGER]));
        CHECK(pg_policy_is_admin(p, &ids[ROOT]));
        CHECK(!pg_policy_is_admin(p, &ids[LIBVIRT]));
        CHECK(!pg_policy_is_admin(p, &ids[STRANGER]));

        CHECK_INTEQ(pg_policy_clients(p, &ids[ROOT], names, ELEMENTSOF(names)), 1);
        CHECK_STREQ(names[0], "xl");
        CHECK_INTEQ(pg_policy_clients(p, &ids[STRANGER], names, ELEMENTSOF(names)), 0);

        /* one identity, two clients */
        static const gid_t both[] = {4242};
        struct pg_policy_identity id = {.uid = 0, .gid = 0, .groups = both, .n_groups = 1};
        CHECK_INTEQ(pg_policy_clients(p, &id, names, ELEMENTSOF(names)), 2);
        CHECK_STREQ(names[0], "xl");
        CHECK_STREQ(names[1], "ops");
        CHECK_INTEQ(pg_policy_clients(p, &id, names, 1), 1);
}

static void test_protected(const struct pg_policy *p)
{
        const char *why = NULL;

        CHECK(pg_policy_is_protected(p, &sata, &why));
        CHECK_STREQ(why, "class 0x0106");
        why = NULL;
        CHECK(pg_policy_is_protected(p, &lpc, &why));
        CHECK_STREQ(why, "bdf 0000:00:1f.*");
        CHECK(!pg_policy_is_protected(p, &lpc_seg1, &why));
        CHECK(!pg_policy_is_protected(p, &gpu, NULL));
        CHECK(!pg_policy_is_protected(p, &xhci, NULL));
        /* a device whose class is unknown might be a SATA controller */
        CHECK(pg_policy_is_protected(p, &unknown_dev, NULL));
}

static void test_may_prepare(const struct pg_policy *p)
{
        CHECK(pg_policy_may_prepare(p, &ids[OPS], &nic5));
        CHECK(!pg_policy_may_prepare(p, &ids[OPS], &nic6));
        CHECK(!pg_policy_may_prepare(p, &ids[LIBVIRT], &gpu));
        /*
         * xl's first rule for the GPU is deny-xl-web, a deny rule for some
         * domains: it decides before xl-anything (xl is an admin, and an admin
         * prepares anyway; that is ops.c's business, not the policy's).
         */
        CHECK(!pg_policy_may_prepare(p, &ids[ROOT], &gpu));
        CHECK(!pg_policy_may_prepare(p, &ids[STRANGER], &nic5));
}

/*
 * The first rule that matches the client and the device decides `prepare`:
 * a deny rule before a managed allow rule refuses, whatever the domains.
 */
static void test_may_prepare_first_match(void)
{
        static const char text[] =
                "version = 1;\n"
                "clients = ( { name = \"ops\"; gid = 4242; }, { name = \"kvm\"; uid = 1000; } );\n"
                "rules = (\n"
                "  { name = \"no-ops-nic6\"; action = \"deny\"; clients = [ \"ops\" ];\n"
                "    devices = ( { bdf = \"06:00.0\"; } ); domains = ( { name = \"web-*\"; } ); "
                "},\n"
                "  { name = \"unmanaged-nic5\"; action = \"allow\";\n"
                "    devices = ( { bdf = \"05:00.1\"; } ); },\n"
                "  { name = \"nics\"; action = \"allow\"; devices = ( { class = \"0x02\"; } );\n"
                "    managed = true; }\n"
                ");\n";
        struct pg_policy_diags d = {};
        struct pg_policy *p = NULL;
        struct pg_policy_identity kvm = {.uid = 1000, .gid = 1000};

        CHECK_INTEQ(pg_policy_load_string(text, "prepare.conf", &p, &d), 0);
        if (!p) {
                pg_policy_diags_print(&d, stderr);
                pg_policy_diags_clear(&d);
                return;
        }
        /* ops: the deny rule comes first for nic6, even for other domains */
        CHECK(!pg_policy_may_prepare(p, &ids[OPS], &nic6));
        /* kvm: the deny rule is not about kvm; "nics" decides */
        CHECK(pg_policy_may_prepare(p, &kvm, &nic6));
        /* an allow rule without managed = true that matches first refuses too */
        CHECK(!pg_policy_may_prepare(p, &ids[OPS], &nic5));
        CHECK(!pg_policy_may_prepare(p, &kvm, &nic5));
        pg_policy_free(p);
}

static unsigned rnd(unsigned *seed)
{
        *seed = *seed * 1103515245u + 12345u;
        return (*seed >> 16) & 0x7fff;
}

/*
 * A large generated policy: the indexed evaluation must always agree with the
 * plain walk that explain does.
 */
static void test_index_agrees(void)
{
        size_t cap = 1 << 20, n = 0;
        char *text = malloc(cap);
        CHECK(text);
        if (!text)
                return;
        unsigned seed = 12345;
#define RND() rnd(&seed)
        n += (size_t)snprintf(text + n, cap - n,
                              "version = 1;\nclients = ( { name = \"a\"; uid = 1; },"
                              " { name = \"b\"; uid = 2; } );\nrules = (\n");
        for (int i = 0; i < 1500; i++) {
                const char *action = RND() % 3 ? "allow" : "deny";
                const char *client = RND() % 2 ? "a" : "b";
                char dev[128];
                switch (RND() % 6) {
                case 0:
                        snprintf(dev, sizeof(dev), "devices = ( { bdf = \"%02x:%02x.%x\"; } );",
                                 RND() % 8, RND() % 4, RND() % 2);
                        break;
                case 1:
                        snprintf(dev, sizeof(dev), "devices = ( { vendor = %u; } );", RND() % 16);
                        break;
                case 2:
                        snprintf(dev, sizeof(dev), "devices = ( { class = \"%02x%02x\"; } );",
                                 RND() % 4, RND() % 2);
                        break;
                case 3:
                        snprintf(dev, sizeof(dev),
                                 "devices = ( { bdf = \"%02x:*.*\"; }, { vendor = %u; } );",
                                 RND() % 8, RND() % 16);
                        break;
                case 4:
                        snprintf(dev, sizeof(dev), "devices = ( { device = %u; } );", RND() % 4);
                        break;
                default:
                        dev[0] = '\0';
                }
                n += (size_t)snprintf(text + n, cap - n,
                                      "{ name = \"r%d\"; action = \"%s\"; clients = [\"%s\"]; %s"
                                      " domains = ( { domid = %u; } ); },\n",
                                      i, action, client, dev, RND() % 8);
        }
        n--; /* the last comma */
        n--;
        snprintf(text + n, cap - n, "\n);\n");

        struct pg_policy_diags d = {};
        struct pg_policy *p = NULL;
        CHECK_INTEQ(pg_policy_load_string(text, "big.conf", &p, &d), 0);
        if (!p) {
                pg_policy_diags_print(&d, stderr);
                pg_policy_diags_clear(&d);
                free(text);
                return;
        }
        CHECK_INTEQ(pg_policy_n_rules(p), 1500);

        size_t disagree = 0, allowed = 0;
        for (int i = 0; i < 3000; i++) {
                struct pg_policy_identity id = {.uid = 1 + RND() % 2, .gid = 100};
                struct pg_policy_device dev = {
                        .sbdf = PG_SBDF(0, RND() % 8, RND() % 4, RND() % 2),
                        .vendor = (int32_t)(RND() % 16),
                        .device = (int32_t)(RND() % 4),
                        .subsystem_vendor = -1,
                        .subsystem_device = -1,
                        .class = (int32_t)((RND() % 4) << 16 | (RND() % 2) << 8),
                };
                struct pg_policy_domain dom = {.name = "d", .domid = RND() % 8, .type = "hvm"};
                struct pg_policy_decision fast = {}, slow = {};
                pg_policy_evaluate(p, &id, &dev, &dom, false, &fast);
                pg_policy_evaluate(p, &id, &dev, &dom, true, &slow);
                if (!streq(fast.rule, slow.rule) || fast.allow != slow.allow)
                        disagree++;
                /* the bounded reasons are the first ones of the full walk, and no more */
                struct pg_policy_miss *few = NULL;
                size_t n_few = 0, max = (size_t)(RND() % 4);
                CHECK_INTEQ(pg_policy_misses(p, &id, &dev, &dom, max, &few, &n_few), 0);
                if (n_few > max || n_few > slow.n_misses || (slow.n_misses >= max && n_few != max))
                        disagree++;
                for (size_t k = 0; k < n_few && k < slow.n_misses; k++)
                        if (!streq(few[k].rule, slow.misses[k].rule) ||
                            !streq(few[k].reason, slow.misses[k].reason))
                                disagree++;
                free(few);
                allowed += fast.allow;
                pg_policy_decision_clear(&fast);
                pg_policy_decision_clear(&slow);
        }
        CHECK_INTEQ(disagree, 0);
        /* the generated rules do decide things both ways */
        CHECK(allowed > 100 && allowed < 2900);
        pg_policy_free(p);
        free(text);
#undef RND
}

int main(void)
{
        struct pg_policy_diags d = {};
        struct pg_policy *p = NULL;

        setup_identities();
        int r = pg_policy_load_string(policy_text, "match.conf", &p, &d);
        CHECK_INTEQ(r, 0);
        if (r < 0) {
                pg_policy_diags_print(&d, stderr);
                pg_policy_diags_clear(&d);
                return harness_exit();
        }
        test_matching(p);
        test_decision_fields(p);
        test_explain(p);
        test_clients(p);
        test_protected(p);
        test_may_prepare(p);
        test_may_prepare_first_match();
        test_index_agrees();
        pg_policy_free(p);
        printf("%zu matching cases\n", ELEMENTSOF(match_cases));
        return harness_exit();
}
