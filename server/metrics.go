package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// metrics are the counters of SVC-7, written in the Prometheus text
// format.
type metrics struct {
	mu       sync.Mutex
	appends  map[string]int64 // kind and result code ("ok" or the refusal code)
	batches  []int64          // histogram counts of tokens per committed batch
	bsum     int64
	bcount   int64
	requests map[string]int64 // route and status
	witness  map[string]int64 // witness and result of cosigning rounds
	commits  []int64          // histogram counts of commit latency
	sum      float64
	count    int64
	inflight func() int64                          // tokens being appended now
	size     func(context.Context) (uint64, error) // the log's size
}

var batchBuckets = []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

var buckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

func newMetrics() *metrics {
	return &metrics{appends: map[string]int64{}, requests: map[string]int64{}, witness: map[string]int64{}, commits: make([]int64, len(buckets)), batches: make([]int64, len(batchBuckets))}
}

func (m *metrics) appended(kind string, r result) {
	code := "ok"
	if !r.OK {
		code = string(r.Code)
	}
	if kind == "" {
		kind = "unknown"
	}
	m.mu.Lock()
	m.appends[fmt.Sprintf("kind=%q,code=%q", kind, code)]++
	m.mu.Unlock()
}

// batch records the size of one committed batch.
func (m *metrics) batch(n int) {
	m.mu.Lock()
	for i, b := range batchBuckets {
		if n <= b {
			m.batches[i]++
		}
	}
	m.bsum += int64(n)
	m.bcount++
	m.mu.Unlock()
}

func (m *metrics) request(route string, status int) {
	m.mu.Lock()
	m.requests[fmt.Sprintf("route=%q,status=\"%d\"", route, status)]++
	m.mu.Unlock()
}

func (m *metrics) commit(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	for i, b := range buckets {
		if s <= b {
			m.commits[i]++
		}
	}
	m.sum += s
	m.count++
	m.mu.Unlock()
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) {
	size, sizeErr := m.size(r.Context()) // before the lock: a store read
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP agentctx_appends_total Tokens appended or refused, by kind and result code.")
	fmt.Fprintln(w, "# TYPE agentctx_appends_total counter")
	for _, k := range sortedKeys(m.appends) {
		fmt.Fprintf(w, "agentctx_appends_total{%s} %d\n", k, m.appends[k])
	}
	fmt.Fprintln(w, "# HELP agentctx_http_requests_total HTTP requests by route and status.")
	fmt.Fprintln(w, "# TYPE agentctx_http_requests_total counter")
	for _, k := range sortedKeys(m.requests) {
		fmt.Fprintf(w, "agentctx_http_requests_total{%s} %d\n", k, m.requests[k])
	}
	fmt.Fprintln(w, "# HELP agentctx_append_seconds Time an append request waited for its batch to commit.")
	fmt.Fprintln(w, "# TYPE agentctx_append_seconds histogram")
	for i, b := range buckets {
		fmt.Fprintf(w, "agentctx_append_seconds_bucket{le=\"%g\"} %d\n", b, m.commits[i])
	}
	fmt.Fprintf(w, "agentctx_append_seconds_bucket{le=\"+Inf\"} %d\nagentctx_append_seconds_sum %g\nagentctx_append_seconds_count %d\n", m.count, m.sum, m.count)
	fmt.Fprintln(w, "# HELP agentctx_batch_tokens Tokens per committed batch (group commit).")
	fmt.Fprintln(w, "# TYPE agentctx_batch_tokens histogram")
	for i, b := range batchBuckets {
		fmt.Fprintf(w, "agentctx_batch_tokens_bucket{le=\"%d\"} %d\n", b, m.batches[i])
	}
	fmt.Fprintf(w, "agentctx_batch_tokens_bucket{le=\"+Inf\"} %d\nagentctx_batch_tokens_sum %d\nagentctx_batch_tokens_count %d\n", m.bcount, m.bsum, m.bcount)
	if sizeErr == nil {
		fmt.Fprintln(w, "# HELP agentctx_tree_size Entries in the log.")
		fmt.Fprintln(w, "# TYPE agentctx_tree_size gauge")
		fmt.Fprintf(w, "agentctx_tree_size %d\n", size)
	}
	if len(m.witness) > 0 {
		fmt.Fprintln(w, "# HELP agentctx_witness_rounds_total Requests to witnesses to cosign a checkpoint, by witness and result.")
		fmt.Fprintln(w, "# TYPE agentctx_witness_rounds_total counter")
		for _, k := range sortedKeys(m.witness) {
			fmt.Fprintf(w, "agentctx_witness_rounds_total{%s} %d\n", k, m.witness[k])
		}
	}
	fmt.Fprintln(w, "# HELP agentctx_appends_in_flight Tokens being appended now (SVC-10 caps it).")
	fmt.Fprintln(w, "# TYPE agentctx_appends_in_flight gauge")
	fmt.Fprintf(w, "agentctx_appends_in_flight %d\n", m.inflight())
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
