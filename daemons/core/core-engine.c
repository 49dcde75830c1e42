/*
 * core-engine — the engine object: lifetime, addresses and queues, the
 * answer FIFO held for durability, connections, statistics and recovery.
 * Routing is in core-route.c, consumers and dispatch in core-dispatch.c,
 * transactions in core-tx.c, ring records in core-records.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core-internal.h"
#include "hamq/log.h"

void core_config_defaults(struct core_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->auto_create = true;
    cfg->default_routing = MSGPROTO_MULTICAST;
    cfg->max_delivery_attempts = 10;
    cfg->id_cache_size = 20000;
    snprintf(cfg->dead_letter_address, sizeof(cfg->dead_letter_address), "DLQ");
    cfg->max_message_size = 100u << 20;
}

struct core_engine *core_new(const struct core_config *cfg, const struct core_io_ops *io,
                             void *io_ctx, const struct core_persist_ops *persist,
                             void *persist_ctx)
{
    struct core_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->cfg = *cfg;
    e->io = io;
    e->io_ctx = io_ctx;
    e->persist = persist;
    e->persist_ctx = persist_ctx;
    hmap_init(&e->addresses);
    hmap_init(&e->queues);
    hmap_init(&e->queue_ids);
    hmap_init(&e->conns);
    u64map_init(&e->restore_msgs);
    u64map_init(&e->restore_ref1);
    hmap_init(&e->restore_refs);
    dl_init(&e->pending);
    dl_init(&e->dirty);
    e->next_msg_id = 1;
    e->next_queue_id = 1;
    e->next_serial = 1;
    return e;
}

static void free_restore_leftovers(struct core_engine *e)
{
    size_t pos = 0;
    struct u64map_entry *en;
    /* a warm standby released every hold as it went: no walk over its messages */
    while (e->restore_held && (en = u64map_next(&e->restore_msgs, &pos))) {
        struct core_msg *m = en->val;
        if (m->restore_held) {
            m->restore_held = false;
            e->restore_held--;
            msg_put(e, m); /* the hold taken by core_restore_message */
        }
    }
    u64map_free(&e->restore_msgs);
    u64map_free(&e->restore_ref1);
    hmap_free(&e->restore_refs);
}

void core_free(struct core_engine *e)
{
    if (!e)
        return;
    size_t b = 0;
    const struct hmap_ent *it = NULL;
    struct core_conn *c;
    e->no_persist = true; /* nothing below is persisted: the store keeps it all */
    while ((c = hmap_next(&e->conns, &b, &it)))
        conn_free(e, c);
    hmap_free(&e->conns);
    struct core_queue *q;
    while ((b = 0, it = NULL, q = hmap_next(&e->queues, &b, &it)))
        queue_delete(e, q);
    free_restore_leftovers(e);
    struct core_address *a;
    b = 0;
    it = NULL;
    while ((a = hmap_next(&e->addresses, &b, &it))) {
        dup_free(&a->dup);
        free(a->name);
        free(a);
    }
    hmap_free(&e->addresses);
    hmap_free(&e->queues);
    hmap_free(&e->queue_ids);
    for (struct dlist *n = e->pending.next, *next; n != &e->pending; n = next) {
        next = n->next;
        free(dl_entry(n, struct core_answer, link));
    }
    free(e);
}

/* ---- operations and answers ---- */

void op_begin(struct core_engine *e)
{
    e->op_lsn = 0;
    e->op_err = 0;
}

void op_end(struct core_engine *e)
{
    /* Dispatch may make queues dirty again (DLQ moves): bounded by the
     * number of queues times a few passes in practice; each pass makes
     * progress or leaves the list empty. */
    for (int pass = 0; pass < 64 && !dl_empty(&e->dirty); pass++) {
        struct dlist work;
        dl_init(&work);
        while (!dl_empty(&e->dirty)) {
            struct dlist *n = e->dirty.next;
            dl_remove(n);
            dl_push_tail(&work, n);
        }
        while (!dl_empty(&work)) {
            struct core_queue *q = dl_entry(work.next, struct core_queue, dirty_link);
            dl_remove(&q->dirty_link);
            queue_dispatch(e, q);
        }
    }
    flow_check(e);
}

void queue_mark_dirty(struct core_engine *e, struct core_queue *q)
{
    if (!dl_linked(&q->dirty_link))
        dl_push_tail(&e->dirty, &q->dirty_link);
}

void persist_track(struct core_engine *e, int64_t lsn)
{
    if (lsn < 0) {
        if (!e->op_err)
            log_err("store append failed: %s", strerror((int)-lsn));
        e->op_err = (int)lsn;
    } else if ((uint64_t)lsn > e->op_lsn) {
        e->op_lsn = (uint64_t)lsn;
    }
}

int answer(struct core_engine *e, uint32_t worker, uint64_t conn, uint64_t corr, int status,
           const char *fmt, ...)
{
    char text[256] = "";
    if (status == 0 && e->op_err) {
        status = e->op_err;
        snprintf(text, sizeof(text), "store error: %s", strerror(-status));
    } else if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
    }
    if (status)
        snprintf(e->err, sizeof(e->err), "%s", text);
    if (corr == 0 && status == 0)
        return 0;
    /* Per connection, answers keep request order: an answer waits for its
     * own records and for the connection's earlier held answers, never for
     * other connections'. Held LSNs of one connection therefore rise, and
     * core_on_durable releases in list order. */
    struct core_conn *c = conn_find(e, worker, conn);
    uint64_t lsn = e->op_lsn;
    if (c && c->answer_lsn > lsn)
        lsn = c->answer_lsn;
    if (lsn <= e->durable_lsn) {
        e->io->done(e->io_ctx, worker, conn, corr, status, text);
        return status;
    }
    struct core_answer *an = malloc(sizeof(*an) + strlen(text) + 1);
    if (!an) {
        e->io->done(e->io_ctx, worker, conn, corr, -ENOMEM, "out of memory");
        return -ENOMEM;
    }
    *an = (struct core_answer){.worker = worker, .conn = conn, .corr = corr, .lsn = lsn,
                               .status = status};
    memcpy(an->text, text, strlen(text) + 1);
    /* Keep the held answers sorted by LSN (stable: after every answer with
     * an LSN <= this one), so core_on_durable releases from the head and
     * stops at the first one still waiting. LSNs are handed out rising, so
     * this is almost always the tail; a connection's answers keep their
     * order because their LSNs rise. */
    struct dlist *at = e->pending.prev;
    while (at != &e->pending && dl_entry(at, struct core_answer, link)->lsn > lsn)
        at = at->prev;
    dl_insert_before(at->next, &an->link);
    if (c)
        c->answer_lsn = lsn;
    return status;
}

void core_on_durable(struct core_engine *e, uint64_t lsn)
{
    if (lsn > e->durable_lsn)
        e->durable_lsn = lsn;
    /* Held answers are sorted by LSN (answer() inserts them so): release from the
     * head, stop at the first that is not durable yet. next is read before the
     * node is freed; done() must not re-enter. */
    for (struct dlist *n = e->pending.next, *next; n != &e->pending; n = next) {
        next = n->next;
        struct core_answer *an = dl_entry(n, struct core_answer, link);
        if (an->lsn > e->durable_lsn)
            break;
        dl_remove(n);
        e->io->done(e->io_ctx, an->worker, an->conn, an->corr, an->status, an->text);
        free(an);
    }
}

int64_t now_ms(struct core_engine *e)
{
    if (e->io->now_ms)
        return e->io->now_ms(e->io_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- names ---- */

char *bytes_dup(struct msgproto_bytes b)
{
    return strndup(b.len ? (const char *)b.p : "", b.len);
}

void split_fqqn(const char *addr, char **address, char **queue)
{
    const char *sep = strstr(addr, "::");
    if (sep) {
        *address = strndup(addr, (size_t)(sep - addr));
        *queue = strdup(sep + 2);
    } else {
        *address = strdup(addr);
        *queue = strdup("");
    }
}

/* ---- addresses and queues ---- */

struct core_address *address_get(struct core_engine *e, const char *name, bool create)
{
    struct core_address *a = hmap_get(&e->addresses, name, strlen(name));
    if (a || !create)
        return a;
    a = calloc(1, sizeof(*a));
    if (!a || !(a->name = strdup(name))) {
        free(a);
        return NULL;
    }
    dl_init(&a->queues);
    if (hmap_put(&e->addresses, name, strlen(name), a) < 0) {
        free(a->name);
        free(a);
        return NULL;
    }
    return a;
}

static int64_t persist_queue_add(struct core_engine *e, const struct core_queue *q)
{
    struct core_queue_info info = {.id = q->id, .name = q->name, .address = q->addr->name,
                                   .filter = q->filter_text, .routing = q->routing};
    return e->persist->queue_add(e->persist_ctx, &info);
}

struct core_queue *queue_create(struct core_engine *e, struct core_address *a, const char *name,
                                uint8_t routing, bool durable, bool temporary, const char *filter,
                                uint64_t id)
{
    struct core_queue *q = calloc(1, sizeof(*q));
    if (!q || !(q->name = strdup(name))) {
        free(q);
        return NULL;
    }
    if (filter && *filter) {
        q->filter_text = strdup(filter);
        q->filter = core_filter_compile(filter, e->err, sizeof(e->err));
        if (!q->filter_text || !q->filter) {
            free(q->filter_text);
            core_filter_free(q->filter);
            free(q->name);
            free(q);
            return NULL;
        }
    }
    q->id = id ? id : e->next_queue_id++;
    if (q->id >= e->next_queue_id)
        e->next_queue_id = q->id + 1;
    q->addr = a;
    q->routing = routing;
    q->durable = durable;
    q->temporary = temporary;
    dl_init(&q->ready);
    dl_init(&q->consumers);
    dl_init(&q->dirty_link);
    hmap_put(&e->queues, q->name, strlen(q->name), q);
    hmap_put(&e->queue_ids, &q->id, sizeof(q->id), q);
    dl_push_tail(&a->queues, &q->addr_link);
    a->routing |= (uint8_t)(1u << routing);
    if (durable && e->persist && !id)
        persist_track(e, persist_queue_add(e, q));
    return q;
}

/* Removes the queue and everything in it. Consumers must be gone already
 * (conn close) except at engine teardown, where they are closed here. */
void queue_delete(struct core_engine *e, struct core_queue *q)
{
    while (!dl_empty(&q->consumers)) {
        struct core_consumer *c = dl_entry(q->consumers.next, struct core_consumer, qlink);
        hmap_del(&c->conn->consumers, &c->id, sizeof(c->id));
        consumer_close(e, c, false);
    }
    while (!dl_empty(&q->ready))
        ref_remove(e, dl_entry(q->ready.next, struct core_ref, link), RM_DROP);
    if (q->durable && e->persist && !e->no_persist)
        persist_track(e, e->persist->queue_remove(e->persist_ctx, q->id));
    hmap_del(&e->queues, q->name, strlen(q->name));
    hmap_del(&e->queue_ids, &q->id, sizeof(q->id));
    dl_remove(&q->addr_link);
    dl_remove(&q->dirty_link);
    core_filter_free(q->filter);
    free(q->filter_text);
    free(q->name);
    free(q);
}

int core_create_queue(struct core_engine *e, const char *name, const char *address,
                      uint8_t routing, bool durable, const char *filter)
{
    if (!name || !*name || !address || !*address || routing > MSGPROTO_MULTICAST)
        return -EINVAL;
    if (hmap_get(&e->queues, name, strlen(name)))
        return -EEXIST;
    op_begin(e);
    struct core_address *a = address_get(e, address, true);
    if (!a || !queue_create(e, a, name, routing, durable, false, filter, 0))
        return -ENOMEM;
    return e->op_err;
}

/* ---- workers and connections ---- */

struct core_conn *conn_find(struct core_engine *e, uint32_t worker, uint64_t conn)
{
    uint8_t key[12];
    memcpy(key, &worker, 4);
    memcpy(key + 4, &conn, 8);
    return hmap_get(&e->conns, key, sizeof(key));
}

int core_worker_hello(struct core_engine *e, uint32_t worker, uint32_t pid, uint32_t version)
{
    if (worker >= CORE_MAX_WORKERS) {
        log_err("worker %u: index above the maximum %u", worker, CORE_MAX_WORKERS - 1);
        return -ERANGE;
    }
    if (version != MSGPROTO_VERSION) {
        log_err("worker %u (pid %u) speaks msgproto %u, this core %u: refused", worker, pid,
                version, MSGPROTO_VERSION);
        return -EPROTO;
    }
    /* A restarted worker re-attaching: whatever its predecessor left goes. */
    core_worker_gone(e, worker);
    e->blocked[worker] = false;
    return 0;
}

void core_worker_gone(struct core_engine *e, uint32_t worker)
{
    size_t b = 0;
    const struct hmap_ent *it = NULL;
    struct core_conn *c;
    uint64_t ids[64];
    size_t n;
    do { /* collect then close: closing edits the map being walked */
        n = 0;
        b = 0;
        it = NULL;
        while (n < 64 && (c = hmap_next(&e->conns, &b, &it)))
            if (c->worker == worker)
                ids[n++] = c->id;
        for (size_t i = 0; i < n; i++)
            core_conn_close(e, worker, ids[i]);
    } while (n == 64);
}

int core_conn_open(struct core_engine *e, uint32_t worker, uint64_t conn, const char *client_id,
                   const char *user)
{
    (void)user;
    if (worker >= CORE_MAX_WORKERS)
        return -ERANGE;
    if (conn_find(e, worker, conn))
        return -EEXIST;
    struct core_conn *c = calloc(1, sizeof(*c));
    if (!c || !(c->client_id = strdup(client_id ? client_id : ""))) {
        free(c);
        return -ENOMEM;
    }
    c->worker = worker;
    c->id = conn;
    hmap_init(&c->consumers);
    hmap_init(&c->txs);
    uint8_t key[12];
    memcpy(key, &worker, 4);
    memcpy(key + 4, &conn, 8);
    if (hmap_put(&e->conns, key, sizeof(key), c) < 0) {
        free(c->client_id);
        free(c);
        return -ENOMEM;
    }
    return 0;
}

void core_conn_close(struct core_engine *e, uint32_t worker, uint64_t conn)
{
    uint8_t key[12];
    memcpy(key, &worker, 4);
    memcpy(key + 4, &conn, 8);
    struct core_conn *c = hmap_del(&e->conns, key, sizeof(key));
    if (!c)
        return;
    op_begin(e);
    conn_free(e, c);
    op_end(e);
}

/* ---- statistics ---- */

static int cmp_queue_name(const void *a, const void *b)
{
    return strcmp((*(struct core_queue *const *)a)->name, (*(struct core_queue *const *)b)->name);
}

int core_queue_stats(struct core_engine *e, const char *match,
                     void (*cb)(void *ctx, const struct core_queue_stat *st), void *ctx)
{
    struct core_queue **v = malloc((e->queues.n + 1) * sizeof(struct core_queue *));
    if (!v)
        return -ENOMEM;
    size_t n = 0, b = 0;
    const struct hmap_ent *it = NULL;
    struct core_queue *q;
    while ((q = hmap_next(&e->queues, &b, &it)))
        if (!match || !*match || strstr(q->name, match))
            v[n++] = q;
    qsort(v, n, sizeof(struct core_queue *), cmp_queue_name);
    for (size_t i = 0; i < n; i++) {
        q = v[i];
        struct core_queue_stat st = {
            .name = q->name, .address = q->addr->name, .routing = q->routing,
            .durable = q->durable, .consumers = q->nconsumers,
            .messages = q->ready_n + q->delivering_n, .added = q->added,
            .delivering = q->delivering_n, .acked = q->acked,
            .dead_lettered = q->dead_lettered, .expired = q->expired};
        cb(ctx, &st);
    }
    free(v);
    return (int)n;
}

/* ---- recovery ---- */

int core_restore_queue(struct core_engine *e, const struct core_queue_info *qi)
{
    if (!qi->id || !qi->name || !*qi->name || !qi->address || !*qi->address ||
        qi->routing > MSGPROTO_MULTICAST)
        return -EINVAL;
    if (hmap_get(&e->queues, qi->name, strlen(qi->name)) ||
        hmap_get(&e->queue_ids, &qi->id, sizeof(qi->id)))
        return -EEXIST;
    struct core_address *a = address_get(e, qi->address, true);
    if (!a)
        return -ENOMEM;
    if (!queue_create(e, a, qi->name, qi->routing, true, false, qi->filter, qi->id))
        return -EINVAL;
    return 0;
}

int core_restore_message(struct core_engine *e, uint64_t msg_id, const void *data, size_t len)
{
    if (!msg_id || u64map_get(&e->restore_msgs, msg_id))
        return -EEXIST;
    struct core_msg *m = msg_new(e, data, len, msg_id);
    if (!m)
        return -EBADMSG;
    m->durable = m->persisted = true;
    m->refs = 1; /* held by restore_msgs until core_restore_done (or _release) */
    m->restore_held = true;
    if (u64map_put(&e->restore_msgs, msg_id, m) < 0) {
        msg_free(e, m);
        return -ENOMEM;
    }
    e->restore_held++;
    if (msg_id >= e->next_msg_id)
        e->next_msg_id = msg_id + 1;
    return 0;
}

int core_restore_release(struct core_engine *e, uint64_t msg_id)
{
    struct core_msg *m = u64map_get(&e->restore_msgs, msg_id);
    if (!m)
        return -ENOENT;
    if (!m->restore_held || m->refs < 2)
        return -EINVAL; /* only a message some reference keeps */
    m->restore_held = false;
    e->restore_held--;
    m->refs--;
    return 0;
}

/* The restored reference of msg_id in queue_id; removes it from the maps if del. */
static struct core_ref *restored_ref(struct core_engine *e, uint64_t msg_id, uint64_t queue_id,
                                     bool del)
{
    struct core_ref *r = u64map_get(&e->restore_ref1, msg_id);
    if (r && r->q->id == queue_id)
        return del ? u64map_del(&e->restore_ref1, msg_id) : r;
    uint64_t key[2] = {msg_id, queue_id};
    return del ? hmap_del(&e->restore_refs, key, sizeof(key))
               : hmap_get(&e->restore_refs, key, sizeof(key));
}

int core_restore_ref(struct core_engine *e, uint64_t msg_id, uint64_t queue_id,
                     uint32_t delivery_count)
{
    struct core_msg *m = u64map_get(&e->restore_msgs, msg_id);
    struct core_queue *q = hmap_get(&e->queue_ids, &queue_id, sizeof(queue_id));
    if (!m || !q)
        return -ENOENT;
    if (restored_ref(e, msg_id, queue_id, false))
        return -EEXIST;
    e->no_persist = true; /* it is in the store already */
    struct core_ref *r = ref_add(e, q, m);
    e->no_persist = false;
    if (!r)
        return -ENOMEM;
    r->persisted = true;
    r->delivery_count = delivery_count;
    r->delivered_before = delivery_count > 0;
    if (!u64map_get(&e->restore_ref1, msg_id))
        return u64map_put(&e->restore_ref1, msg_id, r);
    uint64_t key[2] = {msg_id, queue_id};
    return hmap_put(&e->restore_refs, key, sizeof(key), r);
}

int core_restore_ack(struct core_engine *e, uint64_t msg_id, uint64_t queue_id)
{
    struct core_ref *r = restored_ref(e, msg_id, queue_id, true);
    if (!r)
        return -ENOENT;
    struct core_msg *m = r->m;
    r->persisted = false; /* already acknowledged in the store */
    /* its last reference (plus the hold, if any): restore_msgs must not keep it */
    bool last = m->refs == 1 + (m->restore_held ? 1u : 0u);
    if (last)
        u64map_del(&e->restore_msgs, msg_id);
    if (last && m->restore_held) {
        m->restore_held = false; /* a standby follows for long: free it now */
        e->restore_held--;
        m->refs--; /* ref_remove below drops the last one and frees it */
    }
    ref_remove(e, r, RM_DROP);
    return 0;
}

int core_restore_delivery_count(struct core_engine *e, uint64_t msg_id, uint64_t queue_id,
                                uint32_t count)
{
    struct core_ref *r = restored_ref(e, msg_id, queue_id, false);
    if (!r)
        return -ENOENT;
    r->delivery_count = count;
    r->delivered_before = count > 0;
    return 0;
}

bool core_restore_has_message(struct core_engine *e, uint64_t msg_id)
{
    return u64map_get(&e->restore_msgs, msg_id) != NULL;
}

bool core_has_queue_id(struct core_engine *e, uint64_t queue_id)
{
    return hmap_get(&e->queue_ids, &queue_id, sizeof(queue_id)) != NULL;
}

size_t core_durable_queue_count(struct core_engine *e)
{
    size_t b = 0, n = 0;
    const struct hmap_ent *it = NULL;
    struct core_queue *q;
    while ((q = hmap_next(&e->queue_ids, &b, &it)))
        n += q->durable;
    return n;
}

int core_restore_duplicate_id(struct core_engine *e, const char *address, const void *id,
                              size_t len)
{
    struct core_address *a = address_get(e, address, true);
    if (!a)
        return -ENOMEM;
    if (len == 0 || len > UINT32_MAX)
        return -EINVAL;
    struct msgproto_bytes b = {id, (uint32_t)len};
    if (!dup_seen(a, b))
        dup_add(e, a, b, false);
    return 0;
}

int core_restore_done(struct core_engine *e)
{
    free_restore_leftovers(e); /* next_msg_id was raised by core_restore_message */
    return 0;
}
