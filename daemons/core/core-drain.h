/*
 * core-drain — the engine's answer to a DRAIN record (AMQP link drain), in
 * core-dispatch.c. Apart from core.h because core.h is the engine's stable
 * API for the daemons; this entry point is called by core-records.c only.
 */
#ifndef HAMQ_CORE_DRAIN_H
#define HAMQ_CORE_DRAIN_H

#include <stdint.h>

#include "hamq/msgproto.h"

struct core_engine;

/*
 * The consumer takes what its queue can give now, within its credit (one
 * dispatch round of the queue); the credit it still holds is then dropped.
 * Answers DONE(corr) with status = the credit dropped (>= 0), or -ENOENT
 * for an unknown consumer. A consumer whose worker's ring is full gets
 * nothing more in that round: its drain ends with the messages still queued.
 * A window-mode (STOMP) or unbounded consumer keeps its credit (dropped 0).
 */
int core_drain(struct core_engine *e, uint32_t worker, const struct msgproto_consumer_ref *d);

#endif
