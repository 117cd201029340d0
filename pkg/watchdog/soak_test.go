package watchdog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/dnsmasq"
	"github.com/nextdns-failover/nextdns-failover/pkg/probe"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

// Soak tuning. soakRounds is "thousands of rounds": at the default 5 s interval, about four
// hours of a router's life, with 50 outages, 30 reloads and 6 overrides in it. The probe
// timeout is real time (the probes are real): 25 ms is ample on loopback and keeps the
// blackholed rounds (130 of them) at about 3 s in all. The bounds allow noise (a GC cycle's
// leftovers, a fake server's goroutine finishing its reply) but not growth per round: a leak
// of one goroutine, one descriptor or 100 bytes per round would exceed them 10 times over.
const (
	soakRounds     = 3000
	soakWarmup     = 300 // rounds before the first measurement (then again halfway and at the end)
	soakTimeout    = 25 * time.Millisecond
	soakGoroutines = 2
	soakFDs        = 2
	soakHeap       = 64 << 10 // measured: +15 to +28 KiB from round 300 to 3000; flat (204-211 KiB) from 4000 to 20000
)

// soak drives the real loop: the real prober against fake servers on loopback, the real
// in-place writer and status writer into a temporary folder, a recording signaller, and a
// virtual clock that only paces (After returns at once, moving time forward).
type soak struct {
	t                    *testing.T
	nextdns, alt, backup *fakedns.Server
	good, other          *config.Settings // two valid configs; other has another NextDNS
	reload               chan struct{}
	control              chan Override
	cancel               context.CancelFunc

	mu       sync.Mutex
	now      time.Time
	round    int
	loads    int
	signals  int
	logLines int
	lastLogs []string
	samples  []usage
}

// usage is what the process holds at one moment.
type usage struct {
	round      int
	goroutines int
	fds        int
	heap       uint64 // live heap after a GC
}

func (s *soak) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *soak) After(d time.Duration) <-chan time.Time {
	s.mu.Lock()
	s.now = s.now.Add(d)
	c := make(chan time.Time, 1)
	c <- s.now
	s.mu.Unlock()
	return c
}

func (s *soak) Reload() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signals++
	return 4242, nil
}

func (s *soak) logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logLines++
	s.lastLogs = append(s.lastLogs, fmt.Sprintf(format, args...))
	if len(s.lastLogs) > 30 {
		s.lastLogs = s.lastLogs[1:]
	}
}

// load returns, in turn, the good config, the other one, and an invalid one.
func (s *soak) load() (*config.Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	switch s.loads % 3 {
	case 1:
		return s.good, nil
	case 2:
		return s.other, nil
	}
	return nil, errors.New("soak.conf:2: option 'mode': \"fastest\" is not a mode")
}

// scripted is the real prober, with the world set for each round before it probes.
type scripted struct {
	s     *soak
	inner Prober
}

func (p scripted) Round(ctx context.Context, servers []netip.AddrPort) []probe.Result {
	p.s.script()
	return p.inner.Round(ctx, servers)
}

// script sets the fake servers for this round, sends reloads and overrides, measures, and
// ends the soak. In each cycle of 60 rounds NextDNS fails for 10 (one cycle in four it drops
// the packets, which costs the whole probe timeout; otherwise SERVFAIL); one cycle in seven
// everything refuses for 5 rounds (offline).
func (s *soak) script() {
	s.mu.Lock()
	n := s.round
	s.round++
	now := s.now
	s.mu.Unlock()
	if n == soakRounds {
		s.cancel()
		return
	}
	cycle, at := n/60, n%60
	switch {
	case at >= 20 && at < 30 && cycle%4 == 0:
		s.nextdns.Drop()
		s.alt.Drop()
	case at >= 20 && at < 30:
		s.nextdns.ServFail()
		s.alt.ServFail()
	case at >= 40 && at < 45 && cycle%7 == 3:
		s.nextdns.Refused()
		s.alt.Refused()
		s.backup.Refused()
	default:
		s.nextdns.Answer()
		s.alt.Answer()
		s.backup.Answer()
	}
	if n%97 == 50 {
		select {
		case s.reload <- struct{}{}:
		default:
		}
	}
	if n%500 == 250 {
		select {
		case s.control <- Override{Side: "secondary", Until: now.Add(time.Minute)}:
		default:
		}
	}
	if n == soakWarmup || n == soakRounds/2 || n == soakRounds-1 {
		s.samples = append(s.samples, measure(s.t, n, s.samples))
	}
}

// measure collects garbage and counts goroutines, open descriptors and the live heap. A
// fake server's goroutine may still be finishing a reply, so the goroutine count gets a few
// moments to come down to the earlier sample's.
func measure(t *testing.T, round int, earlier []usage) usage {
	t.Helper()
	u := usage{round: round}
	deadline := time.Now().Add(2 * time.Second)
	for {
		u.goroutines = runtime.NumGoroutine()
		if len(earlier) == 0 || u.goroutines <= earlier[0].goroutines || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("open descriptors: %v", err)
	}
	u.fds = len(fds)
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	u.heap = m.HeapAlloc
	return u
}

func startFake(t *testing.T, addr string) *fakedns.Server {
	t.Helper()
	s, err := fakedns.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func soakConfig(t *testing.T, dir string, primary, secondary *fakedns.Server) *config.Settings {
	t.Helper()
	s, err := config.Read("soak.conf", strings.NewReader(fmt.Sprintf(`config settings 'settings'
	list primary '%s'
	list secondary '%s'
	option interval '10s'
	option fast_interval '2s'
	option timeout '%s'
	option fail_after '2'
	option recover_after '3'
	option hold_down '30s'
	option servers_file '%s'
	option status_file '%s'
	option pid_file '%s'
`, primary.Upstream(), secondary.Upstream(), soakTimeout, filepath.Join(dir, "run", "servers.conf"),
		filepath.Join(dir, "run", "status.json"), filepath.Join(dir, "dnsmasq.pid"))))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSoak runs thousands of rounds with outages, offline spells, reloads (valid, changing
// the upstreams, and invalid) and overrides, and checks that goroutines, open descriptors and
// the live heap do not grow, and that the loop still did its job all along.
func TestSoak(t *testing.T) {
	dir := t.TempDir()
	s := &soak{
		t:       t,
		nextdns: startFake(t, "127.0.0.2:0"),
		alt:     startFake(t, "127.0.0.4:0"),
		backup:  startFake(t, "127.0.0.3:0"),
		reload:  make(chan struct{}, 1),
		control: make(chan Override, 1),
		now:     time.Unix(1_000_000, 0),
	}
	s.good = soakConfig(t, dir, s.nextdns, s.backup)
	s.other = soakConfig(t, dir, s.alt, s.backup)
	wd, err := New(Deps{
		Config: "soak.conf",
		Load:   s.load,
		Prober: func(st *config.Settings) Prober {
			return scripted{s: s, inner: &probe.Prober{Name: st.ProbeName, Timeout: st.Timeout}}
		},
		Signal: func(*config.Settings) Signaller { return s },
		Clock:  s,
		Logf:   s.logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.cancel = cancel
	began := time.Now()
	if err := wd.Run(ctx, s.reload, s.control); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	if t.Failed() || len(s.samples) != 3 {
		t.Fatalf("%d samples; last log lines:\n%s", len(s.samples), strings.Join(s.lastLogs, "\n"))
	}

	a, b := s.samples[0], s.samples[2]
	t.Logf("%d rounds (%s of virtual time) in %s; %d log lines", soakRounds, s.now.Sub(time.Unix(1_000_000, 0)).Round(time.Minute), took.Round(time.Millisecond), s.logLines)
	for _, u := range s.samples {
		t.Logf("round %4d: %d goroutines, %d open fds, live heap %d KiB (%+d bytes)", u.round, u.goroutines, u.fds, u.heap>>10, int64(u.heap)-int64(a.heap))
	}
	if b.goroutines > a.goroutines+soakGoroutines {
		t.Errorf("goroutines grew from %d to %d", a.goroutines, b.goroutines)
	}
	if b.fds > a.fds+soakFDs {
		t.Errorf("open descriptors grew from %d to %d", a.fds, b.fds)
	}
	if b.heap > a.heap+soakHeap {
		t.Errorf("live heap grew from %d to %d bytes over %d rounds", a.heap, b.heap, b.round-a.round)
	}

	// The loop did its job throughout: it failed over and back many times, switched the
	// file and signalled once per switch, and left the static list on stop.
	st, err := status.Read(filepath.Join(dir, "run", "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := st.Counters
	t.Logf("counters: %+v", c)
	cycles := uint64(soakRounds / 60)
	// Fewer failovers than outages: outages 2 minutes apart double the hold-down (flapping),
	// and a reload keeps the decision and the hold-down in force (issue 15.4).
	if c.Rounds < soakRounds-cycles || c.Failovers < cycles/3 || c.Failbacks < cycles/3 || c.Reloads < soakRounds/97-1 {
		t.Errorf("counters %+v: want about %d rounds, %d failovers and fail-backs, %d reloads", c, soakRounds, cycles, soakRounds/97)
	}
	if uint64(s.signals) != c.Signals || c.Signals != c.Switches || c.WriteErrors != 0 {
		t.Errorf("%d signals recorded, counters %+v: want one signal per switch and no write error", s.signals, c)
	}
	file, err := os.ReadFile(s.good.ServersFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := dnsmasq.ValidateFile(file); err != nil || st.State != "stopped" || !strings.Contains(string(file), "state: stopped") {
		t.Errorf("after the soak: state %s, file %v:\n%s", st.State, err, file)
	}
}
