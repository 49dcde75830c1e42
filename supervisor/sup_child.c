/*
 * sup_child — spawn, watch (pidfd), reap and restart the broker processes.
 * See sup_child.h for the contract and the invariants.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hamq/daemon.h"
#include "hamq/log.h"
#include "sup_child.h"
#include "sup_event.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define ARGV_MAX 64

extern char **environ;

struct sup_child {
    char name[64];
    char **argv;
    struct sup_child_policy pol;
    sup_child_exit_fn on_exit;
    void *ctx;
    int epfd;
    int pidfd;
    pid_t pid;
    enum sup_child_state state;
    bool stop_requested;
    bool killed;
    int64_t started_at;
    int64_t deadline; /* STOPPING: SIGKILL at; BACKOFF: restart at */
    int fast_failures;
    int restarts;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *sup_exit_name(int code)
{
    switch (code) {
    case HAMQ_EXIT_OK:
        return "OK";
    case HAMQ_EXIT_INTERNAL:
        return "INTERNAL";
    case HAMQ_EXIT_CONFIG:
        return "CONFIG";
    case HAMQ_EXIT_FENCED:
        return "FENCED";
    case HAMQ_EXIT_STORE_CORRUPT:
        return "STORE_CORRUPT";
    case HAMQ_EXIT_LOCK_LOST:
        return "LOCK_LOST";
    case HAMQ_EXIT_IO:
        return "IO";
    case HAMQ_EXIT_PEER_GONE:
        return "PEER_GONE";
    case HAMQ_EXIT_NO_STORE:
        return "NO_STORE";
    default:
        return "unknown";
    }
}

enum sup_child_decision sup_child_decide(int code, int signo, bool stop_requested, const char **why)
{
    if (stop_requested) {
        *why = "stopped on request";
        return SUP_CHILD_STOP;
    }
    if (signo) {
        *why = "killed by a signal: restarting with backoff";
        return SUP_CHILD_RESTART;
    }
    switch (code) {
    case HAMQ_EXIT_OK:
        *why = "exited cleanly (OK): not restarting";
        return SUP_CHILD_STOP;
    case HAMQ_EXIT_CONFIG:
        *why = "bad configuration (CONFIG): not restarting, fix the configuration";
        return SUP_CHILD_STOP;
    case HAMQ_EXIT_FENCED:
        *why = "fenced by a newer epoch (FENCED): not restarting, another node is live";
        return SUP_CHILD_STOP;
    case HAMQ_EXIT_STORE_CORRUPT:
        *why = "store corrupt (STORE_CORRUPT): not restarting, repair the store";
        return SUP_CHILD_STOP;
    case HAMQ_EXIT_NO_STORE:
        *why = "store missing or unusable (NO_STORE): not restarting";
        return SUP_CHILD_STOP;
    case HAMQ_EXIT_LOCK_LOST:
        *why = "lost the writer lock (LOCK_LOST): restarting with backoff";
        return SUP_CHILD_RESTART;
    case HAMQ_EXIT_IO:
        *why = "store I/O error (IO): restarting with backoff";
        return SUP_CHILD_RESTART;
    case HAMQ_EXIT_PEER_GONE:
        *why = "lost its peer process (PEER_GONE): restarting with backoff";
        return SUP_CHILD_RESTART;
    case HAMQ_EXIT_INTERNAL:
        *why = "internal error (INTERNAL): restarting with backoff";
        return SUP_CHILD_RESTART;
    default:
        *why = "unknown exit code: restarting with backoff";
        return SUP_CHILD_RESTART;
    }
}

int sup_child_new(const char *name, char *const argv[], const struct sup_child_policy *policy,
                  sup_child_exit_fn on_exit, void *ctx, struct sup_child **out)
{
    int argc = 0;
    while (argv && argv[argc])
        argc++;
    if (argc == 0 || argc >= ARGV_MAX || !name || !name[0])
        return -EINVAL;
    struct sup_child *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->argv = calloc((size_t)argc + 1, sizeof *c->argv);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->pidfd = -1;
    for (int i = 0; c->argv && i < argc; i++)
        if (!(c->argv[i] = strdup(argv[i])))
            break;
    if (!c->argv || !c->argv[argc - 1] || c->epfd < 0) {
        sup_child_free(c);
        return -ENOMEM;
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    c->pol = (struct sup_child_policy){100, 10000, 10000, 5000};
    if (policy)
        c->pol = *policy;
    c->on_exit = on_exit;
    c->ctx = ctx;
    *out = c;
    return 0;
}

int sup_child_start(struct sup_child *c)
{
    if (c->state == SUP_CHILD_RUNNING || c->state == SUP_CHILD_STOPPING)
        return -EALREADY;
    pid_t pid = 0;
    int r = daemon_spawn(c->argv, &pid); /* posix_spawnp: safe beside libzmq's thread */
    if (r < 0) {
        sup_event(LOG_ERR, "child-exit", NULL, "cannot start %s (%s): %s: not restarting", c->name,
                  c->argv[0], strerror(-r));
        c->state = SUP_CHILD_FAILED;
        return r;
    }
    /* Not reaped yet, so the pid cannot have been reused: pidfd_open is race-free. */
    int pidfd = pidfd_open(pid, 0);
    if (pidfd < 0) {
        r = -errno;
        kill(pid, SIGKILL); /* cannot watch it: do not leave it running unwatched */
        waitpid(pid, NULL, 0);
        log_err("cannot watch %s (pid %d): pidfd_open: %s", c->name, (int)pid, strerror(-r));
        c->state = SUP_CHILD_FAILED;
        return r;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(c->epfd, EPOLL_CTL_ADD, pidfd, &ev);
    c->pidfd = pidfd;
    c->pid = pid;
    c->state = SUP_CHILD_RUNNING;
    c->stop_requested = false;
    c->killed = false;
    c->started_at = now_ms();
    sup_event(LOG_INFO, "child-start", NULL, "started %s (pid %d)", c->name, (int)pid);
    return 0;
}

int sup_child_stop(struct sup_child *c)
{
    if (c->state == SUP_CHILD_BACKOFF || c->state == SUP_CHILD_FAILED) {
        c->state = SUP_CHILD_IDLE;
        return 0;
    }
    if (c->state != SUP_CHILD_RUNNING)
        return 0;
    c->stop_requested = true;
    c->state = SUP_CHILD_STOPPING;
    c->deadline = now_ms() + c->pol.term_timeout_ms;
    if (pidfd_send_signal(c->pidfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH)
        return -errno;
    return 0;
}

static int backoff_delay(struct sup_child *c, long ran_ms)
{
    if (ran_ms >= c->pol.stable_ms)
        c->fast_failures = 0;
    int64_t d = c->pol.backoff_min_ms;
    for (int i = 0; i < c->fast_failures && d < c->pol.backoff_max_ms; i++)
        d *= 2;
    c->fast_failures++;
    return (int)(d > c->pol.backoff_max_ms ? c->pol.backoff_max_ms : d);
}

static void report_exit(struct sup_child *c, const siginfo_t *si)
{
    struct sup_child_exit e = {.code = -1};
    if (si->si_code == CLD_EXITED)
        e.code = si->si_status;
    else
        e.signo = si->si_status;
    e.ran_ms = (long)(now_ms() - c->started_at);
    e.decision = sup_child_decide(e.code, e.signo, c->stop_requested, &e.why);
    if (e.decision == SUP_CHILD_RESTART) {
        e.restart_in_ms = backoff_delay(c, e.ran_ms);
        c->state = SUP_CHILD_BACKOFF;
        c->deadline = now_ms() + e.restart_in_ms;
    } else {
        c->state = c->stop_requested ? SUP_CHILD_IDLE : SUP_CHILD_FAILED;
    }
    char how[64];
    if (e.signo)
        snprintf(how, sizeof how, "killed by signal %d (%s)", e.signo, strsignal(e.signo));
    else
        snprintf(how, sizeof how, "exited with %d (%s)", e.code, sup_exit_name(e.code));
    int prio =
        (e.decision == SUP_CHILD_STOP && !c->stop_requested && e.code != 0) ? LOG_ERR : LOG_NOTICE;
    if (e.decision == SUP_CHILD_RESTART)
        sup_event(prio, "child-exit", NULL, "%s (pid %d) %s after %ld ms: %s, in %d ms", c->name,
                  (int)c->pid, how, e.ran_ms, e.why, e.restart_in_ms);
    else
        sup_event(prio, "child-exit", NULL, "%s (pid %d) %s after %ld ms: %s", c->name, (int)c->pid,
                  how, e.ran_ms, e.why);
    if (c->on_exit)
        c->on_exit(c->ctx, c, &e);
}

int sup_child_on_readable(struct sup_child *c)
{
    struct epoll_event ev;
    if (c->pidfd < 0 || epoll_wait(c->epfd, &ev, 1, 0) <= 0)
        return 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG) < 0)
        return -errno;
    if (si.si_pid == 0)
        return 0; /* spurious: not exited yet */
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
    close(c->pidfd);
    c->pidfd = -1;
    report_exit(c, &si);
    c->pid = 0;
    return 0;
}

int sup_child_on_timer(struct sup_child *c)
{
    int64_t now = now_ms();
    if (c->state == SUP_CHILD_STOPPING && now >= c->deadline && !c->killed) {
        log_warn("%s (pid %d) did not stop within %d ms of SIGTERM: sending SIGKILL", c->name,
                 (int)c->pid, c->pol.term_timeout_ms);
        c->killed = true;
        if (pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
            return -errno;
    } else if (c->state == SUP_CHILD_BACKOFF && now >= c->deadline) {
        c->restarts++;
        int r = sup_child_start(c);
        if (r < 0)
            return r;
    }
    return 0;
}

int sup_child_next_timeout_ms(const struct sup_child *c)
{
    bool timer = (c->state == SUP_CHILD_STOPPING && !c->killed) || c->state == SUP_CHILD_BACKOFF;
    if (!timer)
        return -1;
    int64_t d = c->deadline - now_ms();
    return d < 0 ? 0 : (int)d;
}

int sup_kill_frozen_pidfd(int pidfd, int timeout_ms)
{
    if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return -errno; /* ESRCH: it has already exited; poll confirms below */
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - now_ms();
        int r = poll(&pfd, 1, left < 0 ? 0 : (int)left);
        if (r > 0 && (pfd.revents & POLLIN))
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r == 0 || left <= 0)
            return -ETIMEDOUT;
    }
}

int sup_kill_frozen(pid_t pid, int timeout_ms)
{
    int fd = pidfd_open(pid, 0);
    if (fd < 0)
        return -errno;
    int r = sup_kill_frozen_pidfd(fd, timeout_ms);
    close(fd);
    return r;
}

int sup_child_kill_frozen(struct sup_child *c, int timeout_ms)
{
    if (c->pidfd < 0)
        return -ESRCH;
    c->stop_requested = false; /* a kill for freezing is a failure, not a requested stop */
    int r = sup_kill_frozen_pidfd(c->pidfd, timeout_ms);
    if (r == 0)
        sup_event(LOG_WARNING, "child-frozen-kill", NULL,
                  "%s (pid %d) killed as frozen; death confirmed", c->name, (int)c->pid);
    else
        sup_event(LOG_ERR, "child-frozen-kill", NULL,
                  "%s (pid %d) SIGKILLed as frozen but not dead after %d ms: %s", c->name,
                  (int)c->pid, timeout_ms, strerror(-r));
    return r;
}

void sup_child_free(struct sup_child *c)
{
    if (!c)
        return;
    if (c->pidfd >= 0) {
        pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
        close(c->pidfd);
    }
    if (c->epfd >= 0)
        close(c->epfd);
    for (int i = 0; c->argv && c->argv[i]; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c);
}

int sup_child_fd(const struct sup_child *c)
{
    return c->epfd;
}
enum sup_child_state sup_child_state(const struct sup_child *c)
{
    return c->state;
}
pid_t sup_child_pid(const struct sup_child *c)
{
    return c->pid;
}
int sup_child_restarts(const struct sup_child *c)
{
    return c->restarts;
}
const char *sup_child_name(const struct sup_child *c)
{
    return c->name;
}
