/*
 * worker_amqp_guard — the few AMQP framing rules Proton's engine does not
 * enforce, checked on the client's bytes before Proton reads them:
 *   - a begin on a channel the client already began (and did not end),
 *   - an attach on a handle already attached on that session,
 *   - a transfer on a link where the client is the receiving end.
 * Proton would open a second session, bind a second link to the handle, or
 * ignore the transfer, and the connection would go on in a state neither side
 * agrees on. Everything else (sizes, types, unknown performatives, unknown
 * handles) Proton checks itself; the guard only follows frame boundaries and
 * gives up quietly on anything it cannot read (Proton then reports it).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "worker_amqp.h"

#define PERF_BEGIN    0x11u
#define PERF_ATTACH   0x12u
#define PERF_TRANSFER 0x14u
#define PERF_DETACH   0x16u
#define PERF_END      0x17u

/* The maps' values: addresses of these markers (a value is never NULL). */
static const char ROLE_SENDER = 's'; /* the client sends on the link (its role field is false) */
static const char ROLE_RECEIVER = 'r';
static const char IN_USE = 'u';

void wka_guard_init(struct wka_guard *g)
{
    memset(g, 0, sizeof(*g));
    u64map_init(&g->channels);
    u64map_init(&g->handles);
}

void wka_guard_free(struct wka_guard *g)
{
    u64map_free(&g->channels);
    u64map_free(&g->handles);
}

/* ---- a minimal reader of the performative's first fields ---- */

struct rd {
    const uint8_t *p, *end;
};

static bool rd_u8(struct rd *r, uint8_t *v)
{
    if (r->p >= r->end)
        return false;
    *v = *r->p++;
    return true;
}

static bool rd_be(struct rd *r, unsigned n, uint64_t *v)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    *v = 0;
    for (unsigned i = 0; i < n; i++)
        *v = (*v << 8) | *r->p++;
    return true;
}

/* The descriptor code and the list's field count; the reader is left at field 0. */
static bool rd_performative(struct rd *r, uint64_t *code, uint64_t *count)
{
    uint8_t c;
    uint64_t n;

    if (!rd_u8(r, &c) || c != 0x00 || !rd_u8(r, &c))
        return false;
    if (c == 0x53) {
        if (!rd_be(r, 1, code))
            return false;
    } else if (c != 0x80 || !rd_be(r, 8, code)) {
        return false;
    }
    if (!rd_u8(r, &c))
        return false;
    if (c == 0x45) {
        *count = 0;
        return true;
    }
    unsigned w = c == 0xc0 ? 1 : c == 0xd0 ? 4 : 0;
    return w && rd_be(r, w, &n) && rd_be(r, w, count);
}

/* A field that is a uint (or null, *present = false). */
static bool rd_uint(struct rd *r, uint64_t *v, bool *present)
{
    uint8_t c;

    *present = true;
    if (!rd_u8(r, &c))
        return false;
    switch (c) {
    case 0x40: *present = false; return true;
    case 0x43: *v = 0; return true;
    case 0x52: return rd_be(r, 1, v);
    case 0x70: return rd_be(r, 4, v);
    default: return false;
    }
}

static bool rd_bool(struct rd *r, bool *v)
{
    uint8_t c, b;

    if (!rd_u8(r, &c))
        return false;
    if (c == 0x41 || c == 0x42) {
        *v = c == 0x41;
        return true;
    }
    if (c == 0x56 && rd_u8(r, &b)) {
        *v = b != 0;
        return true;
    }
    return false;
}

/* Skips a string, symbol or binary field (attach's name), or a null. */
static bool rd_skip_var(struct rd *r)
{
    uint8_t c;
    uint64_t n;

    if (!rd_u8(r, &c))
        return false;
    if (c == 0x40)
        return true;
    unsigned w = c == 0xa0 || c == 0xa1 || c == 0xa3 ? 1 : c == 0xb0 || c == 0xb1 || c == 0xb3 ? 4 : 0;
    if (!w || !rd_be(r, w, &n) || n > (uint64_t)(r->end - r->p))
        return false;
    r->p += n;
    return true;
}

/* ---- the rules ---- */

/* The handle map's key: never 0, which u64map reserves. */
static uint64_t hkey(uint16_t channel, uint64_t handle)
{
    return (((uint64_t)channel << 32) | (handle & 0xffffffffu)) + 1;
}

static void forget_channel(struct wka_guard *g, uint16_t channel)
{
    struct u64map_entry *e;
    size_t pos = 0;
    uint64_t keys[64];
    size_t n;

    u64map_del(&g->channels, (uint64_t)channel + 1);
    do { /* collect, then delete: the map is not changed while it is walked */
        n = 0;
        pos = 0;
        while (n < 64 && (e = u64map_next(&g->handles, &pos)))
            if (((e->key - 1) >> 32) == channel)
                keys[n++] = e->key;
        for (size_t i = 0; i < n; i++)
            u64map_del(&g->handles, keys[i]);
    } while (n == 64);
}

static int violation(struct wka_guard *g, const char *cond)
{
    g->cond = cond;
    return -EPROTO;
}

/* Out of memory for the maps: stop guarding this connection rather than fail it. */
static int give_up(struct wka_guard *g)
{
    g->off = true;
    return 0;
}

static int inspect(struct wka_guard *g, char *text, size_t cap)
{
    struct rd r = {g->prefix, g->prefix + g->plen};
    uint64_t code, count, handle = 0;
    bool present = false;
    uint16_t ch = g->channel;

    if (!rd_performative(&r, &code, &count))
        return 0;
    switch (code) {
    case PERF_BEGIN:
        if (u64map_get(&g->channels, (uint64_t)ch + 1)) {
            snprintf(text, cap, "begin on channel %u, which is in use", (unsigned)ch);
            return violation(g, "amqp:not-allowed");
        }
        return u64map_put(&g->channels, (uint64_t)ch + 1, (void *)&IN_USE) < 0 ? give_up(g) : 0;
    case PERF_END:
        forget_channel(g, ch);
        return 0;
    case PERF_ATTACH: {
        bool receiver;
        if (count < 3 || !rd_skip_var(&r) || !rd_uint(&r, &handle, &present) || !present ||
            !rd_bool(&r, &receiver))
            return 0;
        if (u64map_get(&g->handles, hkey(ch, handle))) {
            snprintf(text, cap, "attach on handle %llu of channel %u, which is in use",
                     (unsigned long long)handle, (unsigned)ch);
            return violation(g, "amqp:session:handle-in-use");
        }
        void *role = (void *)(receiver ? &ROLE_RECEIVER : &ROLE_SENDER);
        return u64map_put(&g->handles, hkey(ch, handle), role) < 0 ? give_up(g) : 0;
    }
    case PERF_DETACH:
        if (count >= 1 && rd_uint(&r, &handle, &present) && present)
            u64map_del(&g->handles, hkey(ch, handle));
        return 0;
    case PERF_TRANSFER:
        if (count >= 1 && rd_uint(&r, &handle, &present) && present &&
            u64map_get(&g->handles, hkey(ch, handle)) == &ROLE_RECEIVER) {
            snprintf(text, cap, "transfer on handle %llu of channel %u, where the client is "
                     "the receiving end", (unsigned long long)handle, (unsigned)ch);
            return violation(g, "amqp:session:errant-link");
        }
        return 0;
    default:
        return 0;
    }
}

/*
 * How many bytes of the body inspect needs, known once the descriptor is in:
 * the list header for begin and end (the channel is in the frame header), the
 * list header and the handle for transfer and detach, the prefix for attach
 * (its name comes before the handle), none for the rest. A transfer's message
 * is never copied.
 */
static size_t wanted(const struct wka_guard *g)
{
    uint64_t code;
    size_t dlen;

    if (g->plen < 3)
        return 3;
    if (g->prefix[0] != 0x00)
        return 0; /* not a described performative: Proton's to judge */
    if (g->prefix[1] == 0x53) {
        dlen = 3;
        code = g->prefix[2];
    } else if (g->prefix[1] == 0x80) {
        struct rd r = {g->prefix + 2, g->prefix + g->plen};
        if (!rd_be(&r, 8, &code))
            return 10;
        dlen = 10;
    } else {
        return 0;
    }
    switch (code) {
    case PERF_BEGIN:
    case PERF_END: return dlen + 9; /* the list header (at most list32's 9 bytes) */
    case PERF_TRANSFER:
    case PERF_DETACH: return dlen + 9 + 5; /* the list header, the handle as a uint */
    case PERF_ATTACH: return WKA_GUARD_PREFIX;
    default: return 0;
    }
}

/* Keeps what inspect needs of k body bytes (last: the frame ends with them), then inspects. */
static int collect(struct wka_guard *g, const uint8_t *p, size_t k, bool last, char *text,
                   size_t cap)
{
    while (g->type == 0 && !g->inspected) {
        size_t want = wanted(g);
        if (g->plen < want && k) {
            size_t take = want - g->plen < k ? want - g->plen : k;
            memcpy(g->prefix + g->plen, p, take);
            g->plen += take;
            p += take;
            k -= take;
            continue;
        }
        if (g->plen < want && !last)
            return 0; /* the rest of what it needs is still to come */
        g->inspected = true;
        return inspect(g, text, cap);
    }
    return 0;
}

/*
 * The stream: protocol headers ("AMQP" + 4 bytes: SASL, then AMQP) and frames
 * (size, doff, type, channel). Of an AMQP frame (type 0) the bytes its
 * performative's check needs (wanted) are kept and inspected.
 */
int wka_guard_feed(struct wka_guard *g, const uint8_t *p, size_t n, char *text, size_t cap)
{
    while (n && !g->off) {
        if (g->hlen < 8) { /* a frame header or a protocol header */
            size_t k = 8 - g->hlen < n ? 8 - g->hlen : n;
            memcpy(g->hdr + g->hlen, p, k);
            g->hlen += k;
            p += k;
            n -= k;
            if (g->hlen < 8)
                return 0;
            if (memcmp(g->hdr, "AMQP", 4) == 0) {
                g->hlen = 0; /* a protocol header: frames follow */
                continue;
            }
            uint64_t size = ((uint64_t)g->hdr[0] << 24) | ((uint64_t)g->hdr[1] << 16) |
                            ((uint64_t)g->hdr[2] << 8) | g->hdr[3];
            uint64_t doff = (uint64_t)g->hdr[4] * 4;
            if (doff < 8 || size < doff) {
                g->off = true; /* malformed: Proton says so */
                return 0;
            }
            g->skip_ext = doff - 8;
            g->left = size - doff;
            g->type = g->hdr[5];
            g->channel = (uint16_t)((g->hdr[6] << 8) | g->hdr[7]);
            g->plen = 0;
            g->inspected = false;
        }
        size_t k = g->skip_ext < n ? (size_t)g->skip_ext : n;
        g->skip_ext -= k;
        p += k;
        n -= k;
        if (g->skip_ext)
            return 0;
        k = g->left < n ? (size_t)g->left : n;
        int r = collect(g, p, k, k == g->left, text, cap);
        if (r < 0)
            return r;
        g->left -= k;
        p += k;
        n -= k;
        if (!g->left)
            g->hlen = 0;
    }
    return 0;
}
