package act_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/internal/jws"
	"github.com/agentctx/agentctx/trust"
)

type signed struct {
	tok string
	key *trust.SigningKey
}

// rawCheck is one bare signature check: input, decoded signature, key.
type rawCheck struct {
	input, sig []byte
	pub        any
}

func rawChecks(b *testing.B, toks []signed) []rawCheck {
	out := make([]rawCheck, len(toks))
	for i, t := range toks {
		dot := strings.LastIndexByte(t.tok, '.')
		sig, err := jws.DecodeSegment(t.tok[dot+1:])
		if err != nil {
			b.Fatal(err)
		}
		out[i] = rawCheck{[]byte(t.tok[:dot]), sig, t.key.Public().Public}
	}
	return out
}

// benchPair runs "Verify" (the full verification) and "Raw" (the bare
// signature checks of the same tokens, signatures decoded and keys in hand:
// SHA-256 + ecdsa.Verify for ES256, ed25519.Verify for EdDSA) as
// sub-benchmarks.
func benchPair(b *testing.B, toks []signed, verify func(v *act.Verifier, i int) error, audience string) {
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		v := verifier(b, audience, now.Add(time.Minute))
		for i := 0; i < b.N; i++ {
			if err := verify(v, i); err != nil {
				b.Fatal(err)
			}
		}
	})
	raw := func(b *testing.B, checks []rawCheck) {
		for _, c := range checks {
			switch k := c.pub.(type) {
			case ed25519.PublicKey:
				if !ed25519.Verify(k, c.input, c.sig) {
					b.Fatal("bad signature")
				}
			case *ecdsa.PublicKey:
				d := sha256.Sum256(c.input)
				if !ecdsa.Verify(k, d[:], new(big.Int).SetBytes(c.sig[:32]), new(big.Int).SetBytes(c.sig[32:])) {
					b.Fatal("bad signature")
				}
			}
		}
	}
	b.Run("Raw", func(b *testing.B) {
		checks := rawChecks(b, toks)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			raw(b, checks)
		}
	})
	// Ratio alternates blocks of full verifications and of bare checks in
	// one loop, so that both see the same machine state, and reports
	// Verify time / Raw time as "x-raw" (the goal's measure, in one run).
	b.Run("Ratio", func(b *testing.B) {
		checks := rawChecks(b, toks)
		v := verifier(b, audience, now.Add(time.Minute))
		const block = 32
		var tv, tr time.Duration
		for i := 0; i < b.N; i += block {
			t0 := time.Now()
			for j := i; j < i+block; j++ {
				if err := verify(v, j); err != nil {
					b.Fatal(err)
				}
			}
			t1 := time.Now()
			for j := 0; j < block; j++ {
				raw(b, checks)
			}
			tv, tr = tv+t1.Sub(t0), tr+time.Since(t1)
		}
		b.ReportMetric(float64(tv)/float64(tr), "x-raw")
	})
}

// BenchmarkVerifyMandate: a root mandate (EdDSA) presented for use.
func BenchmarkVerifyMandate(b *testing.B) {
	m := issue(b, keyA, rootMandate())
	ctx := context.Background()
	benchPair(b, []signed{{m, keyA}}, func(v *act.Verifier, _ int) error {
		_, err := v.VerifyMandate(ctx, m, nil)
		return err
	}, idB)
}

// BenchmarkVerifyRecord: a record (ES256, by B) with its mandate (EdDSA, by
// A): two signatures, the claim comparison of ACT-P3 and the replay cache
// (each iteration presents another task, so the cache does real work).
func BenchmarkVerifyRecord(b *testing.B) {
	const n = 512
	recs, mandates := make([]string, n), make([]string, n)
	for i := range recs {
		mandates[i] = issue(b, keyA, rootMandate())
		r, err := act.NewRecord(keyB, idB, parse(b, mandates[i]), act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: now.Add(time.Second), Pred: []string{jtiP}}, now)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	ctx := context.Background()
	var v *act.Verifier
	benchPair(b, []signed{{recs[0], keyB}, {mandates[0], keyA}}, func(fresh *act.Verifier, i int) error {
		if i%n == 0 {
			v = fresh // new cache per round of distinct records
			if i > 0 {
				v = verifier(b, "spiffe://ex.com/auditor", now.Add(time.Minute))
			}
		}
		_, err := v.Verify(ctx, recs[i%n], []string{mandates[i%n]}, act.PhaseRecord)
		return err
	}, "spiffe://ex.com/auditor")
}

// BenchmarkVerifyChain3: a mandate at delegation depth 3 (its del.chain has
// three links) verified with its three parents: four signatures.
func BenchmarkVerifyChain3(b *testing.B) {
	ch := chain3(b) // D's mandate at depth 2, then C's, then B's root
	leaf, err := act.Delegate(keyD, parse(b, ch[0]), &act.Mandate{Subject: idA, Audience: []string{idA}, Task: act.Task{Purpose: "last hop"},
		Capabilities: ch0Caps(b, ch[0])}, now)
	if err != nil {
		b.Fatal(err)
	}
	parents := ch
	ctx := context.Background()
	benchPair(b, []signed{{leaf, keyD}, {ch[0], keyC}, {ch[1], keyB}, {ch[2], keyA}}, func(v *act.Verifier, _ int) error {
		res, err := v.VerifyMandate(ctx, leaf, parents)
		if err == nil && res.DelegationDepth() != 3 {
			b.Fatalf("depth %d", res.DelegationDepth())
		}
		return err
	}, idA)
}

func ch0Caps(b *testing.B, tok string) []act.Capability { return parse(b, tok).Mandate.Capabilities }
