package dnsmasq

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

func ups(t testing.TB, ss ...string) []config.Upstream {
	t.Helper()
	var out []config.Upstream
	for _, s := range ss {
		addr, port, ok := strings.Cut(s, "#")
		if !ok {
			port = "53"
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			t.Fatalf("bad test upstream %q: %v", s, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			t.Fatalf("bad test upstream %q: %v", s, err)
		}
		out = append(out, config.Upstream{AddrPort: netip.AddrPortFrom(a, uint16(p))})
	}
	return out
}

func names(us []config.Upstream) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

const (
	nd1  = "45.90.28.0"
	nd2  = "45.90.30.0"
	nd6  = "2a07:a8c0::ab:cd12"
	q1   = "9.9.9.9"
	q2   = "149.112.112.112"
	prox = "127.0.0.1#5353"
)

func TestPlan(t *testing.T) {
	avail := &config.Settings{Mode: config.Availability, Primary: ups(t, nd1, nd2, nd6), Secondary: ups(t, q1, q2)}
	privacy := &config.Settings{Mode: config.Privacy, Primary: ups(t, prox, nd1, nd2)}
	downSet := func(down ...string) func(config.Upstream) bool {
		return func(u config.Upstream) bool { return !slices.Contains(down, u.String()) }
	}
	tests := []struct {
		name string
		s    *config.Settings
		st   State
		up   func(config.Upstream) bool
		want []string
	}{
		{"healthy lists NextDNS alone", avail, Healthy, nil, []string{nd1, nd2, nd6}},
		{"healthy leaves a down primary out while another is up", avail, Healthy, downSet(nd1), []string{nd2, nd6}},
		{"healthy with every primary down still lists them, never a backup", avail, Healthy, downSet(nd1, nd2, nd6), []string{nd1, nd2, nd6}},
		{"failover lists the backups and no NextDNS endpoint", avail, Failover, downSet(nd1, nd2, nd6), []string{q1, q2}},
		{"failover skips a down backup", avail, Failover, downSet(nd1, nd2, nd6, q1), []string{q2}},
		{"failover with every backup down lists them all (a forced secondary)", avail, Failover, downSet(nd1, nd2, nd6, q1, q2), []string{q1, q2}},
		{"failover never lists a recovered primary (fail-back is the decider's)", avail, Failover, downSet(nd1, nd2), []string{q1, q2}},
		{"stopped is the static strict-order setup", avail, Stopped, downSet(nd1), []string{nd1, nd2, nd6, q1, q2}},
		{"stopped ignores health", avail, Stopped, downSet(nd1, nd2, nd6, q1, q2), []string{nd1, nd2, nd6, q1, q2}},
		{"privacy healthy", privacy, Healthy, nil, []string{prox, nd1, nd2}},
		{"privacy leaves a down endpoint out", privacy, Healthy, downSet(prox), []string{nd1, nd2}},
		{"privacy never fails over to anything else", privacy, Failover, downSet(prox, nd1, nd2), []string{prox, nd1, nd2}},
		{"privacy stopped lists the primaries only", &config.Settings{Mode: config.Privacy, Primary: ups(t, nd1), Secondary: ups(t, q1)}, Stopped, nil, []string{nd1}},
		{"privacy with a stray secondary in failover ignores it", &config.Settings{Mode: config.Privacy, Primary: ups(t, nd1), Secondary: ups(t, q1)}, Failover, downSet(nd1), []string{nd1}},
		{"an upstream listed twice appears once", &config.Settings{Mode: config.Availability, Primary: ups(t, nd1, nd1), Secondary: ups(t, nd1, q1)}, Failover, nil, []string{nd1, q1}},
		{"an unknown state plans like healthy", avail, State("bogus"), nil, []string{nd1, nd2, nd6}},
		{"no primaries, healthy", &config.Settings{Mode: config.Availability}, Healthy, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(Plan(tt.s, tt.st, tt.up))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Plan(%s) = %v, want %v", tt.st, got, tt.want)
			}
		})
	}
}

// TestPlanNeverEmpty walks every subset of down upstreams in every state and mode: with a
// primary configured, the list is never empty and holds no backup in privacy mode.
func TestPlanNeverEmpty(t *testing.T) {
	for _, mode := range []config.Mode{config.Availability, config.Privacy} {
		s := &config.Settings{Mode: mode, Primary: ups(t, nd1, nd2), Secondary: ups(t, q1, q2)}
		all := append(slices.Clone(s.Primary), s.Secondary...)
		for mask := 0; mask < 1<<len(all); mask++ {
			up := func(u config.Upstream) bool {
				i := slices.Index(all, u)
				return mask&(1<<i) == 0
			}
			for _, st := range States() {
				got := Plan(s, st, up)
				if len(got) == 0 {
					t.Fatalf("%s %s mask %b: empty plan", mode, st, mask)
				}
				if mode == config.Privacy {
					for _, u := range got {
						if slices.Contains(s.Secondary, u) {
							t.Fatalf("%s %s mask %b: backup %s listed in privacy mode", mode, st, mask, u)
						}
					}
				}
			}
		}
	}
}

func TestParseState(t *testing.T) {
	for _, st := range States() {
		got, err := ParseState(string(st))
		if err != nil || got != st {
			t.Errorf("ParseState(%q) = %q, %v", st, got, err)
		}
	}
	if _, err := ParseState("Healthy"); err == nil || !strings.Contains(err.Error(), "healthy, failover, stopped") {
		t.Errorf("ParseState(Healthy) error = %v, want one listing the valid states", err)
	}
}
