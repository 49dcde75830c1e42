#!/bin/bash
# Link watch in a network namespace: admin down/up and carrier loss on a veth
# are reported by sup_link (through hatool link-watch).
set -u
. "${HAMQ_SRCDIR:-.}/tests/ha/lib.sh"
need_netns
T=$(mktemp -d /tmp/hamq-test-link-XXXXXX)
WP=
cleanup() { [ -n "$WP" ] && kill -9 "$WP" 2>/dev/null; wait 2>/dev/null; ns_cleanup; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
NA=hamqt-$$-a NB=hamqt-$$-b
ip netns add $NA && ip netns add $NB || fail "ip netns add"
ip -n $NA link add eth0 type veth peer name eth0 netns $NB || fail "veth"
ip -n $NA link set eth0 up && ip -n $NB link set eth0 up
ip netns exec $NA "$HATOOL" link-watch eth0 30 >"$T/w.out" 2>"$T/w.err" & WP=$!
wait_for "$T/w.out" "^READY" || fail "watcher did not start"

echo "1. admin down / up"
ip -n $NA link set eth0 down
wait_for "$T/w.out" "^LINK eth0 down (admin down)" || fail "admin down not reported"
ip -n $NA link set eth0 up
wait_for "$T/w.out" "^LINK eth0 up" || fail "up not reported"
echo "2. carrier loss (the far end goes down) / back"
ip -n $NB link set eth0 down
wait_for "$T/w.out" "^LINK eth0 down (no carrier)" || fail "carrier loss not reported"
ip -n $NB link set eth0 up
wait_for "$T/w.out" "^LINK eth0 up" 10 2 || fail "carrier back not reported"
grep -q "HAMQ_EVENT=link-down" "$T/w.err" || fail "no link-down event logged"
echo "3. a missing interface is a clear error"
ip netns exec $NA "$HATOOL" link-watch nosuch0 1 2>"$T/e.err" && fail "watching nosuch0 succeeded"
grep -q "nosuch0: no such network interface" "$T/e.err" || fail "unclear error: $(cat "$T/e.err")"
echo "PASS"
