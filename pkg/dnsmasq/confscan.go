package dnsmasq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// ScanLimits bound what ScanConf reads, so a hostile or broken conf-dir cannot make it slow
// or large: real OpenWrt configs are a handful of files of a few KiB.
type ScanLimits struct {
	FileBytes  int64 // read of one file; the rest of a larger file is not checked
	TotalBytes int64 // read in all; files beyond it are not checked
	Files      int   // files read in all
	DirEntries int   // names read of one conf-dir
	Depth      int   // nesting of conf-file= and conf-dir= lines
}

// DefaultLimits: 1 MiB a file (uci's own limit), 8 MiB and 256 files in all, 4096 names a
// folder, 8 levels of includes. A router's conf-dirs hold a few files of a few KiB.
var DefaultLimits = ScanLimits{FileBytes: 1 << 20, TotalBytes: 8 << 20, Files: 256, DirEntries: 4096, Depth: 8}

// ServerLine is a global server line dnsmasq reads from its configuration: it comes before
// every line of the servers-file, so it answers instead of (or beside) NextDNS.
type ServerLine struct {
	File  string // router path
	Line  int
	Value string // what follows server= (or the dhcp list's value)
	DHCP  bool   // a `list server` of the dhcp UCI config, not a dnsmasq config line
	Fix   string // what to do about it
}

// Problem is the short form for status and the log, e.g. "a server= line in
// /tmp/dnsmasq.d/nextdns.conf:2 (server=127.0.0.1#5342) comes before the servers-file".
func (l ServerLine) Problem() string {
	if l.DHCP {
		return fmt.Sprintf("list server '%s' in %s:%d comes before the servers-file", l.Value, l.File, l.Line)
	}
	return fmt.Sprintf("a server= line in %s:%d (server=%s) comes before the servers-file", l.File, l.Line, l.Value)
}

// String is Problem with the fix.
func (l ServerLine) String() string { return l.Problem() + "; fix: " + l.Fix }

// Scan is what ScanConf found: the server lines, and what it could not check (each naming the
// file and why), in the order met.
type Scan struct {
	Lines    []ServerLine
	Problems []string
}

// Where OpenWrt's dnsmasq init script puts things.
const (
	generatedConf = "/var/etc/dnsmasq.conf." // + section: the config it generates from dhcp
	mainConf      = "/etc/dnsmasq.conf"
	legacyConfDir = "/tmp/dnsmasq.d" // the conf-dir before 24.10, and where the NextDNS CLI writes
)

// ScanConf finds every global server= line the dnsmasq instance section reads from its
// configuration files, under root (the router's "/"; tests pass a folder). When the config
// OpenWrt generated for the instance (/var/etc/dnsmasq.conf.<section>) exists, its conf-file=
// and conf-dir= lines say exactly what dnsmasq reads (its own server= lines are the dhcp
// `list server` entries, which Audit reports). Without it, the files OpenWrt's init script
// passes: /etc/dnsmasq.<section>.conf or else /etc/dnsmasq.conf, and the confdir option or else
// both /tmp/dnsmasq.d (before 24.10) and /tmp/dnsmasq.<section>.d (24.10 on). Includes are
// followed as dnsmasq follows them, within lim; a file met twice is read once.
func ScanConf(root string, section, confdir string, lim ScanLimits) Scan {
	sc := &scanner{root: root, lim: lim, seen: map[[2]uint64]bool{}}
	if section != "" {
		gen := generatedConf + section
		if _, err := os.Stat(sc.real(gen)); err == nil {
			sc.file(gen, 0, true)
			return sc.out
		}
	}
	conf := mainConf
	if section != "" {
		if _, err := os.Stat(sc.real("/etc/dnsmasq." + section + ".conf")); err == nil {
			conf = "/etc/dnsmasq." + section + ".conf"
		}
	}
	if _, err := os.Lstat(sc.real(conf)); err == nil {
		sc.file(conf, 0, false)
	}
	if confdir != "" {
		sc.dir(confdir, 0)
		return sc.out
	}
	for _, d := range []string{legacyConfDir, "/tmp/dnsmasq." + section + ".d"} {
		if section == "" && d != legacyConfDir {
			continue
		}
		if _, err := os.Lstat(sc.real(d)); err == nil {
			sc.dir(d, 0)
		}
	}
	return sc.out
}

type scanner struct {
	root  string
	lim   ScanLimits
	seen  map[[2]uint64]bool // device and inode of every file read
	total int64
	files int
	full  bool // a total limit was hit (and said)
	out   Scan
}

func (sc *scanner) real(p string) string { return filepath.Join(sc.root, filepath.FromSlash(p)) }

// Not inlined: inlined at its 11 call sites it cost the mips binary 2.1 KB of code (measured).
//
//go:noinline
func (sc *scanner) problem(format string, args ...any) {
	sc.out.Problems = append(sc.out.Problems, fmt.Sprintf(format, args...))
}

// file reads one config file. generated: OpenWrt's generated config, whose server= lines
// are the dhcp list (reported by Audit), so only its includes are followed.
func (sc *scanner) file(p string, depth int, generated bool) {
	if depth > sc.lim.Depth {
		sc.problem("%s: included more than %d levels deep: not checked", p, sc.lim.Depth)
		return
	}
	if sc.full {
		return
	}
	if sc.files >= sc.lim.Files || sc.total >= sc.lim.TotalBytes {
		sc.full = true
		sc.problem("%s and later files not checked: already read %d files, %d bytes", p, sc.files, sc.total)
		return
	}
	fi, err := os.Stat(sc.real(p))
	if err != nil {
		sc.problem("%s: cannot read: %v", p, reason(err))
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key := [2]uint64{uint64(st.Dev), uint64(st.Ino)}
		if sc.seen[key] {
			return // dnsmasq would read it again; its lines are already reported
		}
		sc.seen[key] = true
	}
	max := min(sc.lim.FileBytes, sc.lim.TotalBytes-sc.total)
	data, truncated, err := readRegular(sc.real(p), max)
	if err != nil {
		sc.problem("%s: cannot read: %v", p, reason(err))
		return
	}
	sc.files++
	sc.total += int64(len(data))
	if truncated {
		sc.problem("%s: larger than %d bytes: only the first %d checked", p, max, max)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		sc.problem("%s: holds NUL bytes (not a text file); dnsmasq stops each line at one, and so does this check", p)
	}
	dir := filepath.Dir(p)
	for i, raw := range bytes.Split(data, []byte("\n")) {
		if truncated && i > 0 && len(raw) == 0 {
			continue
		}
		key, val := directive(raw)
		switch key {
		case "server":
			if !generated && val != "" && !isDomainServer(val) {
				sc.out.Lines = append(sc.out.Lines, ServerLine{File: p, Line: i + 1, Value: val, Fix: fileFix(p, i+1, val)})
			}
		case "conf-file":
			if val == "" || val == "-" {
				continue
			}
			if !path.IsAbs(val) {
				val = filepath.Join(dir, val)
			}
			sc.file(path.Clean(val), depth+1, false)
		case "conf-dir":
			sc.dir(val, depth+1)
		case "conf-script":
			sc.problem("%s:%d: conf-script runs %q: the server lines it prints are not checked", p, i+1, val)
		}
	}
}

// directive parses one dnsmasq config line as dnsmasq's read_file does: the line ends at a NUL
// (C strings); quotes are removed; a # at the start of a word outside quotes starts a comment;
// "key=value" with blanks trimmed around both.
func directive(raw []byte) (key, val string) {
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		raw = raw[:i]
	}
	var b strings.Builder
	white, quoted := true, false
	for _, c := range string(raw) {
		switch {
		case c == '"':
			quoted = !quoted
			white = false
			continue
		case quoted:
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			white = true
			b.WriteRune(' ')
			continue
		case white && c == '#':
			goto done
		}
		white = false
		b.WriteRune(c)
	}
done:
	line := strings.TrimSpace(b.String())
	k, v, _ := strings.Cut(line, "=")
	return strings.TrimSpace(k), strings.TrimSpace(v)
}

// dir reads a conf-dir as dnsmasq 2.90 does: "DIR[,.ext...][,*.ext...]": names ending in a
// listed suffix are skipped; with *suffixes only names ending in one of them are read; dot
// files, names ending in ~ and #...# are skipped; only regular files (after symlinks) count;
// they are read in name order.
func (sc *scanner) dir(spec string, depth int) {
	parts := strings.Split(spec, ",")
	d := strings.TrimSpace(parts[0])
	if d == "" {
		return
	}
	var skip, match []string
	for _, s := range parts[1:] {
		switch s = strings.TrimSpace(s); {
		case s == "" || s == "*":
		case strings.HasPrefix(s, "*"):
			match = append(match, s[1:])
		default:
			skip = append(skip, s)
		}
	}
	f, err := os.Open(sc.real(d))
	if err != nil {
		if !isNotExist(err) {
			sc.problem("%s: cannot read the folder: %v", d, reason(err))
		}
		return
	}
	defer f.Close()
	names, err := f.Readdirnames(sc.lim.DirEntries + 1)
	if err != nil && len(names) == 0 && !isEOF(err) {
		sc.problem("%s: cannot read the folder: %v", d, reason(err))
		return
	}
	if len(names) > sc.lim.DirEntries {
		names = names[:sc.lim.DirEntries]
		sc.problem("%s: more than %d entries: only %d of them checked", d, sc.lim.DirEntries, sc.lim.DirEntries)
	}
	sort.Strings(names)
	for _, n := range names {
		if !confDirWants(n, skip, match) {
			continue
		}
		p := filepath.Join(d, n)
		fi, err := os.Stat(sc.real(p))
		if err != nil {
			sc.problem("%s: cannot read: %v", p, reason(err))
			continue
		}
		if !fi.Mode().IsRegular() {
			continue // dnsmasq skips folders, fifos and devices silently
		}
		sc.file(p, depth, false)
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// confDirWants applies dnsmasq's conf-dir name rules.
func confDirWants(n string, skip, match []string) bool {
	l := len(n)
	if l == 0 || n[0] == '.' || n[l-1] == '~' || (n[0] == '#' && n[l-1] == '#') {
		return false
	}
	if len(match) > 0 {
		ok := false
		for _, m := range match {
			if l > len(m) && strings.HasSuffix(n, m) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	for _, s := range skip {
		if l > len(s) && strings.HasSuffix(n, s) {
			return false
		}
	}
	return true
}

// NextDNSCLIFix is what to do about the NextDNS CLI's router setup: its nextdns.conf in
// dnsmasq's conf-dir puts server=127.0.0.1#5342 ahead of our servers-file.
const NextDNSCLIFix = "the NextDNS CLI writes it (setup-router on), so dnsmasq never sees our failover: turn its router setup off and keep it on its port: " +
	"nextdns config set -setup-router=false -listen=127.0.0.1:5342 && nextdns restart; then make it a primary: " +
	"uci add_list nextdns-failover.settings.primary='127.0.0.1#5342' && uci commit nextdns-failover && /etc/init.d/nextdns-failover reload && /etc/init.d/dnsmasq restart"

// fileFix says how to get rid of a server= line in a config file.
func fileFix(p string, line int, val string) string {
	switch {
	case path.Base(p) == "nextdns.conf" || strings.HasPrefix(val, "127.0.0.1#5342"):
		return NextDNSCLIFix
	case strings.HasPrefix(p, "/tmp/") || strings.HasPrefix(p, "/var/"):
		return fmt.Sprintf("%s is written at run time by another package: turn off that package's dnsmasq integration (an edit lasts only until it rewrites the file); to keep the server, list it in our config instead", p)
	}
	return fmt.Sprintf("delete or comment out line %d of %s (#server=%s), then /etc/init.d/dnsmasq restart; to keep the server, list it in our config instead", line, p, val)
}

// ServersAhead lists every global server line ahead of the servers-file for the instance:
// its dhcp `list server` entries (dhcp may be nil: not known) and the server= lines of its
// config files under root.
func ServersAhead(dhcp *uci.Package, inst *Instance, dhcpFile, root string, lim ScanLimits) Scan {
	var out Scan
	section, confdir := "", ""
	if inst != nil {
		section, confdir = inst.Section, inst.ConfDir
		if sec := dhcpSection(dhcp, inst); sec != nil {
			if o := sec.Option("server"); o != nil {
				for i, v := range o.Values {
					if !isDomainServer(v) {
						out.Lines = append(out.Lines, ServerLine{File: dhcpFile, Line: lineAt(o, i, sec.Line), Value: v, DHCP: true, Fix: dhcpServerFix(sec, "dhcp."+inst.Ref, o, v)})
					}
				}
			}
		}
	}
	sc := ScanConf(root, section, confdir, lim)
	out.Lines = append(out.Lines, sc.Lines...)
	out.Problems = append(out.Problems, sc.Problems...)
	return out
}

func dhcpSection(dhcp *uci.Package, inst *Instance) *uci.Section {
	if dhcp == nil {
		return nil
	}
	return dhcp.Section(inst.Section)
}

// dhcpServerFix removes a global server entry from dhcp. An entry https-dns-proxy added (it is
// also in doh_server) comes back at its next start unless its dnsmasq_config_update is '-'.
func dhcpServerFix(sec *uci.Section, key string, o *uci.Option, v string) string {
	fix := fmt.Sprintf("uci del_list %s.server=%s", key, shellQuote(v))
	if !o.List {
		fix = fmt.Sprintf("uci delete %s.server", key)
	}
	if d := sec.Option("doh_server"); d != nil && slices.Contains(d.Values, v) {
		fix = fmt.Sprintf("https-dns-proxy adds it at every start (dnsmasq-setup install moves it into our config and stops that); by hand: uci set https-dns-proxy.config.dnsmasq_config_update='-' && uci commit https-dns-proxy && %s && uci del_list %s.doh_server=%s", fix, key, shellQuote(v))
	}
	return fix + applyFix
}

// AuditServers is the daemon's check, for watchdog.Deps.Audit: every server line ahead of the
// servers-file (ServersAhead on the real "/"), and whatever could not be checked, as problems.
func AuditServers(s *config.Settings) []string {
	var inst *Instance
	var problems []string
	dhcp, err := LoadDHCP(s.DHCPConfig)
	if err == nil {
		inst, err = FindInstance(dhcp, s.DnsmasqInstance)
	}
	if err != nil {
		problems = append(problems, fmt.Sprintf("cannot check the dhcp config for server lines: %v", err))
	}
	sc := ServersAhead(dhcp, inst, s.DHCPConfig, "/", DefaultLimits)
	for _, l := range sc.Lines {
		problems = append(problems, l.Problem())
	}
	for _, p := range sc.Problems {
		problems = append(problems, "cannot check for server lines ahead of ours: "+p)
	}
	return problems
}
