package uci

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Show writes the package as `uci show` does, or with realNames as `uci -X show`: a
// "pkg.section=type" line per section, then a "pkg.section.option=value" line per option. Every
// value is in single quotes (a quote inside it closes the string, adds \' and reopens it), and a
// list's items are separated by spaces. Anonymous sections are "@type[N]" unless realNames is set.
func (p *Package) Show(w io.Writer, realNames bool) error {
	var b bytes.Buffer
	seen := map[string]int{} // sections of each type so far, for @type[N]
	for _, s := range p.Sections {
		ref := s.Name
		if s.Anonymous && !realNames {
			ref = "@" + s.Type + "[" + strconv.Itoa(seen[s.Type]) + "]"
		}
		seen[s.Type]++
		prefix := p.Name + "." + ref
		b.WriteString(prefix + "=" + s.Type + "\n")
		for _, o := range s.Options {
			b.WriteString(prefix + "." + o.Name + "=")
			for i, v := range o.Values {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString("'" + escape(v) + "'")
			}
			b.WriteByte('\n')
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Export writes the package as `uci export` does: a package line, then each section as a
// `config` block with one `option` or `list` line per value, anonymous sections without a name.
//
// Like uci export, a section type is written unquoted but escaped as a quoted value would be. A
// type holding one of the bytes ' " \ # ; therefore does not read back as the same type; every
// other package does.
func (p *Package) Export(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("package " + escape(p.Name) + "\n")
	for _, s := range p.Sections {
		b.WriteString("\nconfig " + escape(s.Type))
		if !s.Anonymous {
			b.WriteString(" '" + escape(s.Name) + "'")
		}
		b.WriteByte('\n')
		for _, o := range s.Options {
			kw := "\toption "
			if o.List {
				kw = "\tlist "
			}
			for _, v := range o.Values {
				b.WriteString(kw + escape(o.Name) + " '" + escape(v) + "'\n")
			}
		}
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// escape turns each single quote into the four bytes: quote, backslash, quote, quote (close the
// quoted string, an escaped quote, reopen it), as libuci does.
func escape(s string) string {
	return strings.ReplaceAll(s, "'", `'\''`)
}
