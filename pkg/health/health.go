// Package health decides, from probe rounds, which upstreams are up and which side dnsmasq should
// use. It is pure: no clock, no sockets; the caller passes the time of each round.
package health

import (
	"fmt"
	"time"
)

// Tracker is one upstream's health with hysteresis: it turns down after FailAfter consecutive
// failed rounds and up again after RecoverAfter consecutive good ones, so a single lost probe
// changes nothing.
type Tracker struct {
	FailAfter, RecoverAfter int

	Up   bool // starts up: the watchdog starts from the healthy list
	Good int  // consecutive good rounds (0 after a failure)
	Bad  int  // consecutive failed rounds (0 after a success)
}

// NewTracker returns a tracker that starts up.
func NewTracker(failAfter, recoverAfter int) Tracker {
	return Tracker{FailAfter: failAfter, RecoverAfter: recoverAfter, Up: true}
}

// Observe records one round's result and reports whether Up changed.
func (t *Tracker) Observe(ok bool) bool {
	if ok {
		t.Good, t.Bad = t.Good+1, 0
		if !t.Up && t.Good >= t.RecoverAfter {
			t.Up = true
			return true
		}
		return false
	}
	t.Good, t.Bad = 0, t.Bad+1
	if t.Up && t.Bad >= t.FailAfter {
		t.Up = false
		return true
	}
	return false
}

// Unsettled reports whether the last round disagreed with the state: a failure while up or a
// success while down. Rounds then come at the fast interval until the question is settled.
func (t *Tracker) Unsettled() bool {
	return (t.Up && t.Bad > 0) || (!t.Up && t.Good > 0)
}

// State is which side dnsmasq is using.
type State string

// States the decider can be in.
const (
	// Healthy: NextDNS alone (availability) or NextDNS in health order (privacy).
	Healthy State = "healthy"
	// Failover: the backups first, then NextDNS.
	Failover State = "failover"
	// Offline: every upstream is down (the WAN is gone). The list is left as it was, and dnsmasq is
	// not signalled: switching would only empty its cache.
	Offline State = "offline"
	// Stopped: the watchdog is not running; the file holds the static strict-order list.
	Stopped State = "stopped"
)

// Hold-down tuning. A failover that follows a fail-back within flapWindow doubles the hold-down,
// up to maxHoldFactor times the configured one; after calmAfter without a failover it is reset.
// A link that flaps every few seconds so settles into one switch every few minutes, each of which
// empties dnsmasq's cache, instead of one every few seconds.
const (
	flapWindow    = 5 * time.Minute
	calmAfter     = 30 * time.Minute
	maxHoldFactor = 16
)

// Decider is the availability/privacy state machine over the trackers' verdicts.
type Decider struct {
	Privacy  bool
	HoldDown time.Duration // configured hold-down

	state    State // Healthy or Failover: the list in force (Offline is reported, not kept)
	offline  bool
	since    time.Time // when state (or offline) last changed
	failedAt time.Time // time of the last failover
	backAt   time.Time // time of the last fail-back
	hold     time.Duration
}

// NewDecider starts healthy at now.
func NewDecider(privacy bool, holdDown time.Duration, now time.Time) *Decider {
	return &Decider{Privacy: privacy, HoldDown: holdDown, state: Healthy, since: now, hold: holdDown}
}

// Decision is the outcome of one round.
type Decision struct {
	State   State     // Healthy, Failover or Offline
	List    State     // the list to write: Healthy or Failover (Offline keeps the previous one)
	Since   time.Time // when State began
	Changed bool      // State changed in this round
	Reason  string    // why, for the log and the status; set on every round
	Hold    time.Duration
}

// State is the decider's current state, Offline included.
func (d *Decider) State() State {
	if d.offline {
		return Offline
	}
	return d.state
}

// SetHoldDown puts a new configured hold-down in force (a config reload), forgetting any
// doubling.
func (d *Decider) SetHoldDown(h time.Duration) { d.HoldDown, d.hold = h, h }

// Hold is the hold-down now in force (doubled after flapping).
func (d *Decider) Hold() time.Duration { return d.hold }

// Decide takes the up/down verdicts of this round (primary and secondary, config order) and the
// time of the round, and returns what dnsmasq should use.
func (d *Decider) Decide(now time.Time, primaryUp, secondaryUp []bool) Decision {
	before := d.State()
	// Times come from a monotonic clock in the daemon, so the wall clock jumping (a router without
	// an RTC boots in 1970 and NTP fixes it later) never reaches here. A clock that goes backward
	// anyway restarts the hold-down from now instead of stretching it by the jump.
	if now.Before(d.failedAt) {
		d.failedAt = now
	}
	if now.Before(d.backAt) {
		d.backAt = now
	}
	anyP, anyS := count(primaryUp) > 0, count(secondaryUp) > 0
	if d.Privacy {
		anyS = false
	}
	var reason string
	switch {
	case !anyP && !anyS:
		d.offline = true
		if d.Privacy {
			reason = fmt.Sprintf("all %d NextDNS upstreams down; list unchanged", len(primaryUp))
		} else {
			reason = fmt.Sprintf("all %d NextDNS and %d backup upstreams down; list unchanged", len(primaryUp), len(secondaryUp))
		}
	case d.Privacy:
		d.offline = false
		reason = fmt.Sprintf("%d of %d NextDNS upstreams up", count(primaryUp), len(primaryUp))
	case d.state == Healthy && !anyP:
		d.offline = false
		if !d.backAt.IsZero() && now.Sub(d.backAt) < flapWindow {
			d.hold = min(d.hold*2, d.HoldDown*maxHoldFactor)
		}
		d.state, d.failedAt = Failover, now
		reason = fmt.Sprintf("all %d NextDNS upstreams down, %d of %d backups up; hold-down %s", len(primaryUp), count(secondaryUp), len(secondaryUp), d.hold)
	case d.state == Failover && anyP:
		d.offline = false
		if wait := d.hold - now.Sub(d.failedAt); wait > 0 {
			reason = fmt.Sprintf("%d of %d NextDNS upstreams up again; failing back in %s (hold-down %s)", count(primaryUp), len(primaryUp), wait.Round(time.Second), d.hold)
			break
		}
		d.state, d.backAt = Healthy, now
		reason = fmt.Sprintf("%d of %d NextDNS upstreams answering again, after %s failed over", count(primaryUp), len(primaryUp), now.Sub(d.failedAt).Round(time.Second))
	case d.state == Failover:
		d.offline = false
		reason = fmt.Sprintf("all NextDNS upstreams still down, %d of %d backups up", count(secondaryUp), len(secondaryUp))
	default:
		d.offline = false
		reason = fmt.Sprintf("%d of %d NextDNS upstreams up", count(primaryUp), len(primaryUp))
	}
	if d.state == Healthy && d.hold != d.HoldDown && now.Sub(d.failedAt) > calmAfter {
		d.hold = d.HoldDown
	}
	after := d.State()
	if after != before {
		d.since = now
	}
	return Decision{State: after, List: d.state, Since: d.since, Changed: after != before, Reason: reason, Hold: d.hold}
}

func count(up []bool) int {
	n := 0
	for _, u := range up {
		if u {
			n++
		}
	}
	return n
}

// Machine is the trackers of every upstream and the decider, fed one round at a time.
type Machine struct {
	Primary, Secondary []Tracker
	Decider            *Decider
}

// NewMachine returns a machine for nPrimary and nSecondary upstreams, all up, healthy at now.
func NewMachine(nPrimary, nSecondary, failAfter, recoverAfter int, privacy bool, holdDown time.Duration, now time.Time) *Machine {
	m := &Machine{Decider: NewDecider(privacy, holdDown, now)}
	for range nPrimary {
		m.Primary = append(m.Primary, NewTracker(failAfter, recoverAfter))
	}
	for range nSecondary {
		m.Secondary = append(m.Secondary, NewTracker(failAfter, recoverAfter))
	}
	return m
}

// StartFailedOver puts a machine that has seen no round yet into the failover state at now:
// for a daemon restarted (after a crash, say) while the servers-file holds the failover list,
// so that it keeps that list instead of going back to NextDNS and failing over again. The
// primaries count as down, and the hold-down counts as served: NextDNS only has to answer
// RecoverAfter rounds to get the traffic back.
func (m *Machine) StartFailedOver(now time.Time) {
	for i := range m.Primary {
		t := &m.Primary[i]
		t.Up, t.Good, t.Bad = false, 0, t.FailAfter
	}
	d := m.Decider
	d.state, d.offline, d.since, d.failedAt = Failover, false, now, now.Add(-d.hold)
}

// Round records one round's probe results (config order) and decides.
func (m *Machine) Round(now time.Time, primaryOK, secondaryOK []bool) Decision {
	return m.Decider.Decide(now, observe(m.Primary, primaryOK), observe(m.Secondary, secondaryOK))
}

func observe(ts []Tracker, ok []bool) []bool {
	up := make([]bool, len(ts))
	for i := range ts {
		if i < len(ok) {
			ts[i].Observe(ok[i])
		}
		up[i] = ts[i].Up
	}
	return up
}

// Unsettled reports whether the next round should come at the fast interval: a probe disagreed
// with its NextDNS upstream's state, or the decider is failed over or offline (waiting for a recovery).
func (m *Machine) Unsettled() bool {
	if m.Decider.State() != Healthy {
		return true
	}
	// Backups are only probed for speed while healthy: their doubts alone do not speed up the
	// rounds, which would cost NextDNS probes for nothing.
	for i := range m.Primary {
		if m.Primary[i].Unsettled() {
			return true
		}
	}
	return false
}

// PrimaryUp and SecondaryUp are the trackers' verdicts, config order.
func (m *Machine) PrimaryUp() []bool   { return ups(m.Primary) }
func (m *Machine) SecondaryUp() []bool { return ups(m.Secondary) }

func ups(ts []Tracker) []bool {
	up := make([]bool, len(ts))
	for i := range ts {
		up[i] = ts[i].Up
	}
	return up
}
