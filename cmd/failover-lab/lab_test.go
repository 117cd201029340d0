package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

// tenSecondOutage: 10 s healthy, 10 s dark, 20 s healthy.
var tenSecondOutage = Scenario{Key: "t", Phases: []Phase{
	{Dur: 10 * time.Second, NextDNS: Healthy, Backup: Healthy},
	{Dur: 10 * time.Second, NextDNS: Dark, Backup: Healthy},
	{Dur: 20 * time.Second, NextDNS: Healthy, Backup: Healthy},
}}

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// q builds a query sent at s seconds, answered via via after rtt, reaching the backup at
// atBackup seconds (negative: never).
func q(s float64, via string, rtt float64, atBackup float64) Query {
	b := time.Duration(-1)
	if atBackup >= 0 {
		b = sec(atBackup)
	}
	return Query{Sent: sec(s), Via: via, RTT: sec(rtt), AtBackup: b, AtNext: -1}
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name    string
		queries []Query
		check   func(t *testing.T, f Figures)
	}{
		{"a backup query while NextDNS is healthy is a leak", []Query{
			q(1, viaBackup, 0.001, 1), q(2, viaNextDNS, 0.001, -1),
		}, func(t *testing.T, f Figures) {
			if f.Leaked != 1 || f.LeakedBeforeFault != 1 {
				t.Errorf("leaked %d (before fault %d), want 1", f.Leaked, f.LeakedBeforeFault)
			}
		}},
		{"a backup query while NextDNS is dark is no leak, and times the failover", []Query{
			q(11, viaNone, 0, -1), q(13, viaBackup, 0.002, 13.001),
		}, func(t *testing.T, f Figures) {
			if f.Leaked != 0 || f.ToBackup != 1 {
				t.Errorf("leaked %d, to backup %d; want 0, 1", f.Leaked, f.ToBackup)
			}
			if f.FailoverS == nil || *f.FailoverS < 2.9 || *f.FailoverS > 3.1 {
				t.Errorf("failover %v, want about 3 s", f.FailoverS)
			}
			if f.Window.Queries != 2 || f.Window.Answered != 1 || f.Window.AnsweredPct != 50 {
				t.Errorf("window %+v, want 1 of 2", f.Window)
			}
		}},
		{"backup queries after the return are leaks and time the fail-back", []Query{
			q(14, viaBackup, 0.001, 14), q(22, viaBackup, 0.001, 22), q(25, viaNextDNS, 0.001, -1),
		}, func(t *testing.T, f Figures) {
			if f.LeakedAfterReturn != 1 || f.Leaked != 1 {
				t.Errorf("leaked %d after return, %d in all; want 1, 1", f.LeakedAfterReturn, f.Leaked)
			}
			if f.FailbackS == nil || *f.FailbackS < 1.9 || *f.FailbackS > 2.1 || f.FailbackNever {
				t.Errorf("failback %v (never %v), want about 2 s", f.FailbackS, f.FailbackNever)
			}
		}},
		{"a backup query near the end means traffic never came back", []Query{
			q(35, viaBackup, 0.001, 35),
		}, func(t *testing.T, f Figures) {
			if !f.FailbackNever {
				t.Errorf("failback %v, want never", f.FailbackS)
			}
		}},
		{"latency quantiles count answered queries only", []Query{
			q(1, viaNextDNS, 0.010, -1), q(2, viaNextDNS, 0.020, -1), q(3, viaNone, 0, -1), q(4, viaNextDNS, 2.5, -1),
		}, func(t *testing.T, f Figures) {
			if f.P50ms != 20 || f.P99ms != 2500 || f.Answered != 3 || f.AnsweredPct != 75 {
				t.Errorf("p50 %v p99 %v answered %d (%v%%), want 20, 2500, 3 (75%%)", f.P50ms, f.P99ms, f.Answered, f.AnsweredPct)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, compute(&Run{Strategy: strategies()[3], Scenario: tenSecondOutage, Queries: tc.queries}, ""))
		})
	}
}

func TestScenarioFaultWindow(t *testing.T) {
	sh := defaultShape(5 * time.Second)
	for v := range sh.Phases {
		for _, sc := range benchScenarios(sh, v) {
			t.Run(sc.Name(), func(t *testing.T) {
				st, en, ok := sc.FaultWindow()
				if sc.Key == "healthy" {
					if ok {
						t.Errorf("healthy has a fault window %v..%v", st, en)
					}
					return
				}
				warm := sh.Warmup
				if sc.Phases[0].Idle {
					warm = sh.Idle
				}
				if want := warm + sh.Offset(v); !ok || st != want || en-st < sh.Fault-flapPeriod {
					t.Errorf("fault window %v..%v (%v), want from %v for at least %v", st, en, ok, want, sh.Fault)
				}
				if d, limit := sc.Duration(), 3*time.Minute+sh.Loss; d > limit {
					t.Errorf("scenario lasts %v: the bench would be too slow", d)
				}
			})
		}
	}
}

// TestShapeOffsets: five phases spread evenly over the interval, 0.1 to 0.9 of it after a round.
func TestShapeOffsets(t *testing.T) {
	sh := defaultShape(5 * time.Second)
	var got []time.Duration
	for v := range sh.Phases {
		got = append(got, sh.Offset(v))
	}
	want := []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond, 3500 * time.Millisecond, 4500 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("offsets %v, want %v", got, want)
	}
}

// TestComputePerStub: each client model's figures count its own queries; the idle check looks
// at the first query sent into the outage; the probe rate counts the healthy stretch with clients.
func TestComputePerStub(t *testing.T) {
	idle := Scenario{Key: "idle-blackhole", Phases: []Phase{
		{Dur: 10 * time.Second, NextDNS: Healthy, Backup: Healthy, Idle: true},
		{Dur: 2 * time.Second, NextDNS: Dark, Backup: Healthy, Idle: true},
		{Dur: 8 * time.Second, NextDNS: Dark, Backup: Healthy},
		{Dur: 20 * time.Second, NextDNS: Healthy, Backup: Healthy},
	}}
	mk := func(stub string, s float64, via string, rtt float64) Query {
		qq := q(s, via, rtt, -1)
		qq.Stub = stub
		return qq
	}
	r := &Run{Strategy: strategies()[3], Scenario: idle, Stubs: []dnsmasqtest.Stub{dnsmasqtest.Musl, dnsmasqtest.Glibc},
		Queries: []Query{mk("musl", 12, viaBackup, 4.9), mk("glibc", 12.1, viaBackup, 5.2), mk("musl", 13, viaNone, 0)}}
	m, g := compute(r, "musl"), compute(r, "glibc")
	if m.Queries != 2 || g.Queries != 1 {
		t.Errorf("queries musl %d glibc %d, want 2, 1", m.Queries, g.Queries)
	}
	if m.IdleFirst == nil || !m.IdleFirst.InTime || g.IdleFirst == nil || !g.IdleFirst.InTime {
		t.Errorf("idle first musl %+v glibc %+v: both answered within their give-up times", m.IdleFirst, g.IdleFirst)
	}
	if m.ProbesPerMin != nil {
		t.Errorf("probe rate %v for a run without a healthy stretch with clients", *m.ProbesPerMin)
	}

	h := &Run{Strategy: strategies()[3], Scenario: Scenario{Key: "healthy", Phases: []Phase{{Dur: 61 * time.Second, NextDNS: Healthy, Backup: Healthy}}},
		ProbeTimes: []time.Duration{0, sec(5), sec(30)}, Switches: []Switch{{First: viaBackup}, {First: viaNextDNS}}}
	f := compute(h, "")
	if f.ProbesPerMin == nil || *f.ProbesPerMin != 2 {
		t.Errorf("probe rate %v, want 2 a minute (the probe at the start left out)", f.ProbesPerMin)
	}
	if f.Switches != 2 || f.Failovers != 1 {
		t.Errorf("switches %d failovers %d, want 2, 1", f.Switches, f.Failovers)
	}
}

// TestLeakWithTwoEndpoints: with one NextDNS endpoint of two dark, a query at the backup is a leak.
func TestLeakWithTwoEndpoints(t *testing.T) {
	sc := benchScenarios(defaultShape(5*time.Second), 0)
	i := slices.IndexFunc(sc, func(s Scenario) bool { return s.Key == "one-dead" })
	one := sc[i]
	st, _, _ := one.FaultWindow()
	qq := q((st + time.Second).Seconds(), viaBackup, 0.001, (st + time.Second).Seconds())
	f := compute(&Run{Strategy: strategies()[3], Scenario: one, Queries: []Query{qq}}, "")
	if f.Leaked != 1 || f.LeakedDuringFault != 1 {
		t.Errorf("leaked %d (during the fault %d), want 1", f.Leaked, f.LeakedDuringFault)
	}
	if one.Outage() {
		t.Error("one endpoint of two dead is no outage")
	}
}

// TestSummaryAndTargets: medians and worsts over the phases, and the PASS/FAIL lines.
func TestSummaryAndTargets(t *testing.T) {
	fig := func(scen, stub string, v int, pct, first float64, leaks, switches int, probes float64) Figures {
		f := Figures{Strategy: "availability", Scenario: scen, Stub: stub, Variant: v, Leaked: leaks, Switches: switches, ProbesPerMin: &probes,
			Window: &Window{AnsweredPct: pct}}
		if first >= 0 {
			f.FailoverS = &first
		}
		return f
	}
	var figs []Figures
	for v, pct := range []float64{100, 99.9, 99.8, 97, 99.6} {
		for _, stub := range stubNames {
			figs = append(figs, fig("blackhole", stub, v, pct, 0.2*float64(v+1), 0, 2, 1))
			figs = append(figs, fig("healthy", stub, v, 100, -1, 0, 0, float64(v)))
		}
	}
	ss := summarize(figs, sourceNow)
	if len(ss) != 2 || ss[0].Scenario != "healthy" || ss[1].Scenario != "blackhole" {
		t.Fatalf("summaries %+v", ss)
	}
	b := ss[1]
	if a := b.Stubs["musl"].Answered; a.Median != 99.8 || a.Worst != 97 || b.Runs != 5 {
		t.Errorf("answered %+v over %d runs, want median 99.8, worst 97 over 5", a, b.Runs)
	}
	if f := b.Stubs["glibc"].First; f == nil || f.Median != 0.6 || f.Worst != 1 {
		t.Errorf("first via backup %+v, want median 0.6, worst 1", f)
	}
	if p := ss[0].ProbesPerMin; p == nil || p.Median != 2 || p.Worst != 4 {
		t.Errorf("probes %+v, want median 2, worst 4", p)
	}
	checks := targets(ss, nil)
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	// answered (2 stubs), first via backup (2), healthy leaks and switches, probes: 6, all pass
	if len(checks) != 6 || failed != 0 {
		t.Errorf("%d checks, %d failed: %+v", len(checks), failed, checks)
	}
}

// TestDaemonConfigIsValid checks the config the lab gives the daemon with the product's own
// parser: the world's upstreams and files, and nothing else changed (default timings).
func TestDaemonConfigIsValid(t *testing.T) {
	for _, mode := range []string{"availability", "privacy"} {
		t.Run(mode, func(t *testing.T) {
			text := daemonConfig(mode, []string{"127.42.1.2#40001"}, []string{"127.42.1.3#40002"},
				"/tmp/w/servers.conf", "/tmp/w/dnsmasq.pid", "/tmp/w/status.json", "/tmp/w/dhcp.missing", nil)
			s, err := config.Read("lab.conf", strings.NewReader(text))
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			if string(s.Mode) != mode || len(s.Primary) != 1 || s.Primary[0].String() != "127.42.1.2#40001" ||
				len(s.Secondary) != 1 || s.Secondary[0].String() != "127.42.1.3#40002" {
				t.Errorf("settings %+v", s)
			}
			if s.ServersFile != "/tmp/w/servers.conf" || s.PIDFile != "/tmp/w/dnsmasq.pid" || s.StatusFile != "/tmp/w/status.json" {
				t.Errorf("files %q %q %q", s.ServersFile, s.PIDFile, s.StatusFile)
			}
			d := config.Defaults()
			if s.Interval != d.Interval || s.FailAfter != d.FailAfter || s.HoldDown != d.HoldDown {
				t.Errorf("timings changed from the defaults: %+v", s)
			}
		})
	}
}

func TestSmokeTimingsAreValid(t *testing.T) {
	text := daemonConfig("availability", []string{"127.0.0.2#5300"}, nil, "/tmp/s", "/tmp/p", "/tmp/st", "/tmp/d", smokeTimings)
	s, err := config.Read("smoke.conf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if s.Interval != time.Second || s.HoldDown != 2*time.Second {
		t.Errorf("interval %v hold-down %v", s.Interval, s.HoldDown)
	}
}

func TestFaultApply(t *testing.T) {
	s, err := fakedns.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name  string
		f     Fault
		kind  fakedns.Behaviour
		share float64
	}{
		{"dark drops", Dark, fakedns.Drop, 0},
		{"lossy answers with loss", Fault{Kind: fakedns.Answer, Share: 0.1}, fakedns.Answer, 0.1},
		{"servfail", Fault{Kind: fakedns.ServFail}, fakedns.ServFail, 0},
		{"healthy", Healthy, fakedns.Answer, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.apply(s)
			if k, sh := s.Behaviour(); k != tc.kind || sh != tc.share {
				t.Errorf("behaviour %v %v, want %v %v", k, sh, tc.kind, tc.share)
			}
		})
	}
}

func TestTimelineSVG(t *testing.T) {
	r := &Run{Strategy: strategies()[3], Scenario: tenSecondOutage, Queries: []Query{q(1, viaNextDNS, 0.001, -1), q(12, viaBackup, 0.001, 12)},
		Switches: []Switch{{At: sec(11), First: viaBackup}}}
	svg := timelineSVG(tenSecondOutage, []*Run{r})
	for _, want := range []string{"<svg", "nextdns-failover, availability", colBackup, colNext, "</svg>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

// TestStaticWorlds runs two short worlds end to end (real dnsmasq, fakes, clients) and checks
// the figures a user would read: strict-order answers through the outage via the backup after
// a resend, NextDNS-only never touches the backup, and neither leaks while NextDNS is healthy.
func TestStaticWorlds(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
		if _, err := exec.LookPath("dnsmasq"); err != nil {
			t.Skip("dnsmasq not installed")
		}
	}
	// a stub resending after 1 s: quick, yet far above the stalls of a loaded CI machine
	quick := dnsmasqtest.Stub{Name: "quick", Interval: time.Second, Sends: 2}
	sc := Scenario{Key: "t", Title: "short outage", Phases: []Phase{
		{Dur: 2 * time.Second, NextDNS: Healthy, Backup: Healthy},
		{Dur: 4 * time.Second, NextDNS: Dark, Backup: Healthy},
		{Dur: 2 * time.Second, NextDNS: Healthy, Backup: Healthy},
	}}
	// not t.TempDir: its parent is 0700 and dnsmasq reads the servers-file as nobody
	root, err := worldRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	all := strategies()
	worlds := []*World{
		{Index: 240, Strategy: all[0], Scenario: sc, Stubs: []dnsmasqtest.Stub{quick}, Rate: 20, Root: root},
		{Index: 241, Strategy: all[1], Scenario: sc, Stubs: []dnsmasqtest.Stub{quick}, Rate: 20, Root: root},
	}
	runs, errs := runWorlds(context.Background(), worlds, 0, nil)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	only, strict := compute(runs[0], ""), compute(runs[1], "")
	if only.ToBackup != 0 || only.LeakedBeforeFault != 0 {
		t.Errorf("NextDNS only: %d queries reached the backup", only.ToBackup)
	}
	// NextDNS only answers only the queries resent after its return (the last second)
	if only.Window.AnsweredPct > 40 {
		t.Errorf("NextDNS only answered %.1f%% during the outage", only.Window.AnsweredPct)
	}
	if strict.Window.AnsweredPct < only.Window.AnsweredPct+40 || strict.LeakedBeforeFault != 0 {
		t.Errorf("strict-order: %.1f%% answered during the outage (NextDNS only: %.1f%%), %d leaked before it",
			strict.Window.AnsweredPct, only.Window.AnsweredPct, strict.LeakedBeforeFault)
	}
	if strict.FailoverS == nil || *strict.FailoverS > 2.5 {
		t.Errorf("strict-order: first answer via backup after %v, want within about a resend (1 s)", strict.FailoverS)
	}
}

func TestThousands(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{"rounds down", 243933, "244,000"},
		{"millions", 1036800, "1,037,000"},
		{"small numbers stay exact", 400, "400"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := thousands(tc.n); got != tc.want {
				t.Errorf("thousands(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}

// TestSetReplacesDefaultLines: an option given with -set replaces the default config's own line
// for it, and the world's own options cannot be set.
func TestSetReplacesDefaultLines(t *testing.T) {
	o, err := parseFlags([]string{"-bench", "-set", "interval=2s,probe_name=probe.lab.example"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.shape.Interval != 2*time.Second {
		t.Errorf("interval for the phases %v, want 2s", o.shape.Interval)
	}
	text := daemonConfig("availability", []string{"127.0.0.2#5300"}, nil, "/tmp/s", "/tmp/p", "/tmp/st", "/tmp/d", o.timings)
	s, err := config.Read("set.conf", strings.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if s.Interval != 2*time.Second || s.ProbeName != "probe.lab.example" {
		t.Errorf("interval %v, probe name %q", s.Interval, s.ProbeName)
	}
	if _, err := parseFlags([]string{"-bench", "-set", "mode=privacy"}, io.Discard); err == nil {
		t.Error("-set mode=privacy accepted: the world sets the mode")
	}
}
