package ect_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/replay"
	"github.com/agentctx/agentctx/trust"
)

// typicalECT returns a signed ECT of the usual shape: one audience plus the
// ledger, a workflow, one predecessor, both hashes.
func typicalECT(b testing.TB, key *trust.SigningKey, now time.Time) string {
	b.Helper()
	c := &ect.Claims{
		Issuer:     "spiffe://example.com/agent/a",
		Audience:   []string{"spiffe://example.com/agent/b", "spiffe://example.com/system/ledger"},
		WorkflowID: "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77",
		ExecAct:    "review_spec",
		Pred:       []string{"0b7c5e4e-5f7a-4c1e-9d55-8b8c0f4a2e11"},
		InputHash:  agentctx.HashBytes([]byte("input")),
		OutputHash: agentctx.HashBytes([]byte("output")),
	}
	tok, err := ect.Create(key, c, now)
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

func benchKeys() map[string]*trust.SigningKey {
	return map[string]*trust.SigningKey{
		"ES256": testkeys.ES256("bench-es256", "k-es256"),
		"EdDSA": testkeys.EdDSA("bench-eddsa", "k-eddsa"),
	}
}

// BenchmarkVerify measures a full Verify: parse, key look-up, signature,
// every claim check and the replay cache (no DAG store). Each iteration
// verifies a token with a distinct jti so the replay cache does real work.
func BenchmarkVerify(b *testing.B) {
	now := time.Unix(1767225600, 0)
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			key := benchKeys()[alg]
			set := trust.NewSet()
			if err := set.Add(trust.Binding{Prefix: "spiffe://example.com/"}, key.Public()); err != nil {
				b.Fatal(err)
			}
			const n = 4096
			toks := make([]string, n)
			for i := range toks {
				toks[i] = typicalECT(b, key, now)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var v *ect.Verifier
			for i := 0; i < b.N; i++ {
				if i%n == 0 { // fresh replay cache per round of distinct tokens
					b.StopTimer()
					var err error
					v, err = ect.NewVerifier(ect.Config{Trust: set, Audience: "spiffe://example.com/agent/b", Clock: func() time.Time { return now }, Replay: replay.New(2 * n)})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if _, err := v.Verify(ctx, toks[i%n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawVerify is the baseline of BenchmarkVerify: the bare signature
// check of the same signing inputs (SHA-256 + ecdsa.Verify for ES256,
// ed25519.Verify for EdDSA) over the same 4096 distinct tokens, with the
// signatures already decoded and the public key in hand.
func BenchmarkRawVerify(b *testing.B) {
	now := time.Unix(1767225600, 0)
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			key := benchKeys()[alg]
			const n = 4096
			inputs, sigs := make([][]byte, n), make([][]byte, n)
			for i := range inputs {
				tok := typicalECT(b, key, now)
				dot := strings.LastIndexByte(tok, '.')
				sig, err := jws.DecodeSegment(tok[dot+1:])
				if err != nil {
					b.Fatal(err)
				}
				inputs[i], sigs[i] = []byte(tok[:dot]), sig
			}
			pub := key.Public().Public
			b.ReportAllocs()
			b.ResetTimer()
			switch k := pub.(type) {
			case *ecdsa.PublicKey:
				for i := 0; i < b.N; i++ {
					sig := sigs[i%n]
					d := sha256.Sum256(inputs[i%n])
					if !ecdsa.Verify(k, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
						b.Fatal("bad signature")
					}
				}
			case ed25519.PublicKey:
				for i := 0; i < b.N; i++ {
					if !ed25519.Verify(k, inputs[i%n], sigs[i%n]) {
						b.Fatal("bad signature")
					}
				}
			}
		})
	}
}

// BenchmarkVerifyRatio alternates blocks of 32 full verifications and 32
// bare signature checks of the same tokens in one loop, so that both see the
// same machine state, and reports Verify time / Raw time as "x-raw".
func BenchmarkVerifyRatio(b *testing.B) {
	now := time.Unix(1767225600, 0)
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			key := benchKeys()[alg]
			set := trust.NewSet()
			if err := set.Add(trust.Binding{Prefix: "spiffe://example.com/"}, key.Public()); err != nil {
				b.Fatal(err)
			}
			const n = 4096
			toks := make([]string, n)
			inputs, sigs := make([][]byte, n), make([][]byte, n)
			for i := range toks {
				toks[i] = typicalECT(b, key, now)
				dot := strings.LastIndexByte(toks[i], '.')
				sig, err := jws.DecodeSegment(toks[i][dot+1:])
				if err != nil {
					b.Fatal(err)
				}
				inputs[i], sigs[i] = []byte(toks[i][:dot]), sig
			}
			pub := key.Public().Public
			raw := func(i int) bool {
				switch k := pub.(type) {
				case *ecdsa.PublicKey:
					d := sha256.Sum256(inputs[i])
					return ecdsa.Verify(k, d[:], new(big.Int).SetBytes(sigs[i][:32]), new(big.Int).SetBytes(sigs[i][32:]))
				case ed25519.PublicKey:
					return ed25519.Verify(k, inputs[i], sigs[i])
				}
				return false
			}
			ctx := context.Background()
			var v *ect.Verifier
			var tv, tr time.Duration
			const block = 32
			for i := 0; i < b.N; i += block {
				if i%n == 0 {
					var err error
					v, err = ect.NewVerifier(ect.Config{Trust: set, Audience: "spiffe://example.com/agent/b", Clock: func() time.Time { return now }, Replay: replay.New(2 * n)})
					if err != nil {
						b.Fatal(err)
					}
				}
				t0 := time.Now()
				for j := i; j < i+block; j++ {
					if _, err := v.Verify(ctx, toks[j%n]); err != nil {
						b.Fatal(err)
					}
				}
				t1 := time.Now()
				for j := i; j < i+block; j++ {
					if !raw(j % n) {
						b.Fatal("bad signature")
					}
				}
				tv, tr = tv+t1.Sub(t0), tr+time.Since(t1)
			}
			b.ReportMetric(float64(tv)/float64(tr), "x-raw")
		})
	}
}
