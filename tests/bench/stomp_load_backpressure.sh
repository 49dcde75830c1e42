#!/bin/sh
# A producer held back by a slow core is paused, never reset: 4 producers
# (receipt window 1000 each) fill a broker with durable then non-persistent
# messages while the core is slowed down on purpose (glibc malloc asked for
# transparent huge pages, whose first touch is slow on this VM), so the worker
# must hold its clients back. Regression: the worker once recv()d 0 bytes into
# a full input buffer, took it for the peer closing, and reset the client.
# Passes when both runs end with 0 errors (no speed is asserted).
NAME=stomp-load-bp
. "$(dirname "$0")/broker_lib.sh"
pick_offset

GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$JOURNAL" --store "$WORK/store" --spawn-workers 1 \
    --port-offset "$OFF" --instance "bp$$_$OFF" >"$WORK/broker.log" 2>&1 &
PID=$!
wait_listening

run() { # label, load options...
    label=$1; shift
    timeout 120 "$LOAD" --port "$PORT" --producers 4 --window 1000 --grace 30 --label "$label" \
        "$@" >"$WORK/out.$label" 2>&1
    rc=$?
    cat "$WORK/out.$label"
    E=$(grep '^RESULT ' "$WORK/out.$label" | tr ' ' '\n' | sed -n 's/^errors=//p')
    [ $rc -eq 0 ] && [ "$E" = 0 ] || {
        echo "FAIL: $label: hamq-stomp-load exited $rc, errors=${E:-?}"
        tail -20 "$WORK/broker.log"
        exit 1
    }
}
# Bounded by count too: the two runs together must stay under [broker] max_memory
# (1 GiB), or flow control rightly blocks the producers and the run ends in errors.
run durable --duration 3 --count 150000 --dest /queue/bp
run non-persistent --duration 4 --count 150000 --non-persistent --dest /queue/bp
echo "PASS: both loads ended without an error"
exit 0
