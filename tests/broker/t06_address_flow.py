"""Integration scenario 06: per-address memory limits ([broker] address_max_memory,
[address NAME] max_memory; Artemis max-size-bytes with address-full-policy BLOCK).
A producer to a full address is held (its receipt does not come, nothing is dropped)
while producers to other addresses keep getting receipts; a consumer draining the
address releases it, and every message arrives exactly once, in order. A SEND in a
transaction waits the same way. Limits hold across a restart (the core reports the
restored full address to its workers at once). A bad limit is refused at start,
naming the file, the line and the key.
Real hamq-journal --spawn-workers, real python3-stomp."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamqtest as ht  # noqa: E402

BODY = "x" * 1000
LIMIT = "64K"  # about 60 messages of BODY (each ~1.1 KB encoded)
HELD_S = 2.0   # a receipt missing this long means the SEND is held


def write_config(text):
    path = os.path.join(ht.workdir(), "hamq.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def has_receipt(conn, rid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rid in conn.collector.receipts:
            return True
        time.sleep(0.01)
    return False


def fill_until_held(p, dest, prefix, most=200, persistent=False):
    """Sends one message at a time, each waiting for its receipt, until one is held.
    Returns the index of the held SEND (every earlier one was receipted)."""
    headers = {"persistent": "true"} if persistent else {}
    for i in range(most):
        p.send(dest, "%s%04d%s" % (prefix, i, BODY), headers=dict(headers, receipt="%s%d" % (prefix, i)))
        if not has_receipt(p, "%s%d" % (prefix, i), HELD_S):
            return i
    raise AssertionError("no back-pressure: %d messages (%d KB) to %s were all receipted"
                         % (most, most * len(BODY) // 1024, dest))


def drain_and_check(b, dest, prefix, n, extra_check=None):
    c = ht.stomp_conn(b.stomp_port)
    c.subscribe(dest, id="1", ack="auto")
    if extra_check:
        extra_check()
    c.collector.wait(lambda: len(c.collector.messages) >= n, timeout=30,
                     what="%d messages on %s" % (n, dest))
    time.sleep(0.3)  # a duplicate would show up now
    bodies = [m.body[:len(prefix) + 4] for m in c.collector.messages]
    assert bodies == ["%s%04d" % (prefix, i) for i in range(n)], bodies
    c.disconnect()


def test_a_producer_to_a_full_address_waits_while_other_addresses_flow_and_nothing_is_lost():
    # The default limit applies to "full"; "free" has its own section saying 0 = none.
    conf = write_config("[broker]\naddress_max_memory = %s\n\n[address free]\nmax_memory = 0\n"
                        % LIMIT)
    with ht.Broker(workers=1, config=conf) as b:
        p = ht.stomp_conn(b.stomp_port)
        held = fill_until_held(p, "/queue/full", "f")
        # The limit, not something earlier: most of 64 KB went in first.
        assert held >= 40, "blocked after only %d messages of 1 KB" % held
        assert "address full holds" in b.log_text() and "producers to it are blocked" in b.log_text()
        # Another producer, another address: receipts keep coming, well past 64 KB.
        q = ht.stomp_conn(b.stomp_port)
        for i in range(150):
            q.send("/queue/free", "g%04d%s" % (i, BODY), headers={"receipt": "g%d" % i})
        q.collector.wait(lambda: len(q.collector.receipts) == 150, timeout=20,
                         what="150 receipts from an address without a limit")
        # The held producer is still held.
        assert not has_receipt(p, "f%d" % held, 0.5)
        assert len(p.collector.errors) == 0, p.collector.errors[0].body

        def released():
            assert has_receipt(p, "f%d" % held, 20), "draining did not release the producer"
        c_total = held + 1 + 60
        # Draining releases the producer; then it sends 60 more (it may be held and
        # released again on the way).
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe("/queue/full", id="1", ack="auto")
        released()
        for i in range(held + 1, c_total):
            p.send("/queue/full", "f%04d%s" % (i, BODY), headers={"receipt": "f%d" % i})
        p.collector.wait(lambda: "f%d" % (c_total - 1) in p.collector.receipts, timeout=30,
                         what="the last receipt")
        c.collector.wait(lambda: len(c.collector.messages) >= c_total, timeout=30,
                         what="%d messages" % c_total)
        time.sleep(0.3)
        got = [m.body[:5] for m in c.collector.messages]
        assert got == ["f%04d" % i for i in range(c_total)], "lost, doubled or reordered"
        assert "producers to it resume" in b.log_text()
        drain_and_check(b, "/queue/free", "g", 150)
        for x in (p, q, c):
            x.disconnect()


def test_a_send_in_a_transaction_to_a_full_address_waits_for_its_release():
    conf = write_config("[address full]\nmax_memory = %s\n" % LIMIT)
    with ht.Broker(workers=1, config=conf) as b:
        p = ht.stomp_conn(b.stomp_port)
        held = fill_until_held(p, "/queue/full", "f")
        t = ht.stomp_conn(b.stomp_port)
        t.begin(transaction="tx1")
        t.send("/queue/full", "t0000" + BODY, transaction="tx1", headers={"receipt": "t0"})
        assert not has_receipt(t, "t0", HELD_S), "a SEND in a transaction to a full address passed"
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe("/queue/full", id="1", ack="auto")
        c.collector.wait(lambda: len(c.collector.messages) >= held + 1, timeout=30,
                         what="the held producer's messages")
        assert has_receipt(t, "t0", 20), "the transactional SEND was not released"
        t.commit(transaction="tx1", headers={"receipt": "commit"})
        assert has_receipt(t, "commit", 20)
        c.collector.wait(lambda: len(c.collector.messages) >= held + 2, timeout=20,
                         what="the committed message")
        time.sleep(0.3)
        bodies = [m.body[:5] for m in c.collector.messages]
        assert bodies == ["f%04d" % i for i in range(held + 1)] + ["t0000"], bodies
        for x in (p, t, c):
            x.disconnect()


def test_a_full_address_is_still_full_after_a_restart():
    conf = write_config("[address full]\nmax_memory = %s\n" % LIMIT)
    b = ht.Broker(workers=1, config=conf).start()
    try:
        p = ht.stomp_conn(b.stomp_port)
        held = fill_until_held(p, "/queue/full", "f", persistent=True)
        p.disconnect()
        b.stop()
        # The held SEND was never receipted: it may or may not be stored. What
        # was receipted must be there, once; the address must be full at once.
        b.start()
        p = ht.stomp_conn(b.stomp_port)
        p.send("/queue/full", "late" + BODY, headers={"receipt": "late", "persistent": "true"})
        assert not has_receipt(p, "late", HELD_S), "a restarted core forgot the full address"
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe("/queue/full", id="1", ack="auto")
        assert has_receipt(p, "late", 20), "draining after the restart did not release"
        c.collector.wait(lambda: any(m.body.startswith("late") for m in c.collector.messages),
                         timeout=20, what="the late message")
        time.sleep(0.3)
        bodies = [m.body[:5] for m in c.collector.messages]
        want = ["f%04d" % i for i in range(held)]
        assert bodies[:held] == want, "receipted messages lost or doubled across the restart"
        assert bodies[held:] in (["f%04d" % held, "late" + BODY[0]], ["late" + BODY[0]]), bodies[held:]
        p.disconnect()
        c.disconnect()
    finally:
        b.stop()


def test_a_bad_address_limit_is_refused_at_start_naming_file_line_and_key():
    conf = write_config("[broker]\nworkers = 1\n\n[address orders]\nmax_memory = lots\n")
    b = ht.Broker(workers=1, config=conf)
    r = subprocess.run(b.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 2, (r.returncode, out)
    assert "%s:5: [address orders] max_memory = \"lots\": not a size" % conf in out, out
    conf = write_config("[broker]\naddress_max_memory = 1X\n")
    r = subprocess.run(ht.Broker(workers=1, config=conf).argv(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 2 and "%s:2: [broker] address_max_memory = \"1X\"" % conf in out, out


if __name__ == "__main__":
    ht.main(globals())
