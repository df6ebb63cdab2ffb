/* SPDX-License-Identifier: MIT */
/*
 * grants.json's text (grants.h): parsed strictly (every reason said), and
 * formatted with its checksum, SHA-256 over jansson's canonical form.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg-wire.h"
#include "sha256.h"
#include "store-internal.h"

int pgd_grants_checksum(const json_t *obj, char ret[static PGD_GRANTS_CHECKSUM_MAX])
{
        _cleanup_(freep) char *canon = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
        struct pgd_sha256 s;
        uint8_t md[32];

        if (!canon)
                return -ENOMEM;
        pgd_sha256_init(&s);
        pgd_sha256_update(&s, canon, strlen(canon));
        pgd_sha256_final(&s, md);
        char *p = stpcpy(ret, CHECKSUM_PREFIX);
        for (int i = 0; i < 32; i++)
                p += sprintf(p, "%02x", md[i]);
        return 0;
}

int pgd_grants_seal(json_t *obj, size_t flags, char sum[static CHECKSUM_MAX], char **ret,
                    size_t *ret_len)
{
        int r = pgd_grants_checksum(obj, sum);

        if (r < 0)
                return r;
        if (json_object_set_new(obj, "checksum", json_string(sum)) < 0)
                return -ENOMEM;
        char *text = json_dumps(obj, flags);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        char *p = realloc(text, len + 2);
        if (!p) {
                free(text);
                return -ENOMEM;
        }
        p[len++] = '\n';
        p[len] = '\0';
        *ret = p;
        *ret_len = len;
        return 0;
}

/* ---- parsing ---- */

const char *pgd_grants_type_name(const json_t *j)
{
        if (!j)
                return "missing";
        switch (json_typeof(j)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "unknown";
}

/* Check obj's keys against required and optional (NULL-terminated lists; optional may be NULL). */
static int check_members_opt(char *why, const json_t *obj, const char *what,
                             const char *const *required, const char *const *optional)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)obj, key, v)
        {
                bool known = false;
                for (const char *const *a = required; *a && !known; a++)
                        known = streq(*a, key);
                for (const char *const *a = optional; a && *a && !known; a++)
                        known = streq(*a, key);
                if (!known)
                        return pgd_grants_bad(why, "%sunknown key '%s'", what, key);
        }
        for (const char *const *a = required; *a; a++)
                if (!json_object_get(obj, *a))
                        return pgd_grants_bad(why, "%smissing key '%s'", what, *a);
        return 0;
}

/* Check obj's keys against allowed (all required). what prefixes the reason. */
int pgd_grants_check_members(char *why, const json_t *obj, const char *what,
                             const char *const *allowed)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)obj, key, v)
        {
                bool known = false;
                for (const char *const *a = allowed; *a; a++)
                        if (streq(*a, key))
                                known = true;
                if (!known)
                        return pgd_grants_bad(why, "%sunknown key '%s'", what, key);
        }
        for (const char *const *a = allowed; *a; a++)
                if (!json_object_get(obj, *a))
                        return pgd_grants_bad(why, "%smissing key '%s'", what, *a);
        return 0;
}

int pgd_grants_get_string(char *why, const json_t *obj, const char *what, const char *key,
                          size_t max, bool nonempty, const char **ret)
{
        const json_t *v = json_object_get(obj, key);

        if (!json_is_string(v))
                return pgd_grants_bad(why, "%s'%s' must be a string, not %s", what, key,
                                      pgd_grants_type_name(v));
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (strlen(s) != n)
                return pgd_grants_bad(why, "%s'%s' contains a NUL byte", what, key);
        if (n >= max)
                return pgd_grants_bad(why, "%s'%s' is too long (%zu bytes, at most %zu)", what, key,
                                      n, max - 1);
        if (nonempty && n == 0)
                return pgd_grants_bad(why, "%s'%s' is empty", what, key);
        *ret = s;
        return 0;
}

int pgd_grants_get_int(char *why, const json_t *obj, const char *what, const char *key,
                       json_int_t min, json_int_t max, json_int_t *ret)
{
        const json_t *v = json_object_get(obj, key);

        if (!json_is_integer(v))
                return pgd_grants_bad(why, "%s'%s' must be an integer, not %s", what, key,
                                      pgd_grants_type_name(v));
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
                return pgd_grants_bad(why, "%s'%s' is out of range (%" JSON_INTEGER_FORMAT ")",
                                      what, key, i);
        *ret = i;
        return 0;
}

int pgd_grants_get_device(char *why, const json_t *obj, const char *what, uint32_t *ret)
{
        char canon[PG_BDF_MAX];
        const char *s = NULL;
        uint32_t sbdf;
        int r;

        r = pgd_grants_get_string(why, obj, what, "device", PG_BDF_MAX, true, &s);
        if (r < 0)
                return r;
        if (pg_bdf_parse(s, &sbdf) < 0 || !streq(pg_bdf_format(sbdf, canon), s))
                return pgd_grants_bad(
                        why, "%s'device' is not a PCI address of the form ssss:bb:dd.f: '%s'", what,
                        s);
        *ret = sbdf;
        return 0;
}

/* A UUID as the store writes it: canonical, lowercase. */
static bool uuid_valid(const char *s)
{
        char norm[PG_UUID_MAX];

        return pg_uuid_normalize(s, norm) >= 0 && streq(norm, s);
}

/* "0x" and exactly digits lowercase hex digits, as the store writes them. */
static int get_hex(char *why, const json_t *obj, const char *what, const char *key, int digits,
                   uint32_t *ret)
{
        const char *s;
        uint32_t v = 0;
        int r;

        r = pgd_grants_get_string(why, obj, what, key, 16, true, &s);
        if (r < 0)
                return r;
        if (strlen(s) != (size_t)digits + 2 || s[0] != '0' || s[1] != 'x')
                return pgd_grants_bad(why, "%s'%s' is not 0x and %d hex digits: '%s'", what, key,
                                      digits, s);
        for (const char *p = s + 2; *p; p++) {
                if (*p >= '0' && *p <= '9')
                        v = v << 4 | (uint32_t)(*p - '0');
                else if (*p >= 'a' && *p <= 'f')
                        v = v << 4 | (uint32_t)(*p - 'a' + 10);
                else
                        return pgd_grants_bad(why, "%s'%s' is not lowercase hex: '%s'", what, key,
                                              s);
        }
        *ret = v;
        return 0;
}

/* "xx-xx-xx-xx-xx-xx-xx-xx", lowercase: a Device Serial Number as the store writes it. */
static bool serial_valid(const char *s)
{
        if (strlen(s) != HV_SERIAL_MAX - 1)
                return false;
        for (size_t i = 0; i < HV_SERIAL_MAX - 1; i++) {
                bool dash = i % 3 == 2;
                if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

int pgd_grants_parse_identity(char *why, const json_t *obj, const char *what,
                              struct pgd_identity *ret)
{
        static const char *const keys[] = {
                "vendor", "device", "subsystem_vendor", "subsystem_device", "class", "serial",
                "path",   NULL,
        };
        struct pgd_identity id = {.known = true};
        char where[64];
        const json_t *v;
        const char *s;
        uint32_t x;
        int r;

        snprintf(where, sizeof(where), "%sidentity: ", what);
        if (!json_is_object(obj))
                return pgd_grants_bad(why, "%smust be an object, not %s", where,
                                      pgd_grants_type_name(obj));
        r = pgd_grants_check_members(why, obj, where, keys);
        if (r < 0)
                return r;
        if ((r = get_hex(why, obj, where, "vendor", 4, &x)) < 0)
                return r;
        id.vendor = (uint16_t)x;
        if ((r = get_hex(why, obj, where, "device", 4, &x)) < 0)
                return r;
        id.device = (uint16_t)x;
        if ((r = get_hex(why, obj, where, "subsystem_vendor", 4, &x)) < 0)
                return r;
        id.subsystem_vendor = (uint16_t)x;
        if ((r = get_hex(why, obj, where, "subsystem_device", 4, &x)) < 0)
                return r;
        id.subsystem_device = (uint16_t)x;
        if ((r = get_hex(why, obj, where, "class", 6, &id.class)) < 0)
                return r;
        v = json_object_get(obj, "serial");
        if (json_is_null(v))
                id.serial_unknown = true;
        else {
                r = pgd_grants_get_string(why, obj, where, "serial", HV_SERIAL_MAX, false, &s);
                if (r < 0)
                        return r;
                if (s[0] && !serial_valid(s))
                        return pgd_grants_bad(why, "%s'serial' is not xx-xx-xx-xx-xx-xx-xx-xx: '%s'",
                                              where, s);
                strcpy(id.serial, s);
        }
        r = pgd_grants_get_string(why, obj, where, "path", HV_PCI_PATH_MAX, false, &s);
        if (r < 0)
                return r;
        strcpy(id.path, s);
        *ret = id;
        return 0;
}

json_t *pgd_grants_identity_to_json(const struct pgd_identity *id)
{
        char vendor[8], device[8], sv[8], sd[8], class[10];

        snprintf(vendor, sizeof(vendor), "0x%04x", id->vendor);
        snprintf(device, sizeof(device), "0x%04x", id->device);
        snprintf(sv, sizeof(sv), "0x%04x", id->subsystem_vendor);
        snprintf(sd, sizeof(sd), "0x%04x", id->subsystem_device);
        snprintf(class, sizeof(class), "0x%06x", id->class & 0xffffffU);
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "vendor", vendor, "device",
                         device, "subsystem_vendor", sv, "subsystem_device", sd, "class", class,
                         "serial", id->serial_unknown ? json_null() : json_string(id->serial),
                         "path", id->path);
}

int pgd_grants_parse_taint(char *why, const json_t *obj, const char *what, struct pgd_taint *ret)
{
        static const char *const keys[] = {"domain_uuid", "reason", "time", NULL};
        struct pgd_taint t = {};
        const char *s;
        json_int_t i;
        int r;

        if (!json_is_object(obj))
                return pgd_grants_bad(why, "%smust be an object, not %s", what,
                                      pgd_grants_type_name(obj));
        r = pgd_grants_check_members(why, obj, what, keys);
        if (r < 0)
                return r;
        r = pgd_grants_get_string(why, obj, what, "domain_uuid", sizeof(t.domain_uuid), false, &s);
        if (r < 0)
                return r;
        if (s[0]) {
                char norm[PG_UUID_MAX];
                if (pg_uuid_normalize(s, norm) < 0 || !streq(norm, s))
                        return pgd_grants_bad(why, "%s'domain_uuid' is not a lowercase UUID: '%s'",
                                              what, s);
        }
        strcpy(t.domain_uuid, s);
        r = pgd_grants_get_string(why, obj, what, "reason", sizeof(t.reason), false, &s);
        if (r < 0)
                return r;
        strcpy(t.reason, s);
        r = pgd_grants_get_int(why, obj, what, "time", 0, INT64_MAX, &i);
        if (r < 0)
                return r;
        t.time = i;
        *ret = t;
        return 0;
}

int pgd_grants_parse_grant(char *why, const json_t *obj, size_t idx, struct pgd_grant *ret)
{
        static const char *const keys[] = {
                "device",      "domid", "domain_uuid", "domain_name", "client_uid", "client_pid",
                "client_unit", "rule",  "rdm_policy",  "time",        NULL,
        };
        struct pgd_grant gr = {};
        char what[32];
        const char *s;
        json_int_t i;
        int r;

        static const char *const optional[] = {"identity", NULL};

        snprintf(what, sizeof(what), "grant %zu: ", idx);
        if (!json_is_object(obj))
                return pgd_grants_bad(why, "grant %zu: must be an object, not %s", idx,
                                      pgd_grants_type_name(obj));
        r = check_members_opt(why, obj, what, keys, optional);
        if (r < 0)
                return r;
        if (json_object_get(obj, "identity")) {
                r = pgd_grants_parse_identity(why, json_object_get(obj, "identity"), what,
                                              &gr.identity);
                if (r < 0)
                        return r;
        }
        r = pgd_grants_get_device(why, obj, what, &gr.sbdf);
        if (r < 0)
                return r;
        r = pgd_grants_get_int(why, obj, what, "domid", 1, PG_DOMID_GUEST_MAX, &i);
        if (r < 0)
                return r;
        gr.domid = (uint32_t)i;
        r = pgd_grants_get_string(why, obj, what, "domain_uuid", sizeof(gr.domain_uuid), true, &s);
        if (r < 0)
                return r;
        if (!uuid_valid(s))
                return pgd_grants_bad(why, "%s'domain_uuid' is not a lowercase UUID: '%s'", what,
                                      s);
        strcpy(gr.domain_uuid, s);
        r = pgd_grants_get_string(why, obj, what, "domain_name", sizeof(gr.domain_name), false, &s);
        if (r < 0)
                return r;
        strcpy(gr.domain_name, s);
        r = pgd_grants_get_int(why, obj, what, "client_uid", 0, (json_int_t)UINT32_MAX - 1, &i);
        if (r < 0)
                return r;
        gr.client_uid = (uid_t)i;
        r = pgd_grants_get_int(why, obj, what, "client_pid", 0, INT32_MAX, &i);
        if (r < 0)
                return r;
        gr.client_pid = (pid_t)i;
        r = pgd_grants_get_string(why, obj, what, "client_unit", sizeof(gr.client_unit), false, &s);
        if (r < 0)
                return r;
        strcpy(gr.client_unit, s);
        r = pgd_grants_get_string(why, obj, what, "rule", sizeof(gr.rule), true, &s);
        if (r < 0)
                return r;
        strcpy(gr.rule, s);
        r = pgd_grants_get_string(why, obj, what, "rdm_policy", 16, true, &s);
        if (r < 0)
                return r;
        if (streq(s, pg_policy_rdm_name(PG_POLICY_RDM_STRICT)))
                gr.rdm_policy = PG_POLICY_RDM_STRICT;
        else if (streq(s, pg_policy_rdm_name(PG_POLICY_RDM_RELAXED)))
                gr.rdm_policy = PG_POLICY_RDM_RELAXED;
        else
                return pgd_grants_bad(
                        why, "%s'rdm_policy' must be \"strict\" or \"relaxed\", not '%s'", what, s);
        r = pgd_grants_get_int(why, obj, what, "time", 0, INT64_MAX, &i);
        if (r < 0)
                return r;
        gr.time = i;
        *ret = gr;
        return 0;
}

int pgd_grants_parse(const char *text, size_t len, struct pgd_grants *g, char **ret_why)
{
        char why[WHY_MAX] = "";
        int r = pgd_grants_snapshot_parse(why, text, len, g);

        return r < 0 ? pgd_grants_give_why(r, why, ret_why) : r;
}

/* The snapshot's text into g (empty), or -EBADMSG / -EPROTONOSUPPORT and why. */
int pgd_grants_snapshot_parse(char *why, const char *text, size_t len, struct pgd_grants *g)
{
        static const char *const top_keys[] = {"format", "grants", "prepared", "checksum", NULL};
        static const char *const top_optional[] = {"tainted", NULL};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(freep) struct pgd_grant *grants = NULL;
        _cleanup_(freep) struct prepared *prepared = NULL;
        _cleanup_(freep) struct pgd_taint *taints = NULL;
        size_t n_grants = 0, cap_grants = 0, n_prepared = 0, cap_prepared = 0;
        size_t n_taints = 0, cap_taints = 0;
        char want[CHECKSUM_MAX];
        json_error_t jerr;
        const json_t *v;
        const char *s;
        size_t idx;
        int r;

        if (len > GRANTS_MAX_FILE_SIZE)
                r = pgd_grants_bad(why, "file too large (%zu bytes)", len);
        else if (memchr(text, '\0', len))
                r = pgd_grants_bad(why, "file contains a NUL byte");
        else {
                root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
                r = root ? 0 : pgd_grants_bad(why, "line %d: %s", jerr.line, jerr.text);
        }
        if (r >= 0 && !json_is_object(root))
                r = pgd_grants_bad(why, "top level must be an object, not %s",
                                   pgd_grants_type_name(root));

        /* The format first: a future format may checksum differently. */
        if (r >= 0) {
                v = json_object_get(root, "format");
                if (!v)
                        r = pgd_grants_bad(why, "missing key 'format'");
                else if (!json_is_integer(v))
                        r = pgd_grants_bad(why, "'format' must be an integer, not %s",
                                           pgd_grants_type_name(v));
                else if (json_integer_value(v) != PGD_GRANTS_FORMAT) {
                        snprintf(why, WHY_MAX,
                                 "unsupported format %" JSON_INTEGER_FORMAT
                                 " (this passguardd reads format %d)",
                                 json_integer_value(v), PGD_GRANTS_FORMAT);
                        r = -EPROTONOSUPPORT;
                }
        }
        if (r >= 0)
                r = check_members_opt(why, root, "", top_keys, top_optional);

        /* Then the checksum, before trusting anything else in the file. */
        if (r >= 0)
                r = pgd_grants_get_string(why, root, "", "checksum", CHECKSUM_MAX, true, &s);
        if (r >= 0) {
                _cleanup_(freep) char *have = strdup(s);
                if (!have)
                        return -ENOMEM;
                json_object_del(root, "checksum");
                r = pgd_grants_checksum(root, want);
                if (r < 0)
                        return r;
                if (!streq(have, want))
                        r = pgd_grants_bad(why, "checksum mismatch");
        }

        if (r >= 0) {
                v = json_object_get(root, "grants");
                if (!json_is_array(v))
                        r = pgd_grants_bad(why, "'grants' must be an array, not %s",
                                           pgd_grants_type_name(v));
        }
        if (r >= 0) {
                const json_t *e;
                json_array_foreach(json_object_get(root, "grants"), idx, e)
                {
                        struct pgd_grant gr;
                        char bdf[PG_BDF_MAX];
                        r = pgd_grants_parse_grant(why, e, idx, &gr);
                        if (r < 0)
                                break;
                        r = pgd_grants_insert(&grants, &n_grants, &cap_grants, &gr);
                        if (r == -EEXIST)
                                r = pgd_grants_bad(why, "grant %zu: device %s is granted twice",
                                                   idx, pg_bdf_format(gr.sbdf, bdf));
                        if (r < 0)
                                break;
                }
        }

        if (r >= 0) {
                v = json_object_get(root, "prepared");
                if (!json_is_array(v))
                        r = pgd_grants_bad(why, "'prepared' must be an array, not %s",
                                           pgd_grants_type_name(v));
        }
        if (r >= 0) {
                static const char *const keys[] = {"device", "driver", NULL};
                static const char *const optional[] = {"identity", NULL};
                const json_t *e;
                json_array_foreach(json_object_get(root, "prepared"), idx, e)
                {
                        char what[32], bdf[PG_BDF_MAX];
                        struct pgd_identity id = {};
                        uint32_t sbdf = 0;
                        snprintf(what, sizeof(what), "prepared %zu: ", idx);
                        if (!json_is_object(e)) {
                                r = pgd_grants_bad(why, "prepared %zu: must be an object, not %s",
                                                   idx, pgd_grants_type_name(e));
                                break;
                        }
                        r = check_members_opt(why, e, what, keys, optional);
                        if (r >= 0)
                                r = pgd_grants_get_device(why, e, what, &sbdf);
                        if (r >= 0 && json_object_get(e, "identity"))
                                r = pgd_grants_parse_identity(why, json_object_get(e, "identity"),
                                                              what, &id);
                        if (r >= 0)
                                r = pgd_grants_get_string(why, e, what, "driver", HV_DRIVER_MAX,
                                                          false, &s);
                        if (r >= 0)
                                r = pgd_grants_insert_prepared(&prepared, &n_prepared,
                                                               &cap_prepared, sbdf, s, false);
                        if (r == -EEXIST)
                                r = pgd_grants_bad(why, "prepared %zu: device %s is listed twice",
                                                   idx, pg_bdf_format(sbdf, bdf));
                        if (r < 0)
                                break;
                        for (size_t k = 0; k < n_prepared; k++)
                                if (prepared[k].sbdf == sbdf)
                                        prepared[k].identity = id;
                }
        }

        v = r >= 0 ? json_object_get(root, "tainted") : NULL;
        if (v && !json_is_array(v))
                r = pgd_grants_bad(why, "'tainted' must be an array, not %s",
                                   pgd_grants_type_name(v));
        else if (v) {
                const json_t *e;
                json_array_foreach(v, idx, e)
                {
                        char what[32], bdf[PG_BDF_MAX];
                        struct pgd_taint t = {};
                        uint32_t sbdf = 0;
                        snprintf(what, sizeof(what), "tainted %zu: ", idx);
                        if (!json_is_object(e)) {
                                r = pgd_grants_bad(why, "tainted %zu: must be an object, not %s",
                                                   idx, pgd_grants_type_name(e));
                                break;
                        }
                        r = pgd_grants_get_device(why, e, what, &sbdf);
                        if (r >= 0) {
                                _cleanup_(json_decrefp) json_t *rest = json_deep_copy(e);
                                if (!rest)
                                        return -ENOMEM;
                                json_object_del(rest, "device");
                                r = pgd_grants_parse_taint(why, rest, what, &t);
                        }
                        t.sbdf = sbdf;
                        if (r >= 0)
                                r = pgd_grants_insert_taint(&taints, &n_taints, &cap_taints, &t,
                                                            false);
                        if (r == -EEXIST)
                                r = pgd_grants_bad(why, "tainted %zu: device %s is listed twice",
                                                   idx, pg_bdf_format(sbdf, bdf));
                        if (r < 0)
                                break;
                }
        }

        if (r < 0)
                return r;

        free(g->grants);
        g->grants = TAKE_PTR(grants);
        g->n_grants = n_grants;
        g->cap_grants = cap_grants;
        free(g->prepared);
        g->prepared = TAKE_PTR(prepared);
        g->n_prepared = n_prepared;
        g->cap_prepared = cap_prepared;
        free(g->taints);
        g->taints = TAKE_PTR(taints);
        g->n_taints = n_taints;
        g->cap_taints = cap_taints;
        memcpy(g->snapshot_sum, want, sizeof(want));
        g->snapshot_size = len;
        return 0;
}

/* ---- serialising and committing ---- */

json_t *pgd_grants_grant_to_json(const struct pgd_grant *gr)
{
        char bdf[PG_BDF_MAX];
        json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I}", "device",
                              pg_bdf_format(gr->sbdf, bdf), "domid", (json_int_t)gr->domid,
                              "domain_uuid", gr->domain_uuid, "domain_name", gr->domain_name,
                              "client_uid", (json_int_t)gr->client_uid, "client_pid",
                              (json_int_t)gr->client_pid, "client_unit", gr->client_unit, "rule",
                              gr->rule, "rdm_policy", pg_policy_rdm_name(gr->rdm_policy), "time",
                              (json_int_t)gr->time);

        if (o && gr->identity.known &&
            json_object_set_new(o, "identity", pgd_grants_identity_to_json(&gr->identity)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* The snapshot's text and its checksum. */
int pgd_grants_snapshot_format(const struct pgd_grants *g, char **ret_text, size_t *ret_len,
                               char sum[static CHECKSUM_MAX])
{
        _cleanup_(json_decrefp) json_t *root = NULL, *grants = NULL, *prepared = NULL;
        char bdf[PG_BDF_MAX];
        size_t len;
        int r;

        grants = json_array();
        prepared = json_array();
        if (!grants || !prepared)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_grants; i++)
                if (json_array_append_new(grants, pgd_grants_grant_to_json(&g->grants[i])) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < g->n_prepared; i++) {
                json_t *p = json_pack("{s:s, s:s}", "device",
                                      pg_bdf_format(g->prepared[i].sbdf, bdf), "driver",
                                      g->prepared[i].driver);
                if (json_array_append_new(prepared, p) < 0)
                        return -ENOMEM;
                if (g->prepared[i].identity.known &&
                    json_object_set_new(p, "identity",
                                        pgd_grants_identity_to_json(&g->prepared[i].identity)) < 0)
                        return -ENOMEM;
        }
        root = json_pack("{s:i, s:O, s:O}", "format", PGD_GRANTS_FORMAT, "grants", grants,
                         "prepared", prepared);
        if (!root)
                return -ENOMEM;
        if (g->n_taints > 0) {
                json_t *tainted = json_array();
                if (!tainted || json_object_set_new(root, "tainted", tainted) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < g->n_taints; i++) {
                        const struct pgd_taint *t = &g->taints[i];
                        if (json_array_append_new(
                                    tainted,
                                    json_pack("{s:s, s:s, s:s, s:I}", "device",
                                              pg_bdf_format(t->sbdf, bdf), "domain_uuid",
                                              t->domain_uuid, "reason", t->reason, "time",
                                              (json_int_t)t->time)) < 0)
                                return -ENOMEM;
                }
        }
        /* A text file: it ends in a newline. */
        r = pgd_grants_seal(root, JSON_INDENT(2), sum, ret_text, &len);
        if (r < 0)
                return r;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int pgd_grants_format(const struct pgd_grants *g, char **ret_text, size_t *ret_len)
{
        char sum[CHECKSUM_MAX];

        return pgd_grants_snapshot_format(g, ret_text, ret_len, sum);
}
