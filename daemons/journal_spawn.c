/*
 * journal_spawn — `hamq-journal --spawn-workers N`: the core starts its N
 * workers itself (hamq-worker from the same directory as hamq-journal), so one
 * command runs a whole broker without systemd. A worker that dies is started
 * again after a backoff (100 ms doubling to 5 s, reset after 10 s of uptime);
 * one that exits with HAMQ_EXIT_CONFIG (e.g. its port is taken) stops the
 * broker, since every worker shares that configuration.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hamq/daemon.h"
#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "journal.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 10000

static struct ev_watch *restart_timer;

static int spawn_one(struct journald *j, uint32_t i)
{
    char idx[16], off[16];
    const char *argv[16];
    int n = 0;
    pid_t pid;

    snprintf(idx, sizeof(idx), "%u", i);
    snprintf(off, sizeof(off), "%d", j->cfg.port_offset);
    argv[n++] = j->worker_bin;
    argv[n++] = "--index";
    argv[n++] = idx;
    argv[n++] = "--instance";
    argv[n++] = j->cfg.instance;
    argv[n++] = "--port-offset";
    argv[n++] = off;
    argv[n++] = "--log-level";
    argv[n++] = j->cfg.log_level;
    if (j->config_path) {
        argv[n++] = "--config";
        argv[n++] = j->config_path;
    }
    argv[n] = NULL;
    int r = daemon_spawn((char *const *)argv, &pid); /* posix_spawn: see daemon.h */
    if (r < 0) {
        log_err("cannot run %s: %s", j->worker_bin, strerror(-r));
        return r;
    }
    j->slots[i].pid = pid;
    j->slots[i].started_ms = evloop_now_ms();
    j->slots[i].restart_at_ms = 0;
    log_debug("started worker %u (pid %d)", i, (int)pid);
    return 0;
}

int jd_spawn_start(struct journald *j)
{
    char dir[3072];
    int r = daemon_self_dir(dir, sizeof(dir));

    if (r < 0)
        return r;
    snprintf(j->worker_bin, sizeof(j->worker_bin), "%s/hamq-worker", dir);
    if (access(j->worker_bin, X_OK) < 0) {
        log_err("cannot spawn workers: %s: %s", j->worker_bin, strerror(errno));
        return -errno;
    }
    for (uint32_t i = 0; i < j->spawn; i++) {
        j->slots[i].backoff_ms = BACKOFF_MIN_MS;
        if ((r = spawn_one(j, i)) < 0) {
            log_err("cannot start worker %u: %s", i, strerror(-r));
            return r;
        }
    }
    return 0;
}

static void on_restart_timer(struct evloop *loop, void *ctx)
{
    struct journald *j = ctx;
    uint64_t now = evloop_now_ms(), next = 0;

    for (uint32_t i = 0; i < j->spawn; i++) {
        struct jd_slot *s = &j->slots[i];
        if (!s->restart_at_ms || j->stopping)
            continue;
        if (s->restart_at_ms <= now) {
            int r = spawn_one(j, i);
            if (r < 0) {
                log_err("cannot restart worker %u: %s", i, strerror(-r));
                s->restart_at_ms = now + s->backoff_ms;
            }
        }
        if (s->restart_at_ms && (!next || s->restart_at_ms < next))
            next = s->restart_at_ms;
    }
    evloop_del(loop, restart_timer);
    restart_timer = NULL;
    if (next)
        evloop_add_timer(loop, next - now, 0, on_restart_timer, j, &restart_timer);
}

static void child_exited(struct journald *j, uint32_t i, int status)
{
    struct jd_slot *s = &j->slots[i];
    uint64_t now = evloop_now_ms();
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    char how[64];

    s->pid = 0;
    if (WIFSIGNALED(status))
        snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
    else
        snprintf(how, sizeof(how), "exited with status %d", code);
    if (j->stopping) {
        log_debug("worker %u %s", i, how);
        return;
    }
    if (code == HAMQ_EXIT_CONFIG) {
        log_err("worker %u %s (bad configuration); stopping the broker", i, how);
        jd_shutdown(j, HAMQ_EXIT_CONFIG, "a worker could not start");
        return;
    }
    if (now - s->started_ms > STABLE_MS)
        s->backoff_ms = BACKOFF_MIN_MS;
    s->restart_at_ms = now + s->backoff_ms;
    log_event(LOG_WARNING, "worker-restart", "worker %u %s; restarting it in %u ms", i, how,
              s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
    if (restart_timer)
        evloop_del(j->loop, restart_timer);
    restart_timer = NULL;
    on_restart_timer(j->loop, j);
}

void jd_spawn_reap(struct journald *j)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (uint32_t i = 0; i < j->spawn; i++)
            if (j->slots[i].pid == pid) {
                child_exited(j, i, status);
                break;
            }
    }
}

void jd_spawn_signal_stop(struct journald *j)
{
    for (uint32_t i = 0; i < j->spawn; i++)
        if (j->slots[i].pid > 0)
            kill(j->slots[i].pid, SIGTERM);
}

void jd_spawn_stop(struct journald *j)
{
    uint64_t deadline = evloop_now_ms() + 5000;
    bool any;

    jd_spawn_signal_stop(j); /* again: harmless, and a worker restarted meanwhile gets it */
    do {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        for (uint32_t i = 0; pid > 0 && i < j->spawn; i++)
            if (j->slots[i].pid == pid)
                j->slots[i].pid = 0;
        any = false;
        for (uint32_t i = 0; i < j->spawn; i++)
            any |= j->slots[i].pid > 0;
        if (any && pid <= 0)
            usleep(1000); /* a worker exits in a few ms: a stop (and a planned failover) waits */
    } while (any && evloop_now_ms() < deadline);
    for (uint32_t i = 0; i < j->spawn; i++)
        if (j->slots[i].pid > 0) {
            log_warn("worker %u (pid %d) did not stop within 5 s; killing it", i,
                     (int)j->slots[i].pid);
            kill(j->slots[i].pid, SIGKILL);
            waitpid(j->slots[i].pid, NULL, 0);
            j->slots[i].pid = 0;
        }
}
