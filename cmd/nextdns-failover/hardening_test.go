package main

// Hardening tests (issue 6): the real binary against a real dnsmasq while things break around
// it: SIGKILL in every state, dnsmasq absent, restarted or replaced by a foreign process in its
// pid file, the servers-file's folder missing or read-only, the file edited or deleted, the
// config and the dhcp file deleted or broken. And two properties of the process itself: it
// holds no listening socket, and a huge config costs a bounded amount of memory. They reuse the
// lab of e2e_test.go; every bound is derived from its timings and generous.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/dnsmasq"
	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// restartBound is how long a freshly started daemon may take to reach the right list. It keeps
// a failover list it finds; on any other file it writes the healthy list at once and then
// needs failAfter failed rounds (each a probe timeout, the later ones after a fast interval) to
// fail over; an interval more covers a round that began just before. Tests allow 10 times that
// for a loaded CI machine and the exec.
const restartBound = failAfter*(probeTimeout+fastInterval) + interval

// kill9 kills the daemon with SIGKILL and reaps it; the lab's cleanup still finds the exit.
func (l *lab) kill9() {
	l.t.Helper()
	if err := l.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		l.t.Fatalf("SIGKILL: %v (state %v)", err, l.cmd.ProcessState)
	}
	err := <-l.exited
	l.exited <- err
}

// restart runs the daemon again in the same lab after kill9, logging to the same buffer. It
// does not wait for any state.
func (l *lab) restart() {
	l.t.Helper()
	<-l.exited // the previous run's exit, put back by kill9
	fmt.Fprintf(l.stderr, "--- test: daemon started again\n")
	l.cmd = exec.Command(binary, "run", "-c", l.cfg, "-v", "-hooks", filepath.Join(l.dir, "hotplug.d"))
	l.cmd.Stdout, l.cmd.Stderr = l.stderr, l.stderr // the whole log, info and problems
	if err := l.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.exited = make(chan error, 1)
	go func() { l.exited <- l.cmd.Wait() }()
}

// fileCheck is what dnsmasq would make of the servers-file: the servers it would use, and
// lines it would log as errors and skip.
type fileCheck struct {
	servers []string // valid server= lines, in order
	junk    []string // lines that are neither blank, a comment nor a valid server= line
}

// readAsDnsmasq reads servers-file content line by line as dnsmasq does: blank lines and
// comments are ignored, server=<IP>[#port] lines are used, anything else is an error line.
func readAsDnsmasq(b []byte) fileCheck {
	var c fileCheck
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "#"):
		case dnsmasq.ValidateFile([]byte(line+"\n")) == nil:
			c.servers = append(c.servers, strings.TrimPrefix(line, "server="))
		default:
			c.junk = append(c.junk, line)
		}
	}
	return c
}

// checkFile fails the test unless the servers-file holds a non-empty list of the lab's
// upstreams with no line dnsmasq would reject.
func (l *lab) checkFile(when string) {
	l.t.Helper()
	b, err := os.ReadFile(l.dnsmasq.ServersFile)
	if err != nil {
		l.t.Fatalf("%s: servers-file: %v", when, err)
	}
	c := readAsDnsmasq(b)
	if len(c.servers) == 0 || len(c.junk) > 0 {
		l.t.Fatalf("%s: servers-file is empty or half-written (servers %q, bad lines %q):\n%s", when, c.servers, c.junk, b)
	}
	for _, s := range c.servers {
		if s != l.nextdns.Upstream() && s != l.backup.Upstream() {
			l.t.Fatalf("%s: servers-file names %q, not one of the lab's upstreams:\n%s", when, s, b)
		}
	}
}

// waitFresh waits until the daemon now running has published state and the servers-file
// holds want, and returns how long that took from since.
func (l *lab) waitFresh(state, want string, since time.Time, bound time.Duration) time.Duration {
	l.t.Helper()
	deadline := since.Add(bound)
	for time.Now().Before(deadline) {
		st := l.status()
		if st.PID == l.cmd.Process.Pid && st.State == state && l.serversFile() == want {
			return time.Since(since)
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.t.Fatalf("restarted daemon: not %s with %q within %s; status %+v, file %q", state, want, bound, l.status(), l.serversFile())
	return 0
}

// logCount counts the lines of the daemon's log holding s.
func (l *lab) logCount(s string) int { return strings.Count(l.stderr.String(), s) }

// waitRounds waits until the daemon has probed n more rounds.
func (l *lab) waitRounds(n uint64) {
	l.t.Helper()
	r := l.status().Counters.Rounds
	l.waitFor(fmt.Sprintf("%d more rounds", n), func() bool { return l.status().Counters.Rounds >= r+n })
}

func TestSIGKILLInEveryStateThenRestart(t *testing.T) {
	l := newLab(t, "availability")
	healthy := l.nextdns.Upstream()
	failover := l.backup.Upstream() // the backups alone: no NextDNS endpoint (issue 11.1)
	l.start()

	// Healthy: the file stays whole, and a new daemon keeps NextDNS alone.
	l.kill9()
	l.checkFile("killed while healthy")
	at := time.Now()
	l.restart()
	t.Logf("healthy again %s after the restart", l.waitFresh("healthy", healthy, at, 10*restartBound))

	// Failed over: the file keeps the failover list; with NextDNS still down a new daemon
	// keeps it, without writing the healthy list in between.
	l.nextdns.Drop()
	l.waitState("failover")
	l.kill9()
	l.checkFile("killed while failed over")
	if got := l.serversFile(); got != failover {
		t.Fatalf("killed while failed over: file %q, want %q", got, failover)
	}
	at = time.Now()
	l.restart()
	took := l.waitFresh("failover", failover, at, 10*restartBound)
	log := l.stderr.String()
	transient := strings.Contains(log[strings.LastIndex(log, "--- test:"):], "servers-file "+l.dnsmasq.ServersFile+": "+healthy+"\n")
	t.Logf("failed over again %s after the restart (derived bound %s)", took, restartBound)
	if transient {
		t.Errorf("restarted while failed over, the daemon wrote the healthy list before failing over again:\n%s", log)
	}
	l.waitFor("a client answer via the backup", func() bool { return l.ask() == backupAnswer })

	// During writes: start the daemon on a file that it must rewrite (the stopped list, or the
	// failover list while NextDNS answers) and kill it at a random moment around that write.
	l.nextdns.Answer()
	n, b := mustUpstream(t, l.nextdns.Upstream()), mustUpstream(t, l.backup.Upstream())
	stopped, _ := dnsmasq.Render(dnsmasq.Stopped, []config.Upstream{n, b})
	failed, _ := dnsmasq.Render(dnsmasq.Failover, []config.Upstream{b, n})
	l.kill9()
	before, after := 0, 0
	for i := range 12 {
		start := [][]byte{stopped, failed}[i%2]
		if err := os.WriteFile(l.dnsmasq.ServersFile, start, 0o644); err != nil {
			t.Fatal(err)
		}
		l.restart()
		// Fault injection, not a timing assertion: the write happens a few ms after exec.
		time.Sleep(time.Duration(rand.N(8000)) * time.Microsecond)
		l.kill9()
		l.checkFile(fmt.Sprintf("kill %d during the start-up write", i+1))
		if b, _ := os.ReadFile(l.dnsmasq.ServersFile); bytes.Equal(b, start) {
			before++
		} else {
			after++
		}
	}
	t.Logf("12 kills around the start-up write: %d before it, %d after it began", before, after)
	at = time.Now()
	l.restart()
	took = l.waitFresh("healthy", healthy, at, 10*restartBound)
	t.Logf("healthy %s after the last restart", took)
	if a := l.ask(); a != nextdnsAnswer {
		t.Errorf("after the restarts: answer %v, want NextDNS's", a)
	}
}

func mustUpstream(t *testing.T, s string) config.Upstream {
	t.Helper()
	u, err := config.ParseUpstream(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// crashFS runs WriteInPlace on the real file system but "kills the process" after a given
// number of changes to it (create, chmod, write, truncate, link, remove, mkdir): every later change
// fails and does nothing, as if the process had died there.
type crashFS struct {
	after, done int
}

var errKilled = errors.New("killed (simulated)")

func (c *crashFS) change() error {
	if c.done >= c.after {
		return errKilled
	}
	c.done++
	return nil
}

func (c *crashFS) OpenFile(name string, flag int, perm os.FileMode) (dnsmasq.File, error) {
	if flag&os.O_CREATE != 0 {
		if err := c.change(); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return crashFile{f, c}, nil
}

func (c *crashFS) MkdirAll(path string, perm os.FileMode) error {
	if err := c.change(); err != nil {
		return err
	}
	return os.MkdirAll(path, perm)
}

func (c *crashFS) Chmod(name string, mode os.FileMode) error {
	if err := c.change(); err != nil {
		return err
	}
	return os.Chmod(name, mode)
}

func (c *crashFS) Link(oldname, newname string) error {
	if err := c.change(); err != nil {
		return err
	}
	return os.Link(oldname, newname)
}

func (c *crashFS) Remove(name string) error {
	if err := c.change(); err != nil {
		return err
	}
	return os.Remove(name)
}

type crashFile struct {
	*os.File
	c *crashFS
}

func (f crashFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.c.change(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f crashFile) Truncate(size int64) error {
	if err := f.c.change(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// TestKillAtEveryStepOfAWrite kills a write at each of its steps, for every change of list
// the daemon makes, with the lab's and with real-world addresses (lists of unequal length),
// and reads what is left the way dnsmasq would. What must hold: a list that was there is
// never replaced by one without a server, and no server line is ever altered into another
// address. What the test logs (and the report names): leftovers dnsmasq would skip with an
// error in its log, and an empty file when the process dies between creating and writing it.
func TestKillAtEveryStepOfAWrite(t *testing.T) {
	up := func(s string) config.Upstream { return mustUpstream(t, s) }
	worlds := []struct {
		name             string
		nextdns, backups []config.Upstream
	}{
		{"lab", []config.Upstream{up("127.0.0.2#5301")}, []config.Upstream{up("127.0.0.3#5302")}},
		{"router", []config.Upstream{up("45.90.28.0"), up("45.90.30.0")}, []config.Upstream{up("9.9.9.9")}},
		{"ipv6", []config.Upstream{up("2a07:a8c0::")}, []config.Upstream{up("1.1.1.1"), up("2606:4700:4700::1111")}},
	}
	for _, w := range worlds {
		lists := map[string][]byte{"missing": nil}
		for st, ups := range map[dnsmasq.State][]config.Upstream{
			dnsmasq.Healthy:  w.nextdns,
			dnsmasq.Failover: append(append([]config.Upstream{}, w.backups...), w.nextdns...),
			dnsmasq.Stopped:  append(append([]config.Upstream{}, w.nextdns...), w.backups...),
		} {
			b, err := dnsmasq.Render(st, ups)
			if err != nil {
				t.Fatal(err)
			}
			lists[string(st)] = b
		}
		known := map[string]bool{}
		for _, u := range append(append([]config.Upstream{}, w.nextdns...), w.backups...) {
			known[u.String()] = true
		}
		for from, old := range lists {
			for to, content := range lists {
				if to == "missing" || to == from {
					continue
				}
				t.Run(w.name+"/"+from+"-to-"+to, func(t *testing.T) {
					path := filepath.Join(t.TempDir(), "run", "servers.conf")
					for step := 0; ; step++ {
						os.RemoveAll(filepath.Dir(path))
						if old != nil {
							os.MkdirAll(filepath.Dir(path), 0o755)
							os.WriteFile(path, old, 0o644)
						}
						fs := &crashFS{after: step}
						_, err := dnsmasq.Writer{FS: fs}.WriteInPlace(path, content)
						left, rerr := os.ReadFile(path)
						if err == nil {
							if !bytes.Equal(left, content) {
								t.Fatalf("completed write left %q", left)
							}
							return // every step has been killed once
						}
						if !errors.Is(err, errKilled) {
							t.Fatalf("step %d: %v", step, err)
						}
						if errors.Is(rerr, os.ErrNotExist) {
							continue // dnsmasq keeps its list on a reload, as before
						}
						c := readAsDnsmasq(left)
						for _, s := range c.servers {
							if !known[s] {
								t.Fatalf("killed after step %d: server line %q is none of the upstreams:\n%s", step, s, left)
							}
						}
						switch {
						case len(c.servers) == 0 && old != nil:
							t.Fatalf("killed after step %d: the %s list was replaced by one without a server:\n%q", step, from, left)
						case len(c.servers) == 0:
							t.Fatalf("killed after step %d of creating the file: it is left without a server (%q)", step, left)
						case len(c.junk) > 0:
							t.Fatalf("killed after step %d: dnsmasq would skip bad lines %q (servers %q)", step, c.junk, c.servers)
						}
					}
				})
			}
		}
	}
}

// withoutDnsmasq stops the lab's dnsmasq and points the config at a world folder that does
// not exist yet, where tests start dnsmasq later as procd would; it returns the folder.
func (l *lab) withoutDnsmasq(mode string) string {
	l.t.Helper()
	if err := l.dnsmasq.Stop(); err != nil {
		l.t.Fatal(err)
	}
	parent, err := os.MkdirTemp("", "nextdns-failover-hardening-")
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { os.RemoveAll(parent) })
	// dnsmasq reads the servers-file as nobody: every folder above it must be searchable.
	if err := os.Chmod(parent, 0o755); err != nil {
		l.t.Fatal(err)
	}
	world := filepath.Join(parent, "run", "dnsmasq")
	l.dnsmasq = &dnsmasqtest.Dnsmasq{Dir: world, PIDFile: filepath.Join(world, "dnsmasq.pid"), ServersFile: filepath.Join(world, "servers.conf")}
	l.writeConfig(mode, "")
	return world
}

// startDnsmasq starts a new dnsmasq process in world (a new pid each time), as procd does.
// It starts on servers, then reads the daemon's own file once the daemon restores it.
func (l *lab) startDnsmasq(world string, servers ...string) {
	l.t.Helper()
	l.dnsmasq = dnsmasqtest.StartT(l.t, dnsmasqtest.Options{Dir: world, StrictOrder: true, Servers: servers})
}

// startSleep starts `sleep 60`, a process that SIGHUP would kill, and returns it with a
// channel closed when it exits.
func startSleep(t *testing.T) (*exec.Cmd, chan struct{}) {
	t.Helper()
	c := exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	t.Cleanup(func() { c.Process.Kill(); <-done })
	return c, done
}

func alive(done chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func TestDnsmasqAbsentRestartedOrReplaced(t *testing.T) {
	l := newLab(t, "availability")
	world := l.withoutDnsmasq("availability")

	// dnsmasq not running, its folder not even there: the daemon creates the folder and the
	// file (readable by dnsmasq's unprivileged user), says why it cannot signal, keeps probing.
	l.start()
	if got := l.serversFile(); got != l.nextdns.Upstream() {
		t.Fatalf("servers-file at start: %q", got)
	}
	for path, want := range map[string]os.FileMode{world: 0o755 | os.ModeDir, l.dnsmasq.ServersFile: 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, mode %v; want %v", path, err, fi.Mode(), want)
		}
	}
	l.waitRounds(5)
	if n := l.logCount("signal dnsmasq:"); n != 1 {
		t.Errorf("the missing dnsmasq was logged %d times, want once:\n%s", n, l.stderr.String())
	}
	if st := l.status(); st.Problem == "" || st.Counters.Signals != 0 {
		t.Errorf("status while dnsmasq is absent: problem %q, signals %d", st.Problem, st.Counters.Signals)
	}

	// dnsmasq starts: the owed signal reaches it within a round or so.
	l.startDnsmasq(world, l.nextdns.Upstream())
	first := l.dnsmasq.PID()
	l.waitFor("the owed signal", func() bool {
		return l.logCount(fmt.Sprintf("dnsmasq (pid %d) signalled; the earlier problem is solved", first)) == 1
	})
	if a := l.ask(); a != nextdnsAnswer {
		t.Errorf("once dnsmasq runs: answer %v, want NextDNS's", a)
	}

	// procd restarts dnsmasq (a new pid): the next change reaches the new process. It starts
	// on NextDNS alone, so only a SIGHUP after the failover write gives the backup's answer.
	if err := l.dnsmasq.Stop(); err != nil {
		t.Fatal(err)
	}
	l.startDnsmasq(world, l.nextdns.Upstream())
	second := l.dnsmasq.PID()
	l.waitFor("the restarted dnsmasq's file restored and signalled", func() bool {
		b, _ := os.ReadFile(l.dnsmasq.ServersFile)
		return bytes.HasPrefix(b, []byte("# Generated")) && strings.Contains(l.stderr.String(), fmt.Sprintf("dnsmasq (pid %d) signalled", second))
	})
	l.nextdns.Drop()
	l.waitState("failover")
	l.waitFor("a client answer via the backup from the new dnsmasq", func() bool { return l.ask() == backupAnswer })
	if n := l.logCount(fmt.Sprintf("dnsmasq (pid %d) signalled", first)); n != 1 {
		t.Errorf("the old pid %d was signalled %d times, want once (before the restart)", first, n)
	}

	// A stale pid file naming a foreign process while dnsmasq runs: the foreign process is
	// left alone, the real dnsmasq (found in /proc by its --pid-file) gets the signal.
	sleep, sleepDone := startSleep(t)
	if err := os.WriteFile(l.dnsmasq.PIDFile, []byte(strconv.Itoa(sleep.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.nextdns.Answer()
	l.waitState("healthy")
	l.waitFor("a client answer via NextDNS again", func() bool { return l.ask() == nextdnsAnswer })
	l.waitRounds(2)
	if !alive(sleepDone) {
		t.Fatalf("the foreign process named by the stale pid file died: it was signalled")
	}

	// dnsmasq gone and its pid now a foreign process's: nothing is signalled, the daemon
	// says why, keeps running, and the foreign process lives on.
	if err := l.dnsmasq.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.dnsmasq.PIDFile, []byte(strconv.Itoa(sleep.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.nextdns.Drop()
	l.waitState("failover")
	l.waitFor("the refusal in the log", func() bool {
		return strings.Contains(l.stderr.String(), fmt.Sprintf("pid %d is \"sleep\"", sleep.Process.Pid))
	})
	l.waitRounds(5)
	if !alive(sleepDone) {
		t.Fatalf("sleep (pid %d) died: the daemon signalled a foreign process", sleep.Process.Pid)
	}
	if st := l.status(); st.State != "failover" || st.Problem == "" {
		t.Errorf("status: %s, problem %q; want failover and the signal problem", st.State, st.Problem)
	}
}

// readOnly makes dir read-only for the daemon: a permission change for an ordinary user, a
// read-only bind mount for root (root ignores permissions). It returns the undo.
func readOnly(t *testing.T, dir string) func() {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		return func() { os.Chmod(dir, 0o755) }
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("root without the right to bind-mount (%v): cannot make a folder read-only for root", err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		syscall.Unmount(dir, 0)
		t.Skipf("cannot remount read-only: %v", err)
	}
	mounted := true
	undo := func() {
		if mounted {
			if err := syscall.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
			mounted = false
		}
	}
	t.Cleanup(undo)
	return undo
}

func TestServersFileFaults(t *testing.T) {
	l := newLab(t, "availability")
	l.withoutDnsmasq("availability")
	l.start() // creates the missing folder (TestDnsmasqAbsentRestartedOrReplaced checks how)
	world := filepath.Dir(l.dnsmasq.ServersFile)
	l.startDnsmasq(world, l.nextdns.Upstream())
	l.waitFor("dnsmasq signalled", func() bool { return l.status().Problem == "" && l.status().Counters.Signals > 0 })
	healthy := l.nextdns.Upstream()

	// Edited by someone else, deleted by someone else: restored within a round (allowing two).
	edits := []struct {
		name string
		edit func() error
	}{
		{"edited", func() error {
			return os.WriteFile(l.dnsmasq.ServersFile, []byte("server=127.0.0.9#53\n"), 0o644)
		}},
		{"emptied", func() error { return os.Truncate(l.dnsmasq.ServersFile, 0) }},
		{"deleted", func() error { return os.Remove(l.dnsmasq.ServersFile) }},
	}
	for _, e := range edits {
		restored := l.logCount("was changed by someone else: restored")
		if err := e.edit(); err != nil {
			t.Fatal(err)
		}
		rounds := l.status().Counters.Rounds
		l.waitFor(e.name+" file restored", func() bool { return l.logCount("was changed by someone else: restored") > restored })
		if got, r := l.serversFile(), l.status().Counters.Rounds; got != healthy || r > rounds+2 {
			t.Errorf("%s: file %q after %d rounds, want %q within 2", e.name, got, r-rounds, healthy)
		}
		l.checkFile(e.name + " and restored")
		if a := l.ask(); a != nextdnsAnswer {
			t.Errorf("%s and restored: answer %v, want NextDNS's", e.name, a)
		}
	}

	// Read-only folder with the file gone: the write fails, is logged once and retried every
	// round; the daemon keeps running and dnsmasq keeps its list (nobody signals it).
	if err := os.Remove(l.dnsmasq.ServersFile); err != nil {
		t.Fatal(err)
	}
	undo := readOnly(t, world)
	l.nextdns.Drop()
	l.waitState("failover")
	l.waitRounds(5)
	if n := l.logCount("(retrying every round)"); n < 1 {
		t.Fatalf("the failed write was not logged:\n%s", l.stderr.String())
	}
	if st := l.status(); st.Counters.WriteErrors < 5 || st.Problem == "" {
		t.Errorf("write errors %d, problem %q: want one per round and the problem shown", st.Counters.WriteErrors, st.Problem)
	}
	if n := strings.Count(l.stderr.String(), "write "+l.dnsmasq.ServersFile); n != 1 {
		t.Errorf("the write problem was logged %d times, want once", n)
	}
	undo()
	l.waitFor("the failover list written once the folder is writable", func() bool {
		return l.serversFile() == l.backup.Upstream()
	})
	l.checkFile("after the read-only folder")
	l.waitFor("a client answer via the backup", func() bool { return l.ask() == backupAnswer })
}

func TestConfigFaultsWhileRunning(t *testing.T) {
	l := newLab(t, "availability")
	l.start()
	big := filepath.Join(l.dir, "big")
	writeBig(t, big, 10<<20)
	cases := []struct {
		name  string
		apply func() error // breaks the config (after it was removed)
		says  string       // in the rejection
	}{
		{"deleted", func() error { return nil }, "no such file"},
		{"a folder", func() error { return os.Mkdir(l.cfg, 0o755) }, "is a directory"},
		{"unterminated quote", func() error {
			return os.WriteFile(l.cfg, []byte("config settings 'settings'\n\toption mode 'avail\n"), 0o644)
		}, "line 2"},
		{"binary", func() error { return os.WriteFile(l.cfg, []byte("\x00\xff\xfe config"), 0o644) }, "NUL"},
		{"empty", func() error { return os.WriteFile(l.cfg, nil, 0o644) }, "no settings section"},
		{"10 MB", func() error { return os.Rename(big, l.cfg) }, "larger than"},
	}
	for _, c := range cases {
		os.RemoveAll(l.cfg)
		if err := c.apply(); err != nil {
			t.Fatal(err)
		}
		rejected := l.logCount("config rejected, the previous one stays in force")
		l.cmd.Process.Signal(syscall.SIGHUP)
		l.waitFor(c.name+": the rejection in the log", func() bool {
			return l.logCount("config rejected, the previous one stays in force") > rejected
		})
		if log := l.stderr.String(); !strings.Contains(log[strings.LastIndex(log, "config rejected"):], c.says) {
			t.Errorf("%s: the rejection does not say %q:\n%s", c.name, c.says, log)
		}
		l.waitRounds(1)
		if st := l.status(); st.State != "healthy" || l.serversFile() != l.nextdns.Upstream() {
			t.Errorf("%s: state %s, file %q: the last good config should stay in force", c.name, st.State, l.serversFile())
		}
	}
	// Still on the last good config: an outage fails over, the backup answers.
	l.nextdns.Drop()
	l.waitState("failover")
	l.waitFor("a client answer via the backup", func() bool { return l.ask() == backupAnswer })
	// A valid config again takes effect.
	os.RemoveAll(l.cfg)
	l.writeConfig("privacy", "")
	l.nextdns.Answer()
	l.cmd.Process.Signal(syscall.SIGHUP)
	l.waitFor("privacy list after a good reload", func() bool { return l.serversFile() == l.nextdns.Upstream() })
}

func TestDHCPFileMissingOrBroken(t *testing.T) {
	cases := []struct {
		name string
		dhcp func(path string) error
	}{
		{"missing", func(string) error { return nil }},
		{"broken", func(p string) error {
			return os.WriteFile(p, []byte("config dnsmasq\n\toption 'unterminated\n"), 0o644)
		}},
		{"binary", func(p string) error { return os.WriteFile(p, []byte("\x7fELF\x00\x01\x02"), 0o644) }},
		{"a folder", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"no dnsmasq section", func(p string) error { return os.WriteFile(p, []byte("config dhcp 'lan'\n"), 0o644) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLab(t, "availability")
			if err := c.dhcp(filepath.Join(l.dir, "dhcp")); err != nil {
				t.Fatal(err)
			}
			l.start()
			l.nextdns.Drop()
			l.waitState("failover")
			l.waitFor("a client answer via the backup", func() bool { return l.ask() == backupAnswer })
			if st := l.status(); st.Problem != "" {
				t.Errorf("with pid_file set, a %s dhcp file is no problem; status says %q", c.name, st.Problem)
			}
		})
	}
}

// writeBig writes a file of size bytes of UCI comments.
func writeBig(t *testing.T, path string, size int) {
	t.Helper()
	line := "# " + strings.Repeat("x", 61) + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(line, size/len(line)+1)[:size]), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Listening sockets, found the way `ss -lnp` does: every socket a process holds is a
// "socket:[INODE]" link in /proc/PID/fd; the kernel's tables /proc/PID/net/{tcp,tcp6,udp,udp6,
// raw,raw6,unix} (of the process's network namespace) give each inode's addresses and state. A
// TCP socket in state 0A (LISTEN), a UDP socket whose remote address is zero (not connected:
// it receives from anyone), any raw socket and a unix socket with __SO_ACCEPTCON (0x10000) in
// its flags can be reached without the process asking.

// socketInodes returns the inodes of the sockets pid holds.
func socketInodes(pid int) (map[string]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			out[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return out, nil
}

// socketEntry is one socket of the kernel's tables.
type socketEntry struct {
	table, local, remote, state string
	listening                   bool
}

// socketTable reads /proc/PID/net's tables into entries by inode.
func socketTable(pid int) (map[string]socketEntry, error) {
	out := map[string]socketEntry{}
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6", "raw", "raw6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6 in the kernel
		}
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for _, line := range lines[1:] {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
			f := strings.Fields(line)
			if len(f) < 10 {
				return nil, fmt.Errorf("/proc/net/%s: short line %q", table, line)
			}
			e := socketEntry{table: table, local: f[1], remote: f[2], state: f[3]}
			switch {
			case strings.HasPrefix(table, "tcp"):
				e.listening = e.state == "0A"
			case strings.HasPrefix(table, "udp"):
				e.listening = strings.Trim(e.remote, "0:") == ""
			default:
				e.listening = true
			}
			out[f[9]] = e
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", pid))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, line := range lines[1:] {
		// Num RefCount Protocol Flags Type St Inode [Path]
		f := strings.Fields(line)
		if len(f) < 7 {
			return nil, fmt.Errorf("/proc/net/unix: short line %q", line)
		}
		flags, _ := strconv.ParseUint(f[3], 16, 32)
		e := socketEntry{table: "unix", state: f[5], listening: flags&0x10000 != 0}
		if len(f) > 7 {
			e.local = f[7]
		}
		out[f[6]] = e
	}
	return out, nil
}

// sockets returns pid's sockets that are listening and those that are not.
func sockets(pid int) (listening, other []socketEntry, unknown int, err error) {
	inodes, err := socketInodes(pid)
	if err != nil || len(inodes) == 0 {
		return nil, nil, 0, err
	}
	table, err := socketTable(pid)
	if err != nil {
		return nil, nil, 0, err
	}
	for inode := range inodes {
		e, ok := table[inode]
		switch {
		case !ok:
			unknown++ // closed between the two reads, or netlink and the like
		case e.listening:
			listening = append(listening, e)
		default:
			other = append(other, e)
		}
	}
	return listening, other, unknown, nil
}

// hexPort is a port as /proc/net writes it at the end of an address.
func hexPort(p uint16) string { return fmt.Sprintf(":%04X", p) }

func TestNoListeningSocket(t *testing.T) {
	l := newLab(t, "availability")
	// The method finds real listening sockets: the fake NextDNS's, in this test process.
	own, _, _, err := sockets(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var udp, tcp bool
	for _, e := range own {
		if strings.HasSuffix(e.local, hexPort(l.nextdns.Addr().Port())) {
			udp = udp || e.table == "udp"
			tcp = tcp || (e.table == "tcp" && e.state == "0A")
		}
	}
	if !udp || !tcp {
		t.Fatalf("the parser missed the fake server's UDP (%v) or listening TCP (%v) socket in %+v", udp, tcp, own)
	}

	// The daemon, over several rounds, healthy and failing (probes then wait the whole
	// timeout, so their sockets are seen): connected probe sockets only.
	l.start()
	pid := l.cmd.Process.Pid
	seen, samples, unknown := 0, 0, 0
	check := func() {
		listening, other, u, err := sockets(pid)
		if err != nil {
			t.Fatalf("sockets of %d: %v", pid, err)
		}
		samples++
		seen += len(other)
		unknown += u
		if len(listening) > 0 {
			t.Fatalf("the daemon holds a socket others can reach: %+v", listening)
		}
	}
	sample := func(n uint64) {
		rounds, deadline := l.status().Counters.Rounds, time.Now().Add(settle)
		for l.status().Counters.Rounds < rounds+n {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d rounds within %s", n, settle)
			}
			check()
		}
	}
	sample(5)
	l.nextdns.Drop()
	sample(5)
	t.Logf("%d samples over 10 rounds: %d connected probe sockets seen, none listening; %d sockets gone before lookup", samples, seen, unknown)
	if seen == 0 {
		t.Errorf("never saw one of the daemon's probe sockets in %d samples: the method does not see them", samples)
	}
}

// allocated returns the bytes f allocates, averaged over runs, with the result of the last.
func allocated(runs int, f func() error) (uint64, error) {
	var before, after runtime.MemStats
	var err error
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		err = f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs), err
}

// Memory bounds for hostile files. uci.Parse reads at most MaxInputSize (1 MiB) and rejects
// a larger file before parsing: about twice that (the growing read buffer) plus a margin. A
// file at the size limit is parsed, at a cost that depends on its shape: measured 29 MiB
// allocated (21 MiB live) for 116,000 empty sections ("config x"), 5 MiB for options. Our
// config is refused over 64 KiB; the dhcp file (static leases can make it large) over 1 MiB.
// These pin today's worst case so that it cannot grow unnoticed.
const (
	rejectedBound = 4 << 20
	parsedBound   = 48 << 20
)

func TestHugeConfigMemoryBound(t *testing.T) {
	dir := t.TempDir()
	shapes := []struct {
		name string
		unit string // repeated to the size
	}{
		{"comments", "# " + strings.Repeat("x", 61) + "\n"},
		{"one long line", "x"},
		{"options", "config settings 'settings'\n\tlist primary '45.90.28.0'\n"},
		{"open quote", "config settings 'settings'\n\toption mode '" + strings.Repeat("a", 200)},
		{"sections", "config x\n"},
	}
	for _, s := range shapes {
		for _, size := range []int{10 << 20, uci.MaxInputSize} {
			t.Run(fmt.Sprintf("%s/%d KiB", s.name, size>>10), func(t *testing.T) {
				path := filepath.Join(dir, "config")
				b := []byte(strings.Repeat(s.unit, size/len(s.unit)+1)[:size])
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				tooBig := size > uci.MaxInputSize
				for _, r := range []struct {
					name      string
					read      func() error
					mustLimit bool // rejected for its size, before parsing
				}{
					{"config.Load", func() error { _, err := config.Load(path); return err }, true}, // 64 KiB cap
					{"uci.Parse", func() error { _, err := uci.Parse("x", bytes.NewReader(b)); return err }, tooBig},
					{"dhcp file", func() error { return findTarget(&config.Settings{DHCPConfig: path}).Err }, tooBig},
				} {
					n, err := allocated(3, r.read)
					t.Logf("%s: %d KiB allocated: %s", r.name, n>>10, firstLine(err))
					bound := parsedBound
					if r.mustLimit {
						bound = rejectedBound
						if !errors.Is(err, uci.ErrTooLarge) && !strings.Contains(firstLine(err), "larger than") {
							t.Errorf("%s of %d KiB: %v; want it rejected for its size", r.name, size>>10, err)
						}
					}
					if n > uint64(bound) {
						t.Errorf("%s of %d KiB allocated %d KiB, want under %d KiB", r.name, size>>10, n>>10, bound>>10)
					}
				}
			})
		}
	}
}

func firstLine(err error) string {
	if err == nil {
		return "accepted"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
