#!/usr/bin/python3
"""Supervisors with CURVE keys (hamq-supervisorctl keygen): the pair works; a node
with a key its peer does not list is refused and logged, and never counts as a peer."""
import os
import subprocess

import hatest
from hatest import Pair, wait_for


def keygen(d, name):
    subprocess.run([hatest.binary("hamq-supervisorctl"), "keygen", d, name], check=True,
                   capture_output=True, timeout=10)
    return os.path.join(d, name + ".key"), os.path.join(d, name + ".pub")


def curve(node, secret, peer_pub):
    node.extra += ["--curve-secret-key-file", secret, "--curve-peer-public-key-file", peer_pub]


def test_a_pair_with_curve_keys_sees_each_other_and_fails_over():
    with Pair() as p:
        n1, n2 = p.nodes
        s1, pub1 = keygen(p.dir, "node1")
        s2, pub2 = keygen(p.dir, "node2")
        curve(n1, s1, pub2)
        curve(n2, s2, pub1)
        p.start()
        n1.ctl("failover")
        n2.wait_serving()


def test_a_node_whose_key_is_not_listed_is_refused_and_logged():
    with Pair() as p:
        n1, n2 = p.nodes
        s1, pub1 = keygen(p.dir, "node1")
        s2, pub2 = keygen(p.dir, "node2")
        rogue, _ = keygen(p.dir, "rogue")
        curve(n1, s1, pub2)
        curve(n2, rogue, pub1)  # node2 presents a key node1 does not list
        n1.start()
        n1.wait_serving()
        n2.start()
        wait_for(lambda: "is not in curve_peer_public_key_file" in n1.log(), 15,
                 "node1 to log the refused key")
        st = n1.status()
        assert st["peers"].get("node2", {}).get("state") != "alive", st
        assert (n2.status() or {}).get("role") == "backup"
        assert n1.status()["role"] == "live"


if __name__ == "__main__":
    hatest.main(globals())
