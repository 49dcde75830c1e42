#!/bin/bash
# HA as operators run it: two nodes (two containers, each booting a real
# systemd; see tests/systemd/README.md) share one store (a bind-mounted host
# directory) and run hamq-supervisor.service with [ha] activation = systemd.
# `systemctl start hamq-supervisor` brings the broker up (the supervisor starts
# hamq.target over D-Bus, as user hamq through polkit), systemctl status and
# journalctl show the supervisor's STATUS= and structured events
# (journalctl HAMQ_EVENT=promote), `hamq-supervisorctl failover` moves the
# broker to the other node with no message lost, when the live node dies
# the backup takes over, and with [ha] activation = exec the same unit runs
# hamq-journal as the supervisor's child.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
set -u
# shellcheck source=tests/systemd/nspawn-lib.sh
. "${HAMQ_SRCDIR:?}/tests/systemd/nspawn-lib.sh"
ns_require
[ -x "$HAMQ_BUILDDIR/supervisor/hamq-supervisor" ] ||
    { echo "SKIP: hamq-supervisor is not built"; exit 77; }
STORE=$(mktemp -d /var/tmp/hamq-sd-store.XXXXXX)
trap 'ns_stop_all; rm -rf "$STORE"' EXIT
trap "exit 1" INT TERM HUP
PY=/usr/bin/python3
$PY -c 'import stomp' 2>/dev/null || { echo "SKIP: python3-stomp not installed on the host"; exit 77; }
PROBE="$PY $HAMQ_SRCDIR/tests/systemd/stomp_probe.py"

n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not() { n=$((n + 1)); echo "not ok $n - $*"; fail=1; }
check() { if eval "$2"; then ok "$1"; else not "$1"; fi; }
on() { ns_exec "$@"; }                                # on NODE cmd...
prop() { on "$1" systemctl show -p "$3" --value "$2"; } # prop NODE UNIT PROPERTY
status_key() { # status_key NODE KEY: from hamq-supervisorctl status --json
    on "$1" hamq-supervisorctl status --json 2>/dev/null |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0].get(sys.argv[1], ""))' "$2" 2>/dev/null
}
role() { status_key "$1" role; }
wait_role() { # wait_role NODE ROLE SECS
    local i
    for ((i = 0; i < $3 * 5; i++)); do [ "$(role "$1")" = "$2" ] && return 0; sleep 0.2; done
    return 1
}
wait_active() { ns_wait "$1" "$3" systemctl is-active -q "$2"; } # wait_active NODE UNIT SECS
show_logs() {
    local node
    for node in "$A" "$B"; do
        ns_leader "$node" >/dev/null || continue
        echo "# --- $node"
        on "$node" journalctl -u hamq-supervisor -u hamq-journal --no-pager -n 40 | sed 's/^/# /'
    done
}

# Free ports on the host (the containers share its network).
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
# Multiples of 10 (two different offsets never share a port), reserved with an flock
# on fd 9 of this shell while it lives, as tests/broker/hamqtest.py does: tests run
# in parallel. Sets K (0 if none was found).
pick_offset() {
    local k
    K=0
    mkdir -p /tmp/hamq-test-offsets
    for _ in $(seq 1 50); do
        k=$((10 * (10 + RANDOM % 90)))
        port_free $((61616 + k)) && port_free $((61613 + k)) && port_free $((5672 + k)) &&
            port_free $((61720 + k)) && port_free $((61721 + k)) || continue
        exec 9>"/tmp/hamq-test-offsets/$k.lock"
        flock -n 9 && { K=$k; return; }
        exec 9>&-
    done
}

t0=$(date +%s)
ns_rootfs
ns_stage
A=hamqa$$ B=hamqb$$
ns_start "$A" --bind="$STORE":/var/lib/hamq
ns_start "$B" --bind="$STORE":/var/lib/hamq
pick_offset
STOMP=$((61613 + K))
conf() { # conf NODE ROLE LISTEN PEER
    on "$1" sh -c "printf '%s\n' '[broker]' 'instance = $1' 'port_offset = $K' \
        '[ha]' 'node_id = $1' 'role = $2' 'listen = tcp://127.0.0.1:$3' \
        'peers = tcp://127.0.0.1:$4' 'activation = systemd' \
        'heartbeat_interval = 100ms' 'heartbeat_timeout = 1s' >/etc/hamq/hamq.conf"
    on "$1" systemd-sysusers >/dev/null 2>&1
    on "$1" systemd-tmpfiles --create >/dev/null 2>&1
    ns_sanitizer_dropins "$1" hamq-supervisor.service hamq-journal.service hamq-worker@.service
}
conf "$A" primary $((61720 + K)) $((61721 + K))
conf "$B" backup $((61721 + K)) $((61720 + K))
check "both nodes map the shared store to the same hamq uid" \
    '[ "$(on "$A" id -u hamq)" = "$(on "$B" id -u hamq)" ]'

# --- one node: systemctl start hamq-supervisor brings the broker up -----------
on "$A" timeout 30 systemctl start hamq-supervisor
wait_active "$A" hamq-journal 30
wait_role "$A" live 30
check "systemctl start hamq-supervisor on $A: it goes live and starts hamq.target (journal + workers)" \
    '[ "$(role "$A")" = live ] && [ "$(on "$A" systemctl is-active hamq-journal hamq-worker@0 hamq-worker@1 | sort -u)" = active ]'
if [ $fail = 1 ]; then show_logs; exit 1; fi
check "the supervisor and the broker run as hamq" \
    '[ "$(prop "$A" hamq-supervisor User)" = hamq ] && [ "$(prop "$A" hamq-journal User)" = hamq ]'
ns_wait "$A" 10 sh -c 'journalctl -u hamq-journal | grep -q "worker 1 .* is serving"'
check "a STOMP client sends a persistent message to the live node" \
    '$PROBE "$STOMP" send ha.q1 before-failover'
st=$(prop "$A" hamq-supervisor StatusText)
check "systemctl status hamq-supervisor shows its STATUS= line: '$st'" \
    'on "$A" systemctl status hamq-supervisor | grep -q "Status: \"" && [ -n "$st" ]'

# --- the second node stays backup ----------------------------------------------
on "$B" timeout 30 systemctl start hamq-supervisor
wait_role "$B" backup 20
check "the second node's supervisor stays backup, its broker stopped" \
    '[ "$(role "$B")" = backup ] && ! on "$B" systemctl is-active -q hamq-journal'
on "$A" hamq-supervisorctl status | sed 's/^/# A: /'

# --- journald: the story and the structured events --------------------------------
check "journalctl -u hamq-supervisor tells the story (promote)" \
    'on "$A" journalctl -u hamq-supervisor --no-pager | grep -q "goes live"'
ev=$(on "$A" journalctl HAMQ_EVENT=promote -o json --output-fields=_SYSTEMD_UNIT,HAMQ_EVENT,HAMQ_EPOCH,MESSAGE_ID,MESSAGE --no-pager)
echo "$ev" | sed 's/^/# /'
check "journalctl HAMQ_EVENT=promote filters the supervisor's promote event (with its MESSAGE_ID)" \
    'echo "$ev" | grep -q "\"_SYSTEMD_UNIT\":\"hamq-supervisor.service\"" && echo "$ev" | grep -q "\"MESSAGE_ID\":\"c3fad7686cc74fa6a36b1523b4b9e49f\"" && [ "$(echo "$ev" | grep -o "\"HAMQ_EVENT\":\"[a-z_-]*\"" | sort -u)" = "\"HAMQ_EVENT\":\"promote\"" ]'

# --- planned failover through hamq-supervisorctl --------------------------------------
e0=$(status_key "$A" epoch)
out=$(on "$A" timeout 60 hamq-supervisorctl failover 2>&1); rc=$?
echo "$out" | sed 's/^/# failover: /'
wait_role "$B" live 30
wait_active "$B" hamq-journal 30
check "hamq-supervisorctl failover (rc $rc): $B is live with the broker, $A is backup with it stopped" \
    '[ $rc = 0 ] && [ "$(role "$B")" = live ] && on "$B" systemctl is-active -q hamq-journal && ! on "$A" systemctl is-active -q hamq-journal && wait_role "$A" backup 10'
e1=$(status_key "$B" epoch)
check "the epoch was raised ($e0 -> $e1)" '[ -n "$e0" ] && [ -n "$e1" ] && [ "$e1" -gt "$e0" ]'
ns_wait "$B" 10 sh -c 'journalctl -u hamq-journal | grep -q "worker 1 .* is serving"'
check "the message sent before the failover is received from the new live node" \
    '$PROBE "$STOMP" recv ha.q1 before-failover'
check "journalctl HAMQ_EVENT=failover on $B records it" \
    'on "$B" journalctl HAMQ_EVENT=failover --no-pager -o cat | grep -q "took over"'

# --- the live node dies: the backup takes over ------------------------------------------
$PROBE "$STOMP" send ha.q2 before-crash || not "send before the crash"
ns_stop "$B"
wait_role "$A" live 30
wait_active "$A" hamq-journal 30
check "$B powered off: $A takes over and serves again" \
    '[ "$(role "$A")" = live ] && $PROBE "$STOMP" recv ha.q2 before-crash'

# --- exec activation under the same unit (the example config's default) ---------------
on "$A" timeout 60 systemctl stop hamq-supervisor
check "stopping hamq-supervisor stops the broker it started" \
    'ns_wait "$A" 20 sh -c "! systemctl is-active -q hamq-journal"'
on "$A" sed -i 's/^activation = systemd$/activation = exec/' /etc/hamq/hamq.conf
on "$A" timeout 30 systemctl start hamq-supervisor
wait_role "$A" live 30
for _ in $(seq 1 50); do [ "$(status_key "$A" serving)" = yes ] && break; sleep 0.2; done
sup=$(prop "$A" hamq-supervisor MainPID)
core=$(on "$A" pgrep -P "$sup" -x hamq-journal)
check "[ha] activation = exec: the supervisor runs hamq-journal as its child (pid ${core:-none}) inside its unit" \
    '[ -n "$core" ] && [ "$(on "$A" ps -o user= -p "$core")" = hamq ] && ! on "$A" systemctl is-active -q hamq-journal'
check "and clients are served by the broker it runs" \
    '$PROBE "$STOMP" send ha.q3 exec-mode && $PROBE "$STOMP" recv ha.q3 exec-mode'

[ $fail = 0 ] || show_logs
echo "# $n checks in $(($(date +%s) - t0)) s"
exit $fail
