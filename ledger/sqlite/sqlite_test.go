package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentctx/agentctx/ledger"
	"github.com/agentctx/agentctx/ledger/ledgertest"
	"github.com/agentctx/agentctx/ledger/sqlite"
)

// TestConformance runs the shared ledger suite on SQLite.
func TestConformance(t *testing.T) {
	paths := map[ledger.Store]string{}
	raw := func(t *testing.T, s ledger.Store) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+paths[s])
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	ledgertest.Run(t, ledgertest.Backend{
		Open: func(t *testing.T) ledger.Store {
			p := filepath.Join(t.TempDir(), "ledger.db")
			s, err := sqlite.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			paths[s] = p
			return s
		},
		Corrupt: func(t *testing.T, s ledger.Store, index uint64) {
			db := raw(t, s)
			defer db.Close()
			for _, q := range []string{
				`DROP TRIGGER entries_no_update`,
				`UPDATE entries SET token = CAST(substr(token, 1, 40) || (CASE WHEN CAST(substr(token, 41, 1) AS TEXT) = 'A' THEN 'B' ELSE 'A' END) || substr(token, 42) AS BLOB) WHERE idx = ?`,
			} {
				if _, err := db.Exec(q, index); err != nil {
					t.Fatal(err)
				}
			}
		},
		CorruptNode: func(t *testing.T, s ledger.Store, level, index uint64) {
			db := raw(t, s)
			defer db.Close()
			if _, err := db.Exec(`DROP TRIGGER nodes_no_update`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`UPDATE nodes SET hash = zeroblob(32) WHERE level = ? AND idx = ?`, level, index); err != nil {
				t.Fatal(err)
			}
		},
		CorruptCheckpoint: func(t *testing.T, s ledger.Store, size uint64) {
			db := raw(t, s)
			defer db.Close()
			if _, err := db.Exec(`DROP TRIGGER checkpoints_no_update`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`UPDATE checkpoints SET note = CAST(substr(note, 1, length(note) - 6) || (CASE WHEN CAST(substr(note, length(note) - 5, 1) AS TEXT) = 'A' THEN 'B' ELSE 'A' END) || substr(note, length(note) - 4) AS BLOB) WHERE size = ?`, size); err != nil {
				t.Fatal(err)
			}
		},
		Tamper: func(t *testing.T, s ledger.Store, stmt string, args ...any) {
			db := raw(t, s)
			defer db.Close()
			rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for rows.Next() {
				var n string
				rows.Scan(&n)
				names = append(names, n)
			}
			rows.Close()
			for _, n := range names {
				if _, err := db.Exec(`DROP TRIGGER ` + n); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Exec(stmt, args...); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		},
		Update: func(s ledger.Store) error {
			db, err := sql.Open("sqlite", "file:"+paths[s])
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.Exec(`UPDATE entries SET kind = 'ect' WHERE idx = 0`)
			return err
		},
		Delete: func(s ledger.Store) error {
			db, err := sql.Open("sqlite", "file:"+paths[s])
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.Exec(`DELETE FROM entries`)
			return err
		},
	})
}

// TestCrashHelper is the writer process of TestCrash; it does nothing in a
// normal run.
func TestCrashHelper(t *testing.T) {
	keyFile := os.Getenv(ledgertest.CrashEnv)
	if keyFile == "" {
		return
	}
	ctx := context.Background()
	s, err := sqlite.Open(os.Getenv("AGENTCTX_CRASH_DB"))
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

// TestCrash covers LED-11 on SQLite: a writer killed with SIGKILL in the
// middle of appends loses no acknowledged entry and leaves no torn one.
func TestCrash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "crash.db")
	s, err := sqlite.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	reopen := func() ledger.Store {
		r, err := sqlite.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ledgertest.RunCrash(t, s, "TestCrashHelper", []string{"AGENTCTX_CRASH_DB=" + p}, reopen)
	s.Close()
}

// TestReplaceRefused asserts LED-3 on SQLite: INSERT OR REPLACE and REPLACE,
// which delete rows without firing DELETE triggers, are refused on every
// table, and so are UPDATE and DELETE.
func TestReplaceRefused(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, vkey, _ := ledger.GenerateKey(ledgertest.LedgerID)
	if err := ledger.Create(ctx, s, ledgertest.LedgerID, vkey); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO entries VALUES (0, 'ect', 'j', '', 'i', '', 'a', '', 0, 0, 0, '', '', '', x'00', x'00', x'00');
		INSERT INTO nodes VALUES (0, 0, x'00'); INSERT INTO checkpoints VALUES (1, x'00')`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT OR REPLACE INTO meta (k, v) VALUES ('vkey', 'other')`,
		`REPLACE INTO meta (k, v) VALUES ('id', 'other')`,
		`INSERT OR REPLACE INTO entries SELECT * FROM entries WHERE idx = 0`,
		`REPLACE INTO nodes (level, idx, hash) VALUES (0, 0, x'01')`,
		`INSERT OR REPLACE INTO checkpoints (size, note) VALUES (1, x'01')`,
		`UPDATE checkpoints SET note = x'02'`,
		`DELETE FROM nodes`,
		`DELETE FROM meta`,
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("LED-3: %s: %v", q, err)
		}
	}
	if m, err := s.Meta(ctx); err != nil || m.VerifierKey != vkey {
		t.Fatalf("meta after the attempts: %v %+v", err, m)
	}
}
