#!/bin/bash
# Benchmark (not a test: prints figures, asserts nothing): durable 1 KiB
# messages, one producer with a window of unconfirmed sends + one consumer
# acknowledging each, for SECS seconds:
#   1. hamq over AMQP   (hamq perf client --persistent --max-pending W: the
#      producer and the consumer on their own connections, as artemis perf does)
#   2. hamq over STOMP  (hamq-stomp-load -p 1 -c 1 -w W --persistent)
#   then one RATIO line: both rates over the SECS of sending, their ratio, and the
#   broker's CPU (core + workers, user+sys) per message for each protocol.
#   With --rounds N the pair runs N times, alternating, on one broker, and a
#   MEDIAN line gives the median of the N ratios: on a shared 2-CPU machine one
#   pair varies by +-10%, so a single ratio says little.
#   3. RabbitMQ over AMQP 1.0 (rabbitmq_amqp1_0 plugin), with --rabbitmq, when
#      /usr/sbin/rabbitmq-server exists and port 5672 is free.
# Usage: bench_amqp.sh [BUILDDIR] [SECS] [WINDOW] [--rounds N] [--rabbitmq]
set -u
pos=()
rabbit=
rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
  --rabbitmq) rabbit=--rabbitmq ;;
  --rounds)
    rounds=${2:-}
    shift
    ;;
  --help | -h)
    sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  -*)
    echo "bench_amqp.sh: unknown option $1 (see --help)" >&2
    exit 2
    ;;
  *) pos+=("$1") ;;
  esac
  shift
done
case "$rounds" in '' | *[!0-9]* | 0)
  echo "bench_amqp.sh: --rounds needs a whole number >= 1" >&2
  exit 2
  ;;
esac
build=${pos[0]:-${HAMQ_BUILDDIR:-.}}
secs=${pos[1]:-10}
win=${pos[2]:-1000}
off=$((RANDOM % 800 + 100))
work=$(mktemp -d /var/tmp/hamq-bench-amqp.XXXXXX)
trap 'kill $jpid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$build/daemons/hamq-journal" --store "$work/store" --spawn-workers 2 --port-offset $off \
  --instance bamqp$off >"$work/broker.log" 2>&1 &
jpid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$((5672 + off))) 2>/dev/null && break; sleep 0.1; done
# CPU ticks (user+sys) of the broker's processes: the core and its workers.
bpids="$jpid $(pgrep -P $jpid | tr '\n' ' ')"
ticks() { local t=0; for p in $bpids; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
hz=$(getconf CLK_TCK)
# Rates are messages over the SECS of sending: hamq perf's own "msg/sec" divides by
# its whole run, which includes up to 2 s of waiting for the last acknowledgements.
for r in $(seq "$rounds"); do
  [ "$rounds" -gt 1 ] && echo "== round $r of $rounds"
  echo "== hamq AMQP: perf client --persistent --message-size 1024 --max-pending $win --duration $secs"
  t0=$(ticks)
  "$build/tools/hamq" perf client --url tcp://127.0.0.1:$((5672 + off)) --persistent \
    --message-size 1024 --max-pending "$win" --duration "$secs" queue://bench.amqp.$r >"$work/amqp.out" 2>&1
  t1=$(ticks)
  grep -E "^--- (total|aggregated|result)" "$work/amqp.out"
  amqp_n=$(awk '/^--- total received:/ {print $4}' "$work/amqp.out")
  echo "== hamq STOMP: hamq-stomp-load -p 1 -c 1 -w $win -s 1024 --persistent -d $secs"
  "$build/tools/hamq-stomp-load" -P $((61613 + off)) -D /queue/bench.stomp.$r -p 1 -c 1 -w "$win" \
    -s 1024 --persistent -d "$secs" >"$work/stomp.out" 2>&1
  t2=$(ticks)
  tail -6 "$work/stomp.out"
  stomp_n=$(sed -n 's/.* consumed=\([0-9]*\).*/\1/p' "$work/stomp.out")
  awk -v a="${amqp_n:-0}" -v s="${stomp_n:-0}" -v secs="$secs" -v ta=$((t1 - t0)) -v ts=$((t2 - t1)) \
    -v hz="$hz" -v ratiofile="$work/ratios" 'BEGIN {
      am = a / secs; sm = s / secs
      printf "RATIO amqp_mps=%.0f stomp_mps=%.0f amqp/stomp=%.2f", am, sm, sm ? am / sm : 0
      printf " broker_cpu_us_per_msg amqp=%.2f stomp=%.2f\n", a ? ta * 1e6 / hz / a : 0, s ? ts * 1e6 / hz / s : 0
      printf("%.3f\n", sm ? am / sm : 0) >>ratiofile
    }'
done
if [ "$rounds" -gt 1 ]; then
  sort -n "$work/ratios" | awk '{v[NR] = $1; all = all " " $1}
    END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "MEDIAN amqp/stomp=%.2f over %d rounds (sorted:%s)\n", m, NR, all }'
fi
if [ "$rabbit" = --rabbitmq ] && [ -x /usr/sbin/rabbitmq-server ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "== RabbitMQ: port 5672 busy, skipped"
  else
    rabbitmq-plugins --offline enable rabbitmq_amqp1_0 >/dev/null 2>&1
    (exec /usr/sbin/rabbitmq-server) >"$work/rabbit.log" 2>&1 &
    for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.1; done
    sleep 2
    echo "== RabbitMQ AMQP 1.0 (rabbitmq_amqp1_0): the same hamq perf client, address /queue/bench.amqp"
    "$build/tools/hamq" perf client --url tcp://127.0.0.1:5672 --user guest --password guest \
      --persistent --message-size 1024 --max-pending "$win" --duration "$secs" \
      /queue/bench.amqp 2>&1 | grep -E "^--- (total|aggregated|result)|refused|failed"
    rabbitmqctl stop >/dev/null 2>&1
    rabbitmq-plugins --offline disable rabbitmq_amqp1_0 >/dev/null 2>&1 # leave the install as found
  fi
fi
