/*
 * Writer crash points: a child stops (_exit, like a kill -9 between two
 * syscalls) at each named step of the writer (HAMQ_STORE_CRASH_AT); the store
 * must reopen with every message the child saw become durable, and the
 * bindings journal must survive a crash in the middle of its rewrite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_testlib.h"

#define SEG (64 * 1024)
#define MAXB 3000

static char dir[4096];
static char err[8192];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "crashpt", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

static void child_writes(int wfd, const char *step)
{
    setenv("HAMQ_STORE_CRASH_AT", step, 1);
    struct store *s;
    if (st_open(dir, SEG, &s, err, sizeof err) < 0)
        _exit(2);
    uint8_t body[MAXB];
    for (uint64_t id = 1; id <= 300; id++) {
        size_t n = st_body_len(id, MAXB);
        st_body(id, body, n);
        if (store_add_message(s, id, body, n, NULL) < 0 || store_add_ref(s, id, 1, NULL) < 0)
            _exit(3);
        if (id % 10 == 0) {
            if (store_sync(s) < 0)
                _exit(4);
            if (write(wfd, &id, sizeof id) != (ssize_t)sizeof id)
                _exit(5);
        }
    }
    store_close(s);
    _exit(0);
}

static void a_crash_at_every_writer_step_keeps_every_durable_message(void **state)
{
    (void)state;
    const char *steps[] = {"before_submit",  "before_submit:9",           "after_durable",
                           "after_durable:14", "roll",                    "roll:3",
                           "seg_create_before_rename", "seg_create_before_rename:3"};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        st_rmrf(dir);
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_writes(p[1], steps[k]);
        }
        close(p[1]);
        uint64_t id, last = 0;
        while (read(p[0], &id, sizeof id) == (ssize_t)sizeof id)
            last = id;
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("step %s: the child did not stop there (status %d)", steps[k], status);
        if (strchr(steps[k], ':') && strncmp(steps[k], "seg_create", 10) != 0)
            assert_true(last > 0); /* stopped mid-stream, after some durable batches */
        struct store *s;
        if (st_open(dir, SEG, &s, err, sizeof err) < 0)
            fail_msg("step %s: reopen: %s", steps[k], err);
        uint8_t body[MAXB], got[MAXB];
        for (uint64_t m = 1; m <= last; m++) {
            size_t n = st_body_len(m, MAXB);
            st_body(m, body, n);
            assert_int_equal(store_read_body(s, m, got, sizeof got), (long)n);
            assert_memory_equal(got, body, n);
        }
        /* and the store keeps working */
        assert_int_equal(store_add_message(s, 5000, "z", 1, NULL), 0);
        assert_int_equal(store_add_ref(s, 5000, 1, NULL), 0);
        assert_int_equal(store_sync(s), 0);
        store_close(s);
        assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
        assert_int_equal(store_read_body(s, 5000, NULL, 0), 1);
        store_close(s);
    }
}

static int count_bindings(void *ctx, const struct store_binding *b)
{
    (void)b;
    (*(int *)ctx)++;
    return 0;
}

static void a_crash_in_the_bindings_rewrite_keeps_the_bindings(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    for (uint64_t q = 1; q <= 5; q++) {
        struct store_binding b = {.queue_id = q, .address = "a", .name = "n"};
        assert_int_equal(store_bindings_add(s, &b), 0);
    }
    store_close(s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("HAMQ_STORE_CRASH_AT", "bindings_rewrite_before_rename", 1);
        if (st_open(dir, SEG, &s, err, sizeof err) < 0)
            _exit(2);
        static char name[3000];
        memset(name, 'x', sizeof name - 1);
        for (uint64_t q = 100; q < 2000; q++) {
            struct store_binding b = {.queue_id = q, .address = "churn", .name = name};
            store_bindings_add(s, &b);
            store_bindings_remove(s, q);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 99);
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    int n = 0;
    assert_int_equal(store_foreach_binding(s, count_bindings, &n), 0);
    /* the 5 queues, plus at most the one churn queue added just before the crash */
    assert_true(n == 5 || n == 6);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_crash_at_every_writer_step_keeps_every_durable_message, setup, teardown),
        cmocka_unit_test_setup_teardown(a_crash_in_the_bindings_rewrite_keeps_the_bindings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
