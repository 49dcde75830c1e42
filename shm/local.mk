# shm/: the shared-memory fast path (segment, SPSC rings, parking, doorbells,
# peer liveness). Self-contained: libc and its own headers only (no common/).
noinst_LIBRARIES += shm/libhamqshm.a
shm_libhamqshm_a_SOURCES = shm/ring.c shm/segment.c include/hamq/ring.h include/hamq/shm.h
HAMQ_SHM_LIBS = shm/libhamqshm.a

# Single-process behaviours (cmocka, TAP).
check_PROGRAMS += tests/shm/test_ring tests/shm/test_segment
tests_shm_test_ring_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_shm_test_ring_LDADD = $(HAMQ_SHM_LIBS) $(CMOCKA_LIBS)
tests_shm_test_segment_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_shm_test_segment_LDADD = $(HAMQ_SHM_LIBS) $(CMOCKA_LIBS)

# Multi-process scenarios: one C driver, one .sh wrapper per scenario.
check_PROGRAMS += tests/shm/ring_mp
tests_shm_ring_mp_LDADD = $(HAMQ_SHM_LIBS)
SHM_MP_TESTS = \
	tests/shm/ring_carries_10m_random_records_between_two_processes.sh \
	tests/shm/parked_reader_never_misses_a_wakeup.sh \
	tests/shm/killed_producer_leaves_no_partial_record_and_reads_as_peer_gone.sh \
	tests/shm/epoll_doorbells_never_miss_a_wakeup.sh \
	tests/shm/ring_survives_randomized_stress_in_both_directions.sh
TESTS += tests/shm/test_ring tests/shm/test_segment $(SHM_MP_TESTS)
EXTRA_DIST += $(SHM_MP_TESTS) shm/README.md

# Benchmark (prints figures; not a test).
noinst_PROGRAMS += tests/bench/ring_bench
tests_bench_ring_bench_LDADD = $(HAMQ_SHM_LIBS)
