package dnsmasq

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// Warning is one problem Audit found in the dhcp config: where it is, what it does to the
// router's DNS, and the uci commands that fix it.
type Warning struct {
	File    string // the dhcp UCI file
	Line    int    // line of the offending option, or of the section when an option is missing
	Message string // what is wrong and what it leads to
	Fix     string // uci commands that fix it, ending with the commit and the dnsmasq restart
}

// String is "FILE:LINE: message; fix: commands".
func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: %s; fix: %s", w.File, w.Line, w.Message, w.Fix)
}

// applyFix ends every fix: a restart (not only a reload) because ujail bind-mounts the
// servers-file when dnsmasq starts.
const applyFix = " && uci commit dhcp && /etc/init.d/dnsmasq restart"

// Audit checks the dhcp config for what would make dnsmasq ignore or undermine our
// servers-file (see AuditNetwork). It reads the network UCI file beside s.DHCPConfig, when
// there is one, to learn the router's own addresses, and resolves symlinks in the folders of
// the two servers-file paths before comparing them.
func Audit(dhcp *uci.Package, inst *Instance, s *config.Settings) []Warning {
	var network *uci.Package
	if s.DHCPConfig != "" {
		path := filepath.Join(filepath.Dir(s.DHCPConfig), "network")
		// Missing, unreadable or broken: the router's addresses stay unknown, which the
		// warnings then say.
		if f, err := os.Open(path); err == nil {
			network, _ = uci.Parse("network", f)
			_ = f.Close()
		}
	}
	// On OpenWrt /var is a symlink to /tmp: "/tmp/run/x" and "/var/run/x" are one file.
	if inst.ServersFile != "" && s.ServersFile != "" && resolveDir(inst.ServersFile) == resolveDir(s.ServersFile) {
		same := *inst
		same.ServersFile = s.ServersFile
		inst = &same
	}
	return AuditNetwork(dhcp, network, inst, s)
}

// resolveDir resolves the symlinks in the folder part of path (the file itself may not exist
// yet); a folder that cannot be resolved is kept as written.
func resolveDir(path string) string {
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return filepath.Clean(path)
	}
	return filepath.Join(dir, filepath.Base(path))
}

// AuditNetwork is Audit with the network UCI package given (nil when unknown). It returns
// its warnings in line order; it warns when:
//   - the instance's serversfile is not s.ServersFile (dnsmasq never reads our file);
//   - noresolv is not 1 (the ISP's resolvers from the resolv file join the list);
//   - strictorder is not 1 (dnsmasq prefers the fastest server, not the first);
//   - allservers is 1 (every query goes to every server, the backup included);
//   - a global (non-/domain/) server entry exists (dnsmasq puts it before our file's lines);
//   - a DHCP option 6 (or DHCPv6 option 23) hands clients a DNS server that is not the router,
//     so they bypass dnsmasq altogether. The router's addresses are those of the interfaces in
//     network; without network, every explicit address is reported, saying so.
func AuditNetwork(dhcp, network *uci.Package, inst *Instance, s *config.Settings) []Warning {
	file := s.DHCPConfig
	if file == "" {
		file = "/etc/config/dhcp"
	}
	sec := dhcp.Section(inst.Section)
	if sec == nil {
		return []Warning{{File: file, Line: inst.Line, Message: fmt.Sprintf("dnsmasq instance %s is not in this dhcp config", inst.Ref), Fix: "uci show dhcp"}}
	}
	key := "dhcp." + inst.Ref
	var ws []Warning
	add := func(line int, fix, format string, args ...any) {
		ws = append(ws, Warning{File: file, Line: line, Message: fmt.Sprintf(format, args...), Fix: fix + applyFix})
	}
	lineOf := func(name string) int {
		if o := sec.Option(name); o != nil && len(o.Lines) > 0 {
			return o.Lines[len(o.Lines)-1]
		}
		return sec.Line
	}

	if want := s.ServersFile; filepath.Clean(inst.ServersFile) != filepath.Clean(want) || inst.ServersFile == "" {
		fix := fmt.Sprintf("uci set %s.serversfile=%s", key, shellQuote(want))
		if inst.ServersFile == "" {
			add(lineOf("serversfile"), fix, "dnsmasq instance %s has no serversfile, so it never reads ours (%s)", inst.Ref, want)
		} else {
			add(lineOf("serversfile"), fix, "dnsmasq instance %s reads its servers from %s, not from ours (%s)", inst.Ref, inst.ServersFile, want)
		}
	}
	if !inst.NoResolv {
		add(lineOf("noresolv"), fmt.Sprintf("uci set %s.noresolv='1'", key),
			"dnsmasq instance %s also uses the servers of its resolv file (noresolv is not 1): the ISP's resolvers answer beside NextDNS", inst.Ref)
	}
	if !inst.StrictOrder {
		add(lineOf("strictorder"), fmt.Sprintf("uci set %s.strictorder='1'", key),
			"dnsmasq instance %s does not keep the servers' order (strictorder is not 1): it sends queries to whichever server is fastest, the backup included", inst.Ref)
	}
	if inst.AllServers {
		add(lineOf("allservers"), fmt.Sprintf("uci delete %s.allservers", key),
			"dnsmasq instance %s sends every query to every server (allservers is 1), the backup included", inst.Ref)
	}
	if o := sec.Option("server"); o != nil {
		for i, v := range o.Values {
			if isDomainServer(v) {
				continue
			}
			ws = append(ws, Warning{File: file, Line: lineAt(o, i, sec.Line), Fix: dhcpServerFix(sec, key, o, v), Message: fmt.Sprintf(
				"dnsmasq instance %s has the global server '%s', which dnsmasq puts before the servers-file: it answers instead of NextDNS", inst.Ref, v)})
		}
	}
	ws = append(ws, auditDNSOptions(file, dhcp, network)...)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Line < ws[j].Line })
	return ws
}

// lineAt is the line of the i-th value of o.
func lineAt(o *uci.Option, i, fallback int) int {
	switch {
	case i < len(o.Lines):
		return o.Lines[i]
	case len(o.Lines) > 0:
		return o.Lines[len(o.Lines)-1]
	}
	return fallback
}

// auditDNSOptions finds DHCP options that hand clients DNS servers other than the router:
// dhcp_option and dhcp_option_force values "6,ADDR..." or "option:dns-server,ADDR..." (with
// optional tag:, net:, vendor:, encap: prefixes), and their DHCPv6 form option6:23 /
// option6:dns-server, in every section but ignored dhcp ones.
func auditDNSOptions(file string, dhcp, network *uci.Package) []Warning {
	own, known := routerAddrs(network)
	var ws []Warning
	for _, sec := range dhcp.Sections {
		if sec.Type == "dhcp" && uciBool(sec, "ignore") {
			continue
		}
		for _, name := range []string{"dhcp_option", "dhcp_option_force"} {
			o := sec.Option(name)
			if o == nil {
				continue
			}
			for i, v := range o.Values {
				addrs, ok := dnsOption(v)
				if !ok {
					continue
				}
				var foreign []string
				for _, a := range addrs {
					if !isRouter(a, own) {
						foreign = append(foreign, a)
					}
				}
				if len(foreign) == 0 {
					continue
				}
				ref := dhcp.Ref(sec)
				fix := fmt.Sprintf("uci del_list dhcp.%s.%s=%s", ref, name, shellQuote(v))
				if !o.List {
					fix = fmt.Sprintf("uci delete dhcp.%s.%s", ref, name)
				}
				msg := fmt.Sprintf("%s section %s hands DHCP clients the DNS server %s, so they bypass the router and NextDNS",
					sec.Type, ref, strings.Join(foreign, ", "))
				if !known {
					msg = fmt.Sprintf("%s section %s hands DHCP clients the DNS server %s; with no network config beside the dhcp file this cannot be checked against the router's own addresses: if it is not the router, clients bypass it and NextDNS (0.0.0.0 always means the router)",
						sec.Type, ref, strings.Join(foreign, ", "))
				}
				ws = append(ws, Warning{File: file, Line: lineAt(o, i, sec.Line), Message: msg, Fix: fix + applyFix})
			}
		}
	}
	return ws
}

// dnsOption parses a dnsmasq dhcp-option value. ok is false when it is not the DNS-servers
// option; addrs are its values as written (an empty list sends no servers: not a leak).
func dnsOption(v string) (addrs []string, ok bool) {
	fields := strings.Split(v, ",")
	i := 0
	for i < len(fields) {
		f := strings.TrimSpace(fields[i])
		if !hasAnyPrefix(f, "tag:", "net:", "vendor:", "encap:", "vi-encap:") {
			break
		}
		i++
	}
	if i == len(fields) {
		return nil, false
	}
	switch strings.ToLower(strings.TrimSpace(fields[i])) {
	case "6", "option:6", "option:dns-server", "option6:23", "option6:dns-server":
	default:
		return nil, false
	}
	for _, f := range fields[i+1:] {
		if f = strings.TrimSpace(f); f != "" {
			addrs = append(addrs, f)
		}
	}
	return addrs, true
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// isRouter reports whether a dhcp-option address stands for the router: dnsmasq's 0.0.0.0 and
// [::] mean "this machine", otherwise one of the router's own addresses.
func isRouter(text string, own []netip.Addr) bool {
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(text, "["), "]"))
	if err != nil {
		return false
	}
	return a.IsUnspecified() || slices.Contains(own, a.Unmap())
}

// routerAddrs collects the static addresses of every interface in the network package
// (ipaddr and ip6addr, with or without a /prefix). known is false without a network package.
func routerAddrs(network *uci.Package) (own []netip.Addr, known bool) {
	if network == nil {
		return nil, false
	}
	for _, sec := range network.SectionsOfType("interface") {
		for _, name := range []string{"ipaddr", "ip6addr"} {
			o := sec.Option(name)
			if o == nil {
				continue
			}
			for _, v := range o.Values {
				for _, f := range strings.Fields(v) {
					addr, _, _ := strings.Cut(f, "/")
					if a, err := netip.ParseAddr(addr); err == nil && !a.IsLoopback() {
						own = append(own, a.Unmap())
					}
				}
			}
		}
	}
	return own, true
}

// shellQuote quotes v for a POSIX shell, as uci show does: '...' with ' written as '\”.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
