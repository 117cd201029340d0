#!/bin/sh
# Tests of the shell the package ships (`make shell-test`):
# - the init script, sourced with stand-ins for rc.common and procd that record what they
#   are handed, so the test sees the exact procd parameters;
# - the install/removal script (dnsmasq-setup, run by uci-defaults and prerm) against copies
#   of real OpenWrt dhcp files (scripts/testdata/dhcp), through a uci stand-in that edits
#   those files (test/fakeuci) and stand-ins for the binary and for /etc/init.d.
# Every case runs under each POSIX shell found here: sh, and busybox ash (OpenWrt's shell).
#
#   sh scripts/test-shell.sh            all shells
#   NFO_SHELLS="busybox ash" sh scripts/test-shell.sh
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

if [ -z "${NFO_SHELL:-}" ]; then
	# Driver: build the uci stand-in once, then run this file under every shell.
	shells="${NFO_SHELLS:-}"
	if [ -z "$shells" ]; then
		shells="sh"
		command -v busybox >/dev/null 2>&1 && busybox ash -c : 2>/dev/null && shells="sh;busybox ash"
	fi
	WORK=$(mktemp -d) || exit 1
	trap 'rm -rf "$WORK"' EXIT
	mkdir -p "$WORK/bin"
	CGO_ENABLED=0 go build -o "$WORK/bin/uci" ./test/fakeuci || exit 1
	status=0
	# the real binary, for the cases that check the contract between install and `check`
	CGO_ENABLED=0 go build -o "$WORK/real/nextdns-failover" ./cmd/nextdns-failover || status=1
	oldifs=$IFS
	IFS=';'
	for s in $shells; do
		IFS=$oldifs
		echo "== shell tests under: $s"
		# shellcheck disable=SC2086 # "busybox ash" is a command and its argument
		NFO_SHELL="$s" NFO_WORK="$WORK" $s "$0" || status=1
	done
	IFS=$oldifs
	[ "$status" = 0 ] && echo "shell tests: all passed"
	exit "$status"
fi

SH="$NFO_SHELL"
WORK="$NFO_WORK"
PATH="$WORK/bin:$PATH"
export PATH
INIT="$ROOT/files/etc/init.d/nextdns-failover"
SETUP="$ROOT/files/usr/libexec/nextdns-failover/dnsmasq-setup"
fails=0
passes=0
case_name=""
C=""

fail() {
	echo "FAIL [$SH] $case_name: $*"
	fails=$((fails + 1))
}

# new_case NAME [DHCP_FIXTURE]: a fresh world in $C with our default config and a dhcp file.
new_case() {
	case_name="$1"
	passes=$((passes + 1))
	C="$WORK/$(echo "$SH-$1" | tr -c 'A-Za-z0-9_\n-' '_')"
	rm -rf "$C"
	mkdir -p "$C/config" "$C/bin" "$C/initd" "$C/run"
	export C
	cp "$ROOT/files/etc/config/nextdns-failover" "$C/config/nextdns-failover"
	[ -n "${2:-}" ] && cp "$ROOT/scripts/testdata/dhcp/$2" "$C/config/dhcp"
	: >"$C/log"
	: >"$C/passwd"
	# the world's paths, as the option values a user would set
	uci -c "$C/config" set "nextdns-failover.settings.servers_file=$C/run/nextdns-failover/servers.conf"
	uci -c "$C/config" set "nextdns-failover.settings.status_file=$C/run/nextdns-failover/status.json"
	uci -c "$C/config" commit nextdns-failover

	# The binary: records its arguments; render prints (or, with --write, writes to the
	# configured servers_file) a one-line list naming the state. STUB_FAIL=SUBCOMMAND fails.
	cat >"$C/bin/nextdns-failover" <<'STUB'
#!/bin/sh
echo "nextdns-failover $*" >>"$C/log"
if [ "${STUB_FAIL:-}" = "$1" ]; then
	echo "nextdns-failover: $1: stub failure" >&2
	exit 1
fi
[ "$1" = render ] || exit 0
state=healthy write=0
while [ $# -gt 0 ]; do
	case "$1" in
	--state) state=$2; shift ;;
	--write) write=1 ;;
	esac
	shift
done
if [ "$write" = 1 ]; then
	f=$(UCI_CONFIG_DIR="$C/config" uci -q get nextdns-failover.settings.servers_file)
	mkdir -p "${f%/*}"
	echo "# $state" >"$f"
else
	echo "# $state"
fi
STUB
	for s in dnsmasq nextdns-failover; do
		# shellcheck disable=SC2016 # expanded by the stand-in, not here
		printf '#!/bin/sh\necho "initd %s $*" >>"$C/log"\n' "$s" >"$C/initd/$s"
	done
	# our init script's `running`: true only while $C/daemon-running exists
	# shellcheck disable=SC2016 # expanded by the stand-in, not here
	printf '[ "$1" != running ] || [ -e "$C/daemon-running" ]\n' >>"$C/initd/nextdns-failover"
	chmod 0755 "$C/bin/nextdns-failover" "$C/initd/dnsmasq" "$C/initd/nextdns-failover"
}

# expect_log: the calls recorded in $C/log are exactly stdin.
expect_log() {
	want=$(cat)
	got=$(cat "$C/log")
	if [ "$got" != "$want" ]; then
		fail "calls differ"
		printf '%s\n' "$want" >"$C/log.want"
		diff -u "$C/log.want" "$C/log" | sed 's/^/    /'
	fi
}

expect_eq() { # GOT WANT WHAT
	[ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"
}

# ---------------------------------------------------------------- the init script
# run_init FUNCTION...: source the init script in the shell under test, with procd's and
# rc.common's functions recording their arguments, then call the functions.
cat >"$WORK/init-harness.sh" <<'HARNESS'
. "$INIT"
PROG="$C/bin/nextdns-failover"
CONFIG_FILE="$C/config/nextdns-failover"
PASSWD_FILE="$C/passwd"
UJAIL="$C/ujail"
DHCP_COPY="$C/etc-var/nextdns-failover/dhcp"
rec() { echo "$*" >>"$C/log"; }
procd_open_instance() { rec "procd_open_instance $*"; }
procd_set_param() { rec "procd_set_param $*"; }
procd_close_instance() { rec "procd_close_instance $*"; }
procd_add_reload_trigger() { rec "procd_add_reload_trigger $*"; }
procd_add_interface_trigger() { rec "procd_add_interface_trigger $*"; }
procd_send_signal() { rec "procd_send_signal $*"; }
procd_add_jail() { rec "procd_add_jail $*"; }
procd_running() { rec "procd_running $*"; [ "${RUNNING:-0}" = 1 ]; }
start() { rec "rc.common start"; }
chown() { rec "chown $*"; }
chgrp() { rec "chgrp $*"; }
for f in "$@"; do
	"$f"
	rec "$f: rc=$?"
done
HARNESS

run_init() {
	[ -f "$C/config/dhcp" ] || cp "$ROOT/scripts/testdata/dhcp/realistic" "$C/config/dhcp"
	chmod 0600 "$C/config/dhcp" # as libuci leaves it
	if [ -z "$(uci -q -c "$C/config" get nextdns-failover.settings.dhcp_config)" ]; then
		uci -c "$C/config" set "nextdns-failover.settings.dhcp_config=$C/config/dhcp"
		uci -c "$C/config" commit nextdns-failover
	fi
	UCI_CONFIG_DIR="$C/config" INIT="$INIT" $SH "$WORK/init-harness.sh" "$@" 2>>"$C/stderr"
}

# copy_ok: the daemon's copy of dhcp is dhcp, mode 0640.
copy_ok() {
	cmp -s "$C/config/dhcp" "$C/etc-var/nextdns-failover/dhcp" || fail "the daemon's copy of dhcp differs from dhcp"
	mode_is "$C/etc-var/nextdns-failover/dhcp" 640 "the daemon's copy of dhcp"
	[ -e "$C/etc-var/nextdns-failover/dhcp.new" ] && fail "half a copy left"
	return 0
}

# mode_is FILE MODE WHAT
mode_is() {
	expect_eq "$(stat -c %a "$1" 2>/dev/null)" "$2" "$3"
}

P="$C/bin/nextdns-failover" # set per case below

new_case "init: start renders the healthy list, then hands procd the watchdog"
P="$C/bin/nextdns-failover"
run_init start_service
expect_log <<EOF
procd_running nextdns-failover watchdog
nextdns-failover render -c $C/config/nextdns-failover --state healthy --write
procd_open_instance watchdog
procd_set_param command $P run -c $C/config/nextdns-failover -dhcp $C/etc-var/nextdns-failover/dhcp
procd_set_param respawn 3600 5 0
procd_set_param stdout 1
procd_set_param stderr 1
procd_close_instance 
start_service: rc=0
EOF
copy_ok
expect_eq "$(cat "$C/run/nextdns-failover/servers.conf")" "# healthy" "servers-file after start"
[ "$(stat -c %a "$C/run/nextdns-failover")" = 755 ] || fail "servers-file folder is not 0755 (dnsmasq must read it)"

new_case "init: with ujail (dnsmasq jailed, its recorded pid is root's ujail) it stays root"
P="$C/bin/nextdns-failover"
echo 'dnsmasq:x:453:453:dnsmasq:/var/run/dnsmasq:/bin/false' >"$C/passwd"
printf '#!/bin/sh\n' >"$C/ujail"
chmod 0755 "$C/ujail"
run_init start_service
grep -q 'procd_set_param user' "$C/log" && fail "runs as another user although dnsmasq is jailed"
grep -q 'procd_add_jail' "$C/log" && fail "jails the daemon (a PID namespace would hide dnsmasq)"
grep -q -- '-user' "$C/log" && fail "drops to a user although dnsmasq is jailed"
grep -q 'chgrp' "$C/log" && fail "hands the dhcp copy to another group although it runs as root"
copy_ok
grep -q 'procd_close_instance' "$C/log" || fail "no instance"

new_case "init: as dnsmasq's user when the router has it: started as root with -user (the packet socket), no_new_privs"
P="$C/bin/nextdns-failover"
echo 'dnsmasq:x:453:453:dnsmasq:/var/run/dnsmasq:/bin/false' >"$C/passwd"
run_init start_service
expect_log <<EOF
procd_running nextdns-failover watchdog
nextdns-failover render -c $C/config/nextdns-failover --state healthy --write
chown dnsmasq:dnsmasq $C/run/nextdns-failover
chown -h dnsmasq:dnsmasq $C/run/nextdns-failover/servers.conf
chown dnsmasq:dnsmasq $C/run/nextdns-failover
chgrp dnsmasq $C/etc-var/nextdns-failover/dhcp.new
procd_open_instance watchdog
procd_set_param command $P run -c $C/config/nextdns-failover -dhcp $C/etc-var/nextdns-failover/dhcp -user dnsmasq
procd_set_param respawn 3600 5 0
procd_set_param stdout 1
procd_set_param stderr 1
procd_set_param no_new_privs 1
procd_close_instance 
start_service: rc=0
EOF
copy_ok

new_case "init: a symlink planted in the daemon's folder is never chowned (root would follow it)"
P="$C/bin/nextdns-failover"
echo 'dnsmasq:x:453:453:dnsmasq:/var/run/dnsmasq:/bin/false' >"$C/passwd"
mkdir -p "$C/run/nextdns-failover"
ln -s "$C/config/dhcp" "$C/run/nextdns-failover/status.json"
run_init start_service
grep -q "chown.*status.json" "$C/log" && fail "chowned a symlink in the user's folder"
grep -q "procd_close_instance" "$C/log" || fail "no instance"

new_case "init: start while the watchdog runs leaves its list alone"
P="$C/bin/nextdns-failover"
RUNNING=1 run_init start_service
expect_log <<EOF
procd_running nextdns-failover watchdog
procd_open_instance watchdog
procd_set_param command $P run -c $C/config/nextdns-failover -dhcp $C/etc-var/nextdns-failover/dhcp
procd_set_param respawn 3600 5 0
procd_set_param stdout 1
procd_set_param stderr 1
procd_close_instance 
start_service: rc=0
EOF

new_case "init: a config the binary rejects starts nothing"
STUB_FAIL=render run_init start_service
expect_log <<EOF
procd_running nextdns-failover watchdog
nextdns-failover render -c $C/config/nextdns-failover --state healthy --write
start_service: rc=1
EOF
grep -q "not started" "$C/stderr" || fail "no message saying why it did not start"

for v in 0 no off false; do
	new_case "init: enabled '$v' runs no watchdog but leaves dnsmasq a static list"
	uci -c "$C/config" set "nextdns-failover.settings.enabled=$v"
	uci -c "$C/config" commit nextdns-failover
	run_init start_service
	expect_log <<EOF
nextdns-failover render -c $C/config/nextdns-failover --state stopped --write
start_service: rc=0
EOF
	expect_eq "$(cat "$C/run/nextdns-failover/servers.conf")" "# stopped" "servers-file when disabled"
done

new_case "init: disabled with a list in place rewrites nothing"
uci -c "$C/config" set "nextdns-failover.settings.enabled=0"
uci -c "$C/config" commit nextdns-failover
mkdir -p "$C/run/nextdns-failover"
echo "# failover" >"$C/run/nextdns-failover/servers.conf"
run_init start_service
expect_log <<EOF
start_service: rc=0
EOF
expect_eq "$(cat "$C/run/nextdns-failover/servers.conf")" "# failover" "servers-file"

new_case "init: reload while running sends SIGHUP and restarts nothing"
RUNNING=1 run_init reload_service
expect_log <<EOF
procd_running nextdns-failover watchdog
procd_send_signal nextdns-failover watchdog HUP
reload_service: rc=0
EOF

new_case "init: reload copies dhcp again (as dnsmasq's user: its group) before the SIGHUP"
echo 'dnsmasq:x:453:453:dnsmasq:/var/run/dnsmasq:/bin/false' >"$C/passwd"
run_init start_service
: >"$C/log"
uci -c "$C/config" add_list 'dhcp.@dnsmasq[0].server=/new/10.0.0.1'
uci -c "$C/config" commit dhcp
RUNNING=1 run_init reload_service
expect_log <<EOF
procd_running nextdns-failover watchdog
chgrp dnsmasq $C/etc-var/nextdns-failover/dhcp.new
procd_send_signal nextdns-failover watchdog HUP
reload_service: rc=0
EOF
copy_ok
grep -q "/new/10.0.0.1" "$C/etc-var/nextdns-failover/dhcp" || fail "the copy is not the committed dhcp"

new_case "init: an unreadable dhcp_config: a warning, and the daemon still starts"
uci -c "$C/config" set "nextdns-failover.settings.dhcp_config=$C/config/nosuch"
uci -c "$C/config" commit nextdns-failover
run_init start_service
grep -q "procd_close_instance" "$C/log" || fail "no instance"
grep -q "warning: cannot copy $C/config/nosuch" "$C/stderr" || fail "no warning naming the file"

new_case "init: as dnsmasq's user with passive '0': procd starts it as the user, never root"
echo 'dnsmasq:x:453:453:dnsmasq:/var/run/dnsmasq:/bin/false' >"$C/passwd"
uci -c "$C/config" set "nextdns-failover.settings.passive=0"
uci -c "$C/config" commit nextdns-failover
run_init start_service
grep -q -- '-user' "$C/log" && fail "starts as root with -user although passive is '0'"
grep -q 'procd_set_param user dnsmasq' "$C/log" || fail "not run as the dnsmasq user"
grep -q 'procd_set_param group dnsmasq' "$C/log" || fail "not run as the dnsmasq group"
grep -q 'procd_set_param no_new_privs 1' "$C/log" || fail "no_new_privs dropped"

new_case "init: reload when not running starts it"
run_init reload_service
expect_log <<EOF
procd_running nextdns-failover watchdog
rc.common start
reload_service: rc=0
EOF

new_case "init: reload after enabled '0' re-registers without an instance (procd stops it)"
uci -c "$C/config" set "nextdns-failover.settings.enabled=0"
uci -c "$C/config" commit nextdns-failover
RUNNING=1 run_init reload_service
expect_log <<EOF
rc.common start
reload_service: rc=0
EOF

new_case "init: triggers: config reload and WAN up"
run_init service_triggers
expect_log <<EOF
procd_add_reload_trigger nextdns-failover dhcp
procd_add_interface_trigger interface.*.up wan /etc/init.d/nextdns-failover reload
procd_add_interface_trigger interface.*.up wan6 /etc/init.d/nextdns-failover reload
service_triggers: rc=0
EOF

new_case "init: status runs the binary's status"
run_init status
expect_log <<EOF
nextdns-failover status -c $C/config/nextdns-failover
status: rc=0
EOF

new_case "init: header"
grep -q '^START=18 ' "$INIT" || fail "START is not 18 (dnsmasq is 19)"
grep -q '^USE_PROCD=1$' "$INIT" || fail "USE_PROCD=1 missing"
head -1 "$INIT" | grep -qx '#!/bin/sh /etc/rc.common' || fail "not an rc.common script"

# ---------------------------------------------------------------- dnsmasq-setup
# setup ACTION: run the install/removal script in the shell under test.
setup() {
	UCI_CONFIG_DIR="$C/config" NFO_BIN="${REAL_BIN:-$C/bin/nextdns-failover}" NFO_INITD="$C/initd" \
		NFO_STATE_DIR="$C/state" NFO_DHCP_COPY_DIR="$C/etc-var/nextdns-failover" NFO_NEXTDNS_CONF="$C/nextdns.conf" NFO_DNSMASQ_D="$C/dnsmasq.d" \
		$SH "$SETUP" "$@" 2>>"$C/stderr"
}

dhcp_get() { uci -q -c "$C/config" get "dhcp.$1"; }
cfg_get() { uci -q -c "$C/config" get "nextdns-failover.settings.$1"; }

snapshot() { # NAME: copy the files install and removal may touch
	mkdir -p "$C/snap-$1"
	for f in "$C/config/dhcp" "$C/config/nextdns-failover" "$C/state/dhcp-saved" "$C/config/https-dns-proxy"; do
		[ -f "$f" ] && cp "$f" "$C/snap-$1/${f##*/}"
	done
	return 0
}

same_snapshot() { # A B WHAT
	diff -r "$C/snap-$1" "$C/snap-$2" >/dev/null || {
		fail "$3"
		diff -ru "$C/snap-$1" "$C/snap-$2" | sed 's/^/    /'
	}
}

# export_of PKG: `uci export PKG` of the world's config folder.
export_of() { uci -q -c "$C/config" export "$1"; }

# same_export PKG BEFORE_FILE WHAT: the package exports exactly as saved in BEFORE_FILE.
same_export() {
	export_of "$1" >"$C/$1.now"
	if ! cmp -s "$2" "$C/$1.now"; then
		fail "$3"
		diff -u "$2" "$C/$1.now" | sed 's/^/    /'
	fi
}

# restarts: how many times dnsmasq was restarted.
restarts() { grep -c 'initd dnsmasq restart' "$C/log"; }

# no_reload: dnsmasq is never reloaded (a reload's SIGHUP can kill the new dnsmasq before it
# is ready, and procd respawns it only 5 s later).
no_reload() {
	grep -q 'initd dnsmasq reload' "$C/log" && fail "dnsmasq was reloaded"
	return 0
}

# lifecycle FIXTURE: install, install again, remove; check each step.
# Expectations come in as variables: W_PRIMARY, W_SECONDARY, W_SERVER (dhcp after install).
lifecycle() {
	fixture=$1
	sec="${SEC:-@dnsmasq[0]}"
	export_of dhcp >"$C/dhcp.before"
	setup install
	expect_eq "$?" 0 "install exit status"
	expect_eq "$(dhcp_get "$sec.serversfile")" "$C/run/nextdns-failover/servers.conf" "$fixture: serversfile"
	expect_eq "$(dhcp_get "$sec.noresolv")" 1 "$fixture: noresolv"
	expect_eq "$(dhcp_get "$sec.strictorder")" 1 "$fixture: strictorder"
	expect_eq "$(dhcp_get "$sec.server")" "$W_SERVER" "$fixture: dhcp servers left"
	expect_eq "$(cfg_get primary)" "$W_PRIMARY" "$fixture: primaries"
	expect_eq "$(cfg_get secondary)" "$W_SECONDARY" "$fixture: secondaries"
	expect_eq "$(cat "$C/run/nextdns-failover/servers.conf" 2>/dev/null)" "# healthy" "$fixture: servers-file written before dnsmasq restarts"
	expect_eq "$(restarts)" 1 "$fixture: dnsmasq restarts after install"
	no_reload
	mode_is "$C/config/dhcp" 600 "$fixture: dhcp mode after install (libuci's commit)"
	[ -d "$C/config/.fakeuci" ] && [ -n "$(ls -A "$C/config/.fakeuci")" ] && fail "$fixture: uncommitted changes left: $(ls "$C/config/.fakeuci")"

	snapshot once
	: >"$C/log"
	setup install
	expect_eq "$?" 0 "second install exit status"
	snapshot twice
	same_snapshot once twice "$fixture: a second install changed files"
	expect_eq "$(restarts)" 0 "$fixture: dnsmasq restarts after a second install that changed nothing"

	: >"$C/log"
	setup remove
	expect_eq "$?" 0 "remove exit status"
	same_export dhcp "$C/dhcp.before" "$fixture: removal did not give back dhcp exactly"
	expect_log <<EOF
initd nextdns-failover stop
initd dnsmasq restart
EOF
	mode_is "$C/config/dhcp" 600 "$fixture: dhcp mode after removal"
	[ -e "$C/state/dhcp-saved" ] && fail "$fixture: state file left after removal"
	[ -e "$C/run/nextdns-failover" ] && fail "$fixture: servers-file folder left after removal"
	return 0
}

new_case "setup: stock OpenWrt dhcp: defaults kept, dhcp restored" stock
W_PRIMARY="45.90.28.0 45.90.30.0" W_SECONDARY="9.9.9.9 149.112.112.112" W_SERVER="" lifecycle stock

new_case "setup: realistic dhcp: local proxy becomes a secondary before the shipped direct backups, domains stay" realistic
W_PRIMARY="45.90.28.0 45.90.30.0" W_SECONDARY="127.0.0.1#5353 9.9.9.9 149.112.112.112" \
	W_SERVER="/lan/192.168.1.1 /example.com/10.0.0.53" lifecycle realistic

new_case "setup: NextDNS user: their endpoints replace ours, odd entries kept for removal" nextdns-user
W_PRIMARY="2a07:a8c0::ab:cd12 45.90.28.165 2A07:A8C1::AB:CD12#53" W_SECONDARY="1.1.1.1 2a07:a8c1:8000::1" \
	W_SERVER="/lan/192.168.1.1" lifecycle nextdns-user
grep -q "8.8.8.8@eth1" "$C/stderr" || fail "no message about the server it could not use"

new_case "setup: the instance named by dnsmasq_instance, the other untouched" two-instances
uci -c "$C/config" set "nextdns-failover.settings.dnsmasq_instance=guest"
uci -c "$C/config" commit nextdns-failover
uci -c "$C/config" show dhcp.main >"$C/main.before"
setup install
uci -c "$C/config" show dhcp.main >"$C/main.after"
cmp -s "$C/main.before" "$C/main.after" || fail "install changed the other dnsmasq instance"
uci -c "$C/config" set "nextdns-failover.settings.dnsmasq_instance=guest"
rm -rf "$C/state" "$C/run"
cp "$ROOT/scripts/testdata/dhcp/two-instances" "$C/config/dhcp"
: >"$C/log"
SEC=guest W_PRIMARY="45.90.28.0 45.90.30.0" W_SECONDARY="149.112.112.112" W_SERVER="/guest/192.168.2.1" \
	lifecycle two-instances

new_case "setup: a running daemon is reloaded once when install changed something, never when not; removal forgets the dhcp copy" realistic
touch "$C/daemon-running"
setup install || fail "install failed"
expect_eq "$(grep -c 'initd nextdns-failover reload' "$C/log")" 1 "reloads of the running daemon after install"
: >"$C/log"
setup install || fail "second install failed"
grep -q 'initd nextdns-failover reload' "$C/log" && fail "reloaded the daemon although nothing changed"
mkdir -p "$C/etc-var/nextdns-failover" "$C/run/nextdns-failover"
echo copy >"$C/etc-var/nextdns-failover/dhcp"
echo '{}' >"$C/run/nextdns-failover/override.json"
rm -f "$C/daemon-running"
setup remove || fail "remove failed"
[ -e "$C/etc-var/nextdns-failover" ] && fail "removal left the copy of dhcp behind"
[ -e "$C/run/nextdns-failover/override.json" ] && fail "removal left the override request behind"

new_case "setup: awkward values (spaces, quotes, empty, shell syntax) leave dhcp and come back exactly" awkward
W_PRIMARY="45.90.28.0 45.90.30.0" W_SECONDARY="1.1.1.1" W_SERVER="'/x y/192.168.1.1' /lan/192.168.1.1" \
	lifecycle awkward
[ -e pwned ] || [ -e "$C/pwned" ] && fail "a value was run as a command"
grep -q "dhcp server '8.8.8.8 ' removed" "$C/stderr" || fail "no message about '8.8.8.8 ' (not an address our config can hold)"

new_case "setup: every server moved from the top of the section: removal puts them back in place" servers-first
W_PRIMARY="45.90.28.0 45.90.30.0" W_SECONDARY="9.9.9.9" W_SERVER="" lifecycle servers-first

# ---------------------------------------------------------------- local NextDNS forwarders
# with_hdp FIXTURE: https-dns-proxy installed with that config, its init our stand-in
# (scripts/testdata/https-dns-proxy/fake-init), and started once before our install, as on a
# router where it already runs.
with_hdp() {
	cp "$ROOT/scripts/testdata/https-dns-proxy/$1" "$C/config/https-dns-proxy"
	cp "$ROOT/scripts/testdata/https-dns-proxy/fake-init" "$C/initd/https-dns-proxy"
	chmod 0755 "$C/initd/https-dns-proxy"
	hdp start
	grep -q 'initd dnsmasq restart' "$C/log" || fail "the https-dns-proxy stand-in changed nothing (the test would prove nothing)"
	: >"$C/log"
}

# hdp ACTION: run the https-dns-proxy stand-in as procd would.
hdp() {
	UCI_CONFIG_DIR="$C/config" NFO_INITD="$C/initd" $SH "$C/initd/https-dns-proxy" "$1"
}

# hdp_expected: $C/dhcp.expected is dhcp.before after https-dns-proxy's own restart (which
# our removal runs), played in a world of its own: what removal must give back.
hdp_expected() {
	mkdir -p "$C/control/config" "$C/control/initd"
	cp "$C/dhcp.orig" "$C/control/config/dhcp"
	cp "$C/hdp.orig" "$C/control/config/https-dns-proxy"
	# shellcheck disable=SC2016 # expanded by the stand-in, not here
	printf '#!/bin/sh\necho "initd dnsmasq $*" >>"$C/log"\n' >"$C/control/initd/dnsmasq"
	chmod 0755 "$C/control/initd/dnsmasq"
	ctl="$C/control" fake="$C/initd/https-dns-proxy"
	C="$ctl" UCI_CONFIG_DIR="$ctl/config" NFO_INITD="$ctl/initd" $SH "$fake" restart
	uci -q -c "$C/control/config" export dhcp >"$C/dhcp.expected"
}

# hdp_case FIXTURE PRIMARY SECONDARY: install over https-dns-proxy, play its start and stop,
# remove.
hdp_case() {
	with_hdp "$1"
	cp "$C/config/dhcp" "$C/dhcp.orig"
	cp "$C/config/https-dns-proxy" "$C/hdp.orig"
	export_of dhcp >"$C/dhcp.before"
	export_of https-dns-proxy >"$C/hdp.before"
	setup install
	expect_eq "$?" 0 "install exit status"
	expect_eq "$(cfg_get primary)" "$2" "primaries"
	expect_eq "$(cfg_get secondary)" "$3" "secondaries"
	expect_eq "$(dhcp_get '@dnsmasq[0].server')" "/mask.icloud.com/ /mask-h2.icloud.com/ /use-application-dns.net/" "dhcp servers left (its canaries)"
	for o in doh_server doh_backup_server doh_backup_noresolv; do
		dhcp_get "@dnsmasq[0].$o" >/dev/null && fail "dhcp still has $o (its stop would make server lines of it)"
	done
	expect_eq "$(uci -q -c "$C/config" get https-dns-proxy.config.dnsmasq_config_update)" "-" "dnsmasq_config_update"
	expect_eq "$(restarts)" 1 "dnsmasq restarts after install"
	no_reload
	mode_is "$C/config/https-dns-proxy" 600 "https-dns-proxy's config mode after our commit"

	# a second install (an upgrade) changes nothing
	snapshot once
	: >"$C/log"
	setup install
	snapshot twice
	same_snapshot once twice "a second install changed files"
	expect_eq "$(restarts)" 0 "dnsmasq restarts after a second install"

	# https-dns-proxy's own start (at boot, on WAN up, on its reload) and stop, after ours
	export_of dhcp >"$C/dhcp.installed"
	: >"$C/log"
	hdp start
	same_export dhcp "$C/dhcp.installed" "https-dns-proxy's start changed dhcp after our install"
	dhcp_get '@dnsmasq[0].server' | grep -q '#' && fail "a server line from https-dns-proxy lands ahead of ours"
	hdp stop
	same_export dhcp "$C/dhcp.installed" "https-dns-proxy's stop changed dhcp after our install"
	expect_eq "$(restarts)" 0 "dnsmasq restarts by https-dns-proxy after our install"

	: >"$C/log"
	setup remove
	expect_eq "$?" 0 "remove exit status"
	same_export https-dns-proxy "$C/hdp.before" "removal did not give back https-dns-proxy's config exactly"
	hdp_expected
	same_export dhcp "$C/dhcp.expected" "removal did not give back dhcp exactly (then https-dns-proxy's restart)"
	# its restart restarts dnsmasq again when it changes dhcp by itself (with no plain server
	# before it, every start after its first copies its own entries into its backup list):
	# exactly as often as in the world without us
	expect_log <<EOF
initd nextdns-failover stop
initd dnsmasq restart
$(cat "$C/control/log")
EOF
}

new_case "forwarders: https-dns-proxy to NextDNS becomes the primary; its start after ours adds nothing" stock
hdp_case nextdns "127.0.0.1#5053" "9.9.9.9 149.112.112.112"
grep -q "https-dns-proxy @https-dns-proxy\[0\] (dns.nextdns.io): NextDNS at 127.0.0.1#5053: a primary" "$C/stderr" ||
	fail "no line saying what was found and where it went"

new_case "forwarders: https-dns-proxy over a plain server (which it keeps in its backup)" stock
uci -c "$C/config" add_list 'dhcp.@dnsmasq[0].server=1.1.1.1'
uci -c "$C/config" commit dhcp
hdp_case nextdns "127.0.0.1#5053" "9.9.9.9 149.112.112.112"

new_case "forwarders: https-dns-proxy NextDNS + Cloudflare + Google: ports as it assigns them" stock
hdp_case nextdns-cloudflare "127.0.0.1#5054" "127.0.0.1#5053 ::1#5060 9.9.9.9 149.112.112.112"
for l in "@https-dns-proxy\[0\] (cloudflare-dns.com): not NextDNS, at 127.0.0.1#5053: a secondary" \
	"@https-dns-proxy\[1\] (dns.nextdns.io): NextDNS at 127.0.0.1#5054: a primary" \
	"@https-dns-proxy\[2\] (dns.google): not NextDNS, at ::1#5060: a secondary"; do
	grep -q "$l" "$C/stderr" || fail "no line: $l"
done

new_case "forwarders: https-dns-proxy installed after us: the next install takes dnsmasq back from it" stock
setup install
cp "$ROOT/scripts/testdata/https-dns-proxy/nextdns" "$C/config/https-dns-proxy"
cp "$ROOT/scripts/testdata/https-dns-proxy/fake-init" "$C/initd/https-dns-proxy"
chmod 0755 "$C/initd/https-dns-proxy"
export_of https-dns-proxy >"$C/hdp.before"
hdp start
dhcp_get '@dnsmasq[0].server' | grep -q '127.0.0.1#5053' || fail "the stand-in added no server line (the test would prove nothing)"
: >"$C/log"
setup install
expect_eq "$(cfg_get primary)" "45.90.28.0 45.90.30.0 127.0.0.1#5053" "primaries (added: not a first install)"
expect_eq "$(dhcp_get '@dnsmasq[0].server')" "/mask.icloud.com/ /mask-h2.icloud.com/ /use-application-dns.net/" "dhcp servers left"
expect_eq "$(uci -q -c "$C/config" get https-dns-proxy.config.dnsmasq_config_update)" "-" "dnsmasq_config_update"
expect_eq "$(restarts)" 1 "dnsmasq restarts"
: >"$C/log"
setup remove
same_export https-dns-proxy "$C/hdp.before" "removal did not give back https-dns-proxy's config exactly"
expect_eq "$(dhcp_get '@dnsmasq[0].doh_server')" "127.0.0.1#5053" "its doh_server back"
dhcp_get '@dnsmasq[0].server' | grep -q '127.0.0.1#5053' || fail "its server line is not back"
dhcp_get '@dnsmasq[0].serversfile' >/dev/null && fail "serversfile left"
grep -q 'initd https-dns-proxy restart' "$C/log" || fail "https-dns-proxy not restarted"

# stubby_case FIXTURE PRIMARY SECONDARY: the user added stubby to dhcp by hand, as its README says.
stubby_case() {
	cp "$ROOT/scripts/testdata/stubby/$1" "$C/config/stubby"
	uci -c "$C/config" add_list 'dhcp.@dnsmasq[0].server=127.0.0.1#5453'
	uci -c "$C/config" set 'dhcp.@dnsmasq[0].noresolv=1'
	uci -c "$C/config" commit dhcp
	export_of stubby >"$C/stubby.before"
	W_PRIMARY="$2" W_SECONDARY="$3" W_SERVER="" lifecycle "stubby $1"
	same_export stubby "$C/stubby.before" "stubby's config changed"
}

new_case "forwarders: stubby to NextDNS: its listen addresses become the primaries" stock
stubby_case nextdns "127.0.0.1#5453 0::1#5453" "9.9.9.9 149.112.112.112"
grep -q "stubby (2 resolvers, all NextDNS): NextDNS at 127.0.0.1#5453: a primary" "$C/stderr" ||
	fail "no line saying what was found and where it went"

new_case "forwarders: stubby to NextDNS and Quad9: secondaries" stock
stubby_case mixed "45.90.28.0 45.90.30.0" "127.0.0.1#5453 0::1#5453 9.9.9.9 149.112.112.112"
grep -q "stubby (3 resolvers, not all NextDNS): not NextDNS, at 127.0.0.1#5453: a secondary" "$C/stderr" ||
	fail "no line saying what was found and where it went"

new_case "forwarders: the NextDNS CLI's router setup: its port is the primary, its files are only explained" stock
printf 'profile abc123\nsetup-router true\nreport-client-info true\n' >"$C/nextdns.conf"
mkdir -p "$C/dnsmasq.d"
printf '# Configuration generated by NextDNS\nno-resolv\nserver=127.0.0.1#5342\nadd-mac\nadd-subnet=32,128\n' >"$C/dnsmasq.d/nextdns.conf"
cp "$C/nextdns.conf" "$C/cli.conf.before"
cp "$C/dnsmasq.d/nextdns.conf" "$C/cli.dnsmasq.before"
W_PRIMARY="127.0.0.1#5342" W_SECONDARY="9.9.9.9 149.112.112.112" W_SERVER="" lifecycle nextdns-cli
cmp -s "$C/nextdns.conf" "$C/cli.conf.before" || fail "its /etc/nextdns.conf was edited"
cmp -s "$C/dnsmasq.d/nextdns.conf" "$C/cli.dnsmasq.before" || fail "its /tmp/dnsmasq.d/nextdns.conf was edited"
grep -q "NextDNS CLI ($C/dnsmasq.d/nextdns.conf): NextDNS at 127.0.0.1#5342: a primary" "$C/stderr" ||
	fail "no line saying what was found and where it went"
grep -q "nextdns config set -setup-router=false -listen=127.0.0.1:5342" "$C/stderr" ||
	fail "no line saying exactly what to change"

new_case "forwarders: the NextDNS CLI with setup-router in its config only (not started yet)" stock
printf 'setup-router true\n' >"$C/nextdns.conf"
setup install
expect_eq "$(cfg_get primary)" "127.0.0.1#5342" "primaries"

for fx in stock realistic nextdns-user; do
	new_case "setup with the real binary: check finds nothing to warn about after install ($fx)" "$fx"
	REAL="$WORK/real/nextdns-failover"
	[ -x "$REAL" ] || {
		fail "no real binary (did cmd/nextdns-failover build?)"
		continue
	}
	uci -c "$C/config" set "nextdns-failover.settings.dhcp_config=$C/config/dhcp"
	uci -c "$C/config" commit nextdns-failover
	"$REAL" check -c "$C/config/nextdns-failover" >"$C/check.before" 2>&1
	REAL_BIN="$REAL" setup install
	expect_eq "$?" 0 "install exit status"
	"$REAL" check -c "$C/config/nextdns-failover" >"$C/check.after" 2>&1
	expect_eq "$?" 0 "check exit status after install"
	if grep -qi warning "$C/check.after"; then
		fail "check still warns after install:"
		grep -i warning "$C/check.after" | sed 's/^/    /'
	fi
	[ "$fx" = stock ] || grep -q "global server" "$C/check.before" ||
		fail "check did not warn about the global servers before install (the test would prove nothing)"
	grep -q '^server=' "$C/run/nextdns-failover/servers.conf" || fail "no server= lines in the servers-file"
	REAL_BIN="$REAL" setup remove
	expect_eq "$?" 0 "remove exit status"
done

new_case "setup: dhcp_config names another file" realistic
mkdir -p "$C/elsewhere"
mv "$C/config/dhcp" "$C/elsewhere/dhcp"
uci -c "$C/config" set "nextdns-failover.settings.dhcp_config=$C/elsewhere/dhcp"
uci -c "$C/config" commit nextdns-failover
setup install
expect_eq "$(uci -q -c "$C/elsewhere" get 'dhcp.@dnsmasq[0].serversfile')" "$C/run/nextdns-failover/servers.conf" "serversfile in the named file"
setup remove
expect_eq "$(uci -q -c "$C/elsewhere" get 'dhcp.@dnsmasq[0].serversfile')" "/tmp/dnsmasq.d/servers.conf" "serversfile restored in the named file"

new_case "setup: a config the binary rejects leaves dnsmasq and the config alone" nextdns-user
snapshot before
STUB_FAIL=render setup install
expect_eq "$?" 1 "install exit status"
snapshot after
same_snapshot before after "files changed although the config was rejected"
grep -q 'initd dnsmasq' "$C/log" && fail "dnsmasq reloaded although nothing changed"
grep -q "not valid" "$C/stderr" || fail "no message saying why"

new_case "setup: a value the user changed after install is theirs on removal" stock
setup install
uci -c "$C/config" set 'dhcp.@dnsmasq[0].noresolv=0'
uci -c "$C/config" commit dhcp
setup remove
expect_eq "$(dhcp_get '@dnsmasq[0].noresolv')" 0 "noresolv"
expect_eq "$(dhcp_get '@dnsmasq[0].serversfile')" "" "serversfile (absent before install)"

new_case "setup: a server added to dhcp after install is moved by the next run and restored" realistic
setup install
uci -c "$C/config" add_list 'dhcp.@dnsmasq[0].server=45.90.30.126'
uci -c "$C/config" commit dhcp
setup install
expect_eq "$(dhcp_get '@dnsmasq[0].server')" "/lan/192.168.1.1 /example.com/10.0.0.53" "dhcp servers"
expect_eq "$(cfg_get primary)" "45.90.28.0 45.90.30.0 45.90.30.126" "primaries (added to the user's)"
setup remove
expect_eq "$(dhcp_get '@dnsmasq[0].server')" "/lan/192.168.1.1 127.0.0.1#5353 /example.com/10.0.0.53 45.90.30.126" "dhcp servers after removal"

new_case "setup: no dnsmasq section: nothing changes" stock
uci -c "$C/config" set "nextdns-failover.settings.dnsmasq_instance=nosuch"
uci -c "$C/config" commit nextdns-failover
snapshot before
setup install
expect_eq "$?" 0 "install exit status"
snapshot after
same_snapshot before after "files changed without a dnsmasq section"

new_case "setup: removal without a prior install only stops the watchdog" stock
snapshot before
setup remove
expect_eq "$?" 0 "remove exit status"
snapshot after
same_snapshot before after "removal changed files it never installed"
expect_log <<EOF
initd nextdns-failover stop
EOF

new_case "setup: usage"
setup bogus
expect_eq "$?" 2 "exit status"

# ---------------------------------------------------------------- address classification
new_case "setup: NextDNS ranges and upstream syntax"
cat >"$WORK/classify.sh" <<'CLASSIFY'
NFO_LIB=1
. "$SETUP"
for a in "$@"; do
	k=other
	is_upstream "$a" || k=unusable
	[ "$k" = other ] && is_nextdns "$a" && k=nextdns
	echo "$a $k"
done
CLASSIFY
SETUP="$SETUP" $SH "$WORK/classify.sh" \
	45.90.28.0 45.90.28.255 45.90.30.7#5353 45.90.29.1 45.9.28.1 \
	2a07:a8c0:: 2a07:a8c0::ab:cd12 2A07:A8C1::1 2a07:a8c0:7fff::1 2a07:a8c0:8000::1 2a07:a8c1:ffff::1 2a07:a8c2::1 \
	9.9.9.9 127.0.0.1#53 ::1 1.2.3 1.2.3.256 1.2.3.4#0 1.2.3.4#65536 1.2.3.4#x dns.example 8.8.8.8@eth0 '#' >"$C/log"
expect_log <<EOF
45.90.28.0 nextdns
45.90.28.255 nextdns
45.90.30.7#5353 nextdns
45.90.29.1 other
45.9.28.1 other
2a07:a8c0:: nextdns
2a07:a8c0::ab:cd12 nextdns
2A07:A8C1::1 nextdns
2a07:a8c0:7fff::1 nextdns
2a07:a8c0:8000::1 other
2a07:a8c1:ffff::1 other
2a07:a8c2::1 other
9.9.9.9 other
127.0.0.1#53 other
::1 other
1.2.3 unusable
1.2.3.256 unusable
1.2.3.4#0 unusable
1.2.3.4#65536 unusable
1.2.3.4#x unusable
dns.example unusable
8.8.8.8@eth0 unusable
# unusable
EOF

echo "[$SH] $passes cases, $fails failures"
[ "$fails" = 0 ]
