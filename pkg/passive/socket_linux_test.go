package passive

import (
	"context"
	"errors"
	"net"
	"net/netip"
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

// echo is a minimal UDP DNS "upstream" for the benchmarks: it returns each datagram with the
// QR bit set. Far cheaper than fakedns, so the watcher's share of the CPU stands out.
func echo(b *testing.B) netip.AddrPort {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			buf[2] |= 0x80
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// BenchmarkSocketPath1000Queries sends 1,000 queries (one at a time, each awaiting its reply)
// to a loopback upstream per op, without and with a watcher, and reports the process's CPU
// time per op (cpu-ms/op): the difference is what watching 1,000 queries costs, kernel side
// (the filter, the copy to the packet socket, each packet twice on loopback) and Go side
// (read, parse, ledger).
func BenchmarkSocketPath1000Queries(b *testing.B) {
	for _, watch := range []bool{false, true} {
		name := "unwatched"
		if watch {
			name = "watched"
		}
		b.Run(name, func(b *testing.B) {
			up := echo(b)
			var w *Watcher
			if watch {
				w = open(b, []netip.AddrPort{up}, 2*time.Second, time.Now)
			}
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(up))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := new(dns.Msg)
			msg.SetQuestion("bench.example.", dns.TypeA)
			q, _ := msg.Pack()
			buf := make([]byte, 512)
			b.ResetTimer()
			start := cpu()
			for n := range b.N {
				for i := range 1000 {
					q[0], q[1] = byte(n), byte(i)
					c.Write(q)
					c.Read(buf)
				}
			}
			used := cpu() - start
			b.StopTimer()
			b.ReportMetric(float64(used.Microseconds())/1000/float64(b.N), "cpu-ms/op")
			if w != nil {
				time.Sleep(50 * time.Millisecond)
				if got := w.Take(time.Now())[0]; got.Answered < b.N*1000*9/10 {
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

// BenchmarkFilterReject sends one small UDP datagram per op on loopback to a port no upstream
// uses (a sink that never reads), without and with a watcher's packet socket attached, and
// reports the process's CPU per op (cpu-ns/op). On loopback the sender's system call also runs
// the receive side (softirq on return from the send), so the filter's two runs per packet
// (OUTGOING and HOST) are charged to this process. The difference times a million is the
// filter's cost per million rejected packets.
func BenchmarkFilterReject(b *testing.B) {
	for _, watch := range []bool{false, true} {
		name := "no-socket"
		if watch {
			name = "filter-attached"
		}
		b.Run(name, func(b *testing.B) {
			sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			sink.SetReadBuffer(4096) // fills at once: later datagrams are dropped at the socket
			if watch {
				open(b, []netip.AddrPort{upA, upB, upL}, 2*time.Second, time.Now)
			}
			c, err := net.DialUDP("udp4", nil, sink.LocalAddr().(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			payload := make([]byte, 32)
			b.ResetTimer()
			start := cpu()
			for range b.N {
				c.Write(payload)
			}
			used := cpu() - start
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}
