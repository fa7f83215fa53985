// Package sqlite is the embedded default Store of the ledger: one SQLite file
// (pure Go, modernc.org/sqlite), in WAL mode with synchronous=FULL so that an
// acknowledged append survives a crash (LED-10, LED-11). Triggers refuse
// every UPDATE and DELETE (LED-3). One process writes at a time; readers may
// be many.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/agentctx/agentctx/ledger"
)

const schema = `
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE entries (
	idx INTEGER PRIMARY KEY,
	kind TEXT NOT NULL, jti TEXT NOT NULL, wid TEXT NOT NULL, iss TEXT NOT NULL, sub TEXT NOT NULL,
	exec_act TEXT NOT NULL, pred TEXT NOT NULL, ts INTEGER NOT NULL, received_ms INTEGER NOT NULL,
	partial INTEGER NOT NULL, status TEXT NOT NULL, pol TEXT NOT NULL, caps TEXT NOT NULL,
	token BLOB NOT NULL, token_hash BLOB NOT NULL UNIQUE, leaf_hash BLOB NOT NULL);
CREATE INDEX entries_jti ON entries(jti);
CREATE INDEX entries_wid ON entries(wid, idx);
CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
`

// appendOnly are the LED-3 triggers, one pair per table.
func appendOnly() string {
	var b strings.Builder
	for _, t := range []string{"meta", "entries", "nodes", "checkpoints"} {
		for _, op := range []string{"UPDATE", "DELETE"} {
			fmt.Fprintf(&b, "CREATE TRIGGER %s_no_%s BEFORE %s ON %s BEGIN SELECT RAISE(ABORT, 'append-only ledger: %s refused on %s'); END;\n",
				t, strings.ToLower(op), op, t, op, t)
		}
	}
	return b.String()
}

// Store is a ledger.Store in one SQLite file.
type Store struct {
	db *sql.DB
}

// Open opens (or creates) the SQLite file at path.
func Open(path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening ledger database %q: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close implements ledger.Store.
func (s *Store) Close() error { return s.db.Close() }

// Create implements ledger.Store.
func (s *Store) Create(ctx context.Context, m ledger.Meta) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema+appendOnly()); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return errors.New("a ledger already exists in this database")
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES ('id', ?), ('vkey', ?)`, m.ID, m.VerifierKey); err != nil {
		return err
	}
	return tx.Commit()
}

// Meta implements ledger.Store.
func (s *Store) Meta(ctx context.Context) (ledger.Meta, error) {
	var m ledger.Meta
	rows, err := s.db.QueryContext(ctx, `SELECT k, v FROM meta`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return m, ledger.ErrNotInitialized
		}
		return m, err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return m, err
		}
		switch k {
		case "id":
			m.ID = v
		case "vkey":
			m.VerifierKey = v
		}
	}
	if m.ID == "" {
		return m, ledger.ErrNotInitialized
	}
	return m, rows.Err()
}

func size(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (uint64, error) {
	var n uint64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM entries`).Scan(&n)
	return n, err
}

// Size implements ledger.Store.
func (s *Store) Size(ctx context.Context) (uint64, error) { return size(ctx, s.db) }

// Commit implements ledger.Store: one IMMEDIATE transaction, one fsync.
func (s *Store) Commit(ctx context.Context, entries []ledger.Entry, nodes []ledger.TreeNode, checkpoint []byte) error {
	if len(entries) == 0 {
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			conn.ExecContext(context.Background(), `ROLLBACK`)
		}
	}()
	n, err := size(ctx, conn)
	if err != nil {
		return err
	}
	if n != entries[0].Index {
		return ledger.ErrConflict
	}
	ins, err := conn.PrepareContext(ctx, `INSERT INTO entries (idx, kind, jti, wid, iss, sub, exec_act, pred, ts, received_ms, partial, status, pol, caps, token, token_hash, leaf_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, e := range entries {
		partial := 0
		if e.Partial {
			partial = 1
		}
		if _, err := ins.ExecContext(ctx, e.Index, e.Kind, e.JTI, e.WID, e.Issuer, e.Subject, e.ExecAct, strings.Join(e.Pred, ","),
			e.Time.Unix(), e.ReceivedAt, partial, e.Status, e.Policy, strings.Join(e.Caps, ","), e.Token, e.TokenHash, e.LeafHash); err != nil {
			return err
		}
	}
	insN, err := conn.PrepareContext(ctx, `INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer insN.Close()
	for _, nd := range nodes {
		if _, err := insN.ExecContext(ctx, nd.ID.Level, nd.ID.Index, nd.Hash); err != nil {
			return err
		}
	}
	last := entries[len(entries)-1].Index + 1
	if _, err := conn.ExecContext(ctx, `INSERT INTO checkpoints (size, note) VALUES (?, ?)`, last, checkpoint); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return err
	}
	done = true
	return nil
}

const cols = `idx, kind, jti, wid, iss, sub, exec_act, pred, ts, received_ms, partial, status, pol, caps, token, token_hash, leaf_hash`

func scanEntries(rows *sql.Rows) ([]ledger.Entry, error) {
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		var e ledger.Entry
		var pred, caps string
		var ts int64
		var partial int
		if err := rows.Scan(&e.Index, &e.Kind, &e.JTI, &e.WID, &e.Issuer, &e.Subject, &e.ExecAct, &pred, &ts, &e.ReceivedAt,
			&partial, &e.Status, &e.Policy, &caps, &e.Token, &e.TokenHash, &e.LeafHash); err != nil {
			return nil, err
		}
		e.Pred = split(pred)
		e.Caps = split(caps)
		e.Time = time.Unix(ts, 0)
		e.Partial = partial != 0
		out = append(out, e)
	}
	return out, rows.Err()
}

func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func (s *Store) query(ctx context.Context, where string, args ...any) ([]ledger.Entry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM entries WHERE `+where+` ORDER BY idx`, args...)
	if err != nil {
		return nil, err
	}
	return scanEntries(rows)
}

// Entries implements ledger.Store.
func (s *Store) Entries(ctx context.Context, from, to uint64) ([]ledger.Entry, error) {
	return s.query(ctx, `idx >= ? AND idx < ?`, from, to)
}

// ByJTI implements ledger.Store.
func (s *Store) ByJTI(ctx context.Context, jti string) ([]ledger.Entry, error) {
	return s.query(ctx, `jti = ?`, jti)
}

// ByTokenHash implements ledger.Store.
func (s *Store) ByTokenHash(ctx context.Context, hash []byte) (*ledger.Entry, error) {
	es, err := s.query(ctx, `token_hash = ?`, hash)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, ledger.ErrNotFound
	}
	return &es[0], nil
}

// Workflow implements ledger.Store.
func (s *Store) Workflow(ctx context.Context, wid string) ([]ledger.Entry, error) {
	return s.query(ctx, `wid = ?`, wid)
}

// Hashes implements ledger.Store.
func (s *Store) Hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	stmt, err := s.db.PrepareContext(ctx, `SELECT hash FROM nodes WHERE level = ? AND idx = ?`)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	out := make([][]byte, len(ids))
	for i, id := range ids {
		if err := stmt.QueryRowContext(ctx, id.Level, id.Index).Scan(&out[i]); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("tree node (%d, %d) is missing: %w", id.Level, id.Index, ledger.ErrNotFound)
			}
			return nil, err
		}
	}
	return out, nil
}

// Checkpoint implements ledger.Store.
func (s *Store) Checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	var cp []byte
	var err error
	if size == 0 {
		err = s.db.QueryRowContext(ctx, `SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&cp)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT note FROM checkpoints WHERE size = ?`, size).Scan(&cp)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return cp, err
}

// Checkpoints implements ledger.Store.
func (s *Store) Checkpoints(ctx context.Context) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT note FROM checkpoints ORDER BY size`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var cp []byte
		if err := rows.Scan(&cp); err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, rows.Err()
}
