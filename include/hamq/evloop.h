/*
 * evloop — the single-threaded epoll loop every hamq daemon runs.
 *
 * Watches file descriptors (level-triggered unless the caller asks for
 * EPOLLET), timers (one timerfd each: daemons have a handful, not thousands),
 * and runs "idle hooks" before it blocks: a hook that still has work (e.g. a
 * ring with records left after a bounded drain) returns true and the loop polls
 * without sleeping, so a busy process never sleeps and an idle one never spins
 * unless a hook asks it to.
 *
 * Ownership: the loop owns its epoll fd and timer fds, never the caller's fds.
 * A callback may add or remove any watch, including its own, while it runs:
 * removed watches are freed only after the current dispatch round.
 */
#ifndef HAMQ_EVLOOP_H
#define HAMQ_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct ev_watch;

typedef void (*ev_fd_cb)(struct evloop *loop, int fd, uint32_t events, void *ctx);
typedef void (*ev_timer_cb)(struct evloop *loop, void *ctx);
/* Returns true if it has more work right now (the loop must not block). */
typedef bool (*ev_idle_cb)(struct evloop *loop, void *ctx);

int evloop_new(struct evloop **out);
void evloop_free(struct evloop *loop);

/* events: EPOLLIN, EPOLLOUT, EPOLLET...; returns 0 or -errno. */
int evloop_add_fd(struct evloop *loop, int fd, uint32_t events, ev_fd_cb cb, void *ctx,
                  struct ev_watch **out);
int evloop_mod_fd(struct evloop *loop, struct ev_watch *w, uint32_t events);
void evloop_del(struct evloop *loop, struct ev_watch *w);

/* First expiry after first_ms, then every period_ms (0 = once). */
int evloop_add_timer(struct evloop *loop, uint64_t first_ms, uint64_t period_ms, ev_timer_cb cb,
                     void *ctx, struct ev_watch **out);
int evloop_add_idle(struct evloop *loop, ev_idle_cb cb, void *ctx, struct ev_watch **out);

/* Runs until evloop_stop(); returns 0 or -errno if epoll itself fails. */
int evloop_run(struct evloop *loop);
/* One round: wait at most timeout_ms (-1 = forever), dispatch. For tests. */
int evloop_run_once(struct evloop *loop, int timeout_ms);
void evloop_stop(struct evloop *loop);

uint64_t evloop_now_ms(void); /* CLOCK_MONOTONIC */

#endif
