/*
 * sup_vip — the optional virtual IP of the live node: add it to an interface
 * with libnl-route, announce it with gratuitous ARPs, remove it on demotion.
 *
 * Who calls it: hamq-supervisor (add on promotion, remove on demotion); the
 * GARP repeats are driven by sup_vip_on_timer()/sup_vip_next_timeout_ms()
 * from the epoll loop (no sleeping). Netlink calls wait for the kernel's ack
 * (well under a millisecond).
 *
 * Ownership (never remove what we do not own): an address we add carries the
 * label "<ifname>:hq" (IFA_LABEL; the kernel keeps it, `ip addr` shows it).
 *  - add, address absent: added with NLM_F_EXCL, labelled, owned.
 *  - add, address present WITH our label (we added it before a restart):
 *    adopted, owned, announced again.
 *  - add, address present without our label (an operator or another tool
 *    put it there): -EEXIST, "is already on eth0 and not managed by hamq".
 *  - remove: only an address carrying our label; anything else is -EPERM.
 * If the interface name is too long for a label (> 12 characters), ownership
 * is only remembered in memory: a restarted supervisor will not adopt it.
 *
 * IPv4 only: the announcement is ARP (an IPv6 VIP would need unsolicited
 * neighbour advertisements, later work) → -EAFNOSUPPORT with a clear message.
 *
 * Gratuitous ARP: an ARP request and an ARP reply, sender IP = target IP =
 * VIP, sender MAC = the interface's, to the broadcast address, from an
 * AF_PACKET SOCK_DGRAM socket (needs CAP_NET_RAW). Note: receivers with
 * arp_accept=0 (the default) only update an existing neighbour entry.
 */
#ifndef HAMQ_SUP_VIP_H
#define HAMQ_SUP_VIP_H

#include <stdbool.h>
#include <stddef.h>

#define SUP_VIP_LABEL_SUFFIX ":hq"
/* Suggested announcement: 3 GARP pairs, 200 ms apart (switches and clients
 * that miss the first one, e.g. while a port comes up, get the next). */
#define SUP_VIP_GARP_COUNT       3
#define SUP_VIP_GARP_INTERVAL_MS 200

struct sup_vip;

/*
 * Parses vip ("10.0.0.50/24"; no prefix = /32) and resolves ifname. Errors:
 * -EINVAL (bad address text), -EAFNOSUPPORT (IPv6), -ENODEV (no interface).
 * garp_count (>= 1) announcements, garp_interval_ms apart.
 */
int sup_vip_new(const char *vip, const char *ifname, int garp_count, int garp_interval_ms,
                struct sup_vip **out, char *err, size_t errlen);
/* Frees the handle; does NOT remove the address (demotion must say so explicitly). */
void sup_vip_free(struct sup_vip *v);

/* Adds (or adopts) the VIP and sends the first GARP pair. -EPERM without CAP_NET_ADMIN. */
int sup_vip_add(struct sup_vip *v, char *err, size_t errlen);
/* Removes the VIP if it carries our label; -EPERM if not ours; 0 if absent. */
int sup_vip_remove(struct sup_vip *v, char *err, size_t errlen);
/* Sends one GARP pair (request + reply) now. */
int sup_vip_announce(struct sup_vip *v, char *err, size_t errlen);

int sup_vip_on_timer(struct sup_vip *v);
int sup_vip_next_timeout_ms(const struct sup_vip *v); /* -1: nothing scheduled */

bool sup_vip_owned(const struct sup_vip *v);
const char *sup_vip_text(const struct sup_vip *v); /* "10.0.0.50/24 on eth0" */

#endif
