# Shared helpers of the tests/ha shell tests. Sourced, not run.
# Every wait is bounded in time; every namespace is named hamqt-<pid>-* and
# deleted by the EXIT trap of the test that created it.
HATOOL=${HAMQ_BUILDDIR:-.}/tests/ha/hatool
[ -x "$HATOOL" ] || { echo "hatool not built ($HATOOL)"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

# wait_for FILE PATTERN [SECONDS] [COUNT]: until grep -c PATTERN FILE >= COUNT
wait_for() {
  local f=$1 pat=$2 secs=${3:-10} want=${4:-1} i
  for ((i = 0; i < secs * 20; i++)); do
    [ "$(grep -c -- "$pat" "$f" 2>/dev/null)" -ge "$want" ] && return 0
    sleep 0.05
  done
  echo "timed out after ${secs}s waiting for '$pat' (x$want) in $f:"; sed 's/^/  | /' "$f"
  return 1
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# need_netns: skip (77) unless we can create network namespaces.
need_netns() {
  [ "$(id -u)" = 0 ] || skip "network namespace tests need root (CI runs them as root)"
  command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
  ip netns add "hamqt-$$-probe" 2>/dev/null || skip "cannot create a network namespace here"
  ip netns del "hamqt-$$-probe"
}

# Deletes every namespace this test created.
ns_cleanup() {
  local n
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^hamqt-$$-"); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
}
