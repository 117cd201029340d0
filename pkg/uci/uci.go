// Package uci reads OpenWrt UCI configuration files exactly as OpenWrt's libuci does.
//
// Parse builds a Package from a file's text; Show and Export print it byte-for-byte like
// `uci show`, `uci -X show` and `uci export`. The parser follows libuci's quoting, escaping,
// comment, `;` and merging rules, names anonymous sections the way libuci does (cfgNNHHHH),
// and rejects the same files with the same reason, line and byte. README.md in this folder lists
// the rules and the few places where this package deliberately refuses more than libuci.
package uci

import (
	"errors"
	"strconv"
	"strings"
)

// ErrParse is wrapped by every *ParseError: the text is not valid UCI.
var ErrParse = errors.New("uci parse error")

// ErrTooLarge is wrapped by errors for input beyond MaxInputSize or a statement beyond
// MaxStatementSize.
var ErrTooLarge = errors.New("uci input too large")

// ErrPackageName is wrapped by the error Parse returns for an invalid package name.
var ErrPackageName = errors.New("invalid uci package name")

// ParseError says why, where and at which byte a file was rejected.
//
// Reason, Line and Byte carry libuci's own values for every file libuci rejects: Line counts the
// newline-terminated lines read so far (so an error on a last line without a final newline names
// the line before it), and Byte is the offset within the statement's buffer, which spans every
// line that a quote or a backslash-newline joined to it. Error() is libuci's message without the
// CLI's "uci: " prefix.
type ParseError struct {
	Reason string // libuci's reason text, e.g. "invalid character in name field"
	Line   int    // 1-based line, counted as libuci counts it
	Byte   int    // 0-based offset within the statement buffer
	tooBig bool   // also wraps ErrTooLarge
}

// Error returns "Parse error (REASON) at line L, byte B", exactly as libuci words it.
func (e *ParseError) Error() string {
	return "Parse error (" + e.Reason + ") at line " + strconv.Itoa(e.Line) + ", byte " + strconv.Itoa(e.Byte)
}

// Unwrap makes errors.Is(err, ErrParse) true, and errors.Is(err, ErrTooLarge) for size limits.
func (e *ParseError) Unwrap() []error {
	if e.tooBig {
		return []error{ErrParse, ErrTooLarge}
	}
	return []error{ErrParse}
}

// Package is one parsed UCI file.
type Package struct {
	Name     string     // the config's name, as given to Parse (never the file's `package` line)
	Sections []*Section // in file order; a reopened named section keeps its first place
}

// Section is one `config TYPE ['NAME']` block with everything merged into it.
type Section struct {
	Name      string    // the real name; for anonymous sections the cfgNNHHHH name libuci gives
	Type      string    // the section type
	Anonymous bool      // true when the file gave no name (or an empty one)
	Line      int       // line of its (first) `config` statement
	Options   []*Option // in libuci's order: first appearance, kept when a value is replaced
}

// Option is an `option` (one value) or a `list` (its items, in order).
type Option struct {
	Name   string
	Values []string // one value for an option, the items of a list
	List   bool
	Lines  []int // the line of the statement that set each value (for an option: the last set)
}

// Section returns the first section whose real name is name (cfgNNHHHH works for anonymous
// sections), or nil.
func (p *Package) Section(name string) *Section {
	for _, s := range p.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// SectionsOfType returns the sections of type typ in file order.
//
// Not inlined: inlined at its call sites it cost the mips binary 2.6 KB of code (measured).
//
//go:noinline
func (p *Package) SectionsOfType(typ string) []*Section {
	var out []*Section
	for _, s := range p.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Ref names s as `uci show` does: "@type[N]" for an anonymous section, where N counts every
// earlier section of that type (named ones included), else its name. A section that does not
// belong to p is named by its Name.
func (p *Package) Ref(s *Section) string {
	if !s.Anonymous {
		return s.Name
	}
	n := 0
	for _, t := range p.Sections {
		if t == s {
			return "@" + s.Type + "[" + strconv.Itoa(n) + "]"
		}
		if t.Type == s.Type {
			n++
		}
	}
	return s.Name
}

// Option returns the option or list called name, or nil when it is not set.
//
// Not inlined: inlined at its 22 call sites it cost the mips binary 2.8 KB of code (measured).
//
//go:noinline
func (s *Section) Option(name string) *Option {
	for _, o := range s.Options {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Get returns an option's value as `uci get` prints it: the value of an option, or the items of
// a list joined by single spaces. The bool is false when the option is not set.
func (s *Section) Get(name string) (string, bool) {
	o := s.Option(name)
	if o == nil {
		return "", false
	}
	return strings.Join(o.Values, " "), true
}

// validName reports whether str is a valid section or option name ([A-Za-z0-9_]+), or with
// dash set, a valid package name (which may also hold '-').
func validName(str string, dash bool) bool {
	if str == "" {
		return false
	}
	for i := 0; i < len(str); i++ {
		c := str[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case c == '-' && dash:
		default:
			return false
		}
	}
	return true
}

// validType reports whether str is a valid section type: printable ASCII without spaces.
func validType(str string) bool {
	if str == "" {
		return false
	}
	for i := 0; i < len(str); i++ {
		if str[i] < 33 || str[i] > 126 {
			return false
		}
	}
	return true
}

// anonymousName is libuci's name for the n-th section (1-based, counting every section) when it
// is anonymous: "cfg", n in at least two hex digits, then the low 16 bits of djb2 over the type.
func anonymousName(n int, typ string) string {
	h := uint32(5381)
	for i := 0; i < len(typ); i++ {
		h = h*33 + uint32(typ[i]) // types are ASCII 33-126, so C's signed char changes nothing
	}
	nn := strconv.FormatUint(uint64(n), 16)
	hash := strconv.FormatUint(uint64(h&0xffff), 16)
	return "cfg" + strings.Repeat("0", max(0, 2-len(nn))) + nn + strings.Repeat("0", 4-len(hash)) + hash
}
