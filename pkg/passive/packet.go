package passive

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// parse reads one admitted packet, which starts at its IP header (a cooked packet socket),
// into a Packet. It reads only the IP, UDP/TCP and DNS headers. known holds the upstreams
// (normalized). It reports false for anything that is not a DNS query to a known upstream or
// a DNS reply from one: the filter admits by address and port only, so a TCP segment with no
// payload (a handshake, an ACK) or one that does not start a DNS message is dropped here, as
// is a packet whose QR bit contradicts its direction.
//
// Over TCP only a segment that begins with a DNS message (its 2-byte length, then the header)
// is read: dnsmasq writes a query in one piece and an upstream's reply starts a segment, so
// this sees the retry after a truncated answer; a message split oddly is simply not seen.
func parse(b []byte, at time.Time, known map[netip.AddrPort]int) (Packet, bool) {
	var src, dst netip.Addr
	var proto byte
	var l4 []byte
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl || binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			return Packet{}, false
		}
		proto = b[9]
		src = netip.AddrFrom4([4]byte(b[12:16]))
		dst = netip.AddrFrom4([4]byte(b[16:20]))
		l4 = b[ihl:]
	case len(b) >= 40 && b[0]>>4 == 6:
		proto = b[6]
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40:]
	default:
		return Packet{}, false
	}
	var dns []byte
	var tcp bool
	switch proto {
	case protoUDP:
		if len(l4) < 8+dnsHeaderLen {
			return Packet{}, false
		}
		dns = l4[8:]
	case protoTCP:
		if len(l4) < 20 {
			return Packet{}, false
		}
		off := int(l4[12]>>4) * 4
		if off < 20 || len(l4) < off+2+dnsHeaderLen || binary.BigEndian.Uint16(l4[off:]) < dnsHeaderLen {
			return Packet{}, false
		}
		dns, tcp = l4[off+2:], true
	default:
		return Packet{}, false
	}
	sport := binary.BigEndian.Uint16(l4[0:2])
	dport := binary.BigEndian.Uint16(l4[2:4])
	p := Packet{At: at, ID: binary.BigEndian.Uint16(dns[0:2]), TCP: tcp}
	if dns[2]&0x80 == 0 { // QR clear: a query, so it must go to an upstream
		p.Upstream = netip.AddrPortFrom(dst, dport)
		if _, ok := known[p.Upstream]; !ok {
			return Packet{}, false
		}
		p.Query, p.LocalPort = true, sport
		return p, true
	}
	p.Upstream = netip.AddrPortFrom(src, sport)
	if _, ok := known[p.Upstream]; !ok {
		return Packet{}, false
	}
	p.LocalPort, p.Rcode = dport, dns[3]&0x0f
	return p, true
}
