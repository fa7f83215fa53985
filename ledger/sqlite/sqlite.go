// Package sqlite is the embedded default Store of the ledger: one SQLite file
// (pure Go, modernc.org/sqlite), in WAL mode with synchronous=FULL so that an
// acknowledged append survives a crash (LED-10, LED-11). Triggers refuse
// every UPDATE, DELETE and replacing INSERT on every table (LED-3). One process writes at a time; readers may
// be many.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
	token BLOB NOT NULL, token_hash BLOB NOT NULL, leaf_hash BLOB NOT NULL);
CREATE INDEX entries_jti ON entries(jti);
CREATE INDEX entries_wid ON entries(wid, idx);
CREATE INDEX entries_leaf ON entries(leaf_hash);
CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
CREATE TABLE checkpoint_cose (size INTEGER PRIMARY KEY, sig BLOB NOT NULL);
CREATE TABLE checkpoint_cosigs (size INTEGER NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY (size, seq)) WITHOUT ROWID;
`

// keys are the primary keys of the tables, for the REPLACE guard.
var keys = []struct{ table, match string }{
	{"meta", "k = NEW.k"},
	{"entries", "idx = NEW.idx"},
	{"nodes", "level = NEW.level AND idx = NEW.idx"},
	{"checkpoints", "size = NEW.size"},
	{"checkpoint_cose", "size = NEW.size"},
	{"checkpoint_cosigs", "size = NEW.size AND seq = NEW.seq"},
}

// appendOnly are the LED-3 triggers of every table: UPDATE and DELETE are
// refused, and so is an INSERT that meets an existing key, which is how
// INSERT OR REPLACE and REPLACE would delete a row without firing the DELETE
// trigger.
func appendOnly() string {
	var b strings.Builder
	for _, k := range keys {
		t := k.table
		for _, op := range []string{"UPDATE", "DELETE"} {
			fmt.Fprintf(&b, "CREATE TRIGGER %s_no_%s BEFORE %s ON %s BEGIN SELECT RAISE(ABORT, 'append-only ledger: %s refused on %s'); END;\n",
				t, strings.ToLower(op), op, t, op, t)
		}
		// SPEC: LED-3 REPLACE deletes without DELETE triggers; refuse it at the insert.
		fmt.Fprintf(&b, "CREATE TRIGGER %s_no_replace BEFORE INSERT ON %s WHEN EXISTS (SELECT 1 FROM %s WHERE %s) BEGIN SELECT RAISE(ABORT, 'append-only ledger: replacing a row refused on %s'); END;\n",
			t, t, t, k.match, t)
	}
	return b.String()
}

// Store is a ledger.Store in one SQLite file.
type Store struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
	cose  atomic.Int32 // 0 unknown, 1 the checkpoint_cose table exists, 2 it does not
	cosig atomic.Int32 // the same for checkpoint_cosigs
}

// stmt returns the prepared statement for q, preparing it once (the tables
// exist only after Create, so statements are prepared on first use).
func (s *Store) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stmts[q]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if s.stmts == nil {
		s.stmts = map[string]*sql.Stmt{}
	}
	s.stmts[q] = st
	return st, nil
}

// Open opens (or creates) the SQLite file at path.
func Open(path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint(16384)&_pragma=mmap_size(1073741824)"
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
func (s *Store) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.mu.Unlock()
	return s.db.Close()
}

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
func (s *Store) Commit(ctx context.Context, entries []ledger.Entry, nodes []ledger.TreeNode, checkpoint, cose []byte) error {
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
	if cose != nil && s.hasCOSE(ctx) {
		if _, err := conn.ExecContext(ctx, `INSERT INTO checkpoint_cose (size, sig) VALUES (?, ?)`, last, cose); err != nil {
			return err
		}
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
	st, err := s.stmt(ctx, `SELECT `+cols+` FROM entries WHERE `+where+` ORDER BY idx`)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
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

// ByJTIs implements ledger.Store with one prepared query per count.
func (s *Store) ByJTIs(ctx context.Context, jtis []string) ([]ledger.Entry, error) {
	if len(jtis) == 0 {
		return nil, nil
	}
	args := make([]any, len(jtis))
	for i, j := range jtis {
		args[i] = j
	}
	return s.query(ctx, `jti IN (?`+strings.Repeat(",?", len(jtis)-1)+`)`, args...)
}

// ByLeafHash implements ledger.Store (indexed in ledgers created since the
// service's leaf_hash proofs; a scan in older ones).
func (s *Store) ByLeafHash(ctx context.Context, hash []byte) ([]ledger.Entry, error) {
	return s.query(ctx, `leaf_hash = ?`, hash)
}

// Workflow implements ledger.Store.
func (s *Store) Workflow(ctx context.Context, wid string) ([]ledger.Entry, error) {
	return s.query(ctx, `wid = ?`, wid)
}

// Hashes implements ledger.Store: a run of consecutive nodes of one level
// (the leaves under a proof's lowest nodes, a tile) is read as one range,
// the other nodes with one prepared query per 200.
func (s *Store) Hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var single []int
	for i := 0; i < len(ids); {
		n := 1
		for i+n < len(ids) && ids[i+n].Level == ids[i].Level && ids[i+n].Index == ids[i].Index+uint64(n) {
			n++
		}
		if n < 4 {
			for k := i; k < i+n; k++ {
				single = append(single, k)
			}
		} else if err := s.hashRun(ctx, ids[i], out[i:i+n]); err != nil {
			return nil, err
		}
		i += n
	}
	const per = 200
	for from := 0; from < len(single); from += per {
		if err := s.hashList(ctx, ids, single[from:min(from+per, len(single))], out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// hashRun reads len(out) consecutive nodes of first's level from first.
func (s *Store) hashRun(ctx context.Context, first compact.NodeID, out [][]byte) error {
	st, err := s.stmt(ctx, `SELECT hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx`)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(ctx, first.Level, first.Index, first.Index+uint64(len(out)))
	if err != nil {
		return err
	}
	defer rows.Close()
	// Rows come in index order; one that is missing shows as a short read.
	buf := make([]byte, 0, 32*len(out))
	n := 0
	for ; n < len(out) && rows.Next(); n++ {
		var h sql.RawBytes
		if err := rows.Scan(&h); err != nil {
			return err
		}
		buf = append(buf, h...)
		out[n] = buf[len(buf)-len(h) : len(buf) : len(buf)]
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n < len(out) {
		return fmt.Errorf("tree nodes (%d, %d..%d) are not all stored: %w", first.Level, first.Index, first.Index+uint64(len(out))-1, ledger.ErrNotFound)
	}
	return nil
}

// hashList reads the nodes ids[at...] into out[at...] with one query.
func (s *Store) hashList(ctx context.Context, ids []compact.NodeID, at []int, out [][]byte) error {
	var q strings.Builder
	q.WriteString(`SELECT level, idx, hash FROM nodes WHERE (level, idx) IN (VALUES `)
	args := make([]any, 0, 2*len(at))
	for k, i := range at {
		if k > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?)")
		args = append(args, ids[i].Level, ids[i].Index)
	}
	q.WriteByte(')')
	// The text depends only on the count, so at most 200 statements are
	// prepared: parsing one cost a proof a quarter of its time.
	st, err := s.stmt(ctx, q.String())
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	found := make(map[compact.NodeID][]byte, len(at))
	for rows.Next() {
		var level uint
		var idx uint64
		var h []byte
		if err := rows.Scan(&level, &idx, &h); err != nil {
			return err
		}
		found[compact.NewNodeID(level, idx)] = h
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, i := range at {
		h, ok := found[ids[i]]
		if !ok {
			return fmt.Errorf("tree node (%d, %d) is missing: %w", ids[i].Level, ids[i].Index, ledger.ErrNotFound)
		}
		out[i] = h
	}
	return nil
}

// Checkpoint implements ledger.Store.
func (s *Store) Checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	q, args := `SELECT note FROM checkpoints WHERE size = ?`, []any{size}
	if size == 0 {
		q, args = `SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1`, nil
	}
	st, err := s.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	var cp []byte
	err = st.QueryRowContext(ctx, args...).Scan(&cp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return cp, err
}

// hasCOSE reports whether the ledger has the checkpoint_cose table (a
// ledger created before COSE receipts has not).
func (s *Store) hasCOSE(ctx context.Context) bool { return s.hasTable(ctx, &s.cose, "checkpoint_cose") }

// hasTable reports, once per store, whether the ledger has table name.
func (s *Store) hasTable(ctx context.Context, flag *atomic.Int32, name string) bool {
	if v := flag.Load(); v != 0 {
		return v == 1
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
		return false
	}
	if n == 1 {
		flag.Store(1)
		return true
	}
	flag.Store(2)
	return false
}

// AddCosignatures implements ledger.Store.
func (s *Store) AddCosignatures(ctx context.Context, size uint64, lines []string) error {
	if !s.hasTable(ctx, &s.cosig, "checkpoint_cosigs") {
		return ledger.ErrNoCosignatures
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	have := map[string]bool{}
	var seq int64
	rows, err := tx.QueryContext(ctx, `SELECT seq, line FROM checkpoint_cosigs WHERE size = ?`, size)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n int64
		var l string
		if err := rows.Scan(&n, &l); err != nil {
			rows.Close()
			return err
		}
		have[l], seq = true, max(seq, n+1)
	}
	rows.Close()
	for _, l := range lines {
		if have[l] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoint_cosigs (size, seq, line) VALUES (?, ?, ?)`, size, seq, l); err != nil {
			return err
		}
		have[l] = true
		seq++
	}
	return tx.Commit()
}

// Cosignatures implements ledger.Store.
func (s *Store) Cosignatures(ctx context.Context, size uint64) ([]string, error) {
	if !s.hasTable(ctx, &s.cosig, "checkpoint_cosigs") {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT line FROM checkpoint_cosigs WHERE size = ? ORDER BY seq`, size)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// COSESignature implements ledger.Store.
func (s *Store) COSESignature(ctx context.Context, size uint64) ([]byte, error) {
	if !s.hasCOSE(ctx) {
		return nil, nil
	}
	st, err := s.stmt(ctx, `SELECT sig FROM checkpoint_cose WHERE size = ?`)
	if err != nil {
		return nil, err
	}
	var sig []byte
	err = st.QueryRowContext(ctx, size).Scan(&sig)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return sig, err
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
