/*
 * worker_net — see worker_net.h.
 *
 * Connections live in a doubly linked list owned by the wnet; each has one
 * evloop watch. Reads go through one 64 KiB buffer per connection that keeps
 * bytes the protocol did not consume (paused by back-pressure) until it can.
 */
#include "worker_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hamq/log.h"

#define WNET_RBUF 65536
#define WNET_MAX_LISTENERS 8
#define WNET_SNIFF_MAX 8

struct wlisten {
    struct wnet *net;
    int fd;
    enum wnet_kind kind;
    struct ev_watch *w;
};

struct wconn {
    struct wnet *net;
    struct wconn *prev, *next;
    int fd;
    uint64_t id;
    struct ev_watch *w;
    const struct wnet_proto *proto;
    void *state;
    bool paused, want_out, closing;
    bool draining;           /* ERROR sent, write side shut: discard input until EOF */
    uint64_t drain_deadline; /* ms; closed by the sweep timer after this */
    size_t rlen; /* bytes kept in rbuf */
    char peer[64];
    uint8_t rbuf[WNET_RBUF];
};

struct wnet {
    struct evloop *loop;
    struct wlisten listeners[WNET_MAX_LISTENERS];
    int nlisteners;
    const struct wnet_proto *protos[3];
    struct wconn *conns;
    size_t nconns;
    uint64_t next_id;
    struct ev_watch *sweep;
};

#define WNET_DRAIN_MS 2000

int wnet_sniff(const uint8_t *buf, size_t len)
{
    static const char *const stomp_cmds[] = {"CONNECT", "STOMP"};
    size_t n;

    if (len == 0)
        return -1;
    /* STOMP clients may send heart-beat EOLs before CONNECT. */
    while (len && (buf[0] == '\n' || buf[0] == '\r'))
        buf++, len--;
    if (len == 0)
        return -1;
    n = len < 4 ? len : 4;
    if (memcmp(buf, "AMQP", n) == 0)
        return len >= 4 ? WNET_AMQP : -1;
    for (int i = 0; i < 2; i++) {
        size_t cl = strlen(stomp_cmds[i]);
        n = len < cl ? len : cl;
        if (memcmp(buf, stomp_cmds[i], n) == 0)
            return len >= cl ? WNET_STOMP : -1;
    }
    return -2;
}

static void on_sweep(struct evloop *loop, void *ctx)
{
    struct wnet *n = ctx;
    uint64_t now = evloop_now_ms();

    (void)loop;
    for (struct wconn *c = n->conns, *next; c; c = next) {
        next = c->next;
        if (c->draining && now >= c->drain_deadline)
            wnet_close(c, "client did not close after an error");
    }
}

int wnet_new(struct evloop *loop, struct wnet **out)
{
    struct wnet *n = calloc(1, sizeof(*n));
    int r;

    if (!n)
        return -ENOMEM;
    n->loop = loop;
    n->next_id = 1;
    r = evloop_add_timer(loop, 500, 500, on_sweep, n, &n->sweep);
    if (r < 0) {
        free(n);
        return r;
    }
    *out = n;
    return 0;
}

void wnet_set_proto(struct wnet *n, enum wnet_kind kind, const struct wnet_proto *p)
{
    n->protos[kind] = p;
}

static void conn_update_events(struct wconn *c)
{
    bool reading = c->draining || !(c->paused || c->closing);
    uint32_t ev = c->draining ? EPOLLIN
                              : (c->paused || c->closing ? 0 : EPOLLIN) | (c->want_out ? EPOLLOUT : 0);

    /* EPOLLRDHUP only while we read: it is level-triggered, and a paused
     * connection whose client has left (say producers blocked by flow control,
     * client gone) would report it on every epoll_wait and spin the worker.
     * Its EOF is read once input resumes. */
    evloop_mod_fd(c->net->loop, c->w, ev | (reading ? EPOLLRDHUP : 0u));
}

void wnet_close(struct wconn *c, const char *why)
{
    struct wnet *n = c->net;

    if (c->proto && c->state)
        c->proto->close(c->state, why);
    log_debug("connection %llu from %s closed: %s", (unsigned long long)c->id, c->peer, why);
    evloop_del(n->loop, c->w);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    n->nconns--;
    free(c);
}

/* Writes pending protocol output. Returns false if the connection was closed. */
static bool conn_flush(struct wconn *c)
{
    const uint8_t *p;
    size_t len;

    if (!c->proto || !c->state)
        return true;
    for (;;) {
        c->proto->output(c->state, &p, &len);
        if (len == 0)
            break;
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            wnet_close(c, strerror(errno));
            return false;
        }
        c->proto->consumed(c->state, (size_t)w);
    }
    bool more = len > 0;
    if (!more && (c->closing || c->proto->should_close(c->state))) {
        /*
         * Closing with unread input makes the kernel send RST, and a client
         * may then never read the ERROR we just wrote. Shut our side, then
         * discard what the client still sends until it closes (or 2 s).
         */
        c->draining = true;
        c->drain_deadline = evloop_now_ms() + WNET_DRAIN_MS;
        c->proto->close(c->state, "closed by protocol"); /* release it now, not in 2 s */
        c->state = NULL;
        shutdown(c->fd, SHUT_WR);
        c->want_out = false;
        conn_update_events(c);
        return false;
    }
    if (more != c->want_out) {
        c->want_out = more;
        conn_update_events(c);
    }
    return true;
}

void wnet_flush(struct wconn *c)
{
    conn_flush(c);
}

void wnet_flush_all(struct wnet *n)
{
    for (struct wconn *c = n->conns, *next; c; c = next) {
        next = c->next;
        conn_flush(c);
    }
}

/* Feeds kept bytes to the protocol. Returns false if the connection was closed. */
static bool conn_feed(struct wconn *c)
{
    if (!c->proto) {
        int k = wnet_sniff(c->rbuf, c->rlen);
        if (k == -1)
            return true;
        if (k == -2 || !c->net->protos[k]) {
            static const char msg[] = "ERROR\nmessage:unknown protocol\n\n";
            ssize_t w = send(c->fd, msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            wnet_close(c, k == -2 ? "unknown protocol" : "protocol not enabled");
            return false;
        }
        c->proto = c->net->protos[k];
        c->state = c->proto->open(c->proto->ctx, c);
        if (!c->state) {
            wnet_close(c, "protocol refused the connection");
            return false;
        }
    }
    while (c->rlen > 0 && !c->paused) {
        ssize_t used = c->proto->input(c->state, c->rbuf, c->rlen);
        if (used < 0) {
            /* Protocol error: send what it queued (an ERROR frame), then close. */
            c->closing = true;
            conn_update_events(c);
            conn_flush(c);
            return false;
        }
        memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
        c->rlen -= (size_t)used;
        if (used == 0)
            break; /* protocol paused itself (back-pressure) */
    }
    return conn_flush(c);
}

static void drain_input(struct wconn *c)
{
    uint8_t sink[4096];

    for (int i = 0; i < 16; i++) {
        ssize_t r = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            wnet_close(c, "closed after an error");
            return;
        }
        if (r < 0)
            return;
    }
}

static void on_conn(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    struct wconn *c = ctx;

    (void)loop;
    if (c->draining) {
        drain_input(c);
        return;
    }
    if (events & EPOLLOUT)
        if (!conn_flush(c))
            return;
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->paused && !c->closing) {
        if (c->rlen == sizeof(c->rbuf)) {
            /* The protocol left a full buffer unread (it is holding back): a
             * recv of 0 bytes would return 0 and look like the peer closing,
             * and closing with unread input resets a healthy client. Stop
             * reading until the protocol resumes input. */
            wnet_pause_input(c);
            return;
        }
        ssize_t r = recv(fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, MSG_DONTWAIT);
        if (r == 0) {
            wnet_close(c, "peer closed");
            return;
        }
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR)
                wnet_close(c, strerror(errno));
            return;
        }
        c->rlen += (size_t)r;
        conn_feed(c);
        return;
    }
    if (events & (EPOLLHUP | EPOLLERR))
        wnet_close(c, "connection error");
}

void wnet_pause_input(struct wconn *c)
{
    if (!c->paused) {
        c->paused = true;
        conn_update_events(c);
    }
}

void wnet_resume_input(struct wconn *c)
{
    if (c->paused) {
        c->paused = false;
        conn_update_events(c);
        conn_feed(c); /* bytes kept from before the pause */
    }
}

static void on_accept(struct evloop *loop, int fd, uint32_t events, void *ctx)
{
    struct wlisten *l = ctx;
    struct wnet *n = l->net;
    struct sockaddr_storage ss;
    socklen_t sl;

    (void)events;
    for (int i = 0; i < 64; i++) {
        memset(&ss, 0, sizeof(ss));
        sl = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("accept on port failed: %s", strerror(errno));
            return;
        }
        struct wconn *c = malloc(sizeof(*c));
        if (!c) {
            close(cfd);
            log_warn("connection refused: out of memory");
            continue;
        }
        memset(c, 0, offsetof(struct wconn, rbuf));
        c->net = n;
        c->fd = cfd;
        c->id = n->next_id++;
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
            snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(a->sin_port));
        } else {
            snprintf(c->peer, sizeof(c->peer), "?");
        }
        if (evloop_add_fd(loop, cfd, EPOLLIN | EPOLLRDHUP, on_conn, c, &c->w) < 0) {
            close(cfd);
            free(c);
            continue;
        }
        c->next = n->conns;
        if (n->conns)
            n->conns->prev = c;
        n->conns = c;
        n->nconns++;
        if (l->kind != WNET_SNIFF) {
            c->proto = n->protos[l->kind];
            c->state = c->proto ? c->proto->open(c->proto->ctx, c) : NULL;
            if (!c->state)
                wnet_close(c, "protocol refused the connection");
        }
    }
}

int wnet_listen(struct wnet *n, const char *bind_addr, int port, enum wnet_kind kind, char *err,
                size_t errlen)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd, one = 1, r;

    if (n->nlisteners == WNET_MAX_LISTENERS)
        return -ENOSPC;
    if (inet_pton(AF_INET, bind_addr, &a.sin_addr) != 1) {
        snprintf(err, errlen, "bind address \"%s\" is not an IPv4 address", bind_addr);
        return -EINVAL;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot listen on %s:%d: %s", bind_addr, port, strerror(-r));
        close(fd);
        return r;
    }
    struct wlisten *l = &n->listeners[n->nlisteners];
    l->net = n;
    l->fd = fd;
    l->kind = kind;
    r = evloop_add_fd(n->loop, fd, EPOLLIN, on_accept, l, &l->w);
    if (r < 0) {
        close(fd);
        snprintf(err, errlen, "cannot watch port %d: %s", port, strerror(-r));
        return r;
    }
    n->nlisteners++;
    return 0;
}

void wnet_close_all(struct wnet *n, const char *why)
{
    for (struct wconn *c = n->conns, *next; c; c = next) {
        next = c->next;
        wnet_close(c, why);
    }
}

void wnet_free(struct wnet *n)
{
    if (!n)
        return;
    wnet_close_all(n, "shutdown");
    evloop_del(n->loop, n->sweep);
    for (int i = 0; i < n->nlisteners; i++) {
        evloop_del(n->loop, n->listeners[i].w);
        close(n->listeners[i].fd);
    }
    free(n);
}

uint64_t wnet_conn_id(const struct wconn *c)
{
    return c->id;
}

const char *wnet_peer_name(const struct wconn *c)
{
    return c->peer;
}

size_t wnet_conn_count(const struct wnet *n)
{
    return n->nconns;
}
