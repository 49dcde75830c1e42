#!/bin/bash
# Heartbeats between two real processes on 127.0.0.1: peer found; kill -9 →
# peer lost; restart → peer found again; HANDOVER request + ack; CURVE with
# good keys talks; a node with a wrong key is refused and the refusal logged.
set -u
. "${HAMQ_SRCDIR:-.}/tests/ha/lib.sh"
T=$(mktemp -d /tmp/hamq-test-hb-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
PA=$(free_port); PB=$(free_port)
A=tcp://127.0.0.1:$PA; B=tcp://127.0.0.1:$PB

echo "1. two nodes find each other"
"$HATOOL" hb nodeA "$A" "$B" --request-handover --seconds 60 >"$T/a.out" 2>"$T/a.err" & pids+=($!)
"$HATOOL" hb nodeB "$B" "$A" --auto-ack --seconds 60 >"$T/b.out" 2>"$T/b.err" & PIDB=$!; pids+=($PIDB)
wait_for "$T/a.out" "^FOUND nodeB" || fail "A never saw B"
wait_for "$T/b.out" "^FOUND nodeA" || fail "B never saw A"
grep "HAMQ_EVENT=peer-found" "$T/a.err" | grep "HAMQ_PEER=nodeB" | grep -q "MESSAGE_ID=0a9581faf08e48ca80fb0685d04c8ed0" \
  || fail "no peer-found event (HAMQ_EVENT, HAMQ_PEER, MESSAGE_ID) in A's log"

echo "2. HANDOVER request from A reaches B and B's ack comes back"
wait_for "$T/b.out" "^HANDOVER-REQUEST nodeA" || fail "B got no handover request"
wait_for "$T/a.out" "^HANDOVER-RESULT nodeB 0" || fail "A got no ack"

echo "3. kill -9 B: A reports the peer lost (and says why)"
kill -9 $PIDB
wait_for "$T/a.out" "^LOST nodeB" 10 || fail "A did not notice B's death"
grep -E "peer nodeB lost: no heartbeat for [0-9]+ ms \(timeout 500 ms\)" "$T/a.err" >/dev/null \
  || fail "the peer-lost log line does not say why"

echo "4. restart B: A reports it back"
"$HATOOL" hb nodeB "$B" "$A" --auto-ack --seconds 60 >"$T/b2.out" 2>"$T/b2.err" & pids+=($!)
wait_for "$T/a.out" "^FOUND nodeB" 10 2 || fail "A did not see B come back"
grep -q "peer nodeB found: peer process restarted" "$T/a.err" || fail "no restart reason logged"
kill -9 "${pids[@]}" 2>/dev/null; wait 2>/dev/null; pids=()

echo "5. CURVE: good keys talk"
"$HATOOL" keygen "$T" nodeA && "$HATOOL" keygen "$T" nodeB && "$HATOOL" keygen "$T" intruder \
  || fail "keygen"
[ "$(stat -c %a "$T/nodeA.key")" = 600 ] || fail "secret key is not 0600"
"$HATOOL" keygen "$T" nodeA 2>"$T/kg.err" && fail "keygen overwrote a key"
grep -q "already exists" "$T/kg.err" || fail "keygen overwrite error is unclear"
PA=$(free_port); PB=$(free_port); PC=$(free_port)
A=tcp://127.0.0.1:$PA; B=tcp://127.0.0.1:$PB; C=tcp://127.0.0.1:$PC
"$HATOOL" hb nodeA "$A" "$B,$C" --keys "$T/nodeA.key" "$T/nodeB.pub" --seconds 60 \
  >"$T/ca.out" 2>"$T/ca.err" & pids+=($!)
"$HATOOL" hb nodeB "$B" "$A" --keys "$T/nodeB.key" "$T/nodeA.pub" --seconds 60 \
  >"$T/cb.out" 2>"$T/cb.err" & pids+=($!)
wait_for "$T/ca.out" "^FOUND nodeB" || fail "CURVE nodes with good keys did not talk"
wait_for "$T/cb.out" "^FOUND nodeA" || fail "CURVE nodes with good keys did not talk"

echo "6. CURVE: a node with a key A does not list is refused, and A logs it"
"$HATOOL" hb intruder "$C" "$A" --keys "$T/intruder.key" "$T/nodeA.pub" --seconds 60 \
  >"$T/ci.out" 2>"$T/ci.err" & pids+=($!)
wait_for "$T/ca.err" "refused supervisor connection from 127.0.0.1.*is not in curve_peer_public_key_file" \
  || fail "A did not log the refusal"
grep -q "HAMQ_EVENT=peer-refused" "$T/ca.err" || fail "refusal has no HAMQ_EVENT"
wait_for "$T/ci.err" "the peer refused our public key" \
  || fail "the intruder was not told that its key was refused"
wait_for "$T/ci.err" "does not use our public key as server key" \
  || fail "the intruder did not log A's handshake with the wrong server key"
sleep 1
grep -q "FOUND intruder" "$T/ca.out" && fail "A accepted the intruder"
echo "PASS"
