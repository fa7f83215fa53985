package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentctx/agentctx/internal/jws"
)

// SigningKey is a private key with its key ID and algorithm. Its String and
// GoString methods never print key material.
type SigningKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

// NewSigningKey wraps a P-256 *ecdsa.PrivateKey (ES256) or an
// ed25519.PrivateKey (EdDSA). An empty kid becomes the RFC 7638 thumbprint of
// the public key.
func NewSigningKey(priv crypto.Signer, kid string) (*SigningKey, error) {
	alg, err := algFor(priv.Public())
	if err != nil {
		return nil, err
	}
	if err := keyPairMatches(priv); err != nil {
		return nil, err
	}
	if kid == "" {
		if kid, err = Thumbprint(priv.Public()); err != nil {
			return nil, err
		}
	}
	return &SigningKey{kid: kid, alg: alg, priv: priv}, nil
}

// keyPairMatches refuses a private key whose public half is not the one its
// private scalar or seed gives (a JWK whose "x"/"y" were swapped for another
// key's): every token it signed would fail to verify under the key it names.
func keyPairMatches(priv crypto.Signer) error {
	bad := errors.New("the private key does not match its public key (a JWK whose x/y belong to another key?)")
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.ECDH()
		if err != nil {
			return bad
		}
		q, err := k.PublicKey.ECDH()
		if err != nil || !d.PublicKey().Equal(q) {
			return bad
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize || !ed25519.NewKeyFromSeed(k.Seed()).Public().(ed25519.PublicKey).Equal(k.Public()) {
			return bad
		}
	}
	return nil
}

// GenerateKey creates a new signing key for alg ("ES256" or "EdDSA").
func GenerateKey(alg, kid string) (*SigningKey, error) {
	switch alg {
	case jws.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return NewSigningKey(k, kid)
	case jws.EdDSA, jws.Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return NewSigningKey(k, kid)
	}
	return nil, fmt.Errorf("unsupported algorithm %q (ES256, EdDSA)", alg)
}

// KeyID returns the key ID written in the kid header of tokens this key signs.
func (k *SigningKey) KeyID() string { return k.kid }

// Alg returns "ES256" or "EdDSA".
func (k *SigningKey) Alg() string { return k.alg }

// Public returns the public half as a trusted Key.
func (k *SigningKey) Public() Key { return Key{KeyID: k.kid, Alg: k.alg, Public: k.priv.Public()} }

// Signer returns the underlying crypto.Signer.
func (k *SigningKey) Signer() crypto.Signer { return k.priv }

// String describes the key without its secret.
func (k *SigningKey) String() string { return fmt.Sprintf("SigningKey(%s, kid=%q)", k.alg, k.kid) }

// GoString describes the key without its secret.
func (k *SigningKey) GoString() string { return k.String() }

// MarshalJWK returns the private JWK (with kid and alg). Handle with care.
func (k *SigningKey) MarshalJWK() ([]byte, error) {
	j := jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
	return j.MarshalJSON()
}

// ParseSigningKey parses a private key from a JWK or from PEM (PKCS#8
// "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"). kid overrides the key ID; when both
// are empty the thumbprint is used.
func ParseSigningKey(data []byte, kid string) (*SigningKey, error) {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "{") {
		var j jose.JSONWebKey
		if err := j.UnmarshalJSON([]byte(trimmed)); err != nil {
			return nil, errors.New("invalid private JWK") // never echo key material
		}
		if j.IsPublic() {
			return nil, errors.New("the JWK holds a public key; a private key is needed to sign")
		}
		signer, ok := j.Key.(crypto.Signer)
		if !ok {
			return nil, errors.New("unsupported private JWK type")
		}
		if kid == "" {
			kid = j.KeyID
		}
		sk, err := NewSigningKey(signer, kid)
		if err != nil {
			return nil, err
		}
		if j.Algorithm != "" && j.Algorithm != sk.alg && !(j.Algorithm == jws.Ed25519 && sk.alg == jws.EdDSA) {
			return nil, fmt.Errorf("JWK alg %q does not match its key type (%s)", j.Algorithm, sk.alg)
		}
		return sk, nil
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("key is neither a JWK nor PEM")
	}
	var priv any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, errors.New("invalid PEM private key")
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported private key type")
	}
	return NewSigningKey(signer, kid)
}

// LoadSigningKey reads a private key file (JWK or PEM, TR-8). When the file is
// readable by group or others, warn is called with a message (nil warn: no
// warning); the key is still loaded.
func LoadSigningKey(path string, warn func(string)) (*SigningKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 && warn != nil {
		warn(fmt.Sprintf("private key file %q has permissions %#o; use 0600", path, fi.Mode().Perm()))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseSigningKey(data, "")
	if err != nil {
		return nil, fmt.Errorf("private key file %q: %w", path, err)
	}
	return k, nil
}

// Sign returns the compact JWS of header and payload JSON signed with k. The
// header must already name k's alg and kid.
func (k *SigningKey) Sign(header, payload []byte) (string, error) {
	return jws.Encode(k.alg, k.priv, header, payload)
}
