package passive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// The packet socket is made with package syscall and handed to package os, as pkg/probe does
// (see pkg/probe/socket.go): a non-blocking descriptor given to os.NewFile joins the runtime's
// poller, so a Read parks the goroutine without a thread, and a read deadline ends it.
//
// It is opened with protocol 0, which receives nothing, then gets its filter, then is bound to
// ETH_P_ALL on every interface: no packet reaches it before the filter is in place.
// PACKET_IGNORE_OUTGOING is deliberately not set: dnsmasq's queries are outgoing packets.

// ethPAll is ETH_P_ALL: every protocol, in both directions.
const ethPAll = 0x0003

// rcvBuf is the receive buffer asked for. Each queued packet costs the kernel's buffer
// accounting about a kilobyte however short the filter cut it, so the default (208 KB) holds
// ~200 packets: a burst of 50 queries seen twice each way on loopback. A lost reply would make
// its query look unanswered; 1 MB (when net.core.rmem_max allows) makes that a flood's problem.
const rcvBuf = 1 << 20

// openSocket opens the cooked packet socket with prog attached.
func openSocket(prog []insn) (*os.File, error) {
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, unavailable("socket", err)
	}
	if err := attachFD(fd, prog); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	// Best effort (the kernel caps it at net.core.rmem_max): see rcvBuf.
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll)}); err != nil {
		syscall.Close(fd)
		return nil, unavailable("bind", err)
	}
	return os.NewFile(uintptr(fd), "packet"), nil
}

// attach replaces the socket's filter with prog (atomically, in the kernel).
func attach(rc syscall.RawConn, prog []insn) error {
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = attachFD(int(fd), prog) }); cerr != nil {
		return cerr
	}
	return err
}

// attachFD sets SO_ATTACH_FILTER on fd.
func attachFD(fd int, prog []insn) error {
	if len(prog) == 0 {
		return fmt.Errorf("%w: empty filter", ErrUnavailable)
	}
	f := make([]syscall.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = syscall.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	// AttachLsf is setsockopt(SO_ATTACH_FILTER) on every architecture (socketcall on 386);
	// deprecated only in favour of x/net/bpf + x/sys/unix, which this module does not link.
	if err := syscall.AttachLsf(fd, f); err != nil {
		return unavailable("attach filter", err)
	}
	return nil
}

// unavailable wraps ErrUnavailable with why, in words an admin acts on.
func unavailable(op string, err error) error {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w: no CAP_NET_RAW (%s: %v)", ErrUnavailable, op, err)
	case errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EINVAL) && op == "socket",
		errors.Is(err, syscall.EPROTONOSUPPORT), errors.Is(err, syscall.ESOCKTNOSUPPORT):
		return fmt.Errorf("%w: no AF_PACKET (%s: %v)", ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
}

// htons converts a 16-bit value to network byte order, as the kernel expects the protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// drops returns and resets the count of packets the socket dropped (PACKET_STATISTICS'
// tp_drops; reading the statistics resets them). The struct is two native-endian 32-bit
// counters, tp_packets then tp_drops: package syscall has no getter for it, but
// GetsockoptIPMreq reads exactly 8 bytes into two 4-byte arrays, on every architecture.
func drops(fd int) uint32 {
	m, err := syscall.GetsockoptIPMreq(fd, syscall.SOL_PACKET, syscall.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return binary.NativeEndian.Uint32(m.Interface[:])
}
