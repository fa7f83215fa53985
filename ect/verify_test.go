package ect_test

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/dag"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

const (
	issA   = "spiffe://example.com/agent/a"
	audB   = "spiffe://example.com/agent/b"
	ledger = "spiffe://example.com/system/ledger"
	jti1   = "0b7c5e4e-5f7a-4c1e-9d55-8b8c0f4a2e11"
	jti2   = "1c8d6f5f-6a8b-4d2f-8e66-9c9d1a5b3f22"
	wid1   = "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77"
)

var (
	now    = time.Unix(1767225600, 0)
	edKey  = testkeys.EdDSA("ect-test-a", "key-a-ed")
	ecKey  = testkeys.ES256("ect-test-a", "key-a-ec")
	other  = testkeys.EdDSA("ect-test-other", "key-other")
	hashIn = agentctx.HashBytes([]byte("input"))
)

// spyResolver counts look-ups, to prove checks that must run before any key
// is looked up.
type spyResolver struct {
	trust.Resolver
	calls int
}

func (s *spyResolver) ResolveKey(ctx context.Context, iss, kid, alg string) (crypto.PublicKey, error) {
	s.calls++
	return s.Resolver.ResolveKey(ctx, iss, kid, alg)
}

func testTrust(t testing.TB) *trust.Set {
	t.Helper()
	s := trust.NewSet()
	if err := s.Add(trust.Binding{ID: issA}, edKey.Public(), ecKey.Public()); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(trust.Binding{ID: "spiffe://example.com/agent/other"}, other.Public()); err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, mod func(*ect.Config)) (*ect.Verifier, *spyResolver) {
	t.Helper()
	spy := &spyResolver{Resolver: testTrust(t)}
	cfg := ect.Config{Trust: spy, Audience: audB, Clock: func() time.Time { return now }}
	if mod != nil {
		mod(&cfg)
	}
	v, err := ect.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, spy
}

func baseClaims() map[string]any {
	return map[string]any{
		"iss": issA, "aud": []string{audB, ledger}, "iat": now.Unix(), "exp": now.Unix() + 600,
		"jti": jti1, "wid": wid1, "exec_act": "review_spec", "pred": []string{}, "inp_hash": hashIn,
	}
}

func header(key *trust.SigningKey) map[string]any {
	return map[string]any{"alg": key.Alg(), "kid": key.KeyID(), "typ": "exec+jwt"}
}

func signRaw(t testing.TB, key *trust.SigningKey, hdr, payload any) string {
	t.Helper()
	return testkeys.SignJSON(t, key, hdr, payload)
}

func with(mod func(map[string]any)) map[string]any {
	c := baseClaims()
	mod(c)
	return c
}

func withHeader(mod func(map[string]any)) map[string]any {
	h := header(edKey)
	mod(h)
	return h
}

type ruleCase struct {
	rule, name string
	token      func(t testing.TB) string
	cfg        func(*ect.Config)
	code       agentctx.Code
	claim      string
}

func claimsCase(rule, name string, code agentctx.Code, claim string, mod func(map[string]any)) ruleCase {
	return ruleCase{rule: rule, name: name, code: code, claim: claim, token: func(t testing.TB) string {
		return signRaw(t, edKey, header(edKey), with(mod))
	}}
}

func headerCase(rule, name string, code agentctx.Code, claim string, mod func(map[string]any)) ruleCase {
	return ruleCase{rule: rule, name: name, code: code, claim: claim, token: func(t testing.TB) string {
		return signRaw(t, edKey, withHeader(mod), baseClaims())
	}}
}

func del(names ...string) func(map[string]any) {
	return func(m map[string]any) {
		for _, n := range names {
			delete(m, n)
		}
	}
}

func set(name string, v any) func(map[string]any) {
	return func(m map[string]any) { m[name] = v }
}

func ruleCases() []ruleCase {
	unsigned := func(c map[string]any) func(testing.TB) string {
		return func(t testing.TB) string {
			b, _ := json.Marshal(c)
			return jws.EncodeSegment(b)
		}
	}
	deep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": 1}}}}}
	tooDeep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": map[string]any{}}}}}}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	return []ruleCase{
		{rule: "ECT-V1", name: "over 8192 bytes", code: agentctx.CodeTooLarge, token: func(t testing.TB) string {
			return signRaw(t, edKey, header(edKey), with(set("pad", strings.Repeat("x", 8192))))
		}},
		{rule: "ECT-V1", name: "configured cap", code: agentctx.CodeTooLarge, cfg: func(c *ect.Config) { c.MaxLength = 100 },
			token: func(t testing.TB) string { return signRaw(t, edKey, header(edKey), baseClaims()) }},
		{rule: "ECT-V2", name: "garbage", code: agentctx.CodeMalformed, token: func(testing.TB) string { return "not a token" }},
		{rule: "ECT-V2", name: "empty", code: agentctx.CodeMalformed, token: func(testing.TB) string { return "" }},
		{rule: "ECT-V2", name: "JWE five segments", code: agentctx.CodeMalformed, token: func(testing.TB) string { return "a.b.c.d.e" }},
		{rule: "ECT-V2", name: "duplicate claim", code: agentctx.CodeMalformed, token: func(t testing.TB) string {
			b, _ := json.Marshal(baseClaims())
			b = append([]byte(`{"iss":"spiffe://evil",`), b[1:]...)
			return signRaw(t, edKey, header(edKey), b)
		}},
		{rule: "ECT-L2", name: "unsigned refused at default level", code: agentctx.CodeLevelTooLow, token: unsigned(baseClaims())},
		{rule: "ECT-L2", name: "unsigned accepted at L1", cfg: func(c *ect.Config) { c.MinLevel = ect.L1 }, token: unsigned(baseClaims())},
		{rule: "ECT-V2", name: "unsigned malformed", code: agentctx.CodeMalformed, cfg: func(c *ect.Config) { c.MinLevel = ect.L1 },
			token: func(testing.TB) string { return jws.EncodeSegment([]byte(`[1]`)) }},
		{rule: "ECT-L3", name: "no receipt at L3", code: agentctx.CodeLevelTooLow, cfg: func(c *ect.Config) { c.MinLevel = ect.L3 },
			token: func(t testing.TB) string { return signRaw(t, edKey, header(edKey), baseClaims()) }},
		headerCase("ECT-V3", "missing typ", agentctx.CodeInvalidTyp, "typ", del("typ")),
		headerCase("ECT-V3", "ACT typ", agentctx.CodeInvalidTyp, "typ", set("typ", "act+jwt")),
		headerCase("ECT-V3", "WIT typ", agentctx.CodeInvalidTyp, "typ", set("typ", "wit+jwt")),
		headerCase("ECT-V3", "WPT typ", agentctx.CodeInvalidTyp, "typ", set("typ", "wpt+jwt")),
		headerCase("ECT-V3", "plain JWT", agentctx.CodeInvalidTyp, "typ", set("typ", "JWT")),
		headerCase("ECT-V3", "typ not a string", agentctx.CodeInvalidTyp, "typ", set("typ", 1)),
		headerCase("ECT-H1", "media type form, mixed case", "", "", set("typ", "application/Exec+JWT")),
		headerCase("ECT-H1", "legacy typ", "", "", set("typ", "wimse-exec+jwt")),
		{rule: "ECT-V3", name: "legacy typ refused without legacy", code: agentctx.CodeInvalidTyp, claim: "typ", cfg: func(c *ect.Config) { c.NoLegacy = true },
			token: func(t testing.TB) string {
				return signRaw(t, edKey, withHeader(set("typ", "wimse-exec+jwt")), baseClaims())
			}},
		headerCase("ECT-V4", "alg none", agentctx.CodeAlgNotAllowed, "alg", set("alg", "none")),
		headerCase("ECT-V4", "alg HS256", agentctx.CodeAlgNotAllowed, "alg", set("alg", "HS256")),
		headerCase("ECT-V4", "alg RS256", agentctx.CodeAlgNotAllowed, "alg", set("alg", "RS256")),
		headerCase("ECT-V4", "alg ES384", agentctx.CodeAlgNotAllowed, "alg", set("alg", "ES384")),
		headerCase("ECT-V4", "missing alg", agentctx.CodeAlgNotAllowed, "alg", del("alg")),
		headerCase("ECT-V4", "crit", agentctx.CodeUnsupportedCrit, "crit", set("crit", []string{"exp"})),
		headerCase("ECT-H2", "Ed25519 synonym", "", "", set("alg", "Ed25519")),
		headerCase("ECT-V5", "unknown kid", agentctx.CodeUnknownKey, "kid", set("kid", "nope")),
		headerCase("ECT-V5", "missing kid", agentctx.CodeUnknownKey, "kid", del("kid")),
		headerCase("ECT-V5", "kid of a P-256 key under EdDSA", agentctx.CodeUnknownKey, "alg", set("kid", ecKey.KeyID())),
		headerCase("TR-7a", "key of another issuer", agentctx.CodeUnknownKey, "iss", set("kid", other.KeyID())),
		claimsCase("ECT-C1", "missing iss", agentctx.CodeMissingClaim, "iss", del("iss")),
		{rule: "ECT-V6", name: "signature of another key", code: agentctx.CodeBadSignature, token: func(t testing.TB) string {
			return signRaw(t, other, header(edKey), baseClaims())
		}},
		{rule: "ECT-V6", name: "payload changed after signing", code: agentctx.CodeBadSignature, token: func(t testing.TB) string {
			tok := signRaw(t, edKey, header(edKey), baseClaims())
			parts := strings.Split(tok, ".")
			parts[1] = jws.EncodeSegment([]byte(strings.Replace(string(mustDecode(t, parts[1])), "review_spec", "review_spex", 1)))
			return strings.Join(parts, ".")
		}},
		{rule: "ECT-V4", name: "unsecured alg none", code: agentctx.CodeAlgNotAllowed, claim: "alg", token: func(t testing.TB) string {
			parts := strings.Split(signRaw(t, edKey, withHeader(set("alg", "none")), baseClaims()), ".")
			return parts[0] + "." + parts[1] + "."
		}},
		{rule: "ECT-V6", name: "empty signature", code: agentctx.CodeBadSignature, token: func(t testing.TB) string {
			parts := strings.Split(signRaw(t, edKey, header(edKey), baseClaims()), ".")
			return parts[0] + "." + parts[1] + "."
		}},
		{rule: "ECT-V6", name: "ES256 valid", token: func(t testing.TB) string { return signRaw(t, ecKey, header(ecKey), baseClaims()) }},
		claimsCase("ECT-C2", "missing aud", agentctx.CodeMissingClaim, "aud", del("aud")),
		claimsCase("ECT-C3", "missing iat", agentctx.CodeMissingClaim, "iat", del("iat")),
		claimsCase("ECT-C4", "missing exp", agentctx.CodeMissingClaim, "exp", del("exp")),
		claimsCase("ECT-C5", "missing jti", agentctx.CodeMissingClaim, "jti", del("jti")),
		claimsCase("ECT-C7", "missing exec_act", agentctx.CodeMissingClaim, "exec_act", del("exec_act")),
		claimsCase("ECT-C8", "missing pred", agentctx.CodeMissingClaim, "pred", del("pred")),
		claimsCase("ECT-C1", "empty iss", agentctx.CodeInvalidClaim, "iss", set("iss", "")),
		claimsCase("ECT-C2", "aud number", agentctx.CodeInvalidClaim, "aud", set("aud", 7)),
		claimsCase("ECT-C2", "aud empty array", agentctx.CodeInvalidClaim, "aud", set("aud", []string{})),
		claimsCase("ECT-C2", "aud empty element", agentctx.CodeInvalidClaim, "aud", set("aud", []string{audB, ""})),
		claimsCase("ECT-C2", "aud as a string", "", "", set("aud", audB)),
		claimsCase("ECT-C3", "iat as string", agentctx.CodeInvalidClaim, "iat", set("iat", "1767225600")),
		claimsCase("ECT-C3", "iat with fraction", agentctx.CodeInvalidClaim, "iat", set("iat", 1767225600.5)),
		claimsCase("ECT-C4", "exp not after iat", agentctx.CodeInvalidClaim, "exp", set("exp", now.Unix())),
		claimsCase("ECT-C8", "pred a string", agentctx.CodeInvalidClaim, "pred", set("pred", jti2)),
		claimsCase("ECT-C7", "exec_act a number", agentctx.CodeInvalidClaim, "exec_act", set("exec_act", 3)),
		claimsCase("ECT-C11", "ect_ext an array", agentctx.CodeInvalidClaim, "ect_ext", set("ect_ext", []int{1})),
		claimsCase("ECT-C8", "legacy par", "", "", func(m map[string]any) { delete(m, "pred"); m["par"] = []string{jti2} }),
		{rule: "ECT-C8", name: "par refused without legacy", code: agentctx.CodeMissingClaim, claim: "pred", cfg: func(c *ect.Config) { c.NoLegacy = true },
			token: func(t testing.TB) string {
				return signRaw(t, edKey, header(edKey), with(func(m map[string]any) { delete(m, "pred"); m["par"] = []string{jti2} }))
			}},
		claimsCase("ECT-C11", "legacy ext", "", "", set("ext", map[string]any{"com.example.x": 1})),
		claimsCase("ECT-C13", "unknown claims ignored", "", "", set("x-unknown", map[string]any{"a": []int{1}})),
		claimsCase("ECT-V8", "expired", agentctx.CodeExpired, "exp", func(m map[string]any) { m["iat"] = now.Unix() - 700; m["exp"] = now.Unix() - 61 }),
		claimsCase("ECT-V8", "expired within skew", "", "", func(m map[string]any) { m["iat"] = now.Unix() - 700; m["exp"] = now.Unix() - 59 }),
		claimsCase("ECT-V8", "nbf in the future", agentctx.CodeNotYetValid, "nbf", set("nbf", now.Unix()+120)),
		claimsCase("ECT-C12", "nbf within skew", "", "", set("nbf", now.Unix()+30)),
		claimsCase("ECT-V9", "iat in the future", agentctx.CodeIATInFuture, "iat", func(m map[string]any) { m["iat"] = now.Unix() + 61; m["exp"] = now.Unix() + 700 }),
		claimsCase("ECT-V9", "too old", agentctx.CodeTooOld, "iat", func(m map[string]any) { m["iat"] = now.Unix() - 901; m["exp"] = now.Unix() + 600 }),
		claimsCase("ECT-V10", "audience mismatch", agentctx.CodeAudienceMismatch, "aud", set("aud", []string{ledger})),
		claimsCase("ECT-C5", "jti not a UUID", agentctx.CodeInvalidClaim, "jti", set("jti", "task-1")),
		claimsCase("ECT-V11", "jti upper case accepted", "", "", set("jti", strings.ToUpper(jti1))),
		claimsCase("ECT-C6", "wid not a UUID", agentctx.CodeInvalidClaim, "wid", set("wid", "wf")),
		claimsCase("ECT-C6", "wid empty", agentctx.CodeInvalidClaim, "wid", set("wid", "")),
		claimsCase("ECT-C9", "hash with algorithm prefix", agentctx.CodeInvalidClaim, "inp_hash", set("inp_hash", "sha-256:"+hashIn)),
		claimsCase("ECT-C9", "hash padded", agentctx.CodeInvalidClaim, "inp_hash", set("inp_hash", hashIn+"=")),
		claimsCase("ECT-C10", "hash of 31 bytes", agentctx.CodeInvalidClaim, "out_hash", set("out_hash", jws.EncodeSegment(make([]byte, 31)))),
		claimsCase("ECT-C10", "hash non-canonical", agentctx.CodeInvalidClaim, "out_hash", set("out_hash", hashIn[:42]+"V")),
		claimsCase("ECT-C7", "exec_act empty", agentctx.CodeInvalidClaim, "exec_act", set("exec_act", "")),
		claimsCase("ECT-C7", "exec_act control character", agentctx.CodeInvalidClaim, "exec_act", set("exec_act", "a\nb")),
		claimsCase("ECT-C7", "exec_act 257 bytes", agentctx.CodeInvalidClaim, "exec_act", set("exec_act", strings.Repeat("a", 257))),
		claimsCase("ECT-V11", "exec_act 256 bytes", "", "", set("exec_act", strings.Repeat("a", 256))),
		claimsCase("ECT-C8", "pred duplicate", agentctx.CodeInvalidClaim, "pred", set("pred", []string{jti2, jti2})),
		claimsCase("ECT-C8", "pred own jti", agentctx.CodeInvalidClaim, "pred", set("pred", []string{jti1})),
		claimsCase("ECT-C8", "pred not a UUID", agentctx.CodeInvalidClaim, "pred", set("pred", []string{"t1"})),
		claimsCase("ECT-C8", "pred over 100", agentctx.CodeInvalidClaim, "pred", set("pred", many)),
		claimsCase("DAG-7", "pred of 100", "", "", set("pred", many[:100])),
		{rule: "ECT-C8", name: "configured fan-in", code: agentctx.CodeInvalidClaim, claim: "pred", cfg: func(c *ect.Config) { c.MaxPred = 1 },
			token: func(t testing.TB) string { return signRaw(t, edKey, header(edKey), with(set("pred", many[:2]))) }},
		claimsCase("ECT-C11", "ect_ext depth 5", "", "", set("ect_ext", deep)),
		claimsCase("ECT-C11", "ect_ext depth 6", agentctx.CodeInvalidClaim, "ect_ext", set("ect_ext", tooDeep)),
		claimsCase("ECT-C11", "ect_ext over 4096 bytes", agentctx.CodeInvalidClaim, "ect_ext", set("ect_ext", map[string]any{"com.example.pad": strings.Repeat("x", 4096)})),
		claimsCase("ECT-C14", "pol without pol_decision", agentctx.CodeInvalidClaim, "ect_ext.pol", set("ect_ext", map[string]any{"pol": "p1"})),
		claimsCase("ECT-C14", "pol_decision without pol", agentctx.CodeInvalidClaim, "ect_ext.pol", set("ect_ext", map[string]any{"pol_decision": "approved"})),
		claimsCase("ECT-C14", "unknown pol_decision", agentctx.CodeInvalidClaim, "ect_ext.pol_decision", set("ect_ext", map[string]any{"pol": "p1", "pol_decision": "maybe"})),
		claimsCase("ECT-C14", "pol_timestamp not a date", agentctx.CodeInvalidClaim, "ect_ext.pol_timestamp", set("ect_ext", map[string]any{"pol": "p1", "pol_decision": "approved", "pol_timestamp": "x"})),
		claimsCase("ECT-C14", "policy keys valid", "", "", set("ect_ext", map[string]any{"pol": "p1", "pol_decision": "approved", "pol_enforcer": "https://pdp.example", "pol_timestamp": now.Unix()})),
	}
}

func mustDecode(t testing.TB, s string) []byte {
	b, err := jws.DecodeSegment(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyRules checks one rule of spec/ect.md per subtest, named
// "<rule ID>/<scenario>".
func TestVerifyRules(t *testing.T) {
	for _, c := range ruleCases() {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			v, _ := newVerifier(t, c.cfg)
			res, err := v.Verify(context.Background(), c.token(t))
			if got := agentctx.CodeOf(err); got != c.code {
				t.Fatalf("code %q (%v), want %q", got, err, c.code)
			}
			if err != nil {
				var e *agentctx.Error
				if !errors.As(err, &e) || e.Rule == "" {
					t.Fatalf("error %v carries no rule", err)
				}
				if e.Rule != c.rule {
					t.Fatalf("rule %s, want %s (%v)", e.Rule, c.rule, err)
				}
				if c.claim != "" && e.Claim != c.claim {
					t.Fatalf("claim %q, want %q (%v)", e.Claim, c.claim, err)
				}
				if !errors.Is(err, c.code.Err()) {
					t.Fatalf("errors.Is(err, %s) is false", c.code)
				}
				return
			}
			if res == nil || res.Claims == nil || len(res.Payload) == 0 {
				t.Fatal("valid token without result")
			}
		})
	}
}

// TestAlgCheckedBeforeKeyLookup: ECT-V4 runs before any key is looked up.
func TestAlgCheckedBeforeKeyLookup(t *testing.T) {
	for _, alg := range []string{"none", "HS256", "RS256", "PS256", "ES384"} {
		v, spy := newVerifier(t, nil)
		tok := signRaw(t, edKey, withHeader(set("alg", alg)), baseClaims())
		if _, err := v.Verify(context.Background(), tok); agentctx.CodeOf(err) != agentctx.CodeAlgNotAllowed {
			t.Fatalf("%s: %v", alg, err)
		}
		if spy.calls != 0 {
			t.Fatalf("%s: %d key look-ups before the alg check", alg, spy.calls)
		}
	}
}

func TestVerifyResult(t *testing.T) {
	v, _ := newVerifier(t, nil)
	c := baseClaims()
	c["x-custom"] = "kept"
	c["pred"] = []string{jti2}
	res, err := v.Verify(context.Background(), signRaw(t, ecKey, header(ecKey), c))
	if err != nil {
		t.Fatal(err)
	}
	if res.Level != ect.L2 || res.Alg != "ES256" || res.KeyID != ecKey.KeyID() {
		t.Fatalf("result %+v", res)
	}
	got := res.Claims
	if got.Issuer != issA || got.ID != jti1 || got.WorkflowID != wid1 || got.ExecAct != "review_spec" ||
		len(got.Pred) != 1 || got.Pred[0] != jti2 || got.InputHash != hashIn || !got.IssuedAt.Equal(now) ||
		!got.Expiry.Equal(now.Add(600*time.Second)) || len(got.Audience) != 2 {
		t.Fatalf("claims %+v", got)
	}
	// SPEC: ECT-C13 unknown claims preserved in the raw payload.
	if !strings.Contains(string(res.Payload), `"x-custom":"kept"`) {
		t.Fatalf("payload lost an unknown claim: %s", res.Payload)
	}
}

// TestReplay covers ECT-V12: the same task twice is a replay, in its wid
// scope; the cache is bounded and fails closed.
func TestReplay(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, nil)
	tok := signRaw(t, edKey, header(edKey), baseClaims())
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); agentctx.CodeOf(err) != agentctx.CodeReplay {
		t.Fatalf("second presentation: %v, want replay", err)
	}
	// Same jti, upper case: same task.
	if _, err := v.Verify(ctx, signRaw(t, edKey, header(edKey), with(set("jti", strings.ToUpper(jti1))))); agentctx.CodeOf(err) != agentctx.CodeReplay {
		t.Fatalf("same jti in upper case: %v, want replay", err)
	}
	// Same jti in another workflow: another task.
	if _, err := v.Verify(ctx, signRaw(t, edKey, header(edKey), with(set("wid", "9d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77")))); err != nil {
		t.Fatalf("same jti, other wid: %v", err)
	}
	// Same jti without wid: global scope, distinct from the wid scope.
	if _, err := v.Verify(ctx, signRaw(t, edKey, header(edKey), with(del("wid")))); err != nil {
		t.Fatalf("same jti, no wid: %v", err)
	}
}

// TestAuditVerification: time checks as of the receipt time, no replay check.
func TestAuditVerification(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, func(c *ect.Config) { c.Clock = func() time.Time { return now.Add(30 * 24 * time.Hour) } })
	tok := signRaw(t, edKey, header(edKey), baseClaims())
	if _, err := v.Verify(ctx, tok); agentctx.CodeOf(err) != agentctx.CodeExpired {
		t.Fatalf("real-time a month later: %v, want expired", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := v.VerifyAudit(ctx, tok, now.Add(time.Second)); err != nil {
			t.Fatalf("audit #%d: %v", i, err)
		}
	}
	if _, err := v.VerifyAudit(ctx, tok, now.Add(time.Hour)); agentctx.CodeOf(err) != agentctx.CodeExpired {
		t.Fatalf("audit with a receipt after exp: %v, want expired", err)
	}
}

type recordingDAG struct {
	got     []dag.Node
	err     error
	missing []string
}

func (r *recordingDAG) Check(_ context.Context, n dag.Node) (*dag.Verdict, error) {
	r.got = append(r.got, n)
	if r.err != nil {
		return nil, r.err
	}
	return &dag.Verdict{Missing: r.missing}, nil
}

// TestReplayRecordedLast covers ECT-V12: a token refused by the DAG check
// is not recorded, so it can be presented again once its predecessor
// arrived; a replay is still refused.
func TestReplayRecordedLast(t *testing.T) {
	d := &recordingDAG{err: agentctx.Errorf(agentctx.CodeDAGUnknownPred, "DAG-2", "pred", "unknown")}
	v, _ := newVerifier(t, func(c *ect.Config) { c.DAG = d })
	tok := signRaw(t, edKey, header(edKey), with(set("pred", []string{jti2})))
	if _, err := v.Verify(context.Background(), tok); agentctx.CodeOf(err) != agentctx.CodeDAGUnknownPred {
		t.Fatalf("first: %v", err)
	}
	d.err = nil
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("ECT-V12: presented again after the DAG refusal: %v", err)
	}
	if _, err := v.Verify(context.Background(), tok); agentctx.CodeOf(err) != agentctx.CodeReplay {
		t.Fatalf("ECT-V12: replay: %v", err)
	}
}

// TestPartialResult covers DAG-2: in partial mode the result carries the
// missing predecessors.
func TestPartialResult(t *testing.T) {
	d := &recordingDAG{missing: []string{jti2}}
	v, _ := newVerifier(t, func(c *ect.Config) { c.DAG = d })
	res, err := v.Verify(context.Background(), signRaw(t, edKey, header(edKey), with(set("pred", []string{jti2}))))
	if err != nil || !res.Partial || len(res.Missing) != 1 || res.Missing[0] != jti2 {
		t.Fatalf("DAG-2 partial result: %v %+v", err, res)
	}
}

// TestDAGSeam covers ECT-V13: a configured validator sees the verified node,
// and its verdict is the verifier's.
func TestDAGSeam(t *testing.T) {
	d := &recordingDAG{}
	v, _ := newVerifier(t, func(c *ect.Config) { c.DAG = d })
	c := with(set("pred", []string{jti2}))
	c["ect_ext"] = map[string]any{"pol": "p", "pol_decision": "approved"}
	if _, err := v.Verify(context.Background(), signRaw(t, edKey, header(edKey), c)); err != nil {
		t.Fatal(err)
	}
	if len(d.got) != 1 || d.got[0].JTI != jti1 || d.got[0].WID != wid1 || d.got[0].Pred[0] != jti2 ||
		d.got[0].Kind != dag.KindECT || !d.got[0].Time.Equal(now) || d.got[0].PolicyDecision != "approved" {
		t.Fatalf("node %+v", d.got)
	}
	d.err = agentctx.Errorf(agentctx.CodeDAGUnknownPred, "DAG-2", "pred", "unknown")
	v2, _ := newVerifier(t, func(c *ect.Config) { c.DAG = d })
	if _, err := v2.Verify(context.Background(), signRaw(t, edKey, header(edKey), c)); agentctx.CodeOf(err) != agentctx.CodeDAGUnknownPred {
		t.Fatalf("DAG verdict lost: %v", err)
	}
}

func TestNewVerifierRequiresExpectations(t *testing.T) {
	good := ect.Config{Trust: testTrust(t), Audience: audB, Clock: time.Now}
	for name, mod := range map[string]func(*ect.Config){
		"no trust":       func(c *ect.Config) { c.Trust = nil },
		"no audience":    func(c *ect.Config) { c.Audience = "" },
		"no clock":       func(c *ect.Config) { c.Clock = nil },
		"bad level":      func(c *ect.Config) { c.MinLevel = 4 },
		"negative skew":  func(c *ect.Config) { c.Skew = -time.Second },
		"negative limit": func(c *ect.Config) { c.MaxPred = -1 },
	} {
		cfg := good
		mod(&cfg)
		if _, err := ect.NewVerifier(cfg); !errors.Is(err, ect.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	if _, err := ect.NewVerifier(good); err != nil {
		t.Fatal(err)
	}
}

// TestInlineStore: predecessors received with a token become the DAG store
// it is checked against (spec/dag.md, TR-1), after their own verification.
func TestInlineStore(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, nil)
	// The predecessor was sent to someone else, long ago: still evidence.
	pc := with(func(m map[string]any) {
		m["jti"], m["aud"], m["iat"], m["exp"] = jti2, []string{"spiffe://example.com/agent/z"}, now.Unix()-7200, now.Unix()-6600
	})
	pred := signRaw(t, edKey, header(edKey), pc)
	store, err := v.InlineStore(ctx, []string{pred})
	if err != nil {
		t.Fatal(err)
	}
	tok := signRaw(t, edKey, header(edKey), with(set("pred", []string{jti2})))
	d := dag.NewChecker(store, dag.Config{})
	v2, _ := newVerifier(t, func(c *ect.Config) { c.DAG = d })
	if _, err := v2.Verify(ctx, tok); err != nil {
		t.Fatalf("with its predecessor inline: %v", err)
	}
	v3, _ := newVerifier(t, func(c *ect.Config) { c.DAG = dag.NewChecker(dag.NewMemStore(), dag.Config{}) })
	if _, err := v3.Verify(ctx, tok); agentctx.CodeOf(err) != agentctx.CodeDAGUnknownPred {
		t.Fatalf("without it: %v", err)
	}
	// A forged predecessor is refused.
	forged := signRaw(t, other, header(edKey), pc)
	if _, err := v.InlineStore(ctx, []string{forged}); agentctx.CodeOf(err) != agentctx.CodeBadSignature {
		t.Fatalf("forged predecessor: %v", err)
	}
}
