package main

import (
	"net/netip"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/watchdog"
)

// observe opens the passive observer of dnsmasq's queries for the watchdog (observe_passive.go).
var observe func(ups []netip.AddrPort, timeout time.Duration) (watchdog.Observer, error)
