# daemons/worker: the protocol worker. So far its transport-free STOMP engine
# (frame codec + session state machine), a libc-only library linked by the
# worker daemon and by its unit tests alike.
noinst_LIBRARIES += daemons/worker/libhamqstomp.a
daemons_worker_libhamqstomp_a_SOURCES = \
	daemons/worker/stomp_codec.c daemons/worker/stomp_codec.h \
	daemons/worker/stomp_session.c daemons/worker/stomp_session.h
HAMQ_STOMP_LIBS = daemons/worker/libhamqstomp.a
EXTRA_DIST += daemons/worker/README.md tests/worker/fuzz_stomp.c tests/worker/fuzz_stomp.sh

STOMP_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/worker
STOMP_TESTS = tests/worker/test_stomp_codec tests/worker/test_stomp_session \
	tests/worker/test_stomp_fuzz
check_PROGRAMS += $(STOMP_TESTS)
TESTS += $(STOMP_TESTS)
tests_worker_test_stomp_codec_CFLAGS = $(STOMP_TEST_CFLAGS)
tests_worker_test_stomp_codec_LDADD = $(HAMQ_STOMP_LIBS) $(CMOCKA_LIBS)
tests_worker_test_stomp_session_CFLAGS = $(STOMP_TEST_CFLAGS)
tests_worker_test_stomp_session_LDADD = $(HAMQ_STOMP_LIBS) $(CMOCKA_LIBS)
tests_worker_test_stomp_fuzz_CFLAGS = $(STOMP_TEST_CFLAGS)
tests_worker_test_stomp_fuzz_LDADD = $(HAMQ_STOMP_LIBS) $(CMOCKA_LIBS)
# libFuzzer (clang) on parser + session under ASan/UBSan, 20 s; skips without clang.
TESTS += tests/worker/fuzz_stomp.sh

# Engine-only benchmark (prints figures, not a test): tests/worker/bench_stomp [messages]
noinst_PROGRAMS += tests/worker/bench_stomp
tests_worker_bench_stomp_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemons/worker
tests_worker_bench_stomp_LDADD = $(HAMQ_STOMP_LIBS)
