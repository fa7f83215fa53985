package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/ledger"
)

// TestServeKill: SIGKILL the service in the middle of 64 clients' appends,
// start it again on the same store, and check that every append answered
// 200 is there at its receipt's index with its token, that nothing is torn
// (the audit of LED-11 passes on the whole log) and that appends go on
// (SVC-3, SVC-4, on SQLite and on PostgreSQL).
func TestServeKill(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { serveKill(t, "l.db") })
	t.Run("postgres", func(t *testing.T) { serveKill(t, testPostgres(t)) })
}

func serveKill(t *testing.T, db string) {
	dir := t.TempDir()
	key := testkeys.EdDSA("serve-kill", "k1")
	trustPath := writeTrust(t, "spiffe://ex.com/a", key.Public())
	if _, stderr, code := cli(t, dir, "", "ledger", "init", "--db", db, "--id", "spiffe://ex.com/ledger", "--key-out", "l.key", "--out", "l.vkey"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	const clients, each = 64, 24
	now := time.Now()
	toks := make([][]string, clients)
	for c := range toks {
		for i := 0; i < each; i++ {
			tok, err := ect.Create(key, &ect.Claims{Issuer: "spiffe://ex.com/a", Audience: []string{"spiffe://ex.com/ledger"}, ExecAct: "x"}, now)
			if err != nil {
				t.Fatal(err)
			}
			toks[c] = append(toks[c], tok)
		}
	}
	base, cmd, _ := startServe(t, dir, "serve", "--db", db, "--key", "l.key", "--trust", trustPath, "--listen", "127.0.0.1:0")

	type acked struct {
		tok   string
		Index uint64 `json:"index"`
		JTI   string `json:"jti"`
	}
	var (
		mu     sync.Mutex
		ok     []acked
		count  atomic.Int64
		wg     sync.WaitGroup
		killed = make(chan struct{})
	)
	hc := &http.Client{Timeout: 10 * time.Second}
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for _, tok := range toks[c] {
				resp, err := hc.Post(base+"/v1/entries", "application/jwt", strings.NewReader(tok))
				if err != nil {
					return // the server is gone: this append was not acknowledged
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					return
				}
				var r acked
				if err := json.Unmarshal(b, &r); err != nil {
					t.Errorf("a 200 whose body is not a receipt: %s", b)
					return
				}
				r.tok = tok
				mu.Lock()
				ok = append(ok, r)
				mu.Unlock()
				if count.Add(1) == clients*each/3 {
					cmd.Process.Signal(syscall.SIGKILL)
					close(killed)
				}
			}
		}(c)
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("every append finished before the kill: the test proves nothing")
	}
	cmd.Wait()
	if len(ok) < clients*each/3 || len(ok) == clients*each {
		t.Fatalf("%d of %d appends acknowledged", len(ok), clients*each)
	}

	base, cmd, _ = startServe(t, dir, "serve", "--db", db, "--key", "l.key", "--trust", trustPath, "--listen", "127.0.0.1:0")
	seen := map[uint64]bool{}
	for _, r := range ok {
		if seen[r.Index] {
			t.Fatalf("SVC-4: two acknowledged appends share index %d", r.Index)
		}
		seen[r.Index] = true
		resp, err := http.Get(fmt.Sprintf("%s/v1/entries/%d", base, r.Index))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			JTI   string `json:"jti"`
			Token string `json:"token"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 200 || e.JTI != r.JTI || e.Token != r.tok {
			t.Fatalf("SVC-3: acknowledged append %s at %d lost after SIGKILL: %d %q", r.JTI, r.Index, resp.StatusCode, e.JTI)
		}
	}
	// A token acknowledged before the kill, sent again, gets its original
	// receipt (LED-4), not a second entry.
	resp, err := http.Post(base+"/v1/entries", "application/jwt", strings.NewReader(ok[0].tok))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var again acked
	json.Unmarshal(b, &again)
	if resp.StatusCode != 200 || again.Index != ok[0].Index {
		t.Fatalf("LED-4: a token acknowledged at %d, sent again after the restart: %d %s", ok[0].Index, resp.StatusCode, b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	stdout, stderr, code := cli(t, dir, "", "ledger", "verify", "--db", db, "--trust", trustPath, "--ledger-key-file", "l.vkey")
	if code != 0 || !strings.Contains(stdout, "ledger intact") {
		t.Fatalf("LED-11 after SIGKILL: exit %d %s %s", code, stdout, stderr)
	}
}

// TestServeTwoOnPostgres: two serve processes on one PostgreSQL database
// (SVC-2), appended to at once, keep one log: indexes are unique, every
// receipt from either verifies offline and is consistent with either's
// latest checkpoint, every checkpoint handed out is consistent with every
// larger one, and the audit passes.
func TestServeTwoOnPostgres(t *testing.T) {
	db := testPostgres(t)
	dir := t.TempDir()
	key := testkeys.EdDSA("serve-two", "k1")
	trustPath := writeTrust(t, "spiffe://ex.com/a", key.Public())
	if _, stderr, code := cli(t, dir, "", "ledger", "init", "--db", db, "--id", "spiffe://ex.com/ledger", "--key-out", "l.key", "--out", "l.vkey"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	vkeyb, err := os.ReadFile(filepath.Join(dir, "l.vkey"))
	if err != nil {
		t.Fatal(err)
	}
	vkey := strings.TrimSpace(string(vkeyb))
	var bases [2]string
	for i := range bases {
		bases[i], _, _ = startServe(t, dir, "serve", "--db", db, "--key", "l.key", "--trust", trustPath, "--listen", "127.0.0.1:0")
	}
	const clients, each = 32, 12
	type got struct {
		tok string
		r   ledger.Receipt
	}
	var (
		mu  sync.Mutex
		all []got
		wg  sync.WaitGroup
	)
	now := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				tok, err := ect.Create(key, &ect.Claims{Issuer: "spiffe://ex.com/a", Audience: []string{"spiffe://ex.com/ledger"}, ExecAct: "x"}, now)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := http.Post(bases[(c+i)%2]+"/v1/entries", "application/jwt", strings.NewReader(tok))
				if err != nil {
					t.Error(err)
					return
				}
				var g got
				err = json.NewDecoder(resp.Body).Decode(&g.r)
				resp.Body.Close()
				if resp.StatusCode != 200 || err != nil {
					t.Errorf("SVC-2: append to server %d: %d %v", (c+i)%2, resp.StatusCode, err)
					return
				}
				g.tok = tok
				mu.Lock()
				all = append(all, g)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	fetch := func(url string) []byte {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
		}
		return b
	}
	var latest [2][]byte
	for i, b := range bases {
		latest[i] = fetch(b + "/checkpoint")
		cp, err := ledger.VerifyCheckpoint(vkey, latest[i])
		if err != nil || cp.Size != clients*each {
			t.Fatalf("SVC-2: server %d's latest checkpoint: %v (size %d, want %d)", i, err, cp.Size, clients*each)
		}
	}
	seen := map[uint64]bool{}
	cps := map[uint64][]byte{}
	for _, g := range all {
		if seen[g.r.Index] {
			t.Fatalf("SVC-2: index %d handed out twice", g.r.Index)
		}
		seen[g.r.Index] = true
		if err := ledger.VerifyReceipt(vkey, &g.r, []byte(g.tok)); err != nil {
			t.Fatalf("SVC-2: receipt %d: %v", g.r.Index, err)
		}
		if old, ok := cps[g.r.TreeSize]; ok && !bytes.Equal(old, []byte(g.r.Checkpoint)) {
			t.Fatalf("SVC-2: two different checkpoints of size %d", g.r.TreeSize)
		}
		cps[g.r.TreeSize] = []byte(g.r.Checkpoint)
	}
	// Every checkpoint handed out is consistent with both servers' latest,
	// with the proof from either server.
	for size, cp := range cps {
		for i, b := range bases {
			var pr struct {
				Proof [][]byte `json:"proof"`
			}
			json.Unmarshal(fetch(fmt.Sprintf("%s/v1/proofs/consistency?from=%d&to=%d", b, size, clients*each)), &pr)
			if _, _, err := ledger.VerifyConsistency(vkey, cp, latest[1-i], pr.Proof); err != nil {
				t.Fatalf("SVC-2: checkpoint %d against server %d's latest, proof from server %d: %v", size, 1-i, i, err)
			}
		}
	}
	if stdout, stderr, code := cli(t, dir, "", "ledger", "verify", "--db", db, "--trust", trustPath, "--ledger-key-file", "l.vkey"); code != 0 {
		t.Fatalf("LED-11 after two writers: exit %d %s %s", code, stdout, stderr)
	}
}
