/* Benchmark of the STOMP engine alone (no sockets): prints figures, asserts
 * nothing about speed. Usage: bench_stomp [messages] (default 1000000). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stomp_session.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, long n, size_t bytes, double secs)
{
    printf("%-44s %9ld in %6.3f s  %10.0f /s  %8.1f MB/s\n", what, n, secs, (double)n / secs,
           (double)bytes / secs / 1e6);
}

/* A read's worth of 1 KiB-body SEND frames with receipts, as a producer sends them. */
static size_t fill_sends(char *buf, size_t cap, long first, long *count)
{
    static char body[1024];
    size_t n = 0;
    memset(body, 'x', sizeof(body));
    *count = 0;
    for (;;) {
        char head[256];
        int hl = snprintf(head, sizeof(head),
                          "SEND\ndestination:/queue/bench\npersistent:true\nreceipt:%ld\n"
                          "content-type:text/plain\ncontent-length:%zu\n\n",
                          first + *count, sizeof(body));
        if (n + (size_t)hl + sizeof(body) + 1 > cap)
            return n;
        memcpy(buf + n, head, (size_t)hl);
        memcpy(buf + n + (size_t)hl, body, sizeof(body));
        n += (size_t)hl + sizeof(body);
        buf[n++] = '\0';
        (*count)++;
    }
}

static int on_send(void *ctx, const struct stomp_send_info *si)
{
    (*(long *)ctx)++;
    return si->body_len == 1024 ? 0 : -EINVAL;
}

static int on_ack(void *ctx, const struct stomp_ack_info *ai)
{
    (*(long *)ctx) += (long)ai->ntokens;
    return 0;
}

static const struct stomp_session_ops ops = {.on_send = on_send, .on_ack = on_ack};

static struct stomp_session *new_session(long *counter, const char *ack_mode)
{
    struct stomp_session_config cfg;
    stomp_session_config_defaults(&cfg);
    cfg.ops = &ops;
    cfg.ctx = counter;
    struct stomp_session *s = stomp_session_new(&cfg);
    char sub[128];
    const char c[] = "CONNECT\naccept-version:1.2\nhost:h\n\n";
    int n =
        snprintf(sub, sizeof(sub), "SUBSCRIBE\nid:0\ndestination:/queue/b\nack:%s\n\n", ack_mode);
    if (!s || stomp_session_input(s, (const uint8_t *)c, sizeof(c)) != sizeof(c) ||
        stomp_session_input(s, (const uint8_t *)sub, (size_t)n + 1) != n + 1) {
        fprintf(stderr, "bench: session setup failed\n");
        exit(1);
    }
    return s;
}

static void drain(struct stomp_session *s)
{
    const uint8_t *p;
    size_t n;
    stomp_session_output(s, &p, &n);
    stomp_session_consumed_output(s, n);
}

static void bench_parse(long total)
{
    static char buf[65536];
    long per = 0, frames = 0;
    size_t len = fill_sends(buf, sizeof(buf), 0, &per), bytes = 0;
    struct stomp_session_config cfg;
    struct stomp_parser p;
    stomp_session_config_defaults(&cfg);
    stomp_parser_init(&p, &cfg.limits);
    stomp_parser_set_version(&p, STOMP_V12);
    double t0 = now_s();
    while (frames < total) {
        size_t off = 0;
        while (off < len) {
            size_t used;
            struct stomp_frame f;
            int r = stomp_parser_feed(&p, (const uint8_t *)buf + off, len - off, &used, &f);
            off += used;
            frames += r == 1;
            if (r < 0)
                exit(2);
        }
        bytes += len;
    }
    report("parser: 1 KiB SEND frames, 64 KiB reads", frames, bytes, now_s() - t0);
    stomp_parser_free(&p);
}

static void bench_session_sends(long total)
{
    static char buf[65536];
    long per = 0, sends = 0;
    size_t len = fill_sends(buf, sizeof(buf), 0, &per), bytes = 0;
    struct stomp_session *s = new_session(&sends, "auto");
    double t0 = now_s();
    while (sends < total) {
        ssize_t r = stomp_session_input(s, (const uint8_t *)buf, len);
        if (r != (ssize_t)len) {
            const uint8_t *o;
            size_t on;
            stomp_session_output(s, &o, &on);
            fprintf(stderr, "bench: input gave %zd:\n", r);
            fwrite(o, 1, on, stderr);
            exit(3);
        }
        drain(s);
        bytes += len;
    }
    report("session: SEND + RECEIPT, 64 KiB reads", sends, bytes, now_s() - t0);
    stomp_session_free(s);
}

static void bench_deliver_and_ack(long total, const char *mode)
{
    static char body[1024];
    long acked = 0;
    size_t bytes = 0;
    struct stomp_session *s = new_session(&acked, mode);
    const long window = 1000; /* outstanding deliveries, like a prefetch */
    struct stomp_header h[] = {{"persistent", 10, "true", 4}, {"priority", 8, "4", 1}};
    char mid[32], ack[64];
    double t0 = now_s();
    for (long i = 0; i < total; i++) {
        snprintf(mid, sizeof(mid), "%ld", i);
        struct stomp_delivery d = {"0", mid, "/queue/b", h, 2, body, sizeof(body), (uint64_t)i};
        if (stomp_session_deliver(s, &d) < 0)
            exit(4);
        const uint8_t *p;
        size_t n;
        stomp_session_output(s, &p, &n);
        bytes += n;
        stomp_session_consumed_output(s, n);
        if (i >= window) { /* ack the oldest outstanding one */
            int an = snprintf(ack, sizeof(ack), "ACK\nid:%ld\n\n", i - window);
            if (stomp_session_input(s, (const uint8_t *)ack, (size_t)an + 1) != an + 1)
                exit(5);
        }
    }
    char what[96];
    snprintf(what, sizeof(what), "session: MESSAGE 1 KiB + ACK (%s, %ld out)", mode, window);
    report(what, total, bytes, now_s() - t0);
    stomp_session_free(s);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_stomp [messages > 0]\n");
        return 2;
    }
    bench_parse(n);
    bench_session_sends(n);
    bench_deliver_and_ack(n / 4, "client-individual");
    bench_deliver_and_ack(n / 4, "client");
    return 0;
}
