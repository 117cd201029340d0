package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	// probeName is what every test asks.
	probeName = "probe-test.dns.nextdns.io"

	// answered bounds probes that the fake answers: loopback replies in well under a
	// millisecond, so this is never reached unless the probe is broken, and it is long enough
	// never to flake on a loaded CI machine.
	answered = 5 * time.Second

	// unanswered bounds probes expected to end without an answer; it is what such a test
	// costs, so it is short. Three sends go out at 0, 100 and 200 ms.
	unanswered = 300 * time.Millisecond
)

// prober returns a Prober asking probeName with the given timeout and the default attempts.
func prober(timeout time.Duration) *Prober {
	return &Prober{Name: probeName, Timeout: timeout}
}

func TestProbeRcodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rcode   int
		wantUp  bool
		wantErr error
		wantMsg string
	}{
		{"NOERROR is up", dns.RcodeSuccess, true, nil, ""},
		{"NXDOMAIN is up: the resolver works", dns.RcodeNameError, true, nil, ""},
		{"SERVFAIL is down", dns.RcodeServerFailure, false, ErrRcode, "SERVFAIL"},
		{"REFUSED is down", dns.RcodeRefused, false, ErrRcode, "REFUSED"},
		{"FORMERR is down", dns.RcodeFormatError, false, ErrRcode, "FORMERR"},
		{"NOTIMP is down", dns.RcodeNotImplemented, false, ErrRcode, "NOTIMP"},
		{"an unnamed rcode is down and keeps its number", 15, false, ErrRcode, "RCODE15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server := startFake(t, answer(tc.rcode), nil)
			res := prober(answered).Probe(context.Background(), server)
			if res.Up != tc.wantUp || !errIs(res.Err, tc.wantErr) {
				t.Fatalf("Probe = up %v, err %v; want up %v, err wrapping %v", res.Up, res.Err, tc.wantUp, tc.wantErr)
			}
			if want := dns.RcodeToString[tc.rcode]; tc.rcode < 15 && res.Rcode != want {
				t.Errorf("Rcode = %q, want %q", res.Rcode, want)
			}
			if tc.wantMsg != "" && res.Err.Error() != tc.wantMsg {
				t.Errorf("error = %q, want %q", res.Err, tc.wantMsg)
			}
			if res.RTT <= 0 || res.RTT >= answered {
				t.Errorf("RTT = %v, want the time to the reply", res.RTT)
			}
			if res.Server != server || res.TCP || res.Offline {
				t.Errorf("Result = %+v, want Server %v and no TCP/Offline", res, server)
			}
		})
	}
}

// hostile builds the datagrams a fake sends back for query q (raw: the query as received).
type hostile func(q *dns.Msg, raw []byte) [][]byte

// then sends the datagrams of a, then those of b.
func then(a, b hostile) hostile {
	return func(q *dns.Msg, raw []byte) [][]byte {
		return append(a(q, raw), b(q, raw)...)
	}
}

// edited is one reply to q with rcode NOERROR after the edits.
func edited(edits ...func(*dns.Msg)) hostile {
	return func(q *dns.Msg, _ []byte) [][]byte {
		return [][]byte{reply(q, dns.RcodeSuccess, edits...)}
	}
}

// bytesOf sends fixed bytes.
func bytesOf(b []byte) hostile {
	return func(*dns.Msg, []byte) [][]byte { return [][]byte{b} }
}

func TestProbeHostileReplies(t *testing.T) {
	t.Parallel()
	good := edited()
	wrongID := edited(func(m *dns.Msg) { m.Id++ })
	garbage := bytesOf([]byte("\x13\x37 this is not a DNS message at all, it only looks long enough"))
	// Many A records make a well-formed reply far above the 4096-byte read buffer.
	oversized := edited(func(m *dns.Msg) {
		for i := range 400 {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(192, 0, 2, byte(i)),
			})
		}
	})
	// A valid reply padded past the buffer: what the kernel hands over (the first 4097 bytes)
	// parses fine, trailing bytes being ignored, so only its size gives it away.
	padded := func(q *dns.Msg, _ []byte) [][]byte {
		b := reply(q, dns.RcodeSuccess)
		return [][]byte{append(b, make([]byte, 5000-len(b))...)}
	}
	cutShort := func(q *dns.Msg, _ []byte) [][]byte {
		b := reply(q, dns.RcodeSuccess)
		return [][]byte{b[:len(b)-3]} // the A record's data is cut, the TC bit is not set
	}
	tests := []struct {
		name    string
		send    hostile
		timeout time.Duration
		wantUp  bool
		wantErr []error // all must be wrapped
		wantMsg string  // substring of the error
	}{
		{"a matching reply", good, answered, true, nil, ""},
		{"name echoed in other case (0x20) matches", edited(func(m *dns.Msg) {
			m.Question[0].Name = strings.ToUpper(m.Question[0].Name)
		}), answered, true, nil, ""},
		{"wrong ID only", wrongID, unanswered, false, []error{ErrMismatch}, "1 mismatched reply, no answer in 300ms (3 sends)"},
		{"wrong name only", edited(func(m *dns.Msg) { m.Question[0].Name = "probe-test.dns.nextdns.iq." }),
			unanswered, false, []error{ErrMismatch}, "1 mismatched reply"},
		{"wrong type only", edited(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA; m.Answer = nil }),
			unanswered, false, []error{ErrMismatch}, "1 mismatched reply"},
		{"wrong class only", edited(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
			unanswered, false, []error{ErrMismatch}, "1 mismatched reply"},
		{"no question echoed", edited(func(m *dns.Msg) { m.Question = nil; m.Answer = nil }),
			unanswered, false, []error{ErrMismatch}, "1 mismatched reply"},
		{"two questions", edited(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }),
			unanswered, false, []error{ErrMismatch}, "1 mismatched reply"},
		{"the query reflected back (no QR bit)", func(_ *dns.Msg, raw []byte) [][]byte {
			return [][]byte{raw}
		}, unanswered, false, []error{ErrMismatch}, "1 mismatched reply"},
		{"another opcode", edited(func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }),
			unanswered, false, []error{ErrMismatch}, "1 mismatched reply"},
		{"garbage only", garbage, unanswered, false, []error{ErrMalformed}, "1 malformed reply, no answer"},
		{"a lone byte", bytesOf([]byte{0}), unanswered, false, []error{ErrMalformed}, "1 malformed reply"},
		{"an empty datagram", bytesOf([]byte{}), unanswered, false, []error{ErrMalformed}, "1 malformed reply"},
		{"oversized datagram", oversized, unanswered, false, []error{ErrMalformed}, "1 malformed reply"},
		{"oversized datagram that starts with a valid reply", padded, unanswered, false, []error{ErrMalformed}, "1 malformed reply"},
		{"reply cut short without TC", cutShort, unanswered, false, []error{ErrMalformed}, "1 malformed reply"},
		{"garbage and wrong IDs", then(garbage, then(wrongID, wrongID)), unanswered, false,
			[]error{ErrMalformed, ErrMismatch}, "1 malformed and 2 mismatched replies, no answer"},
		{"garbage, wrong ID, oversized, then the real reply", then(garbage, then(wrongID, then(oversized, good))),
			answered, true, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var once sync.Once
			server := startFake(t, func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, raw []byte) {
				once.Do(func() { // to the first send only: resends are not answered
					for _, b := range tc.send(q, raw) {
						pc.WriteToUDPAddrPort(b, from)
					}
				})
			}, nil)
			res := prober(tc.timeout).Probe(context.Background(), server)
			if res.Up != tc.wantUp {
				t.Fatalf("Probe = up %v (err %v), want up %v", res.Up, res.Err, tc.wantUp)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(res.Err, want) {
					t.Errorf("err = %v, want it to wrap %v", res.Err, want)
				}
			}
			if tc.wantUp {
				if res.Err != nil || res.Rcode != "NOERROR" {
					t.Errorf("Result = %+v, want NOERROR and no error", res)
				}
				return
			}
			if errors.Is(res.Err, ErrTimeout) {
				t.Errorf("err = %v: a bare timeout hides the replies that were seen", res.Err)
			}
			if !strings.Contains(res.Err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", res.Err, tc.wantMsg)
			}
			if res.Rcode != "" || res.RTT != 0 {
				t.Errorf("Result = %+v, want no Rcode and no RTT without a matching reply", res)
			}
		})
	}
}

// TestProbeReplyFromElsewhere: a reply that matches in every field but comes from another port
// or another address than the one asked is never seen (the connected socket filters it).
func TestProbeReplyFromElsewhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		from func(server netip.AddrPort) netip.AddrPort // where the spoofer sends from
	}{
		{"another port, same address", func(netip.AddrPort) netip.AddrPort {
			return netip.MustParseAddrPort("127.0.0.1:0")
		}},
		{"same port, another address", func(server netip.AddrPort) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), server.Port())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var spoofer atomic.Pointer[net.UDPConn]
			var sent atomic.Int32
			server := startFake(t, func(_ *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
				if _, err := spoofer.Load().WriteToUDPAddrPort(reply(q, dns.RcodeSuccess), from); err == nil {
					sent.Add(1)
				}
			}, nil)
			other, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(tc.from(server)))
			if err != nil {
				t.Skipf("cannot bind the spoofer: %v", err)
			}
			t.Cleanup(func() { other.Close() })
			spoofer.Store(other)
			res := prober(unanswered).Probe(context.Background(), server)
			for limit := time.Now().Add(answered); sent.Load() == 0 && time.Now().Before(limit); {
				time.Sleep(time.Millisecond)
			}
			if sent.Load() == 0 {
				t.Fatal("the spoofer sent nothing: the test proves nothing")
			}
			if res.Up || !errors.Is(res.Err, ErrTimeout) {
				t.Fatalf("Probe = up %v, err %v; want a timeout: replies from elsewhere must not count", res.Up, res.Err)
			}
		})
	}
}

// TestProbeLateReply: a reply that comes after the probe gave up does not count, neither for
// that probe nor for the next one.
func TestProbeLateReply(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	lateSent := make(chan error, 1)
	var first atomic.Bool
	first.Store(true)
	server := startFake(t, func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
		if !first.Swap(false) {
			pc.WriteToUDPAddrPort(reply(q, dns.RcodeServerFailure), from)
			return
		}
		b := reply(q, dns.RcodeSuccess)
		go func() {
			<-release // held until the first probe has returned
			_, err := pc.WriteToUDPAddrPort(b, from)
			lateSent <- err
		}()
	}, nil)
	p := &Prober{Name: probeName, Timeout: unanswered, Attempts: 1}
	res := p.Probe(context.Background(), server)
	if res.Up || !errors.Is(res.Err, ErrTimeout) {
		t.Fatalf("first probe = up %v, err %v; want a timeout", res.Up, res.Err)
	}
	if res.Err.Error() != "timeout after 300ms (1 send)" {
		t.Errorf("error = %q, want %q", res.Err, "timeout after 300ms (1 send)")
	}
	close(release)
	if err := <-lateSent; err != nil {
		t.Fatalf("the late reply was not sent (%v): the test proves nothing", err)
	}
	// The next probe gets its own (SERVFAIL) reply, never the first one's late NOERROR.
	res = prober(answered).Probe(context.Background(), server)
	if res.Up || res.Rcode != "SERVFAIL" {
		t.Fatalf("second probe = up %v, rcode %q, err %v; want its own SERVFAIL", res.Up, res.Rcode, res.Err)
	}
}

// TestProbeResends: a probe sends the same query (same ID, same source port) Attempts times,
// and an answer to a later send counts; RTT runs from the first send.
func TestProbeResends(t *testing.T) {
	t.Parallel()
	const timeout = 600 * time.Millisecond // sends at 0, 200 and 400 ms
	tests := []struct {
		name      string
		answerNth int // answer the nth query received (1-based); 0 = never
		wantUp    bool
		wantMsg   string
		minRTT    time.Duration
	}{
		{"first packet lost, second answered", 2, true, "", timeout / 3},
		{"two lost, third answered", 3, true, "", 2 * timeout / 3},
		{"all lost", 0, false, "timeout after 600ms (3 sends)", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var seen []netip.AddrPort
			var ids []uint16
			server := startFake(t, func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
				mu.Lock()
				seen = append(seen, from)
				ids = append(ids, q.Id)
				n := len(seen)
				mu.Unlock()
				if n == tc.answerNth {
					pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess), from)
				}
			}, nil)
			res := prober(timeout).Probe(context.Background(), server)
			if res.Up != tc.wantUp {
				t.Fatalf("Probe = up %v, err %v; want up %v", res.Up, res.Err, tc.wantUp)
			}
			if tc.wantUp && res.RTT < tc.minRTT {
				t.Errorf("RTT = %v, want at least %v: it is measured from the first send", res.RTT, tc.minRTT)
			}
			if !tc.wantUp && (!errors.Is(res.Err, ErrTimeout) || res.Err.Error() != tc.wantMsg) {
				t.Errorf("err = %v, want %q wrapping ErrTimeout", res.Err, tc.wantMsg)
			}
			// The last send may still be on its way to the fake when Probe returns: poll.
			want := max(tc.answerNth, 3*btoi(!tc.wantUp))
			received := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
			for limit := time.Now().Add(answered); received() < want && time.Now().Before(limit); {
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != want {
				t.Fatalf("server got %d queries, want %d", len(seen), want)
			}
			for i := range seen {
				if seen[i] != seen[0] || ids[i] != ids[0] {
					t.Errorf("query %d from %v ID %d, want the first one's %v ID %d", i, seen[i], ids[i], seen[0], ids[0])
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestProbeFreshSocketAndID: every probe uses its own source port and a new ID.
func TestProbeFreshSocketAndID(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	ports := map[uint16]bool{}
	ids := map[uint16]bool{}
	server := startFake(t, func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
		mu.Lock()
		ports[from.Port()] = true
		ids[q.Id] = true
		mu.Unlock()
		pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess), from)
	}, nil)
	const probes = 20
	p := prober(answered)
	for range probes {
		if res := p.Probe(context.Background(), server); !res.Up {
			t.Fatalf("Probe: %v", res.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// 20 IDs drawn from 65536: a repeat has odds of about 0.3%; two repeats would be a defect.
	// The kernel draws ephemeral ports at random from about 28,000: a repeat there has odds
	// of about 0.7% (seen once in CI-like runs); a socket reused on purpose would repeat all.
	if len(ports) < probes-1 || len(ids) < probes-1 {
		t.Errorf("%d probes used %d source ports and %d IDs, want fresh ones each time", probes, len(ports), len(ids))
	}
}

func TestProbeQueryShape(t *testing.T) {
	t.Parallel()
	got := make(chan *dns.Msg, 1)
	server := startFake(t, func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
		select {
		case got <- q:
		default:
		}
		pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess), from)
	}, nil)
	if res := prober(answered).Probe(context.Background(), server); !res.Up {
		t.Fatalf("Probe: %v", res.Err)
	}
	q := <-got
	if q.Response || q.Opcode != dns.OpcodeQuery || !q.RecursionDesired || len(q.Question) != 1 ||
		q.Question[0] != (dns.Question{Name: probeName + ".", Qtype: dns.TypeA, Qclass: dns.ClassINET}) ||
		len(q.Answer)+len(q.Ns)+len(q.Extra) != 0 {
		t.Errorf("query = %v, want one A/IN question for %s., RD set, nothing else", q, probeName)
	}
}

func TestProbeUnreachablePort(t *testing.T) {
	t.Parallel()
	// The timeout is long: getting ErrUnreachable rather than ErrTimeout shows that the ICMP
	// port unreachable ended the probe at once.
	res := prober(answered).Probe(context.Background(), unboundPort(t))
	if res.Up || res.Offline || !errors.Is(res.Err, ErrUnreachable) || !errors.Is(res.Err, syscall.ECONNREFUSED) {
		t.Fatalf("Probe = up %v, offline %v, err %v; want ErrUnreachable, not offline", res.Up, res.Offline, res.Err)
	}
	if want := "connection refused (ICMP port unreachable)"; res.Err.Error() != want {
		t.Errorf("error = %q, want %q", res.Err, want)
	}
}

// TestProbeTCPFallback: a truncated UDP reply is asked again over TCP, whose answer decides.
func TestProbeTCPFallback(t *testing.T) {
	t.Parallel()
	truncated := func() udpHandler {
		return func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
			pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess, func(m *dns.Msg) {
				m.Truncated = true
				m.Answer = nil
			}), from)
		}
	}
	tests := []struct {
		name    string
		tcp     func() tcpHandler // nil: nothing listens on TCP
		timeout time.Duration
		wantUp  bool
		wantTCP bool
		wantErr error
		wantMsg string
	}{
		{"answered over TCP", func() tcpHandler {
			return func(c net.Conn, q *dns.Msg) { writeTCP(c, reply(q, dns.RcodeSuccess)) }
		}, answered, true, true, nil, ""},
		{"a large answer over TCP", func() tcpHandler {
			return func(c net.Conn, q *dns.Msg) {
				writeTCP(c, reply(q, dns.RcodeSuccess, func(m *dns.Msg) {
					for i := range 1000 { // about 41 KB, far above the UDP buffer
						m.Answer = append(m.Answer, &dns.A{
							Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
							A:   net.IPv4(192, 0, byte(i>>8), byte(i)),
						})
					}
				}))
			}
		}, answered, true, true, nil, ""},
		{"SERVFAIL over TCP", func() tcpHandler {
			return func(c net.Conn, q *dns.Msg) { writeTCP(c, reply(q, dns.RcodeServerFailure)) }
		}, answered, false, true, ErrRcode, "SERVFAIL"},
		{"nothing listens on TCP", nil, answered, false, false, ErrUnreachable, "tcp connect: connection refused"},
		{"TCP closed without a reply", func() tcpHandler {
			return func(net.Conn, *dns.Msg) {}
		}, answered, false, false, ErrMalformed, "tcp: connection closed before a full reply"},
		{"TCP reply with a wrong ID", func() tcpHandler {
			return func(c net.Conn, q *dns.Msg) {
				writeTCP(c, reply(q, dns.RcodeSuccess, func(m *dns.Msg) { m.Id++ }))
			}
		}, answered, false, false, ErrMismatch, "tcp: mismatched reply"},
		{"TCP garbage", func() tcpHandler {
			return func(c net.Conn, _ *dns.Msg) { writeTCP(c, []byte("garbage!")) }
		}, answered, false, false, ErrMalformed, "tcp: malformed reply"},
		{"TCP silent until the deadline", func() tcpHandler {
			return func(c net.Conn, _ *dns.Msg) { c.Read(make([]byte, 1)) } // until the client hangs up
		}, unanswered, false, false, ErrTimeout, "tcp: timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var tcp tcpHandler
			if tc.tcp != nil {
				tcp = tc.tcp()
			}
			server := startFake(t, truncated(), tcp)
			if tcp == nil {
				server = tcpClosed(t, server)
			}
			res := prober(tc.timeout).Probe(context.Background(), server)
			if res.Up != tc.wantUp || res.TCP != tc.wantTCP || !errIs(res.Err, tc.wantErr) {
				t.Fatalf("Probe = up %v, tcp %v, err %v; want up %v, tcp %v, err wrapping %v",
					res.Up, res.TCP, res.Err, tc.wantUp, tc.wantTCP, tc.wantErr)
			}
			if tc.wantMsg != "" && !strings.HasPrefix(res.Err.Error(), tc.wantMsg) {
				t.Errorf("error = %q, want it to start with %q", res.Err, tc.wantMsg)
			}
		})
	}
}

// TestProbeTCPCanceled: canceling the context during the TCP retry ends the probe at once as
// canceled, not as a timeout.
func TestProbeTCPCanceled(t *testing.T) {
	t.Parallel()
	asked := make(chan struct{}, 1)
	server := startFake(t, func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
		pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess, func(m *dns.Msg) { m.Truncated = true }), from)
	}, func(c net.Conn, _ *dns.Msg) {
		asked <- struct{}{}
		c.Read(make([]byte, 1)) // until the client hangs up
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() { done <- prober(time.Hour).Probe(ctx, server) }()
	select {
	case <-asked:
	case res := <-done:
		t.Fatalf("Probe returned before asking over TCP: %+v", res)
	case <-time.After(answered):
		t.Fatal("no TCP query arrived")
	}
	cancel()
	select {
	case res := <-done:
		if res.Up || !errors.Is(res.Err, context.Canceled) || !errors.Is(res.Err, ErrTimeout) {
			t.Fatalf("Probe = up %v, err %v; want canceled", res.Up, res.Err)
		}
		if res.Err.Error() != "tcp: canceled" {
			t.Errorf("error = %q, want %q", res.Err, "tcp: canceled")
		}
	case <-time.After(answered):
		t.Fatal("Probe did not return after its context was canceled")
	}
}

// tcpClosed skips the test when something happens to listen on server's TCP port (startFake
// without a TCP handler leaves it to whoever takes it). Connecting to loopback sends nothing out.
func tcpClosed(t testing.TB, server netip.AddrPort) netip.AddrPort {
	t.Helper()
	if c, err := net.Dial("tcp", server.String()); err == nil {
		c.Close()
		t.Skipf("something else listens on tcp %v", server)
	}
	return server
}

// TestProbeOffline: a socket error from the router's own network marks the result offline.
// Binding to an address this host does not have fails locally (EADDRNOTAVAIL, "no source
// address") before any packet is sent.
func TestProbeOffline(t *testing.T) {
	t.Parallel()
	d := dialer{local: netip.MustParseAddr("192.0.2.1")} // TEST-NET-1, not ours
	res := prober(answered).probe(context.Background(), unboundPort(t), d)
	if res.Up || !res.Offline || !errors.Is(res.Err, ErrOffline) || !errors.Is(res.Err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("probe = up %v, offline %v, err %v; want offline wrapping EADDRNOTAVAIL", res.Up, res.Offline, res.Err)
	}
	if !strings.HasPrefix(res.Err.Error(), "offline: ") {
		t.Errorf("error = %q, want it to start with \"offline: \"", res.Err)
	}
}

func TestProbeCanceled(t *testing.T) {
	t.Parallel()
	received := make(chan struct{}, 3)
	server := startFake(t, func(*net.UDPConn, netip.AddrPort, *dns.Msg, []byte) { received <- struct{}{} }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- prober(time.Hour).Probe(ctx, server) }()
	<-received
	cancel()
	select {
	case res := <-done:
		if res.Up || !errors.Is(res.Err, context.Canceled) || !errors.Is(res.Err, ErrTimeout) {
			t.Fatalf("Probe = up %v, err %v; want canceled", res.Up, res.Err)
		}
	case <-time.After(answered):
		t.Fatal("Probe did not return after its context was canceled")
	}

	res := prober(answered).Probe(ctx, server) // already canceled: nothing is sent
	if res.Up || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("Probe with a canceled context = up %v, err %v; want canceled", res.Up, res.Err)
	}
}

func TestProbeContextDeadlineShortensTimeout(t *testing.T) {
	t.Parallel()
	server := startFake(t, func(*net.UDPConn, netip.AddrPort, *dns.Msg, []byte) {}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), unanswered)
	defer cancel()
	res := prober(time.Hour).Probe(ctx, server)
	if res.Up || !errors.Is(res.Err, ErrTimeout) {
		t.Fatalf("Probe = up %v, err %v; want a timeout at the context's deadline", res.Up, res.Err)
	}
}

func TestProbeBadInput(t *testing.T) {
	t.Parallel()
	server := startFake(t, func(*net.UDPConn, netip.AddrPort, *dns.Msg, []byte) {
		t.Error("a query was sent for bad input")
	}, nil)
	tests := []struct {
		name    string
		probe   string
		server  netip.AddrPort
		wantErr error
	}{
		{"empty name", "", server, ErrName},
		{"root", ".", server, ErrName},
		{"empty label", "probe..nextdns.io", server, ErrName},
		{"label over 63 bytes", strings.Repeat("a", 64) + ".io", server, ErrName},
		{"name over 255 bytes", strings.Repeat("abcdefgh.", 30) + "io", server, ErrName},
		{"zero address", probeName, netip.AddrPort{}, ErrUnreachable},
		{"port 0", probeName, netip.AddrPortFrom(server.Addr(), 0), ErrUnreachable},
		{"unspecified IPv4", probeName, netip.AddrPortFrom(netip.IPv4Unspecified(), server.Port()), ErrUnreachable},
		{"unspecified IPv6", probeName, netip.AddrPortFrom(netip.IPv6Unspecified(), server.Port()), ErrUnreachable},
		// Interface-local scope: even a regression could not send this off the host.
		{"multicast", probeName, netip.MustParseAddrPort("[ff01::1]:53"), ErrUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := (&Prober{Name: tc.probe, Timeout: answered}).Probe(context.Background(), tc.server)
			if res.Up || !errors.Is(res.Err, tc.wantErr) || res.Offline {
				t.Fatalf("Probe = up %v, offline %v, err %v; want err wrapping %v", res.Up, res.Offline, res.Err, tc.wantErr)
			}
		})
	}
}

func TestProbeAddressForms(t *testing.T) {
	t.Parallel()
	v4 := startFake(t, answer(dns.RcodeSuccess), nil)
	tests := []struct {
		name   string
		probe  string
		server netip.AddrPort
	}{
		{"IPv4", probeName, v4},
		{"IPv4-mapped IPv6", probeName, netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), v4.Port())},
		{"fully qualified name", probeName + ".", v4},
		{"name in upper case", strings.ToUpper(probeName), v4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := (&Prober{Name: tc.probe, Timeout: answered}).Probe(context.Background(), tc.server)
			if !res.Up || res.Server != tc.server {
				t.Fatalf("Probe(%v) = up %v, server %v, err %v; want up", tc.server, res.Up, res.Server, res.Err)
			}
		})
	}
	t.Run("IPv6 loopback", func(t *testing.T) {
		pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		server := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		go func() {
			buf := make([]byte, 512)
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) == nil {
				pc.WriteToUDPAddrPort(reply(q, dns.RcodeNameError), from)
			}
		}()
		t.Cleanup(func() { pc.Close() })
		p := &Prober{Name: probeName + ".", Timeout: answered}
		if res := p.Probe(context.Background(), server); !res.Up || res.Rcode != "NXDOMAIN" {
			t.Fatalf("Probe(%v) = up %v, rcode %q, err %v; want up with NXDOMAIN", server, res.Up, res.Rcode, res.Err)
		}
	})
}

// TestRound: all servers are probed at once and results keep the order of the servers.
func TestRound(t *testing.T) {
	t.Parallel()
	// Each fake holds its reply until every fake has received its query: a Round that probed
	// one server after another would time out on the first.
	var all sync.WaitGroup
	all.Add(3)
	waiting := func(rcode int) udpHandler {
		return func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
			all.Done()
			b := reply(q, rcode)
			go func() {
				all.Wait()
				pc.WriteToUDPAddrPort(b, from)
			}()
		}
	}
	servers := []netip.AddrPort{
		startFake(t, waiting(dns.RcodeServerFailure), nil),
		startFake(t, waiting(dns.RcodeSuccess), nil),
		startFake(t, waiting(dns.RcodeNameError), nil),
		unboundPort(t),
	}
	p := &Prober{Name: probeName, Timeout: answered, Attempts: 1}
	results := p.Round(context.Background(), servers)
	if len(results) != len(servers) {
		t.Fatalf("Round returned %d results for %d servers", len(results), len(servers))
	}
	want := []struct {
		up    bool
		rcode string
		err   error
	}{{false, "SERVFAIL", ErrRcode}, {true, "NOERROR", nil}, {true, "NXDOMAIN", nil}, {false, "", ErrUnreachable}}
	for i, r := range results {
		if r.Server != servers[i] || r.Up != want[i].up || r.Rcode != want[i].rcode || !errIs(r.Err, want[i].err) {
			t.Errorf("result %d = %+v, want server %v up %v rcode %q err %v", i, r, servers[i], want[i].up, want[i].rcode, want[i].err)
		}
	}
	if got := p.Round(context.Background(), nil); len(got) != 0 {
		t.Errorf("Round(nil) = %v, want no results", got)
	}
}

// TestProbeLeavesNothingBehind: whatever the outcome, a probe closes its sockets and ends its
// goroutines, so a watchdog probing for months does not leak. Not parallel, so the counts are
// this test's alone.
func TestProbeLeavesNothingBehind(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("cannot count open files here: %v", err)
	}
	truncated := func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
		pc.WriteToUDPAddrPort(reply(q, dns.RcodeSuccess, func(m *dns.Msg) { m.Truncated = true }), from)
	}
	servers := []netip.AddrPort{
		startFake(t, answer(dns.RcodeSuccess), nil),
		startFake(t, answer(dns.RcodeServerFailure), nil),
		startFake(t, func(*net.UDPConn, netip.AddrPort, *dns.Msg, []byte) {}, nil), // silent
		startFake(t, truncated, func(c net.Conn, q *dns.Msg) { writeTCP(c, reply(q, dns.RcodeSuccess)) }),
		unboundPort(t),
	}
	fds := func() int {
		entries, _ := os.ReadDir("/proc/self/fd")
		return len(entries)
	}
	p := &Prober{Name: probeName, Timeout: 20 * time.Millisecond, Attempts: 2}
	p.Round(context.Background(), servers) // warm up anything the runtime keeps for good
	// No garbage collection meanwhile: finalizers would close a leaked socket and hide the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	baseFDs, baseGoroutines := fds(), runtime.NumGoroutine()
	const rounds = 25
	for range rounds {
		p.Round(context.Background(), servers)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Round(ctx, servers)

	// The fakes close their TCP side on their own goroutines: poll, with a generous bound.
	limit := time.Now().Add(answered)
	for fds() > baseFDs || runtime.NumGoroutine() > baseGoroutines {
		if time.Now().After(limit) {
			t.Fatalf("after %d rounds: %d open files (was %d), %d goroutines (was %d)",
				rounds, fds(), baseFDs, runtime.NumGoroutine(), baseGoroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
