package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/wimse"
)

type memSink struct {
	mu   sync.Mutex
	toks []string
}

func (s *memSink) Append(_ context.Context, t []string) error {
	s.mu.Lock()
	s.toks = append(s.toks, t...)
	s.mu.Unlock()
	return nil
}

// TestOutbound (BND-2): an agent with no agentctx code calls through the
// outbound proxy (HTTP_PROXY, or the base-URL form); the proxy attaches
// the agent's ECT, WIT and proof, the inbound proxy in front of the tool
// verifies them, and the outbound proxy verifies the tool's ECT and
// records the agent's ECTs as a chain of tasks of its workflow.
func TestOutbound(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "tool got "+string(b))
	})
	inbound, _, ts := setupWith(t, up, func(c *proxy.Config) {})
	in, _ := url.Parse(inbound)
	wit, _ := wimse.IssueWIT(issuer, wimse.WITClaims{Subject: clientID, Key: clientKey.Public()}, now)
	sink := &memSink{}
	const wid = "0f1e2d3c-4b5a-4968-8776-655443322110"
	ob, err := proxy.NewOutbound(proxy.OutboundConfig{
		Client: transport.ClientConfig{ID: clientID, Key: clientKey, WIT: wit, Trust: ts, WITTrust: ts, Clock: func() time.Time { return now }},
		Peers:  map[string]string{in.Host: proxyID}, Routes: []proxy.Route{{Method: "POST", Path: "/v1/*", Action: "ask.tool"}},
		WorkflowID: wid, Sink: sink, LedgerID: "spiffe://example.com/system/ledger", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ob)
	defer srv.Close()
	pu, _ := url.Parse(srv.URL)
	agent := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := agent.Post(inbound+"/v1/run", "text/plain", strings.NewReader("first"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "tool got first" || resp.Header.Get("Execution-Context") == "" {
		t.Fatalf("BND-2: through HTTP_PROXY: %d %s", resp.StatusCode, b)
	}
	// The base-URL form, for clients that cannot use a proxy.
	resp, err = http.Post(srv.URL+"/http/"+in.Host+"/v1/run", "text/plain", strings.NewReader("second"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "tool got second" {
		t.Fatalf("BND-2: the base-URL form: %d %s", resp.StatusCode, b)
	}
	if len(sink.toks) != 2 {
		t.Fatalf("BND-2: %d tokens recorded, want the agent's two ECTs", len(sink.toks))
	}
	first, _ := ect.ParseUnverified(sink.toks[0])
	second, _ := ect.ParseUnverified(sink.toks[1])
	c1, c2 := first.Claims, second.Claims
	if c1.Issuer != clientID || c1.ExecAct != "ask.tool" || c1.WorkflowID != wid || len(c1.Pred) != 0 || len(c2.Pred) != 1 || c2.Pred[0] != c1.ID ||
		c1.Audience[0] != proxyID || c1.Audience[1] != "spiffe://example.com/system/ledger" {
		t.Fatalf("BND-2: the agent's tasks: %+v then %+v", c1, c2)
	}
	for name, do := range map[string]func() (*http.Response, error){
		"CONNECT": func() (*http.Response, error) {
			req, _ := http.NewRequest("CONNECT", srv.URL, nil)
			req.Host = "example.com:443"
			return http.DefaultClient.Do(req)
		},
		"an unknown host":     func() (*http.Response, error) { return http.Get(srv.URL + "/http/127.0.0.1:1/x") },
		"not a proxy request": func() (*http.Response, error) { return http.Get(srv.URL + "/x") },
	} {
		resp, err := do()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[string]int{"CONNECT": 405, "an unknown host": 502, "not a proxy request": 400}[name]; resp.StatusCode != want {
			t.Errorf("BND-2: %s: %d, want %d", name, resp.StatusCode, want)
		}
	}
}
