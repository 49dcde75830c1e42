#!/bin/sh
# Every binary has a man page (generated from --help by help2man) that shows
# every option of its --help; hamq.conf(5) shows every configuration key; and
# groff renders each page without a warning.
set -u
B=${HAMQ_BUILDDIR:?}
fail=0
not() { echo "not ok - $*"; fail=1; }
ok() { echo "ok - $*"; }
command -v groff >/dev/null || { echo "SKIP: groff not installed"; exit 77; }

check_page() { # page: renders cleanly
    w=$(groff -man -Tutf8 -ww -z "$1" 2>&1)
    [ -z "$w" ] && ok "$(basename "$1") renders without warnings" ||
        { echo "$w"; not "$(basename "$1") renders without warnings"; }
}

help_of() { # every --help text of a binary (the hamq CLI: also each command's)
    "$B/$1" --help
    if [ "$1" = tools/hamq ]; then
        for c in producer consumer browser "queue stat" perf; do
            # shellcheck disable=SC2086
            "$B/$1" $c --help
        done
    fi
}

for bin in daemons/hamq-journal daemons/hamq-worker supervisor/hamq-supervisor \
           supervisor/hamq-supervisorctl tools/hamq; do
    name=$(basename $bin)
    page=$(ls "$B"/man/"$name".[18] 2>/dev/null | head -n1)
    [ -n "$page" ] || { not "$name has a man page in $B/man"; continue; }
    text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page")
    opts=$(help_of "$bin" | grep -oE -- '--[a-zA-Z][a-zA-Z-]+' | sort -u)
    [ -n "$opts" ] || { not "$name --help lists options"; continue; }
    missing=
    for o in $opts; do
        printf '%s\n' "$text" | grep -q -- "$o" || missing="$missing $o"
    done
    [ -z "$missing" ] && ok "$(basename "$page") shows the $(echo $opts | wc -w) options of $name --help" ||
        not "$(basename "$page") misses$missing"
    check_page "$page"
done

page=$B/man/hamq.conf.5
if [ -f "$page" ]; then
    text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page")
    missing=
    for k in $("$B/tests/systemd/conf_dump" | sed -nE 's/^[; ]*([a-z_]+) =.*/\1/p'); do
        printf '%s\n' "$text" | grep -q "^$k (default" || missing="$missing $k"
    done
    [ -z "$missing" ] && ok "hamq.conf.5 documents every configuration key" ||
        not "hamq.conf.5 misses$missing"
    check_page "$page"
else
    not "hamq.conf.5 exists"
fi
exit $fail
