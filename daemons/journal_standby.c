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
 * Promotion: SIGUSR1 from the supervisor (sent once, after it took live.lock,
 * saw writer.lock free and raised store.epoch). The follower is closed and
 * hamq-journal goes on with its normal start: store_open takes writer.lock,
 * re-reads and verifies the tail from disk (CRC of every record after the
 * checkpoint; a torn, never-synced tail is cut, not served), restores the
 * engine and spawns the workers. SIGTERM/SIGINT: clean exit, nothing written.
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
};

/* (Re)opens the follower; a store nobody wrote yet is not an error here. */
static void follow_open(struct standby *sb)
{
    char err[1024];
    int r = store_follow_open(sb->j->cfg.store, &sb->f, err, sizeof err);
    if (r == 0)
        return;
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
    struct standby sb = {.j = j};
    int code = HAMQ_EXIT_OK;

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
        follow_step(&sb);
    }
    if (*promoted) {
        uint64_t applied = sb.f ? store_follow_applied_lsn(sb.f) : 0;
        log_event(LOG_NOTICE, "promote",
                  "standby: promoted at applied LSN %" PRIu64 " (live reported %" PRIu64
                  "): taking writer.lock and verifying the tail",
                  applied, lsn_limit(j));
        prctl(PR_SET_PDEATHSIG, 0);
        signal(SIGUSR1, SIG_IGN); /* a repeated promotion is a no-op */
    }
    store_follow_close(sb.f);
    close(sfd);
    return code;
}
