/*
 * bench_core — CPU cost of the engine per message, through the same entry
 * point the glue uses (core_handle_record on encoded ring records), with no
 * rings and no disk: the persist ops hand out LSNs and the "store" reports
 * durability every 256 records (group commit). Prints, in CPU time of the
 * engine's thread, msgs per CPU-second and CPU ns per message for:
 *   1. non-durable send → deliver → ack (one producer, one consumer, window 1000)
 *   2. durable send → deliver → ack (durable queue)
 *   3. draining 100k stored durable messages (subscribe, deliver, ack)
 * Usage: bench_core [messages] (default 200000). Not a test: figures only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "hamq/msgproto.h"

struct bench {
    struct core_engine *e;
    uint64_t *pending; /* delivery ids to ack */
    size_t npending, cap;
    int64_t lsn;
    uint64_t answers, delivered;
};

static int b_deliver(void *ctx, const struct core_delivery *d)
{
    struct bench *b = ctx;
    if (b->npending == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1024;
        b->pending = realloc(b->pending, b->cap * sizeof(*b->pending));
    }
    b->pending[b->npending++] = d->delivery_id;
    b->delivered++;
    return 0;
}

static void b_done(void *ctx, uint32_t w, uint64_t c, uint64_t corr, int st, const char *t)
{
    (void)w, (void)c, (void)corr, (void)st, (void)t;
    ((struct bench *)ctx)->answers++;
}

static void b_closed(void *ctx, uint32_t w, uint64_t c, uint64_t k, int st, const char *r)
{
    (void)ctx, (void)w, (void)c, (void)k, (void)st, (void)r;
}

static int64_t next_lsn(struct bench *b) { return ++b->lsn; }
static int64_t p_q(void *c, const struct core_queue_info *q) { (void)q; return next_lsn(c); }
static int64_t p_qr(void *c, uint64_t id) { (void)id; return next_lsn(c); }
static int64_t p_m(void *c, uint64_t id, const void *d, size_t l) { (void)id, (void)d, (void)l; return next_lsn(c); }
static int64_t p_r(void *c, uint64_t m, uint64_t q) { (void)m, (void)q; return next_lsn(c); }
static int64_t p_c(void *c, uint64_t m, uint64_t q, uint32_t n) { (void)m, (void)q, (void)n; return next_lsn(c); }
static int64_t p_d(void *c, const char *a, const void *i, size_t l) { (void)a, (void)i, (void)l; return next_lsn(c); }

static const struct core_io_ops io = {b_deliver, b_done, b_closed, NULL};
static const struct core_persist_ops ps = {p_q, p_qr, p_m, p_r, p_r, p_c, p_d};

/* CPU time of this thread: the figure that matters on a shared 2-core
 * machine (wall time there depends on what else runs). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void feed(struct bench *b, const struct msgproto_rec *r)
{
    static uint8_t buf[4096];
    ssize_t n = msgproto_encode(r, buf, sizeof(buf));
    if (n < 0 || core_handle_record(b->e, 0, buf, (size_t)n, NULL, NULL) < 0) {
        fprintf(stderr, "bench: record refused\n");
        exit(1);
    }
}

static void ack_pending(struct bench *b, uint64_t consumer)
{
    for (size_t i = 0; i < b->npending; i++) {
        struct msgproto_rec r = {.type = MSGPROTO_ACK};
        r.u.settle = (struct msgproto_settle){1, consumer, b->pending[i], 0, 0};
        feed(b, &r);
    }
    b->npending = 0;
}

static void setup(struct bench *b, uint64_t consumer, bool subscribe)
{
    struct core_config cfg;
    core_config_defaults(&cfg);
    memset(b, 0, sizeof(*b));
    b->e = core_new(&cfg, &io, b, &ps, b);
    struct msgproto_rec r = {.type = MSGPROTO_CONN_OPEN, .u.conn = {1, msgproto_str("c"), msgproto_str("u")}};
    feed(b, &r);
    if (!subscribe)
        return;
    r = (struct msgproto_rec){.type = MSGPROTO_SUBSCRIBE};
    r.u.sub = (struct msgproto_subscribe){.conn = 1, .consumer = consumer, .credit = 1000,
                                          .options = MSGPROTO_SUB_WINDOW,
                                          .address = msgproto_str("bench")};
    feed(b, &r);
}

static void send_n(struct bench *b, long n, bool durable, bool ack, uint8_t *msg, size_t mlen)
{
    for (long i = 0; i < n; i++) {
        struct msgproto_rec r = {.type = MSGPROTO_SEND, .flags = durable ? MSGPROTO_F_DURABLE : 0};
        r.u.send = (struct msgproto_send){.conn = 1, .corr = (uint64_t)i + 1, .priority = 4,
                                          .address = msgproto_str("bench"),
                                          .message = {msg, (uint32_t)mlen}};
        feed(b, &r);
        if (i % 256 == 255)
            core_on_durable(b->e, (uint64_t)b->lsn);
        if (ack && b->npending >= 64)
            ack_pending(b, 7);
    }
    core_on_durable(b->e, (uint64_t)b->lsn);
    if (ack)
        ack_pending(b, 7);
}

static void report(const char *what, long n, double secs)
{
    printf("%-44s %8ld msgs  %9.0f msgs/s-of-cpu  %7.0f cpu-ns/msg\n", what, n,
           (double)n / secs, secs * 1e9 / (double)n);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0 || n > 10000000) {
        fprintf(stderr, "usage: bench_core [messages 1..10000000]\n");
        return 2;
    }
    uint8_t body[1024], msg[2048];
    memset(body, 'x', sizeof(body));
    struct hmsg m = {.priority = 4, .address = msgproto_str("bench"),
                     .body = {body, sizeof(body)}, .body_type = HMSG_BODY_BINARY};
    size_t mlen = (size_t)hmsg_encode(&m, msg, sizeof(msg));
    struct bench b;

    for (int durable = 0; durable < 2; durable++) {
        setup(&b, 7, true);
        double t0 = now_s();
        send_n(&b, n, durable, true, msg, mlen);
        double t1 = now_s();
        report(durable ? "durable send+deliver+ack (1 KiB)" : "non-durable send+deliver+ack (1 KiB)",
               n, t1 - t0);
        if (b.delivered != (uint64_t)n || b.answers != (uint64_t)n) {
            fprintf(stderr, "bench: delivered %llu answered %llu of %ld\n",
                    (unsigned long long)b.delivered, (unsigned long long)b.answers, n);
            return 1;
        }
        core_free(b.e);
        free(b.pending);
    }

    long stored = n < 100000 ? n : 100000;
    setup(&b, 7, false);
    struct msgproto_rec r = {.type = MSGPROTO_SUBSCRIBE};
    r.u.sub = (struct msgproto_subscribe){.conn = 1, .consumer = 8, .credit = 0, .options = MSGPROTO_SUB_WINDOW,
                                          .address = msgproto_str("bench")};
    send_n(&b, stored, true, false, msg, mlen);
    double t0 = now_s();
    r.u.sub.consumer = 7;
    r.u.sub.credit = 1000;
    feed(&b, &r);
    while (b.npending)
        ack_pending(&b, 7);
    double t1 = now_s();
    report("drain stored durable (subscribe+deliver+ack)", stored, t1 - t0);
    if (b.delivered != (uint64_t)stored) {
        fprintf(stderr, "bench: drained %llu of %ld\n", (unsigned long long)b.delivered, stored);
        return 1;
    }
    core_free(b.e);
    free(b.pending);
    return 0;
}
