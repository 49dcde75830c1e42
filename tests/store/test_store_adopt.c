/*
 * Promotion of a warm standby: store_open_adopt takes a follower's index and
 * replays only the records the follower had not applied. The result must be
 * the live set a full recovery finds, the follower's observer must have been
 * told every change (so that an engine built from its calls holds that live
 * set too), and the tail gets the same checks as any start (a torn write cut).
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
#include <sys/stat.h>

#include "store.h"
#include "store_int.h"
#include "store_testlib.h"

#define SEG (64 * 1024)

static char dir[4096], copy[4200];
static char err[8192];

static int setup(void **state)
{
    (void)state;
    st_quiet_logs();
    st_mkdtemp(dir, sizeof dir, "adopt", false);
    snprintf(copy, sizeof copy, "%s.copy", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_rmrf(dir);
    st_rmrf(copy);
    return 0;
}

/* A live set as sorted (msg, queue, count) triples. */
struct triples {
    uint64_t (*v)[3];
    size_t n, cap;
};

static void put_triple(struct triples *t, uint64_t m, uint64_t q, uint64_t c)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
        assert_non_null(t->v);
    }
    t->v[t->n][0] = m;
    t->v[t->n][1] = q;
    t->v[t->n][2] = c;
    t->n++;
}

static int add_triple(void *ctx, const struct store_live_ref *r)
{
    put_triple(ctx, r->msg_id, r->queue_id, r->delivery_count);
    return 0;
}

static int triple_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 3 * sizeof(uint64_t));
}

static void assert_same_set(struct triples *a, struct triples *b)
{
    qsort(a->v, a->n, sizeof *a->v, triple_cmp);
    qsort(b->v, b->n, sizeof *b->v, triple_cmp);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_memory_equal(a->v[i], b->v[i], sizeof a->v[i]);
}

/* The observer's model of the live set: what an engine fed by it would hold. */
struct model {
    struct triples t;
    uint64_t ref_adds, acks, dcounts, dups;
    uint64_t body_errors;
};

static long find(struct model *m, uint64_t msg, uint64_t q)
{
    for (size_t i = 0; i < m->t.n; i++)
        if (m->t.v[i][0] == msg && m->t.v[i][1] == q)
            return (long)i;
    return -1;
}

static void ob_ref_add(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t body_len,
                       store_body_fn read, void *src)
{
    struct model *m = ctx;
    uint8_t buf[2048], want[2048];
    m->ref_adds++;
    assert_true(body_len <= sizeof buf);
    long n = read(src, msg_id, buf, sizeof buf);
    st_body(msg_id, want, body_len);
    if (n != (long)body_len || memcmp(buf, want, body_len) != 0)
        m->body_errors++;
    assert_true(find(m, msg_id, queue_id) < 0);
    put_triple(&m->t, msg_id, queue_id, 0);
}

static void ob_ack(void *ctx, uint64_t msg_id, uint64_t queue_id)
{
    struct model *m = ctx;
    long i = find(m, msg_id, queue_id);
    m->acks++;
    assert_true(i >= 0);
    memcpy(m->t.v[i], m->t.v[--m->t.n], sizeof m->t.v[i]);
}

static void ob_dcount(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t count)
{
    struct model *m = ctx;
    long i = find(m, msg_id, queue_id);
    m->dcounts++;
    assert_true(i >= 0);
    m->t.v[i][2] = count;
}

static void ob_dup(void *ctx, const char *address, size_t alen, const void *id, size_t len)
{
    struct model *m = ctx;
    (void)id;
    assert_true(alen > 0 && len > 0 && address[0] == 'q');
    m->dups++;
}

static const struct store_observer obs = {ob_ref_add, ob_ack, ob_dcount, ob_dup};

static void message(struct store *s, uint64_t id, int nqueues)
{
    uint8_t body[2048];
    size_t len = st_body_len(id, 1500);
    st_body(id, body, len);
    assert_int_equal(store_add_message(s, id, body, len, NULL), 0);
    for (int q = 1; q <= nqueues; q++)
        assert_int_equal(store_add_ref(s, id, (uint64_t)q, NULL), 0);
}

/* Messages 'from..to': some to two queues, some acked, some recounted, ids kept. */
static void workload(struct store *s, uint64_t from, uint64_t to)
{
    for (uint64_t id = from; id <= to; id++) {
        message(s, id, id % 3 == 0 ? 2 : 1);
        if (id % 4 == 0)
            assert_int_equal(store_ack(s, id, 1, NULL), 0);
        if (id % 5 == 0)
            assert_int_equal(store_set_delivery_count(s, id, 1, (uint32_t)(id % 7 + 1), NULL),
                             0);
        if (id % 10 == 0) {
            char did[32];
            int n = snprintf(did, sizeof did, "dup-%llu", (unsigned long long)id);
            assert_int_equal(store_add_duplicate_id(s, "q1", did, (size_t)n, NULL), 0);
        }
        if (id > from + 20 && id % 6 == 0) /* an older one goes */
            assert_int_equal(store_ack(s, id - 18, 1, NULL), id - 18 == 0 ? -ENOENT : 0);
    }
    /* a committed and a rolled-back transaction */
    struct jnl_msg_add a = {.msg_id = to + 1};
    struct jnl_ref r = {.msg_id = to + 1, .queue_id = 1};
    assert_int_equal(store_append_tx(s, to, JNL_REC_MSG_ADD, &a, sizeof a, NULL), 0);
    assert_int_equal(store_append_tx(s, to, JNL_REC_REF_ADD, &r, sizeof r, NULL), 0);
    assert_int_equal(store_tx_end(s, JNL_REC_TX_COMMIT, to, NULL), 0);
    a.msg_id = r.msg_id = to + 2;
    assert_int_equal(store_append_tx(s, to + 1, JNL_REC_MSG_ADD, &a, sizeof a, NULL), 0);
    assert_int_equal(store_append_tx(s, to + 1, JNL_REC_REF_ADD, &r, sizeof r, NULL), 0);
    assert_int_equal(store_tx_end(s, JNL_REC_TX_ROLLBACK, to + 1, NULL), 0);
}

static void copy_store(void)
{
    char cmd[10000];
    st_rmrf(copy);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", dir, copy);
    assert_int_equal(system(cmd), 0);
}

static void live_set(struct store *s, struct triples *t)
{
    assert_int_equal(store_foreach_live(s, add_triple, t), 0);
}

static void an_adopted_index_is_the_live_set_of_a_full_recovery_and_the_observer_saw_it_all(
    void **state)
{
    (void)state;
    struct store *s;
    struct store_follower *f;
    struct model m = {0};
    assert_int_equal(st_open(dir, SEG, &s, err, sizeof err), 0);
    workload(s, 1, 300);
    assert_int_equal(store_checkpoint(s), 0); /* the follower starts from it */
    workload(s, 400, 700);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    assert_int_equal(store_follow_foreach_live(f, add_triple, &m.t), 0); /* the seed */
    store_follow_observe(f, &obs, &m);
    assert_true(store_follow_poll(f, store_durable_lsn(s)) > 0);
    uint64_t applied = store_follow_applied_lsn(f);
    workload(s, 800, 1100); /* the tail the follower never applied */
    store_close(s);          /* the live goes; its records are on disk */
    copy_store();
    struct store_opts o;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.segment_size = SEG;
    assert_int_equal(store_open_adopt(&o, &f, &s, err, sizeof err), 0);
    assert_null(f);
    struct store_recovery rec;
    store_recovery_info(s, &rec);
    assert_true(rec.adopted);
    assert_true(rec.records > 0);                 /* the tail was replayed */
    assert_true(rec.records < store_last_lsn(s) - applied + 5); /* and only the tail */
    assert_true(m.ref_adds > 0 && m.acks > 0 && m.dcounts > 0 && m.dups > 0);
    assert_int_equal(m.body_errors, 0);
    struct triples adopted = {0}, full = {0};
    live_set(s, &adopted);
    store_close(s);
    struct store *c;
    assert_int_equal(st_open(copy, SEG, &c, err, sizeof err), 0); /* a full recovery */
    live_set(c, &full);
    store_close(c);
    assert_same_set(&adopted, &full);
    assert_same_set(&m.t, &full); /* an engine fed by the observer holds the same */
    free(adopted.v);
    free(full.v);
    free(m.t.v);
}

/* Offset of the last record of a segment file (walking the record headers). */
static uint64_t last_record(const char *seg)
{
    uint64_t off = JNL_DATA_OFFSET, last = 0;
    for (;;) {
        struct jnl_rec_header h;
        st_peek(seg, off, &h, sizeof h);
        if (h.lsn == 0)
            return last;
        last = off;
        off += jnl_rec_size(h.length);
    }
}

static void a_torn_write_after_the_followers_position_is_cut_at_adoption(void **state)
{
    (void)state;
    struct store *s;
    struct store_follower *f;
    assert_int_equal(st_open(dir, 1 << 20, &s, err, sizeof err), 0);
    workload(s, 1, 50);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    assert_true(store_follow_poll(f, store_durable_lsn(s)) > 0);
    uint64_t before = store_follow_live_messages(f);
    message(s, 5000, 1); /* its REF is the last record: torn below */
    assert_int_equal(store_sync(s), 0);
    store_close(s);
    char seg[4200];
    st_seg_path(seg, sizeof seg, dir, 1);
    uint64_t off = last_record(seg);
    struct jnl_rec_header h;
    st_peek(seg, off, &h, sizeof h);
    assert_int_equal(h.type, JNL_REC_REF_ADD);
    uint8_t b;
    st_peek(seg, off + sizeof h, &b, 1);
    b ^= 0x5a;
    st_poke(seg, off + sizeof h, &b, 1);
    struct store_opts o;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.segment_size = 1 << 20;
    assert_int_equal(store_open_adopt(&o, &f, &s, err, sizeof err), 0);
    struct store_recovery rec;
    store_recovery_info(s, &rec);
    assert_true(rec.torn);
    assert_int_equal(rec.records, 1);                  /* the MSG_ADD of 5000 */
    assert_int_equal(store_live_messages(s), before); /* 5000 lost its ref: dropped */
    assert_int_equal(store_read_body(s, 5000, NULL, 0), -ENOENT);
    store_close(s);
}

static void adopting_the_follower_of_an_empty_store_is_a_plain_open(void **state)
{
    (void)state;
    struct store *s;
    struct store_follower *f;
    char jdir[4200];
    snprintf(jdir, sizeof jdir, "%s/journal", dir); /* a layout with no segment yet */
    assert_int_equal(mkdir(jdir, 0750), 0);
    assert_int_equal(store_follow_open(dir, &f, err, sizeof err), 0);
    assert_true(store_follow_poll(f, 0) >= 0);
    struct store_opts o;
    store_opts_init(&o, NULL);
    o.dir = dir;
    o.segment_size = SEG;
    assert_int_equal(store_open_adopt(&o, &f, &s, err, sizeof err), 0);
    message(s, 1, 1);
    assert_int_equal(store_sync(s), 0);
    assert_int_equal(store_live_messages(s), 1);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            an_adopted_index_is_the_live_set_of_a_full_recovery_and_the_observer_saw_it_all,
            setup, teardown),
        cmocka_unit_test_setup_teardown(a_torn_write_after_the_followers_position_is_cut_at_adoption,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(adopting_the_follower_of_an_empty_store_is_a_plain_open,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
