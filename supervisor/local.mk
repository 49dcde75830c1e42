# supervisor/: hamq-supervisor building blocks (libhamqsup.a) — heartbeats
# (ZeroMQ + CURVE), virtual IP (libnl + gratuitous ARP), link watch, child
# supervision (pidfd), control socket protocol. See supervisor/README.md.
noinst_LIBRARIES += supervisor/libhamqsup.a
supervisor_libhamqsup_a_SOURCES = \
	supervisor/sup_hb.c supervisor/sup_hb.h supervisor/sup_keys.c \
	supervisor/sup_event.c supervisor/sup_event.h \
	supervisor/sup_vip.c supervisor/sup_vip.h \
	supervisor/sup_link.c supervisor/sup_link.h \
	supervisor/sup_child.c supervisor/sup_child.h \
	supervisor/sup_ctl_proto.c supervisor/sup_ctl_proto.h \
	include/hamq/exitcodes.h
supervisor_libhamqsup_a_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
supervisor_libhamqsup_a_CFLAGS = $(AM_CFLAGS) $(ZMQ_CFLAGS) $(NL_CFLAGS)
HAMQ_SUP_LIBS = supervisor/libhamqsup.a $(HAMQ_COMMON_LIBS) $(ZMQ_LIBS) $(NL_LIBS)
EXTRA_DIST += supervisor/README.md

# Unit tests (cmocka, TAP), one module each.
HAMQ_SUP_TEST_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
HAMQ_SUP_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(ZMQ_CFLAGS) $(NL_CFLAGS)
check_PROGRAMS += tests/ha/test_sup_hb tests/ha/test_sup_child tests/ha/test_sup_ctl
TESTS += tests/ha/test_sup_hb tests/ha/test_sup_child tests/ha/test_sup_ctl
tests_ha_test_sup_hb_CPPFLAGS = $(HAMQ_SUP_TEST_CPPFLAGS)
tests_ha_test_sup_hb_CFLAGS = $(HAMQ_SUP_TEST_CFLAGS)
tests_ha_test_sup_hb_LDADD = $(HAMQ_SUP_LIBS) $(CMOCKA_LIBS)
tests_ha_test_sup_child_CPPFLAGS = $(HAMQ_SUP_TEST_CPPFLAGS)
tests_ha_test_sup_child_CFLAGS = $(HAMQ_SUP_TEST_CFLAGS)
tests_ha_test_sup_child_LDADD = $(HAMQ_SUP_LIBS) $(CMOCKA_LIBS)
tests_ha_test_sup_ctl_CPPFLAGS = $(HAMQ_SUP_TEST_CPPFLAGS)
tests_ha_test_sup_ctl_CFLAGS = $(HAMQ_SUP_TEST_CFLAGS)
tests_ha_test_sup_ctl_LDADD = $(HAMQ_SUP_LIBS) $(CMOCKA_LIBS)


# hatool: drives the modules from the shell tests (heartbeat node, VIP, link watch).
check_PROGRAMS += tests/ha/hatool
tests_ha_hatool_CPPFLAGS = $(HAMQ_SUP_TEST_CPPFLAGS)
tests_ha_hatool_CFLAGS = $(AM_CFLAGS) $(ZMQ_CFLAGS) $(NL_CFLAGS)
tests_ha_hatool_LDADD = $(HAMQ_SUP_LIBS)
TESTS += tests/ha/hb_two_processes.sh tests/ha/hb_partition_netns.sh tests/ha/vip_netns.sh \
	tests/ha/link_watch_netns.sh
EXTRA_DIST += tests/ha/hb_two_processes.sh tests/ha/hb_partition_netns.sh tests/ha/vip_netns.sh \
	tests/ha/link_watch_netns.sh \
	tests/ha/lib.sh

# bench_sup: prints timings (handover round trip, peer-lost detection, frozen
# kill, child exit); built by `make`, run by hand, never a test.
noinst_PROGRAMS += tests/ha/bench_sup
tests_ha_bench_sup_CPPFLAGS = $(HAMQ_SUP_TEST_CPPFLAGS)
tests_ha_bench_sup_CFLAGS = $(AM_CFLAGS) $(ZMQ_CFLAGS) $(NL_CFLAGS)
tests_ha_bench_sup_LDADD = $(HAMQ_SUP_LIBS)

# The store's HA module (daemons/store/store_ha.c) and the writer under a raised epoch.
check_PROGRAMS += tests/ha/test_store_ha
TESTS += tests/ha/test_store_ha
tests_ha_test_store_ha_SOURCES = tests/ha/test_store_ha.c $(STORE_TESTLIB)
tests_ha_test_store_ha_CFLAGS = $(STORE_TEST_CFLAGS) -I$(top_srcdir)/tests/store
tests_ha_test_store_ha_LDADD = $(HAMQ_STORE_HA_LIBS) $(CMOCKA_LIBS)

# The daemons: hamq-supervisor (node state machine) and hamq-supervisorctl.
sbin_PROGRAMS += supervisor/hamq-supervisor
bin_PROGRAMS += supervisor/hamq-supervisorctl
supervisor_hamq_supervisor_SOURCES = supervisor/main.c supervisor/sup_node.c \
	supervisor/sup_node.h supervisor/sup_systemd.c supervisor/sup_systemd.h
supervisor_hamq_supervisor_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir) \
	-I$(top_srcdir)/daemons/store
supervisor_hamq_supervisor_CFLAGS = $(AM_CFLAGS) $(ZMQ_CFLAGS) $(NL_CFLAGS) $(SYSTEMD_CFLAGS)
supervisor_hamq_supervisor_LDADD = $(HAMQ_STORE_HA_LIBS) $(HAMQ_SUP_LIBS) $(HAMQ_SHM_LIBS) $(SYSTEMD_LIBS) \
	-lpthread
supervisor_hamq_supervisorctl_SOURCES = supervisor/ctl.c
supervisor_hamq_supervisorctl_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
supervisor_hamq_supervisorctl_CFLAGS = $(AM_CFLAGS) $(ZMQ_CFLAGS)
supervisor_hamq_supervisorctl_LDADD = $(HAMQ_SUP_LIBS)

# HA scenarios with real processes (hamq-supervisor pairs on one shared store,
# real STOMP clients); TAP through PY_LOG_DRIVER (daemons/local.mk).
HA_SCENARIOS = tests/ha/t10_failover_on_kill9.py tests/ha/t11_manual_failover.py \
	tests/ha/t12_locks_decide.py tests/ha/t13_fencing_and_errors.py \
	tests/ha/t14_kill9_cycles_under_load.py tests/ha/t15_curve_keys.py \
	tests/ha/t16_backup_priority.py tests/ha/t17_warm_standby.py \
	tests/ha/t18_planned_under_load.py
TESTS += $(HA_SCENARIOS) tests/ha/t20_vip_failover_netns.sh
EXTRA_DIST += $(HA_SCENARIOS) tests/ha/hatest.py tests/ha/t20_vip_failover_netns.sh \
	tests/ha/bench_failover.py

# nolocks.so: LD_PRELOAD shim that makes OFD locks no-ops (a file system that
# ignores locks), for the lock self-test refusal in t13.
check_PROGRAMS += tests/ha/nolocks.so
tests_ha_nolocks_so_SOURCES = tests/ha/nolocks.c
tests_ha_nolocks_so_CFLAGS = $(AM_CFLAGS) -fPIC
tests_ha_nolocks_so_LDFLAGS = -shared
tests_ha_nolocks_so_LDADD = -ldl

# t21: the two-host test of the issue: node1, node2 and a client as network
# namespaces on a bridge, 20 kill -9 cycles under a durable load through the VIP
# (root only, skips otherwise). bench_activemq_failover.sh: ActiveMQ Classic's
# shared-file-system master/slave failover figures, run by hand, never a test.
TESTS += tests/ha/t21_kill9_cycles_netns.py
EXTRA_DIST += tests/ha/t21_kill9_cycles_netns.py tests/ha/bench_activemq_failover.sh
