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
 * A second test runs the same random load with durable messages, then
 * rebuilds a fresh engine from the records the first one journaled (the
 * persist ops) and checks both hold the same messages, in the same order,
 * with the same delivery counts: the persist contract is enough to restart.
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

static bool durable_sends;

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
        struct h_send_opts o = {.routing = MSGPROTO_ANYCAST, .priority = 4,
                                .durable = durable_sends};
        h_send(h, 99, "q", body, &o);
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

/* ---- restart: rebuild a second engine from what the first journaled ---- */

struct seen {
    char body[64];
    uint32_t count;
};

static size_t drain_view(struct harness *h, uint64_t conn, const char *queue, struct seen *out,
                         size_t cap)
{
    size_t first = h->ndl, n = 0;
    h_conn(h, conn, "");
    h_sub(h, conn, 1, queue, NULL);
    for (size_t i = first; i < h->ndl && n < cap; i++, n++) {
        snprintf(out[n].body, sizeof(out[n].body), "%s", h->dl[i].body);
        out[n].count = h->dl[i].delivery_count;
    }
    core_conn_close(h->e, 0, conn);
    return n;
}

/* The store's view of the journal: live queues, live refs with their last
 * delivery count, in journal order. Replayed through the restore calls. */
static void replay(const struct harness *from, struct harness *to)
{
    const struct h_journal_rec *jr = from->jr;
    size_t n = from->njr;
    for (size_t i = 0; i < n; i++) {
        if (jr[i].op != 'Q')
            continue;
        bool removed = false;
        for (size_t j = i + 1; j < n; j++)
            removed |= jr[j].op == 'q' && jr[j].a == jr[i].a;
        struct core_queue_info qi = {.id = jr[i].a, .name = jr[i].name,
                                     .address = jr[i].address, .routing = jr[i].routing};
        if (!removed)
            assert_int_equal(core_restore_queue(to->e, &qi), 0);
    }
    for (size_t i = 0; i < n; i++)
        if (jr[i].op == 'M')
            assert_int_equal(core_restore_message(to->e, jr[i].a, jr[i].data, jr[i].len), 0);
    for (size_t i = 0; i < n; i++) {
        if (jr[i].op != 'R')
            continue;
        bool acked = false;
        uint32_t count = 0;
        for (size_t j = i + 1; j < n; j++) {
            if (jr[j].a != jr[i].a || jr[j].b != jr[i].b)
                continue;
            acked |= jr[j].op == 'A';
            if (jr[j].op == 'C')
                count = jr[j].count;
        }
        if (!acked)
            assert_int_equal(core_restore_ref(to->e, jr[i].a, jr[i].b, count), 0);
    }
    assert_int_equal(core_restore_done(to->e), 0);
}

static void restart_from_the_journal_rebuilds_the_same_queues(void **state)
{
    (void)state;
    struct core_config cfg;
    core_config_defaults(&cfg);
    cfg.max_delivery_attempts = MAX_ATTEMPTS;
    durable_sends = true;
    size_t compared = 0, with_count = 0, dlq_runs = 0;
    for (int seed = 1; seed <= 4; seed++) {
        static struct model m;
        memset(&m, 0, sizeof(m));
        m.rng = 0x9E3779B97F4A7C15ull * (uint64_t)seed;
        m.last_first = -1;
        struct harness *h = h_new(&cfg);
        for (uint64_t c = 1; c <= NCONN; c++)
            h_conn(h, c, "");
        h_conn(h, 99, "producer");
        for (int i = 0; i < 2000; i++)
            step(&m, h);
        for (uint64_t c = 1; c <= NCONN; c++)
            core_conn_close(h->e, 0, c); /* what a crash would release: counts raised */
        core_on_durable(h->e, (uint64_t)h->lsn);
        struct harness *h2 = h_new(&cfg);
        replay(h, h2);
        assert_int_equal(h2->njr, 0); /* restoring journals nothing */
        const char *queues[] = {"q", "DLQ"};
        for (int qi = 0; qi < 2; qi++) {
            static struct seen a[MAXMSG], b[MAXMSG];
            bool exists = h_stat(h, queues[qi]) != NULL;
            assert_int_equal(exists, h_stat(h2, queues[qi]) != NULL);
            if (!exists)
                continue;
            size_t na = drain_view(h, 60, queues[qi], a, MAXMSG);
            size_t nb = drain_view(h2, 60, queues[qi], b, MAXMSG);
            assert_int_equal(na, nb);
            for (size_t i = 0; i < na; i++) {
                assert_string_equal(a[i].body, b[i].body);
                assert_int_equal(a[i].count, b[i].count);
                with_count += a[i].count > 0;
            }
            compared += na;
            dlq_runs += qi == 1;
        }
        h_free(h2);
        h_free(h);
    }
    /* The comparison had substance: many messages, raised counts, a DLQ. */
    assert_true(compared > 100);
    assert_true(with_count > 10);
    assert_true(dlq_runs > 0);
    durable_sends = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_operations_never_lose_or_duplicate_a_message),
        cmocka_unit_test(restart_from_the_journal_rebuilds_the_same_queues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
