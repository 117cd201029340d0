package uci

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// MaxInputSize is the largest file Parse accepts. Real UCI files are a few KiB (a busy
// /etc/config/dhcp with a hundred static leases is about 20 KiB); 1 MiB leaves ample room while
// keeping a hostile or corrupt file from costing a router with 32 MiB of RAM more than a few MiB.
const MaxInputSize = 1 << 20

// MaxStatementSize caps libuci's statement buffer: one line plus every line a quote or a
// backslash-newline joins to it. Real statements are under 1 KiB; 64 KiB still fits a PEM
// certificate chain or a long list item, while a file that opens a quote and never closes it
// fails fast instead of buffering up to MaxInputSize.
const MaxStatementSize = 64 << 10

// Parse reads the UCI text of the config called pkg (e.g. "dhcp") from r, as libuci loads
// /etc/config/pkg. Rejected text returns a *ParseError wrapping ErrParse with libuci's reason,
// line and byte; input beyond MaxInputSize returns an error wrapping ErrTooLarge.
//
// Beyond libuci, Parse also rejects input holding a NUL byte: libuci's line reader silently
// drops or splices text around one depending on its buffer size, so no faithful reading exists.
func Parse(pkg string, r io.Reader) (*Package, error) {
	if !validName(pkg, true) {
		return nil, fmt.Errorf("%w: %q (valid: letters, digits, '_' and '-')", ErrPackageName, pkg)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxInputSize+1))
	if err != nil {
		return nil, fmt.Errorf("uci: reading %s: %w", pkg, err)
	}
	if len(data) > MaxInputSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, pkg, MaxInputSize)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		start := bytes.LastIndexByte(data[:i], '\n') + 1
		return nil, &ParseError{Reason: "NUL byte in input", Line: bytes.Count(data[:i], []byte{'\n'}) + 1, Byte: i - start}
	}
	p := &parser{
		in:      data,
		pkg:     &Package{Name: pkg},
		byName:  map[string]*Section{},
		options: map[*Section]map[string]*Option{},
	}
	if err := p.run(); err != nil {
		return nil, err
	}
	return p.pkg, nil
}

// parser replays libuci's parser (file.c) on an in-memory copy of its statement buffer, so that
// every quirk (a `;` glued to a word, `#` inside a word, where an error's byte points) falls out
// of the same steps rather than from special cases. Bytes past len(buf) read as NUL, which
// stands for C's terminator.
type parser struct {
	in   []byte // the whole input
	next int    // read offset in in

	buf    []byte // the statement buffer; tokens are unquoted and NUL-terminated in place
	filled int    // libuci's buf_filled: the end of the last line read (not reset at EOF)
	pos    int    // the parse position in buf
	line   int    // newline-terminated lines read so far, as libuci counts them
	segs   []seg  // where each line joined into buf starts, for statement line numbers

	pkg     *Package
	section *Section                        // the section that option/list statements go to
	byName  map[string]*Section             // first section with each real name, as libuci's lookup finds it
	options map[*Section]map[string]*Option // per section, its options by name
}

// seg records that the line numbered line starts at offset off of the statement buffer.
type seg struct{ off, line int }

// abort carries a *ParseError from deep in the parser back to run, like libuci's longjmp.
type abort struct{ err *ParseError }

// Not inlined: inlined at its 13 call sites it cost the mips binary 0.5 KB of code (measured).
//
//go:noinline
func (p *parser) fail(reason string) {
	panic(abort{&ParseError{Reason: reason, Line: p.line, Byte: p.pos}})
}

func (p *parser) run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(abort)
			if !ok {
				panic(r)
			}
			err = a.err
		}
	}()
	for p.next < len(p.in) {
		p.pos = 0
		p.getln(0)
		if p.at(0) != 0 {
			p.parseLine()
		}
	}
	return nil
}

// at returns the byte at i of the statement buffer, NUL past its end.
func (p *parser) at(i int) byte {
	if i < len(p.buf) {
		return p.buf[i]
	}
	return 0
}

// put stores c at i; a NUL at or past the end is already there.
func (p *parser) put(i int, c byte) {
	if i < len(p.buf) {
		p.buf[i] = c
	}
}

// str returns the NUL-terminated string at i.
func (p *parser) str(i int) string {
	if i >= len(p.buf) {
		return ""
	}
	if n := bytes.IndexByte(p.buf[i:], 0); n >= 0 {
		return string(p.buf[i : i+n])
	}
	return string(p.buf[i:])
}

// lineAt returns the file line that holds offset i of the statement buffer.
func (p *parser) lineAt(i int) int {
	for k := len(p.segs) - 1; k >= 0; k-- {
		if p.segs[k].off <= i {
			return p.segs[k].line
		}
	}
	return p.line
}

// getln reads the next line (through its newline) into the buffer at offset, dropping whatever
// followed offset. At the end of input the buffer just ends at offset.
func (p *parser) getln(offset int) {
	p.buf = p.buf[:offset]
	for len(p.segs) > 0 && p.segs[len(p.segs)-1].off >= offset {
		p.segs = p.segs[:len(p.segs)-1]
	}
	if p.next >= len(p.in) {
		return
	}
	end := len(p.in)
	if n := bytes.IndexByte(p.in[p.next:], '\n'); n >= 0 {
		end = p.next + n + 1
	}
	if offset+end-p.next > MaxStatementSize {
		panic(abort{&ParseError{
			Reason: "statement longer than " + strconv.Itoa(MaxStatementSize) + " bytes",
			Line:   p.line + 1, Byte: MaxStatementSize, tooBig: true,
		}})
	}
	p.segs = append(p.segs, seg{off: offset, line: p.line + 1})
	p.buf = append(p.buf, p.in[p.next:end]...)
	p.filled = len(p.buf)
	p.next = end
	if p.in[end-1] == '\n' {
		p.line++
	}
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func (p *parser) skipSpace() {
	for c := p.at(p.pos); c != 0 && isSpace(c); c = p.at(p.pos) {
		p.pos++
	}
}

// addc copies the current byte to *target and advances both.
func (p *parser) addc(target *int) {
	p.put(*target, p.at(p.pos))
	*target++
	p.pos++
}

// backslash steps over a '\'. At the end of a line it joins the next line in its place and
// returns false; otherwise the following byte is to be taken literally and it returns true.
func (p *parser) backslash() bool {
	p.pos++
	c := p.at(p.pos)
	if c == 0 || c == '\n' || (c == '\r' && p.at(p.pos+1) == '\n' && p.at(p.pos+2) == 0) {
		p.getln(p.pos)
		return false
	}
	return true
}

func (p *parser) doubleQuoted(target *int) {
	p.pos++
	for {
		switch p.at(p.pos) {
		case '"':
			p.pos++
			return
		case 0: // the value goes on over the next line
			p.getln(p.pos)
			if p.at(p.pos) == 0 {
				p.fail(`EOF with unterminated "`)
			}
		case '\\':
			if p.backslash() {
				p.addc(target)
			}
		default:
			p.addc(target)
		}
	}
}

func (p *parser) singleQuoted(target *int) {
	p.pos++
	for {
		switch p.at(p.pos) {
		case '\'':
			p.pos++
			return
		case 0: // the value goes on over the next line
			p.getln(p.pos)
			if p.at(p.pos) == 0 {
				p.fail("EOF with unterminated '")
			}
		default:
			p.addc(target)
		}
	}
}

// token unquotes one word in place starting at *target (== pos), joining quoted and unquoted
// pieces, and NUL-terminates it. A '#' ends the line; a ';' ends the word and, when nothing
// moved the word behind pos, is itself overwritten by the terminator, dropping the rest of the
// line as libuci does.
func (p *parser) token(target *int) {
	more := true
loop:
	for {
		switch p.at(p.pos) {
		case '\'':
			p.singleQuoted(target)
		case '"':
			p.doubleQuoted(target)
		case '#':
			p.put(p.pos, 0)
			break loop
		case 0:
			break loop
		case ';':
			more = false
			break loop
		case '\\':
			if p.backslash() {
				p.addc(target)
			}
		default:
			p.addc(target)
		}
		if c := p.at(p.pos); c == 0 || isSpace(c) {
			break
		}
	}
	if p.at(p.pos) != 0 && more {
		p.pos++
	}
	p.put(*target, 0)
}

// arg reads the next argument and returns its offset; an empty one reads as "".
func (p *parser) arg(required, name, dash bool) int {
	p.skipSpace()
	val, target := p.pos, p.pos
	if p.at(p.pos) == ';' {
		p.put(p.pos, 0)
		p.pos++
	} else {
		p.token(&target)
	}
	if p.at(val) == 0 {
		if required {
			p.fail("insufficient arguments")
		}
		return val
	}
	if name && !validName(p.str(val), dash) {
		p.fail("invalid character in name field")
	}
	return val
}

func (p *parser) endOfStatement() {
	p.skipSpace()
	if v := p.arg(false, false, false); p.at(v) != 0 {
		p.fail("too many arguments")
	}
}

// parseLine runs every statement in the buffer: a keyword (split off at a space or tab, as
// strtok does) and its arguments, then the next statement after a ';'.
func (p *parser) parseLine() {
	p.skipSpace()
	for {
		start := p.pos
		for c := p.at(start); c == ' ' || c == '\t'; c = p.at(start) {
			start++
		}
		if p.at(start) == 0 {
			return
		}
		end := start
		for c := p.at(end); c != 0 && c != ' ' && c != '\t'; c = p.at(end) {
			end++
		}
		word := string(p.buf[start:end])
		p.put(end, 0)
		line := p.lineAt(start)
		switch {
		case word[0] == '#':
			return
		case word == "p" || word == "package":
			p.skipKeyword(end, "package without name")
			p.arg(true, true, true) // checked, then ignored: the file name wins
			p.endOfStatement()
		case word == "c" || word == "config":
			p.skipKeyword(end, "config without name")
			p.config(line)
		case word == "o" || word == "option":
			p.option(line, end, false)
		case word == "l" || word == "list":
			p.option(line, end, true)
		default:
			p.fail("invalid command")
		}
	}
}

// skipKeyword moves past the keyword ending at end and its delimiter.
func (p *parser) skipKeyword(end int, reason string) {
	if end+1 > p.filled {
		p.fail(reason)
	}
	p.pos = end + 1
}

func (p *parser) config(line int) {
	tv := p.arg(true, false, false)
	if !validType(p.str(tv)) {
		p.fail("invalid character in type field")
	}
	nv := p.arg(false, true, false)
	p.endOfStatement()
	typ, name := p.str(tv), p.str(nv)
	if name != "" {
		if s := p.byName[name]; s != nil {
			if s.Type != typ {
				p.fail("section of different type overwrites prior section with same name")
			}
			p.section = s // reopened: later options merge into it, in its place
			return
		}
	}
	s := &Section{Name: name, Type: typ, Anonymous: name == "", Line: line}
	p.pkg.Sections = append(p.pkg.Sections, s)
	if s.Anonymous {
		s.Name = anonymousName(len(p.pkg.Sections), typ)
	}
	if p.byName[s.Name] == nil {
		p.byName[s.Name] = s
	}
	p.section = s
}

func (p *parser) option(line, end int, list bool) {
	if p.section == nil {
		p.fail("option/list command found before the first section")
	}
	p.skipKeyword(end, "option without name")
	nv := p.arg(true, true, false)
	vv := p.arg(false, false, false)
	p.endOfStatement()
	name, value := p.str(nv), p.str(vv)

	opts := p.options[p.section]
	if opts == nil {
		opts = map[string]*Option{}
		p.options[p.section] = opts
	}
	o := opts[name]
	switch {
	case !list && value == "":
		// libuci ignores an empty option value: it neither creates nor clears the option.
	case o == nil:
		o = &Option{Name: name, Values: []string{value}, List: list, Lines: []int{line}}
		opts[name] = o
		p.section.Options = append(p.section.Options, o)
	case list:
		// An option becomes a list that starts with its old value, in the same place.
		o.List = true
		o.Values = append(o.Values, value)
		o.Lines = append(o.Lines, line)
	default:
		// A set replaces the value (or a whole list) but keeps the option's place.
		o.List = false
		o.Values = append(o.Values[:0], value)
		o.Lines = append(o.Lines[:0], line)
	}
}
