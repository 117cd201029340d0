package watchdog

// Passive evidence (issue 11): the observer's view of dnsmasq's own queries, scripted per
// virtual time, with the nudges the real watcher would send.

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/health"
)

// client is a LAN sending queries to the first NextDNS endpoint, as the observer sees it:
// answered until dark, then silent (one more unanswered query every 100 ms after the
// timeout). quietUntil: no client traffic before that time (an idle LAN).
type client struct {
	dark, quietUntil time.Duration
	lastTake         time.Duration
	servfail         bool
}

func (c *client) seen(at time.Duration, t0 time.Time) []health.Seen {
	defer func() { c.lastTake = at }()
	out := make([]health.Seen, 3)
	if at < c.quietUntil {
		return out
	}
	first := &out[0]
	switch {
	case at < c.dark:
		first.Answered, first.RTT, first.LastReply = 10, 15*time.Millisecond, t0.Add(at)
	case c.servfail:
		first.Failing = int((at-c.dark)/(100*time.Millisecond)) + 1
		first.LastReply = t0.Add(at)
	default:
		first.LastReply = t0.Add(max(c.dark, c.quietUntil))
		if c.dark < c.quietUntil {
			first.LastReply = t0.Add(c.dark - time.Second)
		}
		if since := at - max(c.dark, c.quietUntil) - time.Second; since >= 0 {
			first.Silent = int(since/(100*time.Millisecond)) + 1
		}
		if c.quietUntil > c.dark { // one query only, from an idle LAN
			first.Silent = min(first.Silent, 1)
		}
		if c.lastTake < c.dark && c.dark > 0 {
			first.Answered, first.RTT = 10, 15*time.Millisecond
		}
	}
	return out
}

func passiveWorld(t *testing.T, end time.Duration, c *client, down func(time.Duration, netip.AddrPort) bool, nudges ...time.Duration) (*world, *Watchdog) {
	w, wd := newWorld(t, settings(t, ""), end, down)
	w.failCost = time.Second // a failed round takes the whole 1 s timeout
	w.seen = func(at time.Duration) []health.Seen { return c.seen(at, w.t0) }
	w.nudges = nudges
	return w, wd
}

func failoverAt(w *world) time.Duration {
	for _, wr := range w.writes {
		if strings.Contains(wr.content, "state: failover") {
			return wr.at
		}
	}
	return -1
}

// A blackhole seen on the wire fails over within a confirmation probe of the second silent
// query: before any probe round could have (the next one is seconds away).
func TestPassiveBlackholeFailsOverAtOnce(t *testing.T) {
	const dark = 31*time.Second + 500*time.Millisecond
	c := &client{dark: dark}
	// The watcher nudges when the second query goes unanswered past the 1 s timeout.
	w, wd := passiveWorld(t, 60*time.Second, c, func(at time.Duration, a netip.AddrPort) bool {
		return isPrimary(a) && at >= dark
	}, dark+time.Second+100*time.Millisecond)
	w.run(wd, nil, nil)
	at := failoverAt(w)
	if at < 0 || at > dark+time.Second+100*time.Millisecond+300*time.Millisecond {
		t.Fatalf("failover at %s, want within a confirmation (<= 300 ms) of the nudge at %s; writes %v", at, dark+1100*time.Millisecond, w.writes)
	}
	if got := servers(w.writes[1].content); got != "9.9.9.9" {
		t.Errorf("first write after the outage %q: want the backup alone, no dead standby endpoint first", got)
	}
	var confirm *probeRound
	for i := range w.rounds {
		if w.rounds[i].timeout < time.Second {
			confirm = &w.rounds[i]
			break
		}
	}
	if confirm == nil || confirm.timeout != 200*time.Millisecond || len(confirm.servers) != 3 {
		t.Errorf("confirmation %+v: want one probe of the suspect, the standby endpoint and the backup with a 200 ms timeout", confirm)
	}
	if w.last.Counters.Confirms == 0 {
		t.Errorf("counters %+v: no confirmation counted", w.last.Counters)
	}
}

// Clients that keep getting answers keep NextDNS from being probed: only the standby
// endpoint is, once a minute (and the backup, which costs no NextDNS quota).
func TestPassiveTrafficSavesProbes(t *testing.T) {
	c := &client{dark: time.Hour}
	w, wd := passiveWorld(t, 10*time.Minute, c, func(time.Duration, netip.AddrPort) bool { return false })
	w.run(wd, nil, nil)
	n := w.probes["45.90.28.0"] + w.probes["45.90.30.0"]
	if n > 2*10+2 {
		t.Errorf("%d probes reached NextDNS in 10 minutes of a busy LAN (28.0: %d, 30.0: %d): want at most 2 a minute", n, w.probes["45.90.28.0"], w.probes["45.90.30.0"])
	}
	if w.probes["45.90.28.0"] > 1 {
		t.Errorf("the endpoint carrying the traffic was probed %d times", w.probes["45.90.28.0"])
	}
	t.Logf("probes in 10 minutes: %v", w.probes)
}

// Random loss: now and then a query goes unanswered, with answers all around it. No
// suspicion, no confirmation, no switch.
func TestPassiveRandomLossNoSwitch(t *testing.T) {
	var nudges []time.Duration
	for at := 3 * time.Second; at < 10*time.Minute; at += 3 * time.Second {
		nudges = append(nudges, at)
	}
	w, wd := newWorld(t, settings(t, ""), 10*time.Minute, func(time.Duration, netip.AddrPort) bool { return false })
	w.nudges = nudges
	w.seen = func(at time.Duration) []health.Seen {
		out := make([]health.Seen, 3)
		out[0] = health.Seen{Answered: 27, RTT: 15 * time.Millisecond, Silent: 1, LastReply: w.t0.Add(at - 40*time.Millisecond)}
		return out
	}
	w.run(wd, nil, nil)
	if c := w.last.Counters; c.Confirms != 0 || c.Switches != 2 || c.Failovers != 0 {
		t.Errorf("counters %+v: single lost queries among answered ones must not even be confirmed", c)
	}
}

// After an idle LAN, the first query into an outage: one query unanswered past the timeout
// while nothing came back for as long, and the round probe failed too: down at once, before
// a musl client resends (2.5 s after its query).
func TestPassiveIdleLANFirstQuery(t *testing.T) {
	const dark, query = 61 * time.Second, 64*time.Second + 900*time.Millisecond
	c := &client{dark: dark, quietUntil: query}
	w, wd := passiveWorld(t, 90*time.Second, c, func(at time.Duration, a netip.AddrPort) bool {
		return isPrimary(a) && at >= dark
	}, query+time.Second)
	w.run(wd, nil, nil)
	at := failoverAt(w)
	if at < 0 || at >= query+2500*time.Millisecond {
		t.Fatalf("failover at %s, want before the client's resend at %s; writes %v", at, query+2500*time.Millisecond, w.writes)
	}
	t.Logf("query at %s, failover at %s", query, at)
}

// On an idle LAN one of our own probes is lost (the observer sees it unanswered too): that is
// one failed round, not a confirmed outage.
func TestPassiveOwnLostProbeIsNoEvidence(t *testing.T) {
	c := &client{dark: time.Hour, quietUntil: time.Hour}
	w, wd := passiveWorld(t, 90*time.Second, c, func(at time.Duration, a netip.AddrPort) bool {
		return a.Addr().String() == "45.90.28.0" && at >= 30*time.Second && at < 30500*time.Millisecond
	}, 31*time.Second)
	w.run(wd, nil, nil)
	if c := w.last.Counters; c.Failovers != 0 || len(w.writes) != 2 {
		t.Errorf("counters %+v, writes %d: one lost probe must change nothing", c, len(w.writes))
	}
}

// One NextDNS endpoint of two dies under traffic: it leaves the list at once; no failover.
func TestPassiveOneEndpointDead(t *testing.T) {
	const dark = 30 * time.Second
	c := &client{dark: dark}
	w, wd := passiveWorld(t, 90*time.Second, c, func(at time.Duration, a netip.AddrPort) bool {
		return a.Addr().String() == "45.90.28.0" && at >= dark
	}, dark+1100*time.Millisecond)
	w.run(wd, nil, nil)
	if len(w.writes) < 2 || servers(w.writes[1].content) != "45.90.30.0" || w.writes[1].at > dark+1500*time.Millisecond {
		t.Fatalf("writes %v: want the live endpoint alone within a confirmation", w.writes)
	}
	if c := w.last.Counters; c.Failovers != 0 {
		t.Errorf("counters %+v: one dead endpoint is no failover", c)
	}
}

// A SERVFAIL storm: three in a row make a suspicion; the confirmation fails; failover.
func TestPassiveServfailStorm(t *testing.T) {
	const dark = 32 * time.Second
	c := &client{dark: dark, servfail: true}
	w, wd := passiveWorld(t, 60*time.Second, c, func(at time.Duration, a netip.AddrPort) bool {
		return isPrimary(a) && at >= dark
	}, dark+250*time.Millisecond)
	w.run(wd, nil, nil)
	if at := failoverAt(w); at < 0 || at > dark+600*time.Millisecond {
		t.Fatalf("failover at %s, want within 600 ms of the storm; writes %v", at, w.writes)
	}
}

// Without the observer the status says why, and everything works as before.
func TestPassiveOffSaysWhy(t *testing.T) {
	w, wd := newWorld(t, settings(t, ""), 20*time.Second, func(time.Duration, netip.AddrPort) bool { return false })
	w.run(wd, nil, nil)
	if w.last.Passive != "off (no CAP_NET_RAW)" {
		t.Errorf("passive %q", w.last.Passive)
	}
	w, wd = newWorld(t, settings(t, "\toption passive '0'\n"), 20*time.Second, func(time.Duration, netip.AddrPort) bool { return false })
	w.run(wd, nil, nil)
	if w.last.Passive != "off (option passive '0')" {
		t.Errorf("passive %q", w.last.Passive)
	}
	c := &client{dark: time.Hour}
	w, wd = passiveWorld(t, 20*time.Second, c, func(time.Duration, netip.AddrPort) bool { return false })
	w.run(wd, nil, nil)
	if w.last.Passive != "on" {
		t.Errorf("passive %q", w.last.Passive)
	}
}

// An observer that stops on its own (its socket failed) is closed: the status says passive is
// off and why, one warning is logged, and probing goes on as without it.
func TestPassiveObserverThatStopsIsOff(t *testing.T) {
	c := &client{dark: time.Hour}
	// A busy LAN probes little (once a minute): the failure is noticed at the next round.
	w, wd := passiveWorld(t, 3*time.Minute, c, func(time.Duration, netip.AddrPort) bool { return false })
	w.onRound = func(at time.Duration, w *world) {
		if at >= 10*time.Second && w.observerErr == nil {
			w.observerErr = errors.New("the packet socket failed: network is down")
		}
	}
	w.run(wd, nil, nil)
	if want := "off (the packet socket failed: network is down)"; w.last.Passive != want {
		t.Errorf("passive %q, want %q", w.last.Passive, want)
	}
	n := 0
	for _, l := range w.logs {
		if strings.Contains(l, "warning: passive observation off: the packet socket failed") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d warnings about the stopped observer, want 1; log:\n%s", n, strings.Join(w.logs, "\n"))
	}
	for _, h := range w.hooks {
		if h.New == "failover" {
			t.Errorf("failed over after the observer stopped: %+v", h)
		}
	}
}
