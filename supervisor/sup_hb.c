/*
 * sup_hb — heartbeats and commands between supervisors (see sup_hb.h for the
 * socket layout, the wire format, the ZMQ_FD rules and the staleness rule).
 *
 * State: one struct sup_hb per process, touched only from the loop thread.
 * The peer table is keyed by node id (learned from the messages: an endpoint
 * in [ha] peers does not say which node answers on it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hamq/log.h"
#include "sup_event.h"
#include "sup_hb.h"

#define ZAP_ENDPOINT      "inproc://zeromq.zap.01"
#define ROUTING_ID_MAX    256
#define MAX_KEYS          SUP_HB_MAX_PEERS
#define AUTH_LOG_EVERY_NS (5LL * 1000000000LL)

enum zkind { ZK_ROUTER, ZK_DEALER, ZK_ZAP, ZK_MONITOR };

struct zsock {
    void *s;
    enum zkind kind;
    char endpoint[HAMQ_CONFIG_STR_MAX]; /* DEALER: the peer endpoint; MONITOR: what it watches */
    bool watches_server;                /* MONITOR of our ROUTER (else of a DEALER) */
    uint64_t failures;                  /* MONITOR: handshake failures seen */
    int64_t last_log;                   /* MONITOR: rate limit, one line per 5 s */
};

struct peer {
    char node_id[SUP_HB_NODE_ID_MAX];
    bool alive;
    bool ever_seen;
    struct sup_hb_msg last; /* last accepted heartbeat */
    uint64_t incarnation;
    uint64_t last_seq;
    uint64_t max_send_ts;        /* newest accepted send time (sender clock) */
    int64_t local_at_max;        /* our monotonic ns when it was accepted */
    int64_t last_seen;           /* our monotonic ns */
    uint8_t rid[ROUTING_ID_MAX]; /* routing id of its connection into our ROUTER */
    size_t rid_len;
    int stale_run; /* consecutive time-stale messages (see peer_is_stale) */
    int64_t stale_first_ts, stale_first_local;
    uint64_t handled_req; /* last handover request passed to the callback */
    bool acked;
    int ack_status;
};

struct pending {
    bool active;
    char peer[SUP_HB_NODE_ID_MAX];
    uint64_t seq;
    int64_t deadline;
    int64_t next_send;
};

struct sup_hb {
    void *ctx;
    void *router; /* also in socks[] */
    struct zsock socks[2 + 2 * SUP_HB_MAX_PEERS + 2];
    int nsocks;
    int epfd;
    struct sup_hb_callbacks cb;
    char node_id[SUP_HB_NODE_ID_MAX];
    int priority;
    int64_t interval_ns;
    int64_t timeout_ns;
    uint64_t incarnation;
    uint64_t seq;
    int role, health;
    uint64_t epoch, lsn;
    int64_t next_send;
    bool drain_more;
    bool curve;
    char peer_keys[MAX_KEYS][41];
    int npeer_keys;
    int64_t last_auth_log;
    struct peer peers[SUP_HB_MAX_PEERS];
    int npeers;
    struct pending pend;
    struct sup_hb_stats st;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

const char *sup_role_name(int role)
{
    static const char *const names[] = {"starting", "backup", "live", "fenced", "paused"};
    return (role >= 0 && role < 5) ? names[role] : "unknown";
}

/* ---- codec ---------------------------------------------------------------- */

/* The layout of sup_hb.h: fixed fields end at 64, the node id fills the rest. */
_Static_assert(SUP_HB_WIRE_SIZE == 64 + SUP_HB_NODE_ID_MAX, "wire layout v1 is 128 bytes");
_Static_assert(sizeof(SUP_HB_MAGIC) - 1 == 4, "magic is 4 bytes");

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int sup_hb_encode(const struct sup_hb_msg *m, uint8_t out[SUP_HB_WIRE_SIZE])
{
    size_t idlen = strnlen(m->node_id, SUP_HB_NODE_ID_MAX);
    if (idlen == 0 || idlen >= SUP_HB_NODE_ID_MAX)
        return -EINVAL;
    static const uint8_t magic[4] = {'H', 'Q', 'H', 'B'}; /* SUP_HB_MAGIC */
    memset(out, 0, SUP_HB_WIRE_SIZE);
    memcpy(out, magic, sizeof magic);
    out[4] = SUP_HB_VERSION;
    out[5] = m->type;
    out[6] = m->role;
    out[7] = m->health;
    out[8] = m->priority;
    uint32_t st = (uint32_t)m->status;
    for (int i = 0; i < 4; i++)
        out[12 + i] = (uint8_t)(st >> (8 * i));
    put64(out + 16, m->incarnation);
    put64(out + 24, m->seq);
    put64(out + 32, m->send_ts_ns);
    put64(out + 40, m->epoch);
    put64(out + 48, m->durable_lsn);
    put64(out + 56, m->ref_seq);
    memcpy(out + 64, m->node_id, idlen);
    return 0;
}

static bool zero_after_nul(const uint8_t *s, size_t n)
{
    size_t len = strnlen((const char *)s, n);
    for (size_t i = len; i < n; i++)
        if (s[i])
            return false;
    return true;
}

int sup_hb_decode(const void *buf, size_t len, struct sup_hb_msg *m, const char **why)
{
    const uint8_t *p = buf;
    *why = NULL;
    if (len != SUP_HB_WIRE_SIZE)
        *why = "wrong size";
    else if (memcmp(p, SUP_HB_MAGIC, 4) != 0)
        *why = "bad magic";
    else if (p[4] != SUP_HB_VERSION)
        *why = "unsupported version";
    else if (p[5] < SUP_HB_HEARTBEAT || p[5] > SUP_HB_HANDOVER_ACK)
        *why = "unknown message type";
    else if (p[64] == 0 || memchr(p + 64, 0, SUP_HB_NODE_ID_MAX) == NULL)
        *why = "node id empty or not terminated";
    else if (!zero_after_nul(p + 64, SUP_HB_NODE_ID_MAX))
        *why = "node id padding not zero";
    if (*why)
        return -EBADMSG;
    memset(m, 0, sizeof *m);
    m->type = p[5];
    m->role = p[6];
    m->health = p[7];
    m->priority = p[8];
    m->status = (int32_t)((uint32_t)p[12] | (uint32_t)p[13] << 8 | (uint32_t)p[14] << 16 |
                          (uint32_t)p[15] << 24);
    m->incarnation = get64(p + 16);
    m->seq = get64(p + 24);
    m->send_ts_ns = get64(p + 32);
    m->epoch = get64(p + 40);
    m->durable_lsn = get64(p + 48);
    m->ref_seq = get64(p + 56);
    memcpy(m->node_id, p + 64, strnlen((const char *)p + 64, SUP_HB_NODE_ID_MAX));
    return 0;
}

/* ---- peers ---------------------------------------------------------------- */

static struct peer *peer_find(const struct sup_hb *hb, const char *id)
{
    for (int i = 0; i < hb->npeers; i++)
        if (strcmp(hb->peers[i].node_id, id) == 0)
            return (struct peer *)&hb->peers[i];
    return NULL;
}

static void peer_info(const struct sup_hb *hb, const struct peer *p, struct sup_hb_peer_info *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->node_id, sizeof o->node_id, "%s", p->node_id);
    o->alive = p->alive;
    o->role = p->last.role;
    o->health = p->last.health;
    o->priority = p->last.priority;
    o->epoch = p->last.epoch;
    o->durable_lsn = p->last.durable_lsn;
    o->seq = p->last.seq;
    o->last_seen_age_ms = p->ever_seen ? (now_ns() - p->last_seen) / 1000000 : -1;
    (void)hb;
}

static void peer_set_alive(struct sup_hb *hb, struct peer *p, bool alive, const char *why)
{
    p->alive = alive;
    if (alive)
        sup_event(LOG_NOTICE, "peer-found", p->node_id, "peer %s found: %s", p->node_id, why);
    else
        sup_event(LOG_WARNING, "peer-lost", p->node_id, "peer %s lost: %s", p->node_id, why);
    if (hb->cb.peer_change) {
        struct sup_hb_peer_info info;
        peer_info(hb, p, &info);
        hb->cb.peer_change(hb->cb.ctx, &info, alive);
    }
}

/*
 * The staleness rule of sup_hb.h. Returns true if m must be ignored.
 *
 * One exception keeps a peer from being ignored forever when its monotonic
 * clock stopped while ours ran (a suspended VM, a frozen host): a run of
 * "too old" messages whose send times advance at the pace of our own clock
 * (span within one interval of ours, over at least two intervals, three or
 * more messages) is a live stream on a shifted clock, not a backlog — a
 * backlog arrives in a burst, its send times spread far wider than its
 * arrival times. Then the estimate is re-based on it.
 */
static bool peer_is_stale(const struct sup_hb *hb, struct peer *p, const struct sup_hb_msg *m,
                          int64_t now)
{
    if (!p->ever_seen || m->incarnation != p->incarnation)
        return false;
    if (m->seq <= p->last_seq)
        return true;
    int64_t sender_now = (int64_t)p->max_send_ts + (now - p->local_at_max);
    if ((int64_t)m->send_ts_ns + hb->timeout_ns >= sender_now) {
        p->stale_run = 0;
        return false;
    }
    if (p->stale_run++ == 0) {
        p->stale_first_ts = (int64_t)m->send_ts_ns;
        p->stale_first_local = now;
        return true;
    }
    int64_t span_sender = (int64_t)m->send_ts_ns - p->stale_first_ts;
    int64_t span_local = now - p->stale_first_local;
    int64_t skew = span_sender > span_local ? span_sender - span_local : span_local - span_sender;
    if (skew > hb->interval_ns) { /* not one stream: start a new run at this message */
        p->stale_run = 1;
        p->stale_first_ts = (int64_t)m->send_ts_ns;
        p->stale_first_local = now;
        return true;
    }
    if (p->stale_run >= 3 && span_local >= 2 * hb->interval_ns) {
        log_warn("peer %s: its clock fell behind ours by %lld ms (suspended?): re-synchronising",
                 p->node_id, (long long)((sender_now - (int64_t)m->send_ts_ns) / 1000000));
        p->stale_run = 0;
        return false;
    }
    return true;
}

static struct peer *peer_add(struct sup_hb *hb, const char *id)
{
    if (hb->npeers == SUP_HB_MAX_PEERS) {
        log_warn("peer table full (%d peers): ignoring node %s", SUP_HB_MAX_PEERS, id);
        return NULL;
    }
    struct peer *p = &hb->peers[hb->npeers++];
    memset(p, 0, sizeof *p);
    snprintf(p->node_id, sizeof p->node_id, "%s", id);
    return p;
}

/* Accepts a fresh message from p: updates the clock estimate and liveness. */
static void peer_accept(struct sup_hb *hb, struct peer *p, const struct sup_hb_msg *m, int64_t now)
{
    char why[160];
    bool restarted = p->ever_seen && m->incarnation != p->incarnation;
    if (!p->ever_seen)
        snprintf(why, sizeof why, "first message (role %s, epoch %llu)", sup_role_name(m->role),
                 (unsigned long long)m->epoch);
    else if (restarted)
        snprintf(why, sizeof why, "peer process restarted (new incarnation), role %s",
                 sup_role_name(m->role));
    else
        snprintf(why, sizeof why, "heartbeats again after %lld ms of silence",
                 (long long)((now - p->last_seen) / 1000000));
    if (restarted) {
        p->handled_req = 0;
        p->acked = false;
    }
    p->incarnation = m->incarnation;
    p->last_seq = m->seq;
    p->max_send_ts = m->send_ts_ns;
    p->local_at_max = now;
    p->last_seen = now;
    p->ever_seen = true;
    if (m->type == SUP_HB_HEARTBEAT)
        p->last = *m;
    if (!p->alive || restarted)
        peer_set_alive(hb, p, true, why);
}

/* ---- sending -------------------------------------------------------------- */

static void msg_fill(const struct sup_hb *hb, struct sup_hb_msg *m, int type)
{
    memset(m, 0, sizeof *m);
    m->type = (uint8_t)type;
    m->role = (uint8_t)hb->role;
    m->health = (uint8_t)hb->health;
    m->priority = (uint8_t)hb->priority;
    m->incarnation = hb->incarnation;
    m->send_ts_ns = (uint64_t)now_ns();
    m->epoch = hb->epoch;
    m->durable_lsn = hb->lsn;
    snprintf(m->node_id, sizeof m->node_id, "%s", hb->node_id);
}

/* Sends one message to one peer through our ROUTER (see sup_hb.h). */
static int send_to_peer(struct sup_hb *hb, const struct peer *p, struct sup_hb_msg *m)
{
    uint8_t buf[SUP_HB_WIRE_SIZE];
    if (!p->rid_len)
        return -EHOSTUNREACH;
    m->seq = ++hb->seq;
    m->send_ts_ns = (uint64_t)now_ns();
    sup_hb_encode(m, buf);
    void *router = hb->router;
    if (zmq_send(router, p->rid, p->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(router, buf, sizeof buf, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        return -(e == EHOSTUNREACH || e == EAGAIN ? EHOSTUNREACH : e);
    }
    hb->st.sent++;
    hb->drain_more = true; /* a send may eat the ZMQ_FD signal */
    return 0;
}

static void send_heartbeats(struct sup_hb *hb)
{
    struct sup_hb_msg m;
    uint8_t buf[SUP_HB_WIRE_SIZE];
    msg_fill(hb, &m, SUP_HB_HEARTBEAT);
    m.seq = ++hb->seq;
    sup_hb_encode(&m, buf);
    for (int i = 0; i < hb->nsocks; i++) {
        if (hb->socks[i].kind != ZK_DEALER)
            continue;
        /* EAGAIN = not connected (ZMQ_IMMEDIATE): dropping is the point. */
        if (zmq_send(hb->socks[i].s, buf, sizeof buf, ZMQ_DONTWAIT) == (int)sizeof buf)
            hb->st.sent++;
    }
    hb->drain_more = true;
}

/* ---- receiving ------------------------------------------------------------ */

static void handle_handover_req(struct sup_hb *hb, struct peer *p, const struct sup_hb_msg *m)
{
    if (m->ref_seq == p->handled_req) {
        if (p->acked) /* our ack was lost (or could not be sent yet): say it again */
            sup_hb_ack_handover(hb, p->node_id, m->ref_seq, p->ack_status);
        return;
    }
    p->handled_req = m->ref_seq;
    p->acked = false;
    sup_event(LOG_NOTICE, "handover-request", p->node_id,
              "peer %s asks us to hand over (demote so that it can take over)", p->node_id);
    if (hb->cb.handover_request)
        hb->cb.handover_request(hb->cb.ctx, p->node_id, m->ref_seq);
}

static void handle_handover_ack(struct sup_hb *hb, const struct peer *p, const struct sup_hb_msg *m)
{
    if (!hb->pend.active || strcmp(hb->pend.peer, p->node_id) != 0 || m->ref_seq != hb->pend.seq)
        return; /* a duplicate ack, or one for a request we gave up on */
    hb->pend.active = false;
    sup_event(LOG_NOTICE, "handover-ack", p->node_id, "peer %s answered our handover: %s",
              p->node_id, m->status == 0 ? "done" : strerror(-m->status));
    if (hb->cb.handover_result)
        hb->cb.handover_result(hb->cb.ctx, p->node_id, m->ref_seq, m->status);
}

static void handle_message(struct sup_hb *hb, const uint8_t *rid, size_t rid_len, const void *buf,
                           size_t len)
{
    struct sup_hb_msg m;
    const char *why;
    int64_t now = now_ns();
    if (sup_hb_decode(buf, len, &m, &why) < 0) {
        hb->st.invalid++;
        if (hb->st.invalid == 1 || hb->st.invalid % 1000 == 0)
            log_warn("ignoring a bad supervisor message (%s; %llu so far)", why,
                     (unsigned long long)hb->st.invalid);
        return;
    }
    if (strcmp(m.node_id, hb->node_id) == 0) {
        hb->st.invalid++;
        if (hb->st.invalid == 1 || hb->st.invalid % 1000 == 0) {
            if (m.incarnation == hb->incarnation)
                log_warn("[ha] peers lists our own listen endpoint: ignoring our own heartbeats");
            else
                log_err("another node uses our node id \"%s\": [ha] node_id must differ on "
                        "every node",
                        m.node_id);
        }
        return;
    }
    hb->st.received++;
    struct peer *p = peer_find(hb, m.node_id);
    if (!p && !(p = peer_add(hb, m.node_id)))
        return;
    if (peer_is_stale(hb, p, &m, now)) {
        hb->st.stale++;
        log_debug("ignoring a stale message from %s (seq %llu)", p->node_id,
                  (unsigned long long)m.seq);
        return;
    }
    if (rid_len && rid_len <= ROUTING_ID_MAX) {
        memcpy(p->rid, rid, rid_len);
        p->rid_len = rid_len;
    }
    peer_accept(hb, p, &m, now);
    if (m.type == SUP_HB_HANDOVER_REQ)
        handle_handover_req(hb, p, &m);
    else if (m.type == SUP_HB_HANDOVER_ACK)
        handle_handover_ack(hb, p, &m);
}

/* Receives all frames of one message; returns their count (max 8 kept). */
static int recv_multipart(void *s, zmq_msg_t *parts, int max)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_init(&tmp);
        if (zmq_msg_recv(&tmp, s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&tmp);
            break;
        }
        more = zmq_msg_more(&tmp);
        if (n < max)
            parts[n++] = tmp;
        else
            zmq_msg_close(&tmp);
    }
    return n;
}

static void close_parts(zmq_msg_t *parts, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

static bool zap_key_allowed(const struct sup_hb *hb, const uint8_t *key)
{
    char z85[41];
    zmq_z85_encode(z85, key, 32);
    for (int i = 0; i < hb->npeer_keys; i++)
        if (strcmp(z85, hb->peer_keys[i]) == 0)
            return true;
    return false;
}

/* ZAP (RFC 27): version, request id, domain, address, routing id, mechanism, key. */
static void zap_serve(struct sup_hb *hb, void *s, zmq_msg_t *parts, int n)
{
    bool ok = false;
    char addr[64] = "?", z85[41] = "?";
    if (n >= 7 && zmq_msg_size(&parts[6]) == 32) {
        ok = zap_key_allowed(hb, zmq_msg_data(&parts[6]));
        zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
        snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&parts[3]),
                 (const char *)zmq_msg_data(&parts[3]));
    }
    const char *code = ok ? "200" : "400";
    const char *text = ok ? "OK" : "public key not in curve_peer_public_key_file";
    zmq_send(s, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (n >= 2)
        zmq_send(s, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    else
        zmq_send(s, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, code, 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, text, strlen(text), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, ok ? "peer" : "", ok ? 4 : 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, "", 0, ZMQ_DONTWAIT);
    if (ok)
        return;
    hb->st.auth_refused++;
    int64_t now = now_ns();
    if (hb->st.auth_refused == 1 || now - hb->last_auth_log > AUTH_LOG_EVERY_NS) {
        hb->last_auth_log = now;
        sup_event(LOG_WARNING, "peer-refused", NULL,
                  "refused supervisor connection from %s: CURVE public key %s is not in "
                  "curve_peer_public_key_file (%llu refusals so far)",
                  addr, z85, (unsigned long long)hb->st.auth_refused);
    }
}

/* Why a CURVE handshake failed, in the operator's terms, from our side of it. */
static const char *handshake_reason(bool server, uint16_t ev, uint32_t val)
{
    bool crypto =
        ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && val == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC;
    if (server)
        return crypto ? "the client does not use our public key as server key (its "
                        "curve_peer_public_key_file lists another key for this node)"
                      : "the client broke off the handshake (security mismatch, or not a "
                        "hamq supervisor)";
    if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return "the peer refused our public key (it is not in the peer's "
               "curve_peer_public_key_file)";
    return crypto ? "CURVE cryptographic error: the peer's key is not the one our "
                    "curve_peer_public_key_file lists for it"
                  : "the peer broke off the handshake (security mismatch, or not a hamq "
                    "supervisor)";
}

static void monitor_serve(struct sup_hb *hb, struct zsock *z, zmq_msg_t *parts, int n)
{
    if (n < 1 || zmq_msg_size(&parts[0]) < 6)
        return;
    const uint8_t *d = zmq_msg_data(&parts[0]);
    uint16_t ev; /* libzmq writes both in host byte order */
    uint32_t val;
    memcpy(&ev, d, 2);
    memcpy(&val, d + 2, 4);
    if (!(ev & (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)))
        return;
    if (z->watches_server && ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return; /* our ZAP handler refused it and logged the key */
    hb->st.handshake_failed++;
    z->failures++;
    int64_t now = now_ns();
    if (z->failures > 1 && now - z->last_log <= AUTH_LOG_EVERY_NS)
        return;
    z->last_log = now;
    char ep[128] = "";
    if (n >= 2)
        snprintf(ep, sizeof ep, "%.*s", (int)zmq_msg_size(&parts[1]),
                 (const char *)zmq_msg_data(&parts[1]));
    if (z->watches_server)
        sup_event(LOG_WARNING, "peer-refused", NULL,
                  "CURVE handshake failed for a client of %s: %s (%llu failures so far)",
                  z->endpoint, handshake_reason(true, ev, val), (unsigned long long)z->failures);
    else
        sup_event(LOG_WARNING, "peer-refused", NULL,
                  "CURVE handshake failed with peer %s: %s (%llu failures so far)", z->endpoint,
                  handshake_reason(false, ev, val), (unsigned long long)z->failures);
}

/* Drains one socket; returns messages handled. */
static int drain_socket(struct sup_hb *hb, struct zsock *z, int budget)
{
    int done = 0;
    while (done < budget) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(z->s, ZMQ_EVENTS, &events, &sz) < 0 || !(events & ZMQ_POLLIN))
            break;
        zmq_msg_t parts[8];
        int n = recv_multipart(z->s, parts, 8);
        if (n == 0)
            break;
        done++;
        if (z->kind == ZK_ROUTER && n == 2)
            handle_message(hb, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                           zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]));
        else if (z->kind == ZK_DEALER && n == 1)
            handle_message(hb, NULL, 0, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
        else if (z->kind == ZK_ZAP)
            zap_serve(hb, z->s, parts, n);
        else if (z->kind == ZK_MONITOR)
            monitor_serve(hb, z, parts, n);
        else
            hb->st.invalid++;
        close_parts(parts, n);
    }
    return done;
}

int sup_hb_on_readable(struct sup_hb *hb)
{
    struct epoll_event evs[16];
    /* Empty the inner epoll's ready list; the real work is the ZMQ_EVENTS loop. */
    while (epoll_wait(hb->epfd, evs, 16, 0) == 16)
        ;
    int budget = SUP_HB_DRAIN_MAX;
    bool progress = true;
    while (progress && budget > 0) {
        progress = false;
        for (int i = 0; i < hb->nsocks && budget > 0; i++) {
            int n = drain_socket(hb, &hb->socks[i], budget);
            budget -= n;
            progress |= n > 0;
        }
    }
    hb->drain_more = budget == 0;
    return 0;
}

/* ---- timer ---------------------------------------------------------------- */

static void check_timeouts(struct sup_hb *hb, int64_t now)
{
    for (int i = 0; i < hb->npeers; i++) {
        struct peer *p = &hb->peers[i];
        if (!p->alive || now - p->last_seen <= hb->timeout_ns)
            continue;
        char why[128];
        snprintf(why, sizeof why, "no heartbeat for %lld ms (timeout %lld ms)",
                 (long long)((now - p->last_seen) / 1000000),
                 (long long)(hb->timeout_ns / 1000000));
        peer_set_alive(hb, p, false, why);
    }
}

static void pending_tick(struct sup_hb *hb, int64_t now)
{
    struct pending *pd = &hb->pend;
    if (!pd->active)
        return;
    if (now >= pd->deadline) {
        pd->active = false;
        sup_event(LOG_WARNING, "handover-timeout", pd->peer,
                  "peer %s did not answer our handover request before the deadline", pd->peer);
        if (hb->cb.handover_result)
            hb->cb.handover_result(hb->cb.ctx, pd->peer, pd->seq, -ETIMEDOUT);
        return;
    }
    if (now < pd->next_send)
        return;
    const struct peer *p = peer_find(hb, pd->peer);
    struct sup_hb_msg m;
    msg_fill(hb, &m, SUP_HB_HANDOVER_REQ);
    m.ref_seq = pd->seq; /* same request id, fresh sequence: the peer dedups on the id */
    if (p)
        send_to_peer(hb, p, &m);
    pd->next_send = now + hb->interval_ns;
}

int sup_hb_on_timer(struct sup_hb *hb)
{
    int64_t now = now_ns();
    if (now >= hb->next_send) {
        send_heartbeats(hb);
        hb->next_send = now + hb->interval_ns;
    }
    check_timeouts(hb, now);
    pending_tick(hb, now);
    return sup_hb_on_readable(hb); /* sends may have eaten the ZMQ_FD edge */
}

int sup_hb_next_timeout_ms(const struct sup_hb *hb)
{
    if (hb->drain_more)
        return 0;
    int64_t now = now_ns(), next = hb->next_send;
    for (int i = 0; i < hb->npeers; i++)
        if (hb->peers[i].alive && hb->peers[i].last_seen + hb->timeout_ns + 1 < next)
            next = hb->peers[i].last_seen + hb->timeout_ns + 1;
    if (hb->pend.active && hb->pend.next_send < next)
        next = hb->pend.next_send;
    if (next <= now)
        return 0;
    return (int)((next - now + 999999) / 1000000);
}

/* ---- commands and queries ------------------------------------------------- */

int sup_hb_request_handover(struct sup_hb *hb, const char *peer, int timeout_ms, uint64_t *req_seq)
{
    const struct peer *p = peer_find(hb, peer);
    if (!p)
        return -ENOENT;
    if (!p->alive)
        return -EHOSTUNREACH;
    if (hb->pend.active)
        return -EBUSY;
    struct sup_hb_msg m;
    msg_fill(hb, &m, SUP_HB_HANDOVER_REQ);
    m.ref_seq = hb->seq + 1; /* the request id is the sequence of its first send */
    int r = send_to_peer(hb, p, &m);
    if (r < 0)
        return r;
    int64_t now = now_ns();
    hb->pend = (struct pending){.active = true,
                                .seq = m.ref_seq,
                                .deadline = now + (int64_t)timeout_ms * 1000000,
                                .next_send = now + hb->interval_ns};
    snprintf(hb->pend.peer, sizeof hb->pend.peer, "%s", peer);
    if (req_seq)
        *req_seq = m.seq;
    return 0;
}

int sup_hb_ack_handover(struct sup_hb *hb, const char *peer, uint64_t req_seq, int status)
{
    struct peer *p = peer_find(hb, peer);
    if (!p)
        return -ENOENT;
    struct sup_hb_msg m;
    msg_fill(hb, &m, SUP_HB_HANDOVER_ACK);
    m.ref_seq = req_seq;
    m.status = status;
    if (p->handled_req == req_seq) {
        p->acked = true;
        p->ack_status = status;
    }
    return send_to_peer(hb, p, &m);
}

void sup_hb_set_state(struct sup_hb *hb, int role, int health, uint64_t epoch, uint64_t lsn)
{
    hb->role = role;
    hb->health = health;
    hb->epoch = epoch;
    hb->lsn = lsn;
}

bool sup_hb_peer_alive(const struct sup_hb *hb, const char *node_id)
{
    const struct peer *p = peer_find(hb, node_id);
    return p && p->alive && now_ns() - p->last_seen <= hb->timeout_ns;
}

int sup_hb_peer_get(const struct sup_hb *hb, const char *node_id, struct sup_hb_peer_info *out)
{
    const struct peer *p = peer_find(hb, node_id);
    if (!p)
        return -ENOENT;
    peer_info(hb, p, out);
    return 0;
}

int sup_hb_peer_count(const struct sup_hb *hb)
{
    return hb->npeers;
}

int sup_hb_peer_at(const struct sup_hb *hb, int i, struct sup_hb_peer_info *out)
{
    if (i < 0 || i >= hb->npeers)
        return -ENOENT;
    peer_info(hb, &hb->peers[i], out);
    return 0;
}

void sup_hb_get_stats(const struct sup_hb *hb, struct sup_hb_stats *out)
{
    *out = hb->st;
}

int sup_hb_fd(const struct sup_hb *hb)
{
    return hb->epfd;
}

/* ---- setup ---------------------------------------------------------------- */

static int set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

static int add_sock(struct sup_hb *hb, void *s, enum zkind kind, const char *ep, char *err,
                    size_t errlen)
{
    struct zsock *z = &hb->socks[hb->nsocks++];
    z->s = s;
    z->kind = kind;
    snprintf(z->endpoint, sizeof z->endpoint, "%s", ep);
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(s, ZMQ_FD, &fd, &sz) < 0) {
        snprintf(err, errlen, "zmq ZMQ_FD: %s", zmq_strerror(zmq_errno()));
        return -EIO;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u32 = (uint32_t)(hb->nsocks - 1);
    if (epoll_ctl(hb->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        snprintf(err, errlen, "epoll_ctl: %s", strerror(e));
        return -e;
    }
    return 0;
}

static void common_opts(const struct sup_hb *hb, void *s)
{
    set_int(s, ZMQ_LINGER, 0);
    set_int(s, ZMQ_SNDHWM, 16);
    set_int(s, ZMQ_RCVHWM, 64);
    set_int(s, ZMQ_HEARTBEAT_IVL, (int)(hb->interval_ns / 1000000));
    set_int(s, ZMQ_HEARTBEAT_TIMEOUT, (int)(hb->timeout_ns / 1000000));
    set_int(s, ZMQ_HEARTBEAT_TTL, (int)(hb->timeout_ns / 1000000));
}

/* Watches handshake failures of s through a PAIR socket (logged by monitor_serve). */
static int add_monitor(struct sup_hb *hb, void *s, const char *what, bool server, char *err,
                       size_t errlen)
{
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://hamq-hb-monitor-%d", hb->nsocks);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    void *pair = zmq_socket(hb->ctx, ZMQ_PAIR);
    if (!pair || zmq_socket_monitor(s, ep, events) < 0 || zmq_connect(pair, ep) < 0) {
        snprintf(err, errlen, "zmq monitor for %s: %s", what, zmq_strerror(zmq_errno()));
        if (pair)
            zmq_close(pair);
        return -EIO;
    }
    set_int(pair, ZMQ_LINGER, 0);
    int r = add_sock(hb, pair, ZK_MONITOR, what, err, errlen);
    hb->socks[hb->nsocks - 1].watches_server = server;
    return r;
}

static int setup_curve_keys(struct sup_hb *hb, const struct hamq_config *cfg, char pub[41],
                            char sec[41], char *err, size_t errlen)
{
    if (!cfg->curve_peer_public_key_file[0]) {
        snprintf(err, errlen,
                 "[ha] curve_secret_key_file is set but "
                 "curve_peer_public_key_file is not: both or neither");
        return -EINVAL;
    }
    if (zmq_has("curve") == 0) {
        snprintf(err, errlen, "CURVE keys are configured but this libzmq has no CURVE support");
        return -ENOTSUP;
    }
    int r = sup_key_read(cfg->curve_secret_key_file, true, sec, err, errlen);
    if (r < 0)
        return r;
    if (zmq_curve_public(pub, sec) != 0) {
        snprintf(err, errlen, "%s: not a CURVE secret key", cfg->curve_secret_key_file);
        return -EINVAL;
    }
    r = sup_keys_read_all(cfg->curve_peer_public_key_file, false, hb->peer_keys, MAX_KEYS, err,
                          errlen);
    if (r < 0)
        return r;
    hb->npeer_keys = r;
    hb->curve = true;
    return 0;
}

static int setup_router(struct sup_hb *hb, const struct hamq_config *cfg, const char *sec,
                        char *err, size_t errlen)
{
    if (hb->curve) {
        void *zap = zmq_socket(hb->ctx, ZMQ_REP);
        if (!zap || zmq_bind(zap, ZAP_ENDPOINT) < 0) {
            snprintf(err, errlen, "ZAP handler: %s", zmq_strerror(zmq_errno()));
            if (zap)
                zmq_close(zap);
            return -EIO;
        }
        set_int(zap, ZMQ_LINGER, 0);
        int r = add_sock(hb, zap, ZK_ZAP, ZAP_ENDPOINT, err, errlen);
        if (r < 0)
            return r;
    }
    void *s = zmq_socket(hb->ctx, ZMQ_ROUTER);
    if (!s) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return -EIO;
    }
    common_opts(hb, s);
    set_int(s, ZMQ_ROUTER_MANDATORY, 1);
    if (hb->curve) {
        set_int(s, ZMQ_CURVE_SERVER, 1);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
        zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "hamq", 4);
    }
    if (zmq_bind(s, cfg->ha_listen) < 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "[ha] listen = %s: cannot bind: %s", cfg->ha_listen, zmq_strerror(e));
        zmq_close(s);
        return -e;
    }
    hb->router = s;
    int r = add_sock(hb, s, ZK_ROUTER, cfg->ha_listen, err, errlen);
    if (r == 0 && hb->curve)
        r = add_monitor(hb, s, cfg->ha_listen, true, err, errlen);
    return r;
}

static int setup_dealer(struct sup_hb *hb, const char *ep, int idx, const char *pub,
                        const char *sec, char *err, size_t errlen)
{
    void *s = zmq_socket(hb->ctx, ZMQ_DEALER);
    if (!s) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return -EIO;
    }
    common_opts(hb, s);
    set_int(s, ZMQ_IMMEDIATE, 1);
    set_int(s, ZMQ_RECONNECT_IVL, 100);
    set_int(s, ZMQ_RECONNECT_IVL_MAX, 500);
    if (hb->curve) {
        const char *server = hb->peer_keys[idx < hb->npeer_keys ? idx : 0];
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    if (zmq_connect(s, ep) < 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "[ha] peers: \"%s\": %s (expected tcp://host:port)", ep,
                 zmq_strerror(e));
        zmq_close(s);
        return -e;
    }
    int r = add_sock(hb, s, ZK_DEALER, ep, err, errlen);
    if (r == 0 && hb->curve)
        r = add_monitor(hb, s, ep, false, err, errlen);
    return r;
}

static int setup_peers(struct sup_hb *hb, const char *list, const char *pub, const char *sec,
                       char *err, size_t errlen)
{
    char buf[sizeof(((struct hamq_config *)0)->peers)];
    snprintf(buf, sizeof buf, "%s", list);
    int idx = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok += strspn(tok, " \t");
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            tok[--n] = 0;
        if (!n)
            continue;
        if (idx == SUP_HB_MAX_PEERS) {
            snprintf(err, errlen, "[ha] peers: more than %d endpoints", SUP_HB_MAX_PEERS);
            return -E2BIG;
        }
        int r = setup_dealer(hb, tok, idx++, pub, sec, err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

int sup_hb_new(const struct hamq_config *cfg, const struct sup_hb_callbacks *cb,
               struct sup_hb **out, char *err, size_t errlen)
{
    char pub[41] = "", sec[41] = "";
    *out = NULL;
    if (!cfg->node_id[0] || strlen(cfg->node_id) >= SUP_HB_NODE_ID_MAX) {
        snprintf(err, errlen, "[ha] node_id must be set (1..%d characters)",
                 SUP_HB_NODE_ID_MAX - 1);
        return -EINVAL;
    }
    struct sup_hb *hb = calloc(1, sizeof *hb);
    if (!hb)
        return -ENOMEM;
    hb->epfd = epoll_create1(EPOLL_CLOEXEC);
    hb->ctx = zmq_ctx_new();
    if (hb->epfd < 0 || !hb->ctx) {
        snprintf(err, errlen, "cannot create the ZeroMQ context or epoll set");
        sup_hb_free(hb);
        return -ENOMEM;
    }
    if (cb)
        hb->cb = *cb;
    snprintf(hb->node_id, sizeof hb->node_id, "%s", cfg->node_id);
    hb->priority = cfg->priority;
    hb->interval_ns = (int64_t)cfg->heartbeat_interval_ms * 1000000;
    hb->timeout_ns = (int64_t)cfg->heartbeat_timeout_ms * 1000000;
    if (getrandom(&hb->incarnation, sizeof hb->incarnation, 0) != sizeof hb->incarnation)
        hb->incarnation = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
    int r = 0;
    if (cfg->curve_secret_key_file[0])
        r = setup_curve_keys(hb, cfg, pub, sec, err, errlen);
    else if (cfg->curve_peer_public_key_file[0]) {
        snprintf(err, errlen,
                 "[ha] curve_peer_public_key_file is set but "
                 "curve_secret_key_file is not: both or neither");
        r = -EINVAL;
    }
    if (r == 0)
        r = setup_router(hb, cfg, sec, err, errlen);
    if (r == 0)
        r = setup_peers(hb, cfg->peers, pub, sec, err, errlen);
    explicit_bzero(sec, sizeof sec);
    if (r < 0) {
        sup_hb_free(hb);
        return r;
    }
    hb->next_send = now_ns();
    *out = hb;
    return 0;
}

void sup_hb_free(struct sup_hb *hb)
{
    if (!hb)
        return;
    for (int i = 0; i < hb->nsocks; i++)
        zmq_close(hb->socks[i].s);
    if (hb->ctx)
        zmq_ctx_term(hb->ctx);
    if (hb->epfd >= 0)
        close(hb->epfd);
    explicit_bzero(hb, sizeof *hb);
    free(hb);
}
