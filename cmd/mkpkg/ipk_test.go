package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testSpec is a small package with every kind of file the real one has.
func testSpec() *spec {
	return &spec{
		Name: "nextdns-failover", Version: "0.1.0", Release: "3", Arch: "mips_24kc",
		Description: "test package", License: "MIT", URL: "https://example.invalid/",
		Maintainer: "Test <test@example.invalid>", Section: "net",
		Depends: []string{"dnsmasq"},
		Files: []pkgFile{
			{Path: "/etc/config/nextdns-failover", Mode: 0o644, Data: []byte("config settings 'settings'\n")},
			{Path: "/etc/init.d/nextdns-failover", Mode: 0o755, Data: []byte("#!/bin/sh /etc/rc.common\n")},
			{Path: "/etc/uci-defaults/90-nextdns-failover", Mode: 0o755, Data: []byte("#!/bin/sh\nexit 0\n")},
			{Path: "/usr/sbin/nextdns-failover", Mode: 0o755, Data: bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 1000)},
		},
		Conffiles: []string{"/etc/config/nextdns-failover"},
		PostInst:  []byte("echo post\n"),
		PreRm:     []byte("echo pre\n"),
		MTime:     time.Unix(1767225600, 0).UTC(),
	}
}

func writeTestIPK(t *testing.T, s *spec) string {
	t.Helper()
	p, err := writeIPK(s, t.TempDir())
	if err != nil {
		t.Fatalf("writeIPK: %v", err)
	}
	return p
}

func TestWriteIPKPassesVerify(t *testing.T) {
	s := testSpec()
	p := writeTestIPK(t, s)
	if got, want := filepath.Base(p), "nextdns-failover_0.1.0-3_mips_24kc.ipk"; got != want {
		t.Errorf("file name %s, want %s", got, want)
	}
	if err := verifyIPK(p, s); err != nil {
		t.Fatalf("verifyIPK of a fresh package: %v", err)
	}
	c, err := readIPK(p)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Package": "nextdns-failover", "Version": "0.1.0-3", "Architecture": "mips_24kc",
		"Depends": "dnsmasq", "SourceDateEpoch": "1767225600",
	} {
		if got := c.Control[k]; got != want {
			t.Errorf("control %s = %q, want %q", k, got, want)
		}
	}
	var names []string
	for _, m := range c.DataTx {
		names = append(names, m.Header.Name)
	}
	want := []string{"./", "./etc/", "./etc/config/", "./etc/config/nextdns-failover", "./etc/init.d/",
		"./etc/init.d/nextdns-failover", "./etc/uci-defaults/", "./etc/uci-defaults/90-nextdns-failover",
		"./usr/", "./usr/sbin/", "./usr/sbin/nextdns-failover"}
	if !slices.Equal(names, want) {
		t.Errorf("data members\n got %q\nwant %q", names, want)
	}
}

// TestIPKReadableByGNUTar checks the layout with an independent reader: GNU tar.
func TestIPKReadableByGNUTar(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	p := writeTestIPK(t, testSpec())
	dir := t.TempDir()
	out, err := exec.Command("tar", "-tzf", p).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tzf: %v\n%s", err, out)
	}
	if got := string(out); got != "./debian-binary\n./data.tar.gz\n./control.tar.gz\n" {
		t.Errorf("outer listing:\n%s", got)
	}
	if out, err := exec.Command("tar", "-xzf", p, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	out, err = exec.Command("tar", "--numeric-owner", "-tvzf", filepath.Join(dir, "data.tar.gz")).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvzf data: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.Contains(line, " 0/0 ") {
			t.Errorf("data member not owned by 0/0: %s", line)
		}
		if strings.HasSuffix(line, "./usr/sbin/nextdns-failover") && !strings.HasPrefix(line, "-rwxr-xr-x") {
			t.Errorf("binary not 0755: %s", line)
		}
		if strings.HasSuffix(line, "./etc/config/nextdns-failover") && !strings.HasPrefix(line, "-rw-r--r--") {
			t.Errorf("config not 0644: %s", line)
		}
	}
	out, err = exec.Command("tar", "-xzOf", filepath.Join(dir, "control.tar.gz"), "./conffiles").CombinedOutput()
	if err != nil || string(out) != "/etc/config/nextdns-failover\n" {
		t.Errorf("conffiles = %q (%v)", out, err)
	}
}

func TestWriteIPKIsReproducible(t *testing.T) {
	a, err := os.ReadFile(writeTestIPK(t, testSpec()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeTestIPK(t, testSpec()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two packages from the same spec differ")
	}
	later := testSpec()
	later.MTime = later.MTime.Add(time.Hour)
	c, err := os.ReadFile(writeTestIPK(t, later))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("a different SOURCE_DATE_EPOCH gave the same bytes: time is not recorded")
	}
}

// rewriteIPK rebuilds the package at p with its outer members passed through edit, and the
// data or control members passed through editInner (name is "data" or "control").
func rewriteIPK(t *testing.T, p string, mtime time.Time, edit func([]tarEntry) []tarEntry, editInner func(which string, es []tarEntry) []tarEntry) {
	t.Helper()
	c, err := readIPK(p)
	if err != nil {
		t.Fatal(err)
	}
	toEntries := func(ms []ipkMember) []tarEntry {
		var es []tarEntry
		for _, m := range ms {
			es = append(es, tarEntry{name: m.Header.Name, mode: fs.FileMode(m.Header.Mode), data: m.Data,
				dir: m.Header.Typeflag == tar.TypeDir, link: m.Header.Linkname})
		}
		return es
	}
	inner := func(which string, ms []ipkMember) []byte {
		es := toEntries(ms)
		if editInner != nil {
			es = editInner(which, es)
		}
		b, err := tarGz(mtime, es)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	outer := []tarEntry{
		{name: "./debian-binary", mode: 0o644, data: []byte("2.0\n")},
		{name: "./data.tar.gz", mode: 0o644, data: inner("data", c.DataTx)},
		{name: "./control.tar.gz", mode: 0o644, data: inner("control", c.ControlTx)},
	}
	if edit != nil {
		outer = edit(outer)
	}
	b, err := tarGz(mtime, outer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyIPKRejectsBrokenPackages: every way a package can be broken fails -verify.
func TestVerifyIPKRejectsBrokenPackages(t *testing.T) {
	cases := []struct {
		name      string
		outer     func([]tarEntry) []tarEntry
		inner     func(string, []tarEntry) []tarEntry
		spec      func(*spec) // the spec verify compares with (as if the build had meant this)
		mtime     time.Duration
		raw       []byte // replace the whole file
		wantInErr string
	}{
		{name: "control before data (wrong order)", outer: func(es []tarEntry) []tarEntry {
			es[1], es[2] = es[2], es[1]
			return es
		}, wantInErr: "outer members"},
		{name: "debian-binary missing", outer: func(es []tarEntry) []tarEntry { return es[1:] }, wantInErr: "outer members"},
		{name: "debian-binary wrong", outer: func(es []tarEntry) []tarEntry {
			es[0].data = []byte("2.1\n")
			return es
		}, wantInErr: "debian-binary"},
		{name: "binary lost its execute bit", inner: func(w string, es []tarEntry) []tarEntry {
			return editMember(w, "data", es, "./usr/sbin/nextdns-failover", func(e *tarEntry) { e.mode = 0o644 })
		}, wantInErr: "mode 0644, want 0755"},
		{name: "init script not executable", inner: func(w string, es []tarEntry) []tarEntry {
			return editMember(w, "data", es, "./etc/init.d/nextdns-failover", func(e *tarEntry) { e.mode = 0o600 })
		}, wantInErr: "./etc/init.d/nextdns-failover: mode"},
		{name: "file content differs", inner: func(w string, es []tarEntry) []tarEntry {
			return editMember(w, "data", es, "./etc/config/nextdns-failover", func(e *tarEntry) { e.data = []byte("x") })
		}, wantInErr: "contents differ"},
		{name: "missing conffiles", inner: func(w string, es []tarEntry) []tarEntry {
			return dropMember(w, "control", es, "./conffiles")
		}, wantInErr: "no ./conffiles"},
		{name: "no prerm-pkg", inner: func(w string, es []tarEntry) []tarEntry {
			return dropMember(w, "control", es, "./prerm-pkg")
		}, wantInErr: "no ./prerm-pkg"},
		{name: "postinst not calling default_postinst", inner: func(w string, es []tarEntry) []tarEntry {
			return editMember(w, "control", es, "./postinst", func(e *tarEntry) { e.data = []byte("#!/bin/sh\n") })
		}, wantInErr: "default_postinst"},
		{name: "control without Architecture", inner: func(w string, es []tarEntry) []tarEntry {
			return editMember(w, "control", es, "./control", func(e *tarEntry) {
				e.data = []byte(strings.Replace(string(e.data), "Architecture: mips_24kc\n", "", 1))
			})
		}, wantInErr: "no Architecture"},
		{name: "wrong Installed-Size", inner: func(w string, es []tarEntry) []tarEntry {
			return editMember(w, "control", es, "./control", func(e *tarEntry) {
				e.data = []byte(strings.Replace(string(e.data), "Installed-Size: ", "Installed-Size: 1", 1))
			})
		}, wantInErr: "Installed-Size"},
		{name: "extra data file", inner: func(w string, es []tarEntry) []tarEntry {
			if w == "data" {
				es = append(es, tarEntry{name: "./zzz", mode: 0o644, data: []byte("x")})
			}
			return es
		}, wantInErr: "data.tar.gz members"},
		{name: "another architecture than asked", spec: func(s *spec) { s.Arch = "mipsel_24kc" }, wantInErr: "Architecture is"},
		{name: "different Depends", spec: func(s *spec) { s.Depends = []string{"dnsmasq-full"} }, wantInErr: "Depends is"},
		{name: "timestamps not SOURCE_DATE_EPOCH", mtime: time.Second, wantInErr: "mtime"},
		{name: "ar archive instead of tar.gz", raw: []byte("!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"), wantInErr: "outer archive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testSpec()
			p := writeTestIPK(t, s)
			if tc.raw != nil {
				if err := os.WriteFile(p, tc.raw, 0o644); err != nil {
					t.Fatal(err)
				}
			} else if tc.outer != nil || tc.inner != nil || tc.mtime != 0 {
				rewriteIPK(t, p, s.MTime.Add(tc.mtime), tc.outer, tc.inner)
			}
			want := testSpec()
			if tc.spec != nil {
				tc.spec(want)
				// the file name follows the spec; keep the test about the contents
				np := filepath.Join(filepath.Dir(p), ipkFileName(want))
				if err := os.Rename(p, np); err != nil {
					t.Fatal(err)
				}
				p = np
			}
			err := verifyIPK(p, want)
			if err == nil {
				t.Fatal("verifyIPK accepted a broken package")
			}
			if !errors.Is(err, errBadPackage) {
				t.Errorf("error does not wrap errBadPackage: %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error does not mention %q:\n%v", tc.wantInErr, err)
			}
		})
	}
}

func editMember(which, want string, es []tarEntry, name string, f func(*tarEntry)) []tarEntry {
	if which != want {
		return es
	}
	for i := range es {
		if es[i].name == name {
			f(&es[i])
		}
	}
	return es
}

func dropMember(which, want string, es []tarEntry, name string) []tarEntry {
	if which != want {
		return es
	}
	return slices.DeleteFunc(es, func(e tarEntry) bool { return e.name == name })
}

func TestWriteIPKRejectsBadSpecs(t *testing.T) {
	cases := []struct {
		name string
		edit func(*spec)
	}{
		{"upper-case name", func(s *spec) { s.Name = "NextDNS" }},
		{"space in version", func(s *spec) { s.Version = "0.1 beta" }},
		{"underscore in release", func(s *spec) { s.Release = "1_2" }},
		{"bad arch", func(s *spec) { s.Arch = "MIPS 24kc" }},
		{"relative path", func(s *spec) { s.Files[0].Path = "etc/config/x" }},
		{"unclean path", func(s *spec) { s.Files[0].Path = "/etc/../config/x" }},
		{"duplicate file", func(s *spec) { s.Files = append(s.Files, s.Files[0]) }},
		{"world-writable file", func(s *spec) { s.Files[0].Mode = 0o666 }},
		{"conffile not shipped", func(s *spec) { s.Conffiles = []string{"/etc/config/other"} }},
		{"multi-line description", func(s *spec) { s.Description = "a\nb" }},
		{"no files", func(s *spec) { s.Files = nil; s.Conffiles = nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testSpec()
			tc.edit(s)
			dir := t.TempDir()
			_, err := writeIPK(s, dir)
			if !errors.Is(err, errBadPackage) {
				t.Fatalf("writeIPK error = %v, want errBadPackage", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("a rejected spec left %d files behind", len(ents))
			}
		})
	}
}
