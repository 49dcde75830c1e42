/* Unit tests of shm/segment.c: create/attach in stages, slots, liveness, bells. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hamq/shm.h"

static char inst[64];

static int setup(void **state)
{
    (void)state;
    static int n;
    snprintf(inst, sizeof(inst), "tseg-%d-%d", (int)getpid(), n++);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    shm_unlink_instance(inst, 4);
    return 0;
}

/* Writes raw bytes as the segment object, as a broken creator would. */
static void write_raw(const void *buf, size_t len)
{
    char name[96];
    assert_int_equal(shm_name(inst, name, sizeof(name)), 0);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static struct shm_header *map_created(struct shm_seg *s)
{
    char err[SHM_ERR_MAX];
    assert_int_equal(shm_create(s, inst, 2, 4096, 7, err, sizeof(err)), 0);
    return s->hdr;
}

static void attach_reports_a_missing_segment(void **state)
{
    (void)state;
    struct shm_seg s;
    char err[SHM_ERR_MAX] = "";
    assert_int_equal(shm_attach(&s, inst, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "does not exist"));
    assert_non_null(strstr(err, inst));
}

static void attach_reports_a_segment_too_small_for_a_header(void **state)
{
    (void)state;
    struct shm_seg s;
    char err[SHM_ERR_MAX] = "";
    write_raw("HAMQ", 4);
    assert_int_equal(shm_attach(&s, inst, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "too small"));
}

static void attach_reports_a_bad_magic(void **state)
{
    (void)state;
    struct shm_seg s;
    char err[SHM_ERR_MAX] = "";
    uint8_t junk[4096];
    memset(junk, 0x5a, sizeof(junk));
    write_raw(junk, sizeof(junk));
    assert_int_equal(shm_attach(&s, inst, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "bad magic"));
}

static void attach_reports_an_unsupported_layout_version(void **state)
{
    (void)state;
    struct shm_seg c, s;
    char err[SHM_ERR_MAX] = "";
    struct shm_header *h = map_created(&c);
    atomic_store(&h->version, SHM_LAYOUT_VERSION + 1);
    assert_int_equal(shm_attach(&s, inst, err, sizeof(err)), -EPROTONOSUPPORT);
    assert_non_null(strstr(err, "layout version 2"));
    shm_detach(&c);
}

static void attach_reports_an_uninitialised_segment(void **state)
{
    (void)state;
    struct shm_seg c, s;
    char err[SHM_ERR_MAX] = "";
    struct shm_header *h = map_created(&c);
    atomic_store(&h->version, 0);
    assert_int_equal(shm_attach(&s, inst, err, sizeof(err)), -EAGAIN);
    assert_non_null(strstr(err, "not initialised"));
    shm_detach(&c);
}

static void attach_reports_geometry_that_does_not_match_the_size(void **state)
{
    (void)state;
    struct shm_seg c, s;
    char err[SHM_ERR_MAX] = "";
    struct shm_header *h = map_created(&c);
    h->slot_count = 200; /* would run past the end of the object */
    assert_int_equal(shm_attach(&s, inst, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "geometry"));
    h->slot_count = 2;
    h->ring_size = 1000;
    assert_int_equal(shm_attach(&s, inst, err, sizeof(err)), -EBADMSG);
    shm_detach(&c);
}

static void create_rejects_bad_names_and_geometry(void **state)
{
    (void)state;
    struct shm_seg s;
    char err[SHM_ERR_MAX] = "";
    assert_int_equal(shm_create(&s, "../etc", 1, 4096, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad instance name"));
    assert_int_equal(shm_create(&s, "", 1, 4096, 1, err, sizeof(err)), -EINVAL);
    assert_int_equal(shm_create(&s, inst, 0, 4096, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad geometry"));
    assert_int_equal(shm_create(&s, inst, 2, 3000, 1, err, sizeof(err)), -EINVAL);
    assert_int_equal(shm_create(&s, inst, SHM_MAX_SLOTS + 1, 4096, 1, err, sizeof(err)), -EINVAL);
}

static void attached_worker_and_core_rings_connect_both_ways(void **state)
{
    (void)state;
    struct shm_seg c, w;
    char err[SHM_ERR_MAX] = "";
    map_created(&c);
    assert_int_equal(shm_attach(&w, inst, err, sizeof(err)), 0);
    assert_int_equal(w.slot_count, 2);
    assert_int_equal(w.ring_size, 4096);
    assert_int_equal(w.hdr->epoch, 7);
    assert_int_equal(w.hdr->core_pid, getpid());
    struct ring ctx, crx, wtx, wrx;
    struct ring_record rec;
    uint32_t gen = 0;
    assert_int_equal(shm_slot_rings(&c, 1, SHM_SIDE_CORE, &ctx, &crx), 0);
    assert_int_equal(shm_worker_attach(&w, 1, &wtx, &wrx, &gen), 0);
    assert_int_equal(gen, 1);
    assert_int_equal(ring_send(&wtx, 1, "up", 2), RING_OK);
    assert_int_equal(ring_read(&crx, &rec), RING_OK);
    assert_memory_equal(rec.payload, "up", 2);
    assert_int_equal(ring_send(&ctx, 2, "down", 4), RING_OK);
    assert_int_equal(ring_read(&wrx, &rec), RING_OK);
    assert_memory_equal(rec.payload, "down", 4);
    assert_int_equal(shm_slot_rings(&c, 2, SHM_SIDE_CORE, &ctx, &crx), -EINVAL);
    shm_detach(&w);
    shm_detach(&c);
}

static void worker_reattach_bumps_generation_and_skips_stale_records(void **state)
{
    (void)state;
    struct shm_seg c, w;
    char err[SHM_ERR_MAX] = "";
    map_created(&c);
    assert_int_equal(shm_attach(&w, inst, err, sizeof(err)), 0);
    struct ring ctx, crx, wtx, wrx;
    struct ring_record rec;
    uint32_t gen = 0;
    assert_int_equal(shm_slot_rings(&c, 0, SHM_SIDE_CORE, &ctx, &crx), 0);
    assert_int_equal(shm_worker_attach(&w, 0, &wtx, &wrx, &gen), 0);
    assert_int_equal(ring_send(&ctx, 2, "for-old-worker", 14), RING_OK);
    ring_close(&wtx); /* the old worker goes away */
    assert_int_equal(shm_worker_attach(&w, 0, &wtx, &wrx, &gen), 0);
    assert_int_equal(gen, 2);
    assert_int_equal(ring_read(&wrx, &rec), RING_WOULD_BLOCK);
    assert_int_equal(ring_send(&wtx, 1, "again", 5), RING_OK);
    assert_int_equal(ring_read(&crx, &rec), RING_OK);
    assert_memory_equal(rec.payload, "again", 5);
    shm_detach(&w);
    shm_detach(&c);
}

static void worker_attach_refuses_a_slot_held_by_a_live_process(void **state)
{
    (void)state;
    struct shm_seg c, w;
    char err[SHM_ERR_MAX] = "";
    int go[2];
    map_created(&c);
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    if (child == 0) {
        struct ring tx, rx;
        char b;
        if (shm_attach(&w, inst, err, sizeof(err)) < 0 ||
            shm_worker_attach(&w, 1, &tx, &rx, NULL) < 0)
            _exit(1);
        close(go[1]);
        if (read(go[0], &b, 1) < 0) /* until the parent closes its end */
            _exit(1);
        _exit(0);
    }
    for (int i = 0; i < 2000 && atomic_load(&shm_slot_at(&c, 1)->worker_pid) != child; i++)
        usleep(1000);
    struct ring tx, rx;
    assert_int_equal(shm_worker_attach(&c, 1, &tx, &rx, NULL), -EBUSY);
    close(go[1]);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    close(go[0]);
    assert_int_equal(shm_worker_attach(&c, 1, &tx, &rx, NULL), 0); /* free again */
    shm_detach(&c);
}

static void peer_watch_reports_a_dead_process(void **state)
{
    (void)state;
    struct shm_seg c, w;
    char err[SHM_ERR_MAX] = "";
    map_created(&c);
    pid_t child = fork();
    if (child == 0) {
        struct ring tx, rx;
        shm_attach(&w, inst, err, sizeof(err));
        shm_worker_attach(&w, 0, &tx, &rx, NULL);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    struct shm_peer p;
    int rc = shm_watch_worker(&c, 0, &p, 1000000000LL);
    /* Reaped already: pidfd_open says ESRCH, which also means dead. */
    assert_true(rc == -ESRCH || (rc == 0 && shm_peer_dead(&p)));
    shm_peer_close(&p);

    struct shm_peer me;
    assert_int_equal(shm_watch_core(&c, &me, 1000000000LL), 0);
    assert_false(shm_peer_dead(&me));
    shm_peer_close(&me);
    shm_detach(&c);
}

static void peer_watch_falls_back_to_heartbeat_age(void **state)
{
    (void)state;
    struct shm_seg c;
    map_created(&c);
    struct shm_peer p = {.pid = getpid(),
                         .pidfd = -1,
                         .heartbeat = &c.hdr->core_heartbeat_ns,
                         .timeout_ns = 50 * 1000000LL};
    shm_core_heartbeat(&c);
    assert_false(shm_peer_dead(&p));
    atomic_store(&c.hdr->core_heartbeat_ns, (uint64_t)(shm_now_ns() - 60 * 1000000LL));
    assert_true(shm_peer_dead(&p));
    shm_core_heartbeat(&c);
    assert_false(shm_peer_dead(&p));
    shm_detach(&c);
}

static void bell_is_one_fifo_shared_by_path(void **state)
{
    (void)state;
    int rd = shm_bell_open(inst, "core");
    int wr = shm_bell_open(inst, "core");
    assert_true(rd >= 0 && wr >= 0);
    assert_int_equal(shm_bell_drain(rd), 0);
    assert_int_equal(write(wr, "xyz", 3), 3);
    assert_int_equal(shm_bell_drain(rd), 3);
    assert_int_equal(shm_bell_drain(rd), 0);
    assert_int_equal(shm_bell_open(inst, "../x"), -EINVAL);
    close(rd);
    close(wr);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(attach_reports_a_missing_segment),
        T(attach_reports_a_segment_too_small_for_a_header),
        T(attach_reports_a_bad_magic),
        T(attach_reports_an_unsupported_layout_version),
        T(attach_reports_an_uninitialised_segment),
        T(attach_reports_geometry_that_does_not_match_the_size),
        T(create_rejects_bad_names_and_geometry),
        T(attached_worker_and_core_rings_connect_both_ways),
        T(worker_reattach_bumps_generation_and_skips_stale_records),
        T(worker_attach_refuses_a_slot_held_by_a_live_process),
        T(peer_watch_reports_a_dead_process),
        T(peer_watch_falls_back_to_heartbeat_age),
        T(bell_is_one_fifo_shared_by_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
