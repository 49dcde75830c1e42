/*
 * sup_node — the node state machine of hamq-supervisor. See sup_node.h for the
 * roles and the activation steps, supervisor/README.md for the whole picture.
 *
 * Invariants (what keeps two writers off one store):
 *   - live.lock is taken only by this process, on an O_CLOEXEC fd, and released
 *     only when no core of ours can still write: after its exit was reaped
 *     (exec mode: pidfd) or its stop job finished (systemd mode).
 *   - we go live only while holding live.lock AND seeing writer.lock free; the
 *     epoch is raised after both, before the core is promoted.
 *   - the core is promoted (SIGUSR1 to the warm standby) at most once per
 *     standby process; a live core that dies is restarted cold (full store_open).
 *
 * Threads: one, plus a detached helper blocked in F_OFD_SETLKW on live.lock
 * (a kernel wait: the lock is ours ~0.1 ms after the holder dies, no polling);
 * it only writes its result and an eventfd the loop watches.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemons/store/store_ha.h"
#include "hamq/daemon.h"
#include "hamq/evloop.h"
#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "hamq/shm.h"
#include "sup_child.h"
#include "sup_ctl_proto.h"
#include "sup_event.h"
#include "sup_hb.h"
#include "sup_link.h"
#include "sup_node.h"
#include "sup_systemd.h"
#include "sup_vip.h"

#define TICK_MS 50
#define SD_RETRY_MS 2000 /* systemd mode: a failed start of hamq.target is retried */
#define WRITER_POLL_MS 2 /* writer.lock has no waiter thread: a dead core's lock goes in ms */
#define WRITER_LOG_MS 5000
#define SILENT_LOG_MS 5000
#define FROZEN_KILL_WAIT_MS 2000
#define HANDOVER_TIMEOUT_MS 15000
#define CTL_TIMEOUT_MS 30000
#define FAILBACK_RETRY_MS 10000
#define PATHLEN 1200

enum core_kind { CORE_NONE = 0, CORE_STANDBY, CORE_LIVE };

struct node {
    uint64_t watchdog_ms, watchdog_at_ms;
    struct evloop *loop;
    struct sup_hb *hb;
    struct sup_ctl_server *ctl;
    struct sup_vip *vip;
    struct sup_link *link;
    struct sup_systemd *sd;
    struct sup_child *core;
    struct ev_watch *core_watch;
    uint64_t epoch;
    uint64_t rewait_at_ms;
    uint64_t writer_log_at_ms, silent_log_at_ms;
    uint64_t t_start_ms; /* failover clock: peer lost, or lock acquired */
    uint64_t t_peer_lost_ms;
    uint64_t ack_seq;
    uint64_t failback_next_ms;
    uint64_t ctl_id, ctl_deadline_ms, ctl_t0_ms, ctl_old_epoch;
    _Atomic uint64_t *lsn;
    uint64_t holdoff_epoch; /* set by hold_off(): a live peer above it ends the wait */
    struct hamq_config cfg;
    struct sup_node_opts o;
    enum core_kind kind, want_kind;
    int role;
    int live_fd;
    int wait_efd;
    _Atomic int wait_result;
    int notify_fd;
    bool core_replace;  /* deferred to the loop: free core, start want_kind */
    bool core_promoted; /* SIGUSR1 sent to this standby process */
    bool core_ready;    /* READY=1 from the core process */
    bool serving;       /* live and a worker said READY=1 (systemd: start job done) */
    bool frozen_killed;
    bool paused;
    bool stop;
    bool live_held;
    bool waiting;
    bool writer_wait;
    uint64_t sd_retry_at_ms; /* systemd mode: start hamq.target again then (0 = no) */
    bool demoting;
    bool owe_ack;
    bool ho_requested;
    bool ctl_wait;
    char ctl_path[PATHLEN], notify_path[PATHLEN], lsn_path[PATHLEN], journal_bin[4200];
    char parent_notify[PATHLEN];
    char last_status[256];       /* the STATUS= line systemd shows, sent when it changes */
    pid_t sd_core_pid;           /* systemd mode: MainPID of hamq-journal.service */
    uint64_t sd_core_pid_at_ms;
    char pause_why[160];
    char cause[16];      /* start, failover, failback, handover */
    char cause_peer[SUP_HB_NODE_ID_MAX];
    char ack_peer[SUP_HB_NODE_ID_MAX];
    char ctl_cmd[16];
};

static uint64_t now_ms(void) { return evloop_now_ms(); }

static const char *role_name(const struct node *n) { return sup_role_name(n->role); }

/* ---- our own sd_notify to systemd (NOTIFY_SOCKET is our socket for children) */

static void parent_notify(struct node *n, const char *msg)
{
    if (!n->parent_notify[0])
        return;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(n->parent_notify);
    if (len >= sizeof a.sun_path)
        return;
    memcpy(a.sun_path, n->parent_notify, len);
    if (a.sun_path[0] == '@')
        a.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    ssize_t w = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    (void)w;
    close(fd);
}

/* STATUS= for `systemctl status`: role, epoch and the peer we see, when it changes. */
static void notify_status(struct node *n)
{
    char st[256], msg[300];
    struct sup_hb_peer_info p;
    int cnt = n->hb ? sup_hb_peer_count(n->hb) : 0;
    size_t off = (size_t)snprintf(st, sizeof st, "%s, epoch %" PRIu64, role_name(n), n->epoch);

    for (int i = 0; i < cnt && off < sizeof st; i++)
        if (sup_hb_peer_at(n->hb, i, &p) == 0)
            off += (size_t)snprintf(st + off, sizeof st - off, ", peer %s: %s", p.node_id,
                                    p.alive ? sup_role_name(p.role) : "silent");
    if (strcmp(st, n->last_status) == 0)
        return;
    snprintf(n->last_status, sizeof n->last_status, "%s", st);
    snprintf(msg, sizeof msg, "STATUS=%s", st);
    parent_notify(n, msg);
}

/* ---- peers ----------------------------------------------------------------- */

static bool find_peer(const struct node *n, int role, struct sup_hb_peer_info *out)
{
    int cnt = sup_hb_peer_count(n->hb);
    for (int i = 0; i < cnt; i++) {
        struct sup_hb_peer_info p;
        if (sup_hb_peer_at(n->hb, i, &p) == 0 && p.alive && p.role == role) {
            if (out)
                *out = p;
            return true;
        }
    }
    return false;
}

/* A healthy backup peer that should take over before us (higher priority; tie: smaller id). */
static bool better_backup(const struct node *n, struct sup_hb_peer_info *out)
{
    int cnt = sup_hb_peer_count(n->hb);
    for (int i = 0; i < cnt; i++) {
        struct sup_hb_peer_info p;
        if (sup_hb_peer_at(n->hb, i, &p) < 0 || !p.alive || p.role != SUP_ROLE_BACKUP ||
            p.health == SUP_HEALTH_DOWN)
            continue;
        if (p.priority > n->cfg.priority ||
            (p.priority == n->cfg.priority && strcmp(p.node_id, n->cfg.node_id) < 0)) {
            if (out)
                *out = p;
            return true;
        }
    }
    return false;
}

static uint64_t peers_max_epoch(const struct node *n)
{
    uint64_t m = 0;
    int cnt = sup_hb_peer_count(n->hb);
    for (int i = 0; i < cnt; i++) {
        struct sup_hb_peer_info p;
        if (sup_hb_peer_at(n->hb, i, &p) == 0 && p.epoch > m)
            m = p.epoch;
    }
    return m;
}

/* ---- the core: shm heartbeat ---------------------------------------------- */

/* Age of the core's shm heartbeat in ms; -1 if the segment is not (yet) the core's. */
static int64_t core_hb_age_ms(const struct node *n, pid_t pid)
{
    char name[128], path[160];
    if (pid <= 0 || shm_name(n->cfg.instance, name, sizeof name) < 0)
        return -1;
    snprintf(path, sizeof path, "/dev/shm%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct shm_header h;
    ssize_t r = pread(fd, &h, sizeof h, 0);
    close(fd);
    if (r != (ssize_t)sizeof h || h.magic != SHM_MAGIC || h.core_pid != pid)
        return -1;
    uint64_t hb = atomic_load_explicit(&h.core_heartbeat_ns, memory_order_relaxed);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return hb >= now ? 0 : (int64_t)((now - hb) / 1000000ull);
}

/* Exec mode: our child. systemd mode: hamq-journal.service's MainPID, refreshed by the tick. */
static pid_t core_pid(const struct node *n)
{
    return n->core ? sup_child_pid(n->core) : n->sd_core_pid;
}

static void refresh_sd_core_pid(struct node *n)
{
    uint64_t t = now_ms();
    int pid = 0;

    if (!n->sd || t - n->sd_core_pid_at_ms < 1000)
        return;
    n->sd_core_pid_at_ms = t;
    n->sd_core_pid = sup_systemd_main_pid(n->sd, "hamq-journal.service", &pid) == 0 ? pid : 0;
}

/* The workers attached to our core's segment (status only): pid.worker.N keys. */
static void status_workers(const struct node *n, struct sup_ctl_reply *r)
{
    char name[128], path[160];
    pid_t pid = core_pid(n);
    if (pid <= 0 || shm_name(n->cfg.instance, name, sizeof name) < 0)
        return;
    snprintf(path, sizeof path, "/dev/shm%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct shm_header h;
    if (pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && h.magic == SHM_MAGIC &&
        h.core_pid == pid && h.slot_size >= SHM_SLOT_HDR_SIZE) {
        for (uint32_t i = 0; i < h.slot_count && i < 64; i++) {
            struct shm_slot sl;
            off_t off = (off_t)SHM_HEADER_SIZE + (off_t)i * h.slot_size;
            if (pread(fd, &sl, sizeof sl, off) != (ssize_t)sizeof sl)
                break;
            int wp = atomic_load_explicit(&sl.worker_pid, memory_order_relaxed);
            char k[32], proc[32];
            snprintf(proc, sizeof proc, "/proc/%d", wp);
            if (wp > 0 && access(proc, F_OK) == 0) {
                snprintf(k, sizeof k, "pid.worker.%u", i);
                sup_ctl_reply_kv(r, k, "%d", wp);
            }
        }
    }
    close(fd);
}

static int core_health(const struct node *n)
{
    /* A node that just handed over (holding off) or whose old live core is still
       stopping will not take the lock now: a peer holding it must not yield to us
       (better_backup), or neither goes live until our hold-off ends. */
    if (n->role != SUP_ROLE_LIVE &&
        (n->holdoff_epoch || (n->core && sup_child_state(n->core) == SUP_CHILD_STOPPING)))
        return SUP_HEALTH_DOWN;
    if (n->role != SUP_ROLE_LIVE)
        return n->core && core_pid(n) ? SUP_HEALTH_OK : SUP_HEALTH_DOWN;
    int64_t age = core_hb_age_ms(n, core_pid(n));
    if (age < 0)
        return n->serving ? SUP_HEALTH_DEGRADED : SUP_HEALTH_DOWN;
    return age <= n->o.frozen_timeout_ms ? SUP_HEALTH_OK : SUP_HEALTH_DEGRADED;
}

/* ---- the core: processes (exec mode) ----------------------------------------- */

static void on_core_exit(void *ctx, struct sup_child *c, const struct sup_child_exit *e);

static void on_core_readable(struct evloop *loop, int fd, uint32_t ev, void *ctx)
{
    struct node *n = ctx;
    (void)loop, (void)fd, (void)ev;
    if (n->core)
        sup_child_on_readable(n->core);
}

static void core_free(struct node *n)
{
    if (n->core_watch)
        evloop_del(n->loop, n->core_watch);
    n->core_watch = NULL;
    sup_child_free(n->core); /* SIGKILLs a child still running: only used when none is */
    n->core = NULL;
    n->kind = CORE_NONE;
    n->core_promoted = n->core_ready = n->frozen_killed = false;
}

static int core_start(struct node *n, enum core_kind kind)
{
    char workers[16], offset[16];
    snprintf(workers, sizeof workers, "%d", n->cfg.workers > 0 ? n->cfg.workers : 1);
    snprintf(offset, sizeof offset, "%d", n->cfg.port_offset);
    const char *argv[24];
    int k = 0;
    argv[k++] = n->journal_bin;
    if (n->o.config_path) {
        argv[k++] = "--config";
        argv[k++] = n->o.config_path;
    }
    argv[k++] = "--store";
    argv[k++] = n->cfg.store;
    argv[k++] = "--instance";
    argv[k++] = n->cfg.instance;
    argv[k++] = "--port-offset";
    argv[k++] = offset;
    argv[k++] = "--spawn-workers";
    argv[k++] = workers;
    argv[k++] = "--lsn-file";
    argv[k++] = n->lsn_path;
    argv[k++] = "--log-level";
    argv[k++] = n->cfg.log_level;
    if (kind == CORE_STANDBY)
        argv[k++] = "--standby";
    argv[k] = NULL;
    struct sup_child_policy pol = {.backoff_min_ms = 100, .backoff_max_ms = 5000,
                                   .stable_ms = 10000, .term_timeout_ms = 10000};
    int r = sup_child_new(kind == CORE_STANDBY ? "standby core" : "core", (char *const *)argv,
                          &pol, on_core_exit, n, &n->core);
    if (r < 0)
        return r;
    n->kind = kind;
    r = evloop_add_fd(n->loop, sup_child_fd(n->core), EPOLLIN, on_core_readable, n,
                      &n->core_watch);
    if (r == 0)
        r = sup_child_start(n->core);
    if (r < 0)
        log_err("cannot start %s: %s", n->journal_bin, strerror(-r));
    return r;
}

/* Deferred: never free a sup_child from inside its own callback. */
static void core_want(struct node *n, enum core_kind kind)
{
    n->want_kind = kind;
    n->core_replace = true;
}

static void core_apply(struct node *n)
{
    if (!n->core_replace)
        return;
    n->core_replace = false;
    if (n->cfg.activation != CFG_ACTIVATION_EXEC)
        return;
    if (n->core && sup_child_state(n->core) == SUP_CHILD_RUNNING && n->kind == n->want_kind &&
        !n->core_promoted)
        return;
    if (n->core && (sup_child_state(n->core) == SUP_CHILD_RUNNING ||
                    sup_child_state(n->core) == SUP_CHILD_STOPPING)) {
        sup_child_stop(n->core); /* its exit comes back here */
        n->core_replace = true;
        return;
    }
    core_free(n);
    if (n->want_kind != CORE_NONE && !n->stop)
        core_start(n, n->want_kind);
}

/* ---- live.lock waiter --------------------------------------------------------- */

static void *wait_thread(void *arg)
{
    struct node *n = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    int r;
    do
        r = store_ha_live_wait(n->live_fd);
    while (r == -EINTR);
    atomic_store(&n->wait_result, r);
    uint64_t one = 1;
    ssize_t w = write(n->wait_efd, &one, sizeof one);
    (void)w;
    return NULL;
}

static void on_lock_acquired(struct node *n);

static void start_waiting(struct node *n)
{
    if (n->waiting || n->live_held || n->paused || n->stop)
        return;
    n->rewait_at_ms = 0;
    n->holdoff_epoch = 0;
    if (store_ha_live_try(n->live_fd) == 0) {
        n->live_held = true;
        n->t_start_ms = n->t_start_ms ? n->t_start_ms : now_ms();
        on_lock_acquired(n);
        return;
    }
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&th, &at, wait_thread, n);
    pthread_attr_destroy(&at);
    if (r != 0) {
        log_err("cannot start the live.lock waiter: %s; retrying in 1 s", strerror(r));
        n->rewait_at_ms = now_ms() + 1000;
        return;
    }
    n->waiting = true;
}

static void release_live(struct node *n)
{
    if (!n->live_held)
        return;
    int r = store_ha_live_release(n->live_fd);
    if (r < 0)
        log_err("cannot release live.lock: %s", strerror(-r));
    n->live_held = false;
    n->writer_wait = false;
}

/* ---- transitions --------------------------------------------------------------- */

static void set_hb_state(struct node *n)
{
    uint64_t lsn = n->lsn ? atomic_load_explicit(n->lsn, memory_order_relaxed) : 0;
    sup_hb_set_state(n->hb, n->role, core_health(n), n->epoch, lsn);
}

static void ctl_finish(struct node *n, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ctl_finish(struct node *n, int status, const char *fmt, ...)
{
    if (!n->ctl_wait)
        return;
    struct sup_ctl_reply rep;
    memset(&rep, 0, sizeof rep);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status < 0)
        sup_ctl_reply_error(&rep, "%s", msg);
    else {
        sup_ctl_reply_kv(&rep, "result", "%s", msg);
        sup_ctl_reply_kv(&rep, "duration_ms", "%" PRIu64, now_ms() - n->ctl_t0_ms);
    }
    sup_ctl_server_complete(n->ctl, n->ctl_id, &rep);
    n->ctl_wait = false;
}

/*
 * After we let go of live.lock for a peer, we do not queue for it again at once:
 * unlocking wakes the waiters, and a new F_OFD_SETLK of ours could win the race
 * against the peer's woken F_OFD_SETLKW. We wait until a peer reports live with a
 * newer epoch, or 2 heartbeat timeouts (the peer failed to take over).
 */
static void hold_off(struct node *n)
{
    n->holdoff_epoch = n->epoch;
    n->rewait_at_ms = now_ms() + 2 * (uint64_t)n->cfg.heartbeat_timeout_ms;
}

static void become_backup(struct node *n, const char *why)
{
    int was = n->role;
    n->role = n->paused ? SUP_ROLE_PAUSED : SUP_ROLE_BACKUP;
    n->serving = false;
    n->ho_requested = false;
    if (n->vip) { /* also a VIP of ours left behind by a crash of this node */
        char err[256];
        if (sup_vip_remove(n->vip, err, sizeof err) < 0)
            log_err("cannot remove the VIP: %s", err);
    }
    if (was == SUP_ROLE_LIVE || was == SUP_ROLE_FENCED)
        sup_event_ha(LOG_NOTICE, "demote", NULL, role_name(n), n->epoch, -1,
                     "node %s is %s now: %s", n->cfg.node_id, role_name(n), why);
    if (n->cfg.activation == CFG_ACTIVATION_EXEC)
        core_want(n, CORE_STANDBY);
    set_hb_state(n);
    if (!n->rewait_at_ms)
        start_waiting(n);
}

static void on_serving(struct node *n)
{
    if (n->serving)
        return;
    n->serving = true;
    uint64_t t = now_ms();
    int64_t d = n->t_start_ms ? (int64_t)(t - n->t_start_ms) : -1;
    sup_event_ha(LOG_NOTICE, "serving", n->cause_peer[0] ? n->cause_peer : NULL, "live",
                 n->epoch, d, "node %s is live and serving (epoch %" PRIu64 ", %s%s%s): %" PRId64
                 " ms from %s",
                 n->cfg.node_id, n->epoch, n->cause, n->cause_peer[0] ? " of " : "",
                 n->cause_peer, d,
                 n->t_peer_lost_ms && n->t_start_ms == n->t_peer_lost_ms ? "peer lost"
                                                                       : "lock acquired");
    if (strcmp(n->cause, "failover") == 0 || strcmp(n->cause, "failback") == 0)
        sup_event_ha(LOG_NOTICE, n->cause, n->cause_peer[0] ? n->cause_peer : NULL, "live",
                     n->epoch, d, "%s done: node %s took over in %" PRId64 " ms", n->cause,
                     n->cfg.node_id, d);
    parent_notify(n, "READY=1\nSTATUS=live");
    if (n->ctl_wait && (strcmp(n->ctl_cmd, "failover") == 0 || strcmp(n->ctl_cmd, "failback") == 0))
        ctl_finish(n, 0, "%s is live (epoch %" PRIu64 ")", n->cfg.node_id, n->epoch);
    n->t_start_ms = 0;
    n->t_peer_lost_ms = 0;
    n->cause_peer[0] = 0;
}

static void activate(struct node *n)
{
    char err[1024];
    uint64_t e;
    n->writer_wait = false;
    int r = store_ha_raise_epoch(n->cfg.store, peers_max_epoch(n), &e, err, sizeof err);
    if (r < 0) {
        log_err("cannot raise the store epoch: %s; staying backup", err);
        release_live(n);
        n->rewait_at_ms = now_ms() + 1000;
        return;
    }
    n->epoch = e;
    n->role = SUP_ROLE_LIVE;
    n->serving = false;
    if (!n->cause[0])
        snprintf(n->cause, sizeof n->cause, "start");
    int64_t d = n->t_start_ms ? (int64_t)(now_ms() - n->t_start_ms) : -1;
    sup_event_ha(LOG_NOTICE, "promote", n->cause_peer[0] ? n->cause_peer : NULL, "live", e, d,
                 "node %s goes live (%s): live.lock held, writer.lock free, epoch raised to %" PRIu64,
                 n->cfg.node_id, n->cause, e);
    set_hb_state(n);
    if (n->cfg.activation == CFG_ACTIVATION_EXEC) {
        pid_t pid = core_pid(n);
        if (n->core && n->kind == CORE_STANDBY && pid > 0 && !n->core_promoted &&
            sup_child_state(n->core) == SUP_CHILD_RUNNING && kill(pid, SIGUSR1) == 0) {
            n->core_promoted = true;
            n->core_ready = false;
            log_info("promoting the warm standby core (pid %d)", (int)pid);
        } else {
            core_want(n, CORE_LIVE);
        }
    } else if (sup_systemd_start(n->sd, err, sizeof err) < 0) {
        log_err("%s", err);
    }
    if (n->vip && sup_vip_add(n->vip, err, sizeof err) < 0)
        log_err("cannot add the VIP: %s", err);
}

static void on_lock_acquired(struct node *n)
{
    if (n->paused || n->stop) {
        release_live(n);
        return;
    }
    struct sup_hb_peer_info p;
    if (!n->ho_requested && n->cause[0] != 's' && better_backup(n, &p)) {
        log_info("live.lock is ours but backup %s has priority %d (ours %d): letting it take over",
                 p.node_id, p.priority, n->cfg.priority);
        release_live(n);
        n->rewait_at_ms = now_ms() + 3 * (uint64_t)n->cfg.heartbeat_interval_ms;
        return;
    }
    char err[1024];
    pid_t pid = 0;
    int r = store_ha_writer_held(n->cfg.store, &pid, err, sizeof err);
    if (r < 0)
        log_err("cannot probe writer.lock: %s", err);
    if (r != 0) {
        uint64_t t = now_ms();
        if (!n->writer_wait || t >= n->writer_log_at_ms) {
            sup_event_ha(LOG_WARNING, "writer-busy", NULL, role_name(n), n->epoch, -1,
                         "live.lock is ours but writer.lock is held by pid %d (a core whose "
                         "supervisor died still writes the store): staying %s until it exits",
                         (int)pid, role_name(n));
            n->writer_log_at_ms = t + WRITER_LOG_MS;
        }
        n->writer_wait = true;
        return;
    }
    activate(n);
}

static void on_wait_done(struct evloop *loop, int fd, uint32_t ev, void *ctx)
{
    struct node *n = ctx;
    uint64_t v;
    (void)loop, (void)ev;
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
        return;
    n->waiting = false;
    int r = atomic_load(&n->wait_result);
    if (r < 0) {
        log_err("waiting for live.lock failed: %s; retrying in 1 s", strerror(-r));
        n->rewait_at_ms = now_ms() + 1000;
        return;
    }
    n->live_held = true;
    uint64_t t = now_ms();
    if (!(n->t_peer_lost_ms && t - n->t_peer_lost_ms < 60000))
        n->t_peer_lost_ms = 0;
    n->t_start_ms = n->t_peer_lost_ms ? n->t_peer_lost_ms : t;
    if (!n->cause[0] || strcmp(n->cause, "start") == 0)
        snprintf(n->cause, sizeof n->cause, "failover");
    log_info("live.lock acquired%s", n->t_peer_lost_ms ? " (the live peer was lost)" : "");
    on_lock_acquired(n);
}

static void demote(struct node *n, const char *why)
{
    if (n->demoting || n->role != SUP_ROLE_LIVE)
        return;
    n->demoting = true;
    log_info("demoting: %s; stopping the core (it flushes every durable record first)", why);
    n->serving = false;
    sup_hb_set_state(n->hb, SUP_ROLE_LIVE, SUP_HEALTH_DOWN, n->epoch, 0);
    if (n->cfg.activation == CFG_ACTIVATION_EXEC) {
        if (n->core && sup_child_state(n->core) == SUP_CHILD_RUNNING)
            sup_child_stop(n->core);
        else
            core_want(n, CORE_NONE); /* nothing runs: finish below */
    } else {
        char err[512];
        if (sup_systemd_stop(n->sd, err, sizeof err) < 0)
            log_err("%s", err);
    }
}

/* The core is gone (reaped / stop job done): only now may live.lock go. */
static void finish_demote(struct node *n, const char *why)
{
    n->demoting = false;
    release_live(n);
    hold_off(n);
    n->cause[0] = 0;
    if (n->owe_ack) {
        sup_hb_ack_handover(n->hb, n->ack_peer, n->ack_seq, 0);
        n->owe_ack = false;
    }
    become_backup(n, why);
}

/*
 * A stopping live core closes writer.lock right after its final flush, ~30 ms
 * before its process is gone (the kernel waits an RCU grace period to tear its
 * libaio context down, and only then closes its files): during a demotion,
 * live.lock may go as soon as writer.lock is free. A core that never held the
 * lock is stopping anyway and writes nothing.
 */
static bool demote_flushed(struct node *n)
{
    if (!n->demoting || n->cfg.activation != CFG_ACTIVATION_EXEC || !n->core ||
        sup_child_state(n->core) != SUP_CHILD_STOPPING)
        return false;
    pid_t pid = 0;
    char err[512];
    return store_ha_writer_held(n->cfg.store, &pid, err, sizeof err) == 0;
}

static void on_core_exit(void *ctx, struct sup_child *c, const struct sup_child_exit *e)
{
    struct node *n = ctx;
    (void)c;
    bool was_live = n->kind == CORE_LIVE || n->core_promoted;
    n->core_ready = false;
    if (n->core_replace) /* we asked it to stop to run another kind */
        return;
    if (!was_live || n->stop)
        return; /* a standby: sup_child restarts it */
    n->serving = false;
    if (n->demoting) {
        finish_demote(n, "handed over");
        return;
    }
    if (e->code == HAMQ_EXIT_FENCED) {
        n->role = SUP_ROLE_FENCED;
        sup_event_ha(LOG_CRIT, "fenced", NULL, "fenced", n->epoch, -1,
                     "our core was fenced: a newer live raised the store epoch");
        release_live(n);
        hold_off(n);
        become_backup(n, "fenced by a newer epoch");
        return;
    }
    if (e->decision == SUP_CHILD_STOP) {
        snprintf(n->pause_why, sizeof n->pause_why, "the core cannot run: %s",
                 sup_exit_name(e->code));
        release_live(n);
        n->paused = true;
        become_backup(n, n->pause_why);
        return;
    }
    struct sup_hb_peer_info p;
    if (n->frozen_killed && find_peer(n, SUP_ROLE_BACKUP, &p)) {
        release_live(n);
        hold_off(n);
        become_backup(n, "our core froze and was killed: handing over to a healthy backup");
        return;
    }
    log_info("the live core exited (%s): restarting it here (we still hold live.lock)",
             e->why ? e->why : "?");
    n->t_start_ms = now_ms();
    snprintf(n->cause, sizeof n->cause, "restart");
    if (n->core_promoted) /* a promoted standby restarts as a live core */
        core_want(n, CORE_LIVE);
    n->frozen_killed = false;
}

/* ---- heartbeats ---------------------------------------------------------------- */

static void hb_peer_change(void *ctx, const struct sup_hb_peer_info *p, bool alive)
{
    struct node *n = ctx;
    if (!alive && p->role == SUP_ROLE_LIVE && n->role != SUP_ROLE_LIVE) {
        n->t_peer_lost_ms = now_ms();
        snprintf(n->cause, sizeof n->cause, "failover");
        snprintf(n->cause_peer, sizeof n->cause_peer, "%s", p->node_id);
    }
}

static void hb_handover_request(void *ctx, const char *peer, uint64_t seq)
{
    struct node *n = ctx;
    if (n->role != SUP_ROLE_LIVE || n->demoting) {
        sup_hb_ack_handover(n->hb, peer, seq, n->demoting ? 0 : -EINVAL);
        return;
    }
    n->owe_ack = true;
    snprintf(n->ack_peer, sizeof n->ack_peer, "%s", peer);
    n->ack_seq = seq;
    char why[128];
    snprintf(why, sizeof why, "peer %s asked for a handover", peer);
    demote(n, why);
}

static void hb_handover_result(void *ctx, const char *peer, uint64_t seq, int status)
{
    struct node *n = ctx;
    (void)seq;
    if (status == 0)
        return; /* the live released live.lock: our waiter takes it */
    n->ho_requested = false;
    log_warn("handover to us refused or timed out by %s: %s", peer, strerror(-status));
    ctl_finish(n, status, "the live node %s did not hand over: %s", peer, strerror(-status));
}

/* ---- control socket ------------------------------------------------------------ */

static void status_reply(struct node *n, struct sup_ctl_reply *r)
{
    char err[256];
    uint64_t e = n->epoch;
    store_ha_read_epoch(n->cfg.store, &e, err, sizeof err);
    static const char *const health[] = {"unknown", "ok", "degraded", "down"};
    sup_ctl_reply_kv(r, "node", "%s", n->cfg.node_id);
    sup_ctl_reply_kv(r, "role", "%s", role_name(n));
    sup_ctl_reply_kv(r, "preferred_role", "%s", n->cfg.role == CFG_ROLE_PRIMARY ? "primary" : "backup");
    sup_ctl_reply_kv(r, "priority", "%d", n->cfg.priority);
    sup_ctl_reply_kv(r, "epoch", "%" PRIu64, e);
    sup_ctl_reply_kv(r, "serving", "%s", n->serving ? "yes" : "no");
    sup_ctl_reply_kv(r, "core_health", "%s", health[core_health(n) & 3]);
    int64_t age = core_hb_age_ms(n, core_pid(n));
    if (age >= 0)
        sup_ctl_reply_kv(r, "core_heartbeat_age_ms", "%" PRId64, age);
    sup_ctl_reply_kv(r, "durable_lsn", "%" PRIu64,
                     n->lsn ? atomic_load_explicit(n->lsn, memory_order_relaxed) : 0);
    sup_ctl_reply_kv(r, "store", "%s", n->cfg.store);
    sup_ctl_reply_kv(r, "activation", "%s",
                     n->cfg.activation == CFG_ACTIVATION_EXEC ? "exec" : "systemd");
    sup_ctl_reply_kv(r, "vip", "%s", n->vip ? sup_vip_text(n->vip) : "");
    sup_ctl_reply_kv(r, "vip_owned", "%s", n->vip && sup_vip_owned(n->vip) ? "yes" : "no");
    if (n->paused)
        sup_ctl_reply_kv(r, "paused_why", "%s", n->pause_why);
    if (n->writer_wait)
        sup_ctl_reply_kv(r, "waiting_for", "writer.lock");
    else if (n->waiting)
        sup_ctl_reply_kv(r, "waiting_for", "live.lock");
    sup_ctl_reply_kv(r, "pid.supervisor", "%d", (int)getpid());
    sup_ctl_reply_kv(r, "pid.core", "%d", (int)core_pid(n));
    status_workers(n, r);
    sup_ctl_reply_kv(r, "core_kind", "%s",
                     n->kind == CORE_NONE        ? "none"
                     : n->core_promoted || n->kind == CORE_LIVE ? "live"
                                                               : "standby");
    int off = n->cfg.port_offset;
    sup_ctl_reply_kv(r, "port.all", "%d", n->cfg.port_all ? n->cfg.port_all + off : 0);
    sup_ctl_reply_kv(r, "port.stomp", "%d", n->cfg.port_stomp ? n->cfg.port_stomp + off : 0);
    sup_ctl_reply_kv(r, "port.amqp", "%d", n->cfg.port_amqp ? n->cfg.port_amqp + off : 0);
    int cnt = sup_hb_peer_count(n->hb);
    for (int i = 0; i < cnt; i++) {
        struct sup_hb_peer_info p;
        if (sup_hb_peer_at(n->hb, i, &p) < 0 || !p.node_id[0])
            continue;
        char k[SUP_HB_NODE_ID_MAX + 32];
        snprintf(k, sizeof k, "peer.%s.state", p.node_id);
        sup_ctl_reply_kv(r, k, "%s", p.alive ? "alive" : "lost");
        snprintf(k, sizeof k, "peer.%s.role", p.node_id);
        sup_ctl_reply_kv(r, k, "%s", sup_role_name(p.role));
        snprintf(k, sizeof k, "peer.%s.epoch", p.node_id);
        sup_ctl_reply_kv(r, k, "%" PRIu64, p.epoch);
        snprintf(k, sizeof k, "peer.%s.durable_lsn", p.node_id);
        sup_ctl_reply_kv(r, k, "%" PRIu64, p.durable_lsn);
        snprintf(k, sizeof k, "peer.%s.last_seen_ms", p.node_id);
        sup_ctl_reply_kv(r, k, "%" PRId64, p.last_seen_age_ms);
    }
}

static void ctl_defer(struct node *n, struct sup_ctl_reply *r, const char *cmd)
{
    n->ctl_id = sup_ctl_reply_defer(r);
    n->ctl_wait = true;
    n->ctl_t0_ms = now_ms();
    n->ctl_deadline_ms = n->ctl_t0_ms + CTL_TIMEOUT_MS;
    n->ctl_old_epoch = n->epoch;
    snprintf(n->ctl_cmd, sizeof n->ctl_cmd, "%s", cmd);
}

/* Backup side: ask the live to hand over to us (failover from here, failback). */
static int request_takeover(struct node *n, const char *cause, char *msg, size_t len)
{
    struct sup_hb_peer_info live;
    if (n->paused) {
        snprintf(msg, len, "this node is paused (hamq-supervisorctl resume first)");
        return -EINVAL;
    }
    if (!find_peer(n, SUP_ROLE_LIVE, &live)) {
        snprintf(msg, len, "no live peer is reachable to hand over to us");
        return -EHOSTUNREACH;
    }
    uint64_t seq;
    int r = sup_hb_request_handover(n->hb, live.node_id, HANDOVER_TIMEOUT_MS, &seq);
    if (r < 0) {
        snprintf(msg, len, "cannot send the handover request to %s: %s", live.node_id,
                 strerror(-r));
        return r;
    }
    n->ho_requested = true;
    snprintf(n->cause, sizeof n->cause, "%s", cause);
    snprintf(n->cause_peer, sizeof n->cause_peer, "%s", live.node_id);
    n->t_peer_lost_ms = 0;
    sup_event_ha(LOG_NOTICE, cause, live.node_id, role_name(n), n->epoch, -1,
                 "%s: asking live node %s to hand over to %s", cause, live.node_id,
                 n->cfg.node_id);
    return 0;
}

static void ctl_handler(void *ctx, const char *cmd, const char *args, struct sup_ctl_reply *r)
{
    struct node *n = ctx;
    char msg[256];
    (void)args;
    if (strcmp(cmd, "status") == 0) {
        status_reply(n, r);
        return;
    }
    if (n->ctl_wait) {
        sup_ctl_reply_error(r, "a %s is already in progress", n->ctl_cmd);
        return;
    }
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
        n->paused = cmd[0] == 'p';
        snprintf(n->pause_why, sizeof n->pause_why, "paused by an operator");
        if (n->role == SUP_ROLE_BACKUP || n->role == SUP_ROLE_PAUSED)
            n->role = n->paused ? SUP_ROLE_PAUSED : SUP_ROLE_BACKUP;
        if (!n->paused)
            start_waiting(n);
        sup_ctl_reply_kv(r, "result", "%s is %s", n->cfg.node_id,
                         n->paused ? "paused: it will not take over"
                                   : "resumed: it takes over when the live goes");
        set_hb_state(n);
        return;
    }
    bool failback = strcmp(cmd, "failback") == 0;
    if (failback && (n->cfg.role != CFG_ROLE_PRIMARY)) {
        sup_ctl_reply_error(r, "failback makes sense on the primary node only; %s is a backup "
                               "by configuration ([ha] role)", n->cfg.node_id);
        return;
    }
    if (n->role == SUP_ROLE_LIVE) {
        if (failback) {
            sup_ctl_reply_error(r, "%s is already live: nothing to fail back", n->cfg.node_id);
            return;
        }
        if (!find_peer(n, SUP_ROLE_BACKUP, NULL)) {
            sup_ctl_reply_error(r, "no healthy backup peer is reachable: refusing to stop the "
                                   "only live node");
            return;
        }
        ctl_defer(n, r, cmd);
        demote(n, "failover requested by an operator");
        return;
    }
    if (n->role != SUP_ROLE_BACKUP) {
        sup_ctl_reply_error(r, "%s makes no sense while this node is %s", cmd, role_name(n));
        return;
    }
    int rc = request_takeover(n, failback ? "failback" : "failover", msg, sizeof msg);
    if (rc < 0) {
        sup_ctl_reply_error(r, "%s", msg);
        return;
    }
    ctl_defer(n, r, cmd);
}

static void on_ctl(struct evloop *loop, int fd, uint32_t ev, void *ctx)
{
    struct node *n = ctx;
    (void)loop, (void)fd, (void)ev;
    sup_ctl_server_on_readable(n->ctl);
}

/* ---- notify socket (READY=1 from our core and its workers) -------------------- */

static void on_notify(struct evloop *loop, int fd, uint32_t ev, void *ctx)
{
    struct node *n = ctx;
    (void)loop, (void)ev;
    for (int i = 0; i < 64; i++) {
        char buf[1024];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(struct ucred))];
        } cm;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm,
                           .msg_controllen = sizeof cm};
        ssize_t k = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (k < 0)
            return;
        buf[k] = 0;
        pid_t pid = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                struct ucred uc;
                memcpy(&uc, CMSG_DATA(c), sizeof uc);
                pid = uc.pid;
            }
        if (!strstr(buf, "READY=1"))
            continue;
        if (pid && pid == core_pid(n)) {
            n->core_ready = true;
            if (n->kind == CORE_STANDBY && !n->core_promoted && n->role != SUP_ROLE_LIVE) {
                sup_event_ha(LOG_NOTICE, "backup-ready", NULL, role_name(n), n->epoch, -1,
                             "node %s is a warm backup: its standby core follows the store",
                             n->cfg.node_id);
                n->failback_next_ms = now_ms() + 1000;
            }
        } else if (n->role == SUP_ROLE_LIVE && !n->demoting && core_pid(n)) {
            on_serving(n); /* a worker of our live core listens */
        }
    }
}

static int notify_open(struct node *n, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(n->notify_path) >= sizeof a.sun_path) {
        snprintf(err, errlen, "%s: path too long for a unix socket", n->notify_path);
        return -ENAMETOOLONG;
    }
    memcpy(a.sun_path, n->notify_path, strlen(n->notify_path) + 1);
    unlink(n->notify_path);
    n->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (n->notify_fd < 0 || bind(n->notify_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        setsockopt(n->notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
        snprintf(err, errlen, "%s: cannot create the notify socket: %s", n->notify_path,
                 strerror(errno));
        return -errno;
    }
    const char *p = getenv("NOTIFY_SOCKET");
    if (p)
        snprintf(n->parent_notify, sizeof n->parent_notify, "%s", p);
    const char *wd = getenv("WATCHDOG_USEC");
    if (wd && p)
        n->watchdog_ms = strtoull(wd, NULL, 10) / 2000u;
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    setenv("NOTIFY_SOCKET", n->notify_path, 1); /* for our children */
    return 0;
}

/* ---- periodic work ---------------------------------------------------------------- */

static void check_frozen(struct node *n)
{
    if (n->role != SUP_ROLE_LIVE || n->demoting || n->frozen_killed || !n->core ||
        n->cfg.activation != CFG_ACTIVATION_EXEC)
        return;
    pid_t pid = core_pid(n);
    int64_t age = core_hb_age_ms(n, pid);
    if (age < 0 || age <= n->o.frozen_timeout_ms)
        return;
    sup_event_ha(LOG_ERR, "core-frozen", NULL, "live", n->epoch, age,
                 "the core (pid %d) is alive but its heartbeat is %" PRId64
                 " ms old (limit %d ms): killing it before anything else",
                 (int)pid, age, n->o.frozen_timeout_ms);
    n->frozen_killed = true;
    int r = sup_child_kill_frozen(n->core, FROZEN_KILL_WAIT_MS);
    if (r < 0)
        log_err("the frozen core (pid %d) is NOT confirmed dead (%s): keeping live.lock",
                (int)pid, strerror(-r));
}

static void copy_peer_lsn(struct node *n)
{
    struct sup_hb_peer_info live;
    if (n->role == SUP_ROLE_LIVE || !n->lsn || !find_peer(n, SUP_ROLE_LIVE, &live))
        return;
    if (live.durable_lsn > atomic_load_explicit(n->lsn, memory_order_relaxed))
        atomic_store_explicit(n->lsn, live.durable_lsn, memory_order_relaxed);
}

static void on_tick(struct evloop *loop, void *ctx)
{
    struct node *n = ctx;
    uint64_t t = now_ms();
    (void)loop;
    check_frozen(n);
    copy_peer_lsn(n);
    if (n->writer_wait && n->live_held)
        on_lock_acquired(n);
    if (demote_flushed(n))
        finish_demote(n, "handed over: the core flushed and released writer.lock");
    if (n->sd_retry_at_ms && t >= n->sd_retry_at_ms) {
        n->sd_retry_at_ms = 0;
        char err[512];
        if (n->role == SUP_ROLE_LIVE && !n->demoting && !n->stop &&
            sup_systemd_start(n->sd, err, sizeof err) < 0)
            log_err("%s", err);
    }
    struct sup_hb_peer_info lp;
    if (n->rewait_at_ms && n->holdoff_epoch && find_peer(n, SUP_ROLE_LIVE, &lp) &&
        lp.epoch > n->holdoff_epoch)
        n->rewait_at_ms = t; /* the peer took over: queue behind it */
    if (n->rewait_at_ms && t >= n->rewait_at_ms) {
        n->holdoff_epoch = 0;
        start_waiting(n);
    }
    if (n->waiting && !find_peer(n, SUP_ROLE_LIVE, NULL) && sup_hb_peer_count(n->hb) > 0 &&
        t >= n->silent_log_at_ms) {
        log_notice("staying %s: no live peer is heard, but live.lock is still held by "
                   "another process (a live whose heartbeats do not reach us)",
                   role_name(n));
        n->silent_log_at_ms = t + SILENT_LOG_MS;
    }
    if (n->cfg.allow_failback && n->cfg.role == CFG_ROLE_PRIMARY && n->role == SUP_ROLE_BACKUP &&
        n->core_ready && !n->ho_requested && !n->paused && n->failback_next_ms &&
        t >= n->failback_next_ms && find_peer(n, SUP_ROLE_LIVE, NULL)) {
        char msg[256];
        n->failback_next_ms = t + FAILBACK_RETRY_MS;
        if (request_takeover(n, "failback", msg, sizeof msg) < 0)
            log_warn("failback: %s", msg);
    }
    if (n->ctl_wait && strcmp(n->ctl_cmd, "failover") == 0 && n->role != SUP_ROLE_LIVE &&
        !n->ho_requested) {
        struct sup_hb_peer_info p;
        if (find_peer(n, SUP_ROLE_LIVE, &p) && p.epoch > n->ctl_old_epoch)
            ctl_finish(n, 0, "%s is live (epoch %" PRIu64 ")", p.node_id, p.epoch);
    }
    if (n->ctl_wait && t >= n->ctl_deadline_ms)
        ctl_finish(n, -ETIMEDOUT, "%s did not complete within %d s", n->ctl_cmd,
                   CTL_TIMEOUT_MS / 1000);
    if (n->watchdog_ms && t >= n->watchdog_at_ms) {
        parent_notify(n, "WATCHDOG=1");
        n->watchdog_at_ms = t + n->watchdog_ms;
    }
    refresh_sd_core_pid(n);
    notify_status(n);
    set_hb_state(n);
}

/* ---- loop wiring ---------------------------------------------------------------- */

static void on_hb(struct evloop *loop, int fd, uint32_t ev, void *ctx)
{
    struct node *n = ctx;
    (void)loop, (void)fd, (void)ev;
    sup_hb_on_readable(n->hb);
}

static void on_sd(struct evloop *loop, int fd, uint32_t ev, void *ctx)
{
    struct node *n = ctx;
    (void)loop, (void)fd, (void)ev;
    sup_systemd_on_readable(n->sd);
}

static void on_link(struct evloop *loop, int fd, uint32_t ev, void *ctx)
{
    struct node *n = ctx;
    (void)loop, (void)fd, (void)ev;
    sup_link_on_readable(n->link);
}

static void link_changed(void *ctx, const char *ifname, bool up, const char *why)
{
    struct node *n = ctx;
    if (up || n->role != SUP_ROLE_LIVE)
        return;
    if (find_peer(n, SUP_ROLE_BACKUP, NULL)) {
        char msg[160];
        snprintf(msg, sizeof msg, "the VIP interface %s is down (%s)", ifname, why);
        demote(n, msg);
    } else {
        log_warn("the VIP interface %s is down (%s) but no backup is reachable: staying live",
                 ifname, why);
    }
}

static void sd_done(void *ctx, bool start, bool ok, const char *result)
{
    struct node *n = ctx;
    if (start && ok && n->role == SUP_ROLE_LIVE)
        on_serving(n);
    else if (start && !ok && n->role == SUP_ROLE_LIVE && !n->demoting && !n->stop) {
        /* e.g. a unit that failed once (systemd restarts it by itself): while
           we hold the store, ask for the whole target again */
        log_err("starting hamq.target failed (%s); starting it again in %d ms", result,
                SD_RETRY_MS);
        n->sd_retry_at_ms = now_ms() + SD_RETRY_MS;
    } else if (start && !ok) {
        log_err("starting hamq.target failed (%s)", result);
    }
    else if (!start && n->demoting)
        finish_demote(n, "handed over");
}

static void on_term(void *ctx, int signo)
{
    struct node *n = ctx;
    log_info("stopping on signal %d", signo);
    n->stop = true;
}

static int module_timeouts(struct node *n)
{
    int t = n->writer_wait || n->demoting ? WRITER_POLL_MS : TICK_MS, x;
    if ((x = sup_hb_next_timeout_ms(n->hb)) >= 0 && x < t)
        t = x;
    if (n->core && (x = sup_child_next_timeout_ms(n->core)) >= 0 && x < t)
        t = x;
    if (n->vip && (x = sup_vip_next_timeout_ms(n->vip)) >= 0 && x < t)
        t = x;
    return t;
}

static void module_timers(struct node *n)
{
    if (sup_hb_next_timeout_ms(n->hb) == 0)
        sup_hb_on_timer(n->hb);
    if (n->core && sup_child_next_timeout_ms(n->core) == 0)
        sup_child_on_timer(n->core);
    if (n->vip && sup_vip_next_timeout_ms(n->vip) == 0)
        sup_vip_on_timer(n->vip);
}

static int setup_paths(struct node *n, char *err, size_t errlen)
{
    const char *rd = n->o.run_dir;
    if (mkdir(rd, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create the run directory: %s", rd, strerror(errno));
        return -errno;
    }
    if (sup_node_ctl_path(n->ctl_path, sizeof n->ctl_path, rd, n->cfg.node_id) < 0 ||
        snprintf(n->notify_path, sizeof n->notify_path, "%s/notify-%s.sock", rd,
                 n->cfg.node_id) >= (int)sizeof n->notify_path ||
        snprintf(n->lsn_path, sizeof n->lsn_path, "%s/%s.lsn", rd, n->cfg.node_id) >=
            (int)sizeof n->lsn_path) {
        snprintf(err, errlen, "%s: path too long", rd);
        return -ENAMETOOLONG;
    }
    char dir[4096];
    if (n->o.bin_dir)
        snprintf(dir, sizeof dir, "%s", n->o.bin_dir);
    else if (daemon_self_dir(dir, sizeof dir) < 0)
        snprintf(dir, sizeof dir, "/usr/sbin");
    snprintf(n->journal_bin, sizeof n->journal_bin, "%s/hamq-journal", dir);
    /* the build tree: supervisor/ and daemons/ are siblings */
    if (access(n->journal_bin, X_OK) < 0)
        snprintf(n->journal_bin, sizeof n->journal_bin, "%s/../daemons/hamq-journal", dir);
    if (n->cfg.activation == CFG_ACTIVATION_EXEC && access(n->journal_bin, X_OK) < 0) {
        snprintf(err, errlen, "cannot find hamq-journal next to hamq-supervisor (%.1000s): %s",
                 dir, strerror(errno));
        return -ENOENT;
    }
    return 0;
}

static int map_lsn(struct node *n, char *err, size_t errlen)
{
    int fd = open(n->lsn_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || ftruncate(fd, sizeof(uint64_t)) < 0) {
        snprintf(err, errlen, "%s: %s", n->lsn_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    void *p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", n->lsn_path, strerror(errno));
        return -ENOMEM;
    }
    n->lsn = p;
    atomic_store(n->lsn, 0);
    return 0;
}

static int setup(struct node *n, char *err, size_t errlen)
{
    int r = store_ha_prepare(n->cfg.store, err, errlen);
    if (r == 0)
        r = store_ha_lock_selftest(n->cfg.store, err, errlen);
    if (r < 0)
        return r == -ENOLCK ? -ENOLCK : -ENOENT;
    if (setup_paths(n, err, errlen) < 0 || map_lsn(n, err, errlen) < 0)
        return -EINVAL;
    n->live_fd = store_ha_live_open(n->cfg.store, err, errlen);
    if (n->live_fd < 0 || store_ha_read_epoch(n->cfg.store, &n->epoch, err, errlen) < 0)
        return -ENOENT;
    n->wait_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (n->wait_efd < 0 || notify_open(n, err, errlen) < 0)
        return -EIO;
    struct sup_hb_callbacks cb = {.ctx = n, .peer_change = hb_peer_change,
                                  .handover_request = hb_handover_request,
                                  .handover_result = hb_handover_result};
    if (sup_hb_new(&n->cfg, &cb, &n->hb, err, errlen) < 0)
        return -EINVAL;
    if (sup_ctl_server_new(n->ctl_path, ctl_handler, n, &n->ctl, err, errlen) < 0)
        return -EADDRINUSE;
    if (n->cfg.vip[0] &&
        (sup_vip_new(n->cfg.vip, n->cfg.vip_interface, SUP_VIP_GARP_COUNT,
                     SUP_VIP_GARP_INTERVAL_MS, &n->vip, err, errlen) < 0 ||
         sup_link_new(n->cfg.vip_interface, link_changed, n, &n->link, err, errlen) < 0))
        return -EINVAL;
    if (n->cfg.activation == CFG_ACTIVATION_SYSTEMD &&
        sup_systemd_new("hamq.target", sd_done, n, &n->sd, err, errlen) < 0)
        return -EHOSTDOWN;
    struct daemon_signals sig = {.on_term = on_term, .ctx = n};
    if (daemon_watch_signals(n->loop, &sig) < 0 ||
        evloop_add_fd(n->loop, sup_hb_fd(n->hb), EPOLLIN, on_hb, n, NULL) < 0 ||
        evloop_add_fd(n->loop, sup_ctl_server_fd(n->ctl), EPOLLIN, on_ctl, n, NULL) < 0 ||
        evloop_add_fd(n->loop, n->notify_fd, EPOLLIN, on_notify, n, NULL) < 0 ||
        evloop_add_fd(n->loop, n->wait_efd, EPOLLIN, on_wait_done, n, NULL) < 0 ||
        (n->link && evloop_add_fd(n->loop, sup_link_fd(n->link), EPOLLIN, on_link, n, NULL) < 0) ||
        (n->sd && evloop_add_fd(n->loop, sup_systemd_fd(n->sd), EPOLLIN, on_sd, n, NULL) < 0) ||
        evloop_add_timer(n->loop, TICK_MS, TICK_MS, on_tick, n, NULL) < 0) {
        snprintf(err, errlen, "event loop setup failed: %s", strerror(errno));
        return -EIO;
    }
    return 0;
}

static int exit_code_of(int r)
{
    switch (r) {
    case -ENOLCK: case -ENOENT: return HAMQ_EXIT_NO_STORE;
    case -EHOSTDOWN: case -EIO: return HAMQ_EXIT_INTERNAL;
    default: return HAMQ_EXIT_CONFIG;
    }
}

static void shutdown_node(struct node *n)
{
    /* a live stops its core before it lets go of live.lock */
    if (n->core && sup_child_state(n->core) == SUP_CHILD_RUNNING) {
        sup_child_stop(n->core);
        for (int i = 0; i < 400 && n->core && sup_child_state(n->core) == SUP_CHILD_STOPPING; i++) {
            evloop_run_once(n->loop, 25);
            module_timers(n);
        }
    }
    if (n->vip && sup_vip_owned(n->vip)) {
        char err[256];
        sup_vip_remove(n->vip, err, sizeof err);
    }
    if (n->sd && n->role == SUP_ROLE_LIVE) {
        char err[256];
        sup_systemd_stop(n->sd, err, sizeof err);
    }
    release_live(n);
}

int sup_node_run(const struct hamq_config *cfg, const struct sup_node_opts *o)
{
    static struct node node;
    struct node *n = &node;
    char err[2048] = "";
    n->cfg = *cfg;
    n->o = *o;
    n->live_fd = n->wait_efd = n->notify_fd = -1;
    n->role = SUP_ROLE_STARTING;
    if (n->o.frozen_timeout_ms <= 0)
        n->o.frozen_timeout_ms = cfg->heartbeat_timeout_ms;
    if (evloop_new(&n->loop) < 0) {
        log_err("out of memory");
        return HAMQ_EXIT_INTERNAL;
    }
    int r = setup(n, err, sizeof err);
    if (r < 0) {
        log_err("%s", err);
        return exit_code_of(r);
    }
    sup_event_ha(LOG_NOTICE, "start", NULL, "starting", n->epoch, -1,
                 "hamq-supervisor node %s (%s, priority %d) on store %s, epoch %" PRIu64
                 ", control socket %s",
                 n->cfg.node_id, n->cfg.role == CFG_ROLE_PRIMARY ? "primary" : "backup",
                 n->cfg.priority, n->cfg.store, n->epoch, n->ctl_path);
    if (n->cfg.role == CFG_ROLE_PRIMARY && store_ha_live_try(n->live_fd) == 0) {
        n->live_held = true;
        snprintf(n->cause, sizeof n->cause, "start");
        n->t_start_ms = now_ms();
        on_lock_acquired(n);
        if (n->role != SUP_ROLE_LIVE && n->live_held && !n->writer_wait)
            release_live(n);
    }
    if (n->role != SUP_ROLE_LIVE && !n->writer_wait)
        become_backup(n, "another node is live");
    parent_notify(n, "READY=1");
    while (!n->stop) {
        if (n->writer_wait && n->live_held)
            on_lock_acquired(n);
        core_apply(n);
        evloop_run_once(n->loop, module_timeouts(n));
        module_timers(n);
    }
    shutdown_node(n);
    return HAMQ_EXIT_OK;
}
