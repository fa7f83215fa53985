package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/ledger/sqlite"
	"github.com/agentctx/agentctx/server"
)

type fixture struct {
	srv  *httptest.Server
	s    *server.Server
	l    *ledger.Ledger
	vkey string
	now  time.Time
}

func newFixture(t testing.TB, readTokens ...string) *fixture {
	t.Helper()
	return newFixtureWith(t, func(c *server.Config) { c.ReadTokens = readTokens })
}

// newFixtureWith is newFixture with the service's configuration changed by
// set.
func newFixtureWith(t testing.TB, set func(*server.Config)) *fixture {
	t.Helper()
	return newFixtureStore(t, nil, set)
}

// newFixtureStore is newFixtureWith with the ledger's store wrapped by wrap
// (nil: as is).
func newFixtureStore(t testing.TB, wrap func(ledger.Store) ledger.Store, set func(*server.Config)) *fixture {
	t.Helper()
	return newFixtureFull(t, wrap, nil, set)
}

// newFixtureFull is newFixtureStore with the ledger's configuration
// changed by lset (nil: as is).
func newFixtureFull(t testing.TB, wrap func(ledger.Store) ledger.Store, lset func(*ledger.Config), set func(*server.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	skey, vkey, _ := ledger.GenerateKey(ledgertest.LedgerID)
	if err := ledger.Create(ctx, st, ledgertest.LedgerID, vkey); err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	f := &fixture{vkey: vkey, now: time.Now().Truncate(time.Second)}
	var store ledger.Store = st
	if wrap != nil {
		store = wrap(st)
	}
	lcfg := ledger.Config{Store: store, Signer: signer, Trust: ledgertest.Trust(), Clock: time.Now}
	if lset != nil {
		lset(&lcfg)
	}
	f.l, err = ledger.Open(ctx, lcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Ledger: f.l, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	set(&cfg)
	f.s, err = server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.s)
	t.Cleanup(func() { f.srv.Close(); f.s.Close() })
	return f
}

func (f *fixture) ect(t *testing.T, act string, pred ...string) (string, string) {
	t.Helper()
	c := &ect.Claims{Issuer: ledgertest.IssA, Audience: []string{ledgertest.LedgerID}, WorkflowID: ledgertest.Wid, ExecAct: act, Pred: pred}
	tok, err := ect.Create(ledgertest.KeyA, c, f.now)
	if err != nil {
		t.Fatal(err)
	}
	return tok, c.ID
}

func post(t *testing.T, url, ct, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, ct, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func code(t *testing.T, b []byte) agentctx.Code {
	var p struct{ Code agentctx.Code }
	json.Unmarshal(b, &p)
	return p.Code
}

// TestAppend covers SVC-4 and SVC-9: one token as application/jwt gets its
// receipt (verifiable offline) or its problem; a batch gets results in
// order; duplicates and refusals have their statuses.
func TestAppend(t *testing.T) {
	f := newFixture(t)
	u := f.srv.URL + "/v1/entries"
	t1, id1 := f.ect(t, "root")
	resp, b := post(t, u, "application/jwt", t1)
	var r ledger.Receipt
	if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || r.JTI != id1 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if err := ledger.VerifyReceipt(f.vkey, &r, []byte(t1)); err != nil {
		t.Fatalf("SVC-4: the receipt does not verify offline: %v", err)
	}
	if resp, b := post(t, u, "application/jwt", t1); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"index":0,`)) {
		t.Fatalf("LED-4: the identical token again: %d %s", resp.StatusCode, b)
	}
	dup, _ := ect.Create(ledgertest.KeyA, &ect.Claims{ID: id1, Issuer: ledgertest.IssA, Audience: []string{ledgertest.LedgerID}, WorkflowID: ledgertest.Wid, ExecAct: "again"}, f.now)
	if resp, b := post(t, u, "application/jwt", dup); resp.StatusCode != 409 || code(t, b) != agentctx.CodeDAGDuplicate {
		t.Fatalf("SVC-9: dag_duplicate: %d %s", resp.StatusCode, b)
	}
	orphan, _ := f.ect(t, "orphan", "00000000-0000-4000-8000-000000000009")
	if resp, b := post(t, u, "application/jwt", orphan); resp.StatusCode != 422 || code(t, b) != agentctx.CodeDAGUnknownPred {
		t.Fatalf("SVC-9: a refused token: %d %s", resp.StatusCode, b)
	}
	t2, _ := f.ect(t, "next", id1)
	body, _ := json.Marshal(map[string]any{"tokens": []string{t2, orphan, strings.Repeat("a", 9000)}})
	resp, b = post(t, u, "application/json", string(body))
	var out struct {
		Results []struct {
			OK   bool
			Code agentctx.Code
		}
	}
	json.Unmarshal(b, &out)
	if resp.StatusCode != 200 || len(out.Results) != 3 || !out.Results[0].OK || out.Results[1].Code != agentctx.CodeDAGUnknownPred || out.Results[2].Code != agentctx.CodeTooLarge {
		t.Fatalf("SVC-4: a batch: %d %s", resp.StatusCode, b)
	}
	for name, c := range map[string]struct {
		ct, body string
		status   int
	}{
		"malformed JSON":     {"application/json", `{"tokens": [`, 400},
		"unknown member":     {"application/json", `{"tokenz": []}`, 400},
		"wrong content type": {"image/png", "x", 415},
		"1001 tokens":        {"application/json", `{"tokens": [` + strings.TrimSuffix(strings.Repeat(`"a",`, 1001), ",") + `]}`, 413},
		"a body over 1 MiB":  {"application/jwt", strings.Repeat("a", 1<<20+1), 413},
		"empty":              {"application/jwt", "", 400},
	} {
		t.Run("SVC-9/"+name, func(t *testing.T) {
			resp, b := post(t, u, c.ct, c.body)
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
}

// TestGroupCommit covers SVC-4: 64 concurrent single-token appends are
// answered after their own tokens committed, in fewer batches than
// requests, every receipt valid.
func TestGroupCommit(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		tok, _ := f.ect(t, fmt.Sprintf("t%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(f.srv.URL+"/v1/entries", "application/jwt", strings.NewReader(tok))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var r ledger.Receipt
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
				errs <- fmt.Errorf("%d %v", resp.StatusCode, err)
				return
			}
			if err := ledger.VerifyReceipt(f.vkey, &r, []byte(tok)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rep, err := f.l.Audit(context.Background())
	if err != nil || rep.Size != 64 || rep.Checkpoints >= 64 {
		t.Fatalf("audit %v %+v (one checkpoint per batch, fewer batches than requests)", err, rep)
	}
}

// TestReads covers SVC-5: entries, tasks, workflows (paginated), the DAG,
// the checkpoint, proofs, the key; and SVC-9 for bad parameters.
func TestReads(t *testing.T) {
	f := newFixture(t)
	prev := ""
	var toks []string
	for i := 0; i < 5; i++ {
		var tok, id string
		if prev == "" {
			tok, id = f.ect(t, "s")
		} else {
			tok, id = f.ect(t, "s", prev)
		}
		toks, prev = append(toks, tok), id
		post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
	}
	if resp, b := get(t, f.srv.URL+"/v1/entries/2?proof=1"); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"proof":{`)) {
		t.Fatalf("entry: %d %s", resp.StatusCode, b)
	}
	if resp, b := get(t, f.srv.URL+"/v1/tasks/"+prev); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"index":4`)) {
		t.Fatalf("task: %d %s", resp.StatusCode, b)
	}
	if resp, b := get(t, f.srv.URL+"/v1/workflows?limit=1"); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"nodes":5`)) || !bytes.Contains(b, []byte(`"latest_index":4`)) {
		t.Fatalf("workflows: %d %s", resp.StatusCode, b)
	}
	if resp, b := get(t, f.srv.URL+"/v1/workflows/"+ledgertest.Wid+"?format=dot"); resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("digraph")) {
		t.Fatalf("workflow dot: %d %s", resp.StatusCode, b)
	}
	resp, cp := get(t, f.srv.URL+"/checkpoint")
	if resp.StatusCode != 200 || !bytes.HasPrefix(cp, []byte(ledgertest.LedgerID+"\n5\n")) {
		t.Fatalf("checkpoint: %d %s", resp.StatusCode, cp)
	}
	_, b := get(t, f.srv.URL+"/v1/proofs/inclusion?index=3&size=5")
	var r ledger.Receipt
	json.Unmarshal(b, &r)
	if err := ledger.VerifyReceipt(f.vkey, &r, []byte(toks[3])); err != nil {
		t.Fatalf("inclusion: %v %s", err, b)
	}
	if resp, b := get(t, f.srv.URL+"/v1/key"); resp.StatusCode != 200 || !bytes.Contains(b, []byte(f.vkey)) {
		t.Fatalf("key: %s", b)
	}
	for path, status := range map[string]int{
		"/v1/entries/99": 404, "/v1/entries/-1": 400, "/v1/workflows?limit=5000": 400, "/v1/workflows?cursor=zzzz": 400,
		"/v1/proofs/inclusion?index=9&size=5": 404, "/v1/proofs/consistency?from=4&to=2": 400, "/nothing": 404, "/tile/0/999": 404,
	} {
		if resp, b := get(t, f.srv.URL+path); resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("SVC-9: %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestReadAccess covers SVC-8: with read tokens, reads need a bearer token
// (401 with WWW-Authenticate: Bearer otherwise); checkpoint, tiles, proofs
// and the key stay public.
func TestReadAccess(t *testing.T) {
	f := newFixture(t, "s3cret-read-token")
	tok, _ := f.ect(t, "x")
	post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
	for _, p := range []string{"/v1/entries/0", "/v1/workflows", "/v1/tasks/x"} {
		resp, _ := get(t, f.srv.URL+p)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s without a token: %d", p, resp.StatusCode)
		}
		if resp, _ := get(t, f.srv.URL+p, "Authorization", "Bearer wrong"); resp.StatusCode != 401 {
			t.Errorf("%s with a wrong token: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := get(t, f.srv.URL+"/v1/entries/0", "Authorization", "Bearer s3cret-read-token"); resp.StatusCode != 200 {
		t.Fatalf("with the token: %d", resp.StatusCode)
	}
	for _, p := range []string{"/checkpoint", "/v1/key", "/v1/proofs/inclusion?index=0", "/tile/0/000.p/1"} {
		if resp, b := get(t, f.srv.URL+p); resp.StatusCode != 200 {
			t.Errorf("%s is public: %d %s", p, resp.StatusCode, b)
		}
	}
}

// TestTiles covers SVC-6: a client built on the C2SP specs downloads the
// hash tiles and entry bundles, recomputes every leaf from the entries and
// the root from the leaves, and finds the checkpoint's root; full tiles are
// immutable, partial ones not cached.
func TestTiles(t *testing.T) {
	f := newFixture(t)
	const n = 300
	var lines []string
	for i := 0; i < n; i++ {
		tok, _ := f.ect(t, fmt.Sprintf("t%d", i))
		lines = append(lines, tok)
	}
	body, _ := json.Marshal(map[string]any{"tokens": lines})
	post(t, f.srv.URL+"/v1/entries", "application/json", string(body))
	_, cp := get(t, f.srv.URL+"/checkpoint")
	c, err := ledger.VerifyCheckpoint(f.vkey, cp)
	if err != nil || c.Size != n {
		t.Fatalf("%v %d", err, c.Size)
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	for _, tw := range []struct {
		tile  string
		width int
	}{{"000", 256}, {"001.p/44", 44}} { // in order: the leaves are appended to rng
		tile, width := tw.tile, tw.width
		resp, hs := get(t, f.srv.URL+"/tile/0/"+tile)
		_, bundle := get(t, f.srv.URL+"/tile/entries/"+tile)
		if resp.StatusCode != 200 || len(hs) != 32*width {
			t.Fatalf("tile %s: %d, %d bytes", tile, resp.StatusCode, len(hs))
		}
		wantCache := map[int]string{256: "public, max-age=31536000, immutable", 44: "no-cache"}[width]
		if resp.Header.Get("Cache-Control") != wantCache {
			t.Fatalf("tile %s: Cache-Control %q", tile, resp.Header.Get("Cache-Control"))
		}
		for i := 0; i < width; i++ {
			if len(bundle) < 2 {
				t.Fatalf("bundle %s ends at entry %d", tile, i)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			leaf := rfc6962.DefaultHasher.HashLeaf(bundle[2 : 2+l])
			bundle = bundle[2+l:]
			if !bytes.Equal(leaf, hs[32*i:32*i+32]) {
				t.Fatalf("tile %s leaf %d does not match its entry", tile, i)
			}
			rng.Append(leaf, nil)
		}
	}
	root, _ := rng.GetRootHash(nil)
	if !bytes.Equal(root, c.Root) {
		t.Fatal("the root recomputed from the tiles is not the checkpoint's")
	}
	// A level-1 tile holds the root of the first 256 leaves.
	_, h1 := get(t, f.srv.URL+"/tile/1/000.p/1")
	first := rf.NewEmptyRange(0)
	_, h0 := get(t, f.srv.URL+"/tile/0/000")
	for i := 0; i < 256; i++ {
		first.Append(h0[32*i:32*i+32], nil)
	}
	r256, _ := first.GetRootHash(nil)
	if !bytes.Equal(h1, r256) {
		t.Fatal("level-1 tile is not the root of the first 256 leaves")
	}
}
