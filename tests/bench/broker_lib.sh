# Shared by tests/bench/*.sh: find the binaries, a scratch dir, a free port offset,
# start one hamq broker and stop it on exit. Source it after setting NAME.
#   broker_start [extra hamq-journal args...]  sets PID, OFF, PORT (STOMP), WORK
B=${HAMQ_BUILDDIR:-.}
LOAD=$B/tools/hamq-stomp-load
JOURNAL=$B/daemons/hamq-journal
[ -x "$LOAD" ] && [ -x "$JOURNAL" ] || { echo "SKIP: $LOAD or $JOURNAL not built"; exit 77; }
command -v ss >/dev/null || { echo "SKIP: ss (iproute2) not installed"; exit 77; }

mkdir -p "$B/tests/tmp"
WORK=$(mktemp -d "$B/tests/tmp/$NAME.XXXXXX") || exit 1
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

free_port() { [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# A port offset whose ports are all free (tests run in parallel).
pick_offset() {
    OFF=
    for try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        o=$(( ($$ * 7 + try * 131) % 900 + 100 ))
        if free_port $((61613 + o)) && free_port $((61616 + o)) && free_port $((5672 + o)); then
            OFF=$o; break
        fi
    done
    [ -n "$OFF" ] || { echo "FAIL: no free port offset"; exit 1; }
    PORT=$((61613 + OFF))
}

# Waits until the broker (PID) listens on PORT, at most 15 s.
wait_listening() {
    i=0
    until ! free_port "$PORT"; do
        i=$((i+1))
        if [ $i -gt 150 ] || ! kill -0 "$PID" 2>/dev/null; then
            echo "FAIL: broker not listening on $PORT"; cat "$WORK/broker.log"; exit 1
        fi
        sleep 0.1
    done
}
