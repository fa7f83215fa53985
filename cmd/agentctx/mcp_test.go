package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/mcptest"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/sqlite"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/trust"
)

// TestMCPReferenceServer (BND-5, BND-6, BND-3) puts agentctx proxy --mcp in
// front of the reference MCP server from npm: an MCP session (initialize,
// notifications/initialized), then tools/call of echo and get-sum, two of
// them in parallel, each with the caller's ECT; every call comes back with
// the proxy's ECT (exec_act mcp.<tool>, inp_hash of the exact request
// bytes, out_hash of the exact JSON-RPC response message inside the SSE
// stream), and every call is in the ledger with those hashes.
func TestMCPReferenceServer(t *testing.T) {
	upstream := mcptest.Reference(t)
	dir := t.TempDir()
	must := mustCLI(t, dir)
	must("keygen", "--alg", "EdDSA", "--kid", "p1", "--out", "p.jwk", "--pub-out", "p.pub")
	must("keygen", "--alg", "EdDSA", "--kid", "a1", "--out", "a.jwk", "--pub-out", "a.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/mcp-proxy", "--out", "trust.json", "p.pub")
	must("keys", "trust", "--id", "spiffe://ex.com/agent", "--merge", "trust.json", "--out", "trust.json", "a.pub")
	must("ledger", "init", "--db", "l.db", "--id", "spiffe://ex.com/ledger", "--key-out", "l.key", "--out", "l.vkey")
	base, proxyCmd, _ := startProc(t, dir, `listening at (http://\S+) `, "proxy", "--mcp", "--upstream", upstream, "--id", "spiffe://ex.com/mcp-proxy",
		"--key", "p.jwk", "--trust", "trust.json", "--listen", "127.0.0.1:0", "--policy", "verify-if-present", "--db", "l.db", "--db-key", "l.key")
	var session string
	post := func(body string, ect string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		if ect != "" {
			req.Header.Set("Execution-Context", ect)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	resp, b := post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"agentctx-test","version":"1"}}}`, "")
	if session = resp.Header.Get("Mcp-Session-Id"); resp.StatusCode != 200 || session == "" || resp.Header.Get("Execution-Context") != "" {
		t.Fatalf("BND-6: initialize through the proxy: %d %q %.200s", resp.StatusCode, session, b)
	}
	if resp, _ := post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, ""); resp.StatusCode/100 != 2 {
		t.Fatalf("BND-6: notifications/initialized: %d", resp.StatusCode)
	}
	key, err := trust.LoadSigningKey(filepath.Join(dir, "a.jwk"), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := loadTrustSet(filepath.Join(dir, "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ect.NewVerifier(ect.Config{Trust: ts, Audience: "spiffe://ex.com/agent", Clock: time.Now})
	type call struct{ body, ect, resp, msg string }
	calls := []*call{
		{body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`},
		{body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":2,"b":3}}}`},
		{body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":5,"b":8}}}`},
	}
	var wg sync.WaitGroup
	for i, c := range calls {
		tok, err := ect.Create(key, &ect.Claims{Issuer: "spiffe://ex.com/agent", Audience: []string{"spiffe://ex.com/mcp-proxy", "spiffe://ex.com/ledger"}, ExecAct: "ask"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c.ect = tok
		run := func() {
			resp, b := post(c.body, c.ect)
			if resp.StatusCode != 200 {
				t.Errorf("BND-5: tools/call %s: %d %s", c.body, resp.StatusCode, b)
			}
			c.resp, c.msg = resp.Header.Get("Execution-Context"), string(transport.MCPResponseMessage(resp.Header.Get("Content-Type"), b, []byte(c.body)))
		}
		if i == 0 {
			run()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run() }() // the two get-sum calls in parallel
	}
	wg.Wait()
	for _, c := range calls {
		r, err := v.Verify(context.Background(), c.resp)
		if err != nil {
			t.Fatalf("BND-5: the proxy's ECT of %s: %v", c.body, err)
		}
		var name struct {
			Params struct{ Name string }
		}
		json.Unmarshal([]byte(c.body), &name)
		if r.Claims.ExecAct != "mcp."+name.Params.Name || r.Claims.InputHash != agentctx.HashBytes([]byte(c.body)) ||
			r.Claims.OutputHash != agentctx.HashBytes([]byte(c.msg)) || !strings.Contains(c.msg, `"id":`) {
			t.Fatalf("BND-5: the ECT of %s: %+v (message %s)", c.body, r.Claims, c.msg)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if out := must("proxy", "--spool-status", "--spool", "proxy-spool.db"); strings.Contains(out, "0 pending, 6 sent, 0 refused") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("BND-3: %s", out)
		}
	}
	proxyCmd.Process.Signal(syscall.SIGTERM)
	proxyCmd.Wait()
	// Every call is in the ledger, the exact token the client got.
	st, err := sqlite.Open(filepath.Join(dir, "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := ledger.Open(context.Background(), ledger.Config{Store: st, Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		es, err := l.Get(context.Background(), ledger.JTIOf(c.resp), "")
		if err != nil || len(es) != 1 || string(es[0].Token) != c.resp {
			t.Fatalf("BND-3: the call %s in the ledger: %v %d", c.body, err, len(es))
		}
	}
	fmt.Fprint(io.Discard, must("ledger", "verify", "--db", "l.db", "--trust", "trust.json", "--ledger-key-file", "l.vkey"))
}
