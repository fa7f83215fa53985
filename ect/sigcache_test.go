package ect_test

import (
	"context"
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/trust"
)

// swapResolver answers every look-up with key, which the test changes.
type swapResolver struct{ key crypto.PublicKey }

func (s *swapResolver) ResolveKey(context.Context, string, string, string) (crypto.PublicKey, error) {
	return s.key, nil
}

// TestSignatureCache (ECT-V6): with Config.SignatureCache a token verified
// once is verified again without the signature arithmetic, but only for
// exactly the same bytes under exactly the same key: a changed signature,
// a changed payload with the cached signature, and the same token once its
// key is no longer the trusted one all fail as without the cache.
func TestSignatureCache(t *testing.T) {
	for _, key := range []*trust.SigningKey{edKey, ecKey} {
		t.Run(key.Alg(), func(t *testing.T) {
			res := &swapResolver{key: key.Public().Public}
			v, err := ect.NewVerifier(ect.Config{Trust: res, Audience: audB, Clock: func() time.Time { return now }, SignatureCache: 4})
			if err != nil {
				t.Fatal(err)
			}
			tok := signRaw(t, key, header(key), baseClaims())
			for i := 0; i < 2; i++ {
				if _, err := v.VerifyAudit(context.Background(), tok, now); err != nil {
					t.Fatalf("ECT-V6: verification %d: %v", i, err)
				}
			}
			parts := strings.Split(tok, ".")
			sig := []byte(parts[2])
			sig[3] = map[bool]byte{true: 'B', false: 'A'}[sig[3] == 'A'] // still base64url, another signature
			other := strings.Split(signRaw(t, key, header(key), with(func(c map[string]any) { c["exec_act"] = "other" })), ".")
			forged := []string{
				parts[0] + "." + parts[1] + "." + string(sig),
				parts[0] + "." + other[1] + "." + parts[2], // another payload under the cached signature
			}
			for _, f := range forged {
				if _, err := v.VerifyAudit(context.Background(), f, now); agentctx.CodeOf(err) != agentctx.CodeBadSignature {
					t.Fatalf("ECT-V6: a forged token after the genuine one was cached: %v", err)
				}
			}
			res.key = testkeys.EdDSA("sigcache-other", key.KeyID()).Public().Public
			if key.Alg() == "ES256" {
				res.key = testkeys.ES256("sigcache-other", key.KeyID()).Public().Public
			}
			if _, err := v.VerifyAudit(context.Background(), tok, now); agentctx.CodeOf(err) != agentctx.CodeBadSignature {
				t.Fatalf("ECT-V6: the cached token under a key no longer trusted: %v", err)
			}
		})
	}
}
