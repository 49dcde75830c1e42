/* Randomized tests of the STOMP engine (bounded in count and time):
 *  - the parser fed ≥ 100k mutated frames and random byte strings in random
 *    chunk sizes, for every version, must return frames or clean errors and
 *    keep its invariants (run under ASan+UBSan in the sanitizer build);
 *  - whole sessions fed mutated conversations must answer or close cleanly;
 *  - round trip: a random frame serialized then parsed gives the same frame.
 * The seed is printed; HAMQ_FUZZ_SEED=<n> replays a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stomp_session.h"

#define TIME_CAP_S 100.0

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup_seed(void **state)
{
    (void)state;
    const char *e = getenv("HAMQ_FUZZ_SEED");
    rng_state = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
    if (!rng_state)
        rng_state = 1;
    printf("# HAMQ_FUZZ_SEED=%llu\n", (unsigned long long)rng_state);
    return 0;
}

static const char *const seeds[] = {
    "CONNECT\naccept-version:1.0,1.1,1.2\nhost:h\nheart-beat:100,100\nlogin:u\npasscode:p\n\n",
    "STOMP\naccept-version:1.2\nhost:h\n\n",
    "SEND\ndestination:/queue/a\nreceipt:r1\ncontent-type:text/plain\n\nhello",
    "SEND\ndestination:/topic/t::q\ndestination-type:MULTICAST\ncontent-length:4\n\na\0\0b",
    "SEND\r\ndestination:a\r\nx:a\\cb\\\\c\\nd\\r\r\n\r\nbody",
    "SUBSCRIBE\nid:1\ndestination:/queue/a\nack:client\nconsumer-window-size:0\n\n",
    "SUBSCRIBE\nid:2\ndestination:/topic/a\nack:client-individual\nselector:x=1\n\n",
    "UNSUBSCRIBE\nid:1\nreceipt:u\n\n",
    "ACK\nid:m1\ntransaction:t\n\n",
    "ACK\nsubscription:1\nmessage-id:m1\n\n",
    "NACK\nid:m2\n\n",
    "BEGIN\ntransaction:t\n\n",
    "COMMIT\ntransaction:t\n\n",
    "ABORT\ntransaction:t\n\n",
    "DISCONNECT\nreceipt:bye\n\n",
    "MESSAGE\nsubscription:1\nmessage-id:9\ndestination:a\ncontent-length:0\n\n",
    "\n\n\r\n",
};
#define NSEEDS (sizeof(seeds) / sizeof(seeds[0]))
static size_t max_mutations = 9; /* exclusive bound per input */
static const char special[] = "\n\r:\\\0cnrt0123456789-ACKSEND";

/* A SEND with a body of up to 3000 bytes, so frames outgrow the parser's
 * first buffer: binary with content-length, or NUL-free text without. */
static size_t big_send(uint8_t *b)
{
    size_t blen = below(3000);
    bool clen = below(2);
    int hl = sprintf((char *)b, "SEND\ndestination:/queue/big\nreceipt:b\n");
    if (clen)
        hl += sprintf((char *)b + hl, "content-length:%zu\n", blen);
    b[hl++] = '\n';
    for (size_t i = 0; i < blen; i++)
        b[(size_t)hl + i] = clen ? (uint8_t)rnd() : (uint8_t)(1 + below(255));
    b[(size_t)hl + blen] = 0;
    return (size_t)hl + blen + 1;
}

/* Seed frames (with their NUL) or random bytes, then mutations. */
static size_t make_input(uint8_t *b, size_t cap)
{
    size_t n = 0;
    if (below(10) == 0) {
        n = below(cap / 4);
        for (size_t i = 0; i < n; i++)
            b[i] = below(3) ? (uint8_t)special[below(sizeof(special))] : (uint8_t)rnd();
        return n;
    }
    for (size_t k = 1 + below(4); k > 0; k--) {
        if (below(8) == 0 && n + 3200 < cap / 2) {
            n += big_send(b + n);
            continue;
        }
        const char *s = seeds[below(NSEEDS)];
        size_t l = strlen(s) + 1;
        if (s[0] == 'S' && s[1] == 'E' && strstr(s, "content-length:4"))
            l += 3; /* body "a\0\0b": copy through its real NUL */
        if (n + l > cap / 2)
            break;
        memcpy(b + n, s, l);
        n += l;
    }
    for (size_t m = below(max_mutations); m > 0 && n > 0; m--) {
        size_t at = below(n);
        switch (below(5)) {
        case 0:
            b[at] = (uint8_t)rnd();
            break;
        case 1:
            b[at] = (uint8_t)special[below(sizeof(special))];
            break;
        case 2: /* delete a range */ {
            size_t l = below(n - at) + 1;
            memmove(b + at, b + at + l, n - at - l);
            n -= l;
            break;
        }
        case 3: /* duplicate a range */ {
            size_t l = below(n - at) + 1;
            if (n + l <= cap) {
                memmove(b + at + l, b + at, n - at);
                n += l;
            }
            break;
        }
        default: /* insert a special byte */
            if (n < cap) {
                memmove(b + at + 1, b + at, n - at);
                b[at] = (uint8_t)special[below(sizeof(special))];
                n++;
            }
            break;
        }
    }
    return n;
}

/* A plausible conversation after CONNECT: frames that mostly respect what the
 * session knows (subscriptions 1-2, transactions t1-t2; messages m0-m7 are
 * delivered at random by drive_session), so runs get deep; one frame in ten
 * ignores that state on purpose. */
struct convo {
    bool sub[3], tx[3];
};

static int convo_frame(struct convo *c, char *o)
{
    static const char *const dests[] = {"/queue/a", "/topic/t", "a::q", "plain"};
    static const char *const modes[] = {"auto", "client", "client-individual"};
    int id = 1 + (int)below(2), m = (int)below(8), t = 1 + (int)below(2);
    bool wild = below(10) == 0;
    switch (below(9)) {
    case 0:
    case 1:
    case 2:
        return sprintf(o, "SEND\ndestination:%s\n%s%s\nbody%d", dests[below(4)],
                       below(2) ? "receipt:r\n" : "",
                       (c->tx[1] || wild) && below(2) ? "transaction:t1\n" : "", m);
    case 3:
        if (c->sub[id] && !wild) {
            c->sub[id] = false;
            return sprintf(o, "UNSUBSCRIBE\nid:%d\n\n", id);
        }
        c->sub[id] = true;
        return sprintf(o, "SUBSCRIBE\nid:%d\ndestination:%s\nack:%s\n\n", id, dests[below(4)],
                       modes[below(3)]);
    case 4:
        return sprintf(o, "%s\nid:m%d\n%s\n", below(3) ? "ACK" : "NACK", m,
                       c->tx[2] && below(2) ? "transaction:t2\n" : "");
    case 5:
        if (c->tx[t] || wild) {
            c->tx[t] = false;
            return sprintf(o, "%s\ntransaction:t%d\nreceipt:x\n\n", below(2) ? "COMMIT" : "ABORT",
                           t);
        }
        c->tx[t] = true;
        return sprintf(o, "BEGIN\ntransaction:t%d\n\n", t);
    case 6:
        return below(20) ? sprintf(o, below(2) ? "\n" : "\r\n")
                         : sprintf(o, "DISCONNECT\nreceipt:bye\n\n");
    default:
        return (int)big_send((uint8_t *)o) - 1;
    }
}

static size_t make_conversation(uint8_t *b, size_t cap)
{
    struct convo c = {0};
    size_t n = 0;
    for (size_t k = 1 + below(30); k > 0 && n + 3300 < cap; k--) {
        int l = convo_frame(&c, (char *)b + n);
        bool eol_only = b[n] == '\n' || b[n] == '\r';
        n += (size_t)l + (eol_only ? 0 : 1); /* frames keep the NUL sprintf wrote */
    }
    return n;
}

static void check_frame(const struct stomp_frame *f, const struct stomp_limits *lim)
{
    assert_true(f->cmd > STOMP_CMD_NONE && f->cmd < STOMP_CMD_COUNT_);
    assert_true(f->nheaders <= lim->max_headers);
    assert_true(f->body_len <= lim->max_body);
    for (size_t i = 0; i < f->nheaders; i++) {
        assert_int_equal(strlen(f->headers[i].name), f->headers[i].name_len);
        assert_int_equal(strlen(f->headers[i].value), f->headers[i].value_len);
        assert_true(f->headers[i].name_len > 0);
    }
    assert_int_equal(f->body[f->body_len], 0);
}

/* Feed b in random chunks; returns frames parsed (or -1 on a clean error). */
static long fuzz_one(struct stomp_parser *p, const uint8_t *b, size_t n)
{
    size_t off = 0;
    long frames = 0;
    while (off < n) {
        size_t chunk = 1 + below(below(4) ? 16 : n);
        size_t end = off + chunk < n ? off + chunk : n;
        while (off < end) {
            size_t used = 0;
            struct stomp_frame f;
            int r = stomp_parser_feed(p, b + off, end - off, &used, &f);
            assert_true(used <= end - off);
            off += used;
            if (r < 0) {
                assert_true(r == -EPROTO || r == -EMSGSIZE);
                assert_true(p->errmsg[0] != '\0');
                return -1;
            }
            if (r == 1) {
                check_frame(&f, &p->lim);
                frames++;
            } else {
                assert_int_equal(off, end);
            }
        }
    }
    return frames;
}

static void parser_survives_100k_mutated_inputs_in_random_chunks(void **state)
{
    (void)state;
    static uint8_t buf[16384];
    const struct stomp_limits lim = {
        .max_headers = 8, .max_header_line = 96, .max_body = 2048, .max_frame = 4096};
    double t0 = now_s();
    long inputs = 0, frames = 0, errors = 0;
    for (; inputs < 500000; inputs++) {
        if ((inputs & 1023) == 0 && now_s() - t0 > TIME_CAP_S)
            break;
        struct stomp_parser p;
        assert_int_equal(stomp_parser_init(&p, &lim), 0);
        stomp_parser_set_version(&p, (enum stomp_version)below(3));
        size_t n = make_input(buf, sizeof(buf));
        long r = fuzz_one(&p, buf, n);
        if (r < 0)
            errors++;
        else
            frames += r;
        stomp_parser_free(&p);
    }
    printf("# parser fuzz: %ld inputs, %ld frames, %ld errors, %.1f s\n", inputs, frames, errors,
           now_s() - t0);
    assert_true(inputs >= 100000 || now_s() - t0 > TIME_CAP_S);
    assert_true(frames > 0 && errors > 0); /* both paths exercised */
}

/* ---- sessions ---- */

static int cb_ok(void *ctx, const struct stomp_connect_info *ci)
{
    (void)ctx;
    (void)ci;
    return 0;
}

static long callbacks;

static int cb_any(void)
{
    callbacks++;
    static const int answers[] = {0, 0, 0,           0,           0,       0,       0,       0,
                                  0, 0, 0,           0,           0,       0,       0,       0,
                                  0, 0, STOMP_DEFER, STOMP_DEFER, -EAGAIN, -EAGAIN, -EAGAIN, -EIO};
    return answers[below(sizeof(answers) / sizeof(answers[0]))];
}

static int cb_send(void *ctx, const struct stomp_send_info *si)
{
    (void)ctx;
    (void)si;
    return cb_any();
}

static int cb_sub(void *ctx, const struct stomp_subscribe_info *si)
{
    (void)ctx;
    (void)si;
    return cb_any();
}

static int cb_ack(void *ctx, const struct stomp_ack_info *ai)
{
    (void)ctx;
    assert_true(ai->ntokens >= 1);
    return cb_any();
}

static const struct stomp_session_ops fuzz_ops = {
    .on_connect = cb_ok, .on_send = cb_send, .on_subscribe = cb_sub, .on_ack = cb_ack};

static void drive_session(struct stomp_session *s, const uint8_t *b, size_t n)
{
    size_t off = 0;
    for (int guard = 0; off < n && guard < 10000; guard++) {
        size_t chunk = 1 + below(64);
        size_t l = off + chunk < n ? chunk : n - off;
        ssize_t r = stomp_session_input(s, b + off, l);
        if (r == -EAGAIN) {
            if (stomp_session_resume(s) < 0 && stomp_session_should_close(s))
                return;
            continue;
        }
        if (r < 0)
            return;
        assert_true((size_t)r <= l);
        off += (size_t)r;
        if (below(4) == 0) {
            char mid[32];
            snprintf(mid, sizeof(mid), "m%zu", below(8));
            struct stomp_delivery d = {.subscription_id = below(2) ? "1" : "2",
                                       .message_id = mid,
                                       .destination = "/queue/a",
                                       .body = "x",
                                       .body_len = 1,
                                       .token = rnd()};
            int dr = stomp_session_deliver(s, &d);
            assert_true(dr == 0 || dr == -ENOENT || dr == -ESHUTDOWN);
        }
        const uint8_t *o;
        size_t on;
        stomp_session_output(s, &o, &on);
        stomp_session_consumed_output(s, below(on + 1));
        stomp_session_tick(s, (uint64_t)guard * 50);
        if (stomp_session_should_close(s))
            return;
    }
}

static void sessions_survive_mutated_conversations(void **state)
{
    (void)state;
    static uint8_t buf[16384];
    struct stomp_session_config cfg;
    stomp_session_config_defaults(&cfg);
    cfg.limits = (struct stomp_limits){
        .max_headers = 8, .max_header_line = 96, .max_body = 2048, .max_frame = 4096};
    cfg.ops = &fuzz_ops;
    max_mutations = 3; /* keep conversations mostly valid so they get deep */
    double t0 = now_s();
    long runs = 0;
    for (; runs < 100000; runs++) {
        if ((runs & 255) == 0 && now_s() - t0 > TIME_CAP_S / 2)
            break;
        struct stomp_session *s = stomp_session_new(&cfg);
        assert_non_null(s);
        const char *hello = below(8) ? seeds[below(2)] : "";
        stomp_session_input(s, (const uint8_t *)hello, strlen(hello) + (hello[0] ? 1 : 0));
        size_t n = below(2) ? make_conversation(buf, sizeof(buf)) : make_input(buf, sizeof(buf));
        for (size_t m = below(2) ? 0 : below(3); m > 0 && n > 0; m--)
            buf[below(n)] = (uint8_t)special[below(sizeof(special))];
        drive_session(s, buf, n);
        stomp_session_free(s);
    }
    max_mutations = 9;
    printf("# session fuzz: %ld conversations, %ld broker callbacks, %.1f s\n", runs, callbacks,
           now_s() - t0);
    assert_true(runs > 0 && callbacks > runs); /* frames got past CONNECT */
}

/* ---- round trip ---- */

static void random_text(char *s, size_t n, enum stomp_version v, bool raw, bool is_name)
{
    static const char plain[] = "abcXYZ019-_./ =";
    for (size_t i = 0; i < n; i++) {
        int k = (int)below(raw ? 1 : 6);
        if (k == 1)
            s[i] = '\n';
        else if (k == 2)
            s[i] = ':';
        else if (k == 3)
            s[i] = '\\';
        else if (k == 4 && v == STOMP_V12)
            s[i] = '\r';
        else if (k == 5)
            s[i] = (char)(0x80 + below(0x7f)); /* UTF-8-ish high bytes */
        else
            s[i] = plain[below(sizeof(plain) - 1)];
    }
    if (raw && !is_name) /* raw values may hold ':' and '\\' */
        for (size_t i = 0; i < n; i++)
            if (below(8) == 0)
                s[i] = below(2) ? ':' : '\\';
    s[n] = '\0';
}

static void serialize_then_parse_gives_the_same_frame(void **state)
{
    (void)state;
    static char names[8][40], values[8][40];
    static uint8_t body[3000]; /* larger than the parser's first buffer: it must move */
    struct stomp_header h[8];
    const struct stomp_limits lim = {
        .max_headers = 16, .max_header_line = 200, .max_body = 4000, .max_frame = 8000};
    long ok = 0;
    for (int it = 0; it < 20000; it++) {
        enum stomp_version v = (enum stomp_version)below(3);
        enum stomp_command cmd = (enum stomp_command)(1 + below(STOMP_CMD_COUNT_ - 1));
        bool raw = v == STOMP_V10 || cmd == STOMP_CMD_CONNECT || cmd == STOMP_CMD_STOMP ||
                   cmd == STOMP_CMD_CONNECTED;
        size_t nh = below(8), blen = below(4) ? below(sizeof(body)) : 0;
        for (size_t i = 0; i < nh; i++) {
            random_text(names[i], 1 + below(30), v, raw, true);
            random_text(values[i], below(30), v, raw, false);
            h[i] = (struct stomp_header){names[i], strlen(names[i]), values[i], strlen(values[i])};
            if (strcmp(names[i], "content-length") == 0)
                names[i][0] = 'C';
        }
        for (size_t i = 0; i < blen; i++)
            body[i] = (uint8_t)rnd();
        struct stomp_buf b = {0};
        int r = stomp_serialize(&b, v, cmd, h, nh, body, blen);
        if (r == -EINVAL) { /* only raw texts ending in CR can be refused */
            stomp_buf_free(&b);
            continue;
        }
        assert_int_equal(r, 0);
        struct stomp_parser p;
        struct stomp_frame f;
        size_t used = 0;
        assert_int_equal(stomp_parser_init(&p, &lim), 0);
        stomp_parser_set_version(&p, v);
        assert_int_equal(stomp_parser_feed(&p, b.data, b.len, &used, &f), 1);
        assert_int_equal(used, b.len);
        assert_int_equal(f.cmd, cmd);
        size_t j = 0;
        for (size_t i = 0; i < f.nheaders; i++) {
            if (strcmp(f.headers[i].name, "content-length") == 0)
                continue;
            assert_true(j < nh);
            assert_string_equal(f.headers[i].name, names[j]);
            assert_string_equal(f.headers[i].value, values[j]);
            j++;
        }
        assert_int_equal(j, nh);
        assert_int_equal(f.body_len, blen);
        assert_memory_equal(f.body, body, blen);
        stomp_parser_free(&p);
        stomp_buf_free(&b);
        ok++;
    }
    printf("# round trip: %ld frames equal after serialize+parse\n", ok);
    assert_true(ok > 15000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parser_survives_100k_mutated_inputs_in_random_chunks),
        cmocka_unit_test(sessions_survive_mutated_conversations),
        cmocka_unit_test(serialize_then_parse_gives_the_same_frame),
    };
    return cmocka_run_group_tests(tests, setup_seed, NULL);
}
