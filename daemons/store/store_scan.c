/*
 * store_scan — the record reader and the recovery engine.
 *
 * Recovery reads segments in sequence order from a start point (the first segment,
 * or the record after a checkpoint) and applies every valid record whose LSN is
 * the next expected one. The scan stops at the first position where that is not
 * true: an all-zero header, a record past the end of the file, a bad length, a bad
 * CRC, an unknown type or flag. What that position means is decided by evidence,
 * using the synced_lsn field of later records (journal_format.h):
 *
 *   - a valid record anywhere after it whose synced_lsn >= the expected LSN proves
 *     the missing record had been durable: CORRUPTION. Refuse to start, naming the
 *     file, the offset and the reason (or, with allow_truncate_corrupt, cut there);
 *   - a valid record at the position with the wrong LSN: CORRUPTION (LSN gap);
 *   - otherwise everything from the position on belongs to the last batch, which was
 *     never acknowledged: a TORN TAIL if any byte of it is not zero (logged, then cut:
 *     zeroed to the segment end and later segments deleted, so a later write cannot
 *     resurrect a stale record), or simply the END if it is all zeros (the
 *     preallocated space after the last record).
 *
 * A zero header at the end of a segment followed by a next segment whose first
 * record has the expected LSN is a segment roll, not an end. Header damage of any
 * segment is corruption: segments get their name only after their header is synced.
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
#include "hamq/log.h"
#include "store_int.h"

#define RDR_CHUNK (1u << 20)

const char *rec_status_str(enum rec_status s)
{
    switch (s) {
    case REC_OK: return "valid record";
    case REC_ZERO: return "zero record header";
    case REC_SHORT: return "record extends past the end of the file";
    case REC_BAD_LEN: return "impossible record length";
    case REC_BAD_TYPE: return "unknown record type";
    case REC_BAD_FLAGS: return "unknown record flags";
    case REC_BAD_CRC: return "record CRC mismatch";
    case REC_IO: return "read error";
    }
    return "?";
}

int rdr_init(struct rec_reader *r, int fd, uint64_t limit)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->limit = limit;
    r->cap = RDR_CHUNK;
    r->buf = malloc(r->cap);
    return r->buf ? 0 : -ENOMEM;
}

void rdr_free(struct rec_reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

void rdr_reset(struct rec_reader *r, uint64_t limit)
{
    r->limit = limit;
    r->buf_len = 0;
    r->buf_off = 0;
}

/* Pointer to [off, off+len) of the file, or NULL (read error or past limit). */
static const uint8_t *rdr_get(struct rec_reader *r, uint64_t off, size_t len)
{
    if (off + len > r->limit)
        return NULL;
    if (r->buf_len && off >= r->buf_off && off + len <= r->buf_off + r->buf_len)
        return r->buf + (off - r->buf_off);
    if (len > r->cap) {
        uint8_t *n = realloc(r->buf, len);
        if (!n)
            return NULL;
        r->buf = n;
        r->cap = len;
    }
    size_t want = r->cap;
    if (off + want > r->limit)
        want = (size_t)(r->limit - off);
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    r->buf_off = off;
    r->buf_len = got;
    return got >= len ? r->buf : NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

enum rec_status rdr_record(struct rec_reader *r, uint64_t off, struct jnl_rec_header *h,
                           const uint8_t **payload)
{
    const size_t hs = sizeof *h;
    if (off + hs > r->limit) {
        uint64_t rest = r->limit > off ? r->limit - off : 0;
        const uint8_t *p = rest ? rdr_get(r, off, (size_t)rest) : NULL;
        return (!rest || (p && all_zero(p, (size_t)rest))) ? REC_ZERO : REC_SHORT;
    }
    const uint8_t *p = rdr_get(r, off, hs);
    if (!p)
        return REC_IO;
    if (all_zero(p, hs))
        return REC_ZERO;
    memcpy(h, p, hs);
    if (h->length > r->limit || h->length > UINT32_MAX - 64)
        return REC_BAD_LEN;
    if (off + hs + h->length > r->limit)
        return REC_SHORT;
    p = rdr_get(r, off, hs + h->length);
    if (!p)
        return REC_IO;
    struct jnl_rec_header c = *h;
    c.crc = 0;
    uint32_t crc = crc32c(0, &c, hs);
    crc = crc32c(crc, p + hs, h->length);
    if (crc != h->crc)
        return REC_BAD_CRC;
    if (h->type < 1 || h->type > JNL_REC_TYPE_MAX)
        return REC_BAD_TYPE;
    if (h->flags & ~JNL_F_KNOWN)
        return REC_BAD_FLAGS;
    *payload = p + hs;
    return REC_OK;
}

/* --- the recovery engine --- */

struct scan_seg {
    struct seg_info si;
    int fd;
    struct jnl_seg_header h;
    uint64_t limit;
    bool deleted;
};

struct scan {
    const struct scan_params *p;
    struct scan_result *res;
    struct scan_seg *segs;
    size_t n;
    char *err;
    size_t errlen;
};

static void scan_close(struct scan *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        if (sc->segs[i].fd >= 0)
            close(sc->segs[i].fd);
    free(sc->segs);
}

/*
 * Segment fds are opened when needed and closed when the replay moves on, so a
 * store of thousands of segments does not need thousands of descriptors.
 */
static int scan_fd(struct scan *sc, size_t i)
{
    struct scan_seg *g = &sc->segs[i];
    if (g->fd < 0)
        g->fd = open(g->si.path, (sc->p->writer ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    return g->fd;
}

static void scan_release(struct scan *sc, size_t i)
{
    if (sc->segs[i].fd >= 0)
        close(sc->segs[i].fd);
    sc->segs[i].fd = -1;
}

/* Zeroes seg i from off on and deletes every later segment (writer only). */
static int scan_cut(struct scan *sc, size_t i, uint64_t off)
{
    if (!sc->p->writer)
        return 0;
    struct scan_seg *g = &sc->segs[i];
    int r = off == 0 ? 0 : scan_fd(sc, i) < 0 ? -errno
                                               : seg_zero_range(g->fd, off, g->h.segment_size);
    if (r < 0)
        return store_errf(sc->err, sc->errlen, r, "%s: cannot cut the journal at offset %" PRIu64
                          ": %s", g->si.path, off, strerror(-r));
    for (size_t j = (off == 0 ? i : i + 1); j < sc->n; j++) {
        if (unlink(sc->segs[j].si.path) < 0 && errno != ENOENT)
            return store_errf(sc->err, sc->errlen, -errno, "%s: cannot delete: %s",
                              sc->segs[j].si.path, strerror(errno));
        sc->segs[j].deleted = true;
        log_warn("store: deleted %s (it held only unacknowledged records)", sc->segs[j].si.path);
    }
    return fsync_dir(sc->p->dir);
}

static int scan_open_segs(struct scan *sc, const struct seg_list *l)
{
    sc->segs = calloc(l->n ? l->n : 1, sizeof *sc->segs);
    if (!sc->segs)
        return -ENOMEM;
    for (size_t i = 0; i < l->n; i++) {
        struct scan_seg *g = &sc->segs[sc->n++];
        g->si = l->v[i];
        g->fd = -1;
        struct stat st;
        if (stat(g->si.path, &st) < 0)
            return store_errf(sc->err, sc->errlen, -errno, "%s: cannot stat: %s", g->si.path,
                              strerror(errno));
        g->si.file_size = st.st_size;
    }
    return 0;
}

/* Checks every header; a bad one is corruption (or a cut point when allowed). */
static int scan_headers(struct scan *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        struct scan_seg *g = &sc->segs[i];
        int r = scan_fd(sc, i) < 0
                    ? store_errf(sc->err, sc->errlen, -errno, "%s: cannot open: %s", g->si.path,
                                 strerror(errno))
                    : seg_read_header(g->fd, g->si.path, g->si.seq, sc->p->kind,
                                      g->si.file_size, &g->h, sc->err, sc->errlen);
        scan_release(sc, i);
        /* from the replay start on, segments are consecutive (before it, compaction
           may have deleted bodiless ones) */
        if (r == 0 && i > 0 && sc->segs[i - 1].si.seq >= sc->p->start_seq &&
            g->si.seq != sc->segs[i - 1].si.seq + 1)
            r = store_errf(sc->err, sc->errlen, -EBADMSG,
                           "%s: segment %016" PRIx64 " is missing before it (gap in the "
                           "segment sequence)",
                           g->si.path, sc->segs[i - 1].si.seq + 1);
        if (r < 0) {
            if (!(sc->p->allow_truncate_corrupt && sc->p->writer))
                return r;
            log_err("store: corruption: %s; allow_truncate_corrupt is set: deleting this "
                    "segment and every later one",
                    sc->err);
            sc->res->truncated_corrupt = true;
            int c = scan_cut(sc, i, 0);
            sc->n = i;
            return c;
        }
        uint64_t lim = g->h.segment_size;
        g->limit = (uint64_t)g->si.file_size < lim ? (uint64_t)g->si.file_size : lim;
        if (g->h.epoch > sc->res->max_epoch)
            sc->res->max_epoch = g->h.epoch;
    }
    return 0;
}

/*
 * Anything but zeros from off to the end of the segment? The regions the file
 * system reports as holes (SEEK_DATA: never written, e.g. the unwritten extents
 * of a preallocated segment nobody read) read as zeros by definition and are
 * skipped: a start or a promotion then reads the few blocks after the logical
 * end, not the 10 MiB of a fresh segment. Where SEEK_DATA is not supported,
 * every byte is read.
 */
static bool tail_nonzero(struct rec_reader *r, uint64_t off)
{
    const uint64_t step = RDR_CHUNK / 2;
    for (uint64_t pos = off; pos < r->limit; pos += step) {
        off_t d = lseek(r->fd, (off_t)pos, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            return false; /* only a hole from pos on */
        if (d > (off_t)pos) {
            if ((uint64_t)d >= r->limit)
                return false;
            pos = (uint64_t)d;
        }
        size_t n = r->limit - pos < step ? (size_t)(r->limit - pos) : (size_t)step;
        const uint8_t *p = rdr_get(r, pos, n);
        if (!p || !all_zero(p, n))
            return true;
    }
    return false;
}

struct evidence {
    size_t seg;
    uint64_t off;
    uint64_t lsn;
};

/* A valid record after (i, off) whose synced_lsn says LSN `expected` was durable. */
static bool find_evidence(struct scan *sc, struct rec_reader *r, size_t i, uint64_t off,
                          uint64_t expected, bool rest_is_zero, struct evidence *ev)
{
    struct jnl_rec_header h;
    const uint8_t *pl;
    /* zeros hold no record: only the later segments can (a 10 MiB walk saved) */
    for (uint64_t pos = off + JNL_REC_ALIGN; !rest_is_zero && pos + sizeof h <= r->limit;
         pos += JNL_REC_ALIGN) {
        const uint8_t *p = rdr_get(r, pos, sizeof h);
        if (!p)
            break;
        memcpy(&h, p, sizeof h);
        if (h.lsn <= expected || h.synced_lsn < expected || h.synced_lsn >= h.lsn)
            continue;
        if (rdr_record(r, pos, &h, &pl) == REC_OK) {
            *ev = (struct evidence){i, pos, h.lsn};
            return true;
        }
    }
    for (size_t j = i + 1; j < sc->n; j++) {
        struct rec_reader rj;
        if (scan_fd(sc, j) < 0 || rdr_init(&rj, sc->segs[j].fd, sc->segs[j].limit) < 0)
            return true; /* cannot rule it out: treat as evidence, refuse */
        bool found = false;
        for (uint64_t pos = JNL_DATA_OFFSET; !found;) {
            if (rdr_record(&rj, pos, &h, &pl) != REC_OK)
                break;
            if (h.synced_lsn >= expected) {
                *ev = (struct evidence){j, pos, h.lsn};
                found = true;
            }
            pos += jnl_rec_size(h.length);
        }
        rdr_free(&rj);
        scan_release(sc, j);
        if (found)
            return true;
    }
    return false;
}

/* First record of segment j has LSN `expected`: the zero header before was a roll. */
static bool next_seg_continues(struct scan *sc, size_t j, uint64_t expected)
{
    if (j >= sc->n)
        return false;
    struct rec_reader rj;
    struct jnl_rec_header h;
    const uint8_t *pl;
    if (scan_fd(sc, j) < 0 || rdr_init(&rj, sc->segs[j].fd, sc->segs[j].limit) < 0)
        return false;
    bool ok = rdr_record(&rj, JNL_DATA_OFFSET, &h, &pl) == REC_OK && h.lsn == expected;
    rdr_free(&rj);
    return ok;
}

/* Anything written in the segments after i (records or junk in their first block). */
static bool later_segs_written(struct scan *sc, size_t i)
{
    for (size_t j = i + 1; j < sc->n; j++) {
        struct rec_reader rj;
        if (scan_fd(sc, j) < 0 || rdr_init(&rj, sc->segs[j].fd, sc->segs[j].limit) < 0)
            return true;
        bool w = tail_nonzero(&rj, JNL_DATA_OFFSET);
        rdr_free(&rj);
        scan_release(sc, j);
        if (w)
            return true;
    }
    return false;
}

static int scan_corrupt(struct scan *sc, size_t i, uint64_t off, uint64_t expected,
                        const char *what, const struct evidence *ev)
{
    char why[4300];
    if (ev)
        snprintf(why, sizeof why, "LSN %" PRIu64 " had been acknowledged: LSN %" PRIu64
                 " at %s offset %" PRIu64 " was written after it",
                 expected, ev->lsn, sc->segs[ev->seg].si.path, ev->off);
    else
        snprintf(why, sizeof why, "expected LSN %" PRIu64, expected);
    store_errf(sc->err, sc->errlen, -EBADMSG, "%s: offset %" PRIu64 ": %s (%s)",
               sc->segs[i].si.path, off, what, why);
    if (!(sc->p->allow_truncate_corrupt && sc->p->writer)) {
        size_t n = strlen(sc->err);
        snprintf(sc->err + n, sc->errlen - n,
                 "; the journal is corrupt: refusing to start. Set [journal] "
                 "allow_truncate_corrupt = true to start anyway, losing every record from "
                 "this point on");
        return -EBADMSG;
    }
    log_err("store: corruption: %s; allow_truncate_corrupt is set: cutting the journal here, "
            "every later record is lost",
            sc->err);
    sc->res->truncated_corrupt = true;
    return 1;
}

/* Decides what the stop at (i, off) means; 0 = end here, 1 = continue in i+1, <0 = error. */
static int scan_stop(struct scan *sc, struct rec_reader *r, size_t i, uint64_t off,
                     enum rec_status st, const struct jnl_rec_header *h, uint64_t expected)
{
    char what[128];
    if (st == REC_OK) { /* valid record, wrong LSN */
        snprintf(what, sizeof what, "LSN gap: found LSN %" PRIu64, h->lsn);
        int c = scan_corrupt(sc, i, off, expected, what, NULL);
        return c < 0 ? c : scan_cut(sc, i, off);
    }
    bool junk = st != REC_ZERO || tail_nonzero(r, off);
    if (!junk && next_seg_continues(sc, i + 1, expected))
        return 1;
    struct evidence ev;
    if (find_evidence(sc, r, i, off, expected, !junk, &ev)) {
        int c = scan_corrupt(sc, i, off, expected, rec_status_str(st), &ev);
        return c < 0 ? c : scan_cut(sc, i, off);
    }
    if (!junk && !later_segs_written(sc, i))
        return 0; /* the clean end: preallocated zeros */
    sc->res->torn = true;
    log_fields(LOG_WARNING, (const char *const[]){"HAMQ_EVENT=journal_torn_tail", NULL},
               "store: torn write at %s offset %" PRIu64 " (%s, LSN %" PRIu64
               " expected): the last unacknowledged batch was cut off there",
               sc->segs[i].si.path, off, rec_status_str(st), expected);
    return scan_cut(sc, i, off);
}

static size_t scan_first(const struct scan *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        if (sc->segs[i].si.seq >= sc->p->start_seq)
            return i;
    return sc->n;
}

static int scan_replay(struct scan *sc)
{
    struct scan_result *res = sc->res;
    size_t i = scan_first(sc);
    if (sc->p->start_seq && (i == sc->n || sc->segs[i].si.seq != sc->p->start_seq))
        return store_errf(sc->err, sc->errlen, -EBADMSG,
                          "%s: segment %016" PRIx64 " named by the checkpoint is missing",
                          sc->p->dir, sc->p->start_seq);
    uint64_t expected = sc->p->start_lsn ? sc->p->start_lsn : 1;
    uint64_t off = sc->p->start_off ? sc->p->start_off : JNL_DATA_OFFSET;
    res->next_lsn = expected;
    if (i == sc->n)
        return 0;
    for (; i < sc->n; i++) {
        struct rec_reader r;
        /* let the kernel read this segment and the next ahead while we check CRCs,
           up to their first hole: the unwritten rest of the newest segment would
           only be zero-filled into the page cache (and then look like data) */
        for (size_t k = i; k < sc->n && k < i + 2; k++)
            if (scan_fd(sc, k) >= 0) {
                off_t end = lseek(sc->segs[k].fd, 0, SEEK_HOLE);
                if (end <= 0 || (uint64_t)end > sc->segs[k].limit)
                    end = (off_t)sc->segs[k].limit;
                (void)posix_fadvise(sc->segs[k].fd, 0, end, POSIX_FADV_WILLNEED);
            }
        if (scan_fd(sc, i) < 0)
            return store_errf(sc->err, sc->errlen, -errno, "%s: cannot open: %s",
                              sc->segs[i].si.path, strerror(errno));
        int rc = rdr_init(&r, sc->segs[i].fd, sc->segs[i].limit);
        for (; rc == 0;) {
            struct jnl_rec_header h;
            const uint8_t *pl = NULL;
            enum rec_status st = rdr_record(&r, off, &h, &pl);
            if (st == REC_IO) {
                rc = store_errf(sc->err, sc->errlen, -EIO, "%s: offset %" PRIu64 ": read error",
                                sc->segs[i].si.path, off);
                break;
            }
            if (st == REC_OK && h.lsn == expected) {
                if (h.lsn > sc->p->skip_through_lsn && sc->p->apply) {
                    rc = sc->p->apply(sc->p->ctx, &h, pl, sc->segs[i].si.seq, (uint32_t)off);
                    if (rc < 0) {
                        store_errf(sc->err, sc->errlen, rc,
                                   "%s: offset %" PRIu64 ": LSN %" PRIu64
                                   " (type %u): bad payload: %s",
                                   sc->segs[i].si.path, off, h.lsn, h.type, strerror(-rc));
                        break;
                    }
                }
                expected++;
                res->records++;
                res->bytes += jnl_rec_size(h.length);
                off += jnl_rec_size(h.length);
                continue;
            }
            rc = scan_stop(sc, &r, i, off, st, &h, expected);
            if (rc == 1)
                rc = 2; /* next segment */
            else if (rc == 0)
                rc = 3; /* end */
            break;
        }
        rdr_free(&r);
        scan_release(sc, i);
        if (rc < 0)
            return rc;
        res->end_seq = sc->segs[i].si.seq;
        res->end_off = (uint32_t)off;
        res->next_lsn = expected;
        if (rc == 3)
            return 0;
        off = JNL_DATA_OFFSET;
    }
    return 0;
}

int scan_recover(const struct scan_params *p, struct scan_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    struct seg_list l;
    int r = seg_list_dir(p->dir, p->writer, &l, err, errlen);
    if (r < 0)
        return r;
    struct scan sc = {.p = p, .res = res, .err = err, .errlen = errlen};
    r = scan_open_segs(&sc, &l);
    seg_list_free(&l);
    if (r == 0)
        r = scan_headers(&sc);
    if (r == 0)
        r = scan_replay(&sc);
    for (size_t i = 0; r == 0 && i < sc.n; i++)
        if (!sc.segs[i].deleted)
            res->max_seq = sc.segs[i].si.seq;
    scan_close(&sc);
    return r;
}
