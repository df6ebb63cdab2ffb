/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as the simulated host file. The backend
 * is opened once, on a valid host; each input then replaces the file as any
 * outside writer does (under the lock, by rename), and the backend reads it
 * again at its next call (strict parse). When it accepts the file, it answers
 * reads and makes the calls that rewrite the file, whose result must parse
 * again. One backend for every input: no inotify instance, lock file or
 * directory fd is made per input.
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hv.h"
#include "pg-util.h"

static char dir[PATH_MAX];
static char host_path[PATH_MAX + 16], lock_path[PATH_MAX + 32], tmp_path[PATH_MAX + 32];
static struct hv *hv;

static void remove_files(void)
{
        if (hv)
                hv = hv_sim_ops.close(hv);
        (void)unlink(host_path);
        (void)unlink(lock_path);
        (void)unlink(tmp_path);
        (void)rmdir(dir);
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0)
                abort();
        while (size > 0) {
                ssize_t n = write(fd, data, size);
                if (n <= 0)
                        abort();
                data += n;
                size -= (size_t)n;
        }
        close(fd);
}

/* The input as the host file, replaced as the locking protocol says (DESIGN.md). */
static void write_input(const uint8_t *data, size_t size)
{
        int lock = open(lock_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);

        if (lock < 0 || flock(lock, LOCK_EX) < 0)
                abort();
        write_file(tmp_path, data, size);
        if (rename(tmp_path, host_path) < 0)
                abort();
        close(lock);
}

static void setup(void)
{
        static const char first[] = "{\"iommu\": true, \"devices\": [], \"domains\": []}";
        struct hv_config cfg = {.sim_host = host_path};

        /*
         * In memory where there is a tmpfs: the backend syncs every write, and
         * a fuzzer needs none of that durability.
         */
        const char *base = getenv("TMPDIR");
        struct stat st;

        if (!base && stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
            access("/dev/shm", W_OK) == 0)
                base = "/dev/shm";
        snprintf(dir, sizeof(dir), "%s/fuzz-simhost-XXXXXX", base ?: "/tmp");
        if (!mkdtemp(dir))
                abort();
        atexit(remove_files);
        snprintf(host_path, sizeof(host_path), "%s/host.json", dir);
        snprintf(lock_path, sizeof(lock_path), "%s.lock", host_path);
        snprintf(tmp_path, sizeof(tmp_path), "%s.in", host_path);
        /* Never a real Xen host: the fuzzer must not depend on the machine it runs on. */
        setenv("PASSGUARD_SIM_XEN_PROBE_ROOT", dir, 1);
        write_file(host_path, (const uint8_t *)first, sizeof(first) - 1);
        if (hv_sim_ops.open(&cfg, &hv) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const struct hv_ops *ops = &hv_sim_ops;
        struct hv_caps caps;
        struct hv_domain *domains = NULL;
        struct hv_assignment *assigned = NULL;
        uint32_t *devices = NULL, *group = NULL, owner;
        size_t n_domains = 0, n_devices = 0, n_assigned = 0, n_group = 0;
        struct hv_pci_info info;
        char driver[HV_DRIVER_MAX];

        if (!hv)
                setup();
        write_input(data, size);
        /* The backend's own events and ours: consumed, as the daemon's loop does. */
        (void)ops->watch_drain(hv);
        if (ops->host_caps(hv, &caps) < 0)
                return 0; /* refused, as open() would refuse it */

        /* An accepted file answers every read. */
        if (ops->domain_list(hv, &domains, &n_domains) < 0 ||
            ops->pci_list(hv, &devices, &n_devices) < 0 ||
            ops->assignments(hv, &assigned, &n_assigned) < 0)
                abort();
        for (size_t i = 0; i < n_devices; i++) {
                if (ops->pci_info(hv, devices[i], &info) < 0 || info.sbdf != devices[i] ||
                    ops->device_owner(hv, devices[i], &owner) < 0)
                        abort();
        }
        for (size_t i = 0; i < n_domains; i++) {
                struct hv_domain d;
                if (ops->domain_get(hv, domains[i].domid, &d) < 0 || d.domid != domains[i].domid)
                        abort();
        }

        /* Calls that rewrite the file; the file they write must still be accepted. */
        if (n_devices > 0) {
                uint32_t domid = n_domains > 0 ? domains[n_domains - 1].domid : 1;

                (void)ops->test_assign(hv, HV_DOMID_INVALID, devices[0]);
                (void)ops->assign(hv, domid, devices[0], false);
                if (ops->device_group(hv, devices[0], &group, &n_group) >= 0)
                        free(group);
                (void)ops->deassign(hv, domid, devices[0]);
                (void)ops->pci_reset(hv, devices[0]);
                (void)ops->pci_prepare(hv, devices[n_devices - 1], driver);
                (void)ops->pci_unprepare(hv, devices[n_devices - 1], "");
                if (ops->host_caps(hv, &caps) < 0)
                        abort();
        }

        free(domains);
        free(devices);
        free(assigned);
        return 0;
}
