#!/bin/bash
# The broker as a systemd service, in a REAL systemd (a container booted with
# systemd-nspawn; see tests/systemd/README.md): installed with `make install
# DESTDIR=`, hamq user and directories from sysusers.d/tmpfiles.d,
# `systemctl start hamq.target` serves STOMP clients (the hardened core and
# workers still share their /dev/shm segment), systemctl status shows STATUS=,
# journalctl shows the structured events, durable messages survive a restart,
# the watchdog restarts a frozen core, and a bad config is not restarted.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
set -u
# shellcheck source=tests/systemd/nspawn-lib.sh
. "${HAMQ_SRCDIR:?}/tests/systemd/nspawn-lib.sh"
ns_require
trap ns_stop_all EXIT
trap "exit 1" INT TERM HUP
PY=/usr/bin/python3
$PY -c 'import stomp' 2>/dev/null || { echo "SKIP: python3-stomp not installed on the host"; exit 77; }
PROBE="$PY $HAMQ_SRCDIR/tests/systemd/stomp_probe.py"

n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not() { n=$((n + 1)); echo "not ok $n - $*"; fail=1; }
check() { # check "description" 'bash code' (on the host; `inside` runs in the container)
    if eval "$2"; then ok "$1"; else not "$1"; fi
}
inside() { ns_exec "$C" "$@"; }
active() { [ "$(inside systemctl is-active "$@" 2>/dev/null | sort -u)" = active ]; }
prop() { inside systemctl show -p "$2" --value "$1"; }

# A free port offset on the host (the containers share its network).
# Multiples of 10 (two different offsets never share a port), reserved with an flock
# on fd 9 of this shell while it lives, as tests/broker/hamqtest.py does: tests run
# in parallel. Sets K (0 if none was found).
pick_offset() {
    local k p busy
    K=0
    mkdir -p /tmp/hamq-test-offsets
    for _ in $(seq 1 50); do
        k=$((10 * (10 + RANDOM % 90))); busy=
        for p in 61616 61613 5672; do
            (exec 3<>/dev/tcp/127.0.0.1/$((p + k))) 2>/dev/null && busy=1
        done
        [ -n "$busy" ] && continue
        exec 9>"/tmp/hamq-test-offsets/$k.lock"
        flock -n 9 && { K=$k; return; }
        exec 9>&-
    done
}

t0=$(date +%s)
ns_rootfs
ns_stage
C=hamqj$$
ns_start "$C"
pick_offset
STOMP=$((61613 + K))

# --- installation, as the RPM's %post does it -------------------------------
inside sh -c "test -f /etc/hamq/hamq.conf && printf '\n[broker]\nport_offset = $K\n' >>/etc/hamq/hamq.conf"
check "make install put the example config in /etc/hamq (we add port_offset $K)" \
    'inside grep -q "^port_offset = $K" /etc/hamq/hamq.conf'
inside systemd-sysusers >/dev/null 2>&1
inside systemd-tmpfiles --create >/dev/null 2>&1
check "sysusers.d creates the hamq system user" 'inside id -u hamq >/dev/null'
check "tmpfiles.d creates /var/lib/hamq and /run/hamq owned by hamq, mode 750" \
    '[ "$(inside stat -c %U:%a /var/lib/hamq /run/hamq | sort -u)" = hamq:750 ]'
out=$(inside systemd-analyze verify --man=no hamq-journal.service hamq-worker@0.service hamq.target hamq-supervisor.service 2>&1)
echo "$out" | sed 's/^/# verify: /'
check "systemd-analyze verify accepts the installed units" '[ -z "$out" ]'

ns_sanitizer_dropins "$C" hamq-journal.service hamq-worker@.service

# --- the broker starts and serves --------------------------------------------
all_up() { ns_wait "$C" 30 sh -c '[ "$(systemctl is-active hamq-journal hamq-worker@0 hamq-worker@1 | sort -u)" = active ]'; }
inside timeout 60 systemctl start hamq.target
all_up
check "systemctl start hamq.target: hamq-journal, hamq-worker@0 and @1 are active" \
    'active hamq-journal hamq-worker@0 hamq-worker@1'
if [ $fail = 1 ]; then # nothing else can pass: show why and stop here
    inside journalctl -u hamq-journal -u hamq-worker@0 -u hamq-worker@1 --no-pager -n 60 | sed 's/^/# /'
    exit 1
fi
check "the core runs as hamq, not root" '[ "$(prop hamq-journal User)" = hamq ]'
inside ps -o user=,pid=,args= -C hamq-journal,hamq-worker | sed 's/^/# /'
shm=$(inside stat -c '%U %n' /dev/shm/hamq.hamq 2>&1)
check "the shm segment exists, owned by hamq: $shm" '[ "${shm%% *}" = hamq ]'
served() { inside journalctl -u hamq-journal --no-pager | grep -q "worker $1 (pid [0-9]*) is serving"; }
for _ in $(seq 1 50); do served 0 && served 1 && break; sleep 0.2; done
check "both hardened workers attached to the core's segment (PrivateDevices, PrivateUsers, RemoveIPC)" \
    'served 0 && served 1'
check "a STOMP client on the host sends a persistent message (receipt = durable)" \
    '$PROBE "$STOMP" send sd.q1 hello-systemd'
check "and receives it back" '$PROBE "$STOMP" recv sd.q1 hello-systemd'

# --- what an operator sees -----------------------------------------------------
ns_wait "$C" 5 sh -c 'systemctl show -p StatusText --value hamq-journal | grep -q "worker(s)"'
st=$(prop hamq-journal StatusText)
check "systemctl shows the core's STATUS= line: '$st'" \
    'echo "$st" | grep -Eq "^serving: epoch [0-9]+, 2/2 worker\(s\), [0-9]+ queue\(s\), [0-9]+ message\(s\)$"'
check "systemctl status prints it" 'inside systemctl status hamq-journal | grep -q "Status: \"serving: epoch"'
ns_wait "$C" 5 sh -c 'systemctl show -p StatusText --value hamq-worker@0 | grep -q "^serving"'
wst=$(prop hamq-worker@0 StatusText)
check "a worker's STATUS= line: '$wst'" \
    'echo "$wst" | grep -q "^serving: slot 0 of instance hamq, STOMP port $STOMP, [0-9]* client connection(s)$"'
check "journalctl -u hamq-journal shows the core's records" \
    'inside journalctl -u hamq-journal --no-pager | grep -q "core up: store /var/lib/hamq/store"'
ev=$(inside journalctl HAMQ_EVENT=ready -o json --output-fields=_SYSTEMD_UNIT,HAMQ_EVENT,MESSAGE --no-pager)
echo "$ev" | sed 's/^/# /'
check "journalctl HAMQ_EVENT=ready filters the core's structured ready event" \
    'echo "$ev" | grep -q "\"_SYSTEMD_UNIT\":\"hamq-journal.service\"" && [ "$(echo "$ev" | grep -o "\"HAMQ_EVENT\":\"[a-z_-]*\"" | sort -u)" = "\"HAMQ_EVENT\":\"ready\"" ]'

# --- a worker killed with SIGKILL is restarted and reattaches -------------------
wpid=$(prop hamq-worker@1 MainPID)
inside kill -KILL "$wpid"
ns_wait "$C" 20 sh -c "p=\$(systemctl show -p MainPID --value hamq-worker@1); [ \"\$p\" != 0 ] && [ \"\$p\" != $wpid ] && systemctl is-active -q hamq-worker@1"
check "a worker killed with SIGKILL is restarted by systemd (pid $wpid -> $(prop hamq-worker@1 MainPID))" \
    '[ "$(prop hamq-worker@1 NRestarts)" -ge 1 ] && active hamq-worker@1'
for _ in $(seq 1 50); do inside journalctl HAMQ_EVENT=worker-lost --no-pager -o cat | grep -q "worker 1 (pid $wpid)" && break; sleep 0.2; done
check "the core logged it as a structured event (journalctl HAMQ_EVENT=worker-lost)" \
    'inside journalctl HAMQ_EVENT=worker-lost --no-pager -o cat | grep -q "worker 1 (pid $wpid)"'
check "and the broker still serves" '$PROBE "$STOMP" send sd.q4 after-worker-kill && $PROBE "$STOMP" recv sd.q4 after-worker-kill'

# --- durability across a restart of the service --------------------------------
$PROBE "$STOMP" send sd.q2 survives-restart || not "send before the restart"
inside timeout 60 systemctl restart hamq-journal
all_up
check "systemctl restart hamq-journal brings the workers back too (PartOf=)" \
    'active hamq-journal hamq-worker@0 hamq-worker@1'
check "a durable message survives the restart (store writable under ProtectSystem=strict)" \
    '$PROBE "$STOMP" recv sd.q2 survives-restart'

# --- the watchdog restarts a frozen core -----------------------------------------
inside mkdir -p /run/systemd/system/hamq-journal.service.d
inside sh -c 'printf "[Service]\nWatchdogSec=3s\n" >/run/systemd/system/hamq-journal.service.d/test.conf'
inside systemctl daemon-reload
inside timeout 60 systemctl restart hamq-journal
all_up
pid=$(prop hamq-journal MainPID)
r0=$(prop hamq-journal NRestarts)
inside kill -STOP "$pid"
ns_wait "$C" 40 sh -c "p=\$(systemctl show -p MainPID --value hamq-journal); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ] && systemctl is-active -q hamq-journal"
r1=$(prop hamq-journal NRestarts)
check "a SIGSTOPped core is killed by the watchdog and restarted (pid $pid -> $(prop hamq-journal MainPID), NRestarts $r0 -> $r1)" \
    '[ "$r1" -gt "$r0" ] && inside journalctl -u hamq-journal --no-pager | grep -qi "watchdog timeout"'
all_up
check "the workers reattach to the new core and clients are served again" \
    '$PROBE $STOMP send sd.q3 after-watchdog && $PROBE $STOMP recv sd.q3 after-watchdog'

# --- a bad configuration is not restarted (RestartPreventExitStatus=) ------------
inside sh -c 'printf "[broker]\nworkers = lots\n" >>/etc/hamq/hamq.conf'
inside timeout 30 systemctl restart hamq-journal >/dev/null 2>&1
sleep 4 # RestartSec=2s: long enough for systemd to have restarted it if it would
# (a manual restart resets NRestarts to 0; an automatic one would count 1)
r1=$(prop hamq-journal NRestarts)
check "with a bad config the core exits 2 and stays failed, not restarted (status $(prop hamq-journal ExecMainStatus), NRestarts $r1)" \
    '[ "$(prop hamq-journal ActiveState)" = failed ] && [ "$(prop hamq-journal ExecMainStatus)" = 2 ] && [ "$r1" = 0 ]'
[ $fail = 0 ] || inside journalctl -u hamq-journal --no-pager -n 25 | sed 's/^/# /'
check "the journal says why" \
    'inside journalctl -u hamq-journal --no-pager | grep -q "workers = \"lots\": not an integer"'

# --- stop: nothing left behind ----------------------------------------------------
inside sed -i '/^workers = lots$/d' /etc/hamq/hamq.conf
inside systemctl reset-failed hamq-journal
inside timeout 60 systemctl stop hamq.target hamq-journal 'hamq-worker@*'
check "systemctl stop leaves no hamq process and no /dev/shm/hamq.* file" \
    '! inside pgrep -u hamq >/dev/null && [ -z "$(inside ls /dev/shm | grep ^hamq)" ]'

echo "# $n checks in $(($(date +%s) - t0)) s"
exit $fail
