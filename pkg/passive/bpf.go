package passive

import (
	"errors"
	"net/netip"
	"strconv"
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
func filter(upstreams []netip.AddrPort) ([]insn, error) {
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
	a.emit(ld(sizeB|modeABS, 0))
	a.emit(alu(aluAND, 0xf0))
	a.jeq(0x40, "", "not4")
	a.jump("v4")
	a.label("not4")
	a.jeq(0x60, "", "reject")
	a.jump("v6")
	a.label("reject")
	a.emit(ret(0))

	// IPv4: UDP or TCP, not a later fragment, then the upstreams.
	a.label("v4")
	a.emit(ld(sizeB|modeABS, 9))
	a.jeq(protoUDP, "v4proto", "")
	a.jeq(protoTCP, "v4proto", "")
	a.emit(ret(0))
	a.label("v4proto")
	a.emit(ld(sizeH|modeABS, 6))
	a.emit(insn{Op: clsJMP | jmpJSET, K: 0x1fff}) // fragment offset: a later fragment
	a.fixLast("", "v4first")
	a.emit(ret(0))
	a.label("v4first")
	a.emit(insn{Op: clsLDX | sizeB | modeMSH}) // X = IHL*4
	for i, u := range v4 {
		ip := u.Addr().As4()
		word := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
		for dir, off := range [2]struct{ addr, port uint32 }{{12, 0}, {16, 2}} {
			next := "v4next" + strconv.Itoa(2*i+dir)
			a.emit(ld(sizeW|modeABS, off.addr))
			a.jeq(word, "", next)
			a.emit(ld(sizeH|modeIND, off.port))
			a.jeq(uint32(u.Port()), "", next)
			a.jump("accept4")
			a.label(next)
		}
	}
	a.label("reject4")
	a.emit(ret(0))
	a.label("accept4")
	a.emit(ld(sizeB|modeABS, 9))
	a.jeq(protoTCP, "tcp4", "")
	a.emit(insn{Op: clsMISC | miscTXA})
	a.emit(alu(aluADD, 8+dnsHeaderLen))
	a.emit(insn{Op: clsRET | retA})
	a.label("tcp4")
	a.emit(ld(sizeB|modeIND, 12)) // TCP data offset, high nibble
	a.emit(alu(aluAND, 0xf0))
	a.emit(alu(aluRSH, 2))
	a.emit(insn{Op: clsALU | aluADD | srcX})
	a.emit(alu(aluADD, 2+dnsHeaderLen))
	a.emit(insn{Op: clsRET | retA})

	// IPv6: next header UDP or TCP (no extension headers), then the upstreams.
	a.label("v6")
	a.emit(ld(sizeB|modeABS, 6))
	a.jeq(protoUDP, "v6proto", "")
	a.jeq(protoTCP, "v6proto", "")
	a.emit(ret(0))
	a.label("v6proto")
	for i, u := range v6 {
		ip := u.Addr().As16()
		for dir, off := range [2]struct{ addr, port uint32 }{{8, 40}, {24, 42}} {
			next := "v6next" + strconv.Itoa(2*i+dir)
			for w := range 4 {
				b := ip[4*w : 4*w+4]
				a.emit(ld(sizeW|modeABS, off.addr+uint32(4*w)))
				a.jeq(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]), "", next)
			}
			a.emit(ld(sizeH|modeABS, off.port))
			a.jeq(uint32(u.Port()), "", next)
			a.jump("accept6")
			a.label(next)
		}
	}
	a.label("reject6")
	a.emit(ret(0))
	a.label("accept6")
	a.emit(ld(sizeB|modeABS, 6))
	a.jeq(protoTCP, "tcp6", "")
	a.emit(ret(udp6Snap))
	a.label("tcp6")
	a.emit(ld(sizeB|modeABS, 40+12))
	a.emit(alu(aluAND, 0xf0))
	a.emit(alu(aluRSH, 2))
	a.emit(alu(aluADD, 40+2+dnsHeaderLen))
	a.emit(insn{Op: clsRET | retA})
	return a.resolve()
}

// insn is one classic BPF instruction as the kernel takes it (struct sock_filter), the same
// layout as x/net/bpf's RawInstruction. The filter is written in it directly rather than
// assembled from x/net/bpf's instruction types: those, boxed in interfaces, linked 14 KB of
// x/net/bpf (every instruction's String method) and a 18 KB filter function into the mips
// binary, about 130 KB stripped with their tables (measured). The tests disassemble this
// program with x/net/bpf, check that it reassembles to the same bytes, and run it in bpf.NewVM.
type insn struct {
	Op     uint16
	Jt, Jf uint8
	K      uint32
}

// Opcode parts, from linux/filter.h (and x/net/bpf's constants).
const (
	clsLD   = 0x00
	clsLDX  = 0x01
	clsALU  = 0x04
	clsJMP  = 0x05
	clsRET  = 0x06
	clsMISC = 0x07

	sizeW = 0x00
	sizeH = 0x08
	sizeB = 0x10

	modeABS = 0x20
	modeIND = 0x40
	modeMSH = 0xa0

	aluADD = 0x00
	aluAND = 0x50
	aluRSH = 0x70
	srcX   = 0x08

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJSET = 0x40

	retA    = 0x10
	miscTXA = 0x80
)

// ld loads into A: mode and size as given, at offset k.
func ld(sizeMode uint16, k uint32) insn { return insn{Op: clsLD | sizeMode, K: k} }

// alu applies op with the constant k to A.
func alu(op uint16, k uint32) insn { return insn{Op: clsALU | op, K: k} }

// ret returns the constant k: the capture length, 0 to reject.
func ret(k uint32) insn { return insn{Op: clsRET, K: k} }

// asm is a tiny assembler with labels for the filter: a jump's targets are labels ("" is the
// next instruction), resolved into skip counts at the end.
type asm struct {
	ins    []insn
	labels map[string]int
	fixes  []fix
}

// fix is a jump whose targets are labels.
type fix struct {
	at          int
	true, false string
}

// emit appends i. Not inlined: the filter calls it some fifty times, and each inlined append
// cost the mips binary about 200 bytes.
//
//go:noinline
func (a *asm) emit(i insn) { a.ins = append(a.ins, i) }

// Not inlined: inlined at its 15 call sites it cost the mips binary 0.7 KB of code (measured).
//
//go:noinline
func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

// jeq jumps to t when A == val, else to f.
func (a *asm) jeq(val uint32, t, f string) {
	a.emit(insn{Op: clsJMP | jmpJEQ, K: val})
	a.fixLast(t, f)
}

// jump jumps to l always (a 32-bit offset: any distance).
func (a *asm) jump(l string) {
	a.emit(insn{Op: clsJMP | jmpJA})
	a.fixLast(l, "")
}

// fixLast sets the targets of the jump just emitted.
//
//go:noinline
func (a *asm) fixLast(t, f string) {
	a.fixes = append(a.fixes, fix{at: len(a.ins) - 1, true: t, false: f})
}

// errFilter is a bug in filter: a jump to an unknown or earlier label, or too far.
var errFilter = errors.New("filter: bad jump")

// resolve turns labels into skips. A conditional jump reaches at most 255 instructions
// ahead; the filter keeps them short (to the next block) and uses JA for the far ones.
func (a *asm) resolve() ([]insn, error) {
	skip := func(at int, l string) (int, error) {
		if l == "" {
			return 0, nil
		}
		to, ok := a.labels[l]
		if !ok || to <= at {
			return 0, errFilter
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
		j := &a.ins[f.at]
		if j.Op == clsJMP|jmpJA {
			j.K = uint32(t)
			continue
		}
		if t > 255 || e > 255 {
			return nil, errFilter
		}
		j.Jt, j.Jf = uint8(t), uint8(e)
	}
	return a.ins, nil
}
