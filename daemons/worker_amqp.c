/*
 * worker_amqp — AMQP 1.0 connections of a worker. Each connection is one
 * Proton pn_connection_driver fed from worker_net's buffers: bytes in →
 * pn_connection_driver_read_done → events → msgproto records; core records
 * → Proton calls → events → bytes out through the wnet output hooks. All of
 * it runs in the worker's epoll loop; Proton never owns a socket or a thread.
 *
 * Mapping (for users: daemons/README.md "AMQP"):
 *  - a link the client sends on (our receiver) names an address in its
 *    target: capabilities "queue"/"anycast" → anycast, "topic"/"multicast" →
 *    multicast, none → the address' own or the auto-create default; a null
 *    target is the anonymous relay: each message's `to` names the address.
 *    Every complete transfer becomes a SEND record (durable = header.durable);
 *    an unsettled transfer is answered with `accepted` only on the core's
 *    DONE, i.e. after the journal made a durable message durable; a failed
 *    DONE gives `rejected` with the core's reason. Credit: a window of
 *    PRODUCER_WINDOW transfers, refilled while the ring to the core has room
 *    (a full ring withholds credit: back-pressure without dropping).
 *  - a link the client receives on (our sender) is a SUBSCRIBE: source
 *    address and capabilities as above, distribution-mode `copy` = browse,
 *    a jms-selector filter, a durable terminus on a multicast address =
 *    a durable subscription named "<container-id>.<link name>". The client's
 *    link credit is passed to the core as CREDIT records (the core never holds
 *    more credit than the client gave), so credit 1 gets exactly one message.
 *    Dispositions: accepted → ACK, released → RELEASE, modified(delivery-
 *    failed or undeliverable-here) → MODIFIED, rejected → REJECT (dead
 *    letter). A pre-settled link (snd-settle-mode settled) is an auto-ack
 *    consumer.
 *    Drain: a DRAIN record; the core answers once the queue has nothing more
 *    to give, and the link's remaining credit is then consumed.
 *  - a sending link to a coordinator target is the transaction controller:
 *    declare/discharge map onto the core's TX_BEGIN/COMMIT/ROLLBACK; a
 *    transfer or outcome in transactional-state carries the core tx id.
 *  - source address "$hamq.queue-stat" (optionally "?queue=TEXT") is the
 *    statistics link: one message per queue, then the link is detached.
 *  - protocol violations: Proton closes the connection with an AMQP error
 *    condition (amqp:decode-error, amqp:connection:framing-error...), and
 *    worker_amqp_guard.c the ones Proton lets through (a second begin on a
 *    channel, a second attach on a handle, a transfer from a receiver);
 *    only that connection ends.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/log.h"
#include "worker.h"
#include "worker_amqp.h"
#include "worker_amqp_conn.h"

#define PRODUCER_WINDOW 500
#define AMQP_MAX_FRAME 65536u
#define STAT_ADDRESS "$hamq.queue-stat"
#define SELECTOR_CODE 0x0000468C00000004ull /* apache.org:selector-filter:string */

struct wka_global {
    struct wka_users *users;
};
static struct wka_global G;

static void pump(struct wka_conn *ac);

/* ---- helpers ---- */

static void set_cond(pn_condition_t *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_cond(pn_condition_t *c, const char *name, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pn_condition_set_name(c, name);
    pn_condition_set_description(c, text);
}

const char *wka_cond_for_errno(int err)
{
    switch (err) {
    case -ENOENT: return "amqp:not-found";
    case -EACCES:
    case -EPERM: return "amqp:unauthorized-access";
    case -EMSGSIZE:
    case -ENOSPC:
    case -ENOBUFS:
    case -EDQUOT: return "amqp:resource-limit-exceeded";
    case -EINVAL:
    case -ENAMETOOLONG: return "amqp:invalid-field";
    case -EEXIST: return "amqp:precondition-failed";
    case -ENOTSUP: return "amqp:not-implemented";
    default: return "amqp:internal-error";
    }
}

uint64_t wka_new_corr(struct wka_conn *ac, enum pend_kind kind, pn_delivery_t *dl,
                         struct wka_link *lk)
{
    struct wka_pend *p = malloc(sizeof(*p));
    uint64_t corr = ++ac->next_corr;

    if (!p)
        return 0;
    *p = (struct wka_pend){.kind = kind, .dl = dl, .lk = lk};
    if (u64map_put(&ac->corr, corr, p) < 0) {
        free(p);
        return 0;
    }
    return corr;
}

/* Routing from terminus capabilities ("queue"/"topic", Artemis' "anycast"/"multicast"). */
static uint8_t caps_routing(pn_terminus_t *t)
{
    pn_data_t *d = pn_terminus_capabilities(t);
    uint8_t r = MSGPROTO_ROUTING_UNSPECIFIED;

    pn_data_rewind(d);
    while (pn_data_next(d)) {
        if (pn_data_type(d) == PN_ARRAY || pn_data_type(d) == PN_LIST) {
            pn_data_enter(d);
            continue;
        }
        if (pn_data_type(d) != PN_SYMBOL && pn_data_type(d) != PN_STRING)
            continue;
        pn_bytes_t b = pn_data_type(d) == PN_SYMBOL ? pn_data_get_symbol(d)
                                                    : pn_data_get_string(d);
        if ((b.size == 5 && memcmp(b.start, "queue", 5) == 0) ||
            (b.size == 7 && memcmp(b.start, "anycast", 7) == 0))
            r = MSGPROTO_ANYCAST;
        else if ((b.size == 5 && memcmp(b.start, "topic", 5) == 0) ||
                 (b.size == 9 && memcmp(b.start, "multicast", 9) == 0))
            r = MSGPROTO_MULTICAST;
    }
    return r;
}

/* "queue://X" and "topic://X" name the routing too; returns the bare address. */
static const char *strip_prefix(const char *a, uint8_t *routing)
{
    if (strncmp(a, "queue://", 8) == 0) {
        *routing = MSGPROTO_ANYCAST;
        return a + 8;
    }
    if (strncmp(a, "topic://", 8) == 0) {
        *routing = MSGPROTO_MULTICAST;
        return a + 8;
    }
    return a;
}

/* The source filter's selector (key jms-selector or the Artemis/qpid descriptor), or "". */
static void source_selector(pn_terminus_t *t, char *out, size_t cap)
{
    pn_data_t *d = pn_terminus_filter(t);

    out[0] = 0;
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return;
    pn_data_enter(d);
    while (pn_data_next(d)) {
        pn_bytes_t key = pn_data_type(d) == PN_SYMBOL ? pn_data_get_symbol(d) : pn_bytes(0, "");
        if (!pn_data_next(d))
            break;
        bool sel = key.size == 12 && memcmp(key.start, "jms-selector", 12) == 0;
        if (pn_data_type(d) != PN_DESCRIBED)
            continue;
        pn_data_enter(d);
        pn_data_next(d); /* descriptor: any key is fine when it names a selector */
        sel = sel || (pn_data_type(d) == PN_ULONG && pn_data_get_ulong(d) == SELECTOR_CODE) ||
              (pn_data_type(d) == PN_SYMBOL && pn_data_get_symbol(d).size == 33 &&
               memcmp(pn_data_get_symbol(d).start, "apache.org:selector-filter:string", 33) ==
                   0);
        if (sel && pn_data_next(d) && pn_data_type(d) == PN_STRING) {
            pn_bytes_t v = pn_data_get_string(d);
            if (v.size < cap && !memchr(v.start, 0, v.size)) {
                memcpy(out, v.start, v.size);
                out[v.size] = 0;
            }
        }
        pn_data_exit(d);
    }
}

int wka_send_rec(struct wka_conn *ac, const struct msgproto_rec *rec)
{
    int r = wk_send(ac->w, rec, true);

    if (r < 0)
        log_warn("AMQP %s: cannot pass %s to the core: %s", wnet_peer_name(ac->c),
                 msgproto_type_name(rec->type), strerror(-r));
    return r;
}

/* ---- links ---- */

static struct wka_link *link_new(struct wka_conn *ac, pn_link_t *l, enum link_kind kind)
{
    struct wka_link *lk = calloc(1, sizeof(*lk));

    if (!lk)
        return NULL;
    lk->ac = ac;
    lk->l = l;
    lk->kind = kind;
    lk->next = ac->links;
    ac->links = lk;
    pn_link_set_context(l, lk);
    return lk;
}

/* Frees our state of a link (already out of the connection's list). */
static void link_release(struct wka_link *lk)
{
    pn_link_set_context(lk->l, NULL);
    free(lk->address);
    free(lk->filter);
    free(lk->in);
    free(lk);
}

static void link_free(struct wka_link *lk)
{
    struct wka_conn *ac = lk->ac;

    for (struct wka_link **p = &ac->links; *p; p = &(*p)->next)
        if (*p == lk) {
            *p = lk->next;
            break;
        }
    if (lk->kind == LK_CONSUMER && lk->consumer)
        u64map_del(&ac->consumers, lk->consumer);
    if (ac->stat_active == lk)
        ac->stat_active = NULL;
    link_release(lk);
}

static void unsubscribe(struct wka_link *lk, bool remove_durable)
{
    struct wka_conn *ac = lk->ac;
    struct msgproto_rec rec = {.type = MSGPROTO_UNSUBSCRIBE};

    if (lk->kind != LK_CONSUMER || !lk->consumer)
        return;
    rec.flags = remove_durable && lk->durable_sub ? MSGPROTO_F_REMOVE_DURABLE : 0;
    rec.u.unsub.conn = ac->id;
    rec.u.unsub.consumer = lk->consumer;
    wka_send_rec(ac, &rec);
    u64map_del(&ac->consumers, lk->consumer);
    lk->consumer = 0;
}

/* Detaches the link with an error condition (name NULL: a clean close). */
static void link_close(struct wka_link *lk, const char *name, const char *text)
{
    if (lk->closed)
        return;
    lk->closed = true;
    if (name)
        set_cond(pn_link_condition(lk->l), name, "%s", text);
    unsubscribe(lk, false);
    pn_link_close(lk->l);
}

/* Frees our side once Proton is done with it and no DONE will name it. */
static void link_maybe_free(struct wka_link *lk)
{
    pn_state_t s = pn_link_state(lk->l);

    if (lk->pending == 0 && (s & PN_LOCAL_CLOSED) && (s & PN_REMOTE_CLOSED)) {
        pn_link_t *l = lk->l;
        link_free(lk);
        pn_link_free(l);
    }
}

/* ---- producer links ---- */

static void producer_top_up(struct wka_link *lk)
{
    int c = pn_link_credit(lk->l);

    if (c < 0)
        c = 0; /* a client that sent beyond its credit (Proton counts it negative) */
    if (!lk->closed && c < PRODUCER_WINDOW / 2)
        pn_link_flow(lk->l, PRODUCER_WINDOW - c);
}

/* Per-address flow control: a link whose address is full gets no more credit
 * until the core releases it (the client may still use what it has). */
static bool producer_held(struct wka_conn *ac, const struct wka_link *lk)
{
    return lk->kind == LK_PRODUCER && lk->address &&
           wk_address_blocked(ac->w, lk->address, strlen(lk->address));
}

static void producer_credit(struct wka_conn *ac, struct wka_link *lk)
{
    if (wk_congested(ac->w)) {
        ac->need_credit = true;
        wk_conn_wait_space(ac->w, ac->id);
        return;
    }
    if (producer_held(ac, lk)) {
        ac->need_credit = true;
        wk_conn_wait_address(ac->w, ac->id);
        return;
    }
    producer_top_up(lk);
}

void wka_reject(pn_delivery_t *dl, const char *name, const char *text)
{
    set_cond(pn_disposition_condition(pn_delivery_local(dl)), name, "%s", text);
    pn_delivery_update(dl, PN_REJECTED);
    pn_delivery_settle(dl);
}

static void produce(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl)
{
    struct wka_send s;
    char err[256];
    bool settled = pn_delivery_settled(dl);
    int r = wka_msg_from_amqp(lk->in, lk->in_len, lk->address, lk->routing, &s, err,
                              sizeof(err));

    if (r < 0) {
        log_info("AMQP %s: message refused: %s", wnet_peer_name(ac->c), err);
        wka_reject(dl, r == -EBADMSG ? "amqp:decode-error" : "amqp:invalid-field", err);
        return;
    }
    uint64_t tx = 0;
    if (pn_delivery_remote_state(dl) == WKA_TXN_STATE) {
        uint64_t outcome;
        bool f, u;
        struct wka_tx *t = wka_tx_state(ac, pn_delivery_remote(dl), &outcome, &f, &u);
        if (!t) {
            wka_reject(dl, "amqp:transaction:unknown-id", "no such transaction on this connection");
            return;
        }
        tx = t->id;
    }
    struct msgproto_rec rec = {.type = MSGPROTO_SEND};
    rec.flags = s.durable ? MSGPROTO_F_DURABLE : 0;
    rec.u.send.conn = ac->id;
    rec.u.send.corr = settled ? 0 : wka_new_corr(ac, PEND_SEND, dl, lk);
    rec.u.send.tx = tx;
    if (rec.u.send.corr)
        ((struct wka_pend *)u64map_get(&ac->corr, rec.u.send.corr))->send_tx = tx;
    rec.u.send.routing = s.routing;
    rec.u.send.priority = s.priority;
    rec.u.send.expiration = s.expiration;
    rec.u.send.address = msgproto_str(s.address);
    rec.u.send.queue = msgproto_str("");
    rec.u.send.dup_id = (struct msgproto_bytes){s.dup_id, s.dup_len};
    rec.u.send.message = (struct msgproto_bytes){s.hmsg, (uint32_t)s.hmsg_len};
    if (!settled && !rec.u.send.corr) {
        wka_reject(dl, "amqp:internal-error", "out of memory");
        return;
    }
    r = wka_send_rec(ac, &rec);
    if (r < 0) {
        if (!settled) {
            free(u64map_del(&ac->corr, rec.u.send.corr));
            snprintf(err, sizeof(err), "the broker cannot take the message: %s", strerror(-r));
            wka_reject(dl, wka_cond_for_errno(r), err);
        }
        return;
    }
    if (settled)
        pn_delivery_settle(dl);
    else
        lk->pending++;
}

static void on_transfer_in(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl)
{
    uint64_t max = ac->w->cfg.max_message_size;

    if (pn_delivery_aborted(dl)) {
        lk->in_len = 0;
        lk->in_discard = false;
        pn_delivery_settle(dl);
        producer_credit(ac, lk);
        return;
    }
    size_t want = pn_delivery_pending(dl);
    if (!lk->in_discard && lk->in_len + want > max) {
        char text[160];
        snprintf(text, sizeof(text), "message exceeds the maximum size of %" PRIu64 " bytes",
                 max);
        log_info("AMQP %s: %s; detaching the link", wnet_peer_name(ac->c), text);
        lk->in_discard = true;
        lk->in_len = 0;
        link_close(lk, "amqp:link:message-size-exceeded", text);
    }
    if (lk->in_discard) {
        char sink[4096];
        while (pn_link_recv(lk->l, sink, sizeof(sink)) > 0) {
        }
    } else {
        if (lk->in_len + want > lk->in_cap) {
            size_t nc = lk->in_cap ? lk->in_cap : 4096;
            while (nc < lk->in_len + want)
                nc *= 2;
            uint8_t *nb = realloc(lk->in, nc);
            if (!nb) {
                link_close(lk, "amqp:internal-error", "out of memory");
                return;
            }
            lk->in = nb;
            lk->in_cap = nc;
        }
        ssize_t n = pn_link_recv(lk->l, (char *)lk->in + lk->in_len, want);
        if (n > 0)
            lk->in_len += (size_t)n;
    }
    if (pn_delivery_partial(dl))
        return;
    pn_link_advance(lk->l);
    if (lk->in_discard) {
        pn_delivery_settle(dl);
    } else {
        if (lk->kind == LK_COORD)
            wka_coordinate(ac, lk, dl);
        else
            produce(ac, lk, dl);
        producer_credit(ac, lk);
    }
    lk->in_len = 0;
    lk->in_discard = false;
}

static void open_producer(struct wka_conn *ac, pn_link_t *l)
{
    pn_terminus_t *t = pn_link_remote_target(l);
    bool coord = pn_terminus_get_type(t) == PN_COORDINATOR;
    struct wka_link *lk = link_new(ac, l, coord ? LK_COORD : LK_PRODUCER);
    const char *a = pn_terminus_get_address(t);

    if (!lk) {
        set_cond(pn_link_condition(l), "amqp:internal-error", "out of memory");
        pn_link_open(l);
        pn_link_close(l);
        return;
    }
    if (coord) {
        /* Local transactions only; the copied target echoes the coordinator. */
        pn_link_set_snd_settle_mode(l, pn_link_remote_snd_settle_mode(l));
        pn_link_open(l);
        producer_credit(ac, lk);
        return;
    }
    lk->routing = caps_routing(t);
    if (a && a[0])
        lk->address = strdup(strip_prefix(a, &lk->routing));
    pn_link_set_snd_settle_mode(l, pn_link_remote_snd_settle_mode(l));
    pn_link_set_max_message_size(l, ac->w->cfg.max_message_size);
    pn_link_open(l);
    producer_credit(ac, lk);
}

/* ---- consumer links ---- */

static void consumer_credit(struct wka_conn *ac, struct wka_link *lk)
{
    int64_t want = (int64_t)pn_link_credit(lk->l) - pn_link_queued(lk->l);
    int64_t add = want - lk->core_credit;

    if (lk->closed || !lk->consumer || add <= 0)
        return;
    struct msgproto_rec rec = {.type = MSGPROTO_CREDIT};
    rec.u.credit.conn = ac->id;
    rec.u.credit.consumer = lk->consumer;
    rec.u.credit.credits = (uint32_t)add;
    if (wka_send_rec(ac, &rec) == 0)
        lk->core_credit += add;
}

/*
 * Drain: once the core holds no credit for the link (every delivery for it
 * has arrived), the rest of the client's credit is consumed (delivery-count
 * advanced, flow with credit 0). While the core still holds credit, a DRAIN
 * record asks it to deliver what the queue can give and drop the rest; its
 * DONE says how much it dropped.
 */
static void consumer_drain(struct wka_conn *ac, struct wka_link *lk)
{
    struct msgproto_rec rec = {.type = MSGPROTO_DRAIN};

    if (lk->closed || lk->drain_pending || !pn_link_get_drain(lk->l))
        return;
    if (!lk->consumer || lk->core_credit <= 0) {
        pn_link_drained(lk->l);
        return;
    }
    rec.u.unsub.conn = ac->id;
    rec.u.unsub.consumer = lk->consumer;
    rec.u.unsub.corr = wka_new_corr(ac, PEND_DRAIN, NULL, lk);
    if (!rec.u.unsub.corr || wka_send_rec(ac, &rec) < 0) {
        free(u64map_del(&ac->corr, rec.u.unsub.corr));
        link_close(lk, "amqp:internal-error", "the broker cannot drain the link");
        return;
    }
    lk->drain_pending = true;
    lk->pending++;
}

static void drain_done(struct wka_conn *ac, struct wka_link *lk, int status)
{
    lk->drain_pending = false;
    /* status: the credit the core dropped; an error means it holds none. */
    lk->core_credit = status >= 0 ? lk->core_credit - status : 0;
    if (lk->core_credit < 0)
        lk->core_credit = 0;
    consumer_drain(ac, lk);
    consumer_credit(ac, lk); /* credit the client gave since, without drain */
}

static void on_flow(struct wka_conn *ac, struct wka_link *lk)
{
    if (lk->kind != LK_CONSUMER)
        return;
    consumer_credit(ac, lk);
    consumer_drain(ac, lk);
}

static void start_stat(struct wka_conn *ac);

static void open_consumer(struct wka_conn *ac, pn_link_t *l)
{
    pn_terminus_t *src = pn_link_remote_source(l);
    const char *a = pn_terminus_get_address(src);
    char selector[4096], subname[600];
    bool stat = a && strncmp(a, STAT_ADDRESS, strlen(STAT_ADDRESS)) == 0;
    struct wka_link *lk = link_new(ac, l, stat ? LK_STAT : LK_CONSUMER);

    pn_link_set_snd_settle_mode(l, pn_link_remote_snd_settle_mode(l));
    pn_link_open(l);
    if (!lk) {
        set_cond(pn_link_condition(l), "amqp:internal-error", "out of memory");
        pn_link_close(l);
        return;
    }
    if (!a || !a[0] || pn_terminus_is_dynamic(src)) {
        link_close(lk, "amqp:not-implemented", "a receiving link needs a source address "
                                               "(dynamic nodes are not supported)");
        return;
    }
    if (stat) {
        const char *q = strstr(a, "?queue=");
        lk->filter = strdup(q ? q + 7 : "");
        start_stat(ac);
        return;
    }
    lk->routing = caps_routing(src);
    lk->address = strdup(strip_prefix(a, &lk->routing));
    lk->presettled = pn_link_remote_snd_settle_mode(l) == PN_SND_SETTLED;
    lk->consumer = ++ac->next_consumer;
    source_selector(src, selector, sizeof(selector));
    subname[0] = 0;
    if (pn_terminus_get_durability(src) != PN_NONDURABLE && lk->routing != MSGPROTO_ANYCAST) {
        const char *cid = pn_connection_remote_container(ac->d.connection);
        snprintf(subname, sizeof(subname), "%s.%s", cid ? cid : "", pn_link_name(l));
        lk->durable_sub = true;
    }
    if (!lk->address || u64map_put(&ac->consumers, lk->consumer, lk) < 0) {
        lk->consumer = 0;
        link_close(lk, "amqp:internal-error", "out of memory");
        return;
    }
    struct msgproto_rec rec = {.type = MSGPROTO_SUBSCRIBE};
    rec.u.sub.conn = ac->id;
    rec.u.sub.consumer = lk->consumer;
    rec.u.sub.corr = wka_new_corr(ac, PEND_SUB, NULL, lk);
    rec.u.sub.routing = lk->routing;
    lk->browse = pn_terminus_get_distribution_mode(src) == PN_DIST_MODE_COPY;
    rec.u.sub.options = (lk->presettled ? MSGPROTO_SUB_AUTO_ACK : 0) |
                        (lk->browse ? MSGPROTO_SUB_BROWSE : 0) |
                        (lk->durable_sub ? MSGPROTO_SUB_DURABLE : 0);
    rec.u.sub.credit = 0; /* the client's flow brings credit */
    rec.u.sub.address = msgproto_str(lk->address);
    rec.u.sub.queue = msgproto_str("");
    rec.u.sub.sub_name = msgproto_str(subname);
    rec.u.sub.filter = msgproto_str(selector);
    if (wka_send_rec(ac, &rec) < 0) {
        free(u64map_del(&ac->corr, rec.u.sub.corr));
        link_close(lk, "amqp:internal-error", "the broker cannot take the subscription");
        return;
    }
    lk->pending++;
    consumer_credit(ac, lk);
}

/* The settlement record for an outcome (accepted, or settled without one → ACK). */
static uint16_t outcome_record(uint64_t state, bool failed, bool undeliverable, uint8_t *flags)
{
    *flags = 0;
    switch (state) {
    case PN_RELEASED: return MSGPROTO_RELEASE;
    case PN_REJECTED: return MSGPROTO_REJECT;
    case PN_MODIFIED:
        /* Only delivery-failed counts an attempt (AMQP 1.0 3.4.5); undeliverable-here
         * alone keeps the count and only skips this link. */
        *flags = undeliverable ? MSGPROTO_F_UNDELIVERABLE_HERE : 0;
        return failed ? MSGPROTO_MODIFIED : MSGPROTO_RELEASE;
    default: return MSGPROTO_ACK;
    }
}

/*
 * The client settled or gave an outcome for one of our deliveries; a
 * transactional-state outcome settles inside that transaction.
 */
static void on_disposition(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl)
{
    pn_disposition_t *ds = pn_delivery_remote(dl);
    uint64_t state = pn_delivery_remote_state(dl);
    bool settled = pn_delivery_settled(dl);
    bool failed = pn_disposition_is_failed(ds), undeliverable = pn_disposition_is_undeliverable(ds);
    pn_delivery_tag_t tag = pn_delivery_tag(dl);
    struct msgproto_rec rec = {0};
    struct wka_tx *t = NULL;

    if (state == WKA_TXN_STATE) {
        t = wka_tx_state(ac, ds, &state, &failed, &undeliverable);
        if (!t) {
            link_close(lk, "amqp:transaction:unknown-id",
                       "a transactional outcome names no transaction of this connection");
            return;
        }
    }
    if (!settled && (state == 0 || state == PN_RECEIVED))
        return; /* not an outcome yet */
    /* A browser's outcomes change nothing: it never took the message. */
    if (!lk->presettled && !lk->browse && lk->consumer && tag.size == 8) {
        rec.type = outcome_record(state, failed, undeliverable, &rec.flags);
        rec.u.settle.conn = ac->id;
        rec.u.settle.consumer = lk->consumer;
        rec.u.settle.tx = t ? t->id : 0;
        memcpy(&rec.u.settle.delivery, tag.start, 8);
        if (wka_send_rec(ac, &rec) == 0 && t &&
            wka_tx_note_settle(t, lk->consumer, rec.u.settle.delivery) < 0)
            log_err("AMQP %s: out of memory noting a transactional settlement",
                    wnet_peer_name(ac->c));
    }
    pn_delivery_settle(dl);
}

/* ---- statistics link ---- */

static void start_stat(struct wka_conn *ac)
{
    if (ac->stat_active)
        return;
    for (struct wka_link *lk = ac->links; lk; lk = lk->next) {
        if (lk->kind != LK_STAT || lk->stat_started || lk->closed)
            continue;
        struct msgproto_rec rec = {.type = MSGPROTO_STAT_REQ};
        rec.u.stat_req.request = ac->id; /* replies route by connection id */
        rec.u.stat_req.queue = msgproto_str(lk->filter ? lk->filter : "");
        lk->stat_started = true;
        if (wka_send_rec(ac, &rec) < 0) {
            link_close(lk, "amqp:internal-error", "cannot ask the core");
            continue;
        }
        ac->stat_active = lk;
        return;
    }
}

static void put_kv_str(pn_data_t *d, const char *k, struct msgproto_bytes v)
{
    pn_data_put_string(d, pn_bytes(strlen(k), k));
    pn_data_put_string(d, pn_bytes(v.len, (const char *)v.p));
}

static void put_kv_long(pn_data_t *d, const char *k, int64_t v)
{
    pn_data_put_string(d, pn_bytes(strlen(k), k));
    pn_data_put_long(d, v);
}

static void on_stat(void *conn, const struct msgproto_stat_reply *st, uint8_t flags)
{
    struct wka_conn *ac = conn;
    struct wka_link *lk = ac->stat_active;

    if (!lk)
        return;
    if (!(flags & MSGPROTO_F_EMPTY) && !lk->closed) {
        pn_message_clear(ac->msg);
        pn_data_t *d = pn_message_properties(ac->msg);
        pn_data_put_map(d);
        pn_data_enter(d);
        put_kv_str(d, "name", st->name);
        put_kv_str(d, "address", st->address);
        put_kv_str(d, "routing", msgproto_str(st->routing == MSGPROTO_MULTICAST ? "MULTICAST"
                                                                                : "ANYCAST"));
        put_kv_long(d, "consumers", st->consumers);
        put_kv_long(d, "messages", (int64_t)st->messages);
        put_kv_long(d, "added", (int64_t)st->added);
        put_kv_long(d, "delivering", (int64_t)st->delivering);
        put_kv_long(d, "acked", (int64_t)st->acked);
        put_kv_long(d, "dead_lettered", (int64_t)st->dead_lettered);
        put_kv_long(d, "expired", (int64_t)st->expired);
        pn_data_put_string(d, pn_bytes(strlen("durable"), "durable"));
        pn_data_put_bool(d, st->durable != 0);
        pn_data_exit(d);
        pn_delivery_t *dl = pn_delivery(lk->l, pn_dtag("s", 1));
        pn_rwbytes_t rb = {ac->ocap, ac->obuf};
        ssize_t n = pn_message_encode2(ac->msg, &rb);
        ac->obuf = rb.start;
        ac->ocap = rb.size;
        if (n > 0)
            pn_link_send(lk->l, ac->obuf, (size_t)n);
        pn_link_advance(lk->l);
        pn_delivery_settle(dl);
    }
    if (flags & MSGPROTO_F_LAST) {
        link_close(lk, NULL, NULL);
        ac->stat_active = NULL;
        start_stat(ac);
    }
    pump(ac);
}

/* ---- Proton events ---- */

static void on_tick_timer(struct evloop *loop, void *ctx)
{
    struct wka_conn *ac = ctx;

    (void)loop;
    pn_transport_tick(ac->d.transport, (int64_t)evloop_now_ms());
    pump(ac);
    wnet_flush(ac->c);
}

static void conn_remote_open(struct wka_conn *ac, pn_connection_t *conn)
{
    const char *user = pn_transport_get_user(ac->d.transport);
    struct msgproto_rec rec = {.type = MSGPROTO_CONN_OPEN};

    pn_connection_set_container(conn, "hamq");
    pn_data_put_symbol(pn_connection_offered_capabilities(conn),
                       pn_bytes(15, "ANONYMOUS-RELAY"));
    pn_connection_open(conn);
    rec.u.conn.conn = ac->id;
    rec.u.conn.client_id = msgproto_str(pn_connection_remote_container(conn));
    rec.u.conn.user = msgproto_str(user);
    if (wka_send_rec(ac, &rec) == 0)
        ac->opened = true;
    uint32_t idle = pn_transport_get_remote_idle_timeout(ac->d.transport);
    if (idle) {
        uint32_t every = idle / 4 ? idle / 4 : 1;
        evloop_add_timer(ac->w->loop, every, every, on_tick_timer, ac, &ac->tick_timer);
    }
}

static void session_closed(struct wka_conn *ac, pn_session_t *s)
{
    for (struct wka_link *lk = ac->links; lk; lk = lk->next)
        if (pn_link_session(lk->l) == s && !lk->closed) {
            lk->closed = true;
            unsubscribe(lk, false);
        }
    pn_session_close(s);
}

static void link_remote_closed(struct wka_conn *ac, pn_link_t *l, bool closed)
{
    struct wka_link *lk = pn_link_get_context(l);

    if (lk) {
        if (!lk->closed) {
            lk->closed = true;
            /* detach with closed=true ends a durable subscription (AMQP 1.0 §3.5.3). */
            unsubscribe(lk, closed);
        }
        if (ac->stat_active == lk)
            ac->stat_active = NULL; /* replies still due are dropped by on_stat */
    }
    if (!(pn_link_state(l) & PN_LOCAL_CLOSED)) {
        if (closed)
            pn_link_close(l);
        else
            pn_link_detach(l);
    }
    if (lk)
        link_maybe_free(lk);
}

static void on_delivery(struct wka_conn *ac, pn_delivery_t *dl)
{
    pn_link_t *l = pn_delivery_link(dl);
    struct wka_link *lk = pn_link_get_context(l);

    if (!lk) {
        pn_delivery_settle(dl);
        return;
    }
    if (pn_link_is_receiver(l)) {
        if (pn_delivery_readable(dl) || pn_delivery_aborted(dl))
            on_transfer_in(ac, lk, dl);
    } else if (pn_delivery_updated(dl) || pn_delivery_settled(dl)) {
        on_disposition(ac, lk, dl);
    }
}

static void on_event(struct wka_conn *ac, pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_CONNECTION_REMOTE_OPEN:
        conn_remote_open(ac, pn_event_connection(e));
        break;
    case PN_CONNECTION_REMOTE_CLOSE:
        ac->remote_closed = true;
        pn_connection_close(pn_event_connection(e));
        break;
    case PN_SESSION_REMOTE_OPEN:
        if (pn_session_state(pn_event_session(e)) & PN_LOCAL_UNINIT)
            pn_session_open(pn_event_session(e));
        break;
    case PN_SESSION_REMOTE_CLOSE:
        session_closed(ac, pn_event_session(e));
        break;
    case PN_LINK_REMOTE_OPEN: {
        pn_link_t *l = pn_event_link(e);
        if (!(pn_link_state(l) & PN_LOCAL_UNINIT))
            break;
        pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
        pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
        if (pn_link_is_receiver(l))
            open_producer(ac, l);
        else
            open_consumer(ac, l);
        break;
    }
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
        link_remote_closed(ac, pn_event_link(e), pn_event_type(e) == PN_LINK_REMOTE_CLOSE);
        break;
    case PN_LINK_FLOW: {
        struct wka_link *lk = pn_link_get_context(pn_event_link(e));
        if (lk)
            on_flow(ac, lk);
        break;
    }
    case PN_DELIVERY:
        on_delivery(ac, pn_event_delivery(e));
        break;
    case PN_TRANSPORT_ERROR: {
        pn_condition_t *c = pn_transport_condition(pn_event_transport(e));
        const char *name = pn_condition_get_name(c), *desc = pn_condition_get_description(c);
        log_info("AMQP %s: connection closed: %s: %s", wnet_peer_name(ac->c),
                 name ? name : "error", desc ? desc : "");
        break;
    }
    default:
        break;
    }
}

static void pump(struct wka_conn *ac)
{
    pn_event_t *e;

    while ((e = pn_connection_driver_next_event(&ac->d)))
        on_event(ac, e);
}

/* ---- core → client ---- */

static void on_done(void *conn, const struct msgproto_done *d)
{
    struct wka_conn *ac = conn;
    struct wka_pend *p = u64map_del(&ac->corr, d->corr);
    char text[512];

    if (!p)
        return;
    text[0] = 0;
    if (d->status < 0)
        snprintf(text, sizeof(text), "%.*s", (int)d->text.len, (const char *)d->text.p);
    if (!text[0] && d->status < 0)
        snprintf(text, sizeof(text), "%s", strerror(-d->status));
    if (p->lk)
        p->lk->pending--;
    if (p->kind == PEND_DRAIN) {
        if (p->lk)
            drain_done(ac, p->lk, d->status);
    } else if (p->kind == PEND_DECLARE || p->kind == PEND_DISCHARGE) {
        wka_tx_done(ac, p, d, text);
    } else if (p->kind == PEND_SEND) {
        if (d->status == 0 && p->send_tx) {
            wka_put_txn_state(p->dl, WKA_TXN_STATE, p->send_tx);
        } else if (d->status == 0) {
            pn_delivery_update(p->dl, PN_ACCEPTED);
            pn_delivery_settle(p->dl);
        } else {
            wka_reject(p->dl, wka_cond_for_errno(d->status), text);
        }
    } else if (d->status < 0 && p->lk) {
        link_close(p->lk, wka_cond_for_errno(d->status), text);
    }
    if (p->lk)
        link_maybe_free(p->lk);
    free(p);
    /* No pump here: the events these calls raise are handled once per
     * batch of core records, in am_output, before the bytes go out. */
}

static void on_deliver(void *conn, const struct msgproto_deliver *d, uint8_t flags)
{
    struct wka_conn *ac = conn;
    struct wka_link *lk = u64map_get(&ac->consumers, d->consumer);
    struct hmsg m;
    const char *bytes;

    (void)flags;
    if (!lk || lk->closed)
        return; /* unsubscribed meanwhile: the core releases it */
    lk->core_credit--;
    if (hmsg_decode(d->message.p, d->message.len, &m) < 0) {
        log_err("undecodable message %" PRIu64 " from the core; skipped", d->message_id);
        return;
    }
    ssize_t n = wka_msg_to_amqp(ac->msg, &m, d->delivery_count, &bytes, &ac->obuf, &ac->ocap);
    if (n < 0) {
        log_err("message %" PRIu64 " cannot be encoded as AMQP: %s", d->message_id,
                strerror((int)-n));
        return;
    }
    pn_delivery_t *dl = pn_delivery(lk->l, pn_dtag((const char *)&d->delivery, 8));
    pn_link_send(lk->l, bytes, (size_t)n);
    pn_link_advance(lk->l);
    if (lk->presettled)
        pn_delivery_settle(dl);
}

static void on_consumer_closed(void *conn, const struct msgproto_consumer_closed *c)
{
    struct wka_conn *ac = conn;
    struct wka_link *lk = u64map_get(&ac->consumers, c->consumer);
    char text[512];

    if (!lk)
        return;
    u64map_del(&ac->consumers, c->consumer);
    lk->consumer = 0;
    snprintf(text, sizeof(text), "%.*s", (int)c->reason.len, (const char *)c->reason.p);
    link_close(lk, c->status < 0 ? wka_cond_for_errno(c->status) : NULL, text);
    pump(ac);
}

static void on_writable(void *conn)
{
    struct wka_conn *ac = conn;

    if (!ac->need_credit)
        return;
    if (wk_congested(ac->w)) {
        wk_conn_wait_space(ac->w, ac->id);
        return;
    }
    ac->need_credit = false;
    for (struct wka_link *lk = ac->links; lk; lk = lk->next)
        if (lk->kind == LK_PRODUCER || lk->kind == LK_COORD)
            producer_credit(ac, lk); /* a link to a still full address waits again */
    pump(ac);
    wnet_flush(ac->c);
}

static const struct wk_conn_ops conn_ops = {
    .on_done = on_done,
    .on_deliver = on_deliver,
    .on_consumer_closed = on_consumer_closed,
    .on_writable = on_writable,
    .on_stat = on_stat,
};

/* ---- wnet protocol ---- */

static void *am_open(void *ctx, struct wconn *c)
{
    struct worker *w = ctx;
    struct wka_conn *ac = calloc(1, sizeof(*ac));

    if (!ac)
        return NULL;
    ac->w = w;
    ac->c = c;
    u64map_init(&ac->corr);
    u64map_init(&ac->consumers);
    u64map_init(&ac->txs);
    wka_guard_init(&ac->guard);
    ac->msg = pn_message();
    if (!ac->msg || pn_connection_driver_init(&ac->d, NULL, NULL) != 0) {
        pn_message_free(ac->msg);
        free(ac);
        return NULL;
    }
    pn_transport_set_server(ac->d.transport);
    pn_transport_set_max_frame(ac->d.transport, AMQP_MAX_FRAME);
    wka_sasl_setup(ac->d.transport, G.users, w->cfg.allow_anonymous);
    ac->id = wk_conn_register(w, &conn_ops, ac);
    if (!ac->id || pn_connection_driver_bind(&ac->d) != 0) {
        if (ac->id)
            wk_conn_unregister(w, ac->id);
        pn_connection_driver_destroy(&ac->d);
        pn_message_free(ac->msg);
        free(ac);
        return NULL;
    }
    return ac;
}

/*
 * Proton stops reading at a frame it cannot dispatch (an unknown performative,
 * an undecodable body) without telling the peer. Say it: close the connection
 * with a framing error, after an open if none was sent (AMQP needs one).
 */
static void input_stopped(struct wka_conn *ac)
{
    pn_connection_t *conn = ac->d.connection;
    pn_condition_t *tc = pn_transport_condition(ac->d.transport);

    if (ac->remote_closed || (pn_connection_state(conn) & PN_LOCAL_CLOSED) ||
        pn_condition_is_set(tc))
        return; /* a clean close, or Proton reports the error itself */
    log_info("AMQP %s: protocol violation (a frame Proton cannot dispatch); closing the "
             "connection", wnet_peer_name(ac->c));
    if (pn_connection_state(conn) & PN_REMOTE_UNINIT) {
        /* No open from the peer: Proton will not send a close before one; just hang up. */
        pn_connection_driver_close(&ac->d);
        pump(ac);
        return;
    }
    set_cond(pn_connection_condition(conn), "amqp:connection:framing-error",
             "malformed frame or unknown performative");
    pn_connection_close(conn);
    pump(ac);
}

/* The guard found a framing violation: close with its condition, read no more. */
static void guard_violation(struct wka_conn *ac, const char *why)
{
    pn_connection_t *conn = ac->d.connection;

    log_info("AMQP %s: protocol violation: %s; closing the connection", wnet_peer_name(ac->c),
             why);
    set_cond(pn_connection_condition(conn), ac->guard.cond, "%s", why);
    pn_connection_close(conn);
    pn_connection_driver_read_close(&ac->d);
    pump(ac);
}

static ssize_t am_input(void *state, const uint8_t *buf, size_t len)
{
    struct wka_conn *ac = state;
    size_t used = 0;
    char why[200];

    if (ac->guard.cond)
        return (ssize_t)len; /* closed for a violation: discard */
    while (used < len) {
        if (pn_connection_driver_read_closed(&ac->d)) {
            input_stopped(ac);
            return (ssize_t)len; /* after an error: discard the rest */
        }
        pn_rwbytes_t rb = pn_connection_driver_read_buffer(&ac->d);
        if (rb.size == 0)
            break;
        size_t n = rb.size < len - used ? rb.size : len - used;
        if (wka_guard_feed(&ac->guard, buf + used, n, why, sizeof(why)) < 0) {
            guard_violation(ac, why);
            return (ssize_t)len;
        }
        memcpy(rb.start, buf + used, n);
        pn_connection_driver_read_done(&ac->d, n);
        used += n;
        pump(ac);
    }
    if (pn_connection_driver_read_closed(&ac->d))
        input_stopped(ac);
    else
        ac->defer_out = true;
    if (used < len) {
        ac->in_paused = true;
        wnet_pause_input(ac->c);
    }
    return (ssize_t)used;
}

static void am_output(void *state, const uint8_t **p, size_t *len)
{
    struct wka_conn *ac = state;

    /*
     * The flush worker_net does right after our input is skipped: what input
     * produces here is mostly link credit, and the idle hook flushes every
     * connection before the loop waits again, together with the answers and
     * deliveries of the core records read then. One send per round, not two.
     */
    if (ac->defer_out) {
        ac->defer_out = false;
        *p = NULL;
        *len = 0;
        return;
    }
    pump(ac); /* events of the core records handled since the last flush */
    pn_bytes_t b = pn_connection_driver_write_buffer(&ac->d);

    *p = (const uint8_t *)b.start;
    *len = b.size;
}

static void am_consumed(void *state, size_t n)
{
    struct wka_conn *ac = state;

    pn_connection_driver_write_done(&ac->d, n);
    pump(ac);
    if (ac->in_paused) {
        ac->in_paused = false;
        wnet_resume_input(ac->c);
    }
}

static bool am_should_close(void *state)
{
    return pn_connection_driver_write_closed(&((struct wka_conn *)state)->d);
}

static void am_close(void *state, const char *why)
{
    struct wka_conn *ac = state;
    size_t pos = 0;
    struct u64map_entry *e;

    if (ac->opened) {
        struct msgproto_rec rec = {.type = MSGPROTO_CONN_CLOSE};
        rec.u.conn.conn = ac->id;
        rec.u.conn.client_id = msgproto_str("");
        rec.u.conn.user = msgproto_str("");
        if (wk_send(ac->w, &rec, true) < 0)
            log_err("could not tell the core that connection %" PRIx64 " closed (%s)", ac->id,
                    why);
    }
    if (ac->tick_timer)
        evloop_del(ac->w->loop, ac->tick_timer);
    wk_conn_unregister(ac->w, ac->id);
    while ((e = u64map_next(&ac->corr, &pos))) {
        wka_tx_free(((struct wka_pend *)e->val)->tx);
        free(e->val);
    }
    pos = 0;
    while ((e = u64map_next(&ac->txs, &pos)))
        wka_tx_free(e->val);
    u64map_free(&ac->corr);
    u64map_free(&ac->consumers);
    u64map_free(&ac->txs);
    wka_guard_free(&ac->guard);
    for (struct wka_link *lk = ac->links, *next; lk; lk = next) {
        next = lk->next;
        link_release(lk);
    }
    ac->links = NULL;
    pn_connection_driver_destroy(&ac->d);
    pn_message_free(ac->msg);
    free(ac->obuf);
    free(ac);
}

int wk_amqp_init(struct worker *w, struct wnet_proto *p, char *err, size_t errlen)
{
    int r = wka_users_load(w->cfg.users_file, &G.users, err, errlen);

    if (r < 0)
        return r;
    *p = (struct wnet_proto){
        .name = "AMQP",
        .open = am_open,
        .input = am_input,
        .output = am_output,
        .consumed = am_consumed,
        .should_close = am_should_close,
        .close = am_close,
        .ctx = w,
    };
    return 0;
}

void wk_amqp_fini(void)
{
    wka_users_free(G.users);
    G.users = NULL;
}

void wk_amqp_stomp_payload(const struct hmsg *m, char *fmt, size_t fmtcap, const uint8_t **p,
                           size_t *len)
{
    wka_msg_payload(m, fmt, fmtcap, p, len);
}
