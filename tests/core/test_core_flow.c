/* Unit tests of the engine's per-address memory accounting and flow control (core-flow.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core-flow.h"
#include "core_harness.h"

struct flow_event {
    char address[32];
    bool blocked;
    uint64_t bytes, limit;
};

struct limits {
    uint64_t a, b, dflt; /* limits of addresses "a", "b", and every other one */
    struct flow_event ev[64];
    int nev;
};

static uint64_t limit_of(void *ctx, const char *address)
{
    const struct limits *l = ctx;
    return strcmp(address, "a") == 0 ? l->a : strcmp(address, "b") == 0 ? l->b : l->dflt;
}

static void changed(void *ctx, const char *address, bool blocked, uint64_t bytes, uint64_t limit)
{
    struct limits *l = ctx;
    assert_true(l->nev < 64);
    struct flow_event *ev = &l->ev[l->nev++];
    snprintf(ev->address, sizeof(ev->address), "%s", address);
    ev->blocked = blocked;
    ev->bytes = bytes;
    ev->limit = limit;
}

static const struct core_addr_flow_ops ops = {limit_of, changed};

/* Encoded size of the test message "0123456789" (what the engine counts). */
static uint64_t one(void)
{
    uint8_t buf[512];
    return h_msg(buf, sizeof(buf), "0123456789", 4, NULL, NULL, 0);
}

static void send_n(struct harness *h, const char *address, int n, const struct h_send_opts *o)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(h_send(h, 1, address, "0123456789", o), 0);
}

static void a_multicast_message_counts_once_per_address_until_every_queue_acked_it(void **state)
{
    (void)state;
    struct harness *h = h_new(NULL);
    struct h_sub_opts multi = {.routing = MSGPROTO_MULTICAST};
    struct h_send_opts send_multi = {.routing = MSGPROTO_MULTICAST, .priority = 4};
    h_conn(h, 1, "c");
    h_sub(h, 1, 10, "t", &multi);
    h_sub(h, 1, 11, "t", &multi);
    send_n(h, "t", 1, &send_multi);
    assert_int_equal(h_count_for(h, 1, 10), 1);
    assert_int_equal(h_count_for(h, 1, 11), 1);
    assert_int_equal(core_address_bytes(h->e, "t"), one()); /* two queues, counted once */
    h_settle(h, MSGPROTO_ACK, 1, 10, h_last_for(h, 1, 10)->delivery_id, 0, 0, 0);
    assert_int_equal(core_address_bytes(h->e, "t"), one()); /* still in the second queue */
    h_settle(h, MSGPROTO_ACK, 1, 11, h_last_for(h, 1, 11)->delivery_id, 0, 0, 0);
    assert_int_equal(core_address_bytes(h->e, "t"), 0);
    assert_int_equal(core_address_bytes(h->e, "unknown"), 0);
    h_free(h);
}

static void an_address_blocks_at_its_limit_and_releases_at_ninety_percent_alone(void **state)
{
    (void)state;
    struct limits l = {.a = 3 * one(), .b = 0, .dflt = 0};
    struct harness *h = h_new(NULL);
    core_flow_addresses(h->e, &ops, &l);
    h_conn(h, 1, "c");
    send_n(h, "a", 2, NULL);
    assert_int_equal(l.nev, 0);
    send_n(h, "a", 1, NULL);
    assert_int_equal(l.nev, 1);
    assert_string_equal(l.ev[0].address, "a");
    assert_true(l.ev[0].blocked);
    assert_int_equal(l.ev[0].bytes, 3 * one());
    assert_int_equal(l.ev[0].limit, 3 * one());
    assert_true(core_address_blocked(h->e, "a"));
    send_n(h, "a", 1, NULL); /* what was on its way is accepted, never dropped */
    send_n(h, "b", 20, NULL); /* b has no limit: no event */
    assert_int_equal(l.nev, 1);
    assert_false(core_address_blocked(h->e, "b"));
    assert_int_equal(h_stat(h, "a")->messages, 4);
    h_sub(h, 1, 10, "a", NULL);
    h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 0, 0);
    assert_int_equal(l.nev, 1); /* 3 of 3: still at the limit */
    h_settle(h, MSGPROTO_ACK, 1, 10, 2, 0, 0, 0);
    assert_int_equal(l.nev, 2); /* 2 of 3 <= 90 %: released */
    assert_false(l.ev[1].blocked);
    assert_int_equal(l.ev[1].bytes, 2 * one());
    assert_false(core_address_blocked(h->e, "a"));
    h_free(h);
}

static void limits_given_after_messages_arrived_report_full_addresses_at_once(void **state)
{
    (void)state;
    struct limits l = {.a = 0, .b = 0, .dflt = 2 * one()};
    struct harness *h = h_new(NULL);
    h_conn(h, 1, "c");
    send_n(h, "a", 3, NULL);
    send_n(h, "other", 1, NULL);
    core_flow_addresses(h->e, &ops, &l);
    assert_int_equal(l.nev, 0); /* "a" has its own limit: none */
    l.nev = 0;
    l.a = 3 * one();
    core_flow_addresses(h->e, &ops, &l); /* limits asked again */
    assert_int_equal(l.nev, 1);
    assert_string_equal(l.ev[0].address, "a");
    assert_true(l.ev[0].blocked);
    core_flow_addresses(h->e, NULL, NULL); /* limits removed: released */
    assert_int_equal(l.nev, 2);
    assert_false(l.ev[1].blocked);
    h_free(h);
}

static void count_blocked(void *ctx, const char *address, uint64_t bytes, uint64_t limit)
{
    (void)bytes;
    (void)limit;
    if (strcmp(address, "a") == 0)
        (*(int *)ctx)++;
}

static void a_joining_worker_learns_every_blocked_address(void **state)
{
    (void)state;
    struct limits l = {.a = one(), .b = one(), .dflt = 0};
    struct harness *h = h_new(NULL);
    core_flow_addresses(h->e, &ops, &l);
    h_conn(h, 1, "c");
    send_n(h, "a", 1, NULL);
    send_n(h, "c", 5, NULL);
    int n = 0;
    core_flow_blocked_each(h->e, count_blocked, &n);
    assert_int_equal(n, 1);
    h_free(h);
}

static void transactional_sends_count_from_their_commit(void **state)
{
    (void)state;
    struct limits l = {.a = 2 * one(), .b = 0, .dflt = 0};
    struct harness *h = h_new(NULL);
    core_flow_addresses(h->e, &ops, &l);
    h_conn(h, 1, "c");
    struct msgproto_tx t = {.conn = 1, .tx = 7, .corr = 0};
    assert_int_equal(core_tx(h->e, 0, MSGPROTO_TX_BEGIN, &t), 0);
    struct h_send_opts in_tx = {.routing = MSGPROTO_ANYCAST, .priority = 4, .tx = 7};
    send_n(h, "a", 3, &in_tx);
    assert_int_equal(core_address_bytes(h->e, "a"), 0);
    assert_int_equal(l.nev, 0);
    assert_int_equal(core_tx(h->e, 0, MSGPROTO_TX_COMMIT, &t), 0);
    assert_int_equal(core_address_bytes(h->e, "a"), 3 * one());
    assert_int_equal(l.nev, 1);
    assert_true(l.ev[0].blocked);
    h_free(h);
}

static void a_deleted_subscription_queue_gives_its_bytes_back(void **state)
{
    (void)state;
    struct limits l = {.a = 0, .b = 2 * one(), .dflt = 0};
    struct harness *h = h_new(NULL);
    struct h_sub_opts multi = {.routing = MSGPROTO_MULTICAST, .credit = 1};
    struct h_send_opts send_multi = {.routing = MSGPROTO_MULTICAST, .priority = 4};
    core_flow_addresses(h->e, &ops, &l);
    h_conn(h, 1, "c");
    h_sub(h, 1, 10, "b", &multi);
    send_n(h, "b", 3, &send_multi);
    assert_int_equal(core_address_bytes(h->e, "b"), 3 * one());
    assert_int_equal(l.nev, 1);
    struct msgproto_consumer_ref u = {.conn = 1, .consumer = 10, .corr = 0};
    assert_int_equal(core_unsubscribe(h->e, 0, &u, false), 0);
    assert_int_equal(core_address_bytes(h->e, "b"), 0);
    assert_int_equal(l.nev, 2);
    assert_false(l.ev[1].blocked);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_multicast_message_counts_once_per_address_until_every_queue_acked_it),
        cmocka_unit_test(an_address_blocks_at_its_limit_and_releases_at_ninety_percent_alone),
        cmocka_unit_test(limits_given_after_messages_arrived_report_full_addresses_at_once),
        cmocka_unit_test(a_joining_worker_learns_every_blocked_address),
        cmocka_unit_test(transactional_sends_count_from_their_commit),
        cmocka_unit_test(a_deleted_subscription_queue_gives_its_bytes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
