package apk

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// deflateLevel is flate.BestCompression: on the 3.8 MB mips binary it saves 0.6%
// (7.7 KB) over the default level for 0.8 s more per package, and router flash
// is the scarce resource, not build time.
const deflateLevel = flate.BestCompression

// owner is the user and group of every file: packages install as root.
const owner = "root"

// Option adjusts Write.
type Option func(*writeOptions)

type writeOptions struct {
	compression Compression
	signer      crypto.Signer
}

// WithCompression selects the stream encoding (default Deflate).
func WithCompression(c Compression) Option {
	return func(o *writeOptions) { o.compression = c }
}

// WithSigner adds a signature block made with s, an RSA or ECDSA private key
// (see ParsePrivateKey). apk then installs the package without
// --allow-untrusted when the matching public key is in /etc/apk/keys.
func WithSigner(s crypto.Signer) Option {
	return func(o *writeOptions) { o.signer = s }
}

// dirEntry is one directory of the package with the entries directly in it.
type dirEntry struct {
	name  string // "" for the root
	mode  fs.FileMode
	files []*File
}

// Write encodes p as an apk v3 package onto w. The output depends only on p and
// the options (ECDSA signatures use RFC 6979 nonces), so identical
// input gives byte-identical packages.
func Write(w io.Writer, p *Package, opts ...Option) error {
	o := writeOptions{compression: Deflate}
	for _, opt := range opts {
		opt(&o)
	}
	if o.compression != Deflate && o.compression != Uncompressed {
		return fmt.Errorf("%w: unknown compression %d", ErrInvalid, o.compression)
	}
	dirs, err := layout(p.Files)
	if err != nil {
		return err
	}
	adb, err := buildADB(p, dirs)
	if err != nil {
		return err
	}
	var sig []byte
	if o.signer != nil {
		if sig, err = sign(o.signer, schemaPackage, adb); err != nil {
			return err
		}
	}

	return writeCompressed(w, o.compression, func(out io.Writer) error {
		return writeStream(out, adb, sig, dirs)
	})
}

// writeCompressed writes the 4-byte container magic, then the stream that body
// writes: raw deflate after "ADBd", or as it is after nothing (the stream starts "ADB.").
func writeCompressed(w io.Writer, c Compression, body func(io.Writer) error) error {
	if c == Uncompressed {
		return body(w)
	}
	if _, err := io.WriteString(w, "ADBd"); err != nil {
		return err
	}
	fw, err := flate.NewWriter(w, deflateLevel)
	if err != nil {
		return err
	}
	if err := body(fw); err != nil {
		return err
	}
	return fw.Close()
}

// writeStream writes the uncompressed container: header, ADB block, signature
// block, then the DATA blocks in path and file order.
func writeStream(w io.Writer, adb, sig []byte, dirs []*dirEntry) error {
	if err := writeHead(w, schemaPackage, adb, sig); err != nil {
		return err
	}
	for i, d := range dirs {
		for j, f := range d.files {
			if !f.Mode.IsRegular() || len(f.Data) == 0 {
				continue
			}
			idx := binary.LittleEndian.AppendUint32(nil, uint32(i+1))
			idx = binary.LittleEndian.AppendUint32(idx, uint32(j+1))
			if err := writeBlock(w, blockData, idx, f.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeHead writes the stream header with the schema id, the ADB block and the
// signature block, if any.
func writeHead(w io.Writer, schema uint32, adb, sig []byte) error {
	hdr := binary.LittleEndian.AppendUint32([]byte("ADB."), schema)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if err := writeBlock(w, blockADB, nil, adb); err != nil {
		return err
	}
	if sig != nil {
		return writeBlock(w, blockSig, nil, sig)
	}
	return nil
}

// writeBlock writes one block: its header, prefix and payload, and the padding
// to the next multiple of 8. Payloads near 1 GiB need the extended header.
func writeBlock(w io.Writer, typ uint32, prefix, payload []byte) error {
	n := uint64(len(prefix)) + uint64(len(payload))
	var hdr []byte
	if n <= 0x3fffffff-4 {
		hdr = binary.LittleEndian.AppendUint32(nil, typ<<30|uint32(n+4))
	} else {
		hdr = binary.LittleEndian.AppendUint32(nil, blockExt<<30|typ)
		hdr = binary.LittleEndian.AppendUint32(hdr, 0)
		hdr = binary.LittleEndian.AppendUint64(hdr, n+16)
	}
	raw := uint64(len(hdr)) + n
	pad := (blockAlign - raw%blockAlign) % blockAlign
	for _, b := range [][]byte{hdr, prefix, payload, make([]byte, pad)} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// layout validates the files and groups them into directories sorted bytewise,
// the root first, each with its entries sorted by name.
func layout(files []File) ([]*dirEntry, error) {
	dirs := map[string]*dirEntry{"": {mode: 0o755}}
	var ensure func(name string) *dirEntry
	ensure = func(name string) *dirEntry {
		if d, ok := dirs[name]; ok {
			return d
		}
		if parent := path.Dir(name); parent != "." {
			ensure(parent)
		}
		d := &dirEntry{name: name, mode: 0o755}
		dirs[name] = d
		return d
	}
	explicit := map[string]bool{}
	entries := map[string]bool{}
	for i := range files {
		f := &files[i]
		name := strings.TrimPrefix(f.Path, "/")
		if name == "" || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." {
			return nil, fmt.Errorf("%w: file path %q is not a clean path below /", ErrInvalid, f.Path)
		}
		if f.MTime.Unix() < 0 && !f.MTime.IsZero() {
			return nil, fmt.Errorf("%w: %s: mtime %s is before 1970", ErrInvalid, f.Path, f.MTime)
		}
		switch {
		case f.Mode.IsDir():
			if explicit[name] {
				return nil, fmt.Errorf("%w: directory %s listed twice", ErrInvalid, f.Path)
			}
			explicit[name] = true
			d := ensure(name)
			d.mode = f.Mode & (fs.ModePerm | 0o7000 | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			continue
		case f.Mode&fs.ModeSymlink != 0:
			if f.Link == "" {
				return nil, fmt.Errorf("%w: symlink %s has no target", ErrInvalid, f.Path)
			}
			if len(f.Link) > 1022 {
				return nil, fmt.Errorf("%w: symlink %s: target longer than apk's 1022 bytes", ErrInvalid, f.Path)
			}
		case f.Mode.IsRegular():
		default:
			return nil, fmt.Errorf("%w: %s: file type %s is not a regular file, symlink or directory", ErrInvalid, f.Path, f.Mode.Type())
		}
		if entries[name] {
			return nil, fmt.Errorf("%w: file %s listed twice", ErrInvalid, f.Path)
		}
		entries[name] = true
		parent := path.Dir(name)
		if parent == "." {
			parent = ""
		}
		d := ensure(parent)
		d.files = append(d.files, f)
	}
	for name := range entries {
		if _, ok := dirs[name]; ok {
			return nil, fmt.Errorf("%w: %s is both a file and a directory", ErrInvalid, name)
		}
	}
	out := make([]*dirEntry, 0, len(dirs))
	for _, d := range dirs {
		slices.SortFunc(d.files, func(a, b *File) int {
			return strings.Compare(path.Base(a.Path), path.Base(b.Path))
		})
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *dirEntry) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// buildADB writes the metadata block in apk mkpkg's order of writes: info fields,
// then each directory (its files first, then its own name and acl), then the
// installed size, a placeholder unique id, the info and paths objects, the
// scripts and the package object. The unique id is then filled in with the first
// 20 bytes of the block's SHA-256.
func buildADB(p *Package, dirs []*dirEntry) ([]byte, error) {
	if err := validateInfo(&p.Info); err != nil {
		return nil, err
	}
	h := newHeap()
	info := writeInfo(h, &p.Info, nil)

	var installed uint64
	paths := make([]uint32, 1, len(dirs)+1)
	for _, d := range dirs {
		files := make([]uint32, 1, len(d.files)+1)
		for _, f := range d.files {
			v, size := writeFile(h, f)
			files = append(files, v)
			if f.Mode.IsRegular() {
				installed += size
			}
		}
		dir := make([]uint32, diMax)
		dir[diName] = h.str(d.name)
		dir[diACL] = writeACL(h, d.mode)
		dir[diFiles] = h.object(files, typeObject)
		paths = append(paths, h.object(dir, typeObject))
	}
	// apk mkpkg never records 0: an empty package still "installs" a byte.
	installed = max(installed, 1)
	info[piInstalledSize] = h.integer(installed)
	info[piUniqueID] = h.rawBlob(make([]byte, uniqueIDLen))
	idOffset := int(info[piUniqueID]&valueMask) + 1

	pkg := make([]uint32, pkgMax)
	pkg[pkgInfo] = h.object(info, typeObject)
	pkg[pkgPaths] = h.object(paths, typeObject)
	scripts := p.Scripts.slots()
	sv := make([]uint32, scriptMax)
	for i, s := range scripts {
		if i > 0 {
			sv[i] = h.blob(s)
		}
	}
	pkg[pkgScripts] = h.object(sv, typeObject)
	h.setRoot(h.object(pkg, typeObject))
	if h.err != nil {
		return nil, h.err
	}
	sum := sha256.Sum256(h.buf)
	copy(h.buf[idOffset:idOffset+uniqueIDLen], sum[:])
	return h.buf, nil
}

// writeInfo writes the strings and dependencies of a package info object in
// slot order (apk mkpkg's order, and the order apk mkndx copies a package's info
// in, with the package's own unique id id in its slot), and returns the object's
// slots for the caller to complete.
func writeInfo(h *heap, in *Info, id []byte) []uint32 {
	info := make([]uint32, piMax)
	info[piName] = h.str(in.Name)
	info[piVersion] = h.str(in.Version)
	info[piUniqueID] = h.blob(id)
	info[piDescription] = h.str(in.Description)
	info[piArch] = h.str(in.Arch)
	info[piLicense] = h.str(in.License)
	info[piOrigin] = h.str(in.Origin)
	info[piMaintainer] = h.str(in.Maintainer)
	info[piURL] = h.str(in.URL)
	info[piDepends] = writeDepends(h, in.Depends)
	return info
}

// writeFile writes one file object: name, hash or target, mtime, size, acl.
func writeFile(h *heap, f *File) (uint32, uint64) {
	v := make([]uint32, fiMax)
	v[fiName] = h.str(path.Base(f.Path))
	var size uint64
	mode := f.Mode & (fs.ModePerm | 0o7000 | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if f.Mode&fs.ModeSymlink != 0 {
		target := binary.LittleEndian.AppendUint16(nil, symlinkType)
		v[fiTarget] = h.blob(append(target, f.Link...))
		size = uint64(len(f.Link))
		if mode == 0 {
			mode = 0o777 // what lstat reports for a symlink on Linux
		}
	} else {
		sum := sha256.Sum256(f.Data)
		v[fiHashes] = h.blob(sum[:])
		size = uint64(len(f.Data))
	}
	var mtime uint64
	if !f.MTime.IsZero() {
		mtime = uint64(f.MTime.Unix())
	}
	v[fiMTime] = h.integer(mtime)
	v[fiSize] = h.integer(size)
	v[fiACL] = writeACL(h, mode)
	return h.object(v, typeObject), size
}

// unixMode turns Go's mode bits into the 12 permission bits apk stores. The
// set-id and sticky bits may be given as Go's flags or as the octal 07000 bits.
func unixMode(m fs.FileMode) uint64 {
	u := uint64(m & (fs.ModePerm | 0o7000))
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

func writeACL(h *heap, mode fs.FileMode) uint32 {
	v := make([]uint32, aclMax)
	v[aclMode] = h.integer(unixMode(mode))
	v[aclUser] = h.str(owner)
	v[aclGroup] = h.str(owner)
	return h.object(v, typeObject)
}

// writeDepends writes one dependency object per name in the given order, then
// the array sorted by name without duplicates, as apk's dependency parser does.
func writeDepends(h *heap, names []string) uint32 {
	type dep struct {
		name string
		val  uint32
	}
	var deps []dep
	for _, n := range names {
		v := make([]uint32, depMax)
		v[depName] = h.str(n)
		deps = append(deps, dep{n, h.object(v, typeObject)})
	}
	slices.SortStableFunc(deps, func(a, b dep) int { return strings.Compare(a.name, b.name) })
	deps = slices.CompactFunc(deps, func(a, b dep) bool { return a.val == b.val })
	arr := make([]uint32, 1, len(deps)+1)
	for _, d := range deps {
		arr = append(arr, d.val)
	}
	return h.object(arr, typeObject)
}

// validateInfo checks what apk itself would refuse.
func validateInfo(in *Info) error {
	if !validName(in.Name) {
		return fmt.Errorf("%w: package name %q: want a letter or digit, then letters, digits or + - . _", ErrInvalid, in.Name)
	}
	if !ValidVersion(in.Version) {
		return fmt.Errorf("%w: version %q is not an apk version (e.g. 1.2.0-r1)", ErrInvalid, in.Version)
	}
	if in.Arch == "" {
		return fmt.Errorf("%w: arch is empty (e.g. mips_24kc, or noarch)", ErrInvalid)
	}
	for _, d := range in.Depends {
		if !validName(d) {
			return fmt.Errorf("%w: dependency %q is not a package name", ErrInvalid, d)
		}
	}
	for _, f := range []struct{ name, val string }{{"description", in.Description}, {"arch", in.Arch},
		{"license", in.License}, {"origin", in.Origin}, {"maintainer", in.Maintainer}, {"url", in.URL}} {
		if strings.ContainsAny(f.val, "\n\x00") {
			return fmt.Errorf("%w: %s %q spans lines", ErrInvalid, f.name, f.val)
		}
	}
	return nil
}

// validName reports whether s is an apk package name.
func validName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("+-._", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// ValidVersion reports whether v is an apk version: numbers separated by dots,
// an optional letter, suffixes such as _rc1 or _p2, an optional ~hash, and an
// optional -rN package release (e.g. 0.1.0-r1, 1.2_rc3-r0).
func ValidVersion(v string) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		return i > start
	}
	if !digits() {
		return false
	}
	for i < len(v) && v[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(v) && v[i] >= 'a' && v[i] <= 'z' {
		i++
	}
	for i < len(v) && v[i] == '_' {
		i++
		ok := false
		for _, s := range []string{"alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"} {
			if strings.HasPrefix(v[i:], s) {
				i += len(s)
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
		digits()
	}
	if i < len(v) && v[i] == '~' {
		i++
		start := i
		for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] >= 'a' && v[i] <= 'f') {
			i++
		}
		if i == start {
			return false
		}
	}
	if strings.HasPrefix(v[i:], "-r") {
		i += 2
		if !digits() {
			return false
		}
	}
	return i == len(v)
}

// concat joins byte slices; a helper for building signed messages.
func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
