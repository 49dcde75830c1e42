/*
 * Bounded randomized model test of the engine: random sends, subscribes
 * (credit windows of different sizes), acks, releases, nacks (modified),
 * rejects, unsubscribes and connection closes against a reference model of
 * at-least-once delivery on one anycast queue with a DLQ. Checked on every
 * delivery: the message exists, is not acknowledged, is not outstanding at
 * another consumer, carries exactly the failed-delivery count the model
 * expects, and first deliveries come in send order. At the end every sent
 * message is acknowledged exactly once or sits in the DLQ exactly once.
 * Seeds are fixed, so a failure is reproducible; bounded in op count.
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

#define SEEDS 12
#define OPS 4000
#define MAXMSG 4000
#define NCONN 4
#define MAX_ATTEMPTS 4

enum mstate { M_NONE, M_QUEUED, M_OUT, M_ACKED, M_DLQ };

struct model {
    enum mstate st[MAXMSG];
    uint32_t failures[MAXMSG];
    int nsent;
    int last_first;
    /* outstanding deliveries: conn, consumer, delivery id, msg */
    struct { uint64_t conn, consumer, did; int msg; } out[MAXMSG];
    int nout;
    uint64_t consumer_of[NCONN + 1]; /* 0 = none */
    uint64_t next_consumer;
    size_t seen;
    uint64_t rng;
};

static uint32_t rnd(struct model *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return (uint32_t)m->rng;
}

static void absorb(struct model *m, struct harness *h)
{
    for (; m->seen < h->ndl; m->seen++) {
        const struct h_delivery *d = &h->dl[m->seen];
        int id = atoi(d->body + 1);
        assert_true(id >= 0 && id < m->nsent);
        assert_int_equal(m->st[id], M_QUEUED); /* not acked, not out elsewhere, not in DLQ */
        assert_int_equal(d->delivery_count, m->failures[id]);
        if (!d->redelivered) {
            assert_true(id > m->last_first);
            m->last_first = id;
        }
        m->st[id] = M_OUT;
        m->out[m->nout].conn = d->conn;
        m->out[m->nout].consumer = d->consumer;
        m->out[m->nout].did = d->delivery_id;
        m->out[m->nout].msg = id;
        m->nout++;
    }
}

static void fail_one(struct model *m, int id)
{
    m->failures[id]++;
    m->st[id] = m->failures[id] >= MAX_ATTEMPTS ? M_DLQ : M_QUEUED;
}

static void drop_out(struct model *m, int i)
{
    m->out[i] = m->out[--m->nout];
}

static void settle_random(struct model *m, struct harness *h)
{
    if (!m->nout)
        return;
    int i = (int)(rnd(m) % (uint32_t)m->nout), id = m->out[i].msg;
    uint32_t k = rnd(m) % 10;
    uint16_t type = k < 6 ? MSGPROTO_ACK : k < 8 ? MSGPROTO_RELEASE : k < 9 ? MSGPROTO_MODIFIED
                                                                             : MSGPROTO_REJECT;
    uint64_t conn = m->out[i].conn, cons = m->out[i].consumer, did = m->out[i].did;
    drop_out(m, i);
    if (type == MSGPROTO_ACK)
        m->st[id] = M_ACKED;
    else if (type == MSGPROTO_RELEASE)
        m->st[id] = M_QUEUED;
    else if (type == MSGPROTO_MODIFIED)
        fail_one(m, id);
    else
        m->st[id] = M_DLQ;
    assert_int_equal(h_settle(h, type, conn, cons, did, 0, 0, 0), 0);
}

/* Everything the consumer on conn holds goes back with one more failure. */
static void release_all_of(struct model *m, uint64_t conn)
{
    for (int i = m->nout - 1; i >= 0; i--)
        if (m->out[i].conn == conn) {
            fail_one(m, m->out[i].msg);
            drop_out(m, i);
        }
}

static void step(struct model *m, struct harness *h)
{
    uint32_t k = rnd(m) % 100;
    uint64_t conn = 1 + rnd(m) % NCONN;
    char body[16];
    if (k < 35 && m->nsent < MAXMSG) {
        snprintf(body, sizeof(body), "m%d", m->nsent);
        m->st[m->nsent++] = M_QUEUED;
        h_send(h, 99, "q", body, NULL);
    } else if (k < 45 && !m->consumer_of[conn]) {
        struct h_sub_opts o = {.routing = MSGPROTO_ANYCAST,
                               .options = (rnd(m) & 1) ? MSGPROTO_SUB_WINDOW : 0,
                               .credit = 1 + rnd(m) % 5};
        m->consumer_of[conn] = ++m->next_consumer;
        assert_int_equal(h_sub(h, conn, m->consumer_of[conn], "q", &o), 0);
    } else if (k < 48 && m->consumer_of[conn]) {
        struct msgproto_consumer_ref u = {conn, m->consumer_of[conn], 0};
        release_all_of(m, conn);
        m->consumer_of[conn] = 0;
        assert_int_equal(core_unsubscribe(h->e, 0, &u, false), 0);
    } else if (k < 50) {
        release_all_of(m, conn);
        m->consumer_of[conn] = 0;
        core_conn_close(h->e, 0, conn);
        h_conn(h, conn, "");
    } else if (k < 55 && m->consumer_of[conn]) {
        core_credit(h->e, 0, conn, m->consumer_of[conn], 1 + rnd(m) % 3);
    } else {
        settle_random(m, h);
    }
    absorb(m, h);
}

static void drain(struct model *m, struct harness *h, const char *queue, enum mstate want)
{
    size_t first = h->ndl;
    h_conn(h, 50, "");
    h_sub(h, 50, 1, queue, NULL);
    for (size_t i = first; i < h->ndl; i++) {
        int id = atoi(h->dl[i].body + 1);
        assert_int_equal(m->st[id], want);
        m->st[id] = want == M_QUEUED ? M_ACKED : M_NONE;
        h_settle(h, MSGPROTO_ACK, 50, 1, h->dl[i].delivery_id, 0, 0, 0);
    }
    core_conn_close(h->e, 0, 50);
}

static void random_operations_never_lose_or_duplicate_a_message(void **state)
{
    (void)state;
    struct core_config cfg;
    core_config_defaults(&cfg);
    cfg.max_delivery_attempts = MAX_ATTEMPTS;
    for (int seed = 1; seed <= SEEDS; seed++) {
        static struct model m;
        memset(&m, 0, sizeof(m));
        m.rng = 0x2545F4914F6CDD1Dull * (uint64_t)seed;
        m.last_first = -1;
        struct harness *h = h_new(&cfg);
        for (uint64_t c = 1; c <= NCONN; c++)
            h_conn(h, c, "");
        h_conn(h, 99, "producer");
        for (int i = 0; i < OPS; i++)
            step(&m, h);
        for (uint64_t c = 1; c <= NCONN; c++) {
            release_all_of(&m, c);
            core_conn_close(h->e, 0, c);
        }
        m.seen = h->ndl; /* the drains check on their own */
        drain(&m, h, "q", M_QUEUED);
        drain(&m, h, "DLQ", M_DLQ);
        int acked = 0;
        for (int i = 0; i < m.nsent; i++) {
            assert_true(m.st[i] == M_ACKED || m.st[i] == M_NONE);
            acked += m.st[i] == M_ACKED;
        }
        const struct core_queue_stat *st = h_stat(h, "q");
        assert_int_equal(st->messages, 0);
        assert_int_equal(st->added, (uint64_t)m.nsent);
        assert_int_equal(st->acked + st->dead_lettered, (uint64_t)m.nsent);
        assert_true(acked > 0);
        h_free(h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_operations_never_lose_or_duplicate_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
