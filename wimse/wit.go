// Package wimse validates and, for development and tests, issues the WIMSE
// workload credentials of spec/transport.md: the Workload Identity Token
// (WIT, draft-ietf-wimse-workload-creds, TR-4) and the Workload Proof Token
// (WPT, draft-ietf-wimse-wpt-02, TR-6).
//
// A WIT is a JWT signed by the identity server of a trust domain:
//
//	header  {"alg":"ES256","kid":"June 5","typ":"wit+jwt"}
//	payload {"cnf":{"jwk":{"alg":"EdDSA","crv":"Ed25519","kty":"OKP","x":"..."}},
//	         "exp":1745512510,"iat":1745508910,"jti":"...","sub":"wimse://example.com/specific-workload"}
//
// Its sub is the workload identifier, whose authority is the trust domain
// that selects the keys (never iss); cnf.jwk is the workload's public key,
// with which the workload signs its WPTs, HTTP message signatures and ECTs.
// A WPT proves possession of that key for one request:
//
//	header  {"alg":"EdDSA","typ":"wpt+jwt"}
//	payload {"aud":"https://workload.example.com/path","exp":...,"jti":"...","wth":"<hash of the WIT>",
//	         "oth":{"execution-context":"<hash of the field>"}}
//
// Validation follows the orders of TR-4 and TR-6; every failure is an
// *agentctx.Error with the codes wit_invalid, wpt_invalid, identity_mismatch
// or the shared ones (bad_signature, unknown_key, expired, audience_mismatch,
// replay).
package wimse

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/wire"
	"github.com/agentctx/agentctx/replay"
	"github.com/agentctx/agentctx/trust"
)

// Media types.
const (
	WITTyp = "wit+jwt"
	WPTTyp = "wpt+jwt"
)

// Defaults of the validator.
const (
	DefaultSkew          = 60 * time.Second
	DefaultMaxLifetime   = 24 * time.Hour  // TR-4 step 6
	DefaultMaxWPTAhead   = 5 * time.Minute // TR-6: exp at most 5 minutes ahead [decision]
	DefaultMaxLength     = 8192
	MaxWorkloadIDLength  = 4096 // TR-4: "up to at least 2048 bytes"
	DefaultReplayEntries = replay.DefaultCapacity
)

// WIT is a validated Workload Identity Token.
type WIT struct {
	Raw         string // the token exactly as received
	Subject     string // the workload identifier
	TrustDomain string // the authority of Subject, lower case
	Issuer      string // informational only
	ID          string
	IssuedAt    time.Time
	Expiry      time.Time
	// Key is the workload's public key (cnf.jwk) and KeyAlg its "alg"
	// member exactly as written (a WPT's alg must be string-equal to it).
	Key    trust.Key
	KeyAlg string

	notBefore time.Time
}

// Config holds what a Validator needs. Trust and Clock are required.
type Config struct {
	// Trust finds the WIT issuer keys of each trust domain. Required.
	Trust trust.WITResolver
	// Clock returns the current time. Required.
	Clock func() time.Time
	// Audience is this receiver's configured URI: the target URI without
	// query and fragment that a WPT's aud must equal (TR-6). Required for
	// ValidateWPT.
	Audience string
	// Skew is the clock skew allowed on exp and nbf; 0 means DefaultSkew.
	Skew time.Duration
	// MaxLifetime bounds exp - iat of a WIT; 0 means DefaultMaxLifetime.
	MaxLifetime time.Duration
	// Replay remembers WPT jtis per sender; nil gives the validator its own.
	Replay *replay.Cache
	// KnownOther lists further field names (lower case) an oth claim may
	// cover, beyond the fields of this profile.
	KnownOther []string
	// Legacy accepts the wpt-01 forms: the Workload-Proof-Token field and
	// the ath claim.
	Legacy bool
	// KeyCache keeps per-key precomputation for the WPT signature checks
	// (the key of a workload that sends many requests); nil: none. Share it
	// with the ECT and ACT verifiers of the same receiver.
	KeyCache *trust.KeyCache
}

// Validator validates WITs and WPTs. It is safe for concurrent use.
type Validator struct {
	cfg Config
	// seen caches WITs whose signature verified, by the SHA-256 of their
	// bytes: a workload sends one WIT for its whole lifetime, so its
	// signature is checked once; times are checked on every use.
	mu   sync.Mutex
	seen map[[32]byte]*WIT
}

// maxCachedWITs bounds the cache of verified WITs; when full it starts over.
const maxCachedWITs = 4096

// ErrConfig is wrapped by every configuration error of NewValidator.
var ErrConfig = errors.New("wimse: invalid validator configuration")

// NewValidator checks cfg and returns a Validator.
func NewValidator(cfg Config) (*Validator, error) {
	switch {
	case cfg.Trust == nil:
		return nil, fmt.Errorf("%w: Trust is required (the WIT issuer keys of each trust domain)", ErrConfig)
	case cfg.Clock == nil:
		return nil, fmt.Errorf("%w: Clock is required (for example time.Now)", ErrConfig)
	case cfg.Skew < 0 || cfg.MaxLifetime < 0:
		return nil, fmt.Errorf("%w: Skew and MaxLifetime must not be negative", ErrConfig)
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.Replay == nil {
		cfg.Replay = replay.New(DefaultReplayEntries)
	}
	return &Validator{cfg: cfg}, nil
}

func witErr(format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodeWITInvalid, "TR-4", "", format, args...)
}

// WorkloadTrustDomain checks that id is exactly one workload identifier (an
// absolute URI with a non-empty authority, without query, fragment,
// userinfo or port) and returns its trust domain (TR-4 step 2).
func WorkloadTrustDomain(id string) (string, error) {
	if id == "" || len(id) > MaxWorkloadIDLength || strings.ContainsAny(id, " \t\r\n") {
		return "", errors.New("not a workload identifier")
	}
	u, err := url.Parse(id)
	switch {
	case err != nil || !u.IsAbs() || u.Opaque != "":
		return "", errors.New("not an absolute URI with an authority")
	case u.Host == "":
		return "", errors.New("no trust domain (empty authority)")
	case u.User != nil:
		return "", errors.New("userinfo is not allowed")
	case u.Port() != "" || strings.HasSuffix(u.Host, ":"):
		return "", errors.New("a port is not allowed")
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(id, "?"):
		return "", errors.New("a query is not allowed")
	case u.Fragment != "" || strings.Contains(id, "#"):
		return "", errors.New("a fragment is not allowed")
	}
	return strings.ToLower(u.Hostname()), nil
}

// ValidateWIT validates a WIT in the order of TR-4. A WIT whose signature
// verified before is not verified again; its times are.
func (v *Validator) ValidateWIT(ctx context.Context, token string) (*WIT, error) {
	token = strings.TrimSpace(token)
	key := sha256.Sum256([]byte(token))
	v.mu.Lock()
	cached := v.seen[key]
	v.mu.Unlock()
	if cached != nil {
		if err := v.checkTimes(cached); err != nil {
			return nil, err
		}
		w := *cached
		return &w, nil
	}
	w, err := v.validateWIT(ctx, token)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.seen == nil || len(v.seen) >= maxCachedWITs {
		v.seen = make(map[[32]byte]*WIT)
	}
	c := *w
	v.seen[key] = &c
	v.mu.Unlock()
	return w, nil
}

// checkTimes re-applies the time checks of TR-4 step 6 to a cached WIT.
func (v *Validator) checkTimes(w *WIT) error {
	now := v.cfg.Clock()
	if !w.Expiry.Add(v.cfg.Skew).After(now) {
		return agentctx.Errorf(agentctx.CodeExpired, "TR-4", "exp", "the WIT expired %s ago", wire.Duration(now.Sub(w.Expiry)))
	}
	if w.notBefore.After(now.Add(v.cfg.Skew)) || !w.IssuedAt.IsZero() && w.IssuedAt.After(now.Add(v.cfg.Skew)) {
		return witErr("the WIT is not valid yet")
	}
	return nil
}

func (v *Validator) validateWIT(ctx context.Context, token string) (*WIT, error) {
	// SPEC: TR-4 step 1, a well-formed JWS compact JWT.
	t, err := jws.Parse(token, DefaultMaxLength)
	if err != nil {
		return nil, witErr("the WIT is not a well-formed JWS: %s", messageOf(err))
	}
	w := &WIT{Raw: token}
	var cnf *jsonx.Member
	var hasExp, hasNbf bool
	var nbf time.Time
	for i := range t.Members {
		m := &t.Members[i]
		var ok bool
		switch m.Name {
		case "sub":
			w.Subject, ok = wire.String(*m)
		case "iss":
			w.Issuer, ok = wire.String(*m)
		case "jti":
			w.ID, ok = wire.String(*m)
		case "exp":
			var s int64
			s, ok = wire.NumericDate(*m)
			w.Expiry, hasExp = time.Unix(s, 0), ok
		case "iat":
			var s int64
			s, ok = wire.NumericDate(*m)
			w.IssuedAt = time.Unix(s, 0)
		case "nbf":
			var s int64
			s, ok = wire.NumericDate(*m)
			nbf, hasNbf = time.Unix(s, 0), ok
		case "cnf":
			cnf, ok = m, m.Kind == jsonx.Object
		default:
			ok = true // unknown claims are ignored
		}
		if !ok {
			return nil, witErr("claim %s has the wrong type", m.Name)
		}
	}
	// SPEC: TR-4 step 2, sub is one workload identifier; its trust domain selects the keys.
	td, err := WorkloadTrustDomain(w.Subject)
	if err != nil {
		return nil, witErr("sub is not a workload identifier: %v", err)
	}
	w.TrustDomain = td
	// SPEC: TR-4 step 3.
	if !t.Header.HasTyp || !jws.TypMatches(t.Header.Typ, WITTyp) {
		return nil, witErr("typ is not %q", WITTyp)
	}
	// SPEC: TR-4 step 4.
	if err := t.CheckAlg(); err != nil {
		return nil, witErr("alg: %s", messageOf(err))
	}
	// SPEC: TR-4 step 5, the trust domain's key named by kid.
	kid := ""
	if t.Header.HasKid {
		if !t.Header.KidIsString {
			return nil, witErr("kid is not a string")
		}
		kid = t.Header.Kid
	}
	pub, err := v.cfg.Trust.ResolveWITKey(ctx, td, kid, t.Header.Alg)
	if err != nil {
		return nil, err
	}
	if err := jws.Verify(t.Header.Alg, pub, t.SigningInput, t.Signature); err != nil {
		return nil, agentctx.Errorf(agentctx.CodeBadSignature, "TR-4", "", "the WIT's signature does not verify with trust domain %q's key", td)
	}
	// SPEC: TR-4 step 6, times and cnf.jwk.
	now := v.cfg.Clock()
	if !hasExp {
		return nil, witErr("exp is missing")
	}
	if !w.Expiry.Add(v.cfg.Skew).After(now) {
		return nil, agentctx.Errorf(agentctx.CodeExpired, "TR-4", "exp", "the WIT expired %s ago", wire.Duration(now.Sub(w.Expiry)))
	}
	if !w.IssuedAt.IsZero() && w.IssuedAt.After(now.Add(v.cfg.Skew)) {
		return nil, witErr("the WIT was issued %s in the future (iat)", wire.Duration(w.IssuedAt.Sub(now)))
	}
	if hasNbf && nbf.After(now.Add(v.cfg.Skew)) {
		return nil, witErr("the WIT is not valid for another %s (nbf)", wire.Duration(nbf.Sub(now)))
	}
	w.notBefore = nbf
	start := w.IssuedAt
	if hasNbf && nbf.After(start) {
		start = nbf
	}
	if !start.IsZero() && w.Expiry.Sub(start) > v.cfg.MaxLifetime {
		return nil, witErr("the WIT lives %s, the limit is %s", wire.Duration(w.Expiry.Sub(start)), wire.Duration(v.cfg.MaxLifetime))
	}
	if cnf == nil {
		return nil, witErr("cnf is missing")
	}
	if w.Key, w.KeyAlg, err = confirmationKey(cnf.Value); err != nil {
		return nil, witErr("cnf.jwk: %v", err)
	}
	return w, nil
}

// confirmationKey reads cnf.jwk: a public key with an alg member from the
// allowlist (ES256, EdDSA, Ed25519), returned as written.
func confirmationKey(cnf []byte) (trust.Key, string, error) {
	ms, err := jsonx.ParseObject(cnf)
	if err != nil {
		return trust.Key{}, "", err
	}
	var raw []byte
	for _, m := range ms {
		if m.Name == "jwk" {
			raw = m.Value
		}
	}
	if jsonx.KindOf(raw) != jsonx.Object {
		return trust.Key{}, "", errors.New("missing")
	}
	jm, err := jsonx.ParseObject(raw)
	if err != nil {
		return trust.Key{}, "", err
	}
	alg := ""
	for _, m := range jm {
		switch m.Name {
		case "alg":
			alg, _ = jsonx.DecodeString(m.Value)
		case "d", "p", "q", "dp", "dq", "qi", "k":
			return trust.Key{}, "", errors.New("holds private key material")
		}
	}
	if alg != jws.ES256 && alg != jws.EdDSA && alg != jws.Ed25519 {
		return trust.Key{}, "", fmt.Errorf("alg %q is not ES256, EdDSA or Ed25519", alg)
	}
	k, err := trust.ParseJWK(raw)
	if err != nil {
		return trust.Key{}, "", err
	}
	return k, alg, nil
}

// messageOf returns the message of an *agentctx.Error, or the error text.
func messageOf(err error) string {
	var e *agentctx.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// WITClaims describes a WIT to issue.
type WITClaims struct {
	Subject  string        // the workload identifier
	Issuer   string        // optional, informational
	Key      trust.Key     // the workload's public key (cnf.jwk)
	Lifetime time.Duration // 0 means one hour
	ID       string        // 0: a new UUID
}

// IssueWIT signs a WIT with the identity server's key (for development and
// tests; production WITs come from the identity server, e.g. SPIRE). The
// claims are checked as a validator would check them.
func IssueWIT(issuerKey *trust.SigningKey, c WITClaims, now time.Time) (string, error) {
	if _, err := WorkloadTrustDomain(c.Subject); err != nil {
		return "", witErr("sub is not a workload identifier: %v", err)
	}
	if c.Key.Public == nil {
		return "", witErr("the workload key (cnf.jwk) is required")
	}
	jwk, err := trust.PublicJWK(c.Key)
	if err != nil {
		return "", err
	}
	if c.Lifetime == 0 {
		c.Lifetime = time.Hour
	}
	if c.Lifetime < 0 || c.Lifetime > DefaultMaxLifetime {
		return "", witErr("lifetime %s is outside (0, %s]", c.Lifetime, DefaultMaxLifetime)
	}
	if c.ID == "" {
		c.ID = wire.NewUUID()
	}
	now = now.Truncate(time.Second)
	payload, err := json.Marshal(struct {
		Cnf struct {
			JWK json.RawMessage `json:"jwk"`
		} `json:"cnf"`
		Exp int64  `json:"exp"`
		Iat int64  `json:"iat"`
		Iss string `json:"iss,omitempty"`
		Jti string `json:"jti"`
		Sub string `json:"sub"`
	}{struct {
		JWK json.RawMessage `json:"jwk"`
	}{jwk}, now.Add(c.Lifetime).Unix(), now.Unix(), c.Issuer, c.ID, c.Subject})
	if err != nil {
		return "", err
	}
	header, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{issuerKey.Alg(), issuerKey.KeyID(), WITTyp})
	return issuerKey.Sign(header, payload)
}

// keyOf returns the crypto key of k for the JWS layer.
func keyOf(k trust.Key) crypto.PublicKey { return k.Public }
