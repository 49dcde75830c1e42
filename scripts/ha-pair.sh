#!/bin/bash
# ha-pair.sh — a live/backup pair of hamq on this host, on ONE shared store
# directory, as in Artemis' shared-store lab: node1 (primary, client ports
# 61616/61613, supervisor port 61620) and node2 (backup, port offset 1:
# 61617/61614, supervisor port 61621), exec activation, CURVE-authenticated
# heartbeats. Then a demo: 100 durable messages to the live, a planned
# failover (hamq-supervisorctl failover), a crash of the new live (kill -9 of
# its whole node), and the messages consumed from whichever node is live.
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
else
  SUP=$(command -v hamq-supervisor || true) CTL=$(command -v hamq-supervisorctl || true)
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
[ -x "$SUP" ] && [ -x "$CTL" ] || die "hamq-supervisor/hamq-supervisorctl not found: build first (scripts/build.sh) and pass the build directory, or install hamq"
if [ "$MODE" = status ]; then ctl status; exit 0; fi
$PY -c 'import stomp' 2>/dev/null || die "python3-stomp is missing (scripts/deps.sh installs it)"

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

# a receipted durable producer / a consumer, with the python3-stomp client
produce() { # port count prefix
  $PY - "$@" <<'PY'
import sys, time, stomp
port, n, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
class L(stomp.ConnectionListener):
    def __init__(s): s.r = 0
    def on_receipt(s, f): s.r += 1
c = stomp.Connection12([("127.0.0.1", port)]); l = L(); c.set_listener("", l); c.connect(wait=True)
for i in range(n):
    c.send("/queue/demo", "%s-%d" % (prefix, i), headers={"persistent": "true", "receipt": str(i)})
t = time.monotonic()
while l.r < n and time.monotonic() - t < 30: time.sleep(0.01)
c.disconnect(); print("%d durable messages sent, %d receipted (port %d)" % (n, l.r, port))
sys.exit(0 if l.r == n else 1)
PY
}
consume() { # port count: receives and acknowledges count messages (others stay queued)
  $PY - "$@" <<'PY'
import sys, time, stomp
port, n = int(sys.argv[1]), int(sys.argv[2])
class L(stomp.ConnectionListener):
    def __init__(s): s.m = []
    def on_message(s, f): s.m.append(f)
c = stomp.Connection12([("127.0.0.1", port)]); l = L(); c.set_listener("", l); c.connect(wait=True)
c.subscribe("/queue/demo", "1", ack="client-individual")
t = time.monotonic()
while len(l.m) < n and time.monotonic() - t < 10: time.sleep(0.01)
got = l.m[:n]
for f in got: c.ack(f.headers["ack"])
time.sleep(0.3); c.disconnect()
bodies = [f.body for f in got]
print("%d messages consumed from port %d (%d distinct, e.g. %s)" % (len(bodies), port, len(set(bodies)), ", ".join(sorted(bodies)[:3])))
sys.exit(0 if len(bodies) == n else 1)
PY
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
ctl status
if [ "$MODE" = start ]; then
  echo; echo "The pair is running. hamq-supervisorctl --run-dir $DIR/run status|failover; $0 stop"
  exit 0
fi

say "sending 100 durable messages to the live (node1, STOMP port 61613)"
produce 61613 100 demo

say "planned failover: hamq-supervisorctl failover"
ctl failover
wait_serving node2 20
ctl status
say "consuming 50 messages from the new live (node2, STOMP port 61614)"
consume 61614 50

say "crash: kill -9 of the live node2 (supervisor, core and workers)"
kill -KILL -- "-$(cat "$DIR/node2.pid")"
wait_serving node1 20
ms=$(grep "HAMQ_EVENT=serving" "$DIR/node1.log" | tail -1 | grep -o 'HAMQ_DURATION_MS=[0-9]*' | cut -d= -f2)
echo "node1 took over: serving ${ms:-?} ms after it got the store lock"
say "consuming the other 50 messages from node1 (STOMP port 61613)"
consume 61613 50

say "restarting node2: it joins as the warm backup"
start_node node2 backup 1 61621 61620
for _ in $(seq 100); do [ "$(field node2 role)" = backup ] && break; sleep 0.1; done
sleep 0.5
ctl status
echo
echo "The pair is running (logs: $DIR/node1.log, $DIR/node2.log)."
echo "Try: $CTL --run-dir $DIR/run failover   |   $0 stop"
