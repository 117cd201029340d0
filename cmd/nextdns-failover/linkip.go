package main

import (
	"context"
	"sync"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/linkip"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

// startLinkIP starts the linked-IP upkeep for url (option link_ip_url) every interval (option
// link_ip_interval; 0 means 30m) and returns its Keeper, whose Kick the daemon calls on SIGHUP
// (OpenWrt's WAN-up trigger reloads us). It does nothing and returns nil when url is empty.
// logf gets the Keeper's lines, failures marked "warning: ".
func startLinkIP(ctx context.Context, url string, interval time.Duration, logf func(string, ...any)) *linkip.Keeper {
	if url == "" {
		return nil
	}
	k := linkip.New(linkip.Config{URL: url, Interval: interval, Logf: logf})
	go k.Run(ctx)
	return k
}

// linkIPUpkeep keeps one Keeper running for the settings in force: a reload that changes
// link_ip_url or link_ip_interval stops the old one and starts a new one.
type linkIPUpkeep struct {
	ctx  context.Context
	logf func(string, ...any)

	mu       sync.Mutex
	url      string
	interval time.Duration
	k        *linkip.Keeper
	cancel   context.CancelFunc
}

// apply starts, restarts or stops the upkeep for url and interval; unchanged, it does nothing.
func (u *linkIPUpkeep) apply(url string, interval time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cancel != nil && url == u.url && interval == u.interval {
		return
	}
	if u.cancel != nil {
		u.cancel()
	}
	ctx, cancel := context.WithCancel(u.ctx)
	u.url, u.interval, u.cancel = url, interval, cancel
	u.k = startLinkIP(ctx, url, interval, u.logf)
}

// kick asks for a call now (SIGHUP: the WAN came up, or the config was reloaded).
func (u *linkIPUpkeep) kick() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.k != nil {
		u.k.Kick()
	}
}

// decorate puts the upkeep's last result into the status.
func (u *linkIPUpkeep) decorate(st *status.Status) {
	u.mu.Lock()
	k := u.k
	u.mu.Unlock()
	if k == nil {
		return
	}
	sn := k.Snapshot()
	st.LinkIP = &status.LinkIP{LastOK: sn.LastOK, Answer: sn.Answer, LastError: sn.LastError, Checked: sn.Checked}
}
