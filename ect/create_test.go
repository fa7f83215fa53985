package ect_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jws"
)

// TestHashVectors: the hash values of spec/README.md (ECT-K2, ECT-C9).
func TestHashVectors(t *testing.T) {
	for in, want := range map[string]string{
		"":     "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
		"test": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
		"foo":  "LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
	} {
		if got := agentctx.HashBytes([]byte(in)); got != want {
			t.Errorf("HashBytes(%q) = %s, want %s", in, got, want)
		}
		got, err := agentctx.HashReader(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("HashReader(%q) = %s, %v, want %s", in, got, err, want)
		}
	}
}

// TestCreateDefaults covers ECT-K1 (defaults filled), ECT-H2 (exact header),
// ECT-C2 (aud emitted as an array) and the round trip through Verify.
func TestCreateDefaults(t *testing.T) {
	for _, key := range []interface {
		Alg() string
		KeyID() string
	}{edKey, ecKey} {
		sk := edKey
		if key.Alg() == "ES256" {
			sk = ecKey
		}
		c := &ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "review_spec"}
		tok, err := ect.Create(sk, c, now.Add(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if !c.IssuedAt.Equal(now) || !c.Expiry.Equal(now.Add(ect.DefaultLifetime)) || len(c.ID) != 36 || c.Pred == nil {
			t.Fatalf("defaults not filled: %+v", c)
		}
		if c.ID[14] != '4' {
			t.Fatalf("jti %s is not a UUIDv4", c.ID)
		}
		parts := strings.Split(tok, ".")
		hdr, _ := jws.DecodeSegment(parts[0])
		want := `{"alg":"` + sk.Alg() + `","kid":"` + sk.KeyID() + `","typ":"exec+jwt"}`
		if string(hdr) != want {
			t.Fatalf("header %s, want %s", hdr, want)
		}
		payload, _ := jws.DecodeSegment(parts[1])
		if !bytes.Contains(payload, []byte(`"aud":["`+audB+`"]`)) || !bytes.Contains(payload, []byte(`"pred":[]`)) {
			t.Fatalf("payload %s", payload)
		}
		v, _ := newVerifier(t, nil)
		res, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("created token does not verify: %v", err)
		}
		if res.Claims.ID != c.ID {
			t.Fatal("jti changed")
		}
	}
}

// TestCreateRefusesInvalid: ECT-K1, a payload that would not verify is never
// signed.
func TestCreateRefusesInvalid(t *testing.T) {
	cases := map[string]struct {
		c    ect.Claims
		code agentctx.Code
	}{
		"typed hash":      {ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "x", InputHash: "sha-256:abc"}, agentctx.CodeInvalidClaim},
		"no issuer":       {ect.Claims{Audience: []string{audB}, ExecAct: "x"}, agentctx.CodeInvalidClaim},
		"no audience":     {ect.Claims{Issuer: issA, ExecAct: "x"}, agentctx.CodeInvalidClaim},
		"no exec_act":     {ect.Claims{Issuer: issA, Audience: []string{audB}}, agentctx.CodeInvalidClaim},
		"bad wid":         {ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "x", WorkflowID: "w"}, agentctx.CodeInvalidClaim},
		"self pred":       {ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "x", ID: jti1, Pred: []string{jti1}}, agentctx.CodeInvalidClaim},
		"exp before iat":  {ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "x", IssuedAt: now, Expiry: now.Add(-time.Second)}, agentctx.CodeInvalidClaim},
		"ext not object":  {ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "x", Ext: []byte(`[1]`)}, agentctx.CodeInvalidClaim},
		"ext bad policy":  {ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "x", Ext: []byte(`{"pol":"p"}`)}, agentctx.CodeInvalidClaim},
		"control in act":  {ect.Claims{Issuer: issA, Audience: []string{audB}, ExecAct: "a\x00"}, agentctx.CodeInvalidClaim},
		"empty aud entry": {ect.Claims{Issuer: issA, Audience: []string{""}, ExecAct: "x"}, agentctx.CodeInvalidClaim},
	}
	for name, tc := range cases {
		c := tc.c
		tok, err := ect.Create(edKey, &c, now)
		if agentctx.CodeOf(err) != tc.code || tok != "" {
			t.Errorf("%s: token %q, error %v; want %s and no token", name, tok, err, tc.code)
		}
	}
}
