package main

import (
	"context"
	"os"
	"os/exec"
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
			tc.check(t, compute(&Run{Strategy: strategies()[3], Scenario: tenSecondOutage, Queries: tc.queries}))
		})
	}
}

func TestScenarioFaultWindow(t *testing.T) {
	for _, sc := range benchScenarios(defaultWarmup) {
		t.Run(sc.Key, func(t *testing.T) {
			st, en, ok := sc.FaultWindow()
			if sc.Key == "healthy" {
				if ok {
					t.Errorf("healthy has a fault window %v..%v", st, en)
				}
				return
			}
			if !ok || st != defaultWarmup || en-st < faultLen-flapPeriod {
				t.Errorf("fault window %v..%v (%v), want from %v for at least %v", st, en, ok, defaultWarmup, faultLen)
			}
			if d := sc.Duration(); d > 3*time.Minute {
				t.Errorf("scenario lasts %v: the bench would be too slow", d)
			}
		})
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
		{Index: 240, Strategy: all[0], Scenario: sc, Stub: quick, Rate: 20, Root: root},
		{Index: 241, Strategy: all[1], Scenario: sc, Stub: quick, Rate: 20, Root: root},
	}
	runs, errs := runWorlds(context.Background(), worlds, 0)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	only, strict := compute(runs[0]), compute(runs[1])
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
