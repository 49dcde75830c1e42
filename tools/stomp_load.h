/*
 * stomp_load — the STOMP load generator (hamq-stomp-load), shared types.
 *
 * A client, not a broker part: it talks to any STOMP 1.2 broker over TCP
 * (hamq, ActiveMQ Classic, RabbitMQ) and measures what the benchmark
 * asks for. Files:
 *   stomp_load.c        options, the run, the report;
 *   stomp_load_conn.c   the connections: one epoll loop, producers keep a
 *                       window of W outstanding receipts, consumers ack each
 *                       message (client-individual);
 *   stomp_load_stats.c  latency histogram, CPU of processes from /proc, the
 *                       raw 4 KiB O_DIRECT write + fdatasync probe.
 * Response frames are parsed with the worker's stomp_codec (libhamqstomp.a),
 * a pure library; nothing of the broker's daemons is linked.
 */
#ifndef HAMQ_STOMP_LOAD_H
#define HAMQ_STOMP_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* --- latency histogram: log-linear, 32 sub-buckets per power of two of ns --- */
#define SL_HIST_SUB  32
#define SL_HIST_BITS 40 /* up to ~18 minutes */

struct sl_hist {
    uint64_t n;
    uint64_t max_ns;
    uint64_t b[SL_HIST_BITS * SL_HIST_SUB];
};

void sl_hist_add(struct sl_hist *h, uint64_t ns);
/* Value in ns below which a fraction q (0..1) of samples lies (bucket upper bound). */
uint64_t sl_hist_quantile(const struct sl_hist *h, double q);

uint64_t sl_now_ns(void);

/* --- CPU of processes --- */
#define SL_MAX_PIDS 64

struct sl_proc {
    pid_t pid;
    char name[32];
    uint64_t ticks0, ticks1; /* utime + stime, clock ticks */
    bool gone;               /* exited during the run */
};

struct sl_procs {
    size_t n;
    struct sl_proc p[SL_MAX_PIDS];
};

/* Adds pid (its comm as name). 0, -ESRCH when it does not exist, -ENOSPC. */
int sl_procs_add_pid(struct sl_procs *ps, pid_t pid);
/* Adds every process whose comm is exactly name; returns how many (>= 0). */
int sl_procs_add_name(struct sl_procs *ps, const char *name);
/* Adds pid and its children and grandchildren. 0 or -errno. */
int sl_procs_add_tree(struct sl_procs *ps, pid_t pid);
void sl_procs_sample(struct sl_procs *ps, bool after);
/* CPU seconds of this process (user + sys). */
double sl_self_cpu(void);

/* Raw probe: n × (4 KiB O_DIRECT pwrite + fdatasync) into a new file in dir.
 * overwrite: the file is written once before (no extent conversion). 0 or -errno. */
int sl_raw_probe(const char *dir, unsigned n, bool overwrite, struct sl_hist *out);

/* --- the load --- */
struct sl_opts {
    const char *host;
    const char *port;
    const char *dest;
    const char *login, *passcode, *vhost;
    unsigned producers, consumers;
    unsigned window;   /* outstanding receipts per producer; 0 = no receipts */
    unsigned prefetch; /* per consumer */
    size_t size;
    bool persistent;
    double duration; /* s; 0 = count bounded */
    uint64_t count;  /* messages to produce (or consume when no producers) */
    double idle_s;   /* consumers stop after this long without a message once done */
    double grace_s;  /* after the end, wait this long for receipts/messages */
    bool verbose;
};

struct sl_result {
    uint64_t sent, receipted, consumed, acked;
    uint64_t errors;
    double produce_s, consume_s; /* first send → last receipt; first → last message */
    struct sl_hist lat;          /* receipt latency */
    char first_error[256];
};

/* Runs the load; fills res. 0, or -errno when it could not start at all
 * (connection refused: the message is printed here). */
int sl_run(const struct sl_opts *o, struct sl_result *res);

#endif
