/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define ITEST_START_TIMEOUT_MS 10000
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static void path_join(char dst[static PATH_MAX], const char *dir, const char *name)
{
        if (snprintf(dst, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
                fprintf(stderr, "path too long: %s/%s\n", dir, name);
                exit(1);
        }
}

static int set_sun_path(struct sockaddr_un *sa, const char *path)
{
        size_t n = strlen(path);

        if (n >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        memcpy(sa->sun_path, path, n + 1);
        return 0;
}

/*
 * Known to the policy: root (the only admin). Rules, first match decides:
 *   no-nics-for-render   NICs (class 02) never go to render-* domains
 *   gpus-to-render       NVIDIA to hvm render-* domains, one per domain
 *   noreset-needs-reset  DEV_NORESET anywhere, but only after a reset
 *   net                  anything to net-*, dying-*, noiommu-*; managed
 * Anything else (a GPU to the pv render-pv, say) is denied by default.
 */
const char itest_default_policy[] =
        "version = 1;\n"
        "require_interrupt_remapping = true;\n"
        "clients = ( { name = \"root\"; uid = 0; } );\n"
        "admins = [ \"root\" ];\n"
        "protected = ( { bdf = \"0000:00:1f.*\"; }, { class = \"0x0106\"; } );\n"
        "rules = (\n"
        "  { name = \"no-nics-for-render\"; action = \"deny\";\n"
        "    devices = ( { class = \"0x02\"; } ); domains = ( { name = \"render-*\"; } ); },\n"
        "  { name = \"gpus-to-render\"; action = \"allow\";\n"
        "    devices = ( { vendor = 0x10de; } );\n"
        "    domains = ( { name = \"render-*\"; type = \"hvm\"; } );\n"
        "    max_devices_per_domain = 1; reset = \"if-available\"; },\n"
        "  { name = \"noreset-needs-reset\"; action = \"allow\";\n"
        "    devices = ( { bdf = \"0000:06:00.0\"; } ); reset = \"required\"; },\n"
        "  { name = \"net\"; action = \"allow\";\n"
        "    domains = ( { name = \"net-*\"; }, { name = \"dying-*\"; }, { name = \"noiommu-*\"; } "
        ");\n"
        "    reset = \"if-available\"; managed = true; }\n"
        ");\n";

static const char default_config[] = "idle_timeout = 30;\nmax_connections = 64;\n";

static struct itest *current; /* for the exit handler */

int64_t itest_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void itest_sleep_ms(int ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- files ---- */

int itest_write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        size_t n = strlen(text);
        if (fwrite(text, 1, n, f) != n) {
                fclose(f);
                return -EIO;
        }
        if (fclose(f) != 0)
                return -errno;
        return 0;
}

char *itest_read_file(const char *path, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap + 1);
        for (;;) {
                if (!buf)
                        break;
                if (len == cap) {
                        char *nb = realloc(buf, cap * 2 + 1);
                        if (!nb) {
                                free(buf);
                                buf = NULL;
                                break;
                        }
                        buf = nb;
                        cap *= 2;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        free(buf);
                        buf = NULL;
                        break;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        close(fd);
        if (!buf)
                return NULL;
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return buf;
}

bool itest_files_equal(const char *a_text, size_t a_len, const char *b_text, size_t b_len)
{
        if (!a_text || !b_text)
                return a_text == b_text;
        return a_len == b_len && memcmp(a_text, b_text, a_len) == 0;
}

/* ---- set-up and tear-down ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_DP)
                rmdir(path);
        else
                unlink(path);
        return 0;
}

/* Unmount everything mounted at or below dir (deepest first). */
static void unmount_below(const char *dir)
{
        for (int round = 0; round < 8; round++) {
                FILE *f = fopen("/proc/self/mounts", "re");
                char line[4096], found[PATH_MAX] = "";
                size_t dl = strlen(dir);

                if (!f)
                        return;
                while (fgets(line, sizeof(line), f)) {
                        char dev[1024], mnt[PATH_MAX];
                        if (sscanf(line, "%1023s %4095s", dev, mnt) != 2)
                                continue;
                        if (strncmp(mnt, dir, dl) == 0 && (mnt[dl] == '/' || mnt[dl] == '\0'))
                                snprintf(found, sizeof(found), "%s", mnt);
                }
                fclose(f);
                if (!found[0] || umount2(found, MNT_DETACH) < 0)
                        return;
        }
}

static void at_exit(void)
{
        if (current)
                itest_finish(current);
}

static void on_signal(int sig)
{
        if (current && current->pid > 0)
                kill(current->pid, SIGKILL);
        signal(sig, SIG_DFL);
        raise(sig);
}

void itest_finish(struct itest *t)
{
        if (t->pid > 0)
                itest_stop(t);
        if (t->dir[0]) {
                unmount_below(t->dir);
                if (!getenv("ITEST_KEEP"))
                        nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
                else
                        fprintf(stderr, "# kept %s\n", t->dir);
                t->dir[0] = '\0';
        }
        if (current == t)
                current = NULL;
}

void itest_init(struct itest *t, const char *name, bool need_root)
{
        char tmpl[PATH_MAX];

        memset(t, 0, sizeof(*t));
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        if (need_root && geteuid() != 0) {
                printf("# %s needs root (mounts, other uids); skipping\n", name);
                exit(ITEST_SKIP);
        }
        t->daemon_bin = getenv("PASSGUARDD");
        t->cli_bin = getenv("PASSGUARD_CLI");
        if (!t->daemon_bin || !t->cli_bin) {
                fprintf(stderr, "PASSGUARDD and PASSGUARD_CLI must name the binaries\n");
                exit(1);
        }
        snprintf(tmpl, sizeof(tmpl), "/tmp/pg-itest-%s-XXXXXX", name);
        if (!mkdtemp(tmpl)) {
                perror("mkdtemp");
                exit(1);
        }
        chmod(tmpl, 0755);
        snprintf(t->dir, sizeof(t->dir), "%s", tmpl);
        path_join(t->host, tmpl, "host.json");
        path_join(t->state, tmpl, "state");
        path_join(t->grants, tmpl, "state/grants.json");
        path_join(t->run, tmpl, "run");
        path_join(t->sock, tmpl, "run/passguard.sock");
        path_join(t->policy, tmpl, "policy.conf");
        path_join(t->config, tmpl, "passguardd.conf");
        path_join(t->log, tmpl, "daemon.log");
        current = t;
        atexit(at_exit);
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        signal(SIGABRT, on_signal);
        signal(SIGSEGV, on_signal);

        if (mkdir(t->state, 0700) < 0 || mkdir(t->run, 0755) < 0) {
                perror("mkdir");
                exit(1);
        }
        json_t *host = itest_default_host();
        if (itest_host_store(t, host) < 0 ||
            itest_write_file(t->policy, itest_default_policy) < 0 ||
            itest_write_file(t->config, default_config) < 0) {
                fprintf(stderr, "cannot write the fixtures in %s\n", t->dir);
                exit(1);
        }
        json_decref(host);
}

/* ---- the daemon ---- */

static char **build_argv(const struct itest *t, const char *const *extra, bool standard)
{
        const char *std[] = {
                "--backend", "sim",         "--sim-host", t->host,    "--socket",
                t->sock,     "--state-dir", t->state,     "--policy", t->policy,
                "--config",  t->config,     "--debug",
        };
        size_t n_extra = 0, n = 0;

        while (extra && extra[n_extra])
                n_extra++;
        char **argv = calloc(2 + ELEMENTSOF(std) + n_extra, sizeof(char *));
        if (!argv)
                return NULL;
        argv[n++] = (char *)t->daemon_bin;
        if (standard)
                for (size_t i = 0; i < ELEMENTSOF(std); i++)
                        argv[n++] = (char *)std[i];
        for (size_t i = 0; i < n_extra; i++)
                argv[n++] = (char *)extra[i];
        argv[n] = NULL;
        return argv;
}

static pid_t spawn_daemon(struct itest *t, const char *const *extra, const char *const *env,
                          bool standard)
{
        char **argv = build_argv(t, extra, standard);
        if (!argv)
                return -ENOMEM;
        FILE *lf = fopen(t->log, "ae");
        if (lf) {
                fprintf(lf, "---- itest: starting passguardd");
                for (char **a = argv + 1; *a; a++)
                        fprintf(lf, " %s", *a);
                for (const char *const *e = env; e && *e; e++)
                        fprintf(lf, " [%s]", *e);
                fprintf(lf, "\n");
                fclose(lf);
        }
        pid_t pid = fork();
        if (pid < 0) {
                free(argv);
                return -errno;
        }
        if (pid == 0) {
                int fd = open(t->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0 || null < 0)
                        _exit(127);
                dup2(null, 0);
                dup2(fd, 1);
                dup2(fd, 2);
                unsetenv("PASSGUARD_TEST_CRASH");
                for (const char *const *e = env; e && *e; e++)
                        putenv((char *)*e);
                signal(SIGPIPE, SIG_DFL);
                execv(argv[0], argv);
                _exit(127);
        }
        free(argv);
        return pid;
}

static bool socket_answers(const struct itest *t)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        if (fd < 0)
                return false;
        ok = set_sun_path(&sa, t->sock) == 0 &&
             connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        return ok;
}

int itest_start(struct itest *t, const char *const *extra_args, const char *const *env)
{
        if (t->pid > 0)
                itest_stop(t);
        pid_t pid = spawn_daemon(t, extra_args, env, true);
        if (pid < 0)
                return (int)pid;
        t->pid = pid;
        int64_t end = itest_now_ms() + ITEST_START_TIMEOUT_MS;
        while (itest_now_ms() < end) {
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid) {
                        t->pid = 0;
                        t->last_status = st;
                        return -ECHILD;
                }
                if (socket_answers(t))
                        return 0;
                itest_sleep_ms(5);
        }
        return -ETIMEDOUT;
}

int itest_run_daemon(struct itest *t, const char *const *extra_args, const char *const *env,
                     bool standard_args, int timeout_ms)
{
        pid_t pid = spawn_daemon(t, extra_args, env, standard_args);
        if (pid < 0)
                return (int)pid;
        int64_t end = itest_now_ms() + timeout_ms;
        for (;;) {
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid) {
                        t->last_status = st;
                        return st;
                }
                if (itest_now_ms() >= end) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &st, 0);
                        return -ETIMEDOUT;
                }
                itest_sleep_ms(5);
        }
}

int itest_wait_exit(struct itest *t, int timeout_ms)
{
        int64_t end = itest_now_ms() + timeout_ms;

        if (t->pid <= 0)
                return 0;
        for (;;) {
                int st;
                if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
                        t->pid = 0;
                        t->last_status = st;
                        return 0;
                }
                if (itest_now_ms() >= end)
                        return -ETIMEDOUT;
                itest_sleep_ms(5);
        }
}

int itest_stop(struct itest *t)
{
        if (t->pid <= 0)
                return t->last_status;
        kill(t->pid, SIGTERM);
        if (itest_wait_exit(t, 5000) < 0) {
                fprintf(stderr, "# passguardd did not stop on SIGTERM; killing it\n");
                kill(t->pid, SIGKILL);
                itest_wait_exit(t, 5000);
        }
        return t->last_status;
}

bool itest_alive(struct itest *t)
{
        int st;

        if (t->pid <= 0)
                return false;
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
                t->pid = 0;
                t->last_status = st;
                fprintf(stderr, "# passguardd exited: status 0x%x\n", st);
                return false;
        }
        return true;
}

int itest_open_socket(struct itest *t)
{
        if (chmod(t->dir, 0755) < 0 || chmod(t->run, 0777) < 0 || chmod(t->sock, 0666) < 0)
                return -errno;
        return 0;
}

/* ---- raw protocol ---- */

struct itest_conn *itest_connect(const struct itest *t)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct itest_conn *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || set_sun_path(&sa, t->sock) < 0 ||
            connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (c->fd >= 0)
                        close(c->fd);
                free(c);
                return NULL;
        }
        return c;
}

void itest_conn_close(struct itest_conn *c)
{
        if (!c)
                return;
        if (c->fd >= 0)
                close(c->fd);
        free(c);
}

int itest_send_raw(struct itest_conn *c, const void *buf, size_t len)
{
        const char *p = buf;
        int64_t end = itest_now_ms() + 5000;

        while (len > 0) {
                ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        int64_t left = end - itest_now_ms();
                        struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
                        if (left <= 0 || poll(&pf, 1, (int)left) == 0)
                                return -ETIMEDOUT;
                        continue;
                }
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

bool itest_known_code(const char *code)
{
        static const char *const codes[] = {
                "bad-request",
                "unsupported-version",
                "not-authorized",
                "no-iommu",
                "no-interrupt-remapping",
                "no-such-domain",
                "domain-dying",
                "no-such-device",
                "protected-device",
                "not-assignable",
                "group-conflict",
                "busy",
                "domain-no-iommu",
                "denied",
                "limit-reached",
                "reset-failed",
                "not-assigned",
                "hypervisor-error",
                "state-error",
                "policy-invalid",
                "internal",
                "identity-changed",
        };

        for (size_t i = 0; i < ELEMENTSOF(codes); i++)
                if (code && streq(codes[i], code))
                        return true;
        return false;
}

int itest_recv_line(struct itest_conn *c, int timeout_ms, char **ret)
{
        int64_t end = itest_now_ms() + timeout_ms;

        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (nl) {
                        size_t l = (size_t)(nl - c->buf);
                        char *line = strndup(c->buf, l);
                        if (!line)
                                return -ENOMEM;
                        c->len -= l + 1;
                        memmove(c->buf, nl + 1, c->len);
                        *ret = line;
                        return 0;
                }
                if (c->len == sizeof(c->buf))
                        return -EMSGSIZE;
                int64_t left = end - itest_now_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                struct pollfd p = {.fd = c->fd, .events = POLLIN};
                int r = poll(&p, 1, (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == ECONNRESET)
                        return -ECONNRESET;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                c->len += (size_t)n;
        }
}

json_t *itest_conn_call(struct itest_conn *c, json_t *req)
{
        static json_int_t next_id = 1000;
        char *line = NULL, *text;
        json_t *reply;
        int r;

        if (!req)
                return NULL;
        if (!json_object_get(req, "id"))
                json_object_set_new(req, "id", json_integer(next_id++));
        text = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (!text)
                return NULL;
        size_t len = strlen(text);
        r = itest_send_raw(c, text, len);
        if (r >= 0)
                r = itest_send_raw(c, "\n", 1);
        free(text);
        if (r < 0)
                return NULL;
        r = itest_recv_line(c, 10000, &line);
        if (r < 0)
                return NULL;
        reply = json_loads(line, 0, NULL);
        if (!reply)
                fprintf(stderr, "# unparsable reply: %s\n", line);
        free(line);
        return reply;
}

json_t *itest_call(const struct itest *t, json_t *req)
{
        struct itest_conn *c = itest_connect(t);
        json_t *reply;

        if (!c) {
                json_decref(req);
                return NULL;
        }
        reply = itest_conn_call(c, req);
        itest_conn_close(c);
        return reply;
}

json_t *itest_target(const struct itest *t, const char *op, const char *name, uint32_t domid,
                     const char *bdf)
{
        json_t *req = json_pack("{s:s, s:s}", "op", op, "device", bdf);

        if (name)
                json_object_set_new(req, "domain", json_string(name));
        else if (domid != ITEST_NO_DOMAIN)
                json_object_set_new(req, "domid", json_integer(domid));
        return itest_call(t, req);
}

bool itest_ok(const json_t *reply)
{
        return reply && json_is_true(json_object_get(reply, "ok"));
}

const char *itest_error(const json_t *reply)
{
        if (!reply)
                return "(none)";
        if (itest_ok(reply))
                return "";
        const char *e = json_string_value(json_object_get(reply, "error"));
        return e ? e : "(no error field)";
}

/* ---- the host file ---- */

static int lock_host(const struct itest *t)
{
        char path[PATH_MAX + 8];

        snprintf(path, sizeof(path), "%s.lock", t->host);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        return fd;
}

static void unlock_host(int fd)
{
        flock(fd, LOCK_UN);
        close(fd);
}

static int store_locked(const struct itest *t, const json_t *host)
{
        char tmp[PATH_MAX + 8];

        snprintf(tmp, sizeof(tmp), "%s.tmp", t->host);
        if (json_dump_file(host, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
                return -EIO;
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                fsync(fd);
                close(fd);
        }
        if (rename(tmp, t->host) < 0)
                return -errno;
        return 0;
}

json_t *itest_host_load(const struct itest *t)
{
        int lk = lock_host(t);
        json_error_t err;
        json_t *host = json_load_file(t->host, 0, &err);

        if (!host)
                fprintf(stderr, "# cannot parse %s: %s (line %d)\n", t->host, err.text, err.line);
        if (lk >= 0)
                unlock_host(lk);
        return host;
}

int itest_host_store(const struct itest *t, const json_t *host)
{
        int lk = lock_host(t);
        if (lk < 0)
                return lk;
        int r = store_locked(t, host);
        unlock_host(lk);
        return r;
}

int itest_host_edit(const struct itest *t, void (*fn)(json_t *host, void *userdata), void *userdata)
{
        int lk = lock_host(t);
        if (lk < 0)
                return lk;
        json_t *host = json_load_file(t->host, 0, NULL);
        if (!host) {
                unlock_host(lk);
                return -EBADMSG;
        }
        fn(host, userdata);
        int r = store_locked(t, host);
        json_decref(host);
        unlock_host(lk);
        return r;
}

json_t *itest_host_device(const json_t *host, const char *bdf)
{
        size_t i;
        json_t *d;

        json_array_foreach(json_object_get(host, "devices"), i, d)
        {
                const char *b = json_string_value(json_object_get(d, "bdf"));
                if (b && strcasecmp(b, bdf) == 0)
                        return d;
        }
        return NULL;
}

const char *itest_host_owner(const json_t *host, const char *bdf, char buf[static 32])
{
        json_t *d = itest_host_device(host, bdf);
        json_t *a;

        if (!d)
                return "(missing)";
        a = json_object_get(d, "assigned_to");
        if (!a || json_is_null(a))
                return "null";
        if (json_is_string(a))
                snprintf(buf, 32, "%s", json_string_value(a));
        else if (json_is_integer(a))
                snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(a));
        else
                return "(bad)";
        return buf;
}

const char *itest_owner(const struct itest *t, const char *bdf, char buf[static 32])
{
        char tmp[32];
        json_t *host = itest_host_load(t);

        snprintf(buf, 32, "%s", host ? itest_host_owner(host, bdf, tmp) : "(unreadable)");
        json_decref(host);
        return buf;
}

json_int_t itest_host_calls(const json_t *host, const char *op)
{
        return json_integer_value(json_object_get(json_object_get(host, "calls"), op));
}

json_int_t itest_calls(const struct itest *t, const char *op)
{
        json_t *host = itest_host_load(t);
        json_int_t n = host ? itest_host_calls(host, op) : -1;

        json_decref(host);
        return n;
}

static void destroy_domain(json_t *host, void *userdata)
{
        json_int_t domid = *(uint32_t *)userdata;
        json_t *doms = json_object_get(host, "domains"), *d;
        size_t i;

        for (i = 0; i < json_array_size(doms); i++)
                if (json_integer_value(json_object_get(json_array_get(doms, i), "domid")) ==
                    domid) {
                        json_array_remove(doms, i);
                        break;
                }
        json_array_foreach(json_object_get(host, "devices"), i, d)
        {
                json_t *a = json_object_get(d, "assigned_to");
                if (json_is_integer(a) && json_integer_value(a) == domid)
                        json_object_set_new(d, "assigned_to", json_string("io"));
        }
}

int itest_destroy_domain(const struct itest *t, uint32_t domid)
{
        return itest_host_edit(t, destroy_domain, &domid);
}

struct owner_edit {
        const char *bdf, *owner;
};

static void set_owner(json_t *host, void *userdata)
{
        const struct owner_edit *o = userdata;
        json_t *d = itest_host_device(host, o->bdf), *v;

        if (!d)
                return;
        if (streq(o->owner, "null"))
                v = json_null();
        else if (streq(o->owner, "io"))
                v = json_string("io");
        else
                v = json_integer(strtol(o->owner, NULL, 10));
        json_object_set_new(d, "assigned_to", v);
}

int itest_set_owner(const struct itest *t, const char *bdf, const char *owner)
{
        struct owner_edit o = {bdf, owner};
        return itest_host_edit(t, set_owner, &o);
}

struct device_edit {
        const char *bdf, *key;
        json_t *value;
};

static void set_device(json_t *host, void *userdata)
{
        const struct device_edit *e = userdata;
        json_t *d = itest_host_device(host, e->bdf);

        if (!d)
                return;
        if (e->value)
                json_object_set(d, e->key, e->value);
        else
                json_object_del(d, e->key);
}

int itest_set_device(const struct itest *t, const char *bdf, const char *key, json_t *value)
{
        struct device_edit e = {bdf, key, value};
        int r = itest_host_edit(t, set_device, &e);

        json_decref(value);
        return r;
}

struct fault_edit {
        const char *op, *bdf, *err;
};

static void set_fault(json_t *host, void *userdata)
{
        const struct fault_edit *f = userdata;
        json_t *faults = json_object_get(host, "faults"), *per;

        if (!faults) {
                faults = json_object();
                json_object_set_new(host, "faults", faults);
        }
        per = json_object_get(faults, f->op);
        if (!per) {
                per = json_object();
                json_object_set_new(faults, f->op, per);
        }
        if (f->err)
                json_object_set_new(per, f->bdf, json_string(f->err));
        else
                json_object_del(per, f->bdf);
}

int itest_set_fault(const struct itest *t, const char *op, const char *bdf, const char *errname)
{
        struct fault_edit f = {op, bdf, errname};
        return itest_host_edit(t, set_fault, &f);
}

struct bool_edit {
        const char *key;
        bool value;
};

static void set_bool(json_t *host, void *userdata)
{
        const struct bool_edit *b = userdata;
        json_object_set_new(host, b->key, json_boolean(b->value));
}

int itest_set_bool(const struct itest *t, const char *key, bool value)
{
        struct bool_edit b = {key, value};
        return itest_host_edit(t, set_bool, &b);
}

static json_t *device(const char *bdf, const char *vendor, const char *dev, const char *cls,
                      const char *driver, int group, const char *reset, const char *assigned)
{
        return json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:o, s:o}", "bdf", bdf, "vendor", vendor,
                         "device", dev, "class", cls, "driver",
                         driver ? json_string(driver) : json_null(), "group", group, "reset",
                         reset ? json_string(reset) : json_null(), "assigned_to",
                         assigned ? json_string(assigned) : json_null());
}

static json_t *domain(int domid, const char *name, const char *type)
{
        char uuid[64];

        if (domid == 0)
                snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-000000000000");
        else
                snprintf(uuid, sizeof(uuid), "5f0c1d2e-8a4b-4c6d-9e7f-0000000000%02x", domid);
        return json_pack("{s:i, s:s, s:s, s:s}", "domid", domid, "name", name, "uuid", uuid, "type",
                         type);
}

json_t *itest_default_host(void)
{
        json_t *devices = json_array(), *domains = json_array(), *d;

        json_array_append_new(
                devices, device(DEV_SATA, "0x8086", "0xa102", "0x010601", "ahci", 1, NULL, NULL));
        json_array_append_new(devices, device(DEV_GPU, "0x10de", "0x1eb8", "0x030200", "pciback", 7,
                                              "flr", "io"));
        json_array_append_new(devices, device(DEV_NIC, "0x8086", "0x10fb", "0x020000", "pciback", 8,
                                              "flr", "io"));
        json_array_append_new(
                devices, device(DEV_IGB, "0x8086", "0x1533", "0x020000", "igb", 9, "flr", NULL));
        json_array_append_new(devices, device(DEV_NORESET, "0x1b36", "0x000d", "0x0c0330",
                                              "pciback", 10, NULL, "io"));
        json_array_append_new(devices, device(DEV_SLOT0, "0x1af4", "0x1041", "0x020000", "pciback",
                                              11, "flr", "io"));
        json_array_append_new(devices, device(DEV_SLOT1, "0x1af4", "0x1041", "0x020000", "pciback",
                                              11, "flr", "io"));
        json_array_append_new(devices, device(DEV_SPARE, "0x1af4", "0x1042", "0x010000", "pciback",
                                              12, "flr", "io"));
        json_array_append_new(devices, device(DEV_E1000, "0x8086", "0x15b8", "0x020000", "e1000e",
                                              14, "flr", NULL));
        json_array_append_new(devices, device(DEV_GPU2, "0x10de", "0x1eb8", "0x030200", "pciback",
                                              13, "flr", "io"));

        json_array_append_new(domains, domain(0, "Domain-0", "pv"));
        json_array_append_new(domains, domain(DOM_RENDER1, "render-1", "hvm"));
        json_array_append_new(domains, domain(DOM_RENDER2, "render-2", "hvm"));
        json_array_append_new(domains, domain(DOM_NETPV, "net-pv", "pv"));
        json_array_append_new(domains, domain(DOM_NETPVH, "net-pvh", "pvh"));
        d = domain(DOM_DYING, "dying-1", "hvm");
        json_object_set_new(d, "dying", json_true());
        json_array_append_new(domains, d);
        d = domain(DOM_NOIOMMU, "noiommu-1", "hvm");
        json_object_set_new(d, "iommu", json_false());
        json_array_append_new(domains, d);
        json_array_append_new(domains, domain(DOM_RENDERPV, "render-pv", "pv"));
        json_array_append_new(domains, domain(DOM_NETHVM, "net-hvm", "hvm"));

        return json_pack("{s:b, s:b, s:o, s:o, s:{}, s:{s:i, s:i, s:i}}", "iommu", 1,
                         "interrupt_remapping", 1, "devices", devices, "domains", domains, "faults",
                         "calls", "assign", 0, "deassign", 0, "test_assign", 0);
}

/* ---- the grant store ---- */

/* Remove the element of array whose "device" is bdf; whether there was one. */
static bool remove_device(json_t *array, const char *bdf)
{
        size_t i;
        json_t *e;

        json_array_foreach(array, i, e)
        {
                const char *b = json_string_value(json_object_get(e, "device"));
                if (b && strcasecmp(b, bdf) == 0) {
                        json_array_remove(array, i);
                        return true;
                }
        }
        return false;
}

/*
 * The journal's records over the snapshot, as the daemon replays them: only
 * a journal whose base names this snapshot's checksum counts, and the first
 * line that is not a whole JSON object ends it (a torn append). Checksums
 * are the daemon's business (its own tests); this only reads.
 */
static void journal_apply(const struct itest *t, json_t *store)
{
        char path[PATH_MAX + 32];
        size_t len = 0;
        char *text;
        const json_t *sum = json_object_get(store, "checksum");

        snprintf(path, sizeof(path), "%s/grants.journal", t->state);
        text = itest_read_file(path, &len);
        if (!text)
                return;
        bool first = true;
        for (char *p = text, *nl; p < text + len && (nl = memchr(p, '\n', text + len - p));
             p = nl + 1) {
                json_t *rec = json_loadb(p, (size_t)(nl - p), 0, NULL);
                const char *op = json_string_value(json_object_get(rec, "op"));
                const char *dev = json_string_value(json_object_get(rec, "device"));
                if (!rec || !op) {
                        json_decref(rec);
                        break;
                }
                if (first) {
                        const json_t *base = json_object_get(rec, "snapshot");
                        bool same = streq(op, "base") &&
                                    (json_is_null(base)
                                             ? !sum
                                             : sum && json_equal((json_t *)base, (json_t *)sum));
                        json_decref(rec);
                        if (!same)
                                break; /* another snapshot's journal: all of it is in this one */
                        first = false;
                        continue;
                }
                if (streq(op, "grant") && dev) {
                        remove_device(json_object_get(store, "grants"), dev);
                        json_array_append(json_object_get(store, "grants"),
                                          json_object_get(rec, "grant"));
                } else if (streq(op, "release") && dev)
                        remove_device(json_object_get(store, "grants"), dev);
                else if (streq(op, "prepared") && dev) {
                        remove_device(json_object_get(store, "prepared"), dev);
                        json_array_append_new(json_object_get(store, "prepared"),
                                              json_pack("{s:s, s:O}", "device", dev, "driver",
                                                        json_object_get(rec, "driver")));
                } else if (streq(op, "unprepared") && dev)
                        remove_device(json_object_get(store, "prepared"), dev);
                else if (streq(op, "grant-group")) {
                        size_t i;
                        json_t *g;
                        json_array_foreach(json_object_get(rec, "grants"), i, g)
                        {
                                remove_device(json_object_get(store, "grants"),
                                              json_string_value(json_object_get(g, "device")));
                                json_array_append(json_object_get(store, "grants"), g);
                        }
                } else if ((streq(op, "taint") || streq(op, "untaint")) && dev) {
                        if (!json_object_get(store, "tainted"))
                                json_object_set_new(store, "tainted", json_array());
                        remove_device(json_object_get(store, "tainted"), dev);
                        if (streq(op, "taint"))
                                json_array_append_new(json_object_get(store, "tainted"),
                                                      json_pack("{s:s, s:O}", "device", dev,
                                                                "taint",
                                                                json_object_get(rec, "taint")));
                }
                json_decref(rec);
        }
        free(text);
}

json_t *itest_grants_load(const struct itest *t)
{
        json_error_t err;
        json_t *g;

        if (access(t->grants, F_OK) < 0 && errno == ENOENT)
                g = json_pack("{s:i, s:[], s:[]}", "format", 1, "grants", "prepared");
        else
                g = json_load_file(t->grants, 0, &err);
        if (!g) {
                fprintf(stderr, "# cannot parse %s: %s\n", t->grants, err.text);
                return NULL;
        }
        journal_apply(t, g);
        return g;
}

static int compare_device(const void *a, const void *b)
{
        const char *x = json_string_value(json_object_get(*(json_t *const *)a, "device"));
        const char *y = json_string_value(json_object_get(*(json_t *const *)b, "device"));

        return strcmp(x ? x : "", y ? y : "");
}

/* The array's elements sorted by "device", as a new array. */
static json_t *sorted_by_device(const json_t *array)
{
        size_t n = json_array_size(array);
        json_t **v = calloc(n + 1, sizeof(*v)), *out = json_array();

        for (size_t i = 0; v && i < n; i++)
                v[i] = json_array_get(array, i);
        if (v)
                qsort(v, n, sizeof(*v), compare_device);
        for (size_t i = 0; v && out && i < n; i++)
                json_array_append(out, v[i]);
        free(v);
        return out;
}

char *itest_store_text(const struct itest *t)
{
        json_t *store = itest_grants_load(t), *canon;
        char *text;

        if (!store)
                return NULL;
        canon = json_pack("{s:o, s:o}", "grants",
                          sorted_by_device(json_object_get(store, "grants")), "prepared",
                          sorted_by_device(json_object_get(store, "prepared")));
        text = canon ? json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(canon);
        json_decref(store);
        return text;
}

json_t *itest_grants_find(const json_t *store, const char *bdf)
{
        size_t i;
        json_t *g;

        json_array_foreach(json_object_get(store, "grants"), i, g)
        {
                const char *b = json_string_value(json_object_get(g, "device"));
                if (b && strcasecmp(b, bdf) == 0)
                        return g;
        }
        return NULL;
}

int itest_consistent(const struct itest *t, const char *const *devices)
{
        json_t *store = itest_grants_load(t), *host = itest_host_load(t), *g, *d;
        int problems = 0;
        size_t i;

        if (!store || !host) {
                fprintf(stderr, "# consistency: cannot read grants.json or the host file\n");
                json_decref(store);
                json_decref(host);
                return 1;
        }
        json_array_foreach(json_object_get(store, "grants"), i, g)
        {
                const char *bdf = json_string_value(json_object_get(g, "device"));
                json_int_t domid = json_integer_value(json_object_get(g, "domid"));
                char buf[32], want[32];
                const char *owner = bdf ? itest_host_owner(host, bdf, buf) : "(no device)";
                snprintf(want, sizeof(want), "%" JSON_INTEGER_FORMAT, domid);
                if (strcmp(owner, want) != 0) {
                        fprintf(stderr,
                                "# consistency: grant of %s to domain %s, but the host says %s\n",
                                bdf ? bdf : "?", want, owner);
                        problems++;
                }
        }
        json_array_foreach(json_object_get(host, "devices"), i, d)
        {
                const char *bdf = json_string_value(json_object_get(d, "bdf"));
                json_t *a = json_object_get(d, "assigned_to");
                bool wanted = !devices;
                for (const char *const *p = devices; p && *p; p++)
                        if (bdf && strcasecmp(*p, bdf) == 0)
                                wanted = true;
                if (!wanted || !json_is_integer(a) || json_integer_value(a) == 0)
                        continue;
                json_t *gr = itest_grants_find(store, bdf);
                if (!gr ||
                    json_integer_value(json_object_get(gr, "domid")) != json_integer_value(a)) {
                        fprintf(stderr,
                                "# consistency: %s is assigned to domain %" JSON_INTEGER_FORMAT
                                " with no grant for it\n",
                                bdf, json_integer_value(a));
                        problems++;
                }
        }
        json_decref(store);
        json_decref(host);
        return problems;
}

/* ---- the CLI ---- */

static char *slurp_fd(int fd)
{
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap + 1);

        while (buf) {
                if (len == cap) {
                        char *nb = realloc(buf, cap * 2 + 1);
                        if (!nb)
                                break;
                        buf = nb;
                        cap *= 2;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        if (buf)
                buf[len] = '\0';
        return buf;
}

int itest_run(const struct itest *t, const char *const *argv, const char *const *env,
              char **ret_out, char **ret_err)
{
        char outp[PATH_MAX + 16], errp[PATH_MAX + 16];
        int st;

        snprintf(outp, sizeof(outp), "%s/run.out", t->dir);
        snprintf(errp, sizeof(errp), "%s/run.err", t->dir);
        int ofd = open(outp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int efd = open(errp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ofd < 0 || efd < 0) {
                int r = -errno;
                if (ofd >= 0)
                        close(ofd);
                if (efd >= 0)
                        close(efd);
                return r;
        }
        pid_t pid = fork();
        if (pid < 0) {
                close(ofd);
                close(efd);
                return -errno;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                dup2(null, 0);
                dup2(ofd, 1);
                dup2(efd, 2);
                unsetenv("PASSGUARD_SOCKET");
                for (size_t i = 0; env && env[i]; i++)
                        putenv((char *)env[i]);
                signal(SIGPIPE, SIG_DFL);
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR) {
                        close(ofd);
                        close(efd);
                        return -errno;
                }
        lseek(ofd, 0, SEEK_SET);
        lseek(efd, 0, SEEK_SET);
        if (ret_out)
                *ret_out = slurp_fd(ofd);
        if (ret_err)
                *ret_err = slurp_fd(efd);
        close(ofd);
        close(efd);
        if (WIFSIGNALED(st))
                return 128 + WTERMSIG(st);
        return WEXITSTATUS(st);
}

int itest_cli(const struct itest *t, uid_t uid, char **ret_out, char **ret_err,
              const char *const *args)
{
        char reuid[32], regid[32];
        size_t n = 0, k = 0;
        int r;

        while (args[n])
                n++;
        const char **argv = calloc(n + 8, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        /* Another uid: the real setpriv(1), as an admin would run a client. */
        if (uid != (uid_t)-1) {
                snprintf(reuid, sizeof(reuid), "--reuid=%u", (unsigned)uid);
                snprintf(regid, sizeof(regid), "--regid=%u", (unsigned)uid);
                argv[k++] = "setpriv";
                argv[k++] = reuid;
                argv[k++] = regid;
                argv[k++] = "--clear-groups";
        }
        argv[k++] = t->cli_bin;
        argv[k++] = "--socket";
        argv[k++] = t->sock;
        for (size_t i = 0; i < n; i++)
                argv[k++] = args[i];
        r = itest_run(t, argv, NULL, ret_out, ret_err);
        free(argv);
        return r;
}

/* ---- the daemon's log ---- */

size_t itest_log_size(const struct itest *t)
{
        struct stat st;

        return stat(t->log, &st) < 0 ? 0 : (size_t)st.st_size;
}

int itest_log_count(const struct itest *t, size_t offset, const char *const *needles)
{
        size_t len;
        char *text = itest_read_file(t->log, &len);
        int count = 0;

        if (!text)
                return 0;
        if (offset > len)
                offset = len;
        for (char *line = text + offset; line && *line;) {
                char *nl = strchr(line, '\n');
                bool all = true;
                if (nl)
                        *nl = '\0';
                for (const char *const *n = needles; *n && all; n++)
                        all = strstr(line, *n) != NULL;
                count += all;
                line = nl ? nl + 1 : NULL;
        }
        free(text);
        return count;
}

bool itest_log_has(const struct itest *t, size_t offset, const char *const *needles)
{
        return itest_log_count(t, offset, needles) > 0;
}

bool itest_log_wait(const struct itest *t, size_t offset, const char *const *needles,
                    int timeout_ms)
{
        return ITEST_WAIT_FOR(itest_log_has(t, offset, needles), timeout_ms);
}

void itest_log_dump(const struct itest *t)
{
        char *text = itest_read_file(t->log, NULL);

        fprintf(stderr, "# ---- passguardd log (%s) ----\n%s# ---- end of log ----\n", t->log,
                text ? text : "(none)\n");
        free(text);
}
