package dnsmasq

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// Forwarder is a local DNS proxy on the router that dnsmasq can forward to: https-dns-proxy,
// stubby or the NextDNS CLI. To our config it is a loopback address with a port.
type Forwarder struct {
	Kind     string         // "https-dns-proxy", "stubby" or "NextDNS CLI"
	Addr     netip.AddrPort // where dnsmasq reaches it
	NextDNS  bool           // it forwards to NextDNS (and so carries the user's profile)
	Resolver string         // what it forwards to, for messages: a host name or two, never a URL path
	File     string         // where it was found (router path)
	Line     int            // line in File, 0 when File is not line-based
}

// Server is the forwarder in dnsmasq's form, e.g. "127.0.0.1#5053".
func (f Forwarder) Server() string { return config.Upstream{AddrPort: f.Addr}.String() }

// String is "https-dns-proxy 127.0.0.1#5053 (NextDNS, /etc/config/https-dns-proxy:14)".
func (f Forwarder) String() string {
	what := f.Resolver
	if f.NextDNS {
		what = "NextDNS"
	}
	where := f.File
	if f.Line > 0 {
		where += ":" + strconv.Itoa(f.Line)
	}
	return fmt.Sprintf("%s %s (%s, %s)", f.Kind, f.Server(), what, where)
}

// Where the forwarders keep their configuration, and the NextDNS CLI's port in its router setup.
const (
	HTTPSDNSProxyConfig = "/etc/config/https-dns-proxy"
	StubbyConfig        = "/etc/config/stubby"
	NextDNSCLIConfig    = "/etc/nextdns.conf"
	// NextDNSCLIPort is where the NextDNS CLI listens with setup-router on (its router/openwrt).
	NextDNSCLIPort = 5342
	// httpsDNSProxyFirstPort is https-dns-proxy's default listen_port for its first section;
	// each later section's default is one more (its init script counts every section).
	httpsDNSProxyFirstPort = 5053
	// maxSmallFile bounds what is read of a forwarder's own config: real ones are a few KiB.
	maxSmallFile = uci.MaxInputSize
)

// FindForwarders looks for local NextDNS forwarders and other encrypted-DNS proxies under
// root (the router's "/"; tests pass a folder). Files that are missing are skipped silently;
// files that cannot be read or parsed are reported in problems, with their name.
func FindForwarders(root string) (found []Forwarder, problems []error) {
	load := func(name, path string) *uci.Package {
		data, truncated, err := readRegular(filepath.Join(root, path), maxSmallFile)
		if err != nil {
			if !isNotExist(err) {
				problems = append(problems, fmt.Errorf("%s: %w", path, reason(err)))
			}
			return nil
		}
		if truncated {
			problems = append(problems, fmt.Errorf("%s: larger than %d bytes: not read", path, maxSmallFile))
			return nil
		}
		p, err := uci.Parse(name, bytes.NewReader(data))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", path, err))
			return nil
		}
		return p
	}
	if p := load("https-dns-proxy", HTTPSDNSProxyConfig); p != nil {
		fs, errs := HTTPSDNSProxy(p, HTTPSDNSProxyConfig)
		found, problems = append(found, fs...), append(problems, errs...)
	}
	if p := load("stubby", StubbyConfig); p != nil {
		fs, errs := Stubby(p, StubbyConfig)
		found, problems = append(found, fs...), append(problems, errs...)
	}
	if f, ok := nextDNSCLI(root); ok {
		found = append(found, f)
	}
	return found, problems
}

// HTTPSDNSProxy reads https-dns-proxy's UCI config as its init script does: one proxy per
// `config https-dns-proxy` section, listening on listen_addr (default: the `config main`
// section's listen_addr, else 127.0.0.1; 0.0.0.0 and :: mean loopback to dnsmasq) and
// listen_port (default 5053 for the first section, one more for each later one). A section
// whose resolver_url's host is NextDNS is a NextDNS forwarder.
func HTTPSDNSProxy(p *uci.Package, file string) ([]Forwarder, []error) {
	globalAddr := "127.0.0.1"
	for _, sec := range p.SectionsOfType("main") {
		if v, ok := sec.Get("listen_addr"); ok && v != "" {
			globalAddr = v
		}
	}
	var out []Forwarder
	var problems []error
	port := httpsDNSProxyFirstPort
	for _, sec := range p.SectionsOfType("https-dns-proxy") {
		defPort := port
		port++
		line := sec.Line
		url, _ := sec.Get("resolver_url")
		if o := sec.Option("resolver_url"); o != nil && len(o.Lines) > 0 {
			line = o.Lines[len(o.Lines)-1]
		}
		addrText := globalAddr
		if v, ok := sec.Get("listen_addr"); ok && v != "" {
			addrText = v
		}
		switch addrText { // as its dnsmasq_doh_server maps them
		case "0.0.0.0", "::ffff:0.0.0.0":
			addrText = "127.0.0.1"
		case "::":
			addrText = "::1"
		}
		portNum := defPort
		if v, ok := sec.Get("listen_port"); ok && v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				problems = append(problems, fmt.Errorf("%s:%d: option 'listen_port': %q is not a port (1-65535)", file, lineOf(sec, "listen_port"), v))
				continue
			}
			portNum = n
		}
		addr, err := netip.ParseAddr(addrText)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s:%d: option 'listen_addr': %q is not an IP address", file, lineOf(sec, "listen_addr"), addrText))
			continue
		}
		host := urlHost(url)
		out = append(out, Forwarder{
			Kind:     "https-dns-proxy",
			Addr:     netip.AddrPortFrom(addr.Unmap(), uint16(portNum)),
			NextDNS:  isNextDNSHost(host),
			Resolver: orUnknown(host),
			File:     file,
			Line:     line,
		})
	}
	return out, problems
}

// Stubby reads stubby's UCI config: every listen_address of its `config stubby` section
// ("127.0.0.1@5453" is dnsmasq's 127.0.0.1#5453; no @port means 53) is one forwarder, a
// NextDNS one when every `config resolver` has a NextDNS tls_auth_name. With `option manual
// '1'` stubby ignores UCI for /etc/stubby/stubby.yml, which this does not read: it says so.
func Stubby(p *uci.Package, file string) ([]Forwarder, []error) {
	var problems []error
	var names []string
	nextdns := true
	for _, r := range p.SectionsOfType("resolver") {
		n, _ := r.Get("tls_auth_name")
		if !isNextDNSHost(n) {
			nextdns = false
		}
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		nextdns = false
	}
	var out []Forwarder
	for _, sec := range p.SectionsOfType("stubby") {
		if uciBool(sec, "manual") {
			problems = append(problems, fmt.Errorf("%s:%d: option 'manual' is 1: stubby takes its resolvers from /etc/stubby/stubby.yml, which check does not read", file, lineOf(sec, "manual")))
			continue
		}
		o := sec.Option("listen_address")
		if o == nil {
			continue
		}
		for i, v := range o.Values {
			a, ps, hasPort := strings.Cut(v, "@")
			port := 53
			if hasPort {
				n, err := strconv.Atoi(ps)
				if err != nil || n < 1 || n > 65535 {
					problems = append(problems, fmt.Errorf("%s:%d: list 'listen_address': %q has no valid port after '@'", file, lineAt(o, i, sec.Line), v))
					continue
				}
				port = n
			}
			addr, err := netip.ParseAddr(a)
			if err != nil {
				problems = append(problems, fmt.Errorf("%s:%d: list 'listen_address': %q is not ADDRESS@PORT", file, lineAt(o, i, sec.Line), v))
				continue
			}
			if addr.IsUnspecified() {
				if addr.Is4() {
					addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
				} else {
					addr = netip.IPv6Loopback()
				}
			}
			out = append(out, Forwarder{
				Kind:     "stubby",
				Addr:     netip.AddrPortFrom(addr.Unmap(), uint16(port)),
				NextDNS:  nextdns,
				Resolver: orUnknown(strings.Join(names, ", ")),
				File:     file,
				Line:     lineAt(o, i, sec.Line),
			})
		}
	}
	return out, problems
}

// nextDNSCLI finds the NextDNS CLI's router setup: `setup-router true` in /etc/nextdns.conf,
// or the nextdns.conf it writes into a dnsmasq conf-dir.
func nextDNSCLI(root string) (Forwarder, bool) {
	f := Forwarder{
		Kind:     "NextDNS CLI",
		Addr:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), NextDNSCLIPort),
		NextDNS:  true,
		Resolver: "NextDNS",
	}
	if data, _, err := readRegular(filepath.Join(root, NextDNSCLIConfig), maxSmallFile); err == nil {
		for i, l := range strings.Split(string(data), "\n") {
			fields := strings.Fields(l)
			if len(fields) == 2 && fields[0] == "setup-router" && fields[1] == "true" {
				f.File, f.Line = NextDNSCLIConfig, i+1
				return f, true
			}
		}
	}
	m, _ := filepath.Glob(filepath.Join(root, "tmp", "dnsmasq*.d", "nextdns.conf"))
	for _, p := range m {
		if data, _, err := readRegular(p, maxSmallFile); err == nil && bytes.Contains(data, []byte("server=127.0.0.1#5342")) {
			f.File = "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(p, filepath.Clean(root))), "/")
			return f, true
		}
	}
	return Forwarder{}, false
}

// Placement says whether s has f in the right list, as one line, and how to fix it. level is
// "ok" (right where it belongs), "warning" (in the wrong list, or a NextDNS forwarder missing)
// or "note" (a non-NextDNS proxy our config does not use, which is fine).
func Placement(f Forwarder, s *config.Settings) (level, line string) {
	u := config.Upstream{AddrPort: f.Addr}
	inPrimary, inBackup := slices.Contains(s.Primary, u), slices.Contains(s.Secondary, u)
	pkg := uciPackage(s)
	key := pkg + ".settings"
	v := shellQuote(f.Server())
	apply := fmt.Sprintf(" && uci commit %s && /etc/init.d/nextdns-failover reload", pkg)
	switch {
	case f.NextDNS && inPrimary:
		return "ok", fmt.Sprintf("%s is a primary in our config: right", f)
	case f.NextDNS && inBackup:
		return "warning", fmt.Sprintf("%s is a backup in our config: it should be a primary: uci del_list %s.secondary=%s && uci add_list %s.primary=%s%s", f, key, v, key, v, apply)
	case f.NextDNS:
		return "warning", fmt.Sprintf("%s is not in our config, so dnsmasq never uses it: make it a primary: uci add_list %s.primary=%s%s", f, key, v, apply)
	case inPrimary && s.Mode == config.Privacy:
		return "warning", fmt.Sprintf("%s is a primary in our config but does not forward to NextDNS: privacy mode must not use it: uci del_list %s.primary=%s%s", f, key, v, apply)
	case inPrimary:
		return "warning", fmt.Sprintf("%s is a primary in our config but does not forward to NextDNS: it should be a backup: uci del_list %s.primary=%s && uci add_list %s.secondary=%s%s", f, key, v, key, v, apply)
	case inBackup:
		return "ok", fmt.Sprintf("%s is a backup in our config: right", f)
	case s.Mode == config.Privacy:
		return "ok", fmt.Sprintf("%s is not in our config: right in privacy mode, which uses NextDNS only", f)
	}
	return "note", fmt.Sprintf("%s is not in our config; it could be an encrypted backup: uci add_list %s.secondary=%s%s", f, key, v, apply)
}

// uciPackage is the UCI package name of our config, for uci commands.
func uciPackage(s *config.Settings) string {
	if s.File != "" {
		if b := filepath.Base(s.File); b != "." && b != "/" {
			return b
		}
	}
	return "nextdns-failover"
}

// urlHost is the host of an http(s) URL, without user info or port; "" when there is none.
// Only the host is ever shown: the path of a DoH URL may name the user's profile.
func urlHost(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "[") {
		if i := strings.IndexByte(rest, ']'); i >= 0 {
			return rest[1:i]
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return strings.ToLower(rest)
}

// isNextDNSHost: dns.nextdns.io, <profile>.dns.nextdns.io and any other name under nextdns.io.
func isNextDNSHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	return h == "nextdns.io" || strings.HasSuffix(h, ".nextdns.io")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown resolver"
	}
	return s
}

// lineOf is the line of option name in sec, or the section's line.
func lineOf(sec *uci.Section, name string) int {
	if o := sec.Option(name); o != nil && len(o.Lines) > 0 {
		return o.Lines[len(o.Lines)-1]
	}
	return sec.Line
}
