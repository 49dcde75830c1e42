#!/usr/bin/python3
"""Planned failover and failback through hamq-supervisorctl; pause/resume; clear refusals."""
import hatest
from hatest import Pair, drain, figure, send_persistent, wait_for


def test_failover_from_the_live_node_hands_over_with_zero_loss():
    with Pair().start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 100, "fo")
        r = n1.ctl("failover")
        assert "node2 is live" in r.stdout, r.stdout
        figure("planned failover (hamq-supervisorctl on the live)",
               r.stdout.split("(")[-1].split()[0])
        n2.wait_serving()
        n1.wait_role("backup")
        got = drain(n2.stomp_port, expect=len(sent))
        assert sorted(got) == sent, hatest.same(got, sent)
        assert n1.events("demote")


def test_failover_asked_on_the_backup_and_failback_to_the_primary():
    with Pair().start() as p:
        n1, n2 = p.nodes
        a = send_persistent(n1.stomp_port, 40, "a")
        r = n2.ctl("failover")
        assert "node2 is live" in r.stdout, r.stdout
        n2.wait_serving()
        b = send_persistent(n2.stomp_port, 40, "b")
        assert n1.events("handover-request") and n1.events("demote")
        wait_for(lambda: n1.events("backup-ready"), 15, "node1 warm again")
        r = n1.ctl("failback")
        assert "node1 is live" in r.stdout, r.stdout
        figure("failback (hamq-supervisorctl failback)", r.stdout.split("(")[-1].split()[0])
        n1.wait_serving()
        got = drain(n1.stomp_port, expect=len(a + b))
        assert sorted(got) == sorted(a + b), hatest.same(got, a + b)
        assert n1.events("failback")


def test_allow_failback_makes_a_returning_primary_take_over_by_itself():
    with Pair(extra=("--allow-failback", "true")).start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 30, "afb")
        n1.kill9_node()
        n2.wait_serving()
        n1.start()
        wait_for(lambda: n1.is_serving(), 20, "node1 live again by failback")
        n2.wait_role("backup")
        got = drain(n1.stomp_port, expect=len(sent))
        assert sorted(got) == sent, hatest.same(got, sent)


def test_stopping_the_live_supervisor_hands_over_with_zero_loss():
    with Pair().start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 50, "stop")
        n1.stop()  # SIGTERM: the core flushes and exits before live.lock goes
        assert n1.proc.returncode == 0, n1.proc.returncode
        n2.wait_serving()
        got = drain(n2.stomp_port, expect=len(sent))
        assert sorted(got) == sent, hatest.same(got, sent)


def test_commands_that_make_no_sense_are_refused_clearly():
    with Pair().start() as p:
        n1, n2 = p.nodes
        r = n2.ctl("failback", check=False)
        assert r.returncode == 1 and "primary node only" in r.stderr, r.stderr
        r = n1.ctl("failback", check=False)
        assert r.returncode == 1 and "already live" in r.stderr, r.stderr
        n2.stop()
        wait_for(lambda: n1.status()["peers"]["node2"]["state"] == "lost", 10, "node2 lost")
        r = n1.ctl("failover", check=False)
        assert r.returncode == 1 and "no healthy backup" in r.stderr, r.stderr
        assert n1.is_serving()


def test_a_paused_backup_does_not_take_over_until_resumed():
    with Pair().start() as p:
        n1, n2 = p.nodes
        sent = send_persistent(n1.stomp_port, 20, "pz")
        n2.ctl("pause")
        assert n2.status()["role"] == "paused"
        n1.kill9_node()
        wait_for(lambda: n2.status()["peers"]["node1"]["state"] == "lost", 10, "node1 lost")
        assert n2.status()["role"] == "paused"
        n2.ctl("resume")
        n2.wait_serving()
        assert sorted(drain(n2.stomp_port, expect=len(sent))) == sent


def test_supervisorctl_without_a_supervisor_says_so():
    import os
    import subprocess
    d = hatest.workdir("hamq-ctl-")
    r = subprocess.run([hatest.binary("hamq-supervisorctl"), "--run-dir", d, "status"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 3 and "is hamq-supervisor running?" in r.stderr, r.stderr
    r = subprocess.run([hatest.binary("hamq-supervisorctl"), "--run-dir", d, "--node", "x",
                        "failover"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 3 and "is hamq-supervisor running?" in r.stderr, r.stderr
    os.rmdir(d)


if __name__ == "__main__":
    hatest.main(globals())
