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

TESTS += tests/shm/test_ring tests/shm/test_segment
