package apk

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// dump renders an Archive in the layout of `apk adbdump` (apk-tools 3.0.6), for
// the fields this package knows, so a vector's adbdump.yaml can be compared
// line for line with what Read found.
func dump(a *Archive) string {
	var b strings.Builder
	p := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	p(0, "#%%SCHEMA: %08X", schemaPackage)
	p(0, "# ADB block, size: %d, compat: %d, ver: %d", len(a.ADB), a.ADB[0], a.ADB[1])
	p(0, "info:")
	for _, f := range []struct{ k, v string }{
		{"name", a.Info.Name}, {"version", a.Info.Version}, {"hashes", hex.EncodeToString(a.UniqueID)},
		{"description", a.Info.Description}, {"arch", a.Info.Arch}, {"license", a.Info.License},
		{"origin", a.Info.Origin}, {"maintainer", a.Info.Maintainer}, {"url", a.Info.URL},
	} {
		if f.v != "" {
			p(1, "%s: %s", f.k, f.v)
		}
	}
	if a.InstalledSize != 0 {
		p(1, "installed-size: %d", a.InstalledSize)
	}
	if len(a.Info.Depends) > 0 {
		p(1, "depends: # %d items", len(a.Info.Depends))
		for _, d := range a.Info.Depends {
			p(2, "- %s", d)
		}
	}
	acl := func(indent int, first bool, c ACL) {
		if first {
			p(indent-1, "- acl:")
		} else {
			p(indent, "acl:")
		}
		p(indent+1, "mode: 0%o", unixMode(c.Mode))
		p(indent+1, "user: %s", c.User)
		p(indent+1, "group: %s", c.Group)
	}
	p(0, "paths: # %d items", len(a.Dirs))
	var data []int
	for _, d := range a.Dirs {
		if d.Name == "" {
			acl(2, true, d.ACL)
		} else {
			p(1, "- name: %s", d.Name)
			acl(2, false, d.ACL)
		}
		if len(d.Files) == 0 {
			continue
		}
		p(2, "files: # %d items", len(d.Files))
		for _, e := range d.Files {
			p(3, "- name: %s", e.Name)
			acl(4, false, e.ACL)
			p(4, "size: %d", e.Size)
			p(4, "mtime: %d", e.MTime)
			if e.Hash != nil {
				p(4, "hash: %x", e.Hash)
			}
			if e.Target != nil {
				p(4, "target: %x", e.Target)
			}
			if e.Data != nil {
				data = append(data, 8+len(e.Data))
			}
		}
	}
	scripts := a.Scripts.slots()
	names := [scriptMax]string{"", "trigger", "pre-install", "post-install", "pre-deinstall",
		"post-deinstall", "pre-upgrade", "post-upgrade"}
	header := false
	for i, s := range scripts {
		if len(s) == 0 {
			continue
		}
		if !header {
			p(0, "scripts:")
			header = true
		}
		p(1, "%s: |", names[i])
		for _, line := range strings.SplitAfter(strings.TrimSuffix(string(s), "\n"), "\n") {
			p(2, "%s", strings.TrimSuffix(line, "\n"))
		}
	}
	for _, n := range data {
		p(0, "# data block, size: %d", n)
	}
	return b.String()
}
