# units/: how hamq runs as a system service — systemd units, sysusers.d and
# tmpfiles.d entries, the firewalld service, the documented example
# /etc/hamq/hamq.conf, and the man pages. See units/README.md.
#
# Directories (configure): SYSTEMD_UNITDIR, SYSUSERS_DIR, TMPFILES_DIR come
# from systemd.pc and can be overridden (./configure SYSTEMD_UNITDIR=...).
# The units are generated from their .in at build time (for the tests) and
# again at install time, so `make install prefix=/usr sysconfdir=/etc` writes
# units that name the installed paths.

hamq_unit_templates = units/hamq-journal.service.in units/hamq-supervisor.service.in \
	units/hamq-worker@.service.in
hamq_units_built = units/hamq-journal.service units/hamq-supervisor.service \
	units/hamq-worker@.service
firewalld_servicedir = $(prefix)/lib/firewalld/services
polkit_rulesdir = $(datadir)/polkit-1/rules.d
hamqconfdir = $(sysconfdir)/hamq

# RestartPreventExitStatus= comes from the one list in exitcodes.h.
hamq_units_edit = sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@bindir[@]|$(bindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e "s|@HAMQ_EXIT_NO_RESTART_LIST[@]|`sed -n 's/^.define HAMQ_EXIT_NO_RESTART_LIST \"\(.*\)\"$$/\1/p' $(top_srcdir)/include/hamq/exitcodes.h`|g"

units/hamq-journal.service: $(top_srcdir)/units/hamq-journal.service.in $(top_srcdir)/include/hamq/exitcodes.h Makefile
	$(AM_V_GEN)$(MKDIR_P) units && $(hamq_units_edit) $(top_srcdir)/units/hamq-journal.service.in >$@.tmp && mv $@.tmp $@
units/hamq-supervisor.service: $(top_srcdir)/units/hamq-supervisor.service.in $(top_srcdir)/include/hamq/exitcodes.h Makefile
	$(AM_V_GEN)$(MKDIR_P) units && $(hamq_units_edit) $(top_srcdir)/units/hamq-supervisor.service.in >$@.tmp && mv $@.tmp $@
units/hamq-worker@.service: $(top_srcdir)/units/hamq-worker@.service.in $(top_srcdir)/include/hamq/exitcodes.h Makefile
	$(AM_V_GEN)$(MKDIR_P) units && $(hamq_units_edit) $(top_srcdir)/units/hamq-worker@.service.in >$@.tmp && mv $@.tmp $@

# Man pages: the binaries' --help through help2man, and hamq.conf(5) from the
# documented example. Generated (never edited by hand), so they cannot drift.
man_MANS = man/hamq-journal.8 man/hamq-worker.8 man/hamq-supervisor.8 \
	man/hamq-supervisorctl.1 man/hamq.1 man/hamq.conf.5
# hamq(1): the top --help, then each command's --help (the CLI has no --version).
hamq_cli_commands = producer consumer browser 'queue stat' perf
man/hamq-journal.8: daemons/hamq-journal$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) man && $(HELP2MAN) --no-info --section=8 \
	  --name='hamq broker core: store, routing, dispatch' --output=$@ ./daemons/hamq-journal$(EXEEXT)
man/hamq-worker.8: daemons/hamq-worker$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) man && $(HELP2MAN) --no-info --section=8 \
	  --name='hamq protocol worker (STOMP, AMQP clients)' --output=$@ ./daemons/hamq-worker$(EXEEXT)
man/hamq-supervisor.8: supervisor/hamq-supervisor$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) man && $(HELP2MAN) --no-info --section=8 \
	  --name='hamq HA agent: heartbeats, failover, fencing, VIP' --output=$@ ./supervisor/hamq-supervisor$(EXEEXT)
man/hamq-supervisorctl.1: supervisor/hamq-supervisorctl$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) man && $(HELP2MAN) --no-info --section=1 \
	  --name='control a hamq-supervisor: status, failover, failback' --output=$@ ./supervisor/hamq-supervisorctl$(EXEEXT)
man/hamq.1: tools/hamq$(EXEEXT)
	$(AM_V_GEN)$(MKDIR_P) man && { echo '[COMMAND OPTIONS]'; \
	  for c in $(hamq_cli_commands); do \
	    echo ".SS \"hamq $$c\""; echo .nf; \
	    ./tools/hamq$(EXEEXT) $$c --help | sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' || exit 1; \
	    echo .fi; \
	  done; } >man/hamq.h2m && \
	$(HELP2MAN) --no-info --section=1 --version-string='$(PACKAGE_VERSION)' \
	  --name='hamq client: producer, consumer, browser, queue stat, perf (Artemis CLI flags)' \
	  --include=man/hamq.h2m --output=$@ ./tools/hamq$(EXEEXT)
man/hamq.conf.5: $(top_srcdir)/units/hamq.conf $(top_srcdir)/units/hamq-conf-man.awk
	$(AM_V_GEN)$(MKDIR_P) man && $(AWK) -v version='$(PACKAGE_VERSION)' \
	  -f $(top_srcdir)/units/hamq-conf-man.awk $(top_srcdir)/units/hamq.conf >$@.tmp && mv $@.tmp $@

noinst_DATA = $(hamq_units_built)
CLEANFILES += $(hamq_units_built) $(man_MANS) man/hamq.h2m

install-data-local: hamq-install-units
uninstall-local: hamq-uninstall-units
.PHONY: hamq-install-units hamq-uninstall-units

# The example config goes to $(sysconfdir)/hamq/hamq.conf only when there is
# none (never overwrite an operator's file); uninstall removes it only if it
# is still the unmodified example.
hamq-install-units:
	$(MKDIR_P) '$(DESTDIR)$(SYSTEMD_UNITDIR)' '$(DESTDIR)$(SYSUSERS_DIR)' \
	  '$(DESTDIR)$(TMPFILES_DIR)' '$(DESTDIR)$(firewalld_servicedir)' '$(DESTDIR)$(hamqconfdir)' \
	  '$(DESTDIR)$(polkit_rulesdir)'
	@for t in $(hamq_unit_templates); do \
	  u=`basename $$t .in`; \
	  echo " GEN+INSTALL $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u"; \
	  tmp=units/$$u.install.$$$$; \
	  $(hamq_units_edit) $(top_srcdir)/$$t >$$tmp || exit 1; \
	  $(INSTALL_DATA) $$tmp '$(DESTDIR)$(SYSTEMD_UNITDIR)/'$$u || exit 1; \
	  rm -f $$tmp; \
	done
	$(INSTALL_DATA) $(top_srcdir)/units/hamq.target '$(DESTDIR)$(SYSTEMD_UNITDIR)/hamq.target'
	$(INSTALL_DATA) $(top_srcdir)/units/sysusers.d/hamq.conf '$(DESTDIR)$(SYSUSERS_DIR)/hamq.conf'
	$(INSTALL_DATA) $(top_srcdir)/units/tmpfiles.d/hamq.conf '$(DESTDIR)$(TMPFILES_DIR)/hamq.conf'
	$(INSTALL_DATA) $(top_srcdir)/units/firewalld/hamq.xml '$(DESTDIR)$(firewalld_servicedir)/hamq.xml'
	$(INSTALL_DATA) $(top_srcdir)/units/polkit/hamq.rules '$(DESTDIR)$(polkit_rulesdir)/hamq.rules'
	@if test -e '$(DESTDIR)$(hamqconfdir)/hamq.conf'; then \
	  echo " KEEP $(DESTDIR)$(hamqconfdir)/hamq.conf (exists; the example is not installed over it)"; \
	else \
	  echo " INSTALL $(DESTDIR)$(hamqconfdir)/hamq.conf"; \
	  $(INSTALL_DATA) $(top_srcdir)/units/hamq.conf '$(DESTDIR)$(hamqconfdir)/hamq.conf'; \
	fi

hamq-uninstall-units:
	for u in hamq-journal.service hamq-supervisor.service hamq-worker@.service hamq.target; do \
	  rm -f '$(DESTDIR)$(SYSTEMD_UNITDIR)/'$$u; done
	rm -f '$(DESTDIR)$(SYSUSERS_DIR)/hamq.conf' '$(DESTDIR)$(TMPFILES_DIR)/hamq.conf' \
	  '$(DESTDIR)$(firewalld_servicedir)/hamq.xml' '$(DESTDIR)$(polkit_rulesdir)/hamq.rules'
	if cmp -s $(top_srcdir)/units/hamq.conf '$(DESTDIR)$(hamqconfdir)/hamq.conf'; then \
	  rm -f '$(DESTDIR)$(hamqconfdir)/hamq.conf'; fi

# distcheck installs as whoever runs it: keep every directory under its prefix.
AM_DISTCHECK_CONFIGURE_FLAGS = SYSTEMD_UNITDIR='$$dc_install_base/lib/systemd/system' \
	SYSUSERS_DIR='$$dc_install_base/lib/sysusers.d' TMPFILES_DIR='$$dc_install_base/lib/tmpfiles.d'

EXTRA_DIST += $(hamq_unit_templates) units/hamq.target units/sysusers.d/hamq.conf \
	units/tmpfiles.d/hamq.conf units/firewalld/hamq.xml units/polkit/hamq.rules units/hamq.conf \
	units/hamq-conf-man.awk units/README.md hamq.spec

# Tests: the example config and the man pages on the host; the units'
# hardening score (systemd-analyze security --offline); and a real systemd
# booted in containers (tests/systemd/README.md).
check_PROGRAMS += tests/systemd/conf_dump
tests_systemd_conf_dump_LDADD = $(HAMQ_COMMON_LIBS)
hamq_systemd_tests = tests/systemd/conf_example.sh tests/systemd/man_pages.sh \
	tests/systemd/units_security.sh tests/systemd/service_journal.sh \
	tests/systemd/service_supervisor.sh tests/systemd/rpm_build.sh
TESTS += $(hamq_systemd_tests)
check_DATA = $(hamq_units_built) $(man_MANS)
EXTRA_DIST += $(hamq_systemd_tests) tests/systemd/nspawn-lib.sh tests/systemd/stomp_probe.py \
	tests/systemd/README.md

# `make rpm`: the RPM from the release tarball (hamq.spec). On a host without
# Fedora's systemd-rpm-macros (Debian), add
#   HAMQ_RPM_FLAGS='--nodeps --load=$(top_srcdir)/tests/systemd/rpm-macros.debian'
HAMQ_RPM_FLAGS =
rpm: dist-gzip
	rm -rf rpmbuild && $(MKDIR_P) rpmbuild/SOURCES
	cp $(distdir).tar.gz rpmbuild/SOURCES/
	cp $(top_srcdir)/units/sysusers.d/hamq.conf rpmbuild/SOURCES/hamq.sysusers
	rpmbuild $(HAMQ_RPM_FLAGS) --define "_topdir $(abs_top_builddir)/rpmbuild" -ba $(top_srcdir)/hamq.spec
.PHONY: rpm
EXTRA_DIST += tests/systemd/rpm-macros.debian
