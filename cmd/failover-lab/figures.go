package main

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Figures are the numbers of one strategy in one scenario.
type Figures struct {
	Strategy string `json:"strategy"`
	Scenario string `json:"scenario"`
	Stub     string `json:"stub"`

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

// compute turns a run's raw records into figures. It is pure: everything comes from r.
func compute(r *Run) Figures {
	f := Figures{Strategy: r.Strategy.Key, Scenario: r.Scenario.Key, Stub: r.Stub.Name, Queries: len(r.Queries)}
	sc := r.Scenario
	total := sc.Duration()
	f.RunSeconds = total.Seconds()
	fStart, fEnd, hasFault := sc.FaultWindow()
	if hasFault {
		f.Window = &Window{StartS: fStart.Seconds(), EndS: fEnd.Seconds()}
	}
	var rtts []time.Duration
	var lastBackup time.Duration = -1
	for _, q := range r.Queries {
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
		if !phaseAt(r, q.AtBackup).NextDNS.Answering() {
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
