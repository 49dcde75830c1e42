/*
 * journal_bench — figures for the store (not a test: it asserts nothing).
 *
 *   journal_bench [--quick] [--sync-compare ROUNDS] [DIR]
 *                                     (DIR defaults to ./journal-bench.<pid>)
 *
 * In one run, on the file system of DIR, prints side by side:
 *   - the raw limit: 4 KiB O_DIRECT write + fdatasync (and + RWF_DSYNC) latency
 *     p50/p99; sequential O_DIRECT write MB/s (one sync at the end, and one per MiB);
 *   - the journal: durable append latency p50/p99 with one appender; durable 1 KiB
 *     appends/s with 1, 16 and 256 concurrent appenders (each appender appends
 *     again when its previous record became durable), for both sync modes;
 *   - recovery time for 10k, 100k and 1M live 1 KiB messages, with and without a
 *     checkpoint, and for 10k live messages behind 1M dead ones (history length).
 * --sync-compare N runs only the journal latency and rates, alternating the two
 * sync modes N times, and prints medians (the data behind STORE_SYNC_DEFAULT).
 * Pinned to one CPU (platform.md §5: unpinned runs vary 10x on this VM).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hamq/log.h"
#include "store.h"

#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif

static bool quick;
static char root[4096];

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void pcts(double *v, size_t n, double *p50, double *p99)
{
    qsort(v, n, sizeof *v, dcmp);
    *p50 = v[n / 2];
    *p99 = v[(n * 99) / 100];
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void rmrf(const char *d)
{
    nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "journal_bench: %s: %s\n", what, detail);
    exit(1);
}

/* --- raw limits --- */

static int raw_file(const char *name, uint64_t size, char *path, size_t plen)
{
    snprintf(path, plen, "%s/%s", root, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0640);
    if (fd < 0)
        die(path, strerror(errno));
    if (fallocate(fd, 0, 0, (off_t)size) < 0)
        die("fallocate", strerror(errno));
    fsync(fd);
    return fd;
}

/* 4 KiB writes at increasing offsets of a fallocated file; overwrite: the blocks
   were written once before (no unwritten-extent conversion to commit). */
static void raw_latency(bool dsync, bool overwrite, double *p50, double *p99)
{
    int n = quick ? 300 : 2000;
    char path[4200];
    int fd = raw_file("raw-lat", (uint64_t)n * 4096, path, sizeof path);
    if (overwrite) {
        void *z;
        if (posix_memalign(&z, 4096, 1 << 20))
            die("memalign", "");
        memset(z, 0, 1 << 20);
        for (uint64_t off = 0; off < (uint64_t)n * 4096; off += 1 << 20)
            if (pwrite(fd, z, 1 << 20, (off_t)off) < 0)
                die("raw prewrite", strerror(errno));
        fdatasync(fd);
        free(z);
    }
    void *buf;
    if (posix_memalign(&buf, 4096, 4096))
        die("memalign", "");
    memset(buf, 0x5a, 4096);
    double *v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        struct iovec iov = {buf, 4096};
        ssize_t w = dsync ? pwritev2(fd, &iov, 1, (off_t)i * 4096, RWF_DSYNC)
                          : pwrite(fd, buf, 4096, (off_t)i * 4096);
        if (w != 4096 || (!dsync && fdatasync(fd) < 0))
            die("raw write", strerror(errno));
        v[i] = now_us() - t0;
    }
    pcts(v, (size_t)n, p50, p99);
    free(v);
    free(buf);
    close(fd);
    unlink(path);
}

static double raw_seq(bool sync_each, uint64_t chunk)
{
    uint64_t total = quick ? (64ull << 20) : (512ull << 20);
    char path[4200];
    int fd = raw_file("raw-seq", total, path, sizeof path);
    void *buf;
    if (posix_memalign(&buf, 4096, chunk))
        die("memalign", "");
    memset(buf, 0x3c, chunk);
    double t0 = now_us();
    for (uint64_t off = 0; off < total; off += chunk)
        if (pwrite(fd, buf, chunk, (off_t)off) != (ssize_t)chunk ||
            (sync_each && fdatasync(fd) < 0))
            die("raw seq write", strerror(errno));
    fdatasync(fd);
    double mbs = (double)total / (now_us() - t0); /* bytes/us = MB/s */
    free(buf);
    close(fd);
    unlink(path);
    return mbs;
}

/* --- journal: latency and throughput --- */

struct jb {
    struct store *s;
    int ep;
    uint64_t *fifo; /* LSNs of outstanding appends */
    size_t head, tail, cap;
    uint64_t done;
    uint64_t next_id;
};

static void jb_durable(void *ctx, uint64_t lsn)
{
    struct jb *b = ctx;
    while (b->tail != b->head && b->fifo[b->tail % b->cap] <= lsn) {
        b->tail++;
        b->done++;
    }
}

static struct store *jb_open(struct jb *b, const char *name, enum store_sync sync)
{
    char d[4200];
    snprintf(d, sizeof d, "%s/%s", root, name);
    rmrf(d);
    struct store_opts o;
    char err[4096];
    store_opts_init(&o, NULL);
    o.dir = d;
    o.sync = sync;
    o.on_durable = jb_durable;
    o.ctx = b;
    memset(b, 0, sizeof *b);
    b->cap = 1024;
    b->fifo = calloc(b->cap, sizeof *b->fifo);
    if (store_open(&o, &b->s, err, sizeof err) < 0)
        die("store_open", err);
    store_sync(b->s);
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(b->ep, EPOLL_CTL_ADD, store_event_fd(b->s), &ev);
    b->next_id = 1;
    return b->s;
}

static void jb_close(struct jb *b, const char *name)
{
    char d[4200];
    store_close(b->s);
    close(b->ep);
    free(b->fifo);
    snprintf(d, sizeof d, "%s/%s", root, name);
    rmrf(d);
}

static void jb_append(struct jb *b)
{
    static uint8_t body[1024];
    uint64_t id = b->next_id++, lsn;
    if (store_add_message(b->s, id, body, sizeof body, NULL) < 0 ||
        store_add_ref(b->s, id, 1, &lsn) < 0)
        die("append", "failed");
    b->fifo[b->head++ % b->cap] = lsn;
}

static void jb_wait(struct jb *b)
{
    struct epoll_event ev;
    if (epoll_wait(b->ep, &ev, 1, 5000) == 1)
        store_on_event(b->s);
}

static void journal_latency(enum store_sync sync, double *p50, double *p99)
{
    struct jb b;
    int n = quick ? 300 : 2000;
    jb_open(&b, "jlat", sync);
    double *v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        jb_append(&b);
        store_kick(b.s);
        while (b.tail != b.head)
            jb_wait(&b);
        v[i] = now_us() - t0;
    }
    pcts(v, (size_t)n, p50, p99);
    free(v);
    jb_close(&b, "jlat");
}

/* Each of `appenders` appends again when its previous record is durable. */
static double journal_rate(enum store_sync sync, int appenders, double *mbs)
{
    struct jb b;
    jb_open(&b, "jrate", sync);
    double dur = quick ? 0.5e6 : 2e6;
    for (int i = 0; i < appenders; i++)
        jb_append(&b);
    store_kick(b.s);
    double t0 = now_us();
    uint64_t start_done = 0;
    while (now_us() - t0 < dur) {
        uint64_t before = b.done;
        jb_wait(&b);
        for (uint64_t k = before; k < b.done; k++)
            jb_append(&b);
        store_kick(b.s);
    }
    double el = now_us() - t0;
    uint64_t n = b.done - start_done;
    /* bytes on disk per message: record headers + msg id + body + ref record */
    *mbs = (double)n * (40 + 8 + 1024 + 40 + 16) / el;
    jb_close(&b, "jrate");
    return (double)n / el * 1e6;
}

/* --- recovery --- */

static void drop_cache(const char *d)
{
    char j[4200];
    snprintf(j, sizeof j, "%s/journal", d);
    int dfd = open(j, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return;
    for (uint64_t seq = 1; seq < 1000000; seq++) {
        char n[64];
        snprintf(n, sizeof n, "%016" PRIx64 ".seg", seq);
        int fd = openat(dfd, n, O_RDONLY);
        if (fd < 0) {
            if (seq > 4096)
                break;
            continue;
        }
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    close(dfd);
}

static void fill(struct store *s, uint64_t first, uint64_t n, bool ack)
{
    static uint8_t body[1024];
    for (uint64_t id = first; id < first + n; id++) {
        if (store_add_message(s, id, body, sizeof body, NULL) < 0 ||
            store_add_ref(s, id, 1, NULL) < 0 || (ack && store_ack(s, id, 1, NULL) < 0))
            die("fill", "append failed");
        if (id % 4096 == 0 && store_sync(s) < 0)
            die("fill", "sync failed");
    }
    if (store_sync(s) < 0)
        die("fill", "sync failed");
}

static uint64_t last_index_bytes;

static double timed_open(const char *d, double *replay_ms, uint64_t *live)
{
    struct store_opts o;
    char err[4096];
    struct store *s;
    store_opts_init(&o, NULL);
    o.dir = d;
    drop_cache(d);
    double t0 = now_us();
    if (store_open(&o, &s, err, sizeof err) < 0)
        die("recovery", err);
    double ms = (now_us() - t0) / 1e3;
    struct store_recovery ri;
    store_recovery_info(s, &ri);
    *replay_ms = ri.ms;
    last_index_bytes = ri.index_bytes;
    *live = store_live_messages(s);
    store_close(s);
    return ms;
}

static void recovery_row(const char *label, uint64_t live, uint64_t dead)
{
    char d[4200], err[4096];
    snprintf(d, sizeof d, "%s/jrec", root);
    rmrf(d);
    struct store_opts o;
    struct store *s;
    store_opts_init(&o, NULL);
    o.dir = d;
    if (store_open(&o, &s, err, sizeof err) < 0)
        die("store_open", err);
    double t0 = now_us();
    if (dead)
        fill(s, 1ull << 40, dead, true);
    fill(s, 1, live, false);
    double build = (now_us() - t0) / 1e6;
    int segs = store_segment_count(s);
    store_close(s);
    double r1, r2;
    uint64_t l1, l2;
    double t_full = timed_open(d, &r1, &l1);
    if (store_open(&o, &s, err, sizeof err) < 0)
        die("store_open", err);
    if (store_checkpoint(s) < 0)
        die("checkpoint", "failed");
    int segs2 = store_segment_count(s);
    store_close(s);
    double t_ckpt = timed_open(d, &r2, &l2);
    printf("  %-28s %9.1f ms %9.1f ms   (%" PRIu64 " live, index %.0f MiB; %d -> %d segments; "
           "built in %.1f s)\n",
           label, t_full, t_ckpt, l2, (double)last_index_bytes / (1 << 20), segs, segs2, build);
    if (l1 != l2 || l1 != live)
        printf("  !! live counts differ: %" PRIu64 " / %" PRIu64 " / %" PRIu64 "\n", l1, l2, live);
    rmrf(d);
}

/* Alternating runs of both sync modes, medians: the data behind the default. */
static void sync_compare(int rounds)
{
    int conc[] = {1, 16, 256};
    double lat[2][16], rate[2][3][16];
    for (int r = 0; r < rounds && r < 16; r++)
        for (int m = 0; m < 2; m++) {
            enum store_sync sy = m ? STORE_SYNC_DSYNC : STORE_SYNC_FDATASYNC;
            double p99, mb;
            journal_latency(sy, &lat[m][r], &p99);
            for (int c = 0; c < 3; c++)
                rate[m][c][r] = journal_rate(sy, conc[c], &mb);
        }
    if (rounds > 16)
        rounds = 16;
    printf("sync mode comparison, medians of %d alternating rounds\n", rounds);
    printf("                      p50 latency us   1 appender/s  16 appenders/s  256 appenders/s\n");
    for (int m = 0; m < 2; m++) {
        double l50, l99, r50[3], dummy;
        pcts(lat[m], (size_t)rounds, &l50, &l99);
        for (int c = 0; c < 3; c++)
            pcts(rate[m][c], (size_t)rounds, &r50[c], &dummy);
        printf("  %-18s %14.1f %14.0f %15.0f %16.0f\n", m ? "aio RWF_DSYNC" : "aio write+FDSYNC", l50,
               r50[0], r50[1], r50[2]);
    }
}

static void pin(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0, &set);
    sched_setaffinity(0, sizeof set, &set);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int compare = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--sync-compare") == 0 && i + 1 < argc)
            compare = atoi(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: journal_bench [--quick] [--sync-compare ROUNDS] [DIR]\n");
            return 2;
        } else
            dir = argv[i];
    }
    if (dir)
        snprintf(root, sizeof root, "%s", dir);
    else
        snprintf(root, sizeof root, "./journal-bench.%ld", (long)getpid());
    mkdir(root, 0750);
    log_init("journal_bench", LOG_TARGET_STDERR);
    log_set_max_priority(LOG_WARNING);
    pin();

    printf("journal_bench%s on %s\n\n", quick ? " --quick" : "", root);
    if (compare) {
        sync_compare(compare);
        rmrf(root);
        return 0;
    }
    double a50, a99, b50, b99, c50, c99, d50, d99, e50, e99;
    raw_latency(false, false, &a50, &a99);
    raw_latency(true, false, &b50, &b99);
    raw_latency(false, true, &e50, &e99);
    journal_latency(STORE_SYNC_FDATASYNC, &c50, &c99);
    journal_latency(STORE_SYNC_DSYNC, &d50, &d99);
    printf("durable latency, 1 writer                        p50 us    p99 us\n");
    printf("  raw 4K O_DIRECT pwrite+fdatasync (fresh)     %8.1f  %8.1f\n", a50, a99);
    printf("  raw 4K O_DIRECT pwritev2 RWF_DSYNC (fresh)   %8.1f  %8.1f\n", b50, b99);
    printf("  raw 4K O_DIRECT pwrite+fdatasync (overwrite) %8.1f  %8.1f\n", e50, e99);
    printf("  journal append, aio write+FDSYNC             %8.1f  %8.1f   (%.2fx raw fresh p50)\n",
           c50, c99, c50 / a50);
    printf("  journal append, aio RWF_DSYNC                %8.1f  %8.1f   (%.2fx raw fresh p50)\n",
           d50, d99, d50 / a50);
    printf("  (fresh = into fallocated, never written blocks, like a new segment)\n\n");

    double seq = raw_seq(false, 1 << 20), seq_sync = raw_seq(true, 1 << 20);
    double seq256 = raw_seq(true, 256 << 10);
    printf("raw sequential O_DIRECT writes: %.0f MB/s (1 MiB writes, one sync at the end)\n"
           "                                %.0f MB/s (1 MiB write + fdatasync each)\n"
           "                                %.0f MB/s (256 KiB write + fdatasync each = the "
           "batch 256 x 1 KiB appenders can fill)\n\n",
           seq, seq_sync, seq256);

    printf("durable 1 KiB appends/s        aio write+FDSYNC              aio RWF_DSYNC\n"
           "                               rate       MB/s  %%seq %%256K    rate       MB/s  "
           "%%seq %%256K\n");
    int conc[] = {1, 16, 256};
    for (int i = 0; i < 3; i++) {
        double m1, m2;
        double r1 = journal_rate(STORE_SYNC_FDATASYNC, conc[i], &m1);
        double r2 = journal_rate(STORE_SYNC_DSYNC, conc[i], &m2);
        printf("  %3d appenders  %9.0f/s %7.1f %4.0f%% %4.0f%%  %9.0f/s %7.1f %4.0f%% %4.0f%%\n",
               conc[i], r1, m1, 100 * m1 / seq, 100 * m1 / seq256, r2, m2, 100 * m2 / seq,
               100 * m2 / seq256);
    }
    printf("  (MB/s = journal bytes made durable; %%seq = of raw sequential without syncs,\n"
           "   %%256K = of raw 256 KiB write+fdatasync)\n\n");

    printf("recovery (page cache dropped)     no checkpoint  with checkpoint\n");
    recovery_row("10k live 1 KiB", 10000, 0);
    recovery_row("100k live 1 KiB", 100000, 0);
    if (!quick) {
        recovery_row("1M live 1 KiB", 1000000, 0);
        recovery_row("10k live behind 1M dead", 10000, 1000000);
    } else {
        recovery_row("10k live behind 100k dead", 10000, 100000);
    }
    rmrf(root);
    return 0;
}
