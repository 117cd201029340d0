package main

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nextdns-failover/nextdns-failover/pkg/apk"
	"github.com/nextdns-failover/nextdns-failover/pkg/usign"
)

// A feed is one folder per architecture that opkg (src/gz NAME URL) and apk
// (URL/packages.adb) read: the .ipk files with Packages, Packages.gz and
// Packages.sig, and the .apk files with packages.adb. Everything is written in Go:
// usign's Ed25519 signature (pkg/usign) and apk's index and ECDSA signature
// (pkg/apk). The same packages and keys give byte-identical files.
const (
	opkgIndexName = "Packages"
	apkIndexName  = "packages.adb"
)

// strippedFields are the control fields OpenWrt's package/Makefile drops from the index
// (grep -vE '^(Maintainer|LicenseFiles|Source|SourceName|Require|SourceDateEpoch)'):
// a line starting with any of these words goes, whatever follows.
var strippedFields = []string{"Maintainer", "LicenseFiles", "Source", "Require"}

// opkgStanza is one package's entry of Packages as scripts/ipkg-make-index.sh and
// package/Makefile write it: the control file with Filename, Size and SHA256sum
// inserted before Description, the stripped fields left out, then an empty line.
func opkgStanza(fileName string, ipk, control []byte) []byte {
	var b bytes.Buffer
	sum := sha256.Sum256(ipk)
	for line := range strings.SplitSeq(strings.TrimSuffix(string(control), "\n"), "\n") {
		if slices.ContainsFunc(strippedFields, func(f string) bool { return strings.HasPrefix(line, f) }) {
			continue
		}
		if strings.HasPrefix(line, "Description:") {
			fmt.Fprintf(&b, "Filename: %s\nSize: %d\nSHA256sum: %s\n", fileName, len(ipk), hex.EncodeToString(sum[:]))
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("\n")
	return b.Bytes()
}

// opkgIndex builds Packages for the .ipk files in dir, in byte order of their names as
// `find | sort` lists them under LC_ALL=C, skipping kernel and libc as OpenWrt does.
// It returns the index and the number of packages.
func opkgIndex(dir string) ([]byte, int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.ipk"))
	if err != nil {
		return nil, 0, err
	}
	slices.Sort(names)
	var out bytes.Buffer
	n := 0
	for _, p := range names {
		base := filepath.Base(p)
		if pkg, _, _ := strings.Cut(base, "_"); pkg == "kernel" || pkg == "libc" {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, 0, err
		}
		c, err := readIPKBytes(p, raw)
		if err != nil {
			return nil, 0, err
		}
		if c.ControlRaw == nil {
			return nil, 0, fmt.Errorf("%s: %w: no ./control in control.tar.gz", p, errBadPackage)
		}
		out.Write(opkgStanza(base, raw, c.ControlRaw))
		n++
	}
	// usign's SHA-512 bug workaround of package/Makefile: two more newlines when
	// (64 + size) % 128 is 110 or 111.
	if r := (64 + out.Len()) % 128; r == 110 || r == 111 {
		out.WriteString("\n\n")
	}
	return out.Bytes(), n, nil
}

// feedKeys are the signing keys of a feed; a nil key leaves that index unsigned.
type feedKeys struct {
	usign *usign.SecretKey
	apk   crypto.Signer
}

// loadFeedKeys reads the usign secret key and the apk index key (PEM) when named.
func loadFeedKeys(usignPath, apkPath string) (feedKeys, error) {
	var k feedKeys
	if usignPath != "" {
		b, err := os.ReadFile(usignPath)
		if err != nil {
			return k, fmt.Errorf("usign key: %w", err)
		}
		if k.usign, err = usign.ParseSecretKey(b); err != nil {
			return k, fmt.Errorf("%s: %w", usignPath, err)
		}
	}
	if apkPath != "" {
		var err error
		if k.apk, err = loadAPKKey(apkPath); err != nil {
			return k, err
		}
	}
	return k, nil
}

// writeFeedIndexes writes the opkg and apk indexes for the packages in dir and reports
// each file on progress. Without a key the index is unsigned (and a stale signature
// removed, so a router never pairs it with an old index).
func writeFeedIndexes(dir string, keys feedKeys, progress io.Writer) error {
	packages, n, err := opkgIndex(dir)
	if err != nil {
		return err
	}
	if n > 0 {
		gz, err := gzipBytes(packages)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, opkgIndexName), packages); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, opkgIndexName+".gz"), gz); err != nil {
			return err
		}
		signed := "unsigned"
		sigPath := filepath.Join(dir, opkgIndexName+".sig")
		if keys.usign != nil {
			if err := writeFileAtomic(sigPath, usign.Sign(keys.usign, packages)); err != nil {
				return err
			}
			signed = "signed by usign key " + keys.usign.Fingerprint.String()
		} else if err := os.Remove(sigPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fmt.Fprintf(progress, "  %s: %d package(s), %s\n", filepath.Join(dir, opkgIndexName), n, signed)
	}

	apks, err := filepath.Glob(filepath.Join(dir, "*.apk"))
	if err != nil || len(apks) == 0 {
		return err
	}
	slices.Sort(apks)
	var entries []apk.IndexEntry
	for _, p := range apks {
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		a, err := apk.Read(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		e := apk.NewIndexEntry(a, int64(len(raw)))
		if want := e.FileName(); want != filepath.Base(p) {
			return fmt.Errorf("%s: apk downloads this package as %s: rename it", p, want)
		}
		entries = append(entries, e)
	}
	var opts []apk.IndexOption
	signed := "unsigned"
	if keys.apk != nil {
		opts = append(opts, apk.IndexSigner(keys.apk))
		id, err := apk.KeyID(keys.apk.Public())
		if err != nil {
			return err
		}
		signed = fmt.Sprintf("signed by apk key id %x", id)
	}
	var buf bytes.Buffer
	if err := apk.WriteIndex(&buf, entries, opts...); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, apkIndexName), buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(progress, "  %s: %d package(s), %s\n", filepath.Join(dir, apkIndexName), len(entries), signed)
	return nil
}

// buildFeed fills feed/<arch>/ for every architecture with the packages mkpkg wrote into
// o.out (make packages) and indexes them. The package files of an architecture's folder
// are replaced, so the feed holds the current version only.
func buildFeed(o *options, stdout io.Writer) error {
	keys, err := loadFeedKeys(o.usignKey, o.indexKey)
	if err != nil {
		return err
	}
	for _, t := range o.archs {
		s := &spec{Name: pkgName, Version: o.version, Release: o.release, Arch: t.Arch}
		dir := filepath.Join(o.feed, t.Arch)
		fmt.Fprintf(stdout, "feed %s: %s\n", t.Arch, dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		old, _ := filepath.Glob(filepath.Join(dir, "*.[ai]pk"))
		for _, p := range old {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
		copies := []struct{ from, to string }{
			{ipkFileName(s), ipkFileName(s)},
			{apkFileName(s), (&apk.IndexEntry{Info: apk.Info{Name: s.Name, Version: apkVersion(s)}}).FileName()},
		}
		for _, c := range copies {
			if !slices.Contains(o.formats, strings.TrimPrefix(filepath.Ext(c.from), ".")) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(o.out, c.from))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w (run make packages first, with the same VERSION and RELEASE)", err)
			}
			if err != nil {
				return err
			}
			if err := writeFileAtomic(filepath.Join(dir, c.to), b); err != nil {
				return err
			}
		}
		if err := writeFeedIndexes(dir, keys, stdout); err != nil {
			return fmt.Errorf("feed %s: %w", t.Arch, err)
		}
	}
	if keys.usign == nil || keys.apk == nil {
		fmt.Fprintln(stdout, "mkpkg: the feed is not fully signed: pass USIGN_KEY and APK_KEY (make feed-keys makes them)")
	}
	return nil
}

// Key files written by -feed-keys, in the folder given.
const (
	usignSecretName = "nextdns-failover-feed.usign.sec"
	usignPublicName = "nextdns-failover-feed.usign.pub"
	apkPrivateName  = "nextdns-failover-feed.apk-private.pem"
	apkPublicName   = "nextdns-failover-feed.pem" // its name on the router: /etc/apk/keys/nextdns-failover-feed.pem
)

// makeFeedKeys writes a new usign key pair and a new EC P-256 apk key pair into dir and
// tells where the public halves go. It never overwrites a key.
func makeFeedKeys(dir string, stdout io.Writer) error {
	paths := []string{usignSecretName, usignPublicName, apkPrivateName, apkPublicName}
	for _, n := range paths {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			return fmt.Errorf("%s already exists: keys are never overwritten (move them away first)", filepath.Join(dir, n))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	sk, pk, err := usign.Generate(rand.Reader, "nextdns-failover feed key")
	if err != nil {
		return err
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{usignSecretName, sk.Marshal(), 0o600},
		{usignPublicName, pk.Marshal(), 0o644},
		{apkPrivateName, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600},
		{apkPublicName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	j := func(n string) string { return strconv.Quote(filepath.Join(dir, n)) }
	fmt.Fprintf(stdout, `New feed keys in %s (keep the two secret ones private and backed up):
  opkg (OpenWrt 24.10 and older): secret %s, public %s, fingerprint %s
      on the router: /etc/opkg/keys/%s  (the public file, named by its fingerprint)
  apk (OpenWrt 25.12): private %s, public %s
      on the router: /etc/apk/keys/%s
Build a signed feed with:
  make feed USIGN_KEY=%s APK_KEY=%s
`, dir, j(usignSecretName), j(usignPublicName), sk.Fingerprint, sk.Fingerprint,
		j(apkPrivateName), j(apkPublicName), apkPublicName, j(usignSecretName), j(apkPrivateName))
	return nil
}

// writeFileAtomic writes a file through a temporary name and a rename, so a reader (or a
// web server serving the feed) never sees half of it.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// gunzip reads a whole gzip file (Packages.gz, as opkg does after downloading it).
func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
