package dnsmasq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// needDnsmasq skips the test when dnsmasq is not installed.
func needDnsmasq(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
			t.Skip("dnsmasq not installed")
		}
	}
}

// askA asks d for name's A record, through a stub that resends for up to 5 s.
// failOver writes the failover list (backup first) into d's servers-file in place and signals
// d through its pid file, as the watchdog does; it returns what Reload returned.
func failOver(t *testing.T, d *dnsmasqtest.Dnsmasq, nextdns, backup string) (int, error) {
	t.Helper()
	content := "# Generated by nextdns-failover: do not edit, it will be rewritten.\n# state: failover\n" +
		"server=" + backup + "\nserver=" + nextdns + "\n"
	if changed, err := WriteInPlace(d.ServersFile, []byte(content)); err != nil || !changed {
		t.Fatalf("WriteInPlace = %v, %v", changed, err)
	}
	return Signaller{PIDFile: d.PIDFile}.Reload()
}

func askA(t *testing.T, d *dnsmasqtest.Dnsmasq, name string) netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := d.Query(ctx, name, dnsmasqtest.Stub{Name: "test", Interval: time.Second, Sends: 5})
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r.A
}

// TestSignallerRealDnsmasq drives a real dnsmasq: WriteInPlace swaps the order of two
// upstreams, Reload signals it, and its next answer comes from the new first server.
func TestSignallerRealDnsmasq(t *testing.T) {
	needDnsmasq(t)
	nextdns := fakeUpstream(t, "192.0.2.1")
	backup := fakeUpstream(t, "192.0.2.2")
	d := dnsmasqtest.StartT(t, dnsmasqtest.Options{StrictOrder: true, Servers: []string{nextdns, backup}})
	if got := askA(t, d, "before.example"); got.String() != "192.0.2.1" {
		t.Fatalf("before the swap dnsmasq answered %v, want NextDNS's 192.0.2.1", got)
	}
	pid, err := failOver(t, d, nextdns, backup)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if pid != d.PID() {
		t.Errorf("signalled pid %d, dnsmasq is %d", pid, d.PID())
	}
	// SIGHUP takes effect within about a millisecond; poll generously rather than sleep.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if got := askA(t, d, fmt.Sprintf("after%d.example", i)); got.String() == "192.0.2.2" {
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

// fakeProcess is one process of a fake /proc tree. In argv, "{run}" stands for the test's
// pid file folder.
type fakeProcess struct {
	comm  string
	state string // "" = "S"
	ppid  int
	exe   string   // "" = no exe link (a kernel thread, or unreadable)
	argv  []string // nil = empty cmdline (a kernel thread or a zombie)
}

// writeProcTree writes procs as a /proc tree under root.
func writeProcTree(t *testing.T, root, run string, procs map[int]fakeProcess) {
	t.Helper()
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		state := p.state
		if state == "" {
			state = "S"
		}
		writeFile(t, filepath.Join(dir, "comm"), p.comm+"\n")
		writeFile(t, filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) %s %d %d %d 0 -1\n", pid, p.comm, state, p.ppid, pid, pid))
		var cmdline strings.Builder
		for _, a := range p.argv {
			cmdline.WriteString(strings.ReplaceAll(a, "{run}", run) + "\x00")
		}
		writeFile(t, filepath.Join(dir, "cmdline"), cmdline.String())
		if p.exe != "" {
			if err := os.Symlink(p.exe, filepath.Join(dir, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// entries that are not processes, as in the real /proc
	writeFile(t, filepath.Join(root, "uptime"), "1.00 1.00\n")
	if err := os.Symlink("1", filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
}

// openwrtDnsmasq is how OpenWrt's init script starts the dnsmasq of a section.
func openwrtDnsmasq(section string) []string {
	return []string{"/usr/sbin/dnsmasq", "-C", "/var/etc/dnsmasq.conf." + section, "-k", "-x", "{run}/dnsmasq." + section + ".pid"}
}

// openwrtUjail is the ujail that procd runs around it: procd names it "dnsmasq" (comm), and
// its argv holds the jail's options (one of which names the config) then dnsmasq's after "--".
func openwrtUjail(section string) []string {
	return append([]string{"/sbin/ujail", "-t", "5", "-n", "dnsmasq", "-u", "-l", "-r", "/bin/ubus",
		"-r", "/etc/hosts", "-w", "/tmp/dhcp.leases", "-r", "/var/etc/dnsmasq.conf." + section, "-w", "{run}/", "--"},
		openwrtDnsmasq(section)...)
}

// openwrtJailed is a router with two jailed dnsmasq instances, laid out like the process list
// of an OpenWrt 23.05 router: procd, ujail (named dnsmasq) and the dnsmasq it jails, which
// wrote its namespace pid 1 into its pid file.
var openwrtJailed = map[int]fakeProcess{
	1:    {comm: "procd", exe: "/sbin/procd", argv: []string{"/sbin/procd"}},
	2:    {comm: "kthreadd"},
	1168: {comm: "dnsmasq", ppid: 1, exe: "/sbin/ujail", argv: openwrtUjail("cfg01411c")},
	1174: {comm: "dnsmasq", ppid: 1168, exe: "/usr/sbin/dnsmasq", argv: openwrtDnsmasq("cfg01411c")},
	// a child forked for a DNS-over-TCP connection (or the DHCP script helper): same argv
	1175: {comm: "dnsmasq", ppid: 1174, exe: "/usr/sbin/dnsmasq", argv: openwrtDnsmasq("cfg01411c")},
	1176: {comm: "dnsmasq", state: "Z", ppid: 1174},
	1180: {comm: "dnsmasq", ppid: 1, exe: "/sbin/ujail", argv: openwrtUjail("guest_dns")},
	1181: {comm: "dnsmasq", ppid: 1180, exe: "/usr/sbin/dnsmasq", argv: openwrtDnsmasq("guest_dns")},
	// `/etc/init.d/dnsmasq restart` runs with comm "dnsmasq" too
	1855: {comm: "dnsmasq", ppid: 1854, exe: "/bin/busybox", argv: []string{"/bin/sh", "/etc/rc.common", "/etc/init.d/dnsmasq", "restart"}},
	4243: {comm: "dropbear", ppid: 1, exe: "/usr/sbin/dropbear", argv: []string{"/usr/sbin/dropbear", "-F", "-P", "/var/run/dropbear.1.pid"}},
}

// without is procs without the given pids.
func without(procs map[int]fakeProcess, pids ...int) map[int]fakeProcess {
	out := make(map[int]fakeProcess, len(procs))
	for pid, p := range procs {
		if !slices.Contains(pids, pid) {
			out[pid] = p
		}
	}
	return out
}

// reloadIn runs Reload with pidFile (in run) holding content ("-" = no file) over procs, and
// returns the pids signalled with the result.
func reloadIn(t *testing.T, procs map[int]fakeProcess, run, section, content string) (signalled []int, pid int, err error) {
	t.Helper()
	proc := t.TempDir()
	writeProcTree(t, proc, run, procs)
	pidFile := filepath.Join(run, "dnsmasq."+section+".pid")
	if content != "-" {
		writeFile(t, pidFile, content)
	}
	s := Signaller{PIDFile: pidFile, ProcRoot: proc, Kill: func(pid int, sig syscall.Signal) error {
		if sig != syscall.SIGHUP {
			t.Errorf("sent %v, want SIGHUP", sig)
		}
		signalled = append(signalled, pid)
		return nil
	}}
	pid, err = s.Reload()
	if err != nil && !strings.Contains(err.Error(), pidFile) {
		t.Errorf("error %q does not name the pid file", err)
	}
	return signalled, pid, err
}

func TestSignallerFindsJailedDnsmasq(t *testing.T) {
	tests := []struct {
		name    string
		procs   map[int]fakeProcess
		section string
		pidFile string // content; "-" = no file
		want    int
	}{
		{name: "pid file holds the jail's pid 1", procs: openwrtJailed, section: "cfg01411c", pidFile: "1\n", want: 1174},
		{name: "jail pid 2 is kthreadd on the host", procs: openwrtJailed, section: "cfg01411c", pidFile: "2\n", want: 1174},
		{name: "second instance", procs: openwrtJailed, section: "guest_dns", pidFile: "1\n", want: 1181},
		{name: "pid file missing", procs: openwrtJailed, section: "cfg01411c", pidFile: "-", want: 1174},
		{name: "stale pid", procs: openwrtJailed, section: "cfg01411c", pidFile: "9999\n", want: 1174},
		{name: "pid file names a foreign process", procs: openwrtJailed, section: "cfg01411c", pidFile: "4243\n", want: 1174},
		{name: "not jailed: the pid file is used as it is", procs: openwrtJailed, section: "guest_dns", pidFile: "1174\n", want: 1174},
		{name: "two dnsmasq with the same command line: the pid file decides", section: "cfg01411c", pidFile: "4250\n", want: 4250,
			procs: map[int]fakeProcess{
				4242: {comm: "dnsmasq", ppid: 1, argv: openwrtDnsmasq("cfg01411c")},
				4250: {comm: "dnsmasq", ppid: 1, argv: openwrtDnsmasq("cfg01411c")},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signalled, pid, err := reloadIn(t, tt.procs, t.TempDir(), tt.section, tt.pidFile)
			if err != nil || pid != tt.want {
				t.Fatalf("Reload = %d, %v; want %d", pid, err, tt.want)
			}
			if !slices.Equal(signalled, []int{tt.want}) {
				t.Errorf("signalled %v, want [%d]", signalled, tt.want)
			}
		})
	}
}

func TestSignallerFindsDnsmasqByCommandLine(t *testing.T) {
	const conf = "/var/etc/dnsmasq.conf.cfg01411c"
	const pid = "{run}/dnsmasq.cfg01411c.pid"
	tests := []struct {
		name  string
		comm  string // "" = dnsmasq
		exe   string
		argv  []string
		found bool
	}{
		{name: "-x PATH", argv: []string{"/usr/sbin/dnsmasq", "-k", "-x", pid}, found: true},
		{name: "-xPATH", argv: []string{"/usr/sbin/dnsmasq", "-x" + pid}, found: true},
		{name: "--pid-file=PATH", argv: []string{"/usr/sbin/dnsmasq", "--keep-in-foreground", "--pid-file=" + pid}, found: true},
		{name: "grouped -kx PATH", argv: []string{"/usr/sbin/dnsmasq", "-kx", pid}, found: true},
		{name: "grouped -kxPATH", argv: []string{"/usr/sbin/dnsmasq", "-kx" + pid}, found: true},
		{name: "unclean path", argv: []string{"/usr/sbin/dnsmasq", "-x", strings.Replace(pid, "/dnsmasq.", "//./dnsmasq.", 1)}, found: true},
		{name: "OpenWrt config, pid file by another path", argv: []string{"/usr/sbin/dnsmasq", "-C", conf, "-k", "-x", "/var/run/dnsmasq/dnsmasq.cfg01411c.pid"}, found: true},
		{name: "-CPATH", argv: []string{"/usr/sbin/dnsmasq", "-C" + conf}, found: true},
		{name: "--conf-file=PATH", argv: []string{"/usr/sbin/dnsmasq", "--conf-file=" + conf}, found: true},
		{name: "bare --pid-file takes no argument", argv: []string{"/usr/sbin/dnsmasq", "--pid-file", "-C", conf}, found: true},
		{name: "the last -x wins", argv: []string{"/usr/sbin/dnsmasq", "-x", "/tmp/other.pid", "-x", pid}, found: true},
		{name: "renamed comm, dnsmasq exe", comm: "dnsmasq-full", exe: "/usr/sbin/dnsmasq", argv: []string{"/usr/sbin/dnsmasq", "-x", pid}, found: true},

		{name: "--pid-file PATH is not dnsmasq's syntax", argv: []string{"/usr/sbin/dnsmasq", "--pid-file", pid}},
		{name: "a later -x names another file", argv: []string{"/usr/sbin/dnsmasq", "-x", pid, "-x", "/tmp/other.pid"}},
		{name: "after --", argv: []string{"/usr/sbin/dnsmasq", "--", "-x", pid}},
		{name: "-x as the value of -u", argv: []string{"/usr/sbin/dnsmasq", "-u", "-x", pid}},
		{name: "another section's config", argv: []string{"/usr/sbin/dnsmasq", "-C", "/var/etc/dnsmasq.conf.guest_dns"}},
		{name: "config of the same name elsewhere", argv: []string{"/usr/sbin/dnsmasq", "-C", "/etc/dnsmasq.conf.cfg01411c"}},
		{name: "another pid file", argv: []string{"/usr/sbin/dnsmasq", "-x", pid + ".old"}},
		{name: "foreign process whose argv[0] says dnsmasq", comm: "sh", exe: "/bin/busybox", argv: []string{"/usr/sbin/dnsmasq", "-x", pid}},
		{name: "foreign process naming the pid file", comm: "vi", exe: "/usr/bin/vi", argv: []string{"vi", pid}},
		{name: "a wrapper procd names dnsmasq", exe: "/sbin/ujail", argv: []string{"/sbin/ujail", "-n", "dnsmasq", "--", "/usr/sbin/dnsmasq", "-x", pid}},
		{name: "a script named dnsmasq", exe: "/bin/busybox", argv: []string{"/bin/sh", "/etc/init.d/dnsmasq", "-x", pid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			comm := tt.comm
			if comm == "" {
				comm = "dnsmasq"
			}
			procs := map[int]fakeProcess{
				1:    {comm: "procd", exe: "/sbin/procd", argv: []string{"/sbin/procd"}},
				4242: {comm: comm, ppid: 1, exe: tt.exe, argv: tt.argv},
			}
			signalled, pid, err := reloadIn(t, procs, t.TempDir(), "cfg01411c", "1\n")
			if tt.found {
				if err != nil || pid != 4242 || !slices.Equal(signalled, []int{4242}) {
					t.Fatalf("Reload = %d, %v, signalled %v; want 4242 found and signalled", pid, err, signalled)
				}
				return
			}
			if !errors.Is(err, ErrNoPIDFile) || len(signalled) > 0 {
				t.Fatalf("Reload = %d, %v, signalled %v; want ErrNoPIDFile, none signalled", pid, err, signalled)
			}
		})
	}
}

func TestSignallerRefusesWithoutOneDnsmasq(t *testing.T) {
	dnsmasq := func(ppid int, state string) fakeProcess {
		return fakeProcess{comm: "dnsmasq", ppid: ppid, state: state, exe: "/usr/sbin/dnsmasq", argv: openwrtDnsmasq("cfg01411c")}
	}
	tests := []struct {
		name    string
		procs   map[int]fakeProcess
		pidFile string
		want    []error
		wantMsg []string
	}{
		{name: "two dnsmasq for one instance", pidFile: "1\n",
			procs: map[int]fakeProcess{4242: dnsmasq(1, ""), 4250: dnsmasq(1, ""), 4251: dnsmasq(4250, "")},
			want:  []error{ErrNoPIDFile, ErrManyDnsmasq}, wantMsg: []string{"4242, 4250", "none signalled"}},
		{name: "none for this instance", pidFile: "1\n", procs: without(openwrtJailed, 1174, 1175, 1176),
			want: []error{ErrNoPIDFile}, wantMsg: []string{"no dnsmasq process naming", "/var/etc/dnsmasq.conf.cfg01411c", "either"}},
		{name: "stale pid file, none for this instance", pidFile: "9999\n", procs: without(openwrtJailed, 1174, 1175, 1176),
			want: []error{ErrNotRunning}, wantMsg: []string{"9999", "either"}},
		{name: "foreign pid, none for this instance", pidFile: "4243\n", procs: without(openwrtJailed, 1174, 1175, 1176),
			want: []error{ErrNotDnsmasq}, wantMsg: []string{"4243", `"dropbear"`, "either"}},
		{name: "only a zombie", pidFile: "1\n", procs: map[int]fakeProcess{4242: dnsmasq(1, "Z")},
			want: []error{ErrNoPIDFile}, wantMsg: []string{"either"}},
		{name: "the main process exited: its child is not it", pidFile: "1\n",
			procs: map[int]fakeProcess{4242: dnsmasq(1, "Z"), 4243: dnsmasq(4242, "")},
			want:  []error{ErrNoPIDFile}, wantMsg: []string{"either"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signalled, pid, err := reloadIn(t, tt.procs, t.TempDir(), "cfg01411c", tt.pidFile)
			if len(signalled) > 0 {
				t.Errorf("signalled %v, want none", signalled)
			}
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("Reload = %d, %v; want %v", pid, err, want)
				}
			}
			for _, msg := range tt.wantMsg {
				if err != nil && !strings.Contains(err.Error(), msg) {
					t.Errorf("error %q does not say %q", err, msg)
				}
			}
		})
	}
}

// TestScanProcBounds: the scan reads a bounded number of /proc entries and a bounded part of
// each command line.
func TestScanProcBounds(t *testing.T) {
	run := t.TempDir()
	pidFile := filepath.Join(run, "dnsmasq.cfg01411c.pid")
	in := matchFor(pidFile)

	t.Run("entries", func(t *testing.T) {
		procs := map[int]fakeProcess{}
		for pid := 100; pid < 110; pid++ {
			procs[pid] = fakeProcess{comm: "sleep", ppid: 1, argv: []string{"sleep", "60"}}
		}
		procs[4242] = fakeProcess{comm: "dnsmasq", ppid: 1, argv: openwrtDnsmasq("cfg01411c")}
		root := t.TempDir()
		writeProcTree(t, root, run, procs)
		if pid, err := scanProc(root, in, 100); err != nil || pid != 4242 {
			t.Fatalf("scanProc with room = %d, %v; want 4242", pid, err)
		}
		if pid, err := scanProc(root, in, 5); err == nil || !strings.Contains(err.Error(), "more than 5 entries") {
			t.Fatalf("scanProc over the bound = %d, %v; want a refusal", pid, err)
		}
	})
	t.Run("command line", func(t *testing.T) {
		// The first maxCmdline bytes end exactly where the pid file path does, inside the
		// argument "--pid-file=<path>.old": the cut argument must not match.
		head := "/usr/sbin/dnsmasq\x00"
		arg := "--pid-file=" + pidFile
		filler := "--log-facility=/" + strings.Repeat("l", maxCmdline-len(head)-len(arg)-len("--log-facility=/")-1)
		argv := []string{"/usr/sbin/dnsmasq", filler, arg + ".old"}
		if n := len(head) + len(filler) + 1 + len(arg); n != maxCmdline {
			t.Fatalf("test setup: the cut is at %d, want %d", n, maxCmdline)
		}
		root := t.TempDir()
		writeProcTree(t, root, run, map[int]fakeProcess{4242: {comm: "dnsmasq", ppid: 1, argv: argv}})
		if pid, err := scanProc(root, in, maxProcEntries); err == nil {
			t.Fatalf("scanProc = %d: matched a command line cut in the middle of an argument", pid)
		}
		// the same command line, short enough, does match
		root = t.TempDir()
		writeProcTree(t, root, run, map[int]fakeProcess{4242: {comm: "dnsmasq", ppid: 1, argv: []string{"/usr/sbin/dnsmasq", filler[:100], arg}}})
		if pid, err := scanProc(root, in, maxProcEntries); err != nil || pid != 4242 {
			t.Fatalf("scanProc = %d, %v; want 4242", pid, err)
		}
	})
}

// BenchmarkScanProc measures one scan of this machine's /proc that finds nothing.
func BenchmarkScanProc(b *testing.B) {
	in := matchFor(filepath.Join(b.TempDir(), "dnsmasq.nosuchsection.pid"))
	for b.Loop() {
		if _, err := scanProc("/proc", in, maxProcEntries); err == nil {
			b.Fatal("found a dnsmasq for a section that does not exist")
		}
	}
}

// childOf waits (bounded) until /proc shows a dnsmasq whose parent is ppid, and returns it.
func childOf(t *testing.T, ppid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, stat := range dirs {
			b, err := os.ReadFile(stat)
			if err != nil {
				continue
			}
			if _, parent := procStat(b); parent == ppid && bytes.Contains(b, []byte("(dnsmasq)")) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(stat)))
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no child of dnsmasq %d appeared in 10 s", ppid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSignallerRealDnsmasqWrongPIDFile is the jail seen from the host, with a real dnsmasq:
// its pid file says 1, and a child it forked for a TCP connection shares its command line.
// Reload must still reach dnsmasq itself, whose next answer comes from the new first server.
func TestSignallerRealDnsmasqWrongPIDFile(t *testing.T) {
	needDnsmasq(t)
	nextdns := fakeUpstream(t, "192.0.2.1")
	backup := fakeUpstream(t, "192.0.2.2")
	d := dnsmasqtest.StartT(t, dnsmasqtest.Options{StrictOrder: true, Servers: []string{nextdns, backup}})
	if got := askA(t, d, "before.example"); got.String() != "192.0.2.1" {
		t.Fatalf("before the swap dnsmasq answered %v, want NextDNS's 192.0.2.1", got)
	}
	// dnsmasq forks a child, with the same command line, for each TCP connection
	conn, err := net.Dial("tcp", d.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	child := childOf(t, d.PID())
	writeFile(t, d.PIDFile, "1\n")

	pid, err := failOver(t, d, nextdns, backup)
	if err != nil {
		t.Fatalf("Reload with a pid file saying 1: %v", err)
	}
	if pid != d.PID() {
		t.Fatalf("signalled pid %d, dnsmasq is %d (its TCP child is %d)", pid, d.PID(), child)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if got := askA(t, d, fmt.Sprintf("after%d.example", i)); got.String() == "192.0.2.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dnsmasq still asks NextDNS first 10 s after the signal")
		}
	}
}

// A dnsmasq that does not catch SIGHUP yet (just started: OpenWrt's reload race) would die of
// it; it is left alone until it does, and signalled then.
func TestSignallerWaitsForTheHUPHandler(t *testing.T) {
	proc := fakeProc(t, map[int]string{4242: "dnsmasq S /usr/sbin/dnsmasq"})
	pidFile := filepath.Join(t.TempDir(), "dnsmasq.pid")
	writeFile(t, pidFile, "4242\n")
	for _, tc := range []struct {
		name, status string
		want         error
	}{
		{"starting", "Name:\tdnsmasq\nSigIgn:\t0000000000001000\nSigCgt:\t0000000000000000\n", ErrStarting},
		{"ready", "Name:\tdnsmasq\nSigCgt:\t0000000000014a03\n", nil},
		{"no status", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := filepath.Join(proc, "4242", "status")
			os.Remove(status)
			if tc.status != "" {
				writeFile(t, status, tc.status)
			}
			var killed []int
			s := Signaller{PIDFile: pidFile, ProcRoot: proc, Kill: func(pid int, _ syscall.Signal) error {
				killed = append(killed, pid)
				return nil
			}}
			_, err := s.Reload()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Reload: %v, want %v", err, tc.want)
			}
			if (tc.want == nil) != (len(killed) == 1) {
				t.Fatalf("signalled %v (error %v)", killed, err)
			}
		})
	}
}
