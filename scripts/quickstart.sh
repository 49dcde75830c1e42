#!/bin/bash
# The project's main job for a new user: install what is missing, build, and
# run a live/backup pair of hamq on this host on one shared store (the
# quickstart of scripts/ha-pair.sh: 100 durable messages with `hamq producer`,
# kill -9 of the live, the backup taking over, the messages consumed from it,
# the primary back as the warm backup, failback). The pair is left running;
# `scripts/ha-pair.sh status` and `scripts/ha-pair.sh stop`.
#   scripts/quickstart.sh --ring-bench   the shared-memory ring benchmark instead
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bash scripts/deps.sh
bash scripts/build.sh "$src/_build/normal"
b="$src/_build/normal"
if [ "${1:-}" = "--ring-bench" ]; then
  echo "== ring benchmark (two processes pinned to CPU0/CPU1)"
  exec "$b/tests/bench/ring_bench" --quick
fi
exec bash scripts/ha-pair.sh "$b"
