/*
 * ring_mp — multi-process scenarios for shm/ (real processes, real POSIX
 * shared memory). One driver, one mode per scenario; the tests/shm/ *.sh
 * wrappers call it. Exit 0 = pass, 1 = fail (with a "FAIL:" line saying
 * what), 77 = skip. Every loop is bounded in count and by a deadline, so a
 * lost wake-up shows as a failure, never a hang.
 *
 *   ring_mp stream [records]   10M records 1 B–4 KiB, 64 KiB ring, verified
 *   ring_mp park   [rounds]    ping-pong, both sides park on every record
 *   ring_mp kill   [rounds]    kill -9 of the producer mid-stream
 *   ring_mp bell   [records]   epoll + doorbell FIFOs, core and 2 workers
 *   ring_mp stress [records]   random batches/sizes/parking, echo both ways
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hamq/shm.h"

#define SEC 1000000000LL

static char inst[64];
static int64_t deadline;
static const char *who = "parent";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL (%s): ", who);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (strcmp(who, "parent") == 0 && inst[0]) /* children time out on their own */
        shm_unlink_instance(inst, 4);
    _exit(1);
}

static void check_deadline(const char *what)
{
    if (shm_now_ns() > deadline)
        fail("%s: over the time limit", what);
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t rnd_state;
static uint32_t rnd(uint32_t n)
{
    rnd_state = mix(rnd_state);
    return n ? (uint32_t)(rnd_state % n) : 0;
}

/* ---- record content: deterministic from (seed, seq) ---- */

static uint64_t seed;

static uint32_t rec_len(uint64_t seq, uint32_t max)
{
    return 1 + (uint32_t)(mix(seed ^ (seq * 0x2545F4914F6CDD1DULL)) % max);
}

static void fill(uint8_t *p, uint64_t seq, uint32_t len)
{
    uint64_t w = seq * 0x9E3779B97F4A7C15ULL + seed;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(p + i, &w, 8);
        w += 0xD1B54A32D192ED03ULL; /* one add per word: cheap, still position-dependent */
    }
    for (; i < len; i++)
        p[i] = (uint8_t)(w >> (8 * (i & 7)));
}

/* FNV-style over 8-byte words in 4 independent lanes (fast), then the tail. */
static uint64_t checksum(const uint8_t *p, uint32_t len)
{
    const uint64_t prime = 1099511628211ULL;
    uint64_t h[4] = {1469598103934665603ULL, 2, 3, 4}, w;
    uint32_t i = 0;
    for (; i + 32 <= len; i += 32) {
        for (int l = 0; l < 4; l++) {
            memcpy(&w, p + i + 8 * l, 8);
            h[l] = (h[l] ^ w) * prime;
        }
    }
    uint64_t x = (h[0] ^ (h[1] << 1)) * prime ^ (h[2] << 2) ^ (h[3] << 3);
    for (; i < len; i++)
        x = (x ^ p[i]) * prime;
    return x;
}

/* Writes record seq into p: [seq][checksum] header when it fits. */
static void make_record(uint8_t *p, uint64_t seq, uint32_t len)
{
    if (len < 16) {
        fill(p, seq, len);
        return;
    }
    fill(p + 16, seq, len - 16);
    uint64_t c = checksum(p + 16, len - 16);
    memcpy(p, &seq, 8);
    memcpy(p + 8, &c, 8);
}

static void verify_record(const struct ring_record *r, uint64_t seq, uint32_t max)
{
    uint32_t want = rec_len(seq, max);
    if (r->type != (uint32_t)(seq & 0x7fffffff))
        fail("record %" PRIu64 ": type %u, expected %u (order lost)", seq, r->type,
             (uint32_t)(seq & 0x7fffffff));
    if (r->length != want)
        fail("record %" PRIu64 ": length %u, expected %u", seq, r->length, want);
    if (want < 16) {
        uint8_t buf[16];
        fill(buf, seq, want);
        if (memcmp(buf, r->payload, want) != 0)
            fail("record %" PRIu64 ": content differs", seq);
        return;
    }
    uint64_t s, c;
    memcpy(&s, r->payload, 8);
    memcpy(&c, r->payload + 8, 8);
    if (s != seq)
        fail("record %" PRIu64 ": carries sequence %" PRIu64, seq, s);
    if (c != checksum(r->payload + 16, want - 16))
        fail("record %" PRIu64 ": checksum mismatch (partial or corrupt record)", seq);
}

/* ---- segment plumbing ---- */

static void cleanup(void)
{
    if (strcmp(who, "parent") == 0)
        shm_unlink_instance(inst, 4);
}

static void core_create(struct shm_seg *s, uint32_t slots, uint32_t ring)
{
    char err[SHM_ERR_MAX];
    snprintf(inst, sizeof(inst), "mp-%d", (int)getpid());
    if (shm_create(s, inst, slots, ring, 1, err, sizeof(err)) < 0)
        fail("create: %s", err);
    atexit(cleanup);
}

static void worker_attach(struct shm_seg *s, uint32_t slot, struct ring *tx, struct ring *rx)
{
    char err[SHM_ERR_MAX];
    who = "child";
    if (shm_attach(s, inst, err, sizeof(err)) < 0)
        fail("attach: %s", err);
    if (shm_worker_attach(s, slot, tx, rx, NULL) < 0)
        fail("worker attach slot %u", slot);
}

/*
 * Core side: wait until the worker attached (its attach skips what was queued
 * before, so the core must not send earlier), then watch its pid.
 */
static void wait_attached(struct shm_seg *s, uint32_t slot)
{
    for (int i = 0; i < 5000 && atomic_load_explicit(&shm_slot_at(s, slot)->attach_gen,
                                                     memory_order_acquire) == 0;
         i++)
        usleep(1000);
}

static void watch(struct shm_seg *s, uint32_t slot, pid_t child, struct ring *rx)
{
    struct shm_peer p;
    wait_attached(s, slot);
    if (atomic_load(&shm_slot_at(s, slot)->worker_pid) != child)
        fail("worker %d did not attach to slot %u", (int)child, slot);
    if (shm_watch_worker(s, slot, &p, 5 * SEC) < 0 || p.pidfd < 0)
        fail("cannot watch worker pid %d", (int)child);
    ring_watch_peer(rx, p.pidfd);
}

static int reap(pid_t pid, const char *what)
{
    int st = 0;
    for (int i = 0; i < 30000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (i == 29999) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail("%s: child did not finish", what);
        }
        usleep(1000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- stream: producer (child) → consumer (parent) ---- */

static void produce(struct ring *tx, uint64_t n, uint32_t max, uint64_t *fulls, bool forever)
{
    uint64_t seq = 0;
    while (forever || seq < n) {
        uint32_t batch = 1 + rnd(32);
        for (uint32_t b = 0; b < batch && (forever || seq < n); b++) {
            uint32_t len = rec_len(seq, max);
            void *p;
            enum ring_outcome o = ring_claim(tx, (uint32_t)(seq & 0x7fffffff), len, &p);
            if (o == RING_WOULD_BLOCK) {
                (*fulls)++;
                ring_publish(tx);
                o = ring_wait(tx, len, 10 * SEC);
                if (o != RING_OK)
                    fail("producer wait: %s at %" PRIu64, ring_outcome_str(o), seq);
                o = ring_claim(tx, (uint32_t)(seq & 0x7fffffff), len, &p);
            }
            if (o != RING_OK)
                fail("claim: %s at %" PRIu64, ring_outcome_str(o), seq);
            make_record(p, seq, len);
            ring_commit(tx, len);
            seq++;
        }
        ring_publish(tx);
        if ((seq & 0xffff) == 0)
            check_deadline("producer");
    }
}

/* Reads until n records or PEER_GONE; returns the count. */
static uint64_t consume(struct ring *rx, uint64_t n, uint32_t max)
{
    uint64_t seq = 0;
    struct ring_record r;
    while (seq < n) {
        enum ring_outcome o = ring_read(rx, &r);
        if (o == RING_OK) {
            verify_record(&r, seq++, max);
            if (rnd(16) == 0 || (seq & 63) == 0)
                ring_read_release(rx);
            continue;
        }
        ring_read_release(rx);
        if (o == RING_PEER_GONE)
            return seq;
        if (o != RING_WOULD_BLOCK)
            fail("consumer: %s after %" PRIu64 " records", ring_outcome_str(o), seq);
        o = ring_wait(rx, 0, 10 * SEC);
        if (o == RING_PEER_GONE)
            return seq;
        if (o != RING_OK)
            fail("consumer wait: %s after %" PRIu64 " records", ring_outcome_str(o), seq);
        if ((seq & 0xfff) == 0)
            check_deadline("consumer");
    }
    ring_read_release(rx);
    return seq;
}

static int mode_stream(uint64_t n)
{
    struct shm_seg s;
    struct ring ctx, crx;
    const uint32_t ring = 64 * 1024, max = 4096;
    core_create(&s, 1, ring);
    if (shm_slot_rings(&s, 0, SHM_SIDE_CORE, &ctx, &crx) < 0)
        fail("rings");
    pid_t child = fork();
    if (child == 0) {
        struct shm_seg w;
        struct ring tx, rx;
        uint64_t fulls = 0;
        worker_attach(&w, 0, &tx, &rx);
        rnd_state = seed ^ 1;
        produce(&tx, n, max, &fulls, false);
        printf("producer: %" PRIu64 " records, ring full %" PRIu64 " times, %" PRIu64 " parks\n", n,
               fulls, tx.parks);
        fflush(stdout);
        ring_close(&tx);
        _exit(fulls > 100 ? 0 : 2);
    }
    watch(&s, 0, child, &crx);
    int64_t t0 = shm_now_ns();
    uint64_t got = consume(&crx, n, max);
    uint64_t bytes = atomic_load(&crx.sh->write_pos);
    int rc = reap(child, "stream");
    if (got != n)
        fail("consumer got %" PRIu64 " of %" PRIu64 " records", got, n);
    if (rc == 2)
        fail("the ring was never full: back-pressure not exercised");
    if (rc != 0)
        fail("producer exited with %d", rc);
    if (bytes / ring < 1000 || crx.pads < 1000)
        fail("only %" PRIu64 " wraps, %" PRIu64 " padding records", bytes / ring, crx.pads);
    printf(
        "stream: %" PRIu64 " records verified, %" PRIu64 " MB, %" PRIu64
        " wraps of a %u B ring, %" PRIu64 " padding records, %.1f s, consumer parks %" PRIu64 "\n",
        n, bytes >> 20, bytes / ring, ring, crx.pads, (double)(shm_now_ns() - t0) / 1e9, crx.parks);
    return 0;
}

/* ---- park: ping-pong with parking on every record ---- */

static uint64_t pong_wait(struct ring *rx, uint64_t expect, const char *side)
{
    struct ring_record r;
    enum ring_outcome o = ring_wait(rx, 0, 5 * SEC);
    if (o == RING_WOULD_BLOCK)
        fail("%s: lost wake-up: nothing after 5 s waiting for %" PRIu64 " (ring holds %" PRIu64
             " bytes)",
             side, expect, ring_used(rx));
    if (o != RING_OK || ring_read(rx, &r) != RING_OK)
        fail("%s: %s", side, ring_outcome_str(o));
    uint64_t v;
    memcpy(&v, r.payload, 8);
    ring_read_release(rx);
    if (v != expect)
        fail("%s: got %" PRIu64 ", expected %" PRIu64, side, v, expect);
    return v;
}

static void pong_side(struct ring *tx, struct ring *rx, uint64_t n, bool first, const char *side)
{
    ring_set_spin(rx, 0);
    ring_set_park_slice(rx, 6 * SEC); /* a timed-out sleep is a lost wake-up */
    for (uint64_t i = 0; i < n; i++) {
        if (first && ring_send(tx, 1, &i, 8) != RING_OK)
            fail("%s: send", side);
        pong_wait(rx, i, side);
        if (!first && ring_send(tx, 1, &i, 8) != RING_OK)
            fail("%s: send", side);
        if ((i & 0x3ff) == 0)
            check_deadline(side);
    }
    if (rx->late_wakes)
        fail("%s: %" PRIu64 " sleeps timed out with data pending", side, rx->late_wakes);
}

static int mode_park(uint64_t n)
{
    struct shm_seg s;
    struct ring ctx, crx;
    core_create(&s, 1, 4096);
    if (shm_slot_rings(&s, 0, SHM_SIDE_CORE, &ctx, &crx) < 0)
        fail("rings");
    pid_t child = fork();
    if (child == 0) {
        struct shm_seg w;
        struct ring tx, rx;
        worker_attach(&w, 0, &tx, &rx);
        pong_side(&tx, &rx, n, false, "child");
        printf("child: parks %" PRIu64 ", wakes sent %" PRIu64 "\n", rx.parks, tx.wakes);
        fflush(stdout);
        _exit(0);
    }
    wait_attached(&s, 0);
    int64_t t0 = shm_now_ns();
    pong_side(&ctx, &crx, n, true, "parent");
    double secs = (double)(shm_now_ns() - t0) / 1e9;
    if (reap(child, "park") != 0)
        fail("child failed");
    printf("park: %" PRIu64 " round trips in %.1f s (%.1f us each), parent parks %" PRIu64
           ", wakes sent %" PRIu64 "\n",
           n, secs, secs * 1e6 / (double)n, crx.parks, ctx.wakes);
    if (crx.parks < n / 10)
        fail("the reader parked only %" PRIu64 " times in %" PRIu64 " rounds", crx.parks, n);
    return 0;
}

/* ---- kill: the producer dies mid-stream ---- */

static int mode_kill(uint64_t rounds)
{
    for (uint64_t k = 0; k < rounds; k++) {
        struct shm_seg s;
        struct ring ctx, crx;
        core_create(&s, 1, 64 * 1024);
        if (shm_slot_rings(&s, 0, SHM_SIDE_CORE, &ctx, &crx) < 0)
            fail("rings");
        pid_t child = fork();
        if (child == 0) {
            struct shm_seg w;
            struct ring tx, rx;
            uint64_t fulls = 0;
            worker_attach(&w, 0, &tx, &rx);
            rnd_state = seed ^ (k + 1);
            produce(&tx, 0, 4096, &fulls, true);
            _exit(0);
        }
        watch(&s, 0, child, &crx);
        uint64_t until = 20000 + rnd(200000);
        uint64_t got = consume(&crx, until, 4096);
        kill(child, SIGKILL);
        int64_t t0 = shm_now_ns();
        /* No limit on count: the consumer drains, then must see PEER_GONE. */
        uint64_t more = 0;
        struct ring_record r;
        for (;;) {
            enum ring_outcome o = ring_read(&crx, &r);
            if (o == RING_OK) {
                verify_record(&r, got + more++, 4096);
                continue;
            }
            ring_read_release(&crx);
            if (o == RING_PEER_GONE)
                break;
            o = ring_wait(&crx, 0, 5 * SEC);
            if (o == RING_PEER_GONE)
                break;
            if (o != RING_OK)
                fail("kill round %" PRIu64 ": %s instead of peer gone", k, ring_outcome_str(o));
        }
        printf("kill round %" PRIu64 ": %" PRIu64 " + %" PRIu64
               " records verified, PEER_GONE after %.2f ms\n",
               k, got, more, (double)(shm_now_ns() - t0) / 1e6);
        reap(child, "kill");
        shm_detach(&s);
        check_deadline("kill");
    }
    return 0;
}

/* ---- bell: epoll on doorbell FIFOs ---- */

#define BELL_WORKERS 2

static void epoll_add(int ep, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
}

/*
 * Worker send of record seq (8 B–1 KiB, 4 KiB ring: it fills). On a full ring
 * the worker arms for room and sleeps in epoll until the core's release rings
 * its bell.
 */
static uint64_t room_waits;
static void bell_send(struct ring *tx, int ep, int mine, uint32_t slot, uint64_t seq)
{
    uint8_t buf[1024];
    uint32_t len = 8 + rnd(1000);
    memcpy(buf, &seq, 8);
    memset(buf + 8, (int)(seq & 0xff), len - 8);
    for (;;) {
        enum ring_outcome o = ring_send(tx, slot, buf, len);
        if (o == RING_OK)
            return;
        if (o != RING_WOULD_BLOCK)
            fail("worker %u send: %s", slot, ring_outcome_str(o));
        if (ring_arm_bell_room(tx, len) != RING_WOULD_BLOCK)
            continue;
        room_waits++;
        struct epoll_event ev;
        int k = epoll_wait(ep, &ev, 1, 5000);
        ring_disarm(tx);
        if (k == 0)
            fail("worker %u: lost wake-up: full ring, no room bell in 5 s", slot);
        shm_bell_drain(mine);
        check_deadline("bell worker room");
    }
}

/* Worker: sends n records with a random window, waits for acks on its bell. */
static void bell_worker(uint32_t slot, uint64_t n)
{
    struct shm_seg w;
    struct ring tx, rx;
    struct ring_record r;
    worker_attach(&w, slot, &tx, &rx);
    char name[16];
    snprintf(name, sizeof(name), "w%u", slot);
    int mine = shm_bell_open(inst, name), core = shm_bell_open(inst, "core");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (mine < 0 || core < 0 || ep < 0)
        fail("bells");
    ring_set_bell(&tx, core);
    epoll_add(ep, mine, 1);
    rnd_state = seed ^ (slot + 77);
    uint64_t sent = 0, acked = 0;
    while (acked < n) {
        uint32_t window = 1 + rnd(64);
        while (sent < n && sent - acked < window) {
            bell_send(&tx, ep, mine, slot, sent);
            sent++;
        }
        if (rnd(8) == 0)
            usleep(rnd(200));
        while (ring_read(&rx, &r) == RING_OK) {
            uint64_t v;
            memcpy(&v, r.payload, 8);
            if (v != acked)
                fail("worker %u: ack %" PRIu64 ", expected %" PRIu64, slot, v, acked);
            acked++;
        }
        ring_read_release(&rx);
        if (acked == n || (sent - acked < window && sent < n))
            continue;
        if (ring_arm_bell(&rx) != RING_WOULD_BLOCK)
            continue;
        struct epoll_event ev;
        int k = epoll_wait(ep, &ev, 1, 5000);
        ring_disarm(&rx);
        if (k == 0)
            fail("worker %u: lost wake-up: no bell in 5 s, %" PRIu64 " bytes pending, sent %" PRIu64
                 " acked %" PRIu64,
                 slot, ring_used(&rx), sent, acked);
        if (k > 0)
            shm_bell_drain(mine);
        check_deadline("bell worker");
    }
    printf("worker %u: waited for room on a full ring %" PRIu64 " times\n", slot, room_waits);
    _exit(room_waits > 0 ? 0 : 3);
}

/*
 * Woken by the timer alone: if an armed ring holds data, its writer must ring
 * the bell (it may be descheduled mid-publish: allow 1 s); if the bell stays
 * silent, the wake-up was lost.
 */
static void timer_check(struct ring *rx, int bell)
{
    bool pending = false;
    for (uint32_t i = 0; i < BELL_WORKERS; i++)
        pending |= ring_used(&rx[i]) > 0;
    struct pollfd p = {.fd = bell, .events = POLLIN};
    if (pending && poll(&p, 1, 1000) == 0)
        fail("core: lost wake-up: data pending, armed, and no bell within 1 s");
}

/* Core: one epoll loop over the shared core bell and a timerfd. */
static void bell_core(struct shm_seg *s, uint64_t n, uint64_t *wakeups)
{
    struct ring tx[BELL_WORKERS], rx[BELL_WORKERS];
    struct ring_record r;
    int bell = shm_bell_open(inst, "core"), ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {.it_value = {0, 200000000}, .it_interval = {0, 200000000}};
    if (bell < 0 || ep < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
        fail("core bell/epoll/timerfd");
    epoll_add(ep, bell, 0);
    epoll_add(ep, tfd, 1);
    uint64_t got[BELL_WORKERS] = {0}, done = 0;
    for (uint32_t i = 0; i < BELL_WORKERS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%u", i);
        if (shm_slot_rings(s, i, SHM_SIDE_CORE, &tx[i], &rx[i]) < 0)
            fail("core rings");
        int wb = shm_bell_open(inst, name);
        if (wb < 0)
            fail("worker bell");
        ring_set_bell(&tx[i], wb); /* records for worker i */
        ring_set_bell(&rx[i], wb); /* room for worker i */
    }
    while (done < BELL_WORKERS * n) {
        for (uint32_t i = 0; i < BELL_WORKERS; i++) {
            while (ring_read(&rx[i], &r) == RING_OK) {
                uint64_t v;
                memcpy(&v, r.payload, 8);
                if (r.type != i || v != got[i])
                    fail("core: slot %u record %" PRIu64 ", expected %" PRIu64, i, v, got[i]);
                got[i]++;
                done++;
                if (ring_send(&tx[i], 0, &v, 8) != RING_OK)
                    fail("core ack");
            }
            ring_read_release(&rx[i]);
        }
        bool ready = false;
        for (uint32_t i = 0; i < BELL_WORKERS; i++)
            ready |= ring_arm_bell(&rx[i]) != RING_WOULD_BLOCK;
        if (!ready && done < BELL_WORKERS * n) {
            struct epoll_event ev[2];
            int k = epoll_wait(ep, ev, 2, 5000);
            if (k == 0)
                fail("core: lost wake-up: no bell in 5 s (%" PRIu64 "/%" PRIu64 ")", done,
                     BELL_WORKERS * n);
            bool rang = false;
            for (int j = 0; j < k; j++) {
                uint64_t x;
                if (ev[j].data.u64 == 0) {
                    shm_bell_drain(bell);
                    (*wakeups)++;
                    rang = true;
                } else if (read(tfd, &x, 8) < 0 && errno != EAGAIN) {
                    fail("timerfd");
                }
            }
            if (!rang)
                timer_check(rx, bell);
        }
        for (uint32_t i = 0; i < BELL_WORKERS; i++)
            ring_disarm(&rx[i]);
        check_deadline("bell core");
    }
}

static int mode_bell(uint64_t n)
{
    struct shm_seg s;
    pid_t kids[BELL_WORKERS];
    uint64_t wakeups = 0;
    core_create(&s, BELL_WORKERS, 4096);
    for (uint32_t i = 0; i < BELL_WORKERS; i++) {
        kids[i] = fork();
        if (kids[i] == 0)
            bell_worker(i, n);
    }
    bell_core(&s, n, &wakeups);
    for (uint32_t i = 0; i < BELL_WORKERS; i++) {
        int rc = reap(kids[i], "bell");
        if (rc == 3)
            fail("worker %u never found its ring full: writer bells not exercised", i);
        if (rc != 0)
            fail("worker %u failed", i);
    }
    printf("bell: %d workers x %" PRIu64
           " records (8 B-1 KiB) acked through epoll, core woke by bell %" PRIu64 " times\n",
           BELL_WORKERS, n, wakeups);
    if (wakeups < 10)
        fail("the core bell rang only %" PRIu64 " times: parking not exercised", wakeups);
    return 0;
}

/* ---- stress: random everything, echo both ways ---- */

static void stress_echo(uint64_t n)
{
    struct shm_seg w;
    struct ring tx, rx;
    struct ring_record r;
    worker_attach(&w, 0, &tx, &rx);
    rnd_state = seed ^ 99;
    uint64_t seen = 0;
    while (seen < n) {
        ring_set_spin(&rx, rnd(3) == 0 ? 0 : rnd(2000));
        enum ring_outcome o = ring_wait(&rx, 0, 10 * SEC);
        if (o != RING_OK)
            fail("echo wait: %s after %" PRIu64, ring_outcome_str(o), seen);
        uint32_t batch = 1 + rnd(40);
        for (uint32_t b = 0; b < batch && ring_read(&rx, &r) == RING_OK; b++, seen++) {
            void *p;
            o = ring_claim(&tx, r.type, r.length, &p);
            while (o == RING_WOULD_BLOCK) {
                ring_publish(&tx);
                ring_set_spin(&tx, rnd(500));
                if (ring_wait(&tx, r.length, 10 * SEC) != RING_OK)
                    fail("echo: no room");
                o = ring_claim(&tx, r.type, r.length, &p);
            }
            if (o != RING_OK)
                fail("echo claim: %s", ring_outcome_str(o));
            memcpy(p, r.payload, r.length);
            ring_commit(&tx, r.length);
            if (rnd(4) == 0)
                ring_publish(&tx);
        }
        ring_read_release(&rx);
        ring_publish(&tx);
        if (rnd(64) == 0)
            usleep(rnd(300));
        check_deadline("echo");
    }
    _exit(0);
}

static int mode_stress(uint64_t n)
{
    struct shm_seg s;
    struct ring tx, rx;
    struct ring_record r;
    core_create(&s, 1, 4096);
    if (shm_slot_rings(&s, 0, SHM_SIDE_CORE, &tx, &rx) < 0)
        fail("rings");
    pid_t child = fork();
    if (child == 0)
        stress_echo(n);
    watch(&s, 0, child, &rx);
    rnd_state = seed ^ 7;
    uint32_t max = ring_max_record(&tx);
    uint64_t sent = 0, back = 0, parks = 0, loops = 0;
    while (back < n) {
        uint32_t batch = 1 + rnd(20);
        for (uint32_t b = 0; b < batch && sent < n; b++) {
            uint32_t len = rec_len(sent, max);
            void *p;
            if (ring_claim(&tx, (uint32_t)sent, len, &p) != RING_OK)
                break;
            make_record(p, sent, len);
            ring_commit(&tx, len);
            sent++;
        }
        ring_publish(&tx);
        for (uint32_t b = 0; ring_read(&rx, &r) == RING_OK; b++)
            verify_record(&r, back++, max);
        ring_read_release(&rx);
        if (back < sent && rnd(2) == 0) {
            ring_set_spin(&rx, rnd(1000));
            enum ring_outcome o = ring_wait(&rx, 0, (int64_t)(rnd(2000) + 1) * 1000);
            if (o != RING_OK && o != RING_WOULD_BLOCK)
                fail("stress wait: %s", ring_outcome_str(o));
        }
        if ((++loops & 0x3ff) == 0)
            check_deadline("stress");
    }
    parks = rx.parks;
    if (reap(child, "stress") != 0)
        fail("echo child failed");
    printf("stress: %" PRIu64 " random records echoed and verified, parent parks %" PRIu64 "\n", n,
           parks);
    return 0;
}

static uint64_t arg_or_env(int argc, char **argv, const char *env, uint64_t dflt)
{
    const char *v = argc > 2 ? argv[2] : getenv(env);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || x == 0)
        fail("bad count '%s'", v);
    return x;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    int64_t limit = (int64_t)arg_or_env(0, argv, "HAMQ_RING_TIME_LIMIT", 240);
    deadline = shm_now_ns() + limit * SEC;
    const char *fixed = getenv("HAMQ_RING_SEED"); /* to replay a failing run */
    seed = fixed ? strtoull(fixed, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    rnd_state = seed;
    printf("%s: seed %" PRIu64 "\n", mode, seed);
    if (strcmp(mode, "stream") == 0)
        return mode_stream(arg_or_env(argc, argv, "HAMQ_RING_RECORDS", 10000000));
    if (strcmp(mode, "park") == 0)
        return mode_park(arg_or_env(argc, argv, "HAMQ_PARK_ROUNDS", 1000000));
    if (strcmp(mode, "kill") == 0)
        return mode_kill(arg_or_env(argc, argv, "HAMQ_KILL_ROUNDS", 5));
    if (strcmp(mode, "bell") == 0)
        return mode_bell(arg_or_env(argc, argv, "HAMQ_BELL_RECORDS", 200000));
    if (strcmp(mode, "stress") == 0)
        return mode_stress(arg_or_env(argc, argv, "HAMQ_STRESS_RECORDS", 300000));
    fprintf(stderr, "usage: ring_mp stream|park|kill|bell|stress [count]\n");
    return 2;
}
