"""Integration scenario 21: the rest of the `hamq` client command against a real
broker: `queue stat --json` (stable field names, one object per queue),
`--loop --interval --count` (a refreshed table until the count), Artemis'
--field/--operation/--value filter and --maxRows; `perf --threads T` (T
connections, the message count split over them, latency percentiles over all
samples); the progress line only on a terminal; every bad flag, value and URL
refused with a message and a non-zero exit."""
import json
import os
import pty
import random
import re
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "broker"))
import hamqtest as ht  # noqa: E402

B = None
JSON_FIELDS = {"name", "address", "routingType", "durable", "consumerCount", "messageCount",
               "messagesAdded", "deliveringCount", "messagesAcked", "scheduledCount",
               "messagesKilled", "messagesExpired"}


def broker():
    global B
    if B is None or B.proc.poll() is not None:
        B = ht.Broker(workers=2).start()
        ht.wait_port(B.all_port)
    return B


def url():
    return "tcp://127.0.0.1:%d" % broker().all_port


def hamq(*args, timeout=90):
    p = subprocess.run([ht.binary("hamq")] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def uniq(prefix):
    return "%s.%d.%d" % (prefix, os.getpid(), int(time.monotonic() * 1e6))


def produce(name, n):
    rc, out, err = hamq("producer", "--url", url(), "--destination", "queue://" + name,
                        "--message-count", n)
    assert rc == 0, (out, err)


def stat_json(*extra):
    rc, out, err = hamq("queue", "stat", "--url", url(), "--json", *extra)
    assert rc == 0, (out, err)
    assert not out.startswith("Connection brokerURL"), out
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_queue_stat_json_has_one_object_per_queue_with_the_documented_fields():
    name = uniq("json")
    produce(name, 4)
    rc, out, err = hamq("consumer", "--url", url(), "--destination", "queue://" + name,
                        "--message-count", 1)
    assert rc == 0, (out, err)
    doc = stat_json("--queueName", name)
    assert doc["count"] == 1 and len(doc["data"]) == 1, doc
    q = doc["data"][0]
    assert set(q) == JSON_FIELDS, sorted(q)
    assert (q["name"], q["address"], q["routingType"]) == (name, name, "ANYCAST"), q
    assert (q["messageCount"], q["messagesAdded"], q["messagesAcked"]) == (3, 4, 1), q
    assert q["consumerCount"] == 0 and q["deliveringCount"] == 0 and q["scheduledCount"] == 0
    assert q["durable"] is True, q  # auto-created anycast queues are durable
    assert q["messagesKilled"] == 0 and q["messagesExpired"] == 0, q
    assert stat_json("--queueName", uniq("nosuchqueue")) == {"data": [], "count": 0}
    rc, out, err = hamq("queue", "stat", "--help")
    for field in JSON_FIELDS:
        assert field in out, field


def test_queue_stat_json_escapes_names_and_lists_every_matching_queue():
    base = uniq("esc")
    names = [base + '."q"', base + ".back\\slash", base + ".plain"]
    for n in names:
        produce(n, 1)
    doc = stat_json("--queueName", base)
    assert sorted(q["name"] for q in doc["data"]) == sorted(names), doc
    assert doc["count"] == 3


def test_queue_stat_loop_repeats_the_table_count_times_with_artemis_wait_lines():
    name = uniq("loop")
    produce(name, 2)
    t0 = time.monotonic()
    rc, out, err = hamq("queue", "stat", "--url", url(), "--queueName", name, "--loop",
                        "--interval", 200, "--count", 3)
    assert rc == 0, (out, err)
    assert out.count("|NAME") == 3, out
    assert out.count("Waiting 200 before another queue stat iteration") == 2, out
    assert sum(1 for l in out.splitlines() if l.startswith("|" + name[:20])) == 3, out
    assert time.monotonic() - t0 >= 0.4  # two pauses of 200 ms between three iterations


def test_queue_stat_loop_shows_counts_that_change_between_iterations():
    name = uniq("live")
    produce(name, 1)
    p = subprocess.Popen([ht.binary("hamq"), "queue", "stat", "--url", url(), "--json",
                          "--queueName", name, "--interval", "300", "--count", "40"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        assert first["data"][0]["messageCount"] == 1, first
        produce(name, 2)
        seen = None
        for _ in range(39):
            line = p.stdout.readline()
            if not line:
                break
            seen = json.loads(line)["data"][0]["messageCount"]
            if seen == 3:
                break
        assert seen == 3, seen
    finally:
        p.kill()
        p.wait()


def test_queue_stat_loop_reconnects_after_a_broker_kill_9_and_restart():
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.all_port)
    name = uniq("loopfail")
    try:
        rc, out, err = hamq("producer", "--url", "tcp://127.0.0.1:%d" % b.all_port,
                            "--destination", "queue://" + name, "--message-count", 3)
        assert rc == 0, (out, err)
        p = subprocess.Popen([ht.binary("hamq"), "queue", "stat", "--url",
                              "tcp://127.0.0.1:%d" % b.all_port, "--json", "--queueName", name,
                              "--interval", "200", "--count", "25", "--reconnect-timeout", "20000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert json.loads(p.stdout.readline())["data"][0]["messageCount"] == 3
            b.kill9()
            time.sleep(0.5)
            b.start()
            ht.wait_port(b.all_port)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, (out, err)
        assert "Reconnected to" in err, err
        docs = [json.loads(l) for l in out.splitlines()]
        assert len(docs) == 24, out  # 25 iterations in all, none lost to the restart
        assert docs[-1]["data"][0]["messageCount"] == 3, docs[-1]  # persistent: survived
    finally:
        b.stop()


def test_queue_stat_field_filter_and_max_rows_follow_artemis():
    base = uniq("flt")
    produce(base + ".big", 5)
    produce(base + ".small", 2)
    doc = stat_json("--field", "MESSAGE_COUNT", "--operation", "GREATER_THAN", "--value", 3)
    assert all(q["messageCount"] > 3 for q in doc["data"]), doc
    names = {q["name"] for q in doc["data"]}
    assert base + ".big" in names and base + ".small" not in names, names
    doc = stat_json("--field", "messageCount", "--operation", "LESS_THAN", "--value", 3)
    names = {q["name"] for q in doc["data"]}
    assert base + ".small" in names and base + ".big" not in names, names
    doc = stat_json("--field", "NAME", "--operation", "EQUALS", "--value", base + ".big")
    assert [q["name"] for q in doc["data"]] == [base + ".big"], doc
    doc = stat_json("--field", "NAME", "--operation", "NOT_CONTAINS", "--value", base)
    assert not any(q["name"].startswith(base) for q in doc["data"]), doc
    doc = stat_json("--field", "ROUTING_TYPE", "--operation", "EQUALS", "--value", "anycast",
                    "--maxRows", 1)
    assert len(doc["data"]) == 1 and doc["count"] >= 2, doc
    rc, out, err = hamq("queue", "stat", "--url", url(), "--queueName", base, "--maxRows", 1)
    assert rc == 0, err
    assert "WARNING: the displayed queues are 1/2, set maxRows to display more queues." in out
    assert sum(1 for l in out.splitlines() if l.startswith("|" + base[:20])) == 1, out
    rc, out, err = hamq("queue", "stat", "--url", url(), "--queueName", base,
                        "--maxColumnSize", -1)
    assert rc == 0 and ("|%s.small|" % base) in out.replace(" ", ""), out


def test_bad_flags_values_and_urls_are_refused_with_a_message_and_exit_2():
    cases = [
        ["queue", "stat", "--field", "NAME"],
        ["queue", "stat", "--field", "NAME", "--operation", "EQUALS", "--value", "x",
         "--queueName", "x"],
        ["queue", "stat", "--field", "COLOR", "--operation", "EQUALS", "--value", "x"],
        ["queue", "stat", "--field", "NAME", "--operation", "LIKE", "--value", "x"],
        ["queue", "stat", "--field", "MESSAGE_COUNT", "--operation", "LESS_THAN",
         "--value", "many"],
        ["queue", "stat", "--count", "3"],
        ["queue", "stat", "--interval", "0"],
        ["queue", "stat", "--maxRows", "0"],
        ["queue", "stat", "--maxColumnSize", "2"],
        ["queue", "stat", "--threads", "2"],
        ["queue", "stat", "extra"],
        ["queue"], ["perf"], ["perf", "both"], ["queue", "list"],
        ["producer", "--json"], ["consumer", "--message-size", "10"],
        ["browser", "--persistent"], ["perf", "client", "--destination", "queue://x"],
        ["perf", "client", "queue://a", "queue://b"],
        ["perf", "producer", "--threads", "65"], ["perf", "client", "--rate", "-1"],
        ["consumer", "--receive-timeout", "-2"], ["producer", "--url"],
        ["producer", "--url", ""], ["producer", "--url", "()"],
        ["producer", "--url", "(tcp://a:1"], ["producer", "--url", "http://a:1"],
        ["producer", "--url", "tcp://a:99999"], ["producer", "--url", "tcp://a:port"],
        ["producer", "--url", "(" + ",".join("tcp://a:%d" % p for p in range(1, 10)) + ")"],
        ["producer", "--protocol", "openwire"], ["producer", "--destination", "queue://"],
        ["producer", "--url", "tcp://"], ["producer", "--url", "(tcp://a:1,,tcp://b:2)"],
        ["producer", "--url", "tcp://[::1"], ["producer", "--url", "tcp://[::1]x"],
        ["help", "frobnicate"], [],
    ]
    for args in cases:
        rc, out, err = hamq(*args)
        assert rc == 2, (args, rc, out, err)
        assert err.strip() and "hamq" in err, (args, err)
        assert "Segmentation" not in err and "Sanitizer" not in err, (args, err)


def test_every_flag_a_help_text_names_is_accepted_by_that_subcommand():
    values = {"protocol": "amqp", "operation": "EQUALS", "field": "NAME"}
    for cmd in (["producer"], ["consumer"], ["browser"], ["queue", "stat"], ["perf", "client"],
                ["perf", "producer"], ["perf", "consumer"]):
        rc, text, err = hamq(*cmd, "--help")
        flags = set(re.findall(r"(?<![\w-])--([a-zA-Z][\w-]*)", text)) - {"help"}
        assert len(flags) >= 5, (cmd, flags)
        for f in sorted(flags):
            rc, out, err = hamq(*cmd, "--%s=%s" % (f, values.get(f, "1")), "--help")
            if "doesn't allow an argument" in err:
                rc, out, err = hamq(*cmd, "--" + f, "--help")
            assert rc == 0 and out.startswith("Usage:"), (cmd, f, rc, err)


def test_an_ipv6_url_in_brackets_reaches_the_broker_or_fails_to_connect_not_to_parse():
    rc, out, err = hamq("producer", "--url", "tcp://[::1]:%d" % broker().all_port,
                        "--message-count", 1, "--destination", "queue://" + uniq("v6"),
                        "--reconnect-timeout", 0)
    assert rc in (0, 3), (rc, out, err)  # 3 where the broker listens on IPv4 only
    assert rc == 0 or "Connection failed::::1:" in err, err


def test_a_selector_the_broker_refuses_fails_the_consumer_and_the_browser():
    name = uniq("sel")
    produce(name, 2)
    for cmd in ("consumer", "browser"):
        rc, out, err = hamq(cmd, "--url", url(), "--destination", "queue://" + name,
                            "--filter", "((", "--message-count", 2, "--receive-timeout", 500)
        assert rc == 1 and "link closed by the broker: amqp:invalid-field" in err, (cmd, rc, err)
    assert stat_json("--queueName", name)["data"][0]["messageCount"] == 2


def test_a_port_that_does_not_speak_amqp_is_a_connection_error_with_exit_3():
    stomp = "tcp://127.0.0.1:%d" % broker().stomp_port
    for cmd in (["producer", "--message-count", 1], ["queue", "stat"],
                ["perf", "client", "--threads", 2, "--message-count", 10]):
        rc, out, err = hamq(*cmd, "--url", stomp, "--reconnect-timeout", 0)
        assert rc == 3 and "Connection failed::" in err, (cmd, rc, out, err)
        assert "--- result: success" not in out, out


def test_an_unknown_host_is_a_connection_error_with_exit_3():
    for cmd in (["producer", "--message-count", 1], ["consumer"], ["browser"],
                ["queue", "stat"], ["perf", "client", "--message-count", 1]):
        rc, out, err = hamq(*cmd, "--url", "tcp://no-such-host.invalid:61616",
                            "--reconnect-timeout", 0)
        assert rc == 3 and "Connection failed::" in err, (cmd, rc, out, err)


def test_every_subcommand_help_names_its_flags_and_exits_0():
    expect = {
        ("producer",): ["--destination", "--message-count", "--threads", "--message-size",
                        "--non-persistent", "--url"],
        ("consumer",): ["--receive-timeout", "--break-on-null", "--filter", "--threads"],
        ("browser",): ["--destination", "--receive-timeout", "--filter"],
        ("queue", "stat"): ["--json", "--loop", "--interval", "--count", "--field",
                            "--maxRows", "--queueName"],
        ("perf", "client"): ["--threads", "--duration", "--message-count", "--max-pending"],
    }
    for cmd, flags in expect.items():
        rc, out, err = hamq(*cmd, "--help")
        assert rc == 0 and out.startswith("Usage:"), (cmd, rc, out, err)
        for f in flags:
            assert f in out, (cmd, f)


def summary_figures(out):
    """--- total X: N lines and the aggregated percentile lines of a perf summary."""
    fig = {}
    for line in out.splitlines():
        m = re.match(r"--- total (\w+): +(\d+)", line)
        if m:
            fig[m.group(1)] = int(m.group(2))
        m = re.match(r"--- aggregated (.+?): mean (\d+) us(.*) - samples: (\d+)$", line)
        if m:
            pct = [int(v) for v in re.findall(r"%: (\d+) us", m.group(3))]
            mx = int(re.search(r"max: (\d+) us", m.group(3)).group(1))
            fig[m.group(1)] = {"mean": int(m.group(2)), "pct": pct, "max": mx,
                               "samples": int(m.group(4))}
    return fig


def hamq_pid_sockets(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def test_perf_client_threads_split_the_total_and_merge_every_threads_latencies():
    name = uniq("pthreads")
    rc, out, err = hamq("perf", "client", "--url", url(), "--threads", 3, "--message-count", 301,
                        "--max-pending", 10, "--persistent", "queue://" + name)
    assert rc == 0, (out, err)
    assert "--- threads: 3 producers, 3 consumers (one connection each)" in out, out
    fig = summary_figures(out)
    assert (fig["sent"], fig["completed"], fig["received"]) == (301, 301, 301), out
    for what in ("send ack time", "transfer time"):
        f = fig[what]
        assert f["samples"] == 301, (what, f)  # every thread's samples, merged
        assert f["pct"] == sorted(f["pct"]) and f["pct"][-1] <= f["max"], f
    q = stat_json("--queueName", name)["data"][0]
    assert (q["messagesAdded"], q["messagesAcked"], q["messageCount"]) == (301, 301, 0), q
    rc, out, err = hamq("perf", "client", "--url", url(), "--threads", 3, "--message-count", 2,
                        "queue://" + name + ".few")
    fig = summary_figures(out)
    assert rc == 0 and (fig["sent"], fig["received"]) == (2, 2), (out, err)


def test_perf_client_with_random_threads_counts_sizes_and_windows_moves_exact_totals():
    seed = int(os.environ.get("HAMQ_TEST_SEED", int(time.time())))
    rnd = random.Random(seed)
    for i in range(5):
        threads, count = rnd.randint(1, 5), rnd.randint(1, 400)
        topic = rnd.random() < 0.3
        args = ["--threads", threads, "--message-count", count,
                "--max-pending", rnd.randint(0, 30), "--message-size", rnd.randint(0, 20000)]
        if rnd.random() < 0.5:
            args.append("--persistent")
        dest = ("topic://" if topic else "queue://") + uniq("prand%d" % i)
        rc, out, err = hamq("perf", "client", "--url", url(), *args, dest)
        why = (seed, args, dest, out[-800:], err)
        assert rc == 0, why
        fig = summary_figures(out)
        assert (fig["sent"], fig["completed"]) == (count, count), why
        assert fig["received"] == count * (threads if topic else 1), why
        assert fig["send ack time"]["samples"] == count, why
        assert fig["transfer time"]["samples"] == fig["received"], why


def test_perf_consumer_threads_stop_at_exactly_the_total_and_leave_the_rest():
    name = uniq("pcons")
    rc, out, err = hamq("perf", "producer", "--url", url(), "--threads", 3, "--message-count", 13,
                        "queue://" + name)
    assert rc == 0 and summary_figures(out)["completed"] == 13, (out, err)
    rc, out, err = hamq("perf", "consumer", "--url", url(), "--threads", 3, "--message-count", 10,
                        "queue://" + name)
    assert rc == 0, (out, err)
    assert summary_figures(out)["received"] == 10, out
    q = stat_json("--queueName", name)["data"][0]
    assert (q["messagesAcked"], q["messageCount"], q["deliveringCount"]) == (10, 3, 0), q


def wait_links(p, name, consumers, sockets=None):
    """(consumers the broker counts on queue name, sockets process p holds) once both
    reach what is expected, or as they were after 10 s or when p ended."""
    got = (None, None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and p.poll() is None:
        doc = stat_json("--queueName", name)
        got = (doc["data"][0]["consumerCount"] if doc["data"] else 0, hamq_pid_sockets(p.pid))
        if got == (consumers, sockets if sockets is not None else consumers):
            break
        time.sleep(0.1)
    return got


def test_perf_threads_open_one_connection_each_and_a_consumer_each():
    name = uniq("pconn")
    p = subprocess.Popen([ht.binary("hamq"), "perf", "consumer", "--url", url(), "--threads", "3",
                          "--duration", "3", "queue://" + name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_links(p, name, 3) == (3, 3)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0 and "--- total received:  0" in out, (out, err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_perf_client_gives_producers_and_consumers_their_own_connections_like_artemis():
    name = uniq("pcliconn")
    p = subprocess.Popen([ht.binary("hamq"), "perf", "client", "--url", url(), "--threads", "2",
                          "--rate", "20", "--duration", "3", "queue://" + name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_links(p, name, 2, 4) == (2, 4)
        out, err = p.communicate(timeout=30)
        fig = summary_figures(out)
        assert p.returncode == 0 and fig["sent"] == fig["received"] > 0, (out, err)
        assert "--- threads: 2 producers, 2 consumers (one connection each)" in out, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_perf_client_threads_on_a_topic_give_every_subscriber_every_message():
    rc, out, err = hamq("perf", "client", "--url", url(), "--threads", 2, "--message-count", 100,
                        "topic://" + uniq("ptopic"))
    assert rc == 0, (out, err)
    fig = summary_figures(out)
    assert (fig["sent"], fig["received"]) == (100, 200), out


def test_producer_and_consumer_threads_count_per_thread_like_artemis():
    name = uniq("msgthreads")
    rc, out, err = hamq("producer", "--url", url(), "--destination", "queue://" + name,
                        "--threads", 3, "--message-count", 10)
    assert rc == 0 and out.count(" Produced: 10 messages") == 3, (out, err)
    q = stat_json("--queueName", name)["data"][0]
    assert (q["messagesAdded"], q["messageCount"]) == (30, 30), q  # 3 threads x 10
    rc, out, err = hamq("consumer", "--url", url(), "--destination", "queue://" + name,
                        "--threads", 3, "--message-count", 10)
    assert rc == 0, (out, err)
    assert out.count(" Consumed: 10 messages") == 6, out  # Artemis prints it twice a thread
    q = stat_json("--queueName", name)["data"][0]
    assert (q["messagesAcked"], q["messageCount"]) == (30, 0), q


def run_on_a_terminal(argv, timeout=30):
    """Runs argv with stdout on a pseudo-terminal; returns (exit code, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif p.poll() is not None:
            break
    os.close(master)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return p.returncode, b"".join(chunks).decode(errors="replace")


def test_perf_progress_line_only_on_a_terminal():
    args = ["perf", "client", "--url", url(), "--duration", "2", "--rate", "200",
            "--show-latency", "--threads", "2", "queue://" + uniq("ptty")]
    rc, out = run_on_a_terminal([ht.binary("hamq")] + args)
    assert rc == 0, out
    assert re.search(r"\r\[ +[12] s\] sent +\d+/s +completed +\d+/s +received +\d+/s", out), out
    assert "--- sent:" not in out and "--- send ack time:" not in out, out
    assert "--- SUMMARY" in out and "--- aggregated send ack time:" in out, out
    rc, out, err = hamq(*args)
    assert rc == 0, (out, err)
    assert "\r" not in out and "--- sent:" in out and "--- warmup false" in out, out
    # --show-latency: per-second percentiles of both threads' new samples, then the whole run
    per_second = [int(m) for m in re.findall(r"^--- send ack time: .* samples: (\d+)$", out, re.M)]
    total = summary_figures(out)["send ack time"]["samples"]
    assert per_second and sum(per_second) <= total, (per_second, total, out)


if __name__ == "__main__":
    try:
        ht.main({k: v for k, v in globals().items() if k.startswith("test_")})
    finally:
        if B is not None:
            B.stop()
