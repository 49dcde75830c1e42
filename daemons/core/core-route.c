/*
 * core-route — messages, references, routing a SEND to queues (Artemis
 * model: anycast → one queue, multicast → every subscription queue, FQQN →
 * the named queue), auto-creation, duplicate-id detection and dead-lettering.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-internal.h"
#include "hamq/log.h"

struct core_msg *msg_new(struct core_engine *e, const void *data, size_t len, uint64_t id)
{
    struct core_msg *m = malloc(sizeof(*m) + len);
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    memcpy(m->data, data, len);
    m->len = len;
    if (hmsg_decode(m->data, len, &m->view) < 0) {
        free(m);
        return NULL;
    }
    e->mem_bytes += len;
    m->id = id ? id : e->next_msg_id++;
    m->priority = m->view.priority;
    m->expiration = m->view.expiration;
    m->durable = m->view.durable;
    return m;
}

void msg_free(struct core_engine *e, struct core_msg *m)
{
    e->mem_bytes -= m->len;
    free(m);
}

void msg_put(struct core_engine *e, struct core_msg *m)
{
    if (--m->refs == 0)
        msg_free(e, m);
}

/* ---- producer flow control ---- */

static uint64_t addr_limit(struct core_engine *e, struct core_address *a)
{
    if (!e->aflow)
        return 0;
    if (a->limit_gen != e->aflow_gen) {
        a->limit = e->aflow->limit(e->aflow_ctx, a->name);
        a->limit_gen = e->aflow_gen;
    }
    return a->limit;
}

/* Same marks as the global limit: blocked at the limit, released at 90 %. */
static void addr_flow_eval(struct core_engine *e, struct core_address *a)
{
    uint64_t max = addr_limit(e, a);
    bool block = max && a->bytes >= max;
    bool release = a->flow_blocked && (!max || a->bytes <= max - max / 10);

    if ((block && !a->flow_blocked) || release) {
        a->flow_blocked = block;
        if (e->aflow)
            e->aflow->changed(e->aflow_ctx, a->name, block, a->bytes, max);
    }
}

/* The bytes of a changed: evaluate it at the end of the operation. */
static void addr_charge(struct core_engine *e, struct core_address *a, int64_t delta)
{
    a->bytes = (uint64_t)((int64_t)a->bytes + delta);
    if (e->aflow && !a->flow_pending) {
        a->flow_pending = true;
        a->flow_next = e->aflow_pending;
        e->aflow_pending = a;
    }
}

/* A ref of m joins q: charge q's address unless m is charged there already. */
static void acct_add(struct core_engine *e, struct core_ref *r)
{
    struct core_msg *m = r->m;
    struct core_address *a = r->q->addr;

    if (m->acct == a) {
        m->acct_refs++;
        return;
    }
    if (!m->acct) {
        m->acct = a;
        m->acct_refs = 1;
    } else {
        r->acct_extra = true;
    }
    addr_charge(e, a, (int64_t)m->len);
}

static void acct_remove(struct core_engine *e, struct core_ref *r)
{
    struct core_msg *m = r->m;

    if (r->acct_extra) {
        addr_charge(e, r->q->addr, -(int64_t)m->len);
    } else if (m->acct && --m->acct_refs == 0) {
        addr_charge(e, m->acct, -(int64_t)m->len);
        m->acct = NULL;
    }
}

/* Producer flow control at the end of every operation: the global limit
 * (max_memory: a high mark there, a low one at 90 %), then every address
 * whose bytes changed. */
void flow_check(struct core_engine *e)
{
    uint64_t max = e->cfg.max_memory;
    bool block = max && e->mem_bytes >= max;
    bool release = e->flow_blocked && e->mem_bytes <= max - max / 10;
    if ((block && !e->flow_blocked) || release) {
        e->flow_blocked = block;
        if (e->io->flow)
            e->io->flow(e->io_ctx, block, e->mem_bytes, max);
    }
    while (e->aflow_pending) {
        struct core_address *a = e->aflow_pending;
        e->aflow_pending = a->flow_next;
        a->flow_next = NULL;
        a->flow_pending = false;
        addr_flow_eval(e, a);
    }
}

void core_flow_addresses(struct core_engine *e, const struct core_addr_flow_ops *ops, void *ctx)
{
    size_t b = 0;
    const struct hmap_ent *it = NULL;
    struct core_address *a;

    while (e->aflow_pending) { /* every address is evaluated below */
        a = e->aflow_pending;
        e->aflow_pending = a->flow_next;
        a->flow_next = NULL;
        a->flow_pending = false;
    }
    if (!ops) { /* limits removed: release through the old ops, then forget them */
        while ((a = hmap_next(&e->addresses, &b, &it)))
            if (a->flow_blocked) {
                a->flow_blocked = false;
                e->aflow->changed(e->aflow_ctx, a->name, false, a->bytes, 0);
            }
        e->aflow = NULL;
        return;
    }
    e->aflow = ops;
    e->aflow_ctx = ctx;
    e->aflow_gen++;
    while ((a = hmap_next(&e->addresses, &b, &it)))
        addr_flow_eval(e, a);
}

void core_flow_blocked_each(struct core_engine *e,
                            void (*fn)(void *ctx, const char *address, uint64_t bytes,
                                       uint64_t limit),
                            void *ctx)
{
    size_t b = 0;
    const struct hmap_ent *it = NULL;
    struct core_address *a;

    while ((a = hmap_next(&e->addresses, &b, &it)))
        if (a->flow_blocked)
            fn(ctx, a->name, a->bytes, a->limit);
}

uint64_t core_address_bytes(struct core_engine *e, const char *address)
{
    struct core_address *a = address_get(e, address, false);
    return a ? a->bytes : 0;
}

bool core_address_blocked(struct core_engine *e, const char *address)
{
    struct core_address *a = address_get(e, address, false);
    return a && a->flow_blocked;
}

static void persist_ref(struct core_engine *e, struct core_ref *r)
{
    if (!e->persist || e->no_persist || !r->m->durable || !r->q->durable)
        return;
    if (!r->m->persisted) {
        persist_track(e, e->persist->message(e->persist_ctx, r->m->id, r->m->data, r->m->len));
        r->m->persisted = true;
    }
    persist_track(e, e->persist->ref(e->persist_ctx, r->m->id, r->q->id));
    r->persisted = true;
}

/* Ordering key: priority descending, then arrival sequence ascending. */
static bool ref_before(const struct core_ref *a, const struct core_ref *b)
{
    return a->m->priority > b->m->priority ||
           (a->m->priority == b->m->priority && a->seq < b->seq);
}

void ready_insert(struct core_queue *q, struct core_ref *r, bool from_head)
{
    struct dlist *pos;
    if (from_head) {
        for (pos = q->ready.next; pos != &q->ready; pos = pos->next)
            if (ref_before(r, dl_entry(pos, struct core_ref, link)))
                break;
    } else {
        for (pos = &q->ready; pos->prev != &q->ready; pos = pos->prev)
            if (!ref_before(r, dl_entry(pos->prev, struct core_ref, link)))
                break;
    }
    dl_insert_before(pos, &r->link);
    r->state = REF_READY;
    q->ready_n++;
}

struct core_ref *ref_add(struct core_engine *e, struct core_queue *q, struct core_msg *m)
{
    struct core_ref *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->m = m;
    r->q = q;
    r->seq = q->next_seq++;
    m->refs++;
    acct_add(e, r);
    dl_init(&r->link);
    ready_insert(q, r, false);
    q->added++;
    persist_ref(e, r);
    queue_mark_dirty(e, q);
    return r;
}

/* Unlinks r from wherever it is and frees it. how: RM_DROP (the queue goes,
 * nothing to journal), RM_ACK (a consumer consumed it), RM_GONE (expired or
 * moved to the DLA); the last two tell the store. */
void ref_remove(struct core_engine *e, struct core_ref *r, int how)
{
    if (r->state == REF_READY) {
        r->q->ready_n--;
    } else {
        r->q->delivering_n--;
        r->c->inflight_n--;
        hmap_del(&r->c->by_delivery, &r->delivery_id, sizeof(r->delivery_id));
    }
    dl_remove(&r->link);
    if (how != RM_DROP) {
        if (how == RM_ACK)
            r->q->acked++;
        if (r->persisted && e->persist && !e->no_persist)
            persist_track(e, e->persist->ack(e->persist_ctx, r->m->id, r->q->id));
    }
    acct_remove(e, r);
    msg_put(e, r->m);
    free(r);
}

static struct core_queue *dla_queue(struct core_engine *e)
{
    const char *dla = e->cfg.dead_letter_address;
    struct core_queue *q = hmap_get(&e->queues, dla, strlen(dla));
    if (q)
        return q;
    struct core_address *a = address_get(e, dla, true);
    return a ? queue_create(e, a, dla, MSGPROTO_ANYCAST, true, false, NULL, 0) : NULL;
}

static bool is_orig_prop(struct msgproto_bytes name)
{
    static const char *const names[] = {"_AMQ_ORIG_ADDRESS", "_AMQ_ORIG_QUEUE",
                                        "_AMQ_ORIG_MESSAGE_ID"};
    for (size_t i = 0; i < 3; i++)
        if (name.len == strlen(names[i]) && memcmp(name.p, names[i], name.len) == 0)
            return true;
    return false;
}

/* A copy of r's message carrying Artemis' _AMQ_ORIG_ADDRESS, _AMQ_ORIG_QUEUE
 * and _AMQ_ORIG_MESSAGE_ID properties (replacing older ones), as a new
 * message with its own id (refs 0). NULL when out of memory. */
static struct core_msg *dlq_copy(struct core_engine *e, const struct core_ref *r)
{
    struct hmsg v = r->m->view;
    struct hmsg_prop *props = calloc((size_t)v.nprops + 3, sizeof(*props));
    if (!props)
        return NULL;
    uint32_t n = 0;
    size_t pos = 0;
    while (n < v.nprops && hmsg_prop_next(&v, &pos, &props[n]))
        if (!is_orig_prop(props[n].name))
            n++;
    props[n++] = (struct hmsg_prop){.name = msgproto_str("_AMQ_ORIG_ADDRESS"),
                                    .type = HMSG_PROP_STRING,
                                    .v.bytes = msgproto_str(r->q->addr->name)};
    props[n++] = (struct hmsg_prop){.name = msgproto_str("_AMQ_ORIG_QUEUE"),
                                    .type = HMSG_PROP_STRING, .v.bytes = msgproto_str(r->q->name)};
    props[n++] = (struct hmsg_prop){.name = msgproto_str("_AMQ_ORIG_MESSAGE_ID"),
                                    .type = HMSG_PROP_INT64, .v.i = (int64_t)r->m->id};
    v.nprops = n;
    v.props = props;
    struct core_msg *m = NULL;
    ssize_t len = hmsg_encode(&v, NULL, 0);
    uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (buf && hmsg_encode(&v, buf, (size_t)len) == len)
        m = msg_new(e, buf, (size_t)len, 0);
    free(buf);
    free(props);
    if (m) {
        m->durable = r->m->durable;
        m->priority = r->m->priority;
        m->expiration = r->m->expiration;
    }
    return m;
}

/* Moves r to every queue of the dead-letter address (Artemis: the DLA,
 * template queue DLQ) and returns true. Without a DLA the message is
 * dropped with a warning, as Artemis does. A message already on the DLA
 * is not moved (false: the caller puts it back). r must be detached from
 * any consumer's view only by ref_remove, which this calls. */
bool dead_letter(struct core_engine *e, struct core_ref *r)
{
    if (!e->cfg.dead_letter_address[0]) {
        log_warn("message %llu on queue %s dropped after %u failed deliveries (no dead-letter address)",
                 (unsigned long long)r->m->id, r->q->name, r->delivery_count);
        r->q->dead_lettered++;
        ref_remove(e, r, RM_GONE);
        return true;
    }
    struct core_queue *dq = dla_queue(e);
    if (!dq || r->q->addr == dq->addr)
        return false;
    struct core_msg *copy = dlq_copy(e, r);
    /* Out of memory: move the message unannotated rather than lose it. */
    struct core_msg *m = copy ? copy : r->m;
    if (copy)
        copy->refs++; /* held while the refs are added */
    struct dlist *pos;
    for (pos = dq->addr->queues.next; pos != &dq->addr->queues; pos = pos->next)
        ref_add(e, dl_entry(pos, struct core_queue, addr_link), m);
    r->q->dead_lettered++;
    ref_remove(e, r, RM_GONE);
    if (copy)
        msg_put(e, copy);
    /* copy is owned by the refs just added (refcount); the analyzer cannot
     * follow a refcount through the queue lists. */
    return true; // NOLINT(clang-analyzer-unix.Malloc)
}

/* ---- duplicate ids (a bounded circular cache per address) ---- */

bool dup_seen(struct core_address *a, struct msgproto_bytes id)
{
    return a->dup.size && hmap_get(&a->dup.set, id.p, id.len);
}

void dup_free(struct core_dupcache *d)
{
    for (uint32_t i = 0; d->ring && i < d->size; i++)
        free(d->ring[i]);
    free(d->ring);
    hmap_free(&d->set);
    memset(d, 0, sizeof(*d));
}

void dup_add(struct core_engine *e, struct core_address *a, struct msgproto_bytes id, bool persist)
{
    struct core_dupcache *d = &a->dup;
    if (!e->cfg.id_cache_size || !id.len)
        return;
    if (!d->ring) {
        d->ring = calloc(e->cfg.id_cache_size, sizeof(*d->ring));
        if (!d->ring)
            return;
        d->size = e->cfg.id_cache_size;
        hmap_init(&d->set);
    }
    char *old = d->ring[d->next];
    if (old) {
        size_t olen;
        memcpy(&olen, old, sizeof(olen));
        hmap_del(&d->set, old + sizeof(olen), olen);
        free(old);
    }
    char *copy = malloc(sizeof(size_t) + id.len);
    d->ring[d->next] = copy;
    if (copy) {
        size_t len = id.len;
        memcpy(copy, &len, sizeof(len));
        memcpy(copy + sizeof(len), id.p, id.len);
        hmap_put(&d->set, copy + sizeof(len), id.len, copy);
    }
    d->next = (d->next + 1) % d->size;
    if (persist && e->persist)
        persist_track(e, e->persist->duplicate_id(e->persist_ctx, a->name, id.p, id.len));
}

/* ---- routing ---- */

/* Finds or auto-creates the address for a send of `routing`. */
static int resolve_address(struct core_engine *e, const char *name, uint8_t routing,
                           struct core_address **out)
{
    struct core_address *a = address_get(e, name, false);
    uint8_t want = routing == MSGPROTO_ROUTING_UNSPECIFIED ? 0 : (uint8_t)(1u << routing);
    if (a && (want ? (a->routing & want) : a->routing)) {
        *out = a;
        return 0;
    }
    if (!e->cfg.auto_create) {
        snprintf(e->err, sizeof(e->err), "address %s %s (auto-create is off)", name,
                 a ? "does not accept this routing type" : "does not exist");
        return -ENOENT;
    }
    if (!want)
        want = (uint8_t)(1u << e->cfg.default_routing);
    if (!a && !(a = address_get(e, name, true)))
        return -ENOMEM;
    a->routing |= want;
    if ((want & CORE_ROUTE_ANY) && !hmap_get(&e->queues, name, strlen(name)) &&
        !queue_create(e, a, name, MSGPROTO_ANYCAST, true, false, NULL, 0))
        return -ENOMEM;
    *out = a;
    return 0;
}

static bool queue_accepts(const struct core_queue *q, const struct core_msg *m)
{
    return !q->filter || core_filter_match(q->filter, &m->view);
}

/* Adds refs of m to the queues of a that `routing` selects; returns how many. */
static int route_to_address(struct core_engine *e, struct core_address *a, struct core_msg *m,
                            uint8_t routing)
{
    int n = 0, anycast = 0;
    struct dlist *pos;
    for (pos = a->queues.next; pos != &a->queues; pos = pos->next)
        if (dl_entry(pos, struct core_queue, addr_link)->routing == MSGPROTO_ANYCAST)
            anycast++;
    int pick = anycast ? (int)(a->rr++ % (uint64_t)anycast) : -1, i = 0;
    for (pos = a->queues.next; pos != &a->queues; pos = pos->next) {
        struct core_queue *q = dl_entry(pos, struct core_queue, addr_link);
        bool any = q->routing == MSGPROTO_ANYCAST;
        if (any && i++ != pick)
            continue;
        if (routing != MSGPROTO_ROUTING_UNSPECIFIED && q->routing != routing)
            continue;
        if (queue_accepts(q, m) && ref_add(e, q, m))
            n++;
    }
    return n;
}

static int route_fqqn(struct core_engine *e, struct core_address *a, const char *qname,
                      struct core_msg *m)
{
    struct core_queue *q = hmap_get(&e->queues, qname, strlen(qname));
    if (q && q->addr != a) {
        snprintf(e->err, sizeof(e->err), "queue %s belongs to address %s, not %s", qname,
                 q->addr->name, a->name);
        return -EINVAL;
    }
    if (!q && !e->cfg.auto_create) {
        snprintf(e->err, sizeof(e->err), "queue %s does not exist", qname);
        return -ENOENT;
    }
    if (!q && !(q = queue_create(e, a, qname, MSGPROTO_ANYCAST, true, false, NULL, 0)))
        return -ENOMEM;
    return ref_add(e, q, m) ? 1 : -ENOMEM;
}

/* Routes one SEND now (outside transactions, or at commit). 0 or -errno
 * with e->err set. A message no queue takes is dropped, as in Artemis. */
int route_send(struct core_engine *e, const struct msgproto_send *s, bool durable)
{
    char *address = NULL, *queue = NULL, *full = bytes_dup(s->address);
    if (!full)
        return -ENOMEM;
    split_fqqn(full, &address, &queue);
    free(full);
    int rc = -ENOMEM;
    if (!address || !queue)
        goto out;
    if (s->queue.len && !*queue) {
        free(queue);
        queue = bytes_dup(s->queue);
    }
    struct core_address *a = NULL;
    rc = -EINVAL;
    if (!*address) {
        snprintf(e->err, sizeof(e->err), "SEND without an address");
        goto out;
    }
    struct core_msg *m = msg_new(e, s->message.p, s->message.len, 0);
    rc = -EBADMSG;
    if (!m) {
        snprintf(e->err, sizeof(e->err), "malformed encoded message");
        goto out;
    }
    if ((rc = resolve_address(e, address, s->routing, &a)) < 0 ||
        (s->dup_id.len && dup_seen(a, s->dup_id))) {
        if (rc == 0)
            log_warn("duplicate message on address %s (duplicate id known): not routed", a->name);
        msg_free(e, m);
        goto out;
    }
    m->durable = durable;
    m->refs = 1; /* held while routing */
    if (s->priority <= 9)
        m->priority = s->priority;
    if (s->expiration)
        m->expiration = s->expiration;
    rc = *queue ? route_fqqn(e, a, queue, m) : route_to_address(e, a, m, s->routing);
    msg_put(e, m);
    if (rc >= 0) {
        dup_add(e, a, s->dup_id, durable);
        rc = 0;
    }
out:
    free(address);
    free(queue);
    return rc;
}

int core_send(struct core_engine *e, uint32_t worker, const struct msgproto_send *s, bool durable)
{
    op_begin(e);
    struct core_conn *c = conn_find(e, worker, s->conn);
    int rc;
    if (!c) {
        snprintf(e->err, sizeof(e->err), "SEND on an unknown connection");
        rc = -ENOTCONN;
    } else if (s->message.len > msgproto_record_max(e->cfg.max_message_size)) {
        /* The worker held the client to max_message_size; this stops a runaway record. */
        snprintf(e->err, sizeof(e->err), "message of %u bytes exceeds the maximum of %zu",
                 s->message.len, e->cfg.max_message_size);
        rc = -EMSGSIZE;
    } else if (s->dup_id.len > CORE_DUP_ID_MAX) {
        snprintf(e->err, sizeof(e->err), "duplicate id of %u bytes exceeds the maximum of %u",
                 s->dup_id.len, CORE_DUP_ID_MAX);
        rc = -EINVAL;
    } else {
        rc = s->tx ? tx_add_send(e, c, s, durable) : route_send(e, s, durable);
    }
    rc = answer(e, worker, s->conn, s->corr, rc, rc ? "%s" : NULL, e->err);
    op_end(e);
    return rc;
}
