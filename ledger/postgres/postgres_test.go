package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentctx/agentctx/ect"
	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/ledger/postgres"
)

// serverURL is where the tests find PostgreSQL: $AGENTCTX_TEST_POSTGRES, or
// the local default. Under CI=true an unreachable server fails the tests;
// elsewhere they are skipped.
func serverURL(t *testing.T) string {
	u := os.Getenv("AGENTCTX_TEST_POSTGRES")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, u)
	if err == nil {
		err = pool.Ping(ctx)
		pool.Close()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is unreachable under CI: %v", u, err)
		}
		t.Skipf("PostgreSQL at %s is unreachable (set AGENTCTX_TEST_POSTGRES): %v", u, err)
	}
	return u
}

// schemaURL creates a fresh schema and returns the URL selecting it, and a
// pool on it for direct SQL.
func schemaURL(t *testing.T, base string) (string, *pgxpool.Pool) {
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	name := "agentctx_test_" + hex.EncodeToString(b)
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	u := base + sep + "search_path=" + name
	direct, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		direct.Close()
		admin.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
		admin.Close()
	})
	return u, direct
}

// TestConformance runs the shared ledger suite on PostgreSQL.
func TestConformance(t *testing.T) {
	base := serverURL(t)
	direct := map[ledger.Store]*pgxpool.Pool{}
	ledgertest.Run(t, ledgertest.Backend{
		Open: func(t *testing.T) ledger.Store {
			u, pool := schemaURL(t, base)
			s, err := postgres.Open(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			direct[s] = pool
			return s
		},
		Corrupt: func(t *testing.T, s ledger.Store, index uint64) {
			ctx := context.Background()
			for _, q := range []string{
				`ALTER TABLE entries DISABLE TRIGGER entries_append_only`,
				fmt.Sprintf(`UPDATE entries SET token = set_byte(token, 40, get_byte(token, 40) # 1) WHERE idx = %d`, index),
			} {
				if _, err := direct[s].Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		},
		CorruptNode: func(t *testing.T, s ledger.Store, level, index uint64) {
			ctx := context.Background()
			for _, q := range []string{
				`ALTER TABLE nodes DISABLE TRIGGER nodes_append_only`,
				fmt.Sprintf(`UPDATE nodes SET hash = decode(repeat('00', 32), 'hex') WHERE level = %d AND idx = %d`, level, index),
			} {
				if _, err := direct[s].Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		},
		CorruptCheckpoint: func(t *testing.T, s ledger.Store, size uint64) {
			ctx := context.Background()
			for _, q := range []string{
				`ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_append_only`,
				fmt.Sprintf(`UPDATE checkpoints SET note = set_byte(note, length(note) - 6, get_byte(note, length(note) - 6) # 1) WHERE size = %d`, size),
			} {
				if _, err := direct[s].Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		},
		Tamper: func(t *testing.T, s ledger.Store, stmt string, args ...any) {
			ctx := context.Background()
			for _, tb := range []string{"meta", "entries", "nodes", "checkpoints", "checkpoint_cose", "checkpoint_cosigs"} {
				if _, err := direct[s].Exec(ctx, `ALTER TABLE `+tb+` DISABLE TRIGGER USER`); err != nil {
					t.Fatal(err)
				}
			}
			n := 0
			stmt = regexp.MustCompile(`\?`).ReplaceAllStringFunc(stmt, func(string) string { n++; return fmt.Sprintf("$%d", n) })
			if _, err := direct[s].Exec(ctx, stmt, args...); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		},
		Update: func(s ledger.Store) error {
			_, err := direct[s].Exec(context.Background(), `UPDATE entries SET kind = 'ect' WHERE idx = 0`)
			return err
		},
		Delete: func(s ledger.Store) error {
			_, err := direct[s].Exec(context.Background(), `DELETE FROM entries`)
			return err
		},
	})
}

// TestTwoWritersOneLog: two independent writers (separate connection pools
// and ledger state, as two server processes) append to one PostgreSQL ledger
// at once; the log is consistent: every token once, every receipt valid, the
// audit passes (LED-12).
func TestTwoWritersOneLog(t *testing.T) {
	base := serverURL(t)
	u, _ := schemaURL(t, base)
	ctx := context.Background()
	skey, vkey, err := ledger.GenerateKey(ledgertest.LedgerID)
	if err != nil {
		t.Fatal(err)
	}
	first, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := ledger.Create(ctx, first, ledgertest.LedgerID, vkey); err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	now := time.Unix(1767225600, 0)
	clock := func() time.Time { return now }
	open := func() *ledger.Ledger {
		s, err := postgres.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		l, err := ledger.Open(ctx, ledger.Config{Store: s, Signer: signer, Trust: ledgertest.Trust(), Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	writers := []*ledger.Ledger{open(), open()}
	const batches, per = 15, 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*batches*per)
	for w, l := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				in := make([]ledger.Input, per)
				for i := range in {
					tok, err := ect.Create(ledgertest.KeyA, &ect.Claims{Issuer: ledgertest.IssA, Audience: []string{ledgertest.LedgerID},
						ExecAct: fmt.Sprintf("w%d-b%d-%d", w, b, i)}, now)
					if err != nil {
						errs <- err
						return
					}
					in[i].Token = tok
				}
				outs, err := l.Append(ctx, in)
				if err != nil {
					errs <- err
					return
				}
				for i, o := range outs {
					if o.Err != nil {
						errs <- o.Err
						continue
					}
					if err := ledger.VerifyReceipt(vkey, o.Receipt, []byte(in[i].Token)); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n, err := first.Size(ctx)
	if err != nil || n != 2*batches*per {
		t.Fatalf("size %d, want %d (%v)", n, 2*batches*per, err)
	}
	rep, err := writers[0].Audit(ctx)
	if err != nil || rep.Checkpoints != 2*batches {
		t.Fatalf("audit: %v %+v", err, rep)
	}
}

// TestCrashHelper is the writer process of TestCrash; it does nothing in a
// normal run.
func TestCrashHelper(t *testing.T) {
	keyFile := os.Getenv(ledgertest.CrashEnv)
	if keyFile == "" {
		return
	}
	ctx := context.Background()
	s, err := postgres.Open(ctx, os.Getenv("AGENTCTX_CRASH_DB"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledgertest.OpenWriter(ctx, s, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledgertest.CrashWriter(ctx, l, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// TestCrash covers LED-11 on PostgreSQL: a writer killed with SIGKILL in the
// middle of appends loses no acknowledged entry and leaves no torn one.
func TestCrash(t *testing.T) {
	u, _ := schemaURL(t, serverURL(t))
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reopen := func() ledger.Store {
		r, err := postgres.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ledgertest.RunCrash(t, s, "TestCrashHelper", []string{"AGENTCTX_CRASH_DB=" + u}, reopen)
}

// TestTwoProcesses: two writer processes append to one PostgreSQL ledger at
// once; the database is the single sequencer, the log stays consistent
// (LED-12).
func TestTwoProcesses(t *testing.T) {
	u, _ := schemaURL(t, serverURL(t))
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ledgertest.RunTwoWriters(t, s, "TestCrashHelper", []string{"AGENTCTX_CRASH_DB=" + u}, 12)
}

// TestOwnerAndWriterRoles asserts LED-3 on PostgreSQL: the tables belong to
// an owner role, the appending writer role holds only SELECT and INSERT (it
// can neither change rows nor disable the triggers), and the triggers
// refuse UPDATE, DELETE and TRUNCATE on every table even for the owner.
func TestOwnerAndWriterRoles(t *testing.T) {
	ctx := context.Background()
	base := serverURL(t)
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	b := make([]byte, 4)
	rand.Read(b)
	owner, writer := "agentctx_owner_"+hex.EncodeToString(b), "agentctx_writer_"+hex.EncodeToString(b)
	for _, q := range []string{"CREATE ROLE " + owner + " NOLOGIN", "CREATE ROLE " + writer + " LOGIN"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+writer)
		admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+owner)
	})
	u, direct := schemaURL(t, base)
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	skey, vkey, _ := ledger.GenerateKey(ledgertest.LedgerID)
	if err := ledger.Create(ctx, s, ledgertest.LedgerID, vkey); err != nil {
		t.Fatal(err)
	}
	if err := s.Grant(ctx, owner, writer); err != nil {
		t.Fatal(err)
	}
	wu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	wu.User = url.User(writer)
	ws, err := postgres.Open(ctx, wu.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	signer, _ := note.NewSigner(skey)
	now := time.Unix(1767225600, 0)
	l, err := ledger.Open(ctx, ledger.Config{Store: ws, Signer: signer, Trust: ledgertest.Trust(), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ect.Create(ledgertest.KeyA, &ect.Claims{Issuer: ledgertest.IssA, Audience: []string{ledgertest.LedgerID}, ExecAct: "x"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := l.Append(ctx, []ledger.Input{{Token: tok}}); err != nil || out[0].Err != nil {
		t.Fatalf("append as the writer role: %v %+v", err, out)
	}
	wpool, err := pgxpool.New(ctx, wu.String())
	if err != nil {
		t.Fatal(err)
	}
	defer wpool.Close()
	for _, q := range []string{
		`UPDATE entries SET kind = 'ect'`, `DELETE FROM checkpoints`, `TRUNCATE nodes`,
		`ALTER TABLE entries DISABLE TRIGGER ALL`, `DROP TRIGGER meta_append_only ON meta`,
	} {
		if _, err := wpool.Exec(ctx, q); err == nil {
			t.Errorf("LED-3: the writer role ran %s", q)
		}
	}
	for _, tb := range []string{"meta", "entries", "nodes", "checkpoints", "checkpoint_cose", "checkpoint_cosigs"} {
		if _, err := direct.Exec(ctx, "TRUNCATE "+tb); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("LED-3: TRUNCATE %s as superuser: %v", tb, err)
		}
		var o string
		if err := direct.QueryRow(ctx, `SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1`, tb).Scan(&o); err != nil || o != owner {
			t.Errorf("owner of %s: %q %v", tb, o, err)
		}
	}
	if rep, err := l.Audit(ctx); err != nil || rep.Size != 1 {
		t.Fatalf("audit as the writer role: %v %+v", err, rep)
	}
}
