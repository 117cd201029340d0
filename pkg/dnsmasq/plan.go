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
//   - availability, Healthy: the primaries only, the up ones first (each group in config order);
//   - availability, Failover: the up secondaries, then the primaries (up ones first);
//   - privacy, any state but Stopped: the primaries only, up ones first;
//   - Stopped: the primaries in config order, then in availability mode the secondaries.
//
// An unknown state plans like Healthy, which never lists a backup. The list holds each
// upstream once and is never empty while s has a primary.
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
	isUp := up
	isDown := func(u config.Upstream) bool { return !up(u) }
	all := func(config.Upstream) bool { return true }

	switch {
	case st == Stopped:
		add(s.Primary, all)
		if s.Mode != config.Privacy {
			add(s.Secondary, all)
		}
	case st == Failover && s.Mode != config.Privacy:
		add(s.Secondary, isUp)
		add(s.Primary, isUp)
		add(s.Primary, isDown)
	default:
		add(s.Primary, isUp)
		add(s.Primary, isDown)
	}
	return out
}
