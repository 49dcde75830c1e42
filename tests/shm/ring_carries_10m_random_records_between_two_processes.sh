#!/bin/sh
# shm: two processes, 10M records of 1 B-4 KiB through a 64 KiB ring (HAMQ_RING_RECORDS lowers it).
# Runs the multi-process driver; exit 0 pass, 1 fail, 77 skip.
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm on this host"; exit 77; }
exec "${HAMQ_BUILDDIR:-.}/tests/shm/ring_mp" stream
