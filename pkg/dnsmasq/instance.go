package dnsmasq

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// Instance is one dnsmasq instance as OpenWrt's dhcp config describes it: a `config dnsmasq`
// section, which procd runs as an instance named after the section.
type Instance struct {
	Section string // the section's name: cfgNNHHHH when anonymous, as procd names the instance
	Ref     string // how `uci show` names it, for messages and uci commands: "@dnsmasq[0]" or the name
	Line    int    // line of its `config dnsmasq` statement

	PIDFile     string // /var/run/dnsmasq/dnsmasq.<section>.pid, where OpenWrt's init script puts it
	ServersFile string // option serversfile (--servers-file); empty when unset
	ResolvFile  string // option resolvfile; empty = OpenWrt's default
	ConfDir     string // option confdir; empty = OpenWrt's default

	NoResolv    bool // option noresolv (--no-resolv)
	StrictOrder bool // option strictorder (--strict-order)
	AllServers  bool // option allservers (--all-servers)

	Servers       []string // global server entries: dnsmasq lists them before the servers-file
	DomainServers []string // server entries for /domain/s, which keep an order of their own
}

// PIDDir is where OpenWrt's dnsmasq init script writes the instances' pid files.
const PIDDir = "/var/run/dnsmasq"

// FindInstance returns the dnsmasq section called name in the dhcp config, or the first one
// when name is empty. name may be a section name (cfgNNHHHH for an anonymous one) or a
// `uci show` reference such as "@dnsmasq[1]" or "@dnsmasq[-1]". The error wraps ErrNoInstance
// and lists the instances that exist, e.g. "no dnsmasq section named 'x' (have: cfg01411c,
// lan_dns)"; LoadInstance adds the file's name.
func FindInstance(dhcp *uci.Package, name string) (*Instance, error) {
	secs := dhcp.SectionsOfType("dnsmasq")
	var have []string
	for _, s := range secs {
		have = append(have, s.Name)
	}
	haveText := "none"
	if len(have) > 0 {
		haveText = strings.Join(have, ", ")
	}

	var sec *uci.Section
	switch {
	case name == "" && len(secs) == 0:
		return nil, fmt.Errorf("%w at all (add one: uci add dhcp dnsmasq)", ErrNoInstance)
	case name == "":
		sec = secs[0]
	case strings.HasPrefix(name, "@"):
		sec = byRef(dhcp, secs, name)
	default:
		sec = dhcp.Section(name)
		if sec != nil && sec.Type != "dnsmasq" {
			return nil, fmt.Errorf("%w named '%s': it is a '%s' section (have: %s)", ErrNoInstance, name, sec.Type, haveText)
		}
	}
	if sec == nil {
		return nil, fmt.Errorf("%w named '%s' (have: %s)", ErrNoInstance, name, haveText)
	}
	return newInstance(dhcp, sec), nil
}

// byRef resolves "@dnsmasq[N]" (negative N counts from the end, as uci does).
func byRef(dhcp *uci.Package, secs []*uci.Section, ref string) *uci.Section {
	rest, ok := strings.CutPrefix(ref, "@dnsmasq[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
	if err != nil {
		return nil
	}
	if n < 0 {
		n += len(secs)
	}
	if n < 0 || n >= len(secs) {
		return nil
	}
	return secs[n]
}

func newInstance(dhcp *uci.Package, sec *uci.Section) *Instance {
	in := &Instance{
		Section:     sec.Name,
		Ref:         dhcp.Ref(sec),
		Line:        sec.Line,
		PIDFile:     filepath.Join(PIDDir, "dnsmasq."+sec.Name+".pid"),
		ServersFile: get(sec, "serversfile"),
		ResolvFile:  get(sec, "resolvfile"),
		ConfDir:     get(sec, "confdir"),
		NoResolv:    uciBool(sec, "noresolv"),
		StrictOrder: uciBool(sec, "strictorder"),
		AllServers:  uciBool(sec, "allservers"),
	}
	if o := sec.Option("server"); o != nil {
		for _, v := range o.Values {
			if isDomainServer(v) {
				in.DomainServers = append(in.DomainServers, v)
			} else {
				in.Servers = append(in.Servers, v)
			}
		}
	}
	return in
}

// isDomainServer tells a server entry for some domains ("/lan/192.168.1.1") from a global
// one. "/#/..." names every domain, so it is global in effect and counts as one.
func isDomainServer(v string) bool {
	if !strings.HasPrefix(v, "/") {
		return false
	}
	end := strings.LastIndexByte(v, '/')
	for _, d := range strings.Split(v[1:max(end, 1)], "/") {
		if d == "#" {
			return false
		}
	}
	return true
}

// get returns an option's value as uci get prints it, "" when unset.
func get(sec *uci.Section, name string) string {
	v, _ := sec.Get(name)
	return v
}

// uciBool reads a boolean the way OpenWrt's config_get_bool does: 1, on, true, yes and
// enabled are true; anything else, or nothing, is false (the default of every boolean audited
// here).
func uciBool(sec *uci.Section, name string) bool {
	v, ok := sec.Get(name)
	if !ok {
		return false
	}
	switch v {
	case "1", "on", "true", "yes", "enabled":
		return true
	}
	return false
}

// LoadDHCP reads and parses the dhcp UCI file at path as the package "dhcp"; errors name the file (and the line,
// for a parse error).
func LoadDHCP(path string) (*uci.Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dhcp config: %w", err)
	}
	defer func() { _ = f.Close() }()
	// The package is "dhcp" whatever the file is called: that is what uci commands name.
	p, err := uci.Parse("dhcp", f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// LoadInstance reads the dhcp UCI file at path and finds the dnsmasq instance called name
// (empty: the first); errors name the file, e.g. "/etc/config/dhcp: no dnsmasq section named
// 'x' (have: cfg01411c, lan_dns)".
func LoadInstance(path, name string) (*uci.Package, *Instance, error) {
	p, err := LoadDHCP(path)
	if err != nil {
		return nil, nil, err
	}
	in, err := FindInstance(p, name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, in, nil
}
