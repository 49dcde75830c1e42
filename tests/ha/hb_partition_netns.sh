#!/bin/bash
# Heartbeats across a partition between two network namespaces (one veth):
# link down → both sides report the peer lost; heal → both find it again;
# then the same with nftables drop rules (the link stays up), when nft exists.
set -u
. "${HAMQ_SRCDIR:-.}/tests/ha/lib.sh"
need_netns
T=$(mktemp -d /tmp/hamq-test-part-XXXXXX)
P1= P2=
cleanup() {
  for p in $P1 $P2; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null; ns_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
N1=hamqt-$$-n1 N2=hamqt-$$-n2
ip netns add $N1 && ip netns add $N2 || fail "ip netns add"
ip -n $N1 link add eth0 type veth peer name eth0 netns $N2 || fail "veth"
ip -n $N1 addr add 10.79.1.1/24 dev eth0 && ip -n $N2 addr add 10.79.1.2/24 dev eth0
ip -n $N1 link set eth0 up && ip -n $N2 link set eth0 up
ip -n $N1 link set lo up && ip -n $N2 link set lo up
E1=tcp://10.79.1.1:61620 E2=tcp://10.79.1.2:61620
ip netns exec $N1 "$HATOOL" hb node1 $E1 $E2 --seconds 60 >"$T/1.out" 2>"$T/1.err" & P1=$!
ip netns exec $N2 "$HATOOL" hb node2 $E2 $E1 --seconds 60 >"$T/2.out" 2>"$T/2.err" & P2=$!
wait_for "$T/1.out" "^FOUND node2" 15 || fail "node1 never saw node2"
wait_for "$T/2.out" "^FOUND node1" 15 || fail "node2 never saw node1"

echo "1. partition: link down in node2 → both report the peer lost"
ip -n $N2 link set eth0 down
wait_for "$T/1.out" "^LOST node2" 10 || fail "node1 did not report node2 lost"
wait_for "$T/2.out" "^LOST node1" 10 || fail "node2 did not report node1 lost"
sleep 1
echo "   heal: both find each other again"
ip -n $N2 link set eth0 up
wait_for "$T/1.out" "^FOUND node2" 15 2 || fail "node1 did not see node2 again"
wait_for "$T/2.out" "^FOUND node1" 15 2 || fail "node2 did not see node1 again"

if command -v nft >/dev/null; then
  echo "2. partition with nftables drop rules (link up) → lost; heal → found"
  ip netns exec $N2 nft -f - <<'NFT' || fail "nft"
table inet hamqpart {
  chain in { type filter hook input priority 0; policy drop; iif lo accept; }
  chain out { type filter hook output priority 0; policy drop; oif lo accept; }
}
NFT
  wait_for "$T/1.out" "^LOST node2" 10 2 || fail "node1 did not report node2 lost (nft)"
  wait_for "$T/2.out" "^LOST node1" 10 2 || fail "node2 did not report node1 lost (nft)"
  sleep 1
  ip netns exec $N2 nft delete table inet hamqpart
  wait_for "$T/1.out" "^FOUND node2" 15 3 || fail "node1 did not see node2 again (nft)"
  wait_for "$T/2.out" "^FOUND node1" 15 3 || fail "node2 did not see node1 again (nft)"
else
  echo "2. (nft not installed: drop-rule partition not checked)"
fi
kill -TERM $P1 $P2
wait $P1 $P2 2>/dev/null
P1= P2=
grep -h "^STATS" "$T/1.out" "$T/2.out" | sed 's/^/   /'
grep -q "peer node2 lost: no heartbeat for" "$T/1.err" || fail "no reason in the peer-lost log"
echo "PASS"
