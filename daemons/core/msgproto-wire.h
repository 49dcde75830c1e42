/*
 * msgproto-wire — the little-endian cursor both msgproto codecs share
 * (records in msgproto.c, messages in msgproto-msg.c). Private to
 * libhamqmsg.a. A writer with buf == NULL only counts; a reader never reads
 * past its end: every get checks the remaining length first and sets `bad`.
 */
#ifndef HAMQ_MSGPROTO_WIRE_H
#define HAMQ_MSGPROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamq/msgproto.h"

struct wire_w {
    uint8_t *buf; /* NULL: count only */
    size_t cap, pos;
    bool bad;     /* a str was invalid */
};

struct wire_r {
    const uint8_t *buf;
    size_t len, pos;
    bool bad;
};

void wire_put_u8(struct wire_w *w, uint8_t v);
void wire_put_u16(struct wire_w *w, uint16_t v);
void wire_put_u32(struct wire_w *w, uint32_t v);
void wire_put_u64(struct wire_w *w, uint64_t v);
void wire_put_raw(struct wire_w *w, const void *p, size_t n);
void wire_put_str(struct wire_w *w, struct msgproto_bytes s);
void wire_put_bin(struct wire_w *w, struct msgproto_bytes b);

uint8_t wire_get_u8(struct wire_r *r);
uint16_t wire_get_u16(struct wire_r *r);
uint32_t wire_get_u32(struct wire_r *r);
uint64_t wire_get_u64(struct wire_r *r);
struct msgproto_bytes wire_get_str(struct wire_r *r);
struct msgproto_bytes wire_get_bin(struct wire_r *r);

#endif
