/* SPDX-License-Identifier: MIT */
/*
 * The wire format of protocol version 1, shared by passguardd, libpassguard
 * and the passguard CLI. client/ owns it. No logging here: functions return
 * -errno and, where useful, a static reason string.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "passguard.h"

/* A message is one JSON object on one line; at most this many bytes, '\n' included. */
#define PG_WIRE_MAX_MESSAGE (64 * 1024)

/* ---- error table (errors.c) ---- */

/* PG_ERR_* -> "busy"; NULL for an unknown code. */
const char *pg_error_name(int code);
/* "busy" -> PG_ERR_BUSY; -EINVAL for an unknown name. */
int pg_error_lookup(const char *name);
/* PG_ERR_* -> the one errno it stands for (positive). */
int pg_error_errno(int code);
/* PG_ERR_* -> one-line human description. */
const char *pg_error_description(int code);

/* errno (positive) -> "EBUSY"; NULL when unknown. Errno numbers never go on the wire. */
const char *pg_errno_name(int e);
/* "EBUSY" -> EBUSY; -EINVAL when unknown. */
int pg_errno_lookup(const char *name);

/* ---- PCI addresses (bdf.c) ---- */

#define PG_BDF_MAX sizeof("ssss:bb:dd.f")

/* A 32-bit SBDF as Xen encodes it: seg << 16 | bus << 8 | dev << 3 | fn. */
#define PG_SBDF(s, b, d, f)                                                                       \
        ((uint32_t)(((uint32_t)(s) << 16) | ((uint32_t)(b) << 8) | ((uint32_t)(d) << 3) | (f)))
#define PG_SBDF_SEG(x) (((x) >> 16) & 0xffff)
#define PG_SBDF_BUS(x) (((x) >> 8) & 0xff)
#define PG_SBDF_DEV(x) (((x) >> 3) & 0x1f)
#define PG_SBDF_FN(x) ((x)&0x7)

/* "SSSS:BB:DD.F" or "BB:DD.F" (segment 0), hex, case-insensitive, nothing else. */
int pg_bdf_parse(const char *s, uint32_t *ret_sbdf);
/* Always "ssss:bb:dd.f", lowercase. Returns buf. */
char *pg_bdf_format(uint32_t sbdf, char buf[static PG_BDF_MAX]);

/* ---- domains (domain.c) ---- */

/*
 * Xen's domain ids (xen/include/public/xen.h), the one definition passguard's
 * code uses; tests/unit/interposer checks them against xenctrl.h. Ids from
 * DOMID_FIRST_RESERVED up are Xen's own (DOMID_IO, the quarantine; DOMID_XEN;
 * DOMID_INVALID, "any guest" to test-assign): never a guest, and neither is dom0.
 */
#define PG_DOMID_DOM0 0U
#define PG_DOMID_FIRST_RESERVED 0x7FF0U
#define PG_DOMID_IO 0x7FF1U
#define PG_DOMID_XEN 0x7FF2U
#define PG_DOMID_INVALID 0x7FF4U
/* The last domid a guest can have. */
#define PG_DOMID_GUEST_MAX (PG_DOMID_FIRST_RESERVED - 1)
/* The largest domid a request may carry (a domid_t); the domain check refuses the reserved ones. */
#define PG_DOMID_WIRE_MAX 0xFFFFU

static inline bool pg_domid_is_guest(uint32_t domid)
{
        return domid != PG_DOMID_DOM0 && domid < PG_DOMID_FIRST_RESERVED;
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */
#define PG_UUID_MAX 37
/* A UUID in its 8-4-4-4-12 hex form, any case, into ret lowercase. -EINVAL otherwise. */
int pg_uuid_normalize(const char *s, char ret[static PG_UUID_MAX]);

/* A domain's type, as libxl records it and the policy names it. */
enum pg_domain_type {
        PG_DOMAIN_PV,
        PG_DOMAIN_PVH,
        PG_DOMAIN_HVM,
};
/* "pv", "pvh", "hvm"; -EINVAL for anything else. */
int pg_domain_type_parse(const char *s, enum pg_domain_type *ret);
const char *pg_domain_type_name(enum pg_domain_type t);

/* ---- messages (wire.c) ---- */

/*
 * Parse one line (without its '\n'). Strict: at most PG_WIRE_MAX_MESSAGE - 1
 * bytes, no NUL byte, one JSON object, duplicate keys rejected. On failure
 * returns -EMSGSIZE, -EBADMSG or -ENOMEM, and *ret_why says why.
 */
int pg_wire_parse(const char *line, size_t len, json_t **ret, const char **ret_why);

/*
 * The same, with the reason in a buffer of the caller's: for JSON that does
 * not parse, it ends with the parser's own words (a duplicate key, where the
 * syntax broke), made printable ASCII. why_size should be PG_WIRE_WHY_MAX.
 */
#define PG_WIRE_WHY_MAX 256
int pg_wire_parse_why(const char *line, size_t len, json_t **ret, char *why, size_t why_size);

/* Serialise msg compactly with a trailing '\n'. -EMSGSIZE when too long. */
int pg_wire_dump(const json_t *msg, char **ret, size_t *ret_len);

/*
 * Check that obj has only keys from allowed (a NULL-terminated list). On an
 * unknown key returns -EBADMSG and sets *ret_key to it.
 */
int pg_wire_check_keys(const json_t *obj, const char *const *allowed, const char **ret_key);

/*
 * A JSON string for a message, always: text that is not valid UTF-8 (a
 * client's bytes cut in the middle of a character) has its non-ASCII bytes
 * replaced by '?'. NULL only on ENOMEM (or for s NULL).
 */
json_t *pg_wire_string(const char *s);

/*
 * Build a refusal: {"id": id, "ok": false, "error": NAME, "message": TEXT}
 * plus "errno" (hv_errno > 0: its symbolic name), "rule" and "check" when given.
 */
json_t *pg_wire_error_reply(json_int_t id, int code, const char *message, int hv_errno,
                            const char *rule, const char *check);

/* ---- replies (reply.c) ---- */

/* A reply, decoded. The strings point into the json_t it came from. */
struct pg_wire_reply {
        json_int_t id;
        bool ok;
        int code;            /* for a refusal: PG_ERR_*, PG_ERR_INTERNAL for an unknown name */
        const char *error;   /* the wire name as sent, or NULL */
        const char *message; /* or NULL */
        const char *check;   /* or NULL */
        const char *rule;    /* or NULL */
};

/*
 * Decode a reply object: an integer "id", a boolean "ok" and, when "ok" is
 * false, a string "error" and optional string "message", "check" and "rule".
 * Any other shape returns -EBADMSG with *ret_why saying what is wrong.
 */
int pg_wire_reply_decode(const json_t *reply, struct pg_wire_reply *ret, const char **ret_why);
