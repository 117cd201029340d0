package probe

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The probe's sockets are made with package syscall and handed to package os, not opened with
// package net: leaving net out took 320 KB (a tenth) off the mips router binary (measured),
// for what is here a handful of system calls. A non-blocking descriptor given to os.NewFile is
// registered with the runtime's network poller, so (*os.File).Read, Write and the deadlines
// behave as they do on a net.Conn: no thread blocks, and a deadline or a cancel ends a wait.
//
// Deliberate differences from what net.Dialer would do: no SO_BROADCAST on IPv4 UDP sockets
// (a probe is for one upstream, so connecting to a broadcast address fails with EACCES,
// ErrUnreachable, instead of the query going out to every host), and no TCP_NODELAY or keepalive on the TCP retry (one write
// and one short exchange: neither has any effect).

// dialer opens the probe's sockets. The zero value is what Probe uses.
type dialer struct {
	// local, when valid, is bound as the source address before connecting. Probe never sets
	// it; tests use it to provoke errors from the router's own network (EADDRNOTAVAIL).
	local netip.Addr
}

// dialUDP returns a UDP socket connected to raddr: the kernel then delivers only datagrams
// from raddr and reports ICMP port unreachable as ECONNREFUSED on the next read or write. The
// kernel picks a random source port. raddr must not be an IPv4-mapped IPv6 address.
func (d dialer) dialUDP(raddr netip.AddrPort) (*os.File, error) {
	fd, err := d.connect(syscall.SOCK_DGRAM, raddr)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "udp"), nil
}

// dialTCP starts a TCP connection to raddr and returns its socket at once; awaitConnect
// waits for the handshake, within the file's write deadline.
func (d dialer) dialTCP(raddr netip.AddrPort) (*os.File, error) {
	fd, err := d.connect(syscall.SOCK_STREAM, raddr)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "tcp"), nil
}

// connect opens a non-blocking, close-on-exec socket of sotype for raddr's family, binds it to
// d.local when set and connects it. For TCP the connection may still be in progress. Errors
// are the system call's syscall.Errno (or a zone error), which socketError classifies.
func (d dialer) connect(sotype int, raddr netip.AddrPort) (int, error) {
	family, sa, err := sockaddr(raddr)
	if err != nil {
		return -1, err
	}
	fd, err := newSocket(family, sotype)
	if err != nil {
		return -1, err
	}
	if d.local.IsValid() {
		lfamily, lsa, err := sockaddr(netip.AddrPortFrom(d.local, 0))
		if err == nil && lfamily != family {
			err = syscall.EAFNOSUPPORT
		}
		if err == nil {
			err = syscall.Bind(fd, lsa)
		}
		if err != nil {
			syscall.Close(fd)
			return -1, err
		}
	}
	switch err := syscall.Connect(fd, sa); err {
	case nil:
	case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
		// A non-blocking TCP connect goes on in the kernel (EINTR too: it is not undone);
		// awaitConnect learns how it ended. UDP connects never get here.
	default:
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// awaitConnect waits until the TCP connect started by dialTCP completes or f's write deadline
// passes, and returns the connect's error (ECONNREFUSED...) or the deadline's.
func awaitConnect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var connErr error
	err = rc.Write(func(fd uintptr) bool {
		// Called once before any wait and again each time the poller reports the socket
		// writable, so a connect that completed before the wait began is not missed.
		soErr, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err != nil {
			connErr = err
			return true
		}
		switch errno := syscall.Errno(soErr); errno {
		case 0, syscall.EISCONN:
			// No error yet: connected only if the kernel names a peer. The poller can wake
			// a waiter spuriously, and before the handshake ends there is no peer yet.
			_, err := syscall.Getpeername(int(fd))
			return err == nil
		case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
			return false
		default:
			connErr = errno
			return true
		}
	})
	if err != nil {
		return err
	}
	return connErr
}

// sockaddr converts ap into a socket address and its family. An IPv6 zone, an interface name
// or index as in "fe80::1%eth0", becomes the scope ID.
func sockaddr(ap netip.AddrPort) (int, syscall.Sockaddr, error) {
	a := ap.Addr()
	if a.Is4() {
		return syscall.AF_INET, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	sa := &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if zone := a.Zone(); zone != "" {
		index, err := zoneIndex(zone)
		if err != nil {
			return 0, nil, err
		}
		sa.ZoneId = index
	}
	return syscall.AF_INET6, sa, nil
}

// zoneIndex returns the interface index a zone names: the zone itself when it is a number,
// else the index Linux publishes in /sys/class/net/NAME/ifindex.
func zoneIndex(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	if zone != "." && zone != ".." && !strings.ContainsRune(zone, '/') {
		if b, err := os.ReadFile("/sys/class/net/" + zone + "/ifindex"); err == nil {
			if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
				return uint32(n), nil
			}
		}
	}
	return 0, newError("no such network interface " + strconv.Quote(zone))
}
