package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
)

// The A records the fakes answer with tell the client who answered (documentation ranges,
// data only).
var (
	nextdnsAnswer  = netip.MustParseAddr("192.0.2.1")
	nextdns2Answer = netip.MustParseAddr("192.0.2.2")
	backupAnswer   = netip.MustParseAddr("198.51.100.1")
)

// Via says which upstream answered a client query.
const (
	viaNextDNS = "nextdns" // either NextDNS endpoint
	viaBackup  = "backup"
	// viaNextDNS2 names the second NextDNS endpoint in a servers-file (answers from either
	// endpoint are viaNextDNS).
	viaNextDNS2 = "nextdns2"
	viaNone     = "" // no answer: timeout, REFUSED, SERVFAIL
)

// Query is one client query and what became of it. Times are offsets from the world's start.
type Query struct {
	Seq      int           `json:"seq"`
	Stub     string        `json:"stub"` // the client's stub resolver model
	Sent     time.Duration `json:"sent"`
	RTT      time.Duration `json:"rtt"`      // to the reply (0 when none)
	Via      string        `json:"via"`      // nextdns, backup or "" (failed)
	Outcome  string        `json:"outcome"`  // answer, timeout, REFUSED, SERVFAIL, ...
	Sends    int           `json:"sends"`    // packets the client sent
	AtBackup time.Duration `json:"atBackup"` // when it first reached the backup; -1 never
	AtNext   time.Duration `json:"atNext"`   // when it first reached NextDNS; -1 never
}

// Switch is an observed change of the servers-file.
type Switch struct {
	At    time.Duration `json:"at"`
	First string        `json:"first"` // nextdns, nextdns2, backup, none
	Lines []string      `json:"lines"`
}

// daemonStatus is the part of the daemon's status file the lab reads. Counters are read
// both nested ("counters") and at the top level, whichever the daemon writes.
type daemonStatus struct {
	State    string   `json:"state"`
	Servers  []string `json:"servers"`
	Counters struct {
		Failovers uint64 `json:"failovers"`
		Failbacks uint64 `json:"failbacks"`
		Signals   uint64 `json:"signals"`
		Probes    uint64 `json:"probes"`
	} `json:"counters"`
	Failovers *uint64 `json:"failovers"`
	Failbacks *uint64 `json:"failbacks"`
	Signals   *uint64 `json:"signals"`
}

func (s *daemonStatus) normalize() {
	if s.Failovers != nil {
		s.Counters.Failovers = *s.Failovers
	}
	if s.Failbacks != nil {
		s.Counters.Failbacks = *s.Failbacks
	}
	if s.Signals != nil {
		s.Counters.Signals = *s.Signals
	}
}

// Event is a phase change or a servers-file switch, for the demo's narration.
type Event struct {
	At     time.Duration
	Phase  *Phase  // the phase that starts
	Switch *Switch // the servers-file change seen
}

// Run is the raw outcome of one world.
type Run struct {
	Strategy   Strategy
	Scenario   Scenario
	Stubs      []dnsmasqtest.Stub
	Queries    []Query
	Switches   []Switch
	Status     *daemonStatus // last status the daemon published, nil for static strategies
	DaemonExit string        // "exit 0" or the error, for daemon strategies
	// Stopped is the servers-file and StoppedState the published state after the daemon
	// exited (daemon strategies).
	Stopped      Switch
	StoppedState string
	ProbesNext   int // probe queries NextDNS received (any name but the clients'), both endpoints
	ProbesBack   int // probe queries the backup received
	// ProbeTimes are the arrivals of those probes at NextDNS (offsets from the start; the
	// daemon's probes before the start are left out).
	ProbeTimes []time.Duration
	// PhaseStarts are the offsets at which each phase was really applied (a few ms after
	// the nominal ones); leaks are judged against these.
	PhaseStarts []time.Duration
	Elapsed     time.Duration // from the start to the probe count (the scenario plus the drain)
	Dir         string
}

// World is one dnsmasq with its fake NextDNS and fake backup (and the daemon for strategies
// 4 and 5), on addresses of its own, so worlds run side by side.
type World struct {
	Index    int // picks the 127.42.<Index>.x addresses (runWorlds picks one when 0)
	Strategy Strategy
	Scenario Scenario
	// Stubs are the client models; the clients take turns, so each sends Rate/len(Stubs).
	Stubs []dnsmasqtest.Stub
	Rate  float64 // client queries a second, all stubs together
	// Align, when > 0 for a daemon strategy, starts the world's clock on a multiple of Align
	// after the daemon's start: on one of its probe rounds when Align is its interval.
	Align   time.Duration
	Bin     string // nextdns-failover binary (daemon strategies)
	Root    string // parent folder of the world's folder
	Timings []string
	Logf    func(format string, args ...any)
	// OnEvent, when set, is told of phase changes and servers-file switches (the demo).
	OnEvent func(Event)
	// Progress, when set, is updated with every finished query (the demo).
	Progress func(q Query)

	dir      string
	nextdns  *fakedns.Server
	nextdns2 *fakedns.Server // nil unless Scenario.Two
	backup   *fakedns.Server
	dm       *dnsmasqtest.Dnsmasq
	daemon   *daemon
}

// ErrNoBinary is returned for a daemon strategy when the nextdns-failover binary is missing.
var ErrNoBinary = errors.New("nextdns-failover binary not found (run make build)")

// ErrDaemon is returned when the daemon does not start or misbehaves.
var ErrDaemon = errors.New("nextdns-failover daemon")

// clientPrefix starts every client name; anything else reaching a fake is a probe.
const clientPrefix = "q"

// clientDomain ends every client name. The reserved .example TLD: never a real lookup.
const clientDomain = ".lab.example."

func (w *World) addr(host int) string { return fmt.Sprintf("127.42.%d.%d:0", w.Index, host) }

// Run builds the world, runs the scenario under client load, tears everything down and
// returns what happened.
func (w *World) Run(ctx context.Context) (*Run, error) {
	if w.Strategy.Daemon {
		if st, err := os.Stat(w.Bin); err != nil || st.IsDir() {
			return nil, fmt.Errorf("%w: %s", ErrNoBinary, w.Bin)
		}
	}
	w.dir = filepath.Join(w.Root, fmt.Sprintf("%s-%d-%s", w.Scenario.Key, w.Scenario.Variant+1, w.Strategy.Key))
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	defer w.teardown()
	if err := w.build(ctx); err != nil {
		return nil, err
	}
	return w.run(ctx)
}

// isClient tells the clients' queries from the daemon's probes by name.
func isClient(n string) bool {
	return strings.HasPrefix(n, clientPrefix) && strings.HasSuffix(n, clientDomain)
}

// isProbe is any query that is not a client's: the daemon's probes.
func isProbe(n string) bool { return !isClient(n) }

func (w *World) build(ctx context.Context) error {
	var err error
	if w.nextdns, err = fakedns.Start(w.addr(2)); err != nil {
		return err
	}
	w.nextdns.SetAnswerAddr(nextdnsAnswer)
	w.nextdns.KeepTimes(isProbe)
	if w.backup, err = fakedns.Start(w.addr(3)); err != nil {
		return err
	}
	w.backup.SetAnswerAddr(backupAnswer)
	primary := []string{w.nextdns.Upstream()}
	if w.Scenario.Two {
		if w.nextdns2, err = fakedns.Start(w.addr(4)); err != nil {
			return err
		}
		w.nextdns2.SetAnswerAddr(nextdns2Answer)
		w.nextdns2.KeepTimes(isProbe)
		primary = append(primary, w.nextdns2.Upstream())
	}
	servers := slices.Clone(primary)
	if w.Strategy.WithBackup {
		servers = append(servers, w.backup.Upstream())
	}
	log, err := os.Create(filepath.Join(w.dir, "dnsmasq.log"))
	if err != nil {
		return err
	}
	w.dm, err = dnsmasqtest.Start(ctx, dnsmasqtest.Options{
		Dir:         w.dir,
		ListenAddr:  netip.MustParseAddr(fmt.Sprintf("127.42.%d.1", w.Index)),
		Servers:     servers,
		StrictOrder: w.Strategy.StrictOrder,
		Log:         log,
	})
	if err != nil {
		log.Close()
		return err
	}
	if !w.Strategy.Daemon {
		return nil
	}
	cfg := filepath.Join(w.dir, "nextdns-failover.conf")
	text := daemonConfig(w.Strategy.Mode, primary, []string{w.backup.Upstream()},
		w.dm.ServersFile, w.dm.PIDFile, w.statusFile(), filepath.Join(w.dir, "dhcp.missing"), w.Timings)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return err
	}
	w.daemon, err = startDaemon(ctx, w.Bin, cfg, filepath.Join(w.dir, "daemon.log"))
	if err != nil {
		return err
	}
	return w.waitDaemonReady(ctx)
}

func (w *World) statusFile() string { return filepath.Join(w.dir, "status.json") }

// daemonReadyTimeout bounds the wait for the daemon's first status: it probes at once and
// publishes after its first round (one probe timeout, 2 s by default), with margin for a
// loaded machine.
const daemonReadyTimeout = 20 * time.Second

func (w *World) waitDaemonReady(ctx context.Context) error {
	deadline := time.Now().Add(daemonReadyTimeout)
	for {
		if st, err := readStatus(w.statusFile()); err == nil && st.State == "healthy" {
			return nil
		}
		select {
		case <-w.daemon.done:
			return fmt.Errorf("%w: exited at start (%v): %s", ErrDaemon, w.daemon.err, w.daemon.tail.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no healthy status in %s within %v: %s", ErrDaemon, w.statusFile(), daemonReadyTimeout, w.daemon.tail.String())
		}
	}
}

func readStatus(path string) (*daemonStatus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st daemonStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	st.normalize()
	return &st, nil
}

// pollEvery is how often the servers-file is read to catch switches. dnsmasq applies a new
// list within about a millisecond; 20 ms is fine enough for timelines measured in seconds.
const pollEvery = 20 * time.Millisecond

// fakes are the world's fake upstreams: NextDNS (one or two endpoints), then the backup.
func (w *World) fakes() []*fakedns.Server {
	out := []*fakedns.Server{w.nextdns}
	if w.nextdns2 != nil {
		out = append(out, w.nextdns2)
	}
	return append(out, w.backup)
}

// alignedStart is when the world's clock starts: now, or for a daemon world with Align set
// the next multiple of Align after the daemon started (its rounds run start to start).
func (w *World) alignedStart() time.Time {
	now := time.Now()
	if w.daemon == nil || w.Align <= 0 {
		return now
	}
	n := (now.Sub(w.daemon.started) + w.Align - 1) / w.Align
	return w.daemon.started.Add(n * w.Align)
}

func (w *World) run(ctx context.Context) (*Run, error) {
	t0 := w.alignedStart()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(t0)):
	}
	for _, s := range w.fakes() {
		s.Reset()
	}
	since := func() time.Duration { return time.Since(t0) }
	r := &Run{Strategy: w.Strategy, Scenario: w.Scenario, Stubs: w.Stubs, Dir: w.dir}

	// servers-file watcher
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watchWG sync.WaitGroup
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		last, _ := os.ReadFile(w.dm.ServersFile)
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
			b, err := os.ReadFile(w.dm.ServersFile)
			if err != nil || string(b) == string(last) || len(b) == 0 {
				continue // a rewrite in place can be seen half-done: wait for content
			}
			last = b
			sw := w.classify(since(), b)
			r.Switches = append(r.Switches, sw)
			if w.OnEvent != nil {
				w.OnEvent(Event{At: sw.At, Switch: &sw})
			}
		}
	}()

	// clients
	var mu sync.Mutex
	var clientWG sync.WaitGroup
	interval := time.Duration(float64(time.Second) / w.Rate)
	clientCtx, cancelClients := context.WithCancel(ctx)
	defer cancelClients()
	seq := 0
	launch := func() {
		stub := w.Stubs[seq%len(w.Stubs)]
		q := Query{Seq: seq, Stub: stub.Name, Sent: since(), AtBackup: -1, AtNext: -1}
		seq++
		clientWG.Add(1)
		go func() {
			defer clientWG.Done()
			name := fmt.Sprintf("%s%06d%s", clientPrefix, q.Seq, clientDomain)
			rep, err := w.dm.Query(clientCtx, name, stub)
			q.Sends = rep.Sends
			switch {
			case err != nil && errors.Is(err, dnsmasqtest.ErrNoAnswer):
				q.Outcome = "timeout"
			case err != nil:
				q.Outcome = "error"
			case rep.Rcode != 0:
				q.RTT, q.Outcome = rep.RTT, rcodeName(rep.Rcode)
			case rep.A == nextdnsAnswer || rep.A == nextdns2Answer:
				q.RTT, q.Outcome, q.Via = rep.RTT, "answer", viaNextDNS
			case rep.A == backupAnswer:
				q.RTT, q.Outcome, q.Via = rep.RTT, "answer", viaBackup
			default:
				q.RTT, q.Outcome = rep.RTT, "nodata"
			}
			mu.Lock()
			r.Queries = append(r.Queries, q)
			mu.Unlock()
			if w.Progress != nil {
				w.Progress(q)
			}
		}()
	}

	// the phases, with the client ticking in between
	next := time.Duration(0)
	var phaseEnd time.Duration
	for i, p := range w.Scenario.Phases {
		p.NextDNS.apply(w.nextdns)
		if w.nextdns2 != nil {
			p.NextDNS2.apply(w.nextdns2)
		}
		p.Backup.apply(w.backup)
		if prev := w.Scenario.Phases[max(i-1, 0)]; w.OnEvent != nil && (i == 0 || p.NextDNS != prev.NextDNS || p.NextDNS2 != prev.NextDNS2 || p.Backup != prev.Backup) {
			w.OnEvent(Event{At: since(), Phase: &p})
		}
		r.PhaseStarts = append(r.PhaseStarts, since())
		phaseEnd += p.Dur
		for next < phaseEnd {
			if d := next - since(); d > 0 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(d):
				}
			}
			if w.daemon != nil {
				select {
				case <-w.daemon.done:
					return nil, fmt.Errorf("%w: exited during the run (%v): %s", ErrDaemon, w.daemon.err, w.daemon.tail.String())
				default:
				}
			}
			if !p.Idle {
				launch()
			}
			next += interval
		}
		if d := phaseEnd - since(); d > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
	}
	clientWG.Wait() // in-flight queries end within the stub's give-up time
	stopWatch()
	watchWG.Wait()

	if w.daemon != nil {
		if st, err := readStatus(w.statusFile()); err == nil {
			r.Status = st
		}
		r.DaemonExit = w.daemon.stop()
		w.daemon = nil
		if b, err := os.ReadFile(w.dm.ServersFile); err == nil {
			r.Stopped = w.classify(since(), b)
		}
		if st, err := readStatus(w.statusFile()); err == nil {
			r.StoppedState = st.State
		}
	}
	w.attribute(r, t0)
	return r, nil
}

// attribute fills each query's arrival at the fakes, and counts the probes.
func (w *World) attribute(r *Run, t0 time.Time) {
	ncs := []fakedns.Counts{w.nextdns.Snapshot()}
	if w.nextdns2 != nil {
		ncs = append(ncs, w.nextdns2.Snapshot())
	}
	bc := w.backup.Snapshot()
	r.Elapsed = time.Since(t0)
	for i := range r.Queries {
		name := fmt.Sprintf("%s%06d%s", clientPrefix, r.Queries[i].Seq, clientDomain)
		if s, ok := bc.Names[name]; ok {
			r.Queries[i].AtBackup = s.First.Sub(t0)
		}
		for _, nc := range ncs {
			if s, ok := nc.Names[name]; ok && (r.Queries[i].AtNext < 0 || s.First.Sub(t0) < r.Queries[i].AtNext) {
				r.Queries[i].AtNext = s.First.Sub(t0)
			}
		}
	}
	for _, nc := range ncs {
		for n, s := range nc.Names {
			if isClient(n) {
				continue
			}
			r.ProbesNext += s.Received
			for _, at := range s.Times {
				r.ProbeTimes = append(r.ProbeTimes, at.Sub(t0))
			}
		}
	}
	slices.Sort(r.ProbeTimes)
	for n, s := range bc.Names {
		if !isClient(n) {
			r.ProbesBack += s.Received
		}
	}
	sortQueries(r.Queries)
}

func (w *World) classify(at time.Duration, b []byte) Switch {
	sw := Switch{At: at, First: "none"}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "server=") {
			continue
		}
		v := strings.TrimPrefix(l, "server=")
		label := v
		switch v {
		case w.nextdns.Upstream():
			label = viaNextDNS
		case w.upstream2():
			label = viaNextDNS2
		case w.backup.Upstream():
			label = viaBackup
		}
		if len(sw.Lines) == 0 {
			sw.First = label
		}
		sw.Lines = append(sw.Lines, label)
	}
	return sw
}

func (w *World) teardown() {
	if w.daemon != nil {
		w.daemon.stop()
	}
	if w.dm != nil {
		if err := w.dm.Stop(); err != nil && w.Logf != nil {
			w.Logf("%s: %v", w.dir, err)
		}
	}
	for _, s := range []*fakedns.Server{w.nextdns, w.nextdns2, w.backup} {
		if s != nil {
			s.Close()
		}
	}
}

// upstream2 is the second NextDNS endpoint in dnsmasq's notation, "" when there is none.
func (w *World) upstream2() string {
	if w.nextdns2 == nil {
		return ""
	}
	return w.nextdns2.Upstream()
}

func describePhase(p Phase) string {
	if p.NextDNS.Clean() && p.NextDNS2.Clean() && p.Backup.Clean() {
		return "all upstreams healthy"
	}
	if !p.NextDNS2.Clean() {
		return fmt.Sprintf("NextDNS %s and %s, backup %s", p.NextDNS.Label(), p.NextDNS2.Label(), p.Backup.Label())
	}
	return fmt.Sprintf("NextDNS %s, backup %s", p.NextDNS.Label(), p.Backup.Label())
}

func rcodeName(rc int) string {
	switch rc {
	case 2:
		return "SERVFAIL"
	case 3:
		return "NXDOMAIN"
	case 5:
		return "REFUSED"
	}
	return fmt.Sprintf("rcode%d", rc)
}

// daemon is a running nextdns-failover.
type daemon struct {
	started time.Time // just before the process started: its first probe round
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	tail    *tail
	log     *os.File
	once    sync.Once
	exit    string
}

// daemonStopTimeout is how long the daemon gets to write the stopped list and exit after
// SIGTERM: it only rewrites a file and signals dnsmasq.
const daemonStopTimeout = 10 * time.Second

func startDaemon(ctx context.Context, bin, cfg, logPath string) (*daemon, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	d := &daemon{tail: &tail{}, log: f, done: make(chan struct{})}
	d.cmd = exec.Command(bin, "run", "-c", cfg, "-v")
	out := io.MultiWriter(f, d.tail)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %v", ErrDaemon, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		f.Close()
		close(d.done)
	}()
	return d, nil
}

// stop sends SIGTERM and reports how the daemon exited.
func (d *daemon) stop() string {
	d.once.Do(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(daemonStopTimeout):
				_ = d.cmd.Process.Kill()
				<-d.done
				d.exit = "killed: ignored SIGTERM"
				return
			}
		}
		if d.err != nil {
			d.exit = d.err.Error()
		} else {
			d.exit = "exit 0"
		}
	})
	return d.exit
}

// tail keeps the end of a log, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

// tailLimit is how much of a daemon's log an error message quotes.
const tailLimit = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailLimit {
		t.buf = t.buf[len(t.buf)-tailLimit:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
