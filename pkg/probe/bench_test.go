package probe

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// BenchmarkProbe is one probe round-trip on loopback against a minimal responder that turns
// each query into its reply by setting the QR bit, so the numbers are mostly the prober's.
func BenchmarkProbe(b *testing.B) {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				buf[2] |= 0x80 // QR: the query, echoed, is a NOERROR reply with the question
				pc.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	server := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	p := prober(answered)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := p.Probe(ctx, server); !res.Up {
			b.Fatal(res.Err)
		}
	}
}
