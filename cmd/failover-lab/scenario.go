package main

import (
	"fmt"
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
	// NextDNS2 is the second NextDNS endpoint, in scenarios with two (Scenario.Two); the zero
	// value is healthy.
	NextDNS2 Fault
	Backup   Fault
	// Idle: the clients send nothing during this phase (an idle LAN).
	Idle bool
}

// Scenario is a sequence of phases under a steady client load.
type Scenario struct {
	Key    string
	Title  string
	Phases []Phase
	// Two: the world has two NextDNS endpoints (the daemon's default config lists two).
	Two bool
	// Variant numbers the runs of one scenario at different phases against the daemon's
	// probe rounds (0-based); Offset is how long after a probe round its fault starts.
	Variant int
	Offset  time.Duration
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

// clean says whether every upstream of the world is healthy during p.
func (s Scenario) clean(p Phase) bool {
	return p.NextDNS.Clean() && p.Backup.Clean() && (!s.Two || p.NextDNS2.Clean())
}

// NextDNSAnswering says whether some NextDNS endpoint of the world would answer during p: a
// client query sent to the backup then is a leak.
func (s Scenario) NextDNSAnswering(p Phase) bool {
	return p.NextDNS.Answering() || (s.Two && p.NextDNS2.Answering())
}

// FaultWindow is the stretch from the start of the first phase in which some upstream is not
// clean to the end of the last one; ok is false for a scenario without a fault.
func (s Scenario) FaultWindow() (start, end time.Duration, ok bool) {
	var at time.Duration
	for _, p := range s.Phases {
		if !s.clean(p) {
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
// degrading it (loss, latency, one endpoint of two): only then is a failover the right move.
func (s Scenario) Outage() bool {
	for _, p := range s.Phases {
		if !s.NextDNSAnswering(p) {
			return true
		}
	}
	return false
}

// Name is the scenario's key with its variant, for folders and progress lines.
func (s Scenario) Name() string { return fmt.Sprintf("%s#%d", s.Key, s.Variant+1) }

// Bench shape. The daemon probes at start, then every interval (5 s by default); the lab starts
// each world's clock on one of the daemon's rounds, so a fault that starts warmup + Offset into
// the run starts Offset after a round.
const (
	// defaultWarmup is the healthy stretch before each fault, before the variant's offset: a
	// multiple of the default interval, long enough for a stretch of healthy traffic in which
	// any leak shows and the probe rate can be counted.
	defaultWarmup = 25 * time.Second
	// defaultPhases is how many phases against the probe rounds each fault runs at: offsets
	// 0.1, 0.3, 0.5, 0.7 and 0.9 of the interval after a round.
	defaultPhases = 5
	// cooldown is longer than the default hold-down (30 s) plus recovery (3 rounds at 1 s), so
	// the fail-back is inside the run.
	cooldown = 45 * time.Second
	// shortCooldown follows a fault that should cause no failover (loss, latency): long
	// enough to see traffic settle on NextDNS, and longer than neverMargin.
	shortCooldown = 30 * time.Second
	// defaultFaultLen is the length of each fault: the "for a minute".
	defaultFaultLen = 60 * time.Second
	// defaultLossLen is the length of the 10% loss: the "for ten minutes".
	defaultLossLen = 10 * time.Minute
	// defaultIdleLen is the LAN's silence before the idle blackhole.
	defaultIdleLen = 60 * time.Second
	// idleLead is how long into the outage after an idle LAN the clients start.
	idleLead = 5 * time.Second
	// flapPeriod is how long NextDNS stays down, then up, while flapping: shorter than the
	// old fail-over time (about 11 s), so each blip alone would not trigger a failover.
	flapPeriod = 5 * time.Second
)

// Shape is what -warmup, -phases, -fault, -loss and -idle set: the bench's lengths.
type Shape struct {
	Warmup   time.Duration // healthy time before the fault, before the variant's offset
	Interval time.Duration // the daemon's probe interval: the offsets are fractions of it
	Phases   int           // variants per scenario
	Fault    time.Duration // each fault's length (the loss's is Loss)
	Loss     time.Duration
	Idle     time.Duration // the idle LAN before the idle blackhole
}

// defaultShape is make bench's shape at the daemon's default interval.
func defaultShape(interval time.Duration) Shape {
	return Shape{Warmup: defaultWarmup, Interval: interval, Phases: defaultPhases,
		Fault: defaultFaultLen, Loss: defaultLossLen, Idle: defaultIdleLen}
}

// Offset is how long after a probe round variant v's fault starts: the middle of the v-th of
// Phases equal slices of the interval.
func (sh Shape) Offset(v int) time.Duration {
	n := max(sh.Phases, 1)
	return sh.Interval * time.Duration(2*v+1) / time.Duration(2*n)
}

// scenarioKeys are the bench's scenarios, in the order of the report.
var scenarioKeys = []string{"healthy", "blackhole", "idle-blackhole", "servfail", "one-dead", "one-dead-second", "loss10", "slow", "flapping", "wan-down"}

// benchScenarios are the bench's scenarios (issues 5 and 11), at variant v of sh.
func benchScenarios(sh Shape, v int) []Scenario {
	warmup := sh.Warmup + sh.Offset(v)
	faultLen := sh.Fault
	slow := Fault{Kind: fakedns.Answer, Delay: 300 * time.Millisecond}
	lossy := Fault{Kind: fakedns.Answer, Share: 0.10}
	servfail := Fault{Kind: fakedns.ServFail}
	flap := []Phase{{Dur: warmup, NextDNS: Healthy, Backup: Healthy}}
	for i := range int(faultLen / flapPeriod) {
		f := Dark
		if i%2 == 1 {
			f = Healthy
		}
		flap = append(flap, Phase{Dur: flapPeriod, NextDNS: f, Backup: Healthy})
	}
	flap = append(flap, Phase{Dur: cooldown, NextDNS: Healthy, Backup: Healthy})
	fault := func(n, b Fault, dur, cool time.Duration) []Phase {
		return []Phase{
			{Dur: warmup, NextDNS: Healthy, Backup: Healthy},
			{Dur: dur, NextDNS: n, Backup: b},
			{Dur: cool, NextDNS: Healthy, Backup: Healthy},
		}
	}
	idleLen := sh.Idle + sh.Offset(v)
	lead := min(idleLead, faultLen/2)
	one := func(first, second Fault) []Phase {
		return []Phase{
			{Dur: warmup, NextDNS: Healthy, NextDNS2: Healthy, Backup: Healthy},
			{Dur: faultLen, NextDNS: first, NextDNS2: second, Backup: Healthy},
			{Dur: shortCooldown, NextDNS: Healthy, NextDNS2: Healthy, Backup: Healthy},
		}
	}
	all := []Scenario{
		{Key: "healthy", Title: "healthy", Phases: []Phase{{Dur: warmup + faultLen, NextDNS: Healthy, Backup: Healthy}}},
		{Key: "blackhole", Title: "NextDNS blackholed for " + human(faultLen), Phases: fault(Dark, Healthy, faultLen, cooldown)},
		{Key: "idle-blackhole", Title: fmt.Sprintf("NextDNS blackholed after %s of no client traffic (clients start %s into the outage)", human(sh.Idle), human(lead)),
			Phases: []Phase{
				{Dur: idleLen, NextDNS: Healthy, Backup: Healthy, Idle: true},
				{Dur: lead, NextDNS: Dark, Backup: Healthy, Idle: true},
				{Dur: faultLen - lead, NextDNS: Dark, Backup: Healthy},
				{Dur: cooldown, NextDNS: Healthy, Backup: Healthy},
			}},
		{Key: "servfail", Title: "SERVFAIL storm: NextDNS answers SERVFAIL to every query for " + human(faultLen), Phases: fault(servfail, Healthy, faultLen, cooldown)},
		{Key: "one-dead", Two: true, Title: "the first of two NextDNS endpoints (the one strict-order uses) blackholed for " + human(faultLen), Phases: one(Dark, Healthy)},
		{Key: "one-dead-second", Two: true, Title: "the second of two NextDNS endpoints blackholed for " + human(faultLen), Phases: one(Healthy, Dark)},
		{Key: "loss10", Title: "NextDNS loses 10% of packets for " + human(sh.Loss), Phases: fault(lossy, Healthy, sh.Loss, shortCooldown)},
		{Key: "slow", Title: "NextDNS slow (300 ms) for " + human(faultLen), Phases: fault(slow, Healthy, faultLen, shortCooldown)},
		{Key: "flapping", Title: "NextDNS flapping (5 s down, 5 s up) for " + human(faultLen), Phases: flap},
		{Key: "wan-down", Title: "everything down (WAN gone) for " + human(faultLen), Phases: fault(Dark, Dark, faultLen, cooldown)},
	}
	for i := range all {
		all[i].Variant, all[i].Offset = v, sh.Offset(v)
	}
	return all
}

// human writes a length the way a title says it: "a minute", "ten minutes", "45s".
func human(d time.Duration) string {
	switch d {
	case time.Minute:
		return "a minute"
	case 10 * time.Minute:
		return "ten minutes"
	case 2 * time.Minute:
		return "two minutes"
	}
	return d.String()
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
			TradeOff: "NextDNS alone while it answers, the backups alone while it is down; the switch comes before a client resends"},
		{Key: "privacy", Title: "nextdns-failover, privacy", Daemon: true, Mode: "privacy", StrictOrder: true,
			TradeOff: "never a non-NextDNS server: as private as NextDNS only, only reorders NextDNS endpoints"},
	}
}
