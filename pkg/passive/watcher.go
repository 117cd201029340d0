package passive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrUnavailable is wrapped by Open's error when this system cannot watch (no CAP_NET_RAW, no
// AF_PACKET): the daemon then works from its probes alone.
var ErrUnavailable = errors.New("passive observation unavailable")

// minExpireDelay coalesces the expiry timer: it fires at the earliest pending query's
// deadline but never sooner than this after the previous firing, so a burst of queries costs
// a few wake-ups, not one each. A query is counted Unanswered at most this late.
const minExpireDelay = 50 * time.Millisecond

// Watcher reads dnsmasq's queries to its upstreams and their replies from a packet socket and
// keeps a Ledger of them. Its methods are safe for concurrent use.
//
// At idle it costs no CPU: the read blocks in the runtime's poller (no thread, no timer), and
// the expiry timer is armed only while some query awaits its reply.
type Watcher struct {
	f       *os.File
	now     func() time.Time
	suspect chan struct{}

	mu     sync.Mutex
	ledger *Ledger
	timer  *time.Timer // expiry; nil until first armed
	armed  bool
	closed bool
	drops  uint64 // packets the kernel dropped for want of buffer space, so far
	err    error  // why Run stopped on its own (a socket error), nil while it reads
}

// Open opens the packet socket with a filter for upstreams and returns a Watcher that counts a
// query unanswered after timeout and reads the time from now. Its error wraps ErrUnavailable
// and says why (for example "no CAP_NET_RAW" or "no AF_PACKET").
func Open(upstreams []netip.AddrPort, timeout time.Duration, now func() time.Time) (*Watcher, error) {
	prog, err := assemble(upstreams)
	if err != nil {
		return nil, err
	}
	f, err := openSocket(prog)
	if err != nil {
		return nil, err
	}
	return &Watcher{
		f:       f,
		now:     now,
		suspect: make(chan struct{}, 1),
		ledger:  NewLedger(upstreams, timeout),
	}, nil
}

// assemble builds the filter for upstreams in the kernel's form.
func assemble(upstreams []netip.AddrPort) ([]insn, error) {
	prog, err := filter(upstreams)
	if err != nil {
		return nil, errors.Join(ErrUnavailable, err)
	}
	return prog, nil
}

// Run reads packets until ctx ends or the Watcher is closed, feeding the ledger.
func (w *Watcher) Run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 2*maxSnap) // the filter cuts every packet to at most maxSnap
	for ctx.Err() == nil {
		n, err := w.f.Read(buf)
		switch {
		case err == nil:
			w.handle(buf[:n])
		case err == io.EOF, errors.Is(err, syscall.ENETDOWN), errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.EINTR):
			// An empty packet, or an interface going down while a packet was queued: go on.
		default: // closed, deadline (ctx ended), or a socket error
			w.mu.Lock()
			if !w.closed && ctx.Err() == nil {
				w.err = fmt.Errorf("the packet socket failed: %w", err)
			}
			w.mu.Unlock()
			return
		}
	}
}

// Err says why Run stopped reading on its own (a socket error: the Watcher sees nothing
// more), nil while it reads, after Close and after its context ended.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// handle parses one packet and records it.
func (w *Watcher) handle(b []byte) {
	at := w.now()
	w.mu.Lock()
	p, ok := parse(b, at, w.ledger.index)
	if ok {
		w.ledger.Observe(p)
		if p.Query && !w.armed && !w.closed && w.ledger.pendingCount() > 0 {
			w.arm(w.ledger.timeout)
		}
	}
	grew := w.takeGrew()
	w.mu.Unlock()
	if grew {
		w.nudge()
	}
}

// arm starts the expiry timer to fire after d. w.mu is held.
func (w *Watcher) arm(d time.Duration) {
	w.armed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.expire)
		return
	}
	w.timer.Reset(d)
}

// expire is the expiry timer's function: Expire, then re-arm for the next pending deadline.
func (w *Watcher) expire() {
	w.mu.Lock()
	w.checkDrops()
	now := w.now()
	next := w.ledger.expire(now)
	w.armed = false
	if !next.IsZero() && !w.closed {
		w.arm(max(next.Sub(now), minExpireDelay))
	}
	grew := w.takeGrew()
	w.mu.Unlock()
	if grew {
		w.nudge()
	}
}

// checkDrops asks the kernel whether the socket dropped packets since the last call (its
// receive buffer was full) and, if so, tells the ledger. w.mu is held.
func (w *Watcher) checkDrops() {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return
	}
	var n uint32
	rc.Control(func(fd uintptr) { n = drops(int(fd)) })
	if n > 0 {
		w.drops += uint64(n)
		w.ledger.lost()
	}
}

// takeGrew reports and clears the ledger's note that a Silent or Failing run grew. w.mu is held.
func (w *Watcher) takeGrew() bool {
	g := w.ledger.grew
	w.ledger.grew = false
	return g
}

// nudge signals Suspect without blocking.
func (w *Watcher) nudge() {
	select {
	case w.suspect <- struct{}{}:
	default:
	}
}

// Suspect returns a channel (buffered, capacity 1) that receives when some upstream's Silent
// or Failing run grew. Package health decides whether that is enough to act on.
func (w *Watcher) Suspect() <-chan struct{} { return w.suspect }

// Take returns every upstream's Stats in config order and starts a new window (Ledger.Take).
func (w *Watcher) Take(now time.Time) []Stats {
	w.mu.Lock()
	w.checkDrops()
	s := w.ledger.Take(now)
	grew := w.takeGrew()
	w.mu.Unlock()
	if grew {
		w.nudge()
	}
	return s
}

// SetUpstreams replaces the upstreams and the timeout (a reload): the kernel filter is
// replaced at once, and upstreams still in the list keep their stats and pending queries.
// On error the Watcher keeps the previous list.
func (w *Watcher) SetUpstreams(ups []netip.AddrPort, timeout time.Duration) error {
	prog, err := assemble(ups)
	if err != nil {
		return err
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	if err := attach(rc, prog); err != nil {
		return err
	}
	w.mu.Lock()
	w.ledger.reset(ups, timeout)
	w.mu.Unlock()
	return nil
}

// Close closes the socket; Run returns.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	return w.f.Close()
}
