/* SPDX-License-Identifier: MIT */
/*
 * daemon/audit.c: one record per decision. Under --debug the record is also
 * one line on stderr whose format is a contract (the integration tests and
 * admins grep it): every key, in order, "-" for what is absent, the message
 * quoted with its quotes, backslashes and newlines escaped. MESSAGE_IDs are
 * fixed per kind (journalctl MESSAGE_ID=... filters on them): 32 hex digits,
 * one per kind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "grants.h"
#include "harness.h"
#include "pgd.h"

/* What audit.c writes on stderr while f runs (its journal records go where journald is). */
static char *stderr_of(void (*f)(const struct pgd_daemon *), const struct pgd_daemon *d)
{
        char path[] = "/tmp/pg-test-audit.XXXXXX";
        int fd = mkstemp(path), saved;
        char *text = NULL;
        size_t n = 0;
        FILE *in;

        if (fd < 0)
                abort();
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        f(d);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        in = fopen(path, "re");
        if (in) {
                if (getdelim(&text, &n, '\0', in) < 0) {
                        free(text);
                        text = strdup("");
                }
                fclose(in);
        }
        unlink(path);
        return text ? text : strdup("");
}

static const struct pgd_peer peer = {.uid = 1000, .pid = 4242, .unit = (char *)"xl.service"};

static void grant_record(const struct pgd_daemon *d)
{
        const struct pgd_grant g = {
                .sbdf = PG_SBDF(0, 3, 0, 0),
                .domid = 5,
                .domain_uuid = "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f",
                .domain_name = "render-1",
                .client_uid = 1000,
                .client_pid = 4242,
                .rule = "gpus",
        };

        pgd_audit_grant(d, PGD_AUDIT_GRANT, "assign", &peer, &g, "granted", 0,
                        "granted \"now\" \\ with\na newline");
}

static void refusal_record(const struct pgd_daemon *d)
{
        const struct pgd_request req = {
                .op = "assign", .has_device = true, .sbdf = PG_SBDF(0, 4, 0, 0), .domain = "ghost"};
        struct pgd_error err = {.code = PG_ERR_NO_SUCH_DOMAIN, .message = "no domain ghost"};

        pgd_audit_refusal(d, &peer, &req, NULL, &err);
}

/* No client asked: the grant's own client is named. */
static void domain_gone_record(const struct pgd_daemon *d)
{
        const struct pgd_grant g = {
                .sbdf = PG_SBDF(0, 3, 0, 0),
                .domid = 5,
                .domain_uuid = "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f",
                .client_uid = 0,
                .client_pid = 321,
                .client_unit = "xl.service",
                .rule = "gpus",
        };

        pgd_audit_grant(d, PGD_AUDIT_DOMAIN_GONE, "domain-death", NULL, &g, "released",
                        PG_ERR_STATE_ERROR, "gone");
}

static void test_debug_lines(void)
{
        struct pgd_daemon d = {.cfg = {.debug = true}};
        bool journald = access("/run/systemd/journal/socket", F_OK) == 0;
        char *out;

        /* Without journald, the first record says once that records go nowhere but here. */
        out = stderr_of(grant_record, &d);
        CHECK(journald || strstr(out, "Cannot write audit records to the journal: no "
                                      "/run/systemd/journal/socket\n") != NULL);
        CHECK(!journald || !strstr(out, "Cannot write audit records"));
        free(out);
        out = stderr_of(grant_record, &d);
        CHECK_MSG(!strstr(out, "Cannot write audit records"), "said twice: %s", out);
        CHECK_STREQ(out, "passguardd: audit: kind=grant op=assign device=0000:03:00.0 domid=5 "
                         "uuid=5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f client_uid=1000 "
                         "client_pid=4242 unit=xl.service rule=gpus decision=granted error=- "
                         "message=\"granted \\\"now\\\" \\\\ with\\na newline\"\n");
        free(out);

        out = stderr_of(refusal_record, &d);
        CHECK_STREQ(out, "passguardd: audit: kind=refuse op=assign device=0000:04:00.0 domid=- "
                         "uuid=- client_uid=1000 client_pid=4242 unit=xl.service rule=- "
                         "decision=refused error=no-such-domain message=\"no domain ghost\"\n");
        free(out);

        out = stderr_of(domain_gone_record, &d);
        CHECK(strstr(out, "kind=domain-gone op=domain-death device=0000:03:00.0 domid=5 ") != NULL);
        CHECK(strstr(out, "client_uid=0 client_pid=321 unit=xl.service rule=gpus "
                          "decision=released error=state-error message=\"gone\"") != NULL);
        free(out);

        /* Without --debug, nothing on stderr (the journal has the record). */
        d.cfg.debug = false;
        out = stderr_of(grant_record, &d);
        CHECK_STREQ(out, "");
        free(out);
}

static void test_message_ids(void)
{
        for (int k = 0; k < _PGD_AUDIT_MAX; k++) {
                const char *id = pgd_audit_message_id((enum pgd_audit_kind)k);
                CHECK_MSG(id && strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32,
                          "kind %d: MESSAGE_ID %s", k, id ? id : "(none)");
                for (int j = 0; id && j < k; j++)
                        CHECK_MSG(!streq(id, pgd_audit_message_id((enum pgd_audit_kind)j)),
                                  "kinds %d and %d share a MESSAGE_ID", j, k);
        }
        /* Stable: journalctl filters and the catalog name them. */
        CHECK_STREQ(pgd_audit_message_id(PGD_AUDIT_GRANT), "0641ab6ab8e040bca182a82730f3dc74");
        CHECK_STREQ(pgd_audit_message_id(PGD_AUDIT_REFUSE), "381931e46c6e40d2b3871c3b75707903");
        CHECK(pgd_audit_message_id(_PGD_AUDIT_MAX) == NULL);
}

int main(void)
{
        test_debug_lines();
        test_message_ids();
        return harness_exit();
}
