// Package health decides, from probe rounds, which upstreams are up and which side dnsmasq should
// use. It is pure: no clock, no sockets; the caller passes the time of each round.
package health

import (
	"fmt"
	"time"
)

// Tracker is one upstream's health with hysteresis: it turns down after FailAfter failed
// observations and up again after RecoverAfter consecutive good ones, so a single lost probe
// changes nothing. Failures count only when at least MinGap apart (the fast interval): a reload's
// extra round, a moment after a failed one, is not the independent evidence FailAfter asks for.
// A confirmed failure (Down) turns it down at once.
type Tracker struct {
	FailAfter, RecoverAfter int
	MinGap                  time.Duration

	Up   bool // starts up: the watchdog starts from the healthy list
	Good int  // consecutive good observations (0 after a failure)
	Bad  int  // counted failures since the last success (0 after a success)

	// Suspect: passive evidence (client queries unanswered, a run of SERVFAIL) says it may have
	// stopped answering; a failed probe now confirms it. Cleared by any good observation.
	Suspect bool
	// Traffic: it answered client queries since the last round, so that round need not probe it.
	Traffic bool
	// LastProbe is when it was last probed; RTT is a smoothed round-trip time (probes and
	// client queries), for the confirmation timeout.
	LastProbe time.Time
	RTT       time.Duration
	// Misses: our own probes that failed since the last good observation. The passive observer
	// sees our probes too, so that many of its silent queries may be ours: only the rest is
	// evidence from clients.
	Misses int
	// Answers: our own probes answered since the last passive window, which the observer
	// counts as answered queries too: they are no client traffic, so they do not spare the
	// next round's probe.
	Answers int

	lastBad time.Time
}

// NewTracker returns a tracker that starts up.
func NewTracker(failAfter, recoverAfter int) Tracker {
	return Tracker{FailAfter: failAfter, RecoverAfter: recoverAfter, Up: true}
}

// Observe records one round's result and reports whether Up changed. It keeps no clock: a
// tracker fed with Observe counts every failure (MinGap is applied by ObserveAt).
func (t *Tracker) Observe(ok bool) bool { return t.ObserveAt(time.Time{}, ok) }

// ObserveAt records a result seen at now and reports whether Up changed. A failure less than
// MinGap after the last counted one resets Good but does not count again.
func (t *Tracker) ObserveAt(now time.Time, ok bool) bool {
	if ok {
		t.Good, t.Bad, t.Suspect, t.Misses = t.Good+1, 0, false, 0
		if !t.Up && t.Good >= t.RecoverAfter {
			t.Up = true
			return true
		}
		return false
	}
	t.Good = 0
	t.Misses++
	if t.Bad > 0 && !now.IsZero() && now.Sub(t.lastBad) < t.MinGap && !now.Before(t.lastBad) {
		return false
	}
	t.Bad, t.lastBad = t.Bad+1, now
	if t.Up && t.Bad >= t.FailAfter {
		t.Up = false
		return true
	}
	return false
}

// Down marks a confirmed failure: down at once. It reports whether Up changed.
func (t *Tracker) Down(now time.Time) bool {
	t.Good, t.Bad, t.lastBad, t.Suspect = 0, max(t.Bad+1, t.FailAfter), now, false
	changed := t.Up
	t.Up = false
	return changed
}

// Unsettled reports whether the last round disagreed with the state: a failure while up or a
// success while down. Rounds then come at the fast interval until the question is settled.
func (t *Tracker) Unsettled() bool {
	return (t.Up && (t.Bad > 0 || t.Suspect)) || (!t.Up && t.Good > 0)
}

// rtt folds one measured round-trip time into the smoothed one (weight 1/4: a single slow answer
// does not stretch the confirmation timeout much).
func (t *Tracker) rtt(d time.Duration) {
	if d <= 0 {
		return
	}
	if t.RTT == 0 {
		t.RTT = d
		return
	}
	t.RTT += (d - t.RTT) / 4
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
	return d.decide(now, primaryUp, secondaryUp, secondaryUp)
}

// decide is Decide with a second view of the backups: answering is the backups whose latest
// observation was good. Failing over needs one of those (backups that failed the very probes
// that found NextDNS down mean the router's own network is down: offline), and so does the
// hold-down: with every backup failing while NextDNS answers, it fails back at once.
func (d *Decider) decide(now time.Time, primaryUp, secondaryUp, answering []bool) Decision {
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
	case d.state == Healthy && !anyP && count(answering) == 0:
		d.offline = true
		reason = fmt.Sprintf("all %d NextDNS upstreams down and the %d backups failing too; list unchanged", len(primaryUp), len(secondaryUp))
	case d.state == Healthy && !anyP:
		d.offline = false
		if !d.backAt.IsZero() && now.Sub(d.backAt) < flapWindow {
			d.hold = min(d.hold*2, d.HoldDown*maxHoldFactor)
		}
		d.state, d.failedAt = Failover, now
		reason = fmt.Sprintf("all %d NextDNS upstreams down, %d of %d backups up; hold-down %s", len(primaryUp), count(secondaryUp), len(secondaryUp), d.hold)
	case d.state == Failover && anyP:
		d.offline = false
		// The hold-down never keeps dnsmasq on backups that fail while NextDNS answers.
		if wait := d.hold - now.Sub(d.failedAt); wait > 0 && count(answering) > 0 {
			reason = fmt.Sprintf("%d of %d NextDNS upstreams up again; failing back in %s (hold-down %s)", count(primaryUp), len(primaryUp), wait.Round(time.Second), d.hold)
			break
		}
		d.state, d.backAt = Healthy, now
		reason = fmt.Sprintf("%d of %d NextDNS upstreams answering again, after %s failed over", count(primaryUp), len(primaryUp), now.Sub(d.failedAt).Round(time.Second))
		if count(answering) == 0 {
			reason += "; the backups fail, so the hold-down is cut short"
		}
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

// Passive evidence and probe economy. Why each value is what it is:
const (
	// SuspectSilent distinct client queries unanswered past the timeout, with no reply from the
	// upstream in between, make it suspect. Under 10% random loss on a LAN sending 10 queries a
	// second, two such queries in a row come about once in 15 s (both lost, and the one query
	// in the 100 ms between their expiries lost too: 0.19^3 per query), three about once in
	// 7 minutes (0.19^5). A stopped upstream reaches three 200 ms after its first expiry; the
	// quiet rule below usually fires first anyway.
	SuspectSilent = 3
	// SuspectFailing SERVFAIL or REFUSED replies in a row make it suspect. A broken domain makes
	// one or two (a client and its retry); three in a row with no other answer between is a
	// resolver in trouble. It only costs a confirmation probe when wrong.
	SuspectFailing = 3
	// StandbyEvery: a healthy upstream that carries no client traffic and is not the one
	// dnsmasq asks first (the second NextDNS endpoint under strict-order, the backups while
	// NextDNS answers) is probed this often. The first NextDNS endpoint of an idle LAN is still
	// probed every interval, and everything is probed every round while anything is in doubt.
	StandbyEvery = time.Minute
	// ConfirmAttempts: a confirmation probe sends its query this many times within its short
	// timeout, so that random loss almost never fails one (10% loss each way: 0.19^5 = 0.025%),
	// while a dead upstream fails it in the same time.
	ConfirmAttempts = 5
	// minConfirm and confirmRTTs bound the confirmation probe's timeout: several smoothed RTTs,
	// never under 200 ms (a loaded link), never over the configured timeout. A confirmation must
	// end before a musl client resends (2.5 s after its query, itself unanswered for a timeout).
	minConfirm  = 200 * time.Millisecond
	confirmRTTs = 8
)

// Seen is one upstream's passive observations since the last look (from package passive).
type Seen struct {
	Answered  int           // client queries it answered in the window
	RTT       time.Duration // their mean round-trip time (0 when none)
	Silent    int           // distinct queries unanswered past the timeout since its last reply
	Failing   int           // SERVFAIL/REFUSED replies in a row
	LastReply time.Time     // zero when it never replied
}

// suspicious reports whether s is suspicious: enough unanswered queries with no reply between
// (SuspectSilent), a run of SERVFAIL/REFUSED (SuspectFailing), or one query unanswered past
// the timeout while nothing at all came back from the upstream for as long (the quiet rule: the
// first query into an outage after an idle LAN, and, on a busy LAN, the first expiry after a
// blackhole, 1 timeout after it began; a busy LAN with random loss always has a reply within a
// timeout).
func (s Seen) suspicious(now time.Time, timeout time.Duration) bool {
	return s.Silent >= SuspectSilent || s.Failing >= SuspectFailing ||
		(s.Silent >= 1 && (s.LastReply.IsZero() || now.Sub(s.LastReply) >= timeout))
}

// Obs is one upstream's result in a round.
type Obs int8

// Observations of a round.
const (
	NotProbed Obs = iota // skipped this round (no evidence either way)
	Good                 // answered a probe (or client queries)
	Bad                  // failed a probe
)

// Machine is the trackers of every upstream and the decider, fed one round at a time, plus
// passive evidence between rounds.
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

// SetMinGap sets every tracker's MinGap (the fast interval).
func (m *Machine) SetMinGap(g time.Duration) {
	for i := range m.Primary {
		m.Primary[i].MinGap = g
	}
	for i := range m.Secondary {
		m.Secondary[i].MinGap = g
	}
}

// Tracker returns upstream i's tracker: primaries first, then secondaries.
//
// Not inlined: inlined at its 16 call sites it cost the mips binary 0.4 KB of code (measured).
//
//go:noinline
func (m *Machine) Tracker(i int) *Tracker {
	if i < len(m.Primary) {
		return &m.Primary[i]
	}
	return &m.Secondary[i-len(m.Primary)]
}

// Len is the number of upstreams.
func (m *Machine) Len() int { return len(m.Primary) + len(m.Secondary) }

// StartFailedOver puts a machine that has seen no round yet into the failover state at now:
// for a daemon restarted (after a crash, say) while the servers-file holds the failover list,
// or a reload that changed the upstreams while failed over, so that it keeps that list instead
// of going back to NextDNS and failing over again. The primaries count as down, and the
// hold-down counts as served: NextDNS only has to answer RecoverAfter rounds to get the
// traffic back.
func (m *Machine) StartFailedOver(now time.Time) {
	for i := range m.Primary {
		t := &m.Primary[i]
		t.Up, t.Good, t.Bad = false, 0, t.FailAfter
	}
	d := m.Decider
	d.state, d.offline, d.since, d.failedAt = Failover, false, now, now.Add(-d.hold)
}

// Round records one round's probe results (config order, every upstream probed) and decides.
func (m *Machine) Round(now time.Time, primaryOK, secondaryOK []bool) Decision {
	obs := make([]Obs, 0, m.Len())
	for _, ok := range append(append([]bool{}, primaryOK...), secondaryOK...) {
		obs = append(obs, map[bool]Obs{true: Good, false: Bad}[ok])
	}
	return m.RoundOf(now, obs)
}

// RoundOf records one round (config order: primaries, then secondaries) and decides. An
// upstream that answered client queries since the last round (Traffic) counts as good when it
// was not probed. A failed probe of a suspect upstream confirms the suspicion: down at once.
func (m *Machine) RoundOf(now time.Time, obs []Obs) Decision {
	for i := range m.Len() {
		t := m.Tracker(i)
		o := NotProbed
		if i < len(obs) {
			o = obs[i]
		}
		if o != NotProbed {
			t.LastProbe = now
		}
		switch {
		case o == Bad && t.Suspect:
			t.Down(now)
		case o == Bad:
			t.ObserveAt(now, false)
		case o == Good || t.Traffic:
			t.ObserveAt(now, true)
		}
		if o == Good {
			t.Answers++
		}
		t.Traffic = false
	}
	return m.decide(now)
}

func (m *Machine) decide(now time.Time) Decision {
	answering := make([]bool, len(m.Secondary))
	for i, t := range m.Secondary {
		answering[i] = t.Up && t.Bad == 0
	}
	return m.Decider.decide(now, m.PrimaryUp(), m.SecondaryUp(), answering)
}

// Passive takes passive observations (config order; nil entries for upstreams not watched) at
// now and returns the upstreams to confirm with a probe at once: up ones that became suspect.
// An upstream already failing its probes (Bad > 0) needs no confirmation: the passive silence
// confirms the failed probe, and it is down at once; then changed is true and the caller
// decides with Decide. timeout is the configured probe timeout.
func (m *Machine) Passive(now time.Time, seen []*Seen, timeout time.Duration) (confirm []int, changed bool) {
	for i, s := range seen {
		if s == nil || i >= m.Len() {
			continue
		}
		t := m.Tracker(i)
		clientAnswers := s.Answered - t.Answers // the answered queries that are not our probes
		t.Answers = 0
		if clientAnswers > 0 {
			t.Traffic = true
		}
		if s.Answered > 0 {
			t.rtt(s.RTT)
		}
		clients := *s
		clients.Silent = max(0, s.Silent-t.Misses) // the silent queries that are not our probes
		if !t.Up || !clients.suspicious(now, timeout) {
			continue
		}
		if t.Bad > 0 {
			t.Down(now)
			changed = true
			continue
		}
		if !t.Suspect {
			t.Suspect = true
			confirm = append(confirm, i)
		}
	}
	return confirm, changed
}

// Confirm records the result of a confirmation probe of upstream i: a failure is down at once.
func (m *Machine) Confirm(now time.Time, i int, ok bool, rtt time.Duration) {
	t := m.Tracker(i)
	t.LastProbe = now
	if ok {
		t.Suspect, t.Misses = false, 0
		t.Answers++
		t.rtt(rtt)
		return
	}
	t.Misses++
	t.Down(now)
}

// Decide decides on the trackers as they stand (after Passive or Confirm).
func (m *Machine) Decide(now time.Time) Decision { return m.decide(now) }

// Probed records a probe's RTT of a good probe of upstream i, for the confirmation timeout.
func (m *Machine) Probed(i int, rtt time.Duration) { m.Tracker(i).rtt(rtt) }

// ConfirmTimeout is how long a confirmation probe of upstream i may wait: confirmRTTs smoothed
// RTTs, at least minConfirm, at most timeout.
func (m *Machine) ConfirmTimeout(i int, timeout time.Duration) time.Duration {
	return min(max(confirmRTTs*m.Tracker(i).RTT, minConfirm), timeout)
}

// Due says which upstreams a round at now should probe, config order. Everything is probed
// while anything is in doubt or the list is not the healthy one; otherwise an upstream that
// answered client queries since the last round is not probed (it counts as good), the first
// NextDNS endpoint that is up is probed every round (an idle LAN), and the others, standing by,
// every StandbyEvery.
func (m *Machine) Due(now time.Time) []bool {
	due := make([]bool, m.Len())
	doubt := m.Decider.State() != Healthy
	for i := range m.Primary {
		if m.Primary[i].Unsettled() {
			doubt = true
		}
	}
	first := -1
	for i := range m.Primary {
		if m.Primary[i].Up {
			first = i
			break
		}
	}
	for i := range due {
		t := m.Tracker(i)
		switch {
		case doubt, i < len(m.Primary) && !t.Up:
			due[i] = true
		case t.Traffic:
		case i == first:
			due[i] = true
		default:
			due[i] = t.LastProbe.IsZero() || now.Sub(t.LastProbe) >= StandbyEvery || now.Before(t.LastProbe)
		}
	}
	return due
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

// Not inlined: inlined at its call sites it cost the mips binary 1.8 KB of code (measured).
//
//go:noinline
func ups(ts []Tracker) []bool {
	up := make([]bool, len(ts))
	for i := range ts {
		up[i] = ts[i].Up
	}
	return up
}
