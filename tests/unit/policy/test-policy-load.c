/* SPDX-License-Identifier: MIT */
/*
 * Loading policies: every rejection names the right line and says why, every
 * problem in a file is reported, and good policies load.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "pg-util.h"
#include "policy.h"

struct bad_case {
        const char *name;
        const char *text;
        int line;
        const char *message; /* substring */
};

#define CLIENTS "clients = ( { name = \"xl\"; uid = 0; } );\n"

static const struct bad_case bad_cases[] = {
        {"misspelt key on line 7",
         "version = 1;\n" CLIENTS "rules = (\n"
         "  { name = \"r1\";\n"
         "    action = \"allow\";\n"
         "    devices = (\n"
         "      { vendr = 0x10de; }\n"
         "    );\n"
         "  }\n"
         ");\n",
         7, "unknown setting 'vendr' in device matcher"},
        {"unknown top-level key", "version = 1;\nrulez = ();\n", 2,
         "unknown setting 'rulez' in policy"},
        {"unknown client key",
         "version = 1;\nclients = (\n { name = \"a\"; uid = 0;\n  pid = 4; }\n);\n", 4,
         "unknown setting 'pid' in client"},
        {"unknown rule key",
         "version = 1;\nrules = ( { name = \"r\"; action = \"deny\";\n  priority = 3; } );\n", 3,
         "unknown setting 'priority' in rule"},
        {"unknown domain matcher key",
         "version = 1;\nrules = ( { name = \"r\"; action = \"deny\";\n domains = (\n { nom = "
         "\"x\"; }\n ); } );\n",
         4, "unknown setting 'nom' in domain matcher"},
        {"unknown protected key", "version = 1;\nprotected = (\n { bus = 3; }\n);\n", 3,
         "unknown setting 'bus' in protected device matcher"},
        {"missing version", "rules = ();\n", 0, "missing required setting 'version'"},
        {"version 2", "version = 2;\n", 1, "unsupported policy version 2"},
        {"version as a string", "\nversion = \"1\";\n", 2, "'version' must be an integer"},
        {"empty file", "", 0, "the policy is empty"},
        {"comments only", "# nothing here\n// nor here\n", 0, "the policy is empty"},
        {"syntax error", "version = 1;\nclients = (\n  { name = \"x\"; uid = ; }\n);\n", 3,
         "syntax error"},
        {"duplicate setting in a group (libconfig)",
         "version = 1;\nclients = (\n  { name = \"a\";\n    uid = 0;\n    uid = 1; }\n);\n", 5,
         "duplicate setting"},
        {"duplicate top-level setting", "version = 1;\n\nversion = 1;\n", 3, "duplicate setting"},
        {"duplicate rule names",
         "version = 1;\nrules = (\n { name = \"a\"; action = \"deny\"; },\n"
         " { name = \"b\"; action = \"deny\"; },\n { name = \"a\"; action = \"allow\"; }\n);\n",
         5, "duplicate rule name 'a' (first on line 3)"},
        {"duplicate client names",
         "version = 1;\nclients = (\n { name = \"a\"; uid = 0; },\n { name = \"a\"; uid = 1; "
         "}\n);\n",
         4, "duplicate client name 'a' (first on line 3)"},
        {"bad bdf digit", "version = 1;\nprotected = ( { bdf = \"0000:00:1g.0\"; } );\n", 2,
         "invalid bdf '0000:00:1g.0'"},
        {"bdf slot over 0x1f", "version = 1;\nprotected = ( { bdf = \"00:20.0\"; } );\n", 2,
         "invalid bdf '00:20.0'"},
        {"bdf function 8", "version = 1;\nprotected = ( { bdf = \"00:1f.8\"; } );\n", 2,
         "invalid bdf"},
        {"bdf wildcard segment", "version = 1;\nprotected = ( { bdf = \"*:00:1f.0\"; } );\n", 2,
         "invalid bdf"},
        {"vendor over 0xffff",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n"
         "  devices = ( { vendor = 0x10000; } ); } );\n",
         3, "'vendor' value 0x10000 is out of range (0x0..0xffff)"},
        {"negative subsystem_vendor", "version = 1;\nprotected = ( { subsystem_vendor = -1; } );\n",
         2, "'subsystem_vendor' value -1 is out of range"},
        {"odd-length class", "version = 1;\nprotected = ( { class = \"0x030\"; } );\n", 2,
         "invalid class '0x030'"},
        {"class not hex", "version = 1;\nprotected = ( { class = \"zz\"; } );\n", 2,
         "invalid class 'zz'"},
        {"class as an integer", "version = 1;\nprotected = ( { class = 3; } );\n", 2,
         "'class' must be a string"},
        {"vendor as a float", "version = 1;\nprotected = ( { vendor = 1.5; } );\n", 2,
         "'vendor' must be an integer, not a float"},
        {"unknown domain type",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n domains = ( { type = "
         "\"hvn\"; } ); } );\n",
         3, "unknown domain type 'hvn'"},
        {"unknown reset",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n reset = \"sometimes\"; } "
         ");\n",
         3, "unknown reset 'sometimes'"},
        {"unknown rdm_policy",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n rdm_policy = \"loose\"; } "
         ");\n",
         3, "unknown rdm_policy 'loose'"},
        {"unknown action", "version = 1;\nrules = ( { name = \"r\";\n action = \"permit\"; } );\n",
         3, "unknown action 'permit'"},
        {"missing action", "version = 1;\nrules = (\n { name = \"r\"; }\n);\n", 3,
         "rule 'r' has no 'action'"},
        {"missing rule name", "version = 1;\nrules = (\n { action = \"deny\"; }\n);\n", 3,
         "rule without a 'name'"},
        {"limit below 1",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n max_devices_per_domain = "
         "0; } );\n",
         3, "'max_devices_per_domain' value 0 is out of range (1.."},
        {"unknown client in a rule",
         "version = 1;\n" CLIENTS "rules = ( { name = \"r1\"; action = \"allow\";\n"
         "  clients = [ \"xl\", \"libvirt\" ]; } );\n",
         4, "unknown client 'libvirt' in rule 'r1'"},
        {"unknown client in admins", "version = 1;\n" CLIENTS "admins = [ \"bob\" ];\n", 3,
         "unknown client 'bob' in admins"},
        {"nonexistent group",
         "version = 1;\nclients = (\n { name = \"g\";\n   group = \"pg-no-such-group\"; }\n);\n", 4,
         "group 'pg-no-such-group' does not exist"},
        {"nonexistent user",
         "version = 1;\nclients = ( { name = \"u\";\n uid = \"pg-no-such-user\"; } );\n", 3,
         "user 'pg-no-such-user' does not exist"},
        {"client without identity", "version = 1;\nclients = (\n { name = \"anyone\"; }\n);\n", 3,
         "client 'anyone' gives none of uid, gid, group or unit"},
        {"client without a name", "version = 1;\nclients = (\n { uid = 0; }\n);\n", 3,
         "client without a 'name'"},
        {"managed not a boolean",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n managed = \"yes\"; } );\n",
         3, "'managed' must be a boolean"},
        {"require_interrupt_remapping not a boolean",
         "version = 1;\nrequire_interrupt_remapping = 1;\n", 2,
         "'require_interrupt_remapping' must be a boolean"},
        {"empty device matcher",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n devices = ( {} ); } );\n",
         3, "empty device matcher would match every device"},
        {"empty domain matcher",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n domains = ( {} ); } );\n",
         3, "empty domain matcher would match every domain"},
        {"empty protected entry", "version = 1;\nprotected = (\n {}\n);\n", 3,
         "empty protected device matcher"},
        {"empty devices list",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n devices = (); } );\n", 3,
         "empty 'devices' in rule 'r' matches nothing"},
        {"empty clients list",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n clients = []; } );\n", 3,
         "empty 'clients' in rule 'r' matches no one"},
        {"bad uuid",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n domains = ( { uuid = "
         "\"5f0c1d2e\"; } ); } );\n",
         3, "invalid uuid '5f0c1d2e'"},
        {"domid reserved",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n domains = ( { domid = "
         "32752; } ); } );\n",
         3, "'domid' value 32752 is out of range (0..32751)"},
        {"rule named default",
         "version = 1;\nrules = (\n { name = \"default\"; action = \"allow\"; }\n);\n", 3,
         "rule name 'default' is reserved"},
        {"rules as a group", "version = 1;\nrules = { name = \"r\"; };\n", 2,
         "'rules' must be a list of groups"},
        {"devices as a group",
         "version = 1;\nrules = ( { name = \"r\"; action = \"allow\";\n devices = { vendor = 1; }; "
         "} );\n",
         3, "'devices' must be a list of groups"},
        {"uid that wraps in 32 bits",
         "version = 1;\nclients = ( { name = \"a\";\n uid = 4294967296; } );\n", 3,
         "integer 4294967296 does not fit 32 bits"},
        {"include", "version = 1;\n@include \"/etc/passwd\"\n", 2, "@include is not supported"},
        {"group as a number", "version = 1;\nclients = ( { name = \"a\";\n group = 0; } );\n", 3,
         "'group' must be a group name"},
        {"unit without a suffix",
         "version = 1;\nclients = ( { name = \"a\";\n unit = \"libvirtd\"; } );\n", 3,
         "invalid unit name 'libvirtd'"},
        {"admins as a string", "version = 1;\n" CLIENTS "admins = \"xl\";\n", 3,
         "'admins' must be a list of names"},
        {"admins with a number", "version = 1;\n" CLIENTS "admins = [ 0 ];\n", 3,
         "admins must name clients (strings)"},
        {"empty rule name", "version = 1;\nrules = ( {\n name = \"\"; action = \"deny\"; } );\n", 3,
         "'name' must not be empty"},
        {"line after a block comment",
         "version = 1;\n/* one\n two\n three */\nprotected = ( { class = \"0x1\"; } );\n", 5,
         "invalid class '0x1'"},
        {"negative uid", "version = 1;\nclients = ( { name = \"a\";\n uid = -1; } );\n", 3,
         "'uid' value -1 is out of range"},
};

static void dump_diags(const struct pg_policy_diags *d)
{
        pg_policy_diags_print(d, stderr);
}

static bool has_diag(const struct pg_policy_diags *d, int line, const char *message)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->v[i].line == line && strstr(d->v[i].message, message))
                        return true;
        return false;
}

static void test_bad_cases(void)
{
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                const struct bad_case *c = &bad_cases[i];
                struct pg_policy_diags d = {};
                struct pg_policy *p = NULL;

                int r = pg_policy_load_string(c->text, "bad.conf", &p, &d);
                CHECK_MSG(r == -EINVAL, "%s: returned %d", c->name, r);
                CHECK_MSG(!p, "%s: a policy came back", c->name);
                CHECK_MSG(d.n >= 1, "%s: no diagnostics", c->name);
                bool found = has_diag(&d, c->line, c->message);
                CHECK_MSG(found, "%s: no 'bad.conf:%d: ...%s...'", c->name, c->line, c->message);
                if (!found)
                        dump_diags(&d);
                for (size_t j = 0; j < d.n; j++)
                        CHECK_STREQ(d.v[j].file, "bad.conf");
                pg_policy_free(p);
                pg_policy_diags_clear(&d);
        }
}

/* Every problem of one file, in line order. */
static void test_all_errors_collected(void)
{
        static const char text[] = "version = 1;\n"                                       /* 1 */
                                   "clients = (\n"                                        /* 2 */
                                   "  { name = \"a\"; group = \"pg-no-such-group\"; },\n" /* 3 */
                                   "  { name = \"b\"; uid = 0; colour = \"red\"; }\n"     /* 4 */
                                   ");\n"                                                 /* 5 */
                                   "rules = (\n"                                          /* 6 */
                                   "  { name = \"r\"; action = \"allow\";\n"              /* 7 */
                                   "    devices = ( { vendor = 0x123456; },\n"            /* 8 */
                                   "                { class = \"0x1\"; } );\n"            /* 9 */
                                   "    reset = \"maybe\"; },\n"                          /* 10 */
                                   "  { name = \"r\"; action = \"deny\"; }\n"             /* 11 */
                                   ");\n";                                                /* 12 */
        static const struct {
                int line;
                const char *message;
        } want[] = {
                {3, "group 'pg-no-such-group' does not exist"},
                {4, "unknown setting 'colour' in client"},
                {8, "'vendor' value 0x123456 is out of range"},
                {9, "invalid class '0x1'"},
                {10, "unknown reset 'maybe'"},
                {11, "duplicate rule name 'r' (first on line 7)"},
        };
        struct pg_policy_diags d = {};
        struct pg_policy *p = NULL;

        CHECK_INTEQ(pg_policy_load_string(text, "multi.conf", &p, &d), -EINVAL);
        CHECK_INTEQ(d.n, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want) && i < d.n; i++) {
                CHECK_INTEQ(d.v[i].line, want[i].line);
                CHECK_MSG(strstr(d.v[i].message, want[i].message), "got '%s', want '%s'",
                          d.v[i].message, want[i].message);
        }

        /* The printed form is what users see. */
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        CHECK(f);
        if (f) {
                pg_policy_diags_print(&d, f);
                fclose(f);
                CHECK(strstr(out, "multi.conf:3: group 'pg-no-such-group' does not exist\n"));
                CHECK(strstr(out, "multi.conf:11: duplicate rule name 'r'"));
                free(out);
        }
        pg_policy_diags_clear(&d);
        CHECK_INTEQ(d.n, 0);
}

static const char *const good_cases[] = {
        "version = 1;\n",
        "version = 1;\nrequire_interrupt_remapping = false;\nclients = ();\nadmins = [];\n"
        "protected = ();\nrules = ();\n",
        "version = 1;\nclients = ( { name = \"r\"; uid = \"root\"; },\n"
        " { name = \"d\"; group = \"daemon\"; gid = 1; unit = \"x.service\"; } );\n"
        "admins = ( \"r\", \"d\" );\n",
        "version = 1;\nprotected = ( { bdf = \"00:1f.*\"; }, { bdf = \"0000:*:*.*\"; },\n"
        " { class = \"0X0C0330\"; }, { class = \"03\"; }, { vendor = 0x10deL; device = 0; } );\n",
        "version = 1;\nclients = ( { name = \"a\"; gid = 4; } );\nrules = (\n"
        " { name = \"everything\"; action = \"allow\"; clients = [\"a\"];\n"
        "   devices = ( { bdf = \"0000:03:00.0\"; vendor = 0x10de; device = 0x1eb8;\n"
        "     subsystem_vendor = 0x10de; subsystem_device = 0x1234; class = \"0x030200\"; } );\n"
        "   domains = ( { name = \"r?-*\"; domid = 5; uuid = "
        "\"5f0c1d2e-8a4b-4c6d-9e7f-0a1b2c3d4e5f\";"
        " type = \"pvh\"; } );\n"
        "   rdm_policy = \"relaxed\"; max_devices_per_domain = 1; reset = \"never\"; managed = "
        "true; }\n"
        ");\n",
};

static void test_good_cases(void)
{
        for (size_t i = 0; i < ELEMENTSOF(good_cases); i++) {
                struct pg_policy_diags d = {};
                struct pg_policy *p = NULL;
                int r = pg_policy_load_string(good_cases[i], "good.conf", &p, &d);
                CHECK_MSG(r == 0, "good case %zu: %d", i, r);
                CHECK_INTEQ(d.n, 0);
                if (r < 0)
                        dump_diags(&d);
                CHECK(p);
                if (p)
                        CHECK_STREQ(pg_policy_path(p), "good.conf");
                pg_policy_free(p);
                pg_policy_diags_clear(&d);
        }
}

static void test_accessors(void)
{
        struct pg_policy *p = NULL;
        CHECK_INTEQ(pg_policy_load_string(good_cases[4], "g.conf", &p, NULL), 0);
        if (!p)
                return;
        CHECK_INTEQ(pg_policy_n_rules(p), 1);
        CHECK_STREQ(pg_policy_rule_name(p, 0), "everything");
        CHECK(!pg_policy_rule_name(p, 1));
        CHECK(pg_policy_require_interrupt_remapping(p));
        pg_policy_free(p);

        CHECK_INTEQ(pg_policy_load_string(good_cases[1], "g.conf", &p, NULL), 0);
        if (p)
                CHECK(!pg_policy_require_interrupt_remapping(p));
        pg_policy_free(p);

        CHECK_STREQ(pg_policy_reset_name(PG_POLICY_RESET_IF_AVAILABLE), "if-available");
        CHECK_STREQ(pg_policy_rdm_name(PG_POLICY_RDM_RELAXED), "relaxed");
}

/* Files: the path names the problem; a missing file is -ENOENT. */
static void test_files(void)
{
        char dir[] = "/tmp/pg-policy-test-XXXXXX";
        char path[256];
        struct pg_policy_diags d = {};
        struct pg_policy *p = NULL;

        CHECK(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/policy.conf", dir);
        FILE *f = fopen(path, "w");
        CHECK(f);
        if (!f)
                return;
        fputs("version = 1;\nclients = ( { name = \"a\"; uid = 0; } );\nadmins = [ \"b\" ];\n", f);
        fclose(f);

        CHECK_INTEQ(pg_policy_load(path, &p, &d), -EINVAL);
        CHECK_INTEQ(d.n, 1);
        if (d.n == 1) {
                CHECK_STREQ(d.v[0].file, path);
                CHECK_INTEQ(d.v[0].line, 3);
                CHECK(strstr(d.v[0].message, "unknown client 'b' in admins"));
        }
        pg_policy_diags_clear(&d);

        f = fopen(path, "w");
        fputs("version = 1;\nclients = ( { name = \"a\"; uid = 0; } );\nadmins = [ \"a\" ];\n", f);
        fclose(f);
        CHECK_INTEQ(pg_policy_load(path, &p, &d), 0);
        CHECK_INTEQ(d.n, 0);
        CHECK(p && streq(pg_policy_path(p), path));
        p = pg_policy_free(p);

        /* A NUL byte is not silently the end of the file. */
        f = fopen(path, "w");
        fwrite("version = 1;\n\0rules = 5;\n", 1, 26, f);
        fclose(f);
        CHECK_INTEQ(pg_policy_load(path, &p, &d), -EINVAL);
        CHECK(has_diag(&d, 2, "NUL byte"));
        pg_policy_diags_clear(&d);

        unlink(path);
        CHECK_INTEQ(pg_policy_load(path, &p, &d), -ENOENT);
        CHECK(!p);
        CHECK_INTEQ(d.n, 1);
        if (d.n == 1) {
                CHECK_STREQ(d.v[0].file, path);
                CHECK_INTEQ(d.v[0].line, 0);
                CHECK(strstr(d.v[0].message, "No such file"));
        }
        pg_policy_diags_clear(&d);

        CHECK_INTEQ(pg_policy_load(dir, &p, &d), -EISDIR);
        CHECK(d.n == 1);
        pg_policy_diags_clear(&d);
        rmdir(dir);
}

/* The shipped examples are valid. */
static void test_examples(void)
{
        static const char *const names[] = {"policy.conf", "demo.conf"};

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char path[4096];
                struct pg_policy_diags d = {};
                struct pg_policy *p = NULL;
                snprintf(path, sizeof(path), "%s/%s", POLICY_EXAMPLES, names[i]);
                int r = pg_policy_load(path, &p, &d);
                CHECK_MSG(r == 0, "%s: %d", path, r);
                if (r < 0)
                        dump_diags(&d);
                CHECK(p && pg_policy_n_rules(p) >= 2);
                pg_policy_free(p);
                pg_policy_diags_clear(&d);
        }
}

int main(void)
{
        test_bad_cases();
        test_all_errors_collected();
        test_good_cases();
        test_accessors();
        test_files();
        test_examples();
        printf("%zu bad cases, %zu good cases\n", ELEMENTSOF(bad_cases) + 1,
               ELEMENTSOF(good_cases));
        return harness_exit();
}
