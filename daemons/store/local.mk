# daemons/store: the durable journal (libhamqstore.a), its tests and benchmark.
noinst_LIBRARIES += daemons/store/libhamqstore.a
daemons_store_libhamqstore_a_SOURCES = \
	daemons/store/crc32c.c daemons/store/crc32c.h \
	daemons/store/store.c daemons/store/store.h daemons/store/store_int.h \
	daemons/store/store_seg.c daemons/store/store_scan.c daemons/store/store_writer.c \
	daemons/store/store_index.c daemons/store/store_index.h daemons/store/store_dup.c \
	daemons/store/store_large.c \
	daemons/store/store_bindings.c daemons/store/store_ckpt.c daemons/store/store_follow.c \
	include/hamq/journal_format.h
HAMQ_STORE_LIBS = daemons/store/libhamqstore.a $(HAMQ_COMMON_LIBS) $(AIO_LIBS)
STORE_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/store
STORE_TEST_LIBS = $(HAMQ_STORE_LIBS) $(CMOCKA_LIBS)
STORE_TESTLIB = tests/store/store_testlib.c tests/store/store_testlib.h

STORE_UNIT_TESTS = tests/store/test_crc32c tests/store/test_store_basic \
	tests/store/test_store_recovery tests/store/test_store_crashloop \
	tests/store/test_store_checkpoint tests/store/test_store_follow \
	tests/store/test_store_crashpoints tests/store/test_store_dupids \
	tests/store/test_store_large tests/store/test_store_adopt
check_PROGRAMS += $(STORE_UNIT_TESTS)
TESTS += $(STORE_UNIT_TESTS)
tests_store_test_store_adopt_SOURCES = tests/store/test_store_adopt.c $(STORE_TESTLIB)
tests_store_test_store_adopt_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_adopt_LDADD = $(STORE_TEST_LIBS)
tests_store_test_crc32c_SOURCES = tests/store/test_crc32c.c $(STORE_TESTLIB)
tests_store_test_crc32c_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_crc32c_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_basic_SOURCES = tests/store/test_store_basic.c $(STORE_TESTLIB)
tests_store_test_store_basic_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_basic_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_recovery_SOURCES = tests/store/test_store_recovery.c $(STORE_TESTLIB)
tests_store_test_store_recovery_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_recovery_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_crashloop_SOURCES = tests/store/test_store_crashloop.c $(STORE_TESTLIB)
tests_store_test_store_crashloop_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_crashloop_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_checkpoint_SOURCES = tests/store/test_store_checkpoint.c $(STORE_TESTLIB)
tests_store_test_store_checkpoint_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_checkpoint_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_follow_SOURCES = tests/store/test_store_follow.c $(STORE_TESTLIB)
tests_store_test_store_follow_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_follow_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_crashpoints_SOURCES = tests/store/test_store_crashpoints.c $(STORE_TESTLIB)
tests_store_test_store_crashpoints_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_crashpoints_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_dupids_SOURCES = tests/store/test_store_dupids.c $(STORE_TESTLIB)
tests_store_test_store_dupids_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_dupids_LDADD = $(STORE_TEST_LIBS)
tests_store_test_store_large_SOURCES = tests/store/test_store_large.c $(STORE_TESTLIB)
tests_store_test_store_large_CFLAGS = $(STORE_TEST_CFLAGS)
tests_store_test_store_large_LDADD = $(STORE_TEST_LIBS)

noinst_PROGRAMS += tests/bench/journal_bench
tests_bench_journal_bench_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemons/store
tests_bench_journal_bench_LDADD = $(HAMQ_STORE_LIBS) -lm

EXTRA_DIST += daemons/store/README.md
