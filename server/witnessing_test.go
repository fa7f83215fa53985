package server_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/server"
	"github.com/agentctx/agentctx/witness"
)

// TestWitnessingOnce: the service asks its witness to cosign each new
// checkpoint and publishes the line; a service started again over the same
// ledger does not ask again for a size already cosigned (each round would
// add a line for the same size).
func TestWitnessingOnce(t *testing.T) {
	skey, vkey, _ := witness.GenerateKey("witness.example/w1")
	signer, _ := witness.NewSigner(skey)
	wv, _ := witness.NewVerifier(vkey)
	st, err := witness.OpenStore(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var f *fixture
	lv := func() note.Verifier { v, _ := note.NewVerifier(f.vkey); return v }
	var w *witness.Witness
	var asked atomic.Int32
	wsrv := httptest.NewServer(httpFunc(func() *witness.Witness { asked.Add(1); return w }))
	defer wsrv.Close()
	peer := func() []*witness.Peer {
		return []*witness.Peer{{Name: "witness.example/w1", URL: wsrv.URL, Verifier: wv}}
	}
	f = newFixtureFull(t, nil, nil, func(c *server.Config) { c.Witnesses = peer() })
	if w, err = witness.New(witness.Config{Signer: signer, Logs: map[string]note.Verifier{ledgertest.LedgerID: lv()}, Store: st, Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	tok, _ := f.ect(t, "witnessed")
	post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
	lines := func(url string) int {
		_, b := get(t, url+"/checkpoint")
		return strings.Count(string(b), "— witness.example/w1 ")
	}
	for deadline := time.Now().Add(10 * time.Second); lines(f.srv.URL) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no cosignature published")
		}
	}
	// A second service over the same ledger: its first round finds the line
	// and does not ask.
	before := asked.Load()
	s2, err := server.New(server.Config{Ledger: f.l, Witnesses: peer(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(s2)
	defer func() { srv2.Close(); s2.Close() }()
	time.Sleep(200 * time.Millisecond)
	if n := lines(srv2.URL); n != 1 || asked.Load() != before {
		t.Fatalf("%d cosignature lines of one witness for one size; the witness asked %d more times", n, asked.Load()-before)
	}
}

// httpFunc serves the witness returned by w at request time (it is made
// after the ledger it witnesses).
type httpFunc func() *witness.Witness

func (h httpFunc) ServeHTTP(rw http.ResponseWriter, r *http.Request) { h().ServeHTTP(rw, r) }
