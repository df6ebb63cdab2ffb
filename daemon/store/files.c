/* SPDX-License-Identifier: MIT */
/*
 * The grant store's files (grants.h): loading the snapshot and replaying its
 * journal, compaction (a new snapshot and a new journal, through
 * pg_durable_write and pg_durable_rename), and the journal's appends and
 * their one fdatasync per turn of the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "pg-file.h"
#include "store-internal.h"

/* Created and removed at start-up: whether the state directory can be written. */
#define PROBE_FILE PGD_GRANTS_FILE ".probe"

/* Read path whole; -ENOENT when it does not exist. why says what failed. */
static int read_path(char *why, const char *path, char **ret, size_t *ret_len)
{
        _cleanup_(closep) int fd = -1;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                snprintf(why, WHY_MAX, "cannot open: %s", strerror(-r));
                return r;
        }
        r = pg_read_all(fd, GRANTS_MAX_FILE_SIZE, ret, ret_len);
        if (r == -EFBIG)
                return pgd_grants_bad(why, "file too large");
        if (r < 0)
                snprintf(why, WHY_MAX, "cannot read: %s", strerror(-r));
        return r;
}

static int read_path_at(int dirfd, const char *name, char **ret, size_t *ret_len)
{
        _cleanup_(closep) int fd =
                openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);

        if (fd < 0)
                return -errno;
        return pg_read_all(fd, GRANTS_MAX_FILE_SIZE, ret, ret_len);
}

/*
 * grants.journal.tmp is the journal of a compaction interrupted after the
 * snapshot's rename when its base is the snapshot now in place: put it in
 * place. Anything else there is a compaction that never happened: remove it.
 */
static void journal_tmp_recover(struct pgd_grants *g, int dirfd)
{
        _cleanup_(freep) char *text = NULL;
        char why[WHY_MAX]; /* unused: whatever is wrong with it, it goes */
        struct pgd_journal_base b = {};
        const char *line;
        size_t len = 0, pos = 0, line_len;
        bool complete, mine;

        if (read_path_at(dirfd, JOURNAL_TMP_FILE, &text, &len) < 0)
                return;
        mine = pgd_grants_next_line(text, len, &pos, &line, &line_len, &complete) && complete &&
               pgd_grants_base_parse(why, line, line_len, &b) >= 0 && streq(b.sum, g->snapshot_sum);
        pgd_grants_base_clear(&b);
        if (mine)
                (void)pg_durable_rename(dirfd, JOURNAL_TMP_FILE, PGD_GRANTS_JOURNAL);
        else
                (void)unlinkat(dirfd, JOURNAL_TMP_FILE, 0);
}

int pgd_grants_load(const char *state_dir, struct pgd_grants **ret, char **ret_why, char **ret_file)
{
        _cleanup_(pgd_grants_freep) struct pgd_grants *g = NULL;
        char why[WHY_MAX] = "";
        const char *file;
        _cleanup_(freep) char *text = NULL;
        _cleanup_(closep) int dirfd = -1;
        struct pgd_journal_base base = {};
        const char *line;
        size_t len = 0, pos = 0, line_len;
        bool complete;
        int r;

        r = pgd_grants_store_new(state_dir, &g);
        if (r < 0)
                return r;
        file = g->path;

        r = read_path(why, g->path, &text, &len);
        if (r == -ENOENT)
                r = 0; /* no snapshot: an empty store */
        else if (r >= 0)
                r = pgd_grants_snapshot_parse(why, text, len, g);
        if (r < 0)
                goto fail;
        text = pg_free(text);

        /* Leftover temporary files: the renames are the commit points. */
        dirfd = open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd >= 0) {
                (void)unlinkat(dirfd, GRANTS_TMP_FILE, 0);
                journal_tmp_recover(g, dirfd);
        }

        file = g->journal_path;
        r = read_path(why, g->journal_path, &text, &len);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(g);
                return 0;
        }
        if (r >= 0) {
                if (!pgd_grants_next_line(text, len, &pos, &line, &line_len, &complete) ||
                    !complete)
                        r = 1; /* torn while the journal was created: nothing in it */
                else
                        r = pgd_grants_base_parse(why, line, line_len, &base);
        }
        if (r == 0 && !streq(base.sum, g->snapshot_sum))
                r = 1; /* older than the snapshot: all of it is in the snapshot */
        if (r == 0) {
                r = pgd_grants_replay_records(why, g, &base, text, len, pos, &g->journal_size,
                                              &g->next_seq);
                if (r >= 0) {
                        g->journal_exists = true;
                        g->journal_alloc = len;
                }
        }
        pgd_grants_base_clear(&base);
        if (r < 0)
                goto fail;
        /*
         * A journal that is not this snapshot's is kept on disk until the
         * next compaction replaces it; new records must not follow it.
         */
        if (r > 0)
                g->journal_broken = true;
        *ret = TAKE_PTR(g);
        return 0;

fail:
        if (ret_file) {
                *ret_file = strdup(file);
                if (!*ret_file)
                        return -ENOMEM;
        }
        return pgd_grants_give_why(r, why, ret_why);
}

int pgd_grants_open(const char *state_dir, struct pgd_grants **ret, char **ret_why)
{
        return pgd_grants_load(state_dir, ret, ret_why, NULL);
}

static void journal_close(struct pgd_grants *g)
{
        g->journal_fd = safe_close(g->journal_fd);
}

/* The new journal's text: the base line, then each open intent again, with its own number. */
static int journal_fresh_text(const struct pgd_grants *g, const char *base_sum, char **ret,
                              size_t *ret_len)
{
        _cleanup_(freep) char *text = NULL;
        size_t len = 0;
        int r;

        r = pgd_grants_base_format(base_sum, g->next_seq - 1, g->intents, g->n_intents, &text,
                                   &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_intents; i++) {
                const struct pgd_intent *in = &g->intents[i];
                struct pgd_record rec = {.op = in->op,
                                         .seq = in->seq,
                                         .sbdf = in->sbdf,
                                         .grant = in->grant,
                                         .identity = in->identity,
                                         .n_grants = in->n_grants};
                _cleanup_(freep) char *line = NULL;
                size_t n;

                memcpy(rec.driver, in->driver, sizeof(rec.driver));
                memcpy(rec.grants, in->grants, in->n_grants * sizeof(*in->grants));
                r = pgd_grants_record_format(&rec, &line, &n);
                if (r < 0)
                        return r;
                char *p = realloc(text, len + n + 1);
                if (!p)
                        return -ENOMEM;
                text = p;
                memcpy(text + len, line, n + 1);
                len += n;
        }
        *ret = TAKE_PTR(text);
        *ret_len = len;
        return 0;
}

int pgd_grants_commit(struct pgd_grants *g)
{
        _cleanup_(freep) char *text = NULL, *journal = NULL;
        _cleanup_(closep) int dirfd = -1;
        char sum[CHECKSUM_MAX];
        size_t len, jlen = 0;
        bool snapshot_changes;
        int r;

        journal_close(g);
        /*
         * The snapshot is made from memory: the records still to be written
         * are in it, and are written no more. Should this compaction fail,
         * they are on disk nowhere: the journal takes no record until one
         * succeeds.
         */
        if (g->batch_len > 0) {
                g->batch_len = 0;
                g->journal_broken = true;
        }
        r = pgd_grants_snapshot_format(g, &text, &len, sum);
        if (r < 0)
                return r;
        if (g->n_intents > 0) {
                r = journal_fresh_text(g, sum, &journal, &jlen);
                if (r < 0)
                        return r;
        }
        snapshot_changes = !streq(sum, g->snapshot_sum);

        /* Opened first: a missing state directory fails before anything is written. */
        dirfd = open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;

        /*
         * Any failure from here on: the files still load as the store before
         * or as this one, but the journal must not take records before a
         * compaction succeeds.
         */
        g->journal_broken = true;
        if (snapshot_changes) {
                r = pg_durable_write(dirfd, GRANTS_TMP_FILE, text, len, 0600, NULL);
                if (r < 0)
                        return r;
        }
        if (journal) {
                r = pg_durable_write(dirfd, JOURNAL_TMP_FILE, journal, jlen, 0600, NULL);
                if (r < 0) {
                        (void)unlinkat(dirfd, GRANTS_TMP_FILE, 0);
                        return r;
                }
        }
        if (snapshot_changes) {
                r = pg_durable_rename(dirfd, GRANTS_TMP_FILE, PGD_GRANTS_FILE);
                if (r < 0) {
                        /*
                         * Whether the new snapshot is in place is unknown: the
                         * next compaction writes it again whatever it finds.
                         */
                        g->snapshot_sum[0] = '\0';
                        (void)unlinkat(dirfd, JOURNAL_TMP_FILE, 0);
                        return r;
                }
                /* The new snapshot is in place: the old journal no longer applies to it. */
                memcpy(g->snapshot_sum, sum, sizeof(sum));
                g->snapshot_size = len;
        }
        if (journal)
                r = pg_durable_rename(dirfd, JOURNAL_TMP_FILE, PGD_GRANTS_JOURNAL);
        else if (unlinkat(dirfd, PGD_GRANTS_JOURNAL, 0) < 0 && errno != ENOENT)
                r = -errno;
        else if (fsync(dirfd) < 0)
                r = -errno;
        if (r < 0)
                return r;

        /* Numbers go on: an open intent keeps its own, and no number is used twice. */
        g->journal_exists = journal != NULL;
        g->journal_created = false;
        g->journal_size = jlen;
        g->journal_alloc = jlen;
        g->journal_broken = false;
        g->unsynced = 0;
        return 0;
}

/* ---- the journal ---- */

size_t pgd_grants_unsynced(const struct pgd_grants *g)
{
        return g->unsynced;
}

bool pgd_grants_needs_commit(const struct pgd_grants *g)
{
        return g->journal_broken;
}

size_t pgd_grants_journal_size(const struct pgd_grants *g)
{
        return g->journal_size;
}

/* Open the journal for a batch of records; create it, with its base line, when missing. */
static int journal_open(struct pgd_grants *g)
{
        _cleanup_(closep) int fd = -1;
        struct statvfs vfs;
        int r;

        if (g->journal_fd >= 0)
                return 0;
        fd = open(g->journal_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (fstatvfs(fd, &vfs) < 0)
                return -errno;
        if ((uint64_t)vfs.f_bavail * vfs.f_frsize < JOURNAL_RESERVE)
                return -ENOSPC;
        if (!g->journal_exists) {
                _cleanup_(freep) char *base = NULL;
                size_t len = 0;

                /* Open intents live in a journal only a compaction writes. */
                if (g->n_intents > 0)
                        return -EIO;

                /* Whatever a torn creation left there is no record: start over. */
                if (ftruncate(fd, 0) < 0)
                        return -errno;
                g->journal_alloc = 0;
                r = pgd_grants_base_format(g->snapshot_sum, g->next_seq - 1, NULL, 0, &base, &len);
                if (r >= 0)
                        r = pg_pwrite_all(fd, base, len, 0);
                if (r < 0) {
                        if (ftruncate(fd, 0) < 0)
                                g->journal_broken = true;
                        return r;
                }
                g->journal_exists = true;
                g->journal_created = true;
                g->journal_size = len;
                g->journal_alloc = len;
        }
        g->journal_fd = TAKE_FD(fd);
        return 0;
}

/*
 * Room for len more bytes of records at the journal's end: the file is
 * extended with zeros, a JOURNAL_CHUNK at a time, before records are written
 * there. A record then overwrites blocks the file already has, and its
 * fdatasync writes the record and not the file's length too (the sync after
 * an extension does, once per chunk). Loading reads the zeros after the last
 * record as a torn tail: no record.
 */
static int journal_reserve(struct pgd_grants *g, size_t len)
{
        static const char zeros[JOURNAL_CHUNK];
        size_t want = g->journal_size + len, end;
        struct statvfs vfs;

        if (want <= g->journal_alloc)
                return 0;
        /* The zeros must not take the room a compaction needs: short of it, records just append. */
        if (fstatvfs(g->journal_fd, &vfs) < 0 ||
            (uint64_t)vfs.f_bavail * vfs.f_frsize < JOURNAL_RESERVE + 2 * JOURNAL_CHUNK)
                return 0;
        end = (want + JOURNAL_CHUNK - 1) / JOURNAL_CHUNK * JOURNAL_CHUNK;
        for (size_t at = g->journal_alloc; at < end;) {
                size_t n = end - at < sizeof(zeros) ? end - at : sizeof(zeros);
                int k = pg_pwrite_all(g->journal_fd, zeros, n, (off_t)at);
                if (k < 0)
                        return k;
                at += n;
                g->journal_alloc = at;
        }
        return 0;
}

/*
 * After a failed write: the journal ends with its last whole record again
 * (its zeros ahead go too), and is closed. False when the cut failed.
 */
static bool journal_cut(struct pgd_grants *g)
{
        bool cut = g->journal_fd >= 0 && ftruncate(g->journal_fd, (off_t)g->journal_size) >= 0;

        g->journal_alloc = g->journal_size;
        journal_close(g);
        return cut;
}

/* len bytes of whole records at the journal's end, into zeros reserved ahead when there is room. */
static int journal_append(struct pgd_grants *g, const char *data, size_t len)
{
        int k = journal_reserve(g, len);

        if (k >= 0)
                k = pg_pwrite_all(g->journal_fd, data, len, (off_t)g->journal_size);
        /* Written past the zeros (no room for them): the next zeros go after these records. */
        if (k >= 0 && g->journal_size + len > g->journal_alloc)
                g->journal_alloc = g->journal_size + len;
        return k;
}

int pgd_grants_record(struct pgd_grants *g, struct pgd_record *r)
{
        _cleanup_(freep) char *line = NULL;
        size_t len;
        int k;

        if (g->journal_broken)
                return -EIO;
        r->seq = g->next_seq;
        if ((r->op == PGD_RECORD_ABORT || r->intent) && !pgd_grants_find_intent(g, r->intent))
                return -ENOENT;
        k = pgd_grants_record_format(r, &line, &len);
        if (k < 0)
                return k;
        k = journal_open(g);
        if (k < 0) {
                journal_close(g);
                return k;
        }
        if (g->batching) {
                k = pgd_grants_grow((void **)&g->batch, &g->batch_cap, g->batch_len + len, 1);
                if (k < 0)
                        return k;
                k = pgd_grants_apply(g, r);
                if (k < 0)
                        return k; /* nothing written, nothing changed */
                memcpy(g->batch + g->batch_len, line, len);
                g->batch_len += len;
                g->next_seq++;
                g->unsynced++;
                return 0;
        }
        k = journal_append(g, line, len);
        if (k < 0) {
                /* Cut a partial record off; if even that fails, compact first. */
                if (!journal_cut(g))
                        g->journal_broken = true;
                return k;
        }
        k = pgd_grants_apply(g, r);
        if (k < 0) {
                /* The file has a record that memory lacks: only a compaction agrees again. */
                g->journal_broken = true;
                return k;
        }
        g->journal_size += len;
        g->next_seq++;
        g->unsynced++;
        return 0;
}

/* The batch's lines, at the journal's end. */
static int batch_write(struct pgd_grants *g)
{
        int k;

        if (g->batch_len == 0)
                return 0;
        if (g->journal_broken) {
                g->batch_len = 0;
                return -EIO;
        }
        /* Open since the batch's first record: only a failure or a compaction closes it. */
        k = g->journal_fd >= 0 ? journal_append(g, g->batch, g->batch_len) : -EIO;
        if (k < 0) {
                /* A partial batch is cut off; either way the records are not on disk. */
                (void)journal_cut(g);
                g->journal_broken = true;
                g->batch_len = 0;
                return k;
        }
        g->journal_size += g->batch_len;
        g->batch_len = 0;
        return 0;
}

void pgd_grants_batch_drop(struct pgd_grants *g)
{
        g->batching = false;
        if (g->batch_len > 0) {
                g->batch_len = 0;
                g->journal_broken = true;
        }
}

int pgd_grants_batch(struct pgd_grants *g, bool on)
{
        g->batching = on;
        return on ? 0 : batch_write(g);
}

int pgd_grants_sync(struct pgd_grants *g)
{
        int r = 0;

        r = batch_write(g);
        if (r < 0)
                return r;
        if (g->journal_broken)
                return -EIO;
        if (g->unsynced == 0)
                return 0;
        if (g->journal_size > JOURNAL_COMPACT_SIZE && g->journal_size > 2 * g->snapshot_size)
                return pgd_grants_commit(g);
        if (fdatasync(g->journal_fd) < 0)
                r = -errno;
        if (r >= 0 && g->journal_created) {
                _cleanup_(closep) int dirfd =
                        open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0 || fsync(dirfd) < 0)
                        r = -errno;
                else
                        g->journal_created = false;
        }
        if (r < 0) {
                journal_close(g);
                /* What reached the disk is unknown (and a second fsync might not say). */
                g->journal_broken = true;
                return r;
        }
        g->unsynced = 0;
        return 0;
}

void pgd_grants_journal_idle(struct pgd_grants *g)
{
        if (g->unsynced == 0)
                journal_close(g);
}

int pgd_grants_probe(const struct pgd_grants *g)
{
        _cleanup_(closep) int dirfd = -1, fd = -1;
        struct statvfs vfs;

        dirfd = open(g->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        fd = openat(dirfd, PROBE_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (unlinkat(dirfd, PROBE_FILE, 0) < 0)
                return -errno;
        /* As the journal asks of every record: room for a compaction. */
        if (fstatvfs(dirfd, &vfs) < 0)
                return -errno;
        if ((uint64_t)vfs.f_bavail * vfs.f_frsize < JOURNAL_RESERVE)
                return -ENOSPC;
        return 0;
}
