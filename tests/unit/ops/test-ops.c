/* SPDX-License-Identifier: MIT */
/*
 * The op handlers and the ordered checks, driven directly with a real
 * simulated host (hv-sim, a file in a temporary directory), a real policy and
 * a real grant store. Every refusal code of the check pipeline is provoked
 * once, explain and assign are compared over a matrix, and the durability
 * rules (rollback when the store cannot be written) are exercised for real.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "checks.h"
#include "commit.h"
#include "grants.h"
#include "harness.h"
#include "hv.h"
#include "pgd.h"

#define UUID_R1 "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f"
#define UUID_R2 "6a0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f"

static const char base_host[] =
        "{ \"iommu\": true, \"interrupt_remapping\": true,"
        "  \"devices\": ["
        "  { \"bdf\": \"0000:03:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030200\", \"driver\": \"pciback\", \"group\": 1, \"reset\": \"flr\","
        "    \"assigned_to\": \"io\" },"
        "  { \"bdf\": \"0000:04:00.0\", \"vendor\": \"0x8086\", \"device\": \"0x100e\","
        "    \"class\": \"0x020000\", \"driver\": \"e1000\", \"group\": 2, \"reset\": \"flr\","
        "    \"assigned_to\": null },"
        "  { \"bdf\": \"0000:05:00.0\", \"vendor\": \"0x8086\", \"device\": \"0x10d3\","
        "    \"class\": \"0x020000\", \"driver\": \"pciback\", \"group\": 3, \"reset\": \"flr\","
        "    \"assigned_to\": null },"
        "  { \"bdf\": \"0000:00:1f.2\", \"vendor\": \"0x8086\", \"device\": \"0x2922\","
        "    \"class\": \"0x010601\", \"driver\": \"ahci\", \"group\": 4, \"reset\": null,"
        "    \"assigned_to\": null },"
        "  { \"bdf\": \"0000:06:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 5, \"reset\": \"flr\","
        "    \"assigned_to\": \"io\" },"
        "  { \"bdf\": \"0000:06:00.1\", \"vendor\": \"0x10de\", \"device\": \"0x10f0\","
        "    \"class\": \"0x040300\", \"driver\": \"snd_hda_intel\", \"group\": 6,"
        "    \"reset\": null, \"assigned_to\": null },"
        "  { \"bdf\": \"0000:07:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 7, \"reset\": \"flr\","
        "    \"assigned_to\": \"io\" },"
        "  { \"bdf\": \"0000:08:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 7, \"reset\": \"flr\","
        "    \"assigned_to\": 6 },"
        "  { \"bdf\": \"0000:09:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 9, \"reset\": \"flr\","
        "    \"assigned_to\": 6 },"
        "  { \"bdf\": \"0000:0a:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 10, \"reset\": null,"
        "    \"assigned_to\": \"io\" },"
        "  { \"bdf\": \"0000:0b:00.0\", \"vendor\": \"0x1234\", \"device\": \"0x1111\","
        "    \"class\": \"0x0c0330\", \"driver\": \"pciback\", \"group\": 11, \"reset\": \"flr\","
        "    \"assigned_to\": \"io\" },"
        "  { \"bdf\": \"0000:0c:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 12, \"reset\": \"flr\","
        "    \"assigned_to\": \"io\" },"
        "  { \"bdf\": \"0000:0d:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\","
        "    \"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": 13, \"reset\": \"flr\","
        "    \"assigned_to\": \"io\" },"
        "  { \"bdf\": \"0000:0e:00.0\", \"vendor\": \"0x8086\", \"device\": \"0x10d3\","
        "    \"class\": \"0x020000\", \"driver\": \"pciback\", \"group\": 14, \"reset\": null,"
        "    \"assigned_to\": \"io\" } ],"
        "  \"domains\": ["
        "  { \"domid\": 0, \"name\": \"Domain-0\", \"type\": \"pv\","
        "    \"uuid\": \"00000000-0000-0000-0000-000000000000\" },"
        "  { \"domid\": 5, \"name\": \"render-1\", \"type\": \"hvm\", \"uuid\": \"" UUID_R1 "\" },"
        "  { \"domid\": 6, \"name\": \"render-2\", \"type\": \"hvm\", \"uuid\": \"" UUID_R2 "\" },"
        "  { \"domid\": 7, \"name\": \"render-dying\", \"type\": \"hvm\", \"dying\": true,"
        "    \"uuid\": \"7a0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" },"
        "  { \"domid\": 8, \"name\": \"render-noiommu\", \"type\": \"hvm\", \"iommu\": false,"
        "    \"uuid\": \"8a0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" },"
        "  { \"domid\": 9, \"name\": \"other-1\", \"type\": \"hvm\","
        "    \"uuid\": \"9a0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\" } ],"
        "  \"faults\": {},"
        "  \"calls\": { \"assign\": 0, \"deassign\": 0, \"test_assign\": 0 } }";

static const char base_policy[] =
        "version = 1;\n"
        "require_interrupt_remapping = true;\n"
        "clients = (\n"
        "  { name = \"xl\"; uid = 0; },\n"
        "  { name = \"render\"; uid = 1000; },\n"
        "  { name = \"netops\"; uid = 1002; },\n"
        "  { name = \"other\"; uid = 1001; }\n"
        ");\n"
        "admins = [ \"xl\" ];\n"
        "protected = ( { bdf = \"0000:00:1f.*\"; } );\n"
        "rules = (\n"
        "  { name = \"no-other\"; action = \"deny\"; domains = ( { name = \"other-*\"; } ); },\n"
        "  { name = \"gpus\"; action = \"allow\"; devices = ( { class = \"0x03\"; } );\n"
        "    domains = ( { name = \"render-*\"; type = \"hvm\"; } );\n"
        "    max_devices_per_domain = 2; rdm_policy = \"relaxed\"; },\n"
        "  { name = \"nics\"; action = \"allow\"; clients = [ \"xl\", \"netops\" ];\n"
        "    devices = ( { vendor = 0x8086; } ); reset = \"if-available\"; managed = true; }\n"
        ");\n";

/*
 * The same rules with "nics" first: `prepare` follows the first rule that
 * matches the client and the device, and "no-other", a deny rule for any
 * device, would otherwise come first for netops.
 */
static const char prepare_policy[] =
        "version = 1;\n"
        "require_interrupt_remapping = true;\n"
        "clients = (\n"
        "  { name = \"xl\"; uid = 0; },\n"
        "  { name = \"render\"; uid = 1000; },\n"
        "  { name = \"netops\"; uid = 1002; },\n"
        "  { name = \"other\"; uid = 1001; }\n"
        ");\n"
        "admins = [ \"xl\" ];\n"
        "protected = ( { bdf = \"0000:00:1f.*\"; } );\n"
        "rules = (\n"
        "  { name = \"nics\"; action = \"allow\"; clients = [ \"xl\", \"netops\" ];\n"
        "    devices = ( { vendor = 0x8086; } ); reset = \"if-available\"; managed = true; },\n"
        "  { name = \"no-other\"; action = \"deny\"; domains = ( { name = \"other-*\"; } ); }\n"
        ");\n";

static const struct pgd_peer peer_root = {.uid = 0, .gid = 0, .pid = 100};
static const struct pgd_peer peer_render = {.uid = 1000, .gid = 1000, .pid = 200};
static const struct pgd_peer peer_other = {.uid = 1001, .gid = 1001, .pid = 300};
static const struct pgd_peer peer_netops = {.uid = 1002, .gid = 1002, .pid = 400};
static const struct pgd_peer peer_stranger = {.uid = 4242, .gid = 4242, .pid = 500};

struct fixture {
        char dir[PATH_MAX];
        char host[PATH_MAX + 32];
        char state[PATH_MAX + 32];
        struct pgd_daemon d;
};

static void edit_host(json_t *host, const char *key, json_t *value)
{
        json_object_set_new(host, key, value);
}

/* Write the host file atomically (the sim's writers rename into place). */
static int write_host(const char *path, const json_t *host)
{
        char tmp[PATH_MAX + 64];

        snprintf(tmp, sizeof(tmp), "%s.new", path);
        if (json_dump_file(host, tmp, JSON_INDENT(1)) < 0)
                return -EIO;
        if (rename(tmp, path) < 0)
                return -errno;
        return 0;
}

/* Set up a daemon on a fresh temp dir; host is the sim file contents, policy the text. */
static int fixture_init(struct fixture *f, const json_t *host, const char *policy)
{
        struct pg_policy_diags diags = {};
        _cleanup_(freep) char *why = NULL;
        int r;

        memset(f, 0, sizeof(*f));
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-ops.XXXXXX");
        if (!mkdtemp(f->dir))
                return -errno;
        snprintf(f->host, sizeof(f->host), "%s/host.json", f->dir);
        snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
        if (mkdir(f->state, 0700) < 0)
                return -errno;
        r = write_host(f->host, host);
        if (r < 0)
                return r;

        f->d.hv_ops = &hv_sim_ops;
        r = hv_sim_ops.open(&(struct hv_config){.sim_host = f->host}, &f->d.hv);
        if (r < 0) {
                fprintf(stderr, "hv-sim open: %s\n", strerror(-r));
                return r;
        }
        r = pg_policy_load_string(policy, "test-policy.conf", &f->d.policy, &diags);
        if (r < 0) {
                pg_policy_diags_print(&diags, stderr);
                pg_policy_diags_clear(&diags);
                return r;
        }
        pg_policy_diags_clear(&diags);
        f->d.policy_loaded = 1700000000;
        r = pgd_grants_open(f->state, &f->d.grants, &why);
        if (r < 0) {
                fprintf(stderr, "grants open: %s\n", why ? why : strerror(-r));
                return r;
        }
        return 0;
}

static int fixture_init_base(struct fixture *f)
{
        json_t *host = json_loads(base_host, 0, NULL);
        int r;

        if (!host)
                return -EINVAL;
        r = fixture_init(f, host, base_policy);
        json_decref(host);
        return r;
}

static void fixture_done(struct fixture *f)
{
        char cmd[PATH_MAX + 32];

        if (f->d.hv)
                f->d.hv = hv_sim_ops.close(f->d.hv);
        f->d.grants = pgd_grants_free(f->d.grants);
        f->d.policy = pg_policy_free(f->d.policy);
        if (f->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot remove %s\n", f->dir);
        }
}

/* A counter from the sim file's "calls": proof that a call was (not) made. */
static long calls(const struct fixture *f, const char *op)
{
        json_t *host = json_load_file(f->host, 0, NULL);
        long n;

        if (!host)
                return -1;
        n = (long)json_integer_value(json_object_get(json_object_get(host, "calls"), op));
        json_decref(host);
        return n;
}

static void set_fault(struct fixture *f, const char *op, const char *bdf, const char *errname)
{
        json_t *host = json_load_file(f->host, 0, NULL);
        json_t *faults;

        if (!host)
                return;
        faults = json_object_get(host, "faults");
        if (!json_object_get(faults, op))
                json_object_set_new(faults, op, json_object());
        if (errname)
                json_object_set_new(json_object_get(faults, op), bdf, json_string(errname));
        else
                json_object_del(json_object_get(faults, op), bdf);
        (void)write_host(f->host, host);
        json_decref(host);
}

static void remove_domain(struct fixture *f, uint32_t domid)
{
        json_t *host = json_load_file(f->host, 0, NULL);
        json_t *domains = json_object_get(host, "domains");

        for (size_t i = 0; i < json_array_size(domains); i++)
                if (json_integer_value(json_object_get(json_array_get(domains, i), "domid")) ==
                    (json_int_t)domid) {
                        json_array_remove(domains, i);
                        break;
                }
        (void)write_host(f->host, host);
        json_decref(host);
}

static uint32_t owner_of(struct fixture *f, const char *bdf)
{
        uint32_t sbdf = 0, owner = UINT32_MAX;

        if (pg_bdf_parse(bdf, &sbdf) < 0 || f->d.hv_ops->device_owner(f->d.hv, sbdf, &owner) < 0)
                return UINT32_MAX;
        return owner;
}

static void request(struct pgd_request *req, const char *op, const char *bdf, const char *domain,
                    int domid)
{
        memset(req, 0, sizeof(*req));
        req->op = op;
        req->id = 1;
        req->rdm_relaxed = -1;
        if (bdf) {
                req->has_device = pg_bdf_parse(bdf, &req->sbdf) >= 0;
                pg_bdf_format(req->sbdf, req->bdf);
        }
        req->domain = domain;
        if (domid >= 0) {
                req->has_domid = true;
                req->domid = (uint32_t)domid;
        }
}

struct outcome {
        int code;       /* 0 allowed/ok, PG_ERR_* */
        char check[32]; /* the failed check (assign: err.check) */
        char rule[128];
        char message[512];
        int hv_errno;
        json_t *reply;
};

static void outcome_clear(struct outcome *o)
{
        json_decref(o->reply);
        memset(o, 0, sizeof(*o));
}

static int run_op(struct fixture *f, pgd_op_handler h, const struct pgd_peer *peer,
                  const struct pgd_request *req, struct outcome *o)
{
        struct pgd_error err = {};
        int r;

        memset(o, 0, sizeof(*o));
        o->reply = json_pack("{s:I, s:b}", "id", (json_int_t)1, "ok", 1);
        r = pgd_request_run(&f->d, peer, req, h, o->reply, &err);
        o->code = r;
        if (r > 0) {
                snprintf(o->check, sizeof(o->check), "%s", err.check ? err.check : "");
                snprintf(o->rule, sizeof(o->rule), "%s", err.rule);
                snprintf(o->message, sizeof(o->message), "%s", err.message);
                o->hv_errno = err.hv_errno;
        }
        return r;
}

static int do_assign(struct fixture *f, const struct pgd_peer *peer, const char *bdf,
                     const char *domain, int domid, struct outcome *o)
{
        struct pgd_request req;

        request(&req, "assign", bdf, domain, domid);
        return run_op(f, pgd_op_assign, peer, &req, o);
}

static int do_release(struct fixture *f, const struct pgd_peer *peer, const char *bdf,
                      const char *domain, int domid, struct outcome *o)
{
        struct pgd_request req;

        request(&req, "release", bdf, domain, domid);
        return run_op(f, pgd_op_release, peer, &req, o);
}

/* explain's verdict as a code: 0 allow, else the PG_ERR_* it names. */
static int explain_code(const json_t *reply, const char **ret_check)
{
        const char *decision = json_string_value(json_object_get(reply, "decision"));
        json_t *checks = json_object_get(reply, "checks");
        json_t *last = json_array_get(checks, json_array_size(checks) - 1);

        *ret_check = json_string_value(json_object_get(last, "check"));
        if (decision && streq(decision, "allow"))
                return 0;
        return pg_error_lookup(json_string_value(json_object_get(reply, "error")));
}

static const char *const check_order[] = {
        "request",    "client",     "iommu", "interrupt-remapping", "domain",
        "device",     "protected",  "identity", "assignable",       "group",
        "free",       "domain-iommu", "policy", "limit",            "reset",
};

/* The checks ran in DESIGN order, every one but the last passed or skipped. */
static bool checks_well_formed(const json_t *reply, bool allowed)
{
        json_t *checks = json_object_get(reply, "checks");
        size_t n = json_array_size(checks);

        if (n == 0 || n > ELEMENTSOF(check_order))
                return false;
        for (size_t i = 0; i < n; i++) {
                json_t *c = json_array_get(checks, i);
                const char *name = json_string_value(json_object_get(c, "check"));
                const char *result = json_string_value(json_object_get(c, "result"));
                const char *detail = json_string_value(json_object_get(c, "detail"));

                if (!name || !result || !detail || !streq(name, check_order[i]))
                        return false;
                if (i + 1 == n && !allowed) {
                        if (!streq(result, "fail"))
                                return false;
                } else if (!streq(result, "pass") && !streq(result, "skip")) {
                        return false;
                }
        }
        return !allowed || n == ELEMENTSOF(check_order);
}

/*
 * Explain, then assign, the same request: both must name the same code and
 * check, explain must change nothing (no assign call, no grant), and a
 * refused assign must not have called assign either.
 */
static void expect(struct fixture *f, const struct pgd_peer *peer, const char *bdf,
                   const char *domain, int domid, int code, const char *check)
{
        struct pgd_request req;
        struct outcome ex, as;
        const char *ex_check = NULL;
        long assigns = calls(f, "assign");
        size_t grants = pgd_grants_count(f->d.grants);
        int r;

        request(&req, "explain", bdf, domain, domid);
        r = run_op(f, pgd_op_explain, peer, &req, &ex);
        CHECK_INTEQ(r, 0);
        CHECK_INTEQ(explain_code(ex.reply, &ex_check), code);
        CHECK_MSG(checks_well_formed(ex.reply, code == 0), "%s -> %s: checks out of order", bdf,
                  domain ? domain : "domid");
        if (code)
                CHECK_STREQ(ex_check, check);
        CHECK_INTEQ(calls(f, "assign"), assigns);
        CHECK_INTEQ(pgd_grants_count(f->d.grants), grants);

        r = do_assign(f, peer, bdf, domain, domid, &as);
        CHECK_MSG(r == code, "assign %s to %s: got %s (%s), expected %s", bdf,
                  domain ? domain : "domid", pg_error_name(r) ?: "ok", as.message,
                  pg_error_name(code) ?: "ok");
        if (code) {
                CHECK_STREQ(as.check, check);
                CHECK_INTEQ(calls(f, "assign"), assigns);
                CHECK_INTEQ(pgd_grants_count(f->d.grants), grants);
        } else {
                CHECK_INTEQ(calls(f, "assign"), assigns + 1);
                CHECK_INTEQ(pgd_grants_count(f->d.grants), grants + 1);
        }
        outcome_clear(&ex);
        outcome_clear(&as);
}

/* ---- one scenario per refusal code, in check order ---- */

/* What explain says besides the decision: the rule, each check's detail. */
static void test_explain_reply(void)
{
        struct fixture f;
        struct pgd_request req;
        struct outcome o;
        json_t *checks, *last;

        CHECK(fixture_init_base(&f) == 0);
        request(&req, "explain", "0000:03:00.0", "render-1", -1);
        CHECK_INTEQ(run_op(&f, pgd_op_explain, &peer_render, &req, &o), 0);
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "decision")), "allow");
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "rule")), "gpus");
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "rdm_policy")), "relaxed");
        CHECK(json_object_get(o.reply, "error") == NULL);
        checks = json_object_get(o.reply, "checks");
        last = json_array_get(checks, json_array_size(checks) - 1);
        CHECK_STREQ(json_string_value(json_object_get(last, "check")), "reset");
        CHECK_STREQ(json_string_value(json_object_get(last, "detail")), "would reset (flr)");
        CHECK_STREQ(json_string_value(json_object_get(json_array_get(checks, 0), "detail")),
                    "assign 0000:03:00.0 to render-1");
        outcome_clear(&o);
        CHECK_INTEQ(calls(&f, "reset"), 0);

        request(&req, "explain", "0000:0b:00.0", "render-1", -1);
        CHECK_INTEQ(run_op(&f, pgd_op_explain, &peer_render, &req, &o), 0);
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "decision")), "deny");
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "error")), "denied");
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "rule")), "default");
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "check")), "policy");
        outcome_clear(&o);

        /* a refusal before the policy check names no rule */
        request(&req, "explain", "0000:04:00.0", "render-1", -1);
        CHECK_INTEQ(run_op(&f, pgd_op_explain, &peer_render, &req, &o), 0);
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "error")), "not-assignable");
        CHECK(json_object_get(o.reply, "rule") == NULL);
        CHECK(strstr(json_string_value(json_object_get(o.reply, "message")) ?: "",
                     "passguard prepare 0000:04:00.0") != NULL);
        outcome_clear(&o);
        fixture_done(&f);
}

static void test_refusals(void)
{
        struct fixture f;

        CHECK(fixture_init_base(&f) == 0);
        expect(&f, &peer_stranger, "0000:03:00.0", "render-1", -1, PG_ERR_NOT_AUTHORIZED, "client");
        expect(&f, &peer_render, "0000:03:00.0", "nosuch", -1, PG_ERR_NO_SUCH_DOMAIN, "domain");
        expect(&f, &peer_render, "0000:03:00.0", NULL, 0, PG_ERR_NO_SUCH_DOMAIN, "domain");
        expect(&f, &peer_render, "0000:03:00.0", "Domain-0", -1, PG_ERR_NO_SUCH_DOMAIN, "domain");
        expect(&f, &peer_render, "0000:03:00.0", NULL, (int)HV_DOMID_IO, PG_ERR_NO_SUCH_DOMAIN,
               "domain");
        expect(&f, &peer_render, "0000:03:00.0", NULL, 42, PG_ERR_NO_SUCH_DOMAIN, "domain");
        expect(&f, &peer_render, "0000:03:00.0", "render-dying", -1, PG_ERR_DOMAIN_DYING, "domain");
        expect(&f, &peer_render, "0000:ff:00.0", "render-1", -1, PG_ERR_NO_SUCH_DEVICE, "device");
        expect(&f, &peer_root, "0000:00:1f.2", "render-1", -1, PG_ERR_PROTECTED_DEVICE,
               "protected");
        expect(&f, &peer_root, "0000:04:00.0", "render-1", -1, PG_ERR_NOT_ASSIGNABLE, "assignable");
        expect(&f, &peer_root, "0000:05:00.0", "render-1", -1, PG_ERR_NOT_ASSIGNABLE, "assignable");
        /* a dom0-driven function of the same slot */
        expect(&f, &peer_render, "0000:06:00.0", "render-1", -1, PG_ERR_GROUP_CONFLICT, "group");
        /* an IOMMU-group member owned by another guest */
        expect(&f, &peer_render, "0000:07:00.0", "render-1", -1, PG_ERR_GROUP_CONFLICT, "group");
        /* ... which is fine for that guest itself */
        expect(&f, &peer_render, "0000:07:00.0", "render-2", -1, 0, NULL);
        expect(&f, &peer_render, "0000:09:00.0", "render-1", -1, PG_ERR_BUSY, "free");
        expect(&f, &peer_render, "0000:03:00.0", "render-noiommu", -1, PG_ERR_DOMAIN_NO_IOMMU,
               "domain-iommu");
        expect(&f, &peer_render, "0000:0b:00.0", "render-1", -1, PG_ERR_DENIED, "policy");
        expect(&f, &peer_root, "0000:03:00.0", "other-1", -1, PG_ERR_DENIED, "policy");
        expect(&f, &peer_render, "0000:0a:00.0", "render-1", -1, PG_ERR_RESET_FAILED, "reset");
        /* the deny names the rule that decided */
        struct outcome o;
        do_assign(&f, &peer_root, "0000:03:00.0", "other-1", -1, &o);
        CHECK_STREQ(o.rule, "no-other");
        outcome_clear(&o);
        do_assign(&f, &peer_render, "0000:0b:00.0", "render-1", -1, &o);
        CHECK_STREQ(o.rule, "default");
        outcome_clear(&o);

        /* limit: two GPUs per render domain, the third is refused */
        expect(&f, &peer_render, "0000:03:00.0", "render-1", -1, 0, NULL);
        expect(&f, &peer_render, "0000:0c:00.0", NULL, 5, 0, NULL);
        expect(&f, &peer_render, "0000:0d:00.0", "render-1", -1, PG_ERR_LIMIT_REACHED, "limit");
        /* busy from the store: the same domain, and another one */
        expect(&f, &peer_render, "03:00.0", "render-1", -1, PG_ERR_BUSY, "free");
        expect(&f, &peer_render, "0000:03:00.0", "render-2", -1, PG_ERR_BUSY, "free");

        /* a reset was performed for each of the three grants, none for explain */
        CHECK_INTEQ(calls(&f, "reset"), 3);
        fixture_done(&f);
}

/* No IOMMU: refused before anything else, and no hypervisor call is ever made. */
static void test_no_iommu(void)
{
        json_t *host = json_loads(base_host, 0, NULL);
        struct fixture f;

        edit_host(host, "iommu", json_false());
        CHECK(fixture_init(&f, host, base_policy) == 0);
        expect(&f, &peer_render, "0000:03:00.0", "render-1", -1, PG_ERR_NO_IOMMU, "iommu");
        expect(&f, &peer_root, "0000:04:00.0", "render-noiommu", -1, PG_ERR_NO_IOMMU, "iommu");
        CHECK_INTEQ(calls(&f, "assign"), 0);
        CHECK_INTEQ(calls(&f, "test_assign"), 0);
        fixture_done(&f);

        /* A host that claims an IOMMU but whose test-assign says EOPNOTSUPP: no-iommu too. */
        CHECK(fixture_init_base(&f) == 0);
        set_fault(&f, "test_assign", "0000:03:00.0", "EOPNOTSUPP");
        expect(&f, &peer_render, "0000:03:00.0", "render-1", -1, PG_ERR_NO_IOMMU, "free");
        set_fault(&f, "test_assign", "0000:03:00.0", "ENOSYS");
        expect(&f, &peer_render, "0000:03:00.0", "render-1", -1, PG_ERR_NO_IOMMU, "free");
        CHECK_INTEQ(calls(&f, "assign"), 0);
        fixture_done(&f);
        json_decref(host);
}

static void test_interrupt_remapping(void)
{
        json_t *host = json_loads(base_host, 0, NULL);
        struct fixture f;
        char *lax = NULL;

        edit_host(host, "interrupt_remapping", json_false());
        CHECK(fixture_init(&f, host, base_policy) == 0);
        expect(&f, &peer_render, "0000:03:00.0", "render-1", -1, PG_ERR_NO_INTERRUPT_REMAPPING,
               "interrupt-remapping");
        fixture_done(&f);

        /* not required by the policy: the check is skipped and the grant goes through */
        CHECK(asprintf(&lax, "%s", base_policy) > 0);
        memcpy(strstr(lax, "= true;"), "=false;", 7);
        CHECK(fixture_init(&f, host, lax) == 0);
        expect(&f, &peer_render, "0000:03:00.0", "render-1", -1, 0, NULL);
        fixture_done(&f);
        free(lax);
        json_decref(host);
}

/* The hypervisor's own answer to the assign call is the final word. */
static void test_hypervisor_answers(void)
{
        struct fixture f;
        struct outcome o;

        CHECK(fixture_init_base(&f) == 0);
        set_fault(&f, "assign", "0000:03:00.0", "EIO");
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_HYPERVISOR_ERROR);
        CHECK_INTEQ(o.hv_errno, EIO);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);
        CHECK_INTEQ(calls(&f, "assign"), 1);
        outcome_clear(&o);

        set_fault(&f, "assign", "0000:03:00.0", "EBUSY");
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), PG_ERR_BUSY);
        outcome_clear(&o);

        set_fault(&f, "assign", "0000:03:00.0", "ENODEV");
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_NO_SUCH_DEVICE);
        outcome_clear(&o);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);

        /* an IOMMU group the hypervisor cannot tell: no IOMMU */
        set_fault(&f, "device_group", "0000:0d:00.0", "EOPNOTSUPP");
        expect(&f, &peer_render, "0000:0d:00.0", "render-1", -1, PG_ERR_NO_IOMMU, "group");
        set_fault(&f, "device_group", "0000:0d:00.0", "EIO");
        expect(&f, &peer_render, "0000:0d:00.0", "render-1", -1, PG_ERR_HYPERVISOR_ERROR, "group");

        set_fault(&f, "test_assign", "0000:0c:00.0", "EIO");
        expect(&f, &peer_render, "0000:0c:00.0", "render-1", -1, PG_ERR_HYPERVISOR_ERROR, "free");

        /* a failing reset refuses the grant before any assign call */
        set_fault(&f, "reset", "0000:07:00.0", "EIO");
        long before = calls(&f, "assign");
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:07:00.0", "render-2", -1, &o),
                    PG_ERR_RESET_FAILED);
        CHECK_INTEQ(calls(&f, "assign"), before);
        outcome_clear(&o);
        fixture_done(&f);
}

/* A successful grant: the reply, the hypervisor, and the store on disk agree. */
static void test_grant(void)
{
        struct fixture f;
        struct outcome o;
        struct pgd_request req;
        struct pgd_grants *again = NULL;
        _cleanup_(freep) char *why = NULL;
        json_t *g;

        CHECK(fixture_init_base(&f) == 0);
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), 0);
        g = json_object_get(o.reply, "grant");
        CHECK_STREQ(json_string_value(json_object_get(g, "device")), "0000:03:00.0");
        CHECK_INTEQ(json_integer_value(json_object_get(g, "domid")), 5);
        CHECK_STREQ(json_string_value(json_object_get(g, "domain_uuid")), UUID_R1);
        CHECK_STREQ(json_string_value(json_object_get(g, "rule")), "gpus");
        CHECK_STREQ(json_string_value(json_object_get(g, "rdm_policy")), "relaxed");
        CHECK_INTEQ(json_integer_value(json_object_get(g, "client_uid")), 1000);
        outcome_clear(&o);
        CHECK_INTEQ(owner_of(&f, "0000:03:00.0"), 5);
        CHECK(pgd_grants_open(f.state, &again, &why) == 0);
        CHECK_INTEQ(again ? pgd_grants_count(again) : 0, 1);
        again = pgd_grants_free(again);

        /* a request may only make RDM stricter */
        request(&req, "assign", "0000:0c:00.0", "render-1", -1);
        req.rdm_relaxed = 0;
        CHECK_INTEQ(run_op(&f, pgd_op_assign, &peer_render, &req, &o), 0);
        g = json_object_get(o.reply, "grant");
        CHECK_STREQ(json_string_value(json_object_get(g, "rdm_policy")), "strict");
        outcome_clear(&o);
        /* ... never laxer than its rule */
        request(&req, "assign", "0000:0e:00.0", "render-2", -1);
        req.rdm_relaxed = 1;
        CHECK_INTEQ(run_op(&f, pgd_op_assign, &peer_root, &req, &o), 0);
        g = json_object_get(o.reply, "grant");
        CHECK_STREQ(json_string_value(json_object_get(g, "rule")), "nics");
        CHECK_STREQ(json_string_value(json_object_get(g, "rdm_policy")), "strict");
        outcome_clear(&o);

        /* owner */
        request(&req, "owner", "0000:03:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_owner, &peer_render, &req, &o), 0);
        CHECK(json_is_true(json_object_get(o.reply, "assigned")));
        CHECK(json_is_true(json_object_get(o.reply, "granted")));
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "domid")), 5);
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "domain")), "render-1");
        CHECK(json_is_object(json_object_get(o.reply, "grant")));
        outcome_clear(&o);
        request(&req, "owner", "0000:09:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_owner, &peer_render, &req, &o), 0);
        CHECK(json_is_true(json_object_get(o.reply, "assigned")));
        CHECK(json_is_false(json_object_get(o.reply, "granted")));
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "domid")), 6);
        outcome_clear(&o);
        request(&req, "owner", "0000:0d:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_owner, &peer_render, &req, &o), 0);
        CHECK(json_is_false(json_object_get(o.reply, "assigned")));
        CHECK(json_is_true(json_object_get(o.reply, "quarantined")));
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "driver")), "pciback");
        outcome_clear(&o);
        request(&req, "owner", "0000:ff:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_owner, &peer_render, &req, &o), PG_ERR_NO_SUCH_DEVICE);
        outcome_clear(&o);

        /* status and list */
        request(&req, "status", NULL, NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_status, &peer_render, &req, &o), 0);
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "backend")), "sim");
        CHECK(json_is_true(json_object_get(o.reply, "iommu")));
        CHECK(json_is_true(json_object_get(o.reply, "interrupt_remapping")));
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "grants")), 3);
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "rules")), 3);
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "version")), PG_VERSION);
        outcome_clear(&o);

        request(&req, "list", NULL, NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_list, &peer_render, &req, &o), 0);
        json_t *grants = json_object_get(o.reply, "grants");
        json_t *assignable = json_object_get(o.reply, "assignable");
        CHECK_INTEQ(json_array_size(grants), 3);
        bool has_0d = false, has_03 = false, has_1f = false;
        for (size_t i = 0; i < json_array_size(assignable); i++) {
                json_t *a = json_array_get(assignable, i);
                const char *dev = json_string_value(json_object_get(a, "device"));
                if (streq_ptr(dev, "0000:0d:00.0")) {
                        has_0d = true;
                        CHECK_STREQ(json_string_value(json_object_get(a, "vendor")), "0x10de");
                        CHECK_STREQ(json_string_value(json_object_get(a, "class")), "0x030000");
                }
                has_03 |= streq_ptr(dev, "0000:03:00.0");
                has_1f |= streq_ptr(dev, "0000:00:1f.2");
        }
        CHECK(has_0d);
        CHECK(!has_03); /* granted */
        CHECK(!has_1f); /* protected and not pciback */
        outcome_clear(&o);
        fixture_done(&f);
}

static void test_release(void)
{
        struct fixture f;
        struct outcome o;

        CHECK(fixture_init_base(&f) == 0);
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_NOT_ASSIGNED);
        outcome_clear(&o);
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);

        /* the wrong domain */
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:03:00.0", "render-2", -1, &o),
                    PG_ERR_NOT_ASSIGNED);
        outcome_clear(&o);
        /*
         * another, non-admin client: refused before anything about the grant
         * is said, whatever domain it names, so it learns neither the domain
         * nor the client that holds the device
         */
        CHECK_INTEQ(do_release(&f, &peer_other, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_NOT_AUTHORIZED);
        char first[sizeof(o.message)];
        snprintf(first, sizeof(first), "%s", o.message);
        outcome_clear(&o);
        static const char *const probes[] = {"render-2", "nosuch", "other-1"};
        for (size_t i = 0; i < ELEMENTSOF(probes); i++) {
                CHECK_INTEQ(do_release(&f, &peer_other, "0000:03:00.0", probes[i], -1, &o),
                            PG_ERR_NOT_AUTHORIZED);
                CHECK_STREQ(o.message, first);
                outcome_clear(&o);
        }
        CHECK_INTEQ(do_release(&f, &peer_other, "0000:03:00.0", NULL, 5, &o),
                    PG_ERR_NOT_AUTHORIZED);
        CHECK_STREQ(o.message, first);
        outcome_clear(&o);
        CHECK(strstr(first, "render-1") == NULL && strstr(first, "domid") == NULL &&
              strstr(first, "1000") == NULL);
        /* an admin who names the wrong domain is told where the grant is */
        CHECK_INTEQ(do_release(&f, &peer_root, "0000:03:00.0", "render-2", -1, &o),
                    PG_ERR_NOT_ASSIGNED);
        CHECK(strstr(o.message, "render-1") != NULL);
        outcome_clear(&o);
        CHECK_INTEQ(owner_of(&f, "0000:03:00.0"), 5);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 1);

        /* the granting client, by domid; the device goes back to quarantine */
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:03:00.0", NULL, 5, &o), 0);
        outcome_clear(&o);
        CHECK_INTEQ(owner_of(&f, "0000:03:00.0"), HV_DOMID_IO);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);
        CHECK_INTEQ(calls(&f, "deassign"), 1);

        /* an admin may release anyone's grant */
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);
        CHECK_INTEQ(do_release(&f, &peer_root, "0000:03:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);

        /* the domain is gone: release by the recorded name still works */
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:0c:00.0", "render-2", -1, &o), 0);
        outcome_clear(&o);
        remove_domain(&f, 6);
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:0c:00.0", "render-2", -1, &o), 0);
        outcome_clear(&o);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);
        CHECK_INTEQ(owner_of(&f, "0000:0c:00.0"), HV_DOMID_IO);
        fixture_done(&f);
}

/*
 * Make the state directory unwritable, even for root: move it away and put a
 * regular file at its path, so creating the temporary file fails with
 * ENOTDIR whatever the permissions. Returns the path it was moved to.
 */
static void break_state_dir(struct fixture *f, char *moved, size_t size)
{
        int fd;

        snprintf(moved, size, "%s.moved", f->state);
        CHECK(rename(f->state, moved) == 0);
        fd = open(f->state, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        if (fd >= 0)
                close(fd);
}

static void repair_state_dir(struct fixture *f, const char *moved)
{
        CHECK(unlink(f->state) == 0);
        CHECK(rename(moved, f->state) == 0);
}

/* The fixture whose state directory the next assign breaks, once the hypervisor said yes. */
static struct fixture *break_after_assign;
static char break_after_assign_moved[PATH_MAX + 64];

static int assign_then_break_state(struct hv *hv, uint32_t domid, uint32_t sbdf, bool relaxed)
{
        int r = hv_sim_ops.assign(hv, domid, sbdf, relaxed);

        break_state_dir(break_after_assign, break_after_assign_moved,
                        sizeof(break_after_assign_moved));
        return r;
}

static json_int_t pending_rollbacks(struct fixture *f)
{
        struct pgd_request req;
        struct outcome o;
        json_int_t n;

        request(&req, "status", NULL, NULL, -1);
        CHECK_INTEQ(run_op(f, pgd_op_status, &peer_root, &req, &o), 0);
        n = json_integer_value(json_object_get(o.reply, "pending_rollbacks"));
        outcome_clear(&o);
        return n;
}

static void test_rollback(void)
{
        static struct hv_ops ops;
        char moved[PATH_MAX + 64];
        struct fixture f;
        struct outcome o;

        CHECK(fixture_init_base(&f) == 0);
        /* the intent cannot be recorded: the hypervisor is never asked */
        break_state_dir(&f, moved, sizeof(moved));
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_STATE_ERROR);
        outcome_clear(&o);
        CHECK_INTEQ(calls(&f, "assign"), 0);
        CHECK_INTEQ(owner_of(&f, "0000:03:00.0"), HV_DOMID_IO);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);
        repair_state_dir(&f, moved);

        /* the grant cannot be recorded after the hypervisor's yes */
        ops = hv_sim_ops;
        ops.assign = assign_then_break_state;
        f.d.hv_ops = &ops;
        break_after_assign = &f;
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_STATE_ERROR);
        outcome_clear(&o);
        f.d.hv_ops = &hv_sim_ops;
        /* the hypervisor was asked, then rolled back: the device is quarantined again */
        CHECK_INTEQ(calls(&f, "assign"), 1);
        CHECK_INTEQ(calls(&f, "deassign"), 1);
        CHECK_INTEQ(owner_of(&f, "0000:03:00.0"), HV_DOMID_IO);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);
        repair_state_dir(&f, break_after_assign_moved);

        /*
         * ... and the rollback fails too: the device stays with the domain, the
         * intent stays open (a restart would roll it back), status counts it,
         * and the retry puts the device into quarantine once it can.
         */
        set_fault(&f, "deassign", "0000:0c:00.0", "EBUSY");
        f.d.hv_ops = &ops;
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:0c:00.0", "render-1", -1, &o),
                    PG_ERR_STATE_ERROR);
        outcome_clear(&o);
        f.d.hv_ops = &hv_sim_ops;
        CHECK_INTEQ(owner_of(&f, "0000:0c:00.0"), 5);
        CHECK_INTEQ(pending_rollbacks(&f), 1);
        CHECK_INTEQ(pgd_grants_n_intents(f.d.grants), 1);
        CHECK_INTEQ(pgd_commit_retry_rollbacks(&f.d), 1);
        CHECK_INTEQ(owner_of(&f, "0000:0c:00.0"), 5);
        repair_state_dir(&f, break_after_assign_moved);
        set_fault(&f, "deassign", "0000:0c:00.0", NULL);
        CHECK_INTEQ(pgd_commit_retry_rollbacks(&f.d), 0);
        CHECK_INTEQ(owner_of(&f, "0000:0c:00.0"), HV_DOMID_IO);
        CHECK_INTEQ(pending_rollbacks(&f), 0);
        CHECK_INTEQ(pgd_grants_n_intents(f.d.grants), 0);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 0);

        /* the store is still consistent: the same assign now works */
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);

        /* release cannot be recorded: the device goes back to its domain */
        break_state_dir(&f, moved, sizeof(moved));
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_STATE_ERROR);
        outcome_clear(&o);
        CHECK_INTEQ(owner_of(&f, "0000:03:00.0"), 5);
        CHECK_INTEQ(pgd_grants_count(f.d.grants), 1);
        repair_state_dir(&f, moved);
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);
        fixture_done(&f);
}

/*
 * The store on disk (grants.json and its journal, loaded as at start-up) is
 * exactly what the store in memory would write.
 */
static bool disk_matches_memory(struct fixture *f)
{
        struct pgd_grants *disk = NULL;
        char *text = NULL, *again = NULL;
        size_t len = 0, len2 = 0;
        bool same;

        if (pgd_grants_format(f->d.grants, &text, &len) < 0 ||
            pgd_grants_open(f->state, &disk, NULL) < 0 ||
            pgd_grants_format(disk, &again, &len2) < 0) {
                free(text);
                pgd_grants_free(disk);
                return false;
        }
        same = len == len2 && memcmp(text, again, len) == 0;
        free(text);
        free(again);
        pgd_grants_free(disk);
        return same;
}

static bool status_state_ok(struct fixture *f)
{
        struct pgd_request req;
        struct outcome o;
        bool ok;

        request(&req, "status", NULL, NULL, -1);
        CHECK_INTEQ(run_op(f, pgd_op_status, &peer_root, &req, &o), 0);
        CHECK(json_is_boolean(json_object_get(o.reply, "state_ok")));
        ok = json_is_true(json_object_get(o.reply, "state_ok"));
        outcome_clear(&o);
        return ok;
}

/*
 * A commit that fails, and whose rollback cannot be written either, leaves
 * the store broken: every state-changing op retries the commit first and is
 * refused state-error, before any hypervisor call, until the store can be
 * written; then the file matches memory again.
 */
static void test_state_broken(void)
{
        char moved[PATH_MAX + 64];
        struct pgd_request req;
        struct fixture f;
        struct outcome o;
        long assigns, deassigns;

        CHECK(fixture_init_base(&f) == 0);
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);
        CHECK(status_state_ok(&f));

        break_state_dir(&f, moved, sizeof(moved));
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:0c:00.0", "render-1", -1, &o),
                    PG_ERR_STATE_ERROR);
        outcome_clear(&o);
        CHECK_INTEQ(owner_of(&f, "0000:0c:00.0"), HV_DOMID_IO);
        CHECK(f.d.state_broken);
        CHECK(!status_state_ok(&f));
        assigns = calls(&f, "assign");
        deassigns = calls(&f, "deassign");

        /* broken: refused before the hypervisor is asked anything */
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:0d:00.0", "render-1", -1, &o),
                    PG_ERR_STATE_ERROR);
        CHECK(strncmp(o.message, "the grant store cannot be written: ", 35) == 0);
        outcome_clear(&o);
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o),
                    PG_ERR_STATE_ERROR);
        CHECK(strncmp(o.message, "the grant store cannot be written: ", 35) == 0);
        outcome_clear(&o);
        request(&req, "prepare", "0000:04:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_root, &req, &o), PG_ERR_STATE_ERROR);
        outcome_clear(&o);
        request(&req, "unprepare", "0000:0e:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_unprepare, &peer_root, &req, &o), PG_ERR_STATE_ERROR);
        outcome_clear(&o);
        CHECK_INTEQ(calls(&f, "assign"), assigns);
        CHECK_INTEQ(calls(&f, "deassign"), deassigns);
        CHECK_INTEQ(calls(&f, "quarantine"), 0);
        CHECK_INTEQ(calls(&f, "unquarantine"), 0);
        CHECK_INTEQ(owner_of(&f, "0000:03:00.0"), 5);
        CHECK_INTEQ(owner_of(&f, "0000:0d:00.0"), HV_DOMID_IO);
        /* reading ops still answer */
        request(&req, "explain", "0000:0d:00.0", "render-1", -1);
        CHECK_INTEQ(run_op(&f, pgd_op_explain, &peer_render, &req, &o), 0);
        outcome_clear(&o);

        /* writable again: the next change writes the store first, then goes through */
        repair_state_dir(&f, moved);
        CHECK_INTEQ(do_release(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);
        CHECK(!f.d.state_broken);
        CHECK(status_state_ok(&f));
        CHECK(disk_matches_memory(&f));
        CHECK_INTEQ(do_assign(&f, &peer_render, "0000:0d:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);
        CHECK(disk_matches_memory(&f));
        fixture_done(&f);
}

/* A host whose owner lookup fails with EIO. */
static int owner_eio(struct hv *hv, uint32_t sbdf, uint32_t *ret_domid)
{
        (void)hv;
        (void)sbdf;
        (void)ret_domid;
        return -EIO;
}

/*
 * prepare and unprepare never move a device between drivers when the
 * hypervisor cannot say who owns it: it might be a guest's.
 */
static void test_prepare_owner_unknown(void)
{
        static struct hv_ops ops;
        struct hv_pci_info info;
        struct pgd_request req;
        struct fixture f;
        struct outcome o;

        ops = hv_sim_ops;
        ops.device_owner = owner_eio;
        CHECK(fixture_init_base(&f) == 0);
        f.d.hv_ops = &ops;

        request(&req, "prepare", "0000:04:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_root, &req, &o), PG_ERR_HYPERVISOR_ERROR);
        CHECK_INTEQ(o.hv_errno, EIO);
        outcome_clear(&o);
        request(&req, "unprepare", "0000:0e:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_unprepare, &peer_root, &req, &o), PG_ERR_HYPERVISOR_ERROR);
        CHECK_INTEQ(o.hv_errno, EIO);
        outcome_clear(&o);

        f.d.hv_ops = &hv_sim_ops;
        CHECK_INTEQ(calls(&f, "quarantine"), 0);
        CHECK_INTEQ(calls(&f, "unquarantine"), 0);
        CHECK(f.d.hv_ops->pci_info(f.d.hv, PG_SBDF(0, 4, 0, 0), &info) == 0);
        CHECK_STREQ(info.driver, "e1000");
        CHECK(f.d.hv_ops->pci_info(f.d.hv, PG_SBDF(0, 0xe, 0, 0), &info) == 0);
        CHECK_STREQ(info.driver, "pciback");
        CHECK_INTEQ(owner_of(&f, "0000:04:00.0"), HV_DOMID_DOM0);
        CHECK_INTEQ(owner_of(&f, "0000:0e:00.0"), HV_DOMID_IO);
        fixture_done(&f);
}

/*
 * A list reply fits one wire message: grants first, then assignable devices,
 * as many as fit, with "truncated" and the totals.
 */
static void test_list_truncated(void)
{
        struct pgd_request req;
        struct fixture f;
        struct outcome o;
        char *text = NULL;
        size_t len = 0;

        CHECK(fixture_init_base(&f) == 0);
        request(&req, "list", NULL, NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_list, &peer_render, &req, &o), 0);
        CHECK(json_is_false(json_object_get(o.reply, "truncated")));
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "grant_count")), 0);
        size_t assignable = json_array_size(json_object_get(o.reply, "assignable"));
        CHECK(assignable > 0);
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "assignable_count")), assignable);
        outcome_clear(&o);

        /* 600 grants (about 150 KiB) in the store */
        for (unsigned i = 0; i < 600; i++) {
                struct pgd_grant g = {
                        .sbdf = PG_SBDF(1, 0x20 + i / 32, (i / 8) % 4, i % 8),
                        .domid = 5,
                        .client_uid = 1000,
                        .client_pid = 200,
                        .rdm_policy = PG_POLICY_RDM_STRICT,
                        .time = 1700000000,
                };
                snprintf(g.domain_uuid, sizeof(g.domain_uuid), "%s", UUID_R1);
                snprintf(g.domain_name, sizeof(g.domain_name), "render-1");
                snprintf(g.rule, sizeof(g.rule), "gpus");
                CHECK_INTEQ(pgd_grants_add(f.d.grants, &g), 0);
        }
        CHECK_INTEQ(run_op(&f, pgd_op_list, &peer_render, &req, &o), 0);
        CHECK(json_is_true(json_object_get(o.reply, "truncated")));
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "grant_count")), 600);
        size_t shown = json_array_size(json_object_get(o.reply, "grants"));
        CHECK_MSG(shown > 100 && shown < 600, "%zu grants shown", shown);
        /* the first ones, in order */
        CHECK_STREQ(json_string_value(json_object_get(
                            json_array_get(json_object_get(o.reply, "grants"), 0), "device")),
                    "0001:20:00.0");
        /* no device before every grant */
        CHECK_INTEQ(json_array_size(json_object_get(o.reply, "assignable")), 0);
        CHECK_INTEQ(json_integer_value(json_object_get(o.reply, "assignable_count")), assignable);
        /* the whole reply goes on the wire */
        CHECK_INTEQ(pg_wire_dump(o.reply, &text, &len), 0);
        CHECK(text && len <= PG_WIRE_MAX_MESSAGE);
        free(text);
        outcome_clear(&o);
        fixture_done(&f);
}

/* Capture stderr, where the audit records go as one line each under debug. */
struct capture {
        int saved;
        FILE *file;
};

static void capture_begin(struct capture *c)
{
        fflush(stderr);
        c->file = tmpfile();
        c->saved = dup(STDERR_FILENO);
        if (c->file)
                dup2(fileno(c->file), STDERR_FILENO);
}

/* The number of audit records written since capture_begin(); the last into last. */
static int capture_end(struct capture *c, char *last, size_t size)
{
        char line[2048];
        int n = 0;

        fflush(stderr);
        dup2(c->saved, STDERR_FILENO);
        close(c->saved);
        if (last)
                last[0] = '\0';
        if (!c->file)
                return -1;
        rewind(c->file);
        while (fgets(line, sizeof(line), c->file))
                if (strncmp(line, "passguardd: audit:", 18) == 0) {
                        n++;
                        if (last)
                                snprintf(last, size, "%s", line);
                }
        fclose(c->file);
        return n;
}

/* Exactly one audit record per decision, and none for explain. */
static void test_audit(void)
{
        char moved[PATH_MAX + 64], last[2048];
        struct pgd_request req;
        struct capture cap;
        struct fixture f;
        struct outcome o;

        CHECK(fixture_init_base(&f) == 0);
        f.d.cfg.debug = true;

        capture_begin(&cap);
        do_assign(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o);
        CHECK_INTEQ(capture_end(&cap, last, sizeof(last)), 1);
        CHECK(strstr(last, "kind=grant op=assign device=0000:03:00.0 domid=5") != NULL);
        CHECK(strstr(last, "rule=gpus decision=granted") != NULL);
        outcome_clear(&o);

        capture_begin(&cap);
        do_assign(&f, &peer_stranger, "0000:0c:00.0", "render-1", -1, &o);
        CHECK_INTEQ(capture_end(&cap, last, sizeof(last)), 1);
        CHECK(strstr(last, "decision=refused error=not-authorized") != NULL);
        outcome_clear(&o);

        capture_begin(&cap);
        do_assign(&f, &peer_render, "0000:0b:00.0", "render-1", -1, &o);
        CHECK_INTEQ(capture_end(&cap, last, sizeof(last)), 1);
        CHECK(strstr(last, "rule=default decision=refused error=denied") != NULL);
        outcome_clear(&o);

        set_fault(&f, "assign", "0000:0c:00.0", "EIO");
        capture_begin(&cap);
        do_assign(&f, &peer_render, "0000:0c:00.0", "render-1", -1, &o);
        CHECK_INTEQ(capture_end(&cap, last, sizeof(last)), 1);
        CHECK(strstr(last, "error=hypervisor-error") != NULL);
        outcome_clear(&o);

        break_state_dir(&f, moved, sizeof(moved));
        capture_begin(&cap);
        do_assign(&f, &peer_render, "0000:0d:00.0", "render-1", -1, &o);
        CHECK_INTEQ(capture_end(&cap, last, sizeof(last)), 1);
        CHECK(strstr(last, "error=state-error") != NULL);
        outcome_clear(&o);
        repair_state_dir(&f, moved);

        capture_begin(&cap);
        request(&req, "explain", "0000:0d:00.0", "render-1", -1);
        run_op(&f, pgd_op_explain, &peer_render, &req, &o);
        CHECK_INTEQ(capture_end(&cap, NULL, 0), 0);
        outcome_clear(&o);

        capture_begin(&cap);
        do_release(&f, &peer_render, "0000:03:00.0", "render-1", -1, &o);
        CHECK_INTEQ(capture_end(&cap, last, sizeof(last)), 1);
        CHECK(strstr(last, "kind=release op=release device=0000:03:00.0") != NULL);
        outcome_clear(&o);

        capture_begin(&cap);
        request(&req, "prepare", "0000:04:00.0", NULL, -1);
        run_op(&f, pgd_op_prepare, &peer_root, &req, &o);
        CHECK_INTEQ(capture_end(&cap, last, sizeof(last)), 1);
        CHECK(strstr(last, "op=prepare device=0000:04:00.0") != NULL);
        outcome_clear(&o);
        fixture_done(&f);
}

static void test_prepare(void)
{
        struct fixture f;
        struct outcome o;
        struct pgd_request req;
        struct hv_pci_info info;
        uint32_t sbdf;
        json_t *host;

        /* the base policy's "no-other" deny comes before "nics" for netops: refused */
        CHECK(fixture_init_base(&f) == 0);
        request(&req, "prepare", "0000:04:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_netops, &req, &o), PG_ERR_NOT_AUTHORIZED);
        outcome_clear(&o);
        CHECK_INTEQ(calls(&f, "quarantine"), 0);
        fixture_done(&f);

        host = json_loads(base_host, 0, NULL);
        CHECK(fixture_init(&f, host, prepare_policy) == 0);
        json_decref(host);
        /* a plain client without a managed rule */
        request(&req, "prepare", "0000:04:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_render, &req, &o), PG_ERR_NOT_AUTHORIZED);
        outcome_clear(&o);
        CHECK_INTEQ(calls(&f, "quarantine"), 0);
        /* a client of a managed rule */
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_netops, &req, &o), 0);
        CHECK_STREQ(json_string_value(json_object_get(o.reply, "previous_driver")), "e1000");
        CHECK(json_is_true(json_object_get(o.reply, "quarantined")));
        outcome_clear(&o);
        CHECK_INTEQ(owner_of(&f, "0000:04:00.0"), HV_DOMID_IO);
        CHECK_STREQ(pgd_grants_prepared_driver(f.d.grants, req.sbdf), "e1000");
        /* idempotent */
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_root, &req, &o), 0);
        CHECK(json_is_true(json_object_get(o.reply, "already_prepared")));
        outcome_clear(&o);
        CHECK_INTEQ(calls(&f, "quarantine"), 1);
        /* now assignable */
        expect(&f, &peer_root, "0000:04:00.0", "render-1", -1, 0, NULL);
        /* a granted device cannot be unprepared */
        request(&req, "unprepare", "0000:04:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_unprepare, &peer_root, &req, &o), PG_ERR_BUSY);
        outcome_clear(&o);
        CHECK_INTEQ(do_release(&f, &peer_root, "0000:04:00.0", "render-1", -1, &o), 0);
        outcome_clear(&o);
        /* unprepare gives it back to e1000 */
        CHECK_INTEQ(run_op(&f, pgd_op_unprepare, &peer_root, &req, &o), 0);
        outcome_clear(&o);
        CHECK(pg_bdf_parse("0000:04:00.0", &sbdf) == 0);
        CHECK(f.d.hv_ops->pci_info(f.d.hv, sbdf, &info) == 0);
        CHECK_STREQ(info.driver, "e1000");
        CHECK_INTEQ(owner_of(&f, "0000:04:00.0"), HV_DOMID_DOM0);
        CHECK(pgd_grants_prepared_driver(f.d.grants, sbdf) == NULL);

        /* protected, and missing, devices */
        request(&req, "prepare", "0000:00:1f.2", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_root, &req, &o), PG_ERR_PROTECTED_DEVICE);
        outcome_clear(&o);
        request(&req, "prepare", "0000:ff:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_root, &req, &o), PG_ERR_NO_SUCH_DEVICE);
        outcome_clear(&o);
        fixture_done(&f);

        /* no IOMMU, no quarantine */
        host = json_loads(base_host, 0, NULL);
        edit_host(host, "iommu", json_false());
        CHECK(fixture_init(&f, host, base_policy) == 0);
        request(&req, "prepare", "0000:04:00.0", NULL, -1);
        CHECK_INTEQ(run_op(&f, pgd_op_prepare, &peer_root, &req, &o), PG_ERR_NO_IOMMU);
        outcome_clear(&o);
        CHECK_INTEQ(calls(&f, "quarantine"), 0);
        fixture_done(&f);
        json_decref(host);
}

/* explain and assign agree on every cell of domains x devices x clients. */
static void test_matrix(void)
{
        static const char *const domains[] = {"render-1",       "render-2", "render-dying",
                                              "render-noiommu", "other-1",  "Domain-0",
                                              "nosuch"};
        static const char *const devices[] = {"0000:03:00.0", "0000:04:00.0", "0000:05:00.0",
                                              "0000:00:1f.2", "0000:06:00.0", "0000:09:00.0",
                                              "0000:0a:00.0", "0000:0b:00.0", "0000:0e:00.0"};
        const struct pgd_peer *peers[] = {&peer_render, &peer_root, &peer_stranger};
        unsigned cells = 0, allowed = 0;

        for (size_t i = 0; i < ELEMENTSOF(domains); i++)
                for (size_t j = 0; j < ELEMENTSOF(devices); j++)
                        for (size_t k = 0; k < ELEMENTSOF(peers); k++) {
                                struct fixture f;
                                struct pgd_request req;
                                struct outcome ex, as;
                                const char *ex_check = NULL;
                                int ex_code;

                                if (fixture_init_base(&f) < 0) {
                                        CHECK(!"fixture");
                                        fixture_done(&f);
                                        return;
                                }
                                request(&req, "explain", devices[j], domains[i], -1);
                                CHECK_INTEQ(run_op(&f, pgd_op_explain, peers[k], &req, &ex), 0);
                                ex_code = explain_code(ex.reply, &ex_check);
                                CHECK_INTEQ(calls(&f, "assign"), 0);
                                do_assign(&f, peers[k], devices[j], domains[i], -1, &as);
                                CHECK_MSG(as.code == ex_code,
                                          "%s -> %s (uid %u): explain %s, assign %s", devices[j],
                                          domains[i], (unsigned)peers[k]->uid,
                                          pg_error_name(ex_code) ?: "allow",
                                          pg_error_name(as.code) ?: "ok");
                                if (ex_code)
                                        CHECK_STREQ(as.check, ex_check);
                                CHECK_INTEQ(calls(&f, "assign"), ex_code == 0 ? 1 : 0);
                                cells++;
                                allowed += ex_code == 0;
                                outcome_clear(&ex);
                                outcome_clear(&as);
                                fixture_done(&f);
                        }
        /* the matrix is not trivially all-deny or all-allow */
        CHECK(allowed > 0 && allowed < cells);
        printf("matrix: %u cells, %u allowed\n", cells, allowed);
}

int main(void)
{
        test_explain_reply();
        test_refusals();
        test_no_iommu();
        test_interrupt_remapping();
        test_hypervisor_answers();
        test_grant();
        test_release();
        test_rollback();
        test_state_broken();
        test_prepare();
        test_prepare_owner_unknown();
        test_list_truncated();
        test_audit();
        test_matrix();
        return harness_exit();
}
