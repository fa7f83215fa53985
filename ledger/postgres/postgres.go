// Package postgres is the server Store of the ledger, on PostgreSQL through
// pgx. Several processes may share one database: appends are serialized by
// the database (an advisory lock held by the appending transaction: one
// sequencer), reads scale out (LED-12). Triggers refuse every UPDATE,
// DELETE and TRUNCATE on every table, those privileges are revoked from
// PUBLIC, and Grant hands the tables to an owner role while the appending
// writer role keeps only SELECT and INSERT (LED-3).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/compact"

	"github.com/agentctx/agentctx/ledger"
)

const schema = `
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE entries (
	idx BIGINT PRIMARY KEY,
	kind TEXT NOT NULL, jti TEXT NOT NULL, wid TEXT NOT NULL, iss TEXT NOT NULL, sub TEXT NOT NULL,
	exec_act TEXT NOT NULL, pred TEXT NOT NULL, ts BIGINT NOT NULL, received_ms BIGINT NOT NULL,
	partial BOOLEAN NOT NULL, status TEXT NOT NULL, pol TEXT NOT NULL, caps TEXT NOT NULL,
	token BYTEA NOT NULL, token_hash BYTEA NOT NULL, leaf_hash BYTEA NOT NULL);
CREATE INDEX entries_jti ON entries(jti);
CREATE INDEX entries_wid ON entries(wid, idx);
CREATE INDEX entries_leaf ON entries(leaf_hash);
CREATE TABLE nodes (level INT NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE checkpoints (size BIGINT PRIMARY KEY, note BYTEA NOT NULL);
CREATE TABLE checkpoint_cose (size BIGINT PRIMARY KEY, sig BYTEA NOT NULL);
CREATE TABLE checkpoint_cosigs (size BIGINT NOT NULL, seq BIGINT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (size, seq));
CREATE FUNCTION agentctx_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'append-only ledger: % refused on %', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER meta_append_only BEFORE UPDATE OR DELETE ON meta FOR EACH ROW EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries FOR EACH ROW EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER nodes_append_only BEFORE UPDATE OR DELETE ON nodes FOR EACH ROW EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints FOR EACH ROW EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER checkpoint_cose_append_only BEFORE UPDATE OR DELETE ON checkpoint_cose FOR EACH ROW EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER checkpoint_cosigs_append_only BEFORE UPDATE OR DELETE ON checkpoint_cosigs FOR EACH ROW EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER meta_no_truncate BEFORE TRUNCATE ON meta EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER nodes_no_truncate BEFORE TRUNCATE ON nodes EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER checkpoint_cose_no_truncate BEFORE TRUNCATE ON checkpoint_cose EXECUTE FUNCTION agentctx_append_only();
CREATE TRIGGER checkpoint_cosigs_no_truncate BEFORE TRUNCATE ON checkpoint_cosigs EXECUTE FUNCTION agentctx_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON meta, entries, nodes, checkpoints, checkpoint_cose, checkpoint_cosigs FROM PUBLIC;
`

// tables are the ledger's tables, in the order Create makes them.
var tables = []string{"meta", "entries", "nodes", "checkpoints", "checkpoint_cose", "checkpoint_cosigs"}

// Grant hands the ledger's tables to the owner role and lets the writer role
// only read and append (LED-3): owner holds the tables and their triggers,
// writer gets SELECT and INSERT and nothing else, so a process connected as
// writer can neither change a row nor disable the triggers. Call it right
// after Create, connected as a role that may create and hand over tables
// (a superuser, or a member of owner). Either role may be "" to leave that
// part as it is.
func (s *Store) Grant(ctx context.Context, owner, writer string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var stmts []string
		if owner != "" {
			o := pgx.Identifier{owner}.Sanitize()
			for _, t := range tables {
				stmts = append(stmts, "ALTER TABLE "+t+" OWNER TO "+o)
			}
			stmts = append(stmts, "ALTER FUNCTION agentctx_append_only() OWNER TO "+o)
		}
		if writer != "" {
			w := pgx.Identifier{writer}.Sanitize()
			list := strings.Join(tables, ", ")
			stmts = append(stmts, "REVOKE ALL ON "+list+" FROM "+w, "GRANT SELECT, INSERT ON "+list+" TO "+w)
			var schema string
			if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
				return err
			}
			stmts = append(stmts, "GRANT USAGE ON SCHEMA "+pgx.Identifier{schema}.Sanitize()+" TO "+w)
		}
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("postgres ledger: %s: %w", q, err)
			}
		}
		return nil
	})
}

// Store is a ledger.Store in PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	cose  atomic.Int32 // 0 unknown, 1 the checkpoint_cose table exists, 2 it does not
	cosig atomic.Int32 // the same for checkpoint_cosigs
}

// Open connects to the database at url (a postgres:// URL; a search_path
// parameter selects the schema).
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("postgres ledger: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres ledger: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close implements ledger.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Create implements ledger.Store.
func (s *Store) Create(ctx context.Context, m ledger.Meta) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, schema); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42P07" {
				return errors.New("a ledger already exists in this database")
			}
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO meta (k, v) VALUES ('id', $1), ('vkey', $2)`, m.ID, m.VerifierKey)
		return err
	})
}

// Meta implements ledger.Store.
func (s *Store) Meta(ctx context.Context) (ledger.Meta, error) {
	var m ledger.Meta
	rows, err := s.pool.Query(ctx, `SELECT k, v FROM meta`)
	if err != nil {
		if undefinedTable(err) {
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
	if err := rows.Err(); err != nil {
		if undefinedTable(err) {
			return m, ledger.ErrNotInitialized
		}
		return m, err
	}
	if m.ID == "" {
		return m, ledger.ErrNotInitialized
	}
	return m, nil
}

func undefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func size(ctx context.Context, q querier) (uint64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM entries`).Scan(&n)
	return uint64(n), err
}

// Size implements ledger.Store.
func (s *Store) Size(ctx context.Context) (uint64, error) { return size(ctx, s.pool) }

// Commit implements ledger.Store. A transaction-scoped advisory lock, keyed
// by the schema, makes the database the single sequencer of every process
// appending to this ledger; it needs no privilege beyond SELECT and INSERT
// (a table lock would need UPDATE or DELETE, which the writer role lacks).
func (s *Store) Commit(ctx context.Context, entries []ledger.Entry, nodes []ledger.TreeNode, checkpoint, cose []byte) error {
	if len(entries) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('agentctx-ledger:' || current_schema()))`); err != nil {
			return err
		}
		n, err := size(ctx, tx)
		if err != nil {
			return err
		}
		if n != entries[0].Index {
			return ledger.ErrConflict
		}
		rows := make([][]any, len(entries))
		for i, e := range entries {
			rows[i] = []any{int64(e.Index), e.Kind, e.JTI, e.WID, e.Issuer, e.Subject, e.ExecAct, strings.Join(e.Pred, ","),
				e.Time.Unix(), e.ReceivedAt, e.Partial, e.Status, e.Policy, strings.Join(e.Caps, ","), e.Token, e.TokenHash, e.LeafHash}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"entries"}, []string{"idx", "kind", "jti", "wid", "iss", "sub", "exec_act", "pred",
			"ts", "received_ms", "partial", "status", "pol", "caps", "token", "token_hash", "leaf_hash"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		nrows := make([][]any, len(nodes))
		for i, nd := range nodes {
			nrows[i] = []any{int32(nd.ID.Level), int64(nd.ID.Index), nd.Hash}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"nodes"}, []string{"level", "idx", "hash"}, pgx.CopyFromRows(nrows)); err != nil {
			return err
		}
		last := int64(entries[len(entries)-1].Index + 1)
		if _, err = tx.Exec(ctx, `INSERT INTO checkpoints (size, note) VALUES ($1, $2)`, last, checkpoint); err != nil {
			return err
		}
		if cose != nil && s.hasCOSE(ctx) {
			_, err = tx.Exec(ctx, `INSERT INTO checkpoint_cose (size, sig) VALUES ($1, $2)`, last, cose)
		}
		return err
	})
}

// hasCOSE reports whether the ledger has the checkpoint_cose table (a
// ledger created before COSE receipts has not).
func (s *Store) hasCOSE(ctx context.Context) bool { return s.hasTable(ctx, &s.cose, "checkpoint_cose") }

// hasTable reports, once per store, whether the ledger's schema has table
// name.
func (s *Store) hasTable(ctx context.Context, flag *atomic.Int32, name string) bool {
	if v := flag.Load(); v != 0 {
		return v == 1
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		return false
	}
	if ok {
		flag.Store(1)
	} else {
		flag.Store(2)
	}
	return ok
}

// AddCosignatures implements ledger.Store.
func (s *Store) AddCosignatures(ctx context.Context, size uint64, lines []string) error {
	if !s.hasTable(ctx, &s.cosig, "checkpoint_cosigs") {
		return ledger.ErrNoCosignatures
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One writer at a time per checkpoint: the sequence numbers are dense.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('agentctx-cosigs:' || current_schema()))`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT seq, line FROM checkpoint_cosigs WHERE size = $1`, int64(size))
		if err != nil {
			return err
		}
		have := map[string]bool{}
		var seq int64
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
		if err := rows.Err(); err != nil {
			return err
		}
		for _, l := range lines {
			if have[l] {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO checkpoint_cosigs (size, seq, line) VALUES ($1, $2, $3)`, int64(size), seq, l); err != nil {
				return err
			}
			have[l] = true
			seq++
		}
		return nil
	})
}

// Cosignatures implements ledger.Store.
func (s *Store) Cosignatures(ctx context.Context, size uint64) ([]string, error) {
	if !s.hasTable(ctx, &s.cosig, "checkpoint_cosigs") {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT line FROM checkpoint_cosigs WHERE size = $1 ORDER BY seq`, int64(size))
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
	var sig []byte
	err := s.pool.QueryRow(ctx, `SELECT sig FROM checkpoint_cose WHERE size = $1`, int64(size)).Scan(&sig)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return sig, err
}

const cols = `idx, kind, jti, wid, iss, sub, exec_act, pred, ts, received_ms, partial, status, pol, caps, token, token_hash, leaf_hash`

func (s *Store) query(ctx context.Context, where string, args ...any) ([]ledger.Entry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM entries WHERE `+where+` ORDER BY idx`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		var e ledger.Entry
		var idx, ts int64
		var pred, caps string
		if err := rows.Scan(&idx, &e.Kind, &e.JTI, &e.WID, &e.Issuer, &e.Subject, &e.ExecAct, &pred, &ts, &e.ReceivedAt,
			&e.Partial, &e.Status, &e.Policy, &caps, &e.Token, &e.TokenHash, &e.LeafHash); err != nil {
			return nil, err
		}
		e.Index, e.Time = uint64(idx), time.Unix(ts, 0)
		e.Pred, e.Caps = split(pred), split(caps)
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

// Entries implements ledger.Store.
func (s *Store) Entries(ctx context.Context, from, to uint64) ([]ledger.Entry, error) {
	return s.query(ctx, `idx >= $1 AND idx < $2`, int64(from), int64(to))
}

// ByJTI implements ledger.Store.
func (s *Store) ByJTI(ctx context.Context, jti string) ([]ledger.Entry, error) {
	return s.query(ctx, `jti = $1`, jti)
}

// ByJTIs implements ledger.Store.
func (s *Store) ByJTIs(ctx context.Context, jtis []string) ([]ledger.Entry, error) {
	if len(jtis) == 0 {
		return nil, nil
	}
	return s.query(ctx, `jti = ANY($1)`, jtis)
}

// ByLeafHash implements ledger.Store (indexed in ledgers created since the
// service's leaf_hash proofs; a scan in older ones).
func (s *Store) ByLeafHash(ctx context.Context, hash []byte) ([]ledger.Entry, error) {
	return s.query(ctx, `leaf_hash = $1`, hash)
}

// Workflow implements ledger.Store.
func (s *Store) Workflow(ctx context.Context, wid string) ([]ledger.Entry, error) {
	return s.query(ctx, `wid = $1`, wid)
}

// Hashes implements ledger.Store with one query.
func (s *Store) Hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	levels, idxs := make([]int32, len(ids)), make([]int64, len(ids))
	for i, id := range ids {
		levels[i], idxs[i] = int32(id.Level), int64(id.Index)
	}
	rows, err := s.pool.Query(ctx, `SELECT q.o, n.hash FROM unnest($1::int[], $2::bigint[]) WITH ORDINALITY AS q(l, i, o)
		LEFT JOIN nodes n ON n.level = q.l AND n.idx = q.i ORDER BY q.o`, levels, idxs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([][]byte, 0, len(ids))
	for rows.Next() {
		var o int64
		var h []byte
		if err := rows.Scan(&o, &h); err != nil {
			return nil, err
		}
		if h == nil {
			id := ids[o-1]
			return nil, fmt.Errorf("tree node (%d, %d) is missing: %w", id.Level, id.Index, ledger.ErrNotFound)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// Checkpoint implements ledger.Store.
func (s *Store) Checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	var cp []byte
	var err error
	if size == 0 {
		err = s.pool.QueryRow(ctx, `SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&cp)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT note FROM checkpoints WHERE size = $1`, int64(size)).Scan(&cp)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return cp, err
}

// Checkpoints implements ledger.Store.
func (s *Store) Checkpoints(ctx context.Context) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT note FROM checkpoints ORDER BY size`)
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
