/* SPDX-License-Identifier: MIT */
/*
 * The simulated host backend against real files, real flock and real
 * inotify: every errno it imitates from Xen 4.17, the call counters, fault
 * injection, destroyed domains, the locking protocol, the watch fd and the
 * refusal to run on a real Xen host.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "hv.h"
#include "pg-util.h"
#include "pg-wire.h"

static const struct hv_ops *ops = &hv_sim_ops;
static char tmpdir[] = "/tmp/test-hv-sim-XXXXXX";
static char host_path[256];
static char lock_path[300];

#define GPU PG_SBDF(0, 0x03, 0, 0)
#define GPU_AUDIO PG_SBDF(0, 0x03, 0, 1)
#define NIC PG_SBDF(0, 0x04, 0, 0)
#define SATA PG_SBDF(0, 0x00, 0x1f, 2)
#define GUEST_DEV PG_SBDF(0, 0x06, 0, 0)
#define NORESET PG_SBDF(0, 0x07, 0, 0)
#define MISSING PG_SBDF(0, 0x42, 0, 0)

/* A host with an IOMMU; iommu and the rest are spliced in by write_host_fmt(). */
static const char host_template[] =
        "{ \"iommu\": %s, \"interrupt_remapping\": true,\n"
        "  \"devices\": [\n"
        "    { \"bdf\": \"0000:03:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\",\n"
        "      \"class\": \"0x030200\", \"subsystem_vendor\": \"0x10de\",\n"
        "      \"subsystem_device\": \"0x12a2\", \"driver\": \"pciback\", \"group\": 7,\n"
        "      \"reset\": \"flr\", \"assigned_to\": \"io\" },\n"
        "    { \"bdf\": \"0000:03:00.1\", \"vendor\": \"0x10de\", \"device\": \"0x10f8\",\n"
        "      \"class\": \"0x040300\", \"driver\": \"pciback\", \"group\": 7,\n"
        "      \"reset\": \"bus\", \"assigned_to\": \"io\" },\n"
        "    { \"bdf\": \"04:00.0\", \"vendor\": \"0x8086\", \"device\": \"0x1533\",\n"
        "      \"class\": \"0x020000\", \"driver\": \"igb\", \"group\": 8,\n"
        "      \"reset\": \"flr\", \"assigned_to\": null },\n"
        "    { \"bdf\": \"0000:00:1f.2\", \"vendor\": \"0x8086\", \"device\": \"0xa102\",\n"
        "      \"class\": \"0x010601\", \"driver\": \"ahci\", \"group\": 3 },\n"
        "    { \"bdf\": \"0000:06:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x2204\",\n"
        "      \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 9,\n"
        "      \"reset\": \"flr\", \"assigned_to\": 6 },\n"
        "    { \"bdf\": \"0000:07:00.0\", \"vendor\": \"0x1b36\", \"device\": \"0x0001\",\n"
        "      \"class\": \"0x060400\", \"driver\": null, \"group\": 10, \"reset\": null }\n"
        "  ],\n"
        "  \"domains\": [\n"
        "    { \"domid\": 0, \"name\": \"Domain-0\", \"type\": \"pv\",\n"
        "      \"uuid\": \"00000000-0000-0000-0000-000000000000\" },\n"
        "    { \"domid\": 5, \"name\": \"render-1\", \"type\": \"hvm\",\n"
        "      \"uuid\": \"5F0C1D2E-8A4B-4C6D-9E7F-0A1B2C3D4E5F\" },\n"
        "    { \"domid\": 6, \"name\": \"render-2\", \"type\": \"hvm\",\n"
        "      \"uuid\": \"6f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" },\n"
        "    { \"domid\": 7, \"name\": \"web-1\", \"type\": \"pvh\", \"dying\": true,\n"
        "      \"uuid\": \"7f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" },\n"
        "    { \"domid\": 8, \"name\": \"net-1\", \"type\": \"hvm\", \"iommu\": false,\n"
        "      \"uuid\": \"8f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" }\n"
        "  ],\n"
        "  \"faults\": %s,\n"
        "  \"calls\": { \"assign\": 0, \"deassign\": 0, \"test_assign\": 0 } }\n";

/* Replace the host file as any outside writer must: exclusive lock, tmp, rename. */
static void write_host(const char *text)
{
        char tmp[300];
        int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        FILE *f;

        if (lock < 0 || flock(lock, LOCK_EX) < 0) {
                perror("lock");
                exit(1);
        }
        snprintf(tmp, sizeof(tmp), "%s.outside", host_path);
        f = fopen(tmp, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, host_path) < 0) {
                perror(tmp);
                exit(1);
        }
        close(lock);
}

static void write_host_fmt(bool iommu, const char *faults)
{
        char *text;

        if (asprintf(&text, host_template, iommu ? "true" : "false", faults) < 0)
                exit(1);
        write_host(text);
        free(text);
}

static struct hv *open_host(void)
{
        struct hv_config cfg = { .sim_host = host_path };
        struct hv *hv = NULL;
        int r = ops->open(&cfg, &hv);

        if (r < 0) {
                fprintf(stderr, "open %s: %s\n", host_path, strerror(-r));
                exit(1);
        }
        return hv;
}

static struct hv *fresh_host(bool iommu, const char *faults)
{
        write_host_fmt(iommu, faults);
        return open_host();
}

/* The host file as it is on disk now. */
static json_t *load_host(void)
{
        json_error_t error;
        json_t *j = json_load_file(host_path, JSON_REJECT_DUPLICATES, &error);

        if (!j) {
                fprintf(stderr, "%s:%d: %s\n", host_path, error.line, error.text);
                exit(1);
        }
        return j;
}

static json_int_t calls(const char *name)
{
        json_t *j = load_host();
        json_int_t n = json_integer_value(json_object_get(json_object_get(j, "calls"), name));

        json_decref(j);
        return n;
}

/* The "assigned_to" of the device with bdf, as stored: "null", "io" or the domid. */
static char *stored_owner(const char *bdf, char buf[static 16])
{
        json_t *j = load_host(), *dev;
        size_t i;

        snprintf(buf, 16, "(missing)");
        json_array_foreach(json_object_get(j, "devices"), i, dev) {
                json_t *v;

                if (!streq(json_string_value(json_object_get(dev, "bdf")), bdf))
                        continue;
                v = json_object_get(dev, "assigned_to");
                if (!v || json_is_null(v))
                        snprintf(buf, 16, "null");
                else if (json_is_string(v))
                        snprintf(buf, 16, "%s", json_string_value(v));
                else
                        snprintf(buf, 16, "%lld", (long long)json_integer_value(v));
        }
        json_decref(j);
        return buf;
}

static uint32_t owner(struct hv *hv, uint32_t sbdf)
{
        uint32_t domid = 0xffffffff;
        int r = ops->device_owner(hv, sbdf, &domid);

        return r < 0 ? (uint32_t)r : domid;
}

static void test_refuses_real_xen(void)
{
        struct hv_config cfg = { .sim_host = host_path };
        char root[300], path[400];
        struct hv *hv = NULL;

        write_host_fmt(true, "{}");
        snprintf(root, sizeof(root), "%s/fakexen", tmpdir);
        CHECK(mkdir(root, 0755) == 0);
        setenv("PASSGUARD_SIM_XEN_PROBE_ROOT", root, 1);

        /* Neither /proc/xen nor /dev/xen/privcmd: it starts. */
        CHECK_INTEQ(ops->open(&cfg, &hv), 0);
        hv = ops->close(hv);
        CHECK(hv == NULL);

        snprintf(path, sizeof(path), "%s/proc", root);
        CHECK(mkdir(path, 0755) == 0);
        snprintf(path, sizeof(path), "%s/proc/xen", root);
        CHECK(mkdir(path, 0755) == 0);
        CHECK_INTEQ(ops->open(&cfg, &hv), -EPERM);
        CHECK(hv == NULL);
        CHECK(rmdir(path) == 0);

        snprintf(path, sizeof(path), "%s/dev", root);
        CHECK(mkdir(path, 0755) == 0);
        snprintf(path, sizeof(path), "%s/dev/xen", root);
        CHECK(mkdir(path, 0755) == 0);
        snprintf(path, sizeof(path), "%s/dev/xen/privcmd", root);
        int fd = open(path, O_WRONLY | O_CREAT, 0600);
        CHECK(fd >= 0);
        close(fd);
        CHECK_INTEQ(ops->open(&cfg, &hv), -EPERM);
        CHECK(unlink(path) == 0);

        CHECK_INTEQ(ops->open(&cfg, &hv), 0);
        ops->close(hv);

        /* Every other test runs with an empty probe root. */
        snprintf(path, sizeof(path), "%s/noxen", tmpdir);
        CHECK(mkdir(path, 0755) == 0);
        setenv("PASSGUARD_SIM_XEN_PROBE_ROOT", path, 1);
}

static void test_open_errors(void)
{
        struct hv_config cfg = { .sim_host = NULL };
        char missing[300];
        struct hv *hv = NULL;

        CHECK_INTEQ(ops->open(&cfg, &hv), -EINVAL);
        snprintf(missing, sizeof(missing), "%s/nope.json", tmpdir);
        cfg.sim_host = missing;
        CHECK_INTEQ(ops->open(&cfg, &hv), -ENOENT);
        CHECK(hv == NULL);
        CHECK_STREQ(ops->name, "sim");
}

static void test_corrupt(void)
{
        static const char *const bad[] = {
                "",
                "not json",
                "[]",
                "{ \"iommu\": true, \"iommu\": false }",
                "{ \"interrupt_remapping\": true }",
                "{ \"iommu\": \"yes\" }",
                "{ \"iommu\": true, \"colour\": 1 }",
                "{ \"iommu\": true, \"devices\": {} }",
                "{ \"iommu\": true, \"devices\": [ { \"bdf\": \"0000:03:00.8\", \"vendor\": "
                "\"0x10de\", \"device\": \"0x1\", \"class\": \"0x03\", \"group\": 1 } ] }",
                "{ \"iommu\": true, \"devices\": [ { \"bdf\": \"03:00.0\", \"vendor\": 4318, "
                "\"device\": \"0x1\", \"class\": \"0x03\", \"group\": 1 } ] }",
                "{ \"iommu\": true, \"devices\": [ { \"bdf\": \"03:00.0\", \"vendor\": "
                "\"0x10de\", \"device\": \"0x10000\", \"class\": \"0x03\", \"group\": 1 } ] }",
                "{ \"iommu\": true, \"devices\": [ { \"bdf\": \"03:00.0\", \"vendor\": "
                "\"0x10de\", \"device\": \"0x1\", \"class\": \"0x03\", \"group\": 1, "
                "\"colour\": \"red\" } ] }",
                "{ \"iommu\": true, \"devices\": [ { \"bdf\": \"03:00.0\", \"vendor\": "
                "\"0x10de\", \"device\": \"0x1\", \"class\": \"0x03\", \"group\": 1, "
                "\"assigned_to\": \"dom0\" } ] }",
                "{ \"iommu\": true, \"devices\": [ { \"bdf\": \"03:00.0\", \"vendor\": "
                "\"0x10de\", \"device\": \"0x1\", \"class\": \"0x03\", \"group\": 1, "
                "\"reset\": \"warm\" } ] }",
                "{ \"iommu\": true, \"devices\": [ { \"bdf\": \"03:00.0\", \"vendor\": "
                "\"0x10de\", \"device\": \"0x1\", \"class\": \"0x03\", \"group\": 1 }, "
                "{ \"bdf\": \"0000:03:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1\", "
                "\"class\": \"0x03\", \"group\": 1 } ] }",
                "{ \"iommu\": true, \"domains\": [ { \"domid\": 1, \"name\": \"a\", \"type\": "
                "\"hvm\", \"uuid\": \"not-a-uuid\" } ] }",
                "{ \"iommu\": true, \"domains\": [ { \"domid\": 1, \"name\": \"a\", \"type\": "
                "\"xen\", \"uuid\": \"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" } ] }",
                "{ \"iommu\": true, \"domains\": [ { \"domid\": 1, \"name\": \"a\", \"type\": "
                "\"hvm\", \"uuid\": \"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" }, { \"domid\": 1, "
                "\"name\": \"b\", \"type\": \"hvm\", \"uuid\": "
                "\"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" } ] }",
                "{ \"iommu\": true, \"faults\": { \"assign\": { \"03:00.0\": \"EWHATEVER\" } } }",
                "{ \"iommu\": true, \"faults\": { \"explode\": { \"03:00.0\": \"EIO\" } } }",
                "{ \"iommu\": true, \"calls\": { \"assign\": -1 } }",
                "{ \"iommu\": true, \"calls\": { \"launch\": 1 } }",
        };
        struct hv_config cfg = { .sim_host = host_path };
        struct hv_caps caps;
        struct hv *hv;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                hv = NULL;
                write_host(bad[i]);
                int r = ops->open(&cfg, &hv);
                CHECK_MSG(r == -EBADMSG, "case %zu (%s): %d", i, bad[i], r);
                CHECK(hv == NULL);
        }

        /* Corrupted while running: calls fail, nothing is written over it. */
        hv = fresh_host(true, "{}");
        write_host("{ \"iommu\": tru");
        CHECK_INTEQ(ops->host_caps(hv, &caps), -EBADMSG);
        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), -EBADMSG);
        FILE *f = fopen(host_path, "r");
        char buf[64] = "";
        CHECK(f && fgets(buf, sizeof(buf), f));
        CHECK_STREQ(buf, "{ \"iommu\": tru");
        if (f)
                fclose(f);
        ops->close(hv);
}

static void test_caps_and_domains(void)
{
        struct hv *hv = fresh_host(true, "{}");
        struct hv_caps caps = { .interrupt_remapping = 42 };
        struct hv_domain d, *list = NULL;
        size_t n = 0;

        CHECK_INTEQ(ops->host_caps(hv, &caps), 0);
        CHECK(caps.iommu);
        CHECK_INTEQ(caps.interrupt_remapping, 1);

        CHECK_INTEQ(ops->domain_get(hv, 5, &d), 0);
        CHECK_INTEQ(d.domid, 5);
        CHECK_STREQ(d.name, "render-1");
        CHECK_STREQ(d.uuid, "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f");
        CHECK_INTEQ(d.type, PG_DOMAIN_HVM);
        CHECK(!d.dying);
        CHECK_INTEQ(ops->domain_get(hv, 9, &d), -ESRCH);
        CHECK_INTEQ(d.domid, 5);   /* untouched on failure */

        CHECK_INTEQ(ops->domain_by_name(hv, "web-1", &d), 0);
        CHECK_INTEQ(d.domid, 7);
        CHECK_INTEQ(d.type, PG_DOMAIN_PVH);
        CHECK(d.dying);
        CHECK_INTEQ(ops->domain_by_name(hv, "web-2", &d), -ESRCH);

        CHECK_INTEQ(ops->domain_list(hv, &list, &n), 0);
        CHECK_INTEQ(n, 5);
        if (n == 5) {
                CHECK_INTEQ(list[0].domid, 0);
                CHECK_STREQ(list[0].name, "Domain-0");
                CHECK_INTEQ(list[0].type, PG_DOMAIN_PV);
                CHECK_STREQ(list[4].name, "net-1");
        }
        free(list);
        ops->close(hv);

        /* interrupt_remapping absent: unknown. */
        write_host("{ \"iommu\": false }");
        hv = open_host();
        CHECK_INTEQ(ops->host_caps(hv, &caps), 0);
        CHECK(!caps.iommu);
        CHECK_INTEQ(caps.interrupt_remapping, -1);
        CHECK_INTEQ(ops->domain_list(hv, &list, &n), 0);
        CHECK_INTEQ(n, 0);
        free(list);
        ops->close(hv);
}

static void test_test_assign(void)
{
        struct hv *hv = fresh_host(true, "{}");
        char buf[16];

        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, GPU), 0);    /* quarantined */
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, NIC), 0);    /* dom0, igb bound */
        CHECK_INTEQ(ops->test_assign(hv, 5, GPU), 0);
        CHECK_INTEQ(ops->test_assign(hv, 0, GPU), -EINVAL);             /* self-assignment */
        CHECK_INTEQ(ops->test_assign(hv, 9, GPU), -ESRCH);
        CHECK_INTEQ(ops->test_assign(hv, 8, GPU), -EOPNOTSUPP);         /* no IOMMU context */
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, GUEST_DEV), -EINVAL);
        CHECK_INTEQ(ops->test_assign(hv, 5, GUEST_DEV), -EINVAL);
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, MISSING), -EINVAL);
        CHECK_INTEQ(calls("test_assign"), 9);
        CHECK_INTEQ(calls("assign"), 0);
        /* test-assign changes nothing but its counter. */
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "io");
        CHECK_STREQ(stored_owner("04:00.0", buf), "null");
        ops->close(hv);
}

static void test_assign(void)
{
        struct hv *hv = fresh_host(true, "{}");
        char buf[16];

        CHECK_INTEQ(ops->assign(hv, 9, GPU, false), -ESRCH);
        CHECK_INTEQ(ops->assign(hv, 8, GPU, false), -EOPNOTSUPP);
        CHECK_INTEQ(ops->assign(hv, 7, GPU, false), -EINVAL);          /* dying */
        CHECK_INTEQ(ops->assign(hv, 5, MISSING, false), -ENODEV);
        CHECK_INTEQ(ops->assign(hv, 5, GUEST_DEV, false), -EBUSY);      /* render-2's */
        CHECK_INTEQ(owner(hv, GPU), HV_DOMID_IO);

        CHECK_INTEQ(ops->assign(hv, 5, GPU, true), 0);
        CHECK_INTEQ(owner(hv, GPU), 5);
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "5");
        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), -EBUSY);            /* double */
        CHECK_INTEQ(ops->assign(hv, 6, GPU, false), -EBUSY);
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, GPU), -EINVAL);
        CHECK_INTEQ(calls("assign"), 8);
        ops->close(hv);
}

static void test_deassign(void)
{
        struct hv *hv = fresh_host(true, "{}");
        char buf[16];

        CHECK_INTEQ(ops->deassign(hv, 8, GPU), -EOPNOTSUPP);
        CHECK_INTEQ(ops->deassign(hv, 5, GUEST_DEV), -ENODEV);    /* render-2's, not render-1's */
        CHECK_INTEQ(ops->deassign(hv, 5, MISSING), -ENODEV);
        CHECK_INTEQ(ops->deassign(hv, 6, GUEST_DEV), 0);
        CHECK_INTEQ(owner(hv, GUEST_DEV), HV_DOMID_IO);              /* quarantine on */
        CHECK_STREQ(stored_owner("0000:06:00.0", buf), "io");
        CHECK_INTEQ(ops->deassign(hv, 6, GUEST_DEV), -ENODEV);       /* again */
        CHECK_INTEQ(ops->test_assign(hv, 5, GUEST_DEV), 0);          /* assignable again */

        /* From DOMID_IO, a quarantined device goes back to dom0. */
        CHECK_INTEQ(ops->deassign(hv, HV_DOMID_IO, GUEST_DEV), 0);
        CHECK_INTEQ(owner(hv, GUEST_DEV), HV_DOMID_DOM0);
        CHECK_STREQ(stored_owner("0000:06:00.0", buf), "null");
        CHECK_INTEQ(ops->deassign(hv, HV_DOMID_IO, NIC), -ENODEV);
        CHECK_INTEQ(calls("deassign"), 7);
        ops->close(hv);
}

static void test_no_iommu(void)
{
        struct hv *hv = fresh_host(false, "{}");
        uint32_t *group = NULL;
        size_t n = 0;
        char drv[HV_DRIVER_MAX];
        struct hv_caps caps;

        CHECK_INTEQ(ops->host_caps(hv, &caps), 0);
        CHECK(!caps.iommu);
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, GPU), -EOPNOTSUPP);
        CHECK_INTEQ(ops->test_assign(hv, 5, GPU), -EOPNOTSUPP);
        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), -EOPNOTSUPP);
        CHECK_INTEQ(ops->deassign(hv, 6, GUEST_DEV), -EOPNOTSUPP);
        /* The domain is looked up before the IOMMU, as on real Xen. */
        CHECK_INTEQ(ops->test_assign(hv, 999, GPU), -ESRCH);
        CHECK_INTEQ(ops->assign(hv, 999, GPU, false), -ESRCH);
        CHECK_INTEQ(ops->deassign(hv, 999, GUEST_DEV), -ESRCH);
        CHECK_INTEQ(ops->device_group(hv, GPU, &group, &n), -EOPNOTSUPP);
        CHECK(group == NULL);
        CHECK_INTEQ(ops->pci_prepare(hv, NIC, drv), -EOPNOTSUPP);
        CHECK_INTEQ(owner(hv, GPU), HV_DOMID_IO);
        CHECK_INTEQ(owner(hv, GUEST_DEV), 6);
        /* Failed calls were still made, and counted. */
        CHECK_INTEQ(calls("test_assign"), 3);
        CHECK_INTEQ(calls("assign"), 2);
        CHECK_INTEQ(calls("deassign"), 2);
        CHECK_INTEQ(calls("device_group"), 1);
        ops->close(hv);
}

static void test_device_group(void)
{
        struct hv *hv = fresh_host(true, "{}");
        uint32_t *group = NULL;
        size_t n = 99;

        CHECK_INTEQ(ops->device_group(hv, GPU, &group, &n), 0);
        CHECK_INTEQ(n, 1);
        if (n == 1)
                CHECK_INTEQ(group[0], GPU_AUDIO);
        free(group);
        group = NULL;
        CHECK_INTEQ(ops->device_group(hv, NIC, &group, &n), 0);
        CHECK_INTEQ(n, 0);
        free(group);
        group = NULL;
        n = 99;
        CHECK_INTEQ(ops->device_group(hv, MISSING, &group, &n), 0); /* as real Xen */
        CHECK_INTEQ(n, 0);
        free(group);
        group = NULL;
        CHECK_INTEQ(calls("device_group"), 3);
        ops->close(hv);
}

static void test_owner_and_assignments(void)
{
        struct hv *hv = fresh_host(true, "{}");
        struct hv_assignment *a = NULL;
        uint32_t domid = 1234;
        size_t n = 0;

        CHECK_INTEQ(owner(hv, NIC), HV_DOMID_DOM0);
        CHECK_INTEQ(owner(hv, SATA), HV_DOMID_DOM0);
        CHECK_INTEQ(owner(hv, GPU), HV_DOMID_IO);
        CHECK_INTEQ(owner(hv, GUEST_DEV), 6);
        CHECK_INTEQ(ops->device_owner(hv, MISSING, &domid), -ENODEV);
        CHECK_INTEQ(domid, 1234);

        CHECK_INTEQ(ops->assignments(hv, &a, &n), 0);
        CHECK_INTEQ(n, 3);
        if (n == 3) {
                CHECK_INTEQ(a[0].sbdf, GPU);
                CHECK_INTEQ(a[0].domid, HV_DOMID_IO);
                CHECK_INTEQ(a[1].sbdf, GPU_AUDIO);
                CHECK_INTEQ(a[2].sbdf, GUEST_DEV);
                CHECK_INTEQ(a[2].domid, 6);
        }
        free(a);
        ops->close(hv);
}

static void test_pci(void)
{
        struct hv *hv = fresh_host(true, "{ \"reset\": { \"0000:03:00.1\": \"ETIMEDOUT\" } }");
        struct hv_pci_info info;
        uint32_t *list = NULL;
        size_t n = 0;

        CHECK_INTEQ(ops->pci_info(hv, GPU, &info), 0);
        CHECK_INTEQ(info.sbdf, GPU);
        CHECK_INTEQ(info.vendor, 0x10de);
        CHECK_INTEQ(info.device, 0x1eb8);
        CHECK_INTEQ(info.subsystem_vendor, 0x10de);
        CHECK_INTEQ(info.subsystem_device, 0x12a2);
        CHECK_INTEQ(info.class, 0x030200);
        CHECK_STREQ(info.driver, "pciback");
        CHECK(info.has_reset);
        CHECK_STREQ(info.reset_method, "flr");
        CHECK(!info.has_physfn);

        CHECK_INTEQ(ops->pci_info(hv, NORESET, &info), 0);
        CHECK_STREQ(info.driver, "");
        CHECK(!info.has_reset);
        CHECK_STREQ(info.reset_method, "");
        CHECK_INTEQ(ops->pci_info(hv, SATA, &info), 0);
        CHECK_STREQ(info.driver, "ahci");
        CHECK(!info.has_reset);
        CHECK_INTEQ(ops->pci_info(hv, MISSING, &info), -ENODEV);
        CHECK_INTEQ(info.sbdf, SATA);

        CHECK_INTEQ(ops->pci_list(hv, &list, &n), 0);
        CHECK_INTEQ(n, 6);
        if (n == 6) {
                CHECK_INTEQ(list[0], GPU);
                CHECK_INTEQ(list[2], NIC);
                CHECK_INTEQ(list[3], SATA);
        }
        free(list);

        CHECK_INTEQ(ops->pci_reset(hv, GPU), 0);
        CHECK_INTEQ(ops->pci_reset(hv, NORESET), -ENOTTY);
        CHECK_INTEQ(ops->pci_reset(hv, GPU_AUDIO), -ETIMEDOUT);   /* injected */
        CHECK_INTEQ(ops->pci_reset(hv, MISSING), -ENODEV);
        CHECK_INTEQ(calls("reset"), 4);
        ops->close(hv);
}

static void test_prepare(void)
{
        struct hv *hv = fresh_host(true, "{}");
        char drv[HV_DRIVER_MAX] = "untouched";
        struct hv_pci_info info;
        char buf[16];

        CHECK_INTEQ(ops->pci_prepare(hv, MISSING, drv), -ENODEV);
        CHECK_INTEQ(ops->pci_prepare(hv, GUEST_DEV, drv), -EBUSY);
        CHECK_STREQ(drv, "untouched");

        CHECK_INTEQ(ops->pci_prepare(hv, NIC, drv), 0);
        CHECK_STREQ(drv, "igb");
        CHECK_INTEQ(owner(hv, NIC), HV_DOMID_IO);
        CHECK_STREQ(stored_owner("04:00.0", buf), "io");
        CHECK_INTEQ(ops->pci_info(hv, NIC, &info), 0);
        CHECK_STREQ(info.driver, "pciback");
        CHECK_INTEQ(ops->test_assign(hv, 5, NIC), 0);
        /* Quarantine is no guest assignment. */
        CHECK_INTEQ(calls("assign"), 0);
        CHECK_INTEQ(calls("quarantine"), 3);

        /* Already prepared: nothing is unbound. */
        CHECK_INTEQ(ops->pci_prepare(hv, GPU, drv), 0);
        CHECK_STREQ(drv, "");

        CHECK_INTEQ(ops->pci_unprepare(hv, GUEST_DEV, "nouveau"), -EBUSY);
        CHECK_INTEQ(ops->pci_unprepare(hv, MISSING, "igb"), -ENODEV);
        CHECK_INTEQ(ops->pci_unprepare(hv, NIC, "igb"), 0);
        CHECK_INTEQ(owner(hv, NIC), HV_DOMID_DOM0);
        CHECK_STREQ(stored_owner("04:00.0", buf), "null");
        CHECK_INTEQ(ops->pci_info(hv, NIC, &info), 0);
        CHECK_STREQ(info.driver, "igb");
        CHECK_INTEQ(ops->pci_unprepare(hv, GPU_AUDIO, ""), 0);
        CHECK_INTEQ(ops->pci_info(hv, GPU_AUDIO, &info), 0);
        CHECK_STREQ(info.driver, "");
        CHECK_INTEQ(calls("unquarantine"), 4);
        CHECK_INTEQ(calls("deassign"), 0);
        ops->close(hv);
}

static void test_faults(void)
{
        struct hv *hv = fresh_host(true,
                                   "{ \"assign\": { \"0000:03:00.0\": \"EIO\" },"
                                   "  \"test_assign\": { \"03:00.1\": \"EACCES\" },"
                                   "  \"deassign\": { \"0000:06:00.0\": \"EBUSY\" } }");
        char buf[16];

        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), -EIO);
        CHECK_INTEQ(owner(hv, GPU), HV_DOMID_IO);                  /* nothing changed */
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "io");
        CHECK_INTEQ(ops->assign(hv, 5, GPU_AUDIO, false), 0);      /* other devices unaffected */
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, GPU_AUDIO), -EACCES);
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, GPU), 0);
        CHECK_INTEQ(ops->deassign(hv, 6, GUEST_DEV), -EBUSY);
        CHECK_INTEQ(owner(hv, GUEST_DEV), 6);
        CHECK_INTEQ(calls("assign"), 2);
        CHECK_INTEQ(calls("test_assign"), 2);
        CHECK_INTEQ(calls("deassign"), 1);

        /* Faults are read on each call: removing them from outside heals the host. */
        write_host_fmt(true, "{}");
        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), 0);
        CHECK_INTEQ(owner(hv, GPU), 5);
        ops->close(hv);
}

static void test_destroyed_domain(void)
{
        struct hv *hv = fresh_host(true, "{}");
        struct hv_assignment *a = NULL;
        char buf[16], *text;
        size_t n = 0;
        json_t *j;

        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), 0);
        CHECK_INTEQ(owner(hv, GPU), 5);

        /* A test destroys render-1 from outside: drop domain 5 from the file. */
        j = load_host();
        json_array_remove(json_object_get(j, "domains"), 1);
        text = json_dumps(j, JSON_INDENT(2));
        json_decref(j);
        write_host(text);
        free(text);
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "5");

        CHECK_INTEQ(owner(hv, GPU), HV_DOMID_IO);
        CHECK_INTEQ(ops->assignments(hv, &a, &n), 0);
        CHECK_INTEQ(n, 3);
        if (n == 3) {
                CHECK_INTEQ(a[0].sbdf, GPU);
                CHECK_INTEQ(a[0].domid, HV_DOMID_IO);
        }
        free(a);
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, GPU), 0);
        CHECK_INTEQ(ops->deassign(hv, 5, GPU), -ESRCH);
        /* The next write persists the quarantine. */
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "io");
        ops->close(hv);
}

static void test_edge_values(void)
{
        struct hv *hv;
        struct hv_domain d;
        char buf[16];

        /* Two domains xenstore has no name for; a counter at its limit saturates. */
        write_host("{ \"iommu\": true,"
                   "  \"devices\": [ { \"bdf\": \"03:00.0\", \"vendor\": \"0x10DE\","
                   "    \"device\": \"0x1\", \"class\": \"0x3\", \"group\": 0,"
                   "    \"assigned_to\": 0 } ],"
                   "  \"domains\": ["
                   "    { \"domid\": 1, \"name\": \"\", \"type\": \"pv\","
                   "      \"uuid\": \"00000000-0000-0000-0000-000000000001\" },"
                   "    { \"domid\": 2, \"name\": \"\", \"type\": \"pv\","
                   "      \"uuid\": \"00000000-0000-0000-0000-000000000002\" } ],"
                   "  \"calls\": { \"assign\": 9223372036854775807 } }");
        hv = open_host();
        CHECK_INTEQ(ops->domain_get(hv, 2, &d), 0);
        CHECK_STREQ(d.name, "");
        CHECK_INTEQ(ops->domain_by_name(hv, "", &d), -ESRCH);
        CHECK_INTEQ(owner(hv, GPU), HV_DOMID_DOM0);            /* assigned_to 0 is dom0 */
        CHECK_INTEQ(ops->assign(hv, 1, GPU, false), 0);
        CHECK_STREQ(stored_owner("03:00.0", buf), "1");
        CHECK_INTEQ(calls("assign"), 9223372036854775807LL);
        ops->close(hv);
}

static long elapsed_ms(const struct timespec *t0)
{
        struct timespec t1;

        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void test_flock(void)
{
        struct hv *hv = fresh_host(true, "{}");
        int status = -1, lock;
        char buf[16];
        pid_t pid;

        /* An outside writer holds the lock: a mutation waits for it. */
        lock = open(lock_path, O_RDWR | O_CLOEXEC);
        CHECK(lock >= 0);
        CHECK(flock(lock, LOCK_EX) == 0);
        pid = fork();
        if (pid == 0)
                _exit(ops->assign(hv, 5, NIC, false) == 0 ? 0 : 1);
        CHECK(pid > 0);
        usleep(300 * 1000);
        CHECK_INTEQ(waitpid(pid, &status, WNOHANG), 0);           /* still waiting */
        CHECK_STREQ(stored_owner("04:00.0", buf), "null");
        CHECK(flock(lock, LOCK_UN) == 0);
        CHECK_INTEQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_STREQ(stored_owner("04:00.0", buf), "5");

        /* After the call the backend holds no lock. */
        CHECK(flock(lock, LOCK_SH | LOCK_NB) == 0);
        CHECK(flock(lock, LOCK_UN) == 0);

        /* A reader waits for an outside writer too. */
        struct timespec t0;
        struct hv_caps caps;
        CHECK(flock(lock, LOCK_EX) == 0);
        pid = fork();
        if (pid == 0) {
                usleep(200 * 1000);
                flock(lock, LOCK_UN);
                _exit(0);
        }
        close(lock);   /* the child's copy of the description still holds it */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_INTEQ(ops->host_caps(hv, &caps), 0);
        CHECK_MSG(elapsed_ms(&t0) >= 150, "read did not wait: %ld ms", elapsed_ms(&t0));
        waitpid(pid, NULL, 0);

        /* No temporary file is left behind. */
        char tmp[300];
        snprintf(tmp, sizeof(tmp), "%s.tmp", host_path);
        CHECK(access(tmp, F_OK) < 0 && errno == ENOENT);
        ops->close(hv);
}

/*
 * hold() .. flush(): the exclusive lock is the backend's meanwhile; a call
 * that only counts itself is counted in memory and written at flush(), a
 * change of the host is in the file when its call returns, held or not.
 */
static void test_hold(void)
{
        struct hv *hv = fresh_host(true, "{}");
        json_int_t tests0 = calls("test_assign"), resets0 = calls("reset");
        struct stat before, after;
        uint32_t *group = NULL;
        size_t n_group = 0;
        char buf[16];
        int lock = open(lock_path, O_RDONLY | O_CLOEXEC);

        CHECK(lock >= 0);
        CHECK_INTEQ(ops->hold(hv), 0);
        CHECK_INTEQ(ops->hold(hv), 0); /* held already */
        CHECK(flock(lock, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK);
        CHECK(stat(host_path, &before) == 0);
        CHECK_INTEQ(ops->test_assign(hv, 5, GPU), 0);
        CHECK_INTEQ(ops->device_group(hv, GPU, &group, &n_group), 0);
        free(group);
        CHECK_INTEQ(ops->pci_reset(hv, GPU), 0);
        CHECK(stat(host_path, &after) == 0);
        CHECK_MSG(before.st_ino == after.st_ino, "a count alone rewrote the file while held");
        CHECK_INTEQ(calls("test_assign"), tests0);

        /* a change is written at once, with the counts so far */
        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), 0);
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "5");
        CHECK_INTEQ(calls("test_assign"), tests0 + 1);
        CHECK_INTEQ(calls("reset"), resets0 + 1);
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, NIC), 0);
        CHECK_INTEQ(calls("test_assign"), tests0 + 1);

        /* flush: every count is in the file, and the lock is free */
        CHECK_INTEQ(ops->flush(hv), 0);
        CHECK_INTEQ(calls("test_assign"), tests0 + 2);
        CHECK(flock(lock, LOCK_SH | LOCK_NB) == 0);
        CHECK(flock(lock, LOCK_UN) == 0);
        CHECK_INTEQ(ops->flush(hv), 0); /* not held: nothing */

        /* a hold with nothing to count writes nothing */
        CHECK(stat(host_path, &before) == 0);
        CHECK_INTEQ(ops->hold(hv), 0);
        CHECK_INTEQ(owner(hv, GPU), 5);
        CHECK_INTEQ(ops->flush(hv), 0);
        CHECK(stat(host_path, &after) == 0);
        CHECK(before.st_ino == after.st_ino);

        /* an outside change made before the hold is seen by the calls under it */
        CHECK_INTEQ(ops->deassign(hv, 5, GPU), 0);
        json_t *j = load_host();
        json_t *devs = json_object_get(j, "devices");
        for (size_t i = 0; i < json_array_size(devs); i++)
                if (streq(json_string_value(json_object_get(json_array_get(devs, i), "bdf")),
                          "0000:03:00.0"))
                        json_object_set_new(json_array_get(devs, i), "assigned_to", json_null());
        char *text = json_dumps(j, JSON_INDENT(2));
        json_decref(j);
        write_host(text);
        free(text);
        CHECK_INTEQ(ops->hold(hv), 0);
        CHECK_INTEQ(owner(hv, GPU), HV_DOMID_DOM0);
        CHECK_INTEQ(ops->flush(hv), 0);

        /* close flushes what is held */
        CHECK_INTEQ(ops->hold(hv), 0);
        CHECK_INTEQ(ops->test_assign(hv, HV_DOMID_INVALID, NIC), 0);
        ops->close(hv);
        CHECK_INTEQ(calls("test_assign"), tests0 + 3);
        CHECK(flock(lock, LOCK_EX | LOCK_NB) == 0);
        close(lock);
}

/*
 * defer(): while held, the changes of a batch of calls are written once, at
 * defer(false); without a hold there is nothing to defer. The calls see
 * their own changes meanwhile.
 */
static void test_defer(void)
{
        struct hv *hv = fresh_host(true, "{}");
        struct stat before, after;
        char buf[16];
        uint32_t o = 0;

        /* not held: a change is in the file when its call returns */
        CHECK_INTEQ(ops->defer(hv, true), 0);
        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), 0);
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "5");
        CHECK_INTEQ(ops->defer(hv, false), 0);

        CHECK_INTEQ(ops->hold(hv), 0);
        CHECK_INTEQ(ops->defer(hv, true), 0);
        CHECK(stat(host_path, &before) == 0);
        CHECK_INTEQ(ops->deassign(hv, 5, GPU), 0);
        CHECK_INTEQ(ops->assign(hv, 6, NIC, false), 0);
        CHECK(stat(host_path, &after) == 0);
        CHECK_MSG(before.st_ino == after.st_ino, "a deferred change rewrote the file");
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "5");
        /* the calls see what the batch did */
        CHECK(ops->device_owner(hv, NIC, &o) >= 0 && o == 6);
        CHECK(ops->assign(hv, 7, NIC, false) < 0); /* assigned already, in the batch */
        /* one write for both */
        CHECK_INTEQ(ops->defer(hv, false), 0);
        CHECK(stat(host_path, &after) == 0);
        CHECK(before.st_ino != after.st_ino);
        CHECK_STREQ(stored_owner("0000:03:00.0", buf), "io");
        CHECK_STREQ(stored_owner("04:00.0", buf), "6");
        CHECK_INTEQ(ops->defer(hv, false), 0); /* nothing deferred: nothing */
        CHECK_INTEQ(ops->deassign(hv, 6, NIC), 0);
        CHECK_MSG(!streq(stored_owner("04:00.0", buf), "6"), "deferred after defer(false)");
        CHECK_INTEQ(ops->flush(hv), 0);
        ops->close(hv);
}

static bool readable(int fd, int timeout_ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };

        return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void test_watch(void)
{
        struct hv *hv = fresh_host(true, "{}");
        int fd = ops->watch_fd(hv);
        struct timespec t0;
        char *text;
        json_t *j;

        CHECK(fd >= 0);
        CHECK(ops->watch_drain(hv) >= 0);
        CHECK(!readable(fd, 0));
        CHECK_INTEQ(ops->watch_drain(hv), 0);   /* non-blocking, nothing pending */

        /* Reads leave no trace a watcher would see. */
        struct hv_caps caps;
        CHECK_INTEQ(ops->host_caps(hv, &caps), 0);
        CHECK(!readable(fd, 50));

        /* Destroy render-2 from outside. */
        j = load_host();
        json_array_remove(json_object_get(j, "domains"), 2);
        text = json_dumps(j, JSON_INDENT(2));
        json_decref(j);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        write_host(text);
        free(text);
        CHECK(readable(fd, 1000));
        CHECK_MSG(elapsed_ms(&t0) < 1000, "%ld ms", elapsed_ms(&t0));
        CHECK_INTEQ(ops->watch_drain(hv), 1);
        CHECK(!readable(fd, 0));
        CHECK_INTEQ(owner(hv, GUEST_DEV), HV_DOMID_IO);

        /* The backend's own writes wake the fd but are not a change by someone else. */
        CHECK_INTEQ(ops->assign(hv, 5, GPU, false), 0);
        CHECK(readable(fd, 1000));
        CHECK_INTEQ(ops->watch_drain(hv), 0);

        /* Deleting the file is a change too. */
        CHECK(unlink(host_path) == 0);
        CHECK(readable(fd, 1000));
        CHECK_INTEQ(ops->watch_drain(hv), 1);
        CHECK_INTEQ(ops->host_caps(hv, &caps), -ENOENT);
        ops->close(hv);
}

/* The README's demo host (given as argv[1]) is a valid host file with what the demo needs. */
static void test_demo_host(const char *demo)
{
        FILE *in = fopen(demo, "r");
        char text[16384];
        size_t len;
        struct hv *hv;
        struct hv_caps caps;
        struct hv_domain d;
        struct hv_pci_info info;
        uint32_t *list = NULL;
        size_t n = 0;
        char drv[HV_DRIVER_MAX];

        CHECK_MSG(in != NULL, "%s", demo);
        if (!in)
                return;
        len = fread(text, 1, sizeof(text) - 1, in);
        fclose(in);
        text[len] = '\0';
        write_host(text);
        hv = open_host();
        CHECK_INTEQ(ops->host_caps(hv, &caps), 0);
        CHECK(caps.iommu);
        CHECK_INTEQ(caps.interrupt_remapping, 1);
        CHECK_INTEQ(ops->pci_list(hv, &list, &n), 0);
        CHECK_INTEQ(n, 5);
        free(list);
        CHECK_INTEQ(ops->pci_info(hv, GPU, &info), 0);
        CHECK_INTEQ(info.vendor, 0x10de);
        CHECK_STREQ(info.driver, "pciback");
        CHECK_INTEQ(ops->domain_by_name(hv, "net-1", &d), 0);
        CHECK_INTEQ(ops->test_assign(hv, d.domid, GPU), -EOPNOTSUPP);
        CHECK_INTEQ(ops->domain_by_name(hv, "render-1", &d), 0);
        CHECK_INTEQ(ops->test_assign(hv, d.domid, GPU), 0);
        CHECK_INTEQ(owner(hv, NIC), HV_DOMID_DOM0);
        CHECK_INTEQ(ops->pci_prepare(hv, NIC, drv), 0);
        CHECK_STREQ(drv, "igb");
        ops->close(hv);
}

static void cleanup(void)
{
        char cmd[400];

        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s DEMO-HOST-FILE\n", argv[0]);
                return 2;
        }
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(host_path, sizeof(host_path), "%s/host.json", tmpdir);
        snprintf(lock_path, sizeof(lock_path), "%s.lock", host_path);

        test_refuses_real_xen();
        test_open_errors();
        test_corrupt();
        test_caps_and_domains();
        test_test_assign();
        test_assign();
        test_deassign();
        test_no_iommu();
        test_device_group();
        test_owner_and_assignments();
        test_pci();
        test_prepare();
        test_faults();
        test_destroyed_domain();
        test_edge_values();
        test_flock();
        test_hold();
        test_defer();
        test_watch();
        test_demo_host(argv[1]);

        cleanup();
        return harness_exit();
}
