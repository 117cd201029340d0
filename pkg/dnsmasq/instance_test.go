package dnsmasq

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

func loadDHCP(t *testing.T, dir string) *uci.Package {
	t.Helper()
	p, err := LoadDHCP(filepath.Join("testdata", dir, "dhcp"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindInstance(t *testing.T) {
	tests := []struct {
		name    string
		dir     string
		want    string // instance name
		wantRef string
		wantErr string // substring of the error; "" = success
	}{
		{name: "first by default", dir: "two-instances", want: "cfg01411c", wantRef: "@dnsmasq[0]"},
		{name: "by anonymous name", dir: "two-instances", want: "cfg05411c", wantRef: "@dnsmasq[2]"},
		{name: "by section name", dir: "two-instances", want: "guest_dns", wantRef: "guest_dns"},
		{name: "by reference", dir: "two-instances", want: "@dnsmasq[1]", wantRef: "guest_dns"},
		{name: "by negative reference", dir: "two-instances", want: "@dnsmasq[-1]", wantRef: "@dnsmasq[2]"},
		{name: "unknown name lists what exists", dir: "two-instances", want: "x", wantErr: "no dnsmasq section named 'x' (have: cfg01411c, guest_dns, cfg05411c)"},
		{name: "reference out of range", dir: "two-instances", want: "@dnsmasq[3]", wantErr: "named '@dnsmasq[3]'"},
		{name: "a section of another type", dir: "two-instances", want: "lan", wantErr: "named 'lan': it is a 'dhcp' section"},
		{name: "the realistic OpenWrt file", dir: "realistic", want: "", wantRef: "@dnsmasq[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := FindInstance(loadDHCP(t, tt.dir), tt.want)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoInstance) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FindInstance(%q) error = %v, want ErrNoInstance saying %q", tt.want, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindInstance(%q): %v", tt.want, err)
			}
			if in.Ref != tt.wantRef {
				t.Errorf("Ref = %q, want %q", in.Ref, tt.wantRef)
			}
			if want := "/var/run/dnsmasq/dnsmasq." + in.Section + ".pid"; in.PIDFile != want {
				t.Errorf("PIDFile = %q, want %q", in.PIDFile, want)
			}
			if !strings.HasPrefix(tt.want, "@") && tt.want != "" && in.Section != tt.want {
				t.Errorf("Section = %q, want %q", in.Section, tt.want)
			}
		})
	}
}

func TestInstanceFields(t *testing.T) {
	in, err := FindInstance(loadDHCP(t, "realistic"), "")
	if err != nil {
		t.Fatal(err)
	}
	// As OpenWrt's uci -X show names it (../shared/testdata/uci/33-realistic-dhcp/show-X.out).
	if in.Section != "cfg01411c" || in.PIDFile != "/var/run/dnsmasq/dnsmasq.cfg01411c.pid" {
		t.Errorf("Section, PIDFile = %q, %q", in.Section, in.PIDFile)
	}
	if in.ServersFile != "/tmp/dnsmasq.d/servers.conf" || !in.NoResolv || in.StrictOrder || in.AllServers {
		t.Errorf("ServersFile %q NoResolv %v StrictOrder %v AllServers %v", in.ServersFile, in.NoResolv, in.StrictOrder, in.AllServers)
	}
	if !slices.Equal(in.Servers, []string{"127.0.0.1#5353"}) {
		t.Errorf("Servers = %q", in.Servers)
	}
	if !slices.Equal(in.DomainServers, []string{"/lan/192.168.1.1", "/example.com/10.0.0.53"}) {
		t.Errorf("DomainServers = %q", in.DomainServers)
	}
	if in.ResolvFile != "/tmp/resolv.conf.d/resolv.conf.auto" {
		t.Errorf("ResolvFile = %q", in.ResolvFile)
	}

	leaky, err := FindInstance(loadDHCP(t, "leaky"), "")
	if err != nil {
		t.Fatal(err)
	}
	if leaky.NoResolv || leaky.StrictOrder || !leaky.AllServers {
		t.Errorf("uci booleans: noresolv '0' -> %v, strictorder 'no' -> %v, allservers 'yes' -> %v", leaky.NoResolv, leaky.StrictOrder, leaky.AllServers)
	}
	if !slices.Equal(leaky.Servers, []string{"8.8.8.8", "/#/1.1.1.1"}) {
		t.Errorf("global servers = %q (/#/ matches every domain: global in effect)", leaky.Servers)
	}
}

func TestLoadInstanceErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		path     string
		content  string // "-" = no file
		instance string
		want     []string // substrings
	}{
		{name: "missing file", path: "dhcp", content: "-", want: []string{"dhcp", "no such file"}},
		{name: "broken file", path: "dhcp", content: "config dnsmasq\n\toption 'unterminated\n", want: []string{"dhcp:", "Parse error", "line"}},
		{name: "no dnsmasq section", path: "dhcp", content: "config dhcp 'lan'\n", want: []string{"dhcp: no dnsmasq section at all"}},
		{name: "unknown instance", path: "dhcp", content: "config dnsmasq\n\nconfig dnsmasq 'lan_dns'\n", instance: "x",
			want: []string{"dhcp: no dnsmasq section named 'x' (have: cfg01411c, lan_dns)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name, tt.path)
			if tt.content != "-" {
				writeFileAll(t, path, tt.content)
			}
			_, _, err := LoadInstance(path, tt.instance)
			if err == nil {
				t.Fatal("LoadInstance succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
