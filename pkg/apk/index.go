package apk

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Index schema (apk-tools' src/apk_adb.h): the root object of a repository's
// packages.adb lists one package info object per package.
const (
	schemaIndex uint32 = 0x78646e69 // "indx", little-endian

	ndxDescription = 1
	ndxPackages    = 2
	ndxPkgnameSpec = 3 // optional file name pattern; apk's default is ${name}-${version}.apk
	ndxMax         = 4
)

// IndexEntry is one package as a repository index lists it.
type IndexEntry struct {
	Info          Info
	Hashes        []byte // SHA-256 of the package's ADB block: apk checks the downloaded package against it
	InstalledSize uint64
	FileSize      uint64 // size of the .apk file

	// packageID is the package's own unique id: apk mkndx copies it into the
	// index block before it replaces it with Hashes, so it is written (unused)
	// to keep the block byte-identical to apk's.
	packageID []byte
}

// Index is a repository index (packages.adb) as ReadIndex found it.
type Index struct {
	Compression Compression
	Description string
	Packages    []IndexEntry // in the index's order: sorted by name, then version
	Signatures  []Signature
	ADB         []byte // the index block's payload: what signatures cover
}

// NewIndexEntry describes a package read with Read, whose file is fileSize bytes
// long, for an index: apk mkndx copies the package's info and replaces the unique
// id with the SHA-256 of the package's ADB block.
func NewIndexEntry(a *Archive, fileSize int64) IndexEntry {
	sum := sha256.Sum256(a.ADB)
	info := a.Info
	info.Depends = slices.Clone(info.Depends)
	return IndexEntry{Info: info, Hashes: sum[:], InstalledSize: a.InstalledSize, FileSize: uint64(fileSize),
		packageID: bytes.Clone(a.UniqueID)}
}

// FileName is the name apk downloads the package as, relative to the folder of
// packages.adb: apk's default pkgname spec, ${name}-${version}.apk.
func (e *IndexEntry) FileName() string { return e.Info.Name + "-" + e.Info.Version + ".apk" }

// IndexOption adjusts WriteIndex.
type IndexOption func(*indexOptions)

type indexOptions struct {
	compression Compression
	signer      crypto.Signer
	description string
}

// IndexCompression selects the stream encoding (default Deflate, as apk mkndx).
func IndexCompression(c Compression) IndexOption {
	return func(o *indexOptions) { o.compression = c }
}

// IndexSigner signs the index with an RSA or ECDSA key (see ParsePrivateKey); apk
// trusts it when the public key is in /etc/apk/keys. ECDSA uses RFC 6979, so the
// same packages and key give the same bytes.
func IndexSigner(s crypto.Signer) IndexOption {
	return func(o *indexOptions) { o.signer = s }
}

// IndexDescription sets the index's description (apk mkndx --description).
func IndexDescription(d string) IndexOption {
	return func(o *indexOptions) { o.description = d }
}

// WriteIndex writes a repository index, packages.adb, listing entries sorted by
// name and version. Without IndexSigner the index is unsigned and apk refuses it
// unless run with --allow-untrusted.
func WriteIndex(w io.Writer, entries []IndexEntry, opts ...IndexOption) error {
	o := indexOptions{compression: Deflate}
	for _, opt := range opts {
		opt(&o)
	}
	if o.compression != Deflate && o.compression != Uncompressed {
		return fmt.Errorf("%w: unknown compression %d", ErrInvalid, o.compression)
	}
	entries = slices.Clone(entries)
	slices.SortStableFunc(entries, func(a, b IndexEntry) int {
		if c := strings.Compare(a.Info.Name, b.Info.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Info.Version, b.Info.Version)
	})
	h := newHeap()
	pkgs := make([]uint32, 1, len(entries)+1)
	for i := range entries {
		e := &entries[i]
		if err := validateInfo(&e.Info); err != nil {
			return fmt.Errorf("%s: %w", e.Info.Name, err)
		}
		if len(e.Hashes) != sha256.Size {
			return fmt.Errorf("%w: %s: hashes of %d bytes, want %d", ErrInvalid, e.Info.Name, len(e.Hashes), sha256.Size)
		}
		info := writeInfo(h, &e.Info, e.packageID)
		info[piUniqueID] = h.blob(e.Hashes)
		info[piInstalledSize] = h.integer(e.InstalledSize)
		info[piFileSize] = h.integer(e.FileSize)
		pkgs = append(pkgs, h.object(info, typeObject))
	}
	root := make([]uint32, ndxMax)
	root[ndxDescription] = h.str(o.description)
	root[ndxPackages] = h.object(pkgs, typeObject) // apk stores arrays with the object type
	h.setRoot(h.object(root, typeObject))
	if h.err != nil {
		return h.err
	}
	var sig []byte
	if o.signer != nil {
		var err error
		if sig, err = sign(o.signer, schemaIndex, h.buf); err != nil {
			return err
		}
	}
	return writeCompressed(w, o.compression, func(out io.Writer) error {
		return writeHead(out, schemaIndex, h.buf, sig)
	})
}

// ReadIndex parses a repository index. Signatures are returned, not checked: see
// VerifySignature.
func ReadIndex(r io.Reader) (*Index, error) {
	b, c, err := readStream(r, schemaIndex, "an index (indx)")
	if err != nil {
		return nil, err
	}
	x := &Index{Compression: c}
	for pos := 0; pos < len(b); {
		typ, payload, next, err := nextBlock(b, pos)
		if err != nil {
			return nil, err
		}
		pos = next
		switch {
		case typ == blockADB && x.ADB == nil:
			if err := x.parseADB(payload); err != nil {
				return nil, err
			}
		case typ == blockSig && x.ADB != nil:
			s, err := parseSig(payload)
			if err != nil {
				return nil, err
			}
			x.Signatures = append(x.Signatures, s)
		default:
			return nil, fmt.Errorf("%w: index block of type %d out of place", ErrCorrupt, typ)
		}
	}
	if x.ADB == nil {
		return nil, fmt.Errorf("%w: index without an ADB block", ErrCorrupt)
	}
	return x, nil
}

func (x *Index) parseADB(b []byte) error {
	v, root, err := adbRoot(b, "index")
	if err != nil {
		return err
	}
	x.ADB = v.b
	if x.Description, err = v.str(slot(root, ndxDescription)); err != nil {
		return err
	}
	pkgs, err := v.slots(slot(root, ndxPackages))
	if err != nil {
		return err
	}
	for _, pv := range pkgs[1:] {
		e, err := parseInfo(v, pv)
		if err != nil {
			return err
		}
		x.Packages = append(x.Packages, e)
	}
	return nil
}

// VerifySignature checks that one of the index's signatures verifies with pub, as
// `apk update` does with the keys in /etc/apk/keys.
func (x *Index) VerifySignature(pub crypto.PublicKey) error {
	return verifySignatures(x.Signatures, schemaIndex, x.ADB, pub)
}

// Lookup finds a package by name.
func (x *Index) Lookup(name string) (*IndexEntry, bool) {
	for i := range x.Packages {
		if x.Packages[i].Info.Name == name {
			return &x.Packages[i], true
		}
	}
	return nil, false
}

// Matches reports whether a package read with Read is the one this entry
// describes, as apk checks a download: the SHA-256 of its ADB block equals Hashes.
func (e *IndexEntry) Matches(a *Archive) bool {
	sum := sha256.Sum256(a.ADB)
	return bytes.Equal(sum[:], e.Hashes)
}
