package dnsmasq

import (
	"fmt"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

// State is what the servers-file stands for; Render names it in the file's header.
type State string

const (
	// Healthy: NextDNS answers, so only NextDNS endpoints are listed.
	Healthy State = "healthy"
	// Failover: every NextDNS endpoint is down, so the backups that answer come first.
	Failover State = "failover"
	// Stopped: the watchdog is not running; the file holds a static strict-order setup.
	Stopped State = "stopped"
)

// States lists every valid State, in the order a person would read them.
func States() []State { return []State{Healthy, Failover, Stopped} }

// Valid reports whether st is one of Healthy, Failover and Stopped.
func (st State) Valid() bool {
	switch st {
	case Healthy, Failover, Stopped:
		return true
	}
	return false
}

// ParseState turns "healthy", "failover" or "stopped" into a State; anything else wraps
// ErrBadState.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fmt.Errorf("%w: %q (valid: healthy, failover, stopped)", ErrBadState, s)
	}
	return st, nil
}

// Plan decides dnsmasq's server list, first server first, for the state st. up reports
// whether an upstream currently answers; nil counts every upstream as up.
//
//   - availability, Healthy, and privacy in any state but Stopped: the primaries that are up
//     (all of them when none is), config order;
//   - availability, Failover: the secondaries that are up (all of them when none is), config
//     order, and no NextDNS endpoint;
//   - Stopped: the primaries in config order, then in availability mode the secondaries.
//
// A server that is down is left out while another one of its group is up: dnsmasq sends a
// client's resend to the server it first used while that server is listed (even last), so a
// dead server anywhere in the list loses the queries sent to it. An unknown state plans like
// Healthy, which never lists a backup. The list holds each upstream once and is never empty
// while s has a primary (and, for Failover, a secondary).
func Plan(s *config.Settings, st State, up func(config.Upstream) bool) []config.Upstream {
	if up == nil {
		up = func(config.Upstream) bool { return true }
	}
	var out []config.Upstream
	seen := make(map[config.Upstream]bool)
	add := func(us []config.Upstream, keep func(config.Upstream) bool) {
		for _, u := range us {
			if !seen[u] && keep(u) {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	all := func(config.Upstream) bool { return true }
	// upOrAll adds the up members of us, or all of them when none is up.
	upOrAll := func(us []config.Upstream) {
		add(us, up)
		if len(out) == 0 {
			add(us, all)
		}
	}

	switch {
	case st == Stopped:
		add(s.Primary, all)
		if s.Mode != config.Privacy {
			add(s.Secondary, all)
		}
	case st == Failover && s.Mode != config.Privacy && len(s.Secondary) > 0:
		upOrAll(s.Secondary)
	default:
		upOrAll(s.Primary)
	}
	return out
}
