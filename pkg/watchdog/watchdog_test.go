package watchdog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/health"
	"github.com/nextdns-failover/nextdns-failover/pkg/probe"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

// world is a virtual-time test bed: the clock advances only when the loop waits, the prober
// answers from a script of the time, and the file and signals are recorded.
type world struct {
	t      *testing.T
	mu     sync.Mutex
	now    time.Time
	t0     time.Time
	end    time.Duration
	cancel context.CancelFunc
	down   func(at time.Duration, addr netip.AddrPort) bool // is addr failing at this time?

	file        string
	writes      []write
	signals     int
	sigErr      error
	logs        []string
	last        *status.Status
	writeErr    error
	settings    *config.Settings
	loadErr     error
	onRound     func(at time.Duration, w *world)
	offline     bool          // failing probes fail on the router's side (no route)
	failCost    time.Duration // how long a failed probe round takes (default 2 s; a shorter probe timeout caps it)
	timeout     time.Duration // the timeout of the prober of the round in progress
	probes      map[string]int
	failed      map[string]int // failed probes per address since its last good one (the observer sees them too)
	observerErr error          // the observer stopped on its own (a socket error)
	rounds      []probeRound
	hooks       []Change

	// Passive: the observer's view at a time (nil: no observer), and the times it nudges.
	seen    func(at time.Duration) []health.Seen
	nudges  []time.Duration
	suspect chan struct{}
}

// probeRound is one call of the prober: when, what, and with which timeout.
type probeRound struct {
	at      time.Duration
	servers []string
	timeout time.Duration
}

type write struct {
	at      time.Duration
	content string
}

func (w *world) Now() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.now }

func (w *world) After(d time.Duration) <-chan time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A passive nudge due before the timer: time stops there, the nudge is sent, and the
	// timer never fires (the loop arms a new one).
	// One that came while a round was probing is delivered now.
	if len(w.nudges) > 0 && w.t0.Add(w.nudges[0]).Before(w.now.Add(d)) && w.nudges[0] < w.end {
		if n := w.t0.Add(w.nudges[0]); n.After(w.now) {
			w.now = n
		}
		w.nudges = w.nudges[1:]
		select {
		case w.suspect <- struct{}{}:
		default:
		}
		return make(chan time.Time)
	}
	w.now = w.now.Add(d)
	c := make(chan time.Time, 1)
	c <- w.now
	return c
}

// fakeObserver is the world's passive observer.
type fakeObserver struct{ w *world }

func (o fakeObserver) Suspect() <-chan struct{} { return o.w.suspect }
func (o fakeObserver) Err() error {
	o.w.mu.Lock()
	defer o.w.mu.Unlock()
	return o.w.observerErr
}
func (o fakeObserver) Take(now time.Time) []health.Seen {
	seen := o.w.seen(now.Sub(o.w.t0))
	o.w.mu.Lock()
	defer o.w.mu.Unlock()
	for i, a := range []string{"45.90.28.0", "45.90.30.0", "9.9.9.9"} {
		if i < len(seen) {
			seen[i].Silent += o.w.failed[a] // our own lost probes are silent queries too
		}
	}
	return seen
}
func (o fakeObserver) SetUpstreams([]netip.AddrPort, time.Duration) error { return nil }
func (o fakeObserver) Close() error                                       { return nil }

// withProbeTimeout is the world's prober for one round's timeout.
type withProbeTimeout struct {
	w       *world
	timeout time.Duration
}

func (p withProbeTimeout) Round(ctx context.Context, servers []netip.AddrPort) []probe.Result {
	p.w.mu.Lock()
	p.w.timeout = p.timeout
	p.w.mu.Unlock()
	return p.w.Round(ctx, servers)
}

func (w *world) at() time.Duration { return w.Now().Sub(w.t0) }

func (w *world) Round(ctx context.Context, servers []netip.AddrPort) []probe.Result {
	at := w.at()
	if at >= w.end {
		w.cancel()
		return nil
	}
	if w.onRound != nil {
		w.onRound(at, w)
	}
	w.mu.Lock()
	if w.probes == nil {
		w.probes = map[string]int{}
	}
	pr := probeRound{at: at, timeout: w.timeout}
	for _, s := range servers {
		w.probes[s.Addr().String()]++
		pr.servers = append(pr.servers, s.Addr().String())
	}
	w.rounds = append(w.rounds, pr)
	w.mu.Unlock()
	out := make([]probe.Result, len(servers))
	for i, s := range servers {
		out[i] = probe.Result{Server: s, Up: true, RTT: 10 * time.Millisecond, Rcode: "NOERROR"}
		w.mu.Lock()
		if w.failed == nil {
			w.failed = map[string]int{}
		}
		w.failed[s.Addr().String()] = map[bool]int{true: w.failed[s.Addr().String()] + 1}[w.down(at, s)]
		w.mu.Unlock()
		if w.down(at, s) {
			out[i] = probe.Result{Server: s, Err: probe.ErrTimeout}
			if w.offline && !s.Addr().IsLoopback() {
				out[i] = probe.Result{Server: s, Err: probe.ErrOffline, Offline: true}
			}
		}
	}
	// A failed probe takes the whole timeout.
	for _, r := range out {
		if !r.Up {
			w.mu.Lock()
			cost := 2 * time.Second
			if w.timeout < w.settings.Timeout {
				cost = w.timeout
			}
			if w.failCost > 0 {
				cost = min(w.failCost, cost)
			}
			w.now = w.now.Add(cost)
			w.mu.Unlock()
			break
		}
	}
	return out
}

func (w *world) Reload() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sigErr != nil {
		return 0, w.sigErr
	}
	w.signals++
	return 42, nil
}

func (w *world) Write(path string, b []byte) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writeErr != nil {
		return false, w.writeErr
	}
	if w.file == string(b) {
		return false, nil
	}
	w.file = string(b)
	w.writes = append(w.writes, write{w.now.Sub(w.t0), string(b)})
	return true, nil
}

func settings(t *testing.T, extra string) *config.Settings {
	t.Helper()
	sec := "\tlist secondary '9.9.9.9'\n"
	if strings.Contains(extra, "privacy") {
		sec = ""
	}
	s, err := config.Read("test.conf", strings.NewReader(`config settings 'settings'
	list primary '45.90.28.0'
	list primary '45.90.30.0'
`+sec+`	option servers_file '/x/servers.conf'
	option status_file '/x/status.json'
	option pid_file '/x/dnsmasq.pid'
`+extra))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newWorld(t *testing.T, s *config.Settings, end time.Duration, down func(time.Duration, netip.AddrPort) bool) (*world, *Watchdog) {
	t0 := time.Unix(1_000_000, 0)
	w := &world{t: t, now: t0, t0: t0, end: end, down: down, settings: s, suspect: make(chan struct{}, 1)}
	wd, err := New(Deps{
		Config: "test.conf",
		Load: func() (*config.Settings, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.settings, w.loadErr
		},
		Prober: func(s *config.Settings) Prober { return withProbeTimeout{w, s.Timeout} },
		Observe: func([]netip.AddrPort, time.Duration) (Observer, error) {
			if w.seen == nil {
				return nil, errors.New("no CAP_NET_RAW")
			}
			return fakeObserver{w}, nil
		},
		OnChange: func(c Change) { w.mu.Lock(); w.hooks = append(w.hooks, c); w.mu.Unlock() },
		Signal:   func(*config.Settings) Signaller { return w },
		Write:    w.Write,
		Read: func(string) ([]byte, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.file == "" {
				return nil, os.ErrNotExist
			}
			return []byte(w.file), nil
		},
		Publish: func(_ *config.Settings, st *status.Status) error { w.mu.Lock(); w.last = st; w.mu.Unlock(); return nil },
		Clock:   w,
		Logf: func(f string, a ...any) {
			w.mu.Lock()
			w.logs = append(w.logs, fmt.Sprintf("%6.1fs ", w.now.Sub(w.t0).Seconds())+fmt.Sprintf(f, a...))
			w.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, wd
}

func (w *world) run(wd *Watchdog, reload chan struct{}, control chan Override) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	if err := wd.Run(ctx, reload, control); err != nil {
		w.t.Fatal(err)
	}
	w.t.Logf("log:\n%s", strings.Join(w.logs, "\n"))
}

func servers(content string) string {
	var out []string
	for _, l := range strings.Split(content, "\n") {
		if strings.HasPrefix(l, "server=") {
			out = append(out, strings.TrimPrefix(l, "server="))
		}
	}
	return strings.Join(out, " ")
}

func isPrimary(a netip.AddrPort) bool { return a.Addr().String() != "9.9.9.9" }

func TestOutageFailsOverAndBack(t *testing.T) {
	s := settings(t, "")
	// NextDNS is blackholed from 100 s to 160 s.
	w, wd := newWorld(t, s, 300*time.Second, func(at time.Duration, a netip.AddrPort) bool {
		return isPrimary(a) && at >= 100*time.Second && at < 160*time.Second
	})
	w.run(wd, nil, nil)
	var got []string
	for _, wr := range w.writes {
		got = append(got, fmt.Sprintf("%s @%s", servers(wr.content), wr.at.Truncate(time.Second)))
	}
	if len(w.writes) != 4 {
		t.Fatalf("writes: %q", got)
	}
	if servers(w.writes[0].content) != "45.90.28.0 45.90.30.0" || w.writes[0].at != 0 {
		t.Errorf("start: %q", got[0])
	}
	fo := w.writes[1]
	if servers(fo.content) != "9.9.9.9" {
		t.Errorf("failover list: %q", got[1])
	}
	// Worst case: the outage starts just after a round; interval + timeout + fast_interval (+timeout).
	if fo.at < 100*time.Second || fo.at > 100*time.Second+s.Interval+2*s.Timeout+s.FastInterval {
		t.Errorf("failover at %s, want within %s of the outage at 100s", fo.at, s.Interval+2*s.Timeout+s.FastInterval)
	}
	back := w.writes[2]
	if servers(back.content) != "45.90.28.0 45.90.30.0" || back.at < 160*time.Second || back.at > 160*time.Second+time.Duration(s.RecoverAfter+1)*s.FastInterval {
		t.Errorf("fail-back: %q, want the primaries within %d fast rounds of 160s", got[2], s.RecoverAfter+1)
	}
	if !strings.Contains(w.writes[3].content, "stopped") || servers(w.writes[3].content) != "45.90.28.0 45.90.30.0 9.9.9.9" {
		t.Errorf("on stop: %q", got[3])
	}
	if w.signals != 4 {
		t.Errorf("%d signals for 4 writes", w.signals)
	}
	c := w.last.Counters
	if c.Failovers != 1 || c.Failbacks != 1 || w.last.State != "stopped" {
		t.Errorf("status: %s, counters %+v", w.last.State, c)
	}
}

func TestPacketLossNeverFailsOver(t *testing.T) {
	s := settings(t, "")
	n := 0
	// Every 7th round of NextDNS fails (about 14% of rounds), never two in a row.
	w, wd := newWorld(t, s, time.Hour, func(at time.Duration, a netip.AddrPort) bool {
		if a.Addr().String() == "45.90.28.0" {
			n++
		}
		return isPrimary(a) && n%7 == 0
	})
	w.run(wd, nil, nil)
	if w.last.Counters.Failovers != 0 || len(w.writes) != 2 {
		t.Errorf("failovers %d, writes %d: isolated lost rounds must not fail over", w.last.Counters.Failovers, len(w.writes))
	}
}

func TestEverythingDownChangesNothing(t *testing.T) {
	s := settings(t, "")
	w, wd := newWorld(t, s, 200*time.Second, func(at time.Duration, a netip.AddrPort) bool {
		return at >= 50*time.Second && at < 150*time.Second
	})
	w.offline = true
	sawOffline := false
	w.onRound = func(at time.Duration, w *world) {
		if w.last != nil && w.last.State == "offline" && strings.Contains(w.last.Reason, "the router's own network is down") {
			sawOffline = true
		}
	}
	w.run(wd, nil, nil)
	if !sawOffline {
		t.Error("never reported offline with the router's network as the reason")
	}
	if len(w.writes) != 2 || w.signals != 2 || w.last.Counters.Failovers != 0 {
		t.Errorf("writes %d, signals %d, failovers %d: the WAN going away must change nothing", len(w.writes), w.signals, w.last.Counters.Failovers)
	}
}

func TestPrivacyOnlyReorders(t *testing.T) {
	s := settings(t, "\toption mode 'privacy'\n")
	w, wd := newWorld(t, s, 200*time.Second, func(at time.Duration, a netip.AddrPort) bool {
		return a.Addr().String() == "45.90.28.0" && at >= 50*time.Second
	})
	w.run(wd, nil, nil)
	for _, wr := range w.writes {
		if strings.Contains(wr.content, "9.9.9.9") {
			t.Fatalf("privacy mode wrote a backup: %q", wr.content)
		}
	}
	if len(w.writes) < 2 || servers(w.writes[1].content) != "45.90.30.0" {
		t.Errorf("writes %v: want the healthy endpoint alone", w.writes)
	}
}

func TestSignalFailureIsRetriedAndLoggedOnce(t *testing.T) {
	s := settings(t, "")
	w, wd := newWorld(t, s, 120*time.Second, func(time.Duration, netip.AddrPort) bool { return false })
	w.sigErr = errors.New("no pid file")
	w.onRound = func(at time.Duration, w *world) {
		if at > 60*time.Second {
			w.mu.Lock()
			w.sigErr = nil
			w.mu.Unlock()
		}
	}
	w.run(wd, nil, nil)
	if w.signals < 1 {
		t.Fatal("the owed signal was never retried")
	}
	n := 0
	for _, l := range w.logs {
		if strings.Contains(l, "no pid file") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the signal problem was logged %d times, want once", n)
	}
}

func TestFileRestoredWhenChangedBehindOurBack(t *testing.T) {
	s := settings(t, "")
	w, wd := newWorld(t, s, 100*time.Second, func(time.Duration, netip.AddrPort) bool { return false })
	w.onRound = func(at time.Duration, w *world) {
		if at >= 50*time.Second && at < 51*time.Second {
			w.mu.Lock()
			w.file = "server=6.6.6.6\n"
			w.mu.Unlock()
		}
	}
	w.run(wd, nil, nil)
	if len(w.writes) != 3 || servers(w.writes[1].content) != "45.90.28.0 45.90.30.0" {
		t.Errorf("writes %v: want the file restored once", w.writes)
	}
}

func TestReloadKeepsLastGoodConfig(t *testing.T) {
	s := settings(t, "")
	w, wd := newWorld(t, s, 100*time.Second, func(time.Duration, netip.AddrPort) bool { return false })
	reload := make(chan struct{}, 1)
	step := 0
	w.onRound = func(at time.Duration, w *world) {
		switch {
		case at >= 20*time.Second && step == 0:
			step++
			w.loadErr = errors.New("test.conf:3: option 'mode': \"x\" is not a mode")
			reload <- struct{}{}
		case at >= 40*time.Second && step == 1:
			step++
			w.loadErr = nil
			w.settings = settings(t, "\tlist secondary '149.112.112.112'\n")
			reload <- struct{}{}
		}
	}
	w.run(wd, reload, nil)
	joined := strings.Join(w.logs, "\n")
	if !strings.Contains(joined, "config rejected, the previous one stays in force") || !strings.Contains(joined, "is not a mode") {
		t.Errorf("invalid reload not logged:\n%s", joined)
	}
	if got := servers(w.writes[len(w.writes)-1].content); got != "45.90.28.0 45.90.30.0 9.9.9.9 149.112.112.112" {
		t.Errorf("after a valid reload the stopped list is %q", got)
	}
	if w.last.Counters.Reloads < 2 {
		t.Errorf("reloads %d", w.last.Counters.Reloads)
	}
}

func TestOverride(t *testing.T) {
	s := settings(t, "")
	w, wd := newWorld(t, s, 100*time.Second, func(time.Duration, netip.AddrPort) bool { return false })
	control := make(chan Override, 1)
	sent := 0
	w.onRound = func(at time.Duration, w *world) {
		if at >= 20*time.Second && sent == 0 {
			sent++
			control <- Override{Side: "secondary", Until: w.now.Add(30 * time.Second)}
		}
	}
	w.run(wd, nil, control)
	if len(w.writes) != 4 || servers(w.writes[1].content) != "9.9.9.9" || servers(w.writes[2].content) != "45.90.28.0 45.90.30.0" {
		t.Errorf("writes %v: want forced to the backup, then back after 30 s", w.writes)
	}
	if d := w.writes[2].at - w.writes[1].at; d < 30*time.Second || d > 30*time.Second+s.FastInterval+time.Second {
		t.Errorf("override lasted %s, want 30s", d)
	}
}

func TestReloadOfHoldDownKeepsTheFailover(t *testing.T) {
	s := settings(t, "")
	// NextDNS is down from 10 s to the end; at 60 s, while failed over, hold_down changes.
	w, wd := newWorld(t, s, 120*time.Second, func(at time.Duration, a netip.AddrPort) bool {
		return isPrimary(a) && at >= 10*time.Second
	})
	reload := make(chan struct{}, 1)
	sent := false
	w.onRound = func(at time.Duration, w *world) {
		if at >= 60*time.Second && !sent {
			sent = true
			w.settings = settings(t, "\toption hold_down '10s'\n")
			reload <- struct{}{}
		}
	}
	w.run(wd, reload, nil)
	if len(w.writes) != 3 || w.last.Counters.Failovers != 1 || w.last.Counters.Failbacks != 0 {
		t.Errorf("writes %d, failovers %d, fail-backs %d: a hold_down reload must not fail back while NextDNS is down",
			len(w.writes), w.last.Counters.Failovers, w.last.Counters.Failbacks)
	}
	if time.Duration(w.last.HoldDown) != 10*time.Second {
		t.Errorf("hold-down %s after the reload, want 10s", time.Duration(w.last.HoldDown))
	}
}

func TestRestartWhileFailedOverKeepsTheBackupsFirst(t *testing.T) {
	s := settings(t, "")
	failover := "# Generated by nextdns-failover: do not edit, it will be rewritten.\n# state: failover\nserver=9.9.9.9\n"
	// NextDNS is still down when the daemon comes back, and returns at 60 s.
	w, wd := newWorld(t, s, 100*time.Second, func(at time.Duration, a netip.AddrPort) bool {
		return isPrimary(a) && at < 60*time.Second
	})
	w.file = failover
	w.run(wd, nil, nil)
	if len(w.writes) != 2 || w.signals != 3 {
		t.Fatalf("writes %v, signals %d: want the failover list kept (one signal at start), then the fail-back and the stop", w.writes, w.signals)
	}
	back := w.writes[0]
	if servers(back.content) != "45.90.28.0 45.90.30.0" || back.at < 60*time.Second || back.at > 60*time.Second+time.Duration(s.RecoverAfter+1)*s.FastInterval {
		t.Errorf("fail-back %q at %s: want NextDNS within %d fast rounds of its return at 60 s (no new hold-down)", servers(back.content), back.at, s.RecoverAfter+1)
	}
	if w.last.Counters.Failovers != 0 || w.last.Counters.Failbacks != 1 {
		t.Errorf("counters %+v", w.last.Counters)
	}
}
