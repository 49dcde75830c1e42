#!/bin/bash
# Coverage-guided fuzzing of the STOMP engine with libFuzzer (clang), under
# ASan+UBSan, for a bounded time (HAMQ_STOMP_FUZZ_SECONDS, default 20).
# Skips (77) when clang with libFuzzer is not installed (Debian: clang).
set -u
src=${HAMQ_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
secs=${HAMQ_STOMP_FUZZ_SECONDS:-20}
cc=$(command -v clang || true)
[ -n "$cc" ] || { echo "skip: clang not installed (Debian: clang)"; exit 77; }
work=$(mktemp -d /tmp/hamq-stomp-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
w=$src/daemons/worker
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$w" "$w/stomp_codec.c" "$w/stomp_session.c" \
    "$src/tests/worker/fuzz_stomp.c" -o "$work/fuzz" 2>"$work/cc.log"; then
  if grep -q -i "fuzzer" "$work/cc.log"; then
    echo "skip: this clang cannot link libFuzzer"; cat "$work/cc.log"; exit 77
  fi
  cat "$work/cc.log"; exit 1
fi
mkdir "$work/corpus"
i=0
for f in "SEND\ndestination:/queue/a\nreceipt:r\n\nhello\0" \
         "SUBSCRIBE\nid:1\ndestination:/queue/a\nack:client\n\n\0MESSAGE\n\n\0" \
         "SEND\ncontent-length:3\nx:a\\\\cb\\\\n\n\na\0b\0\n\n" \
         "BEGIN\ntransaction:t\n\n\0ACK\nid:m1\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0" \
         "ACK\nsubscription:1\nmessage-id:m2\n\n\0NACK\nid:m1\n\n\0DISCONNECT\nreceipt:x\n\n\0"; do
  for v in '\x00' '\x05' '\x0a' '\x3e'; do
    printf "$v$f" >"$work/corpus/seed$i"; i=$((i + 1))
  done
done
# frames larger than the parser's first buffer (1 KiB), so it must grow mid-frame
body=$(head -c 1500 /dev/zero | tr '\0' 'b')
printf '\x06SEND\ndestination:/queue/a\nreceipt:r\n\n%s\0' "$body" >"$work/corpus/big1"
printf '\x02SEND\ndestination:/queue/a\ncontent-length:1500\n\n%s\0' "$body" >"$work/corpus/big2"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
timeout $((secs + 60)) "$work/fuzz" -max_total_time="$secs" -max_len=4096 -timeout=10 \
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
