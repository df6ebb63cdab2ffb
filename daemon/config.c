/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <libconfig.h>

#include "config.h"
#include "hv.h"
#include "pgd.h"

int pgd_diags_add(struct pgd_diags *d, const char *fmt, ...)
{
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        char **v = reallocarray(d->v, d->n + 1, sizeof(*v));
        if (!v) {
                free(s);
                return -ENOMEM;
        }
        v[d->n++] = s;
        d->v = v;
        return 0;
}

void pgd_diags_clear(struct pgd_diags *d)
{
        for (size_t i = 0; i < d->n; i++)
                free(d->v[i]);
        free(d->v);
        d->v = NULL;
        d->n = 0;
}

void pgd_diags_print(const struct pgd_diags *d, FILE *f)
{
        for (size_t i = 0; i < d->n; i++)
                fprintf(f, "%s\n", d->v[i]);
}

/* Replace *field with a copy of value. */
static int set_string(char **field, const char *value)
{
        char *s = NULL;

        if (value) {
                s = strdup(value);
                if (!s)
                        return -ENOMEM;
        }
        free(*field);
        *field = s;
        return 0;
}

int pgd_config_init(struct pgd_config *cfg)
{
        *cfg = (struct pgd_config){
                .max_connections = PGD_DEFAULT_MAX_CONNECTIONS,
                .max_connections_per_uid = PGD_DEFAULT_MAX_CONNECTIONS_PER_UID,
                .max_unknown_connections = PGD_DEFAULT_MAX_UNKNOWN_CONNECTIONS,
                .idle_timeout_sec = PGD_DEFAULT_IDLE_TIMEOUT_SEC,
        };
        if (set_string(&cfg->config_path, PG_DEFAULT_CONFIG) < 0 ||
            set_string(&cfg->policy_path, PG_DEFAULT_POLICY) < 0 ||
            set_string(&cfg->state_dir, PG_DEFAULT_STATE_DIR) < 0 ||
            set_string(&cfg->backend, PGD_DEFAULT_BACKEND) < 0 ||
            set_string(&cfg->sysfs_root, PGD_DEFAULT_SYSFS_ROOT) < 0) {
                pgd_config_clear(cfg);
                return -ENOMEM;
        }
        return 0;
}

void pgd_config_clear(struct pgd_config *cfg)
{
        free(cfg->config_path);
        free(cfg->policy_path);
        free(cfg->socket_path);
        free(cfg->state_dir);
        free(cfg->backend);
        free(cfg->sim_host);
        free(cfg->sysfs_root);
        *cfg = (struct pgd_config){0};
}

/* ---- the config file ---- */

enum key_type {
        KEY_STRING,
        KEY_BOOL,
        KEY_UINT,
};

/* Every key the file may hold; anything else is an error. */
static const struct {
        const char *name;
        enum key_type type;
        size_t offset;
        unsigned min, max; /* KEY_UINT */
} config_keys[] = {
        {"policy", KEY_STRING, offsetof(struct pgd_config, policy_path), 0, 0},
        {"socket", KEY_STRING, offsetof(struct pgd_config, socket_path), 0, 0},
        {"state_dir", KEY_STRING, offsetof(struct pgd_config, state_dir), 0, 0},
        {"backend", KEY_STRING, offsetof(struct pgd_config, backend), 0, 0},
        {"sim_host", KEY_STRING, offsetof(struct pgd_config, sim_host), 0, 0},
        {"sysfs_root", KEY_STRING, offsetof(struct pgd_config, sysfs_root), 0, 0},
        {"enforce", KEY_BOOL, offsetof(struct pgd_config, enforce), 0, 0},
        {"debug", KEY_BOOL, offsetof(struct pgd_config, debug), 0, 0},
        {"max_connections", KEY_UINT, offsetof(struct pgd_config, max_connections), 1, 65536},
        {"max_connections_per_uid", KEY_UINT, offsetof(struct pgd_config, max_connections_per_uid),
         1, 65536},
        {"max_unknown_connections", KEY_UINT, offsetof(struct pgd_config, max_unknown_connections),
         1, 65536},
        {"idle_timeout", KEY_UINT, offsetof(struct pgd_config, idle_timeout_sec), 1, 86400},
};

/* One top-level setting; problems go to diags, the return value is for ENOMEM. */
static int load_key(struct pgd_config *cfg, const char *path, config_setting_t *s,
                    struct pgd_diags *diags, bool *bad)
{
        const char *name = config_setting_name(s);
        int line = (int)config_setting_source_line(s);
        int type = config_setting_type(s);

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                if (!streq(config_keys[i].name, name))
                        continue;

                void *field = (char *)cfg + config_keys[i].offset;
                switch (config_keys[i].type) {
                case KEY_STRING: {
                        if (type != CONFIG_TYPE_STRING)
                                break;
                        const char *v = config_setting_get_string(s);
                        if (!v || !*v) {
                                *bad = true;
                                return pgd_diags_add(diags, "%s:%d: '%s' must not be empty", path,
                                                     line, name);
                        }
                        return set_string(field, v);
                }
                case KEY_BOOL:
                        if (type != CONFIG_TYPE_BOOL)
                                break;
                        *(bool *)field = config_setting_get_bool(s);
                        return 0;
                case KEY_UINT: {
                        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
                                break;
                        long long v = config_setting_get_int64(s);
                        if (v < config_keys[i].min || v > config_keys[i].max) {
                                *bad = true;
                                return pgd_diags_add(diags,
                                                     "%s:%d: '%s' must be between %u and %u, "
                                                     "not %lld",
                                                     path, line, name, config_keys[i].min,
                                                     config_keys[i].max, v);
                        }
                        *(unsigned *)field = (unsigned)v;
                        return 0;
                }
                }
                *bad = true;
                static const char *const want[] = {
                        [KEY_STRING] = "a string",
                        [KEY_BOOL] = "a boolean",
                        [KEY_UINT] = "an integer",
                };
                return pgd_diags_add(diags, "%s:%d: '%s' must be %s, not %s", path, line, name,
                                     want[config_keys[i].type], pg_policy_config_type_name(type));
        }
        *bad = true;
        return pgd_diags_add(diags, "%s:%d: unknown key '%s'", path, line, name);
}

int pgd_config_load_file(struct pgd_config *cfg, const char *path, struct pgd_diags *diags)
{
        _cleanup_(fclosep) FILE *f = NULL;
        config_t lc;
        bool bad = false;
        int r = 0;

        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                pgd_diags_add(diags, "%s: cannot read the config file: %s", path, strerror(-r));
                return r;
        }

        config_init(&lc);
        if (!config_read(&lc, f)) {
                pgd_diags_add(diags, "%s:%d: %s", path, config_error_line(&lc),
                              config_error_text(&lc));
                config_destroy(&lc);
                return -EINVAL;
        }

        config_setting_t *root = config_root_setting(&lc);
        int n = config_setting_length(root);
        for (int i = 0; i < n && r >= 0; i++)
                r = load_key(cfg, path, config_setting_get_elem(root, (unsigned)i), diags, &bad);
        config_destroy(&lc);
        if (r < 0)
                return r;
        return bad ? -EINVAL : 0;
}

int pgd_config_validate(const struct pgd_config *cfg, struct pgd_diags *diags)
{
        size_t before = diags->n;

        if (!streq(cfg->backend, "xen") && !streq(cfg->backend, "sim"))
                pgd_diags_add(diags, "unknown backend '%s': expected 'xen' or 'sim'", cfg->backend);
        else if (!pgd_hv_lookup(cfg->backend))
                pgd_diags_add(diags, "backend '%s' is not built into this passguardd",
                              cfg->backend);
        if (streq(cfg->backend, "sim") && !cfg->sim_host)
                pgd_diags_add(diags, "--backend sim needs --sim-host FILE (or sim_host in the "
                                     "config file): the simulated host to use");
        if (cfg->socket_path &&
            strlen(cfg->socket_path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
                pgd_diags_add(diags, "socket path '%s' is too long for an AF_UNIX socket",
                              cfg->socket_path);
        if (cfg->socket_path && cfg->socket_path[0] != '/')
                pgd_diags_add(diags, "socket path '%s' must be absolute", cfg->socket_path);
        return diags->n > before ? -EINVAL : 0;
}

/* ---- the command line ---- */

void pgd_config_usage(FILE *f)
{
        fprintf(f,
                "Usage: passguardd [OPTIONS]\n"
                "\n"
                "Mediate Xen PCI passthrough: the only program that assigns devices.\n"
                "\n"
                "  --config FILE      daemon configuration (default " PG_DEFAULT_CONFIG ")\n"
                "  --policy FILE      policy (default " PG_DEFAULT_POLICY ")\n"
                "  --socket PATH      listen here (default: from systemd, else " PG_DEFAULT_SOCKET
                ")\n"
                "  --state-dir DIR    grant store directory (default " PG_DEFAULT_STATE_DIR ")\n"
                "  --backend xen|sim  host backend (default xen)\n"
                "  --sim-host FILE    the simulated host file (--backend sim)\n"
                "  --sysfs-root DIR   sysfs root (default /sys)\n"
                "  --enforce          deassign devices assigned behind passguard's back\n"
                "  --rebuild-state    rebuild the grant store from the hypervisor\n"
                "  --check-config     validate the configuration and policy, then exit\n"
                "  --debug            debug logging; echo audit records to stderr\n"
                "  -h --help          show this help\n"
                "  --version          show the version\n");
}

enum {
        OPT_CONFIG = 0x100,
        OPT_POLICY,
        OPT_SOCKET,
        OPT_STATE_DIR,
        OPT_BACKEND,
        OPT_SIM_HOST,
        OPT_SYSFS_ROOT,
        OPT_ENFORCE,
        OPT_REBUILD_STATE,
        OPT_CHECK_CONFIG,
        OPT_DEBUG,
        OPT_VERSION,
};

/* What the command line said; strings point into argv. */
struct args {
        const char *config, *policy, *socket, *state_dir, *backend, *sim_host, *sysfs_root;
        bool enforce, rebuild_state, check_config, debug;
};

static int parse_args(int argc, char *argv[], struct args *a, enum pgd_action *ret_action,
                      struct pgd_diags *diags)
{
        static const struct option options[] = {
                {"config", required_argument, NULL, OPT_CONFIG},
                {"policy", required_argument, NULL, OPT_POLICY},
                {"socket", required_argument, NULL, OPT_SOCKET},
                {"state-dir", required_argument, NULL, OPT_STATE_DIR},
                {"backend", required_argument, NULL, OPT_BACKEND},
                {"sim-host", required_argument, NULL, OPT_SIM_HOST},
                {"sysfs-root", required_argument, NULL, OPT_SYSFS_ROOT},
                {"enforce", no_argument, NULL, OPT_ENFORCE},
                {"rebuild-state", no_argument, NULL, OPT_REBUILD_STATE},
                {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
                {"debug", no_argument, NULL, OPT_DEBUG},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, OPT_VERSION},
                {},
        };
        enum pgd_action action = PGD_ACTION_RUN;
        int c;

        opterr = 0;
        optind = 0; /* glibc: start afresh, so that this can run more than once */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                const char **s = NULL;

                switch (c) {
                case OPT_CONFIG:
                        s = &a->config;
                        break;
                case OPT_POLICY:
                        s = &a->policy;
                        break;
                case OPT_SOCKET:
                        s = &a->socket;
                        break;
                case OPT_STATE_DIR:
                        s = &a->state_dir;
                        break;
                case OPT_BACKEND:
                        s = &a->backend;
                        break;
                case OPT_SIM_HOST:
                        s = &a->sim_host;
                        break;
                case OPT_SYSFS_ROOT:
                        s = &a->sysfs_root;
                        break;
                case OPT_ENFORCE:
                        a->enforce = true;
                        break;
                case OPT_REBUILD_STATE:
                        a->rebuild_state = true;
                        break;
                case OPT_CHECK_CONFIG:
                        a->check_config = true;
                        break;
                case OPT_DEBUG:
                        a->debug = true;
                        break;
                case 'h':
                        action = PGD_ACTION_HELP;
                        break;
                case OPT_VERSION:
                        action = PGD_ACTION_VERSION;
                        break;
                case ':':
                        pgd_diags_add(diags, "option '%s' needs an argument", argv[optind - 1]);
                        return -EINVAL;
                default:
                        pgd_diags_add(diags, "unknown option '%s' (see --help)", argv[optind - 1]);
                        return -EINVAL;
                }
                if (s) {
                        if (!*optarg) {
                                pgd_diags_add(diags, "option '%s' needs a non-empty argument",
                                              argv[optind - 1]);
                                return -EINVAL;
                        }
                        *s = optarg;
                }
        }
        if (optind < argc) {
                pgd_diags_add(diags, "unexpected argument '%s' (see --help)", argv[optind]);
                return -EINVAL;
        }
        *ret_action = action;
        return 0;
}

int pgd_config_from_args(int argc, char *argv[], struct pgd_config *cfg,
                         enum pgd_action *ret_action, struct pgd_diags *diags)
{
        struct args a = {};
        enum pgd_action action;
        int r;

        r = pgd_config_init(cfg);
        if (r < 0)
                return r;
        r = parse_args(argc, argv, &a, &action, diags);
        if (r < 0)
                return r;
        if (action != PGD_ACTION_RUN) {
                *ret_action = action;
                return 0;
        }

        /* The default config file may be missing; one named with --config may not. */
        if (a.config && set_string(&cfg->config_path, a.config) < 0)
                return -ENOMEM;
        int r_file = 0;
        if (a.config || access(cfg->config_path, F_OK) == 0 || errno != ENOENT) {
                r_file = pgd_config_load_file(cfg, cfg->config_path, diags);
                if (r_file == -ENOMEM)
                        return r_file;
        } else {
                free(cfg->config_path);
                cfg->config_path = NULL; /* none was read */
        }

        /* Flags override the file. */
        const struct {
                const char *value;
                char **field;
        } strings[] = {
                {a.policy, &cfg->policy_path},  {a.socket, &cfg->socket_path},
                {a.state_dir, &cfg->state_dir}, {a.backend, &cfg->backend},
                {a.sim_host, &cfg->sim_host},   {a.sysfs_root, &cfg->sysfs_root},
        };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                if (strings[i].value && set_string(strings[i].field, strings[i].value) < 0)
                        return -ENOMEM;
        cfg->enforce = cfg->enforce || a.enforce;
        cfg->debug = cfg->debug || a.debug;
        cfg->rebuild_state = a.rebuild_state;
        cfg->check_config = a.check_config;

        /* A broken file still gets the flags and the checks: report every problem. */
        r = pgd_config_validate(cfg, diags);
        if (r_file < 0 || r < 0)
                return -EINVAL;
        *ret_action = PGD_ACTION_RUN;
        return 0;
}
