/*
 * store_index — the live index of the store: msg id -> where its body record is
 * (segment, offset, length) + its queue references with delivery counts, the
 * open transactions, and per-segment live counts (for compaction).
 *
 * Built by replaying records (recovery, follow mode) and kept current by the writer
 * on every append. Bodies stay on disk: an entry is 48 bytes plus 16 per extra
 * queue reference, so 1M live messages cost ~100 MB of index, not their bodies.
 * Single-threaded: owned by one struct store or one follower.
 *
 * Apply rules (the meaning of each record type, journal_format.h):
 *  - MSG_ADD creates the entry (a second add of the same id moves it, refs kept);
 *  - REF_ADD adds a reference (count 0) unless present; ACK deletes it, and the
 *    last reference gone deletes the message; DCOUNT sets a count;
 *  - records flagged JNL_F_TX wait in their transaction until COMMIT (applied in
 *    order) or ROLLBACK (dropped); PREPARE marks the transaction prepared;
 *  - MSG_MOVE changes the location of a live message only.
 *  - LARGE_ADD is a MSG_ADD whose body is a file (journal_format.h): the entry has
 *    seq 0 (segments start at 1), off = the body's CRC32C, len = the body length;
 *    it counts in no segment. When such an entry leaves the index (last reference
 *    gone, or its transaction rolled back), on_large_gone tells the writer, which
 *    deletes the file once that record is durable;
 *  - DUP_ID appends the id to its address's FIFO of the newest dup_limit ids
 *    (store_dup.c); the oldest falls out. Ids are independent of messages.
 * References to an unknown message are counted (orphans) and ignored.
 */
#ifndef HAMQ_STORE_INDEX_H
#define HAMQ_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/journal_format.h"

struct store_observer;

struct idx_ref {
    uint64_t queue_id;
    uint32_t count;
    uint32_t reserved;
};

/* One live message. msg_id 0 marks an empty hash slot; seq 0 a large message. */
struct idx_msg {
    uint64_t msg_id;
    uint64_t seq;     /* segment of the MSG_ADD / MSG_MOVE record */
    uint32_t off;     /* offset of its record header */
    uint32_t len;     /* its payload length (8 + body) */
    uint32_t nrefs;
    uint32_t cap;     /* 1 = the inline ref, else the size of refs.many */
    union {
        struct idx_ref one;
        struct idx_ref *many;
    } refs;
};

/* A record waiting for its transaction to end. */
struct idx_txop {
    uint16_t type;
    uint64_t msg_id;
    uint64_t queue_id;
    uint32_t count;
    uint64_t seq;
    uint32_t off;
    uint32_t len;
};

struct idx_tx {
    struct idx_tx *next;
    uint64_t tx_id;
    bool prepared;
    size_t nops, cap;
    struct idx_txop *ops;
};

/* Per-segment accounting: bodies that are still referenced. */
struct idx_seg {
    uint64_t live_msgs;
    uint64_t live_bytes;
};

/* One id of a duplicate-id FIFO: len bytes, heap copy. */
struct idx_dupid {
    uint8_t *id;
    uint32_t len;
};

/* The newest ids of one address, oldest at ring[head]; cap grows up to the limit. */
struct idx_dupaddr {
    char *address; /* NUL-terminated copy */
    uint32_t alen;
    uint32_t cap, n, head;
    struct idx_dupid *ring;
};

struct idx {
    struct idx_msg *slots;
    size_t nslots; /* power of two */
    size_t nmsgs;
    struct idx_tx *txs;
    uint64_t orphans;
    uint64_t seg_base; /* seq of segs[0] */
    size_t nsegs;
    struct idx_seg *segs;
    /* duplicate ids: open-addressing table of addresses (store_dup.c) */
    struct idx_dupaddr **dups;
    size_t ndupslots, ndupaddrs;
    uint64_t ndupids;
    uint32_t dup_limit; /* ids kept per address; 0 = JNL_DUP_IDS_DEFAULT */
    /* the writer's hook (NULL during recovery and in followers) */
    void (*on_large_gone)(void *ctx, uint64_t msg_id);
    void *hook_ctx;
    /* what applying records changed, for a warm standby's engine (store.h);
       NULL except in a follower that was given one, and during its adoption */
    const struct store_observer *obs;
    void *obs_ctx;
    long (*obs_read)(void *src, uint64_t msg_id, void *buf, size_t len); /* bodies */
    void *obs_src;
};

static inline bool idx_msg_large(const struct idx_msg *m)
{
    return m->seq == 0;
}

/* Bytes of the body (the record payload minus its head, or the large file's). */
static inline uint32_t idx_body_len(const struct idx_msg *m)
{
    return idx_msg_large(m) ? m->len : m->len - (uint32_t)sizeof(struct jnl_msg_add);
}

void idx_init(struct idx *x);
void idx_free(struct idx *x);
/* Applies one record located at (seq, off). -ENOMEM or -EINVAL (bad payload size). */
int idx_apply(struct idx *x, const struct jnl_rec_header *h, const void *payload, uint64_t seq,
              uint32_t off);
struct idx_msg *idx_find(const struct idx *x, uint64_t msg_id);
/* Restores one checkpointed message / tx op (recovery from a checkpoint). */
int idx_put_msg(struct idx *x, uint64_t msg_id, uint64_t seq, uint32_t off, uint32_t len);
int idx_put_ref(struct idx *x, struct idx_msg *m, uint64_t queue_id, uint32_t count);
int idx_put_txop(struct idx *x, uint64_t tx_id, bool prepared, const struct idx_txop *op);
/* Drops transactions that were neither prepared nor ended, and unreferenced messages. */
void idx_finish_recovery(struct idx *x, uint64_t *dropped_tx, uint64_t *dropped_msgs);
/*
 * The same for an index a follower built (store_open_adopt): a follower applies
 * whole durable batches, and a batch holds a message's references with the
 * message, so only messages added by the records replayed after it (ids) can
 * lack references. Costs the tail, not a walk over every message.
 */
void idx_finish_adoption(struct idx *x, const uint64_t *ids, size_t n, uint64_t *dropped_tx,
                         uint64_t *dropped_msgs);
/* True if an open transaction has a record about msg_id. */
bool idx_msg_in_tx(const struct idx *x, uint64_t msg_id);
/* Live accounting of segment seq (zeroes if unknown). */
struct idx_seg idx_seg_stats(const struct idx *x, uint64_t seq);
/* Bytes of memory the index holds (table, extra refs, txs, segment stats). */
uint64_t idx_memory(const struct idx *x);
/* Iteration over live messages: *pos starts at 0; NULL at the end. */
struct idx_msg *idx_next(const struct idx *x, size_t *pos);
static inline struct idx_ref *idx_refs(struct idx_msg *m)
{
    return m->cap == 1 ? &m->refs.one : m->refs.many;
}
/* --- duplicate ids (store_dup.c) --- */
/* Appends one id to the address's FIFO (dropping the oldest past dup_limit). */
int idx_dup_add(struct idx *x, const char *address, size_t alen, const void *id, size_t len);
/* Decodes and applies a DUP_ID payload (-EINVAL if malformed). */
int idx_dup_apply(struct idx *x, const void *payload, size_t len);
/* Iteration: addresses in table order, each one's ids oldest first. */
struct idx_dupaddr *idx_dup_next(const struct idx *x, size_t *pos);
static inline const struct idx_dupid *idx_dup_at(const struct idx_dupaddr *a, uint32_t i)
{
    return &a->ring[(a->head + i) % a->cap];
}
void idx_dup_free(struct idx *x);
bool idx_dup_equal(const struct idx *a, const struct idx *b);
uint64_t idx_dup_memory(const struct idx *x);

/* Two indexes hold the same live set (messages, locations optional, refs, counts, txs). */
bool idx_equal(const struct idx *a, const struct idx *b, bool compare_locations);

#endif
