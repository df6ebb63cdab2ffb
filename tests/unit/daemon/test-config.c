/* SPDX-License-Identifier: MIT */
/* passguardd's config file and command line: what an admin types, what the daemon makes of it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"

static char tmpdir[] = "/tmp/pg-test-config-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
        static char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        f = fopen(path, "we");
        if (!f)
                abort();
        fputs(text, f);
        fclose(f);
        return path;
}

/* Load text as a config file over the defaults; diags joined by '|' into msg. */
static int load(const char *text, struct pgd_config *cfg, char *msg, size_t size)
{
        struct pgd_diags diags = {};
        const char *path = write_file("passguardd.conf", text);
        int r;

        pgd_config_init(cfg);
        r = pgd_config_load_file(cfg, path, &diags);
        msg[0] = '\0';
        for (size_t i = 0; i < diags.n; i++) {
                /* Strip the temporary directory so that tests compare "passguardd.conf:N". */
                const char *m = diags.v[i];
                if (strncmp(m, tmpdir, strlen(tmpdir)) == 0)
                        m += strlen(tmpdir) + 1;
                snprintf(msg + strlen(msg), size - strlen(msg), "%s%s", i ? "|" : "", m);
        }
        pgd_diags_clear(&diags);
        return r;
}

static int from_args(char **argv, struct pgd_config *cfg, enum pgd_action *action, char *msg,
                     size_t size)
{
        struct pgd_diags diags = {};
        int argc = 0, r;

        while (argv[argc])
                argc++;
        r = pgd_config_from_args(argc, argv, cfg, action, &diags);
        msg[0] = '\0';
        for (size_t i = 0; i < diags.n; i++)
                snprintf(msg + strlen(msg), size - strlen(msg), "%s%s", i ? "|" : "", diags.v[i]);
        pgd_diags_clear(&diags);
        return r;
}

static void test_defaults(void)
{
        struct pgd_config cfg;

        CHECK_INTEQ(pgd_config_init(&cfg), 0);
        CHECK_STREQ(cfg.policy_path, PG_DEFAULT_POLICY);
        CHECK_STREQ(cfg.state_dir, PG_DEFAULT_STATE_DIR);
        CHECK_STREQ(cfg.backend, "xen");
        CHECK_STREQ(cfg.sysfs_root, "/sys");
        CHECK(cfg.socket_path == NULL);
        CHECK_INTEQ(cfg.max_connections, 64);
        CHECK_INTEQ(cfg.max_connections_per_uid, 16);
        CHECK_INTEQ(cfg.max_unknown_connections, 4);
        CHECK_INTEQ(cfg.idle_timeout_sec, 30);
        CHECK(!cfg.enforce && !cfg.debug);
        pgd_config_clear(&cfg);
}

static void test_good_file(void)
{
        struct pgd_config cfg;
        char msg[1024];

        CHECK_INTEQ(load("policy = \"/etc/pg/p.conf\";\n"
                         "socket = \"/run/x/pg.sock\";\n"
                         "state_dir = \"/var/lib/x\";\n"
                         "backend = \"sim\";\n"
                         "sim_host = \"/tmp/host.json\";\n"
                         "sysfs_root = \"/tmp/sys\";\n"
                         "enforce = true;\n"
                         "debug = true;\n"
                         "max_connections = 10;\n"
                         "max_connections_per_uid = 3;\n"
                         "max_unknown_connections = 2;\n"
                         "idle_timeout = 5;\n",
                         &cfg, msg, sizeof(msg)),
                    0);
        CHECK_STREQ(msg, "");
        CHECK_STREQ(cfg.policy_path, "/etc/pg/p.conf");
        CHECK_STREQ(cfg.socket_path, "/run/x/pg.sock");
        CHECK_STREQ(cfg.state_dir, "/var/lib/x");
        CHECK_STREQ(cfg.backend, "sim");
        CHECK_STREQ(cfg.sim_host, "/tmp/host.json");
        CHECK_STREQ(cfg.sysfs_root, "/tmp/sys");
        CHECK(cfg.enforce);
        CHECK(cfg.debug);
        CHECK_INTEQ(cfg.max_connections, 10);
        CHECK_INTEQ(cfg.max_connections_per_uid, 3);
        CHECK_INTEQ(cfg.max_unknown_connections, 2);
        CHECK_INTEQ(cfg.idle_timeout_sec, 5);
        pgd_config_clear(&cfg);
}

static void test_bad_files(void)
{
        struct pgd_config cfg;
        char msg[1024];

        /* An unknown key names its line. */
        CHECK_INTEQ(load("debug = false;\n\nbogus = 1;\n", &cfg, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "passguardd.conf:3: unknown key 'bogus'");
        pgd_config_clear(&cfg);

        /* Wrong types, all of them reported. */
        CHECK_INTEQ(load("enforce = \"yes\";\nidle_timeout = \"30\";\npolicy = 3;\n", &cfg, msg,
                         sizeof(msg)),
                    -EINVAL);
        CHECK_STREQ(msg, "passguardd.conf:1: 'enforce' must be a boolean, not a string|"
                         "passguardd.conf:2: 'idle_timeout' must be an integer, not a string|"
                         "passguardd.conf:3: 'policy' must be a string, not an integer");
        pgd_config_clear(&cfg);

        /* Impossible values. */
        CHECK_INTEQ(load("max_connections = 0;\n", &cfg, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "passguardd.conf:1: 'max_connections' must be between 1 and 65536, "
                         "not 0");
        pgd_config_clear(&cfg);
        CHECK_INTEQ(load("max_unknown_connections = 0;\n", &cfg, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "passguardd.conf:1: 'max_unknown_connections' must be between 1 and "
                         "65536, not 0");
        pgd_config_clear(&cfg);
        CHECK_INTEQ(load("state_dir = \"\";\n", &cfg, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "passguardd.conf:1: 'state_dir' must not be empty");
        pgd_config_clear(&cfg);

        /* A group where a value belongs. */
        CHECK_INTEQ(load("debug = { on = true; };\n", &cfg, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "passguardd.conf:1: 'debug' must be a boolean, not a group");
        pgd_config_clear(&cfg);

        /* Syntax errors and duplicates name their line too. */
        CHECK_INTEQ(load("debug = true;\nenforce = ;\n", &cfg, msg, sizeof(msg)), -EINVAL);
        CHECK(strncmp(msg, "passguardd.conf:2: ", 19) == 0);
        pgd_config_clear(&cfg);
        CHECK_INTEQ(load("debug = true;\ndebug = false;\n", &cfg, msg, sizeof(msg)), -EINVAL);
        CHECK(strncmp(msg, "passguardd.conf:2: ", 19) == 0);
        pgd_config_clear(&cfg);
}

static void test_example_config(const char *path)
{
        struct pgd_config cfg;
        struct pgd_diags diags = {};

        pgd_config_init(&cfg);
        CHECK_INTEQ(pgd_config_load_file(&cfg, path, &diags), 0);
        CHECK_INTEQ(diags.n, 0);
        CHECK_STREQ(cfg.backend, "xen");
        CHECK_INTEQ(cfg.max_connections, 64);
        CHECK_INTEQ(cfg.idle_timeout_sec, 30);
        pgd_diags_clear(&diags);
        pgd_config_clear(&cfg);
}

static void test_args(void)
{
        struct pgd_config cfg;
        enum pgd_action action = -1;
        char msg[1024], cfgpath[256], hostpath[256];

        snprintf(cfgpath, sizeof(cfgpath), "%s/passguardd.conf", tmpdir);
        snprintf(hostpath, sizeof(hostpath), "%s/host.json", tmpdir);

        /* Flags override the file; what the flags leave alone comes from the file. */
        write_file("passguardd.conf", "policy = \"/from/file\";\nidle_timeout = 7;\n"
                                      "backend = \"sim\";\nsim_host = \"/file/host\";\n");
        char *a1[] = {"passguardd", "--config", cfgpath,   "--policy",  "/from/flag",
                      "--sim-host", hostpath,   "--debug", "--enforce", NULL};
        CHECK_INTEQ(from_args(a1, &cfg, &action, msg, sizeof(msg)), 0);
        CHECK_STREQ(msg, "");
        CHECK_INTEQ(action, PGD_ACTION_RUN);
        CHECK_STREQ(cfg.policy_path, "/from/flag");
        CHECK_STREQ(cfg.sim_host, hostpath);
        CHECK_STREQ(cfg.backend, "sim");
        CHECK_INTEQ(cfg.idle_timeout_sec, 7);
        CHECK(cfg.debug && cfg.enforce && !cfg.check_config && !cfg.rebuild_state);
        pgd_config_clear(&cfg);

        /* A file named with --config must exist. */
        char *a2[] = {"passguardd", "--config", "/nonexistent/passguardd.conf", NULL};
        CHECK_INTEQ(from_args(a2, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "/nonexistent/passguardd.conf: cannot read the config file: "
                         "No such file or directory");
        pgd_config_clear(&cfg);

        /* The simulated host needs its file. */
        char *a3[] = {"passguardd", "--config", cfgpath, "--backend", "sim", NULL};
        write_file("passguardd.conf", "debug = false;\n");
        CHECK_INTEQ(from_args(a3, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK(strstr(msg, "--backend sim needs --sim-host FILE") != NULL);
        pgd_config_clear(&cfg);

        char *a4[] = {"passguardd", "--config", cfgpath, "--backend", "hyperv", NULL};
        CHECK_INTEQ(from_args(a4, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "unknown backend 'hyperv': expected 'xen' or 'sim'");
        pgd_config_clear(&cfg);

        char *a5[] = {"passguardd", "--frobnicate", NULL};
        CHECK_INTEQ(from_args(a5, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "unknown option '--frobnicate' (see --help)");
        pgd_config_clear(&cfg);

        char *a6[] = {"passguardd", "--config", cfgpath, "--socket", NULL};
        CHECK_INTEQ(from_args(a6, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "option '--socket' needs an argument");
        pgd_config_clear(&cfg);

        char *a7[] = {"passguardd", "--config", cfgpath, "extra", NULL};
        CHECK_INTEQ(from_args(a7, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "unexpected argument 'extra' (see --help)");
        pgd_config_clear(&cfg);

        char *a8[] = {"passguardd", "--config", cfgpath, "--socket", "relative.sock", NULL};
        CHECK_INTEQ(from_args(a8, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK_STREQ(msg, "socket path 'relative.sock' must be absolute");
        pgd_config_clear(&cfg);

        char *a9[] = {"passguardd", "--help", NULL};
        CHECK_INTEQ(from_args(a9, &cfg, &action, msg, sizeof(msg)), 0);
        CHECK_INTEQ(action, PGD_ACTION_HELP);
        pgd_config_clear(&cfg);

        char *a10[] = {"passguardd", "--version", NULL};
        CHECK_INTEQ(from_args(a10, &cfg, &action, msg, sizeof(msg)), 0);
        CHECK_INTEQ(action, PGD_ACTION_VERSION);
        pgd_config_clear(&cfg);

        /* A broken file and --check-config: the flags are still known. */
        write_file("passguardd.conf", "nonsense = 1;\n");
        char *a11[] = {"passguardd", "--config", cfgpath, "--check-config", NULL};
        CHECK_INTEQ(from_args(a11, &cfg, &action, msg, sizeof(msg)), -EINVAL);
        CHECK(cfg.check_config);
        CHECK(strstr(msg, ":1: unknown key 'nonsense'") != NULL);
        pgd_config_clear(&cfg);

        /* The default config file may be missing (when it is, here). */
        if (access(PG_DEFAULT_CONFIG, F_OK) < 0) {
                char *a12[] = {"passguardd", "--backend",       "sim", "--sim-host",
                               hostpath,     "--rebuild-state", NULL};
                CHECK_INTEQ(from_args(a12, &cfg, &action, msg, sizeof(msg)), 0);
                CHECK(cfg.config_path == NULL);
                CHECK(cfg.rebuild_state);
                pgd_config_clear(&cfg);
        }
}

int main(int argc, char *argv[])
{
        if (!mkdtemp(tmpdir))
                return 99;
        test_defaults();
        test_good_file();
        test_bad_files();
        if (argc > 1)
                test_example_config(argv[1]);
        test_args();

        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        return harness_exit();
}
