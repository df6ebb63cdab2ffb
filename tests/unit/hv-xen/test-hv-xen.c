/* SPDX-License-Identifier: MIT */
/*
 * The Xen backend without a hypervisor (hv-xen-parse.c, built everywhere):
 * sysfs facts, reset and the pciback binding against a fake sysfs tree in a
 * temporary directory, and the parsers for Xen's console ring on text
 * captured from real Xen 4.17 under QEMU. With the Xen libraries, also
 * hv-xen.c's refusal to open where there is no hypervisor.
 *
 *   test-hv-xen DATA_DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "hv-xen-parse.h"
#include "hv.h"
#include "pg-util.h"
#include "pg-wire.h"

static char root[PATH_MAX / 2];
static const char *data_dir;

static const uint32_t E1000 = PG_SBDF(0, 0, 2, 0);
static const uint32_t NVME = PG_SBDF(0, 3, 0, 0);
static const uint32_t VF = PG_SBDF(0, 3, 0, 2);
static const uint32_t MISSING = PG_SBDF(0, 0, 0x1e, 7);

_printf_(1, 2) static char *path_of(const char *fmt, ...)
{
        static char buf[4][PATH_MAX * 2];
        static int slot;
        char rel[PATH_MAX / 2];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(rel, sizeof(rel), fmt, ap);
        va_end(ap);
        slot = (slot + 1) % 4;
        snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", root, rel);
        return buf[slot];
}

static void mkdirs(const char *path)
{
        char tmp[PATH_MAX];

        snprintf(tmp, sizeof(tmp), "%s", path);
        for (char *p = tmp + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        mkdir(tmp, 0755);
                        *p = '/';
                }
        mkdir(tmp, 0755);
}

static void put(const char *path, const char *content)
{
        FILE *f = fopen(path, "we");

        if (!f) {
                perror(path);
                exit(2);
        }
        fputs(content, f);
        fclose(f);
}

/* The file's content, "" when empty, "(missing)" when absent. */
static const char *get(const char *path)
{
        static char buf[256];
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return "(missing)";
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void make_device(const char *bdf, const char *vendor, const char *device,
                        const char *class)
{
        mkdirs(path_of("bus/pci/devices/%s", bdf));
        put(path_of("bus/pci/devices/%s/vendor", bdf), vendor);
        put(path_of("bus/pci/devices/%s/device", bdf), device);
        put(path_of("bus/pci/devices/%s/class", bdf), class);
}

static void make_driver(const char *name, const char *const *files)
{
        mkdirs(path_of("bus/pci/drivers/%s", name));
        for (; *files; files++)
                put(path_of("bus/pci/drivers/%s/%s", name, *files), "");
}

static void link_driver(const char *bdf, const char *driver)
{
        char target[PATH_MAX];

        unlink(path_of("bus/pci/devices/%s/driver", bdf));
        if (!driver)
                return;
        /* As in real sysfs: a relative link into bus/pci/drivers. */
        snprintf(target, sizeof(target), "../../drivers/%s", driver);
        if (symlink(target, path_of("bus/pci/devices/%s/driver", bdf)) < 0) {
                perror("symlink");
                exit(2);
        }
}

static void build_tree(void)
{
        static const char *const bind_files[] = { "bind", "unbind", NULL };
        static const char *const pciback_files[] = { "bind", "unbind", "new_slot", "remove_slot",
                                                      NULL };

        /* The QEMU machine's e1000, bound to its dom0 driver, no reset. */
        make_device("0000:00:02.0", "0x8086\n", "0x100e\n", "0x020000\n");
        put(path_of("bus/pci/devices/0000:00:02.0/subsystem_vendor"), "0x1af4\n");
        put(path_of("bus/pci/devices/0000:00:02.0/subsystem_device"), "0x1100\n");
        make_driver("e1000", bind_files);
        make_driver("pciback", pciback_files);
        link_driver("0000:00:02.0", "e1000");

        /* A function with FLR and no driver, and one of its SR-IOV VFs. */
        make_device("0000:03:00.0", "0x144d\n", "0xa808\n", "0x010802\n");
        put(path_of("bus/pci/devices/0000:03:00.0/reset"), "");
        put(path_of("bus/pci/devices/0000:03:00.0/reset_method"), "flr bus\n");
        make_device("0000:03:00.2", "0x144d\n", "0xa824\n", "0x010802\n");
        if (symlink("../0000:03:00.0", path_of("bus/pci/devices/0000:03:00.2/physfn")) < 0) {
                perror("symlink");
                exit(2);
        }

        /* Not a PCI address: pci_list must ignore it. */
        mkdirs(path_of("bus/pci/devices/not-a-device"));
}

static void test_pci_info(void)
{
        struct hv_pci_info info;

        CHECK_INTEQ(pgd_xen_sysfs_pci_info(root, E1000, &info), 0);
        CHECK_INTEQ(info.sbdf, E1000);
        CHECK_INTEQ(info.vendor, 0x8086);
        CHECK_INTEQ(info.device, 0x100e);
        CHECK_INTEQ(info.subsystem_vendor, 0x1af4);
        CHECK_INTEQ(info.subsystem_device, 0x1100);
        CHECK_INTEQ(info.class, 0x020000);
        CHECK_STREQ(info.driver, "e1000");
        CHECK(!info.has_reset);
        CHECK_STREQ(info.reset_method, "");
        CHECK(!info.has_physfn);

        CHECK_INTEQ(pgd_xen_sysfs_pci_info(root, NVME, &info), 0);
        CHECK_STREQ(info.driver, "");
        CHECK(info.has_reset);
        CHECK_STREQ(info.reset_method, "flr");
        CHECK_INTEQ(info.class, 0x010802);

        CHECK_INTEQ(pgd_xen_sysfs_pci_info(root, VF, &info), 0);
        CHECK(info.has_physfn);
        CHECK_INTEQ(info.physfn, NVME);

        /* Nothing is written to ret on failure. */
        memset(&info, 0x5a, sizeof(info));
        CHECK_INTEQ(pgd_xen_sysfs_pci_info(root, MISSING, &info), -ENODEV);
        CHECK_INTEQ(info.vendor, 0x5a5a);

        /* A garbled vendor file is an error, not vendor 0. */
        put(path_of("bus/pci/devices/0000:03:00.2/vendor"), "banana\n");
        CHECK_INTEQ(pgd_xen_sysfs_pci_info(root, VF, &info), -EBADMSG);
        put(path_of("bus/pci/devices/0000:03:00.2/vendor"), "0x144d\n");
}

static void test_pci_list(void)
{
        _cleanup_(freep) uint32_t *list = NULL;
        size_t n = 0;

        CHECK_INTEQ(pgd_xen_sysfs_pci_list(root, &list, &n), 0);
        CHECK_INTEQ(n, 3);
        if (n == 3) {
                CHECK_INTEQ(list[0], E1000);
                CHECK_INTEQ(list[1], NVME);
                CHECK_INTEQ(list[2], VF);
        }
}

static void test_pci_reset(void)
{
        CHECK_INTEQ(pgd_xen_sysfs_pci_reset(root, NVME), 0);
        CHECK_STREQ(get(path_of("bus/pci/devices/0000:03:00.0/reset")), "1");
        /* No reset file: the kernel offers no reset for this function. */
        CHECK_INTEQ(pgd_xen_sysfs_pci_reset(root, E1000), -ENOTTY);
        CHECK_INTEQ(pgd_xen_sysfs_pci_reset(root, MISSING), -ENODEV);
        /* A reset file that cannot be written is reported, not ignored. */
        mkdirs(path_of("bus/pci/devices/0000:03:00.2/reset"));
        CHECK_INTEQ(pgd_xen_sysfs_pci_reset(root, VF), -EISDIR);
}

static void test_pciback(void)
{
        char driver[HV_DRIVER_MAX] = "unchanged";

        CHECK_INTEQ(pgd_xen_sysfs_bind_pciback(root, E1000, driver), 0);
        CHECK_STREQ(driver, "e1000");
        CHECK_STREQ(get(path_of("bus/pci/drivers/e1000/unbind")), "0000:00:02.0");
        CHECK_STREQ(get(path_of("bus/pci/drivers/pciback/new_slot")), "0000:00:02.0");
        CHECK_STREQ(get(path_of("bus/pci/drivers/pciback/bind")), "0000:00:02.0");
        CHECK_STREQ(get(path_of("bus/pci/drivers/e1000/bind")), "");

        /* The kernel would now show pciback bound. */
        link_driver("0000:00:02.0", "pciback");
        put(path_of("bus/pci/drivers/pciback/bind"), "");
        CHECK_INTEQ(pgd_xen_sysfs_bind_pciback(root, E1000, driver), 0);
        CHECK_STREQ(driver, "");
        CHECK_STREQ(get(path_of("bus/pci/drivers/pciback/bind")), "");

        CHECK_INTEQ(pgd_xen_sysfs_unbind_pciback(root, E1000, "e1000"), 0);
        CHECK_STREQ(get(path_of("bus/pci/drivers/pciback/unbind")), "0000:00:02.0");
        CHECK_STREQ(get(path_of("bus/pci/drivers/pciback/remove_slot")), "0000:00:02.0");
        CHECK_STREQ(get(path_of("bus/pci/drivers/e1000/bind")), "0000:00:02.0");

        /* pciback cannot bind: the device goes back to its own driver. */
        link_driver("0000:00:02.0", "e1000");
        put(path_of("bus/pci/drivers/e1000/bind"), "");
        unlink(path_of("bus/pci/drivers/pciback/bind"));
        strcpy(driver, "unchanged");
        CHECK_INTEQ(pgd_xen_sysfs_bind_pciback(root, E1000, driver), -ENOENT);
        CHECK_STREQ(driver, "unchanged");
        CHECK_STREQ(get(path_of("bus/pci/drivers/e1000/bind")), "0000:00:02.0");

        CHECK_INTEQ(pgd_xen_sysfs_bind_pciback(root, MISSING, driver), -ENODEV);
}

static char *slurp(const char *name, size_t *ret_len)
{
        char path[PATH_MAX * 2];
        char *text = NULL;
        size_t size = 0;
        FILE *f, *out;

        snprintf(path, sizeof(path), "%s/%s", data_dir, name);
        f = fopen(path, "re");
        if (!f) {
                perror(path);
                exit(2);
        }
        out = open_memstream(&text, &size);
        for (int c; (c = fgetc(f)) != EOF;)
                fputc(c, out);
        fclose(out);
        fclose(f);
        *ret_len = size;
        return text;
}

static int owner_of(const struct hv_assignment *list, size_t n, uint32_t sbdf)
{
        for (size_t i = 0; i < n; i++)
                if (list[i].sbdf == sbdf)
                        return (int)list[i].domid;
        return -1;
}

static void test_pci_dump(void)
{
        _cleanup_(freep) char *q2 = NULL, *q3 = NULL;
        size_t len, n;

        /*
         * Captured after xl pci-assignable-add: the tail of the previous dump
         * (e1000 still d0) and then the new one (DomIO). Only the last counts.
         */
        q2 = slurp("q-dump-amd-q2.txt", &len);
        {
                _cleanup_(freep) struct hv_assignment *list = NULL;

                CHECK_INTEQ(pgd_xen_parse_pci_dump(q2, len, &list, &n), 0);
                CHECK_INTEQ(n, 6);
                CHECK_INTEQ(owner_of(list, n, E1000), HV_DOMID_IO);
                CHECK_INTEQ(owner_of(list, n, PG_SBDF(0, 0, 1, 0)), HV_DOMID_DOM0);
                CHECK_INTEQ(owner_of(list, n, PG_SBDF(0, 0, 0x1f, 3)), HV_DOMID_DOM0);
        }
        /* Captured with the e1000 assigned to domain 1. */
        q3 = slurp("q-dump-amd-q3.txt", &len);
        {
                _cleanup_(freep) struct hv_assignment *list = NULL;

                CHECK_INTEQ(pgd_xen_parse_pci_dump(q3, len, &list, &n), 0);
                CHECK_INTEQ(owner_of(list, n, E1000), 1);
        }
        /* Other spellings: d[IO], d[XEN], console timestamps, CRLF. */
        {
                static const char text[] = "(XEN) [  12.000000] ==== PCI devices ====\r\n"
                                           "(XEN) [  12.000001] ==== segment 0001 ====\r\n"
                                           "(XEN) [  12.000002] 0001:05:00.1 - d[IO] - node 0 - MSIs < >\r\n"
                                           "(XEN) [  12.000003] 0001:00:1f.0 - d[XEN] - node 0 - MSIs < >\r\n"
                                           "(XEN) [  12.000004] 0001:07:00.0 - d17 - node 0 - MSIs < 72 >\r\n"
                                           "(XEN) some later message 0001:07:00.0 - d3\n";
                _cleanup_(freep) struct hv_assignment *list = NULL;

                CHECK_INTEQ(pgd_xen_parse_pci_dump(text, sizeof(text) - 1, &list, &n), 0);
                CHECK_INTEQ(n, 3);
                CHECK_INTEQ(owner_of(list, n, PG_SBDF(1, 5, 0, 1)), HV_DOMID_IO);
                CHECK_INTEQ(owner_of(list, n, PG_SBDF(1, 0, 0x1f, 0)), PG_DOMID_XEN);
                CHECK_INTEQ(owner_of(list, n, PG_SBDF(1, 7, 0, 0)), 17);
        }
        /* No dump header: no answer, rather than "nobody owns anything". */
        {
                static const char text[] = "(XEN) 0000:00:02.0 - d0 - node -1\n";
                struct hv_assignment *list = NULL;

                CHECK_INTEQ(pgd_xen_parse_pci_dump(text, sizeof(text) - 1, &list, &n), -ENOENT);
                CHECK(list == NULL);
        }
}

static void test_intremap(void)
{
        _cleanup_(freep) char *amd = NULL, *intel = NULL;
        size_t len;

        /* Real boots: AMD-Vi and VT-d, both with intremap=on in QEMU. */
        amd = slurp("boot-amd.txt", &len);
        CHECK_INTEQ(pgd_xen_parse_intremap(amd, len), 1);
        intel = slurp("boot-intel.txt", &len);
        CHECK_INTEQ(pgd_xen_parse_intremap(intel, len), 1);
        {
                static const char t[] = "(XEN) Intel VT-d Interrupt Remapping not enabled.\n";
                CHECK_INTEQ(pgd_xen_parse_intremap(t, sizeof(t) - 1), 0);
        }
        {
                static const char t[] = "(XEN) I/O virtualisation disabled\n";
                CHECK_INTEQ(pgd_xen_parse_intremap(t, sizeof(t) - 1), 0);
        }
        {
                static const char t[] = "(XEN) Std. Loglevel: All\n(XEN) Freed 656kB init memory\n";
                CHECK_INTEQ(pgd_xen_parse_intremap(t, sizeof(t) - 1), -1);
        }
        CHECK_INTEQ(pgd_xen_parse_intremap("", 0), -1);
}

/* A config space of len bytes with the extended capabilities at (offset, id, next) triples. */
static void put32(uint8_t *c, size_t at, uint32_t v)
{
        c[at] = (uint8_t)v;
        c[at + 1] = (uint8_t)(v >> 8);
        c[at + 2] = (uint8_t)(v >> 16);
        c[at + 3] = (uint8_t)(v >> 24);
}

static uint32_t ext_header(uint16_t id, uint16_t next)
{
        return (uint32_t)id | 1U << 16 | (uint32_t)next << 20;
}

static void test_dsn(void)
{
        static uint8_t c[4096];
        char serial[HV_SERIAL_MAX];
        uint64_t dsn = 0;

        /* A conventional function: 256 bytes, no extended space, no serial. */
        memset(c, 0, sizeof(c));
        CHECK_INTEQ(pgd_xen_parse_dsn(c, 256, &dsn), 0);
        /* The kernel's 64 bytes for a reader without CAP_SYS_ADMIN: unknown. */
        CHECK_INTEQ(pgd_xen_parse_dsn(c, 64, &dsn), -ENODATA);
        /* An empty list. */
        CHECK_INTEQ(pgd_xen_parse_dsn(c, sizeof(c), &dsn), 0);
        /* A device that does not answer reads all ones: unknown, not "none". */
        memset(c, 0xff, sizeof(c));
        CHECK_INTEQ(pgd_xen_parse_dsn(c, sizeof(c), &dsn), -ENODATA);

        /* AER (0x0001) at 0x100, then the DSN at 0x140: found through the chain. */
        memset(c, 0, sizeof(c));
        put32(c, 0x100, ext_header(0x0001, 0x140));
        put32(c, 0x140, ext_header(0x0003, 0));
        put32(c, 0x144, 0xffa1b2c3U);
        put32(c, 0x148, 0x001b21ffU);
        CHECK_INTEQ(pgd_xen_parse_dsn(c, sizeof(c), &dsn), 1);
        CHECK(dsn == 0x001b21ffffa1b2c3ULL);
        pgd_xen_format_serial(dsn, serial);
        CHECK_STREQ(serial, "00-1b-21-ff-ff-a1-b2-c3");

        /* A list that loops, or points below the extended space or past it. */
        put32(c, 0x140, ext_header(0x0002, 0x100));
        CHECK_INTEQ(pgd_xen_parse_dsn(c, sizeof(c), &dsn), -EBADMSG);
        put32(c, 0x100, ext_header(0x0001, 0x040));
        CHECK_INTEQ(pgd_xen_parse_dsn(c, sizeof(c), &dsn), -EBADMSG);
        put32(c, 0x100, ext_header(0x0001, 0xffc));
        put32(c, 0xffc, ext_header(0x0003, 0));
        CHECK_INTEQ(pgd_xen_parse_dsn(c, sizeof(c), &dsn), -EBADMSG);
        /* No DSN in the list. */
        put32(c, 0x100, ext_header(0x0001, 0));
        CHECK_INTEQ(pgd_xen_parse_dsn(c, sizeof(c), &dsn), 0);
}

static void test_pci_path(void)
{
        char path[HV_PCI_PATH_MAX];

        pgd_xen_parse_pci_path("../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0", path,
                               sizeof(path));
        CHECK_STREQ(path, "pci0000:00/0000:00:01.0");
        pgd_xen_parse_pci_path("../../../devices/pci0000:00/0000:00:05.0", path, sizeof(path));
        CHECK_STREQ(path, "pci0000:00");
        /* The last devices/pci: a host bridge's own path leaves no other. */
        pgd_xen_parse_pci_path("/sys/devices/platform/x/devices/pci0000:40/0000:40:01.1/0000:41:00.0",
                               path, sizeof(path));
        CHECK_STREQ(path, "pci0000:40/0000:40:01.1");
        pgd_xen_parse_pci_path("../../../devices/virtual/net/lo", path, sizeof(path));
        CHECK_STREQ(path, "");
        pgd_xen_parse_pci_path("../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0", path, 8);
        CHECK_STREQ(path, "");
}

#if HAVE_XEN
static void test_open_without_xen(void)
{
        struct hv *hv = NULL;

        if (access("/dev/xen/privcmd", F_OK) == 0 || access("/proc/xen/privcmd", F_OK) == 0)
                return; /* a Xen host: the system suite covers open() */
        CHECK_INTEQ(hv_xen_ops.open(&(struct hv_config){ .sysfs_root = root }, &hv), -ENODEV);
        CHECK(hv == NULL);
}
#endif

int main(int argc, char **argv)
{
        char cmd[PATH_MAX];

        if (argc != 2) {
                fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
                return 2;
        }
        data_dir = argv[1];
        snprintf(root, sizeof(root), "%s/test-hv-xen.XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 2;
        }
        build_tree();

        test_pci_info();
        test_pci_list();
        test_pci_reset();
        test_pciback();
        test_pci_dump();
        test_intremap();
        test_dsn();
        test_pci_path();
#if HAVE_XEN
        test_open_without_xen();
#endif

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", root);
        return harness_exit();
}
