/* SPDX-License-Identifier: MIT */
/*
 * passguard policy generate: a starting policy from what the host has, after
 * USBGuard's generate-policy. It reads the PCI devices from sysfs and writes a
 * policy that allows nothing (no rule is active), with:
 *   - the calling admin as the one client, and as admin;
 *   - in protected: the controller of the disk holding the root file system,
 *     dom0's console (the boot VGA device), dom0's network devices (class 0x02
 *     with a dom0 driver bound) and every bridge (class 0x06);
 *   - every device listed by class in comments, and commented example rules.
 * The text is checked with the daemon's own parser before it is written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pg-rootdev.h"
#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

#define MAX_DEVICES 4096

DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg_policy *, pg_policy_free);

struct device {
        char bdf[PG_BDF_MAX];
        unsigned vendor, device, class;
        char driver[64];       /* "" when none */
        const char *protect;   /* why it is protected, or NULL */
};

struct host {
        const char *sysfs;
        struct device *v;
        size_t n;
};

static void host_clear(struct host *h)
{
        free(h->v);
        h->v = NULL;
        h->n = 0;
}

static int read_hex(const char *sysfs, const char *bdf, const char *attr, unsigned *ret)
{
        char path[PATH_MAX], buf[32];
        FILE *f;
        int ok;

        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/%s", sysfs, bdf, attr);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        ok = fgets(buf, sizeof(buf), f) != NULL;
        fclose(f);
        if (!ok)
                return -EIO;
        *ret = (unsigned)strtoul(buf, NULL, 16);
        return 0;
}

static void read_driver(const char *sysfs, const char *bdf, char ret[static 64])
{
        char path[PATH_MAX], target[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", sysfs, bdf);
        n = readlink(path, target, sizeof(target) - 1);
        ret[0] = '\0';
        if (n <= 0)
                return;
        target[n] = '\0';
        snprintf(ret, 64, "%.63s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
}

static int compare_bdf(const void *a, const void *b)
{
        return strcmp(((const struct device *)a)->bdf, ((const struct device *)b)->bdf);
}

static int host_read(struct host *h)
{
        char path[PATH_MAX];
        struct dirent *de;
        DIR *d;

        snprintf(path, sizeof(path), "%s/bus/pci/devices", h->sysfs);
        d = opendir(path);
        if (!d)
                return -errno;
        h->v = calloc(MAX_DEVICES, sizeof(*h->v));
        if (!h->v) {
                closedir(d);
                return -ENOMEM;
        }
        while ((de = readdir(d)) && h->n < MAX_DEVICES) {
                struct device *dev = &h->v[h->n];
                uint32_t sbdf;

                if (pg_bdf_parse(de->d_name, &sbdf) < 0)
                        continue;
                pg_bdf_format(sbdf, dev->bdf);
                if (read_hex(h->sysfs, de->d_name, "vendor", &dev->vendor) < 0 ||
                    read_hex(h->sysfs, de->d_name, "device", &dev->device) < 0 ||
                    read_hex(h->sysfs, de->d_name, "class", &dev->class) < 0)
                        continue; /* gone meanwhile */
                read_driver(h->sysfs, de->d_name, dev->driver);
                h->n++;
        }
        closedir(d);
        qsort(h->v, h->n, sizeof(*h->v), compare_bdf);
        return 0;
}

static struct device *host_find(struct host *h, const char *bdf)
{
        for (size_t i = 0; i < h->n; i++)
                if (streq(h->v[i].bdf, bdf))
                        return &h->v[i];
        return NULL;
}

/* What dom0 needs itself: protected. Returns whether the root disk was found. */
static bool mark_protected(struct host *h)
{
        _cleanup_(freep) uint32_t *root = NULL;
        bool root_found = false;
        size_t n_root = 0;

        /* The same detection passguardd makes at start-up (client/rootdev.c). */
        if (pg_rootdev_pci(h->sysfs, &root, &n_root) >= 0)
                for (size_t k = 0; k < n_root; k++) {
                        char bdf[PG_BDF_MAX];
                        struct device *dev = host_find(h, pg_bdf_format(root[k], bdf));
                        if (dev && !dev->protect) {
                                dev->protect = "the disk holding the root file system";
                                root_found = true;
                        }
                }
        for (size_t i = 0; i < h->n; i++) {
                struct device *d = &h->v[i];
                unsigned boot_vga = 0;

                if (d->protect)
                        continue;
                if ((d->class >> 16) == 0x03 && read_hex(h->sysfs, d->bdf, "boot_vga", &boot_vga) == 0 &&
                    boot_vga)
                        d->protect = "dom0's console (the boot VGA device)";
                else if ((d->class >> 16) == 0x02 && d->driver[0] && !streq(d->driver, "pciback"))
                        d->protect = "dom0's network: its driver is bound in dom0";
        }
        return root_found;
}

static const char *class_name(unsigned base)
{
        static const char *const names[] = {
                [0x00] = "unclassified",
                [0x01] = "mass storage controllers",
                [0x02] = "network controllers",
                [0x03] = "display controllers",
                [0x04] = "multimedia controllers",
                [0x05] = "memory controllers",
                [0x06] = "bridges",
                [0x07] = "communication controllers",
                [0x08] = "system peripherals",
                [0x09] = "input devices",
                [0x0a] = "docking stations",
                [0x0b] = "processors",
                [0x0c] = "serial bus controllers (USB, SMBus, ...)",
                [0x0d] = "wireless controllers",
                [0x0e] = "intelligent controllers",
                [0x0f] = "satellite communication controllers",
                [0x10] = "encryption controllers",
                [0x11] = "signal processing controllers",
                [0x12] = "processing accelerators",
        };

        if (base < ELEMENTSOF(names) && names[base])
                return names[base];
        return "other devices";
}

static void write_policy(FILE *out, const struct host *h, uid_t uid, const char *user,
                         bool root_found)
{
        char when[64], host[256] = "this host";
        time_t now = time(NULL);
        struct tm tm;

        if (!localtime_r(&now, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm))
                snprintf(when, sizeof(when), "an unknown date");
        gethostname(host, sizeof(host) - 1);
        fprintf(out,
                "# passguard policy for %s, written by `passguard policy generate` on %s.\n"
                "# See passguard.conf(5). It allows nothing yet: no rule is active. Read the\n"
                "# devices below, uncomment or write rules, and check the file with\n"
                "# `passguard policy check` (or edit it in place with `passguard policy edit`).\n"
                "version = 1;\n"
                "require_interrupt_remapping = true;\n\n",
                host, when);
        fprintf(out,
                "# Who may talk to passguardd: the admin who wrote this policy. Add toolstacks\n"
                "# here, e.g. { name = \"libvirt\"; uid = 0; unit = \"libvirtd.service\"; }.\n"
                "clients = ( { name = \"admin\"; uid = %u; } );   # %s\n"
                "admins = [ \"admin\" ];\n\n",
                (unsigned)uid, user);

        fputs("# Never assignable, whatever the rules say: what dom0 needs to run.\n"
              "protected = (\n",
              out);
        for (size_t i = 0; i < h->n; i++)
                if (h->v[i].protect)
                        fprintf(out, "  { bdf = \"%s\"; },   # %04x:%04x %s: %s\n", h->v[i].bdf,
                                h->v[i].vendor, h->v[i].device,
                                h->v[i].driver[0] ? h->v[i].driver : "no driver",
                                h->v[i].protect);
        fputs("  { class = \"0x06\"; }     # bridges: never hand one to a guest\n"
              ");\n",
              out);
        if (!root_found)
                fputs("# The device holding the root file system was not found (not on a PCI\n"
                      "# block device?): add it to protected by hand if it has one.\n",
                      out);

        fputs("\n# The host's PCI devices, by class (BDF, vendor:device, dom0 driver):\n", out);
        for (unsigned base = 0; base <= 0xff; base++) {
                bool header = false;
                for (size_t i = 0; i < h->n; i++) {
                        const struct device *d = &h->v[i];
                        if ((d->class >> 16) != base)
                                continue;
                        if (!header)
                                fprintf(out, "#   0x%02x %s:\n", base, class_name(base));
                        header = true;
                        fprintf(out, "#     %s  %04x:%04x  class 0x%06x  %s%s\n", d->bdf,
                                d->vendor, d->device, d->class,
                                d->driver[0] ? d->driver : "-",
                                d->protect ? "  (protected)" : "");
                }
        }

        fputs("\n# Example rules, all commented out: a device is assignable only when a rule\n"
              "# allows it, and the first rule that matches decides.\n"
              "# rules = (\n"
              "#   { name = \"gpus-to-hvm\"; action = \"allow\"; clients = [ \"admin\" ];\n"
              "#     devices = ( { class = \"0x03\"; } );\n"
              "#     domains = ( { type = \"hvm\"; } ); max_devices_per_domain = 1; },\n"
              "#   { name = \"nics-to-net-vms\"; action = \"allow\";\n"
              "#     devices = ( { class = \"0x02\"; } ); domains = ( { name = \"net-*\"; } );\n"
              "#     reset = \"if-available\"; managed = true; }\n"
              "# );\n",
              out);
}

int cli_policy_generate(int argc, char **argv)
{
        _cleanup_(host_clear) struct host h = {.sysfs = "/sys"};
        _cleanup_(pg_policy_freep) struct pg_policy *p = NULL;
        _cleanup_(freep) char *text = NULL;
        const char *output = NULL, *user = "root";
        struct pg_policy_diags diags = {};
        struct passwd *pw;
        size_t len = 0;
        bool root_found;
        FILE *f;
        int r;

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "--sysfs-root") && i + 1 < argc)
                        h.sysfs = argv[++i];
                else if (streq(argv[i], "--output") && i + 1 < argc)
                        output = argv[++i];
                else {
                        fputs("Usage: passguard policy generate [--output FILE] [--sysfs-root DIR]\n",
                              stderr);
                        return EXIT_USAGE;
                }
        }
        r = host_read(&h);
        if (r < 0) {
                fprintf(stderr, "passguard: cannot list the PCI devices in %s/bus/pci/devices: %s\n",
                        h.sysfs, strerror(-r));
                return EXIT_REFUSED;
        }
        root_found = mark_protected(&h);
        pw = getpwuid(getuid());
        if (pw)
                user = pw->pw_name;

        f = open_memstream(&text, &len);
        if (!f)
                return EXIT_REFUSED;
        write_policy(f, &h, getuid(), user, root_found);
        if (fclose(f) != 0) {
                fputs("passguard: out of memory\n", stderr);
                return EXIT_REFUSED;
        }

        /* What passguard writes, passguard accepts: the daemon's parser says so first. */
        r = pg_policy_load_string(text, output ? output : "(generated policy)", &p, &diags);
        if (r < 0) {
                pg_policy_diags_print(&diags, stderr);
                pg_policy_diags_clear(&diags);
                fputs("passguard: the generated policy does not check: a bug, please report it\n",
                      stderr);
                return EXIT_REFUSED;
        }
        pg_policy_diags_clear(&diags);

        if (!output) {
                fputs(text, stdout);
                return EXIT_DONE;
        }
        /* Never over an existing policy: that is what policy edit is for. */
        _cleanup_(closep) int fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0) {
                fprintf(stderr, "passguard: cannot create %s: %m%s\n", output,
                        errno == EEXIST ? " (it exists: generate to another file and compare)" : "");
                return EXIT_REFUSED;
        }
        if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
                fprintf(stderr, "passguard: cannot write %s: %m\n", output);
                unlink(output);
                return EXIT_REFUSED;
        }
        size_t n_protected = 0;
        for (size_t i = 0; i < h.n; i++)
                n_protected += h.v[i].protect != NULL;
        fprintf(stderr, "%s written: %zu devices, %zu protected; no rule allows anything yet\n",
                output, h.n, n_protected);
        return EXIT_DONE;
}
