/* msgproto-wire — bounds-checked little-endian cursor (see msgproto-wire.h). */
#include "msgproto-wire.h"

#include <string.h>

static void put(struct wire_w *w, const void *p, size_t n)
{
    if (w->buf && w->pos + n <= w->cap && n)
        memcpy(w->buf + w->pos, p, n);
    w->pos += n;
}

void wire_put_u8(struct wire_w *w, uint8_t v) { put(w, &v, 1); }

void wire_put_u16(struct wire_w *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 2);
}

void wire_put_u32(struct wire_w *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 4);
}

void wire_put_u64(struct wire_w *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 8);
}

void wire_put_raw(struct wire_w *w, const void *p, size_t n) { put(w, p, n); }

void wire_put_str(struct wire_w *w, struct msgproto_bytes s)
{
    if (s.len > MSGPROTO_STR_MAX || (s.len && (!s.p || memchr(s.p, 0, s.len)))) {
        w->bad = true;
        return;
    }
    wire_put_u32(w, s.len);
    put(w, s.p, s.len);
    wire_put_u8(w, 0);
}

void wire_put_bin(struct wire_w *w, struct msgproto_bytes b)
{
    if (b.len && !b.p) {
        w->bad = true;
        return;
    }
    wire_put_u32(w, b.len);
    put(w, b.p, b.len);
}

static const uint8_t *take(struct wire_r *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->buf + r->pos;
    r->pos += n;
    return p;
}

uint8_t wire_get_u8(struct wire_r *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t wire_get_u16(struct wire_r *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)(p[0] | (p[1] << 8)) : 0;
}

uint32_t wire_get_u32(struct wire_r *r)
{
    const uint8_t *p = take(r, 4);
    uint32_t v = 0;
    for (int i = 3; p && i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t wire_get_u64(struct wire_r *r)
{
    const uint8_t *p = take(r, 8);
    uint64_t v = 0;
    for (int i = 7; p && i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

struct msgproto_bytes wire_get_str(struct wire_r *r)
{
    struct msgproto_bytes s = {(const uint8_t *)"", 0};
    uint32_t n = wire_get_u32(r);
    if (r->bad || n > MSGPROTO_STR_MAX) {
        r->bad = true;
        return s;
    }
    const uint8_t *p = take(r, (size_t)n + 1);
    if (!p || p[n] != 0 || memchr(p, 0, n)) {
        r->bad = true;
        return s;
    }
    s.p = p;
    s.len = n;
    return s;
}

struct msgproto_bytes wire_get_bin(struct wire_r *r)
{
    struct msgproto_bytes b = {(const uint8_t *)"", 0};
    uint32_t n = wire_get_u32(r);
    const uint8_t *p = take(r, n);
    if (p) {
        b.p = p;
        b.len = n;
    }
    return b;
}
