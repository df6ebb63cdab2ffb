/* SPDX-License-Identifier: MIT */
/*
 * How fast the policy decides, as the number of rules grows. Policies of 10,
 * 1,000 and 10,000 rules are generated; the requests are aimed at the last
 * rules and at no rule at all, the worst case for a rule-by-rule walk. With
 * the rule index, evaluations per second stay about the same: the printed
 * ratio of 10,000-rule to 10-rule throughput is close to 1.
 *
 * Not a timed test: it fails only when a policy does not load or a decision
 * is wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

#define N_REQUESTS 64

struct request {
        struct pg_policy_device dev;
        struct pg_policy_domain dom;
        char name[32];
        char expect[32];
};

static uint32_t rule_sbdf(unsigned i)
{
        return PG_SBDF(0, (i >> 8) & 0xff, (i >> 3) & 0x1f, i & 7);
}

/*
 * Rule i: every third rule names an exact bdf, the others a vendor (and
 * some a class too); each sends its devices to domains "dom-i-*". Two rules
 * with no device matcher belong to another client.
 */
static char *policy_text(unsigned n)
{
        size_t cap = 256 + (size_t)n * 200, len = 0;
        char *t = malloc(cap);

        if (!t)
                return NULL;
        len += (size_t)snprintf(
                t + len, cap - len,
                "version = 1;\n"
                "clients = ( { name = \"a\"; uid = 100; },"
                " { name = \"b\"; uid = 200; } );\n"
                "rules = (\n"
                "  { name = \"b-any-1\"; action = \"allow\"; clients = [\"b\"]; },\n"
                "  { name = \"b-any-2\"; action = \"deny\"; clients = [\"b\"]; }");
        for (unsigned i = 0; i < n; i++) {
                char dev[96];
                uint32_t x = rule_sbdf(i);
                if (i % 3 == 0)
                        snprintf(dev, sizeof(dev), "{ bdf = \"%02x:%02x.%x\"; }", PG_SBDF_BUS(x),
                                 PG_SBDF_DEV(x), PG_SBDF_FN(x));
                else if (i % 3 == 1)
                        snprintf(dev, sizeof(dev), "{ vendor = %u; }", i);
                else
                        snprintf(dev, sizeof(dev), "{ vendor = %u; class = \"0x02\"; }", i);
                len += (size_t)snprintf(
                        t + len, cap - len,
                        ",\n  { name = \"r%u\"; action = \"%s\"; clients = [\"a\"];"
                        " devices = ( %s ); domains = ( { name = \"dom-%u-*\"; } ); }",
                        i, i % 5 == 4 ? "deny" : "allow", dev, i);
        }
        snprintf(t + len, cap - len, "\n);\n");
        return t;
}

/* Half the requests hit one of the last rules, half match nothing. */
static void make_requests(unsigned n, struct request *v)
{
        for (unsigned k = 0; k < N_REQUESTS; k++) {
                struct request *q = &v[k];
                unsigned i = n - 1 - (k / 2) % (n < 16 ? n : 16);
                bool hit = k % 2 == 0;

                q->dev = (struct pg_policy_device){
                        .sbdf = hit && i % 3 == 0 ? rule_sbdf(i) : PG_SBDF(0, 0xfe, 0, 0),
                        .vendor = (int32_t)(hit && i % 3 ? i : 0xfff0),
                        .device = 1,
                        .subsystem_vendor = -1,
                        .subsystem_device = -1,
                        .class = 0x020000,
                };
                snprintf(q->name, sizeof(q->name), "dom-%u-x", i);
                q->dom = (struct pg_policy_domain){.name = q->name, .domid = 5, .type = "hvm"};
                snprintf(q->expect, sizeof(q->expect), hit ? "r%u" : "default", i);
        }
}

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Evaluations per second, or a negative number when a decision was wrong. */
static double run(const struct pg_policy *p, const struct request *v, bool explain, double secs)
{
        const struct pg_policy_identity id = {.uid = 100, .gid = 100};
        unsigned long count = 0;
        double start = now(), elapsed;

        do {
                for (unsigned k = 0; k < N_REQUESTS; k++) {
                        struct pg_policy_decision d = {};
                        if (pg_policy_evaluate(p, &id, &v[k].dev, &v[k].dom, explain, &d) < 0 ||
                            !streq(d.rule, v[k].expect)) {
                                fprintf(stderr, "request %u: rule '%s', expected '%s'\n", k,
                                        d.rule ? d.rule : "(none)", v[k].expect);
                                pg_policy_decision_clear(&d);
                                return -1;
                        }
                        pg_policy_decision_clear(&d);
                }
                count += N_REQUESTS;
                elapsed = now() - start;
        } while (elapsed < secs);
        return (double)count / elapsed;
}

int main(int argc, char **argv)
{
        static const unsigned sizes[] = {10, 1000, 10000};
        double rate[ELEMENTSOF(sizes)];
        double secs = argc > 1 ? atof(argv[1]) : 0.5;
        struct request v[N_REQUESTS];

        for (size_t s = 0; s < ELEMENTSOF(sizes); s++) {
                _cleanup_(freep) char *text = policy_text(sizes[s]);
                struct pg_policy_diags diags = {};
                struct pg_policy *p = NULL;

                if (!text)
                        return 1;
                double t0 = now();
                if (pg_policy_load_string(text, "bench.conf", &p, &diags) < 0) {
                        pg_policy_diags_print(&diags, stderr);
                        pg_policy_diags_clear(&diags);
                        return 1;
                }
                double load = now() - t0;
                make_requests(sizes[s], v);
                rate[s] = run(p, v, false, secs);
                if (rate[s] < 0) {
                        pg_policy_free(p);
                        return 1;
                }
                printf("%6u rules: %12.0f evaluations/s (loaded in %.3f s)\n", sizes[s], rate[s],
                       load);
                if (sizes[s] == 10000) {
                        double walk = run(p, v, true, secs);
                        if (walk < 0) {
                                pg_policy_free(p);
                                return 1;
                        }
                        printf("%6u rules: %12.0f explains/s (explain walks every rule)\n",
                               sizes[s], walk);
                }
                pg_policy_free(p);
        }
        printf("throughput ratio 10000/10 rules: %.2f\n", rate[2] / rate[0]);
        return 0;
}
