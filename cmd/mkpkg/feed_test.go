package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/apk"
	"github.com/nextdns-failover/nextdns-failover/pkg/usign"
)

// TestOpkgIndexVector: our Packages for OpenWrt's vector packages equals the one OpenWrt's
// ipkg-make-index.sh and package/Makefile wrote, byte for byte (fields, order, Filename,
// Size, SHA256sum, the empty line after every stanza).
func TestOpkgIndexVector(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"hello_1.0-1_x86_64.ipk", "world_2.0-1_all.ipk"} {
		b, err := os.ReadFile(filepath.Join("testdata", "feed-vector", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, n, err := opkgIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "feed-vector", "Packages.want"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || !bytes.Equal(got, want) {
		t.Errorf("%d packages; Packages:\n%s\nwant:\n%s", n, got, want)
	}
	if err := writeFeedIndexes(dir, feedKeys{}, io.Discard); err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile(filepath.Join(dir, "Packages.gz"))
	if err != nil {
		t.Fatal(err)
	}
	wantGz, _ := os.ReadFile(filepath.Join("testdata", "feed-vector", "Packages.gz.want"))
	if plain, err := gunzip(gz); err != nil || !bytes.Equal(plain, want) {
		t.Errorf("Packages.gz does not hold Packages (%v)", err)
	}
	if !bytes.Equal(gz[:10], wantGz[:10]) {
		t.Errorf("gzip header % x, want gzip -9n's % x", gz[:10], wantGz[:10])
	}
	if _, err := os.Stat(filepath.Join(dir, "Packages.sig")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unsigned feed has a Packages.sig (%v)", err)
	}
	// Signed with the vector key: Packages.sig is usign's, byte for byte.
	keys, err := loadFeedKeys(filepath.Join("testdata", "feed-vector", "key.sec"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFeedIndexes(dir, keys, io.Discard); err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile(filepath.Join(dir, "Packages.sig"))
	wantSig, _ := os.ReadFile(filepath.Join("testdata", "feed-vector", "Packages.sig.want"))
	if !bytes.Equal(sig, wantSig) {
		t.Errorf("Packages.sig:\n%s\nwant usign's:\n%s", sig, wantSig)
	}
}

func TestOpkgStanza(t *testing.T) {
	control := "Package: x\nVersion: 1-1\nSourceDateEpoch: 1\nSource: feeds/x\nMaintainer: me\nArchitecture: all\nRequire-User: y\nDescription:  line one\n line two\n"
	got := string(opkgStanza("x_1-1_all.ipk", []byte("abc"), []byte(control)))
	want := "Package: x\nVersion: 1-1\nArchitecture: all\nFilename: x_1-1_all.ipk\nSize: 3\n" +
		"SHA256sum: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nDescription:  line one\n line two\n\n"
	if got != want {
		t.Errorf("stanza:\n%q\nwant:\n%q", got, want)
	}
}

// testFeedKeys writes a usign key and an EC key into dir, as make feed-keys does, and
// returns the paths of the secret halves.
func testFeedKeys(t *testing.T, dir string) (usignSec, apkKey string) {
	t.Helper()
	if err := makeFeedKeys(dir, io.Discard); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, usignSecretName), filepath.Join(dir, apkPrivateName)
}

// buildTestFeed writes the x86_64 packages (with a stand-in binary, so no compiler run) into
// a dist folder and runs mkpkg -feed on it, as make feed does after make packages.
func buildTestFeed(t *testing.T, usignSec, apkKey string) (feed string, s *spec) {
	t.Helper()
	dist := t.TempDir()
	files, err := loadFiles(filepath.Join("..", "..", "files"))
	if err != nil {
		t.Fatal(err)
	}
	o := &options{version: "0.1.0", release: "7", mtime: time.Unix(1700000000, 0).UTC()}
	tg, err := openwrtTarget("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	s = newSpec(o, tg, []byte("\x7fELF stand-in for the x86_64 binary\n"), files)
	if _, err := writeIPK(s, dist); err != nil {
		t.Fatal(err)
	}
	if _, err := writeAPK(s, dist, ""); err != nil {
		t.Fatal(err)
	}
	feed = filepath.Join(t.TempDir(), "feed")
	args := []string{"-feed", feed, "-out", dist, "-format", "ipk,apk", "-version", "0.1.0", "-release", "7", "-arch", "x86_64"}
	if usignSec != "" {
		args = append(args, "-usign-key", usignSec, "-index-key", apkKey)
	}
	var out bytes.Buffer
	if err := run(args, &out, &out); err != nil {
		t.Fatalf("mkpkg %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("mkpkg -feed:\n%s", out.String())
	return feed, s
}

// stanzas splits Packages into field maps.
func stanzas(t *testing.T, b []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	for st := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n\n"), "\n\n") {
		m, err := parseControl([]byte(st))
		if err != nil {
			t.Fatalf("Packages: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// TestFeedWalk builds a signed x86_64 feed and walks it as a router does, with this
// project's own readers: opkg (Packages.gz, Packages.sig with the key from
// /etc/opkg/keys/<fingerprint>, Filename, Size, SHA256sum, the package's contents) and apk
// (packages.adb, its signature with /etc/apk/keys/<name>.pem, <name>-<version>.apk, the
// hash of its ADB block, its contents). A rebuild gives the same bytes; tampering is refused.
func TestFeedWalk(t *testing.T) {
	keys := t.TempDir()
	usignSec, apkKey := testFeedKeys(t, keys)
	feed, s := buildTestFeed(t, usignSec, apkKey)
	dir := filepath.Join(feed, "x86_64")
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// opkg: `opkg update` downloads Packages.gz and Packages.sig and checks the signature
	// over the uncompressed list with the key named by the signature's fingerprint.
	pubFile, err := os.ReadFile(filepath.Join(keys, usignPublicName))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := usign.ParsePublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	list, err := gunzip(read("Packages.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sig := read("Packages.sig")
	if fp, err := usign.SignatureFingerprint(sig); err != nil || fp != pub.Fingerprint {
		t.Fatalf("Packages.sig names key %s (%v), /etc/opkg/keys holds %s", fp, err, pub.Fingerprint)
	}
	if err := usign.Verify(pub, list, sig); err != nil {
		t.Fatalf("opkg update: %v", err)
	}
	if !bytes.Equal(list, read("Packages")) {
		t.Error("Packages.gz and Packages differ")
	}
	bad := bytes.Replace(list, []byte("Version: 0.1.0-7"), []byte("Version: 0.1.0-8"), 1)
	if err := usign.Verify(pub, bad, sig); !errors.Is(err, usign.ErrVerify) {
		t.Errorf("edited list accepted: %v", err)
	}
	st := stanzas(t, list)
	if len(st) != 1 || st[0]["Package"] != pkgName || st[0]["Version"] != "0.1.0-7" || st[0]["Architecture"] != "x86_64" {
		t.Fatalf("Packages stanzas %v", st)
	}
	for _, f := range []string{"Maintainer", "SourceDateEpoch"} {
		if _, ok := st[0][f]; ok {
			t.Errorf("Packages keeps %s, which OpenWrt's index strips", f)
		}
	}
	// opkg install: download Filename, check Size and SHA256sum, then unpack.
	ipkRaw := read(st[0]["Filename"])
	sum := sha256.Sum256(ipkRaw)
	if st[0]["Size"] != strconv.Itoa(len(ipkRaw)) || st[0]["SHA256sum"] != hex.EncodeToString(sum[:]) {
		t.Errorf("index says %s bytes, %s; file has %d, %x", st[0]["Size"], st[0]["SHA256sum"], len(ipkRaw), sum)
	}
	if err := verifyIPK(filepath.Join(dir, st[0]["Filename"]), s); err != nil {
		t.Errorf("installed contents: %v", err)
	}

	// apk: `apk update` reads packages.adb and trusts it through /etc/apk/keys/*.pem.
	pemPub, err := os.ReadFile(filepath.Join(keys, apkPublicName))
	if err != nil {
		t.Fatal(err)
	}
	apub, err := apk.ParsePublicKey(pemPub)
	if err != nil {
		t.Fatal(err)
	}
	x, err := apk.ReadIndex(bytes.NewReader(read("packages.adb")))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.VerifySignature(apub); err != nil {
		t.Fatalf("apk update: %v", err)
	}
	e, ok := x.Lookup(pkgName)
	if !ok || e.Info.Version != "0.1.0-r7" || e.Info.Arch != "x86_64" {
		t.Fatalf("index entry %+v, %v", e, ok)
	}
	// apk add: download <name>-<version>.apk, check its ADB block's hash, then unpack.
	apkPath := filepath.Join(dir, e.FileName())
	apkRaw, err := os.ReadFile(apkPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := apk.Read(bytes.NewReader(apkRaw))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Matches(a) || e.FileSize != uint64(len(apkRaw)) || e.InstalledSize != a.InstalledSize {
		t.Errorf("package does not match its index entry")
	}
	if err := verifyAPK(apkPath, s, ""); err != nil {
		t.Errorf("installed contents: %v", err)
	}
	for _, conf := range []string{configPath, binaryPath} {
		if _, ok := a.Lookup(conf); !ok {
			t.Errorf("apk lacks %s", conf)
		}
	}

	// Same packages, same keys: byte-identical feed.
	again, _ := buildTestFeed(t, usignSec, apkKey)
	for _, n := range []string{"Packages", "Packages.gz", "Packages.sig", "packages.adb", ipkFileName(s), e.FileName()} {
		b, err := os.ReadFile(filepath.Join(again, "x86_64", n))
		if err != nil || !bytes.Equal(b, read(n)) {
			t.Errorf("%s differs on rebuild (%v)", n, err)
		}
	}
}

// TestFeedUnsigned: without keys the indexes are there and unsigned; with another key
// the signatures do not verify.
func TestFeedUnsigned(t *testing.T) {
	feed, _ := buildTestFeed(t, "", "")
	dir := filepath.Join(feed, "x86_64")
	if _, err := os.Stat(filepath.Join(dir, "Packages.sig")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Packages.sig in an unsigned feed (%v)", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "packages.adb"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := apk.ReadIndex(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if len(x.Signatures) != 0 || x.VerifySignature(&other.PublicKey) == nil {
		t.Error("unsigned index verifies")
	}
}

func TestFeedKeysNeverOverwritten(t *testing.T) {
	dir := t.TempDir()
	if err := makeFeedKeys(dir, io.Discard); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, usignSecretName))
	if err := makeFeedKeys(dir, io.Discard); err == nil {
		t.Fatal("second makeFeedKeys succeeded")
	}
	after, _ := os.ReadFile(filepath.Join(dir, usignSecretName))
	if !bytes.Equal(before, after) {
		t.Error("secret key overwritten")
	}
	fi, err := os.Stat(filepath.Join(dir, apkPrivateName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v (%v)", fi.Mode(), err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, apkPrivateName))
	blk, _ := pem.Decode(b)
	if _, err := x509.ParseECPrivateKey(blk.Bytes); err != nil {
		t.Error(err)
	}
}
