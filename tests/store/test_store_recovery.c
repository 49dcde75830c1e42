/*
 * Recovery of damaged stores: torn tails are cut and reported, corruption is
 * refused with file and offset (or cut with allow_truncate_corrupt), garbage and
 * bad headers give clear errors, and a bounded fuzz loop over random mutations of
 * a valid store never crashes (run under ASan in the sanitizer build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "hamq/journal_format.h"
#include "store.h"
#include "store_testlib.h"

static char dir[4096];
static char err[8192];
static char seg1[4200];

#define NMSG 20

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "recovery", false);
    st_seg_path(seg1, sizeof seg1, dir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

/* NMSG messages (add + ref), each pair made durable on its own. */
static void make_store_n(uint64_t seg, uint64_t nmsg)
{
    struct store *s;
    assert_int_equal(st_open(dir, seg, &s, err, sizeof err), 0);
    uint8_t body[2000];
    for (uint64_t id = 1; id <= nmsg; id++) {
        size_t n = st_body_len(id, sizeof body);
        st_body(id, body, n);
        assert_int_equal(store_add_message(s, id, body, n, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
        assert_int_equal(store_sync(s), 0);
    }
    store_close(s);
}

static void make_store(uint64_t seg)
{
    make_store_n(seg, NMSG);
}

struct recpos {
    uint64_t off;
    struct jnl_rec_header h;
};

/* Valid records of one segment file, in order. */
static size_t list_records(const char *path, struct recpos *v, size_t max)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t n = 0;
    uint64_t off = JNL_DATA_OFFSET;
    while (n < max) {
        struct jnl_rec_header h;
        if (pread(fd, &h, sizeof h, (off_t)off) != (ssize_t)sizeof h || h.lsn == 0)
            break;
        v[n].off = off;
        v[n].h = h;
        n++;
        off += (sizeof h + h.length + 7) & ~7ull;
    }
    close(fd);
    return n;
}

static void reseal(const char *path, uint64_t off)
{
    struct jnl_rec_header h;
    st_peek(path, off, &h, sizeof h);
    uint8_t *p = malloc(h.length + 1);
    st_peek(path, off + sizeof h, p, h.length);
    h.crc = 0;
    h.crc = crc32c(crc32c(0, &h, sizeof h), p, h.length);
    st_poke(path, off, &h, sizeof h);
    free(p);
}

static void check_bodies(struct store *s, uint64_t upto)
{
    uint8_t body[2000], got[2000];
    for (uint64_t id = 1; id <= upto; id++) {
        size_t n = st_body_len(id, sizeof body);
        st_body(id, body, n);
        assert_int_equal(store_read_body(s, id, got, sizeof got), (long)n);
        assert_memory_equal(got, body, n);
    }
}

static void a_truncated_last_record_is_a_torn_tail_that_is_cut_and_reported(void **state)
{
    (void)state;
    make_store(10 << 20);
    struct recpos v[200];
    size_t n = list_records(seg1, v, 200);
    assert_true(n > 2 * NMSG);
    uint64_t last_end = v[n - 1].off + sizeof(struct jnl_rec_header) + v[n - 1].h.length;
    assert_int_equal(truncate(seg1, (off_t)(last_end - 5)), 0);
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    assert_true(ri.torn);
    assert_false(ri.truncated_corrupt);
    check_bodies(s, NMSG - 1);
    assert_int_equal(store_read_body(s, NMSG, NULL, 0), -ENOENT); /* lost its only ref */
    store_close(s);
    /* the cut is durable: the next open finds a clean end */
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0);
    store_recovery_info(s, &ri);
    assert_false(ri.torn);
    store_close(s);
}

static void scribbled_last_bytes_are_a_torn_tail(void **state)
{
    (void)state;
    make_store(10 << 20);
    struct recpos v[200];
    size_t n = list_records(seg1, v, 200);
    uint8_t junk[24];
    memset(junk, 0xa5, sizeof junk);
    /* the last record is the ref of message NMSG: its tail bytes */
    st_poke(seg1, v[n - 1].off + 30, junk, sizeof junk);
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    assert_true(ri.torn);
    check_bodies(s, NMSG - 1);
    assert_int_equal(store_read_body(s, NMSG, NULL, 0), -ENOENT); /* lost its only ref */
    /* new records go where the torn one was, and stay */
    assert_int_equal(store_add_message(s, 1000, "new", 3, NULL), 0);
    assert_int_equal(store_add_ref(s, 1000, 1, NULL), 0);
    store_close(s);
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0);
    store_recovery_info(s, &ri);
    assert_false(ri.torn);
    assert_int_equal(store_read_body(s, 1000, NULL, 0), 3);
    store_close(s);
}

static void a_flipped_byte_in_the_middle_is_refused_naming_file_and_offset(void **state)
{
    (void)state;
    make_store(10 << 20);
    struct recpos v[200];
    size_t n = list_records(seg1, v, 200);
    size_t k = n / 2;
    uint8_t b;
    st_peek(seg1, v[k].off + 20, &b, 1);
    b ^= 0x10;
    st_poke(seg1, v[k].off + 20, &b, 1);
    struct store *s;
    int r = st_open(dir, 10 << 20, &s, err, sizeof err);
    assert_int_equal(r, -EBADMSG);
    char want[64];
    snprintf(want, sizeof want, "offset %" PRIu64 ":", v[k].off);
    assert_non_null(strstr(err, seg1));
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "allow_truncate_corrupt"));
    /* refusing did not change anything: still refused */
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EBADMSG);
}

static void allow_truncate_corrupt_starts_anyway_by_cutting_there(void **state)
{
    (void)state;
    make_store(10 << 20);
    struct recpos v[200];
    size_t n = list_records(seg1, v, 200);
    size_t k = n / 2;
    uint8_t b = 0xee;
    st_poke(seg1, v[k].off + 41, &b, 1);
    struct store_opts o;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.allow_truncate_corrupt = true;
    struct store *s;
    assert_int_equal(store_open(&o, &s, err, sizeof err), 0);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    assert_true(ri.truncated_corrupt);
    assert_int_equal(ri.next_lsn, v[k].h.lsn);
    store_close(s);
    o.allow_truncate_corrupt = false;
    assert_int_equal(store_open(&o, &s, err, sizeof err), 0);
    store_close(s);
}

static void a_valid_record_with_the_wrong_lsn_is_an_lsn_gap(void **state)
{
    (void)state;
    make_store(10 << 20);
    struct recpos v[200];
    size_t n = list_records(seg1, v, 200);
    size_t k = n / 3;
    struct jnl_rec_header h = v[k].h;
    h.lsn += 5;
    st_poke(seg1, v[k].off, &h, sizeof h);
    reseal(seg1, v[k].off);
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "LSN gap"));
}

static void a_zeroed_record_in_an_older_segment_is_corruption(void **state)
{
    (void)state;
    make_store_n(64 * 1024, 150);
    struct recpos v[200];
    size_t n = list_records(seg1, v, 200);
    assert_true(n > 4);
    uint8_t z[40] = {0};
    st_poke(seg1, v[n - 1].off, z, sizeof z); /* last record of segment 1 */
    struct store *s;
    int r = st_open(dir, 64 * 1024, &s, err, sizeof err);
    assert_int_equal(r, -EBADMSG);
    assert_non_null(strstr(err, seg1));
}

static void zero_length_segment_is_a_clear_error(void **state)
{
    (void)state;
    make_store(10 << 20);
    char p[4200];
    st_seg_path(p, sizeof p, dir, 1);
    assert_int_equal(truncate(p, 0), 0);
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "empty"));
    assert_non_null(strstr(err, p));
}

static void a_bad_segment_header_is_a_clear_error(void **state)
{
    (void)state;
    make_store(10 << 20);
    struct store *s;
    uint32_t bad = 0x12345678;
    st_poke(seg1, 0, &bad, 4);
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "bad magic"));
    uint32_t magic = JNL_SEG_MAGIC;
    st_poke(seg1, 0, &magic, 4);
    uint8_t b = 0x77;
    st_poke(seg1, 40, &b, 1); /* created_ns */
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "header CRC"));
}

static void an_unknown_format_version_is_refused(void **state)
{
    (void)state;
    make_store(10 << 20);
    struct jnl_seg_header h;
    st_peek(seg1, 0, &h, sizeof h);
    h.version = 99;
    h.header_crc = crc32c(0, &h, offsetof(struct jnl_seg_header, header_crc));
    st_poke(seg1, 0, &h, sizeof h);
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EPROTO);
    assert_non_null(strstr(err, "unknown format version 99"));
}

static void a_foreign_file_in_the_journal_directory_is_a_clear_error(void **state)
{
    (void)state;
    make_store(10 << 20);
    char p[4200];
    snprintf(p, sizeof p, "%s/journal/notes.txt", dir);
    FILE *f = fopen(p, "w");
    fputs("hello", f);
    fclose(f);
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "notes.txt"));
}

static void a_garbage_store_epoch_is_a_clear_error(void **state)
{
    (void)state;
    make_store(10 << 20);
    char p[4200];
    snprintf(p, sizeof p, "%s/store.epoch", dir);
    FILE *f = fopen(p, "w");
    fputs("banana\n", f);
    fclose(f);
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "store.epoch"));
}

/* --- fuzz --- */

static void fz_poke(const char *path, uint64_t off, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return; /* deleted by an earlier mutation */
    assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
    close(fd);
}


static void copy_file(const char *from, const char *to)
{
    int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    assert_true(a >= 0 && b >= 0);
    static uint8_t buf[1 << 16];
    ssize_t n;
    off_t off = 0;
    while ((n = pread(a, buf, sizeof buf, off)) > 0) {
        /* keep holes small: skip writing zero chunks */
        bool zero = true;
        for (ssize_t i = 0; i < n && zero; i++)
            zero = buf[i] == 0;
        if (!zero)
            assert_int_equal(pwrite(b, buf, (size_t)n, off), n);
        off += n;
    }
    assert_int_equal(ftruncate(b, off), 0);
    close(a);
    close(b);
}

static void random_mutations_of_a_valid_store_never_crash(void **state)
{
    (void)state;
    const uint64_t seg = 64 * 1024;
    make_store_n(seg, 150);
    char pristine[4096], work[4096];
    st_mkdtemp(pristine, sizeof pristine, "fuzz-src", false);
    int nseg = 0;
    for (uint64_t q = 1; q < 64; q++) {
        char a[4200], b[4200];
        st_seg_path(a, sizeof a, dir, q);
        if (access(a, F_OK) < 0)
            break;
        snprintf(b, sizeof b, "%s/%" PRIu64, pristine, q);
        copy_file(a, b);
        nseg++;
    }
    assert_true(nseg >= 3);
    srand(12345);
    double t0 = st_now();
    int opened = 0, refused = 0, iters = 0;
    for (; iters < 300 && st_now() - t0 < 40; iters++) {
        st_mkdtemp(work, sizeof work, "fuzz", false);
        char jd[4200];
        snprintf(jd, sizeof jd, "%s/journal", work);
        mkdir(jd, 0750);
        for (int q = 1; q <= nseg; q++) {
            char a[4200], b[4200];
            snprintf(a, sizeof a, "%s/%d", pristine, q);
            st_seg_path(b, sizeof b, work, (uint64_t)q);
            copy_file(a, b);
        }
        int muts = 1 + rand() % 3;
        for (int m = 0; m < muts; m++) {
            char p[4200];
            st_seg_path(p, sizeof p, work, (uint64_t)(1 + rand() % nseg));
            uint64_t off = (uint64_t)rand() % (seg + 4096);
            switch (rand() % 5) {
            case 0: { uint8_t b = (uint8_t)rand(); fz_poke(p, off, &b, 1); break; }
            case 1: (void)truncate(p, (off_t)(rand() % (int)seg)); break;
            case 2: { uint8_t z[512] = {0}; fz_poke(p, off, z, (size_t)(1 + rand() % 512)); break; }
            case 3: { uint8_t g[256]; for (int i = 0; i < 256; i++) g[i] = (uint8_t)rand();
                      fz_poke(p, off, g, sizeof g); break; }
            default: if (rand() % 4 == 0) unlink(p); break;
            }
        }
        struct store_opts o;
        store_opts_init(&o, NULL);
        o.dir = work;
        o.segment_size = seg;
        o.allow_truncate_corrupt = rand() % 2;
        struct store *s;
        err[0] = 0;
        int r = store_open(&o, &s, err, sizeof err);
        if (r == 0) {
            opened++;
            uint8_t buf[2000];
            for (uint64_t id = 1; id <= 150; id++) {
                long n = store_read_body(s, id, buf, sizeof buf);
                assert_true(n >= 0 || n == -ENOENT || n == -EIO);
            }
            store_close(s);
            /* whatever was cut, a second open must agree with the first */
            assert_int_equal(store_open(&o, &s, err, sizeof err), 0);
            store_close(s);
        } else {
            refused++;
            assert_true(strlen(err) > 10);
        }
        st_rmrf(work);
    }
    st_rmrf(pristine);
    print_message("fuzz: %d iterations, %d opened, %d refused\n", iters, opened, refused);
    assert_true(iters >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_truncated_last_record_is_a_torn_tail_that_is_cut_and_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(scribbled_last_bytes_are_a_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(a_flipped_byte_in_the_middle_is_refused_naming_file_and_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(allow_truncate_corrupt_starts_anyway_by_cutting_there, setup, teardown),
        cmocka_unit_test_setup_teardown(a_valid_record_with_the_wrong_lsn_is_an_lsn_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(a_zeroed_record_in_an_older_segment_is_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(zero_length_segment_is_a_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(a_bad_segment_header_is_a_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unknown_format_version_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_foreign_file_in_the_journal_directory_is_a_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(a_garbage_store_epoch_is_a_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(random_mutations_of_a_valid_store_never_crash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
