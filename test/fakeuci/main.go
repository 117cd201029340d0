// Command fakeuci is a stand-in for OpenWrt's `uci` command line, for the shell tests of the
// init script and the install/removal scripts (scripts/test-shell.sh). It edits real UCI text
// files in a folder the test controls and behaves like libuci where those scripts rely on it:
// changes are staged until `commit` (a script that forgets to commit loses them, as on a
// router), `@type[N]` and `cfgNNHHHH` name anonymous sections, empty values delete, `-q`
// silences "Entry not found", `get` and `show` quote values exactly as libuci's cli.c does, and
// `commit` leaves the file mode 0600 (libuci writes a mkstemp file and renames it over the
// old one). It is never shipped.
//
//	uci [-q] [-c CONFDIR] [-X] get|set|add_list|del_list|delete|add|show|export|commit|revert|changes ...
//
// CONFDIR defaults to $UCI_CONFIG_DIR, then /etc/config. Staged changes live in
// $FAKEUCI_SAVEDIR (default CONFDIR/.fakeuci) as whole files. Every call that changes
// something is appended to $FAKEUCI_LOG when set, so tests can count writes.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// errNotFound is uci's "Entry not found" (exit status 1).
var errNotFound = errors.New("Entry not found")

// errInvalid is uci's "Invalid argument" (exit status 1).
var errInvalid = errors.New("Invalid argument")

type option struct {
	name   string
	isList bool
	values []string
}

type section struct {
	typ, name string
	anon      bool
	opts      []*option
}

type pkg struct {
	name     string
	sections []*section
}

func main() {
	err := run(os.Args[1:], os.Stdout)
	if err != nil {
		var q quietErr
		if !errors.As(err, &q) {
			fmt.Fprintln(os.Stderr, "uci:", err)
		}
		os.Exit(1)
	}
}

// quietErr is an error uci -q keeps off stderr.
type quietErr struct{ error }

func (q quietErr) Unwrap() error { return q.error }

type env struct {
	confDir, saveDir string
	realNames        bool
}

func run(args []string, stdout io.Writer) error {
	e := env{confDir: os.Getenv("UCI_CONFIG_DIR")}
	if e.confDir == "" {
		e.confDir = "/etc/config"
	}
	quiet := false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-q":
			quiet = true
		case "-X":
			e.realNames = true
		case "-c", "-t", "-p", "-P":
			if len(args) < 2 {
				return errInvalid
			}
			if args[0] == "-c" {
				e.confDir = args[1]
			}
			args = args[1:]
		default:
			return fmt.Errorf("%w: option %s", errInvalid, args[0])
		}
		args = args[1:]
	}
	e.saveDir = os.Getenv("FAKEUCI_SAVEDIR")
	if e.saveDir == "" {
		e.saveDir = filepath.Join(e.confDir, ".fakeuci")
	}
	if len(args) == 0 {
		return errInvalid
	}
	err := e.command(args[0], args[1:], stdout)
	if err != nil && quiet && errors.Is(err, errNotFound) {
		return quietErr{err}
	}
	return err
}

func (e env) command(cmd string, args []string, w io.Writer) error {
	switch cmd {
	case "commit":
		return e.commit(args)
	case "revert":
		if len(args) != 1 {
			return errInvalid
		}
		name, _, _ := strings.Cut(args[0], ".")
		e.logf("revert %s", name)
		err := os.Remove(filepath.Join(e.saveDir, name))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return err
	case "changes":
		ents, _ := os.ReadDir(e.saveDir)
		for _, d := range ents {
			fmt.Fprintf(w, "%s: staged\n", d.Name())
		}
		return nil
	case "export", "show":
		if len(args) > 1 {
			return errInvalid
		}
		if len(args) == 0 {
			return errInvalid // a whole-system dump is never what a script wants here
		}
		p, ref, err := e.load(args[0])
		if err != nil {
			return err
		}
		if cmd == "export" {
			if ref.sec != "" {
				return errInvalid
			}
			fmt.Fprintf(w, "package %s\n", p.name)
			_, err := io.WriteString(w, p.format())
			return err
		}
		return p.show(w, ref, e.realNames)
	case "get":
		if len(args) != 1 {
			return errInvalid
		}
		p, ref, err := e.load(args[0])
		if err != nil {
			return err
		}
		s := p.find(ref.sec)
		if s == nil || ref.sec == "" {
			return errNotFound
		}
		if ref.opt == "" {
			fmt.Fprintln(w, s.typ)
			return nil
		}
		o := s.get(ref.opt)
		if o == nil {
			return errNotFound
		}
		fmt.Fprintln(w, getValue(o))
		return nil
	case "set", "add_list", "del_list", "delete", "add":
		if len(args) != 1 && !(cmd == "add" && len(args) == 2) {
			return errInvalid
		}
		return e.modify(cmd, args)
	}
	return fmt.Errorf("%w: command %s", errInvalid, cmd)
}

// ref is a parsed "pkg.section.option=value".
type ref struct {
	pkg, sec, opt, value string
	hasValue             bool
}

func parseRef(s string) (ref, error) {
	var r ref
	path, value, hasValue := strings.Cut(s, "=")
	r.value, r.hasValue = value, hasValue
	parts := strings.SplitN(path, ".", 3)
	r.pkg = parts[0]
	if len(parts) > 1 {
		r.sec = parts[1]
	}
	if len(parts) > 2 {
		r.opt = parts[2]
	}
	if r.pkg == "" || (len(parts) > 1 && r.sec == "") || (len(parts) > 2 && r.opt == "") {
		return r, errInvalid
	}
	return r, nil
}

func (e env) load(arg string) (*pkg, ref, error) {
	r, err := parseRef(arg)
	if err != nil {
		return nil, r, err
	}
	p, err := e.read(r.pkg)
	return p, r, err
}

func (e env) read(name string) (*pkg, error) {
	b, err := os.ReadFile(filepath.Join(e.saveDir, name))
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(e.confDir, name))
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return parse(name, string(b))
}

func (e env) logf(format string, a ...any) {
	p := os.Getenv("FAKEUCI_LOG")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, format+"\n", a...)
}

func (e env) modify(cmd string, args []string) error {
	if cmd == "add" {
		p, err := e.read(args[0])
		if err != nil {
			return err
		}
		s := &section{typ: args[1], anon: true}
		p.sections = append(p.sections, s)
		fmt.Println(p.realName(s))
		e.logf("add %s %s", args[0], args[1])
		return e.stage(p)
	}
	r, err := parseRef(args[0])
	if err != nil {
		return err
	}
	p, err := e.read(r.pkg)
	if errors.Is(err, errNotFound) && cmd == "set" {
		p, err = &pkg{name: r.pkg}, nil
	}
	if err != nil {
		return err
	}
	if r.sec == "" {
		return errInvalid
	}
	s := p.find(r.sec)
	switch {
	case cmd == "set" && r.opt == "":
		if !r.hasValue || !validName(r.sec) {
			return errInvalid
		}
		if s == nil {
			p.sections = append(p.sections, &section{typ: r.value, name: r.sec})
		} else {
			s.typ = r.value
		}
	case s == nil:
		return errNotFound
	case cmd == "delete" && r.opt == "":
		for i, x := range p.sections {
			if x == s {
				p.sections = append(p.sections[:i], p.sections[i+1:]...)
				break
			}
		}
	case cmd == "delete":
		o := s.get(r.opt)
		if o == nil {
			return errNotFound
		}
		if r.hasValue && o.isList {
			o.values = remove(o.values, r.value)
		} else {
			s.del(r.opt)
		}
	case !validName(r.opt) || !r.hasValue:
		return errInvalid
	case cmd == "set" && r.value == "":
		s.del(r.opt)
	case cmd == "set":
		if o := s.get(r.opt); o != nil {
			o.isList, o.values = false, []string{r.value}
		} else {
			s.opts = append(s.opts, &option{name: r.opt, values: []string{r.value}})
		}
	case cmd == "add_list":
		if o := s.get(r.opt); o != nil {
			o.isList, o.values = true, append(o.values, r.value)
		} else {
			s.opts = append(s.opts, &option{name: r.opt, isList: true, values: []string{r.value}})
		}
	case cmd == "del_list":
		if o := s.get(r.opt); o != nil && o.isList {
			o.values = remove(o.values, r.value)
		}
	}
	e.logf("%s %s", cmd, args[0])
	return e.stage(p)
}

func remove(vs []string, v string) []string {
	out := vs[:0]
	for _, x := range vs {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func (e env) stage(p *pkg) error {
	if err := os.MkdirAll(e.saveDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.saveDir, p.name), []byte(p.format()), 0o644)
}

func (e env) commit(args []string) error {
	var names []string
	if len(args) == 0 {
		ents, _ := os.ReadDir(e.saveDir)
		for _, d := range ents {
			names = append(names, d.Name())
		}
	} else {
		for _, a := range args {
			n, _, _ := strings.Cut(a, ".")
			names = append(names, n)
		}
	}
	for _, n := range names {
		staged := filepath.Join(e.saveDir, n)
		b, err := os.ReadFile(staged)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := replaceFile(filepath.Join(e.confDir, n), b); err != nil {
			return err
		}
		os.Remove(staged)
		e.logf("commit %s", n)
	}
	return nil
}

// replaceFile writes the file as libuci's commit does: a mkstemp file (mode 0600, whatever
// the old file's mode was) renamed over the old one.
func replaceFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".uci-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func validName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0
}

func (s *section) get(name string) *option {
	for _, o := range s.opts {
		if o.name == name {
			return o
		}
	}
	return nil
}

func (s *section) del(name string) {
	for i, o := range s.opts {
		if o.name == name {
			s.opts = append(s.opts[:i], s.opts[i+1:]...)
			return
		}
	}
}

// find resolves a section name: a real name, "@type[N]" (negative counts from the end) or an
// anonymous section's cfgNNHHHH name.
func (p *pkg) find(name string) *section {
	if strings.HasPrefix(name, "@") {
		typ, idx, ok := strings.Cut(name[1:], "[")
		if !ok || !strings.HasSuffix(idx, "]") {
			return nil
		}
		n, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
		if err != nil {
			return nil
		}
		var of []*section
		for _, s := range p.sections {
			if s.typ == typ {
				of = append(of, s)
			}
		}
		if n < 0 {
			n += len(of)
		}
		if n < 0 || n >= len(of) {
			return nil
		}
		return of[n]
	}
	for _, s := range p.sections {
		if p.realName(s) == name {
			return s
		}
	}
	return nil
}

// realName is a section's name; anonymous sections get libuci's cfgNNHHHH (NN: 1-based
// position among all sections, HHHH: djb2 of the type).
func (p *pkg) realName(s *section) string {
	if !s.anon {
		return s.name
	}
	pos := 0
	for i, x := range p.sections {
		if x == s {
			pos = i + 1
		}
	}
	h := uint32(5381)
	for i := 0; i < len(s.typ); i++ {
		h = h*33 + uint32(s.typ[i])
	}
	return fmt.Sprintf("cfg%02x%04x", pos, h&0xffff)
}

// showName is how `uci show` names a section: @type[N] for anonymous ones unless -X.
func (p *pkg) showName(s *section, real bool) string {
	if !s.anon || real {
		return p.realName(s)
	}
	n := 0
	for _, x := range p.sections {
		if x == s {
			break
		}
		if x.typ == s.typ {
			n++
		}
	}
	return fmt.Sprintf("@%s[%d]", s.typ, n)
}

func quote(v string) string { return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'" }

// getValue is what `uci get` prints for an option: a plain option raw; a list's items joined
// by spaces, each raw unless it holds a space, tab, CR or newline, then quoted as `show` does
// (libuci's cli.c, uci_show_value with quote false).
func getValue(o *option) string {
	if !o.isList {
		return o.values[0]
	}
	vs := make([]string, len(o.values))
	for i, v := range o.values {
		if strings.ContainsAny(v, " \t\r\n") {
			v = quote(v)
		}
		vs[i] = v
	}
	return strings.Join(vs, " ")
}

func (p *pkg) show(w io.Writer, r ref, real bool) error {
	var only *section
	if r.sec != "" {
		if only = p.find(r.sec); only == nil {
			return errNotFound
		}
	}
	for _, s := range p.sections {
		if only != nil && s != only {
			continue
		}
		// libuci names sections @type[N] only in a whole-package show
		name := p.name + "." + p.showName(s, real || only != nil)
		if r.opt == "" {
			fmt.Fprintf(w, "%s=%s\n", name, s.typ)
		}
		found := false
		for _, o := range s.opts {
			if r.opt != "" && o.name != r.opt {
				continue
			}
			found = true
			qs := make([]string, len(o.values))
			for i, v := range o.values {
				qs[i] = quote(v)
			}
			fmt.Fprintf(w, "%s.%s=%s\n", name, o.name, strings.Join(qs, " "))
		}
		if r.opt != "" && !found {
			return errNotFound
		}
	}
	return nil
}

// format writes the package the way `uci commit` does.
func (p *pkg) format() string {
	var b strings.Builder
	for _, s := range p.sections {
		b.WriteString("\nconfig " + s.typ)
		if !s.anon {
			b.WriteString(" " + quote(s.name))
		}
		b.WriteString("\n")
		for _, o := range s.opts {
			kw := "option"
			if o.isList {
				kw = "list"
			}
			for _, v := range o.values {
				fmt.Fprintf(&b, "\t%s %s %s\n", kw, o.name, quote(v))
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}

// parse reads UCI text: enough of libuci's syntax for real OpenWrt config files (keywords
// config/option/list/package, single and double quotes, backslashes, # comments).
func parse(name, text string) (*pkg, error) {
	p := &pkg{name: name}
	var cur *section
	for n, line := range strings.Split(text, "\n") {
		toks, err := tokens(line)
		if err != nil {
			return nil, fmt.Errorf("Parse error (%v) at line %d", err, n+1)
		}
		if len(toks) == 0 {
			continue
		}
		bad := func() error { return fmt.Errorf("Parse error (invalid command) at line %d", n+1) }
		switch toks[0] {
		case "package", "p":
		case "config", "c":
			if len(toks) < 2 || len(toks) > 3 {
				return nil, bad()
			}
			if len(toks) == 3 && toks[2] == "" {
				toks = toks[:2] // `config x ''` is anonymous
			}
			cur = &section{typ: toks[1], anon: len(toks) == 2}
			if len(toks) == 3 {
				cur.name = toks[2]
				if prev := p.find(cur.name); prev != nil && !prev.anon {
					cur = prev
					continue
				}
			}
			p.sections = append(p.sections, cur)
		case "option", "o", "list", "l":
			if cur == nil || len(toks) < 2 || len(toks) > 3 {
				return nil, bad()
			}
			v := ""
			if len(toks) == 3 {
				v = toks[2]
			}
			isList := toks[0][0] == 'l'
			o := cur.get(toks[1])
			switch {
			case !isList && v == "":
			case !isList && o != nil:
				o.isList, o.values = false, []string{v}
			case !isList:
				cur.opts = append(cur.opts, &option{name: toks[1], values: []string{v}})
			case o != nil:
				o.isList, o.values = true, append(o.values, v)
			default:
				cur.opts = append(cur.opts, &option{name: toks[1], isList: true, values: []string{v}})
			}
		default:
			return nil, bad()
		}
	}
	return p, nil
}

func tokens(line string) ([]string, error) {
	var toks []string
	i := 0
	for {
		for i < len(line) && strings.ContainsRune(" \t\r\v\f", rune(line[i])) {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			return toks, nil
		}
		var b strings.Builder
		for i < len(line) && !strings.ContainsRune(" \t\r\v\f", rune(line[i])) {
			switch c := line[i]; c {
			case '#':
				toks = append(toks, b.String())
				return toks, nil
			case '\'':
				j := strings.IndexByte(line[i+1:], '\'')
				if j < 0 {
					return nil, errors.New("unterminated '")
				}
				b.WriteString(line[i+1 : i+1+j])
				i += j + 2
			case '"':
				i++
				for i < len(line) && line[i] != '"' {
					if line[i] == '\\' && i+1 < len(line) {
						i++
					}
					b.WriteByte(line[i])
					i++
				}
				if i >= len(line) {
					return nil, errors.New("unterminated \"")
				}
				i++
			case '\\':
				if i+1 < len(line) {
					b.WriteByte(line[i+1])
				}
				i += 2
			default:
				b.WriteByte(c)
				i++
			}
		}
		toks = append(toks, b.String())
	}
}
