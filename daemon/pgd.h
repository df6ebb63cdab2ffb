/* SPDX-License-Identifier: MIT */
/*
 * passguardd's shared state and the seams between its parts:
 *   request.c  the trust boundary and the op table; one context per request:
 *              the caller, the op, one snapshot of the host (host.c); its one
 *              audit record
 *   ops.c      the op handlers; checks.c the ordered checks of DESIGN.md inv. 3
 *   commit.c   the one helper that makes a state change: intent, hypervisor
 *              call, outcome, its durability (group commit), rollback, reset
 *   reconcile.c start-up and domain death (through commit.c)
 *   audit.c    one structured journald record per decision
 *   reload.c   the policy in force
 *   store/     the grant store and its journal (grants.h)
 *   server/    the event loop, sockets, connections (server.h)
 *   hv/        the host backends (hv.h)
 * The error convention is client/pg-util.h's.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "grants.h"
#include "hv.h"
#include "pg-util.h"
#include "pg-wire.h"
#include "policy.h"

struct pgd_change;
struct pgd_ctx;
struct pgd_op;
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
         * The grant store could not be written (a journal record or its sync
         * failed), so the files may disagree with memory. assign, release,
         * prepare and unprepare first retry with a compaction and refuse
         * state-error until one succeeds (commit.c). state_error is the
         * -errno of the last failure.
         */
        bool state_broken;
        int state_error;
        /* Changes waiting for the next sync of the journal (server.c runs it). */
        struct pgd_change *waiting, **waiting_tail;
        /* Changes whose rollback failed: retried until it succeeds (commit.c). */
        struct pgd_change *rollbacks;
        size_t n_rollbacks;
        /*
         * The PCI devices holding dom0's root file system, found at start-up
         * (hv_ops.root_devices): protected unless the policy says
         * protect_root_device = false (checks.c).
         */
        uint32_t *root_devices;
        size_t n_root_devices;
        /* Assignments without a grant already reported, so that each is audited once (reconcile.c). */
        struct hv_assignment *unmanaged;
        size_t n_unmanaged;
        /* Devices whose identity change was reported, likewise, while it lasts (reconcile.c). */
        uint32_t *changed;
        size_t n_changed;
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
        uint32_t sbdf;                 /* normalised; of "devices", the first */
        char bdf[PG_BDF_MAX];          /* "ssss:bb:dd.f" */
        /* "devices" (assign, explain): a multi-device request, its devices in order; 0: "device" */
        size_t n_devices;
        uint32_t devices[PGD_GROUP_MAX];
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
        bool has_device;               /* a multi-device request: the device refused */
        uint32_t device;
};

_printf_(3, 4) int pgd_error_set(struct pgd_error *e, int code, const char *fmt, ...);

#define PGD_CLIENT_NAMES_MAX 8

/* The facts of the host one request asked for: each asked once, when first needed. */
struct pgd_host_pci {
        uint32_t sbdf;
        int r;
        struct hv_pci_info info;
};

struct pgd_host_owner {
        uint32_t sbdf;
        int r;
        uint32_t domid;
};

/* The other members of a device's IOMMU group and slot, as the request asked. */
struct pgd_host_group {
        uint32_t sbdf;
        int r;
        bool hv; /* r is the hypervisor's answer (device_group), not the PCI listing's */
        uint32_t *members;
        size_t n;
};

struct pgd_host_test {
        uint32_t sbdf, domid;
        int r;
};

struct pgd_host {
        bool have_caps, have_domain, have_list;
        int caps_r, domain_r, list_r;
        struct hv_caps caps;
        struct hv_domain domain; /* the domain the request names */
        uint32_t *list;          /* every PCI function of the host, when asked (pci_list) */
        size_t n_list;
        struct pgd_host_group *groups;
        size_t n_groups;
        struct pgd_host_test *tests;
        size_t n_tests;
        struct pgd_host_pci *pci;
        size_t n_pci;
        struct pgd_host_owner *owners;
        size_t n_owners;
};

typedef void (*pgd_reply_fn)(void *userdata, json_t *reply);

/*
 * What the one audit record of a request says (request.c writes it when the
 * request ends, from its result): the domain the request named, once a
 * handler knows it, for a refusal; and what a change did, for a success.
 */
struct pgd_outcome {
        bool have_dom;
        struct hv_domain dom;
        const char *decision; /* "granted", "released", ... (static); NULL: nothing happened */
        const char *message;  /* (static) */
        bool have_grant;      /* assign, release: the grant made or ended */
        struct pgd_grant grant;
        /* a multi-device assign: every grant it made (one audit record each), heap */
        struct pgd_grant *grants;
        size_t n_grants;
};

/* The device the checks are at: the request's, or each of its "devices" in turn. */
struct pgd_device_at {
        uint32_t sbdf;
        char bdf[PG_BDF_MAX];
        size_t index; /* in "devices"; 0 for a single device */
};

/*
 * One request, from its line to its reply: built once by request.c and
 * passed down (STYLE.md habit 9). A change keeps it until its record is
 * durable; the connection may be gone by then (done is NULL).
 */
struct pgd_ctx {
        struct pgd_daemon *d;
        json_t *msg; /* the request; req's strings point into it */
        struct pgd_request req;
        const struct pgd_op *op; /* its row of the op table (request.c) */
        struct pgd_peer peer; /* a copy of the connection's */
        /* the caller, as the policy in force says (names point into that policy) */
        struct pg_policy_identity id;
        const char *clients[PGD_CLIENT_NAMES_MAX];
        size_t n_clients;
        bool admin;
        struct pgd_host host;
        struct pgd_device_at at;
        json_t *reply; /* "id", "ok": true and the handler's fields */
        struct pgd_error err;
        struct pgd_outcome outcome;
        bool waiting; /* a change holds it until the journal is synced */
        bool watch;   /* watch: after its reply, the connection carries the event stream */
        pgd_reply_fn done;
        void *userdata;
};

/*
 * An op handler adds its result fields to ctx->reply. Returns 0, a PG_ERR_*
 * code (> 0, ctx->err filled), or -errno for an internal failure; or 0 with
 * ctx->waiting set when a change waits for the journal (commit.c then
 * finishes the request).
 */
typedef int (*pgd_op_handler)(struct pgd_ctx *ctx);

int pgd_op_hello(struct pgd_ctx *ctx);
int pgd_op_status(struct pgd_ctx *ctx);
int pgd_op_list(struct pgd_ctx *ctx);
int pgd_op_assign(struct pgd_ctx *ctx);
int pgd_op_release(struct pgd_ctx *ctx);
int pgd_op_explain(struct pgd_ctx *ctx);
int pgd_op_owner(struct pgd_ctx *ctx);
int pgd_op_prepare(struct pgd_ctx *ctx);
int pgd_op_unprepare(struct pgd_ctx *ctx);
int pgd_op_reload(struct pgd_ctx *ctx);
int pgd_op_untaint(struct pgd_ctx *ctx);
int pgd_op_watch(struct pgd_ctx *ctx);

/* ---- the host, as this request sees it (host.c) ---- */
/* The snapshot's memory freed, and emptied. */
void pgd_host_clear(struct pgd_host *h);
int pgd_host_caps(struct pgd_ctx *ctx, const struct hv_caps **ret);
/* The domain the request names: -ESRCH when there is none. */
int pgd_host_domain(struct pgd_ctx *ctx, const struct hv_domain **ret);
int pgd_host_pci(struct pgd_ctx *ctx, uint32_t sbdf, const struct hv_pci_info **ret);
int pgd_host_owner(struct pgd_ctx *ctx, uint32_t sbdf, uint32_t *ret_domid);
/*
 * The other members of sbdf's IOMMU group and the other functions of its
 * slot. On failure *ret_hv says whether the hypervisor answered
 * (device_group) or the PCI listing failed.
 */
int pgd_host_group(struct pgd_ctx *ctx, uint32_t sbdf, const uint32_t **ret, size_t *ret_n,
                   bool *ret_hv);
/* The hypervisor's test-assign of sbdf to domid. */
int pgd_host_test_assign(struct pgd_ctx *ctx, uint32_t sbdf, uint32_t domid);
/* Every PCI function of the host (pci_list), sorted. */
int pgd_host_pci_list(struct pgd_ctx *ctx, const uint32_t **ret, size_t *ret_n);

/*
 * Finish a request that waited (ctx->waiting): build its reply from code (0,
 * PG_ERR_* or -errno, as a handler returns) and hand it to ctx->done. Frees ctx.
 */
void pgd_request_finish(struct pgd_ctx *ctx, int code);
/* The connection is gone: the waiting request's reply goes nowhere. */
void pgd_request_detach(struct pgd_ctx *ctx);
/*
 * Run handler for a request that is already parsed, outside the event loop
 * (tests): the context is built as for a line, and changes never wait.
 */
int pgd_request_run(struct pgd_daemon *d, const struct pgd_peer *peer,
                    const struct pgd_request *req, pgd_op_handler handler, json_t *reply,
                    struct pgd_error *err);

/* The policy's view of a peer (pointers into peer). */
void pgd_peer_identity(const struct pgd_peer *peer, struct pg_policy_identity *ret);
/* The peer's fields freed, and zeroed. */
void pgd_peer_clear(struct pgd_peer *p);

/*
 * The sim backend's counters, and any bookkeeping a backend holds back, are
 * made visible within about a millisecond: the server holds the backend while
 * it works and flushes it on a timer (server.c). Without a server, no-op.
 */
void pgd_server_hold_host(struct pgd_daemon *d);
/* A change waits for the journal's next sync: run it soon (server.c). */
void pgd_server_commit_soon(struct pgd_daemon *d);
/* A rollback failed: try again later (server.c). */
void pgd_server_retry_later(struct pgd_daemon *d);
/* Whether a connection carries the event stream (audit.c builds events only then). */
bool pgd_server_has_watchers(const struct pgd_daemon *d);
/*
 * One event line (its '\n' included) to every watcher, queued without
 * blocking: a watcher whose queue is full gets a last "dropped" event and is
 * closed (server/connection.c).
 */
void pgd_server_broadcast(const struct pgd_daemon *d, const char *line, size_t len);
/* The policy changed: watchers it no longer allows are closed. */
void pgd_server_recheck_watchers(const struct pgd_daemon *d);
