package ledgertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
)

// CrashEnv names the environment variable that turns a test binary into the
// crash test's writer process.
const CrashEnv = "AGENTCTX_LEDGER_CRASH_WRITER"

// BatchesEnv names the environment variable that limits a writer process
// to that many batches (unset: until killed).
const BatchesEnv = "AGENTCTX_LEDGER_WRITER_BATCHES"

// CrashWriter appends batches of ECTs through l until the process is
// killed (or, with BatchesEnv set, that many batches), writing
// "acked <index>" to w for every entry after Append acknowledged it (that
// is, after the commit).
func CrashWriter(ctx context.Context, l *ledger.Ledger, w io.Writer) error {
	now := time.Unix(1767225600, 0)
	limit, _ := strconv.Atoi(os.Getenv(BatchesEnv))
	tag := strconv.Itoa(os.Getpid())
	for b := 0; limit == 0 || b < limit; b++ {
		in := make([]ledger.Input, 25)
		for i := range in {
			tok, err := ect.Create(KeyA, &ect.Claims{Issuer: IssA, Audience: []string{LedgerID}, ExecAct: fmt.Sprintf("w%s-%d-%d", tag, b, i)}, now)
			if err != nil {
				return err
			}
			in[i].Token = tok
		}
		outs, err := l.Append(ctx, in)
		if err != nil {
			return err
		}
		for _, o := range outs {
			if o.Err != nil {
				return o.Err
			}
			fmt.Fprintf(w, "acked %d\n", o.Receipt.Index)
		}
	}
	return nil
}

// OpenWriter opens the ledger of store for a writer, signing with the key
// in keyFile.
func OpenWriter(ctx context.Context, store ledger.Store, keyFile string) (*ledger.Ledger, error) {
	skey, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, err
	}
	return ledger.Open(ctx, ledger.Config{Store: store, Signer: signer, Trust: Trust(), Clock: func() time.Time { return time.Unix(1767225600, 0) }})
}

// RunCrash creates a ledger in store (through create), starts this test
// binary again as a writer process running the test named helper with env
// (plus CrashEnv and the key file), kills it with SIGKILL after it
// acknowledged at least 200 entries, then reopens the ledger with reopen and
// checks LED-11: every acknowledged entry is there, nothing is torn, the
// audit passes.
func RunCrash(t *testing.T, store ledger.Store, helper string, env []string, reopen func() ledger.Store) {
	ctx := context.Background()
	keyFile := createWithKeyFile(t, store)
	cmd, out := startWriter(t, helper, append(env, CrashEnv+"="+keyFile))
	var acked []uint64
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if v, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			acked = append(acked, n)
			if len(acked) >= 200 {
				break
			}
		}
	}
	// Kill in the middle of the appends that follow, at a varying moment.
	time.Sleep(time.Duration(time.Now().UnixNano()%40) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // entries acknowledged before the kill landed
		if v, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			acked = append(acked, n)
		}
	}
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("the writer acknowledged only %d entries", len(acked))
	}
	s := reopen()
	defer s.Close()
	l, err := ledger.Open(ctx, ledger.Config{Store: s, Trust: Trust(), Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	size, err := s.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range acked {
		if i >= size {
			t.Fatalf("acknowledged entry %d is lost (size %d after restart)", i, size)
		}
	}
	rep, err := l.Audit(ctx)
	if err != nil {
		t.Fatalf("audit after the crash: %v", err)
	}
	t.Logf("killed after %d acknowledged entries; %d stored, %d checkpoints, audit intact", len(acked), rep.Size, rep.Checkpoints)
	// The ledger takes appends again after the crash.
	w, err := OpenWriter(ctx, s, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := ect.Create(KeyA, &ect.Claims{Issuer: IssA, Audience: []string{LedgerID}, ExecAct: "after-crash"}, time.Unix(1767225600, 0))
	outs, err := w.Append(ctx, []ledger.Input{{Token: tok}})
	if err != nil || outs[0].Err != nil || outs[0].Receipt.Index != size {
		t.Fatalf("append after restart: %v %+v", err, outs)
	}
}

// RunTwoWriters starts this test binary twice as writer processes (test
// helper, with env, each limited to batches batches) appending to one
// ledger at once, created in store, then checks that the log is one
// consistent log: every acknowledged index once, the size their sum, the
// audit intact (LED-12).
func RunTwoWriters(t *testing.T, store ledger.Store, helper string, env []string, batches int) {
	ctx := context.Background()
	keyFile := createWithKeyFile(t, store)
	type result struct {
		acked []uint64
		err   error
	}
	results := make(chan result, 2)
	for w := 0; w < 2; w++ {
		cmd, out := startWriter(t, helper, append(env, CrashEnv+"="+keyFile, fmt.Sprintf("%s=%d", BatchesEnv, batches)))
		go func() {
			var r result
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					r.acked = append(r.acked, n)
				}
			}
			r.err = cmd.Wait()
			results <- r
		}()
	}
	seen := map[uint64]bool{}
	for w := 0; w < 2; w++ {
		r := <-results
		if r.err != nil {
			t.Fatalf("writer process: %v", r.err)
		}
		if len(r.acked) != batches*25 {
			t.Fatalf("a writer acknowledged %d entries, want %d", len(r.acked), batches*25)
		}
		for _, i := range r.acked {
			if seen[i] {
				t.Fatalf("index %d acknowledged twice", i)
			}
			seen[i] = true
		}
	}
	size, err := store.Size(ctx)
	if err != nil || size != uint64(2*batches*25) {
		t.Fatalf("size %d, want %d (%v)", size, 2*batches*25, err)
	}
	l, err := ledger.Open(ctx, ledger.Config{Store: store, Trust: Trust(), Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Audit(ctx); err != nil {
		t.Fatalf("audit after two concurrent writers: %v", err)
	}
}

// createWithKeyFile creates the suite's ledger in store and writes its
// signing key to a 0600 file for the writer processes.
func createWithKeyFile(t *testing.T, store ledger.Store) string {
	skey, vkey, err := ledger.GenerateKey(LedgerID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Create(context.Background(), store, LedgerID, vkey); err != nil {
		t.Fatal(err)
	}
	keyFile := t.TempDir() + "/ledger.key"
	if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile
}

// startWriter starts this test binary as a writer process running the test
// helper with env added, and returns it with its standard output.
func startWriter(t *testing.T, helper string, env []string) (*exec.Cmd, io.Reader) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}
