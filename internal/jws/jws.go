// Package jws is the strict JWS Compact Serialization core shared by the ECT
// and ACT verifiers.
//
// Format (RFC 7515 §7.1): BASE64URL(header) "." BASE64URL(payload) "."
// BASE64URL(signature), where every segment is base64url without padding and
// with canonical trailing bits, the header and payload are JSON objects without
// duplicate member names at any depth, and the signature is either a 64-byte
// Ed25519 signature (alg "EdDSA", or its synonym "Ed25519") or the 64-byte
// r||s form of an ECDSA P-256 signature over SHA-256 (alg "ES256", RFC 7518
// §3.4; DER is rejected). Anything else is refused: JWS JSON serialization,
// JWE (five segments), unsecured tokens, "crit", any other algorithm.
//
// Parsing is split from verification so that the caller can apply the checks in
// the order the profile prescribes (size, envelope, typ, alg/crit, key,
// signature): [Parse], then [Token.CheckAlg], then [Verify].
package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
)

// Algorithm names.
const (
	ES256   = "ES256"
	EdDSA   = "EdDSA"
	Ed25519 = "Ed25519" // RFC 9864 fully specified name, a synonym of EdDSA here
)

// DefaultMaxLength is the largest token accepted, in bytes.
const DefaultMaxLength = 8192

var b64 = base64.RawURLEncoding.Strict()

// b64urlAlphabet marks the bytes of the base64url alphabet.
var b64urlAlphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// Header holds the JOSE header parameters the profile reads.
type Header struct {
	Alg    string // normalized: "Ed25519" is reported as "EdDSA"
	RawAlg string // as written in the token
	Kid    string
	Typ    string
	HasAlg bool
	HasKid bool
	HasTyp bool
	// AlgIsString, KidIsString, TypIsString report the JSON type of the
	// parameters that were present.
	AlgIsString, KidIsString, TypIsString bool
	Crit                                  bool // a "crit" parameter is present
	// X5C is the raw x5c value (a JSON array of base64 DER certificates),
	// nil when absent; only the X.509 trust profile reads it.
	X5C []byte
	Raw []byte
}

// Token is a parsed, not yet verified, compact JWS.
type Token struct {
	Header       Header
	Payload      []byte         // decoded payload JSON
	Members      []jsonx.Member // payload members, in order
	Signature    []byte
	SigningInput []byte // ASCII(header "." payload), the bytes that were signed
}

func malformed(format string, args ...any) *agentctx.Error {
	return agentctx.Errorf(agentctx.CodeMalformed, "ECT-V2", "", format, args...)
}

// Parse applies the size cap and the envelope checks (ECT-V1, ECT-V2) to a
// compact JWS. maxLen <= 0 means DefaultMaxLength. Errors are *agentctx.Error
// with code too_large or malformed.
func Parse(token string, maxLen int) (*Token, error) {
	dot1, dot2, err := split(token, maxLen)
	if err != nil {
		return nil, err
	}
	hseg, pseg, sseg := token[:dot1], token[dot1+1:dot2], token[dot2+1:]
	// An empty signature segment is left to the later steps: an unsecured
	// token (alg "none") fails the alg check (ECT-V4), an allowed alg fails
	// the signature check (ECT-V6).
	// One buffer, owned by the token: a copy of the signing input, then the
	// three decoded segments. Nothing in the result shares memory with the
	// caller's string (spec README: no shared memory).
	buf := make([]byte, dot2+b64.DecodedLen(len(hseg))+b64.DecodedLen(len(pseg))+b64.DecodedLen(len(sseg)))
	signingInput := buf[:dot2:dot2]
	copy(signingInput, token[:dot2])
	hdr, rest, err := decodeSegment(buf[dot2:], signingInput[:dot1], "header")
	if err != nil {
		return nil, err
	}
	payload, rest, err := decodeSegment(rest, signingInput[dot1+1:], "payload")
	if err != nil {
		return nil, err
	}
	sig, _, err := decodeSegment(rest, []byte(sseg), "signature")
	if err != nil {
		return nil, err
	}
	t := &Token{Payload: payload, Signature: sig, SigningInput: signingInput}
	if err := parseHeader(hdr, &t.Header); err != nil {
		return nil, err
	}
	members, err := jsonx.ParseObject(payload)
	if err != nil {
		return nil, malformed("payload: %v", err)
	}
	t.Members = members
	return t, nil
}

// ParseHeader is Parse's checks of the whole envelope and of the header
// alone, for a caller that needs only the header (the family of a token by
// its typ): the payload and signature are not decoded, which Parse, run
// later, does with the same errors.
func ParseHeader(token string, maxLen int) (*Header, error) {
	dot1, _, err := split(token, maxLen)
	if err != nil {
		return nil, err
	}
	hdr, _, err := decodeSegment(make([]byte, b64.DecodedLen(dot1)), []byte(token[:dot1]), "header")
	if err != nil {
		return nil, err
	}
	h := &Header{}
	if err := parseHeader(hdr, h); err != nil {
		return nil, err
	}
	return h, nil
}

// split applies the size cap and the segment checks, and returns the
// positions of the two dots.
func split(token string, maxLen int) (dot1, dot2 int, err error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxLength
	}
	// SPEC: README "Tokens longer than 8192 bytes are rejected before parsing".
	if len(token) > maxLen {
		return 0, 0, agentctx.Errorf(agentctx.CodeTooLarge, "ECT-V1", "", "token is %d bytes, the limit is %d", len(token), maxLen)
	}
	// Exactly two dots. The strict decoder below refuses every byte outside
	// the base64url alphabet except CR and LF, which it skips: refuse those
	// here. (IndexByte scans are vectorized; this is the hot path.)
	dot1 = strings.IndexByte(token, '.')
	dot2 = -1
	if dot1 >= 0 {
		if d := strings.IndexByte(token[dot1+1:], '.'); d >= 0 {
			dot2 = dot1 + 1 + d
			if strings.IndexByte(token[dot2+1:], '.') >= 0 {
				return 0, 0, malformed("token has more than three segments (JWE and other forms are not accepted)")
			}
		}
	}
	if dot2 < 0 {
		return 0, 0, malformed("token is not a JWS compact serialization (three dot-separated segments)")
	}
	if i := strings.IndexByte(token, '\n'); i >= 0 {
		return 0, 0, malformed("token contains a line break at offset %d", i)
	}
	if i := strings.IndexByte(token, '\r'); i >= 0 {
		return 0, 0, malformed("token contains a line break at offset %d", i)
	}
	if dot1 == 0 || dot2 == dot1+1 {
		return 0, 0, malformed("token has an empty header or payload segment")
	}
	return dot1, dot2, nil
}

// decodeSegment decodes seg into the front of buf and returns the decoded
// bytes (capacity-limited, so appends never overwrite) and the rest of buf.
func decodeSegment(buf, seg []byte, what string) ([]byte, []byte, error) {
	n, err := b64.Decode(buf, seg)
	if err != nil {
		return nil, nil, malformed("%s is not canonical base64url", what)
	}
	return buf[:n:n], buf[n:], nil
}

func parseHeader(raw []byte, h *Header) error {
	members, err := jsonx.ParseObject(raw)
	if err != nil {
		return malformed("header: %v", err)
	}
	h.Raw = raw
	for _, m := range members {
		switch m.Name {
		case "alg":
			h.HasAlg = true
			h.RawAlg, h.AlgIsString = jsonx.DecodeString(m.Value)
			h.AlgIsString = h.AlgIsString && m.Kind == jsonx.String
		case "kid":
			h.HasKid = true
			h.Kid, h.KidIsString = jsonx.DecodeString(m.Value)
			h.KidIsString = h.KidIsString && m.Kind == jsonx.String
		case "typ":
			h.HasTyp = true
			h.Typ, h.TypIsString = jsonx.DecodeString(m.Value)
			h.TypIsString = h.TypIsString && m.Kind == jsonx.String
		case "crit":
			h.Crit = true
		case "x5c":
			h.X5C = m.Value
		}
	}
	h.Alg = h.RawAlg
	if h.Alg == Ed25519 {
		// SPEC: README "Ed25519 is accepted as a synonym of EdDSA" [decision].
		h.Alg = EdDSA
	}
	return nil
}

// TypMatches reports whether a typ header value names the media type want
// (for example "exec+jwt"), comparing as RFC 7515 §4.1.9 prescribes:
// case-insensitively, with an optional "application/" prefix.
func TypMatches(typ, want string) bool {
	if len(typ) > len("application/") && jsonx.EqualFoldASCII(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	return jsonx.EqualFoldASCII(typ, want) // SPEC: ECT-H1 ASCII case-insensitive only
}

// CheckAlg applies ECT-V4: alg on the allowlist (alg_not_allowed) and no crit
// (unsupported_crit). It runs before any key is looked up.
func (t *Token) CheckAlg() error {
	h := &t.Header
	if !h.HasAlg || !h.AlgIsString {
		return agentctx.Errorf(agentctx.CodeAlgNotAllowed, "ECT-V4", "alg", "header has no alg string")
	}
	if h.Alg != ES256 && h.Alg != EdDSA {
		return agentctx.Errorf(agentctx.CodeAlgNotAllowed, "ECT-V4", "alg", "algorithm %q is not allowed (ES256, EdDSA)", h.RawAlg)
	}
	if h.Crit {
		// SPEC: README "A header that lists crit is rejected" [decision].
		return agentctx.Errorf(agentctx.CodeUnsupportedCrit, "ECT-V4", "crit", "header lists critical extensions, none is understood")
	}
	return nil
}

// ErrKeyAlgMismatch is returned by Verify and Sign when the key does not belong
// to the algorithm.
var ErrKeyAlgMismatch = errors.New("key type does not match the algorithm")

// KeyMatchesAlg reports whether pub is usable with alg (normalized):
// a P-256 ECDSA key for ES256, an Ed25519 key for EdDSA.
func KeyMatchesAlg(pub crypto.PublicKey, alg string) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return alg == ES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == EdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}

// Verify checks sig over signingInput with pub under alg (ECT-V6). It returns
// a bad_signature error when the signature does not verify.
func Verify(alg string, pub crypto.PublicKey, signingInput, sig []byte) error {
	return VerifyWith(nil, alg, pub, signingInput, sig)
}

// VerifyWith is Verify with the per-key precomputation of keys (nil: none):
// a P-256 key used often gets its table (the same accept set, faster).
func VerifyWith(keys *KeyCache, alg string, pub crypto.PublicKey, signingInput, sig []byte) error {
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg != ES256 || k.Curve != elliptic.P256() {
			return ErrKeyAlgMismatch
		}
		// SPEC: README "ES256 signatures are the 64-byte r||s form".
		if len(sig) == 64 {
			digest := sha256.Sum256(signingInput)
			r := new(big.Int).SetBytes(sig[:32])
			s := new(big.Int).SetBytes(sig[32:])
			if t := keys.table(k); t != nil {
				ok = t.verify(digest[:], r, s)
			} else {
				ok = ecdsa.Verify(k, digest[:], r, s)
			}
		}
	case ed25519.PublicKey:
		if alg != EdDSA {
			return ErrKeyAlgMismatch
		}
		ok = verifyEd25519(keys, k, signingInput, sig)
	default:
		return ErrKeyAlgMismatch
	}
	if !ok {
		return agentctx.Errorf(agentctx.CodeBadSignature, "ECT-V6", "", "signature does not verify")
	}
	return nil
}

// Sign produces the raw JWS signature of signingInput under alg with priv,
// which must be an *ecdsa.PrivateKey (P-256) for ES256 or an
// ed25519.PrivateKey for EdDSA.
func Sign(alg string, priv crypto.Signer, signingInput []byte) ([]byte, error) {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if alg != ES256 || k.Curve != elliptic.P256() {
			return nil, ErrKeyAlgMismatch
		}
		digest := sha256.Sum256(signingInput)
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case ed25519.PrivateKey:
		if alg != EdDSA && alg != Ed25519 {
			return nil, ErrKeyAlgMismatch
		}
		return ed25519.Sign(k, signingInput), nil
	}
	// Any other crypto.Signer holding a P-256 key (a hardware or remote key,
	// or an RFC 6979 deterministic signer) signs ES256 through its ASN.1
	// Sign method; the signature is re-encoded as r||s.
	if pub, ok := priv.Public().(*ecdsa.PublicKey); ok && alg == ES256 && pub.Curve == elliptic.P256() {
		digest := sha256.Sum256(signingInput)
		der, err := priv.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
			return nil, errors.New("signing: the signer returned no valid ECDSA signature")
		}
		sig := make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
		return sig, nil
	}
	return nil, ErrKeyAlgMismatch
}

// Encode returns the compact serialization of header and payload JSON signed
// with priv under alg.
func Encode(alg string, priv crypto.Signer, header, payload []byte) (string, error) {
	n := b64.EncodedLen(len(header)) + 1 + b64.EncodedLen(len(payload))
	buf := make([]byte, n, n+1+b64.EncodedLen(64))
	b64.Encode(buf, header)
	buf[b64.EncodedLen(len(header))] = '.'
	b64.Encode(buf[b64.EncodedLen(len(header))+1:], payload)
	sig, err := Sign(alg, priv, buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), nil
}

// EncodeSegment returns the base64url (unpadded) encoding of b.
func EncodeSegment(b []byte) string { return b64.EncodeToString(b) }

// DecodeSegment decodes strict base64url (unpadded, canonical).
func DecodeSegment(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if !b64urlAlphabet[s[i]] {
			return nil, errors.New("not base64url")
		}
	}
	return b64.DecodeString(s)
}
