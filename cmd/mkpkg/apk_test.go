package main

import (
	"bytes"
	"compress/flate"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/apk"
)

// apkTestSpec is a small package with every kind of entry the real one may have.
func apkTestSpec() *spec {
	return &spec{
		Name: "nextdns-failover", Version: "0.1.0", Release: "1", Arch: "mips_24kc",
		Description: "test package", License: "MIT", URL: "https://example.invalid/",
		Maintainer: "Test <test@example.invalid>", Section: "net",
		Depends: []string{"dnsmasq"},
		Files: []pkgFile{
			{Path: "/etc/config/nextdns-failover", Mode: 0o600, Data: []byte("config settings 'settings'\n")},
			{Path: "/etc/init.d/nextdns-failover", Mode: 0o755, Data: []byte("#!/bin/sh /etc/rc.common\n")},
			{Path: "/usr/bin/ndf", Mode: fs.ModeSymlink | 0o777, Link: "../sbin/nextdns-failover"},
			{Path: "/usr/sbin/nextdns-failover", Mode: 0o755, Data: bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 1000)},
		},
		Conffiles: []string{"/etc/config/nextdns-failover"},
		PostInst:  []byte("#!/bin/sh\necho post\n"),
		PreRm:     []byte("echo pre"),
		MTime:     time.Unix(1767225600, 0),
	}
}

func readAPKFile(t *testing.T, p string) *apk.Archive {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := apk.Read(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return a
}

// TestWriteAPK: the package a router gets has the right identity, every file of
// the spec with its mode and contents, OpenWrt's metadata files, and OpenWrt's
// script shape around our own steps.
func TestWriteAPK(t *testing.T) {
	s := apkTestSpec()
	p, err := writeAPK(s, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Base(p), "nextdns-failover-0.1.0-r1_mips_24kc.apk"; got != want {
		t.Errorf("file name %s, want %s", got, want)
	}
	a := readAPKFile(t, p)
	if a.Info.Name != "nextdns-failover" || a.Info.Version != "0.1.0-r1" || a.Info.Arch != "mips_24kc" ||
		!slices.Equal(a.Info.Depends, []string{"dnsmasq"}) || a.Info.License != "MIT" {
		t.Errorf("info = %+v", a.Info)
	}
	const meta = "/lib/apk/packages/nextdns-failover"
	wantPaths := []string{
		"/etc/config/nextdns-failover", "/etc/init.d/nextdns-failover",
		meta + ".conffiles", meta + ".conffiles_static", meta + ".list",
		"/usr/bin/ndf", "/usr/sbin/nextdns-failover",
	}
	if got := a.Paths(); !slices.Equal(got, wantPaths) {
		t.Errorf("files = %q, want %q", got, wantPaths)
	}
	for _, f := range s.Files {
		e, ok := a.Lookup(f.Path)
		if !ok {
			t.Fatalf("%s missing", f.Path)
		}
		if e.ACL.User != "root" || e.ACL.Group != "root" || e.MTime != s.MTime.Unix() {
			t.Errorf("%s: owner %s:%s mtime %d", f.Path, e.ACL.User, e.ACL.Group, e.MTime)
		}
		if f.Mode&fs.ModeSymlink != 0 {
			if l, ok := e.Link(); !ok || l != f.Link {
				t.Errorf("%s: link %q, want %q", f.Path, l, f.Link)
			}
			continue
		}
		sum := sha256.Sum256(f.Data)
		if e.ACL.Mode != f.Mode || !bytes.Equal(e.Hash, sum[:]) || !bytes.Equal(e.Data, f.Data) {
			t.Errorf("%s: mode %v hash %x, want %v %x", f.Path, e.ACL.Mode, e.Hash, f.Mode, sum)
		}
	}
	config := sha256.Sum256(s.Files[0].Data)
	for path, want := range map[string]string{
		meta + ".list":             strings.Join(wantPaths, "\n") + "\n",
		meta + ".conffiles":        "/etc/config/nextdns-failover\n",
		meta + ".conffiles_static": "/etc/config/nextdns-failover " + hex.EncodeToString(config[:]) + "\n",
	} {
		e, ok := a.Lookup(path)
		if !ok {
			t.Errorf("%s missing", path)
			continue
		}
		if string(e.Data) != want || e.ACL.Mode != 0o644 {
			t.Errorf("%s = %q mode %v, want %q mode 0644", path, e.Data, e.ACL.Mode, want)
		}
	}
	postInstall := string(a.Scripts.PostInstall)
	if !strings.HasPrefix(postInstall, "#!/bin/sh\n") || !strings.HasSuffix(postInstall, "default_postinst\necho post\n") ||
		!strings.Contains(postInstall, "export pkgname=\"nextdns-failover\"\n") || strings.Count(postInstall, "#!") != 1 {
		t.Errorf("post-install =\n%s", postInstall)
	}
	if want := "#!/bin/sh\nexport PKG_UPGRADE=1\n" + strings.TrimPrefix(postInstall, "#!/bin/sh\n"); string(a.Scripts.PostUpgrade) != want {
		t.Errorf("post-upgrade =\n%s\nwant\n%s", a.Scripts.PostUpgrade, want)
	}
	if preRm := string(a.Scripts.PreDeinstall); !strings.HasSuffix(preRm, "default_prerm\necho pre\n") {
		t.Errorf("pre-deinstall =\n%s", preRm)
	}
	if err := verifyAPK(p, s, ""); err != nil {
		t.Errorf("verifyAPK: %v", err)
	}
}

// TestWriteAPKIsReproducible: two builds of the same spec are the same bytes.
func TestWriteAPKIsReproducible(t *testing.T) {
	s := apkTestSpec()
	a, err := writeAPK(s, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := writeAPK(apkTestSpec(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if x, y := readBytes(t, a), readBytes(t, b); !bytes.Equal(x, y) {
		t.Errorf("two builds differ: %d and %d bytes", len(x), len(y))
	}
}

func readBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteAPKSigned: with -key, the package carries a signature that verifies
// with the key's public half, and verifyAPK notices a different key.
func TestWriteAPKSigned(t *testing.T) {
	dir := t.TempDir()
	writeKey := func(name string) string {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, other := writeKey("key.pem"), writeKey("other.pem")
	s := apkTestSpec()
	p, err := writeAPK(s, dir, key)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(readAPKFile(t, p).Signatures); n != 1 {
		t.Errorf("%d signature blocks, want 1", n)
	}
	if err := verifyAPK(p, s, key); err != nil {
		t.Errorf("verifyAPK with the signing key: %v", err)
	}
	if err := verifyAPK(p, s, other); !errors.Is(err, apk.ErrSignature) {
		t.Errorf("verifyAPK with another key = %v, want ErrSignature", err)
	}
	if _, err := writeAPK(s, dir, filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("writeAPK with a missing key file succeeded")
	}
}

// TestVerifyAPKNoticesMismatch: a package that does not match its spec fails -verify.
func TestVerifyAPKNoticesMismatch(t *testing.T) {
	p, err := writeAPK(apkTestSpec(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(s *spec)
	}{
		{"other version", func(s *spec) { s.Release = "2" }},
		{"other arch", func(s *spec) { s.Arch = "x86_64" }},
		{"other binary", func(s *spec) { s.Files[3].Data = []byte("new") }},
		{"other mode", func(s *spec) { s.Files[1].Mode = 0o700 }},
		{"extra file", func(s *spec) {
			s.Files = append(s.Files, pkgFile{Path: "/usr/share/x", Mode: 0o644, Data: []byte("x")})
		}},
		{"other post-install", func(s *spec) { s.PostInst = []byte("echo other\n") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := apkTestSpec()
			c.change(s)
			if err := verifyAPK(p, s, ""); !errors.Is(err, apk.ErrCorrupt) {
				t.Errorf("verifyAPK = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestWriteAPKRejectsBadSpecs(t *testing.T) {
	cases := []struct {
		name   string
		change func(s *spec)
	}{
		{"conffile not in the package", func(s *spec) { s.Conffiles = []string{"/etc/config/other"} }},
		{"release not a number", func(s *spec) { s.Release = "beta" }},
		{"version not apk-valid", func(s *spec) { s.Version = "v0.1" }},
		{"file clashing with the generated list", func(s *spec) {
			s.Files = append(s.Files, pkgFile{Path: "/lib/apk/packages/nextdns-failover.list", Mode: 0o644})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := apkTestSpec()
			c.change(s)
			dir := t.TempDir()
			if _, err := writeAPK(s, dir, ""); !errors.Is(err, apk.ErrInvalid) {
				t.Errorf("writeAPK = %v, want ErrInvalid", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("a failed build left %d files in the output folder", len(left))
			}
		})
	}
}

// TestAPKMatchesOpenWrtBuild: for the inputs of the apk-tools vector 02 (an
// OpenWrt-style service), apkPackage generates the same /lib/apk/packages files
// and scripts OpenWrt's build did, and (leaving out the post-upgrade script the
// vector lacks) the same package bytes as apk mkpkg 3.0.6.
func TestAPKMatchesOpenWrtBuild(t *testing.T) {
	vec := filepath.Join("..", "..", "pkg", "apk", "testdata", "02-openwrt-service")
	file := func(rel string, mode fs.FileMode) pkgFile {
		return pkgFile{Path: "/" + rel, Mode: mode, Data: readBytes(t, filepath.Join(vec, "root", rel))}
	}
	s := &spec{
		Name: "demo-svc", Version: "2.3.0", Release: "1", Arch: "aarch64_cortex-a53",
		Description: "OpenWrt-style service package", License: "GPL-2.0-only",
		URL: "https://example.org/demo", Maintainer: "Demo <demo@example.org>",
		Depends: []string{"libc", "dnsmasq"},
		Files: []pkgFile{
			file("etc/config/demo-svc", 0o644),
			file("etc/init.d/demo-svc", 0o755),
			file("etc/uci-defaults/90-demo-svc", 0o755),
			file("usr/sbin/demo-svc", 0o755),
		},
		Conffiles: []string{"/etc/config/demo-svc"},
		MTime:     time.Unix(1700000000, 0),
	}
	p, err := apkPackage(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Files {
		if strings.HasPrefix(f.Path, apkMetaDir) {
			if want := readBytes(t, filepath.Join(vec, "root", f.Path)); !bytes.Equal(f.Data, want) {
				t.Errorf("%s =\n%s\nwant\n%s", f.Path, f.Data, want)
			}
		}
	}
	for name, got := range map[string][]byte{"post-install": p.Scripts.PostInstall, "pre-deinstall": p.Scripts.PreDeinstall} {
		if want := readBytes(t, filepath.Join(vec, "scripts", name)); !bytes.Equal(got, want) {
			t.Errorf("%s =\n%s\nwant\n%s", name, got, want)
		}
	}
	p.Scripts.PostUpgrade = nil
	var ours bytes.Buffer
	if err := apk.Write(&ours, p, apk.WithCompression(apk.Uncompressed)); err != nil {
		t.Fatal(err)
	}
	raw := readBytes(t, filepath.Join(vec, "out.apk"))
	theirs, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw[4:])))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours.Bytes(), theirs) {
		t.Errorf("package differs from apk mkpkg's (%d vs %d bytes uncompressed)", ours.Len(), len(theirs))
	}
}

func TestWithoutShebangs(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"shebang dropped", "#!/bin/sh\necho a\n", "echo a\n"},
		{"indented shebang dropped", "  #!/bin/sh\necho a\n", "echo a\n"},
		{"missing final newline added", "echo a", "echo a\n"},
		{"comments kept", "# a comment\necho a\n", "# a comment\necho a\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := withoutShebangs([]byte(c.in)); got != c.want {
				t.Errorf("withoutShebangs(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
