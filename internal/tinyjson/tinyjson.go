// Package tinyjson writes and reads the little JSON the router binary needs (the status file,
// override requests, `--json` output) without encoding/json, which adds about 390 KB to a MIPS
// binary (measured: 2.49 MB -> 2.88 MB for a program that already links net and fmt).
package tinyjson

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Writer builds one JSON document. Keys and values are appended in call order; the caller opens
// and closes objects and arrays. Output is indented for people reading it over SSH.
type Writer struct {
	b     []byte
	depth int
	first bool // the next item is the first in its container
}

// Bytes returns the document with a final newline.
func (w *Writer) Bytes() []byte { return append(w.b, '\n') }

func (w *Writer) sep(key string) {
	if w.depth > 0 {
		if !w.first {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, '\n')
		for range w.depth {
			w.b = append(w.b, ' ', ' ')
		}
	}
	w.first = false
	if key != "" {
		w.b = AppendString(w.b, key)
		w.b = append(w.b, ':', ' ')
	}
}

// Open starts an object ('{') or array ('[') under key ("" inside arrays and at the top).
//
// Not inlined: inlined at its call sites it cost the mips binary 0.7 KB of code (measured).
//
//go:noinline
func (w *Writer) Open(key string, c byte) {
	w.sep(key)
	w.b = append(w.b, c)
	w.depth++
	w.first = true
}

// Close ends the innermost object ('}') or array (']').
//
// Not inlined: inlined at its call sites it cost the mips binary 2.5 KB of code (measured).
//
//go:noinline
func (w *Writer) Close(c byte) {
	w.depth--
	if !w.first {
		w.b = append(w.b, '\n')
		for range w.depth {
			w.b = append(w.b, ' ', ' ')
		}
	}
	w.first = false
	w.b = append(w.b, c)
}

// String writes a string value.
func (w *Writer) String(key, v string) { w.sep(key); w.b = AppendString(w.b, v) }

// Int writes an integer.
func (w *Writer) Int(key string, v int64) { w.sep(key); w.b = strconv.AppendInt(w.b, v, 10) }

// Uint writes an unsigned integer.
func (w *Writer) Uint(key string, v uint64) { w.sep(key); w.b = strconv.AppendUint(w.b, v, 10) }

// Float writes a number.
func (w *Writer) Float(key string, v float64) {
	w.sep(key)
	w.b = strconv.AppendFloat(w.b, v, 'f', -1, 64)
}

// Bool writes true or false.
func (w *Writer) Bool(key string, v bool) { w.sep(key); w.b = strconv.AppendBool(w.b, v) }

// Time writes an RFC 3339 time with nanoseconds, or "" for the zero time.
func (w *Writer) Time(key string, t time.Time) {
	if t.IsZero() {
		w.String(key, "")
		return
	}
	w.String(key, t.Format(time.RFC3339Nano))
}

// Strings writes an array of strings on one line.
func (w *Writer) Strings(key string, v []string) {
	w.sep(key)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',', ' ')
		}
		w.b = AppendString(w.b, s)
	}
	w.b = append(w.b, ']')
}

// AppendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid JSON")

// maxDepth bounds nesting: our documents are 3 levels deep; a hostile file cannot recurse deeper.
const maxDepth = 16

// Parse reads one JSON value: map[string]any, []any, string, float64, bool or nil.
func Parse(b []byte) (any, error) {
	p := parser{b: b}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.fail("trailing data")
	}
	return v, nil
}

type parser struct {
	b []byte
	i int
}

// Not inlined: inlined at its 13 call sites it cost the mips binary 2.1 KB of code (measured).
//
//go:noinline
func (p *parser) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrSyntax, what, p.i)
}

// Not inlined: inlined at its 8 call sites it cost the mips binary 0.5 KB of code (measured).
//
//go:noinline
func (p *parser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) lit(s string, v any) (any, error) {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return nil, p.fail("bad literal")
	}
	p.i += len(s)
	return v, nil
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.fail("nested too deep")
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		m := map[string]any{}
		p.space()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return m, nil
		}
		for {
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, p.fail("expected a key")
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, p.fail("expected ':'")
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
			p.space()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				return m, nil
			}
			return nil, p.fail("expected ',' or '}'")
		}
	case c == '[':
		p.i++
		var a []any
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return a, nil
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
			p.space()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				return a, nil
			}
			return nil, p.fail("expected ',' or ']'")
		}
	case c == '"':
		return p.str()
	case c == 't':
		return p.lit("true", true)
	case c == 'f':
		return p.lit("false", false)
	case c == 'n':
		return p.lit("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		j := numberEnd(p.b, p.i)
		if j < 0 {
			return nil, p.fail("bad number")
		}
		f, err := strconv.ParseFloat(string(p.b[p.i:j]), 64)
		if err != nil {
			return nil, p.fail("bad number")
		}
		p.i = j
		return f, nil
	}
	return nil, p.fail("unexpected character")
}

// numberEnd returns the end of the JSON number at b[i:] (-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?),
// or -1 when there is none.
func numberEnd(b []byte, i int) int {
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return -1
		}
	}
	return i
}

func (p *parser) str() (string, error) {
	p.i++ // the opening quote
	var out []byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return "", p.fail("unterminated string")
			}
			e := p.b[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'n':
				out = append(out, '\n')
			case 't':
				out = append(out, '\t')
			case 'r':
				out = append(out, '\r')
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'u':
				if p.i+4 > len(p.b) {
					return "", p.fail("bad \\u escape")
				}
				n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
				if err != nil {
					return "", p.fail("bad \\u escape")
				}
				p.i += 4
				out = utf8.AppendRune(out, rune(n))
			default:
				return "", p.fail("bad escape")
			}
		case c < 0x20:
			return "", p.fail("control character in string")
		default:
			out = append(out, c)
			p.i++
		}
	}
	return "", p.fail("unterminated string")
}

// Object is a parsed JSON object with typed getters that return zero values for missing or
// mistyped keys: the files we read are our own, but are never trusted to be well formed.
type Object map[string]any

// Obj returns the object under key.
func (o Object) Obj(key string) Object { m, _ := o[key].(map[string]any); return m }

// Str returns the string under key.
//
// Not inlined: inlined at its 24 call sites it cost the mips binary 1.4 KB of code (measured).
//
//go:noinline
func (o Object) Str(key string) string { s, _ := o[key].(string); return s }

// Num returns the number under key.
func (o Object) Num(key string) float64 { f, _ := o[key].(float64); return f }

// Bool returns the boolean under key.
func (o Object) Bool(key string) bool { b, _ := o[key].(bool); return b }

// Time returns the RFC 3339 time under key (zero when missing or malformed).
func (o Object) Time(key string) time.Time { return parseTime(o.Str(key)) }

// parseTime parses what Writer.Time writes (time.RFC3339Nano) as time.Parse does, including
// the location of a numeric offset (Local when it has that offset then, else a fixed zone);
// it returns the zero time on anything else, including the few forms only time.Parse's
// general layout parser takes (a one-digit hour, a comma before the fraction), which
// Writer.Time never writes. That parser is why this is not time.Parse: 18 KB of mips code.
func parseTime(s string) time.Time {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}
	}
	var v [6]int // year, month, day, hour, minute, second
	for i, at := range [6]int{0, 5, 8, 11, 14, 17} {
		width := 2
		if i == 0 {
			width = 4
		}
		if v[i] = digits(s[at : at+width]); v[i] < 0 {
			return time.Time{}
		}
	}
	rest := s[19:]
	nsec := 0
	if len(rest) >= 2 && rest[0] == '.' && digits(rest[1:2]) >= 0 {
		n := 1
		for ; n < len(rest) && digits(rest[n:n+1]) >= 0; n++ {
			if n <= 9 { // digits past nanoseconds are dropped, as time.Parse does
				nsec = nsec*10 + int(rest[n]-'0')
			}
		}
		for i := n; i <= 9; i++ {
			nsec *= 10
		}
		rest = rest[n:]
	}
	if v[1] < 1 || v[1] > 12 || v[2] < 1 || v[3] > 23 || v[4] > 59 || v[5] > 59 {
		return time.Time{}
	}
	t := time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], nsec, time.UTC)
	if t.Day() != v[2] { // February 30th and the like
		return time.Time{}
	}
	if rest == "Z" {
		return t
	}
	if len(rest) != len("-07:00") || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return time.Time{}
	}
	// The bounds of time.Parse, which falls back on its general parser here.
	zh, zm := digits(rest[1:3]), digits(rest[4:6])
	if zh < 0 || zm < 0 || zh > 24 || zm > 60 {
		return time.Time{}
	}
	offset := zh*3600 + zm*60
	if rest[0] == '-' {
		offset = -offset
	}
	t = t.Add(-time.Duration(offset) * time.Second)
	if _, off := t.In(time.Local).Zone(); off == offset {
		return t.In(time.Local)
	}
	return t.In(time.FixedZone("", offset))
}

// digits is the decimal number s, or -1 when s is empty or holds anything but digits.
func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	if s == "" {
		return -1
	}
	return n
}

// Duration returns the Go duration string under key ("1.5s").
func (o Object) Duration(key string) time.Duration {
	d, _ := time.ParseDuration(o.Str(key))
	return d
}

// Strings returns the array of strings under key.
func (o Object) Strings(key string) []string {
	a, _ := o[key].([]any)
	var out []string
	for _, v := range a {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Objs returns the array of objects under key.
func (o Object) Objs(key string) []Object {
	a, _ := o[key].([]any)
	var out []Object
	for _, v := range a {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// ParseObject parses a document whose top level must be an object.
func ParseObject(b []byte) (Object, error) {
	v, err := Parse(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not an object", ErrSyntax)
	}
	return m, nil
}
