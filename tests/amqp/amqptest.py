"""amqptest — helpers for hamq's AMQP 1.0 integration tests, on top of
tests/broker/hamqtest.py (real broker processes) and the real Python Proton
client (python3-qpid-proton, Debian)."""
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "broker"))
import hamqtest as ht  # noqa: E402,F401

try:
    from proton import Data, Delivery, Message, symbol  # noqa: F401
    from proton.reactor import LinkOption
    from proton.utils import BlockingConnection
except ImportError:  # pragma: no cover - reported as a skip by every test
    BlockingConnection = None
    LinkOption = object


def need_proton():
    if BlockingConnection is None:
        raise ht.Skip("python3-qpid-proton is not installed")


def uniq(prefix):
    return "%s.%d.%d" % (prefix, os.getpid(), int(time.monotonic() * 1e6))


class Caps(LinkOption):
    """Terminus capabilities: ("queue",), ("topic",), Artemis' ("multicast",)..."""

    def __init__(self, *caps):
        self.caps = caps

    def apply(self, link):
        t = link.target if link.is_sender else link.source
        t.capabilities.put_array(False, Data.SYMBOL)
        t.capabilities.enter()
        for c in self.caps:
            t.capabilities.put_symbol(symbol(c))
        t.capabilities.exit()


class Presettled(LinkOption):
    def apply(self, link):
        link.snd_settle_mode = 1  # Link.SND_SETTLED


class Browse(LinkOption):
    def apply(self, link):
        link.source.distribution_mode = 2  # Terminus.DIST_MODE_COPY


class DurableSub(LinkOption):
    def apply(self, link):
        link.source.durability = 2  # Terminus.DELIVERIES
        link.source.expiry_policy = 3  # Terminus.EXPIRE_NEVER


_names = [0]


def _name(kind):
    _names[0] += 1
    return "%s-%d-%d" % (kind, os.getpid(), _names[0])


def connect(port, timeout=10, **kw):
    """A BlockingConnection whose links get unique names (the Python client names
    links after the address, and two links of one name on a connection are a
    protocol error the broker rightly refuses)."""
    need_proton()
    kw.setdefault("allow_insecure_mechs", True)
    c = BlockingConnection("amqp://127.0.0.1:%d" % port, timeout=timeout, **kw)
    cs, cr = c.create_sender, c.create_receiver

    def create_sender(address, name=None, **k):
        return cs(address, name=name or _name("snd"), **k)

    def create_receiver(address, credit=None, name=None, **k):
        return cr(address, credit=credit, name=name or _name("rcv"), **k)

    c.create_sender, c.create_receiver = create_sender, create_receiver
    return c


def exact_receiver(conn, address, options=None):
    """A receiver that never grants credit on its own: each receive() grants 1."""
    return conn.create_receiver(address, credit=0, options=options)


def take_delivery(receiver, timeout=10):
    """Receives one message and returns (message, its unsettled delivery)."""
    m = receiver.receive(timeout=timeout)
    return m, receiver.fetcher.unsettled.popleft()


def settle(conn, delivery, state, failed=False, undeliverable=False):
    if state == Delivery.MODIFIED:
        delivery.local.failed = failed
        delivery.local.undeliverable = undeliverable
    delivery.update(state)
    delivery.settle()
    pump(conn)


def pump(conn, seconds=0.2):
    """Lets the client's event loop write what was queued (dispositions)."""
    from proton import Timeout
    try:
        conn.wait(lambda: False, timeout=seconds)
    except Timeout:
        pass


def drain(conn, address, max_wait=1.0, options=None):
    """Every message currently on address (accepted); stops after max_wait of silence."""
    r = conn.create_receiver(address, credit=100, options=options)
    out = []
    while True:
        try:
            out.append(r.receive(timeout=max_wait))
            r.accept()
        except Exception:  # proton Timeout
            break
    r.close()
    return out


raw = ht.raw  # one implementation, in tests/broker/hamqtest.py
