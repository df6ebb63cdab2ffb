/* SPDX-License-Identifier: MIT */
/*
 * Loading a policy: libconfig text in, an immutable validated struct
 * pg_policy out (parse: syntax.c; validate: validate.c; here the file, the
 * whole load and the struct's life). Every problem is collected as
 * "file:line: message"; the policy is returned only when there is none.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "pg-util.h"
#include "pg-wire.h"
#include "policy-internal.h"

/* A policy file larger than this is refused before parsing. */
#define POLICY_MAX_SIZE (16u * 1024 * 1024)

/* ---- freeing ---- */

static void dev_matcher_done(struct dev_matcher *m)
{
        free(m->serial);
        free(m->path);
        free(m->text);
}

static void dom_matcher_done(struct dom_matcher *m)
{
        free(m->name);
        free(m->uuid);
        free(m->type);
}

static void rule_done(struct rule *r)
{
        free(r->name);
        free(r->clients);
        for (size_t i = 0; i < r->n_devices; i++)
                dev_matcher_done(&r->devices[i]);
        free(r->devices);
        for (size_t i = 0; i < r->n_domains; i++)
                dom_matcher_done(&r->domains[i]);
        free(r->domains);
}

struct pg_policy *pg_policy_free(struct pg_policy *p)
{
        if (!p)
                return NULL;
        free(p->path);
        for (size_t i = 0; i < p->n_clients; i++) {
                free(p->clients[i].name);
                free(p->clients[i].group);
                free(p->clients[i].unit);
        }
        free(p->clients);
        free(p->admins);
        free(p->watchers);
        for (size_t i = 0; i < p->n_protected; i++)
                dev_matcher_done(&p->protected[i]);
        free(p->protected);
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        pg_policy_index_free(&p->index);
        free(p->clients_by_name);
        free(p->rules_by_name);
        free(p);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct pg_policy *, pg_policy_free);

/* ---- accessors ---- */

ssize_t pg_policy_rule_find(const struct pg_policy *p, const char *name);

const char *pg_policy_path(const struct pg_policy *p)
{
        return p ? p->path : NULL;
}

size_t pg_policy_n_rules(const struct pg_policy *p)
{
        return p ? p->n_rules : 0;
}

const char *pg_policy_rule_name(const struct pg_policy *p, size_t i)
{
        if (!p || i >= p->n_rules)
                return NULL;
        return p->rules[i].name;
}

int pg_policy_rule_reset(const struct pg_policy *p, const char *name, enum pg_policy_reset *ret)
{
        ssize_t i;

        if (!p || !name)
                return -EINVAL;
        i = pg_policy_rule_find(p, name);
        if (i < 0)
                return -ENOENT;
        *ret = p->rules[i].reset;
        return 0;
}

bool pg_policy_require_interrupt_remapping(const struct pg_policy *p)
{
        return p ? p->require_interrupt_remapping : true;
}

bool pg_policy_protect_root_device(const struct pg_policy *p)
{
        return p ? p->protect_root_device : true;
}

int pg_policy_serial_line(const struct pg_policy *p)
{
        int line = 0;

        if (!p)
                return 0;
        for (size_t i = 0; i < p->n_protected; i++)
                if ((p->protected[i].keys & DEV_SERIAL) && (!line || p->protected[i].line < line))
                        line = p->protected[i].line;
        for (size_t r = 0; r < p->n_rules; r++)
                for (size_t i = 0; i < p->rules[r].n_devices; i++) {
                        const struct dev_matcher *m = &p->rules[r].devices[i];
                        if ((m->keys & DEV_SERIAL) && (!line || m->line < line))
                                line = m->line;
                }
        return line;
}

const char *pg_policy_reset_name(enum pg_policy_reset r)
{
        switch (r) {
        case PG_POLICY_RESET_REQUIRED:
                return "required";
        case PG_POLICY_RESET_IF_AVAILABLE:
                return "if-available";
        case PG_POLICY_RESET_NEVER:
                return "never";
        }
        return NULL;
}

const char *pg_policy_rdm_name(enum pg_policy_rdm r)
{
        switch (r) {
        case PG_POLICY_RDM_STRICT:
                return "strict";
        case PG_POLICY_RDM_RELAXED:
                return "relaxed";
        }
        return NULL;
}

static void config_destroyp(config_t *c)
{
        config_destroy(c);
}

static int load_text(const char *text, const char *filename, struct pg_policy **ret,
                     struct pg_policy_diags *diags)
{
        _cleanup_(pg_policy_freep) struct pg_policy *p = calloc(1, sizeof(*p));
        struct loader l = {
                .file = filename,
                .diags = diags,
                .first_diag = diags->n,
                .p = p,
        };
        if (!p)
                return -ENOMEM;
        p->path = strdup(filename);
        if (!p->path)
                return -ENOMEM;

        if (!pg_policy_prescan(&l, text)) {
                _cleanup_(config_destroyp) config_t cfg;
                config_init(&cfg);
                if (!config_read_string(&cfg, text)) {
                        const char *what = config_error_text(&cfg);
                        pg_policy_diag(&l, config_error_line(&cfg), "%s",
                                       what ? what : "syntax error");
                } else
                        pg_policy_validate(&l, config_root_setting(&cfg));
        }

        if (l.oom)
                return -ENOMEM;
        if (l.n_errors > 0) {
                pg_policy_diags_sort(&l);
                return -EINVAL;
        }
        int r = pg_policy_index_build(p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

int pg_policy_load_string(const char *text, const char *filename, struct pg_policy **ret,
                          struct pg_policy_diags *diags)
{
        struct pg_policy_diags local = {};
        struct pg_policy_diags *d = diags ? diags : &local;

        if (!text || !ret)
                return -EINVAL;
        int r = load_text(text, filename ? filename : "<string>", ret, d);
        pg_policy_diags_clear(&local);
        return r;
}

static int read_file(const char *path, char **ret, struct loader *l)
{
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode)) {
                pg_policy_diag(l, 0, "not a regular file");
                return -EINVAL;
        }
        if ((uint64_t)st.st_size > POLICY_MAX_SIZE) {
                pg_policy_diag(l, 0, "file is larger than %u bytes", POLICY_MAX_SIZE);
                return -EFBIG;
        }
        size_t size = (size_t)st.st_size, n = 0;
        _cleanup_(freep) char *buf = malloc(size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < size) {
                ssize_t k = read(fd, buf + n, size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break; /* shrank under us: parse what is there */
                n += (size_t)k;
        }
        buf[n] = '\0';
        if (memchr(buf, '\0', n)) {
                int line = 1;
                for (const char *c = buf; *c; c++)
                        line += *c == '\n';
                pg_policy_diag(l, line, "file contains a NUL byte");
                return -EINVAL;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

int pg_policy_load(const char *path, struct pg_policy **ret, struct pg_policy_diags *diags)
{
        struct pg_policy_diags local = {};
        struct pg_policy_diags *d = diags ? diags : &local;
        _cleanup_(freep) char *text = NULL;

        if (!path || !ret)
                return -EINVAL;
        struct loader l = {.file = path, .diags = d, .first_diag = d->n};
        int r = read_file(path, &text, &l);
        if (r < 0) {
                if (l.n_errors == 0)
                        pg_policy_diag(&l, 0, "%s", strerror(-r));
        } else
                r = load_text(text, path, ret, d);
        pg_policy_diags_clear(&local);
        return r;
}
