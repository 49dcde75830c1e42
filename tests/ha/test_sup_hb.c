/*
 * Unit tests of supervisor/sup_hb.c: the wire codec, and two real sup_hb
 * nodes on 127.0.0.1 in one process, driven by a small epoll loop: peer
 * found/lost, staleness, handover + ack, CURVE good and wrong keys, keygen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hamq/log.h"
#include "supervisor/sup_event.h"
#include "supervisor/sup_hb.h"

struct node {
    struct sup_hb *hb;
    int found, lost;
    char last_peer[64];
    int handover_requests;
    uint64_t req_seq;
    int results;
    int result_status;
    bool auto_ack;
};

static void on_peer(void *ctx, const struct sup_hb_peer_info *p, bool alive)
{
    struct node *n = ctx;
    if (alive)
        n->found++;
    else
        n->lost++;
    snprintf(n->last_peer, sizeof n->last_peer, "%s", p->node_id);
}

static void on_req(void *ctx, const char *peer, uint64_t seq)
{
    struct node *n = ctx;
    n->handover_requests++;
    n->req_seq = seq;
    if (n->auto_ack)
        assert_int_equal(sup_hb_ack_handover(n->hb, peer, seq, 0), 0);
}

static void on_result(void *ctx, const char *peer, uint64_t seq, int status)
{
    struct node *n = ctx;
    (void)peer;
    (void)seq;
    n->results++;
    n->result_status = status;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void cfg_for(struct hamq_config *c, const char *id, int port, int peer_port)
{
    config_defaults(c);
    snprintf(c->node_id, sizeof c->node_id, "%s", id);
    snprintf(c->ha_listen, sizeof c->ha_listen, "tcp://127.0.0.1:%d", port);
    if (peer_port)
        snprintf(c->peers, sizeof c->peers, "tcp://127.0.0.1:%d", peer_port);
    c->heartbeat_interval_ms = 50;
    c->heartbeat_timeout_ms = 400;
}

static void node_start(struct node *n, const struct hamq_config *c)
{
    char err[256] = "";
    struct sup_hb_callbacks cb = {n, on_peer, on_req, on_result};
    int r = sup_hb_new(c, &cb, &n->hb, err, sizeof err);
    if (r < 0)
        fail_msg("sup_hb_new(%s): %s", c->node_id, err);
}

/* Runs the loop of every node for up to ms, or until done(arg) is true. */
static bool run(struct node **nodes, int count, int ms, bool (*done)(void *), void *arg)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < count; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, sup_hb_fd(nodes[i]->hb), &ev), 0);
    }
    int64_t end = mono_ms() + ms;
    bool ok = false;
    while (!(ok = done && done(arg)) && mono_ms() < end) {
        int t = 50;
        for (int i = 0; i < count; i++) {
            int ti = sup_hb_next_timeout_ms(nodes[i]->hb);
            t = ti < t ? ti : t;
        }
        struct epoll_event evs[8];
        int n = epoll_wait(ep, evs, 8, t);
        for (int i = 0; i < n; i++)
            sup_hb_on_readable(nodes[evs[i].data.u32]->hb);
        for (int i = 0; i < count; i++)
            if (sup_hb_next_timeout_ms(nodes[i]->hb) == 0)
                sup_hb_on_timer(nodes[i]->hb);
    }
    close(ep);
    return ok;
}

struct pair {
    struct node *a, *b;
};

static bool both_found(void *arg)
{
    struct pair *p = arg;
    return sup_hb_peer_alive(p->a->hb, "nodeB") && sup_hb_peer_alive(p->b->hb, "nodeA");
}

static void start_pair(struct node *a, struct node *b, struct hamq_config *ca,
                       struct hamq_config *cb)
{
    int pa = free_port(), pb = free_port();
    if (ca->node_id[0] == 0) {
        cfg_for(ca, "nodeA", pa, pb);
        cfg_for(cb, "nodeB", pb, pa);
    } else {
        snprintf(ca->ha_listen, sizeof ca->ha_listen, "tcp://127.0.0.1:%d", pa);
        snprintf(ca->peers, sizeof ca->peers, "tcp://127.0.0.1:%d", pb);
        snprintf(cb->ha_listen, sizeof cb->ha_listen, "tcp://127.0.0.1:%d", pb);
        snprintf(cb->peers, sizeof cb->peers, "tcp://127.0.0.1:%d", pa);
    }
    node_start(a, ca);
    node_start(b, cb);
}

/* ---- codec ---------------------------------------------------------------- */

static void codec_round_trips_every_field(void **state)
{
    (void)state;
    struct sup_hb_msg m = {.type = SUP_HB_HANDOVER_ACK,
                           .role = SUP_ROLE_LIVE,
                           .health = 2,
                           .priority = 7,
                           .status = -110,
                           .incarnation = 0x1122334455667788ULL,
                           .seq = 42,
                           .send_ts_ns = 123456789,
                           .epoch = 9,
                           .durable_lsn = 77,
                           .ref_seq = 41};
    snprintf(m.node_id, sizeof m.node_id, "node-1");
    uint8_t buf[SUP_HB_WIRE_SIZE];
    assert_int_equal(sup_hb_encode(&m, buf), 0);
    assert_memory_equal(buf, "HQHB", 4);
    assert_int_equal(buf[4], SUP_HB_VERSION);
    assert_int_equal(buf[24], 42); /* sequence, little-endian at offset 24 */
    struct sup_hb_msg d;
    const char *why;
    assert_int_equal(sup_hb_decode(buf, sizeof buf, &d, &why), 0);
    assert_memory_equal(&d, &m, sizeof m);
}

static void decode_rejects_size_magic_version_type_and_node_id(void **state)
{
    (void)state;
    struct sup_hb_msg m = {.type = SUP_HB_HEARTBEAT};
    snprintf(m.node_id, sizeof m.node_id, "n");
    uint8_t buf[SUP_HB_WIRE_SIZE], bad[SUP_HB_WIRE_SIZE];
    struct sup_hb_msg d;
    const char *why;
    assert_int_equal(sup_hb_encode(&m, buf), 0);
    assert_int_equal(sup_hb_decode(buf, sizeof buf - 1, &d, &why), -EBADMSG);
    assert_string_equal(why, "wrong size");
    memcpy(bad, buf, sizeof bad);
    bad[0] = 'X';
    assert_int_equal(sup_hb_decode(bad, sizeof bad, &d, &why), -EBADMSG);
    assert_string_equal(why, "bad magic");
    memcpy(bad, buf, sizeof bad);
    bad[4] = 2;
    assert_int_equal(sup_hb_decode(bad, sizeof bad, &d, &why), -EBADMSG);
    assert_string_equal(why, "unsupported version");
    memcpy(bad, buf, sizeof bad);
    bad[5] = 9;
    assert_int_equal(sup_hb_decode(bad, sizeof bad, &d, &why), -EBADMSG);
    memcpy(bad, buf, sizeof bad);
    memset(bad + 64, 'x', 64); /* no terminator */
    assert_int_equal(sup_hb_decode(bad, sizeof bad, &d, &why), -EBADMSG);
    snprintf(m.node_id, sizeof m.node_id, "%s", "");
    assert_int_equal(sup_hb_encode(&m, buf), -EINVAL);
}

/* Bounded randomized test: random bytes and single-byte mutations of a valid
 * frame either decode to something that re-encodes to the same bytes, or are
 * refused with a reason; never a crash (run under ASan in CI). */
static void decode_survives_random_and_mutated_frames(void **state)
{
    (void)state;
    unsigned seed = 12345;
    struct sup_hb_msg m = {.type = SUP_HB_HEARTBEAT, .seq = 7, .epoch = 3};
    snprintf(m.node_id, sizeof m.node_id, "node-x");
    uint8_t good[SUP_HB_WIRE_SIZE], buf[SUP_HB_WIRE_SIZE + 8], re[SUP_HB_WIRE_SIZE];
    assert_int_equal(sup_hb_encode(&m, good), 0);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len;
        if (i % 2) {
            len = (size_t)rand_r(&seed) % sizeof buf;
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)rand_r(&seed);
        } else {
            len = SUP_HB_WIRE_SIZE;
            memcpy(buf, good, len);
            buf[rand_r(&seed) % len] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
        }
        struct sup_hb_msg d;
        const char *why = NULL;
        if (sup_hb_decode(buf, len, &d, &why) == 0) {
            accepted++;
            assert_null(why);
            /* what we accept is exactly what we would send (reserved bytes aside) */
            if (sup_hb_encode(&d, re) == 0)
                assert_memory_equal(re + 16, buf + 16, SUP_HB_WIRE_SIZE - 16);
        } else {
            refused++;
            assert_non_null(why);
        }
    }
    assert_true(accepted > 0 && refused > 0);
}

/* ---- two nodes ------------------------------------------------------------ */

static void two_nodes_find_each_other_and_exchange_state(void **state)
{
    (void)state;
    struct node a = {0}, b = {0};
    struct hamq_config ca, cb;
    ca.node_id[0] = 0;
    start_pair(&a, &b, &ca, &cb);
    sup_hb_set_state(b.hb, SUP_ROLE_LIVE, SUP_HEALTH_OK, 5, 1234);
    struct node *all[] = {&a, &b};
    struct pair p = {&a, &b};
    assert_true(run(all, 2, 5000, both_found, &p));
    run(all, 2, 200, NULL, NULL); /* let a heartbeat with the new state through */
    struct sup_hb_peer_info info;
    assert_int_equal(sup_hb_peer_get(a.hb, "nodeB", &info), 0);
    assert_true(info.alive);
    assert_int_equal(info.role, SUP_ROLE_LIVE);
    assert_int_equal(info.epoch, 5);
    assert_int_equal(info.durable_lsn, 1234);
    assert_int_equal(info.priority, 100);
    assert_int_equal(a.found, 1);
    assert_string_equal(a.last_peer, "nodeB");
    assert_false(sup_hb_peer_alive(a.hb, "nobody"));
    sup_hb_free(a.hb);
    sup_hb_free(b.hb);
}

static bool a_lost(void *arg)
{
    return ((struct node *)arg)->lost > 0;
}

static void peer_is_reported_lost_when_it_stops_and_found_when_it_returns(void **state)
{
    (void)state;
    struct node a = {0}, b = {0};
    struct hamq_config ca, cb;
    ca.node_id[0] = 0;
    start_pair(&a, &b, &ca, &cb);
    struct node *all[] = {&a, &b};
    struct pair p = {&a, &b};
    assert_true(run(all, 2, 5000, both_found, &p));
    sup_hb_free(b.hb);
    b.hb = NULL;
    assert_true(run(all, 1, 5000, a_lost, &a));
    assert_false(sup_hb_peer_alive(a.hb, "nodeB"));
    node_start(&b, &cb); /* restart on the same port */
    assert_true(run(all, 2, 5000, both_found, &p));
    assert_int_equal(a.found, 2);
    sup_hb_free(a.hb);
    sup_hb_free(b.hb);
}

/* A raw DEALER that speaks for a fake node "ghost". */
static void ghost_send(void *dealer, uint64_t seq, int64_t age_ms, int type, uint64_t ref)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    struct sup_hb_msg m = {.type = (uint8_t)type, .incarnation = 99, .seq = seq, .ref_seq = ref};
    m.send_ts_ns = (uint64_t)((int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - age_ms * 1000000);
    snprintf(m.node_id, sizeof m.node_id, "ghost");
    uint8_t buf[SUP_HB_WIRE_SIZE];
    assert_int_equal(sup_hb_encode(&m, buf), 0);
    assert_int_equal(zmq_send(dealer, buf, sizeof buf, 0), (int)sizeof buf);
}

static bool ghost_alive(void *arg)
{
    return sup_hb_peer_alive(((struct node *)arg)->hb, "ghost");
}

static void stale_and_replayed_heartbeats_are_ignored_but_a_shifted_clock_recovers(void **state)
{
    (void)state;
    struct node a = {0};
    struct hamq_config ca;
    int port = free_port();
    cfg_for(&ca, "nodeA", port, 0);
    node_start(&a, &ca);
    void *ctx = zmq_ctx_new(), *d = zmq_socket(ctx, ZMQ_DEALER);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(d, ep), 0);
    struct node *all[] = {&a};
    struct sup_hb_stats st;

    ghost_send(d, 10, 0, SUP_HB_HEARTBEAT, 0);
    assert_true(run(all, 1, 3000, ghost_alive, &a));
    ghost_send(d, 11, 5000, SUP_HB_HEARTBEAT, 0); /* queued 5 s ago: a partition backlog */
    ghost_send(d, 10, 0, SUP_HB_HEARTBEAT, 0);    /* replayed sequence */
    ghost_send(d, 12, 0, SUP_HB_HEARTBEAT, 0);    /* fresh */
    run(all, 1, 300, NULL, NULL);
    sup_hb_get_stats(a.hb, &st);
    assert_int_equal(st.stale, 2);
    struct sup_hb_peer_info info;
    assert_int_equal(sup_hb_peer_get(a.hb, "ghost", &info), 0);
    assert_int_equal(info.seq, 12);

    /* A backlog delivered in one burst stays ignored, however long it is. */
    for (uint64_t seq = 13; seq < 18; seq++)
        ghost_send(d, seq, 5000 - (int64_t)seq * 50, SUP_HB_HEARTBEAT, 0);
    run(all, 1, 50, NULL, NULL);
    sup_hb_get_stats(a.hb, &st);
    assert_int_equal(st.stale, 7);
    assert_int_equal(sup_hb_peer_get(a.hb, "ghost", &info), 0);
    assert_int_equal(info.seq, 12);

    /* A live stream on a clock that fell 5 s behind (suspended peer): after a few
     * messages spread over real time, it is accepted again instead of ignored forever. */
    uint64_t before = st.stale;
    for (uint64_t seq = 18; seq < 30; seq++) {
        ghost_send(d, seq, 5000, SUP_HB_HEARTBEAT, 0);
        run(all, 1, 60, NULL, NULL);
    }
    sup_hb_get_stats(a.hb, &st);
    assert_int_equal(sup_hb_peer_get(a.hb, "ghost", &info), 0);
    assert_true(st.stale - before >= 2);
    assert_int_equal(info.seq, 29);

    zmq_send(d, "garbage", 7, 0); /* a bad frame is counted, not fatal */
    run(all, 1, 200, NULL, NULL);
    sup_hb_get_stats(a.hb, &st);
    assert_int_equal(st.invalid, 1);
    zmq_close(d);
    zmq_ctx_term(ctx);
    sup_hb_free(a.hb);
}

static bool got_result(void *arg)
{
    return ((struct node *)arg)->results > 0;
}

static void handover_request_reaches_the_peer_and_its_ack_comes_back(void **state)
{
    (void)state;
    struct node a = {0}, b = {.auto_ack = true};
    struct hamq_config ca, cb;
    ca.node_id[0] = 0;
    start_pair(&a, &b, &ca, &cb);
    struct node *all[] = {&a, &b};
    struct pair p = {&a, &b};
    assert_true(run(all, 2, 5000, both_found, &p));
    uint64_t seq;
    assert_int_equal(sup_hb_request_handover(a.hb, "nobody", 1000, &seq), -ENOENT);
    assert_int_equal(sup_hb_request_handover(a.hb, "nodeB", 3000, &seq), 0);
    assert_int_equal(sup_hb_request_handover(a.hb, "nodeB", 3000, &seq), -EBUSY);
    assert_true(run(all, 2, 5000, got_result, &a));
    assert_int_equal(a.result_status, 0);
    assert_int_equal(b.handover_requests, 1);
    assert_int_equal(b.req_seq, seq);
    sup_hb_free(a.hb);
    sup_hb_free(b.hb);
}

static void unanswered_handover_times_out(void **state)
{
    (void)state;
    struct node a = {0}, b = {0}; /* b never acks */
    struct hamq_config ca, cb;
    ca.node_id[0] = 0;
    start_pair(&a, &b, &ca, &cb);
    struct node *all[] = {&a, &b};
    struct pair p = {&a, &b};
    assert_true(run(all, 2, 5000, both_found, &p));
    uint64_t seq;
    assert_int_equal(sup_hb_request_handover(a.hb, "nodeB", 300, &seq), 0);
    assert_true(run(all, 2, 5000, got_result, &a));
    assert_int_equal(a.result_status, -ETIMEDOUT);
    assert_int_equal(b.handover_requests, 1); /* resends are deduplicated */
    sup_hb_free(a.hb);
    sup_hb_free(b.hb);
}

/* ---- CURVE ---------------------------------------------------------------- */

static char keydir[64];

static void make_keys(void)
{
    char err[256];
    snprintf(keydir, sizeof keydir, "/tmp/hamq-test-keys-XXXXXX");
    assert_non_null(mkdtemp(keydir));
    assert_int_equal(sup_keygen(keydir, "nodeA", err, sizeof err), 0);
    assert_int_equal(sup_keygen(keydir, "nodeB", err, sizeof err), 0);
    assert_int_equal(sup_keygen(keydir, "intruder", err, sizeof err), 0);
}

static void remove_keys(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", keydir);
    assert_int_equal(system(cmd), 0);
}

static void set_keys(struct hamq_config *c, const char *me, const char *peer)
{
    snprintf(c->curve_secret_key_file, sizeof c->curve_secret_key_file, "%s/%s.key", keydir, me);
    snprintf(c->curve_peer_public_key_file, sizeof c->curve_peer_public_key_file, "%s/%s.pub",
             keydir, peer);
}

static void keygen_writes_a_private_secret_and_refuses_to_overwrite(void **state)
{
    (void)state;
    char err[256], path[128], z85[41];
    make_keys();
    struct stat st;
    snprintf(path, sizeof path, "%s/nodeA.key", keydir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sup_key_read(path, true, z85, err, sizeof err), 0);
    assert_int_equal(strlen(z85), 40);
    assert_int_equal(sup_keygen(keydir, "nodeA", err, sizeof err), -EEXIST);
    assert_non_null(strstr(err, "already exists"));
    chmod(path, 0644);
    assert_int_equal(sup_key_read(path, true, z85, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "chmod 600"));
    remove_keys();
}

static void curve_nodes_with_the_right_keys_talk(void **state)
{
    (void)state;
    make_keys();
    struct node a = {0}, b = {0};
    struct hamq_config ca, cb;
    cfg_for(&ca, "nodeA", 0, 0);
    cfg_for(&cb, "nodeB", 0, 0);
    set_keys(&ca, "nodeA", "nodeB");
    set_keys(&cb, "nodeB", "nodeA");
    start_pair(&a, &b, &ca, &cb);
    struct node *all[] = {&a, &b};
    struct pair p = {&a, &b};
    assert_true(run(all, 2, 5000, both_found, &p));
    struct sup_hb_stats st;
    sup_hb_get_stats(a.hb, &st);
    assert_int_equal(st.auth_refused, 0);
    sup_hb_free(a.hb);
    sup_hb_free(b.hb);
    remove_keys();
}

static bool refused(void *arg)
{
    struct sup_hb_stats st;
    sup_hb_get_stats(((struct node *)arg)->hb, &st);
    return st.auth_refused > 0;
}

static void curve_node_with_a_wrong_key_is_refused_and_logged(void **state)
{
    (void)state;
    make_keys();
    char logpath[] = "/tmp/hamq-test-hblog-XXXXXX";
    int lfd = mkstemp(logpath), saved = dup(2);
    dup2(lfd, 2);
    struct node a = {0}, b = {0};
    struct hamq_config ca, cb;
    cfg_for(&ca, "nodeA", 0, 0);
    cfg_for(&cb, "nodeB", 0, 0);
    set_keys(&ca, "nodeA", "nodeB");
    set_keys(&cb, "intruder", "nodeA"); /* B knows A, but A expects nodeB's key */
    start_pair(&a, &b, &ca, &cb);
    struct node *all[] = {&a, &b};
    bool r = run(all, 2, 5000, refused, &a);
    run(all, 2, 300, NULL, NULL);
    dup2(saved, 2);
    close(saved);
    assert_true(r);
    assert_false(sup_hb_peer_alive(a.hb, "nodeB"));
    assert_int_equal(a.found, 0);
    char buf[8192] = "";
    ssize_t n = pread(lfd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "refused supervisor connection from 127.0.0.1"));
    assert_non_null(strstr(buf, "HAMQ_EVENT=peer-refused"));
    close(lfd);
    unlink(logpath);
    sup_hb_free(a.hb);
    sup_hb_free(b.hb);
    remove_keys();
}

static void own_heartbeats_are_ignored_when_peers_lists_our_endpoint(void **state)
{
    (void)state;
    struct node a = {0};
    struct hamq_config c;
    int port = free_port();
    cfg_for(&c, "nodeA", port, port);
    node_start(&a, &c);
    struct node *all[] = {&a};
    run(all, 1, 300, NULL, NULL);
    struct sup_hb_stats st;
    sup_hb_get_stats(a.hb, &st);
    assert_int_equal(sup_hb_peer_count(a.hb), 0);
    assert_true(st.invalid > 0);
    assert_int_equal(a.found, 0);
    sup_hb_free(a.hb);
}

static void bad_settings_give_clear_errors(void **state)
{
    (void)state;
    struct hamq_config c;
    struct sup_hb *hb;
    char err[256];
    cfg_for(&c, "", free_port(), 0);
    assert_int_equal(sup_hb_new(&c, NULL, &hb, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "node_id"));
    cfg_for(&c, "n", free_port(), 0);
    snprintf(c.peers, sizeof c.peers, "tcp://127.0.0.1:1, nonsense");
    assert_true(sup_hb_new(&c, NULL, &hb, err, sizeof err) < 0);
    assert_non_null(strstr(err, "nonsense"));
    cfg_for(&c, "n", free_port(), 0);
    snprintf(c.ha_listen, sizeof c.ha_listen, "tcp://256.1.1.1:5");
    assert_true(sup_hb_new(&c, NULL, &hb, err, sizeof err) < 0);
    assert_non_null(strstr(err, "cannot bind"));
    cfg_for(&c, "n", free_port(), 0);
    snprintf(c.curve_secret_key_file, sizeof c.curve_secret_key_file, "/nonexistent/n.key");
    assert_int_equal(sup_hb_new(&c, NULL, &hb, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "curve_peer_public_key_file is not"));
    snprintf(c.curve_peer_public_key_file, sizeof c.curve_peer_public_key_file, "/nonexistent/p");
    assert_int_equal(sup_hb_new(&c, NULL, &hb, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/n.key"));
}

static void every_event_has_its_own_32_hex_digit_message_id(void **state)
{
    (void)state;
    const char *ev[] = {"peer-found",        "peer-lost",        "peer-refused", "handover-request",
                        "handover-ack",      "handover-timeout", "child-start",  "child-exit",
                        "child-frozen-kill", "vip-add",          "vip-remove",   "link-up",
                        "link-down"};
    size_t n = sizeof ev / sizeof ev[0];
    for (size_t i = 0; i < n; i++) {
        const char *id = sup_event_message_id(ev[i]);
        assert_non_null(id);
        assert_int_equal(strlen(id), 32);
        assert_int_equal(strspn(id, "0123456789abcdef"), 32);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(id, sup_event_message_id(ev[j]));
    }
    assert_null(sup_event_message_id("no-such-event"));
}

int main(void)
{
    log_init("test_sup_hb", LOG_TARGET_STDERR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codec_round_trips_every_field),
        cmocka_unit_test(decode_rejects_size_magic_version_type_and_node_id),
        cmocka_unit_test(decode_survives_random_and_mutated_frames),
        cmocka_unit_test(two_nodes_find_each_other_and_exchange_state),
        cmocka_unit_test(peer_is_reported_lost_when_it_stops_and_found_when_it_returns),
        cmocka_unit_test(stale_and_replayed_heartbeats_are_ignored_but_a_shifted_clock_recovers),
        cmocka_unit_test(handover_request_reaches_the_peer_and_its_ack_comes_back),
        cmocka_unit_test(unanswered_handover_times_out),
        cmocka_unit_test(keygen_writes_a_private_secret_and_refuses_to_overwrite),
        cmocka_unit_test(curve_nodes_with_the_right_keys_talk),
        cmocka_unit_test(curve_node_with_a_wrong_key_is_refused_and_logged),
        cmocka_unit_test(own_heartbeats_are_ignored_when_peers_lists_our_endpoint),
        cmocka_unit_test(bad_settings_give_clear_errors),
        cmocka_unit_test(every_event_has_its_own_32_hex_digit_message_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
