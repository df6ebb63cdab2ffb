/* SPDX-License-Identifier: MIT */
/*
 * libpassguard against a real daemon: connect, status, assign (the grant's
 * accessors), owner, list, explain, refusals (positive PG_ERR_* codes with
 * message, check and rule), release, prepare/unprepare, reload, raw calls;
 * LIBPASSGUARD_2's several devices at once and the event stream (pg_watch,
 * polled on its fd); and what a caller sees when the daemon is gone.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "passguard.h"

/* The next event on a watching handle, waiting on its fd at most timeout_ms; NULL when none came.
 */
static json_t *next_event(struct pg *w, int timeout_ms)
{
        int64_t end = itest_now_ms() + timeout_ms;

        for (;;) {
                char *line = NULL;
                int r = pg_watch_next(w, &line);
                if (r == 0) {
                        json_t *e = json_loads(line, 0, NULL);
                        free(line);
                        return e;
                }
                if (r != -EAGAIN || itest_now_ms() >= end)
                        return NULL;
                struct pollfd p = {.fd = pg_watch_fd(w), .events = POLLIN};
                (void)poll(&p, 1, (int)(end - itest_now_ms()));
        }
}

/* LIBPASSGUARD_2: several devices at once, and the event stream. */
static void test_v2(struct itest *t, struct pg *pg)
{
        const char *const pair[] = {DEV_NIC, DEV_SPARE}, *const protected[] = {DEV_NIC, DEV_SATA};
        struct pg_grant **grants = NULL;
        struct pg *w = NULL;
        char *json = NULL, buf[32];
        int allow = -1;
        json_t *e;

        CHECK_INTEQ(pg_connect(t->sock, &w), 0);
        if (!w)
                return;
        CHECK_INTEQ(pg_watch_fd(w), -ENOTCONN);
        CHECK_INTEQ(pg_watch(w), 0);
        CHECK(pg_watch_fd(w) >= 0);
        CHECK_INTEQ(pg_status(w, &json), -EBUSY); /* a watching handle takes no request */

        CHECK_INTEQ(pg_explain_many(pg, "net-pv", 0, pair, 2, 0, &allow, &json), 0);
        CHECK_INTEQ(allow, 1);
        free(json);
        json = NULL;
        CHECK_INTEQ(pg_assign_many(pg, "net-pv", 0, pair, 2, 0, &grants), 0);
        CHECK(grants && grants[0] && grants[1] && !grants[2]);
        if (grants && grants[0] && grants[1]) {
                CHECK_STREQ(pg_grant_device(grants[0]), DEV_NIC);
                CHECK_STREQ(pg_grant_device(grants[1]), DEV_SPARE);
                CHECK_INTEQ(pg_grant_domid(grants[1]), DOM_NETPV);
        }
        grants = pg_grants_free(grants);
        CHECK_STREQ(itest_owner(t, DEV_SPARE, buf), "7");
        /* The stream: one grant event per device, in order. */
        for (size_t i = 0; i < 2; i++) {
                e = next_event(w, 5000);
                CHECK_MSG(e != NULL, "no grant event %zu", i);
                CHECK_STREQ(json_string_value(json_object_get(e, "event")), "grant");
                CHECK_STREQ(json_string_value(json_object_get(e, "device")), pair[i]);
                json_decref(e);
        }
        for (size_t i = 0; i < 2; i++)
                CHECK_INTEQ(pg_release(pg, "net-pv", 0, pair[i]), 0);

        /* A refusal names the device, and changes nothing. */
        CHECK_INTEQ(pg_assign_many(pg, "net-pv", 0, protected, 2, 0, &grants),
                    PG_ERR_PROTECTED_DEVICE);
        CHECK(grants == NULL);
        CHECK_STREQ(pg_last_device(pg), DEV_SATA);
        CHECK_STREQ(pg_last_check(pg), "protected");
        CHECK_STREQ(itest_owner(t, DEV_NIC, buf), "io");
        CHECK_INTEQ(pg_explain_many(pg, "net-pv", 0, protected, 2, 0, &allow, &json), 0);
        CHECK_INTEQ(allow, 0);
        free(json);
        CHECK_INTEQ(pg_untaint(pg, DEV_NIC), 0); /* not tainted: 0 too */
        CHECK_INTEQ(pg_assign_many(pg, "net-pv", 0, pair, 0, 0, NULL), -EINVAL);

        /* The releases and the refusal came on the stream too. */
        for (size_t i = 0; i < 2; i++) {
                e = next_event(w, 5000);
                CHECK_STREQ(json_string_value(json_object_get(e, "event")), "release");
                json_decref(e);
        }
        e = next_event(w, 5000);
        CHECK_STREQ(json_string_value(json_object_get(e, "event")), "refuse");
        CHECK_STREQ(json_string_value(json_object_get(e, "device")), DEV_SATA);
        json_decref(e);
        w = pg_close(w);
}

int main(void)
{
        struct itest t;
        struct pg *pg = NULL;
        struct pg_grant *g = NULL;
        char *json = NULL, buf[32];
        int allow = -1, assigned = -1, granted = -1;
        uint32_t domid = 0;

        itest_init(&t, "libpassguard", false);

        /* no daemon yet */
        CHECK(pg_connect(t.sock, &pg) < 0);
        CHECK(!pg);

        if (itest_start(&t, NULL, NULL) < 0) {
                itest_log_dump(&t);
                CHECK_MSG(false, "passguardd did not start");
                return harness_exit();
        }
        CHECK_INTEQ(pg_connect(t.sock, &pg), 0);
        CHECK(pg);
        if (!pg)
                return harness_exit();

        CHECK_INTEQ(pg_status(pg, &json), 0);
        json_t *j = json ? json_loads(json, 0, NULL) : NULL;
        CHECK_STREQ(json_string_value(json_object_get(j, "backend")), "sim");
        CHECK(json_is_true(json_object_get(j, "iommu")));
        CHECK_INTEQ(json_integer_value(json_object_get(j, "grants")), 0);
        json_decref(j);
        free(json);
        json = NULL;

        /* explain, then assign by name */
        CHECK_INTEQ(pg_explain(pg, "render-1", 0, "03:00.0", 0, &allow, &json), 0);
        CHECK_INTEQ(allow, 1);
        CHECK(json && strstr(json, "gpus-to-render"));
        free(json);
        json = NULL;
        CHECK_INTEQ(pg_assign(pg, "render-1", 0, "03:00.0", 0, &g), 0);
        CHECK(g);
        if (g) {
                CHECK_STREQ(pg_grant_device(g), DEV_GPU);
                CHECK_INTEQ(pg_grant_domid(g), DOM_RENDER1);
                CHECK_STREQ(pg_grant_domain_name(g), "render-1");
                CHECK_STREQ(pg_grant_domain_uuid(g), "5f0c1d2e-8a4b-4c6d-9e7f-000000000005");
                CHECK_STREQ(pg_grant_rule(g), "gpus-to-render");
                CHECK_STREQ(pg_grant_rdm_policy(g), "strict");
                g = pg_grant_free(g);
        }
        /* invariants 1 and 4: when the reply comes, the host and grants.json both have it */
        CHECK_STREQ(itest_owner(&t, DEV_GPU, buf), "5");
        json_t *store = itest_grants_load(&t);
        CHECK(store && itest_grants_find(store, DEV_GPU));
        json_decref(store);

        /* assign by domid */
        CHECK_INTEQ(pg_assign(pg, NULL, DOM_NETPV, DEV_NIC, 0, &g), 0);
        if (g) {
                CHECK_INTEQ(pg_grant_domid(g), DOM_NETPV);
                CHECK_STREQ(pg_grant_domain_name(g), "net-pv");
                g = pg_grant_free(g);
        }

        CHECK_INTEQ(pg_owner(pg, DEV_GPU, &assigned, &domid, &granted), 0);
        CHECK_INTEQ(assigned, 1);
        CHECK_INTEQ(domid, DOM_RENDER1);
        CHECK_INTEQ(granted, 1);
        CHECK_INTEQ(pg_owner(pg, DEV_SPARE, &assigned, &domid, &granted), 0);
        CHECK_INTEQ(assigned, 0);
        CHECK_INTEQ(granted, 0);

        CHECK_INTEQ(pg_list(pg, &json), 0);
        j = json ? json_loads(json, 0, NULL) : NULL;
        CHECK_INTEQ(json_array_size(json_object_get(j, "grants")), 2);
        CHECK(json_array_size(json_object_get(j, "assignable")) >= 1);
        json_decref(j);
        free(json);
        json = NULL;

        /* refusals: positive codes, with message, check and rule */
        CHECK_INTEQ(pg_explain(pg, "render-1", 0, DEV_GPU2, 0, &allow, NULL), 0);
        CHECK_INTEQ(allow, 0);
        int r = pg_assign(pg, "render-1", 0, DEV_GPU2, 0, &g);
        CHECK_INTEQ(r, PG_ERR_LIMIT_REACHED);
        CHECK(!g);
        CHECK_STREQ(pg_strerror(r), "limit-reached");
        CHECK(strlen(pg_last_message(pg)) > 0);
        CHECK_STREQ(pg_last_check(pg), "limit");
        CHECK_STREQ(pg_last_rule(pg), "gpus-to-render");
        r = pg_assign(pg, "render-1", 0, DEV_NIC, 0, &g);
        CHECK_INTEQ(r, PG_ERR_BUSY);
        r = pg_assign(pg, "render-2", 0, DEV_SLOT0, 0, &g);
        CHECK_INTEQ(r, PG_ERR_DENIED);
        CHECK_STREQ(pg_last_rule(pg), "no-nics-for-render");
        CHECK_INTEQ(pg_assign(pg, "nowhere", 0, DEV_GPU2, 0, &g), PG_ERR_NO_SUCH_DOMAIN);
        CHECK_INTEQ(pg_assign(pg, "render-2", 0, "not-a-bdf", 0, &g), PG_ERR_BAD_REQUEST);
        CHECK_INTEQ(pg_release(pg, "render-2", 0, DEV_GPU), PG_ERR_NOT_ASSIGNED);
        CHECK_INTEQ(pg_error_from_name("group-conflict"), PG_ERR_GROUP_CONFLICT);
        CHECK(pg_error_from_name("no-such-code") < 0);
        /* the connection is still usable after refusals */
        CHECK_INTEQ(pg_owner(pg, DEV_GPU, &assigned, &domid, &granted), 0);

        /* release */
        CHECK_INTEQ(pg_release(pg, "render-1", 0, DEV_GPU), 0);
        /* invariant 8: released means back in quarantine, still bound to pciback */
        CHECK_STREQ(itest_owner(&t, DEV_GPU, buf), "io");
        json_t *host = itest_host_load(&t);
        CHECK_STREQ(json_string_value(json_object_get(itest_host_device(host, DEV_GPU), "driver")),
                    "pciback");
        json_decref(host);
        store = itest_grants_load(&t);
        CHECK(store && !itest_grants_find(store, DEV_GPU));
        json_decref(store);
        CHECK_INTEQ(pg_release(pg, "render-1", 0, DEV_GPU), PG_ERR_NOT_ASSIGNED);
        CHECK_INTEQ(pg_release(pg, NULL, DOM_NETPV, DEV_NIC), 0);

        /* prepare, unprepare, reload, raw */
        CHECK_INTEQ(pg_prepare(pg, DEV_E1000), 0);
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "io");
        CHECK_INTEQ(pg_unprepare(pg, DEV_E1000), 0);
        CHECK_STREQ(itest_owner(&t, DEV_E1000, buf), "null");
        CHECK_INTEQ(pg_reload(pg), 0);
        CHECK_INTEQ(pg_call_json(pg, "{\"op\":\"owner\",\"device\":\"0000:03:00.0\"}", &json), 0);
        CHECK(json && strstr(json, "\"ok\":true"));
        free(json);
        json = NULL;
        CHECK_INTEQ(pg_call_json(pg, "{\"op\":\"owner\",\"device\":\"nope\"}", &json),
                    PG_ERR_BAD_REQUEST);
        free(json);
        json = NULL;
        /* watch would make this handle a stream: refused here, and the handle still answers */
        CHECK_INTEQ(pg_call_json(pg, "{\"op\":\"watch\"}", &json), -EINVAL);
        CHECK(json == NULL);
        CHECK(strstr(pg_last_message(pg), "pg_watch()") != NULL);
        CHECK_INTEQ(pg_status(pg, &json), 0);
        free(json);
        json = NULL;

        test_v2(&t, pg);

        /* the daemon goes away: a negative errno, never a refusal code */
        itest_stop(&t);
        r = pg_status(pg, &json);
        CHECK_MSG(r < 0, "pg_status with the daemon gone: %d", r);
        CHECK(strlen(pg_last_message(pg)) > 0);
        free(json);
        pg = pg_close(pg);
        CHECK(!pg);
        CHECK(pg_connect(t.sock, &pg) < 0);

        if (harness_failures)
                itest_log_dump(&t);
        itest_finish(&t);
        return harness_exit();
}
