/* Unit tests of shm/ring.c: single-process behaviours of one ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamq/ring.h"

#define CAP 4096u

struct pair {
    void *mem;
    struct ring w, r;
};

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));
    p->mem = aligned_alloc(RING_CACHE_LINE, ring_shared_size(CAP));
    memset(p->mem, 0xAB, ring_shared_size(CAP)); /* init must not rely on zeroed memory */
    assert_int_equal(ring_shared_init(p->mem, CAP), 0);
    assert_int_equal(ring_open(&p->w, p->mem, ring_shared_size(CAP), RING_WRITER), 0);
    assert_int_equal(ring_open(&p->r, p->mem, ring_shared_size(CAP), RING_READER), 0);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    free(p->mem);
    free(p);
    return 0;
}

static struct ring_shared *sh(struct pair *p)
{
    return p->mem;
}

static uint8_t *data(struct pair *p)
{
    return (uint8_t *)p->mem + sizeof(struct ring_shared);
}

static void ring_delivers_records_in_order_with_type_and_payload(void **state)
{
    struct pair *p = *state;
    char buf[32];
    for (int i = 0; i < 20; i++) {
        int n = snprintf(buf, sizeof(buf), "record-%d", i);
        assert_int_equal(ring_write(&p->w, (uint32_t)i, buf, (uint32_t)n), RING_OK);
    }
    assert_int_equal(ring_publish(&p->w), RING_OK);
    struct ring_record rec;
    for (int i = 0; i < 20; i++) {
        int n = snprintf(buf, sizeof(buf), "record-%d", i);
        assert_int_equal(ring_read(&p->r, &rec), RING_OK);
        assert_int_equal(rec.type, i);
        assert_int_equal(rec.length, n);
        assert_memory_equal(rec.payload, buf, n);
    }
    assert_int_equal(ring_read(&p->r, &rec), RING_WOULD_BLOCK);
}

static void ring_reports_would_block_when_empty(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    assert_int_equal(ring_read(&p->r, &rec), RING_WOULD_BLOCK);
    assert_int_equal(ring_read(&p->r, &rec), RING_WOULD_BLOCK);
}

static void ring_records_are_invisible_until_published(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    assert_int_equal(ring_write(&p->w, 1, "abc", 3), RING_OK);
    assert_int_equal(ring_read(&p->r, &rec), RING_WOULD_BLOCK);
    assert_int_equal(ring_publish(&p->w), RING_OK);
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    assert_memory_equal(rec.payload, "abc", 3);
}

static void ring_carries_zero_length_records(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    assert_int_equal(ring_send(&p->w, 9, NULL, 0), RING_OK);
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    assert_int_equal(rec.type, 9);
    assert_int_equal(rec.length, 0);
}

static void ring_reports_would_block_when_full_and_never_overwrites(void **state)
{
    struct pair *p = *state;
    uint8_t buf[100];
    int n = 0;
    for (;; n++) {
        memset(buf, n, sizeof(buf));
        enum ring_outcome o = ring_send(&p->w, 1, buf, sizeof(buf));
        if (o == RING_WOULD_BLOCK)
            break;
        assert_int_equal(o, RING_OK);
        assert_true(n < 1000);
    }
    assert_int_equal(n, CAP / 112); /* 100 B + 8 B header, aligned to 8 */
    assert_int_equal(ring_send(&p->w, 1, buf, sizeof(buf)), RING_WOULD_BLOCK);
    struct ring_record rec;
    for (int i = 0; i < n; i++) {
        assert_int_equal(ring_read(&p->r, &rec), RING_OK);
        assert_int_equal(rec.payload[0], (uint8_t)i);
        assert_int_equal(rec.payload[99], (uint8_t)i);
    }
    assert_int_equal(ring_read(&p->r, &rec), RING_WOULD_BLOCK);
    /* Space comes back only once the reader releases it. */
    assert_int_equal(ring_send(&p->w, 1, buf, sizeof(buf)), RING_WOULD_BLOCK);
    ring_read_release(&p->r);
    assert_int_equal(ring_send(&p->w, 1, buf, sizeof(buf)), RING_OK);
}

static void ring_rejects_record_longer_than_capacity(void **state)
{
    struct pair *p = *state;
    uint32_t max = ring_max_record(&p->w);
    assert_int_equal(max, CAP / 4 - RING_HEADER_BYTES);
    void *ptr;
    assert_int_equal(ring_claim(&p->w, 1, CAP + 1, &ptr), RING_TOO_BIG);
    assert_int_equal(ring_claim(&p->w, 1, max + 1, &ptr), RING_TOO_BIG);
    assert_int_equal(ring_claim(&p->w, 1, max, &ptr), RING_OK);
}

static void ring_rejects_the_reserved_padding_type(void **state)
{
    struct pair *p = *state;
    assert_int_equal(ring_send(&p->w, RING_TYPE_PAD, "x", 1), RING_TOO_BIG);
}

static void ring_pads_at_the_wrap_and_reader_skips_padding(void **state)
{
    struct pair *p = *state;
    uint8_t buf[1000];
    struct ring_record rec;
    /* 4 × 1008 B = 4032: the 5th record does not fit in the 64 B left. */
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 3; i++) {
            memset(buf, round * 3 + i, sizeof(buf));
            assert_int_equal(ring_send(&p->w, 2, buf, sizeof(buf)), RING_OK);
            assert_int_equal(ring_read(&p->r, &rec), RING_OK);
            assert_int_equal(rec.length, sizeof(buf));
            assert_int_equal(rec.payload[999], (uint8_t)(round * 3 + i));
            ring_read_release(&p->r);
        }
    }
    uint64_t wp = atomic_load(&sh(p)->write_pos);
    assert_true(wp > 4 * CAP); /* wrapped several times */
    assert_int_equal(wp % 8, 0);
    assert_true(wp != 30 * 1008); /* padding was inserted */
}

static void ring_claim_commit_can_shrink_a_record(void **state)
{
    struct pair *p = *state;
    void *ptr;
    struct ring_record rec;
    assert_int_equal(ring_claim(&p->w, 5, 200, &ptr), RING_OK);
    memcpy(ptr, "hello", 5);
    ring_commit(&p->w, 5);
    assert_int_equal(ring_write(&p->w, 6, "x", 1), RING_OK);
    assert_int_equal(ring_publish(&p->w), RING_OK);
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    assert_int_equal(rec.type, 5);
    assert_int_equal(rec.length, 5);
    assert_memory_equal(rec.payload, "hello", 5);
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    assert_int_equal(rec.type, 6);
    assert_int_equal(atomic_load(&sh(p)->write_pos), 16 + 16);
}

static void ring_claim_without_commit_publishes_nothing(void **state)
{
    struct pair *p = *state;
    void *ptr;
    struct ring_record rec;
    assert_int_equal(ring_claim(&p->w, 5, 64, &ptr), RING_OK);
    assert_int_equal(ring_publish(&p->w), RING_OK);
    assert_int_equal(ring_read(&p->r, &rec), RING_WOULD_BLOCK);
}

static void ring_detects_corrupt_length_and_stays_broken(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    assert_int_equal(ring_send(&p->w, 1, "abcdefgh", 8), RING_OK);
    uint32_t bad = 0x7fffffff;
    memcpy(data(p), &bad, 4); /* a malicious writer rewrites the length */
    assert_null(ring_broken_reason(&p->r, NULL));
    assert_int_equal(ring_read(&p->r, &rec), RING_BROKEN);
    assert_int_equal(ring_read(&p->r, &rec), RING_BROKEN);
    uint64_t pos = 1;
    assert_string_equal(ring_broken_reason(&p->r, &pos), "record length above the maximum record");
    assert_int_equal(pos, 0);
    assert_int_equal(ring_send(&p->w, 1, "x", 1), RING_BROKEN); /* sticky, shared */
    assert_string_equal(ring_broken_reason(&p->w, NULL), "marked broken by the peer");
}

static void ring_detects_length_beyond_published_bytes(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    assert_int_equal(ring_send(&p->w, 1, "abcdefgh", 8), RING_OK);
    uint32_t bad = 64; /* within max_record but past write_pos */
    memcpy(data(p), &bad, 4);
    assert_int_equal(ring_read(&p->r, &rec), RING_BROKEN);
    assert_string_equal(ring_broken_reason(&p->r, NULL), "record length past the published bytes");
}

static void ring_detects_padding_that_does_not_reach_the_end(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    assert_int_equal(ring_send(&p->w, 1, "abcdefgh", 8), RING_OK);
    uint32_t hdr[2] = {8, RING_TYPE_PAD};
    memcpy(data(p), hdr, 8);
    assert_int_equal(ring_read(&p->r, &rec), RING_BROKEN);
    assert_non_null(strstr(ring_broken_reason(&p->r, NULL), "padding"));
}

static void ring_detects_write_position_beyond_capacity(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    atomic_store(&sh(p)->write_pos, 2 * CAP);
    assert_int_equal(ring_read(&p->r, &rec), RING_BROKEN);
}

static void ring_detects_misaligned_write_position(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    atomic_store(&sh(p)->write_pos, 12);
    assert_int_equal(ring_read(&p->r, &rec), RING_BROKEN);
}

static void ring_writer_detects_read_position_ahead_of_it(void **state)
{
    struct pair *p = *state;
    uint8_t buf[900];
    atomic_store(&sh(p)->read_pos, 8 * CAP);
    enum ring_outcome o = RING_OK;
    for (int i = 0; i < 10 && o == RING_OK; i++)
        o = ring_send(&p->w, 1, buf, sizeof(buf));
    assert_int_equal(o, RING_BROKEN);
}

static void ring_reports_peer_gone_after_writer_closes_and_drains(void **state)
{
    struct pair *p = *state;
    struct ring_record rec;
    assert_int_equal(ring_write(&p->w, 1, "last", 4), RING_OK);
    ring_close(&p->w); /* publishes what was committed */
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    assert_memory_equal(rec.payload, "last", 4);
    assert_int_equal(ring_read(&p->r, &rec), RING_PEER_GONE);
    assert_int_equal(ring_wait(&p->r, 0, 1000000), RING_PEER_GONE);
}

static void ring_writer_gets_peer_gone_after_reader_closes(void **state)
{
    struct pair *p = *state;
    ring_close(&p->r);
    assert_int_equal(ring_send(&p->w, 1, "x", 1), RING_PEER_GONE);
}

static void ring_open_rejects_bad_capacity(void **state)
{
    (void)state;
    struct ring r;
    void *mem = aligned_alloc(RING_CACHE_LINE, ring_shared_size(CAP));
    assert_int_equal(ring_shared_init(mem, 1000), -EINVAL);
    assert_int_equal(ring_shared_init(mem, 512), -EINVAL);
    assert_int_equal(ring_shared_init(mem, CAP), 0);
    assert_int_equal(ring_open(&r, mem, ring_shared_size(CAP) - 1, RING_READER), -EINVAL);
    ((struct ring_shared *)mem)->capacity = 3000;
    assert_int_equal(ring_open(&r, mem, ring_shared_size(CAP), RING_READER), -EINVAL);
    free(mem);
}

static void ring_wait_times_out_when_nothing_arrives(void **state)
{
    struct pair *p = *state;
    ring_set_spin(&p->r, 10);
    assert_int_equal(ring_wait(&p->r, 0, 20 * 1000 * 1000), RING_WOULD_BLOCK);
    assert_true(p->r.parks >= 1);
    assert_int_equal(atomic_load(&sh(p)->reader_wait), RING_WAIT_NONE);
}

static void ring_wait_returns_at_once_when_data_is_there(void **state)
{
    struct pair *p = *state;
    assert_int_equal(ring_send(&p->w, 1, "x", 1), RING_OK);
    assert_int_equal(ring_wait(&p->r, 0, 1000), RING_OK);
    assert_int_equal(p->r.parks, 0);
}

static void ring_writer_wait_reports_room_after_release(void **state)
{
    struct pair *p = *state;
    uint8_t buf[1000];
    struct ring_record rec;
    while (ring_send(&p->w, 1, buf, sizeof(buf)) == RING_OK)
        ;
    ring_set_spin(&p->w, 1);
    assert_int_equal(ring_wait(&p->w, sizeof(buf), 1000000), RING_WOULD_BLOCK);
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    ring_read_release(&p->r);
    assert_int_equal(ring_wait(&p->w, sizeof(buf), 1000000), RING_OK);
}

static void ring_publish_rings_the_bell_only_when_reader_armed(void **state)
{
    struct pair *p = *state;
    int fds[2];
    uint8_t b[8];
    assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
    ring_set_bell(&p->w, fds[1]);
    assert_int_equal(ring_send(&p->w, 1, "a", 1), RING_OK);
    assert_int_equal(read(fds[0], b, sizeof(b)), -1); /* not armed: no byte */
    struct ring_record rec;
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    assert_int_equal(ring_arm_bell(&p->r), RING_WOULD_BLOCK);
    assert_int_equal(ring_send(&p->w, 1, "b", 1), RING_OK);
    assert_int_equal(ring_send(&p->w, 1, "c", 1), RING_OK);
    assert_int_equal(read(fds[0], b, sizeof(b)), 1); /* one byte per arming */
    assert_int_equal(p->w.wakes, 1);
    close(fds[0]);
    close(fds[1]);
}

static void ring_release_rings_the_bell_of_a_writer_armed_on_a_full_ring(void **state)
{
    struct pair *p = *state;
    int fds[2];
    uint8_t b[8], buf[1000] = {0};
    struct ring_record rec;
    assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
    ring_set_bell(&p->r, fds[1]);
    while (ring_send(&p->w, 1, buf, sizeof(buf)) == RING_OK)
        ;
    assert_int_equal(ring_arm_bell_room(&p->w, sizeof(buf)), RING_WOULD_BLOCK);
    assert_int_equal(ring_read(&p->r, &rec), RING_OK);
    ring_read_release(&p->r);
    assert_int_equal(read(fds[0], b, sizeof(b)), 1);
    assert_int_equal(ring_arm_bell_room(&p->w, sizeof(buf)), RING_OK); /* room now */
    assert_int_equal(atomic_load(&sh(p)->writer_wait), RING_WAIT_NONE);
    assert_int_equal(ring_arm_bell_room(&p->r, 1), RING_BROKEN); /* wrong side */
    close(fds[0]);
    close(fds[1]);
}

static void ring_arm_bell_refuses_to_sleep_when_data_is_there(void **state)
{
    struct pair *p = *state;
    assert_int_equal(ring_send(&p->w, 1, "a", 1), RING_OK);
    assert_int_equal(ring_arm_bell(&p->r), RING_OK);
    assert_int_equal(atomic_load(&sh(p)->reader_wait), RING_WAIT_NONE);
}

static void ring_outcomes_have_names(void **state)
{
    (void)state;
    assert_string_equal(ring_outcome_str(RING_OK), "ok");
    assert_string_equal(ring_outcome_str(RING_WOULD_BLOCK), "would block");
    assert_string_equal(ring_outcome_str(RING_PEER_GONE), "peer gone");
    assert_string_equal(ring_outcome_str(RING_BROKEN), "broken");
    assert_string_equal(ring_outcome_str(RING_TOO_BIG), "too big");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(ring_delivers_records_in_order_with_type_and_payload),
        T(ring_reports_would_block_when_empty),
        T(ring_records_are_invisible_until_published),
        T(ring_carries_zero_length_records),
        T(ring_reports_would_block_when_full_and_never_overwrites),
        T(ring_rejects_record_longer_than_capacity),
        T(ring_rejects_the_reserved_padding_type),
        T(ring_pads_at_the_wrap_and_reader_skips_padding),
        T(ring_claim_commit_can_shrink_a_record),
        T(ring_claim_without_commit_publishes_nothing),
        T(ring_detects_corrupt_length_and_stays_broken),
        T(ring_detects_length_beyond_published_bytes),
        T(ring_detects_padding_that_does_not_reach_the_end),
        T(ring_detects_write_position_beyond_capacity),
        T(ring_detects_misaligned_write_position),
        T(ring_writer_detects_read_position_ahead_of_it),
        T(ring_reports_peer_gone_after_writer_closes_and_drains),
        T(ring_writer_gets_peer_gone_after_reader_closes),
        cmocka_unit_test(ring_open_rejects_bad_capacity),
        T(ring_wait_times_out_when_nothing_arrives),
        T(ring_wait_returns_at_once_when_data_is_there),
        T(ring_writer_wait_reports_room_after_release),
        T(ring_publish_rings_the_bell_only_when_reader_armed),
        T(ring_arm_bell_refuses_to_sleep_when_data_is_there),
        T(ring_release_rings_the_bell_of_a_writer_armed_on_a_full_ring),
        cmocka_unit_test(ring_outcomes_have_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
