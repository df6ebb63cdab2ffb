/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the policy language: any text must either load or be
 * rejected with diagnostics, never crash, leak or hang. A policy that loads
 * is also evaluated, so the index and the explain walk run on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.5 (Debian 12) leaks a string literal's buffer when a syntax
 * error follows it; the leak is inside its scanner, not in passguard. Our own
 * allocations are still checked: none of them is made by libconfig.
 */
const char *__lsan_default_suppressions(void)
{
        return "leak:libconfig.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pg_policy_diags diags = {};
        struct pg_policy *p = NULL;

        if (size > 64 * 1024)
                return 0;
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';

        int r = pg_policy_load_string(text, "fuzz.conf", &p, &diags);
        if (r == 0) {
                static const gid_t groups[] = {4, 27};
                struct pg_policy_identity id = {
                        .uid = 0,
                        .gid = 0,
                        .groups = groups,
                        .n_groups = 2,
                        .unit = "libvirtd.service",
                };
                struct pg_policy_device dev = {
                        .sbdf = PG_SBDF(0, 3, 0, 0),
                        .vendor = 0x10de,
                        .device = 0x1eb8,
                        .subsystem_vendor = -1,
                        .subsystem_device = 0x1234,
                        .class = 0x030200,
                };
                struct pg_policy_domain dom = {
                        .name = "render-1",
                        .domid = 5,
                        .uuid = "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f",
                        .type = "hvm",
                };
                struct pg_policy_decision fast = {}, slow = {};
                const char *why;

                pg_policy_is_protected(p, &dev, &why);
                pg_policy_is_admin(p, &id);
                pg_policy_may_prepare(p, &id, &dev);
                if (pg_policy_evaluate(p, &id, &dev, &dom, false, &fast) == 0 &&
                    pg_policy_evaluate(p, &id, &dev, &dom, true, &slow) == 0 &&
                    (fast.allow != slow.allow || strcmp(fast.rule, slow.rule) != 0))
                        abort(); /* the index must never change a decision */
                pg_policy_decision_clear(&fast);
                pg_policy_decision_clear(&slow);
        } else if (r == -EINVAL && diags.n == 0)
                abort(); /* an invalid policy always says why */
        pg_policy_free(p);
        pg_policy_diags_clear(&diags);
        free(text);
        return 0;
}
