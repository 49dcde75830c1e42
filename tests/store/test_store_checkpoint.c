/*
 * Checkpoints and compaction: recovery from a checkpoint rebuilds exactly the
 * index the writer had in memory (and the same as a full replay); old bodiless
 * segments are deleted; compaction rewrites sparse segments; and a crash at
 * every compaction/checkpoint step (HAMQ_STORE_CRASH_AT, _exit in a child)
 * recovers the same live set with intact bodies.
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
#define MAXB 1500

static char dir[4096];
static char err[8192];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "ckpt", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    return 0;
}

/* A canonical text dump of an index: one line per message, sorted, + txs. */
struct dump {
    char **lines;
    size_t n;
};

static int line_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ref_cmp(const void *a, const void *b)
{
    const struct idx_ref *x = a, *y = b;
    return x->queue_id < y->queue_id ? -1 : x->queue_id > y->queue_id;
}

static struct dump dump_index(struct idx *x, bool locations)
{
    struct dump d = {calloc(x->nmsgs + 64, sizeof(char *)), 0};
    size_t pos = 0;
    struct idx_msg *m;
    while ((m = idx_next(x, &pos))) {
        char buf[4096];
        int n = snprintf(buf, sizeof buf, "m %" PRIu64 " len %u", m->msg_id, m->len);
        if (locations)
            n += snprintf(buf + n, sizeof buf - (size_t)n, " @%" PRIu64 ":%u", m->seq, m->off);
        struct idx_ref refs[64];
        uint32_t nr = m->nrefs < 64 ? m->nrefs : 64;
        memcpy(refs, idx_refs(m), nr * sizeof refs[0]);
        qsort(refs, nr, sizeof refs[0], ref_cmp);
        for (uint32_t i = 0; i < nr; i++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, " q%" PRIu64 "=%u", refs[i].queue_id,
                          refs[i].count);
        d.lines[d.n++] = strdup(buf);
    }
    for (struct idx_tx *t = x->txs; t; t = t->next) {
        char buf[256];
        snprintf(buf, sizeof buf, "tx %" PRIu64 " prepared %d ops %zu", t->tx_id, t->prepared,
                 t->nops);
        d.lines = realloc(d.lines, (d.n + 1) * sizeof(char *));
        d.lines[d.n++] = strdup(buf);
    }
    qsort(d.lines, d.n, sizeof(char *), line_cmp);
    return d;
}

static void dump_free(struct dump *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
}

static void assert_dumps_equal(struct dump *a, struct dump *b)
{
    if (a->n != b->n)
        fail_msg("index sizes differ: %zu vs %zu", a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->lines[i], b->lines[i]) != 0)
            fail_msg("index differs: '%s' vs '%s'", a->lines[i], b->lines[i]);
}

static void check_all_bodies(struct store *s)
{
    uint8_t body[MAXB], got[MAXB];
    size_t pos = 0;
    struct idx_msg *m;
    while ((m = idx_next(&s->idx, &pos))) {
        size_t n = st_body_len(m->msg_id, MAXB);
        st_body(m->msg_id, body, n);
        assert_int_equal(store_read_body(s, m->msg_id, got, sizeof got), (long)n);
        assert_memory_equal(got, body, n);
    }
}

/* A random workload: messages on 1-3 queues, counts, acks, and transactions. */
static void workload(struct store *s, uint64_t first, uint64_t n, unsigned seed)
{
    srand(seed);
    uint8_t body[MAXB];
    for (uint64_t id = first; id < first + n; id++) {
        size_t len = st_body_len(id, MAXB);
        st_body(id, body, len);
        if (id % 11 == 0) { /* transactional: committed, rolled back or prepared */
            uint64_t tx = id;
            struct jnl_msg_add a = {.msg_id = id};
            struct jnl_ref r = {.msg_id = id, .queue_id = 5};
            assert_int_equal(writer_append(s, JNL_REC_MSG_ADD, JNL_F_TX, tx, &a, sizeof a, body,
                                           len, NULL),
                             0);
            assert_int_equal(store_append_tx(s, tx, JNL_REC_REF_ADD, &r, sizeof r, NULL), 0);
            enum jnl_rec_type end = id % 3 == 0   ? JNL_REC_TX_COMMIT
                                    : id % 3 == 1 ? JNL_REC_TX_ROLLBACK
                                                  : JNL_REC_TX_PREPARE;
            assert_int_equal(store_tx_end(s, end, tx, NULL), 0);
            continue;
        }
        assert_int_equal(store_add_message(s, id, body, len, NULL), 0);
        int nq = 1 + rand() % 3;
        for (int q = 1; q <= nq; q++)
            assert_int_equal(store_add_ref(s, id, (uint64_t)q, NULL), 0);
        if (rand() % 3 == 0)
            assert_int_equal(store_set_delivery_count(s, id, 1, (uint32_t)(1 + rand() % 5), NULL), 0);
        /* acknowledge an older message on every queue most of the time */
        uint64_t old = first + (uint64_t)rand() % (id - first + 1);
        if (rand() % 4 != 0)
            for (int q = 1; q <= 3; q++)
                if (idx_find(&s->idx, old))
                    assert_int_equal(store_ack(s, old, (uint64_t)q, NULL), 0);
        if (rand() % 16 == 0)
            assert_int_equal(store_sync(s), 0);
    }
    assert_int_equal(store_sync(s), 0);
}

static void recovery_from_a_checkpoint_rebuilds_the_index_kept_in_memory(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    workload(s, 1, 600, 1);
    assert_int_equal(store_checkpoint(s), 0);
    workload(s, 1000, 200, 2);
    struct dump before = dump_index(&s->idx, true);
    uint64_t total = store_last_lsn(s);
    store_close(s);
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    assert_true(ri.from_checkpoint);
    assert_true(ri.records < total / 2); /* replay bounded by what follows the checkpoint */
    struct dump after = dump_index(&s->idx, true);
    assert_dumps_equal(&before, &after);
    check_all_bodies(s);
    store_close(s);
    dump_free(&after);
    dump_free(&before);
}

static void a_full_replay_and_a_checkpoint_replay_agree(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0); /* nothing deleted */
    workload(s, 1, 500, 3);
    assert_int_equal(store_checkpoint(s), 0);
    workload(s, 1000, 100, 4);
    store_close(s);
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0);
    struct dump a = dump_index(&s->idx, true);
    store_close(s);
    char p[4200];
    snprintf(p, sizeof p, "%s/journal/checkpoint", dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(st_open(dir, 10 << 20, &s, err, sizeof err), 0);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    assert_false(ri.from_checkpoint);
    struct dump b = dump_index(&s->idx, true);
    assert_dumps_equal(&a, &b);
    store_close(s);
    dump_free(&a);
    dump_free(&b);
}

static void a_checkpoint_deletes_old_segments_without_live_bodies(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    uint8_t body[1000] = {0};
    for (uint64_t id = 1; id <= 400; id++) {
        assert_int_equal(store_add_message(s, id, body, sizeof body, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1, NULL), 0);
        if (id > 1)
            assert_int_equal(store_ack(s, id - 1, 1, NULL), 0);
    }
    assert_int_equal(store_sync(s), 0);
    int before = store_segment_count(s);
    assert_true(before > 5);
    assert_int_equal(store_checkpoint(s), 0);
    int after = store_segment_count(s);
    assert_true(after <= 3);
    store_close(s);
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    assert_int_equal(store_live_messages(s), 1);
    assert_int_equal(store_read_body(s, 400, NULL, 0), 1000);
    store_close(s);
}

static void checkpoints_are_taken_automatically_every_checkpoint_bytes(void **state)
{
    (void)state;
    struct store_opts o;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.segment_size = SEG;
    o.checkpoint_bytes = 128 * 1024;
    struct store *s;
    assert_int_equal(store_open(&o, &s, err, sizeof err), 0);
    workload(s, 1, 800, 5);
    struct dump before = dump_index(&s->idx, true);
    store_close(s);
    char p[4200];
    snprintf(p, sizeof p, "%s/journal/checkpoint", dir);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(store_open(&o, &s, err, sizeof err), 0);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    assert_true(ri.from_checkpoint);
    struct dump after = dump_index(&s->idx, true);
    assert_dumps_equal(&before, &after);
    check_all_bodies(s);
    store_close(s);
    dump_free(&before);
    dump_free(&after);
}

/* More than 32 segments filled between two batches, and a checkpoint as large. */
static void a_checkpoint_spanning_many_segments_survives_a_reopen(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    for (uint64_t id = 1; id <= 60000; id++) {
        assert_int_equal(store_add_message(s, id, &id, sizeof id, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1 + id % 4, NULL), 0);
    }
    assert_int_equal(store_checkpoint(s), 0);
    assert_true(store_segment_count(s) > 64);
    struct dump before = dump_index(&s->idx, true);
    store_close(s);
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    assert_true(ri.from_checkpoint);
    struct dump after = dump_index(&s->idx, true);
    assert_dumps_equal(&before, &after);
    uint64_t v = 0;
    assert_int_equal(store_read_body(s, 45678, &v, sizeof v), 8);
    assert_int_equal(v, 45678);
    store_close(s);
    dump_free(&before);
    dump_free(&after);
}

/* A store whose old segments are mostly dead but still hold a few live bodies. */
static void make_sparse_store(void)
{
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    uint8_t body[MAXB];
    for (uint64_t id = 1; id <= 600; id++) {
        size_t len = st_body_len(id, MAXB);
        st_body(id, body, len);
        assert_int_equal(store_add_message(s, id, body, len, NULL), 0);
        assert_int_equal(store_add_ref(s, id, 1 + id % 2, NULL), 0);
        if (id % 9 == 0)
            assert_int_equal(store_set_delivery_count(s, id, 1 + id % 2, 2, NULL), 0);
    }
    for (uint64_t id = 1; id <= 600; id++)
        if (id % 10 != 0)
            assert_int_equal(store_ack(s, id, 1 + id % 2, NULL), 0);
    store_close(s);
}

static void compaction_rewrites_sparse_segments_and_keeps_every_live_message(void **state)
{
    (void)state;
    make_sparse_store();
    struct store *s;
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    struct dump before = dump_index(&s->idx, false);
    int segs = store_segment_count(s);
    int deleted = store_compact(s);
    assert_true(deleted > 0);
    assert_true(store_segment_count(s) < segs);
    struct dump mid = dump_index(&s->idx, false);
    assert_dumps_equal(&before, &mid);
    check_all_bodies(s);
    store_close(s);
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    struct dump after = dump_index(&s->idx, false);
    assert_dumps_equal(&before, &after);
    check_all_bodies(s);
    store_close(s);
    dump_free(&before);
    dump_free(&mid);
    dump_free(&after);
}

static const char *const crash_steps[] = {
    "compact_start", "compact_moved", "compact_moved_durable", "ckpt_appended", "ckpt_durable",
    "ckpt_ptr_tmp", "ckpt_published", "ckpt_deleted_one", "compact_done",
};

static void a_crash_at_every_compaction_step_recovers_the_same_live_set(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof crash_steps / sizeof crash_steps[0]; k++) {
        st_rmrf(dir);
        assert_int_equal(mkdir(dir, 0750), 0);
        make_sparse_store();
        struct store *s;
        assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
        struct dump want = dump_index(&s->idx, false);
        store_close(s);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            setenv("HAMQ_STORE_CRASH_AT", crash_steps[k], 1);
            if (st_open(dir, SEG, &s, err, sizeof err) < 0)
                _exit(2);
            store_compact(s);
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            fail_msg("step %s: child did not stop there (status %d)", crash_steps[k], status);
        assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
        struct dump got = dump_index(&s->idx, false);
        assert_dumps_equal(&want, &got);
        check_all_bodies(s);
        /* and compaction can be finished afterwards */
        assert_true(store_compact(s) >= 0);
        store_close(s);
        assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
        struct dump fin = dump_index(&s->idx, false);
        assert_dumps_equal(&want, &fin);
        check_all_bodies(s);
        store_close(s);
        dump_free(&want);
        dump_free(&got);
        dump_free(&fin);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(recovery_from_a_checkpoint_rebuilds_the_index_kept_in_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_replay_and_a_checkpoint_replay_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(a_checkpoint_deletes_old_segments_without_live_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(checkpoints_are_taken_automatically_every_checkpoint_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(a_checkpoint_spanning_many_segments_survives_a_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(compaction_rewrites_sparse_segments_and_keeps_every_live_message, setup, teardown),
        cmocka_unit_test_setup_teardown(a_crash_at_every_compaction_step_recovers_the_same_live_set, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
