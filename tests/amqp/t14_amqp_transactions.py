"""Integration scenario 14: AMQP 1.0 local transactions (coordinator link,
declare, discharge) against a real broker, driven by python3-qpid-proton's
own transaction support (Container.declare_transaction, TransactionHandler):
a commit delivers the messages sent in the transaction and not before, a
rollback discards them, and transactional acceptances consume only on
commit (a rollback gives the messages back with the delivery count raised).
Every run is bounded by a reactor timer; nothing asserts on timing."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amqptest as at  # noqa: E402
from amqptest import ht  # noqa: E402

B = None
RUN_LIMIT_S = 20


def broker():
    global B
    if B is None or B.proc.poll() is not None:
        B = ht.Broker(workers=2).start()
        ht.wait_port(B.amqp_port)
    return B


def url():
    return "amqp://127.0.0.1:%d" % broker().amqp_port


def conn():
    return at.connect(broker().amqp_port)


def run(handler):
    """Runs a scripted reactor handler; fails if it does not finish within RUN_LIMIT_S."""
    at.need_proton()
    from proton.reactor import Container
    c = Container(handler)
    handler.container = c

    class Stop:
        def on_timer_task(self, event):
            handler.timed_out = True
            if handler.conn is not None:
                handler.conn.close()
            event.container.stop()

    handler.timed_out = False
    handler.conn = None
    handler.limit = c.schedule(RUN_LIMIT_S, Stop())
    c.run()
    assert not handler.timed_out, "transaction script did not finish: %s" % handler.log
    assert not handler.errors, handler.errors


def _base():
    from proton.handlers import MessagingHandler, TransactionHandler

    class Script(MessagingHandler, TransactionHandler):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.log, self.errors = [], []

        def done(self):
            self.limit.cancel()
            self.conn.close()

        def on_transaction_declare_failed(self, event):
            self.errors.append("declare failed: %s" % event.delivery.remote.condition)
            self.done()

        def on_transaction_commit_failed(self, event):
            self.errors.append("commit failed: %s" % event.delivery.remote.condition)
            self.done()

        def on_link_error(self, event):
            self.errors.append("link error: %s" % event.link.remote_condition)
            self.done()

    return Script


def test_commit_delivers_the_messages_sent_in_the_transaction_and_not_before():
    from proton import Message
    name = "queue://" + at.uniq("txc")
    Script = _base()

    class H(Script):
        def __init__(self):
            super().__init__(prefetch=10)
            self.sent_settled, self.got, self.committing = 0, [], False
            self.seen_before_commit = []

        def on_start(self, event):
            self.conn = event.container.connect(url())
            self.snd = event.container.create_sender(self.conn, name)
            event.container.declare_transaction(self.conn, handler=self)

        def on_transaction_declared(self, event):
            self.tx = event.transaction
            self.log.append("declared %r" % self.tx.id)
            for i in range(3):
                self.tx.send(self.snd, Message(body="tx-%d" % i, durable=True))

        def on_settled(self, event):
            if event.link == self.snd:
                self.sent_settled += 1
                if self.sent_settled == 3:
                    # Look for the messages for a while before committing.
                    event.container.create_receiver(self.conn, name)
                    event.container.schedule(0.5, self)

        def on_timer_task(self, event):
            self.log.append("committing")
            self.committing = True
            self.tx.commit()

        def on_transaction_committed(self, event):
            self.log.append("committed")

        def on_message(self, event):
            # (The messages may arrive before the discharge's outcome: the
            # broker routes them while committing.)
            if not self.committing:
                self.seen_before_commit.append(event.message.body)
            self.got.append(event.message.body)
            if len(self.got) == 3:
                self.done()

    h = H()
    run(h)
    assert h.seen_before_commit == [], h.seen_before_commit
    assert sorted(h.got) == ["tx-0", "tx-1", "tx-2"], h.got
    c = conn()
    assert at.drain(c, name, max_wait=0.5) == []
    c.close()


def test_rollback_discards_the_messages_sent_in_the_transaction():
    from proton import Message
    name = "queue://" + at.uniq("txr")
    Script = _base()

    class H(Script):
        def __init__(self):
            super().__init__()
            self.settled, self.aborted = 0, False

        def on_start(self, event):
            self.conn = event.container.connect(url())
            self.snd = event.container.create_sender(self.conn, name)
            event.container.declare_transaction(self.conn, handler=self)

        def on_transaction_declared(self, event):
            self.tx = event.transaction
            for i in range(2):
                self.tx.send(self.snd, Message(body="gone-%d" % i, durable=True))

        def on_settled(self, event):
            if event.link == self.snd:
                self.settled += 1
                if self.settled == 2:
                    self.tx.abort()

        def on_transaction_aborted(self, event):
            self.aborted = True
            self.snd.send(Message(body="outside", durable=True))

        def on_accepted(self, event):
            if self.aborted:
                self.done()

    h = H()
    run(h)
    c = conn()
    assert [m.body for m in at.drain(c, name)] == ["outside"]
    c.close()


def test_transactional_acceptance_consumes_only_on_commit():
    from proton import Message
    name = "queue://" + at.uniq("txa")
    c = conn()
    s = c.create_sender(name)
    for i in range(2):
        s.send(Message(body="m%d" % i, durable=True))
    c.close()
    Script = _base()

    class H(Script):
        def __init__(self):
            super().__init__(prefetch=0, auto_accept=False)
            self.round, self.bodies, self.counts = 0, [], []

        def on_start(self, event):
            self.conn = event.container.connect(url())
            self.rcv = event.container.create_receiver(self.conn, name)
            event.container.declare_transaction(self.conn, handler=self)

        def on_transaction_declared(self, event):
            self.tx = event.transaction
            self.round += 1
            self.seen = 0
            self.rcv.flow(2)

        def on_message(self, event):
            self.bodies.append((self.round, event.message.body))
            self.counts.append((self.round, event.message.delivery_count))
            self.tx.accept(event.delivery)
            self.seen += 1
            if self.seen == 2:
                if self.round == 1:
                    self.tx.abort()
                else:
                    self.tx.commit()

        def on_transaction_aborted(self, event):
            event.container.declare_transaction(self.conn, handler=self)

        def on_transaction_committed(self, event):
            self.done()

    h = H()
    run(h)
    assert sorted(b for r, b in h.bodies if r == 1) == ["m0", "m1"], h.bodies
    assert sorted(b for r, b in h.bodies if r == 2) == ["m0", "m1"], h.bodies
    assert all(n >= 1 for r, n in h.counts if r == 2), h.counts
    c = conn()
    assert at.drain(c, name, max_wait=0.5) == []
    c.close()


def test_discharge_of_an_unknown_transaction_is_refused_and_the_connection_goes_on():
    from proton import Described, Message, symbol
    name = "queue://" + at.uniq("txu")
    Script = _base()

    class H(Script):
        def on_start(self, event):
            self.conn = event.container.connect(url())
            self.tx = event.container.declare_transaction(self.conn, handler=self)
            self.outcome = None

        def on_transaction_declared(self, event):
            # Proton's coordinator handler reports a control message's outcome
            # to the delivery's `transaction`: give it one that records it.
            ctl = self.tx.txn_ctrl
            bogus = ctl.send(Message(body=Described(
                symbol("amqp:discharge:list"), [b"\x00" * 8, False])))
            bogus.transaction = self

        def handle_outcome(self, event):
            self.outcome = event.delivery.remote.condition
            snd = self.container.create_sender(self.conn, name)
            snd.send(Message(body="after"))

        def on_accepted(self, event):
            if self.outcome is not None:
                self.done()

    h = H()
    run(h)
    assert h.outcome is not None and h.outcome.name == "amqp:transaction:unknown-id", h.outcome
    c = conn()
    assert [m.body for m in at.drain(c, name)] == ["after"]
    c.close()


def teardown():
    if B is not None:
        B.stop()


if __name__ == "__main__":
    try:
        ht.main({k: v for k, v in globals().items() if k.startswith("test_")})
    finally:
        teardown()
