package trust

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jws"
)

// Multicodec prefixes (unsigned varint) of the did:key key types we accept.
var (
	codecEd25519 = []byte{0xed, 0x01}
	codecP256    = []byte{0x80, 0x24}
)

const didKeyPrefix = "did:key:"

// DIDKey resolves the key of an issuer that is itself a did:key identifier
// (Ed25519 or P-256): the key is read from the identifier, no network is used.
// The token's kid must name that key: the DID URL "did:key:z...#z...", the
// fragment "#z..." or "z...", or the DID itself.
var DIDKey Resolver = didKeyResolver{}

type didKeyResolver struct{}

// ResolveKey implements Resolver for did:key issuers.
func (didKeyResolver) ResolveKey(_ context.Context, issuer, kid, alg string) (crypto.PublicKey, error) {
	if !strings.HasPrefix(issuer, didKeyPrefix) {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "iss", "issuer %q is not a did:key", issuer)
	}
	msid := issuer[len(didKeyPrefix):]
	if kid != issuer && kid != issuer+"#"+msid && kid != "#"+msid && kid != msid {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "kid", "kid %q does not name the key of issuer %q", kid, issuer)
	}
	k, err := ParseDIDKey(issuer)
	if err != nil {
		return nil, &agentctx.Error{Code: agentctx.CodeUnknownKey, Rule: "TR-7", Claim: "iss", Message: "issuer is not a valid did:key", Err: err}
	}
	if k.Alg != alg {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "ECT-V5", "alg", "did:key holds a %s key, the token uses %s", k.Alg, alg)
	}
	return k.Public, nil
}

// ParseDIDKey decodes a did:key identifier holding an Ed25519 or P-256 key.
func ParseDIDKey(did string) (Key, error) {
	if !strings.HasPrefix(did, didKeyPrefix) {
		return Key{}, errors.New("not a did:key identifier")
	}
	msid := did[len(didKeyPrefix):]
	if len(msid) < 2 || msid[0] != 'z' || len(msid) > 128 {
		return Key{}, errors.New("did:key must be base58btc multibase ('z' prefix)")
	}
	raw, err := base58Decode(msid[1:])
	if err != nil {
		return Key{}, err
	}
	switch {
	case len(raw) == 2+ed25519.PublicKeySize && raw[0] == codecEd25519[0] && raw[1] == codecEd25519[1]:
		return Key{KeyID: did + "#" + msid, Alg: jws.EdDSA, Public: ed25519.PublicKey(raw[2:])}, nil
	case len(raw) == 2+33 && raw[0] == codecP256[0] && raw[1] == codecP256[1]:
		x, y := elliptic.UnmarshalCompressed(elliptic.P256(), raw[2:])
		if x == nil {
			return Key{}, errors.New("did:key P-256 point is invalid")
		}
		unc := make([]byte, 65)
		unc[0] = 4
		x.FillBytes(unc[1:33])
		y.FillBytes(unc[33:])
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), unc)
		if err != nil {
			return Key{}, fmt.Errorf("did:key P-256 point is invalid: %w", err)
		}
		return Key{KeyID: did + "#" + msid, Alg: jws.ES256, Public: pub}, nil
	}
	return Key{}, errors.New("did:key is neither an Ed25519 nor a P-256 key")
}

// FormatDIDKey returns the did:key identifier of an Ed25519 or P-256 public key.
func FormatDIDKey(pub crypto.PublicKey) (string, error) {
	var raw []byte
	switch k := pub.(type) {
	case ed25519.PublicKey:
		raw = append(append(raw, codecEd25519...), k...)
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("did:key: only P-256 ECDSA keys")
		}
		b, err := k.Bytes()
		if err != nil {
			return "", err
		}
		c := make([]byte, 33)
		c[0] = 2 | b[64]&1
		copy(c[1:], b[1:33])
		raw = append(append(raw, codecP256...), c...)
	default:
		return "", fmt.Errorf("did:key: unsupported key type %T", pub)
	}
	return didKeyPrefix + "z" + base58Encode(raw), nil
}

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58Decode(s string) ([]byte, error) {
	n := new(big.Int)
	radix := big.NewInt(58)
	zeros := 0
	for i := 0; i < len(s) && s[i] == '1'; i++ {
		zeros++
	}
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(b58Alphabet, s[i])
		if d < 0 {
			return nil, fmt.Errorf("invalid base58 character %q", s[i])
		}
		n.Mul(n, radix)
		n.Add(n, big.NewInt(int64(d)))
	}
	return append(make([]byte, zeros), n.Bytes()...), nil
}

func base58Encode(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	n := new(big.Int).SetBytes(b)
	radix := big.NewInt(58)
	mod := new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, b58Alphabet[mod.Int64()])
	}
	for i := 0; i < zeros; i++ {
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}
