package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// Package is the UCI package name of our config: /etc/config/nextdns-failover.
const Package = "nextdns-failover"

// DefaultPath is where OpenWrt keeps our config.
const DefaultPath = "/etc/config/" + Package

// Defaults for the options of the settings section. Why each value is what it is:
const (
	// DefaultProbeName is what the NextDNS CLI itself asks to test an endpoint; NextDNS answers it
	// directly, so a probe never waits on a recursive lookup.
	DefaultProbeName = "probe-test.dns.nextdns.io"
	// DefaultInterval between rounds while all is well: the largest share of the time to fail
	// over (half of it on average) and of the probe volume. With fast_interval and timeout at 1 s
	// it fails over within 7 s (interval + 2 failed rounds), 4.5 s on average; the lab measured
	// 92.5% of client queries answered through a one-minute blackhole (10 s/2 s/2 s: 85%).
	// Cost: 2 * 30 * 86400 / 5 = 1,036,800 probes a month with two primaries.
	DefaultInterval = 5 * time.Second
	// DefaultFastInterval after a failed probe and while failed over: confirms an outage or a
	// recovery within seconds; outages are rare, so its cost in probes is small.
	DefaultFastInterval = time.Second
	// DefaultTimeout of one probe (it resends at 333 and 666 ms): far above NextDNS's usual
	// 10-50 ms. A link so loaded (bufferbloat) that probes take longer delays the backups' probes
	// too, and everything down is "offline", never a failover.
	DefaultTimeout = time.Second
	// DefaultFailAfter consecutive failed rounds: one lost round (packet loss) never fails over.
	DefaultFailAfter = 2
	// DefaultRecoverAfter consecutive good rounds: 3 s of clean answers at fast_interval before
	// traffic goes back, so a flapping endpoint does not pull it back too early.
	DefaultRecoverAfter = 3
	// DefaultHoldDown since the failover before failing back: bounds how often dnsmasq's cache is
	// emptied by a flapping link (every switch empties it).
	DefaultHoldDown = 30 * time.Second

	// DefaultLinkIPInterval between calls of link_ip_url: NextDNS forgets a linked IP only when
	// another one is linked, and the WAN-up trigger covers most address changes; half an hour
	// catches the rest (a lease renewed with a new address) at 48 calls a day.
	DefaultLinkIPInterval = 30 * time.Minute

	DefaultDHCPConfig  = "/etc/config/dhcp"
	DefaultServersFile = "/var/run/nextdns-failover/servers.conf"
	DefaultStatusFile  = "/var/run/nextdns-failover/status.json"
)

// Limits on values. They bound what a config can make the daemon do.
const (
	maxUpstreams = 16  // per list: dnsmasq tries them in order; more is never useful
	maxCount     = 100 // fail_after / recover_after
	minDuration  = 10 * time.Millisecond
	maxDuration  = 24 * time.Hour
	// maxFileSize of the config: the shipped one is 2 KiB. Parsing a 1 MiB file of empty
	// sections allocates about 29 MiB (measured), too much for a 64 MB router; 64 KiB keeps any
	// shape under 2 MiB.
	maxFileSize = 64 << 10
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid configuration")

// Problem is one thing wrong with a config, at a line of a file.
type Problem struct {
	File   string
	Line   int    // 0 when the problem has no line (e.g. the file is empty)
	Option string // "" when it is not about one option
	Msg    string // what is wrong, and what would be valid
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Option != "" {
		b.WriteString("option '" + p.Option + "': ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Unwrap makes errors.Is(p, ErrInvalid) true.
func (p *Problem) Unwrap() error { return ErrInvalid }

// Problems is every problem found in one config, in line order.
type Problems []*Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap makes errors.Is(ps, ErrInvalid) true.
func (ps Problems) Unwrap() error { return ErrInvalid }

// Load reads and validates the UCI file at file.
func Load(file string) (*Settings, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, Problems{{File: file, Msg: err.Error()}}
	}
	if len(b) > maxFileSize {
		return nil, Problems{{File: file, Msg: fmt.Sprintf("the file is larger than %d KiB (a config is a few KiB)", maxFileSize>>10)}}
	}
	return Read(file, bytes.NewReader(b))
}

// Read parses UCI text from r; file names it in messages.
func Read(file string, r io.Reader) (*Settings, error) {
	p, err := uci.Parse(Package, r)
	if err != nil {
		var pe *uci.ParseError
		if errors.As(err, &pe) {
			return nil, Problems{{File: file, Line: pe.Line, Msg: pe.Error()}}
		}
		return nil, Problems{{File: file, Msg: err.Error()}}
	}
	return FromPackage(file, p)
}

// FromPackage validates a parsed UCI package. All problems are reported at once.
func FromPackage(file string, p *uci.Package) (*Settings, error) {
	v := &validator{file: file, s: Defaults(), lines: map[Upstream]int{}}
	v.s.File = file
	var sec *uci.Section
	for _, s := range p.Sections {
		switch {
		case s.Type == "settings" && s.Name == "settings":
			sec = s
		case s.Type == "settings":
			v.add(s.Line, "", fmt.Sprintf("section '%s': only one settings section, named 'settings', is read (rename it: config settings 'settings')", p.Ref(s)))
		case s.Type == "install":
			// Written by the package's install script: what it changed in dhcp, to restore on removal.
		default:
			v.add(s.Line, "", fmt.Sprintf("unknown section type '%s' (valid: settings)", s.Type))
		}
	}
	if sec == nil {
		v.add(0, "", "no settings section (add: config settings 'settings')")
		return nil, v.probs
	}
	v.section(sec)
	if len(v.probs) > 0 {
		sort.SliceStable(v.probs, func(i, j int) bool { return v.probs[i].Line < v.probs[j].Line })
		return nil, v.probs
	}
	return v.s, nil
}

// Defaults returns the settings of an empty settings section, without upstreams.
func Defaults() *Settings {
	return &Settings{
		Enabled:      true,
		Mode:         Availability,
		ProbeName:    DefaultProbeName,
		Interval:     DefaultInterval,
		FastInterval: DefaultFastInterval,
		Timeout:      DefaultTimeout,
		FailAfter:    DefaultFailAfter,
		RecoverAfter: DefaultRecoverAfter,
		HoldDown:     DefaultHoldDown,
		DHCPConfig:   DefaultDHCPConfig,
		ServersFile:  DefaultServersFile,
		StatusFile:   DefaultStatusFile,

		Passive:        true,
		LinkIPInterval: DefaultLinkIPInterval,
	}
}

type validator struct {
	file  string
	s     *Settings
	probs Problems
	lines map[Upstream]int // where each upstream was listed
}

// Not inlined: inlined at its 13 call sites it cost the mips binary 3.5 KB of code (measured).
//
//go:noinline
func (v *validator) add(line int, opt, msg string) {
	v.probs = append(v.probs, &Problem{File: v.file, Line: line, Option: opt, Msg: msg})
}

// options lists every option of the settings section, for "unknown option" messages.
var options = []string{
	"enabled", "mode", "primary", "secondary", "probe_name", "interval", "fast_interval", "timeout",
	"fail_after", "recover_after", "hold_down", "dhcp_config", "dnsmasq_instance", "servers_file",
	"pid_file", "status_file", "metrics_file", "passive", "link_ip_url", "link_ip_interval",
}

func (v *validator) section(sec *uci.Section) {
	s := v.s
	var primLine int
	for _, o := range sec.Options {
		line := o.Lines[len(o.Lines)-1]
		val := o.Values[len(o.Values)-1]
		if o.List && o.Name != "primary" && o.Name != "secondary" {
			v.add(o.Lines[0], o.Name, "is a list; it takes one value (use: option "+o.Name+" '...')")
			continue
		}
		var err string
		switch o.Name {
		case "enabled":
			s.Enabled, err = parseBool(val)
		case "mode":
			switch Mode(val) {
			case Availability, Privacy:
				s.Mode = Mode(val)
			default:
				err = fmt.Sprintf("%q is not a mode (valid: availability, privacy)", val)
			}
		case "primary":
			s.Primary, primLine = v.upstreams(o), o.Lines[0]
		case "secondary":
			s.Secondary = v.upstreams(o)
		case "probe_name":
			s.ProbeName, err = parseName(val)
		case "interval":
			s.Interval, err = parseDuration(val)
		case "fast_interval":
			s.FastInterval, err = parseDuration(val)
		case "timeout":
			s.Timeout, err = parseDuration(val)
		case "hold_down":
			s.HoldDown, err = parseDuration(val)
			if d, zerr := time.ParseDuration(val); (zerr == nil && d == 0) || val == "0" {
				s.HoldDown, err = 0, "" // no hold-down: fail back as soon as a primary has recovered
			}
		case "fail_after":
			s.FailAfter, err = parseCount(val)
		case "recover_after":
			s.RecoverAfter, err = parseCount(val)
		case "dhcp_config":
			s.DHCPConfig, err = parsePath(val)
		case "servers_file":
			s.ServersFile, err = parsePath(val)
		case "status_file":
			s.StatusFile, err = parsePath(val)
		case "pid_file":
			s.PIDFile, err = parsePath(val)
		case "metrics_file":
			s.MetricsFile, err = parsePath(val)
		case "passive":
			s.Passive, err = parseBool(val)
		case "link_ip_url":
			s.LinkIPURL, err = parseLinkURL(val)
		case "link_ip_interval":
			s.LinkIPInterval, err = parseDuration(val)
			if err == "" && s.LinkIPInterval < time.Minute {
				err = fmt.Sprintf("%s is shorter than 1m (valid: 1m to 24h; NextDNS needs one call per address change)", quote(val))
			}
		case "dnsmasq_instance":
			s.DnsmasqInstance, err = parseSectionName(val)
		default:
			err = "unknown option (valid: " + strings.Join(options, ", ") + ")"
		}
		if err != "" {
			v.add(line, o.Name, err)
		}
	}
	if len(s.Primary) == 0 && primLine == 0 {
		v.add(sec.Line, "primary", "missing: at least one NextDNS upstream is required (e.g. list primary '45.90.28.0')")
	}
	if s.Mode == Privacy {
		for _, u := range append(append([]Upstream{}, s.Primary...), s.Secondary...) {
			if !IsNextDNS(u.Addr()) && !u.Addr().IsLoopback() {
				opt := "primary"
				if !slices.Contains(s.Primary, u) {
					opt = "secondary"
				}
				v.add(v.lines[u], opt, fmt.Sprintf("%s is not a NextDNS address; privacy mode never uses one (valid: 45.90.28.0/24, 45.90.30.0/24, 2a07:a8c0::/33, 2a07:a8c1::/33 or a loopback proxy such as 127.0.0.1#5353)", u))
			}
		}
	}
	if len(v.probs) > 0 {
		return // the checks below compare values that must each be valid first
	}
	// The fast pace must be the faster one. Left unset, it follows a shorter interval; a timeout
	// longer than the pace only makes the next round start as soon as the last one ends.
	if s.FastInterval > s.Interval {
		if sec.Option("fast_interval") == nil {
			s.FastInterval = s.Interval
		} else {
			v.add(lineOf(sec, "fast_interval"), "fast_interval", fmt.Sprintf("%s is longer than interval %s (valid: at most interval)", s.FastInterval, s.Interval))
		}
	}
	for _, f := range []struct{ name, path string }{{"status_file", s.StatusFile}, {"metrics_file", s.MetricsFile}, {"pid_file", s.PIDFile}, {"dhcp_config", s.DHCPConfig}} {
		if f.path != "" && f.path == s.ServersFile {
			v.add(lineOf(sec, f.name), f.name, "is the same file as servers_file (valid: another path)")
		}
	}
}

func (v *validator) upstreams(o *uci.Option) []Upstream {
	var out []Upstream
	for i, val := range o.Values {
		u, err := ParseUpstream(val)
		if err != nil {
			v.add(o.Lines[i], o.Name, err.Error())
			continue
		}
		if slices.Contains(out, u) {
			v.add(o.Lines[i], o.Name, fmt.Sprintf("%s is listed twice (valid: each upstream once)", u))
			continue
		}
		other, otherName := v.s.Secondary, "secondary"
		if o.Name == "secondary" {
			other, otherName = v.s.Primary, "primary"
		}
		if slices.Contains(other, u) {
			v.add(o.Lines[i], o.Name, fmt.Sprintf("%s is also a %s upstream (line %d) (valid: each upstream in one list)", u, otherName, v.lines[u]))
			continue
		}
		out = append(out, u)
		v.lines[u] = o.Lines[i]
	}
	if len(out) > maxUpstreams {
		v.add(o.Lines[0], o.Name, fmt.Sprintf("%d upstreams (valid: at most %d)", len(out), maxUpstreams))
	}
	return out
}

func lineOf(sec *uci.Section, name string) int {
	if o := sec.Option(name); o != nil {
		return o.Lines[len(o.Lines)-1]
	}
	return sec.Line
}

// ErrUpstream is wrapped by ParseUpstream's errors.
var ErrUpstream = errors.New("invalid upstream")

// ParseUpstream reads an upstream as dnsmasq writes it: an IPv4 or IPv6 literal with an optional
// "#port" (1-65535). Host names, "@interface", "/domain/", zones and anything else are refused, so
// nothing but a validated address can reach the servers-file.
func ParseUpstream(s string) (Upstream, error) {
	bad := func(why string) (Upstream, error) {
		return Upstream{}, fmt.Errorf("%w: %s: %s (valid: an IPv4 or IPv6 address with an optional #port, e.g. 45.90.28.0 or 127.0.0.1#5353)", ErrUpstream, quote(s), why)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > 64 {
		return bad("too long")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return bad("contains a space, control or non-ASCII character")
		}
		switch c {
		case '/', '@', '%', '[', ']', ',', '\'', '"', '\\', ';', '=':
			return bad(fmt.Sprintf("contains %q", c))
		}
	}
	host, port := s, uint16(53)
	if i := strings.IndexByte(s, '#'); i >= 0 {
		host = s[:i]
		n, err := strconv.ParseUint(s[i+1:], 10, 16)
		if err != nil || n == 0 || strings.HasPrefix(s[i+1:], "+") {
			return bad("port must be a number from 1 to 65535")
		}
		port = uint16(n)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return bad("not an IP address")
	}
	if a.Zone() != "" {
		return bad("zoned addresses are not supported")
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return bad("not a unicast address")
	}
	return Upstream{netip.AddrPortFrom(a, port)}, nil
}

// quote shows a value in a message with control and non-UTF-8 bytes escaped.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.QuoteToASCII(s)
}

var nextdnsNets = []netip.Prefix{
	netip.MustParsePrefix("45.90.28.0/24"),
	netip.MustParsePrefix("45.90.30.0/24"),
	netip.MustParsePrefix("2a07:a8c0::/33"),
	netip.MustParsePrefix("2a07:a8c1::/33"),
}

// IsNextDNS reports whether a is one of NextDNS's anycast addresses.
func IsNextDNS(a netip.Addr) bool {
	for _, p := range nextdnsNets {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func parseBool(s string) (bool, string) {
	switch s {
	case "1", "on", "yes", "true", "enabled":
		return true, ""
	case "0", "off", "no", "false", "disabled":
		return false, ""
	}
	return false, fmt.Sprintf("%s is not a boolean (valid: 0 or 1)", quote(s))
}

// parseDuration accepts Go's forms (500ms, 1.5s, 2m) and bare seconds (10, 1.5).
func parseDuration(s string) (time.Duration, string) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || strings.ContainsAny(s, "eEnNiI") || f > maxDuration.Seconds() {
			return 0, fmt.Sprintf("%s is not a duration (valid: e.g. 10, 1.5s, 500ms, 2m)", quote(s))
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < minDuration || d > maxDuration {
		return 0, fmt.Sprintf("%s is not a positive duration from %s to %s", quote(s), minDuration, maxDuration)
	}
	return d, ""
}

// parseLinkURL accepts an https:// URL of printable ASCII without spaces. Its path holds the
// user's secret, so the message never repeats the value.
func parseLinkURL(s string) (string, string) {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		return "", "is not an https:// URL (valid: the NextDNS link IP URL, https://link-ip.nextdns.io/<id>/<key>)"
	}
	host, _, _ := strings.Cut(rest, "/")
	if host == "" || len(s) > 512 {
		return "", "is not an https:// URL with a host (valid: https://link-ip.nextdns.io/<id>/<key>)"
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '\'' || s[i] == '"' || s[i] == '\\' {
			return "", "contains a space, quote, control or non-ASCII character (valid: https://link-ip.nextdns.io/<id>/<key>)"
		}
	}
	return s, ""
}

func parseCount(s string) (int, string) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxCount {
		return 0, fmt.Sprintf("%s is not a whole number from 1 to %d", quote(s), maxCount)
	}
	return n, ""
}

func parsePath(s string) (string, string) {
	if !path.IsAbs(s) || path.Clean(s) != s || s == "/" || len(s) > 256 {
		return "", fmt.Sprintf("%s is not a clean absolute path (valid: e.g. /var/run/nextdns-failover/servers.conf)", quote(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return "", fmt.Sprintf("%s contains a control character", quote(s))
		}
	}
	return s, ""
}

func parseSectionName(s string) (string, string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "", fmt.Sprintf("%s is not a UCI section name (valid: letters, digits and _, e.g. cfg01411c)", quote(s))
		}
	}
	return s, ""
}

// parseName checks a DNS name: labels of 1-63 letters, digits, '-' or '_', 253 bytes at most.
func parseName(s string) (string, string) {
	bad := fmt.Sprintf("%s is not a DNS name (valid: e.g. probe-test.dns.nextdns.io)", quote(s))
	n := strings.TrimSuffix(s, ".")
	if n == "" || len(n) > 253 {
		return "", bad
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return "", bad
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return "", bad
			}
		}
	}
	return n, ""
}
