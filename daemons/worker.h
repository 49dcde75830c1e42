/*
 * worker — the state of one hamq-worker process, shared by its parts:
 *   worker_main.c   options, config, startup, the loop
 *   worker_link.c   the rings to the core: send records (with an overflow
 *                   queue for control records), read and route core records,
 *                   core liveness
 *   worker_flow.c   per-address flow control: addresses the core reported
 *                   full, connections waiting for them
 *   worker_stomp.c  STOMP connections: stomp_session ⇄ msgproto records
 *   worker_amqp*.c  AMQP 1.0 connections: Proton connection driver ⇄ records
 *   worker_net.c    listeners and client sockets (protocol-agnostic)
 * A worker never opens the store; everything durable goes through the core.
 */
#ifndef HAMQ_WORKER_H
#define HAMQ_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "hamq/config.h"
#include "hamq/evloop.h"
#include "hamq/msgproto.h"
#include "hamq/ring.h"
#include "hamq/shm.h"
#include "hamq/u64map.h"
#include "worker_net.h"

/* A connection as the link layer sees it: the protocol's handlers for core records. */
struct wk_conn_ops {
    void (*on_done)(void *conn, const struct msgproto_done *d);
    void (*on_deliver)(void *conn, const struct msgproto_deliver *d, uint8_t flags);
    void (*on_consumer_closed)(void *conn, const struct msgproto_consumer_closed *c);
    /* Ring space is back: resume input paused by back-pressure. */
    void (*on_writable)(void *conn);
    /* A queue statistics reply (the request id is the connection id); may be NULL. */
    void (*on_stat)(void *conn, const struct msgproto_stat_reply *st, uint8_t flags);
};

struct wk_conn_ref {
    const struct wk_conn_ops *ops;
    void *conn;
    bool waiting_space; /* paused for ring space */
    bool waiting_addr;  /* paused for a full address (worker_flow.c) */
};

struct wk_overflow; /* queued records that did not fit the ring */

struct worker {
    struct hamq_config cfg;
    uint32_t index;
    struct evloop *loop;
    struct wnet *net;

    struct shm_seg seg;
    struct ring tx, rx; /* tx: worker→core, rx: core→worker */
    uint32_t gen;
    int bell_fd;        /* our doorbell (core writes when we armed rx) */
    int core_bell_fd;   /* the core's doorbell (we write when it armed tx) */
    struct shm_peer core;
    struct ev_watch *bell_watch;

    struct u64map conns; /* conn id → struct wk_conn_ref */
    struct wk_overflow *ovf_head, *ovf_tail;
    size_t ovf_bytes;
    size_t waiting_space;    /* connections paused for ring space */
    struct ev_watch *space_timer;
    struct msgproto_reasm reasm; /* fragments from the core (large deliveries) */
    uint8_t *encbuf;         /* scratch for records too large for one ring record */
    size_t encbuf_cap;
    uint64_t next_conn;      /* conn ids: worker index in the top 16 bits */
    bool flow_blocked;       /* the core said: stop reading producers (max_memory) */
    struct u64map blocked_addrs; /* full addresses (worker_flow.c) */
    size_t nblocked_addrs;
    size_t waiting_addr;     /* connections paused for a full address */
    bool stopping;
    int exit_code;
};

/* worker_link.c */
int wk_link_open(struct worker *w, char *err, size_t errlen);
void wk_link_close(struct worker *w);
/* Tells the core this worker serves (after its listeners are open). */
int wk_link_hello(struct worker *w);
/*
 * Sends one record to the core. Client-originated records (SEND) pass
 * may_queue = false: on a full ring they return -EAGAIN and the caller pauses
 * its client (back-pressure). Control records (CONN_CLOSE, ACK, CREDIT...)
 * pass may_queue = true and are queued in order if the ring is full.
 */
int wk_send(struct worker *w, const struct msgproto_rec *rec, bool may_queue);
/* True if a client SEND must wait: records queued for a full ring, or the core
 * blocked producers (max_memory). Only SENDs wait for the latter: a consumer's
 * SUBSCRIBE and ACKs must still pass, or nothing would ever free memory. */
bool wk_congested(const struct worker *w);
/* True if records wait for ring space (every client should pause). */
bool wk_backlogged(const struct worker *w);
uint64_t wk_conn_register(struct worker *w, const struct wk_conn_ops *ops, void *conn);
void wk_conn_unregister(struct worker *w, uint64_t id);
/* The connection waits for ring space: on_writable will be called. */
void wk_conn_wait_space(struct worker *w, uint64_t id);

/*
 * worker_flow.c — per-address flow control ([broker] address_max_memory,
 * [address NAME] max_memory). A producer must not hand the core a SEND to a
 * blocked address: check wk_address_blocked() first (address may be an FQQN
 * "address::queue"; len is its length without a NUL); if it is blocked, hold
 * the SEND (stop reading the client / grant no credit) and call
 * wk_conn_wait_address(): the connection's on_writable() is called when the
 * core releases an address, and it checks again. SUBSCRIBE, ACK and every
 * other record still pass, or nothing would ever drain the address.
 */
bool wk_address_blocked(const struct worker *w, const char *address, size_t len);
void wk_conn_wait_address(struct worker *w, uint64_t id);
/* A MSGPROTO_FLOW_ADDR record from the core. */
void wk_flow_address(struct worker *w, const struct msgproto_flow_addr *f);
void wk_flow_init(struct worker *w);
void wk_flow_free(struct worker *w);

/* worker_amqp.c: loads [security] users_file; -errno with err filled. */
int wk_amqp_init(struct worker *w, struct wnet_proto *p, char *err, size_t errlen);
void wk_amqp_fini(void);
/* The body of an AMQP-encoded message (HMSG_BODY_AMQP) as a STOMP frame body. */
void wk_amqp_stomp_payload(const struct hmsg *m, char *fmt, size_t fmtcap, const uint8_t **p,
                           size_t *len);

/* worker_stomp.c */
void wk_stomp_init(struct worker *w, struct wnet_proto *p);

#endif
