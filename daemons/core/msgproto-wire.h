/*
 * msgproto-wire — the little-endian cursor both msgproto codecs share
 * (records in msgproto.c, messages in msgproto-msg.c). Private to
 * libhamqmsg.a. A writer with buf == NULL only counts; a reader never reads
 * past its end: every get checks the remaining length first and sets `bad`.
 */
#ifndef HAMQ_MSGPROTO_WIRE_H
#define HAMQ_MSGPROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/msgproto.h"

struct wire_w {
    uint8_t *buf; /* NULL: count only */
    size_t cap, pos;
    bool bad;     /* a str was invalid */
};

struct wire_r {
    const uint8_t *buf;
    size_t len, pos;
    bool bad;
};

/*
 * The fixed-width puts and gets are inline: every record and message is
 * encoded field by field, twice (a counting pass, then the write), and as
 * out-of-line calls they were ~20% of a worker's CPU producing (perf); inline,
 * the byte loops below compile to single loads and stores.
 */
static inline void wire_put_fixed(struct wire_w *w, uint64_t v, size_t n)
{
    if (w->buf && w->pos + n <= w->cap)
        for (size_t i = 0; i < n; i++)
            w->buf[w->pos + i] = (uint8_t)(v >> (8 * i));
    w->pos += n;
}

static inline void wire_put_u8(struct wire_w *w, uint8_t v)
{
    wire_put_fixed(w, v, 1);
}

static inline void wire_put_u16(struct wire_w *w, uint16_t v)
{
    wire_put_fixed(w, v, 2);
}

static inline void wire_put_u32(struct wire_w *w, uint32_t v)
{
    wire_put_fixed(w, v, 4);
}

static inline void wire_put_u64(struct wire_w *w, uint64_t v)
{
    wire_put_fixed(w, v, 8);
}

void wire_put_raw(struct wire_w *w, const void *p, size_t n);
void wire_put_str(struct wire_w *w, struct msgproto_bytes s);
void wire_put_bin(struct wire_w *w, struct msgproto_bytes b);

/* n bytes at the cursor, or NULL (and bad set) when fewer remain. */
static inline const uint8_t *wire_take(struct wire_r *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->buf + r->pos;
    r->pos += n;
    return p;
}

static inline uint64_t wire_get_fixed(struct wire_r *r, size_t n)
{
    const uint8_t *p = wire_take(r, n);
    uint64_t v = 0;
    for (size_t i = n; p && i > 0; i--)
        v = (v << 8) | p[i - 1];
    return v;
}

static inline uint8_t wire_get_u8(struct wire_r *r)
{
    return (uint8_t)wire_get_fixed(r, 1);
}

static inline uint16_t wire_get_u16(struct wire_r *r)
{
    return (uint16_t)wire_get_fixed(r, 2);
}

static inline uint32_t wire_get_u32(struct wire_r *r)
{
    return (uint32_t)wire_get_fixed(r, 4);
}

static inline uint64_t wire_get_u64(struct wire_r *r)
{
    return wire_get_fixed(r, 8);
}

struct msgproto_bytes wire_get_str(struct wire_r *r);
struct msgproto_bytes wire_get_bin(struct wire_r *r);

#endif
