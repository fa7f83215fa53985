// Command serve measures the audit service (issue 11, SVC-13) over
// loopback, in one run on one machine:
//
//   - the CLI's `agentctx ledger append --batch` of N tokens (the baseline);
//   - `agentctx serve` with C concurrent clients each appending single
//     tokens (application/jwt) of another N tokens: the rate, its ratio to
//     the baseline (goal >= 0.70, which group commit makes possible), and
//     the p50 and p99 append latency;
//   - inclusion proof reads over HTTP from logs of the given sizes (filled
//     with synthetic entries: proofs read only tree nodes), to show they
//     stay O(log n).
//
// Run it from the repository root (it builds ./cmd/agentctx):
//
//	go run ./bench/serve -clients 64 -tokens 20000 -proof-sizes 10000,1000000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/bench/internal/load"
	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/ledger/sqlite"
	"github.com/agentctx/agentctx/server"
	"github.com/agentctx/agentctx/trust"
)

const (
	issuer   = "spiffe://example.com/agent/bench"
	ledgerID = "spiffe://example.com/ledger"
)

func main() {
	clients := flag.Int("clients", 64, "concurrent clients appending single tokens")
	n := flag.Int("tokens", 20000, "tokens per phase")
	proofSizes := flag.String("proof-sizes", "10000,1000000", "log sizes at which to time inclusion proof reads (comma-separated; empty: none)")
	proofs := flag.Int("proofs", 2000, "proof reads per size")
	flag.Parse()
	dir, err := os.MkdirTemp("", "agentctx-bench-serve")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "agentctx")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/agentctx").CombinedOutput(); err != nil {
		log.Fatalf("go build ./cmd/agentctx (run from the repository root): %v\n%s", err, out)
	}
	run := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("agentctx %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	key := testkeys.EdDSA("bench serve", "k1")
	pub, err := trust.PublicJWK(key.Public())
	if err != nil {
		log.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a.pub"), pub, 0o644)
	run("keys", "trust", "--id", issuer, "--out", "trust.json", "a.pub")
	run("ledger", "init", "--db", "batch.db", "--id", ledgerID, "--key-out", "batch.key")
	run("ledger", "init", "--db", "serve.db", "--id", ledgerID, "--key-out", "serve.key")

	batchToks, serveToks := tokens(key, *n), tokens(key, *n)
	os.WriteFile(filepath.Join(dir, "tokens.txt"), []byte(strings.Join(batchToks, "\n")+"\n"), 0o644)

	start := time.Now()
	run("ledger", "append", "--db", "batch.db", "--key", "batch.key", "--trust", "trust.json", "--batch", "tokens.txt")
	batchRate := float64(*n) / time.Since(start).Seconds()

	cmd := exec.Command(bin, "serve", "--db", "serve.db", "--key", "serve.key", "--trust", "trust.json", "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Dir = dir
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard // one JSON line per request, as in production, thrown away
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	m := regexp.MustCompile(` at (http://\S+) `).FindStringSubmatch(line)
	if m == nil {
		log.Fatalf("serve start line %q", line)
	}
	base := m[1]
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients}}
	rate, lat := load.Run(*clients, *n, func(i int) error {
		resp, err := hc.Post(base+"/v1/entries", "application/jwt", strings.NewReader(serveToks[i]))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("append: %d %s", resp.StatusCode, b)
		}
		return nil
	})
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Printf("ledger append --batch (CLI, %d tokens):     %8.0f tokens/s\n", *n, batchRate)
	fmt.Printf("serve, %d clients, single-token appends:   %8.0f tokens/s  (%.2f of batch; goal >= 0.70)\n", *clients, rate, rate/batchRate)
	fmt.Printf("serve append latency: p50 %v  p99 %v\n", load.Pct(lat, 50), load.Pct(lat, 99))

	for _, s := range strings.Split(*proofSizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		size, err := strconv.ParseUint(s, 10, 64)
		if err != nil || size == 0 {
			log.Fatalf("-proof-sizes: %q is not a positive size", s)
		}
		lat := proofReads(dir, size, *proofs)
		fmt.Printf("inclusion proof over HTTP at %8d entries: p50 %v  p99 %v\n", size, load.Pct(lat, 50), load.Pct(lat, 99))
	}
}

// tokens makes n ECTs of key, on all cores.
func tokens(key *trust.SigningKey, n int) []string {
	out := make([]string, n)
	var wg sync.WaitGroup
	w := runtime.NumCPU()
	for j := 0; j < w; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			for i := j; i < n; i += w {
				tok, err := ect.Create(key, &ect.Claims{Issuer: issuer, Audience: []string{ledgerID}, ExecAct: "bench.step"}, time.Now())
				if err != nil {
					log.Fatal(err)
				}
				out[i] = tok
			}
		}(j)
	}
	wg.Wait()
	return out
}

// proofReads fills a log of size entries, serves it, and times count
// inclusion proof reads of random entries over HTTP.
func proofReads(dir string, size uint64, count int) []time.Duration {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(dir, fmt.Sprintf("proofs-%d.db", size)))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	skey, vkey, _ := ledger.GenerateKey(ledgerID)
	if err := ledger.Create(ctx, st, ledgerID, vkey); err != nil {
		log.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	if err := ledgertest.FillSynthetic(ctx, st, signer, size, 50_000); err != nil {
		log.Fatal(err)
	}
	l, err := ledger.Open(ctx, ledger.Config{Store: st, Clock: time.Now})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(server.Config{Ledger: l, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String()
	_, lat := load.Run(1, count, func(int) error {
		resp, err := http.Get(fmt.Sprintf("%s/v1/proofs/inclusion?index=%d", base, rand.Uint64N(size)))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("proof: %d", resp.StatusCode)
		}
		return nil
	})
	return lat
}
