/*
 * shm — the shared-memory segment of one broker instance: one POSIX shm
 * object /dev/shm/hamq.<instance>, created and initialised by the core
 * (hamq-journal), attached by each worker (hamq-worker@N) to its slot N and
 * read by the supervisor (core health). Also: peer liveness (pidfd, heartbeat
 * age) and the epoll-able doorbells. Uses only libc and hamq/ring.h; returns
 * 0/-errno plus an error string, the caller logs.
 *
 * Layout (offsets from the mapping start):
 *
 *   0                     struct shm_header  (SHM_HEADER_SIZE bytes)
 *   SHM_HEADER_SIZE       slot 0: struct shm_slot, ring worker→core, ring core→worker
 *   + slot_size           slot 1 ...
 *   slot_size = sizeof(struct shm_slot) + 2 * ring_shared_size(ring_size)
 *
 * Publication: the creator sizes the object, writes everything, and stores
 * `version` LAST with a release store; an attacher loads it with acquire, so
 * a non-zero matching version means every other header field and every ring
 * control block is initialised. Attaching checks, in this order, that the
 * object exists, that it is large enough for a header, the magic, the
 * version, then the geometry against the size; each failure has its own
 * message and errno.
 *
 * Compatibility: explicit sizes only; never reorder or resize a field; new
 * fields go into reserved space or at the end; any change of layout or
 * meaning bumps SHM_LAYOUT_VERSION (old attachers then refuse cleanly).
 *
 * Doorbells (epoll): a doorbell is a named FIFO next to the segment,
 * /dev/shm/hamq.<instance>.bell.<name>, opened O_RDWR|O_NONBLOCK by both its
 * reader (who puts it in epoll) and the writers (who write one byte, only
 * when the reader armed its ring, see ring.h). The core has ONE bell ("core")
 * shared by all worker→core rings; worker N has bell "w<N>". Why a FIFO and
 * not an eventfd: see shm/README.md.
 */
#ifndef HAMQ_SHM_H
#define HAMQ_SHM_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hamq/ring.h"

#define SHM_MAGIC          0x314d4853514d4148ULL /* "HAMQSHM1" little-endian */
#define SHM_LAYOUT_VERSION 1u
#define SHM_HEADER_SIZE    128u
#define SHM_SLOT_HDR_SIZE  64u
#define SHM_MAX_SLOTS      1024u
#define SHM_INSTANCE_MAX   64u
#define SHM_ERR_MAX        256u

/*
 * Segment header.
 *   magic, header_size, segment_size, epoch, slot_count, ring_size,
 *   slot_size, core_pid: written by the creator before `version`, frozen
 *                afterwards; read plainly by anyone after the acquire load of
 *                `version`. A new core recreates the segment (new object).
 *   version      written LAST by the creator (release), 0 until then.
 *   core_heartbeat_ns  written by the core only (relaxed store, CLOCK_MONOTONIC
 *                ns); read by workers and the supervisor without lock. A torn
 *                read is impossible (aligned 64-bit atomic).
 */
struct shm_header {
    uint64_t magic;
    _Atomic uint32_t version;
    uint32_t header_size;
    uint64_t segment_size;
    uint64_t epoch;
    uint32_t slot_count;
    uint32_t ring_size;
    uint32_t slot_size;
    int32_t core_pid;
    uint8_t reserved0[RING_CACHE_LINE - 48];
    alignas(RING_CACHE_LINE) _Atomic uint64_t core_heartbeat_ns;
    uint8_t reserved1[RING_CACHE_LINE - 8];
};
_Static_assert(sizeof(struct shm_header) == SHM_HEADER_SIZE, "shm_header size");
_Static_assert(offsetof(struct shm_header, version) == 8, "version offset");
_Static_assert(offsetof(struct shm_header, core_pid) == 44, "core_pid offset");
_Static_assert(offsetof(struct shm_header, core_heartbeat_ns) == 64, "heartbeat offset");

/*
 * Slot header, one per worker, followed by the worker→core ring then the
 * core→worker ring.
 *   worker_pid          written by the worker at attach (relaxed), read by
 *                       the core to watch it; 0 = never attached.
 *   attach_gen          incremented (release) by each attach of a worker to
 *                       this slot, so the core sees a restarted worker.
 *   worker_heartbeat_ns written by the worker only; read by the core.
 */
struct shm_slot {
    _Atomic int32_t worker_pid;
    _Atomic uint32_t attach_gen;
    _Atomic uint64_t worker_heartbeat_ns;
    uint8_t reserved[SHM_SLOT_HDR_SIZE - 16];
};
_Static_assert(sizeof(struct shm_slot) == SHM_SLOT_HDR_SIZE, "shm_slot size");
_Static_assert(SHM_SLOT_HDR_SIZE % RING_CACHE_LINE == 0, "rings start on a cache line");

/* Process-private handle of a mapped segment. */
struct shm_seg {
    struct shm_header *hdr;
    size_t size;
    bool creator;
    uint32_t slot_count; /* copies validated at attach: trust these, */
    uint32_t ring_size;  /* not the shared fields */
    uint32_t slot_size;
    char instance[SHM_INSTANCE_MAX + 1];
};

enum shm_side {
    SHM_SIDE_CORE = 1,
    SHM_SIDE_WORKER = 2,
};

/* Liveness watch of one peer process. */
struct shm_peer {
    pid_t pid;
    int pidfd;                         /* -1 when pidfd_open is unavailable */
    const _Atomic uint64_t *heartbeat; /* the peer's heartbeat in the segment */
    int64_t timeout_ns;                /* heartbeat age that means dead */
};

/* "/hamq.<instance>" (shm_open name); -EINVAL on a bad instance name. */
int shm_name(const char *instance, char *buf, size_t len);
/* Bytes of a segment with this geometry, or 0 if the geometry is invalid. */
size_t shm_segment_size(uint32_t slot_count, uint32_t ring_size);

/* Core: (re)creates and initialises the segment; a stale one is replaced. */
int shm_create(struct shm_seg *s, const char *instance, uint32_t slot_count, uint32_t ring_size,
               uint64_t epoch, char *err, size_t errlen);
/* Anyone: attaches in stages (exists, size, magic, version, geometry). */
int shm_attach(struct shm_seg *s, const char *instance, char *err, size_t errlen);
void shm_detach(struct shm_seg *s);
/* Removes the segment and the bells of its slots (core at clean exit). */
int shm_unlink_instance(const char *instance, uint32_t slot_count);

struct shm_slot *shm_slot_at(struct shm_seg *s, uint32_t slot);
/*
 * Opens the two rings of `slot` for `side`: tx is the ring this side writes,
 * rx the one it reads.
 */
int shm_slot_rings(struct shm_seg *s, uint32_t slot, enum shm_side side, struct ring *tx,
                   struct ring *rx);
/*
 * Worker: claims slot N (pid, heartbeat, new generation returned in *gen) and
 * opens its rings. A re-attach after a restart skips what the core had queued
 * for the dead worker (its connections are gone; the core sees the new
 * generation and releases those deliveries). -EBUSY if another live process
 * holds the slot (a zombie counts as live until its parent reaps it).
 * So the core sends nothing to slot N before it has seen attach_gen change
 * (acquire): records sent earlier may be skipped by the attach.
 */
int shm_worker_attach(struct shm_seg *s, uint32_t slot, struct ring *tx, struct ring *rx,
                      uint32_t *gen);

int64_t shm_now_ns(void);
void shm_core_heartbeat(struct shm_seg *s);
void shm_worker_heartbeat(struct shm_seg *s, uint32_t slot);

/* Watch the core (from a worker) or a worker (from the core). */
int shm_watch_core(struct shm_seg *s, struct shm_peer *p, int64_t timeout_ns);
int shm_watch_worker(struct shm_seg *s, uint32_t slot, struct shm_peer *p, int64_t timeout_ns);
/* True if the peer is dead: pidfd readable, or else heartbeat too old. */
bool shm_peer_dead(const struct shm_peer *p);
void shm_peer_close(struct shm_peer *p);

/* Doorbell FIFO path for `name` ("core", "w0"...). */
int shm_bell_path(const char *instance, const char *name, char *buf, size_t len);
/* Creates if missing and opens (O_RDWR|O_NONBLOCK|O_CLOEXEC); fd or -errno. */
int shm_bell_open(const char *instance, const char *name);
/* Reads out every pending byte; returns how many, or -errno. */
int shm_bell_drain(int fd);

#endif /* HAMQ_SHM_H */
