package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
)

// TestTesseraClient checks the served tiles (SVC-6) with a client built only
// on C2SP and transparency-dev code: tessera's fsck downloads the whole log
// over HTTP and rebuilds every tile and the checkpoint's root from the entry
// bundles, and tessera's proof builder, working from tiles alone, gives the
// same inclusion and consistency proofs as the JSON API.
func TestTesseraClient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var sizes []uint64
	for _, batch := range []int{100, 300, 311} {
		var lines []string
		for i := 0; i < batch; i++ {
			tok, _ := f.ect(t, fmt.Sprintf("t%d", i))
			lines = append(lines, tok)
		}
		body, _ := json.Marshal(map[string]any{"tokens": lines})
		if resp, b := post(t, f.srv.URL+"/v1/entries", "application/json", string(body)); resp.StatusCode != 200 {
			t.Fatalf("append: %d %s", resp.StatusCode, b)
		}
		_, cp := get(t, f.srv.URL+"/checkpoint")
		c, err := ledger.VerifyCheckpoint(f.vkey, cp)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, c.Size)
	}
	n := sizes[len(sizes)-1]
	if n != 711 {
		t.Fatalf("log size %d", n)
	}
	root, _ := url.Parse(f.srv.URL + "/")
	fetcher, err := client.NewHTTPFetcher(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(f.vkey)
	if err != nil {
		t.Fatal(err)
	}
	bundleHasher := func(b []byte) ([][]byte, error) {
		var eb api.EntryBundle
		if err := eb.UnmarshalText(b); err != nil {
			return nil, err
		}
		hs := make([][]byte, len(eb.Entries))
		for i, e := range eb.Entries {
			hs[i] = rfc6962.DefaultHasher.HashLeaf(e)
		}
		return hs, nil
	}
	if err := fsck.New(ledgertest.LedgerID, v, fetcher, bundleHasher, fsck.Opts{N: 4}).Check(ctx); err != nil {
		t.Fatalf("SVC-6: tessera fsck of the served log: %v", err)
	}

	cp, _, _, err := client.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, v, ledgertest.LedgerID)
	if err != nil || cp.Size != n {
		t.Fatalf("tessera reads the checkpoint: %v", err)
	}
	pb, err := client.NewProofBuilder(ctx, n, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 1, 255, 256, 257, 511, 512, 700, n - 1} {
		fromTiles, err := pb.InclusionProof(ctx, i)
		if err != nil {
			t.Fatalf("inclusion %d from tiles: %v", i, err)
		}
		var r ledger.Receipt
		_, b := get(t, fmt.Sprintf("%s/v1/proofs/inclusion?index=%d&size=%d", f.srv.URL, i, n))
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("inclusion %d from the API: %s", i, b)
		}
		if !slices.EqualFunc(fromTiles, r.InclusionProof, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("SVC-6: the inclusion proof of %d built from tiles differs from the API's", i)
		}
	}
	for _, from := range sizes[:len(sizes)-1] {
		fromTiles, err := pb.ConsistencyProof(ctx, from, n)
		if err != nil {
			t.Fatalf("consistency %d..%d from tiles: %v", from, n, err)
		}
		var c struct{ Proof [][]byte }
		_, b := get(t, fmt.Sprintf("%s/v1/proofs/consistency?from=%d&to=%d", f.srv.URL, from, n))
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("consistency from the API: %s", b)
		}
		if !slices.EqualFunc(fromTiles, c.Proof, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("SVC-6: the consistency proof %d..%d built from tiles differs from the API's", from, n)
		}
	}
}
