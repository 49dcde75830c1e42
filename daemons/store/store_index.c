/*
 * store_index — see store_index.h.
 *
 * The message table is open addressing with linear probing and backward-shift
 * deletion (no tombstones, so a long-running broker does not degrade), kept at
 * most 70% full. Segment accounting is a dense array indexed by seq - seg_base.
 */
#include "store_index.h"

#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define IDX_MIN_SLOTS 1024u

static size_t idx_hash(uint64_t id, size_t nslots)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (nslots - 1);
}

void idx_init(struct idx *x)
{
    memset(x, 0, sizeof *x);
}

static void msg_free_refs(struct idx_msg *m)
{
    if (m->cap > 1)
        free(m->refs.many);
}

static void tx_free(struct idx_tx *t)
{
    free(t->ops);
    free(t);
}

void idx_free(struct idx *x)
{
    for (size_t i = 0; i < x->nslots; i++)
        if (x->slots[i].msg_id)
            msg_free_refs(&x->slots[i]);
    free(x->slots);
    while (x->txs) {
        struct idx_tx *t = x->txs;
        x->txs = t->next;
        tx_free(t);
    }
    free(x->segs);
    idx_dup_free(x);
    memset(x, 0, sizeof *x);
}

/* --- segment accounting --- */

static struct idx_seg *seg_slot(struct idx *x, uint64_t seq)
{
    if (x->nsegs == 0) {
        x->seg_base = seq;
    } else if (seq < x->seg_base) {
        size_t shift = (size_t)(x->seg_base - seq);
        struct idx_seg *n = calloc(x->nsegs + shift, sizeof *n);
        if (!n)
            return NULL;
        memcpy(n + shift, x->segs, x->nsegs * sizeof *n);
        free(x->segs);
        x->segs = n;
        x->nsegs += shift;
        x->seg_base = seq;
    }
    size_t i = (size_t)(seq - x->seg_base);
    if (i >= x->nsegs) {
        size_t n = i + 16;
        struct idx_seg *g = realloc(x->segs, n * sizeof *g);
        if (!g)
            return NULL;
        memset(g + x->nsegs, 0, (n - x->nsegs) * sizeof *g);
        x->segs = g;
        x->nsegs = n;
    }
    return &x->segs[i];
}

static void seg_account(struct idx *x, uint64_t seq, uint32_t len, int sign)
{
    if (seq == 0)
        return; /* a large message: its body is in no segment */
    struct idx_seg *g = seg_slot(x, seq);
    if (!g)
        return; /* only statistics; compaction then skips the segment */
    if (sign > 0) {
        g->live_msgs++;
        g->live_bytes += len;
    } else if (g->live_msgs) {
        g->live_msgs--;
        g->live_bytes -= g->live_bytes >= len ? len : g->live_bytes;
    }
}

struct idx_seg idx_seg_stats(const struct idx *x, uint64_t seq)
{
    struct idx_seg z = {0, 0};
    if (x->nsegs == 0 || seq < x->seg_base || seq - x->seg_base >= x->nsegs)
        return z;
    return x->segs[seq - x->seg_base];
}

/* --- message table --- */

static int idx_grow(struct idx *x)
{
    size_t n = x->nslots ? x->nslots * 2 : IDX_MIN_SLOTS;
    struct idx_msg *s = calloc(n, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < x->nslots; i++) {
        if (!x->slots[i].msg_id)
            continue;
        size_t j = idx_hash(x->slots[i].msg_id, n);
        while (s[j].msg_id)
            j = (j + 1) & (n - 1);
        s[j] = x->slots[i];
    }
    free(x->slots);
    x->slots = s;
    x->nslots = n;
    return 0;
}

struct idx_msg *idx_find(const struct idx *x, uint64_t msg_id)
{
    if (!x->nslots || !msg_id)
        return NULL;
    size_t j = idx_hash(msg_id, x->nslots);
    while (x->slots[j].msg_id) {
        if (x->slots[j].msg_id == msg_id)
            return &x->slots[j];
        j = (j + 1) & (x->nslots - 1);
    }
    return NULL;
}

int idx_put_msg(struct idx *x, uint64_t msg_id, uint64_t seq, uint32_t off, uint32_t len)
{
    if (!msg_id)
        return -EINVAL;
    struct idx_msg *m = idx_find(x, msg_id);
    if (m) { /* a second add moves the body; references stay */
        seg_account(x, m->seq, m->len, -1);
    } else {
        if ((x->nmsgs + 1) * 10 > x->nslots * 7) {
            int r = idx_grow(x);
            if (r < 0)
                return r;
        }
        size_t j = idx_hash(msg_id, x->nslots);
        while (x->slots[j].msg_id)
            j = (j + 1) & (x->nslots - 1);
        m = &x->slots[j];
        memset(m, 0, sizeof *m);
        m->msg_id = msg_id;
        m->cap = 1;
        x->nmsgs++;
    }
    m->seq = seq;
    m->off = off;
    m->len = len;
    seg_account(x, seq, len, +1);
    return 0;
}

static void idx_delete(struct idx *x, struct idx_msg *m)
{
    size_t mask = x->nslots - 1;
    size_t i = (size_t)(m - x->slots);
    seg_account(x, m->seq, m->len, -1);
    if (idx_msg_large(m) && x->on_large_gone)
        x->on_large_gone(x->hook_ctx, m->msg_id);
    msg_free_refs(m);
    x->nmsgs--;
    /* Backward shift: pull later members of the probe run into the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!x->slots[j].msg_id)
            break;
        size_t home = idx_hash(x->slots[j].msg_id, x->nslots);
        bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            x->slots[i] = x->slots[j];
            i = j;
        }
    }
    memset(&x->slots[i], 0, sizeof x->slots[i]);
}

static struct idx_ref *ref_find(struct idx_msg *m, uint64_t queue_id)
{
    struct idx_ref *r = idx_refs(m);
    for (uint32_t i = 0; i < m->nrefs; i++)
        if (r[i].queue_id == queue_id)
            return &r[i];
    return NULL;
}

int idx_put_ref(struct idx *x, struct idx_msg *m, uint64_t queue_id, uint32_t count)
{
    (void)x;
    struct idx_ref *r = ref_find(m, queue_id);
    if (r) {
        r->count = count;
        return 0;
    }
    if (m->nrefs == m->cap) {
        uint32_t ncap = m->cap * 4;
        struct idx_ref *n = malloc(ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        memcpy(n, idx_refs(m), m->nrefs * sizeof *n);
        msg_free_refs(m);
        m->refs.many = n;
        m->cap = ncap;
    }
    r = &idx_refs(m)[m->nrefs++];
    r->queue_id = queue_id;
    r->count = count;
    r->reserved = 0;
    return 0;
}

static void ref_delete(struct idx *x, struct idx_msg *m, uint64_t queue_id)
{
    struct idx_ref *r = ref_find(m, queue_id);
    if (!r) {
        x->orphans++;
        return;
    }
    struct idx_ref *all = idx_refs(m);
    *r = all[m->nrefs - 1];
    m->nrefs--;
    if (m->nrefs == 0)
        idx_delete(x, m);
}

/* --- transactions --- */

static struct idx_tx *tx_get(struct idx *x, uint64_t tx_id, bool create)
{
    for (struct idx_tx *t = x->txs; t; t = t->next)
        if (t->tx_id == tx_id)
            return t;
    if (!create)
        return NULL;
    struct idx_tx *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->tx_id = tx_id;
    t->next = x->txs;
    x->txs = t;
    return t;
}

static void tx_unlink(struct idx *x, struct idx_tx *t)
{
    for (struct idx_tx **p = &x->txs; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    tx_free(t);
}

int idx_put_txop(struct idx *x, uint64_t tx_id, bool prepared, const struct idx_txop *op)
{
    struct idx_tx *t = tx_get(x, tx_id, true);
    if (!t)
        return -ENOMEM;
    t->prepared = t->prepared || prepared;
    if (t->nops == t->cap) {
        size_t n = t->cap ? t->cap * 2 : 8;
        struct idx_txop *o = realloc(t->ops, n * sizeof *o);
        if (!o)
            return -ENOMEM;
        t->ops = o;
        t->cap = n;
    }
    t->ops[t->nops++] = *op;
    return 0;
}

/* --- applying records --- */

static int apply_op(struct idx *x, const struct idx_txop *op)
{
    struct idx_msg *m;
    switch (op->type) {
    case JNL_REC_MSG_ADD:
    case JNL_REC_LARGE_ADD:
        return idx_put_msg(x, op->msg_id, op->seq, op->off, op->len);
    case JNL_REC_MSG_MOVE:
        if (!idx_find(x, op->msg_id))
            return 0; /* acknowledged since it was copied */
        return idx_put_msg(x, op->msg_id, op->seq, op->off, op->len);
    case JNL_REC_REF_ADD: {
        m = idx_find(x, op->msg_id);
        if (!m) {
            x->orphans++;
            return 0;
        }
        if (ref_find(m, op->queue_id))
            return 0;
        int r = idx_put_ref(x, m, op->queue_id, 0);
        if (r == 0 && x->obs)
            x->obs->ref_add(x->obs_ctx, op->msg_id, op->queue_id, idx_body_len(m), x->obs_read,
                            x->obs_src);
        return r;
    }
    case JNL_REC_ACK:
        m = idx_find(x, op->msg_id);
        if (!m) {
            x->orphans++;
            return 0;
        }
        bool had = ref_find(m, op->queue_id) != NULL;
        ref_delete(x, m, op->queue_id); /* may delete m */
        if (had && x->obs)
            x->obs->ack(x->obs_ctx, op->msg_id, op->queue_id);
        return 0;
    case JNL_REC_DCOUNT: {
        m = idx_find(x, op->msg_id);
        if (!m || !ref_find(m, op->queue_id)) {
            x->orphans++;
            return 0;
        }
        int r = idx_put_ref(x, m, op->queue_id, op->count);
        if (r == 0 && x->obs)
            x->obs->dcount(x->obs_ctx, op->msg_id, op->queue_id, op->count);
        return r;
    }
    default:
        return 0;
    }
}

static int decode_op(const struct jnl_rec_header *h, const void *p, uint64_t seq, uint32_t off,
                     struct idx_txop *op)
{
    memset(op, 0, sizeof *op);
    op->type = h->type;
    switch (h->type) {
    case JNL_REC_MSG_ADD:
    case JNL_REC_MSG_MOVE: {
        struct jnl_msg_add a;
        if (h->length < sizeof a)
            return -EINVAL;
        memcpy(&a, p, sizeof a);
        op->msg_id = a.msg_id;
        op->seq = seq;
        op->off = off;
        op->len = h->length;
        return a.msg_id ? 0 : -EINVAL;
    }
    case JNL_REC_LARGE_ADD: {
        struct jnl_large_add l;
        if (h->length != sizeof l)
            return -EINVAL;
        memcpy(&l, p, sizeof l);
        op->msg_id = l.msg_id;
        op->seq = 0;
        op->off = l.body_crc;
        op->len = (uint32_t)l.body_len;
        return l.msg_id && l.body_len <= UINT32_MAX ? 0 : -EINVAL;
    }
    case JNL_REC_REF_ADD:
    case JNL_REC_ACK: {
        struct jnl_ref r;
        if (h->length != sizeof r)
            return -EINVAL;
        memcpy(&r, p, sizeof r);
        op->msg_id = r.msg_id;
        op->queue_id = r.queue_id;
        return 0;
    }
    case JNL_REC_DCOUNT: {
        struct jnl_dcount d;
        if (h->length != sizeof d)
            return -EINVAL;
        memcpy(&d, p, sizeof d);
        op->msg_id = d.msg_id;
        op->queue_id = d.queue_id;
        op->count = d.count;
        return 0;
    }
    default:
        return -EINVAL;
    }
}

static int apply_tx_end(struct idx *x, const struct jnl_rec_header *h, const void *p)
{
    struct jnl_tx tx;
    if (h->length != sizeof tx)
        return -EINVAL;
    memcpy(&tx, p, sizeof tx);
    struct idx_tx *t = tx_get(x, tx.tx_id, h->type == JNL_REC_TX_PREPARE);
    if (!t)
        return h->type == JNL_REC_TX_PREPARE ? -ENOMEM : 0;
    if (h->type == JNL_REC_TX_PREPARE) {
        t->prepared = true;
        return 0;
    }
    int r = 0;
    if (h->type == JNL_REC_TX_COMMIT)
        for (size_t i = 0; i < t->nops && r == 0; i++)
            r = apply_op(x, &t->ops[i]);
    else /* rolled back: a large body written for it is garbage now */
        for (size_t i = 0; i < t->nops; i++)
            if (t->ops[i].type == JNL_REC_LARGE_ADD && x->on_large_gone)
                x->on_large_gone(x->hook_ctx, t->ops[i].msg_id);
    tx_unlink(x, t);
    return r;
}

int idx_apply(struct idx *x, const struct jnl_rec_header *h, const void *payload, uint64_t seq,
              uint32_t off)
{
    struct idx_txop op;
    switch (h->type) {
    case JNL_REC_MSG_ADD:
    case JNL_REC_LARGE_ADD:
    case JNL_REC_MSG_MOVE:
    case JNL_REC_REF_ADD:
    case JNL_REC_ACK:
    case JNL_REC_DCOUNT: {
        int r = decode_op(h, payload, seq, off, &op);
        if (r < 0)
            return r;
        if (h->flags & JNL_F_TX)
            return idx_put_txop(x, h->tx_id, false, &op);
        return apply_op(x, &op);
    }
    case JNL_REC_TX_PREPARE:
    case JNL_REC_TX_COMMIT:
    case JNL_REC_TX_ROLLBACK:
        return apply_tx_end(x, h, payload);
    case JNL_REC_DUP_ID:
        if (h->flags & JNL_F_TX)
            return -EINVAL; /* never written inside a transaction */
        return idx_dup_apply(x, payload, h->length);
    default:
        return 0; /* epoch, checkpoint and binding records change no message */
    }
}

static void drop_unfinished_txs(struct idx *x, uint64_t *dropped_tx)
{
    for (struct idx_tx **p = &x->txs; *p;) {
        struct idx_tx *t = *p;
        if (t->prepared) {
            p = &t->next;
            continue;
        }
        *p = t->next;
        tx_free(t);
        (*dropped_tx)++;
    }
}

void idx_finish_recovery(struct idx *x, uint64_t *dropped_tx, uint64_t *dropped_msgs)
{
    *dropped_tx = 0;
    *dropped_msgs = 0;
    drop_unfinished_txs(x, dropped_tx);
    for (size_t i = 0; i < x->nslots;) {
        /* deleting shifts later slots back into i, so only advance when kept */
        if (x->slots[i].msg_id && x->slots[i].nrefs == 0 && !idx_msg_in_tx(x, x->slots[i].msg_id)) {
            idx_delete(x, &x->slots[i]);
            (*dropped_msgs)++;
        } else {
            i++;
        }
    }
}

void idx_finish_adoption(struct idx *x, const uint64_t *ids, size_t n, uint64_t *dropped_tx,
                         uint64_t *dropped_msgs)
{
    *dropped_tx = 0;
    *dropped_msgs = 0;
    drop_unfinished_txs(x, dropped_tx);
    for (size_t i = 0; i < n; i++) {
        struct idx_msg *m = idx_find(x, ids[i]);
        if (m && m->nrefs == 0 && !idx_msg_in_tx(x, ids[i])) {
            idx_delete(x, m);
            (*dropped_msgs)++;
        }
    }
}

struct idx_msg *idx_next(const struct idx *x, size_t *pos)
{
    while (*pos < x->nslots) {
        struct idx_msg *m = &x->slots[(*pos)++];
        if (m->msg_id)
            return m;
    }
    return NULL;
}

bool idx_msg_in_tx(const struct idx *x, uint64_t msg_id)
{
    for (const struct idx_tx *t = x->txs; t; t = t->next)
        for (size_t i = 0; i < t->nops; i++)
            if (t->ops[i].msg_id == msg_id)
                return true;
    return false;
}

static bool refs_equal(struct idx_msg *a, struct idx_msg *b)
{
    if (a->nrefs != b->nrefs)
        return false;
    for (uint32_t i = 0; i < a->nrefs; i++) {
        struct idx_ref *r = &idx_refs(a)[i];
        struct idx_ref *o = ref_find(b, r->queue_id);
        if (!o || o->count != r->count)
            return false;
    }
    return true;
}

static bool txs_equal(const struct idx *a, const struct idx *b)
{
    size_t na = 0, nb = 0;
    for (const struct idx_tx *t = a->txs; t; t = t->next)
        na++;
    for (const struct idx_tx *t = b->txs; t; t = t->next)
        nb++;
    if (na != nb)
        return false;
    for (const struct idx_tx *t = a->txs; t; t = t->next) {
        const struct idx_tx *o = tx_get((struct idx *)b, t->tx_id, false);
        if (!o || o->nops != t->nops || o->prepared != t->prepared)
            return false;
        for (size_t i = 0; i < t->nops; i++)
            if (o->ops[i].type != t->ops[i].type || o->ops[i].msg_id != t->ops[i].msg_id ||
                o->ops[i].queue_id != t->ops[i].queue_id || o->ops[i].count != t->ops[i].count)
                return false;
    }
    return true;
}

bool idx_equal(const struct idx *a, const struct idx *b, bool compare_locations)
{
    if (a->nmsgs != b->nmsgs)
        return false;
    size_t pos = 0;
    struct idx_msg *m;
    while ((m = idx_next(a, &pos))) {
        struct idx_msg *o = idx_find(b, m->msg_id);
        if (!o || o->len != m->len || !refs_equal(m, o))
            return false;
        if (compare_locations && (o->seq != m->seq || o->off != m->off))
            return false;
    }
    return txs_equal(a, b) && idx_dup_equal(a, b);
}

uint64_t idx_memory(const struct idx *x)
{
    uint64_t b = (uint64_t)x->nslots * sizeof(struct idx_msg) + x->nsegs * sizeof(struct idx_seg);
    for (size_t i = 0; i < x->nslots; i++)
        if (x->slots[i].msg_id && x->slots[i].cap > 1)
            b += x->slots[i].cap * sizeof(struct idx_ref);
    for (const struct idx_tx *t = x->txs; t; t = t->next)
        b += sizeof *t + t->cap * sizeof(struct idx_txop);
    return b + idx_dup_memory(x);
}
