package main

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Figures are the numbers of one strategy in one scenario at one variant, for the queries of
// one client model (Stub; "" for all). Switches and probes are the world's, whatever Stub.
type Figures struct {
	Strategy string  `json:"strategy"`
	Scenario string  `json:"scenario"`
	Variant  int     `json:"variant"`  // 0-based: which phase against the probe rounds
	OffsetS  float64 `json:"offset_s"` // the fault's start after a probe round
	Stub     string  `json:"stub"`

	Queries     int     `json:"queries"`      // client queries sent
	Answered    int     `json:"answered"`     // answered with an address
	AnsweredPct float64 `json:"answered_pct"` // of all client queries

	// The fault window: client queries first sent from the start of the fault to its end.
	Window *Window `json:"fault_window,omitempty"`

	P50ms float64 `json:"p50_ms"` // latency of answered queries, from the first send
	P99ms float64 `json:"p99_ms"`

	ToBackup int `json:"to_backup"` // client queries that reached the backup at all
	// Leaked: client queries that reached the backup while NextDNS was answering (healthy,
	// slow or lossy), split by when.
	Leaked            int `json:"leaked"`
	LeakedBeforeFault int `json:"leaked_before_fault"`
	LeakedDuringFault int `json:"leaked_during_fault"`
	LeakedAfterReturn int `json:"leaked_after_return"`

	// FailoverS: from the fault's start to the first client answer via the backup during the
	// fault; nil: none.
	FailoverS *float64 `json:"failover_s"`
	// FailbackS: from the fault's end to the last client query that reached the backup
	// (0: none after the fault); nil with FailbackNever: the backup still got queries at the
	// end of the run.
	FailbackS     *float64 `json:"failback_s"`
	FailbackNever bool     `json:"failback_never,omitempty"`

	Switches int `json:"switches"` // servers-file changes (each SIGHUP empties dnsmasq's cache)
	// Failovers: servers-file changes that put the backup first.
	Failovers int `json:"failovers"`

	// ProbesPerMin: probes NextDNS received a minute while every upstream was healthy and
	// clients were sending (before the fault, from a second after the clients start), all
	// NextDNS endpoints together; nil when the run has no such stretch or no daemon.
	ProbesPerMin *float64 `json:"probes_per_min_healthy"`

	// IdleFirst: after an idle LAN, the first client query (of this stub) sent into the outage.
	IdleFirst *IdleFirst `json:"idle_first,omitempty"`

	DaemonSignals   *uint64 `json:"daemon_signals,omitempty"`
	DaemonFailovers *uint64 `json:"daemon_failovers,omitempty"`
	DaemonFailbacks *uint64 `json:"daemon_failbacks,omitempty"`
	DaemonExit      string  `json:"daemon_exit,omitempty"`

	ProbesToNextDNS int `json:"probes_to_nextdns"` // daemon probes NextDNS received in the run
	ProbesToBackup  int `json:"probes_to_backup"`
	// ProbesPerMonth: the rate of probes NextDNS received, over 30 days.
	ProbesPerMonth int     `json:"probes_to_nextdns_per_month"`
	RunSeconds     float64 `json:"run_s"`
}

// IdleFirst is what became of the first client query sent into an outage after an idle LAN.
type IdleFirst struct {
	SentS    float64 `json:"sent_s"` // after the fault's start
	Answered bool    `json:"answered"`
	RTTs     float64 `json:"rtt_s"`
	Via      string  `json:"via"`
	// InTime: answered within the stub's give-up time (musl: 5 s).
	InTime bool `json:"in_time"`
}

// Window is the fault window's share of answered queries.
type Window struct {
	StartS      float64 `json:"start_s"`
	EndS        float64 `json:"end_s"`
	Queries     int     `json:"queries"`
	Answered    int     `json:"answered"`
	AnsweredPct float64 `json:"answered_pct"`
}

// month is what "a month" means in probe counts: 30 days.
const month = 30 * 24 * time.Hour

// neverMargin: a backup query this close to the end of the run means traffic never came
// back to NextDNS alone (dnsmasq's default order re-tests every 20 s, more often than this).
const neverMargin = 10 * time.Second

// probeStretchLead is left out of the probe count after the clients start: the round on which
// the run starts saw no client traffic yet.
const probeStretchLead = time.Second

// compute turns a run's raw records into figures for the queries of the client model stub
// ("" for all). It is pure: everything comes from r.
func compute(r *Run, stub string) Figures {
	sc := r.Scenario
	f := Figures{Strategy: r.Strategy.Key, Scenario: sc.Key, Variant: sc.Variant, OffsetS: sc.Offset.Seconds(), Stub: stub}
	total := sc.Duration()
	f.RunSeconds = total.Seconds()
	fStart, fEnd, hasFault := sc.FaultWindow()
	if hasFault {
		f.Window = &Window{StartS: fStart.Seconds(), EndS: fEnd.Seconds()}
	}
	var rtts []time.Duration
	var lastBackup time.Duration = -1
	var giveUp time.Duration
	for _, s := range r.Stubs {
		if s.Name == stub || (stub == "" && s.GiveUp() > giveUp) {
			giveUp = s.GiveUp()
		}
	}
	for _, q := range r.Queries {
		if stub != "" && q.Stub != stub {
			continue
		}
		f.Queries++
		if hasFault && sc.Phases[0].Idle && f.IdleFirst == nil && q.Sent >= fStart {
			f.IdleFirst = &IdleFirst{SentS: (q.Sent - fStart).Seconds(), Answered: q.Via != viaNone, Via: q.Via, RTTs: q.RTT.Seconds()}
			f.IdleFirst.InTime = f.IdleFirst.Answered && (giveUp == 0 || q.RTT <= giveUp)
		}
		inWindow := hasFault && q.Sent >= fStart && q.Sent < fEnd
		if inWindow {
			f.Window.Queries++
		}
		if q.Via != viaNone {
			f.Answered++
			rtts = append(rtts, q.RTT)
			if inWindow {
				f.Window.Answered++
			}
		}
		if at := q.Sent + q.RTT; q.Via == viaBackup && hasFault && at >= fStart && at < fEnd {
			s := (q.Sent + q.RTT - fStart).Seconds()
			if f.FailoverS == nil || s < *f.FailoverS {
				f.FailoverS = &s
			}
		}
		if q.AtBackup < 0 {
			continue
		}
		f.ToBackup++
		if hasFault && q.AtBackup >= fEnd && q.AtBackup > lastBackup {
			lastBackup = q.AtBackup
		}
		if !sc.NextDNSAnswering(phaseAt(r, q.AtBackup)) {
			continue
		}
		f.Leaked++
		switch {
		case !hasFault || q.AtBackup < fStart:
			f.LeakedBeforeFault++
		case q.AtBackup < fEnd:
			f.LeakedDuringFault++
		default:
			f.LeakedAfterReturn++
		}
	}
	if f.Queries > 0 {
		f.AnsweredPct = pct(f.Answered, f.Queries)
	}
	if f.Window != nil && f.Window.Queries > 0 {
		f.Window.AnsweredPct = pct(f.Window.Answered, f.Window.Queries)
	}
	f.P50ms, f.P99ms = ms(quantile(rtts, 0.50)), ms(quantile(rtts, 0.99))
	if hasFault {
		switch {
		case f.ToBackup == 0:
			// the backup was never used: nothing to come back from
		case lastBackup < 0:
			z := 0.0
			f.FailbackS = &z
		case total-lastBackup < neverMargin:
			f.FailbackNever = true
		default:
			s := (lastBackup - fEnd).Seconds()
			f.FailbackS = &s
		}
	}
	f.Switches = len(r.Switches)
	for _, sw := range r.Switches {
		if sw.First == viaBackup {
			f.Failovers++
		}
	}
	if r.Strategy.Daemon {
		f.ProbesPerMin = healthyProbeRate(r)
	}
	if st := r.Status; st != nil {
		f.DaemonSignals = &st.Counters.Signals
		f.DaemonFailovers = &st.Counters.Failovers
		f.DaemonFailbacks = &st.Counters.Failbacks
	}
	f.DaemonExit = r.DaemonExit
	f.ProbesToNextDNS, f.ProbesToBackup = r.ProbesNext, r.ProbesBack
	if r.Elapsed > 0 {
		f.ProbesPerMonth = int(math.Round(float64(r.ProbesNext) / r.Elapsed.Seconds() * month.Seconds()))
	}
	return f
}

// healthyProbeRate is the probes a minute NextDNS received in the run's healthy stretch with
// clients sending before any fault (the whole run without one), from probeStretchLead after the
// clients start; nil without such a stretch.
func healthyProbeRate(r *Run) *float64 {
	sc := r.Scenario
	var from, to, at time.Duration = -1, -1, 0
	for i, p := range sc.Phases {
		start := at
		if len(r.PhaseStarts) == len(sc.Phases) {
			start = r.PhaseStarts[i]
		}
		at += p.Dur
		if !sc.clean(p) {
			break
		}
		if p.Idle {
			from = -1
			continue
		}
		if from < 0 {
			from = start + probeStretchLead
		}
		to = at
	}
	if from < 0 || to-from < 10*time.Second {
		return nil
	}
	n := 0
	for _, t := range r.ProbeTimes {
		if t >= from && t < to {
			n++
		}
	}
	v := math.Round(float64(n)/(to-from).Minutes()*10) / 10
	return &v
}

func pct(n, of int) float64 { return math.Round(1000*float64(n)/float64(of)) / 10 }

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }

// quantile is the nearest-rank quantile of ds (0 for none).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func sortQueries(qs []Query) { sort.Slice(qs, func(i, j int) bool { return qs[i].Seq < qs[j].Seq }) }

// phaseAt is the phase in force at offset t, by the times the phases were really applied
// when the run recorded them, else by the scenario's nominal times.
func phaseAt(r *Run, t time.Duration) Phase {
	if len(r.PhaseStarts) != len(r.Scenario.Phases) {
		return r.Scenario.PhaseAt(t)
	}
	i := sort.Search(len(r.PhaseStarts), func(i int) bool { return r.PhaseStarts[i] > t }) - 1
	return r.Scenario.Phases[max(i, 0)]
}
