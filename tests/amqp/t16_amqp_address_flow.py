#!/usr/bin/python3
"""Per-address memory limits with AMQP 1.0 producers: a sender to a full address gets no
more link credit (it is held after the credit it had; nothing is dropped) while a sender
to another address keeps going; a consumer draining the full address releases it, and
every message arrives exactly once, in order. Real broker, real Python Proton client."""
import os
import threading
import time

import amqptest as at
from amqptest import ht, need_proton

BODY = "x" * 1000


def _config():
    path = os.path.join(ht.workdir(), "hamq.conf")
    with open(path, "w") as f:
        f.write("[broker]\naddress_max_memory = 64K\n[address free.#]\nmax_memory = 0\n")
    return path


def test_an_amqp_sender_to_a_full_address_is_held_and_released_without_loss():
    need_proton()
    from proton import Message, Timeout
    from proton.utils import BlockingConnection
    full, free = "queue://" + at.uniq("full"), "queue://free." + at.uniq("q")
    with ht.Broker(workers=1, config=_config()) as b:
        url = "amqp://127.0.0.1:%d" % b.amqp_port
        c = BlockingConnection(url, timeout=30)
        s = c.create_sender(full)
        sent = 0
        try:
            for i in range(3000):  # bounded: far beyond 64K of 1 KB messages
                s.send(Message(body="%05d%s" % (i, BODY)), timeout=2)
                sent += 1
        except Timeout:
            pass  # held: that message stays buffered in the client and goes later
        assert 40 <= sent < 3000, "held after %d messages (64K limit)" % sent
        print("# held after %d messages" % sent, flush=True)
        c2 = BlockingConnection(url, timeout=30)
        s2 = c2.create_sender(free)
        for _ in range(1000):  # another address flows meanwhile
            s2.send(Message(body="g" + BODY), timeout=10)
        done = []

        def more():
            for i in range(sent + 1, sent + 201):
                s.send(Message(body="%05d%s" % (i, BODY)), timeout=30)
            done.append(True)

        th = threading.Thread(target=more, daemon=True)
        th.start()
        r = c2.create_receiver(full, credit=100)
        got = []
        deadline = time.monotonic() + 60
        while len(got) < sent + 201 and time.monotonic() < deadline:
            m = r.receive(timeout=10)
            r.accept()
            got.append(int(m.body[:5]))
        th.join(30)
        assert done, "the held sender was never released"
        assert got == list(range(sent + 201)), "lost, duplicated or reordered: %s..." % got[:10]
        c.close()
        c2.close()


if __name__ == "__main__":
    ht.main(globals())
