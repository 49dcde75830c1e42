#!/usr/bin/python3
"""Unplanned failover: kill -9 of the live node, of its core only, SIGSTOP of its core."""
import os
import signal
import time

import hatest
from hatest import Pair, drain, figure, send_persistent, wait_for


def test_kill9_of_the_live_node_makes_the_backup_serve_every_receipted_message():
    with Pair().start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 200, "k9")
        n1.kill9_node()
        n2.wait_serving(timeout=15)
        figure("failover kill -9 node -> backup serving (supervisor clock)",
               n2.last_duration_ms())
        got = drain(n2.stomp_port, expect=len(sent))
        assert sorted(got) == sent, "lost %d, extra %d" % (
            len(set(sent) - set(got)), len(set(got) - set(sent)))
        assert len(got) == len(set(got)), "duplicates"
        assert n2.events("promote") and n2.events("failover")
        assert n2.status()["epoch"] > 2


def test_kill9_of_the_live_core_only_is_restarted_by_its_own_supervisor():
    with Pair().start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 50, "core")
        old = n1.core_pid()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: n1.is_serving() and n1.core_pid() not in (0, old), 15,
                 "node1 serving with a new core")
        assert n2.status()["role"] == "backup"
        assert "restarting it here" in n1.log()
        got = drain(n1.stomp_port, expect=len(sent))
        assert sorted(got) == sent, hatest.same(got, sent)


def test_a_frozen_core_is_killed_before_the_backup_takes_over():
    with Pair().start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 50, "frz")
        core = n1.core_pid()
        t0 = time.monotonic()
        os.kill(core, signal.SIGSTOP)
        n2.wait_serving(timeout=20)
        figure("frozen core (SIGSTOP) -> backup serving (test clock)",
               int((time.monotonic() - t0) * 1000))
        assert n1.events("core-frozen"), "no core-frozen event on node1"
        wait_for(lambda: not os.path.exists("/proc/%d" % core) or
                 open("/proc/%d/stat" % core).read().split()[2] == "Z", 5, "frozen core dead")
        got = drain(n2.stomp_port, expect=len(sent))
        assert sorted(got) == sent, hatest.same(got, sent)
        n1.wait_role("backup", timeout=15)


if __name__ == "__main__":
    hatest.main(globals())
