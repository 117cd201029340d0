package probe

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// probeError is a short, log-friendly message that wraps a sentinel and, when known, the
// underlying cause (a syscall.Errno, a context error), so errors.Is finds either.
type probeError struct {
	msg  string
	errs []error
}

func (e *probeError) Error() string   { return e.msg }
func (e *probeError) Unwrap() []error { return e.errs }

// newError returns an error reading msg that wraps every non-nil error in errs.
//
// Not inlined: inlined at its 25 call sites it cost the mips binary 6.8 KB of code (measured).
//
//go:noinline
func newError(msg string, errs ...error) error {
	kept := errs[:0:0]
	for _, err := range errs {
		if err != nil {
			kept = append(kept, err)
		}
	}
	return &probeError{msg: msg, errs: kept}
}

// socketError classifies an error from creating, connecting, writing or reading a socket.
// op names the step for the message ("connect", "send", "receive", "tcp connect", ...).
//
// Connection refused is the server's host saying nothing listens on the port (ICMP port
// unreachable on UDP, RST on TCP): ErrUnreachable. Routing and addressing errors from connect or
// send come from the router itself: ErrOffline. The same errnos on receive arrive as ICMP from a
// remote router, so they describe the path to the server, not the router: ErrUnreachable.
func socketError(op string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return newError(op+": "+err.Error(), ErrUnreachable, err)
	}
	if errno == syscall.ECONNREFUSED {
		if op == "connect" || op == "send" || op == "receive" {
			return newError("connection refused (ICMP port unreachable)", ErrUnreachable, err)
		}
		return newError(op+": connection refused", ErrUnreachable, err)
	}
	if op != "receive" && op != "tcp receive" && isOffline(errno) {
		return newError("offline: "+op+": "+errno.Error(), ErrOffline, err)
	}
	return newError(op+": "+errno.Error(), ErrUnreachable, err)
}

// isOffline reports whether errno, reported synchronously by connect or send, comes from the
// router's own routing table or interfaces before anything reached the upstream.
func isOffline(errno syscall.Errno) bool {
	switch errno {
	case syscall.ENETUNREACH, // no route to the network
		syscall.EHOSTUNREACH,  // "no route to host" (a local route or neighbour failure)
		syscall.ENETDOWN,      // the outgoing interface is down
		syscall.EADDRNOTAVAIL, // no usable source address (IPv6 before SLAAC, WAN without IP)
		syscall.EAFNOSUPPORT:  // the address family is disabled on this router (IPv6 off)
		return true
	}
	return false
}

// noAnswer explains a UDP probe that ended without a matching reply: a bare timeout, a timeout
// during which only mismatched or malformed replies arrived (possible spoofing or a broken
// server), or the caller's context ending first.
func noAnswer(ctx context.Context, budget time.Duration, sends, mismatched, malformed int) error {
	tail := " (" + plural(sends, "send", "sends") + ")"
	if errors.Is(ctx.Err(), context.Canceled) {
		return newError("canceled"+tail, ErrTimeout, ctx.Err())
	}
	in := roundDuration(budget).String()
	switch {
	case mismatched > 0 && malformed > 0:
		return newError(strconv.Itoa(malformed)+" malformed and "+plural(mismatched, "mismatched reply", "mismatched replies")+
			", no answer in "+in+tail, ErrMismatch, ErrMalformed)
	case mismatched > 0:
		return newError(plural(mismatched, "mismatched reply", "mismatched replies")+", no answer in "+in+tail, ErrMismatch)
	case malformed > 0:
		return newError(plural(malformed, "malformed reply", "malformed replies")+", no answer in "+in+tail, ErrMalformed)
	}
	return newError("timeout after "+in+tail, ErrTimeout)
}

// tcpError classifies an error from the TCP retry after a truncated UDP reply.
func tcpError(op string, err error, budget time.Duration) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return newError("tcp: timeout after "+roundDuration(budget).String()+" (truncated UDP reply)", ErrTimeout, err)
	case errors.Is(err, context.Canceled):
		return newError("tcp: canceled", ErrTimeout, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newError("tcp: connection closed before a full reply", ErrMalformed, err)
	}
	return socketError(op, err)
}

// plural formats n with the singular or plural noun.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// roundDuration keeps messages short: "2s", "1.5s", "250ms".
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
