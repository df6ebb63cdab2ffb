/* SPDX-License-Identifier: MIT */
/*
 * The in-memory form of a loaded policy, shared by the loader (policy.c) and
 * the evaluator (match.c). Nothing outside policy/ sees these structs.
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
        struct client *clients;
        size_t n_clients;
        size_t *admins;
        size_t n_admins;
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
