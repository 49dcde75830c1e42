# tools/bench.mk: the STOMP load generator of the broker benchmark (issue 5).
# hamq-stomp-load is a client: it links only the worker's pure STOMP codec
# (libhamqstomp.a) to parse the broker's frames. scripts/bench-brokers.sh runs
# it against hamq, ActiveMQ Classic and RabbitMQ; docs/BENCHMARKS.md has figures.
noinst_PROGRAMS += tools/hamq-stomp-load
tools_hamq_stomp_load_SOURCES = tools/stomp_load.c tools/stomp_load_conn.c \
	tools/stomp_load_stats.c tools/stomp_load.h
tools_hamq_stomp_load_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemons/worker
tools_hamq_stomp_load_LDADD = $(HAMQ_STOMP_LIBS)

# A short smoke run against a real broker, and producers held back by a slow
# core never reset (no speed asserted in either).
TESTS += tests/bench/stomp_load_smoke.sh tests/bench/stomp_load_backpressure.sh
EXTRA_DIST += tests/bench/broker_lib.sh tests/bench/stomp_load_smoke.sh tests/bench/stomp_load_backpressure.sh scripts/bench-brokers.sh docs/BENCHMARKS.md
