package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWitnessing drives the witness role through the CLI with real
// processes: one witness for two ledgers served with --witness; the
// witness cosigns their checkpoints, which /checkpoint and later receipts
// carry; receipt verify and ledger verify with --min-witnesses take them
// and refuse a receipt without cosignatures; a rolled-back copy of one
// ledger, and a fork of it (the copy grown with other tokens, same key),
// are refused by the witness and so never get its cosignature.
func TestWitnessing(t *testing.T) {
	dir := t.TempDir()
	must := mustCLI(t, dir)
	wkey := strings.TrimSpace(must("witness", "keygen", "--name", "witness.example/w1", "--out", "w.key"))
	if !strings.HasPrefix(wkey, "witness.example/w1+") {
		t.Fatalf("witness keygen printed %q", wkey)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "w.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("witness key mode %v", fi.Mode())
	}
	os.WriteFile(filepath.Join(dir, "w.vkey"), []byte(wkey+"\n"), 0o644)
	must("keygen", "--alg", "EdDSA", "--kid", "a1", "--out", "a.jwk", "--pub-out", "a.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/a", "--out", "trust.json", "a.pub")
	for _, n := range []string{"a", "b"} {
		must("ledger", "init", "--db", n+".db", "--id", "spiffe://ex.com/ledger-"+n, "--key-out", n+".key", "--out", n+".vkey")
	}
	wbase, _, _ := startProc(t, dir, ` at (http://\S+) \(`, "witness", "serve", "--key", "w.key", "--db", "w.db", "--listen", "127.0.0.1:0",
		"--log", "spiffe://ex.com/ledger-a=a.vkey", "--log", "spiffe://ex.com/ledger-b=b.vkey")
	serveLedger := func(n string) (string, func()) {
		base, cmd, _ := startServe(t, dir, "serve", "--db", n+".db", "--key", n+".key", "--trust", "trust.json", "--listen", "127.0.0.1:0",
			"--witness", "witness.example/w1="+wbase+"=w.vkey")
		return base, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	}
	tok := func(act, aud string) string {
		return strings.TrimSpace(must("ect", "create", "--key", "a.jwk", "--iss", "spiffe://ex.com/a", "--aud", aud, "--exec-act", act))
	}
	appendTo := func(base, tok string) string {
		resp, err := http.Post(base+"/v1/entries", "application/jwt", strings.NewReader(tok))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("append: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	// cosigned waits until the ledger's /checkpoint has the witness's line
	// (the witnesses cosign in the background).
	cosigned := func(base string, size int) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get(base + "/checkpoint")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "\n"+strconv.Itoa(size)+"\n") && strings.Contains(string(b), "— witness.example/w1 ") {
				return true
			}
		}
		return false
	}
	aBase, stopA := serveLedger("a")
	bBase, stopB := serveLedger("b")
	var aToks []string
	var first string
	for i, act := range []string{"one", "two", "three"} {
		aToks = append(aToks, tok(act, "spiffe://ex.com/ledger-a"))
		r := appendTo(aBase, aToks[i])
		if i == 0 {
			first = r
		}
		if !cosigned(aBase, i+1) {
			t.Fatalf("ledger a at size %d: no cosignature at /checkpoint", i+1)
		}
		if i == 1 {
			copyFile(t, filepath.Join(dir, "a.db"), filepath.Join(dir, "a-old.db")) // a copy at size 2, for the rollback
		}
	}
	appendTo(bBase, tok("other", "spiffe://ex.com/ledger-b"))
	if !cosigned(bBase, 1) {
		t.Fatal("ledger b: no cosignature")
	}
	os.WriteFile(filepath.Join(dir, "t0"), []byte(aToks[0]), 0o644)
	os.WriteFile(filepath.Join(dir, "r-append.json"), []byte(first), 0o644)
	resp, err := http.Get(aBase + "/v1/entries/0/receipt")
	if err != nil {
		t.Fatal(err)
	}
	later, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(filepath.Join(dir, "r-later.json"), later, 0o644)
	resp, _ = http.Get(aBase + "/v1/entries/0/receipt?format=cose")
	cose, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(filepath.Join(dir, "r-later.cose"), cose, 0o644)
	resp, _ = http.Get(aBase + "/v1/entries/0/receipt?format=tlog-proof")
	tp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(filepath.Join(dir, "r-later.tlog"), tp, 0o644)
	for _, r := range []string{"r-later.json", "r-later.cose", "r-later.tlog"} {
		must("receipt", "verify", "--ledger-key-file", "a.vkey", "--receipt", r, "--token", "@t0", "--witness-key", "w.vkey", "--min-witnesses", "1")
	}
	// The receipt of the append came before the witness cosigned: it does
	// not carry the cosignature, and is refused when one is required.
	must("receipt", "verify", "--ledger-key-file", "a.vkey", "--receipt", "r-append.json", "--token", "@t0")
	if _, stderr, code := cli(t, dir, "", "receipt", "verify", "--ledger-key-file", "a.vkey", "--receipt", "r-append.json", "--token", "@t0",
		"--witness-key", "w.vkey", "--min-witnesses", "1"); code != 1 || !strings.Contains(stderr, "cosignatures") {
		t.Fatalf("a receipt without cosignatures, one required: exit %d %s", code, stderr)
	}
	stopA()
	stopB()
	if out := must("ledger", "verify", "--db", "a.db", "--trust", "trust.json", "--ledger-key-file", "a.vkey", "--witness-key", "w.vkey", "--min-witnesses", "1"); !strings.Contains(out, "cosigned by 1 of 1 witnesses") {
		t.Fatalf("ledger verify: %s", out)
	}
	// Rolled back: ledger a served from its copy at size 2 (which holds the
	// cosignature of size 2 the witness gave then); the witness cosigned
	// size 3 since.
	os.Rename(filepath.Join(dir, "a.db"), filepath.Join(dir, "a-real.db"))
	copyFile(t, filepath.Join(dir, "a-old.db"), filepath.Join(dir, "a.db"))
	aBase, stopA = serveLedger("a")
	// Its size 2 was cosigned then (the copy holds that line): nothing to
	// ask. Forked: the copy grown with other tokens, under the same key, to
	// the size the witness cosigned since (another root: 409) and beyond
	// (422): refused each time.
	appendTo(aBase, tok("forked-1", "spiffe://ex.com/ledger-a"))
	waitRounds(t, aBase, 1)
	appendTo(aBase, tok("forked-2", "spiffe://ex.com/ledger-a"))
	waitRounds(t, aBase, 2)
	resp, _ = http.Get(aBase + "/checkpoint")
	cp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(cp), "\n4\n") || strings.Contains(string(cp), "— witness.example/w1 ") {
		t.Fatalf("the forked ledger's checkpoint carries a cosignature:\n%s", cp)
	}
	stopA()
	if _, stderr, code := cli(t, dir, "", "ledger", "verify", "--db", "a.db", "--trust", "trust.json", "--ledger-key-file", "a.vkey",
		"--witness-key", "w.vkey", "--min-witnesses", "1"); code != 1 || !strings.Contains(stderr, "NOT witnessed") {
		t.Fatalf("ledger verify of the fork with a witness required: exit %d %s", code, stderr)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(from + suffix)
		if err != nil {
			if suffix != "" {
				continue
			}
			t.Fatal(err)
		}
		if err := os.WriteFile(to+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// waitRounds waits until the server's metrics count n witness rounds that
// failed, and fails the test if one succeeded.
func waitRounds(t *testing.T, base string, n int) {
	t.Helper()
	re := regexp.MustCompile(`agentctx_witness_rounds_total\{witness="witness.example/w1",result="(ok|error)"\} (\d+)`)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if m[1] == "ok" {
				t.Fatalf("the witness cosigned a rolled-back or forked ledger:\n%s", b)
			}
			if k, _ := strconv.Atoi(m[2]); k >= n {
				return
			}
		}
	}
	t.Fatalf("no %d refused witness rounds", n)
}
