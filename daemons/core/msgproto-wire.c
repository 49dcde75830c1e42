/* msgproto-wire — bounds-checked little-endian cursor (see msgproto-wire.h; the
 * fixed-width puts and gets are inline there). */
#include "msgproto-wire.h"

#include <string.h>

static void put(struct wire_w *w, const void *p, size_t n)
{
    if (w->buf && w->pos + n <= w->cap && n)
        memcpy(w->buf + w->pos, p, n);
    w->pos += n;
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

struct msgproto_bytes wire_get_str(struct wire_r *r)
{
    struct msgproto_bytes s = {(const uint8_t *)"", 0};
    uint32_t n = wire_get_u32(r);
    if (r->bad || n > MSGPROTO_STR_MAX) {
        r->bad = true;
        return s;
    }
    const uint8_t *p = wire_take(r, (size_t)n + 1);
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
    const uint8_t *p = wire_take(r, n);
    if (p) {
        b.p = p;
        b.len = n;
    }
    return b;
}
