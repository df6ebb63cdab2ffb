/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as the simulated host file. The backend
 * opens it (strict parse) and, when it accepts it, answers reads and makes
 * the calls that rewrite the file, whose result must parse again.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hv.h"
#include "pg-util.h"

static char dir[] = "/tmp/fuzz-simhost-XXXXXX";
static char host_path[64];

static void remove_files(void)
{
        static const char *const suffixes[] = { "", ".lock", ".tmp" };
        char path[96];

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                snprintf(path, sizeof(path), "%s%s", host_path, suffixes[i]);
                (void)unlink(path);
        }
        (void)rmdir(dir);
}

static void setup(void)
{
        if (!mkdtemp(dir))
                abort();
        atexit(remove_files);
        snprintf(host_path, sizeof(host_path), "%s/host.json", dir);
        /* Never a real Xen host: the fuzzer must not depend on the machine it runs on. */
        setenv("PASSGUARD_SIM_XEN_PROBE_ROOT", dir, 1);
}

static void write_input(const uint8_t *data, size_t size)
{
        int fd = open(host_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const struct hv_ops *ops = &hv_sim_ops;
        struct hv_config cfg = { .sim_host = host_path };
        struct hv *hv = NULL;
        struct hv_caps caps;
        struct hv_domain *domains = NULL;
        struct hv_assignment *assigned = NULL;
        uint32_t *devices = NULL, *group = NULL, owner;
        size_t n_domains = 0, n_devices = 0, n_assigned = 0, n_group = 0;
        struct hv_pci_info info;
        char driver[HV_DRIVER_MAX];

        if (!host_path[0])
                setup();
        write_input(data, size);
        if (ops->open(&cfg, &hv) < 0)
                return 0;

        /* An accepted file answers every read. */
        if (ops->host_caps(hv, &caps) < 0 || ops->domain_list(hv, &domains, &n_domains) < 0 ||
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
        ops->close(hv);
        return 0;
}
