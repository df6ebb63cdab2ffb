/* SPDX-License-Identifier: MIT */
/*
 * passguardd's shared state and the seams between its parts:
 *   server.c   event loop, sockets, connections, the op table (trust boundary)
 *   ops.c      the op handlers; checks.c the ordered checks of DESIGN.md inv. 3
 *   grants.c   the durable grant store; reconcile.c start-up and domain death
 *   audit.c    one structured journald record per decision
 *   hv-*.c     the host backends (hv.h)
 */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "hv.h"
#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

struct pgd_grants;
struct pgd_server;

/* The daemon's configuration: defaults, then the config file, then flags. */
struct pgd_config {
        char *config_path;
        char *policy_path;
        char *socket_path;   /* NULL: from systemd, else the default */
        char *state_dir;
        char *backend;       /* "xen" | "sim" */
        char *sim_host;
        char *sysfs_root;
        bool enforce;
        bool rebuild_state;
        bool check_config;
        bool debug;
        /* limits (config file only) */
        unsigned max_connections;
        unsigned idle_timeout_sec;
        unsigned max_connections_per_uid;
        unsigned max_unknown_connections; /* peers the policy does not know, together */
};

struct pgd_daemon {
        struct pgd_config cfg;
        const struct hv_ops *hv_ops;
        struct hv *hv;
        struct pg_policy *policy;      /* swapped whole on reload */
        time_t policy_loaded;
        struct pgd_grants *grants;
        struct pgd_server *server;
        void *event;                   /* sd_event *, owned by server.c */
        /*
         * The grant store could not be written, not even to undo a failed
         * change, so the file may disagree with memory and the hypervisor.
         * assign, release, prepare and unprepare first retry the commit and
         * refuse state-error until one succeeds (ops.c). state_error is the
         * -errno of the last failed commit.
         */
        bool state_broken;
        int state_error;
};

/* Who is on the other end of a connection, as the kernel says. */
struct pgd_peer {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        gid_t *groups;       /* SO_PEERGROUPS */
        size_t n_groups;
        char *unit;          /* sd_pid_get_unit(), or NULL */
};

/* A request after the trust boundary validated it against the op table. */
struct pgd_request {
        const char *op;
        json_int_t id;
        bool has_device;
        uint32_t sbdf;                 /* normalised */
        char bdf[PG_BDF_MAX];          /* "ssss:bb:dd.f" */
        const char *domain;            /* by name, or NULL */
        bool has_domid;
        uint32_t domid;
        int rdm_relaxed;               /* -1 not given, 0 strict, 1 relaxed */
        bool has_version;
        json_int_t version;
};

/* A refusal, filled by handlers. */
struct pgd_error {
        int code;                      /* PG_ERR_* */
        int hv_errno;                  /* the hypervisor's errno, when it answered */
        const char *check;             /* the explain check that failed, or NULL */
        char rule[128];                /* the rule involved, or "" */
        char message[512];
};

_printf_(3, 4) int pgd_error_set(struct pgd_error *e, int code, const char *fmt, ...);

/*
 * An op handler adds its result fields to reply (which already holds "id"
 * and "ok": true). Returns 0, a PG_ERR_* code (> 0, err filled), or -errno
 * for an internal failure.
 */
typedef int (*pgd_op_handler)(struct pgd_daemon *d, const struct pgd_peer *peer,
                              const struct pgd_request *req, json_t *reply,
                              struct pgd_error *err);

int pgd_op_hello(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                 json_t *reply, struct pgd_error *err);
int pgd_op_status(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                  json_t *reply, struct pgd_error *err);
int pgd_op_list(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                json_t *reply, struct pgd_error *err);
int pgd_op_assign(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                  json_t *reply, struct pgd_error *err);
int pgd_op_release(struct pgd_daemon *d, const struct pgd_peer *peer,
                   const struct pgd_request *req, json_t *reply, struct pgd_error *err);
int pgd_op_explain(struct pgd_daemon *d, const struct pgd_peer *peer,
                   const struct pgd_request *req, json_t *reply, struct pgd_error *err);
int pgd_op_owner(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                 json_t *reply, struct pgd_error *err);
int pgd_op_prepare(struct pgd_daemon *d, const struct pgd_peer *peer,
                   const struct pgd_request *req, json_t *reply, struct pgd_error *err);
int pgd_op_unprepare(struct pgd_daemon *d, const struct pgd_peer *peer,
                     const struct pgd_request *req, json_t *reply, struct pgd_error *err);
int pgd_op_reload(struct pgd_daemon *d, const struct pgd_peer *peer, const struct pgd_request *req,
                  json_t *reply, struct pgd_error *err);

/* Re-read the policy; swap only on success. On failure err holds policy-invalid + file:line. */
int pgd_daemon_reload(struct pgd_daemon *d, struct pgd_error *err);

/* The policy's view of a peer (pointers into peer). */
void pgd_peer_identity(const struct pgd_peer *peer, struct pg_policy_identity *ret);

/*
 * Test-only crash points, honoured only with the simulated backend: when
 * $PASSGUARD_TEST_CRASH equals name, the daemon kills itself with SIGKILL
 * right there, so that tests can prove recovery from a crash at every step.
 */
static inline void pgd_crash_point(const struct pgd_daemon *d, const char *name)
{
        const char *e;

        if (!d->hv_ops || !streq(d->hv_ops->name, "sim"))
                return;
        e = getenv("PASSGUARD_TEST_CRASH");
        if (e && streq(e, name))
                raise(SIGKILL);
}
