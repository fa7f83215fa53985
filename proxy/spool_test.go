package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/proxy"
)

// fakeLedger is a Sender that is down for its first failures calls, refuses
// tokens starting with "bad", and counts what it took.
type fakeLedger struct {
	mu       sync.Mutex
	failures int
	calls    int
	got      map[string]int
}

func (f *fakeLedger) Send(_ context.Context, toks []string) ([]proxy.SendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return nil, errors.New("connection refused")
	}
	out := make([]proxy.SendResult, len(toks))
	for i, t := range toks {
		if len(t) >= 3 && t[:3] == "bad" {
			out[i] = proxy.SendResult{Code: agentctx.CodeExpired, Message: "expired"}
			continue
		}
		f.got[t]++
		out[i] = proxy.SendResult{OK: true, Receipt: json.RawMessage(`{"index":0}`)}
	}
	return out, nil
}

func waitStatus(t *testing.T, sp *proxy.Spool, ok func(*proxy.SpoolStatus) bool) *proxy.SpoolStatus {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		st, err := sp.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
	}
	st, _ := sp.Status(context.Background())
	t.Fatalf("spool status %+v", st)
	return nil
}

// TestSpool (BND-3): tokens are spooled at once and sent in batches; while
// the ledger is down they wait, with backoff; a refused token is kept with
// its code; a spool reopened (a restarted proxy) sends what it held.
func TestSpool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	led := &fakeLedger{failures: 3, got: map[string]int{}}
	open := func() *proxy.Spool {
		sp, err := proxy.OpenSpool(proxy.SpoolConfig{Path: path, Sender: led, Clock: time.Now, Batch: 7, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	sp := open()
	var want []string
	for i := 0; i < 30; i++ {
		tok := fmt.Sprintf("tok-%02d", i)
		if i%10 == 9 {
			tok = fmt.Sprintf("bad-%02d", i)
		}
		if err := sp.Append(context.Background(), []string{tok}); err != nil {
			t.Fatal(err)
		}
		want = append(want, tok)
	}
	st := waitStatus(t, sp, func(s *proxy.SpoolStatus) bool { return s.Pending == 0 })
	if st.Sent != 27 || st.Refused != 3 || st.ByCode[string(agentctx.CodeExpired)] != 3 {
		t.Fatalf("BND-3: after the ledger came back: %+v", st)
	}
	led.mu.Lock()
	for _, tok := range want {
		if n := led.got[tok]; (tok[:3] == "tok") != (n == 1) || n > 1 {
			t.Errorf("BND-3: %s reached the ledger %d times", tok, n)
		}
	}
	if led.calls < 3+5 {
		t.Errorf("BND-3: %d deliveries for 30 tokens in batches of 7 after 3 failures", led.calls)
	}
	led.failures = 1 << 30 // down for good
	led.mu.Unlock()
	sp.Append(context.Background(), []string{"tok-late-1", "tok-late-2"})
	waitStatus(t, sp, func(s *proxy.SpoolStatus) bool { return s.Pending == 2 && s.OldestPendingMillis > 0 })
	sp.Close()
	// Restarted with the ledger back: the pending tokens are sent.
	led.mu.Lock()
	led.failures = 0
	led.mu.Unlock()
	sp = open()
	defer sp.Close()
	waitStatus(t, sp, func(s *proxy.SpoolStatus) bool { return s.Pending == 0 && s.Sent == 29 })
	if st, err := proxy.ReadSpoolStatus(context.Background(), path); err != nil || st.Sent != 29 || st.Refused != 3 {
		t.Fatalf("ReadSpoolStatus: %+v %v", st, err)
	}
}

// TestSpoolPrune (BND-3): a delivered token is deleted once KeepSent has
// passed since its receipt came back; pending and refused tokens stay.
func TestSpoolPrune(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1767225600, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	led := &fakeLedger{got: map[string]int{}}
	sp, err := proxy.OpenSpool(proxy.SpoolConfig{Path: filepath.Join(t.TempDir(), "spool.db"), Sender: led, Clock: clock,
		KeepSent: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	sp.Append(context.Background(), []string{"tok-1", "tok-2", "bad-3"})
	waitStatus(t, sp, func(s *proxy.SpoolStatus) bool { return s.Pending == 0 && s.Sent == 2 && s.Refused == 1 })
	// Within the hour the delivered tokens stay, whatever the spool does.
	mu.Lock()
	now = now.Add(59 * time.Minute)
	mu.Unlock()
	sp.Append(context.Background(), []string{"tok-4"})
	waitStatus(t, sp, func(s *proxy.SpoolStatus) bool { return s.Sent == 3 })
	// Past it, the first two go; tok-4 (sent 59 minutes later) and the
	// refused token stay.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	led.mu.Lock()
	led.failures = 1 << 30 // the ledger down: a pending token must stay too
	led.mu.Unlock()
	sp.Append(context.Background(), []string{"tok-5"})
	led.mu.Lock()
	led.failures = 0
	led.mu.Unlock()
	st := waitStatus(t, sp, func(s *proxy.SpoolStatus) bool { return s.Sent == 2 && s.Pending == 0 })
	if st.Refused != 1 || st.ByCode[string(agentctx.CodeExpired)] != 1 {
		t.Fatalf("BND-3: a refused token was pruned: %+v", st)
	}
	// tok-4 and tok-5 are what is left of the delivered ones.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	sp.Append(context.Background(), []string{"bad-6"})
	waitStatus(t, sp, func(s *proxy.SpoolStatus) bool { return s.Sent == 0 && s.Refused == 2 && s.Pending == 0 })
}
