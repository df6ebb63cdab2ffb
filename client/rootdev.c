/* SPDX-License-Identifier: MIT */
/*
 * The PCI devices that hold the root file system (pg-rootdev.h): from the
 * mount table to the block device, from the block device's sysfs directory
 * to the PCI functions above it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "pg-rootdev.h"
#include "pg-util.h"
#include "pg-wire.h"

/* The block device that holds "/": the mount's source when it is a /dev node, else st_dev. */
static int root_block_device(dev_t *ret)
{
        _cleanup_(freep) char *line = NULL;
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/mountinfo", "re");
        size_t cap = 0;
        struct stat st;
        bool found = false;

        while (f && getline(&line, &cap, f) > 0) {
                char mnt[PATH_MAX], src[PATH_MAX];
                const char *sep = strstr(line, " - ");

                /* id parent major:minor root mount-point ... - fstype source options */
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 || !streq(mnt, "/") || !sep)
                        continue;
                if (sscanf(sep + 3, "%*s %4095s", src) == 1 && strncmp(src, "/dev/", 5) == 0 &&
                    stat(src, &st) == 0 && S_ISBLK(st.st_mode)) {
                        *ret = st.st_rdev;
                        found = true; /* the last mount on "/" is the one in force */
                }
        }
        if (found)
                return 0;
        if (stat("/", &st) < 0)
                return -errno;
        if (major(st.st_dev) == 0)
                return -ENODEV; /* not on a block device: tmpfs, a network file system */
        *ret = st.st_dev;
        return 0;
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

struct found {
        uint32_t *v;
        size_t n, cap;
};

static int found_add(struct found *f, uint32_t sbdf)
{
        for (size_t i = 0; i < f->n; i++)
                if (f->v[i] == sbdf)
                        return 0;
        if (f->n == f->cap) {
                size_t cap = f->cap ? f->cap * 2 : 4;
                uint32_t *p = reallocarray(f->v, cap, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                f->v = p;
                f->cap = cap;
        }
        f->v[f->n++] = sbdf;
        return 0;
}

/*
 * The PCI functions under a block device's sysfs directory: the nearest BDF
 * in its path, or, for a device mapper or md device, those of its slaves.
 */
static int walk_block_device(struct found *f, const char *dir, int depth)
{
        char real[PATH_MAX], slaves[PATH_MAX];
        _cleanup_(closedirp) DIR *d = NULL;
        uint32_t last = UINT32_MAX;
        struct dirent *de;
        int n, r;

        if (depth > 8 || !realpath(dir, real))
                return 0;
        for (char *save = NULL, *p = strtok_r(real, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
                uint32_t sbdf;
                if (strlen(p) == PG_BDF_MAX - 1 && pg_bdf_parse(p, &sbdf) == 0)
                        last = sbdf;
        }
        if (last != UINT32_MAX)
                return found_add(f, last);
        n = snprintf(slaves, sizeof(slaves), "%s/slaves", dir);
        if (n < 0 || (size_t)n >= sizeof(slaves))
                return 0; /* too long to be sysfs's */
        d = opendir(slaves);
        if (!d) {
                /* a partition: its disk is the parent directory */
                n = snprintf(slaves, sizeof(slaves), "%s/..", dir);
                if (n < 0 || (size_t)n >= sizeof(slaves) || depth > 0)
                        return 0;
                return walk_block_device(f, slaves, depth + 1);
        }
        while ((de = readdir(d))) {
                char sub[PATH_MAX + NAME_MAX + 2];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(sub, sizeof(sub), "%s/%s", slaves, de->d_name);
                r = walk_block_device(f, sub, depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int compare_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

int pg_rootdev_pci(const char *sysfs, uint32_t **ret, size_t *ret_n)
{
        struct found f = {};
        char path[PATH_MAX];
        dev_t dev;
        int r;

        r = root_block_device(&dev);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "%s/dev/block/%u:%u", sysfs, major(dev), minor(dev));
        r = walk_block_device(&f, path, 0);
        if (r < 0) {
                free(f.v);
                return r;
        }
        if (f.n > 1)
                qsort(f.v, f.n, sizeof(*f.v), compare_u32);
        *ret = f.v;
        *ret_n = f.n;
        return 0;
}
