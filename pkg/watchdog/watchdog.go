// Package watchdog is the daemon's loop: gather evidence (its own probes, and dnsmasq's queries
// seen on the wire by an Observer), decide with package health, write the servers-file in place
// and signal dnsmasq on a change, publish the status. Its collaborators (prober, observer, file
// writer, signaller, clock, logger) are passed in, so tests swap them.
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

// Change describes a change of dnsmasq's list, for hooks.
type Change struct {
	Old, New string // healthy, failover, forced-primary, forced-secondary, stopped
	Reason   string
	Servers  []string
}

// Observer is a passive source of evidence: dnsmasq's own queries to the upstreams, seen on
// the wire (package passive's Watcher, adapted by the command).
type Observer interface {
	// Suspect is nudged when some upstream's unanswered or failing run grew.
	Suspect() <-chan struct{}
	// Take returns each upstream's observations since the last Take, in the order given to
	// SetUpstreams (or the opener).
	Take(now time.Time) []health.Seen
	SetUpstreams(ups []netip.AddrPort, timeout time.Duration) error
	// Err is non-nil once the observer stopped seeing packets on its own (a socket error).
	Err() error
	Close() error
}

// Deps are the watchdog's collaborators. Only Load and Config are required; nil ones get the
// real thing.
type Deps struct {
	Config string                                    // the config file's path, for the status
	Load   func() (*config.Settings, error)          // reads and validates the config
	Prober func(*config.Settings) Prober             // nil: a probe.Prober from the settings (Timeout is the probe's limit)
	Signal func(*config.Settings) Signaller          // nil: dnsmasq.Signaller on PIDFile (resolved by PIDFile)
	Write  func(path string, b []byte) (bool, error) // nil: dnsmasq.WriteInPlace
	Read   func(path string) ([]byte, error)         // nil: os.ReadFile
	// PIDFile resolves the pid file of the settings (pid_file, or from the dhcp instance).
	PIDFile func(*config.Settings) (string, error)
	// Publish writes the status (and the metrics); an error names the file that failed.
	Publish  func(*config.Settings, *status.Status) error // nil: status.Write to StatusFile
	OnChange func(Change)                                 // changes of dnsmasq's list (hooks); may be nil
	// Observe opens the passive observer for the upstreams (config order); nil or an error
	// means passive evidence is off, and the error says why (shown in the status).
	Observe func(ups []netip.AddrPort, timeout time.Duration) (Observer, error)
	// Drop is called once in Run right after the passive observer is opened (or found
	// unavailable), before anything else: a daemon started as root to open the packet socket
	// gives up root there. An error ends Run at once. May be nil.
	Drop func() error
	// Decorate adds what others keep (the linked IP...) to every published status; may be nil.
	Decorate func(*status.Status)
	// Audit checks the setup at start and on every reload (server= lines ahead of ours...);
	// each problem is logged once and shown in the status. May be nil.
	Audit   func(*config.Settings) []string
	Clock   Clock
	Logf    func(format string, args ...any) // state changes; problems start "warning: " or "error: "
	Debugf  func(format string, args ...any) // per-probe detail (-v)
	Version string
}

// Watchdog is one running daemon.
type Watchdog struct {
	d   Deps
	s   *config.Settings
	m   *health.Machine
	sig Signaller
	obs Observer

	state    string // what the status says: healthy, failover, offline, forced-...
	list     string // what dnsmasq's list stands for: the state, except offline keeps the last
	since    time.Time
	reason   string
	content  []byte // what the servers-file should hold
	servers  []string
	pending  bool   // a signal is owed to dnsmasq (the last one failed)
	problem  string // last error acting on dnsmasq, logged once
	pubErr   string // last error publishing, logged once
	passive  string // "on" or "off (why)"
	problems []string
	lastErr  []string // each upstream's last probe error ("" after a good one)
	lastAt   time.Time
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

// apply puts settings in force. The health of every upstream that stays is kept, and so is the
// decision: a reload during an outage or a forced side keeps dnsmasq's list until the new
// health says otherwise. Primaries new to a failed-over watchdog start down (NextDNS must
// prove itself before the traffic goes back).
func (w *Watchdog) apply(s *config.Settings) {
	old, oldM := w.s, w.m
	w.s = s
	now := w.d.Clock.Now()
	privacy := s.Mode == config.Privacy
	m := health.NewMachine(len(s.Primary), len(w.upstreamsOf(s))-len(s.Primary), s.FailAfter, s.RecoverAfter, privacy, s.HoldDown, now)
	if oldM != nil && old.Mode == s.Mode {
		m.Decider = oldM.Decider
		if m.Decider.HoldDown != s.HoldDown {
			m.Decider.SetHoldDown(s.HoldDown) // keeps the state: a failover in progress stays
		}
		failedOver := w.list == string(health.Failover)
		prev := map[config.Upstream]health.Tracker{}
		for i, u := range w.upstreamsOf(old) {
			prev[u] = *oldM.Tracker(i)
		}
		for i, u := range w.upstreamsOf(s) {
			t := m.Tracker(i)
			if p, ok := prev[u]; ok {
				*t = p
			} else if i < len(s.Primary) && failedOver {
				t.Up, t.Bad = false, s.FailAfter
			}
			t.FailAfter, t.RecoverAfter = s.FailAfter, s.RecoverAfter
		}
	}
	m.SetMinGap(s.FastInterval)
	w.m = m
	w.lastErr = make([]string, m.Len())
	if w.state == "" {
		w.state, w.list, w.since, w.reason = string(health.Healthy), string(health.Healthy), now, "started"
	}
	w.sig = nil
}

func sameUpstreams(a, b *config.Settings) bool {
	return a.Mode == b.Mode && slices.Equal(a.Primary, b.Primary) && slices.Equal(a.Secondary, b.Secondary)
}

// upstreamsOf s, config order: the primaries, then (availability mode) the secondaries.
//
// Not inlined: inlined at its 13 call sites it cost the mips binary 4.8 KB of code (measured).
//
//go:noinline
func (w *Watchdog) upstreamsOf(s *config.Settings) []config.Upstream {
	out := append([]config.Upstream{}, s.Primary...)
	if s.Mode == config.Availability {
		out = append(out, s.Secondary...)
	}
	return out
}

func (w *Watchdog) upstreams() []config.Upstream { return w.upstreamsOf(w.s) }

func addrs(ups []config.Upstream) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ups))
	for i, u := range ups {
		out[i] = u.AddrPort
	}
	return out
}

// Run writes the healthy list (or keeps the failover list it finds: a restart while failed
// over), signals dnsmasq, and probes until ctx ends; then it writes the stopped list (a static
// strict-order setup), signals dnsmasq and returns nil. A value on reload re-reads the config
// (an invalid one is logged and the last good one stays) and probes at once. Passive evidence
// between rounds triggers a confirmation probe at once.
func (w *Watchdog) Run(ctx context.Context, reload <-chan struct{}, control <-chan Override) error {
	w.d.Logf("started: %s mode, %d NextDNS and %d backup upstreams, interval %s (fast %s), timeout %s, fail after %d, recover after %d, hold-down %s",
		w.s.Mode, len(w.s.Primary), len(w.s.Secondary), w.s.Interval, w.s.FastInterval, w.s.Timeout, w.s.FailAfter, w.s.RecoverAfter, w.s.HoldDown)
	w.openObserver()
	defer w.closeObserver()
	if w.d.Drop != nil {
		if err := w.d.Drop(); err != nil {
			return err
		}
	}
	w.audit()
	// One signal at start even if the file is unchanged: a daemon that died between a write and
	// its signal left dnsmasq on an older list.
	w.pending = true
	w.resume()
	w.publish()
	due := w.d.Clock.Now()
	for {
		// Requests first: a reload, an override or a suspicion already waiting does not wait
		// for the timer.
		var timer <-chan time.Time
		if len(reload) == 0 && len(control) == 0 && len(w.suspect()) == 0 {
			timer = w.d.Clock.After(max(0, due.Sub(w.d.Clock.Now())))
		}
		select {
		case <-ctx.Done():
			w.stop()
			return nil
		case <-reload:
			w.reload()
			due = w.d.Clock.Now()
			continue
		case o := <-control:
			w.setOverride(o)
			due = w.d.Clock.Now()
			continue
		case <-w.suspect():
			w.confirm(ctx)
			continue
		case <-timer:
		}
		start := w.d.Clock.Now()
		w.round(ctx)
		pace := w.s.Interval
		if w.m.Unsettled() || w.override.Side != "" {
			pace = w.s.FastInterval
		}
		due = start.Add(pace)
	}
}

// resume starts from what the servers-file says it holds (its header): a daemon restarted
// (procd respawns a crashed one) while failed over keeps the backups rather than going back to
// NextDNS for fail_after rounds and failing over again.
func (w *Watchdog) resume() {
	first := dnsmasq.Healthy
	if b, err := w.d.Read(w.s.ServersFile); err == nil && w.s.Mode == config.Availability && len(w.s.Secondary) > 0 {
		if st, ok := dnsmasq.StateOf(b); ok && st == dnsmasq.Failover {
			w.m.StartFailedOver(w.d.Clock.Now())
			w.state, w.list, w.reason = string(health.Failover), string(health.Failover), "restarted while failed over (the servers-file says so)"
			first = dnsmasq.Failover
			w.d.Logf("%s", w.reason)
		}
	}
	w.act(first)
}

func (w *Watchdog) suspect() <-chan struct{} {
	if w.obs == nil {
		return nil
	}
	return w.obs.Suspect()
}

func (w *Watchdog) openObserver() {
	switch {
	case !w.s.Passive:
		w.passive = "off (option passive '0')"
		return
	case w.d.Observe == nil:
		w.passive = "off (not available in this build)"
		return
	}
	o, err := w.d.Observe(addrs(w.upstreams()), w.s.Timeout)
	if err != nil {
		w.passive = "off (" + err.Error() + ")"
		w.d.Logf("warning: passive observation off: %v; probing only, as without it", err)
		return
	}
	w.obs, w.passive = o, "on"
	w.d.Logf("passive observation on: dnsmasq's own queries to the %d upstreams count as health evidence", len(w.upstreams()))
}

func (w *Watchdog) closeObserver() {
	if w.obs != nil {
		w.obs.Close()
		w.obs = nil
	}
}

// audit runs the setup checks; each problem is logged once (again only if it went away and
// came back) and shown in the status.
func (w *Watchdog) audit() {
	if w.d.Audit == nil {
		return
	}
	found := w.d.Audit(w.s)
	for _, p := range found {
		if !slices.Contains(w.problems, p) {
			w.d.Logf("warning: %s", p)
		}
	}
	w.problems = found
}

func (w *Watchdog) reload() {
	w.count.Reloads++
	s, err := w.d.Load()
	if err != nil {
		w.d.Logf("error: reload: config rejected, the previous one stays in force:\n%v", err)
		w.publish()
		return
	}
	if !s.Enabled {
		w.d.Logf("reload: enabled is 0; the service stops the watchdog (the previous config stays until then)")
	}
	changed := !sameUpstreams(w.s, s)
	passiveChanged := s.Passive != w.s.Passive
	// The ledger counts a query unanswered after timeout: a new timeout must reach it too.
	refilter := changed || s.Timeout != w.s.Timeout
	w.apply(s)
	switch {
	case passiveChanged:
		w.closeObserver()
		w.openObserver()
	case refilter && w.obs != nil:
		if err := w.obs.SetUpstreams(addrs(w.upstreams()), s.Timeout); err != nil {
			w.d.Logf("warning: passive observation off after the reload: %v", err)
			w.closeObserver()
			w.passive = "off (" + err.Error() + ")"
		}
	}
	w.audit()
	if changed {
		// The decision stands: the list for it is written with the new upstreams.
		w.d.Logf("reload: upstreams changed; the %s list stays in force until the new health says otherwise", w.list)
		w.act(w.listFor(w.list))
	} else {
		w.d.Logf("reload: config re-read; probing now")
	}
	w.publish()
}

// listFor is the servers-file state of a list state (privacy mode has only the healthy one).
func (w *Watchdog) listFor(list string) dnsmasq.State {
	if w.s.Mode == config.Availability && (list == string(health.Failover) || list == "forced-secondary") {
		return dnsmasq.Failover
	}
	return dnsmasq.Healthy
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
			w.d.Logf("warning: override refused: force secondary needs availability mode and backups")
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

// probe sends one probe to each of the upstreams at idx (indexes into upstreams()) with the
// given timeout (a confirmation: a short one, with more sends), and records the results.
func (w *Watchdog) probe(ctx context.Context, idx []int, timeout time.Duration, confirm bool) []probe.Result {
	if len(idx) == 0 {
		return nil
	}
	ups := w.upstreams()
	targets := make([]netip.AddrPort, len(idx))
	for k, i := range idx {
		targets[k] = ups[i].AddrPort
	}
	s := w.s
	if timeout != s.Timeout {
		c := *s
		c.Timeout = timeout
		s = &c
	}
	var p Prober = &probe.Prober{Name: s.ProbeName, Timeout: s.Timeout}
	if confirm {
		p = &probe.Prober{Name: s.ProbeName, Timeout: timeout, Attempts: health.ConfirmAttempts}
	}
	if w.d.Prober != nil {
		p = w.d.Prober(s)
	}
	res := p.Round(ctx, targets)
	for k, r := range res {
		if k >= len(idx) {
			break
		}
		i := idx[k]
		w.count.Probes++
		w.lastErr[i] = ""
		if r.Up {
			w.m.Probed(i, r.RTT)
			w.d.Debugf("probe %s: %s in %s", ups[i], r.Rcode, r.RTT.Round(10*time.Microsecond))
			continue
		}
		w.count.ProbeErrors++
		if r.Err != nil {
			w.lastErr[i] = r.Err.Error()
		}
		w.d.Debugf("probe %s: %v", ups[i], r.Err)
	}
	return res
}

// round takes the passive evidence, probes the upstreams that are due, and acts on the
// decision.
func (w *Watchdog) round(ctx context.Context) {
	now := w.d.Clock.Now()
	w.observe(now)
	var idx []int
	for i, due := range w.m.Due(now) {
		if due {
			idx = append(idx, i)
		}
	}
	res := w.probe(ctx, idx, w.s.Timeout, false)
	if ctx.Err() != nil {
		return
	}
	now = w.d.Clock.Now()
	w.count.Rounds++
	w.lastAt = now
	obs := make([]health.Obs, w.m.Len())
	for k, r := range res {
		obs[idx[k]] = map[bool]health.Obs{true: health.Good, false: health.Bad}[r.Up]
	}
	before := w.ups()
	dec := w.m.RoundOf(now, obs)
	w.logUpstreams(before, res, idx, false)
	w.settle(now, dec, offlineReason(res, idx, w.upstreams()))
}

// observe feeds the passive evidence into health; it returns the upstreams to confirm.
func (w *Watchdog) observe(now time.Time) (confirm []int, changed bool) {
	if w.obs == nil {
		return nil, false
	}
	if err := w.obs.Err(); err != nil {
		w.d.Logf("warning: passive observation off: %v; probing only, as without it", err)
		w.closeObserver()
		w.passive = "off (" + err.Error() + ")"
		return nil, false
	}
	seen := w.obs.Take(now)
	ptrs := make([]*health.Seen, len(seen))
	for i := range seen {
		ptrs[i] = &seen[i]
	}
	return w.m.Passive(now, ptrs, w.s.Timeout)
}

// confirm answers a passive suspicion: the suspect upstreams are probed at once with a short
// timeout (several RTTs). With them go the other NextDNS endpoints that carry no traffic (one
// outage usually takes them all: a failure of theirs in the same breath confirms it too, so
// dnsmasq is not sent to a dead standby first) and the backups (a failover goes only where
// something answers now). A failed confirmation is down at once.
func (w *Watchdog) confirm(ctx context.Context) {
	now := w.d.Clock.Now()
	before := w.ups()
	sus, changed := w.observe(now)
	if len(sus) == 0 && !changed {
		return
	}
	idx := append([]int{}, sus...)
	for i := range w.m.Len() {
		t := w.m.Tracker(i)
		if !slices.Contains(idx, i) && (i >= len(w.s.Primary) || (t.Up && !t.Traffic)) {
			idx = append(idx, i)
		}
	}
	timeout := time.Duration(0)
	for _, i := range idx {
		timeout = max(timeout, w.m.ConfirmTimeout(i, w.s.Timeout))
	}
	res := w.probe(ctx, idx, timeout, true)
	if ctx.Err() != nil {
		return
	}
	now = w.d.Clock.Now()
	for k, r := range res {
		i := idx[k]
		if i < len(w.s.Primary) {
			w.count.Confirms++
			w.m.Confirm(now, i, r.Up, r.RTT)
		} else {
			w.m.Tracker(i).ObserveAt(now, r.Up)
		}
	}
	w.logUpstreams(before, res, idx, true)
	w.settle(now, w.m.Decide(now), offlineReason(res, idx, w.upstreams()))
}

func (w *Watchdog) ups() []bool { return append(w.m.PrimaryUp(), w.m.SecondaryUp()...) }

// logUpstreams logs each upstream whose verdict changed since before; confirm says the probes
// were a confirmation of passive evidence.
func (w *Watchdog) logUpstreams(before []bool, res []probe.Result, idx []int, confirm bool) {
	ups, np := w.upstreams(), len(w.s.Primary)
	for i, up := range w.ups() {
		if before[i] == up {
			continue
		}
		t := w.m.Tracker(i)
		why := "client queries unanswered after a failed probe"
		if k := slices.Index(idx, i); k >= 0 && k < len(res) && res[k].Err != nil {
			why = fmt.Sprintf("%v (%d failed rounds)", res[k].Err, t.Bad)
			if confirm {
				why = fmt.Sprintf("confirmation probe: %v, after client queries went unanswered", res[k].Err)
			}
		}
		if up {
			w.d.Logf("upstream %s (%s) up after %d good rounds, rtt %s", ups[i], role(i, np), t.Good, t.RTT.Round(100*time.Microsecond))
		} else {
			w.d.Logf("upstream %s (%s) down: %s", ups[i], role(i, np), why)
		}
	}
}

// offlineReason says "the router's own network is down" when every direct (non-loopback)
// upstream probed failed on the router's side: a local forwarder on loopback never sees a
// missing route, so its failure then means the same.
func offlineReason(res []probe.Result, idx []int, ups []config.Upstream) string {
	var direct []probe.Result
	for k, r := range res {
		if !ups[idx[k]].Addr().IsLoopback() {
			direct = append(direct, r)
		}
	}
	for _, r := range direct {
		if !r.Offline {
			return ""
		}
	}
	if len(direct) == 0 {
		return ""
	}
	return fmt.Sprintf("the router's own network is down (%v); list unchanged", direct[0].Err)
}

// settle turns a decision into the state, the list, the counters and the hooks. Counters and
// hooks follow dnsmasq's list: offline changes nothing in dnsmasq (so leaving it for the list
// in force is no new failover), and a fail-back through offline is still a fail-back.
func (w *Watchdog) settle(now time.Time, dec health.Decision, offline string) {
	if o := w.override; o.Side != "" && !o.Until.IsZero() && !now.Before(o.Until) {
		w.d.Logf("override to %s expired: back to automatic", o.Side)
		w.override = Override{}
	}
	state, list, reason := string(dec.State), string(dec.List), dec.Reason
	if dec.State == health.Offline && offline != "" {
		reason = offline
	}
	if w.override.Side != "" {
		state, list = "forced-"+w.override.Side, "forced-"+w.override.Side
		reason = "manual override (nextdns-failover force " + w.override.Side + ")"
	}
	if state == string(health.Offline) {
		list = w.list
	}
	if state != w.state {
		w.d.Logf("state %s -> %s: %s", w.state, state, reason)
		w.state, w.since = state, now
	}
	w.reason = reason
	if state == string(health.Offline) {
		if w.pending {
			w.signal()
		}
		w.publish()
		return
	}
	// Also restores the file if someone else changed it, and follows the upstreams' health.
	w.act(w.listFor(list))
	if list != w.list {
		old := w.list
		w.list = list
		switch {
		case list == string(health.Failover):
			w.count.Failovers++
		case list == string(health.Healthy) && old == string(health.Failover):
			w.count.Failbacks++
		}
		if w.d.OnChange != nil {
			w.d.OnChange(Change{Old: old, New: list, Reason: reason, Servers: w.servers})
		}
	}
	w.publish()
}

func role(i, np int) string {
	if i < np {
		return "primary"
	}
	return "secondary"
}

// upFunc says which upstreams the list may hold: the ones the trackers hold up. While one of a
// group's up members is in doubt (a failed probe not yet a verdict), the group's part of the
// list stays as it is: a standby endpoint probed less often reaches its verdict a round after
// the first one, and a WAN loss must not shorten the list on its way to offline.
func (w *Watchdog) upFunc() func(config.Upstream) bool {
	up := map[config.Upstream]bool{}
	ups, np := w.upstreams(), len(w.s.Primary)
	doubt := [2]bool{}
	for i := range ups {
		if t := w.m.Tracker(i); t.Up && t.Bad > 0 {
			doubt[min(i/max(np, 1), 1)] = true
		}
	}
	for i, u := range ups {
		up[u] = w.m.Tracker(i).Up
		if doubt[min(i/max(np, 1), 1)] {
			up[u] = slices.Contains(w.servers, u.String())
		}
	}
	return func(u config.Upstream) bool { return up[u] }
}

// act writes the list for st and signals dnsmasq when the file changed (or a signal is owed).
func (w *Watchdog) act(st dnsmasq.State) {
	up := w.upFunc()
	if st == dnsmasq.Stopped {
		up = nil
	}
	list := dnsmasq.Plan(w.s, st, up)
	content, err := dnsmasq.Render(st, list)
	if err != nil {
		w.fail(fmt.Sprintf("error: render: %v", err))
		return
	}
	w.servers = make([]string, len(list))
	for i, u := range list {
		w.servers[i] = u.String()
	}
	changed, err := w.d.Write(w.s.ServersFile, content)
	if err != nil {
		w.count.WriteErrors++
		w.fail(fmt.Sprintf("error: write %s: %v (retrying every round)", w.s.ServersFile, err))
		return
	}
	if changed {
		w.count.Switches++
		if w.content != nil && string(w.content) == string(content) {
			w.d.Logf("warning: %s was changed by someone else: restored", w.s.ServersFile)
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
					w.fail(fmt.Sprintf("error: cannot find dnsmasq's pid file: %v (dnsmasq re-reads the file when it starts; retrying every round)", err))
					return
				}
			}
			w.sig = dnsmasq.Signaller{PIDFile: pf, File: w.s.ServersFile, Logf: w.d.Logf}
		}
	}
	pid, err := w.sig.Reload()
	if err != nil {
		w.count.SignalErrors++
		w.sig = nil // the pid file may appear or change: resolve it again next time
		w.fail(fmt.Sprintf("error: signal dnsmasq: %v (dnsmasq re-reads the file when it starts; retrying every round)", err))
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
//
// Not inlined: inlined at its call sites it cost the mips binary 0.7 KB of code (measured).
//
//go:noinline
func (w *Watchdog) fail(msg string) {
	if msg != w.problem {
		w.d.Logf("%s", msg)
	}
	w.problem = msg
}

// stop leaves the static strict-order list: NextDNS first, then the backups.
func (w *Watchdog) stop() {
	old := w.list
	w.act(dnsmasq.Stopped)
	w.state, w.list, w.since, w.reason = string(health.Stopped), string(health.Stopped), w.d.Clock.Now(), "the watchdog stopped"
	w.d.Logf("stopped: static list %s", strings.Join(w.servers, " "))
	if w.d.OnChange != nil && old != w.list {
		w.d.OnChange(Change{Old: old, New: w.list, Reason: w.reason, Servers: w.servers})
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
		Problem:    w.problem, Problems: w.problems, Passive: w.passive,
	}
	ups := w.upstreams()
	np := len(w.s.Primary)
	for i, u := range ups {
		t := w.m.Tracker(i)
		st.Upstreams = append(st.Upstreams, status.Upstream{
			Address: u.String(), Role: role(i, np), Up: t.Up, Good: t.Good, Bad: t.Bad,
			RTT: status.Duration(t.RTT), LastProbe: t.LastProbe, LastError: w.lastErr[i],
		})
	}
	if w.d.Decorate != nil {
		w.d.Decorate(st)
	}
	return st
}

// publish writes the status; a failure is logged once per cause (the error names the file)
// and publishing goes on every round.
func (w *Watchdog) publish() {
	err := w.d.Publish(w.s, w.Status())
	msg := ""
	if err != nil && !errors.Is(err, context.Canceled) {
		msg = err.Error()
	}
	switch {
	case msg != "" && msg != w.pubErr:
		w.d.Logf("warning: publish: %s (retrying every round)", msg)
	case msg == "" && w.pubErr != "":
		w.d.Logf("publish: the status is written again")
	}
	w.pubErr = msg
}
