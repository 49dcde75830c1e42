/*
 * stomp_session — the STOMP protocol state machine of one client connection,
 * transport-free (STYLE #12). The worker's epoll loop owns the socket and
 * drives it:
 *
 *   read(fd) → stomp_session_input(s, buf, len) → callbacks into the broker
 *   stomp_session_output(s, &p, &n) → write(fd) → stomp_session_consumed_output(s, k)
 *   timer    → stomp_session_tick(s, now_ms)
 *   broker   → stomp_session_deliver / _receipt / _error
 *   stomp_session_should_close(s) && output empty → close(fd)
 *
 * Input flow: input() parses frames one by one and calls one callback per
 * client frame. A callback returns 0 (done: a requested RECEIPT is sent at
 * once), STOMP_DEFER (the broker will call stomp_session_receipt() later, e.g.
 * after the journal write), -EAGAIN (back-pressure: the frame is kept, input
 * returns what it consumed so far; call stomp_session_resume() when there is
 * room, then feed the rest) or another negative errno (the session sends an
 * ERROR frame naming the frame and closes).
 *
 * Protocol violations (frames before CONNECT, unknown subscription, unknown
 * transaction, bad header values, limits) produce one ERROR frame, set
 * "close after flush", and input() returns -EPROTO; further input is refused
 * with -ESHUTDOWN.
 *
 * Pointers in callback arguments point into the parser's buffer and are valid
 * only during the callback (and, after -EAGAIN, until the next resume/input).
 *
 * Decisions (documented in daemons/worker/README.md):
 *  - `host` on CONNECT is optional unless cfg.require_host (Artemis ignores it);
 *  - an ACK/NACK naming an unknown message is an ERROR (spec allows it);
 *  - NACK is passed to the broker as a NACK (we redeliver, Artemis drops);
 *  - client ack mode is cumulative for ACK and NACK: the broker receives the
 *    list of every pending delivery token of that subscription up to the one
 *    named.
 */
#ifndef HAMQ_STOMP_SESSION_H
#define HAMQ_STOMP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stomp_codec.h"

#define STOMP_DEFER 1

enum stomp_ack_mode {
    STOMP_ACK_AUTO = 0,
    STOMP_ACK_CLIENT,
    STOMP_ACK_CLIENT_INDIVIDUAL,
};

enum stomp_routing {
    STOMP_ROUTING_DEFAULT = 0, /* neither prefix nor header: the broker's default */
    STOMP_ROUTING_ANYCAST,
    STOMP_ROUTING_MULTICAST,
};

/* A destination split into address, routing type and FQQN queue. Points into
 * the string given to stomp_dest_parse(). */
struct stomp_dest {
    const char *address;
    size_t address_len;
    const char *queue; /* NULL unless FQQN "address::queue" */
    size_t queue_len;
    enum stomp_routing routing;
};

/* "/queue/x" → anycast x, "/topic/x" → multicast x, "x" → routing from
 * type_header ("ANYCAST"/"MULTICAST", case-sensitive, may be NULL), which also
 * overrides a prefix (Artemis precedence). "a::q" is an FQQN. Returns 0 or
 * -EINVAL (empty name, empty FQQN part, bad type value). */
int stomp_dest_parse(const char *dest, const char *type_header, struct stomp_dest *out);

struct stomp_connect_info {
    enum stomp_version version;
    const char *login, *passcode, *host, *client_id; /* NULL when absent */
    uint32_t hb_send_ms, hb_recv_ms;                 /* negotiated, 0 = off */
};

struct stomp_send_info {
    const char *destination;
    struct stomp_dest dest;
    const char *transaction, *receipt; /* NULL when absent */
    bool persistent;
    const struct stomp_header *headers; /* every header of the frame */
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
};

struct stomp_subscribe_info {
    const char *id;
    const char *destination;
    struct stomp_dest dest; /* routing from subscription-type */
    enum stomp_ack_mode ack;
    const char *selector;     /* NULL when absent */
    const char *durable_name; /* durable-subscription-name > durable-subscriber-name >
                                 activemq.subscriptionName */
    bool no_local;
    int64_t window; /* consumer-window-size > activemq.prefetchSize > default; -1 = unbounded */
    const char *receipt;
};

struct stomp_ack_info {
    bool nack;
    const char *subscription_id;
    const char *message_id; /* as named by the client */
    const uint64_t *tokens; /* broker tokens of the deliveries acked, oldest first */
    size_t ntokens;
    const char *transaction; /* NULL when absent */
    const char *receipt;
};

enum stomp_tx_op { STOMP_TX_BEGIN, STOMP_TX_COMMIT, STOMP_TX_ABORT };

/* Broker callbacks; ctx is cfg.ctx. Any may be NULL (treated as "return 0"). */
struct stomp_session_ops {
    int (*on_connect)(void *ctx, const struct stomp_connect_info *ci); /* <0: refused */
    int (*on_send)(void *ctx, const struct stomp_send_info *si);
    int (*on_subscribe)(void *ctx, const struct stomp_subscribe_info *si);
    int (*on_unsubscribe)(void *ctx, const char *id, const char *receipt);
    int (*on_ack)(void *ctx, const struct stomp_ack_info *ai);
    int (*on_tx)(void *ctx, enum stomp_tx_op op, const char *tx, const char *receipt);
    int (*on_disconnect)(void *ctx, const char *receipt);
};

struct stomp_session_config {
    struct stomp_limits limits;
    uint32_t hb_send_ms;         /* how often we can send heart-beats (0 = never) */
    uint32_t hb_recv_ms;         /* how often we want them from the client (0 = never) */
    const char *server;          /* CONNECTED `server` header, NULL = none; copied by _new */
    const char *session_id;      /* CONNECTED `session` header, NULL = none; copied by _new */
    bool require_host;           /* refuse a 1.1/1.2 CONNECT without `host` */
    uint32_t connect_timeout_ms; /* no CONNECT this long after the first tick: late (0 = off) */
    size_t max_subscriptions;
    size_t max_transactions;
    int64_t default_window_client; /* prefetch default for client/client-individual */
    int64_t default_window_auto;   /* for auto (-1 = unbounded) */
    const struct stomp_session_ops *ops;
    void *ctx;
};

/* Fills cfg with defaults (limits: 64 KiB frame headers, 1000 headers, 100 MiB body;
 * heart-beats 10000/10000; CONNECT within 30000; 1000 subscriptions; 100 transactions;
 * windows 10240/-1). */
void stomp_session_config_defaults(struct stomp_session_config *cfg);

struct stomp_session;

/* NULL on -ENOMEM or invalid limits (errno set). */
struct stomp_session *stomp_session_new(const struct stomp_session_config *cfg);
void stomp_session_free(struct stomp_session *s);

/* Bytes consumed (≥ 0; fewer than len only after -EAGAIN from a callback),
 * -EPROTO/-EMSGSIZE after a violation (ERROR queued, close flagged),
 * -ESHUTDOWN when closing, -EAGAIN if a frame is still waiting (call resume). */
ssize_t stomp_session_input(struct stomp_session *s, const uint8_t *buf, size_t len);
/* Retry the frame a callback refused with -EAGAIN. 0 done, -EAGAIN still busy,
 * other negative: as input(). */
int stomp_session_resume(struct stomp_session *s);
bool stomp_session_stalled(const struct stomp_session *s);

void stomp_session_output(const struct stomp_session *s, const uint8_t **ptr, size_t *len);
void stomp_session_consumed_output(struct stomp_session *s, size_t n);
/* True once an ERROR was sent or DISCONNECT handled: flush output, then close. */
bool stomp_session_should_close(const struct stomp_session *s);

bool stomp_session_connected(const struct stomp_session *s);
enum stomp_version stomp_session_version(const struct stomp_session *s);
/* Negotiated intervals in ms (0 = off): we send every *send_ms, the peer is
 * expected every *recv_ms. */
void stomp_session_heartbeat(const struct stomp_session *s, uint32_t *send_ms, uint32_t *recv_ms);

enum stomp_tick {
    STOMP_TICK_OK = 0,
    STOMP_TICK_PEER_LATE, /* nothing received for 2 × recv interval, or no CONNECT within
                             connect_timeout_ms: close the connection */
};
/*
 * Call from a timer (every min(send, recv)/2 ms or more often; the first call
 * starts the clock). Activity is tracked from input/output byte counters
 * between ticks. Queues a heart-beat EOL when nothing was sent for the send
 * interval. While the session is stalled (a callback said -EAGAIN) the peer is
 * never late; a worker that stops reading for its own reasons must ignore
 * PEER_LATE meanwhile.
 */
enum stomp_tick stomp_session_tick(struct stomp_session *s, uint64_t now_ms);

struct stomp_delivery {
    const char *subscription_id;
    const char *message_id; /* unique per connection while unacked */
    const char *destination;
    const struct stomp_header *headers; /* extra headers; reserved ones are skipped */
    size_t nheaders;
    const void *body;
    size_t body_len;
    uint64_t token; /* returned in stomp_ack_info.tokens */
};
/* Queues a MESSAGE. Extra headers the client's version cannot carry (newline
 * in 1.0, CR in 1.1, empty name) are left out. 0, -ENOENT (no such
 * subscription), -EINVAL (subscription id, message id or destination not
 * representable), -ENOMEM, -ESHUTDOWN. */
int stomp_session_deliver(struct stomp_session *s, const struct stomp_delivery *d);
/* Queues RECEIPT receipt-id; when it answers the DISCONNECT, flags close. */
int stomp_session_receipt(struct stomp_session *s, const char *receipt_id);
/* Queues ERROR (message header, text body, optional receipt-id) and flags close. */
int stomp_session_error(struct stomp_session *s, const char *message, const char *detail,
                        const char *receipt_id);

size_t stomp_session_pending_acks(const struct stomp_session *s);
size_t stomp_session_open_transactions(const struct stomp_session *s);

#endif
