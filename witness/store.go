package witness

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// State is what a witness keeps of a log: its latest cosigned checkpoint.
type State struct {
	Size       uint64
	Root       []byte
	Checkpoint []byte
}

// Store keeps each log's State durably.
type Store interface {
	// Latest returns the log's state, the zero State when the witness
	// never cosigned for it.
	Latest(ctx context.Context, origin string) (State, error)
	// Put records s as the log's state if its size is still oldSize, in
	// one atomic step; ErrConflict otherwise.
	Put(ctx context.Context, origin string, oldSize uint64, s State) error
}

// ErrConflict is returned by Put when the stored size is not oldSize.
var ErrConflict = errors.New("witness: the log's state changed concurrently")

// SQLiteStore is a Store in one SQLite file.
type SQLiteStore struct{ db *sql.DB }

// OpenStore opens (or creates) the witness state at path.
func OpenStore(path string) (*SQLiteStore, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, checkpoint BLOB NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("witness state %q: %w", path, err)
	}
	return &SQLiteStore{db: db}, nil
}

// Close closes the store.
func (s *SQLiteStore) Close() error { return s.db.Close() }

// Latest implements Store.
func (s *SQLiteStore) Latest(ctx context.Context, origin string) (State, error) {
	var st State
	err := s.db.QueryRowContext(ctx, `SELECT size, root, checkpoint FROM logs WHERE origin = ?`, origin).Scan(&st.Size, &st.Root, &st.Checkpoint)
	if errors.Is(err, sql.ErrNoRows) {
		return State{}, nil
	}
	return st, err
}

// Put implements Store: an insert for a log never cosigned (oldSize 0),
// else an update guarded by the old size, in one transaction.
func (s *SQLiteStore) Put(ctx context.Context, origin string, oldSize uint64, st State) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	cur, err := func() (State, error) {
		var c State
		err := tx.QueryRowContext(ctx, `SELECT size FROM logs WHERE origin = ?`, origin).Scan(&c.Size)
		if errors.Is(err, sql.ErrNoRows) {
			return State{}, nil
		}
		return c, err
	}()
	if err != nil {
		return err
	}
	if cur.Size != oldSize {
		return ErrConflict
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO logs (origin, size, root, checkpoint) VALUES (?, ?, ?, ?)
		ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, checkpoint = excluded.checkpoint`,
		origin, st.Size, st.Root, st.Checkpoint); err != nil {
		return err
	}
	return tx.Commit()
}
