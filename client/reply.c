/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "pg-util.h"
#include "pg-wire.h"

/* An optional string member: absent or null is NULL; any other non-string is an error. */
static int optional_string(const json_t *obj, const char *key, const char **ret)
{
        json_t *v = json_object_get(obj, key);

        if (!v || json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return -EBADMSG;
        *ret = json_string_value(v);
        return 0;
}

int pg_wire_reply_decode(const json_t *reply, struct pg_wire_reply *ret, const char **ret_why)
{
        struct pg_wire_reply r = {};
        json_t *v;

        *ret_why = NULL;
        if (!json_is_object(reply)) {
                *ret_why = "reply is not a JSON object";
                return -EBADMSG;
        }
        v = json_object_get(reply, "id");
        if (!json_is_integer(v)) {
                *ret_why = "reply has no integer \"id\"";
                return -EBADMSG;
        }
        r.id = json_integer_value(v);
        v = json_object_get(reply, "ok");
        if (!json_is_boolean(v)) {
                *ret_why = "reply has no boolean \"ok\"";
                return -EBADMSG;
        }
        r.ok = json_is_true(v);
        if (!r.ok) {
                v = json_object_get(reply, "error");
                if (!json_is_string(v)) {
                        *ret_why = "refusal has no string \"error\"";
                        return -EBADMSG;
                }
                r.error = json_string_value(v);
                int code = pg_error_lookup(r.error);
                r.code = code > 0 ? code : PG_ERR_INTERNAL;
        }
        if (optional_string(reply, "message", &r.message) < 0 ||
            optional_string(reply, "check", &r.check) < 0 ||
            optional_string(reply, "rule", &r.rule) < 0) {
                *ret_why = "reply has a non-string \"message\", \"check\" or \"rule\"";
                return -EBADMSG;
        }
        *ret = r;
        return 0;
}
