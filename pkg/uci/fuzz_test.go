package uci

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it fails only with its own errors, and that
// every accepted file exports to text that parses back to the same package (same sections,
// types, anonymous flags, options and values) with the same show output. The seeds are every
// recorded uci case plus the quirks below; `go test` runs them as ordinary tests.
func FuzzParse(f *testing.F) {
	for _, c := range recordedCases(f) {
		f.Add(c.input)
	}
	for _, s := range []string{
		"config a\n option x 1\nconfig a 'cfg01b606'\n option y 2\n",
		"config b 'cfg02b606'\nconfig a\nconfig a 'cfg02b606'\n option z 3\n",
		"config a 'n'\n option x ab\\\n  cd\n",
		"config a 'n' ;\voption x 1\n",
		"config a\n list l 'it''s'\n option m \"a\\\r\nb\"\n",
		"c t\no n v # c\nl n w;o n x\n",
		"config a\n\toption x 'multi\r\nline'\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Parse("fuzz", bytes.NewReader(in))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			return
		}
		var show, showX, export bytes.Buffer
		if err := p.Show(&show, false); err != nil {
			t.Fatal(err)
		}
		if err := p.Show(&showX, true); err != nil {
			t.Fatal(err)
		}
		if err := p.Export(&export); err != nil {
			t.Fatal(err)
		}
		if !roundTrips(p, export.Len()) {
			return
		}
		q, err := Parse("fuzz", bytes.NewReader(export.Bytes()))
		if err != nil {
			t.Fatalf("export does not parse back: %v\n%s", err, export.Bytes())
		}
		if diff := packageDiff(p, q); diff != "" {
			t.Fatalf("export parses back to another package: %s\n--- export\n%s", diff, export.Bytes())
		}
		var show2, showX2 bytes.Buffer
		if err := q.Show(&show2, false); err != nil {
			t.Fatal(err)
		}
		if err := q.Show(&showX2, true); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(show.Bytes(), show2.Bytes()) || !bytes.Equal(showX.Bytes(), showX2.Bytes()) {
			t.Fatalf("show differs after export and parse:\n%s---\n%s", show.Bytes(), show2.Bytes())
		}
	})
}

// roundTrips reports whether uci export can represent p: it writes types unquoted, so a type
// holding ' " \ # or ; reads back differently (uci itself behaves so, see Export), and text that
// escaping grew past the size limits is not read back at all.
func roundTrips(p *Package, exportLen int) bool {
	if exportLen > MaxStatementSize {
		return false
	}
	for _, s := range p.Sections {
		if strings.ContainsAny(s.Type, `'"\#;`) {
			return false
		}
	}
	return true
}

// packageDiff describes the first difference between two packages, ignoring line numbers.
func packageDiff(a, b *Package) string {
	if len(a.Sections) != len(b.Sections) {
		return "section count " + strconv.Itoa(len(a.Sections)) + " vs " + strconv.Itoa(len(b.Sections))
	}
	for i, s := range a.Sections {
		r := b.Sections[i]
		if s.Name != r.Name || s.Type != r.Type || s.Anonymous != r.Anonymous {
			return "section " + strconv.Itoa(i) + ": " + s.Name + "=" + s.Type + " vs " + r.Name + "=" + r.Type
		}
		if len(s.Options) != len(r.Options) {
			return "section " + s.Name + ": " + strconv.Itoa(len(s.Options)) + " options vs " + strconv.Itoa(len(r.Options))
		}
		for j, o := range s.Options {
			q := r.Options[j]
			if o.Name != q.Name || o.List != q.List || strings.Join(o.Values, "\x00") != strings.Join(q.Values, "\x00") ||
				len(o.Values) != len(q.Values) {
				return "section " + s.Name + " option " + o.Name + " vs " + q.Name
			}
		}
	}
	return ""
}

// BenchmarkParseDHCP parses the realistic /etc/config/dhcp case.
func BenchmarkParseDHCP(b *testing.B) {
	in, err := os.ReadFile(filepath.Join(caseDir, "33-realistic-dhcp", "input"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("dhcp", bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
