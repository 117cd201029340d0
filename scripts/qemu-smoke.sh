#!/bin/sh
# Runs the router binaries where they are shipped (`make qemu-smoke`, after `make packages`):
# for each .ipk in DIR it takes the binary and the default config out of the package, and runs
# under qemu-user (mips, mipsel, arm, aarch64; x86_64 natively on an x86_64 host):
#   version                       prints the version the package was built with
#   check  -c <default config>    exit 0 against a dhcp file set up as the install sets it up
#   render -c <default config>    the healthy list: the default NextDNS endpoints, in order;
#                                 the failover list (the backups alone) and the stopped list
#   render --write                the same list, written to the configured servers_file
#   probe  -c <loopback config>   exit 0 against a fake DNS server on 127.0.0.1,
#                                 exit 1 when the only primary is a closed loopback port
# Only loopback is ever contacted: the probe config names 127.0.0.1 upstreams alone.
#
#   sh scripts/qemu-smoke.sh dist
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
DIR="${1:-dist}"
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac

WORK=$(mktemp -d) || exit 1
FAKE_PID=""
cleanup() {
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fails=0
runs=0
fail() {
	echo "  FAIL $arch: $*"
	fails=$((fails + 1))
}

# The fake upstream, on a free loopback port.
CGO_ENABLED=0 go build -o "$WORK/fakednsd" ./test/fakednsd || exit 1
"$WORK/fakednsd" -ready "$WORK/fake.addr" &
FAKE_PID=$!
# shellcheck source=scripts/wait-file.sh
. scripts/wait-file.sh
wait_file "$WORK/fake.addr" "$FAKE_PID" qemu-smoke
FAKE=$(cat "$WORK/fake.addr")

# A port nothing listens on: take one from a listener that is gone again.
"$WORK/fakednsd" -ready "$WORK/closed.addr" &
pid=$!
i=0
while [ ! -s "$WORK/closed.addr" ] && [ "$i" -lt 100 ]; do
	i=$((i + 1))
	sleep 0.1
done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
CLOSED=$(cat "$WORK/closed.addr")

host=$(uname -m)

# emulator ARCH: the command that runs a binary for OpenWrt architecture ARCH, or nothing.
emulator() {
	case "$1" in
	mips64el_*) echo qemu-mips64el-static ;;
	mips64_*) echo qemu-mips64-static ;;
	mipsel_*) echo qemu-mipsel-static ;;
	mips_*) echo qemu-mips-static ;;
	arm_*) echo qemu-arm-static ;;
	aarch64_*) [ "$host" = aarch64 ] || echo qemu-aarch64-static ;;
	x86_64) [ "$host" = x86_64 ] || echo qemu-x86_64-static ;;
	i386_*) [ "$host" = x86_64 ] || [ "$host" = i686 ] || echo qemu-i386-static ;;
	*) echo unknown ;;
	esac
}

found=0
for ipk in "$DIR"/nextdns-failover_*.ipk; do
	[ -e "$ipk" ] || continue
	found=1
	name=${ipk##*/}
	name=${name%.ipk}
	arch=${name#nextdns-failover_*_}
	version=${name#nextdns-failover_}
	version=${version%_"$arch"}
	emu=$(emulator "$arch")
	if [ "$emu" = unknown ]; then
		echo "== $arch: no emulator known, skipped"
		continue
	fi
	if [ -n "$emu" ] && ! command -v "$emu" >/dev/null 2>&1; then
		fail "$emu is not installed (make deps installs qemu-user-static)"
		continue
	fi
	echo "== $arch (${emu:-native})"
	runs=$((runs + 1))
	W="$WORK/$arch"
	mkdir -p "$W/run"
	if ! tar -xzOf "$ipk" ./data.tar.gz >"$W/data.tar.gz" ||
		! tar -xzf "$W/data.tar.gz" -C "$W" ./usr/sbin/nextdns-failover ./etc/config/nextdns-failover; then
		fail "cannot unpack $ipk"
		continue
	fi
	BIN="$W/usr/sbin/nextdns-failover"

	# nfo ARGS...: run the router binary, under the emulator when there is one.
	nfo() {
		if [ -n "$emu" ]; then
			"$emu" "$BIN" "$@"
		else
			"$BIN" "$@"
		fi
	}

	# The packaged default config, pointed at this world's dhcp and run folder. Reopening
	# the named section merges these options into it, as libuci does.
	CONF="$W/etc/config/nextdns-failover"
	cat >>"$CONF" <<EOF

config settings 'settings'
	option dhcp_config '$W/dhcp'
	option servers_file '$W/run/nextdns-failover/servers.conf'
	option status_file '$W/run/nextdns-failover/status.json'
EOF
	# dhcp as the install leaves it: our servers-file, no resolv-file, strict order.
	cat >"$W/dhcp" <<EOF

config dnsmasq
	option domain 'lan'
	option local '/lan/'
	option serversfile '$W/run/nextdns-failover/servers.conf'
	option noresolv '1'
	option strictorder '1'
	list server '/lan/192.168.1.1'

config dhcp 'lan'
	option interface 'lan'
	option start '100'
	option limit '150'
	option leasetime '12h'
EOF

	out=$(nfo version 2>&1)
	rc=$?
	echo "  version: $out"
	[ "$rc" = 0 ] || fail "version: exit $rc"
	case "$out" in
	*"$version"*) ;;
	*) fail "version: '$out' does not name $version" ;;
	esac

	out=$(nfo check -c "$CONF" 2>&1)
	rc=$?
	[ "$rc" = 0 ] || fail "check: exit $rc: $out"
	echo "$out" | sed 's/^/  check: /'

	out=$(nfo render -c "$CONF" --state healthy 2>&1)
	rc=$?
	[ "$rc" = 0 ] || fail "render: exit $rc: $out"
	servers=$(echo "$out" | grep '^server=' | tr '\n' ' ')
	[ "$servers" = "server=45.90.28.0 server=45.90.30.0 " ] ||
		fail "render: healthy list is '$servers', want the default NextDNS endpoints"
	echo "  render: $servers"

	for st in "failover:9.9.9.9 149.112.112.112" "stopped:45.90.28.0 45.90.30.0 9.9.9.9 149.112.112.112"; do
		want=""
		for a in ${st#*:}; do want="${want}server=$a "; done
		got=$(nfo render -c "$CONF" --state "${st%%:*}" 2>&1 | grep '^server=' | tr '\n' ' ')
		[ "$got" = "$want" ] || fail "render --state ${st%%:*}: '$got', want '$want'"
	done

	if nfo render -c "$CONF" --state healthy --write >/dev/null 2>"$W/err"; then
		[ "$(cat "$W/run/nextdns-failover/servers.conf" 2>/dev/null)" = "$out" ] ||
			fail "render --write: the file differs from what render prints"
	else
		fail "render --write: $(cat "$W/err")"
	fi

	# One probe round against the fake on loopback, and one against a closed port.
	cat >"$W/probe.conf" <<EOF
config settings 'settings'
	option mode 'availability'
	list primary '$FAKE'
	option timeout '2s'
	option dhcp_config '$W/dhcp'
	option servers_file '$W/run/nextdns-failover/servers.conf'
	option status_file '$W/run/nextdns-failover/status.json'
EOF
	out=$(nfo probe -c "$W/probe.conf" 2>&1)
	rc=$?
	[ "$rc" = 0 ] || fail "probe against the fake at $FAKE: exit $rc: $out"
	echo "$out" | sed 's/^/  probe: /'
	sed "s/$FAKE/$CLOSED/" "$W/probe.conf" >"$W/probe-down.conf"
	out=$(nfo probe -c "$W/probe-down.conf" 2>&1)
	rc=$?
	[ "$rc" = 1 ] || fail "probe against a closed port: exit $rc (want 1): $out"
done

if [ "$found" = 0 ]; then
	echo "qemu-smoke: no nextdns-failover_*.ipk in $DIR (run make packages first)" >&2
	exit 1
fi
echo "qemu-smoke: $runs architectures, $fails failures"
[ "$fails" = 0 ]
