/*
 * evloop — see include/hamq/evloop.h.
 *
 * Watches live in a singly linked list (daemons have tens, not thousands);
 * epoll_event.data.ptr points at the watch. A watch removed during dispatch is
 * marked dead and freed at the end of the round, so an event already returned
 * by epoll_wait for it in this round is skipped rather than used after free.
 */
#include "hamq/evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum watch_kind { W_FD, W_TIMER, W_IDLE };

struct ev_watch {
    enum watch_kind kind;
    int fd;
    bool dead;
    ev_fd_cb fd_cb;
    ev_timer_cb timer_cb;
    ev_idle_cb idle_cb;
    void *ctx;
    struct ev_watch *next;
};

struct evloop {
    int epfd;
    bool stop;
    int dispatching;
    struct ev_watch *watches;
};

#define EV_BATCH 64

uint64_t evloop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int evloop_new(struct evloop **out)
{
    struct evloop *l = calloc(1, sizeof(*l));

    if (!l)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int e = errno;
        free(l);
        return -e;
    }
    *out = l;
    return 0;
}

static void watch_free(struct ev_watch *w)
{
    if (w->kind == W_TIMER)
        close(w->fd);
    free(w);
}

void evloop_free(struct evloop *loop)
{
    if (!loop)
        return;
    for (struct ev_watch *w = loop->watches, *n; w; w = n) {
        n = w->next;
        watch_free(w);
    }
    close(loop->epfd);
    free(loop);
}

static struct ev_watch *watch_new(struct evloop *loop, enum watch_kind kind, void *ctx)
{
    struct ev_watch *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->kind = kind;
    w->fd = -1;
    w->ctx = ctx;
    w->next = loop->watches;
    loop->watches = w;
    return w;
}

static void watch_unlink(struct evloop *loop, struct ev_watch *w)
{
    for (struct ev_watch **p = &loop->watches; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

int evloop_add_fd(struct evloop *loop, int fd, uint32_t events, ev_fd_cb cb, void *ctx,
                  struct ev_watch **out)
{
    struct ev_watch *w = watch_new(loop, W_FD, ctx);
    struct epoll_event ev = {.events = events, .data.ptr = NULL};

    if (!w)
        return -ENOMEM;
    w->fd = fd;
    w->fd_cb = cb;
    ev.data.ptr = w;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        watch_unlink(loop, w);
        free(w);
        return -e;
    }
    if (out)
        *out = w;
    return 0;
}

int evloop_mod_fd(struct evloop *loop, struct ev_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};

    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

static void reap_dead(struct evloop *loop)
{
    for (struct ev_watch **p = &loop->watches; *p;) {
        struct ev_watch *w = *p;
        if (w->dead) {
            *p = w->next;
            watch_free(w);
        } else {
            p = &w->next;
        }
    }
}

void evloop_del(struct evloop *loop, struct ev_watch *w)
{
    if (!w || w->dead)
        return;
    if (w->kind != W_IDLE)
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->dead = true;
    if (!loop->dispatching)
        reap_dead(loop);
}

static void on_timerfd(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    struct ev_watch *w = ctx;
    uint64_t n;

    (void)events;
    if (read(fd, &n, sizeof(n)) != sizeof(n))
        return; /* spurious: EAGAIN */
    w->timer_cb(loop, w->ctx);
}

int evloop_add_timer(struct evloop *loop, uint64_t first_ms, uint64_t period_ms, ev_timer_cb cb,
                     void *ctx, struct ev_watch **out)
{
    struct itimerspec its = {
        .it_value = {(time_t)(first_ms / 1000), (long)(first_ms % 1000) * 1000000},
        .it_interval = {(time_t)(period_ms / 1000), (long)(period_ms % 1000) * 1000000},
    };
    struct ev_watch *w;
    int fd, r;

    if (first_ms == 0)
        its.it_value.tv_nsec = 1; /* zero would disarm the timer */
    fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (timerfd_settime(fd, 0, &its, NULL) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    w = watch_new(loop, W_TIMER, ctx);
    if (!w) {
        close(fd);
        return -ENOMEM;
    }
    w->fd = fd;
    w->timer_cb = cb;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        r = -errno;
        watch_unlink(loop, w);
        watch_free(w);
        return r;
    }
    if (out)
        *out = w;
    return 0;
}

int evloop_add_idle(struct evloop *loop, ev_idle_cb cb, void *ctx, struct ev_watch **out)
{
    struct ev_watch *w = watch_new(loop, W_IDLE, ctx);

    if (!w)
        return -ENOMEM;
    w->idle_cb = cb;
    if (out)
        *out = w;
    return 0;
}

static bool run_idle_hooks(struct evloop *loop)
{
    bool busy = false;

    for (struct ev_watch *w = loop->watches; w; w = w->next)
        if (w->kind == W_IDLE && !w->dead)
            busy |= w->idle_cb(loop, w->ctx);
    return busy;
}

int evloop_run_once(struct evloop *loop, int timeout_ms)
{
    struct epoll_event evs[EV_BATCH];
    int n;

    loop->dispatching++;
    if (run_idle_hooks(loop))
        timeout_ms = 0;
    n = epoll_wait(loop->epfd, evs, EV_BATCH, timeout_ms);
    if (n < 0 && errno != EINTR) {
        int e = errno;
        loop->dispatching--;
        return -e;
    }
    for (int i = 0; i < n; i++) {
        struct ev_watch *w = evs[i].data.ptr;
        if (w->dead)
            continue;
        if (w->kind == W_TIMER)
            on_timerfd(loop, w->fd, evs[i].events, w);
        else
            w->fd_cb(loop, w->fd, evs[i].events, w->ctx);
    }
    if (--loop->dispatching == 0)
        reap_dead(loop);
    return n < 0 ? 0 : n;
}

int evloop_run(struct evloop *loop)
{
    loop->stop = false;
    while (!loop->stop) {
        int r = evloop_run_once(loop, -1);
        if (r < 0)
            return r;
    }
    return 0;
}

void evloop_stop(struct evloop *loop)
{
    loop->stop = true;
}
