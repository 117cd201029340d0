package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// Sources of figures in a summary: this bench's daemon, or the baseline's (-baseline).
const (
	sourceNow    = "now"
	sourceBefore = "before"
)

// stubNames are the client models the summaries report, in order.
var stubNames = []string{"musl", "glibc"}

// Summary is one strategy in one scenario over every variant (phase against the probe rounds):
// the median and the worst.
type Summary struct {
	Scenario string `json:"scenario"`
	Strategy string `json:"strategy"`
	Source   string `json:"source"` // now or before
	Runs     int    `json:"runs"`   // variants run

	Stubs map[string]*StubSummary `json:"stubs"`

	// World figures: leaks are both stubs' client queries together.
	Leaks        Spread  `json:"leaks"`
	Switches     Spread  `json:"switches"`
	Failovers    Spread  `json:"failovers"`
	ProbesPerMin *Spread `json:"probes_per_min_healthy,omitempty"`
}

// StubSummary is one client model's share of a Summary.
type StubSummary struct {
	// Answered: % of the client queries sent during the fault that were answered (of all sent
	// in a scenario without a fault). Worst is the lowest.
	Answered Spread `json:"answered_pct"`
	// First: seconds from the fault's start to the first answer via the backup, over the runs
	// that had one (FirstRuns of Runs).
	First     *Spread `json:"first_via_backup_s,omitempty"`
	FirstRuns int     `json:"first_via_backup_runs"`
	// IdleInTime of IdleRuns: runs whose first query into the outage after an idle LAN was
	// answered within the stub's give-up time.
	IdleInTime int `json:"idle_first_in_time,omitempty"`
	IdleRuns   int `json:"idle_runs,omitempty"`
}

// Spread is the median and the worst of one figure over runs (worst: the lowest for shares
// answered, the highest for everything else).
type Spread struct {
	Median float64 `json:"median"`
	Worst  float64 `json:"worst"`
}

// spread of vs; lowIsBad picks the worst end.
func spread(vs []float64, lowIsBad bool) Spread {
	if len(vs) == 0 {
		return Spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	var med float64
	if n := len(s); n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	worst := s[len(s)-1]
	if lowIsBad {
		worst = s[0]
	}
	return Spread{Median: math.Round(med*100) / 100, Worst: math.Round(worst*100) / 100}
}

// summarize groups per-stub figures by scenario and strategy, in the order of scenarioKeys and
// strategies().
func summarize(figs []Figures, source string) []Summary {
	type key struct{ scen, strat string }
	groups := map[key][]Figures{}
	for _, f := range figs {
		k := key{f.Scenario, f.Strategy}
		groups[k] = append(groups[k], f)
	}
	var out []Summary
	for _, scen := range scenarioKeys {
		for _, st := range strategies() {
			g := groups[key{scen, st.Key}]
			if len(g) == 0 {
				continue
			}
			out = append(out, summarizeGroup(scen, st.Key, source, g))
		}
	}
	return out
}

func summarizeGroup(scen, strat, source string, g []Figures) Summary {
	s := Summary{Scenario: scen, Strategy: strat, Source: source, Stubs: map[string]*StubSummary{}}
	// world figures, one per variant
	type world struct {
		leaks, switches, failovers int
		probes                     *float64
	}
	worlds := map[int]*world{}
	var variants []int
	for _, f := range g {
		w := worlds[f.Variant]
		if w == nil {
			w = &world{switches: f.Switches, failovers: f.Failovers, probes: f.ProbesPerMin}
			worlds[f.Variant] = w
			variants = append(variants, f.Variant)
		}
		w.leaks += f.Leaked
	}
	slices.Sort(variants)
	s.Runs = len(variants)
	var leaks, switches, failovers, probes []float64
	for _, v := range variants {
		w := worlds[v]
		leaks = append(leaks, float64(w.leaks))
		switches = append(switches, float64(w.switches))
		failovers = append(failovers, float64(w.failovers))
		if w.probes != nil {
			probes = append(probes, *w.probes)
		}
	}
	s.Leaks, s.Switches, s.Failovers = spread(leaks, false), spread(switches, false), spread(failovers, false)
	if len(probes) > 0 {
		p := spread(probes, false)
		s.ProbesPerMin = &p
	}
	for _, stub := range stubNames {
		var answered, first []float64
		ss := &StubSummary{}
		for _, f := range g {
			if f.Stub != stub {
				continue
			}
			a := f.AnsweredPct
			if f.Window != nil {
				a = f.Window.AnsweredPct
			}
			answered = append(answered, a)
			if f.FailoverS != nil {
				first = append(first, *f.FailoverS)
			}
			if f.IdleFirst != nil {
				ss.IdleRuns++
				if f.IdleFirst.InTime {
					ss.IdleInTime++
				}
			}
		}
		if len(answered) == 0 {
			continue
		}
		ss.Answered = spread(answered, true)
		ss.FirstRuns = len(first)
		if len(first) > 0 {
			p := spread(first, false)
			ss.First = &p
		}
		s.Stubs[stub] = ss
	}
	return s
}

// loadBaseline reads a bench.json written by an earlier bench (the "before" daemon) and returns
// its daemon strategies' figures. Figures of a bench from before variants and stubs counted
// as variant 0, musl.
func loadBaseline(path string) (*Report, []Figures, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	daemon := map[string]bool{}
	for _, s := range strategies() {
		daemon[s.Key] = s.Daemon
	}
	var out []Figures
	for _, f := range rep.Figures {
		if !daemon[f.Strategy] {
			continue
		}
		if f.Stub == "" {
			f.Stub = "musl"
		}
		out = append(out, f)
	}
	return &rep, out, nil
}

// Check is one target of issue 11, checked against a bench's summaries.
type Check struct {
	OK   bool   `json:"ok"`
	Text string `json:"text"`
}

// Targets of issue 11 for availability mode at the default timings.
const (
	targetAnswered  = 99.5 // % of the queries sent during the outage
	targetFirst     = 1.5  // s, first answer via the backup, median over the phases
	targetProbesMin = 2.0  // NextDNS probes a minute while healthy with clients sending
)

// targets checks issue 11's numbers against the "now" summaries; before, when given, adds the
// baseline's figure to each line for comparison.
func targets(now, before []Summary) []Check {
	find := func(ss []Summary, scen string) *Summary {
		for i := range ss {
			if ss[i].Scenario == scen && ss[i].Strategy == "availability" {
				return &ss[i]
			}
		}
		return nil
	}
	var out []Check
	add := func(ok bool, format string, a ...any) {
		out = append(out, Check{OK: ok, Text: fmt.Sprintf(format, a...)})
	}
	was := func(scen string, f func(*Summary) string) string {
		if b := find(before, scen); b != nil {
			if v := f(b); v != "" {
				return "; before: " + v
			}
		}
		return ""
	}
	stubAnswered := func(stub string) func(*Summary) string {
		return func(s *Summary) string {
			if ss := s.Stubs[stub]; ss != nil {
				return fmtSpreadPct(ss.Answered)
			}
			return ""
		}
	}
	stubFirst := func(stub string) func(*Summary) string {
		return func(s *Summary) string {
			if ss := s.Stubs[stub]; ss != nil {
				return fmtFirst(ss, s.Runs)
			}
			return ""
		}
	}
	for _, scen := range []string{"blackhole", "servfail", "one-dead"} {
		s := find(now, scen)
		if s == nil {
			continue
		}
		for _, stub := range stubNames {
			ss := s.Stubs[stub]
			if ss == nil {
				continue
			}
			add(ss.Answered.Median >= targetAnswered, "%s, %s: %s of the queries sent during the fault answered, median (worst) over %d phases; target >= %.1f%% (median)%s",
				scen, stub, fmtSpreadPct(ss.Answered), s.Runs, targetAnswered, was(scen, stubAnswered(stub)))
			if scen == "one-dead" {
				continue
			}
			add(ss.First != nil && ss.FirstRuns == s.Runs && ss.First.Median <= targetFirst, "%s, %s: first answer via the backup %s after the fault began; target <= %.1f s (median)%s",
				scen, stub, fmtFirst(ss, s.Runs), targetFirst, was(scen, stubFirst(stub)))
		}
	}
	if s := find(now, "idle-blackhole"); s != nil {
		for _, stub := range stubNames {
			if ss := s.Stubs[stub]; ss != nil {
				add(ss.IdleRuns > 0 && ss.IdleInTime == ss.IdleRuns, "idle-blackhole, %s: the first query into the outage after an idle LAN answered within the client's give-up time in %d of %d phases%s",
					stub, ss.IdleInTime, ss.IdleRuns, was("idle-blackhole", func(b *Summary) string {
						if bs := b.Stubs[stub]; bs != nil && bs.IdleRuns > 0 {
							return fmt.Sprintf("%d of %d", bs.IdleInTime, bs.IdleRuns)
						}
						return ""
					}))
			}
		}
	}
	if s := find(now, "one-dead"); s != nil {
		add(s.Leaks.Worst == 0 && s.Failovers.Worst == 0, "one-dead: %s leaked, %s failovers to the backup (median (worst)); target 0 and 0%s",
			fmtSpread(s.Leaks, "%.0f"), fmtSpread(s.Failovers, "%.0f"), was("one-dead", func(b *Summary) string {
				return fmt.Sprintf("%s leaked, %s failovers", fmtSpread(b.Leaks, "%.0f"), fmtSpread(b.Failovers, "%.0f"))
			}))
	}
	for _, scen := range []string{"loss10", "healthy", "slow"} {
		if s := find(now, scen); s != nil {
			add(s.Leaks.Worst == 0 && s.Switches.Worst == 0, "%s: %s leaked, %s switches (median (worst)); target 0 and 0%s",
				scen, fmtSpread(s.Leaks, "%.0f"), fmtSpread(s.Switches, "%.0f"), was(scen, func(b *Summary) string {
					return fmt.Sprintf("%s leaked, %s switches", fmtSpread(b.Leaks, "%.0f"), fmtSpread(b.Switches, "%.0f"))
				}))
		}
	}
	if s := find(now, "healthy"); s != nil {
		probes := func(s *Summary) string {
			if s.ProbesPerMin == nil {
				return ""
			}
			return fmtSpread(*s.ProbesPerMin, "%.1f") + " a minute"
		}
		add(s.ProbesPerMin != nil && s.ProbesPerMin.Median <= targetProbesMin, "healthy: probes reaching NextDNS while clients were sending: %s (median (worst)); target <= %.0f a minute (median)%s",
			probes(s), targetProbesMin, was("healthy", probes))
	}
	return out
}

// printTargets writes the checks with PASS or FAIL and returns how many failed.
func printTargets(w io.Writer, checks []Check) int {
	fmt.Fprintln(w, "targets (issue 11, availability mode):")
	failed := 0
	for _, c := range checks {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "  %s  %s\n", mark, c.Text)
	}
	return failed
}

func fmtSpread(s Spread, format string) string {
	m, w := fmt.Sprintf(format, s.Median), fmt.Sprintf(format, s.Worst)
	if m == w {
		return m
	}
	return m + " (" + w + ")"
}

func fmtSpreadPct(s Spread) string {
	if s.Median == s.Worst {
		return fmt.Sprintf("%.1f%%", s.Median)
	}
	return fmt.Sprintf("%.1f%% (%.1f%%)", s.Median, s.Worst)
}

func fmtFirst(ss *StubSummary, runs int) string {
	if ss.First == nil {
		return "-"
	}
	out := fmtSpread(*ss.First, "%.1f") + " s"
	if ss.FirstRuns < runs {
		out += fmt.Sprintf(" in %d of %d runs", ss.FirstRuns, runs)
	}
	return out
}

// summaryHeader is the columns of a scenario's table.
func summaryHeader(idle bool) []string {
	h := []string{"strategy", "runs", "musl answered", "glibc answered", "musl first via backup", "glibc first via backup"}
	if idle {
		h = append(h, "first query after idle answered in time (musl, glibc)")
	}
	return append(h, "leaks", "switches", "NextDNS probes/min")
}

// summaryRow is one line of a scenario's table.
func summaryRow(s Summary, idle bool) []string {
	title := strategyTitles()[s.Strategy]
	if s.Source == sourceBefore {
		title += ", before"
	} else if isDaemon(s.Strategy) {
		title += ", now"
	}
	row := []string{title, fmt.Sprint(s.Runs)}
	for _, stub := range stubNames {
		if ss := s.Stubs[stub]; ss != nil {
			row = append(row, fmtSpreadPct(ss.Answered))
		} else {
			row = append(row, "-")
		}
	}
	for _, stub := range stubNames {
		if ss := s.Stubs[stub]; ss != nil {
			row = append(row, fmtFirst(ss, s.Runs))
		} else {
			row = append(row, "-")
		}
	}
	if idle {
		var parts []string
		for _, stub := range stubNames {
			if ss := s.Stubs[stub]; ss != nil && ss.IdleRuns > 0 {
				parts = append(parts, fmt.Sprintf("%d/%d", ss.IdleInTime, ss.IdleRuns))
			} else {
				parts = append(parts, "-")
			}
		}
		row = append(row, strings.Join(parts, ", "))
	}
	sw := fmtSpread(s.Switches, "%.0f")
	if s.Failovers.Worst > 0 {
		sw += "; failovers " + fmtSpread(s.Failovers, "%.0f")
	}
	probes := "-"
	if s.ProbesPerMin != nil {
		probes = fmtSpread(*s.ProbesPerMin, "%.1f")
	}
	return append(row, fmtSpread(s.Leaks, "%.0f"), sw, probes)
}

func isDaemon(strategy string) bool {
	for _, s := range strategies() {
		if s.Key == strategy {
			return s.Daemon
		}
	}
	return false
}

// interleave puts each "before" summary just above its "now" summary of the same scenario and
// strategy; static strategies have only "now".
func interleave(now, before []Summary) []Summary {
	var out []Summary
	for _, n := range now {
		for _, b := range before {
			if b.Scenario == n.Scenario && b.Strategy == n.Strategy {
				out = append(out, b)
			}
		}
		out = append(out, n)
	}
	return out
}
