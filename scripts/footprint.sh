#!/bin/sh
# Measures the daemon's idle footprint on this machine (issue 6: "under 6 MB RSS and under 1 s
# of CPU per hour"): it builds the router binary as `make build` does, starts two fake
# upstreams on loopback (test/fakednsd) and, when /usr/sbin/dnsmasq exists, a dnsmasq with DNS
# off (--port=0) for the daemon to signal, then runs `nextdns-failover run` with the DEFAULT
# timings (the config names only the upstreams and the paths) for SECONDS (default 60), and
# prints from /proc/PID: VmRSS and VmHWM (status), and utime+stime (stat) with the CPU time
# per hour extrapolated twice: over the whole run, and over the steady part after the first
# 10 s (start-up excluded). GOGC and GOMEMLIMIT are passed through from the environment:
#
#   sh scripts/footprint.sh [SECONDS]
#   GOGC=50 GOMEMLIMIT=4MiB sh scripts/footprint.sh 120
#
# Only loopback is contacted: the upstreams are the fake servers on 127.0.0.2 and 127.0.0.3.
set -u
cd "$(dirname "$0")/.." || exit 1
SECONDS_RUN="${1:-60}"
case "$SECONDS_RUN" in '' | *[!0-9]*)
	echo "usage: sh scripts/footprint.sh [SECONDS]" >&2
	exit 2
	;;
esac
# CPU is sampled again after WARMUP seconds, to leave the start-up out of the steady rate.
WARMUP=10

WORK=$(mktemp -d) || exit 1
PIDS=""
cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# dnsmasq started as root reads the servers-file as nobody.
chmod 755 "$WORK"

echo "building..."
CGO_ENABLED=0 go build -trimpath -gcflags=all=-l -ldflags='-s -w' -o "$WORK/nextdns-failover" ./cmd/nextdns-failover || exit 1
CGO_ENABLED=0 go build -o "$WORK/fakednsd" ./test/fakednsd || exit 1

# shellcheck source=scripts/wait-file.sh
. scripts/wait-file.sh

"$WORK/fakednsd" -addr 127.0.0.2:0 -ready "$WORK/nextdns.addr" 2>>"$WORK/fakednsd.log" &
PIDS="$PIDS $!"
wait_file "$WORK/nextdns.addr" $! footprint
"$WORK/fakednsd" -addr 127.0.0.3:0 -ready "$WORK/backup.addr" 2>>"$WORK/fakednsd.log" &
PIDS="$PIDS $!"
wait_file "$WORK/backup.addr" $! footprint

DNSMASQ=none
if [ -x /usr/sbin/dnsmasq ]; then
	/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
		--servers-file="$WORK/servers.conf" --pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/dnsmasq.log" &
	PIDS="$PIDS $!"
	wait_file "$WORK/dnsmasq.pid" $! footprint
	DNSMASQ="pid $(cat "$WORK/dnsmasq.pid")"
fi

cat >"$WORK/config" <<EOF
config settings 'settings'
	list primary '$(cat "$WORK/nextdns.addr")'
	list secondary '$(cat "$WORK/backup.addr")'
	option servers_file '$WORK/servers.conf'
	option status_file '$WORK/status.json'
	option pid_file '$WORK/dnsmasq.pid'
	option dhcp_config '$WORK/dhcp'
EOF

"$WORK/nextdns-failover" run -c "$WORK/config" -hooks "$WORK/hooks" 2>"$WORK/daemon.log" &
DAEMON=$!
PIDS="$DAEMON $PIDS"
wait_file "$WORK/status.json" "$DAEMON" footprint

# cpu_ticks PID: utime+stime in clock ticks. /proc/PID/stat is "PID (COMM) STATE ..." where
# COMM may hold spaces: fields are counted after the last ") ", from STATE (field 3);
# utime and stime are fields 14 and 15.
cpu_ticks() {
	stat=$(cat "/proc/$1/stat") || exit 1
	# shellcheck disable=SC2086 # split into fields on purpose
	set -- ${stat##*) }
	echo $((${12} + ${13}))
}

# cpu_ns PID: time on CPU in ns, summed over the process's threads from /proc/PID/task/*/schedstat
# (first field); empty when the kernel does not publish it. Finer than the clock ticks of stat.
cpu_ns() {
	cat "/proc/$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { if (NR) printf "%.0f\n", s }'
}

# kib PID FIELD: a "FIELD:   1234 kB" line of /proc/PID/status, in KiB.
kib() {
	sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"
}

HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
echo "running the daemon (pid $DAEMON) for ${SECONDS_RUN}s with the default timings; dnsmasq: $DNSMASQ; GOGC=${GOGC:-default} GOMEMLIMIT=${GOMEMLIMIT:-default}"
warm=""
warm_ns=""
if [ "$SECONDS_RUN" -gt "$WARMUP" ]; then
	sleep "$WARMUP"
	warm=$(cpu_ticks "$DAEMON")
	warm_ns=$(cpu_ns "$DAEMON")
	sleep $((SECONDS_RUN - WARMUP))
else
	sleep "$SECONDS_RUN"
fi
if ! kill -0 "$DAEMON" 2>/dev/null; then
	echo "footprint: the daemon exited:" >&2
	cat "$WORK/daemon.log" >&2
	exit 1
fi
ticks=$(cpu_ticks "$DAEMON")
ns=$(cpu_ns "$DAEMON")
rss=$(kib "$DAEMON" VmRSS)
hwm=$(kib "$DAEMON" VmHWM)
anon=$(kib "$DAEMON" RssAnon)
file=$(kib "$DAEMON" RssFile)
rounds=$(sed -n 's/.*"rounds": *\([0-9]*\).*/\1/p' "$WORK/status.json")
state=$(sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p' "$WORK/status.json" | head -n 1)

# per_hour TICKS SECONDS: CPU seconds per hour, three decimals, in integer arithmetic.
per_hour() {
	ms=$(($1 * 1000 * 3600 / HZ / $2))
	printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# per_hour_ns NS SECONDS: the same from nanoseconds.
per_hour_ns() {
	awk -v ns="$1" -v s="$2" 'BEGIN { printf "%.3f", ns * 3600 / s / 1e9 }'
}

echo "binary:       $(wc -c <"$WORK/nextdns-failover") bytes"
echo "state:        $state after $rounds rounds"
echo "VmRSS:        $rss KiB (RssAnon $anon KiB: heap, stacks, runtime; RssFile $file KiB: the binary's pages)"
echo "VmHWM:        $hwm KiB (peak)"
echo "CPU:          $ticks ticks of 1/$HZ s (utime+stime) in ${SECONDS_RUN}s"
echo "CPU per hour: $(per_hour "$ticks" "$SECONDS_RUN") s (whole run, start-up included)"
if [ -n "$warm" ]; then
	steady=$((SECONDS_RUN - WARMUP))
	echo "CPU per hour: $(per_hour $((ticks - warm)) "$steady") s (steady: the last ${steady}s; one tick more or less is $(per_hour 1 "$steady") s)"
fi
if [ -n "$ns" ]; then
	echo "CPU (schedstat): $(awk -v ns="$ns" 'BEGIN { printf "%.1f", ns / 1e6 }') ms in ${SECONDS_RUN}s: $(per_hour_ns "$ns" "$SECONDS_RUN") s per hour (whole run)"
	if [ -n "$warm_ns" ]; then
		echo "CPU (schedstat): $(per_hour_ns $((ns - warm_ns)) "$steady") s per hour (steady: the last ${steady}s)"
	fi
fi
problems=$(grep -c -v -e '^started:' -e '^servers-file' "$WORK/daemon.log")
if [ "$problems" -gt 0 ]; then
	echo "daemon log (other than start-up):"
	sed 's/^/  /' "$WORK/daemon.log"
fi
