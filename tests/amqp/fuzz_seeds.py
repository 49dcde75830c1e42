"""Writes realistic client byte streams (AMQP 1.0, from Python Proton talking
to an in-memory Proton server) as seeds for fuzz_amqp: producer, consumer with
credit and dispositions, anonymous relay, browse, large multi-frame transfer,
SASL PLAIN. Usage: fuzz_seeds.py OUTDIR"""
import os
import sys

from proton import (Collector, Connection, Delivery, Event, Message, SASL, Transport,
                    symbol)


def feed(t, b):
    while b:
        cap = t.capacity()
        if cap <= 0:
            return
        t.push(b[:cap])
        b = b[cap:]


def pump(ct, st, rounds=50):
    out = b""
    for _ in range(rounds):
        moved = False
        n = ct.pending()
        if n > 0:
            b = ct.peek(n)
            ct.pop(n)
            out += b
            feed(st, b)
            moved = True
        n = st.pending()
        if n > 0:
            b = st.peek(n)
            st.pop(n)
            feed(ct, b)
            moved = True
        if not moved:
            break
    return out


def serve(coll):
    """The in-memory server: opens what the client opens, grants credit, accepts."""
    while coll.peek():
        e = coll.peek()
        t = e.type
        if t == Event.CONNECTION_REMOTE_OPEN:
            e.connection.open()
        elif t == Event.SESSION_REMOTE_OPEN:
            e.session.open()
        elif t == Event.LINK_REMOTE_OPEN:
            l = e.link
            l.source.copy(l.remote_source)
            l.target.copy(l.remote_target)
            l.open()
            if l.is_receiver:
                l.flow(10)
        elif t == Event.DELIVERY and e.delivery.link.is_receiver and not e.delivery.partial:
            e.delivery.link.recv(1 << 20)
            e.delivery.update(Delivery.ACCEPTED)
            e.delivery.settle()
            e.delivery.link.advance()
        coll.pop()


def session(scenario, sasl_user=None, max_frame=None):
    ct, st = Transport(), Transport(Transport.SERVER)
    if max_frame:
        ct.max_frame_size = max_frame
    cc, sc = Connection(), Connection()
    coll = Collector()
    sc.collect(coll)
    if sasl_user:
        ct.sasl().allowed_mechs("PLAIN")
        cc.user, cc.password = sasl_user
        s = st.sasl()
        s.allowed_mechs("PLAIN")
    ct.bind(cc)
    st.bind(sc)
    cc.open()
    ssn = cc.session()
    ssn.open()
    out = pump(ct, st)
    serve(coll)
    out += pump(ct, st)
    for step in scenario(ssn):
        out += pump(ct, st)
        serve(coll)
        out += pump(ct, st)
        step()
    out += pump(ct, st)
    cc.close()
    out += pump(ct, st)
    return out


def producer(ssn, addr="queue://q", body="hello", big=False):
    snd = ssn.sender("p")
    snd.target.address = addr
    snd.open()

    def send():
        m = Message(body=b"x" * 20000 if big else body, durable=True,
                    properties={"k": "v", "n": 1}, annotations={symbol("x-opt-a"): 1},
                    address="queue://relay" if addr is None else None)
        snd.delivery("t1")
        snd.send(m.encode())
        snd.advance()
    yield send


def consumer(ssn, copy=False):
    rcv = ssn.receiver("c")
    rcv.source.address = "q" if not copy else "$hamq.queue-stat"
    rcv.source.capabilities.put_array(False, 23)
    if copy:
        rcv.source.distribution_mode = 2
    rcv.open()
    yield lambda: rcv.flow(1)
    yield lambda: rcv.drain(5)


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    cases = {
        "producer": session(lambda s: producer(s)),
        "relay": session(lambda s: producer(s, addr=None)),
        "topic": session(lambda s: producer(s, addr="topic://t")),
        "consumer": session(lambda s: consumer(s)),
        "stat": session(lambda s: consumer(s, copy=True)),
        "sasl": session(lambda s: producer(s), sasl_user=("alice", "pw")),
        "large": session(lambda s: producer(s, big=True), max_frame=4096),
    }
    for name, data in cases.items():
        for chunk in (b"\x00", b"\x07", b"\x3f"):
            with open(os.path.join(outdir, "%s-%d" % (name, chunk[0])), "wb") as f:
                f.write(chunk + data)


if __name__ == "__main__":
    main(sys.argv[1])
