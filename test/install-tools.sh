#!/usr/bin/env bash
# Installs the tools the tests use when they are missing (Debian packages): tcpdump is the
# oracle, tshark and capinfos read captures back, iproute2 makes test namespaces, strace is the
# peer, setpriv/setcap/useradd serve the run-as tests, libpcap0.8 compiles -f expressions, man
# renders the man page, liburing-dev builds the io_uring fixture, chromium opens the stats
# report and is the campaign's GUI program (Xvfb its display, xdotool its driver). Run by `npm test`; without root it only says what is missing (the tests that need root
# skip then, outside CI).
set -uo pipefail
declare -A need=(
  [tcpdump]=tcpdump [tshark]=tshark [capinfos]=tshark [ip]=iproute2 [strace]=strace
  [setcap]=libcap2-bin [useradd]=passwd [setpriv]=util-linux [unshare]=util-linux [man]=man-db [groff]=groff-base
  [gcc]=gcc [ss]=iproute2 [script]=bsdutils [chromium]=chromium [Xvfb]=xvfb [xdotool]=xdotool
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# libpcap itself (loaded at run time by -f and `read EXPR`), not its headers
ldconfig -p 2>/dev/null | grep -q 'libpcap\.so\.0\.8' || missing+=(libpcap0.8)
# liburing's headers: the io_uring fixture (test/fixtures/uring.c) is built with them
[ -e /usr/include/liburing.h ] || missing+=(liburing-dev)
# a PostgreSQL server: the campaign catalogue's tests start a cluster of their own
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "test tools missing (the tests that need them skip): ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "test tools missing and no apt-get to install them: ${missing[*]}" >&2
  exit 1
fi
echo "installing the test tools: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
  echo "could not install: ${missing[*]}" >&2
  exit 1
}
