"""Integration scenario 11: AMQP 1.0 under crashes and bad clients. A durable
message is accepted only once it is on disk (kill -9 of the whole broker
loses nothing accepted); non-durable messages never touch the disk; garbage
and protocol violations close only the offending connection, with an AMQP
error condition, and the broker keeps serving."""
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amqptest as at  # noqa: E402
from amqptest import ht  # noqa: E402

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"


def round_trip(port):
    from proton import Message
    q = "queue://" + at.uniq("alive")
    c = at.connect(port)
    c.create_sender(q).send(Message(body="ping"))
    assert [m.body for m in at.drain(c, q)] == ["ping"]
    c.close()


def test_accepted_durable_messages_survive_kill_9_of_the_whole_broker():
    from proton import Message
    b = ht.Broker(workers=2).start()
    ht.wait_port(b.amqp_port)
    q = "queue://" + at.uniq("crash")
    accepted = []
    stop = threading.Event()

    def produce():
        try:
            c = at.connect(b.amqp_port)
            s = c.create_sender(q)
            for i in range(100000):
                if stop.is_set():
                    return
                s.send(Message(body="m%06d" % i, durable=True))  # returns once accepted
                accepted.append("m%06d" % i)
        except Exception:
            return  # the broker died under us

    t = threading.Thread(target=produce)
    t.start()
    deadline = time.monotonic() + 30
    while len(accepted) < 300 and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.01)
    b.kill9()
    stop.set()
    t.join(15)
    assert len(accepted) >= 300, "only %d accepted before the crash" % len(accepted)
    b.start()
    ht.wait_port(b.amqp_port)
    try:
        c = at.connect(b.amqp_port, timeout=30)
        got = {m.body for m in at.drain(c, q, max_wait=2.0)}
        c.close()
        missing = [x for x in accepted if x not in got]
        assert not missing, "%d accepted messages lost, first %s" % (len(missing), missing[:5])
    finally:
        b.stop()


def test_non_durable_messages_are_accepted_without_disk_and_gone_after_a_crash():
    from proton import Message
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.amqp_port)
    q = "queue://" + at.uniq("volatile")
    c = at.connect(b.amqp_port)
    s = c.create_sender(q)
    for i in range(10):
        s.send(Message(body="v%d" % i, durable=False))
    s.send(Message(body="keep", durable=True))
    c.close()
    b.kill9()
    b.start()
    ht.wait_port(b.amqp_port)
    try:
        c = at.connect(b.amqp_port)
        assert [m.body for m in at.drain(c, q)] == ["keep"]
        c.close()
    finally:
        b.stop()


def _frame(body, ftype=0, channel=0):
    return struct.pack(">IBBH", 8 + len(body), 2, ftype, channel) + body


def test_garbage_after_the_amqp_header_closes_only_that_connection():
    from proton import Message
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.amqp_port)
    try:
        survivor = at.connect(b.amqp_port)
        q = "queue://" + at.uniq("survivor")
        s = survivor.create_sender(q)
        for port in (b.amqp_port, b.all_port):
            out, closed = at.raw(port, AMQP_HEADER + b"\xff" * 64)
            assert closed, "broker kept a connection that sent garbage"
            assert out.startswith(AMQP_HEADER), out[:16]
            assert b"amqp:" in out, "no AMQP error condition in %r" % out
        s.send(Message(body="still here"))
        assert [m.body for m in at.drain(survivor, q)] == ["still here"]
        survivor.close()
        round_trip(b.amqp_port)
    finally:
        b.stop()


def test_an_unknown_performative_gets_an_amqp_error_and_a_close():
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.amqp_port)
    try:
        # a well-formed frame whose body is described type 0x30 (no such performative):
        # before any open there is no AMQP connection to close, the socket is hung up
        bad = _frame(b"\x00\x53\x30\x45")
        out, closed = at.raw(b.amqp_port, AMQP_HEADER + bad)
        assert closed, out
        opn = _frame(b"\x00\x53\x10\xc0\x06\x01\xa1\x03abc")
        # after an open: a close frame with the framing error
        out, closed = at.raw(b.amqp_port, AMQP_HEADER + opn + bad)
        assert closed and b"amqp:connection:framing-error" in out, out
        # an open frame, then a transfer on a channel that was never begun
        xfer = _frame(b"\x00\x53\x14\xc0\x03\x02\x43\x43", channel=7)
        out, closed = at.raw(b.amqp_port, AMQP_HEADER + opn + xfer)
        assert closed and b"amqp:" in out, out
        # an open frame, then a begin whose list length lies
        beg = _frame(b"\x00\x53\x11\xc0\x40\x02\x43\x43")
        out, closed = at.raw(b.amqp_port, AMQP_HEADER + opn + beg)
        assert closed and b"amqp:" in out, out
        round_trip(b.amqp_port)
    finally:
        b.stop()


def test_a_wrong_protocol_header_is_answered_with_ours_and_closed():
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.amqp_port)
    try:
        out, closed = at.raw(b.amqp_port, b"AMQP\x00\x09\x09\x09")
        assert closed and out[:4] == b"AMQP", out
        out, closed = at.raw(b.amqp_port, b"GET / HTTP/1.1\r\n\r\n")
        assert closed, out
        round_trip(b.amqp_port)
    finally:
        b.stop()


def test_client_vanishing_mid_transfer_leaves_the_broker_serving():
    import socket
    b = ht.Broker(workers=1).start()
    ht.wait_port(b.amqp_port)
    try:
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", b.amqp_port))
            s.sendall(AMQP_HEADER + _frame(b"\x00\x53\x10\xc0\x06\x01\xa1\x03abc")[:9])
            s.close()
        round_trip(b.amqp_port)
    finally:
        b.stop()


def _mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and len(b) > 9:
            del b[rng.randrange(9, len(b)):]
        elif op == 2 and b:
            i = rng.randrange(len(b))
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 3 and len(b) > 20:
            i = rng.randrange(8, len(b) - 4)
            b[i:i + 4] = b"\xff\xff\xff\xff"
    return bytes(b)


def test_mutated_real_client_streams_never_take_the_broker_down():
    import random
    from concurrent.futures import ThreadPoolExecutor
    import fuzz_seeds
    d = ht.workdir("hamq-mut-")
    fuzz_seeds.main(d)
    seeds = []
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f), "rb") as fh:
            seeds.append(fh.read()[1:])  # drop the fuzzer's chunk-size byte
    rng = random.Random(int(os.environ.get("HAMQ_MUTATE_SEED", "1234")))
    cases = [_mutate(rng, rng.choice(seeds)) for _ in range(300)]
    b = ht.Broker(workers=2).start()
    ht.wait_port(b.amqp_port)
    try:
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda c: at.raw(b.amqp_port, c, read_timeout=0.5), cases))
        assert b.proc.poll() is None, "the broker died"
        round_trip(b.amqp_port)
        ht.stomp_conn(b.stomp_port).disconnect()
    finally:
        b.stop()


if __name__ == "__main__":
    ht.main(globals())
