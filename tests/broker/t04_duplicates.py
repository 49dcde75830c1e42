"""Integration scenario 04: duplicate detection survives a crash. A producer sends
with `_AMQ_DUPL_ID` and a receipt, the whole broker is killed with SIGKILL and
restarted on the same store, the producer resends the same id: the resend is
receipted but the queue holds one copy, also when the first copy was consumed and
acknowledged before the crash. Real hamq-journal --spawn-workers, real python3-stomp."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamqtest as ht  # noqa: E402


def uniq(prefix):
    return "%s.%d.%d" % (prefix, os.getpid(), int(time.monotonic() * 1e6))


def send(conn, q, body, dup_id, receipt):
    headers = {"persistent": "true", "receipt": receipt}
    if dup_id is not None:
        headers["_AMQ_DUPL_ID"] = dup_id
    conn.send(q, body, headers=headers)
    conn.collector.wait(lambda: receipt in conn.collector.receipts, what="receipt " + receipt)
    assert not conn.collector.errors, [e.body for e in conn.collector.errors]


def drain(port, q, expect, settle=0.7):
    """Subscribes, waits for `expect` messages, then a little longer; returns bodies."""
    c = ht.stomp_conn(port)
    c.subscribe(q, id="1", ack="client-individual")
    if expect:
        c.collector.wait_messages(expect)
    time.sleep(settle)  # anything beyond `expect` would arrive now
    bodies = [m.body for m in c.collector.messages]
    for m in c.collector.messages:
        c.ack(m.headers["ack"])
    c.disconnect()
    return bodies


def test_a_resend_after_kill9_is_receipted_but_the_queue_holds_one_copy():
    b = ht.Broker(workers=1).start()
    try:
        q = "/queue/" + uniq("dup")
        p = ht.stomp_conn(b.stomp_port)
        send(p, q, "first", "order-1", "r1")
        b.kill9()
        b.start()
        p = ht.stomp_conn(b.stomp_port)
        send(p, q, "resent", "order-1", "r2")  # receipted...
        send(p, q, "other", "order-2", "r3")   # a new id is still enqueued
        p.disconnect()
        assert drain(b.stomp_port, q, 2) == ["first", "other"]  # ...but not enqueued again
    finally:
        b.stop()


def test_a_resend_is_detected_after_the_first_copy_was_consumed_and_acked():
    b = ht.Broker(workers=1).start()
    try:
        q = "/queue/" + uniq("dupacked")
        p = ht.stomp_conn(b.stomp_port)
        send(p, q, "first", "pay-7", "r1")
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe(q, id="1", ack="client-individual")
        m = c.collector.wait_messages(1)[0]
        assert m.body == "first"
        c.ack(m.headers["ack"], receipt="acked")
        c.collector.wait(lambda: "acked" in c.collector.receipts, what="ack receipt")
        b.kill9()
        b.start()
        p = ht.stomp_conn(b.stomp_port)
        send(p, q, "resent", "pay-7", "r2")
        send(p, q, "marker", None, "r3")
        p.disconnect()
        assert drain(b.stomp_port, q, 1) == ["marker"]
    finally:
        b.stop()


def test_ids_survive_two_crashes_in_a_row_and_each_address_has_its_own_ids():
    b = ht.Broker(workers=1).start()
    try:
        q1, q2 = "/queue/" + uniq("dupa"), "/queue/" + uniq("dupb")
        p = ht.stomp_conn(b.stomp_port)
        for i in range(20):
            send(p, q1, "a%d" % i, "id-%d" % i, "ra%d" % i)
        b.kill9()
        b.start()
        b.kill9()  # a second crash right after a recovery (ids restored, not rewritten)
        b.start()
        p = ht.stomp_conn(b.stomp_port)
        for i in range(20):
            send(p, q1, "again%d" % i, "id-%d" % i, "rb%d" % i)
        send(p, q2, "same id, other address", "id-0", "rc")
        p.disconnect()
        assert drain(b.stomp_port, q1, 20) == ["a%d" % i for i in range(20)]
        assert drain(b.stomp_port, q2, 1) == ["same id, other address"]
    finally:
        b.stop()


def test_a_duplicate_id_longer_than_1024_bytes_gets_a_clear_error():
    b = ht.Broker(workers=1).start()
    try:
        q = "/queue/" + uniq("duplong")
        p = ht.stomp_conn(b.stomp_port)
        p.send(q, "x", headers={"persistent": "true", "receipt": "r", "_AMQ_DUPL_ID": "k" * 1025})
        p.collector.wait(lambda: p.collector.errors, what="an ERROR frame")
        err = p.collector.errors[0]
        text = err.headers.get("message", "") + err.body
        assert "duplicate id" in text and "1024" in text, text
    finally:
        b.stop()


def test_id_cache_size_bounds_the_ids_kept_per_address_also_after_a_restart():
    path = os.path.join(ht.workdir(), "hamq.conf")
    with open(path, "w") as f:
        f.write("[broker]\nid_cache_size = 2\n")
    b = ht.Broker(workers=1, config=path).start()
    try:
        q = "/queue/" + uniq("dupcache")
        p = ht.stomp_conn(b.stomp_port)
        for i in (1, 2, 3):  # the cache keeps the newest two: id-1 falls out
            send(p, q, "m%d" % i, "id-%d" % i, "r%d" % i)
        b.kill9()
        b.start()
        p = ht.stomp_conn(b.stomp_port)
        send(p, q, "again1", "id-1", "a1")  # forgotten: enqueued again
        send(p, q, "again3", "id-3", "a3")  # still known: dropped
        p.disconnect()
        assert drain(b.stomp_port, q, 4) == ["m1", "m2", "m3", "again1"]
    finally:
        b.stop()


if __name__ == "__main__":
    ht.main(globals())
