# common/: what every module and process shares — logging and configuration.
noinst_LIBRARIES += common/libhamqcommon.a
common_libhamqcommon_a_SOURCES = common/log.c common/config.c common/evloop.c common/u64map.c common/daemon.c \
	include/hamq/log.h include/hamq/config.h include/hamq/evloop.h include/hamq/u64map.h include/hamq/daemon.h
common_libhamqcommon_a_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(INIH_CFLAGS)
HAMQ_COMMON_LIBS = common/libhamqcommon.a $(INIH_LIBS) $(SYSTEMD_LIBS)

check_PROGRAMS += tests/common/test_config tests/common/test_log tests/common/test_evloop tests/common/test_u64map
TESTS += tests/common/test_config tests/common/test_log tests/common/test_evloop tests/common/test_u64map
tests_common_test_config_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_common_test_config_LDADD = $(HAMQ_COMMON_LIBS) $(CMOCKA_LIBS)
tests_common_test_log_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_common_test_log_LDADD = $(HAMQ_COMMON_LIBS) $(CMOCKA_LIBS)
tests_common_test_evloop_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_common_test_evloop_LDADD = $(HAMQ_COMMON_LIBS) $(CMOCKA_LIBS)
tests_common_test_u64map_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_common_test_u64map_LDADD = $(HAMQ_COMMON_LIBS) $(CMOCKA_LIBS)
