/* SPDX-License-Identifier: MIT */
/*
 * hv-sim's file (hv-sim.h): the locking protocol, reading the file again
 * only when someone else replaced it, writing it durably (held or not), and
 * the inotify watch on its directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv-sim.h"
#include "pg-file.h"

/* ---- the file and its lock ---- */

int pgd_sim_lock(int fd, int op)
{
        while (flock(fd, op) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

/* Take the lock as the protocol says, unless hold() has it already. */
int pgd_sim_host_lock(struct hv *hv, int op)
{
        return hv->held ? 0 : pgd_sim_lock(hv->lock_fd, op);
}

void pgd_sim_host_unlock(struct hv *hv)
{
        if (!hv->held)
                (void)flock(hv->lock_fd, LOCK_UN);
}

void pgd_sim_host_forget(struct hv *hv)
{
        hv->host = pgd_sim_host_free(hv->host);
        hv->host_fd = safe_close(hv->host_fd);
        hv->host_fd_writable = false;
        hv->stale = false;
        hv->pin_pending = false;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * With the lock taken: make hv->host the host the file holds now. The file is
 * read again only when it is not the one in memory (or someone else changed
 * it, as the watch said); while held, the host in memory is the host.
 */
int pgd_sim_host_refresh(struct hv *hv, struct sim_host **ret)
{
        _cleanup_(freep) char *text = NULL;
        _cleanup_(closep) int fd = -1;
        struct sim_host *h = NULL;
        struct stat st;
        size_t len = 0;
        int r;

        if (hv->host && !hv->stale) {
                if (hv->held) {
                        *ret = hv->host;
                        return 0;
                }
                if (stat(hv->path, &st) < 0) {
                        r = -errno;
                        pgd_sim_host_forget(hv);
                        return r;
                }
                if (same_file(&st, &hv->host_st)) {
                        *ret = hv->host;
                        return 0;
                }
        }
        if (hv->host && !hv->stale)
                hv->outside_change = true; /* found before the watch said so */

        pgd_sim_host_forget(hv);
        fd = open(hv->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        r = pg_read_all(fd, SIM_FILE_MAX, &text, &len);
        if (r < 0)
                return r == -EFBIG ? -EBADMSG : r;
        r = pgd_sim_host_parse(text, len, &h);
        if (r < 0)
                return r;
        /*
         * Someone else's file: the one this backend wrote last is gone, and
         * its inode number may come back with someone else's next write,
         * which the watch must not take for this backend's own.
         */
        if (st.st_ino != hv->written_ino)
                hv->written_ino = 0;
        hv->host = h;
        hv->host_fd = TAKE_FD(fd);
        hv->host_fd_writable = false;
        hv->host_st = st;
        *ret = h;
        return 0;
}

/* A read: the host in memory, checked against the file under a shared lock. */
int pgd_sim_host_read(struct hv *hv, struct sim_host **ret)
{
        int r = pgd_sim_host_lock(hv, LOCK_SH);

        if (r < 0)
                return r;
        r = pgd_sim_host_refresh(hv, ret);
        pgd_sim_host_unlock(hv);
        return r;
}

int pgd_sim_host_pin(struct hv *hv)
{
        _cleanup_(closep) int fd = -1;
        bool writable = hv->cur_fd >= 0;
        struct stat st;

        hv->pin_pending = false;
        /* Written under the hold: the file is open already (for writing: see host_save()). */
        fd = writable ? TAKE_FD(hv->cur_fd) : open(hv->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_ino != hv->written_ino) {
                pgd_sim_host_forget(hv); /* the next call reads the file */
                return 0;
        }
        safe_close(hv->host_fd);
        hv->host_fd = TAKE_FD(fd);
        hv->host_fd_writable = writable;
        hv->host_st = st;
        return 0;
}

static int write_at_start(int fd, const char *text, size_t len)
{
        size_t off = 0;

        while (off < len) {
                ssize_t n = pwrite(fd, text + off, len - off, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t)n;
        }
        return 0;
}

/* The write is done: the rename is the commit point. */
static void host_saved(struct hv *hv, struct sim_host *h, ino_t ino)
{
        h->changed = h->dirty = false;
        hv->written_ino = ino;
        if (hv->watch_wd >= 0)
                hv->own_renames++; /* its event is to come */
        /*
         * From here on the call has happened, as a hypercall that returned
         * would have. Syncing the directory is best effort, so that the caller
         * never believes the opposite.
         */
        if (hv->dir_fd >= 0)
                (void)fsync(hv->dir_fd);
}

/*
 * While held, FILE.tmp is not a new file each time: the file that is there
 * (the host before the last write) is written over, synced and exchanged with
 * FILE (renameat2 RENAME_EXCHANGE, an atomic rename as the protocol asks).
 * Both files stay open for writing until flush(), so that a write costs no
 * open, no close and no new inode; the one in place then stays open as the
 * pinned file, and FILE.tmp is removed. Returns 1 when the file system cannot
 * exchange (nothing was renamed: write as without a hold).
 */
static int host_save_held(struct hv *hv, struct sim_host *h, const char *text, size_t len)
{
        struct stat st;
        ino_t ino;
        int fd, r;

        if (hv->spare_fd < 0) {
                hv->spare_fd = openat(hv->dir_fd, hv->tmp_base,
                                      O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
                if (hv->spare_fd < 0)
                        return -errno;
                if (fstat(hv->spare_fd, &st) < 0)
                        return -errno;
                hv->spare_size = st.st_size;
                hv->spare_ino = st.st_ino;
        }
        fd = hv->spare_fd;
        r = write_at_start(fd, text, len);
        if (r >= 0 && hv->spare_size > (off_t)len && ftruncate(fd, (off_t)len) < 0)
                r = -errno;
        if (r >= 0)
                hv->spare_size = (off_t)len;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                return r;
        ino = hv->spare_ino;
        /* By name in the directory kept open: no walk of the path's directories per call. */
        if (renameat2(hv->dir_fd, hv->tmp_base, hv->dir_fd, hv->base, RENAME_EXCHANGE) < 0) {
                if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
                        hv->no_exchange = true;
                        hv->spare_fd = safe_close(hv->spare_fd);
                        return 1;
                }
                return -errno;
        }
        /* The file written is in place; the one it replaced is FILE.tmp now. */
        hv->spare_fd = hv->cur_fd;
        hv->spare_size = hv->cur_size;
        hv->spare_ino = hv->cur_ino;
        hv->cur_fd = fd;
        hv->cur_size = (off_t)len;
        hv->cur_ino = ino;
        if (hv->spare_fd < 0 && hv->host_fd_writable && hv->host_st.st_ino != ino) {
                /* The first write of this hold moved the pinned file, one of ours, away. */
                hv->spare_fd = TAKE_FD(hv->host_fd);
                hv->spare_size = hv->host_st.st_size;
                hv->spare_ino = hv->host_st.st_ino;
                hv->host_fd_writable = false;
        }
        hv->pin_pending = true;
        host_saved(hv, h, ino);
        return 0;
}

/*
 * Write the host durably: FILE.tmp, fsync, rename over FILE, fsync the
 * directory (held: see host_save_held()). The new file is pinned at once, or
 * at flush() when held: no one else may replace it before.
 */
int pgd_sim_host_save(struct hv *hv, struct sim_host *h)
{
        _cleanup_(freep) char *text = NULL;
        struct stat st;
        size_t len;
        int r;

        r = pgd_sim_host_format(h, &text, &len);
        if (r < 0)
                return r;
        if (hv->held && !hv->no_exchange) {
                r = host_save_held(hv, h, text, len);
                if (r <= 0)
                        return r;
        }

        /* Closed before the rename, so that a watcher never sees a write to FILE itself. */
        r = pg_durable_write(AT_FDCWD, hv->tmp_path, text, len, 0644, &st);
        if (r < 0)
                return r;
        /*
         * The rename is the commit point: from there on the call has
         * happened, as a hypercall that returned would have, so the
         * directory's sync (host_saved()) is best effort and not
         * pg_durable_rename(), which would report it as the call's failure.
         */
        if (rename(hv->tmp_path, hv->path) < 0) {
                r = -errno;
                (void)unlink(hv->tmp_path);
                return r;
        }
        host_saved(hv, h, st.st_ino);
        if (hv->held) {
                hv->pin_pending = true;
                return 0;
        }
        return pgd_sim_host_pin(hv);
}

/* ---- open / close / watch ---- */

int pgd_sim_probe_real_xen(void)
{
        static const char *const probes[] = {"/proc/xen", "/dev/xen/privcmd"};
        const char *root = secure_getenv("PASSGUARD_SIM_XEN_PROBE_ROOT");

        for (size_t i = 0; i < ELEMENTSOF(probes); i++) {
                char path[PATH_MAX];
                struct stat st;

                if (snprintf(path, sizeof(path), "%s%s", root ? root : "", probes[i]) >=
                    (int)sizeof(path))
                        return -EPERM;
                if (lstat(path, &st) >= 0)
                        return -EPERM;
                /* Fail closed: anything but "it is not there" counts as Xen. */
                if (errno != ENOENT && errno != ENOTDIR)
                        return -EPERM;
        }
        return 0;
}

/* Watch the directory: renames into FILE, and anything else done to it. */
int pgd_sim_watch_dir(struct hv *hv)
{
        hv->watch_wd = inotify_add_watch(hv->inotify_fd, hv->dir,
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
        return hv->watch_wd < 0 ? -errno : 0;
}

int pgd_sim_watch_fd(struct hv *hv)
{
        return hv->inotify_fd;
}

/*
 * Consume every pending event. Returns 1 when the host file was changed by
 * someone else (or deleted), 0 when the events were only this backend's own
 * writes or concerned other files of the directory.
 */
int pgd_sim_watch_drain(struct hv *hv)
{
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool changed = false;

        for (;;) {
                ssize_t n = read(hv->inotify_fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                if (n == 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;

                        p += sizeof(*ev) + ev->len;
                        if (ev->mask & IN_Q_OVERFLOW) {
                                changed = true;
                                continue;
                        }
                        if (ev->len == 0 || !streq(ev->name, hv->base))
                                continue;
                        if (ev->mask & IN_MOVED_TO) {
                                struct stat st;

                                /*
                                 * Ours, while renames of ours are still to come: they
                                 * were made under the lock, and a change by someone
                                 * else before them was found when the lock was taken.
                                 */
                                if (hv->own_renames > 0)
                                        hv->own_renames--;
                                else if (stat(hv->path, &st) < 0 || st.st_ino != hv->written_ino)
                                        changed = true;
                        } else {
                                changed = true;
                        }
                }
        }
        if (hv->outside_change) {
                hv->outside_change = false;
                changed = true;
        }
        /*
         * Even a change in place, which keeps the inode. Not while held: the
         * lock keeps everyone else out, and what they changed before it was
         * read when it was taken; forgetting the host now would lose what
         * this backend keeps in memory until flush() (its call counts).
         */
        if (changed && !hv->held)
                hv->stale = true;
        return changed ? 1 : 0;
}
