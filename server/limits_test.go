package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/server"
)

// isProblem reports whether resp is an RFC 9457 problem with a code.
func isProblem(resp *http.Response, b []byte) bool {
	var p struct {
		Code   string `json:"code"`
		Status int    `json:"status"`
	}
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") &&
		json.Unmarshal(b, &p) == nil && p.Code != "" && p.Status == resp.StatusCode
}

func tokensBody(toks ...string) string {
	b, _ := json.Marshal(map[string]any{"tokens": toks})
	return string(b)
}

// TestCaps tests each cap of SVC-10 at its edge: the largest body, token
// count and token size allowed are appended; one more is refused with 413
// and a problem; beyond the in-flight cap an append gets 503 with
// Retry-After.
func TestCaps(t *testing.T) {
	probe := newFixture(t)
	tok, _ := probe.ect(t, "edge")
	f := newFixtureWith(t, func(c *server.Config) {
		c.MaxBody = int64(len(tok) + 10)
		c.MaxTokens = 3
		c.MaxToken = len(tok)
	})
	// Body: exactly MaxBody (the token and trailing white space) is taken,
	// one byte more is not.
	pad := strings.Repeat(" ", 10)
	if resp, b := post(t, f.srv.URL+"/v1/entries", "application/jwt", tok+pad); resp.StatusCode != 200 {
		t.Fatalf("SVC-10: a body of exactly the cap: %d %s", resp.StatusCode, b)
	}
	if resp, b := post(t, f.srv.URL+"/v1/entries", "application/jwt", tok+pad+" "); resp.StatusCode != 413 || !isProblem(resp, b) || code(t, b) != agentctx.CodeTooLarge {
		t.Fatalf("SVC-10: a body one byte over the cap: %d %s", resp.StatusCode, b)
	}
	// Token size: a token of exactly MaxToken is appended; a longer one is
	// too_large.
	long, _ := f.ect(t, "edge-but-longer")
	if resp, b := post(t, f.srv.URL+"/v1/entries", "application/jwt", long); resp.StatusCode != 413 || code(t, b) != agentctx.CodeTooLarge {
		t.Fatalf("SVC-10: a token over the token cap: %d %s", resp.StatusCode, b)
	}
	// Token count: 3 (garbage, each refused on its own) is answered per
	// token; 4 is refused as a whole.
	g := newFixtureWith(t, func(c *server.Config) { c.MaxTokens = 3 })
	resp, b := post(t, g.srv.URL+"/v1/entries", "application/json", tokensBody("x", "y", "z"))
	var rs struct{ Results []struct{ OK bool } }
	if json.Unmarshal(b, &rs); resp.StatusCode != 200 || len(rs.Results) != 3 {
		t.Fatalf("SVC-10: exactly the token count cap: %d %s", resp.StatusCode, b)
	}
	if resp, b := post(t, g.srv.URL+"/v1/entries", "application/json", tokensBody("x", "y", "z", "w")); resp.StatusCode != 413 || !isProblem(resp, b) {
		t.Fatalf("SVC-10: one token over the count cap: %d %s", resp.StatusCode, b)
	}
	// The defaults: 1000 tokens are taken, 1001 are not.
	d := newFixture(t)
	many := make([]string, 1001)
	for i := range many {
		many[i] = "x"
	}
	if resp, b := post(t, d.srv.URL+"/v1/entries", "application/json", tokensBody(many[:1000]...)); resp.StatusCode != 200 {
		t.Fatalf("SVC-10: 1000 tokens: %d %.200s", resp.StatusCode, b)
	}
	if resp, b := post(t, d.srv.URL+"/v1/entries", "application/json", tokensBody(many...)); resp.StatusCode != 413 || !isProblem(resp, b) {
		t.Fatalf("SVC-10: 1001 tokens: %d %s", resp.StatusCode, b)
	}
	big := strings.Repeat("a", server.DefaultMaxToken+1)
	if resp, b := post(t, d.srv.URL+"/v1/entries", "application/jwt", big); resp.StatusCode != 413 || code(t, b) != agentctx.CodeTooLarge {
		t.Fatalf("SVC-10: a token over 8 KiB: %d %s", resp.StatusCode, b)
	}
	if resp, b := post(t, d.srv.URL+"/v1/entries", "application/json", tokensBody(strings.Repeat("a", server.DefaultMaxBody))); resp.StatusCode != 413 || !isProblem(resp, b) {
		t.Fatalf("SVC-10: a body over 1 MiB: %d %.200s", resp.StatusCode, b)
	}
}

// gatedStore holds every commit until the test opens the gate.
type gatedStore struct {
	ledger.Store
	gate chan struct{}
}

func (g *gatedStore) Commit(ctx context.Context, e []ledger.Entry, n []ledger.TreeNode, cp, cose []byte) error {
	<-g.gate
	return g.Store.Commit(ctx, e, n, cp, cose)
}

// TestInFlightCap: with 3 tokens in a commit that has not finished and a
// cap of 4, an append of 2 more gets 503 with Retry-After (SVC-10); one
// more, exactly the cap, is taken.
func TestInFlightCap(t *testing.T) {
	gate := make(chan struct{})
	f := newFixtureStore(t, func(s ledger.Store) ledger.Store { return &gatedStore{s, gate} },
		func(c *server.Config) { c.MaxInFlight = 4 })
	var toks []string
	for i := 0; i < 4; i++ {
		tok, _ := f.ect(t, fmt.Sprintf("t%d", i))
		toks = append(toks, tok)
	}
	status := make(chan int, 2)
	send := func(body, ct string) {
		resp, err := http.Post(f.srv.URL+"/v1/entries", ct, strings.NewReader(body))
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}
	waitInFlight := func(n int) {
		for {
			_, m := get(t, f.srv.URL+"/metrics")
			if bytes.Contains(m, []byte(fmt.Sprintf("\nagentctx_appends_in_flight %d\n", n))) {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	go send(tokensBody(toks[:3]...), "application/json")
	waitInFlight(3)
	resp, b := post(t, f.srv.URL+"/v1/entries", "application/json", tokensBody("x", "y"))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !isProblem(resp, b) {
		t.Fatalf("SVC-10: over the in-flight cap: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	go send(toks[3], "application/jwt") // exactly the cap
	waitInFlight(4)
	close(gate)
	for i := 0; i < 2; i++ {
		if s := <-status; s != 200 {
			t.Fatalf("SVC-10: an append within the cap: %d", s)
		}
	}
}

// TestSlowClients: a client that sends its headers and then trickles (or
// never finishes) its body, and one that appends without reading its
// answers, do not hold the sequencer: another client's append commits
// meanwhile (SVC-10).
func TestSlowClients(t *testing.T) {
	f := newFixture(t)
	addr := strings.TrimPrefix(f.srv.URL, "http://")
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/jwt\r\nContent-Length: 4000\r\n\r\neyJ")
	// Pipelined appends whose answers are never read.
	unread, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer unread.Close()
	for i := 0; i < 50; i++ {
		tok, _ := f.ect(t, fmt.Sprintf("unread-%d", i))
		fmt.Fprintf(unread, "POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/jwt\r\nContent-Length: %d\r\n\r\n%s", len(tok), tok)
	}
	tok, _ := f.ect(t, "prompt")
	if resp, b := post(t, f.srv.URL+"/v1/entries", "application/jwt", tok); resp.StatusCode != 200 {
		t.Fatalf("SVC-10: an append beside slow clients: %d %s", resp.StatusCode, b)
	}
	// The slow body, once finished, is judged like any other.
	fmt.Fprint(slow, strings.Repeat("A", 3997))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil || resp.StatusCode != 422 {
		t.Fatalf("the slow client's garbage token: %v %v", err, resp)
	}
}

// TestBadInput: malformed requests each get their SVC-9 status and a
// problem, never a 500.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.ect(t, "one")
	post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
	for _, c := range []struct {
		method, path, ct, body string
		status                 int
	}{
		{"POST", "/v1/entries", "application/json", `{"tokens": [`, 400},
		{"POST", "/v1/entries", "application/json", `{"tokens": "x"}`, 400},
		{"POST", "/v1/entries", "application/json", `{"tokens": ["x"], "more": 1}`, 400},
		{"POST", "/v1/entries", "application/json", `{"tokens": ["x"]} {}`, 400},
		{"POST", "/v1/entries", "application/json", `{"tokens": []}`, 400},
		{"POST", "/v1/entries", "application/xml", `<x/>`, 415},
		{"POST", "/v1/entries", "", tok, 415},
		{"POST", "/v1/entries", "application/jwt", ``, 400},
		{"POST", "/v1/entries", "application/jwt", `not.a.token`, 422},
		{"GET", "/v1/entries/-1", "", "", 400},
		{"GET", "/v1/entries/abc", "", "", 400},
		{"GET", "/v1/entries/99999999999999999999", "", "", 400},
		{"GET", "/v1/entries/5", "", "", 404},
		{"GET", "/v1/tasks/nope", "", "", 404},
		{"GET", "/v1/workflows?limit=-1", "", "", 400},
		{"GET", "/v1/workflows?limit=1000000", "", "", 400},
		{"GET", "/v1/workflows?cursor=%%%", "", "", 400},
		{"GET", "/v1/workflows?cursor=bm90IGEgY3Vyc29y", "", "", 400},
		{"GET", "/v1/proofs/inclusion?index=-1", "", "", 400},
		{"GET", "/v1/proofs/inclusion?index=7", "", "", 404},
		{"GET", "/v1/proofs/inclusion?index=0&size=9", "", "", 404},
		{"GET", "/v1/proofs/inclusion", "", "", 400},
		{"GET", "/v1/proofs/consistency?from=2&to=1", "", "", 400},
		{"GET", "/v1/proofs/consistency?from=0&to=50", "", "", 404},
		{"GET", "/v1/proofs/consistency?from=x&to=1", "", "", 400},
		{"GET", "/tile/0/x00", "", "", 404},
		{"GET", "/tile/0/001", "", "", 404},
		{"GET", "/tile/0/000.p/0", "", "", 404},
		{"GET", "/tile/0/000.p/300", "", "", 404},
		{"GET", "/tile/99/000.p/1", "", "", 404},
		{"GET", "/nowhere", "", "", 404},
		{"DELETE", "/v1/entries/0", "", "", 405},
	} {
		req, _ := http.NewRequest(c.method, f.srv.URL+c.path, strings.NewReader(c.body))
		if c.ct != "" {
			req.Header.Set("Content-Type", c.ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("SVC-9: %s %s %q: %d, want %d: %s", c.method, c.path, c.body, resp.StatusCode, c.status, b.Bytes())
			continue
		}
		if c.status == 405 && resp.Header.Get("Allow") != "GET" {
			t.Errorf("SVC-9: 405 without Allow: GET: %q", resp.Header.Get("Allow"))
		}
		if !isProblem(resp, b.Bytes()) {
			t.Errorf("SVC-9: %s %s: not a problem: %s %s", c.method, c.path, resp.Header.Get("Content-Type"), b.Bytes())
		}
	}
}

// TestRequestLog: one structured line per request with route, status,
// duration and, for an append, the jti and the token's hash; never the
// token itself nor a read credential.
func TestRequestLog(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	f := newFixtureWith(t, func(c *server.Config) {
		c.Log = slog.New(slog.NewJSONHandler(w, nil))
		c.ReadTokens = []string{"reader-secret-1"}
	})
	tok, jti := f.ect(t, "logged")
	post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
	get(t, f.srv.URL+"/v1/entries/0", "Authorization", "Bearer reader-secret-1")
	get(t, f.srv.URL+"/v1/entries/0", "Authorization", "Bearer wrong-secret-2")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, secret := range []string{tok, strings.Split(tok, ".")[2], "reader-secret-1", "wrong-secret-2"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds a token or credential: %s", out)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q", l)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("want one line per request, got %d: %s", len(lines), out)
	}
	a := lines[0]
	if a["route"] != "POST /v1/entries" || a["status"] != float64(200) || a["duration_ms"] == nil {
		t.Fatalf("append line: %v", a)
	}
	if js, _ := a["jti"].([]any); len(js) != 1 || js[0] != jti {
		t.Fatalf("append line names jti %v, want %s", a["jti"], jti)
	}
	if hs, _ := a["token_sha256"].([]any); len(hs) != 1 || !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(fmt.Sprint(hs[0])) {
		t.Fatalf("append line token hash: %v", a["token_sha256"])
	}
	if lines[2]["status"] != float64(401) {
		t.Fatalf("a read with a wrong credential: %v", lines[2])
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestInclusionByLeafHash (SVC-5): ?leaf_hash= (as the receipt holds it, in
// base64, also with an unescaped '+', base64url or hex) gives the same
// proof as ?index=; an unknown hash is 404, a malformed one 400, both
// parameters 400.
func TestInclusionByLeafHash(t *testing.T) {
	f := newFixture(t)
	var rs []ledger.Receipt
	for i := 0; i < 6; i++ {
		tok, _ := f.ect(t, fmt.Sprint("leaf", i))
		_, b := post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
		var r ledger.Receipt
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	for _, r := range rs {
		_, want := get(t, fmt.Sprintf("%s/v1/proofs/inclusion?index=%d&size=4", f.srv.URL, r.Index))
		if r.Index >= 4 {
			continue
		}
		std := base64.StdEncoding.EncodeToString(r.LeafHash)
		for _, form := range []string{url.QueryEscape(std), strings.ReplaceAll(std, "+", "%2B"), base64.RawURLEncoding.EncodeToString(r.LeafHash), hex.EncodeToString(r.LeafHash), strings.ReplaceAll(std, "/", "%2F")} {
			resp, got := get(t, f.srv.URL+"/v1/proofs/inclusion?size=4&leaf_hash="+form)
			if resp.StatusCode != 200 || !bytes.Equal(got, want) {
				t.Fatalf("SVC-5: leaf_hash %s of entry %d: %d %s, want %s", form, r.Index, resp.StatusCode, got, want)
			}
		}
	}
	for q, st := range map[string]int{
		"leaf_hash=" + hex.EncodeToString(make([]byte, 32)): 404,
		"leaf_hash=abc": 400,
		"leaf_hash=" + hex.EncodeToString(rs[0].LeafHash) + "&index=0": 400,
	} {
		if resp, b := get(t, f.srv.URL+"/v1/proofs/inclusion?"+q); resp.StatusCode != st || !isProblem(resp, b) {
			t.Errorf("SVC-5: inclusion?%s: %d %s, want %d", q, resp.StatusCode, b, st)
		}
	}
}

// TestMetrics (SVC-7): appends by kind and result code, the batch size
// histogram, the tree size and requests by route and status.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.ect(t, "counted")
	post(t, f.srv.URL+"/v1/entries", "application/json", tokensBody(tok, "not-a-token"))
	_, m := get(t, f.srv.URL+"/metrics")
	for _, want := range []string{
		`agentctx_appends_total{kind="ect",code="ok"} 1`,
		`agentctx_appends_total{kind="unknown",code="malformed"} 1`,
		`agentctx_batch_tokens_bucket{le="2"} 1`,
		`agentctx_batch_tokens_bucket{le="1"} 0`,
		`agentctx_batch_tokens_sum 2`,
		`agentctx_tree_size 1`,
		`agentctx_append_seconds_count 1`,
		`agentctx_http_requests_total{route="POST /v1/entries",status="200"} 1`,
	} {
		if !bytes.Contains(m, []byte("\n"+want+"\n")) {
			t.Errorf("SVC-7: /metrics lacks %s:\n%s", want, m)
		}
	}
}

// TestWorkflowPages (SVC-5): paging through the workflows lists each one
// once, newest activity first, also when a workflow's entries are spread
// across pages; q narrows the list to workflows with a matching wid, jti,
// issuer or action.
func TestWorkflowPages(t *testing.T) {
	f := newFixture(t)
	wids := []string{"0a000000-0000-4000-8000-000000000001", "0b000000-0000-4000-8000-000000000002", "0c000000-0000-4000-8000-000000000003"}
	var jtis []string
	// Entries, oldest first: A, B, A, C, B, A (A newest, then B, then C).
	for i, w := range []int{0, 1, 0, 2, 1, 0} {
		c := &ect.Claims{Issuer: ledgertest.IssA, Audience: []string{ledgertest.LedgerID}, WorkflowID: wids[w], ExecAct: fmt.Sprintf("act.%d", i)}
		tok, err := ect.Create(ledgertest.KeyA, c, f.now)
		if err != nil {
			t.Fatal(err)
		}
		if resp, b := post(t, f.srv.URL+"/v1/entries", "application/jwt", tok); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		jtis = append(jtis, c.ID)
	}
	list := func(q string) []string {
		var got []string
		cursor := ""
		for page := 0; page < 10; page++ {
			u := f.srv.URL + "/v1/workflows?limit=1&q=" + url.QueryEscape(q)
			if cursor != "" {
				u += "&cursor=" + cursor
			}
			_, b := get(t, u)
			var p struct {
				Workflows []struct{ WID string }
				Next      string `json:"next_cursor"`
			}
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatalf("%s", b)
			}
			for _, w := range p.Workflows {
				got = append(got, w.WID)
			}
			if cursor = p.Next; cursor == "" {
				break
			}
		}
		return got
	}
	if got := list(""); strings.Join(got, " ") != strings.Join([]string{wids[0], wids[1], wids[2]}, " ") {
		t.Fatalf("SVC-5: pages of one: %v, want A B C once each", got)
	}
	if got := list("ACT.3"); len(got) != 1 || got[0] != wids[2] {
		t.Fatalf("SVC-5: q=act.3 (an action): %v", got)
	}
	if got := list(jtis[4]); len(got) != 1 || got[0] != wids[1] {
		t.Fatalf("SVC-5: q=<jti>: %v", got)
	}
	// B's newest entry (act.4) does not match act.1; its older one does,
	// and it is still listed once.
	if got := list("act.1"); len(got) != 1 || got[0] != wids[1] {
		t.Fatalf("SVC-5: q matching an older entry: %v", got)
	}
	if got := list("agent/a"); len(got) != 3 {
		t.Fatalf("SVC-5: q=issuer: %v", got)
	}
}
