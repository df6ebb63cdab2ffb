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

/*
 * Serialising: compact JSON, every byte ASCII (non-ASCII characters as \uXXXX,
 * as jansson's JSON_ENSURE_ASCII does), in one pass into one buffer. A reply
 * goes out on every request; jansson's own dumper writes it a character at a
 * time through a callback, which cost a daemon's explain more than its checks.
 */
struct out {
        char *buf;
        size_t len, cap;
        bool failed;   /* out of memory, or past the limit */
        bool too_long; /* past the limit */
};

static void out_reserve(struct out *o, size_t n)
{
        size_t cap;
        char *p;

        if (o->failed || o->len + n <= o->cap)
                return;
        if (o->len + n > PG_WIRE_MAX_MESSAGE + 16) {
                o->failed = o->too_long = true; /* too long for the wire: no need to go on */
                return;
        }
        cap = o->cap ? o->cap : 512;
        while (cap < o->len + n)
                cap *= 2;
        p = realloc(o->buf, cap);
        if (!p) {
                o->failed = true;
                return;
        }
        o->buf = p;
        o->cap = cap;
}

static void out_put(struct out *o, const char *s, size_t n)
{
        out_reserve(o, n);
        if (o->failed)
                return;
        memcpy(o->buf + o->len, s, n);
        o->len += n;
}

static void out_char(struct out *o, char c)
{
        out_put(o, &c, 1);
}

static void out_u16(struct out *o, unsigned v)
{
        static const char hex[] = "0123456789abcdef";
        char e[6] = "\\u";

        e[2] = hex[(v >> 12) & 15];
        e[3] = hex[(v >> 8) & 15];
        e[4] = hex[(v >> 4) & 15];
        e[5] = hex[v & 15];

        out_put(o, e, sizeof(e));
}

/* A JSON string of s (valid UTF-8, as jansson's strings are), in ASCII. */
static void out_string(struct out *o, const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s, *end = p + n;

        out_char(o, '"');
        while (p < end) {
                const unsigned char *run = p;
                while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
                        p++;
                out_put(o, (const char *)run, (size_t)(p - run));
                if (p >= end)
                        break;
                unsigned c = *p;
                if (c == '"' || c == '\\') {
                        char e[2] = {'\\', (char)c};
                        out_put(o, e, 2);
                        p++;
                } else if (c < 0x20) {
                        const char *e = c == '\n'   ? "\\n"
                                        : c == '\t' ? "\\t"
                                        : c == '\r' ? "\\r"
                                        : c == '\b' ? "\\b"
                                        : c == '\f' ? "\\f"
                                                    : NULL;
                        if (e)
                                out_put(o, e, 2);
                        else
                                out_u16(o, c);
                        p++;
                } else {
                        /* A UTF-8 sequence: its code point, as one or two \u escapes. */
                        unsigned cp, more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
                        cp = c & (0x3f >> more);
                        for (unsigned i = 1; i <= more && p + i < end; i++)
                                cp = cp << 6 | (p[i] & 0x3f);
                        p += 1 + more;
                        if (cp >= 0x10000) {
                                cp -= 0x10000;
                                out_u16(o, 0xd800 | (cp >> 10));
                                out_u16(o, 0xdc00 | (cp & 0x3ff));
                        } else
                                out_u16(o, cp);
                }
        }
        out_char(o, '"');
}

static void out_value(struct out *o, const json_t *v)
{
        char num[64];
        const char *key;
        size_t i, n;
        json_t *e;
        bool first = true;

        if (o->failed)
                return;
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                out_char(o, '{');
                json_object_foreach((json_t *)v, key, e)
                {
                        if (!first)
                                out_char(o, ',');
                        first = false;
                        out_string(o, key, strlen(key));
                        out_char(o, ':');
                        out_value(o, e);
                }
                out_char(o, '}');
                break;
        case JSON_ARRAY:
                out_char(o, '[');
                json_array_foreach(v, i, e)
                {
                        if (i > 0)
                                out_char(o, ',');
                        out_value(o, e);
                }
                out_char(o, ']');
                break;
        case JSON_STRING:
                out_string(o, json_string_value(v), json_string_length(v));
                break;
        case JSON_INTEGER:
                n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                                     json_integer_value(v));
                out_put(o, num, n);
                break;
        case JSON_REAL:
                /* As jansson: 17 significant digits, and always recognisable as a real. */
                n = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(v));
                if (!strpbrk(num, ".eE") && n + 2 < sizeof(num)) {
                        memcpy(num + n, ".0", 3);
                        n += 2;
                }
                out_put(o, num, n);
                break;
        case JSON_TRUE:
                out_put(o, "true", 4);
                break;
        case JSON_FALSE:
                out_put(o, "false", 5);
                break;
        case JSON_NULL:
                out_put(o, "null", 4);
                break;
        }
}

int pg_wire_dump(const json_t *msg, char **ret, size_t *ret_len)
{
        struct out o = {};

        out_value(&o, msg);
        out_put(&o, "\n", 2); /* the line's end, and a NUL after it */
        if (o.failed) {
                free(o.buf);
                return o.too_long ? -EMSGSIZE : -ENOMEM;
        }
        o.len--; /* the NUL is not part of the line */
        if (o.len > PG_WIRE_MAX_MESSAGE) {
                free(o.buf);
                return -EMSGSIZE;
        }
        *ret = o.buf;
        *ret_len = o.len;
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

/*
 * A string for a reply, always: text that is not valid UTF-8 (a client's
 * bytes quoted in a message and cut in the middle of a character) has its
 * non-ASCII bytes replaced by '?', rather than no reply at all.
 */
json_t *pg_wire_string(const char *s)
{
        json_t *j = json_string(s);
        char *copy;

        if (j || !s)
                return j;
        copy = strdup(s);
        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if ((unsigned char)*p >= 0x80)
                        *p = '?';
        j = json_string(copy);
        free(copy);
        return j;
}

json_t *pg_wire_error_reply(json_int_t id, int code, const char *message, int hv_errno,
                            const char *rule, const char *check)
{
        json_t *r = json_pack("{s:I, s:b, s:s, s:o}", "id", id, "ok", 0, "error",
                              pg_error_name(code) ?: "internal", "message",
                              pg_wire_string(message ?: pg_error_description(code)));
        if (!r)
                return NULL;
        if (hv_errno > 0 && pg_errno_name(hv_errno))
                json_object_set_new(r, "errno", json_string(pg_errno_name(hv_errno)));
        if (rule)
                json_object_set_new(r, "rule", pg_wire_string(rule));
        if (check)
                json_object_set_new(r, "check", json_string(check));
        return r;
}
