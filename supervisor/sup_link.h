/*
 * sup_link — watch one network interface with rtnetlink link events, so a
 * live node whose VIP (or peer) interface lost its network can demote itself.
 *
 * Who calls it: hamq-supervisor's epoll loop: sup_link_fd() is a non-blocking
 * NETLINK_ROUTE socket subscribed to RTNLGRP_LINK; call sup_link_on_readable()
 * when readable. The callback runs only on a CHANGE of the watched state:
 *   up      = IFF_UP (administratively up) AND IFF_LOWER_UP (carrier)
 * with a reason string ("admin down", "no carrier", "deleted", "up").
 * The initial state is read with a dump at creation (sup_link_is_up()).
 * If the kernel reports ENOBUFS (we missed events), the state is re-read.
 */
#ifndef HAMQ_SUP_LINK_H
#define HAMQ_SUP_LINK_H

#include <stdbool.h>
#include <stddef.h>

struct sup_link;
typedef void (*sup_link_fn)(void *ctx, const char *ifname, bool up, const char *why);

/* -ENODEV if ifname does not exist now (it must exist at start). */
int sup_link_new(const char *ifname, sup_link_fn cb, void *ctx, struct sup_link **out, char *err,
                 size_t errlen);
void sup_link_free(struct sup_link *l);
int sup_link_fd(const struct sup_link *l);
int sup_link_on_readable(struct sup_link *l);
bool sup_link_is_up(const struct sup_link *l);

#endif
