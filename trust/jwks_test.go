package trust_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

type jwksServer struct {
	mu    sync.Mutex
	keys  []trust.Key
	hits  atomic.Int64
	stall chan struct{}
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	if s.stall != nil {
		select {
		case <-s.stall:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	var raws []json.RawMessage
	for _, k := range s.keys {
		j, _ := trust.PublicJWK(k)
		raws = append(raws, j)
	}
	s.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"keys": raws})
}

// TestJWKSURL covers TR-7's JWKS URL source over real HTTPS: fetched on
// first use, refreshed on an unknown kid at most once per 30 s, a negative
// cache against random kids, a rotation replacing the whole set, shared
// concurrent fetches, a stalled server, and the https-only rule.
func TestJWKSURL(t *testing.T) {
	k1 := testkeys.EdDSA("jwks 1", "k1")
	k2 := testkeys.ES256("jwks 2", "k2")
	js := &jwksServer{keys: []trust.Key{k1.Public()}}
	srv := httptest.NewTLSServer(js)
	defer srv.Close()
	now := time.Unix(1767225600, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	file := fmt.Sprintf(`{"issuers":[{"prefix":"spiffe://example.com/","jwks_url":%q}],"wit_issuers":[{"trust_domain":"example.com","jwks_url":%q}]}`, srv.URL, srv.URL)
	set, err := trust.ParseFileWith([]byte(file), trust.Options{Clock: clock, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := set.ResolveKey(ctx, "spiffe://example.com/a", "k1", "EdDSA"); err != nil {
		t.Fatalf("TR-7: first use: %v", err)
	}
	if _, err := set.ResolveKey(ctx, "spiffe://other.example/a", "k1", "EdDSA"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
		t.Fatalf("TR-7a: an issuer the entry does not cover: %v", err)
	}
	if _, err := set.ResolveWITKey(ctx, "example.com", "k1", "EdDSA"); err != nil {
		t.Fatalf("TR-7: WIT keys from a JWKS URL: %v", err)
	}
	// A flood of random kids: one fetch per 30 s, no more (none right
	// after the first fetch, one once 30 s have passed).
	for round, want := range []int64{0, 1} {
		base := js.hits.Load()
		for i := 0; i < 200; i++ {
			if _, err := set.ResolveKey(ctx, "spiffe://example.com/a", fmt.Sprintf("random-%d", i), "EdDSA"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
				t.Fatalf("random kid: %v", err)
			}
		}
		if got := js.hits.Load() - base; got != want {
			t.Fatalf("TR-7: round %d: %d fetches for a flood of random kids, want %d", round, got, want)
		}
		advance(31 * time.Second)
	}
	// Rotation: k2 replaces k1; after 30 s the unknown k2 refreshes the set.
	if _, err := set.ResolveKey(ctx, "spiffe://example.com/a", "random-x", "ES256"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
		t.Fatalf("random kid: %v", err)
	}
	js.mu.Lock()
	js.keys = []trust.Key{k2.Public()}
	js.mu.Unlock()
	if _, err := set.ResolveKey(ctx, "spiffe://example.com/a", "k2", "ES256"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
		t.Fatalf("within 30 s the negative cache answers: %v", err)
	}
	advance(31 * time.Second)
	if _, err := set.ResolveKey(ctx, "spiffe://example.com/a", "k2", "ES256"); err != nil {
		t.Fatalf("TR-7: after the rotation: %v", err)
	}
	if _, err := set.ResolveKey(ctx, "spiffe://example.com/a", "k1", "EdDSA"); agentctx.CodeOf(err) != agentctx.CodeUnknownKey {
		t.Fatalf("TR-7: a refresh replaces the whole set: %v", err)
	}
	// Concurrent misses share one fetch.
	advance(31 * time.Second)
	before := js.hits.Load()
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set.ResolveKey(ctx, "spiffe://example.com/a", "k-missing", "EdDSA")
		}()
	}
	wg.Wait()
	if got := js.hits.Load() - before; got != 1 {
		t.Fatalf("TR-7: %d fetches for 32 concurrent misses, want 1", got)
	}
}

// TestJWKSStallAndRefusals: a stalled server ends in a bounded error, an
// oversize set is refused, plain http only for loopback.
func TestJWKSStallAndRefusals(t *testing.T) {
	js := &jwksServer{stall: make(chan struct{})}
	srv := httptest.NewTLSServer(js)
	defer func() { close(js.stall); srv.Close() }()
	c := srv.Client()
	c.Timeout = 300 * time.Millisecond
	src, err := trust.NewJWKS(trust.JWKSConfig{URL: srv.URL, Client: c, Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := src.Key(context.Background(), "k"); err == nil || agentctx.CodeOf(err) == agentctx.CodeUnknownKey {
		t.Fatalf("a stalled server: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the stalled fetch was not bounded")
	}
	big := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[` + strings.Repeat(`{"kty":"x"},`, trust.MaxJWKSSize/12) + `{}]}`))
	}))
	defer big.Close()
	bs, _ := trust.NewJWKS(trust.JWKSConfig{URL: big.URL, Client: big.Client(), Clock: time.Now})
	if _, err := bs.Key(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("an oversize JWKS: %v", err)
	}
	for _, u := range []string{"http://jwks.example.com/keys", "ftp://127.0.0.1/k"} {
		if _, err := trust.NewJWKS(trust.JWKSConfig{URL: u, Clock: time.Now}); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, err := trust.NewJWKS(trust.JWKSConfig{URL: "http://127.0.0.1:1/keys", Clock: time.Now}); err != nil {
		t.Errorf("loopback http refused: %v", err)
	}
	if _, err := trust.ParseFile([]byte(`{"issuers":[{"id":"a","jwks_url":"https://x/k"}]}`)); err == nil {
		t.Error("ParseFile without network options accepted a jwks_url")
	}
}
