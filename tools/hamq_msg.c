/*
 * hamq_msg — `hamq producer`, `hamq consumer` and `hamq browser`, with the
 * Artemis CLI's flags and output lines (tools/README.md lists them and the
 * few places where hamq deliberately differs: a consumer never waits
 * forever, and exits non-zero when fewer messages than asked arrived).
 *
 * Each Artemis "thread" is one link on its own session of the single
 * connection. The producer sends unsettled messages with a window of
 * PRODUCER_WINDOW and counts a message as produced when the broker accepts
 * it (for a persistent message: once it is on disk). After a failover
 * reconnect, every message not yet accepted is sent again (duplicates are
 * possible and reported).
 *
 * With --commit-interval N (Artemis' --txt-size) each producer thread also
 * opens a coordinator link and sends its messages in transactions of N
 * (the last one may be shorter): declare, N transactional transfers, and once
 * all N were accepted, discharge. A message counts as produced when its
 * transaction committed; after a reconnect the uncommitted ones are sent again
 * in a new transaction (the broker rolled the old one back).
 */
#include "config.h"

#include <inttypes.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/codec.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamq.h"

#define PRODUCER_WINDOW 100
#define CONSUMER_WINDOW 100
#define DUP_SET_BITS    20

enum tx_phase { TX_IDLE, TX_DECLARING, TX_OPEN, TX_DISCHARGING };

/*
 * A producer thread's transaction (--commit-interval): batch_start is the
 * index of its first message, batch_acked how many of its transfers the
 * broker accepted so far; confirmed counts committed messages only.
 */
struct hq_tx {
    pn_link_t *coord; /* the coordinator link, NULL without --commit-interval */
    enum tx_phase phase;
    char id[32];
    size_t id_len;
    long batch_start, batch_acked;
    uint64_t tag;
};

struct hq_thread {
    pn_link_t *l;
    struct hq_tx tx;
    char name[700];
    long next;      /* producer: next message index to send */
    long confirmed; /* producer: accepted; consumer/browser: received */
    long refused;
    long resent;
    int64_t t0, t_end, last_rx, next_send;
    bool finished, closed_by_broker;
    bool link_error; /* the broker closed the link with an error (bad selector, ...) */
};

struct hq_msgcmd {
    struct hq_app app;
    struct hq_opts *o;
    enum { CMD_PRODUCER, CMD_CONSUMER, CMD_BROWSER } kind;
    struct hq_thread th[HQ_MAX_THREADS];
    pn_message_t *msg;
    char *text; /* --text-size / --message-size body */
    long duplicates;
    uint64_t *seen; /* consumer: hashes of (ThreadSent, count) for duplicate counting */
};

static void coord_open(struct hq_thread *t, pn_session_t *s, int i);

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int thread_of(struct hq_msgcmd *m, pn_link_t *l)
{
    for (int i = 0; i < m->o->threads; i++)
        if (m->th[i].l == l || (l && m->th[i].tx.coord == l))
            return i;
    return -1;
}

static void setup(struct hq_app *app, pn_connection_t *conn)
{
    struct hq_msgcmd *m = (struct hq_msgcmd *)app;
    char lname[64];

    for (int i = 0; i < m->o->threads; i++) {
        struct hq_thread *t = &m->th[i];
        pn_session_t *s = pn_session(conn);
        pn_session_open(s);
        snprintf(lname, sizeof(lname), "hamq-%s-%d",
                 m->kind == CMD_PRODUCER ? "producer" : "consumer", i);
        if (m->kind == CMD_PRODUCER) {
            t->l = pn_sender(s, lname);
            pn_terminus_set_address(pn_link_target(t->l), m->o->address);
            hq_set_caps(pn_link_target(t->l), m->o->topic);
            if (t->next > t->confirmed)
                t->resent += t->next - t->confirmed;
            t->next = t->confirmed; /* resend what the old connection did not confirm */
            if (m->o->commit_interval > 0)
                coord_open(t, s, i);
        } else {
            t->l = pn_receiver(s, lname);
            pn_terminus_set_address(pn_link_source(t->l), m->o->address);
            hq_set_caps(pn_link_source(t->l), m->o->topic);
            if (m->o->filter) {
                pn_data_t *f = pn_terminus_filter(pn_link_source(t->l));
                pn_data_put_map(f);
                pn_data_enter(f);
                pn_data_put_symbol(f, pn_bytes(12, "jms-selector"));
                pn_data_put_described(f);
                pn_data_enter(f);
                pn_data_put_symbol(f, pn_bytes(33, "apache.org:selector-filter:string"));
                pn_data_put_string(f, pn_bytes(strlen(m->o->filter), m->o->filter));
                pn_data_exit(f);
                pn_data_exit(f);
            }
            if (m->kind == CMD_BROWSER) {
                pn_terminus_set_distribution_mode(pn_link_source(t->l), PN_DIST_MODE_COPY);
                pn_link_set_snd_settle_mode(t->l, PN_SND_SETTLED);
            }
        }
        pn_link_open(t->l);
        if (m->kind != CMD_PRODUCER && !t->finished) {
            long left = m->o->message_count - t->confirmed;
            pn_link_flow(t->l, (int)(left < CONSUMER_WINDOW ? left : CONSUMER_WINDOW));
        }
        t->last_rx = hq_now_ms();
    }
}

/* ---- producer ---- */

/* The thread's coordinator link (a new connection: the old transaction is gone). */
static void coord_open(struct hq_thread *t, pn_session_t *s, int i)
{
    char lname[64];

    snprintf(lname, sizeof(lname), "hamq-txn-%d", i);
    t->tx.coord = pn_sender(s, lname);
    pn_terminus_t *target = pn_link_target(t->tx.coord);
    pn_terminus_set_type(target, PN_COORDINATOR);
    pn_data_t *caps = pn_terminus_capabilities(target);
    pn_data_put_array(caps, false, PN_SYMBOL);
    pn_data_enter(caps);
    pn_data_put_symbol(caps, pn_bytes(23, "amqp:local-transactions"));
    pn_data_exit(caps);
    pn_link_open(t->tx.coord);
    t->tx.phase = TX_IDLE;
    t->tx.id_len = 0;
    t->tx.batch_start = t->confirmed;
    t->tx.batch_acked = 0;
}

/* Sends declare, or discharge (commit) of the open transaction. */
static void coord_send(struct hq_msgcmd *m, struct hq_thread *t, bool declare)
{
    pn_message_clear(m->msg);
    pn_data_t *b = pn_message_body(m->msg);
    pn_data_put_described(b);
    pn_data_enter(b);
    pn_data_put_ulong(b, declare ? HQ_TXN_DECLARE : HQ_TXN_DISCHARGE);
    pn_data_put_list(b);
    pn_data_enter(b);
    if (!declare) {
        pn_data_put_binary(b, pn_bytes(t->tx.id_len, t->tx.id));
        pn_data_put_bool(b, false); /* fail = false: commit */
    }
    pn_data_exit(b);
    pn_data_exit(b);
    hq_send_message(t->tx.coord, m->msg, ++t->tx.tag, false, NULL);
    t->tx.phase = declare ? TX_DECLARING : TX_DISCHARGING;
}

/* The thread cannot go on transacting: everything not committed is refused. */
static void tx_failed(struct hq_msgcmd *m, struct hq_thread *t, const char *what,
                      pn_condition_t *c)
{
    fprintf(stderr, "%s %s refused by the broker: %s %s\n", t->name, what,
            c && pn_condition_get_name(c) ? pn_condition_get_name(c) : "",
            c && pn_condition_get_description(c) ? pn_condition_get_description(c) : "");
    t->refused = m->o->message_count - t->confirmed;
    t->link_error = true;
}

/* The coordinator's answer: declared (with the txn-id) or the discharge's outcome. */
static void coord_outcome(struct hq_msgcmd *m, struct hq_thread *t, pn_delivery_t *dl)
{
    uint64_t state = pn_delivery_remote_state(dl);
    pn_disposition_t *ds = pn_delivery_remote(dl);

    if (!state)
        return;
    if (t->tx.phase == TX_DECLARING && state == HQ_TXN_DECLARED) {
        pn_data_t *d = pn_disposition_data(ds);
        pn_data_rewind(d);
        if (pn_data_next(d) && pn_data_type(d) == PN_LIST && pn_data_enter(d) &&
            pn_data_next(d) && pn_data_type(d) == PN_BINARY &&
            pn_data_get_binary(d).size <= sizeof(t->tx.id)) {
            t->tx.id_len = pn_data_get_binary(d).size;
            memcpy(t->tx.id, pn_data_get_binary(d).start, t->tx.id_len);
            t->tx.phase = TX_OPEN;
        } else {
            tx_failed(m, t, "transaction declare (no txn-id)", NULL);
        }
    } else if (t->tx.phase == TX_DISCHARGING && state == PN_ACCEPTED) {
        t->confirmed += t->tx.batch_acked;
        printf("%s Committing transaction: %ld\n", t->name, t->confirmed); /* as Artemis */
        t->tx.batch_start = t->next;
        t->tx.batch_acked = 0;
        t->tx.phase = TX_IDLE;
    } else {
        tx_failed(m, t, t->tx.phase == TX_DECLARING ? "transaction declare" : "commit",
                  pn_disposition_condition(ds));
    }
    pn_delivery_settle(dl);
}

/* The outcome inside a transactional-state [txn-id, outcome]: accepted or not. */
static bool txn_accepted(pn_disposition_t *ds)
{
    pn_data_t *d = pn_disposition_data(ds);

    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_LIST || !pn_data_enter(d))
        return false;
    if (!pn_data_next(d)) /* the txn-id */
        return false;
    if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED || !pn_data_enter(d))
        return false; /* the outcome */
    return pn_data_next(d) && pn_data_type(d) == PN_ULONG && pn_data_get_ulong(d) == PN_ACCEPTED;
}

/*
 * --commit-interval: whether this thread may send now. Declares when no
 * transaction is open, commits one whose messages were all sent and accepted.
 */
static bool tx_ready(struct hq_msgcmd *m, struct hq_thread *t)
{
    long end = t->tx.batch_start + m->o->commit_interval;

    if (end > m->o->message_count)
        end = m->o->message_count;
    if (t->link_error)
        return false;
    if (t->tx.phase == TX_IDLE && t->next < m->o->message_count) {
        coord_send(m, t, true);
        return false;
    }
    if (t->tx.phase != TX_OPEN)
        return false;
    if (t->next < end)
        return true;
    if (t->tx.batch_acked >= end - t->tx.batch_start)
        coord_send(m, t, false);
    return false;
}

static void fill_message(struct hq_msgcmd *m, struct hq_thread *t, long i)
{
    pn_message_t *msg = m->msg;
    char text[64];

    pn_message_clear(msg);
    pn_message_set_durable(msg, m->o->persistent);
    pn_data_t *p = pn_message_properties(msg);
    pn_data_put_map(p);
    pn_data_enter(p);
    pn_data_put_string(p, pn_bytes(5, "count"));
    pn_data_put_long(p, i);
    pn_data_put_string(p, pn_bytes(10, "ThreadSent"));
    pn_data_put_string(p, pn_bytes(strlen(t->name), t->name));
    pn_data_exit(p);
    pn_data_t *b = pn_message_body(msg);
    if (m->o->message_size > 0) {
        pn_message_set_inferred(msg, true);
        pn_data_put_binary(b, pn_bytes((size_t)m->o->message_size, m->text));
    } else if (m->o->text_size > 0) {
        pn_data_put_string(b, pn_bytes((size_t)m->o->text_size, m->text));
    } else if (m->o->message) {
        pn_data_put_string(b, pn_bytes(strlen(m->o->message), m->o->message));
    } else {
        snprintf(text, sizeof(text), "test message: %ld", i);
        pn_data_put_string(b, pn_bytes(strlen(text), text));
    }
}

static void produce(struct hq_msgcmd *m, struct hq_thread *t, int64_t now)
{
    bool tx = m->o->commit_interval > 0;

    while (t->next < m->o->message_count && pn_link_credit(t->l) > 0 &&
           t->next - t->confirmed - t->tx.batch_acked - t->refused < PRODUCER_WINDOW &&
           now >= t->next_send && (!tx || tx_ready(m, t))) {
        pn_bytes_t id = pn_bytes(t->tx.id_len, t->tx.id);
        fill_message(m, t, t->next);
        if (!hq_send_message(t->l, m->msg, (uint64_t)t->next, false, tx ? &id : NULL)) {
            fprintf(stderr, "%s cannot encode message %ld\n", t->name, t->next);
            t->refused++;
        }
        if (m->o->verbose)
            printf("%s Sent: message %ld\n", t->name, t->next);
        t->next++;
        if (m->o->sleep_ms > 0)
            t->next_send = now + m->o->sleep_ms;
    }
    if (tx && t->next == m->o->message_count)
        tx_ready(m, t); /* the last transaction: commit once all are accepted */
}

static void producer_outcome(struct hq_msgcmd *m, struct hq_thread *t, pn_delivery_t *dl)
{
    uint64_t state = pn_delivery_remote_state(dl);

    if (state == HQ_TXN_STATE && txn_accepted(pn_delivery_remote(dl))) {
        t->tx.batch_acked++;
    } else if (state == PN_ACCEPTED) {
        t->confirmed++;
    } else if (state == HQ_TXN_STATE) {
        tx_failed(m, t, "a message of its transaction",
                  pn_disposition_condition(pn_delivery_remote(dl)));
    } else if (state == PN_REJECTED || state == PN_RELEASED || state == PN_MODIFIED) {
        pn_condition_t *c = pn_disposition_condition(pn_delivery_remote(dl));
        fprintf(stderr, "%s message refused by the broker: %s %s\n", t->name,
                pn_condition_get_name(c) ? pn_condition_get_name(c)
                                         : pn_disposition_type_name(state),
                pn_condition_get_description(c) ? pn_condition_get_description(c) : "");
        if (m->o->commit_interval > 0)
            tx_failed(m, t, "a message of its transaction", NULL); /* it cannot commit whole */
        else
            t->refused++;
    } else {
        return;
    }
    pn_delivery_settle(dl);
}

/* ---- consumer / browser ---- */

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* True if (ThreadSent, count) was seen before (failover redelivery). */
static bool seen_before(struct hq_msgcmd *m, pn_message_t *msg)
{
    pn_data_t *p = pn_message_properties(msg);
    uint64_t h = 14695981039346656037ULL;
    bool have = false;

    if (!m->seen)
        return false;
    pn_data_rewind(p);
    if (!pn_data_next(p) || pn_data_type(p) != PN_MAP)
        return false;
    pn_data_enter(p);
    while (pn_data_next(p)) {
        pn_type_t kt = pn_data_type(p);
        pn_bytes_t k = kt == PN_STRING ? pn_data_get_string(p) : pn_bytes(0, "");
        if (!pn_data_next(p))
            break;
        if (k.size == 5 && memcmp(k.start, "count", 5) == 0 && pn_data_type(p) == PN_LONG) {
            int64_t v = pn_data_get_long(p);
            h = fnv(&v, sizeof(v), h);
            have = true;
        } else if (k.size == 10 && memcmp(k.start, "ThreadSent", 10) == 0 &&
                   pn_data_type(p) == PN_STRING) {
            pn_bytes_t v = pn_data_get_string(p);
            h = fnv(v.start, v.size, h);
        }
    }
    if (!have)
        return false;
    h |= 1;
    size_t mask = (1u << DUP_SET_BITS) - 1, i = h & mask;
    for (size_t probes = 0; probes <= mask; probes++, i = (i + 1) & mask) {
        if (m->seen[i] == h)
            return true;
        if (!m->seen[i]) {
            m->seen[i] = h;
            return false;
        }
    }
    return false;
}

static void print_body(struct hq_msgcmd *m, struct hq_thread *t, const char *verb)
{
    pn_data_t *b = pn_message_body(m->msg);
    char text[512];
    size_t n = sizeof(text);

    pn_data_rewind(b);
    if (pn_data_next(b) && pn_data_type(b) == PN_STRING) {
        pn_bytes_t s = pn_data_get_string(b);
        printf("%s %s %.*s\n", t->name, verb, (int)(s.size > 400 ? 400 : s.size), s.start);
    } else if (pn_data_type(b) == PN_BINARY) {
        printf("%s %s a bytes message of %zu bytes\n", t->name, verb, pn_data_get_binary(b).size);
    } else if (pn_data_format(b, text, &n) == 0) {
        printf("%s %s %.*s\n", t->name, verb, (int)n, text);
    }
}

static void consume(struct hq_msgcmd *m, struct hq_thread *t, pn_delivery_t *dl)
{
    if (!pn_delivery_readable(dl) || pn_delivery_partial(dl)) {
        if (pn_delivery_readable(dl))
            hq_read_message(dl, m->msg); /* accumulate the partial transfer */
        return;
    }
    pn_message_clear(m->msg);
    bool ok = hq_read_message(dl, m->msg);
    if (m->kind == CMD_CONSUMER) {
        pn_delivery_update(dl, ok ? PN_ACCEPTED : PN_REJECTED);
    }
    pn_delivery_settle(dl);
    if (!ok) {
        fprintf(stderr, "%s received an undecodable message\n", t->name);
        return;
    }
    t->confirmed++;
    t->last_rx = hq_now_ms();
    if (m->kind == CMD_CONSUMER && seen_before(m, m->msg))
        m->duplicates++;
    if (m->kind == CMD_BROWSER)
        print_body(m, t, "browsing");
    else if (m->o->verbose)
        print_body(m, t, "Received");
    else if (t->confirmed % 1000 == 0)
        printf("Received %ld\n", t->confirmed);
    long left = m->o->message_count - t->confirmed - pn_link_credit(t->l);
    if (left > 0 && pn_link_credit(t->l) < CONSUMER_WINDOW / 2)
        pn_link_flow(t->l, (int)(left < CONSUMER_WINDOW ? left : CONSUMER_WINDOW));
    if (m->kind == CMD_CONSUMER && m->o->sleep_ms > 0) {
        hq_flush(m->app.conn); /* this acceptance goes out now, not after the whole window */
        sleep_ms(m->o->sleep_ms);
    }
}

static void on_event(struct hq_app *app, pn_event_t *e)
{
    struct hq_msgcmd *m = (struct hq_msgcmd *)app;
    pn_link_t *l = pn_event_link(e);
    int i = l ? thread_of(m, l) : -1;

    if (i < 0)
        return;
    struct hq_thread *t = &m->th[i];
    switch (pn_event_type(e)) {
    case PN_LINK_FLOW:
        if (m->kind == CMD_PRODUCER)
            produce(m, t, hq_now_ms());
        break;
    case PN_DELIVERY:
        if (l == t->tx.coord)
            coord_outcome(m, t, pn_event_delivery(e));
        else if (m->kind == CMD_PRODUCER)
            producer_outcome(m, t, pn_event_delivery(e));
        else
            consume(m, t, pn_event_delivery(e));
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH: {
        pn_condition_t *c = pn_link_remote_condition(l);
        if (pn_condition_is_set(c)) {
            fprintf(stderr, "%s link closed by the broker: %s: %s\n", t->name,
                    pn_condition_get_name(c), pn_condition_get_description(c));
            t->refused += m->kind == CMD_PRODUCER ? m->o->message_count - t->confirmed : 0;
            t->link_error = true;
        }
        t->closed_by_broker = true;
        t->finished = true;
        t->t_end = hq_now_ms();
        pn_link_close(l);
        break;
    }
    default:
        break;
    }
}

static bool tick(struct hq_app *app, int64_t now)
{
    struct hq_msgcmd *m = (struct hq_msgcmd *)app;
    bool all = true;

    for (int i = 0; i < m->o->threads; i++) {
        struct hq_thread *t = &m->th[i];
        if (t->finished)
            continue;
        if (m->kind == CMD_PRODUCER) {
            if (t->l)
                produce(m, t, now);
            if (t->confirmed + t->refused >= m->o->message_count)
                t->finished = true;
        } else {
            /* all asked for, or silence: --break-on-null or not, never wait forever */
            t->finished = t->confirmed >= m->o->message_count ||
                          (m->o->receive_timeout >= 0 && now - t->last_rx > m->o->receive_timeout);
        }
        if (t->finished)
            t->t_end = now;
        else
            all = false;
    }
    return all;
}

static void report_producer(struct hq_msgcmd *m)
{
    for (int i = 0; i < m->o->threads; i++) {
        struct hq_thread *t = &m->th[i];
        int64_t ms = t->t_end - t->t0;
        printf("%s Produced: %ld messages\n", t->name, t->confirmed);
        printf("%s Elapsed time in second : %" PRId64 " s\n", t->name, ms / 1000);
        printf("%s Elapsed time in milli second : %" PRId64 " milli seconds\n", t->name, ms);
        if (t->refused)
            printf("%s Refused: %ld messages\n", t->name, t->refused);
        if (t->resent)
            printf("%s Resent after reconnect: %ld messages (duplicates possible)\n", t->name,
                   t->resent);
    }
}

static void report_consumer(struct hq_msgcmd *m)
{
    for (int i = 0; i < m->o->threads; i++) {
        struct hq_thread *t = &m->th[i];
        int64_t ms = t->t_end - t->t0;
        if (m->kind == CMD_BROWSER) {
            printf("%s browsed: %ld messages\n", t->name, t->confirmed);
            printf("%s Browser thread finished\n", t->name);
            continue;
        }
        printf("%s Consumed: %ld messages\n", t->name, t->confirmed);
        printf("%s Elapsed time in second : %" PRId64 " s\n", t->name, ms / 1000);
        printf("%s Elapsed time in milli second : %" PRId64 " milli seconds\n", t->name, ms);
        printf("%s Consumed: %ld messages\n", t->name, t->confirmed);
        if (t->confirmed < m->o->message_count)
            printf("%s Expected %ld messages, got %ld (no message for %ld ms)\n", t->name,
                   m->o->message_count, t->confirmed, m->o->receive_timeout);
        printf("%s Consumer thread finished\n", t->name);
    }
    if (m->duplicates)
        printf("Duplicates received (at-least-once after a reconnect): %ld\n", m->duplicates);
}

static int run(struct hq_opts *o, int kind)
{
    struct hq_msgcmd *m = calloc(1, sizeof(*m));
    struct hq_conn c = {.o = o, .fd = -1};
    char dest[600];
    int rc;

    if (!m)
        return HQ_EXIT_FAILED;
    m->o = o;
    m->kind = kind;
    m->app = (struct hq_app){
        .setup = setup, .on_event = on_event, .tick = tick, .failover = o->nurls > 1,
        .close_must_finish = kind == CMD_CONSUMER};
    m->msg = pn_message();
    long tsize = o->message_size > 0 ? o->message_size : o->text_size;
    if (tsize > 0) {
        m->text = malloc((size_t)tsize);
        for (long i = 0; m->text && i < tsize; i++)
            m->text[i] = o->message_size > 0 ? '.' : "test message "[i % 13];
    }
    if (kind == CMD_CONSUMER)
        m->seen = calloc((size_t)1 << DUP_SET_BITS, sizeof(uint64_t));
    if (!m->msg || (tsize > 0 && !m->text) || (kind == CMD_CONSUMER && !m->seen)) {
        fprintf(stderr, "out of memory\n");
        pn_message_free(m->msg);
        free(m->text);
        free(m->seen);
        free(m);
        return HQ_EXIT_FAILED;
    }
    hq_dest_name(o, dest, sizeof(dest));
    printf("Connection brokerURL = %s\n", o->url);
    if (kind != CMD_PRODUCER)
        printf("Consumer:: filter = %s\n", o->filter ? o->filter : "null");
    for (int i = 0; i < o->threads; i++) {
        struct hq_thread *t = &m->th[i];
        snprintf(t->name, sizeof(t->name), "%s %s, thread=%d",
                 kind == CMD_PRODUCER ? "Producer" : "Consumer", dest, i);
        t->t0 = hq_now_ms();
        if (kind == CMD_PRODUCER)
            printf("%s Started to calculate elapsed time ...\n\n", t->name);
        else if (kind == CMD_BROWSER)
            printf("%s trying to browse %ld messages\n", t->name, o->message_count);
        else
            printf("%s wait %ldms until %ld messages are consumed\n", t->name, o->receive_timeout,
                   o->message_count);
    }
    fflush(stdout);
    rc = hq_run(&c, &m->app);
    if (rc == 0 || kind != CMD_PRODUCER || m->th[0].confirmed) {
        for (int i = 0; i < o->threads; i++)
            if (!m->th[i].t_end)
                m->th[i].t_end = hq_now_ms();
        if (kind == CMD_PRODUCER)
            report_producer(m);
        else
            report_consumer(m);
    }
    for (int i = 0; rc == 0 && i < o->threads; i++) {
        struct hq_thread *t = &m->th[i];
        if (t->link_error ||
            (kind == CMD_PRODUCER ? t->confirmed < o->message_count
                                  : kind == CMD_CONSUMER && t->confirmed < o->message_count))
            rc = HQ_EXIT_FAILED;
    }
    pn_message_free(m->msg);
    free(m->text);
    free(m->seen);
    free(m);
    hq_conn_thread_done();
    return rc;
}

int hq_producer(struct hq_opts *o)
{
    return run(o, CMD_PRODUCER);
}

int hq_consumer(struct hq_opts *o)
{
    return run(o, CMD_CONSUMER);
}

int hq_browser(struct hq_opts *o)
{
    return run(o, CMD_BROWSER);
}
