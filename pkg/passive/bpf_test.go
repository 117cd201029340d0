package passive

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

var (
	router4 = netip.MustParseAddr("198.51.100.7")
	router6 = netip.MustParseAddr("2001:db8:ffff::7")
	lo4     = netip.MustParseAddr("127.0.0.1")
	up6b    = netip.MustParseAddrPort("[2001:db8::2]:853")
)

// craft is a packet to build: IP (4 or 6 from the addresses), UDP or TCP, a DNS header and a
// question-sized tail (which the filter must cut off).
type craft struct {
	src, dst   netip.AddrPort
	tcp        bool
	reply      bool
	id         uint16
	rcode      uint8
	ipOptions  int  // IPv4 option bytes (multiple of 4)
	tcpOptions int  // TCP option bytes (multiple of 4)
	fragOff    bool // IPv4 later fragment
	nextHdr    byte // IPv6 next header override (an extension header)
	noPayload  bool // a TCP segment with no data
	truncate   int  // cut the packet to this many bytes (0: whole)
}

func (c craft) bytes() []byte {
	dns := make([]byte, dnsHeaderLen+20) // header + a question's worth of name bytes
	binary.BigEndian.PutUint16(dns[0:], c.id)
	if c.reply {
		dns[2] = 0x81
		dns[3] = 0x80 | c.rcode
	} else {
		dns[2] = 0x01
	}
	for i := dnsHeaderLen; i < len(dns); i++ {
		dns[i] = 'x'
	}
	var l4 []byte
	proto := byte(protoUDP)
	if c.tcp {
		proto = protoTCP
		hl := 20 + c.tcpOptions
		l4 = make([]byte, hl)
		l4[12] = byte(hl/4) << 4
		if !c.noPayload {
			l4 = binary.BigEndian.AppendUint16(l4, uint16(len(dns)))
			l4 = append(l4, dns...)
		}
	} else {
		l4 = make([]byte, 8, 8+len(dns))
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(dns)))
		l4 = append(l4, dns...)
	}
	binary.BigEndian.PutUint16(l4[0:], c.src.Port())
	binary.BigEndian.PutUint16(l4[2:], c.dst.Port())
	var ip []byte
	if c.src.Addr().Is4() {
		hl := 20 + c.ipOptions
		ip = make([]byte, hl)
		ip[0] = 0x40 | byte(hl/4)
		binary.BigEndian.PutUint16(ip[2:], uint16(hl+len(l4)))
		if c.fragOff {
			binary.BigEndian.PutUint16(ip[6:], 0x0010)
		}
		ip[8], ip[9] = 64, proto
		s, d := c.src.Addr().As4(), c.dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		for i := 20; i < hl; i++ {
			ip[i] = 1 // NOP options
		}
	} else {
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6], ip[7] = proto, 64
		if c.nextHdr != 0 {
			ip[6] = c.nextHdr
		}
		s, d := c.src.Addr().As16(), c.dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	b := append(ip, l4...)
	if c.truncate > 0 {
		b = b[:c.truncate]
	}
	return b
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func TestFilterAndParse(t *testing.T) {
	ups := []netip.AddrPort{upA, upB, upL, up6b, upA}
	at := time.Unix(100, 0)
	tests := []struct {
		name     string
		c        craft
		wantSnap int     // 0: rejected
		want     *Packet // nil: parse must reject (or not reached)
	}{
		{"IPv4 UDP query", craft{src: ap(router4, 40000), dst: upA, id: 7}, 20 + 8 + 12,
			&Packet{Upstream: upA, LocalPort: 40000, Query: true, ID: 7}},
		{"IPv4 UDP reply SERVFAIL", craft{src: upA, dst: ap(router4, 40000), reply: true, id: 7, rcode: 2}, 40,
			&Packet{Upstream: upA, LocalPort: 40000, ID: 7, Rcode: 2}},
		{"IPv4 with options", craft{src: ap(router4, 40000), dst: upA, id: 9, ipOptions: 12}, 32 + 8 + 12,
			&Packet{Upstream: upA, LocalPort: 40000, Query: true, ID: 9}},
		{"IPv6 UDP query", craft{src: ap(router6, 40001), dst: upB, id: 1}, 60,
			&Packet{Upstream: upB, LocalPort: 40001, Query: true, ID: 1}},
		{"IPv6 UDP reply", craft{src: upB, dst: ap(router6, 40001), reply: true, id: 1, rcode: 5}, 60,
			&Packet{Upstream: upB, LocalPort: 40001, ID: 1, Rcode: 5}},
		{"IPv6 second upstream, other port", craft{src: ap(router6, 5), dst: up6b, id: 3}, 60,
			&Packet{Upstream: up6b, LocalPort: 5, Query: true, ID: 3}},
		{"loopback upstream query", craft{src: ap(lo4, 33333), dst: upL, id: 4}, 40,
			&Packet{Upstream: upL, LocalPort: 33333, Query: true, ID: 4}},
		{"loopback upstream reply", craft{src: upL, dst: ap(lo4, 33333), reply: true, id: 4}, 40,
			&Packet{Upstream: upL, LocalPort: 33333, ID: 4}},
		{"TCP query", craft{src: ap(router4, 40002), dst: upA, tcp: true, id: 5}, 20 + 20 + 14,
			&Packet{Upstream: upA, LocalPort: 40002, Query: true, ID: 5, TCP: true}},
		{"TCP reply with options", craft{src: upA, dst: ap(router4, 40002), tcp: true, reply: true, id: 5, tcpOptions: 12, ipOptions: 4}, 24 + 32 + 14,
			&Packet{Upstream: upA, LocalPort: 40002, ID: 5, TCP: true}},
		{"IPv6 TCP query", craft{src: ap(router6, 40003), dst: upB, tcp: true, id: 6, tcpOptions: 8}, 40 + 28 + 14,
			&Packet{Upstream: upB, LocalPort: 40003, Query: true, ID: 6, TCP: true}},
		{"TCP ACK without data: admitted, not parsed", craft{src: ap(router4, 40002), dst: upA, tcp: true, noPayload: true}, 54, nil},
		{"wrong port", craft{src: ap(router4, 40000), dst: ap(upA.Addr(), 54)}, 0, nil},
		{"wrong address", craft{src: ap(router4, 40000), dst: netip.MustParseAddrPort("192.0.2.2:53")}, 0, nil},
		{"wrong IPv6 address, last word", craft{src: ap(router6, 40000), dst: netip.MustParseAddrPort("[2001:db8::3]:53")}, 0, nil},
		{"upstream port on our side only", craft{src: ap(router4, 53), dst: netip.MustParseAddrPort("192.0.2.99:4000")}, 0, nil},
		{"reply from the upstream's address, wrong source port", craft{src: ap(upA.Addr(), 5353), dst: ap(router4, 40000), reply: true}, 0, nil},
		{"IPv4 later fragment", craft{src: ap(router4, 40000), dst: upA, fragOff: true}, 0, nil},
		{"IPv6 query with ID 0", craft{src: ap(router6, 40000), dst: upB}, 60, &Packet{Upstream: upB, LocalPort: 40000, Query: true}},
		{"IPv6 hop-by-hop header not walked", craft{src: ap(router6, 40000), dst: upB, nextHdr: 60}, 0, nil},
		{"truncated before the ports", craft{src: ap(router4, 40000), dst: upA, truncate: 21}, 0, nil},
		{"truncated DNS header: admitted, not parsed", craft{src: ap(router4, 40000), dst: upA, truncate: 30}, 40, nil},
		{"query QR bit from the upstream: not parsed", craft{src: upA, dst: ap(router4, 40000)}, 40, nil},
	}
	vm := newVM(t, ups)
	known := NewLedger(ups, time.Second).index
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.c.bytes()
			snap, err := vm.Run(b)
			if err != nil {
				t.Fatal(err)
			}
			if snap != tc.wantSnap {
				t.Fatalf("filter returned %d, want %d", snap, tc.wantSnap)
			}
			if snap == 0 {
				return
			}
			p, ok := parse(b[:min(snap, len(b))], at, known)
			if tc.want == nil {
				if ok {
					t.Fatalf("parse admitted %+v", p)
				}
				return
			}
			want := *tc.want
			want.At = at
			if !ok || p != want {
				t.Fatalf("parse = %+v %v, want %+v", p, ok, want)
			}
		})
	}
}

func TestFilterNonIPAndEmpty(t *testing.T) {
	arp := []byte{0x00, 0x01, 0x08, 0x00, 6, 4, 0, 1, 1, 2, 3, 4, 5, 6, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2}
	for _, ups := range [][]netip.AddrPort{nil, {upA, upB}} {
		vm := newVM(t, ups)
		for _, b := range [][]byte{arp, {}, {0x45}, craft{src: ap(router4, 1), dst: upA}.bytes()} {
			n, _ := vm.Run(b)
			if n != 0 && ups == nil {
				t.Errorf("with no upstreams, % x admitted", b)
			}
		}
	}
}

func TestFilterManyUpstreams(t *testing.T) {
	var ups []netip.AddrPort
	for i := range 100 {
		ups = append(ups, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 53))
		ups = append(ups, netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i)}), 53))
	}
	vm := newVM(t, ups)
	last := ups[len(ups)-1]
	if n, _ := vm.Run(craft{src: last, dst: ap(router6, 9), reply: true}.bytes()); n != udp6Snap {
		t.Errorf("last upstream's reply: filter returned %d", n)
	}
}

// newVM returns x/net/bpf's VM running the very program the kernel gets for ups, after
// checking that x/net/bpf decodes every instruction (no raw leftovers) and encodes them back
// to the same bytes: the opcodes written by hand in bpf.go are x/net/bpf's.
func newVM(t *testing.T, ups []netip.AddrPort) *bpf.VM {
	t.Helper()
	prog, err := filter(ups)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, in := range prog {
		raw[i] = bpf.RawInstruction{Op: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("x/net/bpf cannot decode the filter: %v", ins)
	}
	again, err := bpf.Assemble(ins)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		if again[i] != raw[i] {
			t.Fatalf("instruction %d (%v): reassembles to %+v, want %+v", i, ins[i], again[i], raw[i])
		}
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}
