/*
 * core-dispatch — consumers: subscribe/unsubscribe, credit, dispatch
 * round-robin bounded by credit, browsing, settlement (ack, release,
 * modified, reject), redelivery and dead-lettering on failure, and the
 * release of everything a closed connection or consumer held.
 *
 * Delivery counts: r->delivery_count counts failed deliveries (AMQP
 * delivery-count: 0 on the first delivery). RELEASE keeps it; MODIFIED and
 * a consumer/connection/worker going away raise it; when it reaches
 * max_delivery_attempts the message moves to the dead-letter address (so
 * with 10 it is delivered 10 times, like Artemis). REJECT moves at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-drain.h"
#include "core-internal.h"

enum { TRY_NONE, TRY_DELIVERED, TRY_REMOVED };

static bool unbounded_window(const struct core_consumer *c)
{
    return c->credit == UINT32_MAX ||
           ((c->options & MSGPROTO_SUB_WINDOW) && (c->options & MSGPROTO_SUB_BROWSE));
}

static bool has_credit(const struct core_consumer *c)
{
    if (unbounded_window(c))
        return true;
    if (c->options & MSGPROTO_SUB_WINDOW)
        return c->inflight_n < c->credit;
    return c->credit > 0;
}

static void take_credit(struct core_consumer *c)
{
    if (!unbounded_window(c) && !(c->options & MSGPROTO_SUB_WINDOW))
        c->credit--;
}

/* Hands r to the worker; false if its ring is full (r goes back). */
static bool deliver_ref(struct core_engine *e, struct core_consumer *c, struct core_ref *r)
{
    struct core_queue *q = r->q;
    dl_remove(&r->link);
    q->ready_n--;
    struct core_delivery d = {
        .worker = c->conn->worker, .conn = c->conn->id, .consumer = c->id,
        .delivery_id = c->next_delivery + 1, .message_id = r->m->id,
        .delivery_count = r->delivery_count, .redelivered = r->delivered_before,
        .data = r->m->data, .len = r->m->len};
    if (e->io->deliver(e->io_ctx, &d) < 0) {
        ready_insert(q, r, true);
        e->blocked[c->conn->worker] = true;
        return false;
    }
    c->next_delivery++;
    r->delivered_before = true;
    r->state = REF_DELIVERING;
    r->c = c;
    r->delivery_id = c->next_delivery;
    dl_push_tail(&c->inflight, &r->link);
    c->inflight_n++;
    q->delivering_n++;
    take_credit(c);
    if ((c->options & MSGPROTO_SUB_AUTO_ACK) ||
        hmap_put(&c->by_delivery, &r->delivery_id, sizeof(r->delivery_id), r) < 0)
        ref_remove(e, r, RM_ACK);
    return true;
}

static bool expired(struct core_engine *e, const struct core_ref *r, int64_t *now)
{
    if (!r->m->expiration)
        return false;
    if (*now < 0)
        *now = now_ms(e);
    return *now >= r->m->expiration;
}

static int try_deliver_one(struct core_engine *e, struct core_consumer *c)
{
    struct core_queue *q = c->q;
    int64_t now = -1;
    if (e->blocked[c->conn->worker] || !has_credit(c))
        return TRY_NONE;
    for (struct dlist *pos = q->ready.next, *next; pos != &q->ready; pos = next) {
        next = pos->next;
        struct core_ref *r = dl_entry(pos, struct core_ref, link);
        if (expired(e, r, &now)) {
            q->expired++;
            ref_remove(e, r, RM_GONE); /* Artemis without expiry-address: dropped */
            continue;
        }
        if (r->excluded == c->serial || (c->filter && !core_filter_match(c->filter, &r->m->view)))
            continue;
        return deliver_ref(e, c, r) ? TRY_DELIVERED : TRY_NONE;
    }
    return TRY_NONE;
}

static bool after_cursor(const struct core_consumer *c, const struct core_ref *r)
{
    return !c->browse_started || r->m->priority < c->browse_prio ||
           (r->m->priority == c->browse_prio && r->seq > c->browse_seq);
}

static int browse_one(struct core_engine *e, struct core_consumer *c)
{
    if (e->blocked[c->conn->worker] || !has_credit(c))
        return TRY_NONE;
    int64_t now = -1;
    struct dlist *pos;
    for (pos = c->q->ready.next; pos != &c->q->ready; pos = pos->next) {
        struct core_ref *r = dl_entry(pos, struct core_ref, link);
        if (!after_cursor(c, r) || expired(e, r, &now) ||
            (c->filter && !core_filter_match(c->filter, &r->m->view)))
            continue;
        struct core_delivery d = {
            .worker = c->conn->worker, .conn = c->conn->id, .consumer = c->id,
            .delivery_id = c->next_delivery + 1, .message_id = r->m->id,
            .delivery_count = r->delivery_count, .redelivered = r->delivered_before,
            .data = r->m->data, .len = r->m->len};
        if (e->io->deliver(e->io_ctx, &d) < 0) {
            e->blocked[c->conn->worker] = true;
            return TRY_NONE;
        }
        c->next_delivery++;
        c->browse_started = true;
        c->browse_prio = r->m->priority;
        c->browse_seq = r->seq;
        take_credit(c);
        return TRY_DELIVERED;
    }
    /* Nothing left to show: the browse is complete. */
    e->io->consumer_closed(e->io_ctx, c->conn->worker, c->conn->id, c->id, 0, "browse complete");
    hmap_del(&c->conn->consumers, &c->id, sizeof(c->id));
    consumer_close(e, c, false);
    return TRY_REMOVED;
}

/* ---- pending drains (core-drain.h) ---- */

/* Credit mode: the consumer holds a count of messages it may still get. */
static bool credit_mode(const struct core_consumer *c)
{
    return !unbounded_window(c) && !(c->options & MSGPROTO_SUB_WINDOW);
}

/* A ready message c would get now if its worker's ring had room. */
static bool deliverable(struct core_engine *e, const struct core_consumer *c)
{
    int64_t now = -1;
    bool browse = c->options & MSGPROTO_SUB_BROWSE;
    for (struct dlist *pos = c->q->ready.next; pos != &c->q->ready; pos = pos->next) {
        const struct core_ref *r = dl_entry(pos, struct core_ref, link);
        if (expired(e, r, &now) || (browse ? !after_cursor(c, r) : r->excluded == c->serial))
            continue;
        if (!c->filter || core_filter_match(c->filter, &r->m->view))
            return true;
    }
    return false;
}

static void drain_forget(struct core_consumer *c)
{
    if (!c->drain_pending)
        return;
    c->drain_pending = false;
    c->q->drains_pending--;
}

/* DONE(corr) with the credit dropped. It reports credit, not the store: a
 * store error of the operation whose dispatch round ended the drain is that
 * operation's own answer, and its error text must survive for its caller. */
static void drain_answer(struct core_engine *e, const struct core_conn *cn, uint64_t corr,
                         uint32_t dropped)
{
    int op_err = e->op_err;
    char err[sizeof(e->err)];
    memcpy(err, e->err, sizeof(err));
    e->op_err = 0;
    answer(e, cn->worker, cn->id, corr, dropped > INT32_MAX ? INT32_MAX : (int)dropped, NULL);
    e->op_err = op_err;
    memcpy(e->err, err, sizeof(err));
}

/* Ends c's pending drain: the credit left is dropped and DONE says how much. */
static void drain_finish(struct core_engine *e, struct core_consumer *c)
{
    uint32_t dropped = 0;
    if (credit_mode(c)) {
        dropped = c->credit;
        c->credit = 0;
    }
    drain_forget(c);
    drain_answer(e, c->conn, c->drain_corr, dropped);
}

/* After a dispatch round: answering now would not say "drained" with a
 * message left that c could have had but for its worker's full ring. */
static bool drain_may_end(struct core_engine *e, const struct core_consumer *c)
{
    return !credit_mode(c) || c->credit == 0 || !e->blocked[c->conn->worker] || !deliverable(e, c);
}

static void drains_settle(struct core_engine *e, struct core_queue *q)
{
    for (struct dlist *pos = q->consumers.next; pos != &q->consumers; pos = pos->next) {
        struct core_consumer *c = dl_entry(pos, struct core_consumer, qlink);
        if (c->drain_pending && drain_may_end(e, c))
            drain_finish(e, c);
    }
}

/* ---- dispatch ---- */

void queue_dispatch(struct core_engine *e, struct core_queue *q)
{
    /* Round robin: the first consumer (from the head) that can take a
     * message gets one and moves to the tail; repeat until nobody can.
     * Each pass delivers one message or ends, so passes are bounded. */
    uint64_t max_passes = (q->ready_n + 1) * ((uint64_t)q->nconsumers + 1);
    for (uint64_t pass = 0; pass < max_passes; pass++) {
        bool delivered = false;
        for (struct dlist *pos = q->consumers.next, *next; pos != &q->consumers; pos = next) {
            next = pos->next;
            struct core_consumer *c = dl_entry(pos, struct core_consumer, qlink);
            int r = (c->options & MSGPROTO_SUB_BROWSE) ? browse_one(e, c) : try_deliver_one(e, c);
            if (r == TRY_DELIVERED) {
                dl_remove(&c->qlink);
                dl_push_tail(&q->consumers, &c->qlink);
                delivered = true;
                break;
            }
        }
        if (!delivered)
            break;
    }
    if (q->drains_pending)
        drains_settle(e, q);
}

/* ---- settlement ---- */

static void ref_detach(struct core_ref *r)
{
    struct core_consumer *c = r->c;
    hmap_del(&c->by_delivery, &r->delivery_id, sizeof(r->delivery_id));
    c->inflight_n--;
    r->q->delivering_n--;
    dl_remove(&r->link);
    r->c = NULL;
}

/* r detached: back to its place in its queue, count raised if the delivery failed. */
static void requeue(struct core_engine *e, struct core_ref *r, bool raise)
{
    struct core_queue *q = r->q;
    ready_insert(q, r, true);
    queue_mark_dirty(e, q);
    if (!raise)
        return;
    r->delivery_count++;
    if (r->persisted && e->persist && !e->no_persist)
        persist_track(e, e->persist->delivery_count(e->persist_ctx, r->m->id, q->id,
                                                    r->delivery_count));
    if (e->cfg.max_delivery_attempts && r->delivery_count >= e->cfg.max_delivery_attempts)
        dead_letter(e, r);
}

static int settle_one(struct core_engine *e, struct core_consumer *c, uint16_t type,
                      uint8_t flags, struct core_ref *r)
{
    switch (type) {
    case MSGPROTO_ACK:
        ref_remove(e, r, RM_ACK);
        break;
    case MSGPROTO_RELEASE:
        ref_detach(r);
        if (flags & MSGPROTO_F_UNDELIVERABLE_HERE)
            r->excluded = c->serial; /* AMQP modified{undeliverable-here} without a failure */
        requeue(e, r, false);
        break;
    case MSGPROTO_MODIFIED:
        ref_detach(r);
        if (flags & MSGPROTO_F_UNDELIVERABLE_HERE)
            r->excluded = c->serial;
        requeue(e, r, true);
        break;
    case MSGPROTO_REJECT:
        ref_detach(r);
        requeue(e, r, false);
        dead_letter(e, r);
        break;
    default:
        return -EINVAL;
    }
    return 0;
}

int settle_apply(struct core_engine *e, struct core_consumer *c, uint16_t type, uint8_t flags,
                 uint64_t delivery)
{
    queue_mark_dirty(e, c->q); /* a window slot is free again */
    if (c->options & MSGPROTO_SUB_BROWSE)
        return 0; /* browsed copies need no settlement */
    if (type == MSGPROTO_ACK && (flags & MSGPROTO_F_CUMULATIVE)) {
        if (delivery == 0 || delivery > c->next_delivery) {
            snprintf(e->err, sizeof(e->err), "delivery %llu was never sent to consumer %llu",
                     (unsigned long long)delivery, (unsigned long long)c->id);
            return -ENOENT;
        }
        while (!dl_empty(&c->inflight)) {
            struct core_ref *r = dl_entry(c->inflight.next, struct core_ref, link);
            if (r->delivery_id > delivery)
                break;
            ref_remove(e, r, RM_ACK);
        }
        return 0;
    }
    struct core_ref *r = hmap_get(&c->by_delivery, &delivery, sizeof(delivery));
    if (!r) {
        snprintf(e->err, sizeof(e->err), "delivery %llu of consumer %llu is not outstanding",
                 (unsigned long long)delivery, (unsigned long long)c->id);
        return -ENOENT;
    }
    return settle_one(e, c, type, flags, r);
}

/* ---- consumers ---- */

void consumer_close(struct core_engine *e, struct core_consumer *c, bool raise_count)
{
    struct core_queue *q = c->q;
    if (c->drain_pending)
        drain_finish(e, c); /* conn_free forgot it first: here the connection lives */
    while (!dl_empty(&c->inflight)) {
        struct core_ref *r = dl_entry(c->inflight.next, struct core_ref, link);
        ref_detach(r);
        requeue(e, r, raise_count);
    }
    dl_remove(&c->qlink);
    q->nconsumers--;
    core_filter_free(c->filter);
    hmap_free(&c->by_delivery);
    free(c);
    queue_mark_dirty(e, q);
}

/* A queue that only lived for its consumers goes with the last one. */
static void queue_gc(struct core_engine *e, struct core_queue *q, bool remove_durable)
{
    if (q->nconsumers == 0 &&
        (q->temporary || (remove_durable && q->durable && q->routing == MSGPROTO_MULTICAST)))
        queue_delete(e, q);
}

static struct core_consumer *consumer_find(struct core_engine *e, uint32_t worker, uint64_t conn,
                                           uint64_t id)
{
    struct core_conn *c = conn_find(e, worker, conn);
    return c ? hmap_get(&c->consumers, &id, sizeof(id)) : NULL;
}

void conn_free(struct core_engine *e, struct core_conn *cn)
{
    struct core_tx *t;
    size_t b = 0;
    const struct hmap_ent *it = NULL;
    while ((t = hmap_next(&cn->txs, &b, &it)))
        tx_free(t); /* rolled back: nothing of it was applied */
    hmap_free(&cn->txs);
    struct core_consumer *c;
    while ((b = 0, it = NULL, c = hmap_next(&cn->consumers, &b, &it))) {
        struct core_queue *q = c->q;
        hmap_del(&cn->consumers, &c->id, sizeof(c->id));
        drain_forget(c); /* the connection is gone: no DONE to send */
        consumer_close(e, c, true);
        if (!e->no_persist)
            queue_gc(e, q, false);
    }
    hmap_free(&cn->consumers);
    msgproto_reasm_reset(&cn->reasm);
    free(cn->client_id);
    free(cn);
}

/* Which queue a SUBSCRIBE attaches to; NULL with e->err set. */
static struct core_queue *sub_queue(struct core_engine *e, struct core_conn *cn,
                                    const struct msgproto_subscribe *s, const char *address,
                                    const char *qname, const char *filter, int *err)
{
    struct core_address *a = address_get(e, address, false);
    uint8_t routing = s->routing;
    if (routing == MSGPROTO_ROUTING_UNSPECIFIED)
        routing = a && a->routing ? ((a->routing & CORE_ROUTE_ANY) ? MSGPROTO_ANYCAST
                                                                   : MSGPROTO_MULTICAST)
                                  : e->cfg.default_routing;
    if (*qname || routing == MSGPROTO_ANYCAST) {
        const char *name = *qname ? qname : address;
        struct core_queue *q = hmap_get(&e->queues, name, strlen(name));
        if (q && q->addr->name != address && strcmp(q->addr->name, address) != 0) {
            snprintf(e->err, sizeof(e->err), "queue %s belongs to address %s", name, q->addr->name);
            *err = -EINVAL;
            return NULL;
        }
        if (q)
            return q;
        if (!e->cfg.auto_create) {
            snprintf(e->err, sizeof(e->err), "queue %s does not exist (auto-create is off)", name);
            *err = -ENOENT;
            return NULL;
        }
        if (!a && !(a = address_get(e, address, true)))
            return NULL;
        bool multi = routing == MSGPROTO_MULTICAST;
        return queue_create(e, a, name, routing, !multi || (s->options & MSGPROTO_SUB_DURABLE),
                            multi && !(s->options & MSGPROTO_SUB_DURABLE), multi ? filter : NULL, 0);
    }
    if (s->options & MSGPROTO_SUB_BROWSE) {
        snprintf(e->err, sizeof(e->err), "browsing needs a queue: anycast or address::queue");
        *err = -EINVAL;
        return NULL;
    }
    if ((!a || !(a->routing & CORE_ROUTE_MULTI)) && !e->cfg.auto_create) {
        snprintf(e->err, sizeof(e->err), "multicast address %s does not exist (auto-create is off)",
                 address);
        *err = -ENOENT;
        return NULL;
    }
    if (!a && !(a = address_get(e, address, true)))
        return NULL;
    a->routing |= CORE_ROUTE_MULTI;
    char name[512];
    if (s->options & MSGPROTO_SUB_DURABLE) {
        if (!s->sub_name.len || !cn->client_id[0]) {
            snprintf(e->err, sizeof(e->err),
                     "a durable subscription needs a client-id and a subscription name");
            *err = -EINVAL;
            return NULL;
        }
        snprintf(name, sizeof(name), "%s.%.*s", cn->client_id, (int)s->sub_name.len,
                 (const char *)s->sub_name.p);
        struct core_queue *q = hmap_get(&e->queues, name, strlen(name));
        if (q && q->addr != a) {
            snprintf(e->err, sizeof(e->err), "subscription %.100s exists on address %.100s", name,
                     q->addr->name);
            *err = -EEXIST;
            return NULL;
        }
        if (q)
            return q;
        return queue_create(e, a, name, MSGPROTO_MULTICAST, true, false, filter, 0);
    }
    snprintf(name, sizeof(name), "%s.sub-%llu", address, (unsigned long long)e->next_serial++);
    return queue_create(e, a, name, MSGPROTO_MULTICAST, false, true, filter, 0);
}

static int consumer_add(struct core_engine *e, struct core_conn *cn,
                        const struct msgproto_subscribe *s, struct core_queue *q,
                        const char *filter)
{
    struct core_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    /* Multicast subscriptions filter at routing (the queue's filter). */
    if (*filter && q->routing == MSGPROTO_ANYCAST &&
        !(c->filter = core_filter_compile(filter, e->err, sizeof(e->err)))) {
        free(c);
        return -EINVAL;
    }
    c->conn = cn;
    c->id = s->consumer;
    c->serial = e->next_serial++;
    c->q = q;
    c->options = s->options;
    c->credit = s->credit;
    dl_init(&c->inflight);
    hmap_init(&c->by_delivery);
    if (hmap_put(&cn->consumers, &c->id, sizeof(c->id), c) < 0) {
        core_filter_free(c->filter);
        free(c);
        return -ENOMEM;
    }
    dl_push_tail(&q->consumers, &c->qlink);
    q->nconsumers++;
    queue_mark_dirty(e, q);
    return 0;
}

static int subscribe(struct core_engine *e, struct core_conn *cn, const struct msgproto_subscribe *s)
{
    if (hmap_get(&cn->consumers, &s->consumer, sizeof(s->consumer))) {
        snprintf(e->err, sizeof(e->err), "consumer %llu already exists",
                 (unsigned long long)s->consumer);
        return -EEXIST;
    }
    if (s->routing > MSGPROTO_ROUTING_UNSPECIFIED) {
        snprintf(e->err, sizeof(e->err), "unknown routing type %u", s->routing);
        return -EINVAL;
    }
    char *full = bytes_dup(s->address), *filter = bytes_dup(s->filter), *address = NULL,
         *qname = NULL;
    int rc = -ENOMEM;
    snprintf(e->err, sizeof(e->err), "out of memory");
    if (full && filter) {
        split_fqqn(full, &address, &qname);
        if (address && qname && !*qname && s->queue.len) {
            free(qname);
            qname = bytes_dup(s->queue);
        }
    }
    if (address && qname && filter) {
        rc = -EINVAL;
        struct core_filter *check = NULL;
        if (!*address)
            snprintf(e->err, sizeof(e->err), "SUBSCRIBE without an address");
        else if (*filter && !(check = core_filter_compile(filter, e->err, sizeof(e->err))))
            ;
        else {
            struct core_queue *q = sub_queue(e, cn, s, address, qname, filter, &rc);
            rc = q ? consumer_add(e, cn, s, q, filter) : rc;
        }
        core_filter_free(check);
    }
    free(full);
    free(filter);
    free(address);
    free(qname);
    return rc;
}

int core_subscribe(struct core_engine *e, uint32_t worker, const struct msgproto_subscribe *s)
{
    op_begin(e);
    struct core_conn *cn = conn_find(e, worker, s->conn);
    int rc = cn ? subscribe(e, cn, s) : -ENOTCONN;
    if (!cn)
        snprintf(e->err, sizeof(e->err), "SUBSCRIBE on an unknown connection");
    rc = answer(e, worker, s->conn, s->corr, rc, rc ? "%s" : NULL, e->err);
    op_end(e);
    return rc;
}

int core_unsubscribe(struct core_engine *e, uint32_t worker, const struct msgproto_consumer_ref *u,
                     bool remove_durable)
{
    op_begin(e);
    struct core_consumer *c = consumer_find(e, worker, u->conn, u->consumer);
    int rc = 0;
    if (!c) {
        rc = answer(e, worker, u->conn, u->corr, -ENOENT, "no consumer %llu",
                    (unsigned long long)u->consumer);
    } else {
        struct core_queue *q = c->q;
        hmap_del(&c->conn->consumers, &c->id, sizeof(c->id));
        consumer_close(e, c, true);
        queue_gc(e, q, remove_durable);
        rc = answer(e, worker, u->conn, u->corr, 0, NULL);
    }
    op_end(e);
    return rc;
}

int core_credit(struct core_engine *e, uint32_t worker, uint64_t conn, uint64_t consumer,
                uint32_t credits)
{
    op_begin(e);
    struct core_consumer *c = consumer_find(e, worker, conn, consumer);
    int rc = 0;
    if (!c) {
        rc = answer(e, worker, conn, 0, -ENOENT, "CREDIT for unknown consumer %llu",
                    (unsigned long long)consumer);
    } else {
        uint64_t sum = (uint64_t)c->credit + credits;
        c->credit = c->credit == UINT32_MAX || sum >= UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
        queue_mark_dirty(e, c->q);
    }
    op_end(e);
    return rc;
}

int core_drain(struct core_engine *e, uint32_t worker, const struct msgproto_consumer_ref *d)
{
    op_begin(e);
    struct core_consumer *c = consumer_find(e, worker, d->conn, d->consumer);
    int rc = 0;
    if (!c) {
        rc = answer(e, worker, d->conn, d->corr, -ENOENT, "DRAIN for unknown consumer %llu",
                    (unsigned long long)d->consumer);
    } else {
        if (c->drain_pending) { /* superseded: dropped nothing, the new one goes on */
            drain_forget(c);
            drain_answer(e, c->conn, c->drain_corr, 0);
        }
        c->drain_pending = true;
        c->drain_corr = d->corr;
        c->q->drains_pending++;
        queue_dispatch(e, c->q); /* ends it unless the worker's ring is full */
    }
    op_end(e);
    return rc;
}

int core_settle(struct core_engine *e, uint32_t worker, uint16_t type, uint8_t flags,
                const struct msgproto_settle *s)
{
    op_begin(e);
    struct core_conn *cn = conn_find(e, worker, s->conn);
    struct core_consumer *c = cn ? hmap_get(&cn->consumers, &s->consumer, sizeof(s->consumer)) : NULL;
    int rc;
    if (!c) {
        snprintf(e->err, sizeof(e->err), "%s for unknown consumer %llu", msgproto_type_name(type),
                 (unsigned long long)s->consumer);
        rc = -ENOENT;
    } else if (type < MSGPROTO_ACK || type > MSGPROTO_REJECT) {
        snprintf(e->err, sizeof(e->err), "not a settlement: %u", type);
        rc = -EINVAL;
    } else if (s->tx) {
        rc = tx_add_settle(e, cn, type, flags, s);
    } else {
        rc = settle_apply(e, c, type, flags, s->delivery);
    }
    rc = answer(e, worker, s->conn, s->corr, rc, rc ? "%s" : NULL, e->err);
    op_end(e);
    return rc;
}

void core_worker_resume(struct core_engine *e, uint32_t worker)
{
    if (worker >= CORE_MAX_WORKERS || !e->blocked[worker])
        return;
    e->blocked[worker] = false;
    op_begin(e);
    size_t b = 0;
    const struct hmap_ent *it = NULL;
    struct core_queue *q;
    while ((q = hmap_next(&e->queues, &b, &it)))
        if (q->nconsumers)
            queue_mark_dirty(e, q);
    op_end(e);
}
