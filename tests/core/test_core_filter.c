/* Unit tests of the selector subset (daemons/core/core-filter.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core-filter.h"

static uint8_t buf[512];
static struct hmsg msg;

static const struct hmsg *sample(void)
{
    struct hmsg_prop p[4] = {
        {.name = msgproto_str("color"), .type = HMSG_PROP_STRING, .v.bytes = msgproto_str("red")},
        {.name = msgproto_str("n"), .type = HMSG_PROP_INT64, .v.i = 7},
        {.name = msgproto_str("price"), .type = HMSG_PROP_DOUBLE, .v.d = 9.5},
        {.name = msgproto_str("vip"), .type = HMSG_PROP_BOOL, .v.b = true}};
    struct hmsg m = {.priority = 6, .nprops = 4, .props = p, .subject = msgproto_str("order")};
    ssize_t n = hmsg_encode(&m, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(hmsg_decode(buf, (size_t)n, &msg), 0);
    return &msg;
}

static bool matches(const char *sel)
{
    char err[128];
    struct core_filter *f = core_filter_compile(sel, err, sizeof(err));
    if (!f)
        fail_msg("%s: %s", sel, err);
    bool r = core_filter_match(f, sample());
    core_filter_free(f);
    return r;
}

static void string_equality_and_inequality_match(void **state)
{
    (void)state;
    assert_true(matches("color = 'red'"));
    assert_false(matches("color = 'blue'"));
    assert_true(matches("color <> 'blue'"));
    assert_true(matches("'red' = color"));
}

static void numeric_comparisons_mix_integers_and_decimals(void **state)
{
    (void)state;
    assert_true(matches("n > 5"));
    assert_true(matches("n >= 7 AND n <= 7"));
    assert_false(matches("n < 7"));
    assert_true(matches("price > 9"));
    assert_true(matches("price < 1e1"));
    assert_true(matches("JMSPriority = 6"));
}

static void and_or_not_and_parentheses_combine(void **state)
{
    (void)state;
    assert_true(matches("color = 'blue' OR (n = 7 AND NOT color = 'green')"));
    assert_false(matches("NOT (color = 'red')"));
    assert_true(matches("vip = TRUE and jmstype_missing IS NULL"));
    assert_true(matches("JMSType = 'order'"));
}

static void missing_property_is_unknown_not_true(void **state)
{
    (void)state;
    assert_false(matches("missing = 'x'"));
    assert_false(matches("NOT missing = 'x'"));
    assert_true(matches("missing IS NULL"));
    assert_true(matches("color IS NOT NULL"));
    assert_true(matches("missing = 'x' OR n = 7"));
    assert_false(matches("color = 7")); /* different types: unknown */
}

static void unsupported_syntax_is_refused_with_a_position(void **state)
{
    (void)state;
    const char *bad[] = {"a LIKE 'x%'", "a IN ('x')", "n + 1 > 2", "(a = 'x'", "a = 'x",
                         "", "a =", "a IS 5", "AND"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[128] = "";
        struct core_filter *f = core_filter_compile(bad[i], err, sizeof(err));
        assert_null(f);
        assert_non_null(strstr(err, "selector:"));
        assert_non_null(strstr(err, "position"));
    }
}

static void deep_nesting_is_refused_instead_of_exhausting_the_stack(void **state)
{
    (void)state;
    char sel[4096];
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        sel[n++] = '(';
    strcpy(sel + n, "a = 1");
    n += 5;
    for (int i = 0; i < 1000; i++)
        sel[n++] = ')';
    sel[n] = 0;
    char err[128];
    assert_null(core_filter_compile(sel, err, sizeof(err)));
    assert_non_null(strstr(err, "nested"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(string_equality_and_inequality_match),
        cmocka_unit_test(numeric_comparisons_mix_integers_and_decimals),
        cmocka_unit_test(and_or_not_and_parentheses_combine),
        cmocka_unit_test(missing_property_is_unknown_not_true),
        cmocka_unit_test(unsupported_syntax_is_refused_with_a_position),
        cmocka_unit_test(deep_nesting_is_refused_instead_of_exhausting_the_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
