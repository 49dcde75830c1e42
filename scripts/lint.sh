#!/bin/bash
# Static analysis over every C file of the project: cppcheck (required) and
# clang-tidy (when installed, with the checks in .clang-tidy). Exit 1 on any
# finding. Called by `make lint`; the test command runs it as one test.
set -u
top=${1:-.}
cd "$top" || exit 2
mapfile -t files < <(find common shm daemons supervisor tools -name '*.c' 2>/dev/null | sort)
[ ${#files[@]} -gt 0 ] || { echo "lint: no sources"; exit 0; }
rc=0
cppcheck=${CPPCHECK:-$(command -v cppcheck)}
if [ -z "$cppcheck" ]; then
  echo "lint: cppcheck not installed (Debian: cppcheck, Fedora: cppcheck)"; exit 1
fi
"$cppcheck" --quiet --error-exitcode=1 --inline-suppr --std=c11 \
  --enable=warning,portability,performance -D_GNU_SOURCE -D__linux__ -I. -Iinclude -Idaemons/core -Idaemons/store -Idaemons/worker -Isupervisor \
  --suppress=missingIncludeSystem --suppress=unknownMacro "${files[@]}" || rc=1
tidy=${CLANG_TIDY:-$(command -v clang-tidy || true)}
if [ -n "$tidy" ]; then
  # One clang-tidy per file, as many at once as there are CPUs.
  export tidy EXTRA_CFLAGS
  out=$(printf '%s\0' "${files[@]}" | xargs -0 -P "$(nproc)" -n 4 sh -c \
    '"$tidy" --quiet "$@" -- -std=c11 -D_GNU_SOURCE -I. -Iinclude -Idaemons/core -Idaemons/store -Idaemons/worker -Isupervisor ${EXTRA_CFLAGS:-} 2>&1' tidy)
  trc=$?
  printf '%s\n' "$out" | grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated|^Suppressed|^Use -header-filter|^$' || true
  [ $trc -eq 0 ] || rc=1
else
  echo "lint: clang-tidy not installed, cppcheck only"
fi
[ $rc -eq 0 ] && echo "lint: clean (${#files[@]} files)"
exit $rc
