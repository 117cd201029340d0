package status

import (
	"fmt"
	"strings"
)

// WriteMetrics writes st in Prometheus text format to path (atomically), for the textfile
// collector of prometheus-node-exporter-lua. Names start with nextdns_failover_.
func WriteMetrics(path string, st *Status) error {
	return WriteFileAtomic(path, []byte(Metrics(st)))
}

// Metrics renders st in Prometheus text exposition format.
func Metrics(st *Status) string {
	var b strings.Builder
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP nextdns_failover_%s %s\n# TYPE nextdns_failover_%s %s\n", name, help, name, typ)
	}
	metric("state", "gauge", "1 for the current state (healthy, failover, offline, stopped, forced-primary, forced-secondary).")
	for _, s := range []string{"healthy", "failover", "offline", "stopped", "forced-primary", "forced-secondary"} {
		fmt.Fprintf(&b, "nextdns_failover_state{state=%q} %d\n", s, b2i(st.State == s))
	}
	metric("passive", "gauge", "1 while dnsmasq's own queries are watched as health evidence.")
	fmt.Fprintf(&b, "nextdns_failover_passive %d\n", b2i(st.Passive == "on"))
	metric("problems", "gauge", "Standing problems of the setup (see status).")
	fmt.Fprintf(&b, "nextdns_failover_problems %d\n", len(st.Problems))
	metric("state_since_seconds", "gauge", "Unix time the current state began.")
	fmt.Fprintf(&b, "nextdns_failover_state_since_seconds %d\n", st.Since.Unix())
	metric("upstream_up", "gauge", "1 when the upstream counts as up.")
	for _, u := range st.Upstreams {
		fmt.Fprintf(&b, "nextdns_failover_upstream_up{upstream=%q,role=%q} %d\n", u.Address, u.Role, b2i(u.Up))
	}
	metric("upstream_rtt_seconds", "gauge", "Round-trip time of the upstream's last good probe.")
	for _, u := range st.Upstreams {
		fmt.Fprintf(&b, "nextdns_failover_upstream_rtt_seconds{upstream=%q,role=%q} %g\n", u.Address, u.Role, float64(u.RTT)/1e9)
	}
	c := st.Counters
	for _, m := range []struct {
		name, help string
		v          uint64
	}{
		{"rounds_total", "Probe rounds.", c.Rounds},
		{"probes_total", "Probes sent (one per upstream per round).", c.Probes},
		{"probe_errors_total", "Probes that failed.", c.ProbeErrors},
		{"confirms_total", "Confirmation probes sent on passive evidence of a failure.", c.Confirms},
		{"failovers_total", "Failovers to the backups.", c.Failovers},
		{"failbacks_total", "Fail-backs to NextDNS.", c.Failbacks},
		{"switches_total", "Servers-file rewrites (each empties dnsmasq's cache).", c.Switches},
		{"signals_total", "SIGHUPs sent to dnsmasq.", c.Signals},
		{"signal_errors_total", "SIGHUPs that could not be sent.", c.SignalErrors},
		{"write_errors_total", "Failed writes of the servers-file.", c.WriteErrors},
	} {
		metric(m.name, "counter", m.help)
		fmt.Fprintf(&b, "nextdns_failover_%s %d\n", m.name, m.v)
	}
	return b.String()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
