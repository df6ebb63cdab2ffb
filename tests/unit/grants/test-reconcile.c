/* SPDX-License-Identifier: MIT */
/*
 * Reconciliation against the real simulated host (hv-sim, a JSON host file in
 * a temporary directory): start-up, domain death and --rebuild-state
 * (DESIGN.md invariants 5 and 7). Audit records are checked through the
 * --debug stderr lines, whose format is a contract.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "grants.h"
#include "harness.h"
#include "hv.h"
#include "pg-wire.h"
#include "pgd.h"
#include "reconcile.h"
#include "testutil.h"

#define UUID0 "00000000-0000-0000-0000-000000000000"
#define UUID5 "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f"
#define UUID5B "b00c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f"
#define UUID6 "6a0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e60"

#define DEV(bdf, owner)                                                                            \
        "{\"bdf\": \"" bdf "\", \"vendor\": \"0x8086\", \"device\": \"0x100e\", \"class\": "       \
        "\"0x020000\", \"driver\": \"pciback\", \"group\": 1, \"reset\": \"flr\", "                \
        "\"assigned_to\": " owner "}"
#define DEV_DRV(bdf, owner, driver)                                                                \
        "{\"bdf\": \"" bdf "\", \"vendor\": \"0x8086\", \"device\": \"0x100e\", \"class\": "       \
        "\"0x020000\", \"driver\": " driver ", \"group\": 1, \"reset\": \"flr\", "                 \
        "\"assigned_to\": " owner "}"
#define DOM0 "{\"domid\": 0, \"name\": \"Domain-0\", \"type\": \"pv\", \"uuid\": \"" UUID0 "\"}"
#define DOM(id, name, uuid, extra)                                                                 \
        "{\"domid\": " #id ", \"name\": \"" name "\", \"type\": \"hvm\", \"uuid\": \"" uuid        \
        "\"" extra "}"

struct env {
        char *dir;
        char *host;
        struct pgd_daemon d;
};

static void write_host(struct env *e, const char *devices, const char *domains)
{
        _cleanup_(freep) char *text = NULL;

        if (asprintf(&text,
                     "{\"iommu\": true, \"interrupt_remapping\": true, \"devices\": [%s], "
                     "\"domains\": [%s], \"faults\": {}, \"calls\": {}}",
                     devices, domains) < 0)
                abort();
        write_text(e->dir, "host.json", text);
}

static void env_setup(struct env *e, const char *devices, const char *domains)
{
        struct hv_config cfg = {};
        _cleanup_(freep) char *why = NULL;
        int r;

        *e = (struct env){};
        e->dir = tmpdir_new();
        e->host = path_in(e->dir, "host.json");
        write_host(e, devices, domains);
        cfg.sim_host = e->host;
        e->d.cfg.debug = true;
        e->d.cfg.state_dir = e->dir;
        e->d.hv_ops = &hv_sim_ops;
        r = hv_sim_ops.open(&cfg, &e->d.hv);
        if (r < 0) {
                fprintf(stderr, "hv-sim open: %s\n", strerror(-r));
                abort();
        }
        r = pgd_grants_open(e->dir, &e->d.grants, &why);
        if (r < 0)
                abort();
}

static void env_teardown(struct env *e)
{
        pgd_reconcile_clear(&e->d);
        pgd_grants_free(e->d.grants);
        hv_sim_ops.close(e->d.hv);
        tmpdir_freep(&e->dir);
        free(e->host);
}

static void add_grant(struct env *e, const char *bdf, uint32_t domid, const char *uuid,
                      const char *name)
{
        struct pgd_grant g = {
                .domid = domid,
                .client_uid = 0,
                .client_pid = 321,
                .time = 1700000000,
        };
        if (pg_bdf_parse(bdf, &g.sbdf) < 0)
                abort();
        snprintf(g.domain_uuid, sizeof(g.domain_uuid), "%s", uuid);
        snprintf(g.domain_name, sizeof(g.domain_name), "%s", name);
        snprintf(g.rule, sizeof(g.rule), "gpus");
        snprintf(g.client_unit, sizeof(g.client_unit), "xl.service");
        if (pgd_grants_add(e->d.grants, &g) < 0 || pgd_grants_commit(e->d.grants) < 0)
                abort();
}

/* The host file's view of a device: "null", "\"io\"" or the domid, as JSON. */
static char *host_owner(struct env *e, const char *bdf)
{
        json_t *root = json_load_file(e->host, 0, NULL);
        json_t *dev;
        size_t i;
        char *ret = NULL;

        json_array_foreach(json_object_get(root, "devices"), i,
                           dev) if (streq(json_string_value(json_object_get(dev, "bdf")), bdf))
                ret = json_dumps(json_object_get(dev, "assigned_to"),
                                 JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(root);
        return ret ? ret : strdup("?");
}

static long host_calls(struct env *e, const char *op)
{
        json_t *root = json_load_file(e->host, 0, NULL);
        json_t *v = json_object_get(json_object_get(root, "calls"), op);
        long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;

        json_decref(root);
        return n;
}

/* The number of grants in the file on disk, read back with a fresh open. */
static long disk_grants(struct env *e)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        _cleanup_(freep) char *why = NULL;

        if (pgd_grants_open(e->dir, &g, &why) < 0)
                return -1;
        return (long)pgd_grants_count(g);
}

#define CHECK_OWNER(e, bdf, want)                                                                  \
        do {                                                                                       \
                _cleanup_(freep) char *_o = host_owner((e), (bdf));                                \
                CHECK_STREQ(_o, (want));                                                           \
        } while (0)

static void test_domain_gone_at_startup(void)
{
        struct env e;
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        /* d5 held 03:00.0 and was destroyed while passguardd was down. */
        env_setup(&e, DEV("0000:03:00.0", "\"io\""), DOM0);
        add_grant(&e, "0000:03:00.0", 5, UUID5, "render-1");

        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_startup(&e.d), 1);
        out = capture_end(&c);
        CHECK_INTEQ(pgd_grants_count(e.d.grants), 0);
        CHECK_INTEQ(disk_grants(&e), 0);
        CHECK(strstr(out, "passguardd: audit: kind=domain-gone op=reconcile device=0000:03:00.0 "
                          "domid=5 uuid=" UUID5 " client_uid=0 client_pid=321 unit=xl.service "
                          "rule=gpus decision=released error=- message=\"") != NULL);
        CHECK(strstr(out, "reconciled: 0 grants kept, 1 released, 0 unmanaged") != NULL);
        CHECK_INTEQ(host_calls(&e, "deassign"), 0);
        env_teardown(&e);
}

static void test_uuid_changed(void)
{
        struct env e;
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        /* domid 5 was reused by another domain, which holds the device: not our grant. */
        env_setup(&e, DEV("0000:03:00.0", "5"), DOM0 ", " DOM(5, "other", UUID5B, ""));
        add_grant(&e, "0000:03:00.0", 5, UUID5, "render-1");

        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_startup(&e.d), 1);
        out = capture_end(&c);
        CHECK_INTEQ(disk_grants(&e), 0);
        CHECK(strstr(out,
                     "kind=domain-gone op=reconcile device=0000:03:00.0 domid=5 uuid=" UUID5) !=
              NULL);
        CHECK(strstr(out, "now belongs to other (" UUID5B ")") != NULL);
        /* Not a device passguard prepared, no --enforce: reported, left alone. */
        CHECK(strstr(out, "kind=unmanaged op=reconcile device=0000:03:00.0 domid=5 uuid=" UUID5B
                          " client_uid=- client_pid=- unit=- rule=- decision=unmanaged") != NULL);
        CHECK_OWNER(&e, "0000:03:00.0", "5");
        CHECK_INTEQ(host_calls(&e, "deassign"), 0);
        env_teardown(&e);
}

static void test_kept_and_dropped(void)
{
        struct env e;
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        /*
         * 03:00.0 is assigned to d5 as granted: kept. 04:00.0 was being
         * released when the daemon crashed: deassigned, grant not yet removed.
         */
        env_setup(&e, DEV("0000:03:00.0", "5") ", " DEV("0000:04:00.0", "\"io\""),
                  DOM0 ", " DOM(5, "render-1", UUID5, ""));
        add_grant(&e, "0000:03:00.0", 5, UUID5, "render-1");
        add_grant(&e, "0000:04:00.0", 5, UUID5, "render-1");

        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_startup(&e.d), 1);
        out = capture_end(&c);
        CHECK_INTEQ(disk_grants(&e), 1);
        CHECK(pgd_grants_find(e.d.grants, PG_SBDF(0, 3, 0, 0)) != NULL);
        CHECK(pgd_grants_find(e.d.grants, PG_SBDF(0, 4, 0, 0)) == NULL);
        CHECK(strstr(out, "kind=reconcile op=reconcile device=0000:04:00.0 domid=5") != NULL);
        CHECK(strstr(out, "decision=dropped") != NULL);
        CHECK(strstr(out, "owned by quarantine, not d5") != NULL);
        CHECK(strstr(out, "reconciled: 1 grants kept, 1 released, 0 unmanaged") != NULL);
        CHECK_OWNER(&e, "0000:03:00.0", "5");
        CHECK_INTEQ(host_calls(&e, "deassign"), 0);

        /* Consistent now: a second pass changes nothing. */
        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_startup(&e.d), 0);
        free(capture_end(&c));
        CHECK_INTEQ(disk_grants(&e), 1);
        env_teardown(&e);
}

static void test_unmanaged(bool enforce)
{
        struct env e;
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        env_setup(&e, DEV("0000:03:00.0", "5") ", " DEV("0000:05:00.0", "\"io\""),
                  DOM0 ", " DOM(5, "render-1", UUID5, ""));
        e.d.cfg.enforce = enforce;

        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_startup(&e.d), enforce ? 1 : 0);
        out = capture_end(&c);
        CHECK(strstr(out, "kind=unmanaged op=reconcile device=0000:03:00.0 domid=5 uuid=" UUID5) !=
              NULL);
        CHECK(strstr(out, enforce ? "decision=deassigned" : "decision=unmanaged") != NULL);
        /* Quarantined devices are not assignments to a guest. */
        CHECK(strstr(out, "device=0000:05:00.0") == NULL);
        CHECK(strstr(out, "reconciled: 0 grants kept, 0 released, 1 unmanaged") != NULL);
        CHECK_OWNER(&e, "0000:03:00.0", enforce ? "\"io\"" : "5");
        CHECK_INTEQ(host_calls(&e, "deassign"), enforce ? 1 : 0);
        CHECK_INTEQ(disk_grants(&e), 0);
        env_teardown(&e);
}

/* A crash after the hypervisor's assign but before the grant was committed. */
static void test_interrupted_assign_rolled_back(void)
{
        struct env e;
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        env_setup(&e, DEV("0000:03:00.0", "5"), DOM0 ", " DOM(5, "render-1", UUID5, ""));
        CHECK_INTEQ(pgd_grants_set_prepared(e.d.grants, PG_SBDF(0, 3, 0, 0), "e1000"), 0);
        CHECK_INTEQ(pgd_grants_commit(e.d.grants), 0);

        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_startup(&e.d), 1);
        out = capture_end(&c);
        CHECK(strstr(out, "kind=unmanaged op=reconcile device=0000:03:00.0 domid=5") != NULL);
        CHECK(strstr(out, "decision=rolled-back") != NULL);
        CHECK_OWNER(&e, "0000:03:00.0", "\"io\"");
        CHECK_INTEQ(host_calls(&e, "deassign"), 1);
        /* The device stays prepared: passguard still manages it. */
        CHECK_STREQ(pgd_grants_prepared_driver(e.d.grants, PG_SBDF(0, 3, 0, 0)), "e1000");
        env_teardown(&e);
}

static void test_domain_death_event(void)
{
        struct env e;
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        env_setup(&e, DEV("0000:03:00.0", "5") ", " DEV("0000:04:00.0", "6"),
                  DOM0 ", " DOM(5, "render-1", UUID5, "") ", " DOM(6, "net-1", UUID6, ""));
        add_grant(&e, "0000:03:00.0", 5, UUID5, "render-1");
        add_grant(&e, "0000:04:00.0", 6, UUID6, "net-1");

        /* Nothing happened yet. */
        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_domains(&e.d), 0);
        free(capture_end(&c));
        CHECK_INTEQ(pgd_grants_count(e.d.grants), 2);

        /*
         * d6 is dying: Xen fires @releaseDomain once, now, and quarantines its
         * device while it dies; the grant is released at once.
         */
        write_host(&e, DEV("0000:03:00.0", "5") ", " DEV("0000:04:00.0", "6"),
                   DOM0 ", " DOM(5, "render-1", UUID5, "") ", " DOM(6, "net-1", UUID6,
                                                                    ", \"dying\": true"));
        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_domains(&e.d), 1);
        out = capture_end(&c);
        CHECK_INTEQ(pgd_grants_count(e.d.grants), 1);
        CHECK(pgd_grants_find(e.d.grants, PG_SBDF(0, 4, 0, 0)) == NULL);
        CHECK_INTEQ(disk_grants(&e), 1);
        CHECK(strstr(out, "passguardd: audit: kind=domain-gone op=domain-death "
                          "device=0000:04:00.0 domid=6 uuid=" UUID6 " client_uid=0 "
                          "client_pid=321 unit=xl.service rule=gpus decision=released error=- "
                          "message=\"domain net-1 (" UUID6 ") is gone; device back in "
                          "quarantine, reset\"") != NULL);
        CHECK_INTEQ(host_calls(&e, "reset"), 1);
        CHECK_INTEQ(host_calls(&e, "deassign"), 0);

        /* d6 is destroyed: nothing left to release. */
        write_host(&e, DEV("0000:03:00.0", "5") ", " DEV("0000:04:00.0", "\"io\""),
                   DOM0 ", " DOM(5, "render-1", UUID5, ""));
        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_domains(&e.d), 0);
        free(capture_end(&c));
        CHECK_INTEQ(pgd_grants_count(e.d.grants), 1);

        /* d5 is destroyed and its domid reused at once: the new domain gets nothing. */
        write_host(&e, DEV("0000:03:00.0", "\"io\"") ", " DEV("0000:04:00.0", "\"io\""),
                   DOM0 ", " DOM(5, "render-2", UUID5B, ""));
        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_domains(&e.d), 1);
        free(out);
        out = capture_end(&c);
        CHECK_INTEQ(pgd_grants_count(e.d.grants), 0);
        CHECK_INTEQ(disk_grants(&e), 0);
        CHECK(strstr(out, "kind=domain-gone op=domain-death device=0000:03:00.0 domid=5") != NULL);
        env_teardown(&e);
}

static void test_reset_failure_still_releases(void)
{
        struct env e;
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        env_setup(&e, DEV("0000:03:00.0", "5"), DOM0 ", " DOM(5, "render-1", UUID5, ""));
        add_grant(&e, "0000:03:00.0", 5, UUID5, "render-1");
        write_text(
                e.dir, "host.json",
                "{\"iommu\": true, \"devices\": [" DEV(
                        "0000:03:00.0", "\"io\"") "], "
                                                  "\"domains\": [" DOM0
                                                  "], \"faults\": {\"reset\": {\"0000:03:00.0\": "
                                                  "\"EIO\"}}, \"calls\": {}}");
        capture_begin(&c);
        CHECK_INTEQ(pgd_reconcile_domains(&e.d), 1);
        out = capture_end(&c);
        CHECK_INTEQ(disk_grants(&e), 0);
        CHECK(strstr(out, "quarantine, reset failed\"") != NULL);
        env_teardown(&e);
}

/* Run pgd_reconcile_rebuild(); its stdout into *ret_out, its stderr into *ret_err. */
static int run_rebuild(struct env *e, char **ret_out, char **ret_err)
{
        struct capture c;
        char outpath[] = "/tmp/pg-grants-stdout.XXXXXX";
        int fd, saved_fd, r;

        fflush(stdout);
        fd = mkstemp(outpath);
        saved_fd = dup(STDOUT_FILENO);
        dup2(fd, STDOUT_FILENO);
        close(fd);
        capture_begin(&c);
        r = pgd_reconcile_rebuild(&e->d);
        *ret_err = capture_end(&c);
        fflush(stdout);
        dup2(saved_fd, STDOUT_FILENO);
        close(saved_fd);
        *ret_out = read_path(outpath, NULL);
        unlink(outpath);
        return r;
}

static void test_rebuild(void)
{
        struct env e;
        _cleanup_(freep) char *out = NULL, *err = NULL;
        _cleanup_(pgd_grants_freep) struct pgd_grants *disk = NULL;
        const struct pgd_grant *g;

        env_setup(&e,
                  DEV("0000:03:00.0", "5") ", " DEV("0000:04:00.0", "\"io\"") ", " DEV(
                          "0000:05:00.0", "7") ", " DEV("0000:06:00.0", "null") ", "
                          DEV_DRV("0000:07:00.0", "\"io\"", "\"e1000\""),
                  DOM0 ", " DOM(5, "render-1", UUID5, "") ", " DOM(7, "dying-1", UUID6,
                                                                   ", \"dying\": true"));
        /* A corrupt store is what --rebuild-state is for: it is not read. */
        write_text(e.dir, "grants.json", "{ corrupt");
        e.d.grants = pgd_grants_free(e.d.grants);
        CHECK_INTEQ(pgd_grants_new_empty(e.dir, &e.d.grants), 0);

        CHECK_INTEQ(run_rebuild(&e, &out, &err), 1);
        CHECK(out && strstr(out, "rebuilt: 0000:03:00.0 -> d5 render-1 (" UUID5 ")\n"));
        /* Quarantined and bound to pciback: prepared, its original driver unknown. */
        CHECK(out && strstr(out, "prepared: 0000:04:00.0 (quarantined, pciback; original "
                                 "driver unknown)\n"));
        /* Xen quarantines a dying domain's devices. */
        CHECK(out && strstr(out, "prepared: 0000:05:00.0 (quarantined, pciback; original "
                                 "driver unknown)\n"));
        /* Quarantined but not pciback's: not a device passguard prepared. */
        CHECK(out && strstr(out, "quarantined: 0000:07:00.0 (bound to e1000, not recorded as "
                                 "prepared)\n"));
        CHECK(out && strstr(out, "rebuilt 1 grant(s); 3 device(s) in quarantine, 2 recorded as "
                                 "prepared\n"));
        CHECK(out && !strstr(out, "0000:06:00.0"));
        CHECK(err && strstr(err, "kind=reconcile op=rebuild device=0000:04:00.0 domid=- ") &&
              strstr(err, "decision=prepared"));

        CHECK_INTEQ(disk_grants(&e), 1);
        g = pgd_grants_find(e.d.grants, PG_SBDF(0, 3, 0, 0));
        CHECK(g != NULL);
        if (g) {
                CHECK_INTEQ(g->domid, 5);
                CHECK_STREQ(g->domain_uuid, UUID5);
                CHECK_STREQ(g->domain_name, "render-1");
                CHECK_STREQ(g->rule, "rebuilt");
                CHECK_INTEQ(g->client_uid, 0);
                CHECK_INTEQ(g->client_pid, 0);
        }
        /* The prepared list is on disk too. */
        CHECK_INTEQ(pgd_grants_open(e.dir, &disk, NULL), 0);
        if (disk) {
                CHECK_STREQ(pgd_grants_prepared_driver(disk, PG_SBDF(0, 4, 0, 0)), "");
                CHECK_STREQ(pgd_grants_prepared_driver(disk, PG_SBDF(0, 5, 0, 0)), "");
                CHECK(pgd_grants_prepared_driver(disk, PG_SBDF(0, 7, 0, 0)) == NULL);
                CHECK(pgd_grants_prepared_driver(disk, PG_SBDF(0, 3, 0, 0)) == NULL);
        }
        /* The hypervisor was only read. */
        CHECK_INTEQ(host_calls(&e, "deassign"), 0);
        CHECK_INTEQ(host_calls(&e, "assign"), 0);
        env_teardown(&e);
}

/* A store that parses is never replaced; a missing one is simply built. */
static void test_rebuild_refuses_valid_store(void)
{
        struct env e;
        _cleanup_(freep) char *out = NULL, *err = NULL, *before = NULL, *after = NULL;

        env_setup(&e, DEV("0000:03:00.0", "5") ", " DEV("0000:04:00.0", "\"io\""),
                  DOM0 ", " DOM(5, "render-1", UUID5, ""));
        add_grant(&e, "0000:03:00.0", 5, UUID5, "render-1");
        before = read_text(e.dir, "grants.json", NULL);
        e.d.grants = pgd_grants_free(e.d.grants);
        CHECK_INTEQ(pgd_grants_new_empty(e.dir, &e.d.grants), 0);

        CHECK_INTEQ(run_rebuild(&e, &out, &err), -EEXIST);
        CHECK(err && strstr(err, "grants.json is valid; refusing to replace it: move it away "
                                 "first to rebuild"));
        CHECK(out && !strstr(out, "rebuilt"));
        after = read_text(e.dir, "grants.json", NULL);
        CHECK(before && after && streq(before, after));
        CHECK_INTEQ(pgd_grants_count(e.d.grants), 0);

        /* moved away: rebuilt */
        free(out);
        free(err);
        char *from = path_in(e.dir, "grants.json"), *to = path_in(e.dir, "grants.json.old");
        CHECK(rename(from, to) == 0);
        free(from);
        free(to);
        CHECK_INTEQ(run_rebuild(&e, &out, &err), 1);
        CHECK_INTEQ(disk_grants(&e), 1);
        env_teardown(&e);
}

static void test_audit_ids(void)
{
        /* Every kind has its own fixed 128-bit MESSAGE_ID. */
        for (int i = 0; i < _PGD_AUDIT_MAX; i++) {
                const char *id = pgd_audit_message_id((enum pgd_audit_kind)i);
                CHECK(id && strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32);
                for (int j = 0; j < i; j++)
                        CHECK(!streq_ptr(id, pgd_audit_message_id((enum pgd_audit_kind)j)));
        }
        CHECK(pgd_audit_message_id(_PGD_AUDIT_MAX) == NULL);
}

static void test_audit_line(void)
{
        struct pgd_daemon d = {.cfg.debug = true};
        struct pgd_peer peer = {.uid = 1000, .pid = 77};
        struct capture c;
        _cleanup_(freep) char *out = NULL;

        capture_begin(&c);
        pgd_audit(&d, &(struct pgd_audit_record){
                              .kind = PGD_AUDIT_REFUSE,
                              .op = "assign",
                              .sbdf = PG_SBDF(0, 3, 0, 0),
                              .domid = 5,
                              .peer = &peer,
                              .rule = "default",
                              .decision = "refused",
                              .error = PG_ERR_DENIED,
                              .message = "no rule \"allows\" it\nreally",
                      });
        pgd_audit(&d, &(struct pgd_audit_record){
                              .kind = PGD_AUDIT_RELOAD,
                              .sbdf = UINT32_MAX,
                              .domid = -1,
                      });
        d.cfg.debug = false;
        pgd_audit(&d,
                  &(struct pgd_audit_record){
                          .kind = PGD_AUDIT_GRANT, .sbdf = UINT32_MAX, .domid = -1, .op = "quiet"});
        out = capture_end(&c);
        CHECK(strstr(out, "passguardd: audit: kind=refuse op=assign device=0000:03:00.0 domid=5 "
                          "uuid=- client_uid=1000 client_pid=77 unit=- rule=default "
                          "decision=refused error=denied "
                          "message=\"no rule \\\"allows\\\" it\\nreally\"\n") != NULL);
        CHECK(strstr(out, "passguardd: audit: kind=reload op=- device=- domid=- uuid=- "
                          "client_uid=- client_pid=- unit=- rule=- decision=- error=- "
                          "message=\"\"\n") != NULL);
        /* Without --debug nothing goes to stderr but, at most, one journal warning. */
        CHECK(strstr(out, "op=quiet") == NULL);
}

int main(void)
{
        test_audit_ids();
        test_audit_line();
        test_domain_gone_at_startup();
        test_uuid_changed();
        test_kept_and_dropped();
        test_unmanaged(false);
        test_unmanaged(true);
        test_interrupted_assign_rolled_back();
        test_domain_death_event();
        test_reset_failure_still_releases();
        test_rebuild();
        test_rebuild_refuses_valid_store();
        return harness_exit();
}
