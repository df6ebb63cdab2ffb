/* SPDX-License-Identifier: MIT */
/*
 * The grant store: STATE_DIR/grants.json, with a format version and a
 * checksum, written durably (temporary file, fsync, rename, directory fsync)
 * before any reply that depends on it (DESIGN.md invariant 4).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hv.h"
#include "pg-util.h"
#include "policy.h"

#define PGD_GRANTS_FILE "grants.json"
#define PGD_GRANTS_FORMAT 1

struct pgd_grant {
        uint32_t sbdf;
        uint32_t domid;
        char domain_uuid[HV_UUID_MAX];
        char domain_name[HV_NAME_MAX];
        uid_t client_uid;
        pid_t client_pid;
        char client_unit[128];         /* "" when none */
        char rule[128];
        enum pg_policy_rdm rdm_policy;
        int64_t time;                  /* unix seconds */
};

struct pgd_grants;

/*
 * Load STATE_DIR/grants.json; a missing file is an empty store. A corrupt
 * file returns -EBADMSG, an unknown format -EPROTONOSUPPORT; either way
 * *ret_why says what is wrong, and the file is left untouched.
 */
int pgd_grants_open(const char *state_dir, struct pgd_grants **ret, const char **ret_why);
/* An empty store for STATE_DIR that ignores what is on disk (--rebuild-state). */
int pgd_grants_new_empty(const char *state_dir, struct pgd_grants **ret);
struct pgd_grants *pgd_grants_free(struct pgd_grants *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pgd_grants *, pgd_grants_free);

const char *pgd_grants_path(const struct pgd_grants *g);
size_t pgd_grants_count(const struct pgd_grants *g);
const struct pgd_grant *pgd_grants_get(const struct pgd_grants *g, size_t i);
const struct pgd_grant *pgd_grants_find(const struct pgd_grants *g, uint32_t sbdf);
size_t pgd_grants_count_domain(const struct pgd_grants *g, const char *domain_uuid);

/* In memory only; pgd_grants_commit() makes it durable. -EEXIST if sbdf is granted. */
int pgd_grants_add(struct pgd_grants *g, const struct pgd_grant *grant);
/* -ENOENT if sbdf is not granted. */
int pgd_grants_remove(struct pgd_grants *g, uint32_t sbdf);

/* Write durably. On failure the file on disk is unchanged and -errno returned. */
int pgd_grants_commit(struct pgd_grants *g);

/*
 * Devices that `prepare` took from a dom0 driver: the driver to give them back
 * to on `unprepare` ("" when none was bound). Stored in the same file.
 */
int pgd_grants_set_prepared(struct pgd_grants *g, uint32_t sbdf, const char *driver);
/* NULL when sbdf was not prepared by passguard. */
const char *pgd_grants_prepared_driver(const struct pgd_grants *g, uint32_t sbdf);
int pgd_grants_clear_prepared(struct pgd_grants *g, uint32_t sbdf);

/* Parse/serialise (also used by the fuzzer): text <-> store. */
int pgd_grants_parse(const char *text, size_t len, struct pgd_grants *g, const char **ret_why);

/*
 * The file's text for the store as it is in memory, checksum included, as
 * pgd_grants_commit() writes it. *ret_text is freed with free().
 */
int pgd_grants_format(const struct pgd_grants *g, char **ret_text, size_t *ret_len);

/* "sha256:" and 64 hex digits, NUL included. */
#define PGD_GRANTS_CHECKSUM_MAX (sizeof("sha256:") + 64)
struct json_t;
/*
 * The file's checksum of obj, a top-level object without its "checksum" key:
 * "sha256:<hex>" over json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS).
 */
int pgd_grants_checksum(const struct json_t *obj, char ret[static PGD_GRANTS_CHECKSUM_MAX]);
