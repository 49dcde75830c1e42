#!/bin/bash
# bench_activemq_failover — prints the failover figures of ActiveMQ Classic's
# shared-file-system master/slave on this host, for the side-by-side line of
# tests/ha/bench_failover.py (hamq). A benchmark, not a test: no assertion on time.
#
# Two brokers (own JVM each, -Xmx512m, STOMP on two ports) on ONE shared KahaDB
# directory: the shared file lock decides the master, the slave polls the lock
# every --lock-poll ms (ActiveMQ's lockAcquireSleepInterval; its default is 10 s).
# One run = kill -9 of the master's process group -> the slave answers a STOMP
# CONNECT with CONNECTED, timed by this script's clock (a poll every ~1 ms); the
# killed broker is then restarted as the new slave and the roles alternate.
# Three scenarios, each on a fresh store, median of --runs kills:
#   empty    no stored message
#   stored   N stored 1 KiB durable messages (filled with hamq-stomp-load)
#   load     a durable write load running on the master at the moment of the
#            kill (hamq-stomp-load, P producers, receipts, 1 KiB persistent)
#
#   HAMQ_BUILDDIR=/path/to/build tests/ha/bench_activemq_failover.sh \
#       [--stored N] [--runs R] [--lock-poll MS] [--load-producers P] \
#       [--scenarios empty,stored,load]
#
# Needs java and the Debian package activemq (/usr/share/activemq); when it is
# missing and we are root, installs it with apt-get and says so. Every process
# it starts and its scratch directory are removed at exit.
set -u
STORED=100000 RUNS=5 POLL=500 PRODUCERS=4 SCENARIOS=empty,stored,load
usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --stored) STORED=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --lock-poll) POLL=$2; shift 2 ;;
    --load-producers) PRODUCERS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "bench_activemq_failover: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
for v in STORED:--stored RUNS:--runs POLL:--lock-poll PRODUCERS:--load-producers; do
  n=${v%%:*}
  [[ ${!n} =~ ^[0-9]+$ ]] ||
    { echo "bench_activemq_failover: ${v#*:} must be a number, not '${!n}'" >&2; exit 2; }
done
[ "$RUNS" -ge 1 ] || { echo "bench_activemq_failover: --runs must be >= 1" >&2; exit 2; }
say() { echo "# $*"; }
die() { echo "bench_activemq_failover: $*" >&2; exit 1; }

AMQ_HOME=/usr/share/activemq
PY=/usr/bin/python3
B=${HAMQ_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
LOADGEN=$B/tools/hamq-stomp-load
[ -x "$LOADGEN" ] || die "hamq-stomp-load not built ($LOADGEN): set HAMQ_BUILDDIR to the build directory"
if [ ! -f "$AMQ_HOME/bin/activemq.jar" ]; then
  [ "$(id -u)" = 0 ] || die "ActiveMQ Classic is not installed ($AMQ_HOME) and installing it needs root"
  say "ActiveMQ Classic is not installed: apt-get install -y activemq"
  DEBIAN_FRONTEND=noninteractive apt-get install -y activemq >/dev/null ||
    die "apt-get install activemq failed"
fi
command -v java >/dev/null || die "java is not installed"

W=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-amq-XXXXXX") || die "mktemp failed"
PGIDS="" LOADPID=""
cleanup() {
  local p
  [ -n "$LOADPID" ] && kill -9 "$LOADPID" 2>/dev/null
  for p in $PGIDS; do kill -9 -- "-$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT_a=$(free_port) PORT_b=$(free_port)
[ "$PORT_a" != "$PORT_b" ] || PORT_b=$(free_port)

# broker_conf NAME STORE: the broker's own directory (conf, data) on the shared KahaDB STORE.
broker_conf() {
  local d=$W/$1 port
  eval "port=\$PORT_$1"
  mkdir -p "$d/conf" "$d/data"
  cat >"$d/conf/log4j.properties" <<EOF
log4j.rootLogger=INFO, stdout
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p | %m%n
EOF
  cat >"$d/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="bench-$1"
          dataDirectory="$d/data">
    <persistenceAdapter>
      <kahaDB directory="$2">
        <locker><shared-file-locker lockAcquireSleepInterval="$POLL"/></locker>
      </kahaDB>
    </persistenceAdapter>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="256 mb"/></memoryUsage>
    </systemUsage></systemUsage>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$port"/>
    </transportConnectors>
  </broker>
</beans>
EOF
}

# start_broker NAME: a new JVM in its own process group (PGID_NAME), log NAME.log (appended).
start_broker() {
  local d=$W/$1
  echo "=== start $(date +%T.%N)" >>"$W/$1.log"
  setsid java -Xms64m -Xmx512m --add-opens java.base/java.lang=ALL-UNNAMED \
    -Dactivemq.home=$AMQ_HOME -Dactivemq.base="$d" -Dactivemq.conf="$d/conf" \
    -Dactivemq.data="$d/data" -Dlog4j.configuration="file:$d/conf/log4j.properties" \
    -jar "$AMQ_HOME/bin/activemq.jar" start "xbean:file:$d/conf/activemq.xml" \
    >>"$W/$1.log" 2>&1 </dev/null &
  eval "PGID_$1=$!"
  PGIDS="$PGIDS $!"
  disown $!  # no "Killed" job report: the kill -9 is the point
}

# gone PID: until PID has exited (at most 30 s).
gone() {
  local i
  for ((i = 0; i < 3000; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.01; done
  die "process $1 still alive 30 s after kill -9"
}

# log_since NAME: the log of NAME's current JVM only (after its last "=== start").
log_since() { awk '/^=== start/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$W/$1.log"; }

# wait_log NAME PATTERN SECS: until the current JVM of NAME logged PATTERN.
wait_log() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    log_since "$1" | grep -q -- "$2" && return 0
    kill -0 "$(eval echo "\$PGID_$1")" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench_activemq_failover: $1 did not log '$2' within $3 s; its log:" >&2
  log_since "$1" | tail -20 | sed 's/^/  | /' >&2
  exit 1
}

# kill_and_time PGID PORT: kill -9 of the process group, then ms until PORT answers
# a STOMP CONNECT with CONNECTED (this script's clock; gives up after 120 s).
kill_and_time() {
  "$PY" - "$1" "$2" <<'EOF'
import os, signal, socket, sys, time
pgid, port = int(sys.argv[1]), int(sys.argv[2])
def connected():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except OSError:
        return False
    try:
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        buf = b""
        while b"\0" not in buf:
            d = s.recv(4096)
            if not d:
                return False
            buf += d
        return buf.startswith(b"CONNECTED")
    except OSError:
        return False
    finally:
        s.close()
t0 = time.monotonic()
os.killpg(pgid, signal.SIGKILL)
while time.monotonic() - t0 < 120:
    if connected():
        print("%.1f" % ((time.monotonic() - t0) * 1000.0))
        sys.exit(0)
    time.sleep(0.001)
sys.exit(1)
EOF
}

# slave_ms NAME: from the first line NAME logged after it got the lock (the line after
# "slave mode") to "Connector stomp started", by the broker's own log clock.
slave_ms() {
  log_since "$1" | awk -F'[:, ]' '
    function ms() { return (($1 * 60 + $2) * 60 + $3) * 1000 + $4 }
    got && !t0 && /^[0-9][0-9]:/ { t0 = ms() }
    /is now in slave mode/ { got = 1 }
    t0 && /Connector stomp started/ { printf "%d", ms() - t0; exit }'
}

journal_bytes() { du -sb "$1" 2>/dev/null | awk '{print $1}'; }
written() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }

# stats LABEL ms...: the RESULT line (median, min, max, runs).
stats() {
  local label=$1; shift
  printf '%s\n' "$@" | "$PY" -c '
import statistics, sys
label, poll = sys.argv[1], sys.argv[2]
v = [float(x) for x in sys.stdin.read().split()]
print("RESULT activemq failover kill-9 -> STOMP CONNECTED, %s: median %.1f ms (min %.1f, max %.1f, %d runs); shared-file lock poll %s ms"
      % (label, statistics.median(v), min(v), max(v), len(v), poll))' "$label" "$POLL"
}

# scenario NAME STORED LOAD(0/1) LABEL
scenario() {
  local name=$1 stored=$2 load=$3 label=$4 store=$W/store-$1 master=a slave=b ms i t t0 grown mpid load_note=""
  local times=()
  say "scenario $name: fresh shared KahaDB $store"
  rm -rf "$W/a" "$W/b"
  : >"$W/a.log"; : >"$W/b.log"
  broker_conf a "$store"; broker_conf b "$store"
  start_broker a
  wait_log a "Connector stomp started" 120
  if [ "$stored" -gt 0 ]; then
    t0=$(date +%s%N)
    # many producers: ActiveMQ syncs one STOMP connection's persistent sends one by one
    "$LOADGEN" -P "$PORT_a" -p 16 -n "$stored" -s 1024 -w 100 --persistent --grace 60 \
      -D /queue/bench.stored >"$W/fill.log" 2>&1 || { cat "$W/fill.log" >&2; die "filling the store failed"; }
    say "store filled: $stored x 1 KiB durable messages in $(( ($(date +%s%N) - t0) / 1000000 )) ms" \
      "($(grep -m1 -o 'RESULT.*' "$W/fill.log" | cut -c1-120))"
  fi
  start_broker b
  wait_log b "is now in slave mode" 120
  for ((i = 1; i <= RUNS; i++)); do
    if [ "$load" = 1 ]; then
      mpid=$(eval echo "\$PGID_$master") t0=$(date +%s%N)
      grown=$(written "$mpid")
      "$LOADGEN" -P "$(eval echo "\$PORT_$master")" -p "$PRODUCERS" -w 100 -s 1024 --persistent \
        -d 300 --grace 5 -D /queue/bench.load >>"$W/load.log" 2>&1 &
      LOADPID=$!
      # the load is on once the master JVM wrote 4 MiB more to its disk (/proc/PID/io)
      for ((t = 0; t < 1200; t++)); do
        [ $(( $(written "$mpid") - grown )) -ge 4194304 ] && break
        kill -0 "$LOADPID" 2>/dev/null || die "the load generator stopped: $(tail -3 "$W/load.log")"
        sleep 0.05
      done
      [ "$t" -lt 1200 ] || die "no durable write load on the master after 60 s"
      load_note=" (load: the master wrote 4 MiB in $(( ($(date +%s%N) - t0) / 1000000 )) ms before the kill)"
    fi
    ms=$(kill_and_time "$(eval echo "\$PGID_$master")" "$(eval echo "\$PORT_$slave")") ||
      { log_since "$slave" | tail -20 >&2; die "the slave did not answer CONNECT within 120 s"; }
    if [ -n "$LOADPID" ]; then kill -9 "$LOADPID" 2>/dev/null; wait "$LOADPID" 2>/dev/null; LOADPID=""; fi
    times+=("$ms")
    say "  run $i: master $master killed -> slave $slave answers CONNECT in $ms ms;" \
      "its log: lock -> connector started $(slave_ms "$slave") ms (store $(( $(journal_bytes "$store") / 1048576 )) MiB)$load_note"
    gone "$(eval echo "\$PGID_$master")"
    start_broker "$master"
    wait_log "$master" "is now in slave mode" 120
    t=$master; master=$slave; slave=$t
  done
  stats "$label" "${times[@]}"
  kill -9 -- "-$(eval echo "\$PGID_a")" "-$(eval echo "\$PGID_b")" 2>/dev/null
  gone "$(eval echo "\$PGID_a")"; gone "$(eval echo "\$PGID_b")"
  rm -rf "$store"
}

say "ActiveMQ Classic $(dpkg-query -W -f '${Version}' activemq 2>/dev/null)," \
  "$(java -version 2>&1 | head -1); two brokers (-Xmx512m), STOMP ports $PORT_a and $PORT_b"
IFS=, read -ra LIST <<<"$SCENARIOS"
for s in "${LIST[@]}"; do
  case $s in
    empty) scenario empty 0 0 "empty store" ;;
    stored) scenario stored "$STORED" 0 "$STORED stored 1 KiB msgs" ;;
    load) scenario load 0 1 "durable write load ($PRODUCERS producers, 1 KiB, receipts) at the kill" ;;
    *) die "unknown scenario '$s' (empty, stored, load)" ;;
  esac
done
