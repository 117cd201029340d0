package uci

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// caseDir holds the cases recorded from OpenWrt's own uci CLI (see testdata/cases/README.md).
const caseDir = "testdata/cases"

type recordedCase struct {
	name, pkg string
	input     []byte
	dir       string
}

func recordedCases(t testing.TB) []recordedCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(caseDir, "[0-9]*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in %s (err %v)", caseDir, err)
	}
	var out []recordedCase
	for _, d := range dirs {
		in, err := os.ReadFile(filepath.Join(d, "input"))
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := os.ReadFile(filepath.Join(d, "package.txt"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recordedCase{name: filepath.Base(d), pkg: strings.TrimSpace(string(pkg)), input: in, dir: d})
	}
	return out
}

// TestRecordedCases runs every case recorded from libuci: accepted files must show and export
// byte-for-byte as uci did; rejected ones must fail with uci's reason, line and byte.
func TestRecordedCases(t *testing.T) {
	cases := recordedCases(t)
	if len(cases) < 48 {
		t.Fatalf("found %d cases, want at least 48", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(c.pkg, bytes.NewReader(c.input))
			if want, rerr := os.ReadFile(filepath.Join(c.dir, "error.out")); rerr == nil {
				if err == nil {
					t.Fatalf("Parse accepted a file uci rejects with %q", want)
				}
				if got := "uci: " + err.Error() + "\n"; got != string(want) {
					t.Errorf("error:\n got %q\nwant %q", got, want)
				}
				var pe *ParseError
				if !errors.Is(err, ErrParse) || !errors.As(err, &pe) {
					t.Errorf("error %v is not a *ParseError wrapping ErrParse", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for _, out := range []struct {
				file  string
				write func(*bytes.Buffer) error
			}{
				{"show.out", func(b *bytes.Buffer) error { return p.Show(b, false) }},
				{"show-X.out", func(b *bytes.Buffer) error { return p.Show(b, true) }},
				{"export.out", func(b *bytes.Buffer) error { return p.Export(b) }},
			} {
				want, err := os.ReadFile(filepath.Join(c.dir, out.file))
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if err := out.write(&got); err != nil {
					t.Fatalf("%s: %v", out.file, err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("%s differs from uci:\n--- got\n%s--- want\n%s", out.file, got.Bytes(), want)
				}
			}
		})
	}
}

func mustParse(t *testing.T, text string) *Package {
	t.Helper()
	p, err := Parse("test", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// TestLines checks the line numbers that the config package puts in its messages.
func TestLines(t *testing.T) {
	p := mustParse(t, strings.Join([]string{
		"# header",                          // 1
		"config settings 'settings'",        // 2
		"\toption interval '10'",            // 3
		"\tlist primary 'a'",                // 4
		"",                                  // 5
		"\toption note 'two",                // 6
		"lines'; option after x",            // 7
		"\toption interval \\",              // 8
		"30",                                // 9
		"\tlist primary b ; list primary c", // 10
		"config other; option x 1",          // 11 (x is dropped with the rest of the line)
		"\toption y 2",                      // 12
		"config settings 'settings'",        // 13
		"\tlist primary d",                  // 14
		"\toption interval '40'",            // 15
	}, "\n"))
	tests := []struct {
		name      string
		section   string
		option    string
		wantLines []int
		wantVals  []string
	}{
		{"option set again keeps the last line", "settings", "interval", []int{15}, []string{"40"}},
		{"each list item keeps its own line", "settings", "primary", []int{4, 10, 10, 14}, []string{"a", "b", "c", "d"}},
		{"a value spanning lines starts on its first", "settings", "note", []int{6}, []string{"two\nlines"}},
		{"a statement after ';' on a joined line", "settings", "after", []int{7}, []string{"x"}},
		{"anonymous section, next line", "cfg0203e7", "y", []int{12}, []string{"2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := p.Section(tt.section)
			if s == nil {
				t.Fatalf("no section %q", tt.section)
			}
			o := s.Option(tt.option)
			if o == nil {
				t.Fatalf("no option %q", tt.option)
			}
			if !reflect.DeepEqual(o.Lines, tt.wantLines) || !reflect.DeepEqual(o.Values, tt.wantVals) {
				t.Errorf("got values %q lines %v, want %q lines %v", o.Values, o.Lines, tt.wantVals, tt.wantLines)
			}
		})
	}
	if s := p.Section("settings"); s.Line != 2 {
		t.Errorf("merged section line = %d, want 2 (its first config statement)", s.Line)
	}
	if s := p.Section("cfg0203e7"); s == nil || s.Line != 11 || s.Option("x") != nil {
		t.Errorf("anonymous section = %+v, want line 11 and no option x", s)
	}
}

func TestAccessors(t *testing.T) {
	p := mustParse(t, `
config dnsmasq
	option domain 'lan'
	list server '/lan/1.2.3.4'
	list server '127.0.0.1#5353'
config dhcp 'lan'
	option interface 'lan'
config dnsmasq 'second'
config dhcp
`)
	first := p.SectionsOfType("dnsmasq")[0]
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"Ref of an anonymous section counts its type", p.Ref(first), "@dnsmasq[0]"},
		{"Ref of an anonymous section after a named one", p.Ref(p.Sections[3]), "@dhcp[1]"},
		{"Ref of a named section is its name", p.Ref(p.Sections[1]), "lan"},
		{"Ref of a foreign section is its name", p.Ref(&Section{Name: "cfg01abcd", Anonymous: true}), "cfg01abcd"},
		{"real name of an anonymous section", first.Name, "cfg01411c"},
		{"Section finds an anonymous section by real name", p.Section("cfg01411c"), first},
		{"Section of an unknown name", p.Section("wan"), (*Section)(nil)},
		{"SectionsOfType keeps file order", len(p.SectionsOfType("dnsmasq")), 2},
		{"SectionsOfType of an unknown type", len(p.SectionsOfType("host")), 0},
		{"Option of an unset name", first.Option("nope"), (*Option)(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}

	gets := []struct {
		name, option, want string
		ok                 bool
	}{
		{"option", "domain", "lan", true},
		{"list joins items with spaces like uci get", "server", "/lan/1.2.3.4 127.0.0.1#5353", true},
		{"unset", "port", "", false},
	}
	for _, tt := range gets {
		t.Run("Get "+tt.name, func(t *testing.T) {
			got, ok := first.Get(tt.option)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.option, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// djb2 is the hash libuci names anonymous sections with (h = 5381; h = h*33 + byte).
func djb2(s string) uint32 {
	h := uint32(5381)
	for _, c := range []byte(s) {
		h = h*33 + uint32(c)
	}
	return h
}

func TestAnonymousNames(t *testing.T) {
	tests := []struct {
		name string
		n    int
		typ  string
		want string
	}{
		{"first section", 1, "rule", "cfg0192bd"},
		{"two hex digits", 0x2a, "iface", "cfg2aa57d"},
		{"three hex digits after 255", 0x12a, "item", "cfg12a9e34"},
	}
	// libuci formats the name with printf("cfg%02x%04x"); compare over many counts and types,
	// including hashes that need zero padding.
	for n := 1; n < 0x1100; n += 7 {
		typ := strconv.Itoa(n * 7919)
		want := fmt.Sprintf("cfg%02x%04x", n, djb2(typ)&0xffff)
		if got := anonymousName(n, typ); got != want {
			t.Fatalf("anonymousName(%d, %q) = %q, want %q", n, typ, got, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := anonymousName(tt.n, tt.typ); got != tt.want {
				t.Errorf("anonymousName(%d, %q) = %q, want %q", tt.n, tt.typ, got, tt.want)
			}
		})
	}
}

// TestRejects covers errors outside the recorded cases: libuci's rarer reasons, and this
// package's own limits.
func TestRejects(t *testing.T) {
	tests := []struct {
		name     string
		pkg      string
		input    string
		want     string // Error(), or a prefix for non-parse errors
		sentinel error
	}{
		{"keyword at end of file", "test", "config", "Parse error (config without name) at line 0, byte 0", ErrParse},
		{"option keyword at end of file", "test", "config a\no", "Parse error (option without name) at line 1, byte 0", ErrParse},
		{"package keyword at end of file", "test", "package", "Parse error (package without name) at line 0, byte 0", ErrParse},
		{"package name with a dot", "test", "package a.b\n", "Parse error (invalid character in name field) at line 1, byte 12", ErrParse},
		{"missing option name", "test", "config a\noption ;\n", "Parse error (insufficient arguments) at line 2, byte 8", ErrParse},
		{"separator then line end", "test", "config a\noption b 1 ;\n", "Parse error (invalid command) at line 2, byte 12", ErrParse},
		{"UTF-8 BOM", "test", "\xef\xbb\xbfconfig a\n", "Parse error (invalid command) at line 1, byte 0", ErrParse},
		{"NUL byte", "test", "config a\n\toption b x\x00y\n", "Parse error (NUL byte in input) at line 2, byte 11", ErrParse},
		{"statement over the cap", "test", "config a\noption b '" + strings.Repeat("x\n", MaxStatementSize/2) + "'\n",
			"Parse error (statement longer than 65536 bytes) at line", ErrTooLarge},
		{"file over the cap", "test", "#" + strings.Repeat("x", MaxInputSize), "uci input too large", ErrTooLarge},
		{"invalid package name", "a.b", "", "invalid uci package name", ErrPackageName},
		{"empty package name", "", "", "invalid uci package name", ErrPackageName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.pkg, strings.NewReader(tt.input))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", p)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tt.sentinel)
			}
		})
	}
}

// TestSizeLimit checks that a file of exactly MaxInputSize is read in full.
func TestSizeLimit(t *testing.T) {
	head := "config a 'n'\n"
	stmt := "\toption b '1'\n"
	body := strings.Repeat(stmt, (MaxInputSize-len(head))/len(stmt))
	in := head + body + strings.Repeat("#", MaxInputSize-len(head)-len(body)-1) + "\n"
	if len(in) != MaxInputSize {
		t.Fatalf("built %d bytes, want %d", len(in), MaxInputSize)
	}
	p, err := Parse("test", strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse of a file at the limit: %v", err)
	}
	if got, _ := p.Section("n").Get("b"); got != "1" {
		t.Errorf("b = %q, want 1", got)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Parse("test", iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not wrap the reader's error", err)
	}
}

// TestQuirks pins libuci behaviours a user could trip over, beyond the recorded cases.
func TestQuirks(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		show    string // uci show output when accepted
		wantErr string // the error when rejected
	}{
		{name: "named section taking an anonymous section's name merges into it",
			input: "config a\n option x 1\nconfig a 'cfg01b606'\n option y 2\n",
			show:  "test.@a[0]=a\ntest.@a[0].x='1'\ntest.@a[0].y='2'\n"},
		{name: "same name, other type than an anonymous section",
			input:   "config a\nconfig b 'cfg01b606'\n",
			wantErr: "Parse error (section of different type overwrites prior section with same name) at line 2, byte 21"},
		{name: "backslash-newline before an indented line ends the word",
			input:   "config a 'n'\n option x ab\\\n  cd\n",
			wantErr: "Parse error (too many arguments) at line 3, byte 18"},
		{name: "backslash-newline before an unindented line joins the word",
			input: "config a 'n'\n option x ab\\\ncd\n",
			show:  "test.n=a\ntest.n.x='abcd'\n"},
		{name: "quoted empty extra argument is no extra argument",
			input: "config a 'n'\n option x 1 ''\n",
			show:  "test.n=a\ntest.n.x='1'\n"},
		{name: "CR is whitespace outside quotes",
			input: "config a 'n'\r\n option x\r1\r\n",
			show:  "test.n=a\ntest.n.x='1'\n"},
		{name: "vertical tab after ; is not a keyword separator",
			input:   "config a 'n' ;\voption x 1\n",
			wantErr: "Parse error (invalid command) at line 1, byte 14"},
		{name: "glued ; after a name drops the value",
			input: "config a 'n'\n option x;y 1\n option z 2\n",
			show:  "test.n=a\ntest.n.z='2'\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("test", strings.NewReader(tt.input))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := p.Show(&b, false); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.show {
				t.Errorf("show:\n got %q\nwant %q", b.String(), tt.show)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	p := mustParse(t, "config a 'b'\n")
	w := errWriter{errors.New("disk full")}
	if err := p.Show(w, false); !errors.Is(err, w.err) {
		t.Errorf("Show: got %v, want the writer's error", err)
	}
	if err := p.Export(w); !errors.Is(err, w.err) {
		t.Errorf("Export: got %v, want the writer's error", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
