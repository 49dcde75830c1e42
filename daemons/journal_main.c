/*
 * hamq-journal — the broker core: addresses, queues, dispatch, and the only
 * writer of the store. One single-threaded loop: drain the workers' rings →
 * engine → store (group commit) → deliveries and answers back to the rings.
 *
 * This file: options, config, startup order, the loop. See journal.h.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hamq/daemon.h"
#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "journal.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: hamq-journal [OPTIONS]\n"
            "\n"
            "The hamq broker core: owns the store (the durable journal), routes messages\n"
            "between addresses and queues and dispatches them to consumers through the\n"
            "protocol workers (hamq-worker). With --spawn-workers it starts the workers\n"
            "itself, so one command runs a whole broker:\n"
            "\n"
            "  hamq-journal --store /var/lib/hamq/store --spawn-workers 2\n"
            "\n"
            "Options (each overrides the same key of the configuration file):\n"
            "  -c, --config FILE        configuration file (default %s, if it exists)\n"
            "  -s, --store DIR          store directory            [broker] store\n"
            "  -w, --spawn-workers N    start N workers and restart them if they die\n"
            "      --workers N          worker slots to create when the units start the\n"
            "                           workers                    [broker] workers\n"
            "      --port-offset K      add K to every client port [broker] port_offset\n"
            "      --instance NAME      instance name (shm segment /dev/shm/hamq.NAME)\n"
            "      --log-level LEVEL    err, warning, notice, info, debug\n"
            "      --standby            warm backup (hamq-supervisor): follow the store\n"
            "                           read-only until SIGUSR1 promotes this process\n"
            "      --lsn-file PATH      durable LSN shared with hamq-supervisor\n"
            "  -h, --help               this text\n"
            "  -V, --version            print the version\n"
            "\n"
            "Ports (plus the offset): 61616 all protocols, 61613 STOMP.\n"
            "Exit status: 0 stopped on request, 1 internal error, 2 bad configuration,\n"
            "3 fenced by a newer live, 4 store corrupt, 5 store locked by another core,\n"
            "6 store I/O error, 8 store unusable.\n",
            HAMQ_CONFIG_DEFAULT_PATH);
}

struct opts {
    const char *store, *spawn, *workers, *port_offset, *instance, *log_level;
};
enum { OPT_STANDBY = 256, OPT_LSN_FILE };

static int parse_args(struct journald *j, int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"store", required_argument, NULL, 's'},
        {"spawn-workers", required_argument, NULL, 'w'},
        {"workers", required_argument, NULL, 'W'},
        {"port-offset", required_argument, NULL, 'P'},
        {"instance", required_argument, NULL, 'I'},
        {"log-level", required_argument, NULL, 'L'},
        {"standby", no_argument, NULL, OPT_STANDBY},
        {"lsn-file", required_argument, NULL, OPT_LSN_FILE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "c:s:w:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': j->config_path = optarg; break;
        case 's': o->store = optarg; break;
        case 'w': o->spawn = optarg; break;
        case 'W': o->workers = optarg; break;
        case 'P': o->port_offset = optarg; break;
        case 'I': o->instance = optarg; break;
        case 'L': o->log_level = optarg; break;
        case OPT_STANDBY: j->standby = true; break;
        case OPT_LSN_FILE: j->lsn_file = optarg; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("hamq-journal %s\n", PACKAGE_VERSION); exit(0);
        default:
            fprintf(stderr, "Try 'hamq-journal --help'.\n");
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hamq-journal: unexpected argument '%s'\nTry 'hamq-journal --help'.\n",
                argv[optind]);
        return -EINVAL;
    }
    return 0;
}

static int apply_overrides(struct journald *j, const struct opts *o)
{
    char err[HAMQ_CONFIG_ERR_MAX], abs[4096];
    const char *store = o->store;

    /* A relative --store is relative to where the user typed it. */
    if (store && store[0] != '/' && realpath(".", abs)) {
        size_t n = strlen(abs);
        snprintf(abs + n, sizeof(abs) - n, "/%s", store);
        store = abs;
    }
    const struct {
        const char *val, *key, *flag;
    } ov[] = {
        {store, "store", "--store"},
        {o->spawn, "workers", "--spawn-workers"},
        {o->workers, "workers", "--workers"},
        {o->port_offset, "port_offset", "--port-offset"},
        {o->instance, "instance", "--instance"},
        {o->log_level, "log_level", "--log-level"},
    };
    for (size_t i = 0; i < sizeof(ov) / sizeof(ov[0]); i++)
        if (ov[i].val &&
            config_set(&j->cfg, "broker", ov[i].key, ov[i].val, ov[i].flag, err, sizeof(err)) < 0) {
            log_err("%s", err);
            return -EINVAL;
        }
    log_set_max_priority(log_priority_from_name(j->cfg.log_level));
    j->nslots = (uint32_t)j->cfg.workers;
    j->spawn = o->spawn ? (uint32_t)j->cfg.workers : 0;
    return 0;
}

void jd_shutdown(struct journald *j, int exit_code, const char *why)
{
    if (j->stopping)
        return;
    if (exit_code == HAMQ_EXIT_OK)
        log_info("stopping: %s", why);
    else if (exit_code == HAMQ_EXIT_FENCED)
        log_event(LOG_CRIT, "fenced", "%s (epoch %llu); stopped writing", why,
                  (unsigned long long)store_epoch(j->store));
    else
        log_err("stopping: %s", why);
    j->stopping = true;
    j->exit_code = exit_code;
    evloop_stop(j->loop);
}

static void on_term(void *ctx, int signo)
{
    char why[32];

    snprintf(why, sizeof(why), "signal %d", signo);
    jd_shutdown(ctx, HAMQ_EXIT_OK, why);
}

static void on_child(void *ctx)
{
    jd_spawn_reap(ctx);
}

struct status_sum {
    uint64_t queues, messages;
};

static void status_add(void *ctx, const struct core_queue_stat *st)
{
    struct status_sum *sum = ctx;

    sum->queues++;
    sum->messages += st->messages;
}

/* systemctl status shows this line (sd_notify STATUS=); sent when it changes. */
static void on_status_timer(struct evloop *loop, void *ctx)
{
    static char last[256];
    struct journald *j = ctx;
    struct status_sum sum = {0, 0};
    char now[256];

    (void)loop;
    if (!j->engine || !j->store)
        return;
    core_queue_stats(j->engine, NULL, status_add, &sum);
    snprintf(now, sizeof(now), "serving: epoch %llu, %u/%u worker(s), %llu queue(s), %llu message(s)",
             (unsigned long long)store_epoch(j->store), j->ready_workers, j->nslots,
             (unsigned long long)sum.queues, (unsigned long long)sum.messages);
    if (strcmp(now, last) != 0) {
        daemon_notify_status("%s", now);
        memcpy(last, now, sizeof(last));
    }
}

static int store_exit_code(int r)
{
    switch (r) {
    case -EBUSY: case -EAGAIN: return HAMQ_EXIT_LOCK_LOST;
    case -ESTALE: return HAMQ_EXIT_FENCED;
    case -EBADMSG: case -EUCLEAN: case -EPROTO: return HAMQ_EXIT_STORE_CORRUPT;
    case -EIO: case -ENOSPC: return HAMQ_EXIT_IO;
    default: return HAMQ_EXIT_NO_STORE;
    }
}

/*
 * Workers listen with SO_REUSEPORT so that the workers of ONE broker share its
 * ports; the kernel would just as well let a second broker on this host join
 * them and receive half of the connections. The core therefore claims each of
 * its ports as an abstract unix socket name (per network namespace, released by
 * the kernel when the core dies, even by kill -9); a second core that wants a
 * port already claimed is refused before it spawns a worker.
 */
static int claim_ports(struct journald *j)
{
    const int ports[] = {j->cfg.port_all, j->cfg.port_stomp, j->cfg.port_amqp};

    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        if (!ports[i])
            continue;
        int port = ports[i] + j->cfg.port_offset;
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "hamq-port-%d", port);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a,
                           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            if (e == EADDRINUSE)
                log_err("port %d is already served by another hamq broker on this host (its "
                        "core holds @hamq-port-%d): give this one another --port-offset or "
                        "stop the other",
                        port, port);
            else
                log_err("cannot claim port %d: %s", port, strerror(e));
            return HAMQ_EXIT_CONFIG;
        }
        /* kept open for the life of the process: the claim */
    }
    return 0;
}

/* A new engine rebuilt from the open store: reads every live message back. */
static int cold_restore(struct journald *j)
{
    int r;

    j->engine = jd_engine_new(j);
    if (!j->engine) {
        log_err("cannot create the broker engine: out of memory");
        return HAMQ_EXIT_INTERNAL;
    }
    if ((r = jd_store_restore(j)) < 0) {
        log_err("cannot rebuild queues from the store %s: %s", j->cfg.store, strerror(-r));
        return HAMQ_EXIT_STORE_CORRUPT;
    }
    return 0;
}

static int start(struct journald *j)
{
    char err[1024];
    int r;

    if ((r = claim_ports(j)) != 0) /* before the store is touched */
        return r;
    r = j->standby ? jd_standby_open_store(j, err, sizeof(err))
                   : jd_store_open(j, NULL, err, sizeof(err));
    if (r < 0) {
        log_err("cannot open the store %s: %s", j->cfg.store, err);
        return store_exit_code(r);
    }
    if (!j->engine && (r = cold_restore(j)) != 0) /* else a warm standby's engine */
        return r;
    if (jd_link_open(j, err, sizeof(err)) < 0) {
        log_err("cannot create the shared-memory segment of instance '%s': %s",
                j->cfg.instance, err);
        return HAMQ_EXIT_INTERNAL;
    }
    struct daemon_signals sig = {.on_term = on_term, .on_child = on_child, .ctx = j};
    if (daemon_watch_signals(j->loop, &sig) < 0 || daemon_watchdog(j->loop) < 0 ||
        (getenv("NOTIFY_SOCKET") &&
         evloop_add_timer(j->loop, 1000, 1000, on_status_timer, j, NULL) < 0)) {
        log_err("cannot set up signals: %s", strerror(errno));
        return HAMQ_EXIT_INTERNAL;
    }
    if (j->spawn && jd_spawn_start(j) < 0)
        return HAMQ_EXIT_CONFIG;
    log_info("core up: store %s (%s I/O, epoch %llu), instance %s, %u worker slot(s)",
             j->cfg.store, store_is_direct(j->store) ? "direct" : "buffered",
             (unsigned long long)store_epoch(j->store), j->cfg.instance, j->nslots);
    return 0;
}

int main(int argc, char **argv)
{
    static struct journald j = {.bell_fd = -1};
    struct opts o = {0};
    int r;

    log_init("hamq-journal", LOG_TARGET_AUTO);
    if (parse_args(&j, argc, argv, &o) < 0)
        return HAMQ_EXIT_CONFIG;
    if (daemon_load_config(&j.cfg, j.config_path) < 0 || apply_overrides(&j, &o) < 0)
        return HAMQ_EXIT_CONFIG;
    char cerr[512];
    if (jd_config_check(&j.cfg, cerr, sizeof(cerr)) < 0) {
        log_err("configuration refused: %s", cerr);
        return HAMQ_EXIT_CONFIG;
    }
    if (evloop_new(&j.loop) < 0) {
        log_err("out of memory at start");
        return HAMQ_EXIT_INTERNAL;
    }
    bool promoted = !j.standby;
    r = j.standby ? jd_standby_run(&j, &promoted) : 0;
    if (promoted && !j.lsn_pub && jd_lsn_map(&j, true) < 0)
        r = HAMQ_EXIT_CONFIG;
    if (promoted && r == 0)
        r = start(&j);
    else if (r == 0)
        r = -1; /* stopped while standby: exit 0 below */
    if (r == 0) {
        jd_lsn_publish(&j, store_durable_lsn(j.store));
        daemon_notify_ready("serving");
        r = evloop_run(j.loop);
        daemon_notify_stopping();
        if (r < 0) {
            log_err("event loop failed: %s", strerror(-r));
            j.exit_code = HAMQ_EXIT_INTERNAL;
        }
        r = j.exit_code;
    }
    if (r < 0)
        r = HAMQ_EXIT_OK;
    j.stopping = true;
    /* the workers stop while the store flushes: neither needs the other any more */
    if (j.spawn && j.slots)
        jd_spawn_signal_stop(&j);
    jd_store_close(&j);
    if (j.spawn && j.slots)
        jd_spawn_stop(&j);
    jd_link_close(&j);
    core_free(j.engine);
    evloop_free(j.loop);
    return r;
}
