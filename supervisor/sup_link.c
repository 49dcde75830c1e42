/*
 * sup_link — link up/down watch with libnl (see sup_link.h).
 */
#include <errno.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "hamq/log.h"
#include "sup_event.h"
#include "sup_link.h"

#define RECV_ROUNDS_MAX 64

struct sup_link {
    char ifname[IFNAMSIZ];
    struct nl_sock *sk;
    sup_link_fn cb;
    void *ctx;
    bool up;
    bool exists;
};

static const char *state_why(bool exists, unsigned flags)
{
    if (!exists)
        return "deleted";
    if (!(flags & IFF_UP))
        return "admin down";
    if (!(flags & IFF_LOWER_UP))
        return "no carrier";
    return "up";
}

static void set_state(struct sup_link *l, bool exists, unsigned flags)
{
    bool up = exists && (flags & IFF_UP) && (flags & IFF_LOWER_UP);
    l->exists = exists;
    if (up == l->up)
        return;
    l->up = up;
    const char *why = state_why(exists, flags);
    sup_event(up ? LOG_NOTICE : LOG_WARNING, up ? "link-up" : "link-down", NULL,
              "interface %s is %s (%s)", l->ifname, up ? "up" : "down", why);
    if (l->cb)
        l->cb(l->ctx, l->ifname, up, why);
}

/* Reads the current state with a synchronous query on a short-lived socket. */
static int link_query(const char *ifname, bool *exists, unsigned *flags)
{
    struct nl_sock *sk = nl_socket_alloc();
    if (!sk)
        return -ENOMEM;
    int r = nl_connect(sk, NETLINK_ROUTE);
    struct rtnl_link *link = NULL;
    if (r == 0)
        r = rtnl_link_get_kernel(sk, 0, ifname, &link);
    nl_socket_free(sk);
    *exists = r == 0;
    *flags = link ? rtnl_link_get_flags(link) : 0;
    if (link)
        rtnl_link_put(link);
    if (r == -NLE_NODEV || r == -NLE_OBJ_NOTFOUND)
        return 0;
    return r < 0 ? -EIO : 0;
}

static int on_msg(struct nl_msg *msg, void *arg)
{
    struct sup_link *l = arg;
    struct nlmsghdr *h = nlmsg_hdr(msg);
    if ((h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) ||
        h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        return NL_OK;
    const struct ifinfomsg *ifi = nlmsg_data(h);
    struct nlattr *name = nlmsg_find_attr(h, sizeof *ifi, IFLA_IFNAME);
    if (!name || strncmp(nla_data(name), l->ifname, (size_t)nla_len(name)) != 0 ||
        strlen(l->ifname) + 1 != (size_t)nla_len(name))
        return NL_OK;
    set_state(l, h->nlmsg_type == RTM_NEWLINK, ifi->ifi_flags);
    return NL_OK;
}

int sup_link_new(const char *ifname, sup_link_fn cb, void *ctx, struct sup_link **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (!ifname[0] || strlen(ifname) >= IFNAMSIZ) {
        snprintf(err, errlen, "\"%s\": not an interface name", ifname);
        return -EINVAL;
    }
    struct sup_link *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    snprintf(l->ifname, sizeof l->ifname, "%s", ifname);
    l->cb = cb;
    l->ctx = ctx;
    l->sk = nl_socket_alloc();
    int r = l->sk ? 0 : -NLE_NOMEM;
    if (r == 0) {
        nl_socket_disable_seq_check(l->sk);
        nl_socket_modify_cb(l->sk, NL_CB_VALID, NL_CB_CUSTOM, on_msg, l);
        r = nl_connect(l->sk, NETLINK_ROUTE);
    }
    if (r == 0)
        r = nl_socket_add_membership(l->sk, RTNLGRP_LINK);
    if (r == 0)
        r = nl_socket_set_nonblocking(l->sk);
    if (r < 0) {
        snprintf(err, errlen, "netlink link watch: %s", nl_geterror(r));
        sup_link_free(l);
        return -EIO;
    }
    /* Subscribe first, then read the state: no change can fall between the two. */
    unsigned flags;
    r = link_query(ifname, &l->exists, &flags);
    if (r == 0 && !l->exists) {
        snprintf(err, errlen, "%s: no such network interface", ifname);
        r = -ENODEV;
    }
    if (r < 0) {
        if (r != -ENODEV)
            snprintf(err, errlen, "cannot read the state of %s", ifname);
        sup_link_free(l);
        return r;
    }
    l->up = (flags & IFF_UP) && (flags & IFF_LOWER_UP);
    *out = l;
    return 0;
}

int sup_link_on_readable(struct sup_link *l)
{
    for (int i = 0; i < RECV_ROUNDS_MAX; i++) {
        int r = nl_recvmsgs_default(l->sk); /* 0: one batch handled; loop until AGAIN */
        if (r == -NLE_AGAIN)
            return 0;
        if (r >= 0)
            continue;
        /* ENOBUFS (reported as NLE_NOMEM) and friends: we missed events, re-read. */
        log_warn("link watch on %s: %s; re-reading the interface state", l->ifname, nl_geterror(r));
        bool exists;
        unsigned flags;
        if (link_query(l->ifname, &exists, &flags) == 0)
            set_state(l, exists, flags);
        return 0;
    }
    return 0;
}

void sup_link_free(struct sup_link *l)
{
    if (!l)
        return;
    if (l->sk)
        nl_socket_free(l->sk);
    free(l);
}

int sup_link_fd(const struct sup_link *l)
{
    return nl_socket_get_fd(l->sk);
}

bool sup_link_is_up(const struct sup_link *l)
{
    return l->up;
}
