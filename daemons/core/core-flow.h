/*
 * core-flow — per-address producer flow control of the engine (Artemis:
 * max-size-bytes with address-full-policy BLOCK). An extension of core.h,
 * kept apart so that the engine's main interface does not change; the
 * implementation is in core-route.c next to the global limit (flow_check).
 *
 * What is counted: the bytes of the messages held in an address's queues
 * (ready or being delivered). A message routed to several queues of one
 * address (multicast) counts once for that address; a message that is in the
 * queues of two addresses (a dead-letter move that could not copy it) counts
 * for both. A message sent in a transaction counts from its commit on.
 * Counting always runs; limits apply only once core_flow_addresses() gave
 * them.
 *
 * When an address's bytes reach its limit the engine reports it blocked
 * (ops->changed(…, true, …)); when they fall to 90 % of the limit or below,
 * unblocked. Reports are made at the end of the operation that crossed the
 * mark, never from inside one; the glue tells the workers (MSGPROTO_FLOW_ADDR)
 * and they hold SENDs to that address. The engine itself never refuses a
 * SEND for it: what was already on its way gets in, nothing is dropped.
 */
#ifndef HAMQ_CORE_FLOW_H
#define HAMQ_CORE_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

struct core_addr_flow_ops {
    /* The limit of an address in bytes, 0 = none. Asked once per address
     * (again after the next core_flow_addresses()). */
    uint64_t (*limit)(void *ctx, const char *address);
    /* The address became blocked / unblocked. */
    void (*changed)(void *ctx, const char *address, bool blocked, uint64_t bytes, uint64_t limit);
};

/*
 * Installs (or, ops NULL, removes) the per-address limits. Every existing
 * address is evaluated again at once: those over their limit are reported
 * blocked before this returns, those no longer limited unblocked. ops and
 * ctx must stay valid while the engine lives.
 */
void core_flow_addresses(struct core_engine *e, const struct core_addr_flow_ops *ops, void *ctx);

/* Calls fn for every address blocked now (a worker that joins must learn them). */
void core_flow_blocked_each(struct core_engine *e,
                            void (*fn)(void *ctx, const char *address, uint64_t bytes,
                                       uint64_t limit),
                            void *ctx);

/* Bytes held in the queues of address, each message once; 0 for an unknown address. */
uint64_t core_address_bytes(struct core_engine *e, const char *address);

/* True if address is blocked now. */
bool core_address_blocked(struct core_engine *e, const char *address);

#endif
