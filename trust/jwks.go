package trust

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/jws"
)

// Limits of a JWKS URL source (TR-7).
const (
	MaxJWKSSize         = 1 << 20          // a response over 1 MiB is refused
	JWKSRefreshInterval = 30 * time.Second // at most one refresh per source in this time
	JWKSFetchTimeout    = 10 * time.Second
)

// JWKSConfig configures a JWKS URL source.
type JWKSConfig struct {
	// URL is fetched over HTTPS; plain http only for a loopback address
	// (tests). Required.
	URL string
	// Client fetches; nil means a client with JWKSFetchTimeout.
	Client *http.Client
	// Clock returns the current time. Required.
	Clock func() time.Time
}

// JWKS is a trust source that fetches a JWK Set from a URL (TR-7): the set
// is cached; an unknown kid refreshes it at most once per
// JWKSRefreshInterval, and kids still unknown after a refresh are answered
// from a negative cache until the next refresh is allowed, so random kids
// cannot force fetches; concurrent misses share one fetch; a refresh
// replaces the whole set. It is safe for concurrent use.
type JWKS struct {
	cfg JWKSConfig

	mu       sync.Mutex
	keys     map[string]Key // kid -> key
	last     time.Time      // last fetch attempt
	lastErr  error
	inflight chan struct{} // closed when the running fetch ends
	fetches  int
}

// NewJWKS checks cfg and returns the source (nothing is fetched yet).
func NewJWKS(cfg JWKSConfig) (*JWKS, error) {
	if cfg.Clock == nil {
		return nil, errors.New("trust: a JWKS source needs a Clock")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("trust: jwks_url %q is not a URL", cfg.URL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("trust: jwks_url %q must be https (plain http only for a loopback address)", cfg.URL)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: JWKSFetchTimeout}
	}
	return &JWKS{cfg: cfg, keys: map[string]Key{}}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Fetches returns how many fetches the source made (for tests and metrics).
func (s *JWKS) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// Key returns the key named kid, refreshing the set when kid is unknown and
// a refresh is allowed. It returns an unknown_key error when the set holds
// no such key.
func (s *JWKS) Key(ctx context.Context, kid string) (Key, error) {
	for {
		s.mu.Lock()
		if k, ok := s.keys[kid]; ok {
			s.mu.Unlock()
			return k, nil
		}
		if s.inflight != nil { // share the running fetch
			ch := s.inflight
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return Key{}, ctx.Err()
			}
		}
		now := s.cfg.Clock()
		if !s.last.IsZero() && now.Sub(s.last) < JWKSRefreshInterval {
			err := s.lastErr
			s.mu.Unlock()
			if err != nil {
				return Key{}, fmt.Errorf("trust: %s unavailable: %w", s.cfg.URL, err)
			}
			// SPEC: TR-7 negative cache of unknown kids until the next refresh.
			return Key{}, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7", "kid", "no key %q at %s", kid, s.cfg.URL)
		}
		ch := make(chan struct{})
		s.inflight, s.last = ch, now
		s.fetches++
		s.mu.Unlock()
		keys, err := s.fetch(ctx)
		s.mu.Lock()
		if err == nil {
			s.keys = keys // SPEC: TR-7 a refresh replaces the whole set
		}
		s.lastErr = err
		s.inflight = nil
		close(ch)
		s.mu.Unlock()
	}
}

func (s *JWKS) fetch(ctx context.Context) (map[string]Key, error) {
	ctx, cancel := context.WithTimeout(ctx, JWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("the JWKS is over %d bytes", MaxJWKSSize)
	}
	ks, err := parseJWKSLenient(b)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Key, len(ks))
	for _, k := range ks {
		out[k.KeyID] = k
	}
	return out, nil
}

// parseJWKSLenient reads a JWK Set keeping the usable keys (ES256 and
// EdDSA) and skipping others (RSA keys of a shared JWKS).
func parseJWKSLenient(b []byte) ([]Key, error) {
	raws, err := jwksMembers(b)
	if err != nil {
		return nil, err
	}
	var out []Key
	for _, raw := range raws {
		if k, err := ParseJWK(raw); err == nil {
			out = append(out, k)
		}
	}
	return out, nil
}

// jwksBinding is a JWKS URL source bound to issuers, as a Resolver.
type jwksBinding struct {
	src     *JWKS
	binding Binding
}

// ResolveKey implements Resolver for the issuers the binding covers.
func (j jwksBinding) ResolveKey(ctx context.Context, issuer, kid, alg string) (crypto.PublicKey, error) {
	if !j.binding.covers(issuer) {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-7a", "iss", "the JWKS source is not trusted for issuer %q", issuer)
	}
	k, err := j.src.Key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if !jws.KeyMatchesAlg(k.Public, alg) {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "ECT-V5", "alg", "key %q is not a %s key", kid, alg)
	}
	return k.Public, nil
}

// jwksWIT is a JWKS URL source of a trust domain's WIT issuer keys.
type jwksWIT struct {
	src    *JWKS
	domain string
}

func (j jwksWIT) resolveWIT(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	k, err := j.src.Key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if !jws.KeyMatchesAlg(k.Public, alg) {
		return nil, agentctx.Errorf(agentctx.CodeUnknownKey, "TR-4", "alg", "the WIT key %q is not a %s key", kid, alg)
	}
	return k.Public, nil
}

// jwksMembers returns the raw members of a JWK Set's "keys".
func jwksMembers(b []byte) ([]json.RawMessage, error) {
	var f struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("the JWKS is not valid JSON: %w", err)
	}
	if f.Keys == nil {
		return nil, errors.New("the JWKS has no \"keys\"")
	}
	return f.Keys, nil
}
