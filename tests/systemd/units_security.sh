#!/bin/sh
# The hardening of the units, scored by systemd itself:
# `systemd-analyze security --offline=true` (no systemd as PID 1 needed) must
# rate hamq-journal and hamq-worker@ at 2.0 or less, hamq-supervisor at 3.0
# or less. The full table of each unit is printed into the test log.
set -u
B=${HAMQ_BUILDDIR:?}
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze not installed"; exit 77; }
systemd-analyze security --help 2>/dev/null | grep -q -- --offline ||
    { echo "SKIP: this systemd-analyze has no --offline (systemd < 250)"; exit 77; }
T=$(mktemp -d /tmp/hamq-units-sec.XXXXXX)
trap 'rm -rf "$T"' EXIT
# A template is scored through an instance of it.
cp "$B/units/hamq-journal.service" "$B/units/hamq-supervisor.service" "$T/"
cp "$B/units/hamq-worker@.service" "$T/hamq-worker@0.service"
fail=0
for u in hamq-journal.service:2.0 hamq-worker@0.service:2.0 hamq-supervisor.service:3.0; do
    unit=${u%%:*}; max=${u#*:}
    out=$(cd "$T" && systemd-analyze security --offline=true --no-pager "$T/$unit" 2>&1)
    printf '%s\n' "$out" | sed 's/^/# /'
    score=$(printf '%s\n' "$out" | sed -nE 's/.*Overall exposure level for .*: ([0-9.]+).*/\1/p')
    if [ -z "$score" ]; then
        echo "not ok - $unit: no overall exposure level in the output"; fail=1
    elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }'; then
        echo "ok - $unit exposure $score <= $max"
    else
        echo "not ok - $unit exposure $score > $max"; fail=1
    fi
done
exit $fail
