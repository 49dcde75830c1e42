/*
 * worker_amqp_msg — the AMQP 1.0 message ⇄ hmsg conversion of the worker.
 *
 * An AMQP message travels through the broker intact: the hmsg body is the
 * transfer's raw bytes (header, delivery and message annotations,
 * properties, application properties, body sections, footer), body_type
 * HMSG_BODY_AMQP. The hmsg's own fields (address, ids, content-type,
 * properties...) are filled from the decoded message too, so the core
 * (filters, DLQ, statistics) and STOMP consumers see them.
 *
 * On the way out an AMQP-bodied message is sent as stored, except that the
 * header section is rewritten when the broker counted failed deliveries
 * (header.delivery-count is the broker's count, as the spec asks). A STOMP
 * message (TEXT or BINARY body) is built into an AMQP message: an amqp-value
 * string for text, one data section for bytes.
 * Who calls it: worker_amqp.c only. Proton objects used here are the
 * caller's scratch pn_message_t; nothing is kept between calls.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker_amqp.h"

#define PROPS_MAX 1024
#define HEADER_CODE 0x70u
#define DATA_CODE 0x75u
#define VALUE_CODE 0x77u

static struct hmsg_prop props_scratch[PROPS_MAX];

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A str field of an hmsg: "" when absent or not representable (NUL inside). */
static struct msgproto_bytes as_str(const char *p, size_t n)
{
    if (!p || n > MSGPROTO_STR_MAX || memchr(p, 0, n))
        return msgproto_str("");
    return (struct msgproto_bytes){(const uint8_t *)p, (uint32_t)n};
}

static struct msgproto_bytes cstr(const char *s)
{
    return as_str(s, s ? strlen(s) : 0);
}

/* A message-id / correlation-id (ulong, uuid, binary or string) as text. */
static struct msgproto_bytes id_text(pn_data_t *d, char *buf, size_t cap)
{
    pn_data_rewind(d);
    if (!pn_data_next(d))
        return msgproto_str("");
    switch (pn_data_type(d)) {
    case PN_STRING: {
        pn_bytes_t b = pn_data_get_string(d);
        return as_str(b.start, b.size);
    }
    case PN_SYMBOL: {
        pn_bytes_t b = pn_data_get_symbol(d);
        return as_str(b.start, b.size);
    }
    case PN_ULONG:
        snprintf(buf, cap, "%" PRIu64, pn_data_get_ulong(d));
        return msgproto_str(buf);
    case PN_UUID: {
        pn_uuid_t u = pn_data_get_uuid(d);
        const unsigned char *b = (const unsigned char *)u.bytes;
        snprintf(buf, cap,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                 b[14], b[15]);
        return msgproto_str(buf);
    }
    case PN_BINARY: {
        pn_bytes_t b = pn_data_get_binary(d);
        size_t o = 0;
        for (size_t i = 0; i < b.size && o + 3 < cap; i++)
            o += (size_t)snprintf(buf + o, cap - o, "%02x", (unsigned char)b.start[i]);
        buf[o] = 0;
        return msgproto_str(buf);
    }
    default:
        return msgproto_str("");
    }
}

/* One application property value → hmsg property. Returns false to skip it. */
static bool prop_value(pn_data_t *d, struct hmsg_prop *p)
{
    switch (pn_data_type(d)) {
    case PN_NULL: p->type = HMSG_PROP_NULL; return true;
    case PN_BOOL: p->type = HMSG_PROP_BOOL; p->v.b = pn_data_get_bool(d); return true;
    case PN_UBYTE: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_ubyte(d); return true;
    case PN_BYTE: p->type = HMSG_PROP_INT64; p->v.i = (int64_t)(int)pn_data_get_byte(d); return true;
    case PN_USHORT: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_ushort(d); return true;
    case PN_SHORT: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_short(d); return true;
    case PN_UINT: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_uint(d); return true;
    case PN_INT: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_int(d); return true;
    case PN_CHAR: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_char(d); return true;
    case PN_LONG: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_long(d); return true;
    case PN_TIMESTAMP: p->type = HMSG_PROP_INT64; p->v.i = pn_data_get_timestamp(d); return true;
    case PN_ULONG:
        if (pn_data_get_ulong(d) > INT64_MAX)
            return false;
        p->type = HMSG_PROP_INT64;
        p->v.i = (int64_t)pn_data_get_ulong(d);
        return true;
    case PN_FLOAT: p->type = HMSG_PROP_DOUBLE; p->v.d = pn_data_get_float(d); return true;
    case PN_DOUBLE: p->type = HMSG_PROP_DOUBLE; p->v.d = pn_data_get_double(d); return true;
    case PN_STRING:
    case PN_SYMBOL: {
        pn_bytes_t b = pn_data_type(d) == PN_STRING ? pn_data_get_string(d)
                                                    : pn_data_get_symbol(d);
        if (b.size > MSGPROTO_STR_MAX || memchr(b.start, 0, b.size))
            return false;
        p->type = HMSG_PROP_STRING;
        p->v.bytes = (struct msgproto_bytes){(const uint8_t *)b.start, (uint32_t)b.size};
        return true;
    }
    case PN_BINARY: {
        pn_bytes_t b = pn_data_get_binary(d);
        p->type = HMSG_PROP_BINARY;
        p->v.bytes = (struct msgproto_bytes){(const uint8_t *)b.start, (uint32_t)b.size};
        return true;
    }
    default:
        return false; /* lists, maps, decimals...: kept in the raw sections only */
    }
}

/* Application properties → props_scratch; the _AMQ_DUPL_ID one also into out. */
static uint32_t collect_props(pn_message_t *msg, struct wka_send *out)
{
    pn_data_t *d = pn_message_properties(msg);
    uint32_t n = 0;

    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return 0;
    pn_data_enter(d);
    while (n < PROPS_MAX && pn_data_next(d)) {
        pn_bytes_t key = {0, NULL};
        if (pn_data_type(d) == PN_STRING)
            key = pn_data_get_string(d);
        else if (pn_data_type(d) == PN_SYMBOL)
            key = pn_data_get_symbol(d);
        if (!pn_data_next(d))
            break;
        if (!key.size || key.size > MSGPROTO_STR_MAX || memchr(key.start, 0, key.size))
            continue;
        struct hmsg_prop *p = &props_scratch[n];
        p->name = (struct msgproto_bytes){(const uint8_t *)key.start, (uint32_t)key.size};
        if (!prop_value(d, p))
            continue;
        if (key.size == 12 && memcmp(key.start, "_AMQ_DUPL_ID", 12) == 0 &&
            (p->type == HMSG_PROP_STRING || p->type == HMSG_PROP_BINARY) &&
            p->v.bytes.len <= sizeof(out->dup_id)) {
            memcpy(out->dup_id, p->v.bytes.p, p->v.bytes.len);
            out->dup_len = p->v.bytes.len;
        }
        n++;
    }
    pn_data_exit(d);
    return n;
}

/* x-opt-jms-dest (qpid-jms, Artemis): 0 queue, 1 topic, 2 temp queue, 3 temp topic. */
static uint8_t relay_routing(pn_message_t *msg)
{
    pn_data_t *d = pn_message_annotations(msg);

    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return MSGPROTO_ROUTING_UNSPECIFIED;
    pn_data_enter(d);
    while (pn_data_next(d)) {
        bool match = pn_data_type(d) == PN_SYMBOL &&
                     pn_data_get_symbol(d).size == 14 &&
                     memcmp(pn_data_get_symbol(d).start, "x-opt-jms-dest", 14) == 0;
        if (!pn_data_next(d))
            break;
        if (match && pn_data_type(d) == PN_BYTE)
            return (pn_data_get_byte(d) & 1) ? MSGPROTO_MULTICAST : MSGPROTO_ANYCAST;
    }
    return MSGPROTO_ROUTING_UNSPECIFIED;
}

/* "queue://X" / "topic://X" prefixes (what the hamq CLI and Artemis users type). */
static const char *strip_prefix(const char *a, uint8_t *routing)
{
    if (strncmp(a, "queue://", 8) == 0) {
        *routing = MSGPROTO_ANYCAST;
        return a + 8;
    }
    if (strncmp(a, "topic://", 8) == 0) {
        *routing = MSGPROTO_MULTICAST;
        return a + 8;
    }
    return a;
}

int wka_msg_from_amqp(pn_message_t *msg, const uint8_t *raw, size_t len, const char *link_address,
                      uint8_t link_routing, struct wka_send *out, char *err, size_t errlen)
{
    struct hmsg m = {0};
    char idbuf[2][80];
    int64_t now = wall_ms();

    memset(out, 0, sizeof(*out));
    pn_message_clear(msg);
    if (pn_message_decode(msg, (const char *)raw, len) != 0) {
        snprintf(err, errlen, "undecodable message: %s",
                 pn_error_text(pn_message_error(msg)));
        return -EBADMSG;
    }
    const char *addr = link_address;
    out->routing = link_routing;
    if (!addr) {
        addr = pn_message_get_address(msg);
        out->routing = relay_routing(msg);
    }
    if (!addr || !addr[0]) {
        snprintf(err, errlen, "the anonymous relay needs the message's 'to' address");
        return -EDESTADDRREQ;
    }
    addr = strip_prefix(addr, &out->routing);
    if (strlen(addr) >= sizeof(out->address) || !addr[0]) {
        snprintf(err, errlen, "address empty or longer than %zu bytes", sizeof(out->address) - 1);
        return -ENAMETOOLONG;
    }
    snprintf(out->address, sizeof(out->address), "%s", addr);
    out->durable = pn_message_is_durable(msg);
    out->priority = pn_message_get_priority(msg) > 9 ? 9 : pn_message_get_priority(msg);
    pn_timestamp_t exp = pn_message_get_expiry_time(msg);
    pn_millis_t ttl = pn_message_get_ttl(msg);
    out->expiration = exp > 0 ? exp : ttl ? now + (int64_t)ttl : 0;

    m.routing = out->routing;
    m.durable = out->durable;
    m.priority = out->priority;
    m.body_type = HMSG_BODY_AMQP;
    m.expiration = out->expiration;
    m.timestamp = pn_message_get_creation_time(msg) > 0 ? pn_message_get_creation_time(msg) : now;
    m.address = msgproto_str(out->address);
    m.message_id = id_text(pn_message_id(msg), idbuf[0], sizeof(idbuf[0]));
    m.correlation_id = id_text(pn_message_correlation_id(msg), idbuf[1], sizeof(idbuf[1]));
    m.reply_to = cstr(pn_message_get_reply_to(msg));
    m.content_type = cstr(pn_message_get_content_type(msg));
    pn_bytes_t uid = pn_message_get_user_id(msg);
    m.user_id = as_str(uid.start, uid.size);
    m.subject = cstr(pn_message_get_subject(msg));
    m.group_id = cstr(pn_message_get_group_id(msg));
    m.nprops = collect_props(msg, out);
    m.props = props_scratch;
    m.body = (struct msgproto_bytes){raw, (uint32_t)len};
    ssize_t n = hmsg_encode(&m, NULL, 0);
    if (n < 0) {
        snprintf(err, errlen, "message cannot be stored: %s", strerror((int)-n));
        return (int)n;
    }
    out->hmsg = malloc((size_t)n);
    if (!out->hmsg)
        return -ENOMEM;
    out->hmsg_len = (size_t)hmsg_encode(&m, out->hmsg, (size_t)n);
    return 0;
}

/* ---- outgoing ---- */

static int grow(char **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    char *nb = realloc(*buf, need);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = need;
    return 0;
}

/* Length of the described section at raw[0..len) and its descriptor code; -1 if not one. */
static ssize_t section_at(pn_data_t *d, const uint8_t *raw, size_t len, uint64_t *code)
{
    pn_data_clear(d);
    ssize_t n = pn_data_decode(d, (const char *)raw, len);
    if (n <= 0)
        return -1;
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED)
        return -1;
    pn_data_enter(d);
    if (!pn_data_next(d))
        return -1;
    *code = pn_data_type(d) == PN_ULONG ? pn_data_get_ulong(d) : UINT64_MAX;
    pn_data_next(d); /* positioned on the value for the caller */
    return n;
}

/* The header's ttl (field 2), 0 when absent; d is positioned on the header's list. */
static uint32_t header_ttl(pn_data_t *d)
{
    uint32_t ttl = 0;

    if (pn_data_type(d) != PN_LIST)
        return 0;
    pn_data_enter(d);
    for (int i = 0; i < 3 && pn_data_next(d); i++)
        if (i == 2 && pn_data_type(d) == PN_UINT)
            ttl = pn_data_get_uint(d);
    pn_data_exit(d);
    return ttl;
}

static ssize_t put_header(pn_data_t *d, const struct hmsg *m, uint32_t ttl, uint32_t count,
                          char *out, size_t cap)
{
    pn_data_clear(d);
    pn_data_put_described(d);
    pn_data_enter(d);
    pn_data_put_ulong(d, HEADER_CODE);
    pn_data_put_list(d);
    pn_data_enter(d);
    pn_data_put_bool(d, m->durable);
    pn_data_put_ubyte(d, m->priority);
    if (ttl)
        pn_data_put_uint(d, ttl);
    else
        pn_data_put_null(d);
    pn_data_put_bool(d, false); /* first-acquirer: it was delivered before */
    pn_data_put_uint(d, count);
    pn_data_exit(d);
    pn_data_exit(d);
    return pn_data_encode(d, out, cap);
}

/* The stored sections with the header replaced (or added) carrying count. */
static ssize_t patch_header(const struct hmsg *m, uint32_t count, char **buf, size_t *cap)
{
    pn_data_t *d = pn_data(16);
    uint64_t code = 0;
    uint32_t ttl = 0;
    size_t skip = 0;
    ssize_t r;

    if (!d)
        return -ENOMEM;
    r = section_at(d, m->body.p, m->body.len, &code);
    if (r > 0 && code == HEADER_CODE) {
        skip = (size_t)r;
        ttl = header_ttl(d);
    }
    r = grow(buf, cap, m->body.len - skip + 64);
    if (r == 0) {
        r = put_header(d, m, ttl, count, *buf, 64);
        if (r >= 0) {
            memcpy(*buf + r, m->body.p + skip, m->body.len - skip);
            r += (ssize_t)(m->body.len - skip);
        } else {
            r = -EOVERFLOW;
        }
    }
    pn_data_free(d);
    return r;
}

static void put_props(pn_message_t *msg, const struct hmsg *m)
{
    pn_data_t *d = pn_message_properties(msg);
    struct hmsg_prop p;
    size_t pos = 0;

    if (!m->nprops)
        return;
    pn_data_put_map(d);
    pn_data_enter(d);
    while (hmsg_prop_next(m, &pos, &p) == 1) {
        pn_data_put_string(d, pn_bytes(p.name.len, (const char *)p.name.p));
        switch (p.type) {
        case HMSG_PROP_STRING:
            pn_data_put_string(d, pn_bytes(p.v.bytes.len, (const char *)p.v.bytes.p));
            break;
        case HMSG_PROP_BINARY:
            pn_data_put_binary(d, pn_bytes(p.v.bytes.len, (const char *)p.v.bytes.p));
            break;
        case HMSG_PROP_INT64: pn_data_put_long(d, p.v.i); break;
        case HMSG_PROP_DOUBLE: pn_data_put_double(d, p.v.d); break;
        case HMSG_PROP_BOOL: pn_data_put_bool(d, p.v.b); break;
        default: pn_data_put_null(d); break;
        }
    }
    pn_data_exit(d);
}

static pn_atom_t str_atom(struct msgproto_bytes b)
{
    pn_atom_t a = {.type = PN_STRING};

    a.u.as_bytes = pn_bytes(b.len, (const char *)b.p);
    return a;
}

/* Pointers from hmsg strs are NUL-terminated in place (a str always is). */
static const char *opt(struct msgproto_bytes b)
{
    return b.len ? (const char *)b.p : NULL;
}

static ssize_t build(pn_message_t *msg, const struct hmsg *m, uint32_t count, char **buf,
                     size_t *cap)
{
    pn_message_clear(msg);
    pn_message_set_durable(msg, m->durable);
    pn_message_set_priority(msg, m->priority);
    pn_message_set_delivery_count(msg, count);
    if (m->expiration)
        pn_message_set_expiry_time(msg, m->expiration);
    pn_message_set_creation_time(msg, m->timestamp);
    if (m->message_id.len)
        pn_message_set_id(msg, str_atom(m->message_id));
    if (m->correlation_id.len)
        pn_message_set_correlation_id(msg, str_atom(m->correlation_id));
    pn_message_set_address(msg, opt(m->address));
    pn_message_set_reply_to(msg, opt(m->reply_to));
    pn_message_set_content_type(msg, opt(m->content_type));
    pn_message_set_subject(msg, opt(m->subject));
    pn_message_set_group_id(msg, opt(m->group_id));
    if (m->user_id.len)
        pn_message_set_user_id(msg, pn_bytes(m->user_id.len, (const char *)m->user_id.p));
    put_props(msg, m);
    pn_data_t *body = pn_message_body(msg);
    if (m->body_type == HMSG_BODY_TEXT) {
        pn_data_put_string(body, pn_bytes(m->body.len, (const char *)m->body.p));
    } else if (m->body_type == HMSG_BODY_BINARY) {
        pn_message_set_inferred(msg, true); /* a data section, not an amqp-value binary */
        pn_data_put_binary(body, pn_bytes(m->body.len, (const char *)m->body.p));
    }
    pn_rwbytes_t rb = {*cap, *buf};
    ssize_t n = pn_message_encode2(msg, &rb);
    *buf = rb.start;
    *cap = rb.size;
    return n < 0 ? -EBADMSG : n;
}

ssize_t wka_msg_to_amqp(pn_message_t *scratch, const struct hmsg *m, uint32_t delivery_count,
                        const char **out, char **buf, size_t *cap)
{
    ssize_t n;

    if (m->body_type == HMSG_BODY_AMQP && delivery_count == 0) {
        *out = (const char *)m->body.p;
        return (ssize_t)m->body.len;
    }
    n = m->body_type == HMSG_BODY_AMQP ? patch_header(m, delivery_count, buf, cap)
                                       : build(scratch, m, delivery_count, buf, cap);
    *out = *buf;
    return n;
}

/* ---- body for STOMP ---- */

static void value_payload(pn_data_t *d, const uint8_t *sec_end, char *fmt, size_t fmtcap,
                          const uint8_t **p, size_t *len)
{
    pn_type_t t = pn_data_type(d);

    if (t == PN_STRING || t == PN_BINARY || t == PN_SYMBOL) {
        /* The value's bytes are the section's last bytes: no copy. */
        pn_bytes_t b = t == PN_STRING   ? pn_data_get_string(d)
                       : t == PN_BINARY ? pn_data_get_binary(d)
                                        : pn_data_get_symbol(d);
        *p = sec_end - b.size;
        *len = b.size;
        return;
    }
    size_t n = fmtcap;
    if (t == PN_NULL || pn_data_format(d, fmt, &n) != 0)
        n = 0;
    *p = (const uint8_t *)fmt;
    *len = n;
}

void wka_msg_payload(const struct hmsg *m, char *fmt, size_t fmtcap, const uint8_t **p,
                     size_t *len)
{
    pn_data_t *d = pn_data(16);
    size_t off = 0;

    *p = m->body.p;
    *len = 0;
    if (!d)
        return;
    while (off < m->body.len) {
        uint64_t code = 0;
        ssize_t n = section_at(d, m->body.p + off, m->body.len - off, &code);
        if (n <= 0)
            break;
        if (code == DATA_CODE || code == VALUE_CODE) {
            value_payload(d, m->body.p + off + n, fmt, fmtcap, p, len);
            break;
        }
        off += (size_t)n;
    }
    pn_data_free(d);
}
