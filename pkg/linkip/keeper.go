// Package linkip keeps a NextDNS linked IP current: NextDNS applies a profile to plain-DNS
// queries only from the IP linked to it, and a WAN address change silently unlinks it. The
// Keeper calls the user's link URL with the router's own uclient-fetch (OpenWrt's HTTPS client:
// no TLS code in our binary) on start, on Kick (the daemon kicks it on WAN up) and every
// interval, and remembers the last success and answer for status.
//
// The URL's secret part never leaves this package: logs, Snapshot and errors carry Redact(url).
package linkip

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults.
const (
	// DefaultInterval re-links every 30 minutes: a changed WAN address is normally caught by
	// the WAN-up kick; this covers changes no interface event announces (CGNAT, a modem).
	DefaultInterval = 30 * time.Minute
	// DefaultFetch is OpenWrt's uclient-fetch.
	DefaultFetch = "/bin/uclient-fetch"
	// fetchTimeout is uclient-fetch's own -T (10 s), and the hard limit a few seconds later.
	fetchTimeout = 10
	hardTimeout  = 15 * time.Second
	// maxAnswer caps what is read of the answer: NextDNS answers with a few words.
	maxAnswer = 4096
	// maxShown caps the answer and error kept for status.
	maxShown = 120
)

// Snapshot is the Keeper's state for status; map it to status.LinkIP field by field.
type Snapshot struct {
	URL       string    // Redact(url)
	LastOK    time.Time // zero until a call succeeded
	Answer    string    // the last successful answer, trimmed and cut to 120 characters
	LastError string    // why the last call failed; "" after a success
	Checked   time.Time // when the last call finished
}

// Config configures a Keeper. Only URL is required.
type Config struct {
	URL      string
	Interval time.Duration                        // 0: DefaultInterval
	Fetch    string                               // uclient-fetch's path; "": DefaultFetch
	Logf     func(format string, args ...any)     // info lines; failures start with "warning: "
	Now      func() time.Time                     // nil: time.Now
	After    func(time.Duration) <-chan time.Time // nil: time.After
	Run      Runner                               // nil: Process(15s, 4096)
}

// Keeper calls the link URL on start, on Kick and every interval.
type Keeper struct {
	c    Config
	kick chan struct{}

	mu   sync.Mutex
	snap Snapshot

	loggedErr string // the failure last logged, so each distinct reason is logged once
	okLogged  bool   // a success was logged since the last failure
}

// New makes a Keeper; Run starts it.
func New(c Config) *Keeper {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Fetch == "" {
		c.Fetch = DefaultFetch
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Run == nil {
		c.Run = Process(hardTimeout, maxAnswer)
	}
	return &Keeper{c: c, kick: make(chan struct{}, 1), snap: Snapshot{URL: Redact(c.URL)}}
}

// Kick asks for a call now (the WAN came up); it never blocks, and kicks that arrive while
// one waits are one call.
func (k *Keeper) Kick() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Snapshot returns the state for status.
func (k *Keeper) Snapshot() Snapshot {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.snap
}

// Run calls the URL now, then on every Kick and every interval after the last call, until
// ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	for {
		k.Once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-k.kick:
		case <-k.c.After(k.c.Interval):
		}
	}
}

// Once calls the URL once and records the result.
func (k *Keeper) Once(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	argv := []string{k.c.Fetch, "-q", "-O", "-", "-T", strconv.Itoa(fetchTimeout), k.c.URL}
	out, err := k.c.Run(ctx, argv)
	if ctx.Err() != nil {
		return // shutting down: not a failure worth a status line
	}
	now := k.c.Now()
	k.mu.Lock()
	k.snap.Checked = now
	if err != nil {
		reason := clean(scrub(err.Error(), k.c.URL))
		k.snap.LastError = reason
		k.mu.Unlock()
		if reason != k.loggedErr {
			k.loggedErr, k.okLogged = reason, false
			k.c.Logf("warning: link IP %s: %s", Redact(k.c.URL), reason)
		}
		return
	}
	answer := clean(scrub(string(out), k.c.URL))
	k.snap.LastOK, k.snap.Answer, k.snap.LastError = now, answer, ""
	k.mu.Unlock()
	if !k.okLogged {
		k.okLogged, k.loggedErr = true, ""
		k.c.Logf("link IP %s: linked (answer %q)", Redact(k.c.URL), answer)
	}
}

// clean keeps text fit for one status line: printable ASCII, spaces collapsed, at most maxShown
// characters.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 0x20 && r < 0x7f { // ASCII only: answers are ASCII, and this keeps unicode's tables out
			return r
		}
		return ' '
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxShown { // ASCII by now: bytes are characters
		s = s[:maxShown] + "..."
	}
	return s
}
