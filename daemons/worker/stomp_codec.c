/*
 * stomp_codec — STOMP frame parser and serializer (see stomp_codec.h for the
 * contract). The parser copies each frame into its own buffer as bytes arrive
 * (a frame may span any number of reads), remembers header lines as offsets
 * (the buffer moves when it grows) and turns them into pointers only when the
 * frame is complete.
 */
#include "stomp_codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ps_state {
    PS_IDLE = 0, /* between frames: EOLs here are heart-beats */
    PS_IDLE_CR,  /* saw '\r' between frames, '\n' must follow */
    PS_LINE,     /* reading the command line or a header line */
    PS_BODY_LEN, /* copying content-length body bytes */
    PS_BODY_END, /* expecting the NUL after a content-length body */
    PS_BODY_NUL, /* copying a body up to its NUL */
    PS_DONE,     /* a frame was returned; reset on the next feed */
    PS_ERROR,
};

static const char *const command_names[STOMP_CMD_COUNT_] = {
    [STOMP_CMD_NONE] = "",
    [STOMP_CMD_CONNECT] = "CONNECT",
    [STOMP_CMD_STOMP] = "STOMP",
    [STOMP_CMD_SEND] = "SEND",
    [STOMP_CMD_SUBSCRIBE] = "SUBSCRIBE",
    [STOMP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [STOMP_CMD_ACK] = "ACK",
    [STOMP_CMD_NACK] = "NACK",
    [STOMP_CMD_BEGIN] = "BEGIN",
    [STOMP_CMD_COMMIT] = "COMMIT",
    [STOMP_CMD_ABORT] = "ABORT",
    [STOMP_CMD_DISCONNECT] = "DISCONNECT",
    [STOMP_CMD_CONNECTED] = "CONNECTED",
    [STOMP_CMD_MESSAGE] = "MESSAGE",
    [STOMP_CMD_RECEIPT] = "RECEIPT",
    [STOMP_CMD_ERROR] = "ERROR",
};

const char *stomp_command_name(enum stomp_command cmd)
{
    if ((int)cmd < 0 || cmd >= STOMP_CMD_COUNT_)
        return "?";
    return command_names[cmd];
}

enum stomp_command stomp_command_parse(const char *s, size_t len)
{
    for (int c = STOMP_CMD_CONNECT; c < STOMP_CMD_COUNT_; c++) {
        const char *n = command_names[c];
        if (strlen(n) == len && memcmp(n, s, len) == 0)
            return (enum stomp_command)c;
    }
    return STOMP_CMD_NONE;
}

const char *stomp_version_name(enum stomp_version v)
{
    switch (v) {
    case STOMP_V10:
        return "1.0";
    case STOMP_V11:
        return "1.1";
    case STOMP_V12:
        return "1.2";
    }
    return "?";
}

/* ---- buffers ---------------------------------------------------------- */

static int buf_reserve(uint8_t **data, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    uint8_t *n = realloc(*data, ncap);
    if (!n)
        return -ENOMEM;
    *data = n;
    *cap = ncap;
    return 0;
}

void stomp_buf_free(struct stomp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int stomp_buf_append(struct stomp_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (len > SIZE_MAX - b->len)
        return -ENOMEM;
    int r = buf_reserve(&b->data, &b->cap, b->len + len);
    if (r < 0)
        return r;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* ---- parser ----------------------------------------------------------- */

int stomp_parser_init(struct stomp_parser *p, const struct stomp_limits *lim)
{
    memset(p, 0, sizeof(*p));
    if (!lim || !lim->max_headers || !lim->max_header_line || !lim->max_body || !lim->max_frame ||
        lim->max_frame >= SIZE_MAX / 2)
        return -EINVAL;
    p->lim = *lim;
    p->version = STOMP_V10;
    p->state = PS_IDLE;
    return 0;
}

void stomp_parser_free(struct stomp_parser *p)
{
    free(p->buf);
    free(p->offs);
    free(p->hdrs);
    memset(p, 0, sizeof(*p));
}

void stomp_parser_set_version(struct stomp_parser *p, enum stomp_version v)
{
    p->version = v;
}

bool stomp_parser_mid_frame(const struct stomp_parser *p)
{
    return p->state == PS_LINE || p->state == PS_BODY_LEN || p->state == PS_BODY_END ||
           p->state == PS_BODY_NUL || p->state == PS_IDLE_CR;
}

__attribute__((format(printf, 3, 4))) static int fail(struct stomp_parser *p, enum stomp_error e,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    p->err = e;
    p->state = PS_ERROR;
    if (e == STOMP_E_NOMEM)
        return -ENOMEM;
    if (e >= STOMP_E_LIMIT_HEADERS)
        return -EMSGSIZE;
    return -EPROTO;
}

static int error_errno(const struct stomp_parser *p)
{
    if (p->err == STOMP_E_NOMEM)
        return -ENOMEM;
    return p->err >= STOMP_E_LIMIT_HEADERS ? -EMSGSIZE : -EPROTO;
}

/* Append n frame bytes, enforcing max_frame. */
static int put(struct stomp_parser *p, const uint8_t *src, size_t n)
{
    if (p->len + n > p->lim.max_frame)
        return fail(p, STOMP_E_LIMIT_FRAME, "frame exceeds the maximum frame size (max_frame=%zu)",
                    p->lim.max_frame);
    if (buf_reserve(&p->buf, &p->cap, p->len + n + 1) < 0)
        return fail(p, STOMP_E_NOMEM, "out of memory while reading a frame");
    memcpy(p->buf + p->len, src, n);
    p->len += n;
    return 0;
}

static bool escaping_applies(const struct stomp_parser *p)
{
    if (p->version == STOMP_V10)
        return false;
    return p->cmd != STOMP_CMD_CONNECT && p->cmd != STOMP_CMD_STOMP &&
           p->cmd != STOMP_CMD_CONNECTED;
}

/* Unescape [s, s+n) in place; returns the new length or -1 on a bad escape. */
static long unescape(char *s, size_t n, enum stomp_version v)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        if (++i == n)
            return -1;
        switch (s[i]) {
        case 'n':
            s[o++] = '\n';
            break;
        case 'c':
            s[o++] = ':';
            break;
        case '\\':
            s[o++] = '\\';
            break;
        case 'r':
            if (v < STOMP_V12)
                return -1;
            s[o++] = '\r';
            break;
        default:
            return -1;
        }
    }
    return (long)o;
}

/* Strict decimal, no sign or blanks, no overflow. */
static int parse_length(const char *s, size_t n, size_t *out)
{
    size_t v = 0;
    if (n == 0 || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int decode_one_header(struct stomp_parser *p, size_t i, bool esc)
{
    struct stomp_hdr_off *o = &p->offs[i];
    char *name = (char *)p->buf + o->start;
    char *value = (char *)p->buf + o->colon + 1;
    size_t nlen = o->colon - o->start, vlen = o->end - o->colon - 1;
    long nl = (long)nlen, vl = (long)vlen;
    if (esc) {
        nl = unescape(name, nlen, p->version);
        vl = unescape(value, vlen, p->version);
        if (nl < 0 || vl < 0)
            return fail(p, STOMP_E_BAD_ESCAPE, "invalid escape sequence in header '%.*s'",
                        (int)(nlen > 64 ? 64 : nlen), name);
    }
    if (nl == 0)
        return fail(p, STOMP_E_EMPTY_HEADER_NAME, "header with an empty name");
    name[nl] = '\0';
    value[vl] = '\0';
    p->hdrs[i] = (struct stomp_header){name, (size_t)nl, value, (size_t)vl};
    return 0;
}

/* After the blank line: unescape headers, find content-length, pick body mode. */
static int end_of_headers(struct stomp_parser *p)
{
    bool esc = escaping_applies(p);
    for (size_t i = 0; i < p->nhdrs; i++) {
        int r = decode_one_header(p, i, esc);
        if (r < 0)
            return r;
    }
    p->has_clen = false;
    for (size_t i = 0; i < p->nhdrs; i++) {
        if (strcmp(p->hdrs[i].name, "content-length") != 0)
            continue;
        size_t n = 0;
        if (parse_length(p->hdrs[i].value, p->hdrs[i].value_len, &n) < 0)
            return fail(p, STOMP_E_BAD_CONTENT_LENGTH, "invalid content-length '%.32s'",
                        p->hdrs[i].value);
        if (n > p->lim.max_body)
            return fail(p, STOMP_E_LIMIT_BODY,
                        "content-length %zu exceeds the maximum message size (max_body=%zu)", n,
                        p->lim.max_body);
        if (n > p->lim.max_frame - p->len)
            return fail(p, STOMP_E_LIMIT_FRAME,
                        "frame exceeds the maximum frame size (max_frame=%zu)", p->lim.max_frame);
        if (buf_reserve(&p->buf, &p->cap, p->len + n + 1) < 0) /* one allocation per body */
            return fail(p, STOMP_E_NOMEM, "out of memory for a body of %zu bytes", n);
        p->has_clen = true;
        p->body_want = n;
        break;
    }
    p->body_start = p->len;
    p->state = p->has_clen ? (p->body_want ? PS_BODY_LEN : PS_BODY_END) : PS_BODY_NUL;
    return 0;
}

static int header_line(struct stomp_parser *p, size_t start, size_t end)
{
    if (p->nhdrs >= p->lim.max_headers)
        return fail(p, STOMP_E_LIMIT_HEADERS,
                    "frame has more headers than allowed (max_headers=%zu)", p->lim.max_headers);
    const uint8_t *colon = memchr(p->buf + start, ':', end - start);
    if (!colon)
        return fail(p, STOMP_E_MISSING_COLON, "header line without ':' ('%.*s')",
                    (int)(end - start > 64 ? 64 : end - start), (const char *)p->buf + start);
    if (p->nhdrs == p->hdrs_cap) {
        size_t ncap = p->hdrs_cap ? p->hdrs_cap * 2 : 16;
        struct stomp_hdr_off *no = realloc(p->offs, ncap * sizeof(*no));
        if (!no)
            return fail(p, STOMP_E_NOMEM, "out of memory while reading headers");
        p->offs = no;
        struct stomp_header *nh = realloc(p->hdrs, ncap * sizeof(*nh));
        if (!nh)
            return fail(p, STOMP_E_NOMEM, "out of memory while reading headers");
        p->hdrs = nh;
        p->hdrs_cap = ncap;
    }
    p->offs[p->nhdrs++] = (struct stomp_hdr_off){start, (size_t)(colon - p->buf), end};
    return 0;
}

static int line_too_long(struct stomp_parser *p)
{
    return fail(p, STOMP_E_LIMIT_LINE, "%s line longer than allowed (max_header_line=%zu)",
                p->cmd == STOMP_CMD_NONE ? "command" : "header", p->lim.max_header_line);
}

/* A whole line sits in buf[line_start, p->len) with its '\n' last. */
static int line_complete(struct stomp_parser *p)
{
    size_t start = p->line_start, end = p->len - 1;
    if (end > start && p->buf[end - 1] == '\r')
        end--;
    if (end - start > p->lim.max_header_line)
        return line_too_long(p);
    if (p->cmd == STOMP_CMD_NONE) {
        p->cmd = stomp_command_parse((const char *)p->buf + start, end - start);
        if (p->cmd == STOMP_CMD_NONE)
            return fail(p, STOMP_E_UNKNOWN_COMMAND, "unknown command '%.*s'",
                        (int)(end - start > 32 ? 32 : end - start), (const char *)p->buf + start);
    } else if (end == start) {
        return end_of_headers(p);
    } else {
        int r = header_line(p, start, end);
        if (r < 0)
            return r;
    }
    p->line_start = p->len;
    return 0;
}

static int feed_line(struct stomp_parser *p, const uint8_t *b, size_t n, size_t *used)
{
    const uint8_t *nl = memchr(b, '\n', n);
    size_t take = nl ? (size_t)(nl - b) + 1 : n;
    /* +1: a CR that may turn out to be part of the EOL; line_complete checks exactly */
    if (p->len - p->line_start + take - (nl ? 1 : 0) > p->lim.max_header_line + 1)
        return line_too_long(p);
    if (memchr(b, '\0', take))
        return fail(p, p->cmd == STOMP_CMD_NONE ? STOMP_E_UNKNOWN_COMMAND : STOMP_E_NUL_IN_HEADER,
                    "NUL byte in the %s section", p->cmd == STOMP_CMD_NONE ? "command" : "header");
    int r = put(p, b, take);
    if (r < 0)
        return r;
    *used = take;
    return nl ? line_complete(p) : 0;
}

static int feed_body_nul(struct stomp_parser *p, const uint8_t *b, size_t n, size_t *used,
                         bool *done)
{
    const uint8_t *z = memchr(b, '\0', n);
    size_t take = z ? (size_t)(z - b) : n;
    if (p->len - p->body_start + take > p->lim.max_body)
        return fail(p, STOMP_E_LIMIT_BODY, "body exceeds the maximum message size (max_body=%zu)",
                    p->lim.max_body);
    int r = put(p, b, take);
    if (r < 0)
        return r;
    *used = take + (z ? 1 : 0);
    *done = z != NULL;
    return 0;
}

static int feed_idle(struct stomp_parser *p, uint8_t c, size_t *used)
{
    *used = 1;
    if (p->state == PS_IDLE_CR) {
        if (c != '\n')
            return fail(p, STOMP_E_BARE_CR, "CR not followed by LF between frames");
        p->state = PS_IDLE;
    } else if (c == '\r') {
        p->state = PS_IDLE_CR;
    } else if (c != '\n') {
        *used = 0; /* first byte of a command line */
        p->state = PS_LINE;
        p->line_start = p->len;
    }
    return 0;
}

/* One step over b[0..n): sets *used, *done when the frame is complete. */
static int step(struct stomp_parser *p, const uint8_t *b, size_t n, size_t *used, bool *done)
{
    switch (p->state) {
    case PS_IDLE:
    case PS_IDLE_CR:
        return feed_idle(p, b[0], used);
    case PS_LINE:
        return feed_line(p, b, n, used);
    case PS_BODY_LEN: {
        size_t take = n < p->body_want ? n : p->body_want;
        int r = put(p, b, take);
        if (r < 0)
            return r;
        p->body_want -= take;
        *used = take;
        if (p->body_want == 0)
            p->state = PS_BODY_END;
        return 0;
    }
    case PS_BODY_END:
        if (b[0] != '\0')
            return fail(p, STOMP_E_MISSING_NUL, "NUL missing after a body of content-length %zu",
                        p->len - p->body_start);
        *used = 1;
        *done = true;
        return 0;
    case PS_BODY_NUL:
        return feed_body_nul(p, b, n, used, done);
    default:
        return fail(p, STOMP_E_NOMEM, "parser in an impossible state");
    }
}

/* Above this, a frame's buffer is released after the frame: one 100 MiB message
 * must not pin 100 MiB per connection for the connection's lifetime. */
#define PARSER_KEEP_CAP (256u * 1024)

static void reset_frame(struct stomp_parser *p)
{
    if (p->cap > PARSER_KEEP_CAP) {
        free(p->buf);
        p->buf = NULL;
        p->cap = 0;
    }
    p->len = 0;
    p->nhdrs = 0;
    p->cmd = STOMP_CMD_NONE;
    p->line_start = 0;
    p->body_start = 0;
    p->body_want = 0;
    p->has_clen = false;
    p->state = PS_IDLE;
}

static void emit(struct stomp_parser *p, struct stomp_frame *out)
{
    p->buf[p->len] = '\0'; /* put() always reserves one spare byte */
    /* The buffer may have moved while the body arrived: point the headers
     * (unescaped in place at their line offsets) into where it is now. */
    for (size_t i = 0; i < p->nhdrs; i++) {
        p->hdrs[i].name = (const char *)p->buf + p->offs[i].start;
        p->hdrs[i].value = (const char *)p->buf + p->offs[i].colon + 1;
    }
    out->cmd = p->cmd;
    out->headers = p->hdrs;
    out->nheaders = p->nhdrs;
    out->body = p->buf + p->body_start;
    out->body_len = p->len - p->body_start;
    out->has_content_length = p->has_clen;
    p->state = PS_DONE;
}

int stomp_parser_feed(struct stomp_parser *p, const uint8_t *buf, size_t len, size_t *consumed,
                      struct stomp_frame *out)
{
    size_t off = 0;
    *consumed = 0;
    if (p->state == PS_ERROR)
        return error_errno(p);
    if (p->state == PS_DONE)
        reset_frame(p);
    while (off < len) {
        size_t used = 0;
        bool done = false;
        int r = step(p, buf + off, len - off, &used, &done);
        off += used;
        *consumed = off;
        if (r < 0)
            return r;
        if (done) {
            if (buf_reserve(&p->buf, &p->cap, p->len + 1) < 0)
                return fail(p, STOMP_E_NOMEM, "out of memory while reading a frame");
            emit(p, out);
            return 1;
        }
    }
    return 0;
}

const struct stomp_header *stomp_frame_find(const struct stomp_frame *f, const char *name)
{
    for (size_t i = 0; i < f->nheaders; i++)
        if (strcmp(f->headers[i].name, name) == 0)
            return &f->headers[i];
    return NULL;
}

const char *stomp_frame_get(const struct stomp_frame *f, const char *name)
{
    const struct stomp_header *h = stomp_frame_find(f, name);
    return h ? h->value : NULL;
}

/* ---- serializer ------------------------------------------------------- */

/* Can s be written raw (no escaping) on a header line? Names also forbid ':'. */
static bool raw_ok(const char *s, size_t n, bool is_name)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || s[i] == '\0' || (is_name && s[i] == ':'))
            return false;
    return !(n > 0 && s[n - 1] == '\r');
}

static bool escapable(const char *s, size_t n, enum stomp_version v)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || (s[i] == '\r' && v < STOMP_V12))
            return false;
    return true;
}

/* Appends runs of bytes that need no escape in one copy each (most headers
 * are one run): a call per byte was the top cost of serializing a MESSAGE. */
static int put_escaped(struct stomp_buf *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = NULL;
        switch (s[i]) {
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case ':':
            e = "\\c";
            break;
        case '\\':
            e = "\\\\";
            break;
        default:
            continue;
        }
        int r = stomp_buf_append(out, s + run, i - run);
        if (r == 0)
            r = stomp_buf_append(out, e, 2);
        if (r < 0)
            return r;
        run = i + 1;
    }
    return stomp_buf_append(out, s + run, n - run);
}

bool stomp_header_representable(enum stomp_version v, enum stomp_command cmd,
                                const struct stomp_header *h)
{
    bool esc = v != STOMP_V10 && cmd != STOMP_CMD_CONNECT && cmd != STOMP_CMD_STOMP &&
               cmd != STOMP_CMD_CONNECTED;
    if (h->name_len == 0)
        return false;
    if (esc)
        return escapable(h->name, h->name_len, v) && escapable(h->value, h->value_len, v);
    return raw_ok(h->name, h->name_len, true) && raw_ok(h->value, h->value_len, false);
}

static int put_header(struct stomp_buf *out, const struct stomp_header *h, enum stomp_version v,
                      bool esc)
{
    int r;
    if (h->name_len == 0)
        return -EINVAL;
    if (esc) {
        if (!escapable(h->name, h->name_len, v) || !escapable(h->value, h->value_len, v))
            return -EINVAL;
        if ((r = put_escaped(out, h->name, h->name_len)) < 0 ||
            (r = stomp_buf_append(out, ":", 1)) < 0 ||
            (r = put_escaped(out, h->value, h->value_len)) < 0)
            return r;
    } else {
        if (!raw_ok(h->name, h->name_len, true) || !raw_ok(h->value, h->value_len, false))
            return -EINVAL;
        if ((r = stomp_buf_append(out, h->name, h->name_len)) < 0 ||
            (r = stomp_buf_append(out, ":", 1)) < 0 ||
            (r = stomp_buf_append(out, h->value, h->value_len)) < 0)
            return r;
    }
    return stomp_buf_append(out, "\n", 1);
}

static int serialize(struct stomp_buf *out, enum stomp_version v, enum stomp_command cmd,
                     const struct stomp_header *hdrs, size_t n, const void *body, size_t body_len)
{
    bool esc = v != STOMP_V10 && cmd != STOMP_CMD_CONNECT && cmd != STOMP_CMD_STOMP &&
               cmd != STOMP_CMD_CONNECTED;
    const char *name = stomp_command_name(cmd);
    int r;
    if (cmd == STOMP_CMD_NONE || cmd >= STOMP_CMD_COUNT_)
        return -EINVAL;
    if ((r = stomp_buf_append(out, name, strlen(name))) < 0 ||
        (r = stomp_buf_append(out, "\n", 1)) < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (hdrs[i].name_len == 14 && memcmp(hdrs[i].name, "content-length", 14) == 0)
            continue;
        if ((r = put_header(out, &hdrs[i], v, esc)) < 0)
            return r;
    }
    if (body_len > 0 || cmd == STOMP_CMD_SEND || cmd == STOMP_CMD_MESSAGE ||
        cmd == STOMP_CMD_ERROR) {
        char cl[48];
        int k = snprintf(cl, sizeof(cl), "content-length:%zu\n", body_len);
        if ((r = stomp_buf_append(out, cl, (size_t)k)) < 0)
            return r;
    }
    if ((r = stomp_buf_append(out, "\n", 1)) < 0 || (r = stomp_buf_append(out, body, body_len)) < 0)
        return r;
    return stomp_buf_append(out, "", 1);
}

int stomp_serialize(struct stomp_buf *out, enum stomp_version v, enum stomp_command cmd,
                    const struct stomp_header *hdrs, size_t n, const void *body, size_t body_len)
{
    size_t mark = out->len;
    int r = serialize(out, v, cmd, hdrs, n, body, body_len);
    if (r < 0)
        out->len = mark;
    return r;
}
