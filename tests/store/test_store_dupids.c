/*
 * Duplicate ids (JNL_REC_DUP_ID): the record round-trips through a reopen; each
 * address keeps only its newest N ids, in order; the ids survive checkpoints,
 * compaction (whose segment deletions must not lose them) and a crash at every
 * compaction step; an id whose record never became durable is lost together with
 * everything after it, one that was durable is kept; a follower sees them; bad
 * sizes are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_testlib.h"

#define SEG (64 * 1024)

static char dir[4096];
static char err[8192];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "dupids", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

static int open_limit(uint32_t limit, struct store **s)
{
    struct store_opts o;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.segment_size = SEG;
    o.write_buffer_size = 64 * 1024;
    o.dup_ids_per_address = limit;
    return store_open(&o, s, err, sizeof err);
}

/* The ids as "address|hex(id)" lines, in walk order (per address oldest first). */
struct dups {
    char **v;
    size_t n;
};

static int collect(void *ctx, const char *address, const void *id, size_t len)
{
    struct dups *d = ctx;
    char *line = malloc(strlen(address) + 2 + 2 * len + 1);
    assert_non_null(line);
    int at = sprintf(line, "%s|", address);
    for (size_t i = 0; i < len; i++)
        at += sprintf(line + at, "%02x", ((const uint8_t *)id)[i]);
    d->v = realloc(d->v, (d->n + 1) * sizeof *d->v);
    assert_non_null(d->v);
    d->v[d->n++] = line;
    return 0;
}

static struct dups dups_of(struct store *s)
{
    struct dups d = {0};
    assert_int_equal(store_foreach_duplicate_id(s, collect, &d), 0);
    return d;
}

static void dups_free(struct dups *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i]);
    free(d->v);
    memset(d, 0, sizeof *d);
}

/* Lines of one address, in order. */
static size_t lines_of(const struct dups *d, const char *address, char **out, size_t max)
{
    size_t n = 0, al = strlen(address);
    for (size_t i = 0; i < d->n; i++)
        if (strncmp(d->v[i], address, al) == 0 && d->v[i][al] == '|' && n < max)
            out[n++] = d->v[i];
    return n;
}

/* Addresses may come in any order; each address's ids must match in order. */
static void assert_same(const struct dups *a, const struct dups *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        char address[256];
        snprintf(address, sizeof address, "%.*s", (int)strcspn(a->v[i], "|"), a->v[i]);
        if (i > 0 && strncmp(a->v[i - 1], address, strlen(address)) == 0 &&
            a->v[i - 1][strlen(address)] == '|')
            continue; /* this address was compared already */
        char *x[1000], *y[1000];
        size_t nx = lines_of(a, address, x, 1000), ny = lines_of(b, address, y, 1000);
        assert_int_equal(nx, ny);
        for (size_t k = 0; k < nx; k++)
            assert_string_equal(x[k], y[k]);
    }
}

static void add_id(struct store *s, const char *address, uint64_t n)
{
    char id[64];
    int len = snprintf(id, sizeof id, "id-%" PRIu64, n);
    assert_int_equal(store_add_duplicate_id(s, address, id, (size_t)len, NULL), 0);
}

static void a_duplicate_id_record_round_trips_through_a_reopen(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_limit(0, &s), 0);
    const uint8_t bin[5] = {0, 1, 0xff, 0, 7};
    uint64_t lsn = 0;
    assert_int_equal(store_add_duplicate_id(s, "orders", bin, sizeof bin, &lsn), 0);
    assert_true(lsn > 0);
    add_id(s, "orders", 1);
    add_id(s, "payments", 1);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_duplicate_ids(s), 3);
    struct dups before = dups_of(s);
    store_close(s);
    assert_int_equal(open_limit(0, &s), 0);
    struct dups after = dups_of(s);
    assert_same(&before, &after);
    char *o[4];
    assert_int_equal(lines_of(&after, "orders", o, 4), 2);
    assert_string_equal(o[0], "orders|0001ff0007");
    assert_string_equal(o[1], "orders|69642d31");
    store_close(s);
    dups_free(&before);
    dups_free(&after);
}

static void each_address_keeps_only_its_newest_ids_in_order(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_limit(50, &s), 0);
    for (uint64_t i = 1; i <= 120; i++)
        add_id(s, "a", i);
    for (uint64_t i = 1; i <= 7; i++)
        add_id(s, "b", i);
    assert_int_equal(store_duplicate_ids(s), 57);
    store_close(s);
    for (int round = 0; round < 2; round++) { /* replay, then from a checkpoint */
        assert_int_equal(open_limit(50, &s), 0);
        struct dups d = dups_of(s);
        char *v[200];
        assert_int_equal(lines_of(&d, "a", v, 200), 50);
        assert_string_equal(v[0], "a|69642d3731");    /* id-71 */
        assert_string_equal(v[49], "a|69642d313230"); /* id-120 */
        assert_int_equal(lines_of(&d, "b", v, 200), 7);
        dups_free(&d);
        if (round == 0)
            assert_int_equal(store_checkpoint(s), 0);
        store_close(s);
    }
    /* a smaller limit at the next open keeps the newest of what is there */
    assert_int_equal(open_limit(10, &s), 0);
    struct dups d = dups_of(s);
    char *v[200];
    assert_int_equal(lines_of(&d, "a", v, 200), 10);
    assert_string_equal(v[0], "a|69642d313131"); /* id-111 */
    dups_free(&d);
    store_close(s);
}

/* Messages that are mostly acknowledged, with ids accepted along the way. */
static void make_sparse_store_with_ids(void)
{
    struct store *s;
    assert_int_equal(open_limit(100, &s), 0);
    uint8_t body[1500];
    for (uint64_t id = 1; id <= 600; id++) {
        size_t len = st_body_len(id, sizeof body);
        st_body(id, body, len);
        assert_int_equal(store_add_message(s, id, body, len, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
        add_id(s, id % 3 ? "q1" : "q2", id);
    }
    for (uint64_t id = 1; id <= 600; id++)
        if (id % 10 != 0)
            assert_int_equal(store_ack(s, id, 1, NULL), 0);
    store_close(s);
}

static void duplicate_ids_survive_checkpoints_and_compaction(void **state)
{
    (void)state;
    make_sparse_store_with_ids();
    struct store *s;
    assert_int_equal(open_limit(100, &s), 0);
    struct dups want = dups_of(s);
    assert_int_equal(want.n, 200);
    int segs = store_segment_count(s);
    assert_true(store_compact(s) > 0);
    assert_true(store_segment_count(s) < segs); /* segments holding ids were deleted */
    struct dups mid = dups_of(s);
    assert_same(&want, &mid);
    store_close(s);
    assert_int_equal(open_limit(100, &s), 0);
    struct dups got = dups_of(s);
    assert_same(&want, &got);
    store_close(s);
    dups_free(&want);
    dups_free(&mid);
    dups_free(&got);
}

static const char *const crash_steps[] = {
    "compact_start", "compact_moved",  "compact_moved_durable", "ckpt_appended", "ckpt_durable",
    "ckpt_ptr_tmp",  "ckpt_published", "ckpt_deleted_one",      "compact_done",
};

static void a_crash_at_every_compaction_step_keeps_the_duplicate_ids(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof crash_steps / sizeof crash_steps[0]; k++) {
        st_rmrf(dir);
        assert_int_equal(mkdir(dir, 0750), 0);
        make_sparse_store_with_ids();
        struct store *s;
        assert_int_equal(open_limit(100, &s), 0);
        struct dups want = dups_of(s);
        store_close(s);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            setenv("HAMQ_STORE_CRASH_AT", crash_steps[k], 1);
            if (open_limit(100, &s) < 0)
                _exit(2);
            store_compact(s);
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("step %s: child did not stop there (status %d)", crash_steps[k], status);
        assert_int_equal(open_limit(100, &s), 0);
        struct dups got = dups_of(s);
        assert_same(&want, &got);
        store_close(s);
        dups_free(&want);
        dups_free(&got);
    }
}

/* A child appends a message, its ref and its id, then dies at `step`. */
static int crash_after_appending(const char *step)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s;
        if (open_limit(0, &s) < 0 || store_sync(s) < 0)
            _exit(2);
        setenv("HAMQ_STORE_CRASH_AT", step, 1);
        const char body[] = "payload";
        if (store_add_message(s, 77, body, sizeof body, NULL) < 0 ||
            store_add_ref(s, 77, 1, NULL) < 0 || store_add_duplicate_id(s, "q", "k", 1, NULL) < 0)
            _exit(3);
        store_sync(s);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void an_id_not_yet_durable_is_lost_with_its_message_and_a_durable_one_is_kept(void **state)
{
    (void)state;
    assert_int_equal(crash_after_appending("before_submit"), 99);
    struct store *s;
    assert_int_equal(open_limit(0, &s), 0);
    assert_int_equal(store_duplicate_ids(s), 0);
    assert_int_equal(store_live_messages(s), 0);
    store_close(s);
    assert_int_equal(crash_after_appending("after_durable"), 99);
    assert_int_equal(open_limit(0, &s), 0);
    assert_int_equal(store_duplicate_ids(s), 1);
    assert_int_equal(store_live_messages(s), 1);
    store_close(s);
}

static void a_follower_sees_the_duplicate_ids(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_limit(0, &s), 0);
    for (uint64_t i = 1; i <= 30; i++)
        add_id(s, "f", i);
    assert_int_equal(store_checkpoint(s), 0);
    for (uint64_t i = 31; i <= 40; i++)
        add_id(s, "f", i);
    assert_int_equal(store_sync(s), 0);
    struct store_follower *f;
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    assert_true(store_follow_poll(f, store_durable_lsn(s)) >= 0);
    struct dups got = {0};
    assert_int_equal(store_follow_foreach_duplicate_id(f, collect, &got), 0);
    struct dups want = dups_of(s);
    assert_same(&want, &got);
    assert_int_equal(got.n, 40);
    store_follow_close(f);
    store_close(s);
    dups_free(&want);
    dups_free(&got);
}

static void ids_of_a_bad_size_are_refused(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_limit(0, &s), 0);
    static char big[JNL_DUP_ADDRESS_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(store_add_duplicate_id(s, "q", "", 0, NULL), -EINVAL);
    assert_int_equal(store_add_duplicate_id(s, "", "k", 1, NULL), -EINVAL);
    assert_int_equal(store_add_duplicate_id(s, "q", big, JNL_DUP_ID_MAX + 1, NULL), -ENAMETOOLONG);
    assert_int_equal(store_add_duplicate_id(s, big, "k", 1, NULL), -ENAMETOOLONG);
    assert_int_equal(store_add_duplicate_id(s, "q", big, JNL_DUP_ID_MAX, NULL), 0);
    assert_int_equal(store_duplicate_ids(s), 1);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_duplicate_id_record_round_trips_through_a_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(each_address_keeps_only_its_newest_ids_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(duplicate_ids_survive_checkpoints_and_compaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_crash_at_every_compaction_step_keeps_the_duplicate_ids,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            an_id_not_yet_durable_is_lost_with_its_message_and_a_durable_one_is_kept, setup,
            teardown),
        cmocka_unit_test_setup_teardown(a_follower_sees_the_duplicate_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(ids_of_a_bad_size_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
