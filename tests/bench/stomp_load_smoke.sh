#!/bin/sh
# hamq-stomp-load runs for ~1.5 s against a real hamq broker (hamq-journal
# --spawn-workers 2 on a store in the build tree), producing durable messages
# with a receipt window while a consumer acks them; it must exit 0, report
# more than 0 msgs/s both ways and 0 errors. No speed is asserted.
NAME=stomp-load-smoke
. "$(dirname "$0")/broker_lib.sh"
pick_offset

"$JOURNAL" --store "$WORK/store" --spawn-workers 2 --port-offset "$OFF" \
    --instance "smoke$$_$OFF" >"$WORK/broker.log" 2>&1 &
PID=$!
wait_listening

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
