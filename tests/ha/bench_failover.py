#!/usr/bin/python3
"""bench_failover — prints failover figures of a hamq-supervisor pair on one
shared store (not a test: no assertion on time).

For each store size (live 1 KiB durable messages, filled with hamq-stomp-load):
kill -9 of the live node's whole process group → the backup answers a STOMP
CONNECT (CONNECTED received), measured by this script's clock, median of
--runs kills (the nodes alternate: the killed one restarts as the backup and
is left to warm up before the next kill). Also prints the supervisor's own
figure (HAMQ_DURATION_MS of its "serving" event: lock acquired → a worker
listening).

    HAMQ_BUILDDIR=/path/to/build /usr/bin/python3 tests/ha/bench_failover.py \
        [--sizes 0,1000,100000] [--runs 5]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hatest  # noqa: E402
from hatest import Pair, wait_for  # noqa: E402


def stomp_connected(port, timeout=0.2):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return False
    try:
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        buf = b""
        while b"\0" not in buf:
            d = s.recv(4096)
            if not d:
                return False
            buf += d
        return buf.startswith(b"CONNECTED")
    except OSError:
        return False
    finally:
        s.close()


def fill(port, count):
    t0 = time.monotonic()
    if count == 0:
        return 0.0
    r = subprocess.run([hatest.binary("hamq-stomp-load"), "-P", str(port), "-p", "1", "-n",
                        str(count), "-s", "1024", "-w", "1000", "--grace", "60"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("hamq-stomp-load failed: %s%s" % (r.stdout, r.stderr))
    return time.monotonic() - t0


def one_kill(live, backup):
    t0 = time.monotonic()
    live.kill9_node()
    deadline = t0 + 30
    while time.monotonic() < deadline:
        if stomp_connected(backup.stomp_port):
            return (time.monotonic() - t0) * 1000.0
        time.sleep(0.001)
    raise RuntimeError("%s did not answer CONNECT within 30 s" % backup.id)


def bench(size, runs):
    with Pair().start() as p:
        n1, n2 = p.nodes
        secs = fill(n1.stomp_port, size)
        print("# store filled: %d x 1 KiB durable messages in %.1f s" % (size, secs), flush=True)
        live, backup = n1, n2
        times, sup = [], []
        for i in range(runs):
            time.sleep(1.5)  # let the standby follow the tail
            ms = one_kill(live, backup)
            backup.wait_serving(timeout=30)
            times.append(ms)
            sup.append(backup.last_duration_ms() or 0)
            print("#   run %d: %s killed -> %s answers CONNECT in %.1f ms (supervisor: %s ms "
                  "lock->serving)" % (i + 1, live.id, backup.id, ms, sup[-1]), flush=True)
            live.start()
            wait_for(lambda l=live: (l.status() or {}).get("role") == "backup", 30,
                     "%s back as backup" % live.id)
            wait_for(lambda l=live: len(l.events("backup-ready")) > 0, 30, "warm")
            live, backup = backup, live
        print("RESULT failover kill-9 -> STOMP CONNECTED, %d live msgs: median %.1f ms "
              "(min %.1f, max %.1f, %d runs); supervisor lock->serving median %.0f ms"
              % (size, statistics.median(times), min(times), max(times), runs,
                 statistics.median(sup)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0,1000,100000")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    for size in [int(x) for x in a.sizes.split(",")]:
        bench(size, a.runs)


if __name__ == "__main__":
    main()
