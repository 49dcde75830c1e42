/* Unit tests of daemons/worker/stomp_codec.c: the frame parser fed in every
 * chunking, per-version escaping, limits, malformed input, and the serializer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_codec.h"

static const struct stomp_limits big = {
    .max_headers = 100, .max_header_line = 1024, .max_body = 1 << 20, .max_frame = 2 << 20};

/* A copy of one parsed frame (the parser's buffer is reused). */
struct copy {
    enum stomp_command cmd;
    size_t nh;
    char names[16][128], values[16][128];
    uint8_t body[70000];
    size_t body_len;
};

static void keep(struct copy *c, const struct stomp_frame *f)
{
    c->cmd = f->cmd;
    c->nh = f->nheaders;
    assert_true(f->nheaders <= 16 && f->body_len <= sizeof(c->body));
    for (size_t i = 0; i < f->nheaders; i++) {
        assert_true(f->headers[i].name_len < 128 && f->headers[i].value_len < 128);
        memcpy(c->names[i], f->headers[i].name, f->headers[i].name_len + 1);
        memcpy(c->values[i], f->headers[i].value, f->headers[i].value_len + 1);
    }
    memcpy(c->body, f->body, f->body_len);
    c->body_len = f->body_len;
}

/* Feed data in chunks of `chunk` bytes; returns frames parsed or the negative error. */
static int parse(struct stomp_parser *p, const void *data, size_t len, size_t chunk,
                 struct copy *out, int max)
{
    const uint8_t *b = data;
    size_t off = 0;
    int n = 0;
    while (off < len) {
        size_t end = off + chunk < len ? off + chunk : len;
        while (off < end) {
            size_t used = 0;
            struct stomp_frame f;
            int r = stomp_parser_feed(p, b + off, end - off, &used, &f);
            off += used;
            if (r < 0)
                return r;
            if (r == 1) {
                assert_true(n < max);
                keep(&out[n++], &f);
            }
            if (r == 0)
                assert_int_equal(off, end);
        }
    }
    return n;
}

static int parse_str(enum stomp_version v, const char *s, struct copy *out, int max,
                     struct stomp_parser *keep_p)
{
    struct stomp_parser p;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    stomp_parser_set_version(&p, v);
    int r = parse(&p, s, strlen(s), 1 << 20, out, max);
    if (keep_p)
        *keep_p = p;
    else
        stomp_parser_free(&p);
    return r;
}

static struct copy frames[8];

static void parser_reads_a_simple_send(void **state)
{
    (void)state;
    const char in[] = "SEND\ndestination:/queue/a\n\nhello";
    assert_int_equal(parse_str(STOMP_V12, in, frames, 8, NULL), 0);
    struct stomp_parser p;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(parse(&p, in, sizeof(in), 64, frames, 8), 1);
    stomp_parser_free(&p);
    assert_int_equal(frames[0].cmd, STOMP_CMD_SEND);
    assert_int_equal(frames[0].nh, 1);
    assert_string_equal(frames[0].names[0], "destination");
    assert_string_equal(frames[0].values[0], "/queue/a");
    assert_int_equal(frames[0].body_len, 5);
    assert_memory_equal(frames[0].body, "hello", 5);
}

static const char two_frames[] = "SEND\r\ndestination:/queue/a\r\ncontent-length:5\r\n\r\nab\0cd\0"
                                 "\n\r\n\n"
                                 "MESSAGE\ndestination:x\nfoo:a\\cb\\\\c\\nd\\re\n\nbody\0\n";

static void parser_accepts_frame_split_at_every_byte(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= sizeof(two_frames); chunk++) {
        struct stomp_parser p;
        assert_int_equal(stomp_parser_init(&p, &big), 0);
        stomp_parser_set_version(&p, STOMP_V12);
        assert_int_equal(parse(&p, two_frames, sizeof(two_frames) - 1, chunk, frames, 8), 2);
        stomp_parser_free(&p);
        assert_int_equal(frames[0].body_len, 5);
        assert_memory_equal(frames[0].body, "ab\0cd", 5);
        assert_string_equal(frames[1].values[1], "a:b\\c\nd\re");
        assert_int_equal(frames[1].body_len, 4);
    }
}

static void parser_returns_many_frames_from_one_buffer(void **state)
{
    (void)state;
    struct stomp_parser p;
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < 8; i++)
        n += (size_t)sprintf(buf + n, "SEND\ndestination:q%d\n\n%d", i, i) + 1;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(parse(&p, buf, n, n, frames, 8), 8);
    stomp_parser_free(&p);
    assert_string_equal(frames[7].values[0], "q7");
    assert_memory_equal(frames[7].body, "7", 1);
}

static void parser_skips_heartbeat_eols_between_frames(void **state)
{
    (void)state;
    assert_int_equal(parse_str(STOMP_V12, "\n\n\r\n\nSEND\ndestination:a\n\n\n", frames, 8, NULL),
                     0);
    struct stomp_parser p;
    const char in[] = "\n\r\n\nDISCONNECT\n\n\0\n\n";
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(parse(&p, in, sizeof(in) - 1, 1, frames, 8), 1);
    assert_false(stomp_parser_mid_frame(&p));
    stomp_parser_free(&p);
    assert_int_equal(frames[0].cmd, STOMP_CMD_DISCONNECT);
}

static void parser_reads_binary_body_with_content_length(void **state)
{
    (void)state;
    uint8_t in[300];
    size_t n = (size_t)sprintf((char *)in, "SEND\ndestination:a\ncontent-length:256\n\n");
    for (int i = 0; i < 256; i++)
        in[n++] = (uint8_t)i;
    in[n++] = 0;
    struct stomp_parser p;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(parse(&p, in, n, 7, frames, 8), 1);
    stomp_parser_free(&p);
    assert_int_equal(frames[0].body_len, 256);
    for (int i = 0; i < 256; i++)
        assert_int_equal(frames[0].body[i], i);
}

static void parser_accepts_non_utf8_body_without_content_length(void **state)
{
    (void)state;
    const char in[] = "SEND\ndestination:a\n\n\xff\xfe\xc3\x28";
    struct stomp_parser p;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(parse(&p, in, sizeof(in), 3, frames, 8), 1);
    stomp_parser_free(&p);
    assert_int_equal(frames[0].body_len, 4);
}

static void parser_unescapes_1_2_headers(void **state)
{
    (void)state;
    const char in[] = "SEND\na\\cb:x\\ny\\rz\\\\\\c\n\n";
    struct stomp_parser p;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    stomp_parser_set_version(&p, STOMP_V12);
    assert_int_equal(parse(&p, in, sizeof(in), 99, frames, 8), 1);
    stomp_parser_free(&p);
    assert_string_equal(frames[0].names[0], "a:b");
    assert_string_equal(frames[0].values[0], "x\ny\rz\\:");
}

static int parse_v(enum stomp_version v, const char *in, size_t len)
{
    struct stomp_parser p;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    stomp_parser_set_version(&p, v);
    int r = parse(&p, in, len, 5, frames, 8);
    stomp_parser_free(&p);
    return r;
}

static void parser_rejects_cr_escape_in_1_1(void **state)
{
    (void)state;
    const char in[] = "SEND\na:x\\ry\n\n";
    assert_int_equal(parse_v(STOMP_V11, in, sizeof(in)), -EPROTO);
    const char ok[] = "SEND\na:x\\ny\\c\n\n";
    assert_int_equal(parse_v(STOMP_V11, ok, sizeof(ok)), 1);
    assert_string_equal(frames[0].values[0], "x\ny:");
}

static void parser_leaves_1_0_headers_unescaped(void **state)
{
    (void)state;
    const char in[] = "SEND\na:x\\ty\\n:z\n\n";
    assert_int_equal(parse_v(STOMP_V10, in, sizeof(in)), 1);
    assert_string_equal(frames[0].values[0], "x\\ty\\n:z");
}

static void parser_never_unescapes_connect_frames(void **state)
{
    (void)state;
    const char in[] = "CONNECT\npasscode:a\\tb\\c\n\n";
    assert_int_equal(parse_v(STOMP_V12, in, sizeof(in)), 1);
    assert_string_equal(frames[0].values[0], "a\\tb\\c");
    const char in2[] = "CONNECTED\nserver:a\\nb\n\n";
    assert_int_equal(parse_v(STOMP_V12, in2, sizeof(in2)), 1);
    assert_string_equal(frames[0].values[0], "a\\nb");
}

static void parser_rejects_bad_escape(void **state)
{
    (void)state;
    const char in[] = "SEND\na:x\\ty\n\n";
    struct stomp_parser p;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    stomp_parser_set_version(&p, STOMP_V12);
    assert_int_equal(parse(&p, in, sizeof(in), 1, frames, 8), -EPROTO);
    assert_int_equal(p.err, STOMP_E_BAD_ESCAPE);
    assert_non_null(strstr(p.errmsg, "escape"));
    stomp_parser_free(&p);
    const char trailing[] = "SEND\na:x\\\n\n";
    assert_int_equal(parse_v(STOMP_V12, trailing, sizeof(trailing)), -EPROTO);
}

static void parser_keeps_repeated_headers_and_first_wins(void **state)
{
    (void)state;
    const char in[] = "SEND\nfoo:1\nfoo:2\n\n";
    struct stomp_parser p;
    struct stomp_frame f;
    size_t used;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(stomp_parser_feed(&p, (const uint8_t *)in, sizeof(in), &used, &f), 1);
    assert_int_equal(f.nheaders, 2);
    assert_string_equal(stomp_frame_get(&f, "foo"), "1");
    assert_null(stomp_frame_get(&f, "bar"));
    stomp_parser_free(&p);
}

static void parser_splits_header_at_first_colon(void **state)
{
    (void)state;
    const char in[] = "SEND\nurl:http://x:1/\n\n";
    assert_int_equal(parse_v(STOMP_V10, in, sizeof(in)), 1);
    assert_string_equal(frames[0].values[0], "http://x:1/");
}

static int expect_error(const char *in, size_t len, enum stomp_error e, const char *word)
{
    struct stomp_parser p;
    struct stomp_limits lim = {
        .max_headers = 4, .max_header_line = 32, .max_body = 16, .max_frame = 128};
    assert_int_equal(stomp_parser_init(&p, &lim), 0);
    stomp_parser_set_version(&p, STOMP_V12);
    int r = parse(&p, in, len, 3, frames, 8);
    assert_true(r < 0);
    assert_int_equal(p.err, e);
    if (!strstr(p.errmsg, word))
        fail_msg("'%s' does not name '%s'", p.errmsg, word);
    /* poisoned: the same error again */
    size_t used;
    struct stomp_frame f;
    assert_int_equal(stomp_parser_feed(&p, (const uint8_t *)"\n", 1, &used, &f), r);
    stomp_parser_free(&p);
    return r;
}

static void parser_rejects_unknown_command(void **state)
{
    (void)state;
    const char in[] = "FLY\n\n";
    assert_int_equal(expect_error(in, sizeof(in), STOMP_E_UNKNOWN_COMMAND, "FLY"), -EPROTO);
    const char lower[] = "send\n\n";
    expect_error(lower, sizeof(lower), STOMP_E_UNKNOWN_COMMAND, "send");
}

static void parser_rejects_header_without_colon(void **state)
{
    (void)state;
    const char in[] = "SEND\nnocolon\n\n";
    assert_int_equal(expect_error(in, sizeof(in), STOMP_E_MISSING_COLON, "nocolon"), -EPROTO);
}

static void parser_rejects_empty_header_name(void **state)
{
    (void)state;
    const char in[] = "SEND\n:v\n\n";
    expect_error(in, sizeof(in), STOMP_E_EMPTY_HEADER_NAME, "empty");
}

static void parser_rejects_invalid_content_length(void **state)
{
    (void)state;
    const char *bad[] = {"x", "-1", " 1", "1 ", "", "0x1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char in[96];
        int n = snprintf(in, sizeof(in), "SEND\ncontent-length:%s\n\n", bad[i]);
        expect_error(in, (size_t)n + 1, STOMP_E_BAD_CONTENT_LENGTH, "content-length");
    }
    const char overflow[] = "SEND\ncontent-length:99999999999999999999\n\n";
    assert_int_equal(parse_v(STOMP_V12, overflow, sizeof(overflow)), -EPROTO);
}

static void parser_rejects_missing_nul_after_body(void **state)
{
    (void)state;
    const char in[] = "SEND\ncontent-length:2\n\nabX";
    expect_error(in, sizeof(in) - 1, STOMP_E_MISSING_NUL, "NUL");
}

static void parser_rejects_nul_in_headers(void **state)
{
    (void)state;
    const char in[] = "SEND\na:b\0c\n\n";
    expect_error(in, sizeof(in), STOMP_E_NUL_IN_HEADER, "NUL");
}

static void parser_rejects_bare_cr_between_frames(void **state)
{
    (void)state;
    const char in[] = "\rSEND\n\n";
    expect_error(in, sizeof(in), STOMP_E_BARE_CR, "CR");
}

static void parser_rejects_too_many_headers_naming_the_limit(void **state)
{
    (void)state;
    const char in[] = "SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n";
    assert_int_equal(expect_error(in, sizeof(in), STOMP_E_LIMIT_HEADERS, "max_headers=4"),
                     -EMSGSIZE);
}

static void parser_rejects_long_header_line_naming_the_limit(void **state)
{
    (void)state;
    char in[128];
    int n = snprintf(in, sizeof(in), "SEND\na:%s\n\n", "0123456789012345678901234567890");
    expect_error(in, (size_t)n + 1, STOMP_E_LIMIT_LINE, "max_header_line=32");
    const char cmd[] = "SENDSENDSENDSENDSENDSENDSENDSENDSEND";
    expect_error(cmd, sizeof(cmd) - 1, STOMP_E_LIMIT_LINE, "max_header_line=32");
}

static void parser_accepts_line_of_exactly_the_limit_with_crlf(void **state)
{
    (void)state;
    struct stomp_parser p;
    struct stomp_limits lim = {
        .max_headers = 4, .max_header_line = 32, .max_body = 16, .max_frame = 128};
    char in[128];
    int n = snprintf(in, sizeof(in), "SEND\r\na:%s\r\n\r\n", "012345678901234567890123456789");
    assert_int_equal(stomp_parser_init(&p, &lim), 0);
    assert_int_equal(parse(&p, in, (size_t)n + 1, 1, frames, 8), 1);
    stomp_parser_free(&p);
    assert_int_equal(strlen(frames[0].values[0]), 30);
}

static void parser_rejects_body_over_max_body_naming_the_limit(void **state)
{
    (void)state;
    const char in[] = "SEND\ncontent-length:17\n\n";
    expect_error(in, sizeof(in) - 1, STOMP_E_LIMIT_BODY, "max_body=16");
    const char nul[] = "SEND\n\n01234567890123456789";
    expect_error(nul, sizeof(nul) - 1, STOMP_E_LIMIT_BODY, "max_body=16");
}

static void parser_rejects_frame_over_max_frame_naming_the_limit(void **state)
{
    (void)state;
    const char in[] = "SEND\na:012345678901234567890123456789\nb:012345678901234567890123456789\n"
                      "c:012345678901234567890123456789\nd:012345678901234567890123456789\n\n";
    expect_error(in, sizeof(in), STOMP_E_LIMIT_FRAME, "max_frame=128");
}

static void parser_refuses_zero_limits(void **state)
{
    (void)state;
    struct stomp_parser p;
    struct stomp_limits lim = big;
    lim.max_body = 0;
    assert_int_equal(stomp_parser_init(&p, &lim), -EINVAL);
}

static void parser_keeps_partial_frame_when_feeding_pauses(void **state)
{
    (void)state;
    struct stomp_parser p;
    struct stomp_frame f;
    size_t used;
    const char a[] = "SEND\ndestination:x\ncontent-len", b[] = "gth:3\n\nabc";
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(stomp_parser_feed(&p, (const uint8_t *)a, strlen(a), &used, &f), 0);
    assert_int_equal(used, strlen(a));
    assert_true(stomp_parser_mid_frame(&p));
    assert_int_equal(stomp_parser_feed(&p, (const uint8_t *)b, sizeof(b), &used, &f), 1);
    assert_int_equal(used, sizeof(b));
    assert_int_equal(f.body_len, 3);
    assert_true(f.has_content_length);
    stomp_parser_free(&p);
}

static void parser_keeps_headers_valid_and_releases_a_big_frame_buffer(void **state)
{
    (void)state;
    struct stomp_parser p;
    struct stomp_frame f;
    size_t used, n = 1 << 20;
    char head[64];
    int hl = snprintf(head, sizeof(head), "SEND\ncontent-length:%zu\nx:y\n\n", n);
    uint8_t *in = calloc(1, (size_t)hl + n + 1);
    assert_non_null(in);
    memcpy(in, head, (size_t)hl);
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(stomp_parser_feed(&p, in, (size_t)hl + n + 1, &used, &f), 1);
    assert_int_equal(f.body_len, n);
    assert_true(p.cap > n);
    assert_string_equal(stomp_frame_get(&f, "x"), "y");
    assert_int_equal(stomp_parser_feed(&p, (const uint8_t *)"\n", 1, &used, &f), 0);
    assert_true(p.cap <= 256 * 1024);
    stomp_parser_free(&p);
    free(in);
}

static void parser_keeps_headers_valid_when_a_nul_terminated_body_grows(void **state)
{
    (void)state;
    struct stomp_parser p;
    static uint8_t in[70000];
    size_t n = (size_t)sprintf((char *)in, "SEND\ndestination:/queue/a\nreceipt:r\n\n");
    memset(in + n, 'b', 65536);
    n += 65536;
    in[n++] = 0;
    assert_int_equal(stomp_parser_init(&p, &big), 0);
    assert_int_equal(parse(&p, in, n, 4096, frames, 8), 1);
    stomp_parser_free(&p);
    assert_string_equal(frames[0].values[0], "/queue/a");
    assert_string_equal(frames[0].values[1], "r");
}

static void command_names_round_trip(void **state)
{
    (void)state;
    for (int c = STOMP_CMD_CONNECT; c < STOMP_CMD_COUNT_; c++) {
        const char *n = stomp_command_name((enum stomp_command)c);
        assert_int_equal(stomp_command_parse(n, strlen(n)), c);
    }
    assert_int_equal(stomp_command_parse("SENDX", 5), STOMP_CMD_NONE);
}

/* ---- serializer ---- */

static struct stomp_header H(const char *n, const char *v) {
    return (struct stomp_header){n, strlen(n), v, strlen(v)};
}

static void
serializer_escapes_1_2_headers(void **state)
{
    (void)state;
    struct stomp_buf b = {0};
    struct stomp_header h[] = {H("a:b", "x\ny\rz\\:")};
    assert_int_equal(stomp_serialize(&b, STOMP_V12, STOMP_CMD_RECEIPT, h, 1, NULL, 0), 0);
    const char want[] = "RECEIPT\na\\cb:x\\ny\\rz\\\\\\c\n\n";
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    stomp_buf_free(&b);
}

static void serializer_adds_content_length_to_message(void **state)
{
    (void)state;
    struct stomp_buf b = {0};
    struct stomp_header h[] = {H("destination", "q"), H("content-length", "999")};
    assert_int_equal(stomp_serialize(&b, STOMP_V11, STOMP_CMD_MESSAGE, h, 2, "a\0b", 3), 0);
    const char want[] = "MESSAGE\ndestination:q\ncontent-length:3\n\na\0b";
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    stomp_buf_free(&b);
}

static void serializer_refuses_unrepresentable_headers(void **state)
{
    (void)state;
    struct stomp_buf b = {0};
    struct stomp_header nl[] = {H("ok", "1"), H("a", "x\ny")};
    struct stomp_header cr[] = {H("a", "x\ry")};
    struct stomp_header colon[] = {H("a:b", "x")};
    struct stomp_header empty[] = {H("", "x")};
    assert_int_equal(stomp_serialize(&b, STOMP_V10, STOMP_CMD_MESSAGE, nl, 2, NULL, 0), -EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(stomp_serialize(&b, STOMP_V12, STOMP_CMD_CONNECTED, nl, 2, NULL, 0), -EINVAL);
    assert_int_equal(stomp_serialize(&b, STOMP_V11, STOMP_CMD_MESSAGE, cr, 1, NULL, 0), -EINVAL);
    assert_int_equal(stomp_serialize(&b, STOMP_V10, STOMP_CMD_MESSAGE, colon, 1, NULL, 0), -EINVAL);
    assert_int_equal(stomp_serialize(&b, STOMP_V12, STOMP_CMD_MESSAGE, empty, 1, NULL, 0), -EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(stomp_serialize(&b, STOMP_V12, STOMP_CMD_MESSAGE, cr, 1, NULL, 0), 0);
    stomp_buf_free(&b);
}

static void serializer_writes_connected_unescaped(void **state)
{
    (void)state;
    struct stomp_buf b = {0};
    struct stomp_header h[] = {H("server", "hamq:1\\x")};
    assert_int_equal(stomp_serialize(&b, STOMP_V12, STOMP_CMD_CONNECTED, h, 1, NULL, 0), 0);
    const char want[] = "CONNECTED\nserver:hamq:1\\x\n\n";
    assert_memory_equal(b.data, want, sizeof(want));
    stomp_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parser_reads_a_simple_send),
        cmocka_unit_test(parser_accepts_frame_split_at_every_byte),
        cmocka_unit_test(parser_returns_many_frames_from_one_buffer),
        cmocka_unit_test(parser_skips_heartbeat_eols_between_frames),
        cmocka_unit_test(parser_reads_binary_body_with_content_length),
        cmocka_unit_test(parser_accepts_non_utf8_body_without_content_length),
        cmocka_unit_test(parser_unescapes_1_2_headers),
        cmocka_unit_test(parser_rejects_cr_escape_in_1_1),
        cmocka_unit_test(parser_leaves_1_0_headers_unescaped),
        cmocka_unit_test(parser_never_unescapes_connect_frames),
        cmocka_unit_test(parser_rejects_bad_escape),
        cmocka_unit_test(parser_keeps_repeated_headers_and_first_wins),
        cmocka_unit_test(parser_splits_header_at_first_colon),
        cmocka_unit_test(parser_rejects_unknown_command),
        cmocka_unit_test(parser_rejects_header_without_colon),
        cmocka_unit_test(parser_rejects_empty_header_name),
        cmocka_unit_test(parser_rejects_invalid_content_length),
        cmocka_unit_test(parser_rejects_missing_nul_after_body),
        cmocka_unit_test(parser_rejects_nul_in_headers),
        cmocka_unit_test(parser_rejects_bare_cr_between_frames),
        cmocka_unit_test(parser_rejects_too_many_headers_naming_the_limit),
        cmocka_unit_test(parser_rejects_long_header_line_naming_the_limit),
        cmocka_unit_test(parser_accepts_line_of_exactly_the_limit_with_crlf),
        cmocka_unit_test(parser_rejects_body_over_max_body_naming_the_limit),
        cmocka_unit_test(parser_rejects_frame_over_max_frame_naming_the_limit),
        cmocka_unit_test(parser_refuses_zero_limits),
        cmocka_unit_test(parser_keeps_partial_frame_when_feeding_pauses),
        cmocka_unit_test(parser_keeps_headers_valid_and_releases_a_big_frame_buffer),
        cmocka_unit_test(parser_keeps_headers_valid_when_a_nul_terminated_body_grows),
        cmocka_unit_test(command_names_round_trip),
        cmocka_unit_test(serializer_escapes_1_2_headers),
        cmocka_unit_test(serializer_adds_content_length_to_message),
        cmocka_unit_test(serializer_refuses_unrepresentable_headers),
        cmocka_unit_test(serializer_writes_connected_unescaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
