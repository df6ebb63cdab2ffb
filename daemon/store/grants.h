/* SPDX-License-Identifier: MIT */
/*
 * The grant store (DESIGN.md "Grant store", invariant 4), in daemon/store/
 * (store-internal.h says which file does what). The formats and how they
 * survive a crash are written here, once.
 *
 * STATE_DIR/grants.json, the snapshot:
 *   { "format": 1,
 *     "grants": [ { "device": "0000:03:00.0", "domid": 5, "domain_uuid": "...",
 *                   "domain_name": "render-1", "client_uid": 0, "client_pid": 123,
 *                   "client_unit": "", "rule": "gpus", "rdm_policy": "strict",
 *                   "time": 1700000000 } ],
 *     "prepared": [ { "device": "0000:03:00.0", "driver": "e1000" } ],
 *     "tainted": [ { "device": "0000:03:00.0", "domain_uuid": "...", "reason": "...",
 *                    "time": 1700000000 } ],
 *     "checksum": "sha256:<64 hex digits>" }
 *
 * Optional keys, each written only when it has something to say, so that a
 * store without them is the same text as before them: a grant's and a
 * prepared device's "identity" (what the device was when it was granted or
 * prepared, see struct pgd_identity):
 *   "identity": { "vendor": "0x10de", "device": "0x1eb8", "subsystem_vendor":
 *                 "0x10de", "subsystem_device": "0x1234", "class": "0x030200",
 *                 "serial": "00-11-22-33-44-55-66-77" | "" (none) | null (unknown),
 *                 "path": "pci0000:00/0000:00:01.0" | "" (unknown) }
 * and "tainted", the devices whose reset failed (struct pgd_taint).
 *
 * The checksum is SHA-256 over the canonical serialisation of the object
 * without "checksum": jansson's JSON_COMPACT | JSON_SORT_KEYS. Whitespace and
 * key order in the file therefore do not matter; content does.
 *
 * Parsing is strict: duplicate and unknown keys, wrong types, malformed or
 * non-canonical BDFs and UUIDs, and devices listed twice are all -EBADMSG
 * with a reason; a format other than 1 is -EPROTONOSUPPORT. A file that does
 * not parse is never touched, so nothing is ever silently emptied.
 *
 * STATE_DIR/grants.journal, the changes since the snapshot, one JSON object
 * per line, each with its own checksum (as above, over the line's object
 * without "checksum"):
 *   {"op":"base","seq":S,"snapshot":"sha256:...","carried":[...]}
 *                    the snapshot it follows (null: no grants.json), the last
 *                    sequence number before it, and the intents still open
 *                    at the compaction that started it
 *   {"op":"intent-assign","seq":1,"device":D,"grant":{...}}
 *   {"op":"grant","seq":2,"device":D,"intent":1,"grant":{...}}
 *   {"op":"abort","seq":3,"device":D,"intent":1}
 *   {"op":"release","seq":4,"device":D}
 *   {"op":"intent-prepare","seq":5,"device":D,"driver":"e1000"}
 *   {"op":"prepared","seq":6,"device":D,"intent":5,"driver":"e1000"}
 *   {"op":"unprepared","seq":7,"device":D}
 *   {"op":"intent-assign-group","seq":8,"device":D1,"grants":[{...},{...}]}
 *   {"op":"grant-group","seq":9,"device":D1,"intent":8,"grants":[{...},{...}]}
 *   {"op":"taint","seq":10,"device":D,"taint":{"domain_uuid":U,"reason":R,"time":T}}
 *   {"op":"untaint","seq":11,"device":D}
 * (intent-prepare and prepared may carry the device's "identity".) A group's
 * intent names every grant of a multi-device assign; its one outcome record,
 * grant-group or abort, names them all again: a group is granted whole or
 * not at all, on disk as in the hypervisor, and start-up rolls back every
 * device of a group intent left open.
 * The carried intents come first, again, with their own sequence numbers, in
 * the order the base line lists them; then the records, numbered on from
 * S + 1 without a gap (an intent keeps its number across compactions, so an
 * outcome can always name it). Loading replays the journal whose base
 * is the snapshot's checksum; a journal with another base is older than the
 * snapshot (a compaction was interrupted after the snapshot's rename) and is
 * ignored. Invalid text after the last valid record is a torn append (a crash
 * while records were written, before their sync: never acknowledged) and is
 * ignored; an invalid record followed by a valid one is corruption.
 *
 * Appending writes the line after the last one (pwrite at the journal's
 * size), into space the file already has: it is extended with zeros, 64 KiB
 * at a time, ahead of its records, so that a record's fdatasync writes the
 * record but not the file's length (a sync after an extension writes that
 * too, once per 64 KiB). The zeros after the last record read as a torn
 * tail: no record. Syncing is one fdatasync for every
 * record appended since the last one (and a directory fsync when the file
 * was created). The journal is open only while records are written and
 * synced (pgd_grants_journal_idle()), so that no file of the state
 * directory stays open for writing when the daemon is idle. A failed
 * write is cut off again (ftruncate); after a failed write or sync the
 * journal takes no record until a compaction succeeded (what reached the
 * disk is unknown). A file system with less than JOURNAL_RESERVE bytes free
 * takes no record: the journal could not be compacted there.
 *
 * Compaction writes grants.json.tmp, fsyncs it, writes grants.journal.tmp
 * (the base line and the intents still open, carried), fsyncs it, renames the snapshot
 * into place, fsyncs the directory, renames the journal into place and fsyncs
 * the directory again. A crash between the two renames leaves the new
 * snapshot with the old journal (ignored: another base) and the new journal
 * as grants.journal.tmp, which loading then puts in place. When the snapshot
 * would not change, only the journal is replaced.
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
#define PGD_GRANTS_JOURNAL "grants.journal"
#define PGD_GRANTS_FORMAT 1

/*
 * What a device is, beyond its address: its ids, its class, its PCIe Device
 * Serial Number and its PCI path (the chain of bridges above it). Recorded
 * when passguard prepares a device and in each grant; a device at the same
 * address that differs is another device (identity-changed).
 */
struct pgd_identity {
        bool known; /* false: nothing recorded (a record from before identities) */
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class;
        char serial[HV_SERIAL_MAX]; /* "" the device has none */
        bool serial_unknown;        /* its config space could not be read */
        char path[HV_PCI_PATH_MAX]; /* "" unknown */
};

/* The identity of what sysfs says now. */
void pgd_identity_from_pci(const struct hv_pci_info *pci, struct pgd_identity *ret);
/*
 * Whether now is not the device was: 0 when it is the same (or nothing was
 * recorded; a serial or a path recorded as unknown matches anything), 1 with
 * what changed written into buf ("device id 0x10fb became
 * 0x1533, serial ... became none").
 */
int pgd_identity_diff(const struct pgd_identity *was, const struct pgd_identity *now, char *buf,
                      size_t size);

/* A device whose reset failed: it goes to no other domain until an admin clears it. */
struct pgd_taint {
        uint32_t sbdf;
        char domain_uuid[HV_UUID_MAX]; /* the domain whose data it may hold, "" unknown */
        char reason[256];
        int64_t time;
};

/* The most devices one multi-device assign may name. */
#define PGD_GROUP_MAX 16

struct pgd_grant {
        uint32_t sbdf;
        uint32_t domid;
        char domain_uuid[HV_UUID_MAX];
        char domain_name[HV_NAME_MAX];
        uid_t client_uid;
        pid_t client_pid;
        char client_unit[128]; /* "" when none */
        char rule[128];
        enum pg_policy_rdm rdm_policy;
        int64_t time; /* unix seconds */
        struct pgd_identity identity; /* of the device when it was granted */
};

struct pgd_grants;

/* What a journal record says. */
enum pgd_record_op {
        PGD_RECORD_INTENT_ASSIGN,  /* about to assign grant.sbdf to grant.domid */
        PGD_RECORD_GRANT,          /* the assign of intent succeeded: grant */
        PGD_RECORD_ABORT,          /* intent ended without a change (refused, or rolled back) */
        PGD_RECORD_RELEASE,        /* sbdf's grant is gone */
        PGD_RECORD_INTENT_PREPARE, /* about to prepare sbdf, now bound to driver */
        PGD_RECORD_PREPARED,       /* sbdf was prepared by passguard; its dom0 driver is driver */
        PGD_RECORD_UNPREPARED,     /* sbdf was given back */
        PGD_RECORD_INTENT_ASSIGN_GROUP, /* about to assign grants[0..n_grants) */
        PGD_RECORD_GRANT_GROUP,         /* every assign of the group intent succeeded */
        PGD_RECORD_TAINT,               /* sbdf's reset failed: taint */
        PGD_RECORD_UNTAINT,             /* an admin cleared sbdf's taint */
};

struct pgd_record {
        enum pgd_record_op op;
        uint64_t seq;    /* set by pgd_grants_record() */
        uint64_t intent; /* GRANT, ABORT, PREPARED: the intent resolved, 0: none */
        uint32_t sbdf;
        struct pgd_grant grant;     /* INTENT_ASSIGN, GRANT */
        char driver[HV_DRIVER_MAX]; /* INTENT_PREPARE, PREPARED */
        struct pgd_identity identity; /* INTENT_PREPARE, PREPARED (optional) */
        struct pgd_taint taint;       /* TAINT */
        size_t n_grants;              /* *_GROUP: grants[0] is sbdf's */
        struct pgd_grant grants[PGD_GROUP_MAX];
};

/* An intent without an outcome yet: its hypervisor calls may or may not have happened. */
struct pgd_intent {
        uint64_t seq;
        enum pgd_record_op op; /* INTENT_ASSIGN, INTENT_PREPARE or INTENT_ASSIGN_GROUP */
        uint32_t sbdf;
        struct pgd_grant grant;       /* INTENT_ASSIGN */
        char driver[HV_DRIVER_MAX];   /* INTENT_PREPARE */
        struct pgd_identity identity; /* INTENT_PREPARE */
        size_t n_grants;              /* INTENT_ASSIGN_GROUP */
        struct pgd_grant grants[PGD_GROUP_MAX];
};
/* Whether the intent is an assign of sbdf (alone or in a group); its grant then, or NULL. */
const struct pgd_grant *pgd_intent_assigns(const struct pgd_intent *in, uint32_t sbdf);

/*
 * Load STATE_DIR/grants.json and replay STATE_DIR/grants.journal over it;
 * missing files are an empty store. A corrupt file returns -EBADMSG, an
 * unknown format -EPROTONOSUPPORT; on any failure *ret_why says what is
 * wrong and *ret_file which file (both may be NULL; the caller frees them),
 * and the files are left untouched. A torn last record (a crash while it was
 * written, never acknowledged) is not corruption: it is ignored.
 */
int pgd_grants_load(const char *state_dir, struct pgd_grants **ret, char **ret_why,
                    char **ret_file);
/* The same, without naming the file. */
int pgd_grants_open(const char *state_dir, struct pgd_grants **ret, char **ret_why);
/*
 * Whether the store's directory can take its files: a file created and
 * removed there, and the free space a compaction needs. 0, or -errno
 * (-EROFS, -EACCES, -ENOSPC, ...).
 */
int pgd_grants_probe(const struct pgd_grants *g);
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

/*
 * Compaction: write the store as it is in memory durably as grants.json, and
 * start a new journal that holds only the intents still open. Every record
 * before is then redundant. On failure -errno, and the files on disk still
 * load as the store they held before, or as this one.
 */
int pgd_grants_commit(struct pgd_grants *g);

/*
 * Append r to the journal and apply it to memory; r->seq is set. Not durable
 * until pgd_grants_sync(). A GRANT, ABORT or PREPARED that names an intent
 * closes it (-ENOENT when no such intent is open). -errno when the record
 * could not be written: nothing changed then, but the journal needs a
 * compaction (pgd_grants_commit()) before it takes records again.
 */
int pgd_grants_record(struct pgd_grants *g, struct pgd_record *r);
/*
 * Make every record appended so far durable: one fdatasync for all of them
 * (a compaction instead, once the journal has grown past its snapshot).
 * -errno on failure: which of the records reached the disk is unknown, and
 * the journal takes no records until a compaction succeeded.
 */
int pgd_grants_sync(struct pgd_grants *g);
/*
 * Records appended between pgd_grants_batch(g, true) and pgd_grants_batch(g,
 * false) are applied to memory at once and written to the journal together,
 * by the second call (one write). The second call returns -errno when they
 * could not be written: the journal then takes no record, and the next sync
 * fails, until a compaction succeeded. A sync or a compaction meanwhile
 * writes them first (or, a compaction, needs them no more).
 */
int pgd_grants_batch(struct pgd_grants *g, bool on);
/*
 * End a batch without writing it: what it holds must not reach the journal
 * (the calls it records did not happen after all). The journal then takes no
 * record, and the next sync fails, until a compaction succeeded.
 */
void pgd_grants_batch_drop(struct pgd_grants *g);
/* Nothing more to write for now: close the journal (when everything is synced). */
void pgd_grants_journal_idle(struct pgd_grants *g);
/* Records appended and not yet synced. */
size_t pgd_grants_unsynced(const struct pgd_grants *g);
/* Whether the journal must be compacted before it takes records again. */
bool pgd_grants_needs_commit(const struct pgd_grants *g);
/* The bytes of the journal (0 when there is none). */
size_t pgd_grants_journal_size(const struct pgd_grants *g);

/* The intents still open, oldest first. */
size_t pgd_grants_n_intents(const struct pgd_grants *g);
const struct pgd_intent *pgd_grants_intent(const struct pgd_grants *g, size_t i);
/* The open intent seq, or NULL. */
const struct pgd_intent *pgd_grants_find_intent(const struct pgd_grants *g, uint64_t seq);
/* Close an open intent in memory only (the next compaction forgets it). */
int pgd_grants_drop_intent(struct pgd_grants *g, uint64_t seq);
/*
 * Open an intent again in memory only, as it was: its outcome turned out not
 * to be durable and its call could not be undone, so the next compaction
 * must keep it for start-up to resolve.
 */
int pgd_grants_restore_intent(struct pgd_grants *g, const struct pgd_intent *in);

/*
 * Replay journal text (its base line first) over g, as loading does:
 * -EBADMSG with a reason (*ret_why, freed by the caller; may be NULL) for
 * anything but a torn last record. For the fuzzer.
 */
int pgd_grants_replay(struct pgd_grants *g, const char *text, size_t len, char **ret_why);
const char *pgd_grants_record_op_name(enum pgd_record_op op);

/*
 * Devices that `prepare` took from a dom0 driver: the driver to give them back
 * to on `unprepare` ("" when none was bound). Stored in the same file.
 */
int pgd_grants_set_prepared(struct pgd_grants *g, uint32_t sbdf, const char *driver);
/* NULL when sbdf was not prepared by passguard. */
const char *pgd_grants_prepared_driver(const struct pgd_grants *g, uint32_t sbdf);
int pgd_grants_clear_prepared(struct pgd_grants *g, uint32_t sbdf);
/* The identity recorded when sbdf was prepared (in memory; the records carry it), or NULL. */
int pgd_grants_set_prepared_identity(struct pgd_grants *g, uint32_t sbdf,
                                     const struct pgd_identity *id);
const struct pgd_identity *pgd_grants_prepared_identity(const struct pgd_grants *g, uint32_t sbdf);
size_t pgd_grants_n_prepared(const struct pgd_grants *g);
/* The i-th prepared device (sorted by device): its address and identity. */
int pgd_grants_prepared(const struct pgd_grants *g, size_t i, uint32_t *ret_sbdf,
                        const struct pgd_identity **ret_identity);

/* Tainted devices (in memory; records TAINT and UNTAINT make it durable). */
int pgd_grants_set_taint(struct pgd_grants *g, const struct pgd_taint *t);
const struct pgd_taint *pgd_grants_find_taint(const struct pgd_grants *g, uint32_t sbdf);
int pgd_grants_clear_taint(struct pgd_grants *g, uint32_t sbdf);
size_t pgd_grants_n_taints(const struct pgd_grants *g);
/* The i-th taint, sorted by device; NULL past the end. */
const struct pgd_taint *pgd_grants_taint(const struct pgd_grants *g, size_t i);
struct json_t;
/* An identity as the store and the replies write it ({"vendor": "0x10de", ...}). NULL on ENOMEM. */
struct json_t *pgd_grants_identity_json(const struct pgd_identity *id);

/* Parse/serialise (also used by the fuzzer): text <-> store; *ret_why as for pgd_grants_load(). */
int pgd_grants_parse(const char *text, size_t len, struct pgd_grants *g, char **ret_why);

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
