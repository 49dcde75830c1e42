/*
 * worker_stomp — STOMP connections of a worker: drives a stomp_session per
 * client and turns its callbacks into msgproto records for the core, and
 * core records (DONE, DELIVER) back into RECEIPT / MESSAGE / ERROR frames.
 *
 * Mapping (documented for users in daemons/README.md):
 *  - SEND → SEND record. Headers other than the ones STOMP defines become
 *    string application properties; content-type, correlation-id, reply-to,
 *    priority, expires, persistent map to the message's own fields.
 *    `_AMQ_DUPL_ID` is the duplicate-detection id (Artemis' name).
 *  - Every SEND, SUBSCRIBE, ACK batch and transaction command carries a
 *    correlation id; the core answers each with DONE. A RECEIPT goes out only
 *    on that DONE, so a receipt for a persistent message means "on disk".
 *    A failed DONE becomes an ERROR frame.
 *  - ack:auto subscriptions use link credit (the core settles on delivery);
 *    credit is returned only once the MESSAGE frames left our output buffer,
 *    so a slow client holds messages in the broker, not in worker memory.
 *    ack:client / client-individual use a window of unacknowledged messages.
 *  - NACK redelivers with the delivery count raised (Artemis drops the message;
 *    we do not lose it): after max_delivery_attempts it goes to the DLQ.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hamq/log.h"
#include "stomp_session.h"
#include "worker.h"

#define AUTO_CREDIT 1000u
#define AUTO_CREDIT_BATCH 100u
#define OUT_HIGH_WATER (1u << 20)
#define SEND_PROPS_MAX 256

struct wk_sub {
    struct wk_sub *next;
    char *id;
    uint64_t consumer;
    uint8_t routing;
    bool auto_ack;
    uint32_t owed; /* auto-ack deliveries written whose credit is not yet returned */
};

struct wk_tx {
    struct wk_tx *next;
    char *name;
    uint64_t id;
};

struct wk_stomp {
    struct worker *w;
    struct wconn *c;
    struct stomp_session *s;
    uint64_t id;
    bool opened; /* CONN_OPEN sent */
    bool paused;
    struct u64map corr; /* corr → receipt (strdup) or &no_receipt */
    uint64_t next_corr, next_consumer, next_tx;
    struct wk_sub *subs;
    struct wk_tx *txs;
    char client_id[128];
    struct ev_watch *hb_timer;
};

static char no_receipt;
static struct hmsg_prop props_scratch[SEND_PROPS_MAX];

static void arm_heartbeat(struct wk_stomp *st, uint32_t every_ms);

static uint64_t new_corr(struct wk_stomp *st, const char *receipt)
{
    uint64_t corr = ++st->next_corr;
    void *v = receipt ? strdup(receipt) : &no_receipt;

    if (!v || u64map_put(&st->corr, corr, v) < 0) {
        if (v != &no_receipt)
            free(v);
        return 0;
    }
    return corr;
}

static void forget_corr(struct wk_stomp *st, uint64_t corr)
{
    void *v = u64map_del(&st->corr, corr);

    if (v && v != &no_receipt)
        free(v);
}

static struct wk_sub *sub_by_id(struct wk_stomp *st, const char *id)
{
    for (struct wk_sub *s = st->subs; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static struct wk_sub *sub_by_consumer(struct wk_stomp *st, uint64_t consumer)
{
    for (struct wk_sub *s = st->subs; s; s = s->next)
        if (s->consumer == consumer)
            return s;
    return NULL;
}

static uint64_t tx_id(struct wk_stomp *st, const char *name, bool create)
{
    if (!name)
        return 0;
    for (struct wk_tx *t = st->txs; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t->id;
    if (!create)
        return 0;
    struct wk_tx *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return 0;
    }
    t->id = ++st->next_tx;
    t->next = st->txs;
    st->txs = t;
    return t->id;
}

static void tx_forget(struct wk_stomp *st, const char *name)
{
    for (struct wk_tx **p = &st->txs; *p; p = &(*p)->next)
        if (strcmp((*p)->name, name) == 0) {
            struct wk_tx *t = *p;
            *p = t->next;
            free(t->name);
            free(t);
            return;
        }
}

/* Sends rec; on a full ring pauses this client. Returns 0, -EAGAIN, or -errno. */
static int send_rec(struct wk_stomp *st, const struct msgproto_rec *rec, bool may_queue)
{
    int r = wk_send(st->w, rec, may_queue);

    if (r == -EAGAIN || (r == 0 && (rec->type == MSGPROTO_SEND ? wk_congested(st->w)
                                                               : wk_backlogged(st->w)))) {
        st->paused = true;
        wk_conn_wait_space(st->w, st->id);
    }
    return r;
}

static int on_connect(void *ctx, const struct stomp_connect_info *ci)
{
    struct wk_stomp *st = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_CONN_OPEN};

    if (!st->w->cfg.allow_anonymous && !ci->login)
        return -EACCES;
    snprintf(st->client_id, sizeof(st->client_id), "%s", ci->client_id ? ci->client_id : "");
    rec.u.conn.conn = st->id;
    rec.u.conn.client_id = msgproto_str(st->client_id);
    rec.u.conn.user = msgproto_str(ci->login);
    if (send_rec(st, &rec, true) < 0)
        return -ENOMEM;
    st->opened = true;
    uint32_t snd, rcv;
    stomp_session_heartbeat(st->s, &snd, &rcv);
    if (snd || rcv) {
        uint32_t every = (snd && rcv) ? (snd < rcv ? snd : rcv) : (snd ? snd : rcv);
        /* Tick often enough that a late peer is noticed within a second of its deadline. */
        every = every / 2 ? every / 2 : 1;
        every = every > 1000 ? 1000 : every;
        arm_heartbeat(st, every);
    }
    return 0;
}

static bool is_mapped_header(const char *n, size_t len)
{
    /* Lengths kept beside the names: this runs for every header of every SEND. */
#define MH(s) {s, sizeof(s) - 1}
    static const struct {
        const char *s;
        size_t len;
    } names[] = {
        MH("destination"), MH("content-length"), MH("content-type"), MH("receipt"),
        MH("transaction"), MH("persistent"), MH("priority"), MH("expires"),
        MH("destination-type"), MH("correlation-id"), MH("reply-to"), MH("message-id"),
        MH("subscription"), MH("ack"), MH("_AMQ_DUPL_ID"), MH("redelivered"),
    };
#undef MH
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].len == len && memcmp(names[i].s, n, len) == 0)
            return true;
    return false;
}

static struct msgproto_bytes hval(const struct stomp_send_info *si, const char *name)
{
    size_t l = strlen(name);

    for (size_t i = 0; i < si->nheaders; i++)
        if (si->headers[i].name_len == l && memcmp(si->headers[i].name, name, l) == 0)
            return (struct msgproto_bytes){(const uint8_t *)si->headers[i].value,
                                           (uint32_t)si->headers[i].value_len};
    return (struct msgproto_bytes){(const uint8_t *)"", 0};
}

static int64_t hnum(const struct stomp_send_info *si, const char *name, int64_t dflt)
{
    struct msgproto_bytes b = hval(si, name);
    char tmp[32];
    char *end;

    if (b.len == 0 || b.len >= sizeof(tmp))
        return dflt;
    memcpy(tmp, b.p, b.len);
    tmp[b.len] = 0;
    long long v = strtoll(tmp, &end, 10);
    return *end ? dflt : v;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The encoded message of the SEND being handled. One per worker (the worker is
 * single-threaded and the SEND record is copied into the ring before on_send
 * returns), grown on demand instead of a malloc/free per message; released
 * again after a message bigger than ENC_KEEP so one huge SEND does not pin
 * its size for the life of the worker.
 */
#define ENC_KEEP (1u << 20)
static uint8_t *enc_buf;
static size_t enc_cap;

static uint8_t *enc_reserve(size_t len)
{
    if (len > enc_cap) {
        size_t cap = enc_cap ? enc_cap : 4096;
        while (cap < len)
            cap *= 2;
        uint8_t *nb = realloc(enc_buf, cap);
        if (!nb)
            return NULL;
        enc_buf = nb;
        enc_cap = cap;
    }
    return enc_buf;
}

static void enc_trim(void)
{
    if (enc_cap > ENC_KEEP) {
        free(enc_buf);
        enc_buf = NULL;
        enc_cap = 0;
    }
}

/* Encodes the SEND's message into enc_buf; *prio and *expiration as parsed. */
static int encode_message(const struct stomp_send_info *si, uint8_t routing, uint8_t **out,
                          size_t *outlen, uint8_t *prio_out, int64_t *expiration_out)
{
    struct hmsg m = {0};
    uint32_t n = 0;
    struct msgproto_bytes ct = hval(si, "content-type");
    bool has_len = hval(si, "content-length").len > 0;

    for (size_t i = 0; i < si->nheaders && n < SEND_PROPS_MAX; i++) {
        const struct stomp_header *h = &si->headers[i];
        if (is_mapped_header(h->name, h->name_len))
            continue;
        props_scratch[n].name = (struct msgproto_bytes){(const uint8_t *)h->name,
                                                        (uint32_t)h->name_len};
        props_scratch[n].type = HMSG_PROP_STRING;
        props_scratch[n].v.bytes = (struct msgproto_bytes){(const uint8_t *)h->value,
                                                           (uint32_t)h->value_len};
        n++;
    }
    m.routing = routing;
    m.durable = si->persistent;
    int64_t prio = hnum(si, "priority", 4);
    m.priority = (uint8_t)(prio < 0 ? 0 : prio > 9 ? 9 : prio);
    m.expiration = hnum(si, "expires", 0);
    m.timestamp = wall_ms();
    m.address = (struct msgproto_bytes){(const uint8_t *)si->dest.address,
                                        (uint32_t)si->dest.address_len};
    m.correlation_id = hval(si, "correlation-id");
    m.reply_to = hval(si, "reply-to");
    m.content_type = ct;
    m.user_id = msgproto_str("");
    m.message_id = msgproto_str("");
    m.subject = msgproto_str("");
    m.group_id = msgproto_str("");
    m.nprops = n;
    m.props = props_scratch;
    /* No content-length, or a text type: a text message (Artemis does the same). */
    m.body_type = (!has_len || (ct.len >= 5 && memcmp(ct.p, "text/", 5) == 0)) ? HMSG_BODY_TEXT
                                                                              : HMSG_BODY_BINARY;
    m.body = (struct msgproto_bytes){si->body, (uint32_t)si->body_len};
    ssize_t len = hmsg_encode(&m, NULL, 0);
    if (len < 0)
        return (int)len;
    *out = enc_reserve((size_t)len);
    if (!*out)
        return -ENOMEM;
    *outlen = (size_t)hmsg_encode(&m, *out, (size_t)len);
    *prio_out = m.priority;
    *expiration_out = m.expiration;
    return 0;
}

static uint8_t routing_of(enum stomp_routing r)
{
    return r == STOMP_ROUTING_ANYCAST     ? MSGPROTO_ANYCAST
           : r == STOMP_ROUTING_MULTICAST ? MSGPROTO_MULTICAST
                                          : MSGPROTO_ROUTING_UNSPECIFIED;
}

static int on_send(void *ctx, const struct stomp_send_info *si)
{
    struct wk_stomp *st = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_SEND};
    uint8_t *msg = NULL;
    size_t mlen = 0;
    char addr[MSGPROTO_STR_MAX];
    int r;

    if (wk_congested(st->w)) {
        st->paused = true;
        wk_conn_wait_space(st->w, st->id);
        return -EAGAIN;
    }
    /* A full address: the frame waits in the session (receipt with it) and
     * the socket is not read until the core releases the address. */
    if (wk_address_blocked(st->w, si->dest.address, si->dest.address_len)) {
        st->paused = true;
        wk_conn_wait_address(st->w, st->id);
        return -EAGAIN;
    }
    if (si->dest.address_len >= sizeof(addr))
        return -ENAMETOOLONG;
    r = encode_message(si, routing_of(si->dest.routing), &msg, &mlen, &rec.u.send.priority,
                       &rec.u.send.expiration);
    if (r < 0)
        return r;
    memcpy(addr, si->dest.address, si->dest.address_len);
    addr[si->dest.address_len] = 0;
    rec.flags = si->persistent ? MSGPROTO_F_DURABLE : 0;
    rec.u.send.conn = st->id;
    rec.u.send.corr = new_corr(st, si->receipt);
    rec.u.send.tx = tx_id(st, si->transaction, false);
    rec.u.send.routing = routing_of(si->dest.routing);
    rec.u.send.address = msgproto_str(addr);
    rec.u.send.queue = (struct msgproto_bytes){(const uint8_t *)(si->dest.queue ? si->dest.queue
                                                                                : ""),
                                               (uint32_t)si->dest.queue_len};
    rec.u.send.dup_id = hval(si, "_AMQ_DUPL_ID");
    rec.u.send.message = (struct msgproto_bytes){msg, (uint32_t)mlen};
    r = send_rec(st, &rec, false);
    enc_trim();
    if (r < 0) {
        forget_corr(st, rec.u.send.corr);
        return r == -EAGAIN ? -EAGAIN : r;
    }
    return si->receipt ? STOMP_DEFER : 0;
}

static int on_subscribe(void *ctx, const struct stomp_subscribe_info *si)
{
    struct wk_stomp *st = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_SUBSCRIBE};
    struct wk_sub *sub = calloc(1, sizeof(*sub));
    char addr[1024], queue[1024], subname[512];

    if (!sub || !(sub->id = strdup(si->id))) {
        free(sub);
        return -ENOMEM;
    }
    snprintf(addr, sizeof(addr), "%.*s", (int)si->dest.address_len, si->dest.address);
    snprintf(queue, sizeof(queue), "%.*s", (int)si->dest.queue_len,
             si->dest.queue ? si->dest.queue : "");
    subname[0] = 0;
    if (si->durable_name)
        snprintf(subname, sizeof(subname), "%s%s%s", st->client_id, st->client_id[0] ? "." : "",
                 si->durable_name);
    sub->consumer = ++st->next_consumer;
    sub->routing = routing_of(si->dest.routing);
    sub->auto_ack = si->ack == STOMP_ACK_AUTO;
    rec.u.sub.conn = st->id;
    rec.u.sub.consumer = sub->consumer;
    rec.u.sub.corr = new_corr(st, si->receipt);
    rec.u.sub.routing = sub->routing;
    if (sub->auto_ack) {
        rec.u.sub.options = MSGPROTO_SUB_AUTO_ACK;
        rec.u.sub.credit = AUTO_CREDIT;
    } else {
        rec.u.sub.options = MSGPROTO_SUB_WINDOW;
        rec.u.sub.credit = si->window < 0 ? 0xffffffffu : si->window == 0 ? 1u
                                                                          : (uint32_t)si->window;
    }
    if (subname[0])
        rec.u.sub.options |= MSGPROTO_SUB_DURABLE;
    rec.u.sub.address = msgproto_str(addr);
    rec.u.sub.queue = msgproto_str(queue);
    rec.u.sub.sub_name = msgproto_str(subname);
    rec.u.sub.filter = msgproto_str(si->selector);
    int r = send_rec(st, &rec, true);
    if (r < 0) {
        forget_corr(st, rec.u.sub.corr);
        free(sub->id);
        free(sub);
        return r;
    }
    sub->next = st->subs;
    st->subs = sub;
    return si->receipt ? STOMP_DEFER : 0;
}

static void sub_free(struct wk_stomp *st, struct wk_sub *sub)
{
    for (struct wk_sub **p = &st->subs; *p; p = &(*p)->next)
        if (*p == sub) {
            *p = sub->next;
            break;
        }
    free(sub->id);
    free(sub);
}

static int on_unsubscribe(void *ctx, const char *id, const char *receipt)
{
    struct wk_stomp *st = ctx;
    struct wk_sub *sub = sub_by_id(st, id);
    struct msgproto_rec rec = {.type = MSGPROTO_UNSUBSCRIBE};

    if (!sub)
        return -ENOENT;
    rec.u.unsub.conn = st->id;
    rec.u.unsub.consumer = sub->consumer;
    rec.u.unsub.corr = new_corr(st, receipt);
    sub_free(st, sub);
    int r = send_rec(st, &rec, true);
    if (r < 0)
        return r;
    return receipt ? STOMP_DEFER : 0;
}

static int on_ack(void *ctx, const struct stomp_ack_info *ai)
{
    struct wk_stomp *st = ctx;
    struct wk_sub *sub = sub_by_id(st, ai->subscription_id);
    uint64_t tx = tx_id(st, ai->transaction, false);

    if (!sub)
        return -ENOENT;
    for (size_t i = 0; i < ai->ntokens; i++) {
        struct msgproto_rec rec = {.type = ai->nack ? MSGPROTO_MODIFIED : MSGPROTO_ACK};
        rec.u.settle.conn = st->id;
        rec.u.settle.consumer = sub->consumer;
        rec.u.settle.delivery = ai->tokens[i];
        rec.u.settle.tx = tx;
        rec.u.settle.corr = (i + 1 == ai->ntokens && ai->receipt) ? new_corr(st, ai->receipt) : 0;
        int r = send_rec(st, &rec, true);
        if (r < 0)
            return r;
    }
    return ai->receipt && ai->ntokens ? STOMP_DEFER : 0;
}

static int on_tx(void *ctx, enum stomp_tx_op op, const char *tx, const char *receipt)
{
    struct wk_stomp *st = ctx;
    struct msgproto_rec rec = {.type = op == STOMP_TX_BEGIN    ? MSGPROTO_TX_BEGIN
                                       : op == STOMP_TX_COMMIT ? MSGPROTO_TX_COMMIT
                                                               : MSGPROTO_TX_ROLLBACK};

    rec.u.tx.conn = st->id;
    rec.u.tx.tx = tx_id(st, tx, op == STOMP_TX_BEGIN);
    if (!rec.u.tx.tx)
        return op == STOMP_TX_BEGIN ? -ENOMEM : -ENOENT;
    rec.u.tx.corr = new_corr(st, receipt);
    if (op != STOMP_TX_BEGIN)
        tx_forget(st, tx);
    int r = send_rec(st, &rec, true);
    if (r < 0)
        return r;
    return receipt ? STOMP_DEFER : 0;
}

static const struct stomp_session_ops session_ops = {
    .on_connect = on_connect,
    .on_send = on_send,
    .on_subscribe = on_subscribe,
    .on_unsubscribe = on_unsubscribe,
    .on_ack = on_ack,
    .on_tx = on_tx,
};

/* ---- core → client ---- */

static void on_done(void *conn, const struct msgproto_done *d)
{
    struct wk_stomp *st = conn;
    void *v = u64map_del(&st->corr, d->corr);
    char text[512];

    if (!v)
        return;
    if (d->status < 0) {
        snprintf(text, sizeof(text), "%.*s", (int)d->text.len, (const char *)d->text.p);
        stomp_session_error(st->s, text[0] ? text : strerror(-d->status), NULL,
                            v != &no_receipt ? (const char *)v : NULL);
    } else if (v != &no_receipt) {
        stomp_session_receipt(st->s, v);
    }
    if (v != &no_receipt)
        free(v);
}

static void return_credit(struct wk_stomp *st, struct wk_sub *sub)
{
    struct msgproto_rec rec = {.type = MSGPROTO_CREDIT};

    rec.u.credit.conn = st->id;
    rec.u.credit.consumer = sub->consumer;
    rec.u.credit.credits = sub->owed;
    if (wk_send(st->w, &rec, true) == 0)
        sub->owed = 0;
}

static size_t output_pending(struct wk_stomp *st)
{
    const uint8_t *p;
    size_t n;

    stomp_session_output(st->s, &p, &n);
    return n;
}

#define DELIVER_HEADERS_MAX 300

/* Decimal of v into out (room for 21 bytes), NUL-terminated; returns its length.
 * Every delivery formats several numbers: snprintf was a visible cost there. */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

static size_t fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

static void on_deliver(void *conn, const struct msgproto_deliver *d, uint8_t flags)
{
    struct wk_stomp *st = conn;
    struct wk_sub *sub = sub_by_consumer(st, d->consumer);
    static struct stomp_header hs[DELIVER_HEADERS_MAX];
    static char numbuf[DELIVER_HEADERS_MAX][32];
    char msgid[48], dest[1100];
    struct hmsg m;
    struct hmsg_prop p;
    size_t n = 0, pos = 0;

    if (!sub)
        return; /* unsubscribed meanwhile: the core releases it on UNSUBSCRIBE */
    if (hmsg_decode(d->message.p, d->message.len, &m) < 0) {
        log_err("undecodable message %" PRIu64 " from the core; skipped", d->message_id);
        return;
    }
#define H(nm, val, vlen)                                                                           \
    do {                                                                                           \
        hs[n].name = (nm);                                                                         \
        hs[n].name_len = strlen(nm);                                                               \
        hs[n].value = (const char *)(val);                                                         \
        hs[n].value_len = (vlen);                                                                  \
        n++;                                                                                       \
    } while (0)
    if (m.content_type.len)
        H("content-type", m.content_type.p, m.content_type.len);
    if (m.correlation_id.len)
        H("correlation-id", m.correlation_id.p, m.correlation_id.len);
    if (m.reply_to.len)
        H("reply-to", m.reply_to.p, m.reply_to.len);
    if (m.durable)
        H("persistent", "true", 4);
    H("priority", numbuf[n], fmt_u64(numbuf[n], m.priority));
    if (m.expiration)
        H("expires", numbuf[n], fmt_i64(numbuf[n], m.expiration));
    H("timestamp", numbuf[n], fmt_i64(numbuf[n], m.timestamp));
    if (flags & MSGPROTO_F_REDELIVERED)
        H("redelivered", "true", 4);
    if (d->delivery_count)
        H("redelivery-count", numbuf[n], fmt_u64(numbuf[n], d->delivery_count));
    while (n < DELIVER_HEADERS_MAX && hmsg_prop_next(&m, &pos, &p) == 1) {
        const char *name = (const char *)p.name.p;
        switch (p.type) {
        case HMSG_PROP_STRING:
            H(name, p.v.bytes.p, p.v.bytes.len);
            break;
        case HMSG_PROP_INT64:
            H(name, numbuf[n], fmt_i64(numbuf[n], p.v.i));
            break;
        case HMSG_PROP_DOUBLE:
            snprintf(numbuf[n], 32, "%.17g", p.v.d);
            H(name, numbuf[n], strlen(numbuf[n]));
            break;
        case HMSG_PROP_BOOL:
            H(name, p.v.b ? "true" : "false", p.v.b ? 4 : 5);
            break;
        default:
            break; /* null and binary properties have no STOMP header form */
        }
    }
#undef H
    const uint8_t *body = m.body.p;
    size_t body_len = m.body.len;
    static char amqp_fmt[4096];
    if (m.body_type == HMSG_BODY_AMQP) /* from an AMQP producer: its body section's payload */
        wk_amqp_stomp_payload(&m, amqp_fmt, sizeof(amqp_fmt), &body, &body_len);
    size_t ml = fmt_u64(msgid, d->message_id);
    msgid[ml++] = '-';
    fmt_u64(msgid + ml, d->delivery);
    const char *prefix = m.routing == MSGPROTO_MULTICAST ? "/topic/" : "/queue/";
    size_t alen = m.address.len < sizeof(dest) - 8 ? m.address.len : sizeof(dest) - 8;
    memcpy(dest, prefix, 7);
    memcpy(dest + 7, m.address.p, alen);
    dest[7 + alen] = '\0';
    struct stomp_delivery sd = {
        .subscription_id = sub->id,
        .message_id = msgid,
        .destination = dest,
        .headers = hs,
        .nheaders = n,
        .body = body,
        .body_len = body_len,
        .token = d->delivery,
    };
    int r = stomp_session_deliver(st->s, &sd);
    if (r < 0)
        log_warn("delivery to %s subscription %s failed: %s", wnet_peer_name(st->c), sub->id,
                 strerror(-r));
    if (sub->auto_ack) {
        sub->owed++;
        if (sub->owed >= AUTO_CREDIT_BATCH && output_pending(st) < OUT_HIGH_WATER)
            return_credit(st, sub);
    }
}

static void on_consumer_closed(void *conn, const struct msgproto_consumer_closed *c)
{
    struct wk_stomp *st = conn;
    struct wk_sub *sub = sub_by_consumer(st, c->consumer);
    char text[512];

    if (!sub)
        return;
    snprintf(text, sizeof(text), "subscription %s closed by the broker: %.*s", sub->id,
             (int)c->reason.len, (const char *)c->reason.p);
    sub_free(st, sub);
    if (c->status < 0)
        stomp_session_error(st->s, text, NULL, NULL);
}

static void on_writable(void *conn)
{
    struct wk_stomp *st = conn;
    int r;

    if (!st->paused)
        return;
    r = stomp_session_stalled(st->s) ? stomp_session_resume(st->s) : 0;
    if (r == -EAGAIN) {
        wk_conn_wait_space(st->w, st->id);
        return;
    }
    st->paused = false;
    if (r < 0)
        wnet_flush(st->c); /* ERROR queued: flush closes after it */
    else
        wnet_resume_input(st->c);
}

static const struct wk_conn_ops conn_ops = {
    .on_done = on_done,
    .on_deliver = on_deliver,
    .on_consumer_closed = on_consumer_closed,
    .on_writable = on_writable,
};

/* ---- wnet protocol ---- */

static void *st_open(void *ctx, struct wconn *c)
{
    struct worker *w = ctx;
    struct stomp_session_config cfg;
    struct wk_stomp *st = calloc(1, sizeof(*st));
    static char sid[40];

    if (!st)
        return NULL;
    st->w = w;
    st->c = c;
    u64map_init(&st->corr);
    st->id = wk_conn_register(w, &conn_ops, st);
    if (!st->id) {
        free(st);
        return NULL;
    }
    snprintf(sid, sizeof(sid), "%" PRIx64, st->id);
    stomp_session_config_defaults(&cfg);
    cfg.limits.max_body = w->cfg.max_message_size;
    cfg.limits.max_frame = w->cfg.max_message_size + cfg.limits.max_header_line * 4;
    cfg.server = "hamq/" PACKAGE_VERSION;
    cfg.session_id = sid;
    cfg.ops = &session_ops;
    cfg.ctx = st;
    st->s = stomp_session_new(&cfg);
    if (!st->s) {
        wk_conn_unregister(w, st->id);
        free(st);
        return NULL;
    }
    return st;
}

static ssize_t st_input(void *state, const uint8_t *buf, size_t len)
{
    struct wk_stomp *st = state;
    ssize_t r;

    if (st->paused) {
        /* Paused after a SEND that filled the ring: stop reading the socket
         * too (on_writable resumes it), so TCP holds the client back. */
        wnet_pause_input(st->c);
        return 0;
    }
    r = stomp_session_input(st->s, buf, len);
    if (r == -EAGAIN)
        r = 0;
    if (r >= 0 && (size_t)r < len && (st->paused || stomp_session_stalled(st->s))) {
        st->paused = true;
        wnet_pause_input(st->c);
        wk_conn_wait_space(st->w, st->id);
    }
    return r;
}

static void st_output(void *state, const uint8_t **p, size_t *len)
{
    stomp_session_output(((struct wk_stomp *)state)->s, p, len);
}

static void st_consumed(void *state, size_t n)
{
    struct wk_stomp *st = state;

    stomp_session_consumed_output(st->s, n);
    if (output_pending(st) < OUT_HIGH_WATER)
        for (struct wk_sub *s = st->subs; s; s = s->next)
            if (s->auto_ack && s->owed)
                return_credit(st, s);
}

static bool st_should_close(void *state)
{
    return stomp_session_should_close(((struct wk_stomp *)state)->s);
}

static void st_close(void *state, const char *why)
{
    struct wk_stomp *st = state;
    size_t pos = 0;
    struct u64map_entry *e;

    if (st->opened) {
        struct msgproto_rec rec = {.type = MSGPROTO_CONN_CLOSE};
        rec.u.conn.conn = st->id;
        rec.u.conn.client_id = msgproto_str("");
        rec.u.conn.user = msgproto_str("");
        if (wk_send(st->w, &rec, true) < 0)
            log_err("could not tell the core that connection %" PRIx64 " closed (%s)", st->id,
                    why);
    }
    if (st->hb_timer)
        evloop_del(st->w->loop, st->hb_timer);
    wk_conn_unregister(st->w, st->id);
    while ((e = u64map_next(&st->corr, &pos)))
        if (e->val != &no_receipt)
            free(e->val);
    u64map_free(&st->corr);
    while (st->subs)
        sub_free(st, st->subs);
    while (st->txs) {
        struct wk_tx *t = st->txs;
        st->txs = t->next;
        free(t->name);
        free(t);
    }
    stomp_session_free(st->s);
    free(st);
}

static void on_hb_tick(struct evloop *loop, void *ctx)
{
    struct wk_stomp *st = ctx;

    (void)loop;
    if (stomp_session_tick(st->s, evloop_now_ms()) == STOMP_TICK_PEER_LATE) {
        log_info("STOMP client %s missed its heart-beats; closing", wnet_peer_name(st->c));
        wnet_close(st->c, "heart-beat timeout");
        return;
    }
    wnet_flush(st->c);
}

static void arm_heartbeat(struct wk_stomp *st, uint32_t every_ms)
{
    if (!st->hb_timer)
        evloop_add_timer(st->w->loop, every_ms, every_ms, on_hb_tick, st, &st->hb_timer);
    stomp_session_tick(st->s, evloop_now_ms());
}

void wk_stomp_init(struct worker *w, struct wnet_proto *p)
{
    *p = (struct wnet_proto){
        .name = "STOMP",
        .open = st_open,
        .input = st_input,
        .output = st_output,
        .consumed = st_consumed,
        .should_close = st_should_close,
        .close = st_close,
        .ctx = w,
    };
}
