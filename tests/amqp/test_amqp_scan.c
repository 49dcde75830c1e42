/* Unit tests of daemons/worker_amqp_scan.c: AMQP 1.0 encoded values read in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "worker_amqp.h"

static int scan(const uint8_t *b, size_t n, struct wka_val *v, size_t *used)
{
    struct wka_cur c = {b, b + n};
    int r = wka_scan(&c, v);

    *used = (size_t)(c.p - b);
    return r;
}

static void fixed_width_values_are_read_big_endian(void **state)
{
    (void)state;
    static const uint8_t ulong_v[] = {0x80, 0, 0, 0, 0, 0, 0, 1, 2};
    static const uint8_t int_v[] = {0x71, 0xff, 0xff, 0xff, 0xfe};
    static const uint8_t small[] = {0x54, 0xfb};
    struct wka_val v;
    size_t used;

    assert_int_equal(scan(ulong_v, sizeof(ulong_v), &v, &used), 0);
    assert_int_equal(used, 9);
    assert_true(wka_val_is_ulong(&v));
    assert_int_equal(wka_val_uint(&v, 0), 258);
    assert_int_equal(scan(int_v, sizeof(int_v), &v, &used), 0);
    assert_int_equal(wka_val_int(&v, 0), -2);
    assert_int_equal(scan(small, sizeof(small), &v, &used), 0);
    assert_int_equal(wka_val_int(&v, 0), -5);
}

static void a_value_longer_than_its_bytes_is_rejected(void **state)
{
    (void)state;
    static const uint8_t str8[] = {0xa1, 0x05, 'a', 'b'};
    static const uint8_t uint_short[] = {0x70, 0, 0};
    static const uint8_t list8[] = {0xc0, 0x10, 0x01, 0x41};
    struct wka_val v;
    size_t used;

    assert_int_equal(scan(str8, sizeof(str8), &v, &used), -EBADMSG);
    assert_int_equal(scan(uint_short, sizeof(uint_short), &v, &used), -EBADMSG);
    assert_int_equal(scan(list8, sizeof(list8), &v, &used), -EBADMSG);
}

static void a_list_whose_count_does_not_fill_its_size_is_rejected(void **state)
{
    (void)state;
    static const uint8_t too_many[] = {0xc0, 0x02, 0x02, 0x41};       /* 2 items, 1 byte */
    static const uint8_t too_few[] = {0xc0, 0x03, 0x01, 0x41, 0x42};  /* 1 item, 2 bytes */
    static const uint8_t ok[] = {0xc0, 0x03, 0x02, 0x41, 0x42};
    struct wka_val v;
    size_t used;

    assert_int_equal(scan(too_many, sizeof(too_many), &v, &used), -EBADMSG);
    assert_int_equal(scan(too_few, sizeof(too_few), &v, &used), -EBADMSG);
    assert_int_equal(scan(ok, sizeof(ok), &v, &used), 0);
    assert_int_equal(v.count, 2);
    assert_int_equal(used, sizeof(ok));
}

static void a_map_with_an_odd_number_of_entries_is_rejected(void **state)
{
    (void)state;
    static const uint8_t odd[] = {0xc1, 0x02, 0x01, 0x41};
    struct wka_val v;
    size_t used;

    assert_int_equal(scan(odd, sizeof(odd), &v, &used), -EBADMSG);
}

static void unknown_constructors_are_rejected(void **state)
{
    (void)state;
    static const uint8_t codes[] = {0x46, 0x57, 0x62, 0x75, 0x85, 0x99, 0xa2, 0xc2, 0xe1, 0xff};
    struct wka_val v;
    size_t used;
    uint8_t b[32] = {0};

    for (size_t i = 0; i < sizeof(codes); i++) {
        b[0] = codes[i];
        assert_int_equal(scan(b, sizeof(b), &v, &used), -EBADMSG);
    }
}

static void a_described_value_inside_a_described_value_keeps_the_outer_descriptor(void **state)
{
    (void)state;
    /* amqp-value (0x77) holding a described list with a symbolic descriptor "x:d" */
    static const uint8_t b[] = {0x00, 0x53, 0x77, 0x00, 0xa3, 0x03, 'x', ':', 'd', 0x45};
    struct wka_val v, inner;
    size_t used;

    assert_int_equal(scan(b, sizeof(b), &v, &used), 0);
    assert_int_equal(used, sizeof(b));
    assert_true(v.described);
    assert_int_equal(v.desc, 0x77);
    assert_ptr_equal(v.value_at, b + 3);
    struct wka_cur in = {v.value_at, b + sizeof(b)};
    assert_int_equal(wka_scan(&in, &inner), 0);
    assert_true(inner.described);
    assert_int_equal(inner.desc, UINT64_MAX);
    assert_int_equal(inner.dsym_len, 3);
    assert_memory_equal(inner.dsym, "x:d", 3);
    assert_true(wka_val_is_compound(&inner));
}

static void an_array_checks_every_element_against_its_constructor(void **state)
{
    (void)state;
    static const uint8_t syms[] = {0xe0, 0x07, 0x02, 0xa3, 0x01, 'a', 0x02, 'b', 'c'};
    static const uint8_t short_elem[] = {0xe0, 0x06, 0x02, 0xa3, 0x01, 'a', 0x03, 'b'};
    struct wka_val v;
    size_t used;

    assert_int_equal(scan(syms, sizeof(syms), &v, &used), 0);
    assert_int_equal(v.count, 2);
    assert_int_equal(scan(short_elem, sizeof(short_elem), &v, &used), -EBADMSG);
}

/* depth list8s nested in each other around a null; returns the length. */
static size_t nested(uint8_t *b, int depth)
{
    size_t n = 0;

    for (int i = 0; i < depth; i++) {
        b[n++] = 0xc0;
        b[n++] = (uint8_t)(3 * (depth - 1 - i) + 2); /* count byte + what is inside */
        b[n++] = 0x01;
    }
    b[n++] = 0x40;
    return n;
}

static void nesting_deeper_than_the_limit_is_rejected(void **state)
{
    (void)state;
    uint8_t b[200];
    struct wka_val v;
    size_t used, n;

    n = nested(b, 10);
    assert_int_equal(scan(b, n, &v, &used), 0);
    assert_int_equal(used, n);
    n = nested(b, 60);
    assert_int_equal(scan(b, n, &v, &used), -EBADMSG);
}

static void list_elements_are_entered_in_place(void **state)
{
    (void)state;
    static const uint8_t hdr[] = {0xc0, 0x04, 0x02, 0x41, 0x50, 0x07}; /* [true, ubyte 7] */
    struct wka_val v, e;
    struct wka_cur in;
    size_t used;

    assert_int_equal(scan(hdr, sizeof(hdr), &v, &used), 0);
    wka_val_enter(&v, &in);
    assert_int_equal(wka_scan(&in, &e), 0);
    assert_true(wka_val_bool(&e, false));
    assert_int_equal(wka_scan(&in, &e), 0);
    assert_int_equal(wka_val_uint(&e, 4), 7);
    assert_int_equal(wka_scan(&in, &e), -EBADMSG); /* the end */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_width_values_are_read_big_endian),
        cmocka_unit_test(a_value_longer_than_its_bytes_is_rejected),
        cmocka_unit_test(a_list_whose_count_does_not_fill_its_size_is_rejected),
        cmocka_unit_test(a_map_with_an_odd_number_of_entries_is_rejected),
        cmocka_unit_test(unknown_constructors_are_rejected),
        cmocka_unit_test(a_described_value_inside_a_described_value_keeps_the_outer_descriptor),
        cmocka_unit_test(an_array_checks_every_element_against_its_constructor),
        cmocka_unit_test(nesting_deeper_than_the_limit_is_rejected),
        cmocka_unit_test(list_elements_are_entered_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
