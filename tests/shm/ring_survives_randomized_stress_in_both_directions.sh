#!/bin/sh
# shm: bounded randomized stress: random sizes, batches, claim sizes, spins and parking, echo both ways.
# Runs the multi-process driver; exit 0 pass, 1 fail, 77 skip.
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm on this host"; exit 77; }
exec "${HAMQ_BUILDDIR:-.}/tests/shm/ring_mp" stress
