package probe

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/net/dns/dnsmessage"
)

// testID is the query ID of the parser tests.
const testID = 0xbeef

// testQuery is the probe query with testID, as miekg/dns sees it, and the question it asks.
func testQuery(t testing.TB) (*dns.Msg, question) {
	t.Helper()
	raw, q, err := buildQuery(probeName, testID)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		t.Fatalf("miekg/dns cannot parse our query: %v", err)
	}
	return m, q
}

// bigReply is a well-formed NOERROR reply to m with n A records.
func bigReply(m *dns.Msg, n int) []byte {
	return reply(m, dns.RcodeSuccess, func(r *dns.Msg) {
		for i := range n {
			r.Answer = append(r.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
				A:   net.IPv4(192, 0, byte(i>>8), byte(i)),
			})
		}
	})
}

func TestParseReply(t *testing.T) {
	m, q := testQuery(t)
	good := reply(m, dns.RcodeSuccess)
	tests := []struct {
		name      string
		msg       []byte
		wantErr   error
		wantRcode dnsmessage.RCode
		wantTC    bool
	}{
		{"NOERROR with an answer", good, nil, dnsmessage.RCodeSuccess, false},
		{"SERVFAIL", reply(m, dns.RcodeServerFailure), nil, dnsmessage.RCodeServerFailure, false},
		{"truncated, records cut anywhere", reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Truncated = true })[:len(good)-5],
			nil, dnsmessage.RCodeSuccess, true},
		{"compressed answer name", reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Compress = true }),
			nil, dnsmessage.RCodeSuccess, false},
		{"mixed-case name", reply(m, dns.RcodeSuccess, func(r *dns.Msg) {
			r.Question[0].Name = "PrObE-TeSt.DnS.NeXtDnS.Io."
		}), nil, dnsmessage.RCodeSuccess, false},
		{"a name differing in a non-letter", reply(m, dns.RcodeSuccess, func(r *dns.Msg) {
			r.Question[0].Name = "probe\x0dtest.dns.nextdns.io." // '-' ^ 0x20
		}), ErrMismatch, 0, false},
		{"a longer name", reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Question[0].Name = "x." + probeName + "." }),
			ErrMismatch, 0, false},
		{"wrong ID", reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Id = testID + 1 }), ErrMismatch, 0, false},
		{"not a response", reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Response = false }), ErrMismatch, 0, false},
		{"empty", nil, ErrMalformed, 0, false},
		{"header only, one question promised", good[:12], ErrMalformed, 0, false},
		{"answer cut without TC", good[:len(good)-1], ErrMalformed, 0, false},
		{"compression loop in the question", []byte{
			0xbe, 0xef, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0,
			0xc0, 12, 0, 1, 0, 1, // name points at itself
		}, ErrMalformed, 0, false},
		{"a label containing a dot", []byte{
			0xbe, 0xef, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0,
			3, 'a', '.', 'b', 0, 0, 1, 0, 1,
		}, ErrMalformed, 0, false},
		{"trailing bytes are ignored", append(append([]byte(nil), good...), 1, 2, 3), nil, dnsmessage.RCodeSuccess, false},
		{"a 60 KB reply", bigReply(m, 1500), nil, dnsmessage.RCodeSuccess, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseReply(tc.msg, testID, q)
			if !errIs(err, tc.wantErr) {
				t.Fatalf("parseReply = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (r.rcode != tc.wantRcode || r.truncated != tc.wantTC) {
				t.Errorf("parseReply = %+v, want rcode %v truncated %v", r, tc.wantRcode, tc.wantTC)
			}
		})
	}
}

// TestParseReplyAllocation: what the parser allocates does not depend on what it is fed.
func TestParseReplyAllocation(t *testing.T) {
	m, q := testQuery(t)
	inputs := map[string][]byte{
		"good":           reply(m, dns.RcodeSuccess),
		"60 KB":          bigReply(m, 1500),
		"60 KB cut":      bigReply(m, 1500)[:60000],
		"60 KB garbage":  []byte(strings.Repeat("\xc0", 60000)),
		"wrong ID 60 KB": reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Id++ }),
	}
	// parseReply keeps no record; dnsmessage allocates only its small, nested error values.
	const maxAllocs = 4
	for name, in := range inputs {
		if n := testing.AllocsPerRun(20, func() { parseReply(in, testID, q) }); n > maxAllocs {
			t.Errorf("%s: parseReply allocates %v times, want at most %d", name, n, maxAllocs)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	m, q := testQuery(f)
	f.Add(reply(m, dns.RcodeSuccess))
	f.Add(reply(m, dns.RcodeNameError))
	f.Add(reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Truncated = true; r.Answer = nil }))
	f.Add(reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Compress = true }))
	f.Add(reply(m, dns.RcodeSuccess, func(r *dns.Msg) { r.Id++ }))
	f.Add(bigReply(m, 300))
	f.Add([]byte{})
	f.Add([]byte{0xbe, 0xef, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Add([]byte{0xbe, 0xef, 0x83, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte(strings.Repeat("\x3f", 300)))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Take the ID from the input so the fuzzer easily reaches the matching paths.
		var id uint16 = testID
		if len(data) >= 2 {
			id = binary.BigEndian.Uint16(data)
		}
		r, err := parseReply(data, id, q)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMismatch) {
				t.Fatalf("parseReply error %v wraps neither ErrMalformed nor ErrMismatch", err)
			}
			return
		}
		// Accepted: the header must say what parseReply reported.
		if len(data) < 12 || data[2]&0x80 == 0 || (data[2]>>3)&0xf != 0 {
			t.Fatalf("accepted %x: not a response to a standard query", data)
		}
		if r.truncated != (data[2]&0x02 != 0) || r.rcode != dnsmessage.RCode(data[3]&0x0f) {
			t.Fatalf("accepted %x as %+v, which disagrees with its header", data, r)
		}
		if binary.BigEndian.Uint16(data[4:]) != 1 {
			t.Fatalf("accepted %x with a question count other than 1", data)
		}
	})
}

func TestSocketError(t *testing.T) {
	// opErr is what package net returns: an OpError around a SyscallError around an errno.
	opErr := func(op, syscallName string, errno syscall.Errno) error {
		return &net.OpError{Op: op, Net: "udp", Err: os.NewSyscallError(syscallName, errno)}
	}
	tests := []struct {
		name        string
		op          string
		err         error
		wantOffline bool
		wantMsg     string
	}{
		{"no route on connect", "connect", opErr("dial", "connect", syscall.ENETUNREACH), true,
			"offline: connect: network is unreachable"},
		{"no route to host on send", "send", opErr("write", "write", syscall.EHOSTUNREACH), true,
			"offline: send: no route to host"},
		{"no source address", "connect", opErr("dial", "connect", syscall.EADDRNOTAVAIL), true,
			"offline: connect: cannot assign requested address"},
		{"interface down", "send", opErr("write", "write", syscall.ENETDOWN), true, "offline: send: network is down"},
		{"IPv6 disabled", "connect", opErr("dial", "socket", syscall.EAFNOSUPPORT), true,
			"offline: connect: address family not supported by protocol"},
		{"TCP without a route", "tcp connect", opErr("dial", "connect", syscall.ENETUNREACH), true,
			"offline: tcp connect: network is unreachable"},
		{"ICMP port unreachable on receive", "receive", opErr("read", "read", syscall.ECONNREFUSED), false,
			"connection refused (ICMP port unreachable)"},
		{"ICMP port unreachable reported on a resend", "send", opErr("write", "write", syscall.ECONNREFUSED), false,
			"connection refused (ICMP port unreachable)"},
		{"TCP reset", "tcp connect", opErr("dial", "connect", syscall.ECONNREFUSED), false,
			"tcp connect: connection refused"},
		{"host unreachable from a remote router (ICMP, on receive)", "receive",
			opErr("read", "read", syscall.EHOSTUNREACH), false, "receive: no route to host"},
		{"a local firewall is not the network failing", "send", opErr("write", "write", syscall.EPERM), false,
			"send: operation not permitted"},
		{"not an errno", "send", errors.New("something odd"), false, "send: something odd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := socketError(tc.op, tc.err)
			if got := errors.Is(err, ErrOffline); got != tc.wantOffline {
				t.Errorf("socketError(%v) offline = %v, want %v (err %v)", tc.err, got, tc.wantOffline, err)
			}
			if !tc.wantOffline && !errors.Is(err, ErrUnreachable) {
				t.Errorf("socketError(%v) = %v, want it to wrap ErrUnreachable", tc.err, err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("socketError(%v) = %v, want it to wrap the cause", tc.err, err)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("socketError(%v) = %q, want %q", tc.err, err, tc.wantMsg)
			}
		})
	}
}

// TestOfflineFromTheKernel: the classification holds for the error a real bind returns when
// the source address is not the host's (nothing is sent: bind fails first).
func TestOfflineFromTheKernel(t *testing.T) {
	d := &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1)}}
	c, err := d.Dial("udp", "127.0.0.1:9")
	if err == nil {
		c.Close()
		t.Skip("this host owns 192.0.2.1")
	}
	if !errors.Is(socketError("connect", err), ErrOffline) {
		t.Fatalf("socketError(%v) is not offline", err)
	}
}

func TestRcodeName(t *testing.T) {
	for rc := range dnsmessage.RCode(16) {
		want, ok := dns.RcodeToString[int(rc)]
		if !ok {
			want = "RCODE" + strconv.Itoa(int(rc))
		}
		if got := rcodeName(rc); got != want {
			t.Errorf("rcodeName(%d) = %q, want %q (dig's name)", rc, got, want)
		}
	}
}
