/*
 * core — the broker engine of hamq-journal: addresses, queues, routing,
 * consumers, dispatch, acknowledgements, transactions, duplicate detection.
 *
 * Transport-free (STYLE.md #12): the glue in hamq-journal feeds it broker
 * operations (decoded ring records, or core_handle_record() on the raw
 * bytes) and it answers through two callback tables: struct core_io_ops
 * (what goes back to workers) and struct core_persist_ops (what the store
 * must journal). It never blocks, never does I/O, and keeps no global
 * state; one engine per process, single-threaded.
 *
 * Answers. Every request that carries a non-zero correlation id (SEND,
 * SUBSCRIBE, UNSUBSCRIBE, ACK…REJECT, TX_*) is answered exactly once with
 * io->done(); a request with correlation 0 is answered only when it failed
 * (correlation 0 in the answer). Public functions return 0 or the -errno
 * they reported; the glue logs, it need not answer again.
 *
 * Durability (what waits for the store):
 *  - An answer is held until every record the request made the engine
 *    persist is durable (core_on_durable(lsn) ≥ the largest LSN returned by
 *    the persist ops during that request). So a producer's SEND_DONE waits
 *    for message + references; an ACK/commit answered with a receipt waits
 *    for its acknowledge records (a client told "acked" never sees the
 *    message again after a crash); a durable SUBSCRIBE waits for the queue.
 *  - Answers of one connection leave in request order: an answer that
 *    needs nothing durable still waits behind that connection's earlier
 *    held answers, never behind other connections'.
 *  - Deliveries are NOT held: a consumer may receive a durable message
 *    before it is on disk. If the core dies then, the producer never got
 *    its SEND_DONE and resends: the consumer may see it twice, which
 *    at-least-once allows; nothing acknowledged to anyone is lost. The
 *    store's log is sequential, so an ACK record durable implies the
 *    message record before it is durable too.
 *  - Delivery-count updates and DLQ moves are persisted but never waited
 *    for (after a crash a count may be one lower, as in Artemis).
 *  Non-durable messages and non-durable queues never call persist ops.
 *
 * Memory: message bodies are kept in memory (refcounted, shared by every
 * queue the message is routed to); a lazy body store is future work.
 */
#ifndef HAMQ_CORE_H
#define HAMQ_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/msgproto.h"

struct core_engine;

/* Longest duplicate id (bytes) a SEND may carry; the journal keeps ids this long. */
#define CORE_DUP_ID_MAX 1024u

struct core_config {
    bool auto_create;               /* addresses + queues on first use (Artemis: true) */
    uint8_t default_routing;        /* unspecified routing on a new address (Artemis: MULTICAST) */
    uint32_t max_delivery_attempts; /* failed deliveries before the DLA; 0 = never (Artemis: 10) */
    uint32_t id_cache_size;         /* duplicate ids kept per address; 0 = off (Artemis: 20000) */
    char dead_letter_address[128];  /* "" = drop after max attempts (Artemis template: DLQ) */
    size_t max_message_size;        /* reassembled record limit (100 MiB) */
    uint64_t max_memory;            /* message bytes held before producers are told to
                                       stop (io->flow); 0 = unlimited */
};
void core_config_defaults(struct core_config *cfg);

/* One delivery to a consumer; data is valid only during the callback. */
struct core_delivery {
    uint32_t worker;
    uint64_t conn, consumer, delivery_id, message_id;
    uint32_t delivery_count; /* failed deliveries before this one */
    bool redelivered;        /* delivered before (failed or released) */
    const void *data;        /* the encoded message */
    size_t len;
};

struct core_io_ops {
    /* 0, or -EAGAIN when the worker's ring is full: the engine keeps the
     * message, stops delivering to that worker and resumes after
     * core_worker_resume(). done/consumer_closed cannot refuse: the glue
     * queues them (they are bounded by the requests in flight). */
    int (*deliver)(void *ctx, const struct core_delivery *d);
    void (*done)(void *ctx, uint32_t worker, uint64_t conn, uint64_t corr, int status,
                 const char *text);
    /* The engine closed a consumer: status 0 = browse finished, else -errno. */
    void (*consumer_closed)(void *ctx, uint32_t worker, uint64_t conn, uint64_t consumer,
                            int status, const char *reason);
    /* Wall clock in ms since the epoch (expiration); NULL = CLOCK_REALTIME. */
    int64_t (*now_ms)(void *ctx);
    /* Optional. Memory held by messages crossed max_memory (blocked) or fell
     * back under 90 % of it: the glue tells every worker (MSGPROTO_FLOW) to
     * stop / resume reading from producers. Nothing is ever dropped. */
    void (*flow)(void *ctx, bool blocked, uint64_t bytes, uint64_t limit);
};

/* A queue as the store keeps it (bindings journal). */
struct core_queue_info {
    uint64_t id;
    const char *name, *address, *filter; /* filter may be NULL */
    uint8_t routing;                     /* MSGPROTO_ANYCAST / MULTICAST */
};

/*
 * Persistence. Each op appends a record and returns its LSN (> 0, rising)
 * or -errno. The glue's store calls core_on_durable(lsn) as its durable
 * watermark rises. queue_remove implies every reference of that queue is
 * gone. message is called once per message, before its first ref; the
 * store may drop a message once every ref of it is acked or its queue
 * removed (the engine sends no separate delete). Dead-lettering is ref to
 * the DLQ then ack of the old ref; an expiry is an ack.
 */
struct core_persist_ops {
    int64_t (*queue_add)(void *ctx, const struct core_queue_info *q);
    int64_t (*queue_remove)(void *ctx, uint64_t queue_id);
    int64_t (*message)(void *ctx, uint64_t msg_id, const void *data, size_t len);
    int64_t (*ref)(void *ctx, uint64_t msg_id, uint64_t queue_id);
    int64_t (*ack)(void *ctx, uint64_t msg_id, uint64_t queue_id);
    int64_t (*delivery_count)(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t count);
    int64_t (*duplicate_id)(void *ctx, const char *address, const void *id, size_t len);
};

struct core_queue_stat {
    const char *name, *address;
    uint8_t routing;
    bool durable;
    uint32_t consumers;
    uint64_t messages;   /* ready + delivering */
    uint64_t added, delivering, acked, dead_lettered, expired;
};

/* persist may be NULL (nothing is ever durable: a pure in-memory broker). */
struct core_engine *core_new(const struct core_config *cfg, const struct core_io_ops *io,
                             void *io_ctx, const struct core_persist_ops *persist,
                             void *persist_ctx);
void core_free(struct core_engine *e);

/* Workers and connections. */
int core_worker_hello(struct core_engine *e, uint32_t worker, uint32_t pid, uint32_t version);
/* The worker died: every connection of it is closed (deliveries released, count+1). */
void core_worker_gone(struct core_engine *e, uint32_t worker);
/* The worker's core→worker ring has room again: dispatch to it resumes. */
void core_worker_resume(struct core_engine *e, uint32_t worker);
int core_conn_open(struct core_engine *e, uint32_t worker, uint64_t conn, const char *client_id,
                   const char *user);
/* Closes the connection's consumers (unsettled deliveries back with count+1)
 * and rolls back its open transactions. Unknown conn: no-op. */
void core_conn_close(struct core_engine *e, uint32_t worker, uint64_t conn);

/* Requests; the record structs are msgproto's (strings need not be NUL
 * terminated when built by hand: lengths are honoured). */
int core_send(struct core_engine *e, uint32_t worker, const struct msgproto_send *s, bool durable);
int core_subscribe(struct core_engine *e, uint32_t worker, const struct msgproto_subscribe *s);
int core_unsubscribe(struct core_engine *e, uint32_t worker, const struct msgproto_consumer_ref *u,
                     bool remove_durable);
int core_credit(struct core_engine *e, uint32_t worker, uint64_t conn, uint64_t consumer,
                uint32_t credits);
/* type: MSGPROTO_ACK, RELEASE, MODIFIED or REJECT; flags: MSGPROTO_F_*. */
int core_settle(struct core_engine *e, uint32_t worker, uint16_t type, uint8_t flags,
                const struct msgproto_settle *s);
int core_tx(struct core_engine *e, uint32_t worker, uint16_t type, const struct msgproto_tx *t);

/* Decode one ring record from a worker and apply it (HELLO, CONN_*, SEND,
 * …, FRAGMENT with reassembly per connection). STAT_REQ is answered through
 * stat_cb. -EBADMSG/-EPROTO for a malformed record (the glue should treat
 * that worker as broken). */
int core_handle_record(struct core_engine *e, uint32_t worker, const void *rec, size_t len,
                       void (*stat_cb)(void *ctx, uint64_t request, const struct core_queue_stat *st,
                                       bool last),
                       void *stat_ctx);

/* The store's durable watermark reached lsn: release held answers. */
void core_on_durable(struct core_engine *e, uint64_t lsn);

/* Statistics of queues whose name contains `match` (NULL/"" = all), in name
 * order. Returns the number of queues reported. */
int core_queue_stats(struct core_engine *e, const char *match,
                     void (*cb)(void *ctx, const struct core_queue_stat *st), void *ctx);

/* Management: create a queue (and its address) now. -EEXIST if it exists. */
int core_create_queue(struct core_engine *e, const char *name, const char *address,
                      uint8_t routing, bool durable, const char *filter);

/*
 * Recovery, before any worker record: queues, then messages, then refs in
 * journal order (a ref's position in its queue is its restore order), then
 * duplicate ids; then core_restore_done(). Restored queues are durable;
 * queue names of the form <client>.<sub> on multicast are durable
 * subscriptions. Ids given here are kept; new ids continue above them.
 */
int core_restore_queue(struct core_engine *e, const struct core_queue_info *q);
int core_restore_message(struct core_engine *e, uint64_t msg_id, const void *data, size_t len);
int core_restore_ref(struct core_engine *e, uint64_t msg_id, uint64_t queue_id,
                     uint32_t delivery_count);
int core_restore_ack(struct core_engine *e, uint64_t msg_id, uint64_t queue_id);
int core_restore_delivery_count(struct core_engine *e, uint64_t msg_id, uint64_t queue_id,
                                uint32_t count);
bool core_restore_has_message(struct core_engine *e, uint64_t msg_id);
/* Drops the restore's own hold on a message that has a reference now, so that
   core_restore_done() need not walk every message (-EINVAL if none has it). */
int core_restore_release(struct core_engine *e, uint64_t msg_id);
/*
 * A warm standby (journal_standby.c) calls the restore functions above for as
 * long as it follows the live's journal, acks included (a message whose last
 * reference is acked is freed at once), and core_restore_done() only when it
 * is promoted. These two let it check its queues against the bindings then.
 */
bool core_has_queue_id(struct core_engine *e, uint64_t queue_id);
size_t core_durable_queue_count(struct core_engine *e);
int core_restore_duplicate_id(struct core_engine *e, const char *address, const void *id,
                              size_t len);
int core_restore_done(struct core_engine *e);

#endif
