/* Unit tests of common/log.c: the stderr format, filtering and target choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hamq/log.h"

/* Runs fn with stderr redirected to a file and returns what was written. */
static char *capture(void (*fn)(void))
{
    static char buf[8192];
    char p[] = "/tmp/hamq-test-log-XXXXXX";
    int fd = mkstemp(p), saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_true(fd >= 0);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(p);
    buf[n < 0 ? 0 : n] = 0;
    return buf;
}

static void emit_warning_with_fields(void)
{
    log_fields(LOG_WARNING, (const char *const[]){"HAMQ_EVENT=promote", "HAMQ_EPOCH=7", NULL},
               "promoted at epoch %d", 7);
}

static void emit_debug(void)
{
    log_debug("hidden %d", 1);
}

static void stderr_line_has_ident_pid_priority_message_and_fields(void **state)
{
    char want[64];
    (void)state;
    log_init("hamq-test", LOG_TARGET_STDERR);
    char *out = capture(emit_warning_with_fields);
    snprintf(want, sizeof(want), "hamq-test[%d] warning: promoted at epoch 7", (int)getpid());
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "{HAMQ_EVENT=promote HAMQ_EPOCH=7}\n"));
    assert_int_equal(out[strlen(out) - 1], '\n');
}

static void records_above_max_priority_are_dropped(void **state)
{
    (void)state;
    log_init("hamq-test", LOG_TARGET_STDERR);
    log_set_max_priority(LOG_INFO);
    assert_string_equal(capture(emit_debug), "");
    log_set_max_priority(LOG_DEBUG);
    assert_non_null(strstr(capture(emit_debug), "debug: hidden 1"));
    log_set_max_priority(LOG_INFO);
}

static void auto_target_is_stderr_without_journal_stream(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("hamq-test", LOG_TARGET_AUTO);
    assert_int_equal(log_current_target(), LOG_TARGET_STDERR);
}

static void auto_target_is_journal_when_journal_stream_names_stderr(void **state)
{
    struct stat st;
    char v[64];
    (void)state;
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    log_init("hamq-test", LOG_TARGET_AUTO);
    assert_int_equal(log_current_target(), LOG_TARGET_JOURNAL);
    setenv("JOURNAL_STREAM", "1:1", 1); /* inherited from a parent, not our stderr */
    log_init("hamq-test", LOG_TARGET_AUTO);
    assert_int_equal(log_current_target(), LOG_TARGET_STDERR);
    unsetenv("JOURNAL_STREAM");
}

static void priority_names_parse_and_unknown_is_einval(void **state)
{
    (void)state;
    assert_int_equal(log_priority_from_name("debug"), LOG_DEBUG);
    assert_int_equal(log_priority_from_name("warning"), LOG_WARNING);
    assert_int_equal(log_priority_from_name("error"), LOG_ERR);
    assert_true(log_priority_from_name("loud") < 0);
}

static void emit_long(void)
{
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    log_info("%s", big);
}

static void overlong_message_is_cut_with_a_marker_not_overflowed(void **state)
{
    (void)state;
    log_init("hamq-test", LOG_TARGET_STDERR);
    char *out = capture(emit_long);
    assert_non_null(strstr(out, "x...\n"));
    assert_true(strlen(out) < 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stderr_line_has_ident_pid_priority_message_and_fields),
        cmocka_unit_test(records_above_max_priority_are_dropped),
        cmocka_unit_test(auto_target_is_stderr_without_journal_stream),
        cmocka_unit_test(auto_target_is_journal_when_journal_stream_names_stderr),
        cmocka_unit_test(priority_names_parse_and_unknown_is_einval),
        cmocka_unit_test(overlong_message_is_cut_with_a_marker_not_overflowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
