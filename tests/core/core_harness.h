/*
 * core_harness — a recording test double for the engine's callback tables
 * (io: deliveries, answers, consumer closes; persist: an in-memory journal
 * that hands out rising LSNs) and short helpers to drive the engine.
 * Shared by the engine unit tests (test_core_engine, _model, _flow, _drain,
 * _records_fuzz).
 */
#ifndef HAMQ_TEST_CORE_HARNESS_H
#define HAMQ_TEST_CORE_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

#define H_MAX_EVENTS 8192

struct h_delivery {
    uint32_t worker;
    uint64_t conn, consumer, delivery_id, message_id;
    uint32_t delivery_count;
    bool redelivered;
    char body[64];
};

struct h_done {
    uint32_t worker;
    uint64_t conn, corr;
    int status;
    char text[256];
    size_t ndl; /* deliveries recorded before this answer (their order on the ring) */
    size_t ring_used; /* worker 0's ring when answered (see ring_slots) */
};

struct h_closed {
    uint64_t conn, consumer;
    int status;
};

struct h_journal_rec {
    char op;           /* 'Q' queue add, 'q' remove, 'M' message, 'R' ref, 'A' ack, 'C' count, 'D' dup */
    uint64_t a, b;
    uint32_t count;
    uint8_t *data;     /* 'M': a copy of the encoded message */
    size_t len;
    char name[64], address[64]; /* 'Q' */
    uint8_t routing;
};

struct harness {
    struct core_engine *e;
    struct core_io_ops io;
    struct core_persist_ops ps;
    struct h_delivery *dl;
    size_t ndl;
    struct h_done done[1024];
    size_t ndone;
    struct h_closed closed[256];
    size_t nclosed;
    struct h_journal_rec *jr;
    size_t njr;
    int64_t lsn;
    int64_t now;
    int refuse_deliveries; /* > 0: deliver returns -EAGAIN */
    bool store_fails;
    int flow_events;   /* flow() calls */
    bool flow_blocked; /* last flow() state */
    uint8_t last_data[2048]; /* the last delivered encoded message */
    size_t last_len;
    /* A bounded ring to worker 0: with ring_slots > 0, a delivery to worker 0
     * is refused while ring_used == ring_slots, until h_ring_read() empties
     * the ring (answers are never refused: the core queues them). */
    size_t ring_slots, ring_used;
};

struct harness *h_new(const struct core_config *cfg); /* NULL cfg: defaults */
struct harness *h_new_volatile(const struct core_config *cfg); /* no persist ops */
void h_free(struct harness *h);
void h_conn(struct harness *h, uint64_t conn, const char *client_id);

/* Encoded message with body text, priority, optional string property. */
size_t h_msg(uint8_t *buf, size_t cap, const char *body, uint8_t priority, const char *pname,
             const char *pval, int64_t expiration);

struct h_send_opts {
    uint8_t routing;
    bool durable;
    uint64_t corr, tx;
    const char *dup_id;
    const char *pname, *pval;
    uint8_t priority;
    int64_t expiration;
};
int h_send(struct harness *h, uint64_t conn, const char *address, const char *body,
           const struct h_send_opts *o);

struct h_sub_opts {
    uint8_t routing, options;
    uint32_t credit; /* 0 = unbounded */
    const char *filter, *sub_name, *queue;
    uint64_t corr;
};
int h_sub(struct harness *h, uint64_t conn, uint64_t consumer, const char *address,
          const struct h_sub_opts *o);
int h_settle(struct harness *h, uint16_t type, uint64_t conn, uint64_t consumer,
             uint64_t delivery, uint8_t flags, uint64_t tx, uint64_t corr);

/* Deliveries to one consumer, and the last one. */
size_t h_count_for(const struct harness *h, uint64_t conn, uint64_t consumer);
const struct h_delivery *h_last_for(const struct harness *h, uint64_t conn, uint64_t consumer);
size_t h_journal_count(const struct harness *h, char op);
const struct core_queue_stat *h_stat(struct harness *h, const char *queue);
const struct h_done *h_done_for(const struct harness *h, uint64_t corr);
size_t h_done_count(const struct harness *h, uint64_t corr);
/* Worker 0 read its ring: the ring is empty and the engine is told (resume). */
void h_ring_read(struct harness *h);

#endif
