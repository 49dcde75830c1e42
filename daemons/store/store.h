/*
 * store — the durable journal of hamq (the "store"): records in, durability out.
 *
 * Who calls it: the core process (hamq-journal) as the one writer, from its
 * single-threaded epoll loop; a backup (HA) as a read-only follower; tools and tests.
 * It knows nothing of protocols, rings or clients. On-disk layout:
 * include/hamq/journal_format.h.
 *
 * Writer loop, epoll-friendly, no threads, no timers:
 *
 *   store_open(&opts, &s, err, sizeof err);            // recovers, takes writer.lock
 *   epoll_ctl(ep, EPOLL_CTL_ADD, store_event_fd(s), EPOLLIN)
 *   ... store_add_message(s, id, body, len, &lsn);     // into the buffer, no syscall
 *   ... store_add_ref(s, id, queue, &lsn);
 *   store_kick(s);                                      // end of the loop iteration
 *   on EPOLLIN of the event fd: store_on_event(s);     // -> opts.on_durable(ctx, lsn)
 *
 * Group commit: at most one batch is in flight. store_kick() submits everything
 * appended so far if nothing is in flight; otherwise records accumulate and
 * store_on_event() submits them as the next batch as soon as the previous one is
 * durable. An idle store therefore costs one write + sync per record; a busy one
 * one write + sync per batch, whatever the number of records in it.
 *
 * Durability is an LSN watermark: every record with LSN <= durable_lsn is on disk.
 * The callback is called from store_on_event() (and the blocking helpers).
 *
 * Returns: 0 or a positive count on success, -errno on failure. Messages for the
 * operator are logged once, where the decision is made, with file and offset.
 * -ESTALE: the store was fenced (store.epoch was raised by a newer live), nothing
 * more can be written. -EIO: a write failed, the writer must exit.
 */
#ifndef HAMQ_STORE_H
#define HAMQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/journal_format.h"

struct hamq_config;
struct store;

enum store_sync {
    STORE_SYNC_DEFAULT = 0, /* the measured faster one: FDATASYNC (see store_writer.c) */
    STORE_SYNC_FDATASYNC,   /* write, then IOCB_CMD_FDSYNC, both through libaio */
    STORE_SYNC_DSYNC,       /* write with RWF_DSYNC (aio_rw_flags) */
};

typedef void (*store_durable_cb)(void *ctx, uint64_t durable_lsn);

struct store_opts {
    const char *dir;             /* the store directory; created if missing */
    uint64_t segment_size;       /* 0 = 10 MiB; rounded up to JNL_BLOCK */
    uint64_t write_buffer_size;  /* 0 = 1 MiB; initial batch buffer, grows */
    enum store_sync sync;
    uint64_t checkpoint_bytes;   /* 0 = no automatic checkpoint */
    int compact_min_live_percent;
    bool allow_truncate_corrupt; /* start anyway, cutting the journal at corruption */
    bool force_buffered;         /* no O_DIRECT even where it works (tests, bench) */
    uint32_t dup_ids_per_address; /* duplicate ids kept per address; 0 = 20000 */
    uint64_t large_message_size;  /* bodies this big or more go to large-messages/;
                                     0 = a quarter of a segment's data area */
    store_durable_cb on_durable;
    void *ctx;
};

/* Defaults, then the [journal] keys of cfg (cfg may be NULL). */
void store_opts_init(struct store_opts *o, const struct hamq_config *cfg);

/*
 * Creates the layout if the directory is empty, takes writer.lock (-EBUSY if
 * another process holds it), reads store.epoch, recovers the bindings and the
 * message journal, and writes an EPOCH_START record. On failure returns -errno
 * and err names the file, the offset and what was wrong.
 */
int store_open(const struct store_opts *opts, struct store **out, char *err, size_t errlen);
/* Flushes what was appended (unless fenced or failed), waits, releases everything. */
void store_close(struct store *s);

/* Generic append of MSG_ADD..TX_ROLLBACK (-EINVAL for the types the store writes
   itself, and for a payload of the wrong size); the typed helpers below fill the
   payload structs. */
int store_append(struct store *s, enum jnl_rec_type type, const void *payload, size_t len,
                 uint64_t *lsn);
/* Same, as part of transaction tx_id (counts only once committed). */
int store_append_tx(struct store *s, uint64_t tx_id, enum jnl_rec_type type, const void *payload,
                    size_t len, uint64_t *lsn);

/*
 * msg_id must not be 0. The body is opaque and may be empty. A body of
 * large_message_size bytes or more (or too big for a segment) is written to
 * large-messages/<id>.msg (a blocking copy into the page cache), its fdatasync
 * is submitted through libaio, and its small record appended; no batch goes out
 * before that sync completes. Up to 4 GiB - 1. -EEXIST if msg_id is live.
 */
int store_add_message(struct store *s, uint64_t msg_id, const void *body, size_t len,
                      uint64_t *lsn);
int store_add_ref(struct store *s, uint64_t msg_id, uint64_t queue_id, uint64_t *lsn);
int store_ack(struct store *s, uint64_t msg_id, uint64_t queue_id, uint64_t *lsn);
int store_set_delivery_count(struct store *s, uint64_t msg_id, uint64_t queue_id,
                             uint32_t count, uint64_t *lsn);
int store_tx_end(struct store *s, enum jnl_rec_type type, uint64_t tx_id, uint64_t *lsn);

/*
 * Duplicate detection: journals that id (1..JNL_DUP_ID_MAX bytes) was accepted on
 * address (a C string of 1..JNL_DUP_ADDRESS_MAX bytes). The store keeps the newest
 * dup_ids_per_address per address, through restarts, checkpoints and compaction,
 * whether or not the message that carried it is still live. -ENAMETOOLONG / -EINVAL
 * for a bad size. Append it after the message's records: if a crash loses it, it
 * also lost everything after it (the producer got no confirmation and resends).
 */
int store_add_duplicate_id(struct store *s, const char *address, const void *id, size_t len,
                           uint64_t *lsn);
/* Called per id: each address's ids oldest first; non-zero stops the walk. */
typedef int (*store_dup_cb)(void *ctx, const char *address, const void *id, size_t len);
int store_foreach_duplicate_id(struct store *s, store_dup_cb cb, void *ctx);
uint64_t store_duplicate_ids(const struct store *s); /* ids kept, all addresses */

/* The eventfd to watch for EPOLLIN. */
int store_event_fd(const struct store *s);
/* Reaps completions, reports durability, submits the next batch. 0 or -errno. */
int store_on_event(struct store *s);
/* Submits what was appended if no batch is in flight. 0 or -errno. */
int store_kick(struct store *s);
/* Blocking: until every record appended so far is durable (tools, tests, close). */
int store_sync(struct store *s);

uint64_t store_durable_lsn(const struct store *s);
uint64_t store_last_lsn(const struct store *s); /* last LSN handed out */
uint64_t store_epoch(const struct store *s);
bool store_fenced(const struct store *s);
/* Re-reads store.epoch (call on a <= 1 s timer). 1 = fenced now, 0 = fine, -errno. */
int store_check_epoch(struct store *s);
/* True when writes bypass the page cache (false on tmpfs or where O_DIRECT is refused). */
bool store_is_direct(const struct store *s);

/* What the last store_open found (tests, logs, the HA work's figures). */
struct store_recovery {
    uint64_t records;        /* replayed (after the checkpoint, if one was used) */
    uint64_t next_lsn;
    bool from_checkpoint;
    bool adopted;            /* store_open_adopt: the index came from a follower */
    bool torn;               /* a torn tail was cut */
    bool truncated_corrupt;  /* allow_truncate_corrupt cut the journal at corruption */
    double ms;               /* wall time of the message journal recovery */
    uint64_t index_bytes;    /* memory of the live index after recovery (0 when adopted:
                                it is a walk over every message) */
};
void store_recovery_info(const struct store *s, struct store_recovery *out);

/* Live index. */
struct store_live_ref {
    uint64_t msg_id;
    uint64_t queue_id;
    uint32_t delivery_count;
    uint32_t body_len;
};
typedef int (*store_live_cb)(void *ctx, const struct store_live_ref *ref);
/* Calls cb for every (message, queue) reference; stops early if cb returns non-zero. */
int store_foreach_live(struct store *s, store_live_cb cb, void *ctx);
uint64_t store_live_messages(const struct store *s);
/*
 * Reads the body of msg_id into buf (up to len bytes), verifying the record CRC.
 * Returns the full body length (may exceed len), -ENOENT, or -EIO on a bad CRC.
 */
long store_read_body(struct store *s, uint64_t msg_id, void *buf, size_t len);

/* Bindings (addresses and queues); synchronous: durable when they return. */
enum store_routing { STORE_ANYCAST = 0, STORE_MULTICAST = 1 };
struct store_binding {
    uint64_t queue_id;
    const char *address;
    const char *name;
    const char *filter; /* "" or NULL = none */
    enum store_routing routing;
    bool durable;
};
typedef int (*store_binding_cb)(void *ctx, const struct store_binding *b);
int store_bindings_add(struct store *s, const struct store_binding *b);
int store_bindings_remove(struct store *s, uint64_t queue_id);
int store_foreach_binding(struct store *s, store_binding_cb cb, void *ctx);

/*
 * Checkpoint: appends a snapshot of the live index, waits until it is durable,
 * then publishes journal/checkpoint. Blocking (one or two syncs). 0 or -errno.
 */
int store_checkpoint(struct store *s);
/*
 * Compaction: segments (before the one being written) whose live bytes are under
 * compact_min_live_percent have their live messages copied (MSG_MOVE records),
 * then a checkpoint is taken and the old segments deleted. Blocking. Returns the
 * number of segments deleted, or -errno.
 */
int store_compact(struct store *s);
/* Number of segment files in journal/ (tests, tools). */
int store_segment_count(const struct store *s);

/*
 * Follow mode: a read-only tail of the journal for a warm backup (HA). Takes no
 * lock and writes nothing; any number of followers may run beside the writer.
 * It starts from the published checkpoint (or the first segment) and keeps its
 * own index. A record is applied only once it is known durable: its LSN is <=
 * limit when the caller passes one (the live's reported durable LSN), else <= the
 * highest synced_lsn seen in later records (so the newest batch waits for the
 * next write). A follower that finds a valid record with an unexpected LSN (the
 * writer restarted and cut a torn tail the follower had read), or that lags so far
 * behind that compaction deleted a segment it still had to read, returns -ESTALE:
 * close and reopen it (from the newest checkpoint). Bodies are read from segment files, which compaction may
 * delete: -ENOENT then means "poll and read again".
 */
struct store_follower;
int store_follow_open(const char *dir, struct store_follower **out, char *err, size_t errlen);
/* Reads what was written since the last call, applies what is durable (<= limit
   if limit != 0). Returns the number of records applied, or -errno. */
int store_follow_poll(struct store_follower *f, uint64_t limit);
uint64_t store_follow_applied_lsn(const struct store_follower *f);
uint64_t store_follow_live_messages(const struct store_follower *f);
int store_follow_foreach_live(struct store_follower *f, store_live_cb cb, void *ctx);
long store_follow_read_body(struct store_follower *f, uint64_t msg_id, void *buf, size_t len);
/* The duplicate ids the follower has applied (the default 20000 per address). */
int store_follow_foreach_duplicate_id(struct store_follower *f, store_dup_cb cb, void *ctx);
void store_follow_close(struct store_follower *f);

/*
 * Warm standby (HA): what applying records changed in a follower's index, so
 * that a standby can keep a broker engine current while it follows. Called
 * from store_follow_poll() after the index changed, in LSN order, with
 * transactional records only at their COMMIT: ref_add for a new reference
 * (read(src, msg_id, buf, len), valid during the call, reads its message's
 * body like store_read_body), ack for a reference removed, dcount for a delivery count set, dup_id
 * for a duplicate id kept (address is NOT NUL-terminated: alen bytes). A
 * follower opened from a checkpoint holds live messages it never reported:
 * walk them once with store_follow_foreach_live before relying on the calls.
 * Also called by store_open_adopt() for the tail it replays, then never again.
 */
typedef long (*store_body_fn)(void *src, uint64_t msg_id, void *buf, size_t len);
struct store_observer {
    void (*ref_add)(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t body_len,
                    store_body_fn read, void *src);
    void (*ack)(void *ctx, uint64_t msg_id, uint64_t queue_id);
    void (*dcount)(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t count);
    void (*dup_id)(void *ctx, const char *address, size_t alen, const void *id, size_t len);
};
/* ob NULL = no more calls. */
void store_follow_observe(struct store_follower *f, const struct store_observer *ob, void *ctx);
/* Keeps the newest n duplicate ids per address (0 = JNL_DUP_IDS_DEFAULT), as the writer will. */
void store_follow_set_dup_limit(struct store_follower *f, uint32_t n);

/*
 * Promotion of a warm standby: store_open(), except that the live index is
 * taken from the follower *f instead of being rebuilt from the checkpoint and
 * the journal. Only the records the follower had not applied yet are read from
 * disk, verified and replayed (a torn, never-synced tail is cut, as at any
 * start), through the follower's observer if it has one. Consumes *f (sets it
 * to NULL) whatever the result. Cost: the tail, not the store.
 */
int store_open_adopt(const struct store_opts *opts, struct store_follower **f,
                     struct store **out, char *err, size_t errlen);

/*
 * Reads the bindings of the store at dir without writing or locking anything
 * (a standby learning about queues the live created). -errno with err set.
 */
int store_read_bindings(const char *dir, store_binding_cb cb, void *ctx, char *err,
                        size_t errlen);

#endif
