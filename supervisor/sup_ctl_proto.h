/*
 * sup_ctl_proto — the local control socket between hamq-supervisorctl and
 * hamq-supervisor: a unix stream socket (default SUP_CTL_DEFAULT_PATH).
 *
 * Protocol (text, line based, one request per line, several per connection):
 *   request:  "<command>[ <args>]\n", at most SUP_CTL_LINE_MAX bytes,
 *             printable ASCII; commands: status failover failback pause resume
 *   reply:    "ok\n" then zero or more "key=value\n" lines, then "\n"
 *             "error <message>\n" then "\n"
 * Keys are [a-z0-9_.] (e.g. node, role, epoch, peer.node2.state); values are
 * one line. The empty line ends every reply so a client never has to rely on
 * the connection closing.
 *
 * Access: SO_PEERCRED; root, our own uid, or a peer whose primary gid is the
 * one given to sup_ctl_server_allow_gid() (the hamq group); others get
 * "error permission denied". The socket file is created 0660.
 *
 * Server side: ONE fd for the epoll loop (an inner epoll over the listening
 * socket and up to SUP_CTL_MAX_CLIENTS connections); never blocks; a client
 * that sends more than SUP_CTL_LINE_MAX bytes without a newline is answered
 * with an error and dropped. Client side (for the CLI): blocking with a
 * timeout.
 */
#ifndef HAMQ_SUP_CTL_PROTO_H
#define HAMQ_SUP_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SUP_CTL_DEFAULT_PATH "/run/hamq/supervisor.sock"
#define SUP_CTL_LINE_MAX     512
#define SUP_CTL_REPLY_MAX    8192
#define SUP_CTL_MAX_CLIENTS  16

struct sup_ctl_reply {
    char buf[SUP_CTL_REPLY_MAX]; /* key=value lines */
    size_t len;
    char error[256]; /* set by sup_ctl_reply_error */
    uint64_t id;     /* set by the server before the handler runs */
    bool deferred;   /* set by sup_ctl_reply_defer */
};

/* Appends "key=value\n" (value printf-formatted; newlines in it become spaces). */
void sup_ctl_reply_kv(struct sup_ctl_reply *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Makes the reply an error; returns -EINVAL for convenience. */
int sup_ctl_reply_error(struct sup_ctl_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Answer later (e.g. `failover` answers when the handover is done, with no
 * polling): the handler calls this, keeps the returned id, and calls
 * sup_ctl_server_complete() when it knows the outcome. Meanwhile the
 * connection reads no further request; if the client goes away, complete()
 * returns -ENOENT.
 */
uint64_t sup_ctl_reply_defer(struct sup_ctl_reply *r);

/* cmd is one of the known commands; args is "" or the rest of the line. */
typedef void (*sup_ctl_handler)(void *ctx, const char *cmd, const char *args,
                                struct sup_ctl_reply *reply);

struct sup_ctl_server;
int sup_ctl_server_new(const char *path, sup_ctl_handler h, void *ctx, struct sup_ctl_server **out,
                       char *err, size_t errlen);
void sup_ctl_server_allow_gid(struct sup_ctl_server *s, gid_t gid);
int sup_ctl_server_fd(const struct sup_ctl_server *s);
int sup_ctl_server_on_readable(struct sup_ctl_server *s);
/* Sends the answer to a deferred request (r: kv lines, or error set). */
int sup_ctl_server_complete(struct sup_ctl_server *s, uint64_t id, const struct sup_ctl_reply *r);
/* Number of requests waiting for sup_ctl_server_complete(). */
int sup_ctl_server_pending(const struct sup_ctl_server *s);
/* Closes every connection and unlinks the socket file. */
void sup_ctl_server_free(struct sup_ctl_server *s);

/*
 * Client: connects, sends line, reads the reply. 0: "ok", reply holds the
 * key=value lines; -EREMOTEIO: the daemon answered "error", err holds its
 * message; -ECONNREFUSED/-ENOENT: "cannot connect to PATH: is hamq-supervisor
 * running?"; -ETIMEDOUT; -EPROTO: not our protocol.
 */
int sup_ctl_request(const char *path, const char *line, int timeout_ms, char *reply,
                    size_t replylen, char *err, size_t errlen);
/* Finds key in "key=value\n" lines; -ENOENT if absent. */
int sup_ctl_kv_get(const char *reply, const char *key, char *out, size_t outlen);

#endif
