/* SPDX-License-Identifier: MIT */
/*
 * The parts of the Xen backend that need no hypervisor (hv-xen-parse.h):
 * sysfs under a given root, and the parsers of the text Xen prints into its
 * console ring. No Xen header: this file is built, and unit-tested, with or
 * without Xen.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv-xen-parse.h"
#include "pg-util.h"
#include "pg-wire.h"

/* ---- sysfs ---- */

static int device_path(const char *root, uint32_t sbdf, const char *file, char **ret)
{
        char bdf[PG_BDF_MAX];
        char *p;

        pg_bdf_format(sbdf, bdf);
        if (asprintf(&p, "%s/bus/pci/devices/%s%s%s", root, bdf, file ? "/" : "",
                     file ? file : "") < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

/* The first line of a small sysfs file, without its newline. */
static int read_line(const char *path, char *buf, size_t size)
{
        _cleanup_(closep) int fd = -1;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

static int read_hex(const char *root, uint32_t sbdf, const char *file, uint32_t max, uint32_t *ret)
{
        _cleanup_(freep) char *path = NULL;
        char buf[64], *end;
        unsigned long v;
        int r;

        r = device_path(root, sbdf, file, &path);
        if (r < 0)
                return r;
        r = read_line(path, buf, sizeof(buf));
        if (r < 0)
                return r;
        errno = 0;
        v = strtoul(buf, &end, 16);
        if (errno != 0 || end == buf || *end != '\0' || v > max)
                return -EBADMSG;
        *ret = (uint32_t)v;
        return 0;
}

static int write_string(const char *path, const char *s)
{
        _cleanup_(closep) int fd = -1;
        size_t len = strlen(s);
        ssize_t n;

        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = write(fd, s, len);
        if (n < 0)
                return -errno;
        if ((size_t)n != len)
                return -EIO;
        if (close(TAKE_FD(fd)) < 0)
                return -errno;
        return 0;
}

/* The basename of a symlink's target, "" when there is no link. */
static int link_basename(const char *path, char *buf, size_t size)
{
        char target[PATH_MAX];
        const char *base;
        ssize_t n;

        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0) {
                if (errno == ENOENT) {
                        buf[0] = '\0';
                        return 0;
                }
                return -errno;
        }
        target[n] = '\0';
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (strlen(base) >= size)
                return -ENAMETOOLONG;
        strcpy(buf, base);
        return 1;
}

/* ---- identity: the serial number and the path ---- */

static uint32_t le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define PCI_CFG_SPACE_SIZE 256
#define PCI_CFG_SPACE_EXP_SIZE 4096
#define PCI_EXT_CAP_ID_DSN 0x0003

int pgd_xen_walk_dsn(size_t len, int (*read32)(void *userdata, size_t at, uint32_t *ret),
                     void *userdata, uint64_t *ret)
{
        size_t at = PCI_CFG_SPACE_SIZE;
        uint32_t lo, hi;
        int r;

        if (len == PCI_CFG_SPACE_SIZE)
                return 0; /* a conventional function: no extended space, no serial */
        if (len < PCI_CFG_SPACE_EXP_SIZE)
                return -ENODATA;
        /* At most one capability per dword of the extended space: more is a loop. */
        for (unsigned n = 0; n < (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 4; n++) {
                uint32_t header;
                uint16_t id;
                size_t next;

                r = read32(userdata, at, &header);
                if (r < 0)
                        return r;
                id = header & 0xffff;
                next = (header >> 20) & 0xffc;
                if (header == 0xffffffffU)
                        return -ENODATA; /* all ones: the device does not answer (D3cold, gone) */
                if (header == 0)
                        return 0; /* an empty list */
                if (id == PCI_EXT_CAP_ID_DSN) {
                        if (at + 12 > len)
                                return -EBADMSG;
                        if ((r = read32(userdata, at + 4, &lo)) < 0 ||
                            (r = read32(userdata, at + 8, &hi)) < 0)
                                return r;
                        *ret = (uint64_t)hi << 32 | lo;
                        return 1;
                }
                if (next == 0)
                        return 0;
                if (next < PCI_CFG_SPACE_SIZE || next + 4 > len)
                        return -EBADMSG;
                at = next;
        }
        return -EBADMSG;
}

static int buffer_read32(void *userdata, size_t at, uint32_t *ret)
{
        *ret = le32((const uint8_t *)userdata + at);
        return 0;
}

int pgd_xen_parse_dsn(const uint8_t *config, size_t len, uint64_t *ret)
{
        return pgd_xen_walk_dsn(len, buffer_read32, (void *)config, ret);
}

void pgd_xen_format_serial(uint64_t dsn, char ret[static HV_SERIAL_MAX])
{
        size_t n = 0;

        for (int byte = 7; byte >= 0; byte--)
                n += (size_t)snprintf(ret + n, HV_SERIAL_MAX - n, "%s%02x", byte == 7 ? "" : "-",
                                      (unsigned)(dsn >> (8 * byte)) & 0xffU);
}

void pgd_xen_parse_pci_path(const char *target, char *ret, size_t size)
{
        const char *p = NULL, *last;

        ret[0] = '\0';
        /* The last "devices/pci" in the path: sysfs's root buses are under /sys/devices. */
        for (const char *q = strstr(target, "devices/pci"); q; q = strstr(q + 1, "devices/pci"))
                p = q + strlen("devices/");
        if (!p)
                return;
        last = strrchr(p, '/');
        if (!last || (size_t)(last - p) >= size)
                return; /* a root bus itself, or too deep to say */
        memcpy(ret, p, (size_t)(last - p));
        ret[last - p] = '\0';
}

/* One dword of a config file; -ENODATA when the kernel shows no more (no CAP_SYS_ADMIN). */
static int file_read32(void *userdata, size_t at, uint32_t *ret)
{
        uint8_t b[4];
        ssize_t n;

        do
                n = pread(*(int *)userdata, b, sizeof(b), (off_t)at);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n != sizeof(b))
                return -ENODATA;
        *ret = le32(b);
        return 0;
}

/*
 * The serial number of sbdf, or "" and *ret_unknown when its extended config
 * space cannot be read. Only the capability list is read, a dword at a time:
 * each is a config access of the device, slow under a hypervisor.
 */
static void read_serial(const char *root, uint32_t sbdf, char ret[static HV_SERIAL_MAX],
                        bool *ret_unknown)
{
        _cleanup_(freep) char *path = NULL;
        _cleanup_(closep) int fd = -1;
        struct stat st;
        uint64_t dsn;

        ret[0] = '\0';
        *ret_unknown = true;
        if (device_path(root, sbdf, "config", &path) < 0)
                return;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 0)
                return;
        switch (pgd_xen_walk_dsn((size_t)st.st_size, file_read32, &fd, &dsn)) {
        case 1:
                pgd_xen_format_serial(dsn, ret);
                _fallthrough_;
        case 0:
                *ret_unknown = false;
                break;
        default:
                break;
        }
}

int pgd_xen_sysfs_pci_info(const char *root, uint32_t sbdf, struct hv_pci_info *ret)
{
        _cleanup_(freep) char *dir = NULL, *path = NULL, *physfn = NULL;
        struct hv_pci_info info = {.sbdf = sbdf, .rdm_regions = -1};
        char buf[PG_BDF_MAX + 8];
        uint32_t v;
        struct stat st;
        int r;

        r = device_path(root, sbdf, NULL, &dir);
        if (r < 0)
                return r;
        if (stat(dir, &st) < 0)
                return errno == ENOENT ? -ENODEV : -errno;

        r = read_hex(root, sbdf, "vendor", 0xffff, &v);
        if (r < 0)
                return r;
        info.vendor = (uint16_t)v;
        r = read_hex(root, sbdf, "device", 0xffff, &v);
        if (r < 0)
                return r;
        info.device = (uint16_t)v;
        r = read_hex(root, sbdf, "class", 0xffffff, &info.class);
        if (r < 0)
                return r;
        /* Optional: older kernels and some devices lack the subsystem ids. */
        if (read_hex(root, sbdf, "subsystem_vendor", 0xffff, &v) >= 0)
                info.subsystem_vendor = (uint16_t)v;
        if (read_hex(root, sbdf, "subsystem_device", 0xffff, &v) >= 0)
                info.subsystem_device = (uint16_t)v;

        r = device_path(root, sbdf, "driver", &path);
        if (r < 0)
                return r;
        r = link_basename(path, info.driver, sizeof(info.driver));
        if (r < 0)
                return r;

        path = pg_free(path);
        r = device_path(root, sbdf, "reset", &path);
        if (r < 0)
                return r;
        info.has_reset = access(path, F_OK) == 0;

        path = pg_free(path);
        r = device_path(root, sbdf, "reset_method", &path);
        if (r < 0)
                return r;
        /* "flr bus": the first is the one the kernel tries first. */
        if (read_line(path, info.reset_methods, sizeof(info.reset_methods)) >= 0) {
                size_t first = strcspn(info.reset_methods, " \t");
                if (first < sizeof(info.reset_method)) {
                        memcpy(info.reset_method, info.reset_methods, first);
                        info.reset_method[first] = '\0';
                }
        }

        read_serial(root, sbdf, info.serial, &info.serial_unknown);
        {
                char target[PATH_MAX];
                ssize_t n = readlink(dir, target, sizeof(target) - 1);
                if (n > 0) {
                        target[n] = '\0';
                        pgd_xen_parse_pci_path(target, info.path, sizeof(info.path));
                }
        }

        r = device_path(root, sbdf, "physfn", &physfn);
        if (r < 0)
                return r;
        r = link_basename(physfn, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (r > 0) {
                r = pg_bdf_parse(buf, &info.physfn);
                if (r < 0)
                        return -EBADMSG;
                info.has_physfn = true;
        }

        *ret = info;
        return 0;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

int pgd_xen_sysfs_pci_list(const char *root, uint32_t **ret, size_t *ret_n)
{
        _cleanup_(freep) char *path = NULL;
        _cleanup_(freep) uint32_t *list = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        if (asprintf(&path, "%s/bus/pci/devices", root) < 0)
                return -ENOMEM;
        d = opendir(path);
        if (!d)
                return -errno;
        errno = 0;
        while ((de = readdir(d))) {
                uint32_t sbdf;

                if (pg_bdf_parse(de->d_name, &sbdf) < 0)
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 32;
                        uint32_t *p = reallocarray(list, ncap, sizeof(*list));

                        if (!p)
                                return -ENOMEM;
                        list = p;
                        cap = ncap;
                }
                list[n++] = sbdf;
                errno = 0;
        }
        if (errno != 0)
                return -errno;
        if (n > 0)
                qsort(list, n, sizeof(*list), cmp_u32);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

int pgd_xen_sysfs_pci_reset(const char *root, uint32_t sbdf)
{
        _cleanup_(freep) char *dir = NULL, *path = NULL;
        int r;

        r = device_path(root, sbdf, NULL, &dir);
        if (r < 0)
                return r;
        if (access(dir, F_OK) < 0)
                return errno == ENOENT ? -ENODEV : -errno;
        r = device_path(root, sbdf, "reset", &path);
        if (r < 0)
                return r;
        r = write_string(path, "1");
        return r == -ENOENT ? -ENOTTY : r;
}

static int driver_file(const char *root, const char *driver, const char *file, char **ret)
{
        char *p;

        if (asprintf(&p, "%s/bus/pci/drivers/%s/%s", root, driver, file) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int write_driver_file(const char *root, const char *driver, const char *file, uint32_t sbdf)
{
        _cleanup_(freep) char *path = NULL;
        char bdf[PG_BDF_MAX];
        int r;

        r = driver_file(root, driver, file, &path);
        if (r < 0)
                return r;
        return write_string(path, pg_bdf_format(sbdf, bdf));
}

int pgd_xen_sysfs_bind_pciback(const char *root, uint32_t sbdf, char ret_driver[HV_DRIVER_MAX])
{
        struct hv_pci_info info;
        int r;

        r = pgd_xen_sysfs_pci_info(root, sbdf, &info);
        if (r < 0)
                return r;
        if (streq(info.driver, "pciback")) {
                ret_driver[0] = '\0';
                return 0;
        }
        if (info.driver[0] != '\0') {
                _cleanup_(freep) char *unbind = NULL;

                r = device_path(root, sbdf, "driver/unbind", &unbind);
                if (r < 0)
                        return r;
                r = write_string(unbind, pg_bdf_format(sbdf, (char[PG_BDF_MAX]){0}));
                if (r < 0)
                        return r;
        }
        /* new_slot fails with EEXIST-like errors when pciback already knows the slot. */
        (void)write_driver_file(root, "pciback", "new_slot", sbdf);
        r = write_driver_file(root, "pciback", "bind", sbdf);
        if (r < 0) {
                /* Leave the device as it was found. */
                if (info.driver[0] != '\0')
                        (void)write_driver_file(root, info.driver, "bind", sbdf);
                return r;
        }
        snprintf(ret_driver, HV_DRIVER_MAX, "%s", info.driver);
        return 0;
}

int pgd_xen_sysfs_unbind_pciback(const char *root, uint32_t sbdf, const char *driver)
{
        struct hv_pci_info info;
        int r;

        r = pgd_xen_sysfs_pci_info(root, sbdf, &info);
        if (r < 0)
                return r;
        if (streq(info.driver, "pciback")) {
                r = write_driver_file(root, "pciback", "unbind", sbdf);
                if (r < 0)
                        return r;
        }
        (void)write_driver_file(root, "pciback", "remove_slot", sbdf);
        if (driver && driver[0] != '\0' && !streq(driver, "pciback"))
                return write_driver_file(root, driver, "bind", sbdf);
        return 0;
}

/* ---- console ring text ---- */

/* Skip Xen's "(XEN) " prefix and an optional "[timestamp] ". */
static const char *skip_prefix(const char *l, const char *end)
{
        while (l < end && (*l == ' ' || *l == '\t'))
                l++;
        if (end - l >= 6 && memcmp(l, "(XEN) ", 6) == 0)
                l += 6;
        if (l < end && *l == '[') {
                const char *q = memchr(l, ']', (size_t)(end - l));

                if (q)
                        l = q + 1;
        }
        while (l < end && *l == ' ')
                l++;
        return l;
}

static bool line_starts(const char *l, const char *end, const char *s)
{
        size_t n = strlen(s);

        return (size_t)(end - l) >= n && memcmp(l, s, n) == 0;
}

/* "SSSS:BB:DD.F - OWNER ..." -> sbdf and domid; false for any other line. */
static bool parse_dump_line(const char *l, const char *end, struct hv_assignment *ret)
{
        char line[160], owner[32];
        unsigned s, b, d, f;
        int n = 0;

        if (end - l >= (ptrdiff_t)sizeof(line))
                end = l + sizeof(line) - 1;
        memcpy(line, l, (size_t)(end - l));
        line[end - l] = '\0';
        if (sscanf(line, "%4x:%2x:%2x.%1u - %31s%n", &s, &b, &d, &f, owner, &n) != 5 || n == 0)
                return false;
        if (d > 0x1f || f > 7)
                return false;
        ret->sbdf = PG_SBDF(s, b, d, f);
        if (streq(owner, "d[IO]") || strncmp(owner, "DomIO", 5) == 0)
                ret->domid = HV_DOMID_IO;
        else if (streq(owner, "d[XEN]"))
                ret->domid = PG_DOMID_XEN;
        else if (owner[0] == 'd' && isdigit((unsigned char)owner[1])) {
                char *e;
                unsigned long v = strtoul(owner + 1, &e, 10);

                if (*e != '\0' || v >= PG_DOMID_FIRST_RESERVED)
                        return false;
                ret->domid = (uint32_t)v;
        } else
                return false;
        return true;
}

int pgd_xen_parse_pci_dump(const char *text, size_t len, struct hv_assignment **ret, size_t *ret_n)
{
        _cleanup_(freep) struct hv_assignment *list = NULL;
        const char *p = text, *end = text + len;
        size_t n = 0, cap = 0;
        bool in_dump = false, found = false;

        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t)(end - p));
                const char *le = eol ? eol : end;
                const char *l = skip_prefix(p, le);
                struct hv_assignment a;

                if (le > l && le[-1] == '\r')
                        le--;
                if (line_starts(l, le, "==== PCI devices ====")) {
                        /* A new dump: only the last one counts. */
                        n = 0;
                        in_dump = true;
                        found = true;
                } else if (in_dump && line_starts(l, le, "==== segment ")) {
                        /* next segment of the same dump */
                } else if (in_dump && parse_dump_line(l, le, &a)) {
                        if (n == cap) {
                                size_t ncap = cap ? cap * 2 : 32;
                                struct hv_assignment *q = reallocarray(list, ncap, sizeof(*q));

                                if (!q)
                                        return -ENOMEM;
                                list = q;
                                cap = ncap;
                        }
                        list[n++] = a;
                } else
                        in_dump = false;
                p = eol ? eol + 1 : end;
        }
        if (!found)
                return -ENOENT;
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

static bool contains_ci(const char *l, const char *end, const char *needle)
{
        size_t n = strlen(needle);

        for (; (size_t)(end - l) >= n; l++)
                if (strncasecmp(l, needle, n) == 0)
                        return true;
        return false;
}

int pgd_xen_parse_intremap(const char *text, size_t len)
{
        const char *p = text, *end = text + len;
        int result = -1;

        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t)(end - p));
                const char *le = eol ? eol : end;

                /*
                 * Intel: "Intel VT-d Interrupt Remapping enabled." / "... not enabled."
                 * AMD:   "AMD-Vi: Interrupt remapping enabled"
                 * Without an IOMMU: "I/O virtualisation disabled".
                 */
                if (contains_ci(p, le, "interrupt remapping enabled"))
                        result = 1;
                else if (contains_ci(p, le, "interrupt remapping not enabled") ||
                         contains_ci(p, le, "interrupt remapping disabled") ||
                         contains_ci(p, le, "I/O virtualisation disabled"))
                        result = 0;
                p = eol ? eol + 1 : end;
        }
        return result;
}
