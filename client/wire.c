/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pg-util.h"
#include "pg-wire.h"

/* Parse; on failure *ret_why is a static reason and jerr, when the JSON did not parse, says more. */
static int parse(const char *line, size_t len, json_t **ret, const char **ret_why,
                 json_error_t *jerr, bool *ret_json_error)
{
        json_t *v;

        *ret_why = NULL;
        *ret_json_error = false;
        if (len >= PG_WIRE_MAX_MESSAGE) {
                *ret_why = "message too long";
                return -EMSGSIZE;
        }
        if (memchr(line, '\0', len)) {
                *ret_why = "message contains a NUL byte";
                return -EBADMSG;
        }
        v = json_loadb(line, len, JSON_REJECT_DUPLICATES, jerr);
        if (!v) {
                *ret_json_error = true;
                *ret_why = strstr(jerr->text, "duplicate object key") ? "message has a duplicate key"
                                                                      : "message is not valid JSON";
                return -EBADMSG;
        }
        if (!json_is_object(v)) {
                json_decref(v);
                *ret_why = "message is not a JSON object";
                return -EBADMSG;
        }
        *ret = v;
        return 0;
}

int pg_wire_parse(const char *line, size_t len, json_t **ret, const char **ret_why)
{
        json_error_t jerr;
        bool json_error;

        return parse(line, len, ret, ret_why, &jerr, &json_error);
}

int pg_wire_parse_why(const char *line, size_t len, json_t **ret, char *why, size_t why_size)
{
        json_error_t jerr;
        const char *reason = NULL;
        bool json_error;
        int r;

        r = parse(line, len, ret, &reason, &jerr, &json_error);
        if (r >= 0 || r == -ENOMEM || why_size == 0)
                return r;
        if (!json_error) {
                snprintf(why, why_size, "%s", reason);
                return r;
        }
        /* jansson quotes the input near the error: keep it printable ASCII, and short. */
        char text[sizeof(jerr.text)];
        size_t n = 0;
        for (const char *p = jerr.text; *p && n + 1 < sizeof(text); p++)
                text[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
        text[n] = '\0';
        snprintf(why, why_size, "message is not valid JSON: %s (column %d)", text, jerr.column);
        return r;
}

int pg_wire_dump(const json_t *msg, char **ret, size_t *ret_len)
{
        char *s = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!s)
                return -ENOMEM;
        size_t n = strlen(s);
        if (n + 1 > PG_WIRE_MAX_MESSAGE) {
                free(s);
                return -EMSGSIZE;
        }
        char *t = realloc(s, n + 2);
        if (!t) {
                free(s);
                return -ENOMEM;
        }
        t[n] = '\n';
        t[n + 1] = '\0';
        *ret = t;
        *ret_len = n + 1;
        return 0;
}

int pg_wire_check_keys(const json_t *obj, const char *const *allowed, const char **ret_key)
{
        const char *key;
        json_t *value;

        json_object_foreach((json_t *)obj, key, value) {
                bool ok = false;
                for (const char *const *a = allowed; *a; a++)
                        if (streq(*a, key)) {
                                ok = true;
                                break;
                        }
                if (!ok) {
                        *ret_key = key;
                        return -EBADMSG;
                }
        }
        return 0;
}

json_t *pg_wire_error_reply(json_int_t id, int code, const char *message, int hv_errno,
                            const char *rule, const char *check)
{
        json_t *r = json_pack("{s:I, s:b, s:s, s:s}", "id", id, "ok", 0, "error",
                              pg_error_name(code) ?: "internal", "message",
                              message ?: pg_error_description(code));
        if (!r)
                return NULL;
        if (hv_errno > 0 && pg_errno_name(hv_errno))
                json_object_set_new(r, "errno", json_string(pg_errno_name(hv_errno)));
        if (rule)
                json_object_set_new(r, "rule", json_string(rule));
        if (check)
                json_object_set_new(r, "check", json_string(check));
        return r;
}
