/* SPDX-License-Identifier: MIT */
/*
 * How much a durable grant costs over the bare minimum. The floor, measured in
 * the same run and the same directory, writes a file of the same size the
 * cheapest durable way (write, fsync, rename, fsync the directory); the store
 * does that plus serialising and checksumming every grant. The ratio
 * store/floor says what passguard adds; near 1 means the disk dominates.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grants.h"
#include "pg-util.h"
#include "pg-wire.h"

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int floor_write(const char *dir, const char *text, size_t len)
{
        char tmp[4096], path[4096];
        int fd, dfd;

        snprintf(tmp, sizeof(tmp), "%s/floor.tmp", dir);
        snprintf(path, sizeof(path), "%s/floor.json", dir);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
                int r = errno ? -errno : -EIO; /* a short write sets no errno */
                close(fd);
                return r;
        }
        close(fd);
        if (rename(tmp, path) < 0)
                return -errno;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        int r = fsync(dfd) < 0 ? -errno : 0;
        close(dfd);
        return r;
}

static int run(const char *dir, size_t n_grants, int rounds)
{
        _cleanup_(freep) char *text = NULL;
        struct pgd_grants *g = NULL;
        size_t len = 0;
        double t0, t_floor, t_store;
        int r;

        r = pgd_grants_new_empty(dir, &g);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_grants; i++) {
                struct pgd_grant gr = {
                        .sbdf = PG_SBDF(0, 1 + i / 32, i % 32, 0),
                        .domid = 1 + (uint32_t)(i % 100),
                        .client_uid = 0,
                        .client_pid = 1000,
                        .rdm_policy = PG_POLICY_RDM_STRICT,
                        .time = 1700000000,
                };
                snprintf(gr.domain_uuid, sizeof(gr.domain_uuid),
                         "5f0c1d2e-8a4b-4c6d-9e7f-%012zx", i % 100);
                snprintf(gr.domain_name, sizeof(gr.domain_name), "render-%zu", i % 100);
                snprintf(gr.rule, sizeof(gr.rule), "gpus-to-render");
                snprintf(gr.client_unit, sizeof(gr.client_unit), "libvirtd.service");
                r = pgd_grants_add(g, &gr);
                if (r < 0)
                        goto out;
        }
        r = pgd_grants_format(g, &text, &len);
        if (r < 0)
                goto out;

        t0 = now();
        for (int i = 0; i < rounds; i++) {
                r = floor_write(dir, text, len);
                if (r < 0)
                        goto out;
        }
        t_floor = now() - t0;

        /* Each round changes one grant, as an assign or a release does. */
        t0 = now();
        for (int i = 0; i < rounds; i++) {
                struct pgd_grant gr = *pgd_grants_get(g, 0);
                r = pgd_grants_remove(g, gr.sbdf);
                if (r >= 0) {
                        gr.time++;
                        r = pgd_grants_add(g, &gr);
                }
                if (r >= 0)
                        r = pgd_grants_commit(g);
                if (r < 0)
                        goto out;
        }
        t_store = now() - t0;

        printf("%5zu grants (%6zu bytes): floor %8.0f writes/s, store %8.0f commits/s, "
               "ratio store/floor %.2f\n",
               n_grants, len, rounds / t_floor, rounds / t_store, t_floor / t_store);
        r = 0;
out:
        pgd_grants_free(g);
        return r;
}

int main(int argc, char **argv)
{
        char dir[] = "/var/tmp/pg-bench-grants-XXXXXX";
        int rounds = argc > 1 ? atoi(argv[1]) : 200;
        int r = 0;

        /* /var/tmp: a real disk where there is one, so fsync means something. */
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        printf("durable grant store vs. the bare durable write, %d rounds, in %s\n", rounds, dir);
        const size_t sizes[] = {1, 16, 256};
        for (size_t i = 0; i < ELEMENTSOF(sizes) && r >= 0; i++)
                r = run(dir, sizes[i], rounds);
        const char *const files[] = {"floor.json", "floor.tmp", PGD_GRANTS_FILE,
                                     PGD_GRANTS_FILE ".tmp"};
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                (void)unlink(path);
        }
        if (rmdir(dir) < 0)
                perror(dir);
        if (r < 0) {
                fprintf(stderr, "benchmark failed: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
