/*
 * stomp_session — STOMP connection state machine (contract in stomp_session.h).
 *
 * State per session, all private to the one thread that drives it:
 *  - subs: the client's subscriptions (id, ack mode, a serial that never repeats,
 *    so pending deliveries of a removed subscription can never match a new one
 *    with the same id);
 *  - pend: deliveries sent on client/client-individual subscriptions and not yet
 *    acked, in delivery order (so "client" acks are cumulative by position); the
 *    live ones are pend[pend_head .. pend_head + npend), so an ack of the oldest
 *    (the usual order) is O(1) instead of moving every later entry; the array is
 *    compacted to pend_head = 0 by any other removal and before it grows;
 *  - txs: open transaction ids;
 *  - out: bytes for the peer, drained from out_head by the worker.
 */
#include "stomp_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sess_sub {
    char *id;
    enum stomp_ack_mode ack;
    uint64_t serial;
};

struct sess_pend {
    char *message_id;
    uint64_t sub_serial;
    uint64_t token;
};

struct stomp_session {
    struct stomp_session_config cfg;
    struct stomp_parser parser;
    struct stomp_buf out;
    size_t out_head;
    bool connected, closing, stalled;
    enum stomp_version version;
    uint32_t hb_send, hb_recv;
    struct sess_sub *subs;
    size_t nsubs, subs_cap;
    uint64_t next_serial;
    struct sess_pend *pend;
    size_t pend_head, npend, pend_cap;
    char **txs;
    size_t ntx, tx_cap;
    char *disconnect_receipt;
    char *server, *session_id; /* owned copies behind cfg.server / cfg.session_id */
    struct stomp_frame held;   /* frame refused with -EAGAIN, retried by resume() */
    uint64_t *toks;
    size_t toks_cap;
    uint64_t rx_bytes, tx_bytes, seen_rx, seen_tx;
    uint64_t last_rx_ms, last_tx_ms, last_tick_ms, first_tick_ms;
    bool clock_started;
};

void stomp_session_config_defaults(struct stomp_session_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->limits = (struct stomp_limits){
        .max_headers = 1000,
        .max_header_line = 64 * 1024,
        .max_body = 100u * 1024 * 1024,
        .max_frame = 100u * 1024 * 1024 + 1024 * 1024,
    };
    cfg->hb_send_ms = 10000;
    cfg->hb_recv_ms = 10000;
    cfg->max_subscriptions = 1000;
    cfg->max_transactions = 100;
    cfg->connect_timeout_ms = 30000;
    cfg->default_window_client = 10240;
    cfg->default_window_auto = -1;
}

/* ---- destinations ----------------------------------------------------- */

static int routing_from_header(const char *h, enum stomp_routing *r)
{
    if (!h)
        return 0;
    if (strcmp(h, "ANYCAST") == 0)
        *r = STOMP_ROUTING_ANYCAST;
    else if (strcmp(h, "MULTICAST") == 0)
        *r = STOMP_ROUTING_MULTICAST;
    else
        return -EINVAL;
    return 0;
}

int stomp_dest_parse(const char *dest, const char *type_header, struct stomp_dest *out)
{
    memset(out, 0, sizeof(*out));
    if (!dest)
        return -EINVAL;
    if (strncmp(dest, "/queue/", 7) == 0) {
        out->routing = STOMP_ROUTING_ANYCAST;
        dest += 7;
    } else if (strncmp(dest, "/topic/", 7) == 0) {
        out->routing = STOMP_ROUTING_MULTICAST;
        dest += 7;
    }
    if (routing_from_header(type_header, &out->routing) < 0)
        return -EINVAL;
    const char *sep = strstr(dest, "::");
    out->address = dest;
    out->address_len = sep ? (size_t)(sep - dest) : strlen(dest);
    if (sep) {
        out->queue = sep + 2;
        out->queue_len = strlen(sep + 2);
        if (out->queue_len == 0)
            return -EINVAL;
    }
    return out->address_len ? 0 : -EINVAL;
}

/* ---- output ----------------------------------------------------------- */

static int queue_frame(struct stomp_session *s, enum stomp_command cmd,
                       const struct stomp_header *h, size_t n, const void *body, size_t blen)
{
    size_t before = s->out.len;
    int r = stomp_serialize(&s->out, s->version, cmd, h, n, body, blen);
    if (r == 0)
        s->tx_bytes += s->out.len - before;
    return r;
}

static struct stomp_header hdr(const char *name, const char *value)
{
    return (struct stomp_header){name, strlen(name), value, strlen(value)};
}

static int queue_error(struct stomp_session *s, const char *message, const char *detail,
                       const char *receipt)
{
    struct stomp_header h[3];
    size_t n = 0;
    h[n++] = hdr("message", message);
    h[n++] = hdr("content-type", "text/plain");
    if (receipt)
        h[n++] = hdr("receipt-id", receipt);
    const char *body = detail ? detail : message;
    int r = queue_frame(s, STOMP_CMD_ERROR, h, n, body, strlen(body));
    if (r == -EINVAL) /* a message or receipt that cannot be represented: say less */
        r = queue_frame(s, STOMP_CMD_ERROR, h, 2, body, strlen(body));
    s->closing = true;
    return r;
}

/* A protocol violation by the client: ERROR, close, -EPROTO. */
__attribute__((format(printf, 3, 4))) static int
violation(struct stomp_session *s, const struct stomp_frame *f, const char *fmt, ...)
{
    char msg[STOMP_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    queue_error(s, msg, NULL, f ? stomp_frame_get(f, "receipt") : NULL);
    return -EPROTO;
}

static int send_receipt(struct stomp_session *s, const char *receipt)
{
    struct stomp_header h = hdr("receipt-id", receipt);
    return queue_frame(s, STOMP_CMD_RECEIPT, &h, 1, NULL, 0);
}

/* ---- lookup tables ---------------------------------------------------- */

static struct sess_sub *find_sub(struct stomp_session *s, const char *id)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i].id, id) == 0)
            return &s->subs[i];
    return NULL;
}

static size_t find_tx(const struct stomp_session *s, const char *tx)
{
    for (size_t i = 0; i < s->ntx; i++)
        if (strcmp(s->txs[i], tx) == 0)
            return i;
    return SIZE_MAX;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *a = realloc(*arr, ncap * elem);
    if (!a)
        return -ENOMEM;
    *arr = a;
    *cap = ncap;
    return 0;
}

/* The i-th live pending delivery (0 = oldest). */
static struct sess_pend *pend_at(const struct stomp_session *s, size_t i)
{
    return &s->pend[s->pend_head + i];
}

static void drop_pending_of(struct stomp_session *s, uint64_t serial)
{
    size_t o = 0;
    for (size_t i = 0; i < s->npend; i++) {
        struct sess_pend *p = pend_at(s, i);
        if (p->sub_serial == serial)
            free(p->message_id);
        else
            s->pend[o++] = *p; /* o <= pend_head + i: never overwrites an unread entry */
    }
    s->npend = o;
    s->pend_head = 0;
}

/* ---- lifecycle -------------------------------------------------------- */

struct stomp_session *stomp_session_new(const struct stomp_session_config *cfg)
{
    struct stomp_session *s = calloc(1, sizeof(*s));
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->cfg = *cfg;
    if (stomp_parser_init(&s->parser, &cfg->limits) < 0) {
        free(s);
        errno = EINVAL;
        return NULL;
    }
    /* Copies: callers build these in reusable buffers (one per worker, say). */
    s->cfg.server = s->server = cfg->server ? strdup(cfg->server) : NULL;
    s->cfg.session_id = s->session_id = cfg->session_id ? strdup(cfg->session_id) : NULL;
    if ((cfg->server && !s->server) || (cfg->session_id && !s->session_id)) {
        stomp_session_free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->version = STOMP_V10;
    s->next_serial = 1;
    return s;
}

void stomp_session_free(struct stomp_session *s)
{
    if (!s)
        return;
    stomp_parser_free(&s->parser);
    stomp_buf_free(&s->out);
    for (size_t i = 0; i < s->nsubs; i++)
        free(s->subs[i].id);
    for (size_t i = 0; i < s->npend; i++)
        free(pend_at(s, i)->message_id);
    for (size_t i = 0; i < s->ntx; i++)
        free(s->txs[i]);
    free(s->subs);
    free(s->pend);
    free(s->txs);
    free(s->toks);
    free(s->disconnect_receipt);
    free(s->server);
    free(s->session_id);
    free(s);
}

/* ---- CONNECT ---------------------------------------------------------- */

static bool pick_version(const char *accept, enum stomp_version *v)
{
    bool any = false;
    *v = STOMP_V10;
    if (!accept)
        return true;
    for (const char *p = accept; *p;) {
        size_t n = strcspn(p, ",");
        for (int c = STOMP_V10; c <= STOMP_V12; c++) {
            const char *name = stomp_version_name((enum stomp_version)c);
            if (n == strlen(name) && memcmp(p, name, n) == 0 && (!any || c > (int)*v)) {
                *v = (enum stomp_version)c;
                any = true;
            }
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return any;
}

static int parse_u32(const char *s, size_t n, uint32_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "cx,cy" → the intervals we send at and expect at (0 = off). */
static int negotiate_heartbeat(struct stomp_session *s, const char *hb)
{
    uint32_t cx = 0, cy = 0;
    s->hb_send = s->hb_recv = 0;
    if (!hb || s->version == STOMP_V10)
        return 0;
    const char *comma = strchr(hb, ',');
    if (!comma || parse_u32(hb, (size_t)(comma - hb), &cx) < 0 ||
        parse_u32(comma + 1, strlen(comma + 1), &cy) < 0)
        return -EINVAL;
    if (cy && s->cfg.hb_send_ms)
        s->hb_send = cy > s->cfg.hb_send_ms ? cy : s->cfg.hb_send_ms;
    if (cx && s->cfg.hb_recv_ms)
        s->hb_recv = cx > s->cfg.hb_recv_ms ? cx : s->cfg.hb_recv_ms;
    return 0;
}

static int send_connected(struct stomp_session *s, bool versioned)
{
    struct stomp_header h[4];
    size_t n = 0;
    char hb[32];
    if (versioned)
        h[n++] = hdr("version", stomp_version_name(s->version));
    if (s->version >= STOMP_V11) {
        snprintf(hb, sizeof(hb), "%u,%u", s->cfg.hb_send_ms, s->cfg.hb_recv_ms);
        h[n++] = hdr("heart-beat", hb);
    }
    if (s->cfg.session_id)
        h[n++] = hdr("session", s->cfg.session_id);
    if (s->cfg.server)
        h[n++] = hdr("server", s->cfg.server);
    return queue_frame(s, STOMP_CMD_CONNECTED, h, n, NULL, 0);
}

static int refuse_version(struct stomp_session *s)
{
    struct stomp_header h[3] = {hdr("message", "no supported protocol version"),
                                hdr("version", "1.0,1.1,1.2"), hdr("content-type", "text/plain")};
    const char *body = "Supported protocol versions are 1.0 1.1 1.2";
    s->closing = true;
    queue_frame(s, STOMP_CMD_ERROR, h, 3, body, strlen(body));
    return -EPROTO;
}

static int on_connect(struct stomp_session *s, const struct stomp_frame *f)
{
    const char *accept = stomp_frame_get(f, "accept-version");
    if (s->connected)
        return violation(s, f, "already connected");
    if (!pick_version(accept, &s->version))
        return refuse_version(s);
    if (negotiate_heartbeat(s, stomp_frame_get(f, "heart-beat")) < 0)
        return violation(s, f, "invalid heart-beat header (expected 'cx,cy' in ms)");
    struct stomp_connect_info ci = {
        .version = s->version,
        .login = stomp_frame_get(f, "login"),
        .passcode = stomp_frame_get(f, "passcode"),
        .host = stomp_frame_get(f, "host"),
        .client_id = stomp_frame_get(f, "client-id"),
        .hb_send_ms = s->hb_send,
        .hb_recv_ms = s->hb_recv,
    };
    if (s->cfg.require_host && s->version >= STOMP_V11 && !ci.host)
        return violation(s, f, "missing required header 'host'");
    int r = s->cfg.ops && s->cfg.ops->on_connect ? s->cfg.ops->on_connect(s->cfg.ctx, &ci) : 0;
    if (r == -EAGAIN)
        return r;
    if (r < 0)
        return violation(s, f, "connection refused: %s",
                         r == -EACCES || r == -EPERM ? "authentication failed" : strerror(-r));
    s->connected = true;
    stomp_parser_set_version(&s->parser, s->version);
    return send_connected(s, accept != NULL);
}

/* ---- common after-callback handling ----------------------------------- */

/* r from a callback: 0 → RECEIPT if asked, DEFER → nothing, -EAGAIN → stall,
 * other → ERROR and close. */
static int finish(struct stomp_session *s, const struct stomp_frame *f, int r)
{
    const char *receipt = stomp_frame_get(f, "receipt");
    if (r == -EAGAIN)
        return r;
    if (r < 0)
        return violation(s, f, "%s failed: %s", stomp_command_name(f->cmd), strerror(-r));
    if (r == 0 && receipt)
        return send_receipt(s, receipt);
    return 0;
}

static int check_tx(struct stomp_session *s, const struct stomp_frame *f, const char **tx)
{
    *tx = stomp_frame_get(f, "transaction");
    if (*tx && find_tx(s, *tx) == SIZE_MAX)
        return violation(s, f, "unknown transaction '%.64s'", *tx);
    return 0;
}

#define CALL(s, fn, ...)                                                                           \
    ((s)->cfg.ops && (s)->cfg.ops->fn ? (s)->cfg.ops->fn((s)->cfg.ctx, __VA_ARGS__) : 0)

/* ---- SEND ------------------------------------------------------------- */

static int on_send(struct stomp_session *s, const struct stomp_frame *f)
{
    struct stomp_send_info si = {
        .destination = stomp_frame_get(f, "destination"),
        .receipt = stomp_frame_get(f, "receipt"),
        .headers = f->headers,
        .nheaders = f->nheaders,
        .body = f->body,
        .body_len = f->body_len,
    };
    const char *persistent = stomp_frame_get(f, "persistent");
    if (!si.destination)
        return violation(s, f, "SEND without 'destination' header");
    if (stomp_dest_parse(si.destination, stomp_frame_get(f, "destination-type"), &si.dest) < 0)
        return violation(s, f, "invalid destination '%.64s' or destination-type", si.destination);
    if (check_tx(s, f, &si.transaction) < 0)
        return -EPROTO;
    si.persistent = persistent && strcmp(persistent, "true") == 0;
    return finish(s, f, CALL(s, on_send, &si));
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------ */

static int parse_ack_mode(const char *v, enum stomp_ack_mode *m)
{
    if (!v || strcmp(v, "auto") == 0)
        *m = STOMP_ACK_AUTO;
    else if (strcmp(v, "client") == 0)
        *m = STOMP_ACK_CLIENT;
    else if (strcmp(v, "client-individual") == 0)
        *m = STOMP_ACK_CLIENT_INDIVIDUAL;
    else
        return -EINVAL;
    return 0;
}

static int parse_window(const char *v, int64_t *w)
{
    char *end = NULL;
    if (!v)
        return 0;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < -1)
        return -EINVAL;
    *w = x;
    return 0;
}

static const char *first_of(const struct stomp_frame *f, const char *a, const char *b,
                            const char *c)
{
    const char *v = stomp_frame_get(f, a);
    if (!v && b)
        v = stomp_frame_get(f, b);
    if (!v && c)
        v = stomp_frame_get(f, c);
    return v;
}

static int fill_subscribe(struct stomp_session *s, const struct stomp_frame *f,
                          struct stomp_subscribe_info *si)
{
    const char *nl = first_of(f, "no-local", "activemq.noLocal", NULL);
    si->destination = stomp_frame_get(f, "destination");
    si->id = stomp_frame_get(f, "id");
    si->selector = stomp_frame_get(f, "selector");
    si->receipt = stomp_frame_get(f, "receipt");
    si->durable_name = first_of(f, "durable-subscription-name", "durable-subscriber-name",
                                "activemq.subscriptionName");
    si->no_local = nl && strcmp(nl, "true") == 0;
    if (!si->destination)
        return violation(s, f, "SUBSCRIBE without 'destination' header");
    if (!si->id && s->version >= STOMP_V11)
        return violation(s, f, "SUBSCRIBE without 'id' header");
    if (!si->id)
        si->id = si->destination; /* 1.0: the destination names the subscription */
    if (stomp_dest_parse(si->destination, stomp_frame_get(f, "subscription-type"), &si->dest) < 0)
        return violation(s, f, "invalid destination '%.64s' or subscription-type", si->destination);
    if (parse_ack_mode(stomp_frame_get(f, "ack"), &si->ack) < 0)
        return violation(s, f, "invalid ack mode '%.32s'", stomp_frame_get(f, "ack"));
    si->window =
        si->ack == STOMP_ACK_AUTO ? s->cfg.default_window_auto : s->cfg.default_window_client;
    if (parse_window(first_of(f, "consumer-window-size", "activemq.prefetchSize", NULL),
                     &si->window) < 0)
        return violation(s, f, "invalid consumer-window-size (an integer >= -1)");
    return 0;
}

static int on_subscribe(struct stomp_session *s, const struct stomp_frame *f)
{
    struct stomp_subscribe_info si = {0};
    if (fill_subscribe(s, f, &si) < 0)
        return -EPROTO;
    if (find_sub(s, si.id))
        return violation(s, f, "subscription id '%.64s' already in use", si.id);
    if (s->nsubs >= s->cfg.max_subscriptions)
        return violation(s, f, "too many subscriptions (max_subscriptions=%zu)",
                         s->cfg.max_subscriptions);
    if (grow((void **)&s->subs, &s->subs_cap, s->nsubs, sizeof(*s->subs)) < 0)
        return violation(s, f, "out of memory");
    int r = CALL(s, on_subscribe, &si);
    if (r >= 0) {
        struct sess_sub *sub = &s->subs[s->nsubs];
        sub->id = strdup(si.id);
        if (!sub->id)
            return violation(s, f, "out of memory");
        sub->ack = si.ack;
        sub->serial = s->next_serial++;
        s->nsubs++;
    }
    return finish(s, f, r);
}

static int on_unsubscribe(struct stomp_session *s, const struct stomp_frame *f)
{
    const char *id = stomp_frame_get(f, "id");
    if (!id && s->version == STOMP_V10)
        id = stomp_frame_get(f, "destination");
    if (!id)
        return violation(s, f, "UNSUBSCRIBE without 'id' header");
    struct sess_sub *sub = find_sub(s, id);
    if (!sub)
        return violation(s, f, "unknown subscription '%.64s'", id);
    int r = CALL(s, on_unsubscribe, id, stomp_frame_get(f, "receipt"));
    if (r >= 0) {
        drop_pending_of(s, sub->serial);
        free(sub->id);
        *sub = s->subs[--s->nsubs];
    }
    return finish(s, f, r);
}

/* ---- ACK / NACK ------------------------------------------------------- */

static size_t find_pending(const struct stomp_session *s, const char *mid)
{
    for (size_t i = 0; i < s->npend; i++)
        if (strcmp(pend_at(s, i)->message_id, mid) == 0)
            return i;
    return SIZE_MAX;
}

static const struct sess_sub *sub_by_serial(const struct stomp_session *s, uint64_t serial)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].serial == serial)
            return &s->subs[i];
    return NULL;
}

/* The id naming the message, per version: 1.2 `id`, older `message-id`. */
static const char *ack_id(const struct stomp_session *s, const struct stomp_frame *f)
{
    return stomp_frame_get(f, s->version == STOMP_V12 ? "id" : "message-id");
}

/* Collect the tokens covered by acking pend[idx]; returns the count or -ENOMEM. */
static long collect_tokens(struct stomp_session *s, size_t idx, bool cumulative)
{
    size_t n = 0;
    uint64_t serial = pend_at(s, idx)->sub_serial;
    for (size_t i = cumulative ? 0 : idx; i <= idx; i++) {
        if (pend_at(s, i)->sub_serial != serial)
            continue;
        if (grow((void **)&s->toks, &s->toks_cap, n, sizeof(*s->toks)) < 0)
            return -ENOMEM;
        s->toks[n++] = pend_at(s, i)->token;
    }
    return (long)n;
}

static void remove_acked(struct stomp_session *s, size_t idx, bool cumulative)
{
    if (idx == 0) { /* the oldest: covers itself alone, whatever the mode */
        free(pend_at(s, 0)->message_id);
        s->npend--;
        s->pend_head = s->npend ? s->pend_head + 1 : 0;
        return;
    }
    uint64_t serial = pend_at(s, idx)->sub_serial;
    size_t o = 0;
    for (size_t i = 0; i < s->npend; i++) {
        struct sess_pend *p = pend_at(s, i);
        bool covered = i <= idx && (cumulative || i == idx) && p->sub_serial == serial;
        if (covered)
            free(p->message_id);
        else
            s->pend[o++] = *p; /* o <= pend_head + i: never overwrites an unread entry */
    }
    s->npend = o;
    s->pend_head = 0;
}

static int on_ack(struct stomp_session *s, const struct stomp_frame *f)
{
    const char *cmd = stomp_command_name(f->cmd);
    const char *mid = ack_id(s, f), *subid = stomp_frame_get(f, "subscription");
    struct stomp_ack_info ai = {.nack = f->cmd == STOMP_CMD_NACK,
                                .message_id = mid,
                                .receipt = stomp_frame_get(f, "receipt")};
    if (f->cmd == STOMP_CMD_NACK && s->version == STOMP_V10)
        return violation(s, f, "NACK requires STOMP 1.1 or later");
    if (!mid)
        return violation(s, f, "%s without '%s' header", cmd,
                         s->version == STOMP_V12 ? "id" : "message-id");
    if (s->version == STOMP_V11 && !subid)
        return violation(s, f, "%s without 'subscription' header", cmd);
    if (check_tx(s, f, &ai.transaction) < 0)
        return -EPROTO;
    size_t idx = find_pending(s, mid);
    const struct sess_sub *sub =
        idx == SIZE_MAX ? NULL : sub_by_serial(s, pend_at(s, idx)->sub_serial);
    if (!sub || (subid && strcmp(subid, sub->id) != 0))
        return violation(s, f, "%s of unknown message '%.64s'", cmd, mid);
    bool cumulative = sub->ack == STOMP_ACK_CLIENT;
    long n = collect_tokens(s, idx, cumulative);
    if (n < 0)
        return violation(s, f, "out of memory");
    ai.subscription_id = sub->id;
    ai.tokens = s->toks;
    ai.ntokens = (size_t)n;
    int r = CALL(s, on_ack, &ai);
    if (r >= 0)
        remove_acked(s, idx, cumulative);
    return finish(s, f, r);
}

/* ---- transactions ----------------------------------------------------- */

static int on_tx(struct stomp_session *s, const struct stomp_frame *f)
{
    const char *tx = stomp_frame_get(f, "transaction");
    enum stomp_tx_op op = f->cmd == STOMP_CMD_BEGIN    ? STOMP_TX_BEGIN
                          : f->cmd == STOMP_CMD_COMMIT ? STOMP_TX_COMMIT
                                                       : STOMP_TX_ABORT;
    if (!tx)
        return violation(s, f, "%s without 'transaction' header", stomp_command_name(f->cmd));
    size_t at = find_tx(s, tx);
    if (op == STOMP_TX_BEGIN && at != SIZE_MAX)
        return violation(s, f, "transaction '%.64s' already begun", tx);
    if (op != STOMP_TX_BEGIN && at == SIZE_MAX)
        return violation(s, f, "unknown transaction '%.64s'", tx);
    if (op == STOMP_TX_BEGIN && s->ntx >= s->cfg.max_transactions)
        return violation(s, f, "too many open transactions (max_transactions=%zu)",
                         s->cfg.max_transactions);
    char *copy = op == STOMP_TX_BEGIN ? strdup(tx) : NULL;
    if (op == STOMP_TX_BEGIN &&
        (!copy || grow((void **)&s->txs, &s->tx_cap, s->ntx, sizeof(*s->txs)) < 0)) {
        free(copy);
        return violation(s, f, "out of memory");
    }
    int r = CALL(s, on_tx, op, tx, stomp_frame_get(f, "receipt"));
    if (r >= 0 && op == STOMP_TX_BEGIN) {
        s->txs[s->ntx++] = copy;
        copy = NULL;
    } else if (r >= 0) {
        free(s->txs[at]);
        s->txs[at] = s->txs[--s->ntx];
    }
    free(copy);
    return finish(s, f, r);
}

/* ---- DISCONNECT ------------------------------------------------------- */

static int on_disconnect(struct stomp_session *s, const struct stomp_frame *f)
{
    const char *receipt = stomp_frame_get(f, "receipt");
    int r = CALL(s, on_disconnect, receipt);
    if (r == -EAGAIN)
        return r;
    if (r == STOMP_DEFER && receipt) {
        s->disconnect_receipt = strdup(receipt);
        if (!s->disconnect_receipt)
            s->closing = true;
        return 0;
    }
    if (receipt)
        send_receipt(s, receipt);
    s->closing = true;
    return 0;
}

/* ---- dispatch --------------------------------------------------------- */

static int dispatch(struct stomp_session *s, const struct stomp_frame *f)
{
    if (f->cmd == STOMP_CMD_CONNECT || f->cmd == STOMP_CMD_STOMP)
        return on_connect(s, f);
    if (!s->connected)
        return violation(s, f, "%s before CONNECT", stomp_command_name(f->cmd));
    switch (f->cmd) {
    case STOMP_CMD_SEND:
        return on_send(s, f);
    case STOMP_CMD_SUBSCRIBE:
        return on_subscribe(s, f);
    case STOMP_CMD_UNSUBSCRIBE:
        return on_unsubscribe(s, f);
    case STOMP_CMD_ACK:
    case STOMP_CMD_NACK:
        return on_ack(s, f);
    case STOMP_CMD_BEGIN:
    case STOMP_CMD_COMMIT:
    case STOMP_CMD_ABORT:
        return on_tx(s, f);
    case STOMP_CMD_DISCONNECT:
        return on_disconnect(s, f);
    default:
        return violation(s, f, "%s is a server frame", stomp_command_name(f->cmd));
    }
}

ssize_t stomp_session_input(struct stomp_session *s, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    if (s->closing || s->disconnect_receipt)
        return -ESHUTDOWN;
    if (s->stalled)
        return -EAGAIN;
    while (off < len) {
        size_t used = 0;
        struct stomp_frame f;
        int r = stomp_parser_feed(&s->parser, buf + off, len - off, &used, &f);
        off += used;
        s->rx_bytes += used;
        if (r < 0) {
            queue_error(s, s->parser.errmsg, NULL, NULL);
            return r;
        }
        if (r == 0)
            break;
        r = dispatch(s, &f);
        if (r == -EAGAIN) {
            s->held = f;
            s->stalled = true;
            return (ssize_t)off;
        }
        if (r < 0)
            return r == -ENOMEM ? -ENOMEM : -EPROTO;
        if (s->closing || s->disconnect_receipt)
            break;
    }
    return (ssize_t)off;
}

int stomp_session_resume(struct stomp_session *s)
{
    if (!s->stalled)
        return 0;
    int r = dispatch(s, &s->held);
    if (r == -EAGAIN)
        return r;
    s->stalled = false;
    return r < 0 ? -EPROTO : 0;
}

bool stomp_session_stalled(const struct stomp_session *s)
{
    return s->stalled;
}

/* ---- output side ------------------------------------------------------ */

#define OUT_KEEP_CAP (256u * 1024)

void stomp_session_output(const struct stomp_session *s, const uint8_t **ptr, size_t *len)
{
    *ptr = s->out.data ? s->out.data + s->out_head : NULL;
    *len = s->out.len - s->out_head;
}

void stomp_session_consumed_output(struct stomp_session *s, size_t n)
{
    size_t avail = s->out.len - s->out_head;
    s->out_head += n < avail ? n : avail;
    if (s->out_head == s->out.len) {
        s->out_head = s->out.len = 0;
        if (s->out.cap > OUT_KEEP_CAP) /* a big MESSAGE went out: give the memory back */
            stomp_buf_free(&s->out);
    } else if (s->out_head > s->out.cap / 2) {
        memmove(s->out.data, s->out.data + s->out_head, s->out.len - s->out_head);
        s->out.len -= s->out_head;
        s->out_head = 0;
    }
}

bool stomp_session_should_close(const struct stomp_session *s)
{
    return s->closing;
}

bool stomp_session_connected(const struct stomp_session *s)
{
    return s->connected;
}

enum stomp_version stomp_session_version(const struct stomp_session *s)
{
    return s->version;
}

void stomp_session_heartbeat(const struct stomp_session *s, uint32_t *send_ms, uint32_t *recv_ms)
{
    *send_ms = s->hb_send;
    *recv_ms = s->hb_recv;
}

enum stomp_tick stomp_session_tick(struct stomp_session *s, uint64_t now_ms)
{
    if (!s->clock_started) {
        s->clock_started = true;
        s->last_rx_ms = s->last_tx_ms = s->last_tick_ms = s->first_tick_ms = now_ms;
        s->seen_rx = s->rx_bytes;
        s->seen_tx = s->tx_bytes;
        return STOMP_TICK_OK;
    }
    /* Activity since the last tick happened somewhere in (last_tick, now]:
     * assume the latest time for received bytes (lenient on the peer) and the
     * earliest for sent ones (our heart-beat goes out early rather than late). */
    if (s->rx_bytes != s->seen_rx) {
        s->seen_rx = s->rx_bytes;
        s->last_rx_ms = now_ms;
    }
    if (s->tx_bytes != s->seen_tx) {
        s->seen_tx = s->tx_bytes;
        s->last_tx_ms = s->last_tick_ms;
    }
    if (s->stalled) /* we stopped reading, not the peer: its silence proves nothing */
        s->last_rx_ms = now_ms;
    s->last_tick_ms = now_ms;
    if (s->closing)
        return STOMP_TICK_OK;
    if (!s->connected)
        return s->cfg.connect_timeout_ms && now_ms - s->first_tick_ms > s->cfg.connect_timeout_ms
                   ? STOMP_TICK_PEER_LATE
                   : STOMP_TICK_OK;
    if (s->hb_recv && now_ms - s->last_rx_ms > 2 * (uint64_t)s->hb_recv)
        return STOMP_TICK_PEER_LATE;
    if (s->hb_send && now_ms - s->last_tx_ms >= s->hb_send &&
        stomp_buf_append(&s->out, "\n", 1) == 0) {
        s->tx_bytes++;
        s->seen_tx = s->tx_bytes;
        s->last_tx_ms = now_ms;
    }
    return STOMP_TICK_OK;
}

static bool reserved_delivery_header(const struct stomp_header *h)
{
    static const char *const names[] = {"subscription", "message-id", "destination", "ack",
                                        "content-length"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(h->name, names[i]) == 0)
            return true;
    return false;
}

static int build_message(struct stomp_session *s, const struct stomp_delivery *d, bool ack_hdr)
{
    size_t n = 0, cap = d->nheaders + 4;
    struct stomp_header *h = malloc(cap * sizeof(*h));
    if (!h)
        return -ENOMEM;
    h[n++] = hdr("subscription", d->subscription_id);
    h[n++] = hdr("message-id", d->message_id);
    h[n++] = hdr("destination", d->destination);
    if (ack_hdr)
        h[n++] = hdr("ack", d->message_id);
    /* A header this client's version cannot carry (newline in 1.0, CR in 1.1)
     * is left out rather than failing the delivery: the message still arrives. */
    for (size_t i = 0; i < d->nheaders; i++)
        if (!reserved_delivery_header(&d->headers[i]) &&
            stomp_header_representable(s->version, STOMP_CMD_MESSAGE, &d->headers[i]))
            h[n++] = d->headers[i];
    int r = queue_frame(s, STOMP_CMD_MESSAGE, h, n, d->body, d->body_len);
    free(h);
    return r;
}

int stomp_session_deliver(struct stomp_session *s, const struct stomp_delivery *d)
{
    if (s->closing)
        return -ESHUTDOWN;
    if (!d->subscription_id || !d->message_id || !d->destination)
        return -EINVAL;
    const struct sess_sub *sub = find_sub(s, d->subscription_id);
    if (!sub)
        return -ENOENT;
    bool acked = sub->ack != STOMP_ACK_AUTO;
    uint64_t serial = sub->serial;
    char *mid = acked ? strdup(d->message_id) : NULL;
    if (acked && s->pend_head && s->pend_head + s->npend == s->pend_cap) {
        memmove(s->pend, pend_at(s, 0), s->npend * sizeof(*s->pend));
        s->pend_head = 0;
    }
    if (acked && (!mid || grow((void **)&s->pend, &s->pend_cap, s->pend_head + s->npend,
                               sizeof(*s->pend)) < 0)) {
        free(mid);
        return -ENOMEM;
    }
    int r = build_message(s, d, acked && s->version == STOMP_V12);
    if (r < 0) {
        free(mid);
        return r;
    }
    if (acked)
        s->pend[s->pend_head + s->npend++] = (struct sess_pend){mid, serial, d->token};
    return 0;
}

int stomp_session_receipt(struct stomp_session *s, const char *receipt_id)
{
    if (s->closing)
        return -ESHUTDOWN;
    int r = send_receipt(s, receipt_id);
    if (s->disconnect_receipt && strcmp(s->disconnect_receipt, receipt_id) == 0) {
        free(s->disconnect_receipt);
        s->disconnect_receipt = NULL;
        s->closing = true;
    }
    return r;
}

int stomp_session_error(struct stomp_session *s, const char *message, const char *detail,
                        const char *receipt_id)
{
    if (s->closing)
        return -ESHUTDOWN;
    return queue_error(s, message, detail, receipt_id);
}

size_t stomp_session_pending_acks(const struct stomp_session *s)
{
    return s->npend;
}

size_t stomp_session_open_transactions(const struct stomp_session *s)
{
    return s->ntx;
}
