package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/transport"
	"github.com/agentctx/agentctx/trust"
	"github.com/agentctx/agentctx/wimse"
)

const (
	clientID = "spiffe://example.com/agent/a"
	serverID = "spiffe://example.com/tool/b"
)

var (
	issuer    = testkeys.ES256("transport issuer", "td-1")
	clientKey = testkeys.EdDSA("transport client", "a-1")
	serverKey = testkeys.ES256("transport server", "b-1")
	now       = time.Unix(1767225600, 0)
)

type world struct {
	trust     *trust.Set
	clientWIT string
	serverWIT string
	srv       *httptest.Server
	mw        *transport.Middleware
	sink      *sink
	clock     func() time.Time
}

type sink struct{ toks []string }

func (s *sink) Append(_ context.Context, t []string) error { s.toks = append(s.toks, t...); return nil }

func newWorld(t testing.TB, mod func(*transport.ServerConfig)) *world {
	t.Helper()
	w := &world{trust: trust.NewSet(), sink: &sink{}, clock: func() time.Time { return now }}
	w.trust.AddWIT("example.com", issuer.Public())
	w.trust.Add(trust.Binding{ID: serverID}, serverKey.Public())
	var err error
	if w.clientWIT, err = wimse.IssueWIT(issuer, wimse.WITClaims{Subject: clientID, Key: clientKey.Public()}, now); err != nil {
		t.Fatal(err)
	}
	if w.serverWIT, err = wimse.IssueWIT(issuer, wimse.WITClaims{Subject: serverID, Key: serverKey.Public()}, now); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/echo", func(rw http.ResponseWriter, r *http.Request) {
		v := transport.FromContext(r.Context())
		if v == nil || v.ECT == nil {
			http.Error(rw, "no verified context", 500)
			return
		}
		transport.SetTask(r.Context(), transport.Task{ExecAct: "echo"})
		rw.Header().Set("Content-Type", "text/plain")
		io.WriteString(rw, "echo: "+string(v.Body)+" from "+v.WIT.Subject+" via "+v.Proof)
	})
	var base string
	cfg := transport.ServerConfig{ID: serverID, Key: serverKey, WIT: w.serverWIT, Trust: w.trust, WITTrust: w.trust,
		Audience: func(r *http.Request) string { return base + r.URL.Path }, Clock: w.clock, Sink: w.sink,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	w.mw, err = transport.NewMiddleware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.srv = httptest.NewServer(w.mw.Wrap(mux))
	base = w.srv.URL
	t.Cleanup(w.srv.Close)
	return w
}

func (w *world) client(t testing.TB, proof transport.Proof, signResp bool) *http.Client {
	t.Helper()
	c, err := transport.NewClient(transport.ClientConfig{ID: clientID, Key: clientKey, WIT: w.clientWIT, Trust: w.trust, WITTrust: w.trust,
		Clock: w.clock, Proof: proof, SignResponse: signResp})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: c}
}

func call(t *testing.T, hc *http.Client, url, body string) (*http.Response, *transport.Result, error) {
	t.Helper()
	res := &transport.Result{}
	req, _ := http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{serverID}, Done: res}),
		"POST", url, strings.NewReader(body))
	resp, err := hc.Do(req)
	return resp, res, err
}

// TestEndToEnd covers TR-9 and TR-10 with both proofs: the client attaches
// ECT, WIT and proof; the middleware verifies them in order and hands the
// handler the verified context; the response ECT (and signature) comes
// back verified.
func TestEndToEnd(t *testing.T) {
	for _, c := range []struct {
		name   string
		proof  transport.Proof
		signed bool
	}{{"WPT", transport.ProofWPT, false}, {"HTTP signature", transport.ProofHTTPSig, false}, {"HTTP signature, signed response", transport.ProofHTTPSig, true}} {
		t.Run("TR-9/"+c.name, func(t *testing.T) {
			w := newWorld(t, nil)
			resp, res, err := call(t, w.client(t, c.proof, c.signed), w.srv.URL+"/api/echo?q=1", "hello")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			want := map[transport.Proof]string{transport.ProofWPT: "wpt", transport.ProofHTTPSig: "httpsig"}[c.proof]
			if resp.StatusCode != 200 || string(b) != "echo: hello from "+clientID+" via "+want {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			r := res.ResponseECT
			if r == nil || r.Claims.Issuer != serverID || r.Claims.ExecAct != "echo" || r.Claims.Pred[0] != res.Claims.ID ||
				r.Claims.InputHash != agentctx.HashBytes([]byte("hello")) || r.Claims.OutputHash != agentctx.HashBytes(b) || res.Signed != c.signed {
				t.Fatalf("TR-10 response ECT: %+v signed %v", r, res.Signed)
			}
			if len(w.sink.toks) != 1 || w.sink.toks[0] != resp.Header.Get("Execution-Context") {
				t.Fatal("TR-9: the signed ECT did not reach the sink")
			}
		})
	}
}

func problem(t *testing.T, resp *http.Response) transport.Problem {
	t.Helper()
	var p transport.Problem
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	json.NewDecoder(resp.Body).Decode(&p)
	return p
}

// TestRefusals covers TR-1, TR-3, TR-4 and TR-6 at the middleware: each bad
// request gets its status and code.
func TestRefusals(t *testing.T) {
	w := newWorld(t, nil)
	url := w.srv.URL + "/api/echo"
	ectFor := func(aud string) string {
		tok, err := ect.Create(clientKey, &ect.Claims{Issuer: clientID, Audience: []string{aud}, ExecAct: "ask"}, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	wpt := func(aud string, other map[string]string) string {
		tok, err := wimse.CreateWPT(clientKey.Signer(), "EdDSA", wimse.WPTClaims{Audience: aud, WIT: w.clientWIT, Other: other}, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := ectFor(serverID)
	cases := map[string]struct {
		hdr    func(h http.Header)
		status int
		code   agentctx.Code
	}{
		"TR-4/no WIT":                  {func(h http.Header) { h.Set("Execution-Context", good) }, 400, agentctx.CodeWITInvalid},
		"TR-4/a WIT as a bearer token": {func(h http.Header) { h.Set("Authorization", "Bearer "+w.clientWIT) }, 400, agentctx.CodeWITInvalid},
		"TR-6/no proof":                {func(h http.Header) { h.Set("Workload-Identity-Token", w.clientWIT); h.Set("Execution-Context", good) }, 401, agentctx.CodeWPTInvalid},
		"TR-6/WPT aud is Host": {func(h http.Header) {
			h.Set("Workload-Identity-Token", w.clientWIT)
			h.Set("Execution-Context", good)
			h.Set("Authorization", "WPT "+wpt(strings.TrimPrefix(url, "http://"), map[string]string{"execution-context": good}))
		}, 401, agentctx.CodeWPTInvalid},
		"TR-6/both WPT carriers": {func(h http.Header) {
			h.Set("Workload-Identity-Token", w.clientWIT)
			p := wpt(url, nil)
			h.Set("Authorization", "WPT "+p)
			h.Set("Workload-Proof-Token", p)
		}, 401, agentctx.CodeWPTInvalid},
		"TR-6/Execution-Context not covered by oth": {func(h http.Header) {
			h.Set("Workload-Identity-Token", w.clientWIT)
			h.Set("Execution-Context", good)
			h.Set("Authorization", "WPT "+wpt(url, nil))
		}, 401, agentctx.CodeWPTInvalid},
		"TR-1/two Execution-Context lines": {func(h http.Header) { h.Add("Execution-Context", good); h.Add("Execution-Context", good) }, 400, agentctx.CodeMalformed},
		"TR-1/too many values":             {func(h http.Header) { h.Set("Execution-Context", strings.Repeat(good+",", 16)+good) }, 431, agentctx.CodeTooLarge},
		"TR-3/an ECT for another audience": {func(h http.Header) {
			other := ectFor("spiffe://example.com/elsewhere")
			h.Set("Workload-Identity-Token", w.clientWIT)
			h.Set("Execution-Context", other)
			h.Set("Authorization", "WPT "+wpt(url, map[string]string{"execution-context": other}))
		}, 403, agentctx.CodeAudienceMismatch},
		"TR-5/an ECT of another issuer than the WIT": {func(h http.Header) {
			tok, _ := ect.Create(serverKey, &ect.Claims{Issuer: serverID, Audience: []string{serverID}, ExecAct: "x"}, now)
			h.Set("Workload-Identity-Token", w.clientWIT)
			h.Set("Execution-Context", tok)
			h.Set("Authorization", "WPT "+wpt(url, map[string]string{"execution-context": tok}))
		}, 403, agentctx.CodeIdentityMismatch},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", url, strings.NewReader("x"))
			c.hdr(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			p := problem(t, resp)
			if resp.StatusCode != c.status || p.Code != c.code || p.Status != c.status {
				t.Fatalf("status %d code %q (%+v), want %d %q", resp.StatusCode, p.Code, p, c.status, c.code)
			}
			if c.status == 401 && resp.Header.Get("WWW-Authenticate") != "WPT" {
				t.Fatal("TR-3: 401 without WWW-Authenticate: WPT")
			}
			if strings.Contains(p.Detail, "eyJ") {
				t.Fatal("TR-3: token material in the problem")
			}
		})
	}
	t.Run("TR-6/a replayed request", func(t *testing.T) {
		req, _ := http.NewRequest("POST", url, strings.NewReader("x"))
		req.Header.Set("Workload-Identity-Token", w.clientWIT)
		req.Header.Set("Execution-Context", good)
		req.Header.Set("Authorization", "WPT "+wpt(url, map[string]string{"execution-context": good}))
		for i, want := range []int{200, 401} {
			r2 := req.Clone(context.Background())
			r2.Body = io.NopCloser(strings.NewReader("x"))
			resp, err := http.DefaultClient.Do(r2)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("attempt %d: %d", i+1, resp.StatusCode)
			}
		}
	})
	t.Run("TR-6/a server without a WIT cannot sign: 501, never an unsigned success", func(t *testing.T) {
		nw := newWorld(t, func(c *transport.ServerConfig) { c.WIT = "" })
		resp, _, err := call(t, nw.client(t, transport.ProofHTTPSig, true), nw.srv.URL+"/api/echo", "x")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 501 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
}

// TestACTOverHTTP (TR-2, TR-9, TR-10): a call under an ACT mandate is
// checked against its capabilities (ACT-V3) and answered with the ACT
// record of the work, signed by the mandate's sub and verified by the
// client; the sink gets the mandate, then the record.
func TestACTOverHTTP(t *testing.T) {
	w := newWorld(t, func(c *transport.ServerConfig) { c.Action = func(*http.Request) string { return "echo" } })
	mandate := func(action string) string {
		tok, err := act.NewMandate(clientKey, &act.Mandate{Issuer: clientID, Subject: serverID, Audience: []string{serverID},
			Task: act.Task{Purpose: "echo things"}, Capabilities: []act.Capability{{Action: action}}}, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hc := w.client(t, transport.ProofWPT, false)
	m := mandate("echo")
	res := &transport.Result{}
	req, _ := http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{serverID}, Mandate: m, Done: res}),
		"POST", w.srv.URL+"/api/echo", strings.NewReader("hi"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	r := res.ResponseRecord
	if resp.StatusCode != 200 || r == nil || r.Record.ExecAct != "echo" || r.Record.Status != act.StatusCompleted || r.Record.Pred[0] != res.Claims.ID ||
		r.Record.OutputHash != agentctx.HashBytes(b) || resp.Header.Get("Execution-Context") != "" {
		t.Fatalf("TR-9: the ACT record: %d %+v", resp.StatusCode, r)
	}
	if len(w.sink.toks) != 2 || w.sink.toks[0] != m || w.sink.toks[1] != res.Record {
		t.Fatalf("TR-9: the sink got %d tokens, want the mandate then the record", len(w.sink.toks))
	}
	// An action outside the mandate's capabilities is refused (ACT-V3).
	req, _ = http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{serverID}, Mandate: mandate("other"), Done: &transport.Result{}}),
		"POST", w.srv.URL+"/api/echo", strings.NewReader("hi"))
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if p := problem(t, resp); resp.StatusCode != 403 || p.Code != agentctx.CodeCapabilityViolation {
		t.Fatalf("ACT-V3: an action outside the mandate: %d %+v", resp.StatusCode, p)
	}
}

// TestApproval (ACT-M10, ACT-V3 over HTTP): an action the mandate's
// oversight lists in approval_required runs only with the approval that
// ServerConfig.Approve returns for that mandate and action, and from the
// approver the mandate names; no Approve, no approval, another approver:
// approval_required; Approve failing: a 500 that does not repeat its error.
func TestApproval(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	var answer func(m *act.Mandate, action string) (*act.Approval, error)
	w := newWorld(t, func(c *transport.ServerConfig) {
		c.Action = func(*http.Request) string { return "echo" }
		c.Log = slog.New(slog.DiscardHandler)
		c.Approve = func(_ *http.Request, m *act.Mandate, action string) (*act.Approval, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, action)
			return answer(m, action)
		}
	})
	mandate := func(o *act.Oversight) string {
		tok, err := act.NewMandate(clientKey, &act.Mandate{Issuer: clientID, Subject: serverID, Audience: []string{serverID},
			Task: act.Task{Purpose: "echo"}, Capabilities: []act.Capability{{Action: "echo"}}, Oversight: o}, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hc := w.client(t, transport.ProofWPT, false)
	do := func(m string) (int, agentctx.Code, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{serverID}, Mandate: m, Done: &transport.Result{}}),
			"POST", w.srv.URL+"/api/echo", strings.NewReader("hi"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			resp.Body.Close()
			return 200, "", ""
		}
		p := problem(t, resp)
		return resp.StatusCode, p.Code, p.Detail
	}
	needs := &act.Oversight{ApprovalRequired: []string{"echo"}, Approver: "spiffe://example.com/human/alice"}
	answer = func(m *act.Mandate, action string) (*act.Approval, error) {
		return &act.Approval{MandateID: m.ID, Action: action, Approver: "spiffe://example.com/human/alice"}, nil
	}
	if st, code, detail := do(mandate(needs)); st != 200 {
		t.Fatalf("ACT-V3: an approved action: %d %s %s", st, code, detail)
	}
	answer = func(*act.Mandate, string) (*act.Approval, error) { return nil, nil }
	if st, code, _ := do(mandate(needs)); st != 403 || code != agentctx.CodeApprovalRequired {
		t.Fatalf("ACT-V3: no approval yet: %d %s", st, code)
	}
	answer = func(m *act.Mandate, action string) (*act.Approval, error) {
		return &act.Approval{MandateID: m.ID, Action: action, Approver: "spiffe://example.com/human/mallory"}, nil
	}
	if st, code, _ := do(mandate(needs)); st != 403 || code != agentctx.CodeApprovalRequired {
		t.Fatalf("ACT-V3: another approver: %d %s", st, code)
	}
	answer = func(*act.Mandate, string) (*act.Approval, error) {
		return nil, errors.New("approvals db password=hunter2 unreachable")
	}
	if st, code, detail := do(mandate(needs)); st != 500 || code != agentctx.CodeInternal || strings.Contains(detail, "hunter2") {
		t.Fatalf("Approve failing: %d %s %q", st, code, detail)
	}
	// A mandate without oversight never asks.
	mu.Lock()
	n := len(asked)
	mu.Unlock()
	if st, _, _ := do(mandate(nil)); st != 200 || len(asked) != n {
		t.Fatalf("a mandate without oversight: %d, asked %d times", st, len(asked)-n)
	}
	// Without Approve, an action that needs approval is refused.
	w2 := newWorld(t, func(c *transport.ServerConfig) { c.Action = func(*http.Request) string { return "echo" } })
	hc, w = w2.client(t, transport.ProofWPT, false), w2
	if st, code, _ := do(mandate(needs)); st != 403 || code != agentctx.CodeApprovalRequired {
		t.Fatalf("ACT-V3: no Approve: %d %s", st, code)
	}
}
