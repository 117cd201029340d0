package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedConfigChecksCleanOnAPackagedRouter: the default config, on a dhcp file set up the
// way the package's install sets it up, is valid and leaves nothing to warn about; on OpenWrt's
// stock dhcp file, check names each thing to fix.
func TestShippedConfigChecksCleanOnAPackagedRouter(t *testing.T) {
	shipped, err := os.ReadFile("../../files/etc/config/nextdns-failover")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dhcp     string
		warnings []string
	}{
		{"packaged", nil},
		{"stock", []string{"has no serversfile", "noresolv is not 1", "strictorder is not 1"}},
	} {
		t.Run(c.dhcp, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "nextdns-failover")
			dhcp, _ := filepath.Abs(filepath.Join("../../pkg/dnsmasq/testdata", c.dhcp, "dhcp"))
			text := string(shipped) + "\toption dhcp_config '" + dhcp + "'\n"
			if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if code := dispatch([]string{"check", "-c", cfg, "-root", t.TempDir()}, &out, &errOut); code != exitOK {
				t.Fatalf("exit %d:\n%s%s", code, out.String(), errOut.String())
			}
			var warnings []string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "warning:") {
					warnings = append(warnings, l)
				}
			}
			if len(warnings) != len(c.warnings) {
				t.Fatalf("%d warnings, want %d:\n%s", len(warnings), len(c.warnings), out.String())
			}
			for i, w := range c.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d: %s\nwant it to say %q", i+1, warnings[i], w)
				}
			}
			if !strings.Contains(out.String(), "dnsmasq instance: cfg01411c") {
				t.Errorf("check does not name the instance:\n%s", out.String())
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"render", "--state", "sideways"}, {"check", "extra"}, {"force"}} {
		var out, errOut bytes.Buffer
		if code := dispatch(args, &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	var out, errOut bytes.Buffer
	if code := dispatch([]string{"render", "-h"}, &out, &errOut); code != exitOK || !strings.Contains(errOut.String(), "--state") && !strings.Contains(errOut.String(), "-state") {
		t.Errorf("render -h: exit %d\n%s", code, errOut.String())
	}
}

// TestCheckFindsForwardersAndServerLinesAheadOfOurs: a router where the install made the
// NextDNS https-dns-proxy a backup and the NextDNS CLI writes its conf-dir file: check says
// both, with the fix, one line each.
func TestCheckFindsForwardersAndServerLinesAheadOfOurs(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"etc/config/https-dns-proxy": "config main 'config'\n\nconfig https-dns-proxy\n\toption resolver_url 'https://dns.nextdns.io/abc123'\n",
		"tmp/dnsmasq.d/nextdns.conf": "no-resolv\nserver=127.0.0.1#5342\n",
		"etc/dnsmasq.conf":           "server=8.8.8.8\n",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dhcp, _ := filepath.Abs("../../pkg/dnsmasq/testdata/packaged/dhcp")
	cfg := filepath.Join(t.TempDir(), "nextdns-failover")
	text := "config settings 'settings'\n\tlist primary '45.90.28.0'\n\tlist secondary '127.0.0.1#5053'\n\toption dhcp_config '" + dhcp + "'\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := dispatch([]string{"check", "-c", cfg, "-root", root}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"warning: https-dns-proxy 127.0.0.1#5053 (NextDNS, /etc/config/https-dns-proxy:4) is a backup in our config: it should be a primary: uci del_list nextdns-failover.settings.secondary='127.0.0.1#5053' && uci add_list nextdns-failover.settings.primary='127.0.0.1#5053'",
		"warning: NextDNS CLI 127.0.0.1#5342 (NextDNS, /tmp/dnsmasq.d/nextdns.conf) is not in our config",
		"warning: a server= line in /tmp/dnsmasq.d/nextdns.conf:2 (server=127.0.0.1#5342) comes before the servers-file; fix: the NextDNS CLI writes it (setup-router on)",
		"warning: a server= line in /etc/dnsmasq.conf:1 (server=8.8.8.8) comes before the servers-file; fix: delete or comment out line 1 of /etc/dnsmasq.conf",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check does not say\n%s\nit says:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "abc123") {
		t.Errorf("check shows the profile id:\n%s", out.String())
	}
}
