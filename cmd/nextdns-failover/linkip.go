package main

import (
	"context"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/linkip"
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
