/*
 * worker_amqp — AMQP 1.0 connections of a worker (Qpid Proton C's
 * pn_connection_driver inside the worker's own epoll loop: no proactor, no
 * threads). Five parts:
 *   worker_amqp.c       the wnet protocol, Proton events ⇄ msgproto records
 *   worker_amqp_txn.c   the transaction coordinator (declare/discharge ⇄ the
 *                       core's transactions); it shares the connection's
 *                       structs through worker_amqp_conn.h
 *   worker_amqp_msg.c   the encoded AMQP message ⇄ hmsg (fields, properties,
 *                       the raw sections kept intact, the header patched on
 *                       redelivery, the body for STOMP consumers)
 *   worker_amqp_sasl.c  SASL ANONYMOUS and PLAIN against [security] users_file
 *   worker_amqp_guard.c the framing rules Proton's engine does not check
 * The mapping rules for users are in daemons/README.md, "STOMP ↔ AMQP mapping".
 */
#ifndef HAMQ_WORKER_AMQP_H
#define HAMQ_WORKER_AMQP_H

#include <proton/codec.h>
#include <proton/message.h>
#include <proton/transport.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/msgproto.h"
#include "hamq/u64map.h"

/* ---- worker_amqp_msg.c ---- */

/* What a producer's message becomes: the SEND record's fields and its hmsg. */
struct wka_send {
    uint8_t *hmsg;       /* the encoded hmsg (body_type AMQP, raw sections as body), in a
                            buffer reused by the next call: do not free, use before then */
    size_t hmsg_len;
    bool durable;
    uint8_t priority;
    int64_t expiration;  /* ms since epoch, 0 = never */
    char address[1024];  /* the `to` field for the anonymous relay, else the link's */
    uint8_t routing;     /* from x-opt-jms-dest for the relay, else the link's */
    uint8_t dup_id[256]; /* _AMQ_DUPL_ID application property, if any */
    uint32_t dup_len;
};

/*
 * Decodes raw (one complete AMQP message as received in a transfer) and fills
 * out. link_address NULL = anonymous relay (address from `to`). Returns 0,
 * -EBADMSG (not a valid AMQP message: err says why), -EDESTADDRREQ (relay
 * without `to`), -ENOMEM. The bytes are read in place (worker_amqp_scan.c),
 * never decoded into Proton objects.
 */
int wka_msg_from_amqp(const uint8_t *raw, size_t len, const char *link_address,
                      uint8_t link_routing, struct wka_send *out, char *err, size_t errlen);

/* A transaction controller's message (AMQP 1.0 part 4): declare or discharge. */
struct wka_txn_ctl {
    bool declare;          /* else discharge */
    bool fail;             /* discharge: roll back */
    uint8_t id[32];        /* discharge: the txn-id */
    uint32_t id_len;
};

/*
 * Decodes a message sent to the coordinator: an amqp-value holding a
 * declare (0x31, "amqp:declare:list") or discharge (0x32) list. Returns 0 or
 * -EBADMSG with err saying why.
 */
int wka_msg_txn_control(const uint8_t *raw, size_t len, struct wka_txn_ctl *out, char *err,
                        size_t errlen);

/*
 * The bytes of a transfer for a delivered hmsg: an AMQP message kept intact
 * (its header rewritten when delivery_count > 0), or one built from a STOMP
 * message's fields. *out points at the bytes: into m->body, or into *buf
 * (buf and cap: a growable buffer). Returns the length or -errno.
 */
ssize_t wka_msg_to_amqp(pn_message_t *scratch, const struct hmsg *m, uint32_t delivery_count,
                        const char **out, char **buf, size_t *cap);

/*
 * For a STOMP consumer of an AMQP message: the payload of the body (a data
 * section's bytes, an amqp-value string or binary; other values formatted
 * as text into fmt). Points into m->body or into fmt.
 */
void wka_msg_payload(const struct hmsg *m, char *fmt, size_t fmtcap, const uint8_t **p,
                     size_t *len);

/* ---- worker_amqp_scan.c: AMQP 1.0 encoded values read in place ---- */

/* A cursor over encoded bytes: [p, end). */
struct wka_cur {
    const uint8_t *p, *end;
};

/*
 * One scanned value. code: its constructor (after any descriptor);
 * fixed-width values: u holds the big-endian payload (up to 8 bytes), p/len
 * the bytes; binary/string/symbol: p/len the bytes; list/map/array: p/len
 * the elements after the count, count their number (a map counts keys and
 * values). described/desc: a described value and its ulong descriptor
 * (UINT64_MAX for a symbolic one, then dsym/dsym_len name it); value_at:
 * where the described value's own encoding starts (after the descriptor).
 * Pointers are into the scanned bytes.
 */
struct wka_val {
    uint8_t code;
    bool described;
    uint64_t desc;
    const uint8_t *dsym, *value_at;
    uint32_t dsym_len;
    uint64_t u;
    const uint8_t *p;
    uint32_t len, count;
};

/* Reads one value at c (compounds checked to the end); 0 or -EBADMSG. */
int wka_scan(struct wka_cur *c, struct wka_val *v);
/* The payload of a value whose constructor byte was already read. */
int wka_scan_body(struct wka_cur *c, uint8_t code, struct wka_val *v, int depth);
void wka_val_enter(const struct wka_val *v, struct wka_cur *in);
bool wka_val_is_ulong(const struct wka_val *v);
bool wka_val_is_null(const struct wka_val *v);
bool wka_val_is_compound(const struct wka_val *v);
bool wka_val_is_str(const struct wka_val *v);
bool wka_val_is_sym(const struct wka_val *v);
bool wka_val_is_bin(const struct wka_val *v);
bool wka_val_bool(const struct wka_val *v, bool dflt);
uint64_t wka_val_uint(const struct wka_val *v, uint64_t dflt);
int64_t wka_val_int(const struct wka_val *v, int64_t dflt);

/* ---- worker_amqp_sasl.c ---- */

struct wka_users;

/*
 * Loads a users file: one "user:password" per line; blank lines and lines
 * starting with '#' ignored; the password is everything after the first ':'
 * (it may contain ':'). NULL or "" path = no users (PLAIN always fails).
 * Returns 0 or -errno with err naming the file and line.
 */
int wka_users_load(const char *path, struct wka_users **out, char *err, size_t errlen);
void wka_users_free(struct wka_users *u);
/* Constant-time compare of the password; true when user and password match. */
bool wka_users_check(const struct wka_users *u, const char *user, size_t ulen, const char *pass,
                     size_t plen);

/*
 * Installs our server SASL on a server transport: offers PLAIN (when users
 * exist) and ANONYMOUS (when allowed); the outcome is decided here, not by
 * Cyrus. users must outlive the transport.
 */
void wka_sasl_setup(pn_transport_t *t, const struct wka_users *users, bool allow_anonymous);

/* ---- worker_amqp_guard.c ---- */

#define WKA_GUARD_PREFIX 2048 /* bytes of a performative read: attach's name + handle + role;
                                 an attach whose name is longer is not checked */

/*
 * What the guard knows of one connection's client stream: where in a frame it
 * is, the client's begun channels (key channel + 1) and attached handles (key
 * (channel << 32 | handle) + 1, value: which end the client is).
 */
struct wka_guard {
    uint8_t hdr[8];
    size_t hlen;       /* bytes of the current frame (or protocol) header seen */
    uint64_t skip_ext; /* extended header bytes still to skip */
    uint64_t left;     /* body bytes of the current frame still to come */
    uint8_t type;
    uint16_t channel;
    uint8_t prefix[WKA_GUARD_PREFIX]; /* what the check of this frame needs (wanted) */
    size_t plen;
    bool inspected;
    bool off;          /* a frame it cannot follow, or no memory: Proton alone from here */
    const char *cond;  /* after a violation: the AMQP error condition */
    struct u64map channels, handles;
};

void wka_guard_init(struct wka_guard *g);
void wka_guard_free(struct wka_guard *g);
/*
 * Feeds the next n bytes the client sent (each byte once, in order). Returns 0,
 * or -EPROTO on a violation: g->cond names the condition and text says what
 * (to close the connection with).
 */
int wka_guard_feed(struct wka_guard *g, const uint8_t *p, size_t n, char *text, size_t cap);

#endif
