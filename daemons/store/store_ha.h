/*
 * store_ha — the store's lock and epoch module for high availability (used by
 * hamq-supervisor; the writer itself takes only writer.lock, store.c).
 *
 * Files in the store directory (created by store_open or store_ha_prepare):
 *   live.lock    OFD write lock on the whole file, held by the supervisor of the
 *                live node for as long as it is live. Opened O_CLOEXEC so that no
 *                child (the core, the workers) can inherit it and keep it after the
 *                supervisor dies (platform.md §3).
 *   writer.lock  OFD write lock held by the one hamq-journal that writes. A node
 *                becomes live only when it holds live.lock AND writer.lock is free.
 *   store.epoch  ASCII decimal + '\n'. Raised by each activation (claim, then
 *                commit: temp file, fsync, rename, fsync of the directory) while
 *                holding live.lock; a writer that reads a newer value is fenced.
 *
 * Lock order on one node: live.lock (supervisor) before writer.lock (core).
 * Errors: -errno, with err naming the file and what is wrong.
 */
#ifndef HAMQ_STORE_HA_H
#define HAMQ_STORE_HA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Creates the directory and the lock files if missing (not the journal). */
int store_ha_prepare(const char *dir, char *err, size_t errlen);

/*
 * Lock self-test: on a scratch file of dir, a write lock taken through one open
 * file description must be seen (F_OFD_GETLK) and refused (F_OFD_SETLK) through a
 * second one. 0 if so; -ENOLCK with err naming the file system type otherwise.
 */
int store_ha_lock_selftest(const char *dir, char *err, size_t errlen);

/* Opens dir/live.lock (O_RDWR | O_CLOEXEC). Returns the fd or -errno. */
int store_ha_live_open(const char *dir, char *err, size_t errlen);
/* Non-blocking attempt: 0 = we hold it now, -EAGAIN = held by someone else. */
int store_ha_live_try(int fd);
/* Blocking until held (F_OFD_SETLKW); -EINTR when interrupted by a signal. */
int store_ha_live_wait(int fd);
/* Releases it (the fd stays open). */
int store_ha_live_release(int fd);

/*
 * Is writer.lock free? 0 = free, 1 = held (*pid = the pid the holder wrote into
 * the file, 0 if unknown), -errno on error. Takes nothing.
 */
int store_ha_writer_held(const char *dir, pid_t *pid, char *err, size_t errlen);

/* Reads store.epoch (1 if the file does not exist yet). */
int store_ha_read_epoch(const char *dir, uint64_t *epoch, char *err, size_t errlen);
/*
 * Raises store.epoch to max(current, floor) + 1 with claim-then-commit; *out is
 * the new value. Call only while holding live.lock.
 */
int store_ha_raise_epoch(const char *dir, uint64_t floor, uint64_t *out, char *err,
                         size_t errlen);

#endif
