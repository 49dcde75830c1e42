#!/usr/bin/python3
"""stomp_probe — a real STOMP client (python3-stomp) for the systemd tests.

  stomp_probe.py PORT send QUEUE BODY   send one persistent message, wait for
                                        its RECEIPT (sent once it is durable)
  stomp_probe.py PORT recv QUEUE BODY   subscribe (client ack), wait for a
                                        message whose body is BODY, ack it and
                                        wait for the ACK's receipt

Connects to 127.0.0.1:PORT; each step is bounded (10 s). Exit 0 on success,
1 with the reason on stderr otherwise.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("HAMQ_SRCDIR", "."), "tests", "broker"))
from hamqtest import stomp_conn  # noqa: E402


def main():
    if len(sys.argv) != 5 or sys.argv[2] not in ("send", "recv"):
        print(__doc__, file=sys.stderr)
        return 2
    port, op, queue, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    c = None
    try:
        c = stomp_conn(port, timeout=10)
        col = c.collector
        if op == "send":
            c.send("/queue/" + queue, body, headers={"persistent": "true", "receipt": "r1"})
            col.wait(lambda: "r1" in col.receipts or col.errors, 10, "the receipt")
        else:
            c.subscribe("/queue/" + queue, id="s1", ack="client-individual")
            col.wait(lambda: any(m.body == body for m in col.messages) or col.errors, 10,
                     "message %r" % body)
            if not col.errors:
                m = [m for m in col.messages if m.body == body][0]
                # STOMP 1.2: ACK id = the MESSAGE's ack header; wait for its receipt
                c.ack(m.headers["ack"], receipt="a1")
                col.wait(lambda: "a1" in col.receipts or col.errors, 10, "the ACK's receipt")
        if col.errors:
            print("ERROR frame: %s" % col.errors[0].body, file=sys.stderr)
            return 1
        return 0
    except Exception as e:  # noqa: BLE001 — any failure is the probe's answer
        print("stomp_probe %s %s on port %d: %s" % (op, queue, port, e), file=sys.stderr)
        return 1
    finally:
        if c is not None:
            try:
                c.disconnect()
            except Exception:  # noqa: BLE001
                pass


if __name__ == "__main__":
    sys.exit(main())
