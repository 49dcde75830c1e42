#!/usr/bin/python3
"""The warm standby: the backup's core mirrors the live's journal in its own
engine (acks, redelivery counts, transactions, durable subscriptions, duplicate
ids), so promotion reads only the tail. What the new live serves must be exactly
what the old live had acknowledged, and the promotion must really have been
warm (the log says so) — a silent fall back to a full rebuild would pass the
content checks but not this test."""
import time

import hatest
from hatest import Pair, connect, drain, send_persistent, wait_for


def _consume_some(port, queue, n, ack=True):
    """Takes n messages with client-individual acks; acks them or leaves them unacked
    (disconnect: they are redelivered later with their count raised)."""
    c = connect(port)
    try:
        c.subscribe(queue, id="s", ack="client-individual", headers={"activemq.prefetchSize": n})
        c.collector.wait(lambda: len(c.collector.messages) >= n, 20, "%d messages" % n)
        got = c.collector.messages[:n]
        if ack:
            for f in got:
                c.ack(f.headers["ack"])
            c.send("/queue/ha.sync", "x", headers={"receipt": "sync"})  # acks are in
            c.collector.wait(lambda: "sync" in c.collector.receipts, 20, "sync receipt")
        return [f.body for f in got]
    finally:
        c.disconnect()


def test_a_promoted_warm_standby_serves_exactly_the_acknowledged_state():
    with Pair().start() as p:
        n1, n2 = p.nodes
        port = n1.stomp_port
        # a durable subscription: its queue gets the topic's messages while away
        c = hatest.stomp_conn(port, headers={"client-id": "warm"})
        c.subscribe("/topic/ha.t", id="1", ack="auto",
                    headers={"activemq.subscriptionName": "s1", "receipt": "subd"})
        c.collector.wait(lambda: "subd" in c.collector.receipts, 20, "subscribe receipt")
        c.disconnect()
        sent = send_persistent(port, 60, "w", queue="/queue/ha.w")
        topic = send_persistent(port, 15, "t", queue="/topic/ha.t")
        acked = _consume_some(port, "/queue/ha.w", 10)           # 10 acked
        unacked = _consume_some(port, "/queue/ha.w", 5, ack=False)  # 5 redelivered later
        # a committed and an aborted transaction
        c = connect(port)
        c.begin("tx1")
        for i in range(4):
            c.send("/queue/ha.w", "tx1-%d" % i, headers={"persistent": "true", "transaction": "tx1"})
        c.commit("tx1")
        c.begin("tx2")
        for i in range(4):
            c.send("/queue/ha.w", "tx2-%d" % i, headers={"persistent": "true", "transaction": "tx2"})
        c.abort("tx2")
        # a duplicate id: the first copy is kept, the resend after the failover is not
        c.send("/queue/ha.w", "dup-first", headers={"persistent": "true", "_AMQ_DUPL_ID": "d-1",
                                                     "receipt": "d1"})
        c.collector.wait(lambda: "d1" in c.collector.receipts, 20, "dup receipt")
        c.disconnect()
        wait_for(lambda: n2.status() is not None, 10, "backup status")
        time.sleep(0.5)  # let the standby follow (correctness does not depend on it)
        n1.kill9_node()
        n2.wait_serving(timeout=20)
        log = n2.log()
        assert "engine warm" in log, "the promotion was not warm:\n" + "\n".join(
            l for l in log.splitlines() if "standby" in l)[-3000:]
        # the resend of the duplicate is receipted but not enqueued again
        c = connect(n2.stomp_port)
        c.send("/queue/ha.w", "dup-again", headers={"persistent": "true", "_AMQ_DUPL_ID": "d-1",
                                                     "receipt": "d2"})
        c.collector.wait(lambda: "d2" in c.collector.receipts, 20, "dup resend receipt")
        c.disconnect()
        want = sorted((set(sent) - set(acked)) | {"tx1-%d" % i for i in range(4)} | {"dup-first"})
        c = connect(n2.stomp_port)
        try:
            c.subscribe("/queue/ha.w", id="d", ack="client-individual")
            c.collector.wait(lambda: len(c.collector.messages) >= len(want), 20,
                             "%d messages" % len(want))
            time.sleep(0.5)  # nothing more may come
            msgs = c.collector.messages
            got = sorted(f.body for f in msgs)
            assert got == want, hatest.same(got, want)
            for f in msgs:
                count = int(f.headers.get("redelivery-count", "0"))
                if f.body in unacked:
                    assert count >= 1, "%s lost its delivery count: %s" % (f.body, f.headers)
                for_ack = f.headers["ack"]
                c.ack(for_ack)
        finally:
            c.disconnect()
        c = hatest.stomp_conn(n2.stomp_port, headers={"client-id": "warm"})
        try:
            c.subscribe("/topic/ha.t", id="1", ack="auto",
                        headers={"activemq.subscriptionName": "s1"})
            c.collector.wait(lambda: len(c.collector.messages) >= len(topic), 20,
                             "durable subscription messages")
            got = sorted(f.body for f in c.collector.messages)
            assert got == topic, hatest.same(got, topic)
        finally:
            c.disconnect()
        assert drain(n2.stomp_port, queue="/queue/ha.w", idle=0.5) == []


if __name__ == "__main__":
    hatest.main(globals())
