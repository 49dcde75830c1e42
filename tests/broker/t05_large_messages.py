"""Integration scenario 05: large messages. A 20 MiB persistent message (twice the
journal segment) is receipted, survives a kill -9 of the whole broker and a restart,
and arrives intact; its body lives in <store>/large-messages/ and is deleted once
acknowledged. A message over [broker] max_message_size gets a clear ERROR, and a
configuration that cannot work is refused at start naming the key.
Real hamq-journal --spawn-workers, real python3-stomp."""
import glob
import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamqtest as ht  # noqa: E402

MIB = 1 << 20


def uniq(prefix):
    return "%s.%d.%d" % (prefix, os.getpid(), int(time.monotonic() * 1e6))


def text_body(n, seed):
    """n ASCII bytes that differ everywhere (a shifted or truncated copy would not match)."""
    out, i = [], 0
    size = 0
    while size < n:
        h = hashlib.sha256(b"%s-%d" % (seed.encode(), i)).hexdigest()
        out.append(h)
        size += len(h)
        i += 1
    return "".join(out)[:n]


def large_files(b):
    return glob.glob(os.path.join(b.store, "large-messages", "*.msg"))


def write_config(text):
    path = os.path.join(ht.workdir(), "hamq.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_a_20_mib_persistent_message_survives_kill9_and_arrives_intact():
    b = ht.Broker(workers=1).start()
    try:
        q = "/queue/" + uniq("large")
        body = text_body(20 * MIB, q)
        p = ht.stomp_conn(b.stomp_port)
        p.send(q, body, headers={"persistent": "true", "receipt": "big"})
        p.collector.wait(lambda: "big" in p.collector.receipts, timeout=60, what="receipt")
        p.send(q, "small after it", headers={"persistent": "true", "receipt": "small"})
        p.collector.wait(lambda: "small" in p.collector.receipts, what="receipt")
        assert not p.collector.errors, [e.body for e in p.collector.errors]
        assert len(large_files(b)) == 1, large_files(b)
        b.kill9()
        b.start()
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe(q, id="1", ack="client-individual")
        msgs = c.collector.wait_messages(2, timeout=60)
        assert len(msgs[0].body) == len(body), (len(msgs[0].body), len(body))
        assert msgs[0].body == body, "the body changed"
        assert msgs[1].body == "small after it"
        assert len(large_files(b)) == 1  # still referenced until acknowledged
        for m in msgs:
            c.ack(m.headers["ack"], receipt="a" + m.headers["ack"])
        c.collector.wait(lambda: len(c.collector.receipts) == 2, what="ack receipts")
        deadline = time.monotonic() + 10
        while large_files(b) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not large_files(b), "the acknowledged message's file was not deleted"
        c.disconnect()
    finally:
        b.stop()


def test_large_message_size_sends_smaller_bodies_to_their_own_file():
    conf = write_config("[journal]\nlarge_message_size = 16K\n")
    b = ht.Broker(workers=1, config=conf).start()
    try:
        q = "/queue/" + uniq("largeconf")
        ldir = os.path.join(b.store, "large-messages")
        p = ht.stomp_conn(b.stomp_port)
        p.send(q, "s" * 1000, headers={"persistent": "true", "receipt": "small"})
        p.send(q, "L" * 40000, headers={"persistent": "true", "receipt": "big"})
        p.collector.wait(lambda: {"small", "big"} <= set(p.collector.receipts), what="receipts")
        p.disconnect()
        assert len(os.listdir(ldir)) == 1, os.listdir(ldir)  # only the 40 KB body
        b.kill9()
        b.start()
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe(q, id="1", ack="client-individual")
        got = c.collector.wait_messages(2)
        assert [len(m.body) for m in got] == [1000, 40000]
        for m in got:
            c.ack(m.headers["ack"], receipt="ack-" + m.headers["ack"])
        c.collector.wait(lambda: len(c.collector.receipts) >= 2, what="ack receipts")
        c.disconnect()
        deadline = time.monotonic() + 10
        while os.listdir(ldir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.listdir(ldir), "the large file stays after its message was acked"
    finally:
        b.stop()


def test_a_message_over_max_message_size_gets_a_clear_error():
    conf = write_config("[broker]\nmax_message_size = 64K\n")
    b = ht.Broker(workers=1, config=conf).start()
    try:
        q = "/queue/" + uniq("toolarge")
        p = ht.stomp_conn(b.stomp_port)
        p.send(q, "x" * (64 * 1024 + 1), headers={"persistent": "true", "receipt": "r"})
        p.collector.wait(lambda: p.collector.errors, what="an ERROR frame")
        e = p.collector.errors[0]
        text = e.headers.get("message", "") + " " + e.body
        assert "exceeds the maximum message size" in text and "65536" in text, text
        assert "r" not in p.collector.receipts
        # the broker is still fine for others
        o = ht.stomp_conn(b.stomp_port)
        o.send(q, "y" * 1000, headers={"persistent": "true", "receipt": "ok"})
        o.collector.wait(lambda: "ok" in o.collector.receipts, what="receipt")
        o.disconnect()
    finally:
        b.stop()


def test_a_ring_size_that_cannot_work_is_refused_at_start_naming_the_key():
    conf = write_config("[broker]\nring_size = 96K\n")
    b = ht.Broker(workers=1, config=conf)
    r = subprocess.run(b.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    out = r.stdout.decode(errors="replace")
    assert r.returncode != 0, out
    assert "ring_size" in out and "power of two" in out, out


if __name__ == "__main__":
    ht.main(globals())
