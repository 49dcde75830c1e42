/*
 * ring — a single-producer/single-consumer ring of variable-length records in
 * memory shared by two processes (the fast path between hamq-worker and
 * hamq-journal). Called by shm/segment.c (which places two rings per worker
 * slot), the core and the workers; tests/shm and tests/bench/ring_bench.
 *
 * Two types, as in PostgreSQL's shm_mq: `struct ring_shared` lives in the
 * shared segment; `struct ring` is the process-private handle of ONE side
 * (writer or reader) and holds that side's cached positions. Every operation
 * returns a `enum ring_outcome`; "would block" and "peer gone" are normal
 * results, not errors.
 *
 * Record format (in the data area, positions are byte counters that only grow;
 * offset = position & (capacity - 1)):
 *
 *   +--------------+------------+-------------------+---------+
 *   | length (u32) | type (u32) | payload (length)  | pad → 8 |
 *   +--------------+------------+-------------------+---------+
 *
 * A record never straddles the end of the data area: when it would, the
 * writer first puts a padding record (type RING_TYPE_PAD) that runs exactly
 * to the end. The reader validates each header before trusting it (a
 * corrupt or malicious peer gives RING_BROKEN, never an out-of-bounds read):
 * the record must fit in the published bytes, not cross the end, and a data
 * record must be at most ring_max_record() bytes.
 *
 * Hot path: no locks, no syscalls, no allocation. The writer caches the read
 * position and re-reads it (acquire) only when space looks short; the reader
 * caches the write position and re-reads it only when it has consumed all it
 * knew of. Records are claimed privately and made visible by ONE release
 * store of the write position per publish (batching). Likewise the reader
 * hands space back with one release store per ring_read_release().
 *
 * WHY NO WAKE-UP IS LOST (Dekker-style, as PostgreSQL shm_mq.c):
 * Each direction that can sleep has a waiter word (`reader_wait` for an
 * empty ring, `writer_wait` for a full one): 0 = not waiting, 1 = parked on
 * the futex (the word itself is the futex), 2 = armed on a doorbell fd.
 *   sleeper:  store(wait = 1 or 2);  fence(seq_cst);  re-check the ring;
 *             if still nothing: futex_wait(&wait, 1) / epoll_wait(doorbell)
 *   waker:    store(position, release); fence(seq_cst); w = load(wait);
 *             if w != 0: if exchange(wait, 0) != 0: futex_wake / write(bell)
 * The two fences are totally ordered, so either the sleeper's re-check sees
 * the new position (it does not sleep), or the waker's load sees wait != 0
 * (it wakes). If the waker clears the word before the sleeper calls
 * futex_wait, the kernel compares the word (now 0, expected 1) and returns at
 * once; if after, the sleeper is queued and FUTEX_WAKE finds it (the kernel
 * orders both under the futex hash-bucket lock). For a doorbell, the byte
 * written stays in the pipe until the sleeper drains it, so epoll reports it
 * whenever it is called. The exchange lets at most one waker write per
 * arming; should the pipe be full anyway, EAGAIN is harmless (unread bytes
 * already make epoll report it). "position" above is write_pos when the
 * reader sleeps (empty ring) and read_pos when the writer sleeps (full ring:
 * ring_wait on a writer, ring_arm_bell_room). The waker checks once per
 * publish (per batch), not per record: a seq_cst fence costs ~60 ns here.
 * The futex is used WITHOUT FUTEX_PRIVATE_FLAG: the two processes map the
 * segment at different addresses. Every sleep is bounded by a timeout so a
 * dead peer (who will never wake us) is noticed.
 *
 * Compatibility: `struct ring_shared` is part of the segment layout
 * (SHM_LAYOUT_VERSION in hamq/shm.h): explicit sizes, never reorder, new
 * fields only in the reserved space, bump the version on any change.
 */
#ifndef HAMQ_RING_H
#define HAMQ_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_CACHE_LINE   64
#define RING_ALIGN        8u
#define RING_HEADER_BYTES 8u
#define RING_MIN_CAPACITY 1024u
#define RING_MAX_CAPACITY (1u << 30)
/* Reserved record type: padding at the wrap. Callers use types below it. */
#define RING_TYPE_PAD 0xFFFFFFFFu

/* Waiter word values (see "why no wake-up is lost"). */
#define RING_WAIT_NONE  0u
#define RING_WAIT_FUTEX 1u
#define RING_WAIT_BELL  2u

/* Bits of ring_shared.closed. */
#define RING_CLOSED_WRITER 1u
#define RING_CLOSED_READER 2u

enum ring_outcome {
    RING_OK = 0,
    RING_WOULD_BLOCK, /* full (writer) or empty (reader): try again later */
    RING_PEER_GONE,   /* the other side closed the ring or its process died */
    RING_BROKEN,      /* the shared ring is corrupt; it stays broken */
    RING_TOO_BIG,     /* record larger than ring_max_record(): fragment it */
};

enum ring_role {
    RING_WRITER = 1,
    RING_READER = 2,
};

/*
 * The shared control block, followed directly by `capacity` data bytes.
 *
 *   capacity    written once by ring_shared_init() before the segment is
 *               published (see hamq/shm.h), frozen afterwards; both sides
 *               read it plainly but trust only their own copy taken at open.
 *   write_pos   written only by the writer (release store, in publish);
 *               read by the reader (acquire). Own cache line.
 *   read_pos    written only by the reader (release store, in release);
 *               read by the writer (acquire). Own cache line.
 *   reader_wait written by the reader (arm) and cleared by the writer
 *               (exchange); the futex the reader parks on.
 *   writer_wait the same for a writer facing a full ring.
 *   closed      bits set (fetch_or) by either side on orderly close.
 *   broken      set by either side that detected corruption; sticky.
 * The data bytes need no lock: bytes in [read_pos, write_pos) belong to the
 * reader and are never written by the writer until read_pos moves past them
 * (the release/acquire pairs order the payload writes and reads); the rest
 * belongs to the writer.
 */
struct ring_shared {
    uint32_t capacity; /* data bytes, power of two */
    uint32_t reserved0;
    uint8_t reserved1[RING_CACHE_LINE - 8];
    alignas(RING_CACHE_LINE) _Atomic uint64_t write_pos;
    uint8_t pad_w[RING_CACHE_LINE - 8];
    alignas(RING_CACHE_LINE) _Atomic uint64_t read_pos;
    uint8_t pad_r[RING_CACHE_LINE - 8];
    alignas(RING_CACHE_LINE) _Atomic uint32_t reader_wait;
    _Atomic uint32_t writer_wait;
    _Atomic uint32_t closed;
    _Atomic uint32_t broken;
    uint8_t pad_s[RING_CACHE_LINE - 16];
    /* followed by: uint8_t data[capacity]; */
};

_Static_assert(sizeof(struct ring_shared) == 4 * RING_CACHE_LINE, "ring_shared layout");
_Static_assert(offsetof(struct ring_shared, write_pos) == 1 * RING_CACHE_LINE, "write_pos line");
_Static_assert(offsetof(struct ring_shared, read_pos) == 2 * RING_CACHE_LINE, "read_pos line");
_Static_assert(offsetof(struct ring_shared, reader_wait) == 3 * RING_CACHE_LINE, "wait line");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4, "atomic sizes");

/* A record as handed to the reader: payload points into the ring. */
struct ring_record {
    uint32_t type;
    uint32_t length;
    const uint8_t *payload;
};

/* Process-private handle of one side. Fields are private to ring.c. */
struct ring {
    struct ring_shared *sh;
    uint8_t *data;
    uint64_t mask;
    uint32_t capacity;
    uint32_t max_record;
    enum ring_role role;
    bool broken;
    /* writer: committed (not yet published) position, claim in progress */
    uint64_t pos;          /* writer: committed; reader: next record to read */
    uint64_t cached_peer;  /* writer: read_pos seen; reader: write_pos seen */
    uint64_t claim_pos;    /* writer: start of the current claim, or UINT64_MAX */
    uint64_t released;     /* reader: read_pos last published */
    int peer_pidfd;        /* -1, or a pidfd of the peer (not owned) */
    int bell_fd;           /* -1, or the peer's doorbell (write side, not owned) */
    uint32_t spin;         /* spins before parking in ring_wait */
    uint32_t claim_len;    /* writer: payload length of the current claim */
    int64_t park_slice_ns; /* longest single futex sleep (peer death check) */
    /* counters for tests and stats (this side only) */
    uint64_t parks;         /* futex sleeps entered */
    uint64_t wakes;         /* futex wakes or doorbell writes sent to the peer */
    uint64_t late_wakes;    /* a futex sleep timed out although the peer was ready */
    uint64_t pads;          /* reader: padding records skipped at the wrap */
    const char *broken_why; /* first check that failed on this side, or NULL */
    uint64_t broken_pos;    /* this side's position when it failed */
};

/* Bytes of shared memory a ring of `capacity` data bytes needs. */
size_t ring_shared_size(uint32_t capacity);
/* Checks capacity: a power of two in [RING_MIN_CAPACITY, RING_MAX_CAPACITY]. */
bool ring_capacity_valid(uint32_t capacity);
/* Initialises a zeroed or reused block; only before both sides open it. */
int ring_shared_init(void *mem, uint32_t capacity);

/*
 * Opens one side over an initialised block of mem_size bytes. Returns 0 or
 * -EINVAL (capacity in the block is not valid or does not fit mem_size).
 */
int ring_open(struct ring *r, void *mem, size_t mem_size, enum ring_role role);
/* Orderly close: tells the peer (PEER_GONE once it has drained). */
void ring_close(struct ring *r);
/* Optional: the peer's pidfd (kept, not closed), for PEER_GONE on death. */
void ring_watch_peer(struct ring *r, int pidfd);
/* Optional (writer side): the reader's doorbell fd to write when it is armed. */
void ring_set_bell(struct ring *r, int bell_fd);
/* Spins in ring_wait before parking (default 2000). */
void ring_set_spin(struct ring *r, uint32_t spins);
/* Longest single futex sleep in ring_wait (default 50 ms). */
void ring_set_park_slice(struct ring *r, int64_t slice_ns);
/* Largest payload accepted by a single record. */
uint32_t ring_max_record(const struct ring *r);

/* ---- writer ---- */
/*
 * Zero-copy claim of `length` payload bytes: on RING_OK *payload points to
 * ring memory the caller fills, then ring_commit(). Nothing is visible to the
 * reader until ring_publish(). A new claim without commit discards the old.
 */
enum ring_outcome ring_claim(struct ring *r, uint32_t type, uint32_t length, void **payload);
/* Commits the last claim, possibly shorter (used <= claimed length). */
void ring_commit(struct ring *r, uint32_t used);
/* Copies one record (claim + memcpy + commit); not yet published. */
enum ring_outcome ring_write(struct ring *r, uint32_t type, const void *buf, uint32_t length);
/* Makes every committed record visible: one release store, one wake check. */
enum ring_outcome ring_publish(struct ring *r);
/* ring_write + ring_publish. */
enum ring_outcome ring_send(struct ring *r, uint32_t type, const void *buf, uint32_t length);

/* ---- reader ---- */
/*
 * Next record (padding is skipped). The payload stays valid until
 * ring_read_release(). RING_WOULD_BLOCK when empty, RING_PEER_GONE when empty
 * and the writer closed, RING_BROKEN on a bad record header.
 */
enum ring_outcome ring_read(struct ring *r, struct ring_record *rec);
/* Hands the space of every record read so far back to the writer. */
void ring_read_release(struct ring *r);

/* ---- waiting ---- */
/*
 * Reader: wait until a record is readable; writer: until `need` payload bytes
 * fit. Spins (bounded), then parks on the futex in the segment. Returns
 * RING_OK (ready), RING_WOULD_BLOCK (timeout_ns elapsed), RING_PEER_GONE
 * (peer closed or its pidfd reports death), RING_BROKEN.
 */
enum ring_outcome ring_wait(struct ring *r, uint32_t need, int64_t timeout_ns);
/*
 * Doorbell (epoll) waiting, reader side: arm before epoll_wait. Returns
 * RING_WOULD_BLOCK when armed (nothing to read: sleep), RING_OK when data is
 * already there (do not sleep, the arm was withdrawn), PEER_GONE/BROKEN.
 */
enum ring_outcome ring_arm_bell(struct ring *r);
/*
 * The same for a writer facing a full ring (back-pressure in an epoll loop):
 * RING_WOULD_BLOCK when armed (the reader's ring_read_release() will write
 * the bell set on ITS handle with ring_set_bell), RING_OK when `need` payload
 * bytes already fit.
 */
enum ring_outcome ring_arm_bell_room(struct ring *r, uint32_t need);
/* Withdraws an arming (after waking for another reason). */
void ring_disarm(struct ring *r);

/* Peer state without waiting: true if the peer closed or its pidfd fired. */
bool ring_peer_gone(struct ring *r);
/* Bytes published and not yet released (reader's view, for tests/stats). */
uint64_t ring_used(struct ring *r);
const char *ring_outcome_str(enum ring_outcome o);
/*
 * After RING_BROKEN: which check failed ("record length above the maximum
 * record"...) and this side's position then (for the caller's log); NULL if
 * the ring is not broken on this side.
 */
const char *ring_broken_reason(const struct ring *r, uint64_t *pos);

#endif /* HAMQ_RING_H */
