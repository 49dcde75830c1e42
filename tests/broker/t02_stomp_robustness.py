"""Integration scenario 02: a real broker under crashes and bad clients —
kill -9 of the core and of a worker, garbage, limit violations, silent
clients. The broker must lose nothing it acknowledged and keep serving."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamqtest as ht  # noqa: E402


raw = ht.raw


def still_serves(b):
    q = "/queue/alive.%d" % time.monotonic_ns()
    c = ht.stomp_conn(b.stomp_port)
    c.subscribe(q, id="1", ack="auto", headers={"receipt": "s"})
    c.collector.wait(lambda: "s" in c.collector.receipts)
    c.send(q, "ping")
    assert c.collector.wait_messages(1)[0].body == "ping"
    c.disconnect()


def test_receipted_persistent_messages_survive_kill_9_of_the_whole_broker():
    b = ht.Broker(workers=2).start()
    q = "/queue/crash"
    p = ht.stomp_conn(b.stomp_port)
    sent = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set() and i < 200000:
            try:
                p.send(q, "m%06d" % i, headers={"persistent": "true", "receipt": "r%d" % i})
            except Exception:
                return
            sent.append(i)
            i += 1
            if i % 50 == 0:
                time.sleep(0.001)

    t = threading.Thread(target=produce)
    t.start()
    p.collector.wait(lambda: len(p.collector.receipts) > 300, timeout=30, what="300 receipts")
    b.kill9()
    stop.set()
    t.join(10)
    receipted = {int(r[1:]) for r in p.collector.receipts}
    assert len(receipted) > 300
    b.start()
    c = ht.stomp_conn(b.stomp_port)
    c.subscribe(q, id="1", ack="client-individual", headers={"consumer-window-size": "-1"})
    try:
        c.collector.wait(lambda: len(c.collector.messages) >= len(receipted), timeout=60,
                         what="%d receipted messages after restart" % len(receipted))
    except AssertionError:
        got = {int(m.body[1:]) for m in c.collector.messages}
        raise AssertionError("got %d of %d receipted; missing %s" % (
            len(got), len(receipted), sorted(receipted - got)[:20]))
    time.sleep(0.5)
    got = [int(m.body[1:]) for m in c.collector.messages]
    missing = receipted - set(got)
    assert not missing, "receipted but lost: %s" % sorted(missing)[:10]
    assert got == sorted(got), "order broken after restart"
    for m in c.collector.messages:
        assert m.body == "m%06d" % int(m.body[1:])
    c.disconnect()
    b.stop()


def test_kill_9_of_a_worker_keeps_the_broker_serving_and_loses_nothing():
    b = ht.Broker(workers=2).start()
    q = "/queue/wkill"
    p = ht.stomp_conn(b.stomp_port)
    for i in range(50):
        p.send(q, "w%d" % i, headers={"persistent": "true", "receipt": "r%d" % i})
    p.collector.wait(lambda: len(p.collector.receipts) == 50)
    p.disconnect()
    workers = subprocess.run(["pgrep", "-P", str(b.proc.pid), "hamq-worker"],
                             capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    os.kill(int(workers[0]), signal.SIGKILL)
    # Clients keep being served (the other worker, then the restarted one).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            still_serves(b)
            break
        except Exception:
            time.sleep(0.1)
    still_serves(b)
    c = ht.stomp_conn(b.stomp_port)
    c.subscribe(q, id="1", ack="client-individual")
    c.collector.wait_messages(50)
    assert sorted(m.body for m in c.collector.messages) == sorted("w%d" % i for i in range(50))
    c.disconnect()
    ht.Collector().wait(lambda: "restarting it" in b.log_text(), what="restart logged")
    b.stop()


def test_a_consumer_of_a_killed_worker_gets_its_messages_redelivered_elsewhere():
    b = ht.Broker(workers=2).start()
    q = "/queue/wredeliver"
    p = ht.stomp_conn(b.stomp_port)
    for i in range(10):
        p.send(q, "x%d" % i, headers={"receipt": "r%d" % i})
    p.collector.wait(lambda: len(p.collector.receipts) == 10)
    # A consumer takes everything without acking; then its worker dies.
    holder = None
    for _ in range(20):
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe(q, id="1", ack="client-individual")
        c.collector.wait_messages(10)
        holder = c
        break
    wpids = subprocess.run(["pgrep", "-P", str(b.proc.pid), "hamq-worker"],
                           capture_output=True, text=True).stdout.split()
    for w in wpids:
        os.kill(int(w), signal.SIGKILL)   # whichever worker holds the consumer
    holder.collector.wait(lambda: holder.collector.disconnected or not holder.is_connected(),
                          what="the client to see its connection closed")
    deadline = time.monotonic() + 15
    got = []
    while time.monotonic() < deadline and len(got) < 10:
        try:
            d = ht.stomp_conn(b.stomp_port)
            d.subscribe(q, id="1", ack="client-individual")
            d.collector.wait_messages(10, timeout=5)
            got = d.collector.messages
            assert all(m.headers.get("redelivered") == "true" for m in got)
            d.disconnect()
        except Exception:
            time.sleep(0.2)
    assert sorted(m.body for m in got) == sorted("x%d" % i for i in range(10))
    b.stop()


def test_workers_close_client_connections_when_the_core_dies():
    b = ht.Broker(workers=2).start()
    c = ht.stomp_conn(b.stomp_port)
    os.kill(b.proc.pid, signal.SIGKILL)   # the core only; workers must notice
    c.collector.wait(lambda: c.collector.disconnected, timeout=10,
                     what="client disconnected after the core died")
    # The workers exit too (nothing left to serve).
    ht.Collector().wait(lambda: not subprocess.run(
        ["pgrep", "-f", "hamq-worker.*--instance %s" % b.instance],
        capture_output=True).stdout, timeout=10, what="workers to exit")
    b.proc.wait()


def test_garbage_bytes_get_an_error_and_the_broker_keeps_serving():
    with ht.Broker(workers=1) as b:
        out, closed = raw(b.stomp_port, b"\x00\xff\xfeGARBAGE\n\n\x00" * 10)
        assert b"ERROR" in out and closed, out[:200]
        out, closed = raw(b.all_port, os.urandom(4096))
        assert closed
        still_serves(b)


def test_frame_before_connect_is_refused_with_an_error():
    with ht.Broker(workers=1) as b:
        out, closed = raw(b.stomp_port, b"SEND\ndestination:/queue/x\n\nhi\x00")
        assert out.startswith(b"ERROR") and closed, out[:200]
        still_serves(b)


def test_too_many_headers_gets_an_error_naming_the_limit_then_close():
    with ht.Broker(workers=1) as b:
        hdrs = b"".join(b"h%d:v\n" % i for i in range(5000))
        out, closed = raw(b.stomp_port, b"CONNECT\naccept-version:1.2\nhost:x\n\n\x00"
                          b"SEND\ndestination:/queue/x\n" + hdrs + b"\nbody\x00")
        assert b"ERROR" in out and closed, out[-300:]
        assert b"header" in out.split(b"ERROR", 1)[1].lower(), out[-300:]
        still_serves(b)


def test_body_over_max_message_size_gets_an_error_naming_the_limit():
    conf = os.path.join(ht.workdir(), "small.conf")
    with open(conf, "w") as f:
        f.write("[broker]\nmax_message_size = 64K\n")
    with ht.Broker(workers=1, config=conf) as b:
        body = b"x" * 100000
        out, closed = raw(b.stomp_port, b"CONNECT\naccept-version:1.2\nhost:x\n\n\x00"
                          b"SEND\ndestination:/queue/x\ncontent-length:%d\n\n" % len(body) +
                          body + b"\x00")
        assert b"ERROR" in out and closed, out[-300:]
        still_serves(b)


def test_half_frame_then_disconnect_leaves_the_broker_serving():
    with ht.Broker(workers=1) as b:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", b.stomp_port))
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\x00SEND\ndestination:/qu")
            s.close()
        still_serves(b)


def test_silent_client_is_closed_after_its_heart_beats_stop():
    with ht.Broker(workers=1) as b:
        s = socket.create_connection(("127.0.0.1", b.stomp_port), timeout=60)
        # We promise a heart-beat every 200 ms, then send nothing.
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:200,0\n\n\x00")
        t0 = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        took = time.monotonic() - t0
        assert data.startswith(b"CONNECTED"), data[:100]
        # The broker answers heart-beat:sx,sy; it expects ours every max(200, sy) ms and
        # gives up after twice that (plus its timer's granularity).
        hb = [l for l in data.split(b"\n") if l.startswith(b"heart-beat:")][0]
        sy = int(hb.split(b":")[1].split(b",")[1])
        expect = 2 * max(200, sy) / 1000.0
        assert sy > 0, "the broker asked for no heart-beats"
        assert expect * 0.9 <= took <= expect + 3, "closed after %.1fs, expected ~%.1fs" % (
            took, expect)
        still_serves(b)


def test_many_queued_messages_are_all_delivered_none_dropped():
    with ht.Broker(workers=2) as b:
        q = "/queue/flood"
        p = ht.stomp_conn(b.stomp_port)
        n = 20000
        for i in range(n):
            p.send(q, "f%d" % i)
        p.send(q, "last", headers={"receipt": "done"})
        p.collector.wait(lambda: "done" in p.collector.receipts, timeout=60)
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe(q, id="1", ack="auto")
        c.collector.wait(lambda: len(c.collector.messages) == n + 1, timeout=60,
                         what="%d messages" % (n + 1))
        bodies = [m.body for m in c.collector.messages]
        assert bodies[:-1] == ["f%d" % i for i in range(n)]
        c.disconnect()
        p.disconnect()


def test_producer_is_blocked_at_max_memory_and_resumes_without_losing_a_message():
    conf = os.path.join(ht.workdir(), "flow.conf")
    with open(conf, "w") as f:
        # A small ring too: what the worker has already put in the ring when the core
        # blocks producers still gets in (a ring's worth of slack per worker).
        f.write("[broker]\nmax_memory = 1M\nring_size = 256K\n")
    with ht.Broker(workers=1, config=conf) as b:
        q = "/queue/flow"
        p = ht.stomp_conn(b.stomp_port)
        body = "x" * 4000
        n = 1000  # ~4 MB: four times the limit
        t = threading.Thread(target=lambda: [
            p.send(q, "%04d%s" % (i, body), headers={"receipt": "r%d" % i}) for i in range(n)])
        t.daemon = True
        t.start()
        # The producer stalls well before all its messages are receipted.
        time.sleep(2.0)
        stalled_at = len(p.collector.receipts)
        assert stalled_at < n, "no back-pressure: all %d messages were accepted" % n
        time.sleep(1.0)
        assert len(p.collector.receipts) == stalled_at, "receipts kept coming while blocked"
        assert "producers are blocked" in b.log_text()
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe(q, id="1", ack="auto")
        c.collector.wait(lambda: len(c.collector.messages) == n, timeout=60,
                         what="all %d messages after the consumer drained" % n)
        t.join(30)
        p.collector.wait(lambda: len(p.collector.receipts) == n, what="every receipt")
        assert [m.body[:4] for m in c.collector.messages] == ["%04d" % i for i in range(n)]
        assert "producers resume" in b.log_text()
        c.disconnect()
        p.disconnect()


def test_a_second_broker_on_the_same_ports_is_refused_instead_of_sharing_them():
    a = ht.Broker(workers=1).start()
    try:
        b = ht.Broker(workers=1, offset=a.offset)
        b.start(wait=False)
        assert b.proc.wait(15) == 2, "the second broker did not exit with the config code"
        with open(b.log, errors="replace") as f:
            log = f.read()
        assert "already served by another hamq broker" in log, log[-2000:]
        assert not os.path.exists(os.path.join(b.store, "journal")), "the store was touched"
        c = ht.stomp_conn(a.stomp_port)  # the first one still serves
        c.disconnect()
    finally:
        a.stop()


if __name__ == "__main__":
    ht.main(globals())
