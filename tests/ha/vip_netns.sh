#!/bin/bash
# Virtual IP in network namespaces: node1, node2 and a client on a bridge
# (the bridge lives in its own namespace: the host's network is untouched).
# VIP on node1, client pings it; VIP moved to node2 with gratuitous ARPs, the
# client's neighbour entry changes MAC and ping works; what hamq does not own
# is neither taken over nor removed; clear errors for bad input and EPERM.
set -u
. "${HAMQ_SRCDIR:-.}/tests/ha/lib.sh"
need_netns
trap ns_cleanup EXIT
trap 'exit 1' INT TERM
SW=hamqt-$$-sw N1=hamqt-$$-n1 N2=hamqt-$$-n2 CL=hamqt-$$-cl
VIP=10.79.0.50
for n in $SW $N1 $N2 $CL; do ip netns add $n && ip -n $n link set lo up || fail "netns $n"; done
ip -n $SW link add br0 type bridge && ip -n $SW link set br0 up || fail "bridge"
i=0
for pair in "$N1 10.79.0.1" "$N2 10.79.0.2" "$CL 10.79.0.100"; do
  set -- $pair; i=$((i + 1))
  ip -n $SW link add p$i type veth peer name eth0 netns $1 || fail "veth"
  ip -n $SW link set p$i master br0 up
  ip -n $1 addr add $2/24 dev eth0
  ip -n $1 link set eth0 up
done
mac() { ip -n "$1" -br link show eth0 | awk '{print $3}'; }
client_mac() { ip -n $CL neigh show $VIP | grep -o 'lladdr [0-9a-f:]*' | awk '{print $2}'; }
M1=$(mac $N1); M2=$(mac $N2)
# reach IP: a TCP connect to a closed port answered by RST ("Connection refused")
# proves the client reached the host that owns IP (ping may not be installed).
reach() {
  ip netns exec $CL timeout 3 bash -c "exec 3<>/dev/tcp/$1/9" 2>&1 | grep -q "Connection refused"
}
ping_vip() { reach $VIP; }
# wait until the network is up (veth/bridge ports need a moment)
for ((k = 0; k < 40; k++)); do reach 10.79.0.1 && break; sleep 0.05; done

echo "1. VIP on node1 (libnl, labelled as ours); the client reaches it (TCP RST)"
ip netns exec $N1 "$HATOOL" vip-add eth0 $VIP/32 || fail "vip-add on node1"
ip -n $N1 addr show eth0 | grep -q "inet $VIP/32 .*eth0:hq" || fail "VIP not on node1 with our label"
ping_vip || fail "client cannot ping the VIP on node1"
[ "$(client_mac)" = "$M1" ] || fail "client's entry is $(client_mac), expected node1 $M1"

echo "2. adding it again is fine (we own it)"
ip netns exec $N1 "$HATOOL" vip-add eth0 $VIP/32 2>"/tmp/hamqt-$$.err" || fail "re-add of our own VIP failed"
grep -q "already ours" "/tmp/hamqt-$$.err" || fail "re-add did not say it adopted the VIP"

echo "3. move to node2 with GARP: the client's neighbour entry changes MAC"
ip netns exec $N1 "$HATOOL" vip-del eth0 $VIP/32 || fail "vip-del on node1"
ip -n $N1 addr show eth0 | grep -q "inet $VIP/" && fail "VIP still on node1"
ip netns exec $N2 "$HATOOL" vip-add eth0 $VIP/32 || fail "vip-add on node2"
for ((k = 0; k < 40; k++)); do [ "$(client_mac)" = "$M2" ] && break; sleep 0.05; done
[ "$(client_mac)" = "$M2" ] || fail "GARP did not move the client's entry ($(client_mac), want node2 $M2)"
ping_vip || fail "client cannot ping the VIP on node2"

echo "4. what hamq does not own is neither taken over nor removed"
ip -n $N1 addr add 10.79.0.60/32 dev eth0
ip netns exec $N1 "$HATOOL" vip-add eth0 10.79.0.60/32 2>"/tmp/hamqt-$$.err" && fail "took over a foreign address"
grep -q "not managed by hamq" "/tmp/hamqt-$$.err" || fail "unclear: $(cat /tmp/hamqt-$$.err)"
ip netns exec $N1 "$HATOOL" vip-del eth0 10.79.0.60/32 2>"/tmp/hamqt-$$.err" && fail "removed a foreign address"
grep -q "refusing to remove" "/tmp/hamqt-$$.err" || fail "unclear: $(cat /tmp/hamqt-$$.err)"
ip -n $N1 addr show eth0 | grep -q "inet 10.79.0.60/32" || fail "the foreign address is gone"

echo "5. clear errors: bad address, IPv6, no interface, no CAP_NET_ADMIN"
ip netns exec $N1 "$HATOOL" vip-add eth0 10.79.0.999 2>"/tmp/hamqt-$$.err" && fail "bad address accepted"
grep -q "not an IPv4 address" "/tmp/hamqt-$$.err" || fail "unclear: $(cat /tmp/hamqt-$$.err)"
ip netns exec $N1 "$HATOOL" vip-add eth0 fd00::5/64 2>"/tmp/hamqt-$$.err" && fail "IPv6 accepted"
grep -q "IPv6 virtual IPs are not supported" "/tmp/hamqt-$$.err" || fail "unclear: $(cat /tmp/hamqt-$$.err)"
ip netns exec $N1 "$HATOOL" vip-add nosuch0 $VIP 2>"/tmp/hamqt-$$.err" && fail "missing interface accepted"
grep -q "nosuch0: no such network interface" "/tmp/hamqt-$$.err" || fail "unclear: $(cat /tmp/hamqt-$$.err)"
if command -v setpriv >/dev/null; then
  ip netns exec $N1 setpriv --reuid=65534 --regid=65534 --clear-groups "$HATOOL" vip-add eth0 10.79.0.70/32 \
    2>"/tmp/hamqt-$$.err" && fail "added a VIP without CAP_NET_ADMIN"
  grep -q "CAP_NET_ADMIN is needed" "/tmp/hamqt-$$.err" || fail "unclear: $(cat /tmp/hamqt-$$.err)"
else
  echo "   (setpriv not installed: EPERM case not checked)"
fi
rm -f "/tmp/hamqt-$$.err"
echo "PASS"
