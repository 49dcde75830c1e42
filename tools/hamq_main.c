/*
 * hamq — the client command line: subcommand dispatch, flag parsing (the
 * Artemis CLI's names and defaults, `--opt value` and `--opt=value`) and the
 * --help text of every subcommand. Every flag value is checked here, with a
 * message naming the flag; the subcommands get a validated struct hq_opts.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hamq.h"

enum {
    O_BASE = 256,
    O_URL = O_BASE,
    O_USER,
    O_PASSWORD,
    O_DEST,
    O_COUNT,
    O_MSIZE,
    O_TSIZE,
    O_MESSAGE,
    O_PERSIST,
    O_NONPERSIST,
    O_THREADS,
    O_RTIMEOUT,
    O_BREAK,
    O_SLEEP,
    O_VERBOSE,
    O_TXT,
    O_RECONNECT,
    O_FILTER,
    O_QNAME,
    O_MAXCOL,
    O_DURATION,
    O_WARMUP,
    O_PENDING,
    O_LATENCY,
    O_RATE,
    O_HELP,
    O_SILENT,
    O_PROTOCOL,
    O_JSON,
    O_LOOP,
    O_INTERVAL,
    O_LOOPCOUNT,
    O_FIELD,
    O_OPERATION,
    O_VALUE,
    O_MAXROWS,
    O_SINGLELINE,
    O_MGMT,
    O_CLUSTERED,
    O_END,
};

/* Which subcommands take a flag: a flag of another subcommand is refused (exit 2). */
enum { C_PROD = 1, C_CONS = 2, C_BROWSE = 4, C_STAT = 8, C_PERF = 16, C_ALL = 31 };
#define C_MSG (C_PROD | C_CONS | C_BROWSE)

static const unsigned char opt_cmds[O_END - O_BASE] = {
    [O_URL - O_BASE] = C_ALL,
    [O_USER - O_BASE] = C_ALL,
    [O_PASSWORD - O_BASE] = C_ALL,
    [O_DEST - O_BASE] = C_MSG,
    [O_COUNT - O_BASE] = C_MSG | C_PERF,
    [O_MSIZE - O_BASE] = C_PROD | C_PERF,
    [O_TSIZE - O_BASE] = C_PROD,
    [O_MESSAGE - O_BASE] = C_PROD,
    [O_PERSIST - O_BASE] = C_PROD | C_PERF,
    [O_NONPERSIST - O_BASE] = C_PROD | C_PERF,
    [O_THREADS - O_BASE] = C_MSG | C_PERF,
    [O_RTIMEOUT - O_BASE] = C_CONS | C_BROWSE,
    [O_BREAK - O_BASE] = C_CONS,
    [O_SLEEP - O_BASE] = C_MSG | C_STAT,
    [O_VERBOSE - O_BASE] = C_ALL,
    [O_TXT - O_BASE] = C_PROD | C_CONS | C_PERF,
    [O_RECONNECT - O_BASE] = C_ALL,
    [O_FILTER - O_BASE] = C_CONS | C_BROWSE,
    [O_QNAME - O_BASE] = C_STAT,
    [O_MAXCOL - O_BASE] = C_STAT,
    [O_DURATION - O_BASE] = C_PERF,
    [O_WARMUP - O_BASE] = C_PERF,
    [O_PENDING - O_BASE] = C_PERF,
    [O_LATENCY - O_BASE] = C_PERF,
    [O_RATE - O_BASE] = C_PERF,
    [O_HELP - O_BASE] = C_ALL,
    [O_SILENT - O_BASE] = C_ALL,
    [O_PROTOCOL - O_BASE] = C_ALL,
    [O_JSON - O_BASE] = C_STAT,
    [O_LOOP - O_BASE] = C_STAT,
    [O_INTERVAL - O_BASE] = C_STAT,
    [O_LOOPCOUNT - O_BASE] = C_STAT,
    [O_FIELD - O_BASE] = C_STAT,
    [O_OPERATION - O_BASE] = C_STAT,
    [O_VALUE - O_BASE] = C_STAT,
    [O_MAXROWS - O_BASE] = C_STAT,
    [O_SINGLELINE - O_BASE] = C_STAT,
    [O_MGMT - O_BASE] = C_STAT,
    [O_CLUSTERED - O_BASE] = C_STAT,
};

static const struct option longopts[] = {
    {"url", required_argument, NULL, O_URL},
    {"user", required_argument, NULL, O_USER},
    {"password", required_argument, NULL, O_PASSWORD},
    {"destination", required_argument, NULL, O_DEST},
    {"message-count", required_argument, NULL, O_COUNT},
    {"message-size", required_argument, NULL, O_MSIZE},
    {"text-size", required_argument, NULL, O_TSIZE},
    {"message", required_argument, NULL, O_MESSAGE},
    {"persistent", no_argument, NULL, O_PERSIST},
    {"non-persistent", no_argument, NULL, O_NONPERSIST},
    {"threads", required_argument, NULL, O_THREADS},
    {"receive-timeout", required_argument, NULL, O_RTIMEOUT},
    {"break-on-null", no_argument, NULL, O_BREAK},
    {"sleep", required_argument, NULL, O_SLEEP},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {"txt-size", required_argument, NULL, O_TXT},
    {"commit-interval", required_argument, NULL, O_TXT},
    {"reconnect-timeout", required_argument, NULL, O_RECONNECT},
    {"filter", required_argument, NULL, O_FILTER},
    {"queueName", required_argument, NULL, O_QNAME},
    {"maxColumnSize", required_argument, NULL, O_MAXCOL},
    {"duration", required_argument, NULL, O_DURATION},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"max-pending", required_argument, NULL, O_PENDING},
    {"show-latency", no_argument, NULL, O_LATENCY},
    {"rate", required_argument, NULL, O_RATE},
    {"silent", no_argument, NULL, O_SILENT},
    {"protocol", required_argument, NULL, O_PROTOCOL},
    {"json", no_argument, NULL, O_JSON},
    {"loop", no_argument, NULL, O_LOOP},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"loop-sleep", required_argument, NULL, O_INTERVAL},
    {"count", required_argument, NULL, O_LOOPCOUNT},
    {"field", required_argument, NULL, O_FIELD},
    {"operation", required_argument, NULL, O_OPERATION},
    {"value", required_argument, NULL, O_VALUE},
    {"maxRows", required_argument, NULL, O_MAXROWS},
    {"single-line-header", no_argument, NULL, O_SINGLELINE},
    {"include-management", no_argument, NULL, O_MGMT},
    {"clustered", no_argument, NULL, O_CLUSTERED},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static const char common_help[] =
    "Connection options:\n"
    "  --url URL              tcp://host:port (default tcp://localhost:61616), or a failover\n"
    "                         list (tcp://h1:61616,tcp://h2:61617) / failover:(...): on loss\n"
    "                         the next URL is tried until --reconnect-timeout\n"
    "  --user U --password P  SASL PLAIN credentials (default: ANONYMOUS)\n"
    "  --reconnect-timeout MS how long a failover list keeps trying (default 30000)\n"
    "  --protocol amqp        accepted for Artemis compatibility; hamq always speaks AMQP\n"
    "  --help                 this text\n";

static const char dest_help[] =
    "  --destination D        queue://NAME, topic://NAME or NAME (a queue); default queue://TEST\n"
    "  --message-count N      messages per thread (default 1000)\n"
    "  --threads T            T links on one connection, each counting on its own (default 1)\n"
    "  --sleep MS             pause after each message (default 0)\n"
    "  --verbose              one line per message\n";

/* Prints the help of cmd (or the overview); false if there is no such command. */
static bool help(const char *cmd)
{
    if (!cmd) {
        printf("Usage: hamq COMMAND [OPTIONS]   (flags as in the Artemis CLI)\n\n"
               "Commands:\n"
               "  producer       send messages\n"
               "  consumer       receive (and acknowledge) messages\n"
               "  browser        look at messages without consuming them\n"
               "  queue stat     queues with their counters\n"
               "  perf producer|consumer|client [DESTINATION]   throughput and latency\n\n"
               "hamq COMMAND --help describes each. Exit codes: 0 done, 1 fewer messages than\n"
               "asked or a message refused, 2 bad flags, 3 no broker reachable.\n");
        return true;
    }
    if (strcmp(cmd, "producer") == 0)
        printf("Usage: hamq producer [OPTIONS]\nSends messages; each counts once the broker "
               "accepted it (persistent: on disk).\n%s%s"
               "  --persistent           durable messages (the default)\n"
               "  --non-persistent       non-durable messages\n"
               "  --message-size N       a bytes message of N '.' bytes\n"
               "  --text-size N          a text message of N characters\n"
               "  --message TEXT         this text as the body (default: 'test message: <i>')\n"
               "  --commit-interval N    send in transactions of N messages (each counts\n"
               "                         once its transaction committed); --txt-size N\n"
               "                         is the older name\n"
               "Output: Produced: N messages (accepted ones), elapsed time.\n",
               dest_help, common_help);
    else if (strcmp(cmd, "consumer") == 0)
        printf("Usage: hamq consumer [OPTIONS]\nReceives and accepts messages.\n%s%s"
               "  --receive-timeout MS   stop after MS without a message (default 3000;\n"
               "                         -1 = wait forever)\n"
               "  --break-on-null        accepted; hamq always stops after the timeout\n"
               "  --filter SELECTOR      a JMS selector\n"
               "Exit code 1 when fewer than --message-count messages arrived (per thread).\n",
               dest_help, common_help);
    else if (strcmp(cmd, "browser") == 0)
        printf("Usage: hamq browser [OPTIONS]\nShows messages of a queue without consuming "
               "them; ends when the broker\nhas shown them all, at --message-count, or after "
               "--receive-timeout of silence.\n%s%s"
               "  --receive-timeout MS   (default 3000)\n"
               "  --filter SELECTOR      only messages matching this JMS selector\n",
               dest_help, common_help);
    else if (strcmp(cmd, "queue") == 0)
        printf("Usage: hamq queue stat [OPTIONS]\nPrints every queue: name, address, "
               "consumers, messages, added,\ndelivering, acknowledged, routing type.\n"
               "  --queueName TEXT       only queues whose name contains TEXT\n"
               "  --field F --operation O --value V   only queues where F O V holds:\n"
               "                         F = NAME ADDRESS CONSUMER_COUNT MESSAGE_COUNT\n"
               "                         MESSAGES_ADDED DELIVERING_COUNT MESSAGES_ACKED\n"
               "                         SCHEDULED_COUNT ROUTING_TYPE (or the JSON name),\n"
               "                         O = CONTAINS NOT_CONTAINS EQUALS GREATER_THAN LESS_THAN\n"
               "                         (not with --queueName)\n"
               "  --maxRows N            at most N rows (default 50; a WARNING tells the rest)\n"
               "  --maxColumnSize N      truncate names longer than N with '...' (default 25;\n"
               "                         -1 = never)\n"
               "  --json                 one JSON document per iteration, on one line:\n"
               "                         {\"data\":[{...one object per queue...}],\"count\":N}\n"
               "                         with the fields name, address, routingType, durable,\n"
               "                         consumerCount, messageCount, messagesAdded,\n"
               "                         deliveringCount, messagesAcked, scheduledCount,\n"
               "                         messagesKilled (dead-lettered), messagesExpired;\n"
               "                         numbers are JSON numbers, null = the broker does not\n"
               "                         report that counter\n"
               "  --loop                 repeat until interrupted (Ctrl-C) or --count\n"
               "  --interval MS          pause between iterations (default 60000; implies\n"
               "                         --loop; Artemis' --sleep and --loop-sleep too)\n"
               "  --count N              with --loop: stop after N iterations\n"
               "  --single-line-header, --include-management, --clustered  accepted\n"
               "%s",
               common_help);
    else if (strcmp(cmd, "perf") == 0)
        printf("Usage: hamq perf producer|consumer|client [OPTIONS] [DESTINATION]\n"
               "Throughput and latency; DESTINATION is queue://NAME (default queue://TEST).\n"
               "  --duration S           run S seconds after the warm-up (default: until\n"
               "                         --message-count or Ctrl-C)\n"
               "  --warmup S             seconds not counted in the latencies (default 0)\n"
               "  --message-count N      stop after N messages in total, split over the\n"
               "                         threads (default 0 = unlimited)\n"
               "  --threads T            T threads, each with its own connection, producer\n"
               "                         and/or consumer (default 1); figures are totals,\n"
               "                         percentiles over every thread's samples\n"
               "  --message-size N       bytes per message (default 1024)\n"
               "  --persistent           durable messages (default: non-persistent)\n"
               "  --max-pending N        unconfirmed sends in flight per producer (default 1;\n"
               "                         0 = unbounded)\n"
               "  --rate R               at most R msg/s in total\n"
               "  --show-latency         every second also the last second's latency percentiles\n"
               "                         (not on a terminal; the summary always has them)\n"
               "Every second: sent/completed/received msg/s (on a terminal: one progress line\n"
               "rewritten in place), then --- SUMMARY with totals and latency percentiles.\n"
               "%s",
               common_help);
    else {
        fprintf(stderr, "hamq: unknown command '%s'; try hamq --help\n", cmd);
        return false;
    }
    return true;
}

static int num(const char *flag, const char *v, long min, long max, long *out)
{
    char *end;

    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < min || x > max) {
        fprintf(stderr, "hamq: %s expects a number from %ld to %ld, not '%s'\n", flag, min, max, v);
        return -EINVAL;
    }
    *out = x;
    return 0;
}

static int set_destination(struct hq_opts *o, const char *d)
{
    const char *a = d;

    o->topic = false;
    if (strncmp(d, "queue://", 8) == 0) {
        a = d + 8;
    } else if (strncmp(d, "topic://", 8) == 0) {
        a = d + 8;
        o->topic = true;
    } else if (strstr(d, "://")) {
        fprintf(stderr, "hamq: --destination '%s': use queue://NAME or topic://NAME\n", d);
        return -EINVAL;
    }
    if (!*a || strlen(a) >= sizeof(o->address)) {
        fprintf(stderr, "hamq: --destination '%s': empty or too long\n", d);
        return -EINVAL;
    }
    o->destination = d;
    snprintf(o->address, sizeof(o->address), "%s", a);
    return 0;
}

static void defaults(struct hq_opts *o, bool perf)
{
    memset(o, 0, sizeof(*o));
    o->url = "tcp://localhost:61616";
    o->destination = "queue://TEST";
    o->message_count = perf ? 0 : 1000;
    o->message_size = perf ? 1024 : 0;
    o->persistent = !perf;
    o->threads = 1;
    o->receive_timeout = 3000;
    o->reconnect_timeout = 30000;
    o->max_column_size = 25;
    o->max_pending = 1;
    o->max_rows = 50;
    o->interval_ms = 60000;
}

static int apply(struct hq_opts *o, int c, const char *v, unsigned cmd)
{
    long x = 0;
    int r = 0;

    switch (c) {
    case O_URL:
        o->url = v;
        break;
    case O_USER:
        o->user = v;
        break;
    case O_PASSWORD:
        o->password = v;
        break;
    case O_DEST:
        r = set_destination(o, v);
        break;
    case O_COUNT:
        r = num("--message-count", v, 0, LONG_MAX / 2, &o->message_count);
        break;
    case O_MSIZE:
        r = num("--message-size", v, 0, 100L << 20, &o->message_size);
        break;
    case O_TSIZE:
        r = num("--text-size", v, 0, 100L << 20, &o->text_size);
        break;
    case O_MESSAGE:
        o->message = v;
        break;
    case O_PERSIST:
        o->persistent = true;
        break;
    case O_NONPERSIST:
        o->persistent = false;
        break;
    case O_THREADS:
        r = num("--threads", v, 1, HQ_MAX_THREADS, &x);
        o->threads = (int)x;
        break;
    case O_RTIMEOUT:
        r = num("--receive-timeout", v, -1, LONG_MAX / 2, &o->receive_timeout);
        break;
    case O_BREAK:
        o->break_on_null = true;
        break;
    case O_SLEEP:
        if (cmd == C_STAT) { /* Artemis: queue stat --sleep MS = loop interval, implies --loop */
            r = num("--sleep", v, 1, 86400000, &o->interval_ms);
            o->loop = true;
        } else {
            r = num("--sleep", v, 0, 3600000, &o->sleep_ms);
        }
        break;
    case O_VERBOSE:
        o->verbose = true;
        break;
    case O_TXT:
        r = num("--commit-interval", v, 0, LONG_MAX / 2, &x);
        if (r == 0 && cmd == C_PROD)
            o->commit_interval = x;
        else if (r == 0 && x > 0)
            fprintf(stderr, "hamq: --txt-size/--commit-interval: only the producer sends in "
                            "transactions; every message is acknowledged on its own\n");
        break;
    case O_RECONNECT:
        r = num("--reconnect-timeout", v, 0, LONG_MAX / 2, &o->reconnect_timeout);
        break;
    case O_FILTER:
        o->filter = v;
        break;
    case O_QNAME:
        o->queue_name = v;
        break;
    case O_MAXCOL:
        r = num("--maxColumnSize", v, -1, 4096, &x);
        o->max_column_size = (int)x;
        break;
    case O_DURATION:
        r = num("--duration", v, 0, 86400 * 365, &o->duration_s);
        break;
    case O_WARMUP:
        r = num("--warmup", v, 0, 86400, &o->warmup_s);
        break;
    case O_PENDING:
        r = num("--max-pending", v, 0, 10000, &x);
        o->max_pending = (int)x;
        break;
    case O_LATENCY:
        o->show_latency = true;
        break;
    case O_RATE:
        r = num("--rate", v, 0, LONG_MAX / 2, &o->rate);
        break;
    case O_SILENT:
        break;
    case O_PROTOCOL:
        if (strcasecmp(v, "amqp") != 0 && strcasecmp(v, "core") != 0) {
            fprintf(stderr, "hamq: --protocol '%s': hamq speaks AMQP only\n", v);
            r = -EINVAL;
        }
        break;
    case O_JSON:
        o->json = true;
        break;
    case O_LOOP:
        o->loop = true;
        break;
    case O_INTERVAL:
        r = num("--interval", v, 1, 86400000, &o->interval_ms);
        o->loop = true;
        break;
    case O_LOOPCOUNT:
        r = num("--count", v, 1, LONG_MAX / 2, &o->loop_count);
        break;
    case O_FIELD:
        o->field = v;
        break;
    case O_OPERATION:
        o->operation = v;
        break;
    case O_VALUE:
        o->value = v;
        break;
    case O_MAXROWS:
        r = num("--maxRows", v, 1, 1000000, &x);
        o->max_rows = (int)x;
        break;
    case O_SINGLELINE: /* hamq's table always has a one-line header */
    case O_MGMT:       /* hamq has no management queues to hide or show */
        break;
    case O_CLUSTERED:
        fprintf(stderr, "hamq: --clustered: a hamq broker has no cluster topology; showing this "
                        "broker's queues\n");
        break;
    default:
        r = -EINVAL;
        break;
    }
    return r;
}

static unsigned cmd_bit(const char *cmd)
{
    return strcmp(cmd, "producer") == 0   ? C_PROD
           : strcmp(cmd, "consumer") == 0 ? C_CONS
           : strcmp(cmd, "browser") == 0  ? C_BROWSE
           : strcmp(cmd, "queue") == 0    ? C_STAT
           : strcmp(cmd, "perf") == 0     ? C_PERF
                                          : 0;
}

int main(int argc, char **argv)
{
    struct hq_opts o;
    const char *cmd = argc > 1 ? argv[1] : NULL, *sub = NULL;
    int first = 2;
    char err[256];

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        bool known = help(cmd && argc > 2 ? argv[2] : NULL);
        if (!cmd)
            fprintf(stderr, "hamq: a command is needed\n");
        return cmd && known ? HQ_EXIT_OK : HQ_EXIT_USAGE;
    }
    if (strcmp(cmd, "queue") == 0 || strcmp(cmd, "perf") == 0) {
        sub = argc > 2 ? argv[2] : NULL;
        if (!sub || strcmp(sub, "--help") == 0) {
            help(cmd);
            if (!sub)
                fprintf(stderr, "hamq %s: a subcommand is needed (%s)\n", cmd,
                        strcmp(cmd, "queue") == 0 ? "stat" : "producer|consumer|client");
            return sub ? HQ_EXIT_OK : HQ_EXIT_USAGE;
        }
        first = 3;
        bool ok = strcmp(cmd, "queue") == 0
                      ? strcmp(sub, "stat") == 0
                      : strcmp(sub, "producer") == 0 || strcmp(sub, "consumer") == 0 ||
                            strcmp(sub, "client") == 0;
        if (!ok) {
            fprintf(stderr, "hamq: unknown command '%s %s'; try hamq %s --help\n", cmd, sub, cmd);
            return HQ_EXIT_USAGE;
        }
    }
    unsigned bit = cmd_bit(cmd);
    if (!bit) {
        fprintf(stderr, "hamq: unknown command '%s'; try hamq --help\n", cmd);
        return HQ_EXIT_USAGE;
    }
    defaults(&o, strcmp(cmd, "perf") == 0);
    optind = first;
    opterr = 1;
    for (;;) {
        int idx = 0;
        int c = getopt_long(argc, argv, "", longopts, &idx);
        if (c == -1)
            break;
        if (c == O_HELP) {
            help(cmd);
            return HQ_EXIT_OK;
        }
        if (c >= O_BASE && c < O_END && !(opt_cmds[c - O_BASE] & bit)) {
            fprintf(stderr, "hamq %s%s%s: option '--%s' does not apply to this command\n", cmd,
                    sub ? " " : "", sub ? sub : "", longopts[idx].name);
            c = '?';
        }
        if (c == '?' || apply(&o, c, optarg, bit) < 0) {
            fprintf(stderr, "see: hamq %s%s%s --help\n", cmd, sub ? " " : "", sub ? sub : "");
            return HQ_EXIT_USAGE;
        }
    }
    if (strcmp(cmd, "perf") == 0 && optind < argc && set_destination(&o, argv[optind++]) < 0)
        return HQ_EXIT_USAGE;
    if (optind < argc) {
        fprintf(stderr, "hamq %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return HQ_EXIT_USAGE;
    }
    if (!o.address[0] && set_destination(&o, o.destination) < 0)
        return HQ_EXIT_USAGE;
    if (bit == C_STAT && hq_stat_check(&o, err, sizeof(err)) < 0) {
        fprintf(stderr, "hamq queue stat: %s\n", err);
        return HQ_EXIT_USAGE;
    }
    if (hq_parse_url(o.url, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "hamq: --url: %s\n", err);
        return HQ_EXIT_USAGE;
    }
    if (strcmp(cmd, "producer") == 0)
        return hq_producer(&o);
    if (strcmp(cmd, "consumer") == 0)
        return hq_consumer(&o);
    if (strcmp(cmd, "browser") == 0)
        return hq_browser(&o);
    if (bit == C_STAT)
        return hq_queue_stat(&o);
    return hq_perf(&o, sub);
}
