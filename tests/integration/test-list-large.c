/* SPDX-License-Identifier: MIT */
/*
 * A list reply fits one wire message (at most 64 KiB) on a host of a
 * thousand assignable devices: the daemon leaves out assignable devices
 * first (then grants: tests/unit/ops), says "truncated": true and gives the
 * totals in "grant_count" and "assignable_count"; the CLI says how many it
 * did not show.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define N_EXTRA 1000

static struct itest t;

/* The extra devices: 8086 NICs on buses 0x20.., pciback, quarantined, a group each. */
static void extra_bdf(unsigned i, char buf[static 16])
{
        snprintf(buf, 16, "0000:%02x:%02x.%x", (0x20 + i / 64) & 0xffu, (i / 8) % 8, i % 8);
}

static void add_devices(json_t *host, void *userdata)
{
        json_t *devices = json_object_get(host, "devices");

        (void)userdata;
        for (unsigned i = 0; i < N_EXTRA; i++) {
                char bdf[16];

                extra_bdf(i, bdf);
                json_array_append_new(devices, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s}",
                                                         "bdf", bdf, "vendor", "0x8086", "device",
                                                         "0x10d3", "class", "0x020000", "driver",
                                                         "pciback", "group", (int)(1000 + i),
                                                         "reset", "flr", "assigned_to", "io"));
        }
}

/* The raw reply line's length, '\n' included. */
static size_t list_line(char **ret_line)
{
        struct itest_conn *c = itest_connect(&t);
        char *line = NULL;
        size_t n = 0;

        if (!c)
                return 0;
        const char req[] = "{\"op\": \"list\", \"id\": 1}\n";
        if (itest_send_raw(c, req, sizeof(req) - 1) == 0 && itest_recv_line(c, 10000, &line) == 0)
                n = strlen(line) + 1;
        itest_conn_close(c);
        *ret_line = line;
        return n;
}

/* "(N more not shown)" in the CLI's list output, for N. */
static bool cli_says_more(const char *out, long n)
{
        char want[64];

        snprintf(want, sizeof(want), "(%ld more not shown)\n", n);
        return out && strstr(out, want);
}

int main(void)
{
        char *line = NULL, *out = NULL, *err = NULL;
        json_t *reply, *r;
        size_t len;
        long total, shown;

        itest_init(&t, "list-large", false);
        CHECK_INTEQ(itest_host_edit(&t, add_devices, NULL), 0);
        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }
        r = itest_target(&t, "assign", "render-1", 0, DEV_GPU);
        CHECK_MSG(itest_ok(r), "assign: %s", itest_error(r));
        json_decref(r);

        /* too many assignable devices: all grants, as many devices as fit */
        len = list_line(&line);
        CHECK_MSG(len > 0 && len <= 64 * 1024, "list reply of %zu bytes", len);
        reply = line ? json_loads(line, 0, NULL) : NULL;
        free(line);
        CHECK_MSG(itest_ok(reply), "list: %s", itest_error(reply));
        CHECK(json_is_true(json_object_get(reply, "truncated")));
        CHECK_INTEQ(json_integer_value(json_object_get(reply, "grant_count")), 1);
        CHECK_INTEQ(json_array_size(json_object_get(reply, "grants")), 1);
        total = (long)json_integer_value(json_object_get(reply, "assignable_count"));
        shown = (long)json_array_size(json_object_get(reply, "assignable"));
        CHECK_MSG(total > N_EXTRA, "assignable_count %ld", total);
        CHECK_MSG(shown > 100 && shown < total, "%ld of %ld assignable devices shown", shown,
                  total);
        json_decref(reply);

        CHECK_INTEQ(ITEST_CLI(&t, &out, &err, "list"), 0);
        CHECK_MSG(cli_says_more(out, total - shown), "passguard list: %s", out ? out : "");
        free(out);
        free(err);

        CHECK(itest_alive(&t));
        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
