/*
 * store — open/close, the directory layout, writer.lock, store.epoch, the typed
 * appends, body reads and live iteration. See store.h for the API and
 * store_int.h for how the files split the work.
 *
 * Lock files (the order in which a process takes them, to avoid deadlock between
 * the supervisor and the journal of one node): live.lock (supervisor, HA work)
 * before writer.lock (this file). The store itself takes only writer.lock: an OFD
 * write lock on the whole file, on an fd opened O_CLOEXEC so that no child can
 * inherit it and keep it after we die (platform.md §3). Our pid is written into
 * the file for operators (F_OFD_GETLK reports l_pid = -1).
 *
 * store.epoch: ASCII decimal + '\n', replaced atomically (temp + rename) by the
 * HA work when a new live takes over. We read it at open, before preallocating
 * a segment, at each roll and in store_check_epoch(); a value above ours fences us.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "hamq/config.h"
#include "hamq/log.h"
#include "store_int.h"

#define STORE_DEFAULT_SEGMENT (10ull << 20)
#define STORE_DEFAULT_BUFFER (1ull << 20)

void store_opts_init(struct store_opts *o, const struct hamq_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->segment_size = STORE_DEFAULT_SEGMENT;
    o->write_buffer_size = STORE_DEFAULT_BUFFER;
    o->sync = STORE_SYNC_DEFAULT;
    o->compact_min_live_percent = 30;
    if (!cfg)
        return;
    o->dir = cfg->store;
    o->segment_size = cfg->segment_size;
    o->write_buffer_size = cfg->write_buffer_size;
    o->sync = cfg->sync_mode == CFG_SYNC_DSYNC ? STORE_SYNC_DSYNC : STORE_SYNC_FDATASYNC;
    o->checkpoint_bytes = cfg->checkpoint_bytes;
    o->compact_min_live_percent = cfg->compact_min_live_percent;
    o->allow_truncate_corrupt = cfg->allow_truncate_corrupt;
    o->large_message_size = cfg->large_message_size;
}

static void normalize_opts(struct store_opts *o)
{
    if (!o->segment_size)
        o->segment_size = STORE_DEFAULT_SEGMENT;
    o->segment_size = jnl_align(o->segment_size, JNL_BLOCK);
    if (o->segment_size < 16 * JNL_BLOCK)
        o->segment_size = 16 * JNL_BLOCK;
    if (!o->write_buffer_size)
        o->write_buffer_size = STORE_DEFAULT_BUFFER;
    if (!o->dup_ids_per_address)
        o->dup_ids_per_address = JNL_DUP_IDS_DEFAULT;
    uint64_t area = o->segment_size - JNL_DATA_OFFSET;
    if (!o->large_message_size || o->large_message_size > area / 2)
        o->large_message_size = o->large_message_size ? area / 2 : area / 4;
    o->write_buffer_size = jnl_align(o->write_buffer_size, JNL_BLOCK);
    if (o->sync == STORE_SYNC_DEFAULT)
        o->sync = STORE_SYNC_FDATASYNC; /* measured: see store_writer.c */
}

/* --- layout and epoch --- */

static int mkdir_p1(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0750) < 0 && errno != EEXIST)
        return store_errf(err, errlen, -errno, "%s: cannot create directory: %s", path,
                          strerror(errno));
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return store_errf(err, errlen, -ENOTDIR, "%s: not a directory", path);
    return 0;
}

static int write_file_atomic(const char *dir, const char *name, const char *text)
{
    char tmp[4200], fin[4200];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(fin, sizeof fin, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    int r = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    if (r == 0 && rename(tmp, fin) < 0)
        r = -errno;
    if (r == 0)
        r = fsync_dir(dir);
    if (r < 0)
        unlink(tmp);
    return r;
}

int store_read_epoch(const char *dir, uint64_t *epoch, char *err, size_t errlen)
{
    char path[4200], buf[64];
    snprintf(path, sizeof path, "%s/store.epoch", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return store_errf(err, errlen, -e, "%s: cannot read: %s", path, strerror(e));
    buf[n] = 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (n == 0 || end == buf || errno || (*end && strcmp(end, "\n") != 0) || buf[0] == '-')
        return store_errf(err, errlen, -EBADMSG,
                          "%s: offset 0: not an epoch (expected a decimal number and a newline)",
                          path);
    *epoch = v;
    return 0;
}

static int touch(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static int make_layout(struct store *s, char *err, size_t errlen)
{
    bool created = access(s->dir, F_OK) < 0;
    int r = mkdir_p1(s->dir, err, errlen);
    if (r == 0)
        r = mkdir_p1(s->jdir, err, errlen);
    if (r == 0)
        r = mkdir_p1(s->bdir, err, errlen);
    if (r == 0)
        r = mkdir_p1(s->ldir, err, errlen);
    if (r < 0)
        return r;
    if ((r = touch(s->dir, "live.lock")) < 0 || (r = touch(s->dir, "writer.lock")) < 0)
        return store_errf(err, errlen, r, "%s: cannot create the lock files: %s", s->dir,
                          strerror(-r));
    char path[4200];
    snprintf(path, sizeof path, "%s/store.epoch", s->dir);
    if (access(path, F_OK) < 0) {
        r = write_file_atomic(s->dir, "store.epoch", "1\n");
        if (r < 0)
            return store_errf(err, errlen, r, "%s: cannot create: %s", path, strerror(-r));
    }
    /* the directory entries themselves must be durable before anything in them is */
    if ((r = fsync_dir(s->dir)) < 0)
        return store_errf(err, errlen, r, "%s: fsync: %s", s->dir, strerror(-r));
    if (created) {
        snprintf(path, sizeof path, "%s/..", s->dir);
        (void)fsync_dir(path);
    }
    return 0;
}

static int take_writer_lock(struct store *s, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/writer.lock", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(s->lock_fd, F_OFD_SETLK, &fl) < 0) {
        int e = errno;
        char who[32] = "";
        ssize_t n = pread(s->lock_fd, who, sizeof who - 1, 0);
        who[n > 0 ? n : 0] = 0;
        who[strcspn(who, "\n")] = 0;
        if (e == EAGAIN || e == EACCES)
            return store_errf(err, errlen, -EBUSY,
                              "%s: held by another writer (pid %s): only one process may "
                              "write the store",
                              path, who[0] ? who : "unknown");
        return store_errf(err, errlen, -e, "%s: cannot lock: %s", path, strerror(e));
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) < 0 || pwrite(s->lock_fd, pid, (size_t)n, 0) != n)
        log_warn("store: %s: cannot record our pid: %s", path, strerror(errno));
    return 0;
}

/* --- recovery --- */

static int apply_cb(void *ctx, const struct jnl_rec_header *h, const void *payload, uint64_t seq,
                    uint32_t off)
{
    struct store *s = ctx;
    int r = idx_apply(&s->idx, h, payload, seq, off);
    if (r < 0 || !s->adopting || (h->flags & JNL_F_TX) ||
        (h->type != JNL_REC_MSG_ADD && h->type != JNL_REC_LARGE_ADD))
        return r;
    if (s->nfresh == s->capfresh) { /* messages the tail added: idx_finish_adoption */
        size_t n = s->capfresh ? s->capfresh * 2 : 256;
        uint64_t *v = realloc(s->fresh, n * sizeof *v);
        if (!v)
            return -ENOMEM;
        s->fresh = v;
        s->capfresh = n;
    }
    uint64_t id;
    memcpy(&id, payload, sizeof id); /* both payloads start with the message id */
    s->fresh[s->nfresh++] = id;
    return 0;
}

/* The epoch stamped in the header of message segment seq. */
static int seg_epoch(const struct store *s, uint64_t seq, uint64_t *epoch, char *err,
                     size_t errlen)
{
    char path[4200];
    seg_name(path, sizeof path, s->jdir, seq);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    struct jnl_seg_header h = {0};
    int r = fstat(fd, &st) < 0 ? store_errf(err, errlen, -errno, "%s: fstat: %s", path,
                                            strerror(errno))
                               : seg_read_header(fd, path, seq, JNL_KIND_MESSAGES, st.st_size,
                                                 &h, err, errlen);
    close(fd);
    if (r == 0)
        *epoch = h.epoch;
    return r;
}

static long read_body_cb(void *src, uint64_t msg_id, void *buf, size_t len)
{
    return store_read_body(src, msg_id, buf, len);
}

/* Where replay starts when a follower's index is adopted (store_open_adopt). */
struct adopt_from {
    uint64_t seq;
    uint32_t off;
    uint64_t lsn;
};

static int recover_messages(struct store *s, const struct adopt_from *from, char *err,
                            size_t errlen)
{
    struct scan_params p = {
        .dir = s->jdir,
        .kind = JNL_KIND_MESSAGES,
        .writer = true,
        .allow_truncate_corrupt = s->o.allow_truncate_corrupt,
        .apply = apply_cb,
        .ctx = s,
    };
    struct scan_result res;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct jnl_ckpt_ptr cp;
    int r = ckpt_ptr_read(s->jdir, &cp, err, errlen);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == 0) {
        s->ckpt_first_seq = cp.first_live_seq;
        s->ckpt_begin_seq = cp.begin_seq;
    }
    if (from) { /* the index is the follower's: replay only what it had not applied */
        s->adopting = true;
        p.start_seq = from->seq;
        p.start_off = from->off;
        p.start_lsn = from->lsn;
    } else if (r == 0) {
        uint64_t seq = 0;
        uint32_t off = 0;
        r = ckpt_load(s->jdir, &cp, &s->idx, &p.start_lsn, &seq, &off, err, errlen);
        if (r < 0)
            return r;
        p.start_seq = seq;
        p.start_off = off;
    }
    r = scan_recover(&p, &res, err, errlen);
    if (r < 0)
        return r;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (res.max_epoch > s->epoch)
        return store_errf(err, errlen, -ESTALE,
                          "%s: segments were written with epoch %" PRIu64
                          " but store.epoch says %" PRIu64 ": this writer is stale",
                          s->jdir, res.max_epoch, s->epoch);
    s->rec.records = res.records;
    s->rec.next_lsn = res.next_lsn;
    s->rec.from_checkpoint = p.start_seq != 0 && !from;
    s->rec.adopted = from != NULL;
    s->rec.torn = res.torn;
    s->rec.truncated_corrupt = res.truncated_corrupt;
    s->rec.ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    uint64_t dtx, dmsg;
    s->idx.obs = NULL; /* the standby's engine saw the tail; the writer reports nothing */
    if (from) { /* no walk over a million messages at a failover */
        idx_finish_adoption(&s->idx, s->fresh, s->nfresh, &dtx, &dmsg);
        free(s->fresh);
        s->fresh = NULL;
        s->adopting = false;
    } else {
        idx_finish_recovery(&s->idx, &dtx, &dmsg);
        s->rec.index_bytes = idx_memory(&s->idx);
    }
    log_info("store: recovered %s: %" PRIu64 " records replayed in %.1f ms%s, %zu live "
             "messages, next LSN %" PRIu64 "%s%s",
             s->jdir, res.records,
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
             from ? " after the standby's index" : "", s->idx.nmsgs, res.next_lsn, res.torn ? " (torn tail cut)" : "",
             res.truncated_corrupt ? " (CUT AT CORRUPTION)" : "");
    if (dtx || dmsg)
        log_info("store: dropped %" PRIu64 " unfinished transactions and %" PRIu64
                 " unreferenced messages",
                 dtx, dmsg);
    uint64_t seq = res.end_seq, off = res.end_seq ? res.end_off : JNL_DATA_OFFSET;
    uint64_t tail_epoch = 0;
    if (seq && (r = seg_epoch(s, seq, &tail_epoch, err, errlen)) < 0)
        return r;
    if (seq && tail_epoch < s->epoch) {
        /* A new live never appends into a segment an older live may still write:
           the old tail stays sealed (zeros after its end read as a roll) and we start
           a fresh segment stamped with our epoch (replacing one the old live may have
           preallocated). */
        r = seg_create(s->jdir, JNL_KIND_MESSAGES, seq + 1, s->epoch, s->o.segment_size, err,
                       errlen);
        if (r < 0)
            return r;
        log_info("store: epoch %" PRIu64 " is newer than %" PRIu64 " of the tail segment %016" PRIx64
                 ": sealed it, writing segment %016" PRIx64,
                 s->epoch, tail_epoch, seq, seq + 1);
        seq++;
        off = JNL_DATA_OFFSET;
    }
    return writer_resume(s, seq, off, res.next_lsn, err, errlen);
}

static int open_store(const struct store_opts *opts, struct store_follower **f,
                      struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    struct idx adopted;
    struct adopt_from from = {0};
    if (f && *f) {
        follow_detach(*f, &adopted, &from.seq, &from.off, &from.lsn);
        *f = NULL;
    } else {
        f = NULL;
    }
    if (!opts || !opts->dir || !opts->dir[0] || strlen(opts->dir) > 4000) {
        if (f)
            idx_free(&adopted);
        if (!opts || !opts->dir || !opts->dir[0])
            return store_errf(err, errlen, -EINVAL, "store: no store directory given");
        return store_errf(err, errlen, -ENAMETOOLONG, "%s: path too long", opts->dir);
    }
    struct store *s = calloc(1, sizeof *s);
    if (!s) {
        if (f)
            idx_free(&adopted);
        return store_errf(err, errlen, -ENOMEM, "store: out of memory");
    }
    s->o = *opts;
    normalize_opts(&s->o);
    snprintf(s->dir, sizeof s->dir, "%s", opts->dir);
    s->o.dir = s->dir;
    snprintf(s->jdir, sizeof s->jdir, "%s/journal", s->dir);
    snprintf(s->bdir, sizeof s->bdir, "%s/bindings", s->dir);
    snprintf(s->ldir, sizeof s->ldir, "%s/" JNL_LARGE_DIR, s->dir);
    s->lock_fd = -1;
    s->efd = -1;
    if (f) {
        s->idx = adopted;
        s->idx.obs_read = read_body_cb; /* the tail's bodies are read from this store */
        s->idx.obs_src = s;
    } else
        idx_init(&s->idx);
    s->idx.dup_limit = s->o.dup_ids_per_address;
    int r = make_layout(s, err, errlen);
    if (r == 0)
        r = take_writer_lock(s, err, errlen);
    if (r == 0)
        r = store_read_epoch(s->dir, &s->epoch, err, errlen);
    if (r == 0)
        r = writer_init(s, err, errlen);
    if (r == 0)
        r = bindings_open(s, err, errlen);
    if (r == 0)
        r = recover_messages(s, f ? &from : NULL, err, errlen);
    s->idx.obs = NULL;
    if (r == 0)
        r = large_recover(s, err, errlen);
    struct jnl_epoch ep = {.epoch = s->epoch, .started_ns = (uint64_t)time(NULL) * 1000000000ull};
    if (r == 0)
        r = writer_append(s, JNL_REC_EPOCH_START, 0, 0, &ep, sizeof ep, NULL, 0, NULL);
    if (r == 0 && (r = store_kick(s)) < 0)
        store_errf(err, errlen, r, "%s: cannot write to the journal: %s", s->jdir, strerror(-r));
    if (r < 0) {
        s->fenced = true; /* close without writing */
        store_close(s);
        return r;
    }
    *out = s;
    return 0;
}

int store_open(const struct store_opts *opts, struct store **out, char *err, size_t errlen)
{
    return open_store(opts, NULL, out, err, errlen);
}

int store_open_adopt(const struct store_opts *opts, struct store_follower **f,
                     struct store **out, char *err, size_t errlen)
{
    return open_store(opts, f, out, err, errlen);
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (!s->fenced && !s->failed && s->aio) {
        int r = store_sync(s);
        if (r == 0)
            r = ckpt_after_durable(s);
        if (r == 0)
            large_reap(s);
        s->in_maintenance = true; /* no automatic checkpoint while closing */
        if (r < 0)
            log_warn("store: close: final flush failed: %s", strerror(-r));
    }
    /* Everything is flushed and nothing is in flight (store_sync): writer.lock
       may go now, before the teardown below — a backup whose supervisor hands
       over on a free writer.lock takes over that much earlier. */
    if (s->lock_fd >= 0 && !s->inflight) {
        close(s->lock_fd);
        s->lock_fd = -1;
    }
    writer_fini(s);
    bindings_close(s);
    idx_free(&s->idx);
    free(s->fresh);
    free(s->dead);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases writer.lock */
    free(s);
}

/* --- appends --- */

/* The record types a caller may append; the others are written by the store itself. */
static bool caller_type(enum jnl_rec_type type, bool in_tx)
{
    if (in_tx)
        return type >= JNL_REC_MSG_ADD && type <= JNL_REC_DCOUNT;
    return type >= JNL_REC_MSG_ADD && type <= JNL_REC_TX_ROLLBACK;
}

int store_append(struct store *s, enum jnl_rec_type type, const void *payload, size_t len,
                 uint64_t *lsn)
{
    if (!caller_type(type, false))
        return -EINVAL;
    return writer_append(s, (uint16_t)type, 0, 0, payload, len, NULL, 0, lsn);
}

int store_append_tx(struct store *s, uint64_t tx_id, enum jnl_rec_type type, const void *payload,
                    size_t len, uint64_t *lsn)
{
    if (!caller_type(type, true))
        return -EINVAL;
    return writer_append(s, (uint16_t)type, JNL_F_TX, tx_id, payload, len, NULL, 0, lsn);
}

int store_add_message(struct store *s, uint64_t msg_id, const void *body, size_t len,
                      uint64_t *lsn)
{
    if (!msg_id)
        return -EINVAL;
    if (len >= s->o.large_message_size)
        return store_add_large(s, msg_id, body, len, lsn);
    struct jnl_msg_add a = {.msg_id = msg_id};
    return writer_append(s, JNL_REC_MSG_ADD, 0, 0, &a, sizeof a, body, len, lsn);
}

int store_add_ref(struct store *s, uint64_t msg_id, uint64_t queue_id, uint64_t *lsn)
{
    struct jnl_ref r = {.msg_id = msg_id, .queue_id = queue_id};
    return store_append(s, JNL_REC_REF_ADD, &r, sizeof r, lsn);
}

int store_ack(struct store *s, uint64_t msg_id, uint64_t queue_id, uint64_t *lsn)
{
    struct jnl_ref r = {.msg_id = msg_id, .queue_id = queue_id};
    return store_append(s, JNL_REC_ACK, &r, sizeof r, lsn);
}

int store_set_delivery_count(struct store *s, uint64_t msg_id, uint64_t queue_id,
                             uint32_t count, uint64_t *lsn)
{
    struct jnl_dcount d = {.msg_id = msg_id, .queue_id = queue_id, .count = count};
    return store_append(s, JNL_REC_DCOUNT, &d, sizeof d, lsn);
}

int store_tx_end(struct store *s, enum jnl_rec_type type, uint64_t tx_id, uint64_t *lsn)
{
    if (type != JNL_REC_TX_PREPARE && type != JNL_REC_TX_COMMIT && type != JNL_REC_TX_ROLLBACK)
        return -EINVAL;
    struct jnl_tx t = {.tx_id = tx_id};
    return store_append(s, type, &t, sizeof t, lsn);
}

int store_add_duplicate_id(struct store *s, const char *address, const void *id, size_t len,
                           uint64_t *lsn)
{
    size_t alen = address ? strlen(address) : 0;
    if (!alen || !len || !id)
        return -EINVAL;
    if (alen > JNL_DUP_ADDRESS_MAX || len > JNL_DUP_ID_MAX)
        return -ENAMETOOLONG;
    uint8_t buf[sizeof(struct jnl_dup_id) + JNL_DUP_ADDRESS_MAX];
    struct jnl_dup_id d = {.address_len = (uint16_t)alen, .id_len = (uint16_t)len};
    memcpy(buf, &d, sizeof d);
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): a sized field, no terminator
    memcpy(buf + sizeof d, address, alen);
    return writer_append(s, JNL_REC_DUP_ID, 0, 0, buf, sizeof d + alen, id, len, lsn);
}

int store_dup_walk(const struct idx *x, store_dup_cb cb, void *ctx)
{
    size_t pos = 0;
    struct idx_dupaddr *a;
    while ((a = idx_dup_next(x, &pos)))
        for (uint32_t i = 0; i < a->n; i++) {
            const struct idx_dupid *d = idx_dup_at(a, i);
            int rc = cb(ctx, a->address, d->id, d->len);
            if (rc)
                return rc;
        }
    return 0;
}

int store_foreach_duplicate_id(struct store *s, store_dup_cb cb, void *ctx)
{
    return store_dup_walk(&s->idx, cb, ctx);
}

uint64_t store_duplicate_ids(const struct store *s) { return s->idx.ndupids; }

/* --- state --- */

int store_event_fd(const struct store *s) { return s->efd; }
uint64_t store_durable_lsn(const struct store *s) { return s->durable_lsn; }
uint64_t store_last_lsn(const struct store *s) { return s->next_lsn - 1; }
uint64_t store_epoch(const struct store *s) { return s->epoch; }
bool store_fenced(const struct store *s) { return s->fenced; }
bool store_is_direct(const struct store *s) { return s->direct; }
void store_recovery_info(const struct store *s, struct store_recovery *out) { *out = s->rec; }
uint64_t store_live_messages(const struct store *s) { return s->idx.nmsgs; }

int store_check_epoch(struct store *s)
{
    if (s->fenced)
        return 1;
    uint64_t e = 0;
    char err[512];
    int r = store_read_epoch(s->dir, &e, err, sizeof err);
    if (r < 0) {
        log_warn("store: cannot check the epoch: %s", err);
        return r;
    }
    if (e <= s->epoch)
        return 0;
    s->fenced = true;
    char f1[64];
    snprintf(f1, sizeof f1, "HAMQ_EPOCH=%" PRIu64, e);
    log_fields(LOG_ERR, (const char *const[]){"HAMQ_EVENT=journal_fenced", f1, NULL},
               "store: fenced: store.epoch is now %" PRIu64 " (ours is %" PRIu64
               "): a newer live owns the store, no more writes",
               e, s->epoch);
    return 1;
}

/* --- reads --- */

long store_read_body(struct store *s, uint64_t msg_id, void *buf, size_t len)
{
    struct idx_msg *m = idx_find(&s->idx, msg_id);
    if (!m)
        return -ENOENT;
    if (idx_msg_large(m))
        return large_read(s->ldir, msg_id, m->off, m->len, buf, len);
    struct jnl_rec_header h;
    struct jnl_msg_add a;
    size_t body = m->len - sizeof a;
    size_t n = body < len ? body : len;
    uint64_t hoff = m->off, boff = m->off + sizeof h + sizeof a;
    if (writer_read_buffered(s, m->seq, hoff, &h, sizeof h)) {
        if (n && !writer_read_buffered(s, m->seq, boff, buf, n))
            return -EIO;
        return (long)body;
    }
    int fd = store_seg_rfd(s, m->seq);
    if (fd < 0)
        return fd;
    uint8_t head[sizeof h + sizeof a];
    if (pread(fd, head, sizeof head, (off_t)hoff) != (ssize_t)sizeof head)
        return -EIO;
    if (n && pread(fd, buf, n, (off_t)boff) != (ssize_t)n)
        return -EIO;
    memcpy(&h, head, sizeof h);
    memcpy(&a, head + sizeof h, sizeof a);
    if (h.length != m->len || a.msg_id != msg_id)
        return -EIO;
    if (n == body) { /* whole body read: verify the record */
        struct jnl_rec_header c = h;
        c.crc = 0;
        uint32_t crc = crc32c(crc32c(crc32c(0, &c, sizeof c), &a, sizeof a), buf, n);
        if (crc != h.crc) {
            log_err("store: segment %016" PRIx64 " offset %u: CRC mismatch reading message %" PRIu64,
                    m->seq, m->off, msg_id);
            return -EIO;
        }
    }
    return (long)body;
}

int store_foreach_live(struct store *s, store_live_cb cb, void *ctx)
{
    size_t pos = 0;
    struct idx_msg *m;
    while ((m = idx_next(&s->idx, &pos))) {
        for (uint32_t i = 0; i < m->nrefs; i++) {
            struct idx_ref *r = &idx_refs(m)[i];
            struct store_live_ref lr = {.msg_id = m->msg_id,
                                        .queue_id = r->queue_id,
                                        .delivery_count = r->count,
                                        .body_len = idx_body_len(m)};
            int rc = cb(ctx, &lr);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int store_segment_count(const struct store *s)
{
    struct seg_list l;
    if (seg_list_dir(s->jdir, false, &l, NULL, 0) < 0)
        return -EIO;
    int n = (int)l.n;
    seg_list_free(&l);
    return n;
}
