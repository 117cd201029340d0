// Package dnsmasqtest starts and stops a real dnsmasq on a loopback address for tests and the
// failover lab, in a world folder of its own holding its servers-file, pid file and log.
//
// The dnsmasq it starts runs in the foreground (-k) with no configuration file, no
// resolv.conf, no /etc/hosts, only the servers-file for upstreams, and listens on one loopback
// address and port (--bind-interfaces). The cache is off unless asked for: every client name the
// lab sends is unique, so a cache could never answer one, and with it off a servers-file switch
// (whose SIGHUP empties the cache) costs nothing the figures would hide; the lab counts the
// switches instead. Started as root, dnsmasq drops to nobody before it reads the servers-file,
// so the world folder is made 0755 and the servers-file 0644.
package dnsmasqtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// ErrNoDnsmasq is returned when no dnsmasq binary can be found.
var ErrNoDnsmasq = errors.New("dnsmasqtest: dnsmasq not found (install dnsmasq-base, or run make deps)")

// ErrNotReady is returned when dnsmasq exits or does not answer after starting.
var ErrNotReady = errors.New("dnsmasqtest: dnsmasq did not become ready")

// ErrNoAnswer is returned by a query that got no reply before the stub gave up.
var ErrNoAnswer = errors.New("dnsmasqtest: no answer")

// ErrNotLoopback is returned for a listen address outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("dnsmasqtest: listen address is not loopback")

// Options says how to start dnsmasq. The zero value is usable: 127.0.0.1, a free port, an
// empty servers-file, dnsmasq's default order, cache off, log to dnsmasq.log in the world.
type Options struct {
	Binary      string     // dnsmasq to run; empty = /usr/sbin/dnsmasq, else from PATH
	Dir         string     // world folder (created, made 0755); empty = a new one under os.TempDir()
	KeepDir     bool       // keep a folder Start created after Stop (for debugging)
	ListenAddr  netip.Addr // loopback address to listen on; zero = 127.0.0.1
	Port        uint16     // port to listen on; 0 = a free one
	Servers     []string   // initial servers-file entries, dnsmasq notation ("127.0.0.2#5353")
	StrictOrder bool       // --strict-order: try servers in file order
	AllServers  bool       // --all-servers: send every query to every server
	CacheSize   int        // 0 = cache off; n > 0 = --cache-size=n
	LogQueries  bool       // --log-queries (verbose; for debugging)
	Log         io.Writer  // where dnsmasq's log goes; nil = the file dnsmasq.log in Dir
	Extra       []string   // further dnsmasq arguments
}

// Dnsmasq is one running dnsmasq.
type Dnsmasq struct {
	Addr        netip.AddrPort // where it listens, UDP and TCP
	Dir         string         // the world folder
	PIDFile     string         // its --pid-file
	ServersFile string         // its --servers-file
	LogFile     string         // its log, when Options.Log was nil

	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error
	logBuf   *tailBuffer
	ownDir   bool
	keepDir  bool
	stopOnce sync.Once
	stopErr  error
}

// startAttempts bounds retries when the free port chosen is taken by someone else between
// choosing it and dnsmasq binding it: rare, so a few tries are plenty.
const startAttempts = 5

// readyTimeout is how long dnsmasq gets to answer its first query. It starts in a few ms;
// the margin is for a loaded 2-core CI machine.
const readyTimeout = 10 * time.Second

// stopTimeout is how long dnsmasq gets to exit after SIGTERM before it is killed.
const stopTimeout = 5 * time.Second

// Start runs dnsmasq as Options says, and returns once it answers queries. Stop it with Stop.
func Start(ctx context.Context, o Options) (*Dnsmasq, error) {
	bin, err := findBinary(o.Binary)
	if err != nil {
		return nil, err
	}
	if !o.ListenAddr.IsValid() {
		o.ListenAddr = netip.MustParseAddr("127.0.0.1")
	}
	if !o.ListenAddr.IsLoopback() {
		return nil, fmt.Errorf("%w: %s", ErrNotLoopback, o.ListenAddr)
	}
	d := &Dnsmasq{Dir: o.Dir, keepDir: o.KeepDir}
	if d.Dir == "" {
		if d.Dir, err = os.MkdirTemp("", "dnsmasqtest-"); err != nil {
			return nil, fmt.Errorf("dnsmasqtest: world folder: %w", err)
		}
		d.ownDir = true
	} else if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("dnsmasqtest: world folder: %w", err)
	}
	// dnsmasq reads the servers-file as nobody: the folder must be searchable by all.
	if err := os.Chmod(d.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("dnsmasqtest: world folder: %w", err)
	}
	d.PIDFile = filepath.Join(d.Dir, "dnsmasq.pid")
	d.ServersFile = filepath.Join(d.Dir, "servers.conf")
	if err := d.WriteServers(o.Servers...); err != nil {
		d.cleanDir()
		return nil, err
	}
	var lastErr error
	for range startAttempts {
		port := o.Port
		if port == 0 {
			if port, err = freePort(o.ListenAddr); err != nil {
				d.cleanDir()
				return nil, err
			}
		}
		d.Addr = netip.AddrPortFrom(o.ListenAddr, port)
		lastErr = d.run(ctx, bin, o)
		if lastErr == nil {
			return d, nil
		}
		if o.Port != 0 || !strings.Contains(d.logBuf.String(), "in use") {
			break
		}
	}
	d.cleanDir()
	return nil, lastErr
}

// StartT is Start for tests: it fails the test on error and stops dnsmasq in t.Cleanup.
// A test that fails gets dnsmasq's log tail in its output.
func StartT(t testing.TB, o Options) *Dnsmasq {
	t.Helper()
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq log tail:\n%s", d.LogTail())
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stopping dnsmasq: %v", err)
		}
	})
	return d
}

func findBinary(b string) (string, error) {
	if b != "" {
		if p, err := exec.LookPath(b); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("%w: %s", ErrNoDnsmasq, b)
	}
	if st, err := os.Stat("/usr/sbin/dnsmasq"); err == nil && !st.IsDir() {
		return "/usr/sbin/dnsmasq", nil
	}
	if p, err := exec.LookPath("dnsmasq"); err == nil {
		return p, nil
	}
	return "", ErrNoDnsmasq
}

// freePort finds a port free for both UDP and TCP on addr, by binding and releasing it.
func freePort(addr netip.Addr) (uint16, error) {
	for range startAttempts {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			return 0, fmt.Errorf("dnsmasqtest: free port on %s: %w", addr, err)
		}
		port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("dnsmasqtest: no port free for UDP and TCP on %s", addr)
}

func (d *Dnsmasq) args(o Options) []string {
	a := []string{
		"--keep-in-foreground",
		"--conf-file=/dev/null",
		"--no-resolv",
		"--no-hosts",
		"--bind-interfaces",
		"--listen-address=" + d.Addr.Addr().String(),
		"--port=" + strconv.Itoa(int(d.Addr.Port())),
		"--servers-file=" + d.ServersFile,
		"--pid-file=" + d.PIDFile,
		"--log-facility=-",
		"--cache-size=" + strconv.Itoa(max(o.CacheSize, 0)),
	}
	if d.Addr.Addr().Is6() {
		a = append(a, "--interface=lo")
	}
	if o.StrictOrder {
		a = append(a, "--strict-order")
	}
	if o.AllServers {
		a = append(a, "--all-servers")
	}
	if o.LogQueries {
		a = append(a, "--log-queries")
	}
	return append(a, o.Extra...)
}

func (d *Dnsmasq) run(ctx context.Context, bin string, o Options) error {
	d.logBuf = &tailBuffer{}
	var out io.Writer = d.logBuf
	var logFile *os.File
	if o.Log != nil {
		out = io.MultiWriter(o.Log, d.logBuf)
	} else {
		d.LogFile = filepath.Join(d.Dir, "dnsmasq.log")
		f, err := os.OpenFile(d.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("dnsmasqtest: log: %w", err)
		}
		logFile = f
		out = io.MultiWriter(f, d.logBuf)
	}
	os.Remove(d.PIDFile)
	d.cmd = exec.Command(bin, d.args(o)...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	// its own process group: a Ctrl-C on the lab reaches the lab, which stops dnsmasq itself
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	d.done = make(chan struct{})
	go func() {
		d.waitErr = d.cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(d.done)
	}()
	if err := d.waitReady(ctx); err != nil {
		d.kill()
		return err
	}
	return nil
}

// waitReady asks dnsmasq for version.bind (class CHAOS), which it answers itself without
// any upstream, until it replies.
func (d *Dnsmasq) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	for {
		select {
		case <-d.done:
			return fmt.Errorf("%w: exited (%v): %s", ErrNotReady, d.waitErr, strings.TrimSpace(d.logBuf.String()))
		case <-ctx.Done():
			return fmt.Errorf("%w: no answer on %s: %s", ErrNotReady, d.Addr, strings.TrimSpace(d.logBuf.String()))
		default:
		}
		if _, _, err := c.Exchange(m, d.Addr.String()); err == nil {
			if d.waitPIDFile(ctx) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
		case <-d.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitPIDFile waits until the pid file names the process (dnsmasq writes it as it starts).
func (d *Dnsmasq) waitPIDFile(ctx context.Context) bool {
	for {
		if pid, err := d.readPID(); err == nil && pid == d.cmd.Process.Pid {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (d *Dnsmasq) readPID() (int, error) {
	b, err := os.ReadFile(d.PIDFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// PID is dnsmasq's process id.
func (d *Dnsmasq) PID() int { return d.cmd.Process.Pid }

// Upstream is the listen address in dnsmasq's notation, for chaining.
func (d *Dnsmasq) Upstream() string {
	return fmt.Sprintf("%s#%d", d.Addr.Addr(), d.Addr.Port())
}

// WriteServers rewrites the servers-file in place (as the product does: OpenWrt's jail
// bind-mounts the file), one server= line per entry, in order. It does not signal dnsmasq.
func (d *Dnsmasq) WriteServers(servers ...string) error {
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "server=%s\n", s)
	}
	f, err := os.OpenFile(d.ServersFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("dnsmasqtest: servers-file: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dnsmasqtest: servers-file: %w", err)
	}
	return os.Chmod(d.ServersFile, 0o644)
}

// SetServers writes the servers-file and sends SIGHUP so dnsmasq re-reads it.
func (d *Dnsmasq) SetServers(servers ...string) error {
	if err := d.WriteServers(servers...); err != nil {
		return err
	}
	return d.Signal(syscall.SIGHUP)
}

// Signal sends sig to dnsmasq.
func (d *Dnsmasq) Signal(sig os.Signal) error {
	if err := d.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("dnsmasqtest: signal %v: %w", sig, err)
	}
	return nil
}

// Exited is closed when the dnsmasq process has exited.
func (d *Dnsmasq) Exited() <-chan struct{} { return d.done }

// LogTail is the last part of dnsmasq's log.
func (d *Dnsmasq) LogTail() string { return d.logBuf.String() }

// Stop sends SIGTERM, waits for dnsmasq to exit (killing it after a few seconds), and
// removes the world folder if Start created it. Safe to call more than once.
func (d *Dnsmasq) Stop() error {
	d.stopOnce.Do(func() {
		d.stopErr = d.kill()
		d.cleanDir()
	})
	return d.stopErr
}

func (d *Dnsmasq) kill() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("dnsmasqtest: dnsmasq ignored SIGTERM for %v and was killed", stopTimeout)
	}
}

func (d *Dnsmasq) cleanDir() {
	if d.ownDir && !d.keepDir {
		os.RemoveAll(d.Dir)
	}
}

// tailLimit is how much of dnsmasq's log is kept in memory for error messages.
const tailLimit = 8 << 10

// tailBuffer keeps the last tailLimit bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailLimit {
		t.buf = t.buf[len(t.buf)-tailLimit:]
		if i := bytes.IndexByte(t.buf, '\n'); i >= 0 {
			t.buf = t.buf[i+1:]
		}
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
