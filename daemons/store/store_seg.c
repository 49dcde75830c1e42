/*
 * store_seg — segment files: names, directory listing, header check, creation
 * (tmp + fallocate + header + sync + rename + dir sync) and zeroing of a cut tail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "store_int.h"

int store_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void store_crash_point(const char *step)
{
    /* "step" stops at the first pass, "step:N" at the N-th (test hook only) */
    static unsigned passes;
    const char *at = getenv("HAMQ_STORE_CRASH_AT");
    size_t n = strlen(step);
    if (!at || strncmp(at, step, n) != 0 || (at[n] != 0 && at[n] != ':'))
        return;
    unsigned want = at[n] == ':' ? (unsigned)strtoul(at + n + 1, NULL, 10) : 1;
    if (++passes >= want)
        _exit(99);
}

void seg_name(char *buf, size_t len, const char *dir, uint64_t seq)
{
    snprintf(buf, len, "%s/%016" PRIx64 JNL_SEG_SUFFIX, dir, seq);
}

int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int parse_seq(const char *name, uint64_t *seq)
{
    size_t n = strlen(name);
    if (n != JNL_SEG_NAME_LEN || strcmp(name + 16, JNL_SEG_SUFFIX) != 0)
        return -EINVAL;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0)
            return -EINVAL;
        v = v << 4 | (uint64_t)d;
    }
    if (v == 0)
        return -EINVAL;
    *seq = v;
    return 0;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct seg_info *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int seg_list_add(struct seg_list *out, size_t *cap, const char *dir, const char *name,
                        uint64_t seq)
{
    if (out->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct seg_info *v = realloc(out->v, nc * sizeof *v);
        if (!v)
            return -ENOMEM;
        out->v = v;
        *cap = nc;
    }
    struct seg_info *si = &out->v[out->n++];
    si->seq = seq;
    snprintf(si->path, sizeof si->path, "%s/%s", dir, name);
    si->file_size = -1;
    return 0;
}

int seg_list_dir(const char *dir, bool remove_tmp, struct seg_list *out, char *err, size_t errlen)
{
    out->v = NULL;
    out->n = 0;
    size_t cap = 0;
    DIR *d = opendir(dir);
    if (!d)
        return store_errf(err, errlen, -errno, "%s: cannot open directory: %s", dir,
                          strerror(errno));
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        uint64_t seq;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "checkpoint") == 0)
            continue;
        if (ends_with(e->d_name, ".tmp")) {
            if (remove_tmp)
                (void)unlinkat(dirfd(d), e->d_name, 0); /* half-made file: never named .seg */
            continue;
        }
        if (parse_seq(e->d_name, &seq) < 0) {
            r = store_errf(err, errlen, -EINVAL,
                           "%s/%s: unexpected file in the journal directory (segments are "
                           "named <16 hex digits>.seg)",
                           dir, e->d_name);
            break;
        }
        r = seg_list_add(out, &cap, dir, e->d_name, seq);
    }
    closedir(d);
    if (r < 0) {
        seg_list_free(out);
        return r;
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, seg_cmp);
    return 0;
}

void seg_list_free(struct seg_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int seg_read_header(int fd, const char *path, uint64_t seq, uint32_t kind, off_t file_size,
                    struct jnl_seg_header *h, char *err, size_t errlen)
{
    if (file_size == 0)
        return store_errf(err, errlen, -EBADMSG,
                          "%s: offset 0: the segment file is empty (0 bytes), expected a "
                          "%zu-byte segment header",
                          path, sizeof *h);
    if (file_size < (off_t)sizeof *h)
        return store_errf(err, errlen, -EBADMSG,
                          "%s: offset 0: the file is %lld bytes, too short for a segment header",
                          path, (long long)file_size);
    ssize_t n = pread(fd, h, sizeof *h, 0);
    if (n != (ssize_t)sizeof *h)
        return store_errf(err, errlen, n < 0 ? -errno : -EIO, "%s: cannot read the header: %s",
                          path, n < 0 ? strerror(errno) : "short read");
    if (h->magic != JNL_SEG_MAGIC)
        return store_errf(err, errlen, -EBADMSG,
                          "%s: offset 0: bad magic 0x%08x (expected 0x%08x): not a hamq segment",
                          path, h->magic, JNL_SEG_MAGIC);
    if (crc32c(0, h, offsetof(struct jnl_seg_header, header_crc)) != h->header_crc)
        return store_errf(err, errlen, -EBADMSG, "%s: offset 0: segment header CRC mismatch",
                          path);
    if (h->version != JNL_FORMAT_VERSION)
        return store_errf(err, errlen, -EPROTO,
                          "%s: offset 4: unknown format version %u (this build reads %u)", path,
                          h->version, JNL_FORMAT_VERSION);
    if (h->kind != kind || h->block_size != JNL_BLOCK || h->seq != seq ||
        h->segment_size < 2 * JNL_BLOCK || h->segment_size % JNL_BLOCK)
        return store_errf(err, errlen, -EBADMSG,
                          "%s: offset 0: header does not match (kind %u/%u, seq %" PRIu64
                          "/%" PRIu64 ", block %u, size %" PRIu64 ")",
                          path, h->kind, kind, h->seq, seq, h->block_size, h->segment_size);
    return 0;
}

int seg_create(const char *dir, uint32_t kind, uint64_t seq, uint64_t epoch, uint64_t size,
               char *err, size_t errlen)
{
    char tmp[4200], fin[4200];
    snprintf(tmp, sizeof tmp, "%s/%016" PRIx64 ".tmp", dir, seq);
    seg_name(fin, sizeof fin, dir, seq);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return store_errf(err, errlen, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    int r = 0;
    if (fallocate(fd, 0, 0, (off_t)size) < 0) {
        /* file systems without fallocate: extend; writes then allocate as they go */
        if ((errno != EOPNOTSUPP && errno != ENOSYS) || ftruncate(fd, (off_t)size) < 0)
            r = store_errf(err, errlen, -errno, "%s: cannot preallocate %" PRIu64 " bytes: %s",
                           tmp, size, strerror(errno));
    }
    static uint8_t block[JNL_BLOCK] __attribute__((aligned(64)));
    struct jnl_seg_header h;
    memset(&h, 0, sizeof h);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h.magic = JNL_SEG_MAGIC;
    h.version = JNL_FORMAT_VERSION;
    h.header_size = sizeof h;
    h.kind = kind;
    h.block_size = JNL_BLOCK;
    h.seq = seq;
    h.epoch = epoch;
    h.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    h.segment_size = size;
    h.header_crc = crc32c(0, &h, offsetof(struct jnl_seg_header, header_crc));
    memset(block, 0, sizeof block);
    memcpy(block, &h, sizeof h);
    if (r == 0 && pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block)
        r = store_errf(err, errlen, -EIO, "%s: cannot write the header: %s", tmp, strerror(errno));
    if (r == 0 && fdatasync(fd) < 0)
        r = store_errf(err, errlen, -errno, "%s: fdatasync: %s", tmp, strerror(errno));
    close(fd);
    store_crash_point("seg_create_before_rename");
    if (r == 0 && rename(tmp, fin) < 0)
        r = store_errf(err, errlen, -errno, "%s: rename: %s", tmp, strerror(errno));
    if (r == 0 && (r = fsync_dir(dir)) < 0)
        store_errf(err, errlen, r, "%s: fsync of the directory: %s", dir, strerror(-r));
    if (r < 0)
        unlink(tmp);
    return r;
}

int seg_zero_range(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[JNL_BLOCK];
    if (to <= from)
        return 0;
    uint64_t head_end = jnl_align(from, JNL_BLOCK);
    if (head_end > to)
        head_end = to;
    if (head_end > from && pwrite(fd, zeros, head_end - from, (off_t)from) < 0)
        return -errno;
    uint64_t pos = head_end;
    if (pos < to) {
        /* punch the rest and allocate it again: reads as zeros, no data written */
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)pos,
                      (off_t)(to - pos)) == 0) {
            if (fallocate(fd, 0, (off_t)pos, (off_t)(to - pos)) < 0 && errno != EOPNOTSUPP)
                return -errno;
        } else {
            for (; pos < to; pos += JNL_BLOCK) {
                size_t n = to - pos < JNL_BLOCK ? (size_t)(to - pos) : JNL_BLOCK;
                if (pwrite(fd, zeros, n, (off_t)pos) < 0)
                    return -errno;
            }
        }
    }
    return fdatasync(fd) < 0 ? -errno : 0;
}
