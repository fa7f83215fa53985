package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReceiptFormats (SVC-6a) drives ledger prove --format, receipt verify
// (which detects the encoding) and ledger pubkey --format through the CLI.
func TestReceiptFormats(t *testing.T) {
	dir := t.TempDir()
	must := mustCLI(t, dir)
	must("keygen", "--alg", "EdDSA", "--kid", "a1", "--out", "a.jwk", "--pub-out", "a.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/a", "--out", "trust.json", "a.pub")
	must("ledger", "init", "--db", "l.db", "--id", "spiffe://ex.com/ledger", "--key-out", "l.key", "--out", "l.vkey")
	for _, act := range []string{"one", "two"} {
		tok := strings.TrimSpace(must("ect", "create", "--key", "a.jwk", "--iss", "spiffe://ex.com/a", "--aud", "spiffe://ex.com/ledger", "--exec-act", act))
		os.WriteFile(filepath.Join(dir, act+".tok"), []byte(tok), 0o644)
		must("ledger", "append", "--db", "l.db", "--key", "l.key", "--trust", "trust.json", "@"+act+".tok")
	}
	must("ledger", "prove", "--db", "l.db", "--index", "0", "--format", "cose", "--out", "r.cose")
	must("ledger", "prove", "--db", "l.db", "--index", "0", "--format", "tlog-proof", "--out", "r.tlog")
	must("ledger", "prove", "--db", "l.db", "--index", "0", "--out", "r.json")
	if b, _ := os.ReadFile(filepath.Join(dir, "r.tlog")); !strings.HasPrefix(string(b), "c2sp.org/tlog-proof@v1\nextra ") {
		t.Fatalf("SVC-6a: tlog-proof %q", b)
	}
	for _, f := range []string{"r.cose", "r.tlog", "r.json"} {
		out := must("receipt", "verify", "--ledger-key-file", "l.vkey", "--receipt", f, "--token", "@one.tok")
		if !strings.HasPrefix(out, "receipt verified") || !strings.Contains(out, "entry 0 of 2") {
			t.Errorf("SVC-6a: receipt verify %s: %q", f, out)
		}
		if _, stderr, code := cli(t, dir, "", "receipt", "verify", "--ledger-key-file", "l.vkey", "--receipt", f, "--token", "@two.tok"); code != 1 || !strings.Contains(stderr, "does NOT verify") {
			t.Errorf("SVC-6a: %s for another token: exit %d %s", f, code, stderr)
		}
	}
	must("ledger", "prove", "--db", "l.db", "--from", "1", "--to", "2", "--format", "cose", "--out", "c.cose")
	if b, _ := os.ReadFile(filepath.Join(dir, "c.cose")); len(b) < 100 || b[0] != 0xd2 {
		t.Fatalf("SVC-6a: consistency receipt %x", b)
	}
	if _, stderr, code := cli(t, dir, "", "ledger", "prove", "--db", "l.db", "--from", "1", "--to", "2", "--format", "tlog-proof"); code != 2 {
		t.Errorf("tlog-proof has no consistency form: exit %d %s", code, stderr)
	}
	if _, stderr, code := cli(t, dir, "", "ledger", "prove", "--db", "l.db", "--index", "0", "--format", "xml"); code != 2 || !strings.Contains(stderr, "json, tlog-proof, cose") {
		t.Errorf("an unknown format: exit %d %s", code, stderr)
	}
	// The key in three forms; the JWK and the COSE key name the same kid.
	vkey, _ := os.ReadFile(filepath.Join(dir, "l.vkey"))
	if out := must("ledger", "pubkey", "--db", "l.db"); out != string(vkey) && strings.TrimSpace(out) != strings.TrimSpace(string(vkey)) {
		t.Fatalf("pubkey note %q", out)
	}
	var jwk map[string]string
	if err := json.Unmarshal([]byte(must("ledger", "pubkey", "--db", "l.db", "--format", "jwk")), &jwk); err != nil || jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" || len(jwk["kid"]) != 43 {
		t.Fatalf("pubkey jwk %v %v", jwk, err)
	}
	must("ledger", "pubkey", "--db", "l.db", "--format", "cose-key", "--out", "l.cose-key")
	if b, _ := os.ReadFile(filepath.Join(dir, "l.cose-key")); len(b) < 70 || b[0] != 0xa5 {
		t.Fatalf("pubkey cose-key %x", b)
	}
}
