#!/bin/bash
# Installs, from the distribution's own packages, whatever hamq needs to build
# and test that is not installed yet. Debian/Ubuntu (apt-get) and Fedora/RHEL
# (dnf) are detected. Run as root. Nothing is downloaded by hand.
set -euo pipefail

deb_pkgs=(build-essential autoconf automake libtool pkg-config make gcc
  libaio-dev libzmq3-dev libnl-3-dev libnl-route-3-dev libsystemd-dev
  libqpid-proton11-dev libinih-dev libcmocka-dev
  cppcheck clang-tidy python3 python3-stomp python3-qpid-proton python3-pytest
  iproute2 nftables procps util-linux psmisc
  clang libclang-rt-14-dev systemd-container debootstrap help2man rpm)
rpm_pkgs=(gcc make autoconf automake libtool pkgconf-pkg-config
  libaio-devel zeromq-devel libnl3-devel systemd-devel qpid-proton-c-devel
  inih-devel libcmocka-devel cppcheck clang-tools-extra python3 python3-stomppy
  python3-qpid-proton python3-pytest iproute nftables procps-ng util-linux psmisc
  clang compiler-rt systemd-container debootstrap help2man rpm-build)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# node + npm run the rhea (AMQP 1.0, node.js) client test; any node already on PATH will do.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  deb_pkgs+=(nodejs npm); rpm_pkgs+=(nodejs npm)
fi

if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${deb_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "deps: all ${#deb_pkgs[@]} Debian packages present"
  fi
elif command -v dnf >/dev/null 2>&1; then
  missing=()
  for p in "${rpm_pkgs[@]}"; do rpm -q "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    as_root dnf install -y -q "${missing[@]}"
  else
    echo "deps: all ${#rpm_pkgs[@]} Fedora packages present"
  fi
else
  echo "deps: neither apt-get nor dnf found; install the packages listed in scripts/deps.sh by hand" >&2
  exit 1
fi
