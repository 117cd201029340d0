package passive

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
)

// These tests open a real packet socket: they need CAP_NET_RAW (root here and in CI) and skip
// cleanly without it. All traffic stays on loopback.

// waitFor bounds the waits below for something the kernel does at once (a packet on loopback
// reaching the packet socket); it is a ceiling, not a sleep.
const waitFor = 5 * time.Second

func open(t testing.TB, ups []netip.AddrPort, timeout time.Duration, now func() time.Time) *Watcher {
	t.Helper()
	w, err := Open(ups, timeout, now)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("cannot watch here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		w.Close()
	})
	return w
}

func startDNS(t testing.TB) *fakedns.Server {
	t.Helper()
	s, err := fakedns.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ask(t testing.TB, s *fakedns.Server, proto, name string, timeout time.Duration) error {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	_, _, err := c.Exchange(m, s.Addr().String())
	return err
}

// totals accumulates Takes until cond holds or waitFor passes.
func totals(t *testing.T, w *Watcher, now func() time.Time, cond func(Stats) bool) Stats {
	t.Helper()
	var sum Stats
	deadline := time.Now().Add(waitFor)
	for {
		s := w.Take(now())[0]
		sum.Sent += s.Sent
		sum.Answered += s.Answered
		sum.Unanswered += s.Unanswered
		sum.ServFail += s.ServFail
		sum.RTTSum += s.RTTSum
		sum.RTTMax = max(sum.RTTMax, s.RTTMax)
		sum.Silent, sum.Failing, sum.LastReply = s.Silent, s.Failing, s.LastReply
		if cond(sum) {
			return sum
		}
		if time.Now().After(deadline) {
			t.Fatalf("not seen within %v: %+v", waitFor, sum)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatcherSeesQueriesOnLoopback(t *testing.T) {
	s := startDNS(t)
	w := open(t, []netip.AddrPort{s.Addr()}, 2*time.Second, time.Now)
	if err := ask(t, s, "udp", "a.example", time.Second); err != nil {
		t.Fatal(err)
	}
	got := totals(t, w, time.Now, func(s Stats) bool { return s.Answered >= 1 })
	// Loopback shows each packet twice: still one query, one answer.
	if got.Sent != 1 || got.Answered != 1 || got.RTTMax <= 0 || got.RTTMax > time.Second || got.LastReply.IsZero() {
		t.Errorf("after one UDP query: %+v", got)
	}
	t.Logf("loopback RTT %v", got.RTTMax)
	if err := ask(t, s, "tcp", "b.example", time.Second); err != nil {
		t.Fatal(err)
	}
	got = totals(t, w, time.Now, func(s Stats) bool { return s.Answered >= 1 })
	if got.Sent != 1 || got.Answered != 1 {
		t.Errorf("after one TCP query: %+v", got)
	}
}

// fakeClock is a settable clock for the watcher.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func pendingOf(w *Watcher) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ledger.pendingCount()
}

func waitPending(t *testing.T, w *Watcher, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for pendingOf(w) != n {
		if time.Now().After(deadline) {
			t.Fatalf("pending %d, want %d", pendingOf(w), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func suspected(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case <-w.Suspect():
	case <-time.After(waitFor):
		t.Fatal("Suspect did not fire")
	}
}

func TestWatcherBlackholeGrowsSilentAndSuspects(t *testing.T) {
	s := startDNS(t)
	s.Drop()
	clock := &fakeClock{t: t0}
	// The timeout is short because the expiry timer runs on real time (it fires at the
	// fake deadline's distance); the fake clock decides what has expired.
	const timeout = 100 * time.Millisecond
	w := open(t, []netip.AddrPort{s.Addr()}, timeout, clock.now)
	for i, name := range []string{"x.example", "y.example"} {
		ask(t, s, "udp", name, 20*time.Millisecond)
		waitPending(t, w, 1)
		clock.add(time.Second)
		suspected(t, w) // by the expiry timer, not by Take
		if got := w.Take(clock.now())[0]; got.Silent != i+1 || got.Unanswered != 1 || got.Sent != 1 {
			t.Fatalf("query %d: %+v", i+1, got)
		}
	}
	s.Answer()
	if err := ask(t, s, "udp", "z.example", time.Second); err != nil {
		t.Fatal(err)
	}
	got := totals(t, w, clock.now, func(s Stats) bool { return s.Answered >= 1 })
	if got.Silent != 0 {
		t.Errorf("a reply did not reset Silent: %+v", got)
	}
	s.ServFail()
	ask(t, s, "udp", "f.example", time.Second)
	suspected(t, w)
	if got := totals(t, w, clock.now, func(s Stats) bool { return s.Failing >= 1 }); got.ServFail != 1 {
		t.Errorf("after SERVFAIL: %+v", got)
	}
	// Nothing pending: the expiry timer disarms (no wake-ups at idle).
	deadline := time.Now().Add(waitFor)
	for {
		w.mu.Lock()
		armed := w.armed
		w.mu.Unlock()
		if !armed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expiry timer stays armed with nothing pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatcherSetUpstreams(t *testing.T) {
	a, b := startDNS(t), startDNS(t)
	w := open(t, []netip.AddrPort{a.Addr()}, time.Second, time.Now)
	if err := w.SetUpstreams([]netip.AddrPort{b.Addr(), a.Addr()}, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ask(t, b, "udp", "b.example", time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitFor)
	for {
		got := w.Take(time.Now())
		if len(got) != 2 {
			t.Fatalf("Take gave %d, want 2", len(got))
		}
		if got[0].Answered == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new upstream's query not seen: %+v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenErrorsWrapUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{syscall.EPERM, "passive observation unavailable: no CAP_NET_RAW (socket: operation not permitted)"},
		{syscall.EAFNOSUPPORT, "passive observation unavailable: no AF_PACKET (socket: address family not supported by protocol)"},
		{syscall.EINVAL, "passive observation unavailable: no AF_PACKET (socket: invalid argument)"},
	} {
		err := unavailable("socket", tc.err)
		if !errors.Is(err, ErrUnavailable) || err.Error() != tc.want {
			t.Errorf("%v: %q", tc.err, err)
		}
	}
}

// cpu is the process's user + system CPU time so far.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestQueryHelper is not a test: BenchmarkSocketPath1000Queries runs the test binary again
// with PASSIVE_QUERIES=count and the upstream's UDP socket as file 3. It serves that socket as
// a minimal upstream (each datagram back with QR set) and sends count queries to it, one at a
// time, each awaiting its reply, from a new local port per 1,000 (IDs never repeat on a port).
func TestQueryHelper(t *testing.T) {
	spec := os.Getenv("PASSIVE_QUERIES")
	if spec == "" {
		t.Skip("only run by BenchmarkSocketPath1000Queries")
	}
	n, _ := strconv.Atoi(spec)
	pc, err := net.FilePacketConn(os.NewFile(3, "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	up := pc.(*net.UDPConn)
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := up.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			buf[2] |= 0x80
			up.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	msg := new(dns.Msg)
	msg.SetQuestion("bench.example.", dns.TypeA)
	q, _ := msg.Pack()
	buf := make([]byte, 512)
	for sent := 0; sent < n; {
		c, err := net.DialUDP("udp4", nil, up.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1000 && sent < n; i, sent = i+1, sent+1 {
			q[0], q[1] = byte(i>>8), byte(i)
			c.Write(q)
			c.Read(buf)
		}
		c.Close()
	}
}

// BenchmarkSocketPath1000Queries measures what watching 1,000 client queries costs: another
// process (this test binary, again) runs a loopback upstream and sends it 1,000 queries per
// op, without and with a Watcher in this process. Reported per op: this process's CPU
// (watcher-ms/op: the Go side, reading, parsing and recording each query's four packets, two
// each way as loopback shows them twice) and the other process's (sender-ms/op: its difference
// between the two runs is the kernel side, the filter and the copies to the packet socket).
func BenchmarkSocketPath1000Queries(b *testing.B) {
	for _, watch := range []bool{false, true} {
		name := "unwatched"
		if watch {
			name = "watched"
		}
		b.Run(name, func(b *testing.B) {
			up, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
			if err != nil {
				b.Fatal(err)
			}
			upAddr := up.LocalAddr().(*net.UDPAddr).AddrPort()
			upf, err := up.File()
			// Only the child serves it: left in this process's poller, each datagram would
			// wake this process too.
			up.Close()
			if err != nil {
				b.Fatal(err)
			}
			defer upf.Close()
			var w *Watcher
			if watch {
				w = open(b, []netip.AddrPort{upAddr}, 2*time.Second, time.Now)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestQueryHelper$")
			cmd.Env = append(os.Environ(), "PASSIVE_QUERIES="+strconv.Itoa(b.N*1000))
			cmd.ExtraFiles = []*os.File{upf}
			b.ResetTimer()
			start := cpu()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			self := cpu() - start
			b.StopTimer()
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			sender := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			b.ReportMetric(float64(self.Microseconds())/1000/float64(b.N), "watcher-ms/op")
			b.ReportMetric(float64(sender.Microseconds())/1000/float64(b.N), "sender-ms/op")
			if w != nil {
				time.Sleep(50 * time.Millisecond) // the last packets' reads
				got := w.Take(time.Now())[0]
				b.ReportMetric(100*float64(got.Answered)/float64(b.N*1000), "seen-%")
				w.mu.Lock()
				b.ReportMetric(float64(w.drops), "dropped-packets")
				w.mu.Unlock()
				if got.Answered < b.N*1000*9/10 {
					b.Errorf("watched %d of %d", got.Answered, b.N*1000)
				}
			}
		})
	}
}

// BenchmarkParseAndLedger1000Queries is the Go side alone: parsing and recording the 4,000
// packets (query and reply, each twice as on loopback) of 1,000 queries.
func BenchmarkParseAndLedger1000Queries(b *testing.B) {
	ups := []netip.AddrPort{upA, upB}
	l := NewLedger(ups, 2*time.Second)
	var pkts [][]byte
	for i := range 1000 {
		qb := craft{src: ap(router4, 40000), dst: upA, id: uint16(i)}.bytes()[:40]
		rb := craft{src: upA, dst: ap(router4, 40000), id: uint16(i), reply: true}.bytes()[:40]
		pkts = append(pkts, qb, qb, rb, rb)
	}
	b.ReportAllocs()
	at := t0
	for range b.N {
		for _, p := range pkts {
			at = at.Add(time.Microsecond)
			if pk, ok := parse(p, at, l.index); ok {
				l.Observe(pk)
			}
		}
		at = at.Add(2 * time.Second)
		l.Expire(at)
	}
}

// TestFloodHelper is not a test: BenchmarkFilterReject runs the test binary again with
// PASSIVE_FLOOD=addr,count to send count datagrams to addr from another process.
func TestFloodHelper(t *testing.T) {
	spec := os.Getenv("PASSIVE_FLOOD")
	if spec == "" {
		t.Skip("only run by BenchmarkFilterReject")
	}
	addr, count, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(count)
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 32)
	for range n {
		c.Write(payload)
	}
}

// BenchmarkFilterReject measures what the watcher's packet socket costs the router when other
// traffic floods it: another process (this test binary, again) sends b.N small UDP datagrams on
// loopback to a port no upstream uses (a sink that never reads), with no packet socket, with
// one whose filter is a lone "ret #0" (the cost of any ETH_P_ALL tap), and with a running
// Watcher for three upstreams. Reported: the sender's CPU per packet (sender-ns/op: on
// loopback its system call also runs the receive side in softirq, so both runs of the filter
// per packet, OUTGOING and HOST, are charged to it) and this process's CPU per packet
// (watcher-ns/op: should be ~0, the filter admits nothing). The difference in their sum
// against no-socket, times a million, is the cost per million rejected packets. The sender is
// a separate process because a sender in the watcher's own process pays Go scheduler costs
// (idle threads wait in epoll while the Run goroutine is parked there) that a router's other
// processes do not.
func BenchmarkFilterReject(b *testing.B) {
	for _, mode := range []string{"no-socket", "ret0-filter", "watcher"} {
		b.Run(mode, func(b *testing.B) {
			sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			sink.SetReadBuffer(4096) // fills at once: later datagrams are dropped at the socket
			switch mode {
			case "ret0-filter":
				f, err := openSocket([]insn{ret(0)})
				if err != nil {
					b.Skip(err)
				}
				defer f.Close()
			case "watcher":
				open(b, []netip.AddrPort{upA, upB, upL}, 2*time.Second, time.Now)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestFloodHelper$")
			cmd.Env = append(os.Environ(), "PASSIVE_FLOOD="+sink.LocalAddr().String()+","+strconv.Itoa(b.N))
			b.ResetTimer()
			start := cpu()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			self := cpu() - start
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			sender := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			b.ReportMetric(float64(sender.Nanoseconds())/float64(b.N), "sender-ns/op")
			b.ReportMetric(float64(self.Nanoseconds())/float64(b.N), "watcher-ns/op")
		})
	}
}

func TestDropsCounted(t *testing.T) {
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	up := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	prog, _ := filter([]netip.AddrPort{up})
	f, err := openSocket(prog)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, _ := f.SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 0) })
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(up))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := make([]byte, dnsHeaderLen+8) // a DNS query header (QR clear) and a little more
	for range 500 {                   // never read: the minimal buffer overflows at once
		c.Write(q)
	}
	var n uint32
	rc.Control(func(fd uintptr) { n = drops(int(fd)) })
	if n == 0 || n > 1000 {
		t.Errorf("drops = %d after 500 queries (1000 packets) into a minimal buffer", n)
	}
	rc.Control(func(fd uintptr) { n = drops(int(fd)) })
	if n != 0 {
		t.Errorf("drops = %d on the second read, want 0 (reading resets)", n)
	}
}
