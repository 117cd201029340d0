package passive

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// The filter runs in the kernel on every packet the packet socket sees, on every interface,
// in both directions, so it must reject the common case fast: one load and a compare for a
// packet that is neither IPv4 nor IPv6, a handful more for other IP traffic. The socket is
// cooked (SOCK_DGRAM): a packet starts at its IP header, whatever the link. The IP version is
// read from the first nibble rather than from the socket address's protocol (the SKF_AD_PROTOCOL
// extension), so that bpf.NewVM, which does not implement that extension, can test the very
// program the kernel runs; a non-IP frame (ARP, PPPoE discovery...) whose first nibble is 4 or 6
// by chance still has to match an upstream's address and port to get through.
//
// Admitted: UDP or TCP, IPv4 or IPv6, whose source is an upstream's address and port (a reply)
// or whose destination is (a query). IPv4 options are handled (the header length comes from
// IHL); IPv4 fragments other than the first are rejected (they have no UDP header). IPv6
// extension headers are not walked: a packet whose next header is not UDP or TCP is rejected.
// dnsmasq's queries and their replies carry none.
//
// The filter's return value is the capture length: IP header + UDP header + the 12-byte DNS
// header, or for TCP the IP and TCP headers + the 2-byte length + the DNS header. The rest of
// the packet (names, answers) never leaves the kernel.

// dnsHeaderLen is the fixed DNS header: ID, flags, four counts.
const dnsHeaderLen = 12

// IP protocol numbers.
const (
	protoTCP = 6
	protoUDP = 17
)

// udp6Snap is the capture length of an IPv6 UDP packet: 40 + 8 + 12.
const udp6Snap = 40 + 8 + dnsHeaderLen

// maxSnap bounds any capture length the filter returns: a 60-byte IPv4 header, a 60-byte TCP
// header, the TCP length prefix and the DNS header. The read buffer is this big.
const maxSnap = 60 + 60 + 2 + dnsHeaderLen

// filter returns the classic BPF program that admits DNS between this router and upstreams.
func filter(upstreams []netip.AddrPort) ([]bpf.Instruction, error) {
	var v4, v6 []netip.AddrPort
	seen := map[netip.AddrPort]bool{}
	for _, u := range upstreams {
		u = normalize(u)
		if seen[u] {
			continue
		}
		seen[u] = true
		if u.Addr().Is4() {
			v4 = append(v4, u)
		} else {
			v6 = append(v6, u)
		}
	}
	var a asm
	// Which IP version?
	a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.jeq(0x40, "", "not4")
	a.jump("v4")
	a.label("not4")
	a.jeq(0x60, "", "reject")
	a.jump("v6")
	a.label("reject")
	a.emit(bpf.RetConstant{Val: 0})

	// IPv4: UDP or TCP, not a later fragment, then the upstreams.
	a.label("v4")
	a.emit(bpf.LoadAbsolute{Off: 9, Size: 1})
	a.jeq(protoUDP, "v4proto", "")
	a.jeq(protoTCP, "v4proto", "")
	a.emit(bpf.RetConstant{Val: 0})
	a.label("v4proto")
	a.emit(bpf.LoadAbsolute{Off: 6, Size: 2})
	a.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff}) // fragment offset: a later fragment
	a.fixLast("", "v4first")
	a.emit(bpf.RetConstant{Val: 0})
	a.label("v4first")
	a.emit(bpf.LoadMemShift{Off: 0}) // X = IHL*4
	for i, u := range v4 {
		ip := u.Addr().As4()
		word := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
		for dir, off := range [2]struct{ addr, port uint32 }{{12, 0}, {16, 2}} {
			next := fmt.Sprintf("v4next%d.%d", i, dir)
			a.emit(bpf.LoadAbsolute{Off: off.addr, Size: 4})
			a.jeq(word, "", next)
			a.emit(bpf.LoadIndirect{Off: off.port, Size: 2})
			a.jeq(uint32(u.Port()), "", next)
			a.jump("accept4")
			a.label(next)
		}
	}
	a.label("reject4")
	a.emit(bpf.RetConstant{Val: 0})
	a.label("accept4")
	a.emit(bpf.LoadAbsolute{Off: 9, Size: 1})
	a.jeq(protoTCP, "tcp4", "")
	a.emit(bpf.TXA{})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 8 + dnsHeaderLen})
	a.emit(bpf.RetA{})
	a.label("tcp4")
	a.emit(bpf.LoadIndirect{Off: 12, Size: 1}) // TCP data offset, high nibble
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 2})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 2 + dnsHeaderLen})
	a.emit(bpf.RetA{})

	// IPv6: next header UDP or TCP (no extension headers), then the upstreams.
	a.label("v6")
	a.emit(bpf.LoadAbsolute{Off: 6, Size: 1})
	a.jeq(protoUDP, "v6proto", "")
	a.jeq(protoTCP, "v6proto", "")
	a.emit(bpf.RetConstant{Val: 0})
	a.label("v6proto")
	for i, u := range v6 {
		ip := u.Addr().As16()
		for dir, off := range [2]struct{ addr, port uint32 }{{8, 40}, {24, 42}} {
			next := fmt.Sprintf("v6next%d.%d", i, dir)
			for w := range 4 {
				b := ip[4*w : 4*w+4]
				a.emit(bpf.LoadAbsolute{Off: off.addr + uint32(4*w), Size: 4})
				a.jeq(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]), "", next)
			}
			a.emit(bpf.LoadAbsolute{Off: off.port, Size: 2})
			a.jeq(uint32(u.Port()), "", next)
			a.jump("accept6")
			a.label(next)
		}
	}
	a.label("reject6")
	a.emit(bpf.RetConstant{Val: 0})
	a.label("accept6")
	a.emit(bpf.LoadAbsolute{Off: 6, Size: 1})
	a.jeq(protoTCP, "tcp6", "")
	a.emit(bpf.RetConstant{Val: udp6Snap})
	a.label("tcp6")
	a.emit(bpf.LoadAbsolute{Off: 40 + 12, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 2})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 40 + 2 + dnsHeaderLen})
	a.emit(bpf.RetA{})
	return a.resolve()
}

// asm is a tiny assembler with labels for the filter: a conditional jump's targets are labels
// ("" is the next instruction), resolved into skip counts at the end.
type asm struct {
	ins    []bpf.Instruction
	labels map[string]int
	fixes  []fix
}

// fix is a jump whose targets are labels.
type fix struct {
	at          int
	true, false string
}

func (a *asm) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

// jeq jumps to t when A == val, else to f.
func (a *asm) jeq(val uint32, t, f string) {
	a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: val})
	a.fixLast(t, f)
}

// jump jumps to l always (a 32-bit offset: any distance).
func (a *asm) jump(l string) {
	a.emit(bpf.Jump{})
	a.fixLast(l, "")
}

// fixLast sets the targets of the jump just emitted.
func (a *asm) fixLast(t, f string) {
	a.fixes = append(a.fixes, fix{at: len(a.ins) - 1, true: t, false: f})
}

// resolve turns labels into skips. A conditional jump reaches at most 255 instructions
// ahead; the filter keeps them short (to the next block) and uses Jump for the far ones.
func (a *asm) resolve() ([]bpf.Instruction, error) {
	skip := func(at int, l string) (int, error) {
		if l == "" {
			return 0, nil
		}
		to, ok := a.labels[l]
		if !ok || to <= at {
			return 0, fmt.Errorf("filter: bad jump from %d to %q", at, l)
		}
		return to - at - 1, nil
	}
	for _, f := range a.fixes {
		t, err := skip(f.at, f.true)
		if err != nil {
			return nil, err
		}
		e, err := skip(f.at, f.false)
		if err != nil {
			return nil, err
		}
		switch j := a.ins[f.at].(type) {
		case bpf.Jump:
			j.Skip = uint32(t)
			a.ins[f.at] = j
		case bpf.JumpIf:
			if t > 255 || e > 255 {
				return nil, errors.New("filter: conditional jump too far")
			}
			j.SkipTrue, j.SkipFalse = uint8(t), uint8(e)
			a.ins[f.at] = j
		}
	}
	return a.ins, nil
}
