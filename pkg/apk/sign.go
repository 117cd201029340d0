package apk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
)

// maxSignatureLen is apk-tools' ADB_MAX_SIGNATURE_LEN: a larger signature block
// does not fit apk's buffer (an RSA key of more than 16000 bits).
const maxSignatureLen = 2048

// sigHeaderLen is struct adb_sign_v0 without the signature: version, hash
// algorithm and the 16-byte key id.
const sigHeaderLen = 18

// Signature is one signature block: apk tries every trusted key whose id matches.
type Signature struct {
	HashAlg uint8    // 4: SHA-512, the only one v3 uses
	KeyID   [16]byte // first 16 bytes of the SHA-512 of the public key (see KeyID)
	Sig     []byte   // PKCS#1 v1.5 (RSA) or ASN.1 DER (ECDSA) over the signed message
}

// ParsePrivateKey reads a PEM private key, RSA or ECDSA, in PKCS#8, PKCS#1 or
// SEC 1 form (what `openssl genrsa`, `openssl ecparam -genkey` and
// `openssl genpkey` write). Encrypted keys are not supported.
func ParsePrivateKey(pemData []byte) (crypto.Signer, error) {
	for rest := pemData; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%w: no PEM private key found", ErrSignature)
		}
		var key any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: encrypted private keys are not supported", ErrSignature)
		default:
			continue // e.g. the "EC PARAMETERS" block openssl ecparam writes first
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrSignature, blk.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("%w: %T keys are not supported (use RSA or ECDSA)", ErrSignature, key)
	}
}

// ParsePublicKey reads a PEM public key ("PUBLIC KEY", as in /etc/apk/keys).
func ParsePublicKey(pemData []byte) (crypto.PublicKey, error) {
	for rest := pemData; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%w: no PEM public key found", ErrSignature)
		}
		if blk.Type != "PUBLIC KEY" {
			continue
		}
		key, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSignature, err)
		}
		return key, nil
	}
}

// KeyID returns the id apk uses to pick a key: the first 16 bytes of the SHA-512
// of the raw public key, i.e. OpenSSL's i2d_PublicKey (PKCS#1 RSAPublicKey for
// RSA, the uncompressed point for ECDSA).
func KeyID(pub crypto.PublicKey) ([16]byte, error) {
	var raw []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		raw = x509.MarshalPKCS1PublicKey(k)
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			return [16]byte{}, fmt.Errorf("%w: %v", ErrSignature, err)
		}
		raw = e.Bytes()
	default:
		return [16]byte{}, fmt.Errorf("%w: %T keys are not supported (use RSA or ECDSA)", ErrSignature, pub)
	}
	sum := sha512.Sum512(raw)
	var id [16]byte
	copy(id[:], sum[:])
	return id, nil
}

// signedDigest is what a v0 signature covers: SHA-512 over the schema id
// (little-endian), the 18-byte signature header and the SHA-512 of the ADB block.
func signedDigest(schema uint32, hdr, adb []byte) []byte {
	adbSum := sha512.Sum512(adb)
	msg := concat(binary.LittleEndian.AppendUint32(nil, schema), hdr, adbSum[:])
	sum := sha512.Sum512(msg)
	return sum[:]
}

// sign returns the payload of a signature block over the ADB block adb of a
// stream with the given schema. ECDSA signatures are deterministic (RFC 6979:
// the nonce derives from the key and the digest), so a signed package or index
// is byte-identical on rebuild; RSA PKCS#1 v1.5 signatures are deterministic anyway.
func sign(s crypto.Signer, schema uint32, adb []byte) ([]byte, error) {
	id, err := KeyID(s.Public())
	if err != nil {
		return nil, err
	}
	hdr := append([]byte{0, digestSHA512}, id[:]...)
	var random io.Reader = rand.Reader
	if _, ok := s.(*ecdsa.PrivateKey); ok {
		random = nil // crypto/ecdsa: a nil Reader selects RFC 6979
	}
	sig, err := s.Sign(random, signedDigest(schema, hdr, adb), crypto.SHA512)
	if err != nil {
		return nil, fmt.Errorf("%w: signing: %v", ErrSignature, err)
	}
	if len(hdr)+len(sig) > maxSignatureLen {
		return nil, fmt.Errorf("%w: signature of %d bytes exceeds apk's %d", ErrSignature, len(sig), maxSignatureLen-sigHeaderLen)
	}
	return append(hdr, sig...), nil
}

// VerifySignature checks that one of the package's signature blocks verifies
// with pub, as apk does with the keys in /etc/apk/keys.
func (a *Archive) VerifySignature(pub crypto.PublicKey) error {
	return verifySignatures(a.Signatures, schemaPackage, a.ADB, pub)
}

// verifySignatures checks that one of sigs, over the ADB block adb of a stream
// with the given schema, verifies with pub.
func verifySignatures(sigs []Signature, schema uint32, adb []byte, pub crypto.PublicKey) error {
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: not signed", ErrSignature)
	}
	for _, s := range sigs {
		if s.KeyID != id || s.HashAlg != digestSHA512 {
			continue
		}
		hdr := append([]byte{0, s.HashAlg}, s.KeyID[:]...)
		digest := signedDigest(schema, hdr, adb)
		switch k := pub.(type) {
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(k, crypto.SHA512, digest, s.Sig) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if ecdsa.VerifyASN1(k, digest, s.Sig) {
				return nil
			}
		}
		return fmt.Errorf("%w: signature by key %x does not verify", ErrSignature, id)
	}
	return fmt.Errorf("%w: no signature by key %x", ErrSignature, id)
}
