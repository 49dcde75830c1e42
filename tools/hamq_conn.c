/*
 * hamq_conn — the client side of one AMQP connection for the hamq command:
 * a blocking TCP socket, Proton's pn_connection_driver and a poll() loop
 * that hands every Proton event to the running subcommand (struct hq_app).
 *
 * Failover: --url may be a list "(tcp://a:61616,tcp://b:61617)" (also
 * "failover:(...)"). When the connection is lost and the subcommand allows
 * it, the loop tries the next URL, round robin, every 250 ms, until
 * --reconnect-timeout; the subcommand's setup() then re-creates its links
 * and decides what to resend (at-least-once: duplicates are possible).
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/sasl.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hamq.h"

#define RECONNECT_PAUSE_MS 250
#define CONNECT_TIMEOUT_MS 3000
#define LOOP_POLL_MS       20
#define READS_PER_POLL     16 /* reads of up to Proton's buffer after one poll */

int64_t hq_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_one(const char *s, size_t len, struct hq_url *u, char *err, size_t errlen)
{
    char tmp[300];
    const char *p = tmp;

    if (len >= sizeof(tmp)) {
        snprintf(err, errlen, "URL too long: %.*s", (int)len, s);
        return -EINVAL;
    }
    memcpy(tmp, s, len);
    tmp[len] = 0;
    char *q = strchr(tmp, '?'); /* options (Artemis ?confirmationWindowSize=...) are ignored */
    if (q)
        *q = 0;
    if (strncmp(p, "tcp://", 6) == 0 || strncmp(p, "amqp://", 7) == 0)
        p = strstr(p, "://") + 3;
    else if (strstr(p, "://")) {
        snprintf(err, errlen, "unsupported URL scheme in '%s' (use tcp:// or amqp://)", tmp);
        return -EINVAL;
    }
    if (!*p) {
        snprintf(err, errlen, "empty URL in '%.*s'", (int)len, s);
        return -EINVAL;
    }
    const char *colon = strrchr(p, ':');
    if (*p == '[') { /* IPv6: tcp://[::1]:61616 */
        const char *rb = strchr(p, ']');
        if (!rb || (rb[1] && rb[1] != ':')) {
            snprintf(err, errlen, "bad IPv6 address in URL '%s' (use [addr]:port)", tmp);
            return -EINVAL;
        }
        colon = rb[1] == ':' ? rb + 1 : NULL;
        snprintf(u->host, sizeof(u->host), "%.*s", (int)(rb - p - 1), p + 1);
    } else {
        size_t hl = colon ? (size_t)(colon - p) : strlen(p);
        snprintf(u->host, sizeof(u->host), "%.*s", (int)hl, p);
    }
    if (!u->host[0])
        snprintf(u->host, sizeof(u->host), "localhost");
    snprintf(u->port, sizeof(u->port), "%s", colon ? colon + 1 : "61616");
    char *end;
    long port = strtol(u->port, &end, 10);
    if (*end || port <= 0 || port > 65535) {
        snprintf(err, errlen, "bad port in URL '%s'", tmp);
        return -EINVAL;
    }
    return 0;
}

int hq_parse_url(const char *url, struct hq_opts *o, char *err, size_t errlen)
{
    const char *s = url;
    size_t len = strlen(s);

    if (strncmp(s, "failover:", 9) == 0) {
        s += 9;
        len -= 9;
    }
    o->nurls = 0;
    if (len && s[0] == '(') {
        const char *close = strchr(s, ')');
        if (!close) {
            snprintf(err, errlen, "unbalanced '(' in URL '%s'", url);
            return -EINVAL;
        }
        s++;
        len = (size_t)(close - s);
    }
    while (len) {
        const char *comma = memchr(s, ',', len);
        size_t l = comma ? (size_t)(comma - s) : len;
        if (o->nurls == HQ_MAX_URLS) {
            snprintf(err, errlen, "at most %d URLs in a failover list", HQ_MAX_URLS);
            return -EINVAL;
        }
        int r = parse_one(s, l, &o->urls[o->nurls], err, errlen);
        if (r < 0)
            return r;
        o->nurls++;
        s += l + (comma ? 1 : 0);
        len -= l + (comma ? 1 : 0);
    }
    if (!o->nurls) {
        snprintf(err, errlen, "empty URL");
        return -EINVAL;
    }
    return 0;
}

static int tcp_connect(const struct hq_url *u, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int r = getaddrinfo(u->host, u->port, &hints, &res), fd = -1;

    if (r != 0) {
        snprintf(err, errlen, "%s:%s: %s", u->host, u->port, gai_strerror(r));
        return -EHOSTUNREACH;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
                /* small frames (dispositions, flow) must not wait for Nagle + delayed ACK */
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                break;
            }
            errno = soerr ? soerr : ETIMEDOUT;
        }
        snprintf(err, errlen, "%s:%s: %s", u->host, u->port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd < 0 ? -ECONNREFUSED : fd;
}

void hq_conn_fini(struct hq_conn *c)
{
    if (c->have_driver)
        pn_connection_driver_destroy(&c->d);
    c->have_driver = false;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int open_conn(struct hq_conn *c, struct hq_app *app)
{
    const struct hq_opts *o = c->o;
    char container[64];
    int fd = tcp_connect(&o->urls[c->cur], c->err, sizeof(c->err));

    if (fd < 0)
        return fd;
    c->fd = fd;
    if (pn_connection_driver_init(&c->d, NULL, NULL) != 0) {
        snprintf(c->err, sizeof(c->err), "out of memory");
        close(fd);
        c->fd = -1;
        return -ENOMEM;
    }
    c->have_driver = true;
    c->lost = false;
    pn_connection_t *conn = c->d.connection;
    if (c->index > 0) /* perf --threads: every connection its own container id */
        snprintf(container, sizeof(container), "hamq-cli-%d-%d", (int)getpid(), c->index);
    else
        snprintf(container, sizeof(container), "hamq-cli-%d", (int)getpid());
    pn_connection_set_container(conn, container);
    pn_connection_set_hostname(conn, o->urls[c->cur].host);
    if (o->user)
        pn_connection_set_user(conn, o->user);
    if (o->password)
        pn_connection_set_password(conn, o->password);
    pn_sasl_set_allow_insecure_mechs(pn_sasl(c->d.transport), true);
    pn_connection_open(conn);
    app->setup(app, conn);
    return 0;
}

static void note_error(struct hq_conn *c, pn_condition_t *cond)
{
    if (cond && pn_condition_is_set(cond))
        snprintf(c->err, sizeof(c->err), "%s: %s", pn_condition_get_name(cond),
                 pn_condition_get_description(cond) ? pn_condition_get_description(cond) : "");
}

static void dispatch(struct hq_conn *c, struct hq_app *app)
{
    pn_event_t *e;

    while ((e = pn_connection_driver_next_event(&c->d))) {
        switch (pn_event_type(e)) {
        case PN_TRANSPORT_ERROR:
            note_error(c, pn_transport_condition(pn_event_transport(e)));
            break;
        case PN_CONNECTION_REMOTE_CLOSE:
            note_error(c, pn_connection_remote_condition(pn_event_connection(e)));
            pn_connection_close(pn_event_connection(e));
            break;
        case PN_TRANSPORT_CLOSED:
            c->lost = true;
            break;
        default:
            break;
        }
        app->on_event(app, e);
    }
}

static void do_io(struct hq_conn *c, int timeout_ms)
{
    pn_bytes_t wb = pn_connection_driver_write_buffer(&c->d);
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

    if (wb.size) {
        ssize_t n = send(c->fd, wb.start, wb.size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            pn_connection_driver_write_done(&c->d, (size_t)n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            pn_connection_driver_close(&c->d);
        if (pn_connection_driver_write_buffer(&c->d).size)
            pfd.events |= POLLOUT;
    }
    if (pn_connection_driver_read_closed(&c->d))
        pfd.events &= (short)~POLLIN;
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return;
    if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    /*
     * Proton's read buffer is small (16 KiB: ~15 transfers of 1 KiB), so one
     * read per poll would pay a poll and a loop round for every few messages:
     * read on until the socket is empty, for a bounded number of rounds.
     */
    for (int i = 0; i < READS_PER_POLL; i++) {
        pn_rwbytes_t rb = pn_connection_driver_read_buffer(&c->d);
        if (!rb.size)
            return;
        ssize_t n = recv(c->fd, rb.start, rb.size, MSG_DONTWAIT);
        if (n > 0) {
            pn_connection_driver_read_done(&c->d, (size_t)n);
            if ((size_t)n < rb.size)
                return; /* the socket is empty */
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        } else {
            if (!c->err[0])
                snprintf(c->err, sizeof(c->err), "connection lost: %s",
                         n == 0 ? "closed by the broker" : strerror(errno));
            pn_connection_driver_close(&c->d);
            return;
        }
    }
}

/* Closes the connection politely (waits up to 1 s for the broker's close). */
static bool close_conn(struct hq_conn *c, struct hq_app *app)
{
    int64_t deadline = hq_now_ms() + 1000;

    pn_connection_close(c->d.connection);
    while (!pn_connection_driver_finished(&c->d) && hq_now_ms() < deadline) {
        dispatch(c, app);
        do_io(c, LOOP_POLL_MS);
    }
    /* The broker's close came after everything we sent before ours (one TCP stream). */
    return (pn_connection_state(c->d.connection) & PN_REMOTE_CLOSED) != 0;
}

void hq_flush(struct hq_conn *c)
{
    for (int i = 0; i < READS_PER_POLL && c->fd >= 0; i++) {
        pn_bytes_t wb = pn_connection_driver_write_buffer(&c->d);
        if (!wb.size)
            return;
        ssize_t n = send(c->fd, wb.start, wb.size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            return; /* the loop's poll deals with a full socket or an error */
        pn_connection_driver_write_done(&c->d, (size_t)n);
    }
}

static int reconnect(struct hq_conn *c, struct hq_app *app, int64_t deadline)
{
    const struct hq_opts *o = c->o;

    for (;;) {
        hq_conn_fini(c);
        if (hq_now_ms() >= deadline)
            return -ETIMEDOUT;
        c->cur = (c->cur + 1) % o->nurls;
        struct timespec ts = {0, RECONNECT_PAUSE_MS * 1000000L};
        nanosleep(&ts, NULL);
        if (open_conn(c, app) == 0) {
            c->reconnects++;
            fprintf(stderr, "Reconnected to tcp://%s:%s\n", o->urls[c->cur].host,
                    o->urls[c->cur].port);
            return 0;
        }
    }
}

int hq_run(struct hq_conn *c, struct hq_app *app)
{
    const struct hq_opts *o = c->o;
    int64_t deadline = hq_now_ms() + (o->reconnect_timeout > 0 ? o->reconnect_timeout : 0);
    int r = -1;

    c->fd = -1;
    app->conn = c;
    for (int i = 0; i < o->nurls && r < 0; i++) {
        c->cur = i;
        r = open_conn(c, app);
    }
    if (r < 0 && app->failover)
        r = reconnect(c, app, deadline);
    if (r < 0) {
        fprintf(stderr, "Connection failed::%s\n", c->err);
        return HQ_EXIT_CONNECT;
    }
    while (!app->done) {
        dispatch(c, app);
        if (app->tick(app, hq_now_ms())) {
            app->done = true;
            break;
        }
        if (c->lost || pn_connection_driver_finished(&c->d)) {
            deadline = hq_now_ms() + (o->reconnect_timeout > 0 ? o->reconnect_timeout : 0);
            if (!app->failover || o->nurls < 1 || reconnect(c, app, deadline) < 0) {
                fprintf(stderr, "Connection failed::%s\n", c->err[0] ? c->err : "closed");
                hq_conn_fini(c);
                return HQ_EXIT_CONNECT;
            }
            continue;
        }
        do_io(c, LOOP_POLL_MS);
    }
    bool closed = close_conn(c, app);
    hq_conn_fini(c);
    if (!closed && app->close_must_finish) {
        fprintf(stderr, "The broker did not answer the close: the acceptance of the last "
                        "messages may not have reached it (it will deliver them again)\n");
        return HQ_EXIT_FAILED;
    }
    return 0;
}

/* Per thread (hamq perf --threads runs one connection per thread). */
static _Thread_local pn_rwbytes_t send_buf;

pn_delivery_t *hq_send_message(pn_link_t *l, pn_message_t *msg, uint64_t tag, bool settle,
                               const pn_bytes_t *txn)
{
    pn_rwbytes_t *buf = &send_buf;
    ssize_t n = pn_message_encode2(msg, buf);
    pn_delivery_t *dl;

    if (n < 0)
        return NULL;
    dl = pn_delivery(l, pn_dtag((const char *)&tag, sizeof(tag)));
    pn_link_send(l, buf->start, (size_t)n);
    if (txn) {
        /* transactional-state [txn-id]: set before the transfer frame is written */
        pn_data_t *d = pn_disposition_data(pn_delivery_local(dl));
        pn_data_clear(d);
        pn_data_put_list(d);
        pn_data_enter(d);
        pn_data_put_binary(d, *txn);
        pn_data_exit(d);
        pn_delivery_update(dl, HQ_TXN_STATE);
    }
    pn_link_advance(l);
    if (settle)
        pn_delivery_settle(dl);
    return dl;
}

/* Partial transfers are assembled per link: links' frames may interleave. */
struct rx_buf {
    pn_link_t *l;
    char *buf;
    size_t cap, len;
};
static _Thread_local struct rx_buf rx_bufs[HQ_MAX_THREADS + 4];

void hq_conn_thread_done(void)
{
    for (size_t i = 0; i < sizeof(rx_bufs) / sizeof(rx_bufs[0]); i++) {
        free(rx_bufs[i].buf);
        rx_bufs[i] = (struct rx_buf){0};
    }
    free(send_buf.start);
    send_buf = (pn_rwbytes_t){0};
}

static struct rx_buf *rx_for(pn_link_t *l)
{
    struct rx_buf *free_slot = NULL;

    for (size_t i = 0; i < sizeof(rx_bufs) / sizeof(rx_bufs[0]); i++) {
        if (rx_bufs[i].l == l)
            return &rx_bufs[i];
        if (!free_slot && rx_bufs[i].len == 0)
            free_slot = &rx_bufs[i];
    }
    if (free_slot)
        free_slot->l = l;
    return free_slot;
}

bool hq_read_message(pn_delivery_t *dl, pn_message_t *msg)
{
    pn_link_t *l = pn_delivery_link(dl);
    struct rx_buf *b = rx_for(l);
    size_t want = pn_delivery_pending(dl);

    if (!b)
        return false;
    if (b->len + want > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->len + want)
            nc *= 2;
        char *nb = realloc(b->buf, nc);
        if (!nb)
            return false;
        b->buf = nb;
        b->cap = nc;
    }
    ssize_t n = pn_link_recv(l, b->buf + b->len, want);
    if (n > 0)
        b->len += (size_t)n;
    if (pn_delivery_partial(dl))
        return false;
    pn_link_advance(l);
    int r = pn_message_decode(msg, b->buf, b->len);
    b->len = 0;
    return r == 0;
}

void hq_set_caps(pn_terminus_t *t, bool topic)
{
    pn_data_t *d = pn_terminus_capabilities(t);

    pn_data_put_array(d, false, PN_SYMBOL);
    pn_data_enter(d);
    pn_data_put_symbol(d, topic ? pn_bytes(5, "topic") : pn_bytes(5, "queue"));
    pn_data_exit(d);
}

const char *hq_dest_name(const struct hq_opts *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s[%s]", o->topic ? "ActiveMQTopic" : "ActiveMQQueue", o->address);
    return buf;
}
