package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// selectStrategies and selectScenarios apply -strategies and -scenarios.
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

func selectScenarios(keys []string, warmup time.Duration) ([]Scenario, error) {
	all := benchScenarios(warmup)
	if len(keys) == 0 {
		return all, nil
	}
	var out []Scenario
	for _, k := range keys {
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Key == k })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q", k)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// runWorlds runs worlds side by side, at most parallel at once (0: all), and returns their
// runs in the same order (nil where a world failed, with its error).
func runWorlds(ctx context.Context, worlds []*World, parallel int) ([]*Run, []error) {
	if parallel <= 0 {
		parallel = len(worlds)
	}
	runs := make([]*Run, len(worlds))
	errs := make([]error, len(worlds))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, w := range worlds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			runs[i], errs[i] = w.Run(ctx)
		}()
	}
	wg.Wait()
	return runs, errs
}

func runBench(ctx context.Context, o *options, stdout io.Writer) error {
	start := time.Now()
	strats, err := selectStrategies(o.strategies)
	if err != nil {
		return err
	}
	scens, err := selectScenarios(o.scenarios, o.warmup)
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
	for _, sc := range scens {
		for _, st := range strats {
			worlds = append(worlds, &World{Index: len(worlds) + 1, Strategy: st, Scenario: sc, Stub: o.stub, Rate: o.rate,
				Bin: bin, Root: root, Timings: o.timings, Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
		}
	}
	longest := time.Duration(0)
	for _, sc := range scens {
		longest = max(longest, sc.Duration())
	}
	fmt.Fprintf(stdout, "failover-lab bench: %d worlds (%d strategies x %d scenarios) side by side, %.0f client queries/s each, %s client\n",
		len(worlds), len(strats), len(scens), o.rate, o.stub)
	fmt.Fprintf(stdout, "longest scenario %v; expect about %v. Worlds in %s\n", longest, (longest + 15*time.Second).Round(time.Second), root)
	loadBefore := loadAvg()
	runs, errs := runWorlds(ctx, worlds, o.parallel)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	rep := &Report{
		Date: today(), Machine: machine(), Go: runtime.Version(), Dnsmasq: dnsmasqVersion(),
		Binary: binaryVersion(bin), Stub: o.stub.String(), Rate: o.rate,
		Timings: "defaults: no timing option in the config", outDir: out, Load: loadAvg(),
	}
	if len(o.timings) > 0 {
		rep.Timings = "set by -set: " + strings.Join(o.timings, ", ")
	}
	for _, s := range strats {
		rep.Strategies = append(rep.Strategies, s.Key)
	}
	for _, s := range scens {
		rep.Scenarios = append(rep.Scenarios, s.Key)
	}
	byScenario := map[string][]*Run{}
	for i, r := range runs {
		if errs[i] != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s / %s: %v", worlds[i].Scenario.Key, worlds[i].Strategy.Key, errs[i]))
			continue
		}
		rep.Figures = append(rep.Figures, compute(r))
		if o.raw {
			if err := os.MkdirAll(filepath.Join(out, "runs"), 0o755); err != nil {
				return err
			}
			raw := map[string]any{"strategy": r.Strategy.Key, "scenario": r.Scenario.Key, "phase_starts": r.PhaseStarts,
				"switches": r.Switches, "status": r.Status, "queries": r.Queries}
			if err := writeJSON(filepath.Join(out, "runs", r.Scenario.Key+"-"+r.Strategy.Key+".json"), raw); err != nil {
				return err
			}
		}
		byScenario[r.Scenario.Key] = append(byScenario[r.Scenario.Key], r)
	}
	for _, sc := range scens {
		var lanes []*Run
		for _, key := range []string{"availability", "strict-order"} {
			for _, r := range byScenario[sc.Key] {
				if r.Strategy.Key == key {
					lanes = append(lanes, r)
				}
			}
		}
		if len(lanes) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, "timeline-"+sc.Key+".svg"), []byte(timelineSVG(sc, lanes)), 0o644); err != nil {
			return err
		}
	}
	rep.Took = time.Since(start).Round(time.Second).String()
	rep.Load = fmt.Sprintf("%s before, %s after", loadBefore, rep.Load)
	fmt.Fprintln(stdout)
	printTable(stdout, rep.Figures)
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
	for _, f := range rep.Figures {
		if f.Scenario == "healthy" && f.Strategy == "availability" {
			fmt.Fprintf(stdout, "probe cost: NextDNS got %d probes in %.0f s of the healthy scenario: about %s a month per NextDNS endpoint\n",
				f.ProbesToNextDNS, f.RunSeconds, thousands(f.ProbesPerMonth))
		}
	}
	fmt.Fprintf(stdout, "\nwrote %s/README.md, %s/bench.json and the timelines %s/timeline-*.svg in %s\n", out, out, out, rep.Took)
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d worlds did not run", len(rep.Errors))
	}
	return nil
}

// printAcceptance checks issue 5's acceptance figures against a bench's figures.
func printAcceptance(w io.Writer, figs []Figures) {
	get := func(strat, scen string) *Figures {
		for i := range figs {
			if figs[i].Strategy == strat && figs[i].Scenario == scen {
				return &figs[i]
			}
		}
		return nil
	}
	fmt.Fprintln(w, "acceptance (issue 5):")
	check := func(ok bool, format string, a ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, fmt.Sprintf(format, a...))
	}
	for _, strat := range []string{"availability", "privacy"} {
		for _, scen := range []string{"healthy", "slow"} {
			if f := get(strat, scen); f != nil {
				check(f.Leaked == 0, "%s, %s: %d leaked", strat, scen, f.Leaked)
			}
		}
		for _, f := range figs {
			if f.Strategy == strat && f.Scenario != "healthy" && f.Scenario != "slow" {
				check(f.LeakedBeforeFault == 0, "%s, %s: %d leaked while NextDNS was healthy before the fault", strat, f.Scenario, f.LeakedBeforeFault)
			}
		}
	}
	for _, f := range figs {
		if f.Strategy == "privacy" {
			check(f.ToBackup == 0, "privacy, %s: %d client queries reached the backup", f.Scenario, f.ToBackup)
		}
	}
	if f := get("availability", "loss10"); f != nil {
		n := uint64(0)
		if f.DaemonFailovers != nil {
			n = *f.DaemonFailovers
		}
		check(n == 0 && f.Switches == 0, "availability, 10%% loss: %d failovers, %d switches; %d leaked", n, f.Switches, f.Leaked)
	}
	if f := get("availability", "blackhole"); f != nil && f.Window != nil {
		check(f.Window.AnsweredPct >= 90, "availability, one-minute blackhole: %.1f%% of the %d client queries sent during the minute answered (aim >= 90%%); first answer via backup after %s",
			f.Window.AnsweredPct, f.Window.Queries, fmtSecs(f.FailoverS, false))
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
