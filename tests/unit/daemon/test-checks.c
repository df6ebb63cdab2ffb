/* SPDX-License-Identifier: MIT */
/*
 * daemon/checks.c without a host: the one place where the hypervisor's
 * errnos become wire codes (as real Xen 4.17 answers them, shared/xenlab),
 * and the shape of explain's "checks". The checks themselves, in order and
 * against a simulated host, are tests/unit/ops.
 */
#include <errno.h>
#include <string.h>

#include "checks.h"
#include "harness.h"

static void test_hv_codes(void)
{
        static const struct {
                const char *step;
                int r, code;
        } v[] = {
                /* no IOMMU: EOPNOTSUPP since Xen 4.13, ENOSYS before; treated the same */
                {"iommu", -EOPNOTSUPP, PG_ERR_NO_IOMMU},
                {"free", -ENOSYS, PG_ERR_NO_IOMMU},
                /* ... unless the call is about one domain: that domain has no IOMMU context */
                {"domain-iommu", -EOPNOTSUPP, PG_ERR_DOMAIN_NO_IOMMU},
                {"assign", -ENOSYS, PG_ERR_DOMAIN_NO_IOMMU},
                {"deassign", -EOPNOTSUPP, PG_ERR_DOMAIN_NO_IOMMU},
                /* test-assign's EINVAL: assigned already, or no such device */
                {"free", -EINVAL, PG_ERR_BUSY},
                {"domain-iommu", -EINVAL, PG_ERR_BUSY},
                {"assign", -EINVAL, PG_ERR_HYPERVISOR_ERROR},
                /* the domain went away after the domain check */
                {"assign", -ESRCH, PG_ERR_NO_SUCH_DOMAIN},
                {"domain-iommu", -ESRCH, PG_ERR_NO_SUCH_DOMAIN},
                {"group", -ESRCH, PG_ERR_HYPERVISOR_ERROR},
                /* only the assign call itself says EBUSY and ENODEV */
                {"assign", -EBUSY, PG_ERR_BUSY},
                {"assign", -ENODEV, PG_ERR_NO_SUCH_DEVICE},
                {"prepare", -EIO, PG_ERR_HYPERVISOR_ERROR},
                {"owner", -EIO, PG_ERR_HYPERVISOR_ERROR},
                {"assign", 0, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                CHECK_MSG(pgd_checks_hv_code(v[i].step, v[i].r) == v[i].code,
                          "%s answering %d: %d, expected %d", v[i].step, v[i].r,
                          pgd_checks_hv_code(v[i].step, v[i].r), v[i].code);
}

static void test_to_json(void)
{
        struct pgd_checks c = {
                .v = {{"request", PGD_CHECK_PASS, "assign 0000:03:00.0 to render-1"},
                      {"interrupt-remapping", PGD_CHECK_SKIP, "not required by the policy"},
                      {"domain", PGD_CHECK_FAIL, "no domain \"r\xc3\xa9nder\""}},
                .n = 3,
        };
        json_t *a = pgd_checks_to_json(&c);

        CHECK(json_is_array(a) && json_array_size(a) == 3);
        for (size_t i = 0; a && i < json_array_size(a); i++) {
                json_t *o = json_array_get(a, i);
                CHECK_INTEQ(json_object_size(o), 3);
                CHECK_STREQ(json_string_value(json_object_get(o, "check")), c.v[i].name);
                CHECK_STREQ(json_string_value(json_object_get(o, "result")),
                            pgd_check_result_name(c.v[i].result));
                CHECK_STREQ(json_string_value(json_object_get(o, "detail")), c.v[i].detail);
        }
        json_decref(a);
        CHECK_STREQ(pgd_check_result_name(PGD_CHECK_PASS), "pass");
        CHECK_STREQ(pgd_check_result_name(PGD_CHECK_FAIL), "fail");
        CHECK_STREQ(pgd_check_result_name(PGD_CHECK_SKIP), "skip");
}

int main(void)
{
        test_hv_codes();
        test_to_json();
        return harness_exit();
}
