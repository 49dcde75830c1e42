/*
 * stomp_codec — STOMP 1.0/1.1/1.2 frame parser and serializer. Pure: no I/O,
 * no clock, no global state, libc only.
 *
 * Who calls it: stomp_session (one parser per client connection). The worker
 * never touches frames directly.
 *
 * Parser: fed arbitrary chunks (one byte at a time or many frames at once).
 * stomp_parser_feed() consumes bytes until it has one whole frame, then stops
 * and returns it; the frame's strings and body point into a buffer the parser
 * owns, valid until the next stomp_parser_feed() or stomp_parser_free() call.
 * The caller may stop feeding at any point (back-pressure): a half-parsed frame
 * simply waits.
 *
 * Invariants kept by the parser:
 *  - it never reads past buf[len-1] and never writes past its own buffer;
 *  - its buffer never holds more than limits.max_frame + 1 bytes, so a peer
 *    cannot make it allocate more than that;
 *  - after an error it is poisoned: every later feed returns the same error
 *    (the session sends one ERROR frame and closes);
 *  - header names and values of a returned frame are unescaped according to
 *    the version set with stomp_parser_set_version() (CONNECT, STOMP and
 *    CONNECTED frames are never unescaped) and NUL-terminated; they never
 *    contain NUL (the parser rejects NUL in the header section). The body is
 *    followed by one NUL byte that is not part of body_len.
 *  - repeated headers are all kept, in order; stomp_frame_get() returns the
 *    first (the STOMP 1.2 rule, and what 1.0/1.1 brokers do in practice).
 *
 * Line endings: "\n" or "\r\n" are accepted on every line in every version
 * (many 1.0/1.1 clients send CRLF). EOLs between frames are heart-beats.
 */
#ifndef HAMQ_STOMP_CODEC_H
#define HAMQ_STOMP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stomp_version {
    STOMP_V10 = 0,
    STOMP_V11 = 1,
    STOMP_V12 = 2,
};

enum stomp_command {
    STOMP_CMD_NONE = 0,
    /* client frames */
    STOMP_CMD_CONNECT,
    STOMP_CMD_STOMP,
    STOMP_CMD_SEND,
    STOMP_CMD_SUBSCRIBE,
    STOMP_CMD_UNSUBSCRIBE,
    STOMP_CMD_ACK,
    STOMP_CMD_NACK,
    STOMP_CMD_BEGIN,
    STOMP_CMD_COMMIT,
    STOMP_CMD_ABORT,
    STOMP_CMD_DISCONNECT,
    /* server frames */
    STOMP_CMD_CONNECTED,
    STOMP_CMD_MESSAGE,
    STOMP_CMD_RECEIPT,
    STOMP_CMD_ERROR,
    STOMP_CMD_COUNT_,
};

/* Why a frame was rejected. The message in stomp_parser.errmsg names the
 * offending item or limit; it is meant for the ERROR frame's `message`. */
enum stomp_error {
    STOMP_E_NONE = 0,
    STOMP_E_UNKNOWN_COMMAND,
    STOMP_E_MISSING_COLON,
    STOMP_E_EMPTY_HEADER_NAME,
    STOMP_E_BAD_ESCAPE,
    STOMP_E_BAD_CONTENT_LENGTH,
    STOMP_E_MISSING_NUL,
    STOMP_E_NUL_IN_HEADER,
    STOMP_E_BARE_CR,
    STOMP_E_LIMIT_HEADERS,
    STOMP_E_LIMIT_LINE,
    STOMP_E_LIMIT_BODY,
    STOMP_E_LIMIT_FRAME,
    STOMP_E_NOMEM,
};

struct stomp_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A parsed frame; everything points into the parser's buffer. */
struct stomp_frame {
    enum stomp_command cmd;
    const struct stomp_header *headers;
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
    bool has_content_length;
};

/* Limits, all > 0. max_header_line counts the bytes of one line without its
 * EOL (the command line included); max_body is the broker's max message size;
 * max_frame bounds command + headers + body. */
struct stomp_limits {
    size_t max_headers;
    size_t max_header_line;
    size_t max_body;
    size_t max_frame;
};

#define STOMP_ERRMSG_MAX 160

/* One per connection. Fields are private to stomp_codec.c except err/errmsg,
 * which the caller reads after a negative return. */
struct stomp_parser {
    struct stomp_limits lim;
    enum stomp_version version;
    int state;
    uint8_t *buf; /* frame bytes, grown on demand, at most max_frame + 1 */
    size_t len, cap;
    size_t line_start; /* offset in buf of the line being read */
    struct stomp_hdr_off {
        size_t start, colon, end; /* offsets of the raw line in buf */
    } * offs;
    struct stomp_header *hdrs;
    size_t nhdrs, hdrs_cap;
    enum stomp_command cmd;
    size_t body_start;
    size_t body_want; /* content-length bytes still to copy */
    bool has_clen;
    enum stomp_error err;
    char errmsg[STOMP_ERRMSG_MAX];
};

/* Growable output buffer (used by the serializer and the session). */
struct stomp_buf {
    uint8_t *data;
    size_t len, cap;
};

const char *stomp_command_name(enum stomp_command cmd);
/* Command from its exact upper-case name, STOMP_CMD_NONE when unknown. */
enum stomp_command stomp_command_parse(const char *s, size_t len);
const char *stomp_version_name(enum stomp_version v);

/* 0 or -EINVAL (a zero limit). Allocates lazily: init never fails on memory. */
int stomp_parser_init(struct stomp_parser *p, const struct stomp_limits *lim);
void stomp_parser_free(struct stomp_parser *p);
/* Escaping rules for the following frames (CONNECT-family excepted). */
void stomp_parser_set_version(struct stomp_parser *p, enum stomp_version v);

/*
 * Feed up to len bytes. Sets *consumed to the bytes used (never > len).
 * Returns 1 with *out filled when a frame is complete (the remaining bytes
 * are not consumed: call again), 0 when all bytes were used and more are
 * needed, or a negative errno (-EPROTO malformed, -EMSGSIZE a limit, -ENOMEM)
 * with p->err and p->errmsg set.
 */
int stomp_parser_feed(struct stomp_parser *p, const uint8_t *buf, size_t len, size_t *consumed,
                      struct stomp_frame *out);
/* True when a frame has started but is not complete (bytes are pending). */
bool stomp_parser_mid_frame(const struct stomp_parser *p);

/* First header with that name, or NULL. */
const struct stomp_header *stomp_frame_find(const struct stomp_frame *f, const char *name);
/* Its value, or NULL. */
const char *stomp_frame_get(const struct stomp_frame *f, const char *name);

void stomp_buf_free(struct stomp_buf *b);
int stomp_buf_append(struct stomp_buf *b, const void *data, size_t len);

/* Can h be written in a cmd frame of version v (see stomp_serialize)? */
bool stomp_header_representable(enum stomp_version v, enum stomp_command cmd,
                                const struct stomp_header *h);

/*
 * Append one frame to out: command, the headers (escaped for version v unless
 * cmd is CONNECT/STOMP/CONNECTED), then a content-length computed here for
 * SEND, MESSAGE and ERROR or any frame with a body (caller headers named
 * content-length are skipped), a blank line, the body and NUL.
 * Returns 0, -EINVAL when a header cannot be represented in that version
 * (newline in a 1.0 or CONNECTED value, CR in 1.1, colon or empty name where
 * no escaping exists) — out is then unchanged — or -ENOMEM.
 */
int stomp_serialize(struct stomp_buf *out, enum stomp_version v, enum stomp_command cmd,
                    const struct stomp_header *hdrs, size_t n, const void *body, size_t body_len);

#endif
