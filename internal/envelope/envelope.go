// Package envelope opens a signed token the way both token families require:
// the verification steps ECT-V1..ECT-V6 (size, envelope, typ, alg and crit,
// key, signature), which ACT applies unchanged with its own typ.
package envelope

import (
	"context"
	"crypto"
	"errors"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/trust"
)

// Opener holds what one verifier expects of the JOSE envelope.
type Opener struct {
	MaxLength int            // ECT-V1 cap in bytes
	Typ       string         // the media type of the family, e.g. "exec+jwt"
	AltTyp    string         // a further accepted media type (legacy), "" for none
	Trust     trust.Resolver // key look-up by (signer, kid)
	Sigs      *SigCache      // signatures that verified before; nil: none
	Keys      *jws.KeyCache  // per-key precomputation; nil: none
}

// Signer names the identity whose key must have signed a token, read from
// its payload members before the signature is checked (ECT-V5).
type Signer func(members []jsonx.Member) (string, error)

// Open applies ECT-V1..ECT-V6 to a compact JWS and returns the verified
// token. Every failure is an *agentctx.Error.
func (o *Opener) Open(ctx context.Context, token string, signer Signer) (*jws.Token, error) {
	t, err := jws.Parse(token, o.MaxLength) // ECT-V1, ECT-V2
	if err != nil {
		return nil, err
	}
	// ECT-V3
	h := &t.Header
	if !h.HasTyp || !h.TypIsString {
		return nil, agentctx.Errorf(agentctx.CodeInvalidTyp, "ECT-V3", "typ", "header has no typ string; expected %q", o.Typ)
	}
	if !jws.TypMatches(h.Typ, o.Typ) && (o.AltTyp == "" || !jws.TypMatches(h.Typ, o.AltTyp)) {
		return nil, agentctx.Errorf(agentctx.CodeInvalidTyp, "ECT-V3", "typ", "typ %q is not %q", h.Typ, o.Typ)
	}
	// ECT-V4
	if err := t.CheckAlg(); err != nil {
		return nil, err
	}
	// ECT-V5
	if !h.HasKid || !h.KidIsString || h.Kid == "" {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "ECT-V5", "kid", "header has no kid; a key ID is required to find the key")
	}
	who, err := signer(t.Members)
	if err != nil {
		return nil, err
	}
	var pub crypto.PublicKey
	if xr, ok := o.Trust.(trust.X5CResolver); ok && h.X5C != nil {
		// The X.509 trust profile: the key of a chain to a configured root.
		pub, err = xr.ResolveX5C(ctx, who, h.Kid, h.X5C, h.Alg)
	} else {
		pub, err = o.Trust.ResolveKey(ctx, who, h.Kid, h.Alg)
	}
	if err != nil {
		var e *agentctx.Error
		if errors.As(err, &e) && e.Code == agentctx.CodeUnknownKey {
			c := *e
			c.Err = &trust.UnknownKeyError{Issuer: who, KeyID: h.Kid, Err: e.Err}
			return nil, &c
		}
		return nil, err
	}
	// ECT-V6
	var k [32]byte
	cacheable := false
	if o.Sigs != nil {
		k, cacheable = sigKey(h.Alg, pub, t.SigningInput, t.Signature)
	}
	if cacheable && o.Sigs.has(k) {
		return t, nil
	}
	if err := jws.VerifyWith(o.Keys, h.Alg, pub, t.SigningInput, t.Signature); err != nil {
		if errors.Is(err, jws.ErrKeyAlgMismatch) {
			return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "ECT-V5", "alg", "trusted key %q does not match alg %s", h.Kid, h.Alg)
		}
		return nil, err
	}
	if cacheable {
		o.Sigs.add(k)
	}
	return t, nil
}
