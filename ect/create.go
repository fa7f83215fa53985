package ect

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jsonx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/wire"
	"github.com/agentctx/agentctx/trust"
)

// payloadJSON fixes the order in which Create writes the claims.
type payloadJSON struct {
	Iss     string          `json:"iss"`
	Aud     []string        `json:"aud"`
	Iat     int64           `json:"iat"`
	Exp     int64           `json:"exp"`
	Nbf     int64           `json:"nbf,omitempty"`
	Jti     string          `json:"jti"`
	Wid     string          `json:"wid,omitempty"`
	ExecAct string          `json:"exec_act"`
	Pred    []string        `json:"pred"`
	InpHash string          `json:"inp_hash,omitempty"`
	OutHash string          `json:"out_hash,omitempty"`
	Ext     json.RawMessage `json:"ect_ext,omitempty"`
}

// Create fills the defaults of ECT-K1 into c (iat = now, exp = iat +
// DefaultLifetime, jti = a new UUID, pred = []), checks the result with the
// rules a verifier applies, and signs it with key. A token that would not
// verify is never signed; the error is an *agentctx.Error naming the claim.
// c is updated in place with the filled values.
func Create(key *trust.SigningKey, c *Claims, now time.Time) (string, error) {
	payload, err := Payload(c, now)
	if err != nil {
		return "", err
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{key.Alg(), key.KeyID(), Typ})
	if err != nil {
		return "", err
	}
	return key.Sign(header, payload)
}

// Payload fills the defaults of ECT-K1 into c, checks it, and returns the
// payload JSON. Create signs it; base64url-encoded as it is, it is an
// unsigned L1 token.
func Payload(c *Claims, now time.Time) ([]byte, error) {
	now = now.Truncate(time.Second)
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	if c.Expiry.IsZero() {
		c.Expiry = c.IssuedAt.Add(DefaultLifetime)
	}
	if c.ID == "" {
		c.ID = wire.NewUUID()
	}
	if c.Pred == nil {
		c.Pred = []string{}
	}
	p := payloadJSON{
		Iss: c.Issuer, Aud: c.Audience, Iat: c.IssuedAt.Unix(), Exp: c.Expiry.Unix(),
		Jti: c.ID, Wid: c.WorkflowID, ExecAct: c.ExecAct, Pred: c.Pred,
		InpHash: c.InputHash, OutHash: c.OutputHash, Ext: c.Ext,
	}
	if !c.NotBefore.IsZero() {
		p.Nbf = c.NotBefore.Unix()
	}
	if c.Ext != nil {
		if k, _, err := jsonx.Validate(c.Ext); err != nil || k != jsonx.Object {
			return nil, claimErr(agentctx.CodeInvalidClaim, "ECT-C11", "ect_ext", "ect_ext must be a JSON object")
		}
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding ECT claims: %w", err)
	}
	// SPEC: ECT-K1 validate with the verifier's rules before signing.
	members, err := jsonx.ParseObject(payload)
	if err != nil {
		return nil, err
	}
	return payload, checkPayload(members)
}

// NewID returns a new random UUID (version 4, lower case) for a jti or a wid.
func NewID() string { return wire.NewUUID() }

// UnsafeDecodeWithoutVerification returns the JOSE header (nil for an
// unsigned L1 token) and the payload JSON of a token WITHOUT verifying
// anything: not the signature, not the issuer, not the times. Use it to
// display or route a token, never to trust it. Tokens up to 1 MiB are read.
func UnsafeDecodeWithoutVerification(token string) (header, payload []byte, err error) {
	if strings.Count(token, ".") == 2 {
		t, err := jws.Parse(token, 1<<20)
		if err != nil {
			return nil, nil, err
		}
		return t.Header.Raw, t.Payload, nil
	}
	p, err := jws.DecodeSegment(token)
	if err != nil {
		return nil, nil, claimErr(agentctx.CodeMalformed, "ECT-V2", "", "not a JWS and not an unsigned (L1) payload")
	}
	if _, err := jsonx.ParseObject(p); err != nil {
		return nil, nil, claimErr(agentctx.CodeMalformed, "ECT-V2", "", "unsigned (L1) payload: %v", err)
	}
	return nil, p, nil
}

// ParseUnverified reads an ECT WITHOUT verifying the signature, the issuer's
// key, the audience or the times; only the claim types and formats are
// checked. It serves tools that draw or route tokens (agentctx dag), never
// to trust one.
func ParseUnverified(token string) (*Result, error) {
	header, payload, err := UnsafeDecodeWithoutVerification(token)
	if err != nil {
		return nil, err
	}
	members, err := jsonx.ParseObject(payload)
	if err != nil {
		return nil, claimErr(agentctx.CodeMalformed, "ECT-V2", "", "payload: %v", err)
	}
	set, err := parseClaims(members, true)
	if err != nil {
		return nil, err
	}
	c, err := formatClaims(set, DefaultMaxPred, true)
	if err != nil {
		return nil, err
	}
	level := L2
	if header == nil {
		level = L1
	}
	return &Result{Level: level, Header: header, Payload: payload, Claims: c}, nil
}
