/*
 * core-tx — transactions of a connection: SENDs and settlements in a tx are
 * kept aside and applied, in order, at commit; rollback (or the connection
 * closing) discards them. A settlement rolled back leaves its delivery
 * outstanding with its consumer, as if it had never been sent (STOMP ABORT).
 * A duplicate id met inside a tx marks it rollback-only: its commit fails
 * and applies nothing (Artemis: the whole transaction is ignored).
 * Weak point: commit journals its records one by one (no tx records yet),
 * so a crash in the middle of a commit's group may keep a prefix of it; the
 * commit's answer waits until all are durable, so a client told "committed"
 * has all of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-internal.h"

void tx_free(struct core_tx *t)
{
    for (struct dlist *n = t->ops.next, *next; n != &t->ops; n = next) {
        next = n->next;
        free(dl_entry(n, struct core_tx_op, link));
    }
    free(t);
}

static struct core_tx *tx_find(struct core_engine *e, struct core_conn *c, uint64_t id)
{
    struct core_tx *t = hmap_get(&c->txs, &id, sizeof(id));
    if (!t)
        snprintf(e->err, sizeof(e->err), "no transaction %llu on this connection",
                 (unsigned long long)id);
    return t;
}

static struct msgproto_bytes blob_copy(uint8_t **at, struct msgproto_bytes b)
{
    struct msgproto_bytes r = {*at, b.len};
    if (b.len)
        memcpy(*at, b.p, b.len);
    (*at)[b.len] = 0;
    *at += b.len + 1;
    return r;
}

static bool dup_in_tx(const struct core_tx *t, const struct msgproto_send *s)
{
    for (const struct dlist *n = t->ops.next; n != &t->ops; n = n->next) {
        const struct core_tx_op *op = dl_entry(n, struct core_tx_op, link);
        if (op->type == MSGPROTO_SEND && op->send.dup_id.len == s->dup_id.len &&
            memcmp(op->send.dup_id.p, s->dup_id.p, s->dup_id.len) == 0 &&
            op->send.address.len == s->address.len &&
            memcmp(op->send.address.p, s->address.p, s->address.len) == 0)
            return true;
    }
    return false;
}

int tx_add_send(struct core_engine *e, struct core_conn *c, const struct msgproto_send *s,
                bool durable)
{
    struct core_tx *t = tx_find(e, c, s->tx);
    struct hmsg check;
    if (!t)
        return -ENOENT;
    if (hmsg_decode(s->message.p, s->message.len, &check) < 0) {
        snprintf(e->err, sizeof(e->err), "malformed encoded message");
        return -EBADMSG;
    }
    if (s->dup_id.len) {
        char *name = bytes_dup(s->address), *addr = NULL, *q = NULL;
        if (name)
            split_fqqn(name, &addr, &q);
        struct core_address *a = addr ? address_get(e, addr, false) : NULL;
        if ((a && dup_seen(a, s->dup_id)) || dup_in_tx(t, s)) {
            t->rollback_only = true;
            snprintf(t->why, sizeof(t->why), "duplicate id in transaction %llu: it will not commit",
                     (unsigned long long)t->id);
        }
        free(name);
        free(addr);
        free(q);
    }
    size_t need = (size_t)s->address.len + s->queue.len + s->dup_id.len + s->message.len + 4;
    struct core_tx_op *op = calloc(1, sizeof(*op) + need);
    if (!op)
        return -ENOMEM;
    op->type = MSGPROTO_SEND;
    op->durable = durable;
    op->send = *s;
    uint8_t *at = op->blob;
    op->send.address = blob_copy(&at, s->address);
    op->send.queue = blob_copy(&at, s->queue);
    op->send.dup_id = blob_copy(&at, s->dup_id);
    op->send.message = blob_copy(&at, s->message);
    op->send.tx = 0;
    dl_push_tail(&t->ops, &op->link);
    return 0;
}

int tx_add_settle(struct core_engine *e, struct core_conn *c, uint16_t type, uint8_t flags,
                  const struct msgproto_settle *s)
{
    struct core_tx *t = tx_find(e, c, s->tx);
    if (!t)
        return -ENOENT;
    struct core_tx_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->type = type;
    op->flags = flags;
    op->settle = *s;
    dl_push_tail(&t->ops, &op->link);
    return 0;
}

/* Applies every op; returns the first error (later ops still apply). */
static int tx_apply(struct core_engine *e, struct core_conn *c, struct core_tx *t)
{
    int first = 0;
    char why[256] = "";
    for (struct dlist *n = t->ops.next; n != &t->ops; n = n->next) {
        struct core_tx_op *op = dl_entry(n, struct core_tx_op, link);
        int rc = 0;
        if (op->type == MSGPROTO_SEND) {
            rc = route_send(e, &op->send, op->durable);
        } else {
            struct core_consumer *cs =
                hmap_get(&c->consumers, &op->settle.consumer, sizeof(op->settle.consumer));
            /* A consumer gone since: its deliveries were redelivered already. */
            if (cs)
                rc = settle_apply(e, cs, op->type, op->flags, op->settle.delivery);
        }
        if (rc < 0 && !first) {
            first = rc;
            snprintf(why, sizeof(why), "%s", e->err);
        }
    }
    if (first)
        snprintf(e->err, sizeof(e->err), "commit: %.200s", why);
    return first;
}

static int tx_begin(struct core_engine *e, struct core_conn *c, uint64_t id)
{
    if (id == 0 || hmap_get(&c->txs, &id, sizeof(id))) {
        snprintf(e->err, sizeof(e->err), "transaction %llu %s", (unsigned long long)id,
                 id ? "already begun" : "id 0 is reserved");
        return -EEXIST;
    }
    struct core_tx *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->id = id;
    dl_init(&t->ops);
    if (hmap_put(&c->txs, &id, sizeof(id), t) < 0) {
        free(t);
        return -ENOMEM;
    }
    return 0;
}

static int tx_end(struct core_engine *e, struct core_conn *c, uint64_t id, bool commit)
{
    struct core_tx *t = tx_find(e, c, id);
    if (!t)
        return -ENOENT;
    hmap_del(&c->txs, &id, sizeof(id));
    int rc = 0;
    if (commit && t->rollback_only) {
        snprintf(e->err, sizeof(e->err), "%s", t->why);
        rc = -EEXIST;
    } else if (commit) {
        rc = tx_apply(e, c, t);
    }
    tx_free(t);
    return rc;
}

int core_tx(struct core_engine *e, uint32_t worker, uint16_t type, const struct msgproto_tx *t)
{
    op_begin(e);
    struct core_conn *c = conn_find(e, worker, t->conn);
    int rc;
    if (!c) {
        snprintf(e->err, sizeof(e->err), "transaction on an unknown connection");
        rc = -ENOTCONN;
    } else if (type == MSGPROTO_TX_BEGIN) {
        rc = tx_begin(e, c, t->tx);
    } else if (type == MSGPROTO_TX_COMMIT || type == MSGPROTO_TX_ROLLBACK) {
        rc = tx_end(e, c, t->tx, type == MSGPROTO_TX_COMMIT);
    } else {
        snprintf(e->err, sizeof(e->err), "not a transaction record: %u", type);
        rc = -EINVAL;
    }
    rc = answer(e, worker, t->conn, t->corr, rc, rc ? "%s" : NULL, e->err);
    op_end(e);
    return rc;
}
