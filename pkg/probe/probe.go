// Package probe asks DNS upstreams one question and says whether they answered.
//
// A probe is one A query for a fixed name, sent over UDP from a fresh socket with a random ID to
// the upstream's exact address and port, resent a few times within its timeout, retried over TCP
// when the reply is truncated. Only a reply that matches the query (ID, QR bit, question, sender)
// counts; anything else is ignored and counted. Messages are built and parsed with
// golang.org/x/net/dns/dnsmessage only, and its sockets are made with syscall and os rather than
// net, to keep the router binary small.
package probe

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Tuning defaults.
const (
	// DefaultTimeout applies when Prober.Timeout is not positive. Two seconds is far above a
	// healthy RTT to an anycast resolver (tens of milliseconds) and leaves room for two resends,
	// while keeping a round short.
	DefaultTimeout = 2 * time.Second

	// DefaultAttempts applies when Prober.Attempts is not positive. Stub resolvers (glibc's
	// resolv.conf "attempts", dig's "+tries") send a query about three times; three sends spread
	// over the timeout survive one or two lost datagrams without stretching the probe.
	DefaultAttempts = 3

	// udpBufSize is the largest reply we accept over UDP. We never advertise EDNS, so a
	// conforming server sends at most 512 bytes; 4096 leaves room for servers that ignore that.
	// The read buffer is one byte larger so that a bigger datagram (which the kernel truncates
	// to the buffer) is recognised and rejected as malformed instead of being half-parsed.
	udpBufSize = 4096
)

// Sentinel errors wrapped by Result.Err; test with errors.Is.
var (
	// ErrTimeout: no matching reply before the deadline (or the caller's context ended).
	ErrTimeout = errors.New("timeout")
	// ErrRcode: the server answered with an rcode other than NOERROR or NXDOMAIN.
	ErrRcode = errors.New("bad rcode")
	// ErrMismatch: only replies that did not match the query arrived (wrong ID, question, QR bit).
	ErrMismatch = errors.New("mismatched reply")
	// ErrMalformed: only replies that could not be parsed (garbage, truncated, oversized) arrived.
	ErrMalformed = errors.New("malformed reply")
	// ErrUnreachable: the server or its port refused us (ICMP port unreachable, TCP RST) or the
	// socket reported another error that is not the router's own network failing.
	ErrUnreachable = errors.New("unreachable")
	// ErrOffline: the router's own network failed (no route, network down, no source address);
	// this says nothing about the server. Result.Offline is set too.
	ErrOffline = errors.New("offline")
	// ErrName: the probe name cannot be put into a DNS query (empty label, label over 63 bytes,
	// name over 255 bytes). A configuration error, not a server failure.
	ErrName = errors.New("invalid probe name")
)

// Result is one probe's outcome.
type Result struct {
	Server  netip.AddrPort
	Up      bool
	RTT     time.Duration // from the first send to the matching reply (0 when none)
	Rcode   string        // "NOERROR", "NXDOMAIN", "SERVFAIL", ... ("" when no reply decided)
	TCP     bool          // answered over TCP after a truncated UDP reply
	Offline bool          // the router's own network failed (no route...), not the server
	Err     error         // why it is down; wraps one of the sentinels above; nil when Up
}

// Exchanger runs one probe round; the watchdog takes one so tests can swap the network for a fake.
type Exchanger interface {
	Round(ctx context.Context, servers []netip.AddrPort) []Result
}

// Prober sends health probes. The zero value is not usable: Name is required. A Prober is not
// modified by probing and may be shared by goroutines.
type Prober struct {
	Name     string        // the name asked, e.g. "probe-test.dns.nextdns.io"; a final dot is optional
	Timeout  time.Duration // one probe's limit, TCP fallback included; <= 0 means DefaultTimeout
	Attempts int           // UDP sends within Timeout; <= 0 means DefaultAttempts
}

var _ Exchanger = (*Prober)(nil)

// Round probes every server concurrently and returns results in the same order.
func (p *Prober) Round(ctx context.Context, servers []netip.AddrPort) []Result {
	results := make([]Result, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { results[i] = p.Probe(ctx, s) })
	}
	wg.Wait()
	return results
}

// Probe sends one query to server and waits for a matching reply until Timeout passes or ctx
// ends, whichever comes first. It never takes longer than that, TCP fallback included.
//
// The first matching reply decides: NOERROR or NXDOMAIN is up, any other rcode is down with
// ErrRcode. Without one, Err wraps ErrUnreachable (ICMP port unreachable, TCP refused),
// ErrOffline (the router's own network), ErrMismatch and/or ErrMalformed (only such replies
// arrived before the deadline; these do not also wrap ErrTimeout) or ErrTimeout (nothing at
// all; also when ctx was canceled, then with context.Canceled wrapped too). Err.Error() is one
// short line such as "timeout after 2s (3 sends)" or "SERVFAIL".
func (p *Prober) Probe(ctx context.Context, server netip.AddrPort) Result {
	return p.probe(ctx, server, dialer{})
}

// timeout returns the effective per-probe limit.
func (p *Prober) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultTimeout
	}
	return p.Timeout
}

// attempts returns the effective number of UDP sends.
func (p *Prober) attempts() int {
	if p.Attempts <= 0 {
		return DefaultAttempts
	}
	return p.Attempts
}

// probe is Probe with the dialer injected, so tests can provoke local socket errors.
//
// Resends: the same query (same ID, same socket) goes out again every Timeout/Attempts until a
// matching reply arrives, like a stub resolver does. One lost datagram therefore delays the answer
// by one interval instead of failing the probe, and a reply to any of the sends counts. RTT is
// measured from the first send, so a loss shows up as a longer RTT.
func (p *Prober) probe(ctx context.Context, server netip.AddrPort, d dialer) Result {
	res := Result{Server: server}
	fail := func(err error) Result {
		res.Err = err
		res.Offline = errors.Is(err, ErrOffline)
		return res
	}
	if a := server.Addr(); !server.IsValid() || server.Port() == 0 || a.IsUnspecified() || a.IsMulticast() {
		// Unspecified would reach this host, multicast many: neither is one upstream.
		return fail(newError("invalid server address "+server.String(), ErrUnreachable))
	}
	id := newID()
	query, q, err := buildQuery(p.Name, id)
	if err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.Canceled) {
			return fail(newError("canceled before sending", ErrTimeout, err))
		}
		return fail(newError("timeout before sending", ErrTimeout, err))
	}

	timeout := p.timeout()
	attempts := p.attempts()
	interval := timeout / time.Duration(attempts)
	begin := time.Now()
	deadline := begin.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	budget := deadline.Sub(begin)
	// Dial the unmapped address: an IPv4-mapped IPv6 literal must travel as IPv4.
	raddr := netip.AddrPortFrom(server.Addr().Unmap(), server.Port())

	// A connected UDP socket: the kernel delivers only datagrams from raddr and reports ICMP
	// port unreachable as ECONNREFUSED. The kernel picks a random source port.
	conn, err := d.dialUDP(raddr)
	if err != nil {
		return fail(socketError("connect", err))
	}
	defer conn.Close()
	// Unblock a pending read when the caller cancels. Setting the read deadline first and
	// checking ctx.Err() after (below) leaves no window where a cancel is missed.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	buf := make([]byte, udpBufSize+1)
	var start time.Time // the first send: RTT and the resend schedule count from it
	var sends, mismatched, malformed int
	for {
		if sends == 0 || (sends < attempts && !time.Now().Before(start.Add(time.Duration(sends)*interval))) {
			now := time.Now()
			if _, err := conn.Write(query); err != nil {
				return fail(socketError("send", err))
			}
			if sends == 0 {
				start = now
			}
			sends++
		}
		wait := deadline
		if sends < attempts {
			if next := start.Add(time.Duration(sends) * interval); next.Before(wait) {
				wait = next
			}
		}
		if err := conn.SetReadDeadline(wait); err != nil {
			// Only if the runtime's poller refused the socket: never wait without a deadline.
			return fail(socketError("receive", err))
		}
		if ctx.Err() != nil {
			return fail(noAnswer(ctx, budget, sends, mismatched, malformed))
		}
		n, err := conn.Read(buf)
		if errors.Is(err, io.EOF) {
			// (*os.File).Read reports a zero-length read as io.EOF; on a datagram socket it
			// is an empty datagram, which is malformed like any other runt.
			n, err = 0, nil
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return fail(socketError("receive", err))
			}
			if ctx.Err() != nil || !time.Now().Before(deadline) {
				return fail(noAnswer(ctx, budget, sends, mismatched, malformed))
			}
			continue // time to resend
		}
		if n > udpBufSize {
			malformed++ // the datagram did not fit: the kernel cut it
			continue
		}
		r, err := parseReply(buf[:n], id, q)
		switch {
		case errors.Is(err, ErrMismatch):
			mismatched++
			continue
		case err != nil:
			malformed++
			continue
		}
		if r.truncated {
			return p.finishTCP(ctx, res, raddr, query, id, q, start, deadline, d)
		}
		res.RTT = time.Since(start)
		return decide(res, r.rcode)
	}
}

// finishTCP retries a truncated exchange over TCP. It shares the probe's deadline rather than
// starting a fresh timeout, so a probe never outlasts Timeout and a round stays bounded for the
// watchdog's schedule; a truncating server normally answers at once, leaving nearly all of it.
func (p *Prober) finishTCP(ctx context.Context, res Result, raddr netip.AddrPort, query []byte,
	id uint16, q question, start, deadline time.Time, d dialer) Result {
	r, err := exchangeTCP(ctx, d, raddr, query, id, q, deadline)
	if err != nil {
		res.Err = err
		res.Offline = errors.Is(err, ErrOffline)
		return res
	}
	res.RTT = time.Since(start)
	res.TCP = true
	return decide(res, r.rcode)
}
