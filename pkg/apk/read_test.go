package apk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReadRejectsDamage: a package whose bytes were altered after writing is
// refused, as apk refuses it, rather than installing wrong contents.
func TestReadRejectsDamage(t *testing.T) {
	p := &Package{Info: Info{Name: "x", Version: "1.0-r1", Arch: "x86_64"},
		Files: []File{
			{Path: "/a", Mode: 0o644, Data: []byte("first file")},
			{Path: "/b", Mode: 0o644, Data: []byte("second file")},
		}}
	good := write(t, p, WithCompression(Uncompressed))
	a := read(t, good)
	adbEnd := 8 + 4 + len(a.ADB) // magic+schema, block header, payload (already 8-aligned here? see below)
	adbEnd += (8 - (4+len(a.ADB))%8) % 8
	firstData := adbEnd
	secondData := firstData + 4 + 8 + len("first file")
	secondData += (8 - (4+8+len("first file"))%8) % 8

	cases := []struct {
		name   string
		damage func(b []byte) []byte
		want   error
	}{
		{"not a package", func(b []byte) []byte { return []byte("!<arch>\n") }, ErrFormat},
		{"zstd compression", func(b []byte) []byte { return append([]byte("ADBc\x02\x03"), b[4:]...) }, ErrFormat},
		{"index schema", func(b []byte) []byte { copy(b[4:], "indx"); return b }, ErrFormat},
		{"file contents changed", func(b []byte) []byte { b[firstData+12] ^= 1; return b }, ErrCorrupt},
		{"data block missing", func(b []byte) []byte { return b[:secondData] }, ErrCorrupt},
		{"truncated mid-block", func(b []byte) []byte { return b[:secondData+6] }, ErrCorrupt},
		{"data blocks swapped", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[secondData+8:], 1) // second block now claims file 1
			return b
		}, ErrCorrupt},
		{"metadata offset out of range", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16:], 0xe0fffff0) // root object far past the end
			return b
		}, ErrCorrupt},
		{"data before metadata", func(b []byte) []byte {
			return append(append(bytes.Clone(b[:8]), b[firstData:secondData]...), b[8:firstData]...)
		}, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.damage(bytes.Clone(good))))
			if !errors.Is(err, c.want) {
				t.Errorf("Read = %v, want %v", err, c.want)
			}
		})
	}
}

// FuzzRead: no input makes the reader panic or loop; what it accepts it
// accepts consistently. The seeds (the vectors and our own output) run as
// ordinary unit tests.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"01-minimal", "02-openwrt-service", "03-symlink-nested"} {
		b, err := os.ReadFile(filepath.Join("testdata", name, "out.apk"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	small := samplePackage()
	small.Files[0].Data = []byte("small enough for the fuzzer to mutate quickly")
	var plain bytes.Buffer
	if err := Write(&plain, small, WithCompression(Uncompressed)); err != nil {
		f.Fatal(err)
	}
	f.Add(plain.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if _, err := Read(bytes.NewReader(b)); err != nil {
			t.Fatalf("second read failed: %v", err)
		}
		_ = a.Paths()
	})
}
