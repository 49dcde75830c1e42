/*
 * hamq-stomp-load — a STOMP load generator for hamq, ActiveMQ Classic and
 * RabbitMQ (any STOMP 1.2 broker). Options, the run and the report; the
 * connections are in stomp_load_conn.c, the measurements in stomp_load_stats.c.
 *
 * It prints human-readable figures and one machine-readable `RESULT k=v ...`
 * line (scripts/bench-brokers.sh reads it). Exit status: 0 when the run moved
 * messages with no error, 1 when errors were seen, 2 on bad usage, 3 when the
 * broker could not be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stomp_load.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: hamq-stomp-load [OPTION]...\n"
               "       hamq-stomp-load --raw-probe DIR [--raw-count N]\n"
               "STOMP load against one broker: P producers keep a window of W outstanding\n"
               "receipts each (W=1: synchronous), C consumers ack each message\n"
               "(client-individual). Prints msgs/s, MB/s, receipt latency p50/p99/p999 and\n"
               "the CPU time of the broker processes named with --pid/--pname.\n\n"
               "  -H, --host HOST        broker host (default 127.0.0.1)\n"
               "  -P, --port PORT        STOMP port (default 61613)\n"
               "  -D, --dest DEST        destination (default /queue/hamq.bench)\n"
               "  -p, --producers N      producer connections (default 1; 0 = consume only)\n"
               "  -c, --consumers N      consumer connections (default 0)\n"
               "  -w, --window W         outstanding receipts per producer (default 1000;\n"
               "                         0 = no receipts at all)\n"
               "      --prefetch N       consumer prefetch (default 1000)\n"
               "  -s, --size BYTES       message body size (default 1024)\n"
               "      --persistent       persistent:true (the default)\n"
               "      --non-persistent   no persistent header\n"
               "  -d, --duration SEC     produce for SEC seconds (consume-only: at most SEC)\n"
               "  -n, --count N          produce N messages in all (consume-only: stop after N)\n"
               "      --idle SEC         consumers stop after SEC without a message once the\n"
               "                         producers are done (default 2)\n"
               "      --grace SEC        wait at most SEC for CONNECTED and for the last\n"
               "                         receipts (default 15)\n"
               "      --login L --passcode S --vhost V   CONNECT credentials and host header\n"
               "                         (vhost default \"/\", RabbitMQ's default vhost)\n"
               "      --pid PID[,PID..]  broker processes whose CPU time to report\n"
               "      --pname NAME[,..]  the same, every process whose comm is NAME\n"
               "      --tree PID[,..]    the same, PID with its children and grandchildren\n"
               "      --cpu N            pin this load generator to CPU N\n"
               "      --label TEXT       label of the RESULT line\n"
               "      --raw-probe DIR    only measure 4 KiB O_DIRECT pwrite + fdatasync in DIR\n"
               "      --raw-count N      writes per raw measurement (default 1000)\n"
               "  -v, --verbose          more output\n"
               "  -h, --help             this text\n"
               "Without --duration and --count: --duration 5. With both, whichever ends first.\n");
}

struct cli {
    struct sl_opts o;
    struct sl_procs procs;
    const char *raw_dir;
    unsigned raw_count;
    const char *label;
    int cpu;
};

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "hamq-stomp-load: %s: '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int add_pids(struct cli *c, char *list, bool by_name, bool tree)
{
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (by_name) {
            int n = sl_procs_add_name(&c->procs, t);
            if (n <= 0)
                fprintf(stderr, "hamq-stomp-load: warning: no process named '%s'\n", t);
            continue;
        }
        double v;
        if (parse_num("--pid", t, 1, 4194304, &v) < 0)
            return -EINVAL;
        int r =
            tree ? sl_procs_add_tree(&c->procs, (pid_t)v) : sl_procs_add_pid(&c->procs, (pid_t)v);
        if (r < 0) {
            fprintf(stderr, "hamq-stomp-load: --%s %s: %s\n", tree ? "tree" : "pid", t,
                    strerror(-r));
            return r;
        }
    }
    return 0;
}

enum {
    O_PREFETCH = 256,
    O_PERS,
    O_NONPERS,
    O_IDLE,
    O_GRACE,
    O_LOGIN,
    O_PASS,
    O_VHOST,
    O_PID,
    O_PNAME,
    O_TREE,
    O_CPU,
    O_LABEL,
    O_RAW,
    O_RAWN
};

static const struct option longopts[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'P'},
    {"dest", required_argument, NULL, 'D'},
    {"producers", required_argument, NULL, 'p'},
    {"consumers", required_argument, NULL, 'c'},
    {"window", required_argument, NULL, 'w'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'd'},
    {"count", required_argument, NULL, 'n'},
    {"prefetch", required_argument, NULL, O_PREFETCH},
    {"persistent", no_argument, NULL, O_PERS},
    {"non-persistent", no_argument, NULL, O_NONPERS},
    {"idle", required_argument, NULL, O_IDLE},
    {"grace", required_argument, NULL, O_GRACE},
    {"login", required_argument, NULL, O_LOGIN},
    {"passcode", required_argument, NULL, O_PASS},
    {"vhost", required_argument, NULL, O_VHOST},
    {"pid", required_argument, NULL, O_PID},
    {"pname", required_argument, NULL, O_PNAME},
    {"cpu", required_argument, NULL, O_CPU},
    {"tree", required_argument, NULL, O_TREE},
    {"label", required_argument, NULL, O_LABEL},
    {"raw-probe", required_argument, NULL, O_RAW},
    {"raw-count", required_argument, NULL, O_RAWN},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option; 0, 1 for --help, or -EINVAL. */
static int parse_opt(struct cli *c, int ch, char *arg)
{
    struct sl_opts *o = &c->o;
    double v = 0;
    int r = 0;
    switch (ch) {
    case 'H':
        o->host = arg;
        break;
    case 'P':
        o->port = arg;
        break;
    case 'D':
        o->dest = arg;
        break;
    case 'p':
        r = parse_num("--producers", arg, 0, 1000, &v);
        o->producers = (unsigned)v;
        break;
    case 'c':
        r = parse_num("--consumers", arg, 0, 1000, &v);
        o->consumers = (unsigned)v;
        break;
    case 'w':
        r = parse_num("--window", arg, 0, 1e6, &v);
        o->window = (unsigned)v;
        break;
    case 's':
        r = parse_num("--size", arg, 0, 64 << 20, &v);
        o->size = (size_t)v;
        break;
    case 'd':
        r = parse_num("--duration", arg, 0.01, 86400, &v);
        o->duration = v;
        break;
    case 'n':
        r = parse_num("--count", arg, 1, 1e12, &v);
        o->count = (uint64_t)v;
        break;
    case O_PREFETCH:
        r = parse_num("--prefetch", arg, 1, 1e6, &v);
        o->prefetch = (unsigned)v;
        break;
    case O_PERS:
        o->persistent = true;
        break;
    case O_NONPERS:
        o->persistent = false;
        break;
    case O_IDLE:
        r = parse_num("--idle", arg, 0.01, 3600, &v);
        o->idle_s = v;
        break;
    case O_GRACE:
        r = parse_num("--grace", arg, 0.1, 3600, &v);
        o->grace_s = v;
        break;
    case O_LOGIN:
        o->login = arg;
        break;
    case O_PASS:
        o->passcode = arg;
        break;
    case O_VHOST:
        o->vhost = arg;
        break;
    case O_PID:
        r = add_pids(c, arg, false, false);
        break;
    case O_PNAME:
        r = add_pids(c, arg, true, false);
        break;
    case O_TREE:
        r = add_pids(c, arg, false, true);
        break;
    case O_CPU:
        r = parse_num("--cpu", arg, 0, 4095, &v);
        c->cpu = (int)v;
        break;
    case O_LABEL:
        c->label = arg;
        break;
    case O_RAW:
        c->raw_dir = arg;
        break;
    case O_RAWN:
        r = parse_num("--raw-count", arg, 10, 1e6, &v);
        c->raw_count = (unsigned)v;
        break;
    case 'v':
        o->verbose = true;
        break;
    case 'h':
        return 1;
    default:
        return -EINVAL;
    }
    return r;
}

static int parse_args(struct cli *c, int argc, char **argv)
{
    *c = (struct cli){.o = {.host = "127.0.0.1",
                            .port = "61613",
                            .dest = "/queue/hamq.bench",
                            .vhost = "/",
                            .producers = 1,
                            .window = 1000,
                            .prefetch = 1000,
                            .size = 1024,
                            .persistent = true,
                            .idle_s = 2,
                            .grace_s = 15},
                      .raw_count = 1000,
                      .label = "run",
                      .cpu = -1};
    int ch;
    while ((ch = getopt_long(argc, argv, "H:P:D:p:c:w:s:d:n:vh", longopts, NULL)) != -1) {
        int r = parse_opt(c, ch, optarg);
        if (r != 0)
            return r;
    }
    if (optind < argc) {
        fprintf(stderr, "hamq-stomp-load: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (c->raw_dir)
        return 0;
    if (c->o.producers + c->o.consumers == 0) {
        fprintf(stderr, "hamq-stomp-load: nothing to do (--producers 0 and --consumers 0)\n");
        return -EINVAL;
    }
    if (!c->o.duration && !c->o.count)
        c->o.duration = 5;
    return 0;
}

static int raw_probe(const struct cli *c)
{
    struct sl_hist *h = calloc(2, sizeof *h);
    if (!h)
        return 1;
    int r = sl_raw_probe(c->raw_dir, c->raw_count, false, &h[0]);
    if (r == 0)
        r = sl_raw_probe(c->raw_dir, c->raw_count, true, &h[1]);
    if (r < 0) {
        fprintf(stderr, "hamq-stomp-load: raw probe in %s: %s\n", c->raw_dir, strerror(-r));
        free(h);
        return 1;
    }
    static const char *const what[] = {"fresh file", "overwrite"};
    for (int i = 0; i < 2; i++)
        printf("raw 4 KiB O_DIRECT pwrite+fdatasync (%s, %u writes): p50 %.1f µs  p99 %.1f µs\n",
               what[i], c->raw_count, (double)sl_hist_quantile(&h[i], 0.5) / 1e3,
               (double)sl_hist_quantile(&h[i], 0.99) / 1e3);
    printf("RESULT label=%s raw_fresh_p50_us=%.1f raw_fresh_p99_us=%.1f raw_overwrite_p50_us=%.1f"
           " raw_overwrite_p99_us=%.1f\n",
           c->label, (double)sl_hist_quantile(&h[0], 0.5) / 1e3,
           (double)sl_hist_quantile(&h[0], 0.99) / 1e3, (double)sl_hist_quantile(&h[1], 0.5) / 1e3,
           (double)sl_hist_quantile(&h[1], 0.99) / 1e3);
    free(h);
    return 0;
}

static double us(const struct sl_hist *h, double q)
{
    return (double)sl_hist_quantile(h, q) / 1e3;
}

static void report_cpu(const struct cli *c, double wall, uint64_t msgs, double self,
                       double *broker_total)
{
    long hz = sysconf(_SC_CLK_TCK);
    double m = msgs ? (double)msgs : 1;
    *broker_total = 0;
    printf("CPU over %.2f s wall          user+sys s   %% of 1 CPU   µs/msg\n", wall);
    for (size_t i = 0; i < c->procs.n; i++) {
        const struct sl_proc *p = &c->procs.p[i];
        double s = (double)(p->ticks1 - p->ticks0) / (double)hz;
        *broker_total += s;
        printf("  %-16s %7d %10.2f %11.1f %9.2f%s\n", p->name, (int)p->pid, s, 100 * s / wall,
               1e6 * s / m, p->gone ? "  (exited during the run)" : "");
    }
    if (c->procs.n)
        printf("  %-24s %10.2f %11.1f %9.2f\n", "broker total", *broker_total,
               100 * *broker_total / wall, 1e6 * *broker_total / m);
    printf("  %-24s %10.2f %11.1f %9.2f\n", "hamq-stomp-load (self)", self, 100 * self / wall,
           1e6 * self / m);
}

static int run_load(struct cli *c)
{
    const struct sl_opts *o = &c->o;
    struct sl_result *res = calloc(1, sizeof *res);
    if (!res)
        return 1;
    double cpu0 = sl_self_cpu();
    sl_procs_sample(&c->procs, false);
    uint64_t t0 = sl_now_ns();
    int r = sl_run(o, res);
    double wall = (double)(sl_now_ns() - t0) / 1e9;
    sl_procs_sample(&c->procs, true);
    double self = sl_self_cpu() - cpu0;
    if (r < 0) {
        free(res);
        return r == -ECONNREFUSED || r == -EINVAL || r == -ETIMEDOUT || r == -EHOSTUNREACH ? 3 : 1;
    }
    uint64_t prod = o->window ? res->receipted : res->sent;
    double pr = res->produce_s > 0 ? (double)prod / res->produce_s : 0;
    double cr = res->consume_s > 0 ? (double)res->consumed / res->consume_s : 0;
    uint64_t msgs = o->producers ? prod : res->consumed;
    printf("hamq-stomp-load %s:%s %s: %u producers (window %u), %u consumers, %zu B, %s\n", o->host,
           o->port, o->dest, o->producers, o->window, o->consumers, o->size,
           o->persistent ? "persistent" : "non-persistent");
    if (o->producers)
        printf("produced %10llu msgs in %6.2f s: %9.0f msgs/s %8.1f MB/s\n",
               (unsigned long long)prod, res->produce_s, pr, pr * (double)o->size / 1e6);
    if (o->producers && o->window)
        printf("receipt latency µs: p50 %.1f  p99 %.1f  p999 %.1f  max %.1f\n", us(&res->lat, 0.5),
               us(&res->lat, 0.99), us(&res->lat, 0.999), (double)res->lat.max_ns / 1e3);
    if (o->consumers)
        printf("consumed %10llu msgs in %6.2f s: %9.0f msgs/s %8.1f MB/s (acked %llu)\n",
               (unsigned long long)res->consumed, res->consume_s, cr, cr * (double)o->size / 1e6,
               (unsigned long long)res->acked);
    double btotal;
    report_cpu(c, wall, msgs, self, &btotal);
    printf("errors %llu%s%s\n", (unsigned long long)res->errors, res->errors ? ": first: " : "",
           res->first_error);
    double m = msgs ? (double)msgs : 1;
    printf("RESULT label=%s produced=%llu consumed=%llu produce_mps=%.0f consume_mps=%.0f "
           "mb_s=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f broker_cpu_s=%.2f "
           "broker_cpu_us_per_msg=%.2f self_cpu_us_per_msg=%.2f errors=%llu\n",
           c->label, (unsigned long long)prod, (unsigned long long)res->consumed, pr, cr,
           (o->producers ? pr : cr) * (double)o->size / 1e6, us(&res->lat, 0.5),
           us(&res->lat, 0.99), us(&res->lat, 0.999), btotal, 1e6 * btotal / m, 1e6 * self / m,
           (unsigned long long)res->errors);
    int rc = res->errors || msgs == 0 ? 1 : 0;
    if (msgs == 0 && !res->errors)
        fprintf(stderr, "hamq-stomp-load: no message moved\n");
    free(res);
    return rc;
}

int main(int argc, char **argv)
{
    static struct cli c;
    int r = parse_args(&c, argc, argv);
    if (r == 1) {
        usage(stdout);
        return 0;
    }
    if (r < 0) {
        fprintf(stderr, "Try 'hamq-stomp-load --help'.\n");
        return 2;
    }
    if (c.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(c.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            fprintf(stderr, "hamq-stomp-load: warning: --cpu %d: %s\n", c.cpu, strerror(errno));
    }
    if (c.raw_dir)
        return raw_probe(&c);
    return run_load(&c);
}
