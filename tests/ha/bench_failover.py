#!/usr/bin/python3
"""bench_failover — prints failover figures of a hamq-supervisor pair on one
shared store (not a test: no assertion on time).

Scenarios, each a median of --runs kills (the nodes alternate: the killed one
restarts as the backup and is warm before the next kill):
  size N   kill -9 of the live node's whole process group with N live 1 KiB
           durable messages in the store (filled with hamq-stomp-load) -> the
           backup answers a STOMP CONNECT (CONNECTED received), this script's clock;
  load     the same with a durable write load running at the moment of the kill
           (hamq-stomp-load, 4 producers, receipts, 1 KiB persistent);
  planned  `hamq-supervisorctl failover` on the live -> the backup answers CONNECT.
Also prints the supervisor's own figure (HAMQ_DURATION_MS of its "serving"
event: lock acquired -> a worker listening). When ActiveMQ Classic is installed
(Debian activemq), it then runs tests/ha/bench_activemq_failover.sh (its
shared-file-system master/slave, the same clock and scenarios) for the
side-by-side lines (--no-activemq skips it).

    HAMQ_BUILDDIR=/path/to/build /usr/bin/python3 tests/ha/bench_failover.py \
        [--sizes 0,100000,1000000] [--runs 5] [--no-load] [--no-planned] [--no-activemq]
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


def wait_connect(backup, t0, what):
    deadline = t0 + 30
    while time.monotonic() < deadline:
        if stomp_connected(backup.stomp_port):
            return (time.monotonic() - t0) * 1000.0
        time.sleep(0.001)
    raise RuntimeError("%s did not answer CONNECT within 30 s after %s" % (backup.id, what))


def one_kill(live, backup):
    t0 = time.monotonic()
    live.kill9_node()
    return wait_connect(backup, t0, "the kill")


def one_planned(live, backup):
    t0 = time.monotonic()
    live.ctl("failover")
    return wait_connect(backup, t0, "a planned failover")


def start_load(port):
    """A durable write load that runs until killed (or 120 s)."""
    return subprocess.Popen([hatest.binary("hamq-stomp-load"), "-P", str(port), "-p", "4",
                             "-d", "120", "-s", "1024", "-w", "100", "--grace", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rejoin(node, planned, before):
    """The node that lost the live role is a warm backup again (a new backup-ready
    event in its log, which the appended log of its earlier runs also holds)."""
    if not planned:
        node.start()
    wait_for(lambda: (node.status() or {}).get("role") == "backup", 60, "%s back as backup" % node.id)
    wait_for(lambda: len(node.events("backup-ready")) > before, 120, "%s warm" % node.id)


def config_file(d):
    path = os.path.join(d, "bench.conf")
    with open(path, "w") as f:
        # bodies are held in memory: room for a million 1 KiB messages
        f.write("[broker]\nmax_memory = 8G\n")
    return path


def bench(label, size, runs, mode):
    conf = config_file(hatest.workdir("hamq-bench-"))
    with Pair(extra=["--config", conf]).start() as p:
        n1, n2 = p.nodes
        secs = fill(n1.stomp_port, size)
        print("# %s: store filled with %d x 1 KiB durable messages in %.1f s"
              % (label, size, secs), flush=True)
        live, backup = n1, n2
        times, sup = [], []
        for i in range(runs):
            time.sleep(1.0)  # let the standby follow the tail
            before = len(live.events("backup-ready"))
            load = start_load(live.stomp_port) if mode == "load" else None
            if load:
                time.sleep(1.0)  # the load is running
            ms = one_planned(live, backup) if mode == "planned" else one_kill(live, backup)
            if load:
                load.kill()
                load.wait()
            backup.wait_serving(timeout=30)
            times.append(ms)
            sup.append(backup.last_duration_ms() or 0)
            print("#   run %d: %s -> %s answers CONNECT in %.1f ms (supervisor: %s ms "
                  "lock->serving)" % (i + 1, live.id, backup.id, ms, sup[-1]), flush=True)
            rejoin(live, mode == "planned", before)
            live, backup = backup, live
        print("RESULT failover %s -> STOMP CONNECTED: median %.1f ms (min %.1f, max %.1f, "
              "%d runs); supervisor lock->serving median %.0f ms"
              % (label, statistics.median(times), min(times), max(times), runs,
                 statistics.median(sup)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0,100000,1000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-load", action="store_true")
    ap.add_argument("--no-planned", action="store_true")
    ap.add_argument("--no-activemq", action="store_true",
                    help="skip ActiveMQ Classic even when it is installed")
    a = ap.parse_args()
    for size in [int(x) for x in a.sizes.split(",")]:
        bench("kill-9, %d live msgs" % size, size, a.runs, "kill")
    if not a.no_load:
        bench("kill-9 under a durable write load", 0, a.runs, "load")
    if not a.no_planned:
        bench("planned (hamq-supervisorctl failover)", 0, a.runs, "planned")
    if not a.no_activemq and os.path.isdir("/usr/share/activemq"):
        sizes = [int(x) for x in a.sizes.split(",") if int(x) > 0]
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "bench_activemq_failover.sh")
        subprocess.run(["bash", script, "--runs", str(a.runs), "--stored",
                        str(min(sizes) if sizes else 100000)], check=False)


if __name__ == "__main__":
    main()
