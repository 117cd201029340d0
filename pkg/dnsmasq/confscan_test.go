package dnsmasq

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nextdns-failover/nextdns-failover/pkg/config"
	"github.com/nextdns-failover/nextdns-failover/pkg/uci"
)

// world writes files (router path -> content) under a temporary root.
func world(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		writeFileAll(t, filepath.Join(root, p), c)
	}
	return root
}

func lines(sc Scan) []string {
	var out []string
	for _, l := range sc.Lines {
		out = append(out, fmt.Sprintf("%s:%d %s", l.File, l.Line, l.Value))
	}
	return out
}

func TestScanConfFindsServerLinesAheadOfOurs(t *testing.T) {
	root := world(t, map[string]string{
		"/etc/dnsmasq.conf": "# comment\nserver=1.1.1.1 # trailing comment\n  server = 8.8.8.8\nserver=/lan/192.168.1.1\nserver=/#/9.9.9.9\n" +
			"#server=6.6.6.6\nconf-file=/etc/extra.conf\nconf-dir=/etc/more,.bak,*.conf\nlocal=/lan/\n\"server\"=\"4.4.4.4\"\n",
		"/etc/extra.conf":             "server=2.2.2.2@eth0\n",
		"/etc/more/a.conf":            "server=3.3.3.3\n",
		"/etc/more/b.conf.bak":        "server=6.6.6.6\n",
		"/etc/more/c.txt":             "server=6.6.6.6\n",
		"/etc/more/.hidden.conf":      "server=6.6.6.6\n",
		"/tmp/dnsmasq.d/nextdns.conf": "no-resolv\nserver=127.0.0.1#5342\nadd-mac\n",
		"/tmp/dnsmasq.d/x.conf~":      "server=6.6.6.6\n",
		"/tmp/dnsmasq.lan.d/y":        "server=5.5.5.5\n",
		"/tmp/dnsmasq.other.d/z":      "server=6.6.6.6\n",
	})
	sc := ScanConf(root, "lan", "", DefaultLimits)
	got := strings.Join(lines(sc), "\n")
	want := strings.Join([]string{
		"/etc/dnsmasq.conf:2 1.1.1.1",
		"/etc/dnsmasq.conf:3 8.8.8.8",
		"/etc/dnsmasq.conf:5 /#/9.9.9.9",
		"/etc/extra.conf:1 2.2.2.2@eth0",
		"/etc/more/a.conf:1 3.3.3.3",
		"/etc/dnsmasq.conf:10 4.4.4.4",
		"/tmp/dnsmasq.d/nextdns.conf:2 127.0.0.1#5342",
		"/tmp/dnsmasq.lan.d/y:1 5.5.5.5",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if len(sc.Problems) != 0 {
		t.Errorf("problems: %q", sc.Problems)
	}
	for _, l := range sc.Lines {
		if l.File == "/tmp/dnsmasq.d/nextdns.conf" {
			if l.Fix != NextDNSCLIFix || !strings.Contains(l.Fix, "setup-router=false") {
				t.Errorf("the NextDNS CLI's line gets the fix %q", l.Fix)
			}
			if p := l.Problem(); p != "a server= line in /tmp/dnsmasq.d/nextdns.conf:2 (server=127.0.0.1#5342) comes before the servers-file" {
				t.Errorf("problem: %s", p)
			}
		}
	}
}

// TestScanConfFollowsTheGeneratedConfig: OpenWrt's generated config names the conf-dir; its
// own server= lines are dhcp's (reported by Audit), and /tmp/dnsmasq.d is not read when the
// generated config does not name it (OpenWrt 24.10).
func TestScanConfFollowsTheGeneratedConfig(t *testing.T) {
	root := world(t, map[string]string{
		"/var/etc/dnsmasq.conf.cfg01411c": "server=127.0.0.1#5053\nconf-file=/etc/dnsmasq.conf\nconf-dir=/tmp/dnsmasq.cfg01411c.d\n",
		"/etc/dnsmasq.conf":               "",
		"/tmp/dnsmasq.cfg01411c.d/n.conf": "server=127.0.0.1#5342\n",
		"/tmp/dnsmasq.d/old.conf":         "server=6.6.6.6\n",
	})
	got := lines(ScanConf(root, "cfg01411c", "", DefaultLimits))
	if len(got) != 1 || got[0] != "/tmp/dnsmasq.cfg01411c.d/n.conf:1 127.0.0.1#5342" {
		t.Errorf("got %q", got)
	}
}

func TestScanConfConfdirOption(t *testing.T) {
	root := world(t, map[string]string{
		"/etc/dnsmasq.d/a":        "server=1.1.1.1\n",
		"/tmp/dnsmasq.d/old.conf": "server=6.6.6.6\n",
	})
	got := lines(ScanConf(root, "lan", "/etc/dnsmasq.d", DefaultLimits))
	if len(got) != 1 || got[0] != "/etc/dnsmasq.d/a:1 1.1.1.1" {
		t.Errorf("got %q", got)
	}
}

// TestScanConfHostileFiles: nothing blocks, grows without bound or loops; each problem names
// the file and says why.
func TestScanConfHostileFiles(t *testing.T) {
	lim := ScanLimits{FileBytes: 1 << 10, TotalBytes: 4 << 10, Files: 50, DirEntries: 100, Depth: 4}
	t.Run("huge", func(t *testing.T) {
		root := world(t, map[string]string{
			"/tmp/dnsmasq.d/huge": "server=1.1.1.1\n" + strings.Repeat("#"+strings.Repeat("x", 99)+"\n", 100) + "server=6.6.6.6\n",
		})
		sc := ScanConf(root, "", "", lim)
		if got := lines(sc); len(got) != 1 || got[0] != "/tmp/dnsmasq.d/huge:1 1.1.1.1" {
			t.Errorf("got %q", got)
		}
		if len(sc.Problems) != 1 || !strings.Contains(sc.Problems[0], "/tmp/dnsmasq.d/huge: larger than 1024 bytes") {
			t.Errorf("problems %q", sc.Problems)
		}
	})
	t.Run("total", func(t *testing.T) {
		files := map[string]string{}
		for i := range 10 {
			files[fmt.Sprintf("/tmp/dnsmasq.d/f%02d", i)] = "server=1.1.1.1\n" + strings.Repeat("#\n", 400)
		}
		sc := ScanConf(world(t, files), "", "", lim)
		if len(sc.Lines) < 4 || len(sc.Lines) > 6 {
			t.Errorf("%d lines read with a 4 KiB budget of ~800-byte files", len(sc.Lines))
		}
		if n := len(sc.Problems); n == 0 || n > 2 || !strings.Contains(sc.Problems[n-1], "and later files not checked: already read") {
			t.Errorf("problems %q", sc.Problems)
		}
	})
	t.Run("binary", func(t *testing.T) {
		root := world(t, map[string]string{
			"/tmp/dnsmasq.d/bin": "\x7fELF\x00\x01\x02\nserver=1.1.1.1\x00server=6.6.6.6\n\xff\xfe\x00\n",
		})
		sc := ScanConf(root, "", "", lim)
		if got := lines(sc); len(got) != 1 || got[0] != "/tmp/dnsmasq.d/bin:2 1.1.1.1" {
			t.Errorf("got %q", got)
		}
		if len(sc.Problems) != 1 || !strings.Contains(sc.Problems[0], "/tmp/dnsmasq.d/bin: holds NUL bytes") {
			t.Errorf("problems %q", sc.Problems)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads every file")
		}
		root := world(t, map[string]string{"/tmp/dnsmasq.d/secret": "server=1.1.1.1\n", "/tmp/dnsmasq.d/ok": "server=2.2.2.2\n"})
		if err := os.Chmod(filepath.Join(root, "tmp/dnsmasq.d/secret"), 0); err != nil {
			t.Fatal(err)
		}
		sc := ScanConf(root, "", "", lim)
		if got := lines(sc); len(got) != 1 || got[0] != "/tmp/dnsmasq.d/ok:1 2.2.2.2" {
			t.Errorf("got %q", got)
		}
		if len(sc.Problems) != 1 || sc.Problems[0] != "/tmp/dnsmasq.d/secret: cannot read: permission denied" {
			t.Errorf("problems %q", sc.Problems)
		}
	})
	t.Run("symlink loops", func(t *testing.T) {
		root := world(t, map[string]string{
			"/etc/dnsmasq.conf": "conf-file=/etc/a.conf\nconf-dir=/etc/d\n",
			"/etc/a.conf":       "server=1.1.1.1\nconf-file=/etc/dnsmasq.conf\nconf-file=/etc/a.conf\nconf-file=/etc/link\n",
			"/etc/d/x":          "conf-dir=/etc/d\nserver=2.2.2.2\n",
		})
		for old, new := range map[string]string{"loop1": "loop2", "loop2": "loop1"} {
			if err := os.Symlink(filepath.Join(root, "etc", new), filepath.Join(root, "etc", old)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("loop1", filepath.Join(root, "etc", "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(root, "etc", "a.conf"), filepath.Join(root, "etc", "d", "y")); err != nil {
			t.Fatal(err)
		}
		sc := ScanConf(root, "", "", lim)
		if got := strings.Join(lines(sc), ","); got != "/etc/a.conf:1 1.1.1.1,/etc/d/x:2 2.2.2.2" {
			t.Errorf("got %s", got)
		}
		if len(sc.Problems) != 1 || sc.Problems[0] != "/etc/link: cannot read: too many levels of symbolic links" {
			t.Errorf("problems %q", sc.Problems)
		}
	})
	t.Run("deep includes", func(t *testing.T) {
		files := map[string]string{}
		for i := range 10 {
			files[fmt.Sprintf("/etc/c%d", i)] = fmt.Sprintf("server=%d.0.0.1\nconf-file=/etc/c%d\n", i+1, i+1)
		}
		files["/etc/dnsmasq.conf"] = "conf-file=/etc/c0\n"
		sc := ScanConf(world(t, files), "", "", lim)
		if len(sc.Lines) != 4 {
			t.Errorf("%d lines, want 4 (depth 4)", len(sc.Lines))
		}
		if len(sc.Problems) != 1 || !strings.Contains(sc.Problems[0], "/etc/c4: included more than 4 levels deep") {
			t.Errorf("problems %q", sc.Problems)
		}
	})
	t.Run("thousands of files", func(t *testing.T) {
		root := t.TempDir()
		d := filepath.Join(root, "tmp", "dnsmasq.d")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 3000 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), []byte("server=1.1.1.1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		sc := ScanConf(root, "", "", lim)
		if len(sc.Lines) != lim.Files {
			t.Errorf("%d lines, want %d (the file limit)", len(sc.Lines), lim.Files)
		}
		want := []string{"/tmp/dnsmasq.d: more than 100 entries: only 100 of them checked", "later files not checked"}
		if len(sc.Problems) != 2 || sc.Problems[0] != want[0] || !strings.Contains(sc.Problems[1], want[1]) {
			t.Errorf("problems %q", sc.Problems)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		root := world(t, map[string]string{"/tmp/dnsmasq.d/ok": "server=2.2.2.2\n", "/etc/dnsmasq.conf": "conf-file=/etc/fifo\n"})
		if err := syscallMkfifo(filepath.Join(root, "tmp/dnsmasq.d/pipe")); err != nil {
			t.Skip(err)
		}
		if err := syscallMkfifo(filepath.Join(root, "etc/fifo")); err != nil {
			t.Skip(err)
		}
		sc := ScanConf(root, "", "", lim)
		if got := lines(sc); len(got) != 1 {
			t.Errorf("got %q", got)
		}
		if len(sc.Problems) != 1 || sc.Problems[0] != "/etc/fifo: cannot read: not a regular file" {
			t.Errorf("problems %q", sc.Problems)
		}
	})
}

func TestServersAheadAndAuditServers(t *testing.T) {
	dhcpText := "config dnsmasq\n\toption serversfile '/var/run/nextdns-failover/servers.conf'\n" +
		"\tlist server '/use-application-dns.net/'\n\tlist server '127.0.0.1#5053'\n\tlist doh_server '127.0.0.1#5053'\n"
	dhcp, err := uci.Parse("dhcp", strings.NewReader(dhcpText))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := FindInstance(dhcp, "")
	if err != nil {
		t.Fatal(err)
	}
	root := world(t, map[string]string{"/tmp/dnsmasq.d/nextdns.conf": "server=127.0.0.1#5342\n"})
	sc := ServersAhead(dhcp, inst, "/etc/config/dhcp", root, DefaultLimits)
	if len(sc.Lines) != 2 {
		t.Fatalf("lines %v", sc.Lines)
	}
	if p := sc.Lines[0].Problem(); p != "list server '127.0.0.1#5053' in /etc/config/dhcp:4 comes before the servers-file" {
		t.Errorf("problem: %s", p)
	}
	if f := sc.Lines[0].Fix; !strings.Contains(f, "dnsmasq_config_update='-'") || !strings.Contains(f, "uci del_list dhcp.@dnsmasq[0].doh_server='127.0.0.1#5053'") {
		t.Errorf("fix: %s", f)
	}

	// The adapter reads a real dhcp file; "/" on the test machine may hold anything, so only
	// the dhcp part is asserted.
	path := filepath.Join(t.TempDir(), "dhcp")
	writeFile(t, path, dhcpText)
	ps := AuditServers(&config.Settings{DHCPConfig: path})
	if len(ps) == 0 || ps[0] != "list server '127.0.0.1#5053' in "+path+":4 comes before the servers-file" {
		t.Errorf("AuditServers: %q", ps)
	}
	ps = AuditServers(&config.Settings{DHCPConfig: filepath.Join(t.TempDir(), "missing")})
	if len(ps) == 0 || !strings.HasPrefix(ps[0], "cannot check the dhcp config for server lines: dhcp config: open ") {
		t.Errorf("AuditServers without dhcp: %q", ps)
	}
}

func FuzzDirective(f *testing.F) {
	for _, s := range []string{"server=1.1.1.1", "  server = \"1.1.1.1\" # x", "#server=1", "a#b=c", "\"#\"server=1", "server=1\x002"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		k, v := directive([]byte(line))
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			t.Fatalf("NUL kept: %q %q", k, v)
		}
		if k != strings.TrimSpace(k) || v != strings.TrimSpace(v) {
			t.Fatalf("untrimmed: %q %q", k, v)
		}
	})
}

func syscallMkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }
