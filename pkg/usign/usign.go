// Package usign reads, writes and checks OpenWrt usign files (the Ed25519 keys and
// signatures that opkg uses to trust a feed's Packages index), byte-compatible with
// usign itself: two text lines, an "untrusted comment: " line and one line of
// standard base64 of a fixed binary block.
//
//	public key  (42 bytes): "Ed" | fingerprint(8) | Ed25519 public key(32)
//	secret key (104 bytes): "Ed" | "BK" | kdfrounds u32 | salt(16) | checksum(8) | fingerprint(8) | seed(32) | public(32)
//	signature   (74 bytes): "Ed" | fingerprint(8) | Ed25519 signature(64)
//
// The signature is plain RFC 8032 Ed25519 over the message bytes, so signing is
// deterministic. Passphrase-protected secret keys (kdfrounds > 0) are refused.
package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrFormat reports a file that is not a usign key or signature of the expected kind.
var ErrFormat = errors.New("usign: bad file")

// ErrVerify reports a signature that does not verify, or one made by another key.
var ErrVerify = errors.New("usign: verification failed")

const (
	pubLen = 2 + 8 + ed25519.PublicKeySize
	secLen = 2 + 2 + 4 + 16 + 8 + 8 + 64
	sigLen = 2 + 8 + ed25519.SignatureSize
)

// Fingerprint is a key's 8-byte id; its String is what `usign -F` prints and the file
// name of the key under /etc/opkg/keys.
type Fingerprint [8]byte

// String returns the 16 lowercase hex digits.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// PublicKey is a usign public key.
type PublicKey struct {
	Fingerprint Fingerprint
	Key         ed25519.PublicKey
	Comment     string
}

// SecretKey is an unencrypted usign secret key.
type SecretKey struct {
	Fingerprint Fingerprint
	Key         ed25519.PrivateKey
	Comment     string
	salt        [16]byte
}

// Public returns the matching public key, with the same comment.
func (s *SecretKey) Public() *PublicKey {
	return &PublicKey{Fingerprint: s.Fingerprint, Key: s.Key.Public().(ed25519.PublicKey), Comment: s.Comment}
}

// decode splits a usign file into its comment and binary block of length n.
func decode(what string, b []byte, n int) (string, []byte, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "untrusted comment: ") {
		return "", nil, fmt.Errorf("%w: %s: want an \"untrusted comment: \" line and a base64 line", ErrFormat, what)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[1]))
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s: line 2: %v", ErrFormat, what, err)
	}
	if len(raw) != n {
		return "", nil, fmt.Errorf("%w: %s: line 2 holds %d bytes, want %d", ErrFormat, what, len(raw), n)
	}
	if string(raw[:2]) != "Ed" {
		return "", nil, fmt.Errorf("%w: %s: algorithm %q, want \"Ed\"", ErrFormat, what, raw[:2])
	}
	return strings.TrimPrefix(lines[0], "untrusted comment: "), raw, nil
}

func encode(comment string, raw []byte) []byte {
	return []byte("untrusted comment: " + comment + "\n" + base64.StdEncoding.EncodeToString(raw) + "\n")
}

// ParsePublicKey reads a public key file (key.pub, /etc/opkg/keys/<fingerprint>).
func ParsePublicKey(b []byte) (*PublicKey, error) {
	c, raw, err := decode("public key", b, pubLen)
	if err != nil {
		return nil, err
	}
	p := &PublicKey{Comment: c, Key: ed25519.PublicKey(raw[10:])}
	copy(p.Fingerprint[:], raw[2:10])
	return p, nil
}

// Marshal writes the public key file.
func (p *PublicKey) Marshal() []byte {
	return encode(p.Comment, concat([]byte("Ed"), p.Fingerprint[:], p.Key))
}

// ParseSecretKey reads an unencrypted secret key file and checks its checksum.
func ParseSecretKey(b []byte) (*SecretKey, error) {
	c, raw, err := decode("secret key", b, secLen)
	if err != nil {
		return nil, err
	}
	if string(raw[2:4]) != "BK" {
		return nil, fmt.Errorf("%w: secret key: kdf %q, want \"BK\"", ErrFormat, raw[2:4])
	}
	if binary.BigEndian.Uint32(raw[4:8]) != 0 {
		return nil, fmt.Errorf("%w: secret key is protected by a passphrase; make one without (usign -G, or make feed-keys)", ErrFormat)
	}
	sk := raw[40:104]
	if sum := sha512.Sum512(sk); !bytes.Equal(sum[:8], raw[24:32]) {
		return nil, fmt.Errorf("%w: secret key: checksum mismatch", ErrFormat)
	}
	key := ed25519.NewKeyFromSeed(sk[:32])
	if !bytes.Equal(key[32:], sk[32:]) {
		return nil, fmt.Errorf("%w: secret key: public half does not match the seed", ErrFormat)
	}
	s := &SecretKey{Comment: c, Key: key}
	copy(s.salt[:], raw[8:24])
	copy(s.Fingerprint[:], raw[32:40])
	return s, nil
}

// Marshal writes the secret key file (unencrypted, kdfrounds 0).
func (s *SecretKey) Marshal() []byte {
	sk := []byte(s.Key)
	sum := sha512.Sum512(sk)
	return encode(s.Comment, concat([]byte("EdBK"), make([]byte, 4), s.salt[:], sum[:8], s.Fingerprint[:], sk))
}

// Generate makes a new key pair as `usign -G` does: a random fingerprint, a clamped
// random seed, a random salt. An empty comment becomes "private key <fp>" and
// "public key <fp>", usign's defaults.
func Generate(random io.Reader, comment string) (*SecretKey, *PublicKey, error) {
	if random == nil {
		random = rand.Reader
	}
	var buf [8 + 32 + 16]byte
	if _, err := io.ReadFull(random, buf[:]); err != nil {
		return nil, nil, err
	}
	seed := buf[8:40]
	seed[0] &= 0xf8
	seed[31] = seed[31]&0x7f | 0x40
	s := &SecretKey{Key: ed25519.NewKeyFromSeed(seed)}
	copy(s.Fingerprint[:], buf[:8])
	copy(s.salt[:], buf[40:])
	p := s.Public()
	s.Comment, p.Comment = comment, comment
	if comment == "" {
		s.Comment, p.Comment = "private key "+s.Fingerprint.String(), "public key "+s.Fingerprint.String()
	}
	return s, p, nil
}

// Sign returns the signature file for msg, as `usign -S -m FILE -s KEY` writes it
// (comment "signed by key <fingerprint>").
func Sign(s *SecretKey, msg []byte) []byte {
	sig := ed25519.Sign(s.Key, msg)
	return encode("signed by key "+s.Fingerprint.String(), concat([]byte("Ed"), s.Fingerprint[:], sig))
}

// SignatureFingerprint returns the fingerprint of the key that made a signature
// file (`usign -F -x`), so a caller can pick the key from a keys folder.
func SignatureFingerprint(sigFile []byte) (Fingerprint, error) {
	var f Fingerprint
	_, raw, err := decode("signature", sigFile, sigLen)
	if err != nil {
		return f, err
	}
	copy(f[:], raw[2:10])
	return f, nil
}

// Verify checks a signature file over msg with one public key, as
// `usign -V -m FILE -p KEY` does: the fingerprints must match and the Ed25519
// signature must verify.
func Verify(p *PublicKey, msg, sigFile []byte) error {
	_, raw, err := decode("signature", sigFile, sigLen)
	if err != nil {
		return err
	}
	if !bytes.Equal(raw[2:10], p.Fingerprint[:]) {
		return fmt.Errorf("%w: signed by key %x, not by %s", ErrVerify, raw[2:10], p.Fingerprint)
	}
	if len(p.Key) != ed25519.PublicKeySize || !ed25519.Verify(p.Key, msg, raw[10:]) {
		return fmt.Errorf("%w: signature by key %s does not match the data", ErrVerify, p.Fingerprint)
	}
	return nil
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
