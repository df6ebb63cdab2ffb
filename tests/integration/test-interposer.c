/* SPDX-License-Identifier: MIT */
/*
 * libpassguard-xc.so, the interposer for unmodified toolstacks, between a
 * program that makes libxl's libxenctrl calls (xc-driver) and a stand-in
 * libxenctrl that records the calls it gets (fake-xenctrl), with a real
 * passguardd on the simulated host and a sysfs tree that mirrors its devices:
 *   - the grant comes at an HVM guest's test-assign, and libxl's later assign
 *     is a no-op: no assign call reaches libxenctrl;
 *   - a PV guest's first permission for a pciback device's BAR or IRQ asks
 *     for the grant first, and a refusal stops the permission;
 *   - refusals carry the errno libxl expects and passguard's code and check
 *     on stderr; an unreachable daemon refuses too;
 *   - deassign releases (twice is fine), DOMID_IO goes through prepare and
 *     unprepare, and a device model (qemu-*) is left alone.
 * Real Xen and real xl: tests/system (the hvm boots).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

static struct itest t;
static const char *driver, *interposer;
static char sysfs[PATH_MAX + 8], fakelog[PATH_MAX + 32], qemu[PATH_MAX + 32];
static char env_preload[PATH_MAX + 16], env_socket[PATH_MAX + 32], env_sysfs[PATH_MAX + 32],
        env_log[PATH_MAX + 48];

#define BAR_MEM 0x40200UL
#define BAR_IO 0x40101UL

struct bar {
        unsigned long start, end, flags;
};

static void mkdirs(const char *path)
{
        char buf[PATH_MAX + 128];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                mkdir(buf, 0755);
                *p = '/';
        }
        mkdir(buf, 0755);
}

/* A device in the fake sysfs: its BARs, its IRQ and its driver. */
static void fake_device(const char *bdf, const char *driver_name, unsigned irq,
                        const struct bar *bars, size_t n_bars)
{
        char dir[PATH_MAX + 64], path[PATH_MAX + 128], text[1024], target[PATH_MAX + 64];
        size_t len = 0;

        snprintf(dir, sizeof(dir), "%s/bus/pci/devices/%s", sysfs, bdf);
        mkdirs(dir);
        for (size_t i = 0; i < 7; i++) {
                struct bar b = i < n_bars ? bars[i] : (struct bar){0, 0, 0};
                len += (size_t)snprintf(text + len, sizeof(text) - len,
                                        "0x%016lx 0x%016lx 0x%016lx\n", b.start, b.end, b.flags);
        }
        snprintf(path, sizeof(path), "%s/resource", dir);
        CHECK(itest_write_file(path, text) == 0);
        snprintf(path, sizeof(path), "%s/irq", dir);
        snprintf(text, sizeof(text), "%u\n", irq);
        CHECK(itest_write_file(path, text) == 0);
        snprintf(target, sizeof(target), "%s/bus/pci/drivers/%s", sysfs, driver_name);
        mkdirs(target);
        snprintf(path, sizeof(path), "%s/driver", dir);
        CHECK(symlink(target, path) == 0);
}

/* xc-driver CALL ARGS... through the interposer; returns "rc=R errno=NAME". */
static char *xc(char **ret_err, const char *call, const char *a1, const char *a2, const char *a3,
                const char *a4)
{
        const char *argv[] = {driver, call, a1, a2, a3, a4, NULL};
        const char *env[] = {env_preload, env_socket, env_sysfs, env_log,
                             "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0", NULL};
        char *out = NULL, *err = NULL;
        int r = itest_run(&t, argv, env, &out, &err);

        CHECK_MSG(r == 0, "xc-driver %s %s: exit %d: %s", call, a1, r, err ? err : "");
        if (out)
                out[strcspn(out, "\n")] = '\0';
        if (ret_err)
                *ret_err = err;
        else
                free(err);
        return out ? out : strdup("(no output)");
}

#define XC(err, call, ...) xc((err), (call), __VA_ARGS__)
#define XC2(err, call, a1, a2) xc((err), (call), (a1), (a2), NULL, NULL)
#define XC3(err, call, a1, a2, a3) xc((err), (call), (a1), (a2), (a3), NULL)
#define XC4(err, call, a1, a2, a3, a4) xc((err), (call), (a1), (a2), (a3), (a4))

static void expect(char *got, const char *want, const char *what)
{
        CHECK_MSG(got && streq(got, want), "%s: got \"%s\", expected \"%s\"", what,
                  got ? got : "(null)", want);
        free(got);
}

static bool fake_called(const char *needle)
{
        char *log = itest_read_file(fakelog, NULL);
        bool r = log && strstr(log, needle);

        free(log);
        return r;
}

static void expect_owner(const char *bdf, const char *want)
{
        char buf[32];

        CHECK_MSG(streq(itest_owner(&t, bdf, buf), want), "%s is owned by %s, expected %s", bdf,
                  buf, want);
}

#define HAS(s, needle) ((s) && strstr((s), (needle)))

int main(void)
{
        char *err = NULL, num[32];
        json_int_t assigns;

        driver = getenv("XC_DRIVER");
        interposer = getenv("PASSGUARD_XC");
        if (!driver || !interposer) {
                fprintf(stderr, "XC_DRIVER and PASSGUARD_XC must be set (meson does)\n");
                return 1;
        }
        itest_init(&t, "interposer", false);
        snprintf(sysfs, sizeof(sysfs), "%s/sys", t.dir);
        snprintf(fakelog, sizeof(fakelog), "%s/fake-xenctrl.log", t.dir);
        snprintf(env_preload, sizeof(env_preload), "LD_PRELOAD=%s", interposer);
        snprintf(env_socket, sizeof(env_socket), "PASSGUARD_SOCKET=%s", t.sock);
        snprintf(env_sysfs, sizeof(env_sysfs), "PASSGUARD_XC_SYSFS=%s", sysfs);
        snprintf(env_log, sizeof(env_log), "FAKE_XC_LOG=%s", fakelog);

        /* The fixture host's devices as sysfs shows them. NIC and SPARE share IRQ 17. */
        fake_device(DEV_GPU, "pciback", 16,
                    (struct bar[]){{0xf0000000, 0xf0ffffff, BAR_MEM}, {0xe000, 0xe07f, BAR_IO}}, 2);
        fake_device(DEV_NIC, "pciback", 17,
                    (struct bar[]){{0xf1000000, 0xf101ffff, BAR_MEM}, {0xe100, 0xe11f, BAR_IO}}, 2);
        fake_device(DEV_SPARE, "pciback", 17, (struct bar[]){{0xf2000000, 0xf2003fff, BAR_MEM}},
                    1);
        fake_device(DEV_GPU2, "pciback", 18, (struct bar[]){{0xf3000000, 0xf3ffffff, BAR_MEM}}, 1);
        fake_device(DEV_E1000, "e1000e", 19, (struct bar[]){{0xf4000000, 0xf401ffff, BAR_MEM}}, 1);
        fake_device(DEV_IGB, "igb", 16, (struct bar[]){{0xf5000000, 0xf501ffff, BAR_MEM}}, 1);

        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }

        /* HVM: libxl's early test-assign is the grant; nothing reaches libxenctrl. */
        snprintf(num, sizeof(num), "%d", DOM_RENDER1);
        expect(XC2(NULL, "test_assign", num, DEV_GPU), "rc=0 errno=0", "test-assign render-1 GPU");
        expect_owner(DEV_GPU, "5");
        CHECK(itest_grants_find(itest_grants_load(&t), DEV_GPU) != NULL);
        assigns = itest_calls(&t, "assign");
        CHECK_INTEQ(assigns, 1);
        /* ... and libxl's assign, after device_add and the permissions, is a no-op. */
        expect(XC3(NULL, "assign", num, DEV_GPU, "0"), "rc=0 errno=0", "assign render-1 GPU");
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
        CHECK_MSG(!fake_called("test_assign") && !fake_called("assign "),
                  "a test-assign or assign reached libxenctrl");

        /* A second guest: refused busy, with the errno libxl reports and the check. */
        snprintf(num, sizeof(num), "%d", DOM_RENDER2);
        expect(XC2(&err, "test_assign", num, DEV_GPU), "rc=-1 errno=EBUSY",
               "test-assign render-2 GPU");
        CHECK_MSG(HAS(err, "busy (check: free)"), "stderr: %s", err ? err : "");
        free(err);
        expect_owner(DEV_GPU, "5");

        /* PV: the first permission for a BAR is the grant, then the real call. */
        snprintf(num, sizeof(num), "%d", DOM_NETPV);
        expect(XC4(NULL, "iomem", num, "0xf1000", "32", "1"), "rc=0 errno=0",
               "I/O memory permission net-pv NIC");
        expect_owner(DEV_NIC, "7");
        CHECK(fake_called("iomem 7 0xf1000 32 1"));
        assigns = itest_calls(&t, "assign");
        /* The device's other BAR and its IRQ: granted already, straight through. */
        expect(XC4(NULL, "ioport", num, "0xe100", "32", "1"), "rc=0 errno=0", "ioport net-pv NIC");
        expect(XC3(NULL, "irq", num, "17", "1"), "rc=0 errno=0", "irq 17 net-pv");
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);
        CHECK(fake_called("ioport 7 0xe100 32 1") && fake_called("irq 7 17 1"));
        /* Revoking is never in the way. */
        expect(XC4(NULL, "iomem", num, "0xf1000", "32", "0"), "rc=0 errno=0", "revoke iomem");

        /* A refusal stops the permission: nothing reaches libxenctrl. */
        snprintf(num, sizeof(num), "%d", DOM_NOIOMMU);
        expect(XC4(&err, "iomem", num, "0xf3000", "16", "1"), "rc=-1 errno=EOPNOTSUPP",
               "iomem noiommu-1 GPU2");
        CHECK_MSG(HAS(err, "domain-no-iommu (check: domain-iommu)"), "stderr: %s",
                  err ? err : "");
        free(err);
        CHECK(!fake_called("iomem 10 "));
        expect_owner(DEV_GPU2, "io");

        /* Ranges of no pciback device are none of passguard's business. */
        assigns = itest_calls(&t, "assign");
        expect(XC4(NULL, "iomem", num, "0xf5000", "1", "1"), "rc=0 errno=0", "iomem of igb's BAR");
        expect(XC4(NULL, "iomem", num, "0x12345", "1", "1"), "rc=0 errno=0", "iomem elsewhere");
        CHECK_INTEQ(itest_calls(&t, "assign"), assigns);

        /* IRQ 17 is NIC's and SPARE's: a domain holding neither is refused, net-pv holds NIC. */
        snprintf(num, sizeof(num), "%d", DOM_NETPVH);
        expect(XC3(&err, "irq", num, "17", "1"), "rc=-1 errno=EPERM", "irq 17 net-pvh");
        CHECK_MSG(HAS(err, "shared by 2 pciback devices"), "stderr: %s", err ? err : "");
        free(err);
        CHECK(!fake_called("irq 8 17"));

        /* Mapping a pciback device's GSI into a domain: the grant first. */
        snprintf(num, sizeof(num), "%d", DOM_NETHVM);
        expect(XC2(NULL, "map_pirq", num, "18"), "rc=0 errno=0", "map_pirq 18 net-hvm");
        expect_owner(DEV_GPU2, "12");
        CHECK(fake_called("map_pirq 12 18"));

        /* deassign releases into quarantine; the second time there is nothing to release. */
        snprintf(num, sizeof(num), "%d", DOM_RENDER1);
        expect(XC2(NULL, "deassign", num, DEV_GPU), "rc=0 errno=0", "deassign render-1 GPU");
        expect_owner(DEV_GPU, "io");
        expect(XC2(NULL, "deassign", num, DEV_GPU), "rc=0 errno=0", "deassign render-1 GPU again");
        CHECK(!fake_called("deassign"));

        /* pci-assignable-add and -remove: prepare and unprepare. */
        expect(XC3(NULL, "assign", "0x7ff1", DEV_E1000, "1"), "rc=0 errno=0", "quarantine E1000");
        expect_owner(DEV_E1000, "io");
        expect(XC2(NULL, "deassign", "0x7ff1", DEV_E1000), "rc=0 errno=0", "unquarantine E1000");
        expect_owner(DEV_E1000, "null");
        CHECK(!fake_called("assign 32753") && !fake_called("deassign 32753"));

        /* dom0 and "any guest" test-assigns are the toolstack's own business. */
        expect(XC2(NULL, "test_assign", "0x7ff4", DEV_GPU), "rc=0 errno=0", "test-assign any");
        CHECK(fake_called("test_assign 32756"));

        /* A device model is left alone. */
        snprintf(qemu, sizeof(qemu), "%s/qemu-system-i386", t.dir);
        CHECK(symlink(driver, qemu) == 0);
        driver = qemu;
        snprintf(num, sizeof(num), "%d", DOM_RENDER2);
        expect(XC2(NULL, "test_assign", num, DEV_GPU), "rc=0 errno=0", "qemu's test-assign");
        CHECK(fake_called("test_assign 6 "));
        driver = getenv("XC_DRIVER");

        /* No daemon, no grant: the call fails, naming the socket. */
        itest_stop(&t);
        snprintf(num, sizeof(num), "%d", DOM_RENDER1);
        char *r = XC2(&err, "test_assign", num, DEV_GPU);
        CHECK_MSG(strncmp(r, "rc=-1 ", 6) == 0, "with no daemon: %s", r);
        CHECK_MSG(HAS(err, "passguardd is not reachable at") && HAS(err, t.sock), "stderr: %s",
                  err ? err : "");
        free(r);
        free(err);
        expect_owner(DEV_GPU, "io");

        itest_finish(&t);
        return harness_exit();
}
