/*
 * sup_event — one structured log record per state change of the supervisor
 * modules: HAMQ_EVENT=<event>, MESSAGE_ID=<fixed UUID of that event type>
 * (so `journalctl MESSAGE_ID=...` finds every occurrence across versions),
 * and HAMQ_PEER=<node> when a peer is involved.
 *
 * The UUIDs are an interface (operators' filters, the catalogue later):
 * never change one; a new event gets a new UUID.
 */
#ifndef HAMQ_SUP_EVENT_H
#define HAMQ_SUP_EVENT_H

#include <stdint.h>

/* The MESSAGE_ID (32 hex digits) of event, or NULL if it has none. */
const char *sup_event_message_id(const char *event);

/* peer may be NULL. */
void sup_event(int prio, const char *event, const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * The node's transitions (start, backup-ready, promote, demote, failover,
 * failback, fenced, serving, writer-busy, core-frozen): also HAMQ_ROLE (NULL =
 * none), HAMQ_EPOCH and HAMQ_DURATION_MS (when duration_ms >= 0).
 */
void sup_event_ha(int prio, const char *event, const char *peer, const char *role, uint64_t epoch,
                  int64_t duration_ms, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#endif
