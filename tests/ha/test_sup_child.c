/*
 * Unit tests of supervisor/sup_child.c with real /bin/sh children: exit-code
 * decisions, reaping through the pidfd, bounded restart backoff, graceful
 * stop with SIGKILL escalation, and killing a frozen (SIGSTOPped) process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "supervisor/sup_child.h"

#define MAX_EXITS 16

struct rec {
    int n;
    struct sup_child_exit e[MAX_EXITS];
};

static void on_exit_cb(void *ctx, struct sup_child *c, const struct sup_child_exit *e)
{
    struct rec *r = ctx;
    (void)c;
    if (r->n < MAX_EXITS)
        r->e[r->n++] = *e;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the child's loop until rec has `want` exits or ms passes. */
static bool run_until(struct sup_child *c, struct rec *r, int want, int ms)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, sup_child_fd(c), &ev), 0);
    int64_t end = mono_ms() + ms;
    while (r->n < want && mono_ms() < end) {
        int t = sup_child_next_timeout_ms(c);
        if (t < 0 || t > 50)
            t = 50;
        if (epoll_wait(ep, &ev, 1, t) > 0)
            assert_int_equal(sup_child_on_readable(c), 0);
        if (sup_child_next_timeout_ms(c) == 0)
            assert_int_equal(sup_child_on_timer(c), 0);
    }
    close(ep);
    return r->n >= want;
}

static char proc_state(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] ? p[2] : 0;
}

static bool wait_state(pid_t pid, char want, int ms)
{
    int64_t end = mono_ms() + ms;
    while (proc_state(pid) != want && mono_ms() < end)
        usleep(2000);
    return proc_state(pid) == want;
}

static void decision_table_stops_on_config_fenced_corrupt_and_no_store(void **state)
{
    (void)state;
    const char *why;
    const int stop[] = {HAMQ_EXIT_OK, HAMQ_EXIT_CONFIG, HAMQ_EXIT_FENCED, HAMQ_EXIT_STORE_CORRUPT,
                        HAMQ_EXIT_NO_STORE};
    const int restart[] = {HAMQ_EXIT_INTERNAL, HAMQ_EXIT_LOCK_LOST, HAMQ_EXIT_IO,
                           HAMQ_EXIT_PEER_GONE, 42};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(sup_child_decide(stop[i], 0, false, &why), SUP_CHILD_STOP);
        assert_int_equal(sup_child_decide(restart[i], 0, false, &why), SUP_CHILD_RESTART);
        assert_int_equal(sup_child_decide(restart[i], 0, true, &why), SUP_CHILD_STOP);
    }
    assert_int_equal(sup_child_decide(-1, SIGSEGV, false, &why), SUP_CHILD_RESTART);
    assert_non_null(strstr(why, "signal"));
    sup_child_decide(HAMQ_EXIT_FENCED, 0, false, &why);
    assert_non_null(strstr(why, "FENCED"));
}

static void children_exiting_with_each_code_are_reaped_and_decided(void **state)
{
    (void)state;
    const int codes[] = {HAMQ_EXIT_OK,
                         HAMQ_EXIT_INTERNAL,
                         HAMQ_EXIT_CONFIG,
                         HAMQ_EXIT_FENCED,
                         HAMQ_EXIT_STORE_CORRUPT,
                         HAMQ_EXIT_LOCK_LOST,
                         HAMQ_EXIT_IO,
                         HAMQ_EXIT_PEER_GONE,
                         HAMQ_EXIT_NO_STORE,
                         42};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char script[32];
        snprintf(script, sizeof script, "exit %d", codes[i]);
        char *argv[] = {"/bin/sh", "-c", script, NULL};
        struct rec r = {0};
        struct sup_child *c;
        assert_int_equal(sup_child_new("core", argv, NULL, on_exit_cb, &r, &c), 0);
        assert_int_equal(sup_child_start(c), 0);
        pid_t pid = sup_child_pid(c);
        assert_true(run_until(c, &r, 1, 5000));
        assert_int_equal(r.e[0].code, codes[i]);
        assert_int_equal(r.e[0].signo, 0);
        const char *why;
        assert_int_equal(r.e[0].decision, sup_child_decide(codes[i], 0, false, &why));
        assert_string_equal(r.e[0].why, why);
        assert_int_equal(proc_state(pid), 0); /* reaped: no zombie left */
        assert_int_equal(sup_child_state(c), r.e[0].decision == SUP_CHILD_RESTART
                                                 ? SUP_CHILD_BACKOFF
                                                 : SUP_CHILD_FAILED);
        sup_child_free(c);
    }
}

static void restart_backoff_doubles_and_is_bounded(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "exit 1", NULL};
    struct sup_child_policy pol = {
        .backoff_min_ms = 20, .backoff_max_ms = 80, .stable_ms = 10000, .term_timeout_ms = 1000};
    struct rec r = {0};
    struct sup_child *c;
    assert_int_equal(sup_child_new("worker", argv, &pol, on_exit_cb, &r, &c), 0);
    assert_int_equal(sup_child_start(c), 0);
    assert_true(run_until(c, &r, 6, 10000));
    const int want[] = {20, 40, 80, 80, 80, 80};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r.e[i].decision, SUP_CHILD_RESTART);
        assert_int_equal(r.e[i].restart_in_ms, want[i]);
    }
    assert_true(sup_child_restarts(c) >= 5);
    assert_int_equal(sup_child_stop(c), 0); /* cancels the pending restart */
    assert_int_equal(sup_child_state(c), SUP_CHILD_IDLE);
    assert_int_equal(sup_child_next_timeout_ms(c), -1);
    sup_child_free(c);
}

static void graceful_stop_uses_sigterm(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "exec sleep 30", NULL};
    struct rec r = {0};
    struct sup_child *c;
    assert_int_equal(sup_child_new("core", argv, NULL, on_exit_cb, &r, &c), 0);
    assert_int_equal(sup_child_start(c), 0);
    assert_true(wait_state(sup_child_pid(c), 'S', 3000));
    assert_int_equal(sup_child_stop(c), 0);
    assert_true(run_until(c, &r, 1, 5000));
    assert_int_equal(r.e[0].signo, SIGTERM);
    assert_int_equal(r.e[0].decision, SUP_CHILD_STOP);
    assert_int_equal(sup_child_state(c), SUP_CHILD_IDLE);
    sup_child_free(c);
}

static void graceful_stop_escalates_to_sigkill_when_sigterm_is_ignored(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "trap '' TERM; exec sleep 30", NULL};
    struct sup_child_policy pol = {100, 1000, 10000, 200};
    struct rec r = {0};
    struct sup_child *c;
    assert_int_equal(sup_child_new("core", argv, &pol, on_exit_cb, &r, &c), 0);
    assert_int_equal(sup_child_start(c), 0);
    pid_t pid = sup_child_pid(c);
    /* wait until sh has exec'd sleep (the trap is set by then) */
    int64_t end = mono_ms() + 3000;
    char exe[64], link[64] = "";
    snprintf(exe, sizeof exe, "/proc/%d/exe", (int)pid);
    while (mono_ms() < end) {
        ssize_t n = readlink(exe, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        if (strstr(link, "sleep"))
            break;
        usleep(2000);
    }
    assert_non_null(strstr(link, "sleep"));
    assert_int_equal(sup_child_stop(c), 0);
    assert_true(run_until(c, &r, 1, 5000));
    assert_int_equal(r.e[0].signo, SIGKILL);
    assert_int_equal(r.e[0].decision, SUP_CHILD_STOP);
    sup_child_free(c);
}

static void frozen_child_is_killed_and_its_death_confirmed(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "exec sleep 30", NULL};
    struct rec r = {0};
    struct sup_child *c;
    assert_int_equal(sup_child_new("core", argv, NULL, on_exit_cb, &r, &c), 0);
    assert_int_equal(sup_child_start(c), 0);
    pid_t pid = sup_child_pid(c);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    assert_true(wait_state(pid, 'T', 3000));
    assert_int_equal(sup_child_kill_frozen(c, 2000), 0);
    /* "dead" means dead: the kernel shows a zombie, not a stopped process */
    assert_int_equal(proc_state(pid), 'Z');
    assert_true(run_until(c, &r, 1, 5000));
    assert_int_equal(r.e[0].signo, SIGKILL);
    assert_int_equal(r.e[0].decision, SUP_CHILD_RESTART); /* a frozen core is a failure */
    assert_int_equal(proc_state(pid), 0);
    sup_child_free(c);
}

static void frozen_kill_by_pid_confirms_death_and_reports_missing_pids(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (;;)
            pause();
    }
    assert_int_equal(kill(pid, SIGSTOP), 0);
    assert_true(wait_state(pid, 'T', 3000));
    assert_int_equal(sup_kill_frozen(pid, 2000), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, WNOHANG), pid); /* already exited: no wait needed */
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(sup_kill_frozen(pid, 100), -ESRCH);
}

static void exec_failure_is_a_clear_error(void **state)
{
    (void)state;
    char *argv[] = {"/nonexistent/hamq-journal", NULL};
    struct sup_child *c;
    assert_int_equal(sup_child_new("core", argv, NULL, NULL, NULL, &c), 0);
    assert_int_equal(sup_child_start(c), -ENOENT);
    assert_int_equal(sup_child_state(c), SUP_CHILD_FAILED);
    sup_child_free(c);
    char *empty[] = {NULL};
    assert_int_equal(sup_child_new("core", empty, NULL, NULL, NULL, &c), -EINVAL);
}

int main(void)
{
    log_init("test_sup_child", LOG_TARGET_STDERR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decision_table_stops_on_config_fenced_corrupt_and_no_store),
        cmocka_unit_test(children_exiting_with_each_code_are_reaped_and_decided),
        cmocka_unit_test(restart_backoff_doubles_and_is_bounded),
        cmocka_unit_test(graceful_stop_uses_sigterm),
        cmocka_unit_test(graceful_stop_escalates_to_sigkill_when_sigterm_is_ignored),
        cmocka_unit_test(frozen_child_is_killed_and_its_death_confirmed),
        cmocka_unit_test(frozen_kill_by_pid_confirms_death_and_reports_missing_pids),
        cmocka_unit_test(exec_failure_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
