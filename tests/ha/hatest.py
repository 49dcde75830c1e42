"""hatest — HA scenarios with real processes: hamq-supervisor nodes (each runs
its own hamq-journal + hamq-worker in exec mode) sharing one store directory
on this host, driven through hamq-supervisorctl and real STOMP clients.

Each node runs in its own process group (the supervisor is the leader; its
core and workers inherit it), so "kill -9 the whole node" is killpg.
Built on tests/broker/hamqtest.py (TAP main, Skip, STOMP helpers).
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker"))
import hamqtest  # noqa: E402
from hamqtest import Skip, binary, free_offset, main, port_free, stomp_conn, workdir  # noqa: E402,F401

HB_INTERVAL = "50ms"
HB_TIMEOUT_MS = 500


def free_tcp_port():
    for _ in range(200):
        p = random.randint(20000, 40000)
        if port_free(p):
            return p
    raise RuntimeError("no free port")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


class Node:
    def __init__(self, pair, node_id, role, priority=100, extra=()):
        self.pair = pair
        self.id = node_id
        self.role = role
        self.priority = priority
        self.offset = free_offset()
        self.hb_port = free_tcp_port()
        self.instance = "ha%d_%s_%d" % (os.getpid(), node_id, self.offset)
        self.extra = list(extra)
        self.proc = None
        self.logpath = os.path.join(pair.dir, node_id + ".log")
        self.peers = []

    @property
    def stomp_port(self):
        return 61613 + self.offset

    def argv(self):
        return [binary("hamq-supervisor"), "--node-id", self.id, "--role", self.role,
                "--priority", str(self.priority), "--store", self.pair.store,
                "--listen", "tcp://127.0.0.1:%d" % self.hb_port,
                "--peers", ",".join("tcp://127.0.0.1:%d" % p.hb_port for p in self.peers),
                "--heartbeat-interval", HB_INTERVAL,
                "--heartbeat-timeout", "%dms" % HB_TIMEOUT_MS,
                "--frozen-timeout", str(HB_TIMEOUT_MS),
                "--port-offset", str(self.offset), "--workers", "1",
                "--instance", self.instance,
                "--run-dir", self.pair.run, "--log-level", "info"] + self.extra

    def start(self):
        log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    def ctl(self, *args, check=True, timeout=45):
        r = subprocess.run([binary("hamq-supervisorctl"), "--run-dir", self.pair.run,
                            "--node", self.id] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("hamq-supervisorctl %s on %s failed (%d): %s%s" % (
                " ".join(args), self.id, r.returncode, r.stdout, r.stderr))
        return r

    def status(self):
        r = self.ctl("status", "--json", check=False, timeout=10)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)["nodes"][0]

    def is_serving(self):
        s = self.status()
        return s is not None and s["role"] == "live" and s["serving"] == "yes"

    def wait_serving(self, timeout=15):
        wait_for(self.is_serving, timeout, "%s live and serving" % self.id)
        hamqtest.wait_port(self.stomp_port, timeout=timeout)

    def wait_role(self, role, timeout=15):
        wait_for(lambda: (self.status() or {}).get("role") == role, timeout,
                 "%s to be %s" % (self.id, role))

    def core_pid(self):
        return int(self.status()["pid.core"])

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def events(self, event):
        return [l for l in self.log().splitlines() if "HAMQ_EVENT=%s " % event in l
                or "HAMQ_EVENT=%s}" % event in l]

    def last_duration_ms(self, event="serving"):
        ev = self.events(event)
        if not ev:
            return None
        m = re.search(r"HAMQ_DURATION_MS=(\d+)", ev[-1])
        return int(m.group(1)) if m else None

    def kill9_node(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait()
        # a core killed with -9 leaves its segment and doorbells in /dev/shm
        for f in os.listdir("/dev/shm"):
            if f == "hamq." + self.instance or f.startswith("hamq.%s.bell." % self.instance):
                try:
                    os.unlink(os.path.join("/dev/shm", f))
                except OSError:
                    pass


class Pair:
    """N supervisors on one shared store: nodes[0] primary, the others backups."""

    def __init__(self, n=2, priorities=None, extra=()):
        self.dir = workdir("hamq-ha-")
        self.store = os.path.join(self.dir, "store")
        self.run = os.path.join(self.dir, "run")
        os.makedirs(self.store)
        os.makedirs(self.run)
        self.nodes = []
        for i in range(n):
            pr = priorities[i] if priorities else 100
            self.nodes.append(Node(self, "node%d" % (i + 1), "primary" if i == 0 else "backup",
                                   pr, extra))
        for nd in self.nodes:
            nd.peers = [p for p in self.nodes if p is not nd]

    def start(self):
        self.nodes[0].start()
        self.nodes[0].wait_serving()
        for nd in self.nodes[1:]:
            nd.start()
            wait_for(lambda nd=nd: nd.events("backup-ready"), 15, "%s backup-ready" % nd.id)
        for nd in self.nodes:
            wait_for(lambda nd=nd: all(
                (nd.status() or {}).get("peers", {}).get(p.id, {}).get("state") == "alive"
                for p in nd.peers), 10, "%s to see its peers" % nd.id)
        return self

    def live(self):
        for nd in self.nodes:
            s = nd.status()
            if s and s["role"] == "live":
                return nd
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for nd in self.nodes:
            nd.stop()
        bad = [nd for nd in self.nodes if os.path.exists(nd.logpath) and any(
            m in nd.log() for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:"))]
        if bad and exc[0] is None:
            for nd in bad:
                for l in nd.log().splitlines():
                    print("# " + l[:300])
            shutil.rmtree(self.dir, ignore_errors=True)
            raise AssertionError("sanitizer report in the log of " + ", ".join(
                nd.id for nd in bad))
        if exc[0] is not None:
            for nd in self.nodes:
                if os.path.exists(nd.logpath):
                    tail = nd.log().splitlines()[-40:]
                    print("# --- log of %s (last 40 lines)" % nd.id)
                    for l in tail:
                        print("# " + l[:300])
        shutil.rmtree(self.dir, ignore_errors=True)


def send_persistent(port, n, prefix, queue="/queue/ha", timeout=20):
    """Sends n persistent messages with receipts; returns the bodies receipted."""
    c = connect(port)
    try:
        for i in range(n):
            c.send(queue, "%s-%d" % (prefix, i), headers={"persistent": "true",
                                                          "receipt": "%s-%d" % (prefix, i)})
        c.collector.wait(lambda: len(c.collector.receipts) >= n, timeout,
                         "%d receipts" % n)
        return sorted("%s" % r for r in c.collector.receipts)
    finally:
        c.disconnect()


def connect(port, attempts=10):
    """A STOMP connection; retried like a failover client would (a dying worker of a
    killed core may still accept on the SO_REUSEPORT port for a few ms)."""
    import stomp
    for i in range(attempts):
        try:
            return stomp_conn(port)
        except (stomp.exception.ConnectFailedException, stomp.exception.NotConnectedException,
                OSError):
            # OSError: the connection was queued on the listener of a worker that was
            # exiting (its core was killed) and reset when that listener closed;
            # NotConnectedException: the same reset, seen by stomp.py before CONNECT went out
            if i == attempts - 1:
                raise
            time.sleep(0.1)


def drain(port, queue="/queue/ha", idle=1.0, timeout=30, expect=None):
    """Consumes (client-individual acks) until the queue has been idle for `idle` s
    (and, with expect, not before `expect` messages came or `timeout` passed)."""
    c = connect(port)
    try:
        c.subscribe(queue, id="d", ack="client-individual")
        deadline = time.monotonic() + timeout
        seen = 0
        last = time.monotonic()
        while time.monotonic() < deadline:
            msgs = c.collector.messages
            while seen < len(msgs):
                f = msgs[seen]
                c.ack(f.headers.get("ack") or f.headers["message-id"])
                seen += 1
                last = time.monotonic()
            waiting = expect is not None and seen < expect
            if not waiting and time.monotonic() - last >= idle:
                break
            time.sleep(0.02)
        time.sleep(0.2)  # acks out
        return [f.body for f in c.collector.messages]
    finally:
        c.disconnect()


def same(got, sent):
    """Assertion text for two message lists that should be equal."""
    g, s_ = set(got), set(sent)
    return "got %d (%d distinct), want %d: missing %s, extra %s" % (
        len(got), len(g), len(sent), sorted(s_ - g)[:5], sorted(g - s_)[:5])


def figure(name, value, unit="ms"):
    print("# FIGURE %s: %s %s" % (name, value, unit), flush=True)
