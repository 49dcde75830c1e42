/*
 * u64map — an open-addressing hash map from non-zero 64-bit keys to pointers
 * (connection ids, consumer ids, correlation ids). Linear probing with
 * backward-shift deletion (no tombstones), grows at 50% load. Process-private;
 * not thread-safe; no global state.
 */
#ifndef HAMQ_U64MAP_H
#define HAMQ_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map_entry {
    uint64_t key; /* 0 = empty */
    void *val;
};

struct u64map {
    struct u64map_entry *tab;
    size_t cap; /* power of two, or 0 */
    size_t count;
};

void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m);
/* 0, -EINVAL (key 0), -ENOMEM. Replaces an existing value. */
int u64map_put(struct u64map *m, uint64_t key, void *val);
void *u64map_get(const struct u64map *m, uint64_t key);
/* Removes and returns the value, or NULL. */
void *u64map_del(struct u64map *m, uint64_t key);
/* Iterate: *pos starts at 0; returns the next entry or NULL. Do not modify while iterating. */
struct u64map_entry *u64map_next(const struct u64map *m, size_t *pos);

#endif
