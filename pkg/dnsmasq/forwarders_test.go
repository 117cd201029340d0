package dnsmasq

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

func TestFindForwarders(t *testing.T) {
	root := world(t, map[string]string{
		"/etc/config/https-dns-proxy": "config main 'config'\n\toption dnsmasq_config_update '*'\n\n" +
			"config https-dns-proxy\n\toption resolver_url 'https://dns.nextdns.io/abc123'\n\n" +
			"config https-dns-proxy\n\toption resolver_url 'https://cloudflare-dns.com/dns-query'\n\n" +
			"config https-dns-proxy\n\toption resolver_url 'https://dns.google/dns-query'\n\toption listen_addr '0.0.0.0'\n\toption listen_port '5300'\n",
		"/etc/config/stubby": "config stubby 'global'\n\tlist listen_address '127.0.0.1@5453'\n\tlist listen_address '0::1@5453'\n\n" +
			"config resolver\n\toption address '45.90.28.0'\n\toption tls_auth_name 'abc123.dns.nextdns.io'\n\n" +
			"config resolver\n\toption address '45.90.30.0'\n\toption tls_auth_name 'abc123.dns.nextdns.io'\n",
		"/etc/nextdns.conf": "profile abc123\nsetup-router true\n",
	})
	fs, problems := FindForwarders(root)
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.String())
	}
	want := []string{
		"https-dns-proxy 127.0.0.1#5053 (NextDNS, /etc/config/https-dns-proxy:5)",
		"https-dns-proxy 127.0.0.1#5054 (cloudflare-dns.com, /etc/config/https-dns-proxy:8)",
		"https-dns-proxy 127.0.0.1#5300 (dns.google, /etc/config/https-dns-proxy:11)",
		"stubby 127.0.0.1#5453 (NextDNS, /etc/config/stubby:2)",
		"stubby ::1#5453 (NextDNS, /etc/config/stubby:3)",
		"NextDNS CLI 127.0.0.1#5342 (NextDNS, /etc/nextdns.conf:2)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, g := range got {
		if strings.Contains(g, "abc123") {
			t.Errorf("the profile id shows: %s", g)
		}
	}
}

func TestFindForwardersMixedStubbyAndCLIFile(t *testing.T) {
	root := world(t, map[string]string{
		"/etc/config/stubby": "config stubby 'global'\n\tlist listen_address '127.0.0.1@5453'\n" +
			"config resolver\n\toption tls_auth_name 'abc123.dns.nextdns.io'\n" +
			"config resolver\n\toption tls_auth_name 'dns.quad9.net'\n",
		"/tmp/dnsmasq.d/nextdns.conf": "no-resolv\nserver=127.0.0.1#5342\n",
		"/etc/config/https-dns-proxy": "config https-dns-proxy\n\toption listen_port 'x'\n",
	})
	fs, problems := FindForwarders(root)
	if len(fs) != 2 || fs[0].NextDNS || fs[0].Resolver != "abc123.dns.nextdns.io, dns.quad9.net" || fs[1].File != "/tmp/dnsmasq.d/nextdns.conf" {
		t.Errorf("got %v", fs)
	}
	if len(problems) != 1 || problems[0].Error() != `/etc/config/https-dns-proxy:2: option 'listen_port': "x" is not a port (1-65535)` {
		t.Errorf("problems %v", problems)
	}
}

func TestPlacement(t *testing.T) {
	up := func(s string) config.Upstream { return config.Upstream{AddrPort: netip.MustParseAddrPort(s)} }
	s := &config.Settings{File: "/etc/config/nextdns-failover", Mode: config.Availability,
		Primary: []config.Upstream{up("45.90.28.0:53")}, Secondary: []config.Upstream{up("127.0.0.1:5053"), up("127.0.0.1:5054")}}
	nd := Forwarder{Kind: "https-dns-proxy", Addr: netip.MustParseAddrPort("127.0.0.1:5053"), NextDNS: true, File: "/etc/config/https-dns-proxy", Line: 5}
	cf := Forwarder{Kind: "https-dns-proxy", Addr: netip.MustParseAddrPort("127.0.0.1:5054"), Resolver: "cloudflare-dns.com", File: "/etc/config/https-dns-proxy", Line: 8}
	level, line := Placement(nd, s)
	if level != "warning" || line != "https-dns-proxy 127.0.0.1#5053 (NextDNS, /etc/config/https-dns-proxy:5) is a backup in our config: it should be a primary: "+
		"uci del_list nextdns-failover.settings.secondary='127.0.0.1#5053' && uci add_list nextdns-failover.settings.primary='127.0.0.1#5053' && uci commit nextdns-failover && /etc/init.d/nextdns-failover reload" {
		t.Errorf("%s: %s", level, line)
	}
	if level, line := Placement(cf, s); level != "ok" || !strings.HasSuffix(line, "is a backup in our config: right") {
		t.Errorf("%s: %s", level, line)
	}
	s.Primary, s.Secondary = []config.Upstream{up("127.0.0.1:5053"), up("127.0.0.1:5054")}, nil
	if level, _ := Placement(nd, s); level != "ok" {
		t.Errorf("NextDNS primary: %s", level)
	}
	if level, line := Placement(cf, s); level != "warning" || !strings.Contains(line, "it should be a backup") {
		t.Errorf("%s: %s", level, line)
	}
	s.Primary = nil
	if level, line := Placement(nd, s); level != "warning" || !strings.Contains(line, "is not in our config, so dnsmasq never uses it") {
		t.Errorf("%s: %s", level, line)
	}
	if level, _ := Placement(cf, s); level != "note" {
		t.Errorf("unused backup: %s", level)
	}
}
