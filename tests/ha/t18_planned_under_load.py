#!/usr/bin/python3
"""Planned failover and failback through hamq-supervisorctl while a producer sends
durable messages with receipts and duplicate ids (and resends, to the new live,
what was not confirmed when its connection closed): 0 receipted messages lost,
0 duplicates, each hand-over answered by the command itself."""
import hatest
from hatest import Pair, drain, figure, wait_for
from t14_kill9_cycles_under_load import Producer, resend

ROUNDS = 2  # each: failover to node2 under load, then failback to node1 under load


_READY_SEEN = {}  # node id -> backup-ready events in its log when it last went live


def _handover_under_load(p, cmd_node, cmd, nxt):
    live = p.live()
    other = [n for n in p.nodes if n is not live][0]
    # a NEW backup-ready since it last lost the live role (its log is appended to)
    wait_for(lambda: len(other.events("backup-ready")) > _READY_SEEN.get(other.id, 0), 30,
             "%s warm" % other.id)
    _READY_SEEN[other.id] = len(other.events("backup-ready"))
    _READY_SEEN[live.id] = len(live.events("backup-ready"))
    prod = Producer(live.stomp_port, nxt)
    prod.start()
    wait_for(lambda: len(prod.c.collector.receipts) >= 50, 10, "load running")
    r = cmd_node.ctl(cmd)
    assert "%s is live" % other.id in r.stdout, r.stdout
    prod.stop = True
    prod.join(5)
    receipted = set(prod.c.collector.receipts)
    unconfirmed = [b for b in prod.sent if b not in receipted]
    other.wait_serving(timeout=20)
    resend(other.stomp_port, unconfirmed)
    live.wait_role("backup", timeout=20)
    return prod, len(unconfirmed), r.stdout.split("(")[-1].split()[0]


def test_failover_and_failback_under_load_lose_nothing_and_duplicate_nothing():
    with Pair(extra=["--allow-failback", "false"]).start() as p:
        n1, n2 = p.nodes
        sent, resent, times, nxt = [], 0, [], 0
        for _ in range(ROUNDS):
            prod, k, ms = _handover_under_load(p, n1, "failover", nxt)
            sent += prod.sent
            resent += k
            nxt = prod.next
            times.append(ms)
            prod, k, ms = _handover_under_load(p, n1, "failback", nxt)
            sent += prod.sent
            resent += k
            nxt = prod.next
            times.append(ms)
        figure("planned failover / failback under load (the command's own figure)", times)
        print("# %d messages sent, %d unconfirmed resent with their duplicate id"
              % (len(sent), resent), flush=True)
        got = drain(p.live().stomp_port, timeout=60, expect=len(sent))
        missing = set(sent) - set(got)
        assert not missing, "%d lost, e.g. %s" % (len(missing), sorted(missing)[:5])
        dups = len(got) - len(set(got))
        assert dups == 0, "%d duplicates (%d resends)" % (dups, resent)
        assert set(got) == set(sent)


if __name__ == "__main__":
    hatest.main(globals())
