"""Integration scenario 15: link drain (a flow with drain=true, what qpid-jms
receiveNoWait sends) against a real broker with the real Python Proton
client. The broker answers a drain once the consumer's queue has nothing more
to give (a DRAIN record to the core, answered by the core): the receiver gets
the messages that are there, then its credit is consumed; on an empty queue
the drain completes too. A full ring from the core to the worker does not end
a drain early: the last tests give the broker a small ring and drain far more
than it holds. Waits are bounded; nothing asserts on timing."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amqptest as at  # noqa: E402
from amqptest import ht  # noqa: E402

B = None
SMALL = None  # a broker whose core->worker ring holds a few large messages only
WAIT_S = 15
# [broker] ring_size is 4M by default (common/config.c); 64K is its minimum. A
# 8000-byte message is a ring record of ~8 KiB (a record is at most a quarter of the
# ring), so ~7 fill the ring and 160 (1.3 MB) overflow it about twenty times.
RING_SIZE = "64K"
BIG_BODY = 8000
BIG_N = 160


def broker():
    global B
    if B is None or B.proc.poll() is not None:
        B = ht.Broker(workers=2).start()
        ht.wait_port(B.amqp_port)
    return B


def conn():
    return at.connect(broker().amqp_port)


def small_ring_conn():
    global SMALL
    if SMALL is None or SMALL.proc.poll() is not None:
        path = os.path.join(ht.workdir(), "ring.conf")
        with open(path, "w") as f:
            f.write("[broker]\nring_size = %s\n" % RING_SIZE)
        SMALL = ht.Broker(workers=1, config=path).start()
        ht.wait_port(SMALL.amqp_port)
    return at.connect(SMALL.amqp_port)


def fill_big(c, address, n):
    from proton import Message
    s = c.create_sender(address)
    for i in range(n):
        s.send(Message(body="%04d" % i + "x" * BIG_BODY))
    s.close()


def keys(bodies):
    return sorted(b[:4] for b in bodies)


def fill(c, address, n):
    from proton import Message
    s = c.create_sender(address)
    for i in range(n):
        s.send(Message(body="d%d" % i))
    s.close()


def drain(c, r, credit):
    """Drains credit on receiver r; returns the bodies that arrived before the drain ended."""
    r.link.drain(credit)
    c.wait(lambda: r.link.credit == 0, timeout=WAIT_S, msg="the drain was never answered")
    at.pump(c, 0.1)
    return [m.body for m, _ in r.fetcher.incoming]


def settle_all(c, r):
    while r.fetcher.incoming:
        r.receive(timeout=1)
        r.accept()
    at.pump(c)


def test_drain_gets_the_remaining_messages_then_credit_zero():
    name = "queue://" + at.uniq("drain")
    c = conn()
    fill(c, name, 3)
    r = at.exact_receiver(c, name)
    assert sorted(drain(c, r, 10)) == ["d0", "d1", "d2"]
    assert r.link.credit == 0 and not r.link.draining()
    settle_all(c, r)
    r.close()
    assert at.drain(c, name, max_wait=0.5) == []
    c.close()


def test_drain_on_an_empty_queue_completes():
    name = "queue://" + at.uniq("drain0")
    c = conn()
    r = at.exact_receiver(c, name)
    at.pump(c)
    assert drain(c, r, 5) == []
    assert r.link.credit == 0
    c.close()


def test_drain_with_less_credit_than_messages_takes_exactly_the_credit():
    name = "queue://" + at.uniq("drain2")
    c = conn()
    fill(c, name, 5)
    r = at.exact_receiver(c, name)
    got = drain(c, r, 2)
    assert len(got) == 2, got
    settle_all(c, r)
    r.close()
    rest = [m.body for m in at.drain(c, name)]
    assert sorted(got + rest) == ["d%d" % i for i in range(5)], (got, rest)
    c.close()


def test_credit_after_a_drain_still_delivers():
    name = "queue://" + at.uniq("drain3")
    c = conn()
    r = at.exact_receiver(c, name)
    at.pump(c)
    assert drain(c, r, 4) == []
    fill(c, name, 2)
    r.link.flow(2)
    c.wait(lambda: len(r.fetcher.incoming) == 2, timeout=WAIT_S,
           msg="messages after the drain did not arrive")
    assert sorted(m.body for m, _ in r.fetcher.incoming) == ["d0", "d1"]
    settle_all(c, r)
    # And a second drain on the same link completes as well.
    assert drain(c, r, 3) == []
    c.close()


def test_drain_over_a_full_ring_delivers_every_message_before_it_completes():
    name = "queue://" + at.uniq("drainring")
    c = small_ring_conn()
    fill_big(c, name, BIG_N)
    r = at.exact_receiver(c, name)
    got = drain(c, r, BIG_N + 40)  # more credit than messages: the drain must answer
    assert len(got) == BIG_N, "the drain ended with %d of %d messages delivered" % (
        len(got), BIG_N)
    assert keys(got) == ["%04d" % i for i in range(BIG_N)]
    assert r.link.credit == 0 and not r.link.draining()
    settle_all(c, r)
    r.close()
    assert at.drain(c, name, max_wait=0.5) == []  # nothing was left behind
    c.close()


def test_drain_over_a_full_ring_with_less_credit_takes_exactly_the_credit():
    name = "queue://" + at.uniq("drainring2")
    credit = BIG_N - 60
    c = small_ring_conn()
    fill_big(c, name, BIG_N)
    r = at.exact_receiver(c, name)
    got = drain(c, r, credit)
    assert len(got) == credit, "the drain ended with %d of %d credits used" % (len(got), credit)
    settle_all(c, r)
    r.close()
    rest = [m.body for m in at.drain(c, name)]
    assert keys(got + rest) == ["%04d" % i for i in range(BIG_N)], (len(got), len(rest))
    c.close()


def teardown():
    for b in (B, SMALL):
        if b is not None:
            b.stop()


if __name__ == "__main__":
    try:
        ht.main({k: v for k, v in globals().items() if k.startswith("test_")})
    finally:
        teardown()
