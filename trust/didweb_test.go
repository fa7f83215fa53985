package trust_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

// TestDIDWeb covers TR-7's did:web source through a caller-supplied fetch.
func TestDIDWeb(t *testing.T) {
	for did, want := range map[string]string{
		"did:web:example.com":          "https://example.com/.well-known/did.json",
		"did:web:example.com:agents:a": "https://example.com/agents/a/did.json",
		"did:web:localhost%3A8443:u":   "https://localhost:8443/u/did.json",
		"did:web:example.com:..:etc":   "",
		"did:key:z6Mk":                 "",
	} {
		got, ok := trust.DIDWebURL(did)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v", did, got, ok)
		}
	}
	k := testkeys.EdDSA("did web", "key-1")
	jwk, _ := trust.PublicJWK(k.Public())
	const did = "did:web:example.com:agents:a"
	doc, _ := json.Marshal(map[string]any{"id": did, "verificationMethod": []any{map[string]any{"id": "#key-1", "controller": did, "publicKeyJwk": json.RawMessage(jwk)}}})
	r := trust.DIDWeb{Fetch: func(_ context.Context, u string) ([]byte, error) {
		if u != "https://example.com/agents/a/did.json" {
			return nil, errors.New("not found")
		}
		return doc, nil
	}}
	now := time.Unix(1767225600, 0)
	tok, err := ect.Create(k, &ect.Claims{Issuer: did, Audience: []string{"b"}, ExecAct: "x"}, now)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ect.NewVerifier(ect.Config{Trust: r, Audience: "b", Clock: func() time.Time { return now }})
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("a kid that is not the method's id resolved")
	}
	if _, err := r.ResolveKey(context.Background(), did, "#key-1", "EdDSA"); err != nil {
		t.Fatalf("TR-7: did:web: %v", err)
	}
	if _, err := r.ResolveKey(context.Background(), did, "#key-2", "EdDSA"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
		t.Fatalf("an unknown method: %v", err)
	}
	if _, err := r.ResolveKey(context.Background(), did, "#key-1", "ES256"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
		t.Fatalf("a key of another algorithm: %v", err)
	}
}
