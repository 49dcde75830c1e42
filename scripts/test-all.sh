#!/bin/bash
# The whole hamq test suite, from a fresh machine: install what is missing,
# build twice (normal, and AddressSanitizer + UndefinedBehaviorSanitizer), run
# every test in both builds plus static analysis, print how long each part
# took, and end with one line "N passed, N failed[, N skipped]".
# Exit status: 0 only when nothing failed. .ci/run runs exactly this.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${HAMQ_TEST_BUILDDIR:-$src/_build}
cd "$src"

pass=0 fail=0 skip=0
declare -a timings
t_start=$(date +%s)
stamp() { date +%s; }
part() { # name start
  local d=$(( $(stamp) - $2 ))
  timings+=("$(printf '%-34s %4ds' "$1" "$d")")
  echo "=== $1: ${d}s"
}

count_suite() { # builddir label
  local log=$1/test-suite.log p f s e
  if [ ! -f "$log" ]; then
    echo "!!! $2: no test-suite.log (the build or the test harness failed)"; fail=$((fail + 1)); return
  fi
  p=$(sed -n 's/^# PASS: *//p' "$log" | head -1); f=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
  s=$(sed -n 's/^# SKIP: *//p' "$log" | head -1); e=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
  x=$(sed -n 's/^# XPASS: *//p' "$log" | head -1)
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${e:-0} + ${x:-0})); skip=$((skip + ${s:-0}))
  echo "--- $2: ${p:-0} passed, $(( ${f:-0} + ${e:-0} + ${x:-0} )) failed, ${s:-0} skipped"
  if [ "$(( ${f:-0} + ${e:-0} + ${x:-0} ))" -gt 0 ]; then
    grep -E '^(FAIL|ERROR|XPASS):' "$1"/tests/*/*.log "$1"/tests/*.log 2>/dev/null | head -40
    for l in $(grep -lE '^(FAIL|ERROR)' $(find "$1/tests" -name '*.trs') 2>/dev/null | sed 's/\.trs$/.log/'); do
      echo "----- $l (last 40 lines)"; tail -40 "$l"
    done
  fi
  grep -h '^SKIP:' $(find "$1/tests" -name '*.log' 2>/dev/null) 2>/dev/null | sed 's/^/    /' | head -20
}

t=$(stamp)
bash scripts/deps.sh || { echo "deps: failed"; echo "0 passed, 1 failed"; exit 1; }
part "install missing packages" "$t"

run_build() { # label dir configure-flags...
  local label=$1 dir=$2; shift 2
  local t=$(stamp)
  if ! bash scripts/build.sh "$dir" "$@"; then
    echo "!!! $label: build failed"; fail=$((fail + 1)); part "$label build" "$t"; return 1
  fi
  part "$label build" "$t"
  t=$(stamp)
  rm -f "$dir/test-suite.log"
  # The RPM build test (make dist + rpmbuild) runs once, in the normal build.
  if [ "$label" = normal ]; then export HAMQ_TEST_RPM=1; else unset HAMQ_TEST_RPM; fi
  make -C "$dir" -j2 check >"$dir/check.out" 2>&1
  grep -E '^(PASS|FAIL|ERROR|SKIP|XPASS|XFAIL):' "$dir/check.out" | sed 's/^/  /'
  count_suite "$dir" "$label"
  part "$label tests" "$t"
}

run_build "normal" "$out/normal"
t=$(stamp)
if make -C "$out/normal" lint; then pass=$((pass + 1)); echo "PASS: lint"
else fail=$((fail + 1)); echo "FAIL: lint"; fi
part "lint (cppcheck, clang-tidy)" "$t"

run_build "asan+ubsan" "$out/asan" --enable-sanitizers

echo
echo "=== timings"
printf '  %s\n' "${timings[@]}"
echo "  total                              $(( $(stamp) - t_start ))s"
if [ "$skip" -gt 0 ]; then
  echo "$pass passed, $fail failed, $skip skipped"
else
  echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
