/* SPDX-License-Identifier: MIT */
/* pg-wire: the error table, PCI addresses, strict message parsing and replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "passguard.h"
#include "pg-wire.h"

static const char *const wire_names[PG_ERR_MAX + 1] = {
        [PG_ERR_BAD_REQUEST] = "bad-request",
        [PG_ERR_UNSUPPORTED_VERSION] = "unsupported-version",
        [PG_ERR_NOT_AUTHORIZED] = "not-authorized",
        [PG_ERR_NO_IOMMU] = "no-iommu",
        [PG_ERR_NO_INTERRUPT_REMAPPING] = "no-interrupt-remapping",
        [PG_ERR_NO_SUCH_DOMAIN] = "no-such-domain",
        [PG_ERR_DOMAIN_DYING] = "domain-dying",
        [PG_ERR_NO_SUCH_DEVICE] = "no-such-device",
        [PG_ERR_PROTECTED_DEVICE] = "protected-device",
        [PG_ERR_NOT_ASSIGNABLE] = "not-assignable",
        [PG_ERR_GROUP_CONFLICT] = "group-conflict",
        [PG_ERR_BUSY] = "busy",
        [PG_ERR_DOMAIN_NO_IOMMU] = "domain-no-iommu",
        [PG_ERR_DENIED] = "denied",
        [PG_ERR_LIMIT_REACHED] = "limit-reached",
        [PG_ERR_RESET_FAILED] = "reset-failed",
        [PG_ERR_NOT_ASSIGNED] = "not-assigned",
        [PG_ERR_HYPERVISOR_ERROR] = "hypervisor-error",
        [PG_ERR_STATE_ERROR] = "state-error",
        [PG_ERR_POLICY_INVALID] = "policy-invalid",
        [PG_ERR_INTERNAL] = "internal",
        [PG_ERR_IDENTITY_CHANGED] = "identity-changed",
};

static void test_error_table(void)
{
        /* The names are the wire contract of DESIGN.md, code for code. */
        for (int i = 1; i <= PG_ERR_MAX; i++) {
                CHECK_STREQ(pg_error_name(i), wire_names[i]);
                CHECK_INTEQ(pg_error_lookup(wire_names[i]), i);
                CHECK(pg_error_errno(i) > 0);
                CHECK(strlen(pg_error_description(i)) > 0);
                for (int j = 1; j < i; j++)
                        CHECK_MSG(strcmp(pg_error_name(i), pg_error_name(j)) != 0,
                                  "codes %d and %d share a name", i, j);
        }
        CHECK(pg_error_name(0) == NULL);
        CHECK(pg_error_name(PG_ERR_MAX + 1) == NULL);
        CHECK(pg_error_name(-1) == NULL);
        CHECK_INTEQ(pg_error_lookup("no-such-error"), -EINVAL);
        CHECK_INTEQ(pg_error_lookup("BUSY"), -EINVAL);
        CHECK_INTEQ(pg_error_lookup(NULL), -EINVAL);
        CHECK_INTEQ(pg_error_errno(PG_ERR_BUSY), EBUSY);
        CHECK_INTEQ(pg_error_errno(PG_ERR_NO_IOMMU), EOPNOTSUPP);

        CHECK_STREQ(pg_errno_name(EBUSY), "EBUSY");
        CHECK_INTEQ(pg_errno_lookup("EOPNOTSUPP"), EOPNOTSUPP);
        CHECK_INTEQ(pg_errno_lookup("ENOTANERRNO"), -EINVAL);
        CHECK(pg_errno_name(0) == NULL);
}

static void test_bdf(void)
{
        static const struct {
                const char *in;
                const char *out;
        } good[] = {
                { "0000:03:00.0", "0000:03:00.0" }, { "03:00.0", "0000:03:00.0" },
                { "ABCD:EF:1f.7", "abcd:ef:1f.7" }, { "ffff:ff:1f.7", "ffff:ff:1f.7" },
                { "00:00.0", "0000:00:00.0" },
        };
        static const char *const bad[] = {
                "",           "0",            "03:00",         "03:00.8",      "03:20.0",
                "0000:03:00", "0000:03:00.0 ", " 0000:03:00.0", "00000:03:00.0", "0000:3:00.0",
                "0000-03:00.0", "0000:03:00:0", "000g:03:00.0", "03:00.0\n",    "+3:00.0",
                "0000:03:00.00",
        };
        char buf[PG_BDF_MAX];
        uint32_t sbdf;

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                sbdf = 0xdeadbeef;
                CHECK_INTEQ(pg_bdf_parse(good[i].in, &sbdf), 0);
                CHECK_STREQ(pg_bdf_format(sbdf, buf), good[i].out);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                sbdf = 42;
                CHECK_MSG(pg_bdf_parse(bad[i], &sbdf) == -EINVAL, "accepted \"%s\"", bad[i]);
                CHECK_INTEQ(sbdf, 42); /* untouched on failure */
        }
        CHECK_INTEQ(pg_bdf_parse(NULL, &sbdf), -EINVAL);

        CHECK_INTEQ(pg_bdf_parse("0001:02:03.4", &sbdf), 0);
        CHECK_INTEQ(sbdf, PG_SBDF(1, 2, 3, 4));
        CHECK_INTEQ(PG_SBDF_SEG(sbdf), 1);
        CHECK_INTEQ(PG_SBDF_BUS(sbdf), 2);
        CHECK_INTEQ(PG_SBDF_DEV(sbdf), 3);
        CHECK_INTEQ(PG_SBDF_FN(sbdf), 4);
}

static int parse(const char *s, json_t **ret, const char **why)
{
        return pg_wire_parse(s, strlen(s), ret, why);
}

static void test_parse(void)
{
        const char *why;
        json_t *v = NULL;

        CHECK_INTEQ(parse("{\"op\":\"status\",\"id\":1}", &v, &why), 0);
        CHECK(json_is_object(v));
        CHECK_STREQ(json_string_value(json_object_get(v, "op")), "status");
        json_decref(v);

        static const char *const bad[] = {
                "{\"op\":\"a\",\"op\":\"b\"}", /* duplicate key */
                "[1,2]",                       /* not an object */
                "\"op\"",
                "42",
                "null",
                "",
                "{\"op\":\"a\"} x",            /* trailing garbage */
                "{\"op\":\"a\"}{\"op\":\"b\"}", /* two objects */
                "{\"op\":",
                "{'op':'a'}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                v = NULL;
                why = NULL;
                CHECK_MSG(parse(bad[i], &v, &why) == -EBADMSG, "accepted %s", bad[i]);
                CHECK(v == NULL);
                CHECK(why != NULL);
        }

        /* A NUL byte inside the line, even in a string. */
        static const char nul[] = "{\"op\":\"a\0b\"}";
        v = NULL;
        CHECK_INTEQ(pg_wire_parse(nul, sizeof(nul) - 1, &v, &why), -EBADMSG);
        CHECK(v == NULL);
        CHECK(why && strstr(why, "NUL"));

        /* Oversize: exactly the limit (the '\n' would not fit) is refused before parsing. */
        size_t n = PG_WIRE_MAX_MESSAGE;
        char *big = malloc(n + 1);
        memset(big, ' ', n);
        big[0] = '{';
        big[n - 1] = '}';
        big[n] = '\0';
        v = NULL;
        CHECK_INTEQ(pg_wire_parse(big, n, &v, &why), -EMSGSIZE);
        CHECK(v == NULL);
        /* One byte less fits. */
        CHECK_INTEQ(pg_wire_parse(big + 1, n - 1, &v, &why), -EBADMSG); /* "  ...}" */
        big[1] = '{';
        CHECK_INTEQ(pg_wire_parse(big + 1, n - 1, &v, &why), 0);
        json_decref(v);
        free(big);
}

static void test_dump(void)
{
        char *out = NULL;
        size_t len = 0;

        json_t *m = json_pack("{s:s, s:I}", "op", "status", "id", (json_int_t)7);
        CHECK_INTEQ(pg_wire_dump(m, &out, &len), 0);
        CHECK_STREQ(out, "{\"op\":\"status\",\"id\":7}\n");
        CHECK_INTEQ(len, strlen(out));
        free(out);
        json_decref(m);

        /* Non-ASCII is escaped, so a message never holds a raw byte >= 0x80 or a newline. */
        m = json_pack("{s:s}", "message", "caf\xc3\xa9\nline");
        CHECK_INTEQ(pg_wire_dump(m, &out, &len), 0);
        CHECK(strchr(out, '\n') == out + len - 1);
        for (size_t i = 0; i < len; i++)
                CHECK_MSG((unsigned char)out[i] < 0x80, "byte %zu is 0x%x", i, out[i]);
        free(out);
        json_decref(m);

        /* Size limit: a message whose line (with '\n') is the limit fits; one more does not. */
        size_t overhead = strlen("{\"s\":\"\"}\n");
        char *s = malloc(PG_WIRE_MAX_MESSAGE);
        memset(s, 'a', PG_WIRE_MAX_MESSAGE - overhead);
        s[PG_WIRE_MAX_MESSAGE - overhead] = '\0';
        m = json_pack("{s:s}", "s", s);
        out = NULL;
        CHECK_INTEQ(pg_wire_dump(m, &out, &len), 0);
        CHECK_INTEQ(len, PG_WIRE_MAX_MESSAGE);
        json_t *back = NULL;
        const char *why;
        CHECK_INTEQ(pg_wire_parse(out, len - 1, &back, &why), 0);
        json_decref(back);
        free(out);
        json_decref(m);

        s[PG_WIRE_MAX_MESSAGE - overhead] = 'a';
        s[PG_WIRE_MAX_MESSAGE - overhead + 1] = '\0';
        m = json_pack("{s:s}", "s", s);
        out = NULL;
        CHECK_INTEQ(pg_wire_dump(m, &out, &len), -EMSGSIZE);
        CHECK(out == NULL);
        json_decref(m);
        free(s);
}

static void test_check_keys(void)
{
        static const char *const allowed[] = { "op", "id", "device", NULL };
        const char *key = NULL;

        json_t *m = json_pack("{s:s, s:i, s:s}", "op", "owner", "id", 1, "device", "03:00.0");
        CHECK_INTEQ(pg_wire_check_keys(m, allowed, &key), 0);
        json_object_set_new(m, "domid", json_integer(3));
        CHECK_INTEQ(pg_wire_check_keys(m, allowed, &key), -EBADMSG);
        CHECK_STREQ(key, "domid");
        json_decref(m);
}

static void test_error_reply(void)
{
        json_t *r = pg_wire_error_reply(9, PG_ERR_BUSY, "device 0000:03:00.0 is assigned", EBUSY,
                                        "gpus", "free");
        struct pg_wire_reply rep;
        const char *why;

        CHECK(r != NULL);
        CHECK_INTEQ(pg_wire_reply_decode(r, &rep, &why), 0);
        CHECK_INTEQ(rep.id, 9);
        CHECK(!rep.ok);
        CHECK_INTEQ(rep.code, PG_ERR_BUSY);
        CHECK_STREQ(rep.error, "busy");
        CHECK_STREQ(rep.message, "device 0000:03:00.0 is assigned");
        CHECK_STREQ(rep.check, "free");
        CHECK_STREQ(rep.rule, "gpus");
        CHECK_STREQ(json_string_value(json_object_get(r, "errno")), "EBUSY");
        json_decref(r);

        /* A client's bytes quoted and cut mid-character: still a reply, the bytes as '?'. */
        r = pg_wire_error_reply(1, PG_ERR_BAD_REQUEST, "unknown op 'caf\xc3'", 0, NULL, "request");
        CHECK(r != NULL);
        CHECK_STREQ(json_string_value(json_object_get(r, "message")), "unknown op 'caf?'");
        CHECK_STREQ(json_string_value(json_object_get(r, "check")), "request");
        json_decref(r);
}

/* Domain ids, UUIDs and types, as every part of passguard reads them (domain.c). */
static void test_domain(void)
{
        char uuid[PG_UUID_MAX];
        enum pg_domain_type t;

        CHECK(!pg_domid_is_guest(PG_DOMID_DOM0));
        CHECK(pg_domid_is_guest(1));
        CHECK(pg_domid_is_guest(PG_DOMID_GUEST_MAX));
        CHECK(!pg_domid_is_guest(PG_DOMID_FIRST_RESERVED));
        CHECK(!pg_domid_is_guest(PG_DOMID_IO));
        CHECK(!pg_domid_is_guest(PG_DOMID_XEN));
        CHECK(!pg_domid_is_guest(PG_DOMID_INVALID));
        CHECK(!pg_domid_is_guest(PG_DOMID_WIRE_MAX));

        CHECK_INTEQ(pg_uuid_normalize("5F0C1D2E-8A4B-4C6D-9E7F-0A1B2C3D4E5F", uuid), 0);
        CHECK_STREQ(uuid, "5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f");
        CHECK_INTEQ(pg_uuid_normalize("5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5", uuid), -EINVAL);
        CHECK_INTEQ(pg_uuid_normalize("5f0c1d2e_8a4b-4c6d-9e7f-0a1b2c3d4e5f", uuid), -EINVAL);
        CHECK_INTEQ(pg_uuid_normalize("5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5g", uuid), -EINVAL);
        CHECK_INTEQ(pg_uuid_normalize(NULL, uuid), -EINVAL);

        CHECK_INTEQ(pg_domain_type_parse("hvm", &t), 0);
        CHECK_INTEQ(t, PG_DOMAIN_HVM);
        CHECK_INTEQ(pg_domain_type_parse("pvh", &t), 0);
        CHECK_INTEQ(t, PG_DOMAIN_PVH);
        CHECK_INTEQ(pg_domain_type_parse("pv", &t), 0);
        CHECK_INTEQ(t, PG_DOMAIN_PV);
        CHECK_INTEQ(pg_domain_type_parse("HVM", &t), -EINVAL);
        CHECK_INTEQ(pg_domain_type_parse(NULL, &t), -EINVAL);
        CHECK_STREQ(pg_domain_type_name(PG_DOMAIN_PVH), "pvh");
}

/* The decoded strings point into the parsed object, which stays alive until the next call. */
static int decode(const char *text, struct pg_wire_reply *rep)
{
        static json_t *v;
        const char *why;

        json_decref(v);
        v = NULL;
        if (!text)
                return 0;
        int r = parse(text, &v, &why);
        if (r < 0)
                return r;
        r = pg_wire_reply_decode(v, rep, &why);
        if (r < 0)
                CHECK(why != NULL);
        return r;
}

static void test_reply_decode(void)
{
        struct pg_wire_reply rep;

        CHECK_INTEQ(decode("{\"id\":3,\"ok\":true,\"grants\":[]}", &rep), 0);
        CHECK_INTEQ(rep.id, 3);
        CHECK(rep.ok);
        CHECK_INTEQ(rep.code, 0);

        /* An error name this library does not know is "internal", never success. */
        CHECK_INTEQ(decode("{\"id\":1,\"ok\":false,\"error\":\"from-the-future\"}", &rep), 0);
        CHECK(!rep.ok);
        CHECK_INTEQ(rep.code, PG_ERR_INTERNAL);
        CHECK_STREQ(rep.error, "from-the-future");
        CHECK(rep.message == NULL && rep.check == NULL && rep.rule == NULL);

        static const char *const bad[] = {
                "{\"ok\":true}",                         /* no id */
                "{\"id\":\"1\",\"ok\":true}",            /* id not an integer */
                "{\"id\":1.5,\"ok\":true}",
                "{\"id\":1}",                            /* no ok */
                "{\"id\":1,\"ok\":1}",                   /* ok not a boolean */
                "{\"id\":1,\"ok\":false}",               /* refusal without error */
                "{\"id\":1,\"ok\":false,\"error\":12}",  /* error as a number */
                "{\"id\":1,\"ok\":false,\"error\":\"busy\",\"message\":5}",
                "{\"id\":1,\"ok\":false,\"error\":\"busy\",\"rule\":[]}",
                "{\"id\":1,\"ok\":false,\"error\":\"busy\",\"check\":{}}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                rep.id = 77;
                CHECK_MSG(decode(bad[i], &rep) == -EBADMSG, "accepted %s", bad[i]);
                CHECK_INTEQ(rep.id, 77);
        }
        decode(NULL, &rep);
}

int main(void)
{
        test_error_table();
        test_bdf();
        test_parse();
        test_dump();
        test_check_keys();
        test_error_reply();
        test_domain();
        test_reply_decode();
        return harness_exit();
}
