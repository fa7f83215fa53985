package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
)

// TestApprovalFile (ACT-M10, ACT-V3 through the sidecar): an action a
// mandate's oversight requires runs once the approvals file holds its
// approval from the approver the mandate names, read on each request; a
// file others may write, or one that does not parse, is refused.
func TestApprovalFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvals.json")
	write := func(s string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(`[]`, 0o600)
	base, hc, _ := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("paid")) }), func(c *proxy.Config) {
		c.Routes = []proxy.Route{{Method: "POST", Path: "/pay", Action: "pay"}}
		c.Approve = (&proxy.ApprovalFile{Path: path}).Approve
	})
	const alice = "spiffe://example.com/human/alice"
	m := &act.Mandate{Issuer: clientID, Subject: proxyID, Audience: []string{proxyID}, Task: act.Task{Purpose: "pay the invoice"},
		Capabilities: []act.Capability{{Action: "pay"}}, Oversight: &act.Oversight{ApprovalRequired: []string{"pay"}, Approver: alice}}
	tok, err := act.NewMandate(clientKey, m, now)
	if err != nil {
		t.Fatal(err)
	}
	call := func() (int, agentctx.Code) {
		t.Helper()
		req, _ := http.NewRequestWithContext(transport.WithCall(context.Background(), &transport.Call{ExecAct: "ask", Audience: []string{proxyID}, Mandate: tok, Done: &transport.Result{}}),
			"POST", base+"/pay", strings.NewReader("invoice 7"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == 200 {
			return 200, ""
		}
		var p transport.Problem
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatalf("%d: not a problem: %v", resp.StatusCode, err)
		}
		return resp.StatusCode, p.Code
	}
	if st, code := call(); st != 403 || code != agentctx.CodeApprovalRequired {
		t.Fatalf("ACT-V3: no approval yet: %d %s", st, code)
	}
	// Bob's approval is not the one the mandate asks for.
	write(`[{"mandate": "`+m.ID+`", "action": "pay", "approver": "spiffe://example.com/human/bob"}]`, 0o600)
	if st, code := call(); st != 403 || code != agentctx.CodeApprovalRequired {
		t.Fatalf("ACT-V3: another approver: %d %s", st, code)
	}
	write(`[{"mandate": "`+m.ID+`", "action": "pay", "approver": "spiffe://example.com/human/bob"},
	        {"mandate": "`+strings.ToUpper(m.ID)+`", "action": "pay", "approver": "`+alice+`"}]`, 0o644)
	if st, code := call(); st != 200 {
		t.Fatalf("ACT-V3: approved by alice: %d %s", st, code)
	}
	// A file others may write approves nothing; nor does one that does not
	// parse: the request fails (500), it is not run.
	write(`[{"mandate": "`+m.ID+`", "action": "pay", "approver": "`+alice+`"}]`, 0o666)
	if st, _ := call(); st != 500 {
		t.Fatalf("a world-writable approvals file: %d", st)
	}
	if err := proxy.CheckApprovalFile(path); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
		t.Fatalf("CheckApprovalFile: %v", err)
	}
	for _, bad := range []string{`{"mandate": "x"}`, `[{"mandate": "x", "action": "pay"}]`, `[{"mandate": "x", "action": "pay", "approver": "a", "until": 1}]`, `[] []`} {
		write(bad, 0o600)
		if st, _ := call(); st != 500 {
			t.Fatalf("approvals file %s: %d", bad, st)
		}
		if proxy.CheckApprovalFile(path) == nil {
			t.Fatalf("CheckApprovalFile accepted %s", bad)
		}
	}
	os.Remove(path)
	if st, _ := call(); st != 500 {
		t.Fatalf("a missing approvals file: %d", st)
	}
}

// FuzzApprovalFile: any bytes in the approvals file are accepted or
// refused, never a panic, and the start-time check and the per-request
// read agree; an accepted file approves only what it names.
func FuzzApprovalFile(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"mandate": "m-1", "action": "pay", "approver": "spiffe://example.com/human/alice"}]`))
	f.Add([]byte(`[{"mandate": "M-1", "action": "pay", "approver": "a"}, {"mandate": "m-2", "action": "x", "approver": "b"}]`))
	f.Add([]byte(`[{"mandate": "m-1", "action": "pay"}]`))
	f.Add([]byte(`{"mandate": "m-1"}`))
	f.Add([]byte(`[] []`))
	f.Add([]byte("\xff\x00["))
	path := filepath.Join(f.TempDir(), "approvals.json")
	m := &act.Mandate{ID: "m-1", Oversight: &act.Oversight{ApprovalRequired: []string{"pay"}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		checked := proxy.CheckApprovalFile(path)
		a, err := (&proxy.ApprovalFile{Path: path}).Approve(nil, m, "pay")
		if (checked == nil) != (err == nil) {
			t.Fatalf("CheckApprovalFile says %v, Approve says %v", checked, err)
		}
		if a != nil && (!strings.EqualFold(a.MandateID, "m-1") || a.Action != "pay" || a.Approver == "") {
			t.Fatalf("an approval of something else: %+v", a)
		}
	})
}
