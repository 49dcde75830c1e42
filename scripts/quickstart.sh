#!/bin/bash
# The project's main job for a new user: install what is missing, build, and
# run it. Today that is the shared-memory ring benchmark (our fast path, side by
# side with a socketpair and a pipe); once HA lands it starts a live/backup pair
# on localhost.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bash scripts/deps.sh
bash scripts/build.sh "$src/_build/normal"
b="$src/_build/normal"
if [ -x "$b/tests/bench/ring_bench" ]; then
  echo "== ring benchmark (two processes pinned to CPU0/CPU1)"
  "$b/tests/bench/ring_bench" "${@:---quick}"
else
  echo "quickstart: the ring benchmark is not built yet" >&2; exit 1
fi
