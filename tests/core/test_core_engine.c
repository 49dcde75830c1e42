/* Unit tests of the broker engine (daemons/core): one behaviour per test,
 * driven through the public API with the recording harness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "core_harness.h"
#include "hamq/msgproto.h"

static const struct h_send_opts MULTI = {.routing = MSGPROTO_MULTICAST, .priority = 4};
static const struct h_sub_opts SUB_MULTI = {.routing = MSGPROTO_MULTICAST};

static struct harness *setup(void)
{
    struct harness *h = h_new(NULL);
    h_conn(h, 1, "client-a");
    h_conn(h, 2, "client-b");
    return h;
}

static void anycast_send_is_delivered_to_exactly_one_consumer(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "orders", NULL);
    h_sub(h, 2, 20, "orders", NULL);
    h_send(h, 1, "orders", "m1", NULL);
    assert_int_equal(h->ndl, 1);
    assert_string_equal(h->dl[0].body, "m1");
    assert_int_equal(h->dl[0].delivery_count, 0);
    assert_false(h->dl[0].redelivered);
    h_free(h);
}

static void anycast_dispatch_is_round_robin_among_consumers(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_sub(h, 2, 20, "q", NULL);
    for (int i = 0; i < 6; i++)
        h_send(h, 1, "q", "x", NULL);
    assert_int_equal(h_count_for(h, 1, 10), 3);
    assert_int_equal(h_count_for(h, 2, 20), 3);
    h_free(h);
}

static void multicast_send_reaches_every_subscriber(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "news", &SUB_MULTI);
    h_sub(h, 2, 20, "news", &SUB_MULTI);
    h_send(h, 1, "news", "hello", &MULTI);
    assert_int_equal(h_count_for(h, 1, 10), 1);
    assert_int_equal(h_count_for(h, 2, 20), 1);
    h_free(h);
}

static void multicast_send_without_subscribers_is_dropped(void **state)
{
    (void)state;
    struct harness *h = setup();
    assert_int_equal(h_send(h, 1, "news", "lost", &MULTI), 0);
    h_sub(h, 1, 10, "news", &SUB_MULTI);
    assert_int_equal(h->ndl, 0);
    h_free(h);
}

static void non_durable_subscription_queue_goes_with_its_consumer(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "news", &SUB_MULTI);
    h_send(h, 1, "news", "a", &MULTI);
    struct msgproto_consumer_ref u = {1, 10, 0};
    core_unsubscribe(h->e, 0, &u, false);
    assert_null(h_stat(h, "news.sub"));
    h_sub(h, 1, 11, "news", &SUB_MULTI);
    assert_int_equal(h_count_for(h, 1, 11), 0);
    h_free(h);
}

static void durable_subscription_keeps_accumulating_while_disconnected(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts d = {.routing = MSGPROTO_MULTICAST, .options = MSGPROTO_SUB_DURABLE,
                           .sub_name = "s1"};
    h_sub(h, 1, 10, "news", &d);
    core_conn_close(h->e, 0, 1);
    h_send(h, 2, "news", "while-away-1", &MULTI);
    h_send(h, 2, "news", "while-away-2", &MULTI);
    const struct core_queue_stat *st = h_stat(h, "client-a.s1");
    assert_non_null(st);
    assert_int_equal(st->messages, 2);
    h_conn(h, 3, "client-a");
    h_sub(h, 3, 30, "news", &d);
    assert_int_equal(h_count_for(h, 3, 30), 2);
    h_free(h);
}

static void unsubscribe_with_remove_durable_deletes_the_subscription(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts d = {.routing = MSGPROTO_MULTICAST, .options = MSGPROTO_SUB_DURABLE,
                           .sub_name = "s1"};
    h_sub(h, 1, 10, "news", &d);
    struct msgproto_consumer_ref u = {1, 10, 0};
    core_unsubscribe(h->e, 0, &u, true);
    assert_null(h_stat(h, "client-a.s1"));
    assert_int_equal(h_journal_count(h, 'q'), 1);
    h_free(h);
}

static void durable_subscription_needs_a_client_id(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_conn(h, 3, "");
    struct h_sub_opts d = {.routing = MSGPROTO_MULTICAST, .options = MSGPROTO_SUB_DURABLE,
                           .sub_name = "s1", .corr = 5};
    assert_int_equal(h_sub(h, 3, 30, "news", &d), -EINVAL);
    assert_non_null(strstr(h_done_for(h, 5)->text, "client-id"));
    h_free(h);
}

static void auto_create_off_rejects_an_unknown_address(void **state)
{
    (void)state;
    struct core_config cfg;
    core_config_defaults(&cfg);
    cfg.auto_create = false;
    struct harness *h = h_new(&cfg);
    h_conn(h, 1, "c");
    struct h_send_opts o = {.routing = MSGPROTO_ANYCAST, .corr = 7, .priority = 4};
    assert_int_equal(h_send(h, 1, "nowhere", "x", &o), -ENOENT);
    const struct h_done *d = h_done_for(h, 7);
    assert_non_null(d);
    assert_int_equal(d->status, -ENOENT);
    assert_non_null(strstr(d->text, "does not exist"));
    struct h_sub_opts s = {.routing = MSGPROTO_ANYCAST, .corr = 8};
    assert_int_equal(h_sub(h, 1, 10, "nowhere", &s), -ENOENT);
    assert_int_equal(core_create_queue(h->e, "made", "made", MSGPROTO_ANYCAST, true, NULL), 0);
    o.corr = 9;
    assert_int_equal(h_send(h, 1, "made", "x", &o), 0);
    h_free(h);
}

static void fqqn_send_reaches_only_the_named_queue(void **state)
{
    (void)state;
    struct harness *h = setup();
    core_create_queue(h->e, "q1", "addr", MSGPROTO_MULTICAST, true, NULL);
    core_create_queue(h->e, "q2", "addr", MSGPROTO_MULTICAST, true, NULL);
    h_send(h, 1, "addr::q2", "only-q2", &MULTI);
    assert_int_equal(h_stat(h, "q1")->messages, 0);
    assert_int_equal(h_stat(h, "q2")->messages, 1);
    h_free(h);
}

static void fqqn_subscribe_consumes_the_named_queue(void **state)
{
    (void)state;
    struct harness *h = setup();
    core_create_queue(h->e, "q1", "addr", MSGPROTO_MULTICAST, true, NULL);
    h_send(h, 1, "addr", "m", &MULTI);
    h_sub(h, 2, 20, "addr::q1", &SUB_MULTI);
    assert_int_equal(h_count_for(h, 2, 20), 1);
    h_free(h);
}

static void credit_bounds_deliveries_until_more_credit_arrives(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts o = {.routing = MSGPROTO_ANYCAST, .credit = 2};
    h_sub(h, 1, 10, "q", &o);
    for (int i = 0; i < 5; i++)
        h_send(h, 1, "q", "x", NULL);
    assert_int_equal(h_count_for(h, 1, 10), 2);
    core_credit(h->e, 0, 1, 10, 2);
    assert_int_equal(h_count_for(h, 1, 10), 4);
    h_free(h);
}

static void window_consumer_gets_more_after_an_ack(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts o = {.routing = MSGPROTO_ANYCAST, .credit = 1, .options = MSGPROTO_SUB_WINDOW};
    h_sub(h, 1, 10, "q", &o);
    h_send(h, 1, "q", "a", NULL);
    h_send(h, 1, "q", "b", NULL);
    assert_int_equal(h_count_for(h, 1, 10), 1);
    h_settle(h, MSGPROTO_ACK, 1, 10, h_last_for(h, 1, 10)->delivery_id, 0, 0, 0);
    assert_int_equal(h_count_for(h, 1, 10), 2);
    assert_string_equal(h_last_for(h, 1, 10)->body, "b");
    h_free(h);
}

static void ack_removes_the_message(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", NULL);
    assert_int_equal(h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 0, 0), 0);
    const struct core_queue_stat *st = h_stat(h, "q");
    assert_int_equal(st->messages, 0);
    assert_int_equal(st->acked, 1);
    core_conn_close(h->e, 0, 1);
    h_sub(h, 2, 20, "q", NULL);
    assert_int_equal(h_count_for(h, 2, 20), 0);
    h_free(h);
}

static void ack_of_an_unknown_delivery_is_an_error(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    assert_int_equal(h_settle(h, MSGPROTO_ACK, 1, 10, 99, 0, 0, 3), -ENOENT);
    assert_non_null(strstr(h_done_for(h, 3)->text, "not outstanding"));
    h_free(h);
}

static void release_redelivers_with_count_unchanged(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", NULL);
    h_settle(h, MSGPROTO_RELEASE, 1, 10, 1, 0, 0, 0);
    assert_int_equal(h->ndl, 2);
    assert_int_equal(h->dl[1].delivery_count, 0);
    assert_true(h->dl[1].redelivered);
    h_free(h);
}

static void nack_redelivers_with_count_raised(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", &(struct h_send_opts){.durable = true, .priority = 4});
    h_settle(h, MSGPROTO_MODIFIED, 1, 10, 1, 0, 0, 0);
    assert_int_equal(h->ndl, 2);
    assert_int_equal(h->dl[1].delivery_count, 1);
    assert_true(h->dl[1].redelivered);
    assert_int_equal(h_journal_count(h, 'C'), 1);
    h_free(h);
}

static void undeliverable_here_skips_that_consumer(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", NULL);
    h_settle(h, MSGPROTO_MODIFIED, 1, 10, 1, MSGPROTO_F_UNDELIVERABLE_HERE, 0, 0);
    assert_int_equal(h->ndl, 1);
    h_sub(h, 2, 20, "q", NULL);
    assert_int_equal(h_count_for(h, 2, 20), 1);
    h_free(h);
}

static void a_release_marked_undeliverable_here_skips_that_consumer_and_keeps_the_count(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", NULL);
    h_settle(h, MSGPROTO_RELEASE, 1, 10, 1, MSGPROTO_F_UNDELIVERABLE_HERE, 0, 0);
    assert_int_equal(h->ndl, 1); /* not back to consumer 10 */
    h_sub(h, 2, 20, "q", NULL);
    assert_int_equal(h_count_for(h, 2, 20), 1);
    assert_int_equal(h_last_for(h, 2, 20)->delivery_count, 0); /* no failed attempt counted */
    h_free(h);
}

static void message_moves_to_dlq_after_max_delivery_attempts(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "poison", NULL);
    for (int i = 0; i < 10; i++)
        h_settle(h, MSGPROTO_MODIFIED, 1, 10, h_last_for(h, 1, 10)->delivery_id, 0, 0, 0);
    assert_int_equal(h_count_for(h, 1, 10), 10); /* delivered 10 times, like Artemis */
    assert_int_equal(h_stat(h, "q")->messages, 0);
    assert_int_equal(h_stat(h, "q")->dead_lettered, 1);
    assert_int_equal(h_stat(h, "DLQ")->messages, 1);
    h_sub(h, 2, 20, "DLQ", NULL);
    assert_string_equal(h_last_for(h, 2, 20)->body, "poison");
    h_free(h);
}

static void dead_lettered_message_carries_its_original_address_queue_and_id(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "orders", NULL);
    h_send(h, 1, "orders", "bad", &(struct h_send_opts){.priority = 4, .pname = "k", .pval = "v"});
    uint64_t orig_id = h->dl[0].message_id;
    h_settle(h, MSGPROTO_REJECT, 1, 10, 1, 0, 0, 0);
    h_sub(h, 2, 20, "DLQ", NULL);
    assert_int_equal(h_count_for(h, 2, 20), 1);
    struct hmsg m;
    struct hmsg_prop p;
    assert_int_equal(hmsg_decode(h->last_data, h->last_len, &m), 0);
    assert_int_equal(hmsg_prop_find(&m, "_AMQ_ORIG_ADDRESS", &p), 1);
    assert_string_equal((const char *)p.v.bytes.p, "orders");
    assert_int_equal(hmsg_prop_find(&m, "_AMQ_ORIG_QUEUE", &p), 1);
    assert_string_equal((const char *)p.v.bytes.p, "orders");
    assert_int_equal(hmsg_prop_find(&m, "_AMQ_ORIG_MESSAGE_ID", &p), 1);
    assert_int_equal(p.v.i, (int64_t)orig_id);
    assert_int_equal(hmsg_prop_find(&m, "k", &p), 1);
    assert_string_equal((const char *)m.body.p, "bad");
    h_free(h);
}

static void reject_moves_the_message_to_dlq_at_once(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "bad", NULL);
    h_settle(h, MSGPROTO_REJECT, 1, 10, 1, 0, 0, 0);
    assert_int_equal(h_count_for(h, 1, 10), 1);
    assert_int_equal(h_stat(h, "DLQ")->messages, 1);
    h_free(h);
}

static void closed_connection_releases_deliveries_with_count_raised(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 2, "q", "a", NULL);
    core_conn_close(h->e, 0, 1);
    h_sub(h, 2, 20, "q", NULL);
    const struct h_delivery *d = h_last_for(h, 2, 20);
    assert_non_null(d);
    assert_int_equal(d->delivery_count, 1);
    assert_true(d->redelivered);
    h_free(h);
}

static void dead_worker_releases_its_deliveries_to_other_consumers(void **state)
{
    (void)state;
    struct harness *h = setup();
    core_conn_open(h->e, 1, 100, "w1", "u");
    struct msgproto_subscribe s = {.conn = 100, .consumer = 1, .routing = MSGPROTO_ANYCAST,
                                   .credit = UINT32_MAX, .address = msgproto_str("q")};
    core_subscribe(h->e, 1, &s);
    h_send(h, 1, "q", "a", NULL);
    assert_int_equal(h->dl[0].worker, 1);
    h_sub(h, 2, 20, "q", NULL);
    assert_int_equal(h_count_for(h, 2, 20), 0);
    core_worker_gone(h->e, 1);
    assert_int_equal(h_count_for(h, 2, 20), 1);
    assert_int_equal(h_last_for(h, 2, 20)->delivery_count, 1);
    h_free(h);
}

static void redelivered_message_returns_to_its_original_position(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts o = {.routing = MSGPROTO_ANYCAST, .credit = 1};
    h_sub(h, 1, 10, "q", &o);
    h_send(h, 1, "q", "first", NULL);
    h_send(h, 1, "q", "second", NULL);
    h_send(h, 1, "q", "third", NULL);
    assert_string_equal(h_last_for(h, 1, 10)->body, "first");
    core_conn_close(h->e, 0, 1);
    h_sub(h, 2, 20, "q", NULL);
    assert_int_equal(h_count_for(h, 2, 20), 3);
    assert_string_equal(h->dl[1].body, "first");
    assert_string_equal(h->dl[2].body, "second");
    assert_string_equal(h->dl[3].body, "third");
    h_free(h);
}

static void higher_priority_message_is_delivered_first(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "low", &(struct h_send_opts){.priority = 1});
    h_send(h, 1, "q", "high", &(struct h_send_opts){.priority = 9});
    h_send(h, 1, "q", "mid", &(struct h_send_opts){.priority = 4});
    h_sub(h, 1, 10, "q", NULL);
    assert_string_equal(h->dl[0].body, "high");
    assert_string_equal(h->dl[1].body, "mid");
    assert_string_equal(h->dl[2].body, "low");
    h_free(h);
}

static void consumer_filter_selects_matching_messages_only(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts red = {.routing = MSGPROTO_ANYCAST, .filter = "color = 'red'"};
    h_sub(h, 1, 10, "q", &red);
    h_send(h, 1, "q", "b", &(struct h_send_opts){.priority = 4, .pname = "color", .pval = "blue"});
    h_send(h, 1, "q", "r", &(struct h_send_opts){.priority = 4, .pname = "color", .pval = "red"});
    assert_int_equal(h_count_for(h, 1, 10), 1);
    assert_string_equal(h_last_for(h, 1, 10)->body, "r");
    h_sub(h, 2, 20, "q", NULL);
    assert_string_equal(h_last_for(h, 2, 20)->body, "b");
    h_free(h);
}

static void multicast_subscription_filter_keeps_non_matching_messages_out(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts o = {.routing = MSGPROTO_MULTICAST, .filter = "n > 5",
                           .options = MSGPROTO_SUB_DURABLE, .sub_name = "big"};
    h_sub(h, 1, 10, "t", &o);
    core_conn_close(h->e, 0, 1);
    uint8_t buf[256];
    struct hmsg_prop p = {.name = msgproto_str("n"), .type = HMSG_PROP_INT64, .v.i = 3};
    for (int v = 3; v <= 8; v += 5) {
        p.v.i = v;
        struct hmsg m = {.priority = 4, .nprops = 1, .props = &p, .body = msgproto_str("x")};
        ssize_t n = hmsg_encode(&m, buf, sizeof(buf));
        struct msgproto_send s = {.conn = 2, .routing = MSGPROTO_MULTICAST, .priority = 4,
                                  .address = msgproto_str("t"), .message = {buf, (uint32_t)n}};
        core_send(h->e, 0, &s, false);
    }
    assert_int_equal(h_stat(h, "client-a.big")->messages, 1);
    h_free(h);
}

static void bad_selector_is_refused_with_a_clear_error(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts o = {.routing = MSGPROTO_ANYCAST, .filter = "a LIKE 'x%'", .corr = 4};
    assert_int_equal(h_sub(h, 1, 10, "q", &o), -EINVAL);
    const struct h_done *d = h_done_for(h, 4);
    assert_non_null(d);
    assert_non_null(strstr(d->text, "selector"));
    h_free(h);
}

static void browser_sees_messages_without_consuming_them(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "a", NULL);
    h_send(h, 1, "q", "b", NULL);
    struct h_sub_opts b = {.routing = MSGPROTO_ANYCAST, .options = MSGPROTO_SUB_BROWSE};
    h_sub(h, 1, 10, "q", &b);
    assert_int_equal(h_count_for(h, 1, 10), 2);
    assert_int_equal(h->nclosed, 1);
    assert_int_equal(h->closed[0].status, 0);
    assert_int_equal(h_stat(h, "q")->messages, 2);
    h_sub(h, 2, 20, "q", NULL);
    assert_int_equal(h_count_for(h, 2, 20), 2);
    h_free(h);
}

static void auto_ack_consumer_needs_no_ack(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_sub_opts o = {.routing = MSGPROTO_ANYCAST, .options = MSGPROTO_SUB_AUTO_ACK};
    h_sub(h, 1, 10, "q", &o);
    h_send(h, 1, "q", "a", NULL);
    assert_int_equal(h_stat(h, "q")->messages, 0);
    assert_int_equal(h_stat(h, "q")->acked, 1);
    h_free(h);
}

static void cumulative_ack_acknowledges_every_earlier_delivery(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    for (int i = 0; i < 4; i++)
        h_send(h, 1, "q", "x", NULL);
    h_settle(h, MSGPROTO_ACK, 1, 10, 3, MSGPROTO_F_CUMULATIVE, 0, 0);
    assert_int_equal(h_stat(h, "q")->acked, 3);
    assert_int_equal(h_stat(h, "q")->delivering, 1);
    h_free(h);
}

static void transactional_send_applies_at_commit(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 2, 20, "q", NULL);
    struct msgproto_tx t = {1, 77, 0};
    core_tx(h->e, 0, MSGPROTO_TX_BEGIN, &t);
    h_send(h, 1, "q", "in-tx", &(struct h_send_opts){.tx = 77, .priority = 4});
    assert_int_equal(h->ndl, 0);
    t.corr = 9;
    assert_int_equal(core_tx(h->e, 0, MSGPROTO_TX_COMMIT, &t), 0);
    assert_int_equal(h->ndl, 1);
    assert_int_equal(h_done_for(h, 9)->status, 0);
    h_free(h);
}

static void transactional_send_vanishes_on_rollback(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 2, 20, "q", NULL);
    struct msgproto_tx t = {1, 77, 0};
    core_tx(h->e, 0, MSGPROTO_TX_BEGIN, &t);
    h_send(h, 1, "q", "in-tx", &(struct h_send_opts){.tx = 77, .priority = 4});
    core_tx(h->e, 0, MSGPROTO_TX_ROLLBACK, &t);
    assert_int_equal(h->ndl, 0);
    assert_int_equal(core_tx(h->e, 0, MSGPROTO_TX_COMMIT, &t), -ENOENT);
    h_free(h);
}

static void transactional_ack_applies_at_commit_and_vanishes_on_rollback(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", NULL);
    struct msgproto_tx t = {1, 5, 0};
    core_tx(h->e, 0, MSGPROTO_TX_BEGIN, &t);
    h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 5, 0);
    core_tx(h->e, 0, MSGPROTO_TX_ROLLBACK, &t);
    assert_int_equal(h_stat(h, "q")->acked, 0);
    assert_int_equal(h_stat(h, "q")->delivering, 1);
    core_tx(h->e, 0, MSGPROTO_TX_BEGIN, &t);
    h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 5, 0);
    assert_int_equal(h_stat(h, "q")->acked, 0);
    core_tx(h->e, 0, MSGPROTO_TX_COMMIT, &t);
    assert_int_equal(h_stat(h, "q")->acked, 1);
    h_free(h);
}

static void duplicate_id_is_acknowledged_but_not_enqueued_twice(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct h_send_opts o = {.priority = 4, .dup_id = "id-1", .corr = 1, .durable = true};
    assert_int_equal(h_send(h, 1, "q", "a", &o), 0);
    o.corr = 2;
    assert_int_equal(h_send(h, 1, "q", "a", &o), 0);
    core_on_durable(h->e, (uint64_t)h->lsn);
    assert_int_equal(h_done_for(h, 2)->status, 0);
    assert_int_equal(h_stat(h, "q")->messages, 1);
    assert_int_equal(h_journal_count(h, 'D'), 1);
    h_free(h);
}

static void duplicate_id_in_a_transaction_fails_its_commit(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .dup_id = "id-1"});
    struct msgproto_tx t = {1, 8, 0};
    core_tx(h->e, 0, MSGPROTO_TX_BEGIN, &t);
    h_send(h, 1, "q", "b", &(struct h_send_opts){.priority = 4, .tx = 8});
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .tx = 8, .dup_id = "id-1"});
    t.corr = 3;
    assert_int_equal(core_tx(h->e, 0, MSGPROTO_TX_COMMIT, &t), -EEXIST);
    assert_non_null(strstr(h_done_for(h, 3)->text, "duplicate"));
    assert_int_equal(h_stat(h, "q")->messages, 1);
    h_free(h);
}

static void duplicate_cache_forgets_the_oldest_id_beyond_its_size(void **state)
{
    (void)state;
    struct core_config cfg;
    core_config_defaults(&cfg);
    cfg.id_cache_size = 2;
    struct harness *h = h_new(&cfg);
    h_conn(h, 1, "c");
    const char *ids[] = {"i1", "i2", "i3", "i1"};
    for (int i = 0; i < 4; i++)
        h_send(h, 1, "q", "x", &(struct h_send_opts){.priority = 4, .dup_id = ids[i]});
    assert_int_equal(h_stat(h, "q")->messages, 4);
    h_send(h, 1, "q", "x", &(struct h_send_opts){.priority = 4, .dup_id = "i3"});
    assert_int_equal(h_stat(h, "q")->messages, 4);
    h_free(h);
}

static void durable_send_done_waits_for_durability(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .durable = true, .corr = 11});
    assert_null(h_done_for(h, 11));
    assert_int_equal(h_journal_count(h, 'M'), 1);
    assert_int_equal(h_journal_count(h, 'R'), 1);
    core_on_durable(h->e, (uint64_t)h->lsn - 1);
    assert_null(h_done_for(h, 11));
    core_on_durable(h->e, (uint64_t)h->lsn);
    assert_non_null(h_done_for(h, 11));
    assert_int_equal(h_done_for(h, 11)->status, 0);
    h_free(h);
}

static void answers_leave_in_request_order(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .durable = true, .corr = 1});
    h_send(h, 1, "q", "b", &(struct h_send_opts){.priority = 4, .corr = 2});
    assert_int_equal(h->ndone, 0);
    core_on_durable(h->e, (uint64_t)h->lsn);
    assert_int_equal(h->ndone, 2);
    assert_int_equal(h->done[0].corr, 1);
    assert_int_equal(h->done[1].corr, 2);
    h_free(h);
}

static void answers_of_another_connection_do_not_wait_for_a_durable_send(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "warm-up", NULL); /* the queue exists and is journaled */
    core_on_durable(h->e, (uint64_t)h->lsn);
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .durable = true, .corr = 1});
    h_send(h, 2, "q", "b", &(struct h_send_opts){.priority = 4, .corr = 2});
    h_send(h, 1, "q", "c", &(struct h_send_opts){.priority = 4, .corr = 3});
    assert_int_equal(h->ndone, 1);
    assert_int_equal(h->done[0].corr, 2);
    core_on_durable(h->e, (uint64_t)h->lsn);
    assert_int_equal(h->ndone, 3);
    assert_int_equal(h->done[1].corr, 1);
    assert_int_equal(h->done[2].corr, 3);
    h_free(h);
}

static void non_durable_send_never_touches_the_store(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL); /* creates the (durable) queue */
    size_t before = h->njr;
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .corr = 3});
    h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 0, 0);
    assert_int_equal(h->njr, before + 0);
    assert_non_null(h_done_for(h, 3));
    h_free(h);
}

static void durable_message_to_a_non_durable_subscription_is_not_persisted(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "t", &SUB_MULTI);
    h_send(h, 1, "t", "a",
           &(struct h_send_opts){.routing = MSGPROTO_MULTICAST, .priority = 4, .durable = true,
                                 .corr = 6});
    assert_int_equal(h_journal_count(h, 'M'), 0);
    assert_int_equal(h_done_for(h, 6)->status, 0);
    h_free(h);
}

static void ack_with_a_receipt_waits_for_its_ack_record(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .durable = true});
    core_on_durable(h->e, (uint64_t)h->lsn);
    h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 0, 12);
    assert_int_equal(h_journal_count(h, 'A'), 1);
    assert_null(h_done_for(h, 12));
    core_on_durable(h->e, (uint64_t)h->lsn);
    assert_non_null(h_done_for(h, 12));
    h_free(h);
}

static void store_failure_is_reported_to_the_producer(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "warm-up", NULL); /* creates the queue while the store works */
    h->store_fails = true;
    h_send(h, 1, "q", "a", &(struct h_send_opts){.priority = 4, .durable = true, .corr = 13});
    const struct h_done *d = h_done_for(h, 13);
    assert_non_null(d);
    assert_int_equal(d->status, -EIO);
    assert_non_null(strstr(d->text, "store"));
    h_free(h);
}

static void restore_rebuilds_queues_messages_and_counts(void **state)
{
    (void)state;
    struct harness *h = h_new(NULL);
    struct core_queue_info qi = {.id = 7, .name = "q", .address = "q", .routing = MSGPROTO_ANYCAST};
    assert_int_equal(core_restore_queue(h->e, &qi), 0);
    uint8_t buf[256];
    size_t n1 = h_msg(buf, sizeof(buf), "one", 4, NULL, NULL, 0);
    assert_int_equal(core_restore_message(h->e, 100, buf, n1), 0);
    assert_int_equal(core_restore_ref(h->e, 100, 7, 2), 0);
    size_t n2 = h_msg(buf, sizeof(buf), "two", 4, NULL, NULL, 0);
    assert_int_equal(core_restore_message(h->e, 101, buf, n2), 0);
    assert_int_equal(core_restore_ref(h->e, 101, 7, 0), 0);
    assert_int_equal(core_restore_duplicate_id(h->e, "q", "d1", 2), 0);
    assert_int_equal(core_restore_done(h->e), 0);
    assert_int_equal(h->njr, 0);
    h_conn(h, 1, "c");
    h_send(h, 1, "q", "dup", &(struct h_send_opts){.priority = 4, .dup_id = "d1"});
    h_sub(h, 1, 10, "q", NULL);
    assert_int_equal(h->ndl, 2);
    assert_string_equal(h->dl[0].body, "one");
    assert_int_equal(h->dl[0].delivery_count, 2);
    assert_true(h->dl[0].redelivered);
    assert_int_equal(h->dl[0].message_id, 100);
    h_send(h, 1, "q", "new", &(struct h_send_opts){.priority = 4, .durable = true});
    assert_true(h->dl[2].message_id > 101);
    h_free(h);
}

/* A warm standby mirrors the live's journal for hours: acks free messages at
 * once, holds are released as references arrive, counts follow DCOUNT. */
static void a_standby_style_restore_frees_acked_messages_and_keeps_counts(void **state)
{
    (void)state;
    struct harness *h = h_new(NULL);
    struct core_queue_info q1 = {.id = 1, .name = "a", .address = "a", .routing = MSGPROTO_ANYCAST};
    struct core_queue_info q2 = {.id = 2, .name = "b", .address = "b", .routing = MSGPROTO_ANYCAST};
    assert_int_equal(core_restore_queue(h->e, &q1), 0);
    assert_int_equal(core_restore_queue(h->e, &q2), 0);
    assert_true(core_has_queue_id(h->e, 2));
    assert_false(core_has_queue_id(h->e, 3));
    assert_int_equal(core_durable_queue_count(h->e), 2);
    uint8_t buf[256];
    for (uint64_t id = 10; id < 20; id++) {
        size_t n = h_msg(buf, sizeof(buf), "m", 4, NULL, NULL, 0);
        assert_int_equal(core_restore_message(h->e, id, buf, n), 0);
        assert_int_equal(core_restore_release(h->e, id), -EINVAL); /* no reference yet */
        assert_int_equal(core_restore_ref(h->e, id, 1, 0), 0);
        assert_int_equal(core_restore_release(h->e, id), 0);
        assert_int_equal(core_restore_release(h->e, id), -EINVAL); /* once */
        if (id % 2 == 0) /* a second queue (multicast-like): the other map */
            assert_int_equal(core_restore_ref(h->e, id, 2, 0), 0);
    }
    assert_int_equal(core_restore_ref(h->e, 10, 1, 0), -EEXIST);
    assert_int_equal(core_restore_delivery_count(h->e, 12, 2, 3), 0);
    assert_int_equal(core_restore_delivery_count(h->e, 13, 2, 3), -ENOENT);
    /* ack the first reference of 10 and 12: the second keeps them */
    assert_int_equal(core_restore_ack(h->e, 10, 1), 0);
    assert_int_equal(core_restore_ack(h->e, 12, 1), 0);
    assert_true(core_restore_has_message(h->e, 12));
    assert_int_equal(core_restore_ack(h->e, 10, 2), 0); /* its last: freed */
    assert_false(core_restore_has_message(h->e, 10));
    assert_int_equal(core_restore_ack(h->e, 10, 2), -ENOENT);
    assert_int_equal(core_restore_ack(h->e, 11, 1), 0); /* one reference only: freed */
    assert_false(core_restore_has_message(h->e, 11));
    /* a message whose only reference is acked before release: freed with its hold */
    size_t n = h_msg(buf, sizeof(buf), "held", 4, NULL, NULL, 0);
    assert_int_equal(core_restore_message(h->e, 30, buf, n), 0);
    assert_int_equal(core_restore_ref(h->e, 30, 1, 0), 0);
    assert_int_equal(core_restore_ack(h->e, 30, 1), 0);
    assert_false(core_restore_has_message(h->e, 30));
    assert_int_equal(core_restore_done(h->e), 0);
    assert_int_equal(h_stat(h, "a")->messages, 7);  /* 13..19 */
    assert_int_equal(h_stat(h, "b")->messages, 4);  /* 12, 14, 16, 18 */
    h_conn(h, 1, "c");
    h_sub(h, 1, 10, "b", NULL);
    assert_int_equal(h->ndl, 4);
    assert_int_equal(h->dl[0].message_id, 12);
    assert_int_equal(h->dl[0].delivery_count, 3);
    h_send(h, 1, "a", "new", &(struct h_send_opts){.priority = 4, .durable = true});
    h_free(h); /* ASan: nothing leaked, nothing freed twice */
}

static void restore_ack_removes_a_restored_reference(void **state)
{
    (void)state;
    struct harness *h = h_new(NULL);
    struct core_queue_info qi = {.id = 1, .name = "q", .address = "q", .routing = MSGPROTO_ANYCAST};
    core_restore_queue(h->e, &qi);
    uint8_t buf[256];
    size_t n = h_msg(buf, sizeof(buf), "gone", 4, NULL, NULL, 0);
    core_restore_message(h->e, 5, buf, n);
    core_restore_ref(h->e, 5, 1, 0);
    assert_int_equal(core_restore_ack(h->e, 5, 1), 0);
    assert_int_equal(core_restore_ack(h->e, 5, 1), -ENOENT);
    core_restore_done(h->e);
    assert_int_equal(h_stat(h, "q")->messages, 0);
    h_free(h);
}

static void restore_refuses_a_malformed_message(void **state)
{
    (void)state;
    struct harness *h = h_new(NULL);
    assert_int_equal(core_restore_message(h->e, 5, "junk", 4), -EBADMSG);
    h_free(h);
}

static void expired_message_is_not_delivered(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "q", "old", &(struct h_send_opts){.priority = 4, .expiration = h->now + 10});
    h_send(h, 1, "q", "fresh", NULL);
    h->now += 20;
    h_sub(h, 1, 10, "q", NULL);
    assert_int_equal(h->ndl, 1);
    assert_string_equal(h->dl[0].body, "fresh");
    assert_int_equal(h_stat(h, "q")->expired, 1);
    h_free(h);
}

static void full_ring_holds_deliveries_until_the_worker_resumes(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h->refuse_deliveries = 1;
    h_send(h, 1, "q", "a", NULL);
    h_send(h, 1, "q", "b", NULL);
    assert_int_equal(h->ndl, 0);
    core_worker_resume(h->e, 0);
    assert_int_equal(h->ndl, 2);
    assert_string_equal(h->dl[0].body, "a");
    h_free(h);
}

static void queue_stats_report_the_counts(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_sub(h, 1, 10, "q", NULL);
    h_send(h, 1, "q", "a", NULL);
    h_send(h, 1, "q", "b", NULL);
    h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 0, 0);
    const struct core_queue_stat *st = h_stat(h, "q");
    assert_string_equal(st->address, "q");
    assert_int_equal(st->routing, MSGPROTO_ANYCAST);
    assert_int_equal(st->consumers, 1);
    assert_int_equal(st->messages, 1);
    assert_int_equal(st->added, 2);
    assert_int_equal(st->delivering, 1);
    assert_int_equal(st->acked, 1);
    h_free(h);
}

static void producers_are_blocked_above_max_memory_and_released_below_ninety_percent(void **state)
{
    (void)state;
    struct core_config cfg;
    core_config_defaults(&cfg);
    uint8_t buf[512];
    size_t one = h_msg(buf, sizeof(buf), "0123456789", 4, NULL, NULL, 0);
    cfg.max_memory = 3 * one;
    struct harness *h = h_new(&cfg);
    h_conn(h, 1, "c");
    for (int i = 0; i < 2; i++)
        h_send(h, 1, "q", "0123456789", NULL);
    assert_int_equal(h->flow_events, 0);
    h_send(h, 1, "q", "0123456789", NULL);
    assert_int_equal(h->flow_events, 1);
    assert_true(h->flow_blocked);
    assert_int_equal(h_send(h, 1, "q", "0123456789", NULL), 0); /* accepted, never dropped */
    assert_int_equal(h_stat(h, "q")->messages, 4);
    h_sub(h, 1, 10, "q", NULL);
    h_settle(h, MSGPROTO_ACK, 1, 10, 1, 0, 0, 0);
    assert_true(h->flow_blocked); /* 3 of 3: still at the limit */
    h_settle(h, MSGPROTO_ACK, 1, 10, 2, 0, 0, 0);
    assert_int_equal(h->flow_events, 2);
    assert_false(h->flow_blocked);
    h_free(h);
}

static void send_on_an_unknown_connection_is_an_error(void **state)
{
    (void)state;
    struct harness *h = setup();
    assert_int_equal(h_send(h, 99, "q", "a", NULL), -ENOTCONN);
    assert_int_equal(h->ndone, 1);
    assert_int_equal(h->done[0].status, -ENOTCONN);
    h_free(h);
}

static void connection_of_a_worker_index_out_of_range_is_refused(void **state)
{
    (void)state;
    struct harness *h = setup();
    assert_int_equal(core_conn_open(h->e, 5000, 1, "c", "u"), -ERANGE);
    assert_int_equal(core_conn_open(h->e, 0, 1, "c", "u"), -EEXIST);
    h_free(h);
}

static void malformed_message_in_a_send_is_refused(void **state)
{
    (void)state;
    struct harness *h = setup();
    struct msgproto_send s = {.conn = 1, .corr = 5, .address = msgproto_str("q"),
                              .message = msgproto_str("not an encoded message")};
    assert_int_equal(core_send(h->e, 0, &s, false), -EBADMSG);
    assert_non_null(strstr(h_done_for(h, 5)->text, "malformed"));
    assert_null(h_stat(h, "q")); /* refused before anything was auto-created */
    h_free(h);
}

/* ---- core_handle_record ---- */

static size_t enc(const struct msgproto_rec *r, uint8_t *buf, size_t cap)
{
    ssize_t n = msgproto_encode(r, buf, cap);
    assert_true(n > 0);
    return (size_t)n;
}

static int big_emit_count;
static struct harness *emit_h;
static int emit_to_core(void *ctx, const void *frag, size_t len)
{
    (void)ctx;
    big_emit_count++;
    return core_handle_record(emit_h->e, 0, frag, len, NULL, NULL);
}

static void handle_record_applies_records_and_reassembles_fragments(void **state)
{
    (void)state;
    struct harness *h = h_new(NULL);
    uint8_t buf[512];
    struct msgproto_rec r = {.type = MSGPROTO_HELLO, .u.hello = {0, 42, MSGPROTO_VERSION}};
    assert_int_equal(core_handle_record(h->e, 0, buf, enc(&r, buf, sizeof(buf)), NULL, NULL), 0);
    r = (struct msgproto_rec){.type = MSGPROTO_CONN_OPEN,
                              .u.conn = {1, msgproto_str("cid"), msgproto_str("u")}};
    assert_int_equal(core_handle_record(h->e, 0, buf, enc(&r, buf, sizeof(buf)), NULL, NULL), 0);
    r = (struct msgproto_rec){.type = MSGPROTO_SUBSCRIBE};
    r.u.sub = (struct msgproto_subscribe){.conn = 1, .consumer = 3, .routing = MSGPROTO_ANYCAST,
                                          .credit = UINT32_MAX, .address = msgproto_str("q")};
    assert_int_equal(core_handle_record(h->e, 0, buf, enc(&r, buf, sizeof(buf)), NULL, NULL), 0);
    char body[3000];
    memset(body, 'z', sizeof(body) - 1);
    body[sizeof(body) - 1] = 0;
    uint8_t mbuf[4096], rbuf[4200];
    size_t mlen = h_msg(mbuf, sizeof(mbuf), body, 4, NULL, NULL, 0);
    r = (struct msgproto_rec){.type = MSGPROTO_SEND, .flags = MSGPROTO_F_DURABLE};
    r.u.send = (struct msgproto_send){.conn = 1, .corr = 9, .routing = MSGPROTO_ANYCAST,
                                      .priority = 4, .address = msgproto_str("q"),
                                      .message = {mbuf, (uint32_t)mlen}};
    size_t rlen = enc(&r, rbuf, sizeof(rbuf));
    emit_h = h;
    assert_int_equal(msgproto_fragment(rbuf, rlen, 1, 512, 1 << 20, emit_to_core, NULL), 0);
    assert_true(big_emit_count > 5);
    assert_int_equal(h->ndl, 1);
    assert_int_equal(strlen(h->dl[0].body), 63); /* harness keeps 63 chars */
    assert_int_equal(h_journal_count(h, 'M'), 1);
    assert_true(core_handle_record(h->e, 0, "garbage!", 8, NULL, NULL) < 0);
    h_free(h);
}

static void oversized_fragmented_send_gets_a_clear_error(void **state)
{
    (void)state;
    struct core_config cfg;
    core_config_defaults(&cfg);
    cfg.max_message_size = 1000;
    struct harness *h = h_new(&cfg);
    h_conn(h, 1, "c");
    uint8_t buf[256];
    struct msgproto_rec f = {.type = MSGPROTO_FRAGMENT};
    f.u.frag = (struct msgproto_fragment_rec){.conn = 1, .seq = 0, .kind = MSGPROTO_FRAG_FIRST,
                                              .total = 1u << 30, .chunk = msgproto_str("abc")};
    assert_int_equal(core_handle_record(h->e, 0, buf, enc(&f, buf, sizeof(buf)), NULL, NULL), 0);
    assert_int_equal(h->ndone, 1);
    assert_int_equal(h->done[0].status, -EMSGSIZE);
    assert_non_null(strstr(h->done[0].text, "exceeds the maximum"));
    h_free(h);
}

static uint64_t stat_seen_last, stat_seen_count;
static void stat_rec_cb(void *ctx, uint64_t request, const struct core_queue_stat *st, bool last)
{
    (void)ctx;
    (void)request;
    stat_seen_count += st != NULL;
    stat_seen_last += last;
}

static void stat_request_lists_queues_and_marks_the_last(void **state)
{
    (void)state;
    struct harness *h = setup();
    h_send(h, 1, "a", "x", NULL);
    h_send(h, 1, "b", "x", NULL);
    uint8_t buf[128];
    struct msgproto_rec r = {.type = MSGPROTO_STAT_REQ, .u.stat_req = {5, msgproto_str("")}};
    assert_int_equal(core_handle_record(h->e, 0, buf, enc(&r, buf, sizeof(buf)), stat_rec_cb, NULL), 0);
    assert_int_equal(stat_seen_count, 2);
    assert_int_equal(stat_seen_last, 1);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anycast_send_is_delivered_to_exactly_one_consumer),
        cmocka_unit_test(anycast_dispatch_is_round_robin_among_consumers),
        cmocka_unit_test(multicast_send_reaches_every_subscriber),
        cmocka_unit_test(multicast_send_without_subscribers_is_dropped),
        cmocka_unit_test(non_durable_subscription_queue_goes_with_its_consumer),
        cmocka_unit_test(durable_subscription_keeps_accumulating_while_disconnected),
        cmocka_unit_test(unsubscribe_with_remove_durable_deletes_the_subscription),
        cmocka_unit_test(durable_subscription_needs_a_client_id),
        cmocka_unit_test(auto_create_off_rejects_an_unknown_address),
        cmocka_unit_test(fqqn_send_reaches_only_the_named_queue),
        cmocka_unit_test(fqqn_subscribe_consumes_the_named_queue),
        cmocka_unit_test(credit_bounds_deliveries_until_more_credit_arrives),
        cmocka_unit_test(window_consumer_gets_more_after_an_ack),
        cmocka_unit_test(ack_removes_the_message),
        cmocka_unit_test(ack_of_an_unknown_delivery_is_an_error),
        cmocka_unit_test(release_redelivers_with_count_unchanged),
        cmocka_unit_test(nack_redelivers_with_count_raised),
        cmocka_unit_test(undeliverable_here_skips_that_consumer),
        cmocka_unit_test(a_release_marked_undeliverable_here_skips_that_consumer_and_keeps_the_count),
        cmocka_unit_test(message_moves_to_dlq_after_max_delivery_attempts),
        cmocka_unit_test(reject_moves_the_message_to_dlq_at_once),
        cmocka_unit_test(dead_lettered_message_carries_its_original_address_queue_and_id),
        cmocka_unit_test(closed_connection_releases_deliveries_with_count_raised),
        cmocka_unit_test(dead_worker_releases_its_deliveries_to_other_consumers),
        cmocka_unit_test(redelivered_message_returns_to_its_original_position),
        cmocka_unit_test(higher_priority_message_is_delivered_first),
        cmocka_unit_test(consumer_filter_selects_matching_messages_only),
        cmocka_unit_test(multicast_subscription_filter_keeps_non_matching_messages_out),
        cmocka_unit_test(bad_selector_is_refused_with_a_clear_error),
        cmocka_unit_test(browser_sees_messages_without_consuming_them),
        cmocka_unit_test(auto_ack_consumer_needs_no_ack),
        cmocka_unit_test(cumulative_ack_acknowledges_every_earlier_delivery),
        cmocka_unit_test(transactional_send_applies_at_commit),
        cmocka_unit_test(transactional_send_vanishes_on_rollback),
        cmocka_unit_test(transactional_ack_applies_at_commit_and_vanishes_on_rollback),
        cmocka_unit_test(duplicate_id_is_acknowledged_but_not_enqueued_twice),
        cmocka_unit_test(duplicate_id_in_a_transaction_fails_its_commit),
        cmocka_unit_test(duplicate_cache_forgets_the_oldest_id_beyond_its_size),
        cmocka_unit_test(durable_send_done_waits_for_durability),
        cmocka_unit_test(answers_leave_in_request_order),
        cmocka_unit_test(answers_of_another_connection_do_not_wait_for_a_durable_send),
        cmocka_unit_test(non_durable_send_never_touches_the_store),
        cmocka_unit_test(durable_message_to_a_non_durable_subscription_is_not_persisted),
        cmocka_unit_test(ack_with_a_receipt_waits_for_its_ack_record),
        cmocka_unit_test(store_failure_is_reported_to_the_producer),
        cmocka_unit_test(restore_rebuilds_queues_messages_and_counts),
        cmocka_unit_test(restore_ack_removes_a_restored_reference),
        cmocka_unit_test(restore_refuses_a_malformed_message),
        cmocka_unit_test(expired_message_is_not_delivered),
        cmocka_unit_test(full_ring_holds_deliveries_until_the_worker_resumes),
        cmocka_unit_test(queue_stats_report_the_counts),
        cmocka_unit_test(producers_are_blocked_above_max_memory_and_released_below_ninety_percent),
        cmocka_unit_test(send_on_an_unknown_connection_is_an_error),
        cmocka_unit_test(connection_of_a_worker_index_out_of_range_is_refused),
        cmocka_unit_test(malformed_message_in_a_send_is_refused),
        cmocka_unit_test(handle_record_applies_records_and_reassembles_fragments),
        cmocka_unit_test(oversized_fragmented_send_gets_a_clear_error),
        cmocka_unit_test(stat_request_lists_queues_and_marks_the_last),
        cmocka_unit_test(a_standby_style_restore_frees_acked_messages_and_keeps_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
