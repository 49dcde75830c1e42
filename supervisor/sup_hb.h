/*
 * sup_hb — supervisor-to-supervisor heartbeats and commands over ZeroMQ.
 *
 * Who calls it: hamq-supervisor's single-threaded epoll loop. The module owns
 * its ZeroMQ context and exposes ONE pollable fd (an inner epoll set holding
 * every ZMQ_FD it owns); the loop calls sup_hb_on_readable() when that fd is
 * readable and sup_hb_on_timer() when sup_hb_next_timeout_ms() expires.
 * No threads of ours, no blocking calls (libzmq's own I/O thread aside).
 *
 * Sockets (why ROUTER + one DEALER per peer, not PUB/SUB):
 *  - one ROUTER bound on [ha] listen: receives the peers' heartbeats, and is
 *    the socket we use to send a command to ONE peer: the routing id of the
 *    connection its heartbeats arrive on is remembered, and ROUTER_MANDATORY
 *    turns "that peer is not connected" into an immediate -EHOSTUNREACH
 *    instead of a silent drop (PUB would drop it, and cannot address a peer).
 *  - one DEALER per [ha] peers endpoint (a single DEALER connected to N
 *    endpoints would round-robin, not broadcast): carries our heartbeats and
 *    receives the commands and acks a peer's ROUTER sends us.
 *  - ZMQ_IMMEDIATE on the DEALERs: nothing is queued for a peer that is not
 *    connected, so a partition does not build a backlog of old heartbeats;
 *    what sat in TCP buffers is caught by the staleness rule below.
 *  - ZMTP heartbeats (ZMQ_HEARTBEAT_IVL/TIMEOUT) tear down dead TCP sessions
 *    so reconnection starts as soon as the path heals.
 *  - CURVE when [ha] curve_secret_key_file is set: our ROUTER is a CURVE
 *    server, each DEALER a CURVE client of its peer; a ZAP handler (an inproc
 *    REP socket served from the same loop) accepts only the public keys listed
 *    in curve_peer_public_key_file and logs every refusal; socket monitors
 *    log failed handshakes (wrong server key, bad cryptography) on both sides.
 *
 * ZMQ_FD is edge-triggered in spirit: it signals "something changed", not
 * "a message is ready", and a send or a ZMQ_EVENTS read may consume the
 * signal while messages stay queued. So on_readable AND on_timer (after
 * sending) drain every socket while getsockopt(ZMQ_EVENTS) says ZMQ_POLLIN;
 * at most SUP_HB_DRAIN_MAX messages per call, then next_timeout_ms() is 0.
 *
 * Staleness: a heartbeat carries the sender's CLOCK_MONOTONIC send time and a
 * sequence. Per peer incarnation we keep the newest accepted (send_ts, local
 * receive time). A message whose seq is not above the last accepted one, or
 * whose send time is older than the sender's estimated "now" (newest send_ts
 * + local time elapsed since) by more than heartbeat_timeout, is stale: it was
 * queued during a partition and says nothing about the peer being alive now.
 * Clocks are never compared across hosts, only elapsed times.
 */
#ifndef HAMQ_SUP_HB_H
#define HAMQ_SUP_HB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/config.h"

enum sup_role {
    SUP_ROLE_STARTING = 0,
    SUP_ROLE_BACKUP = 1,
    SUP_ROLE_LIVE = 2,
    SUP_ROLE_FENCED = 3,
    SUP_ROLE_PAUSED = 4,
};
const char *sup_role_name(int role);

/*
 * Wire format, version 1: exactly SUP_HB_WIRE_SIZE bytes, one ZeroMQ frame,
 * integers little-endian, offsets fixed:
 *    0  magic "HQHB"          4
 *    4  version (1)           u8
 *    5  type (enum sup_hb_type) u8
 *    6  role (enum sup_role)  u8
 *    7  core health (0 unknown, 1 ok, 2 degraded, 3 down) u8
 *    8  priority (0..255, lower number wins) u8
 *    9  reserved, zero        3 bytes
 *   12  status (ack: 0 accepted, else -errno)  i32
 *   16  incarnation (random per process start) u64
 *   24  sequence (per incarnation, +1 per message) u64
 *   32  send time, sender's CLOCK_MONOTONIC, ns  u64
 *   40  epoch                 u64
 *   48  last durable LSN      u64
 *   56  request id (request and ack: the sequence of the request's first
 *       send, kept when it is resent; heartbeat: 0)  u64
 *   64  node id, NUL-padded, NUL-terminated  64 bytes
 *  128  end
 * Compatibility: never reorder; new fields go into reserved space or after
 * byte 128 with a version bump. A receiver refuses other versions (logged
 * once per peer) rather than guessing.
 */
#define SUP_HB_MAGIC       "HQHB"
#define SUP_HB_VERSION     1
#define SUP_HB_WIRE_SIZE   128
#define SUP_HB_NODE_ID_MAX 64
#define SUP_HB_MAX_PEERS   16
#define SUP_HB_DRAIN_MAX   1024

enum sup_hb_type {
    SUP_HB_HEARTBEAT = 1,
    SUP_HB_HANDOVER_REQ = 2, /* "please demote, I will take over" */
    SUP_HB_HANDOVER_ACK = 3, /* answer to a request: status 0 = done */
};

enum sup_health { SUP_HEALTH_UNKNOWN = 0, SUP_HEALTH_OK, SUP_HEALTH_DEGRADED, SUP_HEALTH_DOWN };

struct sup_hb_msg {
    uint8_t type;
    uint8_t role;
    uint8_t health;
    uint8_t priority;
    int32_t status;
    uint64_t incarnation;
    uint64_t seq;
    uint64_t send_ts_ns;
    uint64_t epoch;
    uint64_t durable_lsn;
    uint64_t ref_seq;
    char node_id[SUP_HB_NODE_ID_MAX];
};

/* Pure codec (no sockets): -EINVAL if a field does not fit (node id too long). */
int sup_hb_encode(const struct sup_hb_msg *m, uint8_t out[SUP_HB_WIRE_SIZE]);
/* -EBADMSG with *why set to a static reason (size, magic, version, type, node id
 * empty, unterminated or not zero-padded). */
int sup_hb_decode(const void *buf, size_t len, struct sup_hb_msg *m, const char **why);

struct sup_hb_peer_info {
    char node_id[SUP_HB_NODE_ID_MAX];
    bool alive;
    int role;
    int health;
    int priority;
    uint64_t epoch;
    uint64_t durable_lsn;
    uint64_t seq;
    int64_t last_seen_age_ms; /* -1: never seen */
};

struct sup_hb_callbacks {
    void *ctx;
    /* A peer was seen for the first time / again (alive) or timed out (!alive). */
    void (*peer_change)(void *ctx, const struct sup_hb_peer_info *peer, bool alive);
    /* A peer asks us to demote. Answer later with sup_hb_ack_handover(). */
    void (*handover_request)(void *ctx, const char *peer, uint64_t req_seq);
    /* Our request was answered (status from the peer) or timed out (-ETIMEDOUT). */
    void (*handover_result)(void *ctx, const char *peer, uint64_t req_seq, int status);
};

struct sup_hb_stats {
    uint64_t sent;
    uint64_t received;
    uint64_t stale;        /* ignored: queued too long or out of order */
    uint64_t invalid;      /* bad frames */
    uint64_t auth_refused; /* ZAP refusals */
    uint64_t handshake_failed;
};

struct sup_hb;

/*
 * From [ha] node_id, listen, peers, priority, heartbeat_interval/timeout,
 * curve_*: binds and connects. Errors (bad endpoint, address in use, key file
 * unreadable or malformed, node id empty) are written to err and returned as
 * -errno; nothing is logged by sup_hb_new itself.
 */
int sup_hb_new(const struct hamq_config *cfg, const struct sup_hb_callbacks *cb,
               struct sup_hb **out, char *err, size_t errlen);
void sup_hb_free(struct sup_hb *hb);

int sup_hb_fd(const struct sup_hb *hb);
/* Returns 0; never blocks. */
int sup_hb_on_readable(struct sup_hb *hb);
/* Sends a heartbeat if one is due, checks timeouts, resends a pending handover. */
int sup_hb_on_timer(struct sup_hb *hb);
/* Milliseconds until on_timer must run (0 = now). */
int sup_hb_next_timeout_ms(const struct sup_hb *hb);

/* What our next heartbeats say about us. */
void sup_hb_set_state(struct sup_hb *hb, int role, int health, uint64_t epoch, uint64_t lsn);

/* Seen within heartbeat_timeout. false for an unknown peer. */
bool sup_hb_peer_alive(const struct sup_hb *hb, const char *node_id);
/* -ENOENT if unknown. */
int sup_hb_peer_get(const struct sup_hb *hb, const char *node_id, struct sup_hb_peer_info *out);
int sup_hb_peer_count(const struct sup_hb *hb);
int sup_hb_peer_at(const struct sup_hb *hb, int i, struct sup_hb_peer_info *out);

/*
 * Asks peer to hand over. Resent every heartbeat interval until an ack
 * arrives or timeout_ms passes (then handover_result(-ETIMEDOUT)).
 * -ENOENT: peer unknown; -EHOSTUNREACH: peer not alive; -EBUSY: one pending.
 */
int sup_hb_request_handover(struct sup_hb *hb, const char *peer, int timeout_ms, uint64_t *req_seq);
/* Answers a request (status 0 = we demoted, -errno = refused). */
int sup_hb_ack_handover(struct sup_hb *hb, const char *peer, uint64_t req_seq, int status);

void sup_hb_get_stats(const struct sup_hb *hb, struct sup_hb_stats *out);

/*
 * Key files: text, '#' comments, one Z85 key (40 chars) per line.
 * <name>.key holds our secret key (mode 0600, refused if group/world can
 * read it); <name>.pub holds the public key. A peer public key file lists one
 * key per line, in the order of [ha] peers (a single key serves every peer);
 * the ZAP handler accepts any listed key.
 * sup_keygen writes dir/<name>.key and dir/<name>.pub; -EEXIST if either exists.
 */
int sup_keygen(const char *dir, const char *name, char *err, size_t errlen);
/* Reads the first key of a key file into z85 (41 bytes). */
int sup_key_read(const char *path, bool secret, char z85[41], char *err, size_t errlen);
/* Reads up to max keys; returns how many (>= 1) or -errno with err set. */
int sup_keys_read_all(const char *path, bool secret, char (*keys)[41], int max, char *err,
                      size_t errlen);

#endif
