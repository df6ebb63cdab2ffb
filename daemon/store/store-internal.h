/* SPDX-License-Identifier: MIT */
/*
 * The grant store's parts, shared by the files of daemon/store/ alone:
 *   store.c     the store in memory: grants, prepared devices, open intents,
 *               and a record applied to them
 *   snapshot.c  grants.json's text: strict parse, format, checksum
 *   records.c   the journal's lines: format (canonical, one pass), parse, replay
 *   files.c     the files: load, compaction, append and sync (the durable I/O)
 *   sha256.c    SHA-256, for the checksums
 * The formats and the crash-safety argument are written once, in grants.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "grants.h"
#include "pg-util.h"

#define GRANTS_TMP_FILE PGD_GRANTS_FILE ".tmp"
#define JOURNAL_TMP_FILE PGD_GRANTS_JOURNAL ".tmp"
#define GRANTS_MAX_FILE_SIZE (16u * 1024 * 1024)
/* A journal longer than this (and than twice its snapshot) is compacted at its next sync. */
#define JOURNAL_COMPACT_SIZE (256u * 1024)
/* Free space below which the journal takes no record. */
#define JOURNAL_RESERVE (64u * 1024)
/* The journal grows by this much, zero-filled, ahead of its records. */
#define JOURNAL_CHUNK (64u * 1024)
#define CHECKSUM_PREFIX "sha256:"

struct prepared {
        uint32_t sbdf;
        char driver[HV_DRIVER_MAX];
        struct pgd_identity identity;
};

struct pgd_grants {
        char *state_dir;
        char *path;
        struct pgd_grant *grants; /* sorted by sbdf */
        size_t n_grants, cap_grants;
        struct prepared *prepared; /* sorted by sbdf */
        size_t n_prepared, cap_prepared;
        struct pgd_intent *intents; /* open intents, by seq */
        size_t n_intents, cap_intents;
        struct pgd_taint *taints; /* sorted by sbdf */
        size_t n_taints, cap_taints;

        char snapshot_sum[PGD_GRANTS_CHECKSUM_MAX]; /* of grants.json on disk, "" for none */
        size_t snapshot_size;
        char *journal_path;
        int journal_fd;       /* open for appending while records wait for their sync */
        bool journal_exists;  /* the file is on disk, with its base line */
        bool journal_created; /* created since the directory was last synced */
        bool journal_broken;  /* a write or sync failed: compact before the next record */
        size_t journal_size;  /* bytes of whole records (base line included) */
        size_t journal_alloc; /* the file's length: whole records, then zeros */
        uint64_t next_seq;
        size_t unsynced;
        /* pgd_grants_batch(): records applied to memory, their lines not written yet */
        bool batching;
        char *batch;
        size_t batch_len, batch_cap;
};
#define CHECKSUM_MAX PGD_GRANTS_CHECKSUM_MAX

/* Room for need elements of size in *v (capacity *cap, doubled as needed): 0 or -ENOMEM. */
int pgd_grants_grow(void **v, size_t *cap, size_t need, size_t size);

/* Why a file does not load: written by pgd_grants_bad(), handed to the caller as a copy. */
#define WHY_MAX 256

struct pgd_journal_base {
        char sum[CHECKSUM_MAX]; /* "" for none */
        uint64_t seq;           /* the records continue at seq + 1 */
        uint64_t *carried;      /* the intents that come first, in order */
        size_t n_carried;
};

/* ---- store.c ---- */

/* Write the reason into why; returns -EBADMSG. */
_printf_(2, 3) int pgd_grants_bad(char why[static WHY_MAX], const char *fmt, ...);
/* Hand why to the caller (ret_why may be NULL); -ENOMEM replaces r when it cannot. */
int pgd_grants_give_why(int r, const char *why, char **ret_why);
/* An empty store for STATE_DIR. */
int pgd_grants_store_new(const char *state_dir, struct pgd_grants **ret);
/* Insert into a sorted array: -EEXIST when sbdf is there already (unless replace). */
int pgd_grants_insert(struct pgd_grant **v, size_t *n, size_t *cap, const struct pgd_grant *gr);
int pgd_grants_insert_prepared(struct prepared **v, size_t *n, size_t *cap, uint32_t sbdf,
                               const char *driver, bool replace);
int pgd_grants_insert_taint(struct pgd_taint **v, size_t *n, size_t *cap,
                            const struct pgd_taint *t, bool replace);
/* Apply a journal record to memory: -ENOENT for an intent not open, -EINVAL out of order. */
int pgd_grants_apply(struct pgd_grants *g, const struct pgd_record *r);

/* ---- snapshot.c ---- */

/* "an object", "a string", ... for a reason. */
const char *pgd_grants_type_name(const json_t *j);
/* Typed members of a JSON object, strictly; what prefixes the reason. */
int pgd_grants_check_members(char *why, const json_t *obj, const char *what,
                             const char *const *allowed);
int pgd_grants_get_string(char *why, const json_t *obj, const char *what, const char *key,
                          size_t max, bool nonempty, const char **ret);
int pgd_grants_get_int(char *why, const json_t *obj, const char *what, const char *key,
                       json_int_t min, json_int_t max, json_int_t *ret);
int pgd_grants_get_device(char *why, const json_t *obj, const char *what, uint32_t *ret);
int pgd_grants_parse_grant(char *why, const json_t *obj, size_t idx, struct pgd_grant *ret);
json_t *pgd_grants_grant_to_json(const struct pgd_grant *gr);
/* A device's "identity" object (what prefixes the reason), and back. */
int pgd_grants_parse_identity(char *why, const json_t *obj, const char *what,
                              struct pgd_identity *ret);
json_t *pgd_grants_identity_to_json(const struct pgd_identity *id);
/* A taint's object without its device ("domain_uuid", "reason", "time"). */
int pgd_grants_parse_taint(char *why, const json_t *obj, const char *what, struct pgd_taint *ret);
/* grants.json's text into g (empty): -EBADMSG or -EPROTONOSUPPORT with why. */
int pgd_grants_snapshot_parse(char *why, const char *text, size_t len, struct pgd_grants *g);
/*
 * obj with its "checksum" (over obj without it) added, dumped with flags and
 * a '\n': a snapshot's text, a journal line. sum is the checksum.
 */
int pgd_grants_seal(json_t *obj, size_t flags, char sum[static CHECKSUM_MAX], char **ret,
                    size_t *ret_len);
/* The snapshot's text for g, and its checksum. */
int pgd_grants_snapshot_format(const struct pgd_grants *g, char **ret_text, size_t *ret_len,
                               char sum[static CHECKSUM_MAX]);

/* ---- records.c ---- */

/* A record's line, '\n' included; a journal's base line. */
int pgd_grants_record_format(const struct pgd_record *r, char **ret, size_t *ret_len);
int pgd_grants_base_format(const char *snapshot_sum, uint64_t seq, const struct pgd_intent *carried,
                           size_t n_carried, char **ret, size_t *ret_len);
int pgd_grants_base_parse(char *why, const char *text, size_t len, struct pgd_journal_base *ret);
void pgd_grants_base_clear(struct pgd_journal_base *b);
/* The next line of text from *pos: false at the end; *ret_complete when it ends in '\n'. */
bool pgd_grants_next_line(const char *text, size_t len, size_t *pos, const char **ret_line,
                          size_t *ret_len, bool *ret_complete);
/*
 * Replay records over g, from the line after the base: first the carried
 * intents the base lists, then records numbered on from base->seq + 1. Stops
 * at a torn tail (invalid text with no valid record after it). *ret_size is
 * the length of the valid prefix, *ret_next the seq that follows.
 */
int pgd_grants_replay_records(char *why, struct pgd_grants *g, const struct pgd_journal_base *b,
                              const char *text, size_t len, size_t pos, size_t *ret_size,
                              uint64_t *ret_next);
