#!/usr/bin/python3
"""Epoch fencing of a running core, and clear errors of hamq-supervisor."""
import os
import subprocess
import time

import hatest
from hamqtest import Broker
from hatest import Pair, drain, send_persistent, wait_for


def raise_epoch(store):
    with open(os.path.join(store, "store.epoch")) as f:
        e = int(f.read())
    tmp = os.path.join(store, ".store.epoch.test")
    with open(tmp, "w") as f:
        f.write("%d\n" % (e + 1))
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(store, "store.epoch"))
    return e + 1


def test_a_core_that_sees_a_newer_epoch_stops_and_exits_fenced():
    b = Broker(workers=1).start()
    try:
        sent = send_persistent(b.stomp_port, 20, "f")
        e = raise_epoch(b.store)
        b.proc.wait(timeout=5)
        assert b.proc.returncode == 3, b.proc.returncode
        assert "fenced" in b.log_text()
    finally:
        b.kill9()
    b2 = Broker(store=b.store, workers=1).start()
    try:
        assert "epoch %d" % e in b2.log_text()
        assert sorted(drain(b2.stomp_port, expect=len(sent))) == sent
    finally:
        b2.stop()


def test_a_live_whose_core_is_fenced_steps_down_and_the_backup_takes_over():
    with Pair().start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 20, "fd")
        raise_epoch(p.store)
        wait_for(lambda: n1.events("fenced"), 10, "node1 fenced event")
        n2.wait_serving()
        n1.wait_role("backup")
        assert sorted(drain(n2.stomp_port, expect=len(sent))) == sent


def run_sup(*args, env=None):
    return subprocess.run([hatest.binary("hamq-supervisor")] + list(args), capture_output=True,
                          text=True, timeout=20, env=env)


def test_bad_setups_are_refused_with_a_clear_error():
    d = hatest.workdir("hamq-supbad-")
    run = os.path.join(d, "run")
    base = ["--run-dir", run, "--listen", "tcp://127.0.0.1:%d" % hatest.free_tcp_port()]
    r = run_sup(*base, "--store", d)
    assert r.returncode == 2 and "node_id" in r.stderr, r.stderr
    r = run_sup(*base, "--node-id", "x", "--store", os.path.join(d, "missing"))
    assert r.returncode == 8 and "missing" in r.stderr, r.stderr
    r = run_sup(*base, "--node-id", "x", "--store", d, "--role", "leader")
    assert r.returncode == 2 and "role" in r.stderr, r.stderr
    r = run_sup(*base, "--node-id", "x", "--store", d, "--heartbeat-timeout", "soon")
    assert r.returncode == 2 and "heartbeat_timeout" in r.stderr, r.stderr
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=" + os.path.join(d, "no-bus"))
    r = run_sup(*base, "--node-id", "x", "--store", d, "--activation", "systemd", env=env)
    assert r.returncode == 1 and "cannot connect to the system bus" in r.stderr, r.stderr
    r = run_sup(*base, "--node-id", "x", "--store", d, "--curve-secret-key-file",
                os.path.join(d, "nokey"))
    assert r.returncode == 2 and "curve_peer_public_key_file" in r.stderr, r.stderr
    subprocess.run(["rm", "-rf", d])


def test_a_store_whose_file_system_ignores_locks_is_refused():
    d = hatest.workdir("hamq-nolock-")
    shim = os.path.join(hatest.hamqtest.BUILDDIR, "tests", "ha", "nolocks.so")
    env = dict(os.environ, LD_PRELOAD=shim,
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    r = run_sup("--run-dir", os.path.join(d, "run"), "--listen",
                "tcp://127.0.0.1:%d" % hatest.free_tcp_port(), "--node-id", "x", "--store", d,
                env=env)
    assert r.returncode == 8, (r.returncode, r.stderr)
    assert "does not honour OFD locks" in r.stderr and d in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, "run", "supervisor-x.sock"))
    subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    hatest.main(globals())
