# tests/systemd/nspawn-lib.sh — boot a real systemd (PID 1 of a container)
# for the tests of the units, on a host whose own PID 1 is not systemd.
# Sourced by tests/systemd/*.sh; see tests/systemd/README.md.
#
#   ns_require                  skip (exit 77, with the reason) unless root with
#                               systemd-nspawn, nsenter and debootstrap
#   ns_rootfs                   build or reuse the cached Debian rootfs ($NS_ROOTFS)
#   ns_stage                    `make install DESTDIR=` of the build tree into $NS_STAGE
#   ns_start NAME [--bind=..]   boot a container on the rootfs (overlay: the cache
#                               stays pristine), the staged tree copied in
#   ns_exec NAME CMD...         run CMD inside (exit status comes back)
#   ns_wait NAME SECS CMD...    retry CMD inside until it succeeds, SECS at most
#   ns_sanitizer_dropins NAME UNIT...  in a sanitizer build, LeakSanitizer off
#                               for those units (see the function)
#   ns_stop NAME / ns_stop_all  power off (SIGKILL after 15 s); the trap calls ns_stop_all
#
# Every wait is bounded. The containers share the host network (no
# --private-network), so a client on the host reaches a broker inside on
# 127.0.0.1; /dev (and so /dev/shm) is the container's own.

NS_CACHE=${HAMQ_NSPAWN_CACHE:-/var/cache/hamq-test}
NS_MIRROR=${HAMQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The runtime libraries of every hamq binary (sanitizer builds too), plus what
# the tests use inside.
NS_PKGS=systemd,systemd-sysv,dbus,libaio1,libinih1,libzmq5,libnl-3-200,libnl-route-3-200,libqpid-proton11,iproute2,procps,libasan8,libubsan1,polkitd,libpam-systemd
NS_RUN=${NS_RUN:-$(mktemp -d /tmp/hamq-nspawn.XXXXXX)}
NS_STAGE=$NS_RUN/stage
NS_NAMES=()

ns_log() { printf '# %s\n' "$*"; }
ns_die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

ns_require() {
    [ "$(id -u)" = 0 ] || { echo "SKIP: needs root (systemd-nspawn)"; exit 77; }
    local t
    for t in systemd-nspawn nsenter debootstrap systemd-analyze; do
        command -v "$t" >/dev/null ||
            { echo "SKIP: $t not installed (apt-get install systemd-container debootstrap)"; exit 77; }
    done
    [ -n "${HAMQ_BUILDDIR:-}" ] || ns_die "HAMQ_BUILDDIR is not set (run through make check)"
}

# The host's Debian release, so host-built binaries find the same libraries inside.
ns_suite() {
    # shellcheck disable=SC1091
    (. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
}

# The cache is keyed by release + package list: a changed list builds a new rootfs.
ns_rootfs() {
    local suite key t0
    suite=$(ns_suite)
    key=$(printf '%s %s v1' "$suite" "$NS_PKGS" | sha256sum | cut -c1-12)
    NS_ROOTFS=$NS_CACHE/rootfs-$suite-$key
    [ -x "$NS_ROOTFS/lib/systemd/systemd" ] && return 0
    mkdir -p "$NS_CACHE"
    exec 8>"$NS_CACHE/.lock"
    flock -w 600 8 || ns_die "timed out waiting for another test building the rootfs"
    if [ ! -x "$NS_ROOTFS/lib/systemd/systemd" ]; then
        t0=$(date +%s)
        rm -rf "$NS_ROOTFS.tmp"
        ns_log "building the test rootfs $NS_ROOTFS with debootstrap (about 40 s, once)"
        if ! timeout 900 debootstrap --variant=minbase --include="$NS_PKGS" "$suite" \
                "$NS_ROOTFS.tmp" "$NS_MIRROR" >"$NS_CACHE/debootstrap.log" 2>&1; then
            tail -5 "$NS_CACHE/debootstrap.log"
            rm -rf "$NS_ROOTFS.tmp"
            echo "SKIP: debootstrap of $suite from $NS_MIRROR failed (network?), see $NS_CACHE/debootstrap.log"
            exit 77
        fi
        # No login prompt on the pipe console; a fixed machine-id; the journal in
        # /run (volatile) and without rate limits, so tests see every record.
        ln -sf /dev/null "$NS_ROOTFS.tmp/etc/systemd/system/console-getty.service"
        systemd-machine-id-setup --root="$NS_ROOTFS.tmp" >/dev/null
        mkdir -p "$NS_ROOTFS.tmp/etc/systemd/journald.conf.d"
        printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\n' \
            >"$NS_ROOTFS.tmp/etc/systemd/journald.conf.d/hamq-test.conf"
        mv "$NS_ROOTFS.tmp" "$NS_ROOTFS"
        ns_log "rootfs built in $(($(date +%s) - t0)) s ($(du -sh "$NS_ROOTFS" | cut -f1))"
    fi
    exec 8>&-
}

# Installs the build tree the way a package would (prefix /usr, /etc, /var).
ns_stage() {
    [ -d "$NS_STAGE/usr/sbin" ] && return 0
    rm -rf "$NS_STAGE"
    # The distribution's directories, whatever configure chose (distcheck
    # puts them under its own prefix).
    make -s -C "$HAMQ_BUILDDIR" install DESTDIR="$NS_STAGE" prefix=/usr exec_prefix=/usr \
        sysconfdir=/etc localstatedir=/var SYSTEMD_UNITDIR=/usr/lib/systemd/system \
        SYSUSERS_DIR=/usr/lib/sysusers.d TMPFILES_DIR=/usr/lib/tmpfiles.d \
        >"$NS_RUN/install.log" 2>&1 ||
        { cat "$NS_RUN/install.log"; ns_die "make install DESTDIR=$NS_STAGE failed"; }
}

ns_leader() { # the container's PID 1: the child of the nspawn process
    local np
    np=$(cat "$NS_RUN/$1.pid" 2>/dev/null) || return 1
    kill -0 "$np" 2>/dev/null || return 1
    pgrep -P "$np" | head -n1
}

ns_exec() {
    local name=$1 l
    shift
    l=$(ns_leader "$name") || ns_die "container $name is not running"
    nsenter -t "$l" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb SYSTEMD_PAGER= \
        SYSTEMD_COLORS=0 "$@" </dev/null # never the caller's tty (a background job would stop)
}

# ns_wait NAME SECS CMD...: true as soon as CMD succeeds inside, false after SECS.
ns_wait() {
    local name=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        ns_exec "$name" "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# ns_start NAME [extra nspawn args]: boots, then copies the staged tree in
# (into the overlay, lost at stop) and reloads systemd.
ns_start() {
    local name=$1 st l i t0
    shift
    t0=$(date +%s%N)
    setsid systemd-nspawn -D "$NS_ROOTFS" --boot --register=no --keep-unit -M "$name" \
        --console=pipe --volatile=overlay --kill-signal=SIGRTMIN+3 \
        --capability=CAP_NET_ADMIN,CAP_IPC_LOCK --bind-ro="$NS_STAGE":/hamq-stage "$@" \
        </dev/null >"$NS_RUN/$name.log" 2>&1 &
    echo $! >"$NS_RUN/$name.pid"
    NS_NAMES+=("$name")
    for ((i = 0; i < 300; i++)); do
        if l=$(ns_leader "$name") && [ -n "$l" ]; then
            st=$(nsenter -t "$l" -a systemctl is-system-running 2>/dev/null || true)
            case "$st" in running | degraded) break ;; esac
        fi
        kill -0 "$(cat "$NS_RUN/$name.pid")" 2>/dev/null ||
            { cat "$NS_RUN/$name.log"; ns_die "systemd-nspawn $name exited"; }
        sleep 0.1
    done
    [ "$i" -lt 300 ] || { cat "$NS_RUN/$name.log"; ns_die "$name did not boot in 30 s"; }
    ns_log "container $name: systemd $st in $((($(date +%s%N) - t0) / 1000000)) ms"
    # tar, not cp: /lib and /sbin are symlinks into /usr in the rootfs (merged /usr)
    ns_exec "$name" sh -c 'tar -C /hamq-stage -cf - . | tar -C / -xf - --keep-directory-symlink' ||
        ns_die "copying the staged install into $name"
    ns_exec "$name" systemctl daemon-reload || ns_die "daemon-reload in $name"
}

# A sanitizer build: LeakSanitizer needs ptrace, which the hardened units
# forbid (seccomp, PrivateUsers), and would turn every exit into status 1.
# Leaks are checked by the host tests; here ASan/UBSan proper stay on.
ns_sanitizer_dropins() {
    local name=$1 u
    shift
    ldd "$HAMQ_BUILDDIR/daemons/hamq-journal" | grep -q libasan || return 0
    for u in "$@"; do
        ns_exec "$name" mkdir -p "/run/systemd/system/$u.d"
        ns_exec "$name" sh -c "printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' >/run/systemd/system/$u.d/asan.conf"
    done
    ns_exec "$name" systemctl daemon-reload
    ns_log "sanitizer build: ASAN_OPTIONS=detect_leaks=0 for $* in $name"
}

ns_stop() {
    local name=$1 np i
    np=$(cat "$NS_RUN/$name.pid" 2>/dev/null) || return 0
    if kill -0 "$np" 2>/dev/null; then
        kill -TERM "$np"
        for ((i = 0; i < 150; i++)); do kill -0 "$np" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$np" 2>/dev/null && { kill -KILL "$np"; sleep 0.3; }
    fi
    rm -f "$NS_RUN/$name.pid"
}

ns_stop_all() {
    local n
    for n in "${NS_NAMES[@]}"; do ns_stop "$n"; done
    [ -n "${HAMQ_KEEP_NSPAWN_RUN:-}" ] || rm -rf "$NS_RUN"
}
