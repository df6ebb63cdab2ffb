/* SPDX-License-Identifier: MIT */
/*
 * The offline policy verbs: check, explain and edit (generate: generate.c). They use the very parser
 * and evaluator passguardd uses (policy/policy.h), so a file judged here is
 * judged the same way by the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cli.h"
#include "passguard.h"
#include "pg-file.h"
#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg_policy *, pg_policy_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg *, pg_close);

static void diags_clearp(struct pg_policy_diags *d)
{
        pg_policy_diags_clear(d);
}

static void decision_clearp(struct pg_policy_decision *d)
{
        pg_policy_decision_clear(d);
}

/* Print every diagnostic, or at least why the file could not be read. */
static void print_diags(const struct pg_policy_diags *d, const char *path, int r)
{
        if (d->n > 0)
                pg_policy_diags_print(d, stderr);
        else
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
}

/* ---- policy check [FILE] ---- */

static int policy_check(int argc, char **argv)
{
        _cleanup_(diags_clearp) struct pg_policy_diags diags = {};
        _cleanup_(pg_policy_freep) struct pg_policy *p = NULL;

        if (argc > 2) {
                fputs("Usage: passguard policy check [FILE]\n", stderr);
                return EXIT_USAGE;
        }
        const char *path = argc == 2 ? argv[1] : PG_DEFAULT_POLICY;
        int r = pg_policy_load(path, &p, &diags);
        if (r < 0) {
                print_diags(&diags, path, r);
                return EXIT_REFUSED;
        }
        size_t n = pg_policy_n_rules(p);
        printf("%s: OK (%zu rules)\n", path, n);
        return EXIT_DONE;
}

/* ---- policy explain OPTIONS [FILE] ---- */

#define EXPLAIN_USAGE                                                                              \
        "Usage: passguard policy explain --uid UID [--gid GID] [--group NAME]... [--unit UNIT]\n"  \
        "         --device BDF [--vendor ID] [--device-id ID] [--subsystem-vendor ID]\n"           \
        "         [--subsystem-device ID] [--class CLASS] --domain NAME [--domid N]\n"             \
        "         [--uuid UUID] [--type hvm|pvh|pv] [FILE]\n"

static int parse_number(const char *s, long max, long *ret)
{
        char *end;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        long v = strtol(s, &end, 0);
        if (errno || *end || v < 0 || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* A group given by name or number. */
static int parse_group(const char *s, gid_t *ret)
{
        long v;

        if (parse_number(s, INT_MAX, &v) >= 0) {
                *ret = (gid_t)v;
                return 0;
        }
        struct group *gr = getgrnam(s);
        if (!gr)
                return -ESRCH;
        *ret = gr->gr_gid;
        return 0;
}

struct explain_args {
        long uid, gid;
        gid_t groups[64];
        size_t n_groups;
        bool have_groups;
        const char *unit;
        const char *bdf;
        long vendor, device, subsystem_vendor, subsystem_device, class;
        const char *domain, *uuid, *type;
        long domid;
        const char *file;
        bool help; /* --help was printed: nothing more to do */
};

/* The arguments of policy explain into *a; returns the exit status (EXIT_DONE to go on). */
static int explain_parse(int argc, char **argv, struct explain_args *a)
{
        enum {
                OPT_UID = 0x100,
                OPT_GID,
                OPT_GROUP,
                OPT_UNIT,
                OPT_DEVICE,
                OPT_VENDOR,
                OPT_DEVICE_ID,
                OPT_SUBSYS_VENDOR,
                OPT_SUBSYS_DEVICE,
                OPT_CLASS,
                OPT_DOMAIN,
                OPT_DOMID,
                OPT_UUID,
                OPT_TYPE,
        };
        static const struct option options[] = {
                { "uid", required_argument, NULL, OPT_UID },
                { "gid", required_argument, NULL, OPT_GID },
                { "group", required_argument, NULL, OPT_GROUP },
                { "unit", required_argument, NULL, OPT_UNIT },
                { "device", required_argument, NULL, OPT_DEVICE },
                { "vendor", required_argument, NULL, OPT_VENDOR },
                { "device-id", required_argument, NULL, OPT_DEVICE_ID },
                { "subsystem-vendor", required_argument, NULL, OPT_SUBSYS_VENDOR },
                { "subsystem-device", required_argument, NULL, OPT_SUBSYS_DEVICE },
                { "class", required_argument, NULL, OPT_CLASS },
                { "domain", required_argument, NULL, OPT_DOMAIN },
                { "domid", required_argument, NULL, OPT_DOMID },
                { "uuid", required_argument, NULL, OPT_UUID },
                { "type", required_argument, NULL, OPT_TYPE },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int opt;

        optind = 0;
        opterr = 1;
        while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                long *num = NULL, max = 0xffff;
                switch (opt) {
                case 'h':
                        fputs(EXPLAIN_USAGE, stdout);
                        a->help = true;
                        return EXIT_DONE;
                case OPT_UID:
                        num = &a->uid, max = INT_MAX;
                        break;
                case OPT_GID:
                        num = &a->gid, max = INT_MAX;
                        break;
                case OPT_GROUP:
                        if (a->n_groups >= ELEMENTSOF(a->groups)) {
                                fputs("passguard: too many --group options\n", stderr);
                                return EXIT_USAGE;
                        }
                        if (parse_group(optarg, &a->groups[a->n_groups]) < 0) {
                                fprintf(stderr, "passguard: no such group: %s\n", optarg);
                                return EXIT_USAGE;
                        }
                        a->n_groups++;
                        a->have_groups = true;
                        break;
                case OPT_UNIT:
                        a->unit = optarg;
                        break;
                case OPT_DEVICE:
                        a->bdf = optarg;
                        break;
                case OPT_VENDOR:
                        num = &a->vendor;
                        break;
                case OPT_DEVICE_ID:
                        num = &a->device;
                        break;
                case OPT_SUBSYS_VENDOR:
                        num = &a->subsystem_vendor;
                        break;
                case OPT_SUBSYS_DEVICE:
                        num = &a->subsystem_device;
                        break;
                case OPT_CLASS:
                        num = &a->class, max = 0xffffff;
                        break;
                case OPT_DOMAIN:
                        a->domain = optarg;
                        break;
                case OPT_DOMID:
                        num = &a->domid, max = PG_DOMID_GUEST_MAX;
                        break;
                case OPT_UUID:
                        a->uuid = optarg;
                        break;
                case OPT_TYPE:
                        if (pg_domain_type_parse(optarg, &(enum pg_domain_type){0}) < 0) {
                                fprintf(stderr, "passguard: --type must be hvm, pvh or pv\n");
                                return EXIT_USAGE;
                        }
                        a->type = optarg;
                        break;
                default:
                        fputs(EXPLAIN_USAGE, stderr);
                        return EXIT_USAGE;
                }
                if (num && parse_number(optarg, max, num) < 0) {
                        fprintf(stderr, "passguard: invalid number: %s\n", optarg);
                        return EXIT_USAGE;
                }
        }
        if (argc - optind > 1) {
                fputs(EXPLAIN_USAGE, stderr);
                return EXIT_USAGE;
        }
        a->file = optind < argc ? argv[optind] : PG_DEFAULT_POLICY;
        if (a->uid < 0 || !a->bdf || !a->domain) {
                fputs("passguard: policy explain needs --uid, --device and --domain\n", stderr);
                fputs(EXPLAIN_USAGE, stderr);
                return EXIT_USAGE;
        }
        return EXIT_DONE;
}

static int policy_explain(int argc, char **argv)
{
        _cleanup_(diags_clearp) struct pg_policy_diags diags = {};
        _cleanup_(pg_policy_freep) struct pg_policy *p = NULL;
        _cleanup_(decision_clearp) struct pg_policy_decision d = {};
        struct explain_args a = {
                .uid = -1,
                .gid = -1,
                .vendor = -1,
                .device = -1,
                .subsystem_vendor = -1,
                .subsystem_device = -1,
                .class = -1,
                .domid = PG_DOMID_INVALID,
        };
        uint32_t sbdf;
        int e, r;

        e = explain_parse(argc, argv, &a);
        if (e != EXIT_DONE || a.help)
                return e;
        if (pg_bdf_parse(a.bdf, &sbdf) < 0) {
                fprintf(stderr, "passguard: not a PCI address (SSSS:BB:DD.F or BB:DD.F): %s\n",
                        a.bdf);
                return EXIT_USAGE;
        }

        /* Unless told otherwise, the user's primary and supplementary groups. */
        struct passwd *pw = getpwuid((uid_t)a.uid);
        if (a.gid < 0)
                a.gid = pw ? (long)pw->pw_gid : a.uid;
        if (!a.have_groups && pw) {
                int n = (int)ELEMENTSOF(a.groups);
                if (getgrouplist(pw->pw_name, (gid_t)a.gid, a.groups, &n) >= 0)
                        a.n_groups = (size_t)n;
        }

        r = pg_policy_load(a.file, &p, &diags);
        if (r < 0) {
                print_diags(&diags, a.file, r);
                return EXIT_REFUSED;
        }

        const struct pg_policy_identity id = {
                .uid = (uid_t)a.uid,
                .gid = (gid_t)a.gid,
                .groups = a.groups,
                .n_groups = a.n_groups,
                .unit = a.unit,
        };
        const struct pg_policy_device dev = {
                .sbdf = sbdf,
                .vendor = (int32_t)a.vendor,
                .device = (int32_t)a.device,
                .subsystem_vendor = (int32_t)a.subsystem_vendor,
                .subsystem_device = (int32_t)a.subsystem_device,
                .class = (int32_t)a.class,
        };
        const struct pg_policy_domain dom = {
                .name = a.domain,
                .domid = (uint32_t)a.domid,
                .uuid = a.uuid ?: "",
                .type = a.type ?: "",
        };
        char bdf[PG_BDF_MAX];
        printf("request: uid %ld gid %ld%s%s, device %s, domain %s\n", a.uid, a.gid,
               a.unit ? " unit " : "", a.unit ?: "", pg_bdf_format(sbdf, bdf), a.domain);

        const char *clients[16];
        size_t n_clients = pg_policy_clients(p, &id, clients, ELEMENTSOF(clients));
        if (n_clients == 0)
                printf("client: not known to the policy\n");
        else {
                printf("client:");
                for (size_t i = 0; i < n_clients && i < ELEMENTSOF(clients); i++)
                        printf(" %s", clients[i]);
                printf("\n");
        }

        const char *why = NULL;
        bool protected = pg_policy_is_protected(p, &dev, &why);
        if (protected)
                printf("protected: yes (%s)\n", why ?: "protected entry");

        r = pg_policy_evaluate(p, &id, &dev, &dom, true, &d);
        if (r < 0) {
                fprintf(stderr, "passguard: cannot evaluate the policy: %s\n", strerror(-r));
                return EXIT_REFUSED;
        }

        bool allow = d.allow && n_clients > 0 && !protected;
        printf("decision: %s\n", allow ? "allow" : "deny");
        if (n_clients == 0)
                printf("error: %s\n", pg_error_name(PG_ERR_NOT_AUTHORIZED));
        else if (protected)
                printf("error: %s\n", pg_error_name(PG_ERR_PROTECTED_DEVICE));
        else if (!d.allow)
                printf("error: %s\n", pg_error_name(PG_ERR_DENIED));
        printf("rule: %s\n", d.rule ?: "default");
        if (d.allow) {
                printf("  rdm_policy: %s\n", pg_policy_rdm_name(d.rdm_policy));
                printf("  reset: %s\n", pg_policy_reset_name(d.reset));
                if (d.max_devices_per_domain)
                        printf("  max_devices_per_domain: %u\n", d.max_devices_per_domain);
                else
                        printf("  max_devices_per_domain: no limit\n");
                printf("  managed: %s\n", d.managed ? "yes" : "no");
        }
        if (d.n_misses > 0) {
                printf("rules that did not match:\n");
                for (size_t i = 0; i < d.n_misses; i++)
                        printf("  %s: %s\n", d.misses[i].rule, d.misses[i].reason);
        }
        return allow ? EXIT_DONE : EXIT_REFUSED;
}

/* ---- policy edit [--file FILE] ---- */

/* A policy file is read whole; this is far more than any policy needs. */
#define POLICY_FILE_MAX (16u * 1024 * 1024)

static int read_file(const char *path, char **ret, size_t *ret_len)
{
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return -errno;
        return pg_read_all(fd, POLICY_FILE_MAX, ret, ret_len);
}

/* Run the user's editor on path; 0 when it exited successfully. */
static int run_editor(const char *path)
{
        const char *editor = getenv("VISUAL");
        if (!editor || !*editor)
                editor = getenv("EDITOR");
        if (!editor || !*editor)
                editor = "vi";

        _cleanup_(freep) char *cmd = NULL;
        /* Like visudo, EDITOR may carry arguments: let the shell split it. */
        if (asprintf(&cmd, "%s \"$1\"", editor) < 0)
                return -ENOMEM;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", cmd, "sh", path, (char *)NULL);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "passguard: editor '%s' failed (%s %d)\n", editor,
                        WIFEXITED(status) ? "exit status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                return -ECHILD;
        }
        return 0;
}

/* Ask what to do about an invalid edit: true to edit again. EOF means quit. */
static bool ask_edit_again(void)
{
        _cleanup_(freep) char *line = NULL;
        size_t cap = 0;

        for (;;) {
                fputs("What now? (e)dit again, (q)uit without saving? ", stderr);
                fflush(stderr);
                if (getline(&line, &cap, stdin) < 0) {
                        fputc('\n', stderr);
                        return false;
                }
                if (line[0] == 'e' || line[0] == 'E')
                        return true;
                if (line[0] == 'q' || line[0] == 'Q')
                        return false;
        }
}

struct tmpfile {
        char *path;
        int fd;
};

static void tmpfile_clear(struct tmpfile *t)
{
        t->fd = safe_close(t->fd);
        if (t->path) {
                unlink(t->path);
                t->path = pg_free(t->path);
        }
}

static int reload_daemon(const struct cli *c)
{
        _cleanup_(pg_closep) struct pg *pg = NULL;

        int r = pg_connect(c->socket, &pg);
        if (r != 0) {
                fprintf(stderr,
                        "passguard: warning: the policy is installed, but passguardd could not "
                        "be asked to reload it: %s\n",
                        pg_strerror(r));
                return EXIT_DONE;
        }
        r = pg_reload(pg);
        if (r < 0) {
                fprintf(stderr,
                        "passguard: warning: the policy is installed, but the reload request "
                        "failed: %s\n",
                        pg_last_message(pg));
                return EXIT_DONE;
        }
        if (r > 0) {
                fprintf(stderr, "passguard: the policy is installed, but passguardd refused to "
                                "reload it: %s: %s\n",
                        pg_strerror(r), pg_last_message(pg));
                return EXIT_REFUSED;
        }
        printf("passguardd reloaded the policy\n");
        return EXIT_DONE;
}

/*
 * One editor at a time, like visudo: an exclusive lock on DIR/.NAME.lock, next
 * to the policy, held until the edit ends. Returns the locked fd (the caller
 * owns it), or -1 after saying why: another edit holds it (its pid is in the
 * lock file), or the lock cannot be taken.
 */
static int lock_policy(const char *path)
{
        _cleanup_(freep) char *dircopy = strdup(path), *basecopy = strdup(path), *lock = NULL;
        _cleanup_(closep) int fd = -1;
        char pid[32] = "";

        if (!dircopy || !basecopy ||
            asprintf(&lock, "%s/.%s.lock", dirname(dircopy), basename(basecopy)) < 0) {
                lock = NULL;
                fputs("passguard: out of memory\n", stderr);
                return -1;
        }
        fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                fprintf(stderr, "passguard: cannot lock %s (%s): %m\n", path, lock);
                return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK) {
                        fprintf(stderr, "passguard: cannot lock %s (%s): %m\n", path, lock);
                        return -1;
                }
                ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
                pid[n > 0 ? n : 0] = '\0';
                pid[strcspn(pid, "\n")] = '\0';
                fprintf(stderr,
                        "passguard: %s is being edited by another 'passguard policy edit'%s%s%s; "
                        "try again when it is done\n",
                        path, *pid ? " (pid " : "", pid, *pid ? ")" : "");
                return -1;
        }
        /* The pid is only for the message above: the lock holds without it. */
        snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
        (void)!ftruncate(fd, 0);
        (void)!pwrite(fd, pid, strlen(pid), 0);
        return TAKE_FD(fd);
}

/*
 * Whether path still holds what the edit started from: existence and bytes.
 * Anything else (another tool changed it meanwhile) must not be overwritten.
 */
static bool unchanged_since(const char *path, bool existed, const char *orig, size_t orig_len)
{
        _cleanup_(freep) char *now = NULL;
        size_t len = 0;
        int r = read_file(path, &now, &len);

        if (r == -ENOENT)
                return !existed;
        return r >= 0 && existed && len == orig_len && memcmp(now, orig, len) == 0;
}

static int policy_edit(const struct cli *c, int argc, char **argv)
{
        _cleanup_(tmpfile_clear) struct tmpfile tmp = { .fd = -1 };
        _cleanup_(closep) int lock = -1;
        _cleanup_(freep) char *orig = NULL;
        size_t orig_len = 0;
        const char *path = PG_DEFAULT_POLICY;
        struct stat st;
        bool exists;
        int r;

        if (argc == 3 && streq(argv[1], "--file"))
                path = argv[2];
        else if (argc == 2 && strncmp(argv[1], "--file=", 7) == 0)
                path = argv[1] + 7;
        else if (argc != 1) {
                fputs("Usage: passguard policy edit [--file FILE]\n", stderr);
                return EXIT_USAGE;
        }

        lock = lock_policy(path);
        if (lock < 0)
                return EXIT_REFUSED;
        if (stat(path, &st) < 0) {
                if (errno != ENOENT) {
                        fprintf(stderr, "passguard: %s: %m\n", path);
                        return EXIT_REFUSED;
                }
                exists = false;
                st.st_mode = S_IFREG | 0640;
                st.st_uid = geteuid();
                st.st_gid = getegid();
        } else {
                exists = true;
                r = read_file(path, &orig, &orig_len);
                if (r < 0) {
                        fprintf(stderr, "passguard: cannot read %s: %s\n", path, strerror(-r));
                        return EXIT_REFUSED;
                }
        }

        /* The copy lives next to the original, so the final rename is atomic. */
        _cleanup_(freep) char *dircopy = strdup(path), *basecopy = strdup(path);
        if (!dircopy || !basecopy || asprintf(&tmp.path, "%s/.%s.edit-XXXXXX", dirname(dircopy),
                                              basename(basecopy)) < 0) {
                tmp.path = NULL;
                fputs("passguard: out of memory\n", stderr);
                return EXIT_REFUSED;
        }
        tmp.fd = mkostemp(tmp.path, O_CLOEXEC);
        if (tmp.fd < 0) {
                fprintf(stderr, "passguard: cannot create a temporary file next to %s: %m\n",
                        path);
                tmp.path = pg_free(tmp.path);
                return EXIT_REFUSED;
        }
        r = pg_write_all(tmp.fd, orig ?: "", orig_len);
        if (r >= 0 && fchmod(tmp.fd, st.st_mode & 07777) < 0)
                r = -errno;
        if (r < 0) {
                fprintf(stderr, "passguard: cannot write %s: %s\n", tmp.path, strerror(-r));
                return EXIT_REFUSED;
        }

        for (;;) {
                _cleanup_(diags_clearp) struct pg_policy_diags diags = {};
                _cleanup_(pg_policy_freep) struct pg_policy *p = NULL;
                _cleanup_(freep) char *text = NULL;
                size_t len;

                if (run_editor(tmp.path) < 0) {
                        fprintf(stderr, "passguard: %s left unchanged\n", path);
                        return EXIT_REFUSED;
                }
                r = read_file(tmp.path, &text, &len);
                if (r < 0) {
                        fprintf(stderr, "passguard: cannot read %s: %s\n", tmp.path,
                                strerror(-r));
                        return EXIT_REFUSED;
                }
                if (exists && len == orig_len && memcmp(text, orig, len) == 0) {
                        printf("%s: unchanged\n", path);
                        return EXIT_DONE;
                }
                if (memchr(text, '\0', len)) {
                        fprintf(stderr, "%s: the file contains a NUL byte\n", path);
                        r = -EINVAL;
                } else
                        r = pg_policy_load_string(text, path, &p, &diags);
                if (r >= 0) {
                        printf("%s: OK (%zu rules)\n", path, pg_policy_n_rules(p));
                        break;
                }
                print_diags(&diags, path, r);
                if (!ask_edit_again()) {
                        fprintf(stderr, "passguard: %s left unchanged\n", path);
                        return EXIT_REFUSED;
                }
        }

        /*
         * Someone may have changed the policy while the editor ran, bypassing
         * this lock (another tool, a plain editor): installing would lose
         * their change. Keep this edit in its file instead.
         */
        if (!unchanged_since(path, exists, orig, orig_len)) {
                fprintf(stderr,
                        "passguard: %s was changed by someone else while you edited it: "
                        "nothing was installed; your edit is kept in %s\n",
                        path, tmp.path);
                tmp.fd = safe_close(tmp.fd);
                tmp.path = pg_free(tmp.path); /* kept for the user */
                return EXIT_REFUSED;
        }

        /*
         * The editor may have replaced the file (write to a new inode and
         * rename), so reopen it by name before making it durable.
         */
        tmp.fd = safe_close(tmp.fd);
        _cleanup_(closep) int fd = open(tmp.path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fchmod(fd, st.st_mode & 07777) < 0 ||
            (exists && fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM) ||
            fsync(fd) < 0) {
                fprintf(stderr, "passguard: cannot prepare %s: %m\n", tmp.path);
                return EXIT_REFUSED;
        }
        r = pg_durable_rename(AT_FDCWD, tmp.path, path);
        tmp.path = pg_free(tmp.path); /* renamed, or removed: nothing left to clean up */
        if (r < 0) {
                fprintf(stderr, "passguard: cannot install %s: %s\n", path, strerror(-r));
                return EXIT_REFUSED;
        }
        printf("%s installed\n", path);
        return reload_daemon(c);
}

int cli_policy(const struct cli *c, int argc, char **argv)
{
        static const char usage[] = "Usage: passguard policy check [FILE]\n"
                                    "       passguard policy explain OPTIONS [FILE]\n"
                                    "       passguard policy edit [--file FILE]\n"
                                    "       passguard policy generate [--output FILE] [--sysfs-root DIR]\n";

        if (argc < 2) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        const char *what = argv[1];
        if (streq(what, "--help") || streq(what, "-h")) {
                fputs(usage, stdout);
                return EXIT_DONE;
        }
        for (int i = 2; i < argc && !streq(what, "explain"); i++)
                if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
                        fputs(usage, stdout);
                        return EXIT_DONE;
                }
        if (streq(what, "check"))
                return policy_check(argc - 1, argv + 1);
        if (streq(what, "explain"))
                return policy_explain(argc - 1, argv + 1);
        if (streq(what, "edit"))
                return policy_edit(c, argc - 1, argv + 1);
        if (streq(what, "generate"))
                return cli_policy_generate(argc - 1, argv + 1);
        fprintf(stderr, "passguard: unknown policy verb '%s'\n", what);
        fputs(usage, stderr);
        return EXIT_USAGE;
}
