/*
 * msgproto — encode/decode of worker⇄core ring records, fragmentation and
 * reassembly (see include/hamq/msgproto.h for the wire rules).
 *
 * One field walker per record type serves both directions: in write mode it
 * appends each field, in read mode it fills it from the bytes. Encoder and
 * decoder therefore cannot disagree on a layout.
 */
#include "hamq/msgproto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msgproto-wire.h"

struct codec {
    bool reading;
    struct wire_w w;
    struct wire_r r;
};

static void f_u8(struct codec *c, uint8_t *v)
{
    if (c->reading)
        *v = wire_get_u8(&c->r);
    else
        wire_put_u8(&c->w, *v);
}

static void f_u32(struct codec *c, uint32_t *v)
{
    if (c->reading)
        *v = wire_get_u32(&c->r);
    else
        wire_put_u32(&c->w, *v);
}

static void f_i32(struct codec *c, int32_t *v)
{
    uint32_t u = (uint32_t)*v;
    f_u32(c, &u);
    *v = (int32_t)u;
}

static void f_u64(struct codec *c, uint64_t *v)
{
    if (c->reading)
        *v = wire_get_u64(&c->r);
    else
        wire_put_u64(&c->w, *v);
}

static void f_i64(struct codec *c, int64_t *v)
{
    uint64_t u = (uint64_t)*v;
    f_u64(c, &u);
    *v = (int64_t)u;
}

static void f_str(struct codec *c, struct msgproto_bytes *s)
{
    if (c->reading)
        *s = wire_get_str(&c->r);
    else
        wire_put_str(&c->w, *s);
}

static void f_bin(struct codec *c, struct msgproto_bytes *b)
{
    if (c->reading)
        *b = wire_get_bin(&c->r);
    else
        wire_put_bin(&c->w, *b);
}

static void walk_send(struct codec *c, struct msgproto_send *s)
{
    f_u64(c, &s->conn);
    f_u64(c, &s->corr);
    f_u64(c, &s->tx);
    f_u8(c, &s->routing);
    f_u8(c, &s->priority);
    f_i64(c, &s->expiration);
    f_str(c, &s->address);
    f_str(c, &s->queue);
    f_bin(c, &s->dup_id);
    f_bin(c, &s->message);
}

static void walk_subscribe(struct codec *c, struct msgproto_subscribe *s)
{
    f_u64(c, &s->conn);
    f_u64(c, &s->consumer);
    f_u64(c, &s->corr);
    f_u8(c, &s->routing);
    f_u8(c, &s->options);
    f_u32(c, &s->credit);
    f_str(c, &s->address);
    f_str(c, &s->queue);
    f_str(c, &s->sub_name);
    f_str(c, &s->filter);
}

static void walk_settle(struct codec *c, struct msgproto_settle *s)
{
    f_u64(c, &s->conn);
    f_u64(c, &s->consumer);
    f_u64(c, &s->delivery);
    f_u64(c, &s->tx);
    f_u64(c, &s->corr);
}

static void walk_frag(struct codec *c, struct msgproto_fragment_rec *f)
{
    f_u64(c, &f->conn);
    f_u32(c, &f->seq);
    f_u8(c, &f->kind);
    f_u64(c, &f->total);
    f_bin(c, &f->chunk);
}

static void walk_deliver(struct codec *c, struct msgproto_deliver *d)
{
    f_u64(c, &d->conn);
    f_u64(c, &d->consumer);
    f_u64(c, &d->delivery);
    f_u64(c, &d->message_id);
    f_u32(c, &d->delivery_count);
    f_bin(c, &d->message);
}

static void walk_stat(struct codec *c, struct msgproto_stat_reply *s)
{
    f_u64(c, &s->request);
    f_u8(c, &s->routing);
    f_u32(c, &s->consumers);
    f_u64(c, &s->messages);
    f_u64(c, &s->added);
    f_u64(c, &s->delivering);
    f_u64(c, &s->acked);
    f_u8(c, &s->durable);
    f_u64(c, &s->dead_lettered);
    f_u64(c, &s->expired);
    f_str(c, &s->name);
    f_str(c, &s->address);
}

/* Returns false for an unknown type. */
static bool walk(struct codec *c, struct msgproto_rec *rec)
{
    switch (rec->type) {
    case MSGPROTO_HELLO:
        f_u32(c, &rec->u.hello.worker);
        f_u32(c, &rec->u.hello.pid);
        f_u32(c, &rec->u.hello.proto_version);
        return true;
    case MSGPROTO_CONN_OPEN:
    case MSGPROTO_CONN_CLOSE:
        f_u64(c, &rec->u.conn.conn);
        f_str(c, &rec->u.conn.client_id);
        f_str(c, &rec->u.conn.user);
        return true;
    case MSGPROTO_SEND:
        walk_send(c, &rec->u.send);
        return true;
    case MSGPROTO_SUBSCRIBE:
        walk_subscribe(c, &rec->u.sub);
        return true;
    case MSGPROTO_UNSUBSCRIBE:
    case MSGPROTO_DRAIN:
        f_u64(c, &rec->u.unsub.conn);
        f_u64(c, &rec->u.unsub.consumer);
        f_u64(c, &rec->u.unsub.corr);
        return true;
    case MSGPROTO_CREDIT:
        f_u64(c, &rec->u.credit.conn);
        f_u64(c, &rec->u.credit.consumer);
        f_u32(c, &rec->u.credit.credits);
        return true;
    case MSGPROTO_ACK:
    case MSGPROTO_RELEASE:
    case MSGPROTO_MODIFIED:
    case MSGPROTO_REJECT:
        walk_settle(c, &rec->u.settle);
        return true;
    case MSGPROTO_TX_BEGIN:
    case MSGPROTO_TX_COMMIT:
    case MSGPROTO_TX_ROLLBACK:
        f_u64(c, &rec->u.tx.conn);
        f_u64(c, &rec->u.tx.tx);
        f_u64(c, &rec->u.tx.corr);
        return true;
    case MSGPROTO_STAT_REQ:
        f_u64(c, &rec->u.stat_req.request);
        f_str(c, &rec->u.stat_req.queue);
        return true;
    case MSGPROTO_FRAGMENT:
        walk_frag(c, &rec->u.frag);
        return true;
    case MSGPROTO_DONE:
        f_u64(c, &rec->u.done.conn);
        f_u64(c, &rec->u.done.corr);
        f_i32(c, &rec->u.done.status);
        f_str(c, &rec->u.done.text);
        return true;
    case MSGPROTO_DELIVER:
        walk_deliver(c, &rec->u.deliver);
        return true;
    case MSGPROTO_CONSUMER_CLOSED:
        f_u64(c, &rec->u.closed.conn);
        f_u64(c, &rec->u.closed.consumer);
        f_i32(c, &rec->u.closed.status);
        f_str(c, &rec->u.closed.reason);
        return true;
    case MSGPROTO_STAT_REPLY:
        walk_stat(c, &rec->u.stat);
        return true;
    case MSGPROTO_FLOW:
        f_u8(c, &rec->u.flow.blocked);
        f_u64(c, &rec->u.flow.bytes);
        f_u64(c, &rec->u.flow.limit);
        return true;
    case MSGPROTO_FLOW_ADDR:
        f_u8(c, &rec->u.flow_addr.blocked);
        f_u64(c, &rec->u.flow_addr.bytes);
        f_u64(c, &rec->u.flow_addr.limit);
        f_str(c, &rec->u.flow_addr.address);
        return true;
    default:
        return false;
    }
}

struct msgproto_bytes msgproto_str(const char *s)
{
    struct msgproto_bytes b = {(const uint8_t *)(s ? s : ""), s ? (uint32_t)strlen(s) : 0};
    return b;
}

/*
 * One pass: the writer stores only what fits in cap and counts the rest; the
 * header's length is patched in at the end. A too-small buffer gives -ENOSPC
 * (its bytes are then undefined).
 */
ssize_t msgproto_encode(const struct msgproto_rec *rec, void *buf, size_t cap)
{
    struct codec c = {.reading = false, .w = {.buf = buf, .cap = buf ? cap : 0, .pos = 0}};
    struct msgproto_rec copy = *rec; /* the walker takes non-const pointers */

    wire_put_u16(&c.w, rec->type);
    wire_put_u8(&c.w, MSGPROTO_VERSION);
    wire_put_u8(&c.w, rec->flags);
    wire_put_u32(&c.w, 0); /* length, patched below */
    if (!walk(&c, &copy))
        return -EINVAL;
    if (c.w.bad || c.w.pos > UINT32_MAX)
        return -EINVAL;
    size_t len = c.w.pos;
    if (!buf)
        return (ssize_t)len;
    if (cap < len)
        return -ENOSPC;
    struct wire_w hdr = {.buf = buf, .cap = cap, .pos = 4};
    wire_put_u32(&hdr, (uint32_t)len);
    return (ssize_t)len;
}

int msgproto_decode(const void *buf, size_t len, struct msgproto_rec *rec)
{
    struct codec c = {.reading = true, .r = {.buf = buf, .len = len, .pos = 0}};

    memset(rec, 0, sizeof(*rec));
    if (!buf || len < MSGPROTO_HDR_SIZE)
        return -EBADMSG;
    rec->type = wire_get_u16(&c.r);
    uint8_t version = wire_get_u8(&c.r);
    rec->flags = wire_get_u8(&c.r);
    uint32_t length = wire_get_u32(&c.r);
    if (version != MSGPROTO_VERSION)
        return -EPROTO;
    if (length != len)
        return -EBADMSG;
    if (!walk(&c, rec))
        return -EPROTO;
    if (c.r.bad || c.r.pos != len)
        return -EBADMSG;
    return 0;
}

const char *msgproto_type_name(uint16_t type)
{
    static const char *const names[] = {
        [MSGPROTO_HELLO] = "HELLO", [MSGPROTO_CONN_OPEN] = "CONN_OPEN",
        [MSGPROTO_CONN_CLOSE] = "CONN_CLOSE", [MSGPROTO_SEND] = "SEND",
        [MSGPROTO_SUBSCRIBE] = "SUBSCRIBE", [MSGPROTO_UNSUBSCRIBE] = "UNSUBSCRIBE",
        [MSGPROTO_CREDIT] = "CREDIT", [MSGPROTO_ACK] = "ACK", [MSGPROTO_RELEASE] = "RELEASE",
        [MSGPROTO_MODIFIED] = "MODIFIED", [MSGPROTO_REJECT] = "REJECT",
        [MSGPROTO_TX_BEGIN] = "TX_BEGIN", [MSGPROTO_TX_COMMIT] = "TX_COMMIT",
        [MSGPROTO_TX_ROLLBACK] = "TX_ROLLBACK", [MSGPROTO_STAT_REQ] = "STAT_REQ",
        [MSGPROTO_FRAGMENT] = "FRAGMENT", [MSGPROTO_DRAIN] = "DRAIN", [MSGPROTO_DONE] = "DONE",
        [MSGPROTO_DELIVER] = "DELIVER", [MSGPROTO_CONSUMER_CLOSED] = "CONSUMER_CLOSED",
        [MSGPROTO_STAT_REPLY] = "STAT_REPLY", [MSGPROTO_FLOW] = "FLOW",
        [MSGPROTO_FLOW_ADDR] = "FLOW_ADDR",
    };
    if (type < sizeof(names) / sizeof(names[0]) && names[type])
        return names[type];
    return "?";
}

/* Bytes a FRAGMENT record needs besides its chunk. */
static size_t frag_overhead(void)
{
    struct msgproto_rec f = {.type = MSGPROTO_FRAGMENT};
    return (size_t)msgproto_encode(&f, NULL, 0);
}

int msgproto_fragment(const void *rec, size_t len, uint64_t conn, size_t max_record,
                      size_t max_total, int (*emit)(void *ctx, const void *frag, size_t frag_len),
                      void *ctx)
{
    size_t over = frag_overhead();

    if (len > max_total)
        return -EMSGSIZE;
    if (max_record <= over || !rec || len == 0)
        return -EINVAL;
    size_t chunk = max_record - over;
    uint8_t *buf = malloc(max_record);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    uint32_t seq = 0;
    for (size_t off = 0; off < len && rc == 0; off += chunk, seq++) {
        size_t n = len - off < chunk ? len - off : chunk;
        struct msgproto_rec f = {.type = MSGPROTO_FRAGMENT};
        f.u.frag = (struct msgproto_fragment_rec){
            .conn = conn, .seq = seq, .total = len,
            .kind = off == 0 ? MSGPROTO_FRAG_FIRST
                    : off + n == len ? MSGPROTO_FRAG_LAST : MSGPROTO_FRAG_MIDDLE,
            .chunk = {(const uint8_t *)rec + off, (uint32_t)n}};
        if (off + n == len && off != 0)
            f.u.frag.kind = MSGPROTO_FRAG_LAST;
        ssize_t flen = msgproto_encode(&f, buf, max_record);
        rc = flen < 0 ? (int)flen : emit(ctx, buf, (size_t)flen);
    }
    free(buf);
    return rc;
}

void msgproto_reasm_reset(struct msgproto_reasm *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

static int reasm_fail(struct msgproto_reasm *r, int err)
{
    msgproto_reasm_reset(r);
    return err;
}

static int reasm_start(struct msgproto_reasm *r, const struct msgproto_fragment_rec *f,
                       size_t max_total)
{
    if (r->active)
        return reasm_fail(r, -EPROTO); /* a new FIRST while one is open */
    if (f->total > max_total)
        return -EMSGSIZE;
    if (f->seq != 0 || f->total == 0)
        return -EPROTO;
    r->buf = malloc(f->total);
    if (!r->buf)
        return -ENOMEM;
    r->total = f->total;
    r->active = true;
    return 0;
}

int msgproto_reassemble(struct msgproto_reasm *r, const struct msgproto_fragment_rec *f,
                        size_t max_total)
{
    if (f->kind == MSGPROTO_FRAG_FIRST) {
        int rc = reasm_start(r, f, max_total);
        if (rc < 0)
            return rc;
    } else if (!r->active || f->seq != r->next_seq || f->total != r->total ||
               (f->kind != MSGPROTO_FRAG_MIDDLE && f->kind != MSGPROTO_FRAG_LAST)) {
        return reasm_fail(r, -EPROTO);
    }
    if (f->chunk.len > r->total - r->got)
        return reasm_fail(r, -EPROTO);
    memcpy(r->buf + r->got, f->chunk.p, f->chunk.len);
    r->got += f->chunk.len;
    r->next_seq++;
    bool last = f->kind == MSGPROTO_FRAG_LAST || (f->kind == MSGPROTO_FRAG_FIRST && r->got == r->total);
    if (last != (r->got == r->total))
        return reasm_fail(r, -EPROTO);
    return last ? 1 : 0;
}
