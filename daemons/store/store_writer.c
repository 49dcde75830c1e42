/*
 * store_writer — the append buffer, libaio batches and group commit.
 *
 * Records are copied into the filling buffer (struct wbuf) of the current segment:
 * no syscall. A buffer covers the file from a block-aligned offset; when a batch is
 * submitted the next filling buffer starts at the block holding the end of the last
 * record and carries that block's bytes, so the next write rewrites them identically
 * (O_DIRECT writes whole blocks). At most one batch is in flight; a batch holds at
 * most one buffer per segment (the filling buffer grows instead of splitting), so
 * two writes of one batch never overlap.
 *
 * Durability. Both modes below run inside the epoll loop without threads:
 *  - STORE_SYNC_DSYNC: each write carries RWF_DSYNC (aio_rw_flags); its completion
 *    means data + the metadata needed to read it are durable. One completion per
 *    batch and segment.
 *  - STORE_SYNC_FDATASYNC: the writes complete, then one IOCB_CMD_FDSYNC per file is
 *    submitted through the same context; its completion means durable. Two round
 *    trips to the device queue per batch.
 * An O_DIRECT completion alone is NOT durable (the disk has a volatile write cache),
 * which is why one of these is always used. Both are equally correct: for O_DIRECT
 * on ext4 the kernel implements RWF_DSYNC as "write, then the same flush as
 * fdatasync" (and segments are fresh fallocated extents, so every batch also
 * commits their unwritten->written conversion). STORE_SYNC_DEFAULT picks FDATASYNC:
 * over 8 runs of journal_bench (full and --sync-compare) on this machine's shared
 * ext4/virtio disk, write+FDSYNC had the lower p50 latency in 5 and the higher
 * appends/s in most of the 1/16/256-appender columns, though runs differ among
 * themselves more than the two modes do (RWF_DSYNC avoids one wake-up of the aio
 * fsync worker and won the runs under the heaviest load). It also matches the
 * config default ([journal] sync = fdatasync); `[journal] sync = dsync` selects
 * the other. Figures in daemons/store/README.md.
 *
 * Fallback: where open(O_DIRECT) is refused (EINVAL) or the store is on tmpfs
 * (which accepts O_DIRECT but never runs it asynchronously and checks no alignment),
 * the same aio path is used on a buffered fd: io_submit then performs the write and
 * the sync synchronously inside the call. Logged once.
 *
 * Segment roll: the next segment is preallocated (fallocate, header, rename) when
 * the previous batch completes, outside the append path; the roll itself only
 * switches fds after re-reading store.epoch (fencing).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crc32c.h"
#include "hamq/log.h"
#include "store_int.h"

#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif

/* --- fds per segment --- */

static struct store_segfd *segfd_get(struct store *s, uint64_t seq, bool create)
{
    size_t lo = 0, hi = s->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->segs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->nsegs && s->segs[lo].seq == seq)
        return &s->segs[lo];
    if (!create)
        return NULL;
    struct store_segfd *n = realloc(s->segs, (s->nsegs + 1) * sizeof *n);
    if (!n)
        return NULL;
    s->segs = n;
    memmove(&n[lo + 1], &n[lo], (s->nsegs - lo) * sizeof *n);
    s->nsegs++;
    n[lo] = (struct store_segfd){.seq = seq, .wfd = -1, .rfd = -1};
    return &n[lo];
}

/*
 * Read fds stay open while they are used, but at most max_rfds at once (128, or a
 * quarter of RLIMIT_NOFILE if that is lower; a store of thousands of segments must
 * not run out of descriptors): past that, the read fd of another segment is
 * closed, and reopened when needed again.
 */

static void rfd_make_room(struct store *s, uint64_t keep)
{
    size_t open_n = 0;
    for (size_t i = 0; i < s->nsegs; i++)
        open_n += s->segs[i].rfd >= 0;
    for (size_t i = 0; i < s->nsegs && open_n >= s->max_rfds; i++)
        if (s->segs[i].rfd >= 0 && s->segs[i].seq != keep) {
            close(s->segs[i].rfd);
            s->segs[i].rfd = -1;
            open_n--;
        }
}

int store_seg_rfd(struct store *s, uint64_t seq)
{
    struct store_segfd *g = segfd_get(s, seq, true);
    if (!g)
        return -ENOMEM;
    if (g->rfd < 0) {
        rfd_make_room(s, seq);
        char path[4200];
        seg_name(path, sizeof path, s->jdir, seq);
        g->rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (g->rfd < 0)
            return -errno;
    }
    return g->rfd;
}

int store_seg_forget(struct store *s, uint64_t seq)
{
    struct store_segfd *g = segfd_get(s, seq, false);
    if (!g)
        return 0;
    if (g->rfd >= 0)
        close(g->rfd);
    if (g->wfd >= 0)
        close(g->wfd);
    size_t i = (size_t)(g - s->segs);
    memmove(&s->segs[i], &s->segs[i + 1], (s->nsegs - i - 1) * sizeof *g);
    s->nsegs--;
    return 0;
}

static void log_fallback_once(const char *dir, const char *why)
{
    static int logged;
    if (!logged++)
        log_notice("store: %s: %s; using buffered writes + sync (no O_DIRECT)", dir, why);
}

static int seg_wfd(struct store *s, uint64_t seq, int *fd)
{
    struct store_segfd *g = segfd_get(s, seq, true);
    if (!g)
        return -ENOMEM;
    if (g->wfd < 0) {
        char path[4200];
        seg_name(path, sizeof path, s->jdir, seq);
        int flags = O_RDWR | O_CLOEXEC;
        g->wfd = open(path, flags | (s->direct ? O_DIRECT : 0));
        if (g->wfd < 0 && errno == EINVAL && s->direct) {
            s->direct = false;
            log_fallback_once(s->jdir, "the file system refuses O_DIRECT");
            g->wfd = open(path, flags);
        }
        if (g->wfd < 0)
            return -errno;
    }
    *fd = g->wfd;
    return 0;
}

/* --- buffers --- */

static struct wbuf *wbuf_new(struct store *s, size_t need)
{
    size_t cap = s->o.write_buffer_size;
    while (cap < need)
        cap *= 2;
    struct wbuf *b = s->freelist;
    if (b && b->cap >= cap) {
        s->freelist = b->next;
        s->nfree--;
    } else {
        b = calloc(1, sizeof *b);
        if (!b)
            return NULL;
        if (posix_memalign((void **)&b->data, JNL_BLOCK, cap) != 0) {
            free(b);
            return NULL;
        }
        b->cap = cap;
    }
    b->next = NULL;
    b->len = 0;
    b->last_lsn = 0;
    return b;
}

static void wbuf_release(struct store *s, struct wbuf *b)
{
    if (s->nfree < 4 && b->cap <= s->o.write_buffer_size * 4) {
        b->next = s->freelist;
        s->freelist = b;
        s->nfree++;
        return;
    }
    free(b->data);
    free(b);
}

static void wbuf_free_list(struct wbuf *b)
{
    while (b) {
        struct wbuf *n = b->next;
        free(b->data);
        free(b);
        b = n;
    }
}

static int wbuf_grow(struct wbuf *b, size_t need)
{
    size_t cap = b->cap;
    while (cap < need)
        cap *= 2;
    uint8_t *d;
    if (posix_memalign((void **)&d, JNL_BLOCK, cap) != 0)
        return -ENOMEM;
    memcpy(d, b->data, b->len);
    free(b->data);
    b->data = d;
    b->cap = cap;
    return 0;
}

/* A new filling buffer for cur_seq at cur_off, carrying the bytes of its block. */
static int fill_start(struct store *s, const uint8_t *carry_from, uint64_t carry_file_off)
{
    uint64_t base = s->cur_off & ~(uint64_t)(JNL_BLOCK - 1);
    struct wbuf *b = wbuf_new(s, JNL_BLOCK);
    if (!b)
        return -ENOMEM;
    int r = seg_wfd(s, s->cur_seq, &b->fd);
    if (r < 0) {
        wbuf_release(s, b);
        return r;
    }
    b->seq = s->cur_seq;
    b->file_off = base;
    b->len = (size_t)(s->cur_off - base);
    memset(b->data, 0, JNL_BLOCK);
    if (b->len && carry_from) {
        memcpy(b->data, carry_from + (base - carry_file_off), b->len);
    } else if (b->len) {
        int fd = store_seg_rfd(s, s->cur_seq);
        if (fd < 0 || pread(fd, b->data, b->len, (off_t)base) != (ssize_t)b->len) {
            wbuf_release(s, b);
            return fd < 0 ? fd : -EIO;
        }
    }
    s->fill = b;
    return 0;
}

/* --- epoch, preallocation, roll --- */

static int prealloc_next(struct store *s)
{
    if (s->next_seq_ready || s->fenced)
        return 0;
    int f = store_check_epoch(s);
    if (f != 0)
        return f < 0 ? f : -ESTALE;
    char err[512];
    int r = seg_create(s->jdir, JNL_KIND_MESSAGES, s->cur_seq + 1, s->epoch, s->o.segment_size,
                       err, sizeof err);
    if (r < 0) {
        log_err("store: cannot preallocate the next segment: %s", err);
        return r;
    }
    s->next_seq_ready = s->cur_seq + 1;
    int fd;
    (void)seg_wfd(s, s->next_seq_ready, &fd); /* opened now, not at the roll (retried there) */
    return 0;
}

static void sealed_push(struct store *s, struct wbuf *b)
{
    struct wbuf **p = &s->sealed;
    while (*p)
        p = &(*p)->next;
    b->next = NULL;
    *p = b;
}

static int roll(struct store *s)
{
    int r = prealloc_next(s); /* normally done already: then only the epoch check */
    if (r < 0)
        return r;
    int f = store_check_epoch(s);
    if (f != 0)
        return f < 0 ? f : -ESTALE;
    if (s->fill->last_lsn)
        sealed_push(s, s->fill);
    else
        wbuf_release(s, s->fill);
    s->fill = NULL;
    s->cur_seq = s->next_seq_ready;
    s->cur_off = JNL_DATA_OFFSET;
    s->next_seq_ready = 0;
    store_crash_point("roll");
    r = fill_start(s, NULL, 0);
    if (r < 0)
        s->failed = r; /* no buffer to append into: the writer cannot go on */
    return r;
}

/* --- append --- */

int writer_append(struct store *s, uint16_t type, uint16_t flags, uint64_t tx_id, const void *p1,
                  size_t l1, const void *p2, size_t l2, uint64_t *lsn_out)
{
    if (s->fenced)
        return -ESTALE;
    if (s->failed)
        return s->failed;
    uint64_t len = (uint64_t)l1 + l2;
    uint64_t size = jnl_rec_size(len);
    if (len > UINT32_MAX || size > s->o.segment_size - JNL_DATA_OFFSET)
        return -EMSGSIZE;
    if (s->cur_off + size > s->o.segment_size) {
        int r = roll(s);
        if (r < 0)
            return r;
    }
    struct wbuf *b = s->fill;
    size_t at = (size_t)(s->cur_off - b->file_off);
    if (at + size > b->cap) {
        int r = wbuf_grow(b, at + size);
        if (r < 0)
            return r;
    }
    struct jnl_rec_header h = {
        .length = (uint32_t)len,
        .type = type,
        .flags = flags,
        .lsn = s->next_lsn,
        .synced_lsn = s->durable_lsn,
        .tx_id = tx_id,
    };
    uint8_t *dst = b->data + at;
    uint8_t *pl = dst + sizeof h;
    if (l1)
        memcpy(pl, p1, l1);
    if (l2)
        memcpy(pl + l1, p2, l2);
    memset(pl + len, 0, size - sizeof h - len);
    h.crc = crc32c(crc32c(0, &h, sizeof h), pl, len);
    memcpy(dst, &h, sizeof h);
    int r = idx_apply(&s->idx, &h, pl, s->cur_seq, (uint32_t)s->cur_off);
    if (r < 0)
        return r; /* nothing handed out: the bytes are overwritten by the next record */
    b->len = at + size;
    b->last_lsn = s->next_lsn;
    s->last_rec_seq = s->cur_seq;
    s->last_rec_off = s->cur_off;
    if (lsn_out)
        *lsn_out = s->next_lsn;
    s->next_lsn++;
    s->cur_off += size;
    s->bytes_since_ckpt += size;
    return 0;
}

int writer_read_buffered(struct store *s, uint64_t seq, uint64_t off, void *dst, size_t len)
{
    struct wbuf *lists[3] = {s->fill, s->sealed, s->inflight};
    for (int k = 0; k < 3; k++)
        for (struct wbuf *b = lists[k]; b; b = (k == 0 ? NULL : b->next))
            if (b->seq == seq && off >= b->file_off && off + len <= b->file_off + b->len) {
                memcpy(dst, b->data + (off - b->file_off), len);
                return 1;
            }
    return 0;
}

/* --- submission and completion --- */

static void prep_write(struct store *s, struct wbuf *b)
{
    size_t wlen = (size_t)jnl_align(b->len, JNL_BLOCK);
    if (wlen > b->len)
        memset(b->data + b->len, 0, wlen - b->len);
    io_prep_pwrite(&b->iocb, b->fd, b->data, wlen, (long long)b->file_off);
    if (s->o.sync == STORE_SYNC_DSYNC)
        b->iocb.aio_rw_flags = RWF_DSYNC;
    b->iocb.data = b;
    io_set_eventfd(&b->iocb, s->efd);
}

static int submit_all(struct store *s, struct iocb **v, int n)
{
    int done = 0;
    while (done < n) {
        int r = io_submit(s->aio, n - done, v + done);
        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r <= 0) {
            s->failed = r < 0 ? r : -EIO;
            log_err("store: io_submit failed: %s; the journal stops writing", strerror(-s->failed));
            return s->failed;
        }
        done += r;
    }
    return 0;
}

int store_kick(struct store *s)
{
    if (s->failed)
        return s->failed;
    /* large_pending: a record names a large file whose sync is in flight; nothing
       appended since may go out before it is durable (store_large.c) */
    if (s->inflight || s->fenced || s->large_pending)
        return 0;
    struct wbuf *old_fill = NULL;
    size_t nsealed = 0;
    for (struct wbuf *b = s->sealed; b; b = b->next)
        nsealed++;
    /* The fill goes out only in a batch that also holds everything sealed before
       it: its successor carries its last block, and two writes of one batch must
       never overlap. */
    if (s->fill && s->fill->last_lsn && nsealed < STORE_MAX_BATCH_IOCBS - 1) {
        old_fill = s->fill;
        sealed_push(s, s->fill);
        s->fill = NULL;
    }
    if (!s->sealed)
        return 0;
    struct iocb *v[STORE_MAX_BATCH_IOCBS];
    int n = 0;
    struct wbuf *tail = NULL;
    while (s->sealed && n < STORE_MAX_BATCH_IOCBS - 1) {
        struct wbuf *b = s->sealed;
        s->sealed = b->next;
        b->next = NULL;
        prep_write(s, b);
        v[n++] = &b->iocb;
        if (tail)
            tail->next = b;
        else
            s->inflight = b;
        tail = b;
        s->inflight_last_lsn = b->last_lsn;
    }
    s->inflight_pending = n;
    s->inflight_sync_phase = false;
    if (old_fill) {
        int r = fill_start(s, old_fill->data, old_fill->file_off);
        if (r < 0)
            return s->failed = r;
    }
    store_crash_point("before_submit");
    return submit_all(s, v, n);
}

static int start_sync_phase(struct store *s)
{
    struct iocb *v[STORE_MAX_BATCH_IOCBS];
    int n = 0;
    for (struct wbuf *b = s->inflight; b; b = b->next) {
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup = dup || (int)s->sync_iocbs[k].aio_fildes == b->fd;
        if (dup)
            continue;
        io_prep_fdsync(&s->sync_iocbs[n], b->fd);
        s->sync_iocbs[n].data = NULL;
        io_set_eventfd(&s->sync_iocbs[n], s->efd);
        v[n] = &s->sync_iocbs[n];
        n++;
    }
    s->inflight_sync_phase = true;
    s->inflight_pending = n;
    return submit_all(s, v, n);
}

/* Write fds of segments behind the current one, once no buffer refers to them. */
static void close_old_wfds(struct store *s)
{
    for (size_t i = 0; i < s->nsegs; i++) {
        struct store_segfd *g = &s->segs[i];
        if (g->wfd < 0 || g->seq >= s->cur_seq)
            continue;
        bool used = false;
        for (struct wbuf *b = s->sealed; b && !used; b = b->next)
            used = b->seq == g->seq;
        for (struct wbuf *b = s->inflight; b && !used; b = b->next)
            used = b->seq == g->seq;
        if (!used) {
            close(g->wfd);
            g->wfd = -1;
        }
    }
}

static int batch_done(struct store *s)
{
    uint64_t lsn = s->inflight_last_lsn;
    while (s->inflight) {
        struct wbuf *b = s->inflight;
        s->inflight = b->next;
        wbuf_release(s, b);
    }
    close_old_wfds(s);
    store_crash_point("after_durable");
    if (s->fenced)
        return -ESTALE; /* never confirm anything once a newer live owns the store */
    s->durable_lsn = lsn;
    if (s->o.on_durable)
        s->o.on_durable(s->o.ctx, lsn);
    large_reap(s);
    int r = prealloc_next(s);
    if (r < 0 && r != -ESTALE)
        return r;
    return store_kick(s);
}

static int reap_one(struct store *s, const struct io_event *e)
{
    int lr = large_on_event(s, e);
    if (lr != 0)
        return lr < 0 ? lr : 0;
    struct wbuf *b = e->data;
    long res = (long)e->res;
    long want = b ? (long)jnl_align(b->len, JNL_BLOCK) : 0;
    if (res < 0 || res != want) {
        s->failed = res < 0 ? (int)res : -EIO;
        log_err("store: %s of segment %016" PRIx64 " failed: %s; the journal stops writing",
                b ? "write" : "sync", b ? b->seq : s->cur_seq,
                res < 0 ? strerror((int)-res) : "short write");
        return s->failed;
    }
    if (--s->inflight_pending > 0)
        return 0;
    if (s->o.sync == STORE_SYNC_FDATASYNC && !s->inflight_sync_phase)
        return start_sync_phase(s);
    return batch_done(s);
}

static int reap(struct store *s, long min_nr)
{
    struct io_event ev[STORE_AIO_EVENTS];
    struct timespec zero = {0, 0};
    for (;;) {
        if (!s->inflight && !s->large_pending)
            return 0;
        int n = io_getevents(s->aio, min_nr, STORE_AIO_EVENTS, ev, min_nr ? NULL : &zero);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return s->failed = n;
        for (int i = 0; i < n; i++) {
            int r = reap_one(s, &ev[i]);
            if (r < 0)
                return r;
        }
        if (n == 0 || min_nr)
            return 0;
    }
}

int store_on_event(struct store *s)
{
    uint64_t cnt;
    while (read(s->efd, &cnt, sizeof cnt) == (ssize_t)sizeof cnt)
        ;
    int r = reap(s, 0);
    if (r == 0)
        r = ckpt_after_durable(s);
    if (r == 0)
        store_maybe_checkpoint(s);
    return r < 0 ? r : store_kick(s);
}

int store_sync(struct store *s)
{
    uint64_t target = s->next_lsn - 1;
    while (s->durable_lsn < target) {
        if (s->failed)
            return s->failed;
        if (s->fenced)
            return -ESTALE;
        int r = store_kick(s);
        if (r < 0)
            return r;
        r = reap(s, 1);
        if (r == 0 && !s->in_maintenance)
            r = ckpt_after_durable(s);
        if (r < 0)
            return r;
    }
    if (!s->in_maintenance)
        store_maybe_checkpoint(s);
    return 0;
}

/* --- setup --- */

/*
 * io_destroy() waits for an RCU grace period (~10-30 ms here). A process that
 * opens and closes stores repeatedly (tests, tools, a verifier) would pay that
 * each time, so a closed store with nothing in flight parks its idle context
 * here for the next open. The only process-wide state of the store; not
 * thread-safe, like the rest of the writer.
 */
static io_context_t parked_aio;
static pid_t parked_pid; /* contexts do not survive fork(): a child must not reuse it */

static int aio_get(io_context_t *ctx)
{
    if (parked_aio && parked_pid != getpid())
        parked_aio = 0;
    if (parked_aio) {
        *ctx = parked_aio;
        parked_aio = 0;
        return 0;
    }
    return io_setup(STORE_AIO_EVENTS, ctx);
}

static void aio_put(io_context_t ctx, bool idle)
{
    if (idle && !parked_aio) {
        struct io_event ev[STORE_AIO_EVENTS];
        struct timespec zero = {0, 0};
        while (io_getevents(ctx, 0, (long)STORE_AIO_EVENTS, ev, &zero) > 0)
            ;
        parked_aio = ctx;
        parked_pid = getpid();
        return;
    }
    io_destroy(ctx);
}

int writer_init(struct store *s, char *err, size_t errlen)
{
    struct rlimit rl;
    s->max_rfds = 128;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < 128)
        s->max_rfds = rl.rlim_cur / 4 > 4 ? (size_t)(rl.rlim_cur / 4) : 4;
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0)
        return store_errf(err, errlen, -errno, "eventfd: %s", strerror(errno));
    int r = aio_get(&s->aio);
    if (r < 0)
        return store_errf(err, errlen, r, "io_setup: %s", strerror(-r));
    struct statfs sf;
    s->direct = !s->o.force_buffered;
    if (s->direct && statfs(s->jdir, &sf) == 0 && sf.f_type == TMPFS_MAGIC) {
        s->direct = false;
        log_fallback_once(s->jdir, "the store is on tmpfs (O_DIRECT there is never asynchronous)");
    }
    return 0;
}

int writer_resume(struct store *s, uint64_t seq, uint64_t off, uint64_t next_lsn, char *err,
                  size_t errlen)
{
    s->next_lsn = next_lsn;
    s->durable_lsn = next_lsn - 1;
    if (seq == 0) { /* empty journal */
        int r = seg_create(s->jdir, JNL_KIND_MESSAGES, 1, s->epoch, s->o.segment_size, err,
                           errlen);
        if (r < 0)
            return r;
        seq = 1;
        off = JNL_DATA_OFFSET;
    }
    s->cur_seq = seq;
    s->cur_off = off;
    char path[4200];
    seg_name(path, sizeof path, s->jdir, seq + 1);
    if (access(path, F_OK) == 0)
        s->next_seq_ready = seq + 1;
    int r = fill_start(s, NULL, 0);
    if (r < 0)
        return store_errf(err, errlen, r, "%s: cannot resume writing at offset %" PRIu64 ": %s",
                          s->jdir, off, strerror(-r));
    r = prealloc_next(s);
    if (r < 0)
        return store_errf(err, errlen, r, "%s: cannot preallocate the next segment: %s", s->jdir,
                          strerror(-r));
    return 0;
}

void writer_fini(struct store *s)
{
    /* After a failure some iocbs of the batch may never have been submitted: do
       not wait for their completions; io_destroy() waits for the submitted ones. */
    while (!s->failed && (s->inflight || s->large_pending) && reap(s, 1) == 0)
        ;
    large_fini(s);
    if (s->aio)
        aio_put(s->aio, !s->inflight && !s->failed);
    if (s->efd >= 0)
        close(s->efd);
    if (s->fill) {
        s->fill->next = NULL;
        wbuf_free_list(s->fill);
    }
    wbuf_free_list(s->sealed);
    wbuf_free_list(s->inflight);
    wbuf_free_list(s->freelist);
    for (size_t i = 0; i < s->nsegs; i++) {
        if (s->segs[i].wfd >= 0)
            close(s->segs[i].wfd);
        if (s->segs[i].rfd >= 0)
            close(s->segs[i].rfd);
    }
    free(s->segs);
}
