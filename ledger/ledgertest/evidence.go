package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/trust"
)

// mandate returns a mandate of issuer (signed with key) for subject in the
// suite's workflow, allowing actions.
func (f *fixture) mandate(key *trust.SigningKey, iss, sub, id string, actions ...string) string {
	f.t.Helper()
	caps := make([]act.Capability, len(actions))
	for i, a := range actions {
		caps[i] = act.Capability{Action: a}
	}
	tok, err := act.NewMandate(key, &act.Mandate{Issuer: iss, Subject: sub, Audience: []string{sub}, ID: id, WorkflowID: Wid,
		Task: act.Task{Purpose: "suite"}, Capabilities: caps}, f.now)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// record returns the record of mandate signed by its subject's key.
func (f *fixture) record(key *trust.SigningKey, mandate string, execAct string, pred ...string) string {
	f.t.Helper()
	m, err := act.ParseUnverified(mandate)
	if err != nil {
		f.t.Fatal(err)
	}
	tok, err := act.NewRecord(key, m.Mandate.Subject, m, act.RecordInput{ExecAct: execAct, Status: act.StatusCompleted, Pred: pred, ExecTS: f.now}, f.now)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *fixture) one(in ledger.Input) ledger.Outcome {
	f.t.Helper()
	out, err := f.l.Append(context.Background(), []ledger.Input{in})
	if err != nil {
		f.t.Fatal(err)
	}
	return out[0]
}

func wantCode(t *testing.T, o ledger.Outcome, want agentctx.Code) {
	t.Helper()
	if got := agentctx.CodeOf(o.Err); got != want {
		t.Fatalf("got %q (%v), want %q", got, o.Err, want)
	}
}

// auditFinds asserts that the audit names index, with a reason containing
// what.
func auditFinds(t *testing.T, l *ledger.Ledger, opts ledger.AuditOptions, index uint64, what string) {
	t.Helper()
	_, err := l.AuditWith(context.Background(), opts)
	var ae *ledger.AuditError
	if !errors.As(err, &ae) || ae.Index != index || !strings.Contains(ae.Reason, what) {
		t.Fatalf("audit: %v, want a finding at index %d about %q", err, index, what)
	}
}

func auditPasses(t *testing.T, l *ledger.Ledger) *ledger.AuditReport {
	t.Helper()
	rep, err := l.Audit(context.Background())
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return rep
}

// runEvidence is the part of the suite that proves what the audit finds and
// how ACT chains and records are held (LED-2, LED-2a, LED-9, LED-9a,
// LED-9b, ACT-P3b, DAG-4).
func runEvidence(t *testing.T, b Backend) {
	ctx := context.Background()
	t.Run("ACT-P3b/delegation chain appended with its parent and audited from the ledger", func(t *testing.T) {
		f := newFixture(t, b, false)
		m1 := f.mandate(KeyA, IssA, IssB, "", "read.data", "write.report")
		p1, _ := act.ParseUnverified(m1)
		m2, err := act.Delegate(KeyB, p1, &act.Mandate{Subject: IssC, Audience: []string{IssC}, Task: act.Task{Purpose: "read"},
			Capabilities: []act.Capability{{Action: "read.data"}}}, f.now)
		if err != nil {
			t.Fatal(err)
		}
		o := f.one(ledger.Input{Token: m2, Supporting: []string{m1}})
		if o.Err != nil || len(o.Supporting) != 1 || o.Supporting[0].Index != 0 || o.Receipt.Index != 1 {
			t.Fatalf("delegated mandate with its parent: %+v", o)
		}
		if err := ledger.VerifyReceipt(f.vkey, o.Supporting[0], []byte(m1)); err != nil {
			t.Fatalf("parent's receipt: %v", err)
		}
		// The record of the delegated mandate, appended alone: the ledger
		// finds the mandate and its parent.
		rec := f.record(KeyC, m2, "read.data")
		if o := f.one(ledger.Input{Token: rec}); o.Err != nil || len(o.Supporting) != 0 {
			t.Fatalf("record of the delegated mandate: %+v", o)
		}
		// A second delegation appended alone finds its parent in the ledger.
		m3, err := act.Delegate(KeyB, p1, &act.Mandate{Subject: IssC, Audience: []string{IssC}, Task: act.Task{Purpose: "write"},
			Capabilities: []act.Capability{{Action: "write.report"}}}, f.now)
		if err != nil {
			t.Fatal(err)
		}
		if o := f.one(ledger.Input{Token: m3}); o.Err != nil {
			t.Fatalf("delegation with a stored parent: %v", o.Err)
		}
		if rep := auditPasses(t, f.l); rep.Size != 4 {
			t.Fatalf("audit size %d", rep.Size)
		}
	})
	t.Run("ACT-P3b/delegated mandate without its parent is delegation_broken", func(t *testing.T) {
		f := newFixture(t, b, false)
		m1 := f.mandate(KeyA, IssA, IssB, "", "read.data")
		p1, _ := act.ParseUnverified(m1)
		m2, err := act.Delegate(KeyB, p1, &act.Mandate{Subject: IssC, Audience: []string{IssC}, Task: act.Task{Purpose: "read"},
			Capabilities: []act.Capability{{Action: "read.data"}}}, f.now)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, f.one(ledger.Input{Token: m2}), agentctx.CodeDelegationBroken)
	})
	t.Run("ACT-P3b/a record is compared with the stored mandate (hijack)", func(t *testing.T) {
		f := newFixture(t, b, false)
		x := f.mandate(KeyA, IssA, IssB, "", "read.data")
		px, _ := act.ParseUnverified(x)
		f.ok(x)
		// C signs its own mandate under X's jti and wid, then a record of it.
		forged := f.mandate(KeyC, IssC, IssC, px.Mandate.ID, "read.data")
		rec := f.record(KeyC, forged, "read.data")
		wantCode(t, f.one(ledger.Input{Token: rec, Supporting: []string{forged}}), agentctx.CodeMandateMismatch)
		wantCode(t, f.one(ledger.Input{Token: rec}), agentctx.CodeMandateMismatch)
		// B's real record is still accepted.
		if o := f.one(ledger.Input{Token: f.record(KeyB, x, "read.data")}); o.Err != nil {
			t.Fatal(o.Err)
		}
		auditPasses(t, f.l)
	})
	t.Run("ACT-P3b/a record whose mandate is unknown", func(t *testing.T) {
		f := newFixture(t, b, false)
		m := f.mandate(KeyA, IssA, IssB, "", "read.data")
		rec := f.record(KeyB, m, "read.data")
		wantCode(t, f.one(ledger.Input{Token: rec}), agentctx.CodeMandateUnknown)
		p := newFixture(t, b, true)
		o := p.one(ledger.Input{Token: rec})
		if o.Err != nil || len(o.Partial) != 1 {
			t.Fatalf("partial mode: %+v", o)
		}
		if rep := auditPasses(t, p.l); len(rep.Partial) != 1 {
			t.Fatalf("audit partial %v", rep.Partial)
		}
		// With its mandate supplied, the mandate is stored first.
		o = f.one(ledger.Input{Token: rec, Supporting: []string{m}})
		if o.Err != nil || len(o.Supporting) != 1 || o.Receipt.Index != 1 {
			t.Fatalf("record with its mandate: %+v", o)
		}
		auditPasses(t, f.l)
	})
	t.Run("DAG-4/mandate and record are one node: the cycle is refused", func(t *testing.T) {
		f := newFixture(t, b, false)
		x := f.mandate(KeyA, IssA, IssB, "", "read.data")
		px, _ := act.ParseUnverified(x)
		y, _ := f.ECT("after-x", px.Mandate.ID)
		f.ok(x, y)
		yid := mustJTI(t, y)
		wantCode(t, f.one(ledger.Input{Token: f.record(KeyB, x, "read.data", yid)}), agentctx.CodeDAGCycle)
		auditPasses(t, f.l)
	})
	// build makes a ledger of two batches (7 and 13 entries) holding a
	// policy decision, an ACT mandate and its record.
	build := func(t *testing.T) (*fixture, [][]byte) {
		f := newFixture(t, b, false)
		var toks []string
		c := &ect.Claims{Issuer: IssA, Audience: []string{LedgerID}, WorkflowID: Wid, ExecAct: "decide",
			Ext: []byte(`{"pol":"p1","pol_decision":"approved"}`)}
		tok, err := ect.Create(KeyA, c, f.now)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		for i := 0; i < 4; i++ {
			tok, _ := f.ECT("step")
			toks = append(toks, tok)
		}
		m := f.mandate(KeyA, IssA, IssB, "", "read.data")
		toks = append(toks, m, f.record(KeyB, m, "read.data"))
		f.ok(toks...)
		cp7, _ := f.l.Checkpoint(ctx)
		f.now = f.now.Add(time.Second)
		var more []string
		for i := 0; i < 13; i++ {
			tok, _ := f.ECT("more")
			more = append(more, tok)
		}
		f.ok(more...)
		cp20, _ := f.l.Checkpoint(ctx)
		return f, [][]byte{cp7, cp20}
	}
	for _, c := range []struct {
		name, stmt string
		index      uint64
		what       string
	}{
		{"pol", `UPDATE entries SET pol = 'rejected' WHERE idx = 0`, 0, "pol"},
		{"sub", `UPDATE entries SET sub = 'spiffe://example.com/agent/x' WHERE idx = 5`, 5, "sub"},
		{"caps", `UPDATE entries SET caps = 'read.data,delete.data' WHERE idx = 6`, 6, "caps"},
		{"partial", `UPDATE entries SET partial = NOT partial WHERE idx = 3`, 3, "partial"},
		{"iss", `UPDATE entries SET iss = 'spiffe://example.com/agent/b' WHERE idx = 2`, 2, "iss"},
		// The next entry's token with its own hashes (same batch, so the
		// same leaf hash): each check of the bytes passes, the token's
		// verification gives another task than the row says.
		{"token for the next one", `UPDATE entries SET token = (SELECT token FROM entries WHERE idx = 4), token_hash = (SELECT token_hash FROM entries WHERE idx = 4), leaf_hash = (SELECT leaf_hash FROM entries WHERE idx = 4) WHERE idx = 3`, 3, "column jti"},
		{"received time backwards", `UPDATE entries SET received_ms = received_ms - 5000 WHERE idx >= 7`, 7, "before the previous"},
		{"tail row", `INSERT INTO entries SELECT idx + 1, kind, jti, wid, iss, sub, exec_act, pred, ts, received_ms, partial, status, pol, caps, token, token_hash, leaf_hash FROM entries WHERE idx = 19`, 20, "latest checkpoint"},
		{"checkpoint rolled back", `DELETE FROM checkpoints WHERE size = 20`, 7, "latest checkpoint"},
		{"checkpoints truncated", `DELETE FROM checkpoints`, 0, "latest checkpoint"},
		{"tree without a node", `DELETE FROM nodes WHERE level = 1 AND idx = 2`, 0, "tree nodes are missing"},
	} {
		t.Run("LED-9/audit finds a changed "+c.name, func(t *testing.T) {
			f, _ := build(t)
			auditPasses(t, f.l)
			b.Tamper(t, f.store, c.stmt)
			auditFinds(t, f.l, ledger.AuditOptions{}, c.index, c.what)
		})
	}
	t.Run("LED-9/audit finds a batch without its checkpoint", func(t *testing.T) {
		f, _ := build(t)
		b.Tamper(t, f.store, `DELETE FROM checkpoints WHERE size = 7`)
		auditFinds(t, f.l, ledger.AuditOptions{}, 6, "no checkpoint of size 7")
	})
	t.Run("LED-2a/receipt times never go backwards", func(t *testing.T) {
		f := newFixture(t, b, false)
		a, _ := f.ECT("a")
		first := f.ok(a)[0]
		c, _ := f.ECT("c")
		f.now = f.now.Add(-time.Hour) // a clock set back, or append --now in the past
		second := f.ok(c)[0]
		if second.ReceivedAt < first.ReceivedAt {
			t.Fatalf("received %d after %d", second.ReceivedAt, first.ReceivedAt)
		}
		// A token made at the backdated time is checked as of the receipt
		// time, where it has expired.
		old, _ := f.ECT("old")
		wantCode(t, f.one(ledger.Input{Token: old}), agentctx.CodeExpired)
		auditPasses(t, f.l)
	})
	t.Run("LED-9/a checkpoint changed after the ledger opened it is refused", func(t *testing.T) {
		f, _ := build(t)
		if _, err := f.l.Prove(ctx, 3, 0); err != nil { // opens (and keeps) the latest checkpoint
			t.Fatal(err)
		}
		raw, _ := f.l.Checkpoint(ctx)
		forged := bytes.Replace(raw, []byte("\n20\n"), []byte("\n21\n"), 1)
		b.Tamper(t, f.store, `UPDATE checkpoints SET note = ? WHERE size = 20`, forged)
		if _, err := f.l.Prove(ctx, 3, 0); err == nil {
			t.Fatal("a proof against an altered checkpoint, after the genuine one was opened")
		}
		b.Tamper(t, f.store, `UPDATE checkpoints SET note = ? WHERE size = 20`, raw)
		if _, err := f.l.Prove(ctx, 3, 0); err != nil {
			t.Fatalf("the genuine checkpoint again: %v", err)
		}
	})
	t.Run("LED-9a/a replaced key with re-signed checkpoints is found with the pinned key", func(t *testing.T) {
		f, _ := build(t)
		auditPasses(t, f.l)
		skey, vkey, _ := ledger.GenerateKey(LedgerID)
		signer, _ := note.NewSigner(skey)
		cps, _ := f.store.Checkpoints(ctx)
		for _, raw := range cps {
			c, err := f.l.OpenCheckpoint(raw)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := note.Open(raw, note.VerifierList(mustVerifier(t, f.vkey)))
			resigned, _ := note.Sign(&note.Note{Text: n.Text}, signer)
			b.Tamper(t, f.store, `UPDATE checkpoints SET note = ? WHERE size = ?`, resigned, int64(c.Size))
		}
		b.Tamper(t, f.store, `UPDATE meta SET v = ? WHERE k = 'vkey'`, vkey)
		b.Tamper(t, f.store, `DELETE FROM checkpoint_cose`) // the old key's COSE signatures would give it away
		forged, err := ledger.Open(ctx, ledger.Config{Store: f.store, Trust: Trust(), Clock: func() time.Time { return f.now }})
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := forged.Audit(ctx); err != nil || rep.KeyPinned {
			t.Fatalf("unpinned audit of the re-signed ledger: %v %+v", err, rep)
		}
		auditFinds(t, forged, ledger.AuditOptions{VerifierKey: f.vkey}, 0, "pinned key")
	})
	t.Run("LED-9a/a removed last batch is found with an old checkpoint", func(t *testing.T) {
		f, cps := build(t)
		rep, err := f.l.AuditWith(ctx, ledger.AuditOptions{VerifierKey: f.vkey, Checkpoints: cps})
		if err != nil || !rep.KeyPinned || rep.External != 2 {
			t.Fatalf("pinned audit: %v %+v", err, rep)
		}
		b.Tamper(t, f.store, `DELETE FROM entries WHERE idx >= 7`)
		b.Tamper(t, f.store, `DELETE FROM nodes WHERE idx >= 7 OR level > 2`)
		b.Tamper(t, f.store, `DELETE FROM checkpoints WHERE size = 20`)
		auditFinds(t, f.l, ledger.AuditOptions{VerifierKey: f.vkey, Checkpoints: cps}, 7, "rolled back")
	})
	t.Run("LED-9b/a key missing from the trust is a configuration finding", func(t *testing.T) {
		f, _ := build(t)
		only := trust.NewSet()
		_ = only.Add(trust.Binding{ID: IssA}, KeyA.Public())
		l, err := ledger.Open(ctx, ledger.Config{Store: f.store, Trust: only, Clock: func() time.Time { return f.now }})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := l.Audit(ctx)
		if err != nil || len(rep.Unverified) != 1 || rep.Unverified[0].Index != 6 || rep.Unverified[0].Issuer != IssB || rep.Unverified[0].KeyID != "b-1" {
			t.Fatalf("audit with a trust lacking B: %v %+v", err, rep)
		}
		// The rest is still checked.
		b.Tamper(t, f.store, `UPDATE entries SET sub = 'x' WHERE idx = 6`)
		auditFinds(t, l, ledger.AuditOptions{}, 6, "sub")
	})
	t.Run("LED-3/storage errors are errors, not verdicts", func(t *testing.T) {
		f := newFixture(t, b, false)
		m := f.mandate(KeyA, IssA, IssB, "", "read.data")
		f.ok(m, f.record(KeyB, m, "read.data"))
		broken := &failingStore{Store: f.store}
		l, err := ledger.Open(ctx, ledger.Config{Store: broken, Signer: f.signer, Trust: Trust(), Clock: func() time.Time { return f.now }})
		if err != nil {
			t.Fatal(err)
		}
		broken.fail = true
		tok, _ := f.ECT("x")
		if _, err := l.Append(ctx, []ledger.Input{{Token: tok}}); err == nil {
			t.Fatal("append with a failing store gave verdicts")
		}
		if _, err := l.Audit(ctx); err == nil || errors.As(err, new(*ledger.AuditError)) {
			t.Fatalf("audit with a failing store: %v", err)
		}
		// Tree nodes that cannot be read are no finding either, and an
		// audit whose context ends stops with that, not with a verdict.
		g := newFixture(t, b, false)
		tok, _ = g.ECT("y")
		g.ok(tok)
		broken = &failingStore{Store: g.store, failHashes: true}
		l, err = ledger.Open(ctx, ledger.Config{Store: broken, Signer: g.signer, Trust: Trust(), Clock: func() time.Time { return g.now }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Audit(ctx); err == nil || errors.As(err, new(*ledger.AuditError)) {
			t.Fatalf("audit with unreadable tree nodes: %v", err)
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := g.l.Audit(canceled); err == nil || errors.As(err, new(*ledger.AuditError)) {
			t.Fatalf("audit with its context ended: %v", err)
		}
	})
}

// failingStore fails every look-up by jti once fail is set, and every
// tree node read with failHashes.
type failingStore struct {
	ledger.Store
	fail       bool
	failHashes bool // fail every Hashes read
}

func (s *failingStore) Hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	if s.failHashes {
		return nil, errors.New("disk on fire")
	}
	return s.Store.Hashes(ctx, ids)
}

func (s *failingStore) ByJTIs(ctx context.Context, jtis []string) ([]ledger.Entry, error) {
	if s.fail {
		return nil, errors.New("disk on fire")
	}
	return s.Store.ByJTIs(ctx, jtis)
}

func (s *failingStore) ByJTI(ctx context.Context, jti string) ([]ledger.Entry, error) {
	if s.fail {
		return nil, errors.New("disk on fire")
	}
	return s.Store.ByJTI(ctx, jti)
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
