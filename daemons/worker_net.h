/*
 * worker_net — the client-facing sockets of one hamq-worker: listeners (with
 * SO_REUSEPORT, so N workers share a port and the kernel spreads connections)
 * and per-connection byte buffers. Knows nothing of STOMP or AMQP: a
 * connection is handed to a protocol through `struct wnet_proto` once its
 * first bytes tell which one (on the all-protocols port) or at accept (on a
 * protocol's own port).
 *
 * Back-pressure: wnet_pause_input() stops reading a connection (EPOLLIN off),
 * so a full ring turns into a full TCP window, never a drop.
 * Output: the protocol appends to its own buffer; wnet_flush() writes what the
 * kernel takes and keeps EPOLLOUT armed until the rest is gone.
 */
#ifndef HAMQ_WORKER_NET_H
#define HAMQ_WORKER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hamq/evloop.h"

struct wnet;
struct wconn;

enum wnet_kind { WNET_SNIFF = 0, WNET_STOMP, WNET_AMQP };

struct wnet_proto {
    const char *name;
    /* A new connection of this protocol: returns the protocol's state or NULL (closes). */
    void *(*open)(void *ctx, struct wconn *c);
    /* Bytes from the client; returns bytes consumed (< len means "paused"), or <0 to close. */
    ssize_t (*input)(void *state, const uint8_t *buf, size_t len);
    /* Output the protocol wants written: pointer + length, may be 0. */
    void (*output)(void *state, const uint8_t **p, size_t *len);
    void (*consumed)(void *state, size_t n);
    /* True when the protocol wants the connection closed once output is flushed. */
    bool (*should_close)(void *state);
    /* The connection is gone (peer closed, error, or shutdown): free state. */
    void (*close)(void *state, const char *why);
    void *ctx;
};

/* Sniff: which protocol do these first bytes start? -1 = need more bytes, -2 = none. */
int wnet_sniff(const uint8_t *buf, size_t len);

int wnet_new(struct evloop *loop, struct wnet **out);
void wnet_free(struct wnet *n);
void wnet_set_proto(struct wnet *n, enum wnet_kind kind, const struct wnet_proto *p);

/* Listens on bind:port with SO_REUSEPORT; -errno (e.g. -EADDRINUSE) with err filled. */
int wnet_listen(struct wnet *n, const char *bind_addr, int port, enum wnet_kind kind, char *err,
                size_t errlen);

/* Writes what it can of the protocol's output; closes if the protocol asked to. */
void wnet_flush(struct wconn *c);
void wnet_pause_input(struct wconn *c);
void wnet_resume_input(struct wconn *c);
void wnet_close(struct wconn *c, const char *why);
/* Closes every connection (core gone, shutdown). */
void wnet_close_all(struct wnet *n, const char *why);
uint64_t wnet_conn_id(const struct wconn *c);
const char *wnet_peer_name(const struct wconn *c);
size_t wnet_conn_count(const struct wnet *n);
/* For the protocol layer: call wnet_flush on every connection with pending output. */
void wnet_flush_all(struct wnet *n);

#endif
