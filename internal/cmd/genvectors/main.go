// Command genvectors writes the test vectors under testdata/vectors/ect and
// testdata/vectors/act (one JSON file per scenario, the trust file they
// verify against, and the test keys that signed them) and
// testdata/vectors/receipts (a small ledger's receipts in the three
// encodings of SVC-6a). Run it from the repository root:
//
//	go run ./internal/cmd/genvectors
//
// Every signature is deterministic (Ed25519, and ES256 with RFC 6979), so
// the files are reproducible: TestGenerated fails when the files under
// testdata/vectors differ from what this command writes.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

// Vector is one scenario. A verifier configured with the folder's trust.json,
// Audience, the clock fixed at Now and MinLevel first verifies every token of
// Before (each must be valid), then Token, and must answer Expect: "valid" or
// one of the error codes of spec/ect.md.
type Vector struct {
	Description string   `json:"description"`
	Rule        string   `json:"rule"`
	Audience    string   `json:"audience"`
	Now         int64    `json:"now"`
	MinLevel    int      `json:"min_level"`
	Before      []string `json:"before,omitempty"`
	Token       string   `json:"token"`
	Expect      string   `json:"expect"`
}

const (
	now      = 1767225600
	issA     = "spiffe://example.com/agent/a"
	issB     = "spiffe://example.com/agent/b"
	audB     = "spiffe://example.com/agent/b"
	ledgerID = "spiffe://example.com/system/ledger"
	jti1     = "0b7c5e4e-5f7a-4c1e-9d55-8b8c0f4a2e11"
	jti2     = "1c8d6f5f-6a8b-4d2f-8e66-9c9d1a5b3f22"
	wid1     = "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77"
)

var (
	edA = testkeys.EdDSA("vectors agent a", "agent-a-ed")
	ecA = testkeys.Deterministic(testkeys.ES256("vectors agent a", "agent-a-ec"))
	edB = testkeys.EdDSA("vectors agent b", "agent-b-ed")
	// rogue is trusted by nobody.
	rogue = testkeys.EdDSA("vectors rogue", "agent-a-ed")
)

type obj = map[string]any

func claims() obj {
	return obj{
		"iss": issA, "aud": []string{audB, ledgerID}, "iat": now, "exp": now + 600,
		"jti": jti1, "wid": wid1, "exec_act": "review_spec", "pred": []string{jti2},
		"inp_hash": agentctx.HashBytes([]byte("input")), "out_hash": agentctx.HashBytes([]byte("output")),
	}
}

func hdr(k *trust.SigningKey) obj { return obj{"alg": k.Alg(), "kid": k.KeyID(), "typ": "exec+jwt"} }

func enc(v any) []byte {
	if b, ok := v.([]byte); ok {
		return b
	}
	b, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func sign(k *trust.SigningKey, h, c any) string {
	tok, err := jws.Encode(k.Alg(), k.Signer(), enc(h), enc(c))
	if err != nil {
		log.Fatal(err)
	}
	return tok
}

func edit(m obj, f func(obj)) obj { f(m); return m }

func set(k string, v any) func(obj) { return func(m obj) { m[k] = v } }
func del(k string) func(obj)        { return func(m obj) { delete(m, k) } }

// c signs the default header over claims changed by f.
func c(f func(obj)) string { return sign(edA, hdr(edA), edit(claims(), f)) }

// h signs a changed header over the default claims.
func h(f func(obj)) string { return sign(edA, edit(hdr(edA), f), claims()) }

func uuids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	return out
}

func nest(depth int) any {
	var v any = 1
	for i := 0; i < depth; i++ {
		v = obj{"n": v}
	}
	return v
}

func scenarios() map[string]Vector {
	valid := c(func(obj) {})
	parts := strings.Split(valid, ".")
	v := func(rule, expect, desc, tok string) Vector {
		return Vector{Description: desc, Rule: rule, Audience: audB, Now: now, MinLevel: 2, Token: tok, Expect: expect}
	}
	withLevel := func(x Vector, l int) Vector { x.MinLevel = l; return x }
	withNow := func(x Vector, t int64) Vector { x.Now = t; return x }
	unsigned := jws.EncodeSegment(enc(claims()))
	derSig := func() string {
		sig, err := jws.DecodeSegment(strings.Split(sign(ecA, hdr(ecA), claims()), ".")[2])
		if err != nil {
			log.Fatal(err)
		}
		// Re-encode r||s as DER: ES256 signatures must be the 64-byte form.
		der := derEncode(sig[:32], sig[32:])
		return strings.Join(strings.Split(sign(ecA, hdr(ecA), claims()), ".")[:2], ".") + "." + jws.EncodeSegment(der)
	}
	return map[string]Vector{
		"valid-eddsa":              v("ECT-V6", "valid", "EdDSA-signed ECT with every claim", valid),
		"valid-es256":              v("ECT-V6", "valid", "ES256-signed ECT", sign(ecA, hdr(ecA), claims())),
		"valid-alg-ed25519":        v("ECT-H2", "valid", "alg Ed25519 is a synonym of EdDSA [decision]", h(set("alg", "Ed25519"))),
		"valid-aud-string":         v("ECT-C2", "valid", "aud as a single string", c(set("aud", audB))),
		"valid-root":               v("ECT-C8", "valid", "root task: empty pred, no hashes, no wid", c(func(m obj) { m["pred"] = []string{}; delete(m, "inp_hash"); delete(m, "out_hash"); delete(m, "wid") })),
		"valid-typ-media-type":     v("ECT-H1", "valid", "typ application/exec+jwt, mixed case", h(set("typ", "application/EXEC+jwt"))),
		"valid-legacy-typ":         v("ECT-H1", "valid", "legacy typ wimse-exec+jwt", h(set("typ", "wimse-exec+jwt"))),
		"valid-legacy-par":         v("ECT-C8", "valid", "legacy par instead of pred", c(func(m obj) { m["par"] = m["pred"]; delete(m, "pred") })),
		"valid-legacy-ext":         v("ECT-C11", "valid", "legacy ext instead of ect_ext", c(set("ext", obj{"com.example.x": 1}))),
		"valid-unknown-claims":     v("ECT-C13", "valid", "unknown claims are ignored", c(set("com.example.extra", obj{"a": []int{1, 2}}))),
		"valid-policy":             v("ECT-C14", "valid", "policy extension keys", c(set("ect_ext", obj{"pol": "p-1", "pol_decision": "approved", "pol_enforcer": "https://pdp.example.com", "pol_timestamp": now}))),
		"valid-exp-within-skew":    withNow(v("ECT-V8", "valid", "exp 59 s in the past, within the 60 s skew", c(func(m obj) { m["iat"] = now - 300; m["exp"] = now - 59 })), now),
		"valid-l1-when-allowed":    withLevel(v("ECT-L1", "valid", "unsigned L1 token with minimum level 1", unsigned), 1),
		"valid-ext-depth-5":        v("ECT-C11", "valid", "ect_ext nested 5 levels", c(set("ect_ext", nest(5)))),
		"valid-pred-100":           v("ECT-C8", "valid", "pred with 100 entries", c(set("pred", uuids(100)))),
		"too-large":                v("ECT-V1", "too_large", "token over 8192 bytes", c(set("pad", strings.Repeat("x", 8200)))),
		"malformed-garbage":        v("ECT-V2", "malformed", "not a token", "hello world"),
		"malformed-two-segments":   v("ECT-V2", "malformed", "two segments", parts[0]+"."+parts[1]),
		"malformed-jwe":            v("ECT-V2", "malformed", "five segments (JWE)", valid+".a.b"),
		"malformed-padding":        v("ECT-V2", "malformed", "padded base64url", parts[0]+"=."+parts[1]+"."+parts[2]),
		"malformed-alphabet":       v("ECT-V2", "malformed", "standard base64 alphabet", parts[0]+"."+parts[1]+"+."+parts[2]),
		"malformed-dup-claim":      v("ECT-V2", "malformed", "duplicate claim name", sign(edA, hdr(edA), append([]byte(`{"iss":"spiffe://evil.example/x",`), enc(claims())[1:]...))),
		"malformed-dup-header":     v("ECT-V2", "malformed", "duplicate header parameter", sign(edA, []byte(`{"alg":"EdDSA","alg":"EdDSA","kid":"agent-a-ed","typ":"exec+jwt"}`), claims())),
		"malformed-payload-array":  v("ECT-V2", "malformed", "payload is not an object", sign(edA, hdr(edA), []byte(`[1]`))),
		"alg-none-unsecured":       v("ECT-V4", "alg_not_allowed", "unsecured JWT: alg none, empty signature", jws.EncodeSegment([]byte(`{"alg":"none","kid":"agent-a-ed","typ":"exec+jwt"}`))+"."+parts[1]+"."),
		"bad-signature-empty":      v("ECT-V6", "bad_signature", "EdDSA token with an empty signature segment", parts[0]+"."+parts[1]+"."),
		"level-too-low-l1":         v("ECT-L2", "level_too_low", "unsigned L1 token at the default minimum level", unsigned),
		"level-too-low-l3":         withLevel(v("ECT-L3", "level_too_low", "signed token without a ledger receipt, minimum level 3", valid), 3),
		"invalid-typ-missing":      v("ECT-V3", "invalid_typ", "no typ", h(del("typ"))),
		"invalid-typ-act":          v("ECT-V3", "invalid_typ", "typ act+jwt", h(set("typ", "act+jwt"))),
		"invalid-typ-jwt":          v("ECT-V3", "invalid_typ", "typ JWT", h(set("typ", "JWT"))),
		"invalid-typ-wit":          v("ECT-V3", "invalid_typ", "typ wit+jwt", h(set("typ", "wit+jwt"))),
		"alg-none":                 v("ECT-V4", "alg_not_allowed", "alg none", h(set("alg", "none"))),
		"alg-hs256":                v("ECT-V4", "alg_not_allowed", "alg HS256", h(set("alg", "HS256"))),
		"alg-rs256":                v("ECT-V4", "alg_not_allowed", "alg RS256", h(set("alg", "RS256"))),
		"alg-es384":                v("ECT-V4", "alg_not_allowed", "alg ES384", h(set("alg", "ES384"))),
		"alg-missing":              v("ECT-V4", "alg_not_allowed", "no alg", h(del("alg"))),
		"crit":                     v("ECT-V4", "unsupported_crit", "crit header parameter", h(set("crit", []string{"exp"}))),
		"unknown-kid":              v("ECT-V5", "unknown_key", "kid not in the trust file", h(set("kid", "nobody"))),
		"missing-kid":              v("ECT-V5", "unknown_key", "no kid", h(del("kid"))),
		"key-other-issuer":         v("TR-7a", "unknown_key", "kid of agent b used by issuer a", h(set("kid", edB.KeyID()))),
		"key-alg-mismatch":         v("ECT-V5", "unknown_key", "EdDSA header naming a P-256 key", h(set("kid", ecA.KeyID()))),
		"bad-signature":            v("ECT-V6", "bad_signature", "signed by an untrusted key with a trusted kid", sign(rogue, hdr(rogue), claims())),
		"bad-signature-der":        v("ECT-V6", "bad_signature", "ES256 signature in DER form", derSig()),
		"missing-iss":              v("ECT-C1", "missing_claim", "no iss", c(del("iss"))),
		"missing-aud":              v("ECT-C2", "missing_claim", "no aud", c(del("aud"))),
		"missing-iat":              v("ECT-C3", "missing_claim", "no iat", c(del("iat"))),
		"missing-exp":              v("ECT-C4", "missing_claim", "no exp", c(del("exp"))),
		"missing-jti":              v("ECT-C5", "missing_claim", "no jti", c(del("jti"))),
		"missing-exec-act":         v("ECT-C7", "missing_claim", "no exec_act", c(del("exec_act"))),
		"missing-pred":             v("ECT-C8", "missing_claim", "no pred and no par", c(del("pred"))),
		"invalid-iat-string":       v("ECT-C3", "invalid_claim", "iat as a string", c(set("iat", fmt.Sprint(now)))),
		"invalid-iat-fraction":     v("ECT-C3", "invalid_claim", "iat with a fraction", c(set("iat", now+0.5))),
		"invalid-aud-empty":        v("ECT-C2", "invalid_claim", "aud is an empty array", c(set("aud", []string{}))),
		"invalid-pred-string":      v("ECT-C8", "invalid_claim", "pred is a string", c(set("pred", jti2))),
		"invalid-exp-before-iat":   v("ECT-C4", "invalid_claim", "exp equal to iat", c(set("exp", now))),
		"expired":                  v("ECT-V8", "expired", "exp 61 s in the past", c(func(m obj) { m["iat"] = now - 300; m["exp"] = now - 61 })),
		"not-yet-valid":            v("ECT-V8", "not_yet_valid", "nbf 2 minutes ahead", c(set("nbf", now+120))),
		"iat-in-future":            v("ECT-V9", "iat_in_future", "iat 61 s ahead", c(func(m obj) { m["iat"] = now + 61; m["exp"] = now + 661 })),
		"too-old":                  v("ECT-V9", "too_old", "iat 901 s in the past, exp still ahead", c(func(m obj) { m["iat"] = now - 901; m["exp"] = now + 600 })),
		"audience-mismatch":        v("ECT-V10", "audience_mismatch", "aud names only the ledger", c(set("aud", []string{ledgerID}))),
		"invalid-jti":              v("ECT-C5", "invalid_claim", "jti is not a UUID", c(set("jti", "task-1"))),
		"invalid-wid":              v("ECT-C6", "invalid_claim", "wid is not a UUID", c(set("wid", "workflow-1"))),
		"invalid-hash-prefix":      v("ECT-C9", "invalid_claim", "inp_hash with the old sha-256: prefix", c(set("inp_hash", "sha-256:"+agentctx.HashBytes([]byte("input"))))),
		"invalid-hash-hex":         v("ECT-C10", "invalid_claim", "out_hash in hex", c(set("out_hash", strings.Repeat("ab", 32)))),
		"invalid-exec-act-control": v("ECT-C7", "invalid_claim", "exec_act with a newline", c(set("exec_act", "review\nspec"))),
		"invalid-exec-act-long":    v("ECT-C7", "invalid_claim", "exec_act of 257 bytes", c(set("exec_act", strings.Repeat("a", 257)))),
		"invalid-pred-duplicate":   v("ECT-C8", "invalid_claim", "pred lists one task twice", c(set("pred", []string{jti2, jti2}))),
		"invalid-pred-self":        v("ECT-C8", "invalid_claim", "pred names the token's own jti", c(set("pred", []string{jti1}))),
		"invalid-pred-101":         v("ECT-C8", "invalid_claim", "pred with 101 entries", c(set("pred", uuids(101)))),
		"invalid-ext-depth-6":      v("ECT-C11", "invalid_claim", "ect_ext nested 6 levels", c(set("ect_ext", nest(6)))),
		"invalid-ext-size":         v("ECT-C11", "invalid_claim", "ect_ext over 4096 bytes", c(set("ect_ext", obj{"com.example.pad": strings.Repeat("x", 4100)}))),
		"invalid-pol-alone":        v("ECT-C14", "invalid_claim", "pol without pol_decision", c(set("ect_ext", obj{"pol": "p-1"}))),
		"invalid-pol-decision":     v("ECT-C14", "invalid_claim", "unknown pol_decision", c(set("ect_ext", obj{"pol": "p-1", "pol_decision": "maybe"}))),
		"replay": func() Vector {
			x := v("ECT-V12", "replay", "the same ECT presented twice", valid)
			x.Before = []string{valid}
			return x
		}(),
		"replay-other-workflow": func() Vector {
			x := v("ECT-V12", "valid", "same jti in another workflow is another task", c(set("wid", "9d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77")))
			x.Before = []string{valid}
			return x
		}(),
	}
}

func main() {
	generate(filepath.Join("testdata", "vectors"))
}

// generate writes both suites under root.
func generate(root string) {
	ectVectors := map[string]any{}
	for name, v := range scenarios() {
		ectVectors[name] = v
	}
	writeSuite(filepath.Join(root, "ect"), []obj{
		{"id": issA, "keys": []*trust.SigningKey{edA, ecA}},
		{"id": issB, "keys": []*trust.SigningKey{edB}},
	}, map[string]*trust.SigningKey{"agent-a-ed": edA, "agent-a-ec": testkeys.ES256("vectors agent a", "agent-a-ec"), "agent-b-ed": edB, "rogue": rogue}, ectVectors)
	writeSuite(filepath.Join(root, "act"), actTrust(), actKeys(), actScenarios())
	writeReceipts(filepath.Join(root, "receipts"))
}

// writeSuite replaces the vectors of dir: one file per scenario, trust.json
// (entries with "keys" as signing keys, written as public JWKs) and the
// private test keys under keys/.
func writeSuite(dir string, trustEntries []obj, keys map[string]*trust.SigningKey, vectors map[string]any) {
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		log.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range old {
		os.Remove(f)
	}
	write := func(name string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	for _, e := range trustEntries {
		var jwks []json.RawMessage
		for _, k := range e["keys"].([]*trust.SigningKey) {
			j, err := trust.PublicJWK(k.Public())
			if err != nil {
				log.Fatal(err)
			}
			jwks = append(jwks, j)
		}
		e["keys"] = jwks
	}
	write(filepath.Join(dir, "trust.json"), obj{"issuers": trustEntries})
	for name, k := range keys {
		j, err := k.MarshalJWK()
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "keys", name+".jwk"), append(j, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	for name, v := range vectors {
		write(filepath.Join(dir, name+".json"), v)
	}
	fmt.Printf("wrote %d vectors to %s\n", len(vectors), dir)
}

// derEncode returns the ASN.1 DER SEQUENCE of two INTEGERs r and s.
func derEncode(r, s []byte) []byte {
	integer := func(b []byte) []byte {
		for len(b) > 1 && b[0] == 0 && b[1] < 0x80 {
			b = b[1:]
		}
		if b[0] >= 0x80 {
			b = append([]byte{0}, b...)
		}
		return append([]byte{0x02, byte(len(b))}, b...)
	}
	body := append(integer(r), integer(s)...)
	return append([]byte{0x30, byte(len(body))}, body...)
}
