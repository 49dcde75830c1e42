/*
 * Unit tests of the engine's answer to DRAIN (core-drain.h): a drain uses
 * the credit up before it answers, and a full ring to the consumer's worker
 * does not end it early. The ring is the harness's bounded ring of worker 0
 * (ring_slots deliveries, emptied by h_ring_read, which resumes the worker).
 * The last test is a bounded randomized mix (fixed seeds) checked against
 * the rules of core-drain.h after every operation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core-drain.h"
#include "core_harness.h"

enum { CONN = 1, CONSUMER = 10, CORR = 77 };

static struct harness *setup(void)
{
    struct harness *h = h_new(NULL);
    h_conn(h, CONN, "client");
    return h;
}

static void send_n(struct harness *h, const char *queue, int n)
{
    char body[32];
    for (int i = 0; i < n; i++) {
        snprintf(body, sizeof(body), "m%d", i);
        assert_int_equal(h_send(h, CONN, queue, body, NULL), 0);
    }
}

static void sub_credit(struct harness *h, uint64_t consumer, const char *queue, uint32_t credit,
                       uint8_t options, const char *filter)
{
    struct h_sub_opts o = {
        .routing = MSGPROTO_ANYCAST, .credit = credit, .options = options, .filter = filter};
    assert_int_equal(h_sub(h, CONN, consumer, queue, &o), 0);
}

static int drain(struct harness *h, uint64_t consumer, uint64_t corr)
{
    struct msgproto_consumer_ref d = {.conn = CONN, .consumer = consumer, .corr = corr};
    return core_drain(h->e, 0, &d);
}

/* Reads the ring until the drain is answered; bounded. Returns the reads. */
static int read_until_done(struct harness *h, uint64_t corr)
{
    int reads = 0;
    while (!h_done_for(h, corr) && reads < 100) {
        h_ring_read(h);
        reads++;
    }
    return reads;
}

static void drain_with_room_in_the_ring_answers_at_once_with_the_credit_dropped(void **state)
{
    (void)state;
    struct harness *h = setup();
    send_n(h, "q", 3);
    sub_credit(h, CONSUMER, "q", 2, 0, NULL);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 2);
    core_credit(h->e, 0, CONN, CONSUMER, 8); /* 10 given in all, 3 used */
    assert_int_equal(drain(h, CONSUMER, CORR), 0);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 3);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_done_for(h, CORR)->status, 7);
    send_n(h, "q", 1); /* the credit is gone */
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 3);
    h_free(h);
}

static void drain_of_an_unknown_consumer_answers_enoent(void **state)
{
    (void)state;
    struct harness *h = setup();
    assert_int_equal(drain(h, 99, CORR), -ENOENT);
    assert_int_equal(h_done_for(h, CORR)->status, -ENOENT);
    h_free(h);
}

static void drain_of_a_window_consumer_keeps_its_window_and_answers_zero(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 1;
    send_n(h, "q", 5);
    sub_credit(h, CONSUMER, "q", 3, MSGPROTO_SUB_WINDOW, NULL);
    drain(h, CONSUMER, CORR);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_done_for(h, CORR)->status, 0);
    h_ring_read(h);
    h_ring_read(h);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 3); /* the window still works */
    h_free(h);
}

static void drain_waits_for_a_full_ring_until_its_credit_is_used_up(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 10);
    sub_credit(h, CONSUMER, "q", 6, 0, NULL);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 2); /* the ring is full */
    drain(h, CONSUMER, CORR);
    assert_null(h_done_for(h, CORR)); /* 4 credits left and 8 messages ready */
    h_ring_read(h);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 4);
    assert_null(h_done_for(h, CORR));
    h_ring_read(h);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 6);
    const struct h_done *d = h_done_for(h, CORR);
    assert_non_null(d);
    assert_int_equal(d->status, 0); /* every credit was used */
    assert_int_equal(d->ndl, 6);    /* after the deliveries, on the ring */
    for (int i = 0; i < 3; i++)
        h_ring_read(h);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 6);
    assert_int_equal(h_stat(h, "q")->messages, 10); /* 6 delivering, 4 ready */
    assert_int_equal(h_stat(h, "q")->delivering, 6);
    h_free(h);
}

static void drain_ends_when_the_queue_empties_behind_a_full_ring(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 5);
    sub_credit(h, CONSUMER, "q", 50, 0, NULL);
    drain(h, CONSUMER, CORR);
    assert_null(h_done_for(h, CORR));
    int reads = read_until_done(h, CORR);
    assert_int_equal(reads, 2); /* 2 + 2 + the last one */
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 5);
    assert_int_equal(h_done_for(h, CORR)->status, 45);
    assert_int_equal(h_done_for(h, CORR)->ndl, 5);
    assert_int_equal(h_done_count(h, CORR), 1);
    h_free(h);
}

static void drain_ends_when_another_worker_takes_what_was_left(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 6);
    sub_credit(h, CONSUMER, "q", 20, 0, NULL);
    drain(h, CONSUMER, CORR);
    assert_null(h_done_for(h, CORR));
    /* A consumer on worker 1 (whose ring has room) takes the other four. */
    assert_int_equal(core_conn_open(h->e, 1, 5, "other", "user"), 0);
    struct msgproto_subscribe s = {.conn = 5,
                                   .consumer = 50,
                                   .routing = MSGPROTO_ANYCAST,
                                   .credit = UINT32_MAX,
                                   .address = msgproto_str("q")};
    assert_int_equal(core_subscribe(h->e, 1, &s), 0);
    assert_int_equal(h_count_for(h, 5, 50), 4);
    const struct h_done *d = h_done_for(h, CORR);
    assert_non_null(d); /* worker 0 is still blocked, but nothing is left for it */
    assert_int_equal(d->status, 18);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 2);
    h_free(h);
}

static void drain_ends_at_once_when_only_messages_its_filter_refuses_are_left(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 1;
    struct h_send_opts red = {
        .routing = MSGPROTO_ANYCAST, .priority = 4, .pname = "color", .pval = "red"};
    struct h_send_opts blue = red;
    blue.pval = "blue";
    h_send(h, CONN, "q", "r1", &red);
    h_send(h, CONN, "q", "b1", &blue);
    sub_credit(h, CONSUMER, "q", 10, 0, "color = 'red'");
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 1);
    /* Another consumer of the same worker finds the ring full: worker 0 is blocked. */
    sub_credit(h, CONSUMER + 1, "other", 10, 0, NULL);
    send_n(h, "other", 1);
    assert_int_equal(h_count_for(h, CONN, CONSUMER + 1), 0);
    drain(h, CONSUMER, CORR);
    assert_non_null(h_done_for(h, CORR)); /* b1 is left, which it would never get */
    assert_int_equal(h_done_for(h, CORR)->status, 9);
    h_free(h);
}

static void drain_waits_while_its_filter_still_matches_a_ready_message(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 1;
    struct h_send_opts red = {
        .routing = MSGPROTO_ANYCAST, .priority = 4, .pname = "color", .pval = "red"};
    struct h_send_opts blue = red;
    blue.pval = "blue";
    h_send(h, CONN, "q", "r1", &red);
    h_send(h, CONN, "q", "b1", &blue);
    h_send(h, CONN, "q", "r2", &red);
    sub_credit(h, CONSUMER, "q", 10, 0, "color = 'red'");
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 1);
    drain(h, CONSUMER, CORR);
    assert_null(h_done_for(h, CORR)); /* r2 is still for it */
    h_ring_read(h);
    assert_string_equal(h_last_for(h, CONN, CONSUMER)->body, "r2");
    assert_int_equal(h_done_for(h, CORR)->status, 8);
    assert_int_equal(h_done_for(h, CORR)->ndl, 2);
    h_free(h);
}

static void credit_added_while_a_drain_is_pending_is_drained_too(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 20);
    sub_credit(h, CONSUMER, "q", 4, 0, NULL);
    drain(h, CONSUMER, CORR);
    core_credit(h->e, 0, CONN, CONSUMER, 3);
    assert_null(h_done_for(h, CORR));
    read_until_done(h, CORR);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 7);
    assert_int_equal(h_done_for(h, CORR)->status, 0);
    assert_int_equal(h_done_for(h, CORR)->ndl, 7);
    h_free(h);
}

static void second_drain_while_one_is_pending_answers_the_first_with_zero(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 3);
    sub_credit(h, CONSUMER, "q", 10, 0, NULL);
    drain(h, CONSUMER, CORR);
    assert_null(h_done_for(h, CORR));
    drain(h, CONSUMER, CORR + 1);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_done_for(h, CORR)->status, 0); /* nothing dropped by it */
    assert_null(h_done_for(h, CORR + 1));
    read_until_done(h, CORR + 1);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 3);
    assert_int_equal(h_done_for(h, CORR + 1)->status, 7);
    assert_true(h_done_for(h, CORR)->ndl < h_done_for(h, CORR + 1)->ndl);
    h_ring_read(h);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_done_count(h, CORR + 1), 1);
    h_free(h);
}

static void unsubscribe_answers_a_pending_drain_once_with_the_credit_it_held(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 5);
    sub_credit(h, CONSUMER, "q", 10, 0, NULL);
    drain(h, CONSUMER, CORR);
    assert_null(h_done_for(h, CORR));
    struct msgproto_consumer_ref u = {.conn = CONN, .consumer = CONSUMER, .corr = 0};
    assert_int_equal(core_unsubscribe(h->e, 0, &u, false), 0);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_done_for(h, CORR)->status, 8);
    h_ring_read(h);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_stat(h, "q")->messages, 5); /* both deliveries went back */
    assert_int_equal(h_stat(h, "q")->delivering, 0);
    h_free(h);
}

static void closed_connection_with_a_pending_drain_is_answered_nothing(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 5);
    sub_credit(h, CONSUMER, "q", 10, 0, NULL);
    sub_credit(h, CONSUMER + 1, "q", 10, 0, NULL);
    drain(h, CONSUMER, CORR);
    drain(h, CONSUMER + 1, CORR + 1);
    assert_int_equal(h->ndone, 0);
    core_conn_close(h->e, 0, CONN);
    h_ring_read(h);
    assert_int_equal(h->ndone, 0);
    assert_int_equal(h_stat(h, "q")->messages, 5);
    h_free(h); /* and ASan finds nothing left behind */
}

static void dead_worker_with_a_pending_drain_is_answered_nothing(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 1;
    send_n(h, "q", 3);
    sub_credit(h, CONSUMER, "q", 10, 0, NULL);
    drain(h, CONSUMER, CORR);
    core_worker_gone(h->e, 0);
    assert_int_equal(core_worker_hello(h->e, 0, 1, MSGPROTO_VERSION), 0);
    h_ring_read(h);
    assert_int_equal(h->ndone, 0);
    h_free(h);
}

static void browse_that_shows_everything_answers_its_pending_drain_once(void **state)
{
    (void)state;
    struct harness *h = setup();
    h->ring_slots = 2;
    send_n(h, "q", 3);
    sub_credit(h, CONSUMER, "q", 10, MSGPROTO_SUB_BROWSE, NULL);
    drain(h, CONSUMER, CORR);
    assert_null(h_done_for(h, CORR));
    read_until_done(h, CORR);
    assert_int_equal(h_count_for(h, CONN, CONSUMER), 3);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_done_for(h, CORR)->status, 7);
    assert_int_equal(h->nclosed, 1); /* browse complete */
    h_ring_read(h);
    assert_int_equal(h_done_count(h, CORR), 1);
    assert_int_equal(h_stat(h, "q")->messages, 3);
    h_free(h);
}

/* ---- randomized: drains, credit, acks, closes over a small full ring ---- */

enum { RSLOTS = 6, RCONNS = 3, ROPS = 700, RSEEDS = 12, RCORR0 = 1000, ROUT = 4096 };
enum corr_state { C_NONE, C_ISSUED, C_ANSWERED, C_ORPHANED };

struct rslot {
    uint64_t conn, id;               /* id 0: free */
    uint64_t granted, dropped, corr; /* corr: its drain not answered yet, 0 none */
};

struct rmodel {
    struct harness *h;
    struct rslot s[RSLOTS];
    uint64_t next_id, next_corr, rng;
    enum corr_state corr_st[ROPS + 1];
    int corr_slot[ROPS + 1];
    struct {
        uint64_t conn, id, did;
    } out[ROUT];
    size_t nout, dl_seen, done_seen;
};

static uint32_t rnd(struct rmodel *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return (uint32_t)m->rng;
}

/* A random slot with a consumer (-1: none). */
static int live_slot(struct rmodel *m)
{
    int k = (int)(rnd(m) % RSLOTS);
    for (int i = 0; i < RSLOTS; i++)
        if (m->s[(k + i) % RSLOTS].id)
            return (k + i) % RSLOTS;
    return -1;
}

static void forget_out(struct rmodel *m, uint64_t conn, uint64_t id)
{
    for (size_t i = 0; i < m->nout;)
        if (m->out[i].conn == conn && (id == 0 || m->out[i].id == id))
            m->out[i] = m->out[--m->nout];
        else
            i++;
}

static void absorb_deliveries(struct rmodel *m)
{
    for (; m->dl_seen < m->h->ndl; m->dl_seen++) {
        const struct h_delivery *d = &m->h->dl[m->dl_seen];
        assert_true(m->nout < ROUT);
        m->out[m->nout].conn = d->conn;
        m->out[m->nout].id = d->consumer;
        m->out[m->nout].did = d->delivery_id;
        m->nout++;
    }
}

static uint64_t ready_in_q(struct harness *h)
{
    const struct core_queue_stat *st = h_stat(h, "q");
    return st ? st->messages - st->delivering : 0;
}

/*
 * The answers of one operation: each drain answered once, never after its
 * connection went, and never with credit dropped while worker 0's ring was
 * full and a message was ready (all consumers are on worker 0 and take every
 * message, so that is "drained" with a message left it could have had). A
 * drain answered for good leaves granted = delivered + dropped.
 */
static void check_answers(struct rmodel *m, bool unsubscribing)
{
    bool answered[RSLOTS] = {false};
    uint64_t ready = ready_in_q(m->h);
    for (; m->done_seen < m->h->ndone; m->done_seen++) {
        const struct h_done *d = &m->h->done[m->done_seen];
        assert_true(d->corr > RCORR0 && d->corr <= RCORR0 + ROPS);
        int k = (int)(d->corr - RCORR0);
        assert_int_equal(m->corr_st[k], C_ISSUED); /* once, and not to a gone connection */
        m->corr_st[k] = C_ANSWERED;
        assert_true(d->status >= 0);
        struct rslot *sl = &m->s[m->corr_slot[k]];
        if (!unsubscribing)
            assert_true(d->status == 0 || d->ring_used < m->h->ring_slots || ready == 0);
        sl->dropped += (uint64_t)d->status;
        if (sl->corr == d->corr) {
            sl->corr = 0;
            answered[m->corr_slot[k]] = true;
        }
    }
    for (int i = 0; i < RSLOTS; i++)
        if (answered[i])
            assert_int_equal(m->s[i].granted,
                             h_count_for(m->h, m->s[i].conn, m->s[i].id) + m->s[i].dropped);
}

static void r_subscribe(struct rmodel *m, int i, uint32_t credit)
{
    struct rslot *sl = &m->s[i];
    *sl = (struct rslot){.conn = (uint64_t)(i % RCONNS) + 1, .id = m->next_id++, .granted = credit};
    struct h_sub_opts o = {.routing = MSGPROTO_ANYCAST, .credit = credit};
    assert_int_equal(h_sub(m->h, sl->conn, sl->id, "q", &o), 0);
}

static void r_drain(struct rmodel *m, int i)
{
    struct rslot *sl = &m->s[i];
    uint64_t corr = ++m->next_corr;
    int k = (int)(corr - RCORR0);
    m->corr_st[k] = C_ISSUED;
    m->corr_slot[k] = i;
    sl->corr = corr; /* a pending one before it is answered now, with 0 */
    struct msgproto_consumer_ref d = {.conn = sl->conn, .consumer = sl->id, .corr = corr};
    core_drain(m->h->e, 0, &d);
}

static void r_unsubscribe(struct rmodel *m, int i)
{
    struct rslot *sl = &m->s[i];
    struct msgproto_consumer_ref u = {.conn = sl->conn, .consumer = sl->id};
    assert_int_equal(core_unsubscribe(m->h->e, 0, &u, false), 0);
    check_answers(m, true);
    assert_int_equal(sl->corr, 0); /* its pending drain was answered */
    forget_out(m, sl->conn, sl->id);
    sl->id = 0;
}

static void r_close_conn(struct rmodel *m, uint64_t conn)
{
    for (int i = 0; i < RSLOTS; i++) {
        struct rslot *sl = &m->s[i];
        if (sl->id && sl->conn == conn) {
            if (sl->corr)
                m->corr_st[sl->corr - RCORR0] = C_ORPHANED;
            sl->id = 0;
        }
    }
    forget_out(m, conn, 0);
    core_conn_close(m->h->e, 0, conn);
    h_conn(m->h, conn, "client");
}

static void r_ack(struct rmodel *m)
{
    if (!m->nout)
        return;
    size_t i = rnd(m) % m->nout;
    assert_int_equal(
        h_settle(m->h, MSGPROTO_ACK, m->out[i].conn, m->out[i].id, m->out[i].did, 0, 0, 0), 0);
    m->out[i] = m->out[--m->nout];
}

static void r_step(struct rmodel *m, int *sent)
{
    uint32_t r = rnd(m) % 100;
    int i = live_slot(m);
    char body[16];
    if (r < 20) {
        for (uint32_t n = 1 + rnd(m) % 3; n > 0; n--) {
            snprintf(body, sizeof(body), "m%d", (*sent)++);
            assert_int_equal(h_send(m->h, 1, "q", body, NULL), 0);
        }
    } else if (r < 38 && i >= 0) {
        uint32_t k = 1 + rnd(m) % 4;
        m->s[i].granted += k;
        core_credit(m->h->e, 0, m->s[i].conn, m->s[i].id, k);
    } else if (r < 55 && i >= 0 && m->next_corr < RCORR0 + ROPS) {
        r_drain(m, i);
    } else if (r < 75) {
        h_ring_read(m->h);
    } else if (r < 86) {
        r_ack(m);
    } else if (r < 90 && i >= 0) {
        r_unsubscribe(m, i);
    } else if (r < 92) {
        r_close_conn(m, 1 + rnd(m) % RCONNS);
    } else {
        int k = (int)(rnd(m) % RSLOTS);
        if (!m->s[k].id)
            r_subscribe(m, k, 1 + rnd(m) % 4);
    }
    absorb_deliveries(m);
    check_answers(m, false);
}

static void
random_drains_are_answered_once_and_never_with_a_message_left_behind_a_full_ring(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= RSEEDS; seed++) {
        static struct rmodel m;
        memset(&m, 0, sizeof(m));
        m.rng = seed * 0x9E3779B97F4A7C15ull;
        m.h = h_new_volatile(NULL);
        m.h->ring_slots = 1 + seed % 3;
        m.next_id = 100;
        m.next_corr = RCORR0;
        for (uint64_t c = 1; c <= RCONNS; c++)
            h_conn(m.h, c, "client");
        for (int i = 0; i < RSLOTS; i += 2)
            r_subscribe(&m, i, 2);
        int sent = 0;
        for (int op = 0; op < ROPS; op++)
            r_step(&m, &sent);
        /* The worker reads its ring until nothing moves: every drain ends. */
        for (int reads = 0; reads < 1000; reads++) {
            size_t before = m.h->ndl;
            h_ring_read(m.h);
            absorb_deliveries(&m);
            check_answers(&m, false);
            if (m.h->ndl == before && m.h->ring_used < m.h->ring_slots)
                break;
        }
        for (int i = 0; i < RSLOTS; i++)
            assert_true(!m.s[i].id || m.s[i].corr == 0);
        assert_true(m.next_corr > RCORR0 + 20); /* the mix did drain */
        h_free(m.h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drain_with_room_in_the_ring_answers_at_once_with_the_credit_dropped),
        cmocka_unit_test(drain_of_an_unknown_consumer_answers_enoent),
        cmocka_unit_test(drain_of_a_window_consumer_keeps_its_window_and_answers_zero),
        cmocka_unit_test(drain_waits_for_a_full_ring_until_its_credit_is_used_up),
        cmocka_unit_test(drain_ends_when_the_queue_empties_behind_a_full_ring),
        cmocka_unit_test(drain_ends_when_another_worker_takes_what_was_left),
        cmocka_unit_test(drain_ends_at_once_when_only_messages_its_filter_refuses_are_left),
        cmocka_unit_test(drain_waits_while_its_filter_still_matches_a_ready_message),
        cmocka_unit_test(credit_added_while_a_drain_is_pending_is_drained_too),
        cmocka_unit_test(second_drain_while_one_is_pending_answers_the_first_with_zero),
        cmocka_unit_test(unsubscribe_answers_a_pending_drain_once_with_the_credit_it_held),
        cmocka_unit_test(closed_connection_with_a_pending_drain_is_answered_nothing),
        cmocka_unit_test(dead_worker_with_a_pending_drain_is_answered_nothing),
        cmocka_unit_test(browse_that_shows_everything_answers_its_pending_drain_once),
        cmocka_unit_test(
            random_drains_are_answered_once_and_never_with_a_message_left_behind_a_full_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
