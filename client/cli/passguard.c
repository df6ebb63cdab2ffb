/* SPDX-License-Identifier: MIT */
/*
 * passguard: the command-line client of passguardd. See passguard(1).
 *
 * Exit status: 0 done, 1 refused, 2 usage, 3 daemon unreachable or protocol error.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "passguard.h"
#include "pg-util.h"
#include "pg-wire.h"

/* The most devices one multi-device assign may name (the daemon's PGD_GROUP_MAX). */
#define PG_DEVICES_MAX 16

struct verb {
        const char *name;
        const char *args;    /* for the usage line */
        const char *summary; /* for --help */
        int min_args, max_args;
        int (*run)(const struct cli *c, int argc, char **argv);
};

static const struct verb verbs[];
static const struct verb *find_verb(const char *name);

static void verb_usage(FILE *f, const struct verb *v)
{
        fprintf(f, "Usage: passguard [--json] [--socket PATH] %s%s%s\n", v->name,
                *v->args ? " " : "", v->args);
}

_printf_(2, 3) static int usage_error(const struct verb *v, const char *fmt, ...)
{
        va_list ap;

        fputs("passguard: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        verb_usage(stderr, v);
        return EXIT_USAGE;
}

/* ---- talking to the daemon ---- */

static void print_refusal(const struct pg *pg, int code)
{
        const char *fields[][2] = {
                { "device", pg_last_device(pg) },
                { "check", pg_last_check(pg) },
                { "rule", pg_last_rule(pg) },
        };
        bool first = true;

        fprintf(stderr, "passguard: refused: %s: %s", pg_strerror(code), pg_last_message(pg));
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (!fields[i][1])
                        continue;
                fprintf(stderr, "%s%s: %s", first ? " (" : ", ", fields[i][0], fields[i][1]);
                first = false;
        }
        if (!first)
                fputc(')', stderr);
        fputc('\n', stderr);
}

static int open_daemon(const struct cli *c, struct pg **ret)
{
        const char *path = c->socket ?: secure_getenv("PASSGUARD_SOCKET");
        if (!path || !*path)
                path = PG_DEFAULT_SOCKET_PATH;

        int r = pg_connect(path, ret);
        if (r < 0) {
                fprintf(stderr, "passguard: cannot talk to passguardd at %s: %s\n", path,
                        pg_strerror(r));
                return EXIT_UNREACHABLE;
        }
        if (r > 0) {
                fprintf(stderr, "passguard: passguardd at %s refused the connection: %s: %s\n",
                        path, pg_strerror(r), pg_error_description(r));
                return r == PG_ERR_UNSUPPORTED_VERSION ? EXIT_UNREACHABLE : EXIT_REFUSED;
        }
        return EXIT_DONE;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg *, pg_close);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg_grant *, pg_grant_free);

/*
 * The end of one libpassguard call r on pg: with --json the daemon's reply is
 * printed as it came, a refusal or a failure is explained on stderr. Returns
 * the exit status.
 */
static int finish(const struct cli *c, const struct pg *pg, int r)
{
        if (c->json && r >= 0 && pg_last_reply(pg))
                printf("%s\n", pg_last_reply(pg));
        if (r < 0) {
                fprintf(stderr, "passguard: %s\n", *pg_last_message(pg) ? pg_last_message(pg)
                                                                       : pg_strerror(r));
                return EXIT_UNREACHABLE;
        }
        if (r > 0) {
                print_refusal(pg, r);
                return EXIT_REFUSED;
        }
        return EXIT_DONE;
}

/* The daemon's last reply, parsed for printing; NULL (said on stderr) when it does not parse. */
static json_t *last_reply(const struct pg *pg)
{
        const char *raw = pg_last_reply(pg);
        json_t *reply = raw ? json_loads(raw, JSON_REJECT_DUPLICATES, NULL) : NULL;

        if (!reply)
                fputs("passguard: cannot read the daemon's reply\n", stderr);
        return reply;
}

/* ---- printing replies ---- */

static const char *str_or(const json_t *obj, const char *key, const char *fallback)
{
        const char *s = json_string_value(json_object_get(obj, key));
        return s ?: fallback;
}

static const char *yes_no(const json_t *obj, const char *key)
{
        json_t *v = json_object_get(obj, key);
        if (!json_is_boolean(v))
                return "unknown";
        return json_is_true(v) ? "yes" : "no";
}

/* A number, a string or a unix time, as text. */
static const char *fmt_value(const json_t *v, bool is_time, char *buf, size_t size)
{
        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v) && is_time) {
                time_t t = (time_t)json_integer_value(v);
                struct tm tm;
                if (localtime_r(&t, &tm) && strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) > 0)
                        return buf;
        }
        if (json_is_integer(v)) {
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return buf;
        }
        if (json_is_boolean(v))
                return json_is_true(v) ? "yes" : "no";
        if (json_is_real(v)) {
                snprintf(buf, size, "%g", json_real_value(v));
                return buf;
        }
        return "-";
}

static void print_grant_row(const json_t *g)
{
        char b1[32], b2[32], b3[64];

        printf("%-12s  %5s  %-16s  %-16s  %10s  %s\n", str_or(g, "device", "-"),
               fmt_value(json_object_get(g, "domid"), false, b1, sizeof(b1)),
               str_or(g, "domain", "-"), str_or(g, "rule", "-"),
               fmt_value(json_object_get(g, "client_uid"), false, b2, sizeof(b2)),
               fmt_value(json_object_get(g, "time"), true, b3, sizeof(b3)));
}

/* A daemon cuts a long list to fit one message; it gives the total. */
static void print_not_shown(const json_t *reply, const char *count_key, const json_t *shown)
{
        json_t *total = json_object_get(reply, count_key);
        json_int_t more;

        if (!json_is_integer(total))
                return;
        more = json_integer_value(total) - (json_int_t)json_array_size(shown);
        if (more > 0)
                printf("(%" JSON_INTEGER_FORMAT " more not shown)\n", more);
}

static void print_list(const json_t *reply)
{
        json_t *grants = json_object_get(reply, "grants");
        json_t *assignable = json_object_get(reply, "assignable");
        size_t i;
        json_t *v;

        printf("%-12s  %5s  %-16s  %-16s  %10s  %s\n", "DEVICE", "DOMID", "DOMAIN", "RULE",
               "CLIENT-UID", "SINCE");
        json_array_foreach(grants, i, v)
                print_grant_row(v);
        print_not_shown(reply, "grant_count", grants);
        if (json_array_size(grants) == 0 &&
            json_integer_value(json_object_get(reply, "grant_count")) == 0)
                printf("(no grants)\n");

        printf("\nassignable devices:\n");
        printf("%-12s  %-6s  %-9s  %-8s  %s\n", "DEVICE", "VENDOR", "DEVICE-ID", "CLASS",
               "DRIVER");
        json_array_foreach(assignable, i, v)
                printf("%-12s  %-6s  %-9s  %-8s  %s\n", str_or(v, "device", "-"),
                       str_or(v, "vendor", "-"), str_or(v, "device_id", "-"),
                       str_or(v, "class", "-"), str_or(v, "driver", "-"));
        print_not_shown(reply, "assignable_count", assignable);
        if (json_array_size(assignable) == 0 &&
            json_integer_value(json_object_get(reply, "assignable_count")) == 0)
                printf("(none)\n");

        /* Only when there are: devices whose reset failed, until an admin untaints them. */
        json_t *tainted = json_object_get(reply, "tainted");
        if (json_array_size(tainted) > 0) {
                printf("\ntainted devices (their reset failed; `passguard untaint BDF`):\n");
                json_array_foreach(tainted, i, v)
                        printf("%-12s  %s\n", str_or(v, "device", "-"), str_or(v, "reason", "-"));
        }
}

static void print_status(const json_t *reply)
{
        static const struct {
                const char *key, *label;
                bool is_time;
        } fields[] = {
                { "version", "version", false },
                { "backend", "backend", false },
                { "iommu", "iommu", false },
                { "interrupt_remapping", "interrupt remapping", false },
                { "enforce", "enforce", false },
                { "state_ok", "state ok", false },
                { "grants", "grants", false },
                { "policy", "policy", false },
                { "rules", "rules", false },
                { "policy_loaded", "policy loaded", true },
        };
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                json_t *v = json_object_get(reply, fields[i].key);
                if (v)
                        printf("%s: %s\n", fields[i].label,
                               fmt_value(v, fields[i].is_time, buf, sizeof(buf)));
        }
        /* only while the daemon retries a rollback that failed */
        json_int_t pending = json_integer_value(json_object_get(reply, "pending_rollbacks"));
        if (pending > 0)
                printf("pending rollbacks: %" JSON_INTEGER_FORMAT "\n", pending);
}

static void print_checks(const json_t *checks)
{
        size_t i;
        json_t *v;

        json_array_foreach(checks, i, v)
                printf("  %-4s  %-20s %s\n", str_or(v, "result", "?"), str_or(v, "check", "?"),
                       str_or(v, "detail", ""));
}

static void print_explain(const json_t *reply)
{
        json_t *devices = json_object_get(reply, "devices");
        size_t i;
        json_t *v;

        printf("decision: %s\n", str_or(reply, "decision", "unknown"));
        if (json_object_get(reply, "device"))
                printf("device: %s\n", str_or(reply, "device", "-"));
        if (json_object_get(reply, "error"))
                printf("error: %s\n", str_or(reply, "error", "-"));
        if (json_object_get(reply, "rule"))
                printf("rule: %s\n", str_or(reply, "rule", "-"));
        print_checks(json_object_get(reply, "checks"));
        /* Several devices: each one's checks, as far as they went. */
        json_array_foreach(devices, i, v) {
                printf("%s: %s", str_or(v, "device", "-"), str_or(v, "decision", "unknown"));
                if (json_object_get(v, "rule"))
                        printf(" (rule %s)", str_or(v, "rule", "-"));
                printf("\n");
                print_checks(json_object_get(v, "checks"));
        }
}

static void print_owner(const json_t *reply)
{
        char buf[32];
        json_t *assigned = json_object_get(reply, "assigned");

        printf("device: %s\n", str_or(reply, "device", "-"));
        if (json_is_true(assigned))
                printf("assigned: yes, to domain %s (%s)\n",
                       fmt_value(json_object_get(reply, "domid"), false, buf, sizeof(buf)),
                       str_or(reply, "domain", "unknown name"));
        else
                printf("assigned: %s\n", yes_no(reply, "assigned"));
        printf("granted by passguard: %s\n", yes_no(reply, "granted"));
        printf("quarantined: %s\n", yes_no(reply, "quarantined"));
        printf("driver: %s\n", str_or(reply, "driver", "none"));
        if (json_is_true(json_object_get(reply, "tainted")))
                printf("tainted: yes, %s\n",
                       str_or(json_object_get(reply, "taint"), "reason", "its reset failed"));
}

/* ---- arguments ---- */

/* A BDF argument, normalised; a usage error otherwise. */
static int parse_bdf_arg(const struct verb *v, const char *arg, char buf[static PG_BDF_MAX])
{
        uint32_t sbdf;

        if (pg_bdf_parse(arg, &sbdf) < 0)
                return usage_error(v, "not a PCI address (SSSS:BB:DD.F or BB:DD.F): %s", arg);
        pg_bdf_format(sbdf, buf);
        return EXIT_DONE;
}

/* DOMAIN: all digits is a domid (*ret_name NULL), anything else a name. */
static int parse_domain_arg(const struct verb *v, const char *arg, const char **ret_name,
                            uint32_t *ret_domid)
{
        if (!*arg)
                return usage_error(v, "empty domain name");
        if (strspn(arg, "0123456789") == strlen(arg)) {
                char *end;
                errno = 0;
                unsigned long long d = strtoull(arg, &end, 10);
                if (errno || d > UINT32_MAX)
                        return usage_error(v, "domid out of range: %s", arg);
                *ret_name = NULL;
                *ret_domid = (uint32_t)d;
        } else {
                *ret_name = arg;
                *ret_domid = 0;
        }
        return EXIT_DONE;
}

/* ---- verbs ---- */

/* status, list, reload */
static int verb_simple(const struct cli *c, int argc, char **argv)
{
        _cleanup_(pg_closep) struct pg *pg = NULL;
        _cleanup_(json_decrefp) json_t *reply = NULL;
        const char *op = argv[0];
        int e, r;

        e = open_daemon(c, &pg);
        if (e != EXIT_DONE)
                return e;
        if (streq(op, "status"))
                r = pg_status(pg, NULL);
        else if (streq(op, "list"))
                r = pg_list(pg, NULL);
        else
                r = pg_reload(pg);
        e = finish(c, pg, r);
        if (e != EXIT_DONE || c->json)
                return e;
        if (streq(op, "reload")) {
                printf("policy reloaded\n");
                return EXIT_DONE;
        }
        reply = last_reply(pg);
        if (!reply)
                return EXIT_UNREACHABLE;
        if (streq(op, "status"))
                print_status(reply);
        else
                print_list(reply);
        return EXIT_DONE;
}

/* explain answered: its checks for a human (--json printed the reply), and the exit status. */
static int explain_done(const struct cli *c, struct pg *pg, int allow)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;

        if (!c->json) {
                reply = last_reply(pg);
                if (!reply)
                        return EXIT_UNREACHABLE;
                print_explain(reply);
        }
        return allow ? EXIT_DONE : EXIT_REFUSED;
}

/* assign and explain of several devices: all or none (pg_assign_many). */
static int target_many(const struct cli *c, const char *op, const char *name, uint32_t domid,
                       const char *const *bdfs, size_t n, unsigned flags)
{
        _cleanup_(pg_closep) struct pg *pg = NULL;
        struct pg_grant **grants = NULL;
        int allow = 0, e, r;

        e = open_daemon(c, &pg);
        if (e != EXIT_DONE)
                return e;
        if (streq(op, "assign"))
                r = pg_assign_many(pg, name, domid, bdfs, n, flags, &grants);
        else
                r = pg_explain_many(pg, name, domid, bdfs, n, flags, &allow, NULL);
        e = finish(c, pg, r);
        if (e != EXIT_DONE) {
                pg_grants_free(grants);
                return e;
        }
        if (streq(op, "explain"))
                return explain_done(c, pg, allow);
        for (size_t i = 0; grants && grants[i] && !c->json; i++)
                printf("granted %s to domain %" PRIu32 " (%s), rule %s, rdm_policy %s\n",
                       pg_grant_device(grants[i]) ?: bdfs[i], pg_grant_domid(grants[i]),
                       pg_grant_domain_name(grants[i]) ?: "-", pg_grant_rule(grants[i]) ?: "-",
                       pg_grant_rdm_policy(grants[i]) ?: "-");
        pg_grants_free(grants);
        return EXIT_DONE;
}

/* assign, explain: [--rdm-relaxed] DOMAIN BDF...; release: DOMAIN BDF */
static int verb_target(const struct cli *c, int argc, char **argv)
{
        const struct verb *v = find_verb(argv[0]);
        _cleanup_(pg_closep) struct pg *pg = NULL;
        _cleanup_(pg_grant_freep) struct pg_grant *g = NULL;
        const char *op = argv[0], *name = NULL;
        char bdf[PG_BDF_MAX], bdfs[PG_DEVICES_MAX][PG_BDF_MAX];
        const char *list[PG_DEVICES_MAX];
        unsigned flags = 0;
        uint32_t domid = 0;
        int i = 1, allow = 0, e, r, n;

        if (!streq(op, "release") && i < argc && streq(argv[i], "--rdm-relaxed")) {
                flags = PG_ASSIGN_RDM_RELAXED;
                i++;
        }
        n = argc - i - 1;
        if (n < 1 || (streq(op, "release") && n != 1))
                return usage_error(v, "%s needs DOMAIN and BDF", op);
        if (n > PG_DEVICES_MAX)
                return usage_error(v, "at most %d devices at once", PG_DEVICES_MAX);
        e = parse_domain_arg(v, argv[i], &name, &domid);
        for (int k = 0; k < n && e == EXIT_DONE; k++) {
                e = parse_bdf_arg(v, argv[i + 1 + k], bdfs[k]);
                list[k] = bdfs[k];
        }
        if (e != EXIT_DONE)
                return e;
        /* One device: today's request ("device"); several: "devices", all or none. */
        if (n > 1)
                return target_many(c, op, name, domid, list, (size_t)n, flags);
        memcpy(bdf, bdfs[0], sizeof(bdf));
        e = open_daemon(c, &pg);
        if (e != EXIT_DONE)
                return e;

        if (streq(op, "assign"))
                r = pg_assign(pg, name, domid, bdf, flags, &g);
        else if (streq(op, "release"))
                r = pg_release(pg, name, domid, bdf);
        else
                r = pg_explain(pg, name, domid, bdf, flags, &allow, NULL);
        e = finish(c, pg, r);
        if (e != EXIT_DONE)
                return e;

        if (streq(op, "explain"))
                return explain_done(c, pg, allow);
        if (c->json)
                return EXIT_DONE;
        if (streq(op, "assign"))
                printf("granted %s to domain %" PRIu32 " (%s), rule %s, rdm_policy %s\n",
                       pg_grant_device(g) ?: bdf, pg_grant_domid(g),
                       pg_grant_domain_name(g) ?: "-", pg_grant_rule(g) ?: "-",
                       pg_grant_rdm_policy(g) ?: "-");
        else
                printf("released %s from domain %s\n", bdf, argv[i]);
        return EXIT_DONE;
}

/* owner, prepare, unprepare: BDF */
static int verb_device(const struct cli *c, int argc, char **argv)
{
        _cleanup_(pg_closep) struct pg *pg = NULL;
        _cleanup_(json_decrefp) json_t *reply = NULL;
        const char *op = argv[0];
        char bdf[PG_BDF_MAX];
        int e, r;

        e = parse_bdf_arg(find_verb(op), argv[1], bdf);
        if (e == EXIT_DONE)
                e = open_daemon(c, &pg);
        if (e != EXIT_DONE)
                return e;
        if (streq(op, "owner"))
                r = pg_owner(pg, bdf, NULL, NULL, NULL);
        else if (streq(op, "prepare"))
                r = pg_prepare(pg, bdf);
        else if (streq(op, "untaint"))
                r = pg_untaint(pg, bdf);
        else
                r = pg_unprepare(pg, bdf);
        e = finish(c, pg, r);
        if (e != EXIT_DONE || c->json)
                return e;
        if (streq(op, "owner")) {
                reply = last_reply(pg);
                if (!reply)
                        return EXIT_UNREACHABLE;
                print_owner(reply);
        } else if (streq(op, "prepare"))
                printf("%s is bound to pciback and quarantined\n", bdf);
        else if (streq(op, "untaint")) {
                reply = last_reply(pg);
                if (!reply)
                        return EXIT_UNREACHABLE;
                printf(json_is_true(json_object_get(reply, "was_tainted"))
                               ? "%s is no longer tainted: it may go to any domain again\n"
                               : "%s was not tainted\n",
                       bdf);
        } else
                printf("%s is given back to its dom0 driver\n", bdf);
        return EXIT_DONE;
}

/* ---- monitor: the event stream ---- */

static volatile sig_atomic_t monitor_stop;

static void on_monitor_signal(int sig)
{
        monitor_stop = sig;
}

/* One event as a line for a human: time, kind, decision, op, device, domain, rule, message. */
static void print_event(const char *line)
{
        _cleanup_(json_decrefp) json_t *e = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
        char when[32] = "-", dom[96] = "";
        const json_t *domid;
        time_t t;
        struct tm tm;

        if (!e) {
                printf("%s\n", line);
                return;
        }
        t = (time_t)json_integer_value(json_object_get(e, "time"));
        if (localtime_r(&t, &tm))
                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        domid = json_object_get(e, "domid");
        if (json_is_integer(domid))
                snprintf(dom, sizeof(dom), " -> d%" JSON_INTEGER_FORMAT "%s%s%s",
                         json_integer_value(domid), json_object_get(e, "domain") ? " (" : "",
                         str_or(e, "domain", ""), json_object_get(e, "domain") ? ")" : "");
        printf("%s %s: %s %s%s%s%s%s%s%s%s%s%s\n", when, str_or(e, "event", "?"),
               str_or(e, "decision", "-"), str_or(e, "op", "-"),
               json_object_get(e, "device") ? " " : "", str_or(e, "device", ""), dom,
               json_object_get(e, "rule") ? " rule " : "", str_or(e, "rule", ""),
               json_object_get(e, "error") ? " error " : "", str_or(e, "error", ""),
               json_object_get(e, "message") ? ": " : "", str_or(e, "message", ""));
        fflush(stdout);
}

/* monitor [--json]: one line per event until SIGINT/SIGTERM (0) or the daemon goes (3). */
static int verb_monitor(const struct cli *c, int argc, char **argv)
{
        const struct verb *v = find_verb(argv[0]);
        _cleanup_(pg_closep) struct pg *pg = NULL;
        struct sigaction sa = { .sa_handler = on_monitor_signal };
        sigset_t block, waiting;
        bool json = c->json;
        int e, r;

        for (int i = 1; i < argc; i++) {
                if (!streq(argv[i], "--json"))
                        return usage_error(v, "unknown option %s", argv[i]);
                json = true;
        }
        e = open_daemon(c, &pg);
        if (e != EXIT_DONE)
                return e;
        r = pg_watch(pg);
        if (r != 0)
                return finish(&(struct cli){ .socket = c->socket }, pg, r);
        /* Blocked but inside ppoll(), so that a signal cannot slip in before the wait. */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigprocmask(SIG_BLOCK, &block, &waiting);
        sigdelset(&waiting, SIGINT);
        sigdelset(&waiting, SIGTERM);
        /* On stderr in both forms: every event after this line is printed. */
        fprintf(stderr, "passguard: watching passguardd's events (^C to stop)\n");
        while (!monitor_stop) {
                char *event = NULL;
                struct pollfd p = { .fd = pg_watch_fd(pg), .events = POLLIN };

                r = pg_watch_next(pg, &event);
                if (r == 0) {
                        if (json)
                                printf("%s\n", event);
                        else
                                print_event(event);
                        fflush(stdout);
                        free(event);
                        continue;
                }
                if (r != -EAGAIN) {
                        fprintf(stderr, "passguard: %s\n", pg_last_message(pg));
                        return EXIT_UNREACHABLE;
                }
                if (ppoll(&p, 1, NULL, &waiting) < 0 && errno != EINTR) {
                        fprintf(stderr, "passguard: ppoll: %m\n");
                        return EXIT_UNREACHABLE;
                }
        }
        return EXIT_DONE;
}

static int verb_policy(const struct cli *c, int argc, char **argv)
{
        return cli_policy(c, argc, argv);
}

static const struct verb verbs[] = {
        { "status", "", "show the daemon's host, policy and grant count", 0, 0, verb_simple },
        { "list", "", "list grants and assignable devices", 0, 0, verb_simple },
        { "assign", "[--rdm-relaxed] DOMAIN BDF...",
          "assign devices to a domain (several: all or none)", 2, 2 + PG_DEVICES_MAX,
          verb_target },
        { "release", "DOMAIN BDF", "release a device from a domain", 2, 2, verb_target },
        { "explain", "[--rdm-relaxed] DOMAIN BDF...", "show what assign would decide, and why",
          2, 2 + PG_DEVICES_MAX, verb_target },
        { "owner", "BDF", "show who owns a device", 1, 1, verb_device },
        { "prepare", "BDF", "bind a device to pciback and quarantine it", 1, 1, verb_device },
        { "unprepare", "BDF", "give a quarantined device back to its dom0 driver", 1, 1,
          verb_device },
        { "reload", "", "make the daemon re-read its policy", 0, 0, verb_simple },
        { "untaint", "BDF", "let a device whose reset failed go to any domain again (admins)", 1,
          1, verb_device },
        { "monitor", "[--json]", "print the daemon's events as they happen", 0, 1, verb_monitor },
        { "policy",
          "check [FILE] | explain OPTIONS [FILE] | edit [--file FILE] | generate [--output FILE]",
          "check, explain, edit or generate a policy file (offline)", 1, -1, verb_policy },
};

static const struct verb *find_verb(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        return &verbs[i];
        return NULL;
}

static void help(void)
{
        printf("Usage: passguard [--json] [--socket PATH] VERB [ARGS...]\n"
               "\n"
               "Ask passguardd to hand PCI devices to Xen guests.\n"
               "\n"
               "Verbs:\n"
               "  status                        show the daemon's host, policy and grant count\n"
               "  list                          list grants and assignable devices\n"
               "  assign [--rdm-relaxed] DOMAIN BDF...\n"
               "                                assign devices to a domain (several: all or none)\n"
               "  release DOMAIN BDF            release a device from a domain\n"
               "  explain [--rdm-relaxed] DOMAIN BDF...\n"
               "                                show what assign would decide, and why\n"
               "  owner BDF                     show who owns a device\n"
               "  prepare BDF                   bind a device to pciback and quarantine it\n"
               "  unprepare BDF                 give a device back to its dom0 driver\n"
               "  reload                        make the daemon re-read its policy\n"
               "  untaint BDF                   let a device whose reset failed go to any domain\n"
               "  monitor [--json]              print the daemon's events as they happen\n"
               "  policy check [FILE]           validate a policy file (offline)\n"
               "  policy explain OPTIONS [FILE] evaluate a policy for a request (offline)\n"
               "  policy edit [--file FILE]     edit, validate and install a policy, then reload\n"
               "  policy generate [--output FILE]\n"
               "                                write a starting policy from the host's devices\n"
               "\n"
               "DOMAIN is a domain name, or a domid when it is a number.\n"
               "BDF is a PCI address, SSSS:BB:DD.F or BB:DD.F.\n"
               "\n"
               "Options:\n"
               "  --json          print the daemon's raw JSON reply\n"
               "  --socket PATH   the daemon's socket (default: $PASSGUARD_SOCKET, or\n"
               "                  " PG_DEFAULT_SOCKET_PATH ")\n"
               "  -h, --help      show this help\n"
               "  --version       show the version\n"
               "\n"
               "Exit status: 0 done, 1 refused, 2 usage error, 3 daemon unreachable or\n"
               "protocol error. See passguard(1).\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        struct cli c = {};
        int opt;

        while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (opt) {
                case 'j':
                        c.json = true;
                        break;
                case 's':
                        c.socket = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_DONE;
                case 'V':
                        printf("passguard %s\n", PG_VERSION);
                        return EXIT_DONE;
                default:
                        fputs("Try 'passguard --help'.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                fputs("passguard: no verb given. Try 'passguard --help'.\n", stderr);
                return EXIT_USAGE;
        }

        const struct verb *v = find_verb(argv[optind]);
        if (!v) {
                fprintf(stderr, "passguard: unknown verb '%s'. Try 'passguard --help'.\n",
                        argv[optind]);
                return EXIT_USAGE;
        }
        int nargs = argc - optind - 1;
        char **vargv = argv + optind;
        if (v->run != verb_policy)
                for (int i = 1; i <= nargs; i++)
                        if (streq(vargv[i], "--help") || streq(vargv[i], "-h")) {
                                verb_usage(stdout, v);
                                printf("\n%s.\n", v->summary);
                                return EXIT_DONE;
                        }
        if (nargs < v->min_args || (v->max_args >= 0 && nargs > v->max_args)) {
                fprintf(stderr, "passguard: wrong number of arguments for '%s'\n", v->name);
                verb_usage(stderr, v);
                return EXIT_USAGE;
        }
        return v->run(&c, nargs + 1, vargv);
}
