/* SPDX-License-Identifier: MIT */
/*
 * The in-memory form of a loaded policy, shared by the loader (syntax.c reads
 * the text, validate.c checks every setting and builds the struct, load.c
 * reads files and owns the result) and the evaluator (match.c). Nothing
 * outside policy/ sees these structs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

/* Which keys a device matcher gives. */
enum {
        DEV_BDF = 1u << 0,
        DEV_VENDOR = 1u << 1,
        DEV_DEVICE = 1u << 2,
        DEV_SUBSYS_VENDOR = 1u << 3,
        DEV_SUBSYS_DEVICE = 1u << 4,
        DEV_CLASS = 1u << 5,
        DEV_SERIAL = 1u << 6,
        DEV_PATH = 1u << 7,
};

#define BDF_ANY (-1)

struct dev_matcher {
        unsigned keys;
        int line;
        /* bdf: the segment is always given (0 when left out); -1 is "*" */
        uint16_t seg;
        int bus, slot, fn;
        int32_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class_value; /* the class_digits hex digits as written */
        int class_digits;     /* 2, 4 or 6 */
        char *serial;         /* glob, lowercase */
        char *path;           /* glob */
        char *text;           /* human form, "vendor 0x10de, class 0x03" */
};

enum {
        DOM_NAME = 1u << 0,
        DOM_DOMID = 1u << 1,
        DOM_UUID = 1u << 2,
        DOM_TYPE = 1u << 3,
};

struct dom_matcher {
        unsigned keys;
        int line;
        char *name; /* glob */
        uint32_t domid;
        char *uuid; /* lowercase canonical */
        char *type;
};

struct client {
        char *name;
        int line;
        int name_line; /* of its "name" setting */
        bool has_uid, has_gid, has_group;
        uid_t uid;
        gid_t gid;
        gid_t group_gid;
        char *group;
        char *unit;
};

struct rule {
        char *name;
        int line;
        int name_line; /* of its "name" setting */
        bool allow;
        size_t *clients; /* indices into policy->clients */
        size_t n_clients;
        bool any_client; /* no clients key */
        struct dev_matcher *devices;
        size_t n_devices; /* 0: any device */
        struct dom_matcher *domains;
        size_t n_domains; /* 0: any domain */
        enum pg_policy_rdm rdm;
        enum pg_policy_reset reset;
        unsigned max_devices_per_domain;
        bool managed;
};

/* One (key, rule index) pair; sorted by key, then rule index. */
struct index_entry {
        uint32_t key;
        uint32_t rule;
};

struct rule_index {
        struct index_entry *by_bdf, *by_vendor, *by_class;
        size_t n_by_bdf, n_by_vendor, n_by_class;
        uint32_t *wildcard; /* rules no key narrows, ascending */
        size_t n_wildcard;
};

struct pg_policy {
        char *path;
        bool require_interrupt_remapping;
        bool protect_root_device;
        struct client *clients;
        size_t n_clients;
        size_t *admins;
        size_t n_admins;
        size_t *watchers; /* clients that may watch the event stream, besides admins */
        size_t n_watchers;
        struct dev_matcher *protected;
        size_t n_protected;
        struct rule *rules;
        size_t n_rules;
        struct rule_index index;
        /* Indices of the named clients and rules, sorted by name (then index): lookups by name. */
        size_t *clients_by_name, n_clients_by_name;
        size_t *rules_by_name, n_rules_by_name;
};

/* match.c */
int pg_policy_index_build(struct pg_policy *p);
void pg_policy_index_free(struct rule_index *idx);
bool pg_policy_glob_match(const char *pattern, const char *s);

/* ---- loading: syntax.c, validate.c, load.c ---- */

#include <libconfig.h>
#include <sys/types.h>

/* One load of a policy text: where it comes from, what is wrong with it so far. */
struct loader {
        const char *file;
        struct pg_policy_diags *diags;
        size_t first_diag; /* the diags this load added start here */
        size_t n_errors;
        bool oom;
        struct pg_policy *p;
};

/* syntax.c: the text as libconfig reads it, and typed access to its settings. */
_printf_(3, 4) void pg_policy_diag(struct loader *l, int line, const char *fmt, ...);
/* This load's diagnostics by line (stable). */
void pg_policy_diags_sort(struct loader *l);
/* What libconfig 1.5 would get wrong silently in the raw text (@include, ...): false with diags. */
bool pg_policy_prescan(struct loader *l, const char *text);
int pg_policy_line_of(const config_setting_t *s);
const char *pg_policy_name_of(const config_setting_t *s);
bool pg_policy_check_keys(struct loader *l, const config_setting_t *group,
                          const char *const *allowed, const char *what);
void pg_policy_wrong_type(struct loader *l, const config_setting_t *s, const char *expected);
bool pg_policy_get_int(struct loader *l, const config_setting_t *s, int64_t min, int64_t max,
                       bool hex, int64_t *ret);
bool pg_policy_get_string(struct loader *l, const config_setting_t *s, const char **ret);
bool pg_policy_get_bool(struct loader *l, const config_setting_t *s, bool *ret);
bool pg_policy_is_group_list(struct loader *l, const config_setting_t *s);
bool pg_policy_is_string_list(struct loader *l, const config_setting_t *s);
/* strdup(), or NULL with l->oom set. */
char *pg_policy_strdup(struct loader *l, const char *s);

/* validate.c: the settings into l->p, every problem said; name lookups. */
void pg_policy_validate(struct loader *l, const config_setting_t *root);
/* The index of the named rule or client, -1 when there is none. */
ssize_t pg_policy_rule_find(const struct pg_policy *p, const char *name);
ssize_t pg_policy_client_find(const struct pg_policy *p, const char *name);
