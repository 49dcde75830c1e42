/*
 * hamq-supervisorctl — talks to the hamq-supervisor(s) of this host through
 * their control sockets (<run dir>/supervisor-<node>.sock, SO_PEERCRED: root
 * or the hamq group). Several local nodes (the quickstart runs two): status
 * shows every one, --node ID selects one; failover/failback without --node go
 * to the node where they make sense (the live one / the primary).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamq/exitcodes.h"
#include "sup_ctl_proto.h"
#include "sup_hb.h"
#include "sup_node.h"

#define MAX_NODES 32
#define CTL_TIMEOUT_MS 40000

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: hamq-supervisorctl [--node ID] [--run-dir DIR] COMMAND\n"
            "\n"
            "Commands:\n"
            "  status [--json]    node, role (live/backup/starting/fenced/paused), epoch,\n"
            "                     core health, durable LSN, peers, VIP, pids, ports\n"
            "  failover           planned handover to a backup, zero loss (on either node)\n"
            "  failback           the primary takes over again from the current live\n"
            "  pause | resume     stop/start taking over on this node\n"
            "  keygen DIR NAME    write a CURVE key pair DIR/NAME.key (secret) + NAME.pub\n"
            "\n"
            "Options:\n"
            "  -n, --node ID      the local node to talk to (default: every / the right one)\n"
            "      --run-dir DIR  where the supervisors' sockets are (default /run/hamq,\n"
            "                     or $HAMQ_RUN_DIR)\n"
            "  -j, --json         status as JSON (stable keys, see supervisor/README.md)\n"
            "Exit status: 0 done, 1 the supervisor refused or failed, 2 usage,\n"
            "3 no supervisor running.\n");
}

struct nodes {
    char id[MAX_NODES][SUP_HB_NODE_ID_MAX];
    int n;
};

static int list_nodes(const char *run_dir, struct nodes *out)
{
    out->n = 0;
    DIR *d = opendir(run_dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) && out->n < MAX_NODES) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "supervisor-", 11) != 0 || l < 17 ||
            strcmp(e->d_name + l - 5, ".sock") != 0 || l - 16 >= SUP_HB_NODE_ID_MAX)
            continue;
        memcpy(out->id[out->n], e->d_name + 11, l - 16);
        out->id[out->n][l - 16] = 0;
        out->n++;
    }
    closedir(d);
    return 0;
}

static int request(const char *run_dir, const char *node, const char *line, char *reply,
                   size_t len, bool quiet)
{
    char path[1200], err[512];
    sup_node_ctl_path(path, sizeof path, run_dir, node);
    int r = sup_ctl_request(path, line, CTL_TIMEOUT_MS, reply, len, err, sizeof err);
    if (r < 0 && !quiet)
        fprintf(stderr, "hamq-supervisorctl: %s: %s\n", node, err);
    return r;
}

static bool is_number(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

/* Flat keys as they come; peer.<id>.<k> grouped into "peers": {id: {k: v}}. */
static void print_json(const char *reply)
{
    char buf[SUP_CTL_REPLY_MAX];
    snprintf(buf, sizeof buf, "%s", reply);
    printf("{");
    bool first = true;
    char *save, *line;
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq || strncmp(line, "peer.", 5) == 0)
            continue;
        *eq = 0;
        printf("%s", first ? "" : ",");
        first = false;
        json_str(line);
        putchar(':');
        if (is_number(eq + 1))
            printf("%s", eq + 1);
        else
            json_str(eq + 1);
    }
    printf("%s\"peers\":{", first ? "" : ",");
    snprintf(buf, sizeof buf, "%s", reply);
    char cur[SUP_HB_NODE_ID_MAX] = "";
    bool firstpeer = true;
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "peer.", 5) != 0)
            continue;
        char *eq = strchr(line, '=');
        char *dot = eq ? memrchr(line, '.', (size_t)(eq - line)) : NULL;
        if (!eq || !dot || dot < line + 5)
            continue;
        *eq = 0;
        *dot = 0;
        const char *id = line + 5;
        if (strcmp(id, cur) != 0) {
            printf("%s", firstpeer ? "" : "},");
            json_str(id);
            printf(":{");
            snprintf(cur, sizeof cur, "%s", id);
            firstpeer = false;
        } else {
            putchar(',');
        }
        json_str(dot + 1);
        putchar(':');
        if (is_number(eq + 1))
            printf("%s", eq + 1);
        else
            json_str(eq + 1);
    }
    printf("%s}}", firstpeer ? "" : "}");
}

static const char *kv(const char *reply, const char *key, char *buf, size_t len)
{
    if (sup_ctl_kv_get(reply, key, buf, len) < 0)
        snprintf(buf, len, "-");
    return buf;
}

static void print_human(const char *reply)
{
    char a[256], b[256], c[256], d[256], e[256];
    printf("node %s: %s (epoch %s, prefers %s, priority %s)%s\n", kv(reply, "node", a, sizeof a),
           kv(reply, "role", b, sizeof b), kv(reply, "epoch", c, sizeof c),
           kv(reply, "preferred_role", d, sizeof d), kv(reply, "priority", e, sizeof e),
           sup_ctl_kv_get(reply, "serving", a, sizeof a) == 0 && strcmp(a, "yes") == 0
               ? ", serving"
               : "");
    printf("  store       %s (durable LSN %s)\n", kv(reply, "store", a, sizeof a),
           kv(reply, "durable_lsn", b, sizeof b));
    printf("  core        pid %s (%s, %s), health %s, heartbeat age %s ms\n",
           kv(reply, "pid.core", a, sizeof a), kv(reply, "core_kind", b, sizeof b),
           kv(reply, "activation", e, sizeof e), kv(reply, "core_health", c, sizeof c),
           kv(reply, "core_heartbeat_age_ms", d, sizeof d));
    printf("  supervisor  pid %s", kv(reply, "pid.supervisor", a, sizeof a));
    for (int i = 0; i < 64; i++) {
        char k[32];
        snprintf(k, sizeof k, "pid.worker.%d", i);
        if (sup_ctl_kv_get(reply, k, b, sizeof b) == 0)
            printf(", worker %d pid %s", i, b);
    }
    printf("\n");
    printf("  ports       all %s, stomp %s, amqp %s\n", kv(reply, "port.all", a, sizeof a),
           kv(reply, "port.stomp", b, sizeof b), kv(reply, "port.amqp", c, sizeof c));
    kv(reply, "vip", a, sizeof a);
    printf("  vip         %s%s\n", a[0] ? a : "none",
           a[0] && strcmp(kv(reply, "vip_owned", b, sizeof b), "yes") == 0 ? " (held here)" : "");
    if (sup_ctl_kv_get(reply, "waiting_for", a, sizeof a) == 0)
        printf("  waiting for %s\n", a);
    if (sup_ctl_kv_get(reply, "paused_why", a, sizeof a) == 0)
        printf("  paused      %s\n", a);
    char buf[SUP_CTL_REPLY_MAX], *save, *line;
    snprintf(buf, sizeof buf, "%s", reply);
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        char *eq = strchr(line, '=');
        if (strncmp(line, "peer.", 5) != 0 || !eq || l < 12)
            continue;
        *eq = 0;
        char *dot = strrchr(line, '.');
        if (!dot || strcmp(dot, ".state") != 0)
            continue;
        *dot = 0;
        const char *id = line + 5;
        char k[SUP_HB_NODE_ID_MAX + 32];
        snprintf(k, sizeof k, "peer.%s.role", id);
        kv(reply, k, a, sizeof a);
        snprintf(k, sizeof k, "peer.%s.epoch", id);
        kv(reply, k, b, sizeof b);
        snprintf(k, sizeof k, "peer.%s.last_seen_ms", id);
        kv(reply, k, c, sizeof c);
        printf("  peer        %s: %s, %s, epoch %s, last heartbeat %s ms ago\n", id, eq + 1, a,
               b, c);
    }
}

static int keygen(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "Usage: hamq-supervisorctl keygen DIR NAME\n");
        return HAMQ_EXIT_CONFIG;
    }
    char err[512];
    if (sup_keygen(argv[1], argv[2], err, sizeof err) < 0) {
        fprintf(stderr, "hamq-supervisorctl: keygen: %s\n", err);
        return 1;
    }
    printf("wrote %s/%s.key (secret, keep it on this node) and %s/%s.pub\n", argv[1], argv[2],
           argv[1], argv[2]);
    return 0;
}

/* The node a command without --node goes to: the only one, or the one where it makes sense. */
static const char *pick(const char *run_dir, const struct nodes *ns, const char *cmd)
{
    if (ns->n == 1)
        return ns->id[0];
    for (int i = 0; i < ns->n; i++) {
        char reply[SUP_CTL_REPLY_MAX], role[32] = "", pref[32] = "";
        if (request(run_dir, ns->id[i], "status", reply, sizeof reply, true) < 0)
            continue;
        sup_ctl_kv_get(reply, "role", role, sizeof role);
        sup_ctl_kv_get(reply, "preferred_role", pref, sizeof pref);
        if (strcmp(cmd, "failover") == 0 && strcmp(role, "live") == 0)
            return ns->id[i];
        if (strcmp(cmd, "failback") == 0 && strcmp(pref, "primary") == 0 &&
            strcmp(role, "live") != 0)
            return ns->id[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"node", required_argument, NULL, 'n'}, {"run-dir", required_argument, NULL, 'R'},
        {"json", no_argument, NULL, 'j'},       {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},    {NULL, 0, NULL, 0},
    };
    const char *node = NULL, *run_dir = getenv("HAMQ_RUN_DIR");
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "+n:jhV", lo, NULL)) != -1) {
        switch (c) {
        case 'n': node = optarg; break;
        case 'R': run_dir = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("hamq-supervisorctl %s\n", PACKAGE_VERSION); return 0;
        default: usage(stderr); return HAMQ_EXIT_CONFIG;
        }
    }
    if (!run_dir)
        run_dir = "/run/hamq";
    if (optind >= argc) {
        usage(stderr);
        return HAMQ_EXIT_CONFIG;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "keygen") == 0)
        return keygen(argc - optind, argv + optind);
    for (int i = optind + 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "hamq-supervisorctl: unexpected argument '%s'\n", argv[i]);
            return HAMQ_EXIT_CONFIG;
        }
    static const char *const known[] = {"status", "failover", "failback", "pause", "resume", NULL};
    bool ok = false;
    for (int i = 0; known[i]; i++)
        ok |= strcmp(cmd, known[i]) == 0;
    if (!ok) {
        fprintf(stderr, "hamq-supervisorctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return HAMQ_EXIT_CONFIG;
    }
    struct nodes ns;
    if (node) {
        ns.n = 1;
        snprintf(ns.id[0], sizeof ns.id[0], "%s", node);
    } else if (list_nodes(run_dir, &ns) < 0 || ns.n == 0) {
        fprintf(stderr,
                "hamq-supervisorctl: no hamq-supervisor control socket in %s: is "
                "hamq-supervisor running? (--run-dir or $HAMQ_RUN_DIR if it uses another "
                "directory)\n",
                run_dir);
        return 3;
    }
    char reply[SUP_CTL_REPLY_MAX];
    if (strcmp(cmd, "status") == 0) {
        int rc = 0;
        if (json)
            printf("{\"nodes\":[");
        for (int i = 0; i < ns.n; i++) {
            int r = request(run_dir, ns.id[i], "status", reply, sizeof reply, false);
            if (r < 0) {
                rc = r == -ENOENT || r == -ECONNREFUSED ? 3 : 1;
                continue;
            }
            if (json) {
                printf("%s", i ? "," : "");
                print_json(reply);
            } else {
                print_human(reply);
            }
        }
        if (json)
            printf("]}\n");
        return rc;
    }
    const char *target = ns.n == 1 ? ns.id[0] : pick(run_dir, &ns, cmd);
    if (!target) {
        fprintf(stderr, "hamq-supervisorctl: %d nodes run here and none is the obvious target "
                        "of '%s': say which with --node ID\n", ns.n, cmd);
        return HAMQ_EXIT_CONFIG;
    }
    int r = request(run_dir, target, cmd, reply, sizeof reply, false);
    if (r < 0)
        return r == -ENOENT || r == -ECONNREFUSED ? 3 : 1;
    char res[256], dur[32];
    if (sup_ctl_kv_get(reply, "result", res, sizeof res) == 0)
        printf("%s: %s%s%s%s\n", target, res,
               sup_ctl_kv_get(reply, "duration_ms", dur, sizeof dur) == 0 ? " (" : "",
               sup_ctl_kv_get(reply, "duration_ms", dur, sizeof dur) == 0 ? dur : "",
               sup_ctl_kv_get(reply, "duration_ms", dur, sizeof dur) == 0 ? " ms)" : "");
    else
        printf("%s: ok\n", target);
    return 0;
}
