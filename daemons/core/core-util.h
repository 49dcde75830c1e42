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

void dl_init(struct dlist *head);
bool dl_empty(const struct dlist *head);
bool dl_linked(const struct dlist *node); /* in some list (node inited by dl_init when out) */
void dl_insert_before(struct dlist *pos, struct dlist *node);
void dl_push_tail(struct dlist *head, struct dlist *node);
void dl_remove(struct dlist *node); /* leaves node self-linked */

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
