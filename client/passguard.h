/* SPDX-License-Identifier: MIT */
/*
 * libpassguard: ask passguardd to hand a PCI device to a Xen guest.
 *
 * One handle is one connection. Calls block. Every function returns 0 on
 * success, a negative errno for a local or transport failure (-ECONNREFUSED,
 * -EPROTO, -ENOMEM, ...), or a positive PG_ERR_* code when the daemon refused
 * the request. pg_last_message() then tells why, in words. No global state:
 * use one handle per thread.
 *
 * See libpassguard(3).
 */
#ifndef PASSGUARD_H
#define PASSGUARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PG_PROTOCOL_VERSION 1
#define PG_DEFAULT_SOCKET_PATH "/run/passguard/passguard.sock"

/* Error codes of the wire protocol, in check order. Append-only: never renumber. */
#define PG_ERR_BAD_REQUEST 1
#define PG_ERR_UNSUPPORTED_VERSION 2
#define PG_ERR_NOT_AUTHORIZED 3
#define PG_ERR_NO_IOMMU 4
#define PG_ERR_NO_INTERRUPT_REMAPPING 5
#define PG_ERR_NO_SUCH_DOMAIN 6
#define PG_ERR_DOMAIN_DYING 7
#define PG_ERR_NO_SUCH_DEVICE 8
#define PG_ERR_PROTECTED_DEVICE 9
#define PG_ERR_NOT_ASSIGNABLE 10
#define PG_ERR_GROUP_CONFLICT 11
#define PG_ERR_BUSY 12
#define PG_ERR_DOMAIN_NO_IOMMU 13
#define PG_ERR_DENIED 14
#define PG_ERR_LIMIT_REACHED 15
#define PG_ERR_RESET_FAILED 16
#define PG_ERR_NOT_ASSIGNED 17
#define PG_ERR_HYPERVISOR_ERROR 18
#define PG_ERR_STATE_ERROR 19
#define PG_ERR_POLICY_INVALID 20
#define PG_ERR_INTERNAL 21
#define PG_ERR_IDENTITY_CHANGED 22 /* the device at the address is not the one recorded there */
#define PG_ERR_MAX 22

/* Flags for pg_assign() and pg_explain(). */
#define PG_ASSIGN_RDM_RELAXED (1u << 0) /* ask for rdm_policy "relaxed" */

struct pg;       /* a connection to passguardd */
struct pg_grant; /* a grant returned by pg_assign() */

/* path NULL means PG_DEFAULT_SOCKET_PATH (or $PASSGUARD_SOCKET when set). */
int pg_connect(const char *path, struct pg **ret);
struct pg *pg_close(struct pg *pg);

/* The text of the last error on this handle; never NULL. */
const char *pg_last_message(const struct pg *pg);
/* For a refusal: the check that failed and the policy rule involved, or NULL. */
const char *pg_last_check(const struct pg *pg);
const char *pg_last_rule(const struct pg *pg);

/*
 * The daemon's last reply on this handle, one JSON object as it came off the
 * wire (no newline), for a success and a refusal alike; NULL before the first
 * reply. Valid until the next call on the handle. (LIBPASSGUARD_2)
 */
const char *pg_last_reply(const struct pg *pg);

/* PG_ERR_* code -> stable wire name ("busy"), or negative errno -> strerror text. */
const char *pg_strerror(int code);
/* Wire name -> PG_ERR_* code, or -EINVAL. */
int pg_error_from_name(const char *name);

/*
 * A domain is named by name (domain != NULL) or by domid (domain == NULL).
 * A device is a BDF string, "SSSS:BB:DD.F" or "BB:DD.F".
 */
int pg_assign(struct pg *pg, const char *domain, uint32_t domid, const char *bdf, unsigned flags,
              struct pg_grant **ret);
int pg_release(struct pg *pg, const char *domain, uint32_t domid, const char *bdf);

const char *pg_grant_device(const struct pg_grant *g);
uint32_t pg_grant_domid(const struct pg_grant *g);
const char *pg_grant_domain_name(const struct pg_grant *g);
const char *pg_grant_domain_uuid(const struct pg_grant *g);
const char *pg_grant_rule(const struct pg_grant *g);
const char *pg_grant_rdm_policy(const struct pg_grant *g);
struct pg_grant *pg_grant_free(struct pg_grant *g);

/*
 * Result of explain, owner, list and status: the daemon's JSON reply object,
 * as a NUL-terminated string the caller frees with free(). Its fields are those
 * of the wire protocol (libpassguard(3)).
 */
int pg_explain(struct pg *pg, const char *domain, uint32_t domid, const char *bdf, unsigned flags,
               int *ret_allow, char **ret_json);
int pg_owner(struct pg *pg, const char *bdf, int *ret_assigned, uint32_t *ret_domid,
             int *ret_granted);
int pg_list(struct pg *pg, char **ret_json);
int pg_status(struct pg *pg, char **ret_json);
int pg_prepare(struct pg *pg, const char *bdf);
int pg_unprepare(struct pg *pg, const char *bdf);
int pg_reload(struct pg *pg);

/* Send any request object (a JSON text without "id") and get the raw reply. A
 * refusal returns its PG_ERR_* code and still sets *ret_reply_json. -EINVAL for
 * "op": "watch", which turns a connection into an event stream: use pg_watch(). */
int pg_call_json(struct pg *pg, const char *request_json, char **ret_reply_json);

/* ---- LIBPASSGUARD_2 ---- */

/*
 * For a refusal of a multi-device request: the device that was refused
 * ("SSSS:BB:DD.F"), or NULL. Valid until the next call on the handle.
 */
const char *pg_last_device(const struct pg *pg);

/*
 * Assign n devices to one domain, all or none: every check runs for every
 * device, then each is assigned; when one is refused, those assigned before
 * it are released back into quarantine and pg_last_device() names it. Each
 * device's whole IOMMU group (and slot) must be among them, unless the domain
 * has the rest already (group-conflict names what is missing). On success
 * *ret_grants (may be NULL) is a NULL-terminated array of n grants, in the
 * order of bdfs, freed with pg_grants_free().
 */
int pg_assign_many(struct pg *pg, const char *domain, uint32_t domid, const char *const *bdfs,
                   size_t n, unsigned flags, struct pg_grant ***ret_grants);
/* Free an array from pg_assign_many() and its grants. Accepts NULL; returns NULL. */
struct pg_grant **pg_grants_free(struct pg_grant **grants);
/*
 * explain for several devices: *ret_allow is 1 when assign would grant them
 * all; *ret_json holds "decision", "devices" (each device's "checks" as far as
 * they went) and, for a deny, "device", "error", "check" and "message".
 */
int pg_explain_many(struct pg *pg, const char *domain, uint32_t domid, const char *const *bdfs,
                    size_t n, unsigned flags, int *ret_allow, char **ret_json);

/* Clear the taint of a device whose reset failed (admins). 0 also when it was not tainted. */
int pg_untaint(struct pg *pg, const char *bdf);

/*
 * Turn the handle into an event stream: the daemon sends one JSON object per
 * decision (grant, refuse, release, domain-gone, unmanaged, reconcile,
 * prepare, reload, identity, taint; see libpassguard(3)). Admins and the
 * policy's watchers may. Afterwards the handle takes no other request
 * (-EBUSY); close it to stop.
 */
int pg_watch(struct pg *pg);
/* The descriptor to poll for POLLIN while watching; -ENOTCONN when not watching. */
int pg_watch_fd(const struct pg *pg);
/*
 * The next event, never waiting: 0 and *ret_json (one JSON object, freed with
 * free()); -EAGAIN when no whole event has arrived (poll pg_watch_fd() and call
 * again; call until -EAGAIN after each wake-up, since several events may come
 * at once); -ECONNRESET when the daemon ended the stream (it exits, or it
 * dropped this watcher after a last "dropped" event); -EPROTO for a line that
 * is not an event.
 */
int pg_watch_next(struct pg *pg, char **ret_json);

#ifdef __cplusplus
}
#endif

#endif
