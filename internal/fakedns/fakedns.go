// Package fakedns is a controllable upstream DNS server on a loopback address, for tests and
// the failover lab. It answers over UDP and TCP on the same port, and its behaviour (answer,
// drop, lose a share of packets, SERVFAIL, REFUSED, add latency) can be changed at any moment
// from any goroutine. It counts what it receives and answers, per query name too, so a caller
// that sends unique names can tell which upstream each one reached.
//
// It is built on github.com/miekg/dns and is never linked into the router binary.
package fakedns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ErrNotLoopback is returned by Start for an address outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("fakedns: address is not loopback")

// ErrListen is returned by Start when the UDP or TCP socket cannot be opened.
var ErrListen = errors.New("fakedns: cannot listen")

// Behaviour is what the server does with a query it receives.
type Behaviour int

const (
	// Answer replies NOERROR: an A record with the server's address for A queries, no
	// records (NODATA) for any other type.
	Answer Behaviour = iota
	// Drop receives the query and never replies (a blackhole).
	Drop
	// ServFail replies with rcode SERVFAIL.
	ServFail
	// Refused replies with rcode REFUSED.
	Refused
)

// String names the behaviour as the lab prints it.
func (b Behaviour) String() string {
	switch b {
	case Answer:
		return "answer"
	case Drop:
		return "drop"
	case ServFail:
		return "servfail"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("behaviour(%d)", int(b))
}

// answerTTL is the TTL of the A records the server gives. Short, so that a test with
// dnsmasq's cache on still sees repeated names reach an upstream soon.
const answerTTL = 5

// NameStats is what the server saw of one query name (lower case, fully qualified).
type NameStats struct {
	Received int       // queries received for this name (resends included)
	Answered int       // replies sent (any rcode), after any delay
	First    time.Time // when the first query for it arrived
	Last     time.Time // when the latest query for it arrived
	// Times are the arrivals of every query for it, in order (resends included), for the
	// names KeepTimes accepts: the lab tells when probes came, not only how many.
	Times []time.Time
}

// Counts is a snapshot of the server's counters.
type Counts struct {
	Received int                  // all queries received
	Answered int                  // all replies sent
	Dropped  int                  // queries received and deliberately not answered
	Names    map[string]NameStats // per query name
}

// Server is one fake upstream. The zero value is not usable: call Start.
type Server struct {
	udp, tcp *dns.Server
	addr     netip.AddrPort
	closing  chan struct{}
	closeMu  sync.Once

	mu        sync.Mutex
	behaviour Behaviour
	dropShare float64
	timed     func(name string) bool // names whose arrival times are kept (NameStats.Times)
	delay     time.Duration
	answer    netip.Addr
	rng       *rand.Rand
	counts    Counts
	pending   sync.WaitGroup
}

// Start listens on addr (host:port on a loopback address; port 0 picks a free port, the
// same for UDP and TCP) and serves until Close. The server starts in the Answer behaviour
// with the address 192.0.2.1 (a documentation range: data only, never contacted).
func Start(addr string) (*Server, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("fakedns: address %q: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("%w: %s", ErrNotLoopback, addr)
	}
	pc, ln, err := listenPair(ap)
	if err != nil {
		return nil, err
	}
	s := &Server{
		addr:    pc.LocalAddr().(*net.UDPAddr).AddrPort(),
		closing: make(chan struct{}),
		answer:  netip.MustParseAddr("192.0.2.1"),
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		counts:  Counts{Names: map[string]NameStats{}},
	}
	s.addr = netip.AddrPortFrom(s.addr.Addr().Unmap(), s.addr.Port())
	h := dns.HandlerFunc(s.serve)
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(udpUp) }}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(tcpUp) }}
	errc := make(chan error, 2)
	go func() { errc <- s.udp.ActivateAndServe() }()
	go func() { errc <- s.tcp.ActivateAndServe() }()
	for _, up := range []chan struct{}{udpUp, tcpUp} {
		select {
		case <-up:
		case err := <-errc:
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("%w: %s: %v", ErrListen, addr, err)
		}
	}
	return s, nil
}

// listenPair opens a UDP socket and a TCP listener on the same port. With port 0 it lets the
// kernel choose the UDP port and retries a few times if TCP has that port taken.
func listenPair(ap netip.AddrPort) (net.PacketConn, net.Listener, error) {
	// attempts bounds the retries when the kernel's UDP port is taken for TCP: a clash is
	// rare, so a handful is plenty.
	const attempts = 8
	var lastErr error
	for range attempts {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: udp %s: %v", ErrListen, ap, err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), uint16(port))))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if ap.Port() != 0 {
			break
		}
	}
	return nil, nil, fmt.Errorf("%w: tcp %s: %v", ErrListen, ap, lastErr)
}

// Addr is the address the server listens on (UDP and TCP).
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Upstream is the address in dnsmasq's notation: "127.0.0.2#5353".
func (s *Server) Upstream() string {
	return fmt.Sprintf("%s#%d", s.addr.Addr(), s.addr.Port())
}

// Answer makes the server answer every query again, with no packet loss. Any Delay stays.
func (s *Server) Answer() { s.set(Answer, 0) }

// Drop makes the server a blackhole: it receives queries and never replies.
func (s *Server) Drop() { s.set(Drop, 0) }

// DropShare makes the server answer, but silently lose a random share p (0..1) of the
// queries it receives.
func (s *Server) DropShare(p float64) { s.set(Answer, min(max(p, 0), 1)) }

// ServFail makes the server reply SERVFAIL to every query.
func (s *Server) ServFail() { s.set(ServFail, 0) }

// Refused makes the server reply REFUSED to every query.
func (s *Server) Refused() { s.set(Refused, 0) }

// Delay adds d of latency before every reply (0 removes it). Delayed replies do not hold up
// other queries. It applies in every behaviour that replies, until changed.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = max(d, 0)
}

// KeepTimes keeps the arrival time of every query for the names f accepts (NameStats.Times),
// e.g. the probes and not the clients' queries; nil (the default) keeps none, so that a long
// run's memory stays flat.
func (s *Server) KeepTimes(f func(name string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timed = f
}

// SetAnswerAddr sets the IPv4 address the server puts in its A records. Give each server of
// a world its own (documentation ranges such as 192.0.2.x) to see who answered a client.
func (s *Server) SetAnswerAddr(a netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = a
}

// AnswerAddr is the IPv4 address the server puts in its A records.
func (s *Server) AnswerAddr() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answer
}

// Behaviour reports the current behaviour and packet-loss share.
func (s *Server) Behaviour() (Behaviour, float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behaviour, s.dropShare
}

func (s *Server) set(b Behaviour, share float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behaviour, s.dropShare = b, share
}

// Snapshot copies the counters.
func (s *Server) Snapshot() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	c.Names = make(map[string]NameStats, len(s.counts.Names))
	for k, v := range s.counts.Names {
		v.Times = slices.Clone(v.Times)
		c.Names[k] = v
	}
	return c
}

// Reset sets every counter to zero and forgets every name, returning what it had.
func (s *Server) Reset() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	s.counts = Counts{Names: map[string]NameStats{}}
	return c
}

// Name returns the counters of one name (case-insensitive; the final dot is optional).
func (s *Server) Name(name string) NameStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.Names[canonical(name)]
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// Close stops the server; replies still being delayed are abandoned.
func (s *Server) Close() error {
	var err error
	s.closeMu.Do(func() {
		close(s.closing)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
		s.pending.Wait()
	})
	return err
}

// serve runs in its own goroutine per UDP packet (miekg/dns does that), so a delay here
// does not block other queries.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.pending.Add(1)
	defer s.pending.Done()
	now := time.Now()
	name := ""
	if len(req.Question) > 0 {
		name = canonical(req.Question[0].Name)
	}

	s.mu.Lock()
	s.counts.Received++
	ns := s.counts.Names[name]
	ns.Received++
	if ns.First.IsZero() {
		ns.First = now
	}
	ns.Last = now
	if s.timed != nil && s.timed(name) {
		ns.Times = append(ns.Times, now)
	}
	s.counts.Names[name] = ns
	b, delay, answer := s.behaviour, s.delay, s.answer
	drop := b == Drop || (s.dropShare > 0 && s.rng.Float64() < s.dropShare)
	if drop {
		s.counts.Dropped++
	}
	s.mu.Unlock()
	if drop {
		return
	}

	resp := new(dns.Msg)
	switch b {
	case ServFail:
		resp.SetRcode(req, dns.RcodeServerFailure)
	case Refused:
		resp.SetRcode(req, dns.RcodeRefused)
	default:
		resp.SetReply(req)
		resp.RecursionAvailable = true
		if len(req.Question) > 0 && req.Question[0].Qtype == dns.TypeA && answer.Is4() {
			resp.Answer = append(resp.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: answerTTL},
				A:   answer.AsSlice(),
			})
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return
		}
	}
	// count before writing, so a client that has its reply never sees it uncounted
	s.countAnswer(name, 1)
	if err := w.WriteMsg(resp); err != nil {
		s.countAnswer(name, -1)
	}
}

// countAnswer adds n to the replies sent, in all and for name.
func (s *Server) countAnswer(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.Answered += n
	ns := s.counts.Names[name]
	ns.Answered += n
	s.counts.Names[name] = ns
}
