package main

import (
	"context"
	"net/netip"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/health"
	"github.com/nextdns-failover/nextdns-failover/pkg/passive"
	"github.com/nextdns-failover/nextdns-failover/pkg/watchdog"
)

func init() { observe = openPassive }

// passiveObserver runs a passive.Watcher for the watchdog.
type passiveObserver struct {
	w      *passive.Watcher
	cancel context.CancelFunc
	done   chan struct{}
}

// openPassive opens the packet socket; its error (wrapping passive.ErrUnavailable) says why
// not, and the status shows it as "passive: off (<why>)".
func openPassive(ups []netip.AddrPort, timeout time.Duration) (watchdog.Observer, error) {
	w, err := passive.Open(ups, timeout, time.Now)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &passiveObserver{w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		w.Run(ctx)
	}()
	return o, nil
}

func (o *passiveObserver) Suspect() <-chan struct{} { return o.w.Suspect() }

func (o *passiveObserver) Err() error { return o.w.Err() }

func (o *passiveObserver) Take(now time.Time) []health.Seen { return seenOf(o.w.Take(now)) }

func (o *passiveObserver) SetUpstreams(ups []netip.AddrPort, timeout time.Duration) error {
	return o.w.SetUpstreams(ups, timeout)
}

func (o *passiveObserver) Close() error {
	o.cancel()
	err := o.w.Close()
	<-o.done
	return err
}

func seenOf(st []passive.Stats) []health.Seen {
	out := make([]health.Seen, len(st))
	for i, s := range st {
		out[i] = health.SeenFrom(s)
	}
	return out
}
