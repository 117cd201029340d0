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
			if code := dispatch([]string{"check", "-c", cfg}, &out, &errOut); code != exitOK {
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
