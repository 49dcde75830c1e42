/* Helpers shared by the store tests: scratch dirs on a real file system, bodies. */
#ifndef HAMQ_STORE_TESTLIB_H
#define HAMQ_STORE_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A fresh directory under $HAMQ_BUILDDIR/tests/store (or /var/tmp), never tmpfs
   unless shm is true (then under /dev/shm). Aborts on failure. */
void st_mkdtemp(char *out, size_t n, const char *tag, bool shm);
void st_rmrf(const char *dir);
/* Deterministic body of message id; length from id too (0..max). */
size_t st_body_len(uint64_t id, size_t max);
void st_body(uint64_t id, uint8_t *buf, size_t len);
/* Opens with small segments (seg bytes), buffered or not. */
int st_open(const char *dir, uint64_t seg, struct store **s, char *err, size_t errlen);
/* Path of segment seq of the message journal. */
void st_seg_path(char *out, size_t n, const char *dir, uint64_t seq);
/* Quiet logs unless HAMQ_TEST_VERBOSE is set. */
void st_quiet_logs(void);
/* Flips / writes bytes in a file. */
void st_poke(const char *path, uint64_t off, const void *bytes, size_t n);
void st_peek(const char *path, uint64_t off, void *bytes, size_t n);
double st_now(void);

#endif
