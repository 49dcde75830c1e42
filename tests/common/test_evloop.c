/* Unit tests of common/evloop.c with real fds (pipes) and real timerfds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/epoll.h>
#include <errno.h>
#include <unistd.h>

#include "hamq/evloop.h"

struct counter {
    int n;
    struct ev_watch *self;
    struct ev_watch *other;
};

static void count_and_drain(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    struct counter *c = ctx;
    char b[16];
    (void)loop;
    (void)events;
    c->n++;
    assert_true(read(fd, b, sizeof(b)) > 0);
}

static void readable_pipe_calls_its_callback(void **state)
{
    struct evloop *l;
    struct counter c = {0};
    int p[2];
    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(evloop_add_fd(l, p[0], EPOLLIN, count_and_drain, &c, NULL), 0);
    assert_int_equal(evloop_run_once(l, 0), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(evloop_run_once(l, 1000), 1);
    assert_int_equal(c.n, 1);
    evloop_free(l);
    close(p[0]);
    close(p[1]);
}

static void tick(struct evloop *loop, void *ctx)
{
    struct counter *c = ctx;
    if (++c->n == 3)
        evloop_stop(loop);
}

static void periodic_timer_fires_until_stopped(void **state)
{
    struct evloop *l;
    struct counter c = {0};
    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(evloop_add_timer(l, 1, 1, tick, &c, NULL), 0);
    assert_int_equal(evloop_run(l), 0);
    assert_int_equal(c.n, 3);
    evloop_free(l);
}

static void once(struct evloop *loop, void *ctx)
{
    (void)loop;
    ((struct counter *)ctx)->n++;
}

static void one_shot_timer_fires_once(void **state)
{
    struct evloop *l;
    struct counter c = {0};
    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(evloop_add_timer(l, 0, 0, once, &c, NULL), 0);
    for (int i = 0; i < 5; i++)
        evloop_run_once(l, 20);
    assert_int_equal(c.n, 1);
    evloop_free(l);
}

static bool busy_twice(struct evloop *loop, void *ctx)
{
    (void)loop;
    return ++((struct counter *)ctx)->n <= 2;
}

static void busy_idle_hook_makes_the_loop_poll_without_blocking(void **state)
{
    struct evloop *l;
    struct counter c = {0};
    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(evloop_add_idle(l, busy_twice, &c, NULL), 0);
    /* With a busy hook a forever-wait returns at once; 3rd round would block. */
    uint64_t t0 = evloop_now_ms();
    assert_int_equal(evloop_run_once(l, -1), 0);
    assert_int_equal(evloop_run_once(l, -1), 0);
    assert_int_equal(evloop_run_once(l, 30), 0);
    assert_int_equal(c.n, 3);
    assert_true(evloop_now_ms() - t0 >= 25); /* the third round did wait */
    evloop_free(l);
}

static void remove_other(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    struct counter *c = ctx;
    char b[4];
    (void)events;
    assert_true(read(fd, b, 1) == 1);
    c->n++;
    evloop_del(loop, c->other);
    evloop_del(loop, c->self);
}

static void watch_removed_during_dispatch_is_not_called(void **state)
{
    struct evloop *l;
    struct counter a = {0}, b = {0};
    int p[2], q[2];
    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pipe(q), 0);
    assert_int_equal(evloop_add_fd(l, p[0], EPOLLIN, remove_other, &a, &a.self), 0);
    assert_int_equal(evloop_add_fd(l, q[0], EPOLLIN, remove_other, &b, &b.self), 0);
    a.other = b.self;
    b.other = a.self;
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(write(q[1], "x", 1), 1);
    evloop_run_once(l, 1000);
    /* Both were ready; whichever ran first removed the other. */
    assert_int_equal(a.n + b.n, 1);
    assert_int_equal(evloop_run_once(l, 10), 0);
    evloop_free(l);
    close(p[0]); close(p[1]); close(q[0]); close(q[1]);
}

static void adding_a_bad_fd_returns_ebadf(void **state)
{
    struct evloop *l;
    struct counter c = {0};
    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(evloop_add_fd(l, 9999, EPOLLIN, count_and_drain, &c, NULL), -EBADF);
    evloop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readable_pipe_calls_its_callback),
        cmocka_unit_test(periodic_timer_fires_until_stopped),
        cmocka_unit_test(one_shot_timer_fires_once),
        cmocka_unit_test(busy_idle_hook_makes_the_loop_poll_without_blocking),
        cmocka_unit_test(watch_removed_during_dispatch_is_not_called),
        cmocka_unit_test(adding_a_bad_fd_returns_ebadf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
