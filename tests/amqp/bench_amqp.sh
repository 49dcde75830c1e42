#!/bin/bash
# Benchmark (not a test: prints figures, asserts nothing): durable 1 KiB
# messages, one producer with a window of unconfirmed sends + one consumer
# acknowledging each, for SECS seconds:
#   1. hamq over AMQP   (hamq perf client --persistent --max-pending W)
#   2. hamq over STOMP  (hamq-stomp-load -p 1 -c 1 -w W --persistent)
#   3. RabbitMQ over AMQP 1.0 (rabbitmq_amqp1_0 plugin), with --rabbitmq, when
#      /usr/sbin/rabbitmq-server exists and port 5672 is free.
# Usage: bench_amqp.sh [BUILDDIR] [SECS] [WINDOW] [--rabbitmq]
set -u
build=${1:-${HAMQ_BUILDDIR:-.}}
secs=${2:-10}
win=${3:-1000}
rabbit=${4:-}
off=$((RANDOM % 800 + 100))
work=$(mktemp -d /var/tmp/hamq-bench-amqp.XXXXXX)
trap 'kill $jpid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$build/daemons/hamq-journal" --store "$work/store" --spawn-workers 2 --port-offset $off \
  --instance bamqp$off >"$work/broker.log" 2>&1 &
jpid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$((5672 + off))) 2>/dev/null && break; sleep 0.1; done
echo "== hamq AMQP: perf client --persistent --message-size 1024 --max-pending $win --duration $secs"
"$build/tools/hamq" perf client --url tcp://127.0.0.1:$((5672 + off)) --persistent \
  --message-size 1024 --max-pending "$win" --duration "$secs" queue://bench.amqp | grep -E "^--- (total|aggregated|result)"
echo "== hamq STOMP: hamq-stomp-load -p 1 -c 1 -w $win -s 1024 --persistent -d $secs"
"$build/tools/hamq-stomp-load" -P $((61613 + off)) -D /queue/bench.stomp -p 1 -c 1 -w "$win" \
  -s 1024 --persistent -d "$secs" 2>&1 | tail -6
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
