// Package status is the daemon's published state: the JSON file it writes atomically every
// round, and the one-screen view `nextdns-failover status` prints from it.
package status

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Status is what the daemon publishes to status_file.
type Status struct {
	Version string `json:"version"`
	Config  string `json:"config"`
	PID     int    `json:"pid"`
	Mode    string `json:"mode"`

	State  string    `json:"state"` // healthy, failover, offline, stopped
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	// Servers is the active list, in the order dnsmasq tries it.
	Servers []string `json:"servers"`
	// Override is a manual override in force ("primary" or "secondary"), if any.
	Override      string    `json:"override,omitempty"`
	OverrideUntil time.Time `json:"override_until,omitzero"`

	Upstreams []Upstream `json:"upstreams"`
	Counters  Counters   `json:"counters"`

	// HoldDown is the hold-down now in force (it doubles while NextDNS flaps).
	HoldDown Duration `json:"hold_down"`
	// Updated is when this was written; StaleAfter after it, the daemon is presumed dead.
	Updated    time.Time `json:"updated"`
	StaleAfter Duration  `json:"stale_after"`
	// Problem is the last error acting on dnsmasq (writing the file, signalling), "" when none.
	Problem string `json:"problem,omitempty"`
	// Problems are standing problems of the setup found at start and reload (e.g. a server=
	// line that comes before the servers-file), each one sentence.
	Problems []string `json:"problems,omitempty"`

	// Passive is "on" when dnsmasq's own queries are watched, else "off (<why>)".
	Passive string `json:"passive,omitempty"`
	// LinkIP is the NextDNS linked-IP upkeep, nil when link_ip_url is not set.
	LinkIP *LinkIP `json:"link_ip,omitempty"`
}

// LinkIP is the state of the linked-IP upkeep (link_ip_url).
type LinkIP struct {
	LastOK    time.Time `json:"last_ok,omitzero"`     // the last successful call
	Answer    string    `json:"answer,omitempty"`     // what NextDNS answered then (the linked IP)
	LastError string    `json:"last_error,omitempty"` // why the last call failed ("" when it succeeded)
	Checked   time.Time `json:"checked,omitzero"`     // the last call, successful or not
}

// Upstream is one upstream's health.
type Upstream struct {
	Address   string    `json:"address"`
	Role      string    `json:"role"` // primary or secondary
	Up        bool      `json:"up"`
	RTT       Duration  `json:"rtt"` // of the last good probe
	Good      int       `json:"good"`
	Bad       int       `json:"bad"`
	LastError string    `json:"last_error,omitempty"`
	LastProbe time.Time `json:"last_probe,omitzero"`
}

// Counters only grow while the daemon runs.
type Counters struct {
	Rounds       uint64 `json:"rounds"`
	Probes       uint64 `json:"probes"`   // every probe sent, confirmations included
	Confirms     uint64 `json:"confirms"` // confirmation probes (passive evidence of a failure)
	ProbeErrors  uint64 `json:"probe_errors"`
	Failovers    uint64 `json:"failovers"`
	Failbacks    uint64 `json:"failbacks"`
	Switches     uint64 `json:"switches"` // servers-file rewrites (each empties dnsmasq's cache)
	Signals      uint64 `json:"signals"`
	SignalErrors uint64 `json:"signal_errors"`
	WriteErrors  uint64 `json:"write_errors"`
	Reloads      uint64 `json:"reloads"`
}

// Duration is a time.Duration, written in the JSON as a Go duration string ("1.5s").
type Duration time.Duration

// Write stores st at path atomically (a temporary file renamed over it), mode 0644: a reader
// never sees half a file. When that fails (a full /tmp has no room for a second copy) and the
// file exists, it is rewritten in place, which needs no new space: a status that a reader
// might catch half-written beats one that goes stale and says the daemon is dead.
func Write(path string, st *Status) error {
	b := st.JSON()
	err := WriteFileAtomic(path, b)
	if err == nil {
		return nil
	}
	if f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0); ferr == nil {
		_, werr := f.Write(b)
		if cerr := f.Close(); werr == nil && cerr == nil {
			return nil
		}
	}
	return err
}

// WriteFileAtomic writes b to a temporary file beside path and renames it over path. An
// error names path and the cause, never the temporary file (its name changes every call, and
// a caller logs a cause once).
func WriteFileAtomic(path string, b []byte) error {
	err := writeFileAtomic(path, b)
	if err == nil {
		return nil
	}
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = fmt.Errorf("%s: %s: %w", path, pe.Op, pe.Err)
	case errors.As(err, &le):
		err = fmt.Errorf("%s: %s: %w", path, le.Op, le.Err)
	default:
		err = fmt.Errorf("%s: %w", path, err)
	}
	return err
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// maxStatusFile bounds what Read loads: a status is a few KiB.
const maxStatusFile = 1 << 20

// ErrNotRunning means no daemon has published a status (or it was removed).
var ErrNotRunning = errors.New("the watchdog is not running (no status file)")

// Read loads the status at path. Its size is capped: it is ours, but a reader must not trust it.
func Read(path string) (*Status, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatusFile))
	if err != nil {
		return nil, err
	}
	st, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// Stale reports whether st is too old to describe a running daemon at now.
func (st *Status) Stale(now time.Time) bool {
	return st.State != "stopped" && st.StaleAfter > 0 && now.Sub(st.Updated) > time.Duration(st.StaleAfter)
}

// Headline says the state in words.
func Headline(state string) string {
	switch state {
	case "healthy":
		return "on NextDNS"
	case "failover":
		return "FAILED OVER to the backup servers"
	case "offline":
		return "OFFLINE: no upstream answers (list unchanged)"
	case "stopped":
		return "stopped: static list (NextDNS first, then the backups)"
	case "forced-primary":
		return "FORCED to NextDNS (manual override)"
	case "forced-secondary":
		return "FORCED to the backup servers (manual override)"
	}
	return state
}

// Format writes st for a person reading it over SSH. now decides the ages and staleness; warnings
// (from `check`) are printed at the end.
func Format(w io.Writer, st *Status, now time.Time, warnings []string) error {
	var b strings.Builder
	head := Headline(st.State)
	if st.Stale(now) {
		head = fmt.Sprintf("UNKNOWN: the watchdog stopped publishing %s ago (pid %d); the last state was %q",
			age(now.Sub(st.Updated)), st.PID, st.State)
	}
	fmt.Fprintf(&b, "DNS:       %s\n", head)
	fmt.Fprintf(&b, "since:     %s (%s ago)\n", st.Since.Local().Format("2006-01-02 15:04:05"), age(now.Sub(st.Since)))
	if st.Reason != "" {
		fmt.Fprintf(&b, "why:       %s\n", st.Reason)
	}
	if st.Override != "" {
		until := "until restart"
		if !st.OverrideUntil.IsZero() {
			until = "for " + age(st.OverrideUntil.Sub(now)) + " more"
		}
		fmt.Fprintf(&b, "override:  forced to %s %s (undo: nextdns-failover auto)\n", st.Override, until)
	}
	fmt.Fprintf(&b, "mode:      %s\n", st.Mode)
	fmt.Fprintf(&b, "servers:   %s\n", strings.Join(st.Servers, " > "))
	if st.Passive != "" {
		fmt.Fprintf(&b, "passive:   %s\n", st.Passive)
	}
	if l := st.LinkIP; l != nil {
		switch {
		case l.Checked.IsZero():
			fmt.Fprintf(&b, "link IP:   not called yet\n")
		case l.LastError == "":
			fmt.Fprintf(&b, "link IP:   ok %s ago (%s)\n", age(now.Sub(l.LastOK)), dash(l.Answer))
		case l.LastOK.IsZero():
			fmt.Fprintf(&b, "link IP:   FAILING: %s (never succeeded)\n", l.LastError)
		default:
			fmt.Fprintf(&b, "link IP:   FAILING: %s (last ok %s ago: %s)\n", l.LastError, age(now.Sub(l.LastOK)), dash(l.Answer))
		}
	}
	if st.Problem != "" {
		fmt.Fprintf(&b, "problem:   %s\n", st.Problem)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(&b, "problem:   %s\n", p)
	}
	b.WriteString("\nUPSTREAM                         ROLE       HEALTH  LAST RTT LAST ERROR\n")
	for _, u := range st.Upstreams {
		h := "up"
		if !u.Up {
			h = "DOWN"
		}
		rtt := "-"
		if u.RTT > 0 {
			rtt = time.Duration(u.RTT).Round(100 * time.Microsecond).String()
		}
		fmt.Fprintf(&b, "%-32s %-10s %-7s %-8s %s\n", u.Address, u.Role, h, rtt, dash(u.LastError))
	}
	c := st.Counters
	fmt.Fprintf(&b, "\nrounds %d, probes %d (%d failed, %d confirmations), failovers %d, fail-backs %d, switches %d, signals %d (%d failed), reloads %d\n",
		c.Rounds, c.Probes, c.ProbeErrors, c.Confirms, c.Failovers, c.Failbacks, c.Switches, c.Signals, c.SignalErrors, c.Reloads)
	fmt.Fprintf(&b, "version %s, pid %d, config %s, updated %s ago\n", st.Version, st.PID, st.Config, age(now.Sub(st.Updated)))
	for _, w := range warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age prints a duration the way a person reads it: 45s, 12m3s, 5h2m, 3d4h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d%(24*time.Hour))/time.Hour))
}
