/* Unit tests of daemons/worker/stomp_session.c: the STOMP connection state
 * machine driven with bytes, with a recording broker behind the callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_session.h"

/* What the fake broker saw, and what it answers. */
struct rec {
    int connects, sends, subscribes, unsubscribes, acks, nacks, txs, disconnects;
    int ret;         /* returned by every callback */
    int eagain_left; /* callbacks return -EAGAIN this many times first */
    struct stomp_connect_info ci;
    char login[64], host[64];
    char dest[64], addr[64], queue[64], tx[64], body[256], custom[64], sub_id[64], sel[64],
        durable[64], ack_sub[64];
    size_t body_len;
    enum stomp_routing routing;
    bool persistent;
    enum stomp_ack_mode ack;
    int64_t window;
    uint64_t tokens[16];
    size_t ntokens;
    enum stomp_tx_op tx_op;
};

static struct rec R;

static void cpy(char *dst, const char *src, size_t n)
{
    snprintf(dst, 64, "%.*s", (int)n, src ? src : "(null)");
}

static int answer(void)
{
    if (R.eagain_left > 0) {
        R.eagain_left--;
        return -EAGAIN;
    }
    return R.ret;
}

static int cb_connect(void *ctx, const struct stomp_connect_info *ci)
{
    (void)ctx;
    R.connects++;
    R.ci = *ci;
    cpy(R.login, ci->login, 63);
    cpy(R.host, ci->host, 63);
    return answer();
}

static int cb_send(void *ctx, const struct stomp_send_info *si)
{
    (void)ctx;
    int r = answer();
    if (r == -EAGAIN)
        return r;
    R.sends++;
    cpy(R.dest, si->destination, 63);
    cpy(R.addr, si->dest.address, si->dest.address_len);
    cpy(R.queue, si->dest.queue, si->dest.queue_len);
    cpy(R.tx, si->transaction, 63);
    R.routing = si->dest.routing;
    R.persistent = si->persistent;
    R.body_len = si->body_len < sizeof(R.body) ? si->body_len : sizeof(R.body);
    memcpy(R.body, si->body, R.body_len);
    for (size_t i = 0; i < si->nheaders; i++)
        if (strcmp(si->headers[i].name, "custom") == 0)
            cpy(R.custom, si->headers[i].value, 63);
    return r;
}

static int cb_subscribe(void *ctx, const struct stomp_subscribe_info *si)
{
    (void)ctx;
    R.subscribes++;
    cpy(R.sub_id, si->id, 63);
    cpy(R.addr, si->dest.address, si->dest.address_len);
    cpy(R.sel, si->selector, 63);
    cpy(R.durable, si->durable_name, 63);
    R.routing = si->dest.routing;
    R.ack = si->ack;
    R.window = si->window;
    return answer();
}

static int cb_unsubscribe(void *ctx, const char *id, const char *receipt)
{
    (void)ctx;
    (void)receipt;
    R.unsubscribes++;
    cpy(R.sub_id, id, 63);
    return answer();
}

static int cb_ack(void *ctx, const struct stomp_ack_info *ai)
{
    (void)ctx;
    if (ai->nack)
        R.nacks++;
    else
        R.acks++;
    cpy(R.ack_sub, ai->subscription_id, 63);
    cpy(R.tx, ai->transaction, 63);
    R.ntokens = ai->ntokens;
    assert_true(ai->ntokens <= 16);
    memcpy(R.tokens, ai->tokens, ai->ntokens * sizeof(uint64_t));
    return answer();
}

static int cb_tx(void *ctx, enum stomp_tx_op op, const char *tx, const char *receipt)
{
    (void)ctx;
    (void)receipt;
    R.txs++;
    R.tx_op = op;
    cpy(R.tx, tx, 63);
    return answer();
}

static int cb_disconnect(void *ctx, const char *receipt)
{
    (void)ctx;
    (void)receipt;
    R.disconnects++;
    return answer();
}

static const struct stomp_session_ops ops = {
    .on_connect = cb_connect,
    .on_send = cb_send,
    .on_subscribe = cb_subscribe,
    .on_unsubscribe = cb_unsubscribe,
    .on_ack = cb_ack,
    .on_tx = cb_tx,
    .on_disconnect = cb_disconnect,
};

static struct stomp_session_config cfg;

static struct stomp_session *new_session(void)
{
    memset(&R, 0, sizeof(R));
    stomp_session_config_defaults(&cfg);
    cfg.ops = &ops;
    cfg.server = "hamq/0.1";
    cfg.session_id = "s-1";
    cfg.limits.max_headers = 16;
    cfg.limits.max_header_line = 256;
    cfg.limits.max_body = 1024;
    cfg.limits.max_frame = 4096;
    struct stomp_session *s = stomp_session_new(&cfg);
    assert_non_null(s);
    return s;
}

/* Feed one frame given without its NUL (added here). */
static ssize_t feed(struct stomp_session *s, const char *frame)
{
    return stomp_session_input(s, (const uint8_t *)frame, strlen(frame) + 1);
}

/* Drain output into a NUL-free printable copy (NUL → '@') for substring checks. */
static char outbuf[8192];

static const char *out(struct stomp_session *s)
{
    const uint8_t *p;
    size_t n;
    stomp_session_output(s, &p, &n);
    assert_true(n < sizeof(outbuf));
    for (size_t i = 0; i < n; i++)
        outbuf[i] = p[i] ? (char)p[i] : '@';
    outbuf[n] = '\0';
    stomp_session_consumed_output(s, n);
    return outbuf;
}

static void expect_out(struct stomp_session *s, const char *want)
{
    const char *o = out(s);
    if (!strstr(o, want))
        fail_msg("output '%s' lacks '%s'", o, want);
}

static struct stomp_session *connected(const char *version)
{
    struct stomp_session *s = new_session();
    char f[128];
    snprintf(f, sizeof(f), "CONNECT\naccept-version:%s\nhost:h\nlogin:u\n\n", version);
    assert_int_equal(feed(s, f), (ssize_t)strlen(f) + 1);
    assert_true(stomp_session_connected(s));
    out(s);
    return s;
}

static void expect_violation(struct stomp_session *s, const char *frame, const char *words)
{
    assert_int_equal(feed(s, frame), -EPROTO);
    assert_true(stomp_session_should_close(s));
    expect_out(s, "ERROR\n");
    /* not re-checked after out() drained: check the message from a fresh copy */
    (void)words;
}

static void expect_violation_says(struct stomp_session *s, const char *frame, const char *words)
{
    assert_int_equal(feed(s, frame), -EPROTO);
    assert_true(stomp_session_should_close(s));
    const char *o = out(s);
    if (strncmp(o, "ERROR\n", 6) != 0 || !strstr(o, words))
        fail_msg("output '%s' is not an ERROR saying '%s'", o, words);
}

/* ---- CONNECT ---- */

static void session_refuses_send_before_connect(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    expect_violation_says(s, "SEND\ndestination:/queue/a\n\nx", "SEND before CONNECT");
    assert_int_equal(R.sends, 0);
    assert_int_equal(feed(s, "CONNECT\n\n"), -ESHUTDOWN);
    stomp_session_free(s);
}

static void session_connects_with_1_0_when_accept_version_absent(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    assert_true(feed(s, "CONNECT\nlogin:bob\npasscode:pw\n\n") > 0);
    assert_int_equal(stomp_session_version(s), STOMP_V10);
    const char *o = out(s);
    assert_non_null(strstr(o, "CONNECTED\nsession:s-1\n"));
    assert_null(strstr(o, "version:"));
    assert_null(strstr(o, "heart-beat"));
    assert_string_equal(R.login, "bob");
    stomp_session_free(s);
}

static void session_negotiates_highest_common_version(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    assert_true(feed(s, "CONNECT\naccept-version:1.0,1.1,2.0\nhost:h\n\n") > 0);
    assert_int_equal(stomp_session_version(s), STOMP_V11);
    expect_out(s, "version:1.1\n");
    stomp_session_free(s);
    s = new_session();
    assert_true(feed(s, "CONNECT\naccept-version:1.2,1.0\nhost:h\n\n") > 0);
    assert_int_equal(stomp_session_version(s), STOMP_V12);
    stomp_session_free(s);
}

static void session_refuses_connect_with_no_supported_version(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    expect_violation_says(s, "CONNECT\naccept-version:2.0\n\n", "version:1.0,1.1,1.2");
    assert_int_equal(R.connects, 0);
    stomp_session_free(s);
}

static void session_accepts_stomp_command_as_connect(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    assert_true(feed(s, "STOMP\naccept-version:1.2\nhost:h\n\n") > 0);
    assert_true(stomp_session_connected(s));
    expect_out(s, "CONNECTED\nversion:1.2\n");
    stomp_session_free(s);
}

static void session_refuses_second_connect(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "CONNECT\naccept-version:1.2\n\n", "already connected");
    stomp_session_free(s);
}

static void session_negotiates_heartbeat_intervals(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    uint32_t snd, rcv;
    assert_true(feed(s, "CONNECT\naccept-version:1.2\nhost:h\nheart-beat:5000,20000\n\n") > 0);
    stomp_session_heartbeat(s, &snd, &rcv);
    assert_int_equal(snd, 20000); /* max(our 10000, what the client wants 20000) */
    assert_int_equal(rcv, 10000); /* max(client can 5000, we want 10000) */
    assert_int_equal(R.ci.hb_send_ms, 20000);
    expect_out(s, "heart-beat:10000,10000\n");
    stomp_session_free(s);
}

static void session_disables_heartbeat_when_either_side_says_zero(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    uint32_t snd, rcv;
    assert_true(feed(s, "CONNECT\naccept-version:1.1\nhost:h\nheart-beat:0,3000\n\n") > 0);
    stomp_session_heartbeat(s, &snd, &rcv);
    assert_int_equal(snd, 10000);
    assert_int_equal(rcv, 0);
    stomp_session_free(s);
}

static void session_ignores_heartbeat_in_1_0(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    uint32_t snd, rcv;
    assert_true(feed(s, "CONNECT\nheart-beat:1000,1000\n\n") > 0);
    stomp_session_heartbeat(s, &snd, &rcv);
    assert_int_equal(snd + rcv, 0);
    stomp_session_free(s);
}

static void session_rejects_malformed_heartbeat_header(void **state)
{
    (void)state;
    const char *bad[] = {"1000", "a,b", "1000,", ",1", "-1,0", "99999999999,0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct stomp_session *s = new_session();
        char f[128];
        snprintf(f, sizeof(f), "CONNECT\naccept-version:1.2\nheart-beat:%s\n\n", bad[i]);
        expect_violation_says(s, f, "heart-beat");
        stomp_session_free(s);
    }
}

static void session_requires_host_only_when_configured(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    assert_true(feed(s, "CONNECT\naccept-version:1.2\n\n") > 0); /* lenient by default */
    assert_true(stomp_session_connected(s));
    stomp_session_free(s);
    memset(&R, 0, sizeof(R));
    cfg.require_host = true;
    s = stomp_session_new(&cfg);
    expect_violation_says(s, "CONNECT\naccept-version:1.2\n\n", "host");
    stomp_session_free(s);
    s = stomp_session_new(&cfg);
    assert_true(feed(s, "CONNECT\n\n") > 0); /* 1.0 has no host header */
    stomp_session_free(s);
}

static void session_refuses_connect_when_broker_rejects_login(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    R.ret = -EACCES;
    expect_violation_says(s, "CONNECT\naccept-version:1.2\nlogin:x\npasscode:y\n\n",
                          "authentication failed");
    assert_false(stomp_session_connected(s));
    stomp_session_free(s);
}

static void session_copies_server_and_session_id_at_creation(void **state)
{
    (void)state;
    char sid[16] = "first";
    struct stomp_session_config c;
    stomp_session_config_defaults(&c);
    c.session_id = sid;
    c.server = sid;
    struct stomp_session *s = stomp_session_new(&c);
    assert_non_null(s);
    strcpy(sid, "second"); /* the caller reuses its buffer for the next connection */
    feed(s, "CONNECT\naccept-version:1.2\n\n");
    expect_out(s, "session:first\nserver:first\n");
    stomp_session_free(s);
}

/* ---- destinations ---- */

static void dest_maps_queue_prefix_to_anycast(void **state)
{
    (void)state;
    struct stomp_dest d;
    assert_int_equal(stomp_dest_parse("/queue/orders", NULL, &d), 0);
    assert_int_equal(d.routing, STOMP_ROUTING_ANYCAST);
    assert_int_equal(d.address_len, 6);
    assert_memory_equal(d.address, "orders", 6);
    assert_null(d.queue);
}

static void dest_maps_topic_prefix_to_multicast(void **state)
{
    (void)state;
    struct stomp_dest d;
    assert_int_equal(stomp_dest_parse("/topic/news", NULL, &d), 0);
    assert_int_equal(d.routing, STOMP_ROUTING_MULTICAST);
    assert_memory_equal(d.address, "news", 4);
}

static void dest_takes_routing_from_type_header(void **state)
{
    (void)state;
    struct stomp_dest d;
    assert_int_equal(stomp_dest_parse("plain", NULL, &d), 0);
    assert_int_equal(d.routing, STOMP_ROUTING_DEFAULT);
    assert_int_equal(stomp_dest_parse("plain", "MULTICAST", &d), 0);
    assert_int_equal(d.routing, STOMP_ROUTING_MULTICAST);
    assert_int_equal(stomp_dest_parse("/queue/x", "MULTICAST", &d), 0); /* header wins */
    assert_int_equal(d.routing, STOMP_ROUTING_MULTICAST);
    assert_int_equal(stomp_dest_parse("x", "anycast", &d), -EINVAL); /* case-sensitive */
}

static void dest_splits_fully_qualified_queue_name(void **state)
{
    (void)state;
    struct stomp_dest d;
    assert_int_equal(stomp_dest_parse("/topic/news::sub1", NULL, &d), 0);
    assert_int_equal(d.address_len, 4);
    assert_int_equal(d.queue_len, 4);
    assert_memory_equal(d.queue, "sub1", 4);
}

static void dest_rejects_empty_names(void **state)
{
    (void)state;
    struct stomp_dest d;
    assert_int_equal(stomp_dest_parse("", NULL, &d), -EINVAL);
    assert_int_equal(stomp_dest_parse("/queue/", NULL, &d), -EINVAL);
    assert_int_equal(stomp_dest_parse("::q", NULL, &d), -EINVAL);
    assert_int_equal(stomp_dest_parse("a::", NULL, &d), -EINVAL);
}

/* ---- SEND and receipts ---- */

static void session_passes_send_to_broker_with_headers_and_body(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    const char f[] = "SEND\ndestination:/queue/a::q1\npersistent:true\ncustom:x\\cy\n"
                     "content-length:3\n\na\0b";
    assert_int_equal(stomp_session_input(s, (const uint8_t *)f, sizeof(f)), sizeof(f));
    assert_int_equal(R.sends, 1);
    assert_string_equal(R.addr, "a");
    assert_string_equal(R.queue, "q1");
    assert_int_equal(R.routing, STOMP_ROUTING_ANYCAST);
    assert_true(R.persistent);
    assert_string_equal(R.custom, "x:y");
    assert_int_equal(R.body_len, 3);
    assert_memory_equal(R.body, "a\0b", 3);
    assert_string_equal(out(s), ""); /* no receipt asked, nothing sent */
    stomp_session_free(s);
}

static void session_sends_receipt_for_any_frame_with_receipt(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SEND\ndestination:a\nreceipt:r1\n\n");
    expect_out(s, "RECEIPT\nreceipt-id:r1\n\n@");
    feed(s, "SUBSCRIBE\nid:0\ndestination:a\nreceipt:r2\n\n");
    expect_out(s, "receipt-id:r2");
    feed(s, "BEGIN\ntransaction:t\nreceipt:r3\n\n");
    expect_out(s, "receipt-id:r3");
    feed(s, "UNSUBSCRIBE\nid:0\nreceipt:r4\n\n");
    expect_out(s, "receipt-id:r4");
    stomp_session_free(s);
}

static void session_defers_receipt_until_broker_calls_receipt(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    R.ret = STOMP_DEFER;
    feed(s, "SEND\ndestination:a\npersistent:true\nreceipt:r\\c1\n\n");
    assert_string_equal(out(s), "");
    assert_int_equal(stomp_session_receipt(s, "r:1"), 0);
    expect_out(s, "RECEIPT\nreceipt-id:r\\c1\n");
    stomp_session_free(s);
}

static void session_rejects_send_without_destination(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "SEND\nreceipt:r9\n\n", "destination");
    stomp_session_free(s);
}

static void session_error_frame_carries_receipt_id_of_bad_frame(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "SEND\nreceipt:r9\n\n", "receipt-id:r9");
    stomp_session_free(s);
}

static void session_rejects_bad_destination_type(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "SEND\ndestination:a\ndestination-type:BOTH\n\n", "destination");
    stomp_session_free(s);
}

static void session_broker_failure_becomes_error_frame(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    R.ret = -ENOSPC;
    expect_violation_says(s, "SEND\ndestination:a\n\n", "SEND failed");
    stomp_session_free(s);
}

/* ---- SUBSCRIBE ---- */

static void session_subscribes_with_ack_mode_window_and_durable_name(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:7\ndestination:/topic/t\nack:client-individual\nselector:a>1\n"
            "activemq.subscriptionName:old\ndurable-subscription-name:d1\n"
            "consumer-window-size:0\nactivemq.prefetchSize:5\n\n");
    assert_int_equal(R.subscribes, 1);
    assert_string_equal(R.sub_id, "7");
    assert_string_equal(R.addr, "t");
    assert_int_equal(R.routing, STOMP_ROUTING_MULTICAST);
    assert_int_equal(R.ack, STOMP_ACK_CLIENT_INDIVIDUAL);
    assert_string_equal(R.sel, "a>1");
    assert_string_equal(R.durable, "d1");
    assert_int_equal(R.window, 0);
    assert_false(stomp_session_should_close(s));
    stomp_session_free(s);
}

static void session_applies_default_window_per_ack_mode(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:1\ndestination:a\n\n");
    assert_int_equal(R.window, -1);
    assert_int_equal(R.ack, STOMP_ACK_AUTO);
    feed(s, "SUBSCRIBE\nid:2\ndestination:a\nack:client\nactivemq.prefetchSize:5\n\n");
    assert_int_equal(R.window, 5);
    feed(s, "SUBSCRIBE\nid:3\ndestination:a\nack:client\nsubscription-type:ANYCAST\n\n");
    assert_int_equal(R.window, 10240);
    assert_int_equal(R.routing, STOMP_ROUTING_ANYCAST);
    stomp_session_free(s);
}

static void session_rejects_duplicate_subscription_id(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:1\ndestination:a\n\n");
    expect_violation_says(s, "SUBSCRIBE\nid:1\ndestination:b\n\n", "already in use");
    stomp_session_free(s);
}

static void session_requires_subscription_id_from_1_1(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.1");
    expect_violation_says(s, "SUBSCRIBE\ndestination:a\n\n", "'id'");
    stomp_session_free(s);
}

static void session_uses_destination_as_subscription_id_in_1_0(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.0");
    feed(s, "SUBSCRIBE\ndestination:/queue/a\n\n");
    assert_string_equal(R.sub_id, "/queue/a");
    feed(s, "UNSUBSCRIBE\ndestination:/queue/a\n\n");
    assert_int_equal(R.unsubscribes, 1);
    assert_false(stomp_session_should_close(s));
    stomp_session_free(s);
}

static void session_rejects_unknown_ack_mode(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "SUBSCRIBE\nid:1\ndestination:a\nack:sometimes\n\n", "ack mode");
    stomp_session_free(s);
}

static void session_rejects_bad_consumer_window(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "SUBSCRIBE\nid:1\ndestination:a\nconsumer-window-size:-2\n\n",
                          "consumer-window-size");
    stomp_session_free(s);
}

static void session_rejects_unsubscribe_of_unknown_id(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "UNSUBSCRIBE\nid:9\n\n", "unknown subscription");
    stomp_session_free(s);
}

static void session_limits_subscription_count(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    stomp_session_free(s);
    memset(&R, 0, sizeof(R));
    cfg.max_subscriptions = 2;
    s = stomp_session_new(&cfg);
    feed(s, "CONNECT\naccept-version:1.2\n\n");
    feed(s, "SUBSCRIBE\nid:1\ndestination:a\n\n");
    feed(s, "SUBSCRIBE\nid:2\ndestination:a\n\n");
    out(s);
    expect_violation_says(s, "SUBSCRIBE\nid:3\ndestination:a\n\n", "max_subscriptions=2");
    stomp_session_free(s);
}

/* ---- MESSAGE and ACK ---- */

static int deliver(struct stomp_session *s, const char *sub, const char *mid, uint64_t token)
{
    struct stomp_header h[] = {{"x-h", 3, "v:1", 3}, {"destination", 11, "evil", 4}};
    struct stomp_delivery d = {.subscription_id = sub,
                               .message_id = mid,
                               .destination = "/queue/a",
                               .headers = h,
                               .nheaders = 2,
                               .body = "hi",
                               .body_len = 2,
                               .token = token};
    return stomp_session_deliver(s, &d);
}

static void session_delivers_message_with_ack_header_in_1_2(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:s1\ndestination:/queue/a\nack:client\n\n");
    out(s);
    assert_int_equal(deliver(s, "s1", "m1", 11), 0);
    assert_string_equal(out(s), "MESSAGE\nsubscription:s1\nmessage-id:m1\ndestination:/queue/a\n"
                                "ack:m1\nx-h:v\\c1\ncontent-length:2\n\nhi@");
    assert_int_equal(stomp_session_pending_acks(s), 1);
    stomp_session_free(s);
}

static void session_delivers_message_without_ack_header_in_auto_mode(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:s1\ndestination:/queue/a\n\n");
    out(s);
    assert_int_equal(deliver(s, "s1", "m1", 11), 0);
    const char *o = out(s);
    assert_null(strstr(o, "ack:"));
    assert_int_equal(stomp_session_pending_acks(s), 0);
    stomp_session_free(s);
}

static void session_writes_message_headers_raw_in_1_0(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.0");
    feed(s, "SUBSCRIBE\nid:s1\ndestination:/queue/a\n\n");
    out(s);
    assert_int_equal(deliver(s, "s1", "m1", 11), 0);
    expect_out(s, "x-h:v:1\n");
    stomp_session_free(s);
}

static void session_leaves_out_headers_the_client_version_cannot_carry(void **state)
{
    (void)state;
    const char *versions[] = {"1.0", "1.1"};
    for (int v = 0; v < 2; v++) {
        struct stomp_session *s = connected(versions[v]);
        feed(s, "SUBSCRIBE\nid:s1\ndestination:/queue/a\nack:client\n\n");
        out(s);
        struct stomp_header h[] = {
            {"bad", 3, v ? "a\rb" : "a\nb", 3}, {"", 0, "x", 1}, {"good", 4, "ok", 2}};
        struct stomp_delivery d = {.subscription_id = "s1",
                                   .message_id = "m1",
                                   .destination = "/queue/a",
                                   .headers = h,
                                   .nheaders = 3,
                                   .token = 1};
        assert_int_equal(stomp_session_deliver(s, &d), 0);
        const char *o = out(s);
        assert_null(strstr(o, "bad"));
        assert_non_null(strstr(o, "\ngood:ok\n"));
        assert_int_equal(stomp_session_pending_acks(s), 1);
        d.message_id = v ? "m\r2" : "m\n2";
        assert_int_equal(stomp_session_deliver(s, &d), -EINVAL);
        assert_int_equal(stomp_session_pending_acks(s), 1);
        stomp_session_free(s);
    }
}

static void session_deliver_to_unknown_subscription_fails(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    assert_int_equal(deliver(s, "nope", "m1", 1), -ENOENT);
    assert_string_equal(out(s), "");
    stomp_session_free(s);
}

static void session_client_ack_is_cumulative(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client\n\n");
    feed(s, "SUBSCRIBE\nid:b\ndestination:/queue/b\nack:client\n\n");
    deliver(s, "a", "m1", 1);
    deliver(s, "b", "m2", 2);
    deliver(s, "a", "m3", 3);
    deliver(s, "a", "m4", 4);
    out(s);
    feed(s, "ACK\nid:m3\n\n");
    assert_int_equal(R.acks, 1);
    assert_string_equal(R.ack_sub, "a");
    assert_int_equal(R.ntokens, 2);
    assert_int_equal(R.tokens[0], 1);
    assert_int_equal(R.tokens[1], 3);
    assert_int_equal(stomp_session_pending_acks(s), 2); /* m2 of b, m4 of a */
    expect_violation_says(s, "ACK\nid:m1\n\n", "unknown message");
    stomp_session_free(s);
}

static void session_client_individual_ack_acks_one(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client-individual\n\n");
    deliver(s, "a", "m1", 1);
    deliver(s, "a", "m2", 2);
    feed(s, "ACK\nid:m2\n\n");
    assert_int_equal(R.ntokens, 1);
    assert_int_equal(R.tokens[0], 2);
    assert_int_equal(stomp_session_pending_acks(s), 1);
    feed(s, "ACK\nid:m1\n\n");
    assert_int_equal(R.tokens[0], 1);
    assert_int_equal(stomp_session_pending_acks(s), 0);
    stomp_session_free(s);
}

static void session_1_1_ack_requires_subscription_header(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.1");
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client\n\n");
    deliver(s, "a", "m1", 1);
    out(s);
    assert_true(feed(s, "ACK\nsubscription:a\nmessage-id:m1\n\n") > 0);
    assert_int_equal(R.acks, 1);
    deliver(s, "a", "m2", 2);
    out(s);
    expect_violation_says(s, "ACK\nmessage-id:m2\n\n", "'subscription'");
    stomp_session_free(s);
}

static void session_1_1_ack_with_wrong_subscription_is_rejected(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.1");
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client\n\n");
    deliver(s, "a", "m1", 1);
    out(s);
    expect_violation_says(s, "ACK\nsubscription:zz\nmessage-id:m1\n\n", "unknown message");
    stomp_session_free(s);
}

static void session_1_0_ack_uses_message_id(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.0");
    feed(s, "SUBSCRIBE\ndestination:/queue/a\nack:client\n\n");
    deliver(s, "/queue/a", "m1", 1);
    const char *o = out(s);
    assert_null(strstr(o, "ack:"));
    assert_true(feed(s, "ACK\nmessage-id:m1\n\n") > 0);
    assert_int_equal(R.acks, 1);
    stomp_session_free(s);
}

static void session_rejects_ack_of_unknown_message(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "ACK\nid:ghost\n\n", "unknown message");
    stomp_session_free(s);
}

static void session_rejects_nack_in_1_0(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.0");
    expect_violation_says(s, "NACK\nmessage-id:m1\n\n", "NACK requires STOMP 1.1");
    stomp_session_free(s);
}

static void session_nack_reaches_broker_as_nack(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client-individual\n\n");
    deliver(s, "a", "m1", 5);
    feed(s, "NACK\nid:m1\nreceipt:n\n\n");
    assert_int_equal(R.nacks, 1);
    assert_int_equal(R.acks, 0);
    assert_int_equal(R.tokens[0], 5);
    expect_out(s, "receipt-id:n");
    stomp_session_free(s);
}

static void session_unsubscribe_drops_pending_acks(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client\n\n");
    deliver(s, "a", "m1", 1);
    feed(s, "UNSUBSCRIBE\nid:a\n\n");
    assert_int_equal(stomp_session_pending_acks(s), 0);
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client\n\n");
    out(s);
    expect_violation_says(s, "ACK\nid:m1\n\n", "unknown message");
    stomp_session_free(s);
}

/* ---- transactions ---- */

static void session_begin_commit_abort_reach_broker(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "BEGIN\ntransaction:t1\n\n");
    assert_int_equal(R.tx_op, STOMP_TX_BEGIN);
    assert_int_equal(stomp_session_open_transactions(s), 1);
    feed(s, "SEND\ndestination:a\ntransaction:t1\n\n");
    assert_string_equal(R.tx, "t1");
    feed(s, "COMMIT\ntransaction:t1\n\n");
    assert_int_equal(R.tx_op, STOMP_TX_COMMIT);
    assert_int_equal(stomp_session_open_transactions(s), 0);
    feed(s, "BEGIN\ntransaction:t1\n\n");
    feed(s, "ABORT\ntransaction:t1\n\n");
    assert_int_equal(R.tx_op, STOMP_TX_ABORT);
    assert_int_equal(R.txs, 4);
    assert_int_equal(stomp_session_open_transactions(s), 0);
    assert_false(stomp_session_should_close(s));
    stomp_session_free(s);
}

static void session_passes_transaction_of_ack(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "SUBSCRIBE\nid:a\ndestination:/queue/a\nack:client\n\n");
    deliver(s, "a", "m1", 1);
    feed(s, "BEGIN\ntransaction:t\n\n");
    feed(s, "ACK\nid:m1\ntransaction:t\n\n");
    assert_string_equal(R.tx, "t");
    stomp_session_free(s);
}

static void session_rejects_duplicate_begin(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    feed(s, "BEGIN\ntransaction:t1\n\n");
    expect_violation_says(s, "BEGIN\ntransaction:t1\n\n", "already begun");
    stomp_session_free(s);
}

static void session_rejects_commit_of_unknown_transaction(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "COMMIT\ntransaction:nope\n\n", "unknown transaction");
    stomp_session_free(s);
}

static void session_rejects_send_in_unknown_transaction(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "SEND\ndestination:a\ntransaction:nope\n\n", "unknown transaction");
    assert_int_equal(R.sends, 0);
    stomp_session_free(s);
}

static void session_rejects_begin_without_transaction_header(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation_says(s, "BEGIN\n\n", "'transaction'");
    stomp_session_free(s);
}

/* ---- DISCONNECT, errors, closing ---- */

static void session_disconnect_sends_receipt_and_closes(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    const char f[] = "DISCONNECT\nreceipt:bye\n\n\0SEND\ndestination:a\n\n";
    assert_true(stomp_session_input(s, (const uint8_t *)f, sizeof(f)) > 0);
    assert_int_equal(R.disconnects, 1);
    assert_int_equal(R.sends, 0);
    assert_true(stomp_session_should_close(s));
    expect_out(s, "RECEIPT\nreceipt-id:bye\n");
    stomp_session_free(s);
}

static void session_deferred_disconnect_receipt_closes_after_broker_receipt(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    R.ret = STOMP_DEFER;
    feed(s, "DISCONNECT\nreceipt:bye\n\n");
    assert_false(stomp_session_should_close(s));
    assert_int_equal(feed(s, "SEND\ndestination:a\n\n"), -ESHUTDOWN);
    assert_int_equal(stomp_session_receipt(s, "bye"), 0);
    assert_true(stomp_session_should_close(s));
    expect_out(s, "receipt-id:bye");
    stomp_session_free(s);
}

static void session_error_from_parser_names_limit_and_closes(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    char f[2048];
    snprintf(f, sizeof(f), "SEND\ndestination:a\ncontent-length:2000\n\n");
    assert_int_equal(feed(s, f), -EMSGSIZE);
    assert_true(stomp_session_should_close(s));
    expect_out(s, "max_body=1024");
    stomp_session_free(s);
}

static void session_refuses_input_after_close(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    expect_violation(s, "FOO\n\n", "unknown");
    assert_int_equal(feed(s, "SEND\ndestination:a\n\n"), -ESHUTDOWN);
    assert_int_equal(deliver(s, "a", "m", 1), -ESHUTDOWN);
    stomp_session_free(s);
}

static void session_rejects_server_frames_from_client(void **state)
{
    (void)state;
    const char *frames[] = {"MESSAGE\n\n", "RECEIPT\n\n", "ERROR\n\n", "CONNECTED\n\n"};
    for (size_t i = 0; i < 4; i++) {
        struct stomp_session *s = connected("1.2");
        expect_violation_says(s, frames[i], "server frame");
        stomp_session_free(s);
    }
}

static void session_error_api_queues_error_and_closes(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    assert_int_equal(stomp_session_error(s, "queue full", "address a is full", "r1"), 0);
    assert_true(stomp_session_should_close(s));
    const char *o = out(s);
    assert_non_null(strstr(o, "message:queue full\n"));
    assert_non_null(strstr(o, "receipt-id:r1\n"));
    assert_non_null(strstr(o, "\n\naddress a is full@"));
    stomp_session_free(s);
}

/* ---- back-pressure and output ---- */

static void session_stalls_on_eagain_and_resumes_without_losing_bytes(void **state)
{
    (void)state;
    struct stomp_session *s = connected("1.2");
    const char f[] = "SEND\ndestination:a\nreceipt:1\n\nA\0SEND\ndestination:b\n\nB";
    R.eagain_left = 1;
    ssize_t n = stomp_session_input(s, (const uint8_t *)f, sizeof(f));
    assert_int_equal(n, (ssize_t)strlen(f) + 1); /* up to the first frame's NUL */
    assert_true(stomp_session_stalled(s));
    assert_int_equal(R.sends, 0);
    assert_int_equal(stomp_session_input(s, (const uint8_t *)f + n, sizeof(f) - (size_t)n),
                     -EAGAIN);
    assert_int_equal(stomp_session_resume(s), 0);
    assert_int_equal(R.sends, 1);
    assert_string_equal(R.dest, "a");
    expect_out(s, "receipt-id:1");
    assert_int_equal(stomp_session_input(s, (const uint8_t *)f + n, sizeof(f) - (size_t)n),
                     (ssize_t)sizeof(f) - n);
    assert_int_equal(R.sends, 2);
    assert_string_equal(R.body, "B");
    stomp_session_free(s);
}

static void session_output_drains_partially(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    const uint8_t *p;
    size_t n, total;
    feed(s, "CONNECT\naccept-version:1.2\n\n");
    stomp_session_output(s, &p, &total);
    assert_true(total > 10);
    stomp_session_consumed_output(s, 10);
    stomp_session_output(s, &p, &n);
    assert_int_equal(n, total - 10);
    stomp_session_consumed_output(s, n);
    stomp_session_output(s, &p, &n);
    assert_int_equal(n, 0);
    stomp_session_free(s);
}

/* ---- heart-beats ---- */

static struct stomp_session *hb_session(void)
{
    struct stomp_session *s = new_session();
    feed(s, "CONNECT\naccept-version:1.2\nheart-beat:1000,1000\n\n");
    out(s);
    return s; /* we send every 10000, expect every 10000 */
}

static void session_sends_heartbeat_when_idle(void **state)
{
    (void)state;
    struct stomp_session *s = hb_session();
    assert_int_equal(stomp_session_tick(s, 0), STOMP_TICK_OK);
    assert_int_equal(stomp_session_tick(s, 5000), STOMP_TICK_OK);
    assert_string_equal(out(s), "");
    assert_int_equal(stomp_session_input(s, (const uint8_t *)"\n", 1), 1); /* peer's beat */
    assert_int_equal(stomp_session_tick(s, 10000), STOMP_TICK_OK);
    assert_string_equal(out(s), "\n");
    assert_int_equal(stomp_session_tick(s, 15000), STOMP_TICK_OK);
    assert_string_equal(out(s), "");
    stomp_session_free(s);
}

static void session_skips_heartbeat_when_frames_were_sent(void **state)
{
    (void)state;
    struct stomp_session *s = hb_session();
    stomp_session_tick(s, 0);
    assert_int_equal(stomp_session_tick(s, 5000), STOMP_TICK_OK);
    assert_string_equal(out(s), "");
    feed(s, "SEND\ndestination:a\nreceipt:x\n\n"); /* a RECEIPT goes out after 5000 */
    assert_int_equal(stomp_session_tick(s, 11000), STOMP_TICK_OK);
    assert_string_equal(out(s), "RECEIPT\nreceipt-id:x\n\n@"); /* and no heart-beat */
    assert_int_equal(stomp_session_tick(s, 15000), STOMP_TICK_OK);
    assert_string_equal(out(s), "\n"); /* 10 s after the tick that saw the RECEIPT */
    stomp_session_free(s);
}

static void session_reports_peer_late_after_twice_interval(void **state)
{
    (void)state;
    struct stomp_session *s = hb_session();
    stomp_session_tick(s, 0);
    assert_int_equal(stomp_session_tick(s, 20000), STOMP_TICK_OK);
    assert_int_equal(stomp_session_tick(s, 20001), STOMP_TICK_PEER_LATE);
    stomp_session_free(s);
}

static void session_peer_is_not_late_while_input_is_stalled(void **state)
{
    (void)state;
    struct stomp_session *s = hb_session();
    stomp_session_tick(s, 0);
    R.eagain_left = 1;
    feed(s, "SEND\ndestination:a\n\n");
    assert_true(stomp_session_stalled(s));
    assert_int_equal(stomp_session_tick(s, 50000), STOMP_TICK_OK);
    assert_int_equal(stomp_session_resume(s), 0);
    assert_int_equal(stomp_session_tick(s, 60000), STOMP_TICK_OK);
    assert_int_equal(stomp_session_tick(s, 70001), STOMP_TICK_PEER_LATE);
    stomp_session_free(s);
}

static void session_reports_client_that_never_connects_as_late(void **state)
{
    (void)state;
    struct stomp_session *s = new_session();
    assert_int_equal(stomp_session_tick(s, 1000), STOMP_TICK_OK);
    assert_int_equal(stomp_session_input(s, (const uint8_t *)"\n", 1), 1); /* bytes, no CONNECT */
    assert_int_equal(stomp_session_tick(s, 31000), STOMP_TICK_OK);
    assert_int_equal(stomp_session_tick(s, 31001), STOMP_TICK_PEER_LATE);
    stomp_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(session_refuses_send_before_connect),
        cmocka_unit_test(session_connects_with_1_0_when_accept_version_absent),
        cmocka_unit_test(session_negotiates_highest_common_version),
        cmocka_unit_test(session_refuses_connect_with_no_supported_version),
        cmocka_unit_test(session_accepts_stomp_command_as_connect),
        cmocka_unit_test(session_refuses_second_connect),
        cmocka_unit_test(session_negotiates_heartbeat_intervals),
        cmocka_unit_test(session_disables_heartbeat_when_either_side_says_zero),
        cmocka_unit_test(session_ignores_heartbeat_in_1_0),
        cmocka_unit_test(session_rejects_malformed_heartbeat_header),
        cmocka_unit_test(session_requires_host_only_when_configured),
        cmocka_unit_test(session_refuses_connect_when_broker_rejects_login),
        cmocka_unit_test(session_copies_server_and_session_id_at_creation),
        cmocka_unit_test(dest_maps_queue_prefix_to_anycast),
        cmocka_unit_test(dest_maps_topic_prefix_to_multicast),
        cmocka_unit_test(dest_takes_routing_from_type_header),
        cmocka_unit_test(dest_splits_fully_qualified_queue_name),
        cmocka_unit_test(dest_rejects_empty_names),
        cmocka_unit_test(session_passes_send_to_broker_with_headers_and_body),
        cmocka_unit_test(session_sends_receipt_for_any_frame_with_receipt),
        cmocka_unit_test(session_defers_receipt_until_broker_calls_receipt),
        cmocka_unit_test(session_rejects_send_without_destination),
        cmocka_unit_test(session_error_frame_carries_receipt_id_of_bad_frame),
        cmocka_unit_test(session_rejects_bad_destination_type),
        cmocka_unit_test(session_broker_failure_becomes_error_frame),
        cmocka_unit_test(session_subscribes_with_ack_mode_window_and_durable_name),
        cmocka_unit_test(session_applies_default_window_per_ack_mode),
        cmocka_unit_test(session_rejects_duplicate_subscription_id),
        cmocka_unit_test(session_requires_subscription_id_from_1_1),
        cmocka_unit_test(session_uses_destination_as_subscription_id_in_1_0),
        cmocka_unit_test(session_rejects_unknown_ack_mode),
        cmocka_unit_test(session_rejects_bad_consumer_window),
        cmocka_unit_test(session_rejects_unsubscribe_of_unknown_id),
        cmocka_unit_test(session_limits_subscription_count),
        cmocka_unit_test(session_delivers_message_with_ack_header_in_1_2),
        cmocka_unit_test(session_delivers_message_without_ack_header_in_auto_mode),
        cmocka_unit_test(session_writes_message_headers_raw_in_1_0),
        cmocka_unit_test(session_leaves_out_headers_the_client_version_cannot_carry),
        cmocka_unit_test(session_deliver_to_unknown_subscription_fails),
        cmocka_unit_test(session_client_ack_is_cumulative),
        cmocka_unit_test(session_client_individual_ack_acks_one),
        cmocka_unit_test(session_1_1_ack_requires_subscription_header),
        cmocka_unit_test(session_1_1_ack_with_wrong_subscription_is_rejected),
        cmocka_unit_test(session_1_0_ack_uses_message_id),
        cmocka_unit_test(session_rejects_ack_of_unknown_message),
        cmocka_unit_test(session_rejects_nack_in_1_0),
        cmocka_unit_test(session_nack_reaches_broker_as_nack),
        cmocka_unit_test(session_unsubscribe_drops_pending_acks),
        cmocka_unit_test(session_begin_commit_abort_reach_broker),
        cmocka_unit_test(session_passes_transaction_of_ack),
        cmocka_unit_test(session_rejects_duplicate_begin),
        cmocka_unit_test(session_rejects_commit_of_unknown_transaction),
        cmocka_unit_test(session_rejects_send_in_unknown_transaction),
        cmocka_unit_test(session_rejects_begin_without_transaction_header),
        cmocka_unit_test(session_disconnect_sends_receipt_and_closes),
        cmocka_unit_test(session_deferred_disconnect_receipt_closes_after_broker_receipt),
        cmocka_unit_test(session_error_from_parser_names_limit_and_closes),
        cmocka_unit_test(session_refuses_input_after_close),
        cmocka_unit_test(session_rejects_server_frames_from_client),
        cmocka_unit_test(session_error_api_queues_error_and_closes),
        cmocka_unit_test(session_stalls_on_eagain_and_resumes_without_losing_bytes),
        cmocka_unit_test(session_output_drains_partially),
        cmocka_unit_test(session_sends_heartbeat_when_idle),
        cmocka_unit_test(session_skips_heartbeat_when_frames_were_sent),
        cmocka_unit_test(session_reports_peer_late_after_twice_interval),
        cmocka_unit_test(session_peer_is_not_late_while_input_is_stalled),
        cmocka_unit_test(session_reports_client_that_never_connects_as_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
