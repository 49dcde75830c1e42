# see the top-level Makefile.am
# AMQP 1.0 in hamq-worker: Qpid Proton C's connection driver in the worker's
# own event loop (daemons/worker_amqp*.c).
daemons_hamq_worker_SOURCES += daemons/worker_amqp.c daemons/worker_amqp_msg.c \
	daemons/worker_amqp_sasl.c daemons/worker_amqp_scan.c daemons/worker_amqp_txn.c \
	daemons/worker_amqp_guard.c \
	daemons/worker_amqp.h daemons/worker_amqp_conn.h
daemons_hamq_worker_CPPFLAGS += $(PROTON_CFLAGS)
daemons_hamq_worker_LDADD += $(PROTON_LIBS)

# Integration scenarios with real broker processes and the real Python Proton client.
TESTS += tests/amqp/t10_amqp_messaging.py tests/amqp/t11_amqp_robustness.py tests/amqp/t12_rhea.py \
	tests/amqp/t13_amqp_message_fields.py tests/amqp/t14_amqp_transactions.py \
	tests/amqp/t15_amqp_drain.py tests/amqp/t16_amqp_address_flow.py
EXTRA_DIST += tests/amqp/t12_rhea.py tests/amqp/rhea_client.js tests/amqp/t13_amqp_message_fields.py \
	tests/amqp/t14_amqp_transactions.py tests/amqp/t15_amqp_drain.py \
	tests/amqp/t16_amqp_address_flow.py
EXTRA_DIST += tests/amqp/amqptest.py tests/amqp/t10_amqp_messaging.py \
	tests/amqp/t11_amqp_robustness.py daemons/README.md

# Unit tests of the in-place AMQP value reader.
check_PROGRAMS += tests/amqp/test_amqp_scan
TESTS += tests/amqp/test_amqp_scan
tests_amqp_test_amqp_scan_SOURCES = tests/amqp/test_amqp_scan.c daemons/worker_amqp_scan.c
tests_amqp_test_amqp_scan_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemons $(PROTON_CFLAGS)
tests_amqp_test_amqp_scan_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_amqp_test_amqp_scan_LDADD = $(CMOCKA_LIBS)

# Unit tests of the framing guard (the rules Proton's engine does not check).
check_PROGRAMS += tests/amqp/test_amqp_guard
TESTS += tests/amqp/test_amqp_guard
tests_amqp_test_amqp_guard_SOURCES = tests/amqp/test_amqp_guard.c daemons/worker_amqp_guard.c
tests_amqp_test_amqp_guard_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemons $(PROTON_CFLAGS)
tests_amqp_test_amqp_guard_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_amqp_test_amqp_guard_LDADD = $(HAMQ_COMMON_LIBS) $(CMOCKA_LIBS)

# Every acceptance point of the AMQP issue with real clients (a known gap reports as XFAIL).
TESTS += tests/amqp/t17_amqp_acceptance.py
EXTRA_DIST += tests/amqp/t17_amqp_acceptance.py

# libFuzzer (clang, ASan+UBSan, 20 s) over the worker's AMQP input path, seeded with
# real Python Proton client streams; skips without clang.
TESTS += tests/amqp/fuzz_amqp.sh
EXTRA_DIST += tests/amqp/fuzz_amqp.sh tests/amqp/fuzz_amqp.c tests/amqp/fuzz_seeds.py \
	tests/amqp/bench_amqp.sh
# The engine's DRAIN entry point (core-dispatch.c, called by core-records.c).
EXTRA_DIST += daemons/core/core-drain.h
