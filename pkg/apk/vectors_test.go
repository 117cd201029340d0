package apk

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The vectors in testdata/ were made by apk-tools 3.0.6's `apk mkpkg` (see
// testdata/README.md). Git keeps only the executable bit, so modes that are
// neither 0755 nor 0644 are listed here; the symlink is a real one in testdata.
var vectorModes = map[string]fs.FileMode{
	"03-symlink-nested/usr/lib/demo/empty": 0o600,
}

// vectorMTime is the mtime every vector input had.
var vectorMTime = time.Unix(1700000000, 0)

var vectorNames = []string{"01-minimal", "02-openwrt-service", "03-symlink-nested"}

// vectorInput rebuilds the input of a vector from its cmd.txt, root/ and scripts/.
func vectorInput(t *testing.T, name string) *Package {
	t.Helper()
	dir := filepath.Join("testdata", name)
	cmd, err := os.ReadFile(filepath.Join(dir, "cmd.txt"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Package{}
	// Values contain spaces but never " --", so the options split on it.
	for _, opt := range strings.Split(strings.TrimSpace(string(cmd)), " --")[1:] {
		flag, arg, _ := strings.Cut(opt, " ")
		key, val, _ := strings.Cut(arg, ":")
		switch flag {
		case "info":
			switch key {
			case "name":
				p.Info.Name = val
			case "version":
				p.Info.Version = val
			case "arch":
				p.Info.Arch = val
			case "description":
				p.Info.Description = val
			case "license":
				p.Info.License = val
			case "url":
				p.Info.URL = val
			case "maintainer":
				p.Info.Maintainer = val
			case "depends":
				p.Info.Depends = strings.Fields(val)
			default:
				t.Fatalf("%s: unknown info field %q", name, key)
			}
		case "script":
			body, err := os.ReadFile(filepath.Join(dir, val))
			if err != nil {
				t.Fatal(err)
			}
			switch key {
			case "post-install":
				p.Scripts.PostInstall = body
			case "pre-deinstall":
				p.Scripts.PreDeinstall = body
			default:
				t.Fatalf("%s: unknown script %q", name, key)
			}
		case "files", "output":
		default:
			t.Fatalf("%s: unknown option %q", name, flag)
		}
	}
	root := filepath.Join(dir, "root")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		f := File{Path: "/" + rel, MTime: vectorMTime}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			f.Mode = fs.ModeSymlink | 0o777
			if f.Link, err = os.Readlink(path); err != nil {
				return err
			}
		default:
			f.Mode = 0o644
			if info.Mode()&0o100 != 0 {
				f.Mode = 0o755
			}
			if m, ok := vectorModes[name+"/"+rel]; ok {
				f.Mode = m
			}
			if f.Data, err = os.ReadFile(path); err != nil {
				return err
			}
		}
		p.Files = append(p.Files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// inflateVector returns the uncompressed stream of a vector's out.apk.
func inflateVector(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name, "out.apk"))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw[:4]) != "ADBd" {
		t.Fatalf("%s: out.apk starts with %q", name, raw[:4])
	}
	b, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw[4:])))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadReproducesAdbdump: the reader finds in each vector exactly what
// apk-tools' own `apk adbdump` printed.
func TestReadReproducesAdbdump(t *testing.T) {
	for _, name := range vectorNames {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", name, "out.apk"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			a, err := Read(f)
			if err != nil {
				t.Fatal(err)
			}
			if a.Compression != Deflate {
				t.Errorf("compression = %v, want deflate", a.Compression)
			}
			want := string(readFile(t, filepath.Join("testdata", name, "adbdump.yaml")))
			if got := dump(a); got != want {
				t.Errorf("dump differs from adbdump.yaml\n--- got\n%s\n--- want\n%s", got, want)
			}
			checkUniqueID(t, a)
		})
	}
}

// checkUniqueID recomputes the unique id: the first 20 bytes of the SHA-256 of
// the metadata block with the id itself zeroed.
func checkUniqueID(t *testing.T, a *Archive) {
	t.Helper()
	i := bytes.Index(a.ADB, a.UniqueID)
	if len(a.UniqueID) != uniqueIDLen || i < 0 {
		t.Fatalf("unique id %x not found in the metadata", a.UniqueID)
	}
	zeroed := bytes.Clone(a.ADB)
	copy(zeroed[i:], make([]byte, uniqueIDLen))
	if sum := sha256.Sum256(zeroed); !bytes.Equal(sum[:uniqueIDLen], a.UniqueID) {
		t.Errorf("unique id %x, want %x", a.UniqueID, sum[:uniqueIDLen])
	}
}

// TestWriteMatchesApkMkpkg: from the same inputs, our stream is byte for byte the
// one apk mkpkg wrote (before compression), and our deflated package reads back
// to the same adbdump.
func TestWriteMatchesApkMkpkg(t *testing.T) {
	for _, name := range vectorNames {
		t.Run(name, func(t *testing.T) {
			p := vectorInput(t, name)
			var plain bytes.Buffer
			if err := Write(&plain, p, WithCompression(Uncompressed)); err != nil {
				t.Fatal(err)
			}
			want := inflateVector(t, name)
			if !bytes.Equal(plain.Bytes(), want) {
				t.Errorf("uncompressed output differs from apk mkpkg's (%d vs %d bytes); first difference at %d",
					plain.Len(), len(want), firstDiff(plain.Bytes(), want))
			}
			var packed bytes.Buffer
			if err := Write(&packed, p); err != nil {
				t.Fatal(err)
			}
			a, err := Read(&packed)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := dump(a), string(readFile(t, filepath.Join("testdata", name, "adbdump.yaml"))); got != want {
				t.Errorf("our package dumps differently\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
