package apk

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func indexFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "index", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlPackages reads the packages of `apk adbdump packages.adb` as "field: value" lines
// per package (lists as comma-joined values).
func yamlPackages(t *testing.T, b []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	var list string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "  - "):
			out = append(out, map[string]string{})
			line = "    " + line[4:]
		case strings.HasPrefix(line, "      - ") && len(out) > 0:
			m := out[len(out)-1]
			m[list] = strings.TrimPrefix(m[list]+","+line[8:], ",")
			continue
		}
		if !strings.HasPrefix(line, "    ") || len(out) == 0 {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "#") {
			list, v = k, ""
		}
		out[len(out)-1][k] = v
	}
	return out
}

func entryFields(e *IndexEntry) map[string]string {
	m := map[string]string{
		"name": e.Info.Name, "version": e.Info.Version, "hashes": hex.EncodeToString(e.Hashes),
		"description": e.Info.Description, "arch": e.Info.Arch, "license": e.Info.License,
		"installed-size": fmt.Sprint(e.InstalledSize), "file-size": fmt.Sprint(e.FileSize),
	}
	if len(e.Info.Depends) > 0 {
		m["depends"] = strings.Join(e.Info.Depends, ",")
	}
	return m
}

func vectorKeys(t *testing.T) (*ecdsa.PrivateKey, *ecdsa.PublicKey) {
	t.Helper()
	s, err := ParsePrivateKey(indexFile(t, "private-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublicKey(indexFile(t, "public-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return s.(*ecdsa.PrivateKey), p.(*ecdsa.PublicKey)
}

func vectorEntries(t *testing.T) []IndexEntry {
	t.Helper()
	var es []IndexEntry
	for _, name := range []string{"world-2.0-r1.apk", "hello-1.0-r1.apk"} { // unsorted on purpose
		raw := indexFile(t, name)
		a, err := Read(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		es = append(es, NewIndexEntry(a, int64(len(raw))))
	}
	return es
}

// TestIndexVector: our index of the vector packages reads back to the fields of apk's
// adbdump of the vector index, its signature verifies with the vector public key, and
// its ADB block (what the signature covers) equals apk mkndx's byte for byte.
func TestIndexVector(t *testing.T) {
	priv, pub := vectorKeys(t)
	var buf bytes.Buffer
	if err := WriteIndex(&buf, vectorEntries(t), IndexSigner(priv)); err != nil {
		t.Fatal(err)
	}
	x, err := ReadIndex(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := yamlPackages(t, indexFile(t, "packages.adb.yaml"))
	if len(x.Packages) != len(want) || len(want) != 2 {
		t.Fatalf("%d packages, yaml has %d", len(x.Packages), len(want))
	}
	for i := range want {
		got := entryFields(&x.Packages[i])
		if fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Errorf("package %d:\n got %v\nwant %v", i, got, want[i])
		}
	}
	if err := x.VerifySignature(pub); err != nil {
		t.Errorf("our signature: %v", err)
	}
	theirs, err := ReadIndex(bytes.NewReader(indexFile(t, "packages.adb")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.ADB, theirs.ADB) {
		t.Errorf("ADB block differs from apk mkndx's:\n got %x\nwant %x", x.ADB, theirs.ADB)
	}
	if len(x.Signatures) != 1 || x.Signatures[0].KeyID != theirs.Signatures[0].KeyID {
		t.Errorf("signature key ids %v, want apk's %x", x.Signatures, theirs.Signatures[0].KeyID)
	}
	var again bytes.Buffer
	if err := WriteIndex(&again, vectorEntries(t), IndexSigner(priv)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("signed index differs on rebuild (RFC 6979 should make it deterministic)")
	}
}

// TestReadIndexVector: apk's own index reads, verifies with its key, and every
// negative vector is refused, as apk refuses them.
func TestReadIndexVector(t *testing.T) {
	_, pub := vectorKeys(t)
	x, err := ReadIndex(bytes.NewReader(indexFile(t, "packages.adb")))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.VerifySignature(pub); err != nil {
		t.Fatalf("vector index: %v", err)
	}
	hello, ok := x.Lookup("hello")
	if !ok || hello.FileName() != "hello-1.0-r1.apk" {
		t.Fatalf("hello: %v %v", hello, ok)
	}
	a, err := Read(bytes.NewReader(indexFile(t, "hello-1.0-r1.apk")))
	if err != nil || !hello.Matches(a) {
		t.Errorf("hello-1.0-r1.apk does not match its index entry (%v)", err)
	}
	if w, _ := Read(bytes.NewReader(indexFile(t, "world-2.0-r1.apk"))); hello.Matches(w) {
		t.Error("world matches hello's entry")
	}
	other, err := ParsePublicKey(indexFile(t, "other-public-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.VerifySignature(other); !errors.Is(err, ErrSignature) {
		t.Errorf("vector index with another key: %v", err)
	}
	for _, c := range []string{"flip-byte", "edited-recompressed", "wrong-key", "unsigned"} {
		x, err := ReadIndex(bytes.NewReader(indexFile(t, c+".adb")))
		if err == nil {
			err = x.VerifySignature(pub)
		}
		if err == nil {
			t.Errorf("%s: accepted", c)
		}
	}
	// Every single-byte change of the compressed file is refused, unless it only touches
	// the unused bits after the end of the deflate stream (then the content is the same).
	raw := indexFile(t, "packages.adb")
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		y, err := ReadIndex(bytes.NewReader(bad))
		if err == nil {
			err = y.VerifySignature(pub)
		}
		if err == nil && (!bytes.Equal(y.ADB, x.ADB) || !bytes.Equal(y.Signatures[0].Sig, x.Signatures[0].Sig)) {
			t.Errorf("byte %d flipped: changed content accepted", i)
		}
	}
}

func TestIndexUnsigned(t *testing.T) {
	_, pub := vectorKeys(t)
	var buf bytes.Buffer
	if err := WriteIndex(&buf, vectorEntries(t), IndexDescription("test feed"), IndexCompression(Uncompressed)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("ADB.indx")) {
		t.Errorf("uncompressed index starts %q", buf.Bytes()[:8])
	}
	x, err := ReadIndex(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if x.Description != "test feed" || len(x.Packages) != 2 {
		t.Errorf("read back %q, %d packages", x.Description, len(x.Packages))
	}
	if err := x.VerifySignature(pub); !errors.Is(err, ErrSignature) {
		t.Errorf("unsigned index: %v, want ErrSignature", err)
	}
	if _, err := ReadIndex(bytes.NewReader(indexFile(t, "hello-1.0-r1.apk"))); !errors.Is(err, ErrFormat) {
		t.Errorf("package read as index: %v, want ErrFormat", err)
	}
}
