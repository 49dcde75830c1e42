/* Unit tests of the store writer on real files with real libaio (ext4 build tree). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_testlib.h"

static char dir[4096];
static char err[8192];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "basic", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

static void open_creates_the_store_layout(void **state)
{
    (void)state;
    struct store *s;
    int r = st_open(dir, 1 << 20, &s, err, sizeof err);
    assert_int_equal(r, 0);
    const char *names[] = {"journal", "bindings", "live.lock", "writer.lock", "store.epoch"};
    for (size_t i = 0; i < 5; i++) {
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        assert_int_equal(stat(p, &st), 0);
    }
    assert_int_equal(store_epoch(s), 1);
    assert_true(store_segment_count(s) >= 1);
    store_close(s);
}

struct durable_seen {
    uint64_t last;
    int calls;
};

static void on_durable(void *ctx, uint64_t lsn)
{
    struct durable_seen *d = ctx;
    assert_true(lsn > d->last);
    d->last = lsn;
    d->calls++;
}

static void appended_records_become_durable_through_the_event_fd(void **state)
{
    (void)state;
    struct store_opts o;
    struct durable_seen seen = {0, 0};
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.on_durable = on_durable;
    o.ctx = &seen;
    struct store *s;
    assert_int_equal(store_open(&o, &s, err, sizeof err), 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, store_event_fd(s), &ev), 0);
    uint64_t last = 0;
    for (uint64_t id = 1; id <= 100; id++) {
        uint8_t body[300];
        st_body(id, body, sizeof body);
        assert_int_equal(store_add_message(s, id, body, sizeof body, &last), 0);
        assert_int_equal(store_add_ref(s, id, 7, &last), 0);
        if (id % 10 == 0)
            assert_int_equal(store_kick(s), 0);
    }
    assert_int_equal(store_kick(s), 0);
    for (int i = 0; i < 1000 && store_durable_lsn(s) < last; i++) {
        struct epoll_event out;
        int n = epoll_wait(ep, &out, 1, 5000);
        assert_true(n >= 0);
        if (n == 1)
            assert_int_equal(store_on_event(s), 0);
    }
    assert_int_equal(store_durable_lsn(s), last);
    assert_int_equal(seen.last, last);
    /* group commit: far fewer syncs than records */
    assert_true(seen.calls < 100);
    close(ep);
    store_close(s);
}

static void a_second_writer_is_refused_while_the_first_holds_writer_lock(void **state)
{
    (void)state;
    struct store *a, *b;
    assert_int_equal(st_open(dir, 1 << 20, &a, err, sizeof err), 0);
    int r = st_open(dir, 1 << 20, &b, err, sizeof err);
    assert_int_equal(r, -EBUSY);
    assert_non_null(strstr(err, "writer.lock"));
    store_close(a);
    assert_int_equal(st_open(dir, 1 << 20, &b, err, sizeof err), 0);
    store_close(b);
}

static void messages_refs_and_counts_survive_a_reopen_across_segment_rolls(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 64 * 1024, &s, err, sizeof err), 0);
    uint8_t body[5000], got[5000];
    for (uint64_t id = 1; id <= 300; id++) {
        size_t n = st_body_len(id, sizeof body);
        st_body(id, body, n);
        assert_int_equal(store_add_message(s, id, body, n, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
        if (id % 3 == 0)
            assert_int_equal(store_add_ref(s, id, 2, NULL), 0);
        if (id % 5 == 0)
            assert_int_equal(store_set_delivery_count(s, id, 1, (uint32_t)id, NULL), 0);
        if (id % 4 == 0)
            assert_int_equal(store_ack(s, id, 1, NULL), 0);
        if (id % 50 == 0)
            assert_int_equal(store_sync(s), 0);
    }
    /* readable before and after being durable */
    st_body(299, body, st_body_len(299, sizeof body));
    assert_int_equal(store_read_body(s, 299, got, sizeof got), (long)st_body_len(299, sizeof body));
    assert_memory_equal(got, body, st_body_len(299, sizeof body));
    uint64_t live = store_live_messages(s);
    store_close(s);
    assert_int_equal(st_open(dir, 64 * 1024, &s, err, sizeof err), 0);
    assert_true(store_segment_count(s) > 5);
    assert_int_equal(store_live_messages(s), live);
    for (uint64_t id = 1; id <= 300; id++) {
        bool alive = id % 4 != 0 || id % 3 == 0;
        long n = store_read_body(s, id, got, sizeof got);
        if (!alive) {
            assert_int_equal(n, -ENOENT);
            continue;
        }
        size_t len = st_body_len(id, sizeof body);
        st_body(id, body, len);
        assert_int_equal(n, (long)len);
        assert_memory_equal(got, body, len);
    }
    store_close(s);
}

struct count_ctx {
    int refs;
    uint32_t count_of_5_q1;
};

static int count_cb(void *ctx, const struct store_live_ref *r)
{
    struct count_ctx *c = ctx;
    c->refs++;
    if (r->msg_id == 5 && r->queue_id == 1)
        c->count_of_5_q1 = r->delivery_count;
    return 0;
}

static void delivery_counts_are_reported_by_foreach_live(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    for (uint64_t id = 1; id <= 10; id++) {
        assert_int_equal(store_add_message(s, id, "x", 1, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
    }
    assert_int_equal(store_set_delivery_count(s, 5, 1, 3, NULL), 0);
    store_close(s);
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    struct count_ctx c = {0, 0};
    assert_int_equal(store_foreach_live(s, count_cb, &c), 0);
    assert_int_equal(c.refs, 10);
    assert_int_equal(c.count_of_5_q1, 3);
    store_close(s);
}

static void transaction_records_count_only_once_committed(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    struct jnl_msg_add a = {.msg_id = 1};
    struct jnl_ref r1 = {.msg_id = 1, .queue_id = 9};
    assert_int_equal(store_append_tx(s, 77, JNL_REC_MSG_ADD, &a, sizeof a, NULL), 0);
    assert_int_equal(store_append_tx(s, 77, JNL_REC_REF_ADD, &r1, sizeof r1, NULL), 0);
    a.msg_id = 2;
    r1.msg_id = 2;
    assert_int_equal(store_append_tx(s, 78, JNL_REC_MSG_ADD, &a, sizeof a, NULL), 0);
    assert_int_equal(store_append_tx(s, 78, JNL_REC_REF_ADD, &r1, sizeof r1, NULL), 0);
    a.msg_id = 3;
    r1.msg_id = 3;
    assert_int_equal(store_append_tx(s, 79, JNL_REC_MSG_ADD, &a, sizeof a, NULL), 0);
    assert_int_equal(store_append_tx(s, 79, JNL_REC_REF_ADD, &r1, sizeof r1, NULL), 0);
    assert_int_equal(store_live_messages(s), 0);
    assert_int_equal(store_tx_end(s, JNL_REC_TX_COMMIT, 77, NULL), 0);
    assert_int_equal(store_tx_end(s, JNL_REC_TX_ROLLBACK, 78, NULL), 0);
    assert_int_equal(store_live_messages(s), 1);
    store_close(s); /* tx 79 never ended: rolled back by the restart */
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    assert_int_equal(store_live_messages(s), 1);
    assert_int_equal(store_read_body(s, 1, NULL, 0), 0);
    assert_int_equal(store_read_body(s, 2, NULL, 0), -ENOENT);
    assert_int_equal(store_read_body(s, 3, NULL, 0), -ENOENT);
    store_close(s);
}

static void a_record_larger_than_a_segment_is_refused_but_such_a_body_goes_to_a_file(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 64 * 1024, &s, err, sizeof err), 0);
    static uint8_t big[70 * 1024];
    big[0] = 1; /* msg_id 1 as the payload head */
    assert_int_equal(store_append(s, JNL_REC_MSG_ADD, big, sizeof big, NULL), -EMSGSIZE);
    assert_int_equal(store_add_message(s, 1, big, sizeof big, NULL), 0);
    assert_int_equal(store_add_message(s, 2, big, 50 * 1024, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    char path[4300];
    snprintf(path, sizeof path, "%s/large-messages/%016x.msg", dir, 1);
    assert_int_equal(access(path, F_OK), 0);
    store_close(s);
}

static int bind_cb(void *ctx, const struct store_binding *b)
{
    int *n = ctx;
    if (b->queue_id == 2) {
        assert_string_equal(b->address, "orders");
        assert_string_equal(b->name, "orders.sub2");
        assert_string_equal(b->filter, "color = 'red'");
        assert_int_equal(b->routing, STORE_MULTICAST);
        assert_true(b->durable);
    }
    (*n)++;
    return 0;
}

static void bindings_survive_a_reopen_and_a_rewrite(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    struct store_binding b = {.queue_id = 1, .address = "orders", .name = "orders",
                              .routing = STORE_ANYCAST, .durable = true};
    assert_int_equal(store_bindings_add(s, &b), 0);
    b.queue_id = 2;
    b.name = "orders.sub2";
    b.filter = "color = 'red'";
    b.routing = STORE_MULTICAST;
    assert_int_equal(store_bindings_add(s, &b), 0);
    /* churn enough to force a rewrite of the 1 MiB bindings segment */
    static char longname[3000];
    memset(longname, 'q', sizeof longname - 1);
    for (uint64_t q = 10; q < 500; q++) {
        struct store_binding t = {.queue_id = q, .address = "churn", .name = longname};
        assert_int_equal(store_bindings_add(s, &t), 0);
        assert_int_equal(store_bindings_remove(s, q), 0);
    }
    assert_int_equal(store_bindings_remove(s, 1), 0);
    assert_int_equal(store_bindings_remove(s, 1), -ENOENT);
    store_close(s);
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    int n = 0;
    assert_int_equal(store_foreach_binding(s, bind_cb, &n), 0);
    assert_int_equal(n, 1);
    store_close(s);
}

static void a_fenced_writer_cannot_add_one_record(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    assert_int_equal(store_add_message(s, 1, "a", 1, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_check_epoch(s), 0);
    char p[4200];
    snprintf(p, sizeof p, "%s/store.epoch", dir);
    FILE *f = fopen(p, "w");
    fputs("2\n", f);
    fclose(f);
    assert_int_equal(store_check_epoch(s), 1);
    assert_true(store_fenced(s));
    assert_int_equal(store_add_message(s, 2, "b", 1, NULL), -ESTALE);
    assert_int_equal(store_add_ref(s, 1, 1, NULL), -ESTALE);
    store_close(s);
    /* a fresh writer opens with the new epoch */
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    assert_int_equal(store_epoch(s), 2);
    store_close(s);
}

static void a_roll_rereads_the_epoch_and_stops_a_fenced_writer(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 64 * 1024, &s, err, sizeof err), 0);
    char p[4200];
    snprintf(p, sizeof p, "%s/store.epoch", dir);
    FILE *f = fopen(p, "w");
    fputs("5\n", f);
    fclose(f);
    static uint8_t body[8000];
    int r = 0;
    for (uint64_t id = 1; id < 100 && r == 0; id++)
        r = store_add_message(s, id, body, sizeof body, NULL);
    assert_int_equal(r, -ESTALE);
    assert_true(store_fenced(s));
    store_close(s);
}

static void the_buffered_fallback_works_on_dev_shm(void **state)
{
    (void)state;
    char shm[4096];
    st_mkdtemp(shm, sizeof shm, "shm", true);
    struct store *s;
    assert_int_equal(st_open(shm, 1 << 20, &s, err, sizeof err), 0);
    assert_false(store_is_direct(s));
    assert_int_equal(store_add_message(s, 1, "abc", 3, NULL), 0);
    assert_int_equal(store_add_ref(s, 1, 1, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    store_close(s);
    assert_int_equal(st_open(shm, 1 << 20, &s, err, sizeof err), 0);
    char got[3];
    assert_int_equal(store_read_body(s, 1, got, 3), 3);
    assert_memory_equal(got, "abc", 3);
    store_close(s);
    st_rmrf(shm);
}

static void ext4_build_tree_uses_o_direct(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    assert_int_equal(store_add_message(s, 1, "abc", 3, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    assert_true(store_is_direct(s));
    store_close(s);
}

static void both_sync_modes_make_records_durable(void **state)
{
    (void)state;
    for (int mode = STORE_SYNC_FDATASYNC; mode <= STORE_SYNC_DSYNC; mode++) {
        struct store_opts o;
        store_opts_init(&o, NULL);
        o.dir = dir;
        o.sync = (enum store_sync)mode;
        struct store *s;
        assert_int_equal(store_open(&o, &s, err, sizeof err), 0);
        for (uint64_t id = 1; id <= 50; id++) {
            uint64_t msg = (uint64_t)mode * 1000 + id;
            assert_int_equal(store_add_message(s, msg, &msg, sizeof msg, NULL), 0);
            assert_int_equal(store_add_ref(s, msg, 1, NULL), 0);
            if (id % 7 == 0)
                assert_int_equal(store_sync(s), 0);
        }
        assert_int_equal(store_sync(s), 0);
        assert_int_equal(store_durable_lsn(s), store_last_lsn(s));
        store_close(s);
    }
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0);
    assert_int_equal(store_live_messages(s), 100);
    store_close(s);
}

static void a_store_of_many_segments_stays_within_a_small_fd_limit(void **state)
{
    (void)state;
    struct rlimit old, low = {64, 64};
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct store *s;
    assert_int_equal(st_open(dir, 64 * 1024, &s, err, sizeof err), 0);
    static uint8_t body[3000], got[3000];
    for (uint64_t id = 1; id <= 2000; id++) { /* ~100 segments */
        st_body(id, body, sizeof body);
        assert_int_equal(store_add_message(s, id, body, sizeof body, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
        if (id % 16 == 0)
            assert_int_equal(store_sync(s), 0);
    }
    assert_int_equal(store_sync(s), 0);
    assert_true(store_segment_count(s) > 80);
    for (int round = 0; round < 2; round++)
        for (uint64_t id = 1; id <= 2000; id += 7) {
            st_body(id, body, sizeof body);
            assert_int_equal(store_read_body(s, id, got, sizeof got), (long)sizeof got);
            assert_memory_equal(got, body, sizeof body);
        }
    store_close(s);
    assert_int_equal(st_open(dir, 64 * 1024, &s, err, sizeof err), 0);
    assert_int_equal(store_live_messages(s), 2000);
    store_close(s);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

static void appends_of_store_owned_types_and_bad_payloads_are_refused(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    uint8_t junk[64] = {1};
    assert_int_equal(store_append(s, JNL_REC_CKPT_BEGIN, junk, 32, NULL), -EINVAL);
    assert_int_equal(store_append(s, JNL_REC_EPOCH_START, junk, 16, NULL), -EINVAL);
    assert_int_equal(store_append(s, JNL_REC_BINDING_ADD, junk, 16, NULL), -EINVAL);
    assert_int_equal(store_append(s, (enum jnl_rec_type)99, junk, 8, NULL), -EINVAL);
    assert_int_equal(store_append(s, JNL_REC_REF_ADD, junk, 5, NULL), -EINVAL);
    assert_int_equal(store_append(s, JNL_REC_TX_COMMIT, junk, 3, NULL), -EINVAL);
    assert_int_equal(store_append_tx(s, 1, JNL_REC_TX_COMMIT, junk, 8, NULL), -EINVAL);
    assert_int_equal(store_add_message(s, 0, "x", 1, NULL), -EINVAL);
    assert_int_equal(store_add_message(s, 1, "x", 1, NULL), 0);
    assert_int_equal(store_add_ref(s, 1, 1, NULL), 0);
    store_close(s);
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    assert_int_equal(store_live_messages(s), 1);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_the_store_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(appended_records_become_durable_through_the_event_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(a_second_writer_is_refused_while_the_first_holds_writer_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(messages_refs_and_counts_survive_a_reopen_across_segment_rolls, setup, teardown),
        cmocka_unit_test_setup_teardown(delivery_counts_are_reported_by_foreach_live, setup, teardown),
        cmocka_unit_test_setup_teardown(transaction_records_count_only_once_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(a_record_larger_than_a_segment_is_refused_but_such_a_body_goes_to_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(bindings_survive_a_reopen_and_a_rewrite, setup, teardown),
        cmocka_unit_test_setup_teardown(a_fenced_writer_cannot_add_one_record, setup, teardown),
        cmocka_unit_test_setup_teardown(a_roll_rereads_the_epoch_and_stops_a_fenced_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(the_buffered_fallback_works_on_dev_shm, setup, teardown),
        cmocka_unit_test_setup_teardown(ext4_build_tree_uses_o_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(both_sync_modes_make_records_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(a_store_of_many_segments_stays_within_a_small_fd_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(appends_of_store_owned_types_and_bad_payloads_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
