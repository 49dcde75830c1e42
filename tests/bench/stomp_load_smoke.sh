#!/bin/sh
# hamq-stomp-load runs for ~1.5 s against a real hamq broker (hamq-journal
# --spawn-workers 2 on a store in the build tree), producing durable messages
# with a receipt window while a consumer acks them; it must exit 0, report
# more than 0 msgs/s both ways and 0 errors. No speed is asserted.
B=${HAMQ_BUILDDIR:-.}
LOAD=$B/tools/hamq-stomp-load
JOURNAL=$B/daemons/hamq-journal
[ -x "$LOAD" ] && [ -x "$JOURNAL" ] || { echo "SKIP: $LOAD or $JOURNAL not built"; exit 77; }

mkdir -p "$B/tests/tmp"
WORK=$(mktemp -d "$B/tests/tmp/stomp-load-smoke.XXXXXX") || exit 1
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        i=0; while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        kill -KILL "$PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A port offset whose STOMP port is free (tests run in parallel).
command -v ss >/dev/null || { echo "SKIP: ss (iproute2) not installed"; exit 77; }
free_port() { [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
OFF=
for try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    o=$(( ($$ * 7 + try * 131) % 900 + 100 ))
    if free_port $((61613 + o)) && free_port $((61616 + o)) && free_port $((5672 + o)); then
        OFF=$o; break
    fi
done
[ -n "$OFF" ] || { echo "FAIL: no free port offset"; exit 1; }
PORT=$((61613 + OFF))

"$JOURNAL" --store "$WORK/store" --spawn-workers 2 --port-offset "$OFF" \
    --instance "smoke$$_$OFF" >"$WORK/broker.log" 2>&1 &
PID=$!
i=0
until ! free_port "$PORT"; do
    i=$((i+1))
    if [ $i -gt 150 ] || ! kill -0 "$PID" 2>/dev/null; then
        echo "FAIL: broker not listening on $PORT"; cat "$WORK/broker.log"; exit 1
    fi
    sleep 0.1
done

timeout 60 "$LOAD" --port "$PORT" --producers 1 --consumers 1 --window 50 --size 512 \
    --duration 1.5 --idle 2 --grace 10 --tree "$PID" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc -eq 0 ] || { echo "FAIL: hamq-stomp-load exited $rc"; cat "$WORK/broker.log"; exit 1; }
line=$(grep '^RESULT ' "$WORK/out")
val() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
P=$(val produce_mps); C=$(val consume_mps); E=$(val errors)
[ -n "$P" ] && [ "${P%.*}" -gt 0 ] || { echo "FAIL: produce_mps '$P' not > 0"; exit 1; }
[ -n "$C" ] && [ "${C%.*}" -gt 0 ] || { echo "FAIL: consume_mps '$C' not > 0"; exit 1; }
[ "$E" = 0 ] || { echo "FAIL: errors=$E"; exit 1; }
echo "PASS: produced $P msgs/s, consumed $C msgs/s, 0 errors"
exit 0
