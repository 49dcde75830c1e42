/*
 * Large messages (JNL_REC_LARGE_ADD + large-messages/<id>.msg): bodies bigger than a
 * segment round-trip through reopens, checkpoints and compaction; the file goes
 * only once the acknowledgement of the last reference is durable; a crash between
 * the file and its record leaves neither a record nor an orphan after recovery; a
 * crash after a durable ack leaves an orphan that recovery deletes; no batch goes out
 * while a large file's sync is in flight; a follower reads
 * them; a damaged file is reported, not served.
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
#include "store_int.h"
#include "store_testlib.h"

#define SEG (64 * 1024)
#define BIG (300 * 1024) /* more than four segments */

static char dir[4096];
static char err[8192];
static uint8_t body[BIG], back[BIG];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "large", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

static int open_store(struct store **s)
{
    return st_open(dir, SEG, s, err, sizeof err);
}

static void file_of(char *out, size_t n, uint64_t id)
{
    snprintf(out, n, "%s/large-messages/%016" PRIx64 ".msg", dir, id);
}

static bool file_exists(uint64_t id)
{
    char p[4300];
    file_of(p, sizeof p, id);
    return access(p, F_OK) == 0;
}

static void add(struct store *s, uint64_t id, size_t len, uint64_t queue)
{
    st_body(id, body, len);
    assert_int_equal(store_add_message(s, id, body, len, NULL), 0);
    assert_int_equal(store_add_ref(s, id, queue, NULL), 0);
}

static void check_body(struct store *s, uint64_t id, size_t len)
{
    st_body(id, body, len);
    memset(back, 0, len);
    assert_int_equal(store_read_body(s, id, back, sizeof back), (long)len);
    assert_memory_equal(body, back, len);
}

static int body_len_of(void *ctx, const struct store_live_ref *r)
{
    if (r->msg_id == 1)
        *(uint32_t *)ctx = r->body_len;
    return 0;
}

static void a_body_bigger_than_a_segment_round_trips_through_reopens_and_a_checkpoint(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    add(s, 1, BIG, 7);
    add(s, 2, 100, 7);       /* inline */
    add(s, 3, 20 * 1024, 7); /* over a quarter of the segment: a file too */
    check_body(s, 1, BIG);   /* before it is durable */
    assert_int_equal(store_sync(s), 0);
    assert_true(file_exists(1) && file_exists(3) && !file_exists(2));
    store_close(s);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(open_store(&s), 0);
        assert_int_equal(store_live_messages(s), 3);
        check_body(s, 1, BIG);
        check_body(s, 2, 100);
        check_body(s, 3, 20 * 1024);
        uint32_t bl = 0;
        assert_int_equal(store_foreach_live(s, body_len_of, &bl), 0);
        assert_int_equal(bl, BIG);
        if (round == 0)
            assert_int_equal(store_checkpoint(s), 0);
        store_close(s);
    }
}

static void the_file_goes_only_once_the_last_acknowledgement_is_durable(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    add(s, 1, BIG, 7);
    assert_int_equal(store_add_ref(s, 1, 8, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_ack(s, 1, 7, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    assert_true(file_exists(1)); /* queue 8 still holds it */
    assert_int_equal(store_ack(s, 1, 8, NULL), 0);
    assert_true(file_exists(1)); /* the ack is not durable yet */
    assert_int_equal(store_sync(s), 0);
    assert_false(file_exists(1));
    assert_int_equal(store_read_body(s, 1, back, sizeof back), -ENOENT);
    store_close(s);
    assert_int_equal(open_store(&s), 0);
    assert_int_equal(store_live_messages(s), 0);
    store_close(s);
}

/* A child adds message 1 (large) to queue 7, acks it if asked, and dies at step. */
static int child_dies_at(const char *step, bool ack)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s;
        if (open_store(&s) < 0 || store_sync(s) < 0)
            _exit(2);
        if (ack) {
            st_body(1, body, BIG);
            if (store_add_message(s, 1, body, BIG, NULL) < 0 || store_add_ref(s, 1, 7, NULL) < 0 ||
                store_sync(s) < 0 || store_ack(s, 1, 7, NULL) < 0)
                _exit(3);
        }
        setenv("HAMQ_STORE_CRASH_AT", step, 1);
        if (!ack) {
            st_body(1, body, BIG);
            if (store_add_message(s, 1, body, BIG, NULL) < 0 || store_add_ref(s, 1, 7, NULL) < 0)
                _exit(3);
        }
        store_sync(s);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void a_crash_between_the_file_and_its_record_leaves_no_record_and_no_orphan(void **state)
{
    (void)state;
    const char *steps[] = {"large_file_written", "large_before_record", "before_submit"};
    for (size_t k = 0; k < 3; k++) {
        st_rmrf(dir);
        assert_int_equal(mkdir(dir, 0750), 0);
        assert_int_equal(child_dies_at(steps[k], false), 99);
        assert_true(file_exists(1)); /* written, but no durable record names it */
        struct store *s;
        assert_int_equal(open_store(&s), 0);
        assert_int_equal(store_live_messages(s), 0);
        assert_false(file_exists(1));
        store_close(s);
    }
}

static void a_durable_record_keeps_its_file_through_a_crash(void **state)
{
    (void)state;
    assert_int_equal(child_dies_at("after_durable", false), 99);
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    assert_int_equal(store_live_messages(s), 1);
    check_body(s, 1, BIG);
    store_close(s);
}

static void
a_crash_around_the_acknowledgement_keeps_or_deletes_the_file_with_the_message(void **state)
{
    (void)state;
    /* the ack never reached the disk: the message is live and its file intact */
    assert_int_equal(child_dies_at("before_submit", true), 99);
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    assert_int_equal(store_live_messages(s), 1);
    check_body(s, 1, BIG);
    store_close(s);
    /* the ack is durable but the process died before deleting: recovery deletes it */
    st_rmrf(dir);
    assert_int_equal(mkdir(dir, 0750), 0);
    assert_int_equal(child_dies_at("after_durable", true), 99);
    assert_true(file_exists(1));
    assert_int_equal(open_store(&s), 0);
    assert_int_equal(store_live_messages(s), 0);
    assert_false(file_exists(1));
    store_close(s);
}

static void compaction_keeps_large_messages_and_their_files(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    for (uint64_t id = 1; id <= 300; id++)
        add(s, id, id % 50 == 0 ? 40 * 1024 : st_body_len(id, 1500), 1);
    for (uint64_t id = 1; id <= 300; id++)
        if (id % 10 != 0)
            assert_int_equal(store_ack(s, id, 1, NULL), 0);
    assert_int_equal(store_sync(s), 0);
    assert_true(store_compact(s) > 0);
    for (uint64_t id = 10; id <= 300; id += 10)
        check_body(s, id, id % 50 == 0 ? 40 * 1024 : st_body_len(id, 1500));
    store_close(s);
    assert_int_equal(open_store(&s), 0);
    assert_int_equal(store_live_messages(s), 30);
    for (uint64_t id = 50; id <= 300; id += 50) {
        assert_true(file_exists(id));
        check_body(s, id, 40 * 1024);
    }
    store_close(s);
}

static void no_batch_goes_out_while_a_large_file_sync_is_in_flight(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    assert_int_equal(store_sync(s), 0);
    uint64_t before = store_durable_lsn(s), lsn = 0;
    add(s, 2, 100, 7); /* appended before the large one: held too */
    st_body(1, body, BIG);
    assert_int_equal(store_add_message(s, 1, body, BIG, &lsn), 0);
    assert_int_equal(s->large_pending, 1); /* its completion is only reaped by us */
    assert_int_equal(store_kick(s), 0);
    assert_null(s->inflight);
    assert_int_equal(store_durable_lsn(s), before);
    assert_int_equal(store_sync(s), 0); /* reaps the file sync, then the batch goes */
    assert_int_equal(s->large_pending, 0);
    assert_true(store_durable_lsn(s) >= lsn);
    check_body(s, 1, BIG);
    store_close(s);
}

static void a_follower_reads_large_bodies(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    add(s, 1, BIG, 7);
    assert_int_equal(store_sync(s), 0);
    struct store_follower *f;
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    assert_true(store_follow_poll(f, store_durable_lsn(s)) > 0);
    assert_int_equal(store_follow_live_messages(f), 1);
    st_body(1, body, BIG);
    assert_int_equal(store_follow_read_body(f, 1, back, sizeof back), BIG);
    assert_memory_equal(body, back, BIG);
    store_follow_close(f);
    store_close(s);
}

static void a_damaged_large_file_is_reported_not_served(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(open_store(&s), 0);
    add(s, 1, BIG, 7);
    assert_int_equal(store_sync(s), 0);
    char p[4300];
    file_of(p, sizeof p, 1);
    uint8_t b;
    st_peek(p, 1000, &b, 1);
    b ^= 0x40;
    st_poke(p, 1000, &b, 1);
    assert_int_equal(store_read_body(s, 1, back, sizeof back), -EIO);
    assert_int_equal(truncate(p, 10), 0);
    assert_int_equal(store_read_body(s, 1, back, sizeof back), -EIO);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_body_bigger_than_a_segment_round_trips_through_reopens_and_a_checkpoint, setup,
            teardown),
        cmocka_unit_test_setup_teardown(the_file_goes_only_once_the_last_acknowledgement_is_durable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_crash_between_the_file_and_its_record_leaves_no_record_and_no_orphan, setup,
            teardown),
        cmocka_unit_test_setup_teardown(a_durable_record_keeps_its_file_through_a_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_crash_around_the_acknowledgement_keeps_or_deletes_the_file_with_the_message, setup,
            teardown),
        cmocka_unit_test_setup_teardown(compaction_keeps_large_messages_and_their_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_batch_goes_out_while_a_large_file_sync_is_in_flight,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_follower_reads_large_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(a_damaged_large_file_is_reported_not_served, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
