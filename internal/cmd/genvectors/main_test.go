package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentctx/agentctx/ledger"
)

// TestGenerated: the vectors under testdata/vectors are exactly what this
// generator writes (every signature is deterministic), so a change to the
// generator or to the checked-in files cannot go unnoticed.
func TestGenerated(t *testing.T) {
	out := t.TempDir()
	generate(out)
	checked := 0
	root := filepath.Join("..", "..", "..", "testdata", "vectors")
	for _, suite := range []string{"ect", "act", "receipts"} {
		err := filepath.WalkDir(filepath.Join(out, suite), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(out, p)
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got, err := os.ReadFile(filepath.Join(root, rel))
			if err != nil {
				t.Errorf("%s: not checked in (run go run ./internal/cmd/genvectors): %v", rel, err)
				return nil
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from what the generator writes (run go run ./internal/cmd/genvectors)", rel)
			}
			checked++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Nothing checked in that the generator does not write.
		files, _ := filepath.Glob(filepath.Join(root, suite, "*"))
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(out, suite, filepath.Base(f))); err != nil {
				t.Errorf("%s is checked in but not generated", f)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d files compared", checked)
	}
}

// TestReceiptVectors (SVC-6a): every checked-in receipt verifies in its
// encoding with the ledger's public key alone, and none for another token.
func TestReceiptVectors(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "testdata", "vectors", "receipts")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	vkey := string(read("ledger.vkey"))
	for i := 0; i < 3; i++ {
		tok := read(fmt.Sprintf("entry-%d.jwt", i))
		other := read(fmt.Sprintf("entry-%d.jwt", (i+1)%3))
		var r ledger.Receipt
		if err := json.Unmarshal(read(fmt.Sprintf("entry-%d.receipt.json", i)), &r); err != nil {
			t.Fatal(err)
		}
		if err := ledger.VerifyReceipt(strings.TrimSpace(vkey), &r, tok); err != nil || ledger.VerifyReceipt(strings.TrimSpace(vkey), &r, other) == nil {
			t.Fatalf("entry %d JSON: %v", i, err)
		}
		tp, err := ledger.ParseTLogProof(read(fmt.Sprintf("entry-%d.tlog-proof", i)), tok)
		if err != nil || ledger.VerifyReceipt(strings.TrimSpace(vkey), tp, tok) != nil || tp.Index != uint64(i) {
			t.Fatalf("entry %d tlog-proof: %v", i, err)
		}
		cr := read(fmt.Sprintf("entry-%d.receipt.cose", i))
		if info, err := ledger.VerifyCOSEReceipt(vkey, cr, tok); err != nil || info.Index != uint64(i) || info.TreeSize != 3 {
			t.Fatalf("entry %d COSE: %v", i, err)
		}
		if _, err := ledger.VerifyCOSEReceipt(vkey, cr, other); err == nil {
			t.Fatalf("entry %d COSE verifies for another token", i)
		}
	}
	c2, err := ledger.VerifyCheckpoint(vkey, read("checkpoint.2"))
	if err != nil {
		t.Fatal(err)
	}
	c3, _ := ledger.VerifyCheckpoint(vkey, read("checkpoint.3"))
	if size, root, err := ledger.VerifyCOSEConsistency(vkey, read("consistency-2-3.cose"), c2.Size, c2.Root); err != nil || size != 3 || !bytes.Equal(root, c3.Root) {
		t.Fatalf("consistency 2 -> 3: %v", err)
	}
	k, err := ledger.ParseVerifierKey(vkey)
	if err != nil || !bytes.Equal(read("ledger.cose-key"), k.COSEKey()) {
		t.Fatalf("ledger.cose-key: %v", err)
	}
}
