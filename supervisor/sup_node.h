/*
 * sup_node — the state machine of one hamq-supervisor (one node of an HA
 * group): who is live, the local core, the locks and the epoch, heartbeats,
 * the control socket, the VIP. main.c parses options; ctl.c is the client.
 *
 * Roles: starting → backup (standby core following the store, a thread blocked
 * on live.lock) → live (holds live.lock, its core holds writer.lock) → backup
 * again after a handover or a demotion. fenced: a newer epoch was seen while
 * live. paused: an operator said "do not take over" (or the core cannot run).
 *
 * Activation (each step logged): live.lock held → writer.lock free (else stay
 * backup and say why every 5 s) → epoch raised → core promoted (SIGUSR1 to the
 * warm standby) or started → workers serving (their READY=1 on our notify
 * socket) → VIP + GARP. The failover time is logged from peer-lost (or from
 * the lock, if the peer was not seen lost) to serving.
 */
#ifndef HAMQ_SUP_NODE_H
#define HAMQ_SUP_NODE_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "hamq/config.h"

struct sup_node_opts {
    const char *config_path; /* passed on to hamq-journal, may be NULL */
    const char *run_dir;     /* control + notify sockets, LSN file (default /run/hamq) */
    const char *bin_dir;     /* where hamq-journal is (default: next to us) */
    int frozen_timeout_ms;   /* core heartbeat age that means frozen (default: hb timeout) */
};

/* Runs the node until SIGTERM/SIGINT. Returns the exit status (hamq/exitcodes.h). */
int sup_node_run(const struct hamq_config *cfg, const struct sup_node_opts *o);

/* The control socket of node id in run_dir. */
static inline int sup_node_ctl_path(char *buf, size_t len, const char *run_dir,
                                    const char *node_id)
{
    int k = snprintf(buf, len, "%s/supervisor-%s.sock", run_dir, node_id);
    return k < 0 || (size_t)k >= len ? -ENAMETOOLONG : 0;
}

#endif
