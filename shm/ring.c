/*
 * ring.c — SPSC ring of variable-length records in shared memory.
 * The format, the shared/private split and the wake-up argument are in
 * include/hamq/ring.h; this file keeps them. Uses only libc.
 */
#include "hamq/ring.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SPIN     2000u
#define DEFAULT_SLICE_NS (50 * 1000 * 1000LL)
#define NO_CLAIM         UINT64_MAX

/* ---- named cross-process atomics: every shared load/store goes here ---- */

static inline uint64_t pos_load_acquire(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_acquire);
}

static inline void pos_store_release(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_release);
}

static inline uint32_t word_load_relaxed(const _Atomic uint32_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline uint32_t word_load_acquire(const _Atomic uint32_t *p)
{
    return atomic_load_explicit(p, memory_order_acquire);
}

static inline void word_store_relaxed(_Atomic uint32_t *p, uint32_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline uint32_t word_exchange(_Atomic uint32_t *p, uint32_t v)
{
    return atomic_exchange_explicit(p, v, memory_order_seq_cst);
}

static inline void word_or_release(_Atomic uint32_t *p, uint32_t bits)
{
    atomic_fetch_or_explicit(p, bits, memory_order_release);
}

/* The store→load barrier of the Dekker pairing (see ring.h). */
static inline void fence_store_load(void)
{
    atomic_thread_fence(memory_order_seq_cst);
}

/* A record header is read exactly once: the peer may change it later. */
static inline uint32_t hdr_load(const uint8_t *p)
{
    return __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_RELAXED);
}

static inline void hdr_store(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELAXED);
}

#if defined(__x86_64__) || defined(__i386__)
static inline void cpu_relax(void)
{
    __builtin_ia32_pause();
}
#else
static inline void cpu_relax(void)
{
    atomic_signal_fence(memory_order_seq_cst);
}
#endif

static inline uint64_t rec_size(uint32_t length)
{
    return ((uint64_t)length + RING_HEADER_BYTES + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- futex and doorbell (cold path) ---- */

static int futex_wait(_Atomic uint32_t *w, uint32_t expected, int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
    long rc = syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expected, &ts, NULL, 0);
    return rc == 0 ? 0 : -errno;
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Clears the peer's waiter word and wakes it the way it sleeps. */
static void wake_peer(struct ring *r, _Atomic uint32_t *w)
{
    uint32_t old = word_exchange(w, RING_WAIT_NONE);
    if (old == RING_WAIT_FUTEX) {
        futex_wake(w);
        r->wakes++;
    } else if (old == RING_WAIT_BELL && r->bell_fd >= 0) {
        const uint8_t one = 1;
        /* EAGAIN: the pipe already holds unread bytes, the reader will wake. */
        ssize_t n = write(r->bell_fd, &one, 1);
        (void)n;
        r->wakes++;
    }
}

/* ---- setup ---- */

bool ring_capacity_valid(uint32_t capacity)
{
    return capacity >= RING_MIN_CAPACITY && capacity <= RING_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

size_t ring_shared_size(uint32_t capacity)
{
    return sizeof(struct ring_shared) + capacity;
}

int ring_shared_init(void *mem, uint32_t capacity)
{
    if (!mem || !ring_capacity_valid(capacity))
        return -EINVAL;
    struct ring_shared *sh = mem;
    memset(sh, 0, sizeof(*sh));
    sh->capacity = capacity;
    atomic_init(&sh->write_pos, 0);
    atomic_init(&sh->read_pos, 0);
    atomic_init(&sh->reader_wait, RING_WAIT_NONE);
    atomic_init(&sh->writer_wait, RING_WAIT_NONE);
    atomic_init(&sh->closed, 0);
    atomic_init(&sh->broken, 0);
    return 0;
}

int ring_open(struct ring *r, void *mem, size_t mem_size, enum ring_role role)
{
    if (!r || !mem || (role != RING_WRITER && role != RING_READER))
        return -EINVAL;
    struct ring_shared *sh = mem;
    uint32_t cap = sh->capacity;
    if (mem_size < sizeof(*sh) || !ring_capacity_valid(cap) || ring_shared_size(cap) > mem_size)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    r->sh = sh;
    r->data = (uint8_t *)mem + sizeof(*sh);
    r->capacity = cap;
    r->mask = cap - 1;
    r->max_record = cap / 4 - RING_HEADER_BYTES;
    r->role = role;
    r->claim_pos = NO_CLAIM;
    r->peer_pidfd = -1;
    r->bell_fd = -1;
    r->spin = DEFAULT_SPIN;
    r->park_slice_ns = DEFAULT_SLICE_NS;
    if (role == RING_WRITER) {
        r->pos = pos_load_acquire(&sh->write_pos);
        r->cached_peer = pos_load_acquire(&sh->read_pos);
    } else {
        r->pos = pos_load_acquire(&sh->read_pos);
        r->cached_peer = r->pos;
    }
    r->released = r->pos;
    if ((r->pos & (RING_ALIGN - 1)) != 0)
        r->broken = true;
    return 0;
}

void ring_close(struct ring *r)
{
    if (!r->sh)
        return;
    if (r->role == RING_WRITER) {
        ring_publish(r);
        word_or_release(&r->sh->closed, RING_CLOSED_WRITER);
        fence_store_load();
        wake_peer(r, &r->sh->reader_wait);
    } else {
        ring_read_release(r);
        word_or_release(&r->sh->closed, RING_CLOSED_READER);
        fence_store_load();
        wake_peer(r, &r->sh->writer_wait);
    }
    r->sh = NULL;
}

void ring_watch_peer(struct ring *r, int pidfd)
{
    r->peer_pidfd = pidfd;
}

void ring_set_bell(struct ring *r, int bell_fd)
{
    r->bell_fd = bell_fd;
}

void ring_set_spin(struct ring *r, uint32_t spins)
{
    r->spin = spins;
}

void ring_set_park_slice(struct ring *r, int64_t slice_ns)
{
    r->park_slice_ns = slice_ns > 0 ? slice_ns : DEFAULT_SLICE_NS;
}

uint32_t ring_max_record(const struct ring *r)
{
    return r->max_record;
}

/* why: a static string saying which check failed, for the caller's log. */
static enum ring_outcome mark_broken(struct ring *r, const char *why)
{
    if (!r->broken) {
        r->broken_why = why;
        r->broken_pos = r->pos;
    }
    r->broken = true;
    if (r->sh)
        word_or_release(&r->sh->broken, 1);
    return RING_BROKEN;
}

static bool is_broken(struct ring *r)
{
    if (!r->broken && r->sh && word_load_relaxed(&r->sh->broken) != 0)
        r->broken = true;
    return r->broken;
}

bool ring_peer_gone(struct ring *r)
{
    if (!r->sh)
        return true;
    uint32_t bit = r->role == RING_WRITER ? RING_CLOSED_READER : RING_CLOSED_WRITER;
    if (word_load_acquire(&r->sh->closed) & bit)
        return true;
    if (r->peer_pidfd < 0)
        return false;
    struct pollfd p = {.fd = r->peer_pidfd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

/* ---- writer ---- */

/* Bytes a claim of rec bytes takes from position pos, padding included. */
static uint64_t claim_need(const struct ring *r, uint64_t pos, uint64_t rec)
{
    uint64_t to_end = r->capacity - (pos & r->mask);
    return to_end < rec ? to_end + rec : rec;
}

/* True if `need` bytes fit; re-reads read_pos only when they look short. */
static enum ring_outcome writer_room(struct ring *r, uint64_t need)
{
    if (r->pos + need - r->cached_peer <= r->capacity)
        return RING_OK;
    if (is_broken(r))
        return RING_BROKEN;
    if (word_load_relaxed(&r->sh->closed) & RING_CLOSED_READER)
        return RING_PEER_GONE;
    uint64_t rp = pos_load_acquire(&r->sh->read_pos);
    if (rp > r->pos || r->pos - rp > r->capacity || (rp & (RING_ALIGN - 1)))
        return mark_broken(r, "read position outside [write position - capacity, write position]");
    r->cached_peer = rp;
    if (r->pos + need - rp <= r->capacity)
        return RING_OK;
    return RING_WOULD_BLOCK;
}

enum ring_outcome ring_claim(struct ring *r, uint32_t type, uint32_t length, void **payload)
{
    if (r->broken || !r->sh)
        return RING_BROKEN;
    if (length > r->max_record || type == RING_TYPE_PAD)
        return RING_TOO_BIG;
    uint64_t rec = rec_size(length);
    uint64_t pos = r->pos;
    enum ring_outcome o = writer_room(r, claim_need(r, pos, rec));
    if (o != RING_OK)
        return o;
    uint64_t off = pos & r->mask;
    uint64_t to_end = r->capacity - off;
    if (to_end < rec) {
        hdr_store(r->data + off, (uint32_t)(to_end - RING_HEADER_BYTES));
        hdr_store(r->data + off + 4, RING_TYPE_PAD);
        pos += to_end;
        off = 0;
    }
    hdr_store(r->data + off, length);
    hdr_store(r->data + off + 4, type);
    r->claim_pos = pos;
    r->claim_len = length;
    *payload = r->data + off + RING_HEADER_BYTES;
    return RING_OK;
}

void ring_commit(struct ring *r, uint32_t used)
{
    if (r->claim_pos == NO_CLAIM)
        return;
    if (used < r->claim_len)
        hdr_store(r->data + (r->claim_pos & r->mask), used);
    else
        used = r->claim_len;
    r->pos = r->claim_pos + rec_size(used);
    r->claim_pos = NO_CLAIM;
}

enum ring_outcome ring_write(struct ring *r, uint32_t type, const void *buf, uint32_t length)
{
    void *p;
    enum ring_outcome o = ring_claim(r, type, length, &p);
    if (o != RING_OK)
        return o;
    if (length)
        memcpy(p, buf, length);
    ring_commit(r, length);
    return RING_OK;
}

enum ring_outcome ring_publish(struct ring *r)
{
    if (!r->sh || is_broken(r))
        return RING_BROKEN;
    if (word_load_relaxed(&r->sh->closed) & RING_CLOSED_READER)
        return RING_PEER_GONE;
    if (r->pos == r->released)
        return RING_OK;
    pos_store_release(&r->sh->write_pos, r->pos);
    r->released = r->pos;
    fence_store_load();
    if (word_load_relaxed(&r->sh->reader_wait) != RING_WAIT_NONE)
        wake_peer(r, &r->sh->reader_wait);
    return RING_OK;
}

enum ring_outcome ring_send(struct ring *r, uint32_t type, const void *buf, uint32_t length)
{
    enum ring_outcome o = ring_write(r, type, buf, length);
    return o == RING_OK ? ring_publish(r) : o;
}

/* ---- reader ---- */

/* Re-reads write_pos; RING_WOULD_BLOCK if nothing new. */
static enum ring_outcome reader_refresh(struct ring *r)
{
    uint64_t wp = pos_load_acquire(&r->sh->write_pos);
    if (wp < r->pos || wp - r->released > r->capacity || (wp & (RING_ALIGN - 1)))
        return mark_broken(r, "write position behind the reader, past capacity, or misaligned");
    r->cached_peer = wp;
    return wp == r->pos ? RING_WOULD_BLOCK : RING_OK;
}

/* Nothing readable: closed writer → PEER_GONE once drained, else WOULD_BLOCK. */
static enum ring_outcome reader_empty(struct ring *r)
{
    if (!(word_load_acquire(&r->sh->closed) & RING_CLOSED_WRITER))
        return RING_WOULD_BLOCK;
    enum ring_outcome o = reader_refresh(r); /* records published before close */
    return o == RING_WOULD_BLOCK ? RING_PEER_GONE : o;
}

enum ring_outcome ring_read(struct ring *r, struct ring_record *rec)
{
    if (r->broken || !r->sh)
        return RING_BROKEN;
    for (;;) {
        if (r->pos == r->cached_peer) {
            if (is_broken(r))
                return RING_BROKEN;
            enum ring_outcome o = reader_refresh(r);
            if (o == RING_WOULD_BLOCK)
                return reader_empty(r);
            if (o != RING_OK)
                return o;
        }
        uint64_t off = r->pos & r->mask;
        uint64_t to_end = r->capacity - off;
        uint64_t avail = r->cached_peer - r->pos;
        uint32_t len = hdr_load(r->data + off);
        uint32_t type = hdr_load(r->data + off + 4);
        if (type == RING_TYPE_PAD) {
            if ((uint64_t)len + RING_HEADER_BYTES != to_end || to_end > avail)
                return mark_broken(r, "padding record does not end at the end of the ring");
            r->pos += to_end;
            r->pads++;
            continue;
        }
        uint64_t size = rec_size(len);
        if (len > r->max_record || size > to_end || size > avail)
            return mark_broken(r, len > r->max_record ? "record length above the maximum record"
                                  : size > avail      ? "record length past the published bytes"
                                                      : "record crosses the end of the ring");
        rec->type = type;
        rec->length = len;
        rec->payload = r->data + off + RING_HEADER_BYTES;
        r->pos += size;
        return RING_OK;
    }
}

void ring_read_release(struct ring *r)
{
    if (!r->sh || r->pos == r->released)
        return;
    pos_store_release(&r->sh->read_pos, r->pos);
    r->released = r->pos;
    fence_store_load();
    if (word_load_relaxed(&r->sh->writer_wait) != RING_WAIT_NONE)
        wake_peer(r, &r->sh->writer_wait);
}

uint64_t ring_used(struct ring *r)
{
    if (!r->sh)
        return 0;
    return pos_load_acquire(&r->sh->write_pos) - pos_load_acquire(&r->sh->read_pos);
}

/* ---- waiting ---- */

/* RING_OK when this side can proceed (a record / `need` bytes of room). */
static enum ring_outcome side_ready(struct ring *r, uint32_t need)
{
    if (is_broken(r))
        return RING_BROKEN;
    if (r->role == RING_READER) {
        if (r->pos != r->cached_peer)
            return RING_OK;
        enum ring_outcome o = reader_refresh(r);
        return o == RING_WOULD_BLOCK ? reader_empty(r) : o;
    }
    if (need > r->max_record)
        return RING_TOO_BIG;
    if (word_load_relaxed(&r->sh->closed) & RING_CLOSED_READER)
        return RING_PEER_GONE;
    return writer_room(r, claim_need(r, r->pos, rec_size(need)));
}

static _Atomic uint32_t *my_wait_word(struct ring *r)
{
    return r->role == RING_READER ? &r->sh->reader_wait : &r->sh->writer_wait;
}

/*
 * While a reader spins, ask for the line the next record will land in, so
 * that its transfer overlaps the one of write_pos (one miss, not two, per
 * hand-off). A hint only: it never reads the bytes.
 */
static inline void spin_prefetch(const struct ring *r)
{
    if (r->role == RING_READER)
        __builtin_prefetch(r->data + (r->pos & r->mask), 0, 3);
}

/* Arms, re-checks (Dekker), sleeps at most slice_ns. */
static enum ring_outcome park_once(struct ring *r, uint32_t need, int64_t slice_ns)
{
    _Atomic uint32_t *w = my_wait_word(r);
    word_store_relaxed(w, RING_WAIT_FUTEX);
    fence_store_load();
    enum ring_outcome o = side_ready(r, need);
    if (o != RING_WOULD_BLOCK) {
        word_store_relaxed(w, RING_WAIT_NONE);
        return o;
    }
    r->parks++;
    int rc = futex_wait(w, RING_WAIT_FUTEX, slice_ns);
    word_store_relaxed(w, RING_WAIT_NONE);
    o = side_ready(r, need);
    if (rc == -ETIMEDOUT && o == RING_OK)
        r->late_wakes++;
    return o;
}

enum ring_outcome ring_wait(struct ring *r, uint32_t need, int64_t timeout_ns)
{
    if (!r->sh)
        return RING_BROKEN;
    enum ring_outcome o = RING_WOULD_BLOCK;
    for (uint32_t i = 0; i < r->spin; i++) {
        o = side_ready(r, need);
        if (o != RING_WOULD_BLOCK)
            return o;
        spin_prefetch(r);
        cpu_relax();
    }
    int64_t deadline = now_ns() + timeout_ns;
    for (;;) {
        if (ring_peer_gone(r)) {
            o = side_ready(r, need); /* a reader drains what was published */
            return o == RING_WOULD_BLOCK ? RING_PEER_GONE : o;
        }
        int64_t left = deadline - now_ns();
        if (left <= 0)
            return side_ready(r, need);
        o = park_once(r, need, left < r->park_slice_ns ? left : r->park_slice_ns);
        if (o != RING_WOULD_BLOCK)
            return o;
    }
}

static enum ring_outcome arm_bell(struct ring *r, uint32_t need)
{
    _Atomic uint32_t *w = my_wait_word(r);
    word_store_relaxed(w, RING_WAIT_BELL);
    fence_store_load();
    enum ring_outcome o = side_ready(r, need);
    if (o != RING_WOULD_BLOCK)
        word_store_relaxed(w, RING_WAIT_NONE);
    return o;
}

enum ring_outcome ring_arm_bell(struct ring *r)
{
    if (!r->sh || r->role != RING_READER)
        return RING_BROKEN;
    return arm_bell(r, 0);
}

enum ring_outcome ring_arm_bell_room(struct ring *r, uint32_t need)
{
    if (!r->sh || r->role != RING_WRITER)
        return RING_BROKEN;
    return arm_bell(r, need);
}

void ring_disarm(struct ring *r)
{
    if (r->sh)
        word_store_relaxed(my_wait_word(r), RING_WAIT_NONE);
}

const char *ring_broken_reason(const struct ring *r, uint64_t *pos)
{
    if (pos)
        *pos = r->broken_pos;
    if (!r->broken)
        return NULL;
    return r->broken_why ? r->broken_why : "marked broken by the peer";
}

const char *ring_outcome_str(enum ring_outcome o)
{
    switch (o) {
    case RING_OK:
        return "ok";
    case RING_WOULD_BLOCK:
        return "would block";
    case RING_PEER_GONE:
        return "peer gone";
    case RING_BROKEN:
        return "broken";
    case RING_TOO_BIG:
        return "too big";
    }
    return "unknown";
}
