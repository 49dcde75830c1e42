#!/bin/bash
# ha-pair.sh — a live/backup pair of hamq on this host, on ONE shared store
# directory, as in Artemis' shared-store lab: node1 (primary, client ports
# 61616/61613, supervisor port 61620) and node2 (backup, port offset 1:
# 61617/61614, supervisor port 61621), exec activation, CURVE-authenticated
# heartbeats. Then a demo: 100 durable messages to the live with the hamq
# client (hamq producer), a crash of the live (kill -9 of its whole node), the
# backup taking over (its failover time), the 100 messages consumed from it
# (hamq consumer), the primary restarted as the warm backup, and a failback to
# it (hamq-supervisorctl failback).
#
#   scripts/ha-pair.sh [BUILD_DIR]            start the pair, run the demo, leave it running
#   scripts/ha-pair.sh --no-demo [BUILD_DIR]  only start the pair (and leave it running)
#   scripts/ha-pair.sh status                 hamq-supervisorctl status of both nodes
#   scripts/ha-pair.sh stop                   stop both nodes
#
# BUILD_DIR (or $HAMQ_BUILDDIR): a build tree holding supervisor/ and daemons/;
# without it the installed binaries in PATH are used. State lives in
# $HAMQ_PAIR_DIR (default /var/tmp/hamq-pair: not tmpfs, so the store uses
# direct I/O): store/, run/ (control sockets), keys/, node1.log, node2.log.
set -euo pipefail

DIR=${HAMQ_PAIR_DIR:-/var/tmp/hamq-pair}
MODE=demo
case "${1:-}" in
  --no-demo) MODE=start; shift ;;
  stop) MODE=stop; shift ;;
  status) MODE=status; shift ;;
  -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
BUILD=${1:-${HAMQ_BUILDDIR:-}}

if [ -n "$BUILD" ]; then
  SUP=$BUILD/supervisor/hamq-supervisor CTL=$BUILD/supervisor/hamq-supervisorctl
  HAMQ=$BUILD/tools/hamq
else
  SUP=$(command -v hamq-supervisor || true) CTL=$(command -v hamq-supervisorctl || true)
  HAMQ=$(command -v hamq || true)
fi
PY=/usr/bin/python3
say() { printf '\n== %s\n' "$*"; }
die() { echo "ha-pair: $*" >&2; exit 1; }
ctl() { "$CTL" --run-dir "$DIR/run" "$@"; }

stop_pair() {
  local n p
  for n in node1 node2; do
    [ -f "$DIR/$n.pid" ] || continue
    p=$(cat "$DIR/$n.pid")
    kill -TERM "$p" 2>/dev/null || true
  done
  for n in node1 node2; do
    [ -f "$DIR/$n.pid" ] || continue
    p=$(cat "$DIR/$n.pid")
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true # the node's process group: core + workers
    rm -f "$DIR/$n.pid"
  done
}

if [ "$MODE" = stop ]; then stop_pair; echo "ha-pair: stopped (state kept in $DIR)"; exit 0; fi
[ -x "$SUP" ] && [ -x "$CTL" ] && [ -x "$HAMQ" ] || die "hamq-supervisor/hamq-supervisorctl/hamq not found: build first (scripts/build.sh) and pass the build directory, or install hamq"
if [ "$MODE" = status ]; then ctl status; exit 0; fi

# role: node id -> field of `status --json`
field() { ctl --node "$1" status --json 2>/dev/null |
  $PY -c "import json,sys; print(json.load(sys.stdin)['nodes'][0]['$2'])" 2>/dev/null || echo "-"; }
wait_serving() { # node seconds
  for _ in $(seq $(( $2 * 20 ))); do
    [ "$(field "$1" role)/$(field "$1" serving)" = live/yes ] && return 0
    sleep 0.05
  done
  tail -20 "$DIR/$1.log" >&2
  die "$1 did not become live within $2 s (log: $DIR/$1.log)"
}

start_node() { # id role offset listen-port peer-port
  local id=$1
  setsid "$SUP" --node-id "$id" --role "$2" --store "$DIR/store" --port-offset "$3" \
    --instance "pair-$id" \
    --listen "tcp://127.0.0.1:$4" --peers "tcp://127.0.0.1:$5" --workers 2 \
    --heartbeat-interval 100ms --heartbeat-timeout 1s \
    --curve-secret-key-file "$DIR/keys/$id.key" \
    --curve-peer-public-key-file "$DIR/keys/$([ "$id" = node1 ] && echo node2 || echo node1).pub" \
    --run-dir "$DIR/run" >>"$DIR/$id.log" 2>&1 </dev/null &
  echo $! >"$DIR/$id.pid"
  disown $!
}

served_ms() { # node: HAMQ_DURATION_MS of its last "serving" event
  grep "HAMQ_EVENT=serving" "$DIR/$1.log" | tail -1 | grep -o 'HAMQ_DURATION_MS=[0-9]*' |
    cut -d= -f2
}
peer_state() { # node peer: alive/lost/- as the node sees its peer
  ctl --node "$1" status --json 2>/dev/null |
    $PY -c "import json,sys; print(json.load(sys.stdin)['nodes'][0]['peers']['$2']['state'])" \
      2>/dev/null || echo "-"
}
wait_backup_ready() { # node seconds: a NEW backup-ready event (its log is appended to)
  local before=$2 i
  for i in $(seq $(( $3 * 20 ))); do
    [ "$(grep -c "HAMQ_EVENT=backup-ready" "$DIR/$1.log")" -gt "$before" ] && return 0
    sleep 0.05
  done
  die "$1 did not become a warm backup within $3 s (log: $DIR/$1.log)"
}

stop_pair
[ "$MODE" = demo ] && rm -rf "$DIR/store" # the demo counts its own messages
mkdir -p "$DIR/store" "$DIR/run" "$DIR/keys"
for n in node1 node2; do
  [ -f "$DIR/keys/$n.key" ] || ctl keygen "$DIR/keys" "$n" >/dev/null
done
say "starting node1 (primary) and node2 (backup) on the shared store $DIR/store"
start_node node1 primary 0 61620 61621
wait_serving node1 20
start_node node2 backup 1 61621 61620
for _ in $(seq 100); do [ "$(field node2 role)" = backup ] && break; sleep 0.1; done
sleep 0.5
ctl status || true
if [ "$MODE" = start ]; then
  echo; echo "The pair is running. hamq-supervisorctl --run-dir $DIR/run status|failover; $0 stop"
  exit 0
fi

say "sending 100 durable messages to the live node1: hamq producer (AMQP, port 61616)"
"$HAMQ" producer --url tcp://127.0.0.1:61616 --destination queue://demo --message-count 100 \
  --persistent --message-size 100

say "crash: kill -9 of the live node1 (supervisor, core and workers)"
kill -KILL -- "-$(cat "$DIR/node1.pid")"
wait_serving node2 20
echo "node2 took over: serving $(served_ms node2) ms after it got the store lock"
ctl status || true

say "consuming the 100 messages from the new live node2 (port 61617)"
"$HAMQ" consumer --url tcp://127.0.0.1:61617 --destination queue://demo --message-count 100 \
  --receive-timeout 5000

say "restarting node1 (the primary): it joins as the warm backup"
ready=$(grep -c "HAMQ_EVENT=backup-ready" "$DIR/node1.log" || true)
start_node node1 primary 0 61620 61621
wait_backup_ready node1 "$ready" 30
for _ in $(seq 200); do [ "$(peer_state node1 node2)" = alive ] && break; sleep 0.05; done
ctl status || true

say "failback: hamq-supervisorctl failback (node1, the primary, takes over again)"
ctl failback
wait_serving node1 20
echo "node1 is live again: serving $(served_ms node1) ms after it got the store lock"
ctl status || true
echo
echo "The pair is running (logs: $DIR/node1.log, $DIR/node2.log)."
echo "Try: $CTL --run-dir $DIR/run failover   |   $0 stop"
