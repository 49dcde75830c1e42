#!/bin/bash
# Coverage-guided fuzzing of the worker's AMQP input path (worker_amqp*.c and
# Proton's connection driver, the core played by tests/amqp/fuzz_amqp.c) with
# libFuzzer under ASan+UBSan, for a bounded time (HAMQ_AMQP_FUZZ_SECONDS,
# default 20). Seeds are real client byte streams from Python Proton
# (fuzz_seeds.py). Skips (77) without clang/libFuzzer or python3-qpid-proton.
set -u
src=${HAMQ_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${HAMQ_BUILDDIR:-$src}
secs=${HAMQ_AMQP_FUZZ_SECONDS:-20}
cc=$(command -v clang || true)
[ -n "$cc" ] || { echo "skip: clang not installed (Debian: clang)"; exit 77; }
/usr/bin/python3 -c 'import proton' 2>/dev/null ||
  { echo "skip: python3-qpid-proton not installed (seed generator)"; exit 77; }
work=$(mktemp -d /tmp/hamq-amqp-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
d=$src/daemons
inih_libs="$(pkg-config --libs inih 2>/dev/null || echo -linih) $(pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)"
proton_libs=$(pkg-config --libs libqpid-proton 2>/dev/null || echo -lqpid-proton)
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$build" -I"$src/include" -I"$d" -I"$d/core" \
    "$d/worker_amqp.c" "$d/worker_amqp_msg.c" "$d/worker_amqp_sasl.c" "$d/worker_amqp_scan.c" \
    "$d/worker_amqp_txn.c" "$d/worker_amqp_guard.c" \
    "$d/core/msgproto.c" "$d/core/msgproto-msg.c" "$d/core/msgproto-wire.c" \
    "$src/common/log.c" "$src/common/u64map.c" "$src/common/config.c" \
    "$src/tests/amqp/fuzz_amqp.c" $proton_libs $inih_libs -o "$work/fuzz" 2>"$work/cc.log"; then
  if grep -q -i "fuzzer" "$work/cc.log"; then
    echo "skip: this clang cannot link libFuzzer"; cat "$work/cc.log"; exit 77
  fi
  cat "$work/cc.log"; exit 1
fi
/usr/bin/python3 "$src/tests/amqp/fuzz_seeds.py" "$work/corpus" || exit 1
# SASL PLAIN init by hand (the in-memory seed server has no PLAIN)
printf '\x05AMQP\x03\x01\x00\x00\x00\x00\x00\x22\x02\x01\x00\x00\x00\x53\x41\xc0\x15\x02\xa3\x05PLAIN\xa0\x0a\x00alice\x00pw\x00' \
  >"$work/corpus/sasl-plain"
# Proton 0.37 leaks the mechanism name of a repeated sasl-init (6 bytes for "PLAIN",
# allocated and lost inside pn_transport_process; found by this fuzzer). Leaks whose
# stack is in Proton are not reported: with the fast unwinder (the slow one runs 25x
# slower) Proton's frames carry no caller, so the rule is by module: Proton objects
# (ours included) are not leak-checked here; our own allocations still are.
printf 'leak:libqpid-proton.so\n' >"$work/lsan.supp"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$work/lsan.supp
timeout $((secs + 60)) "$work/fuzz" -max_total_time="$secs" -max_len=32768 -timeout=10 \
  -rss_limit_mb=1024 -artifact_prefix="$work/" "$work/corpus" >"$work/run.log" 2>&1
rc=$?
grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|Done [0-9]+ runs" "$work/run.log" | tail -2
if [ $rc -ne 0 ]; then
  tail -60 "$work/run.log"
  for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
    [ -e "$a" ] && { echo "input that failed ($a):"; od -c "$a" | head -20; }
  done
  exit 1
fi
echo "libFuzzer: no crash in ${secs}s"
exit 0
