/* Mutation fuzz of the msgproto record and message decoders: 120k inputs
 * derived from valid records by bit flips, byte overwrites, truncation,
 * extension and length-field corruption. Each input is copied into a heap
 * buffer of exactly its size, so under ASan any read past it is caught.
 * The decoder must return 0 or a negative errno, and a record it accepts
 * must re-encode to the same bytes. Deterministic seed: reproducible. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hamq/msgproto.h"

#define ROUNDS 120000

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static size_t seeds(uint8_t bufs[][512], size_t *lens)
{
    struct hmsg_prop props[3] = {
        {.name = msgproto_str("k"), .type = HMSG_PROP_STRING, .v.bytes = msgproto_str("v")},
        {.name = msgproto_str("n"), .type = HMSG_PROP_INT64, .v.i = 5},
        {.name = msgproto_str("x"), .type = HMSG_PROP_BINARY, .v.bytes = msgproto_str("bin")}};
    struct hmsg m = {.priority = 4, .address = msgproto_str("a"), .nprops = 3, .props = props,
                     .body = msgproto_str("body")};
    uint8_t msg[256];
    ssize_t mlen = hmsg_encode(&m, msg, sizeof(msg));
    struct msgproto_rec recs[4] = {{.type = MSGPROTO_SEND}, {.type = MSGPROTO_SUBSCRIBE},
                                   {.type = MSGPROTO_DELIVER}, {.type = MSGPROTO_FRAGMENT}};
    recs[0].u.send = (struct msgproto_send){1, 2, 0, 0, 4, 0, msgproto_str("q"), msgproto_str(""),
                                            msgproto_str("d"), {msg, (uint32_t)mlen}};
    recs[1].u.sub = (struct msgproto_subscribe){1, 2, 3, 0, 1, 5, msgproto_str("q"),
                                                msgproto_str(""), msgproto_str("s"),
                                                msgproto_str("a = 'b'")};
    recs[2].u.deliver = (struct msgproto_deliver){1, 2, 3, 4, 0, {msg, (uint32_t)mlen}};
    recs[3].u.frag = (struct msgproto_fragment_rec){1, 0, 1, 10, msgproto_str("abc")};
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        lens[n] = (size_t)msgproto_encode(&recs[i], bufs[n], 512), n++;
    memcpy(bufs[n], msg, (size_t)mlen);
    lens[n++] = (size_t)mlen;
    return n;
}

static void mutate(uint8_t *b, size_t *len)
{
    int k = 1 + (int)(rnd() % 4);
    for (int i = 0; i < k; i++) {
        switch (rnd() % 5) {
        case 0:
            if (*len)
                b[rnd() % *len] ^= (uint8_t)(1u << (rnd() % 8));
            break;
        case 1:
            if (*len)
                b[rnd() % *len] = (uint8_t)rnd();
            break;
        case 2:
            *len = *len ? rnd() % *len : 0;
            break;
        case 3:
            if (*len < 600)
                b[(*len)++] = (uint8_t)rnd();
            break;
        default: /* a length field, likely: put a big or small u32 at a random place */
            if (*len >= 4) {
                uint32_t v = (rnd() & 1) ? 0xffffffffu - (rnd() % 16) : rnd() % 64;
                memcpy(b + rnd() % (*len - 3), &v, 4);
            }
        }
    }
}

static void decoders_survive_mutated_records_without_reading_out_of_bounds(void **state)
{
    (void)state;
    uint8_t bufs[8][512];
    size_t lens[8];
    size_t n = seeds(bufs, lens);
    size_t accepted = 0, rejected = 0;
    for (int round = 0; round < ROUNDS; round++) {
        uint8_t work[640];
        size_t s = rnd() % n, len = lens[s];
        memcpy(work, bufs[s], len);
        mutate(work, &len);
        uint8_t *heap = malloc(len ? len : 1);
        memcpy(heap, work, len);
        struct msgproto_rec r;
        struct hmsg m;
        int rc = s == n - 1 ? hmsg_decode(heap, len, &m) : msgproto_decode(heap, len, &r);
        assert_true(rc == 0 || rc < 0);
        if (rc == 0 && s != n - 1) {
            uint8_t again[700];
            ssize_t e = msgproto_encode(&r, again, sizeof(again));
            assert_int_equal(e, (ssize_t)len);
            assert_memory_equal(again, heap, len);
            accepted++;
        } else if (rc == 0) {
            struct hmsg_prop p;
            size_t pos = 0;
            while (hmsg_prop_next(&m, &pos, &p))
                ;
            accepted++;
        } else {
            rejected++;
        }
        free(heap);
    }
    assert_true(accepted > 0);
    assert_true(rejected > ROUNDS / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decoders_survive_mutated_records_without_reading_out_of_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
