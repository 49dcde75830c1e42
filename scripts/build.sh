#!/bin/bash
# Builds hamq out of tree: scripts/build.sh DIR [configure flags...]
# (autoreconf runs once in the source tree; configure and make in DIR).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$1; shift
if [ ! -x "$src/configure" ] || [ "$src/configure.ac" -nt "$src/configure" ] ||
   [ -n "$(find "$src" -name local.mk -newer "$src/configure" -print -quit)" ] ||
   [ "$src/Makefile.am" -nt "$src/configure" ]; then
  (cd "$src" && autoreconf -fi >/dev/null)
fi
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ] || [ "$src/configure" -nt Makefile ]; then
  "$src/configure" -q "$@"
fi
make -j"$(nproc)" >/dev/null
echo "build: $dir ready"
