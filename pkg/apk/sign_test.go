package apk

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ecPoint is the SEC 1 uncompressed point 04||X||Y, what i2d_PublicKey gives.
func ecPoint(t *testing.T, k *ecdsa.PublicKey) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 65 || b[0] != 4 {
		t.Fatalf("P-256 point %x is not 65 bytes starting 04", b)
	}
	return b
}

// TestSignatureBlock checks the signature against apk-tools' definition, written
// out here independently of sign.go: block type 1 right after the ADB block;
// payload = version 0, hash 4 (SHA-512), the key id (first 16 bytes of SHA-512
// of the PKCS#1 RSA key or of the uncompressed EC point), then a signature with
// SHA-512 over: schema id "pckg" (LE), those 18 header bytes, SHA-512(ADB payload).
func TestSignatureBlock(t *testing.T) {
	ec, rs := ecKey(t), rsaKey(t)
	rawPub := map[string][]byte{
		"ecdsa": ecPoint(t, &ec.PublicKey),
		"rsa":   x509.MarshalPKCS1PublicKey(&rs.PublicKey),
	}
	for name, key := range map[string]crypto.Signer{"ecdsa": ec, "rsa": rs} {
		t.Run(name, func(t *testing.T) {
			b := write(t, samplePackage(), WithSigner(key), WithCompression(Uncompressed))
			adbLen := binary.LittleEndian.Uint32(b[8:])&0x3fffffff - 4
			adb := b[12 : 12+adbLen]
			sigAt := 8 + int(adbLen+4+7)/8*8
			word := binary.LittleEndian.Uint32(b[sigAt:])
			if word>>30 != 1 {
				t.Fatalf("block after the metadata has type %d, want 1 (signature)", word>>30)
			}
			payload := b[sigAt+4 : sigAt+int(word&0x3fffffff)]
			idSum := sha512.Sum512(rawPub[name])
			if payload[0] != 0 || payload[1] != 4 || !bytes.Equal(payload[2:18], idSum[:16]) {
				t.Fatalf("signature header %x, want 00 04 %x", payload[:18], idSum[:16])
			}
			adbSum := sha512.Sum512(adb)
			msg := append([]byte("pckg"), payload[:18]...)
			msg = append(msg, adbSum[:]...)
			digest := sha512.Sum512(msg)
			switch k := key.(type) {
			case *ecdsa.PrivateKey:
				if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], payload[18:]) {
					t.Error("ECDSA signature does not verify")
				}
			case *rsa.PrivateKey:
				if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA512, digest[:], payload[18:]); err != nil {
					t.Errorf("RSA signature does not verify: %v", err)
				}
			}
			verifyWithOpenSSL(t, key.Public(), msg, payload[18:])

			a := read(t, b)
			if err := a.VerifySignature(key.Public()); err != nil {
				t.Errorf("VerifySignature: %v", err)
			}
			if err := a.VerifySignature(ecKey(t).Public()); !errors.Is(err, ErrSignature) {
				t.Errorf("VerifySignature with another key = %v, want ErrSignature", err)
			}
			a.ADB[len(a.ADB)-1] ^= 1
			if err := a.VerifySignature(key.Public()); !errors.Is(err, ErrSignature) {
				t.Errorf("VerifySignature of altered metadata = %v, want ErrSignature", err)
			}
		})
	}
}

// verifyWithOpenSSL lets OpenSSL, which apk-tools links, check the signature of
// msg with SHA-512, when the openssl tool is installed.
func verifyWithOpenSSL(t *testing.T, pub crypto.PublicKey, msg, sig []byte) {
	t.Helper()
	tool, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed: cross-check skipped")
		return
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{
		"pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"msg":     msg,
		"sig":     sig,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(tool, "dgst", "-sha512", "-verify", filepath.Join(dir, "pub.pem"),
		"-signature", filepath.Join(dir, "sig"), filepath.Join(dir, "msg")).CombinedOutput()
	if err != nil {
		t.Errorf("openssl rejects the signature: %v: %s", err, out)
	}
}

// TestRSASignedIsReproducible: RSA PKCS#1 v1.5 signatures are deterministic, so
// a package signed with an RSA key rebuilds byte for byte (ECDSA ones do not).
func TestRSASignedIsReproducible(t *testing.T) {
	k := rsaKey(t)
	if a, b := write(t, samplePackage(), WithSigner(k)), write(t, samplePackage(), WithSigner(k)); !bytes.Equal(a, b) {
		t.Error("two RSA-signed builds differ")
	}
}

func TestParsePrivateKey(t *testing.T) {
	ec, rs := ecKey(t), rsaKey(t)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		pem     []byte
		wantPub crypto.PublicKey
	}{
		{"PKCS#8 ECDSA", pkcs8(ec), ec.Public()},
		{"PKCS#8 RSA", pkcs8(rs), rs.Public()},
		{"SEC 1 after EC PARAMETERS, as openssl ecparam writes",
			append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
				pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...), ec.Public()},
		{"PKCS#1 RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rs)}), rs.Public()},
		{"Ed25519 (apk 3.0 cannot verify it)", pkcs8(edKey), nil},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), nil},
		{"public key only", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), nil},
		{"not PEM", []byte("hello"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParsePrivateKey(c.pem)
			if c.wantPub == nil {
				if !errors.Is(err, ErrSignature) {
					t.Errorf("ParsePrivateKey = %v, want ErrSignature", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.wantPub) {
				t.Error("parsed a different key")
			}
		})
	}
}

// TestVerifyWithPublicKeyFile: the PEM public key a user puts in /etc/apk/keys
// verifies a package signed with its private half.
func TestVerifyWithPublicKeyFile(t *testing.T) {
	k := ecKey(t)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	if err := read(t, write(t, samplePackage(), WithSigner(k))).VerifySignature(pub); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
	if err := read(t, write(t, samplePackage())).VerifySignature(pub); !errors.Is(err, ErrSignature) {
		t.Errorf("VerifySignature of an unsigned package = %v, want ErrSignature", err)
	}
	if _, err := ParsePublicKey([]byte("not a key")); !errors.Is(err, ErrSignature) {
		t.Errorf("ParsePublicKey(garbage) = %v, want ErrSignature", err)
	}
}
