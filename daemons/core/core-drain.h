/*
 * core-drain — the engine's answer to a DRAIN record (AMQP link drain), in
 * core-dispatch.c. Apart from core.h because core.h is the engine's stable
 * API for the daemons; this entry point is called by core-records.c only.
 *
 * AMQP 1.0 (2.6.7): a sender asked to drain uses all the credit it can
 * before it answers, so "drained" means "nothing more for you now". A full
 * ring to the consumer's worker is not "nothing more": the messages are
 * there, the worker just has not read the earlier ones yet. So a drain is
 * kept pending on its consumer while the worker is blocked and answered by
 * a later dispatch round of the queue (core_worker_resume makes every queue
 * with consumers dirty), once the credit is used up or nothing the consumer
 * could take is left. See "pending drain" in core-internal.h.
 */
#ifndef HAMQ_CORE_DRAIN_H
#define HAMQ_CORE_DRAIN_H

#include <stdint.h>

#include "hamq/msgproto.h"

struct core_engine;

/*
 * The consumer takes what its queue can give, within its credit; then the
 * credit it still holds is dropped and DONE(corr) answers with status = the
 * credit dropped (>= 0), or -ENOENT at once for an unknown consumer.
 *
 * When it ends: at the end of each dispatch round of the consumer's queue
 * (the first one runs here), unless the consumer still has credit, a message
 * it could take (not expired, its filter matches, not excluded for it, for a
 * browser after its cursor) is still ready and its worker's ring is full.
 * Then the drain stays pending and the answer comes from a later round; it
 * is answered exactly once.
 *
 * While it is pending:
 *  - CREDIT adds to the credit as usual and the drain covers it too (AMQP:
 *    a drain applies to all the credit the sender holds), so its DONE may
 *    report more dropped than the credit held when the DRAIN came. The
 *    worker subtracts the status from what it gave and grants the rest of
 *    the client's credit again, so nothing is lost either way.
 *  - a second DRAIN for the consumer answers the first one at once with 0
 *    (it dropped nothing: the credit stays with the consumer) and takes
 *    its place; the second one's DONE reports what is dropped in the end.
 *    The worker never sends two (it waits for the DONE), so this is only
 *    the simplest answer that keeps "one DONE per DRAIN".
 *  - UNSUBSCRIBE, or a browse that has shown everything, answers it (the
 *    connection is alive: the worker waits for that DONE before it frees
 *    its link) with the credit the consumer held, dropped with it.
 *  - its connection or worker going answers nothing: there is no one left
 *    to read it, and the consumer holds no memory for it.
 * A window-mode (STOMP) or unbounded consumer keeps its credit: its drain
 * ends after the first round with dropped 0.
 */
int core_drain(struct core_engine *e, uint32_t worker, const struct msgproto_consumer_ref *d);

#endif
