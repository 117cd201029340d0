package dnsmasqtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Stub is a model of a client's stub resolver: it sends a query, resends the same packet
// (same socket, same id) every Interval, and gives up after Sends*Interval. dnsmasq treats a
// resend on the same socket as a retry and, under strict-order, forwards it to the next server.
type Stub struct {
	Name     string        // "musl", "glibc"
	Interval time.Duration // time between sends, and after the last send before giving up
	Sends    int           // sends in all (1 = never resends)
}

// Musl is musl libc's resolver (OpenWrt's libc) with its defaults (timeout 5 s, attempts 2):
// it resends every 2.5 s and gives up 5 s after the first send.
var Musl = Stub{Name: "musl", Interval: 2500 * time.Millisecond, Sends: 2}

// Glibc is glibc's resolver with its defaults (timeout 5 s, attempts 2, one nameserver): it
// waits 5 s for each of two sends and gives up 10 s after the first.
var Glibc = Stub{Name: "glibc", Interval: 5 * time.Second, Sends: 2}

// GiveUp is how long after the first send the stub gives up.
func (s Stub) GiveUp() time.Duration { return s.Interval * time.Duration(max(s.Sends, 1)) }

// String describes the model as the lab prints it.
func (s Stub) String() string {
	return fmt.Sprintf("%s (resend every %v, give up after %v)", s.Name, s.Interval, s.GiveUp())
}

// Reply is what a stub got back.
type Reply struct {
	Rcode int           // DNS rcode of the reply
	A     netip.Addr    // the first A record, if any
	RTT   time.Duration // from the first send to the reply
	Sends int           // packets sent, resends included
}

// Ask sends an A query for name to server over UDP the way stub does, and returns the first
// reply with the query's id, of any rcode. It returns ErrNoAnswer if none came in time.
func Ask(ctx context.Context, server netip.AddrPort, name string, stub Stub) (Reply, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.RecursionDesired = true
	pkt, err := m.Pack()
	if err != nil {
		return Reply{}, fmt.Errorf("dnsmasqtest: query %q: %w", name, err)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return Reply{}, fmt.Errorf("dnsmasqtest: query %q: %w", name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	start := time.Now()
	sends := max(stub.Sends, 1)
	buf := make([]byte, 4096)
	var r Reply
	for i := range sends {
		if _, err := conn.Write(pkt); err != nil {
			return r, fmt.Errorf("dnsmasqtest: query %q: %w", name, err)
		}
		r.Sends++
		deadline := start.Add(stub.Interval * time.Duration(i+1))
		for {
			if ctx.Err() != nil {
				return r, fmt.Errorf("dnsmasqtest: query %q: %w", name, ctx.Err())
			}
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend, or give up
				}
				// ICMP port unreachable and the like: keep waiting as a stub does
				if time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				break
			}
			resp := new(dns.Msg)
			if resp.Unpack(buf[:n]) != nil || resp.Id != m.Id || !resp.Response {
				continue
			}
			r.RTT = time.Since(start)
			r.Rcode = resp.Rcode
			for _, rr := range resp.Answer {
				if a, ok := rr.(*dns.A); ok {
					r.A, _ = netip.AddrFromSlice(a.A.To4())
					break
				}
			}
			return r, nil
		}
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("dnsmasqtest: query %q: %w", name, ctx.Err())
	}
	return r, fmt.Errorf("%w: %q after %d sends in %v", ErrNoAnswer, name, r.Sends, time.Since(start).Round(time.Millisecond))
}

// Query asks this dnsmasq for name's A record the way stub does.
func (d *Dnsmasq) Query(ctx context.Context, name string, stub Stub) (Reply, error) {
	return Ask(ctx, d.Addr, name, stub)
}
