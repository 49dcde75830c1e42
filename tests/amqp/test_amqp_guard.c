/*
 * Unit tests of daemons/worker_amqp_guard.c: the framing rules Proton does not
 * check. The byte streams are what a client sends, encoded by python3-qpid-
 * proton's codec (tests/amqp/t17_amqp_acceptance.py's frame helpers), each fed
 * whole and one byte at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "worker_amqp.h"

/* header, open, begin (channel 0) come first in each. */
static const char LEGIT[] =
    "414d5150000100000000001702000000005310d00000000700000001a101630000001a02000000005311d000"
    "00000a000000044043526452640000002b02000000005312d00000001b00000006a102726c43414040005328"
    "d00000000700000001a101710000001602000000005316d0000000060000000243410000002b020000000053"
    "12d00000001b00000006a102726c43414040005328d00000000700000001a101710000000c02000000005317"
    "450000001a02000000005311d00000000a000000044043526452640000002c02000000005312d00000001c00"
    "000007a102736c4342404040005329d00000000700000001a101710000001f02000000005314d00000000900"
    "0000034343a00174005377a101780000001f02000000005314d000000009000000034343a00174005377a101"
    "78";
static const char BEGIN_TWICE[] =
    "414d5150000100000000001702000000005310d00000000700000001a101630000001a02000000005311d000"
    "00000a000000044043526452640000001a02000000005311d00000000a00000004404352645264";
static const char ATTACH_TWICE[] =
    "414d5150000100000000001702000000005310d00000000700000001a101630000001a02000000005311d000"
    "00000a000000044043526452640000002b02000000005312d00000001b00000006a102726c43414040005328"
    "d00000000700000001a101710000002b02000000005312d00000001b00000006a102726c43414040005328d0"
    "0000000700000001a10171";
static const char TRANSFER_ON_RECEIVER[] =
    "414d5150000100000000001702000000005310d00000000700000001a101630000001a02000000005311d000"
    "00000a000000044043526452640000002b02000000005312d00000001b00000006a102726c43414040005328"
    "d00000000700000001a101710000001f02000000005314d000000009000000034343a00174005377a10178";
static const char LONG_NAME_TWICE[] =
    "414d5150000100000000001702000000005310d00000000700000001a101630000001a02000000005311d000"
    "00000a000000044043526452640000028402000000005312d00000027400000006b1000002586e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e43414040005328d00000000700000001a10171000002"
    "8402000000005312d00000027400000006b1000002586e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
    "6e6e6e6e6e6e43414040005328d00000000700000001a10171";


static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (h[0] && h[1] && n < cap) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

/* Feeds hex whole (step 0) or step bytes at a time; the violation's condition or NULL. */
static const char *feed(const char *hex, size_t step, char *text, size_t cap)
{
    static uint8_t b[8192];
    size_t n = unhex(hex, b, sizeof(b));
    struct wka_guard g;
    const char *cond = NULL;

    wka_guard_init(&g);
    text[0] = 0;
    for (size_t at = 0; at < n && !cond;) {
        size_t k = step && step < n - at ? step : n - at;
        if (wka_guard_feed(&g, b + at, k, text, cap) < 0)
            cond = g.cond;
        at += k;
    }
    wka_guard_free(&g);
    return cond;
}

static void a_well_behaved_client_passes_detach_reattach_end_and_begin_again(void **state)
{
    (void)state;
    char text[200];

    assert_null(feed(LEGIT, 0, text, sizeof(text)));
    assert_null(feed(LEGIT, 1, text, sizeof(text)));
    assert_null(feed(LEGIT, 7, text, sizeof(text)));
}

static void a_begin_on_a_channel_in_use_is_refused(void **state)
{
    (void)state;
    char text[200];

    for (size_t step = 0; step < 3; step++) {
        assert_string_equal(feed(BEGIN_TWICE, step, text, sizeof(text)), "amqp:not-allowed");
        assert_non_null(strstr(text, "begin on channel 0"));
    }
}

static void an_attach_on_a_handle_in_use_is_refused_even_with_a_long_name(void **state)
{
    (void)state;
    char text[200];

    for (size_t step = 0; step < 3; step++) {
        assert_string_equal(feed(ATTACH_TWICE, step, text, sizeof(text)),
                            "amqp:session:handle-in-use");
        assert_string_equal(feed(LONG_NAME_TWICE, step, text, sizeof(text)),
                            "amqp:session:handle-in-use");
        assert_non_null(strstr(text, "attach on handle 0 of channel 0"));
    }
}

static void a_transfer_where_the_client_receives_is_refused(void **state)
{
    (void)state;
    char text[200];

    for (size_t step = 0; step < 3; step++) {
        assert_string_equal(feed(TRANSFER_ON_RECEIVER, step, text, sizeof(text)),
                            "amqp:session:errant-link");
        assert_non_null(strstr(text, "the client is the receiving end"));
    }
}

static void of_a_transfer_only_the_handle_is_kept_never_the_message(void **state)
{
    (void)state;
    static uint8_t b[8192];
    size_t n = unhex(LEGIT, b, sizeof(b)); /* ends with a transfer of a small message */
    struct wka_guard g;
    char text[64];

    wka_guard_init(&g);
    assert_int_equal(wka_guard_feed(&g, b, n, text, sizeof(text)), 0);
    assert_true(g.inspected && !g.off);
    assert_in_range(g.plen, 1, 3 + 9 + 5); /* descriptor, list header, handle */
    wka_guard_free(&g);
}

static void a_frame_it_cannot_follow_leaves_the_rest_to_proton(void **state)
{
    (void)state;
    static const uint8_t bad[] = {'A', 'M', 'Q', 'P', 0, 1, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0};
    struct wka_guard g;
    char text[64];

    wka_guard_init(&g);
    assert_int_equal(wka_guard_feed(&g, bad, sizeof(bad), text, sizeof(text)), 0);
    assert_true(g.off); /* a size below its own header: Proton reports it */
    wka_guard_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_well_behaved_client_passes_detach_reattach_end_and_begin_again),
        cmocka_unit_test(a_begin_on_a_channel_in_use_is_refused),
        cmocka_unit_test(an_attach_on_a_handle_in_use_is_refused_even_with_a_long_name),
        cmocka_unit_test(a_transfer_where_the_client_receives_is_refused),
        cmocka_unit_test(of_a_transfer_only_the_handle_is_kept_never_the_message),
        cmocka_unit_test(a_frame_it_cannot_follow_leaves_the_rest_to_proton),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
