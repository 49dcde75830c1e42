# daemons/: the two broker processes. hamq-journal (the core: engine + store)
# and hamq-worker (client protocols). Their libraries live in the subfolders
# (core/, store/, worker/); the glue and the mains are here.
sbin_PROGRAMS += daemons/hamq-journal daemons/hamq-worker

daemons_hamq_journal_SOURCES = daemons/journal_main.c daemons/journal_link.c \
	daemons/journal_store.c daemons/journal_spawn.c daemons/journal_standby.c daemons/journal.h
daemons_hamq_journal_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemons/core \
	-I$(top_srcdir)/daemons/store
daemons_hamq_journal_LDADD = daemons/core/libhamqcore.a daemons/core/libhamqmsg.a \
	daemons/store/libhamqstore.a shm/libhamqshm.a $(HAMQ_COMMON_LIBS) $(AIO_LIBS)

daemons_hamq_worker_SOURCES = daemons/worker_main.c daemons/worker_link.c \
	daemons/worker_flow.c daemons/worker_stomp.c daemons/worker_net.c daemons/worker.h daemons/worker_net.h
daemons_hamq_worker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemons/worker \
	-I$(top_srcdir)/daemons/core
daemons_hamq_worker_LDADD = daemons/worker/libhamqstomp.a daemons/core/libhamqmsg.a \
	shm/libhamqshm.a $(HAMQ_COMMON_LIBS)

# Integration scenarios with real broker processes and the real python3-stomp client.
TESTS += tests/broker/t01_stomp_messaging.py tests/broker/t02_stomp_robustness.py \
	tests/broker/t03_stomp_mutated_frames.py
TESTS += tests/broker/t04_duplicates.py tests/broker/t05_large_messages.py
TESTS += tests/broker/t06_address_flow.py
PY_LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
EXTRA_DIST += tests/broker/hamqtest.py tests/broker/t01_stomp_messaging.py tests/broker/t02_stomp_robustness.py tests/broker/t03_stomp_mutated_frames.py
EXTRA_DIST += tests/broker/t04_duplicates.py tests/broker/t05_large_messages.py
EXTRA_DIST += tests/broker/t06_address_flow.py

# Per-address flow control of the engine (daemons/core/core-flow.h, in core-route.c).
check_PROGRAMS += tests/core/test_core_flow
TESTS += tests/core/test_core_flow
tests_core_test_core_flow_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/daemons/core
tests_core_test_core_flow_SOURCES = tests/core/test_core_flow.c tests/core/core_harness.c \
	tests/core/core_harness.h
tests_core_test_core_flow_LDADD = $(HAMQ_CORE_LIBS) $(CMOCKA_LIBS)
EXTRA_DIST += daemons/core/core-flow.h
