#!/bin/sh
# shm: ping-pong where both readers park on every record: 1M round trips, no lost wake-up (HAMQ_PARK_ROUNDS).
# Runs the multi-process driver; exit 0 pass, 1 fail, 77 skip.
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm on this host"; exit 77; }
exec "${HAMQ_BUILDDIR:-.}/tests/shm/ring_mp" park
