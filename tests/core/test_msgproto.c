/* Unit tests of the worker⇄core record codec and the encoded message
 * (include/hamq/msgproto.h, daemons/core/libhamqmsg.a). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/msgproto.h"

static void check_roundtrip(const struct msgproto_rec *in, struct msgproto_rec *out, uint8_t *buf,
                            size_t cap)
{
    ssize_t n = msgproto_encode(in, buf, cap);
    assert_true(n >= (ssize_t)MSGPROTO_HDR_SIZE);
    assert_int_equal(msgproto_encode(in, NULL, 0), n);
    assert_int_equal(msgproto_decode(buf, (size_t)n, out), 0);
    assert_int_equal(out->type, in->type);
    assert_int_equal(out->flags, in->flags);
    uint8_t again[4096];
    ssize_t m = msgproto_encode(out, again, sizeof(again));
    assert_int_equal(m, n);
    assert_memory_equal(again, buf, (size_t)n);
}

static void every_record_type_survives_encode_then_decode(void **state)
{
    (void)state;
    uint8_t buf[4096];
    struct msgproto_rec out;
    for (uint16_t t = 1; t <= 40; t++) {
        if (strcmp(msgproto_type_name(t), "?") == 0)
            continue;
        struct msgproto_rec r;
        memset(&r, 0, sizeof(r));
        r.type = t;
        r.flags = 0x21;
        /* Fill every union byte pattern-wise, then fix the byte fields. */
        r.u.send = (struct msgproto_send){1, 2, 3, 1, 9, -5, msgproto_str("a::b"),
                                          msgproto_str("b"), msgproto_str("dup"),
                                          msgproto_str("msg")};
        if (t == MSGPROTO_SUBSCRIBE)
            r.u.sub = (struct msgproto_subscribe){1, 2, 3, 1, 0x0f, 77, msgproto_str("a"),
                                                  msgproto_str("q"), msgproto_str("s"),
                                                  msgproto_str("x = 1")};
        if (t == MSGPROTO_STAT_REPLY)
            r.u.stat = (struct msgproto_stat_reply){1, 1, 2, 3, 4, 5, 6, 1, 7, 8,
                                                    msgproto_str("n"), msgproto_str("a")};
        if (t == MSGPROTO_DONE)
            r.u.done = (struct msgproto_done){1, 2, -5, msgproto_str("bad")};
        if (t == MSGPROTO_CONSUMER_CLOSED)
            r.u.closed = (struct msgproto_consumer_closed){1, 2, -9, msgproto_str("why")};
        if (t == MSGPROTO_DELIVER)
            r.u.deliver = (struct msgproto_deliver){1, 2, 3, 4, 5, msgproto_str("body")};
        if (t == MSGPROTO_CONN_OPEN || t == MSGPROTO_CONN_CLOSE)
            r.u.conn = (struct msgproto_conn){7, msgproto_str("cid"), msgproto_str("user")};
        if (t == MSGPROTO_FLOW)
            r.u.flow = (struct msgproto_flow){1, 1000, 900};
        if (t == MSGPROTO_FLOW_ADDR)
            r.u.flow_addr = (struct msgproto_flow_addr){1, 1000, 900, msgproto_str("orders")};
        if (t == MSGPROTO_STAT_REQ)
            r.u.stat_req = (struct msgproto_stat_req){3, msgproto_str("q")};
        if (t == MSGPROTO_FRAGMENT)
            r.u.frag = (struct msgproto_fragment_rec){1, 0, MSGPROTO_FRAG_FIRST, 3,
                                                      msgproto_str("abc")};
        check_roundtrip(&r, &out, buf, sizeof(buf));
    }
}

static void send_fields_decode_to_what_was_encoded(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct msgproto_rec r = {.type = MSGPROTO_SEND, .flags = MSGPROTO_F_DURABLE}, out;
    r.u.send = (struct msgproto_send){.conn = 11, .corr = 22, .tx = 33, .routing = 1,
                                      .priority = 7, .expiration = 123456789,
                                      .address = msgproto_str("orders"),
                                      .dup_id = {(const uint8_t *)"\0\1\2", 3},
                                      .message = msgproto_str("M")};
    check_roundtrip(&r, &out, buf, sizeof(buf));
    assert_int_equal(out.u.send.conn, 11);
    assert_int_equal(out.u.send.corr, 22);
    assert_int_equal(out.u.send.tx, 33);
    assert_int_equal(out.u.send.priority, 7);
    assert_int_equal(out.u.send.expiration, 123456789);
    assert_string_equal((const char *)out.u.send.address.p, "orders");
    assert_int_equal(out.u.send.dup_id.len, 3);
    assert_memory_equal(out.u.send.dup_id.p, "\0\1\2", 3);
}

static void decode_rejects_truncated_and_trailing_bytes(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct msgproto_rec r = {.type = MSGPROTO_DONE}, out;
    r.u.done = (struct msgproto_done){1, 2, 0, msgproto_str("ok")};
    ssize_t n = msgproto_encode(&r, buf, sizeof(buf));
    for (ssize_t cut = 0; cut < n; cut++)
        assert_true(msgproto_decode(buf, (size_t)cut, &out) < 0);
    assert_int_equal(msgproto_decode(buf, (size_t)n + 1, &out), -EBADMSG);
}

static void decode_rejects_an_unknown_version_or_type(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct msgproto_rec r = {.type = MSGPROTO_TX_BEGIN}, out;
    ssize_t n = msgproto_encode(&r, buf, sizeof(buf));
    buf[2] = MSGPROTO_VERSION + 1;
    assert_int_equal(msgproto_decode(buf, (size_t)n, &out), -EPROTO);
    buf[2] = MSGPROTO_VERSION;
    buf[0] = 99;
    assert_int_equal(msgproto_decode(buf, (size_t)n, &out), -EPROTO);
}

static void decode_rejects_a_string_without_its_nul_or_with_one_inside(void **state)
{
    (void)state;
    uint8_t buf[128];
    struct msgproto_rec r = {.type = MSGPROTO_STAT_REQ, .u.stat_req = {1, msgproto_str("abc")}}, out;
    ssize_t n = msgproto_encode(&r, buf, sizeof(buf));
    buf[n - 1] = 'x'; /* the terminating NUL */
    assert_int_equal(msgproto_decode(buf, (size_t)n, &out), -EBADMSG);
    buf[n - 1] = 0;
    buf[n - 3] = 0; /* a NUL inside */
    assert_int_equal(msgproto_decode(buf, (size_t)n, &out), -EBADMSG);
}

static void encode_refuses_a_string_with_a_nul_and_a_small_buffer(void **state)
{
    (void)state;
    uint8_t buf[16];
    struct msgproto_rec r = {.type = MSGPROTO_STAT_REQ,
                             .u.stat_req = {1, {(const uint8_t *)"a\0b", 3}}};
    assert_int_equal(msgproto_encode(&r, buf, sizeof(buf)), -EINVAL);
    r.u.stat_req.queue = msgproto_str("a-long-queue-name");
    assert_int_equal(msgproto_encode(&r, buf, sizeof(buf)), -ENOSPC);
    r.type = 200;
    assert_int_equal(msgproto_encode(&r, NULL, 0), -EINVAL);
}

static uint8_t reasm_out[1 << 16];
static size_t reasm_len;
static struct msgproto_reasm reasm;
static int reasm_rc;
static int feed(void *ctx, const void *frag, size_t len)
{
    size_t max = *(size_t *)ctx;
    struct msgproto_rec r;
    assert_int_equal(msgproto_decode(frag, len, &r), 0);
    assert_int_equal(r.type, MSGPROTO_FRAGMENT);
    assert_true(len <= 100);
    reasm_rc = msgproto_reassemble(&reasm, &r.u.frag, max);
    if (reasm_rc == 1) {
        memcpy(reasm_out, reasm.buf, reasm.total);
        reasm_len = reasm.total;
        msgproto_reasm_reset(&reasm);
    }
    return reasm_rc < 0 ? reasm_rc : 0;
}

static void fragments_reassemble_to_the_original_record(void **state)
{
    (void)state;
    uint8_t big[5000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    size_t max = 1 << 20;
    assert_int_equal(msgproto_fragment(big, sizeof(big), 3, 100, max, feed, &max), 0);
    assert_int_equal(reasm_len, sizeof(big));
    assert_memory_equal(reasm_out, big, sizeof(big));
}

static void fragment_refuses_a_record_over_the_maximum(void **state)
{
    (void)state;
    uint8_t big[300] = {0};
    size_t max = 1 << 20;
    assert_int_equal(msgproto_fragment(big, sizeof(big), 3, 100, 299, feed, &max), -EMSGSIZE);
    assert_int_equal(msgproto_fragment(big, sizeof(big), 3, 10, 1000, feed, &max), -EINVAL);
}

static void reassembly_refuses_an_announced_total_over_the_maximum(void **state)
{
    (void)state;
    uint8_t big[500] = {0};
    size_t max = 200;
    assert_int_equal(msgproto_fragment(big, sizeof(big), 3, 100, 1 << 20, feed, &max), -EMSGSIZE);
    msgproto_reasm_reset(&reasm);
}

static void reassembly_refuses_a_sequence_break(void **state)
{
    (void)state;
    struct msgproto_reasm r = {0};
    struct msgproto_fragment_rec f = {1, 0, MSGPROTO_FRAG_FIRST, 6, msgproto_str("abc")};
    assert_int_equal(msgproto_reassemble(&r, &f, 100), 0);
    f = (struct msgproto_fragment_rec){1, 2, MSGPROTO_FRAG_LAST, 6, msgproto_str("def")};
    assert_int_equal(msgproto_reassemble(&r, &f, 100), -EPROTO);
    assert_false(r.active);
    f = (struct msgproto_fragment_rec){1, 1, MSGPROTO_FRAG_MIDDLE, 6, msgproto_str("def")};
    assert_int_equal(msgproto_reassemble(&r, &f, 100), -EPROTO);
    f = (struct msgproto_fragment_rec){1, 0, MSGPROTO_FRAG_FIRST, 4, msgproto_str("abcdef")};
    assert_int_equal(msgproto_reassemble(&r, &f, 100), -EPROTO);
    msgproto_reasm_reset(&r);
}

static void message_with_every_field_and_property_type_round_trips(void **state)
{
    (void)state;
    struct hmsg_prop props[6] = {
        {.name = msgproto_str("s"), .type = HMSG_PROP_STRING, .v.bytes = msgproto_str("str")},
        {.name = msgproto_str("i"), .type = HMSG_PROP_INT64, .v.i = -42},
        {.name = msgproto_str("d"), .type = HMSG_PROP_DOUBLE, .v.d = 2.5},
        {.name = msgproto_str("b"), .type = HMSG_PROP_BOOL, .v.b = true},
        {.name = msgproto_str("n"), .type = HMSG_PROP_NULL},
        {.name = msgproto_str("x"), .type = HMSG_PROP_BINARY, .v.bytes = {(const uint8_t *)"\0\1", 2}},
    };
    struct hmsg m = {.routing = 1, .durable = 1, .priority = 8, .body_type = HMSG_BODY_BINARY,
                     .expiration = 99, .timestamp = 77, .address = msgproto_str("addr"),
                     .message_id = msgproto_str("mid"), .correlation_id = msgproto_str("cid"),
                     .reply_to = msgproto_str("rt"), .content_type = msgproto_str("ct"),
                     .user_id = msgproto_str("u"), .subject = msgproto_str("subj"),
                     .group_id = msgproto_str("g"), .nprops = 6, .props = props,
                     .body = {(const uint8_t *)"b\0dy", 4}};
    uint8_t buf[1024];
    ssize_t n = hmsg_encode(&m, buf, sizeof(buf));
    assert_true(n > 0);
    struct hmsg d;
    assert_int_equal(hmsg_decode(buf, (size_t)n, &d), 0);
    assert_int_equal(d.routing, 1);
    assert_int_equal(d.durable, 1);
    assert_int_equal(d.priority, 8);
    assert_int_equal(d.expiration, 99);
    assert_int_equal(d.timestamp, 77);
    assert_string_equal((const char *)d.subject.p, "subj");
    assert_string_equal((const char *)d.group_id.p, "g");
    assert_int_equal(d.body.len, 4);
    assert_memory_equal(d.body.p, "b\0dy", 4);
    assert_int_equal(d.nprops, 6);
    struct hmsg_prop p;
    assert_int_equal(hmsg_prop_find(&d, "i", &p), 1);
    assert_int_equal(p.v.i, -42);
    assert_int_equal(hmsg_prop_find(&d, "d", &p), 1);
    assert_true(p.v.d == 2.5);
    assert_int_equal(hmsg_prop_find(&d, "b", &p), 1);
    assert_true(p.v.b);
    assert_int_equal(hmsg_prop_find(&d, "x", &p), 1);
    assert_int_equal(p.v.bytes.len, 2);
    assert_int_equal(hmsg_prop_find(&d, "missing", &p), 0);
    size_t pos = 0, count = 0;
    while (hmsg_prop_next(&d, &pos, &p))
        count++;
    assert_int_equal(count, 6);
}

static void message_decode_rejects_bad_magic_priority_and_trailing_bytes(void **state)
{
    (void)state;
    struct hmsg m = {.priority = 4, .body = msgproto_str("x")}, d;
    uint8_t buf[256];
    ssize_t n = hmsg_encode(&m, buf, sizeof(buf));
    assert_int_equal(hmsg_decode(buf, (size_t)n + 1, &d), -EBADMSG);
    buf[7] = 10; /* priority */
    assert_int_equal(hmsg_decode(buf, (size_t)n, &d), -EBADMSG);
    buf[7] = 4;
    buf[0] ^= 1;
    assert_int_equal(hmsg_decode(buf, (size_t)n, &d), -EBADMSG);
    m.priority = 10;
    assert_int_equal(hmsg_encode(&m, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_record_type_survives_encode_then_decode),
        cmocka_unit_test(send_fields_decode_to_what_was_encoded),
        cmocka_unit_test(decode_rejects_truncated_and_trailing_bytes),
        cmocka_unit_test(decode_rejects_an_unknown_version_or_type),
        cmocka_unit_test(decode_rejects_a_string_without_its_nul_or_with_one_inside),
        cmocka_unit_test(encode_refuses_a_string_with_a_nul_and_a_small_buffer),
        cmocka_unit_test(fragments_reassemble_to_the_original_record),
        cmocka_unit_test(fragment_refuses_a_record_over_the_maximum),
        cmocka_unit_test(reassembly_refuses_an_announced_total_over_the_maximum),
        cmocka_unit_test(reassembly_refuses_a_sequence_break),
        cmocka_unit_test(message_with_every_field_and_property_type_round_trips),
        cmocka_unit_test(message_decode_rejects_bad_magic_priority_and_trailing_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
