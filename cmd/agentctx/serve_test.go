package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeCLI drives SVC-1, SVC-3 and SVC-8 through the CLI: the start
// line, an append and reads over HTTP, the read-token rule, a clean stop
// on SIGTERM, and the refusals at start.
func TestServeCLI(t *testing.T) {
	dir := t.TempDir()
	must := mustCLI(t, dir)
	must("keygen", "--alg", "EdDSA", "--kid", "a1", "--out", "a.jwk", "--pub-out", "a.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/a", "--out", "trust.json", "a.pub")
	must("ledger", "init", "--db", "l.db", "--id", "spiffe://ex.com/ledger", "--key-out", "l.key", "--out", "l.vkey")
	tok := strings.TrimSpace(must("ect", "create", "--key", "a.jwk", "--iss", "spiffe://ex.com/a", "--aud", "spiffe://ex.com/ledger", "--exec-act", "x"))
	os.WriteFile(filepath.Join(dir, "read.tokens"), []byte("# readers\nreader-token-1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("listen: 127.0.0.1:0\nbogus: 1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "good.yaml"), []byte("listen: 127.0.0.1:0\nread-tokens: read.tokens\n"), 0o600)
	for name, c := range map[string][]string{
		"a non-loopback address without TLS": {"serve", "--db", "l.db", "--key", "l.key", "--trust", "trust.json", "--listen", "0.0.0.0:0"},
		"a database without a ledger":        {"serve", "--db", "other.db", "--key", "l.key", "--trust", "trust.json", "--listen", "127.0.0.1:0"},
		"an unknown config key":              {"serve", "--config", "bad.yaml", "--db", "l.db", "--key", "l.key", "--trust", "trust.json"},
	} {
		if _, stderr, code := cli(t, dir, "", c...); code != 2 {
			t.Errorf("SVC-1/SVC-8: %s: exit %d %s", name, code, stderr)
		} else if name == "an unknown config key" && !strings.Contains(stderr, `unknown key "bogus"`) {
			t.Errorf("%s", stderr)
		}
	}
	base, cmd, first := startServe(t, dir, "serve", "--db", "l.db", "--key", "l.key", "--trust", "trust.json", "--config", "good.yaml")
	if !regexp.MustCompile(`^agentctx: serving ledger spiffe://ex.com/ledger at http://127\.0\.0\.1:\d+ \(key spiffe://ex.com/ledger\+[0-9a-f]{8}\+\S+\)\n$`).MatchString(first) {
		t.Fatalf("SVC-1 start line %q", first)
	}
	resp, err := http.Post(base+"/v1/entries", "application/jwt", strings.NewReader(tok))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"index":0`) {
		t.Fatalf("append: %d %s", resp.StatusCode, b)
	}
	os.WriteFile(filepath.Join(dir, "r.json"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "tok"), []byte(tok), 0o644)
	must("receipt", "verify", "--ledger-key-file", "l.vkey", "--receipt", "r.json", "--token", "@tok")
	if resp, _ := http.Get(base + "/v1/entries/0"); resp.StatusCode != 401 {
		t.Fatalf("SVC-8: a read without the token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/v1/entries/0", nil)
	req.Header.Set("Authorization", "Bearer reader-token-1")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("SVC-8: a read with the token: %v %d", err, resp.StatusCode)
	}
	// SVC-3: SIGTERM stops it cleanly, and the ledger is intact.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SVC-3: exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("SVC-3: no stop after SIGTERM")
	}
	if v := must("ledger", "verify", "--db", "l.db", "--trust", "trust.json", "--ledger-key-file", "l.vkey"); !strings.Contains(v, "ledger intact: 1 entry") {
		t.Fatal(v)
	}
}

// startServe runs the CLI (args from "serve" on) as its own process in dir,
// waits for its start line and returns the URL it serves, the process
// (killed when the test ends) and the start line.
func startServe(t *testing.T, dir string, args ...string) (base string, cmd *exec.Cmd, first string) {
	t.Helper()
	return startProc(t, dir, ` at (https?://\S+) \(key `, args...)
}

// startProc runs the CLI in dir as a process and returns the URL its
// start line gives (the first group of pattern).
func startProc(t *testing.T, dir, pattern string, args ...string) (base string, cmd *exec.Cmd, first string) {
	t.Helper()
	exe, _ := os.Executable()
	bin := t.TempDir()
	os.Symlink(exe, filepath.Join(bin, "agentctx"))
	cmd = exec.Command(filepath.Join(bin, "agentctx"), args...)
	cmd.Dir = dir
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() { l, _ := bufio.NewReader(out).ReadString('\n'); line <- l; io.Copy(io.Discard, out) }()
	select {
	case first = <-line:
	case <-time.After(20 * time.Second):
		t.Fatal("serve: no start line")
	}
	m := regexp.MustCompile(pattern).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("%s: start line %q", args[0], first)
	}
	return m[1], cmd, first
}

// mustCLI returns a function that runs the CLI in dir and fails the test
// unless it exits 0; it returns stdout.
func mustCLI(t *testing.T, dir string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, dir, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		return out
	}
}
