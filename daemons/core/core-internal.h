/*
 * core-internal — the engine's private object model, shared by the core-*.c
 * files of libhamqcore.a. Nothing here crosses a process boundary.
 *
 * Ownership and invariants:
 *  - engine owns addresses (by name), queues (by name and id), connections
 *    (by worker+conn id); a connection owns its consumers and transactions.
 *  - A message (core_msg) is shared by its references; refs counts them and
 *    the message is freed when the last reference goes. Bytes live inline.
 *  - A reference (core_ref) is in exactly one place: its queue's ready list
 *    (state READY, sorted by priority desc then seq asc, seq = arrival
 *    order in that queue, so a redelivered ref goes back to its original
 *    place) or its consumer's in-flight list (state DELIVERING, also in the
 *    consumer's map by delivery id).
 *  - A queue's consumers list is rotated (head moved to tail) on each
 *    dispatch attempt: that rotation is the round robin.
 *  - Queues to dispatch are collected in engine->dirty during an operation
 *    and dispatched at its end (op_end), never from inside a callback.
 *  - A pending drain (core-drain.h): c->drain_pending means a DRAIN record
 *    of c is not answered yet and c->drain_corr is its correlation; the
 *    queue counts them in q->drains_pending so a dispatch round without
 *    one costs nothing. Every dispatch round of c's queue (queue_dispatch)
 *    ends it unless c still has credit, a message c could take is still
 *    ready and c's worker is blocked (its ring full): only then would an
 *    answer now say "drained" with messages left. A pending drain holds
 *    no memory: the consumer going by UNSUBSCRIBE or browse completion
 *    (consumer_close) answers it; conn_free forgets it (no one to tell).
 *  - Per-address memory (core-flow.h): a message is charged once to the
 *    address of its first ref (m->acct, m->acct_refs counts its refs in
 *    that address's queues); a ref in another address's queue is charged
 *    on its own (r->acct_extra). So address->bytes is the sum over the
 *    distinct messages in its queues. Addresses whose bytes changed wait
 *    in engine->aflow_pending (flow_next) for flow_check() at op_end.
 */
#ifndef HAMQ_CORE_INTERNAL_H
#define HAMQ_CORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core-filter.h"
#include "core-flow.h"
#include "core-util.h"
#include "core.h"
#include "hamq/msgproto.h"
#include "hamq/u64map.h"

#define CORE_ROUTE_ANY (1u << MSGPROTO_ANYCAST)
#define CORE_ROUTE_MULTI (1u << MSGPROTO_MULTICAST)

struct core_msg {
    uint64_t id;
    uint32_t refs;
    bool durable, persisted;
    bool restore_held; /* restore_msgs holds a reference (core_restore_message) */
    uint8_t priority;
    int64_t expiration;
    struct core_address *acct; /* address charged for it (NULL: in no queue) */
    uint32_t acct_refs;        /* its refs in acct's queues */
    struct hmsg view; /* decoded once, points into data */
    size_t len;
    uint8_t data[];
};

enum ref_state { REF_READY, REF_DELIVERING };

struct core_ref {
    struct dlist link;
    struct core_msg *m;
    struct core_queue *q;
    uint64_t seq;
    uint32_t delivery_count;
    enum ref_state state;
    bool delivered_before, persisted;
    bool acct_extra;               /* charged to q->addr by itself (m->acct is another) */
    uint64_t excluded;             /* consumer serial that must not get it again, 0 none */
    struct core_consumer *c;       /* DELIVERING: holder */
    uint64_t delivery_id;
};

struct core_dupcache {
    struct hmap set;  /* id bytes -> slot index + 1 */
    char **ring;      /* id copies, each prefixed by its length (size_t) */
    uint32_t size, next;
};

struct core_address {
    char *name;
    uint8_t routing; /* CORE_ROUTE_* mask */
    struct dlist queues;
    uint64_t rr;     /* anycast round robin counter */
    struct core_dupcache dup;
    uint64_t bytes;  /* of the distinct messages in its queues (core-flow.h) */
    uint64_t limit;  /* per-address limit, valid while limit_gen == engine's */
    uint32_t limit_gen;
    bool flow_blocked, flow_pending;
    struct core_address *flow_next; /* in engine->aflow_pending while flow_pending */
};

struct core_queue {
    struct dlist addr_link, dirty_link;
    uint64_t id;
    char *name;
    struct core_address *addr;
    uint8_t routing;
    bool durable, temporary;
    char *filter_text;
    struct core_filter *filter;
    struct dlist ready, consumers;
    uint32_t nconsumers;
    uint32_t drains_pending; /* its consumers with drain_pending */
    uint64_t next_seq, ready_n, delivering_n;
    uint64_t added, acked, dead_lettered, expired;
};

struct core_conn {
    uint32_t worker;
    uint64_t id;
    char *client_id;
    uint64_t answer_lsn; /* LSN of this connection's last held answer */
    struct hmap consumers; /* u64 id -> core_consumer */
    struct hmap txs;       /* u64 id -> core_tx */
    struct msgproto_reasm reasm;
};

struct core_consumer {
    struct dlist qlink;
    struct core_conn *conn;
    uint64_t id, serial;
    struct core_queue *q;
    struct core_filter *filter;
    uint8_t options;
    uint32_t credit;        /* credit mode: left; window mode: window */
    uint32_t inflight_n;
    struct dlist inflight;
    struct hmap by_delivery; /* u64 -> core_ref */
    uint64_t next_delivery;
    bool drain_pending;     /* a DRAIN waits for its worker's ring (core-drain.h) */
    uint64_t drain_corr;    /* its DONE correlation while drain_pending */
    bool browse_started;    /* browse cursor: last (priority, seq) shown */
    uint8_t browse_prio;
    uint64_t browse_seq;
};

struct core_tx_op {
    struct dlist link;
    uint16_t type;          /* MSGPROTO_SEND or a settle type */
    uint8_t flags;
    bool durable;
    struct msgproto_send send; /* bytes point into blob */
    struct msgproto_settle settle;
    uint8_t blob[];
};

struct core_tx {
    uint64_t id;
    struct dlist ops;
    bool rollback_only;
    char why[160];
};

struct core_answer {
    struct dlist link;
    uint32_t worker;
    uint64_t conn, corr, lsn;
    int status;
    char text[];
};

#define CORE_MAX_WORKERS 1024

struct core_engine {
    struct core_config cfg;
    const struct core_io_ops *io;
    void *io_ctx;
    const struct core_persist_ops *persist;
    void *persist_ctx;
    struct hmap addresses, queues, queue_ids, conns;
    /* Only between restore calls (a warm standby: for as long as it follows).
     * Open addressing, not chained entries: a standby holding a million
     * messages frees them with a few free()s at promotion, not two million. */
    struct u64map restore_msgs;  /* msg id -> core_msg */
    struct u64map restore_ref1;  /* msg id -> its first restored core_ref */
    struct hmap restore_refs;    /* {msg id, queue id} -> the others (multicast) */
    uint64_t restore_held; /* messages restore_msgs still holds a reference of */
    uint64_t next_msg_id, next_queue_id, next_serial;
    uint64_t durable_lsn, op_lsn;
    int op_err;
    bool no_persist;
    bool flow_blocked;
    uint64_t mem_bytes; /* bytes of every message held */
    const struct core_addr_flow_ops *aflow; /* per-address limits, NULL = none */
    void *aflow_ctx;
    uint32_t aflow_gen;                     /* raised by each core_flow_addresses() */
    struct core_address *aflow_pending;     /* bytes changed this operation */
    struct dlist pending, dirty;
    bool blocked[CORE_MAX_WORKERS];
    char err[256]; /* text of the last error reported */
};

/* core-engine.c */
void op_begin(struct core_engine *e);
void op_end(struct core_engine *e);
int answer(struct core_engine *e, uint32_t worker, uint64_t conn, uint64_t corr, int status,
           const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void persist_track(struct core_engine *e, int64_t lsn);
int64_t now_ms(struct core_engine *e);
struct core_address *address_get(struct core_engine *e, const char *name, bool create);
struct core_queue *queue_create(struct core_engine *e, struct core_address *a, const char *name,
                                uint8_t routing, bool durable, bool temporary, const char *filter,
                                uint64_t id);
void queue_delete(struct core_engine *e, struct core_queue *q);
void queue_mark_dirty(struct core_engine *e, struct core_queue *q);
struct core_conn *conn_find(struct core_engine *e, uint32_t worker, uint64_t conn);
char *bytes_dup(struct msgproto_bytes b);
void split_fqqn(const char *addr, char **address, char **queue);

/* core-route.c */
struct core_msg *msg_new(struct core_engine *e, const void *data, size_t len, uint64_t id);
void msg_put(struct core_engine *e, struct core_msg *m);
void msg_free(struct core_engine *e, struct core_msg *m);
void flow_check(struct core_engine *e);
struct core_ref *ref_add(struct core_engine *e, struct core_queue *q, struct core_msg *m);
enum { RM_DROP = 0, RM_ACK = 1, RM_GONE = 2 };
void ref_remove(struct core_engine *e, struct core_ref *r, int how);
void ready_insert(struct core_queue *q, struct core_ref *r, bool from_head);
bool dead_letter(struct core_engine *e, struct core_ref *r);
int route_send(struct core_engine *e, const struct msgproto_send *s, bool durable);
bool dup_seen(struct core_address *a, struct msgproto_bytes id);
void dup_add(struct core_engine *e, struct core_address *a, struct msgproto_bytes id, bool persist);
void dup_free(struct core_dupcache *d);

/* core-dispatch.c */
void queue_dispatch(struct core_engine *e, struct core_queue *q);
void consumer_close(struct core_engine *e, struct core_consumer *c, bool raise_count);
int settle_apply(struct core_engine *e, struct core_consumer *c, uint16_t type, uint8_t flags,
                 uint64_t delivery);
void conn_free(struct core_engine *e, struct core_conn *c);

/* core-tx.c */
int tx_add_send(struct core_engine *e, struct core_conn *c, const struct msgproto_send *s,
                bool durable);
int tx_add_settle(struct core_engine *e, struct core_conn *c, uint16_t type, uint8_t flags,
                  const struct msgproto_settle *s);
void tx_free(struct core_tx *t);

#endif
