/*
 * store_ckpt — checkpoints (bound recovery by the live set, not the history) and
 * compaction (give back the space of mostly dead segments).
 *
 * Checkpoint: CKPT_BEGIN, CKPT_DATA..., CKPT_END are appended as consecutive
 * records (the writer is single-threaded, nothing interleaves), describing the
 * index as of the record before BEGIN: every live message with the segment and
 * offset of its body record and its references, and every record of an open
 * transaction. Once END is durable, journal/checkpoint is replaced atomically
 * (temp, fsync, rename, fsync dir) to name BEGIN. Recovery then loads the
 * snapshot and replays only the records after END; segments before BEGIN's are
 * needed only for the bodies they hold, so bodiless ones are deleted.
 *
 * Compaction: live messages of old segments under compact_min_live_percent are
 * copied (MSG_MOVE, same payload) to the end of the journal; once durable, a
 * checkpoint is taken and published; then the old segments, now bodiless and
 * before the checkpoint, are deleted. A crash at any step recovers the same live
 * set: before the new pointer is published recovery uses the old checkpoint and
 * replays the MSG_MOVE records (which only change where a body is read from);
 * after it, the new checkpoint names the copies; a segment not yet deleted is
 * simply deleted by the next checkpoint. Crash points (HAMQ_STORE_CRASH_AT):
 * compact_start, compact_moved, compact_moved_durable, ckpt_appended,
 * ckpt_durable, ckpt_ptr_tmp, ckpt_published, ckpt_deleted_one, compact_done.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "hamq/log.h"
#include "store_int.h"

#define CKPT_CHUNK (64u * 1024u)

/* --- the pointer file --- */

int ckpt_ptr_read(const char *jdir, struct jnl_ckpt_ptr *p, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint", jdir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return -ENOENT;
        return store_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    }
    ssize_t n = pread(fd, p, sizeof *p, 0);
    close(fd);
    if (n != (ssize_t)sizeof *p || p->magic != JNL_CKPT_MAGIC ||
        crc32c(0, p, offsetof(struct jnl_ckpt_ptr, crc)) != p->crc)
        return store_errf(err, errlen, -EBADMSG,
                          "%s: offset 0: not a valid checkpoint pointer (size, magic or CRC); "
                          "delete it to replay the whole journal if every segment is still there",
                          path);
    if (p->version != JNL_FORMAT_VERSION)
        return store_errf(err, errlen, -EPROTO, "%s: offset 4: unknown format version %u", path,
                          p->version);
    return 0;
}

static int ckpt_ptr_write(const char *jdir, struct jnl_ckpt_ptr *p)
{
    char tmp[4200], fin[4200];
    snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", jdir);
    snprintf(fin, sizeof fin, "%s/checkpoint", jdir);
    p->magic = JNL_CKPT_MAGIC;
    p->version = JNL_FORMAT_VERSION;
    p->crc = crc32c(0, p, offsetof(struct jnl_ckpt_ptr, crc));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int r = pwrite(fd, p, sizeof *p, 0) == (ssize_t)sizeof *p && fdatasync(fd) == 0 ? 0 : -EIO;
    close(fd);
    store_crash_point("ckpt_ptr_tmp");
    if (r == 0 && rename(tmp, fin) < 0)
        r = -errno;
    if (r == 0)
        r = fsync_dir(jdir);
    return r;
}

/* --- loading (recovery and follow mode) --- */

struct ckpt_loader {
    struct idx *x;
    uint64_t nmsgs, ntxops;
};

/* The nrefs references after a message entry (their size was checked by the caller). */
static int load_refs(struct ckpt_loader *L, uint64_t msg_id, uint32_t nrefs, const uint8_t *p,
                     size_t *at)
{
    struct idx_msg *im = idx_find(L->x, msg_id);
    int r = 0;
    for (uint32_t i = 0; r == 0 && im && i < nrefs; i++) {
        struct jnl_ckpt_ref cr;
        memcpy(&cr, p + *at, sizeof cr);
        *at += sizeof cr;
        r = idx_put_ref(L->x, im, cr.queue_id, cr.count);
    }
    return r;
}

static int load_entries(struct ckpt_loader *L, const uint8_t *p, size_t len)
{
    size_t at = 0;
    while (at < len) {
        uint32_t tag;
        if (len - at < sizeof tag)
            return -EINVAL;
        memcpy(&tag, p + at, sizeof tag);
        if (tag == JNL_CKPT_TAG_MSG) {
            struct jnl_ckpt_msg m;
            if (len - at < sizeof m)
                return -EINVAL;
            memcpy(&m, p + at, sizeof m);
            at += sizeof m;
            if ((uint64_t)m.nrefs * sizeof(struct jnl_ckpt_ref) > len - at)
                return -EINVAL;
            int r = idx_put_msg(L->x, m.msg_id, m.seg_seq, m.rec_offset, m.rec_length);
            if (r == 0)
                r = load_refs(L, m.msg_id, m.nrefs, p, &at);
            if (r < 0)
                return r;
            L->nmsgs++;
        } else if (tag == JNL_CKPT_TAG_LARGE) {
            struct jnl_ckpt_large m;
            if (len - at < sizeof m)
                return -EINVAL;
            memcpy(&m, p + at, sizeof m);
            at += sizeof m;
            if ((uint64_t)m.nrefs * sizeof(struct jnl_ckpt_ref) > len - at ||
                m.body_len > UINT32_MAX)
                return -EINVAL;
            int r = idx_put_msg(L->x, m.msg_id, 0, m.body_crc, (uint32_t)m.body_len);
            if (r == 0)
                r = load_refs(L, m.msg_id, m.nrefs, p, &at);
            if (r < 0)
                return r;
            L->nmsgs++;
        } else if (tag == JNL_CKPT_TAG_DUP) {
            struct jnl_ckpt_dup d;
            if (len - at < sizeof d)
                return -EINVAL;
            memcpy(&d, p + at, sizeof d);
            size_t body = (size_t)d.address_len + d.id_len;
            size_t step = (size_t)jnl_align(sizeof d + body, 8);
            if (step > len - at)
                return -EINVAL;
            const char *a = (const char *)p + at + sizeof d;
            int r = idx_dup_add(L->x, a, d.address_len, a + d.address_len, d.id_len);
            if (r < 0)
                return r;
            at += step;
        } else if (tag == JNL_CKPT_TAG_TXOP) {
            struct jnl_ckpt_txop t;
            if (len - at < sizeof t)
                return -EINVAL;
            memcpy(&t, p + at, sizeof t);
            at += sizeof t;
            struct idx_txop op = {.type = t.type, .msg_id = t.msg_id, .queue_id = t.queue_id,
                                  .count = t.count, .seq = t.seg_seq, .off = t.rec_offset,
                                  .len = t.rec_length};
            int r = idx_put_txop(L->x, t.tx_id, t.prepared, &op);
            if (r < 0)
                return r;
            L->ntxops++;
        } else {
            return -EINVAL;
        }
    }
    return 0;
}

static int open_seg_reader(const char *jdir, uint64_t seq, int *fd, struct rec_reader *r,
                           char *path, size_t plen, char *err, size_t errlen)
{
    seg_name(path, plen, jdir, seq);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot open (named by the checkpoint): %s",
                          path, strerror(errno));
    off_t size = lseek(*fd, 0, SEEK_END);
    struct jnl_seg_header h;
    int rc = seg_read_header(*fd, path, seq, JNL_KIND_MESSAGES, size, &h, err, errlen);
    if (rc == 0)
        rc = rdr_init(r, *fd, (uint64_t)size < h.segment_size ? (uint64_t)size : h.segment_size);
    if (rc < 0)
        close(*fd);
    return rc;
}

int ckpt_load(const char *jdir, const struct jnl_ckpt_ptr *p, struct idx *x, uint64_t *next_lsn,
              uint64_t *next_seq, uint32_t *next_off, char *err, size_t errlen)
{
    char path[4200];
    int fd;
    struct rec_reader r;
    uint64_t seq = p->begin_seq, off = p->begin_offset, lsn = p->begin_lsn;
    int rc = open_seg_reader(jdir, seq, &fd, &r, path, sizeof path, err, errlen);
    if (rc < 0)
        return rc;
    struct ckpt_loader L = {.x = x};
    struct jnl_ckpt_begin b = {0};
    for (;;) {
        struct jnl_rec_header h;
        const uint8_t *pl;
        enum rec_status st = rdr_record(&r, off, &h, &pl);
        if (st == REC_ZERO && lsn != p->begin_lsn) { /* the checkpoint continues in the next segment */
            rdr_free(&r);
            close(fd);
            seq++;
            off = JNL_DATA_OFFSET;
            rc = open_seg_reader(jdir, seq, &fd, &r, path, sizeof path, err, errlen);
            if (rc < 0)
                return rc;
            continue;
        }
        const char *bad = st != REC_OK ? rec_status_str(st)
                          : h.lsn != lsn ? "LSN out of sequence"
                          : (lsn == p->begin_lsn) != (h.type == JNL_REC_CKPT_BEGIN)
                              ? "not the checkpoint record expected"
                              : NULL;
        if (!bad && h.type == JNL_REC_CKPT_BEGIN && h.length == sizeof b)
            memcpy(&b, pl, sizeof b);
        else if (!bad && h.type == JNL_REC_CKPT_DATA && load_entries(&L, pl, h.length) < 0)
            bad = "malformed checkpoint data";
        else if (!bad && h.type != JNL_REC_CKPT_DATA && h.type != JNL_REC_CKPT_END &&
                 h.type != JNL_REC_CKPT_BEGIN)
            bad = "a non-checkpoint record inside the checkpoint";
        if (bad) {
            rdr_free(&r);
            close(fd);
            return store_errf(err, errlen, -EBADMSG,
                              "%s: offset %" PRIu64 ": checkpoint LSN %" PRIu64 ": %s (the "
                              "checkpoint pointer says it was durable: corruption)",
                              path, off, lsn, bad);
        }
        off += jnl_rec_size(h.length);
        lsn++;
        if (h.type == JNL_REC_CKPT_END)
            break;
    }
    rdr_free(&r);
    close(fd);
    if (L.nmsgs != b.nmsgs || L.ntxops != b.ntxops || lsn - 1 != p->end_lsn)
        return store_errf(err, errlen, -EBADMSG,
                          "%s: checkpoint at LSN %" PRIu64 " is incomplete: %" PRIu64
                          "/%" PRIu64 " messages, %" PRIu64 "/%" PRIu64 " tx records",
                          path, p->begin_lsn, L.nmsgs, b.nmsgs, L.ntxops, b.ntxops);
    *next_lsn = lsn;
    *next_seq = seq;
    *next_off = (uint32_t)off;
    return 0;
}

/* --- writing a checkpoint --- */

struct ckpt_writer {
    struct store *s;
    uint8_t *buf;
    size_t len, cap;
    int rc;
};

static void cw_flush(struct ckpt_writer *w)
{
    if (w->len && w->rc == 0)
        w->rc = writer_append(w->s, JNL_REC_CKPT_DATA, 0, 0, w->buf, w->len, NULL, 0, NULL);
    w->len = 0;
}

static void cw_put(struct ckpt_writer *w, const void *p, size_t n)
{
    if (w->len + n > w->cap)
        cw_flush(w);
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static uint64_t first_live_seq(struct store *s)
{
    uint64_t first = s->cur_seq;
    size_t pos = 0;
    struct idx_msg *m;
    while ((m = idx_next(&s->idx, &pos)))
        if (!idx_msg_large(m) && m->seq < first)
            first = m->seq;
    for (struct idx_tx *t = s->idx.txs; t; t = t->next)
        for (size_t i = 0; i < t->nops; i++)
            if (t->ops[i].seq && t->ops[i].seq < first)
                first = t->ops[i].seq;
    return first;
}

/* Every live duplicate id, each address's oldest first, one whole entry per put. */
static void cw_dups(struct ckpt_writer *w, const struct idx *x)
{
    uint8_t e[sizeof(struct jnl_ckpt_dup) + JNL_DUP_ADDRESS_MAX + JNL_DUP_ID_MAX + 8];
    size_t pos = 0;
    struct idx_dupaddr *a;
    while (w->rc == 0 && (a = idx_dup_next(x, &pos)))
        for (uint32_t i = 0; i < a->n; i++) {
            const struct idx_dupid *id = idx_dup_at(a, i);
            struct jnl_ckpt_dup d = {.tag = JNL_CKPT_TAG_DUP, .address_len = (uint16_t)a->alen,
                                     .id_len = (uint16_t)id->len};
            size_t n = (size_t)jnl_align(sizeof d + a->alen + id->len, 8);
            memset(e, 0, n);
            memcpy(e, &d, sizeof d);
            memcpy(e + sizeof d, a->address, a->alen);
            memcpy(e + sizeof d + a->alen, id->id, id->len);
            if (n > w->cap) {
                w->rc = -E2BIG;
                return;
            }
            cw_put(w, e, n);
        }
}

static void cw_entries(struct ckpt_writer *w, struct idx *x)
{
    size_t pos = 0;
    struct idx_msg *m;
    while (w->rc == 0 && (m = idx_next(x, &pos))) {
        if ((size_t)m->nrefs * sizeof(struct jnl_ckpt_ref) + sizeof(struct jnl_ckpt_msg) > w->cap) {
            w->rc = -E2BIG; /* more references than a chunk holds (~4000) */
            return;
        }
        struct jnl_ckpt_msg cm = {.tag = JNL_CKPT_TAG_MSG, .nrefs = m->nrefs, .msg_id = m->msg_id,
                                  .seg_seq = m->seq, .rec_offset = m->off, .rec_length = m->len};
        struct jnl_ckpt_large cl = {.tag = JNL_CKPT_TAG_LARGE, .nrefs = m->nrefs,
                                    .msg_id = m->msg_id, .body_len = m->len, .body_crc = m->off};
        _Static_assert(sizeof cm == sizeof cl, "both message entries have one size");
        if (w->len + sizeof cm + m->nrefs * sizeof(struct jnl_ckpt_ref) > w->cap)
            cw_flush(w);
        if (idx_msg_large(m))
            cw_put(w, &cl, sizeof cl);
        else
            cw_put(w, &cm, sizeof cm);
        for (uint32_t i = 0; i < m->nrefs; i++) {
            struct jnl_ckpt_ref cr = {.queue_id = idx_refs(m)[i].queue_id,
                                      .count = idx_refs(m)[i].count};
            cw_put(w, &cr, sizeof cr);
        }
    }
    for (struct idx_tx *t = x->txs; w->rc == 0 && t; t = t->next)
        for (size_t i = 0; i < t->nops; i++) {
            const struct idx_txop *o = &t->ops[i];
            struct jnl_ckpt_txop ct = {.tag = JNL_CKPT_TAG_TXOP, .type = o->type,
                                       .prepared = t->prepared, .tx_id = t->tx_id,
                                       .msg_id = o->msg_id, .queue_id = o->queue_id,
                                       .seg_seq = o->seq, .rec_offset = o->off,
                                       .rec_length = o->len, .count = o->count};
            cw_put(w, &ct, sizeof ct);
        }
    cw_dups(w, x);
    cw_flush(w);
}

/* Appends a checkpoint (no syscall); its pointer is published once durable. */
static int ckpt_append(struct store *s)
{
    if (s->fenced)
        return -ESTALE;
    if (s->failed)
        return s->failed;
    struct ckpt_writer w = {.s = s};
    w.cap = CKPT_CHUNK;
    if (w.cap > s->o.segment_size / 4)
        w.cap = (size_t)(s->o.segment_size / 4);
    w.buf = malloc(w.cap);
    if (!w.buf)
        return -ENOMEM;
    uint64_t ntx = 0;
    for (struct idx_tx *t = s->idx.txs; t; t = t->next)
        ntx += t->nops;
    struct jnl_ckpt_begin b = {.covered_lsn = s->next_lsn - 1, .nmsgs = s->idx.nmsgs,
                               .ntxops = ntx, .first_live_seq = first_live_seq(s)};
    uint64_t begin_lsn = 0, end_lsn = 0;
    w.rc = writer_append(s, JNL_REC_CKPT_BEGIN, 0, 0, &b, sizeof b, NULL, 0, &begin_lsn);
    uint64_t begin_seq = s->last_rec_seq, begin_off = s->last_rec_off;
    if (w.rc == 0)
        cw_entries(&w, &s->idx);
    struct jnl_ckpt_end e = {.begin_lsn = begin_lsn, .nmsgs = b.nmsgs, .ntxops = ntx};
    if (w.rc == 0)
        w.rc = writer_append(s, JNL_REC_CKPT_END, 0, 0, &e, sizeof e, NULL, 0, &end_lsn);
    free(w.buf);
    if (w.rc < 0) {
        /* appended records stay; without an END that recovery accepts they are inert */
        log_err("store: checkpoint failed: %s", strerror(-w.rc));
        return w.rc;
    }
    memset(&s->ckpt_next, 0, sizeof s->ckpt_next);
    s->ckpt_next.begin_lsn = begin_lsn;
    s->ckpt_next.begin_seq = begin_seq;
    s->ckpt_next.begin_offset = (uint32_t)begin_off;
    s->ckpt_next.end_lsn = end_lsn;
    s->ckpt_next.first_live_seq = b.first_live_seq;
    s->ckpt_pending = true;
    s->bytes_since_ckpt = 0;
    store_crash_point("ckpt_appended");
    return 0;
}

/* Segments before the checkpoint's BEGIN that hold no live body are deleted. */
static int reclaim(struct store *s)
{
    struct seg_list l;
    int r = seg_list_dir(s->jdir, false, &l, NULL, 0);
    if (r < 0)
        return r;
    int deleted = 0;
    for (size_t i = 0; i < l.n; i++) {
        uint64_t seq = l.v[i].seq;
        if (seq >= s->ckpt_begin_seq || idx_seg_stats(&s->idx, seq).live_msgs)
            continue;
        bool tx_body = false;
        for (struct idx_tx *t = s->idx.txs; t && !tx_body; t = t->next)
            for (size_t k = 0; k < t->nops; k++)
                tx_body = tx_body || t->ops[k].seq == seq;
        if (tx_body)
            continue;
        store_seg_forget(s, seq);
        if (unlink(l.v[i].path) == 0) {
            deleted++;
            store_crash_point("ckpt_deleted_one");
        }
    }
    seg_list_free(&l);
    if (deleted)
        fsync_dir(s->jdir);
    return deleted;
}

int ckpt_after_durable(struct store *s)
{
    if (!s->ckpt_pending || s->durable_lsn < s->ckpt_next.end_lsn || s->fenced)
        return 0;
    store_crash_point("ckpt_durable");
    int r = ckpt_ptr_write(s->jdir, &s->ckpt_next);
    if (r < 0) {
        log_err("store: cannot publish the checkpoint pointer: %s", strerror(-r));
        return r;
    }
    s->ckpt_pending = false;
    s->ckpt_first_seq = s->ckpt_next.first_live_seq;
    s->ckpt_begin_seq = s->ckpt_next.begin_seq;
    store_crash_point("ckpt_published");
    int n = reclaim(s);
    if (n > 0)
        log_info("store: checkpoint at LSN %" PRIu64 " published, %d segments deleted",
                 s->ckpt_next.begin_lsn, n);
    return 0;
}

/*
 * A checkpoint is a snapshot of the whole index, written in one loop iteration:
 * with a million live messages it is ~50 MB of records. Taking one every
 * checkpoint_bytes whatever its size would make the snapshots cost more than the
 * replay they save (quadratic in the live set) and stall the loop again and
 * again, so the threshold is also at least 4x the snapshot: at most a fifth of
 * what is written is checkpoint, and replay stays bounded by 4 snapshots.
 */
void store_maybe_checkpoint(struct store *s)
{
    uint64_t snapshot = (uint64_t)s->idx.nmsgs *
                        (sizeof(struct jnl_ckpt_msg) + sizeof(struct jnl_ckpt_ref));
    uint64_t threshold = s->o.checkpoint_bytes > 4 * snapshot ? s->o.checkpoint_bytes
                                                              : 4 * snapshot;
    if (!s->o.checkpoint_bytes || s->ckpt_pending || s->in_maintenance ||
        s->bytes_since_ckpt < threshold)
        return;
    (void)ckpt_append(s); /* logged inside; the next threshold retries */
}

int store_checkpoint(struct store *s)
{
    if (s->in_maintenance)
        return -EBUSY;
    s->in_maintenance = true;
    int r = ckpt_append(s);
    if (r == 0)
        r = store_sync(s);
    if (r == 0)
        r = ckpt_after_durable(s);
    s->in_maintenance = false;
    return r;
}

/* --- compaction --- */

static bool is_victim(struct store *s, uint64_t seq)
{
    if (seq == 0 || seq >= s->cur_seq) /* 0: a large message, nothing to move */
        return false;
    struct idx_seg g = idx_seg_stats(&s->idx, seq);
    uint64_t area = s->o.segment_size - JNL_DATA_OFFSET;
    return g.live_bytes * 100 < (uint64_t)s->o.compact_min_live_percent * area;
}

static int move_one(struct store *s, struct idx_msg *m, uint8_t **buf, size_t *cap)
{
    size_t need = sizeof(struct jnl_rec_header) + m->len;
    if (need > *cap) {
        uint8_t *n = realloc(*buf, need);
        if (!n)
            return -ENOMEM;
        *buf = n;
        *cap = need;
    }
    int fd = store_seg_rfd(s, m->seq);
    if (fd < 0)
        return fd;
    if (pread(fd, *buf, need, (off_t)m->off) != (ssize_t)need)
        return -EIO;
    struct jnl_rec_header h;
    memcpy(&h, *buf, sizeof h);
    struct jnl_rec_header c = h;
    c.crc = 0;
    if (h.length != m->len || crc32c(crc32c(0, &c, sizeof c), *buf + sizeof h, h.length) != h.crc) {
        log_err("store: compaction: segment %016" PRIx64 " offset %u: CRC mismatch, segment kept",
                m->seq, m->off);
        return -EIO;
    }
    return writer_append(s, JNL_REC_MSG_MOVE, 0, 0, *buf + sizeof h, h.length, NULL, 0, NULL);
}

static int compact_move(struct store *s, uint64_t *moved)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int r = 0;
    /* Collect first: appending MSG_MOVE updates entries in place while iterating. */
    size_t n = 0, pos = 0;
    uint64_t *ids = malloc((s->idx.nmsgs + 1) * sizeof *ids);
    if (!ids)
        return -ENOMEM;
    struct idx_msg *m;
    while ((m = idx_next(&s->idx, &pos)))
        if (is_victim(s, m->seq))
            ids[n++] = m->msg_id;
    for (size_t i = 0; i < n && r == 0; i++) {
        m = idx_find(&s->idx, ids[i]);
        if (m)
            r = move_one(s, m, &buf, &cap);
    }
    free(ids);
    free(buf);
    *moved = n;
    return r;
}

int store_compact(struct store *s)
{
    if (s->fenced)
        return -ESTALE;
    if (s->in_maintenance)
        return -EBUSY;
    int r = store_sync(s); /* victims' bodies must be on disk to be read back */
    if (r < 0)
        return r;
    s->in_maintenance = true;
    store_crash_point("compact_start");
    uint64_t moved = 0;
    r = compact_move(s, &moved);
    store_crash_point("compact_moved");
    if (r == 0)
        r = store_sync(s);
    store_crash_point("compact_moved_durable");
    int before = store_segment_count(s);
    if (r == 0)
        r = ckpt_append(s);
    if (r == 0)
        r = store_sync(s);
    if (r == 0)
        r = ckpt_after_durable(s);
    s->in_maintenance = false;
    store_crash_point("compact_done");
    if (r < 0)
        return r;
    int deleted = before - store_segment_count(s);
    log_info("store: compaction moved %" PRIu64 " messages, deleted %d segments", moved, deleted);
    return deleted > 0 ? deleted : 0;
}
