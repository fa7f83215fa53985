package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestProxyCLI drives the transport contract through the CLI: wimse wit and
// verify, agentctx proxy in front of a plain upstream (a real process), and
// agentctx call with both proofs, a signed response, and a refusal.
func TestProxyCLI(t *testing.T) {
	dir := t.TempDir()
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return cli(t, dir, stdin, args...)
	}
	must := mustCLI(t, dir)
	must("keygen", "--alg", "ES256", "--kid", "td-1", "--out", "issuer.jwk", "--pub-out", "issuer.pub")
	must("keygen", "--alg", "EdDSA", "--kid", "a-1", "--out", "a.jwk", "--pub-out", "a.pub")
	must("keygen", "--alg", "ES256", "--kid", "b-1", "--out", "b.jwk", "--pub-out", "b.pub")
	must("keys", "trust", "--wit-domain", "example.com", "--out", "trust.json", "issuer.pub")
	must("keys", "trust", "--id", "spiffe://example.com/tool/b", "--merge", "trust.json", "--out", "trust.json", "b.pub")
	must("keys", "trust", "--id", "spiffe://example.com/agent/a", "--merge", "trust.json", "--out", "trust.json", "a.pub")
	must("wimse", "wit", "--key", "issuer.jwk", "--sub", "spiffe://example.com/agent/a", "--cnf", "a.pub", "--out", "a.wit")
	must("wimse", "wit", "--key", "issuer.jwk", "--sub", "spiffe://example.com/tool/b", "--cnf", "b.pub", "--out", "b.wit")
	out := must("wimse", "verify", "--trust", "trust.json", "@a.wit")
	if !regexp.MustCompile(`^\{"valid":true,"sub":"spiffe://example.com/agent/a","cnf":\{"jwk":\{.*"alg":"EdDSA".*\},"exp":\d+\}\n$`).MatchString(out) {
		t.Fatalf("wimse verify: %s", out)
	}
	if out, _, code := run("", "wimse", "verify", "--trust", "trust.json", "--now", "2000-01-01T00:00:00Z", "@a.wit"); code != 1 || !strings.Contains(out, `"valid":false`) {
		t.Fatalf("a WIT before its time: %d %s", code, out)
	}

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "tool did "+r.Method+" "+r.URL.Path+" on "+string(b)+" for "+r.Header.Get("Execution-Context-Verified"))
	}))
	defer upstream.Close()
	exe, _ := os.Executable()
	bin := t.TempDir()
	os.Symlink(exe, filepath.Join(bin, "agentctx"))
	cmd := exec.Command(filepath.Join(bin, "agentctx"), "proxy", "--upstream", upstream.URL, "--id", "spiffe://example.com/tool/b",
		"--key", "b.jwk", "--wit", "@b.wit", "--trust", "trust.json", "--listen", "127.0.0.1:0", "--action", "POST /api/*=tool.run")
	cmd.Dir = dir
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	var first string
	select {
	case first = <-line:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy printed no start line")
	}
	m := regexp.MustCompile(`listening at (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("start line %q", first)
	}
	base := m[1]
	for _, proof := range [][]string{{"--proof", "wpt"}, {"--proof", "httpsig", "--sign-response"}} {
		args := append([]string{"call", "-d", "hello", "--key", "a.jwk", "--wit", "@a.wit", "--iss", "spiffe://example.com/agent/a",
			"--exec-act", "ask", "--aud", "spiffe://example.com/tool/b", "--trust", "trust.json", "--ect-out", "resp.ect"}, proof...)
		out, stderr, code := run("", append(args, base+"/api/run?x=1")...)
		if code != 0 || !strings.HasPrefix(out, "tool did POST /api/run on hello for jti=") {
			t.Fatalf("call %v: exit %d %q %s", proof, code, out, stderr)
		}
		v := must("verify", "--trust", "trust.json", "--aud", "spiffe://example.com/agent/a", "--json", "@resp.ect")
		if !strings.Contains(v, `"exec_act":"tool.run"`) || !strings.Contains(v, `"iss":"spiffe://example.com/tool/b"`) {
			t.Fatalf("the response ECT: %s", v)
		}
	}
	// A refusal by the server: exit 1, the problem's code on stderr.
	_, stderr, code := run("", "call", "--key", "a.jwk", "--wit", "@a.wit", "--iss", "spiffe://example.com/agent/a", "--exec-act", "ask",
		"--aud", "spiffe://example.com/someone-else", "--trust", "trust.json", base+"/api/run")
	if code != 1 || !strings.Contains(stderr, "audience_mismatch") {
		t.Fatalf("refused call: exit %d %s", code, stderr)
	}
	// A request without any WIMSE identity: 400 wit_invalid.
	resp, err := http.Get(base + "/api/run")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"code":"wit_invalid"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// TestProxyApprovalsFlag: --approvals is checked before the proxy serves:
// a file its group or others may write is refused (whoever writes it
// approves actions), and so is --approvals with --outbound.
func TestProxyApprovalsFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "approvals.json")
	os.WriteFile(path, []byte("[]"), 0o600)
	os.Chmod(path, 0o664)
	args := []string{"proxy", "--upstream", "http://127.0.0.1:1", "--id", "spiffe://example.com/tool/b", "--key", "k.jwk", "--trust", "trust.json", "--approvals", path}
	if _, stderr, code := cli(t, dir, "", args...); code != 2 || !strings.Contains(stderr, "chmod go-w") {
		t.Fatalf("a group-writable approvals file: exit %d, %s", code, stderr)
	}
	os.Chmod(path, 0o600)
	if _, stderr, code := cli(t, dir, "", append(args, "--outbound")...); code != 2 || !strings.Contains(stderr, "--approvals is for the inbound proxy") {
		t.Fatalf("--approvals with --outbound: exit %d, %s", code, stderr)
	}
}
