/*
 * Crash loop: a child process appends messages through the real writer (libaio,
 * O_DIRECT on ext4; the buffered fallback on /dev/shm) and reports each message to
 * the parent over a pipe once its records are durable; the parent kill -9s the
 * child at a random moment, reopens the store and checks that every reported
 * message is present with an intact body. At least 200 iterations per file
 * system, each bounded in time (HAMQ_CRASHLOOP_ITERS overrides the count). The
 * verifier acknowledges everything and checkpoints after each round, so every
 * child also recovers from a checkpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_testlib.h"

#define SEG (256 * 1024)
#define MAX_BODY 700
#define CHILD_MAX_MSGS 400
#define RING 4096

/* --- the child --- */

struct child {
    struct store *s;
    int wfd;
    uint64_t lsn[RING], id[RING];
    size_t head, tail;
    uint64_t acks[RING];
    size_t nacks;
};

static void child_durable(void *ctx, uint64_t durable)
{
    struct child *c = ctx;
    uint64_t out[RING];
    size_t n = 0;
    while (c->tail != c->head && c->lsn[c->tail % RING] <= durable) {
        uint64_t id = c->id[c->tail % RING];
        out[n++] = id;
        if (id % 7 == 0 && c->nacks < RING)
            c->acks[c->nacks++] = id;
        c->tail++;
    }
    if (n && write(c->wfd, out, n * sizeof out[0]) != (ssize_t)(n * sizeof out[0]))
        _exit(3);
}

static void child_main(const char *dir, int wfd, uint64_t base, unsigned seed)
{
    static struct child c;
    char err[4096];
    struct store_opts o;
    memset(&c, 0, sizeof c);
    c.wfd = wfd;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.segment_size = SEG;
    o.write_buffer_size = 64 * 1024;
    o.sync = (seed & 1) ? STORE_SYNC_DSYNC : STORE_SYNC_FDATASYNC;
    o.on_durable = child_durable;
    o.ctx = &c;
    if (store_open(&o, &c.s, err, sizeof err) < 0) {
        fprintf(stderr, "child: %s\n", err);
        _exit(2);
    }
    uint64_t ready = 0; /* id 0: "opened", starts the parent's kill timer */
    if (write(wfd, &ready, sizeof ready) != (ssize_t)sizeof ready)
        _exit(3);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, store_event_fd(c.s), &ev);
    srand(seed);
    size_t target = 1 + (size_t)(rand() % 32);
    uint64_t next = base;
    uint8_t body[MAX_BODY];
    for (int loops = 0; loops < 100000; loops++) {
        while (c.head - c.tail < target && next < base + CHILD_MAX_MSGS) {
            uint64_t id = next++, lsn;
            size_t n = st_body_len(id, MAX_BODY);
            st_body(id, body, n);
            if (store_add_message(c.s, id, body, n, NULL) < 0 ||
                store_add_ref(c.s, id, 1 + id % 3, &lsn) < 0)
                _exit(4);
            c.lsn[c.head % RING] = lsn;
            c.id[c.head % RING] = id;
            c.head++;
        }
        for (size_t i = 0; i < c.nacks; i++)
            if (store_ack(c.s, c.acks[i], 1 + c.acks[i] % 3, NULL) < 0)
                _exit(5);
        c.nacks = 0;
        if (store_kick(c.s) < 0)
            _exit(6);
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, 1000) == 1 && store_on_event(c.s) < 0)
            _exit(7);
    }
    _exit(0);
}

/* --- the parent --- */

struct ids {
    uint64_t *v;
    size_t n, cap;
};

static void ids_read(int fd, struct ids *ids)
{
    uint64_t buf[512];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n / 8; i++) {
        if (ids->n == ids->cap) {
            ids->cap = ids->cap ? ids->cap * 2 : 1024;
            ids->v = realloc(ids->v, ids->cap * sizeof *ids->v);
            assert_non_null(ids->v);
        }
        ids->v[ids->n++] = buf[i];
    }
}

struct live_list {
    uint64_t (*v)[2];
    size_t n, cap;
};

static int collect_live(void *ctx, const struct store_live_ref *r)
{
    struct live_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n][0] = r->msg_id;
    l->v[l->n][1] = r->queue_id;
    l->n++;
    return 0;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

/* Verifies every reported message, then acknowledges everything live. */
static void verify_and_drain(const char *dir, const struct ids *ids, bool *torn)
{
    char err[4096];
    struct store *s;
    int r = st_open(dir, SEG, &s, err, sizeof err);
    if (r < 0)
        fail_msg("reopen after kill -9: %s", err);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    *torn = ri.torn;
    uint8_t body[MAX_BODY], got[MAX_BODY];
    for (size_t i = 0; i < ids->n; i++) {
        uint64_t id = ids->v[i];
        if (id == 0)
            continue; /* the "opened" marker */
        long n = store_read_body(s, id, got, sizeof got);
        if (id % 7 == 0 && n == -ENOENT)
            continue; /* its ack may have become durable too */
        size_t len = st_body_len(id, MAX_BODY);
        st_body(id, body, len);
        if (n != (long)len || memcmp(got, body, len) != 0)
            fail_msg("acknowledged message %lu lost or damaged after kill -9 (read %ld)",
                     (unsigned long)id, n);
    }
    struct live_list l = {NULL, 0, 0};
    assert_int_equal(store_foreach_live(s, collect_live, &l), 0);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(store_ack(s, l.v[i][0], l.v[i][1], NULL), 0);
    free(l.v);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_live_messages(s), 0);
    /* keeps the next recovery short (and the child then recovers from a checkpoint) */
    assert_int_equal(store_checkpoint(s), 0);
    store_close(s);
}

static void crash_loop(bool shm)
{
    char dir[4096];
    st_mkdtemp(dir, sizeof dir, shm ? "crash-shm" : "crash", shm);
    int iters = env_int("HAMQ_CRASHLOOP_ITERS", 200);
    double t0 = st_now();
    uint64_t verified = 0, base = 1;
    int torn = 0, it;
    srand(shm ? 99 : 42);
    for (it = 0; it < iters && st_now() - t0 < 150; it++) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        unsigned seed = (unsigned)rand();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_main(dir, p[1], base, seed);
        }
        close(p[1]);
        struct ids ids = {NULL, 0, 0};
        /* kill at a random time after the child opened the store (or during its
           open, one time in eight), or after a random number of acks */
        double deadline = st_now() + (rand() % 20) / 1000.0;
        bool early = rand() % 8 == 0, ready = early;
        size_t kill_after = 1 + (size_t)(rand() % 200);
        double give_up = st_now() + 5;
        while ((!ready || (st_now() < deadline && ids.n < kill_after)) && st_now() < give_up) {
            if (!ready && ids.n) {
                ready = true;
                deadline = st_now() + (rand() % 20) / 1000.0;
            }
            struct pollfd pf = {.fd = p[0], .events = POLLIN};
            if (poll(&pf, 1, 1) == 1)
                ids_read(p[0], &ids);
        }
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) &&
            !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fail_msg("child failed on its own: status %d", status);
        size_t before;
        do {
            before = ids.n;
            ids_read(p[0], &ids);
        } while (ids.n != before);
        close(p[0]);
        bool t = false;
        verify_and_drain(dir, &ids, &t);
        torn += t;
        verified += ids.n ? ids.n - 1 : 0;
        free(ids.v);
        base += CHILD_MAX_MSGS;
    }
    print_message("crash loop on %s: %d iterations, %lu acknowledged messages verified, %d torn "
                  "tails cut, %.1f s\n",
                  shm ? "/dev/shm (buffered fallback)" : "ext4 (O_DIRECT)", it,
                  (unsigned long)verified, torn, st_now() - t0);
    st_rmrf(dir);
    assert_true(it >= (iters < 50 ? iters : 50));
    assert_true(verified > 0);
}

static void killed_writer_on_ext4_loses_no_acknowledged_record(void **state)
{
    (void)state;
    crash_loop(false);
}

static void killed_writer_on_dev_shm_loses_no_acknowledged_record(void **state)
{
    (void)state;
    crash_loop(true);
}

int main(void)
{
    st_quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_writer_on_ext4_loses_no_acknowledged_record),
        cmocka_unit_test(killed_writer_on_dev_shm_loses_no_acknowledged_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
