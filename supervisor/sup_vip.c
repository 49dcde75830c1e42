/*
 * sup_vip — virtual IP with libnl-route + gratuitous ARP (see sup_vip.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>

#include "hamq/log.h"
#include "sup_event.h"
#include "sup_vip.h"

struct sup_vip {
    char ifname[IF_NAMESIZE];
    char label[IF_NAMESIZE]; /* "" if the name is too long for one */
    char text[96];
    int ifindex;
    struct in_addr addr;
    int prefix;
    bool owned;
    int garp_count, garp_interval_ms;
    int garp_left;
    int64_t garp_next;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int nl_to_errno(int nlerr)
{
    switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST:
        return EEXIST;
    case NLE_PERM:
    case NLE_NOACCESS:
        return EPERM;
    case NLE_NODEV:
        return ENODEV;
    case NLE_INVAL:
        return EINVAL;
    case NLE_NOADDR:
        return EADDRNOTAVAIL;
    case NLE_OBJ_NOTFOUND:
        return ENOENT;
    case NLE_NOMEM:
        return ENOMEM;
    case NLE_AF_NOSUPPORT:
        return EAFNOSUPPORT;
    default:
        return EIO;
    }
}

static int parse_vip(struct sup_vip *v, const char *vip, char *err, size_t errlen)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", vip);
    if (strchr(buf, ':')) {
        snprintf(err, errlen,
                 "[ha] vip = \"%s\": IPv6 virtual IPs are not supported yet "
                 "(IPv4 only: it is announced with ARP)",
                 vip);
        return -EAFNOSUPPORT;
    }
    char *slash = strchr(buf, '/');
    v->prefix = 32;
    if (slash) {
        *slash = 0;
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || p < 1 || p > 32) {
            snprintf(err, errlen, "[ha] vip = \"%s\": bad prefix length (expected /1../32)", vip);
            return -EINVAL;
        }
        v->prefix = (int)p;
    }
    if (inet_pton(AF_INET, buf, &v->addr) != 1) {
        snprintf(err, errlen,
                 "[ha] vip = \"%s\": not an IPv4 address (expected e.g. "
                 "10.0.0.50/24)",
                 vip);
        return -EINVAL;
    }
    return 0;
}

int sup_vip_new(const char *vip, const char *ifname, int garp_count, int garp_interval_ms,
                struct sup_vip **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sup_vip *v = calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    int r = parse_vip(v, vip, err, errlen);
    if (r == 0 && (!ifname[0] || strlen(ifname) >= IF_NAMESIZE)) {
        snprintf(err, errlen, "[ha] vip_interface = \"%s\": not an interface name", ifname);
        r = -EINVAL;
    }
    if (r == 0 && (v->ifindex = (int)if_nametoindex(ifname)) == 0) {
        snprintf(err, errlen, "[ha] vip_interface = %s: no such network interface", ifname);
        r = -ENODEV;
    }
    if (r < 0) {
        free(v);
        return r;
    }
    snprintf(v->ifname, sizeof v->ifname, "%s", ifname);
    if (strlen(ifname) + strlen(SUP_VIP_LABEL_SUFFIX) < IF_NAMESIZE)
        snprintf(v->label, sizeof v->label, "%s%s", ifname, SUP_VIP_LABEL_SUFFIX);
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &v->addr, a, sizeof a);
    snprintf(v->text, sizeof v->text, "%s/%d on %s", a, v->prefix, ifname);
    v->garp_count = garp_count < 1 ? 1 : garp_count;
    v->garp_interval_ms = garp_interval_ms < 1 ? 1 : garp_interval_ms;
    v->garp_next = -1;
    *out = v;
    return 0;
}

void sup_vip_free(struct sup_vip *v)
{
    free(v);
}

static int nl_open(struct nl_sock **sk, char *err, size_t errlen)
{
    *sk = nl_socket_alloc();
    if (!*sk)
        return -ENOMEM;
    int r = nl_connect(*sk, NETLINK_ROUTE);
    if (r < 0) {
        snprintf(err, errlen, "netlink: %s", nl_geterror(r));
        nl_socket_free(*sk);
        return -nl_to_errno(r);
    }
    return 0;
}

/* 1: present with our label; 2: present without it; 0: absent; <0: error. */
static int vip_lookup(const struct sup_vip *v, struct nl_sock *sk, char *err, size_t errlen)
{
    struct nl_cache *cache;
    int r = rtnl_addr_alloc_cache(sk, &cache);
    if (r < 0) {
        snprintf(err, errlen, "netlink address dump: %s", nl_geterror(r));
        return -nl_to_errno(r);
    }
    int found = 0;
    for (struct nl_object *o = nl_cache_get_first(cache); o && !found; o = nl_cache_get_next(o)) {
        struct rtnl_addr *a = (struct rtnl_addr *)o;
        struct nl_addr *local = rtnl_addr_get_local(a);
        if (rtnl_addr_get_ifindex(a) != v->ifindex || rtnl_addr_get_family(a) != AF_INET ||
            !local || nl_addr_get_len(local) != 4 ||
            memcmp(nl_addr_get_binary_addr(local), &v->addr, 4) != 0)
            continue;
        const char *label = rtnl_addr_get_label(a);
        found = (v->label[0] && label && strcmp(label, v->label) == 0) ? 1 : 2;
    }
    nl_cache_free(cache);
    return found;
}

static struct rtnl_addr *vip_object(const struct sup_vip *v)
{
    struct rtnl_addr *a = rtnl_addr_alloc();
    struct nl_addr *local = nl_addr_build(AF_INET, &v->addr, 4);
    if (!a || !local) {
        if (a)
            rtnl_addr_put(a);
        if (local)
            nl_addr_put(local);
        return NULL;
    }
    nl_addr_set_prefixlen(local, v->prefix);
    rtnl_addr_set_ifindex(a, v->ifindex);
    rtnl_addr_set_family(a, AF_INET);
    rtnl_addr_set_local(a, local);
    rtnl_addr_set_prefixlen(a, v->prefix);
    if (v->label[0])
        rtnl_addr_set_label(a, v->label);
    nl_addr_put(local);
    return a;
}

static int vip_nl_add(struct sup_vip *v, struct nl_sock *sk, char *err, size_t errlen)
{
    int found = vip_lookup(v, sk, err, errlen);
    if (found < 0)
        return found;
    if (found == 2) {
        snprintf(err, errlen,
                 "cannot add VIP %s: the address is already on %s and is not "
                 "managed by hamq (no label %s): refusing to take it over",
                 v->text, v->ifname, v->label[0] ? v->label : "(name too long for one)");
        return -EEXIST;
    }
    if (found == 1) {
        log_notice("VIP %s is already ours (label %s): adopting it", v->text, v->label);
        return 0;
    }
    struct rtnl_addr *a = vip_object(v);
    if (!a)
        return -ENOMEM;
    int r = rtnl_addr_add(sk, a, NLM_F_EXCL);
    rtnl_addr_put(a);
    if (r < 0) {
        int e = nl_to_errno(r);
        snprintf(err, errlen, "cannot add VIP %s: %s%s", v->text, nl_geterror(r),
                 e == EPERM ? " (CAP_NET_ADMIN is needed)" : "");
        return -e;
    }
    return 0;
}

/* The interface may have been re-created (new index) since sup_vip_new. */
static int refresh_ifindex(struct sup_vip *v, char *err, size_t errlen)
{
    int idx = (int)if_nametoindex(v->ifname);
    if (idx == 0) {
        snprintf(err, errlen, "VIP %s: no such network interface %s", v->text, v->ifname);
        return -ENODEV;
    }
    v->ifindex = idx;
    return 0;
}

int sup_vip_add(struct sup_vip *v, char *err, size_t errlen)
{
    struct nl_sock *sk;
    int r = refresh_ifindex(v, err, errlen);
    if (r == 0)
        r = nl_open(&sk, err, errlen);
    if (r < 0)
        return r;
    r = vip_nl_add(v, sk, err, errlen);
    nl_socket_free(sk);
    if (r < 0)
        return r;
    v->owned = true;
    sup_event(LOG_NOTICE, "vip-add", NULL, "VIP %s added; announcing it %d times", v->text,
              v->garp_count);
    v->garp_left = v->garp_count;
    v->garp_next = now_ms();
    sup_vip_on_timer(v); /* a failed announcement is logged; the address is in place */
    return 0;
}

int sup_vip_remove(struct sup_vip *v, char *err, size_t errlen)
{
    struct nl_sock *sk;
    int r = refresh_ifindex(v, err, errlen);
    if (r == 0)
        r = nl_open(&sk, err, errlen);
    if (r < 0)
        return r;
    int found = vip_lookup(v, sk, err, errlen);
    if (found == 2 || (found == 1 && !v->label[0] && !v->owned)) {
        snprintf(err, errlen, "refusing to remove %s: hamq did not add it (no label %s)", v->text,
                 v->label[0] ? v->label : "(name too long for one)");
        r = -EPERM;
    } else if (found == 1) {
        struct rtnl_addr *a = vip_object(v);
        r = a ? rtnl_addr_delete(sk, a, 0) : -NLE_NOMEM;
        if (a)
            rtnl_addr_put(a);
        if (r < 0) {
            snprintf(err, errlen, "cannot remove VIP %s: %s", v->text, nl_geterror(r));
            r = -nl_to_errno(r);
        }
    } else {
        r = found; /* 0: absent, nothing to do; <0: lookup error */
    }
    nl_socket_free(sk);
    if (r == 0) {
        v->owned = false;
        v->garp_left = 0;
        v->garp_next = -1;
        sup_event(LOG_NOTICE, "vip-remove", NULL, "VIP %s %s", v->text,
                  found == 1 ? "removed" : "was not present: nothing to remove");
    }
    return r;
}

static int get_mac(const char *ifname, uint8_t mac[6])
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    int r = ioctl(s, SIOCGIFHWADDR, &ifr) < 0 ? -errno : 0;
    close(s);
    if (r == 0)
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return r;
}

/* One ARP packet of 28 bytes (Ethernet/IPv4), sender = target = VIP. */
static void arp_build(uint8_t pkt[28], int op, const uint8_t mac[6], const struct in_addr *ip)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    pkt[0] = 0, pkt[1] = ARPHRD_ETHER;
    pkt[2] = 0x08, pkt[3] = 0x00;
    pkt[4] = 6, pkt[5] = 4;
    pkt[6] = 0, pkt[7] = (uint8_t)op;
    memcpy(pkt + 8, mac, 6);
    memcpy(pkt + 14, ip, 4);
    if (op == ARPOP_REQUEST)
        memset(pkt + 18, 0, 6);
    else
        memcpy(pkt + 18, bcast, 6);
    memcpy(pkt + 24, ip, 4);
}

int sup_vip_announce(struct sup_vip *v, char *err, size_t errlen)
{
    uint8_t mac[6], pkt[28];
    int r = get_mac(v->ifname, mac);
    if (r < 0) {
        snprintf(err, errlen, "cannot read the MAC address of %s: %s", v->ifname, strerror(-r));
        return r;
    }
    int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ARP));
    if (s < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open an AF_PACKET socket for gratuitous ARP: %s%s",
                 strerror(e), e == EPERM ? " (CAP_NET_RAW is needed)" : "");
        return -e;
    }
    struct sockaddr_ll to;
    memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_ARP);
    to.sll_ifindex = v->ifindex;
    to.sll_halen = 6;
    memset(to.sll_addr, 0xff, 6);
    const int ops[2] = {ARPOP_REQUEST, ARPOP_REPLY};
    for (int i = 0; i < 2 && r == 0; i++) {
        arp_build(pkt, ops[i], mac, &v->addr);
        if (sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) != sizeof pkt) {
            r = -errno;
            snprintf(err, errlen, "gratuitous ARP for %s: %s", v->text, strerror(errno));
        }
    }
    close(s);
    return r;
}

int sup_vip_on_timer(struct sup_vip *v)
{
    if (v->garp_left <= 0 || now_ms() < v->garp_next)
        return 0;
    char err[256];
    int r = sup_vip_announce(v, err, sizeof err);
    if (r < 0)
        log_warn("%s", err);
    v->garp_left--;
    v->garp_next = v->garp_left > 0 ? now_ms() + v->garp_interval_ms : -1;
    return r;
}

int sup_vip_next_timeout_ms(const struct sup_vip *v)
{
    if (v->garp_left <= 0)
        return -1;
    int64_t d = v->garp_next - now_ms();
    return d < 0 ? 0 : (int)d;
}

bool sup_vip_owned(const struct sup_vip *v)
{
    return v->owned;
}

const char *sup_vip_text(const struct sup_vip *v)
{
    return v->text;
}
