package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
)

// demoScenario is the demo: healthy, NextDNS goes dark, failover, NextDNS returns, fail-back.
// The outage starts 17.5 s in, between two of the daemon's default rounds (at start, then every
// 5 s), so the failover comes about 5 s into it; the fail-back waits for the 30 s hold-down
// (about 35 s after the outage began), so 30 s dark and 25 s after keep both inside about a
// minute, with 15 s of settled traffic at the end.
func demoScenario() Scenario {
	return Scenario{Key: "demo", Title: "demo: NextDNS goes dark for 30 s", Phases: []Phase{
		{Dur: 17500 * time.Millisecond, NextDNS: Healthy, Backup: Healthy},
		{Dur: 30 * time.Second, NextDNS: Dark, Backup: Healthy},
		{Dur: 25 * time.Second, NextDNS: Healthy, Backup: Healthy},
	}}
}

// progress keeps the demo's running counts.
type progress struct {
	mu                       sync.Mutex
	total, next, back, fails int
}

func (p *progress) add(q Query) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	switch q.Via {
	case viaNextDNS:
		p.next++
	case viaBackup:
		p.back++
	default:
		p.fails++
	}
}

func (p *progress) line(at time.Duration, state string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("t=%3.0fs  %-22s  answered %d: NextDNS %d, backup %d; no answer %d", at.Seconds(), state, p.next+p.back, p.next, p.back, p.fails)
}

// isTerminal says whether f is a terminal, where the progress line is rewritten in place.
func isTerminal(f io.Writer) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runDemo(ctx context.Context, o *options, stdout io.Writer) error {
	bin, root, cleanup, err := setup(o)
	if err != nil {
		return err
	}
	defer cleanup()
	sc := demoScenario()
	strat := strategies()[3] // availability
	tty := isTerminal(stdout)
	var outMu sync.Mutex
	var prog progress
	state := "starting"
	var t0 time.Time
	var lastLine string
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		if tty && lastLine != "" {
			fmt.Fprint(stdout, "\r\033[K")
		}
		fmt.Fprintf(stdout, format+"\n", a...)
		if tty && lastLine != "" {
			fmt.Fprint(stdout, lastLine)
		}
	}
	// evMu guards the narration's state, set from the world's goroutines (phases, watcher)
	// and read by the progress ticker.
	var evMu sync.Mutex
	var darkAt, backAt time.Duration = -1, -1
	narrate := func(ev Event) {
		evMu.Lock()
		defer evMu.Unlock()
		switch {
		case ev.Phase != nil && ev.At < time.Second:
			t0 = time.Now().Add(-ev.At)
			state = "NextDNS healthy"
			say("t=%3.0fs  all healthy: dnsmasq sends every query to NextDNS", ev.At.Seconds())
		case ev.Phase != nil && !ev.Phase.NextDNS.Answering():
			darkAt, state = ev.At, "NextDNS dark"
			say("t=%3.0fs  NextDNS goes dark: it drops every packet. dnsmasq's queries to it go unanswered, and the watchdog sees it on the wire...", ev.At.Seconds())
		case ev.Phase != nil:
			backAt, state = ev.At, "NextDNS back"
			say("t=%3.0fs  NextDNS is back. The watchdog waits for it to prove healthy (and for its hold-down)...", ev.At.Seconds())
		case ev.Switch != nil && ev.Switch.First == viaBackup:
			state = "failed over"
			after := ""
			if darkAt >= 0 {
				after = fmt.Sprintf(", %.1f s after NextDNS went dark", (ev.At - darkAt).Seconds())
			}
			say("t=%3.0fs  failover: one confirmation probe failed; the watchdog rewrote the servers-file (the backup alone) and sent SIGHUP to dnsmasq%s", ev.At.Seconds(), after)
		case ev.Switch != nil && ev.Switch.First == viaNextDNS:
			state = "back on NextDNS"
			after := ""
			if backAt >= 0 {
				after = fmt.Sprintf(", %.1f s after NextDNS returned", (ev.At - backAt).Seconds())
			}
			say("t=%3.0fs  fail-back: NextDNS alone in the servers-file again%s", ev.At.Seconds(), after)
		}
	}
	w := &World{Index: 200, Strategy: strat, Scenario: sc, Stubs: []dnsmasqtest.Stub{o.stub}, Rate: o.rate, Bin: bin, Root: root, Timings: o.timings,
		Progress: prog.add, OnEvent: narrate, Align: o.shape.Interval}
	fmt.Fprintf(stdout, "failover-lab demo: one world on loopback, %v of traffic.\n", sc.Duration())
	fmt.Fprintf(stdout, "  a real dnsmasq (strict-order, cache off), a fake NextDNS and a fake backup, and the real\n")
	fmt.Fprintf(stdout, "  `%s run` with its default timings (availability mode).\n", o.bin)
	fmt.Fprintf(stdout, "  clients: %.0f queries a second, every name unique, resending like %s.\n\n", o.rate, o.stub)

	done := make(chan struct{})
	var tickWG sync.WaitGroup
	tickWG.Add(1)
	go func() {
		defer tickWG.Done()
		every := 250 * time.Millisecond
		if !tty {
			every = 5 * time.Second
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			evMu.Lock()
			started, at, st := !t0.IsZero(), time.Since(t0), state
			evMu.Unlock()
			if !started {
				continue
			}
			outMu.Lock()
			l := prog.line(at, st)
			if tty {
				lastLine = l
				fmt.Fprint(stdout, "\r\033[K"+l)
			} else {
				fmt.Fprintln(stdout, l)
			}
			outMu.Unlock()
		}
	}()
	r, err := w.Run(ctx)
	close(done)
	tickWG.Wait()
	if tty {
		fmt.Fprintln(stdout)
	}
	if err != nil {
		return err
	}
	f := compute(r, "")
	out := o.out
	if out == "" {
		out = os.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	svg := filepath.Join(out, "failover-lab-demo.svg")
	if err := os.WriteFile(svg, []byte(timelineSVG(sc, []*Run{r})), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe numbers (%d client queries):\n", f.Queries)
	fmt.Fprintf(stdout, "  answered                          %.1f%% overall, %.1f%% of those sent while NextDNS was dark\n", f.AnsweredPct, f.Window.AnsweredPct)
	fmt.Fprintf(stdout, "  latency of answers                p50 %.1f ms, p99 %.1f ms\n", f.P50ms, f.P99ms)
	fmt.Fprintf(stdout, "  first answer via the backup       %s after NextDNS went dark\n", fmtSecs(f.FailoverS, false))
	fmt.Fprintf(stdout, "  traffic back on NextDNS           %s after it returned\n", fmtSecs(f.FailbackS, f.FailbackNever))
	fmt.Fprintf(stdout, "  queries leaked to the backup      %d before the outage, %d after NextDNS returned (until the fail-back)\n", f.LeakedBeforeFault, f.LeakedAfterReturn)
	fmt.Fprintf(stdout, "  servers-file switches             %d (each SIGHUP empties dnsmasq's cache)\n", f.Switches)
	fmt.Fprintf(stdout, "\nThe picture: %s\n", svg)
	fmt.Fprintf(stdout, "Every strategy in every scenario: make bench (results in results/README.md).\n")
	return nil
}
