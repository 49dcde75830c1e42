"""Integration scenario 12: rhea, the Qpid/Artemis team's node.js AMQP 1.0 client,
against a real hamq broker: durable sends accepted, credit 1 gets exactly one message,
a receive with credit windows gets every message in order, and accepted durable
messages survive kill -9 of the whole broker. rhea comes from the npm registry,
installed by this test into a local directory (cached between runs); the test skips
when node/npm are missing or the registry cannot be reached."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker"))
import hamqtest as ht  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RHEA_VERSION = "3.0.5"
NODE_DIR = os.environ.get("HAMQ_NODE_CACHE", "/var/cache/hamq-test/node-rhea-" + RHEA_VERSION)


def rhea_ready():
    if not shutil.which("node") or not shutil.which("npm"):
        raise ht.Skip("node or npm not installed (Debian: nodejs npm)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "rhea")):
        os.makedirs(NODE_DIR, exist_ok=True)
        r = subprocess.run(["npm", "install", "--prefix", NODE_DIR, "--no-audit", "--no-fund",
                            "--loglevel=error", "rhea@" + RHEA_VERSION],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise ht.Skip("npm install rhea@%s failed (no registry?): %s" % (
                RHEA_VERSION, r.stderr.strip()[-300:]))


def rhea(*args, timeout=40):
    env = dict(os.environ, NODE_PATH=os.path.join(NODE_DIR, "node_modules"))
    r = subprocess.run(["node", os.path.join(HERE, "rhea_client.js")] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, "rhea %s failed (%d): %s %s" % (args, r.returncode, r.stdout,
                                                             r.stderr)
    return r.stdout.strip()


def test_rhea_durable_sends_are_accepted_and_received_in_order():
    rhea_ready()
    with ht.Broker(workers=2) as b:
        assert rhea("send", b.amqp_port, "rhea.q1", 50) == "accepted 50"
        got = json.loads(rhea("recv", b.amqp_port, "rhea.q1", 50, 7))
        assert [g["body"] for g in got] == ["rhea-%d" % i for i in range(50)]
        assert [g["seq"] for g in got] == list(range(50))


def test_rhea_receiver_with_credit_1_gets_exactly_one_message():
    rhea_ready()
    with ht.Broker(workers=1) as b:
        assert rhea("send", b.amqp_port, "rhea.q2", 5) == "accepted 5"
        assert rhea("credit1", b.amqp_port, "rhea.q2") == "received 1"


def test_rhea_accepted_durable_messages_survive_kill_9_of_the_broker():
    rhea_ready()
    b = ht.Broker(workers=2).start()
    try:
        assert rhea("send", b.amqp_port, "rhea.q3", 30) == "accepted 30"
        b.kill9()
        b.start()
        ht.wait_port(b.amqp_port, proc=b.proc)
        got = json.loads(rhea("recv", b.amqp_port, "rhea.q3", 30, 30))
        assert sorted(g["seq"] for g in got) == list(range(30))
    finally:
        b.stop()


if __name__ == "__main__":
    ht.main(globals())
