package probe

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// udpHandler answers (or not) one query the fake received. It runs on the fake's read loop, so
// it must not block for long; raw is the datagram as received, q its parse.
type udpHandler func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, raw []byte)

// tcpHandler serves one accepted TCP connection whose first query has been read.
type tcpHandler func(conn net.Conn, q *dns.Msg)

// startFake runs a fake upstream on 127.0.0.1 with a free port: UDP always, TCP on the same
// port when tcp is not nil. Datagrams that miekg/dns cannot parse are ignored. Everything is
// closed and waited for at the end of the test.
func startFake(t testing.TB, udp udpHandler, tcp tcpHandler) netip.AddrPort {
	t.Helper()
	pc, ln := listenPair(t, tcp != nil)
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		if ln != nil {
			ln.Close()
		}
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			raw := append([]byte(nil), buf[:n]...)
			q := new(dns.Msg)
			if q.Unpack(raw) != nil {
				continue
			}
			udp(pc, from, q, raw)
		}
	})
	if ln != nil {
		wg.Go(func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() {
					defer conn.Close()
					q, err := readTCPQuery(conn)
					if err != nil {
						return
					}
					tcp(conn, q)
				})
			}
		})
	}
	return addr
}

// listenPair opens a UDP socket on 127.0.0.1:0 and, when withTCP, a TCP listener on the same
// port, retrying when TCP finds the port taken.
func listenPair(t testing.TB, withTCP bool) (*net.UDPConn, *net.TCPListener) {
	t.Helper()
	loopback := netip.MustParseAddrPort("127.0.0.1:0")
	// A clash between the kernel's UDP pick and a TCP user of that port is rare; a few
	// retries make it vanishingly so.
	const tries = 8
	for range tries {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
		if err != nil {
			t.Fatal(err)
		}
		if !withTCP {
			return pc, nil
		}
		port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(loopback.Addr(), port)))
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// readTCPQuery reads one length-prefixed query.
func readTCPQuery(conn net.Conn) (*dns.Msg, error) {
	var prefix [2]byte
	if _, err := io.ReadFull(conn, prefix[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(prefix[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	q := new(dns.Msg)
	if err := q.Unpack(buf); err != nil {
		return nil, err
	}
	return q, nil
}

// writeTCP writes msg with its length prefix.
func writeTCP(conn net.Conn, msg []byte) {
	out := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	conn.Write(append(out, msg...))
}

// reply packs a reply to q with rcode, after applying the edits. It runs on the fakes'
// goroutines, where t.Fatal is not allowed, so it panics if miekg/dns cannot pack the message
// (a broken test, never a result).
func reply(q *dns.Msg, rcode int, edits ...func(*dns.Msg)) []byte {
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	if rcode == dns.RcodeSuccess && len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(192, 0, 2, 1), // documentation address: data only
		})
	}
	for _, e := range edits {
		e(m)
	}
	b, err := m.Pack()
	if err != nil {
		panic("packing a test reply: " + err.Error())
	}
	return b
}

// answer is a udpHandler that replies with rcode.
func answer(rcode int) udpHandler {
	return func(pc *net.UDPConn, from netip.AddrPort, q *dns.Msg, _ []byte) {
		pc.WriteToUDPAddrPort(reply(q, rcode), from)
	}
}

// unboundPort returns a loopback UDP port nothing listens on (bound, then released).
func unboundPort(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return addr
}

// errIs reports whether err wraps want; want nil means err must be nil.
func errIs(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}
