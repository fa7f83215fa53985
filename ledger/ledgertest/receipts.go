package ledgertest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/agentctx/agentctx/ledger"
)

// runReceipts checks SVC-6a: the same proof as a JSON receipt, a C2SP
// tlog-proof and an RFC 9942 COSE receipt, each verified offline with the
// ledger's public key alone, and a COSE signature stored per checkpoint so
// that a ledger opened without its key still answers COSE receipts.
func runReceipts(t *testing.T, b Backend) {
	t.Run("SVC-6a/three encodings of one proof", func(t *testing.T) {
		f := newFixture(t, b, false)
		ctx := context.Background()
		var toks []string
		for i := 0; i < 3; i++ {
			tok, _ := f.ECT(fmt.Sprint("enc", i))
			toks = append(toks, tok)
		}
		f.ok(toks[:2]...)
		f.now = f.now.Add(1500e6)
		f.ok(toks[2])
		for i, tok := range toks {
			r, err := f.l.Prove(ctx, uint64(i), 0)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := ledger.TLogProof(r)
			if err != nil || !ledger.IsTLogProof(tp) {
				t.Fatalf("tlog-proof of %d: %v\n%s", i, err, tp)
			}
			back, err := ledger.ParseTLogProof(tp, []byte(tok))
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.VerifyReceipt(f.vkey, back, []byte(tok)); err != nil {
				t.Fatalf("SVC-6a: the tlog-proof of entry %d does not verify: %v", i, err)
			}
			if back, _ := ledger.ParseTLogProof(tp, []byte(toks[(i+1)%3])); ledger.VerifyReceipt(f.vkey, back, []byte(toks[(i+1)%3])) == nil {
				t.Fatalf("SVC-6a: the tlog-proof of entry %d verifies for another token", i)
			}
			cr, err := f.l.COSEReceipt(ctx, r)
			if err != nil || !ledger.IsCOSE(cr) {
				t.Fatalf("COSE receipt of %d: %v", i, err)
			}
			info, err := ledger.VerifyCOSEReceipt(f.vkey, cr, []byte(tok))
			if err != nil {
				t.Fatalf("SVC-6a: the COSE receipt of entry %d does not verify: %v", i, err)
			}
			if info.Index != uint64(i) || info.TreeSize != 3 || info.Kind != ledger.KindECT || info.ReceivedAt != r.ReceivedAt {
				t.Fatalf("SVC-6a: COSE receipt %d says %+v", i, info)
			}
			if _, err := ledger.VerifyCOSEReceipt(f.vkey, cr, []byte(toks[(i+1)%3])); err == nil {
				t.Fatalf("SVC-6a: the COSE receipt of entry %d verifies for another token", i)
			}
			_, other, _ := ledger.GenerateKey(LedgerID)
			if _, err := ledger.VerifyCOSEReceipt(other, cr, []byte(tok)); err == nil {
				t.Fatalf("SVC-6a: the COSE receipt of entry %d verifies with another ledger's key", i)
			}
			checkCOSEStructure(t, cr)
			// The private labels are bound by the leaf hash: another receipt
			// time gives another root, and the signature fails.
			var m cose.Sign1Message
			if err := m.UnmarshalCBOR(cr); err != nil {
				t.Fatal(err)
			}
			m.Headers.RawUnprotected = nil
			m.Headers.Unprotected[ledger.LabelReceivedAt] = r.ReceivedAt + 1
			forged, err := m.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ledger.VerifyCOSEReceipt(f.vkey, forged, []byte(tok)); err == nil {
				t.Fatal("SVC-6a: a COSE receipt with an altered receipt time verifies")
			}
		}
		// Consistency: from the first checkpoint (size 2) to the latest (3).
		old, err := f.l.Prove(ctx, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		oldC, err := ledger.VerifyCheckpoint(f.vkey, []byte(old.Checkpoint))
		if err != nil {
			t.Fatal(err)
		}
		cc, err := f.l.COSEConsistency(ctx, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		size, root, err := ledger.VerifyCOSEConsistency(f.vkey, cc, oldC.Size, oldC.Root)
		latest, _ := f.l.Prove(ctx, 0, 0)
		latestC, _ := ledger.VerifyCheckpoint(f.vkey, []byte(latest.Checkpoint))
		if err != nil || size != 3 || !bytes.Equal(root, latestC.Root) {
			t.Fatalf("SVC-6a: the consistency receipt 2 -> 3: %v, size %d", err, size)
		}
		wrong := bytes.Clone(oldC.Root)
		wrong[0] ^= 1
		if _, _, err := ledger.VerifyCOSEConsistency(f.vkey, cc, oldC.Size, wrong); err == nil {
			t.Fatal("SVC-6a: a consistency receipt verifies from another old root")
		}
		if _, err := ledger.VerifyCOSEReceipt(f.vkey, cc, []byte(toks[0])); err == nil {
			t.Fatal("SVC-6a: a consistency receipt is taken as an inclusion receipt")
		}
		// Reads need no private key: the signature is stored with the
		// checkpoint, and equals the one made with the key.
		ro, err := ledger.Open(ctx, ledger.Config{Store: f.store, Clock: func() time.Time { return f.now }})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := ro.Prove(ctx, 1, 0)
		a, err1 := ro.COSEReceipt(ctx, r)
		bb, err2 := f.l.COSEReceipt(ctx, r)
		if err1 != nil || err2 != nil || !bytes.Equal(a, bb) {
			t.Fatalf("SVC-6a: the COSE receipt from a ledger opened without its key: %v %v equal=%v", err1, err2, bytes.Equal(a, bb))
		}
		for _, size := range []uint64{2, 3} {
			if sig, err := f.store.COSESignature(ctx, size); err != nil || len(sig) != 64 {
				t.Fatalf("SVC-6a: the COSE signature stored with checkpoint %d: %d bytes, %v", size, len(sig), err)
			}
		}
		if _, err := f.l.Audit(ctx); err != nil {
			t.Fatal(err)
		}
		// The audit checks the stored COSE signatures: one changed behind the
		// ledger's back is named by the checkpoint it belongs to.
		sig, _ := f.store.COSESignature(ctx, 2)
		sig = bytes.Clone(sig)
		sig[10] ^= 1
		b.Tamper(t, f.store, `UPDATE checkpoint_cose SET sig = ? WHERE size = 2`, sig)
		var ae *ledger.AuditError
		if _, err := f.l.Audit(ctx); !errors.As(err, &ae) || ae.Index != 1 {
			t.Fatalf("SVC-6a: the audit of a changed COSE signature: %v", err)
		}
	})
	t.Run("SVC-6a/a checkpoint without a stored COSE signature", func(t *testing.T) {
		f := newFixture(t, b, false)
		ctx := context.Background()
		if err := FillSynthetic(ctx, f.store, f.signer, 3, 3); err != nil {
			t.Fatal(err)
		}
		ro, err := ledger.Open(ctx, ledger.Config{Store: f.store, Clock: func() time.Time { return f.now }})
		if err != nil {
			t.Fatal(err)
		}
		r, err := ro.Prove(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ro.COSEReceipt(ctx, r); !errors.Is(err, ledger.ErrNoCOSESignature) {
			t.Fatalf("SVC-6a: without a stored signature or the key: %v", err)
		}
		cr, err := f.l.COSEReceipt(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ledger.VerifyCOSEReceipt(f.vkey, cr, binary.BigEndian.AppendUint64(nil, 1)); err != nil {
			t.Fatalf("SVC-6a: signed on demand with the key: %v", err)
		}
	})
}

// checkCOSEStructure checks the receipt's shape against RFC 9942 as SVC-6a
// writes it, decoding it with a plain CBOR decoder (not go-cose).
func checkCOSEStructure(t *testing.T, b []byte) {
	t.Helper()
	var tag cbor.Tag
	if err := cbor.Unmarshal(b, &tag); err != nil || tag.Number != 18 {
		t.Fatalf("SVC-6a: not tag 18: %v %d", err, tag.Number)
	}
	arr, ok := tag.Content.([]any)
	if !ok || len(arr) != 4 || arr[2] != nil {
		t.Fatalf("SVC-6a: not a COSE_Sign1 with a detached (nil) payload: %#v", tag.Content)
	}
	var prot map[int64]any
	if err := cbor.Unmarshal(arr[0].([]byte), &prot); err != nil {
		t.Fatal(err)
	}
	cwt, _ := prot[15].(map[any]any)
	if prot[1] != int64(-8) || prot[395] != uint64(1) || len(prot[4].([]byte)) != 32 || cwt[uint64(1)] != LedgerID || len(prot) != 4 {
		t.Fatalf("SVC-6a: protected header %#v", prot)
	}
	un, _ := arr[1].(map[any]any)
	vdp, _ := un[uint64(396)].(map[any]any)
	if list, _ := vdp[int64(-1)].([]any); len(list) != 1 {
		t.Fatalf("SVC-6a: unprotected header %#v", un)
	}
	if len(arr[3].([]byte)) != 64 {
		t.Fatal("SVC-6a: the signature is not 64 bytes (Ed25519)")
	}
}
