/*
 * stomp_load_conn — the connections of hamq-stomp-load and their one epoll
 * loop (single thread: on a 2-core machine a second load thread would only
 * take CPU from the broker being measured).
 *
 * Producer: keeps up to W SEND frames with a `receipt` header outstanding;
 * the receipt id is the index of a free slot that holds the send time, so a
 * RECEIPT gives its latency whatever order receipts come back in. W = 0 sends
 * without receipts (fire and forget). A count-bounded run splits the count
 * over the producers; a duration-bounded one stops sending at the deadline
 * and waits (at most grace_s) for the receipts still outstanding.
 * Consumer: SUBSCRIBE ack:client-individual with a prefetch (sent under the
 * names hamq, ActiveMQ and RabbitMQ read), and one ACK per MESSAGE, written
 * in the same batch as the reads that brought the messages.
 * Every frame the broker sends is parsed with stomp_codec; an ERROR frame is
 * counted, printed (first few) and closes that connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stomp_codec.h"
#include "stomp_load.h"

#define OUT_LOW            (256u * 1024u) /* stop adding SENDs above this many unwritten bytes */
#define READ_CHUNK         (256u * 1024u)
#define MAX_ERRORS_PRINTED 5

enum conn_state { CS_WAIT_CONNECTED, CS_RUNNING, CS_CLOSED };

struct conn {
    int fd;
    bool producer;
    bool want_out; /* EPOLLOUT registered */
    bool v12;
    enum conn_state st;
    struct stomp_parser parser;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    /* producer */
    uint64_t quota; /* SENDs still to issue; UINT64_MAX = until the deadline */
    uint64_t sent, receipted;
    unsigned outstanding, nfree;
    unsigned *free_slots;
    uint64_t *slot_t0;
    /* consumer */
    uint64_t consumed;
};

struct loop {
    const struct sl_opts *o;
    struct sl_result *res;
    int ep;
    struct conn *c;
    size_t nc;
    uint8_t *rbuf;
    char *send_prefix; /* "SEND\ndestination:..\n[persistent:true\n]" */
    size_t send_prefix_len;
    char *send_suffix; /* "content-length:N\n\n" */
    size_t send_suffix_len;
    uint8_t *body;
    uint64_t t_start, t_last_receipt, t_last_msg, t_deadline;
    bool stop_sending;
    unsigned connected;
};

static void note_error(struct loop *l, const char *fmt, const char *a, const char *b)
{
    l->res->errors++;
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    if (!l->res->first_error[0])
        snprintf(l->res->first_error, sizeof l->res->first_error, "%s", msg);
    if (l->res->errors <= MAX_ERRORS_PRINTED)
        fprintf(stderr, "hamq-stomp-load: %s\n", msg);
}

static int out_reserve(struct conn *c, size_t more)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + more <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 64 * 1024;
    while (cap < c->out_len + more)
        cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p)
        return -ENOMEM;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static int out_add(struct conn *c, const void *p, size_t n)
{
    if (out_reserve(c, n) < 0)
        return -ENOMEM;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static void conn_close(struct loop *l, struct conn *c)
{
    if (c->st == CS_CLOSED)
        return;
    epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->st = CS_CLOSED;
}

/* Writes what it can; keeps EPOLLOUT registered only while bytes wait. */
static void conn_flush(struct loop *l, struct conn *c)
{
    while (c->st != CS_CLOSED && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        note_error(l, "write to broker: %s%s", strerror(errno), NULL);
        conn_close(l, c);
        return;
    }
    if (c->st == CS_CLOSED)
        return;
    bool want = c->out_off < c->out_len;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = c};
        epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
}

static int add_send(struct loop *l, struct conn *c)
{
    char rid[40];
    int rl = 0;
    unsigned slot = 0;

    if (l->o->window) {
        slot = c->free_slots[--c->nfree];
        rl = snprintf(rid, sizeof rid, "receipt:%u\n", slot);
    }
    size_t n = l->send_prefix_len + (size_t)rl + l->send_suffix_len + l->o->size + 1;
    if (out_reserve(c, n) < 0)
        return -ENOMEM;
    uint8_t *p = c->out + c->out_len;
    memcpy(p, l->send_prefix, l->send_prefix_len);
    p += l->send_prefix_len;
    memcpy(p, rid, (size_t)rl);
    p += rl;
    memcpy(p, l->send_suffix, l->send_suffix_len);
    p += l->send_suffix_len;
    memcpy(p, l->body, l->o->size);
    p[l->o->size] = '\0';
    c->out_len += n;
    if (l->o->window) {
        c->slot_t0[slot] = sl_now_ns();
        c->outstanding++;
    }
    c->sent++;
    l->res->sent++;
    if (c->quota != UINT64_MAX)
        c->quota--;
    return 0;
}

static void producer_fill(struct loop *l, struct conn *c)
{
    if (c->st != CS_RUNNING || !c->producer)
        return;
    while (!l->stop_sending && c->quota > 0 && c->out_len - c->out_off < OUT_LOW &&
           (l->o->window == 0 || c->outstanding < l->o->window)) {
        if (add_send(l, c) < 0) {
            note_error(l, "out of memory building SEND%s%s", NULL, NULL);
            conn_close(l, c);
            return;
        }
    }
}

static void on_connected(struct loop *l, struct conn *c, const struct stomp_frame *f)
{
    const char *ver = stomp_frame_get(f, "version");
    c->v12 = ver && strcmp(ver, "1.2") == 0;
    stomp_parser_set_version(&c->parser, c->v12 ? STOMP_V12 : STOMP_V11);
    c->st = CS_RUNNING;
    l->connected++;
    if (!c->producer) {
        char sub[1024];
        int n = snprintf(sub, sizeof sub,
                         "SUBSCRIBE\nid:0\ndestination:%s\nack:client-individual\n"
                         "consumer-window-size:%u\nactivemq.prefetchSize:%u\n"
                         "prefetch-count:%u\n\n",
                         l->o->dest, l->o->prefetch, l->o->prefetch, l->o->prefetch);
        if (n < 0 || (size_t)n >= sizeof sub || out_add(c, sub, (size_t)n + 1) < 0) {
            note_error(l, "destination too long%s%s", NULL, NULL);
            conn_close(l, c);
        }
    }
}

static void on_receipt(struct loop *l, struct conn *c, const struct stomp_frame *f)
{
    const char *id = stomp_frame_get(f, "receipt-id");
    char *end = NULL;
    unsigned long slot = id ? strtoul(id, &end, 10) : 0;
    if (!id || *end || slot >= l->o->window || c->slot_t0[slot] == 0) {
        note_error(l, "unexpected RECEIPT receipt-id '%s'%s", id ? id : "(none)", NULL);
        return;
    }
    uint64_t now = sl_now_ns();
    sl_hist_add(&l->res->lat, now - c->slot_t0[slot]);
    c->slot_t0[slot] = 0;
    c->free_slots[c->nfree++] = (unsigned)slot;
    c->outstanding--;
    c->receipted++;
    l->res->receipted++;
    l->t_last_receipt = now;
}

static void on_message(struct loop *l, struct conn *c, const struct stomp_frame *f)
{
    const char *ack = stomp_frame_get(f, c->v12 ? "ack" : "message-id");
    char buf[512];
    int n = -1;
    if (ack && c->v12)
        n = snprintf(buf, sizeof buf, "ACK\nid:%s\n\n", ack);
    else if (ack)
        n = snprintf(buf, sizeof buf, "ACK\nsubscription:0\nmessage-id:%s\n\n", ack);
    c->consumed++;
    l->res->consumed++;
    l->t_last_msg = sl_now_ns();
    if (n < 0 || (size_t)n >= sizeof buf) {
        note_error(l, "MESSAGE without a usable ack id%s%s", NULL, NULL);
        return;
    }
    if (out_add(c, buf, (size_t)n + 1) < 0) {
        note_error(l, "out of memory%s%s", NULL, NULL);
        conn_close(l, c);
        return;
    }
    l->res->acked++;
}

static void on_frame(struct loop *l, struct conn *c, const struct stomp_frame *f)
{
    switch (f->cmd) {
    case STOMP_CMD_CONNECTED:
        if (c->st == CS_WAIT_CONNECTED)
            on_connected(l, c, f);
        return;
    case STOMP_CMD_RECEIPT:
        on_receipt(l, c, f);
        return;
    case STOMP_CMD_MESSAGE:
        on_message(l, c, f);
        return;
    case STOMP_CMD_ERROR: {
        const char *m = stomp_frame_get(f, "message");
        char body[160];
        size_t bl = f->body_len < sizeof body - 1 ? f->body_len : sizeof body - 1;
        memcpy(body, f->body, bl);
        body[bl] = '\0';
        note_error(l, "ERROR frame from broker: %s %s", m ? m : "(no message header)", body);
        conn_close(l, c);
        return;
    }
    default:
        note_error(l, "unexpected %s frame from broker%s", stomp_command_name(f->cmd), NULL);
        return;
    }
}

static void conn_read(struct loop *l, struct conn *c)
{
    for (int rounds = 0; rounds < 4 && c->st != CS_CLOSED; rounds++) {
        ssize_t n = read(c->fd, l->rbuf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            note_error(l, "broker closed the connection%s%s", n < 0 ? ": " : "",
                       n < 0 ? strerror(errno) : "");
            conn_close(l, c);
            return;
        }
        size_t off = 0;
        while (off < (size_t)n && c->st != CS_CLOSED) {
            size_t used = 0;
            struct stomp_frame f;
            int r = stomp_parser_feed(&c->parser, l->rbuf + off, (size_t)n - off, &used, &f);
            off += used;
            if (r < 0) {
                note_error(l, "unparsable frame from broker: %s%s", c->parser.errmsg, NULL);
                conn_close(l, c);
                return;
            }
            if (r == 1)
                on_frame(l, c, &f);
        }
        if ((size_t)n < READ_CHUNK)
            break;
    }
}

static int tcp_connect(const struct sl_opts *o, int *fdp)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int g = getaddrinfo(o->host, o->port, &hints, &ai);
    if (g != 0) {
        fprintf(stderr, "hamq-stomp-load: %s:%s: %s\n", o->host, o->port, gai_strerror(g));
        return -EINVAL;
    }
    int r = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            *fdp = fd;
            r = 0;
            break;
        }
        r = -errno;
        close(fd);
    }
    freeaddrinfo(ai);
    if (r < 0)
        fprintf(stderr, "hamq-stomp-load: connect %s:%s: %s\n", o->host, o->port, strerror(-r));
    return r;
}

static int conn_open(struct loop *l, struct conn *c, bool producer, uint64_t quota)
{
    const struct sl_opts *o = l->o;
    struct stomp_limits lim = {.max_headers = 1000,
                               .max_header_line = 64 * 1024,
                               .max_body = o->size + (64u << 20),
                               .max_frame = o->size + (65u << 20)};
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->st = CS_CLOSED;
    c->producer = producer;
    c->quota = quota;
    int r = stomp_parser_init(&c->parser, &lim);
    if (r < 0)
        return r;
    if (producer && o->window) {
        c->free_slots = calloc(o->window, sizeof *c->free_slots);
        c->slot_t0 = calloc(o->window, sizeof *c->slot_t0);
        if (!c->free_slots || !c->slot_t0)
            return -ENOMEM;
        for (unsigned i = 0; i < o->window; i++)
            c->free_slots[c->nfree++] = o->window - 1 - i;
    }
    r = tcp_connect(o, &c->fd);
    if (r < 0)
        return r;
    c->st = CS_WAIT_CONNECTED;
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr,
                     "CONNECT\naccept-version:1.0,1.1,1.2\nhost:%s\nheart-beat:0,0\n%s%s%s%s%s%s\n",
                     o->vhost, o->login ? "login:" : "", o->login ? o->login : "",
                     o->login ? "\n" : "", o->passcode ? "passcode:" : "",
                     o->passcode ? o->passcode : "", o->passcode ? "\n" : "");
    if (n < 0 || (size_t)n >= sizeof hdr || out_add(c, hdr, (size_t)n + 1) < 0)
        return -EINVAL;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return -errno;
    /* Non-blocking from here on: the loop must never stall on one socket. */
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int build_templates(struct loop *l)
{
    const struct sl_opts *o = l->o;
    size_t dl = strlen(o->dest);
    l->send_prefix = malloc(dl + 64);
    l->send_suffix = malloc(64);
    l->body = malloc(o->size ? o->size : 1);
    l->rbuf = malloc(READ_CHUNK);
    if (!l->send_prefix || !l->send_suffix || !l->body || !l->rbuf)
        return -ENOMEM;
    l->send_prefix_len = (size_t)sprintf(l->send_prefix, "SEND\ndestination:%s\n%s", o->dest,
                                         o->persistent ? "persistent:true\n" : "");
    l->send_suffix_len = (size_t)sprintf(l->send_suffix, "content-length:%zu\n\n", o->size);
    /* Printable, NUL-free bytes that differ along the body (not all one byte). */
    for (size_t i = 0; i < o->size; i++)
        l->body[i] = (uint8_t)('a' + i % 26);
    return 0;
}

static bool producers_done(const struct loop *l)
{
    for (size_t i = 0; i < l->nc; i++) {
        const struct conn *c = &l->c[i];
        if (!c->producer || c->st == CS_CLOSED)
            continue;
        bool more = !l->stop_sending && c->quota > 0;
        if (more || c->outstanding > 0 || c->out_off < c->out_len)
            return false;
    }
    return true;
}

static bool all_closed(const struct loop *l, bool producers)
{
    for (size_t i = 0; i < l->nc; i++)
        if (l->c[i].producer == producers && l->c[i].st != CS_CLOSED)
            return false;
    return true;
}

/* Consumers are done when the count is reached, when everything produced in
 * this run has been consumed, or when they have been idle for idle_s after
 * the producers finished (or, without producers, after the last message). */
static bool consumers_done(const struct loop *l, uint64_t now, bool prod_done)
{
    const struct sl_opts *o = l->o;
    const struct sl_result *r = l->res;
    if (o->consumers == 0 || all_closed(l, false))
        return true;
    if (o->producers == 0 && o->count && r->consumed >= o->count)
        return true;
    if (o->producers > 0 && prod_done && r->consumed >= (o->window ? r->receipted : r->sent))
        return true;
    if (o->producers == 0 && o->duration > 0 && now >= l->t_deadline)
        return true;
    uint64_t idle = (uint64_t)(o->idle_s * 1e9);
    uint64_t since = l->t_last_msg ? l->t_last_msg : l->t_start;
    if ((o->producers == 0 || prod_done) && now - since >= idle)
        return true;
    return false;
}

static void event_round(struct loop *l, int timeout_ms)
{
    struct epoll_event evs[64];
    int n = epoll_wait(l->ep, evs, 64, timeout_ms);
    for (int i = 0; i < n; i++) {
        struct conn *c = evs[i].data.ptr;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            conn_read(l, c);
        producer_fill(l, c);
        conn_flush(l, c);
    }
}

static void start_clock(struct loop *l)
{
    l->t_start = sl_now_ns();
    if (l->o->duration > 0)
        l->t_deadline = l->t_start + (uint64_t)(l->o->duration * 1e9);
    for (size_t i = 0; i < l->nc; i++) {
        producer_fill(l, &l->c[i]);
        conn_flush(l, &l->c[i]);
    }
}

static void run_loop(struct loop *l)
{
    const struct sl_opts *o = l->o;
    uint64_t t0 = sl_now_ns(), grace = (uint64_t)(o->grace_s * 1e9), hard_end = 0;

    /* Every connection answers CONNECT (and the consumers subscribe) before the clock starts. */
    while (l->connected < l->nc && sl_now_ns() - t0 < grace &&
           !(all_closed(l, true) && all_closed(l, false)))
        event_round(l, 50);
    if (l->connected < l->nc) {
        note_error(l, "not every connection got CONNECTED within the grace time%s%s", NULL, NULL);
        return;
    }
    start_clock(l);
    for (;;) {
        uint64_t now = sl_now_ns();
        if (o->duration > 0 && now >= l->t_deadline && !l->stop_sending)
            l->stop_sending = true;
        bool pd = o->producers == 0 || producers_done(l) || all_closed(l, true);
        if (pd && !l->stop_sending)
            l->stop_sending = true;
        if (pd && consumers_done(l, now, pd))
            break;
        if (l->stop_sending && !hard_end)
            hard_end = now + grace + (uint64_t)(o->idle_s * 1e9);
        if (hard_end && now >= hard_end) {
            note_error(l, "gave up waiting for receipts or messages after the grace time%s%s", NULL,
                       NULL);
            break;
        }
        event_round(l, 10);
    }
}

static void finish(struct loop *l)
{
    struct sl_result *r = l->res;
    uint64_t end_p = l->t_last_receipt ? l->t_last_receipt : sl_now_ns();
    if (l->o->window == 0)
        end_p = sl_now_ns();
    r->produce_s = l->t_start ? (double)(end_p - l->t_start) / 1e9 : 0;
    r->consume_s = l->t_last_msg ? (double)(l->t_last_msg - l->t_start) / 1e9 : 0;
    for (size_t i = 0; l->c && i < l->nc; i++) {
        struct conn *c = &l->c[i];
        if (c->st != CS_CLOSED) {
            static const char bye[] = "DISCONNECT\n\n";
            if (out_add(c, bye, sizeof bye) == 0) {
                int fl = fcntl(c->fd, F_GETFL);
                if (fl >= 0)
                    fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
                conn_flush(l, c);
            }
            conn_close(l, c);
        }
        stomp_parser_free(&c->parser);
        free(c->out);
        free(c->free_slots);
        free(c->slot_t0);
    }
}

int sl_run(const struct sl_opts *o, struct sl_result *res)
{
    struct loop l = {.o = o, .res = res, .ep = -1};
    int r = build_templates(&l);

    memset(res, 0, sizeof *res);
    l.nc = (size_t)o->producers + o->consumers;
    l.c = calloc(l.nc ? l.nc : 1, sizeof *l.c);
    l.ep = epoll_create1(EPOLL_CLOEXEC);
    if (r == 0 && (!l.c || l.ep < 0))
        r = l.c ? -errno : -ENOMEM;
    for (size_t i = 0; l.c && i < l.nc; i++) {
        l.c[i].fd = -1;
        l.c[i].st = CS_CLOSED;
    }
    /* Consumers first, so that in a produce+consume run they are subscribed early. */
    for (size_t i = 0; r == 0 && i < l.nc; i++) {
        bool prod = i >= o->consumers;
        uint64_t quota = 0;
        if (prod) {
            size_t pi = i - o->consumers;
            quota =
                !o->count ? UINT64_MAX : o->count / o->producers + (pi < o->count % o->producers);
        }
        r = conn_open(&l, &l.c[i], prod, quota);
        if (r < 0 && r != -ECONNREFUSED && r != -EINVAL)
            fprintf(stderr, "hamq-stomp-load: opening connection %zu: %s\n", i, strerror(-r));
    }
    if (r == 0)
        run_loop(&l);
    finish(&l);
    if (l.ep >= 0)
        close(l.ep);
    free(l.c);
    free(l.send_prefix);
    free(l.send_suffix);
    free(l.body);
    free(l.rbuf);
    return r;
}
