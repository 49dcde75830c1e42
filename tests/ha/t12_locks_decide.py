#!/usr/bin/python3
"""The store's locks, not the heartbeats, decide who writes."""
import os
import signal
import time

import hatest
from hatest import Pair, drain, send_persistent, wait_for


def test_a_backup_never_goes_live_while_a_core_without_supervisor_holds_writer_lock():
    with Pair().start() as p:
        n1, n2 = p.nodes
        a = send_persistent(n1.stomp_port, 30, "before")
        core = n1.core_pid()
        os.kill(n1.proc.pid, signal.SIGKILL)  # the supervisor only: its core keeps writing
        n1.proc.wait()
        wait_for(lambda: n2.events("writer-busy"), 10, "node2 to say writer.lock is held")
        b = send_persistent(n1.stomp_port, 30, "orphan")  # the orphan core still serves
        time.sleep(1.0)
        st = n2.status()
        assert st["role"] == "backup", st
        assert st.get("waiting_for") == "writer.lock", st
        assert "held by pid %d" % core in n2.events("writer-busy")[0]
        os.kill(core, signal.SIGKILL)
        n2.wait_serving()
        got = drain(n2.stomp_port, expect=len(a + b))
        assert sorted(got) == sorted(a + b), hatest.same(got, a + b)


def test_a_silent_live_that_still_holds_the_lock_keeps_the_backup_waiting():
    with Pair().start() as p:
        n1, n2 = p.nodes
        os.kill(n1.proc.pid, signal.SIGSTOP)  # no heartbeats, live.lock still held
        try:
            wait_for(lambda: n2.status()["peers"]["node1"]["state"] == "lost", 10, "node1 lost")
            wait_for(lambda: "no live peer is heard, but live.lock is still held" in n2.log(),
                     10, "node2 to say why it stays backup")
            assert n2.status()["role"] == "backup"
            sent = send_persistent(n1.stomp_port, 10, "silent")  # its core still serves
        finally:
            os.kill(n1.proc.pid, signal.SIGCONT)
        wait_for(lambda: n2.status()["peers"]["node1"]["state"] == "alive", 10, "node1 again")
        assert n1.status()["role"] == "live" and n2.status()["role"] == "backup"
        assert sorted(drain(n1.stomp_port, expect=len(sent))) == sent


if __name__ == "__main__":
    hatest.main(globals())
