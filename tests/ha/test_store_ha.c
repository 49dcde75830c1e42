/*
 * test_store_ha — the store's HA module (daemons/store/store_ha.c) and the
 * writer's behaviour under a raised epoch, on real files of a real file system.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hamq/journal_format.h"
#include "store.h"
#include "store_ha.h"
#include "store_testlib.h"

#define SEG (64u * 1024u)

static char dir[512];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "ha", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

static void read_text(const char *name, char *buf, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t r = read(fd, buf, n - 1);
    assert_true(r >= 0);
    buf[r] = 0;
    close(fd);
}

static uint64_t seg_epoch(uint64_t seq)
{
    char path[1024];
    struct jnl_seg_header h;
    st_seg_path(path, sizeof path, dir, seq);
    st_peek(path, 0, &h, sizeof h);
    return h.epoch;
}

static void read_seg(uint64_t seq, uint8_t *buf, size_t n)
{
    char path[1024];
    st_seg_path(path, sizeof path, dir, seq);
    st_peek(path, 0, buf, n);
}

static void add_messages(struct store *s, uint64_t first, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t body[64];
        st_body(first + (uint64_t)i, body, sizeof body);
        assert_int_equal(store_add_message(s, first + (uint64_t)i, body, sizeof body, NULL), 0);
        assert_int_equal(store_add_ref(s, first + (uint64_t)i, 1, NULL), 0);
    }
    assert_int_equal(store_sync(s), 0);
}

static void the_lock_self_test_passes_on_a_local_file_system(void **state)
{
    (void)state;
    char err[512] = "";
    assert_int_equal(store_ha_lock_selftest(dir, err, sizeof err), 0);
}

static void the_lock_self_test_names_a_missing_directory(void **state)
{
    (void)state;
    char err[512] = "", missing[600];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    assert_true(store_ha_lock_selftest(missing, err, sizeof err) < 0);
    assert_non_null(strstr(err, "nope"));
    assert_int_equal(store_ha_prepare(missing, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "nope"));
}

static void live_lock_is_held_by_one_description_at_a_time(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(store_ha_prepare(dir, err, sizeof err), 0);
    int a = store_ha_live_open(dir, err, sizeof err);
    int b = store_ha_live_open(dir, err, sizeof err);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(fcntl(a, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(store_ha_live_try(a), 0);
    assert_int_equal(store_ha_live_try(b), -EAGAIN);
    assert_int_equal(store_ha_live_release(a), 0);
    assert_int_equal(store_ha_live_try(b), 0);
    assert_int_equal(store_ha_live_try(a), -EAGAIN);
    close(b); /* closing the holder's description frees it */
    assert_int_equal(store_ha_live_wait(a), 0);
    close(a);
}

static void raising_the_epoch_writes_the_next_decimal(void **state)
{
    (void)state;
    char err[512], text[64];
    uint64_t e = 0;
    assert_int_equal(store_ha_read_epoch(dir, &e, err, sizeof err), 0);
    assert_int_equal(e, 1); /* no file yet */
    assert_int_equal(store_ha_raise_epoch(dir, 0, &e, err, sizeof err), 0);
    assert_int_equal(e, 2);
    read_text("store.epoch", text, sizeof text);
    assert_string_equal(text, "2\n");
    assert_int_equal(store_ha_raise_epoch(dir, 41, &e, err, sizeof err), 0);
    assert_int_equal(e, 42); /* a peer reported 41: never go back below what was seen */
    read_text("store.epoch", text, sizeof text);
    assert_string_equal(text, "42\n");
    assert_int_equal(access(dir, F_OK), 0);
}

static void writer_lock_probe_reports_the_holder(void **state)
{
    (void)state;
    char err[512];
    struct store *s;
    pid_t pid = -1;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    assert_int_equal(store_ha_writer_held(dir, &pid, err, sizeof err), 1);
    assert_int_equal(pid, getpid());
    store_close(s);
    assert_int_equal(store_ha_writer_held(dir, &pid, err, sizeof err), 0);
}

static void a_new_epoch_starts_a_fresh_segment_and_keeps_the_messages(void **state)
{
    (void)state;
    char err[512];
    struct store *s;
    uint64_t e;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    add_messages(s, 1, 10);
    store_close(s);
    static uint8_t before[SEG], after[SEG];
    read_seg(1, before, sizeof before);
    assert_int_equal(store_ha_raise_epoch(dir, 0, &e, err, sizeof err), 0);
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    assert_int_equal(store_epoch(s), e);
    assert_int_equal(store_live_messages(s), 10);
    assert_int_equal(seg_epoch(1), 1); /* the old tail was left as it was */
    assert_int_equal(seg_epoch(2), e); /* writing goes on in a segment of the new epoch */
    add_messages(s, 11, 5);
    store_close(s);
    read_seg(1, after, sizeof after);
    assert_memory_equal(before, after, sizeof before); /* not one byte more in the old tail */
    /* a restart in the same epoch appends where it stopped: no new segment */
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    assert_int_equal(store_live_messages(s), 15);
    assert_int_equal(seg_epoch(2), e);
    store_close(s);
    /* the follower reads across the sealed tail too */
    struct store_follower *f;
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    for (int i = 0; i < 50 && store_follow_live_messages(f) < 15; i++)
        assert_true(store_follow_poll(f, 0) >= 0);
    assert_int_equal(store_follow_live_messages(f), 15);
    store_follow_close(f);
}

static void a_fenced_writer_cannot_add_one_record(void **state)
{
    (void)state;
    char err[512];
    struct store *s;
    uint64_t e;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    add_messages(s, 1, 3);
    uint64_t last = store_last_lsn(s);
    assert_int_equal(store_ha_raise_epoch(dir, 0, &e, err, sizeof err), 0);
    assert_int_equal(store_check_epoch(s), 1);
    assert_true(store_fenced(s));
    uint8_t body[8] = {0};
    assert_int_equal(store_add_message(s, 99, body, sizeof body, NULL), -ESTALE);
    assert_int_equal(store_add_ref(s, 1, 2, NULL), -ESTALE);
    assert_int_equal(store_ack(s, 1, 1, NULL), -ESTALE);
    assert_int_equal(store_last_lsn(s), last);
    store_close(s);
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    assert_int_equal(store_live_messages(s), 3);
    assert_int_equal(store_read_body(s, 99, body, sizeof body), -ENOENT);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_lock_self_test_passes_on_a_local_file_system, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_lock_self_test_names_a_missing_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(live_lock_is_held_by_one_description_at_a_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(raising_the_epoch_writes_the_next_decimal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(writer_lock_probe_reports_the_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_new_epoch_starts_a_fresh_segment_and_keeps_the_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(a_fenced_writer_cannot_add_one_record, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
