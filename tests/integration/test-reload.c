/* SPDX-License-Identifier: MIT */
/*
 * Invariant 6, second half: a reload of a bad policy (by the `reload` op, the
 * CLI, or SIGHUP) is rejected with file:line and the old policy stays in
 * force: every decision is unchanged afterwards. A good policy is swapped in.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static struct itest t;

static const struct {
        const char *domain, *bdf;
} probes[] = {
        {"render-1", DEV_GPU},  {"render-1", DEV_NIC},  {"net-pv", DEV_NIC},
        {"net-pvh", DEV_SPARE}, {"render-pv", DEV_GPU}, {"net-pv", DEV_NORESET},
};
#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

/* "allow", or the error code of the denial, of every probe; joined with ','. */
static void decisions(char *out, size_t size)
{
        out[0] = '\0';
        for (size_t i = 0; i < N_PROBES; i++) {
                json_t *e = itest_target(&t, "explain", probes[i].domain, 0, probes[i].bdf);
                const char *d = json_string_value(json_object_get(e, "decision"));
                const char *err = json_string_value(json_object_get(e, "error"));
                size_t l = strlen(out);
                snprintf(out + l, size - l, "%s%s", i ? "," : "",
                         !d                  ? "(none)"
                         : streq(d, "allow") ? "allow"
                         : err               ? err
                                             : "deny");
                json_decref(e);
        }
}

static bool decision_is(const char *domain, const char *bdf, const char *want)
{
        json_t *e = itest_target(&t, "explain", domain, 0, bdf);
        const char *d = json_string_value(json_object_get(e, "decision"));
        bool r = d && streq(d, want);
        json_decref(e);
        return r;
}

/* A reload by op must fail with policy-invalid naming policy.conf:line. */
static void bad_reload(const char *text, int line)
{
        char where[PATH_MAX + 16];

        CHECK_INTEQ(itest_write_file(t.policy, text), 0);
        json_t *r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        const char *msg = json_string_value(json_object_get(r, "message"));
        snprintf(where, sizeof(where), "%s:%d", t.policy, line);
        CHECK_MSG(streq(itest_error(r), "policy-invalid"), "reload of a bad policy: %s",
                  itest_error(r));
        CHECK_MSG(msg && strstr(msg, where), "the refusal does not name %s: %s", where,
                  msg ? msg : "(no message)");
        json_decref(r);
}

static const char bad_syntax[] = "version = 1;\n"
                                 "clients = ( { name = \"root\"; uid = 0; } );\n"
                                 "admins = [ \"root\" ];\n"
                                 "rules = ( { name = \"x\"; action = \"allow\" } \n"
                                 ";\n";
static const char bad_key[] = "version = 1;\n"
                              "clients = ( { name = \"root\"; uid = 0; } );\n"
                              "admins = [ \"root\" ];\n"
                              "rules = (\n"
                              "  { name = \"all\"; action = \"allow\";\n"
                              "    domians = ( { name = \"*\"; } ); }\n"
                              ");\n";
static const char bad_value[] = "version = 1;\n"
                                "clients = ( { name = \"root\"; uid = 0; } );\n"
                                "admins = [ \"root\" ];\n"
                                "rules = (\n"
                                "  { name = \"all\"; action = \"allow\"; reset = \"sometimes\"; }\n"
                                ");\n";
/* the default policy without gpus-to-render: GPUs to render-1 are then denied */
static const char no_gpus[] =
        "version = 1;\n"
        "require_interrupt_remapping = true;\n"
        "clients = ( { name = \"root\"; uid = 0; } );\n"
        "admins = [ \"root\" ];\n"
        "protected = ( { bdf = \"0000:00:1f.*\"; } );\n"
        "rules = (\n"
        "  { name = \"net\"; action = \"allow\"; domains = ( { name = \"net-*\"; } ); }\n"
        ");\n";

int main(void)
{
        char before[512], after[512];

        itest_init(&t, "reload", false);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }
        decisions(before, sizeof(before));
        printf("# decisions: %s\n", before);
        CHECK(decision_is("render-1", DEV_GPU, "allow"));
        json_t *st = itest_call(&t, json_pack("{s:s}", "op", "status"));
        json_t *loaded = json_incref(json_object_get(st, "policy_loaded"));
        json_int_t rules = json_integer_value(json_object_get(st, "rules"));
        CHECK_INTEQ(rules, 4);
        json_decref(st);

        /* by the op */
        bad_reload(bad_syntax, 5); /* the missing ")" is found on line 5 */
        bad_reload(bad_key, 6);
        bad_reload(bad_value, 5);
        decisions(after, sizeof(after));
        CHECK_STREQ(after, before);
        st = itest_call(&t, json_pack("{s:s}", "op", "status"));
        CHECK_INTEQ(json_integer_value(json_object_get(st, "rules")), rules);
        CHECK(json_equal(json_object_get(st, "policy_loaded"), loaded));
        json_decref(st);

        /* by the CLI */
        char *err = NULL;
        CHECK_INTEQ(itest_write_file(t.policy, bad_key), 0);
        CHECK_INTEQ(ITEST_CLI(&t, NULL, &err, "reload"), 1);
        CHECK(err && strstr(err, "policy-invalid") && strstr(err, ":6"));
        free(err);
        decisions(after, sizeof(after));
        CHECK_STREQ(after, before);

        /* by SIGHUP: a bad file is rejected (audited), the old policy stays */
        size_t off = itest_log_size(&t);
        CHECK_INTEQ(itest_write_file(t.policy, bad_value), 0);
        kill(t.pid, SIGHUP);
        CHECK_MSG(itest_log_wait(&t, off, (const char *const[]){"kind=reload", NULL}, 2000),
                  "no audit record of the failed SIGHUP reload");
        CHECK(itest_alive(&t));
        decisions(after, sizeof(after));
        CHECK_STREQ(after, before);

        /* a good file by SIGHUP is swapped in ... */
        CHECK_INTEQ(itest_write_file(t.policy, no_gpus), 0);
        kill(t.pid, SIGHUP);
        CHECK_MSG(ITEST_WAIT_FOR(decision_is("render-1", DEV_GPU, "deny"), 2000),
                  "SIGHUP did not load the new policy");
        /* ... and a bad one after it keeps the new one */
        off = itest_log_size(&t);
        CHECK_INTEQ(itest_write_file(t.policy, bad_syntax), 0);
        kill(t.pid, SIGHUP);
        CHECK(itest_log_wait(&t, off, (const char *const[]){"kind=reload", NULL}, 2000));
        CHECK(decision_is("render-1", DEV_GPU, "deny"));
        CHECK(decision_is("net-pv", DEV_NIC, "allow"));

        /* and the op reloads the original */
        CHECK_INTEQ(itest_write_file(t.policy, itest_default_policy), 0);
        json_t *r = itest_call(&t, json_pack("{s:s}", "op", "reload"));
        CHECK_MSG(itest_ok(r), "reload: %s", itest_error(r));
        json_decref(r);
        decisions(after, sizeof(after));
        CHECK_STREQ(after, before);

        json_decref(loaded);
        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
