/*
 * sup_child — exec-mode activation: spawn the broker processes, watch them
 * with a pidfd, reap them, and decide "restart with backoff" or "stop" from
 * their exit status (include/hamq/exitcodes.h), logging why.
 *
 * Who calls it: hamq-supervisor's epoll loop, one struct sup_child per
 * process (hamq-journal, each worker). Each exposes ONE stable fd (an inner
 * epoll set holding the current pidfd, which changes at every restart): call
 * sup_child_on_readable() when it is readable and sup_child_on_timer() when
 * sup_child_next_timeout_ms() expires. Nothing blocks: a graceful stop is
 * SIGTERM now and SIGKILL from on_timer once term_timeout_ms has passed.
 *
 * Invariants: at most one live process per struct; a pid is only ever
 * signalled through its pidfd (no pid-reuse races); a process is reaped only
 * through waitid(P_PIDFD) on that pidfd.
 */
#ifndef HAMQ_SUP_CHILD_H
#define HAMQ_SUP_CHILD_H

#include <stdbool.h>
#include <sys/types.h>

#include "hamq/exitcodes.h"

enum sup_child_decision { SUP_CHILD_RESTART = 0, SUP_CHILD_STOP = 1 };

/*
 * The decision table: from how a process ended (exited with code, or killed
 * by signal when signo != 0) and whether we asked it to stop. why is static.
 */
enum sup_child_decision sup_child_decide(int code, int signo, bool stop_requested,
                                         const char **why);
const char *sup_exit_name(int code);

struct sup_child_policy {
    int backoff_min_ms;  /* first restart delay (default 100) */
    int backoff_max_ms;  /* the delay doubles per quick failure up to this (default 10000) */
    int stable_ms;       /* a run this long resets the backoff (default 10000) */
    int term_timeout_ms; /* SIGTERM → SIGKILL after this (default 5000) */
};

enum sup_child_state {
    SUP_CHILD_IDLE = 0, /* never started, or stopped on request */
    SUP_CHILD_RUNNING,
    SUP_CHILD_STOPPING, /* SIGTERM sent, waiting */
    SUP_CHILD_BACKOFF,  /* exited, restart scheduled */
    SUP_CHILD_FAILED,   /* exited with a "do not restart" status */
};

struct sup_child_exit {
    int code;  /* exit code, or -1 if killed by a signal */
    int signo; /* the signal, or 0 */
    enum sup_child_decision decision;
    const char *why;
    int restart_in_ms; /* when decision == RESTART */
    long ran_ms;
};

struct sup_child;
typedef void (*sup_child_exit_fn)(void *ctx, struct sup_child *c, const struct sup_child_exit *e);

/* argv is copied; policy may be NULL (defaults). */
int sup_child_new(const char *name, char *const argv[], const struct sup_child_policy *policy,
                  sup_child_exit_fn on_exit, void *ctx, struct sup_child **out);
void sup_child_free(struct sup_child *c); /* SIGKILLs and reaps a running child */

/* fork + exec; -errno with the exec error if argv[0] cannot be run. */
int sup_child_start(struct sup_child *c);
/* SIGTERM now; SIGKILL from on_timer after term_timeout_ms. A pending restart is cancelled. */
int sup_child_stop(struct sup_child *c);
int sup_child_fd(const struct sup_child *c);
int sup_child_on_readable(struct sup_child *c);
int sup_child_on_timer(struct sup_child *c);
int sup_child_next_timeout_ms(const struct sup_child *c); /* -1: no timer */

enum sup_child_state sup_child_state(const struct sup_child *c);
pid_t sup_child_pid(const struct sup_child *c); /* 0 if none */
int sup_child_restarts(const struct sup_child *c);
const char *sup_child_name(const struct sup_child *c);

/*
 * Frozen-process kill (a SIGSTOPped or stuck core): SIGKILL through the pidfd,
 * then wait up to timeout_ms for the pidfd to report the exit. Returns 0 only
 * when the kernel has confirmed the process exited (its files, and so its OFD
 * locks, are released by then), -ETIMEDOUT if not confirmed (e.g. stuck in
 * uninterruptible I/O: NOT dead), or another -errno. Blocks at most timeout_ms.
 */
int sup_kill_frozen_pidfd(int pidfd, int timeout_ms);
/* Same, from a pid (pidfd_open first; -ESRCH if no such process: it is gone). */
int sup_kill_frozen(pid_t pid, int timeout_ms);
/* The managed child, through its own pidfd (the exit is still reported by on_readable). */
int sup_child_kill_frozen(struct sup_child *c, int timeout_ms);

#endif
