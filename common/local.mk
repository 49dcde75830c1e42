# common/: what every module and process shares — logging and configuration.
noinst_LIBRARIES += common/libhamqcommon.a
common_libhamqcommon_a_SOURCES = common/log.c common/config.c \
	include/hamq/log.h include/hamq/config.h
common_libhamqcommon_a_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(INIH_CFLAGS)
HAMQ_COMMON_LIBS = common/libhamqcommon.a $(INIH_LIBS) $(SYSTEMD_LIBS)

check_PROGRAMS += tests/common/test_config tests/common/test_log
TESTS += tests/common/test_config tests/common/test_log
tests_common_test_config_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_common_test_config_LDADD = $(HAMQ_COMMON_LIBS) $(CMOCKA_LIBS)
tests_common_test_log_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_common_test_log_LDADD = $(HAMQ_COMMON_LIBS) $(CMOCKA_LIBS)
