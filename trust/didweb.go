package trust

import (
	"context"
	"crypto"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jws"
)

// DIDWeb resolves did:web issuers (TR-7) through a fetch function the
// caller supplies (which decides on HTTPS, caching, size limits and
// timeouts): did:web:example.com:agents:a has its DID document at
// https://example.com/agents/a/did.json, and did:web:example.com at
// https://example.com/.well-known/did.json. The key is the
// verificationMethod whose id is the token's kid (absolute, or "#frag"
// relative to the DID), read from its publicKeyJwk.
type DIDWeb struct {
	Fetch func(ctx context.Context, url string) ([]byte, error)
}

// DIDWebURL returns the DID document URL of a did:web identifier.
func DIDWebURL(did string) (string, bool) {
	rest, ok := strings.CutPrefix(did, "did:web:")
	if !ok || rest == "" || strings.ContainsAny(rest, "/?#") {
		return "", false
	}
	parts := strings.Split(rest, ":")
	host, err := url.PathUnescape(parts[0]) // a port is written %3A
	if err != nil || host == "" {
		return "", false
	}
	if len(parts) == 1 {
		return "https://" + host + "/.well-known/did.json", true
	}
	for _, p := range parts[1:] {
		if p == "" || p == "." || p == ".." {
			return "", false
		}
	}
	return "https://" + host + "/" + strings.Join(parts[1:], "/") + "/did.json", true
}

// ResolveKey implements Resolver.
func (d DIDWeb) ResolveKey(ctx context.Context, issuer, kid, alg string) (crypto.PublicKey, error) {
	u, ok := DIDWebURL(issuer)
	if !ok {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "iss", "issuer %q is not a did:web identifier", issuer)
	}
	if d.Fetch == nil {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "iss", "no did:web fetcher is configured")
	}
	b, err := d.Fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	var doc struct {
		ID                 string `json:"id"`
		VerificationMethod []struct {
			ID           string          `json:"id"`
			Controller   string          `json:"controller"`
			PublicKeyJwk json.RawMessage `json:"publicKeyJwk"`
		} `json:"verificationMethod"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.ID != issuer {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "iss", "the DID document of %q does not describe it", issuer)
	}
	want := kid
	if strings.HasPrefix(kid, "#") {
		want = issuer + kid
	}
	for _, vm := range doc.VerificationMethod {
		id := vm.ID
		if strings.HasPrefix(id, "#") {
			id = issuer + id
		}
		if id != want || vm.PublicKeyJwk == nil {
			continue
		}
		k, err := ParseJWK(vm.PublicKeyJwk)
		if err != nil || !jws.KeyMatchesAlg(k.Public, alg) {
			return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "alg", "verification method %q is not a %s key", kid, alg)
		}
		return k.Public, nil
	}
	return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "kid", "the DID document of %q has no verification method %q", issuer, kid)
}
