/*
 * store_large — large messages: bodies kept in <store>/large-messages/<id>.msg with
 * a small JNL_REC_LARGE_ADD record in the journal (journal_format.h).
 *
 * Order of a write (the invariant: a durable record never names a missing file):
 *   1. write the body to the file (created or truncated): into the page cache;
 *   2. fsync the directory (the new name is durable; ~0.1 ms);
 *   3. submit the file's fdatasync through the store's libaio context (no wait);
 *   4. append the LARGE_ADD record (body length + CRC32C) at once, so the records
 *      that follow (its references) keep their LSN order, and hold every batch
 *      (store_kick does nothing while large_pending) until the sync completes:
 *      the record, and everything appended after it, go to disk only then.
 * A crash before the record is durable leaves a file no durable record names:
 * recovery deletes it (orphan).
 *
 * Deletion: when the message leaves the index (its last reference acknowledged,
 * or its transaction rolled back) the index calls large_gone(), which remembers
 * the id with the LSN of the record being applied; large_reap() unlinks the file
 * once that LSN is durable (a crash before then replays the message live, so the
 * file must still be there), and only after re-reading store.epoch (a fenced writer
 * deletes nothing: a newer live may still serve the message). An unlink lost in a
 * crash leaves an orphan for the next recovery.
 *
 * What blocks: only step 1, the copy into the page cache (~1 ms per MiB here) and
 * the directory fsync. The sync itself runs in the kernel while the loop goes on:
 * deliveries, acknowledgements in memory, non-durable traffic and the control
 * timers continue; durable confirmations of others wait for it (their records
 * are behind the gate), as they would wait behind any bigger batch.
 */
#include <dirent.h>
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

#define LARGE_IO_CHUNK (4u << 20)

void large_path(char *out, size_t n, const char *ldir, uint64_t msg_id)
{
    snprintf(out, n, "%s/%016" PRIx64 JNL_LARGE_SUFFIX, ldir, msg_id);
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < LARGE_IO_CHUNK ? len - done : LARGE_IO_CHUNK;
        ssize_t w = pwrite(fd, p + done, n, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        done += (size_t)w;
    }
    return 0;
}

/* Waits until fewer than STORE_MAX_LARGE_SYNCS file syncs are in flight (rare). */
static int large_room(struct store *s)
{
    while (s->large_pending >= STORE_MAX_LARGE_SYNCS) {
        int r = store_sync(s);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Steps 1 to 3: returns the fd whose sync is in flight (kept until it completes). */
static int large_write_file(struct store *s, const char *path, const void *body, size_t len,
                            struct large_sync **out)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, body, len);
    store_crash_point("large_file_written");
    if (r == 0)
        r = fsync_dir(s->ldir);
    struct large_sync *ls = r == 0 ? calloc(1, sizeof *ls) : NULL;
    if (!ls) {
        close(fd);
        return r < 0 ? r : -ENOMEM;
    }
    ls->fd = fd;
    io_prep_fdsync(&ls->iocb, fd);
    ls->iocb.data = ls;
    io_set_eventfd(&ls->iocb, s->efd);
    struct iocb *v[1] = {&ls->iocb};
    int n;
    while ((n = io_submit(s->aio, 1, v)) == -EINTR || n == -EAGAIN)
        ;
    if (n != 1) { /* no asynchronous sync here: do it now */
        r = fdatasync(fd) < 0 ? -errno : 0;
        close(fd);
        free(ls);
        ls = NULL;
    }
    *out = ls;
    return r;
}

int large_on_event(struct store *s, const struct io_event *e)
{
    struct large_sync **p = &s->lsyncs;
    while (*p && &(*p)->iocb != (struct iocb *)e->obj)
        p = &(*p)->next;
    struct large_sync *ls = *p;
    if (!ls)
        return 0;
    *p = ls->next;
    s->large_pending--;
    close(ls->fd);
    free(ls);
    if ((long)e->res < 0) {
        s->failed = (int)e->res;
        log_err("store: sync of a large message file failed: %s; the journal stops writing",
                strerror((int)-e->res));
        return s->failed;
    }
    return 1;
}

void large_fini(struct store *s)
{
    while (s->lsyncs) { /* only after a failure: io_destroy waits for the kernel */
        struct large_sync *ls = s->lsyncs;
        s->lsyncs = ls->next;
        close(ls->fd);
        free(ls);
    }
    s->large_pending = 0;
}

int store_add_large(struct store *s, uint64_t msg_id, const void *body, size_t len, uint64_t *lsn)
{
    if (s->fenced)
        return -ESTALE;
    if (s->failed)
        return s->failed;
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    if (idx_find(&s->idx, msg_id))
        return -EEXIST; /* its file is in use */
    char path[4200];
    large_path(path, sizeof path, s->ldir, msg_id);
    struct large_sync *ls = NULL;
    int r = large_room(s);
    if (r == 0 && (r = large_write_file(s, path, body, len, &ls)) < 0)
        log_err("store: cannot write the large message file %s: %s", path, strerror(-r));
    if (r < 0) {
        unlink(path);
        return r;
    }
    if (ls) { /* from now on no batch goes out before this file is durable */
        ls->next = s->lsyncs;
        s->lsyncs = ls;
        s->large_pending++;
    }
    store_crash_point("large_before_record");
    struct jnl_large_add a = {.msg_id = msg_id, .body_len = len, .body_crc = crc32c(0, body, len)};
    r = writer_append(s, JNL_REC_LARGE_ADD, 0, 0, &a, sizeof a, NULL, 0, lsn);
    if (r < 0)
        unlink(path); /* no record names it (its sync completes harmlessly) */
    return r;
}

long large_read(const char *ldir, uint64_t msg_id, uint32_t crc, uint32_t body_len, void *buf,
                size_t len)
{
    char path[4200];
    large_path(path, sizeof path, ldir, msg_id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = body_len < len ? body_len : len, got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (uint8_t *)buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (got != n)
        return -EIO;
    if (n == body_len && crc32c(0, buf, n) != crc) {
        log_err("store: %s: CRC mismatch reading large message %" PRIu64, path, msg_id);
        return -EIO;
    }
    return (long)body_len;
}

/* The index hook: msg_id left the index by the record being appended now. */
static void large_gone(void *ctx, uint64_t msg_id)
{
    struct store *s = ctx;
    if (s->ndead == s->capdead) {
        size_t n = s->capdead ? s->capdead * 2 : 16;
        struct large_dead *d = realloc(s->dead, n * sizeof *d);
        if (!d)
            return; /* the file stays an orphan until the next recovery */
        s->dead = d;
        s->capdead = n;
    }
    s->dead[s->ndead++] = (struct large_dead){.msg_id = msg_id, .lsn = s->next_lsn};
}

void large_reap(struct store *s)
{
    if (!s->ndead || s->fenced)
        return;
    size_t keep = 0;
    bool ready = false;
    for (size_t i = 0; i < s->ndead; i++)
        ready = ready || s->dead[i].lsn <= s->durable_lsn;
    if (!ready || store_check_epoch(s) != 0)
        return;
    for (size_t i = 0; i < s->ndead; i++) {
        if (s->dead[i].lsn > s->durable_lsn) {
            s->dead[keep++] = s->dead[i];
            continue;
        }
        char path[4200];
        large_path(path, sizeof path, s->ldir, s->dead[i].msg_id);
        if (unlink(path) < 0 && errno != ENOENT)
            log_warn("store: cannot delete %s: %s (deleted at the next start)", path,
                     strerror(errno));
    }
    s->ndead = keep;
}

static bool tx_names_large(const struct idx *x, uint64_t msg_id)
{
    for (const struct idx_tx *t = x->txs; t; t = t->next)
        for (size_t i = 0; i < t->nops; i++)
            if (t->ops[i].type == JNL_REC_LARGE_ADD && t->ops[i].msg_id == msg_id)
                return true;
    return false;
}

/* "<16 hex>.msg" -> id; false for any other name. */
static bool large_name(const char *name, uint64_t *id)
{
    if (strlen(name) != 16 + strlen(JNL_LARGE_SUFFIX) || strcmp(name + 16, JNL_LARGE_SUFFIX) != 0)
        return false;
    *id = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return false;
        *id = *id << 4 | (uint64_t)v;
    }
    return true;
}

int large_recover(struct store *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->ldir);
    if (!d)
        return store_errf(err, errlen, -errno, "%s: cannot open: %s", s->ldir, strerror(errno));
    int deleted = 0, r = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t id;
        if (!large_name(e->d_name, &id))
            continue;
        struct idx_msg *m = idx_find(&s->idx, id);
        if ((m && idx_msg_large(m)) || tx_names_large(&s->idx, id))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
            r = store_errf(err, errlen, -errno, "%s/%s: cannot delete the orphan: %s", s->ldir,
                           e->d_name, strerror(errno));
            break;
        }
        deleted++;
    }
    closedir(d);
    if (deleted)
        log_info("store: deleted %d large message file(s) no durable record names (a crash "
                 "before their record, or after their message was acknowledged)",
                 deleted);
    s->idx.on_large_gone = large_gone;
    s->idx.hook_ctx = s;
    return r;
}
