package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/internal/testkeys"
)

// TestLedgerCLIOnPostgres drives ledger init, append, prove and verify with
// --db postgres://... (LED-12 through the CLI). PostgreSQL is found at
// $AGENTCTX_TEST_POSTGRES; under CI=true an unreachable server fails.
func TestLedgerCLIOnPostgres(t *testing.T) {
	db := testPostgres(t)

	dir := t.TempDir()
	key := testkeys.EdDSA("cli-pg", "k1")
	trustPath := writeTrust(t, "spiffe://ex.com/a", key.Public())
	now := time.Unix(1767225600, 0)
	tok, err := ect.Create(key, &ect.Claims{Issuer: "spiffe://ex.com/a", Audience: []string{"spiffe://ex.com/ledger"}, ExecAct: "x"}, now)
	if err != nil {
		t.Fatal(err)
	}
	cli := func(stdin string, args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(args, strings.NewReader(stdin), &out, &errb)
		return out.String() + errb.String(), code
	}
	keyFile := filepath.Join(dir, "l.key")
	if out, code := cli("", "ledger", "init", "--db", db, "--id", "spiffe://ex.com/ledger", "--key-out", keyFile); code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	out, code := cli(tok+"\n"+tok+"\n", "ledger", "append", "--db", db, "--key", keyFile, "--trust", trustPath, "--now", "1767225601", "--batch", "-")
	if code != 0 || strings.Count(out, `"ok":true,"receipt":{"index":0,`) != 2 {
		t.Fatalf("append: %d %s", code, out)
	}
	if out, code := cli("", "ledger", "prove", "--db", db, "--index", "0"); code != 0 || !strings.Contains(out, `"tree_size":1`) {
		t.Fatalf("prove: %d %s", code, out)
	}
	if out, code := cli("", "ledger", "verify", "--db", db, "--trust", trustPath); code != 0 || !strings.Contains(out, "ledger intact: 1 entry") {
		t.Fatalf("verify: %d %s", code, out)
	}
}

// testPostgres returns the URL of a fresh schema on the PostgreSQL server at
// $AGENTCTX_TEST_POSTGRES (default: the local one), dropped when the test
// ends. Under CI=true an unreachable server fails the test; elsewhere it
// skips it.
func testPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("AGENTCTX_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin, err := pgxpool.New(ctx, base)
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL unreachable under CI: %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "agentctx_cli_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if a, err := pgxpool.New(ctx, base); err == nil {
			a.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			a.Close()
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	db := base + sep + "search_path=" + schema
	return db
}
