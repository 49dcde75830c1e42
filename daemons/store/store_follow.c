/*
 * store_follow — the read-only tail (see store.h). Reads segments with buffered
 * preads (the kernel keeps them coherent with the writer's O_DIRECT writes),
 * queues records it has read until they are known durable, then applies them to
 * its own index with the same rules as recovery (store_index.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "store_int.h"

/* A record read but not yet applied. The payload head is enough for the index,
   except for DUP_ID records, whose whole payload is copied to `full`. */
struct pend {
    struct jnl_rec_header h;
    uint8_t *full;
    uint8_t head[24];
    uint64_t seq;
    uint32_t off;
};

#define FOLLOW_MAX_FDS 64 /* open segment fds kept; older ones are reopened on demand */

struct fseg {
    uint64_t seq;
    int fd;
};

struct store_follower {
    char jdir[4096];
    char ldir[4096];
    struct idx idx;
    uint64_t seq; /* segment being read, 0 = none yet */
    int fd;
    struct rec_reader rdr;
    bool rdr_ok;
    uint64_t off;
    uint64_t expected;
    uint64_t max_synced;
    uint64_t applied;
    struct pend *q;
    size_t qhead, qlen, qcap;
    struct fseg *fds;
    size_t nfds;
};

static int f_seg_fd(struct store_follower *f, uint64_t seq)
{
    for (size_t i = 0; i < f->nfds; i++)
        if (f->fds[i].seq == seq)
            return f->fds[i].fd;
    char path[4200];
    seg_name(path, sizeof path, f->jdir, seq);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (f->nfds >= FOLLOW_MAX_FDS) { /* drop the oldest other one; reopened if needed */
        size_t old = f->nfds;
        for (size_t i = 0; i < f->nfds; i++)
            if (f->fds[i].seq != f->seq && (old == f->nfds || f->fds[i].seq < f->fds[old].seq))
                old = i;
        if (old < f->nfds) {
            close(f->fds[old].fd);
            f->fds[old] = f->fds[--f->nfds];
        }
    }
    struct fseg *n = realloc(f->fds, (f->nfds + 1) * sizeof *n);
    if (!n) {
        close(fd);
        return -ENOMEM;
    }
    f->fds = n;
    f->fds[f->nfds++] = (struct fseg){seq, fd};
    return fd;
}

/* Limit of readable bytes of segment seq: min(file size, header's size). */
static int f_limit(int fd, uint64_t *limit)
{
    struct stat st;
    struct jnl_seg_header h;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size < (off_t)sizeof h || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        return -EAGAIN; /* being created */
    if (h.magic != JNL_SEG_MAGIC || h.version != JNL_FORMAT_VERSION ||
        crc32c(0, &h, offsetof(struct jnl_seg_header, header_crc)) != h.header_crc)
        return -EBADMSG;
    *limit = (uint64_t)st.st_size < h.segment_size ? (uint64_t)st.st_size : h.segment_size;
    return 0;
}

static int f_enter(struct store_follower *f, uint64_t seq, uint64_t off)
{
    int fd = f_seg_fd(f, seq);
    if (fd < 0)
        return fd;
    uint64_t limit = 0;
    int r = f_limit(fd, &limit);
    if (r < 0)
        return r;
    if (f->rdr_ok)
        rdr_free(&f->rdr);
    r = rdr_init(&f->rdr, fd, limit);
    f->rdr_ok = r == 0;
    f->seq = seq;
    f->fd = fd;
    f->off = off;
    return r;
}

int store_follow_open(const char *dir, struct store_follower **out, char *err, size_t errlen)
{
    *out = NULL;
    struct store_follower *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    snprintf(f->jdir, sizeof f->jdir, "%.4000s/journal", dir);
    snprintf(f->ldir, sizeof f->ldir, "%.4000s/" JNL_LARGE_DIR, dir);
    idx_init(&f->idx);
    f->expected = 1;
    struct jnl_ckpt_ptr cp;
    int r = ckpt_ptr_read(f->jdir, &cp, err, errlen);
    if (r == 0) {
        uint64_t seq = 0;
        uint32_t off = 0;
        r = ckpt_load(f->jdir, &cp, &f->idx, &f->expected, &seq, &off, err, errlen);
        if (r == 0) {
            f->applied = f->expected - 1;
            f->max_synced = f->applied;
            r = f_enter(f, seq, off);
            if (r < 0)
                store_errf(err, errlen, r, "%s: cannot follow segment %016" PRIx64 ": %s",
                           f->jdir, seq, strerror(-r));
        }
    } else if (r == -ENOENT) {
        struct seg_list l;
        r = seg_list_dir(f->jdir, false, &l, err, errlen);
        if (r == 0) {
            if (l.n && (r = f_enter(f, l.v[0].seq, JNL_DATA_OFFSET)) < 0)
                store_errf(err, errlen, r, "%s: cannot follow: %s", l.v[0].path, strerror(-r));
            seg_list_free(&l);
        }
    }
    if (r < 0) {
        store_follow_close(f);
        return r;
    }
    *out = f;
    return 0;
}

static int q_push(struct store_follower *f, const struct jnl_rec_header *h, const uint8_t *pl)
{
    if (f->qlen == f->qcap) {
        size_t nc = f->qcap ? f->qcap * 2 : 256;
        struct pend *n = malloc(nc * sizeof *n);
        if (!n)
            return -ENOMEM;
        for (size_t i = 0; i < f->qlen; i++)
            n[i] = f->q[(f->qhead + i) % f->qcap];
        free(f->q);
        f->q = n;
        f->qcap = nc;
        f->qhead = 0;
    }
    struct pend *p = &f->q[(f->qhead + f->qlen) % f->qcap];
    p->h = *h;
    p->full = NULL;
    if (h->type == JNL_REC_DUP_ID) {
        if (!(p->full = malloc(h->length ? h->length : 1)))
            return -ENOMEM;
        memcpy(p->full, pl, h->length);
    }
    memset(p->head, 0, sizeof p->head);
    memcpy(p->head, pl, h->length < sizeof p->head ? h->length : sizeof p->head);
    p->seq = f->seq;
    p->off = (uint32_t)f->off;
    f->qlen++;
    return 0;
}

/* First record of the next segment continues the LSN sequence: move on. */
static bool f_next_segment(struct store_follower *f)
{
    int fd = f_seg_fd(f, f->seq + 1);
    uint64_t limit = 0;
    if (fd < 0 || f_limit(fd, &limit) < 0)
        return false;
    struct rec_reader r;
    struct jnl_rec_header h;
    const uint8_t *pl;
    if (rdr_init(&r, fd, limit) < 0)
        return false;
    bool ok = rdr_record(&r, JNL_DATA_OFFSET, &h, &pl) == REC_OK && h.lsn == f->expected;
    rdr_free(&r);
    return ok && f_enter(f, f->seq + 1, JNL_DATA_OFFSET) == 0;
}

/* The next segment is gone and a checkpoint beyond it was published: compaction
   deleted what this follower still had to read. Reopen from that checkpoint. */
static bool f_fell_behind(struct store_follower *f)
{
    char path[4200];
    struct jnl_ckpt_ptr cp;
    seg_name(path, sizeof path, f->jdir, f->seq + 1);
    if (access(path, F_OK) == 0 || errno != ENOENT)
        return false;
    return ckpt_ptr_read(f->jdir, &cp, NULL, 0) == 0 && cp.begin_seq > f->seq + 1;
}

static int f_read(struct store_follower *f)
{
    if (!f->seq) {
        struct seg_list l;
        if (seg_list_dir(f->jdir, false, &l, NULL, 0) < 0 || l.n == 0)
            return 0;
        uint64_t first = l.v[0].seq;
        seg_list_free(&l);
        int r = f_enter(f, first, JNL_DATA_OFFSET);
        if (r < 0)
            return r == -EAGAIN ? 0 : r;
    }
    uint64_t limit = 0;
    if (f_limit(f->fd, &limit) == 0)
        rdr_reset(&f->rdr, limit); /* see what was written since */
    for (;;) {
        struct jnl_rec_header h;
        const uint8_t *pl;
        enum rec_status st = rdr_record(&f->rdr, f->off, &h, &pl);
        if (st == REC_OK && h.lsn == f->expected) {
            int r = q_push(f, &h, pl);
            if (r < 0)
                return r;
            if (h.synced_lsn > f->max_synced)
                f->max_synced = h.synced_lsn;
            f->off += jnl_rec_size(h.length);
            f->expected++;
            continue;
        }
        if (st == REC_OK)
            return -ESTALE;
        if (st == REC_ZERO && f_next_segment(f))
            continue;
        if (st == REC_ZERO && f_fell_behind(f))
            return -ESTALE;
        return 0; /* not written yet (or being written): next poll */
    }
}

int store_follow_poll(struct store_follower *f, uint64_t limit)
{
    int r = f_read(f);
    if (r < 0)
        return r;
    uint64_t upto = limit ? limit : f->max_synced;
    int applied = 0;
    while (f->qlen && f->q[f->qhead].h.lsn <= upto) {
        struct pend *p = &f->q[f->qhead];
        r = idx_apply(&f->idx, &p->h, p->full ? p->full : p->head, p->seq, p->off);
        free(p->full);
        p->full = NULL;
        if (r < 0)
            return r;
        f->applied = p->h.lsn;
        f->qhead = (f->qhead + 1) % f->qcap;
        f->qlen--;
        applied++;
    }
    return applied;
}

uint64_t store_follow_applied_lsn(const struct store_follower *f)
{
    return f->applied;
}

uint64_t store_follow_live_messages(const struct store_follower *f)
{
    return f->idx.nmsgs;
}

int store_follow_foreach_live(struct store_follower *f, store_live_cb cb, void *ctx)
{
    size_t pos = 0;
    struct idx_msg *m;
    while ((m = idx_next(&f->idx, &pos)))
        for (uint32_t i = 0; i < m->nrefs; i++) {
            struct store_live_ref lr = {.msg_id = m->msg_id,
                                        .queue_id = idx_refs(m)[i].queue_id,
                                        .delivery_count = idx_refs(m)[i].count,
                                        .body_len = idx_body_len(m)};
            int rc = cb(ctx, &lr);
            if (rc)
                return rc;
        }
    return 0;
}

long store_follow_read_body(struct store_follower *f, uint64_t msg_id, void *buf, size_t len)
{
    struct idx_msg *m = idx_find(&f->idx, msg_id);
    if (!m)
        return -ENOENT;
    if (idx_msg_large(m))
        return large_read(f->ldir, msg_id, m->off, m->len, buf, len);
    int fd = f_seg_fd(f, m->seq);
    if (fd < 0)
        return fd;
    size_t body = m->len - sizeof(struct jnl_msg_add);
    size_t n = body < len ? body : len;
    uint64_t boff = m->off + sizeof(struct jnl_rec_header) + sizeof(struct jnl_msg_add);
    if (n && pread(fd, buf, n, (off_t)boff) != (ssize_t)n)
        return -EIO;
    return (long)body;
}

int store_follow_foreach_duplicate_id(struct store_follower *f, store_dup_cb cb, void *ctx)
{
    return store_dup_walk(&f->idx, cb, ctx);
}

static long f_read_body(void *src, uint64_t msg_id, void *buf, size_t len)
{
    return store_follow_read_body(src, msg_id, buf, len);
}

void store_follow_observe(struct store_follower *f, const struct store_observer *ob, void *ctx)
{
    f->idx.obs = ob;
    f->idx.obs_ctx = ctx;
    f->idx.obs_read = f_read_body;
    f->idx.obs_src = f;
}

void store_follow_set_dup_limit(struct store_follower *f, uint32_t n)
{
    f->idx.dup_limit = n;
}

void follow_detach(struct store_follower *f, struct idx *into, uint64_t *seq, uint32_t *off,
                   uint64_t *lsn)
{
    if (f->qlen) { /* read but not applied: the adopter reads it again and decides */
        const struct pend *p = &f->q[f->qhead];
        *seq = p->seq;
        *off = p->off;
        *lsn = p->h.lsn;
    } else {
        *seq = f->seq;
        *off = f->seq ? (uint32_t)f->off : 0;
        *lsn = f->expected;
    }
    *into = f->idx;
    idx_init(&f->idx);
    store_follow_close(f);
}

void store_follow_close(struct store_follower *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->qlen; i++)
        free(f->q[(f->qhead + i) % f->qcap].full);
    if (f->rdr_ok)
        rdr_free(&f->rdr);
    for (size_t i = 0; i < f->nfds; i++)
        close(f->fds[i].fd);
    free(f->fds);
    free(f->q);
    idx_free(&f->idx);
    free(f);
}
