/*
 * worker_amqp_txn — the transaction coordinator of an AMQP connection (AMQP
 * 1.0 part 4). A sending link whose target is a coordinator carries declare
 * and discharge messages; each maps onto the core's TX_BEGIN and TX_COMMIT or
 * TX_ROLLBACK, answered with `declared` (the txn-id is the core tx id's 8
 * bytes) or `accepted`/`rejected` once the core's DONE arrives. Transfers and
 * dispositions in transactional-state name the core tx through their txn-id
 * (worker_amqp.c looks them up with wka_tx_state).
 */
#include "config.h"

#include <errno.h>
#include <proton/codec.h>
#include <proton/disposition.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"
#include "worker_amqp.h"
#include "worker_amqp_conn.h"

#define TXN_DECLARED 0x33u /* amqp:declared:list */

void wka_tx_free(struct wka_tx *t)
{
    if (t)
        free(t->settled);
    free(t);
}

/* The declared transaction a txn-id names (8 bytes: the core's tx id), or NULL. */
static struct wka_tx *tx_by_id(struct wka_conn *ac, const void *id, size_t len)
{
    uint64_t v;

    if (len != sizeof(v))
        return NULL;
    memcpy(&v, id, sizeof(v));
    return u64map_get(&ac->txs, v);
}

/*
 * A transactional-state disposition (data: list [txn-id, outcome]): its
 * transaction, and the outcome's code and fields (outcome 0 when absent).
 */
struct wka_tx *wka_tx_state(struct wka_conn *ac, pn_disposition_t *ds, uint64_t *outcome,
                               bool *failed, bool *undeliverable)
{
    pn_data_t *d = pn_disposition_data(ds);
    struct wka_tx *t = NULL;

    *outcome = 0;
    *failed = *undeliverable = false;
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_LIST)
        return NULL;
    pn_data_enter(d);
    if (pn_data_next(d) && pn_data_type(d) == PN_BINARY) {
        pn_bytes_t id = pn_data_get_binary(d);
        t = tx_by_id(ac, id.start, id.size);
    }
    if (t && pn_data_next(d) && pn_data_type(d) == PN_DESCRIBED) {
        pn_data_enter(d);
        if (pn_data_next(d) && pn_data_type(d) == PN_ULONG)
            *outcome = pn_data_get_ulong(d);
        if (pn_data_next(d) && pn_data_type(d) == PN_LIST) {
            pn_data_enter(d);
            *failed = pn_data_next(d) && pn_data_type(d) == PN_BOOL && pn_data_get_bool(d);
            *undeliverable = pn_data_next(d) && pn_data_type(d) == PN_BOOL &&
                             pn_data_get_bool(d);
        }
    }
    return t;
}

/* Our disposition data: list [txn-id] (declared) or [txn-id, accepted] (a transfer's state). */
void wka_put_txn_state(pn_delivery_t *dl, uint64_t type, uint64_t id)
{
    pn_data_t *d = pn_disposition_data(pn_delivery_local(dl));

    pn_data_clear(d);
    pn_data_put_list(d);
    pn_data_enter(d);
    pn_data_put_binary(d, pn_bytes(sizeof(id), (const char *)&id));
    if (type == WKA_TXN_STATE) {
        pn_data_put_described(d);
        pn_data_enter(d);
        pn_data_put_ulong(d, PN_ACCEPTED);
        pn_data_put_list(d);
        pn_data_exit(d);
    }
    pn_data_exit(d);
    pn_delivery_update(dl, type);
    pn_delivery_settle(dl);
}

int wka_tx_note_settle(struct wka_tx *t, uint64_t consumer, uint64_t delivery)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        struct wka_tx_settle *ns = realloc(t->settled, nc * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        t->settled = ns;
        t->cap = nc;
    }
    t->settled[t->n++] = (struct wka_tx_settle){consumer, delivery};
    return 0;
}

/* A transaction that did not commit: its settled deliveries go back, count raised. */
static void tx_return_settled(struct wka_conn *ac, const struct wka_tx *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct msgproto_rec rec = {.type = MSGPROTO_MODIFIED};
        rec.u.settle.conn = ac->id;
        rec.u.settle.consumer = t->settled[i].consumer;
        rec.u.settle.delivery = t->settled[i].delivery;
        wka_send_rec(ac, &rec);
    }
}

/*
 * Sends the core the record that begins (TX_BEGIN) or ends t, awaiting its
 * DONE as a pend of kind on dl; the pend, or NULL when it could not be sent.
 */
static struct wka_pend *tx_send(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl,
                                uint16_t type, enum pend_kind kind, struct wka_tx *t)
{
    struct msgproto_rec rec = {.type = type};

    rec.u.tx.conn = ac->id;
    rec.u.tx.tx = t->id;
    rec.u.tx.corr = wka_new_corr(ac, kind, dl, lk);
    struct wka_pend *p = rec.u.tx.corr ? u64map_get(&ac->corr, rec.u.tx.corr) : NULL;
    if (!p || wka_send_rec(ac, &rec) < 0) {
        if (p)
            free(u64map_del(&ac->corr, rec.u.tx.corr));
        return NULL;
    }
    p->tx = t;
    lk->pending++;
    return p;
}

static void tx_declare(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl)
{
    struct wka_tx *t = calloc(1, sizeof(*t));

    if (!t) {
        wka_reject(dl, "amqp:internal-error", "out of memory");
        return;
    }
    t->id = ++ac->next_tx;
    if (!tx_send(ac, lk, dl, MSGPROTO_TX_BEGIN, PEND_DECLARE, t)) {
        wka_tx_free(t);
        wka_reject(dl, "amqp:internal-error", "the broker cannot begin a transaction");
    }
}

static void tx_discharge(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl,
                         const struct wka_txn_ctl *ctl)
{
    struct wka_tx *t = tx_by_id(ac, ctl->id, ctl->id_len);

    if (!t) {
        wka_reject(dl, "amqp:transaction:unknown-id", "no such transaction on this connection");
        return;
    }
    u64map_del(&ac->txs, t->id); /* ended: later work naming it is refused */
    struct wka_pend *p = tx_send(ac, lk, dl, ctl->fail ? MSGPROTO_TX_ROLLBACK : MSGPROTO_TX_COMMIT,
                                 PEND_DISCHARGE, t);
    if (!p) {
        tx_return_settled(ac, t);
        wka_tx_free(t);
        wka_reject(dl, "amqp:transaction:rollback", "the broker cannot end the transaction");
        return;
    }
    p->fail = ctl->fail;
}

/* A complete message on a coordinator link: declare or discharge. */
void wka_coordinate(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl)
{
    struct wka_txn_ctl ctl;
    char err[160];

    if (wka_msg_txn_control(lk->in, lk->in_len, &ctl, err, sizeof(err)) < 0) {
        wka_reject(dl, "amqp:decode-error", err);
        return;
    }
    if (ctl.declare)
        tx_declare(ac, lk, dl);
    else
        tx_discharge(ac, lk, dl, &ctl);
}

/* The core answered a declare or a discharge. */
void wka_tx_done(struct wka_conn *ac, struct wka_pend *p, const struct msgproto_done *d,
                    const char *text)
{
    struct wka_tx *t = p->tx;

    if (p->kind == PEND_DECLARE) {
        if (d->status == 0 && u64map_put(&ac->txs, t->id, t) == 0) {
            wka_put_txn_state(p->dl, TXN_DECLARED, t->id);
            return;
        }
        wka_reject(p->dl, d->status < 0 ? wka_cond_for_errno(d->status) : "amqp:internal-error",
               d->status < 0 ? text : "out of memory");
        wka_tx_free(t);
        return;
    }
    if (p->fail || d->status < 0)
        tx_return_settled(ac, t);
    if (d->status == 0) {
        pn_delivery_update(p->dl, PN_ACCEPTED);
        pn_delivery_settle(p->dl);
    } else {
        wka_reject(p->dl, "amqp:transaction:rollback", text);
    }
    wka_tx_free(t);
}
