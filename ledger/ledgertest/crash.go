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

// CrashWriter appends batches of ECTs through l until the process is
// killed, writing "acked <index>" to w for every entry after Append
// acknowledged it (that is, after the commit).
func CrashWriter(ctx context.Context, l *ledger.Ledger, w io.Writer) error {
	now := time.Unix(1767225600, 0)
	for b := 0; ; b++ {
		in := make([]ledger.Input, 25)
		for i := range in {
			tok, err := ect.Create(KeyA, &ect.Claims{Issuer: IssA, Audience: []string{LedgerID}, ExecAct: fmt.Sprintf("crash-%d-%d", b, i)}, now)
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
	skey, vkey, err := ledger.GenerateKey(LedgerID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Create(ctx, store, LedgerID, vkey); err != nil {
		t.Fatal(err)
	}
	keyFile := t.TempDir() + "/ledger.key"
	if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), env...), CrashEnv+"="+keyFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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
