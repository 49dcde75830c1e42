/*
 * hatool — drives the supervisor modules from the shell tests of tests/ha/
 * (real processes in real network namespaces). Not installed.
 *
 *   hatool hb NODE LISTEN PEERS [--keys SECRET PEERPUB] [--auto-ack]
 *             [--request-handover] [--seconds N]
 *       runs a heartbeat node; prints FOUND/LOST/HANDOVER-* lines on stdout
 *   hatool keygen DIR NAME
 *   hatool vip-add IFNAME VIP     adds + announces (3 GARPs, 100 ms apart)
 *   hatool vip-del IFNAME VIP
 *   hatool link-watch IFNAME SECONDS   prints READY, then LINK lines
 * Exit status: 0 ok, 1 the operation failed (message on stderr), 2 usage.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamq/config.h"
#include "hamq/log.h"
#include "supervisor/sup_hb.h"
#include "supervisor/sup_link.h"
#include "supervisor/sup_vip.h"

static volatile sig_atomic_t stop;

static void on_term(int s)
{
    (void)s;
    stop = 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct hbtool {
    struct sup_hb *hb;
    bool auto_ack, request;
};

static void hb_peer(void *ctx, const struct sup_hb_peer_info *p, bool alive)
{
    struct hbtool *t = ctx;
    printf("%s %s\n", alive ? "FOUND" : "LOST", p->node_id);
    if (alive && t->request) {
        uint64_t seq;
        int r = sup_hb_request_handover(t->hb, p->node_id, 3000, &seq);
        printf("HANDOVER-SENT %s %d\n", p->node_id, r);
    }
    fflush(stdout);
}

static void hb_req(void *ctx, const char *peer, uint64_t seq)
{
    struct hbtool *t = ctx;
    printf("HANDOVER-REQUEST %s\n", peer);
    if (t->auto_ack)
        printf("HANDOVER-ACKED %s %d\n", peer, sup_hb_ack_handover(t->hb, peer, seq, 0));
    fflush(stdout);
}

static void hb_result(void *ctx, const char *peer, uint64_t seq, int status)
{
    (void)ctx;
    (void)seq;
    printf("HANDOVER-RESULT %s %d\n", peer, status);
    fflush(stdout);
}

static int cmd_hb(int argc, char **argv)
{
    struct hamq_config c;
    config_defaults(&c);
    if (argc < 5)
        return 2;
    snprintf(c.node_id, sizeof c.node_id, "%s", argv[2]);
    snprintf(c.ha_listen, sizeof c.ha_listen, "%s", argv[3]);
    snprintf(c.peers, sizeof c.peers, "%s", argv[4]);
    c.heartbeat_interval_ms = 50;
    c.heartbeat_timeout_ms = 500;
    struct hbtool t = {0};
    int seconds = 60;
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--keys") && i + 2 < argc) {
            snprintf(c.curve_secret_key_file, sizeof c.curve_secret_key_file, "%s", argv[++i]);
            snprintf(c.curve_peer_public_key_file, sizeof c.curve_peer_public_key_file, "%s",
                     argv[++i]);
        } else if (!strcmp(argv[i], "--auto-ack")) {
            t.auto_ack = true;
        } else if (!strcmp(argv[i], "--request-handover")) {
            t.request = true;
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atoi(argv[++i]);
        } else {
            return 2;
        }
    }
    char err[512];
    struct sup_hb_callbacks cb = {&t, hb_peer, hb_req, hb_result};
    if (sup_hb_new(&c, &cb, &t.hb, err, sizeof err) < 0) {
        fprintf(stderr, "hatool: %s\n", err);
        return 1;
    }
    printf("READY\n");
    fflush(stdout);
    int64_t end = mono_ms() + seconds * 1000LL;
    while (!stop && mono_ms() < end) {
        struct pollfd p = {.fd = sup_hb_fd(t.hb), .events = POLLIN};
        if (poll(&p, 1, sup_hb_next_timeout_ms(t.hb)) > 0)
            sup_hb_on_readable(t.hb);
        if (sup_hb_next_timeout_ms(t.hb) == 0)
            sup_hb_on_timer(t.hb);
    }
    struct sup_hb_stats st;
    sup_hb_get_stats(t.hb, &st);
    printf("STATS sent=%llu received=%llu stale=%llu invalid=%llu refused=%llu\n",
           (unsigned long long)st.sent, (unsigned long long)st.received,
           (unsigned long long)st.stale, (unsigned long long)st.invalid,
           (unsigned long long)st.auth_refused);
    fflush(stdout);
    sup_hb_free(t.hb);
    return 0;
}

static int cmd_vip(int argc, char **argv, bool add)
{
    if (argc != 4)
        return 2;
    char err[512];
    struct sup_vip *v;
    if (sup_vip_new(argv[3], argv[2], 3, 100, &v, err, sizeof err) < 0) {
        fprintf(stderr, "hatool: %s\n", err);
        return 1;
    }
    int r = add ? sup_vip_add(v, err, sizeof err) : sup_vip_remove(v, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "hatool: %s\n", err);
        sup_vip_free(v);
        return 1;
    }
    /* let every scheduled GARP go out */
    for (int t; (t = sup_vip_next_timeout_ms(v)) >= 0;) {
        poll(NULL, 0, t);
        sup_vip_on_timer(v);
    }
    sup_vip_free(v);
    return 0;
}

static void link_cb(void *ctx, const char *ifname, bool up, const char *why)
{
    (void)ctx;
    printf("LINK %s %s (%s)\n", ifname, up ? "up" : "down", why);
    fflush(stdout);
}

static int cmd_link(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    char err[512];
    struct sup_link *l;
    if (sup_link_new(argv[2], link_cb, NULL, &l, err, sizeof err) < 0) {
        fprintf(stderr, "hatool: %s\n", err);
        return 1;
    }
    printf("READY %s\n", sup_link_is_up(l) ? "up" : "down");
    fflush(stdout);
    int64_t end = mono_ms() + atoi(argv[3]) * 1000LL;
    while (!stop && mono_ms() < end) {
        struct pollfd p = {.fd = sup_link_fd(l), .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            sup_link_on_readable(l);
    }
    sup_link_free(l);
    return 0;
}

int main(int argc, char **argv)
{
    log_init("hatool", LOG_TARGET_STDERR);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    int r = 2;
    char err[512];
    if (argc >= 2 && !strcmp(argv[1], "hb"))
        r = cmd_hb(argc, argv);
    else if (argc == 4 && !strcmp(argv[1], "keygen")) {
        r = sup_keygen(argv[2], argv[3], err, sizeof err) < 0 ? 1 : 0;
        if (r)
            fprintf(stderr, "hatool: %s\n", err);
    } else if (argc >= 2 && !strcmp(argv[1], "vip-add"))
        r = cmd_vip(argc, argv, true);
    else if (argc >= 2 && !strcmp(argv[1], "vip-del"))
        r = cmd_vip(argc, argv, false);
    else if (argc >= 2 && !strcmp(argv[1], "link-watch"))
        r = cmd_link(argc, argv);
    if (r == 2)
        fprintf(stderr, "usage: see the header of tests/ha/hatool.c\n");
    return r;
}
