package proxy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/proxy"
	"github.com/agentctx/agentctx/transport"
)

// TestStreaming (BND-1, BND-4): a 100 MiB response passes through the proxy
// in constant memory, hashed as it passes, with the ECT of the work in the
// trailer; an event stream reaches the client event by event, as the
// upstream sends it.
func TestStreaming(t *testing.T) {
	const size = 100 << 20
	release := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/base/events" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-release: // the client has the first event: the proxy did not hold it
			case <-time.After(10 * time.Second):
			}
			io.WriteString(w, "data: second\n\n")
			return
		}
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = byte(i)
		}
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	base, _, ts := setupWith(t, up, func(c *proxy.Config) { c.Policy = transport.Off })
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := http.Post(base+"/big", "text/plain", strings.NewReader("give"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("BND-1: streamed %d bytes, %v", n, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("BND-4: passing 100 MiB allocated %d MiB: the body was held, not streamed", grew>>20)
	}
	t.Logf("BND-4: 100 MiB through the proxy allocated %.1f MiB in this process (client, proxy and upstream)", float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	tok := resp.Trailer.Get("Execution-Context")
	v, _ := ect.NewVerifier(ect.Config{Trust: ts, Audience: proxyID, Clock: func() time.Time { return now }})
	r, err := v.Verify(context.Background(), tok)
	if err != nil || r.Claims.OutputHash != base64.RawURLEncoding.EncodeToString(h.Sum(nil)) {
		t.Fatalf("BND-1: the trailer's ECT: %v (out_hash %v)", err, r)
	}
	// An event stream: the first event arrives before the upstream sends the second.
	resp, err = http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() { l, _ := rd.ReadString('\n'); got <- l }()
	select {
	case l := <-got:
		if l != "data: first\n" {
			t.Fatalf("BND-1: first event %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BND-1: the event stream was held by the proxy")
	}
	close(release)
	rest, _ := io.ReadAll(rd)
	if !strings.Contains(string(rest), "data: second") || resp.Trailer.Get("Execution-Context") == "" {
		t.Fatalf("BND-1: the rest of the stream %q, trailer %q", rest, resp.Trailer.Get("Execution-Context"))
	}
}

// TestStreamedToClient (BND-1, TR-10): a response above the streaming
// threshold reaches a TR-10 client with the ECT in the trailer, which the
// client verifies against the whole body.
func TestStreamedToClient(t *testing.T) {
	body := strings.Repeat("x", 3<<20)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	base, hc, _ := setupWith(t, up, func(*proxy.Config) {})
	resp, res, err := do(t, hc, base+"/big", "give")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != body || res.ResponseECT == nil || resp.Header.Get("Execution-Context") != "" {
		t.Fatalf("BND-1: a streamed response to the client: %d bytes, ECT %v", len(b), res.ResponseECT)
	}
}
