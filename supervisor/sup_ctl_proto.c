/*
 * sup_ctl_proto — control socket server and client (see sup_ctl_proto.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hamq/log.h"
#include "sup_ctl_proto.h"

static const char *const commands[] = {"status", "failover", "failback", "pause", "resume", NULL};

struct conn {
    int fd; /* -1: free slot */
    char in[SUP_CTL_LINE_MAX + 1];
    size_t inlen;
    char *out;
    size_t outlen, outoff;
    bool close_after;
    uint64_t wait_id; /* != 0: a deferred request is waiting for its answer */
    bool denied;      /* SO_PEERCRED said no: every request gets "permission denied" */
};

struct sup_ctl_server {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lfd, epfd;
    sup_ctl_handler h;
    void *ctx;
    gid_t gid;
    bool gid_set;
    uint64_t next_id;
    struct conn c[SUP_CTL_MAX_CLIENTS];
};

/* ---- replies -------------------------------------------------------------- */

void sup_ctl_reply_kv(struct sup_ctl_reply *r, const char *key, const char *fmt, ...)
{
    char val[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    for (char *p = val; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    int n = snprintf(r->buf + r->len, sizeof r->buf - r->len, "%s=%s\n", key, val);
    if (n > 0 && (size_t)n < sizeof r->buf - r->len)
        r->len += (size_t)n;
}

uint64_t sup_ctl_reply_defer(struct sup_ctl_reply *r)
{
    r->deferred = true;
    return r->id;
}

int sup_ctl_reply_error(struct sup_ctl_reply *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    for (char *p = r->error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (!r->error[0])
        snprintf(r->error, sizeof r->error, "failed");
    return -EINVAL;
}

/* ---- server --------------------------------------------------------------- */

static void conn_close(struct sup_ctl_server *s, struct conn *c)
{
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static bool peer_allowed(const struct sup_ctl_server *s, int fd)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return false;
    return cr.uid == 0 || cr.uid == geteuid() || (s->gid_set && cr.gid == s->gid);
}

static void conn_queue(struct sup_ctl_server *s, struct conn *c, const char *text, size_t len)
{
    char *n = realloc(c->out, c->outlen + len);
    if (!n) {
        c->close_after = true;
        return;
    }
    memcpy(n + c->outlen, text, len);
    c->out = n;
    c->outlen += len;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT};
    ev.data.ptr = c;
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_error(struct sup_ctl_server *s, struct conn *c, const char *msg)
{
    char line[SUP_CTL_LINE_MAX + 64];
    int n = snprintf(line, sizeof line, "error %s\n\n", msg);
    conn_queue(s, c, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static bool line_valid(const char *l)
{
    for (; *l; l++)
        if ((unsigned char)*l < 0x20 || (unsigned char)*l > 0x7e)
            return false;
    return true;
}

static void conn_events(struct sup_ctl_server *s, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events};
    ev.data.ptr = c;
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void queue_reply(struct sup_ctl_server *s, struct conn *c, const struct sup_ctl_reply *r)
{
    if (r->error[0]) {
        conn_error(s, c, r->error);
    } else {
        conn_queue(s, c, "ok\n", 3);
        conn_queue(s, c, r->buf, r->len);
        conn_queue(s, c, "\n", 1);
    }
}

static void dispatch(struct sup_ctl_server *s, struct conn *c, char *line)
{
    if (c->denied) {
        conn_error(s, c, "permission denied (root or the hamq group only)");
        c->close_after = true;
        return;
    }
    if (!line_valid(line)) {
        conn_error(s, c, "request must be printable ASCII");
        return;
    }
    char *args = line + strcspn(line, " ");
    if (*args)
        *args++ = 0;
    args += strspn(args, " ");
    bool known = false;
    for (int i = 0; commands[i]; i++)
        known |= strcmp(line, commands[i]) == 0;
    if (!known) {
        char m[SUP_CTL_LINE_MAX + 96];
        snprintf(m, sizeof m,
                 "unknown command \"%.64s\" (accepted: status, failover, failback, "
                 "pause, resume)",
                 line);
        conn_error(s, c, m);
        return;
    }
    struct sup_ctl_reply *r = calloc(1, sizeof *r);
    if (!r) {
        conn_error(s, c, "out of memory");
        return;
    }
    r->id = ++s->next_id;
    s->h(s->ctx, line, args, r);
    if (r->deferred) {
        c->wait_id = r->id;
        /* read nothing more until the answer; still learn of a hang-up */
        conn_events(s, c, c->outlen ? EPOLLRDHUP | EPOLLOUT : EPOLLRDHUP);
    } else {
        queue_reply(s, c, r);
    }
    free(r);
}

/* Handles every complete line in the buffer, stopping at a deferred request. */
static void conn_lines(struct sup_ctl_server *s, struct conn *c)
{
    char *nl;
    while (c->fd >= 0 && !c->wait_id && (nl = memchr(c->in, '\n', c->inlen))) {
        *nl = 0;
        if (nl > c->in && nl[-1] == '\r')
            nl[-1] = 0;
        dispatch(s, c, c->in);
        size_t used = (size_t)(nl + 1 - c->in);
        memmove(c->in, nl + 1, c->inlen - used);
        c->inlen -= used;
        c->in[c->inlen] = 0;
    }
}

static void conn_read(struct sup_ctl_server *s, struct conn *c)
{
    ssize_t n = read(c->fd, c->in + c->inlen, SUP_CTL_LINE_MAX - c->inlen);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->close_after = true;
        if (!c->outlen)
            conn_close(s, c);
        return;
    }
    if (n < 0)
        return;
    c->inlen += (size_t)n;
    c->in[c->inlen] = 0;
    conn_lines(s, c);
    if (c->fd >= 0 && !c->wait_id && c->inlen == SUP_CTL_LINE_MAX) {
        conn_error(s, c, "request line too long");
        c->close_after = true;
        c->inlen = 0;
    }
}

static void conn_write(struct sup_ctl_server *s, struct conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_close(s, c);
            return;
        }
        c->outoff += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    c->outlen = c->outoff = 0;
    if (c->close_after) {
        conn_close(s, c);
        return;
    }
    conn_events(s, c, c->wait_id ? EPOLLRDHUP : EPOLLIN);
}

static void accept_all(struct sup_ctl_server *s)
{
    for (int round = 0; round < SUP_CTL_MAX_CLIENTS * 2; round++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = NULL;
        for (int i = 0; i < SUP_CTL_MAX_CLIENTS && !c; i++)
            if (s->c[i].fd < 0)
                c = &s->c[i];
        static const char busy[] = "error too many control connections\n\n";
        if (!c) {
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            continue;
        }
        /* A refused peer still gets its request read and answered, so it sees why. */
        c->denied = !peer_allowed(s, fd);
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN};
        ev.data.ptr = c;
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

int sup_ctl_server_on_readable(struct sup_ctl_server *s)
{
    struct epoll_event evs[SUP_CTL_MAX_CLIENTS + 1];
    int n = epoll_wait(s->epfd, evs, SUP_CTL_MAX_CLIENTS + 1, 0);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            accept_all(s);
            continue;
        }
        struct conn *c = evs[i].data.ptr;
        if (c->fd >= 0 && c->wait_id && (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
            conn_close(s, c); /* the client left before its answer */
            continue;
        }
        if (c->fd >= 0 && !c->wait_id && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            conn_read(s, c);
        if (c->fd >= 0 && c->outlen)
            conn_write(s, c);
    }
    return 0;
}

/* A socket file that nobody answers on is stale (a crashed daemon): remove it. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(fd);
    if (r == 0) {
        snprintf(err, errlen, "%s: another hamq-supervisor is already listening there", path);
        return -EADDRINUSE;
    }
    if (e == ECONNREFUSED)
        unlink(path);
    return 0;
}

static int server_listen(struct sup_ctl_server *s, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    int r = clear_stale(s->path, &sa, err, errlen);
    if (r < 0)
        return r;
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        return -errno;
    mode_t old = umask(0117); /* 0660 */
    r = bind(s->lfd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    umask(old);
    if (r < 0 || listen(s->lfd, 64) < 0) {
        e = r < 0 ? e : errno;
        snprintf(err, errlen, "cannot listen on %s: %s", s->path, strerror(e));
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    return epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0 ? -errno : 0;
}

int sup_ctl_server_new(const char *path, sup_ctl_handler h, void *ctx, struct sup_ctl_server **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    struct sup_ctl_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->lfd = -1;
    for (int i = 0; i < SUP_CTL_MAX_CLIENTS; i++)
        s->c[i].fd = -1;
    if (!path || !path[0] || strlen(path) >= sizeof s->path) {
        snprintf(err, errlen, "control socket path \"%s\" is empty or longer than %zu bytes",
                 path ? path : "", sizeof s->path - 1);
        free(s);
        return -ENAMETOOLONG;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    s->h = h;
    s->ctx = ctx;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    int r = s->epfd < 0 ? -errno : server_listen(s, err, errlen);
    if (r < 0) {
        if (s->lfd >= 0)
            close(s->lfd);
        if (s->epfd >= 0)
            close(s->epfd);
        free(s);
        return r;
    }
    *out = s;
    return 0;
}

int sup_ctl_server_complete(struct sup_ctl_server *s, uint64_t id, const struct sup_ctl_reply *r)
{
    for (int i = 0; i < SUP_CTL_MAX_CLIENTS; i++) {
        struct conn *c = &s->c[i];
        if (c->fd < 0 || !id || c->wait_id != id)
            continue;
        c->wait_id = 0;
        conn_events(s, c, EPOLLIN);
        queue_reply(s, c, r);
        conn_lines(s, c); /* requests that arrived while we waited */
        if (c->fd >= 0 && c->outlen)
            conn_write(s, c);
        return 0;
    }
    return -ENOENT;
}

int sup_ctl_server_pending(const struct sup_ctl_server *s)
{
    int n = 0;
    for (int i = 0; i < SUP_CTL_MAX_CLIENTS; i++)
        n += s->c[i].fd >= 0 && s->c[i].wait_id != 0;
    return n;
}

void sup_ctl_server_allow_gid(struct sup_ctl_server *s, gid_t gid)
{
    s->gid = gid;
    s->gid_set = true;
}

int sup_ctl_server_fd(const struct sup_ctl_server *s)
{
    return s->epfd;
}

void sup_ctl_server_free(struct sup_ctl_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < SUP_CTL_MAX_CLIENTS; i++)
        if (s->c[i].fd >= 0)
            conn_close(s, &s->c[i]);
    close(s->lfd);
    close(s->epfd);
    unlink(s->path);
    free(s);
}

/* ---- client --------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int client_connect(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "control socket path %s is too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            snprintf(err, errlen, "cannot connect to %s: is hamq-supervisor running?", path);
        else
            snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(e));
        return -e;
    }
    return fd;
}

/* Reads until the blank line that ends a reply; returns its length. */
static int client_read(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t len = 0;
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        buf[len] = 0;
        if ((len >= 2 && strstr(buf, "\n\n")) || (len == 1 && buf[0] == '\n'))
            return (int)len;
        if (len + 1 >= cap)
            return -EMSGSIZE;
        int64_t left = end - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0 && errno == EINTR)
            continue;
        ssize_t n = r < 0 ? -1 : read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? -ECONNRESET : -errno;
        len += (size_t)n;
    }
}

static int client_parse(const char *buf, char *reply, size_t replylen, char *err, size_t errlen)
{
    const char *body = strchr(buf, '\n') + 1;
    size_t bodylen = strlen(body) >= 1 ? strlen(body) - 1 : 0; /* drop the blank line */
    if (strncmp(buf, "ok\n", 3) == 0) {
        snprintf(reply, replylen, "%.*s", (int)bodylen, body);
        return 0;
    }
    if (strncmp(buf, "error ", 6) == 0) {
        snprintf(err, errlen, "%.*s", (int)(strchr(buf, '\n') - buf - 6), buf + 6);
        return -EREMOTEIO;
    }
    snprintf(err, errlen, "unexpected reply from hamq-supervisor: \"%.40s\"", buf);
    return -EPROTO;
}

int sup_ctl_request(const char *path, const char *line, int timeout_ms, char *reply,
                    size_t replylen, char *err, size_t errlen)
{
    if (strlen(line) >= SUP_CTL_LINE_MAX || strchr(line, '\n')) {
        snprintf(err, errlen, "request too long or contains a newline");
        return -EINVAL;
    }
    int fd = client_connect(path, err, errlen);
    if (fd < 0)
        return fd;
    char req[SUP_CTL_LINE_MAX + 1];
    int n = snprintf(req, sizeof req, "%s\n", line);
    int send_err = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : errno;
    char *buf = malloc(SUP_CTL_REPLY_MAX + 1024);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    /* Even if the send failed, the daemon may have said why (e.g. refused us). */
    int r = client_read(fd, buf, SUP_CTL_REPLY_MAX + 1024, send_err ? 100 : timeout_ms);
    close(fd);
    if (r < 0 && send_err) {
        snprintf(err, errlen, "cannot send to %s: %s", path, strerror(send_err));
        r = -send_err;
    } else if (r < 0)
        snprintf(err, errlen, "no complete reply from hamq-supervisor on %s: %s", path,
                 strerror(-r));
    else
        r = client_parse(buf, reply, replylen, err, errlen);
    free(buf);
    return r;
}

int sup_ctl_kv_get(const char *reply, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    for (const char *l = reply; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, klen) == 0 && l[klen] == '=') {
            const char *v = l + klen + 1;
            snprintf(out, outlen, "%.*s", (int)strcspn(v, "\n"), v);
            return 0;
        }
    }
    return -ENOENT;
}
