// Package trust finds the public keys that verify tokens, and loads the private
// keys that sign them.
//
// Every trust source implements [Resolver], keyed by (issuer, kid) as the
// profile's rule TR-7 requires: a key is returned only for an issuer it is
// bound to, and only when its algorithm matches the token's alg. Sources
// available today:
//
//   - the trust file of TR-7a ([ParseFile]): keys bound to an exact issuer or an
//     issuer prefix;
//   - a plain JWKS or PEM public keys bound to any issuer, only through the
//     explicit [AnyIssuer] binding;
//   - did:key identifiers (Ed25519, P-256) resolved from the issuer itself
//     ([DIDKey]).
//
// Several sources combine with [Multi]. JWKS URLs, X.509 chains and WIMSE trust
// bundles are further implementations of the same interface.
package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jws"
)

// Resolver finds the key that issuer uses under kid for a token signed with
// alg ("ES256" or "EdDSA").
type Resolver interface {
	// ResolveKey returns an *ecdsa.PublicKey (P-256) or an ed25519.PublicKey.
	// When no trusted key matches, it returns an *agentctx.Error with code
	// unknown_key; any other error is a failure of the source itself.
	ResolveKey(ctx context.Context, issuer, kid, alg string) (crypto.PublicKey, error)
}

// UnknownKeyError is the cause carried by the unknown_key failure of a
// token's verification: which issuer's key under which kid the trust lacks.
// A ledger audit reports it as a configuration finding (LED-9b), not as
// tampering; find it with errors.As.
type UnknownKeyError struct {
	Issuer string
	KeyID  string
	Err    error // the resolver's failure
}

// Error names the issuer and kid.
func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("the trust holds no key %q for issuer %q", e.KeyID, e.Issuer)
}

// Unwrap returns the resolver's failure.
func (e *UnknownKeyError) Unwrap() error { return e.Err }

// Key is a public key with its key ID and algorithm.
type Key struct {
	KeyID  string
	Alg    string           // "ES256" or "EdDSA"
	Public crypto.PublicKey // *ecdsa.PublicKey (P-256) or ed25519.PublicKey
}

// Binding says which issuers a set of keys may sign for (TR-7a).
type Binding struct {
	ID     string // exact issuer
	Prefix string // issuer prefix, ending in "/" or ":"
	Any    bool   // every issuer: only for a plain JWKS the user explicitly trusted
}

// AnyIssuer binds keys to every issuer. Use it only on the user's explicit
// request (the CLI's --any-issuer): a key trusted for any issuer can speak for
// every agent.
var AnyIssuer = Binding{Any: true}

func (b Binding) covers(issuer string) bool {
	switch {
	case b.Any:
		return true
	case b.ID != "":
		return issuer == b.ID
	case b.Prefix != "":
		return strings.HasPrefix(issuer, b.Prefix)
	}
	return false
}

func (b Binding) check() error {
	n := 0
	if b.Any {
		n++
	}
	if b.ID != "" {
		n++
	}
	if b.Prefix != "" {
		n++
		if !strings.HasSuffix(b.Prefix, "/") && !strings.HasSuffix(b.Prefix, ":") {
			return fmt.Errorf("trust prefix %q must end in \"/\" or \":\"", b.Prefix)
		}
	}
	if n != 1 {
		return errors.New("a trust entry needs exactly one of \"id\" and \"prefix\"")
	}
	return nil
}

type boundKey struct {
	key     Key
	binding Binding
}

// Set is a static Resolver: keys, each bound to the issuers it may sign for.
// Build it with [NewSet] and [Set.Add], or with [ParseFile]. A Set is safe for
// concurrent use once built.
type Set struct {
	byKid map[string][]boundKey
	wit   map[string][]Key // trust domain -> WIT issuer keys (TR-4)
	// Dynamic sources (jwks_url entries), asked after the static keys.
	sources    []jwksBinding
	witSources map[string]jwksWIT
	x509       []x509Roots
}

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{byKid: make(map[string][]boundKey)} }

// Add trusts keys for the issuers b names. Every key needs a key ID.
func (s *Set) Add(b Binding, keys ...Key) error {
	if err := b.check(); err != nil {
		return err
	}
	for _, k := range keys {
		if k.KeyID == "" {
			return errors.New("trusted key has no key ID (kid)")
		}
		if !jws.KeyMatchesAlg(k.Public, k.Alg) {
			return fmt.Errorf("trusted key %q: algorithm %q does not match the key type", k.KeyID, k.Alg)
		}
		s.byKid[k.KeyID] = append(s.byKid[k.KeyID], boundKey{k, b})
	}
	return nil
}

// AddX509Roots trusts the leaf keys of x5c chains that validate to pool
// for the issuers b covers (TR-7); spiffe applies the X.509-SVID leaf
// rules. clock gives the validation time (nil: the system clock).
func (s *Set) AddX509Roots(b Binding, pool *x509.CertPool, clock func() time.Time, spiffe bool) {
	s.x509 = append(s.x509, x509Roots{binding: b, pool: pool, clock: clock, spiffe: spiffe})
}

// Len returns the number of trusted (key, binding) pairs.
func (s *Set) Len() int {
	n := 0
	for _, l := range s.byKid {
		n += len(l)
	}
	return n
}

// ResolveKey implements Resolver.
func (s *Set) ResolveKey(ctx context.Context, issuer, kid, alg string) (crypto.PublicKey, error) {
	k, err := s.resolveStatic(issuer, kid, alg)
	if err == nil || len(s.sources) == 0 {
		return k, err
	}
	for _, src := range s.sources {
		if !src.binding.covers(issuer) {
			continue
		}
		k, serr := src.ResolveKey(ctx, issuer, kid, alg)
		if serr == nil || agentctx.CodeOf(serr) != agentctx.CodeUnknownKey {
			return k, serr
		}
	}
	return nil, err
}

func (s *Set) resolveStatic(issuer, kid, alg string) (crypto.PublicKey, error) {
	cands := s.byKid[kid]
	if len(cands) == 0 {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "ECT-V5", "kid", "no trusted key has kid %q", kid)
	}
	covered := false
	for i := range cands {
		c := &cands[i]
		if !c.binding.covers(issuer) {
			continue
		}
		covered = true
		if c.key.Alg == alg {
			return c.key.Public, nil
		}
	}
	if !covered {
		// SPEC: TR-7a "a token whose iss is not covered by the entry that holds its kid fails with unknown_key".
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7a", "iss", "key %q is not trusted for issuer %q", kid, issuer)
	}
	return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "ECT-V5", "alg", "key %q is not a %s key", kid, alg)
}

// fileJSON is the trust file of TR-7a.
type fileJSON struct {
	Issuers []struct {
		ID        string            `json:"id"`
		Prefix    string            `json:"prefix"`
		Keys      []json.RawMessage `json:"keys"`
		JWKSURL   string            `json:"jwks_url"`
		X509Roots string            `json:"x509_roots"`
	} `json:"issuers"`
	WITIssuers []struct {
		TrustDomain  string            `json:"trust_domain"`
		Keys         []json.RawMessage `json:"keys"`
		JWKSURL      string            `json:"jwks_url"`
		SPIFFEBundle string            `json:"spiffe_bundle"`
	} `json:"wit_issuers"`
	Keys []json.RawMessage `json:"keys"`
	Kty  string            `json:"kty"`
}

// ErrPlainJWKS is returned by ParseFile for a plain JWKS ({"keys": [...]}) or
// a bare JWK: such keys are trusted for any issuer only on explicit request;
// load them with ParseJWKS or ParseJWK and bind them with AnyIssuer.
var ErrPlainJWKS = errors.New("trust: a plain JWKS binds its keys to no issuer; it is accepted only with an explicit any-issuer switch")

// Options lets a trust file use sources that fetch (jwks_url entries).
type Options struct {
	// Clock is required for jwks_url entries (their refresh limits).
	Clock func() time.Time
	// Client fetches; nil means a client with JWKSFetchTimeout.
	Client *http.Client
}

// ParseFile parses a trust file without network sources: an entry with
// jwks_url is refused (use ParseFileWith). The format is described there.
func ParseFile(data []byte) (*Set, error) { return ParseFileWith(data, Options{}) }

// ParseFileWith parses a trust file (TR-7a):
//
//	{"issuers": [
//	  {"id": "spiffe://example.com/agent/a", "keys": [<JWK>...]},
//	  {"prefix": "spiffe://example.com/", "keys": [<JWK>...]}
//	]}
//
// An entry may give "jwks_url" instead of "keys" (fetched over HTTPS, see
// JWKS; needs opts.Clock), and "wit_issuers" lists the WIT issuer keys of
// each trust domain ({"trust_domain": "example.com", "keys": [...]} or
// "jwks_url"). A JWK without "kid" gets its RFC 7638 SHA-256 thumbprint as
// key ID. "x509_roots" and "spiffe_bundle" are refused by this build.
func ParseFileWith(data []byte, opts Options) (*Set, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("trust file is not valid JSON: %w", err)
	}
	if f.Issuers == nil && f.WITIssuers == nil {
		if f.Keys != nil || f.Kty != "" {
			return nil, ErrPlainJWKS
		}
		return nil, errors.New("trust file has no \"issuers\" list")
	}
	s := NewSet()
	newSource := func(where, u string) (*JWKS, error) {
		if opts.Clock == nil {
			return nil, fmt.Errorf("trust file %s: a jwks_url source needs network options (ParseFileWith)", where)
		}
		src, err := NewJWKS(JWKSConfig{URL: u, Client: opts.Client, Clock: opts.Clock})
		if err != nil {
			return nil, fmt.Errorf("trust file %s: %w", where, err)
		}
		return src, nil
	}
	for i, e := range f.WITIssuers {
		if e.SPIFFEBundle != "" {
			// SPEC: TR-7 SPIFFE trust bundle, read from a file path.
			if strings.Contains(e.SPIFFEBundle, "://") {
				return nil, fmt.Errorf("trust file wit_issuers entry %d: spiffe_bundle is a file path in this build (fetch the bundle with your SPIFFE tooling)", i)
			}
			data, err := os.ReadFile(e.SPIFFEBundle)
			if err != nil {
				return nil, fmt.Errorf("trust file wit_issuers entry %d: %w", i, err)
			}
			b, err := ParseSPIFFEBundle(data)
			if err != nil {
				return nil, fmt.Errorf("trust file wit_issuers entry %d: %w", i, err)
			}
			if err := s.AddSPIFFEBundle(e.TrustDomain, b, opts.Clock); err != nil {
				return nil, fmt.Errorf("trust file wit_issuers entry %d: %w", i, err)
			}
			continue
		}
		if e.JWKSURL != "" {
			if len(e.Keys) != 0 {
				return nil, fmt.Errorf("trust file wit_issuers entry %d: give keys or jwks_url, not both", i)
			}
			src, err := newSource(fmt.Sprintf("wit_issuers entry %d", i), e.JWKSURL)
			if err != nil {
				return nil, err
			}
			if _, err := WorkloadDomainOK(e.TrustDomain); err != nil {
				return nil, fmt.Errorf("trust file wit_issuers entry %d: %w", i, err)
			}
			if s.witSources == nil {
				s.witSources = map[string]jwksWIT{}
			}
			s.witSources[strings.ToLower(e.TrustDomain)] = jwksWIT{src: src, domain: e.TrustDomain}
			continue
		}
		if len(e.Keys) == 0 {
			return nil, fmt.Errorf("trust file wit_issuers entry %d: %w", i, errNoWIT)
		}
		for j, raw := range e.Keys {
			k, err := ParseJWK(raw)
			if err != nil {
				return nil, fmt.Errorf("trust file wit_issuers entry %d key %d: %w", i, j, err)
			}
			if err := s.AddWIT(e.TrustDomain, k); err != nil {
				return nil, fmt.Errorf("trust file wit_issuers entry %d: %w", i, err)
			}
		}
	}
	for i, e := range f.Issuers {
		b := Binding{ID: e.ID, Prefix: e.Prefix}
		if err := b.check(); err != nil {
			return nil, fmt.Errorf("trust file entry %d: %w", i, err)
		}
		if e.X509Roots != "" {
			pool, err := parseRoots(e.X509Roots)
			if err != nil {
				return nil, fmt.Errorf("trust file entry %d: %w", i, err)
			}
			s.AddX509Roots(b, pool, opts.Clock, strings.HasPrefix(e.Prefix+e.ID, "spiffe://"))
			continue
		}
		if e.JWKSURL != "" {
			if len(e.Keys) != 0 {
				return nil, fmt.Errorf("trust file entry %d: give keys or jwks_url, not both", i)
			}
			src, err := newSource(fmt.Sprintf("entry %d", i), e.JWKSURL)
			if err != nil {
				return nil, err
			}
			s.sources = append(s.sources, jwksBinding{src: src, binding: b})
			continue
		}
		if len(e.Keys) == 0 {
			return nil, fmt.Errorf("trust file entry %d: no keys", i)
		}
		for j, raw := range e.Keys {
			k, err := ParseJWK(raw)
			if err != nil {
				return nil, fmt.Errorf("trust file entry %d key %d: %w", i, j, err)
			}
			if err := s.Add(b, k); err != nil {
				return nil, fmt.Errorf("trust file entry %d: %w", i, err)
			}
		}
	}
	return s, nil
}

// ParseJWKS parses a plain JWK Set ({"keys": [...]}). The keys carry no issuer
// binding: add them to a Set with an explicit Binding.
func ParseJWKS(data []byte) ([]Key, error) {
	var f struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	out := make([]Key, 0, len(f.Keys))
	for i, raw := range f.Keys {
		k, err := ParseJWK(raw)
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d: %w", i, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// ParseKeys reads public keys that carry no issuer binding: a JWK Set, a
// single JWK, or PEM public keys (key IDs from the JWKs, else thumbprints).
// Add them to a Set with an explicit Binding.
func ParseKeys(data []byte) ([]Key, error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("{")) {
		return ParsePEM(data, "")
	}
	var probe struct {
		Keys json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return nil, fmt.Errorf("key file is not valid JSON: %w", err)
	}
	if probe.Keys != nil {
		return ParseJWKS(trimmed)
	}
	k, err := ParseJWK(trimmed)
	if err != nil {
		return nil, err
	}
	return []Key{k}, nil
}

// ParseJWK parses one public JWK (P-256 EC or Ed25519 OKP). A private JWK is
// refused: trust material holds public keys only.
func ParseJWK(data []byte) (Key, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(data); err != nil {
		return Key{}, fmt.Errorf("invalid JWK: %w", err)
	}
	if !jwk.IsPublic() {
		return Key{}, errors.New("JWK holds a private key; a trust source takes public keys only")
	}
	return keyFromJWK(&jwk)
}

func keyFromJWK(jwk *jose.JSONWebKey) (Key, error) {
	alg, err := algFor(jwk.Key)
	if err != nil {
		return Key{}, err
	}
	if jwk.Algorithm != "" {
		a := jwk.Algorithm
		if a == jws.Ed25519 {
			a = jws.EdDSA
		}
		if a != alg {
			return Key{}, fmt.Errorf("JWK alg %q does not match its key type (%s)", jwk.Algorithm, alg)
		}
	}
	kid := jwk.KeyID
	if kid == "" {
		kid, err = Thumbprint(jwk.Key)
		if err != nil {
			return Key{}, err
		}
	}
	return Key{KeyID: kid, Alg: alg, Public: jwk.Key}, nil
}

func algFor(pub crypto.PublicKey) (string, error) {
	switch {
	case jws.KeyMatchesAlg(pub, jws.ES256):
		return jws.ES256, nil
	case jws.KeyMatchesAlg(pub, jws.EdDSA):
		return jws.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T (only P-256 and Ed25519)", pub)
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of a public key, base64url.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	j := jose.JSONWebKey{Key: pub}
	tp, err := j.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return jws.EncodeSegment(tp), nil
}

// ParsePEM parses one or more PEM "PUBLIC KEY" blocks (P-256 or Ed25519). A
// key ID for each comes from kid when it is not empty (only with a single key),
// else from the key's RFC 7638 thumbprint.
func ParsePEM(data []byte, kid string) ([]Key, error) {
	var out []Key
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q is not a public key", blk.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("invalid PEM public key: %w", err)
		}
		alg, err := algFor(pub)
		if err != nil {
			return nil, err
		}
		id := kid
		if id == "" {
			if id, err = Thumbprint(pub); err != nil {
				return nil, err
			}
		}
		out = append(out, Key{KeyID: id, Alg: alg, Public: pub})
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	if kid != "" && len(out) > 1 {
		return nil, errors.New("one key ID given for several PEM keys")
	}
	return out, nil
}

// PublicJWK returns the public JWK of key, with its kid and alg members.
func PublicJWK(k Key) ([]byte, error) {
	j := jose.JSONWebKey{Key: k.Public, KeyID: k.KeyID, Algorithm: k.Alg, Use: "sig"}
	return j.MarshalJSON()
}

// Multi returns a Resolver that asks each source in order and returns the
// first key found. A source failure other than unknown_key stops the search.
func Multi(rs ...Resolver) Resolver { return multi(rs) }

type multi []Resolver

// ResolveKey implements Resolver: the first source that knows the key wins.
func (m multi) ResolveKey(ctx context.Context, issuer, kid, alg string) (crypto.PublicKey, error) {
	var first error
	for _, r := range m {
		k, err := r.ResolveKey(ctx, issuer, kid, alg)
		if err == nil {
			return k, nil
		}
		if agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
			return nil, err
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = agentctx.Errorf(agentctx.CodeUnknownKey, "ECT-V5", "kid", "no trust source is configured")
	}
	return nil, first
}
