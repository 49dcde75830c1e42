/*
 * bench_sup — timings of the supervisor building blocks on this machine
 * (figures, not assertions; run by hand: tests/ha/bench_sup [rounds]):
 *  1. HANDOVER request → ack round trip between two sup_hb on 127.0.0.1
 *  2. peer-lost detection: peer stopped → peer_change(lost), with
 *     interval 50 ms / timeout 300 ms (expected: ~timeout + up to one tick)
 *  3. frozen kill: SIGSTOPped child → SIGKILL via pidfd → death confirmed
 *  4. child exit → reported by sup_child through its pidfd
 */
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hamq/config.h"
#include "hamq/log.h"
#include "supervisor/sup_child.h"
#include "supervisor/sup_hb.h"

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp64);
    printf("%-44s n=%-3d median %8.3f ms  min %8.3f  max %8.3f\n", what, n, v[n / 2] / 1000.0,
           v[0] / 1000.0, v[n - 1] / 1000.0);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0)
        exit(1);
    close(s);
    return ntohs(a.sin_port);
}

struct node {
    struct sup_hb *hb;
    int lost, results;
    int64_t lost_at;
};

static void on_peer(void *ctx, const struct sup_hb_peer_info *p, bool alive)
{
    struct node *n = ctx;
    (void)p;
    if (!alive) {
        n->lost++;
        n->lost_at = now_us();
    }
}

static void on_req(void *ctx, const char *peer, uint64_t id)
{
    sup_hb_ack_handover(((struct node *)ctx)->hb, peer, id, 0);
}

static void on_result(void *ctx, const char *peer, uint64_t id, int status)
{
    (void)peer, (void)id, (void)status;
    ((struct node *)ctx)->results++;
}

static void step(struct node **n, int count, int max_ms)
{
    struct pollfd p[2];
    int t = max_ms;
    for (int i = 0; i < count; i++) {
        p[i] = (struct pollfd){.fd = sup_hb_fd(n[i]->hb), .events = POLLIN};
        int ti = sup_hb_next_timeout_ms(n[i]->hb);
        t = ti < t ? ti : t;
    }
    poll(p, (nfds_t)count, t);
    for (int i = 0; i < count; i++) {
        if (p[i].revents)
            sup_hb_on_readable(n[i]->hb);
        if (sup_hb_next_timeout_ms(n[i]->hb) == 0)
            sup_hb_on_timer(n[i]->hb);
    }
}

static void start(struct node *n, struct hamq_config *c)
{
    char err[256];
    struct sup_hb_callbacks cb = {n, on_peer, on_req, on_result};
    if (sup_hb_new(c, &cb, &n->hb, err, sizeof err) < 0) {
        fprintf(stderr, "bench_sup: %s\n", err);
        exit(1);
    }
}

static void bench_hb(int rounds)
{
    struct hamq_config ca, cb;
    int pa = free_port(), pb = free_port();
    config_defaults(&ca);
    config_defaults(&cb);
    snprintf(ca.node_id, sizeof ca.node_id, "A");
    snprintf(cb.node_id, sizeof cb.node_id, "B");
    snprintf(ca.ha_listen, sizeof ca.ha_listen, "tcp://127.0.0.1:%d", pa);
    snprintf(cb.ha_listen, sizeof cb.ha_listen, "tcp://127.0.0.1:%d", pb);
    snprintf(ca.peers, sizeof ca.peers, "tcp://127.0.0.1:%d", pb);
    snprintf(cb.peers, sizeof cb.peers, "tcp://127.0.0.1:%d", pa);
    ca.heartbeat_interval_ms = cb.heartbeat_interval_ms = 50;
    ca.heartbeat_timeout_ms = cb.heartbeat_timeout_ms = 300;
    struct node a = {0}, b = {0};
    struct node *all[] = {&a, &b};
    int64_t *rtt = calloc((size_t)rounds, sizeof *rtt), lost[5];
    start(&a, &ca);
    start(&b, &cb);
    for (int i = 0; i < 200 && !(sup_hb_peer_alive(a.hb, "B") && sup_hb_peer_alive(b.hb, "A")); i++)
        step(all, 2, 50);
    for (int r = 0; r < rounds; r++) {
        uint64_t id;
        int before = a.results;
        int64_t t0 = now_us();
        if (sup_hb_request_handover(a.hb, "B", 2000, &id) < 0)
            exit(2);
        while (a.results == before)
            step(all, 2, 50);
        rtt[r] = now_us() - t0;
    }
    report("handover request -> ack (127.0.0.1)", rtt, rounds);
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < 200 && !sup_hb_peer_alive(a.hb, "B"); i++)
            step(all, 2, 50);
        int before = a.lost;
        sup_hb_free(b.hb);
        int64_t t0 = now_us();
        while (a.lost == before)
            step(all, 1, 50);
        lost[r] = a.lost_at - t0;
        start(&b, &cb);
    }
    report("peer stopped -> peer-lost (timeout 300 ms)", lost, 5);
    sup_hb_free(a.hb);
    sup_hb_free(b.hb);
    free(rtt);
}

static void on_exit_cb(void *ctx, struct sup_child *c, const struct sup_child_exit *e)
{
    (void)c, (void)e;
    *(int64_t *)ctx = now_us();
}

static void bench_child(int rounds)
{
    int64_t *kill_t = calloc((size_t)rounds, sizeof *kill_t);
    int64_t *exit_t = calloc((size_t)rounds, sizeof *exit_t);
    for (int r = 0; r < rounds; r++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                pause();
        }
        kill(pid, SIGSTOP);
        waitpid(pid, NULL, WUNTRACED);
        int64_t t0 = now_us();
        if (sup_kill_frozen(pid, 2000) != 0)
            exit(3);
        kill_t[r] = now_us() - t0;
        waitpid(pid, NULL, 0);

        char *argv[] = {"/bin/true", NULL};
        int64_t done = 0;
        struct sup_child *c;
        struct sup_child_policy pol = {60000, 60000, 1000, 1000};
        sup_child_new("true", argv, &pol, on_exit_cb, &done, &c);
        int64_t s0 = now_us();
        sup_child_start(c);
        struct pollfd p = {.fd = sup_child_fd(c), .events = POLLIN};
        while (!done && poll(&p, 1, 1000) >= 0)
            sup_child_on_readable(c);
        exit_t[r] = done - s0;
        sup_child_free(c);
    }
    report("frozen child: SIGKILL -> death confirmed", kill_t, rounds);
    report("spawn /bin/true -> exit reported (pidfd)", exit_t, rounds);
    free(kill_t);
    free(exit_t);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    if (rounds < 1 || rounds > 100000)
        rounds = 50;
    log_init("bench_sup", LOG_TARGET_STDERR);
    log_set_max_priority(LOG_ERR);
    bench_hb(rounds);
    bench_child(rounds);
    return 0;
}
