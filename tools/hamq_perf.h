/*
 * hamq_perf.h — what `hamq perf`'s threads (hamq_perf.c) and its reporting
 * (hamq_perf_report.c) share: the per-run state, one struct per thread, and
 * the report functions the main thread calls. Private to tools/.
 */
#ifndef HAMQ_TOOLS_HAMQ_PERF_H
#define HAMQ_TOOLS_HAMQ_PERF_H

#include <proton/link.h>
#include <proton/message.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq.h"

struct samples {
    uint32_t *v;
    size_t n, cap;
};

/*
 * What every thread reads (set before the threads start, then read-only) and
 * the few counters they share. recv_taken counts the messages accepted on a
 * queue by all consumers together; consumers_ready the consumer links the
 * broker attached.
 */
struct perf_shared {
    const struct hq_opts *o;
    bool produce, consume; /* the mode: perf producer, consumer or client (both) */
    int threads;           /* --threads T */
    int nth;               /* threads run: T, or 2T in perf client (T producers, T consumers) */
    struct perf *all;      /* the nth threads, for the end of a --duration run */
    int64_t start_ms, warm_end_ms, end_ms;
    atomic_uint_fast64_t recv_taken;
    atomic_int consumers_ready;
    atomic_bool stop; /* a thread failed or the broker closed a link: everyone ends */
};

/*
 * One thread: one connection with one link, a producer's or a consumer's. The
 * counters are atomics because the main thread reads them every second; only
 * this thread writes them.
 */
struct perf {
    struct hq_app app;
    struct perf_shared *sh;
    int index;
    bool produce, consume; /* this thread's role: exactly one is set */
    uint64_t quota; /* messages this producer sends (UINT64_MAX: no --message-count) */
    long rate;      /* this producer's share of --rate, 0 = unbounded */
    pn_link_t *snd, *rcv;
    pn_message_t *msg;
    atomic_uint_fast64_t sent, completed, received, refused;
    bool rcv_ready;
    int64_t *sent_at_us; /* by tag % RING_SLOTS: send time of unsettled deliveries */
    struct samples ack, transfer;
    /* --show-latency: the main thread reads the samples of the last second */
    pthread_mutex_t lock;
    size_t ack_seen, transfer_seen; /* main thread: samples already reported */
    char rx[16384];
    char *tmpl; /* the encoded message, sent with its timestamp patched in */
    size_t tmpl_len, ts_off;
    pthread_t tid;
    bool started;
    int rc;
    atomic_bool finished;
};

#define LD(x)  atomic_load_explicit(&(x), memory_order_relaxed)
#define INC(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)

struct totals {
    uint64_t sent, completed, received, refused;
};

/* hamq_perf_report.c: the main thread's view (the counters are read while threads run). */
struct totals hqp_sum(struct perf *th, int n);
/* Every second: rates (a progress line on a terminal, else Artemis' "--- ..." lines). */
void hqp_report_second(const struct perf_shared *sh, bool tty, struct totals now_t,
                       struct totals *last, int64_t now);
/* --show-latency: percentiles of the samples every thread took since the last call. */
void hqp_second_latencies(const struct perf_shared *sh, struct perf *th);
/* After the threads ended: totals and the percentiles of all samples, merged. */
void hqp_summary(const struct perf_shared *sh, struct perf *th, bool tty, int64_t ms, int rc);

#endif
