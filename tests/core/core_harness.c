/* core_harness — see core_harness.h. */
#include "core_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/msgproto.h"

static int io_deliver(void *ctx, const struct core_delivery *d)
{
    struct harness *h = ctx;
    if (h->refuse_deliveries > 0) {
        h->refuse_deliveries--;
        return -EAGAIN;
    }
    if (d->worker == 0 && h->ring_slots) {
        if (h->ring_used >= h->ring_slots)
            return -EAGAIN;
        h->ring_used++;
    }
    if (h->ndl % 1024 == 0)
        h->dl = realloc(h->dl, (h->ndl + 1024) * sizeof(*h->dl));
    struct h_delivery *x = &h->dl[h->ndl++];
    *x = (struct h_delivery){d->worker, d->conn, d->consumer, d->delivery_id, d->message_id,
                             d->delivery_count, d->redelivered, ""};
    struct hmsg m;
    h->last_len = d->len < sizeof(h->last_data) ? d->len : 0;
    memcpy(h->last_data, d->data, h->last_len);
    if (hmsg_decode(d->data, d->len, &m) == 0)
        snprintf(x->body, sizeof(x->body), "%.*s", (int)m.body.len, (const char *)m.body.p);
    return 0;
}

static void io_done(void *ctx, uint32_t worker, uint64_t conn, uint64_t corr, int status,
                    const char *text)
{
    struct harness *h = ctx;
    if (h->ndone < sizeof(h->done) / sizeof(h->done[0])) {
        struct h_done *x = &h->done[h->ndone++];
        *x = (struct h_done){worker, conn, corr, status, "", h->ndl, h->ring_used};
        snprintf(x->text, sizeof(x->text), "%s", text);
    }
}

static void io_closed(void *ctx, uint32_t worker, uint64_t conn, uint64_t consumer, int status,
                      const char *reason)
{
    struct harness *h = ctx;
    (void)worker;
    (void)reason;
    if (h->nclosed < sizeof(h->closed) / sizeof(h->closed[0]))
        h->closed[h->nclosed++] = (struct h_closed){conn, consumer, status};
}

static int64_t io_now(void *ctx) { return ((struct harness *)ctx)->now; }

static void io_flow(void *ctx, bool blocked, uint64_t bytes, uint64_t limit)
{
    struct harness *h = ctx;
    (void)bytes;
    (void)limit;
    h->flow_events++;
    h->flow_blocked = blocked;
}

static int64_t jr_add(struct harness *h, char op, uint64_t a, uint64_t b, uint32_t count)
{
    if (h->store_fails)
        return -EIO;
    if (h->njr % 1024 == 0)
        h->jr = realloc(h->jr, (h->njr + 1024) * sizeof(*h->jr));
    h->jr[h->njr++] = (struct h_journal_rec){.op = op, .a = a, .b = b, .count = count};
    return ++h->lsn;
}

static int64_t p_queue_add(void *c, const struct core_queue_info *q)
{
    struct harness *h = c;
    int64_t lsn = jr_add(h, 'Q', q->id, 0, 0);
    if (lsn > 0) {
        struct h_journal_rec *r = &h->jr[h->njr - 1];
        snprintf(r->name, sizeof(r->name), "%s", q->name);
        snprintf(r->address, sizeof(r->address), "%s", q->address);
        r->routing = q->routing;
    }
    return lsn;
}
static int64_t p_queue_remove(void *c, uint64_t id) { return jr_add(c, 'q', id, 0, 0); }
static int64_t p_message(void *c, uint64_t id, const void *d, size_t l)
{
    struct harness *h = c;
    int64_t lsn = jr_add(h, 'M', id, 0, 0);
    if (lsn > 0) {
        struct h_journal_rec *r = &h->jr[h->njr - 1];
        r->data = malloc(l);
        memcpy(r->data, d, l);
        r->len = l;
    }
    return lsn;
}
static int64_t p_ref(void *c, uint64_t m, uint64_t q) { return jr_add(c, 'R', m, q, 0); }
static int64_t p_ack(void *c, uint64_t m, uint64_t q) { return jr_add(c, 'A', m, q, 0); }
static int64_t p_count(void *c, uint64_t m, uint64_t q, uint32_t n) { return jr_add(c, 'C', m, q, n); }
static int64_t p_dup(void *c, const char *a, const void *id, size_t l)
{
    (void)a;
    (void)id;
    return jr_add(c, 'D', l, 0, 0);
}

static struct harness *make(const struct core_config *cfg, bool persist)
{
    struct harness *h = calloc(1, sizeof(*h));
    struct core_config def;
    core_config_defaults(&def);
    h->now = 1000000;
    h->io = (struct core_io_ops){io_deliver, io_done, io_closed, io_now, io_flow};
    h->ps = (struct core_persist_ops){p_queue_add, p_queue_remove, p_message, p_ref,
                                      p_ack, p_count, p_dup};
    h->e = core_new(cfg ? cfg : &def, &h->io, h, persist ? &h->ps : NULL, h);
    return h;
}

struct harness *h_new(const struct core_config *cfg) { return make(cfg, true); }
struct harness *h_new_volatile(const struct core_config *cfg) { return make(cfg, false); }

void h_free(struct harness *h)
{
    core_free(h->e);
    free(h->dl);
    for (size_t i = 0; i < h->njr; i++)
        free(h->jr[i].data);
    free(h->jr);
    free(h);
}

void h_conn(struct harness *h, uint64_t conn, const char *client_id)
{
    core_conn_open(h->e, 0, conn, client_id, "user");
}

size_t h_msg(uint8_t *buf, size_t cap, const char *body, uint8_t priority, const char *pname,
             const char *pval, int64_t expiration)
{
    struct hmsg_prop p = {.name = msgproto_str(pname), .type = HMSG_PROP_STRING,
                          .v.bytes = msgproto_str(pval)};
    struct hmsg m = {.priority = priority, .body_type = HMSG_BODY_TEXT,
                     .expiration = expiration, .body = msgproto_str(body),
                     .nprops = pname ? 1 : 0, .props = pname ? &p : NULL};
    ssize_t n = hmsg_encode(&m, buf, cap);
    return n < 0 ? 0 : (size_t)n;
}

int h_send(struct harness *h, uint64_t conn, const char *address, const char *body,
           const struct h_send_opts *o)
{
    static const struct h_send_opts none = {.routing = MSGPROTO_ANYCAST, .priority = 4};
    uint8_t buf[512];
    if (!o)
        o = &none;
    size_t n = h_msg(buf, sizeof(buf), body, o->priority, o->pname, o->pval, o->expiration);
    struct msgproto_send s = {.conn = conn, .corr = o->corr, .tx = o->tx, .routing = o->routing,
                              .priority = o->priority, .address = msgproto_str(address),
                              .dup_id = msgproto_str(o->dup_id),
                              .message = {buf, (uint32_t)n}};
    return core_send(h->e, 0, &s, o->durable);
}

int h_sub(struct harness *h, uint64_t conn, uint64_t consumer, const char *address,
          const struct h_sub_opts *o)
{
    static const struct h_sub_opts none = {.routing = MSGPROTO_ANYCAST};
    if (!o)
        o = &none;
    struct msgproto_subscribe s = {.conn = conn, .consumer = consumer, .corr = o->corr,
                                   .routing = o->routing, .options = o->options,
                                   .credit = o->credit ? o->credit : UINT32_MAX,
                                   .address = msgproto_str(address),
                                   .queue = msgproto_str(o->queue),
                                   .sub_name = msgproto_str(o->sub_name),
                                   .filter = msgproto_str(o->filter)};
    return core_subscribe(h->e, 0, &s);
}

int h_settle(struct harness *h, uint16_t type, uint64_t conn, uint64_t consumer,
             uint64_t delivery, uint8_t flags, uint64_t tx, uint64_t corr)
{
    struct msgproto_settle s = {conn, consumer, delivery, tx, corr};
    return core_settle(h->e, 0, type, flags, &s);
}

size_t h_count_for(const struct harness *h, uint64_t conn, uint64_t consumer)
{
    size_t n = 0;
    for (size_t i = 0; i < h->ndl; i++)
        n += h->dl[i].conn == conn && h->dl[i].consumer == consumer;
    return n;
}

const struct h_delivery *h_last_for(const struct harness *h, uint64_t conn, uint64_t consumer)
{
    for (size_t i = h->ndl; i-- > 0;)
        if (h->dl[i].conn == conn && h->dl[i].consumer == consumer)
            return &h->dl[i];
    return NULL;
}

size_t h_journal_count(const struct harness *h, char op)
{
    size_t n = 0;
    for (size_t i = 0; i < h->njr; i++)
        n += h->jr[i].op == op;
    return n;
}

static struct core_queue_stat stat_buf;
static char stat_name[256], stat_addr[256];
static int stat_found;

static void stat_cb(void *ctx, const struct core_queue_stat *st)
{
    const char *want = ctx;
    if (strcmp(st->name, want) == 0) {
        stat_buf = *st;
        snprintf(stat_name, sizeof(stat_name), "%s", st->name);
        snprintf(stat_addr, sizeof(stat_addr), "%s", st->address);
        stat_buf.name = stat_name;
        stat_buf.address = stat_addr;
        stat_found = 1;
    }
}

const struct core_queue_stat *h_stat(struct harness *h, const char *queue)
{
    stat_found = 0;
    core_queue_stats(h->e, queue, stat_cb, (void *)queue);
    return stat_found ? &stat_buf : NULL;
}

const struct h_done *h_done_for(const struct harness *h, uint64_t corr)
{
    for (size_t i = 0; i < h->ndone; i++)
        if (h->done[i].corr == corr)
            return &h->done[i];
    return NULL;
}

size_t h_done_count(const struct harness *h, uint64_t corr)
{
    size_t n = 0;
    for (size_t i = 0; i < h->ndone; i++)
        n += h->done[i].corr == corr;
    return n;
}

void h_ring_read(struct harness *h)
{
    h->ring_used = 0;
    core_worker_resume(h->e, 0);
}
