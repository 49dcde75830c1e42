/*
 * Randomized robustness test of the engine behind core_handle_record():
 * 60k worker→core records, built at random from small id and name sets (so
 * they hit existing connections, consumers, deliveries and transactions),
 * a third of them then mutated at the byte level. The engine must answer
 * every one with 0 or a negative errno, never crash, and free everything at
 * the end (ASan/LSan). Then the same engine must still serve a clean
 * send → deliver → ack. Fixed seed: reproducible.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "core_harness.h"
#include "hamq/log.h"
#include "hamq/msgproto.h"

#define RECORDS 60000

static uint64_t rng = 0x1234567887654321ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static const char *pick(const char *const *v, size_t n) { return v[rnd() % n]; }

static const char *const addrs[] = {"q", "t", "DLQ", "a::b", "t::x.y", "", "q::q"};
static const char *const filters[] = {"", "n > 1", "color = 'red' OR n IS NULL", "bad (("};

static size_t random_record(struct harness *h, uint8_t *buf, size_t cap, uint8_t *msg, size_t mcap)
{
    struct msgproto_rec r;
    memset(&r, 0, sizeof(r));
    uint16_t types[] = {MSGPROTO_CONN_OPEN, MSGPROTO_CONN_CLOSE, MSGPROTO_SEND, MSGPROTO_SEND,
                        MSGPROTO_SEND, MSGPROTO_SUBSCRIBE, MSGPROTO_UNSUBSCRIBE, MSGPROTO_CREDIT,
                        MSGPROTO_ACK, MSGPROTO_ACK, MSGPROTO_RELEASE, MSGPROTO_MODIFIED,
                        MSGPROTO_REJECT, MSGPROTO_TX_BEGIN, MSGPROTO_TX_COMMIT,
                        MSGPROTO_TX_ROLLBACK, MSGPROTO_STAT_REQ, MSGPROTO_FRAGMENT, MSGPROTO_HELLO,
                        MSGPROTO_DELIVER};
    r.type = types[rnd() % (sizeof(types) / sizeof(types[0]))];
    r.flags = (uint8_t)(rnd() & 0x7f);
    uint64_t conn = 1 + rnd() % 4, consumer = 1 + rnd() % 4, tx = rnd() % 3;
    switch (r.type) {
    case MSGPROTO_CONN_OPEN:
    case MSGPROTO_CONN_CLOSE:
        r.u.conn = (struct msgproto_conn){conn, msgproto_str((rnd() & 1) ? "cid" : ""),
                                          msgproto_str("u")};
        break;
    case MSGPROTO_SEND: {
        size_t n = h_msg(msg, mcap, "body", (uint8_t)(rnd() % 10), "n", "v",
                         (rnd() % 4) ? 0 : h->now - 5);
        r.u.send = (struct msgproto_send){conn, rnd() % 5, tx, (uint8_t)(rnd() % 4),
                                          (uint8_t)(rnd() % 12), 0, msgproto_str(pick(addrs, 7)),
                                          msgproto_str(""),
                                          msgproto_str((rnd() % 3) ? "" : "dup"),
                                          {msg, (uint32_t)n}};
        break;
    }
    case MSGPROTO_SUBSCRIBE:
        r.u.sub = (struct msgproto_subscribe){conn, consumer, rnd() % 5, (uint8_t)(rnd() % 4),
                                              (uint8_t)(rnd() & 0x0f), rnd() % 4,
                                              msgproto_str(pick(addrs, 7)), msgproto_str(""),
                                              msgproto_str((rnd() & 1) ? "s" : ""),
                                              msgproto_str(pick(filters, 4))};
        break;
    case MSGPROTO_UNSUBSCRIBE:
        r.u.unsub = (struct msgproto_consumer_ref){conn, consumer, rnd() % 5};
        break;
    case MSGPROTO_CREDIT:
        r.u.credit = (struct msgproto_credit){conn, consumer, rnd() % 4};
        break;
    case MSGPROTO_ACK:
    case MSGPROTO_RELEASE:
    case MSGPROTO_MODIFIED:
    case MSGPROTO_REJECT:
        r.u.settle = (struct msgproto_settle){conn, consumer, rnd() % 40, tx, rnd() % 5};
        break;
    case MSGPROTO_TX_BEGIN:
    case MSGPROTO_TX_COMMIT:
    case MSGPROTO_TX_ROLLBACK:
        r.u.tx = (struct msgproto_tx){conn, tx, rnd() % 5};
        break;
    case MSGPROTO_STAT_REQ:
        r.u.stat_req = (struct msgproto_stat_req){1, msgproto_str("q")};
        break;
    case MSGPROTO_FRAGMENT:
        r.u.frag = (struct msgproto_fragment_rec){conn, rnd() % 3, (uint8_t)(rnd() % 5),
                                                  rnd() % 64, msgproto_str("0123456789")};
        break;
    case MSGPROTO_HELLO:
        r.u.hello = (struct msgproto_hello){rnd() % 2, 1, MSGPROTO_VERSION};
        break;
    default:
        r.u.deliver = (struct msgproto_deliver){conn, consumer, 1, 1, 0, msgproto_str("x")};
    }
    ssize_t n = msgproto_encode(&r, buf, cap);
    assert_true(n > 0);
    return (size_t)n;
}

static void stat_sink(void *ctx, uint64_t request, const struct core_queue_stat *st, bool last)
{
    (void)ctx;
    (void)request;
    (void)st;
    (void)last;
}

static void random_and_mutated_records_never_crash_the_engine(void **state)
{
    (void)state;
    struct core_config cfg;
    core_config_defaults(&cfg);
    cfg.max_message_size = 4096;
    cfg.id_cache_size = 8;
    struct harness *h = h_new(&cfg);
    log_set_max_priority(2); /* the engine warns on purpose here: keep the log short */
    size_t errors = 0, delivered = 0;
    for (int i = 0; i < RECORDS; i++) {
        uint8_t buf[1024], msg[512];
        size_t len = random_record(h, buf, sizeof(buf), msg, sizeof(msg));
        if (rnd() % 3 == 0) {
            int k = 1 + (int)(rnd() % 3);
            for (int j = 0; j < k; j++)
                buf[rnd() % len] = (uint8_t)rnd();
            if (rnd() % 4 == 0)
                len = rnd() % len;
        }
        uint8_t *heap = malloc(len ? len : 1);
        memcpy(heap, buf, len);
        int rc = core_handle_record(h->e, 0, heap, len, stat_sink, NULL);
        free(heap);
        assert_true(rc <= 0);
        errors += rc < 0;
        if (i % 5000 == 0)
            core_on_durable(h->e, (uint64_t)h->lsn);
        if (h->ndl > 4096) { /* the recorder only needs recent deliveries */
            delivered += h->ndl;
            h->ndl = 0;
        }
    }
    print_message("records %d, rejected %zu, delivered %zu, journal records %zu\n", RECORDS, errors,
                  delivered + h->ndl, h->njr);
    assert_true(delivered + h->ndl > 100); /* the records reached deep into the engine */
    assert_true(errors > 0);
    /* Still serves a clean exchange afterwards. */
    core_on_durable(h->e, (uint64_t)h->lsn);
    h_conn(h, 77, "clean");
    h->ndl = 0;
    assert_int_equal(h_sub(h, 77, 1, "fresh", NULL), 0);
    assert_int_equal(h_send(h, 77, "fresh", "after", NULL), 0);
    assert_int_equal(h->ndl, 1);
    assert_string_equal(h->dl[0].body, "after");
    assert_int_equal(h_settle(h, MSGPROTO_ACK, 77, 1, h->dl[0].delivery_id, 0, 0, 0), 0);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_and_mutated_records_never_crash_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
