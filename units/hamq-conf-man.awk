# hamq-conf-man.awk — turns the documented example units/hamq.conf into the
# man page hamq.conf(5): the comment block above each "#key = default" line
# becomes that key's description. Run: awk -v version=X -f this units/hamq.conf
function esc(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    sub(/^[.']/, "\\\\\\&&", s)
    return s
}
function flush_intro() {
    if (intro != "") { print esc(intro); intro = "" }
}
BEGIN {
    print ".TH HAMQ.CONF 5 \"\" \"hamq " version "\" \"File Formats\""
    print ".SH NAME"
    print "hamq.conf \\- configuration file of the hamq message broker"
    print ".SH SYNOPSIS"
    print "/etc/hamq/hamq.conf"
    print ".SH DESCRIPTION"
    header = 1
    text = ""
}
# The file's own header: everything before the first section.
header && /^\[/ { header = 0 }
header && /^# ?/ {
    line = $0; sub(/^# ?/, "", line)
    if (line ~ /^\/etc\/hamq\/hamq.conf/) { sub(/^[^ ]+ [^ ]+ the/, "The", line) }
    print esc(line); next
}
header { next }
/^\[[a-z]+\]$/ {
    sect = $0
    print ".SH SECTION " esc(sect)
    text = ""
    next
}
/^#[a-z_]+ = ?/ {
    key = $0; sub(/^#/, "", key)
    name = key; sub(/ =.*/, "", name)
    def = key; sub(/^[a-z_]+ = ?/, "", def)
    print ".TP"
    print "\\fB" esc(name) "\\fR (default: " (def == "" ? "empty" : "\\fI" esc(def) "\\fR") ")"
    if (text != "") print esc(text)
    # several keys share one comment block (heartbeat_interval/timeout): keep it
    next
}
/^# ?/ { line = $0; sub(/^# ?/, "", line); text = (text == "" || blank) ? line : text "\n" line; blank = 0; next }
/^$/ { blank = 1; next }
END {
    print ".SH FILES"
    print "/etc/hamq/hamq.conf, and the units that read it:"
    print "hamq\\-journal.service, hamq\\-worker@.service, hamq\\-supervisor.service."
    print ".SH SEE ALSO"
    print "hamq\\-journal(8), hamq\\-worker(8), systemd.exec(5)"
}
