/*
 * journal_store — the engine's persistence on the store, and recovery of the
 * engine from the store at start. See journal.h and daemons/store/store.h.
 *
 * Bindings (queues) are written synchronously by the store; their "LSN" for
 * the engine is the durable watermark at that moment, so an answer that waits
 * for a queue creation is released at once.
 *
 * Recovery order (core.h): queues, then for every live reference in message
 * id order (ids rise with arrival, so this is journal order, the order a
 * queue must be rebuilt in) the message body once, then the reference.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "journal.h"

_Static_assert(CORE_DUP_ID_MAX == JNL_DUP_ID_MAX, "the engine accepts the ids the journal keeps");

/*
 * The LSN must be read after the append that sets it: never pass both as
 * arguments of one call (their evaluation order is unspecified in C, and
 * reading 0 here released receipts before their records were durable).
 */
static int64_t lsn_or_err(int r, const uint64_t *lsn)
{
    return r < 0 ? r : (int64_t)*lsn;
}

static int64_t sync_lsn(struct store *s)
{
    uint64_t d = store_durable_lsn(s);
    return d ? (int64_t)d : 1;
}

static int64_t p_queue_add(void *ctx, const struct core_queue_info *q)
{
    struct journald *j = ctx;
    struct store_binding b = {
        .queue_id = q->id,
        .address = q->address,
        .name = q->name,
        .filter = q->filter ? q->filter : "",
        .routing = q->routing == MSGPROTO_MULTICAST ? STORE_MULTICAST : STORE_ANYCAST,
        .durable = true,
    };
    int r = store_bindings_add(j->store, &b);

    return r < 0 ? r : sync_lsn(j->store);
}

static int64_t p_queue_remove(void *ctx, uint64_t queue_id)
{
    struct journald *j = ctx;
    int r = store_bindings_remove(j->store, queue_id);

    return r < 0 ? r : sync_lsn(j->store);
}

static int64_t p_message(void *ctx, uint64_t msg_id, const void *data, size_t len)
{
    struct journald *j = ctx;
    uint64_t lsn = 0;

    int r = store_add_message(j->store, msg_id, data, len, &lsn);

    return lsn_or_err(r, &lsn);
}

static int64_t p_ref(void *ctx, uint64_t msg_id, uint64_t queue_id)
{
    struct journald *j = ctx;
    uint64_t lsn = 0;

    int r = store_add_ref(j->store, msg_id, queue_id, &lsn);

    return lsn_or_err(r, &lsn);
}

static int64_t p_ack(void *ctx, uint64_t msg_id, uint64_t queue_id)
{
    struct journald *j = ctx;
    uint64_t lsn = 0;

    int r = store_ack(j->store, msg_id, queue_id, &lsn);

    return lsn_or_err(r, &lsn);
}

static int64_t p_dcount(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t count)
{
    struct journald *j = ctx;
    uint64_t lsn = 0;

    int r = store_set_delivery_count(j->store, msg_id, queue_id, count, &lsn);

    return lsn_or_err(r, &lsn);
}

/*
 * The engine calls this after the message's own records (core-route.c), so a
 * crash that loses the id record also lost every later record: the producer got
 * no receipt and its resend is then the only copy. An address longer than the
 * journal's limit keeps its ids in memory only (logged once).
 */
static int64_t p_dup(void *ctx, const char *address, const void *id, size_t len)
{
    static bool warned;
    struct journald *j = ctx;
    uint64_t lsn = 0;

    int r = store_add_duplicate_id(j->store, address, id, len, &lsn);
    if (r == -ENAMETOOLONG && strlen(address) > JNL_DUP_ADDRESS_MAX) {
        if (!warned)
            log_warn("duplicate ids of address %.64s... (over %u bytes) are kept in memory only",
                     address, JNL_DUP_ADDRESS_MAX);
        warned = true;
        return 0;
    }
    return lsn_or_err(r, &lsn);
}

const struct core_persist_ops jd_persist_ops = {
    .queue_add = p_queue_add,
    .queue_remove = p_queue_remove,
    .message = p_message,
    .ref = p_ref,
    .ack = p_ack,
    .delivery_count = p_dcount,
    .duplicate_id = p_dup,
};

static void on_durable(void *ctx, uint64_t lsn)
{
    struct journald *j = ctx;

    jd_lsn_publish(j, lsn);
    if (j->engine)
        core_on_durable(j->engine, lsn);
}

static void on_store_event(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    struct journald *j = ctx;
    int r;

    (void)loop;
    (void)fd;
    (void)events;
    r = store_on_event(j->store);
    if (r < 0 && !j->stopping)
        jd_shutdown(j, r == -ESTALE ? HAMQ_EXIT_FENCED : HAMQ_EXIT_IO,
                    r == -ESTALE ? "fenced: a newer live raised the store epoch"
                                 : "a journal write failed");
}

static void on_epoch_timer(struct evloop *loop, void *ctx)
{
    struct journald *j = ctx;

    (void)loop;
    if (store_check_epoch(j->store) == 1 && !j->stopping)
        jd_shutdown(j, HAMQ_EXIT_FENCED, "fenced: a newer live raised the store epoch");
}

/*
 * Values the config parser accepts one by one but that cannot work together (or
 * with the ring and journal formats): refused at start, naming the keys.
 */
int jd_config_check(const struct hamq_config *c, char *err, size_t errlen)
{
    uint64_t ring = c->ring_size;
    /* a ring record is at most a quarter of the ring (shm/ring.c); a fragment must
       carry its header (< 64 bytes) and a useful chunk */
    if (ring & (ring - 1)) {
        snprintf(err, errlen, "[broker] ring_size = %llu: must be a power of two (e.g. 4M)",
                 (unsigned long long)ring);
        return -EINVAL;
    }
    if (ring / 4 < RING_HEADER_BYTES + 4096) {
        snprintf(err, errlen, "[broker] ring_size = %llu: too small for the fragment protocol "
                 "(a ring record is a quarter of the ring and must hold a 4 KiB fragment)",
                 (unsigned long long)ring);
        return -EINVAL;
    }
    if (c->max_message_size > UINT32_MAX - 65536) {
        snprintf(err, errlen, "[broker] max_message_size = %llu: over the 4 GiB a large "
                 "message file of the journal can hold",
                 (unsigned long long)c->max_message_size);
        return -EINVAL;
    }
    if (c->max_memory && c->max_memory < c->max_message_size)
        log_warn("[broker] max_memory = %llu is below [broker] max_message_size = %llu: one "
                 "message of the maximum size blocks every producer until it is consumed",
                 (unsigned long long)c->max_memory, (unsigned long long)c->max_message_size);
    return 0;
}

void jd_core_config(const struct journald *j, struct core_config *cc)
{
    core_config_defaults(cc);
    cc->auto_create = j->cfg.auto_create;
    cc->max_delivery_attempts = (uint32_t)j->cfg.max_delivery_attempts;
    cc->max_message_size = j->cfg.max_message_size;
    cc->max_memory = j->cfg.max_memory;
    cc->id_cache_size = (uint32_t)j->cfg.id_cache_size;
    snprintf(cc->dead_letter_address, sizeof(cc->dead_letter_address), "%s",
             j->cfg.dead_letter_address);
}

uint32_t jd_dup_limit(const struct journald *j)
{
    return (uint32_t)j->cfg.id_cache_size; /* what jd_core_config gives the engine */
}

struct core_engine *jd_engine_new(struct journald *j)
{
    struct core_config cc;

    jd_core_config(j, &cc);
    return core_new(&cc, &jd_io_ops, j, &jd_persist_ops, j);
}

int jd_store_open(struct journald *j, struct store_follower **adopt, char *err, size_t errlen)
{
    struct store_opts o;
    int r;

    store_opts_init(&o, &j->cfg);
    o.dup_ids_per_address = jd_dup_limit(j); /* the engine's cache, kept across restarts */
    o.dir = j->cfg.store;
    o.on_durable = on_durable;
    o.ctx = j;
    r = adopt ? store_open_adopt(&o, adopt, &j->store, err, errlen)
              : store_open(&o, &j->store, err, errlen);
    if (r < 0)
        return r;
    if ((r = evloop_add_fd(j->loop, store_event_fd(j->store), EPOLLIN, on_store_event, j,
                           NULL)) < 0 ||
        (r = evloop_add_timer(j->loop, 500, 500, on_epoch_timer, j, NULL)) < 0) {
        snprintf(err, errlen, "event loop: %s", strerror(-r));
        return r;
    }
    return 0;
}

int jd_restore_binding(void *ctx, const struct store_binding *b)
{
    struct journald *j = ctx;
    if (core_has_queue_id(j->engine, b->queue_id))
        return 0; /* a warm standby's engine has it already */
    struct core_queue_info q = {
        .id = b->queue_id,
        .name = b->name,
        .address = b->address,
        .filter = b->filter && b->filter[0] ? b->filter : NULL,
        .routing = b->routing == STORE_MULTICAST ? MSGPROTO_MULTICAST : MSGPROTO_ANYCAST,
    };
    int r = core_restore_queue(j->engine, &q);

    if (r < 0)
        log_err("cannot restore queue %s (id %llu): %s", b->name,
                (unsigned long long)b->queue_id, strerror(-r));
    return r < 0 ? r : 0;
}

int jd_collect_ref(void *ctx, const struct store_live_ref *ref)
{
    struct jd_ref_list *l = ctx;

    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 1024;
        struct store_live_ref *nv = realloc(l->v, ncap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = *ref;
    return 0;
}

static int by_msg_id(const void *a, const void *b)
{
    const struct store_live_ref *x = a, *y = b;

    return x->msg_id < y->msg_id ? -1 : x->msg_id > y->msg_id;
}

static long read_body_store(void *src, uint64_t msg_id, void *buf, size_t len)
{
    return store_read_body(src, msg_id, buf, len);
}

int jd_restore_refs(struct journald *j, struct jd_ref_list *l, jd_body_reader read_body,
                    void *src)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t last = 0;
    int r = 0;

    if (l->n == 0)
        return 0; /* qsort(NULL, 0) is undefined behaviour */
    qsort(l->v, l->n, sizeof(*l->v), by_msg_id);
    for (size_t i = 0; i < l->n && r == 0; i++) {
        const struct store_live_ref *ref = &l->v[i];
        if (ref->msg_id != last) {
            if (ref->body_len > cap) {
                uint8_t *nb = realloc(buf, ref->body_len);
                if (!nb) {
                    r = -ENOMEM;
                    break;
                }
                buf = nb;
                cap = ref->body_len;
            }
            long n = read_body(src, ref->msg_id, buf, cap);
            if (n < 0) {
                log_err("cannot read message %llu back from the store: %s",
                        (unsigned long long)ref->msg_id, strerror((int)-n));
                r = (int)n;
                break;
            }
            r = core_restore_message(j->engine, ref->msg_id, buf, (size_t)n);
            if (r == 0)
                r = core_restore_ref(j->engine, ref->msg_id, ref->queue_id,
                                     ref->delivery_count);
            if (r == 0) /* its reference keeps it now: nothing left for restore_done */
                r = core_restore_release(j->engine, ref->msg_id);
            last = ref->msg_id;
            continue;
        }
        if (r == 0)
            r = core_restore_ref(j->engine, ref->msg_id, ref->queue_id, ref->delivery_count);
    }
    free(buf);
    return r;
}

int jd_restore_dup(void *ctx, const char *address, const void *id, size_t len)
{
    struct journald *j = ctx;
    int r = core_restore_duplicate_id(j->engine, address, id, len);

    if (r < 0)
        log_err("cannot restore a duplicate id of address %s: %s", address, strerror(-r));
    return r < 0 ? r : 0;
}

int jd_store_restore(struct journald *j)
{
    struct jd_ref_list l = {0};
    int r;

    r = store_foreach_binding(j->store, jd_restore_binding, j);
    if (r == 0)
        r = store_foreach_live(j->store, jd_collect_ref, &l);
    if (r == 0)
        r = jd_restore_refs(j, &l, read_body_store, j->store);
    if (r == 0)
        r = store_foreach_duplicate_id(j->store, jd_restore_dup, j);
    if (r == 0)
        r = core_restore_done(j->engine);
    if (r == 0)
        log_info("recovered %zu message reference(s) on durable queues and %llu duplicate "
                 "id(s) from %s",
                 l.n, (unsigned long long)store_duplicate_ids(j->store), j->cfg.store);
    free(l.v);
    return r;
}

void jd_store_close(struct journald *j)
{
    if (j->store)
        store_close(j->store);
    j->store = NULL;
}
