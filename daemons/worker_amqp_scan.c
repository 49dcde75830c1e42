/*
 * worker_amqp_scan — a zero-copy reader of AMQP 1.0 encoded values (the
 * type system of AMQP 1.0 part 1), for the hot path of a producer's message:
 * the worker needs a few fields of the header, properties, application
 * properties and message annotations, and must check that the transfer is a
 * well-formed message, but never needs the body's value. Decoding the whole
 * message into a pn_message_t copied and re-allocated every section (a fifth
 * of the worker's CPU per message); this reader walks the bytes in place.
 *
 * Rules kept:
 *  - every read is bounds checked against the cursor's end; a value whose
 *    size or count does not fit gives -EBADMSG, never a read past the end;
 *  - a compound (list, map, array) is checked element by element, to a
 *    nesting depth of WKA_SCAN_DEPTH, so a message accepted here is one
 *    Proton (or any consumer) can decode;
 *  - values point into the scanned bytes; nothing is allocated.
 * Who calls it: worker_amqp_msg.c. Unit-tested through the AMQP tests and
 * the libFuzzer target (tests/amqp/fuzz_amqp.c).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "worker_amqp.h"

#define WKA_SCAN_DEPTH 32

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Bytes of the fixed-width payload for a constructor, or -1 if not fixed. */
static int fixed_width(uint8_t code)
{
    switch (code >> 4) {
    case 0x4: return 0;
    case 0x5: return 1;
    case 0x6: return 2;
    case 0x7: return 4;
    case 0x8: return 8;
    case 0x9: return 16;
    default: return -1;
    }
}

/* The known fixed-width constructors (an unknown one is a decode error). */
static bool fixed_known(uint8_t code)
{
    switch (code) {
    case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45:
    case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56:
    case 0x60: case 0x61:
    case 0x70: case 0x71: case 0x72: case 0x73: case 0x74:
    case 0x80: case 0x81: case 0x82: case 0x83: case 0x84:
    case 0x94: case 0x98:
        return true;
    default:
        return false;
    }
}

static int scan_value(struct wka_cur *c, struct wka_val *v, int depth);

/* The elements of a list or map payload: count values, exactly filling it. */
static int check_elements(const uint8_t *p, uint32_t len, uint32_t count, int depth)
{
    struct wka_cur in = {p, p + len};
    struct wka_val e;

    for (uint32_t i = 0; i < count; i++)
        if (scan_value(&in, &e, depth + 1) < 0)
            return -EBADMSG;
    return in.p == in.end ? 0 : -EBADMSG;
}

/* An array payload: one constructor (maybe described), then count bare payloads. */
static int check_array(const uint8_t *p, uint32_t len, uint32_t count, int depth)
{
    struct wka_cur in = {p, p + len};
    struct wka_val e;

    if (len == 0)
        return -EBADMSG;
    if (*in.p == 0x00) {
        in.p++;
        if (scan_value(&in, &e, depth + 1) < 0) /* the descriptor */
            return -EBADMSG;
    }
    if (in.p >= in.end)
        return -EBADMSG;
    uint8_t code = *in.p++;
    for (uint32_t i = 0; i < count; i++) {
        struct wka_cur one = in;
        /* Re-scan each element as if it carried the shared constructor. */
        int r = wka_scan_body(&one, code, &e, depth + 1);
        if (r < 0)
            return -EBADMSG;
        in.p = one.p;
    }
    return in.p == in.end ? 0 : -EBADMSG;
}

int wka_scan_body(struct wka_cur *c, uint8_t code, struct wka_val *v, int depth)
{
    size_t avail = (size_t)(c->end - c->p);
    int w = fixed_width(code);

    memset(v, 0, sizeof(*v));
    v->code = code;
    if (depth > WKA_SCAN_DEPTH)
        return -EBADMSG;
    if (w >= 0) {
        if (!fixed_known(code) || avail < (size_t)w)
            return -EBADMSG;
        v->p = c->p;
        v->len = (uint32_t)w;
        v->u = w <= 8 ? be(c->p, (unsigned)w) : 0;
        c->p += w;
        return 0;
    }
    unsigned sw = (code >> 4) == 0xa || (code >> 4) == 0xc || (code >> 4) == 0xe ? 1 : 4;
    bool var = (code >> 4) == 0xa || (code >> 4) == 0xb;
    bool compound = (code >> 4) >= 0xc;
    if (var ? (code & 0xf) != 0 && (code & 0xf) != 1 && (code & 0xf) != 3
            : !compound || (code & 0xf) > ((code >> 4) >= 0xe ? 0 : 1))
        return -EBADMSG;
    if (avail < sw)
        return -EBADMSG;
    uint64_t size = be(c->p, sw);
    if (size > avail - sw)
        return -EBADMSG;
    const uint8_t *payload = c->p + sw;
    c->p = payload + size;
    if (var) {
        v->p = payload;
        v->len = (uint32_t)size;
        return 0;
    }
    if (size < sw)
        return -EBADMSG;
    v->count = (uint32_t)be(payload, sw);
    v->p = payload + sw;
    v->len = (uint32_t)(size - sw);
    if ((code & 0xf) == 1 && v->count % 2)
        return -EBADMSG; /* a map holds key/value pairs */
    if ((code >> 4) >= 0xe)
        return check_array(v->p, v->len, v->count, depth);
    return check_elements(v->p, v->len, v->count, depth);
}

static int scan_value(struct wka_cur *c, struct wka_val *v, int depth)
{
    struct wka_val d;

    if (c->p >= c->end)
        return -EBADMSG;
    uint8_t code = *c->p++;
    if (code != 0x00)
        return wka_scan_body(c, code, v, depth);
    if (scan_value(c, &d, depth + 1) < 0) /* descriptor: a ulong or a symbol */
        return -EBADMSG;
    /* The value may itself be described (an amqp-value holding a described type). */
    const uint8_t *value_at = c->p;
    if (scan_value(c, v, depth + 1) < 0)
        return -EBADMSG;
    v->described = true;
    v->desc = wka_val_is_ulong(&d) ? d.u : UINT64_MAX;
    v->dsym = wka_val_is_sym(&d) ? d.p : NULL;
    v->dsym_len = wka_val_is_sym(&d) ? d.len : 0;
    v->value_at = value_at;
    return 0;
}

int wka_scan(struct wka_cur *c, struct wka_val *v)
{
    return scan_value(c, v, 0);
}

bool wka_val_is_ulong(const struct wka_val *v)
{
    return v->code == 0x80 || v->code == 0x53 || v->code == 0x44;
}

bool wka_val_is_null(const struct wka_val *v)
{
    return v->code == 0x40;
}

bool wka_val_is_compound(const struct wka_val *v)
{
    return v->code == 0x45 || v->code == 0xc0 || v->code == 0xd0 || v->code == 0xc1 ||
           v->code == 0xd1;
}

/* Elements of a list or map (list0 has none). */
void wka_val_enter(const struct wka_val *v, struct wka_cur *in)
{
    in->p = v->p;
    in->end = v->p + (v->code == 0x45 ? 0 : v->len);
}

bool wka_val_bool(const struct wka_val *v, bool dflt)
{
    switch (v->code) {
    case 0x41: return true;
    case 0x42: return false;
    case 0x56: return v->u != 0;
    default: return dflt;
    }
}

/* An unsigned integer of any width (ubyte..ulong, smalluint...), else dflt. */
uint64_t wka_val_uint(const struct wka_val *v, uint64_t dflt)
{
    switch (v->code) {
    case 0x43: case 0x44: return 0;
    case 0x50: case 0x52: case 0x53: case 0x60: case 0x70: case 0x80: return v->u;
    default: return dflt;
    }
}

/* A signed value widened: byte/short/int/long/smallint/smalllong/timestamp. */
int64_t wka_val_int(const struct wka_val *v, int64_t dflt)
{
    switch (v->code) {
    case 0x51: case 0x54: case 0x55: return (int8_t)v->u;
    case 0x61: return (int16_t)v->u;
    case 0x71: return (int32_t)v->u;
    case 0x81: case 0x83: return (int64_t)v->u;
    default: return dflt;
    }
}

bool wka_val_is_str(const struct wka_val *v)
{
    return v->code == 0xa1 || v->code == 0xb1;
}

bool wka_val_is_sym(const struct wka_val *v)
{
    return v->code == 0xa3 || v->code == 0xb3;
}

bool wka_val_is_bin(const struct wka_val *v)
{
    return v->code == 0xa0 || v->code == 0xb0;
}
