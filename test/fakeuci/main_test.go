package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMatchesRealUCI: on real OpenWrt files the stand-in prints exactly what libuci prints.
func TestMatchesRealUCI(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/input")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, in := range cases {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			pkgName := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "package.txt"))))
			conf := t.TempDir()
			if err := os.WriteFile(filepath.Join(conf, pkgName), mustRead(t, in), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("UCI_CONFIG_DIR", conf)
			t.Setenv("FAKEUCI_SAVEDIR", "")
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"show", pkgName}, "show.out"},
				{[]string{"-X", "show", pkgName}, "show-X.out"},
				{[]string{"export", pkgName}, "export.out"},
			} {
				var out bytes.Buffer
				if err := run(c.args, &out); err != nil {
					t.Fatalf("uci %v: %v", c.args, err)
				}
				if want := string(mustRead(t, filepath.Join(dir, c.want))); out.String() != want {
					t.Errorf("uci %v:\n got %q\nwant %q", c.args, out.String(), want)
				}
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEditsAreStagedUntilCommit walks the commands the package's scripts use.
func TestEditsAreStagedUntilCommit(t *testing.T) {
	conf := t.TempDir()
	t.Setenv("UCI_CONFIG_DIR", conf)
	t.Setenv("FAKEUCI_SAVEDIR", "")
	orig := "\nconfig dnsmasq\n\toption noresolv '0'\n\tlist server '/lan/1.2.3.4'\n\tlist server '9.9.9.9'\n"
	if err := os.WriteFile(filepath.Join(conf, "dhcp"), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	uci := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(args, &out)
		return strings.TrimSuffix(out.String(), "\n"), err
	}
	steps := []struct {
		args    []string
		want    string
		wantErr error
	}{
		{[]string{"get", "dhcp.@dnsmasq[0]"}, "dnsmasq", nil},
		{[]string{"get", "dhcp.@dnsmasq[0].server"}, "/lan/1.2.3.4 9.9.9.9", nil},
		{[]string{"get", "dhcp.cfg01411c.noresolv"}, "0", nil},
		{[]string{"-q", "get", "dhcp.@dnsmasq[0].nosuch"}, "", errNotFound},
		{[]string{"set", "dhcp.@dnsmasq[0].noresolv=1"}, "", nil},
		{[]string{"del_list", "dhcp.@dnsmasq[0].server=9.9.9.9"}, "", nil},
		{[]string{"add_list", "dhcp.@dnsmasq[0].server=45.90.28.0"}, "", nil},
		{[]string{"set", "dhcp.@dnsmasq[0].serversfile=/var/run/x"}, "", nil},
		{[]string{"get", "dhcp.@dnsmasq[0].server"}, "/lan/1.2.3.4 45.90.28.0", nil},
		{[]string{"set", "dhcp.@dnsmasq[0].serversfile="}, "", nil}, // empty deletes
		{[]string{"-q", "get", "dhcp.@dnsmasq[0].serversfile"}, "", errNotFound},
		{[]string{"delete", "dhcp.@dnsmasq[0].noresolv"}, "", nil},
		{[]string{"set", "dhcp.extra=dnsmasq"}, "", nil},
		{[]string{"get", "dhcp.@dnsmasq[1]"}, "dnsmasq", nil},
		{[]string{"get", "dhcp.@dnsmasq[-1]"}, "dnsmasq", nil},
		{[]string{"-q", "get", "dhcp.@dnsmasq[2]"}, "", errNotFound},
		{[]string{"set", "dhcp.nosuch.x=1"}, "", errNotFound},
	}
	for _, s := range steps {
		got, err := uci(s.args...)
		if !errors.Is(err, s.wantErr) || got != s.want {
			t.Fatalf("uci %v = %q, %v; want %q, %v", s.args, got, err, s.want, s.wantErr)
		}
	}
	if b := mustRead(t, filepath.Join(conf, "dhcp")); string(b) != orig {
		t.Fatalf("the file changed before commit:\n%s", b)
	}
	if _, err := uci("commit", "dhcp"); err != nil {
		t.Fatal(err)
	}
	want := "\nconfig dnsmasq\n\tlist server '/lan/1.2.3.4'\n\tlist server '45.90.28.0'\n\nconfig dnsmasq 'extra'\n\n"
	if b := mustRead(t, filepath.Join(conf, "dhcp")); string(b) != want {
		t.Fatalf("after commit:\n got %q\nwant %q", b, want)
	}
	if _, err := uci("set", "dhcp.extra.x=1"); err != nil {
		t.Fatal(err)
	}
	if _, err := uci("revert", "dhcp"); err != nil {
		t.Fatal(err)
	}
	if got, err := uci("-q", "get", "dhcp.extra.x"); !errors.Is(err, errNotFound) {
		t.Fatalf("after revert: %q, %v", got, err)
	}
}

// TestGetQuotesLikeLibuci: `uci get` prints an option raw and quotes only the list items that
// hold whitespace (libuci's cli.c); `show` of one section or option names it by its real name.
func TestGetQuotesLikeLibuci(t *testing.T) {
	conf := t.TempDir()
	t.Setenv("UCI_CONFIG_DIR", conf)
	t.Setenv("FAKEUCI_SAVEDIR", "")
	file := "config dnsmasq\n\toption o 'a b'\n\tlist server '8.8.8.8 '\n\tlist server \"it's\"\n" +
		"\tlist server ''\n\tlist server '1.1.1.1'\n\tlist server 'tab\there'\n"
	if err := os.WriteFile(filepath.Join(conf, "dhcp"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "dhcp.@dnsmasq[0].o"}, "a b\n"},
		{[]string{"get", "dhcp.@dnsmasq[0].server"}, "'8.8.8.8 ' it's  1.1.1.1 'tab\there'\n"},
		{[]string{"show", "dhcp.@dnsmasq[0].server"}, "dhcp.cfg01411c.server='8.8.8.8 ' 'it'\\''s' '' '1.1.1.1' 'tab\there'\n"},
		{[]string{"show", "dhcp.@dnsmasq[0].o"}, "dhcp.cfg01411c.o='a b'\n"},
	} {
		var out bytes.Buffer
		if err := run(c.args, &out); err != nil {
			t.Fatalf("uci %v: %v", c.args, err)
		}
		if out.String() != c.want {
			t.Errorf("uci %v:\n got %q\nwant %q", c.args, out.String(), c.want)
		}
	}
}

// TestCommitLeavesMode0600: libuci's commit renames a mkstemp file over the config.
func TestCommitLeavesMode0600(t *testing.T) {
	conf := t.TempDir()
	t.Setenv("UCI_CONFIG_DIR", conf)
	t.Setenv("FAKEUCI_SAVEDIR", "")
	p := filepath.Join(conf, "dhcp")
	if err := os.WriteFile(p, []byte("config dnsmasq\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"set", "dhcp.@dnsmasq[0].noresolv=1"}, {"commit", "dhcp"}} {
		if err := run(args, &bytes.Buffer{}); err != nil {
			t.Fatalf("uci %v: %v", args, err)
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after commit: %v, want 0600", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(conf); len(ents) != 2 { // dhcp and the empty .fakeuci
		t.Fatalf("files left in the config folder: %v", ents)
	}
}
