/*
 * store_dup — the duplicate-id part of the live index (see store_index.h).
 *
 * Per address, a FIFO of the newest dup_limit ids (Artemis' id cache, 20000 by
 * default): appending past the limit drops the oldest, which is then dead (a
 * checkpoint no longer carries it, so the segment of its record is not kept for
 * it). Addresses are found through an open-addressing table of pointers (linear
 * probing, at most half full; addresses are never removed, like Artemis' caches).
 * A FIFO starts small and doubles up to the limit, so an address that sees a few
 * ids costs a few bytes, not 20000 slots. Single-threaded like the rest of the index.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_index.h"

#define DUP_MIN_SLOTS 64u
#define DUP_MIN_CAP   16u

static uint64_t dup_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static uint32_t dup_limit(const struct idx *x)
{
    return x->dup_limit ? x->dup_limit : JNL_DUP_IDS_DEFAULT;
}

static int dup_table_grow(struct idx *x)
{
    size_t n = x->ndupslots ? x->ndupslots * 2 : DUP_MIN_SLOTS;
    struct idx_dupaddr **t = calloc(n, sizeof(struct idx_dupaddr *));
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < x->ndupslots; i++) {
        struct idx_dupaddr *a = x->dups[i];
        if (!a)
            continue;
        size_t j = (size_t)dup_hash(a->address, a->alen) & (n - 1);
        while (t[j])
            j = (j + 1) & (n - 1);
        t[j] = a;
    }
    free(x->dups);
    x->dups = t;
    x->ndupslots = n;
    return 0;
}

static struct idx_dupaddr *dup_addr_get(struct idx *x, const char *address, size_t alen)
{
    if ((x->ndupaddrs + 1) * 2 > x->ndupslots && dup_table_grow(x) < 0)
        return NULL;
    size_t mask = x->ndupslots - 1, j = (size_t)dup_hash(address, alen) & mask;
    for (; x->dups[j]; j = (j + 1) & mask)
        if (x->dups[j]->alen == alen && memcmp(x->dups[j]->address, address, alen) == 0)
            return x->dups[j];
    struct idx_dupaddr *a = calloc(1, sizeof *a);
    if (!a || !(a->address = malloc(alen + 1))) {
        free(a);
        return NULL;
    }
    memcpy(a->address, address, alen);
    a->address[alen] = 0;
    a->alen = (uint32_t)alen;
    x->dups[j] = a;
    x->ndupaddrs++;
    return a;
}

/* Room for one more id: grow the ring (linearised) or drop the oldest at the limit. */
static int dup_make_room(struct idx *x, struct idx_dupaddr *a)
{
    uint32_t lim = dup_limit(x);
    if (a->n < a->cap)
        return 0;
    if (a->cap >= lim) {
        struct idx_dupid *old = &a->ring[a->head];
        free(old->id);
        old->id = NULL;
        a->head = (a->head + 1) % a->cap;
        a->n--;
        x->ndupids--;
        return 0;
    }
    uint32_t ncap = a->cap ? a->cap * 2 : DUP_MIN_CAP;
    if (ncap > lim)
        ncap = lim;
    struct idx_dupid *r = calloc(ncap, sizeof *r);
    if (!r)
        return -ENOMEM;
    for (uint32_t i = 0; a->cap && i < a->n; i++)
        r[i] = *idx_dup_at(a, i);
    free(a->ring);
    a->ring = r;
    a->cap = ncap;
    a->head = 0;
    return 0;
}

int idx_dup_add(struct idx *x, const char *address, size_t alen, const void *id, size_t len)
{
    if (!alen || alen > JNL_DUP_ADDRESS_MAX || !len || len > JNL_DUP_ID_MAX)
        return -EINVAL;
    struct idx_dupaddr *a = dup_addr_get(x, address, alen);
    if (!a)
        return -ENOMEM;
    uint8_t *copy = malloc(len);
    if (!copy)
        return -ENOMEM;
    int r = dup_make_room(x, a);
    if (r < 0) {
        free(copy);
        return r;
    }
    memcpy(copy, id, len);
    struct idx_dupid *slot = &a->ring[(a->head + a->n) % a->cap];
    slot->id = copy;
    slot->len = (uint32_t)len;
    a->n++;
    x->ndupids++;
    return 0;
}

int idx_dup_apply(struct idx *x, const void *payload, size_t len)
{
    struct jnl_dup_id d;
    if (len < sizeof d)
        return -EINVAL;
    memcpy(&d, payload, sizeof d);
    if (len != sizeof d + (size_t)d.address_len + d.id_len)
        return -EINVAL;
    const char *p = (const char *)payload + sizeof d;
    int r = idx_dup_add(x, p, d.address_len, p + d.address_len, d.id_len);
    if (r == 0 && x->obs)
        x->obs->dup_id(x->obs_ctx, p, d.address_len, p + d.address_len, d.id_len);
    return r;
}

struct idx_dupaddr *idx_dup_next(const struct idx *x, size_t *pos)
{
    while (*pos < x->ndupslots) {
        struct idx_dupaddr *a = x->dups[(*pos)++];
        if (a && a->n)
            return a;
    }
    return NULL;
}

void idx_dup_free(struct idx *x)
{
    for (size_t i = 0; i < x->ndupslots; i++) {
        struct idx_dupaddr *a = x->dups[i];
        if (!a)
            continue;
        for (uint32_t k = 0; k < a->n; k++)
            free(idx_dup_at(a, k)->id);
        free(a->ring);
        free(a->address);
        free(a);
    }
    free(x->dups);
    x->dups = NULL;
    x->ndupslots = x->ndupaddrs = 0;
    x->ndupids = 0;
}

static const struct idx_dupaddr *dup_addr_find(const struct idx *x, const struct idx_dupaddr *k)
{
    if (!x->ndupslots)
        return NULL;
    size_t mask = x->ndupslots - 1, j = (size_t)dup_hash(k->address, k->alen) & mask;
    for (; x->dups[j]; j = (j + 1) & mask)
        if (x->dups[j]->alen == k->alen && memcmp(x->dups[j]->address, k->address, k->alen) == 0)
            return x->dups[j];
    return NULL;
}

bool idx_dup_equal(const struct idx *a, const struct idx *b)
{
    if (a->ndupids != b->ndupids)
        return false;
    size_t pos = 0;
    const struct idx_dupaddr *d;
    while ((d = idx_dup_next(a, &pos))) {
        const struct idx_dupaddr *o = dup_addr_find(b, d);
        if (!o || o->n != d->n)
            return false;
        for (uint32_t i = 0; i < d->n; i++) {
            const struct idx_dupid *p = idx_dup_at(d, i), *q = idx_dup_at(o, i);
            if (p->len != q->len || memcmp(p->id, q->id, p->len) != 0)
                return false;
        }
    }
    return true;
}

uint64_t idx_dup_memory(const struct idx *x)
{
    uint64_t b = x->ndupslots * sizeof(struct idx_dupaddr *);
    for (size_t i = 0; i < x->ndupslots; i++) {
        const struct idx_dupaddr *a = x->dups[i];
        if (!a)
            continue;
        b += sizeof *a + a->alen + 1 + (uint64_t)a->cap * sizeof(struct idx_dupid);
        for (uint32_t k = 0; k < a->n; k++)
            b += idx_dup_at(a, k)->len;
    }
    return b;
}
