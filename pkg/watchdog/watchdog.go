// Package watchdog is the daemon's loop: probe the upstreams, decide with package health, write
// the servers-file in place and signal dnsmasq on a change, publish the status. Its
// collaborators (prober, file writer, signaller, clock, logger) are passed in, so tests swap them.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/dnsmasq"
	"github.com/nextdns-failover/nextdns-failover/pkg/health"
	"github.com/nextdns-failover/nextdns-failover/pkg/probe"
	"github.com/nextdns-failover/nextdns-failover/pkg/status"
)

// Prober runs one probe round over servers, results in the same order.
type Prober interface {
	Round(ctx context.Context, servers []netip.AddrPort) []probe.Result
}

// Signaller tells dnsmasq to re-read its servers-file (SIGHUP) and returns the pid it signalled.
type Signaller interface {
	Reload() (int, error)
}

// Clock is time for the loop: Now for timestamps (wall and monotonic), After for the pacing.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Change describes a state change, for hooks.
type Change struct {
	Old, New string // states: healthy, failover, offline, stopped
	Reason   string
	Servers  []string
}

// Deps are the watchdog's collaborators. Only Load and Config are required; nil ones get the
// real thing.
type Deps struct {
	Config string                                    // the config file's path, for the status
	Load   func() (*config.Settings, error)          // reads and validates the config
	Prober func(*config.Settings) Prober             // nil: a probe.Prober from the settings
	Signal func(*config.Settings) Signaller          // nil: dnsmasq.Signaller on PIDFile (resolved by PIDFile)
	Write  func(path string, b []byte) (bool, error) // nil: dnsmasq.WriteInPlace
	Read   func(path string) ([]byte, error)         // nil: os.ReadFile
	// PIDFile resolves the pid file of the settings (pid_file, or from the dhcp instance).
	PIDFile  func(*config.Settings) (string, error)
	Publish  func(*config.Settings, *status.Status) error // nil: status.Write to StatusFile
	OnChange func(Change)                                 // state changes (hooks); may be nil
	Clock    Clock
	Logf     func(format string, args ...any) // state changes and problems
	Debugf   func(format string, args ...any) // per-probe detail (-v)
	Version  string
}

// Watchdog is one running daemon.
type Watchdog struct {
	d   Deps
	s   *config.Settings
	m   *health.Machine
	sig Signaller

	state    string // what the status says: healthy, failover, offline
	since    time.Time
	reason   string
	content  []byte // what the servers-file should hold
	servers  []string
	pending  bool   // a signal is owed to dnsmasq (the last one failed)
	problem  string // last error acting on dnsmasq, logged once
	lastRes  []probe.Result
	lastAt   time.Time // time of the last round
	lastGood []time.Duration
	count    status.Counters
	override Override
}

// Override forces a side: "primary" or "secondary"; zero Until = until restart.
type Override struct {
	Side  string
	Until time.Time
}

// New validates the config and returns a watchdog that has not yet touched anything.
func New(d Deps) (*Watchdog, error) {
	if d.Clock == nil {
		d.Clock = realClock{}
	}
	if d.Logf == nil {
		d.Logf = func(string, ...any) {}
	}
	if d.Debugf == nil {
		d.Debugf = func(string, ...any) {}
	}
	if d.Write == nil {
		d.Write = dnsmasq.WriteInPlace
	}
	if d.Read == nil {
		d.Read = os.ReadFile
	}
	if d.Publish == nil {
		d.Publish = func(s *config.Settings, st *status.Status) error { return status.Write(s.StatusFile, st) }
	}
	s, err := d.Load()
	if err != nil {
		return nil, err
	}
	w := &Watchdog{d: d}
	w.apply(s)
	return w, nil
}

// apply puts settings in force; health is kept when the upstream lists are unchanged.
func (w *Watchdog) apply(s *config.Settings) {
	old := w.s
	w.s = s
	now := w.d.Clock.Now()
	nsec := len(s.Secondary)
	if s.Mode == config.Privacy {
		nsec = 0
	}
	if old == nil || !sameUpstreams(old, s) {
		w.m = health.NewMachine(len(s.Primary), nsec, s.FailAfter, s.RecoverAfter, s.Mode == config.Privacy, s.HoldDown, now)
		w.lastRes, w.lastGood = nil, make([]time.Duration, len(s.Primary)+nsec)
		if w.state == "" {
			w.state, w.since, w.reason = string(health.Healthy), now, "started"
		}
	} else {
		for i := range w.m.Primary {
			w.m.Primary[i].FailAfter, w.m.Primary[i].RecoverAfter = s.FailAfter, s.RecoverAfter
		}
		for i := range w.m.Secondary {
			w.m.Secondary[i].FailAfter, w.m.Secondary[i].RecoverAfter = s.FailAfter, s.RecoverAfter
		}
		if w.m.Decider.HoldDown != s.HoldDown {
			w.m.Decider.SetHoldDown(s.HoldDown) // keeps the state: a failover in progress stays
		}
	}
	w.sig = nil
}

func sameUpstreams(a, b *config.Settings) bool {
	return a.Mode == b.Mode && slices.Equal(a.Primary, b.Primary) && slices.Equal(a.Secondary, b.Secondary)
}

// holds reports whether the servers-file holds this config's list for st (availability mode).
func (w *Watchdog) holds(st dnsmasq.State) bool {
	if w.s.Mode != config.Availability || len(w.s.Secondary) == 0 {
		return false
	}
	want, err := dnsmasq.Render(st, dnsmasq.Plan(w.s, st, nil))
	if err != nil {
		return false
	}
	have, err := w.d.Read(w.s.ServersFile)
	return err == nil && string(have) == string(want)
}

// upstreams probed each round: the primaries, then (availability mode) the secondaries.
func (w *Watchdog) upstreams() []config.Upstream {
	out := append([]config.Upstream{}, w.s.Primary...)
	if w.s.Mode == config.Availability {
		out = append(out, w.s.Secondary...)
	}
	return out
}

// Run writes the healthy list (or keeps the failover list it finds: a restart while failed
// over), signals dnsmasq, and probes until ctx ends; then it writes the stopped list (a static strict-order setup), signals dnsmasq and returns nil. A value on reload
// re-reads the config (an invalid one is logged and the last good one stays) and probes at once.
func (w *Watchdog) Run(ctx context.Context, reload <-chan struct{}, control <-chan Override) error {
	w.d.Logf("started: %s mode, %d NextDNS and %d backup upstreams, interval %s (fast %s), timeout %s, fail after %d, recover after %d, hold-down %s",
		w.s.Mode, len(w.s.Primary), len(w.s.Secondary), w.s.Interval, w.s.FastInterval, w.s.Timeout, w.s.FailAfter, w.s.RecoverAfter, w.s.HoldDown)
	// One signal at start even if the file is unchanged: a daemon that died between a write and
	// its signal left dnsmasq on an older list.
	w.pending = true
	first := dnsmasq.Healthy
	if w.holds(dnsmasq.Failover) {
		// Restarted while failed over (procd respawns a crashed daemon): keep the backups first
		// rather than go back to NextDNS for fail_after rounds and fail over again.
		w.m.StartFailedOver(w.d.Clock.Now())
		w.state, w.reason = string(health.Failover), "restarted while failed over (the servers-file holds the failover list)"
		first = dnsmasq.Failover
		w.d.Logf("%s", w.reason)
	}
	w.act(first)
	w.publish()
	next := time.Duration(0)
	for {
		// Requests first: a reload or an override already waiting does not wait for the timer.
		var timer <-chan time.Time
		if len(reload) == 0 && len(control) == 0 {
			timer = w.d.Clock.After(next)
		}
		select {
		case <-ctx.Done():
			w.stop()
			return nil
		case <-reload:
			w.reload()
			next = 0
			continue
		case o := <-control:
			w.setOverride(o)
			next = 0
			continue
		case <-timer:
		}
		start := w.d.Clock.Now()
		w.round(ctx)
		if ctx.Err() != nil {
			continue
		}
		pace := w.s.Interval
		if w.m.Unsettled() || w.override.Side != "" {
			pace = w.s.FastInterval
		}
		next = pace - w.d.Clock.Now().Sub(start)
		if next < 0 {
			next = 0
		}
	}
}

func (w *Watchdog) reload() {
	w.count.Reloads++
	s, err := w.d.Load()
	if err != nil {
		w.d.Logf("reload: config rejected, the previous one stays in force:\n%v", err)
		w.publish()
		return
	}
	if !s.Enabled {
		w.d.Logf("reload: enabled is 0; the service stops the watchdog (the previous config stays until then)")
	}
	changed := !sameUpstreams(w.s, s)
	w.apply(s)
	if changed {
		w.d.Logf("reload: upstreams changed; health starts over, writing the healthy list")
		w.state, w.since, w.reason = string(health.Healthy), w.d.Clock.Now(), "config reloaded"
		w.act(dnsmasq.Healthy)
	} else {
		w.d.Logf("reload: config re-read; probing now")
	}
	w.publish()
}

func (w *Watchdog) setOverride(o Override) {
	switch o.Side {
	case "", "auto":
		if w.override.Side != "" {
			w.d.Logf("override lifted: back to automatic")
		}
		w.override = Override{}
	case "secondary":
		if w.s.Mode == config.Privacy || len(w.s.Secondary) == 0 {
			w.d.Logf("override refused: force secondary needs availability mode and backups")
			return
		}
		fallthrough
	case "primary":
		w.override = o
		until := "until restart"
		if !o.Until.IsZero() {
			until = "until " + o.Until.Format(time.DateTime)
		}
		w.d.Logf("override: forced to %s %s", o.Side, until)
	}
}

// round probes every upstream once and acts on the decision.
func (w *Watchdog) round(ctx context.Context) {
	ups := w.upstreams()
	addrs := make([]netip.AddrPort, len(ups))
	for i, u := range ups {
		addrs[i] = u.AddrPort
	}
	p := w.prober()
	res := p.Round(ctx, addrs)
	if ctx.Err() != nil {
		return
	}
	now := w.d.Clock.Now()
	w.count.Rounds++
	np := len(w.s.Primary)
	ok := make([]bool, len(res))
	for i, r := range res {
		ok[i] = r.Up
		w.count.Probes++
		if !r.Up {
			w.count.ProbeErrors++
		}
		if r.Up {
			w.lastGood[i] = r.RTT
			w.d.Debugf("probe %s: %s in %s", ups[i], r.Rcode, r.RTT.Round(10*time.Microsecond))
		} else {
			w.d.Debugf("probe %s: %v", ups[i], r.Err)
		}
	}
	before := append(w.m.PrimaryUp(), w.m.SecondaryUp()...)
	dec := w.m.Round(now, ok[:np], ok[np:])
	after := append(w.m.PrimaryUp(), w.m.SecondaryUp()...)
	w.lastRes, w.lastAt = res, now
	for i := range after {
		if before[i] == after[i] {
			continue
		}
		t := w.tracker(i)
		if after[i] {
			w.d.Logf("upstream %s (%s) up after %d good rounds, rtt %s", ups[i], role(i, np), t.Good, res[i].RTT.Round(100*time.Microsecond))
		} else {
			w.d.Logf("upstream %s (%s) down after %d failed rounds: %v", ups[i], role(i, np), t.Bad, res[i].Err)
		}
	}

	if o := w.override; o.Side != "" && !o.Until.IsZero() && !now.Before(o.Until) {
		w.d.Logf("override to %s expired: back to automatic", o.Side)
		w.override = Override{}
	}
	newState, list := string(dec.State), dnsmasq.State(dec.List)
	reason := dec.Reason
	if dec.State == health.Offline && allOffline(res) {
		reason = fmt.Sprintf("the router's own network is down (%v); list unchanged", res[0].Err)
	}
	if w.override.Side != "" {
		newState, list = "forced-"+w.override.Side, dnsmasq.Healthy
		if w.override.Side == "secondary" {
			list = dnsmasq.Failover
		}
		reason = "manual override (nextdns-failover force " + w.override.Side + ")"
	}
	if newState != w.state {
		old := w.state
		w.state, w.since, w.reason = newState, now, reason
		switch {
		case newState == string(health.Failover):
			w.count.Failovers++
		case newState == string(health.Healthy) && old == string(health.Failover):
			w.count.Failbacks++
		}
		w.d.Logf("state %s -> %s: %s", old, newState, reason)
		if newState != string(health.Offline) {
			w.act(list)
		}
		if w.d.OnChange != nil {
			w.d.OnChange(Change{Old: old, New: newState, Reason: reason, Servers: w.servers})
		}
	} else {
		w.reason = reason
		if newState != string(health.Offline) {
			// Also restores the file if someone else changed it, and reorders primaries by health.
			w.act(list)
		} else if w.pending {
			w.signal()
		}
	}
	w.publish()
}

// allOffline reports whether every probe failed on the router's side (no route, no address).
func allOffline(res []probe.Result) bool {
	for _, r := range res {
		if !r.Offline {
			return false
		}
	}
	return len(res) > 0
}

func (w *Watchdog) tracker(i int) *health.Tracker {
	if i < len(w.m.Primary) {
		return &w.m.Primary[i]
	}
	return &w.m.Secondary[i-len(w.m.Primary)]
}

func role(i, np int) string {
	if i < np {
		return "primary"
	}
	return "secondary"
}

func (w *Watchdog) prober() Prober {
	if w.d.Prober != nil {
		return w.d.Prober(w.s)
	}
	return &probe.Prober{Name: w.s.ProbeName, Timeout: w.s.Timeout}
}

// upFunc says which upstreams the trackers hold up. A forced secondary side with no backup up
// still lists every backup: the user asked for it.
func (w *Watchdog) upFunc(list dnsmasq.State) func(config.Upstream) bool {
	up := map[config.Upstream]bool{}
	for i, u := range w.s.Primary {
		up[u] = w.m.Primary[i].Up
	}
	anySec := false
	for i := range w.m.Secondary {
		up[w.s.Secondary[i]] = w.m.Secondary[i].Up
		anySec = anySec || w.m.Secondary[i].Up
	}
	if list == dnsmasq.Failover && !anySec {
		for _, u := range w.s.Secondary {
			up[u] = true
		}
	}
	return func(u config.Upstream) bool { return up[u] }
}

// act writes the list for st and signals dnsmasq when the file changed (or a signal is owed).
func (w *Watchdog) act(st dnsmasq.State) {
	up := w.upFunc(st)
	if st == dnsmasq.Stopped {
		up = nil
	}
	list := dnsmasq.Plan(w.s, st, up)
	content, err := dnsmasq.Render(st, list)
	if err != nil {
		w.fail(fmt.Sprintf("render: %v", err))
		return
	}
	w.servers = make([]string, len(list))
	for i, u := range list {
		w.servers[i] = u.String()
	}
	changed, err := w.d.Write(w.s.ServersFile, content)
	if err != nil {
		w.count.WriteErrors++
		w.fail(fmt.Sprintf("write %s: %v (retrying every round)", w.s.ServersFile, err))
		return
	}
	if changed {
		w.count.Switches++
		if w.content != nil && string(w.content) == string(content) {
			w.d.Logf("%s was changed by someone else: restored", w.s.ServersFile)
		}
		w.pending = true
		w.d.Logf("servers-file %s: %s", w.s.ServersFile, strings.Join(w.servers, " "))
	}
	w.content = content
	if w.pending {
		w.signal()
	}
}

func (w *Watchdog) signal() {
	if w.sig == nil {
		if w.d.Signal != nil {
			w.sig = w.d.Signal(w.s)
		} else {
			pf := w.s.PIDFile
			if pf == "" && w.d.PIDFile != nil {
				var err error
				if pf, err = w.d.PIDFile(w.s); err != nil {
					w.count.SignalErrors++
					w.fail(fmt.Sprintf("cannot find dnsmasq's pid file: %v (dnsmasq re-reads the file when it starts; retrying every round)", err))
					return
				}
			}
			w.sig = dnsmasq.Signaller{PIDFile: pf}
		}
	}
	pid, err := w.sig.Reload()
	if err != nil {
		w.count.SignalErrors++
		w.sig = nil // the pid file may appear or change: resolve it again next time
		w.fail(fmt.Sprintf("signal dnsmasq: %v (dnsmasq re-reads the file when it starts; retrying every round)", err))
		return
	}
	w.count.Signals++
	w.pending = false
	if w.problem != "" {
		w.d.Logf("dnsmasq (pid %d) signalled; the earlier problem is solved", pid)
	} else {
		w.d.Debugf("dnsmasq (pid %d) signalled", pid)
	}
	w.problem = ""
}

// fail logs a problem acting on dnsmasq once, not every round.
func (w *Watchdog) fail(msg string) {
	if msg != w.problem {
		w.d.Logf("%s", msg)
	}
	w.problem = msg
}

// stop leaves the static strict-order list: NextDNS first, then the backups.
func (w *Watchdog) stop() {
	old := w.state
	w.act(dnsmasq.Stopped)
	w.state, w.since, w.reason = string(health.Stopped), w.d.Clock.Now(), "the watchdog stopped"
	w.d.Logf("stopped: static list %s", strings.Join(w.servers, " "))
	if w.d.OnChange != nil && old != w.state {
		w.d.OnChange(Change{Old: old, New: w.state, Reason: w.reason, Servers: w.servers})
	}
	w.publish()
}

// Status is the state to publish.
func (w *Watchdog) Status() *status.Status {
	now := w.d.Clock.Now()
	st := &status.Status{
		Version: w.d.Version, Config: w.d.Config, PID: os.Getpid(), Mode: string(w.s.Mode),
		State: w.state, Since: w.since, Reason: w.reason, Servers: w.servers,
		Override: w.override.Side, OverrideUntil: w.override.Until,
		Counters: w.count, HoldDown: status.Duration(w.m.Decider.Hold()), Updated: now,
		// A round is late after interval + timeout; two missed rounds mean the daemon is gone.
		StaleAfter: status.Duration(2*(w.s.Interval+w.s.Timeout) + 5*time.Second),
		Problem:    w.problem,
	}
	ups := w.upstreams()
	np := len(w.s.Primary)
	for i, u := range ups {
		t := w.tracker(i)
		us := status.Upstream{Address: u.String(), Role: role(i, np), Up: t.Up, Good: t.Good, Bad: t.Bad, RTT: status.Duration(w.lastGood[i])}
		if i < len(w.lastRes) {
			us.LastProbe = w.lastAt
			if e := w.lastRes[i].Err; e != nil {
				us.LastError = e.Error()
			}
		}
		st.Upstreams = append(st.Upstreams, us)
	}
	return st
}

func (w *Watchdog) publish() {
	if err := w.d.Publish(w.s, w.Status()); err != nil && !errors.Is(err, context.Canceled) {
		w.fail(fmt.Sprintf("publish status %s: %v", w.s.StatusFile, err))
	}
}
