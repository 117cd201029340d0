package dnsmasq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nextdns-failover/nextdns-failover/internal/dnsmasqtest"
)

// fakeProc builds a /proc tree with one process per entry: pid -> "comm state [exe]".
func fakeProc(t *testing.T, procs map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, desc := range procs {
		f := strings.Fields(desc)
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "comm"), f[0]+"\n")
		writeFile(t, filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) %s 1 %d %d 0 -1\n", pid, f[0], f[1], pid, pid))
		if len(f) > 2 {
			if err := os.Symlink(f[2], filepath.Join(dir, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestSignaller(t *testing.T) {
	proc := fakeProc(t, map[int]string{
		4242: "dnsmasq S /usr/sbin/dnsmasq",
		4243: "sshd S /usr/sbin/dropbear",
		4244: "dnsmasq Z",
		4245: "dnsmasq-full S /usr/sbin/dnsmasq",
		4246: "dnsmasq S /usr/sbin/dnsmasq (deleted)",
		4247: "dnsmasq.old S /tmp/dnsmasq (deleted)",
	})
	tests := []struct {
		name     string
		pidFile  string // content; "-" = no file
		want     error
		wantKill int // pid that must get SIGHUP; 0 = none
	}{
		{name: "running dnsmasq", pidFile: "4242\n", wantKill: 4242},
		{name: "pid without newline", pidFile: "4242", wantKill: 4242},
		{name: "renamed dnsmasq binary by its exe", pidFile: "4245\n", wantKill: 4245},
		{name: "dnsmasq whose binary was upgraded under it", pidFile: "4246\n", wantKill: 4246},
		{name: "renamed process from an upgraded binary", pidFile: "4247\n", wantKill: 4247},
		{name: "missing pid file", pidFile: "-", want: ErrNoPIDFile},
		{name: "empty pid file", pidFile: "", want: ErrNoPIDFile},
		{name: "garbage", pidFile: "dnsmasq\n", want: ErrNoPIDFile},
		{name: "negative pid would signal a group", pidFile: "-1\n", want: ErrNoPIDFile},
		{name: "pid 0 would signal our own group", pidFile: "0\n", want: ErrNoPIDFile},
		{name: "pid 1 is init", pidFile: "1\n", want: ErrNoPIDFile},
		{name: "two pids", pidFile: "4242 4243\n", want: ErrNoPIDFile},
		{name: "huge", pidFile: strings.Repeat("4", 100), want: ErrNoPIDFile},
		{name: "stale pid: no such process", pidFile: "9999\n", want: ErrNotRunning},
		{name: "zombie", pidFile: "4244\n", want: ErrNotRunning},
		{name: "foreign process is never signalled", pidFile: "4243\n", want: ErrNotDnsmasq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "dnsmasq.cfg01411c.pid")
			if tt.pidFile != "-" {
				writeFile(t, pidFile, tt.pidFile)
			}
			var killed []int
			s := Signaller{PIDFile: pidFile, ProcRoot: proc, Kill: func(pid int, sig syscall.Signal) error {
				if sig != syscall.SIGHUP {
					t.Errorf("sent %v, want SIGHUP", sig)
				}
				killed = append(killed, pid)
				return nil
			}}
			pid, err := s.Reload()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Reload = %d, %v; want %v", pid, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), pidFile) {
				t.Errorf("error %q does not name the pid file", err)
			}
			if err != nil && pid != 0 && !strings.Contains(err.Error(), strconv.Itoa(pid)) {
				t.Errorf("error %q does not name pid %d", err, pid)
			}
			switch {
			case tt.wantKill == 0 && len(killed) > 0:
				t.Errorf("signalled %v, want none", killed)
			case tt.wantKill != 0 && (len(killed) != 1 || killed[0] != tt.wantKill):
				t.Errorf("signalled %v, want [%d]", killed, tt.wantKill)
			}
		})
	}
}

func TestSignallerExitedBetweenCheckAndKill(t *testing.T) {
	proc := fakeProc(t, map[int]string{4242: "dnsmasq S"})
	pidFile := filepath.Join(t.TempDir(), "pid")
	writeFile(t, pidFile, "4242\n")
	s := Signaller{PIDFile: pidFile, ProcRoot: proc, Kill: func(int, syscall.Signal) error { return syscall.ESRCH }}
	if _, err := s.Reload(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Reload = %v, want ErrNotRunning", err)
	}
}

// TestSignallerForeignProcess writes the pid of a real foreign process (sleep, which SIGHUP
// would kill) into the pid file: Reload must refuse, and sleep must live on.
func TestSignallerForeignProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	pidFile := filepath.Join(t.TempDir(), "dnsmasq.pid")
	writeFile(t, pidFile, strconv.Itoa(cmd.Process.Pid)+"\n")

	pid, err := Signaller{PIDFile: pidFile}.Reload()
	if !errors.Is(err, ErrNotDnsmasq) || pid != cmd.Process.Pid {
		t.Fatalf("Reload = %d, %v; want %d, ErrNotDnsmasq", pid, err, cmd.Process.Pid)
	}
	if !strings.Contains(err.Error(), `"sleep"`) {
		t.Errorf("error %q does not say what the process is", err)
	}
	// A SIGHUP would have ended sleep at once; give it a moment to show.
	select {
	case err := <-exited:
		t.Fatalf("sleep exited (%v): it was signalled", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSignallerStalePID uses the pid of a process that has exited and been reaped.
func TestSignallerStalePID(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	pidFile := filepath.Join(t.TempDir(), "dnsmasq.pid")
	writeFile(t, pidFile, strconv.Itoa(cmd.Process.Pid)+"\n")
	_, err := Signaller{PIDFile: pidFile}.Reload()
	if !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrNotDnsmasq) {
		t.Fatalf("Reload of a dead pid = %v, want ErrNotRunning (or ErrNotDnsmasq if the pid was reused)", err)
	}
}

// fakeUpstream answers every A query with answer, on a free 127.0.0.1 port.
func fakeUpstream(t *testing.T, answer string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A " + answer)
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	ap := netip.MustParseAddrPort(pc.LocalAddr().String())
	return fmt.Sprintf("%s#%d", ap.Addr(), ap.Port())
}

// TestSignallerRealDnsmasq drives a real dnsmasq: WriteInPlace swaps the order of two
// upstreams, Reload signals it, and its next answer comes from the new first server.
func TestSignallerRealDnsmasq(t *testing.T) {
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
			t.Skip("dnsmasq not installed")
		}
	}
	nextdns := fakeUpstream(t, "192.0.2.1")
	backup := fakeUpstream(t, "192.0.2.2")
	d := dnsmasqtest.StartT(t, dnsmasqtest.Options{StrictOrder: true, Servers: []string{nextdns, backup}})

	ask := func(name string) netip.Addr {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := d.Query(ctx, name, dnsmasqtest.Stub{Name: "test", Interval: time.Second, Sends: 5})
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		return r.A
	}
	if got := ask("before.example"); got.String() != "192.0.2.1" {
		t.Fatalf("before the swap dnsmasq answered %v, want NextDNS's 192.0.2.1", got)
	}
	content := "# Generated by nextdns-failover: do not edit, it will be rewritten.\n# state: failover\n" +
		"server=" + backup + "\nserver=" + nextdns + "\n"
	if changed, err := WriteInPlace(d.ServersFile, []byte(content)); err != nil || !changed {
		t.Fatalf("WriteInPlace = %v, %v", changed, err)
	}
	pid, err := Signaller{PIDFile: d.PIDFile}.Reload()
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if pid != d.PID() {
		t.Errorf("signalled pid %d, dnsmasq is %d", pid, d.PID())
	}
	// SIGHUP takes effect within about a millisecond; poll generously rather than sleep.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if got := ask(fmt.Sprintf("after%d.example", i)); got.String() == "192.0.2.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dnsmasq still asks NextDNS first 10 s after the signal")
		}
	}
	select {
	case <-d.Exited():
		t.Fatal("dnsmasq exited after the signal")
	default:
	}
}
