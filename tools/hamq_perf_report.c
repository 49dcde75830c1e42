/*
 * hamq_perf_report — the figures of `hamq perf`, computed by the main thread
 * from the threads' counters (atomics, read while they run) and latency
 * samples: per second (rates, and with --show-latency the new samples under
 * each thread's lock) and at the end (totals, and the percentiles of every
 * thread's samples merged into one sorted array, never an average of
 * per-thread figures).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq_perf.h"

struct totals hqp_sum(struct perf *th, int n)
{
    struct totals t = {0};

    for (int i = 0; i < n; i++) {
        t.sent += LD(th[i].sent);
        t.completed += LD(th[i].completed);
        t.received += LD(th[i].received);
        t.refused += LD(th[i].refused);
    }
    return t;
}

void hqp_report_second(const struct perf_shared *sh, bool tty, struct totals now_t,
                       struct totals *last, int64_t now)
{
    uint64_t s = now_t.sent - last->sent, c = now_t.completed - last->completed,
             r = now_t.received - last->received;

    *last = now_t;
    if (tty) {
        printf("\r[%3" PRId64 " s] sent %7" PRIu64 "/s  completed %7" PRIu64
               "/s  received %7" PRIu64 "/s  total received %" PRIu64 "   ",
               (now - sh->start_ms) / 1000, s, c, r, now_t.received);
    } else {
        printf("--- warmup %s\n", now < sh->warm_end_ms ? "true" : "false");
        if (sh->produce)
            printf("--- sent:      %7" PRIu64 " msg/sec\n--- completed: %7" PRIu64 " msg/sec\n", s,
                   c);
        if (sh->consume)
            printf("--- received:  %7" PRIu64 " msg/sec\n", r);
    }
    fflush(stdout);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* The samples of one thread to merge: all, or (recent) those not reported yet. */
static size_t take_range(struct perf *p, bool ack, bool recent, size_t *from)
{
    const struct samples *s = ack ? &p->ack : &p->transfer;
    size_t *seen = ack ? &p->ack_seen : &p->transfer_seen;

    *from = recent ? *seen : 0;
    if (recent)
        *seen = s->n;
    return s->n - *from;
}

/*
 * All threads' samples of one kind in one sorted array: the percentiles of
 * the whole run (or, recent, of the last second), never an average of
 * per-thread figures. recent runs while the threads do: under their locks.
 */
static struct samples merge(struct perf *th, int n, bool ack, bool recent)
{
    struct samples m = {0};
    size_t cap = 0;

    for (int i = 0; i < n; i++) {
        if (recent)
            pthread_mutex_lock(&th[i].lock);
        const struct samples *s = ack ? &th[i].ack : &th[i].transfer;
        size_t from, k = take_range(&th[i], ack, recent, &from);
        if (k && m.n + k > cap) {
            size_t nc = cap ? cap : 1024;
            while (nc < m.n + k)
                nc *= 2;
            uint32_t *nv = realloc(m.v, nc * sizeof(*nv));
            if (nv) {
                m.v = nv;
                cap = nc;
            }
        }
        if (k && m.n + k <= cap) {
            memcpy(m.v + m.n, s->v + from, k * sizeof(*s->v));
            m.n += k;
        }
        if (recent)
            pthread_mutex_unlock(&th[i].lock);
    }
    m.cap = cap;
    if (m.n > 1)
        qsort(m.v, m.n, sizeof(*m.v), cmp_u32);
    return m;
}

static void percentiles(const char *prefix, const char *what, const struct samples *s)
{
    static const double q[] = {50.0, 90.0, 99.0, 99.9};
    double total = 0;

    if (!s->n)
        return;
    for (size_t i = 0; i < s->n; i++)
        total += s->v[i];
    printf("--- %s%s: mean %.0f us", prefix, what, total / (double)s->n);
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
        printf(" - %.2f%%: %" PRIu32 " us", q[i],
               s->v[(size_t)((double)(s->n - 1) * q[i] / 100.0)]);
    printf(" - max: %" PRIu32 " us - samples: %zu\n", s->v[s->n - 1], s->n);
}

/* --show-latency, every second (not on a terminal): the last second's percentiles. */
void hqp_second_latencies(const struct perf_shared *sh, struct perf *th)
{
    struct samples ack = merge(th, sh->nth, true, true);
    struct samples tr = merge(th, sh->nth, false, true);

    percentiles("", "send ack time", &ack);
    percentiles("", "transfer time", &tr);
    free(ack.v);
    free(tr.v);
    fflush(stdout);
}

void hqp_summary(const struct perf_shared *sh, struct perf *th, bool tty, int64_t ms, int rc)
{
    double secs = ms > 0 ? (double)ms / 1000.0 : 1.0;
    struct totals t = hqp_sum(th, sh->nth);

    if (tty)
        printf("\n");
    printf("--- SUMMARY\n");
    printf("--- result: %s\n", t.refused || rc ? "failure" : "success");
    if (sh->produce && sh->consume)
        printf("--- threads: %d producer%s, %d consumer%s (one connection each)\n", sh->threads,
               sh->threads > 1 ? "s" : "", sh->threads, sh->threads > 1 ? "s" : "");
    else if (sh->threads > 1)
        printf("--- threads: %d (one connection each)\n", sh->threads);
    if (sh->produce) {
        printf("--- total sent:      %" PRIu64 " (%.0f msg/sec)\n", t.sent, (double)t.sent / secs);
        printf("--- total completed: %" PRIu64 " (%.0f msg/sec)\n", t.completed,
               (double)t.completed / secs);
        if (t.refused)
            printf("--- total refused:   %" PRIu64 "\n", t.refused);
    }
    if (sh->consume)
        printf("--- total received:  %" PRIu64 " (%.0f msg/sec)\n", t.received,
               (double)t.received / secs);
    struct samples ack = merge(th, sh->nth, true, false);
    struct samples tr = merge(th, sh->nth, false, false);
    percentiles("aggregated ", "send ack time", &ack);
    percentiles("aggregated ", "transfer time", &tr);
    free(ack.v);
    free(tr.v);
}
