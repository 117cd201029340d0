package health

import (
	"strings"
	"testing"
	"time"
)

// step is one probe round: the results per upstream (P = primary ok, p = primary failed,
// S/s likewise for secondaries), and the expected state after it.
type step struct {
	dt   time.Duration // time since the previous round
	res  string        // e.g. "Pp S": primaries then secondaries, space separated
	want State
}

func run(t *testing.T, privacy bool, hold time.Duration, steps []step) *Machine {
	t.Helper()
	t0 := time.Unix(1e9, 0)
	first := strings.Fields(steps[0].res)
	ns := 0
	if len(first) > 1 {
		ns = len(first[1])
	}
	m := NewMachine(len(first[0]), ns, 2, 3, privacy, hold, t0)
	now := t0
	for i, s := range steps {
		now = now.Add(s.dt)
		f := strings.Fields(s.res)
		var p, sec []bool
		for _, c := range f[0] {
			p = append(p, c == 'P')
		}
		if len(f) > 1 {
			for _, c := range f[1] {
				sec = append(sec, c == 'S')
			}
		}
		d := m.Round(now, p, sec)
		if d.State != s.want {
			t.Fatalf("round %d (%q at +%s): state %s, want %s (%s)", i+1, s.res, now.Sub(t0), d.State, s.want, d.Reason)
		}
	}
	return m
}

func repeat(n int, s step) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func cat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const sec = time.Second

func TestAvailability(t *testing.T) {
	cases := []struct {
		name  string
		hold  time.Duration
		steps []step
	}{
		{"healthy stays healthy", 30 * sec, repeat(10, step{10 * sec, "PP SS", Healthy})},
		{"one primary down is not a failover", 30 * sec, repeat(10, step{10 * sec, "pP SS", Healthy})},
		{"one failed round among good ones (packet loss) changes nothing", 30 * sec, cat(
			repeat(3, step{10 * sec, "PP SS", Healthy}),
			[]step{{10 * sec, "pp SS", Healthy}},
			repeat(3, step{2 * sec, "PP SS", Healthy}),
			[]step{{10 * sec, "pp SS", Healthy}},
			[]step{{2 * sec, "PP SS", Healthy}},
		)},
		{"outage fails over after fail_after rounds, back after recovery and hold-down", 30 * sec, cat(
			[]step{{10 * sec, "PP SS", Healthy}},
			[]step{{10 * sec, "pp SS", Healthy}},
			[]step{{2 * sec, "pp SS", Failover}},
			repeat(12, step{2 * sec, "pp SS", Failover}),
			// failed over at +22 s; primaries back at +48 s: 3 good rounds recover them at +52 s,
			// when the hold-down (30 s) has just passed.
			[]step{{2 * sec, "PP SS", Failover}, {2 * sec, "PP SS", Failover}, {2 * sec, "PP SS", Healthy}},
		)},
		{"hold-down delays the fail-back", 30 * sec, cat(
			[]step{{10 * sec, "pp SS", Healthy}, {2 * sec, "pp SS", Failover}},
			// back at once: recovered after 3 rounds (6 s) but hold-down runs until 30 s after failover
			repeat(11, step{2 * sec, "PP SS", Failover}),
			[]step{{8 * sec, "PP SS", Healthy}},
		)},
		{"everything down is offline and keeps the list", 30 * sec, cat(
			[]step{{10 * sec, "pp ss", Healthy}, {2 * sec, "pp ss", Offline}},
			repeat(5, step{2 * sec, "pp ss", Offline}),
			// the WAN returns: NextDNS answers; it never went to the backups
			[]step{{2 * sec, "PP SS", Offline}, {2 * sec, "PP SS", Offline}, {2 * sec, "PP SS", Healthy}},
		)},
		{"backups die while failed over: offline, then failed over again", 30 * sec, cat(
			[]step{{10 * sec, "pp SS", Healthy}, {2 * sec, "pp SS", Failover}},
			[]step{{2 * sec, "pp ss", Failover}, {2 * sec, "pp ss", Offline}},
			[]step{{2 * sec, "pp SS", Offline}, {2 * sec, "pp SS", Offline}, {2 * sec, "pp SS", Failover}},
		)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { run(t, false, c.hold, c.steps) })
	}
}

func TestFlappingDoublesHoldDown(t *testing.T) {
	hold := 10 * sec
	t0 := time.Unix(1e9, 0)
	m := NewMachine(1, 1, 1, 1, false, hold, t0)
	now := t0
	var switches int
	var holds []time.Duration
	// NextDNS flaps: down 3 s, up 3 s, for 10 minutes, probed every second.
	for i := 0; i < 600; i++ {
		now = now.Add(sec)
		ok := (i/3)%2 == 1
		d := m.Round(now, []bool{ok}, []bool{true})
		if d.Changed {
			switches++
			if d.State == Failover {
				holds = append(holds, d.Hold)
			}
		}
	}
	if holds[0] != hold || holds[1] != 2*hold || holds[len(holds)-1] != hold*maxHoldFactor {
		t.Errorf("hold-downs %v: want %s, doubling, capped at %s", holds, hold, hold*maxHoldFactor)
	}
	// Without the doubling a 10 s hold-down would switch ~100 times in 10 minutes.
	if switches > 20 {
		t.Errorf("%d switches in 10 minutes of flapping; the hold-down should keep it under 20", switches)
	}
	// A long calm spell relaxes the hold-down again.
	for i := 0; i < 40*60; i++ {
		now = now.Add(sec)
		m.Round(now, []bool{true}, []bool{true})
	}
	if m.Decider.Hold() != hold {
		t.Errorf("hold-down %s after 40 calm minutes, want %s", m.Decider.Hold(), hold)
	}
}

func TestPrivacyNeverFailsOver(t *testing.T) {
	run(t, true, 30*sec, cat(
		[]step{{10 * sec, "PP", Healthy}, {10 * sec, "pP", Healthy}, {2 * sec, "pP", Healthy}},
		[]step{{2 * sec, "pp", Healthy}, {2 * sec, "pp", Offline}},
		repeat(5, step{2 * sec, "pp", Offline}),
		[]step{{2 * sec, "Pp", Offline}, {2 * sec, "Pp", Offline}, {2 * sec, "Pp", Healthy}},
	))
}

func TestUnsettledPacesRounds(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	m := NewMachine(2, 1, 2, 3, false, 30*sec, t0)
	if m.Unsettled() {
		t.Fatal("a fresh machine is settled")
	}
	m.Round(t0.Add(sec), []bool{false, true}, []bool{true})
	if !m.Unsettled() {
		t.Error("after a failed primary probe the next round must come fast")
	}
	m.Round(t0.Add(2*sec), []bool{false, true}, []bool{true})
	if m.Unsettled() {
		t.Error("a primary settled down (the other up) needs no fast rounds")
	}
	m.Round(t0.Add(3*sec), []bool{true, true}, []bool{false})
	if !m.Unsettled() {
		t.Error("a down primary answering again must be confirmed fast")
	}
}

func TestTrackerHysteresis(t *testing.T) {
	tr := NewTracker(3, 2)
	seq := []struct {
		ok   bool
		up   bool
		flip bool
	}{{false, true, false}, {false, true, false}, {true, true, false}, {false, true, false}, {false, true, false}, {false, false, true}, {true, false, false}, {false, false, false}, {true, false, false}, {true, true, true}}
	for i, s := range seq {
		if flip := tr.Observe(s.ok); flip != s.flip || tr.Up != s.up {
			t.Fatalf("observation %d (ok=%v): up=%v flip=%v, want up=%v flip=%v", i+1, s.ok, tr.Up, flip, s.up, s.flip)
		}
	}
}

func TestClockJumps(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	// Backward by ten years while failed over: the hold-down restarts from the jump, it does not
	// last ten years.
	m := NewMachine(1, 1, 1, 1, false, 30*sec, t0)
	m.Round(t0.Add(sec), []bool{false}, []bool{true})
	back := t0.Add(-10 * 365 * 24 * time.Hour)
	if d := m.Round(back, []bool{true}, []bool{true}); d.State != Failover {
		t.Fatalf("failed back at once after a backward jump: %s", d.State)
	}
	if d := m.Round(back.Add(31*sec), []bool{true}, []bool{true}); d.State != Healthy {
		t.Errorf("hold-down did not end 31 s after the backward jump: %s (%s)", d.State, d.Reason)
	}
	// Forward by ten years while healthy: failover still takes fail_after failed rounds.
	m = NewMachine(1, 1, 2, 1, false, 30*sec, t0)
	fwd := t0.Add(10 * 365 * 24 * time.Hour)
	if d := m.Round(fwd, []bool{false}, []bool{true}); d.State != Healthy {
		t.Errorf("a forward jump with one failed round failed over: %s", d.State)
	}
}

func TestFailuresCountOnlyFastIntervalApart(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	tr := NewTracker(2, 3)
	tr.MinGap = sec
	tr.ObserveAt(t0, false)
	if tr.ObserveAt(t0.Add(100*time.Millisecond), false) || !tr.Up || tr.Bad != 1 {
		t.Fatalf("a second failure 100 ms later counted: %+v", tr)
	}
	if !tr.ObserveAt(t0.Add(sec), false) || tr.Up {
		t.Fatalf("a failure 1 s later must count: %+v", tr)
	}
}

func TestSuspicion(t *testing.T) {
	now := time.Unix(1e9, 0)
	cases := []struct {
		name string
		seen Seen
		want bool
	}{
		{"answers only", Seen{Answered: 30, LastReply: now}, false},
		{"one lost query among answers (random loss)", Seen{Answered: 30, Silent: 1, LastReply: now.Add(-50 * time.Millisecond)}, false},
		{"two silent in a row", Seen{Silent: SuspectSilent, LastReply: now.Add(-1100 * time.Millisecond)}, true},
		{"one silent on a quiet LAN, nothing back for a timeout", Seen{Silent: 1, LastReply: now.Add(-30 * sec)}, true},
		{"one silent, never any reply", Seen{Silent: 1}, true},
		{"two SERVFAIL", Seen{Failing: SuspectFailing - 1, LastReply: now}, false},
		{"a run of SERVFAIL", Seen{Failing: SuspectFailing, LastReply: now}, true},
	}
	for _, c := range cases {
		if got := c.seen.suspicious(now, sec); got != c.want {
			t.Errorf("%s: suspicious = %v", c.name, got)
		}
	}
}

func TestPassiveConfirmation(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	m := NewMachine(2, 1, 2, 3, false, 30*sec, t0)
	m.SetMinGap(sec)
	silent := &Seen{Silent: 2, LastReply: t0}
	confirm, changed := m.Passive(t0.Add(2*sec), []*Seen{silent, nil, nil}, sec)
	if len(confirm) != 1 || confirm[0] != 0 || changed || !m.Primary[0].Suspect {
		t.Fatalf("confirm %v, changed %v: want upstream 0 confirmed", confirm, changed)
	}
	if got := m.ConfirmTimeout(0, sec); got != minConfirm {
		t.Errorf("confirm timeout %s without an RTT, want %s", got, minConfirm)
	}
	m.Confirm(t0.Add(2200*time.Millisecond), 0, false, 0)
	m.Confirm(t0.Add(2200*time.Millisecond), 1, false, 0)
	d := m.Decide(t0.Add(2200 * time.Millisecond))
	if d.State != Failover {
		t.Fatalf("after failed confirmations: %s (%s)", d.State, d.Reason)
	}

	// A failed round probe plus passive silence is a confirmation by itself; the silence of
	// our own failed probe (the observer sees it too) is not.
	m = NewMachine(1, 1, 2, 3, false, 30*sec, t0)
	m.RoundOf(t0, []Obs{Bad, Good})
	if _, changed := m.Passive(t0.Add(sec), []*Seen{{Silent: 1}, nil}, sec); changed || !m.Primary[0].Up {
		t.Errorf("the silence of our own lost probe took the primary down")
	}
	if _, changed := m.Passive(t0.Add(sec), []*Seen{{Silent: 2}, nil}, sec); !changed || m.Primary[0].Up {
		t.Errorf("a client's silence after a failed probe did not take the primary down")
	}
	// A good confirmation clears the suspicion; the RTT shapes the next timeout.
	m = NewMachine(1, 1, 2, 3, false, 30*sec, t0)
	m.Passive(t0, []*Seen{{Silent: 2}, nil}, sec)
	m.Confirm(t0, 0, true, 50*time.Millisecond)
	if m.Primary[0].Suspect || !m.Primary[0].Up || m.ConfirmTimeout(0, sec) != 400*time.Millisecond {
		t.Errorf("after a good confirmation: %+v, timeout %s", m.Primary[0], m.ConfirmTimeout(0, sec))
	}
	if m.ConfirmTimeout(0, 300*time.Millisecond) != 300*time.Millisecond {
		t.Errorf("the confirmation timeout must not exceed the timeout")
	}
}

func TestFailoverNeedsABackupAnsweringNow(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	// A local forwarder and a direct backup fail together (the WAN): offline, not failover,
	// even when the primary is confirmed down before the backup's tracker reached a verdict.
	m := NewMachine(1, 1, 2, 3, false, 30*sec, t0)
	m.RoundOf(t0, []Obs{Good, Good})
	m.Confirm(t0.Add(sec), 0, false, 0)
	m.Tracker(1).ObserveAt(t0.Add(sec), false)
	if d := m.Decide(t0.Add(sec)); d.State != Offline || d.List != Healthy {
		t.Errorf("state %s, list %s: want offline with the list unchanged", d.State, d.List)
	}
}

func TestHoldDownCutShortWhenBackupsFail(t *testing.T) {
	// Failed over; the backups die; NextDNS returns: back at once, hold-down or not.
	run(t, false, 10*time.Minute, cat(
		[]step{{10 * sec, "pp SS", Healthy}, {2 * sec, "pp SS", Failover}},
		repeat(3, step{2 * sec, "pp SS", Failover}),
		// NextDNS needs 3 good rounds; the backups are down after 2 (offline for a round).
		[]step{{2 * sec, "PP ss", Failover}, {2 * sec, "PP ss", Offline}, {2 * sec, "PP ss", Healthy}},
	))
}

func TestDueProbesOnlyWhatIsNeeded(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	m := NewMachine(2, 1, 2, 3, false, 30*sec, t0)
	if got := m.Due(t0); !got[0] || !got[1] || !got[2] {
		t.Fatalf("first round %v: want everything probed once", got)
	}
	m.RoundOf(t0, []Obs{Good, Good, Good})
	now := t0.Add(5 * sec)
	if got := m.Due(now); !got[0] || got[1] || got[2] {
		t.Errorf("idle LAN %v: want only the first endpoint", got)
	}
	m.Passive(now, []*Seen{{Answered: 5, LastReply: now}, nil, nil}, sec)
	if got := m.Due(now); got[0] || got[1] || got[2] {
		t.Errorf("busy LAN %v: want no probe", got)
	}
	m.RoundOf(now, []Obs{NotProbed, NotProbed, NotProbed})
	if m.Primary[0].Good != 2 {
		t.Errorf("traffic did not count as a good round: %+v", m.Primary[0])
	}
	if got := m.Due(t0.Add(StandbyEvery)); !got[0] || !got[1] || !got[2] {
		t.Errorf("a minute later %v: want the standby endpoint and the backup too", got)
	}
	m.RoundOf(now, []Obs{Bad, NotProbed, NotProbed})
	if got := m.Due(now.Add(sec)); !got[0] || !got[1] || !got[2] {
		t.Errorf("in doubt %v: want everything", got)
	}
}

// The observer sees our own probes: an answered probe is no client traffic, so it does not
// spare the next round's probe (on an idle LAN that would halve the probing of NextDNS), while
// a client's answer does.
func TestOwnAnsweredProbeIsNoTraffic(t *testing.T) {
	m := NewMachine(1, 1, 2, 3, false, 30*time.Second, time.Unix(0, 0))
	now := time.Unix(5, 0)
	m.RoundOf(now, []Obs{Good, Good})
	m.Passive(now.Add(time.Second), []*Seen{{Answered: 1}, nil}, time.Second)
	if m.Tracker(0).Traffic {
		t.Fatal("our own answered probe counted as client traffic")
	}
	m.Passive(now.Add(2*time.Second), []*Seen{{Answered: 1}, nil}, time.Second)
	if !m.Tracker(0).Traffic {
		t.Fatal("a client's answered query did not count as traffic")
	}
}
