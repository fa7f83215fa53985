package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestProxySpool (BND-3) with real processes: the ledger down at first,
// 1000 proxied requests, the proxy SIGKILLed and restarted in the middle,
// then the ledger up: every token a client received is in the ledger once,
// the spool drains to zero pending with nothing refused, and the audit
// passes.
func TestProxySpool(t *testing.T) {
	dir := t.TempDir()
	must := mustCLI(t, dir)
	must("keygen", "--alg", "EdDSA", "--kid", "p1", "--out", "p.jwk", "--pub-out", "p.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/proxy", "--out", "trust.json", "p.pub")
	must("ledger", "init", "--db", "l.db", "--id", "spiffe://ex.com/ledger", "--key-out", "l.key", "--out", "l.vkey")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "done: "+string(b))
	}))
	defer upstream.Close()
	proxyPort, ledgerPort := freePort(t), freePort(t)
	startProxy := func() *exec.Cmd {
		_, cmd, _ := startProc(t, dir, `listening at (http://\S+) `, "proxy", "--upstream", upstream.URL, "--id", "spiffe://ex.com/proxy",
			"--key", "p.jwk", "--trust", "trust.json", "--listen", "127.0.0.1:"+proxyPort, "--policy", "off",
			"--ledger", "http://127.0.0.1:"+ledgerPort, "--ledger-id", "spiffe://ex.com/ledger", "--spool-max-backoff", "100ms")
		return cmd
	}
	proxyCmd := startProxy()
	base := "http://127.0.0.1:" + proxyPort
	var mu sync.Mutex
	tokens := map[string]string{} // jti -> token, as the clients received them
	var done atomic.Int64
	killed := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	next := make(chan int, 1000)
	for i := 0; i < 1000; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for attempt := 0; ; attempt++ {
					resp, err := client.Post(base+"/work", "text/plain", strings.NewReader(fmt.Sprint("request ", i)))
					if err == nil && resp.StatusCode == 200 {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						tok := resp.Header.Get("Execution-Context")
						mu.Lock()
						tokens[jtiOf(t, tok)] = tok
						mu.Unlock()
						if done.Add(1) == 500 {
							close(killed)
						}
						break
					}
					if err == nil {
						resp.Body.Close()
					}
					if attempt > 200 {
						t.Errorf("request %d never succeeded: %v", i, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // the proxy is restarting
				}
			}
		}()
	}
	<-killed
	proxyCmd.Process.Signal(syscall.SIGKILL)
	proxyCmd.Wait()
	proxyCmd = startProxy()
	wg.Wait()
	if len(tokens) != 1000 {
		t.Fatalf("%d distinct tokens for 1000 requests", len(tokens))
	}
	if out := must("proxy", "--spool-status", "--spool", "proxy-spool.db"); !strings.Contains(out, "0 sent") {
		t.Fatalf("BND-3: with the ledger down the spool sent something: %s", out)
	}
	lbase, lcmd, _ := startServe(t, dir, "serve", "--db", "l.db", "--key", "l.key", "--trust", "trust.json", "--listen", "127.0.0.1:"+ledgerPort)
	var status string
	re := regexp.MustCompile(`: 0 pending, (\d+) sent, 0 refused`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		status = must("proxy", "--spool-status", "--spool", "proxy-spool.db")
		if re.MatchString(status) || time.Now().After(deadline) {
			break
		}
	}
	m := re.FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("BND-3: the spool did not drain: %s", status)
	}
	sent, _ := strconv.Atoi(m[1])
	resp, err := http.Get(lbase + "/v1/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	size, _ := strconv.Atoi(strings.Split(string(cp), "\n")[1])
	// Tokens signed for requests cut by the kill may be in the ledger too;
	// none is there twice, and every token a client got is there.
	if size != sent || sent < 1000 {
		t.Fatalf("BND-3: the ledger holds %d entries, the spool sent %d, the clients got 1000 tokens", size, sent)
	}
	for jti, tok := range tokens {
		resp, err := http.Get(lbase + "/v1/tasks/" + jti)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Entries []struct{ Token string }
		}
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if len(got.Entries) != 1 || got.Entries[0].Token != tok {
			t.Fatalf("BND-3: task %s is in the ledger %d times", jti, len(got.Entries))
		}
	}
	proxyCmd.Process.Signal(syscall.SIGTERM)
	proxyCmd.Wait()
	lcmd.Process.Signal(syscall.SIGTERM)
	lcmd.Wait()
	if out := must("ledger", "verify", "--db", "l.db", "--trust", "trust.json", "--ledger-key-file", "l.vkey"); !strings.Contains(out, "ledger intact: "+strconv.Itoa(size)+" entries") {
		t.Fatalf("the audit: %s", out)
	}
}

// jtiOf reads a token's jti, unverified (the test's bookkeeping).
func jtiOf(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Errorf("not a JWS: %q", tok)
		return ""
	}
	var c struct{ JTI string }
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(b, &c)
	return c.JTI
}

// TestProxyEmbeddedLedger (BND-3): with --db and --db-key the proxy
// appends what it signs to an embedded ledger, through the spool.
func TestProxyEmbeddedLedger(t *testing.T) {
	dir := t.TempDir()
	must := mustCLI(t, dir)
	must("keygen", "--alg", "EdDSA", "--kid", "p1", "--out", "p.jwk", "--pub-out", "p.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/proxy", "--out", "trust.json", "p.pub")
	must("ledger", "init", "--db", "e.db", "--id", "spiffe://ex.com/ledger", "--key-out", "e.key", "--out", "e.vkey")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer upstream.Close()
	mport := freePort(t)
	base, cmd, _ := startProc(t, dir, `listening at (http://\S+) `, "proxy", "--upstream", upstream.URL, "--id", "spiffe://ex.com/proxy",
		"--key", "p.jwk", "--trust", "trust.json", "--listen", "127.0.0.1:0", "--policy", "off", "--db", "e.db", "--db-key", "e.key",
		"--metrics-listen", "127.0.0.1:"+mport)
	for i := 0; i < 5; i++ {
		resp, err := http.Post(base+"/x", "text/plain", strings.NewReader(fmt.Sprint(i)))
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Execution-Context") == "" {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out := must("proxy", "--spool-status", "--spool", "proxy-spool.db")
		if strings.Contains(out, "0 pending, 5 sent, 0 refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BND-3: %s", out)
		}
	}
	resp, err := http.Get("http://127.0.0.1:" + mport + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `agentctx_spool_tokens{state="pending"} 0`) || !strings.Contains(string(metrics), `agentctx_spool_tokens{state="sent"} 5`) {
		t.Fatalf("BND-3: the spool's depth as a metric:\n%s", metrics)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if out := must("ledger", "verify", "--db", "e.db", "--trust", "trust.json", "--ledger-key-file", "e.vkey"); !strings.Contains(out, "ledger intact: 5 entries") {
		t.Fatalf("BND-3: %s", out)
	}
}
