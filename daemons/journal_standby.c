/*
 * journal_standby — hamq-journal --standby: the warm backup core of a node
 * that is not live, and the durable-LSN file shared with the supervisor.
 *
 * Standby: follows the store read-only (store_follow_*, no lock taken, nothing
 * written) so that its segments are read, checked and in the page cache when
 * the node is promoted. It applies records only up to the durable LSN the live
 * reported (the supervisor copies it from the live's heartbeats into the LSN
 * file), or, before any report, up to what later records prove synced.
 *
 * Warm engine: the standby also keeps a broker engine current while it
 * follows. It is seeded once from the follower's index (queues from the
 * bindings, every live message read back, duplicate ids), then the store's
 * observer (store.h) reports each reference added, acked or recounted and each
 * duplicate id as the follower applies them, and the engine's restore calls
 * mirror them. Any mismatch (a queue the bindings do not name, a read that
 * fails) drops the engine ("cold"): promotion then rebuilds it from the store,
 * slower but the same result. Memory: the standby holds the bodies the live
 * holds.
 *
 * Promotion: SIGUSR1 from the supervisor (sent once, after it took live.lock,
 * saw writer.lock free and raised store.epoch). store_open_adopt takes
 * writer.lock and the follower's index, and reads, verifies and replays only
 * what the follower had not applied (a torn, never-synced tail is cut, not
 * served) — through the observer, so the warm engine sees it too. Queues are
 * checked against the bindings, the engine's restore is finished, and the
 * workers are spawned: the cost is the tail, not the store.
 * SIGTERM/SIGINT: clean exit, nothing written.
 * While standby the process dies with its supervisor (PR_SET_PDEATHSIG); once
 * promoted it does not: a live core outlives its supervisor and keeps
 * writer.lock, which is what keeps a backup from going live beside it.
 *
 * LSN file (--lsn-file PATH): 8 bytes, one little-endian u64, mapped shared.
 * Live core: stores its durable LSN after each group commit (no syscall).
 * Standby core: reads it as the apply limit. Writers use relaxed atomic
 * 64-bit stores on the aligned word, so readers never see a torn value.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "hamq/daemon.h"
#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "journal.h"

#define STANDBY_POLL_MS 20
#define STANDBY_RETRY_LOG_MS 5000

int jd_lsn_map(struct journald *j, bool create)
{
    if (!j->lsn_file)
        return 0;
    int fd = open(j->lsn_file, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0640);
    if (fd < 0) {
        log_err("cannot open the LSN file %s: %s", j->lsn_file, strerror(errno));
        return -errno;
    }
    if (ftruncate(fd, sizeof(uint64_t)) < 0) {
        int e = errno;
        log_err("cannot size the LSN file %s: %s", j->lsn_file, strerror(e));
        close(fd);
        return -e;
    }
    void *p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        log_err("cannot map the LSN file %s: %s", j->lsn_file, strerror(e));
        return -e;
    }
    j->lsn_pub = p;
    return 0;
}

void jd_lsn_publish(struct journald *j, uint64_t lsn)
{
    if (j->lsn_pub)
        atomic_store_explicit(j->lsn_pub, lsn, memory_order_relaxed);
}

static uint64_t lsn_limit(const struct journald *j)
{
    return j->lsn_pub ? atomic_load_explicit(j->lsn_pub, memory_order_relaxed) : 0;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct standby {
    struct journald *j;
    struct store_follower *f;
    uint64_t last_err_log_ms;
    bool warm;
    bool engine_ok;   /* j->engine mirrors the follower's index */
    uint8_t *buf;     /* body read buffer */
    size_t cap;
};

static struct standby standby_state; /* one per process: hamq-journal --standby */

static void engine_drop(struct standby *sb)
{
    if (sb->f)
        store_follow_observe(sb->f, NULL, NULL);
    sb->engine_ok = false;
    core_free(sb->j->engine);
    sb->j->engine = NULL;
}

/* The engine no longer mirrors the store: drop it (promotion rebuilds it). */
static void engine_cold(struct standby *sb, const char *why, int err)
{
    if (sb->engine_ok)
        log_warn("standby: the warm engine is dropped (%s: %s); a promotion will rebuild it "
                 "from the store",
                 why, strerror(-err));
    engine_drop(sb);
}

static int restore_missing_queues(struct standby *sb)
{
    char err[1024];
    int r = store_read_bindings(sb->j->cfg.store, jd_restore_binding, sb->j, err, sizeof err);
    if (r < 0)
        log_warn("standby: cannot read the bindings: %s", err);
    return r;
}

static long read_body_follower(void *src, uint64_t msg_id, void *buf, size_t len)
{
    return store_follow_read_body(src, msg_id, buf, len);
}

static void ob_ref_add(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t body_len,
                       store_body_fn read, void *src)
{
    struct standby *sb = ctx;
    struct core_engine *e = sb->j->engine;
    int r = 0;

    if (!sb->engine_ok)
        return;
    if (!core_has_queue_id(e, queue_id) && (r = restore_missing_queues(sb)) == 0 &&
        !core_has_queue_id(e, queue_id))
        r = -ENOENT;
    if (r < 0) {
        engine_cold(sb, "a reference to a queue the bindings do not name", r);
        return;
    }
    if (!core_restore_has_message(e, msg_id)) {
        if (body_len > sb->cap) {
            uint8_t *nb = realloc(sb->buf, body_len);
            if (!nb) {
                engine_cold(sb, "reading a message body", -ENOMEM);
                return;
            }
            sb->buf = nb;
            sb->cap = body_len;
        }
        long n = read(src, msg_id, sb->buf, sb->cap);
        r = n < 0 ? (int)n : n != (long)body_len ? -EIO
                                                  : core_restore_message(e, msg_id, sb->buf,
                                                                         (size_t)n);
        if (r < 0) {
            engine_cold(sb, "reading a message body", r);
            return;
        }
    }
    /* the reference keeps the message now (-EINVAL: a second reference, released) */
    if ((r = core_restore_ref(e, msg_id, queue_id, 0)) < 0 ||
        ((r = core_restore_release(e, msg_id)) < 0 && r != -EINVAL))
        engine_cold(sb, "adding a reference", r);
}

static void ob_ack(void *ctx, uint64_t msg_id, uint64_t queue_id)
{
    struct standby *sb = ctx;
    int r;

    if (sb->engine_ok && (r = core_restore_ack(sb->j->engine, msg_id, queue_id)) < 0)
        engine_cold(sb, "an acknowledgement", r);
}

static void ob_dcount(void *ctx, uint64_t msg_id, uint64_t queue_id, uint32_t count)
{
    struct standby *sb = ctx;
    int r;

    if (sb->engine_ok &&
        (r = core_restore_delivery_count(sb->j->engine, msg_id, queue_id, count)) < 0)
        engine_cold(sb, "a delivery count", r);
}

static void ob_dup_id(void *ctx, const char *address, size_t alen, const void *id, size_t len)
{
    struct standby *sb = ctx;
    char a[JNL_DUP_ADDRESS_MAX + 1];
    int r;

    if (!sb->engine_ok)
        return;
    if (alen > JNL_DUP_ADDRESS_MAX) {
        engine_cold(sb, "a duplicate id", -ENAMETOOLONG);
        return;
    }
    memcpy(a, address, alen);
    a[alen] = 0;
    if ((r = core_restore_duplicate_id(sb->j->engine, a, id, len)) < 0)
        engine_cold(sb, "a duplicate id", r);
}

static int count_binding(void *ctx, const struct store_binding *b)
{
    size_t *n = ctx;

    (void)b;
    (*n)++;
    return 0;
}

static const struct store_observer standby_observer = {
    .ref_add = ob_ref_add,
    .ack = ob_ack,
    .dcount = ob_dcount,
    .dup_id = ob_dup_id,
};

static int seed_dup(void *ctx, const char *address, const void *id, size_t len)
{
    return jd_restore_dup(ctx, address, id, len);
}

/* A fresh engine holding what the (just opened) follower holds, then observed. */
static void engine_seed(struct standby *sb)
{
    struct journald *j = sb->j;
    struct jd_ref_list l = {0};
    int r;

    core_free(j->engine);
    j->engine = jd_engine_new(j);
    if (!j->engine) {
        sb->engine_ok = true; /* so that the warning is logged */
        engine_cold(sb, "creating the engine", -ENOMEM);
        return;
    }
    sb->engine_ok = true;
    store_follow_set_dup_limit(sb->f, jd_dup_limit(j));
    r = restore_missing_queues(sb);
    if (r == 0)
        r = store_follow_foreach_live(sb->f, jd_collect_ref, &l);
    if (r == 0)
        r = jd_restore_refs(j, &l, read_body_follower, sb->f);
    if (r == 0)
        r = store_follow_foreach_duplicate_id(sb->f, seed_dup, j);
    free(l.v);
    if (r < 0) {
        engine_cold(sb, "seeding from the follower", r);
        return;
    }
    store_follow_observe(sb->f, &standby_observer, sb);
    log_info("standby: engine seeded with %zu message reference(s) from the follower", l.n);
}

/* (Re)opens the follower; a store nobody wrote yet is not an error here. */
static void follow_open(struct standby *sb)
{
    char err[1024];
    int r = store_follow_open(sb->j->cfg.store, &sb->f, err, sizeof err);
    if (r == 0) {
        engine_seed(sb);
        return;
    }
    sb->f = NULL;
    uint64_t now = mono_ms();
    if (now - sb->last_err_log_ms >= STANDBY_RETRY_LOG_MS) {
        log_warn("standby: cannot follow the store yet: %s (retrying)", err);
        sb->last_err_log_ms = now;
    }
}

static void follow_step(struct standby *sb)
{
    if (!sb->f)
        follow_open(sb);
    if (!sb->f)
        return;
    int r = store_follow_poll(sb->f, lsn_limit(sb->j));
    if (r == -ENOENT)
        return; /* a segment was compacted away under us: read again next time */
    if (r < 0) {
        log_info("standby: reopening the follower (%s)", strerror(-r));
        engine_drop(sb); /* seeded again from the reopened follower */
        store_follow_close(sb->f);
        sb->f = NULL;
        return;
    }
    if (!sb->warm) {
        sb->warm = true;
        log_event(LOG_NOTICE, "standby-warm",
                  "standby: following %s, applied LSN %" PRIu64 ", %" PRIu64 " live messages",
                  sb->j->cfg.store, store_follow_applied_lsn(sb->f),
                  store_follow_live_messages(sb->f));
        daemon_notify_ready("standby: following the store");
    }
}

int jd_standby_run(struct journald *j, bool *promoted)
{
    sigset_t set;
    struct standby *sb = &standby_state;
    int code = HAMQ_EXIT_OK;

    *sb = (struct standby){.j = j};

    *promoted = false;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return HAMQ_EXIT_INTERNAL;
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
        log_err("standby: cannot set up signals: %s", strerror(errno));
        return HAMQ_EXIT_INTERNAL;
    }
    if (getppid() == 1)
        log_warn("standby: started without a supervisor (parent is pid 1)");
    if (jd_lsn_map(j, true) < 0) {
        close(sfd);
        return HAMQ_EXIT_CONFIG;
    }
    log_info("standby: following %s read-only until promoted (SIGUSR1)", j->cfg.store);
    for (;;) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int n = poll(&p, 1, STANDBY_POLL_MS);
        if (n < 0 && errno != EINTR) {
            code = HAMQ_EXIT_INTERNAL;
            break;
        }
        struct signalfd_siginfo si;
        if (n > 0 && read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGUSR1) {
                *promoted = true;
                break;
            }
            log_info("standby: stopping on signal %u", si.ssi_signo);
            break;
        }
        follow_step(sb);
    }
    if (*promoted) {
        uint64_t applied = sb->f ? store_follow_applied_lsn(sb->f) : 0;
        log_event(LOG_NOTICE, "promote",
                  "standby: promoted at applied LSN %" PRIu64 " (live reported %" PRIu64
                  "): taking writer.lock and verifying the tail",
                  applied, lsn_limit(j));
        prctl(PR_SET_PDEATHSIG, 0);
        signal(SIGUSR1, SIG_IGN); /* a repeated promotion is a no-op */
    }
    if (!*promoted) {
        store_follow_close(sb->f);
        sb->f = NULL;
        engine_drop(sb);
        free(sb->buf);
        sb->buf = NULL;
    }
    close(sfd);
    return code;
}

/* The engine's queues must be exactly the durable queues of the bindings. */
static int finish_warm_engine(struct standby *sb)
{
    struct journald *j = sb->j;
    int r = store_foreach_binding(j->store, jd_restore_binding, j);
    size_t nb = 0;

    if (r == 0)
        r = store_foreach_binding(j->store, count_binding, &nb);
    if (r == 0 && core_durable_queue_count(j->engine) != nb)
        r = -EUCLEAN; /* a queue was deleted on the live since we seeded */
    if (r == 0)
        r = core_restore_done(j->engine);
    return r;
}

int jd_standby_open_store(struct journald *j, char *err, size_t errlen)
{
    struct standby *sb = &standby_state;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!sb->f) /* nothing was followed (empty store): a plain open */
        return jd_store_open(j, NULL, err, errlen);
    int r = jd_store_open(j, &sb->f, err, errlen); /* consumes the follower */
    free(sb->buf);
    sb->buf = NULL;
    if (r < 0) {
        engine_cold(sb, "promotion", r);
        return r;
    }
    if (sb->engine_ok && (r = finish_warm_engine(sb)) < 0)
        engine_cold(sb, "checking its queues against the bindings", r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct store_recovery rec;
    store_recovery_info(j->store, &rec);
    log_info("standby: store adopted in %.1f ms (%" PRIu64 " tail record(s) replayed), engine %s",
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
             rec.records, sb->engine_ok ? "warm" : "cold: rebuilding it from the store");
    return 0;
}
