/*
 * store_bindings — the small journal of addresses and queues (bindings/).
 *
 * Same segment and record format as the message journal (kind JNL_KIND_BINDINGS),
 * but written synchronously (pwrite + fdatasync, buffered fd): queues are created
 * and deleted rarely, and the caller wants them durable on return. Cost: one sync
 * (~150 us here), blocking the caller's loop for that long.
 *
 * Only the highest-numbered segment is live. When it is full, the live bindings are
 * written into a complete new segment as "<seq+1>.tmp", synced, renamed (then the
 * directory synced), and the older segments deleted: a crash at any point leaves
 * either the old or the new complete segment as the highest, never a partial one.
 * Its LSNs restart at 1.
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
#include "hamq/log.h"
#include "store_int.h"

#define BIND_SEG_SIZE (1u << 20)
#define BIND_STR_MAX 4096

struct bnode {
    uint64_t queue_id;
    uint8_t routing;
    uint8_t durable;
    char *address, *name, *filter;
};

struct store_bindings {
    struct bnode *v;
    size_t n, cap;
    int fd;
    uint64_t seq;
    uint64_t seg_size;
    uint64_t end;
    uint64_t next_lsn;
};

static void bnode_free(struct bnode *b)
{
    free(b->address);
    free(b->name);
    free(b->filter);
    b->address = b->name = b->filter = NULL;
}

static struct bnode *bfind(struct store_bindings *B, uint64_t queue_id)
{
    for (size_t i = 0; i < B->n; i++)
        if (B->v[i].queue_id == queue_id)
            return &B->v[i];
    return NULL;
}

static void bremove(struct store_bindings *B, uint64_t queue_id)
{
    struct bnode *b = bfind(B, queue_id);
    if (!b)
        return;
    struct bnode dead = *b;
    B->n--;
    if (b != &B->v[B->n])
        *b = B->v[B->n];
    bnode_free(&dead);
}

static char *dupn(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static int bput(struct store_bindings *B, const struct jnl_binding *jb, const uint8_t *strs)
{
    bremove(B, jb->queue_id);
    if (B->n == B->cap) {
        size_t nc = B->cap ? B->cap * 2 : 16;
        struct bnode *v = realloc(B->v, nc * sizeof *v);
        if (!v)
            return -ENOMEM;
        B->v = v;
        B->cap = nc;
    }
    struct bnode *b = &B->v[B->n];
    b->queue_id = jb->queue_id;
    b->routing = jb->routing;
    b->durable = jb->durable;
    b->address = dupn(strs, jb->address_len);
    b->name = dupn(strs + jb->address_len, jb->name_len);
    b->filter = dupn(strs + jb->address_len + jb->name_len, jb->filter_len);
    if (!b->address || !b->name || !b->filter) {
        bnode_free(b);
        return -ENOMEM;
    }
    B->n++;
    return 0;
}

static int bind_apply(void *ctx, const struct jnl_rec_header *h, const void *payload, uint64_t seq,
                      uint32_t off)
{
    struct store_bindings *B = ctx;
    struct jnl_binding jb;
    (void)seq;
    (void)off;
    if (h->length < sizeof jb)
        return -EINVAL;
    memcpy(&jb, payload, sizeof jb);
    if (h->type == JNL_REC_BINDING_DEL) {
        bremove(B, jb.queue_id);
        return 0;
    }
    if (h->type != JNL_REC_BINDING_ADD)
        return 0;
    if ((size_t)jb.address_len + jb.name_len + jb.filter_len != h->length - sizeof jb ||
        jb.routing > 1)
        return -EINVAL;
    return bput(B, &jb, (const uint8_t *)payload + sizeof jb);
}

/* Encodes one record at dst (zero padded); returns its size. */
static size_t rec_encode(uint8_t *dst, uint16_t type, uint64_t lsn, const void *p1, size_t l1,
                         const void *p2, size_t l2)
{
    struct jnl_rec_header h = {.length = (uint32_t)(l1 + l2), .type = type, .lsn = lsn,
                               .synced_lsn = lsn - 1};
    size_t size = (size_t)jnl_rec_size(l1 + l2);
    memset(dst, 0, size);
    memcpy(dst + sizeof h, p1, l1);
    if (l2)
        memcpy(dst + sizeof h + l1, p2, l2);
    h.crc = crc32c(crc32c(0, &h, sizeof h), dst + sizeof h, l1 + l2);
    memcpy(dst, &h, sizeof h);
    return size;
}

static size_t binding_encode(uint8_t *dst, uint64_t lsn, const struct bnode *b)
{
    struct jnl_binding jb = {.queue_id = b->queue_id,
                             .routing = b->routing,
                             .durable = b->durable,
                             .address_len = (uint16_t)strlen(b->address),
                             .name_len = (uint16_t)strlen(b->name),
                             .filter_len = (uint16_t)strlen(b->filter)};
    uint8_t strs[3 * BIND_STR_MAX];
    size_t n = 0;
    memcpy(strs + n, b->address, jb.address_len);
    n += jb.address_len;
    memcpy(strs + n, b->name, jb.name_len);
    n += jb.name_len;
    memcpy(strs + n, b->filter, jb.filter_len);
    n += jb.filter_len;
    return rec_encode(dst, JNL_REC_BINDING_ADD, lsn, &jb, sizeof jb, strs, n);
}

static int open_seg(struct store *s, struct store_bindings *B)
{
    char path[4200];
    seg_name(path, sizeof path, s->bdir, B->seq);
    if (B->fd >= 0)
        close(B->fd);
    B->fd = open(path, O_RDWR | O_CLOEXEC);
    return B->fd < 0 ? -errno : 0;
}

/* Writes every live binding into a complete new segment, then retires the old ones. */
static int bind_rewrite(struct store *s, struct store_bindings *B)
{
    size_t need = JNL_DATA_OFFSET + 2 * BIND_SEG_SIZE / 4;
    for (size_t i = 0; i < B->n; i++)
        need += (size_t)jnl_rec_size(sizeof(struct jnl_binding) + 3 * BIND_STR_MAX);
    uint64_t size = BIND_SEG_SIZE;
    while (size < 2 * need)
        size *= 2;
    uint8_t *img = calloc(1, size);
    if (!img)
        return -ENOMEM;
    struct jnl_seg_header h = {.magic = JNL_SEG_MAGIC, .version = JNL_FORMAT_VERSION,
                               .header_size = sizeof h, .kind = JNL_KIND_BINDINGS,
                               .block_size = JNL_BLOCK, .seq = B->seq + 1, .epoch = s->epoch,
                               .created_ns = (uint64_t)time(NULL) * 1000000000ull,
                               .segment_size = size};
    h.header_crc = crc32c(0, &h, offsetof(struct jnl_seg_header, header_crc));
    memcpy(img, &h, sizeof h);
    uint64_t off = JNL_DATA_OFFSET, lsn = 1;
    for (size_t i = 0; i < B->n; i++)
        off += binding_encode(img + off, lsn++, &B->v[i]);
    char tmp[4200], fin[4200];
    snprintf(tmp, sizeof tmp, "%s/%016" PRIx64 ".tmp", s->bdir, B->seq + 1);
    seg_name(fin, sizeof fin, s->bdir, B->seq + 1);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int r = fd < 0 ? -errno : 0;
    if (r == 0 && pwrite(fd, img, size, 0) != (ssize_t)size)
        r = -EIO;
    if (r == 0 && fdatasync(fd) < 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    free(img);
    store_crash_point("bindings_rewrite_before_rename");
    if (r == 0 && rename(tmp, fin) < 0)
        r = -errno;
    if (r == 0)
        r = fsync_dir(s->bdir);
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    char old[4200];
    seg_name(old, sizeof old, s->bdir, B->seq);
    unlink(old);
    B->seq++;
    B->seg_size = size;
    B->end = off;
    B->next_lsn = lsn;
    return open_seg(s, B);
}

static int bind_append(struct store *s, uint16_t type, const struct bnode *b)
{
    struct store_bindings *B = s->bind;
    uint8_t rec[sizeof(struct jnl_rec_header) + sizeof(struct jnl_binding) + 3 * BIND_STR_MAX + 8];
    size_t n;
    if (type == JNL_REC_BINDING_ADD) {
        n = binding_encode(rec, B->next_lsn, b);
    } else {
        struct jnl_binding jb = {.queue_id = b->queue_id};
        n = rec_encode(rec, type, B->next_lsn, &jb, sizeof jb, NULL, 0);
    }
    if (B->end + n > B->seg_size) {
        int r = bind_rewrite(s, B); /* already contains the change in memory */
        return r;
    }
    if (pwrite(B->fd, rec, n, (off_t)B->end) != (ssize_t)n || fdatasync(B->fd) < 0)
        return -EIO;
    B->end += n;
    B->next_lsn++;
    return 0;
}

int store_bindings_add(struct store *s, const struct store_binding *b)
{
    if (s->fenced)
        return -ESTALE;
    if (!b || !b->address || !b->name || !b->queue_id || strlen(b->address) >= BIND_STR_MAX ||
        strlen(b->name) >= BIND_STR_MAX || (b->filter && strlen(b->filter) >= BIND_STR_MAX) ||
        (b->routing != STORE_ANYCAST && b->routing != STORE_MULTICAST))
        return -EINVAL;
    const char *filter = b->filter ? b->filter : "";
    struct jnl_binding jb = {.queue_id = b->queue_id,
                             .routing = (uint8_t)b->routing,
                             .durable = b->durable,
                             .address_len = (uint16_t)strlen(b->address),
                             .name_len = (uint16_t)strlen(b->name),
                             .filter_len = (uint16_t)strlen(filter)};
    uint8_t strs[3 * BIND_STR_MAX];
    memcpy(strs, b->address, jb.address_len);
    memcpy(strs + jb.address_len, b->name, jb.name_len);
    memcpy(strs + jb.address_len + jb.name_len, filter, jb.filter_len);
    int r = bput(s->bind, &jb, strs);
    if (r < 0)
        return r;
    return bind_append(s, JNL_REC_BINDING_ADD, bfind(s->bind, b->queue_id));
}

int store_bindings_remove(struct store *s, uint64_t queue_id)
{
    if (s->fenced)
        return -ESTALE;
    if (!bfind(s->bind, queue_id))
        return -ENOENT;
    bremove(s->bind, queue_id);
    struct bnode b = {.queue_id = queue_id};
    return bind_append(s, JNL_REC_BINDING_DEL, &b);
}

int store_foreach_binding(struct store *s, store_binding_cb cb, void *ctx)
{
    for (size_t i = 0; i < s->bind->n; i++) {
        const struct bnode *n = &s->bind->v[i];
        struct store_binding b = {.queue_id = n->queue_id,
                                  .address = n->address,
                                  .name = n->name,
                                  .filter = n->filter,
                                  .routing = n->routing ? STORE_MULTICAST : STORE_ANYCAST,
                                  .durable = n->durable};
        int r = cb(ctx, &b);
        if (r)
            return r;
    }
    return 0;
}

/* Keeps only the highest segment (the others were retired by a finished rewrite). */
static int bind_pick(struct store *s, struct store_bindings *B, char *err, size_t errlen)
{
    struct seg_list l;
    int r = seg_list_dir(s->bdir, true, &l, err, errlen);
    if (r < 0)
        return r;
    if (l.n == 0) {
        seg_list_free(&l);
        B->seq = 1;
        return seg_create(s->bdir, JNL_KIND_BINDINGS, 1, s->epoch, BIND_SEG_SIZE, err, errlen);
    }
    for (size_t i = 0; i + 1 < l.n; i++)
        unlink(l.v[i].path);
    B->seq = l.v[l.n - 1].seq;
    seg_list_free(&l);
    return 0;
}

int bindings_open(struct store *s, char *err, size_t errlen)
{
    struct store_bindings *B = calloc(1, sizeof *B);
    if (!B)
        return -ENOMEM;
    B->fd = -1;
    s->bind = B;
    int r = bind_pick(s, B, err, errlen);
    if (r < 0)
        return r;
    struct scan_params p = {.dir = s->bdir, .kind = JNL_KIND_BINDINGS, .writer = true,
                            .allow_truncate_corrupt = s->o.allow_truncate_corrupt,
                            .apply = bind_apply, .ctx = B};
    struct scan_result res;
    r = scan_recover(&p, &res, err, errlen);
    if (r < 0)
        return r;
    B->end = res.end_seq ? res.end_off : JNL_DATA_OFFSET;
    B->next_lsn = res.next_lsn;
    r = open_seg(s, B);
    struct stat st;
    if (r == 0 && fstat(B->fd, &st) == 0)
        B->seg_size = (uint64_t)st.st_size;
    if (r < 0)
        return store_errf(err, errlen, r, "%s: cannot open the bindings segment: %s", s->bdir,
                          strerror(-r));
    return 0;
}

void bindings_close(struct store *s)
{
    struct store_bindings *B = s->bind;
    if (!B)
        return;
    for (size_t i = 0; i < B->n; i++)
        bnode_free(&B->v[i]);
    free(B->v);
    if (B->fd >= 0)
        close(B->fd);
    free(B);
    s->bind = NULL;
}

int store_read_bindings(const char *dir, store_binding_cb cb, void *ctx, char *err,
                        size_t errlen)
{
    char bdir[4200];
    snprintf(bdir, sizeof bdir, "%.4000s/bindings", dir);
    struct seg_list l;
    int r = seg_list_dir(bdir, false, &l, err, errlen);
    if (r < 0)
        return r;
    if (l.n == 0) {
        seg_list_free(&l);
        return 0;
    }
    /* only the highest segment is live (a finished rewrite leaves older ones behind) */
    struct store_bindings B = {.fd = -1};
    struct scan_params p = {.dir = bdir, .kind = JNL_KIND_BINDINGS, .writer = false,
                            .start_seq = l.v[l.n - 1].seq, .apply = bind_apply, .ctx = &B};
    seg_list_free(&l);
    struct scan_result res;
    r = scan_recover(&p, &res, err, errlen);
    for (size_t i = 0; r == 0 && i < B.n; i++) {
        const struct bnode *n = &B.v[i];
        struct store_binding b = {.queue_id = n->queue_id,
                                  .address = n->address,
                                  .name = n->name,
                                  .filter = n->filter,
                                  .routing = n->routing ? STORE_MULTICAST : STORE_ANYCAST,
                                  .durable = n->durable};
        r = cb(ctx, &b);
    }
    for (size_t i = 0; i < B.n; i++)
        bnode_free(&B.v[i]);
    free(B.v);
    return r;
}
