package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/miekg/dns"
)

// TestNoNetPackage: the probe must not link the standard library's net, directly or through
// a dependency: net costs about 460 KB of the router binary, whose budget is 3.2 MB. Checked
// for the host and for the router's mips build (tests may use net: they are not linked in).
func TestNoNetPackage(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list dependencies with: %v", err)
	}
	tests := []struct {
		name string
		env  []string
	}{
		{"host", nil},
		{"router (linux/mips softfloat)", []string{"GOOS=linux", "GOARCH=mips", "GOMIPS=softfloat", "CGO_ENABLED=0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".")
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("go list: %v\n%s", err, ee.Stderr)
				}
				t.Fatalf("go list: %v", err)
			}
			deps := strings.Fields(string(out))
			if !slices.Contains(deps, "net/netip") {
				t.Fatalf("go list -deps printed %q: not the probe's dependencies", out)
			}
			if slices.Contains(deps, "net") {
				t.Errorf("pkg/probe links package net (%d dependencies); build its sockets with syscall and os", len(deps))
			}
		})
	}
}

// TestProbeZones: an IPv6 zone, an interface name or index, reaches the socket; one that names
// no interface fails before anything is sent.
func TestProbeZones(t *testing.T) {
	t.Parallel()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no interface named lo here: %v", err)
	}
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	server := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) == nil {
				pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess), from)
			}
		}
	}()
	tests := []struct {
		name    string
		zone    string
		wantErr error // nil: up
		wantMsg string
	}{
		{"interface name", "lo", nil, ""},
		{"interface index", strconv.Itoa(lo.Index), nil, ""},
		{"no such interface", "nosuchif0", ErrUnreachable, `connect: no such network interface "nosuchif0"`},
		{"not an interface name", "../lo", ErrUnreachable, `connect: no such network interface "../lo"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			zoned := netip.AddrPortFrom(server.Addr().WithZone(tc.zone), server.Port())
			res := prober(answered).Probe(context.Background(), zoned)
			if res.Up != (tc.wantErr == nil) || !errIs(res.Err, tc.wantErr) || res.Offline || res.Server != zoned {
				t.Fatalf("Probe(%v) = %+v; want up %v, err wrapping %v", zoned, res, tc.wantErr == nil, tc.wantErr)
			}
			if tc.wantMsg != "" && res.Err.Error() != tc.wantMsg {
				t.Errorf("error = %q, want %q", res.Err, tc.wantMsg)
			}
		})
	}
	t.Run("index of lo", func(t *testing.T) {
		t.Parallel()
		if got, err := zoneIndex("lo"); err != nil || got != uint32(lo.Index) {
			t.Errorf("zoneIndex(lo) = %d, %v; want %d as package net says", got, err, lo.Index)
		}
	})
}

// TestProbeSocketsCloseOnExec: while a probe waits, its socket is close-on-exec, so a hook
// the daemon starts meanwhile does not inherit it (and keep it open after the probe).
func TestProbeSocketsCloseOnExec(t *testing.T) {
	t.Parallel()
	before, err := sockets()
	if err != nil {
		t.Skipf("cannot list open files here: %v", err)
	}
	type finding struct {
		checked int
		bad     []string
	}
	var once sync.Once
	found := make(chan finding, 1)
	server := startFake(t, func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
		once.Do(func() { // the probe waits for this reply: its socket is open now
			var f finding
			now, _ := sockets()
			for fd := range now {
				if before[fd] {
					continue
				}
				info, err := os.ReadFile("/proc/self/fdinfo/" + fd)
				if err != nil {
					continue // closed meanwhile: another test's
				}
				f.checked++
				if !closeOnExec(string(info)) {
					f.bad = append(f.bad, fd)
				}
			}
			found <- f
		})
		pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess), from)
	}, nil)
	if res := prober(answered).Probe(context.Background(), server); !res.Up {
		t.Fatalf("Probe: %v", res.Err)
	}
	f := <-found
	if f.checked == 0 {
		t.Fatal("no new socket seen while the probe waited: the test proves nothing")
	}
	if len(f.bad) > 0 {
		t.Errorf("sockets %v are not close-on-exec", f.bad)
	}
}

// sockets returns the descriptors of this process that are sockets.
func sockets() (map[string]bool, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			out[e.Name()] = true
		}
	}
	return out, nil
}

// closeOnExec reads the O_CLOEXEC bit from the "flags:" line (octal) of a /proc/self/fdinfo file.
func closeOnExec(fdinfo string) bool {
	for line := range strings.Lines(fdinfo) {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&syscall.O_CLOEXEC != 0
		}
	}
	return false
}

// TestProbeSocketsAboveStdio: in a daemon started with standard input, output and error
// closed, the probe's sockets still get descriptors above 2, where os would turn an EPIPE
// into a fatal SIGPIPE. The check runs in a child process that closes its own 0, 1 and 2.
func TestProbeSocketsAboveStdio(t *testing.T) {
	t.Parallel()
	if os.Getenv("PROBE_TEST_STDIO_CLOSED") == "1" {
		socketsAboveStdioChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeSocketsAboveStdio$")
	cmd.Env = append(os.Environ(), "PROBE_TEST_STDIO_CLOSED=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		t.Fatalf("child: %v (exit 3: a socket got a descriptor up to 2)\n%s", err, out)
	case err != nil:
		t.Skipf("cannot run the test binary again here: %v", err)
	}
}

// socketsAboveStdioChild closes descriptors 0 to 2, opens the probe's sockets and exits 0 if
// each got a descriptor above 2, 3 if not, 4 if it could not open them.
func socketsAboveStdioChild() {
	for fd := range 3 {
		syscall.Close(fd)
	}
	udp, err := dialer{}.dialUDP(netip.MustParseAddrPort("127.0.0.1:53"))
	if err != nil {
		os.Exit(4)
	}
	tcp, err := newSocket(syscall.AF_INET, syscall.SOCK_STREAM)
	if err != nil {
		os.Exit(4)
	}
	var udpFD int
	rc, err := udp.SyscallConn()
	if err != nil || rc.Control(func(fd uintptr) { udpFD = int(fd) }) != nil {
		os.Exit(4)
	}
	if udpFD <= 2 || tcp <= 2 {
		os.Exit(3)
	}
	os.Exit(0)
}
