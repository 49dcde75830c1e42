/*
 * store_int — private types shared by the store's files (not for other modules).
 *
 *   store.c          open/close, layout, locks, epoch, reads, live iteration
 *   store_seg.c      segment files: names, listing, headers, creation, zeroing
 *   store_scan.c     record reader + the recovery engine (torn tail vs corruption)
 *   store_writer.c   append buffer, libaio batches, group commit, segment roll
 *   store_index.c    the live index
 *   store_bindings.c the bindings journal
 *   store_ckpt.c     checkpoints and compaction
 *   store_follow.c   read-only follower
 *
 * Process model: one writer process (holds writer.lock) owns struct store; any
 * number of followers read the files without locks. Nothing here is shared memory.
 */
#ifndef HAMQ_STORE_INT_H
#define HAMQ_STORE_INT_H

#include <libaio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hamq/journal_format.h"
#include "store.h"
#include "store_index.h"

#define STORE_MAX_BATCH_IOCBS 32
#define STORE_AIO_EVENTS 128

static inline uint64_t jnl_align(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static inline uint64_t jnl_rec_size(uint64_t payload_len)
{
    return jnl_align(sizeof(struct jnl_rec_header) + payload_len, JNL_REC_ALIGN);
}

/* err helper: snprintf into err if err is not NULL, returns code. */
int store_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Crash-point hook for tests: _exit(99) when HAMQ_STORE_CRASH_AT is "step" or
   "step:N" (the N-th time the step is passed). */
void store_crash_point(const char *step);

/* --- segment files (store_seg.c) --- */

struct seg_info {
    uint64_t seq;
    char path[4096];
    off_t file_size;
};

struct seg_list {
    struct seg_info *v;
    size_t n;
};

void seg_name(char *buf, size_t len, const char *dir, uint64_t seq);
/* Lists the <seq>.seg files of dir sorted by seq; names that are not 16 hex digits are an error;
   "*.tmp" files are removed when remove_tmp. */
int seg_list_dir(const char *dir, bool remove_tmp, struct seg_list *out, char *err, size_t errlen);
void seg_list_free(struct seg_list *l);
/* Reads and checks a segment header (magic, version, CRC, kind, seq, block). */
int seg_read_header(int fd, const char *path, uint64_t seq, uint32_t kind, off_t file_size,
                    struct jnl_seg_header *h, char *err, size_t errlen);
/* Creates <dir>/<seq>.seg preallocated, with header, synced, renamed, dir synced. */
int seg_create(const char *dir, uint32_t kind, uint64_t seq, uint64_t epoch, uint64_t size,
               char *err, size_t errlen);
/* Makes [from, to) read as zeros and durable (torn-tail cut). */
int seg_zero_range(int fd, uint64_t from, uint64_t to);
int fsync_dir(const char *dir);

/* --- recovery engine (store_scan.c) --- */

/* Called for each valid record in LSN order. */
typedef int (*scan_apply_fn)(void *ctx, const struct jnl_rec_header *h, const void *payload,
                             uint64_t seq, uint32_t off);

struct scan_params {
    const char *dir;
    uint32_t kind;
    bool writer; /* may cut torn tails and delete unacknowledged segments */
    bool allow_truncate_corrupt;
    uint64_t start_seq; /* 0 = from the first segment */
    uint32_t start_off;
    uint64_t start_lsn; /* expected LSN at the start (1 without checkpoint) */
    uint64_t skip_through_lsn; /* records <= this are read but not applied */
    scan_apply_fn apply;
    void *ctx;
};

struct scan_result {
    uint64_t end_seq; /* segment holding the logical end */
    uint32_t end_off; /* offset of the logical end (next record goes here) */
    uint64_t next_lsn;
    uint64_t max_seq; /* highest segment seq present after cleanup (0 if none) */
    uint64_t max_epoch;
    uint64_t records;
    uint64_t bytes;
    bool torn;
    bool truncated_corrupt;
};

int scan_recover(const struct scan_params *p, struct scan_result *res, char *err, size_t errlen);

/* Low-level record reader over one segment file (also used by the follower). */
struct rec_reader {
    int fd;
    uint64_t limit; /* min(file size, segment size) */
    uint8_t *buf;
    size_t cap;
    uint64_t buf_off;
    size_t buf_len;
};

enum rec_status {
    REC_OK = 0,
    REC_ZERO,     /* an all-zero header: the logical end if nothing follows */
    REC_SHORT,    /* extends past the end of the file or segment */
    REC_BAD_LEN,
    REC_BAD_TYPE,
    REC_BAD_FLAGS,
    REC_BAD_CRC,
    REC_IO,
};

int rdr_init(struct rec_reader *r, int fd, uint64_t limit);
void rdr_free(struct rec_reader *r);
/* Drops cached bytes (the file may have grown since: follow mode). */
void rdr_reset(struct rec_reader *r, uint64_t limit);
enum rec_status rdr_record(struct rec_reader *r, uint64_t off, struct jnl_rec_header *h,
                           const uint8_t **payload);
const char *rec_status_str(enum rec_status s);

/* --- the writer (store_writer.c) --- */

struct wbuf {
    struct wbuf *next;
    uint8_t *data; /* JNL_BLOCK aligned */
    size_t cap;
    uint64_t seq;      /* segment */
    uint64_t file_off; /* block-aligned file offset of data[0] */
    size_t len;        /* valid bytes from data[0] */
    uint64_t last_lsn;
    int fd;
    struct iocb iocb;
};

struct store_segfd {
    uint64_t seq;
    int wfd; /* the writer's fd (O_DIRECT when direct), -1 if not open */
    int rfd; /* buffered read fd, -1 if not open */
};

/* A large message whose file goes once the record at lsn is durable. */
struct large_dead {
    uint64_t msg_id;
    uint64_t lsn;
};

/* The fdatasync of one large message file, in flight through libaio. */
struct large_sync {
    struct large_sync *next;
    struct iocb iocb;
    int fd;
};
#define STORE_MAX_LARGE_SYNCS 32 /* in flight at once (the aio context holds 128) */

struct store {
    struct store_opts o;
    char dir[4000];
    char jdir[4096];
    char bdir[4096];
    char ldir[4096];
    struct large_dead *dead; /* store_large.c */
    size_t ndead, capdead;
    struct large_sync *lsyncs; /* files whose sync is in flight: no batch goes out */
    int large_pending;
    int lock_fd;
    uint64_t epoch;
    bool fenced;
    int failed; /* -errno after a failed write: no more writes */
    bool direct;

    struct idx idx;

    /* segments with open fds, sorted by seq */
    struct store_segfd *segs;
    size_t nsegs;
    size_t max_rfds;
    uint64_t cur_seq;
    uint64_t cur_off; /* where the next record goes */
    uint64_t next_seq_ready; /* preallocated next segment, 0 if none */

    /* LSNs */
    uint64_t next_lsn;
    uint64_t durable_lsn;
    uint64_t submitted_lsn;

    /* buffers */
    struct wbuf *fill;    /* filling, for cur_seq */
    struct wbuf *sealed;  /* queue of full or rolled buffers (FIFO) */
    struct wbuf *inflight;
    struct wbuf *freelist;
    int nfree;
    uint64_t inflight_last_lsn;
    int inflight_pending; /* completions still awaited */
    int inflight_syncs;   /* 0 = writes phase; >0 = fdsync phase */
    bool inflight_sync_phase;
    struct iocb sync_iocbs[STORE_MAX_BATCH_IOCBS];

    io_context_t aio;
    int efd;

    uint64_t last_rec_seq; /* where the last appended record went */
    uint64_t last_rec_off;

    /* checkpoint bookkeeping */
    uint64_t bytes_since_ckpt;
    uint64_t ckpt_first_seq; /* first_live_seq of the published checkpoint */
    uint64_t ckpt_begin_seq; /* segment of its BEGIN: replay starts there */
    bool ckpt_pending;       /* appended, pointer not yet published */
    bool in_maintenance;     /* checkpoint/compaction running: no nested one */
    struct jnl_ckpt_ptr ckpt_next;

    struct store_recovery rec;
    bool adopting;          /* store_open_adopt's replay: collecting fresh */
    uint64_t *fresh;        /* ids of messages the adopted tail added */
    size_t nfresh, capfresh;

    /* bindings journal */
    struct store_bindings *bind;
};

int writer_init(struct store *s, char *err, size_t errlen);
void writer_fini(struct store *s);
/* Puts the writer at the recovered end: segment seq, offset, next LSN. */
int writer_resume(struct store *s, uint64_t seq, uint64_t off, uint64_t next_lsn, char *err,
                  size_t errlen);
int writer_append(struct store *s, uint16_t type, uint16_t flags, uint64_t tx_id, const void *p1,
                  size_t l1, const void *p2, size_t l2, uint64_t *lsn_out);
/* Copies bytes of a record still in a buffer (not yet written); 1 found, 0 not. */
int writer_read_buffered(struct store *s, uint64_t seq, uint64_t off, void *dst, size_t len);
int store_seg_rfd(struct store *s, uint64_t seq);
int store_seg_forget(struct store *s, uint64_t seq);
int store_read_epoch(const char *dir, uint64_t *epoch, char *err, size_t errlen);

/* --- large messages (store_large.c) --- */
void large_path(char *out, size_t n, const char *ldir, uint64_t msg_id);
int store_add_large(struct store *s, uint64_t msg_id, const void *body, size_t len,
                    uint64_t *lsn);
/* Reads a large body (writer and follower); verifies the CRC when all of it is read. */
long large_read(const char *ldir, uint64_t msg_id, uint32_t crc, uint32_t body_len, void *buf,
                size_t len);
/* After recovery: deletes orphan files, then installs the deletion hook. */
int large_recover(struct store *s, char *err, size_t errlen);
/* Deletes the files of messages whose removal is durable (after each batch). */
void large_reap(struct store *s);
/* 1 and handled if e is a large file's sync completion, else 0. */
int large_on_event(struct store *s, const struct io_event *e);
void large_fini(struct store *s);

/* Walks the duplicate ids of an index (writer and follower). */
int store_dup_walk(const struct idx *x, store_dup_cb cb, void *ctx);

/* --- follower (store_follow.c) --- */
/* Moves the follower's index into *into (observer included), says where the first
   record it has not applied is (seq 0: from the first segment) and its LSN, and
   frees the follower. */
void follow_detach(struct store_follower *f, struct idx *into, uint64_t *seq, uint32_t *off,
                   uint64_t *lsn);

/* --- bindings (store_bindings.c) --- */
int bindings_open(struct store *s, char *err, size_t errlen);
void bindings_close(struct store *s);

/* --- checkpoint pointer (store_ckpt.c) --- */
int ckpt_ptr_read(const char *jdir, struct jnl_ckpt_ptr *p, char *err, size_t errlen);
/* Loads the checkpoint named by p into x; returns the LSN after its END record and
   where the next record after END is (seq, off). */
int ckpt_load(const char *jdir, const struct jnl_ckpt_ptr *p, struct idx *x, uint64_t *next_lsn,
              uint64_t *next_seq, uint32_t *next_off, char *err, size_t errlen);
void store_maybe_checkpoint(struct store *s);
/* Publishes an appended checkpoint once it is durable (called after reaping). */
int ckpt_after_durable(struct store *s);

#endif
