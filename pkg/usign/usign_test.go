package usign

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectorSignature: our signature of the vector Packages with the vector secret key
// is the vector Packages.sig byte for byte.
func TestVectorSignature(t *testing.T) {
	sk, err := ParseSecretKey(read(t, "key.sec"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sk.Fingerprint.String(); got != "ba447ea41ed9cbfd" {
		t.Errorf("fingerprint %s, want ba447ea41ed9cbfd", got)
	}
	if got, want := Sign(sk, read(t, "Packages")), read(t, "Packages.sig"); !bytes.Equal(got, want) {
		t.Errorf("signature:\n%s\nwant:\n%s", got, want)
	}
	if got, want := sk.Marshal(), read(t, "key.sec"); !bytes.Equal(got, want) {
		t.Errorf("secret key re-encoded:\n%s\nwant:\n%s", got, want)
	}
	if got, want := sk.Public().Marshal(), read(t, "key.pub"); !bytes.Equal(got, want) {
		t.Errorf("public half:\n%s\nwant key.pub:\n%s", got, want)
	}
}

// TestVerifyVector: the verifier accepts usign's signature and refuses a one-byte change of
// the data, of the signature, and a signature by another key.
func TestVerifyVector(t *testing.T) {
	pub, err := ParsePublicKey(read(t, "key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	msg, sig := read(t, "Packages"), read(t, "Packages.sig")
	if err := Verify(pub, msg, sig); err != nil {
		t.Fatalf("vector signature refused: %v", err)
	}
	if fp, err := SignatureFingerprint(sig); err != nil || fp != pub.Fingerprint {
		t.Errorf("SignatureFingerprint = %s, %v", fp, err)
	}
	for i := range msg {
		bad := bytes.Clone(msg)
		bad[i] ^= 1
		if err := Verify(pub, bad, sig); !errors.Is(err, ErrVerify) {
			t.Fatalf("byte %d of Packages flipped: err %v, want ErrVerify", i, err)
		}
	}
	// Version 1.0-1 -> 1.0-2, the vectors' edited-regzipped case.
	edited := bytes.Replace(msg, []byte("Version: 1.0-1"), []byte("Version: 1.0-2"), 1)
	if err := Verify(pub, edited, sig); !errors.Is(err, ErrVerify) {
		t.Errorf("edited Packages: err %v, want ErrVerify", err)
	}
	// A flipped bit anywhere in the signature's binary block fails (the base64 line is
	// re-encoded so the change is one byte of the block, not a decoding error).
	_, raw, _ := decode("signature", sig, sigLen)
	for i := 2; i < len(raw); i++ {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x80
		if err := Verify(pub, msg, encode("x", bad)); !errors.Is(err, ErrVerify) {
			t.Fatalf("signature byte %d flipped: err %v, want ErrVerify", i, err)
		}
	}
	if err := Verify(pub, msg, read(t, "wrong-key.sig")); !errors.Is(err, ErrVerify) {
		t.Errorf("signature by another key: err %v, want ErrVerify", err)
	}
	other, err := ParsePublicKey(read(t, "other-key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(other, msg, sig); !errors.Is(err, ErrVerify) {
		t.Errorf("vector signature with the other key: err %v, want ErrVerify", err)
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	sk, pk, err := Generate(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if pk.Comment != "public key "+sk.Fingerprint.String() {
		t.Errorf("comment %q", pk.Comment)
	}
	sk2, err := ParseSecretKey(sk.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	pk2, err := ParsePublicKey(pk.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Package: x\n\n")
	sig := Sign(sk2, msg)
	if !bytes.Equal(sig, Sign(sk, msg)) {
		t.Error("signing is not deterministic")
	}
	if err := Verify(pk2, msg, sig); err != nil {
		t.Error(err)
	}
}

func TestParseErrors(t *testing.T) {
	for name, b := range map[string]string{
		"empty":      "",
		"one line":   "untrusted comment: x\n",
		"bad base64": "untrusted comment: x\n!!!\n",
		"short":      "untrusted comment: x\nRWQ=\n",
	} {
		if _, err := ParsePublicKey([]byte(name + b)[len(name):]); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
	if _, err := ParseSecretKey(read(t, "key.pub")); !errors.Is(err, ErrFormat) {
		t.Errorf("public key as secret: err %v", err)
	}
}
