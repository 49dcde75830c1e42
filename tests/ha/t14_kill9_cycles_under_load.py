#!/usr/bin/python3
"""kill -9 of the live under a durable write load, several cycles alternating nodes:
0 receipted messages lost (count + content), 0 duplicates for a producer that sets
duplicate ids (_AMQ_DUPL_ID) and resends what was not confirmed (the duplicate-id
cache is journaled, JNL_REC_DUP_ID, so it survives the failover)."""
import threading
import time

import hatest
from hatest import Pair, connect, drain, figure, wait_for

CYCLES = 6


class Producer(threading.Thread):
    """Sends m-<n> (receipt and _AMQ_DUPL_ID = the body) until stopped or the link dies."""

    def __init__(self, port, first):
        super().__init__(daemon=True)
        self.c = connect(port)
        self.next = first
        self.sent = []
        self.stop = False

    def run(self):
        try:
            while not self.stop:
                body = "m-%d" % self.next
                self.c.send("/queue/ha", body, headers={
                    "persistent": "true", "receipt": body, "_AMQ_DUPL_ID": body})
                self.sent.append(body)
                self.next += 1
                if len(self.sent) - len(self.c.collector.receipts) > 200:
                    time.sleep(0.002)  # a window, as a real producer keeps
        except Exception:  # noqa: BLE001 - the broker died under us: that is the test
            pass


def resend(port, bodies):
    c = connect(port)
    try:
        for b in bodies:
            c.send("/queue/ha", b, headers={"persistent": "true", "receipt": b,
                                            "_AMQ_DUPL_ID": b})
        c.collector.wait(lambda: set(bodies) <= set(c.collector.receipts), 20,
                         "receipts of %d resent messages" % len(bodies))
    finally:
        c.disconnect()


def test_kill9_cycles_under_load_lose_no_receipted_message_and_duplicate_none():
    with Pair().start() as p:
        all_sent, total_resent, times = [], 0, []
        nxt = 0
        for cycle in range(CYCLES):
            live = p.live()
            backup = [n for n in p.nodes if n is not live][0]
            prod = Producer(live.stomp_port, nxt)
            prod.start()
            wait_for(lambda: len(prod.c.collector.receipts) >= 50, 10, "load running")
            live.kill9_node()
            prod.stop = True
            prod.join(5)
            nxt = prod.next
            receipted = set(prod.c.collector.receipts)
            unconfirmed = [b for b in prod.sent if b not in receipted]
            backup.wait_serving(timeout=20)
            times.append(backup.last_duration_ms())
            resend(backup.stomp_port, unconfirmed)
            total_resent += len(unconfirmed)
            all_sent += prod.sent
            live.start()
            wait_for(lambda l=live: (l.status() or {}).get("role") == "backup", 20,
                     "%s back as backup" % live.id)
        figure("kill -9 under load -> backup serving, per cycle (supervisor clock)", times)
        print("# %d messages sent over %d cycles, %d unconfirmed resent with their duplicate id"
              % (len(all_sent), CYCLES, total_resent), flush=True)
        got = drain(p.live().stomp_port, timeout=60, expect=len(all_sent))
        missing = set(all_sent) - set(got)
        dups = len(got) - len(set(got))
        assert not missing, "%d receipted/resent messages lost, e.g. %s" % (
            len(missing), sorted(missing)[:5])
        figure("duplicates after resending unconfirmed messages with their duplicate id",
               dups, "messages")
        assert dups == 0, "%d duplicates (%d resends)" % (dups, total_resent)
        assert set(got) == set(all_sent)


if __name__ == "__main__":
    hatest.main(globals())
