/* SPDX-License-Identifier: MIT */
/*
 * The request path of a real passguardd, each number printed against a floor
 * measured in the same run on the same machine (issue 8):
 *
 *   explain, status   round trip vs an AF_UNIX echo of the same request and
 *                     reply bytes
 *   assign+release    vs the bare durable writes the journal needs for them
 *                     (the same records appended and fdatasynced, in the
 *                     same directory); beside it, the same records written
 *                     bare as the journal writes them (into space zero-filled
 *                     ahead), the disk's fsync floor and the old floor (two
 *                     durable file replacements)
 *   1/8/64 clients    assign+release cycles per second, vs one client
 *   decision          p50/p99 of the policy decision assign makes (the
 *                     index), at 10, 1,000 and 10,000 rules, vs 10 rules
 *   policy load       10,000 rules, vs libconfig parsing the same text
 *   start-up          4,096 devices and 1,024 grants, until READY=1, vs
 *                     starting `passguardd --version`
 *   RSS               idle, and loaded (10,000 rules, 1,024 grants, 256
 *                     connections), vs idle
 *   backend calls     counted by the simulated host per assign and release
 *   list              at 1,024 grants, vs an echo of the same bytes
 *
 * The simulated host (72 devices) is on tmpfs (/dev/shm), the state
 * directory on disk (/var/tmp): fsync there means something. The policy has
 * 1,000 rules shaped like bench-policy's, and its last rule is the one that
 * matches. The round trips compared with an echo (explain, status, list) run
 * with the bench, its echo server and the daemon pinned to one CPU: between
 * two CPUs of a virtual machine a round trip costs more in wake-ups than
 * either side's work, and which CPUs the scheduler picks would decide the
 * ratio. The rest runs unpinned, as a daemon and its clients would. Not a
 * pass/fail timing test: it fails only when something does not work.
 * $PASSGUARDD is the daemon (set by meson).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libconfig.h>

#include "grants.h"
#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

#define N_DEVICES 72
#define N_DOMAINS 8
#define BENCH_UID_NAME "bench"

static const char *daemon_bin;
static char shm_dir[] = "/dev/shm/pg-bench-XXXXXX";
static char disk_dir[] = "/var/tmp/pg-bench-XXXXXX";
static int failures;

#define FAIL(...)                                                                                  \
        do {                                                                                       \
                fprintf(stderr, "bench-daemon: " __VA_ARGS__);                                     \
                fputc('\n', stderr);                                                               \
                failures++;                                                                        \
        } while (0)

static double now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

/* The q-quantile of v (sorted in place). */
static double quantile(double *v, size_t n, double q)
{
        qsort(v, n, sizeof(*v), compare_double);
        return v[(size_t)(q * (double)(n - 1))];
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");

        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

/* ---- CPUs ---- */

static cpu_set_t all_cpus;

/* Pin this process and the daemon to the CPU this process is on (pin) or let both go. */
static void pin(pid_t daemon, bool on)
{
        cpu_set_t one;

        if (CPU_COUNT(&all_cpus) == 0)
                return;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
        (void)sched_setaffinity(0, sizeof(cpu_set_t), on ? &one : &all_cpus);
        if (daemon > 0)
                (void)sched_setaffinity(daemon, sizeof(cpu_set_t), on ? &one : &all_cpus);
}

/* ---- the fixture ---- */

static uint32_t bench_sbdf(unsigned i)
{
        return PG_SBDF(0, 0x10 + i / 32, i % 32, 0);
}

static void domain_uuid(unsigned i, char buf[static 37])
{
        snprintf(buf, 37, "5f0c1d2e-8a4b-4c6d-9e7f-%012x", 0x100 + i);
}

/* n devices, quarantined and bound to pciback; the first n_assigned assigned round-robin. */
static void write_host(const char *path, unsigned n, unsigned n_assigned)
{
        FILE *f = fopen(path, "we");
        char bdf[PG_BDF_MAX], uuid[37];

        if (!f) {
                perror(path);
                exit(1);
        }
        fprintf(f, "{ \"iommu\": true, \"interrupt_remapping\": true,\n  \"devices\": [\n");
        for (unsigned i = 0; i < n; i++) {
                char owner[16];
                if (i < n_assigned)
                        snprintf(owner, sizeof(owner), "%u", 1 + i % N_DOMAINS);
                else
                        snprintf(owner, sizeof(owner), "\"io\"");
                fprintf(f,
                        "    { \"bdf\": \"%s\", \"vendor\": \"0x10de\", \"device\": \"0x1eb8\", "
                        "\"class\": \"0x030000\", \"driver\": \"pciback\", \"group\": %u, "
                        "\"reset\": \"flr\", \"assigned_to\": %s }%s\n",
                        pg_bdf_format(bench_sbdf(i), bdf), 100 + i, owner, i + 1 < n ? "," : "");
        }
        fprintf(f, "  ],\n  \"domains\": [\n    { \"domid\": 0, \"name\": \"Domain-0\", \"type\": "
                   "\"pv\", \"uuid\": \"00000000-0000-0000-0000-000000000000\" }");
        for (unsigned i = 0; i < N_DOMAINS; i++) {
                domain_uuid(i, uuid);
                fprintf(f,
                        ",\n    { \"domid\": %u, \"name\": \"bench-%u\", \"type\": \"hvm\", "
                        "\"uuid\": \"%s\" }",
                        1 + i, i, uuid);
        }
        fprintf(f, "\n  ],\n  \"faults\": {},\n  \"calls\": {}\n}\n");
        if (fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

/*
 * n rules shaped like bench-policy's (exact bdfs of absent devices, distinct
 * vendors, vendors with a class), each for other domains; the last one
 * allows the bench's GPUs to bench-* domains.
 */
static char *policy_text(unsigned n)
{
        size_t cap = 512 + (size_t)n * 200, len = 0;
        char *t = malloc(cap);

        if (!t)
                exit(1);
        len += (size_t)snprintf(t + len, cap - len,
                                "version = 1;\n"
                                "clients = ( { name = \"" BENCH_UID_NAME "\"; uid = %u; },"
                                " { name = \"other\"; uid = 4242; } );\n"
                                "admins = [ \"" BENCH_UID_NAME "\" ];\n"
                                "rules = (\n",
                                (unsigned)getuid());
        for (unsigned i = 0; i + 1 < n; i++) {
                char dev[96];
                if (i % 3 == 0)
                        snprintf(dev, sizeof(dev), "{ bdf = \"fe:%02x.%x\"; }", (i >> 3) & 0x1f,
                                 i & 7);
                else if (i % 3 == 1)
                        snprintf(dev, sizeof(dev), "{ vendor = %u; }", i);
                else
                        snprintf(dev, sizeof(dev), "{ vendor = %u; class = \"0x02\"; }", i);
                len += (size_t)snprintf(t + len, cap - len,
                                        "  { name = \"r%u\"; action = \"%s\"; devices = ( %s ); "
                                        "domains = ( { name = \"dom-%u-*\"; } ); },\n",
                                        i, i % 5 == 4 ? "deny" : "allow", dev, i);
        }
        snprintf(t + len, cap - len,
                 "  { name = \"last\"; action = \"allow\"; clients = [ \"" BENCH_UID_NAME "\" ];\n"
                 "    devices = ( { vendor = 0x10de; class = \"0x03\"; } );\n"
                 "    domains = ( { name = \"bench-*\"; type = \"hvm\"; } );\n"
                 "    reset = \"if-available\"; }\n);\n");
        return t;
}

/* n grants of the first n devices, assigned as write_host() assigns them. */
static void write_grants(const char *state, unsigned n)
{
        struct pgd_grants *g = NULL;

        if (pgd_grants_new_empty(state, &g) < 0)
                exit(1);
        for (unsigned i = 0; i < n; i++) {
                struct pgd_grant gr = {
                        .sbdf = bench_sbdf(i),
                        .domid = 1 + i % N_DOMAINS,
                        .client_uid = getuid(),
                        .client_pid = 1,
                        .rdm_policy = PG_POLICY_RDM_STRICT,
                        .time = 1700000000,
                };
                domain_uuid(i % N_DOMAINS, gr.domain_uuid);
                snprintf(gr.domain_name, sizeof(gr.domain_name), "bench-%u", i % N_DOMAINS);
                snprintf(gr.rule, sizeof(gr.rule), "last");
                if (pgd_grants_add(g, &gr) < 0)
                        exit(1);
        }
        if (pgd_grants_commit(g) < 0) {
                fprintf(stderr, "cannot write the grants in %s\n", state);
                exit(1);
        }
        pgd_grants_free(g);
}

/* ---- the daemon ---- */

struct daemon {
        pid_t pid;
        char host[PATH_MAX], policy[PATH_MAX], state[PATH_MAX], sock[108], config[PATH_MAX + 32];
        char log[PATH_MAX + 32];
};

static void daemon_paths(struct daemon *d, const char *name, const char *host_dir)
{
        snprintf(d->host, sizeof(d->host), "%s/%s-host.json", host_dir, name);
        snprintf(d->policy, sizeof(d->policy), "%s/%s-policy.conf", disk_dir, name);
        snprintf(d->state, sizeof(d->state), "%s/%s-state", disk_dir, name);
        snprintf(d->sock, sizeof(d->sock), "%s/%s.sock", shm_dir, name);
        snprintf(d->config, sizeof(d->config), "%s/%s.conf", disk_dir, name);
        snprintf(d->log, sizeof(d->log), "%s/%s.log", disk_dir, name);
        if (mkdir(d->state, 0700) < 0 && errno != EEXIST)
                exit(1);
        write_file(d->config, "max_connections = 400;\nmax_connections_per_uid = 400;\n"
                              "idle_timeout = 600;\n");
}

/* Start the daemon; returns the microseconds until it said READY=1 (or < 0). */
static double daemon_start(struct daemon *d)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char notify[100], buf[256];
        double t0;
        int nfd;

        snprintf(notify, sizeof(notify), "%s/notify-%d", shm_dir, (int)getpid());
        unlink(notify);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify);
        nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (nfd < 0 || bind(nfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -1;
        t0 = now_us();
        d->pid = fork();
        if (d->pid == 0) {
                int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                setenv("NOTIFY_SOCKET", notify, 1);
                unsetenv("LISTEN_FDS");
                execl(daemon_bin, daemon_bin, "--backend", "sim", "--sim-host", d->host, "--socket",
                      d->sock, "--state-dir", d->state, "--policy", d->policy, "--config",
                      d->config, (char *)NULL);
                _exit(127);
        }
        for (;;) {
                struct pollfd p = {.fd = nfd, .events = POLLIN};
                if (poll(&p, 1, 20000) <= 0) {
                        close(nfd);
                        return -1;
                }
                ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);
                if (n < 0)
                        continue;
                buf[n] = '\0';
                if (strstr(buf, "READY=1"))
                        break;
        }
        double ready = now_us() - t0;
        close(nfd);
        unlink(notify);
        return ready;
}

static void daemon_stop(struct daemon *d)
{
        int st;

        if (d->pid <= 0)
                return;
        kill(d->pid, SIGTERM);
        waitpid(d->pid, &st, 0);
        d->pid = 0;
}

static long rss_kib(pid_t pid)
{
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* ---- connections ---- */

static int conn_open(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

/* Send line (with its '\n'), read one reply line into buf. Returns its length or -1. */
static ssize_t conn_call(int fd, const char *line, size_t len, char *buf, size_t size)
{
        size_t got = 0;

        if (write(fd, line, len) != (ssize_t)len)
                return -1;
        for (;;) {
                ssize_t n = read(fd, buf + got, size - got - 1);
                if (n <= 0)
                        return -1;
                got += (size_t)n;
                if (buf[got - 1] == '\n')
                        break;
                if (got + 1 >= size)
                        return -1;
        }
        buf[got] = '\0';
        return (ssize_t)got;
}

static bool reply_ok(const char *reply)
{
        return strstr(reply, "\"ok\":true") != NULL;
}

/* An AF_UNIX echo server in a child: for every line it reads, it writes reply. */
static pid_t echo_start(const char *path, const char *reply, size_t reply_len)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int lfd;
        pid_t pid;

        unlink(path);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0)
                return -1;
        pid = fork();
        if (pid == 0) {
                static char in[65536];
                for (;;) {
                        int c = accept(lfd, NULL, NULL);
                        size_t have = 0;
                        if (c < 0)
                                _exit(0);
                        for (;;) {
                                struct pollfd p = {.fd = c, .events = POLLIN};
                                if (poll(&p, 1, -1) < 0)
                                        break;
                                ssize_t n = read(c, in + have, sizeof(in) - have);
                                if (n <= 0)
                                        break;
                                have += (size_t)n;
                                char *nl;
                                while ((nl = memchr(in, '\n', have))) {
                                        size_t used = (size_t)(nl - in) + 1;
                                        if (write(c, reply, reply_len) != (ssize_t)reply_len)
                                                break;
                                        memmove(in, in + used, have - used);
                                        have -= used;
                                }
                        }
                        close(c);
                }
        }
        close(lfd);
        return pid;
}

/* Mean round trip (us) of n calls of line on path, after a warm-up. */
static double round_trip(const char *path, const char *line, int n)
{
        static char buf[128 * 1024];
        size_t len = strlen(line);
        double t0, total;
        int fd = conn_open(path);

        if (fd < 0)
                return -1;
        for (int i = 0; i < n / 10 + 10; i++)
                if (conn_call(fd, line, len, buf, sizeof(buf)) < 0) {
                        close(fd);
                        return -1;
                }
        t0 = now_us();
        for (int i = 0; i < n; i++)
                if (conn_call(fd, line, len, buf, sizeof(buf)) < 0) {
                        close(fd);
                        return -1;
                }
        total = now_us() - t0;
        close(fd);
        return total / n;
}

/* The daemon's round trip of line vs an echo of the same request and reply bytes. */
static void vs_echo(const struct daemon *d, const char *what, const char *line, int n,
                    const char *target)
{
        static char reply[128 * 1024];
        char echo_path[128];
        ssize_t len;
        double t_daemon, t_echo;
        pid_t echo;
        int fd = conn_open(d->sock);

        len = fd < 0 ? -1 : conn_call(fd, line, strlen(line), reply, sizeof(reply));
        if (fd >= 0)
                close(fd);
        if (len < 0 || !reply_ok(reply)) {
                FAIL("%s: no good reply: %s", what, len < 0 ? "(none)" : reply);
                return;
        }
        snprintf(echo_path, sizeof(echo_path), "%s/echo.sock", shm_dir);
        pin(d->pid, true);
        echo = echo_start(echo_path, reply, (size_t)len);
        t_daemon = round_trip(d->sock, line, n);
        t_echo = round_trip(echo_path, line, n);
        kill(echo, SIGKILL);
        waitpid(echo, NULL, 0);
        pin(d->pid, false);
        if (t_daemon < 0 || t_echo < 0) {
                FAIL("%s: a round trip failed", what);
                return;
        }
        printf("%-44s %9.1f us  floor %8.1f us (echo, %zd-byte reply; one CPU)  ratio %6.2f  %s\n",
               what, t_daemon, t_echo, len, t_daemon / t_echo, target);
}

static json_int_t calls(const struct daemon *d, const char *op)
{
        json_t *host = json_load_file(d->host, 0, NULL);
        json_int_t n = json_integer_value(json_object_get(json_object_get(host, "calls"), op));

        json_decref(host);
        return n;
}

static json_int_t all_calls(const struct daemon *d)
{
        static const char *const ops[] = {"test_assign", "assign", "deassign", "device_group",
                                          "reset"};
        json_int_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(ops); i++)
                n += calls(d, ops[i]);
        return n;
}

static void request_line(char *buf, size_t size, const char *op, unsigned dev, unsigned dom)
{
        char bdf[PG_BDF_MAX];

        snprintf(buf, size, "{\"id\":1,\"op\":\"%s\",\"device\":\"%s\",\"domain\":\"bench-%u\"}\n",
                 op, pg_bdf_format(bench_sbdf(dev), bdf), dom);
}

/* ---- assign + release ---- */

/*
 * A floor's file: the cycle's records appended bare (O_APPEND, the file
 * grows with each), or written bare the way the journal writes them: at the
 * end of the records, into space zero-filled 64 KiB at a time ahead of them.
 */
struct floor_file {
        int fd;
        bool zero_filled;
        off_t end, alloc;
};

#define FLOOR_CHUNK (64 * 1024)

/* The floor: cycles × the records, each written to f and fdatasynced. Its time in us. */
static double journal_floor(struct floor_file *f, const char *const *records, size_t n_records,
                            int cycles)
{
        static const char zeros[FLOOR_CHUNK];
        double t0 = now_us();

        for (int c = 0; c < cycles; c++)
                for (size_t i = 0; i < n_records; i++) {
                        size_t len = strlen(records[i]);
                        if (!f->zero_filled) {
                                if (write(f->fd, records[i], len) != (ssize_t)len)
                                        return -1;
                        } else {
                                if (f->end + (off_t)len > f->alloc) {
                                        if (pwrite(f->fd, zeros, FLOOR_CHUNK, f->alloc) !=
                                            FLOOR_CHUNK)
                                                return -1;
                                        f->alloc += FLOOR_CHUNK;
                                }
                                if (pwrite(f->fd, records[i], len, f->end) != (ssize_t)len)
                                        return -1;
                                f->end += (off_t)len;
                        }
                        if (fdatasync(f->fd) < 0)
                                return -1;
                }
        return now_us() - t0;
}

/* The disk's own floor: one small append and fdatasync, per call. */
static double fsync_floor(const struct floor_file *f, int n)
{
        double t0 = now_us();

        for (int c = 0; c < n; c++)
                if (write(f->fd, "x\n", 2) != 2 || fdatasync(f->fd) < 0)
                        return -1;
        return (now_us() - t0) / n;
}

/* cycles assign+release cycles on fd; their time in us, or -1. */
static double daemon_cycles(int fd, const char *assign, const char *release, int cycles)
{
        static char buf[65536];
        double t0 = now_us();

        for (int i = 0; i < cycles; i++)
                if (conn_call(fd, assign, strlen(assign), buf, sizeof(buf)) < 0 || !reply_ok(buf) ||
                    conn_call(fd, release, strlen(release), buf, sizeof(buf)) < 0 ||
                    !reply_ok(buf)) {
                        FAIL("assign+release failed: %s", buf);
                        return -1;
                }
        return now_us() - t0;
}

/*
 * The daemon's cycles and the two floors', in ROUNDS blocks that take turns,
 * so that the disk's drift over the run weighs on all alike. ret[0] is the
 * daemon's time per cycle, ret[1] the appended floor's, ret[2] the
 * zero-filled floor's.
 */
#define ROUNDS 10
static int cycles_vs_floor(int conn, struct floor_file floors[static 2], const char *assign,
                           const char *release, char *const *records, int cycles, double ret[3])
{
        double t[3] = {0, 0, 0};
        int per = cycles / ROUNDS > 0 ? cycles / ROUNDS : 1;

        for (int r = 0; r < ROUNDS; r++) {
                double a = daemon_cycles(conn, assign, release, per);
                double b = journal_floor(&floors[0], (const char *const *)records, 3, per);
                double c = journal_floor(&floors[1], (const char *const *)records, 3, per);
                if (a < 0 || b < 0 || c < 0)
                        return -1;
                t[0] += a;
                t[1] += b;
                t[2] += c;
        }
        for (int i = 0; i < 3; i++)
                ret[i] = t[i] / (per * ROUNDS);
        return 0;
}

/* Two durable replacements of a file of len bytes (write, fsync, rename, fsync the dir). */
static double replace_floor(const char *dir, size_t len, int cycles)
{
        char tmp[PATH_MAX + 32], path[PATH_MAX + 32];
        char *text = malloc(len);
        double t0;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (!text || dfd < 0)
                return -1;
        memset(text, 'x', len);
        snprintf(tmp, sizeof(tmp), "%s/floor.tmp", dir);
        snprintf(path, sizeof(path), "%s/floor.json", dir);
        t0 = now_us();
        for (int c = 0; c < 2 * cycles; c++) {
                int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
                        break;
                close(fd);
                if (rename(tmp, path) < 0 || fsync(dfd) < 0)
                        break;
        }
        double t = (now_us() - t0) / cycles;
        unlink(path);
        close(dfd);
        free(text);
        return t;
}

/* The journal lines of the last cycle (intent, grant, release), from the daemon's state. */
static size_t last_cycle_records(const struct daemon *d, char *out[3])
{
        char path[PATH_MAX + 32], line[4096];
        char *ring[3] = {NULL, NULL, NULL};
        size_t n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", d->state, PGD_GRANTS_JOURNAL);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f)) {
                /* the zeros the journal keeps ahead of its records end them */
                if (line[0] == '\0' || !strchr(line, '\n'))
                        break;
                if (strstr(line, "\"op\":\"base\""))
                        continue;
                free(ring[n % 3]);
                ring[n % 3] = strdup(line);
                n++;
        }
        fclose(f);
        if (n < 3)
                return 0;
        for (size_t i = 0; i < 3; i++)
                out[i] = ring[(n + i) % 3];
        return 3;
}

static void bench_assign_release(const struct daemon *d, int cycles)
{
        static char buf[65536];
        char assign[256], release[256];
        char *records[3] = {NULL, NULL, NULL};
        json_int_t calls0, assigns0, deassigns0;
        double t[3], t1[3], t_fsync, t_replace;
        char floor_path[2][PATH_MAX + 32];
        struct floor_file floors[2] = {{.fd = -1}, {.fd = -1, .zero_filled = true}};
        int fd = conn_open(d->sock), r;

        request_line(assign, sizeof(assign), "assign", 0, 0);
        request_line(release, sizeof(release), "release", 0, 0);
        if (fd < 0) {
                FAIL("assign+release: cannot connect");
                return;
        }
        /* warm up, and the counters of exactly one cycle */
        for (int i = 0; i < 20; i++)
                if (conn_call(fd, assign, strlen(assign), buf, sizeof(buf)) < 0 || !reply_ok(buf) ||
                    conn_call(fd, release, strlen(release), buf, sizeof(buf)) < 0 ||
                    !reply_ok(buf)) {
                        FAIL("assign+release: %s", buf);
                        close(fd);
                        return;
                }
        usleep(5000); /* the simulated host shows its counts within a millisecond */
        calls0 = all_calls(d);
        assigns0 = calls(d, "assign");
        deassigns0 = calls(d, "deassign");
        json_int_t resets0 = calls(d, "reset"), tests0 = calls(d, "test_assign"),
                   groups0 = calls(d, "device_group");
        (void)!conn_call(fd, assign, strlen(assign), buf, sizeof(buf));
        usleep(5000);
        json_int_t per_assign = all_calls(d) - calls0;
        printf("%-44s %9" JSON_INTEGER_FORMAT "     (test_assign %" JSON_INTEGER_FORMAT
               ", device_group %" JSON_INTEGER_FORMAT ", reset %" JSON_INTEGER_FORMAT
               ", assign %" JSON_INTEGER_FORMAT ")  must show <= 4\n",
               "counted backend calls per assign", per_assign, calls(d, "test_assign") - tests0,
               calls(d, "device_group") - groups0, calls(d, "reset") - resets0,
               calls(d, "assign") - assigns0);
        json_int_t calls1 = all_calls(d);
        resets0 = calls(d, "reset");
        (void)!conn_call(fd, release, strlen(release), buf, sizeof(buf));
        usleep(5000);
        json_int_t per_release = all_calls(d) - calls1;
        printf("%-44s %9" JSON_INTEGER_FORMAT "     (deassign %" JSON_INTEGER_FORMAT
               ", reset %" JSON_INTEGER_FORMAT ")\n",
               "counted backend calls per release", per_release, calls(d, "deassign") - deassigns0,
               calls(d, "reset") - resets0);

        (void)!conn_call(fd, assign, strlen(assign), buf, sizeof(buf));
        (void)!conn_call(fd, release, strlen(release), buf, sizeof(buf));
        if (last_cycle_records(d, records) != 3) {
                FAIL("assign+release: the journal does not hold the cycle's three records");
                close(fd);
                return;
        }
        for (int i = 0; i < 2; i++) {
                snprintf(floor_path[i], sizeof(floor_path[i]), "%s/floor-%d.journal", d->state,
                         i);
                floors[i].fd = open(floor_path[i],
                                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
                                            (floors[i].zero_filled ? 0 : O_APPEND),
                                    0600);
        }
        if (floors[0].fd < 0 || floors[1].fd < 0 ||
            cycles_vs_floor(fd, floors, assign, release, records, cycles, t) < 0) {
                FAIL("assign+release: the timed cycles failed");
                goto out;
        }
        /*
         * The same with the bench (the client) and the daemon on one CPU: a
         * wake-up across two CPUs of a virtual machine costs more than either
         * side's work (as for the echo comparisons above).
         */
        pin(d->pid, true);
        r = cycles_vs_floor(fd, floors, assign, release, records, cycles, t1);
        pin(d->pid, false);
        if (r < 0) {
                FAIL("assign+release: the timed cycles failed");
                goto out;
        }
        t_fsync = fsync_floor(&floors[0], cycles);
        t_replace = replace_floor(d->state, 500, cycles);
        printf("%-44s %9.1f us  floor %8.1f us (the cycle's 3 journal records, appended and "
               "fdatasynced bare; taking turns)  ratio %6.2f  must show <= 1.3\n",
               "assign+release cycle (state dir on disk)", t[0], t[1], t[0] / t[1]);
        printf("%-44s %9.1f us  floor %8.1f us (the same records written bare as the journal "
               "writes them, into zero-filled space)  ratio %6.2f\n",
               "  against the journal's own way of writing", t[0], t[2], t[0] / t[2]);
        printf("%-44s %9.1f us  floor %8.1f us  ratio %6.2f; zero-filled floor %8.1f us  ratio "
               "%6.2f\n",
               "  the same, client and daemon on one CPU", t1[0], t1[1], t1[0] / t1[1], t1[2],
               t1[0] / t1[2]);
        printf("%-44s %9.1f us  (one append+fdatasync); two durable file replacements (the old "
               "floor): %.1f us, ratio %.2f\n",
               "  the disk's fsync floor", t_fsync, t_replace, t[0] / t_replace);
out:
        for (int i = 0; i < 2; i++)
                if (floors[i].fd >= 0) {
                        close(floors[i].fd);
                        unlink(floor_path[i]);
                }
        close(fd);
        for (size_t i = 0; i < 3; i++)
                free(records[i]);
}

/* ---- clients ---- */

struct client {
        int fd;
        unsigned dev, dom;
        bool assigned; /* the last request sent was an assign */
        char in[4096];
        size_t have;
};

/* Assign+release cycles per second with n clients, each on its own device, for secs. */
static double cycles_per_second(const struct daemon *d, unsigned n, double secs)
{
        struct client *c = calloc(n, sizeof(*c));
        struct pollfd *p = calloc(n, sizeof(*p));
        char line[256];
        unsigned long done = 0;
        double t0, end;

        if (!c || !p)
                exit(1);
        for (unsigned i = 0; i < n; i++) {
                c[i].fd = conn_open(d->sock);
                c[i].dev = i;
                c[i].dom = i % N_DOMAINS;
                if (c[i].fd < 0) {
                        FAIL("%u clients: cannot connect", n);
                        return -1;
                }
        }
        t0 = now_us();
        end = t0 + secs * 1e6;
        for (unsigned i = 0; i < n; i++) {
                request_line(line, sizeof(line), "assign", c[i].dev, c[i].dom);
                (void)!write(c[i].fd, line, strlen(line));
                c[i].assigned = true;
        }
        unsigned open_clients = n;
        while (open_clients > 0) {
                for (unsigned i = 0; i < n; i++)
                        p[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
                if (poll(p, n, 5000) <= 0) {
                        FAIL("%u clients: no reply for 5 s", n);
                        break;
                }
                for (unsigned i = 0; i < n; i++) {
                        if (!(p[i].revents & POLLIN) || c[i].fd < 0)
                                continue;
                        ssize_t k = read(c[i].fd, c[i].in + c[i].have, sizeof(c[i].in) - c[i].have);
                        if (k <= 0) {
                                FAIL("%u clients: connection lost", n);
                                return -1;
                        }
                        c[i].have += (size_t)k;
                        if (c[i].in[c[i].have - 1] != '\n')
                                continue;
                        c[i].in[c[i].have] = '\0';
                        if (!reply_ok(c[i].in)) {
                                FAIL("%u clients: %s", n, c[i].in);
                                return -1;
                        }
                        c[i].have = 0;
                        if (!c[i].assigned)
                                done++;
                        if (!c[i].assigned && now_us() >= end) {
                                close(c[i].fd);
                                c[i].fd = -1;
                                p[i].fd = -1;
                                open_clients--;
                                continue;
                        }
                        c[i].assigned = !c[i].assigned;
                        request_line(line, sizeof(line), c[i].assigned ? "assign" : "release",
                                     c[i].dev, c[i].dom);
                        (void)!write(c[i].fd, line, strlen(line));
                }
        }
        double rate = (double)done / ((now_us() - t0) / 1e6);
        free(c);
        free(p);
        return rate;
}

static void bench_clients(const struct daemon *d, double secs)
{
        static const unsigned counts[] = {1, 8, 64};
        double rate[ELEMENTSOF(counts)];

        for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
                rate[i] = cycles_per_second(d, counts[i], secs);
                if (rate[i] <= 0)
                        return;
        }
        for (size_t i = 0; i < ELEMENTSOF(counts); i++)
                printf("%-44s %9.0f cycles/s  ratio to one client %6.2f%s\n",
                       counts[i] == 1   ? "assign+release, 1 client"
                       : counts[i] == 8 ? "assign+release, 8 clients"
                                        : "assign+release, 64 clients",
                       rate[i], rate[i] / rate[0], counts[i] == 64 ? "  must show >= 6" : "");
}

/* ---- the policy, in process ---- */

static struct pg_policy *load_policy(unsigned n, double *ret_us, double *ret_parse_us)
{
        _cleanup_(freep) char *text = policy_text(n);
        char path[PATH_MAX + 32];
        struct pg_policy_diags diags = {};
        struct pg_policy *p = NULL;
        config_t cfg;
        double t0;

        snprintf(path, sizeof(path), "%s/policy-%u.conf", disk_dir, n);
        write_file(path, text);
        t0 = now_us();
        if (pg_policy_load(path, &p, &diags) < 0) {
                pg_policy_diags_print(&diags, stderr);
                pg_policy_diags_clear(&diags);
                exit(1);
        }
        *ret_us = now_us() - t0;
        config_init(&cfg);
        t0 = now_us();
        if (!config_read_string(&cfg, text))
                exit(1);
        *ret_parse_us = now_us() - t0;
        config_destroy(&cfg);
        return p;
}

/* p50 and p99 of the decision assign makes (the index), in us. */
static void decision_times(const struct pg_policy *p, double *ret_p50, double *ret_p99)
{
        enum { N = 20000 };
        static double v[N];
        const struct pg_policy_identity id = {.uid = getuid(), .gid = getgid()};
        const struct pg_policy_device dev = {
                .sbdf = bench_sbdf(0),
                .vendor = 0x10de,
                .device = 0x1eb8,
                .subsystem_vendor = -1,
                .subsystem_device = -1,
                .class = 0x030000,
        };
        const struct pg_policy_domain dom = {
                .name = "bench-0", .domid = 1, .uuid = "x", .type = "hvm"};

        for (int i = 0; i < N; i++) {
                struct pg_policy_decision dec = {};
                double t0 = now_us();
                if (pg_policy_evaluate(p, &id, &dev, &dom, false, &dec) < 0 || !dec.allow ||
                    !streq(dec.rule, "last"))
                        FAIL("decision: rule %s", dec.rule ? dec.rule : "(none)");
                v[i] = now_us() - t0;
                pg_policy_decision_clear(&dec);
        }
        *ret_p50 = quantile(v, N, 0.5);
        *ret_p99 = quantile(v, N, 0.99);
}

static void bench_policy(void)
{
        enum { N_LOADS = 5 };
        static const unsigned sizes[] = {10, 1000, 10000};
        double p50[3], p99[3], loads[N_LOADS], parses[N_LOADS], first = 0;

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                double l, pa;
                struct pg_policy *p = load_policy(sizes[i], &l, &pa);
                decision_times(p, &p50[i], &p99[i]);
                if (sizes[i] == 10000)
                        first = l;
                pg_policy_free(p);
        }
        /*
         * 10,000 rules, N_LOADS times more, each after the last was freed, as
         * a reload replaces a policy: the median; and beside it the first load
         * of that size in this process (the first use of that much heap).
         */
        for (int i = 0; i < N_LOADS; i++) {
                struct pg_policy *p = load_policy(10000, &loads[i], &parses[i]);
                pg_policy_free(p);
        }
        double load = quantile(loads, N_LOADS, 0.5), parse = quantile(parses, N_LOADS, 0.5);
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                printf("decision (index), %5u rules %21s p50 %5.2f us  p99 %5.2f us  ratio p99 to "
                       "10 rules %5.2f%s\n",
                       sizes[i], "", p50[i], p99[i], p99[i] / p99[0],
                       sizes[i] == 10000 ? "  must show p99 < 5 us" : "");
        printf("%-44s %9.1f ms  floor %8.1f ms (libconfig parsing the same text)  ratio %6.2f  "
               "must show < 50 ms\n",
               "policy load, 10000 rules (median of 5)", load / 1e3, parse / 1e3, load / parse);
        printf("%-44s %9.1f ms\n", "  the first load of 10000 rules", first / 1e3);
}

/* ---- start-up, RSS, list ---- */

static double version_floor(void)
{
        enum { N = 20 };
        double v[N];

        for (int i = 0; i < N; i++) {
                double t0 = now_us();
                pid_t pid = fork();
                if (pid == 0) {
                        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                        dup2(fd, 1);
                        execl(daemon_bin, daemon_bin, "--version", (char *)NULL);
                        _exit(127);
                }
                waitpid(pid, NULL, 0);
                v[i] = now_us() - t0;
        }
        return quantile(v, N, 0.5);
}

static void bench_big(double rss_idle_kib)
{
        enum { N_BIG = 4096, N_GRANTS = 1024, N_CONN = 256, N_STARTS = 5 };
        static char buf[128 * 1024];
        struct daemon d = {};
        double ready[N_STARTS], floor_us = version_floor();
        int fds[N_CONN];
        char echo_path[128], line[] = "{\"id\":1,\"op\":\"list\"}\n";

        daemon_paths(&d, "big", shm_dir);
        write_host(d.host, N_BIG, N_GRANTS);
        _cleanup_(freep) char *policy = policy_text(1000);
        write_file(d.policy, policy);
        write_grants(d.state, N_GRANTS);
        for (int i = 0; i < N_STARTS; i++) {
                ready[i] = daemon_start(&d);
                if (ready[i] < 0) {
                        FAIL("start-up: the daemon did not say READY=1 (see %s)", d.log);
                        return;
                }
                if (i + 1 < N_STARTS)
                        daemon_stop(&d);
        }
        double r = quantile(ready, N_STARTS, 0.5);
        printf("%-44s %9.1f ms  floor %8.1f ms (passguardd --version)  ratio %6.2f  must show "
               "< 50 ms\n",
               "start-up, 4096 devices + 1024 grants", r / 1e3, floor_us / 1e3, r / floor_us);

        /* the rest with 10,000 rules */
        daemon_stop(&d);
        _cleanup_(freep) char *big_policy = policy_text(10000);
        write_file(d.policy, big_policy);
        r = daemon_start(&d);
        if (r < 0) {
                FAIL("start-up with 10000 rules failed (see %s)", d.log);
                return;
        }
        printf("%-44s %9.1f ms  (the same with 10000 rules: the policy load is in it)\n",
               "  start-up, 10000 rules", r / 1e3);

        /* list at 1,024 grants */
        int fd = conn_open(d.sock);
        ssize_t len = fd < 0 ? -1 : conn_call(fd, line, strlen(line), buf, sizeof(buf));
        if (fd >= 0)
                close(fd);
        if (len < 0 || !reply_ok(buf)) {
                FAIL("list: no good reply");
        } else {
                pin(d.pid, true);
                double t_list = round_trip(d.sock, line, 50);
                snprintf(echo_path, sizeof(echo_path), "%s/echo-list.sock", shm_dir);
                pid_t echo = echo_start(echo_path, buf, (size_t)len);
                double t_echo = round_trip(echo_path, line, 50);
                kill(echo, SIGKILL);
                waitpid(echo, NULL, 0);
                pin(d.pid, false);
                printf("%-44s %9.1f us  floor %8.1f us (echo, %zd-byte reply)  ratio %6.2f\n",
                       "list, 1024 grants (4096 devices)", t_list, t_echo, len, t_list / t_echo);
        }

        /* loaded: 10,000 rules, 1,024 grants, 256 connections, each having said hello */
        for (int i = 0; i < N_CONN; i++) {
                fds[i] = conn_open(d.sock);
                const char *hello = "{\"id\":1,\"op\":\"hello\",\"version\":1}\n";
                if (fds[i] < 0 || conn_call(fds[i], hello, strlen(hello), buf, sizeof(buf)) < 0)
                        FAIL("connection %d refused", i);
        }
        long loaded = rss_kib(d.pid);
        printf("%-44s %9.1f MiB floor %8.1f MiB (idle)  ratio %6.2f  must show < 16 MiB\n",
               "RSS loaded (10k rules, 1k grants, 256 conns)", loaded / 1024.0,
               rss_idle_kib / 1024.0, loaded / rss_idle_kib);
        for (int i = 0; i < N_CONN; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        daemon_stop(&d);
}

static int rm_rf(const char *dir)
{
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd);
}

int main(int argc, char **argv)
{
        double secs = argc > 1 ? atof(argv[1]) : 1.0;
        struct daemon d = {};
        char line[256];

        daemon_bin = getenv("PASSGUARDD");
        if (!daemon_bin) {
                fprintf(stderr, "bench-daemon: $PASSGUARDD is not set\n");
                return 1;
        }
        if (!mkdtemp(shm_dir) || !mkdtemp(disk_dir)) {
                perror("mkdtemp");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        if (sched_getaffinity(0, sizeof(all_cpus), &all_cpus) < 0)
                CPU_ZERO(&all_cpus);
        printf("passguardd's request path; simulated host on tmpfs (%s), state on disk (%s)\n",
               shm_dir, disk_dir);

        daemon_paths(&d, "main", shm_dir);
        write_host(d.host, N_DEVICES, 0);
        _cleanup_(freep) char *policy = policy_text(1000);
        write_file(d.policy, policy);
        if (daemon_start(&d) < 0) {
                FAIL("the daemon did not start (see %s)", d.log);
                goto out;
        }
        usleep(100 * 1000);
        long idle = rss_kib(d.pid);
        printf("%-44s %9.1f MiB  must show < 6 MiB\n", "RSS idle (72 devices, 1000 rules)",
               idle / 1024.0);

        request_line(line, sizeof(line), "explain", 0, 0);
        vs_echo(&d, "explain round trip (72 devices, 1000 rules)", line, 4000, "must show <= 3");
        vs_echo(&d, "status round trip", "{\"id\":1,\"op\":\"status\"}\n", 4000, "must show <= 2");
        bench_assign_release(&d, 300);
        bench_clients(&d, secs);
        daemon_stop(&d);

        bench_policy();
        bench_big((double)idle);
out:
        daemon_stop(&d);
        rm_rf(shm_dir);
        rm_rf(disk_dir);
        if (failures) {
                fprintf(stderr, "bench-daemon: %d failure(s)\n", failures);
                return 1;
        }
        return 0;
}
