/*
 * core-util — the two containers the engine needs: an intrusive circular
 * doubly-linked list and a byte-keyed chained hash map (keys copied, values
 * borrowed). Private to libhamqcore.a. No global state.
 */
#ifndef HAMQ_CORE_UTIL_H
#define HAMQ_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dlist {
    struct dlist *prev, *next;
};

#define dl_entry(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

/* Inline so static analysis follows the links (it cannot across files). */
static inline void dl_init(struct dlist *h) { h->prev = h->next = h; }
static inline bool dl_empty(const struct dlist *h) { return h->next == h; }
/* In some list (a node out of every list is kept self-linked by dl_init/dl_remove). */
static inline bool dl_linked(const struct dlist *n) { return n->next != n; }

static inline void dl_insert_before(struct dlist *pos, struct dlist *n)
{
    n->prev = pos->prev;
    n->next = pos;
    pos->prev->next = n;
    pos->prev = n;
}

static inline void dl_push_tail(struct dlist *h, struct dlist *n) { dl_insert_before(h, n); }

/* Leaves node self-linked. */
static inline void dl_remove(struct dlist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    dl_init(n);
}

struct hmap_ent;
struct hmap {
    struct hmap_ent **b;
    size_t nb, n;
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m); /* frees entries, not values */
void *hmap_get(const struct hmap *m, const void *key, size_t klen);
int hmap_put(struct hmap *m, const void *key, size_t klen, void *value); /* -EEXIST, -ENOMEM */
void *hmap_del(struct hmap *m, const void *key, size_t klen);
/* Iterate: *pos starts at 0; returns the next value or NULL. Do not modify meanwhile. */
void *hmap_next(const struct hmap *m, size_t *bucket, const struct hmap_ent **ent);

#endif
