/*
 * hamq-worker — a protocol worker: client sockets (STOMP now, AMQP next)
 * on one side, its shm slot's rings to the core on the other. Started by
 * `hamq-journal --spawn-workers N` or by the hamq-worker@N unit.
 *
 * This file: options, config, startup, the loop. See worker.h for the parts.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/daemon.h"
#include "hamq/exitcodes.h"
#include "hamq/log.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: hamq-worker --index N [OPTIONS]\n"
            "\n"
            "A hamq protocol worker: serves STOMP 1.0-1.2 clients (port 61613, and 61616\n"
            "with protocol sniffing) and passes their messages to the core (hamq-journal)\n"
            "through the shared-memory slot N. Normally started by hamq-journal\n"
            "--spawn-workers or by the hamq-worker@N systemd unit.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      configuration file (default %s, if it exists)\n"
            "  -i, --index N          worker slot number, 0..workers-1 (required)\n"
            "      --instance NAME    broker instance name (shm segment hamq.NAME)\n"
            "      --port-offset K    add K to every client port (a second broker per host)\n"
            "      --log-level LEVEL  err, warning, notice, info, debug\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n"
            "\n"
            "Exit status: 0 stopped on request, 2 bad configuration, 7 the core went away,\n"
            "1 other failure.\n",
            HAMQ_CONFIG_DEFAULT_PATH);
}

struct opts {
    const char *config, *instance, *port_offset, *log_level;
    long index;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"index", required_argument, NULL, 'i'},
        {"instance", required_argument, NULL, 'I'},
        {"port-offset", required_argument, NULL, 'P'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int c;

    o->index = -1;
    while ((c = getopt_long(argc, argv, "c:i:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'I': o->instance = optarg; break;
        case 'P': o->port_offset = optarg; break;
        case 'L': o->log_level = optarg; break;
        case 'i':
            o->index = strtol(optarg, &end, 10);
            if (*end || o->index < 0 || o->index > 1023) {
                fprintf(stderr, "hamq-worker: --index %s: not a slot number (0..1023)\n",
                        optarg);
                return -EINVAL;
            }
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("hamq-worker %s\n", PACKAGE_VERSION); exit(0);
        default:
            fprintf(stderr, "Try 'hamq-worker --help'.\n");
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hamq-worker: unexpected argument '%s'\nTry 'hamq-worker --help'.\n",
                argv[optind]);
        return -EINVAL;
    }
    if (o->index < 0) {
        fprintf(stderr, "hamq-worker: --index N is required\nTry 'hamq-worker --help'.\n");
        return -EINVAL;
    }
    return 0;
}

static int apply_overrides(struct worker *w, const struct opts *o)
{
    char err[HAMQ_CONFIG_ERR_MAX];

    if ((o->instance && config_set(&w->cfg, "broker", "instance", o->instance, "--instance", err,
                                   sizeof(err)) < 0) ||
        (o->port_offset && config_set(&w->cfg, "broker", "port_offset", o->port_offset,
                                      "--port-offset", err, sizeof(err)) < 0) ||
        (o->log_level && config_set(&w->cfg, "broker", "log_level", o->log_level, "--log-level",
                                    err, sizeof(err)) < 0)) {
        log_err("%s", err);
        return -EINVAL;
    }
    log_set_max_priority(log_priority_from_name(w->cfg.log_level));
    return 0;
}

static void on_term(void *ctx, int signo)
{
    struct worker *w = ctx;

    log_info("signal %d: stopping", signo);
    w->stopping = true;
    w->exit_code = HAMQ_EXIT_OK;
    evloop_stop(w->loop);
}

static int open_listeners(struct worker *w)
{
    const struct {
        int port;
        enum wnet_kind kind;
    } ports[] = {{w->cfg.port_all, WNET_SNIFF},
                 {w->cfg.port_stomp, WNET_STOMP},
                 {w->cfg.port_amqp, WNET_AMQP}};
    char err[256];

    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        if (ports[i].port == 0)
            continue;
        int port = ports[i].port + w->cfg.port_offset;
        int r = wnet_listen(w->net, w->cfg.bind, port, ports[i].kind, err, sizeof(err));
        if (r < 0) {
            log_err("worker %u: %s", w->index, err);
            return r;
        }
    }
    return 0;
}

/* systemctl status shows this line (sd_notify STATUS=); sent when it changes. */
static void on_status_timer(struct evloop *loop, void *ctx)
{
    static size_t last = (size_t)-1;
    struct worker *w = ctx;
    size_t n = wnet_conn_count(w->net);

    (void)loop;
    if (n == last)
        return;
    last = n;
    daemon_notify_status("serving: slot %u of instance %s, STOMP port %d, %zu client connection(s)",
                         w->index, w->cfg.instance, w->cfg.port_stomp + w->cfg.port_offset, n);
}

int main(int argc, char **argv)
{
    static struct worker w = {.bell_fd = -1, .core_bell_fd = -1};
    struct wnet_proto stomp, amqp;
    struct opts o = {0};
    char err[512], ident[32];
    int r;

    if (parse_args(argc, argv, &o) < 0)
        return HAMQ_EXIT_CONFIG;
    w.index = (uint32_t)o.index;
    snprintf(ident, sizeof(ident), "hamq-worker@%u", w.index);
    log_init(ident, LOG_TARGET_AUTO);
    if (daemon_load_config(&w.cfg, o.config) < 0 || apply_overrides(&w, &o) < 0)
        return HAMQ_EXIT_CONFIG;
    if (evloop_new(&w.loop) < 0 || wnet_new(w.loop, &w.net) < 0) {
        log_err("out of memory at start");
        return HAMQ_EXIT_INTERNAL;
    }
    r = wk_link_open(&w, err, sizeof(err));
    if (r < 0) {
        log_err("cannot attach to the core of instance '%s': %s", w.cfg.instance, err);
        return HAMQ_EXIT_PEER_GONE;
    }
    wk_stomp_init(&w, &stomp);
    wnet_set_proto(w.net, WNET_STOMP, &stomp);
    if (wk_amqp_init(&w, &amqp, err, sizeof(err)) < 0) {
        log_err("AMQP: %s", err);
        return HAMQ_EXIT_CONFIG;
    }
    wnet_set_proto(w.net, WNET_AMQP, &amqp);
    if (open_listeners(&w) < 0)
        return HAMQ_EXIT_CONFIG;
    if ((r = wk_link_hello(&w)) < 0) {
        log_err("cannot greet the core: %s", strerror(-r));
        return HAMQ_EXIT_PEER_GONE;
    }
    struct daemon_signals sig = {.on_term = on_term, .ctx = &w};
    if (daemon_watch_signals(w.loop, &sig) < 0 || daemon_watchdog(w.loop) < 0 ||
        (getenv("NOTIFY_SOCKET") &&
         evloop_add_timer(w.loop, 1000, 1000, on_status_timer, &w, NULL) < 0)) {
        log_err("cannot set up signals: %s", strerror(errno));
        return HAMQ_EXIT_INTERNAL;
    }
    char ports[128];
    int off = w.cfg.port_offset;
    snprintf(ports, sizeof(ports), "all protocols %d, STOMP %d, AMQP %d",
             w.cfg.port_all ? w.cfg.port_all + off : 0, w.cfg.port_stomp ? w.cfg.port_stomp + off : 0,
             w.cfg.port_amqp ? w.cfg.port_amqp + off : 0);
    log_info("worker %u serving on %s: %s (0 = off; instance %s, slot generation %u)", w.index,
             w.cfg.bind, ports, w.cfg.instance, w.gen);
    daemon_notify_ready("serving");
    r = evloop_run(w.loop);
    daemon_notify_stopping();
    if (r < 0) {
        log_err("event loop failed: %s", strerror(-r));
        w.exit_code = HAMQ_EXIT_INTERNAL;
    }
    wnet_free(w.net);
    wk_link_close(&w);
    wk_amqp_fini();
    evloop_free(w.loop);
    return w.exit_code;
}
