/*
 * worker_flow — per-address producer flow control in a worker: the set of
 * addresses the core reported full (MSGPROTO_FLOW_ADDR), and the
 * connections that wait for one of them to be released. See worker.h.
 *
 * The set: a u64map from the FNV-1a hash of the name to a chain of names
 * (a hash collision costs a comparison, never a wrong answer). Empty in
 * the common case, so a SEND pays one load and a branch.
 *
 * Waiting: a protocol that must hold a SEND (STOMP: the frame waits in the
 * session and the socket is no longer read; AMQP: no more link credit)
 * calls wk_conn_wait_address(); when the core releases any address, every
 * waiting connection gets on_writable() once and checks again, waiting
 * anew if its own address is still blocked. Releases are rare (hysteresis
 * of 10 % of the limit in the core), so the simple wake-all costs little.
 * A connection waiting for an address does not also poll for ring space:
 * wk_conn_wait_space() leaves it alone until its address is released.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/log.h"
#include "worker.h"

struct wk_blocked_addr {
    struct wk_blocked_addr *next; /* same hash */
    size_t len;
    char name[];
};

/* The address part of an FQQN "address::queue". */
static size_t address_len(const char *address, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (address[i] == ':' && address[i + 1] == ':')
            return i;
    return len;
}

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1; /* key 0 is the map's empty slot */
}

static struct wk_blocked_addr *find(const struct worker *w, const char *address, size_t len)
{
    struct wk_blocked_addr *b = u64map_get(&w->blocked_addrs, name_hash(address, len));

    for (; b; b = b->next)
        if (b->len == len && memcmp(b->name, address, len) == 0)
            return b;
    return NULL;
}

bool wk_address_blocked(const struct worker *w, const char *address, size_t len)
{
    if (!w->nblocked_addrs)
        return false;
    return find(w, address, address_len(address, len)) != NULL;
}

static int block(struct worker *w, const char *address, size_t len)
{
    uint64_t key = name_hash(address, len);

    if (find(w, address, len))
        return 0;
    struct wk_blocked_addr *b = malloc(sizeof(*b) + len + 1);
    if (!b)
        return -ENOMEM;
    b->len = len;
    memcpy(b->name, address, len);
    b->name[len] = '\0';
    b->next = u64map_get(&w->blocked_addrs, key);
    if (u64map_put(&w->blocked_addrs, key, b) < 0) {
        free(b);
        return -ENOMEM;
    }
    w->nblocked_addrs++;
    return 0;
}

static void unblock(struct worker *w, const char *address, size_t len)
{
    uint64_t key = name_hash(address, len);
    struct wk_blocked_addr *head = u64map_get(&w->blocked_addrs, key), *prev = NULL;

    for (struct wk_blocked_addr *b = head; b; prev = b, b = b->next) {
        if (b->len != len || memcmp(b->name, address, len) != 0)
            continue;
        if (prev)
            prev->next = b->next;
        else if (b->next)
            u64map_put(&w->blocked_addrs, key, b->next); /* replaces: cannot fail */
        else
            u64map_del(&w->blocked_addrs, key);
        free(b);
        w->nblocked_addrs--;
        return;
    }
}

/* Wakes every connection waiting for an address; the still-blocked wait again. */
static void wake_address_waiters(struct worker *w)
{
    size_t pos = 0, n = 0;
    struct u64map_entry *e;
    uint64_t *ids;

    if (!w->waiting_addr)
        return;
    /* on_writable may close or re-register connections: collect ids first. */
    ids = calloc(w->waiting_addr, sizeof(*ids));
    if (!ids) {
        log_err("out of memory waking producers of a released address; they wait for the next");
        return;
    }
    while (n < w->waiting_addr && (e = u64map_next(&w->conns, &pos)))
        if (((struct wk_conn_ref *)e->val)->waiting_addr)
            ids[n++] = e->key;
    for (size_t i = 0; i < n; i++) {
        struct wk_conn_ref *ref = u64map_get(&w->conns, ids[i]);
        if (!ref || !ref->waiting_addr)
            continue;
        ref->waiting_addr = false;
        w->waiting_addr--;
        ref->ops->on_writable(ref->conn);
    }
    free(ids);
}

void wk_flow_address(struct worker *w, const struct msgproto_flow_addr *f)
{
    const char *name = (const char *)f->address.p;
    size_t len = f->address.len;

    log_info("producers to address %.*s %s by the core (its queues hold %llu of %llu bytes)",
             (int)len, name, f->blocked ? "blocked" : "resumed", (unsigned long long)f->bytes,
             (unsigned long long)f->limit);
    if (!f->blocked) {
        unblock(w, name, len);
        wake_address_waiters(w);
    } else if (block(w, name, len) < 0) {
        log_err("out of memory: SENDs to full address %.*s are not held", (int)len, name);
    }
}

void wk_conn_wait_address(struct worker *w, uint64_t id)
{
    struct wk_conn_ref *ref = u64map_get(&w->conns, id);

    if (!ref || ref->waiting_addr)
        return;
    ref->waiting_addr = true;
    w->waiting_addr++;
}

void wk_flow_init(struct worker *w)
{
    u64map_init(&w->blocked_addrs);
    w->nblocked_addrs = 0;
    w->waiting_addr = 0;
}

void wk_flow_free(struct worker *w)
{
    size_t pos = 0;
    struct u64map_entry *e;

    while ((e = u64map_next(&w->blocked_addrs, &pos)))
        for (struct wk_blocked_addr *b = e->val, *next; b; b = next) {
            next = b->next;
            free(b);
        }
    u64map_free(&w->blocked_addrs);
    w->nblocked_addrs = 0;
}
