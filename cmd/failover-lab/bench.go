package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

// selectStrategies applies -strategies.
func selectStrategies(keys []string) ([]Strategy, error) {
	all := strategies()
	if len(keys) == 0 {
		return all, nil
	}
	var out []Strategy
	for _, k := range keys {
		i := slices.IndexFunc(all, func(s Strategy) bool { return s.Key == k })
		if i < 0 {
			return nil, fmt.Errorf("unknown strategy %q", k)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// selectScenarios applies -scenarios to variant v of the bench's scenarios.
func selectScenarios(keys []string, sh Shape, v int) ([]Scenario, error) {
	all := benchScenarios(sh, v)
	if len(keys) == 0 {
		return all, nil
	}
	var out []Scenario
	for _, k := range keys {
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Key == k })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q (valid: %s)", k, strings.Join(scenarioKeys, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// maxWorlds is how many worlds run at once at most: each takes one 127.42.N.x range, and
// 200 and up belong to the demo, the tests and the smoke check.
const maxWorlds = 199

// runWorlds runs worlds side by side, at most parallel at once (0: all, up to maxWorlds), and
// returns their runs in the same order (nil where a world failed, with its error). A world
// without an Index gets a free one. done, when set, is called as each world finishes.
func runWorlds(ctx context.Context, worlds []*World, parallel int, done func(i int, r *Run, err error)) ([]*Run, []error) {
	if parallel <= 0 || parallel > maxWorlds {
		parallel = min(len(worlds), maxWorlds)
	}
	runs := make([]*Run, len(worlds))
	errs := make([]error, len(worlds))
	free := make(chan int, parallel)
	for i := range parallel {
		free <- i + 1
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, w := range worlds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := <-free
			defer func() { free <- idx }()
			if w.Index == 0 {
				w.Index = idx
			}
			runs[i], errs[i] = w.Run(ctx)
			if done != nil {
				mu.Lock()
				done(i, runs[i], errs[i])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return runs, errs
}

// daemonInterval is the probe interval the daemon runs with: -set interval=..., else its default.
func daemonInterval(timings []string) (time.Duration, error) {
	for _, t := range timings {
		if k, v, _ := strings.Cut(t, "="); k == "interval" {
			if d, err := time.ParseDuration(v); err == nil {
				return d, nil
			}
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				return time.Duration(n * float64(time.Second)), nil
			}
			return 0, fmt.Errorf("-set interval=%s: not a duration", v)
		}
	}
	return config.DefaultInterval, nil
}

func runBench(ctx context.Context, o *options, stdout io.Writer) error {
	start := time.Now()
	strats, err := selectStrategies(o.strategies)
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = "results"
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var before []Figures
	var baseRep *Report
	if o.baseline != "" {
		if baseRep, before, err = loadBaseline(o.baseline); err != nil {
			return fmt.Errorf("-baseline: %w", err)
		}
	}
	root, err := worldRoot()
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(root)
	}
	bin, binErr := filepath.Abs(o.bin)
	if st, err := os.Stat(bin); binErr != nil || err != nil || st.IsDir() {
		fmt.Fprintf(stdout, "note: %s not found: the nextdns-failover strategies are skipped (run make build)\n", o.bin)
		strats = slices.DeleteFunc(strats, func(s Strategy) bool { return s.Daemon })
	}
	var worlds []*World
	var scens []Scenario // variant 0 of each, for the report
	for v := range o.shape.Phases {
		vs, err := selectScenarios(o.scenarios, o.shape, v)
		if err != nil {
			return err
		}
		if v == 0 {
			scens = vs
		}
		for _, sc := range vs {
			for _, st := range strats {
				if !st.Daemon && v > 0 {
					continue // no daemon, no probe rounds: one run says it all
				}
				worlds = append(worlds, &World{Strategy: st, Scenario: sc, Stubs: o.stubs, Rate: o.rate, Align: o.shape.Interval,
					Bin: bin, Root: root, Timings: o.timings, Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
			}
		}
	}
	// the longest worlds first, so a limited -parallel still ends soon after the longest
	slices.SortStableFunc(worlds, func(a, b *World) int { return cmp.Compare(b.Scenario.Duration(), a.Scenario.Duration()) })
	par := o.parallel
	if par <= 0 || par > maxWorlds {
		par = min(len(worlds), maxWorlds)
	}
	longest := time.Duration(0)
	if len(worlds) > 0 {
		longest = worlds[0].Scenario.Duration()
	}
	// each world also waits for a probe round and for its clients' last give-up
	expect := makespan(worlds, par, o.shape.Interval+15*time.Second)
	var stubs []string
	for _, s := range o.stubs {
		stubs = append(stubs, s.String())
	}
	fmt.Fprintf(stdout, "failover-lab bench: %d worlds (%d strategies, %d scenarios, %d phases against the probe rounds for the daemon's strategies), %d at once\n",
		len(worlds), len(strats), len(scens), o.shape.Phases, par)
	fmt.Fprintf(stdout, "clients: %.0f queries/s per world, taking turns: %s\n", o.rate, strings.Join(stubs, "; "))
	fmt.Fprintf(stdout, "longest scenario %v; expect about %v. Worlds in %s\n", longest, expect.Round(time.Second), root)
	loadBefore := loadAvg()

	// progress: a line per world, and one when a scenario's worlds are all done
	left := map[string]int{}
	for _, w := range worlds {
		left[w.Scenario.Key]++
	}
	finished := 0
	progress := func(i int, r *Run, err error) {
		finished++
		w := worlds[i]
		head := fmt.Sprintf("[%3d/%d %6s] %-16s %-13s %s", finished, len(worlds), time.Since(start).Round(time.Second), w.Scenario.Name(), w.Strategy.Key,
			fmt.Sprintf("(+%.1fs)", w.Scenario.Offset.Seconds()))
		if err != nil {
			fmt.Fprintf(stdout, "%s  did not run: %v\n", head, err)
		} else {
			fmt.Fprintf(stdout, "%s  %s\n", head, runLine(r))
		}
		if left[w.Scenario.Key]--; left[w.Scenario.Key] == 0 {
			fmt.Fprintf(stdout, "--- scenario %s done (%s)\n", w.Scenario.Key, time.Since(start).Round(time.Second))
		}
	}
	runs, errs := runWorlds(ctx, worlds, o.parallel, progress)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	rep := &Report{
		Date: today(), Machine: machine(), Go: runtime.Version(), Dnsmasq: dnsmasqVersion(),
		Binary: binaryVersion(bin), Stub: strings.Join(stubs, "; "), Rate: o.rate, Phases: o.shape.Phases,
		Timings: "defaults: no timing option in the config", outDir: out, Load: loadAvg(),
	}
	if len(o.timings) > 0 {
		rep.Timings = "set by -set: " + strings.Join(o.timings, ", ")
	}
	if baseRep != nil {
		rep.Baseline = fmt.Sprintf("%s (%s, %s; timings: %s)", o.baseline, baseRep.Binary, baseRep.Date, baseRep.Timings)
	}
	for _, s := range strats {
		rep.Strategies = append(rep.Strategies, s.Key)
	}
	for _, s := range scens {
		rep.Scenarios = append(rep.Scenarios, s.Key)
	}
	var mid []*Run // the middle variant's runs, for the timelines
	for i, r := range runs {
		if errs[i] != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s / %s: %v", worlds[i].Scenario.Name(), worlds[i].Strategy.Key, errs[i]))
			continue
		}
		for _, s := range o.stubs {
			rep.Figures = append(rep.Figures, compute(r, s.Name))
		}
		if r.Scenario.Variant == o.shape.Phases/2 || !r.Strategy.Daemon {
			mid = append(mid, r)
		}
		if o.raw {
			if err := os.MkdirAll(filepath.Join(out, "runs"), 0o755); err != nil {
				return err
			}
			raw := map[string]any{"strategy": r.Strategy.Key, "scenario": r.Scenario.Key, "variant": r.Scenario.Variant, "phase_starts": r.PhaseStarts,
				"switches": r.Switches, "status": r.Status, "probe_times": r.ProbeTimes, "queries": r.Queries}
			name := fmt.Sprintf("%s-%d-%s.json", r.Scenario.Key, r.Scenario.Variant+1, r.Strategy.Key)
			if err := writeJSON(filepath.Join(out, "runs", name), raw); err != nil {
				return err
			}
		}
	}
	sortFigures(rep.Figures)
	rep.Summaries = summarize(rep.Figures, sourceNow)
	rep.Before = summarize(before, sourceBefore)
	rep.Targets = targets(rep.Summaries, rep.Before)
	for _, sc := range scens {
		var lanes []*Run
		for _, key := range []string{"availability", "strict-order"} {
			for _, r := range mid {
				if r.Scenario.Key == sc.Key && r.Strategy.Key == key {
					lanes = append(lanes, r)
				}
			}
		}
		if len(lanes) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, "timeline-"+sc.Key+".svg"), []byte(timelineSVG(lanes[0].Scenario, lanes)), 0o644); err != nil {
			return err
		}
	}
	rep.Took = time.Since(start).Round(time.Second).String()
	rep.Load = fmt.Sprintf("%s before, %s after", loadBefore, rep.Load)
	fmt.Fprintln(stdout)
	printSummaries(stdout, interleave(rep.Summaries, rep.Before))
	fmt.Fprintln(stdout)
	for _, e := range rep.Errors {
		fmt.Fprintln(stdout, "did not run:", e)
	}
	if err := writeJSON(filepath.Join(out, "bench.json"), rep); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "README.md"), []byte(markdown(rep, scens)), 0o644); err != nil {
		return err
	}
	printAcceptance(stdout, rep.Figures)
	printTargets(stdout, rep.Targets)
	if line := probeCost(rep.Summaries); line != "" {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "\nwrote %s/README.md, %s/bench.json and the timelines %s/timeline-*.svg in %s\n", out, out, out, rep.Took)
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d worlds did not run", len(rep.Errors))
	}
	return nil
}

// makespan is how long running worlds (longest first) in par slots takes, each world taking
// its scenario plus extra.
func makespan(worlds []*World, par int, extra time.Duration) time.Duration {
	if par < 1 {
		return 0
	}
	slots := make([]time.Duration, par)
	for _, w := range worlds {
		i := slices.Index(slots, slices.Min(slots))
		slots[i] += w.Scenario.Duration() + extra
	}
	return slices.Max(slots)
}

// runLine is a world's progress line: what its clients got, and what the daemon did.
func runLine(r *Run) string {
	var parts []string
	for _, s := range r.Stubs {
		f := compute(r, s.Name)
		a := f.AnsweredPct
		if f.Window != nil {
			a = f.Window.AnsweredPct
		}
		p := fmt.Sprintf("%s %.1f%%", s.Name, a)
		if f.FailoverS != nil {
			p += fmt.Sprintf(" first via backup %.1fs", *f.FailoverS)
		}
		if f.IdleFirst != nil {
			p += fmt.Sprintf(" idle-first %s", map[bool]string{true: "in time", false: "LOST"}[f.IdleFirst.InTime])
		}
		parts = append(parts, p)
	}
	all := compute(r, "")
	line := strings.Join(parts, ", ") + fmt.Sprintf("; leaks %d, switches %d (failovers %d)", all.Leaked, all.Switches, all.Failovers)
	if all.ProbesPerMin != nil && r.Strategy.Daemon {
		line += fmt.Sprintf(", probes %.1f/min", *all.ProbesPerMin)
	}
	return line
}

// sortFigures orders figures by scenario (scenarioKeys), strategy, variant and stub.
func sortFigures(figs []Figures) {
	order := func(list []string, k string) int { return slices.Index(list, k) }
	var strats []string
	for _, s := range strategies() {
		strats = append(strats, s.Key)
	}
	slices.SortStableFunc(figs, func(a, b Figures) int {
		return cmp.Or(cmp.Compare(order(scenarioKeys, a.Scenario), order(scenarioKeys, b.Scenario)),
			cmp.Compare(order(strats, a.Strategy), order(strats, b.Strategy)),
			cmp.Compare(a.Variant, b.Variant), cmp.Compare(order(stubNames, a.Stub), order(stubNames, b.Stub)))
	})
}

// probeCost is the sentence on what a month of probes costs, from the healthy scenario.
func probeCost(ss []Summary) string {
	for _, s := range ss {
		if s.Scenario == "healthy" && s.Strategy == "availability" && s.ProbesPerMin != nil {
			m := s.ProbesPerMin.Median
			return fmt.Sprintf("probe cost: with clients sending, NextDNS got %.1f probes a minute (median of %d runs) from the daemon: about %s a month for each NextDNS endpoint configured (the default config lists two)",
				m, s.Runs, thousands(int(math.Round(m*month.Minutes()))))
		}
	}
	return ""
}

// printAcceptance checks issue 5's acceptance figures against a bench's figures.
func printAcceptance(w io.Writer, figs []Figures) {
	fmt.Fprintln(w, "acceptance (issue 5):")
	check := func(ok bool, format string, a ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, fmt.Sprintf(format, a...))
	}
	type key struct{ strat, scen string }
	before, toBackup := map[key]int{}, map[key]int{}
	var keys []key
	for _, f := range figs {
		k := key{f.Strategy, f.Scenario}
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
		before[k] += f.LeakedBeforeFault
		toBackup[k] += f.ToBackup
	}
	for _, k := range keys {
		switch k.strat {
		case "availability", "privacy":
			check(before[k] == 0, "%s, %s: %d leaked while NextDNS was healthy before the fault (all phases)", k.strat, k.scen, before[k])
		}
		if k.strat == "privacy" {
			check(toBackup[k] == 0, "privacy, %s: %d client queries reached the backup (all phases)", k.scen, toBackup[k])
		}
	}
}

func dnsmasqVersion() string {
	out, err := exec.Command("dnsmasq", "--version").Output()
	if err != nil {
		if out, err = exec.Command("/usr/sbin/dnsmasq", "--version").Output(); err != nil {
			return "unknown"
		}
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "unknown"
	}
	return f[2] // "Dnsmasq version 2.90  Copyright ..."
}

func binaryVersion(bin string) string {
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		return filepath.Base(bin)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// loadAvg is the machine's 1-minute load average, which explains noisy latencies.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
