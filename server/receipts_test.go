package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentctx/agentctx/ledger"
)

// TestReceiptEncodings (SVC-6a): the append response, the entry's receipt
// route and the proof routes answer JSON, C2SP tlog-proof or an RFC 9942
// COSE receipt as Accept (or ?format=) asks, each verifying offline with
// the ledger's public key alone.
func TestReceiptEncodings(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.ect(t, "first")
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/entries", strings.NewReader(tok))
	req.Header.Set("Content-Type", "application/jwt")
	req.Header.Set("Accept", ledger.MediaTypeCOSEReceipt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cr := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ledger.MediaTypeCOSEReceipt {
		t.Fatalf("SVC-6a: a COSE append answers %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if info, err := ledger.VerifyCOSEReceipt(f.vkey, cr, []byte(tok)); err != nil || info.Index != 0 {
		t.Fatalf("SVC-6a: the COSE receipt of the append: %v", err)
	}
	tok2, _ := f.ect(t, "second")
	post(t, f.srv.URL+"/v1/entries", "application/jwt", tok2)

	for _, c := range []struct{ path, accept, want string }{
		{"/v1/entries/0/receipt", "", "application/json"},
		{"/v1/entries/0/receipt?format=cose", "", ledger.MediaTypeCOSEReceipt},
		{"/v1/entries/0/receipt?format=tlog-proof", "", ledger.MediaTypeTLogProof},
		{"/v1/entries/0/receipt", "text/html;q=0.9, " + ledger.MediaTypeTLogProof + ";q=0.5", ledger.MediaTypeTLogProof},
		{"/v1/entries/0/receipt", "application/json;q=0.2, " + ledger.MediaTypeCOSEReceipt, ledger.MediaTypeCOSEReceipt},
		{"/v1/proofs/inclusion?index=0", ledger.MediaTypeCOSEReceipt, ledger.MediaTypeCOSEReceipt},
		{"/v1/proofs/inclusion?index=0&size=1", ledger.MediaTypeTLogProof, ledger.MediaTypeTLogProof},
	} {
		resp, b := get(t, f.srv.URL+c.path, "Accept", c.accept)
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode != 200 || !strings.HasPrefix(ct, c.want) || !strings.Contains(resp.Header.Get("Vary"), "Accept") {
			t.Fatalf("SVC-6a: %s (Accept %q): %d %s, want %s", c.path, c.accept, resp.StatusCode, ct, c.want)
		}
		switch c.want {
		case ledger.MediaTypeCOSEReceipt:
			_, err = ledger.VerifyCOSEReceipt(f.vkey, b, []byte(tok))
		case ledger.MediaTypeTLogProof:
			var r *ledger.Receipt
			if r, err = ledger.ParseTLogProof(b, []byte(tok)); err == nil {
				err = ledger.VerifyReceipt(f.vkey, r, []byte(tok))
			}
		}
		if err != nil {
			t.Fatalf("SVC-6a: %s (Accept %q) does not verify: %v", c.path, c.accept, err)
		}
	}
	resp, b := get(t, f.srv.URL+"/v1/proofs/consistency?from=1&to=2", "Accept", ledger.MediaTypeCOSEReceipt)
	_, cp1 := get(t, f.srv.URL+"/v1/proofs/inclusion?index=0&size=1")
	r1 := receiptOf(t, cp1)
	c1, _ := ledger.VerifyCheckpoint(f.vkey, []byte(r1.Checkpoint))
	if size, _, err := ledger.VerifyCOSEConsistency(f.vkey, b, 1, c1.Root); resp.StatusCode != 200 || err != nil || size != 2 {
		t.Fatalf("SVC-6a: the COSE consistency receipt: %d %v", resp.StatusCode, err)
	}
	for path, want := range map[string]int{
		"/v1/entries/0/receipt?format=xml":                     400,
		"/v1/entries/9/receipt":                                404,
		"/v1/proofs/consistency?from=1&to=2&format=tlog-proof": 406,
	} {
		if resp, _ := get(t, f.srv.URL+path); resp.StatusCode != want {
			t.Errorf("SVC-6a: %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if resp, _ := get(t, f.srv.URL+"/v1/entries/0/receipt", "Accept", "image/png"); resp.StatusCode != 406 {
		t.Errorf("SVC-6a: Accept image/png: %d, want 406", resp.StatusCode)
	}
	// A refused Accept appends nothing.
	tok3, _ := f.ect(t, "third")
	req, _ = http.NewRequest("POST", f.srv.URL+"/v1/entries", strings.NewReader(tok3))
	req.Header.Set("Content-Type", "application/jwt")
	req.Header.Set("Accept", "image/png")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 406 {
		t.Fatalf("SVC-6a: an append asking for image/png: %v %d", err, resp.StatusCode)
	}
	if n, _ := f.l.Size(t.Context()); n != 2 {
		t.Fatalf("SVC-6a: an append answered 406 was appended: size %d", n)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func receiptOf(t *testing.T, b []byte) *ledger.Receipt {
	t.Helper()
	var r ledger.Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("not a receipt: %v %s", err, b)
	}
	return &r
}
