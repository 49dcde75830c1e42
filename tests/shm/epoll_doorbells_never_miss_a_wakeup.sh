#!/bin/sh
# shm: epoll + doorbell FIFOs: a core and 2 workers, randomized windows, no lost wake-up.
# Runs the multi-process driver; exit 0 pass, 1 fail, 77 skip.
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm on this host"; exit 77; }
exec "${HAMQ_BUILDDIR:-.}/tests/shm/ring_mp" bell
