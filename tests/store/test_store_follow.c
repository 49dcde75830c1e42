/*
 * Follow mode: a follower (no lock) tails the journal of a writer in another
 * process, applies records only once durable (or up to the LSN the live
 * reports), and ends with the same live set as a fresh recovery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_testlib.h"

#define SEG (64 * 1024)
#define MAXB 900
#define NMSG 3000

static char dir[4096];
static char err[8192];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "follow", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

/* Sorted (msg, queue, count) triples of a live set. */
struct triples {
    uint64_t (*v)[3];
    size_t n, cap;
};

static int add_triple(void *ctx, const struct store_live_ref *r)
{
    struct triples *t = ctx;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n][0] = r->msg_id;
    t->v[t->n][1] = r->queue_id;
    t->v[t->n][2] = r->delivery_count;
    t->n++;
    return 0;
}

static int triple_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 3 * sizeof(uint64_t));
}

static void writer_child(int wfd)
{
    struct store *s;
    if (st_open(dir, SEG, &s, err, sizeof err) < 0)
        _exit(2);
    uint64_t lsn = 0;
    if (write(wfd, &lsn, sizeof lsn) != (ssize_t)sizeof lsn) /* opened */
        _exit(3);
    uint8_t body[MAXB];
    srand(3);
    for (uint64_t id = 1; id <= NMSG; id++) {
        size_t n = st_body_len(id, MAXB);
        st_body(id, body, n);
        if (store_add_message(s, id, body, n, NULL) < 0 || store_add_ref(s, id, 1 + id % 3, NULL) < 0)
            _exit(4);
        if (id > 10 && rand() % 2)
            store_ack(s, id - 10, 1 + (id - 10) % 3, NULL);
        if (id % 5 == 0)
            store_set_delivery_count(s, id, 1 + id % 3, 4, NULL);
        if (id == NMSG / 2 && store_checkpoint(s) < 0)
            _exit(5);
        if (id % 37 == 0) {
            if (store_sync(s) < 0)
                _exit(6);
            lsn = store_durable_lsn(s);
            if (write(wfd, &lsn, sizeof lsn) != (ssize_t)sizeof lsn)
                _exit(7);
        }
    }
    if (store_sync(s) < 0)
        _exit(8);
    lsn = store_durable_lsn(s);
    store_close(s);
    if (write(wfd, &lsn, sizeof lsn) != (ssize_t)sizeof lsn)
        _exit(9);
    lsn = UINT64_MAX; /* done */
    if (write(wfd, &lsn, sizeof lsn) != (ssize_t)sizeof lsn)
        _exit(10);
    _exit(0);
}

static void a_follower_process_tracks_a_writer_process_up_to_the_reported_lsn(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        writer_child(p[1]);
    }
    close(p[1]);
    uint64_t v;
    assert_int_equal(read(p[0], &v, sizeof v), (ssize_t)sizeof v); /* opened */
    struct store_follower *f;
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    uint64_t limit = 0, final = 0;
    bool done = false;
    int polls = 0;
    double t0 = st_now();
    while (st_now() - t0 < 60) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        while (!done && poll(&pf, 1, 0) == 1 && read(p[0], &v, sizeof v) == (ssize_t)sizeof v) {
            if (v == UINT64_MAX)
                done = true;
            else
                limit = final = v;
        }
        if (limit) {
            int r = store_follow_poll(f, limit);
            assert_true(r >= 0);
            polls++;
            assert_true(store_follow_applied_lsn(f) <= limit);
        }
        if (done && store_follow_applied_lsn(f) == final)
            break;
        usleep(200);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(store_follow_applied_lsn(f), final);
    assert_true(polls > 5);
    /* same live set as a fresh recovery of the store */
    struct triples a = {0}, b = {0};
    assert_int_equal(store_follow_foreach_live(f, add_triple, &a), 0);
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    assert_int_equal(store_foreach_live(s, add_triple, &b), 0);
    assert_true(a.n > 100);
    assert_int_equal(a.n, b.n);
    qsort(a.v, a.n, sizeof *a.v, triple_cmp);
    qsort(b.v, b.n, sizeof *b.v, triple_cmp);
    assert_memory_equal(a.v, b.v, a.n * sizeof *a.v);
    uint8_t body[MAXB], got[MAXB];
    for (size_t i = 0; i < a.n; i++) {
        uint64_t id = a.v[i][0];
        size_t n = st_body_len(id, MAXB);
        st_body(id, body, n);
        assert_int_equal(store_follow_read_body(f, id, got, sizeof got), (long)n);
        assert_memory_equal(got, body, n);
    }
    store_close(s);
    store_follow_close(f);
    free(a.v);
    free(b.v);
    close(p[0]);
}

static void without_a_limit_a_follower_applies_only_what_later_records_prove_durable(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    struct store_follower *f;
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    uint64_t first_end;
    assert_int_equal(store_add_message(s, 1, "a", 1, NULL), 0);
    assert_int_equal(store_add_ref(s, 1, 1, &first_end), 0);
    assert_int_equal(store_sync(s), 0);
    assert_true(store_follow_poll(f, 0) >= 0);
    assert_true(store_follow_applied_lsn(f) < first_end); /* nothing proves it yet */
    assert_int_equal(store_add_message(s, 2, "b", 1, NULL), 0);
    assert_int_equal(store_add_ref(s, 2, 1, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    assert_true(store_follow_poll(f, 0) > 0);
    assert_int_equal(store_follow_applied_lsn(f), first_end);
    assert_int_equal(store_follow_live_messages(f), 1);
    /* with the live's durable LSN as the limit, everything durable applies */
    assert_true(store_follow_poll(f, store_durable_lsn(s)) > 0);
    assert_int_equal(store_follow_applied_lsn(f), store_durable_lsn(s));
    assert_int_equal(store_follow_live_messages(f), 2);
    store_follow_close(f);
    store_close(s);
}

static void a_follower_of_a_checkpointed_store_starts_at_the_checkpoint(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    uint8_t body[800] = {1};
    for (uint64_t id = 1; id <= 300; id++) {
        assert_int_equal(store_add_message(s, id, body, sizeof body, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
        if (id % 2)
            assert_int_equal(store_ack(s, id, 1, NULL), 0);
    }
    assert_int_equal(store_checkpoint(s), 0);
    assert_int_equal(store_add_message(s, 1000, body, 10, NULL), 0);
    assert_int_equal(store_add_ref(s, 1000, 1, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    struct store_follower *f;
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    assert_int_equal(store_follow_live_messages(f), 150); /* from the checkpoint alone */
    assert_true(store_follow_poll(f, store_durable_lsn(s)) > 0);
    assert_int_equal(store_follow_live_messages(f), 151);
    assert_int_equal(store_follow_read_body(f, 1000, body, sizeof body), 10);
    store_follow_close(f);
    store_close(s);
}

static void a_follower_left_behind_by_compaction_is_told_to_reopen(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    struct store_follower *f;
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    uint8_t body[800] = {2};
    for (uint64_t id = 1; id <= 400; id++) {
        assert_int_equal(store_add_message(s, id, body, sizeof body, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
        if (id % 50 != 0)
            assert_int_equal(store_ack(s, id, 1, NULL), 0);
    }
    assert_true(store_compact(s) > 2);
    int r = 0;
    for (int i = 0; i < 100 && r >= 0; i++)
        r = store_follow_poll(f, store_durable_lsn(s));
    assert_int_equal(r, -ESTALE);
    store_follow_close(f);
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    assert_true(store_follow_poll(f, store_durable_lsn(s)) >= 0);
    assert_int_equal(store_follow_live_messages(f), 8);
    assert_int_equal(store_follow_read_body(f, 400, body, sizeof body), 800);
    store_follow_close(f);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_follower_process_tracks_a_writer_process_up_to_the_reported_lsn, setup, teardown),
        cmocka_unit_test_setup_teardown(without_a_limit_a_follower_applies_only_what_later_records_prove_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(a_follower_of_a_checkpointed_store_starts_at_the_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(a_follower_left_behind_by_compaction_is_told_to_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
