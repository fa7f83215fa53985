package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/ledger/sqlite"
)

func benchLedger(b *testing.B) (*ledger.Ledger, ledger.Store) {
	ctx := context.Background()
	s, err := sqlite.Open(filepath.Join(b.TempDir(), "l.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	skey, vkey, _ := ledger.GenerateKey(ledgertest.LedgerID)
	if err := ledger.Create(ctx, s, ledgertest.LedgerID, vkey); err != nil {
		b.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	now := time.Unix(1767225600, 0)
	l, err := ledger.Open(ctx, ledger.Config{Store: s, Signer: signer, Trust: ledgertest.Trust(), Clock: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	return l, s
}

func ects(b *testing.B, n int, tag string) []ledger.Input {
	now := time.Unix(1767225600, 0)
	in := make([]ledger.Input, n)
	for i := range in {
		k := ledgertest.KeyA
		iss := ledgertest.IssA
		if i%2 == 1 {
			k, iss = ledgertest.KeyB, ledgertest.IssB
		}
		tok, err := ect.Create(k, &ect.Claims{Issuer: iss, Audience: []string{ledgertest.LedgerID}, ExecAct: fmt.Sprintf("%s-%d", tag, i)}, now)
		if err != nil {
			b.Fatal(err)
		}
		in[i].Token = tok
	}
	return in
}

// BenchmarkAppendBatch appends batches of 1000 mixed ES256/EdDSA ECTs with
// full verification into an empty SQLite ledger; reports ECTs per second.
func BenchmarkAppendBatch(b *testing.B) {
	const batch = 1000
	l, _ := benchLedger(b)
	inputs := make([][]ledger.Input, b.N)
	for i := range inputs {
		inputs[i] = ects(b, batch, fmt.Sprint(i))
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		outs, err := l.Append(ctx, inputs[i])
		if err != nil || outs[batch-1].Err != nil {
			b.Fatal(err, outs[batch-1].Err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ECTs/s")
}

// BenchmarkAppendBatchAt110k is BenchmarkAppendBatch into a ledger that
// already holds 110,000 entries (goal: at most 1.3x the empty-ledger time).
func BenchmarkAppendBatchAt110k(b *testing.B) {
	const batch = 1000
	l, _ := benchLedger(b)
	ctx := context.Background()
	for i := 0; i < 110; i++ {
		if _, err := l.Append(ctx, ects(b, batch, fmt.Sprint("fill", i))); err != nil {
			b.Fatal(err)
		}
	}
	inputs := make([][]ledger.Input, b.N)
	for i := range inputs {
		inputs[i] = ects(b, batch, fmt.Sprint(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		outs, err := l.Append(ctx, inputs[i])
		if err != nil || outs[batch-1].Err != nil || outs[batch-1].Receipt.Index < 110000 {
			b.Fatal(err, outs[batch-1].Err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ECTs/s")
}

// syntheticLedger returns a SQLite ledger filled through the store with
// size synthetic entries (FillSynthetic), closed when b ends, and its
// signer.
func syntheticLedger(b *testing.B, size uint64) (*sqlite.Store, note.Signer) {
	ctx := context.Background()
	s, err := sqlite.Open(filepath.Join(b.TempDir(), "l.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	skey, vkey, _ := ledger.GenerateKey(ledgertest.LedgerID)
	if err := ledger.Create(ctx, s, ledgertest.LedgerID, vkey); err != nil {
		b.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	if err := ledgertest.FillSynthetic(ctx, s, signer, size, 50_000); err != nil {
		b.Fatal(err)
	}
	return s, signer
}

// BenchmarkAppendBatchAt1M is BenchmarkAppendBatch into a ledger that
// already holds 1,000,000 entries (goal: at most 1.3x the empty-ledger
// time). The million are synthetic (FillSynthetic: real jti, leaf and tree
// rows, 8-byte tokens), so the file is smaller than a real one's, its
// indexes as deep.
func BenchmarkAppendBatchAt1M(b *testing.B) {
	const batch, size = 1000, 1_000_000
	ctx := context.Background()
	s, signer := syntheticLedger(b, size)
	now := time.Unix(1767225600, 0)
	l, err := ledger.Open(ctx, ledger.Config{Store: s, Signer: signer, Trust: ledgertest.Trust(), Clock: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	inputs := make([][]ledger.Input, b.N)
	for i := range inputs {
		inputs[i] = ects(b, batch, fmt.Sprint(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		outs, err := l.Append(ctx, inputs[i])
		if err != nil || outs[batch-1].Err != nil || outs[batch-1].Receipt.Index < size {
			b.Fatal(err, outs[batch-1].Err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ECTs/s")
}

// BenchmarkInclusionProof1M builds receipts (inclusion proof + checkpoint)
// for random entries of a 1,000,000-entry log, after 200,000 others. The log is filled through
// the store directly with small synthetic entries (proofs read only tree
// nodes), so the fill takes seconds rather than verifying a million tokens.
func BenchmarkInclusionProof1M(b *testing.B) {
	const size = 1_000_000
	ctx := context.Background()
	s, _ := syntheticLedger(b, size)
	l, err := ledger.Open(ctx, ledger.Config{Store: s, Clock: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	// A service's steady state: earlier proofs have filled the node cache
	// with the upper tree (levels 4 and up, 125,000 nodes here), so each
	// proof reads the checkpoint, the entry and a run of at most 16 leaves.
	for i := 0; i < 200_000; i++ {
		if _, err := l.Prove(ctx, uint64(i*104729)%size, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := uint64(i*7919) % size
		r, err := l.Prove(ctx, idx, 0)
		if err != nil || r.TreeSize != size || len(r.InclusionProof) == 0 {
			b.Fatal(err, r)
		}
	}
}

// BenchmarkAudit audits a ledger of 10,000 ECTs: every leaf hash, every
// token re-verified, every DAG rule, the tree and its checkpoints; reports
// entries per second.
func BenchmarkAudit(b *testing.B) {
	const n = 10_000
	l, _ := benchLedger(b)
	ctx := context.Background()
	for i := 0; i < n/1000; i++ {
		if _, err := l.Append(ctx, ects(b, 1000, fmt.Sprint("audit", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := l.Audit(ctx)
		if err != nil || rep.Size != n {
			b.Fatal(err, rep)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
}
