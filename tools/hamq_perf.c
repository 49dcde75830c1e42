/*
 * hamq_perf — `hamq perf producer|consumer|client [DESTINATION]`, modelled on
 * `artemis perf` (artemis-compat §1.6): positional destination (default
 * queue://TEST), --duration / --message-count to stop (neither: until
 * Ctrl-C), --warmup, --message-size (1024), --persistent, --max-pending
 * (unsettled sends in flight per producer, 1; 0 = unbounded), --rate,
 * --show-latency, --threads T.
 *
 * --threads T: T POSIX threads, each with its own connection (its own
 * container id) and its own Proton driver loop, one link each. `perf client`
 * runs T producer threads and T consumer threads: as in Artemis (whose
 * consumers have their own connections, --consumer-connections), producers
 * and consumers never share a connection, so the broker may serve them on
 * different workers. --message-count N is the total, as in Artemis: the
 * producers send N between them (N/T each, the remainder to the first ones;
 * Artemis drops the remainder); on a queue the consumers accept N between
 * them (a reservation counter shared by the threads, a message beyond it is
 * released, not counted), on a topic every consumer receives all N. --rate
 * is the total too. In `perf client` the producers start once every
 * consumer link is attached, so a topic loses nothing to a late subscriber.
 *
 * Figures: the main thread sums the threads' counters every second
 * ("--- sent / completed / received: N msg/sec", or one progress line
 * rewritten in place when stdout is a terminal), then "--- SUMMARY" with
 * totals and latency percentiles over every sample of every thread (merged,
 * then sorted: never an average of per-thread percentiles): "send ack time"
 * (send → accepted: for a persistent message, the broker's journal write)
 * and "transfer time" (send → received, from the hamq-ts-us property, same
 * host clocks). Samples taken during --warmup are not counted.
 *
 * Locks: one mutex per thread (struct perf.lock), used only with
 * --show-latency, by that thread around each sample it appends and by the
 * main thread around reading them; nobody ever holds two, so there is no
 * order to keep. Everything else the threads share is an atomic.
 */
#include "config.h"

#include <inttypes.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hamq_perf.h"

#define SAMPLES_MAX       (16u << 20)
#define UNBOUNDED_PENDING 10000
#define RING_SLOTS        65536u
#define CONSUMER_CREDIT   1000
#define DRAIN_GRACE_MS    2000

#define TS_KEY      "hamq-ts-us"
#define TS_SENTINEL 0x5a5aa5a51234fedcLL

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sample(struct samples *s, int64_t us)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 65536;
        uint32_t *nv = nc <= SAMPLES_MAX ? realloc(s->v, nc * sizeof(*nv)) : NULL;
        if (!nv)
            return;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* With --show-latency the main thread reads the arrays every second: under the lock. */
static void add_sample(struct perf *p, struct samples *s, int64_t us)
{
    if (!p->sh->o->show_latency) {
        sample(s, us);
        return;
    }
    pthread_mutex_lock(&p->lock);
    sample(s, us);
    pthread_mutex_unlock(&p->lock);
}

static bool stopping(const struct perf *p)
{
    return interrupted || atomic_load(&p->sh->stop);
}

static void setup(struct hq_app *app, pn_connection_t *conn)
{
    struct perf *p = (struct perf *)app;
    const struct hq_opts *o = p->sh->o;
    pn_session_t *s = pn_session(conn);
    char name[64];

    pn_session_open(s);
    if (p->produce) {
        snprintf(name, sizeof(name), "hamq-perf-producer-%d", p->index);
        p->snd = pn_sender(s, name);
        pn_terminus_set_address(pn_link_target(p->snd), o->address);
        hq_set_caps(pn_link_target(p->snd), o->topic);
        pn_link_open(p->snd);
    }
    if (p->consume) {
        snprintf(name, sizeof(name), "hamq-perf-consumer-%d", p->index);
        p->rcv = pn_receiver(s, name);
        pn_terminus_set_address(pn_link_source(p->rcv), o->address);
        hq_set_caps(pn_link_source(p->rcv), o->topic);
        pn_link_open(p->rcv);
        pn_link_flow(p->rcv, CONSUMER_CREDIT);
    }
}

static bool may_send(struct perf *p, int64_t now)
{
    const struct hq_opts *o = p->sh->o;
    uint64_t sent = LD(p->sent);
    uint64_t pending = sent - LD(p->completed) - LD(p->refused);
    uint64_t window = o->max_pending > 0 ? (uint64_t)o->max_pending : UNBOUNDED_PENDING;

    if (sent >= p->quota)
        return false;
    if (pending >= window || pending >= RING_SLOTS || pn_link_credit(p->snd) <= 0)
        return false;
    if (p->sh->consume && atomic_load(&p->sh->consumers_ready) < p->sh->threads)
        return false; /* perf client: not before every consumer is attached */
    if (p->rate > 0 && (double)sent > (double)(now - p->sh->start_ms) * (double)p->rate / 1000.0)
        return false;
    return now < p->sh->end_ms && !stopping(p);
}

static void put_be64(char *at, int64_t v)
{
    for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
        at[i] = (char)(v & 0xff);
}

/*
 * Encodes the one message perf sends, once per thread: durable as asked, the
 * payload as a data section, application property hamq-ts-us (long). Each
 * send patches the timestamp's 8 bytes, so the client's CPU goes to the
 * protocol, not to encoding.
 */
static int build_template(struct perf *p, const char *payload)
{
    const struct hq_opts *o = p->sh->o;
    pn_rwbytes_t buf = {0, NULL};
    char sentinel[8];

    pn_message_clear(p->msg);
    pn_message_set_durable(p->msg, o->persistent);
    pn_data_t *props = pn_message_properties(p->msg);
    pn_data_put_map(props);
    pn_data_enter(props);
    pn_data_put_string(props, pn_bytes(strlen(TS_KEY), TS_KEY));
    pn_data_put_long(props, TS_SENTINEL);
    pn_data_exit(props);
    pn_message_set_inferred(p->msg, true);
    pn_data_put_binary(pn_message_body(p->msg), pn_bytes((size_t)o->message_size, payload));
    ssize_t n = pn_message_encode2(p->msg, &buf);
    put_be64(sentinel, TS_SENTINEL);
    char *at = n > 0 ? memmem(buf.start, (size_t)n, sentinel, 8) : NULL;
    if (!at) {
        free(buf.start);
        return -1;
    }
    p->tmpl = buf.start;
    p->tmpl_len = (size_t)n;
    p->ts_off = (size_t)(at - buf.start);
    return 0;
}

static void send_some(struct perf *p, int64_t now)
{
    while (p->snd && may_send(p, now)) {
        int64_t us = wall_us();
        uint64_t tag = LD(p->sent);
        put_be64(p->tmpl + p->ts_off, us);
        p->sent_at_us[tag % RING_SLOTS] = us;
        pn_delivery(p->snd, pn_dtag((const char *)&tag, sizeof(tag)));
        pn_link_send(p->snd, p->tmpl, p->tmpl_len);
        pn_link_advance(p->snd);
        INC(p->sent);
    }
}

/* The timestamp of a message perf sent: found by its key, without a full decode. */
static int64_t ts_in(const char *b, size_t n)
{
    static const char key[] = "\xa1\x0a" TS_KEY "\x81";
    const char *at = memmem(b, n, key, sizeof(key) - 1);
    int64_t v = 0;

    if (!at || (size_t)(at - b) + sizeof(key) - 1 + 8 > n)
        return 0;
    at += sizeof(key) - 1;
    for (int i = 0; i < 8; i++)
        v = (int64_t)(((uint64_t)v << 8) | (unsigned char)at[i]);
    return v;
}

static int64_t ts_of(pn_message_t *m)
{
    pn_data_t *d = pn_message_properties(m);

    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return 0;
    pn_data_enter(d);
    while (pn_data_next(d)) {
        bool k = pn_data_type(d) == PN_STRING && pn_data_get_string(d).size == 10 &&
                 memcmp(pn_data_get_string(d).start, "hamq-ts-us", 10) == 0;
        if (!pn_data_next(d))
            break;
        if (k && pn_data_type(d) == PN_LONG)
            return pn_data_get_long(d);
    }
    return 0;
}

static void on_send_outcome(struct perf *p, pn_delivery_t *dl, bool warm)
{
    uint64_t state = pn_delivery_remote_state(dl);

    if (!state && !pn_delivery_settled(dl))
        return;
    if (state == PN_ACCEPTED) {
        uint64_t tag = 0;
        pn_delivery_tag_t t = pn_delivery_tag(dl);
        if (t.size == sizeof(tag))
            memcpy(&tag, t.start, sizeof(tag));
        if (warm)
            add_sample(p, &p->ack, wall_us() - p->sent_at_us[tag % RING_SLOTS]);
        INC(p->completed);
    } else {
        INC(p->refused);
    }
    pn_delivery_settle(dl);
}

/*
 * Whether this consumer may take one more message: on a queue the threads
 * share --message-count (a reservation), on a topic each receives all.
 */
static bool take_one(struct perf *p)
{
    uint64_t n = (uint64_t)p->sh->o->message_count;

    if (p->sh->o->topic)
        return !n || LD(p->received) < n;
    return atomic_fetch_add(&p->sh->recv_taken, 1) < n || !n;
}

static void settle_received(struct perf *p, pn_delivery_t *dl, int64_t ts, bool warm)
{
    if (!take_one(p)) {
        pn_delivery_update(dl, PN_RELEASED); /* another consumer reached the total */
        pn_delivery_settle(dl);
        return;
    }
    pn_delivery_update(dl, PN_ACCEPTED);
    pn_delivery_settle(dl);
    INC(p->received);
    if (warm && ts)
        add_sample(p, &p->transfer, wall_us() - ts);
}

static void on_delivery(struct perf *p, pn_delivery_t *dl, int64_t now)
{
    bool warm = now >= p->sh->warm_end_ms;

    if (pn_delivery_link(dl) == p->snd) {
        on_send_outcome(p, dl, warm);
        return;
    }
    if (!pn_delivery_readable(dl))
        return;
    if (!pn_delivery_partial(dl) && pn_delivery_pending(dl) <= sizeof(p->rx)) {
        /* the common case, one whole transfer: find the timestamp, no full decode */
        ssize_t n = pn_link_recv(p->rcv, p->rx, sizeof(p->rx));
        pn_link_advance(p->rcv);
        settle_received(p, dl, n > 0 ? ts_in(p->rx, (size_t)n) : 0, warm);
    } else {
        pn_message_clear(p->msg);
        bool ok = hq_read_message(dl, p->msg);
        if (pn_delivery_partial(dl))
            return;
        if (ok) {
            settle_received(p, dl, ts_of(p->msg), warm);
        } else {
            pn_delivery_update(dl, PN_REJECTED);
            pn_delivery_settle(dl);
        }
    }
    if (pn_link_credit(p->rcv) < CONSUMER_CREDIT / 2)
        pn_link_flow(p->rcv, CONSUMER_CREDIT - pn_link_credit(p->rcv));
}

static void on_event(struct hq_app *app, pn_event_t *e)
{
    struct perf *p = (struct perf *)app;

    switch (pn_event_type(e)) {
    case PN_LINK_FLOW:
        send_some(p, hq_now_ms());
        break;
    case PN_DELIVERY:
        on_delivery(p, pn_event_delivery(e), hq_now_ms());
        break;
    case PN_LINK_REMOTE_OPEN:
        if (pn_event_link(e) == p->rcv && !p->rcv_ready) {
            p->rcv_ready = true;
            atomic_fetch_add(&p->sh->consumers_ready, 1);
        }
        break;
    case PN_LINK_REMOTE_CLOSE: {
        pn_condition_t *c = pn_link_remote_condition(pn_event_link(e));
        if (pn_condition_is_set(c))
            fprintf(stderr, "link closed by the broker: %s: %s\n", pn_condition_get_name(c),
                    pn_condition_get_description(c));
        atomic_store(&p->sh->stop, true);
        break;
    }
    default:
        break;
    }
}

/*
 * After --duration: this thread is done once its sends are all confirmed and
 * (perf client) the consumers received everything every producer sent.
 */
static bool drained(const struct perf *p)
{
    const struct perf_shared *sh = p->sh;
    uint64_t sent_total = 0;

    if (LD(p->sent) != LD(p->completed) + LD(p->refused))
        return false;
    if (!sh->consume || p->produce)
        return true;
    for (int i = 0; i < sh->nth; i++)
        sent_total += LD(sh->all[i].sent);
    return sh->o->topic ? LD(p->received) >= sent_total
                        : atomic_load(&p->sh->recv_taken) >= sent_total;
}

static bool tick(struct hq_app *app, int64_t now)
{
    struct perf *p = (struct perf *)app;
    const struct perf_shared *sh = p->sh;
    uint64_t n = (uint64_t)sh->o->message_count;

    send_some(p, now);
    bool send_done = !p->produce || LD(p->completed) + LD(p->refused) >= p->quota;
    bool recv_done =
        !p->consume ||
        (n > 0 && (sh->o->topic ? LD(p->received) >= n : atomic_load(&p->sh->recv_taken) >= n));
    if (now >= sh->end_ms && (drained(p) || now >= sh->end_ms + DRAIN_GRACE_MS))
        return true;
    return stopping(p) || (send_done && recv_done);
}

static void *perf_thread(void *arg)
{
    struct perf *p = arg;
    struct hq_conn c = {.o = p->sh->o, .fd = -1, .index = p->index};

    p->rc = hq_run(&c, &p->app);
    if (p->rc)
        atomic_store(&p->sh->stop, true);
    hq_conn_thread_done();
    atomic_store(&p->finished, true);
    return NULL;
}

static void free_threads(struct perf *th, int n)
{
    for (int i = 0; i < n; i++) {
        pn_message_free(th[i].msg);
        free(th[i].tmpl);
        free(th[i].sent_at_us);
        free(th[i].ack.v);
        free(th[i].transfer.v);
        pthread_mutex_destroy(&th[i].lock);
    }
    free(th);
}

/* Splits total over n: part i gets total/n, the first total%n one more. */
static uint64_t share(uint64_t total, int n, int i)
{
    return total / (uint64_t)n + ((uint64_t)i < total % (uint64_t)n ? 1 : 0);
}

static int init_threads(struct perf_shared *sh, struct perf *th)
{
    const struct hq_opts *o = sh->o;
    char *payload = malloc((size_t)o->message_size + 1);

    for (int i = 0; i < sh->nth; i++)
        pthread_mutex_init(&th[i].lock, NULL);
    if (!payload)
        return -1;
    memset(payload, 'x', (size_t)o->message_size);
    for (int i = 0; i < sh->nth; i++) {
        struct perf *p = &th[i];
        int k = i % sh->threads; /* this thread's number among its role's */
        p->app = (struct hq_app){.setup = setup, .on_event = on_event, .tick = tick};
        p->sh = sh;
        p->index = sh->threads > 1 ? k + 1 : 0;
        p->produce = sh->produce && i < sh->threads;
        p->consume = sh->consume && !p->produce;
        p->quota =
            o->message_count > 0 ? share((uint64_t)o->message_count, sh->threads, k) : UINT64_MAX;
        p->rate = (long)share((uint64_t)o->rate, sh->threads, k);
        p->msg = pn_message();
        p->sent_at_us = p->produce ? calloc(RING_SLOTS, sizeof(*p->sent_at_us)) : NULL;
        if (!p->msg || (p->produce && (!p->sent_at_us || build_template(p, payload) < 0))) {
            free(payload);
            return -1;
        }
    }
    free(payload);
    return 0;
}

/* Runs the threads; the calling thread reports every second until all ended. */
static int run_threads(struct perf_shared *sh, struct perf *th, bool tty)
{
    struct totals last = {0};
    int64_t next_report = sh->start_ms + 1000;
    int rc = 0;

    for (int i = 0; i < sh->nth; i++) {
        if (pthread_create(&th[i].tid, NULL, perf_thread, &th[i]) != 0) {
            fprintf(stderr, "hamq perf: cannot start thread %d\n", i);
            atomic_store(&sh->stop, true);
            rc = HQ_EXIT_FAILED;
            break;
        }
        th[i].started = true;
    }
    for (;;) {
        bool all = true;
        for (int i = 0; i < sh->nth; i++)
            all = all && (!th[i].started || atomic_load(&th[i].finished));
        if (all)
            break;
        int64_t now = hq_now_ms();
        if (now >= next_report) {
            hqp_report_second(sh, tty, hqp_sum(th, sh->nth), &last, now);
            if (sh->o->show_latency && !tty)
                hqp_second_latencies(sh, th);
            next_report += 1000;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < sh->nth; i++) {
        if (!th[i].started)
            continue;
        pthread_join(th[i].tid, NULL);
        if (th[i].rc && (!rc || th[i].rc == HQ_EXIT_CONNECT))
            rc = th[i].rc;
    }
    return rc;
}

int hq_perf(struct hq_opts *o, const char *mode)
{
    static struct perf_shared sh;
    int threads = o->threads > 0 ? o->threads : 1;

    if (o->rate > 0 && o->rate < threads) {
        fprintf(stderr,
                "hamq perf: --rate %ld is less than one message/s for each of the %d "
                "threads\n",
                o->rate, threads);
        return HQ_EXIT_USAGE;
    }
    memset(&sh, 0, sizeof(sh));
    sh.o = o;
    sh.threads = threads;
    sh.produce = strcmp(mode, "consumer") != 0;
    sh.consume = strcmp(mode, "producer") != 0;
    sh.nth = sh.produce && sh.consume ? 2 * threads : threads;
    if (!sh.consume)
        atomic_store(&sh.consumers_ready, threads);
    struct perf *th = calloc((size_t)sh.nth, sizeof(*th));
    sh.all = th;
    if (!th || init_threads(&sh, th) < 0) {
        fprintf(stderr, "hamq perf: out of memory or cannot encode the perf message\n");
        if (th)
            free_threads(th, sh.nth);
        return HQ_EXIT_FAILED;
    }
    bool tty = isatty(STDOUT_FILENO);
    signal(SIGINT, on_sigint);
    printf("Connection brokerURL = %s\n", o->url);
    fflush(stdout);
    sh.start_ms = hq_now_ms();
    sh.warm_end_ms = sh.start_ms + o->warmup_s * 1000;
    sh.end_ms = o->duration_s > 0 ? sh.warm_end_ms + o->duration_s * 1000 : INT64_MAX / 2;
    int rc = run_threads(&sh, th, tty);
    hqp_summary(&sh, th, tty, hq_now_ms() - sh.start_ms, rc);
    struct totals t = hqp_sum(th, sh.nth);
    free_threads(th, sh.nth);
    return rc ? rc : t.refused ? HQ_EXIT_FAILED : HQ_EXIT_OK;
}
