"""hamqtest — the harness of hamq's integration tests (real broker processes,
real clients). Used by tests/broker/*.py and tests/ha/*.py.

A test file defines functions named as sentences (test_anycast_send_reaches_one
_consumer) and ends with `hamqtest.main(globals())`, which runs each one with a
time limit and prints TAP (one line per behaviour) for automake's TAP driver.
Skips: raise hamqtest.Skip("reason").
"""
import atexit
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILDDIR = os.environ.get("HAMQ_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("HAMQ_SRCDIR") or BUILDDIR
TEST_TIMEOUT = int(os.environ.get("HAMQ_TEST_TIMEOUT", "120"))


class Skip(Exception):
    pass


def binary(name):
    for d in ("daemons", "supervisor", "tools"):
        p = os.path.join(BUILDDIR, d, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(name + " not built in " + BUILDDIR)


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


OFFSET_LOCKS = "/tmp/hamq-test-offsets"
_offset_locks = []  # held for the life of this process


def _reserve_offset(off):
    """Tests run in parallel (make -j2 check): an offset is reserved with an flock'ed
    file while this process lives, so that a backup that does not listen yet (its
    standby core binds nothing) keeps its ports from another test."""
    import fcntl
    os.makedirs(OFFSET_LOCKS, exist_ok=True)
    fd = os.open(os.path.join(OFFSET_LOCKS, "%d.lock" % off), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _offset_locks.append(fd)
    return True


def free_offset(bases=(61616, 61613, 5672)):
    """A port offset under which every base port is free, reserved for this process.
    Multiples of 10 only: 61616+a and 61613+b never meet for two such offsets, so
    two brokers with different offsets never share a port."""
    for _ in range(200):
        off = 10 * random.randint(10, 99)
        if all(port_free(b + off) for b in bases) and _reserve_offset(off):
            return off
    raise RuntimeError("no free port offset found")


def wait_port(port, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("broker exited with %s before listening" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("port %d not listening after %.0fs" % (port, timeout))


def raw(port, data, read_timeout=3.0):
    """Sends raw bytes; returns (answer bytes, closed-by-broker)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    s.sendall(data)
    out = b""
    deadline = time.monotonic() + read_timeout
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except socket.timeout:
        return out, False
    except ConnectionResetError:
        return out, True
    finally:
        s.close()
    return out, False


def workdir(prefix="hamq-test-"):
    """A scratch dir on a real (non-tmpfs) file system under the build tree."""
    base = os.path.join(BUILDDIR, "tests", "tmp")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=base)


_instances = []


_procs = []  # every broker process a test started


def _remove_shm():
    """A broker killed with SIGKILL cannot unlink its shm segment and doorbells; a
    broker a test forgot to stop would run on after the suite: killed and named."""
    for p in _procs:
        if p.poll() is None:
            print("# a test left broker pid %d running: killed" % p.pid, flush=True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
    for inst in _instances:
        for f in glob.glob("/dev/shm/hamq.%s" % inst) + glob.glob("/dev/shm/hamq.%s.bell.*" % inst):
            try:
                os.unlink(f)
            except OSError:
                pass


atexit.register(_remove_shm)


class Broker:
    """One hamq-journal --spawn-workers process (the whole broker)."""

    def __init__(self, store=None, workers=2, extra=(), offset=None, instance=None,
                 config=None):
        self.store = store or os.path.join(workdir(), "store")
        self.workers = workers
        self.offset = offset if offset is not None else free_offset()
        self.instance = instance or "t%d_%d" % (os.getpid(), self.offset)
        _instances.append(self.instance)
        self.extra = list(extra)
        self.config = config
        self.proc = None
        self.log = self.store + ".log"

    @property
    def stomp_port(self):
        return 61613 + self.offset

    @property
    def all_port(self):
        return 61616 + self.offset

    @property
    def amqp_port(self):
        return 5672 + self.offset

    def argv(self):
        a = [binary("hamq-journal"), "--store", self.store, "--spawn-workers",
             str(self.workers), "--port-offset", str(self.offset), "--instance", self.instance]
        if self.config:
            a += ["--config", self.config]
        return a + self.extra

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _procs.append(self.proc)
        if wait:
            wait_port(self.stomp_port, proc=self.proc)
        return self

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("broker did not stop within %ds of SIGTERM" % timeout)
        self.check_sanitizers()
        return self.proc.returncode if self.proc else None

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: AddressSanitizer")

    def check_sanitizers(self):
        """Fails if any broker process (core or worker) reported a sanitizer finding."""
        log = self.log_text()
        for mark in self.SANITIZER_MARKS:
            at = log.find(mark)
            if at >= 0:
                raise AssertionError("sanitizer report in %s:\n%s" % (self.log, log[at:at + 3000]))

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            # The whole process group: core and workers die together, like a node crash.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.check_sanitizers()

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        if self.proc is not None and self.proc.poll() is None:
            return self  # `with Broker(...).start() as b` must not start a second one
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            if self.proc and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def stomp_conn(port, version="1.2", wait=True, heartbeats=(0, 0), headers=None, **kw):
    import stomp
    cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11,
           "1.2": stomp.Connection12}[version]
    if version == "1.0":
        c = cls([("127.0.0.1", port)], **kw)
    else:
        c = cls([("127.0.0.1", port)], heartbeats=heartbeats, **kw)
    listener = Collector()
    c.set_listener("t", listener)
    c.connect(wait=wait, headers=headers or {})
    c.collector = listener
    return c


class Collector:
    """A stomp.py listener that records frames, for tests to wait on."""

    def __init__(self):
        self.messages = []
        self.errors = []
        self.receipts = []
        self.disconnected = False

    def on_message(self, frame):
        self.messages.append(frame)

    def on_error(self, frame):
        self.errors.append(frame)

    def on_receipt(self, frame):
        self.receipts.append(frame.headers.get("receipt-id"))

    def on_disconnected(self):
        self.disconnected = True

    def wait(self, pred, timeout=20.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.01)
        raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))

    def wait_messages(self, n, timeout=20.0):
        self.wait(lambda: len(self.messages) >= n, timeout, "%d messages (have %d)" % (
            n, len(self.messages)))
        return self.messages


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def main(ns):
    tests = [(k, v) for k, v in ns.items() if k.startswith("test_") and callable(v)]
    only = os.environ.get("HAMQ_TEST_ONLY")
    if only:
        tests = [t for t in tests if only in t[0]]
    print("1..%d" % len(tests), flush=True)
    failed = 0
    signal.signal(signal.SIGALRM, _alarm)
    for i, (name, fn) in enumerate(tests, 1):
        t0 = time.monotonic()
        signal.alarm(TEST_TIMEOUT)
        try:
            fn()
            signal.alarm(0)
            print("ok %d - %s (%.1fs)" % (i, name, time.monotonic() - t0), flush=True)
        except Skip as e:
            signal.alarm(0)
            print("ok %d - %s # SKIP %s" % (i, name, e), flush=True)
        except _Timeout:
            failed += 1
            print("not ok %d - %s (timed out after %ds)" % (i, name, TEST_TIMEOUT), flush=True)
        except BaseException as e:  # noqa: B902 - report every failure as TAP
            signal.alarm(0)
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in traceback.format_exception(type(e), e, e.__traceback__):
                for l in line.rstrip().splitlines():
                    print("# " + l, flush=True)
    sys.exit(1 if failed else 0)
