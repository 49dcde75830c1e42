#!/usr/bin/python3
"""Several backups wait on one live: the healthy backup with the best priority wins."""
import hatest
from hatest import Pair, drain, send_persistent, wait_for


def test_the_highest_priority_backup_takes_over_whoever_gets_the_lock_first():
    for rnd in range(3):  # the kernel wakes one waiter: try a few times
        with Pair(n=3, priorities=[100, 50, 200]).start() as p:
            n1, n2, n3 = p.nodes
            sent = send_persistent(n1.stomp_port, 20, "prio%d" % rnd)
            n1.kill9_node()
            n3.wait_serving(timeout=20)
            assert n2.status()["role"] == "backup"
            got = drain(n3.stomp_port, expect=len(sent))
            assert sorted(got) == sent, hatest.same(got, sent)
            if "letting it take over" in n2.log():
                print("# round %d: node2 got live.lock first and let node3 take it" % rnd)


def test_a_paused_high_priority_backup_does_not_hold_the_others_back():
    with Pair(n=3, priorities=[100, 50, 200]).start() as p:
        n1, n2, n3 = p.nodes
        n3.ctl("pause")
        wait_for(lambda: n2.status()["peers"]["node3"]["role"] == "paused", 5, "node3 paused")
        n1.kill9_node()
        n2.wait_serving(timeout=20)
        assert n3.status()["role"] == "paused"


if __name__ == "__main__":
    hatest.main(globals())
