package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// errBadPackage marks a package (or package input) that opkg would reject or mis-install.
var errBadPackage = errors.New("bad package")

// ipkDirMode is every directory's mode in data.tar.gz, as on an OpenWrt root file system.
const ipkDirMode = 0o755

// ipkFileName is OpenWrt's name for a package file: <name>_<version>-<release>_<arch>.ipk.
func ipkFileName(s *spec) string {
	return s.Name + "_" + s.Version + "-" + s.Release + "_" + s.Arch + ".ipk"
}

// writeIPK writes s as an OpenWrt .ipk into dir and returns its path. The layout is what
// OpenWrt's scripts/ipkg-build makes and its opkg accepts: a gzip'ed tar (not an ar archive)
// holding ./debian-binary, ./data.tar.gz and ./control.tar.gz in that order; every tar in GNU
// format, names sorted, owner 0:0 with no user names, every mtime s.MTime; gzip without a
// name or time. The same spec always gives the same bytes.
func writeIPK(s *spec, dir string) (string, error) {
	if err := checkSpec(s); err != nil {
		return "", err
	}
	data, dataSize, err := ipkData(s)
	if err != nil {
		return "", err
	}
	control, err := ipkControl(s, dataSize)
	if err != nil {
		return "", err
	}
	outer, err := tarGz(s.MTime, []tarEntry{
		{name: "./debian-binary", mode: 0o644, data: []byte("2.0\n")},
		{name: "./data.tar.gz", mode: 0o644, data: data},
		{name: "./control.tar.gz", mode: 0o644, data: control},
	})
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, ipkFileName(s))
	return out, writeFileAtomic(out, outer)
}

// checkSpec rejects what would make a broken package.
func checkSpec(s *spec) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errBadPackage, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Name == "" || strings.ContainsFunc(s.Name, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '+' && r != '-'
	}):
		return bad("package name %q: want [a-z0-9.+-]", s.Name)
	case s.Version == "" || s.Release == "" || strings.ContainsAny(s.Version+s.Release, " _\n/"):
		return bad("version %q release %q: want no spaces, '_' or '/'", s.Version, s.Release)
	case !validArchName(s.Arch):
		return bad("architecture %q", s.Arch)
	case s.Description == "" || strings.Contains(s.Description, "\n"):
		return bad("description must be one non-empty line")
	case len(s.Files) == 0:
		return bad("no files")
	}
	seen := map[string]bool{}
	for _, f := range s.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return bad("file path %q: want a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return bad("file %s listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&fs.ModeSymlink == 0 && f.Mode&^fs.ModePerm != 0 {
			return bad("file %s: mode %v is neither a regular file nor a symlink", f.Path, f.Mode)
		}
		if f.Mode.Perm()&0o022 != 0 {
			return bad("file %s: mode %04o is group/world-writable", f.Path, f.Mode.Perm())
		}
	}
	for _, c := range s.Conffiles {
		if !seen[c] {
			return bad("conffile %s is not in the package", c)
		}
	}
	return nil
}

// tarEntry is one member of a tar archive we write.
type tarEntry struct {
	name string // "./etc/", "./etc/config/x"
	mode fs.FileMode
	data []byte
	link string
	dir  bool
}

// tarGz writes entries, in the given order, as a GNU tar compressed with gzip -9 -n.
func tarGz(mtime time.Time, entries []tarEntry) ([]byte, error) {
	raw, err := tarBytes(mtime, entries)
	if err != nil {
		return nil, err
	}
	return gzipBytes(raw)
}

func tarBytes(mtime time.Time, entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    int64(e.mode.Perm()),
			ModTime: mtime,
			Format:  tar.FormatGNU,
		}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipBytes compresses like `gzip -9 -n`: no file name, no time stamp.
func gzipBytes(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.OS = 3 // Unix, as gzip writes it
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dataEntries lists the data archive's members as GNU tar --sort=name walks a folder: "./",
// then each folder's children by name, folders before descending into them.
func dataEntries(files []pkgFile) []tarEntry {
	type node struct {
		children map[string]*node
		file     *pkgFile
	}
	root := &node{children: map[string]*node{}}
	for i := range files {
		n := root
		parts := strings.Split(strings.TrimPrefix(files[i].Path, "/"), "/")
		for _, p := range parts {
			c := n.children[p]
			if c == nil {
				c = &node{children: map[string]*node{}}
				n.children[p] = c
			}
			n = c
		}
		n.file = &files[i]
	}
	entries := []tarEntry{{name: "./", mode: ipkDirMode, dir: true}}
	var walk func(n *node, prefix string)
	walk = func(n *node, prefix string) {
		names := make([]string, 0, len(n.children))
		for name := range n.children {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			c := n.children[name]
			p := prefix + name
			if c.file == nil {
				entries = append(entries, tarEntry{name: p + "/", mode: ipkDirMode, dir: true})
				walk(c, p+"/")
				continue
			}
			e := tarEntry{name: p, mode: c.file.Mode, data: c.file.Data}
			if c.file.Mode&fs.ModeSymlink != 0 {
				e = tarEntry{name: p, mode: 0o777, link: c.file.Link}
			}
			entries = append(entries, e)
		}
	}
	walk(root, "./")
	return entries
}

// ipkData is data.tar.gz and the size of the uncompressed tar, which ipkg-build puts into
// Installed-Size.
func ipkData(s *spec) ([]byte, int, error) {
	raw, err := tarBytes(s.MTime, dataEntries(s.Files))
	if err != nil {
		return nil, 0, err
	}
	gz, err := gzipBytes(raw)
	return gz, len(raw), err
}

// controlFields is the control file, in the field order OpenWrt's package-pack.mk writes.
func controlFields(s *spec, installedSize int) string {
	var b strings.Builder
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	field("Package", s.Name)
	field("Version", s.Version+"-"+s.Release)
	field("Depends", strings.Join(s.Depends, ", "))
	field("License", s.License)
	field("Section", s.Section)
	field("SourceDateEpoch", strconv.FormatInt(s.MTime.Unix(), 10))
	field("URL", s.URL)
	field("Maintainer", s.Maintainer)
	field("Architecture", s.Arch)
	field("Installed-Size", strconv.Itoa(installedSize))
	field("Description", s.Description)
	return b.String()
}

// maintainerScript wraps our own steps the way OpenWrt does: postinst and prerm only call
// default_postinst/default_prerm from /lib/functions.sh, which source postinst-pkg/prerm-pkg
// (ours) and then run the uci-defaults scripts and enable+start the init script (postinst),
// or disable+stop it (prerm).
func maintainerScript(kind string) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	if kind == "postinst" {
		b.WriteString("[ \"${IPKG_NO_SCRIPT}\" = \"1\" ] && exit 0\n")
	}
	b.WriteString("[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n")
	b.WriteString(". ${IPKG_INSTROOT}/lib/functions.sh\n")
	fmt.Fprintf(&b, "default_%s $0 $@\n", kind)
	return []byte(b.String())
}

// pkgScript is postinst-pkg or prerm-pkg: our steps behind a shebang.
func pkgScript(body []byte) []byte {
	if bytes.HasPrefix(body, []byte("#!")) {
		return body
	}
	return append([]byte("#!/bin/sh\n"), body...)
}

// ipkControl is control.tar.gz.
func ipkControl(s *spec, installedSize int) ([]byte, error) {
	entries := []tarEntry{{name: "./", mode: ipkDirMode, dir: true}}
	if len(s.Conffiles) > 0 {
		cf := slices.Clone(s.Conffiles)
		slices.Sort(cf)
		entries = append(entries, tarEntry{name: "./conffiles", mode: 0o644, data: []byte(strings.Join(cf, "\n") + "\n")})
	}
	entries = append(entries,
		tarEntry{name: "./control", mode: 0o644, data: []byte(controlFields(s, installedSize))},
		tarEntry{name: "./postinst", mode: 0o755, data: maintainerScript("postinst")})
	if len(s.PostInst) > 0 {
		entries = append(entries, tarEntry{name: "./postinst-pkg", mode: 0o755, data: pkgScript(s.PostInst)})
	}
	entries = append(entries, tarEntry{name: "./prerm", mode: 0o755, data: maintainerScript("prerm")})
	if len(s.PreRm) > 0 {
		entries = append(entries, tarEntry{name: "./prerm-pkg", mode: 0o755, data: pkgScript(s.PreRm)})
	}
	return tarGz(s.MTime, entries)
}

// ipkMember is one member of a tar inside an ipk, as read back.
type ipkMember struct {
	Header *tar.Header
	Data   []byte
}

// ipkContents is an .ipk as read back: the outer members, the control file's fields, the
// control archive and the data archive.
type ipkContents struct {
	Outer      []ipkMember
	Control    map[string]string // field -> value
	ControlRaw []byte            // the control file as it is
	ControlTx  []ipkMember       // members of control.tar.gz
	DataTx     []ipkMember       // members of data.tar.gz
	DataSize   int               // uncompressed data tar size
}

// readIPK opens an .ipk the way opkg does (gzip'ed tar, then the two inner gzip'ed tars).
func readIPK(p string) (*ipkContents, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return readIPKBytes(p, raw)
}

// readIPKBytes is readIPK of the file p's contents raw.
func readIPKBytes(p string, raw []byte) (*ipkContents, error) {
	c := &ipkContents{}
	var dataSize int
	var err error
	if c.Outer, _, err = readTarGz(raw); err != nil {
		return nil, fmt.Errorf("%s: %w: outer archive: %v", p, errBadPackage, err)
	}
	for _, m := range c.Outer {
		switch m.Header.Name {
		case "./control.tar.gz":
			if c.ControlTx, _, err = readTarGz(m.Data); err != nil {
				return nil, fmt.Errorf("%s: %w: control.tar.gz: %v", p, errBadPackage, err)
			}
		case "./data.tar.gz":
			if c.DataTx, dataSize, err = readTarGz(m.Data); err != nil {
				return nil, fmt.Errorf("%s: %w: data.tar.gz: %v", p, errBadPackage, err)
			}
			c.DataSize = dataSize
		}
	}
	for _, m := range c.ControlTx {
		if m.Header.Name == "./control" {
			c.ControlRaw = m.Data
			if c.Control, err = parseControl(m.Data); err != nil {
				return nil, fmt.Errorf("%s: %w: control: %v", p, errBadPackage, err)
			}
		}
	}
	return c, nil
}

// readTarGz reads every member of a gzip'ed tar and the size of the uncompressed tar.
func readTarGz(gz []byte) ([]ipkMember, int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, 0, err
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		return nil, 0, fmt.Errorf("gzip header holds a name %q or time %v (want gzip -n)", zr.Name, zr.ModTime)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, 0, err
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var ms []ipkMember
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			return nil, 0, err
		}
		ms = append(ms, ipkMember{Header: h, Data: d})
	}
	return ms, len(raw), nil
}

// parseControl reads "Field: value" lines; continuation lines (leading space) join the value.
func parseControl(b []byte) (map[string]string, error) {
	fields := map[string]string{}
	last := ""
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if strings.HasPrefix(line, " ") && last != "" {
			fields[last] += "\n" + line
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: %q is not 'Field: value'", i+1, line)
		}
		if _, dup := fields[k]; dup {
			return nil, fmt.Errorf("line %d: field %s repeated", i+1, k)
		}
		fields[k], last = v, k
	}
	return fields, nil
}

// verifyIPK re-opens a written .ipk and checks everything opkg and OpenWrt rely on against
// the spec it came from: layout and order, owners, modes, times, control fields, conffiles,
// maintainer scripts, and every file's bytes. It returns all problems at once.
func verifyIPK(p string, s *spec) error {
	c, err := readIPK(p)
	if err != nil {
		return err
	}
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }

	if got, want := path.Base(p), ipkFileName(s); got != want {
		bad("file name %s, want %s", got, want)
	}
	var outerNames []string
	for _, m := range c.Outer {
		outerNames = append(outerNames, m.Header.Name)
	}
	if want := []string{"./debian-binary", "./data.tar.gz", "./control.tar.gz"}; !slices.Equal(outerNames, want) {
		bad("outer members %q, want %q", outerNames, want)
	} else if string(c.Outer[0].Data) != "2.0\n" {
		bad("debian-binary is %q, want \"2.0\\n\"", c.Outer[0].Data)
	}
	checkMembers := func(where string, ms []ipkMember) {
		for _, m := range ms {
			h := m.Header
			if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
				bad("%s %s: owner %d:%d (%q:%q), want 0:0 numeric", where, h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
			}
			if !h.ModTime.Equal(s.MTime) {
				bad("%s %s: mtime %v, want %v", where, h.Name, h.ModTime.UTC(), s.MTime.UTC())
			}
			if h.Format != tar.FormatGNU && h.Format != tar.FormatUnknown {
				bad("%s %s: tar format %v, want GNU", where, h.Name, h.Format)
			}
			if !strings.HasPrefix(h.Name, "./") {
				bad("%s %s: name must start with ./", where, h.Name)
			}
		}
	}
	checkMembers("outer", c.Outer)
	checkMembers("control.tar.gz", c.ControlTx)
	checkMembers("data.tar.gz", c.DataTx)

	// control fields
	if c.Control == nil {
		bad("control.tar.gz has no ./control")
		c.Control = map[string]string{}
	}
	want := map[string]string{
		"Package":        s.Name,
		"Version":        s.Version + "-" + s.Release,
		"Architecture":   s.Arch,
		"Installed-Size": strconv.Itoa(c.DataSize),
		"Description":    s.Description,
		"Maintainer":     s.Maintainer,
		"License":        s.License,
		"Section":        s.Section,
		"URL":            s.URL,
		"Depends":        strings.Join(s.Depends, ", "),
	}
	for _, k := range []string{"Package", "Version", "Architecture", "Installed-Size", "Description", "Maintainer", "License", "Section", "URL", "Depends"} {
		if want[k] == "" {
			continue
		}
		if got, ok := c.Control[k]; !ok {
			bad("control: no %s field", k)
		} else if got != want[k] {
			bad("control: %s is %q, want %q", k, got, want[k])
		}
	}

	// control archive members
	ctl := map[string]ipkMember{}
	for _, m := range c.ControlTx {
		ctl[m.Header.Name] = m
	}
	wantCtl := map[string]fs.FileMode{"./": ipkDirMode, "./control": 0o644, "./postinst": 0o755, "./prerm": 0o755}
	if len(s.Conffiles) > 0 {
		wantCtl["./conffiles"] = 0o644
	}
	if len(s.PostInst) > 0 {
		wantCtl["./postinst-pkg"] = 0o755
	}
	if len(s.PreRm) > 0 {
		wantCtl["./prerm-pkg"] = 0o755
	}
	for name, mode := range wantCtl {
		m, ok := ctl[name]
		if !ok {
			bad("control.tar.gz: no %s", name)
			continue
		}
		if got := fs.FileMode(m.Header.Mode).Perm(); got != mode {
			bad("control.tar.gz %s: mode %04o, want %04o", name, got, mode)
		}
	}
	for name := range ctl {
		if _, ok := wantCtl[name]; !ok {
			bad("control.tar.gz: unexpected %s", name)
		}
	}
	for name, kind := range map[string]string{"./postinst": "postinst", "./prerm": "prerm"} {
		if m, ok := ctl[name]; ok && !bytes.Contains(m.Data, []byte("default_"+kind+" $0 $@")) {
			bad("%s does not call OpenWrt's default_%s", name, kind)
		}
	}
	if m, ok := ctl["./postinst-pkg"]; ok && !bytes.Equal(m.Data, pkgScript(s.PostInst)) {
		bad("postinst-pkg differs from the spec")
	}
	if m, ok := ctl["./prerm-pkg"]; ok && !bytes.Equal(m.Data, pkgScript(s.PreRm)) {
		bad("prerm-pkg differs from the spec")
	}
	if m, ok := ctl["./conffiles"]; ok {
		got := strings.Fields(string(m.Data))
		wantCF := slices.Sorted(slices.Values(s.Conffiles))
		if !slices.Equal(got, wantCF) {
			bad("conffiles %q, want %q", got, wantCF)
		}
	}

	// data archive: exactly the spec's files and their folders, in tar --sort=name order
	wantData := dataEntries(s.Files)
	var gotNames, wantNames []string
	for _, m := range c.DataTx {
		gotNames = append(gotNames, m.Header.Name)
	}
	for _, e := range wantData {
		wantNames = append(wantNames, e.name)
	}
	if !slices.Equal(gotNames, wantNames) {
		bad("data.tar.gz members %q, want %q", gotNames, wantNames)
	} else {
		for i, e := range wantData {
			m := c.DataTx[i]
			h := m.Header
			switch {
			case e.dir:
				if h.Typeflag != tar.TypeDir || h.Mode&0o7777 != ipkDirMode {
					bad("data %s: want a folder with mode %04o, got type %c mode %04o", h.Name, ipkDirMode, h.Typeflag, h.Mode)
				}
			case e.link != "":
				if h.Typeflag != tar.TypeSymlink || h.Linkname != e.link {
					bad("data %s: want a symlink to %s", h.Name, e.link)
				}
			default:
				if h.Typeflag != tar.TypeReg {
					bad("data %s: type %c, want a regular file", h.Name, h.Typeflag)
				}
				if got := fs.FileMode(h.Mode & 0o7777); got != e.mode.Perm() {
					bad("data %s: mode %04o, want %04o", h.Name, got, e.mode.Perm())
				}
				if !bytes.Equal(m.Data, e.data) {
					bad("data %s: contents differ from the source (%d bytes, want %d)", h.Name, len(m.Data), len(e.data))
				}
			}
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%s: %w:\n  %s", p, errBadPackage, strings.Join(probs, "\n  "))
	}
	return nil
}
