/*
 * libFuzzer target over the worker's AMQP input path: the real
 * worker_amqp*.c and Proton's connection driver, with the worker's ring
 * link and sockets replaced by stubs that record what the AMQP layer sends
 * to the core. Each input is one client byte stream (the first byte picks
 * the chunk sizes it is fed in); after feeding it, the harness plays the
 * core: it answers every request (DONE, alternately ok and refused), delivers
 * a message to every subscribed consumer, sends statistics replies, drains
 * the output, and closes the connection. Nothing may crash, leak or hang.
 * Built and run by fuzz_amqp.sh (clang, ASan+UBSan).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/log.h"
#include "worker.h"

/* ---- stubs of worker_link.c / worker_net.c / evloop ---- */

#define REC_MAX 256
static struct {
    uint16_t type;
    uint64_t corr, consumer;
} recs[REC_MAX];
static size_t nrecs;
static const struct wk_conn_ops *ops;
static void *conn_state;

int wk_send(struct worker *w, const struct msgproto_rec *rec, bool may_queue)
{
    (void)w;
    (void)may_queue;
    if (msgproto_encode(rec, NULL, 0) < 0)
        abort(); /* the AMQP layer built an invalid record */
    if (nrecs < REC_MAX) {
        recs[nrecs].type = rec->type;
        recs[nrecs].corr = rec->type == MSGPROTO_SEND        ? rec->u.send.corr
                           : rec->type == MSGPROTO_SUBSCRIBE ? rec->u.sub.corr
                                                             : 0;
        recs[nrecs].consumer = rec->type == MSGPROTO_SUBSCRIBE ? rec->u.sub.consumer : 0;
        nrecs++;
    }
    return 0;
}

bool wk_congested(const struct worker *w)
{
    (void)w;
    return nrecs % 7 == 6; /* now and then: exercise the withheld-credit path */
}

uint64_t wk_conn_register(struct worker *w, const struct wk_conn_ops *o, void *conn)
{
    (void)w;
    ops = o;
    conn_state = conn;
    return 0x0001000100000001ULL;
}

void wk_conn_unregister(struct worker *w, uint64_t id)
{
    (void)w;
    (void)id;
    ops = NULL;
}

void wk_conn_wait_space(struct worker *w, uint64_t id)
{
    (void)w;
    (void)id;
}

bool wk_address_blocked(const struct worker *w, const char *address, size_t len)
{
    (void)w;
    (void)address;
    (void)len;
    return nrecs % 11 == 10; /* now and then: a full address withholds credit too */
}

void wk_conn_wait_address(struct worker *w, uint64_t id)
{
    (void)w;
    (void)id;
}

void wnet_pause_input(struct wconn *c) { (void)c; }
void wnet_resume_input(struct wconn *c) { (void)c; }
void wnet_flush(struct wconn *c) { (void)c; }
const char *wnet_peer_name(const struct wconn *c)
{
    (void)c;
    return "fuzz";
}

struct ev_watch {
    int unused;
};
static struct ev_watch watch;

int evloop_add_timer(struct evloop *loop, uint64_t first_ms, uint64_t period_ms, ev_timer_cb cb,
                     void *ctx, struct ev_watch **out)
{
    (void)loop;
    (void)first_ms;
    (void)period_ms;
    (void)cb;
    (void)ctx;
    if (out)
        *out = &watch;
    return 0;
}

void evloop_del(struct evloop *loop, struct ev_watch *w)
{
    (void)loop;
    (void)w;
}

uint64_t evloop_now_ms(void)
{
    return 1000;
}

/* ---- the core's side ---- */

static void play_core(void)
{
    static const char text[] = "message from the core";
    struct hmsg m = {.routing = MSGPROTO_ANYCAST, .priority = 4, .body_type = HMSG_BODY_TEXT};
    uint8_t buf[512];

    m.address = msgproto_str("q");
    m.message_id = m.correlation_id = m.reply_to = m.content_type = msgproto_str("");
    m.user_id = m.subject = m.group_id = msgproto_str("");
    m.body = msgproto_str(text);
    ssize_t len = hmsg_encode(&m, buf, sizeof(buf));
    for (size_t i = 0; i < nrecs && ops; i++) {
        if (recs[i].corr) {
            struct msgproto_done d = {.conn = 1, .corr = recs[i].corr,
                                      .status = (i & 1) ? -ENOENT : 0,
                                      .text = msgproto_str((i & 1) ? "refused" : "")};
            ops->on_done(conn_state, &d);
        }
        if (ops && recs[i].consumer && len > 0) {
            struct msgproto_deliver dv = {.conn = 1, .consumer = recs[i].consumer,
                                          .delivery = i + 1, .message_id = i + 1,
                                          .delivery_count = (uint32_t)(i & 2),
                                          .message = {buf, (uint32_t)len}};
            ops->on_deliver(conn_state, &dv, 0);
        }
        if (ops && recs[i].type == MSGPROTO_STAT_REQ) {
            struct msgproto_stat_reply st = {.request = 1, .consumers = 1, .messages = 2};
            st.name = st.address = msgproto_str("q");
            ops->on_stat(conn_state, &st, MSGPROTO_F_LAST);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct worker w;
    static struct wnet_proto p;
    static bool init;
    char err[128];
    const uint8_t *out;
    size_t olen;

    if (!init) {
        log_set_max_priority(LOG_CRIT); /* every input is a protocol error: keep quiet */
        config_defaults(&w.cfg);
        w.cfg.max_message_size = 64 * 1024;
        if (wk_amqp_init(&w, &p, err, sizeof(err)) < 0)
            abort();
        init = true;
    }
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    nrecs = 0;
    void *st = p.open(p.ctx, (struct wconn *)&watch);
    if (!st)
        return 0;
    for (size_t off = 1; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk;
        ssize_t used = p.input(st, data + off, n);
        if (used <= 0)
            break;
        off += (size_t)used;
    }
    play_core();
    for (int i = 0; i < 64; i++) {
        p.output(st, &out, &olen);
        if (!olen)
            break;
        p.consumed(st, olen);
    }
    (void)p.should_close(st);
    p.close(st, "fuzz");
    return 0;
}
