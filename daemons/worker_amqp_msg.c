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

/* Makes *buf (of *cap bytes) hold at least need bytes. */
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

/* A text field (string or symbol) as an hmsg str; "" when absent or not one. */
static struct msgproto_bytes val_text(const struct wka_val *v)
{
    if (!wka_val_is_str(v) && !wka_val_is_sym(v))
        return msgproto_str("");
    return as_str((const char *)v->p, v->len);
}

/* A message-id / correlation-id (ulong, uuid, binary or string) as text. */
static struct msgproto_bytes id_text(const struct wka_val *v, char *buf, size_t cap)
{
    if (wka_val_is_str(v) || wka_val_is_sym(v))
        return as_str((const char *)v->p, v->len);
    if (wka_val_is_ulong(v)) {
        snprintf(buf, cap, "%" PRIu64, wka_val_uint(v, 0));
        return msgproto_str(buf);
    }
    if (v->code == 0x98) {
        const uint8_t *b = v->p;
        snprintf(buf, cap,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                 b[14], b[15]);
        return msgproto_str(buf);
    }
    if (wka_val_is_bin(v)) {
        size_t o = 0;
        for (uint32_t i = 0; i < v->len && o + 3 < cap; i++)
            o += (size_t)snprintf(buf + o, cap - o, "%02x", v->p[i]);
        buf[o] = 0;
        return msgproto_str(buf);
    }
    return msgproto_str("");
}

static double be_double(uint64_t u)
{
    double d;

    memcpy(&d, &u, sizeof(d));
    return d;
}

static float be_float(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

/* One application property value → hmsg property. Returns false to skip it. */
static bool prop_value(const struct wka_val *v, struct hmsg_prop *p)
{
    switch (v->code) {
    case 0x40: p->type = HMSG_PROP_NULL; return true;
    case 0x41: case 0x42: case 0x56:
        p->type = HMSG_PROP_BOOL;
        p->v.b = wka_val_bool(v, false);
        return true;
    case 0x43: case 0x50: case 0x52: case 0x60: case 0x70:
        p->type = HMSG_PROP_INT64;
        p->v.i = (int64_t)wka_val_uint(v, 0);
        return true;
    case 0x73: p->type = HMSG_PROP_INT64; p->v.i = (int64_t)v->u; return true; /* char */
    case 0x51: case 0x54: case 0x55: case 0x61: case 0x71: case 0x81: case 0x83:
        p->type = HMSG_PROP_INT64;
        p->v.i = wka_val_int(v, 0);
        return true;
    case 0x44: case 0x53: case 0x80:
        if (wka_val_uint(v, 0) > INT64_MAX)
            return false;
        p->type = HMSG_PROP_INT64;
        p->v.i = (int64_t)wka_val_uint(v, 0);
        return true;
    case 0x72: p->type = HMSG_PROP_DOUBLE; p->v.d = be_float((uint32_t)v->u); return true;
    case 0x82: p->type = HMSG_PROP_DOUBLE; p->v.d = be_double(v->u); return true;
    case 0xa1: case 0xb1: case 0xa3: case 0xb3:
        if (v->len > MSGPROTO_STR_MAX || memchr(v->p, 0, v->len))
            return false;
        p->type = HMSG_PROP_STRING;
        p->v.bytes = (struct msgproto_bytes){v->p, v->len};
        return true;
    case 0xa0: case 0xb0:
        p->type = HMSG_PROP_BINARY;
        p->v.bytes = (struct msgproto_bytes){v->p, v->len};
        return true;
    default:
        return false; /* lists, maps, decimals...: kept in the raw sections only */
    }
}

/* Application properties → props_scratch; the _AMQ_DUPL_ID one also into out. */
static uint32_t collect_props(const struct wka_val *map, struct wka_send *out)
{
    struct wka_cur in;
    struct wka_val key, val;
    uint32_t n = 0;

    wka_val_enter(map, &in);
    while (n < PROPS_MAX && wka_scan(&in, &key) == 0 && wka_scan(&in, &val) == 0) {
        if ((!wka_val_is_str(&key) && !wka_val_is_sym(&key)) || !key.len ||
            key.len > MSGPROTO_STR_MAX || memchr(key.p, 0, key.len))
            continue;
        struct hmsg_prop *p = &props_scratch[n];
        p->name = (struct msgproto_bytes){key.p, key.len};
        if (!prop_value(&val, p))
            continue;
        if (key.len == 12 && memcmp(key.p, "_AMQ_DUPL_ID", 12) == 0 &&
            (p->type == HMSG_PROP_STRING || p->type == HMSG_PROP_BINARY) &&
            p->v.bytes.len <= sizeof(out->dup_id)) {
            memcpy(out->dup_id, p->v.bytes.p, p->v.bytes.len);
            out->dup_len = p->v.bytes.len;
        }
        n++;
    }
    return n;
}

/* x-opt-jms-dest (qpid-jms, Artemis): 0 queue, 1 topic, 2 temp queue, 3 temp topic. */
static uint8_t relay_routing(const struct wka_val *map)
{
    struct wka_cur in;
    struct wka_val key, val;

    if (!map)
        return MSGPROTO_ROUTING_UNSPECIFIED;
    wka_val_enter(map, &in);
    while (wka_scan(&in, &key) == 0 && wka_scan(&in, &val) == 0)
        if (wka_val_is_sym(&key) && key.len == 14 && memcmp(key.p, "x-opt-jms-dest", 14) == 0 &&
            val.code == 0x51)
            return (val.u & 1) ? MSGPROTO_MULTICAST : MSGPROTO_ANYCAST;
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

/* The sections of a message we read fields from (NULL/zero when absent). */
struct sections {
    struct wka_val header, annotations, properties, app_props;
    bool has_header, has_annotations, has_properties, has_app_props;
};

/* Field i of a list section, or a null value when the list is shorter. */
static void list_fields(const struct wka_val *list, struct wka_val *f, int nf)
{
    struct wka_cur in;
    int i = 0;

    for (int k = 0; k < nf; k++)
        f[k] = (struct wka_val){.code = 0x40};
    if (!list)
        return;
    wka_val_enter(list, &in);
    while (i < nf && wka_scan(&in, &f[i]) == 0)
        i++;
}

/* Walks the sections: each a described value with a known code and the right type. */
static int scan_sections(const uint8_t *raw, size_t len, struct sections *s, char *err,
                         size_t errlen)
{
    struct wka_cur c = {raw, raw + len};
    struct wka_val v;

    memset(s, 0, sizeof(*s));
    while (c.p < c.end) {
        size_t at = (size_t)(c.p - raw);
        if (wka_scan(&c, &v) < 0) {
            snprintf(err, errlen, "undecodable message: malformed value at byte %zu", at);
            return -EBADMSG;
        }
        bool list = v.code == 0x45 || v.code == 0xc0 || v.code == 0xd0;
        bool map = v.code == 0xc1 || v.code == 0xd1;
        bool ok = v.described;
        switch (ok ? v.desc : UINT64_MAX) {
        case 0x70: ok = list; s->header = v; s->has_header = true; break;
        case 0x71: case 0x78: ok = map || wka_val_is_null(&v); break;
        case 0x72:
            ok = map || wka_val_is_null(&v);
            s->annotations = v;
            s->has_annotations = map;
            break;
        case 0x73: ok = list; s->properties = v; s->has_properties = true; break;
        case 0x74:
            ok = map || wka_val_is_null(&v);
            s->app_props = v;
            s->has_app_props = map;
            break;
        case 0x75: ok = wka_val_is_bin(&v); break;
        case 0x76: ok = list; break;
        case 0x77: break;
        default: ok = false; break;
        }
        if (!ok) {
            snprintf(err, errlen, "undecodable message: byte %zu is not a message section", at);
            return -EBADMSG;
        }
    }
    return 0;
}

/* Copies the target address (the link's, or the `to` field's for the relay). */
static int take_address(const char *link_address, const struct wka_val *to, struct wka_send *out,
                        char *err, size_t errlen)
{
    char buf[sizeof(out->address)];
    const char *addr = link_address;

    if (!addr) {
        if ((!wka_val_is_str(to) && !wka_val_is_sym(to)) || !to->len) {
            snprintf(err, errlen, "the anonymous relay needs the message's 'to' address");
            return -EDESTADDRREQ;
        }
        if (to->len >= sizeof(buf) || memchr(to->p, 0, to->len)) {
            snprintf(err, errlen, "address empty or longer than %zu bytes", sizeof(buf) - 1);
            return -ENAMETOOLONG;
        }
        memcpy(buf, to->p, to->len);
        buf[to->len] = 0;
        addr = buf;
    }
    addr = strip_prefix(addr, &out->routing);
    size_t n = strlen(addr);
    if (n >= sizeof(out->address) || n == 0) {
        snprintf(err, errlen, "address empty or longer than %zu bytes", sizeof(out->address) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(out->address, addr, n + 1);
    return 0;
}

int wka_msg_from_amqp(const uint8_t *raw, size_t len, const char *link_address,
                      uint8_t link_routing, struct wka_send *out, char *err, size_t errlen)
{
    struct hmsg m = {0};
    struct sections s;
    struct wka_val h[3], p[13];
    char idbuf[2][80];
    int64_t now = wall_ms();
    int r;

    /* Field by field: a memset of the whole struct (1.3 KiB) costs more per message. */
    out->hmsg = NULL;
    out->hmsg_len = 0;
    out->address[0] = 0;
    out->dup_len = 0;
    r = scan_sections(raw, len, &s, err, errlen);
    if (r < 0)
        return r;
    list_fields(s.has_header ? &s.header : NULL, h, 3);
    list_fields(s.has_properties ? &s.properties : NULL, p, 13);
    out->routing = link_address ? link_routing
                                : relay_routing(s.has_annotations ? &s.annotations : NULL);
    r = take_address(link_address, &p[2], out, err, errlen);
    if (r < 0)
        return r;
    out->durable = wka_val_bool(&h[0], false);
    uint64_t prio = wka_val_uint(&h[1], 4);
    out->priority = prio > 9 ? 9 : (uint8_t)prio;
    int64_t exp = wka_val_int(&p[8], 0);
    uint64_t ttl = wka_val_uint(&h[2], 0);
    out->expiration = exp > 0 ? exp : ttl ? now + (int64_t)ttl : 0;

    m.routing = out->routing;
    m.durable = out->durable;
    m.priority = out->priority;
    m.body_type = HMSG_BODY_AMQP;
    m.expiration = out->expiration;
    int64_t created = wka_val_int(&p[9], 0);
    m.timestamp = created > 0 ? created : now;
    m.address = msgproto_str(out->address);
    m.message_id = id_text(&p[0], idbuf[0], sizeof(idbuf[0]));
    m.correlation_id = id_text(&p[5], idbuf[1], sizeof(idbuf[1]));
    m.reply_to = val_text(&p[4]);
    m.content_type = val_text(&p[6]);
    m.user_id = wka_val_is_bin(&p[1]) ? as_str((const char *)p[1].p, p[1].len) : msgproto_str("");
    m.subject = val_text(&p[3]);
    m.group_id = val_text(&p[10]);
    m.nprops = s.has_app_props ? collect_props(&s.app_props, out) : 0;
    m.props = props_scratch;
    m.body = (struct msgproto_bytes){raw, (uint32_t)len};
    /* Into a buffer reused from message to message: one encoding pass, no malloc. */
    static char *enc;
    static size_t enc_cap;
    ssize_t n = hmsg_encode(&m, enc, enc_cap);
    if (n == -ENOSPC || (n >= 0 && !enc)) {
        n = hmsg_encode(&m, NULL, 0);
        if (n > 0 && grow(&enc, &enc_cap, (size_t)n) < 0)
            return -ENOMEM;
        if (n > 0)
            n = hmsg_encode(&m, enc, enc_cap);
    }
    if (n < 0) {
        snprintf(err, errlen, "message cannot be stored: %s", strerror((int)-n));
        return (int)n;
    }
    out->hmsg = (uint8_t *)enc;
    out->hmsg_len = (size_t)n;
    return 0;
}

/* ---- transaction control ---- */

static bool desc_is(const struct wka_val *v, uint64_t code, const char *sym)
{
    size_t n = strlen(sym);

    return v->described && (v->desc == code || (v->dsym && v->dsym_len == n &&
                                                 memcmp(v->dsym, sym, n) == 0));
}

int wka_msg_txn_control(const uint8_t *raw, size_t len, struct wka_txn_ctl *out, char *err,
                        size_t errlen)
{
    struct wka_cur c = {raw, raw + len}, in;
    struct wka_val sec, ctl, f[2];

    memset(out, 0, sizeof(*out));
    while (wka_scan(&c, &sec) == 0) {
        if (!desc_is(&sec, VALUE_CODE, "amqp:amqp-value:*"))
            continue;
        in = (struct wka_cur){sec.value_at, c.p};
        if (wka_scan(&in, &ctl) < 0 || !wka_val_is_compound(&ctl))
            break;
        out->declare = desc_is(&ctl, 0x31, "amqp:declare:list");
        if (!out->declare && !desc_is(&ctl, 0x32, "amqp:discharge:list"))
            break;
        list_fields(&ctl, f, 2);
        if (out->declare)
            return 0;
        if (!wka_val_is_bin(&f[0]) || f[0].len == 0 || f[0].len > sizeof(out->id)) {
            snprintf(err, errlen, "discharge without a valid txn-id");
            return -EBADMSG;
        }
        memcpy(out->id, f[0].p, f[0].len);
        out->id_len = f[0].len;
        out->fail = wka_val_bool(&f[1], false);
        return 0;
    }
    snprintf(err, errlen, "a coordinator takes only declare and discharge messages");
    return -EBADMSG;
}

/* ---- outgoing ---- */

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

static void build_annotations(pn_message_t *msg, const struct hmsg_prop *org);

static ssize_t build(pn_message_t *msg, const struct hmsg *m, uint32_t count,
                     const struct hmsg_prop *org, char **buf, size_t *cap)
{
    pn_message_clear(msg);
    if (org)
        build_annotations(msg, org);
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

/* ---- dead-letter origin as message annotations ---- */

/*
 * Artemis shows where a dead-lettered AMQP message came from in message
 * annotations x-opt-ORIG-ADDRESS, x-opt-ORIG-QUEUE and x-opt-ORIG-MESSAGE-ID.
 * The core marks its DLQ copy with the _AMQ_ORIG_* properties (core-route.c);
 * the stored AMQP sections stay as the producer sent them, and the
 * annotations are written here, into the bytes delivered.
 */
#define MA_CODE 0x72u
#define NORIG 3

static const char *const orig_prop[NORIG] = {"_AMQ_ORIG_ADDRESS", "_AMQ_ORIG_QUEUE",
                                             "_AMQ_ORIG_MESSAGE_ID"};
static const char *const orig_ann[NORIG] = {"x-opt-ORIG-ADDRESS", "x-opt-ORIG-QUEUE",
                                            "x-opt-ORIG-MESSAGE-ID"};

/* The _AMQ_ORIG_* properties of m (type NULL when absent); true if any. */
static bool dlq_origin(const struct hmsg *m, struct hmsg_prop o[NORIG])
{
    struct hmsg_prop p;
    size_t pos = 0;
    bool any = false;

    for (int i = 0; i < NORIG; i++)
        o[i].type = HMSG_PROP_NULL;
    /* One pass over the properties (this runs for every delivery). */
    while (m->nprops && hmsg_prop_next(m, &pos, &p) == 1) {
        if (p.name.len < 10 || memcmp(p.name.p, "_AMQ_ORIG_", 10) != 0 ||
            (p.type != HMSG_PROP_STRING && p.type != HMSG_PROP_INT64))
            continue;
        for (int i = 0; i < NORIG; i++)
            if (p.name.len == strlen(orig_prop[i]) &&
                memcmp(p.name.p, orig_prop[i], p.name.len) == 0) {
                o[i] = p;
                any = true;
            }
    }
    return any;
}

/* A growable output: bytes appended at len; on out of memory `bad` is set. */
struct ob {
    char **buf;
    size_t *cap, len;
    bool bad;
};

static void ob_put(struct ob *o, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (o->bad || grow(o->buf, o->cap, o->len + n) < 0 || !*o->buf) {
        o->bad = true;
        return;
    }
    memcpy(*o->buf + o->len, p, n);
    o->len += n;
}

static void ob_be(struct ob *o, uint64_t v, unsigned n)
{
    uint8_t b[8];

    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    ob_put(o, b, n);
}

/* A symbol key and a string or long value. */
static void put_orig(struct ob *o, const char *key, const struct hmsg_prop *v)
{
    size_t kl = strlen(key);

    ob_be(o, 0xa3, 1);
    ob_be(o, kl, 1);
    ob_put(o, key, kl);
    if (v->type == HMSG_PROP_INT64) {
        ob_be(o, 0x81, 1);
        ob_be(o, (uint64_t)v->v.i, 8);
    } else if (v->v.bytes.len < 256) {
        ob_be(o, 0xa1, 1);
        ob_be(o, v->v.bytes.len, 1);
        ob_put(o, v->v.bytes.p, v->v.bytes.len);
    } else {
        ob_be(o, 0xb1, 1);
        ob_be(o, v->v.bytes.len, 4);
        ob_put(o, v->v.bytes.p, v->v.bytes.len);
    }
}

static bool is_orig_key(const struct wka_val *k)
{
    for (int i = 0; i < NORIG; i++)
        if (wka_val_is_sym(k) && k->len == strlen(orig_ann[i]) &&
            memcmp(k->p, orig_ann[i], k->len) == 0)
            return true;
    return false;
}

/*
 * A message-annotations section: the entries of old (a map section, or NULL)
 * except older x-opt-ORIG-* ones, then ours. Written as a map32 whose size
 * and count are patched in once the entries are out.
 */
static void put_annotations(struct ob *o, const struct wka_val *old, const struct hmsg_prop *org)
{
    static const uint8_t head[] = {0x00, 0x53, MA_CODE, 0xd1, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t at = o->len;
    uint32_t count = 0;
    struct wka_cur in;
    struct wka_val k, v;

    ob_put(o, head, sizeof(head));
    if (old) {
        wka_val_enter(old, &in);
        for (const uint8_t *e0 = in.p; wka_scan(&in, &k) == 0 && wka_scan(&in, &v) == 0;
             e0 = in.p) {
            if (is_orig_key(&k))
                continue;
            ob_put(o, e0, (size_t)(in.p - e0));
            count += 2;
        }
    }
    for (int i = 0; i < NORIG; i++)
        if (org[i].type != HMSG_PROP_NULL) {
            put_orig(o, orig_ann[i], &org[i]);
            count += 2;
        }
    if (o->bad)
        return;
    uint64_t size = o->len - at - 8; /* from the count field to the end */
    for (int i = 0; i < 4; i++) {
        (*o->buf)[at + 4 + i] = (char)(size >> (8 * (3 - i)));
        (*o->buf)[at + 8 + i] = (char)(count >> (8 * (3 - i)));
    }
}

/*
 * The stored sections with the origin annotations merged into (or inserted
 * as) the message-annotations section, which comes after the header and
 * delivery annotations and before everything else.
 */
static ssize_t annotate(const struct hmsg *m, const struct hmsg_prop *org, char **buf,
                        size_t *cap)
{
    struct ob o = {buf, cap, 0, false};
    struct wka_cur c = {m->body.p, m->body.p + m->body.len};
    struct wka_val v;
    bool done = false;

    while (c.p < c.end) {
        const uint8_t *s0 = c.p;
        if (wka_scan(&c, &v) < 0)
            return -EBADMSG; /* stored bytes were checked on receipt */
        if (!done && v.described && v.desc == MA_CODE) {
            put_annotations(&o, wka_val_is_compound(&v) ? &v : NULL, org);
            done = true;
            continue;
        }
        if (!done && v.described && v.desc > MA_CODE) {
            put_annotations(&o, NULL, org);
            done = true;
        }
        ob_put(&o, s0, (size_t)(c.p - s0));
    }
    if (!done)
        put_annotations(&o, NULL, org);
    return o.bad ? -ENOMEM : (ssize_t)o.len;
}

/* Message annotations for a message built from a STOMP one. */
static void build_annotations(pn_message_t *msg, const struct hmsg_prop *org)
{
    pn_data_t *d = pn_message_annotations(msg);

    pn_data_put_map(d);
    pn_data_enter(d);
    for (int i = 0; i < NORIG; i++) {
        if (org[i].type == HMSG_PROP_NULL)
            continue;
        pn_data_put_symbol(d, pn_bytes(strlen(orig_ann[i]), orig_ann[i]));
        if (org[i].type == HMSG_PROP_INT64)
            pn_data_put_long(d, org[i].v.i);
        else
            pn_data_put_string(d, pn_bytes(org[i].v.bytes.len, (const char *)org[i].v.bytes.p));
    }
    pn_data_exit(d);
}

ssize_t wka_msg_to_amqp(pn_message_t *scratch, const struct hmsg *m, uint32_t delivery_count,
                        const char **out, char **buf, size_t *cap)
{
    static char *ann; /* the annotated sections, before any header patch */
    static size_t ann_cap;
    struct hmsg_prop org[NORIG];
    bool dlq = dlq_origin(m, org);
    struct hmsg src = *m;
    ssize_t n;

    if (m->body_type != HMSG_BODY_AMQP) {
        n = build(scratch, m, delivery_count, dlq ? org : NULL, buf, cap);
        *out = *buf;
        return n;
    }
    if (dlq) {
        n = annotate(m, org, delivery_count ? &ann : buf, delivery_count ? &ann_cap : cap);
        if (n < 0)
            return n;
        src.body = (struct msgproto_bytes){(const uint8_t *)(delivery_count ? ann : *buf),
                                           (uint32_t)n};
    }
    if (delivery_count == 0) {
        *out = (const char *)src.body.p;
        return (ssize_t)src.body.len;
    }
    n = patch_header(&src, delivery_count, buf, cap);
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
