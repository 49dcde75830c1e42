/*
 * daemon — what every hamq daemon does the same way at start and stop:
 * load the config file (explicit path must exist; the default path may be
 * absent), turn SIGTERM/SIGINT/SIGCHLD into loop events through a signalfd,
 * and talk to systemd (READY=1, STATUS=, WATCHDOG=1) when run by it.
 */
#ifndef HAMQ_DAEMON_H
#define HAMQ_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

#include "hamq/config.h"
#include "hamq/evloop.h"

/*
 * Defaults, then the file: `path` if given (it must exist), otherwise
 * HAMQ_CONFIG_DEFAULT_PATH if it exists. Logs the error itself; returns
 * 0 or -errno.
 */
int daemon_load_config(struct hamq_config *cfg, const char *path);

struct daemon_signals {
    void (*on_term)(void *ctx, int signo); /* SIGTERM, SIGINT */
    void (*on_child)(void *ctx);           /* SIGCHLD */
    void (*on_hup)(void *ctx);             /* SIGHUP */
    void *ctx;
};
/* Blocks the signals and watches them with a signalfd in the loop. Ignores SIGPIPE. */
int daemon_watch_signals(struct evloop *loop, const struct daemon_signals *s);
/*
 * Starts argv[0] (a path, or a name looked up in PATH) as a child whose signals
 * are all at their default action and unblocked, whatever this process set.
 * posix_spawn, not fork: no copy of a large heap's page tables (a core holding
 * a million messages), and safe in a process with threads (the supervisor has
 * libzmq's). An exec failure is returned here. 0 or -errno.
 */
int daemon_spawn(char *const argv[], pid_t *pid);

/* sd_notify wrappers: no-ops without NOTIFY_SOCKET. */
void daemon_notify_ready(const char *status);
void daemon_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void daemon_notify_stopping(void);
/* Arms a WATCHDOG=1 timer at half of WATCHDOG_USEC when systemd asked for one. */
int daemon_watchdog(struct evloop *loop);

/* The directory of the running binary (to find sibling binaries). */
int daemon_self_dir(char *buf, size_t len);

#endif
