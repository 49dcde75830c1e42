/*
 * hamq_perf — `hamq perf producer|consumer|client [DESTINATION]`, modelled on
 * `artemis perf` (artemis-compat §1.6): positional destination (default
 * queue://TEST), --duration / --message-count to stop (neither: until
 * Ctrl-C), --warmup, --message-size (1024), --persistent, --max-pending
 * (unsettled sends in flight, 1; 0 = unbounded), --rate, --show-latency.
 *
 * Figures: every second "--- sent / completed / received: N msg/sec" (a
 * progress line instead when stdout is a terminal), then "--- SUMMARY" with
 * totals and latency percentiles: "send ack time" (send → accepted: for a
 * persistent message, the broker's journal write) and "transfer time"
 * (send → received, from the hamq-ts-us property, same host clocks).
 * Samples taken during --warmup are not counted.
 */
#include "config.h"

#include <inttypes.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hamq.h"

#define SAMPLES_MAX (16u << 20)
#define UNBOUNDED_PENDING 10000
#define RING_SLOTS 65536u

struct samples {
    uint32_t *v;
    size_t n, cap;
};

struct perf {
    struct hq_app app;
    struct hq_opts *o;
    bool produce, consume;
    pn_link_t *snd, *rcv;
    pn_message_t *msg;
    char *payload;
    uint64_t sent, completed, received, refused;
    uint64_t last_sent, last_completed, last_received;
    int64_t start_ms, warm_end_ms, end_ms, next_report_ms;
    int64_t *sent_at_us; /* by tag % RING_SLOTS: send time of unsettled deliveries */
    struct samples ack, transfer;
    bool tty;
    char rx[16384];
    char *tmpl;      /* the encoded message, sent with its timestamp patched in */
    size_t tmpl_len, ts_off;
};

#define TS_KEY "hamq-ts-us"
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

static void setup(struct hq_app *app, pn_connection_t *conn)
{
    struct perf *p = (struct perf *)app;
    pn_session_t *s = pn_session(conn);

    pn_session_open(s);
    if (p->produce) {
        p->snd = pn_sender(s, "hamq-perf-producer");
        pn_terminus_set_address(pn_link_target(p->snd), p->o->address);
        hq_set_caps(pn_link_target(p->snd), p->o->topic);
        pn_link_open(p->snd);
    }
    if (p->consume) {
        p->rcv = pn_receiver(s, "hamq-perf-consumer");
        pn_terminus_set_address(pn_link_source(p->rcv), p->o->address);
        hq_set_caps(pn_link_source(p->rcv), p->o->topic);
        pn_link_open(p->rcv);
        pn_link_flow(p->rcv, 1000);
    }
}

static bool may_send(struct perf *p, int64_t now)
{
    uint64_t pending = p->sent - p->completed - p->refused;
    uint64_t window = p->o->max_pending > 0 ? (uint64_t)p->o->max_pending : UNBOUNDED_PENDING;

    if (p->o->message_count > 0 && p->sent >= (uint64_t)p->o->message_count)
        return false;
    if (pending >= window || pending >= RING_SLOTS || pn_link_credit(p->snd) <= 0)
        return false;
    if (p->o->rate > 0 && (double)p->sent > (double)(now - p->start_ms) * p->o->rate / 1000.0)
        return false;
    return now < p->end_ms && !interrupted;
}

static void put_be64(char *at, int64_t v)
{
    for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
        at[i] = (char)(v & 0xff);
}

/*
 * Encodes the one message perf sends, once: durable as asked, the payload as a
 * data section, application property hamq-ts-us (long). Each send patches the
 * timestamp's 8 bytes, so the client's CPU goes to the protocol, not to encoding.
 */
static int build_template(struct perf *p)
{
    pn_rwbytes_t buf = {0, NULL};
    char sentinel[8];

    pn_message_clear(p->msg);
    pn_message_set_durable(p->msg, p->o->persistent);
    pn_data_t *props = pn_message_properties(p->msg);
    pn_data_put_map(props);
    pn_data_enter(props);
    pn_data_put_string(props, pn_bytes(strlen(TS_KEY), TS_KEY));
    pn_data_put_long(props, TS_SENTINEL);
    pn_data_exit(props);
    pn_message_set_inferred(p->msg, true);
    pn_data_put_binary(pn_message_body(p->msg), pn_bytes((size_t)p->o->message_size, p->payload));
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
        uint64_t tag = p->sent;
        put_be64(p->tmpl + p->ts_off, us);
        p->sent_at_us[p->sent % RING_SLOTS] = us;
        pn_delivery(p->snd, pn_dtag((const char *)&tag, sizeof(tag)));
        pn_link_send(p->snd, p->tmpl, p->tmpl_len);
        pn_link_advance(p->snd);
        p->sent++;
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

static void on_delivery(struct perf *p, pn_delivery_t *dl, int64_t now)
{
    bool warm = now >= p->warm_end_ms;

    if (pn_delivery_link(dl) == p->snd) {
        uint64_t state = pn_delivery_remote_state(dl);
        if (!state && !pn_delivery_settled(dl))
            return;
        if (state == PN_ACCEPTED) {
            uint64_t tag = 0;
            pn_delivery_tag_t t = pn_delivery_tag(dl);
            if (t.size == sizeof(tag))
                memcpy(&tag, t.start, sizeof(tag));
            if (warm)
                sample(&p->ack, wall_us() - p->sent_at_us[tag % RING_SLOTS]);
            p->completed++;
        } else {
            p->refused++;
        }
        pn_delivery_settle(dl);
        return;
    }
    if (!pn_delivery_readable(dl))
        return;
    if (!pn_delivery_partial(dl) && pn_delivery_pending(dl) <= sizeof(p->rx)) {
        /* the common case, one whole transfer: find the timestamp, no full decode */
        ssize_t n = pn_link_recv(p->rcv, p->rx, sizeof(p->rx));
        pn_link_advance(p->rcv);
        pn_delivery_update(dl, PN_ACCEPTED);
        pn_delivery_settle(dl);
        p->received++;
        int64_t ts = n > 0 ? ts_in(p->rx, (size_t)n) : 0;
        if (warm && ts)
            sample(&p->transfer, wall_us() - ts);
    } else {
        pn_message_clear(p->msg);
        bool ok = hq_read_message(dl, p->msg);
        if (pn_delivery_partial(dl))
            return;
        pn_delivery_update(dl, PN_ACCEPTED);
        pn_delivery_settle(dl);
        if (ok) {
            p->received++;
            int64_t ts = ts_of(p->msg);
            if (warm && ts)
                sample(&p->transfer, wall_us() - ts);
        }
    }
    if (pn_link_credit(p->rcv) < 500)
        pn_link_flow(p->rcv, 1000 - pn_link_credit(p->rcv));
}

static void on_event(struct hq_app *app, pn_event_t *e)
{
    struct perf *p = (struct perf *)app;

    switch (pn_event_type(e)) {
    case PN_LINK_FLOW: send_some(p, hq_now_ms()); break;
    case PN_DELIVERY: on_delivery(p, pn_event_delivery(e), hq_now_ms()); break;
    case PN_LINK_REMOTE_CLOSE: {
        pn_condition_t *c = pn_link_remote_condition(pn_event_link(e));
        if (pn_condition_is_set(c))
            fprintf(stderr, "link closed by the broker: %s: %s\n", pn_condition_get_name(c),
                    pn_condition_get_description(c));
        interrupted = 1;
        break;
    }
    default: break;
    }
}

static void report_second(struct perf *p, int64_t now)
{
    uint64_t s = p->sent - p->last_sent, c = p->completed - p->last_completed,
             r = p->received - p->last_received;

    p->last_sent = p->sent;
    p->last_completed = p->completed;
    p->last_received = p->received;
    if (p->tty) {
        printf("\r[%3" PRId64 " s] sent %7" PRIu64 "/s  completed %7" PRIu64 "/s  received %7" PRIu64
               "/s  total received %" PRIu64 "   ",
               (now - p->start_ms) / 1000, s, c, r, p->received);
    } else {
        printf("--- warmup %s\n", now < p->warm_end_ms ? "true" : "false");
        if (p->produce)
            printf("--- sent:      %7" PRIu64 " msg/sec\n--- completed: %7" PRIu64 " msg/sec\n", s,
                   c);
        if (p->consume)
            printf("--- received:  %7" PRIu64 " msg/sec\n", r);
    }
    fflush(stdout);
}

static bool tick(struct hq_app *app, int64_t now)
{
    struct perf *p = (struct perf *)app;

    send_some(p, now);
    if (now >= p->next_report_ms) {
        report_second(p, now);
        p->next_report_ms += 1000;
    }
    bool send_done = !p->produce || (p->o->message_count > 0 &&
                                     p->completed + p->refused >= (uint64_t)p->o->message_count);
    bool recv_done = !p->consume || (p->o->message_count > 0 &&
                                     p->received >= (uint64_t)p->o->message_count);
    return interrupted || now >= p->end_ms + (p->o->duration_s ? 2000 : 0) ||
           (send_done && recv_done);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static void percentiles(const char *what, struct samples *s)
{
    static const double q[] = {50.0, 90.0, 99.0, 99.9};
    double sum = 0;

    if (!s->n)
        return;
    qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
    for (size_t i = 0; i < s->n; i++)
        sum += s->v[i];
    printf("--- aggregated %s: mean %.0f us", what, sum / (double)s->n);
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
        printf(" - %.2f%%: %" PRIu32 " us", q[i], s->v[(size_t)((double)(s->n - 1) * q[i] / 100.0)]);
    printf(" - max: %" PRIu32 " us\n", s->v[s->n - 1]);
}

static void summary(struct perf *p, int64_t ms)
{
    double secs = ms > 0 ? (double)ms / 1000.0 : 1.0;

    if (p->tty)
        printf("\n");
    printf("--- SUMMARY\n");
    printf("--- result: %s\n", p->refused ? "failure" : "success");
    if (p->produce) {
        printf("--- total sent:      %" PRIu64 " (%.0f msg/sec)\n", p->sent, (double)p->sent / secs);
        printf("--- total completed: %" PRIu64 " (%.0f msg/sec)\n", p->completed,
               (double)p->completed / secs);
        if (p->refused)
            printf("--- total refused:   %" PRIu64 "\n", p->refused);
    }
    if (p->consume)
        printf("--- total received:  %" PRIu64 " (%.0f msg/sec)\n", p->received,
               (double)p->received / secs);
    percentiles("send ack time", &p->ack);
    percentiles("transfer time", &p->transfer);
}

int hq_perf(struct hq_opts *o, const char *mode)
{
    static struct perf p;

    memset(&p, 0, sizeof(p));
    p.o = o;
    struct hq_conn c = {.o = o, .fd = -1};

    p.produce = strcmp(mode, "consumer") != 0;
    p.consume = strcmp(mode, "producer") != 0;
    p.app = (struct hq_app){.setup = setup, .on_event = on_event, .tick = tick};
    p.msg = pn_message();
    p.payload = malloc((size_t)o->message_size + 1);
    p.sent_at_us = calloc(RING_SLOTS, sizeof(*p.sent_at_us));
    if (!p.msg || !p.payload || !p.sent_at_us) {
        fprintf(stderr, "out of memory\n");
        pn_message_free(p.msg);
        free(p.payload);
        free(p.sent_at_us);
        return HQ_EXIT_FAILED;
    }
    memset(p.payload, 'x', (size_t)o->message_size);
    if (build_template(&p) < 0) {
        fprintf(stderr, "cannot encode the perf message\n");
        pn_message_free(p.msg);
        free(p.payload);
        free(p.sent_at_us);
        return HQ_EXIT_FAILED;
    }
    p.tty = isatty(STDOUT_FILENO);
    signal(SIGINT, on_sigint);
    printf("Connection brokerURL = %s\n", o->url);
    p.start_ms = hq_now_ms();
    p.warm_end_ms = p.start_ms + o->warmup_s * 1000;
    p.end_ms = o->duration_s > 0 ? p.warm_end_ms + o->duration_s * 1000 : INT64_MAX / 2;
    p.next_report_ms = p.start_ms + 1000;
    int rc = hq_run(&c, &p.app);
    summary(&p, hq_now_ms() - p.start_ms);
    pn_message_free(p.msg);
    free(p.payload);
    free(p.tmpl);
    free(p.sent_at_us);
    free(p.ack.v);
    free(p.transfer.v);
    return rc ? rc : p.refused ? HQ_EXIT_FAILED : HQ_EXIT_OK;
}
