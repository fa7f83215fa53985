package ect_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/trust"
)

// TestStrictness covers the spec README's strictness rules and ECT-H1,
// ECT-C11 as the evidence review found them: names differing only in ASCII
// case, typ compared with ASCII folding only, legacy ext whatever the
// member order, and a result that shares no memory with mutable buffers.
func TestStrictness(t *testing.T) {
	ctx := context.Background()
	verify := func(t *testing.T, tok string) (agentctx.Code, error) {
		v, _ := newVerifier(t, nil)
		_, err := v.Verify(ctx, tok)
		return agentctx.CodeOf(err), err
	}
	t.Run("README/case-differential payload names are malformed", func(t *testing.T) {
		c := baseClaims()
		c["ISS"] = "spiffe://example.com/agent/evil"
		if code, err := verify(t, signRaw(t, edKey, header(edKey), c)); code != agentctx.CodeMalformed {
			t.Fatalf("%v", err)
		}
		c = baseClaims()
		c["ect_ext"] = map[string]any{"pol": "p", "Pol": "q", "pol_decision": "approved"}
		if code, err := verify(t, signRaw(t, edKey, header(edKey), c)); code != agentctx.CodeMalformed {
			t.Fatalf("nested: %v", err)
		}
	})
	t.Run("README/case-differential header names are malformed", func(t *testing.T) {
		h := header(edKey)
		h["ALG"] = "none"
		if code, err := verify(t, signRaw(t, edKey, h, baseClaims())); code != agentctx.CodeMalformed {
			t.Fatalf("%v", err)
		}
	})
	for typ, want := range map[string]agentctx.Code{
		"wimſe-exec+jwt":       agentctx.CodeInvalidTyp, // U+017F folds to 's' in Unicode only
		"EXEC+JWT":             "",
		"Application/Exec+JWT": "",
		"exec+jwt\u212a":       agentctx.CodeInvalidTyp,
	} {
		t.Run("ECT-H1/typ "+typ, func(t *testing.T) {
			h := header(edKey)
			h["typ"] = typ
			if code, err := verify(t, signRaw(t, edKey, h, baseClaims())); code != want {
				t.Fatalf("got %q (%v), want %q", code, err, want)
			}
		})
	}
	t.Run("ECT-C11/legacy ext gives one verdict whatever the member order", func(t *testing.T) {
		for _, payload := range []string{
			`{"ext":5,"ect_ext":{}}`, `{"ect_ext":{},"ext":5}`,
		} {
			c := baseClaims()
			tok := signRaw(t, edKey, header(edKey), mergeRaw(t, c, payload))
			if code, err := verify(t, tok); code != "" {
				t.Fatalf("%s: %v", payload, err)
			}
		}
		c := baseClaims()
		if code, _ := verify(t, signRaw(t, edKey, header(edKey), mergeRaw(t, c, `{"ext":5}`))); code != agentctx.CodeInvalidClaim {
			t.Fatalf("ext alone must be an object: %q", code)
		}
	})
	t.Run("README/no shared memory: the result stays what was verified", func(t *testing.T) {
		v, _ := newVerifier(t, nil)
		res, err := v.Verify(ctx, signRaw(t, edKey, header(edKey), baseClaims()))
		if err != nil {
			t.Fatal(err)
		}
		iss, jti, act := res.Claims.Issuer, res.Claims.ID, res.Claims.ExecAct
		for i := range res.Payload {
			res.Payload[i] = 'x'
		}
		for i := range res.Header {
			res.Header[i] = 'x'
		}
		if res.Claims.Issuer != issA || iss != issA || res.Claims.ID != jti1 || jti != jti1 || res.Claims.ExecAct != act || res.Claims.Audience[0] != audB {
			t.Fatalf("claims changed with the payload buffer: %q %q %q", res.Claims.Issuer, res.Claims.ID, res.Claims.ExecAct)
		}
	})
}

// mergeRaw returns the JSON of c with the members of the object extra
// appended in extra's order.
func mergeRaw(t *testing.T, c map[string]any, extra string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return json.RawMessage(string(b[:len(b)-1]) + "," + extra[1:])
}

// TestHeaderKeysNeverUsed covers the spec README: jku, x5u and jwk are never
// used to find or trust a key. A token carrying the attacker's own key in
// jwk (and URLs in jku and x5u) is checked with the trusted key of its kid
// only, and nothing is fetched.
func TestHeaderKeysNeverUsed(t *testing.T) {
	raw, err := trust.PublicJWK(other.Public())
	if err != nil {
		t.Fatal(err)
	}
	var pub map[string]any
	if err := json.Unmarshal(raw, &pub); err != nil {
		t.Fatal(err)
	}
	h := header(edKey) // kid of a trusted key
	h["jwk"] = pub
	h["jku"] = "http://127.0.0.1:1/jwks.json"
	h["x5u"] = "http://127.0.0.1:1/cert.pem"
	v, spy := newVerifier(t, nil)
	if _, err := v.Verify(context.Background(), signRaw(t, other, h, baseClaims())); agentctx.CodeOf(err) != agentctx.CodeBadSignature {
		t.Fatalf("signed by the key in jwk: %v", err)
	}
	if spy.calls != 1 {
		t.Fatalf("%d key look-ups, want 1 (the trust, by kid)", spy.calls)
	}
	v, _ = newVerifier(t, nil)
	if _, err := v.Verify(context.Background(), signRaw(t, edKey, h, baseClaims())); err != nil {
		t.Fatalf("jwk, jku and x5u are ignored, the token is valid: %v", err)
	}
}
