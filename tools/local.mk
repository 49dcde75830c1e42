# tools: see top-level Makefile.am
# hamq — the client command line (Artemis CLI flags), an AMQP 1.0 client on
# Qpid Proton C's connection driver (tools/hamq*.c, tools/README.md).
bin_PROGRAMS += tools/hamq
tools_hamq_SOURCES = tools/hamq_main.c tools/hamq_conn.c tools/hamq_msg.c tools/hamq_stat.c \
	tools/hamq_perf.c tools/hamq_perf_report.c tools/hamq_perf.h tools/hamq.h
tools_hamq_CPPFLAGS = $(AM_CPPFLAGS) $(PROTON_CFLAGS)
tools_hamq_LDADD = $(PROTON_LIBS) -lpthread

# The CLI against a real broker (python drives it and checks counts and output).
TESTS += tests/tools/t20_hamq_cli.py tests/tools/t21_hamq_stat_perf.py
EXTRA_DIST += tests/tools/t20_hamq_cli.py tests/tools/t21_hamq_stat_perf.py tools/README.md
