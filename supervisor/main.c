/*
 * hamq-supervisor — the HA agent of one node. Options, configuration, then
 * sup_node_run() (supervisor/sup_node.c) runs the node until SIGTERM.
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
#include "sup_node.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: hamq-supervisor [OPTIONS]\n"
            "\n"
            "The HA agent of one hamq node: heartbeats with its peers, decides with the\n"
            "store's locks which node is live, runs the broker (exec: hamq-journal as its\n"
            "child; systemd: hamq.target) and moves the virtual IP. Control it with\n"
            "hamq-supervisorctl.\n"
            "\n"
            "Options (each overrides the same key of the configuration file):\n"
            "  -c, --config FILE             configuration file (default %s)\n"
            "  -n, --node-id ID              [ha] node_id (required)\n"
            "  -r, --role primary|backup     [ha] role\n"
            "      --priority N              [ha] priority (0..255, highest wins)\n"
            "  -s, --store DIR               [broker] store (the shared store directory)\n"
            "      --listen ENDPOINT         [ha] listen, e.g. tcp://0.0.0.0:61620\n"
            "      --peers LIST              [ha] peers, comma-separated endpoints\n"
            "      --heartbeat-interval T    [ha] heartbeat_interval (e.g. 100ms)\n"
            "      --heartbeat-timeout T     [ha] heartbeat_timeout (e.g. 1s)\n"
            "      --allow-failback BOOL     [ha] allow_failback\n"
            "      --activation exec|systemd [ha] activation\n"
            "      --vip ADDR/PREFIX         [ha] vip\n"
            "      --vip-interface IF        [ha] vip_interface\n"
            "      --curve-secret-key-file F [ha] curve_secret_key_file\n"
            "      --curve-peer-public-key-file F  [ha] curve_peer_public_key_file\n"
            "      --port-offset K           [broker] port_offset of this node's broker\n"
            "      --instance NAME           [broker] instance (default: the node id)\n"
            "      --workers N               [broker] workers\n"
            "      --run-dir DIR             control/notify sockets (default /run/hamq,\n"
            "                                or $HAMQ_RUN_DIR)\n"
            "      --frozen-timeout MS       core heartbeat age that means frozen\n"
            "                                (default: the heartbeat timeout)\n"
            "      --log-level LEVEL         err, warning, notice, info, debug\n"
            "  -h, --help                    this text\n"
            "  -V, --version                 print the version\n"
            "\n"
            "Exit status: 0 stopped, 1 internal error, 2 bad configuration, 8 store\n"
            "missing or its file system has no working locks.\n",
            HAMQ_CONFIG_DEFAULT_PATH);
}

struct flag {
    const char *name, *section, *key;
};

static const struct flag flags[] = {
    {"node-id", "ha", "node_id"},
    {"role", "ha", "role"},
    {"priority", "ha", "priority"},
    {"store", "broker", "store"},
    {"listen", "ha", "listen"},
    {"peers", "ha", "peers"},
    {"heartbeat-interval", "ha", "heartbeat_interval"},
    {"heartbeat-timeout", "ha", "heartbeat_timeout"},
    {"allow-failback", "ha", "allow_failback"},
    {"activation", "ha", "activation"},
    {"vip", "ha", "vip"},
    {"vip-interface", "ha", "vip_interface"},
    {"curve-secret-key-file", "ha", "curve_secret_key_file"},
    {"curve-peer-public-key-file", "ha", "curve_peer_public_key_file"},
    {"port-offset", "broker", "port_offset"},
    {"instance", "broker", "instance"},
    {"workers", "broker", "workers"},
    {"log-level", "broker", "log_level"},
};
#define NFLAGS (sizeof flags / sizeof flags[0])
enum { OPT_FLAG0 = 1000, OPT_RUN_DIR = 2000, OPT_FROZEN };

struct args {
    const char *config, *run_dir;
    const char *val[NFLAGS];
    int frozen_ms;
};

static int parse(int argc, char **argv, struct args *a)
{
    static struct option lo[NFLAGS + 6];
    size_t k = 0;
    for (size_t i = 0; i < NFLAGS; i++)
        lo[k++] = (struct option){flags[i].name, required_argument, NULL, OPT_FLAG0 + (int)i};
    lo[k++] = (struct option){"config", required_argument, NULL, 'c'};
    lo[k++] = (struct option){"run-dir", required_argument, NULL, OPT_RUN_DIR};
    lo[k++] = (struct option){"frozen-timeout", required_argument, NULL, OPT_FROZEN};
    lo[k++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[k++] = (struct option){"version", no_argument, NULL, 'V'};
    lo[k] = (struct option){NULL, 0, NULL, 0};
    int c;
    while ((c = getopt_long(argc, argv, "c:n:r:s:hV", lo, NULL)) != -1) {
        if (c >= OPT_FLAG0 && c < OPT_FLAG0 + (int)NFLAGS) {
            a->val[c - OPT_FLAG0] = optarg;
            continue;
        }
        switch (c) {
        case 'c': a->config = optarg; break;
        case 'n': a->val[0] = optarg; break;
        case 'r': a->val[1] = optarg; break;
        case 's': a->val[3] = optarg; break;
        case OPT_RUN_DIR: a->run_dir = optarg; break;
        case OPT_FROZEN: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 10 || v > 600000) {
                fprintf(stderr, "hamq-supervisor: --frozen-timeout %s: expected 10..600000 ms\n",
                        optarg);
                return -EINVAL;
            }
            a->frozen_ms = (int)v;
            break;
        }
        case 'h': usage(stdout); exit(0);
        case 'V': printf("hamq-supervisor %s\n", PACKAGE_VERSION); exit(0);
        default:
            fprintf(stderr, "Try 'hamq-supervisor --help'.\n");
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hamq-supervisor: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

static int apply(struct hamq_config *cfg, const struct args *a)
{
    char err[HAMQ_CONFIG_ERR_MAX], abs[4096];
    for (size_t i = 0; i < NFLAGS; i++) {
        const char *v = a->val[i];
        if (!v)
            continue;
        /* a relative store path is relative to where the user typed it */
        if (strcmp(flags[i].key, "store") == 0 && v[0] != '/' && realpath(".", abs)) {
            size_t n = strlen(abs);
            snprintf(abs + n, sizeof abs - n, "/%s", v);
            v = abs;
        }
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", flags[i].name);
        if (config_set(cfg, flags[i].section, flags[i].key, v, flag, err, sizeof err) < 0) {
            log_err("%s", err);
            return -EINVAL;
        }
    }
    if (config_require(cfg, "ha", "node_id", err, sizeof err) < 0) {
        log_err("%s (or --node-id)", err);
        return -EINVAL;
    }
    /* Two nodes on one host need two shm segments: default the instance to the node.
     * Not in systemd mode: there hamq-journal.service reads the instance from the same
     * config file, and both must name the same segment. */
    if (!a->val[15] && strcmp(cfg->instance, "hamq") == 0 &&
        cfg->activation == CFG_ACTIVATION_EXEC)
        snprintf(cfg->instance, sizeof cfg->instance, "%s", cfg->node_id);
    log_set_max_priority(log_priority_from_name(cfg->log_level));
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    static struct hamq_config cfg;
    log_init("hamq-supervisor", LOG_TARGET_AUTO);
    if (parse(argc, argv, &a) < 0)
        return HAMQ_EXIT_CONFIG;
    if (daemon_load_config(&cfg, a.config) < 0 || apply(&cfg, &a) < 0)
        return HAMQ_EXIT_CONFIG;
    /* The cores we start keep their heap in transparent huge pages (glibc's
       malloc madvises them): a killed core holding a million messages takes
       ~35 ms instead of ~170 ms to free its memory, and writer.lock, which a
       backup needs, is released only after that (docs/DESIGN.md, failover).
       Children inherit it; an operator's own GLIBC_TUNABLES wins. */
    setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 0);
    struct sup_node_opts o = {
        .config_path = a.config,
        .run_dir = a.run_dir ? a.run_dir : getenv("HAMQ_RUN_DIR") ? getenv("HAMQ_RUN_DIR")
                                                                    : "/run/hamq",
        .frozen_timeout_ms = a.frozen_ms,
    };
    return sup_node_run(&cfg, &o);
}
