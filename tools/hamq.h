/*
 * hamq — the client command line (Artemis CLI compatible flags and output,
 * see ../shared notes and tools/README.md). One process, one thread: every
 * subcommand is an event handler on a Proton pn_connection_driver driven by
 * a blocking poll() loop over one TCP socket (hamq_conn.c). Artemis'
 * "--threads T" become T links (each on its own session) of that connection;
 * only `perf --threads T` runs T such loops, one per thread and connection.
 *
 *   hamq_main.c   subcommand dispatch, option parsing, --help texts
 *   hamq_conn.c   URL list (failover), socket + driver loop, reconnects
 *   hamq_msg.c    producer, consumer, browser
 *   hamq_stat.c   queue stat (the broker's "$hamq.queue-stat" link)
 *   hamq_perf.c   perf producer|consumer|client (rates, latency percentiles)
 */
#ifndef HAMQ_TOOLS_HAMQ_H
#define HAMQ_TOOLS_HAMQ_H

#include <proton/connection_driver.h>
#include <proton/message.h>
#include <proton/terminus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HQ_MAX_URLS    8
#define HQ_MAX_THREADS 64

/* Exit codes of the hamq command. */
enum hq_exit {
    HQ_EXIT_OK = 0,
    HQ_EXIT_FAILED = 1,  /* fewer messages than asked, a refused message, a failed check */
    HQ_EXIT_USAGE = 2,   /* bad flags */
    HQ_EXIT_CONNECT = 3, /* no broker reachable */
};

struct hq_url {
    char host[256];
    char port[16];
};

struct hq_opts {
    const char *url;
    struct hq_url urls[HQ_MAX_URLS];
    int nurls;
    const char *user, *password;
    const char *destination; /* as given: queue://X, topic://X or X */
    char address[512];       /* the bare address */
    bool topic;
    long message_count;
    long message_size, text_size;
    const char *message;
    bool persistent;
    int threads;
    long receive_timeout; /* ms, -1 = forever */
    bool break_on_null;
    long sleep_ms;
    long commit_interval; /* producer: messages per transaction, 0 = none */
    bool verbose;
    long reconnect_timeout; /* ms the failover loop keeps trying */
    const char *filter;
    /* queue stat */
    const char *queue_name;
    int max_column_size;
    int max_rows;     /* rows shown (Artemis --maxRows, 50) */
    bool json;        /* one JSON document per iteration */
    bool loop;        /* repeat every interval_ms */
    long interval_ms; /* --interval / --sleep (implies --loop), default 60000 */
    long loop_count;  /* --count: iterations when looping, 0 = until interrupted */
    const char *field, *operation, *value; /* Artemis' full filter, all three or none */
    /* perf */
    long duration_s, warmup_s;
    int max_pending;
    bool show_latency;
    long rate;
};

/* The loop's view of a subcommand. */
struct hq_app {
    /* (Re)create links on a fresh connection; called after every (re)connect. */
    void (*setup)(struct hq_app *app, pn_connection_t *conn);
    void (*on_event)(struct hq_app *app, pn_event_t *e);
    /* Called at least every 100 ms; returns true when the command is done. */
    bool (*tick)(struct hq_app *app, int64_t now_ms);
    bool done;
    bool failover; /* reconnect on connection loss (else the loss ends the run) */
    /* A consumer: the run fails unless the broker answered the final close, which
     * proves every acceptance sent before it arrived. */
    bool close_must_finish;
    struct hq_conn *conn; /* set by hq_run */
};

struct hq_conn {
    const struct hq_opts *o;
    int fd;
    int cur; /* index in o->urls */
    pn_connection_driver_t d;
    bool have_driver;
    bool lost; /* the connection failed or closed */
    int reconnects;
    int index; /* perf --threads: connection k of T (0 for the others) */
    char err[512];
};

/* hamq_conn.c */
int hq_parse_url(const char *url, struct hq_opts *o, char *err, size_t errlen);
int64_t hq_now_ms(void);
/* Connects (trying every URL in turn until o->reconnect_timeout) and runs app until done. */
int hq_run(struct hq_conn *c, struct hq_app *app);
void hq_conn_fini(struct hq_conn *c);
/* Encodes msg and sends it as one delivery with an 8-byte tag; returns the delivery. */
/* Writes what Proton has ready to send, without waiting (from an event handler). */
void hq_flush(struct hq_conn *c);

/* AMQP 1.0 part 4: the coordinator's messages and states (descriptor codes). */
#define HQ_TXN_DECLARE   0x31u
#define HQ_TXN_DISCHARGE 0x32u
#define HQ_TXN_DECLARED  0x33u
#define HQ_TXN_STATE     0x34u

/*
 * Encodes msg and sends it as one transfer tagged tag; settle: pre-settled.
 * txn (NULL: none): the transaction's id, sent as the transfer's
 * transactional-state. Returns the delivery, or NULL when msg cannot be encoded.
 */
pn_delivery_t *hq_send_message(pn_link_t *l, pn_message_t *msg, uint64_t tag, bool settle,
                               const pn_bytes_t *txn);
/* Reads a complete incoming delivery into msg; false if partial or undecodable. */
bool hq_read_message(pn_delivery_t *dl, pn_message_t *msg);
/* Frees the calling thread's receive/encode buffers (each thread has its own). */
void hq_conn_thread_done(void);
/* Target/source capability ("queue" or "topic") for the destination. */
void hq_set_caps(pn_terminus_t *t, bool topic);
const char *hq_dest_name(const struct hq_opts *o, char *buf, size_t cap);

/* hamq_msg.c */
int hq_producer(struct hq_opts *o);
int hq_consumer(struct hq_opts *o);
int hq_browser(struct hq_opts *o);
/* hamq_stat.c */
/* Checks the queue stat flags together (filter, --count, --maxColumnSize); 0 or -EINVAL. */
int hq_stat_check(const struct hq_opts *o, char *err, size_t errlen);
int hq_queue_stat(struct hq_opts *o);
/* hamq_perf.c */
int hq_perf(struct hq_opts *o, const char *mode);

#endif
