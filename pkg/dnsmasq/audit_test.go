package dnsmasq

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
)

var update = flag.Bool("update", false, "rewrite the audit.golden files")

func writeFileAll(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, content)
}

// TestAudit audits each dhcp config in testdata against settings that own
// /var/run/nextdns-failover/servers.conf and compares the warnings with audit.golden.
func TestAudit(t *testing.T) {
	tests := []struct {
		dir      string
		instance string
		want     int // number of warnings, a guard on the golden file
	}{
		{dir: "packaged", want: 0},
		{dir: "stock", want: 3},
		{dir: "realistic", want: 3},
		{dir: "https-dns-proxy", want: 2},
		{dir: "no-network", want: 1},
		{dir: "leaky", want: 11},
		{dir: "two-instances", instance: "guest_dns", want: 3},
		{dir: "two-instances", want: 0},
	}
	for _, tt := range tests {
		name := tt.dir
		if tt.instance != "" {
			name += "-" + tt.instance
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", tt.dir, "dhcp")
			dhcp, inst, err := LoadInstance(path, tt.instance)
			if err != nil {
				t.Fatal(err)
			}
			s := &config.Settings{DHCPConfig: path, ServersFile: "/var/run/nextdns-failover/servers.conf"}
			ws := Audit(dhcp, inst, s)
			var b strings.Builder
			for _, w := range ws {
				b.WriteString(w.String() + "\n")
				if !strings.Contains(w.Fix, "uci ") || !strings.HasSuffix(w.Fix, "uci commit dhcp && /etc/init.d/dnsmasq restart") {
					t.Errorf("warning without a uci fix: %s", w)
				}
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("warnings:\n%s\nwant (%s):\n%s", b.String(), golden, want)
			}
			if len(ws) != tt.want {
				t.Errorf("%d warnings, want %d", len(ws), tt.want)
			}
		})
	}
}

// TestAuditServersFilePath: a serversfile that names our file in another spelling is ours.
// The pure AuditNetwork compares cleaned paths; Audit also resolves symlinked folders.
func TestAuditServersFilePath(t *testing.T) {
	dhcp := loadDHCP(t, "packaged")
	inst, err := FindInstance(dhcp, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ours string
		warn bool
	}{
		{"/var/run/nextdns-failover/servers.conf", false},
		{"/var/run/nextdns-failover//servers.conf", false},
		{"/tmp/run/nextdns-failover/servers.conf", true},
	} {
		ws := AuditNetwork(dhcp, nil, inst, &config.Settings{DHCPConfig: "/etc/config/dhcp", ServersFile: tc.ours})
		if got := len(ws) > 0; got != tc.warn {
			t.Errorf("servers_file %s: warnings %v, want warning %v", tc.ours, ws, tc.warn)
		}
	}
	// /var -> /tmp, as on OpenWrt.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "tmp", "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tmp", filepath.Join(root, "var")); err != nil {
		t.Fatal(err)
	}
	writeFileAll(t, filepath.Join(root, "etc", "dhcp"), "config dnsmasq\n\toption serversfile '"+root+"/tmp/run/servers.conf'\n\toption noresolv '1'\n\toption strictorder '1'\n")
	dhcp, inst, err = LoadInstance(filepath.Join(root, "etc", "dhcp"), "")
	if err != nil {
		t.Fatal(err)
	}
	s := &config.Settings{DHCPConfig: filepath.Join(root, "etc", "dhcp"), ServersFile: root + "/var/run/servers.conf"}
	if ws := Audit(dhcp, inst, s); len(ws) != 0 {
		t.Errorf("serversfile under /tmp/run with servers_file under /var/run (a symlink): %v", ws)
	}
	s.ServersFile = root + "/var/run/other.conf"
	if ws := Audit(dhcp, inst, s); len(ws) != 1 {
		t.Errorf("a different file in the same folder: %d warnings, want 1", len(ws))
	}
}
