/*
 * core-records — the glue helper from ring bytes to engine calls: decode a
 * worker→core record (msgproto), reassemble FRAGMENTs per connection, and
 * call the matching core_* function. Kept apart from the engine so the
 * engine's API stays record-free for tests and other transports.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-drain.h"
#include "core-internal.h"
#include "hamq/log.h"

struct stat_ctx {
    void (*cb)(void *ctx, uint64_t request, const struct core_queue_stat *st, bool last);
    void *ctx;
    uint64_t request;
    const struct core_queue_stat *prev;
    struct core_queue_stat held;
    char name[512], address[512];
    bool have;
};

/* Holds one stat back so the last one can carry last = true. */
static void stat_hold(void *p, const struct core_queue_stat *st)
{
    struct stat_ctx *s = p;
    if (s->have)
        s->cb(s->ctx, s->request, &s->held, false);
    s->held = *st;
    snprintf(s->name, sizeof(s->name), "%s", st->name);
    snprintf(s->address, sizeof(s->address), "%s", st->address);
    s->held.name = s->name;
    s->held.address = s->address;
    s->have = true;
}

static int handle_stat(struct core_engine *e, const struct msgproto_stat_req *r,
                       void (*cb)(void *, uint64_t, const struct core_queue_stat *, bool), void *ctx)
{
    if (!cb)
        return -EINVAL;
    struct stat_ctx s = {.cb = cb, .ctx = ctx, .request = r->request};
    char *match = bytes_dup(r->queue);
    if (!match)
        return -ENOMEM;
    int n = core_queue_stats(e, match, stat_hold, &s);
    free(match);
    cb(ctx, r->request, s.have ? &s.held : NULL, true);
    return n < 0 ? n : 0;
}

static int handle_fragment(struct core_engine *e, uint32_t worker,
                           const struct msgproto_fragment_rec *f)
{
    struct core_conn *c = conn_find(e, worker, f->conn);
    if (!c)
        return -ENOTCONN;
    int rc = msgproto_reassemble(&c->reasm, f, msgproto_record_max(e->cfg.max_message_size));
    if (rc == -EMSGSIZE) {
        /* Tell the producer; its worker should have refused it already. */
        log_warn("worker %u conn %llu: fragmented record of %llu bytes over the limit", worker,
                 (unsigned long long)f->conn, (unsigned long long)f->total);
        op_begin(e);
        answer(e, worker, f->conn, 0, -EMSGSIZE, "message of %llu bytes exceeds the maximum of %zu",
               (unsigned long long)f->total, e->cfg.max_message_size);
        return 0;
    }
    if (rc <= 0)
        return rc;
    uint8_t *buf = c->reasm.buf;
    size_t len = c->reasm.total;
    c->reasm.buf = NULL;
    msgproto_reasm_reset(&c->reasm);
    struct msgproto_rec inner;
    rc = msgproto_decode(buf, len, &inner);
    if (rc == 0 && inner.type == MSGPROTO_FRAGMENT)
        rc = -EPROTO; /* fragments of fragments are not a thing */
    if (rc == 0)
        rc = core_handle_record(e, worker, buf, len, NULL, NULL);
    free(buf);
    return rc;
}

static int dispatch_rec(struct core_engine *e, uint32_t worker, const struct msgproto_rec *r,
                        void (*stat_cb)(void *, uint64_t, const struct core_queue_stat *, bool),
                        void *stat_ctx)
{
    char *cid = NULL, *user = NULL;
    int rc;
    switch (r->type) {
    case MSGPROTO_HELLO:
        if (r->u.hello.worker != worker)
            return -EPROTO;
        return core_worker_hello(e, worker, r->u.hello.pid, r->u.hello.proto_version);
    case MSGPROTO_CONN_OPEN:
        cid = bytes_dup(r->u.conn.client_id);
        user = bytes_dup(r->u.conn.user);
        rc = cid && user ? core_conn_open(e, worker, r->u.conn.conn, cid, user) : -ENOMEM;
        free(cid);
        free(user);
        return rc;
    case MSGPROTO_CONN_CLOSE:
        core_conn_close(e, worker, r->u.conn.conn);
        return 0;
    case MSGPROTO_SEND:
        core_send(e, worker, &r->u.send, (r->flags & MSGPROTO_F_DURABLE) != 0);
        return 0;
    case MSGPROTO_SUBSCRIBE:
        core_subscribe(e, worker, &r->u.sub);
        return 0;
    case MSGPROTO_UNSUBSCRIBE:
        core_unsubscribe(e, worker, &r->u.unsub, (r->flags & MSGPROTO_F_REMOVE_DURABLE) != 0);
        return 0;
    case MSGPROTO_CREDIT:
        core_credit(e, worker, r->u.credit.conn, r->u.credit.consumer, r->u.credit.credits);
        return 0;
    case MSGPROTO_DRAIN:
        core_drain(e, worker, &r->u.unsub);
        return 0;
    case MSGPROTO_ACK:
    case MSGPROTO_RELEASE:
    case MSGPROTO_MODIFIED:
    case MSGPROTO_REJECT:
        core_settle(e, worker, r->type, r->flags, &r->u.settle);
        return 0;
    case MSGPROTO_TX_BEGIN:
    case MSGPROTO_TX_COMMIT:
    case MSGPROTO_TX_ROLLBACK:
        core_tx(e, worker, r->type, &r->u.tx);
        return 0;
    case MSGPROTO_STAT_REQ:
        return handle_stat(e, &r->u.stat_req, stat_cb, stat_ctx);
    default:
        return -EPROTO; /* a core→worker record coming the wrong way */
    }
}

int core_handle_record(struct core_engine *e, uint32_t worker, const void *rec, size_t len,
                       void (*stat_cb)(void *ctx, uint64_t request, const struct core_queue_stat *st,
                                       bool last),
                       void *stat_ctx)
{
    struct msgproto_rec r;
    int rc = msgproto_decode(rec, len, &r);
    if (rc < 0)
        return rc;
    if (worker >= CORE_MAX_WORKERS)
        return -ERANGE;
    if (r.type == MSGPROTO_FRAGMENT)
        return handle_fragment(e, worker, &r.u.frag);
    return dispatch_rec(e, worker, &r, stat_cb, stat_ctx);
}
