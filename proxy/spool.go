package proxy

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/agentctx/agentctx"
	"github.com/agentctx/agentctx/ledger"
)

// Spool defaults (BND-3).
const (
	DefaultSpoolBatch = 256
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// DefaultKeepSent is how long a delivered token stays in the spool
	// (its receipt for --spool-status and local look-up); the ledger holds
	// it for good.
	DefaultKeepSent = 24 * time.Hour
)

// Spool states.
const (
	statePending = 0
	stateSent    = 1
	stateRefused = 2
)

// Sender delivers tokens to a ledger and returns one result per token, in
// order. An error is for the delivery as a whole (the ledger unreachable,
// overloaded): the tokens stay pending and are sent again.
type Sender interface {
	Send(ctx context.Context, tokens []string) ([]SendResult, error)
}

// SendResult is the ledger's verdict on one token: its receipt, or the
// code it was refused with.
type SendResult struct {
	OK      bool
	Receipt json.RawMessage
	Code    agentctx.Code
	Message string
}

// SpoolConfig holds what a Spool needs. Path, Sender and Clock are
// required.
type SpoolConfig struct {
	// Path is the SQLite file of the spool.
	Path string
	// Sender delivers the spooled tokens.
	Sender Sender
	// Clock stamps the spooled and sent times.
	Clock func() time.Time
	// Batch is the most tokens per delivery (DefaultSpoolBatch).
	Batch int
	// MinBackoff and MaxBackoff bound the wait after a failed delivery,
	// doubled each time (DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// Log receives delivery failures and refusals (jti-free: token
	// hashes and codes only); nil: slog.Default().
	Log *slog.Logger
	// KeepSent is how long a delivered token is kept after its receipt
	// came back (DefaultKeepSent; negative: for ever); older ones are
	// deleted, so the file does not grow without bound. Pending and
	// refused tokens are never deleted.
	KeepSent time.Duration
}

// Spool is the proxy's durable queue of signed tokens (BND-3): Append
// writes each token to a local SQLite file before the response that
// carries it leaves, and a background loop sends them in batches to the
// ledger, with exponential backoff while it is down. The ledger's receipt,
// or its refusal code, is written back; nothing is dropped. A token sent
// twice (a crash between the ledger's commit and the spool's update) is
// answered by the ledger with its original receipt (LED-4): each token is
// in the ledger once. Spool implements transport.Sink; it is safe for
// concurrent use.
type Spool struct {
	cfg    SpoolConfig
	db     *sql.DB
	kick   chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup
	once   sync.Once
	ctx    context.Context // canceled by Close: a delivery in flight stops
	cancel context.CancelFunc
	pruned time.Time // the last prune (the send loop's alone)
}

const spoolSchema = `CREATE TABLE IF NOT EXISTS spool (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	token TEXT NOT NULL,
	token_sha256 TEXT NOT NULL,
	state INTEGER NOT NULL DEFAULT 0,
	code TEXT NOT NULL DEFAULT '',
	message TEXT NOT NULL DEFAULT '',
	receipt TEXT NOT NULL DEFAULT '',
	attempts INTEGER NOT NULL DEFAULT 0,
	spooled_ms INTEGER NOT NULL,
	sent_ms INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS spool_state ON spool(state, id);`

// openSpoolDB opens (or creates) the spool file. WAL with
// synchronous=NORMAL: a committed token survives the process being killed
// (the write-ahead log is on disk); a power loss may lose the last
// milliseconds, the price of not putting an fsync in every request.
func openSpoolDB(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(spoolSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("proxy spool %q: %w", path, err)
	}
	return db, nil
}

// OpenSpool opens the spool at cfg.Path and starts sending what it holds
// (a restarted proxy sends what it spooled before).
func OpenSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.Path == "" || cfg.Sender == nil || cfg.Clock == nil {
		return nil, errors.New("proxy: the spool needs Path, Sender and Clock")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultSpoolBatch
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.KeepSent == 0 {
		cfg.KeepSent = DefaultKeepSent
	}
	db, err := openSpoolDB(cfg.Path)
	if err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, db: db, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.done.Add(1)
	go s.loop()
	s.notify()
	return s, nil
}

// Append spools tokens durably (transport.Sink); they are sent later.
func (s *Spool) Append(ctx context.Context, tokens []string) error {
	now := s.cfg.Clock().UnixMilli()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range tokens {
		if _, err := tx.ExecContext(ctx, `INSERT INTO spool (token, token_sha256, spooled_ms) VALUES (?, ?, ?)`, t, agentctx.HashBytes([]byte(t)), now); err != nil {
			return fmt.Errorf("proxy spool: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("proxy spool: %w", err)
	}
	s.notify()
	return nil
}

func (s *Spool) notify() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close stops the sending loop (what is pending stays spooled) and closes
// the file.
func (s *Spool) Close() error {
	s.once.Do(func() { close(s.stop); s.cancel() })
	s.done.Wait()
	return s.db.Close()
}

type spooled struct {
	id    int64
	token string
	hash  string
}

func (s *Spool) loop() {
	defer s.done.Done()
	backoff := time.Duration(0)
	for {
		n, err := s.sendOnce()
		switch {
		case err != nil:
			backoff = min(max(2*backoff, s.cfg.MinBackoff), s.cfg.MaxBackoff)
			s.cfg.Log.Warn("the ledger did not take the spooled tokens; retrying", "retry_in", backoff.String(), "err", err)
			// While the ledger is down, new tokens do not cut the wait short.
			select {
			case <-s.stop:
				return
			case <-time.After(backoff):
			}
			continue
		case n == s.cfg.Batch:
			backoff = 0
			select {
			case <-s.stop:
				return
			default:
			}
			continue // more may be waiting
		}
		backoff = 0
		if err := s.prune(); err != nil {
			s.cfg.Log.Warn("could not delete delivered tokens from the spool; trying again later", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-time.After(time.Second): // a poll, should a kick be missed
		}
	}
}

// A prune looks at the pruneBatch oldest delivered tokens (one short
// transaction, however large the spool), at most once per pruneEvery.
const (
	pruneBatch = 10000
	pruneEvery = time.Minute
)

// prune deletes delivered tokens whose receipt came back more than
// KeepSent ago, among the oldest delivered (tokens are delivered in spool
// order, so those are the ones whose time is up first).
func (s *Spool) prune() error {
	now := s.cfg.Clock()
	if s.cfg.KeepSent < 0 || (!s.pruned.IsZero() && now.Sub(s.pruned) < pruneEvery) {
		return nil
	}
	s.pruned = now
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	before := now.Add(-s.cfg.KeepSent).UnixMilli()
	_, err := s.db.ExecContext(ctx, `DELETE FROM spool WHERE id IN (SELECT id FROM (SELECT id, sent_ms FROM spool WHERE state = ? ORDER BY id LIMIT ?) WHERE sent_ms < ?)`,
		stateSent, pruneBatch, before)
	return err
}

// sendOnce delivers one batch of pending tokens and records the results.
func (s *Spool) sendOnce() (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT id, token, token_sha256 FROM spool WHERE state = 0 ORDER BY id LIMIT ?`, s.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var batch []spooled
	for rows.Next() {
		var p spooled
		if err := rows.Scan(&p.id, &p.token, &p.hash); err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, p)
	}
	rows.Close()
	if len(batch) == 0 {
		return 0, rows.Err()
	}
	toks := make([]string, len(batch))
	for i, p := range batch {
		toks[i] = p.token
	}
	results, err := s.cfg.Sender.Send(ctx, toks)
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("the ledger answered %d results for %d tokens", len(results), len(batch))
	}
	if err != nil {
		s.db.ExecContext(ctx, `UPDATE spool SET attempts = attempts + 1 WHERE id >= ? AND id <= ? AND state = 0`, batch[0].id, batch[len(batch)-1].id)
		return 0, err
	}
	now := s.cfg.Clock().UnixMilli()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	for i, r := range results {
		p := batch[i]
		if r.OK {
			_, err = tx.ExecContext(ctx, `UPDATE spool SET state = 1, receipt = ?, sent_ms = ?, attempts = attempts + 1 WHERE id = ?`, string(r.Receipt), now, p.id)
		} else {
			s.cfg.Log.Warn("the ledger refused a spooled token; kept with its code", "token_sha256", p.hash, "code", r.Code)
			_, err = tx.ExecContext(ctx, `UPDATE spool SET state = 2, code = ?, message = ?, sent_ms = ?, attempts = attempts + 1 WHERE id = ?`, string(r.Code), r.Message, now, p.id)
		}
		if err != nil {
			return 0, err
		}
	}
	return len(batch), tx.Commit()
}

// SpoolStatus counts the spool's tokens by state (BND-3).
type SpoolStatus struct {
	Pending int64            `json:"pending"`
	Sent    int64            `json:"sent"`
	Refused int64            `json:"refused"`
	ByCode  map[string]int64 `json:"refused_by_code,omitempty"`
	// OldestPendingMillis is when the oldest pending token was spooled
	// (Unix ms; 0 when none is pending).
	OldestPendingMillis int64 `json:"oldest_pending_ms,omitempty"`
}

// Status returns the spool's counts.
func (s *Spool) Status(ctx context.Context) (*SpoolStatus, error) { return spoolStatus(ctx, s.db) }

// ReadSpoolStatus reads the counts of the spool file at path without
// sending anything (agentctx proxy --spool-status).
func ReadSpoolStatus(ctx context.Context, path string) (*SpoolStatus, error) {
	db, err := openSpoolDB(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return spoolStatus(ctx, db)
}

func spoolStatus(ctx context.Context, db *sql.DB) (*SpoolStatus, error) {
	st := &SpoolStatus{ByCode: map[string]int64{}}
	rows, err := db.QueryContext(ctx, `SELECT state, code, COUNT(*), MIN(spooled_ms) FROM spool GROUP BY state, code`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var state int
		var code string
		var n, oldest int64
		if err := rows.Scan(&state, &code, &n, &oldest); err != nil {
			return nil, err
		}
		switch state {
		case statePending:
			st.Pending += n
			st.OldestPendingMillis = oldest
		case stateSent:
			st.Sent += n
		case stateRefused:
			st.Refused += n
			st.ByCode[code] += n
		}
	}
	return st, rows.Err()
}

// HTTPSender sends tokens to an audit service (agentctx serve): POST
// /v1/entries with {"tokens": [...]}.
type HTTPSender struct {
	// URL is the service's base URL.
	URL string
	// Client is the HTTP client (nil: one with a 30 s timeout).
	Client *http.Client
}

// Send implements Sender.
func (h *HTTPSender) Send(ctx context.Context, tokens []string) ([]SendResult, error) {
	body, err := json.Marshal(map[string][]string{"tokens": tokens})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(h.URL, "/")+"/v1/entries", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the ledger answered %d", resp.StatusCode)
	}
	var out struct {
		Results []struct {
			OK      bool            `json:"ok"`
			Receipt json.RawMessage `json:"receipt"`
			Code    agentctx.Code   `json:"code"`
			Message string          `json:"message"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("the ledger's answer is not results JSON: %w", err)
	}
	rs := make([]SendResult, len(out.Results))
	for i, r := range out.Results {
		rs[i] = SendResult{OK: r.OK, Receipt: r.Receipt, Code: r.Code, Message: r.Message}
	}
	return rs, nil
}

// LedgerSender appends tokens to an embedded ledger (opened with its
// signing key and a trust that holds the proxy's own key).
type LedgerSender struct{ Ledger *ledger.Ledger }

// Send implements Sender.
func (l *LedgerSender) Send(ctx context.Context, tokens []string) ([]SendResult, error) {
	in := make([]ledger.Input, len(tokens))
	for i, t := range tokens {
		in[i] = ledger.Input{Token: t}
	}
	outs, err := l.Ledger.Append(ctx, in)
	if err != nil {
		return nil, err
	}
	rs := make([]SendResult, len(outs))
	for i, o := range outs {
		if o.Err != nil {
			rs[i] = SendResult{Code: agentctx.CodeOf(o.Err), Message: o.Err.Error()}
			continue
		}
		b, err := json.Marshal(o.Receipt)
		if err != nil {
			return nil, err
		}
		rs[i] = SendResult{OK: true, Receipt: b}
	}
	return rs, nil
}

// ServeMetrics answers GET /metrics with the spool's depth in the
// Prometheus text format (BND-3): agentctx_spool_tokens by state.
func (s *Spool) ServeMetrics(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status(r.Context())
	if err != nil {
		http.Error(w, "the spool is not readable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP agentctx_spool_tokens Signed tokens in the proxy's spool, by state (pending: not yet in the ledger).")
	fmt.Fprintln(w, "# TYPE agentctx_spool_tokens gauge")
	fmt.Fprintf(w, "agentctx_spool_tokens{state=\"pending\"} %d\nagentctx_spool_tokens{state=\"sent\"} %d\nagentctx_spool_tokens{state=\"refused\"} %d\n", st.Pending, st.Sent, st.Refused)
}
