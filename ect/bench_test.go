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

// benchN is the number of distinct tokens each benchmark cycles through.
const benchN = 4096

// fixture is the shared input of the ECT benchmarks for one algorithm:
// distinct typical tokens, their signing inputs and decoded signatures.
type fixture struct {
	toks         []string
	inputs, sigs [][]byte
	set          *trust.Set
	pub          any
	now          time.Time
}

func newFixture(b *testing.B, alg string) *fixture {
	now := time.Unix(1767225600, 0)
	key := benchKeys()[alg]
	f := &fixture{toks: make([]string, benchN), inputs: make([][]byte, benchN), sigs: make([][]byte, benchN),
		set: trust.NewSet(), pub: key.Public().Public, now: now}
	if err := f.set.Add(trust.Binding{Prefix: "spiffe://example.com/"}, key.Public()); err != nil {
		b.Fatal(err)
	}
	for i := range f.toks {
		f.toks[i] = typicalECT(b, key, now)
		dot := strings.LastIndexByte(f.toks[i], '.')
		sig, err := jws.DecodeSegment(f.toks[i][dot+1:])
		if err != nil {
			b.Fatal(err)
		}
		f.inputs[i], f.sigs[i] = []byte(f.toks[i][:dot]), sig
	}
	return f
}

// verifier returns a verifier with a fresh replay cache for one round of
// the distinct tokens.
func (f *fixture) verifier(b *testing.B) *ect.Verifier {
	v, err := ect.NewVerifier(ect.Config{Trust: f.set, Audience: "spiffe://example.com/agent/b", Clock: func() time.Time { return f.now }, Replay: replay.New(2 * benchN)})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// raw is the bare signature check of token i: SHA-256 + ecdsa.Verify for
// ES256, ed25519.Verify for EdDSA, signature decoded and key in hand.
func (f *fixture) raw(i int) bool {
	switch k := f.pub.(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(f.inputs[i])
		return ecdsa.Verify(k, d[:], new(big.Int).SetBytes(f.sigs[i][:32]), new(big.Int).SetBytes(f.sigs[i][32:]))
	case ed25519.PublicKey:
		return ed25519.Verify(k, f.inputs[i], f.sigs[i])
	}
	return false
}

// BenchmarkVerify measures a full Verify: parse, key look-up, signature,
// every claim check and the replay cache (no DAG store). Each iteration
// verifies a token with a distinct jti so the replay cache does real work.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var v *ect.Verifier
			for i := 0; i < b.N; i++ {
				if i%benchN == 0 { // fresh replay cache per round of distinct tokens
					b.StopTimer()
					v = f.verifier(b)
					b.StartTimer()
				}
				if _, err := v.Verify(ctx, f.toks[i%benchN]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawVerify is the baseline of BenchmarkVerify: the bare signature
// check of the same signing inputs (SHA-256 + ecdsa.Verify for ES256,
// ed25519.Verify for EdDSA) over the same distinct tokens, with the
// signatures already decoded and the public key in hand.
func BenchmarkRawVerify(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !f.raw(i % benchN) {
					b.Fatal("bad signature")
				}
			}
		})
	}
}

// BenchmarkVerifyRatio alternates blocks of 32 full verifications and 32
// bare signature checks of the same tokens in one loop, so that both see the
// same machine state, and reports Verify time / Raw time as "x-raw".
func BenchmarkVerifyRatio(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			ctx := context.Background()
			var v *ect.Verifier
			var tv, tr time.Duration
			const block = 32
			for i := 0; i < b.N; i += block {
				if i%benchN == 0 {
					v = f.verifier(b)
				}
				t0 := time.Now()
				for j := i; j < i+block; j++ {
					if _, err := v.Verify(ctx, f.toks[j%benchN]); err != nil {
						b.Fatal(err)
					}
				}
				t1 := time.Now()
				for j := i; j < i+block; j++ {
					if !f.raw(j % benchN) {
						b.Fatal("bad signature")
					}
				}
				tv, tr = tv+t1.Sub(t0), tr+time.Since(t1)
			}
			b.ReportMetric(float64(tv)/float64(tr), "x-raw")
		})
	}
}
