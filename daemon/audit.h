/* SPDX-License-Identifier: MIT */
/*
 * Audit: one structured journald record per decision, with a fixed
 * MESSAGE_ID per kind and PASSGUARD_* fields. Under --debug the same line
 * also goes to stderr. Request payloads are never logged whole.
 */
#pragma once

#include <stdint.h>

#include "pgd.h"

enum pgd_audit_kind {
        PGD_AUDIT_GRANT,          /* assign granted */
        PGD_AUDIT_REFUSE,         /* assign (or other op) refused */
        PGD_AUDIT_RELEASE,        /* release by a client */
        PGD_AUDIT_DOMAIN_GONE,    /* grant released because its domain died/changed */
        PGD_AUDIT_UNMANAGED,      /* hypervisor assignment with no grant */
        PGD_AUDIT_RECONCILE,      /* other start-up reconciliation changes */
        PGD_AUDIT_PREPARE,        /* prepare / unprepare */
        PGD_AUDIT_RELOAD,         /* policy reload, ok or not */
        PGD_AUDIT_IDENTITY,       /* a device is not the one recorded at its address */
        PGD_AUDIT_TAINT,          /* a device tainted (its reset failed) or untainted */
        _PGD_AUDIT_MAX,
};

struct pgd_audit_record {
        enum pgd_audit_kind kind;
        const char *op;
        uint32_t sbdf;            /* UINT32_MAX: none */
        int64_t domid;            /* -1: none */
        const char *domain_uuid;
        const char *domain_name;
        const struct pgd_peer *peer;
        const char *rule;
        const char *decision;     /* "granted", "refused", "released", "unmanaged", ... */
        int error;                /* PG_ERR_* or 0 */
        const char *message;
};

void pgd_audit(const struct pgd_daemon *d, const struct pgd_audit_record *r);

struct pgd_grant;
/* A refused request: its op, device and domain (dom when known), err's code and message. */
void pgd_audit_refusal(const struct pgd_daemon *d, const struct pgd_peer *peer,
                       const struct pgd_request *req, const struct hv_domain *dom,
                       const struct pgd_error *err);
/*
 * A decision about a grant: the granted device, its domain and its rule.
 * peer NULL: no client asked (domain death, start-up); the grant's client is named.
 */
void pgd_audit_grant(const struct pgd_daemon *d, enum pgd_audit_kind kind, const char *op,
                     const struct pgd_peer *peer, const struct pgd_grant *g, const char *decision,
                     int error, const char *message);
/* The MESSAGE_ID of a kind, as 32 hex digits. */
const char *pgd_audit_message_id(enum pgd_audit_kind kind);

/*
 * The event a watcher gets for a record (the same record, so that the two
 * never disagree): {"event": KIND, "time": unix seconds, "op", "device",
 * "domid", "domain", "uuid", "client_uid", "client_pid", "client_unit",
 * "rule", "decision", "error", "message"}, those that apply. NULL on ENOMEM.
 */
json_t *pgd_audit_event(const struct pgd_audit_record *r, int64_t time);
