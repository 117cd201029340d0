// Package apk writes and reads apk-tools v3 packages, the binary "ADB" format
// that OpenWrt 25.12's package manager installs.
//
// A package is the magic "ADB." and the schema id "pckg", then blocks: one ADB
// block holding the metadata (package info, directories and files with their
// owners, modes, sizes, mtimes and SHA-256 hashes, maintainer scripts), optional
// signature blocks over that metadata, and one DATA block per non-empty regular
// file. The writer replays the order in which apk-tools 3.0.6's `apk mkpkg`
// builds the metadata, so for the same input the uncompressed stream is
// byte-identical to what apk-tools writes.
//
// Compression: by default the whole stream after a 4-byte "ADBd" header is raw
// deflate (RFC 1951, no zlib header), the form `apk mkpkg` itself writes and every
// apk-tools 3 build reads (zstd, the other option, is a build-time choice of
// apk-tools and Go's standard library cannot write it). The deflate bytes come from
// Go's compress/flate and differ from zlib's; the decompressed stream does not.
package apk

import (
	"errors"
	"io/fs"
	"time"
)

// Errors returned by this package; they are wrapped with details, so test them
// with errors.Is.
var (
	// ErrInvalid reports input that cannot become a valid package.
	ErrInvalid = errors.New("apk: invalid package input")
	// ErrTooLarge reports metadata or a file beyond the format's limits.
	ErrTooLarge = errors.New("apk: too large")
	// ErrFormat reports a file that is not an apk v3 package, or uses a feature this reader lacks.
	ErrFormat = errors.New("apk: not a supported apk v3 package")
	// ErrCorrupt reports a package whose structure or file contents are inconsistent.
	ErrCorrupt = errors.New("apk: corrupt package")
	// ErrSignature reports a missing, malformed or non-verifying signature, or an unusable key.
	ErrSignature = errors.New("apk: signature")
)

// Info is the package's identity and description (apk's "info" object).
type Info struct {
	Name        string   // package name, e.g. nextdns-failover
	Version     string   // apk version, e.g. 0.1.0-r1
	Description string   // one line
	Arch        string   // OpenWrt architecture, e.g. mips_24kc, or noarch
	License     string   // SPDX identifier
	Origin      string   // source package name; optional
	Maintainer  string   // "Name <mail>"; optional
	URL         string   // project page; optional
	Depends     []string // package names; stored sorted and without duplicates
}

// File is one entry of the package as it lands on the target. Every file is owned
// by root:root. Parent directories are implied (mode 0755); list a directory only
// to give it another mode.
type File struct {
	Path  string      // slash-separated, relative to / (a leading slash is ignored)
	Mode  fs.FileMode // permissions (set-id/sticky as Go flags or 07000 bits); fs.ModeSymlink, fs.ModeDir for those
	Data  []byte      // contents of a regular file
	Link  string      // target of a symlink
	MTime time.Time   // modification time; the zero time is stored as 0
}

// Scripts are the maintainer scripts apk runs; empty ones are left out.
type Scripts struct {
	PreInstall, PostInstall     []byte
	PreDeinstall, PostDeinstall []byte
	PreUpgrade, PostUpgrade     []byte
}

// slots returns the scripts indexed by their schema field numbers.
func (s *Scripts) slots() [scriptMax][]byte {
	var out [scriptMax][]byte
	out[scriptPreInstall] = s.PreInstall
	out[scriptPostInstall] = s.PostInstall
	out[scriptPreDeinst] = s.PreDeinstall
	out[scriptPostDeinst] = s.PostDeinstall
	out[scriptPreUpgrade] = s.PreUpgrade
	out[scriptPostUpgrade] = s.PostUpgrade
	return out
}

// setSlot stores the script of schema field i.
func (s *Scripts) setSlot(i int, b []byte) {
	switch i {
	case scriptPreInstall:
		s.PreInstall = b
	case scriptPostInstall:
		s.PostInstall = b
	case scriptPreDeinst:
		s.PreDeinstall = b
	case scriptPostDeinst:
		s.PostDeinstall = b
	case scriptPreUpgrade:
		s.PreUpgrade = b
	case scriptPostUpgrade:
		s.PostUpgrade = b
	}
}

// Package is everything Write needs.
type Package struct {
	Info    Info
	Files   []File
	Scripts Scripts
}

// Compression selects how Write encodes the stream.
type Compression int

const (
	// Deflate writes "ADBd" and raw deflate: what apk mkpkg writes by default.
	Deflate Compression = iota
	// Uncompressed writes the plain "ADB." stream (larger; useful for inspection).
	Uncompressed
)

// String names the compression as apk-tools does.
func (c Compression) String() string {
	switch c {
	case Deflate:
		return "deflate"
	case Uncompressed:
		return "none"
	}
	return "unknown"
}
