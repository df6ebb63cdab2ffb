/* SPDX-License-Identifier: MIT */
/*
 * pg-hvprobe: make single host-backend calls, or run a scenario file of them,
 * against the real hypervisor (--backend xen) or the simulated host (--backend
 * sim). It is a test tool: it goes straight to the backend, with no daemon, no
 * policy and no checks, so it can also do things behind passguard's back.
 *
 *   pg-hvprobe [--backend xen|sim] [--sim-host FILE] [--sysfs-root DIR] COMMAND
 *
 *   caps | domains | info BDF | owner BDF | assignments | group BDF
 *   test-assign DOMID|any BDF | assign DOMID BDF [strict|relaxed] | deassign DOMID BDF
 *   prepare BDF | unprepare BDF [DRIVER]
 *   run FILE HOST [NAME=VALUE...]     HOST is "iommu" or "no-iommu"
 *   watch SECONDS                     print each domain event and the domains then
 *   time-assign DOMID BDF N           N bare assigns (each deassigned again, untimed)
 *   time-pg SOCKET DOMAIN BDF N       N assigns through passguardd (each released again),
 *                                     then N owner requests (the floor of a request)
 *   time-ops DOMAIN BDF N             each question an assign asks the backend, N times
 *   time-floor DIR N                  what any daemon's assign costs at least, besides the
 *                                     hypervisor's call: N round trips of an assign's bytes
 *                                     over AF_UNIX to an echo, and N appends of an assign's
 *                                     journal record to a file in DIR, each fdatasynced
 *
 * The time commands print "PERF NAME n=N median_us=M mean_us=M min_us=M max_us=M":
 * tests/system compares passguard's assign with the bare hypervisor call of
 * the same device to the same domain, in the same boot, and where the time
 * of an assign goes, question by question.
 *
 * A scenario file has one call per line, "CALL ARGS... => EXPECT", with $NAME
 * replaced from the command line; "@iommu", "@no-iommu" and "@all" choose which
 * hosts the following lines apply to. EXPECT is "ok", an errno name, or for
 * owner "dom0", "io" or a domid, for caps "iommu" or "no-iommu". One line is
 * printed per call; the exit status is 1 when any answer differs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "hv.h"
#include "pg-util.h"
#include "pg-wire.h"

#define MAX_VARS 32
#define MAX_WORDS 8

struct probe {
        const struct hv_ops *ops;
        struct hv *hv;
};

static const char *err_name(int r)
{
        static char buf[32];
        const char *n;

        if (r >= 0)
                return "ok";
        n = pg_errno_name(-r);
        if (n)
                return n;
        snprintf(buf, sizeof(buf), "errno%d", -r);
        return buf;
}

static int parse_domid(const char *s, uint32_t *ret)
{
        char *end;
        unsigned long v;

        if (streq(s, "any")) {
                *ret = HV_DOMID_INVALID;
                return 0;
        }
        if (streq(s, "io")) {
                *ret = HV_DOMID_IO;
                return 0;
        }
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v > 0x7FFF)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

static const char *owner_name(uint32_t domid, char buf[16])
{
        if (domid == HV_DOMID_IO)
                return "io";
        if (domid == HV_DOMID_DOM0)
                return "dom0";
        snprintf(buf, 16, "%u", domid);
        return buf;
}

/*
 * Run one call. The answer ("ok", "EBUSY", "io", "iommu" ...) goes to
 * ret_answer; details for a human are printed when verbose.
 */
static int call(struct probe *p, char **w, int n, bool verbose, char ret_answer[64])
{
        uint32_t domid = 0, sbdf = 0;
        char bdf[PG_BDF_MAX], buf[16];
        int r;

#define NEED(k)                                                                                    \
        do {                                                                                       \
                if (n != (k))                                                                      \
                        return -EINVAL;                                                            \
        } while (0)

        if (streq(w[0], "caps")) {
                struct hv_caps caps;

                NEED(1);
                r = p->ops->host_caps(p->hv, &caps);
                if (r >= 0) {
                        snprintf(ret_answer, 64, "%s", caps.iommu ? "iommu" : "no-iommu");
                        if (verbose)
                                printf("iommu=%s interrupt_remapping=%d\n",
                                       caps.iommu ? "yes" : "no", caps.interrupt_remapping);
                        return 0;
                }
        } else if (streq(w[0], "domains")) {
                _cleanup_(freep) struct hv_domain *list = NULL;
                size_t count;

                NEED(1);
                r = p->ops->domain_list(p->hv, &list, &count);
                for (size_t i = 0; r >= 0 && i < count; i++)
                        printf("domain %u name=%s uuid=%s type=%s dying=%d\n", list[i].domid,
                               list[i].name, list[i].uuid, pg_domain_type_name(list[i].type),
                               list[i].dying);
        } else if (streq(w[0], "assignments")) {
                _cleanup_(freep) struct hv_assignment *list = NULL;
                size_t count;

                NEED(1);
                r = p->ops->assignments(p->hv, &list, &count);
                for (size_t i = 0; r >= 0 && i < count; i++)
                        printf("assigned %s %s\n", pg_bdf_format(list[i].sbdf, bdf),
                               owner_name(list[i].domid, buf));
        } else if (streq(w[0], "info") || streq(w[0], "owner") || streq(w[0], "group") ||
                   streq(w[0], "prepare") || streq(w[0], "unprepare")) {
                if (n < 2 || pg_bdf_parse(w[1], &sbdf) < 0)
                        return -EINVAL;
                if (streq(w[0], "info")) {
                        struct hv_pci_info info;

                        NEED(2);
                        r = p->ops->pci_info(p->hv, sbdf, &info);
                        if (r >= 0 && verbose)
                                printf("%s vendor=0x%04x device=0x%04x class=0x%06x driver=%s "
                                       "reset=%d reset_method=%s physfn=%d\n",
                                       pg_bdf_format(sbdf, bdf), info.vendor, info.device,
                                       info.class, info.driver[0] ? info.driver : "-",
                                       info.has_reset, info.reset_method, info.has_physfn);
                } else if (streq(w[0], "owner")) {
                        NEED(2);
                        r = p->ops->device_owner(p->hv, sbdf, &domid);
                        if (r >= 0) {
                                snprintf(ret_answer, 64, "%s", owner_name(domid, buf));
                                return 0;
                        }
                } else if (streq(w[0], "group")) {
                        _cleanup_(freep) uint32_t *list = NULL;
                        size_t count;

                        NEED(2);
                        r = p->ops->device_group(p->hv, sbdf, &list, &count);
                        if (r >= 0 && verbose) {
                                printf("group of %s: %zu other member(s)", w[1], count);
                                for (size_t i = 0; i < count; i++)
                                        printf(" %s", pg_bdf_format(list[i], bdf));
                                printf("\n");
                        }
                } else if (streq(w[0], "prepare")) {
                        char driver[HV_DRIVER_MAX];

                        NEED(2);
                        r = p->ops->pci_prepare(p->hv, sbdf, driver);
                        if (r >= 0 && verbose)
                                printf("prepared %s, was bound to %s\n", w[1],
                                       driver[0] ? driver : "-");
                } else {
                        if (n != 2 && n != 3)
                                return -EINVAL;
                        r = p->ops->pci_unprepare(p->hv, sbdf, n == 3 ? w[2] : NULL);
                }
        } else if (streq(w[0], "test-assign") || streq(w[0], "test_assign") ||
                   streq(w[0], "assign") || streq(w[0], "deassign")) {
                bool relaxed = false;

                if (n < 3 || parse_domid(w[1], &domid) < 0 || pg_bdf_parse(w[2], &sbdf) < 0)
                        return -EINVAL;
                if (streq(w[0], "assign")) {
                        if (n == 4 && streq(w[3], "relaxed"))
                                relaxed = true;
                        else if (n == 4 && !streq(w[3], "strict"))
                                return -EINVAL;
                        else if (n > 4)
                                return -EINVAL;
                        r = p->ops->assign(p->hv, domid, sbdf, relaxed);
                } else {
                        NEED(3);
                        r = streq(w[0], "deassign") ? p->ops->deassign(p->hv, domid, sbdf)
                                                    : p->ops->test_assign(p->hv, domid, sbdf);
                }
        } else
                return -EINVAL;
#undef NEED

        snprintf(ret_answer, 64, "%s", err_name(r));
        return 0;
}

static int split(char *line, char **w, int max)
{
        int n = 0;

        for (char *t = strtok(line, " \t"); t; t = strtok(NULL, " \t")) {
                if (n == max)
                        return -E2BIG;
                w[n++] = t;
        }
        return n;
}

/* Replace $NAME words from vars ("NAME=VALUE"). */
static int substitute(char **w, int n, char **vars, int nvars)
{
        for (int i = 0; i < n; i++) {
                bool found = false;

                if (w[i][0] != '$')
                        continue;
                for (int v = 0; v < nvars && !found; v++) {
                        size_t len = strcspn(vars[v], "=");

                        if (strlen(w[i] + 1) == len && strncmp(vars[v], w[i] + 1, len) == 0) {
                                w[i] = vars[v] + len + 1;
                                found = true;
                        }
                }
                if (!found) {
                        fprintf(stderr, "undefined variable %s\n", w[i]);
                        return -EINVAL;
                }
        }
        return 0;
}

static int run_file(struct probe *p, const char *file, const char *host, char **vars, int nvars)
{
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_(freep) char *line = NULL;
        size_t size = 0;
        unsigned lineno = 0, calls = 0, mismatches = 0;
        bool active = true;

        if (!streq(host, "iommu") && !streq(host, "no-iommu")) {
                fprintf(stderr, "host must be iommu or no-iommu\n");
                return 2;
        }
        f = fopen(file, "re");
        if (!f) {
                fprintf(stderr, "%s: %m\n", file);
                return 2;
        }
        while (getline(&line, &size, f) >= 0) {
                char *w[MAX_WORDS], *arrow, *expect;
                char answer[64], text[256];
                int n, e;

                lineno++;
                line[strcspn(line, "#\n")] = '\0';
                if (line[strspn(line, " \t")] == '\0')
                        continue;
                if (line[strspn(line, " \t")] == '@') {
                        char *s = line + strspn(line, " \t") + 1;

                        s[strcspn(s, " \t")] = '\0';
                        active = streq(s, "all") || streq(s, host);
                        continue;
                }
                if (!active)
                        continue;
                arrow = strstr(line, "=>");
                if (!arrow) {
                        fprintf(stderr, "%s:%u: missing \"=> EXPECT\"\n", file, lineno);
                        return 2;
                }
                *arrow = '\0';
                expect = arrow + 2;
                expect += strspn(expect, " \t");
                expect[strcspn(expect, " \t")] = '\0';
                n = split(line, w, MAX_WORDS);
                if (n <= 0 || substitute(w, n, vars, nvars) < 0 ||
                    (expect[0] == '$' && substitute(&expect, 1, vars, nvars) < 0)) {
                        fprintf(stderr, "%s:%u: bad line\n", file, lineno);
                        return 2;
                }
                text[0] = '\0';
                for (int i = 0; i < n; i++)
                        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%s",
                                 i ? " " : "", w[i]);
                e = call(p, w, n, false, answer);
                if (e < 0) {
                        fprintf(stderr, "%s:%u: bad call: %s\n", file, lineno, text);
                        return 2;
                }
                calls++;
                if (!streq(answer, expect))
                        mismatches++;
                printf("HVCALL %s:%u %-44s => %-10s expect %-10s %s\n", p->ops->name, lineno, text,
                       answer, expect, streq(answer, expect) ? "ok" : "MISMATCH");
                fflush(stdout);
        }
        printf("HVCALLS %s host=%s calls=%u mismatches=%u %s\n", p->ops->name, host, calls,
               mismatches, mismatches == 0 && calls > 0 ? "PASS" : "FAIL");
        return mismatches == 0 && calls > 0 ? 0 : 1;
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Each time the backend's watch fd fires: the time, the events, the domains. */
static int watch(struct probe *p, const char *seconds)
{
        long long start = now_ms(), end = start + atoi(seconds) * 1000LL;
        int fd = p->ops->watch_fd(p->hv);

        if (fd < 0) {
                fprintf(stderr, "watch_fd: %s\n", strerror(-fd));
                return 1;
        }
        for (long long t; (t = now_ms()) < end;) {
                _cleanup_(freep) struct hv_domain *list = NULL;
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                size_t n = 0;
                int r;

                r = poll(&pfd, 1, (int)(end - t));
                if (r < 0) {
                        fprintf(stderr, "poll: %m\n");
                        return 1;
                }
                if (r == 0)
                        break;
                r = p->ops->watch_drain(p->hv);
                printf("WATCH +%lldms events=%d domains:", now_ms() - start, r);
                if (p->ops->domain_list(p->hv, &list, &n) >= 0)
                        for (size_t i = 0; i < n; i++)
                                printf(" %u%s", list[i].domid, list[i].dying ? "(dying)" : "");
                printf("\n");
                fflush(stdout);
        }
        return 0;
}

#define TIME_MAX_N 1000

static void usage(FILE *f);

static long long now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_ll(const void *a, const void *b)
{
        long long x = *(const long long *)a, y = *(const long long *)b;

        return (x > y) - (x < y);
}

/*
 * The median, and the mean: a dom0 clock under QEMU can tick in steps of
 * milliseconds, so that most single samples read 0 and the median says
 * nothing, while the mean of many samples still does.
 */
static void print_times(const char *name, long long *t, int n)
{
        long long sum = 0;

        for (int i = 0; i < n; i++)
                sum += t[i];
        qsort(t, (size_t)n, sizeof(*t), cmp_ll);
        printf("PERF %s n=%d median_us=%lld mean_us=%lld min_us=%lld max_us=%lld\n", name, n,
               t[n / 2], sum / n, t[0], t[n - 1]);
}

static int parse_n(const char *s)
{
        int n = atoi(s);

        return n >= 1 && n <= TIME_MAX_N ? n : -EINVAL;
}

/* N times: assign (timed), deassign (not timed). The device must be free for domid. */
static int time_assign(struct probe *p, const char *dom, const char *bdf, const char *count)
{
        long long t[TIME_MAX_N];
        uint32_t domid, sbdf;
        int n = parse_n(count);

        if (n < 0 || parse_domid(dom, &domid) < 0 || pg_bdf_parse(bdf, &sbdf) < 0) {
                usage(stderr);
                return 2;
        }
        for (int i = 0; i < n; i++) {
                long long t0 = now_us();
                int r = p->ops->assign(p->hv, domid, sbdf, false);
                t[i] = now_us() - t0;
                if (r < 0) {
                        fprintf(stderr, "assign %u %s: %s\n", domid, bdf, err_name(r));
                        return 1;
                }
                r = p->ops->deassign(p->hv, domid, sbdf);
                if (r < 0) {
                        fprintf(stderr, "deassign %u %s: %s\n", domid, bdf, err_name(r));
                        return 1;
                }
        }
        print_times("bare-assign", t, n);
        return 0;
}

/*
 * The backend's answers an assign of bdf to the domain named dom needs, each
 * asked N times and timed: where the time of an assign goes on this host.
 */
static int time_ops(struct probe *p, const char *dom, const char *bdf, const char *count)
{
        enum { BY_NAME, GET, INFO, GROUP, OWNER, TEST, N_OPS };
        static const char *const names[N_OPS] = {"domain_by_name", "domain_get",   "pci_info",
                                                 "device_group",   "device_owner", "test_assign"};
        static long long t[N_OPS][TIME_MAX_N];
        struct hv_domain d;
        uint32_t sbdf, owner;
        int n = parse_n(count);

        if (n < 0 || pg_bdf_parse(bdf, &sbdf) < 0) {
                usage(stderr);
                return 2;
        }
        for (int i = 0; i < n; i++)
                for (int op = 0; op < N_OPS; op++) {
                        _cleanup_(freep) uint32_t *members = NULL;
                        struct hv_pci_info info;
                        long long t0 = now_us();
                        size_t n_members;
                        int r;

                        switch (op) {
                        case BY_NAME:
                                r = p->ops->domain_by_name(p->hv, dom, &d);
                                break;
                        case GET:
                                r = p->ops->domain_get(p->hv, d.domid, &d);
                                break;
                        case INFO:
                                r = p->ops->pci_info(p->hv, sbdf, &info);
                                break;
                        case GROUP:
                                r = p->ops->device_group(p->hv, sbdf, &members, &n_members);
                                break;
                        case OWNER:
                                r = p->ops->device_owner(p->hv, sbdf, &owner);
                                break;
                        default:
                                r = p->ops->test_assign(p->hv, d.domid, sbdf);
                                break;
                        }
                        t[op][i] = now_us() - t0;
                        if (r < 0) {
                                fprintf(stderr, "%s: %s\n", names[op], err_name(r));
                                return 1;
                        }
                }
        for (int op = 0; op < N_OPS; op++)
                print_times(names[op], t[op], n);
        return 0;
}

/* One request on fd, one reply line; whether it says "ok": true. */
static bool pg_call(int fd, const char *op, const char *domain, const char *bdf, int id)
{
        char line[65536];
        size_t len = 0;
        int k = domain ? snprintf(line, sizeof(line),
                                  "{\"id\":%d,\"op\":\"%s\",\"domain\":\"%s\",\"device\":\"%s\"}\n",
                                  id, op, domain, bdf)
                       : snprintf(line, sizeof(line),
                                  "{\"id\":%d,\"op\":\"%s\",\"device\":\"%s\"}\n", id, op, bdf);

        if (k < 0 || (size_t)k >= sizeof(line) || write(fd, line, (size_t)k) != k)
                return false;
        while (len < sizeof(line) - 1) {
                ssize_t m = read(fd, line + len, sizeof(line) - 1 - len);
                if (m <= 0)
                        return false;
                len += (size_t)m;
                if (memchr(line, '\n', len))
                        break;
        }
        line[len] = '\0';
        json_t *reply = json_loads(line, JSON_DISABLE_EOF_CHECK, NULL);
        bool ok = json_is_true(json_object_get(reply, "ok"));
        if (!ok)
                fprintf(stderr, "%s %s %s: %s", op, domain ? domain : "-", bdf, line);
        json_decref(reply);
        return ok;
}

/*
 * N times over one connection: assign (timed, request to reply), release (not
 * timed); then N owner requests of the device, timed: the floor of a request
 * to this daemon on this host (the socket, the daemon's loop, its kept dump).
 */
static int time_pg(const char *socket_path, const char *domain, const char *bdf, const char *count)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_(closep) int fd = -1;
        long long t[TIME_MAX_N];
        int n = parse_n(count);

        if (n < 0 || strlen(socket_path) >= sizeof(sa.sun_path)) {
                usage(stderr);
                return 2;
        }
        strcpy(sa.sun_path, socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "%s: %m\n", socket_path);
                return 1;
        }
        for (int i = 0; i < n; i++) {
                long long t0 = now_us();
                bool ok = pg_call(fd, "assign", domain, bdf, 2 * i + 1);
                t[i] = now_us() - t0;
                if (!ok || !pg_call(fd, "release", domain, bdf, 2 * i + 2))
                        return 1;
        }
        print_times("pg-assign", t, n);
        for (int i = 0; i < n; i++) {
                long long t0 = now_us();
                bool ok = pg_call(fd, "owner", NULL, bdf, 2 * n + i + 1);
                t[i] = now_us() - t0;
                if (!ok)
                        return 1;
        }
        print_times("pg-owner", t, n);
        return 0;
}

/*
 * The floors of a request that keeps DESIGN.md invariant 4, on this host:
 * the round trip of an assign's bytes to a process that only echoes a reply
 * of a grant's length, and one durable append of a journal record of an
 * assign's length (an assign makes two: its intent, its outcome).
 */
static int time_floor(const char *dir, const char *count)
{
        static const char request[] = "{\"id\":1,\"op\":\"assign\",\"domain\":\"g-other\","
                                      "\"device\":\"0000:00:05.0\"}\n";
        char reply[256], record[512], path[4096], buf[4096];
        long long t[TIME_MAX_N];
        int n = parse_n(count), sv[2], fd;
        pid_t pid;

        if (n < 0 || snprintf(path, sizeof(path), "%s/.pg-hvprobe-floor", dir) >= (int)sizeof(path)) {
                usage(stderr);
                return 2;
        }
        memset(reply, 'r', sizeof(reply) - 1);
        reply[sizeof(reply) - 1] = '\n';
        memset(record, 'j', sizeof(record) - 1);
        record[sizeof(record) - 1] = '\n';
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 1;
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                close(sv[0]);
                while (read(sv[1], buf, sizeof(buf)) > 0)
                        if (write(sv[1], reply, sizeof(reply)) != (ssize_t)sizeof(reply))
                                _exit(1);
                _exit(0);
        }
        close(sv[1]);
        for (int i = 0; i < n; i++) {
                long long t0 = now_us();
                size_t got = 0;
                if (write(sv[0], request, sizeof(request) - 1) != (ssize_t)sizeof(request) - 1)
                        return 1;
                while (got < sizeof(reply)) {
                        ssize_t m = read(sv[0], buf, sizeof(buf));
                        if (m <= 0)
                                return 1;
                        got += (size_t)m;
                }
                t[i] = now_us() - t0;
        }
        close(sv[0]);
        (void)waitpid(pid, NULL, 0);
        print_times("echo-round-trip", t, n);

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) {
                fprintf(stderr, "%s: %m\n", path);
                return 1;
        }
        for (int i = 0; i < n; i++) {
                long long t0 = now_us();
                if (write(fd, record, sizeof(record)) != (ssize_t)sizeof(record) || fdatasync(fd) < 0) {
                        fprintf(stderr, "%s: %m\n", path);
                        close(fd);
                        unlink(path);
                        return 1;
                }
                t[i] = now_us() - t0;
        }
        close(fd);
        unlink(path);
        print_times("durable-append", t, n);
        return 0;
}

static void usage(FILE *f)
{
        fputs("usage: pg-hvprobe [--backend xen|sim] [--sim-host FILE] [--sysfs-root DIR] COMMAND\n"
              "  caps | domains | info BDF | owner BDF | assignments | group BDF\n"
              "  test-assign DOMID|any BDF | assign DOMID BDF [strict|relaxed]\n"
              "  deassign DOMID BDF | prepare BDF | unprepare BDF [DRIVER]\n"
              "  run FILE iommu|no-iommu [NAME=VALUE...] | watch SECONDS\n"
              "  time-assign DOMID BDF N | time-pg SOCKET DOMAIN BDF N\n"
              "  time-ops DOMAIN BDF N | time-floor DIR N\n",
              f);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"backend", required_argument, NULL, 'b'},
                {"sim-host", required_argument, NULL, 's'},
                {"sysfs-root", required_argument, NULL, 'r'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct hv_config cfg = {0};
        const char *backend = "xen";
        struct probe p = {0};
        char answer[64];
        int c, r, ret;

        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'b':
                        backend = optarg;
                        break;
                case 's':
                        cfg.sim_host = optarg;
                        break;
                case 'r':
                        cfg.sysfs_root = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        p.ops = pgd_hv_lookup(backend);
        if (!p.ops) {
                fprintf(stderr, "backend %s is not built in\n", backend);
                return 2;
        }
        r = p.ops->open(&cfg, &p.hv);
        if (r < 0) {
                fprintf(stderr, "cannot open the %s backend: %s\n", backend, strerror(-r));
                return 3;
        }

        if (streq(argv[optind], "run")) {
                if (argc - optind < 3 || argc - optind - 3 > MAX_VARS) {
                        usage(stderr);
                        ret = 2;
                } else
                        ret = run_file(&p, argv[optind + 1], argv[optind + 2], argv + optind + 3,
                                       argc - optind - 3);
        } else if (streq(argv[optind], "watch") && argc - optind == 2) {
                ret = watch(&p, argv[optind + 1]);
        } else if (streq(argv[optind], "time-assign") && argc - optind == 4) {
                ret = time_assign(&p, argv[optind + 1], argv[optind + 2], argv[optind + 3]);
        } else if (streq(argv[optind], "time-ops") && argc - optind == 4) {
                ret = time_ops(&p, argv[optind + 1], argv[optind + 2], argv[optind + 3]);
        } else if (streq(argv[optind], "time-floor") && argc - optind == 3) {
                ret = time_floor(argv[optind + 1], argv[optind + 2]);
        } else if (streq(argv[optind], "time-pg") && argc - optind == 5) {
                ret = time_pg(argv[optind + 1], argv[optind + 2], argv[optind + 3],
                              argv[optind + 4]);
        } else if (call(&p, argv + optind, argc - optind, true, answer) < 0) {
                usage(stderr);
                ret = 2;
        } else {
                printf("%s\n", answer);
                /* An errno answer is a failure; ok, owners and caps are not. */
                ret = answer[0] == 'E' || strncmp(answer, "errno", 5) == 0 ? 1 : 0;
        }
        p.ops->close(p.hv);
        return ret;
}
