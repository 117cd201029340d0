package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
)

// smokeTimings compress the daemon's timings so a failover and a fail-back fit in 30 s: probe
// every second (every 0.5 s when failing), fail after 2 bad rounds, recover after 2 good ones,
// and hold down for 2 s.
var smokeTimings = []string{"interval=1s", "fast_interval=500ms", "timeout=500ms", "fail_after=2", "recover_after=2", "hold_down=2s"}

// smokeScenario: healthy, 12 s dark, 12 s healthy again.
func smokeScenario() Scenario {
	return Scenario{Key: "smoke", Title: "smoke: NextDNS dark for 12 s (compressed timings)", Phases: []Phase{
		{Dur: 6 * time.Second, NextDNS: Healthy, Backup: Healthy},
		{Dur: 12 * time.Second, NextDNS: Dark, Backup: Healthy},
		{Dur: 12 * time.Second, NextDNS: Healthy, Backup: Healthy},
	}}
}

// ErrSmoke is returned when a smoke check fails.
var ErrSmoke = errors.New("smoke checks failed")

// smokeTail is the end stretch in which every client query must be answered by NextDNS.
const smokeTail = 4 * time.Second

func runSmoke(ctx context.Context, o *options, stdout io.Writer) error {
	bin, root, cleanup, err := setup(o)
	if err != nil {
		return err
	}
	defer cleanup()
	sc := smokeScenario()
	all := strategies()
	worlds := []*World{
		{Index: 250, Strategy: all[3], Scenario: sc, Stubs: []dnsmasqtest.Stub{o.stub}, Rate: o.rate, Bin: bin, Root: root, Timings: smokeTimings},
		{Index: 251, Strategy: all[4], Scenario: sc, Stubs: []dnsmasqtest.Stub{o.stub}, Rate: o.rate, Bin: bin, Root: root, Timings: smokeTimings},
	}
	fmt.Fprintf(stdout, "failover-lab smoke: availability and privacy worlds, %v each, %s client, timings %v\n", sc.Duration(), o.stub.Name, smokeTimings)
	runs, errs := runWorlds(ctx, worlds, 0, nil)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	failed := 0
	check := func(ok bool, format string, a ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "  %s %s\n", mark, fmt.Sprintf(format, a...))
	}
	fStart, fEnd, _ := sc.FaultWindow()
	for _, r := range runs {
		f := compute(r, "")
		name := r.Strategy.Key
		check(f.LeakedBeforeFault == 0, "%s: no client query reached the backup while NextDNS was healthy (got %d)", name, f.LeakedBeforeFault)
		check(r.DaemonExit == "exit 0", "%s: the daemon exits 0 on SIGTERM (%s)", name, r.DaemonExit)
		wantStopped := []string{viaNextDNS, viaBackup} // the static strict-order list
		if r.Strategy.Mode == "privacy" {
			wantStopped = []string{viaNextDNS}
		}
		check(slices.Equal(r.Stopped.Lines, wantStopped) && r.StoppedState == "stopped",
			"%s: on SIGTERM it leaves the stopped list %v and state \"stopped\" (got %v, %q)", name, wantStopped, r.Stopped.Lines, r.StoppedState)
		tailOK, tailN := true, 0
		for _, q := range r.Queries {
			if q.Sent >= sc.Duration()-smokeTail {
				tailN++
				if q.Via != viaNextDNS {
					tailOK = false
				}
			}
		}
		check(tailOK && tailN > 0, "%s: traffic is back on NextDNS: all %d queries of the last %v answered by NextDNS", name, tailN, smokeTail)
		switch r.Strategy.Mode {
		case "availability":
			check(f.FailoverS != nil && *f.FailoverS < (fEnd-fStart).Seconds(), "%s: failover: clients answered via the backup during the outage (first after %s)", name, fmtSecs(f.FailoverS, false))
			check(f.Switches >= 2, "%s: the servers-file switched to the backup and back (%d switches)", name, f.Switches)
		case "privacy":
			check(f.ToBackup == 0, "%s: no client query ever reached the backup (got %d)", name, f.ToBackup)
		}
		fmt.Fprintf(stdout, "       %s: %.1f%% answered, %.1f%% during the outage, p50 %.1f ms, %d switches\n", name, f.AnsweredPct, f.Window.AnsweredPct, f.P50ms, f.Switches)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d", ErrSmoke, failed)
	}
	fmt.Fprintln(stdout, "failover-lab smoke: ok")
	return nil
}
