/* SPDX-License-Identifier: MIT */
/*
 * The passguard policy language (passguard.conf(5)): libconfig text in, an
 * immutable validated struct pg_policy out. Pure library: no logging, no
 * sockets. The only lookups it makes are of group and user names at load time
 * (a name that does not exist is an error). The evaluator does no I/O at all.
 *
 * Used by passguardd (load, reload, every decision) and by the passguard CLI
 * (policy check, policy explain), so both judge a file the same way.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pg_policy; /* immutable once loaded */

/* ---- loading ---- */

struct pg_policy_diag {
        char *file;
        int line;           /* 0 when the problem concerns the whole file */
        char *message;
};

/* Every problem found, in file order. */
struct pg_policy_diags {
        struct pg_policy_diag *v;
        size_t n;
};

void pg_policy_diags_clear(struct pg_policy_diags *d);
/* "file:line: message" (or "file: message" when line is 0), one per line, into f. */
void pg_policy_diags_print(const struct pg_policy_diags *d, void *file /* FILE * */);

/*
 * Parse and validate. On success returns 0 and *ret. On an invalid policy
 * returns -EINVAL and diags holds every problem (each "file:line: message").
 * -ENOENT etc. when the file cannot be read (also reported in diags).
 */
int pg_policy_load(const char *path, struct pg_policy **ret, struct pg_policy_diags *diags);
/* The same, from text in memory; filename is used in messages. */
int pg_policy_load_string(const char *text, const char *filename, struct pg_policy **ret,
                          struct pg_policy_diags *diags);
struct pg_policy *pg_policy_free(struct pg_policy *p);

/* "an integer", "a string", ... for a libconfig CONFIG_TYPE_*, in messages. */
const char *pg_policy_config_type_name(int type);

const char *pg_policy_path(const struct pg_policy *p);
size_t pg_policy_n_rules(const struct pg_policy *p);
const char *pg_policy_rule_name(const struct pg_policy *p, size_t i);
bool pg_policy_require_interrupt_remapping(const struct pg_policy *p);
/* protect_root_device (default true): the daemon protects the root file system's devices. */
bool pg_policy_protect_root_device(const struct pg_policy *p);
/* The line of the first serial matcher (a protected entry's or a rule's), 0 for none. */
int pg_policy_serial_line(const struct pg_policy *p);

/* ---- evaluation ---- */

/* Who is asking: from SO_PEERCRED, SO_PEERGROUPS and sd_pid_get_unit(). */
struct pg_policy_identity {
        uid_t uid;
        gid_t gid;
        const gid_t *groups;        /* supplementary groups */
        size_t n_groups;
        const char *unit;           /* systemd unit, or NULL */
};

/* Facts about the device; a field that is unknown is -1 (a string: NULL). */
struct pg_policy_device {
        uint32_t sbdf;
        int32_t vendor, device;
        int32_t subsystem_vendor, subsystem_device;
        int32_t class;              /* 24 bits */
        const char *serial;         /* "xx-xx-...", "" when it has none, NULL unknown */
        const char *path;           /* "pci0000:00/0000:00:01.0", NULL unknown */
};

struct pg_policy_domain {
        const char *name;
        uint32_t domid;
        const char *uuid;
        const char *type;           /* "hvm", "pvh" or "pv" */
};

enum pg_policy_reset {
        PG_POLICY_RESET_REQUIRED,   /* the default */
        PG_POLICY_RESET_IF_AVAILABLE,
        PG_POLICY_RESET_NEVER,
};

enum pg_policy_rdm {
        PG_POLICY_RDM_STRICT,       /* the default */
        PG_POLICY_RDM_RELAXED,
};

/* Why an earlier rule did not match, for explain. */
struct pg_policy_miss {
        const char *rule;
        char reason[160];
};

struct pg_policy_decision {
        bool allow;
        const char *rule;           /* the matched rule's name, or "default" */
        enum pg_policy_rdm rdm_policy;
        enum pg_policy_reset reset;
        unsigned max_devices_per_domain; /* 0: no limit */
        bool managed;
        /* Filled only when evaluation was asked to explain. */
        struct pg_policy_miss *misses;
        size_t n_misses;
};

void pg_policy_decision_clear(struct pg_policy_decision *d);

/*
 * The names of the clients this identity matches, into a caller array of up to
 * max entries (pointers into the policy). Returns how many matched; 0 means the
 * daemon does not know this client.
 */
size_t pg_policy_clients(const struct pg_policy *p, const struct pg_policy_identity *id,
                         const char **ret, size_t max);
bool pg_policy_is_client(const struct pg_policy *p, const struct pg_policy_identity *id);
bool pg_policy_is_admin(const struct pg_policy *p, const struct pg_policy_identity *id);
/* Whether the client may watch the event stream: an admin, or a client named in watchers. */
bool pg_policy_is_watcher(const struct pg_policy *p, const struct pg_policy_identity *id);

/* Whether a protected entry matches; *ret_why names it (pointer into a static or the policy). */
bool pg_policy_is_protected(const struct pg_policy *p, const struct pg_policy_device *dev,
                            const char **ret_why);

/*
 * First matching rule decides; none means deny with rule "default".
 * explain: also fill decision->misses for every rule before the match.
 * Deterministic, no I/O. Returns 0 or -ENOMEM.
 */
int pg_policy_evaluate(const struct pg_policy *p, const struct pg_policy_identity *id,
                       const struct pg_policy_device *dev, const struct pg_policy_domain *dom,
                       bool explain, struct pg_policy_decision *ret);

/*
 * Why rules missed, as explain says it, without walking more than needed:
 * the reasons of at most max rules, from the first rule on, stopping at the
 * first rule that matches. *ret (freed with free()) is NULL when *ret_n is 0.
 * A daemon that decided with the index asks this only for a refusal's
 * message, and only for as many reasons as it can show.
 */
int pg_policy_misses(const struct pg_policy *p, const struct pg_policy_identity *id,
                     const struct pg_policy_device *dev, const struct pg_policy_domain *dom,
                     size_t max, struct pg_policy_miss **ret, size_t *ret_n);

/*
 * Whether the client may `prepare` this device: the first rule whose client
 * and devices match (its domains are not looked at) is an allow rule with
 * managed = true. A deny rule that matches first refuses.
 */
bool pg_policy_may_prepare(const struct pg_policy *p, const struct pg_policy_identity *id,
                           const struct pg_policy_device *dev);

const char *pg_policy_reset_name(enum pg_policy_reset r);
const char *pg_policy_rdm_name(enum pg_policy_rdm r);

/* The reset option of the rule called name; -ENOENT when no rule has that name. */
int pg_policy_rule_reset(const struct pg_policy *p, const char *name, enum pg_policy_reset *ret);
