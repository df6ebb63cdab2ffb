/* SPDX-License-Identifier: MIT */
/*
 * explain and assign can never disagree (DESIGN.md "Wire protocol"): across
 * a matrix of domains x devices x clients x host states, explain is asked
 * first, then assign, each time on the same fresh state (a granted device is
 * released before the next pair). The decision, the error code, the failing
 * check and the rule must match, and explain must have no side effect.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "itest.h"

static const struct {
        const char *name; /* NULL: by domid */
        uint32_t domid;
} domains[] = {
        {"render-1", 0}, {"render-2", 0}, {"render-pv", 0},    {"net-pv", 0},
        {"net-pvh", 0},  {"net-hvm", 0},  {"dying-1", 0},      {"noiommu-1", 0},
        {"ghost-9", 0},  {NULL, 0},       {NULL, DOM_RENDER1}, {NULL, 0x7FF1},
};

static const char *const devices[] = {
        DEV_GPU,   DEV_GPU2,  DEV_NIC,   DEV_IGB,   DEV_SATA,  DEV_NORESET,
        DEV_SLOT0, DEV_SLOT1, DEV_SPARE, DEV_GHOST, DEV_E1000, "03:00.0",
};

struct tally {
        int pairs, allowed;
        char *codes[32];
        int n_codes;
};

static const char *field(const json_t *j, const char *key)
{
        const char *s = json_string_value(json_object_get(j, key));
        return s ? s : "";
}

/* The last check of explain's list that failed, or "". */
static const char *failed_check(const json_t *explain)
{
        const char *last = "";
        size_t i;
        json_t *c;

        json_array_foreach(json_object_get(explain, "checks"), i,
                           c) if (streq(field(c, "result"), "fail")) last = field(c, "check");
        return last;
}

static void one_pair(struct itest *t, const char *label, const char *name, uint32_t domid,
                     const char *bdf, bool root, struct tally *tally)
{
        json_int_t assigns = root ? itest_calls(t, "assign") : 0;
        json_t *e = itest_target(t, "explain", name, domid, bdf);
        char what[160];

        snprintf(what, sizeof(what), "[%s] %s/%u %s", label, name ? name : "(by domid)", domid,
                 bdf);
        if (root)
                CHECK_MSG(itest_calls(t, "assign") == assigns, "%s: explain assigned", what);
        json_t *a = itest_target(t, "assign", name, domid, bdf);

        /*
         * explain answers ok:true with a decision; a request refused before
         * anything can be explained (malformed, or a client the policy does
         * not know) may instead be refused outright, with the same code.
         */
        bool outright = e && !itest_ok(e);
        const char *decision = outright ? "deny" : field(e, "decision");
        const char *e_error = outright ? itest_error(e) : field(e, "error");
        bool allow = streq(decision, "allow");
        CHECK_MSG(e && (allow || streq(decision, "deny")), "%s: explain failed: %s", what,
                  itest_error(e));
        if (outright)
                CHECK_MSG(streq(e_error, "bad-request") || streq(e_error, "not-authorized") ||
                                  streq(e_error, "unsupported-version"),
                          "%s: explain refused outright with %s", what, e_error);
        CHECK_MSG(allow == itest_ok(a), "%s: explain says %s, assign says %s", what, decision,
                  itest_ok(a) ? "granted" : itest_error(a));
        if (!allow && !itest_ok(a)) {
                CHECK_MSG(streq(e_error, itest_error(a)),
                          "%s: explain error \"%s\", assign error \"%s\"", what, e_error,
                          itest_error(a));
                if (!outright && json_object_get(a, "check"))
                        CHECK_MSG(streq(failed_check(e), field(a, "check")),
                                  "%s: explain failed at \"%s\", assign at \"%s\"", what,
                                  failed_check(e), field(a, "check"));
                if (!outright && json_object_get(a, "rule") && json_object_get(e, "rule"))
                        CHECK_MSG(streq(field(e, "rule"), field(a, "rule")), "%s: rule %s vs %s",
                                  what, field(e, "rule"), field(a, "rule"));
        }
        if (allow && itest_ok(a)) {
                json_t *g = json_object_get(a, "grant");
                char owner[32], want[32];
                /* invariant 1: granted means the hypervisor already assigned it */
                if (root) {
                        snprintf(want, sizeof(want), "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(json_object_get(g, "domid")));
                        CHECK_MSG(streq(itest_owner(t, field(g, "device"), owner), want),
                                  "%s: granted, but the host says %s", what, owner);
                }
                CHECK_MSG(streq(field(e, "rule"), field(g, "rule")), "%s: rule %s vs %s", what,
                          field(e, "rule"), field(g, "rule"));
        }
        tally->pairs++;
        if (itest_ok(a)) {
                tally->allowed++;
                json_t *r = itest_target(t, "release", name, domid, bdf);
                CHECK_MSG(itest_ok(r), "%s: release: %s", what, itest_error(r));
                json_decref(r);
        } else {
                bool seen = false;
                for (int c = 0; c < tally->n_codes; c++)
                        seen = seen || streq(tally->codes[c], itest_error(a));
                if (!seen && tally->n_codes < 32)
                        tally->codes[tally->n_codes++] = strdup(itest_error(a));
        }
        json_decref(e);
        json_decref(a);
}

static void run_matrix(struct itest *t, const char *label, bool root, struct tally *tally)
{
        for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++)
                for (size_t j = 0; j < sizeof(devices) / sizeof(devices[0]); j++)
                        one_pair(t, label, domains[i].name, domains[i].domid, devices[j], root,
                                 tally);
}

/* The matrix as uid 65534, which the policy does not know, in a child process. */
static void run_as_nobody(struct itest *t, const char *label)
{
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
                struct tally tally = {};
                harness_failures = 0; /* count only the child's own */
                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                    setresuid(65534, 65534, 65534) < 0)
                        _exit(2);
                run_matrix(t, label, false, &tally);
                fflush(stdout);
                fflush(stderr);
                _exit(harness_failures ? 1 : 0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "[%s] the unknown client's matrix failed",
                  label);
}

static void unmanaged(json_t *host, void *userdata)
{
        json_object_set_new(itest_host_device(host, DEV_SLOT0), "assigned_to",
                            json_integer(DOM_NETHVM));
}

int main(void)
{
        static const char *const states[] = {"normal", "test-assign-fault", "no-ir", "no-iommu"};
        struct tally tally = {};

        for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
                struct itest t;
                const char *state = states[s];
                int f0 = harness_failures;

                itest_init(&t, "matrix", false);
                /* a baseline: one grant (render-1 is then at its limit), one unmanaged device */
                CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
                json_t *r = itest_target(&t, "assign", "render-1", 0, DEV_GPU2);
                CHECK_MSG(itest_ok(r), "baseline assign: %s", itest_error(r));
                json_decref(r);
                itest_stop(&t);
                CHECK_INTEQ(itest_host_edit(&t, unmanaged, NULL), 0);
                if (streq(state, "test-assign-fault"))
                        CHECK_INTEQ(itest_set_fault(&t, "test_assign", DEV_SPARE, "EIO"), 0);
                if (streq(state, "no-ir"))
                        CHECK_INTEQ(itest_set_bool(&t, "interrupt_remapping", false), 0);
                if (streq(state, "no-iommu"))
                        CHECK_INTEQ(itest_set_bool(&t, "iommu", false), 0);
                CHECK_INTEQ(itest_start(&t, NULL, NULL), 0);
                CHECK_INTEQ(itest_open_socket(&t), 0);

                run_matrix(&t, state, true, &tally);
                run_as_nobody(&t, state);

                CHECK(itest_alive(&t));
                CHECK_INTEQ(itest_consistent(&t, (const char *const[]){DEV_GPU, DEV_GPU2, DEV_NIC,
                                                                       DEV_SPARE, NULL}),
                            0);
                if (harness_failures > f0)
                        itest_log_dump(&t);
                itest_finish(&t);
        }
        printf("# %d explain/assign pairs as root, %d granted\n", tally.pairs, tally.allowed);
        printf("# refusal codes seen:");
        for (int c = 0; c < tally.n_codes; c++)
                printf(" %s", tally.codes[c]);
        printf("\n");
        CHECK(tally.allowed > 10);
        CHECK(tally.n_codes >= 12);
        CHECK(tally.pairs - tally.allowed > 100);
        return harness_exit();
}
