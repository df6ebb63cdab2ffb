/* SPDX-License-Identifier: MIT */
/*
 * Audit records: one structured journald record per decision.
 *
 *   MESSAGE=passguard: <decision> <op> <device> → d<domid> (<rule>): <message>
 *   MESSAGE_ID=<fixed per kind>, PRIORITY=<per kind>
 *   PASSGUARD_KIND, PASSGUARD_OP, PASSGUARD_DEVICE, PASSGUARD_DOMID,
 *   PASSGUARD_DOMAIN_UUID, PASSGUARD_DOMAIN_NAME, PASSGUARD_CLIENT_UID,
 *   PASSGUARD_CLIENT_PID, PASSGUARD_CLIENT_UNIT, PASSGUARD_RULE,
 *   PASSGUARD_DECISION, PASSGUARD_ERROR (the wire name)
 *
 * Absent fields are left out of the record (and out of MESSAGE).
 *
 * With --debug the same record also goes to stderr as one line, which the
 * integration tests grep; its format is a contract:
 *
 *   passguardd: audit: kind=grant op=assign device=0000:03:00.0 domid=5 uuid=<uuid>
 *   client_uid=0 client_pid=123 unit=- rule=r decision=granted error=- message="..."
 *
 * (one line; every key always present, in this order; "-" for an absent
 * value; message double-quoted with \" \\ \n escaped.)
 *
 * The same record is the event every watcher gets (pgd_audit_event(), sent
 * by the server to each connection that asked to watch): built here, from
 * the record itself, so that the stream and the journal never disagree.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "audit.h"
#include "grants.h"
#include "log.h"

struct kind_info {
        const char *name;
        const char *message_id;
        int priority;
};

/* MESSAGE_IDs are stable: journalctl MESSAGE_ID=... filters on them. Never change one. */
static const struct kind_info kinds[_PGD_AUDIT_MAX] = {
        [PGD_AUDIT_GRANT] = {"grant", "0641ab6ab8e040bca182a82730f3dc74", LOG_INFO},
        [PGD_AUDIT_REFUSE] = {"refuse", "381931e46c6e40d2b3871c3b75707903", LOG_NOTICE},
        [PGD_AUDIT_RELEASE] = {"release", "55f44c58e7934d48999dc3104baa079a", LOG_INFO},
        [PGD_AUDIT_DOMAIN_GONE] = {"domain-gone", "c7e53117662c479dbec06c691b15bf18", LOG_WARNING},
        [PGD_AUDIT_UNMANAGED] = {"unmanaged", "e51f3371028840fab9c789bb0efc7539", LOG_WARNING},
        [PGD_AUDIT_RECONCILE] = {"reconcile", "43f889141f8742138c44b30f2189ec76", LOG_NOTICE},
        [PGD_AUDIT_PREPARE] = {"prepare", "991ec23ed2314a49a82b9699eaf5e2b9", LOG_INFO},
        [PGD_AUDIT_RELOAD] = {"reload", "aff96d8140e04f76be2d42288b660ceb", LOG_INFO},
        [PGD_AUDIT_IDENTITY] = {"identity", "dc0231f36b3641968588e16be6128aad", LOG_WARNING},
        [PGD_AUDIT_TAINT] = {"taint", "ed5f8139b0844ea7845be7f447c5cd62", LOG_WARNING},
};

static const struct kind_info *kind_info(enum pgd_audit_kind kind)
{
        if ((unsigned)kind >= _PGD_AUDIT_MAX)
                return NULL;
        return &kinds[kind];
}

const char *pgd_audit_message_id(enum pgd_audit_kind kind)
{
        const struct kind_info *k = kind_info(kind);

        return k ? k->message_id : NULL;
}

static int priority_of(const struct kind_info *k, const struct pgd_audit_record *r)
{
        /* A failed grant, release, prepare or reload is a refusal. */
        if (r->error != 0 && k->priority > LOG_NOTICE)
                return LOG_NOTICE;
        return k->priority;
}

static const char *nonempty(const char *s)
{
        return s && *s ? s : NULL;
}

/* Up to this many fields per record, in this many bytes. */
#define AUDIT_FIELDS_MAX 16
#define AUDIT_TEXT_MAX 4096

/* The record's fields, formatted one after the other into one buffer. */
struct fields {
        struct iovec v[AUDIT_FIELDS_MAX];
        size_t n;
        char text[AUDIT_TEXT_MAX];
        size_t used;
        bool full;
};

_printf_(2, 3) static void field_add(struct fields *f, const char *fmt, ...)
{
        size_t room = sizeof(f->text) - f->used;
        va_list ap;
        int k;

        if (f->n >= AUDIT_FIELDS_MAX || f->full) {
                f->full = true;
                return;
        }
        va_start(ap, fmt);
        k = vsnprintf(f->text + f->used, room, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t)k >= room) {
                f->full = true;
                return;
        }
        f->v[f->n++] = (struct iovec){.iov_base = f->text + f->used, .iov_len = (size_t)k};
        f->used += (size_t)k + 1;
}

static void write_quoted(FILE *out, const char *s)
{
        fputc('"', out);
        for (; s && *s; s++) {
                if (*s == '"' || *s == '\\')
                        fprintf(out, "\\%c", *s);
                else if (*s == '\n')
                        fputs("\\n", out);
                else
                        fputc(*s, out);
        }
        fputc('"', out);
}

static void debug_line(const struct kind_info *k, const struct pgd_audit_record *r,
                       const char *device, const char *error)
{
        const char *uuid = nonempty(r->domain_uuid);
        const char *unit = r->peer ? nonempty(r->peer->unit) : NULL;
        const char *rule = nonempty(r->rule);
        const char *decision = nonempty(r->decision);
        /* One buffered line, so that concurrent writers to stderr do not interleave. */
        char *buf = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&buf, &size);

        if (!out)
                return;
        fprintf(out, "passguardd: audit: kind=%s op=%s device=%s", k->name,
                nonempty(r->op) ? r->op : "-", device ? device : "-");
        if (r->domid >= 0)
                fprintf(out, " domid=%" PRId64, r->domid);
        else
                fputs(" domid=-", out);
        fprintf(out, " uuid=%s", uuid ? uuid : "-");
        if (r->peer)
                fprintf(out, " client_uid=%u client_pid=%d", (unsigned)r->peer->uid,
                        (int)r->peer->pid);
        else
                fputs(" client_uid=- client_pid=-", out);
        fprintf(out, " unit=%s rule=%s decision=%s error=%s message=", unit ? unit : "-",
                rule ? rule : "-", decision ? decision : "-", error ? error : "-");
        write_quoted(out, r->message);
        fputc('\n', out);
        if (fclose(out) == 0 && buf)
                fputs(buf, stderr);
        free(buf);
}

/* Add key to obj when value is set; takes value. */
static int event_set(json_t *obj, const char *key, json_t *value)
{
        if (!value)
                return -ENOMEM;
        return json_object_set_new(obj, key, value) < 0 ? -ENOMEM : 0;
}

json_t *pgd_audit_event(const struct pgd_audit_record *r, int64_t time)
{
        const struct kind_info *k = kind_info(r->kind);
        _cleanup_(json_decrefp) json_t *e = NULL;
        const char *unit = r->peer ? nonempty(r->peer->unit) : NULL;
        char bdf[PG_BDF_MAX];
        int err = 0;

        if (!k)
                return NULL;
        e = json_pack("{s:s, s:I}", "event", k->name, "time", (json_int_t)time);
        if (!e)
                return NULL;
        if (nonempty(r->op))
                err |= event_set(e, "op", json_string(r->op));
        if (r->sbdf != UINT32_MAX)
                err |= event_set(e, "device", json_string(pg_bdf_format(r->sbdf, bdf)));
        if (r->domid >= 0)
                err |= event_set(e, "domid", json_integer(r->domid));
        /* A client's strings may not be UTF-8: replaced, as a reply's are. */
        if (nonempty(r->domain_name))
                err |= event_set(e, "domain", pg_wire_string(r->domain_name));
        if (nonempty(r->domain_uuid))
                err |= event_set(e, "uuid", json_string(r->domain_uuid));
        if (r->peer) {
                err |= event_set(e, "client_uid", json_integer((json_int_t)r->peer->uid));
                err |= event_set(e, "client_pid", json_integer((json_int_t)r->peer->pid));
        }
        if (unit)
                err |= event_set(e, "client_unit", pg_wire_string(unit));
        if (nonempty(r->rule))
                err |= event_set(e, "rule", pg_wire_string(r->rule));
        if (nonempty(r->decision))
                err |= event_set(e, "decision", json_string(r->decision));
        if (r->error != 0 && pg_error_name(r->error))
                err |= event_set(e, "error", json_string(pg_error_name(r->error)));
        if (nonempty(r->message))
                err |= event_set(e, "message", pg_wire_string(r->message));
        return err ? NULL : TAKE_PTR(e);
}

/* The record to every watcher, if there is one: one line each. */
static void broadcast(const struct pgd_daemon *d, const struct pgd_audit_record *r)
{
        _cleanup_(json_decrefp) json_t *e = NULL;
        _cleanup_(freep) char *line = NULL;
        size_t len;

        if (!pgd_server_has_watchers(d))
                return;
        e = pgd_audit_event(r, (int64_t)time(NULL));
        if (!e || pg_wire_dump(e, &line, &len) < 0) {
                log_warning("Failed to build the event of an audit record: out of memory");
                return;
        }
        pgd_server_broadcast(d, line, len);
}

/*
 * Where sd_journal_sendv() sends; without it (no journald) the send quietly
 * does nothing but cost a failed sendmsg per record. Looked for once a second.
 */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define JOURNAL_LOOK_USEC (1000 * 1000ULL)

static bool journal_present(void)
{
        static uint64_t looked_at;
        static bool present;
        static bool looked;
        struct timespec ts;
        uint64_t now;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
        if (!looked || now - looked_at >= JOURNAL_LOOK_USEC) {
                present = access(JOURNAL_SOCKET, F_OK) == 0;
                looked_at = now;
                looked = true;
        }
        return present;
}

void pgd_audit(const struct pgd_daemon *d, const struct pgd_audit_record *r)
{
        static bool journal_warned;
        const struct kind_info *k = kind_info(r->kind);
        struct fields f;
        char bdf[PG_BDF_MAX], msg[1024];
        const char *device = NULL, *error = NULL, *s;
        size_t len;

        if (!k)
                return;
        if (r->sbdf != UINT32_MAX)
                device = pg_bdf_format(r->sbdf, bdf);
        if (r->error != 0)
                error = pg_error_name(r->error);

        if (d && d->cfg.debug)
                debug_line(k, r, device, error);
        if (d)
                broadcast(d, r);

        /* MESSAGE: passguard: <decision> <op> <device> → d<domid> (<rule>): <message> */
        len = (size_t)snprintf(msg, sizeof(msg), "passguard: %s %s",
                               nonempty(r->decision) ? r->decision : k->name,
                               nonempty(r->op) ? r->op : k->name);
        if (device && len < sizeof(msg))
                len += (size_t)snprintf(msg + len, sizeof(msg) - len, " %s", device);
        if (r->domid >= 0 && len < sizeof(msg))
                len += (size_t)snprintf(msg + len, sizeof(msg) - len, " → d%" PRId64, r->domid);
        if (nonempty(r->rule) && len < sizeof(msg))
                len += (size_t)snprintf(msg + len, sizeof(msg) - len, " (%s)", r->rule);
        if (nonempty(r->message) && len < sizeof(msg))
                snprintf(msg + len, sizeof(msg) - len, ": %s", r->message);

        f.n = 0;
        f.used = 0;
        f.full = false;
        field_add(&f, "MESSAGE=%s", msg);
        field_add(&f, "MESSAGE_ID=%s", k->message_id);
        field_add(&f, "PRIORITY=%d", priority_of(k, r));
        field_add(&f, "PASSGUARD_KIND=%s", k->name);
        if ((s = nonempty(r->op)))
                field_add(&f, "PASSGUARD_OP=%s", s);
        if (device)
                field_add(&f, "PASSGUARD_DEVICE=%s", device);
        if (r->domid >= 0)
                field_add(&f, "PASSGUARD_DOMID=%" PRId64, r->domid);
        if ((s = nonempty(r->domain_uuid)))
                field_add(&f, "PASSGUARD_DOMAIN_UUID=%s", s);
        if ((s = nonempty(r->domain_name)))
                field_add(&f, "PASSGUARD_DOMAIN_NAME=%s", s);
        if (r->peer) {
                field_add(&f, "PASSGUARD_CLIENT_UID=%u", (unsigned)r->peer->uid);
                field_add(&f, "PASSGUARD_CLIENT_PID=%d", (int)r->peer->pid);
                if ((s = nonempty(r->peer->unit)))
                        field_add(&f, "PASSGUARD_CLIENT_UNIT=%s", s);
        }
        if ((s = nonempty(r->rule)))
                field_add(&f, "PASSGUARD_RULE=%s", s);
        if ((s = nonempty(r->decision)))
                field_add(&f, "PASSGUARD_DECISION=%s", s);
        if (error)
                field_add(&f, "PASSGUARD_ERROR=%s", error);

        /*
         * No journald (a container, a test): the record is lost, which must
         * not stop the daemon. Say so once, not per record.
         */
        if (!f.full && !journal_present()) {
                if (!journal_warned) {
                        journal_warned = true;
                        log_warning("Cannot write audit records to the journal: no %s",
                                    JOURNAL_SOCKET);
                }
        } else if (!f.full) {
                int e = sd_journal_sendv(f.v, (int)f.n);
                if (e < 0 && !journal_warned) {
                        journal_warned = true;
                        log_warning_errno(e, "Cannot write audit records to the journal: %m");
                }
        }
}

void pgd_audit_refusal(const struct pgd_daemon *d, const struct pgd_peer *peer,
                       const struct pgd_request *req, const struct hv_domain *dom,
                       const struct pgd_error *err)
{
        pgd_audit(d, &(struct pgd_audit_record){
                             .kind = PGD_AUDIT_REFUSE,
                             .op = req->op,
                             .sbdf = err->has_device ? err->device
                                     : req->has_device ? req->sbdf
                                                       : UINT32_MAX,
                             .domid = dom              ? (int64_t)dom->domid
                                      : req->has_domid ? (int64_t)req->domid
                                                       : -1,
                             .domain_uuid = dom ? dom->uuid : NULL,
                             .domain_name = dom ? dom->name : req->domain,
                             .peer = peer,
                             .rule = nonempty(err->rule),
                             .decision = "refused",
                             .error = err->code,
                             .message = err->message,
                     });
}

void pgd_audit_grant(const struct pgd_daemon *d, enum pgd_audit_kind kind, const char *op,
                     const struct pgd_peer *peer, const struct pgd_grant *g, const char *decision,
                     int error, const char *message)
{
        /* No client asks: the record names the one the grant was made for. */
        struct pgd_peer granted = {
                .uid = g->client_uid,
                .pid = g->client_pid,
                .unit = g->client_unit[0] ? (char *)g->client_unit : NULL,
        };

        if (!peer)
                peer = &granted;
        pgd_audit(d, &(struct pgd_audit_record){
                             .kind = kind,
                             .op = op,
                             .sbdf = g->sbdf,
                             .domid = g->domid,
                             .domain_uuid = g->domain_uuid,
                             .domain_name = g->domain_name,
                             .peer = peer,
                             .rule = g->rule,
                             .decision = decision,
                             .error = error,
                             .message = message,
                     });
}
