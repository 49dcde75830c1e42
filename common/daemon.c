/* daemon — see include/hamq/daemon.h. */
#include "hamq/daemon.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "hamq/log.h"

int daemon_load_config(struct hamq_config *cfg, const char *path)
{
    char err[HAMQ_CONFIG_ERR_MAX];
    int r;

    config_defaults(cfg);
    r = config_load(cfg, path ? path : HAMQ_CONFIG_DEFAULT_PATH, err, sizeof(err));
    if (r == -ENOENT && !path)
        return 0; /* no config file: defaults and flags */
    if (r < 0) {
        log_err("configuration error: %s", err);
        return r;
    }
    return 0;
}

static sigset_t watched;
static struct daemon_signals sigs;

static void on_signalfd(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    struct signalfd_siginfo si;

    (void)loop;
    (void)events;
    (void)ctx;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && sigs.on_term)
            sigs.on_term(sigs.ctx, (int)si.ssi_signo);
        else if (si.ssi_signo == SIGCHLD && sigs.on_child)
            sigs.on_child(sigs.ctx);
        else if (si.ssi_signo == SIGHUP && sigs.on_hup)
            sigs.on_hup(sigs.ctx);
    }
}

int daemon_watch_signals(struct evloop *loop, const struct daemon_signals *s)
{
    int fd;

    sigs = *s;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&watched);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGINT);
    sigaddset(&watched, SIGCHLD);
    sigaddset(&watched, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &watched, NULL) < 0)
        return -errno;
    fd = signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    return evloop_add_fd(loop, fd, EPOLLIN, on_signalfd, NULL, NULL);
}

int daemon_spawn(char *const argv[], pid_t *pid)
{
    posix_spawnattr_t at;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    int r = posix_spawnattr_init(&at);
    if (r == 0)
        r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (r == 0)
        r = posix_spawnattr_setsigdefault(&at, &all);
    if (r == 0)
        r = posix_spawnattr_setsigmask(&at, &none);
    if (r == 0)
        r = posix_spawnp(pid, argv[0], NULL, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    return -r;
}

void daemon_notify_ready(const char *status)
{
    if (status)
        sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    else
        sd_notify(0, "READY=1");
}

void daemon_notify_status(const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (!getenv("NOTIFY_SOCKET"))
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", buf);
}

void daemon_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

static void on_watchdog(struct evloop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
    sd_notify(0, "WATCHDOG=1");
}

int daemon_watchdog(struct evloop *loop)
{
    uint64_t usec = 0;

    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    uint64_t ms = usec / 2000;
    return evloop_add_timer(loop, ms ? ms : 1, ms ? ms : 1, on_watchdog, NULL, NULL);
}

int daemon_self_dir(char *buf, size_t len)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

    if (n < 0)
        return -errno;
    path[n] = 0;
    if (snprintf(buf, len, "%s", dirname(path)) >= (int)len)
        return -ENAMETOOLONG;
    return 0;
}
