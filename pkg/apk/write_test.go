package apk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

// samplePackage exercises every kind of entry: nested directories, an explicit
// directory mode, a setuid binary, an empty file, a symlink, a script long enough
// for a 16-bit blob, a 64-bit mtime and a file spanning many deflate windows.
func samplePackage() *Package {
	t0 := time.Unix(1700000000, 0)
	big := bytes.Repeat([]byte("0123456789abcdef"), 70000) // 1.1 MB
	return &Package{
		Info: Info{
			Name: "nextdns-failover", Version: "0.1.0-r1", Arch: "mips_24kc",
			Description: "NextDNS with a backup upstream", License: "MIT",
			URL: "https://example.org/x", Maintainer: "Ops <ops@example.org>",
			Depends: []string{"libc", "dnsmasq", "libc"},
		},
		Files: []File{
			{Path: "/usr/sbin/nextdns-failover", Mode: 0o755, Data: big, MTime: t0},
			{Path: "/etc/config/nextdns-failover", Mode: 0o600, Data: []byte("config main\n"), MTime: t0},
			{Path: "/etc/nextdns-failover", Mode: fs.ModeDir | 0o700, MTime: t0},
			{Path: "/etc/nextdns-failover/empty", Mode: 0o644, MTime: t0},
			{Path: "/usr/bin/ndf", Mode: fs.ModeSymlink | 0o777, Link: "../sbin/nextdns-failover", MTime: t0},
			{Path: "/usr/libexec/helper", Mode: fs.ModeSetuid | 0o755, Data: []byte("#!/bin/sh\n"), MTime: time.Unix(1<<33, 0)},
		},
		Scripts: Scripts{
			PostInstall:  []byte("#!/bin/sh\n" + strings.Repeat("echo post-install\n", 40)),
			PreDeinstall: []byte("#!/bin/sh\nexit 0\n"),
		},
	}
}

func write(t *testing.T, p *Package, opts ...Option) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, p, opts...); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func read(t *testing.T, b []byte) *Archive {
	t.Helper()
	a, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []Compression{Deflate, Uncompressed} {
		t.Run(c.String(), func(t *testing.T) {
			p := samplePackage()
			a := read(t, write(t, p, WithCompression(c)))
			if a.Compression != c {
				t.Errorf("compression %v, want %v", a.Compression, c)
			}
			want := p.Info
			want.Depends = []string{"dnsmasq", "libc"}
			if a.Info.Name != want.Name || a.Info.Version != want.Version || a.Info.Arch != want.Arch ||
				a.Info.Description != want.Description || a.Info.License != want.License ||
				a.Info.URL != want.URL || a.Info.Maintainer != want.Maintainer ||
				!slices.Equal(a.Info.Depends, want.Depends) {
				t.Errorf("info = %+v, want %+v", a.Info, want)
			}
			checkUniqueID(t, a)
			wantPaths := []string{
				"/etc/config/nextdns-failover", "/etc/nextdns-failover/empty", "/usr/bin/ndf",
				"/usr/libexec/helper", "/usr/sbin/nextdns-failover",
			}
			if got := a.Paths(); !slices.Equal(got, wantPaths) {
				t.Errorf("paths = %q, want %q", got, wantPaths)
			}
			var dirs []string
			for _, d := range a.Dirs {
				dirs = append(dirs, d.Name)
			}
			wantDirs := []string{"", "etc", "etc/config", "etc/nextdns-failover", "usr", "usr/bin", "usr/libexec", "usr/sbin"}
			if !slices.Equal(dirs, wantDirs) {
				t.Errorf("directories = %q, want %q", dirs, wantDirs)
			}
			if d := a.Dirs[3]; d.ACL.Mode != 0o700 || d.ACL.User != "root" || d.ACL.Group != "root" {
				t.Errorf("etc/nextdns-failover acl = %+v, want 0700 root:root", d.ACL)
			}
			var installed uint64
			for _, f := range p.Files {
				if f.Mode.IsDir() {
					continue
				}
				e, ok := a.Lookup(f.Path)
				if !ok {
					t.Fatalf("%s missing", f.Path)
				}
				wantMode := f.Mode &^ fs.ModeType
				if e.ACL.Mode != wantMode || e.ACL.User != "root" || e.ACL.Group != "root" {
					t.Errorf("%s: acl %v %s:%s, want %v root:root", f.Path, e.ACL.Mode, e.ACL.User, e.ACL.Group, wantMode)
				}
				if e.MTime != f.MTime.Unix() {
					t.Errorf("%s: mtime %d, want %d", f.Path, e.MTime, f.MTime.Unix())
				}
				if f.Mode&fs.ModeSymlink != 0 {
					if l, ok := e.Link(); !ok || l != f.Link || e.Hash != nil || e.Size != uint64(len(f.Link)) {
						t.Errorf("%s: link %q %v hash %x size %d, want %q", f.Path, l, ok, e.Hash, e.Size, f.Link)
					}
					continue
				}
				installed += uint64(len(f.Data))
				sum := sha256.Sum256(f.Data)
				if !bytes.Equal(e.Hash, sum[:]) || e.Size != uint64(len(f.Data)) || !bytes.Equal(e.Data, nonNil(f.Data)) {
					t.Errorf("%s: size %d hash %x, want %d %x", f.Path, e.Size, e.Hash, len(f.Data), sum)
				}
			}
			if a.InstalledSize != installed {
				t.Errorf("installed-size %d, want %d", a.InstalledSize, installed)
			}
			if a.DataBlocks != 3 {
				t.Errorf("%d data blocks, want 3 (one per non-empty regular file)", a.DataBlocks)
			}
			if !bytes.Equal(a.Scripts.PostInstall, p.Scripts.PostInstall) || !bytes.Equal(a.Scripts.PreDeinstall, p.Scripts.PreDeinstall) {
				t.Errorf("scripts differ: %+v", a.Scripts)
			}
		})
	}
}

// nonNil maps an empty file's contents to what Read reports: no data block.
func nonNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func TestReproducible(t *testing.T) {
	first := write(t, samplePackage())
	shuffled := samplePackage()
	slices.Reverse(shuffled.Files)
	for name, p := range map[string]*Package{"same input": samplePackage(), "files in another order": shuffled} {
		t.Run(name, func(t *testing.T) {
			if again := write(t, p); !bytes.Equal(first, again) {
				t.Errorf("output differs (%d vs %d bytes)", len(first), len(again))
			}
		})
	}
}

func TestInstalledSizeNeverZero(t *testing.T) {
	p := &Package{Info: Info{Name: "meta", Version: "1-r0", Arch: "noarch"},
		Files: []File{{Path: "/etc/empty", Mode: 0o644}}}
	if a := read(t, write(t, p)); a.InstalledSize != 1 || a.DataBlocks != 0 {
		t.Errorf("installed-size %d, %d data blocks; want 1 and 0, as apk mkpkg", a.InstalledSize, a.DataBlocks)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	ok := func() *Package {
		return &Package{Info: Info{Name: "x", Version: "1.0-r1", Arch: "x86_64"},
			Files: []File{{Path: "/usr/bin/x", Mode: 0o755, Data: []byte("x")}}}
	}
	cases := []struct {
		name   string
		change func(p *Package)
	}{
		{"empty name", func(p *Package) { p.Info.Name = "" }},
		{"name with space", func(p *Package) { p.Info.Name = "next dns" }},
		{"name starting with dash", func(p *Package) { p.Info.Name = "-x" }},
		{"version without number", func(p *Package) { p.Info.Version = "latest" }},
		{"release without number", func(p *Package) { p.Info.Version = "1.0-r" }},
		{"ipk-style version", func(p *Package) { p.Info.Version = "1.0-1" }},
		{"empty arch", func(p *Package) { p.Info.Arch = "" }},
		{"bad dependency", func(p *Package) { p.Info.Depends = []string{"libc>=1"} }},
		{"multi-line description", func(p *Package) { p.Info.Description = "a\nb" }},
		{"path escaping root", func(p *Package) { p.Files[0].Path = "/../etc/passwd" }},
		{"unclean path", func(p *Package) { p.Files[0].Path = "/usr//bin/x" }},
		{"root itself", func(p *Package) { p.Files[0].Path = "/" }},
		{"duplicate file", func(p *Package) { p.Files = append(p.Files, p.Files[0]) }},
		{"file that is also a directory", func(p *Package) {
			p.Files = append(p.Files, File{Path: "/usr/bin/x/y", Mode: 0o644})
		}},
		{"symlink without target", func(p *Package) { p.Files[0].Mode = fs.ModeSymlink | 0o777 }},
		{"device node", func(p *Package) { p.Files[0].Mode = fs.ModeDevice | 0o600 }},
		{"mtime before 1970", func(p *Package) { p.Files[0].MTime = time.Unix(-5, 0) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ok()
			c.change(p)
			var b bytes.Buffer
			if err := Write(&b, p); !errors.Is(err, ErrInvalid) {
				t.Errorf("Write = %v, want ErrInvalid", err)
			}
		})
	}
	var b bytes.Buffer
	if err := Write(&b, ok()); err != nil {
		t.Errorf("the valid base case fails: %v", err)
	}
}

func TestValidVersion(t *testing.T) {
	for v, want := range map[string]bool{
		"0.1.0-r1": true, "1.0": true, "2.3.0-r12": true, "1.2a": true, "1.2_rc3-r0": true,
		"1.0_p2_git20240101": true, "1.0~0123abcd-r1": true, "20240101": true,
		"": false, "v1.0": false, "1.0-": false, "1.0-r": false, "1..0": false, "1.0_foo": false,
		"1.0-1": false, "1.0 ": false, "1.0~": false,
	} {
		if got := ValidVersion(v); got != want {
			t.Errorf("ValidVersion(%q) = %v, want %v", v, got, want)
		}
	}
}
