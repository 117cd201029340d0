package main

// End-to-end tests: the real binary steering a real dnsmasq on loopback, with fake NextDNS and
// backup servers. Timings are short (interval 200ms); every bound below is derived from them and
// generous, so the tests assert outcomes, never speed.

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

var binary string // built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nextdns-failover-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "nextdns-failover")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The test timings, and the bounds derived from them.
const (
	interval     = 200 * time.Millisecond
	fastInterval = 100 * time.Millisecond
	probeTimeout = 100 * time.Millisecond
	failAfter    = 2
	recoverAfter = 2
	holdDown     = time.Second
	// A switch should happen within interval + failAfter fast rounds; allow 20 times that for a
	// loaded CI machine.
	settle = 20 * (interval + failAfter*fastInterval + holdDown)
)

var (
	nextdnsAnswer = netip.MustParseAddr("192.0.2.1")
	backupAnswer  = netip.MustParseAddr("198.51.100.1")
)

// lab is one world: dnsmasq, a fake NextDNS, a fake backup and the daemon.
type lab struct {
	t        *testing.T
	dir      string
	cfg      string
	statusF  string
	dnsmasq  *dnsmasqtest.Dnsmasq
	nextdns  *fakedns.Server
	backup   *fakedns.Server
	cmd      *exec.Cmd
	stderr   *syncBuffer
	exited   chan error
	hookFile string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLab(t *testing.T, mode string) *lab {
	t.Helper()
	l := &lab{t: t}
	var err error
	if l.nextdns, err = fakedns.Start("127.0.0.2:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.nextdns.Close() })
	l.nextdns.SetAnswerAddr(nextdnsAnswer)
	if l.backup, err = fakedns.Start("127.0.0.3:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.backup.Close() })
	l.backup.SetAnswerAddr(backupAnswer)
	l.dnsmasq = dnsmasqtest.StartT(t, dnsmasqtest.Options{StrictOrder: true})
	l.dir = t.TempDir()
	l.statusF = filepath.Join(l.dir, "status.json")
	l.cfg = filepath.Join(l.dir, "nextdns-failover")
	l.hookFile = filepath.Join(l.dir, "hooks.log")
	hooks := filepath.Join(l.dir, "hotplug.d")
	os.Mkdir(hooks, 0o755)
	os.WriteFile(filepath.Join(hooks, "10-record"), []byte("echo \"$PREVIOUS_STATE>$ACTION $SERVERS\" >> "+l.hookFile+"\n"), 0o644)
	l.writeConfig(mode, "")
	return l
}

func (l *lab) writeConfig(mode, extra string) {
	secondary := "\tlist secondary '" + l.backup.Upstream() + "'\n"
	if mode == "privacy" {
		secondary = ""
	}
	text := fmt.Sprintf(`config settings 'settings'
	option mode '%s'
	list primary '%s'
%s	option interval '%s'
	option fast_interval '%s'
	option timeout '%s'
	option fail_after '%d'
	option recover_after '%d'
	option hold_down '%s'
	option servers_file '%s'
	option pid_file '%s'
	option status_file '%s'
	option dhcp_config '%s'
%s`, mode, l.nextdns.Upstream(), secondary, interval, fastInterval, probeTimeout, failAfter, recoverAfter, holdDown,
		l.dnsmasq.ServersFile, l.dnsmasq.PIDFile, l.statusF, filepath.Join(l.dir, "dhcp"), extra)
	if err := os.WriteFile(l.cfg, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) start() {
	l.cmd = exec.Command(binary, "run", "-c", l.cfg, "-v", "-hooks", filepath.Join(l.dir, "hotplug.d"))
	l.stderr = &syncBuffer{}
	l.cmd.Stdout, l.cmd.Stderr = l.stderr, l.stderr // the whole log, info and problems
	if err := l.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.exited = make(chan error, 1)
	go func() { l.exited <- l.cmd.Wait() }()
	l.t.Cleanup(func() {
		l.cmd.Process.Kill()
		<-l.exited
		if l.t.Failed() {
			l.t.Logf("daemon log:\n%s", l.stderr.String())
		}
	})
	l.waitState("healthy")
}

func (l *lab) status() *status.Status {
	st, err := status.Read(l.statusF)
	if err != nil {
		return &status.Status{}
	}
	return st
}

func (l *lab) waitFor(what string, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Fatalf("%s: not within %s; status %+v", what, settle, l.status())
}

func (l *lab) waitState(state string) {
	l.t.Helper()
	l.waitFor("state "+state, func() bool { return l.status().State == state })
}

var queryCount int

// ask queries dnsmasq like a client and returns the address in the answer (invalid when none).
func (l *lab) ask() netip.Addr {
	queryCount++
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stub := dnsmasqtest.Stub{Name: "test", Interval: 300 * time.Millisecond, Sends: 3}
	r, err := l.dnsmasq.Query(ctx, fmt.Sprintf("q%d-%d.example", time.Now().UnixNano(), queryCount), stub)
	if err != nil {
		return netip.Addr{}
	}
	return r.A
}

func (l *lab) serversFile() string {
	b, _ := os.ReadFile(l.dnsmasq.ServersFile)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(line, "server="); ok {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

func TestBlackholeFailsOverAndBack(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	if got := l.serversFile(); got != l.nextdns.Upstream() {
		t.Fatalf("healthy servers-file: %q, want NextDNS alone", got)
	}
	if a := l.ask(); a != nextdnsAnswer {
		t.Fatalf("healthy: answer %v, want NextDNS's %v", a, nextdnsAnswer)
	}
	if n := l.backup.Snapshot().Names; len(n) > 0 {
		// Only probes may reach the backup while NextDNS is healthy, never a client's name.
		for name := range n {
			if strings.HasPrefix(name, "q") {
				t.Errorf("client query %s leaked to the backup while NextDNS was healthy", name)
			}
		}
	}

	l.nextdns.Drop()
	l.waitState("failover")
	if got, want := l.serversFile(), l.backup.Upstream(); got != want {
		t.Errorf("failover servers-file: %q, want the backup alone %q", got, want)
	}
	l.waitFor("a client answer via the backup", func() bool { return l.ask() == backupAnswer })

	failedAt := time.Now()
	l.nextdns.Answer()
	l.waitState("healthy")
	if back := time.Since(failedAt); back < holdDown/2 {
		t.Errorf("failed back %s after NextDNS returned; hold-down is %s", back, holdDown)
	}
	if a := l.ask(); a != nextdnsAnswer {
		t.Errorf("after fail-back: answer %v, want NextDNS's", a)
	}
	st := l.status()
	if st.Counters.Failovers != 1 || st.Counters.Failbacks != 1 {
		t.Errorf("counters %+v", st.Counters)
	}
	l.waitFor("hooks for both changes", func() bool {
		b, _ := os.ReadFile(l.hookFile)
		return strings.Contains(string(b), "healthy>failover "+l.backup.Upstream()) && strings.Contains(string(b), "failover>healthy "+l.nextdns.Upstream())
	})
}

func TestServfailFailsOver(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	l.nextdns.ServFail()
	l.waitState("failover")
	l.waitFor("a client answer via the backup", func() bool { return l.ask() == backupAnswer })
	if !strings.Contains(l.stderr.String(), "SERVFAIL") {
		t.Errorf("the log does not say why:\n%s", l.stderr.String())
	}
}

func TestEverythingDownChangesNothing(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	before := l.status().Counters.Signals
	file := l.serversFile()
	l.nextdns.Drop()
	l.backup.Drop()
	l.waitState("offline")
	// Several more rounds while offline.
	rounds := l.status().Counters.Rounds
	l.waitFor("more rounds", func() bool { return l.status().Counters.Rounds >= rounds+5 })
	if got := l.serversFile(); got != file {
		t.Errorf("servers-file changed while everything was down: %q -> %q", file, got)
	}
	if st := l.status(); st.Counters.Signals != before || st.Counters.Failovers != 0 {
		t.Errorf("signals %d -> %d, failovers %d: nothing should happen while offline", before, st.Counters.Signals, st.Counters.Failovers)
	}
	l.nextdns.Answer()
	l.backup.Answer()
	l.waitState("healthy")
}

func TestReloadWithInvalidConfigKeepsRunning(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	os.WriteFile(l.cfg, []byte("config settings 'settings'\n\toption mode 'fastest'\n"), 0o644)
	l.cmd.Process.Signal(syscall.SIGHUP)
	l.waitFor("the rejection in the log", func() bool {
		return strings.Contains(l.stderr.String(), "config rejected, the previous one stays in force")
	})
	if !strings.Contains(l.stderr.String(), "option 'mode': \"fastest\" is not a mode") {
		t.Errorf("the log does not name the problem:\n%s", l.stderr.String())
	}
	// Still working on the old config: an outage still fails over.
	l.nextdns.Drop()
	l.waitState("failover")

	// A valid new config takes effect on the next SIGHUP: privacy mode drops the backup.
	l.writeConfig("privacy", "")
	l.nextdns.Answer()
	l.cmd.Process.Signal(syscall.SIGHUP)
	l.waitFor("privacy list", func() bool { return l.serversFile() == l.nextdns.Upstream() })
}

func TestSigtermLeavesTheStoppedList(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-l.exited:
		l.exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(settle):
		t.Fatal("did not exit on SIGTERM")
	}
	if got, want := l.serversFile(), l.nextdns.Upstream()+" "+l.backup.Upstream(); got != want {
		t.Errorf("stopped servers-file: %q, want the static list %q", got, want)
	}
	if st := l.status(); st.State != "stopped" {
		t.Errorf("status after stop: %q", st.State)
	}
	// dnsmasq got the signal: a client still gets NextDNS's answer, and the backup's if NextDNS dies.
	if a := l.ask(); a != nextdnsAnswer {
		t.Errorf("after stop: %v", a)
	}
	l.nextdns.ServFail()
	if a := l.ask(); a != backupAnswer {
		t.Errorf("after stop with NextDNS failing: %v, want the backup's answer (static strict order)", a)
	}
}

func TestForceAndAuto(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	run := func(args ...string) string {
		out, err := exec.Command(binary, append(args, "-c", l.cfg)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("force", "secondary")
	l.waitState("forced-secondary")
	if got := l.serversFile(); !strings.HasPrefix(got, l.backup.Upstream()) {
		t.Errorf("forced secondary: %q", got)
	}
	if out, _ := exec.Command(binary, "status", "-c", l.cfg).CombinedOutput(); !strings.Contains(string(out), "override:  forced to secondary") {
		t.Errorf("status does not show the override:\n%s", out)
	}
	run("auto")
	l.waitState("healthy")
	if got := l.serversFile(); got != l.nextdns.Upstream() {
		t.Errorf("after auto: %q", got)
	}
}
