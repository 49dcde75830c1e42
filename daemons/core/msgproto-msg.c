/*
 * msgproto-msg — the protocol-neutral encoded message (hmsg_*), see the
 * layout in include/hamq/msgproto.h. Decode validates the whole message,
 * properties included, once; hmsg_prop_next then walks bytes already known
 * to be well formed.
 */
#include <errno.h>
#include <string.h>

#include "hamq/msgproto.h"
#include "msgproto-wire.h"

static void put_prop(struct wire_w *w, const struct hmsg_prop *p)
{
    wire_put_str(w, p->name);
    wire_put_u8(w, p->type);
    switch (p->type) {
    case HMSG_PROP_NULL:
        break;
    case HMSG_PROP_INT64:
        wire_put_u64(w, (uint64_t)p->v.i);
        break;
    case HMSG_PROP_DOUBLE: {
        uint64_t u;
        memcpy(&u, &p->v.d, sizeof(u));
        wire_put_u64(w, u);
        break;
    }
    case HMSG_PROP_BOOL:
        wire_put_u8(w, p->v.b ? 1 : 0);
        break;
    case HMSG_PROP_STRING:
        wire_put_str(w, p->v.bytes);
        break;
    case HMSG_PROP_BINARY:
        wire_put_bin(w, p->v.bytes);
        break;
    default:
        w->bad = true;
    }
}

static void put_message(struct wire_w *w, const struct hmsg *m)
{
    wire_put_u32(w, HMSG_MAGIC);
    wire_put_u8(w, HMSG_VERSION);
    wire_put_u8(w, m->routing);
    wire_put_u8(w, m->durable ? 1 : 0);
    wire_put_u8(w, m->priority);
    wire_put_u8(w, m->body_type);
    wire_put_raw(w, "\0\0\0", 3);
    wire_put_u64(w, (uint64_t)m->expiration);
    wire_put_u64(w, (uint64_t)m->timestamp);
    const struct msgproto_bytes *strs[] = {&m->address, &m->message_id, &m->correlation_id,
                                           &m->reply_to, &m->content_type, &m->user_id,
                                           &m->subject, &m->group_id};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        wire_put_str(w, *strs[i]);
    wire_put_u32(w, m->nprops);
    for (uint32_t i = 0; i < m->nprops; i++)
        put_prop(w, &m->props[i]);
    wire_put_bin(w, m->body);
}

/* One pass: the writer stores only what fits in cap and counts the rest, so
 * a too-small buffer is detected at the end (its bytes are then undefined). */
ssize_t hmsg_encode(const struct hmsg *m, void *buf, size_t cap)
{
    struct wire_w w = {.buf = buf, .cap = buf ? cap : 0};

    if (m->nprops > HMSG_MAX_PROPS || (m->nprops && !m->props) || m->priority > 9)
        return -EINVAL;
    put_message(&w, m);
    if (w.bad)
        return -EINVAL;
    if (buf && cap < w.pos)
        return -ENOSPC;
    return (ssize_t)w.pos;
}

/* Read one property; r->bad on any malformation. */
static void get_prop(struct wire_r *r, struct hmsg_prop *p)
{
    memset(p, 0, sizeof(*p));
    p->name = wire_get_str(r);
    p->type = wire_get_u8(r);
    switch (p->type) {
    case HMSG_PROP_NULL:
        break;
    case HMSG_PROP_INT64:
        p->v.i = (int64_t)wire_get_u64(r);
        break;
    case HMSG_PROP_DOUBLE: {
        uint64_t u = wire_get_u64(r);
        memcpy(&p->v.d, &u, sizeof(u));
        break;
    }
    case HMSG_PROP_BOOL: {
        uint8_t b = wire_get_u8(r);
        if (b > 1)
            r->bad = true;
        p->v.b = b == 1;
        break;
    }
    case HMSG_PROP_STRING:
        p->v.bytes = wire_get_str(r);
        break;
    case HMSG_PROP_BINARY:
        p->v.bytes = wire_get_bin(r);
        break;
    default:
        r->bad = true;
    }
}

static int get_fixed(struct wire_r *r, struct hmsg *m)
{
    if (wire_get_u32(r) != HMSG_MAGIC)
        return -EBADMSG;
    if (wire_get_u8(r) != HMSG_VERSION)
        return -EPROTO;
    m->routing = wire_get_u8(r);
    m->durable = wire_get_u8(r);
    m->priority = wire_get_u8(r);
    m->body_type = wire_get_u8(r);
    uint8_t z = 0;
    for (int i = 0; i < 3; i++)
        z |= wire_get_u8(r); /* reserved, must be zero */
    m->expiration = (int64_t)wire_get_u64(r);
    m->timestamp = (int64_t)wire_get_u64(r);
    if (r->bad || z || m->routing > MSGPROTO_ROUTING_UNSPECIFIED || m->durable > 1 ||
        m->priority > 9 || m->body_type > HMSG_BODY_AMQP)
        return -EBADMSG;
    return 0;
}

int hmsg_decode(const void *buf, size_t len, struct hmsg *m)
{
    struct wire_r r = {.buf = buf, .len = len};

    memset(m, 0, sizeof(*m));
    if (!buf)
        return -EBADMSG;
    int rc = get_fixed(&r, m);
    if (rc < 0)
        return rc;
    struct msgproto_bytes *strs[] = {&m->address, &m->message_id, &m->correlation_id,
                                     &m->reply_to, &m->content_type, &m->user_id,
                                     &m->subject, &m->group_id};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        *strs[i] = wire_get_str(&r);
    m->nprops = wire_get_u32(&r);
    if (r.bad || m->nprops > HMSG_MAX_PROPS)
        return -EBADMSG;
    size_t start = r.pos;
    for (uint32_t i = 0; i < m->nprops && !r.bad; i++) {
        struct hmsg_prop p;
        get_prop(&r, &p);
    }
    m->props_raw = (const uint8_t *)buf + start;
    m->props_raw_len = r.pos - start;
    m->body = wire_get_bin(&r);
    if (r.bad || r.pos != len)
        return -EBADMSG;
    return 0;
}

int hmsg_prop_next(const struct hmsg *m, size_t *pos, struct hmsg_prop *out)
{
    if (*pos >= m->props_raw_len)
        return 0;
    struct wire_r r = {.buf = m->props_raw, .len = m->props_raw_len, .pos = *pos};
    get_prop(&r, out);
    if (r.bad)
        return 0;
    *pos = r.pos;
    return 1;
}

int hmsg_prop_find(const struct hmsg *m, const char *name, struct hmsg_prop *out)
{
    size_t pos = 0, n = strlen(name);
    while (hmsg_prop_next(m, &pos, out))
        if (out->name.len == n && memcmp(out->name.p, name, n) == 0)
            return 1;
    return 0;
}
