/* u64map — see include/hamq/u64map.h. */
#include "hamq/u64map.h"

#include <errno.h>
#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

void u64map_init(struct u64map *m)
{
    m->tab = NULL;
    m->cap = 0;
    m->count = 0;
}

void u64map_free(struct u64map *m)
{
    free(m->tab);
    u64map_init(m);
}

static int grow(struct u64map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct u64map_entry *nt = calloc(ncap, sizeof(*nt));

    if (!nt)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->tab[i].key)
            continue;
        size_t j = slot_of(m->tab[i].key, ncap);
        while (nt[j].key)
            j = (j + 1) & (ncap - 1);
        nt[j] = m->tab[i];
    }
    free(m->tab);
    m->tab = nt;
    m->cap = ncap;
    return 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *val)
{
    if (!key)
        return -EINVAL;
    if ((m->count + 1) * 2 > m->cap && grow(m) < 0)
        return -ENOMEM;
    size_t i = slot_of(key, m->cap);
    while (m->tab[i].key && m->tab[i].key != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->tab[i].key)
        m->count++;
    m->tab[i].key = key;
    m->tab[i].val = val;
    return 0;
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
    if (!key || !m->cap)
        return NULL;
    for (size_t i = slot_of(key, m->cap); m->tab[i].key; i = (i + 1) & (m->cap - 1))
        if (m->tab[i].key == key)
            return m->tab[i].val;
    return NULL;
}

void *u64map_del(struct u64map *m, uint64_t key)
{
    size_t i, j, mask = m->cap - 1;
    void *val;

    if (!key || !m->cap)
        return NULL;
    for (i = slot_of(key, m->cap); m->tab[i].key != key; i = (i + 1) & mask)
        if (!m->tab[i].key)
            return NULL;
    val = m->tab[i].val;
    /* Backward shift: move later entries of the probe run into the hole. */
    for (j = (i + 1) & mask; m->tab[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m->tab[j].key, m->cap);
        /* Entry j may move to hole i if its home is not in (i, j] cyclically. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->tab[i] = m->tab[j];
            i = j;
        }
    }
    m->tab[i].key = 0;
    m->tab[i].val = NULL;
    m->count--;
    return val;
}

struct u64map_entry *u64map_next(const struct u64map *m, size_t *pos)
{
    while (*pos < m->cap) {
        struct u64map_entry *e = &m->tab[(*pos)++];
        if (e->key)
            return e;
    }
    return NULL;
}
