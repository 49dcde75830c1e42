/*
 * Unit tests of supervisor/sup_ctl_proto.c: a real unix socket server in this
 * process and real clients in a forked process (the client blocks, the server
 * must not), round trips, errors, stale and busy socket paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hamq/log.h"
#include "supervisor/sup_ctl_proto.h"

static char sockpath[108];
static int calls;
static char last_cmd[32], last_args[64];

static uint64_t deferred_id;

static void handler(void *ctx, const char *cmd, const char *args, struct sup_ctl_reply *r)
{
    (void)ctx;
    calls++;
    if (strcmp(cmd, "failover") == 0 && strcmp(args, "defer") == 0) {
        deferred_id = sup_ctl_reply_defer(r);
        return;
    }
    snprintf(last_cmd, sizeof last_cmd, "%s", cmd);
    snprintf(last_args, sizeof last_args, "%s", args);
    if (strcmp(cmd, "status") == 0) {
        sup_ctl_reply_kv(r, "node", "node1");
        sup_ctl_reply_kv(r, "role", "live");
        sup_ctl_reply_kv(r, "epoch", "%d", 7);
        sup_ctl_reply_kv(r, "peer.node2.state", "alive\nwith newline");
    } else if (strcmp(cmd, "failback") == 0) {
        sup_ctl_reply_error(r, "failback makes no sense on the live node");
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fresh_path(void)
{
    snprintf(sockpath, sizeof sockpath, "/tmp/hamq-test-ctl-%d.sock", (int)getpid());
    unlink(sockpath);
}

/* Serves s until the forked client exits; returns its exit status. A deferred
 * request is answered 100 ms after it arrived (as a handover would be). */
static int serve_until_exit(struct sup_ctl_server *s, pid_t pid)
{
    int64_t end = mono_ms() + 10000, deferred_at = 0;
    int st = -1;
    while (mono_ms() < end) {
        struct pollfd p = {.fd = sup_ctl_server_fd(s), .events = POLLIN};
        if (poll(&p, 1, 20) > 0)
            sup_ctl_server_on_readable(s);
        if (deferred_id && !deferred_at)
            deferred_at = mono_ms();
        if (deferred_id && mono_ms() - deferred_at >= 100) {
            struct sup_ctl_reply r = {0};
            sup_ctl_reply_kv(&r, "result", "done");
            assert_int_equal(sup_ctl_server_complete(s, deferred_id, &r), 0);
            deferred_id = 0;
            deferred_at = 0;
        }
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 101;
}

static int client_status(void)
{
    char reply[SUP_CTL_REPLY_MAX], err[256], v[64];
    if (sup_ctl_request(sockpath, "status", 3000, reply, sizeof reply, err, sizeof err) != 0)
        return 1;
    if (sup_ctl_kv_get(reply, "role", v, sizeof v) != 0 || strcmp(v, "live") != 0)
        return 2;
    if (sup_ctl_kv_get(reply, "epoch", v, sizeof v) != 0 || strcmp(v, "7") != 0)
        return 3;
    if (sup_ctl_kv_get(reply, "peer.node2.state", v, sizeof v) != 0 ||
        strcmp(v, "alive with newline") != 0)
        return 4;
    if (sup_ctl_kv_get(reply, "nothere", v, sizeof v) != -ENOENT)
        return 5;
    return 0;
}

static int client_commands(void)
{
    char reply[SUP_CTL_REPLY_MAX], err[256];
    if (sup_ctl_request(sockpath, "failover now", 3000, reply, sizeof reply, err, sizeof err))
        return 10;
    if (reply[0] != 0)
        return 11;
    if (sup_ctl_request(sockpath, "failback", 3000, reply, sizeof reply, err, sizeof err) !=
            -EREMOTEIO ||
        strcmp(err, "failback makes no sense on the live node") != 0)
        return 12;
    if (sup_ctl_request(sockpath, "explode", 3000, reply, sizeof reply, err, sizeof err) !=
            -EREMOTEIO ||
        !strstr(err, "unknown command \"explode\"") || !strstr(err, "accepted: status, failover"))
        return 13;
    if (sup_ctl_request(sockpath, "pause", 3000, reply, sizeof reply, err, sizeof err) ||
        sup_ctl_request(sockpath, "resume", 3000, reply, sizeof reply, err, sizeof err))
        return 14;
    return 0;
}

/* A deferred answer arrives later on the same connection; status still works. */
static int client_deferred(void)
{
    char reply[SUP_CTL_REPLY_MAX], err[256], v[32];
    if (sup_ctl_request(sockpath, "failover defer", 3000, reply, sizeof reply, err, sizeof err))
        return 30;
    if (sup_ctl_kv_get(reply, "result", v, sizeof v) != 0 || strcmp(v, "done") != 0)
        return 31;
    return client_status();
}

/* A raw client sending an over-long line must get an error, and the server survives. */
static int client_too_long(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return 20;
    char big[SUP_CTL_LINE_MAX + 10];
    memset(big, 'a', sizeof big);
    if (write(fd, big, sizeof big) != (ssize_t)sizeof big)
        return 21;
    char buf[256] = "";
    ssize_t n = 0, k;
    while ((k = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += k;
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    if (!strstr(buf, "error request line too long"))
        return 22;
    return client_status();
}

/* As nobody:nogroup (65534): refused, unless the server allows that gid. */
static int client_as_nobody(bool expect_allowed)
{
    char reply[SUP_CTL_REPLY_MAX], err[256];
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
        return 40;
    int r = sup_ctl_request(sockpath, "status", 3000, reply, sizeof reply, err, sizeof err);
    if (expect_allowed)
        return r == 0 ? 0 : 41;
    if (r != -EREMOTEIO || !strstr(err, "permission denied (root or the hamq group only)"))
        return 42;
    return 0;
}

static int client_nobody_refused(void)
{
    return client_as_nobody(false);
}

static int client_nobody_allowed(void)
{
    return client_as_nobody(true);
}

/* Bounded randomized requests: random bytes, random lengths, some real
 * commands with random arguments; every one gets "ok" or "error". */
static int client_random(void)
{
    unsigned seed = 777;
    static const char *const cmds[] = {"status", "pause", "resume", "failover", "failback"};
    char line[SUP_CTL_LINE_MAX], reply[SUP_CTL_REPLY_MAX], err[256];
    for (int i = 0; i < 300; i++) {
        size_t len = (size_t)rand_r(&seed) % (SUP_CTL_LINE_MAX - 1);
        size_t k = 0;
        if (i % 3 == 0)
            k = (size_t)snprintf(line, sizeof line, "%s ", cmds[rand_r(&seed) % 5]);
        for (; k < len; k++) {
            char c = (char)(rand_r(&seed) % 255 + 1);
            line[k] = c == '\n' ? ' ' : c;
        }
        line[len > k ? len : k] = 0;
        int r = sup_ctl_request(sockpath, line, 3000, reply, sizeof reply, err, sizeof err);
        if (r != 0 && r != -EREMOTEIO)
            return 50;
    }
    return client_status();
}

static pid_t fork_client(int (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn());
    return pid;
}

static void status_round_trip_returns_key_value_lines(void **state)
{
    (void)state;
    char err[256];
    struct sup_ctl_server *s;
    fresh_path();
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    assert_int_equal(serve_until_exit(s, fork_client(client_status)), 0);
    assert_string_equal(last_cmd, "status");
    sup_ctl_server_free(s);
    assert_int_equal(access(sockpath, F_OK), -1); /* the socket file is removed */
}

static void commands_are_dispatched_and_errors_come_back_as_text(void **state)
{
    (void)state;
    char err[256];
    struct sup_ctl_server *s;
    fresh_path();
    calls = 0;
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    assert_int_equal(serve_until_exit(s, fork_client(client_commands)), 0);
    assert_int_equal(calls, 4); /* failover, failback, pause, resume; not "explode" */
    assert_string_equal(last_cmd, "resume");
    sup_ctl_server_free(s);
}

static void deferred_answer_is_sent_when_complete_is_called(void **state)
{
    (void)state;
    char err[256];
    struct sup_ctl_server *s;
    fresh_path();
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    assert_int_equal(serve_until_exit(s, fork_client(client_deferred)), 0);
    assert_int_equal(sup_ctl_server_pending(s), 0);
    sup_ctl_server_free(s);
}

static void deferred_request_of_a_departed_client_is_dropped(void **state)
{
    (void)state;
    char err[256];
    struct sup_ctl_server *s;
    fresh_path();
    deferred_id = 0;
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, "failover defer\n", 15), 15);
    int64_t end = mono_ms() + 3000;
    while (!deferred_id && mono_ms() < end) {
        struct pollfd p = {.fd = sup_ctl_server_fd(s), .events = POLLIN};
        if (poll(&p, 1, 20) > 0)
            sup_ctl_server_on_readable(s);
    }
    assert_true(deferred_id != 0);
    assert_int_equal(sup_ctl_server_pending(s), 1);
    close(fd);
    while (sup_ctl_server_pending(s) && mono_ms() < end) {
        struct pollfd p = {.fd = sup_ctl_server_fd(s), .events = POLLIN};
        if (poll(&p, 1, 20) > 0)
            sup_ctl_server_on_readable(s);
    }
    assert_int_equal(sup_ctl_server_pending(s), 0);
    struct sup_ctl_reply r = {0};
    assert_int_equal(sup_ctl_server_complete(s, deferred_id, &r), -ENOENT);
    deferred_id = 0;
    sup_ctl_server_free(s);
}

static void over_long_request_is_refused_and_the_server_keeps_serving(void **state)
{
    (void)state;
    char err[256];
    struct sup_ctl_server *s;
    fresh_path();
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    assert_int_equal(serve_until_exit(s, fork_client(client_too_long)), 0);
    sup_ctl_server_free(s);
}

static void other_users_are_refused_unless_their_group_is_allowed(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* needs to become another user */
    char err[256];
    struct sup_ctl_server *s;
    fresh_path();
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    chmod(sockpath, 0666); /* let the file mode through: the check under test is SO_PEERCRED */
    calls = 0;
    assert_int_equal(serve_until_exit(s, fork_client(client_nobody_refused)), 0);
    assert_int_equal(calls, 0);
    sup_ctl_server_allow_gid(s, 65534);
    assert_int_equal(serve_until_exit(s, fork_client(client_nobody_allowed)), 0);
    assert_int_equal(calls, 1);
    sup_ctl_server_free(s);
}

static void random_requests_always_get_an_answer(void **state)
{
    (void)state;
    char err[256];
    struct sup_ctl_server *s;
    fresh_path();
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    assert_int_equal(serve_until_exit(s, fork_client(client_random)), 0);
    sup_ctl_server_free(s);
}

static void client_says_the_daemon_is_not_running(void **state)
{
    (void)state;
    char reply[64], err[256];
    fresh_path();
    assert_int_equal(sup_ctl_request(sockpath, "status", 500, reply, sizeof reply, err, sizeof err),
                     -ENOENT);
    char want[200];
    snprintf(want, sizeof want, "cannot connect to %s: is hamq-supervisor running?", sockpath);
    assert_string_equal(err, want);
    /* a socket file left by a crashed daemon: same clear message */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    assert_int_equal(sup_ctl_request(sockpath, "status", 500, reply, sizeof reply, err, sizeof err),
                     -ECONNREFUSED);
    assert_string_equal(err, want);
    unlink(sockpath);
}

static void stale_socket_is_replaced_but_a_live_one_is_refused(void **state)
{
    (void)state;
    char err[256];
    struct sup_ctl_server *s, *s2;
    fresh_path();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd); /* stale file */
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s, err, sizeof err), 0);
    assert_int_equal(sup_ctl_server_new(sockpath, handler, NULL, &s2, err, sizeof err),
                     -EADDRINUSE);
    assert_non_null(strstr(err, "another hamq-supervisor"));
    sup_ctl_server_free(s);
    assert_int_equal(sup_ctl_server_new("", handler, NULL, &s, err, sizeof err), -ENAMETOOLONG);
}

int main(void)
{
    log_init("test_sup_ctl", LOG_TARGET_STDERR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_round_trip_returns_key_value_lines),
        cmocka_unit_test(commands_are_dispatched_and_errors_come_back_as_text),
        cmocka_unit_test(deferred_answer_is_sent_when_complete_is_called),
        cmocka_unit_test(deferred_request_of_a_departed_client_is_dropped),
        cmocka_unit_test(over_long_request_is_refused_and_the_server_keeps_serving),
        cmocka_unit_test(other_users_are_refused_unless_their_group_is_allowed),
        cmocka_unit_test(random_requests_always_get_an_answer),
        cmocka_unit_test(client_says_the_daemon_is_not_running),
        cmocka_unit_test(stale_socket_is_replaced_but_a_live_one_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
