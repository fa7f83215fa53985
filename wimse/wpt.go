package wimse

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/wire"
	"github.com/agentctx/agentctx/trust"
)

// ProfileFields are the fields an oth claim may cover without
// configuration (TR-6), lower case.
var ProfileFields = []string{"execution-context", "act-mandate", "act-record"}

// WPTClaims describes a WPT to create.
type WPTClaims struct {
	Audience string            // the target URI without query and fragment
	WIT      string            // the WIT exactly as sent (wth)
	TxnToken string            // the Txn-Token field, when sent (tth)
	Other    map[string]string // other fields sent (lower-case name -> value): oth
	Lifetime time.Duration     // 0 means 60 seconds; at most DefaultMaxWPTAhead
	ID       string            // "" means a new random jti
	// AccessToken is hashed into ath (wpt-01 only; leave empty).
	AccessToken string
}

// CreateWPT signs a WPT with the workload's key; alg is the WIT's
// cnf.jwk.alg as written (ES256, EdDSA or Ed25519). The JSON members are
// written in lexical order, so Ed25519 proofs are reproducible byte for
// byte.
func CreateWPT(key crypto.Signer, alg string, c WPTClaims, now time.Time) (string, error) {
	if c.Lifetime == 0 {
		c.Lifetime = 60 * time.Second
	}
	if c.Lifetime < 0 || c.Lifetime > DefaultMaxWPTAhead {
		return "", agentctx.Errorf(agentctx.CodeWPTInvalid, "TR-6", "exp", "a WPT lives at most %s", DefaultMaxWPTAhead)
	}
	if c.Audience == "" || c.WIT == "" {
		return "", agentctx.Errorf(agentctx.CodeWPTInvalid, "TR-6", "", "a WPT needs its audience and the WIT it proves")
	}
	if c.ID == "" {
		c.ID = wire.NewUUID()
	}
	var oth map[string]string
	if len(c.Other) > 0 {
		oth = map[string]string{}
		for name, v := range c.Other {
			oth[strings.ToLower(name)] = agentctx.HashBytes([]byte(strings.TrimSpace(v)))
		}
	}
	p := struct {
		Ath string            `json:"ath,omitempty"`
		Aud string            `json:"aud"`
		Exp int64             `json:"exp"`
		Jti string            `json:"jti"`
		Oth map[string]string `json:"oth,omitempty"`
		Tth string            `json:"tth,omitempty"`
		Wth string            `json:"wth"`
	}{Aud: c.Audience, Exp: now.Add(c.Lifetime).Unix(), Jti: c.ID, Oth: oth, Wth: agentctx.HashBytes([]byte(c.WIT))}
	if c.AccessToken != "" {
		p.Ath = agentctx.HashBytes([]byte(c.AccessToken))
	}
	if c.TxnToken != "" {
		p.Tth = agentctx.HashBytes([]byte(c.TxnToken))
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	header, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}{alg, WPTTyp})
	return jws.Encode(alg, key, header, payload)
}

// Request is what ValidateWPT needs of the request the WPT came with.
type Request struct {
	// Audience is the receiver's configured URI for this request (the
	// target URI without query); "" takes Config.Audience.
	Audience string
	// Fields are the request's other fields that a WPT may cover, lower-case
	// name -> value as sent (one field line each): execution-context,
	// act-mandate, act-record, txn-token, and any configured KnownOther.
	Fields map[string]string
	// AccessToken is the Bearer token of a legacy (wpt-01) request, whose
	// hash ath must carry.
	AccessToken string
}

// WPT is a validated Workload Proof Token.
type WPT struct {
	ID     string
	Expiry time.Time
	Other  map[string]string // oth as sent
}

func wptErr(claim, format string, args ...any) error {
	return agentctx.Errorf(agentctx.CodeWPTInvalid, "TR-6", claim, format, args...)
}

// ValidateWPT validates a WPT presented with wit (already validated, TR-4
// first) in the receiver order of TR-6: alg, signature, typ, aud, exp, wth,
// tth, oth, then the replay of its jti (recorded only when everything else
// passed).
func (v *Validator) ValidateWPT(_ context.Context, token string, wit *WIT, req Request) (*WPT, error) {
	audience := req.Audience
	if audience == "" {
		audience = v.cfg.Audience
	}
	if audience == "" {
		return nil, wptErr("aud", "the receiver has no configured URI to check aud against")
	}
	t, err := jws.Parse(strings.TrimSpace(token), DefaultMaxLength)
	if err != nil {
		return nil, wptErr("", "the WPT is not a well-formed JWS: %s", messageOf(err))
	}
	// SPEC: TR-6 alg string-equal to the WIT's cnf.jwk.alg, as written.
	if !t.Header.AlgIsString || t.Header.RawAlg != wit.KeyAlg {
		return nil, wptErr("alg", "alg %q is not the WIT's key algorithm %q", t.Header.RawAlg, wit.KeyAlg)
	}
	if err := t.CheckAlg(); err != nil {
		return nil, wptErr("alg", "%s", messageOf(err))
	}
	// SPEC: TR-6 signature with cnf.jwk.
	if err := jws.VerifyWith(v.cfg.KeyCache, t.Header.Alg, keyOf(wit.Key), t.SigningInput, t.Signature); err != nil {
		return nil, agentctx.Errorf(agentctx.CodeBadSignature, "TR-6", "", "the WPT's signature does not verify with the WIT's key")
	}
	if !t.Header.HasTyp || !jws.TypMatches(t.Header.Typ, WPTTyp) {
		return nil, wptErr("typ", "typ is not %q", WPTTyp)
	}
	var w WPT
	var aud []string
	var hasExp bool
	var wth, tth, ath string
	var oth []jsonx.Member
	for _, m := range t.Members {
		var ok bool
		switch m.Name {
		case "aud":
			aud, ok = wire.Audience(m)
		case "exp":
			var s int64
			s, ok = wire.NumericDate(m)
			w.Expiry, hasExp = time.Unix(s, 0), ok
		case "jti":
			w.ID, ok = wire.String(m)
			ok = ok && w.ID != ""
		case "wth":
			wth, ok = wire.String(m)
		case "tth":
			tth, ok = wire.String(m)
		case "ath":
			ath, ok = wire.String(m)
		case "oth":
			if m.Kind == jsonx.Object {
				oth, err = jsonx.ParseObject(m.Value)
				ok = err == nil
			}
		default:
			ok = true
		}
		if !ok {
			return nil, wptErr(m.Name, "claim %s has the wrong type", m.Name)
		}
	}
	// SPEC: TR-6 aud equals the configured URI, never Host.
	if !slices.Contains(aud, audience) {
		return nil, agentctx.Errorf(agentctx.CodeAudienceMismatch, "TR-6", "aud", "the WPT is for %q, this receiver is %q", strings.Join(aud, ", "), audience)
	}
	now := v.cfg.Clock()
	switch {
	case !hasExp:
		return nil, wptErr("exp", "exp is missing")
	case !w.Expiry.Add(v.cfg.Skew).After(now):
		return nil, agentctx.Errorf(agentctx.CodeExpired, "TR-6", "exp", "the WPT expired %s ago", wire.Duration(now.Sub(w.Expiry)))
	case w.Expiry.After(now.Add(DefaultMaxWPTAhead + v.cfg.Skew)):
		return nil, wptErr("exp", "exp is %s ahead, the limit is %s", wire.Duration(w.Expiry.Sub(now)), DefaultMaxWPTAhead)
	case w.ID == "":
		return nil, wptErr("jti", "jti is missing")
	}
	// SPEC: TR-6 wth is the hash of the WIT exactly as sent.
	if wth != agentctx.HashBytes([]byte(wit.Raw)) {
		return nil, agentctx.Errorf(agentctx.CodeIdentityMismatch, "TR-6", "wth", "the WPT proves another WIT (wth)")
	}
	if tv, sent := req.Fields["txn-token"]; sent && tth != agentctx.HashBytes([]byte(strings.TrimSpace(tv))) {
		return nil, wptErr("tth", "tth does not match the Txn-Token field")
	}
	if v.cfg.Legacy && req.AccessToken != "" && ath != agentctx.HashBytes([]byte(req.AccessToken)) {
		return nil, wptErr("ath", "ath does not match the access token")
	}
	// SPEC: TR-6 oth covers every profile field sent, and only known fields.
	w.Other = map[string]string{}
	for _, m := range oth {
		name := m.Name
		if !slices.Contains(ProfileFields, name) && !slices.Contains(v.cfg.KnownOther, name) {
			return nil, wptErr("oth", "oth covers the field %q, which this receiver does not know", name)
		}
		h, ok := jsonx.DecodeString(m.Value)
		sent, present := req.Fields[name]
		if !ok || !present || h != agentctx.HashBytes([]byte(strings.TrimSpace(sent))) {
			return nil, wptErr("oth", "oth.%s does not match the %s field sent", name, name)
		}
		w.Other[name] = h
	}
	names := make([]string, 0, len(req.Fields))
	for name := range req.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if (slices.Contains(ProfileFields, name) || slices.Contains(v.cfg.KnownOther, name)) && w.Other[name] == "" {
			return nil, wptErr("oth", "the %s field is sent but oth does not cover it", name)
		}
	}
	// SPEC: TR-6 jti not seen from this sender; recorded last.
	if err := v.cfg.Replay.Add(wit.Subject, w.ID, w.Expiry.Add(v.cfg.Skew), now); err != nil {
		var e *agentctx.Error
		if errors.As(err, &e) {
			c := *e
			c.Rule, c.Message = "TR-6", "the WPT was already presented (jti)"
			return nil, &c
		}
		return nil, err
	}
	return &w, nil
}

// BindToken applies TR-5 to a token (ECT, or ACT record) of the sender:
// its signer identity (ECT iss, record sub) must be the WIT's sub, and its
// kid, when the WIT's key has one, the key's. The token's key is then the
// WIT's (ResolverFor).
func BindToken(wit *WIT, signer, kid string) error {
	if signer != wit.Subject {
		return agentctx.Errorf(agentctx.CodeIdentityMismatch, "TR-5", "iss", "the token is signed for %q, the WIT is %q", signer, wit.Subject)
	}
	if kid != wit.Key.KeyID && !isThumbprintKid(wit) {
		return agentctx.Errorf(agentctx.CodeIdentityMismatch, "TR-5", "kid", "the token's kid %q is not the WIT key's %q", kid, wit.Key.KeyID)
	}
	return nil
}

// isThumbprintKid reports whether the WIT's key had no kid of its own (its
// KeyID is the thumbprint trust.ParseJWK assigned): any token kid goes.
func isThumbprintKid(wit *WIT) bool {
	tp, err := trust.Thumbprint(wit.Key.Public)
	return err == nil && tp == wit.Key.KeyID
}

// Resolver returns a trust.Resolver that knows exactly the WIT's key, for
// the WIT's subject (TR-5: with a WIT present, the ECT's key comes from the
// WIT, not from the trust file). Any kid resolves to the WIT's key when the
// key has no kid of its own.
func (w *WIT) Resolver() trust.Resolver { return witResolver{w} }

type witResolver struct{ w *WIT }

func (r witResolver) ResolveKey(_ context.Context, issuer, kid, alg string) (crypto.PublicKey, error) {
	if err := BindToken(r.w, issuer, kid); err != nil {
		return nil, err
	}
	if !jws.KeyMatchesAlg(r.w.Key.Public, alg) {
		return nil, agentctx.Errorf(agentctx.CodeIdentityMismatch, "TR-5", "alg", "the WIT's key is not a %s key", alg)
	}
	return r.w.Key.Public, nil
}
