#!/usr/bin/python3
"""Two "hosts" as network namespaces (node1, node2 and a client, joined by a
bridge; 10.x addresses only inside them), ONE shared store directory, both
hamq-supervisors with the virtual IP. A producer in the client namespace sends
durable messages with receipts and a duplicate id (_AMQ_DUPL_ID) THROUGH THE
VIP, without pause; 20 times, the live node's whole process group is killed
with -9, alternating nodes. The producer behaves as a failover client: it
reconnects to the same VIP and resends everything not yet receipted, with the
same duplicate id. After each kill the client must reach the new live through
the VIP (its neighbour entry for the VIP now holds the new live's MAC), and
the killed node restarts, removes the VIP it left behind and is backup-ready
before the next kill. At the end, a drain through the VIP must return every
message exactly once with its exact content: 0 lost, 0 duplicates.

Prints, per cycle, kill -9 -> STOMP CONNECTED through the VIP (this script's
clock) and the supervisor's lock->serving figure; no timing assertion.
Root only (skips otherwise): the test creates and deletes its namespaces.
The test process itself moves into the client namespace (setns), so every
socket it opens is the client's; the nodes run under `ip netns exec`.
"""
import ctypes
import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time

import hatest  # first: it puts tests/broker on sys.path
import hamqtest
from hatest import Skip, binary, figure, wait_for

CYCLES = 20
VIP = "10.81.0.50"
NODE_IP = {"node1": "10.81.0.1", "node2": "10.81.0.2"}
CLIENT_IP = "10.81.0.100"
STOMP_PORT = 61613          # port offset 0: each node has its own network stack
HB_PORT = 61620
QUEUE = "/queue/t21"
RATE = 1500                 # messages/s the producer aims at (bounds the drain)
WINDOW = 100                # unreceipted messages the producer allows per connection
LOAD_MIN = 100              # receipts on the current connection before a kill
WAIT = 40                   # seconds: upper bound of every single wait (ASan, loaded host)
CLONE_NEWNET = 0x40000000


def ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise AssertionError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Netns:
    """hamqt-<pid>-{sw,n1,n2,cl}: a bridge in sw, one veth per node/client."""

    def __init__(self):
        tag = "hamqt-%d-" % os.getpid()
        self.sw, self.cl = tag + "sw", tag + "cl"
        self.node = {"node1": tag + "n1", "node2": tag + "n2"}
        self.made = []
        self.home = None

    def create(self):
        for n in (self.sw, self.node["node1"], self.node["node2"], self.cl):
            ip("netns", "add", n)
            self.made.append(n)
            ip("-n", n, "link", "set", "lo", "up")
        ip("-n", self.sw, "link", "add", "br0", "type", "bridge")
        ip("-n", self.sw, "link", "set", "br0", "up")
        hosts = [(self.node["node1"], NODE_IP["node1"]), (self.node["node2"], NODE_IP["node2"]),
                 (self.cl, CLIENT_IP)]
        for i, (ns, addr) in enumerate(hosts, 1):
            ip("-n", self.sw, "link", "add", "p%d" % i, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            ip("-n", self.sw, "link", "set", "p%d" % i, "master", "br0", "up")
            ip("-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        return self

    def enter_client(self):
        """Moves this (still single-threaded) process into the client namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.cl, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise AssertionError("setns(%s): %s" % (self.cl, os.strerror(ctypes.get_errno())))
        finally:
            os.close(fd)

    def destroy(self):
        if self.home is not None:
            ctypes.CDLL(None, use_errno=True).setns(self.home, CLONE_NEWNET)
            os.close(self.home)
            self.home = None
        for n in self.made:
            for pid in ip("netns", "pids", n, check=False).split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            ip("netns", "del", n, check=False)
        self.made = []

    def mac(self, ns):
        return ip("-n", ns, "-br", "link", "show", "eth0").split()[2]

    def client_mac_of_vip(self):
        words = ip("-n", self.cl, "neigh", "show", VIP).split()
        return words[words.index("lladdr") + 1] if "lladdr" in words else None

    def has_vip(self, ns):
        return (" %s/" % VIP) in ip("-n", ns, "addr", "show", "eth0")


class NsNode(hatest.Node):
    """A hatest.Node whose supervisor (and so its core and workers) runs in its namespace."""

    def __init__(self, pair, node_id, role, ns, peer_ip):
        super().__init__(pair, node_id, role)
        self.ns = ns
        self.peer_ip = peer_ip
        self.offset = 0
        self.instance = "t21_%d_%s" % (os.getpid(), node_id)

    def argv(self):
        return ["ip", "netns", "exec", self.ns,  # execs: the supervisor keeps ip's pid
                binary("hamq-supervisor"), "--node-id", self.id, "--role", self.role,
                "--store", self.pair.store, "--listen", "tcp://0.0.0.0:%d" % HB_PORT,
                "--peers", "tcp://%s:%d" % (self.peer_ip, HB_PORT),
                "--heartbeat-interval", hatest.HB_INTERVAL,
                "--heartbeat-timeout", "%dms" % hatest.HB_TIMEOUT_MS,
                "--frozen-timeout", str(hatest.HB_TIMEOUT_MS),
                "--port-offset", "0", "--workers", "1", "--instance", self.instance,
                "--vip", VIP + "/32", "--vip-interface", "eth0",
                "--run-dir", self.pair.run, "--log-level", "info"]

    def wait_serving(self, timeout=WAIT):
        wait_for(self.is_serving, timeout, "%s live and serving" % self.id)
        wait_for(lambda: stomp_connected(NODE_IP[self.id]), timeout,
                 "%s answering CONNECT on its own address" % self.id)


class NsPair(hatest.Pair):
    def __init__(self, nets):  # pylint: disable=super-init-not-called
        self.dir = hamqtest.workdir("hamq-t21-")
        self.store = os.path.join(self.dir, "store")
        self.run = os.path.join(self.dir, "run")
        os.makedirs(self.store)
        os.makedirs(self.run)
        self.nodes = [NsNode(self, "node1", "primary", nets.node["node1"], NODE_IP["node2"]),
                      NsNode(self, "node2", "backup", nets.node["node2"], NODE_IP["node1"])]
        for nd in self.nodes:
            nd.peers = [p for p in self.nodes if p is not nd]

    def start(self):
        """hatest.Pair.start with this test's longer bound (ASan on a loaded host)."""
        n1, n2 = self.nodes
        n1.start()
        n1.wait_serving()
        n2.start()
        wait_for(lambda: n2.events("backup-ready"), WAIT, "node2 backup-ready")
        for a, b in ((n1, n2), (n2, n1)):
            wait_for(lambda a=a, b=b: (a.status() or {}).get("peers", {}).get(b.id, {}).get(
                "state") == "alive", WAIT, "%s to see %s" % (a.id, b.id))
        return self


# --- a minimal STOMP 1.2 client on a raw socket (exact control over every timeout) ---

def frame(cmd, headers, body=b""):
    h = "".join("%s:%s\n" % kv for kv in headers.items())
    if body:
        h += "content-length:%d\n" % len(body)
    return cmd.encode() + b"\n" + h.encode() + b"\n" + body + b"\0"


def parse(buf):
    """(command, headers, body, rest) of the first complete frame in buf, or None."""
    i = 0
    while i < len(buf) and buf[i] in b"\r\n":  # heart-beat EOLs
        i += 1
    end = buf.find(b"\n\n", i)
    if end < 0:
        return None
    lines = buf[i:end].decode(errors="replace").replace("\r", "").split("\n")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers.setdefault(k, v)
    start = end + 2
    if "content-length" in headers:
        stop = start + int(headers["content-length"])
        if len(buf) < stop + 1:
            return None
    else:
        stop = buf.find(b"\0", start)
        if stop < 0:
            return None
    return lines[0], headers, buf[start:stop], buf[stop + 1:]


class Link:
    """One STOMP connection; a reader thread hands RECEIPT/MESSAGE/ERROR to callbacks."""

    def __init__(self, host, on_frame, timeout=1.0):
        self.sock = socket.create_connection((host, STOMP_PORT), timeout=timeout)
        self.closed = False
        self.on_frame = on_frame
        try:
            self.sock.sendall(frame("CONNECT", {"accept-version": "1.2", "host": "/",
                                                "heart-beat": "0,0"}))
            buf = b""
            deadline = time.monotonic() + timeout
            while (f := parse(buf)) is None:
                if time.monotonic() > deadline:
                    raise ConnectionError("no CONNECTED within %.1f s" % timeout)
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionError("closed before CONNECTED")
                buf += d
            if f[0] != "CONNECTED":
                raise ConnectionError("%s instead of CONNECTED: %s" % (f[0], f[1]))
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._read, args=(f[3],), daemon=True)
        self.reader.start()

    def _read(self, buf):
        try:
            while True:
                while (f := parse(buf)) is not None:
                    self.on_frame(self, f[0], f[1], f[2])
                    buf = f[3]
                d = self.sock.recv(262144)
                if not d:
                    break
                buf += d
        except OSError:
            pass
        self.closed = True

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.reader.join(5)
        self.sock.close()


def stomp_connected(host, timeout=0.3):
    try:
        Link(host, lambda *a: None, timeout).close()
        return True
    except (OSError, ConnectionError):
        return False


def body_of(mid):
    """The content of message mid: its id and bytes derived from it (checked on drain)."""
    return (mid + " " + hashlib.sha256(mid.encode()).hexdigest() * 4).encode()


def send_frame(mid):
    return frame("SEND", {"destination": QUEUE, "persistent": "true", "receipt": mid,
                          "_AMQ_DUPL_ID": mid}, body_of(mid))


class Producer(threading.Thread):
    """Sends m-<n> without pause through the VIP at about RATE/s with a window of
    WINDOW receipts. When its connection dies it reconnects to the VIP (bounded)
    and first resends, with the same duplicate id, every message not receipted."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sent = []             # ids, in order of first send
        self.receipted = set()
        self.gen = 0               # connections made so far
        self.upto = 0              # len(sent) when the current connection was made
        self.conn_sent = 0
        self.conn_receipts = 0
        self.resent = []           # per connection after the first
        self.errors = []
        self.failure = None
        self.link = None
        self.stop = threading.Event()

    def _on_frame(self, link, cmd, headers, _body):
        if cmd == "RECEIPT":
            self.receipted.add(headers.get("receipt-id"))
            if link is self.link:
                self.conn_receipts += 1
        elif cmd == "ERROR":
            self.errors.append(headers.get("message", "?"))

    def _connect(self):
        deadline = time.monotonic() + WAIT
        last = None
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                return Link(VIP, self._on_frame)
            except (OSError, ConnectionError) as e:
                last = e
                time.sleep(0.005)
        if not self.stop.is_set():
            raise AssertionError("no broker answered through the VIP for %d s: %s" % (WAIT, last))
        return None

    def _reconnect(self):
        if self.link is not None:
            self.link.close()
        self.link = None
        link = self._connect()
        if link is None:
            return
        self.conn_sent = self.conn_receipts = 0
        self.upto = len(self.sent)
        self.link = link
        pending = [m for m in self.sent if m not in self.receipted]
        if self.gen > 0:
            self.resent.append(len(pending))
        self.gen += 1
        try:
            link.send(b"".join(send_frame(m) for m in pending))
            self.conn_sent += len(pending)
        except OSError:
            pass  # died again: the next round resends them

    def run(self):
        try:
            self._run()
        except BaseException as e:  # noqa: B902 - reported by the test thread
            self.failure = e

    def _run(self):
        pace = time.monotonic()
        while not self.stop.is_set():
            if self.link is None or self.link.closed:
                self._reconnect()
                continue
            now = time.monotonic()
            if self.conn_sent - self.conn_receipts >= WINDOW or now < pace:
                time.sleep(0.001)
                continue
            pace = max(pace + 1.0 / RATE, now - 0.05)
            mid = "m-%d" % len(self.sent)
            self.sent.append(mid)  # first: a send that fails is resent after reconnecting
            self.conn_sent += 1
            try:
                self.link.send(send_frame(mid))
            except OSError:
                pass

    def check(self):
        if self.failure is not None:
            raise AssertionError("producer: %r" % self.failure)

    def state(self):
        return ("producer: connection %d%s, %d sent, %d receipted, %d sent/%d receipts on this "
                "connection, %d ERROR frames %s" % (
                    self.gen, " (closed)" if self.link is None or self.link.closed else "",
                    len(self.sent), len(self.receipted), self.conn_sent, self.conn_receipts,
                    len(self.errors), self.errors[:3]))

    def caught_up(self, gen):
        """Connection number gen is up and everything sent before it is receipted."""
        self.check()
        return (self.gen == gen and self.link is not None and not self.link.closed
                and self.conn_receipts > 0
                and all(m in self.receipted for m in self.sent[:self.upto]))


def drain(expect):
    """Consumes QUEUE through the VIP (client-individual acks) until `expect` messages
    came and then 1 s passed without one (so a duplicate would still show up)."""
    got, lock = [], threading.Lock()

    def on_frame(link, cmd, headers, body):
        if cmd == "MESSAGE":
            with lock:
                got.append((body.split(b" ", 1)[0].decode(errors="replace"), body))
            try:
                link.send(frame("ACK", {"id": headers.get("ack") or headers["message-id"]}))
            except OSError:
                pass
    link = wait_for(lambda: _try_link(on_frame), WAIT, "a drain connection through the VIP")
    try:
        link.send(frame("SUBSCRIBE", {"destination": QUEUE, "id": "d",
                                      "ack": "client-individual"}))
        deadline = time.monotonic() + 120
        seen, last = 0, time.monotonic()
        while time.monotonic() < deadline and not link.closed:
            if len(got) != seen:
                seen, last = len(got), time.monotonic()
            elif time.monotonic() - last >= (1.0 if seen >= expect else 15.0):
                break  # 1 s for a late duplicate; 15 s without a message: they are lost
            time.sleep(0.02)
        assert not link.closed, "the drain connection closed after %d messages" % len(got)
        link.send(frame("DISCONNECT", {"receipt": "bye"}))
        time.sleep(0.2)
    finally:
        link.close()
    return got


def _try_link(on_frame):
    try:
        return Link(VIP, on_frame)
    except (OSError, ConnectionError):
        return None


def one_cycle(p, nets, prod, cycle, times):
    live = p.live()
    assert live is not None, "no live node before cycle %d" % (cycle + 1)
    backup = [n for n in p.nodes if n is not live][0]
    wait_for(lambda: prod.caught_up(cycle + 1) and prod.conn_receipts >= LOAD_MIN, WAIT,
             "the producer under load through the VIP (cycle %d)" % (cycle + 1))
    ready_before = len(live.events("backup-ready"))
    t0 = time.monotonic()
    live.kill9_node()
    wait_for(lambda: stomp_connected(VIP, 1.0), WAIT,
             "a STOMP CONNECT answered through the VIP after killing %s" % live.id)
    ms = (time.monotonic() - t0) * 1000.0
    wait_for(lambda: (backup.status() or {}).get("vip_owned") == "yes" and backup.is_serving(),
             WAIT, "%s live, serving, owning the VIP" % backup.id)
    wait_for(lambda: prod.caught_up(cycle + 2), WAIT,
             "the producer reconnected through the VIP with its %d unconfirmed messages "
             "receipted by %s" % (len(prod.sent) - prod.upto, backup.id))
    new_mac = nets.mac(backup.ns)
    try:
        wait_for(lambda: nets.client_mac_of_vip() == new_mac, WAIT,
                 "the client's neighbour entry for the VIP to be %s's MAC %s" % (backup.id,
                                                                                 new_mac))
    except AssertionError as e:
        raise AssertionError("%s (it is %s)" % (e, nets.client_mac_of_vip())) from None
    assert nets.has_vip(backup.ns), "the VIP is not on %s's eth0" % backup.id
    sup = backup.last_duration_ms()
    times.append(ms)
    print("# cycle %2d: kill -9 %s -> CONNECTED through the VIP from %s in %.0f ms "
          "(supervisor lock->serving %s ms); %d unconfirmed resent"
          % (cycle + 1, live.id, backup.id, ms, sup, prod.resent[-1]), flush=True)
    live.start()
    wait_for(lambda: len(live.events("backup-ready")) > ready_before, WAIT,
             "%s restarted and backup-ready" % live.id)
    wait_for(lambda: (live.status() or {}).get("role") == "backup", WAIT,
             "%s backup" % live.id)
    wait_for(lambda: not nets.has_vip(live.ns), WAIT,
             "%s to remove the VIP its killed predecessor left on eth0" % live.id)
    for a, b in ((live, backup), (backup, live)):
        wait_for(lambda a=a, b=b: (a.status() or {}).get("peers", {}).get(b.id, {}).get(
            "state") == "alive", WAIT, "%s to see %s" % (a.id, b.id))


def test_twenty_kill9_cycles_between_two_hosts_through_the_vip_lose_and_duplicate_nothing():
    if os.geteuid() != 0:
        raise Skip("network namespaces need root (CI runs this test as root)")
    if shutil.which("ip") is None:
        raise Skip("iproute2 (ip) is not installed")
    probe = "hamqt-%d-probe" % os.getpid()
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        raise Skip("cannot create a network namespace here")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    nets = Netns()
    try:
        nets.create()
        nets.enter_client()
        with NsPair(nets) as p:
            run_cycles(p, nets)
    finally:
        nets.destroy()


def run_cycles(p, nets):
    p.start()
    wait_for(lambda: (p.nodes[0].status() or {}).get("vip_owned") == "yes", WAIT,
             "node1 owning the VIP")
    prod = Producer()
    prod.start()
    times = []
    try:
        for cycle in range(CYCLES):
            one_cycle(p, nets, prod, cycle, times)
        wait_for(lambda: prod.caught_up(CYCLES + 1) and prod.conn_receipts >= LOAD_MIN, WAIT,
                 "the producer running after the last cycle")
    except AssertionError:
        print("# " + prod.state(), flush=True)
        raise
    finally:
        prod.stop.set()
        prod.join(WAIT)
    prod.check()
    wait_for(lambda: all(m in prod.receipted for m in prod.sent), WAIT,
             "receipts of the last %d messages" % (len(prod.sent) - len(prod.receipted)))
    figure("netns kill -9 -> STOMP CONNECTED through the VIP, per cycle (test clock)",
           [round(t) for t in times])
    st = sorted(times)
    print("# FIGURE netns kill -9 -> CONNECTED through the VIP: median %.0f ms (min %.0f, "
          "max %.0f, %d kills)" % (st[len(st) // 2], st[0], st[-1], len(st)), flush=True)
    print("# %d messages sent in %d cycles, %d unconfirmed resent with their duplicate id, "
          "%d ERROR frames %s" % (len(prod.sent), CYCLES, sum(prod.resent), len(prod.errors),
                                  prod.errors[:3]), flush=True)
    if prod.link is not None:
        prod.link.close()
    got = drain(len(prod.sent))
    ids = [mid for mid, _ in got]
    sent = set(prod.sent)
    missing = sent - set(ids)
    extra = set(ids) - sent
    dups = len(ids) - len(set(ids))
    bad = [mid for mid, body in got if mid in sent and body != body_of(mid)]
    figure("duplicates after resending unconfirmed messages with their duplicate id", dups,
           "messages")
    assert not missing, "%d receipted messages lost, e.g. %s" % (len(missing),
                                                                  sorted(missing)[:5])
    assert not extra, "%d messages nobody sent, e.g. %s" % (len(extra), sorted(extra)[:5])
    assert not bad, "%d messages with wrong content, e.g. %s" % (len(bad), bad[:5])
    assert dups == 0, "%d duplicates (%d resends)" % (dups, sum(prod.resent))


if __name__ == "__main__":
    hamqtest.TEST_TIMEOUT = max(hamqtest.TEST_TIMEOUT, 600)
    hatest.main(globals())
