package trust

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jws"
)

// WITResolver finds the key of a trust domain's identity server, which signs
// the Workload Identity Tokens (WITs) of that domain (TR-4, TR-7). It is
// keyed by the trust domain of the WIT's sub, never by its iss.
type WITResolver interface {
	// ResolveWITKey returns the public key named kid of trustDomain for alg.
	// An empty kid selects the trust domain's key only when it has exactly
	// one. When no key matches it returns an *agentctx.Error with code
	// unknown_key; any other error is a failure of the source.
	ResolveWITKey(ctx context.Context, trustDomain, kid, alg string) (crypto.PublicKey, error)
}

// AddWIT trusts keys to sign the WITs of trustDomain (the authority of a
// workload identifier, e.g. "example.com").
func (s *Set) AddWIT(trustDomain string, keys ...Key) error {
	if trustDomain == "" || strings.ContainsAny(trustDomain, "/:@?# ") {
		return fmt.Errorf("trust domain %q must be a bare host name", trustDomain)
	}
	for _, k := range keys {
		if !jws.KeyMatchesAlg(k.Public, k.Alg) {
			return fmt.Errorf("WIT issuer key %q: algorithm %q does not match the key type", k.KeyID, k.Alg)
		}
	}
	if s.wit == nil {
		s.wit = map[string][]Key{}
	}
	td := strings.ToLower(trustDomain)
	s.wit[td] = append(s.wit[td], keys...)
	return nil
}

// ResolveWITKey implements WITResolver.
func (s *Set) ResolveWITKey(ctx context.Context, trustDomain, kid, alg string) (crypto.PublicKey, error) {
	keys := s.wit[strings.ToLower(trustDomain)]
	if src, ok := s.witSources[strings.ToLower(trustDomain)]; ok && len(keys) == 0 {
		if kid == "" {
			return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-4", "kid", "the WIT names no kid and trust domain %q's keys come from a JWKS URL", trustDomain)
		}
		return src.resolveWIT(ctx, kid, alg)
	}
	if len(keys) == 0 {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-4", "sub", "no WIT issuer key is trusted for trust domain %q", trustDomain)
	}
	if kid == "" {
		if len(keys) != 1 {
			return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-4", "kid", "the WIT names no kid and trust domain %q has %d keys", trustDomain, len(keys))
		}
		if !jws.KeyMatchesAlg(keys[0].Public, alg) {
			return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-4", "alg", "the key of trust domain %q is not a %s key", trustDomain, alg)
		}
		return keys[0].Public, nil
	}
	for _, k := range keys {
		if k.KeyID == kid && jws.KeyMatchesAlg(k.Public, alg) {
			return k.Public, nil
		}
	}
	return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-4", "kid", "trust domain %q has no %s key %q", trustDomain, alg, kid)
}

// WorkloadDomainOK checks a trust domain name as AddWIT does.
func WorkloadDomainOK(trustDomain string) (string, error) {
	if trustDomain == "" || strings.ContainsAny(trustDomain, "/:@?# ") {
		return "", fmt.Errorf("trust domain %q must be a bare host name", trustDomain)
	}
	return strings.ToLower(trustDomain), nil
}

// errNoWIT is returned for a trust file entry of wit_issuers without keys.
var errNoWIT = errors.New("no keys")
