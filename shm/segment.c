/*
 * segment.c — create/attach the per-instance shm segment, slot rings,
 * heartbeats, peer liveness and doorbells. Layout and publication rules are
 * in include/hamq/shm.h. Uses only libc; errors come back as -errno plus a
 * message in the caller's buffer.
 */
#include "hamq/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool instance_valid(const char *instance)
{
    size_t n = instance ? strlen(instance) : 0;
    if (n == 0 || n > SHM_INSTANCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = instance[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || (c == '.' && i > 0);
        if (!ok)
            return false;
    }
    return true;
}

int shm_name(const char *instance, char *buf, size_t len)
{
    if (!instance_valid(instance))
        return -EINVAL;
    int n = snprintf(buf, len, "/hamq.%s", instance);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static uint32_t slot_size_of(uint32_t ring_size)
{
    return (uint32_t)(SHM_SLOT_HDR_SIZE + 2 * ring_shared_size(ring_size));
}

size_t shm_segment_size(uint32_t slot_count, uint32_t ring_size)
{
    if (slot_count == 0 || slot_count > SHM_MAX_SLOTS || !ring_capacity_valid(ring_size) ||
        ring_size > (64u << 20))
        return 0;
    return SHM_HEADER_SIZE + (size_t)slot_count * slot_size_of(ring_size);
}

int64_t shm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint8_t *slot_base(struct shm_seg *s, uint32_t slot)
{
    return (uint8_t *)s->hdr + SHM_HEADER_SIZE + (size_t)slot * s->slot_size;
}

static void *ring_mem(struct shm_seg *s, uint32_t slot, int which)
{
    return slot_base(s, slot) + SHM_SLOT_HDR_SIZE + (size_t)which * ring_shared_size(s->ring_size);
}

static void seg_fill(struct shm_seg *s, void *map, size_t size, const char *instance, bool creator)
{
    s->hdr = map;
    s->size = size;
    s->creator = creator;
    snprintf(s->instance, sizeof(s->instance), "%s", instance);
}

static void init_contents(struct shm_seg *s, uint64_t epoch)
{
    struct shm_header *h = s->hdr;
    h->magic = SHM_MAGIC;
    h->header_size = SHM_HEADER_SIZE;
    h->segment_size = s->size;
    h->epoch = epoch;
    h->slot_count = s->slot_count;
    h->ring_size = s->ring_size;
    h->slot_size = s->slot_size;
    h->core_pid = (int32_t)getpid();
    atomic_store_explicit(&h->core_heartbeat_ns, (uint64_t)shm_now_ns(), memory_order_relaxed);
    for (uint32_t i = 0; i < s->slot_count; i++) {
        memset(slot_base(s, i), 0, SHM_SLOT_HDR_SIZE);
        ring_shared_init(ring_mem(s, i, 0), s->ring_size);
        ring_shared_init(ring_mem(s, i, 1), s->ring_size);
    }
    atomic_store_explicit(&h->version, SHM_LAYOUT_VERSION, memory_order_release);
}

int shm_create(struct shm_seg *s, const char *instance, uint32_t slot_count, uint32_t ring_size,
               uint64_t epoch, char *err, size_t errlen)
{
    char name[SHM_INSTANCE_MAX + 8];
    memset(s, 0, sizeof(*s));
    if (shm_name(instance, name, sizeof(name)) < 0)
        return fail(err, errlen, -EINVAL, "bad instance name '%s' (1-64 of [A-Za-z0-9._-])",
                    instance ? instance : "(null)");
    size_t size = shm_segment_size(slot_count, ring_size);
    if (size == 0)
        return fail(err, errlen, -EINVAL,
                    "bad geometry: %u slots (1-%u), ring size %u (power of two, 1 KiB-64 MiB)",
                    slot_count, SHM_MAX_SLOTS, ring_size);
    /* A stale segment of a dead core is replaced, never reused. */
    if (shm_unlink(name) < 0 && errno != ENOENT)
        return fail(err, errlen, -errno, "cannot remove stale /dev/shm%s: %s", name,
                    strerror(errno));
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(err, errlen, -errno, "cannot create /dev/shm%s: %s", name, strerror(errno));
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = errno;
        close(fd);
        shm_unlink(name);
        return fail(err, errlen, -e, "cannot size /dev/shm%s to %zu bytes: %s", name, size,
                    strerror(e));
    }
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        shm_unlink(name);
        return fail(err, errlen, -e, "cannot map /dev/shm%s: %s", name, strerror(e));
    }
    seg_fill(s, map, size, instance, true);
    s->slot_count = slot_count;
    s->ring_size = ring_size;
    s->slot_size = slot_size_of(ring_size);
    init_contents(s, epoch);
    return 0;
}

/* Stages 3-5 of attach over a mapping of `size` bytes. */
static int check_header(const struct shm_header *h, size_t size, const char *name, char *err,
                        size_t errlen)
{
    if (h->magic != SHM_MAGIC)
        return fail(err, errlen, -EBADMSG,
                    "/dev/shm%s: bad magic 0x%016llx (expected 0x%016llx): not a hamq segment",
                    name, (unsigned long long)h->magic, (unsigned long long)SHM_MAGIC);
    uint32_t v = atomic_load_explicit(&h->version, memory_order_acquire);
    if (v == 0)
        return fail(err, errlen, -EAGAIN, "/dev/shm%s: not initialised yet (version 0), retry",
                    name);
    if (v != SHM_LAYOUT_VERSION)
        return fail(err, errlen, -EPROTONOSUPPORT,
                    "/dev/shm%s: layout version %u, this build speaks version %u", name, v,
                    SHM_LAYOUT_VERSION);
    size_t want = shm_segment_size(h->slot_count, h->ring_size);
    if (h->header_size != SHM_HEADER_SIZE || want == 0 || want != size || h->segment_size != size ||
        h->slot_size != slot_size_of(h->ring_size))
        return fail(err, errlen, -EBADMSG,
                    "/dev/shm%s: geometry does not match its size (%u slots, ring %u, "
                    "header says %llu bytes, file has %zu)",
                    name, h->slot_count, h->ring_size, (unsigned long long)h->segment_size, size);
    return 0;
}

int shm_attach(struct shm_seg *s, const char *instance, char *err, size_t errlen)
{
    char name[SHM_INSTANCE_MAX + 8];
    memset(s, 0, sizeof(*s));
    if (shm_name(instance, name, sizeof(name)) < 0)
        return fail(err, errlen, -EINVAL, "bad instance name '%s'", instance ? instance : "(null)");
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return fail(err, errlen, -e, "/dev/shm%s does not exist (is hamq-journal running?)",
                        name);
        return fail(err, errlen, -e, "cannot open /dev/shm%s: %s", name, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, -e, "cannot stat /dev/shm%s: %s", name, strerror(e));
    }
    if (st.st_size < (off_t)SHM_HEADER_SIZE) {
        close(fd);
        return fail(err, errlen, -EBADMSG, "/dev/shm%s is too small: %lld bytes, header needs %u",
                    name, (long long)st.st_size, SHM_HEADER_SIZE);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return fail(err, errlen, -e, "cannot map /dev/shm%s: %s", name, strerror(e));
    int rc = check_header(map, size, name, err, errlen);
    if (rc < 0) {
        munmap(map, size);
        return rc;
    }
    seg_fill(s, map, size, instance, false);
    s->slot_count = s->hdr->slot_count;
    s->ring_size = s->hdr->ring_size;
    s->slot_size = slot_size_of(s->ring_size);
    return 0;
}

void shm_detach(struct shm_seg *s)
{
    if (s->hdr)
        munmap(s->hdr, s->size);
    s->hdr = NULL;
}

int shm_unlink_instance(const char *instance, uint32_t slot_count)
{
    char name[SHM_INSTANCE_MAX + 8], path[128], bell[16];
    if (shm_name(instance, name, sizeof(name)) < 0)
        return -EINVAL;
    int rc = shm_unlink(name) < 0 ? -errno : 0;
    if (shm_bell_path(instance, "core", path, sizeof(path)) == 0)
        unlink(path);
    for (uint32_t i = 0; i < slot_count && i < SHM_MAX_SLOTS; i++) {
        snprintf(bell, sizeof(bell), "w%u", i);
        if (shm_bell_path(instance, bell, path, sizeof(path)) == 0)
            unlink(path);
    }
    return rc;
}

struct shm_slot *shm_slot_at(struct shm_seg *s, uint32_t slot)
{
    if (!s->hdr || slot >= s->slot_count)
        return NULL;
    return (struct shm_slot *)(void *)slot_base(s, slot);
}

int shm_slot_rings(struct shm_seg *s, uint32_t slot, enum shm_side side, struct ring *tx,
                   struct ring *rx)
{
    if (!shm_slot_at(s, slot) || (side != SHM_SIDE_CORE && side != SHM_SIDE_WORKER))
        return -EINVAL;
    size_t rsz = ring_shared_size(s->ring_size);
    void *w2c = ring_mem(s, slot, 0), *c2w = ring_mem(s, slot, 1);
    int rc = ring_open(tx, side == SHM_SIDE_WORKER ? w2c : c2w, rsz, RING_WRITER);
    if (rc == 0)
        rc = ring_open(rx, side == SHM_SIDE_WORKER ? c2w : w2c, rsz, RING_READER);
    return rc;
}

int shm_worker_attach(struct shm_seg *s, uint32_t slot, struct ring *tx, struct ring *rx,
                      uint32_t *gen)
{
    struct shm_slot *sl = shm_slot_at(s, slot);
    if (!sl)
        return -EINVAL;
    /* Two live writers on one ring would corrupt it: refuse a busy slot. */
    pid_t old = atomic_load_explicit(&sl->worker_pid, memory_order_relaxed);
    if (old > 0 && old != getpid() && (kill(old, 0) == 0 || errno == EPERM))
        return -EBUSY;
    int rc = shm_slot_rings(s, slot, SHM_SIDE_WORKER, tx, rx);
    if (rc < 0)
        return rc;
    /* Drop what was queued for a previous incarnation of this worker. */
    uint64_t wp = atomic_load_explicit(&rx->sh->write_pos, memory_order_acquire);
    rx->pos = rx->released = rx->cached_peer = wp;
    atomic_store_explicit(&rx->sh->read_pos, wp, memory_order_release);
    atomic_fetch_and_explicit(&tx->sh->closed, ~(uint32_t)RING_CLOSED_WRITER, memory_order_relaxed);
    atomic_fetch_and_explicit(&rx->sh->closed, ~(uint32_t)RING_CLOSED_READER, memory_order_relaxed);
    atomic_store_explicit(&sl->worker_pid, (int32_t)getpid(), memory_order_relaxed);
    atomic_store_explicit(&sl->worker_heartbeat_ns, (uint64_t)shm_now_ns(), memory_order_relaxed);
    uint32_t g = atomic_fetch_add_explicit(&sl->attach_gen, 1, memory_order_release) + 1;
    if (gen)
        *gen = g;
    return 0;
}

void shm_core_heartbeat(struct shm_seg *s)
{
    if (s->hdr)
        atomic_store_explicit(&s->hdr->core_heartbeat_ns, (uint64_t)shm_now_ns(),
                              memory_order_relaxed);
}

void shm_worker_heartbeat(struct shm_seg *s, uint32_t slot)
{
    struct shm_slot *sl = shm_slot_at(s, slot);
    if (sl)
        atomic_store_explicit(&sl->worker_heartbeat_ns, (uint64_t)shm_now_ns(),
                              memory_order_relaxed);
}

static int peer_init(struct shm_peer *p, pid_t pid, const _Atomic uint64_t *hb, int64_t timeout)
{
    p->pid = pid;
    p->heartbeat = hb;
    p->timeout_ns = timeout;
    p->pidfd = -1;
    if (pid <= 0)
        return -ESRCH;
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        p->pidfd = (int)fd;
        return 0;
    }
    /* ESRCH: already gone. Other errors (ENOSYS...): heartbeat age only. */
    return errno == ESRCH ? -ESRCH : 0;
}

int shm_watch_core(struct shm_seg *s, struct shm_peer *p, int64_t timeout_ns)
{
    if (!s->hdr)
        return -EINVAL;
    return peer_init(p, s->hdr->core_pid, &s->hdr->core_heartbeat_ns, timeout_ns);
}

int shm_watch_worker(struct shm_seg *s, uint32_t slot, struct shm_peer *p, int64_t timeout_ns)
{
    struct shm_slot *sl = shm_slot_at(s, slot);
    if (!sl)
        return -EINVAL;
    pid_t pid = atomic_load_explicit(&sl->worker_pid, memory_order_relaxed);
    return peer_init(p, pid, &sl->worker_heartbeat_ns, timeout_ns);
}

bool shm_peer_dead(const struct shm_peer *p)
{
    if (p->pidfd >= 0) {
        struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
        return poll(&pf, 1, 0) > 0;
    }
    if (!p->heartbeat || p->pid <= 0)
        return true;
    uint64_t hb = atomic_load_explicit(p->heartbeat, memory_order_relaxed);
    return shm_now_ns() - (int64_t)hb > p->timeout_ns;
}

void shm_peer_close(struct shm_peer *p)
{
    if (p->pidfd >= 0)
        close(p->pidfd);
    p->pidfd = -1;
}

int shm_bell_path(const char *instance, const char *name, char *buf, size_t len)
{
    if (!instance_valid(instance) || !instance_valid(name))
        return -EINVAL;
    int n = snprintf(buf, len, "/dev/shm/hamq.%s.bell.%s", instance, name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int shm_bell_open(const char *instance, const char *name)
{
    char path[160];
    int rc = shm_bell_path(instance, name, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (mkfifo(path, 0600) < 0 && errno != EEXIST)
        return -errno;
    /* O_RDWR on a FIFO never blocks and never gets SIGPIPE (Linux). */
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
        close(fd);
        return -ENOTSUP;
    }
    return fd;
}

int shm_bell_drain(int fd)
{
    uint8_t buf[256];
    int total = 0;
    for (int i = 0; i < 1024; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            total += (int)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN)
            return -errno;
        break;
    }
    return total;
}
