package main

import (
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
)

// Fault is what one fake upstream does during a phase.
type Fault struct {
	Kind  fakedns.Behaviour `json:"-"`
	Share float64           `json:"loss,omitempty"`  // packet loss while answering
	Delay time.Duration     `json:"delay,omitempty"` // extra latency on every reply
}

// Healthy answers at once and loses nothing.
var Healthy = Fault{Kind: fakedns.Answer}

// Dark drops every query.
var Dark = Fault{Kind: fakedns.Drop}

// Answering says the upstream would answer a query sent to it (perhaps slowly, perhaps after
// a client's resend): a query sent elsewhere while this holds is a leak.
func (f Fault) Answering() bool { return f.Kind == fakedns.Answer && f.Share < 1 }

// Clean is healthy: answering, no loss, no delay.
func (f Fault) Clean() bool { return f.Kind == fakedns.Answer && f.Share == 0 && f.Delay == 0 }

// apply sets a fake server to behave as f.
func (f Fault) apply(s *fakedns.Server) {
	switch f.Kind {
	case fakedns.Drop:
		s.Drop()
	case fakedns.ServFail:
		s.ServFail()
	case fakedns.Refused:
		s.Refused()
	default:
		s.DropShare(f.Share)
	}
	s.Delay(f.Delay)
}

// Label is a short description for the narration and the SVG.
func (f Fault) Label() string {
	switch {
	case f.Kind == fakedns.Drop:
		return "dark"
	case f.Kind != fakedns.Answer:
		return f.Kind.String()
	case f.Share > 0 && f.Delay > 0:
		return "lossy and slow"
	case f.Share > 0:
		return "lossy"
	case f.Delay > 0:
		return "slow"
	}
	return "healthy"
}

// Phase is a stretch of a scenario with fixed upstream behaviour.
type Phase struct {
	Dur     time.Duration
	NextDNS Fault
	Backup  Fault
}

// Scenario is a sequence of phases under a steady client load.
type Scenario struct {
	Key    string
	Title  string
	Phases []Phase
}

// Duration is the scenario's length.
func (s Scenario) Duration() time.Duration {
	var d time.Duration
	for _, p := range s.Phases {
		d += p.Dur
	}
	return d
}

// PhaseAt returns the phase in force at offset t (the last one after the end).
func (s Scenario) PhaseAt(t time.Duration) Phase {
	var end time.Duration
	for _, p := range s.Phases {
		end += p.Dur
		if t < end {
			return p
		}
	}
	return s.Phases[len(s.Phases)-1]
}

// FaultWindow is the stretch from the start of the first phase in which NextDNS is not
// clean to the end of the last one; ok is false for a scenario without a fault.
func (s Scenario) FaultWindow() (start, end time.Duration, ok bool) {
	var at time.Duration
	for _, p := range s.Phases {
		if !p.NextDNS.Clean() || !p.Backup.Clean() {
			if !ok {
				start, ok = at, true
			}
			end = at + p.Dur
		}
		at += p.Dur
	}
	return start, end, ok
}

// Outage says whether the fault takes NextDNS away (dark, SERVFAIL, ...) rather than merely
// degrading it (loss, latency): only then is a failover the right move.
func (s Scenario) Outage() bool {
	for _, p := range s.Phases {
		if !p.NextDNS.Answering() {
			return true
		}
	}
	return false
}

// Warm-up and cool-down lengths for the bench.
const (
	// warmup is the healthy stretch before each fault: long enough for a stretch of healthy
	// traffic in which any leak shows, and chosen so the fault starts halfway between two of
	// the daemon's default rounds (it probes at start, then every 5 s): the average case.
	// A fault just after a round is the worst case (about 2.5 s later to fail over), just
	// before one the best (about 2.5 s sooner).
	defaultWarmup = 27500 * time.Millisecond
	// cooldown is longer than the default hold-down (30 s) plus recovery (3 rounds at 1 s), so
	// the fail-back is inside the run.
	cooldown = 45 * time.Second
	// shortCooldown follows a fault that should cause no failover (loss, latency): long
	// enough to see traffic settle on NextDNS, and longer than neverMargin.
	shortCooldown = 30 * time.Second
	// faultLen is the length of each fault: the "for a minute".
	faultLen = 60 * time.Second
	// flapPeriod is how long NextDNS stays down, then up, while flapping: shorter than the
	// default fail-over time (about 11 s), so each blip alone would not trigger a failover.
	flapPeriod = 5 * time.Second
)

// benchScenarios are the seven scenarios of issue 5, each fault after warmup of health.
func benchScenarios(warmup time.Duration) []Scenario {
	slow := Fault{Kind: fakedns.Answer, Delay: 300 * time.Millisecond}
	lossy := Fault{Kind: fakedns.Answer, Share: 0.10}
	flap := []Phase{{Dur: warmup, NextDNS: Healthy, Backup: Healthy}}
	for i := range int(faultLen / flapPeriod) {
		f := Dark
		if i%2 == 1 {
			f = Healthy
		}
		flap = append(flap, Phase{Dur: flapPeriod, NextDNS: f, Backup: Healthy})
	}
	flap = append(flap, Phase{Dur: cooldown, NextDNS: Healthy, Backup: Healthy})
	fault := func(n, b Fault, cool time.Duration) []Phase {
		return []Phase{
			{Dur: warmup, NextDNS: Healthy, Backup: Healthy},
			{Dur: faultLen, NextDNS: n, Backup: b},
			{Dur: cool, NextDNS: Healthy, Backup: Healthy},
		}
	}
	return []Scenario{
		{Key: "healthy", Title: "healthy", Phases: []Phase{{Dur: warmup + faultLen, NextDNS: Healthy, Backup: Healthy}}},
		{Key: "blackhole", Title: "NextDNS blackholed for a minute", Phases: fault(Dark, Healthy, cooldown)},
		{Key: "servfail", Title: "NextDNS answers SERVFAIL for a minute", Phases: fault(Fault{Kind: fakedns.ServFail}, Healthy, cooldown)},
		{Key: "loss10", Title: "NextDNS loses 10% of packets for two minutes", Phases: []Phase{
			{Dur: warmup, NextDNS: Healthy, Backup: Healthy},
			{Dur: 2 * faultLen, NextDNS: lossy, Backup: Healthy},
			{Dur: shortCooldown, NextDNS: Healthy, Backup: Healthy},
		}},
		{Key: "slow", Title: "NextDNS slow (300 ms) for a minute", Phases: fault(slow, Healthy, shortCooldown)},
		{Key: "flapping", Title: "NextDNS flapping (5 s down, 5 s up) for a minute", Phases: flap},
		{Key: "wan-down", Title: "everything down (WAN gone) for a minute", Phases: fault(Dark, Dark, cooldown)},
	}
}

// Strategy is one way of setting up dnsmasq.
type Strategy struct {
	Key         string
	Title       string
	Daemon      bool   // run nextdns-failover
	Mode        string // its mode
	StrictOrder bool   // dnsmasq --strict-order
	WithBackup  bool   // the backup is in dnsmasq's static list (static strategies)
	TradeOff    string // one line for the README
}

// strategies are the five of issue 5.
func strategies() []Strategy {
	return []Strategy{
		{Key: "nextdns-only", Title: "static, NextDNS only",
			TradeOff: "never leaks; no DNS at all while NextDNS is unreachable"},
		{Key: "strict-order", Title: "static, NextDNS then backup, strict-order", StrictOrder: true, WithBackup: true,
			TradeOff: "answers through outages after a client resend; leaks every query NextDNS loses or answers slowly"},
		{Key: "default-order", Title: "static, both, default order", WithBackup: true,
			TradeOff: "dnsmasq races the servers: a steady share of queries goes to the backup even when NextDNS is fine"},
		{Key: "availability", Title: "nextdns-failover, availability", Daemon: true, Mode: "availability", StrictOrder: true,
			TradeOff: "NextDNS alone while it answers, the backup first while it is down; loses queries until the switch"},
		{Key: "privacy", Title: "nextdns-failover, privacy", Daemon: true, Mode: "privacy", StrictOrder: true,
			TradeOff: "never a non-NextDNS server: as private as NextDNS only, only reorders NextDNS endpoints"},
	}
}
