/*
 * journal_link — the core's side of the shm segment: one slot per worker,
 * records in (decoded and applied by the engine), deliveries and answers out.
 * See journal.h.
 *
 * Back-pressure towards a worker: a DELIVER that does not fit its ring is
 * refused with -EAGAIN (the engine keeps the message and stops delivering to
 * that worker until core_worker_resume()); answers (DONE, CONSUMER_CLOSED)
 * cannot be refused and wait in the slot's out queue, in order. While a
 * queue is not empty every later record waits behind it, so a worker sees
 * records of one connection in the order the engine produced them.
 *
 * Publication is batched per loop round (one release store per slot), in the
 * idle hook, which then arms the doorbell of every ring before the loop sleeps.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "hamq/exitcodes.h"
#include "core-flow.h"
#include "hamq/log.h"
#include "journal.h"

#define JD_READ_BUDGET 256
#define JD_RETRY_MS 1
#define JD_WORKER_TIMEOUT_NS (3LL * 1000 * 1000 * 1000)

struct jd_out {
    struct jd_out *next;
    uint32_t len;
    uint8_t bytes[];
};

static struct ev_watch *retry_timer;

static bool put_raw(struct jd_slot *s, const void *rec, size_t len)
{
    void *p;

    if (ring_claim(&s->tx, 1, (uint32_t)len, &p) != RING_OK)
        return false;
    memcpy(p, rec, len);
    ring_commit(&s->tx, (uint32_t)len);
    s->dirty = true;
    return true;
}

static int queue_raw(struct jd_slot *s, const void *rec, size_t len)
{
    struct jd_out *o = malloc(sizeof(*o) + len);

    if (!o)
        return -ENOMEM;
    o->next = NULL;
    o->len = (uint32_t)len;
    memcpy(o->bytes, rec, len);
    if (s->out_tail)
        s->out_tail->next = o;
    else
        s->out_head = o;
    s->out_tail = o;
    return 0;
}

static void drop_out(struct jd_slot *s)
{
    while (s->out_head) {
        struct jd_out *o = s->out_head;
        s->out_head = o->next;
        free(o);
    }
    s->out_tail = NULL;
}

static bool drain_out(struct jd_slot *s)
{
    while (s->out_head) {
        struct jd_out *o = s->out_head;
        if (!put_raw(s, o->bytes, o->len))
            return false;
        s->out_head = o->next;
        if (!s->out_head)
            s->out_tail = NULL;
        free(o);
    }
    return true;
}

struct frag_ctx {
    struct jd_slot *s;
};

static int emit_frag(void *ctx, const void *frag, size_t len)
{
    struct jd_slot *s = ((struct frag_ctx *)ctx)->s;

    if (!s->out_head && put_raw(s, frag, len))
        return 0;
    return queue_raw(s, frag, len);
}

static void on_retry(struct evloop *loop, void *ctx);

static void want_retry(struct journald *j)
{
    if (!retry_timer)
        evloop_add_timer(j->loop, JD_RETRY_MS, JD_RETRY_MS, on_retry, j, &retry_timer);
}

/* may_refuse: DELIVER (the engine keeps it); otherwise the record is queued. */
static int send_rec(struct journald *j, uint32_t slot, const struct msgproto_rec *rec,
                    bool may_refuse, uint64_t conn)
{
    struct jd_slot *s = &j->slots[slot];
    ssize_t len = msgproto_encode(rec, NULL, 0);
    void *p;

    if (len < 0)
        return (int)len;
    if (s->out_head && may_refuse)
        return -EAGAIN;
    if ((size_t)len > ring_max_record(&s->tx)) {
        uint8_t *tmp = malloc((size_t)len);
        struct frag_ctx fc = {s};
        if (!tmp)
            return -ENOMEM;
        msgproto_encode(rec, tmp, (size_t)len);
        int r = msgproto_fragment(tmp, (size_t)len, conn, ring_max_record(&s->tx), SIZE_MAX / 2,
                                  emit_frag, &fc);
        free(tmp);
        if (s->out_head)
            want_retry(j);
        return r;
    }
    if (!s->out_head && ring_claim(&s->tx, 1, (uint32_t)len, &p) == RING_OK) {
        msgproto_encode(rec, p, (size_t)len);
        ring_commit(&s->tx, (uint32_t)len);
        s->dirty = true;
        return 0;
    }
    if (may_refuse)
        return -EAGAIN;
    uint8_t *tmp = malloc((size_t)len);
    if (!tmp)
        return -ENOMEM;
    msgproto_encode(rec, tmp, (size_t)len);
    int r = queue_raw(s, tmp, (size_t)len);
    free(tmp);
    want_retry(j);
    return r;
}

static int io_deliver(void *ctx, const struct core_delivery *d)
{
    struct journald *j = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_DELIVER};
    struct jd_slot *s;

    if (d->worker >= j->nslots)
        return -EINVAL;
    s = &j->slots[d->worker];
    rec.flags = d->redelivered ? MSGPROTO_F_REDELIVERED : 0;
    rec.u.deliver.conn = d->conn;
    rec.u.deliver.consumer = d->consumer;
    rec.u.deliver.delivery = d->delivery_id;
    rec.u.deliver.message_id = d->message_id;
    rec.u.deliver.delivery_count = d->delivery_count;
    rec.u.deliver.message = (struct msgproto_bytes){d->data, (uint32_t)d->len};
    int r = send_rec(j, d->worker, &rec, true, d->conn);
    if (r == -EAGAIN) {
        s->blocked = true;
        want_retry(j);
    }
    return r;
}

static void io_done(void *ctx, uint32_t worker, uint64_t conn, uint64_t corr, int status,
                    const char *text)
{
    struct journald *j = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_DONE};

    if (worker >= j->nslots || !j->slots[worker].alive)
        return;
    rec.u.done.conn = conn;
    rec.u.done.corr = corr;
    rec.u.done.status = status;
    rec.u.done.text = msgproto_str(text);
    if (send_rec(j, worker, &rec, false, conn) < 0)
        log_err("cannot answer worker %u: out of memory", worker);
}

static void io_consumer_closed(void *ctx, uint32_t worker, uint64_t conn, uint64_t consumer,
                               int status, const char *reason)
{
    struct journald *j = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_CONSUMER_CLOSED};

    if (worker >= j->nslots || !j->slots[worker].alive)
        return;
    rec.u.closed.conn = conn;
    rec.u.closed.consumer = consumer;
    rec.u.closed.status = status;
    rec.u.closed.reason = msgproto_str(reason);
    if (send_rec(j, worker, &rec, false, conn) < 0)
        log_err("cannot tell worker %u of a closed consumer: out of memory", worker);
}

/* Producer flow control: every worker stops (or resumes) reading producers. */
static void io_flow(void *ctx, bool blocked, uint64_t bytes, uint64_t limit)
{
    struct journald *j = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_FLOW};

    rec.u.flow.blocked = blocked;
    rec.u.flow.bytes = bytes;
    rec.u.flow.limit = limit;
    j->flow_blocked = blocked;
    if (blocked)
        log_event(LOG_WARNING, "flow-blocked", "messages hold %llu bytes, the limit is %llu "
                  "([broker] max_memory): producers are blocked until consumers catch up",
                  (unsigned long long)bytes, (unsigned long long)limit);
    else
        log_event(LOG_NOTICE, "flow-resumed", "messages hold %llu bytes (limit %llu): "
                  "producers resume", (unsigned long long)bytes, (unsigned long long)limit);
    for (uint32_t i = 0; i < j->nslots; i++)
        if (j->slots[i].alive && send_rec(j, i, &rec, false, 0) < 0)
            log_err("cannot tell worker %u about flow control: out of memory", i);
}

/* ---- per-address flow control ([broker] address_max_memory, [address NAME]) ---- */

static uint64_t addr_limit(void *ctx, const char *address)
{
    const struct journald *j = ctx;

    return config_address_max_memory(&j->cfg, address);
}

static void send_flow_addr(struct journald *j, uint32_t slot, const char *address, bool blocked,
                           uint64_t bytes, uint64_t limit)
{
    struct msgproto_rec rec = {.type = MSGPROTO_FLOW_ADDR};

    rec.u.flow_addr.blocked = blocked;
    rec.u.flow_addr.bytes = bytes;
    rec.u.flow_addr.limit = limit;
    rec.u.flow_addr.address = msgproto_str(address);
    if (send_rec(j, slot, &rec, false, 0) < 0)
        log_err("cannot tell worker %u about flow control of address %s: out of memory", slot,
                address);
}

/* Every worker holds (or releases) SENDs to this address. */
static void addr_changed(void *ctx, const char *address, bool blocked, uint64_t bytes,
                         uint64_t limit)
{
    struct journald *j = ctx;

    if (blocked)
        log_event(LOG_WARNING, "address-flow-blocked", "address %s holds %llu bytes in its "
                  "queues, its limit is %llu: producers to it are blocked until consumers catch "
                  "up", address, (unsigned long long)bytes, (unsigned long long)limit);
    else
        log_event(LOG_NOTICE, "address-flow-resumed", "address %s holds %llu bytes (limit "
                  "%llu): producers to it resume", address, (unsigned long long)bytes,
                  (unsigned long long)limit);
    for (uint32_t i = 0; i < j->nslots; i++)
        if (j->slots[i].alive)
            send_flow_addr(j, i, address, blocked, bytes, limit);
}

static const struct core_addr_flow_ops jd_addr_flow_ops = {
    .limit = addr_limit,
    .changed = addr_changed,
};

struct hello_ctx {
    struct journald *j;
    uint32_t slot;
};

static void hello_blocked(void *ctx, const char *address, uint64_t bytes, uint64_t limit)
{
    const struct hello_ctx *h = ctx;

    send_flow_addr(h->j, h->slot, address, true, bytes, limit);
}

const struct core_io_ops jd_io_ops = {
    .deliver = io_deliver,
    .done = io_done,
    .consumer_closed = io_consumer_closed,
    .flow = io_flow,
};

struct stat_ctx {
    struct journald *j;
    uint32_t slot;
};

static void on_stat(void *ctx, uint64_t request, const struct core_queue_stat *st, bool last)
{
    struct stat_ctx *sc = ctx;
    struct msgproto_rec rec = {.type = MSGPROTO_STAT_REPLY};

    rec.flags = (last ? MSGPROTO_F_LAST : 0) | (st ? 0 : MSGPROTO_F_EMPTY);
    rec.u.stat.request = request;
    if (st) {
        rec.u.stat.routing = st->routing;
        rec.u.stat.consumers = st->consumers;
        rec.u.stat.messages = st->messages;
        rec.u.stat.added = st->added;
        rec.u.stat.delivering = st->delivering;
        rec.u.stat.acked = st->acked;
        rec.u.stat.durable = st->durable;
        rec.u.stat.dead_lettered = st->dead_lettered;
        rec.u.stat.expired = st->expired;
        rec.u.stat.name = msgproto_str(st->name);
        rec.u.stat.address = msgproto_str(st->address);
    } else {
        rec.u.stat.name = rec.u.stat.address = msgproto_str("");
    }
    send_rec(sc->j, sc->slot, &rec, false, 0);
}

/* Reads up to a budget of records of one slot. Returns true if more may wait. */
static bool read_slot(struct journald *j, uint32_t i, int budget)
{
    struct jd_slot *s = &j->slots[i];
    struct ring_record rr;
    struct stat_ctx sc = {j, i};
    int n = 0;

    while (n < budget) {
        enum ring_outcome o = ring_read(&s->rx, &rr);
        if (o != RING_OK) {
            if (o == RING_BROKEN && s->alive) {
                log_err("ring from worker %u is corrupt; treating the worker as gone", i);
                core_worker_gone(j->engine, i);
                s->alive = false;
            }
            break;
        }
        uint16_t type = rr.length >= 2 ? (uint16_t)(rr.payload[0] | rr.payload[1] << 8) : 0;
        int r = core_handle_record(j->engine, i, rr.payload, rr.length, on_stat, &sc);
        if (r < 0 && (r == -EBADMSG || r == -EPROTO))
            log_err("worker %u sent a malformed %s record (%u bytes): %s", i,
                    msgproto_type_name(type), rr.length, strerror(-r));
        else if (type == MSGPROTO_HELLO && r == 0)
            jd_worker_hello(j, i);
        n++;
    }
    if (n)
        ring_read_release(&s->rx);
    return n == budget;
}

static void publish(struct journald *j)
{
    for (uint32_t i = 0; i < j->nslots; i++) {
        struct jd_slot *s = &j->slots[i];
        if (s->out_head)
            drain_out(s);
        if (s->dirty) {
            s->dirty = false;
            ring_publish(&s->tx);
        }
    }
}

static void on_retry(struct evloop *loop, void *ctx)
{
    struct journald *j = ctx;
    bool still = false;

    for (uint32_t i = 0; i < j->nslots; i++) {
        struct jd_slot *s = &j->slots[i];
        if (s->out_head && !drain_out(s))
            still = true;
        if (s->blocked && !s->out_head) {
            s->blocked = false;
            core_worker_resume(j->engine, i); /* may block it again */
        }
        still |= s->blocked || s->out_head;
    }
    publish(j);
    if (!still) {
        evloop_del(loop, retry_timer);
        retry_timer = NULL;
    }
}

static bool idle_hook(struct evloop *loop, void *ctx)
{
    struct journald *j = ctx;
    bool busy = false;

    (void)loop;
    for (uint32_t i = 0; i < j->nslots; i++)
        busy |= read_slot(j, i, JD_READ_BUDGET);
    publish(j);
    if (j->store) {
        int r = store_kick(j->store);
        if (r < 0 && !j->stopping)
            jd_shutdown(j, r == -ESTALE ? HAMQ_EXIT_FENCED : HAMQ_EXIT_IO,
                        r == -ESTALE ? "fenced: a newer live raised the store epoch"
                                     : "the store cannot be written");
    }
    if (busy)
        return true;
    for (uint32_t i = 0; i < j->nslots; i++)
        if (ring_arm_bell(&j->slots[i].rx) == RING_OK)
            busy = true;
    return busy;
}

static void on_bell(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)events;
    (void)ctx;
    shm_bell_drain(fd);
}

static void check_worker(struct journald *j, uint32_t i)
{
    struct jd_slot *s = &j->slots[i];
    struct shm_slot *sl = shm_slot_at(&j->seg, i);
    uint32_t g = atomic_load_explicit(&sl->attach_gen, memory_order_acquire);

    if (g != s->gen) {
        if (s->watching)
            shm_peer_close(&s->peer);
        s->watching = shm_watch_worker(&j->seg, i, &s->peer, JD_WORKER_TIMEOUT_NS) == 0;
        s->gen = g;
    }
    if (s->watching && shm_peer_dead(&s->peer)) {
        while (read_slot(j, i, JD_READ_BUDGET)) /* what it published before dying counts */
            ;
        if (s->alive)
            log_event(LOG_WARNING, "worker-lost", "worker %u (pid %d) is gone; its "
                      "connections are closed and their unacknowledged messages released",
                      i, (int)s->peer.pid);
        core_worker_gone(j->engine, i);
        shm_peer_close(&s->peer);
        s->watching = false;
        s->alive = false;
        s->blocked = false;
        drop_out(s);
    }
}

static void on_tick(struct evloop *loop, void *ctx)
{
    struct journald *j = ctx;

    (void)loop;
    shm_core_heartbeat(&j->seg);
    for (uint32_t i = 0; i < j->nslots; i++)
        check_worker(j, i);
}

void jd_worker_hello(struct journald *j, uint32_t slot)
{
    struct jd_slot *s = &j->slots[slot];

    drop_out(s); /* records for its predecessor */
    s->blocked = false;
    if (j->flow_blocked) { /* a new worker must learn that producers are blocked */
        struct msgproto_rec rec = {.type = MSGPROTO_FLOW};
        rec.u.flow.blocked = 1;
        send_rec(j, slot, &rec, false, 0);
    }
    struct hello_ctx hc = {j, slot}; /* and which addresses are blocked */
    core_flow_blocked_each(j->engine, hello_blocked, &hc);
    if (!s->alive) {
        s->alive = true;
        j->ready_workers++;
    }
    check_worker(j, slot);
    log_info("worker %u (pid %d) is serving", slot, (int)s->peer.pid);
    if (!j->announced_ready && j->ready_workers >= (j->spawn ? j->spawn : 1)) {
        j->announced_ready = true;
        log_event(LOG_NOTICE, "ready", "broker ready: %u worker(s) serving, store %s, epoch %llu",
                  j->ready_workers, j->cfg.store,
                  (unsigned long long)(j->store ? store_epoch(j->store) : 0));
    }
}

int jd_link_open(struct journald *j, char *err, size_t errlen)
{
    char bell[16];
    int r;

    r = shm_create(&j->seg, j->cfg.instance, j->nslots, (uint32_t)j->cfg.ring_size,
                   j->store ? store_epoch(j->store) : 0, err, errlen);
    if (r < 0)
        return r;
    j->slots = calloc(j->nslots, sizeof(*j->slots));
    if (!j->slots)
        return -ENOMEM;
    j->bell_fd = shm_bell_open(j->cfg.instance, "core");
    if (j->bell_fd < 0) {
        snprintf(err, errlen, "cannot open the core doorbell: %s", strerror(-j->bell_fd));
        return j->bell_fd;
    }
    for (uint32_t i = 0; i < j->nslots; i++) {
        struct jd_slot *s = &j->slots[i];
        r = shm_slot_rings(&j->seg, i, SHM_SIDE_CORE, &s->tx, &s->rx);
        if (r < 0) {
            snprintf(err, errlen, "cannot open the rings of slot %u: %s", i, strerror(-r));
            return r;
        }
        snprintf(bell, sizeof(bell), "w%u", i);
        s->bell_fd = shm_bell_open(j->cfg.instance, bell);
        if (s->bell_fd < 0) {
            snprintf(err, errlen, "cannot open doorbell %s: %s", bell, strerror(-s->bell_fd));
            return s->bell_fd;
        }
        ring_set_bell(&s->tx, s->bell_fd);
    }
    shm_core_heartbeat(&j->seg);
    if ((r = evloop_add_fd(j->loop, j->bell_fd, EPOLLIN, on_bell, j, NULL)) < 0 ||
        (r = evloop_add_idle(j->loop, idle_hook, j, NULL)) < 0 ||
        (r = evloop_add_timer(j->loop, 100, 100, on_tick, j, NULL)) < 0) {
        snprintf(err, errlen, "event loop: %s", strerror(-r));
        return r;
    }
    /* Per-address limits: only when configured (otherwise no cost per SEND).
     * Here because the slots exist now; what restore put over a limit is
     * blocked at once and told to each worker at its HELLO. */
    if (j->cfg.address_max_memory || j->cfg.naddresses)
        core_flow_addresses(j->engine, &jd_addr_flow_ops, j);
    return 0;
}

void jd_link_close(struct journald *j)
{
    if (!j->slots)
        return;
    publish(j);
    for (uint32_t i = 0; i < j->nslots; i++) {
        struct jd_slot *s = &j->slots[i];
        drop_out(s);
        ring_close(&s->tx);
        ring_close(&s->rx);
        if (s->watching)
            shm_peer_close(&s->peer);
        if (s->bell_fd >= 0)
            close(s->bell_fd);
    }
    if (j->bell_fd >= 0)
        close(j->bell_fd);
    shm_detach(&j->seg);
    shm_unlink_instance(j->cfg.instance, j->nslots);
    free(j->slots);
    j->slots = NULL;
}
