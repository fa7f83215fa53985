// Package ledgertest is the conformance suite every ledger.Store passes: run
// it from the backend's tests with Run. It drives a Ledger over the store
// with real tokens: appends, receipts checked offline, refusals, proofs,
// workflows, idempotence, append-only enforcement and the audit.
package ledgertest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/trust"
)

// Backend is what the suite needs of a store implementation.
type Backend struct {
	// Open returns a fresh, empty store.
	Open func(t *testing.T) ledger.Store
	// Corrupt changes one byte of the stored token of entry index, behind
	// the append-only protection (as an attacker with database access).
	Corrupt func(t *testing.T, s ledger.Store, index uint64)
	// CorruptNode changes the stored hash of tree node (level, index), and
	// CorruptCheckpoint one byte of the checkpoint of size, behind the
	// append-only protection.
	CorruptNode       func(t *testing.T, s ledger.Store, level, index uint64)
	CorruptCheckpoint func(t *testing.T, s ledger.Store, size uint64)
	// Tamper runs one SQL statement behind the append-only protection (as
	// an attacker holding the database file or the superuser), with ? as
	// the placeholder of args. The audit must then find the change.
	Tamper func(t *testing.T, s ledger.Store, statement string, args ...any)
	// Update tries to change an entry through the database; the database
	// itself must refuse it (LED-3).
	Update func(s ledger.Store) error
	// Delete tries to delete an entry through the database; it must fail.
	Delete func(s ledger.Store) error
}

// Identities and keys of the suite.
const (
	LedgerID = "spiffe://example.com/system/ledger"
	IssA     = "spiffe://example.com/agent/a"
	IssB     = "spiffe://example.com/agent/b"
	IssC     = "spiffe://example.com/agent/c"
	Wid      = "8d0e4c8a-2a7b-4f59-b1b4-0c3a3e1e9a77"
)

// Keys of the suite's agents (test keys, public in this repository).
var (
	KeyA = testkeys.EdDSA("ledgertest a", "a-1")
	KeyB = testkeys.ES256("ledgertest b", "b-1")
	KeyC = testkeys.EdDSA("ledgertest c", "c-1")
)

// Trust returns the trust of the suite's agents.
func Trust() *trust.Set {
	s := trust.NewSet()
	_ = s.Add(trust.Binding{ID: IssA}, KeyA.Public())
	_ = s.Add(trust.Binding{ID: IssB}, KeyB.Public())
	_ = s.Add(trust.Binding{ID: IssC}, KeyC.Public())
	return s
}

type fixture struct {
	t      *testing.T
	store  ledger.Store
	l      *ledger.Ledger
	vkey   string
	signer note.Signer
	now    time.Time
}

func newFixture(t *testing.T, b Backend, partial bool) *fixture {
	t.Helper()
	ctx := context.Background()
	store := b.Open(t)
	skey, vkey, err := ledger.GenerateKey(LedgerID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Create(ctx, store, LedgerID, vkey); err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store, vkey: vkey, signer: signer, now: time.Unix(1767225600, 0)}
	l, err := ledger.Open(ctx, ledger.Config{Store: store, Signer: signer, Trust: Trust(), Clock: func() time.Time { return f.now }, Partial: partial})
	if err != nil {
		t.Fatal(err)
	}
	f.l = l
	return f
}

// ECT returns an ECT of agent a for the ledger.
func (f *fixture) ECT(execAct string, pred ...string) (string, string) {
	f.t.Helper()
	c := &ect.Claims{Issuer: IssA, Audience: []string{IssB, LedgerID}, WorkflowID: Wid, ExecAct: execAct, Pred: pred,
		InputHash: agentctx.HashBytes([]byte(execAct))}
	tok, err := ect.Create(KeyA, c, f.now)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok, c.ID
}

func (f *fixture) append(tokens ...string) []ledger.Outcome {
	f.t.Helper()
	in := make([]ledger.Input, len(tokens))
	for i, tok := range tokens {
		in[i] = ledger.Input{Token: tok}
	}
	out, err := f.l.Append(context.Background(), in)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) ok(tokens ...string) []*ledger.Receipt {
	f.t.Helper()
	var rs []*ledger.Receipt
	for i, o := range f.append(tokens...) {
		if o.Err != nil {
			f.t.Fatalf("token %d refused: %v", i, o.Err)
		}
		if err := ledger.VerifyReceipt(f.vkey, o.Receipt, []byte(tokens[i])); err != nil {
			f.t.Fatalf("receipt %d does not verify offline: %v", i, err)
		}
		rs = append(rs, o.Receipt)
	}
	return rs
}

// Run runs the suite against b.
func Run(t *testing.T, b Backend) {
	runEvidence(t, b)
	runReceipts(t, b)
	t.Run("LED-7/receipt verifies offline", func(t *testing.T) {
		f := newFixture(t, b, false)
		tok, _ := f.ECT("review")
		r := f.ok(tok)[0]
		if r.Index != 0 || r.TreeSize != 1 || r.Kind != ledger.KindECT || r.ReceivedAt != f.now.UnixMilli() {
			t.Fatalf("receipt %+v", r)
		}
		if err := ledger.VerifyReceipt(f.vkey, r, []byte(tok+"x")); err == nil {
			t.Fatal("receipt verified for another token")
		}
		_, otherV, _ := ledger.GenerateKey(LedgerID)
		if err := ledger.VerifyReceipt(otherV, r, []byte(tok)); err == nil {
			t.Fatal("receipt verified with another ledger key")
		}
	})
	t.Run("LED-7/a receipt is found again by its leaf hash", func(t *testing.T) {
		f := newFixture(t, b, false)
		var toks []string
		for i := 0; i < 5; i++ {
			tok, _ := f.ECT(fmt.Sprint("leaf", i))
			toks = append(toks, tok)
		}
		rs := f.ok(toks...)
		for i, r := range rs {
			got, err := f.l.ProveLeaf(context.Background(), r.LeafHash, 0)
			if err != nil || got.Index != r.Index || got.TreeSize != 5 {
				t.Fatalf("entry %d by leaf hash: %v %+v", i, err, got)
			}
			if err := ledger.VerifyReceipt(f.vkey, got, []byte(toks[i])); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		if _, err := f.l.ProveLeaf(context.Background(), make([]byte, 32), 0); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("an unknown leaf hash: %v", err)
		}
	})
	t.Run("LED-1/ECT must name the ledger", func(t *testing.T) {
		f := newFixture(t, b, false)
		tok, err := ect.Create(KeyA, &ect.Claims{Issuer: IssA, Audience: []string{IssB}, ExecAct: "x"}, f.now)
		if err != nil {
			t.Fatal(err)
		}
		if o := f.append(tok)[0]; agentctx.CodeOf(o.Err) != agentctx.CodeAudienceMismatch {
			t.Fatalf("%v", o.Err)
		}
	})
	t.Run("LED-1/signature checked", func(t *testing.T) {
		f := newFixture(t, b, false)
		tok, _ := f.ECT("x")
		c := byte('A')
		if tok[len(tok)-10] == 'A' {
			c = 'B'
		}
		tampered := tok[:len(tok)-10] + string(c) + tok[len(tok)-9:]
		if o := f.append(tampered)[0]; agentctx.CodeOf(o.Err) != agentctx.CodeBadSignature {
			t.Fatalf("%v", o.Err)
		}
	})
	t.Run("LED-4/identical re-append returns the original receipt", func(t *testing.T) {
		f := newFixture(t, b, false)
		t1, _ := f.ECT("a")
		first := f.ok(t1)[0]
		f.now = f.now.Add(time.Second)
		t2, _ := f.ECT("b")
		rs := f.ok(t2, t1, t2)
		if rs[1].Index != first.Index || rs[1].ReceivedAt != first.ReceivedAt || rs[0].Index != 1 || rs[2].Index != 1 {
			t.Fatalf("re-append: %+v %+v", first, rs)
		}
		if n, _ := f.store.Size(context.Background()); n != 2 {
			t.Fatalf("size %d after re-appends", n)
		}
		// The batch's look-up of many jtis at once, which found t1.
		es, err := f.store.ByJTIs(context.Background(), []string{strings.ToLower(ledger.JTIOf(t2)), "00000000-0000-4000-8000-00000000dead", strings.ToLower(ledger.JTIOf(t1))})
		if err != nil || len(es) != 2 || es[0].Index != 0 || es[1].Index != 1 || es[0].Token == nil {
			t.Fatalf("ByJTIs: %v %+v", err, es)
		}
	})
	t.Run("LED-4/same task twice is dag_duplicate", func(t *testing.T) {
		f := newFixture(t, b, false)
		tok, id := f.ECT("a")
		f.ok(tok)
		dup, err := ect.Create(KeyA, &ect.Claims{ID: id, Issuer: IssA, Audience: []string{LedgerID}, WorkflowID: Wid, ExecAct: "again"}, f.now)
		if err != nil {
			t.Fatal(err)
		}
		if o := f.append(dup)[0]; agentctx.CodeOf(o.Err) != agentctx.CodeDAGDuplicate {
			t.Fatalf("%v", o.Err)
		}
	})
	t.Run("DAG-2/unknown predecessor, and partial mode", func(t *testing.T) {
		f := newFixture(t, b, false)
		tok, _ := f.ECT("b", "00000000-0000-4000-8000-000000000009")
		if o := f.append(tok)[0]; agentctx.CodeOf(o.Err) != agentctx.CodeDAGUnknownPred {
			t.Fatalf("%v", o.Err)
		}
		p := newFixture(t, b, true)
		o := p.append(tok)[0]
		if o.Err != nil || len(o.Partial) != 1 {
			t.Fatalf("partial: %+v", o)
		}
		es, err := p.l.Get(context.Background(), mustJTI(t, tok), "")
		if err != nil || !es[0].Partial {
			t.Fatalf("partial flag not stored: %v %+v", err, es)
		}
		if rep, err := p.l.Audit(context.Background()); err != nil || len(rep.Partial) != 1 {
			t.Fatalf("audit of a partial entry: %v %+v", err, rep)
		}
	})
	t.Run("LED-10/batch: per-entry verdicts, one commit, in order", func(t *testing.T) {
		f := newFixture(t, b, false)
		root, rootID := f.ECT("root")
		left, leftID := f.ECT("left", rootID)
		right, rightID := f.ECT("right", rootID)
		join, _ := f.ECT("join", leftID, rightID)
		bad, _ := f.ECT("orphan", "00000000-0000-4000-8000-000000000009")
		outs := f.append(root, left, bad, right, join)
		for i, want := range []agentctx.Code{"", "", agentctx.CodeDAGUnknownPred, "", ""} {
			if agentctx.CodeOf(outs[i].Err) != want {
				t.Fatalf("input %d: %v, want %q", i, outs[i].Err, want)
			}
		}
		if outs[4].Receipt.Index != 3 || outs[4].Receipt.TreeSize != 4 {
			t.Fatalf("join receipt %+v", outs[4].Receipt)
		}
		cps, _ := f.store.Checkpoints(context.Background())
		if len(cps) != 1 {
			t.Fatalf("%d checkpoints for one batch", len(cps))
		}
	})
	t.Run("LED-1/ACT mandate and record in a workflow with ECTs", func(t *testing.T) {
		f := newFixture(t, b, false)
		ctx := context.Background()
		root, rootID := f.ECT("plan")
		m, err := act.NewMandate(KeyA, &act.Mandate{Issuer: IssA, Subject: IssB, Audience: []string{IssB}, WorkflowID: Wid,
			Task: act.Task{Purpose: "read"}, Capabilities: []act.Capability{{Action: "read.data"}}}, f.now)
		if err != nil {
			t.Fatal(err)
		}
		mres, _ := act.ParseUnverified(m)
		rec, err := act.NewRecord(KeyB, IssB, mres, act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, Pred: []string{rootID}, ExecTS: f.now.Add(time.Second)}, f.now)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := f.ECT("report", mres.Mandate.ID)
		f.now = f.now.Add(2 * time.Second)
		rs := f.ok(root, m, rec, after)
		if rs[1].Kind != ledger.KindACTMandate || rs[2].Kind != ledger.KindACTRecord {
			t.Fatalf("kinds %s %s", rs[1].Kind, rs[2].Kind)
		}
		g, err := f.l.Workflow(ctx, Wid)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Nodes) != 3 || len(g.Edges) != 2 || len(g.Roots) != 1 || len(g.Leaves) != 1 {
			t.Fatalf("graph: %d nodes %d edges roots %v leaves %v", len(g.Nodes), len(g.Edges), g.Roots, g.Leaves)
		}
		es, err := f.l.Get(ctx, mres.Mandate.ID, Wid)
		if err != nil || len(es) != 2 {
			t.Fatalf("get: %v %d", err, len(es))
		}
	})
	t.Run("LED-8/proofs for any published size", func(t *testing.T) {
		f := newFixture(t, b, false)
		ctx := context.Background()
		var toks []string
		for i := 0; i < 13; i++ {
			tok, _ := f.ECT("t")
			toks = append(toks, tok)
			f.ok(tok) // one checkpoint per entry
		}
		for _, size := range []uint64{1, 5, 8, 13} {
			for idx := uint64(0); idx < size; idx++ {
				r, err := f.l.Prove(ctx, idx, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := ledger.VerifyReceipt(f.vkey, r, []byte(toks[idx])); err != nil {
					t.Fatalf("index %d size %d: %v", idx, size, err)
				}
			}
		}
		c5, _ := f.store.Checkpoint(ctx, 5)
		c13, _ := f.store.Checkpoint(ctx, 13)
		cp5, _ := f.l.OpenCheckpoint(c5)
		cp13, _ := f.l.OpenCheckpoint(c13)
		pr, err := f.l.Consistency(ctx, 5, 13)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 5, 13, pr, cp5.Root, cp13.Root); err != nil {
			t.Fatalf("consistency: %v", err)
		}
		if _, err := f.l.Prove(ctx, 3, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := f.l.Prove(ctx, 13, 13); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("index beyond size: %v", err)
		}
	})
	t.Run("LED-8/proofs of a larger log, cold and from the node cache", func(t *testing.T) {
		// 600 entries in commits of 37: proofs cross the node cache's
		// level and read the lowest nodes as a run of leaves; each is checked
		// against its checkpoint's root, by a fresh ledger and then again by
		// the same one, its cache filled.
		f := newFixture(t, b, false)
		ctx := context.Background()
		if err := FillSynthetic(ctx, f.store, f.signer, 600, 37); err != nil {
			t.Fatal(err)
		}
		l, err := ledger.Open(ctx, ledger.Config{Store: f.store, Clock: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		for round := 0; round < 2; round++ {
			for _, size := range []uint64{37, 600} {
				c, _ := f.store.Checkpoint(ctx, size)
				cp, err := l.OpenCheckpoint(c)
				if err != nil {
					t.Fatal(err)
				}
				for idx := uint64(0); idx < size; idx++ {
					r, err := l.Prove(ctx, idx, size)
					if err != nil {
						t.Fatalf("round %d, index %d of %d: %v", round, idx, size, err)
					}
					leaf := ledger.LeafHash(ledger.KindECT, 0, binary.BigEndian.AppendUint64(nil, idx))
					if !bytes.Equal(r.LeafHash, leaf) {
						t.Fatalf("index %d: receipt names another leaf", idx)
					}
					if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, leaf, r.InclusionProof, cp.Root); err != nil {
						t.Fatalf("round %d, index %d of %d: %v", round, idx, size, err)
					}
				}
			}
		}
		pr, err := l.Consistency(ctx, 37, 600)
		if err != nil {
			t.Fatal(err)
		}
		c37, _ := f.store.Checkpoint(ctx, 37)
		c600, _ := f.store.Checkpoint(ctx, 600)
		cp37, _ := l.OpenCheckpoint(c37)
		cp600, _ := l.OpenCheckpoint(c600)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 37, 600, pr, cp37.Root, cp600.Root); err != nil {
			t.Fatalf("consistency: %v", err)
		}
	})
	t.Run("LED-3/the database refuses update and delete", func(t *testing.T) {
		f := newFixture(t, b, false)
		tok, _ := f.ECT("x")
		f.ok(tok)
		if err := b.Update(f.store); err == nil {
			t.Fatal("UPDATE accepted")
		}
		if err := b.Delete(f.store); err == nil {
			t.Fatal("DELETE accepted")
		}
	})
	t.Run("LED-9/audit passes, then names a changed byte's index", func(t *testing.T) {
		f := newFixture(t, b, false)
		ctx := context.Background()
		var toks []string
		prev := ""
		for i := 0; i < 20; i++ {
			var tok, id string
			if prev == "" {
				tok, id = f.ECT("step")
			} else {
				tok, id = f.ECT("step", prev)
			}
			toks, prev = append(toks, tok), id
		}
		f.ok(toks[:7]...)
		f.ok(toks[7:]...)
		rep, err := f.l.Audit(ctx)
		if err != nil || rep.Size != 20 || rep.Checkpoints != 2 {
			t.Fatalf("audit: %v %+v", err, rep)
		}
		b.Corrupt(t, f.store, 11)
		_, err = f.l.Audit(ctx)
		var ae *ledger.AuditError
		if !errors.As(err, &ae) || ae.Index != 11 {
			t.Fatalf("audit after corrupting entry 11: %v", err)
		}
	})
	t.Run("LED-9/audit names a changed tree node or checkpoint", func(t *testing.T) {
		build := func() *fixture {
			f := newFixture(t, b, false)
			var toks []string
			for i := 0; i < 20; i++ {
				tok, _ := f.ECT("n")
				toks = append(toks, tok)
			}
			f.ok(toks[:7]...)
			f.ok(toks[7:]...)
			return f
		}
		ctx := context.Background()
		f := build()
		b.CorruptNode(t, f.store, 1, 4) // the node over entries 8 and 9
		var ae *ledger.AuditError
		if _, err := f.l.Audit(ctx); !errors.As(err, &ae) || ae.Index != 8 {
			t.Fatalf("changed node: %v", err)
		}
		f = build()
		b.CorruptCheckpoint(t, f.store, 7)
		if _, err := f.l.Audit(ctx); !errors.As(err, &ae) || ae.Index != 6 {
			t.Fatalf("changed checkpoint: %v", err)
		}
	})
	t.Run("ECT-L3/a token with a receipt is L3", func(t *testing.T) {
		f := newFixture(t, b, false)
		ctx := context.Background()
		tok, _ := f.ECT("x")
		other, _ := f.ECT("y")
		r := f.ok(tok)[0]
		book, err := ledger.NewReceiptBook(f.vkey, r)
		if err != nil {
			t.Fatal(err)
		}
		for name, holder := range map[string]ect.ReceiptHolder{"ledger": f.l, "offline receipts": book} {
			v, err := ect.NewVerifier(ect.Config{Trust: Trust(), Audience: LedgerID, Clock: func() time.Time { return f.now }, MinLevel: ect.L3, Receipts: holder})
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(ctx, tok)
			if err != nil || res.Level != ect.L3 {
				t.Fatalf("%s: %v %+v", name, err, res)
			}
			if _, err := v.Verify(ctx, other); agentctx.CodeOf(err) != agentctx.CodeLevelTooLow {
				t.Fatalf("%s: token without receipt: %v", name, err)
			}
		}
	})
	t.Run("LED-6/checkpoint is a signed C2SP note", func(t *testing.T) {
		f := newFixture(t, b, false)
		tok, _ := f.ECT("x")
		f.ok(tok)
		cp, err := f.l.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(cp, []byte(LedgerID+"\n1\n")) || !bytes.Contains(cp, []byte("\n\n— "+LedgerID+" ")) {
			t.Fatalf("checkpoint:\n%s", cp)
		}
	})
}

func mustJTI(t *testing.T, tok string) string {
	_, p, err := ect.UnsafeDecodeWithoutVerification(tok)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(p, []byte(`"jti":"`))
	return string(p[i+7 : i+7+36])
}
