/* Unit tests of common/u64map.c, including a randomized model check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "hamq/u64map.h"

static void put_then_get_returns_the_value(void **state)
{
    struct u64map m;
    int a, b;
    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_put(&m, 7, &a), 0);
    assert_int_equal(u64map_put(&m, 8, &b), 0);
    assert_ptr_equal(u64map_get(&m, 7), &a);
    assert_ptr_equal(u64map_get(&m, 8), &b);
    assert_null(u64map_get(&m, 9));
    assert_int_equal(u64map_put(&m, 7, &b), 0);
    assert_ptr_equal(u64map_get(&m, 7), &b);
    assert_int_equal(m.count, 2);
    u64map_free(&m);
}

static void key_zero_is_refused(void **state)
{
    struct u64map m;
    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_put(&m, 0, &m), -EINVAL);
    assert_null(u64map_get(&m, 0));
    u64map_free(&m);
}

static void random_puts_and_deletes_match_a_plain_array_model(void **state)
{
    enum { KEYS = 512, OPS = 200000 };
    static void *model[KEYS];
    struct u64map m;
    (void)state;
    u64map_init(&m);
    srand(42);
    for (int op = 0; op < OPS; op++) {
        /* Keys spread so several collide in the same home slots. */
        uint64_t k = (uint64_t)(rand() % (KEYS - 1) + 1);
        uint64_t key = k * 1024;
        if (rand() % 3) {
            void *v = (void *)(uintptr_t)(op + 1);
            assert_int_equal(u64map_put(&m, key, v), 0);
            model[k] = v;
        } else {
            assert_ptr_equal(u64map_del(&m, key), model[k]);
            model[k] = NULL;
        }
    }
    size_t n = 0, pos = 0;
    for (int k = 1; k < KEYS; k++) {
        assert_ptr_equal(u64map_get(&m, (uint64_t)k * 1024), model[k]);
        n += model[k] != NULL;
    }
    assert_int_equal(m.count, n);
    size_t seen = 0;
    while (u64map_next(&m, &pos))
        seen++;
    assert_int_equal(seen, n);
    u64map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_then_get_returns_the_value),
        cmocka_unit_test(key_zero_is_refused),
        cmocka_unit_test(random_puts_and_deletes_match_a_plain_array_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
