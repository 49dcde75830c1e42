#!/bin/sh
# shm: kill -9 of the producer mid-stream: no partial record, the consumer sees PEER_GONE.
# Runs the multi-process driver; exit 0 pass, 1 fail, 77 skip.
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm on this host"; exit 77; }
exec "${HAMQ_BUILDDIR:-.}/tests/shm/ring_mp" kill
