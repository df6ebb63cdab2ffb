/* SPDX-License-Identifier: MIT */
/*
 * Invariant 2, no IOMMU, no assignment: on a host without an IOMMU every
 * assign, for every domain type (pv, pvh, hvm), every device and every way
 * of naming the domain, is refused no-iommu, and the simulated hypervisor's
 * counters prove that no assign call was ever made. explain agrees. A policy
 * that allows everything does not change that.
 */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static const struct {
        const char *name;
        uint32_t domid;
        const char *type;
} domains[] = {
        {"net-pv", DOM_NETPV, "pv"},       {"net-pvh", DOM_NETPVH, "pvh"},
        {"net-hvm", DOM_NETHVM, "hvm"},    {"render-1", DOM_RENDER1, "hvm"},
        {"render-pv", DOM_RENDERPV, "pv"},
};

static const char *const devices[] = {
        DEV_GPU, DEV_GPU2, DEV_NIC, DEV_SPARE, DEV_SLOT0, DEV_NORESET,
};

static const char allow_all_policy[] =
        "version = 1;\n"
        "require_interrupt_remapping = false;\n"
        "clients = ( { name = \"root\"; uid = 0; } );\n"
        "admins = [ \"root\" ];\n"
        "rules = ( { name = \"everything\"; action = \"allow\"; reset = \"never\"; } );\n";

static void run_matrix(struct itest *t, int *refusals)
{
        for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++)
                for (size_t j = 0; j < sizeof(devices) / sizeof(devices[0]); j++)
                        for (int by_id = 0; by_id < 2; by_id++) {
                                const char *name = by_id ? NULL : domains[i].name;
                                json_t *e = itest_target(t, "explain", name, domains[i].domid,
                                                         devices[j]);
                                json_t *a = itest_target(t, "assign", name, domains[i].domid,
                                                         devices[j]);
                                CHECK_MSG(streq(itest_error(a), "no-iommu"),
                                          "assign %s (%s) %s: %s", domains[i].name, domains[i].type,
                                          devices[j], itest_error(a));
                                CHECK_MSG(
                                        itest_ok(e) &&
                                                streq(json_string_value(
                                                              json_object_get(e, "decision"))
                                                              ?: "",
                                                      "deny") &&
                                                streq(json_string_value(json_object_get(e, "error"))
                                                              ?: "",
                                                      "no-iommu"),
                                        "explain %s %s does not say deny/no-iommu", domains[i].name,
                                        devices[j]);
                                (*refusals)++;
                                json_decref(e);
                                json_decref(a);
                        }
}

int main(void)
{
        struct itest t;
        int refusals = 0;
        char buf[32];

        itest_init(&t, "noiommu", false);
        CHECK_INTEQ(itest_set_bool(&t, "iommu", false), 0);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }

        json_t *st = itest_call(&t, json_pack("{s:s}", "op", "status"));
        CHECK(itest_ok(st));
        CHECK(json_is_false(json_object_get(st, "iommu")));
        json_decref(st);

        run_matrix(&t, &refusals);

        /* through the CLI too */
        char *err = NULL;
        CHECK_INTEQ(ITEST_CLI(&t, NULL, &err, "assign", "net-hvm", DEV_NIC), 1);
        CHECK(err && strstr(err, "no-iommu"));
        free(err);

        /* a policy that allows everything cannot override it */
        CHECK_INTEQ(itest_write_file(t.policy, allow_all_policy), 0);
        json_t *r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        CHECK_MSG(itest_ok(r), "reload: %s", itest_error(r));
        json_decref(r);
        run_matrix(&t, &refusals);

        /* and neither does a restart */
        itest_stop(&t);
        CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
        run_matrix(&t, &refusals);

        json_t *host = itest_host_load(&t);
        CHECK_INTEQ(itest_host_calls(host, "assign"), 0);
        for (size_t j = 0; j < sizeof(devices) / sizeof(devices[0]); j++)
                CHECK_STREQ(itest_host_owner(host, devices[j], buf), "io");
        json_decref(host);
        json_t *store = itest_grants_load(&t);
        CHECK_INTEQ(json_array_size(json_object_get(store, "grants")), 0);
        json_decref(store);
        printf("# %d assigns refused no-iommu, calls.assign == 0\n", refusals);
        CHECK(refusals == 3 * 5 * 6 * 2);

        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
