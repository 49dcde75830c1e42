# daemons/core: the broker core engine (libhamqcore.a) and the worker⇄core
# record codec (libhamqmsg.a, also linked by hamq-worker without the engine).
noinst_LIBRARIES += daemons/core/libhamqmsg.a daemons/core/libhamqcore.a
daemons_core_libhamqmsg_a_SOURCES = daemons/core/msgproto.c daemons/core/msgproto-msg.c \
	daemons/core/msgproto-wire.c daemons/core/msgproto-wire.h include/hamq/msgproto.h
daemons_core_libhamqcore_a_SOURCES = daemons/core/core.h daemons/core/core-internal.h \
	daemons/core/core-engine.c daemons/core/core-route.c daemons/core/core-dispatch.c \
	daemons/core/core-tx.c daemons/core/core-records.c daemons/core/core-filter.c \
	daemons/core/core-filter.h daemons/core/core-util.c daemons/core/core-util.h
HAMQ_MSG_LIBS = daemons/core/libhamqmsg.a
HAMQ_CORE_LIBS = daemons/core/libhamqcore.a daemons/core/libhamqmsg.a $(HAMQ_COMMON_LIBS) -lm

EXTRA_DIST += daemons/core/README.md

CORE_TESTS = tests/core/test_msgproto tests/core/test_msgproto_fuzz tests/core/test_core_filter \
	tests/core/test_core_engine tests/core/test_core_model \
	tests/core/test_core_records_fuzz tests/core/test_core_drain
check_PROGRAMS += $(CORE_TESTS)
TESTS += $(CORE_TESTS)
tests_core_test_msgproto_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_core_test_msgproto_LDADD = $(HAMQ_MSG_LIBS) $(CMOCKA_LIBS)
tests_core_test_msgproto_fuzz_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_core_test_msgproto_fuzz_LDADD = $(HAMQ_MSG_LIBS) $(CMOCKA_LIBS)
tests_core_test_core_filter_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/core
tests_core_test_core_filter_LDADD = $(HAMQ_CORE_LIBS) $(CMOCKA_LIBS)
tests_core_test_core_engine_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/core
tests_core_test_core_engine_SOURCES = tests/core/test_core_engine.c tests/core/core_harness.c \
	tests/core/core_harness.h
tests_core_test_core_engine_LDADD = $(HAMQ_CORE_LIBS) $(CMOCKA_LIBS)
tests_core_test_core_model_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/core
tests_core_test_core_model_SOURCES = tests/core/test_core_model.c tests/core/core_harness.c \
	tests/core/core_harness.h
tests_core_test_core_model_LDADD = $(HAMQ_CORE_LIBS) $(CMOCKA_LIBS)
tests_core_test_core_records_fuzz_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/core
tests_core_test_core_records_fuzz_SOURCES = tests/core/test_core_records_fuzz.c \
	tests/core/core_harness.c tests/core/core_harness.h
tests_core_test_core_records_fuzz_LDADD = $(HAMQ_CORE_LIBS) $(CMOCKA_LIBS)
tests_core_test_core_drain_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/core
tests_core_test_core_drain_SOURCES = tests/core/test_core_drain.c tests/core/core_harness.c \
	tests/core/core_harness.h
tests_core_test_core_drain_LDADD = $(HAMQ_CORE_LIBS) $(CMOCKA_LIBS)

# Engine CPU cost per message (figures, not a test): tests/core/bench_core [messages]
noinst_PROGRAMS += tests/core/bench_core
tests_core_bench_core_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemons/core
tests_core_bench_core_LDADD = $(HAMQ_CORE_LIBS)
