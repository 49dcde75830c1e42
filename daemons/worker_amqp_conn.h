/*
 * worker_amqp_conn — what the parts of an AMQP connection share inside the
 * worker: the connection, its links, the records awaiting the core's DONE,
 * and its transactions. Private to worker_amqp.c (the connection and its
 * links) and worker_amqp_txn.c (the transaction coordinator); other code
 * uses worker_amqp.h.
 */
#ifndef HAMQ_WORKER_AMQP_CONN_H
#define HAMQ_WORKER_AMQP_CONN_H

#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <proton/message.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/msgproto.h"
#include "hamq/u64map.h"
#include "worker_amqp.h"

struct worker;
struct wconn;
struct ev_watch;

enum link_kind { LK_PRODUCER, LK_CONSUMER, LK_STAT, LK_COORD /* transaction coordinator */ };

/*
 * A link of a connection, ours to free (link_free in worker_amqp.c) once it
 * is closed and no DONE naming it is outstanding (pending == 0): a DONE finds
 * its link through struct wka_pend.lk, so the link outlives its Proton link's
 * close until the core answered everything sent for it.
 */
struct wka_link {
    struct wka_link *next;
    struct wka_conn *ac;
    pn_link_t *l;
    char *address;     /* NULL = anonymous relay (producer) */
    size_t pending;    /* SEND/SUBSCRIBE DONEs outstanding that name this link */
    /* producer: the transfer being assembled */
    uint8_t *in;
    size_t in_len, in_cap;
    /* consumer */
    uint64_t consumer;
    int64_t core_credit; /* credit the core holds for us */
    /* stat */
    char *filter;
    enum link_kind kind;
    uint8_t routing;
    bool closed;       /* we closed it (or the peer did) */
    bool in_discard;   /* too large: drop the rest of this transfer */
    bool presettled, durable_sub, browse;
    bool drain_pending; /* a DRAIN is with the core */
    bool stat_started;
};

enum pend_kind { PEND_SEND, PEND_SUB, PEND_DECLARE, PEND_DISCHARGE, PEND_DRAIN };

/*
 * A transaction of the connection (AMQP 1.0 part 4), mapped 1:1 onto a core
 * transaction (TX_BEGIN/COMMIT/ROLLBACK, as STOMP's BEGIN/COMMIT/ABORT). Its
 * txn-id on the wire is the core id's 8 bytes. settled: the deliveries the
 * client gave a transactional outcome for; we settle those at once, so on a
 * rollback (or a failed commit) they are released back to their queue with
 * the delivery count raised (what Artemis does) instead of staying
 * outstanding with a link that can no longer settle them.
 */
struct wka_tx_settle {
    uint64_t consumer, delivery;
};

struct wka_tx {
    uint64_t id;
    struct wka_tx_settle *settled;
    size_t n, cap;
};

/* A record sent to the core whose DONE we wait for, in wka_conn.corr by its corr. */
struct wka_pend {
    enum pend_kind kind;
    pn_delivery_t *dl;
    struct wka_link *lk;
    struct wka_tx *tx;  /* DECLARE: the new one; DISCHARGE: the one ending */
    uint64_t send_tx;   /* SEND: the core tx of a transactional transfer, else 0 */
    bool fail;          /* DISCHARGE: a rollback */
};

/*
 * One AMQP connection: its Proton driver, and what the core knows of it (the
 * connection id, the consumers by id, the records awaiting a DONE). Owned by
 * worker_net's connection (wnet state); freed by am_close in worker_amqp.c,
 * which also frees every wka_pend, wka_link and wka_tx still held.
 */
struct wka_conn {
    struct worker *w;
    struct wconn *c;
    pn_connection_driver_t d;
    uint64_t id;
    bool opened;       /* CONN_OPEN sent */
    bool need_credit;  /* producer credit withheld for ring space */
    bool in_paused;
    bool remote_closed; /* the client sent close */
    bool defer_out;     /* skip the flush right after input (see am_output) */
    struct u64map corr;      /* corr → struct wka_pend */
    struct u64map consumers; /* consumer id → struct wka_link */
    struct u64map txs;       /* declared txn id → struct wka_tx */
    uint64_t next_corr, next_consumer, next_tx;
    struct wka_link *links;
    struct ev_watch *tick_timer;
    struct wka_link *stat_active;
    struct wka_guard guard; /* the framing rules Proton does not check */
    pn_message_t *msg; /* scratch */
    char *obuf;
    size_t ocap;
};

/* ---- worker_amqp.c: helpers the transaction coordinator uses ---- */

/* The AMQP error condition name for a core's negative errno. */
const char *wka_cond_for_errno(int err);
/* Registers a record awaiting its DONE; returns its corr, 0 when out of memory. */
uint64_t wka_new_corr(struct wka_conn *ac, enum pend_kind kind, pn_delivery_t *dl,
                      struct wka_link *lk);
/* Passes a record to the core (logs why when it cannot); 0 or -errno. */
int wka_send_rec(struct wka_conn *ac, const struct msgproto_rec *rec);
/* Settles dl as rejected with the error condition name: text. */
void wka_reject(pn_delivery_t *dl, const char *name, const char *text);

/* ---- worker_amqp_txn.c: the transaction coordinator (AMQP 1.0 part 4) ---- */

#define WKA_TXN_STATE 0x34u /* amqp:transactional-state:list */

void wka_tx_free(struct wka_tx *t);
/*
 * A transactional-state disposition (data: list [txn-id, outcome]): its
 * declared transaction (NULL if it names none of this connection's), and the
 * outcome's code and fields (outcome 0 when absent).
 */
struct wka_tx *wka_tx_state(struct wka_conn *ac, pn_disposition_t *ds, uint64_t *outcome,
                            bool *failed, bool *undeliverable);
/* Settles dl with our state: declared (type 0x33) or transactional-state accepted. */
void wka_put_txn_state(pn_delivery_t *dl, uint64_t type, uint64_t id);
/* Remembers a delivery settled in t, to be returned if t does not commit; 0 or -ENOMEM. */
int wka_tx_note_settle(struct wka_tx *t, uint64_t consumer, uint64_t delivery);
/* A complete message on a coordinator link (in lk->in): declare or discharge. */
void wka_coordinate(struct wka_conn *ac, struct wka_link *lk, pn_delivery_t *dl);
/* The core's DONE for a declare or a discharge (p->kind PEND_DECLARE/PEND_DISCHARGE). */
void wka_tx_done(struct wka_conn *ac, struct wka_pend *p, const struct msgproto_done *d,
                 const char *text);

#endif
