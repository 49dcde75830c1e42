"""Integration scenario 20: the `hamq` client command against a real broker:
producer -> consumer counts, the browser does not consume, queue stat
matches what was sent and consumed, a consumer that gets fewer messages than
asked exits non-zero, --help on every subcommand, bad flags are refused, and
a failover URL list survives a kill -9 and restart of the broker mid-run."""
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "broker"))
import hamqtest as ht  # noqa: E402

B = None


def broker():
    global B
    if B is None or B.proc.poll() is not None:
        B = ht.Broker(workers=2).start()
        ht.wait_port(B.all_port)
    return B


def url(b=None):
    return "tcp://127.0.0.1:%d" % (b or broker()).all_port


def hamq(*args, timeout=60):
    p = subprocess.run([ht.binary("hamq")] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def uniq(prefix):
    return "%s.%d.%d" % (prefix, os.getpid(), int(time.monotonic() * 1e6))


def stat_rows(u, name):
    rc, out, err = hamq("queue", "stat", "--url", u, "--queueName", name)
    assert rc == 0, err
    lines = [l for l in out.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, [c.strip() for c in l.strip("|").split("|")])) for l in lines[1:]]
    return {r["NAME"]: r for r in rows}


def test_producer_then_consumer_move_exactly_the_asked_messages_with_artemis_output():
    q = "queue://" + uniq("cli")
    rc, out, err = hamq("producer", "--url", url(), "--destination", q, "--message-count", 25)
    assert rc == 0, err
    assert out.startswith("Connection brokerURL = " + url())
    assert "Producer ActiveMQQueue[%s], thread=0 Produced: 25 messages" % q[8:] in out, out
    assert "Elapsed time in milli second :" in out
    rc, out, err = hamq("consumer", "--url", url(), "--destination", q, "--message-count", 25)
    assert rc == 0, err + out
    assert out.count("thread=0 Consumed: 25 messages") == 2, out
    assert "Consumer thread finished" in out
    rc, out, err = hamq("consumer", "--url", url(), "--destination", q, "--message-count", 1,
                        "--receive-timeout", 300)
    assert rc == 1 and "Consumed: 0 messages" in out, (rc, out)


def test_consumer_with_fewer_messages_than_asked_stops_after_the_timeout_and_fails():
    q = "queue://" + uniq("short")
    assert hamq("producer", "--url", url(), "--destination", q, "--message-count", 3)[0] == 0
    t0 = time.monotonic()
    rc, out, err = hamq("consumer", "--url", url(), "--destination", q, "--message-count", 5,
                        "--receive-timeout", 500)
    assert rc == 1, (rc, out, err)
    assert "Consumed: 3 messages" in out and "Expected 5 messages, got 3" in out, out
    assert time.monotonic() - t0 < 20


def test_threads_each_send_and_receive_their_count():
    q = "queue://" + uniq("threads")
    rc, out, err = hamq("producer", "--url", url(), "--destination", q, "--message-count", 10,
                        "--threads", 3, "--non-persistent", "--message-size", 100)
    assert rc == 0, err
    for i in range(3):
        assert "thread=%d Produced: 10 messages" % i in out, out
    rc, out, err = hamq("consumer", "--url", url(), "--destination", q, "--message-count", 15,
                        "--threads", 2)
    assert rc == 0, err + out
    assert "thread=0 Consumed: 15 messages" in out and "thread=1 Consumed: 15 messages" in out


def test_large_messages_on_several_links_are_reassembled_per_link():
    q = "queue://" + uniq("large")
    rc, out, err = hamq("producer", "--url", url(), "--destination", q, "--message-count", 3,
                        "--threads", 2, "--message-size", 300000)
    assert rc == 0, err
    rc, out, err = hamq("consumer", "--url", url(), "--destination", q, "--message-count", 3,
                        "--threads", 2, "--verbose")
    assert rc == 0, (out, err)
    assert "undecodable" not in err, err
    assert sum(1 for l in out.splitlines() if ' Received ' in l) == 6, out[:3000]


def test_browser_shows_messages_without_consuming_them_and_queue_stat_agrees():
    name = uniq("browse")
    q = "queue://" + name
    assert hamq("producer", "--url", url(), "--destination", q, "--message-count", 7)[0] == 0
    rc, out, err = hamq("browser", "--url", url(), "--destination", q, "--message-count", 100,
                        "--receive-timeout", 1000)
    assert rc == 0, err
    assert out.count(" browsing test message: ") == 7, out
    assert "browsed: 7 messages" in out and "Browser thread finished" in out
    row = stat_rows(url(), name)[name]
    assert row["MESSAGE_COUNT"] == "7" and row["MESSAGES_ADDED"] == "7", row
    assert row["ROUTING_TYPE"] == "ANYCAST" and row["ADDRESS"] == name
    rc, out, err = hamq("consumer", "--url", url(), "--destination", q, "--message-count", 4)
    assert rc == 0, err
    row = stat_rows(url(), name)[name]
    assert (row["MESSAGE_COUNT"], row["MESSAGES_ACKED"]) == ("3", "4"), row


def test_topic_destination_reaches_a_waiting_subscriber():
    t = "topic://" + uniq("topic")
    res = {}

    def consume():
        res["c"] = hamq("consumer", "--url", url(), "--destination", t, "--message-count", 5,
                        "--receive-timeout", 5000)

    th = threading.Thread(target=consume)
    th.start()
    time.sleep(1.0)  # the subscription must exist before the messages are sent
    rc, out, err = hamq("producer", "--url", url(), "--destination", t, "--message-count", 5)
    assert rc == 0 and "Producer ActiveMQTopic[" in out, (out, err)
    th.join(30)
    rc, out, err = res["c"]
    assert rc == 0 and "Consumed: 5 messages" in out, (rc, out, err)


def test_every_subcommand_has_help_and_bad_flags_exit_2():
    for args in (["--help"], ["producer", "--help"], ["consumer", "--help"],
                 ["browser", "--help"], ["queue", "--help"], ["queue", "stat", "--help"],
                 ["perf", "--help"], ["perf", "client", "--help"]):
        rc, out, err = hamq(*args)
        assert rc == 0 and "Usage:" in out, (args, rc, out, err)
    for args in (["producer", "--message-count", "ten"], ["consumer", "--bogus"],
                 ["producer", "--destination", "http://x"], ["producer", "--url", "tcp://h:0"],
                 ["queue", "drop"], ["frobnicate"], ["producer", "--threads", "0"]):
        rc, out, err = hamq(*args)
        assert rc == 2 and err, (args, rc, out, err)


def test_no_broker_at_the_url_is_a_clear_error_with_exit_3():
    port = ht.free_offset() + 20000
    rc, out, err = hamq("producer", "--url", "tcp://127.0.0.1:%d" % port, "--message-count", 1,
                        "--reconnect-timeout", 0)
    assert rc == 3 and "Connection failed::" in err, (rc, out, err)


def test_perf_client_prints_rates_and_latency_percentiles():
    rc, out, err = hamq("perf", "client", "--url", url(), "--message-count", 500,
                        "--max-pending", 50, "--persistent", "queue://" + uniq("perf"))
    assert rc == 0, err
    assert "--- SUMMARY" in out and "--- result: success" in out
    assert "--- total received:  500" in out, out
    assert "aggregated send ack time: mean" in out and "99.00%" in out


def test_commit_interval_sends_in_transactions_whose_messages_appear_only_together():
    name = uniq("txn")
    res = {}

    def produce():
        res["p"] = hamq("producer", "--url", url(), "--destination", "queue://" + name,
                        "--message-count", 20, "--commit-interval", 5, "--sleep", 50,
                        timeout=60)

    th = threading.Thread(target=produce)
    th.start()
    seen = []
    deadline = time.monotonic() + 30
    while th.is_alive() and time.monotonic() < deadline:
        row = stat_rows(url(), name).get(name)
        if row:
            seen.append(int(row["MESSAGE_COUNT"]))
        time.sleep(0.02)
    th.join(60)
    rc, out, err = res["p"]
    assert rc == 0, (out, err)
    assert "Produced: 20 messages" in out, out
    assert [l.split("Committing transaction: ")[1] for l in out.splitlines()
            if "Committing transaction:" in l] == ["5", "10", "15", "20"], out
    # a message becomes visible only with its whole transaction: never 1..4, 6..9, ...
    assert len(seen) >= 3 and all(n % 5 == 0 for n in seen), seen
    assert int(stat_rows(url(), name)[name]["MESSAGE_COUNT"]) == 20


def test_commit_interval_with_threads_commits_each_threads_own_transactions():
    name = uniq("tt")  # queue stat cuts names at 25 columns
    rc, out, err = hamq("producer", "--url", url(), "--destination", "queue://" + name,
                        "--message-count", 20, "--threads", 2, "--txt-size", 7)
    assert rc == 0, (out, err)
    for th in range(2):
        mine = [l for l in out.splitlines() if "thread=%d Committing transaction:" % th in l]
        assert [l.rsplit(" ", 1)[1] for l in mine] == ["7", "14", "20"], out
    assert int(stat_rows(url(), name)[name]["MESSAGE_COUNT"]) == 40
    rc, out, err = hamq("consumer", "--url", url(), "--destination", "queue://" + name,
                        "--message-count", 40, "--receive-timeout", 2000)
    assert rc == 0 and "Consumed: 40 messages" in out, (out, err)


def test_a_consumer_whose_close_the_broker_never_answers_fails_and_says_why():
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.all_port)
    q = "queue://" + uniq("unclosed")
    try:
        assert hamq("producer", "--url", url(b), "--destination", q, "--message-count", 5)[0] == 0
        p = subprocess.Popen([ht.binary("hamq"), "consumer", "--url", url(b), "--destination", q,
                              "--message-count", "5", "--sleep", "300"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the 5 messages are with the consumer (credit 5), it works slowly
        os.killpg(b.proc.pid, signal.SIGSTOP)  # the broker hears nothing more
        try:
            out, err = p.communicate(timeout=30)
        finally:
            os.killpg(b.proc.pid, signal.SIGCONT)
        assert p.returncode == 1, (p.returncode, out, err)
        assert "Consumed: 5 messages" in out and "did not answer the close" in err, (out, err)
    finally:
        b.stop()


def test_failover_list_survives_a_kill_9_and_restart_mid_run():
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.all_port)
    dead = ht.free_offset() + 20000
    name = uniq("failover")
    u = "(tcp://127.0.0.1:%d,tcp://127.0.0.1:%d)" % (dead, b.all_port)
    res = {}

    def produce():
        res["p"] = hamq("producer", "--url", u, "--destination", "queue://" + name,
                        "--message-count", 400, "--sleep", 5, timeout=120)

    th = threading.Thread(target=produce)
    th.start()
    try:
        time.sleep(1.0)
        b.kill9()
        time.sleep(0.5)
        b.start()
        ht.wait_port(b.all_port)
        th.join(100)
        rc, out, err = res["p"]
        assert rc == 0, (out, err)
        assert "Produced: 400 messages" in out and "Reconnected to" in err, (out, err)
        rc, out, err = hamq("consumer", "--url", u, "--destination", "queue://" + name,
                            "--message-count", 400, "--receive-timeout", 2000)
        assert rc == 0, (out, err)
    finally:
        b.stop()


if __name__ == "__main__":
    try:
        ht.main({k: v for k, v in globals().items() if k.startswith("test_")})
    finally:
        if B is not None:
            B.stop()
