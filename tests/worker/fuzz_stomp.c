/* libFuzzer target for the STOMP engine: the input's first byte picks the
 * version and the chunk size; the rest is fed to a parser and, separately, to
 * a whole session (connected first) whose broker callbacks accept everything.
 * Built and run for a bounded time by tests/worker/fuzz_stomp.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_parser(const uint8_t *d, size_t n, enum stomp_version v, size_t chunk)
{
    const struct stomp_limits lim = {
        .max_headers = 16, .max_header_line = 256, .max_body = 4096, .max_frame = 8192};
    struct stomp_parser p;
    if (stomp_parser_init(&p, &lim) < 0)
        abort();
    stomp_parser_set_version(&p, v);
    size_t off = 0;
    while (off < n) {
        size_t end = off + chunk < n ? off + chunk : n, used = 0;
        struct stomp_frame f;
        int r = stomp_parser_feed(&p, d + off, end - off, &used, &f);
        if (used > end - off)
            abort();
        off += used;
        if (r < 0)
            break;
        if (r == 1 && (f.body[f.body_len] != 0 || f.nheaders > lim.max_headers))
            abort();
        for (size_t i = 0; r == 1 && i < f.nheaders; i++)
            if (strlen(f.headers[i].value) != f.headers[i].value_len)
                abort();
    }
    stomp_parser_free(&p);
}

static void fuzz_session(const uint8_t *d, size_t n, enum stomp_version v, size_t chunk)
{
    static const char *const hello[] = {"CONNECT\n\n", "CONNECT\naccept-version:1.1\n\n",
                                        "STOMP\naccept-version:1.2\nheart-beat:1,1\n\n"};
    struct stomp_session_config cfg;
    stomp_session_config_defaults(&cfg);
    cfg.limits = (struct stomp_limits){
        .max_headers = 16, .max_header_line = 256, .max_body = 4096, .max_frame = 8192};
    struct stomp_session *s = stomp_session_new(&cfg);
    if (!s)
        abort();
    stomp_session_input(s, (const uint8_t *)hello[v], strlen(hello[v]) + 1);
    for (size_t off = 0, k = 0; off < n; k++) {
        size_t l = off + chunk < n ? chunk : n - off;
        ssize_t r = stomp_session_input(s, d + off, l);
        if (r < 0)
            break;
        off += (size_t)r;
        struct stomp_delivery dl = {.subscription_id = "1",
                                    .message_id = k & 1 ? "m1" : "m2",
                                    .destination = "/queue/a",
                                    .body = "x",
                                    .body_len = 1,
                                    .token = k};
        stomp_session_deliver(s, &dl);
        stomp_session_tick(s, k * 7);
        const uint8_t *o;
        size_t on;
        stomp_session_output(s, &o, &on);
        stomp_session_consumed_output(s, on);
    }
    stomp_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum stomp_version v = (enum stomp_version)(data[0] % 3);
    size_t chunk = 1 + (data[0] >> 2);
    fuzz_parser(data + 1, size - 1, v, chunk);
    fuzz_session(data + 1, size - 1, v, chunk);
    return 0;
}
