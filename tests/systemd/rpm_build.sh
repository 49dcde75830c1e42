#!/bin/bash
# hamq.spec builds with rpmbuild from `make dist` (make rpm), and the package
# holds the binaries, man pages, units, sysusers/tmpfiles/firewalld files and
# /etc/hamq/hamq.conf as %config(noreplace), with sysusers/systemd scriptlets.
# A full optimized build of the tarball: minutes, so it runs only when asked
# (HAMQ_TEST_RPM=1, as scripts/test-all.sh may do).
set -u
B=${HAMQ_BUILDDIR:?}; S=${HAMQ_SRCDIR:?}
command -v rpmbuild >/dev/null || { echo "SKIP: rpmbuild not installed (Debian package rpm)"; exit 77; }
[ "${HAMQ_TEST_RPM:-}" = 1 ] || { echo "SKIP: set HAMQ_TEST_RPM=1 to build the RPM (a full build, minutes)"; exit 77; }
flags=
rpm --eval '%{?systemd_post:fedora}' | grep -q fedora ||
    flags="--nodeps --load=$S/tests/systemd/rpm-macros.debian"
t0=$(date +%s)
if ! timeout 900 make -s -C "$B" rpm HAMQ_RPM_FLAGS="$flags" >"$B/rpm_build.out" 2>&1; then
    tail -30 "$B/rpm_build.out"; echo "FAIL: make rpm"; exit 1
fi
pkg=$(ls "$B"/rpmbuild/RPMS/*/hamq-0*.rpm | head -n1)
echo "# built $(basename "$pkg") in $(($(date +%s) - t0)) s; it installs:"
rpm -qp --qf '[%{FILEFLAGS:fflags}\t%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME}\t%{FILENAMES}\n]' "$pkg" 2>/dev/null |
    sed 's/^/#   /'
fail=0
files=$(rpm -qlp "$pkg" 2>/dev/null)
for f in /usr/sbin/hamq-journal /usr/sbin/hamq-worker /usr/sbin/hamq-supervisor /usr/bin/hamq-supervisorctl \
         /usr/bin/hamq /usr/share/man/man1/hamq.1 /usr/share/polkit-1/rules.d/hamq.rules /usr/lib/systemd/system/hamq-journal.service \
         /usr/lib/systemd/system/hamq-worker@.service /usr/lib/systemd/system/hamq.target \
         /usr/lib/systemd/system/hamq-supervisor.service /usr/lib/sysusers.d/hamq.conf \
         /usr/lib/tmpfiles.d/hamq.conf /usr/lib/firewalld/services/hamq.xml /etc/hamq/hamq.conf \
         /usr/share/man/man8/hamq-journal.8 /usr/share/man/man8/hamq-supervisor.8 \
         /usr/share/man/man1/hamq-supervisorctl.1 /usr/share/man/man5/hamq.conf.5 \
         /usr/share/doc/hamq/README.units.md; do
    # man pages are gzipped by rpm's brp-compress on Fedora (it fails under dash on Debian)
    printf '%s\n' "$files" | grep -qxE -- "$f(\.gz)?" && echo "ok - the package has $f" ||
        { echo "not ok - the package has $f"; fail=1; }
done
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$pkg" 2>/dev/null | grep -q '^cn /etc/hamq/hamq.conf$' &&
    echo "ok - /etc/hamq/hamq.conf is %config(noreplace)" || { echo "not ok - hamq.conf %config(noreplace)"; fail=1; }
unit=$(rpm2archive - <"$pkg" | tar -xzOf - ./usr/lib/systemd/system/hamq-journal.service)
echo "$unit" | grep -q '^ExecStart=/usr/sbin/hamq-journal --config /etc/hamq/hamq.conf$' &&
    echo "ok - the packaged unit runs /usr/sbin/hamq-journal with /etc/hamq/hamq.conf" ||
    { echo "not ok - packaged unit paths"; echo "$unit" | grep Exec; fail=1; }
scripts=$(rpm -qp --scripts "$pkg" 2>/dev/null)
echo "$scripts" | sed 's/^/#   /'
echo "$scripts" | grep -q 'u hamq' && echo "ok - %pre creates the hamq user (sysusers)" ||
    { echo "not ok - %pre creates the hamq user"; fail=1; }
echo "$scripts" | grep -q 'preset hamq-supervisor.service' && echo "ok - %post presets the units" ||
    { echo "not ok - %post presets the units"; fail=1; }
exit $fail
