package apk

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// maxPackageSize bounds what Read decompresses: far above any router package,
// and low enough that a hostile file cannot exhaust memory.
const maxPackageSize = 1 << 30

// Archive is a package as Read found it.
type Archive struct {
	Compression   Compression
	Info          Info   // Depends with version constraints read back as e.g. "libc>=1.0"
	UniqueID      []byte // the "hashes" field: 20 bytes of the metadata's SHA-256
	InstalledSize uint64
	Dirs          []Dir
	Scripts       Scripts
	Signatures    []Signature
	ADB           []byte // the metadata block's payload: what signatures cover
	DataBlocks    int    // number of DATA blocks
}

// Dir is one directory entry of the package.
type Dir struct {
	Name  string // without a leading slash; "" for the root
	ACL   ACL
	Files []Entry
}

// ACL is the owner and mode of a directory or file.
type ACL struct {
	Mode        fs.FileMode // permission bits only
	User, Group string
}

// Entry is one file of a directory.
type Entry struct {
	Name   string
	ACL    ACL
	Size   uint64
	MTime  int64
	Hash   []byte // SHA-256 of a regular file
	Target []byte // raw target field: 16-bit file type, then the link target
	Data   []byte // contents of a regular file, from its DATA block
}

// Link returns the target of a symlink entry.
func (e *Entry) Link() (string, bool) {
	if len(e.Target) < 2 || binary.LittleEndian.Uint16(e.Target)&0o170000 != symlinkType {
		return "", false
	}
	return string(e.Target[2:]), true
}

// IsRegular reports whether the entry is a regular file.
func (e *Entry) IsRegular() bool { return e.Target == nil }

// Path returns the entry's absolute path in directory d.
func (d *Dir) Path(e *Entry) string { return "/" + path.Join(d.Name, e.Name) }

// Paths lists the absolute path of every file entry, in package order.
func (a *Archive) Paths() []string {
	var out []string
	for i := range a.Dirs {
		for j := range a.Dirs[i].Files {
			out = append(out, a.Dirs[i].Path(&a.Dirs[i].Files[j]))
		}
	}
	return out
}

// Lookup finds a file entry by absolute path.
func (a *Archive) Lookup(p string) (*Entry, bool) {
	dir, name := path.Split(strings.TrimPrefix(p, "/"))
	dir = strings.TrimSuffix(dir, "/")
	for i := range a.Dirs {
		if a.Dirs[i].Name != dir {
			continue
		}
		for j := range a.Dirs[i].Files {
			if a.Dirs[i].Files[j].Name == name {
				return &a.Dirs[i].Files[j], true
			}
		}
	}
	return nil, false
}

// Read parses an apk v3 package and checks it the way apk does when installing:
// block order, every non-empty regular file backed by exactly one DATA block in
// order, and each file's size and SHA-256 matching its metadata. Signatures are
// returned, not checked: see VerifySignature.
func Read(r io.Reader) (*Archive, error) {
	a := &Archive{}
	b, c, err := readStream(r, schemaPackage, "a package (pckg)")
	if err != nil {
		return nil, err
	}
	a.Compression = c
	if err := a.parseBlocks(b); err != nil {
		return nil, err
	}
	return a, nil
}

// readStream decompresses an ADB stream, checks its schema and returns the bytes
// after the 8-byte stream header: the blocks.
func readStream(r io.Reader, schema uint32, what string) ([]byte, Compression, error) {
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	var c Compression
	var stream io.Reader
	switch string(head) {
	case "ADB.":
		c = Uncompressed
		stream = io.MultiReader(bytes.NewReader(head), r)
	case "ADBd":
		c = Deflate
		stream = flate.NewReader(r)
	default:
		if string(head[:3]) == "ADB" {
			return nil, 0, fmt.Errorf("%w: compression %q is not supported", ErrFormat, head[3])
		}
		return nil, 0, fmt.Errorf("%w: starts with %q, not ADB", ErrFormat, head)
	}
	b, err := io.ReadAll(io.LimitReader(stream, maxPackageSize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(b) > maxPackageSize {
		return nil, 0, fmt.Errorf("%w: more than %d bytes uncompressed", ErrTooLarge, maxPackageSize)
	}
	if len(b) < 8 || string(b[:4]) != "ADB." {
		return nil, 0, fmt.Errorf("%w: no ADB. header after decompression", ErrFormat)
	}
	if s := binary.LittleEndian.Uint32(b[4:]); s != schema {
		return nil, 0, fmt.Errorf("%w: schema %#08x is not %s", ErrFormat, s, what)
	}
	return b[8:], c, nil
}

// nextBlock decodes the block at pos: its type, payload and the position of the
// next block (after the padding).
func nextBlock(b []byte, pos int) (typ uint32, payload []byte, next int, err error) {
	if len(b)-pos < 4 {
		return 0, nil, 0, fmt.Errorf("%w: truncated block header at %d", ErrCorrupt, pos)
	}
	word := binary.LittleEndian.Uint32(b[pos:])
	typ, raw, hdr := word>>30, uint64(word&0x3fffffff), uint64(4)
	if typ == blockExt {
		if len(b)-pos < 16 {
			return 0, nil, 0, fmt.Errorf("%w: truncated extended block header at %d", ErrCorrupt, pos)
		}
		typ, raw, hdr = word&0x3fffffff, binary.LittleEndian.Uint64(b[pos+8:]), 16
	}
	if raw < hdr || raw > uint64(len(b)-pos) {
		return 0, nil, 0, fmt.Errorf("%w: block at %d claims %d bytes, %d remain", ErrCorrupt, pos, raw, len(b)-pos)
	}
	payload = b[pos+int(hdr) : pos+int(raw)]
	next = pos + int(raw)
	if pad := int((blockAlign - raw%blockAlign) % blockAlign); pad > 0 {
		if len(b)-next < pad {
			return 0, nil, 0, fmt.Errorf("%w: block padding missing at end", ErrCorrupt)
		}
		next += pad
	}
	return typ, payload, next, nil
}

// parseSig decodes a signature block.
func parseSig(payload []byte) (Signature, error) {
	if len(payload) < sigHeaderLen || payload[0] != 0 {
		return Signature{}, fmt.Errorf("%w: malformed signature block", ErrCorrupt)
	}
	s := Signature{HashAlg: payload[1], Sig: append([]byte(nil), payload[sigHeaderLen:]...)}
	copy(s.KeyID[:], payload[2:sigHeaderLen])
	return s, nil
}

// parseBlocks walks the blocks: ADB first, then signatures, then DATA.
func (a *Archive) parseBlocks(b []byte) error {
	const (
		wantADB = iota
		wantSig
		wantData
	)
	state := wantADB
	var last [2]uint32 // the last (path, file) index seen in a DATA block
	for pos := 0; pos < len(b); {
		typ, payload, next, err := nextBlock(b, pos)
		if err != nil {
			return err
		}
		pos = next
		switch {
		case typ == blockADB && state == wantADB:
			if err := a.parseADB(payload); err != nil {
				return err
			}
			state = wantSig
		case typ == blockSig && state == wantSig:
			s, err := parseSig(payload)
			if err != nil {
				return err
			}
			a.Signatures = append(a.Signatures, s)
		case typ == blockData && state != wantADB:
			state = wantData
			if err := a.attachData(payload, &last); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: block of type %d out of place", ErrCorrupt, typ)
		}
	}
	if state == wantADB {
		return fmt.Errorf("%w: no metadata block", ErrCorrupt)
	}
	for i := range a.Dirs {
		for j := range a.Dirs[i].Files {
			if e := &a.Dirs[i].Files[j]; e.IsRegular() && e.Size > 0 && e.Data == nil {
				return fmt.Errorf("%w: %s has no data block", ErrCorrupt, a.Dirs[i].Path(e))
			}
		}
	}
	return nil
}

// attachData checks a DATA block against the file it names and keeps its bytes.
func (a *Archive) attachData(p []byte, last *[2]uint32) error {
	if len(p) < 8 {
		return fmt.Errorf("%w: data block without file index", ErrCorrupt)
	}
	pi, fi := binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:])
	if pi < last[0] || pi == last[0] && fi <= last[1] {
		return fmt.Errorf("%w: data block (%d,%d) after (%d,%d)", ErrCorrupt, pi, fi, last[0], last[1])
	}
	*last = [2]uint32{pi, fi}
	if pi < 1 || int(pi) > len(a.Dirs) || fi < 1 || int(fi) > len(a.Dirs[pi-1].Files) {
		return fmt.Errorf("%w: data block for missing file (%d,%d)", ErrCorrupt, pi, fi)
	}
	d := &a.Dirs[pi-1]
	e := &d.Files[fi-1]
	data := p[8:]
	if !e.IsRegular() {
		return fmt.Errorf("%w: data block for non-regular file %s", ErrCorrupt, d.Path(e))
	}
	if uint64(len(data)) != e.Size {
		return fmt.Errorf("%w: %s: data block holds %d bytes, metadata says %d", ErrCorrupt, d.Path(e), len(data), e.Size)
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], e.Hash) {
		return fmt.Errorf("%w: %s: SHA-256 %x does not match metadata %x", ErrCorrupt, d.Path(e), sum, e.Hash)
	}
	e.Data = append([]byte(nil), data...)
	a.DataBlocks++
	return nil
}

// adbRoot checks an ADB block's header and returns a view of a copy of the block
// and the slots of its root object.
func adbRoot(b []byte, what string) (view, []uint32, error) {
	if len(b) < adbHeaderLen {
		return view{}, nil, fmt.Errorf("%w: %s block of %d bytes", ErrCorrupt, what, len(b))
	}
	if b[0] != 0 {
		return view{}, nil, fmt.Errorf("%w: %s compat version %d", ErrFormat, what, b[0])
	}
	v := view{bytes.Clone(b)}
	root, err := v.slots(binary.LittleEndian.Uint32(b[4:]))
	return v, root, err
}

// parseADB decodes the metadata block with the package schema.
func (a *Archive) parseADB(b []byte) error {
	v, pkg, err := adbRoot(b, "metadata")
	if err != nil {
		return err
	}
	a.ADB = v.b
	if err := a.parseInfo(v, slot(pkg, pkgInfo)); err != nil {
		return err
	}
	paths, err := v.slots(slot(pkg, pkgPaths))
	if err != nil {
		return err
	}
	for _, pv := range paths[1:] {
		d, err := parseDir(v, pv)
		if err != nil {
			return err
		}
		a.Dirs = append(a.Dirs, d)
	}
	scripts, err := v.slots(slot(pkg, pkgScripts))
	if err != nil {
		return err
	}
	for i := 1; i < len(scripts) && i < scriptMax; i++ {
		s, err := v.blob(scripts[i])
		if err != nil {
			return err
		}
		a.Scripts.setSlot(i, s)
	}
	return nil
}

func (a *Archive) parseInfo(v view, val uint32) error {
	in, err := parseInfo(v, val)
	if err != nil {
		return err
	}
	a.Info, a.UniqueID, a.InstalledSize = in.Info, in.Hashes, in.InstalledSize
	return nil
}

// parseInfo decodes a package info object, the one inside a package and the
// ones an index lists.
func parseInfo(v view, val uint32) (IndexEntry, error) {
	var in IndexEntry
	s, err := v.slots(val)
	if err != nil {
		return in, err
	}
	for _, f := range []struct {
		i   int
		dst *string
	}{{piName, &in.Info.Name}, {piVersion, &in.Info.Version}, {piDescription, &in.Info.Description},
		{piArch, &in.Info.Arch}, {piLicense, &in.Info.License}, {piOrigin, &in.Info.Origin},
		{piMaintainer, &in.Info.Maintainer}, {piURL, &in.Info.URL}} {
		if *f.dst, err = v.str(slot(s, f.i)); err != nil {
			return in, err
		}
	}
	if in.Hashes, err = v.blob(slot(s, piUniqueID)); err != nil {
		return in, err
	}
	if in.InstalledSize, err = v.integer(slot(s, piInstalledSize)); err != nil {
		return in, err
	}
	if in.FileSize, err = v.integer(slot(s, piFileSize)); err != nil {
		return in, err
	}
	deps, err := v.slots(slot(s, piDepends))
	if err != nil {
		return in, err
	}
	for _, dv := range deps[1:] {
		d, err := parseDepend(v, dv)
		if err != nil {
			return in, err
		}
		in.Info.Depends = append(in.Info.Depends, d)
	}
	return in, nil
}

// parseDepend renders a dependency object as apk writes it on a command line.
func parseDepend(v view, val uint32) (string, error) {
	s, err := v.slots(val)
	if err != nil {
		return "", err
	}
	name, err := v.str(slot(s, depName))
	if err != nil {
		return "", err
	}
	ver, err := v.str(slot(s, depVersion))
	if err != nil {
		return "", err
	}
	op, err := v.integer(slot(s, depMatch))
	if err != nil {
		return "", err
	}
	const equal, less, greater, fuzzy, conflict = 1, 2, 4, 8, 16 // apk_version.h
	prefix := ""
	if op&conflict != 0 {
		prefix = "!"
	}
	if ver == "" {
		return prefix + name, nil
	}
	ops := ""
	switch op &^ conflict {
	case 0, equal:
		ops = "="
	case less:
		ops = "<"
	case greater:
		ops = ">"
	case less | equal:
		ops = "<="
	case greater | equal:
		ops = ">="
	case fuzzy | equal, fuzzy:
		ops = "~"
	default:
		ops = "?"
	}
	return prefix + name + ops + ver, nil
}

func parseACL(v view, val uint32) (ACL, error) {
	s, err := v.slots(val)
	if err != nil {
		return ACL{}, err
	}
	mode, err := v.integer(slot(s, aclMode))
	if err != nil {
		return ACL{}, err
	}
	var acl ACL
	acl.Mode = fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		acl.Mode |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		acl.Mode |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		acl.Mode |= fs.ModeSticky
	}
	if acl.User, err = v.str(slot(s, aclUser)); err != nil {
		return ACL{}, err
	}
	if acl.Group, err = v.str(slot(s, aclGroup)); err != nil {
		return ACL{}, err
	}
	return acl, nil
}

func parseDir(v view, val uint32) (Dir, error) {
	s, err := v.slots(val)
	if err != nil {
		return Dir{}, err
	}
	var d Dir
	if d.Name, err = v.str(slot(s, diName)); err != nil {
		return Dir{}, err
	}
	if d.ACL, err = parseACL(v, slot(s, diACL)); err != nil {
		return Dir{}, err
	}
	files, err := v.slots(slot(s, diFiles))
	if err != nil {
		return Dir{}, err
	}
	for _, fv := range files[1:] {
		fs, err := v.slots(fv)
		if err != nil {
			return Dir{}, err
		}
		var e Entry
		if e.Name, err = v.str(slot(fs, fiName)); err != nil {
			return Dir{}, err
		}
		if e.ACL, err = parseACL(v, slot(fs, fiACL)); err != nil {
			return Dir{}, err
		}
		if e.Size, err = v.integer(slot(fs, fiSize)); err != nil {
			return Dir{}, err
		}
		mtime, err := v.integer(slot(fs, fiMTime))
		if err != nil {
			return Dir{}, err
		}
		e.MTime = int64(mtime)
		if e.Hash, err = v.blob(slot(fs, fiHashes)); err != nil {
			return Dir{}, err
		}
		if e.Target, err = v.blob(slot(fs, fiTarget)); err != nil {
			return Dir{}, err
		}
		if e.Name == "" || strings.Contains(e.Name, "/") {
			return Dir{}, fmt.Errorf("%w: file name %q in %q", ErrCorrupt, e.Name, d.Name)
		}
		d.Files = append(d.Files, e)
	}
	return d, nil
}
