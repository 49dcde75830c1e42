#!/bin/sh
# The example /etc/hamq/hamq.conf (units/hamq.conf) documents every key of the
# parser with its true default, in the right section, and loads cleanly.
set -u
B=${HAMQ_BUILDDIR:?}; S=${HAMQ_SRCDIR:?}
EX=$S/units/hamq.conf
DUMP=$B/tests/systemd/conf_dump
T=$(mktemp -d /tmp/hamq-conf-ex.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
not() { echo "not ok - $*"; fail=1; }
ok() { echo "ok - $*"; }

# 1. As shipped (every key commented out) it loads and changes nothing.
"$DUMP" >"$T/defaults" || { echo "FAIL: conf_dump"; exit 1; }
if "$DUMP" "$EX" >"$T/shipped" 2>"$T/err" && cmp -s "$T/defaults" "$T/shipped"; then
    ok "the shipped example loads and leaves every default as it is"
else
    cat "$T/err"; diff "$T/defaults" "$T/shipped"; not "the shipped example loads and leaves every default"
fi

# 2. Uncommenting every "#key = value" line: still loads, and every value it
#    documents as the default IS the default (node_id has none: an example value).
sed -E 's/^#([a-z_]+ =)/\1/' "$EX" >"$T/uncommented"
if "$DUMP" "$T/uncommented" >"$T/active" 2>"$T/err"; then
    grep -v '^;* *node_id =' "$T/defaults" >"$T/d1"
    grep -v '^node_id =' "$T/active" >"$T/d2"
    if diff "$T/d1" "$T/d2" >"$T/diff" 2>&1; then
        ok "every value documented as a default is the parser's default"
    else
        cat "$T/diff"; not "every value documented as a default is the parser's default"
    fi
else
    cat "$T/err"; not "the example with every line uncommented loads"
fi

# 3. Every key of every section is documented, in its section; nothing else is.
keys_of() { # "section key" per line, from a dump or the example
    awk '/^\[/{s=$0; next} /^[#;]* *[a-z_]+ =/{k=$0; sub(/^[#;]* */,"",k); sub(/ =.*/,"",k); print s, k}' "$1" | sort
}
keys_of "$T/defaults" >"$T/k.parser"
keys_of "$EX" >"$T/k.example"
if cmp -s "$T/k.parser" "$T/k.example"; then
    ok "the example documents exactly the parser's $(wc -l <"$T/k.parser") keys"
else
    diff "$T/k.parser" "$T/k.example"; not "the example documents exactly the parser's keys (< parser, > example)"
fi

# 4. Each documented key has a comment (its description) right above it or
#    shares the block of the key just above.
undoc=$(awk '/^#[a-z_]+ =/{ if (prev !~ /^#/) print FILENAME": "$0 } {prev=$0}' "$EX")
[ -z "$undoc" ] && ok "every key has a description" || { echo "$undoc"; not "every key has a description"; }

# 5. The firewalld service opens exactly the default ports of the config:
#    every client port and the HA heartbeat port of [ha] listen.
want=$(sed -nE 's/^(port|stomp_port|amqp_port) = ([0-9]+)$/\2/p; s/^listen = .*:([0-9]+)$/\1/p' "$T/defaults" | sort -n | tr '\n' ' ')
got=$(/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot()
assert r.tag == "service" and r.find("short") is not None
print(" ".join(sorted((p.get("port") for p in r.findall("port") if p.get("protocol") == "tcp"), key=int)))' \
    "$S/units/firewalld/hamq.xml" 2>&1)
[ "$got " = "$want" ] && ok "firewalld/hamq.xml is valid and opens the default ports: $got" ||
    not "firewalld/hamq.xml opens $got, the config's defaults are $want"

exit $fail
