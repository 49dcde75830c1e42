/*
 * worker_link — a worker's side of its shm slot: records to the core and
 * from it. See worker.h.
 *
 * Publication is batched per loop round: wk_send() only commits; the idle
 * hook publishes once before the loop may sleep (one release store and one
 * wake check for every record of the round).
 *
 * Order: records of one connection reach the core in the order they were
 * sent. Once anything sits in the overflow queue, every later record is
 * queued behind it (never jumps ahead), and client SENDs are refused with
 * -EAGAIN so their clients are paused instead of growing the queue.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "worker.h"

#define WK_READ_BUDGET 512
#define WK_SPACE_POLL_MS 1

struct wk_overflow {
    struct wk_overflow *next;
    uint32_t len;
    uint8_t bytes[];
};

static bool tx_dirty;

/* Puts one encoded record into the ring, or returns WOULD_BLOCK. */
static enum ring_outcome put_raw(struct worker *w, const void *rec, uint32_t len)
{
    void *p;
    enum ring_outcome o = ring_claim(&w->tx, 1, len, &p);

    if (o != RING_OK)
        return o;
    memcpy(p, rec, len);
    ring_commit(&w->tx, len);
    tx_dirty = true;
    return RING_OK;
}

static int queue_raw(struct worker *w, const void *rec, size_t len)
{
    struct wk_overflow *o = malloc(sizeof(*o) + len);

    if (!o)
        return -ENOMEM;
    o->next = NULL;
    o->len = (uint32_t)len;
    memcpy(o->bytes, rec, len);
    if (w->ovf_tail)
        w->ovf_tail->next = o;
    else
        w->ovf_head = o;
    w->ovf_tail = o;
    w->ovf_bytes += len;
    return 0;
}

/* Sends queued records while they fit. Returns true when the queue is empty. */
static bool drain_overflow(struct worker *w)
{
    while (w->ovf_head) {
        struct wk_overflow *o = w->ovf_head;
        enum ring_outcome r = put_raw(w, o->bytes, o->len);
        if (r == RING_WOULD_BLOCK)
            return false;
        if (r != RING_OK) {
            log_err("ring to core failed: %s", ring_outcome_str(r));
            return false;
        }
        w->ovf_head = o->next;
        if (!w->ovf_head)
            w->ovf_tail = NULL;
        w->ovf_bytes -= o->len;
        free(o);
    }
    return true;
}

static int emit_fragment(void *ctx, const void *frag, size_t len)
{
    struct worker *w = ctx;

    if (!w->ovf_head && put_raw(w, frag, (uint32_t)len) == RING_OK)
        return 0;
    return queue_raw(w, frag, len);
}

bool wk_congested(const struct worker *w)
{
    return w->ovf_head != NULL || w->flow_blocked;
}

bool wk_backlogged(const struct worker *w)
{
    return w->ovf_head != NULL;
}

int wk_send(struct worker *w, const struct msgproto_rec *rec, bool may_queue)
{
    ssize_t len = msgproto_encode(rec, NULL, 0);
    uint32_t max = ring_max_record(&w->tx);
    void *p;

    if (len < 0)
        return (int)len;
    if (w->ovf_head && !may_queue)
        return -EAGAIN;
    if ((size_t)len > max) {
        if ((size_t)len > w->encbuf_cap) {
            uint8_t *nb = realloc(w->encbuf, (size_t)len);
            if (!nb)
                return -ENOMEM;
            w->encbuf = nb;
            w->encbuf_cap = (size_t)len;
        }
        msgproto_encode(rec, w->encbuf, (size_t)len);
        /* max_total: a whole SEND may exceed the message size by its header fields. */
        return msgproto_fragment(w->encbuf, (size_t)len, rec->u.send.conn, max,
                                 msgproto_record_max(w->cfg.max_message_size), emit_fragment, w);
    }
    if (!w->ovf_head) {
        enum ring_outcome o = ring_claim(&w->tx, 1, (uint32_t)len, &p);
        if (o == RING_OK) {
            msgproto_encode(rec, p, (size_t)len);
            ring_commit(&w->tx, (uint32_t)len);
            tx_dirty = true;
            return 0;
        }
        if (o != RING_WOULD_BLOCK)
            return -EPIPE;
        if (!may_queue)
            return -EAGAIN;
    }
    uint8_t *tmp = malloc((size_t)len);
    if (!tmp)
        return -ENOMEM;
    msgproto_encode(rec, tmp, (size_t)len);
    int r = queue_raw(w, tmp, (size_t)len);
    free(tmp);
    return r;
}

uint64_t wk_conn_register(struct worker *w, const struct wk_conn_ops *ops, void *conn)
{
    struct wk_conn_ref *ref = calloc(1, sizeof(*ref));
    uint64_t id = ((uint64_t)(w->index + 1) << 48) | ((uint64_t)w->gen << 32 & 0xffff00000000ULL) |
                  (++w->next_conn & 0xffffffffULL);

    if (!ref)
        return 0;
    ref->ops = ops;
    ref->conn = conn;
    if (u64map_put(&w->conns, id, ref) < 0) {
        free(ref);
        return 0;
    }
    return id;
}

void wk_conn_unregister(struct worker *w, uint64_t id)
{
    struct wk_conn_ref *ref = u64map_del(&w->conns, id);

    if (ref && ref->waiting_space)
        w->waiting_space--;
    if (ref && ref->waiting_addr)
        w->waiting_addr--;
    free(ref);
}

static void on_space_timer(struct evloop *loop, void *ctx);

void wk_conn_wait_space(struct worker *w, uint64_t id)
{
    struct wk_conn_ref *ref = u64map_get(&w->conns, id);

    /* A connection held for a full address waits for its release, not for
     * ring space (polling would only find the address still full). */
    if (!ref || ref->waiting_space || ref->waiting_addr)
        return;
    ref->waiting_space = true;
    w->waiting_space++;
    if (!w->space_timer)
        evloop_add_timer(w->loop, WK_SPACE_POLL_MS, WK_SPACE_POLL_MS, on_space_timer, w,
                         &w->space_timer);
}

/* The core drains slowly or not at all: poll for space while anyone waits. */
static void on_space_timer(struct evloop *loop, void *ctx)
{
    struct worker *w = ctx;
    size_t pos = 0;
    struct u64map_entry *e;

    if (!drain_overflow(w))
        return;
    if (w->flow_blocked) {
        /* Waiters stay registered; the FLOW record that unblocks wakes them. */
        evloop_del(loop, w->space_timer);
        w->space_timer = NULL;
        return;
    }
    /* Wake waiters; a waiter that hits a full ring again re-registers. */
    while (w->waiting_space && (e = u64map_next(&w->conns, &pos))) {
        struct wk_conn_ref *ref = e->val;
        if (ref->waiting_space) {
            ref->waiting_space = false;
            w->waiting_space--;
            ref->ops->on_writable(ref->conn);
            if (wk_congested(w))
                break;
        }
    }
    if (!w->waiting_space && !w->ovf_head) {
        evloop_del(loop, w->space_timer);
        w->space_timer = NULL;
    }
}

static void dispatch(struct worker *w, const struct msgproto_rec *rec)
{
    uint64_t conn;
    struct wk_conn_ref *ref;

    switch (rec->type) {
    case MSGPROTO_FLOW:
        w->flow_blocked = rec->u.flow.blocked != 0;
        log_info("producers %s by the core (messages hold %llu of %llu bytes)",
                 w->flow_blocked ? "blocked" : "resumed",
                 (unsigned long long)rec->u.flow.bytes, (unsigned long long)rec->u.flow.limit);
        if (!w->flow_blocked && w->waiting_space && !w->space_timer)
            evloop_add_timer(w->loop, 0, WK_SPACE_POLL_MS, on_space_timer, w, &w->space_timer);
        return;
    case MSGPROTO_FLOW_ADDR:
        wk_flow_address(w, &rec->u.flow_addr);
        return;
    case MSGPROTO_DONE: conn = rec->u.done.conn; break;
    case MSGPROTO_DELIVER: conn = rec->u.deliver.conn; break;
    case MSGPROTO_CONSUMER_CLOSED: conn = rec->u.closed.conn; break;
    case MSGPROTO_STAT_REPLY: conn = rec->u.stat.request; break; /* request id = conn id */
    default:
        log_debug("ignoring %s from the core", msgproto_type_name(rec->type));
        return;
    }
    ref = u64map_get(&w->conns, conn);
    if (!ref)
        return; /* the connection closed meanwhile; the core learns it from CONN_CLOSE */
    if (rec->type == MSGPROTO_DONE)
        ref->ops->on_done(ref->conn, &rec->u.done);
    else if (rec->type == MSGPROTO_DELIVER)
        ref->ops->on_deliver(ref->conn, &rec->u.deliver, rec->flags);
    else if (rec->type == MSGPROTO_STAT_REPLY && ref->ops->on_stat)
        ref->ops->on_stat(ref->conn, &rec->u.stat, rec->flags);
    else if (rec->type == MSGPROTO_CONSUMER_CLOSED)
        ref->ops->on_consumer_closed(ref->conn, &rec->u.closed);
}

static void handle_record(struct worker *w, const struct ring_record *rr)
{
    struct msgproto_rec rec;
    int r = msgproto_decode(rr->payload, rr->length, &rec);

    if (r < 0) {
        log_err("undecodable record from the core (%u bytes): %s; closing all connections",
                rr->length, strerror(-r));
        w->stopping = true;
        w->exit_code = HAMQ_EXIT_INTERNAL;
        return;
    }
    if (rec.type != MSGPROTO_FRAGMENT) {
        dispatch(w, &rec);
        return;
    }
    r = msgproto_reassemble(&w->reasm, &rec.u.frag, msgproto_record_max(w->cfg.max_message_size));
    if (r < 0) {
        log_err("bad fragment from the core: %s", strerror(-r));
        return;
    }
    if (r == 1) {
        struct msgproto_rec whole;
        if (msgproto_decode(w->reasm.buf, w->reasm.total, &whole) == 0)
            dispatch(w, &whole);
        else
            log_err("reassembled record from the core does not decode");
        msgproto_reasm_reset(&w->reasm);
    }
}

/* Reads up to a budget of records. Returns true if more may be waiting. */
static bool read_core(struct worker *w)
{
    struct ring_record rr;
    int n = 0;

    while (n < WK_READ_BUDGET && !w->stopping) {
        enum ring_outcome o = ring_read(&w->rx, &rr);
        if (o == RING_WOULD_BLOCK)
            break;
        if (o != RING_OK) {
            log_err("ring from the core: %s; closing all client connections",
                    ring_outcome_str(o));
            w->stopping = true;
            w->exit_code = o == RING_PEER_GONE ? HAMQ_EXIT_PEER_GONE : HAMQ_EXIT_INTERNAL;
            break;
        }
        handle_record(w, &rr);
        n++;
    }
    if (n)
        ring_read_release(&w->rx);
    return n == WK_READ_BUDGET;
}

static void on_bell(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)events;
    shm_bell_drain(fd);
    read_core(ctx);
}

static bool idle_hook(struct evloop *loop, void *ctx)
{
    struct worker *w = ctx;
    bool busy;

    if (w->stopping) {
        evloop_stop(loop);
        return false;
    }
    busy = read_core(w);
    wnet_flush_all(w->net);
    if (w->ovf_head)
        drain_overflow(w);
    if (tx_dirty) {
        tx_dirty = false;
        if (ring_publish(&w->tx) != RING_OK && !w->stopping) {
            log_err("ring to the core is gone; closing all client connections");
            w->stopping = true;
            w->exit_code = HAMQ_EXIT_PEER_GONE;
            return true;
        }
    }
    if (busy)
        return true;
    /* Arm the doorbell; if a record slipped in meanwhile, go round again. */
    return ring_arm_bell(&w->rx) == RING_OK;
}

static void on_tick(struct evloop *loop, void *ctx)
{
    struct worker *w = ctx;

    (void)loop;
    shm_worker_heartbeat(&w->seg, w->index);
    if (!w->stopping && (shm_peer_dead(&w->core) || ring_peer_gone(&w->rx))) {
        log_event(LOG_ERR, "core-lost", "the core (pid %d) is gone; closing %zu client "
                  "connections so clients fail over", (int)w->core.pid, wnet_conn_count(w->net));
        w->stopping = true;
        w->exit_code = HAMQ_EXIT_PEER_GONE;
    }
}

int wk_link_open(struct worker *w, char *err, size_t errlen)
{
    char bell[16];
    int r;

    r = shm_attach(&w->seg, w->cfg.instance, err, errlen);
    if (r < 0)
        return r;
    if (w->index >= w->seg.slot_count) {
        snprintf(err, errlen, "worker index %u is out of range: the core made %u slots "
                 "(start the core with more workers)", w->index, w->seg.slot_count);
        return -ERANGE;
    }
    r = shm_worker_attach(&w->seg, w->index, &w->tx, &w->rx, &w->gen);
    if (r < 0) {
        snprintf(err, errlen, "cannot attach to slot %u: %s", w->index, strerror(-r));
        return r;
    }
    snprintf(bell, sizeof(bell), "w%u", w->index);
    w->bell_fd = shm_bell_open(w->cfg.instance, bell);
    w->core_bell_fd = shm_bell_open(w->cfg.instance, "core");
    if (w->bell_fd < 0 || w->core_bell_fd < 0) {
        snprintf(err, errlen, "cannot open doorbells: %s",
                 strerror(-(w->bell_fd < 0 ? w->bell_fd : w->core_bell_fd)));
        return w->bell_fd < 0 ? w->bell_fd : w->core_bell_fd;
    }
    ring_set_bell(&w->tx, w->core_bell_fd);
    r = shm_watch_core(&w->seg, &w->core, 3000000000LL);
    if (r < 0) {
        snprintf(err, errlen, "cannot watch the core: %s", strerror(-r));
        return r;
    }
    if (w->core.pidfd >= 0)
        ring_watch_peer(&w->rx, w->core.pidfd);
    u64map_init(&w->conns);
    wk_flow_init(w);
    r = evloop_add_fd(w->loop, w->bell_fd, EPOLLIN, on_bell, w, &w->bell_watch);
    if (r == 0)
        r = evloop_add_idle(w->loop, idle_hook, w, NULL);
    if (r == 0)
        r = evloop_add_timer(w->loop, 100, 100, on_tick, w, NULL);
    if (r < 0) {
        snprintf(err, errlen, "event loop: %s", strerror(-r));
        return r;
    }
    shm_worker_heartbeat(&w->seg, w->index);
    return 0;
}

int wk_link_hello(struct worker *w)
{
    struct msgproto_rec rec = {.type = MSGPROTO_HELLO};

    rec.u.hello.worker = w->index;
    rec.u.hello.pid = (uint32_t)getpid();
    rec.u.hello.proto_version = MSGPROTO_VERSION;
    int r = wk_send(w, &rec, true);
    if (r == 0 && ring_publish(&w->tx) != RING_OK)
        r = -EPIPE;
    tx_dirty = false;
    return r;
}

void wk_link_close(struct worker *w)
{
    if (tx_dirty)
        ring_publish(&w->tx);
    while (w->ovf_head) {
        struct wk_overflow *o = w->ovf_head;
        w->ovf_head = o->next;
        free(o);
    }
    w->ovf_tail = NULL;
    ring_close(&w->tx);
    ring_close(&w->rx);
    shm_peer_close(&w->core);
    size_t pos = 0;
    struct u64map_entry *e;
    while ((e = u64map_next(&w->conns, &pos)))
        free(e->val);
    u64map_free(&w->conns);
    wk_flow_free(w);
    msgproto_reasm_reset(&w->reasm);
    free(w->encbuf);
    if (w->bell_fd >= 0)
        close(w->bell_fd);
    if (w->core_bell_fd >= 0)
        close(w->core_bell_fd);
    shm_detach(&w->seg);
}
