package witness_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/witness"
)

var hasher = rfc6962.DefaultHasher

// tlog is an in-memory log for the tests: its leaves and its key.
type tlog struct {
	origin string
	signer note.Signer
	vkey   string
	leaves [][]byte
}

func newLog(t *testing.T, origin string) *tlog {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	return &tlog{origin: origin, signer: s, vkey: vkey}
}

func (l *tlog) grow(prefix string, n int) {
	for i := 0; i < n; i++ {
		l.leaves = append(l.leaves, hasher.HashLeaf([]byte(fmt.Sprintf("%s-%d", prefix, len(l.leaves)))))
	}
}

// root is the RFC 6962 hash of leaves [begin, end): the tree's root from
// 0, or a perfect subtree's node.
func (l *tlog) root(begin, end uint64) []byte {
	rf := &compact.RangeFactory{Hash: hasher.HashChildren}
	r := rf.NewEmptyRange(begin)
	for _, h := range l.leaves[begin:end] {
		r.Append(h, nil)
	}
	if begin > 0 { // a perfect subtree (a proof node): the range is that one node
		return r.Hashes()[0]
	}
	root, _ := r.GetRootHash(nil)
	return root
}

func (l *tlog) checkpoint(t *testing.T, size uint64) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", l.origin, size, base64.StdEncoding.EncodeToString(l.root(0, size)))}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *tlog) prove(_ context.Context, old, size uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(old, size)
	if err != nil {
		return nil, err
	}
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		b, e := id.Coverage()
		hs[i] = l.root(b, e)
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

type fixture struct {
	w      *witness.Witness
	wv     note.Verifier
	a, b   *tlog
	store  *witness.SQLiteStore
	path   string
	signer note.Signer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	skey, vkey, err := witness.GenerateKey("witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := witness.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	wv, err := witness.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{wv: wv, a: newLog(t, "example.com/ledger-a"), b: newLog(t, "example.com/ledger-b"), path: filepath.Join(t.TempDir(), "w.db"), signer: signer}
	f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	st, err := witness.OpenStore(f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := map[string]note.Verifier{}
	for _, l := range []*tlog{f.a, f.b} {
		v, _ := note.NewVerifier(l.vkey)
		logs[l.origin] = v
	}
	f.store = st
	if f.w, err = witness.New(witness.Config{Signer: f.signer, Logs: logs, Store: st, Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
}

// add submits a checkpoint and returns the status and body.
func (f *fixture) add(t *testing.T, old uint64, pr [][]byte, cp []byte) (int, string) {
	t.Helper()
	srv := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/add-checkpoint", bytes.NewReader((&witness.Request{OldSize: old, Proof: pr, Checkpoint: cp}).Marshal()))
	f.w.ServeHTTP(srv, req)
	return srv.Code, srv.Body.String()
}

// TestWitness (tlog-witness): two logs cosigned independently; a log's
// rollback and its fork are refused with the statuses of the spec; the
// state survives a restart.
func TestWitness(t *testing.T) {
	f := newFixture(t)
	f.a.grow("a", 5)
	f.b.grow("b", 2)
	code, body := f.add(t, 0, nil, f.a.checkpoint(t, 3))
	if code != 200 || !strings.HasPrefix(body, "— witness.example/w1 ") {
		t.Fatalf("first checkpoint: %d %q", code, body)
	}
	if _, err := note.Open(append(f.a.checkpoint(t, 3), body...), note.VerifierList(f.wv)); err != nil {
		t.Fatalf("the cosignature does not verify with the witness key: %v", err)
	}
	pr, _ := f.a.prove(t.Context(), 3, 5)
	if code, body := f.add(t, 3, pr, f.a.checkpoint(t, 5)); code != 200 {
		t.Fatalf("3 -> 5: %d %s", code, body)
	}
	if code, body := f.add(t, 0, nil, f.b.checkpoint(t, 2)); code != 200 {
		t.Fatalf("the second log: %d %s", code, body)
	}
	// Rolled back: log a shows size 4 after 5 was cosigned.
	if code, _ := f.add(t, 5, nil, f.a.checkpoint(t, 4)); code != 400 {
		t.Errorf("rollback with old 5: %d, want 400", code)
	}
	pr, _ = f.a.prove(t.Context(), 3, 4)
	if code, body := f.add(t, 3, pr, f.a.checkpoint(t, 4)); code != 409 || body != "5\n" {
		t.Errorf("rollback with old 3: %d %q, want 409 and the size 5", code, body)
	}
	// Forked: another history of log a, at the cosigned size and beyond.
	fork := &tlog{origin: f.a.origin, signer: f.a.signer, vkey: f.a.vkey}
	fork.grow("fork", 7)
	if code, _ := f.add(t, 5, nil, fork.checkpoint(t, 5)); code != 409 {
		t.Errorf("fork at the cosigned size: %d, want 409", code)
	}
	pr, _ = fork.prove(t.Context(), 5, 7)
	if code, _ := f.add(t, 5, pr, fork.checkpoint(t, 7)); code != 422 {
		t.Errorf("fork beyond the cosigned size: %d, want 422", code)
	}
	// The honest log goes on.
	f.a.grow("a", 2)
	pr, _ = f.a.prove(t.Context(), 5, 7)
	if code, body := f.add(t, 5, pr, f.a.checkpoint(t, 7)); code != 200 {
		t.Fatalf("5 -> 7: %d %s", code, body)
	}
	// Unknown log, wrong key, malformed requests.
	other := newLog(t, "example.com/unknown")
	other.grow("x", 1)
	if code, _ := f.add(t, 0, nil, other.checkpoint(t, 1)); code != 404 {
		t.Errorf("unknown origin: %d, want 404", code)
	}
	impostor := newLog(t, f.b.origin)
	impostor.leaves = f.b.leaves
	if code, _ := f.add(t, 2, nil, impostor.checkpoint(t, 2)); code != 403 {
		t.Errorf("signed by another key: %d, want 403", code)
	}
	if code, _ := f.add(t, 0, [][]byte{make([]byte, 32)}, f.b.checkpoint(t, 2)); code != 409 {
		t.Errorf("old 0 for a cosigned log: %d, want 409", code)
	}
	for name, body := range map[string]string{
		"no old line":    "7\n\n" + string(f.a.checkpoint(t, 7)),
		"leading zero":   "old 05\n\n" + string(f.a.checkpoint(t, 7)),
		"bad proof line": "old 5\nnot-base64\n\n" + string(f.a.checkpoint(t, 7)),
		"no empty line":  "old 5\n",
		"no checkpoint":  "old 5\n\n",
		"64 proof lines": "old 5\n" + strings.Repeat(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n", 64) + "\n" + string(f.a.checkpoint(t, 7)),
		"garbage note":   "old 5\n\nexample.com/ledger-a\nnot a checkpoint\n",
	} {
		rec := httptest.NewRecorder()
		f.w.ServeHTTP(rec, httptest.NewRequest("POST", "/add-checkpoint", strings.NewReader(body)))
		if rec.Code != 400 && rec.Code != 403 {
			t.Errorf("%s: %d, want 400 (or 403)", name, rec.Code)
		}
	}
	if rec := httptest.NewRecorder(); func() bool {
		f.w.ServeHTTP(rec, httptest.NewRequest("GET", "/add-checkpoint", nil))
		return rec.Code != 405
	}() {
		t.Error("GET add-checkpoint is not 405")
	}
	// The state is durable: after a restart the witness still refuses the
	// rollback.
	f.store.Close()
	f.open(t)
	if st, err := f.store.Latest(context.Background(), f.a.origin); err != nil || st.Size != 7 {
		t.Fatalf("state after restart: %+v %v", st, err)
	}
	if code, body := f.add(t, 0, nil, f.a.checkpoint(t, 3)); code != 409 || body != "7\n" {
		t.Fatalf("after restart, an old checkpoint: %d %q", code, body)
	}
}

// TestPeer: the log side learns the witness's size from a 409, proves
// consistency from it, and keeps only valid cosignatures.
func TestPeer(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.w)
	defer srv.Close()
	f.a.grow("a", 4)
	if code, _ := f.add(t, 0, nil, f.a.checkpoint(t, 2)); code != 200 {
		t.Fatal(code)
	}
	p := &witness.Peer{Name: "witness.example/w1", Verifier: f.wv, URL: srv.URL}
	lines, err := p.Cosign(context.Background(), f.a.checkpoint(t, 4), 4, f.a.prove)
	if err != nil || len(lines) != 1 {
		t.Fatalf("cosign 4 after the witness saw 2: %v %q", err, lines)
	}
	cp := append(f.a.checkpoint(t, 4), lines[0]...)
	if err := ledger.RequireCosignatures(cp, []note.Verifier{f.wv}, 1); err != nil {
		t.Fatal(err)
	}
	if err := ledger.RequireCosignatures(f.a.checkpoint(t, 4), []note.Verifier{f.wv}, 1); err == nil {
		t.Fatal("a checkpoint without the cosignature passes")
	}
	wrong := &witness.Peer{Name: "witness.example/w1", Verifier: newLogVerifier(t), URL: srv.URL}
	f.a.grow("a", 1)
	if _, err := wrong.Cosign(context.Background(), f.a.checkpoint(t, 5), 5, f.a.prove); err == nil {
		t.Fatal("cosignatures kept that do not verify with the configured key")
	}
	if _, err := (&witness.Peer{Name: "w", Verifier: f.wv, URL: srv.URL + "/nowhere"}).Cosign(context.Background(), f.a.checkpoint(t, 5), 5, f.a.prove); err == nil {
		t.Fatal("a 404 is not an error")
	}
}

func newLogVerifier(t *testing.T) note.Verifier {
	_, vkey, _ := witness.GenerateKey("witness.example/w1")
	v, err := witness.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
