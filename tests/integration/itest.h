/* SPDX-License-Identifier: MIT */
/*
 * The integration-test harness: a real passguardd on the simulated host in a
 * temporary directory, spoken to over its real socket, raw or through the
 * passguard CLI. The host file is read and changed with the same flock
 * protocol the simulator uses.
 *
 * Binaries come from the environment: $PASSGUARDD and $PASSGUARD_CLI (set by
 * tests/integration/meson.build).
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "harness.h"

#define streq(a, b) (strcmp((a), (b)) == 0)

#define ITEST_SKIP 77

struct itest {
        char dir[PATH_MAX];    /* the temporary root, removed at the end */
        char host[PATH_MAX];   /* DIR/host.json: the simulated host */
        char state[PATH_MAX];  /* DIR/state: the daemon's state directory */
        char grants[PATH_MAX]; /* DIR/state/grants.json */
        char run[PATH_MAX];    /* DIR/run: holds the socket */
        char sock[PATH_MAX];   /* DIR/run/passguard.sock */
        char policy[PATH_MAX]; /* DIR/policy.conf */
        char config[PATH_MAX]; /* DIR/passguardd.conf */
        char log[PATH_MAX];    /* DIR/daemon.log: the daemon's stdout and stderr, appended */
        const char *daemon_bin;
        const char *cli_bin;
        pid_t pid;       /* the running daemon, or 0 */
        int last_status; /* wait status of the last daemon that exited */
};

/* The fixture host of every test (see itest.c for what each device is for). */
#define DEV_GPU "0000:03:00.0"     /* 10de, pciback, quarantined, flr, alone in group 7 */
#define DEV_GPU2 "0000:0a:00.0"    /* 10de, pciback, quarantined, flr, group 13 */
#define DEV_NIC "0000:04:00.0"     /* 8086 NIC, pciback, quarantined, group 8 */
#define DEV_IGB "0000:05:00.0"     /* NIC still bound to igb and owned by dom0 */
#define DEV_SATA "0000:00:1f.2"    /* protected by the policy */
#define DEV_NORESET "0000:06:00.0" /* pciback, quarantined, no reset method */
#define DEV_SLOT0 "0000:07:00.0"   /* same group (11) as DEV_SLOT1 */
#define DEV_SLOT1 "0000:07:00.1"
#define DEV_SPARE "0000:08:00.0" /* pciback, quarantined, group 12: fault target */
#define DEV_E1000 "0000:09:00.0" /* bound to e1000e, owned by dom0: for prepare */
#define DEV_GHOST "0000:0f:00.0" /* not on the host */

#define DOM_RENDER1 5   /* "render-1", hvm */
#define DOM_RENDER2 6   /* "render-2", hvm */
#define DOM_NETPV 7     /* "net-pv", pv */
#define DOM_NETPVH 8    /* "net-pvh", pvh */
#define DOM_DYING 9     /* "dying-1", hvm, dying */
#define DOM_NOIOMMU 10  /* "noiommu-1", hvm, created without an IOMMU context */
#define DOM_RENDERPV 11 /* "render-pv", pv */
#define DOM_NETHVM 12   /* "net-hvm", hvm */

extern const char itest_default_policy[];

/* Set up DIR with the default host, policy and config. Exits 77 unless root when need_root. */
void itest_init(struct itest *t, const char *name, bool need_root);
/* Stop the daemon, unmount what is mounted under DIR, remove DIR. */
void itest_finish(struct itest *t);

/* ---- files ---- */
int itest_write_file(const char *path, const char *text);
/* The whole file, NUL-terminated; NULL when it cannot be read. *ret_len may be NULL. */
char *itest_read_file(const char *path, size_t *ret_len);
bool itest_files_equal(const char *a_text, size_t a_len, const char *b_text, size_t b_len);

/* ---- the daemon ---- */

/*
 * Start passguardd with the standard flags (sim backend, DIR paths, --debug)
 * plus extra_args (NULL-terminated, may be NULL); env is a NULL-terminated
 * list of "NAME=value" added to the environment (may be NULL). Waits until the
 * socket answers. Returns 0, or -ECHILD when the daemon exited first
 * (t->last_status says how), -ETIMEDOUT.
 */
int itest_start(struct itest *t, const char *const *extra_args, const char *const *env);
/* Run passguardd (standard flags + extra_args) expecting it to exit; returns its wait status. */
int itest_run_daemon(struct itest *t, const char *const *extra_args, const char *const *env,
                     bool standard_args, int timeout_ms);
/* SIGTERM and wait; SIGKILL after 5 s. Returns the wait status. */
int itest_stop(struct itest *t);
/* Wait up to timeout_ms for the daemon to exit on its own; 0 and t->last_status, or -ETIMEDOUT. */
int itest_wait_exit(struct itest *t, int timeout_ms);
bool itest_alive(struct itest *t);
/* Make the socket reachable by any uid. */
int itest_open_socket(struct itest *t);

/* ---- raw protocol ---- */

struct itest_conn {
        int fd;
        size_t len;
        char buf[128 * 1024];
};

/* Connect to the daemon's socket; NULL when that fails. */
struct itest_conn *itest_connect(const struct itest *t);
void itest_conn_close(struct itest_conn *c);
int itest_send_raw(struct itest_conn *c, const void *buf, size_t len);
/*
 * Read one line (without '\n'). 0 with *ret (malloc'd), -ECONNRESET when the
 * daemon closed the connection, -ETIMEDOUT.
 */
int itest_recv_line(struct itest_conn *c, int timeout_ms, char **ret);
/* Send req (consumed; an "id" is added when missing), return the parsed reply or NULL. */
json_t *itest_conn_call(struct itest_conn *c, json_t *req);
/* One request on a fresh connection. */
json_t *itest_call(const struct itest *t, json_t *req);
#define ITEST_NO_DOMAIN UINT32_MAX
/*
 * An op on a device and a domain: domain by name when name != NULL, else by
 * domid, none when domid is ITEST_NO_DOMAIN.
 */
json_t *itest_target(const struct itest *t, const char *op, const char *name, uint32_t domid,
                     const char *bdf);
/* The error code of a reply, "" when ok, "(none)" when there is no reply. */
const char *itest_error(const json_t *reply);
bool itest_ok(const json_t *reply);
/* Whether code is one of the 22 error codes of the wire protocol. */
bool itest_known_code(const char *code);

/* ---- the host file ---- */
json_t *itest_host_load(const struct itest *t);
/* Write the whole host file under the lock (tmp + rename). */
int itest_host_store(const struct itest *t, const json_t *host);
/* Read, change with fn, write back, all under the exclusive lock. */
int itest_host_edit(const struct itest *t, void (*fn)(json_t *host, void *userdata),
                    void *userdata);
json_t *itest_host_device(const json_t *host, const char *bdf);
/* "null" (dom0), "io", or the domid as text; "(missing)" when the device is not there. */
const char *itest_host_owner(const json_t *host, const char *bdf, char buf[static 32]);
/* The same from the file on disk. */
const char *itest_owner(const struct itest *t, const char *bdf, char buf[static 32]);
json_int_t itest_host_calls(const json_t *host, const char *op);
json_int_t itest_calls(const struct itest *t, const char *op);
/* Remove domain domid (its devices go to quarantine, as Xen does). */
int itest_destroy_domain(const struct itest *t, uint32_t domid);
/* Set faults.OP.BDF = errname (NULL removes it). */
int itest_set_fault(const struct itest *t, const char *op, const char *bdf, const char *errname);
/* Set a device's assigned_to: "null", "io" or a domid. */
int itest_set_owner(const struct itest *t, const char *bdf, const char *owner);
/* Set a device's key to value (consumed; NULL removes the key), under the lock. */
int itest_set_device(const struct itest *t, const char *bdf, const char *key, json_t *value);
int itest_set_bool(const struct itest *t, const char *key, bool value);
/* The default fixture host. */
json_t *itest_default_host(void);

/* ---- the grant store ---- */
/*
 * The store as the daemon would load it: grants.json (an empty store when it
 * does not exist) with the records of grants.journal applied. NULL when
 * grants.json does not parse.
 */
json_t *itest_grants_load(const struct itest *t);
/* The store's grants and prepared devices, canonical text (malloc'd); NULL when unreadable. */
char *itest_store_text(const struct itest *t);
/* The grant for bdf in a loaded store, or NULL. */
json_t *itest_grants_find(const json_t *store, const char *bdf);
/*
 * grants.json and the host file agree: each grant's device is assigned to its
 * domid, and each guest assignment of a device in devices (NULL-terminated; NULL
 * means every device) has a grant. Returns the number of disagreements, printed.
 */
int itest_consistent(const struct itest *t, const char *const *devices);

/* ---- other programs ---- */
/*
 * Run argv (NULL-terminated; argv[0] looked up in PATH) with env ("NAME=value",
 * NULL-terminated, may be NULL) added to the environment, without
 * $PASSGUARD_SOCKET unless env sets it. Returns the exit status (128+signal
 * when killed, -errno). *ret_out and *ret_err get the output (may be NULL).
 */
int itest_run(const struct itest *t, const char *const *argv, const char *const *env,
              char **ret_out, char **ret_err);

/* ---- the CLI ---- */
/*
 * Run `passguard --socket SOCK args...` (args NULL-terminated), as uid when
 * uid != (uid_t)-1. Returns the exit status (128+signal when killed, -errno).
 * *ret_out and *ret_err get the output (may be NULL).
 */
int itest_cli(const struct itest *t, uid_t uid, char **ret_out, char **ret_err,
              const char *const *args);
#define ITEST_CLI(t, out, err, ...)                                                                \
        itest_cli((t), (uid_t)-1, (out), (err), (const char *const[]){__VA_ARGS__, NULL})

/* ---- the daemon's log ---- */
size_t itest_log_size(const struct itest *t);
/* How many lines at or after offset contain every needle (NULL-terminated). */
int itest_log_count(const struct itest *t, size_t offset, const char *const *needles);
/* Whether one does. */
bool itest_log_has(const struct itest *t, size_t offset, const char *const *needles);
#define ITEST_LOG_HAS(t, off, ...)                                                                 \
        itest_log_has((t), (off), (const char *const[]){__VA_ARGS__, NULL})
/* Wait up to timeout_ms for such a line. */
bool itest_log_wait(const struct itest *t, size_t offset, const char *const *needles,
                    int timeout_ms);
void itest_log_dump(const struct itest *t);

/* ---- misc ---- */
int64_t itest_now_ms(void);
void itest_sleep_ms(int ms);
/* Poll cond every 10 ms for up to timeout_ms; its result. */
#define ITEST_WAIT_FOR(cond, timeout_ms)                                                           \
        ({                                                                                         \
                int64_t _end = itest_now_ms() + (timeout_ms);                                      \
                bool _r;                                                                           \
                while (!(_r = (cond)) && itest_now_ms() < _end)                                    \
                        itest_sleep_ms(10);                                                        \
                _r;                                                                                \
        })
