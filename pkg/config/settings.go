// Package config turns the UCI package nextdns-failover into validated, typed Settings.
package config

import (
	"net/netip"
	"strconv"
	"time"
)

// Mode says which servers dnsmasq may ever see.
type Mode string

const (
	// Availability puts NextDNS alone in dnsmasq's list while it answers, and the backups
	// first while every NextDNS endpoint is down.
	Availability Mode = "availability"
	// Privacy never lists a non-NextDNS server; it only reorders the NextDNS endpoints.
	Privacy Mode = "privacy"
)

// Upstream is one DNS server as dnsmasq names it: an IP literal and a port.
type Upstream struct {
	netip.AddrPort
}

// String is the dnsmasq form: "9.9.9.9", "9.9.9.9#5353", "2a07:a8c0::ab:cd12" (port 53 omitted).
func (u Upstream) String() string {
	a := u.Addr().String()
	if u.Port() == 53 {
		return a
	}
	return a + "#" + strconv.Itoa(int(u.Port()))
}

// Settings is the validated configuration of the watchdog.
type Settings struct {
	File string // the UCI file these came from, for messages

	Enabled   bool
	Mode      Mode
	Primary   []Upstream // NextDNS endpoints, in preference order (at least one)
	Secondary []Upstream // backups, availability mode only

	ProbeName    string
	Interval     time.Duration // between rounds while all is well
	FastInterval time.Duration // between rounds after a failure and while failed over
	Timeout      time.Duration // one probe's limit
	FailAfter    int           // consecutive failed rounds before a primary is down
	RecoverAfter int           // consecutive good rounds before it is up again
	HoldDown     time.Duration // least time failed over before failing back

	DHCPConfig      string // dhcp UCI file holding the dnsmasq instance
	DnsmasqInstance string // section name; empty = the first dnsmasq section
	ServersFile     string // the servers-file we own
	PIDFile         string // dnsmasq's pid file; empty = derived from the instance
	StatusFile      string // where the daemon publishes its state
	MetricsFile     string // optional Prometheus textfile; empty = none

	Passive        bool          // watch dnsmasq's own queries (a packet socket) as health evidence
	LinkIPURL      string        // NextDNS "link IP" URL (https://); empty = none. Secret: never log it
	LinkIPInterval time.Duration // how often the link IP URL is called
}
