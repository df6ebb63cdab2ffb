/* SPDX-License-Identifier: MIT */
/*
 * Who is on the other end of a connection, as the kernel says
 * (server-internal.h): SO_PEERCRED, SO_PEERGROUPS, and the systemd unit,
 * pinned with a pidfd.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <systemd/sd-login.h>

#include "server-internal.h"

void pgd_peer_identity(const struct pgd_peer *peer, struct pg_policy_identity *ret)
{
        *ret = (struct pg_policy_identity){
                .uid = peer->uid,
                .gid = peer->gid,
                .groups = peer->groups,
                .n_groups = peer->n_groups,
                .unit = peer->unit,
        };
}

void pgd_peer_clear(struct pgd_peer *p)
{
        free(p->groups);
        free(p->unit);
        *p = (struct pgd_peer){0};
}

/*
 * The systemd unit of a peer, as far as the kernel vouches for it. SO_PEERCRED
 * gives the pid the peer had when it connected; a pid can be reused once
 * that process is gone, and a lookup by pid alone could then name another
 * process's unit. So the process is pinned with a pidfd (SO_PEERPIDFD, where
 * the kernel and libc have it, names the peer itself; else pidfd_open() on
 * the pid), its unit and real uid are read, and the pidfd must still show
 * the process alive afterwards: while it lives, its pid names no other
 * process, so both reads were of the process the pidfd holds. With
 * sd_pidfd_get_unit() (systemd >= 253) the unit is read through the pidfd.
 *
 * The residual race, without SO_PEERPIDFD: the peer exits and its pid is
 * reused by a process of the same uid between accept() and pidfd_open().
 * That process's unit is then taken for the peer's. The uid check confines
 * the race to processes of the peer's own uid.
 *
 * Any failure fails closed: no unit, so rules that name a unit do not match.
 */
static int pidfd_alive(int pidfd)
{
        struct pollfd p = {.fd = pidfd, .events = POLLIN};

        /* A pidfd turns readable when its process exits. */
        if (poll(&p, 1, 0) < 0)
                return -errno;
        if (p.revents != 0)
                return -ESRCH;
#ifdef SYS_pidfd_send_signal
        /* Signal 0 checks existence; EPERM only says we may not signal it (no CAP_KILL). */
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 && errno != EPERM)
                return -errno;
#endif
        return 0;
}

/* The real uid of pid, from the "Uid:" line of /proc/PID/status. */
static int proc_real_uid(pid_t pid, uid_t *ret)
{
        _cleanup_(fclosep) FILE *f = NULL;
        char path[64], line[256];

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                unsigned long uid;
                if (sscanf(line, "Uid: %lu", &uid) == 1) {
                        *ret = (uid_t)uid;
                        return 0;
                }
        }
        return -ENODATA;
}

int pgd_peer_unit(int sock_fd, pid_t pid, uid_t uid, char **ret_unit)
{
        _cleanup_(closep) int pidfd = -1;
        _cleanup_(freep) char *unit = NULL;
        uid_t real_uid;
        int r;

        if (pid <= 0)
                return -ESRCH;
#if HAVE_SO_PEERPIDFD
        if (sock_fd >= 0) {
                socklen_t len = sizeof(pidfd);
                if (getsockopt(sock_fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
                        pidfd = -1; /* a kernel before 6.5: pidfd_open() below */
        }
#endif
        if (pidfd < 0) {
#ifdef SYS_pidfd_open
                pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
                if (pidfd < 0)
                        return -errno;
#else
                return -EOPNOTSUPP;
#endif
        }

#if HAVE_SD_PIDFD_GET_UNIT
        r = sd_pidfd_get_unit(pidfd, &unit);
#else
        r = sd_pid_get_unit(pid, &unit);
#endif
        if (r < 0)
                return r;
        r = pidfd_alive(pidfd);
        if (r < 0)
                return r;
        r = proc_real_uid(pid, &real_uid);
        if (r < 0)
                return r;
        if (real_uid != uid)
                return -ESRCH;  /* another process has the pid now */
        r = pidfd_alive(pidfd); /* and the reads above were of the pinned process */
        if (r < 0)
                return r;
        *ret_unit = TAKE_PTR(unit);
        return 0;
}

int pgd_peer_read(int fd, struct pgd_peer *ret)
{
        _cleanup_(freep) gid_t *groups = NULL;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        size_t n_groups = 0;
        char *unit = NULL;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;

        len = 0;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno != ERANGE &&
            errno != ENOPROTOOPT)
                return -errno;
        if (len > 0) {
                groups = malloc(len);
                if (!groups)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                        return -errno;
                n_groups = len / sizeof(gid_t);
        }

        if (pgd_peer_unit(fd, cred.pid, cred.uid, &unit) < 0)
                unit = NULL; /* none we can vouch for: the policy matches it by uid/gid only */

        *ret = (struct pgd_peer){
                .uid = cred.uid,
                .gid = cred.gid,
                .pid = cred.pid,
                .groups = TAKE_PTR(groups),
                .n_groups = n_groups,
                .unit = unit,
        };
        return 0;
}

bool pgd_peer_is_client(const struct pgd_daemon *d, const struct pgd_peer *peer)
{
        struct pg_policy_identity id;

        if (!d->policy)
                return false;
        pgd_peer_identity(peer, &id);
        return pg_policy_is_client(d->policy, &id);
}
