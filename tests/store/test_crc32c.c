/* Unit tests of daemons/store/crc32c.c: known values, and hardware == table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

static void crc32c_of_the_standard_check_string_is_e3069283(void **state)
{
    (void)state;
    assert_int_equal(crc32c_table(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
}

static void crc32c_of_32_zero_bytes_matches_rfc3720(void **state)
{
    uint8_t z[32] = {0}, f[32];
    (void)state;
    memset(f, 0xff, sizeof f);
    assert_int_equal(crc32c_table(0, z, 32), 0x8a9136aau);
    assert_int_equal(crc32c_table(0, f, 32), 0x62a8ab43u);
}

static void hardware_and_table_give_the_same_crc_for_every_length_and_alignment(void **state)
{
    (void)state;
    if (!crc32c_hw_available()) {
        skip();
    }
    uint8_t buf[4200];
    srand(7);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rand();
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += (len < 80 ? 1 : 97))
            assert_int_equal(crc32c_hw(0, buf + off, len), crc32c_table(0, buf + off, len));
}

static void chained_crc_equals_crc_of_the_whole_buffer(void **state)
{
    (void)state;
    const char *s = "hamq journal record header and payload";
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++) {
        assert_int_equal(crc32c(crc32c(0, s, k), s + k, n - k), crc32c(0, s, n));
        assert_int_equal(crc32c_table(crc32c_table(0, s, k), s + k, n - k), crc32c(0, s, n));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_of_the_standard_check_string_is_e3069283),
        cmocka_unit_test(crc32c_of_32_zero_bytes_matches_rfc3720),
        cmocka_unit_test(hardware_and_table_give_the_same_crc_for_every_length_and_alignment),
        cmocka_unit_test(chained_crc_equals_crc_of_the_whole_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
