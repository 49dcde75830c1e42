/* core-util — intrusive list and byte-keyed hash map (see core-util.h). */
#include "core-util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct hmap_ent {
    struct hmap_ent *next;
    uint64_t hash;
    void *value;
    size_t klen;
    unsigned char key[];
};

static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

void hmap_init(struct hmap *m) { memset(m, 0, sizeof(*m)); }

void hmap_free(struct hmap *m)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct hmap_ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    free(m->b);
    hmap_init(m);
}

static struct hmap_ent **find(const struct hmap *m, const void *key, size_t klen, uint64_t h)
{
    if (!m->nb)
        return NULL;
    struct hmap_ent **pp = &m->b[h & (m->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
    return NULL;
}

void *hmap_get(const struct hmap *m, const void *key, size_t klen)
{
    struct hmap_ent **pp = find(m, key, klen, hash_bytes(key, klen));
    return pp ? (*pp)->value : NULL;
}

static int grow(struct hmap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 16;
    struct hmap_ent **b = calloc(nb, sizeof(struct hmap_ent *));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->nb; i++)
        for (struct hmap_ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

int hmap_put(struct hmap *m, const void *key, size_t klen, void *value)
{
    uint64_t h = hash_bytes(key, klen);
    if (find(m, key, klen, h))
        return -EEXIST;
    if (m->n >= m->nb && grow(m) < 0)
        return -ENOMEM;
    struct hmap_ent *e = malloc(sizeof(*e) + klen);
    if (!e)
        return -ENOMEM;
    e->hash = h;
    e->value = value;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->next = m->b[h & (m->nb - 1)];
    m->b[h & (m->nb - 1)] = e;
    m->n++;
    return 0;
}

void *hmap_del(struct hmap *m, const void *key, size_t klen)
{
    struct hmap_ent **pp = find(m, key, klen, hash_bytes(key, klen));
    if (!pp)
        return NULL;
    struct hmap_ent *e = *pp;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->n--;
    return v;
}

void *hmap_next(const struct hmap *m, size_t *bucket, const struct hmap_ent **ent)
{
    const struct hmap_ent *e = *ent ? (*ent)->next : NULL;
    while (!e && *bucket < m->nb)
        e = m->b[(*bucket)++];
    *ent = e;
    return e ? e->value : NULL;
}
