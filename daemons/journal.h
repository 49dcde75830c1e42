/*
 * journal — the state of the hamq-journal process (the broker core), shared
 * by its parts:
 *   journal_main.c   options, config, startup order, the loop
 *   journal_link.c   the shm segment and the rings of every worker slot:
 *                    records in (→ engine), deliveries and answers out,
 *                    worker liveness
 *   journal_store.c  the engine's persistence ops on the store, recovery of
 *                    the engine from the store, the epoch (fencing) check
 *   journal_spawn.c  --spawn-workers: start, watch and restart hamq-worker
 *   journal_standby.c --standby (warm backup until promoted) and the LSN file
 *                    shared with hamq-supervisor
 * The core never owns a client socket.
 */
#ifndef HAMQ_JOURNAL_H
#define HAMQ_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.h"
#include "hamq/config.h"
#include "hamq/evloop.h"
#include "hamq/ring.h"
#include "hamq/shm.h"
#include "store.h"

struct jd_out; /* records for a worker that did not fit its ring yet */

struct jd_slot {
    struct ring tx, rx;      /* tx: core→worker, rx: worker→core */
    int bell_fd;             /* the worker's doorbell (we write when it armed) */
    struct shm_peer peer;
    uint32_t gen;            /* attach generation we watch */
    bool watching;           /* peer is valid */
    bool alive;              /* said HELLO and not seen dead since */
    bool dirty;              /* records committed, not yet published */
    bool blocked;            /* the engine was told -EAGAIN: resume when space */
    struct jd_out *out_head, *out_tail;
    /* spawner */
    pid_t pid;
    uint64_t started_ms;
    uint64_t restart_at_ms;  /* 0 = not waiting to restart */
    uint32_t backoff_ms;
};

struct journald {
    struct hamq_config cfg;
    const char *config_path;
    uint32_t nslots;
    uint32_t spawn;          /* workers to spawn (0 = units start them) */
    struct evloop *loop;
    struct shm_seg seg;
    struct jd_slot *slots;
    int bell_fd;             /* our doorbell, shared by every worker→core ring */
    struct store *store;
    struct core_engine *engine;
    uint32_t ready_workers;
    bool announced_ready;
    bool flow_blocked;       /* producers blocked by [broker] max_memory */
    bool stopping;
    int exit_code;
    char worker_bin[4096];
    bool standby;            /* --standby: follow the store until promoted */
    const char *lsn_file;    /* --lsn-file: durable LSN shared with the supervisor */
    _Atomic uint64_t *lsn_pub; /* its mapping, NULL without --lsn-file */
};

/* journal_link.c */
int jd_link_open(struct journald *j, char *err, size_t errlen);
void jd_link_close(struct journald *j);
extern const struct core_io_ops jd_io_ops;
void jd_worker_hello(struct journald *j, uint32_t slot);

/* journal_store.c */
int jd_config_check(const struct hamq_config *c, char *err, size_t errlen);
void jd_core_config(const struct journald *j, struct core_config *cc);
struct core_engine *jd_engine_new(struct journald *j);
uint32_t jd_dup_limit(const struct journald *j); /* duplicate ids kept per address */
/* Opens the store (adopting *adopt's index when adopt is not NULL: store_open_adopt). */
int jd_store_open(struct journald *j, struct store_follower **adopt, char *err, size_t errlen);
/* Rebuilds the engine from the open store (queues the engine lacks, messages, dup ids). */
int jd_store_restore(struct journald *j);
/* Pieces of that restore, shared with the warm standby (journal_standby.c). */
struct jd_ref_list {
    struct store_live_ref *v;
    size_t n, cap;
};
typedef long (*jd_body_reader)(void *src, uint64_t msg_id, void *buf, size_t len);
int jd_collect_ref(void *ctx, const struct store_live_ref *ref); /* ctx: jd_ref_list */
/* Restores messages and refs in message id order (sorts l). */
int jd_restore_refs(struct journald *j, struct jd_ref_list *l, jd_body_reader read_body,
                    void *src);
int jd_restore_binding(void *ctx, const struct store_binding *b); /* ctx: journald */
int jd_restore_dup(void *ctx, const char *address, const void *id, size_t len);
void jd_store_close(struct journald *j);
extern const struct core_persist_ops jd_persist_ops;

/* journal_spawn.c */
int jd_spawn_start(struct journald *j);
void jd_spawn_reap(struct journald *j);
void jd_spawn_signal_stop(struct journald *j); /* SIGTERM to the workers, no wait */
void jd_spawn_stop(struct journald *j);        /* SIGTERM and reap (SIGKILL after 5 s) */

/* journal_standby.c */
int jd_standby_run(struct journald *j, bool *promoted);
/* After a promotion: opens the store adopting the follower's index and finishes the
   warm engine (j->engine), or leaves j->engine NULL when it was not warm. */
int jd_standby_open_store(struct journald *j, char *err, size_t errlen);
int jd_lsn_map(struct journald *j, bool create);
void jd_lsn_publish(struct journald *j, uint64_t lsn);

void jd_shutdown(struct journald *j, int exit_code, const char *why);

#endif
