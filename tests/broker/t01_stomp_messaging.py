"""Integration scenario 01: STOMP messaging against a real broker (hamq-journal
--spawn-workers 2) with the real python3-stomp client: queues, topics, ack
modes, NACK, DLQ, transactions, receipts, headers, bodies."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamqtest as ht  # noqa: E402

B = None


def broker():
    global B
    if B is None or B.proc.poll() is not None:
        B = ht.Broker(workers=2).start()
    return B


def conn(**kw):
    return ht.stomp_conn(broker().stomp_port, **kw)


def uniq(prefix):
    return "%s.%d.%d" % (prefix, os.getpid(), int(time.monotonic() * 1e6))


def test_anycast_message_reaches_exactly_one_of_two_consumers():
    q = "/queue/" + uniq("any")
    a, b, p = conn(), conn(), conn()
    a.subscribe(q, id="a", ack="auto")
    b.subscribe(q, id="b", ack="auto", headers={"receipt": "sb"})
    b.collector.wait(lambda: "sb" in b.collector.receipts, what="subscribe receipt")
    for i in range(20):
        p.send(q, "m%d" % i, headers={"receipt": "r%d" % i})
    p.collector.wait(lambda: len(p.collector.receipts) == 20, what="20 receipts")
    ht.Collector.wait(a.collector, lambda: len(a.collector.messages) + len(b.collector.messages) >= 20)
    time.sleep(0.2)
    bodies = sorted(m.body for m in a.collector.messages + b.collector.messages)
    assert bodies == sorted("m%d" % i for i in range(20)), bodies
    # round robin: both consumers got some
    assert a.collector.messages and b.collector.messages
    for c in (a, b, p):
        c.disconnect()


def test_topic_message_fans_out_to_every_subscriber():
    t = "/topic/" + uniq("fan")
    subs = [conn() for _ in range(3)]
    for i, s in enumerate(subs):
        s.subscribe(t, id="s", ack="auto", headers={"receipt": "sub"})
        s.collector.wait(lambda: "sub" in s.collector.receipts)
    p = conn()
    p.send(t, "hello all", headers={"receipt": "r"})
    for s in subs:
        msgs = s.collector.wait_messages(1)
        assert msgs[0].body == "hello all"
        assert msgs[0].headers["destination"] == t
    for c in subs + [p]:
        c.disconnect()


def test_receipt_for_persistent_send_arrives_and_message_survives_restart():
    q = "/queue/" + uniq("persist")
    p = conn()
    for i in range(5):
        p.send(q, "p%d" % i, headers={"persistent": "true", "receipt": "r%d" % i})
    p.collector.wait(lambda: len(p.collector.receipts) == 5)
    p.disconnect()
    b = broker()
    assert b.stop() == 0
    b.start()
    c = conn()
    c.subscribe(q, id="1", ack="client-individual")
    msgs = c.collector.wait_messages(5)
    assert [m.body for m in msgs] == ["p%d" % i for i in range(5)]
    for m in msgs:
        c.ack(m.headers["ack"])
    c.disconnect(receipt="bye")


def test_custom_headers_and_content_type_are_carried_end_to_end():
    q = "/queue/" + uniq("hdr")
    p, c = conn(), conn()
    c.subscribe(q, id="1", ack="auto", headers={"receipt": "s"})
    c.collector.wait(lambda: "s" in c.collector.receipts)
    p.send(q, "x", content_type="application/json",
           headers={"color": "blue", "weird": "a:b\\c\nd", "correlation-id": "c-1",
                    "reply-to": "/queue/back"})
    m = c.collector.wait_messages(1)[0]
    assert m.headers["color"] == "blue"
    assert m.headers["weird"] == "a:b\\c\nd", repr(m.headers["weird"])
    assert m.headers["content-type"] == "application/json"
    assert m.headers["correlation-id"] == "c-1"
    assert m.headers["reply-to"] == "/queue/back"
    assert m.headers["subscription"] == "1"
    assert m.headers["message-id"]
    p.disconnect()
    c.disconnect()


def test_binary_body_with_nul_bytes_and_1_mib_body_arrive_intact():
    q = "/queue/" + uniq("bin")
    p, c = conn(auto_decode=False), conn(auto_decode=False)
    c.subscribe(q, id="1", ack="auto", headers={"receipt": "s"})
    c.collector.wait(lambda: "s" in c.collector.receipts)
    small = bytes(range(256)) * 4
    big = os.urandom(1 << 20)
    p.send(q, small, headers={"receipt": "r1"})
    p.send(q, big, headers={"receipt": "r2", "persistent": "true"})
    p.collector.wait(lambda: len(p.collector.receipts) == 2, timeout=30)
    msgs = c.collector.wait_messages(2, timeout=30)
    assert msgs[0].body == small
    assert len(msgs[1].body) == len(big) and msgs[1].body == big
    p.disconnect()
    c.disconnect()


def test_client_ack_is_cumulative_and_unacked_are_redelivered_after_disconnect():
    q = "/queue/" + uniq("cack")
    p = conn()
    for i in range(6):
        p.send(q, "c%d" % i, headers={"receipt": "r%d" % i})
    p.collector.wait(lambda: len(p.collector.receipts) == 6)
    c = conn()
    c.subscribe(q, id="1", ack="client")
    msgs = c.collector.wait_messages(6)
    c.ack(msgs[2].headers["ack"], receipt="acked")  # acks c0..c2
    c.collector.wait(lambda: "acked" in c.collector.receipts)
    c.disconnect()
    d = conn()
    d.subscribe(q, id="2", ack="client-individual")
    again = d.collector.wait_messages(3)
    time.sleep(0.3)
    assert [m.body for m in d.collector.messages] == ["c3", "c4", "c5"]
    assert again[0].headers.get("redelivered") == "true"
    assert int(again[0].headers.get("redelivery-count", "0")) >= 1
    for m in again:
        d.ack(m.headers["ack"])
    d.disconnect(receipt="bye")
    p.disconnect()


def test_nack_redelivers_with_count_raised_then_dead_letters_after_max_attempts():
    name = uniq("nack")
    q = "/queue/" + name
    p = conn()
    p.send(q, "poison", headers={"receipt": "r"})
    p.collector.wait(lambda: "r" in p.collector.receipts)
    c = conn()
    c.subscribe(q, id="1", ack="client-individual")
    counts = []
    for attempt in range(10):
        c.collector.wait(lambda: len(c.collector.messages) > attempt, what="attempt %d" % attempt)
        m = c.collector.messages[attempt]
        counts.append(int(m.headers.get("redelivery-count", "0")))
        c.nack(m.headers["ack"])
    time.sleep(0.5)
    assert len(c.collector.messages) == 10, len(c.collector.messages)
    assert counts == list(range(10)), counts
    dlq = conn()
    dlq.subscribe("/queue/DLQ", id="d", ack="client-individual")
    dlq.collector.wait(lambda: any(m.body == "poison" for m in dlq.collector.messages),
                       what="poison message in DLQ")
    for m in dlq.collector.messages:
        dlq.ack(m.headers["ack"])
    for x in (p, c, dlq):
        x.disconnect()


def test_transaction_commit_delivers_and_abort_discards_sends():
    q = "/queue/" + uniq("tx")
    c = conn()
    c.subscribe(q, id="1", ack="auto", headers={"receipt": "s"})
    c.collector.wait(lambda: "s" in c.collector.receipts)
    p = conn()
    p.begin("t1")
    p.send(q, "in-t1", transaction="t1")
    time.sleep(0.3)
    assert not c.collector.messages, "a send in an open transaction was delivered"
    p.commit("t1", headers={"receipt": "c1"})
    p.collector.wait(lambda: "c1" in p.collector.receipts)
    c.collector.wait_messages(1)
    p.begin("t2")
    p.send(q, "in-t2", transaction="t2")
    p.abort("t2", headers={"receipt": "a2"})
    p.collector.wait(lambda: "a2" in p.collector.receipts)
    p.send(q, "after", headers={"receipt": "r3"})
    p.collector.wait(lambda: "r3" in p.collector.receipts)
    c.collector.wait_messages(2)
    time.sleep(0.2)
    assert [m.body for m in c.collector.messages] == ["in-t1", "after"]
    p.disconnect()
    c.disconnect()


def test_transactional_ack_rolled_back_makes_the_message_available_again():
    q = "/queue/" + uniq("txack")
    p = conn()
    p.send(q, "once", headers={"receipt": "r"})
    p.collector.wait(lambda: "r" in p.collector.receipts)
    c = conn()
    c.subscribe(q, id="1", ack="client-individual")
    m = c.collector.wait_messages(1)[0]
    c.begin("t")
    c.ack(m.headers["ack"], transaction="t")
    c.abort("t", headers={"receipt": "ab"})
    c.collector.wait(lambda: "ab" in c.collector.receipts)
    c.disconnect()
    d = conn()
    d.subscribe(q, id="1", ack="client-individual")
    m2 = d.collector.wait_messages(1)[0]
    assert m2.body == "once"
    d.begin("t")
    d.ack(m2.headers["ack"], transaction="t")
    d.commit("t", headers={"receipt": "cm"})
    d.collector.wait(lambda: "cm" in d.collector.receipts)
    d.disconnect()
    e = conn()
    e.subscribe(q, id="1", ack="client-individual")
    time.sleep(0.5)
    assert not e.collector.messages
    e.disconnect()
    p.disconnect()


def test_durable_subscription_keeps_messages_while_its_subscriber_is_away():
    t = "/topic/" + uniq("dsub")
    c = conn(headers={"client-id": "cid-" + str(os.getpid())})
    c.subscribe(t, id="1", ack="client-individual",
                headers={"durable-subscription-name": "ds", "receipt": "s"})
    c.collector.wait(lambda: "s" in c.collector.receipts)
    c.disconnect()
    p = conn()
    for i in range(3):
        p.send(t, "d%d" % i, headers={"persistent": "true", "receipt": "r%d" % i})
    p.collector.wait(lambda: len(p.collector.receipts) == 3)
    b = broker()
    assert b.stop() == 0
    b.start()
    c = conn(headers={"client-id": "cid-" + str(os.getpid())})
    c.subscribe(t, id="1", ack="client-individual",
                headers={"durable-subscription-name": "ds"})
    msgs = c.collector.wait_messages(3)
    assert [m.body for m in msgs] == ["d0", "d1", "d2"]
    for m in msgs:
        c.ack(m.headers["ack"])
    c.disconnect()


def test_prefetch_bounds_unacknowledged_deliveries_per_consumer():
    q = "/queue/" + uniq("prefetch")
    p = conn()
    for i in range(10):
        p.send(q, "f%d" % i, headers={"receipt": "r%d" % i})
    p.collector.wait(lambda: len(p.collector.receipts) == 10)
    c = conn()
    c.subscribe(q, id="1", ack="client-individual", headers={"consumer-window-size": "3"})
    c.collector.wait_messages(3)
    time.sleep(0.4)
    assert len(c.collector.messages) == 3, len(c.collector.messages)
    c.ack(c.collector.messages[0].headers["ack"])
    c.collector.wait_messages(4)
    time.sleep(0.3)
    assert len(c.collector.messages) == 4
    c.disconnect()
    p.disconnect()


def test_stomp_1_0_and_1_1_clients_exchange_messages():
    q = "/queue/" + uniq("ver")
    c10 = conn(version="1.0")
    c11 = conn(version="1.1")
    c11.subscribe(q, id="x", ack="client")
    time.sleep(0.2)
    c10.send(q, "from 1.0", headers={"receipt": "r"})
    m = c11.collector.wait_messages(1)[0]
    assert m.body == "from 1.0"
    c11.ack(m.headers["message-id"], "x")
    c10.disconnect()
    c11.disconnect()


def test_all_protocols_port_sniffs_stomp():
    q = "/queue/" + uniq("sniff")
    c = ht.stomp_conn(broker().all_port)
    c.subscribe(q, id="1", ack="auto", headers={"receipt": "s"})
    c.collector.wait(lambda: "s" in c.collector.receipts)
    c.send(q, "sniffed")
    assert c.collector.wait_messages(1)[0].body == "sniffed"
    c.disconnect()


if __name__ == "__main__":
    try:
        ht.main(globals())
    finally:
        if B is not None:
            B.stop()
