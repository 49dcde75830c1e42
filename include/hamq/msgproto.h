/*
 * msgproto — the records a protocol worker and the broker core exchange
 * through the shm rings, and the protocol-neutral encoded message that
 * travels inside them (and that the store journals as an opaque body).
 *
 * Who uses it: hamq-worker encodes worker→core records and decodes
 * core→worker records (it links daemons/core/libhamqmsg.a alone, never the
 * engine); hamq-journal does the reverse (daemons/core/core-records.c).
 *
 * Wire rules (both the records and the encoded message):
 *  - every integer is little-endian, written and read byte by byte through
 *    the codec (no struct is ever cast onto ring bytes, so no alignment or
 *    padding question arises and a record is valid at any offset);
 *  - a "str" is u32 length, the bytes, then one NUL byte; the length does
 *    not count the NUL; a str never contains a NUL itself. The decoder
 *    checks both, so a decoded str is a valid C string in place.
 *  - a "bin" is u32 length then the bytes (no NUL).
 *  - a record starts with struct msgproto_hdr; `length` counts the header
 *    and must equal the ring record's payload length exactly (trailing
 *    bytes are an error, as are missing ones).
 * Compatibility: record types and field order are frozen once released;
 * a new field goes at the end of a record and raises MSGPROTO_VERSION; a
 * decoder accepts only the version it knows (worker and core of one
 * installation are built together; HELLO carries the version so a mixed
 * pair is refused with a clear error instead of misreading).
 * Every decode of outside bytes is bounds checked: a malformed record gives
 * -EBADMSG (bad layout), -EPROTO (unknown type or version) or -EMSGSIZE,
 * never an out-of-bounds read (tests/core/test_msgproto_fuzz.c).
 */
#ifndef HAMQ_MSGPROTO_H
#define HAMQ_MSGPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MSGPROTO_VERSION 1u
/* Largest str accepted (addresses, queue names, selectors, texts). */
#define MSGPROTO_STR_MAX (64u * 1024u)

/*
 * The largest record (reassembled from FRAGMENTs) a side accepts for messages
 * of at most max_message_size. The workers hold clients to max_message_size
 * on what the client sent (a STOMP body, an AMQP message's encoding); the
 * record then carries that plus the header fields and properties decoded
 * from it (for AMQP at most the encoding's size again: the properties are in
 * both) and the record's own strings. So a message at the limit always fits,
 * and the bound still stops a runaway record.
 */
static inline uint64_t msgproto_record_max(uint64_t max_message_size)
{
    return 2 * max_message_size + 65536 + 4 * (uint64_t)MSGPROTO_STR_MAX;
}

/*
 * Record header, at byte 0 of every record. Written by the sender before
 * the ring publishes the record; read by the receiver after it; nothing in
 * it changes afterwards, so it needs no synchronisation of its own.
 *   type    enum msgproto_type
 *   version MSGPROTO_VERSION
 *   flags   per-type flags (MSGPROTO_F_*), 0 when the type defines none
 *   length  total bytes of the record including this header
 */
struct msgproto_hdr {
    uint16_t type;
    uint8_t version;
    uint8_t flags;
    uint32_t length;
};
_Static_assert(sizeof(struct msgproto_hdr) == 8, "msgproto header is 8 bytes on the wire");
#define MSGPROTO_HDR_SIZE 8u

/* Record types. Values are frozen: worker→core below 32, core→worker from 32. */
enum msgproto_type {
    MSGPROTO_HELLO = 1,       /* worker index, pid, protocol version */
    MSGPROTO_CONN_OPEN = 2,   /* conn id, client id, user */
    MSGPROTO_CONN_CLOSE = 3,  /* conn id */
    MSGPROTO_SEND = 4,        /* see struct msgproto_send */
    MSGPROTO_SUBSCRIBE = 5,   /* see struct msgproto_subscribe */
    MSGPROTO_UNSUBSCRIBE = 6, /* conn, consumer, corr; F_REMOVE_DURABLE */
    MSGPROTO_CREDIT = 7,      /* conn, consumer, n credits to add */
    MSGPROTO_ACK = 8,         /* settle: consumed; F_CUMULATIVE */
    MSGPROTO_RELEASE = 9,     /* settle: redeliver, count unchanged */
    MSGPROTO_MODIFIED = 10,   /* settle: failed, count+1; F_UNDELIVERABLE_HERE */
    MSGPROTO_REJECT = 11,     /* settle: straight to the dead-letter address */
    MSGPROTO_TX_BEGIN = 12,   /* conn, tx, corr */
    MSGPROTO_TX_COMMIT = 13,
    MSGPROTO_TX_ROLLBACK = 14,
    MSGPROTO_STAT_REQ = 15,   /* request id, queue name filter ("" = all) */
    MSGPROTO_FRAGMENT = 16,   /* one chunk of a record too big for one ring record */
    MSGPROTO_DRAIN = 17,      /* conn, consumer, corr: use the credit up, then drop it (AMQP
                                 drain); DONE answers once the queue had nothing more to give,
                                 its status the credit dropped (>= 0) or -errno */
    MSGPROTO_DONE = 32,       /* completion of a request (SEND_DONE of the design) */
    MSGPROTO_DELIVER = 33,    /* a message for a consumer */
    MSGPROTO_CONSUMER_CLOSED = 34, /* the core closed a consumer (error or browse end) */
    MSGPROTO_STAT_REPLY = 35, /* one queue's statistics */
    MSGPROTO_FLOW = 36,       /* producer flow control: stop / resume reading producers */
    MSGPROTO_FLOW_ADDR = 37,  /* per-address flow control: stop / resume SENDs to one address */
};
#define MSGPROTO_SEND_DONE MSGPROTO_DONE

/* Flags in msgproto_hdr.flags. */
#define MSGPROTO_F_CUMULATIVE 0x01u         /* ACK: also every earlier delivery of the consumer */
#define MSGPROTO_F_UNDELIVERABLE_HERE 0x02u /* MODIFIED, RELEASE: never redeliver to this consumer */
#define MSGPROTO_F_REMOVE_DURABLE 0x04u     /* UNSUBSCRIBE: delete the durable subscription */
#define MSGPROTO_F_LAST 0x08u               /* STAT_REPLY: last reply of the request */
#define MSGPROTO_F_EMPTY 0x10u              /* STAT_REPLY: no queue matched (fields empty) */
#define MSGPROTO_F_DURABLE 0x20u            /* SEND: persistent message */
#define MSGPROTO_F_REDELIVERED 0x40u        /* DELIVER: delivered before */

/* Routing types (SEND, SUBSCRIBE, encoded message). Artemis' byte values. */
enum msgproto_routing {
    MSGPROTO_ANYCAST = 0,
    MSGPROTO_MULTICAST = 1,
    MSGPROTO_ROUTING_UNSPECIFIED = 2,
};

/* SUBSCRIBE options (msgproto_subscribe.options). */
#define MSGPROTO_SUB_BROWSE 0x01u   /* browse only: see messages, take none */
#define MSGPROTO_SUB_DURABLE 0x02u  /* durable subscription (multicast) */
#define MSGPROTO_SUB_AUTO_ACK 0x04u /* settled on delivery (STOMP ack:auto) */
#define MSGPROTO_SUB_WINDOW 0x08u   /* credit is a window of unsettled deliveries
                                       (STOMP prefetch) instead of AMQP link credit */

/* Fragment kinds (msgproto_fragment_rec.kind). */
enum msgproto_frag_kind { MSGPROTO_FRAG_FIRST = 1, MSGPROTO_FRAG_MIDDLE = 2, MSGPROTO_FRAG_LAST = 3 };

/* A str or bin in a decoded record: points into the record's bytes. */
struct msgproto_bytes {
    const uint8_t *p;
    uint32_t len;
};

/*
 * Decoded records. Wire layout = the fields in declaration order, with
 * the sizes of their C types (bool = u8); msgproto_bytes fields marked
 * "str" or "bin" as described above. The same structs are the input of
 * msgproto_encode().
 */
struct msgproto_hello { uint32_t worker, pid, proto_version; };
struct msgproto_conn { uint64_t conn; struct msgproto_bytes client_id /* str */, user /* str */; };
struct msgproto_send {
    uint64_t conn, corr, tx;        /* corr: answered by DONE; tx 0 = none */
    uint8_t routing, priority;      /* enum msgproto_routing; 0..9 */
    int64_t expiration;             /* ms since epoch, 0 = never */
    struct msgproto_bytes address;  /* str, may be an FQQN address::queue */
    struct msgproto_bytes queue;    /* str, FQQN queue part or "" */
    struct msgproto_bytes dup_id;   /* bin, "" = none (Artemis _AMQ_DUPL_ID) */
    struct msgproto_bytes message;  /* bin, an encoded message (hmsg) */
};
struct msgproto_subscribe {
    uint64_t conn, consumer, corr;
    uint8_t routing, options;       /* MSGPROTO_SUB_* */
    uint32_t credit;                /* initial credit / window; 0xffffffff = unbounded */
    struct msgproto_bytes address;  /* str, may be address::queue */
    struct msgproto_bytes queue;    /* str, explicit queue name or "" */
    struct msgproto_bytes sub_name; /* str, durable subscription name or "" */
    struct msgproto_bytes filter;   /* str, selector or "" */
};
struct msgproto_consumer_ref { uint64_t conn, consumer, corr; }; /* UNSUBSCRIBE, DRAIN */
struct msgproto_credit { uint64_t conn, consumer; uint32_t credits; }; /* CREDIT */
struct msgproto_settle { uint64_t conn, consumer, delivery, tx, corr; }; /* ACK..REJECT */
struct msgproto_tx { uint64_t conn, tx, corr; };                       /* TX_* */
struct msgproto_stat_req { uint64_t request; struct msgproto_bytes queue /* str */; };
struct msgproto_fragment_rec {
    uint64_t conn;      /* the connection whose record is split */
    uint32_t seq;       /* 0,1,2… within one split record */
    uint8_t kind;       /* enum msgproto_frag_kind */
    uint64_t total;     /* length of the whole record */
    struct msgproto_bytes chunk; /* bin */
};
struct msgproto_done {
    uint64_t conn, corr;
    int32_t status;               /* 0 or -errno */
    struct msgproto_bytes text;   /* str, "" when ok */
};
struct msgproto_deliver {
    uint64_t conn, consumer, delivery, message_id;
    uint32_t delivery_count;      /* failed deliveries before this one (AMQP style, first = 0) */
    struct msgproto_bytes message; /* bin, an encoded message */
};
struct msgproto_consumer_closed {
    uint64_t conn, consumer;
    int32_t status;               /* 0 = browse finished, else -errno */
    struct msgproto_bytes reason; /* str */
};
struct msgproto_stat_reply {
    uint64_t request;
    uint8_t routing;
    uint32_t consumers;
    uint64_t messages, added, delivering, acked;
    uint8_t durable;                      /* 1: the queue survives a restart */
    uint64_t dead_lettered, expired;      /* moved to the DLQ / dropped as expired */
    struct msgproto_bytes name, address; /* str */
};

struct msgproto_flow {
    uint8_t blocked;              /* 1: stop reading from producers; 0: resume */
    uint64_t bytes, limit;        /* memory held by messages, and the limit */
};

/* FLOW_ADDR: the messages held in one address's queues crossed its limit
 * ([broker] address_max_memory or [address NAME] max_memory): blocked = 1,
 * SENDs to that address wait (their producers are paused, their receipts
 * with them); blocked = 0, they go on. Other addresses are not affected. */
struct msgproto_flow_addr {
    uint8_t blocked;              /* 1: hold SENDs to address; 0: release them */
    uint64_t bytes, limit;        /* bytes held in the address's queues, its limit */
    struct msgproto_bytes address; /* str, the address name (no ::queue part) */
};

struct msgproto_rec {
    uint16_t type;
    uint8_t flags;
    union {
        struct msgproto_hello hello;
        struct msgproto_conn conn;       /* CONN_OPEN, CONN_CLOSE (strs "" on close) */
        struct msgproto_send send;
        struct msgproto_subscribe sub;
        struct msgproto_consumer_ref unsub; /* UNSUBSCRIBE, DRAIN */
        struct msgproto_credit credit;
        struct msgproto_settle settle;
        struct msgproto_tx tx;
        struct msgproto_stat_req stat_req;
        struct msgproto_fragment_rec frag;
        struct msgproto_done done;
        struct msgproto_deliver deliver;
        struct msgproto_consumer_closed closed;
        struct msgproto_stat_reply stat;
        struct msgproto_flow flow;
        struct msgproto_flow_addr flow_addr;
    } u;
};

/* Bytes from a C string (NULL gives ""). */
struct msgproto_bytes msgproto_str(const char *s);

/* Encode rec into buf (cap bytes). Returns the record length, or -ENOSPC
 * when cap is too small (buf NULL: just the length), -EINVAL for an unknown
 * type or a str with a NUL or longer than MSGPROTO_STR_MAX. */
ssize_t msgproto_encode(const struct msgproto_rec *rec, void *buf, size_t cap);

/* Decode one record of exactly len bytes. Pointers in *rec point into buf. */
int msgproto_decode(const void *buf, size_t len, struct msgproto_rec *rec);

/* Name of a record type, for logs ("?" when unknown). */
const char *msgproto_type_name(uint16_t type);

/*
 * Fragmentation of a record longer than one ring record. msgproto_fragment
 * cuts rec (already encoded, len bytes) into FRAGMENT records of at most
 * max_record bytes each and calls emit() for each, in order; it stops at the
 * first non-zero return of emit and returns it. -EMSGSIZE if len > max_total
 * ("message of N bytes exceeds the maximum of M"), -EINVAL if max_record is
 * too small to carry any payload.
 */
int msgproto_fragment(const void *rec, size_t len, uint64_t conn, size_t max_record,
                      size_t max_total, int (*emit)(void *ctx, const void *frag, size_t frag_len),
                      void *ctx);

/*
 * Reassembly state, one per connection on the receiving side. Feed every
 * decoded FRAGMENT of that connection, in ring order. Returns 0 while more
 * is needed, 1 when buf/total hold a complete record (decode it, then call
 * msgproto_reasm_reset), -EMSGSIZE when the announced total exceeds
 * max_total, -EPROTO on a sequence break (the state is reset in both
 * cases), -ENOMEM.
 */
struct msgproto_reasm {
    uint8_t *buf;
    uint64_t total, got;
    uint32_t next_seq;
    bool active;
};
int msgproto_reassemble(struct msgproto_reasm *r, const struct msgproto_fragment_rec *frag,
                        size_t max_total);
void msgproto_reasm_reset(struct msgproto_reasm *r);

/* ------------------------------------------------------------------------
 * The encoded message ("hmsg"): what SEND and DELIVER carry and what the
 * store journals as an opaque body. Layout, in order:
 *   u32 magic HMSG_MAGIC, u8 version HMSG_VERSION, u8 routing, u8 durable,
 *   u8 priority (0..9), u8 body_type, 3 bytes zero,
 *   i64 expiration (ms epoch, 0 never), i64 timestamp (ms epoch),
 *   str address, message_id, correlation_id, reply_to, content_type,
 *       user_id, subject, group_id,
 *   u32 property count, then per property: str name, u8 type, value
 *       (INT64: i64, DOUBLE: 8 bytes IEEE-754, BOOL: u8 0/1, NULL: nothing,
 *        STRING: str, BINARY: bin),
 *   bin body.
 * It is journaled, so it follows the compatibility rules above: new
 * fields only at the end, with HMSG_VERSION raised.
 */
#define HMSG_MAGIC 0x314d5148u /* "HQM1" little-endian */
#define HMSG_VERSION 1u
#define HMSG_FIXED_SIZE 28u
#define HMSG_MAX_PROPS 4096u

enum hmsg_body_type { HMSG_BODY_NONE = 0, HMSG_BODY_TEXT = 1, HMSG_BODY_BINARY = 2, HMSG_BODY_AMQP = 3 };
enum hmsg_prop_type {
    HMSG_PROP_NULL = 0, HMSG_PROP_STRING = 1, HMSG_PROP_INT64 = 2,
    HMSG_PROP_DOUBLE = 3, HMSG_PROP_BOOL = 4, HMSG_PROP_BINARY = 5,
};

struct hmsg_prop {
    struct msgproto_bytes name; /* str */
    uint8_t type;               /* enum hmsg_prop_type */
    union {
        int64_t i;
        double d;
        bool b;
        struct msgproto_bytes bytes; /* STRING (str) or BINARY (bin) */
    } v;
};

/* A message, decoded in place (encode input / decode output). */
struct hmsg {
    uint8_t routing, durable, priority, body_type;
    int64_t expiration, timestamp;
    struct msgproto_bytes address, message_id, correlation_id, reply_to, content_type,
        user_id, subject, group_id;
    uint32_t nprops;
    const struct hmsg_prop *props; /* encode: input array */
    const uint8_t *props_raw;      /* decode: the encoded properties */
    size_t props_raw_len;
    struct msgproto_bytes body;
};

/* Encode: returns the length, -ENOSPC (buf NULL: length only), -EINVAL. */
ssize_t hmsg_encode(const struct hmsg *m, void *buf, size_t cap);
/* Decode and validate everything (properties included) of exactly len bytes. */
int hmsg_decode(const void *buf, size_t len, struct hmsg *m);
/* Iterate decoded properties: *pos starts at 0; returns 1 with *out, 0 at end. */
int hmsg_prop_next(const struct hmsg *m, size_t *pos, struct hmsg_prop *out);
/* First property named name (C string): 1 found, 0 not. */
int hmsg_prop_find(const struct hmsg *m, const char *name, struct hmsg_prop *out);

#endif
