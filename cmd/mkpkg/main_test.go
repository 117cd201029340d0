package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	cases := []struct {
		word   string
		goarch string
		env    []string
	}{
		{"mips_24kc", "mips", []string{"GOMIPS=softfloat"}},
		{"mipsel_24kc", "mipsle", []string{"GOMIPS=softfloat"}},
		{"mipsel_74kc", "mipsle", []string{"GOMIPS=softfloat"}},
		{"arm_cortex-a7_neon-vfpv4", "arm", []string{"GOARM=7"}},
		{"arm_cortex-a9", "arm", []string{"GOARM=5"}}, // no FPU in the name: golang-values.mk gives 5
		{"arm_cortex-a9_vfpv3-d16", "arm", []string{"GOARM=7"}},
		{"arm_arm1176jzf-s_vfp", "arm", []string{"GOARM=6"}},
		{"arm_cortex-a15_neon-vfpv4", "arm", []string{"GOARM=7"}},
		{"aarch64_cortex-a53", "arm64", nil},
		{"aarch64_generic", "arm64", nil},
		{"x86_64", "amd64", nil},
		{"i386_pentium4", "386", []string{"GO386=sse2"}},
		{"i386_pentium-mmx", "386", []string{"GO386=softfloat"}},
		{"riscv64_riscv64", "riscv64", nil},
		{"myarch=arm,GOARM=6", "arm", []string{"GOARM=6"}},
		{"mips_4kec=mips,GOMIPS=softfloat", "mips", []string{"GOMIPS=softfloat"}},
	}
	for _, tc := range cases {
		t.Run(tc.word, func(t *testing.T) {
			got, err := parseTarget(tc.word)
			if err != nil {
				t.Fatalf("parseTarget: %v", err)
			}
			if got.GOARCH != tc.goarch || !slices.Equal(got.Env, tc.env) {
				t.Errorf("got GOARCH=%s %v, want GOARCH=%s %v", got.GOARCH, got.Env, tc.goarch, tc.env)
			}
		})
	}
}

func TestParseTargetErrors(t *testing.T) {
	cases := []struct{ name, word, wantInErr string }{
		{"unknown family", "sparc_v9", "sparc_v9=GOARCH"},
		{"unknown GOARCH", "foo=sparc", "unknown GOARCH"},
		{"bad variable", "foo=arm,CC=gcc", "only GOARM"},
		{"not VAR=VALUE", "foo=arm,GOARM", "not VAR=VALUE"},
		{"bad name", "Mips!", "not an OpenWrt architecture"},
		{"bare arm", "arm", "incomplete"},
		{"x86 without 64", "x86_32", "unknown x86"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTarget(tc.word)
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("parseTarget(%q) = %v, want an error mentioning %q", tc.word, err, tc.wantInErr)
			}
		})
	}
}

func TestFlagErrorsAreUsageErrors(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	cases := []struct {
		name string
		args []string
	}{
		{"no arch", []string{"-version", "0.1.0"}},
		{"no version", []string{"-arch", "x86_64"}},
		{"bad format", []string{"-format", "deb", "-version", "0.1.0", "-arch", "x86_64"}},
		{"bad release", []string{"-version", "0.1.0", "-release", "r1", "-arch", "x86_64"}},
		{"stray argument", []string{"-version", "0.1.0", "-arch", "x86_64", "extra"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, io.Discard, io.Discard)
			if !errors.Is(err, errUsage) {
				t.Fatalf("run(%q) = %v, want a usage error", tc.args, err)
			}
		})
	}
}

// TestRealFiles checks the repository's own files/ as they will land on the router.
func TestRealFiles(t *testing.T) {
	files, err := loadFiles(filepath.Join("..", "..", "files"))
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{}
	for _, f := range files {
		modes[f.Path] = f.Mode
		if f.Mode.Perm()&0o022 != 0 {
			t.Errorf("%s is group/world-writable", f.Path)
		}
	}
	for p, want := range map[string]os.FileMode{
		"/etc/config/nextdns-failover":                0o644,
		"/etc/init.d/nextdns-failover":                0o755,
		"/etc/uci-defaults/90-nextdns-failover":       0o755,
		"/usr/libexec/nextdns-failover/dnsmasq-setup": 0o755,
	} {
		if got, ok := modes[p]; !ok {
			t.Errorf("%s is not packaged", p)
		} else if got != want {
			t.Errorf("%s: mode %04o, want %04o", p, got, want)
		}
	}
}

// TestBuildEndToEnd builds packages from a tiny module the way `make packages` does, twice,
// and checks the result verifies, targets with the same Go settings share one binary, and the
// second build is byte-identical to the first. It builds for the host's amd64 only, to stay
// fast on a cold build cache; the cross builds run in `make packages -verify`.
func TestBuildEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go binaries")
	}
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.invalid/m\n\ngo 1.26\n")
	write("cmd/nextdns-failover/main.go", "package main\n\nvar version = \"dev\"\n\nfunc main() { println(version) }\n")
	write("files/etc/config/nextdns-failover", "config settings 'settings'\n")
	write("files/etc/init.d/nextdns-failover", "#!/bin/sh /etc/rc.common\n")
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")

	build := func(out string) string {
		var stdout, stderr bytes.Buffer
		args := []string{"-format", "ipk", "-version", "0.1.0", "-release", "1", "-out", out, "-root", root,
			"-arch", "x86_64 myamd64=amd64", "-verify"}
		if err := run(args, &stdout, &stderr); err != nil {
			t.Fatalf("run: %v\n%s", err, stderr.String())
		}
		return stdout.String()
	}
	outA, outB := filepath.Join(root, "a"), filepath.Join(root, "b")
	report := build(outA)
	build(outB)
	for _, arch := range []string{"x86_64", "myamd64"} {
		name := "nextdns-failover_0.1.0-1_" + arch + ".ipk"
		if !strings.Contains(report, name) || !strings.Contains(report, "verified") {
			t.Errorf("report does not name %s as verified:\n%s", name, report)
		}
		a, err := os.ReadFile(filepath.Join(outA, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(outB, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two builds differ", name)
		}
	}
	bin := func(arch string) []byte {
		c, err := readIPK(filepath.Join(outA, "nextdns-failover_0.1.0-1_"+arch+".ipk"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range c.DataTx {
			if m.Header.Name == "./usr/sbin/nextdns-failover" {
				return m.Data
			}
		}
		t.Fatalf("%s: no binary", arch)
		return nil
	}
	if !bytes.Equal(bin("x86_64"), bin("myamd64")) {
		t.Error("two targets with the same Go settings got different binaries")
	}
	if !bytes.Contains(bin("x86_64"), []byte("0.1.0-1")) {
		t.Error("the version is not stamped into the binary")
	}
}

// TestMaintainerScriptsAreCleanShell runs the scripts the packages carry through `sh -n`
// and shellcheck (POSIX mode), as every shell script of the project is.
func TestMaintainerScriptsAreCleanShell(t *testing.T) {
	scripts := map[string][]byte{
		"postinst":     maintainerScript("postinst"),
		"prerm":        maintainerScript("prerm"),
		"postinst-pkg": pkgScript([]byte(postInst)),
		"prerm-pkg":    pkgScript([]byte(preRm)),
	}
	dir := t.TempDir()
	for name, body := range scripts {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", name, err, out)
		}
		if strings.Contains(name, "-pkg") && bytes.Contains(body, []byte("\nexit")) {
			t.Errorf("%s calls exit: default_prerm/default_postinst source it and would stop early", name)
		}
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("no shellcheck")
	}
	// SC2068/SC2086/SC1091: the $@, ${IPKG_INSTROOT} and functions.sh forms are OpenWrt's own,
	// kept verbatim.
	args := []string{"-s", "sh", "-e", "SC2068,SC2086,SC1091"}
	for name := range scripts {
		args = append(args, filepath.Join(dir, name))
	}
	if out, err := exec.Command("shellcheck", args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestPreRmKeepsTheSetupOnUpgrade: an opkg that runs the old prerm with "upgrade VERSION"
// must not restore dnsmasq; a removal must.
func TestPreRmKeepsTheSetupOnUpgrade(t *testing.T) {
	// Run preRm with the setup script's path swapped for a recorder.
	dir := t.TempDir()
	rec := filepath.Join(dir, "setup")
	log := filepath.Join(dir, "log")
	if err := os.WriteFile(rec, []byte("#!/bin/sh\necho \"$*\" >>"+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(preRm, "/usr/libexec/nextdns-failover/dnsmasq-setup", rec)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"removal (OpenWrt: default_prerm $0 $@)", []string{"/usr/lib/opkg/info/nextdns-failover.prerm"}, "remove\n"},
		{"upgrade", []string{"/usr/lib/opkg/info/nextdns-failover.prerm", "upgrade", "0.2.0-1"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(log)
			cmd := exec.Command("sh", append([]string{"-c", body, "sh"}, tc.args[1:]...)...)
			cmd.Env = append(os.Environ(), "IPKG_INSTROOT=")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("prerm: %v\n%s", err, out)
			}
			got, _ := os.ReadFile(log)
			if string(got) != tc.want {
				t.Errorf("setup called with %q, want %q", got, tc.want)
			}
		})
	}
}
