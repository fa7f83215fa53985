package ledger_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/agentctx/agentctx/ledger"
)

// elided expands a hash the draft prints elided ("fc9f050f...221c92cb") to
// n bytes: its first and last bytes as printed, zeros between.
func elided(t *testing.T, s string, n int) []byte {
	head, tail, _ := strings.Cut(s, "...")
	h, err1 := hex.DecodeString(head)
	tl, err2 := hex.DecodeString(tail)
	if err1 != nil || err2 != nil {
		t.Fatal(s)
	}
	b := make([]byte, n)
	copy(b, h)
	copy(b[n-len(tl):], tl)
	return b
}

// draftReceipt builds the CBOR of an example of the COSE Receipts draft
// (draft-ietf-cose-merkle-tree-proofs, RFC 9942 §5.2.1 and §5.3.1), from
// its EDN: an ES256 receipt, vds 1, one proof under label, a detached
// payload.
func draftReceipt(t *testing.T, label int64, a, b uint64, path []string, sig string) []byte {
	t.Helper()
	prot, err := cbor.Marshal(map[int64]int64{1: -7, 395: 1})
	if err != nil {
		t.Fatal(err)
	}
	var hs [][]byte
	for _, p := range path {
		hs = append(hs, elided(t, p, 32))
	}
	inner, err := cbor.Marshal([]any{a, b, hs})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{prot, map[int64]any{396: map[int64]any{label: [][]byte{inner}}}, nil, elided(t, sig, 64)}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCOSEDraftExamples (SVC-6a): the public structure examples of the
// COSE Receipts draft, an inclusion receipt (size 20, leaf 17, three
// hashes) and a consistency receipt (20 to 104, six hashes), decode
// without error; this ledger's verifier refuses them (another signer's
// ES256 receipts), naming why.
func TestCOSEDraftExamples(t *testing.T) {
	incl := draftReceipt(t, -1, 20, 17, []string{"fc9f050f...221c92cb", "bd0136ad...6b28cf21", "d68af9d6...93b1632b"}, "de24f0cc...9a5ade89")
	r, err := ledger.DecodeCOSEReceipt(incl)
	if err != nil {
		t.Fatalf("SVC-6a: the draft's inclusion receipt does not decode: %v", err)
	}
	if r.Alg != -7 || len(r.Inclusion) != 1 || r.Inclusion[0].A != 20 || r.Inclusion[0].B != 17 || len(r.Inclusion[0].Path) != 3 || r.HasEntry {
		t.Fatalf("SVC-6a: the draft's inclusion receipt decodes as %+v", r)
	}
	cons := draftReceipt(t, -2, 20, 104, []string{"e5b3e764...c4a813bc", "87e8a084...4f529f69", "f712f76d...92a0ff36",
		"d68af9d6...93b1632b", "249efab6...b7614ccd", "85dd6293...38914dc1"}, "94469f73...52de67a1")
	r, err = ledger.DecodeCOSEReceipt(cons)
	if err != nil {
		t.Fatalf("SVC-6a: the draft's consistency receipt does not decode: %v", err)
	}
	if len(r.Consistency) != 1 || r.Consistency[0].A != 20 || r.Consistency[0].B != 104 || len(r.Consistency[0].Path) != 6 {
		t.Fatalf("SVC-6a: the draft's consistency receipt decodes as %+v", r)
	}
	_, vkey, _ := ledger.GenerateKey("spiffe://example.com/system/ledger")
	if _, err := ledger.VerifyCOSEReceipt(vkey, incl, []byte("x")); err == nil || !strings.Contains(err.Error(), "EdDSA") {
		t.Fatalf("SVC-6a: an ES256 receipt given to this ledger's verifier: %v", err)
	}
	for name, b := range map[string][]byte{
		"untagged":     incl[1:],
		"no vds":       mustCBOR(t, cbor.Tag{Number: 18, Content: []any{mustCBOR(t, map[int64]int64{1: -8}), map[int64]any{}, nil, make([]byte, 64)}}),
		"no proofs":    mustCBOR(t, cbor.Tag{Number: 18, Content: []any{mustCBOR(t, map[int64]int64{1: -8, 395: 1}), map[int64]any{396: map[int64]any{}}, nil, make([]byte, 64)}}),
		"short hash":   mustCBOR(t, cbor.Tag{Number: 18, Content: []any{mustCBOR(t, map[int64]int64{1: -8, 395: 1}), map[int64]any{396: map[int64]any{-1: [][]byte{mustCBOR(t, []any{2, 1, [][]byte{make([]byte, 16)}})}}}, nil, make([]byte, 64)}}),
		"proof as int": mustCBOR(t, cbor.Tag{Number: 18, Content: []any{mustCBOR(t, map[int64]int64{1: -8, 395: 1}), map[int64]any{396: map[int64]any{-1: []any{7}}}, nil, make([]byte, 64)}}),
	} {
		if _, err := ledger.DecodeCOSEReceipt(b); err == nil {
			t.Errorf("SVC-6a: %s decodes", name)
		}
	}
}

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
