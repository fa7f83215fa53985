package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/agentctx/agentctx/act"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/server"
)

// browser starts headless Chromium for the page tests (SVC-12). Without a
// Chromium the test skips, unless CI=true, where it fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	var bin string
	for _, name := range []string{"chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SVC-12: no Chromium installed under CI (.ci/run installs Debian's chromium)")
		}
		t.Skip("SVC-12: no Chromium installed (apt-get install chromium); the page tests need a real browser")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("SVC-12: starting %s: %v", bin, err)
	}
	return ctx
}

// artifacts is where the page tests write their screenshots:
// $AGENTCTX_ARTIFACTS, or a directory under the system's temporary one.
func artifacts(t *testing.T) string {
	dir := os.Getenv("AGENTCTX_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "agentctx-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shot writes a PNG of the viewport to the artifacts directory.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// ectIn makes an ECT of workflow wid with the given action, predecessors
// and policy decision ("" for none).
func ectIn(t *testing.T, f *fixture, wid, act, pol string, pred ...string) (string, string) {
	t.Helper()
	c := &ect.Claims{Issuer: ledgertest.IssA, Audience: []string{ledgertest.LedgerID}, WorkflowID: wid, ExecAct: act, Pred: pred}
	if pol != "" {
		c.Ext = []byte(`{"pol":"p1","pol_decision":"` + pol + `"}`)
	}
	tok, err := ect.Create(ledgertest.KeyA, c, f.now)
	if err != nil {
		t.Fatal(err)
	}
	return tok, c.ID
}

func appendAll(t *testing.T, f *fixture, toks []string) {
	t.Helper()
	for i := 0; i < len(toks); i += 500 {
		j := min(i+500, len(toks))
		resp, b := post(t, f.srv.URL+"/v1/entries", "application/json", tokensBody(toks[i:j]...))
		var rs struct{ Results []struct{ OK bool } }
		if err := json.Unmarshal(b, &rs); err != nil || len(rs.Results) != j-i {
			t.Fatalf("append %d..%d: %d %.300s", i, j, resp.StatusCode, b)
		}
		for k, r := range rs.Results {
			if !r.OK {
				t.Fatalf("append %d: %d %s", i+k, resp.StatusCode, b)
			}
		}
	}
}

// TestPage drives the page in headless Chromium (SVC-11, SVC-12): the list
// with its markers, a diamond-and-join workflow drawn with one element per
// task and per edge and the right statuses, a click showing the task's
// verified claims in #details, keyboard navigation, and a 1000-task
// workflow laid out (its layout time reported). Screenshots go to the
// artifacts directory.
func TestPage(t *testing.T) {
	ctx := browser(t)
	f := newFixtureFull(t, nil, func(c *ledger.Config) { c.Partial = true }, func(*server.Config) {})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const wid = "7c1b4a52-0d7e-4f0a-9a43-3f1c2b7d5e60"
	a, ja := ectIn(t, f, wid, "plan", "")
	b, jb := ectIn(t, f, wid, "fetch.a", "", ja)
	c, jc := ectIn(t, f, wid, "fetch.b", "", ja)
	d, jd := ectIn(t, f, wid, "merge", "approved", jb, jc)
	e, je := ectIn(t, f, wid, "publish", "rejected", jd)
	appendAll(t, f, []string{a, b, c, d, e})
	const big = "1d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	var toks, ids []string
	for i := 0; i < 1000; i++ {
		var pred []string
		if i > 0 {
			pred = append(pred, ids[(i-1)/2])
		}
		if i > 3 && i%7 == 0 {
			pred = append(pred, ids[i-3])
		}
		tok, id := ectIn(t, f, big, fmt.Sprintf("step.%d", i), "", pred...)
		toks, ids = append(toks, tok), append(ids, id)
	}
	appendAll(t, f, toks)
	// An ACT chain (a mandate and its record are one task), a failed
	// record after it, and an ECT whose predecessor is missing (partial).
	mandate := func(id string) (string, *act.Result) {
		tok, err := act.NewMandate(ledgertest.KeyA, &act.Mandate{Issuer: ledgertest.IssA, Subject: ledgertest.IssB, Audience: []string{ledgertest.IssB},
			ID: id, WorkflowID: ledgertest.Wid, Task: act.Task{Purpose: "page"}, Capabilities: []act.Capability{{Action: "read.data"}}}, f.now)
		must(err)
		r, err := act.ParseUnverified(tok)
		must(err)
		return tok, r
	}
	const j1, j2 = "4a1f0c6e-2b3d-4e5f-8a9b-0c1d2e3f4a5b", "5b2e1d7f-3c4e-4f60-9b0c-1d2e3f4a5b6c"
	m1, r1 := mandate(j1)
	m2, r2 := mandate(j2)
	rec1, err := act.NewRecord(ledgertest.KeyB, ledgertest.IssB, r1, act.RecordInput{ExecAct: "read.data", Status: act.StatusCompleted, ExecTS: f.now}, f.now)
	must(err)
	rec2, err := act.NewRecord(ledgertest.KeyB, ledgertest.IssB, r2, act.RecordInput{ExecAct: "read.data", Status: act.StatusFailed, Pred: []string{j1},
		Err: &act.ExecError{Code: "upstream_down", Message: "the source did not answer"}, ExecTS: f.now}, f.now)
	must(err)
	orphan, jo := ectIn(t, f, ledgertest.Wid, "summarize", "", "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")
	appendAll(t, f, []string{m1, rec1, m2, rec2, orphan})

	const evil = "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b"
	xss, jx := ectIn(t, f, evil, `<img src=x onerror="document.body.dataset.pwned=1">`, "")
	appendAll(t, f, []string{xss})

	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		must(err)
		return v
	}
	open := func(path string) {
		t.Helper()
		must(chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+path), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`))))
	}
	count := func(sel string) int {
		t.Helper()
		return int(eval(`document.querySelectorAll(` + strconv.Quote(sel) + `).length`).(float64))
	}

	open("/")
	markers, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-wid="`+wid+`"]`)))
	must(err)
	if rows := count("tr[data-wid]"); rows != 4 || !strings.Contains(markers, "rejected 1") {
		t.Fatalf("SVC-11: the list: %d rows, the workflow's row %q", rows, markers)
	}
	shot(t, ctx, "page-list.png")
	// Search by action: the list narrows to the workflow holding it.
	must(chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#q`), "publish"+kb.Enter)))
	waitFor(t, ctx, `location.search === '?q=publish' && document.body.dataset.ready === 'true'`)
	if rows, only := count("tr[data-wid]"), eval(`document.querySelector('tr[data-wid]') && document.querySelector('tr[data-wid]').dataset.wid`); rows != 1 || only != wid {
		t.Fatalf("SVC-11: a search for an action: %d rows, %v", rows, only)
	}

	open("/workflows/" + wid)
	if nodes, edges := count("[data-jti]"), count("[data-from][data-to]"); nodes != 5 || edges != 5 {
		t.Fatalf("SVC-11: the diamond and join: %d task elements, %d edge elements; want 5 and 5", nodes, edges)
	}
	statuses := eval(`Object.fromEntries([...document.querySelectorAll('[data-jti]')].map(n => [n.dataset.jti, n.dataset.status + '/' + n.dataset.kind]))`).(map[string]any)
	want := map[string]string{ja: "completed/ect", jb: "completed/ect", jc: "completed/ect", jd: "completed/ect", je: "rejected/ect"}
	for id, w := range want {
		if statuses[id] != w {
			t.Errorf("SVC-11: task %s drawn as %v, want %q", id, statuses[id], w)
		}
	}
	// Status is an icon as well as a colour (colour-vision deficiencies):
	// each task carries its status's icon, and the legend names them.
	icons := eval(`[...document.querySelectorAll('[data-jti]')].filter(n => n.querySelector('path.icon')).length`)
	legend := eval(`document.querySelector('.legend').textContent`).(string)
	if icons != 5.0 || !strings.Contains(legend, "rejected by policy") || !strings.Contains(legend, "hexagon") {
		t.Errorf("SVC-11: %v of 5 tasks carry a status icon; legend %q", icons, legend)
	}
	shot(t, ctx, "page-workflow.png")

	must(chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-jti="`+jd+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#details pre`))))
	waitFor(t, ctx, `!document.querySelector('#details pre.receipt').textContent.startsWith('…')`)
	details, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#details`)))
	must(err)
	for _, s := range []string{jd, "merge", ledgertest.IssA, `"pol_decision": "approved"`, "ledger index", "signer key", "EdDSA", "L3: signed", "Receipt", `"inclusion_proof"`} {
		if !strings.Contains(details, s) {
			t.Errorf("SVC-11: #details after a click lacks %q:\n%s", s, details)
		}
	}
	shot(t, ctx, "page-details.png")

	must(chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`[data-jti="`+ja+`"]`)), chromedp.KeyEvent(kb.ArrowRight)))
	if focused := eval(`document.activeElement.dataset.jti || ''`); focused != jb && focused != jc {
		t.Fatalf("SVC-11: ArrowRight from the root moved focus to %v, want a successor", focused)
	}

	open("/workflows/" + ledgertest.Wid)
	if nodes, edges := count("[data-jti]"), count("[data-from][data-to]"); nodes != 3 || edges != 1 {
		t.Fatalf("SVC-11: the ACT chain: %d task elements, %d edges; want 3 (a mandate and its record are one task) and 1", nodes, edges)
	}
	statuses = eval(`Object.fromEntries([...document.querySelectorAll('[data-jti]')].map(n => [n.dataset.jti, n.dataset.status + '/' + n.dataset.kind]))`).(map[string]any)
	for id, w := range map[string]string{j1: "completed/act-record", j2: "failed/act-record", jo: "partial/ect"} {
		if statuses[id] != w {
			t.Errorf("SVC-11: task %s drawn as %v, want %q", id, statuses[id], w)
		}
	}
	shot(t, ctx, "page-act.png")

	// An entry with its proof, and the ledger's latest checkpoint.
	open("/entries/3")
	entry := eval(`document.getElementById('main').textContent`).(string)
	_, cp := get(t, f.srv.URL+"/checkpoint")
	size := strings.Split(string(cp), "\n")[1]
	for _, want := range []string{"Entry 3", jd, "inclusion_proof", "size" + size} {
		if !strings.Contains(entry, want) {
			t.Errorf("SVC-11: /entries/3 lacks %q", want)
		}
	}
	shot(t, ctx, "page-entry.png")

	// Agent-controlled strings are text, never markup.
	open("/workflows/" + evil)
	must(chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-jti="`+jx+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#details pre`))))
	if imgs, pwned := count("main img"), eval(`document.body.dataset.pwned || ''`); imgs != 0 || pwned != "" {
		t.Fatalf("SVC-11: an action name was inserted as HTML: %d img elements, pwned %v", imgs, pwned)
	}
	if txt := eval(`document.getElementById('details').textContent`).(string); !strings.Contains(txt, `<img src=x onerror=`) {
		t.Fatalf("SVC-11: the action name is not shown as text: %s", txt)
	}

	open("/workflows/" + big)
	wantEdges := 999 + 142 // one edge into each task but the first, and a second into every seventh from 7 on
	if nodes, edges := count("[data-jti]"), count("[data-from][data-to]"); nodes != 1000 || edges != wantEdges {
		t.Fatalf("SVC-11: the 1000-task workflow: %d task elements, %d edges (want 1000, %d)", nodes, edges, wantEdges)
	}
	t.Logf("SVC-12: 1000 tasks laid out and drawn in %v ms in the browser", eval(`document.getElementById('graph').dataset.layoutMs`))
	// Fitted, 1000 tasks would be specks: the page opens on the roots at a
	// readable scale, and keyboard navigation keeps the focused task in view.
	root := `document.querySelector('[data-jti="` + ids[0] + `"]')`
	if view, h := eval(`document.getElementById('graph').dataset.view`), eval(root+`.getBoundingClientRect().height`).(float64); view != "part" || h < 24 {
		t.Errorf("SVC-11: the 1000-task graph opens %v with its root %.1f px tall; want part of it, readable (>= 24 px)", view, h)
	}
	must(chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`[data-jti="`+ids[0]+`"]`))))
	for i := 0; i < 9; i++ {
		must(chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowRight)))
	}
	for i := 0; i < 40; i++ {
		must(chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowDown)))
	}
	inView := `(() => { const a = document.activeElement.getBoundingClientRect(), g = document.getElementById('graph').getBoundingClientRect();
		return a.left >= g.left && a.right <= g.right && a.top >= g.top && a.bottom <= g.bottom; })()`
	if focused, in := eval(`document.activeElement.dataset.jti || ''`), eval(inView); focused == ids[0] || in != true {
		t.Errorf("SVC-11: after keyboard moves the focus is on %v, inside the view: %v", focused, in)
	}
	shot(t, ctx, "page-1000.png")

	// Readable at 200% zoom: the 1400x1000 window at 200% is a 700x500
	// viewport at device scale 2; nothing overflows sideways.
	must(chromedp.Do(ctx, chromedp.EmulateViewport(700, 500, chromedp.EmulateScale(2))))
	for _, path := range []string{"/", "/workflows/" + wid, "/entries/3"} {
		open(path)
		if over := eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`).(float64); over > 0 {
			t.Errorf("SVC-11: at 200%% zoom %s overflows sideways by %v px", path, over)
		}
		if path == "/workflows/"+wid {
			if w := eval(`document.getElementById('graph').getBoundingClientRect().width`).(float64); w < 300 {
				t.Errorf("SVC-11: at 200%% zoom the graph is %v px wide", w)
			}
			shot(t, ctx, "page-zoom200.png")
		}
	}
}

// TestPageSizeWarning (SVC-11): a workflow larger than the configured size
// gets a warning and is drawn only when asked.
func TestPageSizeWarning(t *testing.T) {
	ctx := browser(t)
	f := newFixtureFull(t, nil, func(*ledger.Config) {}, func(c *server.Config) { c.PageMaxNodes = 3 })
	const wid = "2b3c4d5e-6f70-4812-9a3b-4c5d6e7f8091"
	a, ja := ectIn(t, f, wid, "plan", "")
	b, jb := ectIn(t, f, wid, "fetch.a", "", ja)
	c, _ := ectIn(t, f, wid, "fetch.b", "", ja)
	d, _ := ectIn(t, f, wid, "merge", "", jb)
	appendAll(t, f, []string{a, b, c, d})
	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/workflows/"+wid), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`))); err != nil {
		t.Fatal(err)
	}
	warn, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('[role=alert]') || {}).textContent + ' / ' + document.querySelectorAll('[data-jti]').length`))
	if err != nil || !strings.Contains(warn, "4 tasks, more than the 3") || !strings.HasSuffix(warn, " / 0") {
		t.Fatalf("SVC-11: over the size the page shows %q (%v); want a warning and no graph", warn, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#draw-anyway`)), chromedp.WaitVisible(chromedp.CSS(`#graph`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `document.body.dataset.ready === 'true' && document.querySelectorAll('[data-jti]').length === 4`)
}

// TestPageHeaders (SVC-11): the page and its files are served from the
// binary with a Content-Security-Policy that forbids inline script and
// other origins; only the page's own files are served.
func TestPageHeaders(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/", "/workflows/x", "/entries/3", "/ledger", "/static/app.js", "/static/style.css"} {
		resp, b := get(t, f.srv.URL+p)
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 || len(b) == 0 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("SVC-11: GET %s: %d, CSP %q", p, resp.StatusCode, csp)
		}
	}
	if resp, _ := get(t, f.srv.URL+"/"); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("SVC-11: the page's type: %q", resp.Header.Get("Content-Type"))
	}
	if resp, _ := get(t, f.srv.URL+"/"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	for _, p := range []string{"/static/index.html", "/static/../server.go", "/static/nope.js"} {
		if resp, _ := get(t, f.srv.URL+p); resp.StatusCode != 404 {
			t.Errorf("SVC-11: GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	_, html := get(t, f.srv.URL+"/")
	if strings.Contains(string(html), "<script>") || strings.Contains(string(html), " style=") {
		t.Error("SVC-11: the page has inline script or style")
	}
}

// waitFor polls the page until js is true (a wait, not a timing assertion:
// the test's context bounds it).
func waitFor(t *testing.T, ctx context.Context, js string) {
	t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v (%v)", js, ctx.Err(), err)
		}
		if err == nil && ok {
			return
		}
		// An error here is a page between two documents: ask again.
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPageReadToken (SVC-8, SVC-11): with read tokens configured the page
// asks for one once, keeps it for the tab (sessionStorage, never the URL)
// and then shows the list.
func TestPageReadToken(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, "page-reader-secret")
	tok, _ := f.ect(t, "guarded")
	post(t, f.srv.URL+"/v1/entries", "application/jwt", tok)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "page-reader-secret"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `document.body.dataset.ready === 'true'`)
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelectorAll('tr[data-wid]').length`))
	if err != nil || rows != 1 {
		t.Fatalf("SVC-11: the list after the read token: %v rows, %v", rows, err)
	}
	where, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' ' + (sessionStorage.getItem('agentctx-read-token') ? 'kept' : 'lost')`))
	if err != nil || strings.Contains(where, "secret") || !strings.HasSuffix(where, " kept") {
		t.Fatalf("SVC-11: the read token: %q %v", where, err)
	}
}
